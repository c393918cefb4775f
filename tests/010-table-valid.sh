#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Valid table lines are accepted and obeyed: the minimal table; each
# feature (also in mixed case, and both); core arguments (mixed-case keys,
# a key given twice: the last wins; threshold 0 = no background copying;
# batch 0; the largest values); region sizes 8 (also on devices with
# 4096-byte sectors), 1024 and 2097152, with a partial last region; a
# metadata device larger than ~15.9 GiB (first part used, with a warning);
# a clone segment after and before a linear segment (non-zero start)
# reading back byte-exact. `dmsetup table` prints exactly "<md maj:min>
# <dest maj:min> <src maj:min> <args as given>" and the status reflects the
# table.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"

need_module
need_cmd dmsetup dmclone-pattern

src=$(mkdev src 8)			# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 4)
fill_pattern "$src" 1
MD=$(dev_majmin "$md") DST=$(dev_majmin "$dst") SRC=$(dev_majmin "$src")
LEN=16384

# try_table NAME ARGS [LEN]: create a clone over the first LEN sectors
# (default the whole source) with ARGS from the region size on, on fresh
# metadata; check `dmsetup table` echoes ARGS exactly and the status is
# well-formed and matches the region size and length. Leaves the status
# parsed (ST_*).
try_table() {
	local name=$1 args=$2 len=${3:-$LEN} region
	wipe_md "$md"
	dm_create "$name" "0 $len clone $md $dst $src $args"
	assert_eq "$(dm_table "$name")" "0 $len clone $MD $DST $SRC $args" "table of '$args'"
	clone_parse "$name"
	region=${args%% *}
	assert_eq "$ST_REGION" "$region" "status region size of '$args'"
	assert_eq "$ST_REGIONS" "$(regions_of "$len" "$region")" "status regions of '$args'"
	assert_eq "$ST_MODE" rw "mode of '$args'"
}

# hydrate_and_check NAME [LEN]: wait for the copy, then the clone and the
# destination hold the source's first LEN sectors, byte-exact.
hydrate_and_check() {
	local len=${2:-$LEN}
	wait_hydrated "$1" 60
	cmp_dev "/dev/mapper/$1" "$src" "$len"
	cmp_dev "$dst" "$src" "$len"
}

log "minimal table"
zero_dev "$dst"
try_table c "8"
assert_eq "$ST_NFEATURES" 0 "feature count of a minimal table on a discard-capable destination"
[ "$ST_T" -gt 0 ] && [ "$ST_B" -gt 0 ] || fail "default tunables must be > 0: T=$ST_T B=$ST_B"
hydrate_and_check c
dm_remove c

log "explicit empty feature and core groups"
try_table c "8 0"
assert_eq "$ST_FEATURES" "" "features of '8 0'"
dm_remove c
try_table c "8 0 0"
assert_eq "$ST_FEATURES" "" "features of '8 0 0'"
dm_remove c

log "features"
checked_nh=0 checked_h=0
for spec in "1 no_hydration|no_hydration" \
	"1 NO_HYDRATION|no_hydration" \
	"1 no_discard_passdown|no_discard_passdown" \
	"1 No_Discard_Passdown|no_discard_passdown" \
	"2 no_hydration no_discard_passdown|no_discard_passdown no_hydration" \
	"2 No_Discard_PASSDOWN no_Hydration|no_discard_passdown no_hydration"; do
	feat=${spec%|*} want=${spec#*|}
	try_table c "8 $feat"
	assert_eq "$ST_FEATURES" "$want" "status features of table features '$feat'"
	case "$want" in
	*no_hydration*)
		# No background copying, even after a while.
		assert_hydrated_stays c 0 3
		if [ $checked_nh = 0 ]; then
			# Nor by reads (they go to the source, copy nothing).
			cmp_dev /dev/mapper/c "$src"
			assert_hydrated_stays c 0 2
			checked_nh=1
		fi
		;;
	*)
		if [ $checked_h = 0 ]; then
			hydrate_and_check c
			checked_h=1
		fi
		;;
	esac
	dm_remove c
done

