#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A SCSI source whose target goes away in the middle of the copy. The
# source is a real SCSI disk (sd) served by the kernel's SCSI target (LIO,
# set up through configfs: an iblock backstore over a loop device holding
# ext4 with files, exported through the loopback fabric tcm_loop, which
# needs no initiator daemon), slowed by dm-delay for a steady copy (the
# delay is dropped when the link goes: it would slow the failures too). The
# clone is made with dmclone and mounted (read-only) at once; two files
# read right. Then the
# target port is taken offline (tcm_loop's transport_status), as when an
# iSCSI link drops: every I/O returns within its timeout; the files copied
# already read back right, a read of a region not copied yet fails with an
# I/O error instead of hanging; the copy pass ends (none in flight, no
# region copied since; dm-clone then retries with back-off), the clone
# stays rw with no dm event; status --json and list --json answer. The
# port comes back online: with no reload (only a faster copy set with
# dmclone tune), the copy completes within 180 s, every file
# matches its checksum, the clone, then (after dmclone finish) the
# destination alone are byte-exact copies of the source.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_module dm-delay
need_tool
need_cmd mkfs.ext4 sha256sum mount umount jq
for m in configfs target_core_mod target_core_iblock tcm_loop sd_mod; do
	modinfo "$m" >/dev/null 2>&1 || skip "kernel module $m is not available"
done
modprobe configfs || fail "cannot load configfs"
cfs=/sys/kernel/config
if ! grep -q " $cfs configfs " /proc/mounts; then
	mount -t configfs configfs "$cfs" || fail "cannot mount configfs"
	on_exit "umount $cfs"
fi
modprobe sd_mod || fail "cannot load sd_mod"
need_module target_core_mod
need_module target_core_iblock
need_module tcm_loop

log "an ext4 source with files"
back=$(mkdev back 32)				# 65536 sectors, 512 regions of 64 KiB
dest=$(mkdev dest 32)
meta=$(mkdev meta 4)
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"
sums=$TEST_TMP/sums
fs_with_files "$back" "$sums" 10 250000 8

log "export it through LIO's loopback fabric"
core=$cfs/target/core/iblock_0
tpg=$cfs/target/loopback/naa.5001405c10e00001/tpgt_1
mkdir -p "$core/src" || fail "cannot make the iblock backstore (configfs $core)"
on_exit "rmdir $core/src $core"
echo "udev_path=$back" >"$core/src/control"
echo 1 >"$core/src/enable" || fail "cannot enable the backstore over $back"
mkdir -p "$tpg/lun/lun_0" || fail "cannot make the loopback target's LUN"
on_exit "rmdir $tpg/lun/lun_0 $tpg ${tpg%/*}"
echo naa.5001405c10e00002 >"$tpg/nexus" || fail "cannot make the I_T nexus"
on_exit "echo NULL >$tpg/nexus"
ln -s "$core/src" "$tpg/lun/lun_0/src" || fail "cannot map the backstore to LUN 0"
on_exit "rm -f $tpg/lun/lun_0/src"
# lio_disk: the sd disk of our LUN (vendor LIO-ORG).
lio_disk() {
	local b
	for b in /sys/block/sd*; do
		[ -e "$b/device/vendor" ] || continue
		grep -q '^LIO-ORG' "$b/device/vendor" || continue
		echo "/dev/${b##*/}"
		return 0
	done
	return 1
}
wait_for 30 lio_disk >/dev/null || fail "no SCSI disk from the LIO target appeared"
sd=$(lio_disk)
wait_for 10 test -b "$sd" || fail "no device node $sd"
log "the source is $sd ($(cat "/sys/block/${sd#/dev/}/device/vendor") $(cat "/sys/block/${sd#/dev/}/device/model"))"
assert_eq "$(blockdev --getsz "$sd")" 65536 "size of $sd"
cmp_dev "$sd" "$back" || fail "$sd does not read as its backstore"
dm_create slow "0 65536 delay $sd 0 100"

log "clone it and mount it at once"
tool_ok create c /dev/mapper/slow "$dest" "$meta" --threshold 1 --batch 1
track_dm c
on_exit "umount -l '$mnt' 2>/dev/null"
mount -o ro,noload /dev/mapper/c "$mnt" || fail "cannot mount the clone"
wait_for 60 hydrated_at_least c 40 || fail "no background copying: $(clone_status c)"
(cd "$mnt" && timed 60 sha256sum d/file1 d/file2 | cmp - <(grep -E ' \./d/file[12]$' "$sums" | sed 's| \./| |')) ||
	fail "files differ on the fresh clone"
ev0=$(event_nr c)

log "the target port goes offline"
t_off=$SECONDS
echo offline >"$tpg/transport_status" || fail "cannot take the target port offline"
on_exit "echo online >$tpg/transport_status"
# The delay only paced the copy so far; left in, it would also pace the
# failing copies, and a pass over the remaining regions would take minutes.
dm_reload slow "0 65536 delay $sd 0 0"
wait_for 60 clone_idle c || fail "copies stay in flight with the target offline: $(clone_status_noflush c)"
h=$(clone_hydrated c)
log "idle with the target offline: $(clone_status_noflush c)"
[ "$h" -lt 480 ] || fail "the copy got too far to test ($h of 512 regions)"
assert_mode c rw "mode with the target offline"
cmp_dev /dev/mapper/c "$back" $(((h > 8 ? h - 8 : 0) * 128)) ||
	fail "copied regions read wrong with the target offline"
out=$(io_read /dev/mapper/c $((511 * 128)) 8) &&
	fail "a read of region 511 (not copied) succeeded with the target offline"
log "read of a region not copied: $out"
assert_match "$out" "(Input/output error|Link has been severed)" "error of a read of region 511 with the target offline"
sync
drop_caches
timed 60 cat "$mnt/big" >/dev/null 2>&1 &&
	fail "reading a file of 8 MiB, mostly not copied, succeeded with the target offline"
tool_ok status c --json --interval 0
json_check "$TOOL_OUT"
assert_eq "$(json_get "$TOOL_OUT" mode)" rw "status --json mode with the target offline"
assert_eq "$(json_get "$TOOL_OUT" hydrated_regions)" "$h" "status --json regions copied with the target offline"
tool_ok list --json
assert_eq "$(json_parse -r '.[0].name + " " + .[0].state' <<<"$TOOL_OUT")" "c copying" "list --json with the target offline"
left=$((15 - (SECONDS - t_off)))
[ $left -le 0 ] || sleep $left
assert_eq "$(clone_hydrated c)" "$h" "regions copied during the outage"
assert_no_event c "$ev0" "dm events with the target offline"

log "the target port comes back"
echo online >"$tpg/transport_status" || fail "cannot bring the target port back online"
t_on=$SECONDS
tool_ok tune c --threshold 64 --batch 16
wait_hydrated c 180
log "complete $((SECONDS - t_on)) s after the target came back"
drop_caches
(cd "$mnt" && timed 60 sha256sum --quiet -c "$sums") || fail "files differ after the outage"
cmp_dev /dev/mapper/c "$back" || fail "the clone differs from the source"
tool_ok finish c
assert_eq "$(dm_table c)" "0 65536 linear $(dev_majmin "$dest") 0" "table after finish"
umount "$mnt"
dm_remove c
cmp_dev "$dest" "$back" || fail "the destination differs from the source"
log "ok"
