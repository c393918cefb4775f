#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The usual reload order (`dmsetup reload` of the same table while the
# clone is live, copying from a slow source and taking writes; more
# copying and writes; then `dmsetup resume`) carries everything over to
# the new table: its hydrated count is at least the one seen just before
# the swap, and every acknowledged write reads back, in particular writes
# made between the reload and the resume that hydrated regions (a partial
# write copying its region, a whole-region write), which a table that
# read the bitmap when it was constructed would serve from the source or
# copy over. A background writer keeps writing across the swap. Then
# hydration completes and the clone and the destination equal the
# reference, and still after one more reload and resume (with a write in
# between) of the complete clone.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 1024 regions
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
ref=$(mkdev ref 16)
nr=1024
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9				# in neither source nor writes
dm_create slowsrc "$(delay_table "$src" 20)"	# ~50 regions/s, one at a time
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 hydration_threshold 1 hydration_batch_size 1)
dm_create c "$table"

wait_for 60 hydrated_at_least c 30 || fail "no background copying: $(clone_status c)"
log "before the reload: $(clone_status c)"
ref_write $clone "$ref" 2 $((2 * rs + 3)) 5		# region 2: hydrated already
ref_write $clone "$ref" 3 $((1000 * rs + 1)) 9	# region 1000: copied for the write
ref_write $clone "$ref" 4 $((1001 * rs)) $rs		# region 1001: overwritten whole

# A writer across the swap: partial writes into regions 700-899, one at a
# time, each recorded in the reference once acknowledged.
stop=$TEST_TMP/writer.stop
wfail=$TEST_TMP/writer.failed
wpos=$TEST_TMP/writer.pos			# the next region it writes
echo 700 >"$wpos"
writer() {
	local r=700
	while [ ! -e "$stop" ] && [ $r -lt 900 ]; do
		if ! dmclone-pattern write $clone $((100 + r)) $((r * rs + 5)) 7 >/dev/null; then
			echo "write to region $r failed" >"$wfail"
			return
		fi
		dmclone-pattern write "$ref" $((100 + r)) $((r * rs + 5)) 7 >/dev/null
		r=$((r + 1))
		echo $r >"$wpos.new"
		mv "$wpos.new" "$wpos"
		sleep 0.05
	done
}
writer &
wpid=$!
on_exit "touch $stop; wait $wpid 2>/dev/null"

log "dmsetup reload"
h0=$(clone_hydrated c)
dmsetup reload c --table "$table" || fail "reload of the same table failed"

# Between the reload and the resume, the old table copies and takes writes.
ref_write $clone "$ref" 5 $((1002 * rs + 20)) 4	# region 1002: copied for the write
ref_write $clone "$ref" 6 $((1003 * rs)) $rs		# region 1003: overwritten whole
ref_write $clone "$ref" 7 $((3 * rs + 30)) 4		# region 3: hydrated already
ref_write $clone "$ref" 8 $((1004 * rs + 31)) 2	# regions 1004 and 1005
wait_for 60 hydrated_at_least c $((h0 + 30)) ||
	fail "old table stopped copying after the reload: $(clone_status c)"
h1=$(clone_hydrated c)
log "just before the resume: $(clone_status c)"

dmsetup resume c || fail "resume of the reloaded table failed"
st=$(clone_status c)
log "right after the resume: $st"
# shellcheck disable=SC2086 # the status line, split into its words
set -- $st
h2=${4%/*}
[ "$h2" -ge "$h1" ] || fail "hydrated went back from $h1 to $h2 with the new table"
assert_eq "$(clone_mode c)" rw "mode after the swap"
assert_eq "$(dm_table c)" "0 32768 clone $(dev_majmin "$meta") $(dev_majmin "$dest") $(dev_majmin /dev/mapper/slowsrc) $rs 0 4 hydration_threshold 1 hydration_batch_size 1" "table after the swap"

# Let the writer go on a little with the new table, then stop it.
writer_past() { [ -e "$wfail" ] || [ "$(cat "$wpos")" -ge "$1" ]; }
wait_for 30 writer_past $(($(cat "$wpos") + 5)) || true
touch "$stop"
wait $wpid
[ ! -e "$wfail" ] || fail "background writer: $(cat "$wfail")"
log "writer wrote regions 700-$(($(cat "$wpos") - 1))"

# Before the new table copies over them: the writes read back.
cmp_dev $clone "$ref" || fail "clone differs from the reference after the swap"

log "finishing"
dm_message c hydration_batch_size 64
dm_message c hydration_threshold 256
wait_hydrated c 120
h3=$(clone_hydrated c)
assert_eq "$h3" $nr "hydrated at the end"
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference"

log "the same reload once hydration is complete"
dmsetup reload c --table "$table" || fail "reload of the same table failed"
ref_write $clone "$ref" 9 $((500 * rs + 3)) 5	# between reload and resume
dmsetup resume c || fail "resume of the reloaded table failed"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "hydrated after the second swap"
assert_eq "$(clone_hydrating c)" 0 "regions in flight after the second swap"
ref_write $clone "$ref" 10 $((501 * rs + 3)) 5
cmp_dev $clone "$ref" || fail "clone differs from the reference after the second swap"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference after the second swap"
log "ok"