log "core arguments"
# spec: args | expected T | expected B (- = the default, checked > 0)
for spec in "8 0 2 hydration_threshold 7|7|-" \
	"8 0 2 hydration_batch_size 3|-|3" \
	"8 0 4 hydration_threshold 5 hydration_batch_size 3|5|3" \
	"8 0 4 Hydration_Threshold 6 HYDRATION_BATCH_SIZE 2|6|2" \
	"8 0 4 hydration_batch_size 9 hydration_threshold 17|17|9" \
	"8 0 4 hydration_threshold 5 hydration_threshold 9|9|-" \
	"8 0 4 hydration_batch_size 5 HYDRATION_batch_size 11|-|11" \
	"8 1 no_discard_passdown 2 hydration_threshold 4294967295|4294967295|-"; do
	IFS='|' read -r args t b <<<"$spec"
	try_table c "$args"
	if [ "$t" = - ]; then
		[ "$ST_T" -gt 0 ] || fail "default threshold must be > 0 for '$args': $ST_T"
	else
		assert_eq "$ST_T" "$t" "hydration_threshold of '$args'"
	fi
	if [ "$b" = - ]; then
		[ "$ST_B" -gt 0 ] || fail "default batch size must be > 0 for '$args': $ST_B"
	else
		assert_eq "$ST_B" "$b" "hydration_batch_size of '$args'"
	fi
	dm_remove c
done

log "threshold 0: no background copying, until the threshold is raised"
zero_dev "$dst"
try_table c "8 0 2 hydration_threshold 0"
assert_eq "$ST_T" 0 "threshold 0"
assert_eq "$ST_FEATURES" "" "features with threshold 0 (hydration is not disabled)"
assert_hydrated_stays c 0 8
assert_eq "$(identify_dev "$dst")" "0-16383: zeros" "destination with threshold 0"
cmp_dev /dev/mapper/c "$src"
dm_message c hydration_threshold 64
hydrate_and_check c
dm_remove c

log "batch size 0 (means 1): hydration completes"
zero_dev "$dst"
try_table c "8 0 4 hydration_threshold 16 hydration_batch_size 0"
assert_eq "$ST_T" 16 "threshold with batch 0"
case "$ST_B" in 0|1) ;; *) fail "hydration_batch_size 0 must print 0 (as given) or 1, got $ST_B" ;; esac
hydrate_and_check c
dm_remove c

log "the largest tunables: hydration completes"
zero_dev "$dst"
try_table c "8 0 4 hydration_threshold 4294967295 hydration_batch_size 4294967295"
assert_eq "$ST_T $ST_B" "4294967295 4294967295" "largest tunables"
hydrate_and_check c
dm_remove c

log "region size 2097152 (1 GiB): one partial region"
zero_dev "$dst"
try_table c "2097152"
assert_eq "$ST_REGIONS" 1 "regions with a 1 GiB region over 8 MiB"
hydrate_and_check c
dm_remove c

log "region size 1024 over a length that is not a multiple of it"
zero_dev "$dst"
try_table c "1024 1 no_discard_passdown" 16000
assert_eq "$ST_REGIONS" 16 "regions of 16000 sectors in regions of 1024"
hydrate_and_check c 16000
# Bytes past the length are never touched.
assert_eq "$(identify_dev "$dst" 16000 384)" "16000-16383: zeros" "destination past the length"
dm_remove c

log "a length that is not a multiple of the region size (last region: 5 sectors)"
zero_dev "$dst"
try_table c "8" 16381
assert_eq "$ST_REGIONS" 2048 "regions of 16381 sectors in regions of 8"
hydrate_and_check c 16381
assert_eq "$(identify_dev "$dst" 16381 3)" "16381-16383: zeros" "destination past the length"
dm_remove c

log "a metadata device larger than ~15.9 GiB: the first part is used"
# A sparse 17 GiB file: only the blocks written take memory.
bigmd=$(mkdev bigmd $((17 * 1024)))
zero_dev "$dst"
log_mark
dm_create big "0 $LEN clone $bigmd $dst $src 8 1 no_hydration"
clone_parse big
assert_eq "$ST_MD_TOTAL" $((255 * (16384 - 64))) "metadata blocks of a 17 GiB metadata device"
assert_eq "$ST_REGIONS" 2048 "regions with a big metadata device"
log_grep "clone.*metadata.*larger" ||
	fail "no kernel warning about the metadata device being too large: $(log_since_mark)"
