#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The build's dependencies on a Debian 12 host: what building and checking
# the module needs.
#
#   scripts/deps.sh           install them (`make deps`), then print them
#   scripts/deps.sh --print   only print them (what the Makefile reads)
#
# Installing means the Debian packages (compiler, sparse, the cloud
# kernel's headers) and the kernel's private persistent-data headers (and
# checkpatch.pl) extracted from the matching linux-source package into the
# cache; it is idempotent and quick when everything is already there.
#
# Either way it prints the variables the Makefile needs (KDIR=...,
# PDATA_INC=..., CHECKPATCH=...). With --print it installs, downloads and
# extracts nothing: it reads what is installed and cached, prints a
# variable only for what is there, and exits 1, saying to run `make deps`,
# when something is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

PACKAGES=(build-essential make gcc sparse linux-headers-cloud-amd64 xz-utils dpkg-dev)

# resolve: kver, kdir, pkgver, major and src_cache from the installed
# headers package (empty when it is not installed).
resolve() {
	kver=$(host_kver)
	kdir=${kver:+/usr/src/linux-headers-$kver}
	pkgver=${kver:+$(pkg_version "linux-headers-$kver")}
	major=$(echo "$kver" | cut -d. -f1,2)
	src_cache=${pkgver:+$DMCLONE_CACHE/src/$pkgver}
}

# print_vars: the Makefile's variables.
print_vars() {
	echo "KDIR=$kdir"
	echo "PDATA_INC=$src_cache/drivers/md"
	echo "CHECKPATCH=$src_cache/scripts/checkpatch.pl"
}

if [ "${1:-}" = --print ]; then
	resolve
	missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("package $p")
	done
	if [ -n "$kdir" ] && [ -d "$kdir" ]; then
		echo "KDIR=$kdir"
	else
		missing+=("the kernel headers")
	fi
	if [ -n "$src_cache" ] && [ -f "$src_cache/.done" ]; then
		echo "PDATA_INC=$src_cache/drivers/md"
		echo "CHECKPATCH=$src_cache/scripts/checkpatch.pl"
	else
		missing+=("the persistent-data headers and checkpatch from linux-source")
	fi
	[ ${#missing[@]} = 0 ] && exit 0
	die "missing: $(printf '%s, ' "${missing[@]}" | sed 's/, $//'); run 'make deps' (as root) to install them"
fi

apt_install "${PACKAGES[@]}"

resolve
[ -n "$kver" ] || die "cannot resolve the version of linux-headers-cloud-amd64"
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

print_vars
