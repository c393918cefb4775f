#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Discards on a clone segment that starts off a region multiple. The
# table is a 4 KiB linear head, then the clone (8 KiB regions, starting at
# sector 8), over a destination that takes at most one region per discard
# (its discard_max_bytes lowered to 8 KiB): the block layer splits a
# large discard into region-sized pieces. A discard of the whole clone
# segment must still mark (nearly) every region: the pieces are cut at the
# clone's region boundaries, not at multiples of the region size from the
# device's start, which would make each piece straddle two regions and
# discard nothing. (The first region may be lost: the block layer cuts a
# discard's first piece at the granularity from the device's start.)
# timeout: 120
. "$(dirname "$0")/lib/common.sh"

need_module
need_cmd dmclone-pattern blkdiscard

rs=16					# 8 KiB regions
nr=256
lc=$((nr * rs))
src=$(mkdev src 2)			# 4096 sectors
dest=$(mkdev dest 2)
lin=$(mkdev lin 1)
meta=$(mkdev meta 4)
fill_pattern "$src" 1 >/dev/null
q=/sys/block/$(basename "$dest")/queue
[ -w "$q/discard_max_bytes" ] || skip "cannot lower the destination's discard limit"
# Newer kernels keep a limit set here across the loop device's next uses:
# give it back (before the device is detached: cleanup runs last first).
# (The value written back must be a multiple of the granularity.)
orig=$(cat "$q/discard_max_bytes") gran=$(cat "$q/discard_granularity")
on_exit "echo $((orig / gran * gran)) >$q/discard_max_bytes"
echo $((rs * 512)) >"$q/discard_max_bytes" || fail "cannot lower the destination's discard limit"
assert_eq "$(cat "$q/discard_max_bytes")" $((rs * 512)) "destination discard_max_bytes"

dm_create c "0 8 linear $lin 0
8 $lc clone $meta $dest $src $rs 1 no_hydration"
cq=/sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : c | tr -d ' ')/queue
log "device discard limits: max $(cat "$cq/discard_max_bytes") granularity $(cat "$cq/discard_granularity")"
assert_eq "$(clone_features c)" no_hydration "features (passdown must stay on)"
blkdiscard -o 4096 -l $((lc * 512)) /dev/mapper/c || fail "discard of the clone segment failed"
h=$(clone_hydrated c)
log "hydrated after the discard: $h of $nr"
[ "$h" -ge $((nr - 1)) ] || fail "a discard of the whole clone segment marked $h of $nr regions"
dm_remove c
echo $((orig / gran * gran)) >"$q/discard_max_bytes" || fail "cannot give the destination its discard limit back"
[ "$(cat "$q/discard_max_bytes")" -ge $((orig / gran * gran)) ] ||
	fail "the destination's discard limit is $(cat "$q/discard_max_bytes") after giving it back, was $orig"
