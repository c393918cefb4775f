#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix: a destination flush fails during a commit. The destination
# may have lost any write since its last good flush, so the regions
# hydrated since the last commit are not trusted to hold their data: the
# commit is aborted, the clone goes read-only (dm event, the failure in
# the kernel log) and keeps the last committed record, in which every
# region's data was flushed. (1) While live: a region written and fsynced
# (committed) reads the written data; a region written after the last
# commit, whose flush failed, reads the source's data; the read-only mode
# holds once the destination is healthy. (2) At a reload: the old table's
# commit at suspend fails on the destination flush; the new table resumes
# with the same last committed record, rw. In both, hydration then
# completes byte-exact against the source with the committed writes.
# The destination is a dm-delay over a dm-flakey. Around each uncommitted
# write the dm-delay holds flushes (for minutes: no commit can carry the
# write to the metadata meanwhile, however slow the kernel), the dm-flakey
# below is switched to failing writes and flushes, and the held flushes
# are then let go (a suspend of the dm-delay sends them on) and fail.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module
need_module dm-flakey
need_module dm-delay
need_cmd dmclone-pattern dd timeout

rs=16						# 8 KiB regions
src=$(mkdev src 4)				# 8192 sectors, 512 regions
destloop=$(mkdev dest 4)
meta=$(mkdev meta 4)
ref=$(mkdev ref 4)
fill_pattern "$src" 1
fill_pattern "$ref" 1
dm_create dflk "$(flakey_table "$destloop" up)"
n=$(dev_sectors "$destloop")
# hold_flushes MS: the dm-delay holds flushes MS ms (0: passes them).
hold_flushes() {
	local d=/dev/mapper/dflk
	echo "0 $n delay $d 0 0 $d 0 0 $d 0 $1"
}
dm_create dly "$(hold_flushes 0)"
table=$(clone_table "$meta" /dev/mapper/dly "$src" $rs 1 no_hydration)
dm_create c "$table"
clone=/dev/mapper/c
FAULT_IO_TIMEOUT=30

# write_whole REGION SEED: a whole-region O_DIRECT write, no flush.
write_whole() {
	dd_write $clone $(($1 * rs)) $rs "$2" >/dev/null || fail "write to region $1 failed"
}

log "(1) a failed destination flush while live"
expect_ok_write $clone $((5 * rs)) $rs 5 "fsynced write to region 5"
fill_pattern "$ref" 5 $((5 * rs)) $rs >/dev/null
dm_swap dly "$(hold_flushes 600000)"
write_whole 6 6				# hydrated in core, not committed
# (A status query that does not commit.)
assert_eq "$(clone_status_noflush c | awk '{ print $4 }')" 2/512 "hydrated regions before the failure"
ev0=$(event_nr c)
log_mark
dm_swap dflk "$(flakey_table "$destloop" error_writes)"
# The held flushes go on and fail; a commit that had none held (this
# status query's) fails on its own.
dm_swap dly "$(hold_flushes 0)"
dmsetup status c >/dev/null 2>&1 || true
assert_mode c ro "mode after a failed destination flush"
[ "$(event_nr c)" -gt "$ev0" ] || fail "no dm event on the switch to read-only"
log_grep 'flushing the destination failed' ||
	fail "the kernel log does not name the failed destination flush"
assert_eq "$(clone_hydrated c)" 1 "hydrated regions after the failed flush (the last commit)"
dm_swap dflk "$(flakey_table "$destloop" up)"
cmp_dev $clone "$ref" || fail "read-only clone: reads differ from the last committed state"
expect_eio_write $clone $((7 * rs)) $rs 7 "whole-region write to unhydrated region 7 in read-only mode"
assert_mode c ro "mode once the destination is healthy"

log "a new table over the same metadata goes on from the last commit"
dm_swap c "$table"
assert_eq "$(clone_mode c)" rw "mode of the new table"
assert_eq "$(clone_hydrated c)" 1 "hydrated regions of the new table"
cmp_dev $clone "$ref" || fail "new table: reads differ from the last committed state"

log "(2) the old table's last commit fails at a reload"
expect_ok_write $clone $((8 * rs)) $rs 8 "fsynced write to region 8"
fill_pattern "$ref" 8 $((8 * rs)) $rs >/dev/null
dm_swap dly "$(hold_flushes 600000)"
write_whole 9 9
log_mark
dmsetup reload c --table "$table" || fail "reload failed"
dm_swap dflk "$(flakey_table "$destloop" error_writes)"
dm_swap dly "$(hold_flushes 0)"
dmsetup suspend c || fail "suspend failed"
log_grep 'flushing the destination failed' ||
	fail "the old table's last commit did not fail on the destination flush"
dm_swap dflk "$(flakey_table "$destloop" up)"
dmsetup resume c || fail "resume of the new table failed"
assert_eq "$(clone_mode c)" rw "mode of the new table"
assert_eq "$(clone_hydrated c)" 2 "hydrated regions of the new table (the last commit)"
cmp_dev $clone "$ref" || fail "new table: reads differ from the last committed state"

dm_message c enable_hydration
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the source with the committed writes"
cmp_dev "$destloop" "$ref" || fail "destination differs from the source with the committed writes"
log "ok"
