#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A table loaded while the old one is live sees every commit the old one
# made before the switch, however many. On the smallest metadata device
# the module accepts (the space map soon hands out freed blocks again, so
# the superblock's roots come back), for N = 1 to 30 (1 to 12 and a few
# larger on the slow debug kernel): `dmsetup reload` of
# the same table, then N rounds of (a partial write to an unhydrated
# region, a committing status query) on the live table, then `dmsetup
# resume`. The new table must report every region written as hydrated,
# and read every write back (a stale bitmap would send them to the source
# and later copy the source over them).
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern dd

rs=8						# 4 KiB regions
src=$(mkdev src 8)				# 16384 sectors, 2048 regions
dest=$(mkdev dest 8)
ref=$(mkdev ref 8)
# The smallest device the module takes for 2048 regions: 130 blocks
# (one array block, twice, and the commit slack).
meta=$(mkdev_sectors meta $((130 * 8)))
fill_pattern "$src" 1
fill_pattern "$ref" 1
table=$(clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)
dm_create c "$table"
clone=/dev/mapper/c

# Every N from 1 to 30; on a slow kernel (the debug tier scales the
# timeouts), 1 to 12 and then a few larger N.
ns=$(seq 1 30)
! slow_kernel || ns="$(seq 1 12) 16 24 30"
region=0 seed=10
for n in $ns; do
	dmsetup reload c --table "$table" || fail "reload $n failed"
	for _ in $(seq "$n"); do
		seed=$((seed + 1))
		ref_write $clone "$ref" $seed $((region * rs + 3)) 2
		region=$((region + 1))
		clone_status c >/dev/null
	done
	live=$(clone_hydrated c)
	dmsetup suspend c || fail "suspend $n failed"
	dmsetup resume c || fail "resume $n failed"
	new=$(clone_hydrated c)
	[ "$live" = $region ] || fail "round $n: the live table reports $live hydrated regions, $region were written"
	[ "$new" = $region ] ||
		fail "after $n commits of the old table: the new table reports $new hydrated regions, the old one $live"
	cmp_dev $clone "$ref" || fail "after $n commits of the old table: the new table reads other data"
done
log "$region regions written over $(wc -w <<<"$ns") reloads, all carried over"
