#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Discards (blkdiscard on the clone, no_hydration, 64 KiB regions, partial
# last region), with and without passdown. Only regions a discard covers
# completely are affected: the hydrated count grows by exactly their
# number; a discard inside one region (or ending inside the partial last
# region) changes nothing; partially covered regions keep their data (the
# source's). With passdown, exactly the covered regions read back as zeros
# on the destination (prefilled with another pattern) and through the
# clone, not one byte outside them changes on the destination, not even
# past the target length; a discard of regions already hydrated reaches the
# destination too, a partial one does not. Without passdown
# (no_discard_passdown) the destination is not changed at all and the
# covered regions are marked hydrated (the clone reads the destination
# there). After hydration completes, the clone and the destination hold the
# expected data.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern blkdiscard dd

rs=128						# 64 KiB regions
src=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
meta=$(mkdev meta 4)
ref_dest=$(mkdev ref_dest 8)			# what the destination must hold
ref_clone=$(mkdev ref_clone 8)			# what the clone must read
len=$((64 * rs + 40))				# 65 regions, the last one 40 sectors
nr=65
dest_sz=$(dev_sectors "$dest")
clone=/dev/mapper/c
fill_pattern "$src" 1

# zero_range DEV START COUNT, copy_range FROM TO START COUNT (sectors).
zero_range() {
	dd if=/dev/zero of="$1" bs=512 seek="$2" count="$3" oflag=direct conv=notrunc status=none
}
copy_range() {
	dd if="$1" of="$2" bs=512 skip="$3" seek="$3" count="$4" iflag=direct oflag=direct \
		conv=notrunc status=none
}

# check_all WHAT: the destination (all of it) and the clone are as expected.
check_all() {
	cmp_dev "$dest" "$ref_dest" "$dest_sz" || {
		identify_dev "$dest" 0 "$dest_sz" | head -n 40
		fail "destination not as expected ($1)"
	}
	cmp_dev "$clone" "$ref_clone" "$len" || {
		identify_dev "$clone" 0 "$len" | head -n 40
		fail "clone not as expected ($1)"
	}
}

# disc START COUNT FIRST LAST NEW: discard sectors [START, START + COUNT)
# of the clone; FIRST-LAST (inclusive, "-" for none) are the regions it
# covers completely, NEW of them not hydrated before. Checks the hydrated
# count, updates the expected contents and checks everything.
disc() {
	local start=$1 count=$2 first=$3 last=$4 new=$5 h0 h1 s e
	h0=$(clone_hydrated c)
	if [ "$first" = - ]; then
		log "discard $start+$count (covers no region)"
	else
		log "discard $start+$count (covers regions $first-$last)"
	fi
	blkdiscard -o $((start * 512)) -l $((count * 512)) "$clone" ||
		fail "blkdiscard $start+$count failed"
	h1=$(clone_hydrated c)
	assert_eq "$((h1 - h0))" "$new" "newly hydrated regions after discarding $start+$count ($h0 -> $h1)"
	if [ "$first" != - ]; then
		s=$((first * rs))
		e=$(((last + 1) * rs))
		[ $e -gt $len ] && e=$len
		if [ "$passdown" = 1 ]; then
			zero_range "$ref_dest" $s $((e - s))
		fi
		# The clone now reads the destination there.
		copy_range "$ref_dest" "$ref_clone" $s $((e - s))
	fi
	check_all "after discarding $start+$count"
}

# wholewrite REGION SEED: write a whole region through the clone.
wholewrite() {
	local s=$(($1 * rs))
	dmclone-pattern write "$clone" "$2" $s $rs
	dmclone-pattern write "$ref_dest" "$2" $s $rs
	dmclone-pattern write "$ref_clone" "$2" $s $rs
}

# finish: hydrate the rest; the clone is unchanged by it, and the
# destination then holds what the clone reads (and nothing past the length).
finish() {
	dm_message c enable_hydration
	wait_hydrated c 120
	cmp_dev "$clone" "$ref_clone" "$len" || fail "clone changed by hydration"
	cmp_dev "$dest" "$ref_clone" "$len" || fail "destination differs from the clone's data"
	cmp_dev "$dest" "$ref_dest" $((dest_sz - len)) "$len" "$len" ||
		fail "destination changed past the length"
}

setup() {
	fill_pattern "$dest" 9
	fill_pattern "$ref_dest" 9
	dmclone-pattern write "$ref_clone" 1 0 "$len"
	zero_meta "$meta"
	CLONE_LEN=$len clone_create c "$meta" "$dest" "$src" $rs "$@"
	expect_hydrated c 0
	assert_eq "$(clone_regions c)" $nr "regions"
	check_all "fresh clone"
}

log "=== with passdown"
passdown=1
setup 1 no_hydration
assert_eq "$(clone_features c)" no_hydration "features: $(clone_status c)"
disc $((2 * rs + 8)) 64 - - 0			# inside one region
disc $((3 * rs)) $((rs - 1)) - - 0		# all of a region but one sector
disc $((4 * rs + 64)) $((3 * rs - 32)) 5 6 2	# across boundaries: 4, 7 partial
disc $((10 * rs)) $((2 * rs)) 10 11 2		# exactly regions 10-11
disc $((13 * rs)) $rs 13 13 1			# exactly region 13
disc $((64 * rs + 8)) 32 - - 0			# ends at the end, inside the last region
disc $((63 * rs + 64)) $((len - 63 * rs - 64)) 64 64 1	# covers the partial last region
wholewrite 20 30
expect_hydrated c 7
disc $((20 * rs)) $rs 20 20 0			# a hydrated region: reaches the destination
wholewrite 22 31
disc $((22 * rs + 10)) 50 - - 0			# part of a hydrated region: nothing
disc $((19 * rs + 1)) $((11 * rs - 1)) 20 29 8	# 20-29; 20 and 22 hydrated already
expect_hydrated c 16
finish
dm_remove c

log "=== without passdown"
passdown=0
setup 2 no_hydration no_discard_passdown
assert_eq "$(clone_features c)" "no_hydration no_discard_passdown" "features: $(clone_status c)"
disc $((2 * rs + 8)) 64 - - 0
disc $((4 * rs + 64)) $((3 * rs - 32)) 5 6 2
disc $((10 * rs)) $((2 * rs)) 10 11 2
disc $((64 * rs + 8)) 32 - - 0
disc $((63 * rs + 64)) $((len - 63 * rs - 64)) 64 64 1
wholewrite 20 30
disc $((20 * rs)) $rs 20 20 0			# hydrated: the destination keeps it
disc $((19 * rs + 1)) $((11 * rs - 1)) 20 29 9
expect_hydrated c $((5 + 1 + 9))
finish
dm_remove c
log "ok"
