#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the debug kernel (the `--kernel debug` tier: KASAN, lockdep,
# kmemleak, sleeping-in-atomic checks, KUnit) from Debian's linux-source
# package, cached, and print where it is.
#
#   scripts/debug-kernel.sh
#
# The kernel is `make tinyconfig` plus scripts/debug-kernel.config (merged
# with scripts/kconfig/merge_config.sh, then `make olddefconfig`); every
# line of the fragment is checked to have survived into .config. It is
# built in place (the tree doubles as the KDIR of out-of-tree module
# builds) in $DMCLONE_CACHE/debug-kernel/KEY/, KEY being a hash of the
# fragment, this script, the linux-source version and the compiler; a
# second run with the same key finds the stamp file and does nothing. The
# in-kernel dm-clone sources (drivers/md/dm-clone-*) and its documentation
# are not extracted. Concurrent runs wait on a lock. Older keys are
# removed, the two newest kept. DMCLONE_JOBS sets make's -j (default: the
# number of CPUs); the build time is kept in KEY/build-seconds.
#
# Prints shell assignments on stdout, like scripts/guest-kernel.sh (whose
# `--kernel debug` runs this), progress on stderr:
#   KVER=...       kernel release (6.1.N-dmclone-debug)
#   VMLINUZ=...    kernel image
#   MODROOT=...    directory holding lib/modules/KVER
#   MODDIR=...     MODROOT/lib/modules/KVER
#   KDIR=...       the built tree, for `make -C KDIR M=...`
#   PDATA_INC=...  drivers/md of the same tree (persistent-data headers)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

case "${1:-}" in
-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
"") ;;
*) die "debug-kernel.sh: unknown argument $1" ;;
esac

major=6.1
fragment=$here/debug-kernel.config
tarball=/usr/src/linux-source-$major.tar.xz

apt_install build-essential bc flex bison libelf-dev kmod cpio zstd xz-utils \
	"linux-source-$major"
srcver=$(pkg_version "linux-source-$major")
[ -f "$tarball" ] || die "no $tarball (linux-source-$major $srcver)"

key=$({
	cat "$fragment" "$0"
	echo "linux-source-$major $srcver"
	gcc --version | head -n 1
} | sha256sum | cut -c1-16)
base=$DMCLONE_CACHE/debug-kernel
dir=$base/$key
stamp=$dir/.done

print_paths() {
	local kver
	kver=$(cat "$dir/kver")
	echo "KVER=$kver"
	echo "VMLINUZ=$dir/root/boot/vmlinuz-$kver"
	echo "MODROOT=$dir/root"
	echo "MODDIR=$dir/root/lib/modules/$kver"
	echo "KDIR=$dir/build"
	echo "PDATA_INC=$dir/build/drivers/md"
}

if [ -f "$stamp" ]; then
	print_paths
	exit 0
fi
cache_lock "debug-kernel"
if [ -f "$stamp" ]; then	# built by a concurrent run while we waited
	print_paths
	exit 0
fi

# A stamp-less directory is a failed or interrupted build: start over.
rm -rf "$dir"
mkdir -p "$dir/build"
tree=$dir/build
log=$dir/build.log
note "debug kernel: extracting linux-source-$major $srcver into $tree"
# Never the in-kernel dm-clone: neither its sources nor its documentation.
tar -xJf "$tarball" -C "$tree" --strip-components=1 \
	--exclude="linux-source-$major/drivers/md/dm-clone*" \
	--exclude="linux-source-$major/Documentation/admin-guide/device-mapper/dm-clone.rst"

note "debug kernel: tinyconfig + $(basename "$fragment")"
{
	make -C "$tree" tinyconfig
	(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "$fragment")
	make -C "$tree" olddefconfig
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "configuring the debug kernel failed (log: $log)"; }

# Every line of the fragment must have made it: a dependency that is not
# met is dropped silently by kconfig.
bad=""
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$tree/.config" || bad="$bad $line"
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		! grep -qE "^$opt=[ym]" "$tree/.config" || bad="$bad $opt=n"
		;;
	esac
done <"$fragment"
[ -z "$bad" ] || die "the debug kernel's .config lacks:$bad (see $log)"

jobs=${DMCLONE_JOBS:-$(nproc)}
note "debug kernel: make -j$jobs (log: $log; expect tens of minutes)"
start=$(date +%s)
make -C "$tree" -j"$jobs" >>"$log" 2>&1 ||
	{ tail -n 40 "$log" >&2; die "building the debug kernel failed (log: $log)"; }
echo $(($(date +%s) - start)) >"$dir/build-seconds"

kver=$(make -s -C "$tree" kernelrelease)
make -C "$tree" INSTALL_MOD_PATH="$dir/root" modules_install >>"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; die "modules_install failed (log: $log)"; }
depmod -b "$dir/root" "$kver"
mkdir -p "$dir/root/boot"
cp "$tree/arch/x86/boot/bzImage" "$dir/root/boot/vmlinuz-$kver"
# What scripts/mkinitramfs.sh keys its image on.
echo "linux-source-$major $srcver debug-kernel $key" >"$dir/root/.package"
echo "$kver" >"$dir/kver"
touch "$stamp"
note "debug kernel $kver ready in $dir (make -j$jobs: $(cat "$dir/build-seconds") s)"

# Keep the two newest builds (a concurrent run may use the other one).
# shellcheck disable=SC2012 # the newest first, by time
ls -1dt "$base"/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
print_paths
