#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix: a write covering a whole unhydrated region is that
# region's hydration; if the clone turns read-only while it is in flight,
# its region cannot be marked, so the write must fail (EIO), not succeed
# and then read back as the source's data. The destination holds writes
# for 5 s (dm-delay; reads and flushes pass); the write is sent; the
# metadata's writes start failing (dm-flakey) and a discard plus a status
# query force a commit that fails: read-only. The write, still held, must
# then fail with EIO, and the region reads the source's data (it was
# never recorded hydrated) in both the read-only clone and a new one.
# timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module
need_module dm-delay
need_module dm-flakey
need_cmd dmclone-pattern dd blkdiscard timeout

rs=16						# 8 KiB regions
src=$(mkdev src 4)				# 8192 sectors, 512 regions
destloop=$(mkdev dest 4)
metaloop=$(mkdev meta 4)
fill_pattern "$src" 1
n=$(dev_sectors "$destloop")
dm_create dly "0 $n delay $destloop 0 0 $destloop 0 5000 $destloop 0 0"
dm_create mflk "$(flakey_table "$metaloop" up)"
table=$(clone_table /dev/mapper/mflk /dev/mapper/dly "$src" $rs 2 no_hydration no_discard_passdown)
dm_create c "$table"
clone=/dev/mapper/c
clone_status c >/dev/null			# commit the fresh metadata

log "a whole-region write to unhydrated region 100, held 5 s at the destination"
dmclone-pattern gen 5 $((100 * rs)) $rs >"$TEST_TMP/w"
t0=$SECONDS
dd if="$TEST_TMP/w" of=$clone bs=$((rs * 512)) count=1 seek=100 oflag=direct \
	conv=notrunc status=none >"$TEST_TMP/w.out" 2>&1 &
writer=$!

log_mark
dm_swap mflk "$(flakey_table "$metaloop" error_writes)"
# Regions 200-209 marked by the discard: a commit has work, and fails.
blkdiscard -o $((200 * rs * 512)) -l $((10 * rs * 512)) $clone || fail "discard failed"
dmsetup status c >/dev/null 2>&1 || true
mode_is_ro() { [ "$(clone_status_noflush c | awk '{ print $NF }')" = ro ]; }
wait_for 10 mode_is_ro || fail "the clone did not turn read-only: $(clone_status_noflush c)"
kill -0 $writer 2>/dev/null ||
	fail "the write returned within $((SECONDS - t0)) s, before the clone turned read-only: cannot test"
log "read-only after $((SECONDS - t0)) s, with the write still held"

writer_done() { ! kill -0 $writer 2>/dev/null; }
wait_for 30 writer_done || fail "the whole-region write hangs"
rc=0
wait $writer || rc=$?
[ $rc != 0 ] || fail "the whole-region write succeeded although its region could not be recorded (it now reads: $(identify_dev $clone $((100 * rs)) $rs | tr '\n' ' '))"
assert_match "$(cat "$TEST_TMP/w.out")" "Input/output error" "error of the whole-region write"
check_pattern $clone 1 $((100 * rs)) $rs >/dev/null ||
	fail "region 100 does not read the source's data after the failed write"

log "a new clone over the healthy metadata"
dm_remove c
dm_swap mflk "$(flakey_table "$metaloop" up)"
dm_create c "$table"
assert_eq "$(clone_mode c)" rw "mode of the new clone"
check_pattern $clone 1 $((100 * rs)) $rs >/dev/null ||
	fail "region 100 does not read the source's data in the new clone"
log "ok"
