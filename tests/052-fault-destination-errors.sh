#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, destination. (1) The destination's writes (and flushes)
# start failing (dm-flakey error_writes) in the middle of background
# hydration, with every region hydrated so far committed (copying paused
# for the switch): nothing waits for a commit, so no commit fails (a
# failed destination flush in a commit turns the clone read-only: see
# 057) and the clone stays rw with no dm event; copies fail (destination write
# error) and leave their regions unhydrated; every user I/O returns:
# reads stay byte-exact (hydrated regions from the destination, the rest
# from the source), writes fail with EIO (to a hydrated region, a partial
# or a whole-region write to an unhydrated one) and change nothing;
# nothing stays in flight; 20 s of failure leave a bounded kernel log.
# Then its reads fail too (flakey, no feature): reads of hydrated regions
# fail with EIO, unhydrated ones are still served from the source, still
# rw with no event. After the destination heals, a reload of the same table completes
# byte-exact (a failed whole-region write must not have been recorded as
# hydrated). (2) A destination with a bad range from the start (linear +
# error + linear): every other region hydrates, reads of the bad range
# are served from the source, writes there fail with EIO; with the range
# good again a reload completes byte-exact. The device is removed and
# dm-clone unloads.
# timeout: 200
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-delay
need_module dm-flakey
fault_setup					# 1024 regions of 16 KiB (rs=32)
destloop=$dest
dm_create sdelay "$(delay_table "$src" 20)"
dm_create dflk "$(flakey_table "$destloop" up)"
clone=/dev/mapper/c
table=$(clone_table "$meta" /dev/mapper/dflk /dev/mapper/sdelay $rs 0 4 hydration_threshold 2 hydration_batch_size 1)
dm_create c "$table"

log "(1) destination writes fail mid-hydration"
wait_for 60 hydrated_at_least c 100 || fail "no background copying: $(clone_status c)"
ref_write $clone "$ref" 2 $((5 * rs + 3)) 7
# Pause copying and commit what is hydrated: no copy in flight may end,
# and be marked, after the switch.
dm_message c disable_hydration
wait_for 60 clone_idle c || fail "copies stay in flight: $(clone_status_noflush c)"
clone_status c >/dev/null			# commit
ev0=$(event_nr c)
log_mark
t_fail=$SECONDS
dm_swap dflk "$(flakey_table "$destloop" error_writes)"
dm_message c enable_hydration
wait_for 60 clone_idle c || fail "copies stay in flight: $(clone_status_noflush c)"
h=$(clone_hydrated c)
log "idle: $(clone_status_noflush c)"
[ "$h" -lt $((nr - 50)) ] || fail "hydration got too far to test ($h of $nr)"
assert_mode c rw "mode with a failing destination"

cmp_dev $clone "$ref" || fail "reads differ from the reference with a failing destination"
expect_eio_write $clone $((5 * rs + 1)) 2 4 "write to hydrated region 5"
expect_eio_write $clone $((1000 * rs + 1)) 2 4 "partial write to unhydrated region 1000"
expect_eio_write $clone $((1001 * rs)) $rs 4 "whole-region write to unhydrated region 1001"
rc=0
timed 30 sync $clone || rc=$?
log "flush with a failing destination: status $rc"
cmp_dev $clone "$ref" || fail "failed writes changed what the clone reads"

left=$((20 - (SECONDS - t_fail)))
[ $left -le 0 ] || sleep $left
# At most the clone's limit for the per-copy lines (below), and 60 lines
# however short the phase: the phase lasts 20 s on 6.1 and a minute on
# the debug kernel.
el=$((SECONDS - t_fail))
assert_no_flood "$el s of destination failure" $((el > 50 ? 5 * (el / 5 + 2) : 60))
# The per-clone limit on the per-copy lines: 5 per 5 s (the kernel-wide
# DMERR_LIMIT alone would let 10 per 5 s through), windows not aligned
# with ours: one more.
el=$((SECONDS - t_fail))
n=$(log_since_mark | grep -c 'copying region [0-9]* failed')
log "$n 'copying region N failed' lines in $el s"
[ "$n" -le $((5 * (el / 5 + 2))) ] ||
	fail "$n 'copying region N failed' lines in $el s: more than the clone's 5 per 5 s"
