#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The status line follows the grammar of Documentation/dm-clone.rst
# ("Status") word for word, and its numbers keep their invariants while a
# slow hydration runs (source behind dm-delay, threshold 4, batch 2):
# hydrated never decreases nor exceeds the total, total = ceil(length /
# region size), at most `threshold` regions in flight, used <= total
# metadata blocks; at the end all regions hydrated and none in flight.
# `dmsetup status --noflush` works too. The features show the live state:
# no_hydration follows disable/enable_hydration, and no_discard_passdown
# appears for a destination that cannot discard (null_blk) even when the
# table does not ask for it. Without core arguments the default tunables
# are printed (numbers > 0).
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"

need_module
need_module dm-delay
need_cmd dmsetup dmclone-pattern

src=$(mkdev src 8)			# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 4)			# 1024 metadata blocks
fill_pattern "$src" 1
slow=$(slow_dev slowsrc "$src" 100)

LEN=16360 REGION=64			# 256 regions, the last one partial
TOTAL=$(regions_of $LEN $REGION)
assert_eq "$TOTAL" 256 "test setup: regions"
dm_create c "0 $LEN clone $md $dst $slow $REGION 0 4 hydration_threshold 4 hydration_batch_size 2"
assert_match "$(dmsetup status c)" "^0 $LEN clone 8 " "status line prefix"

log "sampling the status during hydration"
prev=0 mid=0 samples=0 busy=0 end=$((SECONDS + 90))
while :; do
	if ((samples % 4 == 3)); then
		st=$(dmsetup status --noflush c) || fail "dmsetup status --noflush failed"
		st=${st#"0 $LEN clone "}
	else
		st=$(clone_status c)
	fi
	parse_status "$st" || fail "sample $samples: bad status"
	samples=$((samples + 1))
	what="sample $samples: '$st'"
	assert_eq "$ST_REGION" $REGION "region size, $what"
	assert_eq "$ST_REGIONS" "$TOTAL" "total regions, $what"
	assert_eq "$ST_MD_TOTAL" 1024 "total metadata blocks (4 MiB / 4 KiB), $what"
	[ "$ST_MD_USED" -gt 0 ] && [ "$ST_MD_USED" -le "$ST_MD_TOTAL" ] ||
		fail "used metadata blocks out of range, $what"
	[ "$ST_HYDRATED" -ge "$prev" ] || fail "hydrated went down from $prev, $what"
	[ "$ST_HYDRATED" -le "$ST_REGIONS" ] || fail "hydrated > total, $what"
	[ "$ST_HYDRATING" -le 4 ] || fail "more regions in flight than the threshold 4, $what"
	[ $((ST_HYDRATED + ST_HYDRATING)) -le "$ST_REGIONS" ] ||
		fail "hydrated + hydrating > total, $what"
	assert_eq "$ST_FEATURES" "" "features, $what"
	assert_eq "$ST_T $ST_B" "4 2" "tunables, $what"
	assert_eq "$ST_MODE" rw "mode, $what"
	prev=$ST_HYDRATED
	[ "$ST_HYDRATED" -gt 0 ] && [ "$ST_HYDRATED" -lt "$ST_REGIONS" ] && mid=$((mid + 1))
	[ "$ST_HYDRATING" -gt 0 ] && busy=$((busy + 1))
	[ "$ST_HYDRATED" = "$ST_REGIONS" ] && break
	[ $SECONDS -lt $end ] || fail "hydration did not finish in 90 s: $st"
	sleep 0.1
done
log "$samples samples, $mid mid-way, $busy with copies in flight"
# The source is slow: the test must have seen the hydration under way,
# or it checked nothing.
[ $mid -ge 5 ] || fail "only $mid samples saw a partial hydration: the test did not observe it"
[ $busy -ge 3 ] || fail "only $busy samples saw copies in flight"
wait_for 10 hydrating_is c 0 || fail "copies still in flight after hydration: $(clone_status c)"
clone_parse c
assert_eq "$ST_HYDRATED/$ST_REGIONS $ST_HYDRATING" "$TOTAL/$TOTAL 0" "final status"
cmp_dev /dev/mapper/c "$src" $LEN

log "status of a suspended clone"
dmsetup suspend c
clone_parse c
assert_eq "$ST_HYDRATED/$ST_REGIONS $ST_HYDRATING $ST_MODE" "$TOTAL/$TOTAL 0 rw" "status while suspended"
st=$(dmsetup status --noflush c) || fail "dmsetup status --noflush failed while suspended"
parse_status "${st#"0 $LEN clone "}" || fail "bad --noflush status while suspended"
dmsetup resume c

log "no_hydration follows the messages"
dm_message c disable_hydration
clone_parse c
assert_eq "$ST_NFEATURES $ST_FEATURES" "1 no_hydration" "features after disable_hydration"
dm_message c enable_hydration
clone_parse c
assert_eq "$ST_NFEATURES $ST_FEATURES" "0 " "features after enable_hydration"
assert_eq "$(dm_table c)" "0 $LEN clone $(dev_majmin "$md") $(dev_majmin "$dst") $(dev_majmin "$slow") $REGION 0 4 hydration_threshold 4 hydration_batch_size 2" "table after messages"
dm_remove c
dm_remove slowsrc

log "default tunables"
for region in 8 128 2097152; do
	wipe_md "$md"
	dm_create d "0 16384 clone $md $dst $src $region 1 no_hydration"
	clone_parse d
	log "region $region: hydration_threshold $ST_T hydration_batch_size $ST_B"
	[ "$ST_T" -gt 0 ] && [ "$ST_B" -gt 0 ] ||
		fail "default tunables must be > 0, region $region: $(clone_status d)"
	assert_eq "$ST_REGIONS" "$(regions_of 16384 $region)" "regions, region size $region"
	dm_remove d
done

# brd discards on newer kernels; a memory-backed null_blk does not, on all.
log "a destination without discard support (null_blk)"
need_module null_blk nr_devices=1 gb=1 memory_backed=1
ram=/dev/nullb0
[ -b $ram ] || fail "null_blk created no $ram (test setup)"
assert_eq "$(cat /sys/block/nullb0/queue/discard_max_bytes)" 0 "null_blk's discard support (test setup)"
for spec in "8|1 no_discard_passdown" \
	"8 1 no_hydration|2 no_discard_passdown no_hydration" \
	"8 1 no_discard_passdown|1 no_discard_passdown" \
	"8 2 no_hydration No_Discard_Passdown|2 no_discard_passdown no_hydration"; do
	args=${spec%|*} want=${spec#*|}
	wipe_md "$md"
	log_mark
	dm_create r "0 16384 clone $md $ram $src $args"
	clone_parse r
	assert_eq "$ST_NFEATURES $ST_FEATURES" "$want" "features of '$args' on null_blk"
	assert_eq "$(dm_table r)" "0 16384 clone $(dev_majmin "$md") $(dev_majmin "$ram") $(dev_majmin "$src") $args" "table of '$args' on null_blk"
	# Switching passdown off by itself is said in the kernel log.
	case "$args" in
	*[Nn][Oo]_[Dd]iscard*) ;;
	*) log_grep -i "passdown" ||
		fail "no kernel log line about disabling discard passdown on null_blk" ;;
	esac
	dm_remove r
done

log "ok"
