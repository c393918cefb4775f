#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Copying what is used first. The source sits behind dm-delay (20 ms a
# read) and the background pass copies one region at a time from region 0,
# so it is far from the end of the device:
#   * by default, reading 10 regions near the end (one read) returns the
#     source's data and makes those regions copied ahead of the pass: the
#     metadata (clone_dump after a suspend) holds them while the pass is
#     still far below;
#   * with the feature no_read_hydration (printed in the table and the
#     status as given, nothing else changes), the same read copies nothing;
#   * with no_hydration, reads copy nothing, and the message
#     `prefetch <start> <length>` copies exactly the regions of that range
#     (the hydrated count grows by their number); with hydration_threshold
#     0 a prefetch waits, and goes on once the threshold is raised;
#   * a prefetch of an empty range, of a range past the end, of something
#     that is not a number, or with a missing length fails and changes
#     nothing.
# The data read back is byte-exact throughout.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern clone_dump dd

rs=64						# 32 KiB regions
src=$(mkdev src 32)				# 65536 sectors, 1024 regions
dest=$(mkdev dest 32)
meta=$(mkdev meta 4)
fill_pattern "$src" 1
dm_create slow "$(delay_table "$src" 20)"

# dumped_has FIRST N: after a suspend, clone_dump of the metadata shows
# regions FIRST..FIRST+N-1 hydrated (inside one run).
dumped_has() {
	dump_runs "$meta" | awk -v f="$1" -v n="$2" '
		$1 <= f && f + n <= $1 + $2 { ok = 1 } END { exit !ok }'
}
# read_regions FIRST N: one read of regions FIRST..FIRST+N-1 of the clone,
# which must hold the source's data.
read_regions() {
	dd if=/dev/mapper/c of=/dev/null bs=$(($2 * rs * 512)) skip="$(($1 / $2))" count=1 \
		iflag=direct status=none || fail "reading regions $1+$2 failed"
	[ $(($1 % $2)) = 0 ] || fail "read_regions: $1 is not a multiple of $2"
	cmp_dev /dev/mapper/c "$src" $(($2 * rs)) $(($1 * rs)) $(($1 * rs)) ||
		fail "regions $1+$2 do not read back the source's data"
}

log "default: a read copies its regions ahead of the background pass"
table=$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"
read_regions 900 10
wait_for 30 hydrated_at_least c 10 || fail "nothing copied: $(clone_status c)"
copied_900() { dmsetup suspend c && dumped_has 900 10; rc=$?; dmsetup resume c; return $rc; }
wait_for 30 copied_900 || fail "regions 900-909 were not copied after being read"
[ "$(clone_hydrated c)" -lt 900 ] || fail "the background pass reached region 900 already"
read_regions 900 10
dm_remove c

log "no_read_hydration: the same read copies nothing"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
table=$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 1 no_read_hydration 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"
assert_eq "$(clone_features c)" "no_read_hydration" "status features"
assert_match "$(clone_status c)" " 1 no_read_hydration 4 hydration_threshold" "status line"
assert_match "$(dm_table c)" " 1 no_read_hydration 4 hydration_threshold 1 hydration_batch_size 1$" "table"
read_regions 900 10
h=$(clone_hydrated c)
# Time for read hydration to act, had it been on: the pass copies 20 more.
wait_for 30 hydrated_at_least c $((h + 20)) || fail "the pass does not copy: $(clone_status c)"
dmsetup suspend c
dumped_has 900 1 && fail "region 900 was copied with no_read_hydration"
dmsetup resume c
dm_remove c

log "no_hydration: reads copy nothing; prefetch copies exactly its range"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
table=$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 1 no_hydration)
dm_create c "$table"
read_regions 100 4
dm_message c prefetch $((500 * rs + 1)) $((8 * rs))	# regions 500 to 508
wait_for 30 test "$(clone_hydrated c)" = 9 || fail "prefetch did not copy its 9 regions: $(clone_status c)"
dmsetup suspend c
dumped_has 500 9 || fail "the prefetched regions are not 500-508"
dumped_has 100 1 && fail "a read copied region 100 under no_hydration"
dmsetup resume c
cmp_dev /dev/mapper/c "$src" $((9 * rs)) $((500 * rs)) $((500 * rs)) || fail "regions 500-508 differ"

log "bad prefetch messages fail and change nothing"
len=$(dev_sectors "$src")
for m in "0 0" "$len 8" "$((len - 8)) 16" "x 8" "8 y" "-8 8" "8"; do
	# shellcheck disable=SC2086 # the message's words
	if dmsetup message c 0 prefetch $m 2>/dev/null; then
		fail "prefetch $m was accepted"
	fi
done
sleep 1
assert_eq "$(clone_hydrated c)" 9 "hydrated count after the refused prefetches"

log "threshold 0: a prefetch waits until the threshold is raised"
dm_message c hydration_threshold 0
dm_message c prefetch $((700 * rs)) $((4 * rs))
sleep 1
assert_eq "$(clone_hydrated c)" 9 "hydrated count with threshold 0"
dm_message c hydration_threshold 8
wait_for 30 test "$(clone_hydrated c)" = 13 || fail "the prefetch did not go on: $(clone_status c)"
dm_remove c
dm_remove slow
