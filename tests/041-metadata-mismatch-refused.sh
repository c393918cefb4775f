#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Metadata that does not belong to the table, or is corrupt, is refused and
# left untouched (sha256 of the whole metadata device before and after):
# a table with another region size, a shorter length and a shorter
# non-region-multiple one (a longer table grows the clone: 032); a
# superblock of random bytes; the real
# superblock with one bit flipped at the checksum, flags, block number,
# magic, version and space map root (checksum left stale); the same
# flips with the checksum recomputed (crc32c, the on-disk format's), which
# the magic, version, block number, bounds and geometry checks must catch
# on their own. After each refusal the right table still opens with its
# progress and data. The stored checksum is the documented crc32c. A
# metadata device whose first 4 KiB are zero is formatted: everything is
# unhydrated again and reads come from the source.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern dd od sha256sum

rs=16
src=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
meta=$(mkdev meta 4)
ref=$(mkdev ref 8)
len=$((16384 - 64))
nr=$((len / rs))
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9
clone=/dev/mapper/c
good=$(CLONE_LEN=$len clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)

log "making some progress"
dm_create c "$good"
ref_write $clone "$ref" 2 $((3 * rs)) $rs
ref_write $clone "$ref" 3 $((40 * rs + 1)) 2
ref_write $clone "$ref" 4 $((len - 5)) 5
h=3
assert_eq "$(clone_hydrated c)" $h "hydrated after the writes"
dm_remove c

# opens_with_progress: the right table opens, with the progress and data.
opens_with_progress() {
	dm_create c "$good"
	assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$h/$nr" "progress after reopening"
	cmp_dev $clone "$ref" "$len" || fail "reopened clone differs from the reference"
	dm_remove c
}
opens_with_progress

# refused WHAT TABLE: loading TABLE fails and the metadata is unchanged.
refused() {
	local what=$1 table=$2 before after why
	before=$(dev_sum "$meta")
	why=$(dm_table_load_should_fail c "$table")
	log "$what: refused: ${why:-no reason in the kernel log}"
	[ -n "$why" ] || fail "$what: no reason given for the refusal"
	after=$(dev_sum "$meta")
	assert_eq "$after" "$before" "$what: metadata device checksum"
	REFUSAL=$why
}

# --- geometry mismatches ---
refused "region size 32" "$(CLONE_LEN=$len clone_table "$meta" "$dest" "$src" 32 1 no_hydration)"
assert_match "$REFUSAL" "[Rr]egion size" "reason for another region size"
refused "region size 8" "$(CLONE_LEN=$len clone_table "$meta" "$dest" "$src" 8 1 no_hydration)"
for l in $((len - rs)) $((len - 1)); do
	refused "length $l" "$(CLONE_LEN=$l clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)"
	assert_match "$REFUSAL" "[Ll]ength" "reason for another length"
done
opens_with_progress

# --- corrupt superblocks ---
sb=$TEST_TMP/sb
dd if="$meta" of="$sb" bs=4096 count=1 iflag=direct status=none

# crc32c (Castagnoli, reflected, seed ~0, no final inversion) of bytes
# 4..4095 of FILE, xor 257649492: the superblock checksum. Slicing by 4
# (one step per little-endian word) keeps bash fast enough.
t0=() t1=() t2=() t3=()
for ((i = 0; i < 256; i++)); do
	c=$i
	for ((k = 0; k < 8; k++)); do
		if ((c & 1)); then c=$(((c >> 1) ^ 0x82F63B78)); else c=$((c >> 1)); fi
	done
	t0[i]=$c
done
for ((i = 0; i < 256; i++)); do
	c=${t0[i]}
	c=$(((c >> 8) ^ t0[c & 0xff])); t1[i]=$c
	c=$(((c >> 8) ^ t0[c & 0xff])); t2[i]=$c
	c=$(((c >> 8) ^ t0[c & 0xff])); t3[i]=$c
done
sb_csum() {
	local crc=0xffffffff w
	for w in $(od -An -v -tu4 -j4 -N4092 "$1"); do
		crc=$((crc ^ w))
		crc=$((t3[crc & 0xff] ^ t2[(crc >> 8) & 0xff] ^ t1[(crc >> 16) & 0xff] ^ t0[crc >> 24]))
	done
	echo $((crc ^ 257649492))
}
# le32 FILE OFFSET / put_le32 FILE OFFSET VALUE / flip FILE OFFSET MASK
le32() { od -An -tu4 -j"$2" -N4 "$1" | tr -d ' '; }
# shellcheck disable=SC2059 # the format is the byte
put_byte() { printf "\\x$(printf %02x "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
put_le32() {
	local i
	for i in 0 1 2 3; do put_byte "$1" $(($2 + i)) $((($3 >> (8 * i)) & 0xff)); done
}
flip() {
	local b
	b=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
	put_byte "$1" "$2" $((b ^ $3))
}

assert_eq "$(le32 "$sb" 32)" $((0x8af27f64)) "superblock magic"
assert_eq "$(le32 "$sb" 40)" 1 "superblock version"
assert_eq "$(sb_csum "$sb")" "$(le32 "$sb" 0)" "superblock checksum (crc32c of bytes 4-4095 xor 257649492)"

# with_superblock WHAT FILE: put FILE at block 0; the clone must be refused
# and the device untouched; then put the real superblock back.
with_superblock() {
	dd if="$2" of="$meta" bs=4096 count=1 oflag=direct conv=notrunc status=none
	refused "$1" "$good"
	dd if="$sb" of="$meta" bs=4096 count=1 oflag=direct conv=notrunc status=none
}

bad=$TEST_TMP/bad
head -c 4096 /dev/urandom >"$bad"
with_superblock "random superblock" "$bad"

# One bit flipped, checksum left as it was.
for off in 4 8 32 40 100 180; do
	cp "$sb" "$bad"
	flip "$bad" $off 1
	with_superblock "bit 0 of byte $off flipped (stale checksum)" "$bad"
done

# Flipped with the checksum made right again: the other checks must hold.
# 8: block number; 32: magic; 40: version; 51: top of the space map's
# block count; 67: top of its bitmap root; 172: region size; 180: target
# length; 195: top of the bitset root.
for spec in 8:1 32:1 40:1 51:128 67:128 172:1 180:8 195:128; do
	off=${spec%:*}
	cp "$sb" "$bad"
	flip "$bad" "$off" "${spec#*:}"
	put_le32 "$bad" 0 "$(sb_csum "$bad")"
	with_superblock "byte $off xor ${spec#*:}, checksum recomputed" "$bad"
done
opens_with_progress

# --- an all-zero first block is formatted ---
log "zeroing the superblock: the next table formats the metadata"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct conv=notrunc status=none
dm_create c "$good"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "0/$nr" "progress after formatting"
assert_eq "$(clone_mode c)" rw "mode after formatting"
# The destination still holds the writes, but nothing is hydrated now.
cmp_dev $clone "$src" "$len" || fail "freshly formatted clone does not read the source"
dm_remove c
dd if="$meta" of="$sb" bs=4096 count=1 iflag=direct status=none
assert_eq "$(le32 "$sb" 32)" $((0x8af27f64)) "magic written by the format"
assert_eq "$(sb_csum "$sb")" "$(le32 "$sb" 0)" "checksum written by the format"
log "ok"
