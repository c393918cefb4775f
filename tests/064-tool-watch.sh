#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone watch: on a clone copying from a slow source it prints progress
# lines (not a terminal: one per interval) with non-decreasing percentages,
# a rate once measured, and exits 0 only when every region is hydrated. On
# a paused clone it says so and keeps waiting; SIGINT (Ctrl-C) ends it with
# status 130. When metadata writes start failing (dm-flakey error_writes
# under the metadata device) the clone goes read-only and watch exits 1
# saying so; status reports READ-ONLY (json: mode ro) and finish refuses.
# If the metadata device fails altogether the clone goes to fail mode:
# watch exits 1 and status --json has mode Fail. Nonexistent or non-clone
# devices are errors.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_module dm-delay
need_module dm-flakey
need_tool

src=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
meta=$(mkdev meta 4)
fill_pattern "$src" 1
dm_create slow "0 16384 delay $src 0 20"

log "watch until complete"
tool_ok create c /dev/mapper/slow "$dest" "$meta" --region 4k --threshold 8 --batch 4
track_dm c
tool watch c --interval 0.5
echo "$TOOL_OUT"
[ "$TOOL_RC" = 0 ] || fail "watch exited $TOOL_RC: $TOOL_ERR"
assert_eq "$(clone_hydrated c)" "$(clone_regions c)" "hydrated regions when watch returned"
assert_match "$(tail -n 1 <<<"$TOOL_OUT")" "^c: complete: every region is on the destination" "last line"
bars=$(grep -c '^\[[#.]*\] ' <<<"$TOOL_OUT" || true)
[ "$bars" -ge 3 ] || fail "expected several progress lines over the copy, got $bars"
assert_match "$(grep '^\[' <<<"$TOOL_OUT" | tail -n 1)" "^\[#+\] 100\.0%  8 MiB of 8 MiB  done$" "final bar"
grep -q -E '\] +[0-9.]+%  .* [0-9.]+ [KM]iB/s, ' <<<"$TOOL_OUT" || fail "no progress line with a rate"
# The percentages never go down.
grep '^\[' <<<"$TOOL_OUT" | awk '{ p = $2 + 0; if (p < last) { print "went down: " $0; exit 1 } last = p }' ||
	fail "percentages went down"
cmp_dev /dev/mapper/c "$src"
dm_remove c

log "a paused clone, then Ctrl-C"
wipe=$(mkdev meta2 4)
tool_ok create p "$src" "$dest" "$wipe" --no-hydration
track_dm p
rc=0
timeout --preserve-status -s INT 3 dmclone watch p --interval 0.5 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
assert_eq "$rc" 130 "watch status after SIGINT"
grep -q "paused (background copying off)" "$TEST_TMP/out" || fail "watch did not say the clone is paused"
grep -q "interrupted" "$TEST_TMP/err" || fail "watch did not say it was interrupted"
dm_remove p

log "metadata writes fail: read-only mode"
meta3=$(mkdev meta3 4)
dm_create mdsw "0 8192 linear $meta3 0"
tool_ok create r "$src" "$dest" /dev/mapper/mdsw --no-hydration
track_dm r
dmclone watch r --interval 0.5 >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
wpid=$!
sleep 1
kill -0 $wpid 2>/dev/null || fail "watch of a paused clone ended: $(cat "$TEST_TMP/err")"
dm_reload mdsw "0 8192 flakey $meta3 0 0 1 1 error_writes"
# A write to an unhydrated region, then a flush: the commit must fail.
dd if=/dev/zero of=/dev/mapper/r bs=4096 count=1 seek=100 oflag=direct conv=fsync status=none 2>/dev/null || true
wait_for 30 eval '[ "$(clone_mode r)" != rw ]' || fail "the clone did not leave rw: $(clone_status r)"
assert_eq "$(clone_mode r)" ro "mode after failed metadata writes"
rc=0
wait_for 15 eval '! kill -0 $wpid 2>/dev/null' || fail "watch still running on a read-only clone"
wait $wpid || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
assert_eq "$rc" 1 "watch status on a read-only clone"
grep -q "switched to read-only metadata mode" "$TEST_TMP/err" || fail "watch did not say read-only"
tool_ok status r --interval 0
assert_match "$TOOL_OUT" "^r: READ-ONLY at" "status of a read-only clone"
tool_ok status r --json
json_check "$TOOL_OUT"
assert_eq "$(json_get "$TOOL_OUT" mode)" ro "json mode"
assert_eq "$(json_get "$TOOL_OUT" state)" read-only "json state"
tool_refuses 1 "read-only metadata mode" finish r
tool_refuses 1 "read-only metadata mode" watch r --interval 0.5
assert_match "$(dm_table r)" " clone " "table after the refused finish"
dm_remove r

log "the metadata device fails altogether: fail mode"
meta4=$(mkdev meta4 4)
dm_create mdsw2 "0 8192 linear $meta4 0"
tool_ok create f "$src" "$dest" /dev/mapper/mdsw2 --no-hydration
track_dm f
dm_reload mdsw2 "0 8192 error"
dd if=/dev/zero of=/dev/mapper/f bs=4096 count=1 seek=100 oflag=direct conv=fsync status=none 2>/dev/null || true
wait_for 30 eval '[ "$(clone_mode f)" != rw ]' || fail "the clone did not leave rw: $(clone_status f)"
mode=$(clone_mode f)
log "mode with a dead metadata device: $mode"
tool_refuses 1 "(fail|read-only)" watch f
if [ "$mode" = Fail ]; then
	tool_ok status f --json
	json_check "$TOOL_OUT"
	assert_eq "$(json_get "$TOOL_OUT" mode)" Fail "json mode"
	assert_eq "$(json_get "$TOOL_OUT" hydrated_regions)" null "json hydrated in fail mode"
	tool_ok status f
	assert_match "$TOOL_OUT" "^f: FAILED" "status in fail mode"
	tool_refuses 1 "fail mode" finish f
fi

log "not a clone"
dm_create lin "0 2048 linear $src 0"
tool_refuses 1 "not a clone" watch lin
tool_refuses 1 "no device-mapper device named 'nosuch'" watch nosuch
tool_refuses 2 "interval" watch lin --interval 0
log "ok"
