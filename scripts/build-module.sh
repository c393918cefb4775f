#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build dm-clone.ko for one of the supported kernels and print its path.
#
#   scripts/build-module.sh [--kernel SEL] [-- MAKE-ARGS...]
#
# SEL is 6.1 (default), 6.12 or 7 (see scripts/kernels.sh). For 6.1 this is
# `make deps` and `make modules` in the repository, as always (the module lands beside the
# sources). For the others, the build runs in the suite's build chroot
# (scripts/chroot.sh), against that kernel's headers, into
# out/build/KVER/ (a copy of the sources; the repository is not touched):
#
#   * the chroot gets the compiler and kbuild packages the kernel's
#     linux-headers package depends on, and make and perl (W=1 runs
#     kernel-doc), installed with its apt; and the headers themselves unpacked (not installed: they would pull in the
#     kernel image), once per kernel release;
#   * the kernel's private persistent-data headers come from the same
#     version of the suite's linux-source package, downloaded and unpacked
#     (drivers/md/persistent-data/*.h only) into $DMCLONE_CACHE/src/VERSION;
#   * kbuild runs there; the feature probes (dm-clone-probes.c, see the
#     Makefile) run as part of it, against that kernel.
#
# For SEL debug (scripts/debug-kernel.sh), dm-clone.ko is built in tree:
# scripts/intree.sh drops the sources into drivers/md of a copy of that
# kernel's tree and builds it there with CONFIG_DM_CLONE=m, with the
# compiler that built that kernel, into out/build/KVER/ likewise; the
# KUnit test module (tests/kunit) is built out of tree against the tree
# itself, as out/build/KVER/tests/kunit/dm-clone-kunit.ko.
#
# MAKE-ARGS go to kbuild (for example W=1; for debug, to the in-tree
# build too, where they reach the tree's other modules it names). The
# build log is out/build/KVER/build.log (for debug: the KUnit module's;
# the in-tree build's is out/intree/KEY/build.log). Progress goes to
# stderr, the path of the module to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/kernels.sh"

usage() { sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit "${1:-2}"; }

sel=${DMCLONE_KERNEL:-6.1}
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) sel=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	*) echo "build-module.sh: unknown argument $1" >&2; usage ;;
	esac
done

kernel_select "$sel"
if [ "$SUITE" = "$HOST_SUITE" ]; then
	"$here/deps.sh" >/dev/null
	make -s -C "$DMCLONE_ROOT" modules "$@" >&2
	echo "$DMCLONE_ROOT/dm-clone.ko"
	exit 0
fi

