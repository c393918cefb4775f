#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone prefetch NAME PATH...: files of an ext4 on the clone are copied
# first. Its help (three ways) and usage errors (exit 2). The source
# holds ext4 with files of known sizes; the clone is made with
# --no-hydration (only prefetch copies) and mounted read-only (ro,noload:
# nothing is written).
#   * refused, with nothing copied: a path on another filesystem (/proc,
#     the guest's /tmp), named with where it lives, also when good paths
#     come first; a name that is not a clone, or no device; a path that
#     does not exist; a clone segment that does not start at sector 0;
#   * --dry-run prints, one "START LENGTH" per line, ranges covering the
#     regions of the file's extents, and sends nothing; on a directory of
#     250 files and a hard link (mapped in two batches), ranges covering
#     exactly the regions of their extents, the link counted once;
#   * prefetching one file copies exactly the regions of its extents (as
#     filefrag gives them, parsed here on its own): the hydrated count
#     reaches their number and stops there, clone_dump of the metadata
#     (after a suspend) lists exactly them, the destination holds the
#     source's data at every extent, and the file reads back byte-exact;
#     a directory and a file given together add exactly theirs.
# (What the tool does when the kernel's queue is full is checked on the
# host, in tests/unit/test-dmclone.sh: filling it takes 1024 messages.)
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool
need_cmd mkfs.ext4 filefrag clone_dump mount umount sha256sum

src=$(mkdev src 64)				# 131072 sectors
dest=$(mkdev dest 64)
meta=$(mkdev meta 4)
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"

# extents FILE...: "START LENGTH" (sectors) of each of the FILEs' extents,
# read from filefrag's table here, independently of the tool's parser.
extents() {
	filefrag -e -b512 "$@" | awk -F: '/^ *[0-9]+:/ && NF >= 5 {
		split($3, p, "[.][.]"); printf "%d %d\n", p[1], $4 }'
}
# regions_of RS: the regions (of RS sectors) of the "START LENGTH" lines
# on stdin, one per line, sorted, each once.
regions_of() {
	awk -v r="$1" 'NF == 2 { for (i = int($1 / r); i <= int(($1 + $2 - 1) / r); i++) print i }' |
		sort -n -u
}
# dumped NAME META: the regions that the metadata of clone NAME marks
# hydrated (the clone suspended meanwhile, so that it is committed).
dumped() {
	dmsetup suspend "$1" || fail "cannot suspend $1"
	dump_runs "$2" | awk '{ for (i = $1; i < $1 + $2; i++) print i }'
	dmsetup resume "$1" || fail "cannot resume $1"
}
hydrated_is() { [ "$(clone_hydrated "$1")" = "$2" ]; }
idle() { [ "$(clone_hydrating "$1")" = 0 ]; }
# copied_exactly NAME META REGIONS WHAT: clone NAME copies REGIONS (a
# sorted list) and nothing else.
copied_exactly() {
	local n
	n=$(grep -c . <<<"$3")
	wait_for 60 hydrated_is "$1" "$n" ||
		fail "$4: $(clone_hydrated "$1") regions copied, not $n: $(clone_status "$1")"
	wait_for 30 idle "$1" || fail "$4: copies still in flight: $(clone_status "$1")"
	assert_eq "$(clone_hydrated "$1")" "$n" "$4: the hydrated count once idle"
	assert_eq "$(dumped "$1" "$2" | paste -sd' ')" "$(paste -sd' ' <<<"$3")" "$4: the regions copied (clone_dump)"
}
# landed EXTENTS: the destination holds the source's data at each extent.
landed() {
	local s l
	while read -r s l; do
		cmp_dev "$dest" "$src" "$l" "$s" "$s" || fail "the destination differs from the source at $s+$l"
	done <<<"$1"
}

log "usage"
for form in "prefetch --help" "prefetch -h" "help prefetch"; do
	# shellcheck disable=SC2086 # the words of the command
	tool $form
	assert_eq "$TOOL_RC/$TOOL_ERR" 0/ "exit status and stderr of dmclone $form"
	assert_match "$TOOL_OUT" "^Usage: dmclone prefetch NAME PATH\.\.\. " "dmclone $form"
done
tool_refuses 2 "dmclone prefetch: unknown option --bogus.*dmclone prefetch --help" prefetch x / --bogus
tool_refuses 2 "expected NAME and at least one PATH" prefetch c
tool_refuses 2 "--timeout wants a positive number of seconds, not '0'" prefetch x / --timeout 0
tool_ok --help
assert_match "$TOOL_OUT" "dmclone prefetch NAME PATH\.\.\." "the overview names prefetch"

log "an ext4 source with files"
mkfs.ext4 -q -F -b 4096 -E nodiscard "$src" || fail "mkfs.ext4 $src failed"
mount "$src" "$mnt" || fail "cannot mount the new ext4"
dd if=/dev/urandom of="$mnt/file1" bs=1000 count=300 status=none
dd if=/dev/urandom of="$mnt/file2" bs=12345 count=85 status=none	# 1 MiB and a bit
dd if=/dev/urandom of="$mnt/file3" bs=1M count=2 status=none
mkdir "$mnt/d"
for i in 1 2 3; do dd if=/dev/urandom of="$mnt/d/f$i" bs=50000 count=$i status=none; done
(cd "$mnt" && sha256sum file1 file2 file3 d/f1 d/f2 d/f3) >"$TEST_TMP/sums"
# Many small files, written without a process each.
mkdir "$mnt/many"
for ((i = 1; i <= 250; i++)); do printf '%*s' $((i * 100)) '' >"$mnt/many/f$i"; done
ln "$mnt/many/f1" "$mnt/many/link-f1"
umount "$mnt" || fail "cannot unmount the source"

