#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Writes to unhydrated regions (no_hydration, 64 KiB regions), checked
# against a reference device that starts as a copy of the source and gets
# the same writes: partial writes inside a region, 512-byte writes at odd
# sectors, a write straddling two regions, an aligned whole-region write,
# aligned and unaligned multi-region writes, a write over unhydrated and
# hydrated regions, FUA (O_DIRECT|O_DSYNC) partial
# and whole-region writes, buffered writes, the first and the partial last
# region. Right after the writes: the clone equals the reference, exactly
# the touched regions are hydrated, and on the destination (prefilled with
# another pattern) the touched regions equal the reference while every
# other region is untouched. Then after enable_hydration and completion:
# the clone, then the destination itself equal the reference, and still
# after swapping the table to linear over the destination. Last, sixteen
# partial writes to distinct uncopied regions at once, through a clone
# with a threshold of one region over a 100 ms source: all land, on the
# clone and the destination.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd

rs=128						# 64 KiB regions
shift_rs=7
src=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
ref=$(mkdev ref 8)
meta=$(mkdev meta 4)
len=$((16384 - 88))				# last region (127) has 40 sectors
nr=$(((len + rs - 1) / rs))

fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9

CLONE_LEN=$len clone_create c "$meta" "$dest" "$src" $rs 1 no_hydration
clone=/dev/mapper/c
expect_hydrated c 0

declare -A touched=()
seed=20
# w HOW START COUNT: write COUNT sectors of a new pattern at START to the
# clone (HOW: pattern = dmclone-pattern, O_DIRECT + fsync; fua = one
# O_DIRECT|O_DSYNC write; buffered = one buffered write + fsync) and to
# the reference; note the regions touched.
w() {
	local how=$1 start=$2 count=$3 r first last
	seed=$((seed + 1))
	case "$how" in
	pattern) dmclone-pattern write "$clone" $seed "$start" "$count" ;;
	fua) dd_pattern "$clone" $seed "$start" "$count" direct,dsync ;;
	buffered) dd_pattern "$clone" $seed "$start" "$count" "" ;;
	esac || fail "$how write of sectors $start+$count failed"
	dmclone-pattern write "$ref" $seed "$start" "$count"
	read -r first last < <(region_range_of "$start" "$count" $shift_rs)
	for ((r = first; r <= last; r++)); do touched[$r]=1; done
}

log "writing"
w pattern 0 1					# region 0, first sector
w pattern $((2 * rs + 10)) 20			# inside region 2
w pattern $((4 * rs + 1)) 1			# 512 B at odd sectors
w pattern $((4 * rs + 127)) 1			#  (last sector of region 4)
w pattern $((6 * rs + 63)) 1
w pattern $((8 * rs + 120)) 16			# straddles regions 8 and 9
w pattern $((11 * rs)) $rs			# exactly region 11
w pattern $((14 * rs)) $((3 * rs))		# regions 14-16, aligned
w pattern $((10 * rs + 100)) $((rs + 78))	# 10, 11 (hydrated now), 12
w pattern $((20 * rs + 64)) $((3 * rs))		# regions 20-23, unaligned
w fua $((26 * rs + 5)) 7			# FUA, partial
w fua $((28 * rs)) $rs				# FUA, whole region 28
w fua $((30 * rs + 100)) 60			# FUA, straddles 30 and 31
w buffered $((33 * rs + 8)) 8			# buffered, one 4 KiB page
w buffered $((35 * rs + 3)) 1			# buffered 512 B (page read-modify-write)
w pattern $((50 * rs)) 1			# again into region 50,
w pattern $((50 * rs + 2)) 1			#  now hydrated
w pattern $((126 * rs + 100)) 50		# regions 126 and the partial 127
w pattern $((len - 1)) 1			# the very last sector
ntouched=${#touched[@]}
log "touched regions: $(printf '%s\n' "${!touched[@]}" | sort -n | tr '\n' ' ')"

log "checking right after the writes"
cmp_dev "$clone" "$ref" "$len" || fail "clone differs from the reference after the writes"
st=$(clone_status c)
assert_eq "$(clone_hydrated c)" "$ntouched" "hydrated regions = regions written: $st"
assert_eq "$(clone_hydrating c)" 0 "regions in flight: $st"
# On the destination: written regions hold the reference, the others are
# untouched (region-sized checks; the last region is partial).
bad=""
for ((r = 0; r < nr; r++)); do
	s=$((r * rs))
	n=$((len - s < rs ? len - s : rs))
	if [ -n "${touched[$r]:-}" ]; then
		cmp_dev "$dest" "$ref" $n $s $s >/dev/null || bad+=" $r(written)"
	else
		check_pattern "$dest" 9 $s $n >/dev/null 2>&1 || bad+=" $r(unwritten)"
	fi
done
if [ -n "$bad" ]; then
	identify_dev "$dest" 0 "$len" | head -n 60
	fail "destination regions wrong:$bad"
fi
check_pattern "$dest" 9 "$len" 88 || fail "destination changed past the length"

log "hydrating the rest"
dm_message c enable_hydration
wait_hydrated c 120
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "hydrated"
cmp_dev "$clone" "$ref" "$len" || fail "clone differs from the reference after hydration"
# A write to hydrated regions goes straight to the destination.
w pattern $((60 * rs + 17)) 300
cmp_dev "$clone" "$ref" "$len" || fail "clone differs after a write to hydrated regions"

log "the destination itself"
cmp_dev "$dest" "$ref" "$len" || fail "destination differs from the reference"
check_pattern "$dest" 9 "$len" 88 || fail "destination changed past the length"
check_pattern "$src" 1 || fail "the source changed"

log "swapping to linear"
dmsetup suspend c
dmsetup load c --table "0 $len linear $dest 0"
dmsetup resume c
assert_match "$(dm_table c)" "^0 $len linear " "table after the swap"
drop_caches
cmp_dev "$clone" "$ref" "$len" || fail "linear device differs from the reference"

log "sixteen writes to uncopied regions at once, threshold 1, a slow source"
# A threshold of one 64 KiB region leaves the copy engine one buffer for
# the budget: the copies these writes wait for get buffers of their own
# beyond it. Each write is part of a region; all must land.
dest2=$(mkdev dest2 8)
ref2=$(mkdev ref2 8)
meta2=$(mkdev meta2 4)
fill_pattern "$ref2" 1
fill_pattern "$dest2" 9
dm_create slow "$(delay_table "$src" 100)"
dm_create c2 "$(clone_table "$meta2" "$dest2" /dev/mapper/slow $rs 1 no_hydration 2 hydration_threshold 1)"
pids=()
for ((i = 0; i < 16; i++)); do
	at=$(((3 + 7 * i) * rs + 5))
	dmclone-pattern gen $((40 + i)) "$at" 8 >"$TEST_TMP/w$i"
	dd if="$TEST_TMP/w$i" of="$ref2" bs=512 seek="$at" oflag=direct conv=notrunc status=none
	dd if="$TEST_TMP/w$i" of=/dev/mapper/c2 bs=512 seek="$at" oflag=direct conv=notrunc status=none &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a write to an uncopied region failed"
done
expect_hydrated c2 16
cmp_dev /dev/mapper/c2 "$ref2" 16384 || fail "the clone differs after sixteen writes at once"
for ((i = 0; i < 16; i++)); do
	r=$((3 + 7 * i))
	cmp_dev "$dest2" "$ref2" "$rs" $((r * rs)) $((r * rs)) ||
		fail "region $r differs on the destination"
done
dm_remove c2
dm_remove slow
log "ok"
