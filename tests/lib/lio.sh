# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# A source on the kernel's SCSI target (LIO), for the tests of a source
# whose link drops (tests 069 and 075). Source after common.sh,
# persistence.sh, fault.sh and tool.sh:
#
#   lio_init FABRIC_MODULE...  skip unless LIO, the fabric and sd_mod (and
#                              what link_loss_scenario needs) are there;
#                              mount configfs, load them (unloaded at
#                              exit); LIO_CFS is the target's configfs
#   lio_backstore DEV          an iblock backstore over DEV (LIO_BS)
#   lio_map TPG                LUN 0 of the portal group directory TPG
#                              maps the backstore
#   lio_disk_wait              the sd disk of our LUN (vendor LIO-ORG),
#                              printed once it is there
#   link_loss_scenario SD BACK the scenario of both tests, over the SCSI
#                              disk SD exporting the ext4 of BACK (made by
#                              fs_with_files into $TEST_TMP/sums); the test
#                              defines link_down and link_up

lio_init() {
	local m
	# What link_loss_scenario needs, too.
	need_module
	need_module dm-delay
	need_tool
	need_cmd mkfs.ext4 sha256sum mount umount jq
	for m in configfs target_core_mod target_core_iblock sd_mod "$@"; do
		modinfo "$m" >/dev/null 2>&1 || skip "kernel module $m is not available"
	done
	modprobe configfs || fail "cannot load configfs"
	if ! grep -q " /sys/kernel/config configfs " /proc/mounts; then
		mount -t configfs configfs /sys/kernel/config || fail "cannot mount configfs"
		on_exit "umount /sys/kernel/config"
	fi
	modprobe sd_mod || fail "cannot load sd_mod"
	need_module target_core_mod
	need_module target_core_iblock
	for m in "$@"; do need_module "$m"; done
	LIO_CFS=/sys/kernel/config/target
}

lio_backstore() {
	local core=$LIO_CFS/core/iblock_0
	LIO_BS=$core/src
	mkdir -p "$LIO_BS" || fail "cannot make the iblock backstore (configfs $LIO_BS)"
	on_exit "rmdir $LIO_BS $core"
	echo "udev_path=$1" >"$LIO_BS/control"
	echo 1 >"$LIO_BS/enable" || fail "cannot enable the backstore over $1"
}

lio_map() {
	mkdir -p "$1/lun/lun_0" || fail "cannot make LUN 0 in $1"
	on_exit "rmdir $1/lun/lun_0"
	ln -s "$LIO_BS" "$1/lun/lun_0/src" || fail "cannot map the backstore to LUN 0 of $1"
	on_exit "rm -f $1/lun/lun_0/src"
}

_lio_disk() {
	local b
	for b in /sys/block/sd*; do
		[ -e "$b/device/vendor" ] || continue
		grep -q '^LIO-ORG' "$b/device/vendor" || continue
		echo "/dev/${b##*/}"
		return 0
	done
	return 1
}

lio_disk_wait() {
	local sd
	wait_for 30 _lio_disk >/dev/null || fail "no SCSI disk from the LIO target appeared"
	sd=$(_lio_disk)
	wait_for 10 test -b "$sd" || fail "no device node $sd"
	echo "$sd"
}

link_loss_scenario() {
	local sd=$1 back=$2 dest meta mnt=$TEST_TMP/mnt sums=$TEST_TMP/sums ev0 t_off t_on h out left
	log "the source is $sd ($(cat "/sys/block/${sd#/dev/}/device/vendor") $(cat "/sys/block/${sd#/dev/}/device/model"))"
	assert_eq "$(blockdev --getsz "$sd")" 65536 "size of $sd"
	cmp_dev "$sd" "$back" || fail "$sd does not read as its backstore"
	dest=$(mkdev dest 32)
	meta=$(mkdev meta 4)
	mkdir -p "$mnt"
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

	log "the link goes down"
	t_off=$SECONDS
	link_down
	# The delay only paced the copy so far; left in, it would also pace
	# the failing copies, and a pass over the remaining regions would
	# take minutes.
	dm_reload slow "0 65536 delay $sd 0 0"
	wait_for 90 clone_idle c || fail "copies stay in flight with the link down: $(clone_status_noflush c)"
	h=$(clone_hydrated c)
	log "idle with the link down: $(clone_status_noflush c)"
	[ "$h" -lt 480 ] || fail "the copy got too far to test ($h of 512 regions)"
	assert_mode c rw "mode with the link down"
	cmp_dev /dev/mapper/c "$back" $(((h > 8 ? h - 8 : 0) * 128)) ||
		fail "copied regions read wrong with the link down"
	out=$(io_read /dev/mapper/c $((511 * 128)) 8) &&
		fail "a read of region 511 (not copied) succeeded with the link down"
	log "read of a region not copied: $out"
	assert_match "$out" "(Input/output error|Link has been severed)" "error of a read of region 511 with the link down"
	sync
	drop_caches
	timed 60 cat "$mnt/big" >/dev/null 2>&1 &&
		fail "reading a file of 8 MiB, mostly not copied, succeeded with the link down"
	tool_ok status c --json --interval 0
	json_check "$TOOL_OUT"
	assert_eq "$(json_get "$TOOL_OUT" mode)" rw "status --json mode with the link down"
	assert_eq "$(json_get "$TOOL_OUT" hydrated_regions)" "$h" "status --json regions copied with the link down"
	tool_ok list --json
	assert_eq "$(json_parse -r '.[0].name + " " + .[0].state' <<<"$TOOL_OUT")" "c copying" "list --json with the link down"
	left=$((15 - (SECONDS - t_off)))
	[ $left -le 0 ] || sleep $left
	assert_eq "$(clone_hydrated c)" "$h" "regions copied during the outage"
	assert_no_event c "$ev0" "dm events with the link down"

	log "the link comes back"
	link_up
	t_on=$SECONDS
	tool_ok tune c --threshold 64 --batch 16
	wait_hydrated c 180
	log "complete $((SECONDS - t_on)) s after the link came back"
	drop_caches
	(cd "$mnt" && timed 60 sha256sum --quiet -c "$sums") || fail "files differ after the outage"
	cmp_dev /dev/mapper/c "$back" || fail "the clone differs from the source"
	tool_ok finish c
	assert_eq "$(dm_table c)" "0 65536 linear $(dev_majmin "$dest") 0" "table after finish"
	umount "$mnt"
	dm_remove c
	dm_remove slow
	cmp_dev "$dest" "$back" || fail "the destination differs from the source"
}
