#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install what building and checking the module needs on a Debian 12 host,
# and extract the kernel's private persistent-data headers (and
# checkpatch.pl) from the matching linux-source package into the cache.
# Idempotent and quick when everything is already there.
#
# Prints the variables the Makefile needs (KDIR=..., PDATA_INC=...,
# CHECKPATCH=...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

apt_install build-essential make gcc sparse linux-headers-cloud-amd64 \
	xz-utils dpkg-dev

kver=$(host_kver)
[ -n "$kver" ] || die "cannot resolve the version of linux-headers-cloud-amd64"
kdir=/usr/src/linux-headers-$kver
pkgver=$(pkg_version "linux-headers-$kver")
major=$(echo "$kver" | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')

src_cache=$DMCLONE_CACHE/src/$pkgver
# One extraction at a time (.ci/run's two lanes both get here at once).
# A subshell for the lock, not in a condition: set -e holds inside.
if [ ! -f "$src_cache/.done" ]; then (
	cache_lock "src-$pkgver"
	[ -f "$src_cache/.done" ] && exit 0
	tarball=/usr/src/linux-source-$major.tar.xz
	if [ "$(pkg_version "linux-source-$major")" != "$pkgver" ]; then
		# The installed linux-source does not match the headers: fetch
		# the matching one without installing it.
		tmp=$(mktemp -d)
		(cd "$tmp" && apt-get download -qq "linux-source-$major=$pkgver" 2>/dev/null) ||
			apt_install "linux-source-$major"
		if ls "$tmp"/*.deb >/dev/null 2>&1; then
			dpkg-deb --fsys-tarfile "$tmp"/*.deb |
				tar -x -C "$tmp" "./usr/src/linux-source-$major.tar.xz"
			tarball=$tmp/usr/src/linux-source-$major.tar.xz
		fi
	fi
	[ -f "$tarball" ] || die "linux-source-$major $pkgver not available"
	note "extracting persistent-data headers and checkpatch from linux-source-$major $pkgver"
	rm -rf "$src_cache" && mkdir -p "$src_cache"
	# Only what the build and the checks need; never the dm-clone sources.
	tar -xJf "$tarball" -C "$src_cache" --strip-components=1 \
		--wildcards "linux-source-$major/drivers/md/persistent-data/*.h" \
		"linux-source-$major/scripts/checkpatch.pl" \
		"linux-source-$major/scripts/spelling.txt" \
		"linux-source-$major/scripts/const_structs.checkpatch"
	[ -f "${tmp:-/nonexistent}/usr/src/linux-source-$major.tar.xz" ] && rm -rf "$tmp"
	touch "$src_cache/.done"
) fi

echo "KDIR=$kdir"
echo "PDATA_INC=$src_cache/drivers/md"
echo "CHECKPATCH=$src_cache/scripts/checkpatch.pl"
