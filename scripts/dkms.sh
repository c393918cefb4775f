#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install dm-clone with DKMS, so that it is rebuilt for every kernel this
# machine installs. Run as root from the source tree:
#
#   scripts/dkms.sh [-k KVER]...     add, build and install (default: the
#                                    running kernel)
#   scripts/dkms.sh --remove         uninstall from every kernel
#   scripts/dkms.sh --build KVER KSRC  (dkms.conf's MAKE: the build itself)
#
# Copies the sources, dkms.conf, scripts/install-check.sh and the kernel's
# private persistent-data headers (not shipped by distro header packages)
# to /usr/src/dm-clone-VERSION/, then runs `dkms add` and `dkms install`.
# The headers come from PDATA_INC (the drivers/md directory of a kernel
# source tree: it must hold persistent-data/dm-bitset.h), or else from the
# cache `make deps` fills (Debian 12's linux-source 6.1). The kernel's own
# headers must be installed (Debian: linux-headers-$(uname -r)).
set -euo pipefail

# The build, run by dkms in its copy of the sources (no common.sh there).
if [ "${1:-}" = --build ]; then
	[ $# = 3 ] || { echo "usage: $0 --build KVER KERNEL_SOURCE_DIR" >&2; exit 2; }
	pdata=${PDATA_INC:-$PWD/pdata}
	if [ ! -f "$pdata/persistent-data/dm-bitset.h" ]; then
		echo "dm-clone: the kernel's persistent-data headers are missing ($pdata/persistent-data/*.h)." >&2
		echo "They are private to the kernel tree and not in header packages. Install with" >&2
		echo "'sudo scripts/dkms.sh' from the dm-clone source tree after 'make deps', or set" >&2
		echo "PDATA_INC to the drivers/md directory of the source tree of kernel $2." >&2
		exit 1
	fi
	exec make -C "$3" M="$PWD" PDATA_INC="$pdata" modules
fi

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/common.sh
. "$here/common.sh"
root=$DMCLONE_ROOT

version=$(cat "$root/VERSION" 2>/dev/null) || true
[ -n "$version" ] || die "no version in $root/VERSION"
dest=/usr/src/dm-clone-$version

kvers=() remove=0
while [ $# -gt 0 ]; do
	case "$1" in
	-k) [ $# -ge 2 ] || die "-k needs a kernel release"; kvers+=("$2"); shift 2 ;;
	--remove) remove=1; shift ;;
	-h|--help) sed -n '3,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"
command -v dkms >/dev/null 2>&1 || die "dkms is not installed (Debian/Ubuntu: apt install dkms)"

if [ $remove = 1 ]; then
	dkms status -m dm-clone -v "$version" 2>/dev/null | grep -q . &&
		dkms remove "dm-clone/$version" --all
	rm -rf "$dest"
	note "dm-clone $version removed from DKMS"
	exit 0
fi
[ ${#kvers[@]} -gt 0 ] || kvers=("$(uname -r)")

# The persistent-data headers.
pdata=${PDATA_INC:-}
if [ -z "$pdata" ]; then
	for d in "$DMCLONE_CACHE"/src/*/drivers/md; do
		[ -f "$d/persistent-data/dm-bitset.h" ] && pdata=$d
	done
fi
[ -f "${pdata:-/nonexistent}/persistent-data/dm-bitset.h" ] ||
	die "the kernel's persistent-data headers were not found${pdata:+ in $pdata}: run 'make deps' (it extracts them from Debian's linux-source), or set PDATA_INC to the drivers/md directory of your kernel's source tree"

for k in "${kvers[@]}"; do
	[ -d "/lib/modules/$k/build" ] ||
		die "no headers for kernel $k (/lib/modules/$k/build): install them first (Debian: apt install linux-headers-$k)"
	"$root/scripts/install-check.sh" "$k" /nonexistent
done

note "copying the sources to $dest"
dkms status -m dm-clone -v "$version" 2>/dev/null | grep -q . &&
	dkms remove "dm-clone/$version" --all >/dev/null
rm -rf "$dest"
mkdir -p "$dest/scripts" "$dest/pdata/persistent-data"
(cd "$root" && cp Makefile Kconfig dm-clone-probes.mk ./*.c ./*.h "$dest/")
rm -f "$dest/dm-clone-features.h"
sed "s/#MODULE_VERSION#/$version/" "$root/dkms.conf" >"$dest/dkms.conf"
cp "$root/scripts/install-check.sh" "$root/scripts/dkms.sh" "$dest/scripts/"
cp "$pdata"/persistent-data/*.h "$dest/pdata/persistent-data/"

dkms add "dm-clone/$version"
for k in "${kvers[@]}"; do
	dkms install "dm-clone/$version" -k "$k"
done
note "installed; load it with: modprobe dm-clone"
