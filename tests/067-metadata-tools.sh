#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The metadata tools (tools/clone-md) and the module share one format. On
# a suspended clone with regions written, clone_dump lists exactly those
# regions (as many as the status line's hydrated count), clone_check finds
# nothing wrong and clone_restore refuses to write the device. The dump
# restored onto a blank device opens with the same hydrated count and
# data, takes a new write, and still checks clean afterwards, and after
# the module has hydrated every region on it. The same
# round trip on a clone of 8650752 regions, whose bitset btree has an
# internal node. A copy with a corrupt array block or superblock makes
# clone_check exit 1 naming the block, and the module refuses it;
# clone_repair lists the regions it cannot read and, told to count them
# unhydrated, writes metadata the module opens; given the source and the
# destination, it counts a region equal on both hydrated.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd clone_check clone_dump clone_restore clone_repair dmclone-pattern od dd

rs=16
src=$(mkdev src 16)				# 32768 sectors, 2048 regions
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
meta2=$(mkdev meta2 4)
bad=$(mkdev bad 4)
fill_pattern "$src" 1
fill_pattern "$dest" 9
table=$(clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)

# run_tool CMD ARGS...: run a metadata tool; OUT, ERR and RC hold the result.
run_tool() {
	RC=0
	OUT=$("$@" 2>"$TEST_TMP/err") || RC=$?
	ERR=$(cat "$TEST_TMP/err")
}
# le64 DEV BYTE: the little-endian 64-bit number at BYTE of DEV.
# le64 DEV BYTE / le32 DEV BYTE: the little-endian number at BYTE of DEV
# (read O_DIRECT, past any page cache).
le_n() {
	dd if="$1" bs=4096 skip=$(($2 / 4096)) count=1 iflag=direct status=none |
		od -An -tu"$3" -j$(($2 % 4096)) -N"$3" | tr -d ' '
}
le64() { le_n "$1" "$2" 8; }
le32() { le_n "$1" "$2" 4; }

log "a clone with regions 0-3, 62 and 2047 written"
dm_create c "$table"
fill_pattern /dev/mapper/c 5 0 64
fill_pattern /dev/mapper/c 5 1000 8
fill_pattern /dev/mapper/c 5 $((32768 - rs)) $rs
assert_eq "$(clone_hydrated c)" 6 "hydrated regions after the writes"
dmsetup suspend c

log "clone_dump and clone_check of the suspended clone's metadata"
run_tool clone_dump "$meta"
assert_eq "$RC" 0 "clone_dump exit status ($ERR)"
expected="<superblock version=\"1\" region_size=\"$rs\" target_size=\"32768\" nr_regions=\"2048\" nr_hydrated=\"6\" flags=\"0\">
  <range begin=\"0\" length=\"4\"/>
  <range begin=\"62\" length=\"1\"/>
  <range begin=\"2047\" length=\"1\"/>
</superblock>"
assert_eq "$OUT" "$expected" "dump of the module's metadata"
printf '%s\n' "$OUT" >"$TEST_TMP/dump.xml"
run_tool clone_check "$meta"
assert_eq "$RC" 0 "clone_check exit status of the module's metadata ($OUT $ERR)"
assert_match "$OUT" "sound: 2048 regions of 16 sectors, 6 hydrated" "clone_check summary"
md_sum=$(dev_sum "$meta")
run_tool clone_restore -i "$TEST_TMP/dump.xml" -o "$meta"
assert_eq "$RC" 1 "clone_restore onto the metadata of a loaded clone"
assert_match "$ERR" "$meta: in use \(by a clone or another program\); remove the clone first" "its message"
assert_eq "$(dev_sum "$meta")" "$md_sum" "metadata of the loaded clone after the refused restore"
dmsetup resume c
dm_remove c

log "restored onto a blank device, the module opens it"
run_tool clone_restore -i "$TEST_TMP/dump.xml" -o "$meta2"
assert_eq "$RC" 0 "clone_restore exit status ($ERR)"
dm_create c2 "$(clone_table "$meta2" "$dest" "$src" $rs 1 no_hydration)"
assert_eq "$(clone_hydrated c2)/$(clone_regions c2)" 6/2048 "progress on restored metadata"
check_pattern /dev/mapper/c2 5 0 64
check_pattern /dev/mapper/c2 1 64 936
check_pattern /dev/mapper/c2 5 1000 8
check_pattern /dev/mapper/c2 1 1008 $((32768 - rs - 1008))
fill_pattern /dev/mapper/c2 6 4096 16			# region 256
assert_eq "$(clone_hydrated c2)" 7 "hydrated after a write on restored metadata"
dm_remove c2
run_tool clone_check "$meta2"
assert_eq "$RC" 0 "clone_check after the module committed to restored metadata ($OUT)"
run_tool clone_dump --format json "$meta2"
assert_match "$OUT" '"nr_hydrated": 7,' "JSON dump after the new write"
assert_match "$OUT" '\{"begin": 256, "length": 1\}' "JSON dump names region 256"

log "the module hydrates the rest on restored metadata; still sound"
dm_create c2 "$(clone_table "$meta2" "$dest" "$src" $rs)"
wait_hydrated c2
dm_remove c2
run_tool clone_check "$meta2"
assert_eq "$RC" 0 "clone_check after a full hydration ($OUT)"
run_tool clone_dump "$meta2"
assert_match "$OUT" 'nr_hydrated="2048" flags="0">
  <range begin="0" length="2048"/>
