#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A clone as the middle segment of a three-segment table: linear, clone at
# a non-zero start that is not a multiple of the region size, linear. The
# whole device reads byte-exact (each segment its own device); the
# clone's status line is reported for its segment; writes straddling both
# segment boundaries and inside the clone land where they should: the
# clone's sector 0 is destination sector 0 (region N at N * region size,
# no offset by the segment's start); hydration completes; the destination
# then holds exactly the clone segment's data from sector 0 and nothing
# past the clone's length; a write after hydration lands too.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern dd

rs=64
a=1000						# linear head: sectors 0-999
lc=$((100 * rs + 24))				# clone: 101 regions, the last 24 sectors
b=3000						# linear tail
total=$((a + lc + b))
nr=101
src=$(mkdev src 4)				# 8192 sectors >= lc
dest=$(mkdev dest 4)
lin1=$(mkdev lin1 1)
lin2=$(mkdev lin2 2)
meta=$(mkdev meta 4)
ref=$(mkdev ref 8)				# the whole device's expected content
dest_sz=$(dev_sectors "$dest")

fill_pattern "$src" 1
fill_pattern "$dest" 9
fill_pattern "$lin1" 3
fill_pattern "$lin2" 4
# ref = lin1[0, a) . src[0, lc) . lin2[0, b)
copy() {	# copy FROM TO SKIP SEEK COUNT (sectors)
	dd if="$1" of="$2" bs=512 skip="$3" seek="$4" count="$5" iflag=direct oflag=direct \
		conv=notrunc status=none
}
copy "$lin1" "$ref" 0 0 $a
copy "$src" "$ref" 0 $a $lc
copy "$lin2" "$ref" 0 $((a + lc)) $b

dm_create m "0 $a linear $lin1 0
$a $lc clone $meta $dest $src $rs 1 no_hydration
$((a + lc)) $b linear $lin2 0"
dev=/dev/mapper/m
assert_eq "$(dev_sectors $dev)" $total "device size"
assert_match "$(dm_status m | sed -n 2p)" "^$a $lc clone 8 [0-9]+/[0-9]+ $rs 0/$nr 0 1 no_hydration " \
	"status of the clone segment"

log "reading the whole device"
cmp_dev "$dev" "$ref" $total || fail "the device does not read its segments"

# w START COUNT SEED: write through the device and to the reference.
w() {
	dmclone-pattern write "$dev" "$3" "$1" "$2"
	dmclone-pattern write "$ref" "$3" "$1" "$2"
}

log "writing across the segment boundaries"
w $((a - 4)) 8 11				# lin1 | clone region 0 (sectors 0-3)
w $((a + lc - 5)) 9 12				# clone's last region | lin2
w $((a + 5 * rs)) $rs 13			# exactly clone region 5
w $((a + 7 * rs + 30)) 2 14			# inside clone region 7
cmp_dev "$dev" "$ref" $total || fail "device differs from the reference after the writes"
st=$(clone_status m)
assert_eq "$(clone_hydrated m)" 4 "hydrated (regions 0, 5, 7, 100): $st"
# Region 0 of the clone is at destination sector 0.
cmp_dev "$dest" "$ref" $rs 0 $a || fail "clone region 0 is not at destination sector 0"
cmp_dev "$dest" "$ref" $rs $((5 * rs)) $((a + 5 * rs)) || fail "clone region 5 is misplaced"
cmp_dev "$dest" "$ref" 24 $((100 * rs)) $((a + 100 * rs)) || fail "clone region 100 is misplaced"
check_pattern "$dest" 9 $rs $((4 * rs)) || fail "destination regions 1-4 changed"
check_pattern "$lin1" 3 0 $((a - 4)) || fail "linear head changed before the write"
cmp_dev "$lin1" "$ref" 4 $((a - 4)) $((a - 4)) || fail "linear head lacks the write"
cmp_dev "$lin2" "$ref" 4 0 $((a + lc)) || fail "linear tail lacks the write"
check_pattern "$lin2" 4 4 $((b - 4)) || fail "linear tail changed after the write"

log "hydrating"
dmsetup message m $a enable_hydration	# the clone segment's sector
wait_hydrated m 120
assert_eq "$(clone_hydrated m)/$(clone_regions m)" "$nr/$nr" "hydrated"
cmp_dev "$dev" "$ref" $total || fail "device differs from the reference after hydration"
cmp_dev "$dest" "$ref" $lc 0 $a || fail "destination does not hold the clone's data from sector 0"
check_pattern "$dest" 9 $lc $((dest_sz - lc)) || fail "destination changed past the clone's length"
check_pattern "$src" 1 || fail "the source changed"

w $((a - 100)) $((lc + 200)) 15			# over all three segments
cmp_dev "$dev" "$ref" $total || fail "device differs after a write over all segments"
cmp_dev "$dest" "$ref" $lc 0 $a || fail "destination lacks the write"
check_pattern "$dest" 9 $lc $((dest_sz - lc)) || fail "destination changed past the clone's length"
log "ok"
