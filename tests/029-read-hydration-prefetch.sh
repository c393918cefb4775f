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
#   * a read of whole regions is their copy: with the pass all but
#     stopped (the throttle at 0), the source reads no more than the read
#     and the pass's regions, and the destination holds the data; a read
#     of part of a region has it copied from the source; a read of
#     regions of zeroes writes zeroes over what the destination held; a
#     write of a whole region whose read (of 16 regions: more than the
#     pass may hold) is in flight over a 1.5 s source waits for the
#     read's copy: the clone and the destination keep the write, the
#     read returns the source's data; a read that fails leaves its
#     regions uncopied and held by nothing (a write of one of them goes
#     on at once);
#   * with the feature no_read_hydration (printed in the table and the
#     status as given, nothing else changes), the same read copies nothing;
#   * with no_hydration, reads copy nothing, and the message
#     `prefetch <start> <length>` copies exactly the regions of that range
#     (the hydrated count grows by their number); with hydration_threshold
#     0 a prefetch waits, and goes on once the threshold is raised;
#   * a prefetch of an empty range, of a range past the end, of something
#     that is not a number, or with a missing length fails and changes
#     nothing;
#   * one message of several ranges copies them all; one with a bad range
#     among good ones, or of more than 256, queues none; with 1023 ranges
#     waiting (threshold 0), a message of two fails with EBUSY and one of
#     one is queued, and a range touching the last one joins it; all of
#     them are copied once the threshold is raised.
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

log "a read of whole regions is their copy: the source is read once"
# The pass all but stopped (the module-wide throttle at 0 lets a copy
# start once a second), so that what the source reads is what the clone
# asks of it: the read itself, and the pass's few regions.
thr=/sys/module/dm_clone/parameters/clone_hydration_throttle
thr0=$(cat "$thr")
on_exit "echo $thr0 >$thr"
echo 0 >"$thr"
# Regions 800-807 of the source read back zeroes; the destination holds
# something else there (a zeroes copy must write them), and at the other
# regions read below (whatever the clones above copied there).
dd if=/dev/zero of="$src" bs=512 seek=$((800 * rs)) count=$((8 * rs)) oflag=direct status=none
fill_pattern "$dest" 7 $((800 * rs)) $((8 * rs))
fill_pattern "$dest" 7 $((600 * rs)) $((8 * rs))
fill_pattern "$dest" 7 $((304 * rs)) $((16 * rs))
fill_pattern "$dest" 7 $((700 * rs)) $rs
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
table=$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"
sstat=/sys/block/$(dmsetup info -c --noheadings -o blkdevname slow)/stat
src_read() { awk '{ print $3 }' "$sstat"; }
# read_to FILE FIRST N: one read of regions FIRST..FIRST+N-1 of the clone
# into FILE (FIRST a multiple of N).
read_to() {
	dd if=/dev/mapper/c of="$1" bs=$(($3 * rs * 512)) skip=$(($2 / $3)) count=1 \
		iflag=direct status=none
}
r0=$(src_read)
read_to "$TEST_TMP/read600" 600 8 || fail "reading regions 600-607 failed"
copied() { dmsetup suspend c && dumped_has "$1" "$2"; rc=$?; dmsetup resume c; return $rc; }
# (Polling the destination, then the metadata once: a suspend waits for
# the throttled pass.)
on_dest() { cmp_dev "$dest" "$src" $(($2 * rs)) $(($1 * rs)) $(($1 * rs)) >/dev/null 2>&1; }
wait_for 30 on_dest 600 8 || fail "regions 600-607 were not copied after being read: $(clone_status c)"
copied 600 8 || fail "regions 600-607 are on the destination, not marked copied"
r1=$(src_read) h=$(clone_hydrated c)
# The read, and the pass's regions (those hydrated but the 8, and two in
# flight at most): a second read of the 8 regions would pass this.
[ $((r1 - r0)) -le $(((8 + h - 8 + 2) * rs)) ] ||
	fail "the source read $((r1 - r0)) sectors for a read of $((8 * rs)) (pass: $((h - 8)) regions)"
cmp "$TEST_TMP/read600" <(dd if="$src" bs=$((8 * rs * 512)) skip=$((600 / 8)) count=1 iflag=direct status=none) ||
	fail "the read of regions 600-607 did not return the source's data"
log "  ... a read of part of a region still copies it"
dd_read /dev/mapper/c $((700 * rs + 8)) 8 >/dev/null || fail "reading in region 700 failed"
wait_for 30 on_dest 700 1 || fail "region 700 was not copied after a read of part of it"
copied 700 1 || fail "region 700 is on the destination, not marked copied"
log "  ... all zeroes: written as zeroes"
read_regions 800 8
wait_for 30 on_dest 800 8 || fail "regions 800-807 (zeroes) were not copied after being read"
copied 800 8 || fail "regions 800-807 are on the destination, not marked copied"
dm_remove c