</superblock>$' "dump after a full hydration"
fill_pattern "$dest" 9		# no region equal on both devices again

log "a corrupt array block: clone_check names it, the module refuses"
dd if="$meta" of="$bad" bs=1M iflag=direct oflag=direct status=none
leaf=$(le64 "$bad" 188)			# the bitset root, a leaf here
ablock=$(le64 "$bad" $((leaf * 4096 + 32 + 8 * 252)))	# its first value
printf '\x55' | dd of="$bad" bs=1 seek=$((ablock * 4096 + 100)) conv=notrunc,fsync status=none
run_tool clone_check "$bad"
assert_eq "$RC" 1 "clone_check exit status, corrupt array block"
assert_match "$OUT" "block $ablock: array block: bad checksum" "clone_check names the array block"
why=$(dm_table_load_should_fail c3 "$(clone_table "$bad" "$dest" "$src" $rs 1 no_hydration)")
assert_match "$why" "bitset" "the module's reason for refusing a corrupt array block"
run_tool clone_repair -i "$bad" -o "$meta2" --force
assert_eq "$RC" 1 "clone_repair without a choice for the unreadable regions"
assert_match "$ERR" "regions whose state is unknown: 0-2047" "clone_repair lists them"
run_tool clone_repair -i "$bad" -o "$meta2" --force --assume-unhydrated
assert_eq "$RC" 0 "clone_repair --assume-unhydrated ($ERR)"
dm_create c4 "$(clone_table "$meta2" "$dest" "$src" $rs 1 no_hydration)"
assert_eq "$(clone_hydrated c4)/$(clone_regions c4)" 0/2048 "progress on repaired metadata"
check_pattern /dev/mapper/c4 1 || fail "a clone with every region unhydrated must read the source"
dm_remove c4
# Region 100 made equal on both devices: the comparison settles it hydrated.
dd if="$src" of="$dest" bs=512 skip=1600 seek=1600 count=$rs iflag=direct oflag=direct status=none
run_tool clone_repair -i "$bad" -o "$meta2" --force --source "$src" --destination "$dest" --assume-unhydrated
assert_eq "$RC" 0 "clone_repair comparing source and destination ($ERR)"
assert_match "$OUT" "2048 regions: 0 read, 1 equal on source and destination, 2047 assumed unhydrated; 1 hydrated" \
	"clone_repair's account"
dm_create c4 "$(clone_table "$meta2" "$dest" "$src" $rs 1 no_hydration)"
assert_eq "$(clone_hydrated c4)" 1 "hydrated regions after the comparison"
dm_remove c4

log "a corrupt superblock: clone_check names it, the module refuses"
dd if="$meta" of="$bad" bs=1M iflag=direct oflag=direct status=none
printf '\x01' | dd of="$bad" bs=1 seek=180 conv=notrunc,fsync status=none
run_tool clone_check "$bad"
assert_eq "$RC" 1 "clone_check exit status, corrupt superblock"
assert_match "$OUT" "block 0: superblock: bad checksum" "clone_check names the superblock"
dm_table_load_should_fail c3 "$(clone_table "$bad" "$dest" "$src" $rs 1 no_hydration)" >/dev/null

log "8650752 regions: a bitset btree with an internal node, both ways"
big=$((8650752 * 8))
dmsetup create zsrc --table "0 $big zero"
_dmc_register dm zsrc
bdest=$(mkdev_sectors bdest $big)
bmeta=$(mkdev bmeta 4)
bmeta2=$(mkdev bmeta2 4)
dm_create cb "0 $big clone $bmeta $bdest /dev/mapper/zsrc 8 1 no_hydration"
for s in 0 40000000 $((big - 8)); do
	dd if=/dev/urandom of=/dev/mapper/cb bs=4096 count=1 seek=$((s / 8)) oflag=direct status=none
done
assert_eq "$(clone_hydrated cb)" 3 "hydrated regions of the big clone"
dmsetup suspend cb
run_tool clone_check "$bmeta"
assert_eq "$RC" 0 "clone_check of the big clone's metadata ($OUT)"
assert_eq "$(le32 "$bmeta" $(($(le64 "$bmeta" 188) * 4096 + 4)))" 1 "flags of the bitset root (1: an internal node)"
run_tool clone_dump "$bmeta"
assert_match "$OUT" 'nr_hydrated="3"' "big dump's hydrated count"
assert_match "$OUT" '<range begin="5000000" length="1"/>' "big dump's middle region"
printf '%s\n' "$OUT" >"$TEST_TMP/big.xml"
dmsetup resume cb
dm_remove cb
run_tool clone_restore -i "$TEST_TMP/big.xml" -o "$bmeta2"
assert_eq "$RC" 0 "clone_restore of the big dump ($ERR)"
dm_create cb2 "0 $big clone $bmeta2 $bdest /dev/mapper/zsrc 8 1 no_hydration"
assert_eq "$(clone_hydrated cb2)/$(clone_regions cb2)" 3/8650752 "progress on the restored big metadata"
dm_remove cb2
log "ok"
