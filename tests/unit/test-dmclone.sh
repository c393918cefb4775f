#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of scripts/dmclone's pure parts (the script sourced, so only
# its functions are defined): json_object's output (the tool's one JSON
# encoder) is decoded by Python's json module back to the very string
# given, for names with quotes, backslashes, every control character and
# non-ASCII bytes, with numbers, true, false and null in order, and it dies
# rather than print a value that is not JSON; the metadata rule of
# `dmclone size` (and of the metadata tools) uses the constants and the
# expression of the kernel's min_metadata_blocks() in dm-clone-metadata.c
# (so a change there fails here until the tools follow), and gives the
# sizes computed by hand; `dmclone --version` prints the VERSION file's
# version. The metadata check before `dmclone create` resumes a clone
# (create_check_metadata): with a stand-in clone_check, each of its exit
# statuses, the needs_check flag, --skip-check and a missing clone_check
# give the documented outcome, message and calls; clone_check is found
# where the documentation says, in that order; and the real clone_check
# (tools/clone-md) passes a sound image, clears a set needs_check flag and
# refuses a damaged one. Run by `make -C tests/unit`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tool=$root/scripts/dmclone
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=tests/unit/check.sh
. "$here/check.sh"

# shellcheck source=/dev/null
. "$tool"
set +u

# json_object, the tool's one JSON encoder: decode its output with a real
# JSON parser and compare with what was given.
js() { json_str "$1"; printf '%s' "$JSON_STR"; }
roundtrip() {
	local enc
	enc=$(json_object "$1" "s:$1" n n:12 f n:0.58 e n: t b:1 z b:0 u null)
	# The encoding itself holds no raw control character.
	[[ $enc != *[[:cntrl:]]* ]] || { echo "  raw control character in $enc" >&2; return 1; }
	python3 -c '
import json, sys
enc, want = sys.argv[1], sys.argv[2].encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
got = json.loads(enc)
exp = {want: want, "n": 12, "f": 0.58, "e": None, "t": True, "z": False, "u": None}
if got != exp or list(got) != list(exp):
    sys.exit("  %r decodes to %r, not %r" % (enc, got, exp))
' "$enc" "$1"
}
check "json_object of a plain name" roundtrip "clone-1.a_b+c"
check "json_object of quotes and backslashes" roundtrip "a\"b\\c\\\\\"\\"
check "json_object of a trailing backslash" roundtrip "x\\"
check "json_object of an empty string" roundtrip ""
check "json_object of newline, tab, CR" roundtrip $'l1\nl2\tt\rr'
check "json_object of UTF-8" roundtrip "clône-Ω"
all=""
for ((i = 1; i < 32; i++)); do
	printf -v c '%b' "\\x$(printf %02x $i)"
	all+="<$c>"
done
all+=$'<\x7f>'
check "json_object of every control character" roundtrip "$all"
check "json_str of \\u escapes" eq "$(js $'\x01\x1f')" '"\u0001\u001f"'
check "json_str of short escapes" eq "$(js $'\b\f\n\r\t')" '"\b\f\n\r\t"'
# refuses: VALUE... the encoder must die, printing nothing on stdout.
refuses() {
	local out rc=0
	out=$(json_object "$@" 2>/dev/null) || rc=$?
	if [ $rc != 1 ] || [ -n "$out" ]; then
		echo "  exit $rc, printed '$out'" >&2
		return 1
	fi
}
check "json_object refuses a number that is not one" refuses k n:12a
check "json_object refuses an untyped value" refuses k 12
check "json_object refuses a key without a value" refuses k

# The kernel's rule, from the C source.
c=$root/dm-clone-metadata.c
cdef() { sed -n "s/^#define $1[[:space:]]*\([0-9]*\).*/\1/p" "$c"; }
check "BITS_PER_DISK_WORD as in $c" eq "$KERNEL_BITS_PER_DISK_WORD" "$(cdef BITS_PER_DISK_WORD)"
check "DISK_WORDS_PER_ARRAY_BLOCK as in $c" eq "$KERNEL_DISK_WORDS_PER_ARRAY_BLOCK" "$(cdef DISK_WORDS_PER_ARRAY_BLOCK)"
check "COMMIT_SLACK_BLOCKS as in $c" eq "$KERNEL_COMMIT_SLACK_BLOCKS" "$(cdef COMMIT_SLACK_BLOCKS)"
body=$(sed -n '/^static u64 min_metadata_blocks(u64 nr_regions)/,/^}/p' "$c" | tr -s ' \t\n' ' ')
check "min_metadata_blocks() is the rule dmclone implements (update kernel_md_blocks in scripts/dmclone if it changed)" \
	eq "$body" "static u64 min_metadata_blocks(u64 nr_regions) { u64 array_blocks = DIV_ROUND_UP(DIV_ROUND_UP(nr_regions, BITS_PER_DISK_WORD), DISK_WORDS_PER_ARRAY_BLOCK); return array_blocks + array_blocks / 64 + 2 * COMMIT_SLACK_BLOCKS; } "

# The metadata tools carry the same rule (clone_check, clone_restore).
# shellcheck disable=SC2034 # read by the check's eval below
tbody=$(sed -n '/^uint64_t min_metadata_blocks(uint64_t nr_regions)/,/^}/p' "$root/tools/clone-md/super.c" | tr -s ' \t\n' ' ')
check "the tools' min_metadata_blocks() is the kernel's rule" \
	eval '[[ "$tbody" == *"return array_blocks + array_blocks / 64 + 2 * $KERNEL_COMMIT_SLACK_BLOCKS; }"* ]]'

