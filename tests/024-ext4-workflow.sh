#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The ext4 workflow: an ext4 source with files of known checksums is cloned
# with no_hydration and mounted at once; files read back intact; new files
# are written, some modified, one deleted; fstrim runs on the mount; then
# hydration is enabled and completes under the mount. After sync and
# unmount, e2fsck -fn is clean on the clone; mounted again, every checksum
# matches. Then, with the filesystem mounted, the table is swapped to linear
# over the destination (suspend/load/resume under the mount): files still
# match (read from the device again); after unmount e2fsck -fn is clean on
# the destination itself. The source is never written.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd mkfs.ext4 e2fsck fstrim sha256sum mount umount

src=$(mkdev src 48)
dest=$(mkdev dest 48)
meta=$(mkdev meta 4)
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"
on_exit "umount -l '$mnt' 2>/dev/null"
sums=$TEST_TMP/sums

fill_pattern "$dest" 9				# stale data: must never show
log "making the source filesystem"
mkfs.ext4 -q -F -b 4096 -E nodiscard -L clonesrc "$src"
mount "$src" "$mnt"
mkdir -p "$mnt/dir/sub"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$mnt/big"
head -c $((1024 * 1024 + 777)) /dev/urandom >"$mnt/dir/medium"
head -c 4097 /dev/urandom >"$mnt/dir/sub/small"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$mnt/to-modify"
head -c $((512 * 1024)) /dev/urandom >"$mnt/to-delete"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$mnt/to-delete-big"
for i in $(seq 1 40); do echo "file $i $RANDOM" >"$mnt/dir/f$i"; done
(cd "$mnt" && find . -type f ! -name lost+found -print0 | sort -z | xargs -0 sha256sum) >"$sums"
umount "$mnt"
src_sum=$(sha256sum <"$src")

# verify: every file of the checksum list matches, and no file is missing.
verify() {
	(cd "$mnt" && sha256sum --quiet -c "$sums") || fail "checksums differ ($1)"
	local n
	n=$(cd "$mnt" && find . -type f | wc -l)
	assert_eq "$n" "$(wc -l <"$sums")" "number of files ($1)"
}

log "cloning and mounting at once"
clone_create c "$meta" "$dest" "$src" 128 1 no_hydration
clone=/dev/mapper/c
mount "$clone" "$mnt"
verify "first mount of the clone"

log "writing, modifying, deleting"
head -c $((1536 * 1024)) /dev/urandom >"$mnt/new-big"
head -c 12345 /dev/urandom >"$mnt/dir/sub/new-small"
# Overwrite the middle of one file, append to another.
dd if=/dev/urandom of="$mnt/to-modify" bs=4096 seek=100 count=50 conv=notrunc status=none
head -c 5000 /dev/urandom >>"$mnt/dir/medium"
echo "changed" >"$mnt/dir/f7"
rm "$mnt/to-delete" "$mnt/to-delete-big"
sync
(cd "$mnt" && find . -type f ! -name lost+found -print0 | sort -z | xargs -0 sha256sum) >"$sums"
drop_caches
verify "after the changes"
h0=$(clone_hydrated c)
log "fstrim (hydrated before: $h0/$(clone_regions c))"
fstrim -v "$mnt"
h1=$(clone_hydrated c)
log "hydrated after fstrim: $h1"
[ "$h1" -gt "$h0" ] || fail "fstrim hydrated no region (before $h0, after $h1): $(clone_status c)"
drop_caches
verify "after fstrim"

log "hydrating under the mount"
dm_message c enable_hydration
wait_hydrated c 150
sync
umount "$mnt"
e2fsck -fn "$clone" || fail "e2fsck on the hydrated clone found problems"
mount "$clone" "$mnt"
verify "remount of the hydrated clone"

log "swapping to linear under the mount"
len=$(dev_sectors "$src")
dmsetup suspend c
dmsetup load c --table "0 $len linear $dest 0"
dmsetup resume c
assert_match "$(dm_table c)" "^0 $len linear " "table after the swap"
drop_caches
verify "linear table under the mount"
echo "after the swap" >"$mnt/after-swap"
(cd "$mnt" && sha256sum ./after-swap) >>"$sums"
sync
umount "$mnt"
dm_remove c
e2fsck -fn "$dest" || fail "e2fsck on the destination found problems"
mount -o ro "$dest" "$mnt"
verify "destination mounted directly"
umount "$mnt"
assert_eq "$(sha256sum <"$src")" "$src_sum" "the source is unchanged"
log "ok"
