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
# device just works. Every resume runs clone_check on the metadata first:
# sound metadata resumes; damaged metadata (an array block of the bitset
# with a flipped byte) is refused with exit 1, naming the device, the
# block and clone_repair, nothing created and the metadata untouched;
# --skip-check leaves the check out (the kernel then refuses that table
# itself) and is refused when the needs_check flag is set; create without
# it checks such metadata, clears the flag and resumes; with no
# clone_check installed the clone resumes after one warning.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool
need_cmd clone_check clone_dump clone_restore

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
assert_match "$TOOL_ERR" "clone_check found no problem in the metadata on $meta" "the check before resuming"
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
[[ $TOOL_ERR != *clone_check* ]] || fail "blank metadata was checked: $TOOL_ERR"
dm_remove c

# le DEV BYTE N: the little-endian N-byte number at BYTE of DEV (O_DIRECT).
le() {
	dd if="$1" bs=4096 skip=$(($2 / 4096)) count=1 iflag=direct status=none |
		od -An -tu"$3" -j$(($2 % 4096)) -N"$3" | tr -d ' '
}

log "damaged metadata: create refuses to resume it"
meta4=$(mkdev meta4 4)
bad=$(mkdev bad 4)
tool_ok create c "$src" "$dest" "$meta4" --region 16k --no-hydration
track_dm c
fill_pattern /dev/mapper/c 5 0 64			# regions 0 and 1
dm_remove c
dd if="$meta4" of="$bad" bs=1M iflag=direct oflag=direct status=none
# 1024 regions: the bitset's btree root is a leaf; its first value is the
# first array block (values follow the 32-byte header and max_entries keys).
leaf=$(le "$bad" 188 8)
maxe=$(le "$bad" $((leaf * 4096 + 20)) 4)
ablock=$(le "$bad" $((leaf * 4096 + 32 + 8 * maxe)) 8)
printf '\x55' | dd of="$bad" bs=1 seek=$((ablock * 4096 + 100)) conv=notrunc,fsync status=none
bad_sum=$(dev_sum "$bad")
tool_refuses 1 "the metadata device $bad holds damaged dm-clone metadata, so the clone is not resumed.*block $ablock: array block: bad checksum.*clone_repair.*Documentation/metadata-tools.rst" \
	create c "$src" "$dest" "$bad"
no_dm c
assert_eq "$(dev_sum "$bad")" "$bad_sum" "damaged metadata after the refusal"

log "--skip-check: not checked (the kernel refuses that table itself)"
tool_refuses 1 "warning: --skip-check: the metadata on $bad is not checked.*the kernel refused the clone table" \
	create c "$src" "$dest" "$bad" --skip-check
no_dm c
assert_eq "$(dev_sum "$bad")" "$bad_sum" "damaged metadata after --skip-check"
tool_ok create c "$src" "$dest" "$meta4" --skip-check --no-hydration
track_dm c
assert_match "$TOOL_ERR" "warning: --skip-check: the metadata on $meta4 is not checked" "--skip-check on sound metadata"
[[ $TOOL_ERR != *"clone_check found"* ]] || fail "--skip-check ran clone_check: $TOOL_ERR"
assert_eq "$(clone_hydrated c)" 2 "hydrated regions, resumed with --skip-check"
dm_remove c

log "the needs_check flag: --skip-check refused; checked, cleared, resumed"
meta5=$(mkdev meta5 4)
clone_dump "$meta4" >"$TEST_TMP/dump.xml" || fail "clone_dump $meta4 failed"
sed -i 's/ flags="0">/ flags="1">/' "$TEST_TMP/dump.xml"
grep -q ' flags="1">' "$TEST_TMP/dump.xml" || fail "no flags in the dump: $(head -n 1 "$TEST_TMP/dump.xml")"
clone_restore -i "$TEST_TMP/dump.xml" -o "$meta5" || fail "clone_restore onto $meta5 failed"
assert_eq "$(le "$meta5" 4 4)" 1 "the superblock's flags with needs_check set"
md_sum=$(dev_sum "$meta5")
tool_refuses 1 "the metadata device $meta5 has its needs_check flag set.*--skip-check is refused" \
	create c "$src" "$dest" "$meta5" --skip-check
no_dm c
assert_eq "$(dev_sum "$meta5")" "$md_sum" "metadata after the refused --skip-check"
tool_ok create c "$src" "$dest" "$meta5" --no-hydration
track_dm c
assert_match "$TOOL_ERR" "the metadata device $meta5 had its needs_check flag set; clone_check found no problem, and the flag is cleared" \
	"create on metadata with needs_check set"
assert_eq "$(clone_hydrated c)" 2 "hydrated regions after the flag was cleared"
check_pattern /dev/mapper/c 5 0 64
dm_remove c
assert_eq "$(le "$meta5" 4 4)" 0 "the superblock's flags after the resume"

log "no clone_check installed: one warning, resumed unchecked"
DMCLONE_CLONE_CHECK=/nonexistent/clone_check tool_ok create c "$src" "$dest" "$meta4" --no-hydration
track_dm c
assert_eq "$(grep -c "clone_check not found; metadata not checked" <<<"$TOOL_ERR")" 1 "warnings about clone_check missing"
assert_eq "$(clone_hydrated c)" 2 "hydrated regions, resumed unchecked"
log "ok"
