#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone create and status. create prints exactly the device path on
# stdout, builds the table from its options (default 64 KiB regions;
# --region, --no-hydration, --threshold, --batch, --no-discard-passdown) and
# the clone reads like the source at once. status names the state and the
# numbers in words; status --json is one flat JSON object whose numbers
# equal those of `dmsetup status` (hydrated and total regions, region size,
# in flight, tunables, features, metadata blocks, mode), with a copy rate
# and ETA measured while a slowed-down clone copies, consistent with the
# progress seen around the call. status of a device that is not a clone
# (or does not exist) fails with a reason.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool

src=$(mkdev src 32)				# 65536 sectors
dest=$(mkdev dest 32)
meta=$(mkdev meta 4)
meta2=$(mkdev meta2 4)
fill_pattern "$src" 3
fill_pattern "$dest" 9				# stale: must never show

log "create with the defaults (paused)"
tool_ok create c1 "$src" "$dest" "$meta" --no-hydration
track_dm c1
assert_eq "$TOOL_OUT" /dev/mapper/c1 "stdout of create"
[ -b /dev/mapper/c1 ] || fail "no /dev/mapper/c1"
assert_eq "$(dm_table c1)" \
	"0 65536 clone $(dev_majmin "$meta") $(dev_majmin "$dest") $(dev_majmin "$src") 128 1 no_hydration" \
	"table made by create"
check_pattern /dev/mapper/c1 3 || fail "the new clone does not read like the source"

# Hydrate regions 0-2 (whole-region writes) and 7 (a partial write).
fill_pattern /dev/mapper/c1 5 0 384
fill_pattern /dev/mapper/c1 5 1000 8
dmsetup status c1 >/dev/null			# commit, so the counts settle
st=$(clone_status c1)
log "dmsetup status: $st"

log "status --json against dmsetup status"
tool_ok status c1 --json --interval 0
json=$TOOL_OUT
log "json: $json"
json_check "$json"
# shellcheck disable=SC2086 # the status line, split into its words
set -- $st
assert_eq "$(json_get "$json" name)" c1 "name"
assert_eq "$(json_get "$json" device)" /dev/mapper/c1 "device"
assert_eq "$(json_get "$json" state)" paused "state"
assert_eq "$(json_get "$json" mode)" "${!#}" "mode"
assert_eq "$(json_get "$json" size_bytes)" $((65536 * 512)) "size_bytes"
assert_eq "$(json_get "$json" region_bytes)" $(($3 * 512)) "region_bytes"
assert_eq "$(json_get "$json" regions)" "${4#*/}" "regions"
assert_eq "$(json_get "$json" hydrated_regions)" "${4%/*}" "hydrated_regions"
assert_eq "$(json_get "$json" hydrated_regions)" 4 "hydrated_regions (3 written whole, 1 pulled in)"
assert_eq "$(json_get "$json" hydrated_bytes)" $((4 * 65536)) "hydrated_bytes"
assert_eq "$(json_get "$json" percent)" 0.78 "percent (4 of 512)"
assert_eq "$(json_get "$json" in_flight_regions)" "$5" "in_flight_regions"
assert_eq "$(json_get "$json" rate_bytes_per_second)" null "rate without a measurement"
assert_eq "$(json_get "$json" eta_seconds)" null "eta without a measurement"
assert_eq "$(json_get "$json" hydration_enabled)" false "hydration_enabled"
assert_eq "$(json_get "$json" discard_passdown)" true "discard_passdown"
assert_eq "$(json_get "$json" hydration_threshold)" "$(clone_core_arg c1 hydration_threshold)" "threshold"
assert_eq "$(json_get "$json" hydration_batch_size)" "$(clone_core_arg c1 hydration_batch_size)" "batch"
assert_eq "$(json_get "$json" metadata_used_blocks)" "${2%/*}" "metadata_used_blocks"
assert_eq "$(json_get "$json" metadata_total_blocks)" "${2#*/}" "metadata_total_blocks"
assert_eq "$(json_get "$json" source)" "$src" "source"
assert_eq "$(json_get "$json" destination)" "$dest" "destination"
assert_eq "$(json_get "$json" metadata)" "$meta" "metadata"

