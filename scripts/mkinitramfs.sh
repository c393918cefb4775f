#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the base initramfs of the test guest and print its path.
#
#   scripts/mkinitramfs.sh [--kernel SEL] [KVER]
#
# KVER (or SEL, or DMCLONE_KERNEL: see scripts/guest-kernel.sh, which
# fetches the kernel) selects the guest kernel; each kernel has its image.
#
# The image (newc cpio, zstd) holds everything the tests need that does not
# change from run to run:
#   * busybox-static with its applet links, and the real tools tests use:
#     bash, dmsetup, fio, e2fsprogs, xfsprogs, util-linux (losetup,
#     blkdiscard, fstrim, blockdev, ...), coreutils, diffutils, grep, sed,
#     kmod, each with the shared libraries ldd finds;
#   * dmclone-pattern (tests/lib/pattern.c) and each tools/NAME.c as NAME,
#     built static here, and clone_tools (tools/clone-md) with its links
#     clone_check, clone_dump, clone_restore, clone_repair, and md-poke
#     (tests/unit/md-poke.c, the metadata corruption tool);
#   * the guest kernel's modules the tests use, with their dependencies as
#     resolved by `modprobe --show-depends` against that kernel's module
#     tree (see MODULES below), and a modules.dep made by depmod;
#   * when the kernel ships its own dm-clone (sid's 7.x does), that module
#     as the interchange tests' peer, at /usr/lib/dmclone-peer/dm-clone.ko:
#     outside the module tree, so `modprobe dm-clone` always loads ours
#     (the runner puts it in updates/) and the peer only loads by insmod,
#     after its dependencies (which are in the tree). /etc/dmclone-image
#     names it on a line "peer: PATH";
#   * /init (below): mounts /proc /sys /dev /tmp /run debugfs, then runs
#     the per-run payload (see scripts/guest-run.sh) with its output on the
#     second serial port, reports its exit status, and powers off.
#
# The module under test and the tests are not in here: scripts/guest-run.sh
# appends them per run as a second, small cpio archive.
#
# The image is cached in $DMCLONE_CACHE/initramfs/KVER/ under a hash of its
# inputs (this script, pattern.c, md-poke.c, the kernel package and the
# versions of the Debian packages the tools come from); an unchanged second
# run reuses it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

kver=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	--kernel) export DMCLONE_KERNEL=$2; shift 2 ;;
	-*) die "mkinitramfs.sh: unknown option $1" ;;
	*) kver=$1; shift ;;
	esac
done

# Debian packages the image is made from.
PACKAGES="busybox-static bash dmsetup fio e2fsprogs xfsprogs util-linux mount
	kmod coreutils diffutils grep sed mawk cpio zstd gcc libc6-dev"

# Tools copied from the host (found on PATH; busybox fills in the rest).
TOOLS="bash dmsetup fio
	mke2fs mkfs.ext4 e2fsck fsck.ext4 tune2fs debugfs dumpe2fs resize2fs filefrag
	mkfs.xfs xfs_repair xfs_db xfs_io xfs_info xfs_admin
	losetup blkdiscard fstrim blockdev wipefs blkzone fallocate setsid flock
	lsblk findmnt nsenter taskset ionice
	cmp diff grep egrep fgrep sed mawk
	kmod modprobe insmod rmmod lsmod depmod modinfo"
# All of coreutils (dd, timeout, stat, truncate, sort, sha256sum, ...).
COREUTILS="$(dpkg -L coreutils 2>/dev/null | grep -E '/s?bin/[^/]+$' | xargs -rn1 basename | sort -u | tr '\n' ' ')"

