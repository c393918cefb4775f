#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Metadata space: the smallest metadata device the module accepts holds
# the bitset and a 64th more plus 512 KiB (dmclone's rule, checked against
# the kernel's in the unit tests); one 4 KiB block less is refused at load,
# saying the size needed. On the smallest device, a commit of more bitset
# blocks than there is free space for (one region written in each of 300
# array blocks, 9.8 million regions of 4 KiB over a zero source, all
# before one commit: fio writes them in one go) is split into several
# transactions instead of failing: the clone stays rw, the 300 regions
# are recorded (status, a new clone over the same metadata, clone_check
# and clone_dump) and read back byte-exact; a whole-device discard then
# marks every region, in bounded transactions, and commits.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern fio clone_check clone_dump blkdiscard

rs=8						# 4 KiB regions
per_block=$((509 * 64))				# regions per bitset array block
writes=300
nr=$((writes * per_block))
len=$((nr * rs))				# sectors, about 37 GiB
# The kernel's minimum, in 4 KiB blocks (min_metadata_blocks()).
array=$(((nr / 64 + 508) / 509))
min_blocks=$((array + array / 64 + 128))

dm_create zsrc "0 $len zero"
dest=$(mkdev_sectors dest "$len")		# sparse, in the guest's tmpfs
meta=$(mkdev_sectors meta $((min_blocks * 8)))
small=$(mkdev_sectors small $(((min_blocks - 1) * 8)))

log "one block less than $min_blocks is refused, saying what is needed"
log_mark
why=$(dm_table_load_should_fail c "$(clone_table "$small" "$dest" /dev/mapper/zsrc $rs 1 no_hydration)")
assert_match "$why" "too small" "table load error on a metadata device one block short"
log_grep "need at least $((min_blocks * 4)) KiB" ||
	fail "the kernel log does not give the size needed ($((min_blocks * 4)) KiB): $(log_since_mark | tail -n 3)"

log "the smallest device: $writes regions in $writes array blocks, one commit's worth"
table=$(clone_table "$meta" "$dest" /dev/mapper/zsrc $rs 1 no_hydration)
dm_create c "$table"
free_before=$(($(clone_md_total c) - $(clone_md_used c)))
[ "$free_before" -lt "$writes" ] ||
	fail "the test needs less free metadata ($free_before blocks) than array blocks to change"
fio --name=spread --filename=/dev/mapper/c --rw=write:$((per_block * 4096 - 4096)) \
	--bs=4k --io_size=$((writes * 4096)) --size=$((len * 512)) \
	--ioengine=psync --direct=1 --buffer_pattern=0x5a --output=/dev/null ||
	fail "fio failed"
dmsetup status c >/dev/null || fail "status (a commit) failed"
assert_eq "$(clone_mode c)" rw "mode after the large commit"
assert_eq "$(clone_hydrated c)" "$writes" "hydrated regions after the large commit"
dm_remove c

log "the regions are on disk: a new clone, clone_check, clone_dump"
dm_create c "$table"
assert_eq "$(clone_hydrated c)" "$writes" "hydrated regions of a new clone over the metadata"
head -c 4096 /dev/zero | tr '\0' 'Z' >"$TEST_TMP/zz"	# 0x5a, fio's pattern
for i in 0 1 149 299; do
	dd if=/dev/mapper/c of="$TEST_TMP/r" bs=4096 skip=$((i * per_block)) count=1 \
		iflag=direct status=none || fail "reading region $((i * per_block)) failed"
	cmp -s "$TEST_TMP/r" "$TEST_TMP/zz" || fail "region $((i * per_block)) does not hold what fio wrote"
done
dd if=/dev/mapper/c of="$TEST_TMP/r" bs=4096 skip=$((per_block + 1)) count=1 \
	iflag=direct status=none
cmp -s "$TEST_TMP/r" "$TEST_TMP/zz" && fail "fio wrote next to region $per_block, not only there"
dm_remove c
clone_check "$meta" >/dev/null 2>&1 || fail "clone_check finds the metadata damaged: $(clone_check "$meta" 2>&1 | head -n 5)"
n=$(clone_dump "$meta" | grep -c '<range ')
assert_eq "$n" "$writes" "runs of hydrated regions in clone_dump"

log "a whole-device discard on the smallest device"
dm_create c "$table"
blkdiscard /dev/mapper/c || fail "blkdiscard failed"
dmsetup status c >/dev/null
assert_eq "$(clone_mode c)" rw "mode after the whole-device discard"
assert_eq "$(clone_hydrated c)" "$nr" "hydrated regions after the whole-device discard"
dm_remove c
dm_create c "$table"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "a new clone after the discard"
dm_remove c
dm_remove zsrc