log_grep 'destination write' || fail "no copy failure naming the destination in the kernel log"
assert_no_event c "$ev0" "dm events on a destination failure (no mode change)"
assert_mode c rw "mode after 20 s of destination failure"
wait_for 60 clone_idle c || fail "copies stay in flight: $(clone_status_noflush c)"
assert_eq "$(clone_hydrated c)" "$h" "hydrated regions while the destination fails"

log "the destination's reads fail too"
dm_swap dflk "$(flakey_dead_table "$destloop")"
expect_eio_read $clone $((5 * rs)) $rs "read of hydrated region 5 from a dead destination"
expect_ok_read $clone $((1000 * rs)) $rs "read of unhydrated region 1000 (from the source)"
cmp_dev $clone "$ref" $((20 * rs)) $((990 * rs)) $((990 * rs)) ||
	fail "unhydrated regions 990-1009 differ from the source with a dead destination"
assert_mode c rw "mode with a dead destination"
assert_no_event c "$ev0" "dm events with a dead destination"

log "the destination heals; reload the same table"
dm_swap dflk "$(flakey_table "$destloop" up)"
dm_swap c "$table"
dm_message c hydration_threshold 256
dm_message c hydration_batch_size 16
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$destloop" "$ref" || fail "destination differs from the reference"
dm_remove c

log "(2) a destination with a bad range from the start"
fill_pattern "$destloop" 9 >/dev/null
zero_meta() { dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct conv=notrunc status=none; }
zero_meta
fill_pattern "$ref" 1 >/dev/null
# Sectors 16400-17999 fail: regions 512 (from its 17th sector) to 562.
bs_=16400 bl_=1600
be_=$((bs_ + bl_))
first_bad=512 last_bad=562
nbad=$((last_bad - first_bad + 1))
dm_create dbad "0 $bs_ linear $destloop 0
$bs_ $bl_ error
$be_ $((32768 - be_)) linear $destloop $be_"
table2=$(clone_table "$meta" /dev/mapper/dbad "$src" $rs 0 4 hydration_threshold 64 hydration_batch_size 8)
ev0=""
log_mark
dm_create c "$table2"
ev0=$(event_nr c)
wait_for 60 hydrated_at_least c $((nr - nbad)) ||
	fail "hydration did not reach $((nr - nbad)) of $nr regions: $(clone_status c)"
wait_for 60 clone_idle c || fail "copies stay in flight: $(clone_status c)"
assert_eq "$(clone_hydrated c)" $((nr - nbad)) "hydrated regions with $nbad regions unwritable"
assert_mode c rw "mode with a bad destination range"
cmp_dev $clone "$ref" || fail "reads differ from the source (the bad range must be read from the source)"
expect_eio_write $clone $((530 * rs)) $rs 5 "whole-region write into the bad range"
expect_eio_write $clone $((540 * rs + 3)) 2 5 "partial write into the bad range"
expect_ok_write $clone $((600 * rs + 3)) 2 6 "write beside the bad range"
fill_pattern "$ref" 6 $((600 * rs + 3)) 2 >/dev/null
cmp_dev $clone "$ref" || fail "clone differs from the reference after the writes"
assert_no_flood "$nbad unwritable regions" 60
assert_no_event c "$ev0" "dm events with a bad destination range"

log "the bad range heals; reload"
dm_swap dbad "$(linear_table "$destloop")"
dm_swap c "$table2"
wait_hydrated c 60
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$destloop" "$ref" || fail "destination differs from the reference"
remove_and_unload c
log "ok"
