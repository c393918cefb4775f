#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# `make demo`: dm-clone doing a user's job end to end, in a test guest.
#
#   scripts/demo.sh
#
# A "backup image" (ext4 with real files) sits on a slow, remote server:
# nbd-server on the guest's loopback, attached with nbd-client (the real
# network block protocol), behind a link with added latency and limited
# bandwidth (tc netem; dm-delay if the kernel has no netem). The demo
# clones it to a local disk with scripts/dmclone, mounts the clone at once
# and reads and writes files while the copy runs, runs fstrim so that free
# space is never copied, switches the finished clone to a plain linear
# device under the mounted filesystem, checks every file's checksum against
# the backup, and prints a summary. About a minute of guest time.
#
# On the host it only installs what the guest image takes from it
# (nbd-server, nbd-client, iproute2) and boots the guest with
# scripts/guest-run.sh; the guest runs this same file with --in-guest.
# Needs dm-clone.ko (make modules; `make demo` builds it). Full logs:
# out/demo/. DEMO_LATENCY=dm-delay shows the fallback for kernels without
# netem.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ================================================================ host

if [ "${1:-}" != --in-guest ]; then
	# shellcheck source=scripts/common.sh
	. "$here/common.sh"
	[ -f "$DMCLONE_ROOT/dm-clone.ko" ] || die "dm-clone.ko is not built: run 'make demo' (or 'make modules' first)"
	# The guest image copies these tools from the host (scripts/mkinitramfs.sh).
	apt_install nbd-server nbd-client iproute2
	exec "$here/guest-run.sh" --timeout 900 --payload "$here" \
		--env "DEMO_LATENCY=${DEMO_LATENCY:-netem}" \
		--log-dir "$DMCLONE_OUT/demo" -- "$here/demo.sh" --in-guest
fi

# ================================================================ guest

# The repository's tool first (the image may have an older copy).
export PATH=$here:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
work=/tmp/demo
mnt=/mnt/backup
IMAGE_MB=256		# the backup image
LINK="delay 5ms rate 50mbit"	# netem on lo: 10 ms round trip, 50 Mbit/s

# --- presentation ---
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t / 1000)); }
T0=$(now_ms)
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
mib() { awk -v b="$1" 'BEGIN { printf (b >= 100 * 1048576 ? "%.0f MiB" : "%.1f MiB"), b / 1048576 }'; }
step_no=0
step() {
	step_no=$((step_no + 1))
	echo
	echo "=== $step_no. $* ==="
}
say() { echo "$*" | fold -s -w 76; }
indent() { sed 's/^/      /'; }
# run CMD...: show the command, run it, indent its output.
run() {
	echo "  \$ $*"
	"$@" 2>&1 | indent
	return "${PIPESTATUS[0]}"
}
# show_cmd CMD: show a command line without running it.
show_cmd() { echo "  \$ $*"; }
oops() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

hydrated() { dmsetup status --noflush backup | awk '$3 == "clone" { split($7, a, "/"); print a[1] }'; }
region_bytes() { dmsetup status --noflush backup | awk '$3 == "clone" { print $6 * 512 }'; }
nbd_read_bytes() { awk '{ print $3 * 512 }' /sys/block/nbd0/stat; }