if [ "$SUITE" = debug ]; then
	build=$DMCLONE_OUT/build/$KVER
	mkdir -p "$build/tests/kunit"
	# One build at a time in that directory (.ci/run's two lanes both
	# run tests on the debug kernel).
	exec 8>"$build/.lock"
	flock 8
	note "building dm-clone.ko for $KVER in its tree (scripts/intree.sh)"
	"$here/intree.sh" -- "$@" >/dev/null
	# cp -p keeps the times, so kbuild rebuilds only what changed.
	for f in "$DMCLONE_ROOT"/tests/kunit/Makefile "$DMCLONE_ROOT"/tests/kunit/*.c; do
		cmp -s "$f" "$build/tests/kunit/$(basename "$f")" || cp -p "$f" "$build/tests/kunit/"
	done
	note "building dm-clone-kunit.ko for $KVER in $build/tests/kunit"
	# Its headers from the repository, as for `make kunit-static`.
	# shellcheck disable=SC2153 # KDIR comes from kernel_select
	make -C "$KDIR" M="$build/tests/kunit" ccflags-y="-I$DMCLONE_ROOT" modules "$@" \
		>"$build/build.log" 2>&1 || {
		tail -n 40 "$build/build.log" >&2
		die "building the KUnit module for $KVER failed (log: $build/build.log)"
	}
	[ -f "$build/dm-clone.ko" ] || die "no $build/dm-clone.ko after the build"
	echo "$build/dm-clone.ko"
	exit 0
fi

chroot_root=$DMCLONE_CACHE/chroot/$SUITE
kdir=/usr/src/linux-headers-$KVER

# --- The kernel's headers and the compiler, in the chroot. ---
headers_stamp=$chroot_root/.headers-$KVER-$KPKGVER
if [ ! -f "$headers_stamp" ]; then
	"$here/chroot.sh" "$SUITE" true	# creates the chroot if needed
	(
		cache_lock "chroot-$SUITE"
		[ -f "$headers_stamp" ] && exit 0
		deps=$(suite_show "$SUITE" "linux-headers-$KVER=$KPKGVER" Depends)
		[ -n "$deps" ] || die "linux-headers-$KVER $KPKGVER is not in $SUITE's lists"
		# The first of each alternative, without version constraints;
		# the kernel image and linux-base are not needed to build.
		mapfile -t pkgs < <(tr ',' '\n' <<<"$deps" | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
			grep -v -E '^$|^linux-(image|base)')
		unpack=() install=(make libc6-dev perl)
		for p in "${pkgs[@]}"; do
			case "$p" in
			linux-headers-*) unpack+=("$p=$KPKGVER") ;;
			*) install+=("$p") ;;
			esac
		done
		note "preparing the $SUITE chroot for $KVER: installing ${install[*]}"
		"$here/chroot.sh" "$SUITE" sh -c 'apt-get update -qq && apt-get install -y -qq "$@"' _ \
			"${install[@]}" >"$chroot_root.install.log" 2>&1 || {
			tail -n 30 "$chroot_root.install.log" >&2
			die "installing ${install[*]} in the $SUITE chroot failed (log: $chroot_root.install.log)"
		}
		tmp=$(mktemp -d "$DMCLONE_CACHE/headers.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		note "unpacking linux-headers-$KVER $KPKGVER into the $SUITE chroot"
		suite_download "$SUITE" "$tmp" "linux-headers-$KVER=$KPKGVER" "${unpack[@]}" ||
			die "cannot download linux-headers-$KVER $KPKGVER from $SUITE"
		for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$chroot_root"; done
		[ -f "$chroot_root$kdir/Makefile" ] || die "no $kdir/Makefile after unpacking the headers"
		touch "$headers_stamp"
	)
fi

# --- The persistent-data headers, from the same version's linux-source. ---
src_cache=$DMCLONE_CACHE/src/$KPKGVER
if [ ! -f "$src_cache/.done" ]; then
	(
		cache_lock "src-$KPKGVER"
		[ -f "$src_cache/.done" ] && exit 0
		major=$(sed 's/^\([0-9]*\.[0-9]*\).*/\1/' <<<"$KVER")
		tmp=$(mktemp -d "$DMCLONE_CACHE/source.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		note "downloading linux-source-$major $KPKGVER ($SUITE) for the persistent-data headers"
		suite_download "$SUITE" "$tmp" "linux-source-$major=$KPKGVER" ||
			die "cannot download linux-source-$major $KPKGVER from $SUITE"
		rm -rf "$src_cache"
		mkdir -p "$src_cache"
		# Only the persistent-data headers: never dm-clone's own sources.
		dpkg-deb --fsys-tarfile "$tmp"/linux-source-*.deb |
			tar -xO "./usr/src/linux-source-$major.tar.xz" |
			tar -xJ -C "$src_cache" --strip-components=1 --wildcards \
				"linux-source-$major/drivers/md/persistent-data/*.h"
		[ -f "$src_cache/drivers/md/persistent-data/dm-bitset.h" ] ||
			die "linux-source-$major $KPKGVER has no drivers/md/persistent-data/dm-bitset.h"
		touch "$src_cache/.done"
	)
fi
pdata=$src_cache/drivers/md

# --- The build, in a copy of the sources. ---
build=$DMCLONE_OUT/build/$KVER
mkdir -p "$build"
# cp -p keeps the times, so kbuild rebuilds only what changed.
for f in "$DMCLONE_ROOT"/Makefile "$DMCLONE_ROOT"/Kconfig "$DMCLONE_ROOT"/dm-clone-*.[ch] \
	"$DMCLONE_ROOT"/dm-clone-probes.mk; do
	case "$f" in */dm-clone-features.h) continue ;; esac
	cmp -s "$f" "$build/$(basename "$f")" || cp -p "$f" "$build/"
done
note "building dm-clone.ko for $KVER ($SUITE chroot) in $build"
if ! "$here/chroot.sh" --bind "$build" --bind "$pdata" "$SUITE" \
	make -C "$kdir" M="$build" PDATA_INC="$pdata" modules "$@" >"$build/build.log" 2>&1; then
	tail -n 40 "$build/build.log" >&2
	die "building dm-clone.ko for $KVER failed (log: $build/build.log)"
fi
[ -f "$build/dm-clone.ko" ] || die "no $build/dm-clone.ko after the build"
echo "$build/dm-clone.ko"