# By hand: 1 region: 1 array block, 1 + 0 + 128 = 129 blocks.
check "kernel rule, 1 region" eq "$(kernel_md_blocks 1)" 129
# 32576 regions fill one array block exactly; one more needs a second.
check "kernel rule, 32576 regions" eq "$(kernel_md_blocks 32576)" 129
check "kernel rule, 32577 regions" eq "$(kernel_md_blocks 32577)" 130
# 2^28 regions: 8241 array blocks: 8241 + 128 + 128.
check "kernel rule, 2^28 regions" eq "$(kernel_md_blocks 268435456)" 8497
# 2^31 regions (8 TiB in 4 KiB regions): 65923 array blocks, 67081 blocks
# (262 MiB): a 320 MiB device, as the in-kernel dm-clone takes, is enough.
check "kernel rule, 2^31 regions" eq "$(kernel_md_blocks 2147483648)" 67081
check "size of 8 TiB, 4k regions fits 320 MiB" eval '[ "$("$tool" size --size 8t --region 4k --bytes)" -le $((320 << 20)) ]'
# create's rule for 1 TiB in 64 KiB regions: 1 MiB + 2 MiB.
check "size of 1 TiB, 64k regions" eq "$("$tool" size --size 1t --region 64k --bytes)" 3145728
# 1 TiB in 4 KiB regions: the kernel's rule is the larger.
check "size of 1 TiB, 4k regions" eq "$("$tool" size --size 1t --region 4k --bytes)" $((8497 * 4096))
# 32 MiB in 64 KiB regions (512 regions): 1 MiB + 128 bytes, rounded up.
check "size of 32 MiB" eq "$("$tool" size --size 32m --bytes)" $((1048576 + 4096))
check "size in sectors" eq "$("$tool" size --size 65536s --bytes)" $((1048576 + 4096))
# shellcheck disable=SC2016
check "size's sentence" eval '[[ $("$tool" size --size 1t) == "A clone of 1 TiB in 16777216 regions of 64 KiB needs a metadata device of at least 3 MiB (3145728 bytes; "* ]]'
check "size refuses a bad region" eval "! '$tool' size --size 1t --region 3k 2>/dev/null"
check "size refuses too many regions" eval "! '$tool' size --size 16t --region 4k 2>/dev/null"
rc=0; "$tool" size --size lots 2>/dev/null || rc=$?
check "size --size lots is a usage error" eq "$rc" 2

check "--version" eq "$("$tool" --version)" "dmclone $(cat "$root/VERSION")"

# create_check_metadata MD FLAGS SKIP with a stand-in clone_check: it
# appends its arguments to $FAKE_CALLS, prints FAKE_OUT and exits FAKE_RC
# (FAKE_CLEAR_RC with --clear-needs-check-flag, printing nothing).
printf '%s\n' '#!/bin/bash' \
	'echo "$*" >>"$FAKE_CALLS"' \
	'case " $* " in *" --clear-needs-check-flag "*) exit "${FAKE_CLEAR_RC:-0}" ;; esac' \
	'[ -z "${FAKE_OUT:-}" ] || printf "%s\n" "$FAKE_OUT"' \
	'exit "${FAKE_RC:-0}"' >"$tmp/fake_check"
chmod +x "$tmp/fake_check"
export FAKE_CALLS=$tmp/calls
# mdc FLAGS SKIP [VAR=VALUE...]: the check of /dev/md-x, with those
# environment variables; MRC, MOUT, MERR and MCALLS hold the result.
mdc() {
	local flags=$1 skip=$2
	shift 2
	: >"$FAKE_CALLS"
	MRC=0
	MOUT=$(env DMCLONE_CLONE_CHECK="$tmp/fake_check" "$@" bash -c \
		'. "$1"; create_check_metadata /dev/md-x "$2" "$3"' dmclone "$tool" "$flags" "$skip" \
		2>"$tmp/err") || MRC=$?
	MERR=$(cat "$tmp/err")
	MCALLS=$(cat "$FAKE_CALLS")
}
# has TEXT ERE: TEXT matches the extended regular expression ERE.
has() { grep -qE -- "$2" <<<"$1" || { printf '  %q does not match /%s/\n' "$1" "$2" >&2; return 1; }; }
nl=$'\n'

mdc 0 0
check "sound metadata: resumed" eq "$MRC" 0
check "sound metadata: clone_check run read-only on METADATA" eq "$MCALLS" /dev/md-x
check "sound metadata: said on stderr" eq "$MERR" "dmclone: clone_check found no problem in the metadata on /dev/md-x"
check "sound metadata: nothing on stdout" eq "$MOUT" ""
mdc 2 0
check "flags without needs_check: no flag cleared" eq "$MRC/$MCALLS" 0//dev/md-x

mdc 0 0 FAKE_RC=1 FAKE_OUT="block 262: array block: bad checksum 0x1 (computed 0x2)"
check "damaged metadata: refused with exit 1" eq "$MRC" 1
check "damaged metadata: clone_check run once" eq "$MCALLS" /dev/md-x
check "damaged metadata: the refusal names the device and says it is not resumed" \
	has "$MERR" "^dmclone: the metadata device /dev/md-x holds damaged dm-clone metadata, so the clone is not resumed. clone_check found:$"
check "damaged metadata: what clone_check found, indented" \
	has "$MERR" "^  block 262: array block: bad checksum 0x1 \(computed 0x2\)$"
check "damaged metadata: points to clone_repair and the documentation" \
	has "$MERR" "repair it onto another device with clone_repair \(see clone_repair\(8\), and 'After a crash' in Documentation/metadata-tools.rst\)"
check "damaged metadata: nothing on stdout" eq "$MOUT" ""
many=$(for i in $(seq 1 25); do echo "block $i: bad"; done)
mdc 0 0 FAKE_RC=1 FAKE_OUT="$many"
check "many problems: the first 20 shown" eq "$(grep -c '^  block [0-9]*: bad$' <<<"$MERR")" 20
check "many problems: the rest counted" has "$MERR" "^  \.\.\. and 5 more lines \(clone_check /dev/md-x lists them all\)$"

mdc 0 0 FAKE_RC=2 FAKE_OUT="clone_check: /dev/md-x: cannot open: Permission denied"
check "clone_check failing: refused with exit 1" eq "$MRC" 1
check "clone_check failing: says so, with its status and message" \
	eq "$MERR" "dmclone: cannot check the metadata device /dev/md-x: $tmp/fake_check exited with status 2, so the clone is not resumed. It said:$nl  clone_check: /dev/md-x: cannot open: Permission denied"

