#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# `dmsetup status --noflush` answers while the metadata device hangs. The
# metadata sits on a linear table that the test suspends mid-hydration
# (its I/O queues, as on a dead iSCSI path); a write with fsync makes the
# clone commit, and the commit waits on that device. Status queries with
# --noflush (what monitoring polls) must still return, several times, a
# line in the documented grammar, mode rw, with the flush still stuck.
# Once the metadata device is back, the flush completes, a committing
# status query works and the data reads back byte-exact.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 1024 regions
dest=$(mkdev dest 16)
metaloop=$(mkdev meta 4)
ref=$(mkdev ref 16)
fill_pattern "$src" 1
fill_pattern "$ref" 1
dm_create slowsrc "$(delay_table "$src" 20)"
dm_create mlin "$(linear_table "$metaloop")"
clone=/dev/mapper/c
dm_create c "$(clone_table /dev/mapper/mlin "$dest" /dev/mapper/slowsrc $rs 0 4 \
	hydration_threshold 1 hydration_batch_size 1)"
wait_for 60 hydrated_at_least c 20 || fail "no background copying: $(clone_status c)"

resumed=0
resume_meta() {
	[ $resumed = 1 ] && return 0
	dmsetup resume mlin || fail "cannot resume the metadata device"
	resumed=1
}
on_exit resume_meta

log "the metadata device hangs (suspended, its I/O queued)"
dmsetup suspend mlin || fail "cannot suspend the metadata device"
# A durable write into an unhydrated region: its flush waits for a commit,
# and the commit for the metadata device.
dmclone-pattern write "$clone" 2 $((1000 * rs)) $rs >"$TEST_TMP/writer.log" 2>&1 &
writer=$!
dmclone-pattern write "$ref" 2 $((1000 * rs)) $rs
# The writer must be stuck, not done: give it time to get stuck, which
# cannot be polled for (nothing shows a commit waiting).
for _ in $(seq 20); do
	kill -0 $writer 2>/dev/null || break
	sleep 0.1
done
kill -0 $writer 2>/dev/null ||
	fail "the durable write completed with the metadata device suspended: $(cat "$TEST_TMP/writer.log")"

# status_within SECONDS: one `dmsetup status --noflush c` that must answer
# within SECONDS; its clone line in STATUS.
status_within() {
	local out=$TEST_TMP/status p i
	clone_status_noflush c >"$out" 2>&1 &
	p=$!
	for ((i = 0; i < $1 * 10; i++)); do
		kill -0 $p 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 $p 2>/dev/null; then
		resume_meta
		wait $p
		fail "dmsetup status --noflush did not answer within $1 s while a commit waits on the metadata device"
	fi
	wait $p || fail "dmsetup status --noflush failed: $(cat "$out")"
	STATUS=$(cat "$out")
}

for i in 1 2 3; do
	status_within 10
	parse_status "$STATUS" || fail "status --noflush with a hung metadata device"
	assert_eq "$ST_MODE" rw "mode with a hung metadata device"
	log "status --noflush $i: $STATUS"
done
kill -0 $writer 2>/dev/null ||
	fail "the durable write completed with the metadata device suspended"

log "the metadata device is back"
resume_meta
wait $writer || fail "the durable write failed once the metadata device was back: $(cat "$TEST_TMP/writer.log")"
line=$(clone_status c)
parse_status "$line" || fail "status after the metadata device came back"
assert_eq "$ST_MODE" rw "mode after the metadata device came back"
log "status: $line"
cmp_dev $clone "$ref" || fail "the clone differs from the reference"
log "byte-exact"