cleanup() {
	set +e
	[ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null
	umount "$mnt"
	dmsetup remove backup 2>/dev/null
	dmsetup remove remote 2>/dev/null
	[ -b /dev/nbd0 ] && nbd-client -d /dev/nbd0 >/dev/null 2>&1
	[ -f $work/nbd.pid ] && kill "$(cat $work/nbd.pid)" 2>/dev/null
	tc qdisc del dev lo root 2>/dev/null
	losetup -D 2>/dev/null
} >/dev/null 2>&1
trap cleanup EXIT

for t in nbd-server nbd-client tc ip; do
	command -v $t >/dev/null || oops "the guest image has no $t (scripts/mkinitramfs.sh copies it from the host: EXTRA_TOOLS)"
done
mkdir -p $work $mnt
modprobe loop
modprobe dm-clone || oops "cannot load dm-clone.ko"

echo "dm-clone demo: a backup on a slow, remote server, usable at once on a local disk."
say "Everything below runs inside a small virtual machine (kernel $(uname -r)), as root. Commands are shown after a \$ sign."

# ---------------------------------------------------------------- 1
step "The backup: an ext4 image with real files"
src=$work/files
mkdir -p "$src/system" "$src/photos"
cp -a /usr/bin /usr/sbin /etc "$src/system/"
cp -a /usr/lib/x86_64-linux-gnu "$src/system/lib"
for i in 1 2 3 4 5 6; do
	head -c $((3 * 1024 * 1024)) /dev/urandom >"$src/photos/IMG_000$i.jpg"
done
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >$work/manifest
nfiles=$(wc -l <$work/manifest)
data_bytes=$(du -sb "$src" | cut -f1)
truncate -s ${IMAGE_MB}M $work/backup.img
mkfs.ext4 -q -F -L backup -b 4096 -d "$src" $work/backup.img
say "A ${IMAGE_MB} MiB ext4 image holding $nfiles files ($(mib "$data_bytes")): programs, libraries and configuration of a system, and six photos. The rest is free space. We record every file's SHA-256 now, to check the copy at the end."

# ---------------------------------------------------------------- 2
step "Serve it from a \"remote\" server over NBD"
ip link set lo up
modprobe nbd
cat >$work/nbd.conf <<EOF
[generic]
user = root
group = root
[backup]
exportname = $work/backup.img
readonly = true
EOF
show_cmd "nbd-server -C $work/nbd.conf -p $work/nbd.pid"
nbd-server -C $work/nbd.conf -p $work/nbd.pid >$work/nbd-server.log 2>&1 ||
	oops "nbd-server failed: $(cat $work/nbd-server.log)"
for _ in $(seq 50); do [ -s $work/nbd.pid ] && break; sleep 0.1; done
run nbd-client 127.0.0.1 /dev/nbd0 -N backup -b 4096 || oops "nbd-client failed"
remote=/dev/nbd0
# shellcheck disable=SC2086
if [ "${DEMO_LATENCY:-netem}" = netem ] && modprobe sch_netem 2>/dev/null &&
	tc qdisc add dev lo root netem $LINK 2>/dev/null; then
	show_cmd "tc qdisc add dev lo root netem $LINK"
	say "nbd-server exports the image read-only on 127.0.0.1; nbd-client attaches it as /dev/nbd0. tc netem makes the link behave like a remote one: 10 ms round trip, 50 Mbit/s."
else
	# No netem: delay every I/O of the NBD device by 10 ms with dm-delay.
	modprobe dm-delay || oops "neither sch_netem nor dm-delay is available"
	dmsetup create remote --readonly --table "0 $(blockdev --getsz /dev/nbd0) delay /dev/nbd0 0 10"
	show_cmd "dmsetup create remote --readonly --table \"0 ... delay /dev/nbd0 0 10\""
	remote=/dev/mapper/remote
	say "nbd-server exports the image read-only on 127.0.0.1; nbd-client attaches it as /dev/nbd0. dm-delay on top ($remote) adds 10 ms to every I/O, so that it behaves like a remote disk (tc netem is not used: $([ "${DEMO_LATENCY:-netem}" = netem ] && echo "this kernel lacks it" || echo "DEMO_LATENCY=$DEMO_LATENCY"))."
fi
t=$(now_ms)
dd if=$remote of=/dev/null bs=1M count=16 iflag=direct status=none
t=$(($(now_ms) - t))
rate=$((16 * 1048576 * 1000 / (t > 0 ? t : 1)))
say "Reading 16 MiB from it with dd takes $(secs $t) ($(mib "$rate")/s): copying all of it before using it would mean waiting. With dm-clone we do not wait."

# ---------------------------------------------------------------- 3
step "Clone it onto a local disk and mount it at once"
truncate -s ${IMAGE_MB}M $work/local-disk.img
truncate -s 8M $work/local-meta.img
disk=$(losetup --show -f $work/local-disk.img)
meta=$(losetup --show -f $work/local-meta.img)
say "The local disk is $disk (${IMAGE_MB} MiB); $meta (8 MiB) holds the clone's metadata: which parts are copied already. We create the clone paused (--no-hydration) for a moment, only so that you can see what fstrim does on its own."
t_start=$(now_ms)
run dmclone create backup $remote "$disk" "$meta" --no-hydration || oops "dmclone create failed"
run mount /dev/mapper/backup $mnt || oops "mount failed"
t_mount=$(($(now_ms) - t_start))
run ls $mnt
run df -h $mnt
say "Mounted $(secs $t_mount) after we started, with nothing copied yet: reads of parts not copied come from the remote image, writes go to the local disk."

# ---------------------------------------------------------------- 4
step "fstrim: free space is never copied"
h0=$(hydrated)
run fstrim -v $mnt || oops "fstrim failed"
h1=$(hydrated)
rb=$(region_bytes)
skipped=$(((h1 - h0) * rb))
say "The filesystem told the clone which blocks are free; dm-clone marked the $((h1 - h0)) regions of $((rb / 1024)) KiB they cover as done without copying them: $(mib "$skipped") will never cross the link."
run dmclone status backup --interval 0

# ---------------------------------------------------------------- 5
step "Copy in the background while we use the files"
t_copy=$(now_ms)
say "We start the copy, keeping at most 16 regions (1 MiB) in flight: enough to fill the link, while leaving room on it for our own reads."
read0=$(nbd_read_bytes)
run dmclone tune backup --resume --threshold 16 --batch 4
show_cmd "dmclone watch backup --interval 2 &"
(
	dmclone watch backup --interval 2 2>&1 | indent
	exit "${PIPESTATUS[0]}"
) &
watch_pid=$!
sleep 1
photo=photos/IMG_0005.jpg
t=$(now_ms)
sum=$(sha256sum "$mnt/$photo" | cut -d' ' -f1)
t=$(($(now_ms) - t))
grep -q "^$sum  ./$photo\$" $work/manifest || oops "$photo read from the clone does not match the backup"
echo "  reading $photo during the copy: $(secs $t), checksum matches the backup"
mkdir -p $mnt/notes
t=$(now_ms)
{ date; ls -lR $mnt/system/etc; } >$mnt/notes/today.txt 2>&1
cp $mnt/photos/IMG_0002.jpg $mnt/notes/IMG_0002-edited.jpg
sync
t=$(($(now_ms) - t))
(cd $mnt && sha256sum notes/today.txt notes/IMG_0002-edited.jpg) >$work/written
echo "  writing two new files (notes/today.txt, notes/IMG_0002-edited.jpg) and syncing: $(secs $t)"
wait $watch_pid || oops "dmclone watch failed"
watch_pid=""
t_copy=$(($(now_ms) - t_copy))
link_rate=$((($(nbd_read_bytes) - read0) * 1000 / (t_copy > 0 ? t_copy : 1)))
full_copy_ms=$((IMAGE_MB * 1048576 * 1000 / (link_rate > 0 ? link_rate : 1)))
say "Copied in $(secs $t_copy), while the filesystem stayed in use."

# ---------------------------------------------------------------- 6
step "Finish: switch to a plain linear device, still mounted"
run dmclone finish backup || oops "dmclone finish failed"
run dmsetup table backup
say "The filesystem stayed mounted throughout. The remote image and $meta are no longer needed: the NBD device can be disconnected."
remote_read=$(nbd_read_bytes)
dmsetup remove remote 2>/dev/null || true
run nbd-client -d /dev/nbd0

# ---------------------------------------------------------------- 7
step "Check: every file against the backup's checksums"
sync
echo 3 >/proc/sys/vm/drop_caches
show_cmd "cd $mnt && sha256sum --quiet -c $work/manifest"
(cd $mnt && sha256sum --quiet -c $work/manifest) 2>&1 | indent
[ "${PIPESTATUS[0]}" = 0 ] || oops "files differ from the backup"
echo "  all $nfiles files of the backup match"
(cd $mnt && sha256sum --quiet -c $work/written) 2>&1 | indent
[ "${PIPESTATUS[0]}" = 0 ] || oops "the files written during the copy differ"
echo "  the 2 files written during the copy read back intact"
run umount $mnt
run e2fsck -f -n /dev/mapper/backup || oops "e2fsck found errors"

# ---------------------------------------------------------------- summary
total=$(($(now_ms) - T0))
echo
echo "=== Summary ==="
printf '  %-40s %s\n' "backup image" "${IMAGE_MB} MiB, $nfiles files, $(mib "$data_bytes") of data"
printf '  %-40s %s\n' "time from start to a mounted filesystem" "$(secs $t_mount)"
printf '  %-40s %s\n' "copy time (in the background)" "$(secs $t_copy)"
printf '  %-40s %s\n' "a full copy first would have taken" "about $(secs $full_copy_ms) (256 MiB at $(mib "$link_rate")/s)"
printf '  %-40s %s\n' "skipped thanks to fstrim (free space)" "$(mib "$skipped")"
printf '  %-40s %s\n' "read over the network in all" "$(mib "$remote_read")"
printf '  %-40s %s\n' "files verified against the backup" "$nfiles of $nfiles, plus 2 new ones"
printf '  %-40s %s\n' "demo duration (in the VM)" "$(secs $total)"
echo
echo "demo: OK"