# Extras for the clone life-cycle tool and `make demo`: a real
# network block device (nbd-server, nbd-client and the nbd module), added
# latency on the loopback (tc, sch_netem), and the tool itself
# (scripts/dmclone, installed as /usr/local/sbin/dmclone); jq, a real JSON
# parser for the tool's --json output; the kernel's SCSI target (LIO) with
# its loopback fabric and an iblock backstore, which give a SCSI disk
# (sd_mod) whose target can be taken away and brought back (test 069);
# LIO's iSCSI target and open-iscsi's initiator (iscsid, iscsiadm, the
# iscsi_tcp module) for an iSCSI source over the loopback (test 075).
EXTRA_PACKAGES="nbd-server nbd-client iproute2 jq open-iscsi"
EXTRA_TOOLS="nbd-server nbd-client tc ip jq iscsid iscsiadm"
EXTRA_MODULES="nbd sch_netem target_core_mod target_core_iblock tcm_loop sd_mod
	iscsi_target_mod iscsi_tcp"
dmclone_tool=$DMCLONE_ROOT/scripts/dmclone

# Kernel modules: the required ones must exist, the optional ones are
# included when the kernel ships them (and noted when it does not).
# dm-linear, dm-error, dm-stripe and dm-kcopyd are part of dm-mod.
MODULES_REQUIRED="dm-mod dm-persistent-data dm-bufio loop"
MODULES_OPTIONAL="dm-bio-prison dm-delay dm-flakey dm-log-writes dm-zero
	dm-dust dm-ebs dm-thin-pool dm-snapshot brd null_blk configfs xfs ext4
	libcrc32c crc32c-intel crc32c_generic virtio_pci virtio_blk scsi_debug"

# shellcheck disable=SC2086 # lists of package names
apt_install $PACKAGES $EXTRA_PACKAGES
eval "$("$here/guest-kernel.sh" ${kver:+"$kver"})"	# KVER VMLINUZ MODROOT MODDIR
# shellcheck disable=SC2153 # KVER comes from guest-kernel.sh
kver=$KVER
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

pattern_c=$DMCLONE_ROOT/tests/lib/pattern.c
[ -f "$pattern_c" ] || die "missing $pattern_c"
md_poke_c=$DMCLONE_ROOT/tests/unit/md-poke.c

