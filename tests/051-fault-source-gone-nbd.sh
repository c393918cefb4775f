#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, source gone: the source is an NBD export (nbd-server on
# the guest's loopback, nbd-client /dev/nbd0, dm-delay on top for a
# steady copy rate) and nbd-server is killed (SIGKILL) in the middle of
# background hydration. Then: every user I/O returns within its timeout;
# reads of hydrated regions are byte-exact, reads of unhydrated regions
# fail with EIO, a whole-region write succeeds; the mode stays rw with no
# dm event; no copy stays in flight; the kernel log stays bounded over
# 20 s; the clone is removed promptly and dm-clone unloads. The server
# comes back, nbd-client attaches again (/dev/nbd1), and a new clone over
# the same metadata completes byte-exact.
# timeout: 200
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-delay
need_module nbd
need_cmd nbd-server nbd-client ip
fault_setup --no-src				# 1024 regions of 16 KiB (rs=32)

img=$TEST_TMP/src.img				# 16 MiB, 32768 sectors
truncate -s 16M "$img"
fill_pattern "$img" 1 0 32768 >/dev/null
ip link set lo up
cat >"$TEST_TMP/nbd.conf" <<EOF
[generic]
user = root
group = root
[src]
exportname = $img
readonly = true
EOF
pidf=$TEST_TMP/nbd.pid

start_server() {
	rm -f "$pidf"
	nbd-server -C "$TEST_TMP/nbd.conf" -p "$pidf" >>"$TEST_TMP/nbd-server.log" 2>&1 ||
		fail "nbd-server failed: $(cat "$TEST_TMP/nbd-server.log")"
	wait_for 10 test -s "$pidf" || fail "nbd-server wrote no pid file"
}
# kill_server: SIGKILL every nbd-server process: the server and the child
# serving our connection (only this test runs one). Processes come and go
# while /proc is read: one gone before its name is read is passed over.
kill_server() {
	local d name
	for d in /proc/[0-9]*; do
		name=$(cat "$d/comm" 2>/dev/null) || continue
		if [ "$name" = nbd-server ]; then
			kill -9 "${d#/proc/}" 2>/dev/null || true
		fi
	done
}
# attach DEV: connect DEV to the server. (nbd-client's output goes to a
# file: a redirection of `timed` would also swallow its hang message.)
attach() {
	local dev=$1 rc=0
	timeout -k 5 30 nbd-client 127.0.0.1 "$dev" -N src -b 512 -t 10 \
		>"$TEST_TMP/nbd-client.log" 2>&1 || rc=$?
	[ $rc = 0 ] || fail "nbd-client $dev failed or hung (status $rc): $(cat "$TEST_TMP/nbd-client.log")"
	wait_for 10 eval '[ "$(blockdev --getsz "$dev" 2>/dev/null || echo 0)" = 32768 ]' ||
		fail "$dev did not come up with 32768 sectors"
}
# detach DEV: disconnect DEV, whatever state its dead connection left.
detach() { timeout -k 5 30 nbd-client -d "$1" >/dev/null 2>&1 || true; }
on_exit "detach /dev/nbd0; detach /dev/nbd1; kill_server"

start_server
attach /dev/nbd0
dm_create sdelay "$(delay_table /dev/nbd0 20)"
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" /dev/mapper/sdelay $rs 0 4 hydration_threshold 2 hydration_batch_size 1)
dm_create c "$table"
wait_for 60 hydrated_at_least c 100 || fail "no background copying: $(clone_status c)"
ref_write $clone "$ref" 2 $((4 * rs + 2)) 9
log "before the server dies: $(clone_status c)"
ev0=$(event_nr c)

log_mark
t_fail=$SECONDS
kill_server
log "nbd-server killed"

wait_for 60 clone_idle c || fail "copies stay in flight with the server gone: $(clone_status_noflush c)"
h=$(clone_hydrated c)
log "idle: $(clone_status c)"
[ "$h" -lt $((nr - 50)) ] || fail "hydration got too far to test ($h of $nr)"
assert_mode c rw "mode with the source gone"

good=$(((h - 3) * rs))
cmp_dev $clone "$ref" $good || fail "reads of hydrated regions differ from the reference"
expect_eio_read $clone $((1000 * rs)) 8 "unhydrated region 1000"
expect_eio_read $clone $(((h + 10) * rs)) $((2 * rs)) "unhydrated regions $((h + 10))-$((h + 11))"
expect_ok_write $clone $((1010 * rs)) $rs 4 "whole-region write to unhydrated region 1010"
fill_pattern "$ref" 4 $((1010 * rs)) $rs >/dev/null
check_pattern $clone 4 $((1010 * rs)) $rs || fail "region 1010 does not read back"
expect_eio_write $clone $((1011 * rs + 1)) 2 5 "partial write to unhydrated region 1011"
timed 30 dmsetup status c >/dev/null || fail "status failed"

left=$((20 - (SECONDS - t_fail)))
[ $left -le 0 ] || sleep $left
log_since_mark | grep nbd | sed -n 1,3p
assert_no_flood "$((SECONDS - t_fail)) s with the source gone" 60
assert_no_event c "$ev0" "dm events with the source gone"
assert_mode c rw "mode after 20 s with the source gone"

log "remove the clone and the dead source"
remove_and_unload c
dm_remove sdelay
detach /dev/nbd0

log "the server comes back: a new clone over the same metadata completes"
need_module
start_server
# On another NBD device: /dev/nbd0 may still be tearing down its dead
# connection (a reattach to it once hung in nbd-client for 30 s).
attach /dev/nbd1
dm_create sdelay "$(delay_table /dev/nbd1 0)"
clone_create c "$meta" "$dest" /dev/mapper/sdelay $rs 0 4 hydration_threshold 256 hydration_batch_size 16
assert_mode c rw "mode of the new clone"
[ "$(clone_hydrated c)" -ge "$h" ] || fail "the new clone lost progress: $(clone_status c), had $h"
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference"
remove_and_unload c
log "ok"