mdc 1 0
check "needs_check on sound metadata: resumed" eq "$MRC" 0
check "needs_check on sound metadata: checked, then the flag cleared" \
	eq "$MCALLS" "/dev/md-x$nl--clear-needs-check-flag /dev/md-x"
check "needs_check on sound metadata: said" \
	eq "$MERR" "dmclone: the metadata device /dev/md-x had its needs_check flag set; clone_check found no problem, and the flag is cleared"
mdc 3 0 FAKE_RC=1 FAKE_OUT="block 0: superblock: unknown flags 0x2"
check "needs_check on damaged metadata: refused, the flag kept" eq "$MRC/$MCALLS" 1//dev/md-x
check "needs_check on damaged metadata: the refusal names the flag" \
	has "$MERR" "holds damaged dm-clone metadata \(its needs_check flag is set: a metadata operation failed"
mdc 1 0 FAKE_CLEAR_RC=1
check "needs_check not cleared: refused" eq "$MRC" 1
check "needs_check not cleared: said" has "$MERR" "clearing the flag failed, so the clone is not resumed"

mdc 0 1
check "--skip-check: resumed unchecked" eq "$MRC/$MCALLS" 0/
check "--skip-check: warns" eq "$MERR" "dmclone: warning: --skip-check: the metadata on /dev/md-x is not checked"
mdc 1 1
check "--skip-check with needs_check: refused, unchecked" eq "$MRC/$MCALLS" 1/
check "--skip-check with needs_check: says why" \
	has "$MERR" "^dmclone: the metadata device /dev/md-x has its needs_check flag set \(.*\), so --skip-check is refused. Run the command without --skip-check"

mdc 0 0 DMCLONE_CLONE_CHECK="$tmp/none"
check "no clone_check: resumed" eq "$MRC/$MCALLS" 0/
check "no clone_check: one warning" \
	eq "$MERR" "dmclone: warning: clone_check not found; metadata not checked (DMCLONE_CLONE_CHECK=$tmp/none is not an executable file)"
mdc 1 0 DMCLONE_CLONE_CHECK="$tmp/none"
check "no clone_check, needs_check set: refused" eq "$MRC" 1
check "no clone_check, needs_check set: says why" \
	has "$MERR" "needs_check flag set .*, but clone_check, which checks it, is not installed"

# Where clone_check is found: beside the tool, then on PATH, then (from
# the source tree only) in tools/. The tool's own path, $0, is given to
# bash -c; PATH holds only what find_clone_check needs besides.
mkdir -p "$tmp/sbin" "$tmp/bin" "$tmp/core" "$tmp/tree/scripts" "$tmp/tree/tools"
for c in dirname readlink; do ln -s "$(type -P "$c")" "$tmp/core/$c"; done
for c in "$tmp/sbin/clone_check" "$tmp/bin/clone_check" "$tmp/tree/tools/clone_check"; do
	cp "$tmp/fake_check" "$c"
done
# found AS PATH [VERSION]: where the tool run as AS finds clone_check
# (VERSION: as installed, with that version).
found() {
	env -u DMCLONE_CLONE_CHECK PATH="$2" "$BASH" -c \
		'. "$1"; [ -z "$2" ] || DMCLONE_VERSION=$2; find_clone_check || echo none' "$1" "$tool" "${3:-}"
}
check "clone_check beside the tool first" eq "$(found "$tmp/sbin/dmclone" "$tmp/core:$tmp/bin")" "$tmp/sbin/clone_check"
check "clone_check on PATH next" eq "$(found "$tmp/usr/dmclone" "$tmp/core:$tmp/bin")" "$tmp/bin/clone_check"
check "clone_check in the source tree's tools/ last" \
	eq "$(found "$tmp/tree/scripts/dmclone" "$tmp/core")" "$tmp/tree/tools/clone_check"
check "an installed tool does not look in ../tools" eq "$(found "$tmp/tree/scripts/dmclone" "$tmp/core" 1.0)" none
check "DMCLONE_CLONE_CHECK before all" \
	eq "$(DMCLONE_CLONE_CHECK=$tmp/fake_check PATH="$tmp/core:$tmp/bin" "$BASH" -c '. "$1"; find_clone_check' "$tmp/sbin/dmclone" "$tool")" \
	"$tmp/fake_check"

