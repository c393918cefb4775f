#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Loading a table over metadata that the live table keeps committing. A
# new table for a clone is constructed while the old one is live (every
# reload, every grow), and reads the committed bitset while the old
# table's commits free and reuse metadata blocks. The clone (4 KiB
# regions, 300 bitset array blocks, about 37 GiB over a zero source) sits
# on the smallest metadata device that holds it, so that freed blocks are
# reused at once, and fio writes single regions at random all over it
# (most array blocks change between two periodic commits). Meanwhile the
# same table is loaded into the inactive slot and cleared, again and
# again: every load must succeed (a load that reads a block the live
# table has reused must not fail as "corrupt"), the live table stays rw,
# and fio's read-back verification passes; then a swap to a loaded table
# works, the hydrated count is what fio wrote and clone_check finds the
# metadata sound.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern fio clone_check timeout

rs=8						# 4 KiB regions
per_block=$((509 * 64))				# regions per bitset array block
nr=$((300 * per_block))
array=$(((nr / 64 + 508) / 509))
min_blocks=$((array + array / 64 + 128))
# On a slow kernel, half the writes: fewer loads race them (about ten on
# the debug kernel), at the same rate of commits.
nios=${RELOAD_COMMIT_WRITES:-16000}
! slow_kernel || nios=${RELOAD_COMMIT_WRITES:-8000}
loads=${RELOAD_COMMIT_LOADS:-40}

dm_create zsrc "0 $((nr * rs)) zero"
dest=$(mkdev_sectors dest $((nr * rs)))
meta=$(mkdev_sectors meta $((min_blocks * 8)))
table=$(clone_table "$meta" "$dest" /dev/mapper/zsrc $rs 1 no_hydration)
dm_create c "$table"
clone=/dev/mapper/c

fio_job() { spread_fio $clone "$nr" "$nios" "$@"; }
fio_job --output="$TEST_TMP/fio.out" &
fpid=$!
on_exit "kill -9 $fpid 2>/dev/null; wait $fpid 2>/dev/null"
written() { clone_written c; }
written_more_than() { [ "$(written)" -gt "$1" ]; }
wait_for 60 written_more_than 500 || fail "fio does not get on: $(clone_status_noflush c)"

log_mark
ok=0 failed=0
for ((i = 1; i <= loads; i++)); do
	kill -0 $fpid 2>/dev/null || break
	if timeout 120 dmsetup load c --table "$table" 2>"$TEST_TMP/err"; then
		ok=$((ok + 1))
	else
		failed=$((failed + 1))
		log "load $i failed: $(tr '\n' ' ' <"$TEST_TMP/err")"
	fi
	dmsetup clear c
	# (--noflush: a plain status query would commit between the loads.)
	[ "$(clone_status_noflush c | awk '{ print $NF }')" = rw ] ||
		fail "the live table left rw: $(clone_status_noflush c)"
done
log "$ok loads succeeded, $failed failed, while fio wrote ($(written) regions written)"
[ $((ok + failed)) -ge 5 ] || fail "only $((ok + failed)) loads while fio ran: the test proves little"
if [ "$failed" -gt 0 ]; then
	log_since_mark | grep -E 'clone|array|block manager' | head -n 12
	fail "$failed of $((ok + failed)) loads of the same table failed while the live table committed"
fi
rc=0
wait $fpid || rc=$?
[ $rc = 0 ] || { cat "$TEST_TMP/fio.out"; fail "fio failed (status $rc)"; }
dm_swap c "$table"
dmsetup status c >/dev/null
assert_eq "$(clone_mode c)" rw "mode"
assert_eq "$(clone_hydrated c)" "$nios" "hydrated regions: those fio wrote"
dm_remove c
clone_check "$meta" >/dev/null 2>&1 || fail "clone_check: $(clone_check "$meta" 2>&1 | head -n 5)"
dm_create c "$table"
fio_job --verify_only --output="$TEST_TMP/fio-verify.out" ||
	{ cat "$TEST_TMP/fio-verify.out"; fail "fio's verification of the reopened clone failed"; }
dm_remove c
dm_remove zsrc
