#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A flush that waited behind another commit still flushes the destination
# after the writes it covers. The destination is a dm-log-writes device
# over a dm-delay that holds flushes for 3 s. A status query commits (a
# region was just hydrated) and holds the commit lock while the
# destination flushes; meanwhile a write to that hydrated region goes to
# the destination and an fsync of the clone waits behind the commit. When
# the fsync returns, the log is marked: replayed up to that mark, the
# destination must hold the write. (A commit that found nothing left to
# commit once the other one was over used to complete the flush without
# flushing the destination: the write reached the log only at removal.)
# timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_module dm-log-writes
need_cmd dmclone-pattern dmclone-replay dd sync

rs=16					# 8 KiB regions
dsz=4096				# destination: 2 MiB, 256 regions
src=$(mkdev src 2)
meta=$(mkdev meta 4)
logdev=$(mkdev log 32)
# Loop devices, not brd: brd has no write cache, so flushes to devices
# stacked on it would complete at once, above the delay.
ram0=$(mkdev dst 2)			# the logged destination
ram1=$(mkdev replay 2)			# the replay target
fill_pattern "$src" 1 >/dev/null
dd if=/dev/zero of="$logdev" bs=4096 count=1 oflag=direct conv=notrunc status=none

# Reads and writes pass at once, flushes wait 3 s.
dm_create dly "0 $dsz delay $ram0 0 0 $ram0 0 0 $ram0 0 3000"
dm_create lw "0 $dsz log-writes /dev/mapper/dly $logdev"
clone_create c "$meta" /dev/mapper/lw "$src" $rs 1 no_hydration
clone=/dev/mapper/c
clone_status c >/dev/null			# commits the fresh metadata

# write SEED: region 10, whole, O_DIRECT, no flush.
write_region() {
	dmclone-pattern gen "$1" $((10 * rs)) $rs |
		dd of=$clone bs=$((rs * 512)) count=1 seek=10 iflag=fullblock \
			oflag=direct conv=notrunc status=none || fail "write of seed $1 failed"
}

write_region 2					# hydrates region 10
log "a status query commits; the destination flush takes 3 s"
t0=$SECONDS
dmsetup status c >"$TEST_TMP/status.out" 2>&1 &
st=$!
# Nothing shows that the commit reached the flush: give it a moment (a
# commit of one region takes milliseconds); 2 s remain of its flush.
sleep 1
kill -0 $st 2>/dev/null || fail "the status query returned within 1 s: the flush was not held"
write_region 3					# to the destination at once
sync $clone || fail "fsync of the clone failed"
log "fsync returned after $((SECONDS - t0)) s"
dm_message lw mark after-fsync
wait $st || fail "status query failed: $(cat "$TEST_TMP/status.out")"

dm_remove c
dm_remove lw
dmclone-replay list "$logdev" --all | sed 's/^/  /'
dmclone-replay replay "$logdev" "$ram1" --to-mark after-fsync >/dev/null ||
	fail "replay to the mark failed"
if ! check_pattern "$ram1" 3 $((10 * rs)) $rs >/dev/null; then
	fail "the write was not on stable storage when its fsync returned (the destination holds: $(identify_dev "$ram1" $((10 * rs)) $rs | tr '\n' ' '))"
fi
log "the write was flushed before its fsync returned"
