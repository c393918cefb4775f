#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone create and the metadata it finds. A clone's metadata is never
# wiped by accident: create without --fresh on it resumes the clone (same
# hydrated regions, data written before still there, region size taken
# from the metadata when --region is not given); a different --region or a
# source of another length is refused; --fresh alone is refused (naming
# --force) and leaves every byte of the metadata as it was; --fresh --force
# starts over (nothing hydrated, the source shows again). Foreign data on
# the metadata device is zeroed only with --fresh; --fresh on a blank
# device just works.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool

src=$(mkdev src 16)				# 32768 sectors
src2=$(mkdev src2 8)
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
meta2=$(mkdev meta2 4)
meta3=$(mkdev meta3 4)
fill_pattern "$src" 1
fill_pattern "$src2" 1
fill_pattern "$dest" 9

log "a clone with 16 KiB regions, three of them hydrated by writes"
tool_ok create c "$src" "$dest" "$meta" --region 16k --no-hydration
track_dm c
assert_match "$TOOL_ERR" "blank: starting a new clone" "create on a blank device"
fill_pattern /dev/mapper/c 5 0 64			# regions 0 and 1, whole
fill_pattern /dev/mapper/c 5 1000 8			# a part of region 31
assert_eq "$(clone_hydrated c)" 3 "hydrated regions"
dm_remove c
md_sum=$(dev_sum "$meta")

# check_data: what the clone must read after the writes above.
check_data() {
	check_pattern /dev/mapper/c 5 0 64
	check_pattern /dev/mapper/c 1 64 936
	check_pattern /dev/mapper/c 5 1000 8
	check_pattern /dev/mapper/c 1 1008 $((32768 - 1008))
}

log "create again without --fresh or --region: resumes"
tool_ok create c "$src" "$dest" "$meta" --no-hydration
track_dm c
assert_match "$TOOL_ERR" "resuming where it stopped" "create on a clone's metadata"
assert_match "$(dm_table c)" " 32 1 no_hydration$" "region size taken from the metadata"
assert_eq "$(clone_hydrated c)" 3 "hydrated regions after resuming"
check_data
dm_remove c
tool_ok create c "$src" "$dest" "$meta" --no-hydration --region 16k
track_dm c
assert_eq "$(clone_hydrated c)" 3 "hydrated regions after resuming with the same --region"
dm_remove c
md_sum=$(dev_sum "$meta")

log "refusals that keep the metadata"
tool_refuses 1 "holds a clone with 16 KiB regions, not 64 KiB.*without --region" \
	create c "$src" "$dest" "$meta" --region 64k
assert_eq "$(dev_sum "$meta")" "$md_sum" "metadata after a refused --region"
tool_refuses 1 "holds a clone of 32768 sectors, but the source $src2 has 16384" \
	create c "$src2" "$dest" "$meta"
assert_eq "$(dev_sum "$meta")" "$md_sum" "metadata after a refused source"
tool_refuses 1 "holds dm-clone metadata.*in progress.*without --fresh.*--force" \
	create c "$src" "$dest" "$meta" --fresh
assert_eq "$(dev_sum "$meta")" "$md_sum" "metadata after a refused --fresh"
no_dm c

log "--fresh --force starts over"
tool_ok create c "$src" "$dest" "$meta" --fresh --force --no-hydration
track_dm c
assert_match "$TOOL_ERR" "wiping the dm-clone metadata" "create --fresh --force"
assert_match "$(dm_table c)" " 128 1 no_hydration$" "default region size after starting over"
assert_eq "$(clone_hydrated c)" 0 "hydrated regions after starting over"
check_pattern /dev/mapper/c 1 || fail "after starting over the clone must read the source everywhere"
dm_remove c

log "foreign data on the metadata device: zeroed with --fresh only"
head -c 4096 /dev/urandom | dd of="$meta2" bs=4096 oflag=direct conv=notrunc status=none
tool_refuses 1 "not blank and holds no dm-clone metadata" create c "$src" "$dest" "$meta2"
tool_ok create c "$src" "$dest" "$meta2" --fresh --no-hydration
track_dm c
assert_match "$TOOL_ERR" "zeroing the first 4 KiB of $meta2" "create --fresh on foreign data"
assert_eq "$(clone_hydrated c)" 0 "hydrated regions on zeroed metadata"
check_pattern /dev/mapper/c 1
dm_remove c

log "--fresh on a blank device"
tool_ok create c "$src" "$dest" "$meta3" --fresh --no-hydration
track_dm c
assert_eq "$TOOL_OUT" /dev/mapper/c "stdout"
assert_eq "$(clone_hydrated c)" 0 "hydrated regions"
log "ok"
