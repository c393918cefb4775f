#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A failing metadata device switches the clone to read-only mode. The
# metadata sits on dm-flakey; mid-hydration its writes start failing
# (error_writes). Within a few seconds (the periodic commit, no status
# query forcing one) the status mode is `ro` and a dm event was raised;
# copying stops (nothing in flight, hydrated count frozen); reads are
# byte-exact against a reference (hydrated regions from the destination,
# the others from the source); writes to hydrated regions work and read
# back; writes to unhydrated regions fail with EIO; a flush returns (not
# checked strictly); the device can be removed. With the metadata device
# healthy again, a new clone opens exactly the progress the read-only
# clone showed (the last commit) and completes byte-exact.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_module dm-flakey
need_cmd dmclone-pattern dd sync timeout

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 1024 regions
dest=$(mkdev dest 16)
metaloop=$(mkdev meta 4)
ref=$(mkdev ref 16)
nr=1024
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9
dm_create slowsrc "$(delay_table "$src" 20)"	# ~50 regions/s, one at a time
dm_create mflakey "$(flakey_table "$metaloop" up)"
meta=/dev/mapper/mflakey
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"

wait_for 60 hydrated_at_least c 30 || fail "no background copying: $(clone_status c)"
# Writes, made durable (dmclone-pattern fsyncs).
ref_write $clone "$ref" 2 $((5 * rs + 1)) 3		# region 5 (hydrated by now)
ref_write $clone "$ref" 3 $((900 * rs)) $rs		# region 900, whole
ref_write $clone "$ref" 4 $((901 * rs + 9)) 2	# region 901, partial
log "before the failure: $(clone_status c)"
ev0=$(event_nr c)

log_mark
log "metadata writes fail from now on"
dm_swap mflakey "$(flakey_table "$metaloop" error_writes)"

# The periodic commit (about once a second while regions get hydrated)
# hits the failure: watch with status queries that do not commit.
mode_is_ro() { [ "$(clone_status_noflush c | awk '{ print $NF }')" = ro ]; }
wait_for 10 mode_is_ro || fail "clone did not switch to read-only within 10 s: $(clone_status_noflush c)"
log "read-only: $(clone_status c)"
log_since_mark | grep -i clone | head -n 20 || true
ev1=$(event_nr c)
[ "$ev1" -gt "$ev0" ] || fail "no dm event on the switch to read-only (event number $ev0, then $ev1)"

wait_for 15 clone_idle c || fail "copies still in flight in read-only mode: $(clone_status c)"
h=$(clone_hydrated c)
if [ "$h" -lt 3 ] || [ "$h" -ge $((nr - 100)) ]; then
	fail "unexpected progress in read-only mode: $h of $nr regions"
fi

# Reads: byte-exact.
cmp_dev $clone "$ref" || fail "reads differ from the reference in read-only mode"

# A write to a hydrated region works and reads back.
out=$(dd_write $clone $((900 * rs + 4)) 8 5) || fail "write to a hydrated region failed in read-only mode: $out"
fill_pattern "$ref" 5 $((900 * rs + 4)) 8 >/dev/null
check_pattern $clone 5 $((900 * rs + 4)) 8 || fail "write to a hydrated region does not read back"

# A write to an unhydrated region (the background pass never got there)
# fails with EIO and changes nothing.
if out=$(dd_write $clone $((1000 * rs + 3)) 4 6); then
	fail "write to an unhydrated region succeeded in read-only mode"
fi
assert_match "$out" "Input/output error" "error of a write to an unhydrated region"
if out=$(dd_write $clone $((1001 * rs)) $rs 6); then
	fail "whole-region write to an unhydrated region succeeded in read-only mode"
fi
assert_match "$out" "Input/output error" "error of a whole-region write to an unhydrated region"

# A flush: no commit can be needed any more; it must at least return.
rc=0
timeout 30 sync $clone || rc=$?
[ $rc != 124 ] || fail "a flush of the read-only clone hangs"
log "flush in read-only mode: status $rc"

# Copying stopped for good: nothing changes over a few commit periods.
sleep 3
assert_eq "$(clone_hydrated c)" "$h" "hydrated count after 3 s in read-only mode"
assert_eq "$(clone_hydrating c)" 0 "regions in flight in read-only mode"
assert_eq "$(clone_mode c)" ro "mode after 3 s"
cmp_dev $clone "$ref" || fail "clone differs from the reference after the writes in read-only mode"

log "removing the read-only clone"
dm_remove c
[ ! -e $clone ] || fail "$clone still exists"

log "metadata device healthy again: a new clone goes on from the last commit"
dm_swap mflakey "$(flakey_table "$metaloop" up)"
dm_create c "$(clone_table "$meta" "$dest" /dev/mapper/slowsrc $rs 1 no_hydration)"
assert_eq "$(clone_mode c)" rw "mode of the new clone"
assert_eq "$(clone_hydrated c)" "$h" "hydrated regions of the new clone"
cmp_dev $clone "$ref" || fail "new clone differs from the reference"
dm_message c hydration_batch_size 64
dm_message c hydration_threshold 256
dm_message c enable_hydration
wait_hydrated c 120
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference"
log "ok"
