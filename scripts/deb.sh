#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the Debian packages dm-clone-dkms and dmclone (`make deb`):
#
#   scripts/deb.sh [--no-lintian]
#
# Installs the build dependencies debian/control names (with apt, as root),
# copies the files git tracks (with the working tree's changes) to
# out/deb/dm-clone-VERSION/, runs dpkg-buildpackage there (binary
# packages, unsigned), then lintian on the result, which must print
# nothing (tags that are expected are overridden in
# debian/*.lintian-overrides, each with its reason). The packages end up
# in out/deb/; their paths are printed, one a line, on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/common.sh
. "$here/common.sh"
root=$DMCLONE_ROOT

lintian=1
case "${1:-}" in
"") ;;
--no-lintian) lintian=0 ;;
-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
*) die "unknown argument $1 (see --help)" ;;
esac

version=$(cat "$root/VERSION")
apt_install dpkg-dev debhelper lintian
# What dpkg-checkbuilddeps finds missing, without version constraints.
unmet=$(cd "$root" && dpkg-checkbuilddeps 2>&1 |
	sed -n 's/.*Unmet build dependencies: //p' | sed 's/([^)]*)//g') || true
# shellcheck disable=SC2086
[ -z "$unmet" ] || apt_install $unmet

out=$DMCLONE_OUT/deb
src=$out/dm-clone-$version
rm -rf "$out"
mkdir -p "$src"
# (Files deleted in the working tree but still in git's index are left out.)
# shellcheck disable=SC2016
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ |
	tar --null -T - -c) | tar -x -C "$src"

note "dpkg-buildpackage in $src"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log" >&2
	die "dpkg-buildpackage failed (log: $out/build.log)"
fi
debs=("$out"/dm-clone-dkms_"$version"_all.deb "$out"/dmclone_"$version"_"$(dpkg --print-architecture)".deb)
for d in "${debs[@]}"; do
	[ -f "$d" ] || die "dpkg-buildpackage made no $d (log: $out/build.log)"
done
if [ $lintian = 1 ]; then
	note "lintian"
	# Every tag, info included; the notice that root runs it is not one.
	if ! report=$(lintian --info --fail-on error,warning,info "$out"/*.changes 2>&1 |
		grep -v '^running with root privileges is not recommended!$') &&
		[ "${PIPESTATUS[0]}" = 0 ] || [ -n "$report" ]; then
		echo "$report" >&2
		die "lintian is not clean (fix it, or override an expected tag with its reason in debian/PACKAGE.lintian-overrides)"
	fi
fi
printf '%s\n' "${debs[@]}"
