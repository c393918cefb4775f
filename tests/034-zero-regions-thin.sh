#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Zero regions on other destinations than 033's. A source of 32 MiB
# whose first half holds data and whose second half reads back zeroes is
# cloned:
#   * onto a dm-thin volume (a thin-pool over two loop devices, 64 KiB
#     blocks, one thin device): the clone and the thin volume read back
#     byte-exact, and the pool has no more data blocks in use than the
#     data half needs (plus 1 MiB): written as zeroes writes where the thin
#     volume takes them (queue/write_zeroes_max_bytes > 0; no kernel we
#     test does), else not written at all, the destination reading
#     zeroes there already;
#   * onto a dm-linear over brd, which takes no zeroes writes (sysfs says
#     0; logged where it does not), holding old data under the zero half:
#     byte-exact, the old data gone, no error in the kernel log;
#   * onto a dm-linear over a scsi_debug disk whose zeroing mode is WRITE
#     SAME with UNMAP, which the disk rejects: it advertises zeroes writes
#     and fails every one (checked first with fallocate --punch-hole on
#     it), while plain writes succeed. The copy falls back to writing the
#     zeroes as data: hydration completes, rw, nothing left in flight,
#     byte-exact, the old data gone.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_module dm-thin-pool
need_cmd dmclone-pattern

rs=128						# 64 KiB regions
src=$(mkdev src 32)
meta=$(mkdev meta 4)
fill_pattern "$src" 1 0 32768			# the first 16 MiB; the rest reads zeroes
data_blocks=$((16 * 16))			# 64 KiB blocks in the data half

# wz DEV: the zeroes-write limit a block device advertises, in bytes.
wz() { cat "/sys/dev/block/$(dev_majmin "$1")/queue/write_zeroes_max_bytes"; }

# copy_onto DEST WHAT: a clone of the source on fresh metadata onto DEST
# hydrates, stays rw with nothing in flight and reads back as the
# source; once it is removed, DEST itself reads back as the source.
copy_onto() {
	zero_meta "$meta"
	dm_create c "$(clone_table "$meta" "$1" "$src" $rs)"
	wait_hydrated c 120
	dmsetup status c >/dev/null
	assert_eq "$(clone_mode c)" rw "mode onto $2"
	assert_eq "$(clone_hydrating c)" 0 "regions in flight once hydrated onto $2"
	cmp_dev /dev/mapper/c "$src" || fail "the clone onto $2 differs from the source"
	dm_remove c
	cmp_dev "$1" "$src" || fail "$2 differs from the source (old data left under the zero half?)"
}

log "a thin volume as destination"
tmeta=$(mkdev tmeta 4)
tdata=$(mkdev tdata 64)
dm_create pool "0 $(dev_sectors "$tdata") thin-pool $tmeta $tdata 128 0"
dm_message pool create_thin 0
dm_create thin "0 65536 thin /dev/mapper/pool 0"
# pool_used: the pool's data blocks in use (its status: <transaction id>
# <used>/<total metadata blocks> <used>/<total data blocks> ...).
pool_used() { dmsetup status pool | awk '{ split($6, a, "/"); print a[1] }'; }
assert_eq "$(pool_used)" 0 "pool data blocks in use before the copy"
thin_wz=$(wz /dev/mapper/thin)
log "the thin volume advertises zeroes writes of up to $thin_wz bytes"
copy_onto /dev/mapper/thin "the thin volume"
used=$(pool_used)
log "pool data blocks in use: $used (the data half is $data_blocks)"
[ "$used" -le $((data_blocks + 16)) ] ||
	fail "the zero half was written as data: $used blocks of 64 KiB in use, at most $((data_blocks + 16)) expected"
dm_remove thin
dm_remove pool

log "a dm-linear over brd as destination (no zeroes writes)"
ram=$(mkbrd 1 32)
fill_pattern "$ram" 9
dm_create lin "$(linear_table "$ram")"
lin_wz=$(wz /dev/mapper/lin)
[ "$lin_wz" = 0 ] || log "(dm-linear over brd takes zeroes writes of up to $lin_wz bytes on this kernel)"
log_mark
copy_onto /dev/mapper/lin "dm-linear over brd"
if log_since_mark | grep -E 'clone.*(error|fail)'; then
	fail "the kernel log has errors from the copy (above)"
fi
dm_remove lin

log "a destination that advertises zeroes writes but fails them (scsi_debug)"
# A SCSI disk told to zero with WRITE SAME(16) and its UNMAP bit, which
# the disk (logical block provisioning off) rejects as an illegal
# request: zeroes writes fail while plain writes succeed.
if ! modprobe sd_mod 2>/dev/null ||
	! modprobe scsi_debug dev_size_mb=32 lbpu=0 lbpws=0 lbpws10=0 2>/dev/null; then
	log "no scsi_debug or sd_mod module: this part is left out"
	exit 0
fi
on_exit "modprobe -r scsi_debug"
sd_of_debug() {
	local d
	for d in /sys/block/sd*; do
		[ -e "$d/device/model" ] && grep -q scsi_debug "$d/device/model" && { basename "$d"; return 0; }
	done
	return 1
}
wait_for 30 sd_of_debug >/dev/null || fail "no scsi_debug disk appeared"
sd=$(sd_of_debug)
wait_for 10 test -b "/dev/$sd" || fail "/dev/$sd did not appear"
mode_file=$(echo "/sys/block/$sd/device/scsi_disk/"*/zeroing_mode)
[ -w "$mode_file" ] || fail "no zeroing_mode for $sd"
echo writesame_16_unmap >"$mode_file"
sd_wz=$(wz "/dev/$sd")
fill_pattern "/dev/$sd" 9
if [ "$sd_wz" -gt 0 ] && ! fallocate -p -o 0 -l 65536 "/dev/$sd" 2>/dev/null; then
	log "/dev/$sd advertises zeroes writes of $sd_wz bytes and fails them"
	dm_create sdl "$(linear_table "/dev/$sd")"
	copy_onto /dev/mapper/sdl "the disk failing zeroes writes"
	dm_remove sdl
else
	log "(could not make /dev/$sd fail zeroes writes: it advertises $sd_wz bytes; this part is left out)"
fi
