#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, source: the whole source starts failing every read
# (dm-flakey, permanently down) in the middle of background hydration,
# with user I/O going on. What a user notices: reads of hydrated regions
# stay byte-exact, reads of unhydrated regions fail with EIO, a write
# covering a whole unhydrated region succeeds and reads back, a partial
# write to an unhydrated region fails with EIO; every I/O returns within
# its timeout; the mode stays rw and no dm event is raised (no mode
# change, no completion); nothing stays in flight; over 20 s of failure
# the kernel log gets a bounded number of clone lines (the retry back-off
# and the rate limit), which name the running count of failed copies;
# suspend/resume and a status query return. Then the source heals: a
# reload of the same clone table goes on to byte-exact completion; the
# device is removed and dm-clone unloads.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-delay
need_module dm-flakey
fault_setup					# 1024 regions of 16 KiB (rs=32)
dm_create sdelay "$(delay_table "$src" 20)"
dm_create sflk "$(flakey_table /dev/mapper/sdelay up)"
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" /dev/mapper/sflk $rs 0 4 hydration_threshold 2 hydration_batch_size 1)
dm_create c "$table"

wait_for 60 hydrated_at_least c 100 || fail "no background copying: $(clone_status c)"
ref_write $clone "$ref" 2 $((5 * rs + 3)) 7		# a hydrated region
ref_write $clone "$ref" 3 $((950 * rs + 1)) 4		# partial, unhydrated: copied first
log "before the failure: $(clone_status c)"
ev0=$(event_nr c)

log_mark
t_fail=$SECONDS
dm_swap sflk "$(flakey_dead_table /dev/mapper/sdelay)"
log "the source fails every I/O from now on"

wait_for 60 clone_idle c || fail "copies stay in flight on a dead source: $(clone_status_noflush c)"
h=$(clone_hydrated c)
log "idle: $(clone_status c)"
[ "$h" -lt $((nr - 50)) ] || fail "hydration got too far to test ($h of $nr)"
assert_mode c rw "mode with a failing source"

# Reads: hydrated regions (0 .. h-3 at least: 2 copies in flight at a
# time, in order) byte-exact; unhydrated ones EIO.
good=$(((h - 3) * rs))
cmp_dev $clone "$ref" $good || fail "reads of hydrated regions differ from the reference"
check_pattern $clone 3 $((950 * rs + 1)) 4 || fail "the write to region 950 does not read back"
expect_eio_read $clone $((1000 * rs)) $rs "unhydrated region 1000"
expect_eio_read $clone $(((nr - 1) * rs + 5)) 3 "unhydrated last region"
expect_eio_read $clone $(((h + 20) * rs)) $((4 * rs)) "unhydrated regions $((h + 20))-$((h + 23))"

# Writes.
expect_ok_write $clone $((1001 * rs)) $rs 4 "whole-region write to unhydrated region 1001"
fill_pattern "$ref" 4 $((1001 * rs)) $rs >/dev/null
check_pattern $clone 4 $((1001 * rs)) $rs || fail "whole-region write to region 1001 does not read back"
expect_eio_write $clone $((1002 * rs + 2)) 5 5 "partial write to unhydrated region 1002"
expect_ok_write $clone $((7 * rs + 1)) 2 6 "write to hydrated region 7"
fill_pattern "$ref" 6 $((7 * rs + 1)) 2 >/dev/null

# Suspend, resume, status: all return; the clone stays rw.
timed 30 dmsetup suspend c || fail "suspend with a failing source failed"
timed 30 dmsetup resume c || fail "resume with a failing source failed"
timed 30 dmsetup status c >/dev/null || fail "status with a failing source failed"
assert_mode c rw "mode after suspend/resume with a failing source"

# 20 s of permanent failure: a bounded, informative log.
left=$((20 - (SECONDS - t_fail)))
[ $left -le 0 ] || sleep $left
assert_no_flood "$((SECONDS - t_fail)) s of a failing source" 60
log_grep 'failed copies so far: [0-9]' ||
	fail "no 'failed copies so far: N' line in the kernel log"
log_grep 'region copies failed so far; retrying in [0-9]* s' ||
	fail "no 'retrying in S s' line in the kernel log"
assert_no_event c "$ev0" "dm events on a source failure (no mode change)"
assert_mode c rw "mode after 20 s of failure"
wait_for 60 clone_idle c || fail "copies stay in flight: $(clone_status c)"
assert_eq "$(clone_hydrated c)" $((h + 1)) "hydrated regions (no progress but the whole-region write)"
cmp_dev $clone "$ref" $good || fail "hydrated regions differ from the reference after 20 s of failure"

log "the source heals; reload the same table"
dm_swap sflk "$(flakey_table /dev/mapper/sdelay up)"
dm_swap c "$table"
assert_mode c rw "mode after the reload"
dm_message c hydration_threshold 256
dm_message c hydration_batch_size 16
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference"
remove_and_unload c
log "ok"
