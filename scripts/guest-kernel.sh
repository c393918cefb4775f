#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetch the kernel the test guest boots, without installing it on the host.
#
#   scripts/guest-kernel.sh [--kernel SEL] [KVER]
#
# SEL selects one of the supported kernels (6.1, the default; 6.12; 7: see
# scripts/kernels.sh) and resolves its release from its suite's
# linux-headers-cloud-amd64; the environment variable DMCLONE_KERNEL does
# the same. KVER is a kernel release such as 6.1.0-56-cloud-amd64 (default:
# the release of the installed linux-headers-cloud-amd64, see guest_kver in
# common.sh; DMCLONE_GUEST_KVER sets it for the other scripts).
#
# For the host's suite (bookworm), the package linux-image-KVER (or its
# -unsigned twin) is fetched with `apt-get download` at the version of the
# installed linux-headers-KVER (so the guest runs exactly the kernel `make
# modules` builds against), or at the apt candidate when those headers are
# not installed. For another suite (selected with SEL, or KVER together
# with DMCLONE_KERNEL), the packages come through that suite's private apt
# configuration: linux-image-KVER and, where the image is split (sid: 7.x),
# the linux-binary-, linux-modules- and linux-base-KVER it depends on.
#
# SEL debug is the debug kernel: scripts/debug-kernel.sh builds it (once,
# cached) and prints the same assignments, plus KDIR and PDATA_INC.
#
# The packages are unpacked with dpkg -x into $DMCLONE_CACHE/kernel/KVER/
# (the kernel moved to boot/vmlinuz-KVER, modules to lib/modules/KVER),
# compressed modules (.ko.xz, .ko.zst) are decompressed, and `depmod -b` is
# run (sid's packages ship no modules.dep). A second run finds the stamp
# file and does nothing.
#
# Prints shell assignments on stdout (progress goes to stderr):
#   KVER=...     kernel release
#   VMLINUZ=...  kernel image
#   MODROOT=...  directory holding lib/modules/KVER (for depmod/modprobe -d)
#   MODDIR=...   MODROOT/lib/modules/KVER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/kernels.sh"

sel=${DMCLONE_KERNEL:-} kver=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	--kernel) sel=$2; shift 2 ;;
	-*) die "guest-kernel.sh: unknown option $1" ;;
	*) kver=$1; shift ;;
	esac
done

suite=$HOST_SUITE
if [ -n "$sel" ]; then
	suite=$(kernel_suite "$sel") || die "unknown kernel '$sel'"
fi
if [ "$suite" = debug ]; then
	out=$("$here/debug-kernel.sh")
	[ -z "$kver" ] || grep -qxF "KVER=$kver" <<<"$out" ||
		die "kernel $kver is not the debug kernel's ($(sed -n 's/^KVER=//p' <<<"$out"))"
	echo "$out"
	exit 0
fi
if [ -z "$kver" ] && [ "$suite" = "$HOST_SUITE" ]; then
	kver=$(guest_kver)
elif [ -z "$kver" ] && [ -n "${DMCLONE_GUEST_KVER:-}" ]; then
	kver=$DMCLONE_GUEST_KVER
fi
if [ -z "$kver" ] || { [ "$suite" != "$HOST_SUITE" ] && [ ! -f "$DMCLONE_CACHE/kernel/$kver/.done" ]; }; then
	if [ "$suite" != "$HOST_SUITE" ]; then
		kernel_select "$sel"	# KVER KPKGVER
		[ -z "$kver" ] || [ "$kver" = "$KVER" ] ||
			die "kernel $kver is not $sel's ($SUITE has $KVER)"
		kver=$KVER
	fi
fi
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

tmp=$(mktemp -d "$DMCLONE_CACHE/kernel-$kver.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs"

if [ "$suite" = "$HOST_SUITE" ]; then
	# The version: that of the matching headers if installed, else apt's choice.
	version=$(pkg_version "linux-headers-$kver")
	fetch() {	# fetch PACKAGE: download PACKAGE[=version] into $tmp/debs
		(cd "$tmp/debs" && apt-get download -qq "$1${version:+=$version}") >/dev/null 2>&1
	}
	note "downloading linux-image-$kver${version:+ $version}"
	if ! fetch "linux-image-$kver" && ! fetch "linux-image-$kver-unsigned"; then
		# The package lists may be stale (fresh machine): refresh once.
		apt_lock apt-get update -qq >/dev/null 2>&1 || true
		fetch "linux-image-$kver" || fetch "linux-image-$kver-unsigned" ||
			die "cannot download linux-image-$kver${version:+ version $version} (is its suite in apt's sources?)"
	fi
else
	version=${KPKGVER:-}
	[ -n "$version" ] || version=$(suite_show "$suite" "linux-headers-$kver" Version)
	image=linux-image-$kver
	[ -n "$(suite_show "$suite" "$image=$version" Package)" ] || image=$image-unsigned
	[ -n "$(suite_show "$suite" "$image=$version" Package)" ] ||
		die "no linux-image-$kver $version in $suite's package lists"
	deps=$(suite_show "$suite" "$image=$version" Depends)
	# A split image (sid): the kernel, the modules and their base files.
	pkgs=("$image=$version")
	# shellcheck disable=SC2020 # commas and bars, one character each
	for p in $(tr ',|' '\n\n' <<<"$deps" | sed 's/(.*)//; s/[[:space:]]//g' |
		grep -E "^linux-(binary|modules|base)-$(sed 's/[.+]/\\&/g' <<<"$kver")\$" | sort -u); do
		pkgs+=("$p=$version")
	done
	note "downloading from $suite: ${pkgs[*]}"
	suite_download "$suite" "$tmp/debs" "${pkgs[@]}" ||
		die "cannot download ${pkgs[*]} from $suite"
fi

mkdir -p "$tmp/root"
for deb in "$tmp"/debs/*.deb; do
	note "extracting $(basename "$deb")"
	dpkg -x "$deb" "$tmp/root"
done
# usrmerged packages (trixie and later) ship /usr/lib/modules.
if [ ! -d "$tmp/root/lib/modules/$kver" ] && [ -d "$tmp/root/usr/lib/modules/$kver" ]; then
	mkdir -p "$tmp/root/lib/modules"
	mv "$tmp/root/usr/lib/modules/$kver" "$tmp/root/lib/modules/"
fi
[ -d "$tmp/root/lib/modules/$kver" ] || die "linux-image-$kver has no modules for $kver"
# Split images (sid) ship the kernel as /usr/lib/modules/KVER/vmlinuz.
if [ ! -f "$tmp/root/boot/vmlinuz-$kver" ]; then
	for f in "$tmp/root/lib/modules/$kver"/vmlinuz*; do
		[ -f "$f" ] || continue
		mkdir -p "$tmp/root/boot"
		mv "$f" "$tmp/root/boot/vmlinuz-$kver"
		break
	done
fi
[ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "linux-image-$kver has no kernel image (boot/vmlinuz-$kver, lib/modules/$kver/vmlinuz)"

# The guest's busybox/kmod tools need no decompression support this way.
find "$tmp/root/lib/modules/$kver" -name '*.ko.xz' -exec xz -d {} +
find "$tmp/root/lib/modules/$kver" -name '*.ko.zst' -exec zstd -q -d --rm {} +
depmod -b "$tmp/root" "$kver"

rm -rf "$root"
mkdir -p "$(dirname "$root")"
mv "$tmp/root" "$root"
for deb in "$tmp"/debs/*.deb; do dpkg-deb -f "$deb" Package Version; done >"$root/.package"
touch "$stamp"
note "guest kernel $kver ready in $root"
print_paths
