#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Full background hydration is byte-exact, for region sizes 8, 64, 128 and
# 1024 sectors crossed with hydration_threshold/hydration_batch_size 1/1,
# 4/2, 64/16 and the defaults, with lengths that are and are not a multiple
# of the region size (partial last region). For each: the clone reads the
# source, every region ends hydrated with none in flight; once hydrated,
# the clone reads the destination (changing the source underneath changes
# nothing); the destination holds the source's data over the length and
# its bytes past the length (prefilled with another pattern) are untouched
# although the source has data there; the metadata records all regions.
# On the debug kernel, a sample: each region size and each pair once.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern

src=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
meta=$(mkdev meta 4)
dest_sz=$(dev_sectors "$dest")

# Region sizes and how many regions each gets (so the slowest settings,
# one region at a time, stay quick); lengths at most 12288 sectors, so the
# source and the destination both extend past every length.
regions=(8 64 128 1024)
declare -A nregions=([8]=400 [64]=120 [128]=70 [1024]=11)
pairs=("1 1" "4 2" "64 16" "default")

# On a slow kernel (see slow_kernel), one pair a region size, each pair
# once: the four region sizes, the four pairs and the three kinds of
# last region, in 4 cases of the 16.
i=0 k=0
for rs in "${regions[@]}"; do
	for j in "${!pairs[@]}"; do
		pair=${pairs[$j]}
		i=$((i + 1))
		if slow_kernel && [ "$j" != "$k" ]; then
			continue
		fi
		# Partial last region for pairs 1 and 3: one sector, region-1 sectors.
		case $j in
		1) rem=1 ;;
		3) rem=$((rs - 1)) ;;
		*) rem=0 ;;
		esac
		len=$((rs * ${nregions[$rs]} + rem))
		nr=$(((len + rs - 1) / rs))
		seed=$((100 + i))
		if [ "$pair" = default ]; then
			words=()
			t_want="" b_want=""
		else
			# shellcheck disable=SC2086 # split into its words
			set -- $pair
			words=(0 4 hydration_threshold "$1" hydration_batch_size "$2")
			t_want=$1 b_want=$2
		fi
		log "region $rs, threshold/batch $pair, length $len ($nr regions, last $((rem ? rem : rs)) sectors)"

		# Source: a fresh seed over the whole device (data past the
		# length too); destination: another pattern everywhere.
		fill_pattern "$src" "$seed"
		fill_pattern "$dest" 9
		zero_meta "$meta"

		CLONE_LEN=$len clone_create c "$meta" "$dest" "$src" "$rs" "${words[@]}"
		wait_hydrated c 120
		st=$(clone_status c)
		assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "hydrated/total: $st"
		assert_eq "$(clone_hydrating c)" 0 "regions in flight after completion: $st"
		if [ -n "$t_want" ]; then
			assert_eq "$(clone_core_arg c hydration_threshold)" "$t_want" "threshold: $st"
			assert_eq "$(clone_core_arg c hydration_batch_size)" "$b_want" "batch: $st"
		fi
		assert_eq "$(dev_sectors /dev/mapper/c)" "$len" "clone size"

		check_pattern /dev/mapper/c "$seed" 0 "$len" ||
			fail "region $rs $pair: clone does not read the source's data"
		# Hydrated: reads come from the destination, not the source.
		fill_pattern "$src" 7 0 "$len"
		check_pattern /dev/mapper/c "$seed" 0 "$len" ||
			fail "region $rs $pair: after hydration the clone still reads the source"
		dm_remove c

		# The destination itself.
		check_pattern "$dest" "$seed" 0 "$len" ||
			fail "region $rs $pair: destination does not hold the source's data"
		check_pattern "$dest" 9 "$len" $((dest_sz - len)) ||
			fail "region $rs $pair: destination changed past the length $len"

		# The metadata says everything is hydrated (no copying allowed now).
		CLONE_LEN=$len clone_create c "$meta" "$dest" "$src" "$rs" 1 no_hydration
		assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" \
			"hydrated/total after reload: $(clone_status c)"
		check_pattern /dev/mapper/c "$seed" 0 "$len" ||
			fail "region $rs $pair: reloaded clone does not read the destination"
		dm_remove c
	done
	k=$((k + 1))
done
log "ok"
