#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# `hydration_threshold 0` pauses copying without stranding the copies
# already queued. Over a source that answers in 100 ms, with threshold 64
# and batch 8, dozens of regions are in flight when the threshold drops
# to 0: they must all finish (hydrating goes to 0), no new copy starts
# (the hydrated count stays put), a partial write to an unhydrated region
# still completes (its copy is not background work), suspend, resume and
# a reload return, and with the threshold back at 64 copying resumes.
# The data read back is byte-exact throughout. Then a small threshold is
# used in full by jobs of one region each (threshold 8, batch 1, 64 KiB
# regions, a source that answers in 500 ms): the regions are copied
# several at once (the hydrated count moves by 4 or more between two
# polls 0.2 s apart), and the copy is byte-exact.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd timeout

rs=8						# 4 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 4096 regions
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
ref=$(mkdev ref 16)
fill_pattern "$src" 1
fill_pattern "$ref" 1
dm_create slowsrc "$(delay_table "$src" 100)"
table=$(clone_table "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 \
	hydration_threshold 64 hydration_batch_size 8)
dm_create c "$table"
clone=/dev/mapper/c

# A stranded module would hang the removal at exit: give it its threshold
# back first.
on_exit "dmsetup message c 0 hydration_threshold 64 2>/dev/null || true"

many_in_flight() { [ "$(clone_hydrating c)" -ge 32 ]; }
wait_for 60 many_in_flight || fail "never 32 regions in flight: $(clone_status c)"
log "in flight: $(clone_status c)"
dm_message c hydration_threshold 0
wait_for 30 hydrating_is c 0 ||
	fail "copies queued before 'hydration_threshold 0' never finish: $(clone_status_noflush c)"
h=$(clone_hydrated c)
log "drained: $(clone_status c)"

# Paused: over a few periods of the background pass, nothing starts.
sleep 3
assert_eq "$(clone_hydrated c)" "$h" "hydrated regions 3 s after the pause"
assert_eq "$(clone_hydrating c)" 0 "regions in flight 3 s after the pause"

# A write to an unhydrated region still gets its region copied.
FAULT_IO_TIMEOUT=30
expect_ok_write $clone $((4000 * rs + 1)) 2 7 "partial write to unhydrated region 4000 while paused"
fill_pattern "$ref" 7 $((4000 * rs + 1)) 2 >/dev/null
assert_eq "$(clone_hydrated c)" $((h + 1)) "hydrated regions after the write"
cmp_dev $clone "$ref" || fail "reads differ from the reference while paused"

timed 30 dmsetup suspend c || fail "suspend failed while paused"
timed 30 dmsetup resume c || fail "resume failed while paused"
timed 30 dmsetup reload c --table "$(clone_table "$meta" "$dest" /dev/mapper/slowsrc $rs 0 2 hydration_threshold 0)" ||
	fail "reload failed while paused"
timed 30 dmsetup suspend c || fail "suspend (reload) failed while paused"
timed 30 dmsetup resume c || fail "resume (reload) failed while paused"
assert_eq "$(clone_core_arg c hydration_threshold)" 0 "threshold of the reloaded table"
assert_eq "$(clone_hydrated c)" $((h + 1)) "hydrated regions after the reload"

dm_message c hydration_threshold 64
wait_for 30 hydrated_at_least c $((h + 40)) || fail "copying did not resume: $(clone_status c)"
cmp_dev $clone "$ref" || fail "reads differ from the reference after the pause"
log "copying resumed: $(clone_status c)"

log "threshold 8, batch 1: jobs of one region fill the threshold"
dm_remove c
wipe_md "$meta"
# 64 regions of 64 KiB over a source that answers in 500 ms: copied 8 at
# a time, the hydrated count moves by 8 every 500 ms; one at a time, by 1
# (a poll would have to miss 2 s to see it move by 4).
dm_create slow500 "$(delay_table "$src" 500)"
table=$(CLONE_LEN=$((64 * 128)) clone_table "$meta" "$dest" /dev/mapper/slow500 128 0 4 \
	hydration_threshold 8 hydration_batch_size 1)
dm_create c "$table"
# all_copied_step: true once all 64 are copied; keeps in $step the most
# regions copied between two of its calls.
step=0 last=0
all_copied_step() {
	local h
	h=$(clone_hydrated c)
	[ $((h - last)) -le "$step" ] || step=$((h - last))
	last=$h
	[ "$h" -ge 64 ]
}
wait_for 60 all_copied_step || fail "copying did not complete: $(clone_status c)"
log "copied; at most $step regions done between two polls: $(clone_status c)"
[ "$step" -ge 4 ] || fail "threshold 8 with jobs of one region: copied $step at a time"
cmp_dev $clone "$src" $((64 * 128)) || fail "reads differ from the source after the copy"
