#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetch the kernel the test guest boots, without installing it on the host.
#
#   scripts/guest-kernel.sh [KVER]
#
# KVER is a kernel release such as 6.1.0-56-cloud-amd64 (default: the
# release of the installed linux-headers-cloud-amd64, see guest_kver in
# common.sh). The package linux-image-KVER (or its -unsigned twin) is fetched
# with `apt-get download` at the version of the installed linux-headers-KVER
# (so the guest runs exactly the kernel `make modules` builds against), or
# at the apt candidate when those headers are not installed. Another kernel
# (for example trixie's 6.12 or sid's) only needs its suite in apt's sources
# and its release as KVER; DMCLONE_GUEST_KVER selects it for the other scripts.
#
# The package is unpacked with dpkg -x into $DMCLONE_CACHE/kernel/KVER/,
# compressed modules (.ko.xz, .ko.zst) are decompressed, and `depmod -b` is
# run. A second run finds the stamp file and does nothing.
#
# Prints shell assignments on stdout (progress goes to stderr):
#   KVER=...     kernel release
#   VMLINUZ=...  kernel image
#   MODROOT=...  directory holding lib/modules/KVER (for depmod/modprobe -d)
#   MODDIR=...   MODROOT/lib/modules/KVER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

case "${1:-}" in
-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
esac

kver=${1:-$(guest_kver)}
[ -n "$kver" ] || die "cannot resolve the guest kernel release (is linux-headers-cloud-amd64 installed? run 'make deps')"

root=$DMCLONE_CACHE/kernel/$kver
stamp=$root/.done

print_paths() {
	echo "KVER=$kver"
	echo "VMLINUZ=$root/boot/vmlinuz-$kver"
	echo "MODROOT=$root"
	echo "MODDIR=$root/lib/modules/$kver"
}

if [ -f "$stamp" ]; then
	print_paths
	exit 0
fi

apt_install kmod xz-utils zstd dpkg
cache_lock "kernel-$kver"
if [ -f "$stamp" ]; then	# built by a concurrent run while we waited
	print_paths
	exit 0
fi

# The version: that of the matching headers if installed, else apt's choice.
version=$(pkg_version "linux-headers-$kver")
tmp=$(mktemp -d "$DMCLONE_CACHE/kernel-$kver.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fetch() {	# fetch PACKAGE: download PACKAGE[=version] into $tmp
	(cd "$tmp" && apt-get download -qq "$1${version:+=$version}") >/dev/null 2>&1
}
note "downloading linux-image-$kver${version:+ $version}"
if ! fetch "linux-image-$kver" && ! fetch "linux-image-$kver-unsigned"; then
	# The package lists may be stale (fresh machine): refresh once.
	apt-get update -qq >/dev/null 2>&1 || true
	fetch "linux-image-$kver" || fetch "linux-image-$kver-unsigned" ||
		die "cannot download linux-image-$kver${version:+ version $version} (is its suite in apt's sources?)"
fi

note "extracting $(basename "$tmp"/*.deb)"
dpkg -x "$tmp"/*.deb "$tmp/root"
[ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "linux-image-$kver has no /boot/vmlinuz-$kver"
# usrmerged packages (trixie and later) ship /usr/lib/modules.
if [ ! -d "$tmp/root/lib/modules/$kver" ] && [ -d "$tmp/root/usr/lib/modules/$kver" ]; then
	mkdir -p "$tmp/root/lib/modules"
	mv "$tmp/root/usr/lib/modules/$kver" "$tmp/root/lib/modules/"
fi
[ -d "$tmp/root/lib/modules/$kver" ] || die "linux-image-$kver has no modules for $kver"

# The guest's busybox/kmod tools need no decompression support this way.
find "$tmp/root/lib/modules/$kver" -name '*.ko.xz' -exec xz -d {} +
find "$tmp/root/lib/modules/$kver" -name '*.ko.zst' -exec zstd -q -d --rm {} +
depmod -b "$tmp/root" "$kver"

rm -rf "$root"
mkdir -p "$(dirname "$root")"
mv "$tmp/root" "$root"
dpkg-deb -f "$tmp"/*.deb Package Version >"$root/.package"
touch "$stamp"
note "guest kernel $kver ready in $root"
print_paths