hash=$({
	cat "$0" "$pattern_c" "$MODROOT/.package"
	cat "$md_poke_c" 2>/dev/null || true
	cat "$DMCLONE_ROOT"/tools/*.c 2>/dev/null || true
	cat "$DMCLONE_ROOT"/tools/clone-md/* 2>/dev/null || true
	[ ! -f "$dmclone_tool" ] || cat "$dmclone_tool" "$DMCLONE_ROOT/VERSION"
	cat "$DMCLONE_ROOT"/systemd/* 2>/dev/null || true
	echo "$kver"
	# shellcheck disable=SC2086
	dpkg-query -W $PACKAGES $EXTRA_PACKAGES
} | sha256sum | cut -c1-16)
outdir=$DMCLONE_CACHE/initramfs/$kver
image=$outdir/base-$hash.cpio.zst

if [ -f "$image" ]; then
	echo "$image"
	exit 0
fi
cache_lock "initramfs-$kver"
if [ -f "$image" ]; then
	echo "$image"
	exit 0
fi

note "building the guest initramfs for $kver"
mkdir -p "$outdir"
work=$(mktemp -d "$outdir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# usrmerged layout, like the host.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,proc,sys,dev,tmp,run,root,mnt,var}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

# copy_file PATH: copy a host file to the same path in the image,
# resolving symlinks (but keeping the path it is looked up by).
copy_file() {
	[ -e "$root$1" ] && return 0
	mkdir -p "$root$(dirname "$1")"
	cp -L "$1" "$root$1"
}

# copy_libs FILE: the shared libraries (and the loader) FILE needs.
copy_libs() {
	local lib
	for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
		copy_file "$lib"
	done
}

# copy_tool NAME: a tool from the host's PATH, at its real path, and a link
# from the name it was looked up by when that differs (mkfs.ext4 -> mke2fs).
copy_tool() {
	local path real
	path=$(type -P "$1") || { note "tool $1 not found on the host, skipped"; return 0; }
	real=$(readlink -f "$path")
	case "$real" in /bin/*|/sbin/*|/lib/*) real=/usr$real ;; esac
	copy_file "$real"
	copy_libs "$real"
	case "$path" in /bin/*|/sbin/*) path=/usr$path ;; esac
	if [ "$path" != "$real" ] && [ ! -e "$root$path" ]; then
		mkdir -p "$root$(dirname "$path")"
		ln -s "$real" "$root$path"
	fi
}

# Real tools first; busybox applets only where no real tool exists.
for t in $TOOLS $EXTRA_TOOLS $COREUTILS; do copy_tool "$t"; done
ln -sf mawk "$root/usr/bin/awk"
cp /bin/busybox "$root/usr/bin/busybox"
busybox --list-full | while read -r applet; do
	case "$applet" in bin/*|sbin/*) applet=usr/$applet ;; esac
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /usr/bin/busybox "$root/$applet"
done
[ -e "$root/usr/bin/sh" ] || ln -s bash "$root/usr/bin/sh"

# Configuration the tools read.
for f in /etc/mke2fs.conf /etc/e2scrub.conf /etc/iscsi/iscsid.conf; do [ -f "$f" ] && copy_file "$f"; done
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\n' >"$root/etc/group"
ln -s /proc/self/mounts "$root/etc/mtab"

# The pattern tool, static so it needs nothing from the image.
gcc -O2 -Wall -static -o "$root/usr/local/bin/dmclone-pattern" "$pattern_c"
# The userspace tools in tools/ (one C file each), static as well.
for t in "$DMCLONE_ROOT"/tools/*.c; do
	[ -f "$t" ] || continue
	gcc -O2 -Wall -static -o "$root/usr/local/bin/$(basename "$t" .c)" "$t"
done
# The metadata tools: one binary (tools/clone-md/*.c), run by link name.
if [ -d "$DMCLONE_ROOT/tools/clone-md" ]; then
	mkdir -p "$root/usr/local/sbin"
	gcc -O2 -Wall -static -o "$root/usr/local/sbin/clone_tools" "$DMCLONE_ROOT"/tools/clone-md/*.c
	for t in clone_check clone_dump clone_restore clone_repair; do
		ln -s clone_tools "$root/usr/local/sbin/$t"
	done
	# The corruption tool of the unit tests, for the guest's damaged
	# metadata tests (058).
	if [ -f "$md_poke_c" ]; then
		gcc -O2 -Wall -static -o "$root/usr/local/bin/md-poke" "$md_poke_c" \
			"$DMCLONE_ROOT/tools/clone-md/crc32c.c"
	fi
fi
if [ -f "$dmclone_tool" ]; then
	# With its version filled in, as `make install` does.
	install -D -m 755 "$dmclone_tool" "$root/usr/local/sbin/dmclone"
	sed -i "s/^DMCLONE_VERSION=@VERSION@\$/DMCLONE_VERSION=$(cat "$DMCLONE_ROOT/VERSION")/" \
		"$root/usr/local/sbin/dmclone"
fi
# The boot integration's generator and finish unit (the guest runs no
# systemd: test 074 runs them by hand), where `make install` puts them,
# pointing at the tool's path here.
for f in systemd/dmclone-generator:lib/systemd/system-generators \
	systemd/dmclone-finish@.service:lib/systemd/system; do
	[ -f "$DMCLONE_ROOT/${f%%:*}" ] || continue
	mkdir -p "$root/usr/${f#*:}"
	sed 's|/usr/sbin/dmclone|/usr/local/sbin/dmclone|' "$DMCLONE_ROOT/${f%%:*}" \
		>"$root/usr/${f#*:}/$(basename "${f%%:*}")"
done
chmod 755 "$root/usr/lib/systemd/system-generators/dmclone-generator" 2>/dev/null || true

# Kernel modules with their dependencies.
mdest=$root/lib/modules/$kver
mkdir -p "$mdest"
have="" builtin="" lacking=""
add_module() {	# add_module NAME REQUIRED
	local deps line path
	if ! deps=$(modprobe -d "$MODROOT" -S "$kver" --show-depends "$1" 2>/dev/null); then
		[ "$2" = required ] && die "kernel $kver has no module $1"
		lacking+=" $1"
		return 0
	fi
	while read -r line; do
		case "$line" in
		insmod\ *)
			path=${line#insmod }
			path=${path%% *}
			mkdir -p "$mdest/$(dirname "${path#"$MODDIR"/}")"
			cp "$path" "$mdest/${path#"$MODDIR"/}"
			;;
		builtin\ *)
			builtin+=" $1"
			return 0
			;;
		esac
	done <<<"$deps"
	have+=" $1"
}
for m in $MODULES_REQUIRED; do add_module "$m" required; done
for m in $MODULES_OPTIONAL $EXTRA_MODULES; do add_module "$m" optional; done

# The kernel's own dm-clone (the interchange tests' peer): its dependencies
# into the tree, itself beside it.
peer=/usr/lib/dmclone-peer/dm-clone.ko
if deps=$(modprobe -d "$MODROOT" -S "$kver" --show-depends dm-clone 2>/dev/null) &&
	grep -q '^insmod .*/dm-clone\.ko' <<<"$deps"; then
	while read -r line; do
		case "$line" in insmod\ *) ;; *) continue ;; esac
		path=${line#insmod }
		path=${path%% *}
		if [ "$(basename "$path")" = dm-clone.ko ]; then
			install -D -m 644 "$path" "$root$peer"
		else
			mkdir -p "$mdest/$(dirname "${path#"$MODDIR"/}")"
			cp "$path" "$mdest/${path#"$MODDIR"/}"
		fi
	done <<<"$deps"
	have+=" dm-clone(peer)"
else
	peer=""
fi
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$MODDIR/$f" ] && cp "$MODDIR/$f" "$mdest/"
done
depmod -b "$root" "$kver"
[ -n "$lacking" ] && note "kernel $kver lacks (optional):$lacking"
{
	echo "kernel $kver ($(tr '\n' ' ' <"$MODROOT/.package"))"
	echo "modules:$have"
	echo "builtin:$builtin"
	echo "missing:$lacking"
	[ -z "$peer" ] || echo "peer: $peer"
} >"$root/etc/dmclone-image"

cat >"$root/init" <<'EOF'
#!/bin/sh
# /init of the dm-clone test guest (generated by scripts/mkinitramfs.sh).
#
# Runs /payload/cmd (written by scripts/guest-run.sh) with stdout and
# stderr on the second serial port (/dev/ttyS1), prints
# "@@DMCLONE-EXIT <status>" there, and powers off. The kernel log goes to
# the first serial port (the console).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C LC_ALL=C DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mapper
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777,size=75% tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname guest

out=/dev/ttyS1
stty -F $out raw -echo 2>/dev/null

# Defaults the payload may override in /payload/env.
HUNG_TASK_TIMEOUT=30
[ -f /payload/env ] && . /payload/env
sysctl -q -w kernel.hung_task_timeout_secs="$HUNG_TASK_TIMEOUT" \
	kernel.hung_task_warnings=-1 kernel.sysrq=1 >/dev/null 2>&1

# The modules under test go beside the distribution's, then depmod.
kver=$(uname -r)
if ls /payload/modules/*.ko >/dev/null 2>&1; then
	mkdir -p /lib/modules/$kver/updates
	cp /payload/modules/*.ko /lib/modules/$kver/updates/
	/usr/sbin/depmod -a	# kmod's: busybox sh prefers its own applets
fi

rc=125
if [ -f /payload/cmd ]; then
	cd /payload
	bash /payload/cmd </dev/null >$out 2>&1
	rc=$?
	cd /
else
	echo "no /payload/cmd in the initramfs" >$out
fi
echo "@@DMCLONE-EXIT $rc" >$out
sync
poweroff -f
sleep 5
echo o >/proc/sysrq-trigger
while :; do sleep 1000; done
EOF
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	zstd -q -T0 -9 >"$work/image"
mv "$work/image" "$image"
# Keep the three newest images (a concurrent run may still use an older one).
# shellcheck disable=SC2012 # the newest first, by time
ls -1t "$outdir"/base-*.cpio.zst | tail -n +4 | xargs -r rm -f
note "initramfs: $image ($(du -h "$image" | cut -f1))"
echo "$image"