log "a clone (background copying off), mounted read-only"
tool_ok create c "$src" "$dest" "$meta" --no-hydration
track_dm c
mount -o ro,noload /dev/mapper/c "$mnt" || fail "cannot mount the clone read-only"
on_exit "umount '$mnt' 2>/dev/null"
rs=$(status_field c 3)
assert_eq "$rs" 128 "region size (sectors)"
assert_eq "$(clone_hydrated c)" 0 "regions copied after mounting"

log "refusals"
tool_refuses 1 "^dmclone: /proc/version is not on the clone /dev/mapper/c \([0-9]+:[0-9]+\): it lives on .*, mounted at /proc\. .*nothing queued" \
	prefetch c /proc/version
echo elsewhere >"$TEST_TMP/elsewhere"
tool_refuses 1 "$TEST_TMP/elsewhere is not on the clone /dev/mapper/c .*mounted at /tmp" prefetch c "$TEST_TMP/elsewhere"
tool_refuses 1 "/proc/version is not on the clone" prefetch c "$mnt/file1" "$mnt/d" /proc/version
tool_refuses 1 "$mnt/nosuch does not exist; nothing queued" prefetch c "$mnt/file1" "$mnt/nosuch"
spare=$(mkdev spare 1)
dm_create lin "0 2048 linear $spare 0"
tool_refuses 1 "'lin' is not a clone: it is a linear device.*nothing queued" prefetch lin "$mnt/file2"
dm_remove lin
tool_refuses 1 "no device-mapper device named 'nosuch'" prefetch nosuch "$mnt/file2"
src3=$(mkdev src3 1)
dest3=$(mkdev dest3 1)
meta3=$(mkdev meta3 4)
dm_create ms "0 2048 linear $spare 0
2048 2048 clone $meta3 $dest3 $src3 8 1 no_hydration"
tool_refuses 1 "ms's clone segment starts at sector 2048, not 0.*nothing queued" prefetch ms "$mnt/file2"
dm_remove ms
assert_eq "$(clone_hydrated c)" 0 "regions copied after the refusals"

log "--dry-run prints the ranges, sends nothing"
e3=$(extents "$mnt/file3")
tool_ok prefetch c "$mnt/file3" --dry-run
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "^[0-9]+ [0-9]+(
[0-9]+ [0-9]+)*$" "the dry run's ranges"
assert_eq "$(regions_of "$rs" <<<"$TOOL_OUT" | paste -sd' ')" "$(regions_of "$rs" <<<"$e3" | paste -sd' ')" \
	"the regions of the dry run's ranges and of file3's extents"
assert_match "$TOOL_ERR" "c: would queue [0-9]+ range\(s\), 2 MiB in [0-9]+ region\(s\), from 1 file\(s\) \($(grep -c . <<<"$e3") extent\(s\)\); --dry-run: nothing sent" \
	"the dry run's summary"
assert_eq "$(clone_hydrated c)" 0 "regions copied after --dry-run"

log "--dry-run on 250 files: two batches, exactly their extents"
em=$(extents "$mnt"/many/f*)
tool_ok prefetch c "$mnt/many" --dry-run
assert_eq "$(regions_of "$rs" <<<"$TOOL_OUT" | paste -sd' ')" "$(regions_of "$rs" <<<"$em" | paste -sd' ')" \
	"the regions of the dry run's ranges and of the 250 files' extents"
assert_match "$TOOL_ERR" "from 250 file\(s\) \($(grep -c . <<<"$em") extent\(s\)\); --dry-run: nothing sent" \
	"the dry run's summary of 250 files and a hard link"
assert_eq "$(clone_hydrated c)" 0 "regions copied after --dry-run"

log "prefetch one file: exactly its regions are copied"
e2=$(extents "$mnt/file2")
log "file2's extents: $(paste -sd, <<<"$e2")"
r2=$(regions_of "$rs" <<<"$e2")
tool_ok prefetch c "$mnt/file2"
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "^c: queued [0-9]+ range\(s\), [0-9.]+ [KM]iB in $(grep -c . <<<"$r2") region\(s\), from 1 file\(s\) \($(grep -c . <<<"$e2") extent\(s\)\) to copy first; [0-9.]+% of the clone copied so far\.$" \
	"prefetch's summary"
copied_exactly c "$meta" "$r2" "prefetch file2"
landed "$e2"
drop_caches
(cd "$mnt" && grep ' file2$' "$TEST_TMP/sums" | sha256sum --quiet -c) || fail "file2 differs on the clone"

log "a directory and a file: theirs are added"
all="$e2"
for f in d/f1 d/f2 d/f3 file1; do all+=$'\n'$(extents "$mnt/$f"); done
rall=$(regions_of "$rs" <<<"$all")
tool_ok prefetch c "$mnt/d" "$mnt/file1"
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "from 4 file\(s\)" "prefetch's summary of a directory and a file"
copied_exactly c "$meta" "$rall" "prefetch d and file1"
landed "$all"
drop_caches
(cd "$mnt" && grep -v ' file3$' "$TEST_TMP/sums" | sha256sum --quiet -c) || fail "files differ on the clone"
umount "$mnt"
tool_ok remove c
no_dm c
log "ok"