log "status in words"
tool_ok status c1 --interval 0
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "^c1: paused at 0\.7%" "first line"
assert_match "$TOOL_OUT" "256 KiB of 32 MiB \(4 of 512 regions of 64 KiB\)" "copied line"
assert_match "$TOOL_OUT" "background copying off" "mode line"
assert_match "$TOOL_OUT" "source $src, destination $dest, metadata $meta" "devices line"
dm_remove c1

log "create with every option, over a slow source"
need_module dm-delay
dm_create slow "0 65536 delay $src 0 20"
tool_ok create c2 /dev/mapper/slow "$dest" "$meta2" --region 4k --threshold 7 --batch 3 \
	--no-discard-passdown
track_dm c2
assert_eq "$TOOL_OUT" /dev/mapper/c2 "stdout of create"
assert_eq "$(dm_table c2)" \
	"0 65536 clone $(dev_majmin "$meta2") $(dev_majmin "$dest") $(dev_majmin /dev/mapper/slow) 8 1 no_discard_passdown 4 hydration_threshold 7 hydration_batch_size 3" \
	"table made by create with options"

h0=$(clone_hydrated c2)
tool_ok status c2 --json --interval 1
h1=$(clone_hydrated c2)
json=$TOOL_OUT
log "json while copying: $json"
json_check "$json"
assert_eq "$(json_get "$json" state)" copying "state"
assert_eq "$(json_get "$json" region_bytes)" 4096 "region_bytes"
assert_eq "$(json_get "$json" regions)" 8192 "regions"
assert_eq "$(json_get "$json" hydration_threshold)" 7 "threshold"
assert_eq "$(json_get "$json" hydration_batch_size)" 3 "batch"
assert_eq "$(json_get "$json" hydration_enabled)" true "hydration_enabled"
assert_eq "$(json_get "$json" discard_passdown)" false "discard_passdown"
rate=$(json_get "$json" rate_bytes_per_second)
eta=$(json_get "$json" eta_seconds)
hb=$(json_get "$json" hydrated_bytes)
hr=$(json_get "$json" hydrated_regions)
[ "$hr" -ge "$h0" ] && [ "$hr" -le "$h1" ] || fail "hydrated_regions $hr outside [$h0, $h1] seen around the call"
assert_eq "$hb" $((hr * 4096)) "hydrated_bytes"
assert_match "$rate" '^[0-9]+$' "rate"
[ "$rate" -gt 0 ] || fail "rate is 0 while copying ($h0 -> $h1 regions around the call)"
# Measured over at least 1 s, between the two samples taken around the call.
[ "$rate" -le $(((h1 - h0) * 4096)) ] ||
	fail "rate $rate B/s is more than the $(((h1 - h0) * 4096)) bytes copied during the whole call"
assert_eq "$eta" $(((65536 * 512 - hb + rate - 1) / rate)) "eta = remaining / rate"
tool_ok status c2 --interval 1
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "^c2: copying, [0-9]+\.[0-9]% done" "first line while copying"
assert_match "$TOOL_OUT" "rate +[0-9.]+ [KMG]?i?B/s" "rate line"
assert_match "$TOOL_OUT" "time left +[0-9]" "time left line"
assert_match "$TOOL_OUT" "not passed down" "discards line"

log "complete"
dm_message c2 hydration_threshold 4096
dm_message c2 hydration_batch_size 256
dm_reload slow "0 65536 linear $src 0"
wait_hydrated c2 120
tool_ok status c2 --json
json=$TOOL_OUT
json_check "$json"
assert_eq "$(json_get "$json" state)" complete "state when done"
assert_eq "$(json_get "$json" percent)" 100 "percent when done (100.00, parsed)"
assert_eq "$(json_get "$json" hydrated_bytes)" $((65536 * 512)) "hydrated_bytes when done"
assert_eq "$(json_get "$json" eta_seconds)" 0 "eta when done"
tool_ok status c2
assert_match "$TOOL_OUT" "^c2: complete" "status when done"
cmp_dev /dev/mapper/c2 "$src"
cmp_dev "$dest" "$src"

log "status of what is not a clone"
dm_create lin "0 2048 linear $src 0"
tool_refuses 1 "not a clone.*linear" status lin --interval 0
tool_refuses 1 "no device-mapper device named 'nosuch'" status nosuch
tool_refuses 2 "expected one NAME" status
tool_refuses 2 "unknown option" status c2 --bogus
tool_refuses 2 "interval" status c2 --interval soon
log "ok"
