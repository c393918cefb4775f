#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, metadata, during user I/O (test 043 covers a metadata
# write failure during background hydration). (1) No background copying;
# the metadata's writes fail (dm-flakey error_writes); a user write that
# needs a region copied and then an fsync: the fsync (a commit) fails with
# EIO, the clone switches to `ro` and raises a dm event (a `dmsetup wait`
# started before returns); then reads are byte-exact (the unacknowledged
# write's region holds either the source's or the user's data), writes to
# hydrated regions work, writes to unhydrated regions fail with EIO.
# (2) The metadata fails every I/O, reads too (flakey with no feature):
# the first commit switches the clone to `ro` or, if the abort cannot
# reread the metadata, to `Fail` (status line `Fail`, every I/O fails);
# either way with a dm event, and nothing hangs. (3) Loading a clone on a
# metadata device whose reads fail is refused promptly. Each time the
# device is removable; with the metadata healthy a new clone opens the
# last commit and completes byte-exact; dm-clone unloads.
# timeout: 200
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-flakey
fault_setup					# 1024 regions of 16 KiB (rs=32)
metaloop=$meta
dm_create mflk "$(flakey_table "$metaloop" up)"
meta=/dev/mapper/mflk
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)

# finish_on_healthy_metadata H: remove the clone, heal the metadata, open
# a new clone on it: rw, H regions hydrated (the last commit), completes
# byte-exact.
finish_on_healthy_metadata() {
	dm_remove c
	dm_swap mflk "$(flakey_table "$metaloop" up)"
	dm_create c "$table"
	assert_mode c rw "mode of the clone on the healed metadata"
	assert_eq "$(clone_hydrated c)" "$1" "hydrated regions on the healed metadata (the last commit)"
	cmp_dev $clone "$ref" || fail "clone on the healed metadata differs from the reference"
	dm_message c hydration_threshold 256
	dm_message c hydration_batch_size 16
	dm_message c enable_hydration
	wait_hydrated c 120
	cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
	cmp_dev "$dest" "$ref" || fail "destination differs from the reference"
}

log "(1) metadata writes fail; a user write and fsync"
dm_create c "$table"
for r in 3 10 11 200; do
	ref_write $clone "$ref" 2 $((r * rs + 1)) 5
done
h=$(clone_hydrated c)
assert_eq "$h" 4 "hydrated regions after four partial writes"
ev0=$(event_nr c)
timed 60 dmsetup wait c "$ev0" >"$TEST_TMP/wait.out" 2>&1 &
wpid=$!
log_mark
dm_swap mflk "$(flakey_table "$metaloop" error_writes)"
out=$(io_write $clone $((500 * rs + 7)) 3 3) &&
	fail "write + fsync into unhydrated region 500 succeeded with failing metadata writes"
assert_match "$out" "Input/output error" "error of the fsync needing a commit"
assert_mode c ro "mode after a failed commit"
wait $wpid || fail "dmsetup wait did not return after the switch to read-only: $(cat "$TEST_TMP/wait.out")"
[ "$(event_nr c)" -gt "$ev0" ] || fail "no dm event on the switch to read-only"
log_since_mark | grep 'device-mapper: clone' | sed -n 1,5p
# Region 500: source or user data (the write was never acknowledged as
# durable); everything else byte-exact.
if ! check_pattern $clone 1 $((500 * rs)) $rs >/dev/null; then
	check_pattern $clone 3 $((500 * rs + 7)) 3 || fail "region 500 holds neither the source's nor the user's data"
	fill_pattern "$ref" 3 $((500 * rs + 7)) 3 >/dev/null
fi
cmp_dev $clone "$ref" || fail "reads differ from the reference in read-only mode"
expect_ok_write $clone $((10 * rs + 20)) 4 4 "write to hydrated region 10 in read-only mode"
fill_pattern "$ref" 4 $((10 * rs + 20)) 4 >/dev/null
expect_eio_write $clone $((700 * rs + 1)) 2 5 "partial write to unhydrated region 700 in read-only mode"
expect_eio_write $clone $((701 * rs)) $rs 5 "whole-region write to unhydrated region 701 in read-only mode"
cmp_dev $clone "$ref" || fail "clone differs from the reference after the writes in read-only mode"
h=$(clone_hydrated c)
finish_on_healthy_metadata "$h"

log "(2) the metadata fails all I/O"
dm_remove c
dd if=/dev/zero of="$metaloop" bs=4096 count=1 oflag=direct conv=notrunc status=none
fill_pattern "$dest" 9 >/dev/null
fill_pattern "$ref" 1 >/dev/null
dm_create c "$table"
for r in 3 10 11 200; do
	ref_write $clone "$ref" 2 $((r * rs + 1)) 5
done
ev0=$(event_nr c)
log_mark
dm_swap mflk "$(flakey_dead_table "$metaloop")"
out=$(io_write $clone $((500 * rs + 7)) 3 3) &&
	fail "write + fsync into region 500 succeeded with dead metadata"
log "the write + fsync: $out"
st=$(timed 30 dmsetup status --noflush c)
log "status: $st"
log_since_mark | grep 'device-mapper: clone' | sed -n 1,5p
[ "$(event_nr c)" -gt "$ev0" ] || fail "no dm event on the mode change"
mode=$(clone_status_noflush c | awk '{ print $NF }')
case "$mode" in
ro)
	log "read-only (the abort could reread the metadata)"
	cmp_dev $clone "$ref" 1000 || fail "reads differ from the reference in read-only mode"
	expect_eio_write $clone $((701 * rs + 1)) 2 5 "partial write to unhydrated region 701 in read-only mode"
	;;
Fail)
	assert_match "$st" "^0 32768 clone Fail$" "status line in fail mode"
	expect_eio_read $clone $((3 * rs)) 8 "read of hydrated region 3 in fail mode"
	expect_eio_read $clone $((800 * rs)) 8 "read of unhydrated region 800 in fail mode"
	expect_eio_write $clone $((3 * rs)) 2 5 "write to hydrated region 3 in fail mode"
	timed 30 dmsetup suspend c || fail "suspend in fail mode failed"
	timed 30 dmsetup resume c || fail "resume in fail mode failed"
	;;
*) fail "mode after the metadata died: $mode (expected ro or Fail)" ;;
esac
finish_on_healthy_metadata 4

log "(3) loading a clone on unreadable metadata is refused"
dm_remove c
dm_swap mflk "$(flakey_dead_table "$metaloop")"
t0=$SECONDS
rc=0
log_mark
# (dmsetup's output only is silenced: timed's own hang message must show.)
timed 60 sh -c 'dmsetup create c2 --table "$1" >/dev/null 2>&1' _ "$table" || rc=$?
if [ $rc = 0 ]; then
	dmsetup remove c2
	fail "a clone table over unreadable metadata was loaded"
fi
dmsetup remove c2 >/dev/null 2>&1 || true
log "refused in $((SECONDS - t0)) s: $(log_since_mark | sed -n 's/.*device-mapper: table: //p' | head -n 2)"
dmsetup info c2 >/dev/null 2>&1 && fail "device c2 exists"
dm_swap mflk "$(flakey_table "$metaloop" up)"
remove_and_unload
log "ok"