log "  ... a write to a region being read waits for the read's copy"
dm_create slower "$(delay_table "$src" 1500)"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
table=$(clone_table "$meta" "$dest" /dev/mapper/slower $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"
# 16 regions in flight: the read's (the pass holds one at most).
read_to "$TEST_TMP/read304" 304 16 &
rpid=$!
in_flight_16() { [ "$(clone_hydrating c)" -ge 16 ]; }
wait_for 10 in_flight_16 || fail "the read of regions 304-319 never held them: $(clone_status c)"
# A write of all of region 307: without the read holding it, it would
# go straight to the destination, and the read's copy over it.
dd_write /dev/mapper/c $((307 * rs)) $rs 5 >/dev/null || fail "the write to region 307 failed"
wait "$rpid" || fail "the read of regions 304-319 failed"
cmp "$TEST_TMP/read304" <(dd if="$src" bs=$((16 * rs * 512)) skip=$((304 / 16)) count=1 iflag=direct status=none) ||
	fail "the read of regions 304-319 did not return the source's data"
wait_for 30 copied 304 16 || fail "regions 304-319 were not copied"
check_pattern /dev/mapper/c 5 $((307 * rs)) $rs || fail "the write to region 307 is lost on the clone"
check_pattern "$dest" 5 $((307 * rs)) $rs || fail "the write to region 307 is lost on the destination"
cmp_dev "$dest" "$src" $((3 * rs)) $((304 * rs)) $((304 * rs)) || fail "regions 304-306 differ"
cmp_dev "$dest" "$src" $((12 * rs)) $((308 * rs)) $((308 * rs)) || fail "regions 308-319 differ"
dm_remove c
dm_remove slower

log "  ... a failed read of whole regions leaves them uncopied and free"
# Regions 400-415 of the source unreadable; the pass (throttled) far below.
dm_create sbad "0 $((400 * rs)) linear $src 0
$((400 * rs)) $((16 * rs)) error
$((416 * rs)) $(((1024 - 416) * rs)) linear $src $((416 * rs))"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
table=$(clone_table "$meta" "$dest" /dev/mapper/sbad $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"
read_to /dev/null 400 8 2>/dev/null && fail "a read of regions 400-407 (unreadable) succeeded"
pass_only() { [ "$(clone_hydrating c)" -le 1 ]; }
wait_for 10 pass_only || fail "the failed read's regions stay in flight: $(clone_status c)"
# A whole region written there goes to the destination, held by nothing
# (a region the failed read still held would keep it waiting).
dd_write /dev/mapper/c $((401 * rs)) $rs 6 >/dev/null &
wpid=$!
write_done() { ! kill -0 "$wpid" 2>/dev/null; }
wait_for 10 write_done || fail "a write to region 401 waits after the failed read: $(clone_status c)"
wait "$wpid" || fail "the write to region 401 failed"
check_pattern /dev/mapper/c 6 $((401 * rs)) $rs || fail "the write to region 401 is lost"
copied 401 1 || fail "region 401, written whole, is not marked copied"
copied 400 1 && fail "region 400, whose read failed, is marked copied"
dm_remove c
dm_remove sbad
echo "$thr0" >"$thr"

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
wait_for 30 hydrated_is c 9 || fail "prefetch did not copy its 9 regions: $(clone_status c)"
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
wait_for 30 hydrated_is c 13 || fail "the prefetch did not go on: $(clone_status c)"

log "several ranges in one message: all of them, or none"
dm_message c prefetch $((600 * rs)) $rs $((620 * rs + 3)) $((rs + 1))	# 600, 620-621
wait_for 30 hydrated_is c 16 || fail "a prefetch of two ranges did not copy regions 600, 620 and 621: $(clone_status c)"
pairs257=$(for ((i = 0; i < 257; i++)); do printf '%d %d ' $((i * 2 * rs)) $rs; done)
for m in "$((300 * rs)) 8 $len 8" "$((300 * rs)) 8 x 8" "$((300 * rs)) 8 $((301 * rs))" "$pairs257"; do
	# shellcheck disable=SC2086 # the message's words
	if dmsetup message c 0 prefetch $m 2>/dev/null; then
		fail "prefetch ${m:0:60}... was accepted"
	fi
done
sleep 1
assert_eq "$(clone_hydrated c)" 16 "hydrated count after the refused messages (nothing of them queued)"
# With the threshold at 0 the ranges wait: 1023 single regions that do
# not touch the one before them (even regions, then odd ones), in
# messages of 256, leave room for one more.
dm_message c hydration_threshold 0
order=$(for ((i = 0; i < 512; i++)); do echo $((2 * i)); done; for ((i = 0; i < 511; i++)); do echo $((2 * i + 1)); done)
mapfile -t regs <<<"$order"
for ((i = 0; i < 1023; i += 256)); do
	m=$(for r in "${regs[@]:i:256}"; do printf '%d %d ' $((r * rs)) $rs; done)
	# shellcheck disable=SC2086 # the message's words
	dmsetup message c 0 prefetch $m || fail "prefetch of ranges $i to $((i + 255)) of 1023 refused"
done
if dmsetup message c 0 prefetch $((1023 * rs)) $rs $((1019 * rs)) $rs 2>/dev/null; then
	fail "two ranges were queued where one has room"
fi
dm_message c prefetch $((1023 * rs)) $rs
if dmsetup message c 0 prefetch $((1019 * rs)) $rs 2>/dev/null; then
	fail "a range was queued behind 1024 waiting"
fi
# One that touches the last range waiting joins it.
dm_message c prefetch $((1022 * rs)) $rs
assert_eq "$(clone_hydrated c)" 16 "hydrated count with threshold 0"
# (A threshold of 1024 regions: one-region copies go many at a time.)
dm_message c hydration_threshold 1024
wait_for 60 hydrated_is c 1024 || fail "the 1024 prefetched ranges were not all copied: $(clone_status c)"
cmp_dev /dev/mapper/c "$src" || fail "the clone differs from the source"
dm_remove c
dm_remove slow
