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
# sizes computed by hand; `dmclone --version` prints the VERSION file's version.
# Run by `make -C tests/unit`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tool=$root/scripts/dmclone

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

check_summary test-dmclone