dm_message big enable_hydration
wait_hydrated big 60
cmp_dev /dev/mapper/big "$src"
dm_remove big
# It opens again (a reload over the committed metadata).
dm_create big "0 $LEN clone $bigmd $dst $src 8"
clone_parse big
assert_eq "$ST_HYDRATED/$ST_REGIONS" 2048/2048 "status over reopened big metadata"
dm_remove big

log "region size 8 on devices with 4096-byte logical blocks"
src4k=$(mkdev src4k 8 4096)
dst4k=$(mkdev dst4k 8 4096)
assert_eq "$(blockdev --getss "$src4k")" 4096 "logical block size of $src4k"
fill_pattern "$src4k" 4
wipe_md "$md"
dm_create c4k "0 $LEN clone $md $dst4k $src4k 8"
assert_eq "$(dm_table c4k)" "0 $LEN clone $MD $(dev_majmin "$dst4k") $(dev_majmin "$src4k") 8" "table on 4k devices"
clone_parse c4k
assert_eq "$ST_REGIONS" 2048 "regions on 4k devices"
wait_hydrated c4k 60
cmp_dev /dev/mapper/c4k "$src4k"
cmp_dev "$dst4k" "$src4k"
dm_remove c4k

# A clone segment at a non-zero start that is not a multiple of the
# region size: region N is at sector N * region size of both devices,
# whatever the start. Reads before and after hydration, and a write, land
# at the right sectors.
lin=$(mkdev lin 1)			# 2048 sectors
fill_pattern "$lin" 3
LIN=$(dev_majmin "$lin")

log "linear segment, then the clone (start 1000)"
zero_dev "$dst"
wipe_md "$md"
dm_create ms "0 1000 linear $lin 0
1000 $LEN clone $md $dst $src 64 1 no_hydration"
assert_eq "$(dm_table ms)" "0 1000 linear $LIN 0
1000 $LEN clone $MD $DST $SRC 64 1 no_hydration" "two-segment table"
assert_match "$(dmsetup status ms | sed -n 2p)" "^1000 $LEN clone " "status of the clone segment"
clone_parse ms
assert_eq "$ST_REGIONS" 256 "regions of the clone segment"
cmp_dev /dev/mapper/ms "$lin" 1000
cmp_dev /dev/mapper/ms "$src" "$LEN" 1000 0
# A write inside one region (clone sectors 70-119, region 1) lands at
# destination sectors 70-119 and hydrates that region only.
fill_pattern /dev/mapper/ms 2 1070 50
cmp_dev /dev/mapper/ms "$dst" 50 1070 70
clone_parse ms
assert_eq "$ST_HYDRATED" 1 "regions hydrated by one small write"
cmp_dev "$dst" "$src" 6 64 64		# the rest of region 1 was copied
cmp_dev "$dst" "$src" 8 120 120
dmsetup message ms 1000 enable_hydration	# sector 1000: the clone segment
wait_hydrated ms 60
cmp_dev /dev/mapper/ms "$lin" 1000
cmp_dev /dev/mapper/ms "$dst" "$LEN" 1000 0
cmp_dev "$dst" "$src" 70
cmp_dev "$dst" "$src" $((LEN - 120)) 120 120
dmclone-pattern check /dev/mapper/ms 2 1070 50
dm_remove ms

log "the clone (part of the devices), then a linear segment"
zero_dev "$dst"
wipe_md "$md"
dm_create ms "0 12288 clone $md $dst $src 8
12288 2048 linear $lin 0"
assert_eq "$(dm_table ms | head -n 1)" "0 12288 clone $MD $DST $SRC 8" "table of the first segment"
cmp_dev /dev/mapper/ms "$src" 12288
cmp_dev /dev/mapper/ms "$lin" 2048 12288 0
wait_hydrated ms 60
clone_parse ms
assert_eq "$ST_REGIONS" 1536 "regions of a 12288-sector clone"
cmp_dev /dev/mapper/ms "$src" 12288
cmp_dev /dev/mapper/ms "$lin" 2048 12288 0
cmp_dev "$dst" "$src" 12288
assert_eq "$(identify_dev "$dst" 12288 4096)" "12288-16383: zeros" "destination past the clone's length"
dm_remove ms

log "ok"
