#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The largest clone on the metadata a client sizes its own way: 2^31
# regions (8 TiB in 4 KiB regions, a zero source, a sparse destination)
# on a 320 MiB metadata device, which the in-kernel dm-clone accepts. The
# table loads (formatting the metadata), takes whole-region writes far
# apart, commits (status) and stays rw; a whole-device discard marks every
# region in bounded transactions and commits; a new clone over the same
# metadata opens with every region hydrated, and clone_check finds it
# sound. (A long test: the kernel sets 2^31 bits; run on 6.1 and 7.x.)
# timeout: 1500
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern clone_check blkdiscard

rs=8
nr=$((1 << 31))
len=$((nr * rs))

dm_create zsrc "0 $len zero"
dest=$(mkdev_sectors dest "$len")		# sparse, in the guest's tmpfs
meta=$(mkdev meta 320)
table=$(clone_table "$meta" "$dest" /dev/mapper/zsrc $rs 1 no_hydration)

log "load: 2^31 regions on 320 MiB of metadata"
dm_create c "$table"
assert_eq "$(clone_regions c)" "$nr" "regions"
assert_eq "$(clone_mode c)" rw "mode after the load"

log "writes far apart, a commit"
for r in 0 1 $((nr / 3)) $((nr / 2 + 12345)) $((nr - 1)); do
	dmclone-pattern write /dev/mapper/c 2 $((r * rs)) $rs || fail "write of region $r failed"
done
dmsetup status c >/dev/null || fail "status (a commit) failed"
assert_eq "$(clone_mode c)" rw "mode after the commit"
assert_eq "$(clone_hydrated c)" 5 "hydrated regions after the writes"

log "a whole-device discard"
blkdiscard /dev/mapper/c || fail "blkdiscard failed"
dmsetup status c >/dev/null || fail "status (a commit) failed"
assert_eq "$(clone_mode c)" rw "mode after the whole-device discard"
assert_eq "$(clone_hydrated c)" "$nr" "hydrated regions after the discard"
dm_remove c

log "a new clone over the metadata, and clone_check"
dm_create c "$table"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "status of a new clone"
dm_remove c
clone_check "$meta" >/dev/null 2>&1 || fail "clone_check: $(clone_check "$meta" 2>&1 | head -n 5)"
dm_remove zsrc
