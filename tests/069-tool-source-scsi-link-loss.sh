#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A SCSI source whose target goes away in the middle of the copy
# (link_loss_scenario in lib/lio.sh). The
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
. "$(dirname "$0")/lib/lio.sh"

lio_init tcm_loop

log "an ext4 source with files"
back=$(mkdev back 32)				# 65536 sectors, 512 regions of 64 KiB
fs_with_files "$back" "$TEST_TMP/sums" 10 250000 8

log "export it through LIO's loopback fabric"
lio_backstore "$back"
tpg=$LIO_CFS/loopback/naa.5001405c10e00001/tpgt_1
mkdir -p "$tpg" || fail "cannot make the loopback target"
on_exit "rmdir $tpg ${tpg%/*}"
echo naa.5001405c10e00002 >"$tpg/nexus" || fail "cannot make the I_T nexus"
on_exit "echo NULL >$tpg/nexus"
lio_map "$tpg"

# The target port goes offline (tcm_loop then fails every command with
# DID_TRANSPORT_DISRUPTED), and comes back.
link_down() {
	echo offline >"$tpg/transport_status" || fail "cannot take the target port offline"
	on_exit "echo online >$tpg/transport_status"
}
link_up() {
	echo online >"$tpg/transport_status" || fail "cannot bring the target port back online"
}
link_loss_scenario "$(lio_disk_wait)" "$back"
log "ok"