# The real clone_check on images: sound (resumed), sound with needs_check
# set (the flag cleared), damaged (refused, naming the block).
tools=$here/build
if [ ! -x "$tools/clone_check" ] || [ ! -x "$tools/clone_restore" ]; then
	tools=$tmp/tools
	mkdir -p "$tools"
	${CC:-gcc} -O1 -std=gnu11 -o "$tools/clone_tools" "$root"/tools/clone-md/*.c
	ln -s clone_tools "$tools/clone_check"
	ln -s clone_tools "$tools/clone_restore"
fi
# image NAME FLAGS: the metadata of a clone of 2048 regions of 16 sectors,
# 3 of them hydrated, with those superblock flags, in the file $tmp/NAME.
image() {
	truncate -s 4M "$tmp/$1"
	printf '%s\n' "<superblock version=\"1\" region_size=\"16\" target_size=\"32768\" nr_regions=\"2048\" nr_hydrated=\"3\" flags=\"$2\">" \
		'  <range begin="0" length="2"/>' '  <range begin="62" length="1"/>' '</superblock>' >"$tmp/$1.xml"
	"$tools/clone_restore" -i "$tmp/$1.xml" -o "$tmp/$1" >/dev/null
}
# real NAME: create_check_metadata on the image NAME, with the flags its
# superblock holds (read as create reads them).
real() {
	MRC=0
	MOUT=$(DMCLONE_CLONE_CHECK="$tools/clone_check" bash -c \
		'. "$1"; create_check_metadata "$2" "$(read_u32 "$2" 4)" 0' dmclone "$tool" "$tmp/$1" \
		2>"$tmp/err") || MRC=$?
	MERR=$(cat "$tmp/err")
}
image sound 0
real sound
check "real clone_check, sound image: resumed" eq "$MRC" 0
check "real clone_check, sound image: said" eq "$MERR" "dmclone: clone_check found no problem in the metadata on $tmp/sound"
image flagged 1
check "read_u32 reads the needs_check flag" eq "$(read_u32 "$tmp/flagged" 4)" 1
real flagged
check "real clone_check, needs_check set: resumed" eq "$MRC" 0
check "real clone_check, needs_check set: the flag cleared" eq "$(read_u32 "$tmp/flagged" 4)" 0
check "real clone_check, needs_check cleared: still sound" "$tools/clone_check" --quiet "$tmp/flagged"
image damaged 0
printf '\x5a' | dd of="$tmp/damaged" bs=1 seek=1 conv=notrunc status=none
real damaged
check "real clone_check, damaged image: refused" eq "$MRC" 1
check "real clone_check, damaged image: names the block" has "$MERR" "^  block 0: superblock: bad checksum"

# dmclone prefetch: the parser of filefrag's extent tables, the merging of
# the ranges in the order given, the regions they cover, and the device
# numbers stat prints. Canned 'filefrag -e -b512' output (e2fsprogs 1.47):
# extents with and without the "expected" column, flags, one not
# allocated yet (delalloc), inline data, and lines that are no extents.
pad='            '	# filefrag pads the empty flags column with blanks
ff=$(cat <<FF
Filesystem type is: ef53
File size of /dev/fd/3 is 1048576 (2048 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..      79:  381779112.. 381779191:     80:$pad
   1:       80..     319:  381685776.. 381686015:    240:  381779192:
   2:      320..     399:  381686016.. 381686095:     80:             merged
   3:      400..     479:  381773208.. 381773287:     80:  381686096: unwritten
   4:      480..     495:          0..         0:      0:             unknown_loc,delalloc
   5:      496..     511:      4096..      4111:     16:       4000: shared,last,eof
bash: 6 extents found
   7:        0..      59:          0..        59:     60:             last,not_aligned,inline,eof
  12:        0..       7:          0..         0:      0:             last,unknown_loc,delalloc,eof
FF
)
check "filefrag_batch: physical start and length of each extent, skipped ones counted and named" \
	eq "$(filefrag_batch <<<"$ff")" "file 5 3 unknown_loc,delalloc,inline /dev/fd/3
381779112 80
381685776 240
381686016 80
381773208 80
4096 16"
check "filefrag_batch: an empty file has none" \
	eq "$(printf '%s\n' 'Filesystem type is: ef53' 'File size of /dev/fd/3 is 0 (0 blocks of 512 bytes)' '/dev/fd/3: 0 extents found' | filefrag_batch)" \
	"file 0 0 - /dev/fd/3"
big=' 0:   0..   7:  8589934592.. 8589934599:   8:   last,eof'
check "filefrag_batch: past 2^32 sectors" \
	eq "$(printf '%s\n' 'File size of /dev/fd/3 is 4096 (8 blocks of 512 bytes)' "$big" | filefrag_batch)" "file 1 0 - /dev/fd/3
8589934592 8"
check "filefrag_batch: extents before any file's header ignored" \
	eq "$(filefrag_batch <<<"$big")" ""
# Several files at once, as recorded on an ext4 with inline_data (-O
# inline_data): a file whose tail is not written back (delalloc), a file
# stored in its inode, an empty file, a sparse file (no extent), a file
# not written back at all; then one with both kinds skipped, and one
# whose name holds spaces and " is ".
ffs=$(cat <<FF
Filesystem type is: ef53
File size of /dev/fd/10 is 328672 (648 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..     591:      16512..     17103:    592:$pad
   1:      592..     639:      21200..     21247:     48:      17104:
   2:      640..     647:          0..         0:      0:             last,unknown_loc,delalloc,eof
/dev/fd/10: 3 extents found
File size of /dev/fd/11 is 5 (8 block of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       4:     171048..    171052:      5:             last,not_aligned,inline,eof
/dev/fd/11: 1 extent found
File size of /dev/fd/12 is 0 (0 blocks of 512 bytes)
/dev/fd/12: 0 extents found
File size of /dev/fd/13 is 1048576 (2048 blocks of 512 bytes)
/dev/fd/13: 0 extents found
File size of /dev/fd/14 is 20000 (40 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..      39:          0..         0:      0:             last,unknown_loc,delalloc,eof
/dev/fd/14: 1 extent found
File size of /dev/fd/15 is 16384 (32 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       7:          0..         0:      0:             unknown_loc,delalloc
   1:        8..      15:       8000..      8007:      8:$pad
   2:       16..      23:       9000..      9007:      8:       8008: inline
   3:       24..      31:          0..         0:      0:             last,unknown_loc,delalloc,eof
/dev/fd/15: 4 extents found
File size of a file is 2 (3 blocks of 512 bytes) is 4096 (8 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       7:       7000..      7007:      8:             last,eof
a file is 2 (3 blocks of 512 bytes): 1 extent found
FF
)
check "filefrag_batch: several files, one line each, then their extents in order" \
	eq "$(filefrag_batch <<<"$ffs")" "file 2 1 unknown_loc,delalloc /dev/fd/10
file 0 1 inline /dev/fd/11
file 0 0 - /dev/fd/12
file 0 0 - /dev/fd/13
file 0 1 unknown_loc,delalloc /dev/fd/14
file 1 3 unknown_loc,delalloc,inline /dev/fd/15
file 1 0 - a file is 2 (3 blocks of 512 bytes)
16512 592
21200 48
8000 8
7000 8"
check "filefrag_batch: filefrag's messages on stderr, mixed in, ignored" \
	eq "$(printf '%s\n' 'File size of /dev/fd/3 is 4096 (8 blocks of 512 bytes)' 'open: No such file or directory' \
		'/dev/fd/3: FIBMAP unsupported' "$big" | filefrag_batch)" "file 1 0 - /dev/fd/3
8589934592 8"
check "filefrag_batch: nothing in, nothing out" eq "$(filefrag_batch </dev/null)" ""
# filefrag_file: the fields of one of those lines.
fields() { filefrag_file "$1" && echo "$FF_EXTENTS/$FF_SKIPPED/$FF_KINDS/$FF_NAME"; }
check "filefrag_file: a line's fields" eq "$(fields "file 1 3 unknown_loc,delalloc,inline /dev/fd/15")" \
	"1/3/unknown_loc,delalloc,inline//dev/fd/15"
check "filefrag_file: a name with spaces" eq "$(fields "file 1 0 - a b  c")" "1/0/-/a b  c"
check "filefrag_file: an extent is no file line" eval '! fields "16512 592"'
check "filefrag_file: nor is an empty line" eval '! fields ""'
# In sectors (REGION 1): adjacent and overlapping ranges merge with the
# one before, in order; a range that comes back below is not moved.
check "merge_ranges: adjacent and overlapping merged, order kept" \
	eq "$(printf '%s\n' "100 8" "108 8" "112 8" "500 8" "50 8" "58 2" "100 4" | merge_ranges 1)" "100 20
500 8
50 10
100 4"
check "merge_ranges: a gap of one sector is no merge at REGION 1" \
	eq "$(printf '%s\n' "0 8" "9 8" | merge_ranges 1)" "0 8
9 8"
# In regions of 128 sectors: ranges whose regions touch are merged (no
# region added), those a region apart are not.
check "merge_ranges: regions touching merged" \
	eq "$(printf '%s\n' "0 8" "200 8" "256 8" "520 8" "1000 24" "900 10" | merge_ranges 128)" "0 264
520 8
900 124"
check "merge_ranges: a range before the tail's regions merges into it" \
	eq "$(printf '%s\n' "300 8" "130 8" | merge_ranges 128)" "130 178"
check "merge_ranges: LIMIT trims a range across it, drops those past it" \
	eq "$(printf '%s\n' "0 8" "1000 100" "1024 8" "5000 1" | merge_ranges 8 1024)" "0 8
1000 24"
check "merge_ranges: nothing in, nothing out" eq "$(merge_ranges 128 </dev/null)" ""
check "merge_ranges: empty lines and zero lengths ignored" \
	eq "$(printf '%s\n' "" "8 0" "16 8" "" | merge_ranges 1)" "16 8"
check "merge_ranges: past 2^32 sectors" \
	eq "$(printf '%s\n' "8589934592 8" "8589934600 8" | merge_ranges 128)" "8589934592 16"
# The kernel's queue counts regions: first = start / REGION, last =
# (start + length - 1) / REGION.
check "range_regions: distinct regions, shared ones once" \
	eq "$(printf '%s\n' "0 8" "127 2" "500 8" "130 1" "1024 128" | range_regions 128)" 4
check "range_regions: one sector in one region" eq "$(echo "255 1" | range_regions 128)" 1
check "range_regions: nothing" eq "$(range_regions 128 </dev/null)" 0
check "range_regions: of merge_ranges' output" \
	eq "$(printf '%s\n' "381779112 80" "381685776 240" "381686016 80" | merge_ranges 128 | range_regions 128)" 4
check "devnum_majmin 253:0" eq "$(devnum_majmin 64768)" 253:0
check "devnum_majmin 259:300 (minor past 255)" eq "$(devnum_majmin 1114924)" 259:300
check "devnum_majmin 4095:1048575" eq "$(devnum_majmin 4294967295)" 4095:1048575
check "devnum_majmin of a mounted filesystem, as stat decodes it" \
	eq "$(devnum_majmin "$(stat -c %d "$here")")" "$(stat -c '%Hd:%Ld' "$here")"
check "dmclone help prefetch" eval '"$tool" help prefetch | head -n 1 | grep -q "^Usage: dmclone prefetch NAME PATH"'
rc=0; "$tool" prefetch c1 2>/dev/null || rc=$?
check "prefetch without a PATH is a usage error" eq "$rc" 2
rc=0; "$tool" prefetch c1 /x --timeout 0 2>/dev/null || rc=$?
check "prefetch --timeout 0 is a usage error" eq "$rc" 2

# dmclone prefetch against stand-ins for dmsetup, filefrag, dmesg and id
# (the kernel's queue of 1024 ranges is too slow to fill in the guest):
# the messages sent, in order; a full queue (EBUSY) waited out, or
# failing at once with --no-wait, or after --timeout; another refusal
# shown with the kernel's log line; --dry-run sending nothing; the parts
# past the clone's end left out; a delalloc extent warned about; a clone
# in read-only mode refused. Then the files mapped in batches: many files
# (several batches, also under a low limit of open files), each counted
# once; filefrag failing on one file of a batch, named; a file found
# that went away, and a refusal after files with warnings, each in the
# order of the files; every descriptor closed.
stub=$tmp/stub
mkdir -p "$stub" "$tmp/pf"
: >"$tmp/pf/a"
: >"$tmp/pf/b"
export STUB=$stub STUB_MM STUB_FIND
STUB_MM=$(devnum_majmin "$(stat -c %d "$tmp/pf/a")")
STUB_FIND=$(command -v find)
printf '%s\n' '#!/bin/sh' 'echo 0' >"$stub/id"
cat >"$stub/filefrag" <<'SH'
#!/bin/bash
# filefrag -e -b512 FILE...: for each FILE, its header, the table in
# STUB_FF (default $STUB/ff) and the count, as filefrag prints them. The
# FILE that is STUB_FF_BAD (through /dev/fd/N) cannot be mapped: a
# message on stderr and, at the end, exit status 1.
rc=0
echo "Filesystem type is: ef53"
for f; do
	case "$f" in -*) continue ;; esac
	echo "File size of $f is 57344 (112 blocks of 512 bytes)"
	if [ -n "${STUB_FF_BAD:-}" ] && [ "$(readlink -f "$f")" = "$STUB_FF_BAD" ]; then
		echo "$f: FIBMAP unsupported" >&2
		rc=1
		continue
	fi
	cat "${STUB_FF:-$STUB/ff}"
	echo "$f: 3 extents found"
done
exit $rc
SH
# find: the real one, and then STUB_GHOST (a file it found that is gone
# by the time it is opened).
printf '%s\n' '#!/bin/sh' '"$STUB_FIND" "$@"' '[ -z "${STUB_GHOST:-}" ] || printf "%s\0" "$STUB_GHOST"' >"$stub/find"
printf '%s\n' '#!/bin/sh' 'cat "$STUB/klog" 2>/dev/null' >"$stub/dmesg"
cat >"$stub/dmsetup" <<'SH'
#!/bin/bash
# status: a clone of STUB_LEN sectors in 128-sector regions, mode STUB_MODE;
# message: the call is logged; call number N fails with EBUSY when
# STUB_BUSY_FROM <= N < STUB_BUSY_TO, with EINVAL when N = STUB_BAD; with
# STUB_OLD, a message of more than one range fails as an older module
# refuses it.
case "$1" in
status) echo "0 ${STUB_LEN:-1048576} clone 8 10/1000 128 5/8192 0 1 no_hydration 4 hydration_threshold 1 hydration_batch_size 1 ${STUB_MODE:-rw}" ;;
info) echo "$STUB_MM" ;;
message)
	echo "${*:2}" >>"$STUB/calls"
	# With STUB_FDS, how many descriptors the tool has open as it sends
	# (its command substitution execs this: the tool is the parent).
	[ -z "${STUB_FDS:-}" ] || ls "/proc/$PPID/fd" | grep -c . >>"$STUB/fds"
	n=$(grep -c . "$STUB/calls")
	if [ -n "${STUB_OLD:-}" ] && [ $# -gt 6 ]; then
		echo "[  1.0] device-mapper: clone: $STUB_MM: unsupported message 'prefetch' with $(($# - 4)) argument(s)" >>"$STUB/klog"
		echo "device-mapper: message ioctl on $2  failed: Invalid argument" >&2
		exit 1
	fi
	if [ "$n" -ge "${STUB_BUSY_FROM:-0}" ] && [ "$n" -lt "${STUB_BUSY_TO:-0}" ]; then
		echo "[  1.0] device-mapper: clone: $STUB_MM: prefetch $5+$6: too many ranges waiting; try again later" >>"$STUB/klog"
		echo "device-mapper: message ioctl on $2  failed: Device or resource busy" >&2
		exit 1
	fi
	if [ "$n" = "${STUB_BAD:-0}" ]; then
		echo "[  1.0] device-mapper: clone: $STUB_MM: prefetch $5+$6: not a range inside the clone (42 sectors)" >>"$STUB/klog"
		echo "device-mapper: message ioctl on $2  failed: Invalid argument" >&2
		exit 1
	fi
	;;
*) exit 1 ;;
esac
SH
chmod +x "$stub"/*
printf '%s\n' ' ext:     logical_offset:        physical_offset: length:   expected: flags:' \
	'   0:        0..      79:       1024..      1103:     80:' \
	'   1:       80..      95:       4096..      4111:     16:       1104:' \
	'   2:       96..     111:       8192..      8207:     16:       4112: last,eof' >"$stub/ff"
# pf [VAR=VALUE...] -- ARGS...: dmclone prefetch ARGS with the stand-ins
# first on PATH; the status in PRC, stdout in POUT, stderr in PERR, the
# messages sent in PCALLS (one per line).
pf() {
	local env=()
	while [ "$1" != -- ]; do env+=("$1"); shift; done
	shift
	rm -f "$stub/calls" "$stub/klog" "$stub/fds"
	PRC=0
	POUT=$(env PATH="$stub:$PATH" "${env[@]}" "$tool" prefetch "$@" 2>"$tmp/err") || PRC=$?
	PERR=$(cat "$tmp/err")
	PCALLS=$(cat "$stub/calls" 2>/dev/null || true)
}
sent3="c1 0 prefetch 1024 80 4096 16 8192 16"
pf -- c1 "$tmp/pf/a"
check "prefetch: exit 0" eq "$PRC" 0
check "prefetch: the ranges in one message, in order" eq "$PCALLS" "$sent3"
check "prefetch: the summary" \
	eq "$POUT" "c1: queued 3 range(s), 56 KiB in 3 region(s), from 1 file(s) (3 extent(s)) to copy first; 0.0% of the clone copied so far."
# The directory holds a (given already) and b (the stand-in maps it to
# the same extents: sent again, as they do not follow the same ones).
pf -- c1 "$tmp/pf/a" "$tmp/pf/a" "$tmp/pf"
check "prefetch: a file given again (or found in a directory) is mapped once" \
	eq "$PCALLS/$PRC" "$sent3 1024 80 4096 16 8192 16/0"
# An older module takes one range a message: the tool sends them so.
pf STUB_OLD=1 -- c1 "$tmp/pf/a"
check "prefetch, a module of one range a message: exit 0" eq "$PRC/$PERR" 0/
check "prefetch, a module of one range a message: each range alone after the refusal" \
	eq "$PCALLS" "$sent3
c1 0 prefetch 1024 80
c1 0 prefetch 4096 16
c1 0 prefetch 8192 16"
check "prefetch, a module of one range a message: the summary" has "$POUT" "^c1: queued 3 range\(s\)"
# 130 ranges that do not touch (one extent of 16 sectors every 1024): two
# messages of 64 ranges and one of 2.
{
	echo ' ext:     logical_offset:        physical_offset: length:   expected: flags:'
	for ((i = 0; i < 130; i++)); do
		printf '%4d: %8d.. %8d: %10d.. %10d: %6d: %s\n' "$i" $((i * 16)) $((i * 16 + 15)) \
			$((i * 1024)) $((i * 1024 + 15)) 16 "$([ $i = 129 ] && echo last,eof)"
	done
} >"$tmp/ff-130"
ranges130=$(for ((i = 0; i < 130; i++)); do printf '%d 16 ' $((i * 1024)); done)
ranges130=${ranges130% }
call() { # call FIRST N: the message of ranges FIRST..FIRST+N-1 of the 130
	local w
	read -r -a w <<<"$ranges130"
	echo "c1 0 prefetch ${w[*]:$(($1 * 2)):$(($2 * 2))}"
}
pf STUB_FF="$tmp/ff-130" -- c1 "$tmp/pf/a"
check "prefetch, 130 ranges: exit 0" eq "$PRC/$PERR" 0/
check "prefetch, 130 ranges: three messages of 64, 64 and 2" eq "$PCALLS" "$(call 0 64; call 64 64; call 128 2)"
pf STUB_FF="$tmp/ff-130" STUB_BUSY_FROM=2 STUB_BUSY_TO=4 -- c1 "$tmp/pf/a"
check "prefetch, queue full twice: waits, then goes on" eq "$PRC" 0
check "prefetch, queue full twice: the message sent again until queued" \
	eq "$PCALLS" "$(call 0 64; call 64 64; call 64 64; call 64 64; call 128 2)"
check "prefetch, queue full twice: the summary" has "$POUT" "^c1: queued 130 range\(s\)"
pf STUB_FF="$tmp/ff-130" STUB_BUSY_FROM=2 STUB_BUSY_TO=4 -- c1 "$tmp/pf/a" --no-wait
check "prefetch --no-wait, queue full: exit 1, nothing on stdout" eq "$PRC/$POUT" 1/
check "prefetch --no-wait, queue full: stops at once" eq "$PCALLS" "$(call 0 64; call 64 64)"
check "prefetch --no-wait, queue full: says how far it got" \
	eq "$PERR" "dmclone: the kernel's prefetch queue for c1 is full (1024 ranges waiting): 64 of 130 range(s) queued, the rest not (--no-wait). Run this again once some are copied"
t0=$(now_us)
pf STUB_BUSY_FROM=1 STUB_BUSY_TO=1000 -- c1 "$tmp/pf/a" --timeout 0.5
t1=$(now_us)
check "prefetch --timeout 0.5, queue always full: exit 1" eq "$PRC" 1
check "prefetch --timeout 0.5, queue always full: says so" \
	eq "$PERR" "dmclone: the kernel's prefetch queue for c1 stayed full for 0.5 s (--timeout): 0 of 3 range(s) queued, the rest not"
between() { [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ] || { echo "  $1 is not in [$2, $3)" >&2; return 1; }; }
check "prefetch --timeout 0.5: waited that long, not much longer" between $((t1 - t0)) 500000 5000000
check "prefetch --timeout 0.5: tried again meanwhile" eval '[ "$(grep -c . <<<"$PCALLS")" -ge 3 ]'
pf STUB_FF="$tmp/ff-130" STUB_BAD=2 -- c1 "$tmp/pf/a"
check "prefetch, a message refused: exit 1" eq "$PRC" 1
check "prefetch, a message refused: the kernel's reason, how many were queued" \
	eq "$PERR" "dmclone: the kernel refused a prefetch of 64 ranges ('prefetch 65536 16 ...') for c1: device-mapper: message ioctl on c1  failed: Invalid argument
device-mapper: clone: $STUB_MM: prefetch 65536+16: not a range inside the clone (42 sectors)
64 of 130 range(s) were queued before"
pf STUB_OLD=1 STUB_BAD=2 -- c1 "$tmp/pf/a"
check "prefetch, one range refused by an older module: its words" \
	eq "$PRC/$PERR" "1/dmclone: the kernel refused 'prefetch 1024 80' for c1: device-mapper: message ioctl on c1  failed: Invalid argument
device-mapper: clone: $STUB_MM: prefetch 1024+80: not a range inside the clone (42 sectors)
0 of 3 range(s) were queued before"
pf -- c1 "$tmp/pf/a" --dry-run
check "prefetch --dry-run: the ranges on stdout" eq "$POUT" "1024 80
4096 16
8192 16"
check "prefetch --dry-run: sends nothing" eq "$PCALLS/$PRC" /0
check "prefetch --dry-run: the summary on stderr" \
	eq "$PERR" "c1: would queue 3 range(s), 56 KiB in 3 region(s), from 1 file(s) (3 extent(s)); --dry-run: nothing sent"
pf STUB_LEN=4100 -- c1 "$tmp/pf/a"
check "prefetch: the parts past the clone's end left out" eq "$PCALLS" "c1 0 prefetch 1024 80 4096 4"
pf STUB_MODE=ro -- c1 "$tmp/pf/a"
check "prefetch: a clone in read-only mode refused" \
	eq "$PRC/$PCALLS/$PERR" "1//dmclone: c1 is in read-only metadata mode: it copies nothing (see 'dmclone status c1'); nothing queued"
cp "$stub/ff" "$tmp/ff-good"
echo '   3:      112..     127:          0..         0:      0:             last,unknown_loc,delalloc,eof' >>"$stub/ff"
pf -- c1 "$tmp/pf/a"
cp "$tmp/ff-good" "$stub/ff"
check "prefetch, a delalloc extent: the others sent" eq "$PCALLS/$PRC" "$sent3/0"
check "prefetch, a delalloc extent: a warning to sync first" \
	eq "$PERR" "dmclone: warning: $tmp/pf/a: 1 extent(s) skipped (unknown_loc,delalloc): not written back yet, or stored in the inode; run 'sync' first to prefetch all of it"
pf -- c1 /dev/null
check "prefetch: not a regular file: refused" \
	eq "$PRC/$PCALLS/$PERR" "1//dmclone: /dev/null is not a regular file (it is a character special file): give files or directories; nothing queued"
# A FIFO given as a path is refused without being opened (an open would
# wait for a writer: the timeout's exit status 124 fails the check).
mkfifo "$tmp/fifo"
rm -f "$stub/calls"
PRC=0
PERR=$(env PATH="$stub:$PATH" timeout 20 "$tool" prefetch c1 "$tmp/pf/a" "$tmp/fifo" 2>&1 >/dev/null) || PRC=$?
check "prefetch: a FIFO refused at once, nothing sent" \
	eq "$PRC/$(cat "$stub/calls" 2>/dev/null)/$PERR" "1//dmclone: $tmp/fifo is not a regular file (it is a fifo): give files or directories; nothing queued"

# Many files: 450 in a directory and a hard link to the first, found
# last, are three batches of 200 files at most; each file's one extent is
# at the same place, so that the ranges merge into one.
mkdir "$tmp/many"
for i in $(seq -w 1 450); do : >"$tmp/many/f$i"; done
ln "$tmp/many/f001" "$tmp/many/zlink"
printf '%s\n' '   0:        0..      15:       2048..      2063:     16:             last,eof' >"$tmp/ff-one"
pf STUB_FF="$tmp/ff-one" STUB_FDS=1 -- c1 "$tmp/many" "$tmp/pf/a"
check "prefetch, 450 files: exit 0" eq "$PRC/$PERR" 0/
check "prefetch, 450 files: each counted once, the hard link as its file" \
	eq "$POUT" "c1: queued 1 range(s), 8 KiB in 1 region(s), from 451 file(s) (451 extent(s)) to copy first; 0.0% of the clone copied so far."
check "prefetch, 450 files: one range sent" eq "$PCALLS" "c1 0 prefetch 2048 16"
check "prefetch, 450 files: every file's descriptor closed before sending" \
	eval '[ "$(cat "$stub/fds")" -lt 10 ]'
# Under a limit of 40 open files, batches of 8: the same plan (of the
# directory alone).
rm -f "$stub/calls"
PRC=0
POUT=$(ulimit -n 40 && env PATH="$stub:$PATH" STUB_FF="$tmp/ff-one" "$tool" prefetch c1 "$tmp/many" --dry-run 2>&1) || PRC=$?
check "prefetch, ulimit -n 40: the same plan" eq "$PRC/$POUT" "0/2048 16
c1: would queue 1 range(s), 8 KiB in 1 region(s), from 450 file(s) (450 extent(s)); --dry-run: nothing sent"
# filefrag fails on one file of a batch: the file is named, nothing is
# sent, and the warnings of the files before it come first.
mkdir "$tmp/batch"
for f in a b c; do : >"$tmp/batch/$f"; done
cp "$tmp/ff-good" "$tmp/ff-delalloc"
echo '   3:      112..     127:          0..         0:      0:             last,unknown_loc,delalloc,eof' >>"$tmp/ff-delalloc"
skipped="1 extent(s) skipped (unknown_loc,delalloc): not written back yet, or stored in the inode; run 'sync' first to prefetch all of it"
pf STUB_FF="$tmp/ff-delalloc" STUB_FF_BAD="$tmp/batch/b" -- c1 "$tmp/batch"
check "prefetch, filefrag failing on one file: exit 1, nothing sent" eq "$PRC/$PCALLS/$POUT" "1//"
# (filefrag's message names the file by the descriptor it was given.)
fdn() { sed 's|/dev/fd/[0-9]*|/dev/fd/N|g' <<<"$1"; }
failed="dmclone: filefrag cannot map $tmp/batch/b (exit status 1): File size of /dev/fd/N is 57344 (112 blocks of 512 bytes) /dev/fd/N: FIBMAP unsupported; nothing queued"
check "prefetch, filefrag failing on one file: named, after the warnings of the files before it" \
	eq "$(fdn "$PERR")" "dmclone: warning: $tmp/batch/a: $skipped$nl$failed"
pf STUB_FF="$tmp/ff-delalloc" STUB_FF_BAD="$tmp/batch/b" -- c1 "$tmp/batch/a" "$tmp/batch/c" "$tmp/batch/b" -q
check "prefetch, filefrag failing on the last file given: exit 1, nothing sent" eq "$PRC/$PCALLS/$POUT" "1//"
check "prefetch, filefrag failing on the last file given: named, nothing else said (-q)" eq "$(fdn "$PERR")" "$failed"
# A file found that is gone when it is opened: skipped with a warning,
# in the order of the files.
pf STUB_FF="$tmp/ff-delalloc" STUB_GHOST="$tmp/batch/b-gone" -- c1 "$tmp/batch" --dry-run
check "prefetch, a file found gone: the others mapped" \
	eq "$PRC/$(tail -n 1 <<<"$PERR")" "0/c1: would queue 9 range(s), 168 KiB in 3 region(s), from 3 file(s) (9 extent(s)); --dry-run: nothing sent"
check "prefetch, a file found gone: a warning, in the order of the files" \
	eq "$(head -n -1 <<<"$PERR")" "dmclone: warning: $tmp/batch/a: $skipped
dmclone: warning: $tmp/batch/b: $skipped
dmclone: warning: $tmp/batch/b-gone went away meanwhile: skipped
dmclone: warning: $tmp/batch/c: $skipped"
# A path refused after files with warnings: their warnings first, then
# the refusal, nothing sent; the same for a path that does not exist.
pf STUB_FF="$tmp/ff-delalloc" -- c1 "$tmp/batch/a" "$tmp/batch/c" /dev/null "$tmp/batch/b"
check "prefetch, a refusal after files with warnings: in the order of the files" \
	eq "$PRC/$PCALLS/$PERR" "1//dmclone: warning: $tmp/batch/a: $skipped
dmclone: warning: $tmp/batch/c: $skipped
dmclone: /dev/null is not a regular file (it is a character special file): give files or directories; nothing queued"
pf STUB_FF="$tmp/ff-delalloc" -- c1 "$tmp/batch/a" "$tmp/nosuch" "$tmp/batch/b"
check "prefetch, a path that does not exist after a file with warnings: in order" \
	eq "$PRC/$PCALLS/$PERR" "1//dmclone: warning: $tmp/batch/a: $skipped
dmclone: $tmp/nosuch does not exist; nothing queued"

check_summary test-dmclone
