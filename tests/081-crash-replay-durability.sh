#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Crash consistency by replay, the deterministic variant of 080: no
# background copying, one write at a time. The destination and the
# metadata are slices of one dm-log-writes device; on a no_hydration clone
# each of these writes into an unhydrated region is made durable and the
# log is marked after it returns: a FUA write (O_DIRECT|O_DSYNC) of a whole
# region, a FUA write of part of a region, a plain write of a whole region
# then fsync, a plain partial write then fsync. The log is replayed up to
# each mark in turn (tools/dmclone-replay --to-mark, incrementally,
# --coherent: see lib/replay.sh, which also checks that the whole log
# replays to the device it was taken of) and a
# clone opened on a copy of the replayed devices must read every write made
# durable so far, and the source's data everywhere else.
# timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/replay.sh"

need_module
need_module dm-log-writes
need_cmd dmclone-pattern dmclone-replay dd sync

rs=16					# 8 KiB regions
dsz=4096				# destination: 2 MiB, 256 regions
msz=8192				# metadata: 4 MiB

src=$(mkdev src 2)
logdev=$(mkdev log 32)
rams=$(mkbrd 3 8)			# logged, replay target, check copy
# shellcheck disable=SC2086,SC2116 # the names, on one line
read -r ram0 ram1 ram2 <<<"$(echo $rams)"
fill_pattern "$src" 1 >/dev/null
fill_pattern "$ram0" 99 0 $dsz >/dev/null	# neither source nor user data
dd if=/dev/zero of="$ram0" bs=512 seek=$dsz count=$msz oflag=direct status=none
dd if="$ram0" of="$ram1" bs=1M iflag=direct oflag=direct status=none
dd if=/dev/zero of="$logdev" bs=4096 count=1 oflag=direct conv=notrunc status=none

dm_create lw "0 $(dev_sectors "$ram0") log-writes $ram0 $logdev"
dm_create dst "0 $dsz linear /dev/mapper/lw 0"
dm_create mta "0 $msz linear /dev/mapper/lw $dsz"
clone_create c /dev/mapper/mta /dev/mapper/dst "$src" $rs 1 no_hydration
clone=/dev/mapper/c
clone_status c >/dev/null			# commits the fresh metadata

# The cases: name, first sector, sectors, how it is made durable.
cases=(
	"fua-whole-region	$((10 * rs))	$rs	dsync"
	"fua-partial-region	$((20 * rs + 8))	8	dsync"
	"fsync-whole-region	$((30 * rs))	$rs	fsync"
	"fsync-partial-region	$((40 * rs))	8	fsync"
)
seed=1000
for c in "${cases[@]}"; do
	IFS=$'\t' read -r name start count how <<<"$c"
	seed=$((seed + 1))
	oflag=direct,seek_bytes
	[ "$how" = fsync ] || oflag+=,dsync
	dmclone-pattern gen $seed "$start" "$count" |
		dd of=$clone bs=$((count * 512)) count=1 seek=$((start * 512)) \
			iflag=fullblock oflag=$oflag \
			conv=notrunc status=none || fail "$name: write failed"
	[ "$how" = dsync ] || sync $clone || fail "$name: fsync failed"
	dm_message lw mark "$name"
done
log "after the writes: $(clone_status c)"
dm_remove c
dm_remove mta
dm_remove dst
dm_remove lw
dmclone-replay list "$logdev" --all | sed 's/^/  /'
replay_check_model "$logdev" "$ram1" "$ram0" "$ram2" $((dsz + msz))

state=$TEST_TMP/replay.state
dm_create chd "0 $dsz linear $ram2 0"
dm_create chm "0 $msz linear $ram2 $dsz"
bad=0 seed=1000 n=0
for c in "${cases[@]}"; do
	IFS=$'\t' read -r name start count how <<<"$c"
	seed=$((seed + 1)) n=$((n + 1))
	dmclone-replay replay "$logdev" "$ram1" --to-mark "$name" --state "$state" --coherent 2>/dev/null ||
		fail "replay to mark $name failed"
	dd if="$ram1" of="$ram2" bs=1M count=$(((dsz + msz) / 2048)) iflag=direct oflag=direct status=none
	clone_create chc /dev/mapper/chm /dev/mapper/chd "$src" $rs 1 no_hydration
	st=$(clone_status chc)
	# Every case so far must be there, the source everywhere else.
	expect=$(
		s=1000
		for c2 in "${cases[@]:0:$n}"; do
			IFS=$'\t' read -r _ st2 cn2 _ <<<"$c2"
			s=$((s + 1))
			echo "$st2 $cn2 $s"
		done
	)
	errs=""
	while read -r st2 cn2 s2; do
		check_pattern /dev/mapper/chc "$s2" "$st2" "$cn2" >/dev/null ||
			errs+=" write of seed $s2 at sectors $st2+$cn2 is lost ($(identify_dev /dev/mapper/chc "$st2" "$cn2" | tr '\n' ' '));"
	done <<<"$expect"
	others=$(identify_dev /dev/mapper/chc | awk '$2 == "seed" && $3 == 1 { next } $2 == "seed" && $3 > 1000 { next } { print }')
	[ -z "$others" ] || errs+=" foreign data: $others;"
	if [ -n "$errs" ]; then
		echo "INCONSISTENT at mark $name (status $st):$errs"
		bad=$((bad + 1))
	else
		log "mark $name: ok ($st)"
	fi
	dm_remove chc
done
echo "checked ${#cases[@]} marks, $bad inconsistencies"
[ "$bad" -eq 0 ] || fail "$bad marks are inconsistent"
