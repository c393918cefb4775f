#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run a command in the build chroot of a Debian suite (created on first use).
#
#   scripts/chroot.sh [--bind DIR]... SUITE [CMD [ARGS...]]
#
# The kernels of suites newer than the host's (trixie's 6.12, sid's 7.x)
# need their own suite's compiler, and their kbuild tools need its C
# library, so dm-clone is built for them inside a minimal chroot of that
# suite: `debootstrap --variant=minbase` from the mirror the host's apt
# uses, kept in $DMCLONE_CACHE/chroot/SUITE (about a minute to create,
# reused afterwards; delete the directory to start afresh). Packages are
# installed inside it with its own apt (scripts/build-module.sh does).
#
# CMD (default: an interactive bash) runs as root in the chroot, in a
# private mount namespace (unshare -m: nothing is left mounted on the host)
# with /dev and /proc mounted, each --bind DIR (an absolute path on the
# host) mounted at the same path inside, and a clean environment (PATH,
# HOME=/root, LC_ALL=C, DEBIAN_FRONTEND=noninteractive). The exit status
# is CMD's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/kernels.sh"

usage() { sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit "${1:-2}"; }

binds=()
while [ $# -gt 0 ]; do
	case "$1" in
	--bind) binds+=("$2"); shift 2 ;;
	-h|--help) usage 0 ;;
	-*) echo "chroot.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
suite=$1
shift
case "$suite" in [a-z]*) ;; *) die "chroot.sh: '$suite' is not a suite name" ;; esac
[ $# -gt 0 ] || set -- bash -l

root=$DMCLONE_CACHE/chroot/$suite

create_chroot() {
	local tmp mirror proxy
	apt_install debootstrap
	mirror=$(debian_mirror) || exit 1
	tmp=$root.new
	rm -rf "$tmp"
	proxy=$(host_apt_proxy | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -n 1)
	note "creating the $suite build chroot (debootstrap --variant=minbase, $mirror)"
	if ! http_proxy=${proxy:-${http_proxy:-}} debootstrap --variant=minbase "$suite" "$tmp" "$mirror" \
		>"$DMCLONE_CACHE/chroot-$suite.log" 2>&1; then
		tail -n 20 "$DMCLONE_CACHE/chroot-$suite.log" >&2
		rm -rf "$tmp"
		die "debootstrap $suite failed (log: $DMCLONE_CACHE/chroot-$suite.log)"
	fi
	cat >"$tmp/etc/apt/apt.conf.d/99dmclone" <<-'EOF'
	// dm-clone build chroot (scripts/chroot.sh)
	APT::Install-Recommends "false";
	APT::Install-Suggests "false";
	Acquire::Languages "none";
	// sid's Release is valid for a week only; a mirror serving a snapshot
	// would be refused.
	Acquire::Check-Valid-Until "false";
	Acquire::Check-Date "false";
	EOF
	host_apt_proxy >>"$tmp/etc/apt/apt.conf.d/99dmclone"
	rm -rf "$root"
	mv "$tmp" "$root"
	touch "$root/.done"
}

if [ ! -f "$root/.done" ]; then
	(
		cache_lock "chroot-$suite"
		[ -f "$root/.done" ] || create_chroot
	)
fi

cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
for b in ${binds[@]+"${binds[@]}"}; do
	case "$b" in /*) ;; *) die "--bind wants an absolute path, not '$b'" ;; esac
	[ -d "$b" ] || die "--bind $b: no such directory"
	mkdir -p "$root$b"
done

# shellcheck disable=SC2016
exec unshare -m --propagation private -- bash -c '
	set -e
	root=$1 nbinds=$2
	shift 2
	mount --bind /dev "$root/dev"
	mount -t proc proc "$root/proc"
	while [ "$nbinds" -gt 0 ]; do
		mount --bind "$1" "$root$1"
		shift
		nbinds=$((nbinds - 1))
	done
	exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LC_ALL=C TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive "$@"
' _ "$root" "${#binds[@]}" ${binds[@]+"${binds[@]}"} "$@"
