# SPDX-License-Identifier: GPL-2.0-only
# Shared shell helpers for scripts/ and tests/run. Source, do not execute.

: "${DMCLONE_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/dm-clone}"
export DMCLONE_CACHE

die() { echo "error: $*" >&2; exit 1; }
note() { echo ">> $*" >&2; }

apt_updated=
# apt_lock CMD...: run CMD holding our lock on the host's apt and dpkg, so
# that concurrent scripts (.ci/run's two lanes) wait for each other rather
# than fail on dpkg's lock.
apt_lock() {
	mkdir -p "$DMCLONE_CACHE"
	flock "$DMCLONE_CACHE/apt.lock" "$@"
}

# apt_install PKG...: install the packages that are not installed yet.
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	note "installing: ${missing[*]}"
	if [ -z "$apt_updated" ]; then
		apt_lock apt-get update -qq >/dev/null || die "apt-get update failed"
		apt_updated=1
	fi
	apt_lock env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# host_kver: the kernel release of bookworm's linux-headers-cloud-amd64
# (for example 6.1.0-56-cloud-amd64), from the installed metapackage.
host_kver() {
	dpkg-query -W -f='${Depends}' linux-headers-cloud-amd64 2>/dev/null |
		sed -n 's/.*linux-headers-\([0-9][^ ,]*-cloud-amd64\).*/\1/p'
}

# pkg_version PKG: installed Debian version of PKG.
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# --- Guest helpers (scripts/guest-*.sh, scripts/mkinitramfs.sh, tests/run) ---

# The repository root and the per-run output directory (git-ignored).
DMCLONE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${DMCLONE_OUT:=$DMCLONE_ROOT/out}"

# guest_kver: the kernel release the guest boots. Defaults to the release
# of the installed headers (what `make modules` builds against); set
# DMCLONE_GUEST_KVER to boot another kernel (scripts/guest-kernel.sh).
guest_kver() {
	if [ -n "${DMCLONE_GUEST_KVER:-}" ]; then
		echo "$DMCLONE_GUEST_KVER"
	else
		host_kver
	fi
}

# cache_lock NAME: take an exclusive lock on $DMCLONE_CACHE/NAME.lock for
# the rest of the calling (sub)shell, so that concurrent runs do not build
# the same cache entry twice. Uses file descriptor 9.
cache_lock() {
	mkdir -p "$DMCLONE_CACHE"
	exec 9>"$DMCLONE_CACHE/$1.lock"
	flock 9
}
