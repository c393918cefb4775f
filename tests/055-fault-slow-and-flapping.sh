#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, slowness and intermittent failure. (1) Every device slow
# (dm-delay: source 200 ms, destination 50 ms, metadata 100 ms per I/O)
# during hydration and user I/O: reads of unhydrated regions, partial
# writes that need a copy, fsync, status, suspend/resume all return
# within their timeouts, the mode stays rw with no event; with the delays
# removed (the delay tables reloaded under the live clone) hydration
# completes byte-exact and raises its completion event. (2) A flapping
# source (dm-flakey: 1 s up, 1 s failing every I/O) during hydration and
# user reads: user reads either succeed byte-exact or fail with EIO,
# never return wrong data or hang; the mode stays rw; the kernel log
# stays bounded; once the source is steady a reload of the same table
# completes byte-exact. Removable; dm-clone unloads.
# timeout: 200
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-delay
need_module dm-flakey
fault_setup					# 1024 regions of 16 KiB (rs=32)
destloop=$dest metaloop=$meta

log "(1) everything slow"
dm_create sd "$(delay_table "$src" 200)"
dm_create dd_ "$(delay_table "$destloop" 50)"
dm_create md "$(delay_table "$metaloop" 100)"
clone=/dev/mapper/c
table=$(clone_table /dev/mapper/md /dev/mapper/dd_ /dev/mapper/sd $rs 0 4 hydration_threshold 4 hydration_batch_size 1)
dm_create c "$table"
ev0=$(event_nr c)
t=$SECONDS
expect_ok_read $clone $((900 * rs)) 8 "read of unhydrated region 900"
cmp_dev $clone "$ref" 64 $((901 * rs)) $((901 * rs)) || fail "slow read differs from the source"
ref_write $clone "$ref" 2 $((902 * rs + 3)) 4
expect_ok_write $clone $((903 * rs)) $rs 3 "whole-region write"
fill_pattern "$ref" 3 $((903 * rs)) $rs >/dev/null
timed 30 sync $clone || fail "fsync of the slow clone failed"
timed 30 dmsetup status c >/dev/null || fail "status failed"
timed 30 dmsetup suspend c || fail "suspend failed"
timed 30 dmsetup resume c || fail "resume failed"
log "user I/O on slow devices took $((SECONDS - t)) s: $(clone_status c)"
assert_mode c rw "mode on slow devices"
assert_no_event c "$ev0" "dm events on slow devices"
[ "$(clone_hydrated c)" -lt "$nr" ] || fail "hydration finished too early"
log "delays removed under the live clone"
dm_swap sd "$(delay_table "$src" 0)"
dm_swap dd_ "$(delay_table "$destloop" 0)"
dm_swap md "$(delay_table "$metaloop" 0)"
dm_message c hydration_threshold 256
dm_message c hydration_batch_size 16
wait_hydrated c 120
[ "$(event_nr c)" -gt "$ev0" ] || fail "no dm event on completion"
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$destloop" "$ref" || fail "destination differs from the reference"
dm_remove c

log "(2) a flapping source"
dm_remove dd_
dm_remove md
fill_pattern "$destloop" 9 >/dev/null
fill_pattern "$ref" 1 >/dev/null
dd if=/dev/zero of="$metaloop" bs=4096 count=1 oflag=direct conv=notrunc status=none
dm_swap sd "$(delay_table "$src" 10)"
dm_create sflk "$(flakey_flap_table /dev/mapper/sd 1 1)"
table=$(clone_table "$metaloop" "$destloop" /dev/mapper/sflk $rs 0 4 hydration_threshold 2 hydration_batch_size 1)
dm_create c "$table"
ev0=$(event_nr c)
log_mark
t0=$SECONDS ok=0 eio=0
while [ $((SECONDS - t0)) -lt 15 ]; do
	r=$((RANDOM % nr))
	if out=$(timed 30 dd if=$clone of="$TEST_TMP/r" bs=$((rs * 512)) count=1 \
		skip=$r iflag=direct status=none 2>&1); then
		ok=$((ok + 1))
		dmclone-pattern gen 1 $((r * rs)) $rs | cmp - "$TEST_TMP/r" ||
			fail "a read of region $r from a flapping source returned wrong data"
	else
		assert_match "$out" "Input/output error" "error of a read of region $r from a flapping source"
		eio=$((eio + 1))
	fi
	sleep 0.1
done
log "15 s of a flapping source: $ok reads ok, $eio EIO: $(clone_status c)"
assert_no_flood "15 s of a flapping source" 60
assert_mode c rw "mode with a flapping source"
assert_no_event c "$ev0" "dm events with a flapping source"
log "the source is steady again; reload the same table"
dm_swap sflk "$(flakey_table /dev/mapper/sd up)"
dm_swap c "$table"
dm_message c hydration_threshold 256
dm_message c hydration_batch_size 16
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$destloop" "$ref" || fail "destination differs from the reference"
remove_and_unload c
log "ok"
