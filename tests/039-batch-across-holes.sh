#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Copy jobs read across the holes users left. Whole-region writes to
# uncopied 4 KiB regions (no_hydration) hydrate them without a copy and
# leave the uncopied space in short runs: in the first half runs of 1-3
# regions written between gaps of 1-4 (every copy job spans holes), in the
# second half short runs far apart (holes longer than a job's own regions
# end the job). The source sectors under one written region fail every
# read (an error segment), so every job reading across that hole fails
# and is copied again region by region. After enable_hydration: every
# region hydrated, no copy failure logged (the failing sectors belong to
# no region still to copy), mode rw, and the clone and then the
# destination itself byte-exact against a reference that got the same
# writes: nothing a user wrote was overwritten by a copy across it.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern

rs=8						# 4 KiB regions
src=$(mkdev src 16)
dest=$(mkdev dest 16)
ref=$(mkdev ref 16)
meta=$(mkdev meta 4)
sectors=$(dev_sectors "$src")
regions=$((sectors / rs))

fill_pattern "$src" 1
dd if="$src" of="$ref" bs=1M iflag=direct oflag=direct status=none

# The written runs: "FIRST COUNT" in regions, from a fixed seed.
RANDOM=4242
runs=()
r=$((1 + RANDOM % 4))
while [ $r -lt $((regions / 2)) ]; do
	n=$((1 + RANDOM % 3))
	runs+=("$r $n")
	r=$((r + n + 1 + RANDOM % 4))
done
while [ $r -lt $((regions - 2)) ]; do
	runs+=("$r 1")
	r=$((r + 8 + RANDOM % 32))
done
# The region whose source sectors fail: the first of the 50th run, a hole
# between runs still to copy.
read -r bad _ <<<"${runs[49]}"
dm_create bsrc "0 $((bad * rs)) linear $src 0
$((bad * rs)) $rs error
$(((bad + 1) * rs)) $((sectors - (bad + 1) * rs)) linear $src $(((bad + 1) * rs))"
dd if=/dev/mapper/bsrc of=/dev/null bs=4k skip="$bad" count=1 iflag=direct status=none 2>/dev/null &&
	fail "region $bad of the source should not be readable"

zero_meta "$meta"
clone_create c "$meta" "$dest" /dev/mapper/bsrc $rs 1 no_hydration
written=0
for run in "${runs[@]}"; do
	read -r first n <<<"$run"
	fill_pattern /dev/mapper/c 2 $((first * rs)) $((n * rs))
	fill_pattern "$ref" 2 $((first * rs)) $((n * rs))
	written=$((written + n))
done
log "${#runs[@]} runs of whole regions written, $written regions of $regions; unreadable source region $bad"
expect_hydrated c "$written" "regions hydrated by whole-region writes alone"
cmp_dev /dev/mapper/c "$ref" || fail "the clone differs from the reference after the writes"

log_mark
dm_message c enable_hydration
wait_hydrated c 180
assert_eq "$(clone_mode c)" rw "mode after hydrating across the holes"
n=$(log_since_mark | grep -c 'copying region [0-9]* failed' || true)
assert_eq "$n" 0 "copy failures logged (only a hole's source sectors fail)"
cmp_dev /dev/mapper/c "$ref" || fail "the hydrated clone differs from the reference"
dm_remove c
cmp_dev "$dest" "$ref" || fail "the destination differs from the reference"
log "ok"
