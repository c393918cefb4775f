#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone create refuses, with a sentence on stderr, nothing on stdout and
# a non-zero exit, and without touching any device: the same device given
# twice (each pair), a source mounted read-write (and read-only), a mounted
# destination, a destination smaller than the source, a metadata device
# smaller than needed (1 MiB + 2 bits per region, rounded up to 4 KiB: one
# 4 KiB block less is refused, exactly that is accepted), an invalid region
# size, a metadata device holding foreign data (without --fresh), a name in
# use, a missing device, a regular file, a destination in use by another dm
# device, and malformed arguments (usage errors exit 2).
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool
need_cmd mkfs.ext4 mount umount

src=$(mkdev src 16)			# 32768 sectors
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
small=$(mkdev small 15)
fs=$(mkdev fs 16)
fill_pattern "$src" 1
fill_pattern "$dest" 2
fill_pattern "$small" 2
head -c 4096 /dev/urandom | dd of="$meta" bs=4096 oflag=direct conv=notrunc status=none
meta_sum=$(head_sum "$meta")
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"
on_exit "umount -l '$mnt' 2>/dev/null"

# untouched: nothing was created and no device changed.
untouched() {
	no_dm c
	assert_eq "$(head_sum "$meta")" "$meta_sum" "metadata header after a refusal"
}

log "the same device twice"
tool_refuses 1 "destination and the source are the same device" create c "$src" "$src" "$meta"
untouched
tool_refuses 1 "metadata and the source are the same device" create c "$src" "$dest" "$src"
untouched
tool_refuses 1 "destination and the metadata are the same device" create c "$src" "$meta" "$meta"
untouched
# The same device under another name (a symlink) is still the same device.
ln -s "$src" "$TEST_TMP/alias"
tool_refuses 1 "same device" create c "$src" "$dest" "$TEST_TMP/alias"
untouched

log "a mounted source or destination"
mkfs.ext4 -q -F "$fs"
mount "$fs" "$mnt"
tool_refuses 1 "source $fs is mounted read-write at $mnt.*umount" create c "$fs" "$dest" "$meta"
untouched
umount "$mnt"
mount -o ro "$fs" "$mnt"
tool_refuses 1 "source $fs is mounted \(read-only\) at $mnt" create c "$fs" "$dest" "$meta"
untouched
umount "$mnt"
mount "$fs" "$mnt"
tool_refuses 1 "destination $fs is mounted at $mnt" create c "$src" "$fs" "$meta"
untouched
umount "$mnt"

log "sizes"
tool_refuses 1 "destination $small is smaller than the source: 15 MiB \(30720 sectors\) < 16 MiB \(32768 sectors\)" \
	create c "$src" "$small" "$meta"
untouched
# 4096 regions of 4 KiB: 1 MiB + 1 KiB, rounded up to 4 KiB = 1028 KiB.
md_small=$(mkdev_sectors mdsmall $((1024 * 2)))
md_exact=$(mkdev_sectors mdexact $((1028 * 2)))
tool_refuses 1 "metadata device $md_small is too small: 1 MiB.*4096 regions of 4 KiB needs at least 1028 KiB" \
	create c "$src" "$dest" "$md_small" --region 4k
no_dm c
tool_ok create c "$src" "$dest" "$md_exact" --region 4k --no-hydration
track_dm c
assert_eq "$TOOL_OUT" /dev/mapper/c "create with exactly enough metadata"
check_pattern /dev/mapper/c 1
dm_remove c
# With 64 KiB regions the need is 1 MiB + 64 B -> 1028 KiB as well.
tool_refuses 1 "too small" create c "$src" "$dest" "$md_small"
no_dm c

log "region sizes"
tool_refuses 1 "region size 3 KiB is invalid: it must be a power of two from 4 KiB to 1 GiB" \
	create c "$src" "$dest" "$meta" --region 3k
tool_refuses 1 "region size 2 KiB is invalid" create c "$src" "$dest" "$meta" --region 2k
tool_refuses 1 "region size 2 GiB is invalid" create c "$src" "$dest" "$meta" --region 2g
tool_refuses 1 "region size 96 KiB is invalid" create c "$src" "$dest" "$meta" --region 96k
tool_refuses 1 "not a multiple of 512" create c "$src" "$dest" "$meta" --region 5000
tool_refuses 2 "--region 'lots' is not a size" create c "$src" "$dest" "$meta" --region lots
untouched

log "metadata holding foreign data, without --fresh"
tool_refuses 1 "metadata device $meta is not blank and holds no dm-clone metadata.*--fresh" \
	create c "$src" "$dest" "$meta"
untouched

log "names, paths, devices in use"
dm_create taken "0 2048 linear $src 0"
tool_refuses 1 "device-mapper device named 'taken' exists already" create taken "$src" "$dest" "$meta"
assert_match "$(dm_table taken)" "linear" "the existing device"
tool_refuses 1 "destination /dev/nosuch does not exist" create c "$src" /dev/nosuch "$meta"
truncate -s 16M "$TEST_TMP/file"
tool_refuses 1 "source $TEST_TMP/file is not a block device.*losetup" create c "$TEST_TMP/file" "$dest" "$meta"
dm_remove taken
dm_create holder "0 2048 linear $dest 0"
tool_refuses 1 "destination $dest is in use by /dev/mapper/holder" create c "$src" "$dest" "$meta"
dm_remove holder
untouched

log "usage errors"
tool_refuses 2 "expected NAME SOURCE DEST METADATA, got 3" create c "$src" "$dest"
tool_refuses 2 "expected NAME SOURCE DEST METADATA, got 5" create c "$src" "$dest" "$meta" extra
tool_refuses 2 "--threshold wants a whole number" create c "$src" "$dest" "$meta" --threshold -1
tool_refuses 2 "--threshold wants a whole number" create c "$src" "$dest" "$meta" --threshold 4294967296
tool_refuses 2 "--batch wants a whole number" create c "$src" "$dest" "$meta" --batch 1.5
tool_refuses 2 "unknown option --fast" create c "$src" "$dest" "$meta" --fast
tool_refuses 2 "NAME 'a/b' may only hold" create a/b "$src" "$dest" "$meta"
untouched

check_pattern "$dest" 2 || fail "the destination changed during the refusals"
check_pattern "$src" 1 || fail "the source changed"
log "ok"
