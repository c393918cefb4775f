#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone tune: --threshold and --batch set the clone's tunables (status
# shows them), --pause stops background copying (no_hydration in the
# status, the hydrated count stays put) and --resume restarts it (copying
# completes); 0 is a valid threshold (with a warning). Invalid values
# (negative, not a number, past 32 bits, empty), no option at all, --pause
# with --resume, extra names are usage errors (exit 2) that change
# nothing; a device that is not a clone or does not exist is an error
# (exit 1).
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_module dm-delay
need_tool

src=$(mkdev src 16)				# 32768 sectors
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
fill_pattern "$src" 1
# A slow source, so that copying is still going on while we look.
dm_create slow "0 32768 delay $src 0 20"
tool_ok create c /dev/mapper/slow "$dest" "$meta" --region 4k --threshold 2 --batch 1 --no-hydration
track_dm c

log "threshold and batch"
tool_ok tune c --threshold 5 --batch 3
log "tune said: $TOOL_OUT"
assert_match "$TOOL_OUT" "^c: paused at .*at most 5 regions copying at once, 3 per copy job, background copying off" "tune output"
assert_eq "$(clone_core_arg c hydration_threshold)" 5 "threshold"
assert_eq "$(clone_core_arg c hydration_batch_size)" 3 "batch"
tool_ok tune c --threshold=007
assert_eq "$(clone_core_arg c hydration_threshold)" 7 "threshold given as 007"
tool_ok tune c --threshold 4294967295
assert_eq "$(clone_core_arg c hydration_threshold)" 4294967295 "the largest threshold"
tool_ok tune c --threshold 0
assert_match "$TOOL_ERR" "threshold 0: background copying stays stopped" "warning for 0"
assert_eq "$(clone_core_arg c hydration_threshold)" 0 "threshold 0"
tool_ok tune c --threshold 4 --batch 2

log "invalid values change nothing"
for args in "--threshold -1" "--threshold abc" "--threshold 4294967296" "--threshold 1e3" \
	"--batch 2.5" "--batch=" "--threshold"; do
	# shellcheck disable=SC2086
	tool_refuses 2 "(wants a whole number|needs a number)" tune c $args
done
tool_refuses 2 "nothing to change" tune c
tool_refuses 2 "contradict" tune c --pause --resume
tool_refuses 2 "expected one NAME" tune c c --pause
tool_refuses 2 "unknown option" tune c --speed 9
assert_eq "$(clone_core_arg c hydration_threshold)" 4 "threshold after invalid tunes"
assert_eq "$(clone_core_arg c hydration_batch_size)" 2 "batch after invalid tunes"
assert_eq "$(clone_features c)" no_hydration "features after invalid tunes"

log "resume and pause"
h0=$(clone_hydrated c)			# used in the eval below
export h0
tool_ok tune c --resume
assert_match "$TOOL_OUT" "background copying on" "tune --resume output"
assert_eq "$(clone_features c)" "" "features after --resume"
wait_for 30 eval '[ "$(clone_hydrated c)" -gt "$h0" ]' || fail "no progress after --resume"
tool_ok tune c --pause
assert_match "$TOOL_OUT" "^c: paused at" "tune --pause output"
assert_eq "$(clone_features c)" no_hydration "features after --pause"
# Copies in flight finish; then nothing moves.
wait_for 30 eval '[ "$(clone_hydrating c)" = 0 ]' || fail "copies still in flight after --pause"
h1=$(clone_hydrated c)
sleep 2
assert_eq "$(clone_hydrated c)" "$h1" "hydrated regions while paused"
tool_ok tune c --resume --threshold 4096 --batch 64
dm_reload slow "0 32768 linear $src 0"
wait_hydrated c 120
cmp_dev "$dest" "$src"
tool_ok tune c --pause
assert_match "$TOOL_OUT" "^c: complete at 100\.0%" "tune on a complete clone"

log "not a clone"
dm_create lin "0 2048 linear $src 0"
tool_refuses 1 "not a clone" tune lin --pause
tool_refuses 1 "no device-mapper device named 'nosuch'" tune nosuch --resume
log "ok"
