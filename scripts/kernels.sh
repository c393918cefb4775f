# SPDX-License-Identifier: GPL-2.0-only
# The kernels dm-clone is built and tested on, and where they come from.
# Source after common.sh, do not execute.
#
# A kernel selector names a Debian suite whose cloud kernel we use:
#
#   6.1   bookworm  the host's own suite (Debian 12): its apt, its compiler;
#                   the default, exactly what `make check` always did
#   6.12  trixie    (Debian 13)
#   7     sid       (unstable: the newest kernel Debian has)
#   debug debug     not a suite: the debug kernel (KASAN, lockdep, kmemleak,
#                   KUnit) built from bookworm's linux-source by
#                   scripts/debug-kernel.sh, modules built with the host's
#                   compiler against its tree
#
# (the suite names work as selectors too). The version numbers are never
# written down here: kernel_select resolves them at run time from the
# suite's linux-headers-cloud-amd64 metapackage.
#
# Suites other than the host's are reached through a private apt
# configuration in $DMCLONE_CACHE/apt/SUITE (its own sources list, package
# lists and download cache, an empty dpkg status): the host's apt sources
# are never changed and nothing from those suites is installed on the host.
# Their packages are downloaded and unpacked (kernels, headers, the
# persistent-data headers from linux-source), and their compiler runs in a
# build chroot of the suite (scripts/chroot.sh).

# kernel_suite SEL: the suite of a selector; fails for an unknown one.
kernel_suite() {
	case "${1:-}" in
	""|6.1|bookworm|default) echo bookworm ;;
	6.12|trixie) echo trixie ;;
	7|7.*|sid|unstable) echo sid ;;
	debug) echo debug ;;
	*) return 1 ;;
	esac
}

# The suite the host's own apt serves (the default kernel's).
HOST_SUITE=bookworm

# Selectors of `make check-all`, in order.
ALL_KERNELS="6.1 6.12 7"

# debian_mirror: the Debian archive the host's apt uses, read from
# /etc/apt/sources.list, /etc/apt/sources.list.d/*.list (one-line style)
# and /etc/apt/sources.list.d/*.sources (deb822 style): the first URI
# ending in /debian. DMCLONE_DEBIAN_MIRROR=URL overrides it. When the host
# names none, it says how to set one and returns 1 (callers:
# `m=$(debian_mirror) || exit 1`).
debian_mirror() {
	local m
	if [ -n "${DMCLONE_DEBIAN_MIRROR:-}" ]; then
		echo "$DMCLONE_DEBIAN_MIRROR"
		return
	fi
	m=$({
		sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
		sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | grep -E '^(https?|file):.*/debian/?$' | head -n 1)
	if [ -z "$m" ]; then
		echo "error: no Debian archive in the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or *.sources) to fetch other suites' kernels from: set DMCLONE_DEBIAN_MIRROR to the URL of a Debian archive (the one apt would use for 'deb URL SUITE main'), for example DMCLONE_DEBIAN_MIRROR=http://HOST/debian" >&2
		return 1
	fi
	echo "$m"
}

# host_apt_proxy: the host apt's proxy settings, as apt.conf lines (none
# usually), for the private configurations and the build chroots.
host_apt_proxy() {
	apt-config dump 2>/dev/null | grep -E '^Acquire::(https?|ftp)::Proxy(::[^ ]*)? "' || true
}

# suite_apt_dir SUITE: the private apt tree of a suite (created on demand).
suite_apt_dir() {
	local d=$DMCLONE_CACHE/apt/$1 mirror
	if [ ! -f "$d/apt.conf" ]; then
		mirror=$(debian_mirror) || exit 1
		mkdir -p "$d/etc/parts" "$d/etc/preferences.d" "$d/lists/partial" \
			"$d/archives/partial"
		: >"$d/status"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $1 main" \
			>"$d/sources.list"
		# Only this file: none of the host's apt.conf.d, sources or pins.
		cat >"$d/apt.conf.tmp" <<-EOF
		Dir::Etc::main "/dev/null";
		Dir::Etc::Parts "$d/etc/parts";
		Dir::Etc::SourceList "$d/sources.list";
		Dir::Etc::SourceParts "$d/etc/parts";
		Dir::Etc::Preferences "/dev/null";
		Dir::Etc::PreferencesParts "$d/etc/preferences.d";
		Dir::State "$d";
		Dir::State::Lists "$d/lists";
		Dir::State::status "$d/status";
		Dir::Cache "$d";
		Dir::Cache::Archives "$d/archives";
		APT::Architecture "amd64";
		APT::Architectures { "amd64"; };
		Acquire::Languages "none";
		APT::Sandbox::User "root";
		// sid's Release is only valid for a week: mirrors that serve a
		// snapshot (as CI's may) would be refused.
		Acquire::Check-Valid-Until "false";
		Acquire::Check-Date "false";
		EOF
		host_apt_proxy >>"$d/apt.conf.tmp"
		mv "$d/apt.conf.tmp" "$d/apt.conf"
	fi
	echo "$d"
}

# suite_apt SUITE CMD ARGS...: run an apt command (apt-get, apt-cache) with
# the suite's private configuration; the host's own for the host's suite.
suite_apt() {
	local suite=$1 d
	shift
	if [ "$suite" = "$HOST_SUITE" ]; then
		"$@"
	else
		d=$(suite_apt_dir "$suite") || exit 1
		APT_CONFIG="$d/apt.conf" "$@"
	fi
}

# suite_update SUITE [force]: refresh the suite's private package lists when
# they are missing or older than DMCLONE_APT_MAX_AGE seconds (default an
# hour), or always with "force". A failed refresh is fatal only when there
# are no lists at all. Not for the host's suite.
suite_update() {
	local suite=$1 d stamp age
	d=$(suite_apt_dir "$suite") || exit 1
	stamp=$d/lists/.updated
	if [ "${2:-}" != force ] && [ -f "$stamp" ]; then
		age=$(($(date +%s) - $(stat -c %Y "$stamp")))
		[ "$age" -lt "${DMCLONE_APT_MAX_AGE:-3600}" ] && return 0
	fi
	(
		exec 8>"$d/update.lock"
		flock 8
		note "apt-get update ($suite, private lists in $d)"
		if APT_CONFIG=$d/apt.conf apt-get update -qq >"$d/update.log" 2>&1 &&
			! grep -q '^E:' "$d/update.log"; then
			touch "$stamp"
		elif ls "$d"/lists/*_Packages* >/dev/null 2>&1; then
			note "apt-get update ($suite) failed, using the lists from $(date -r "$d/lists" '+%F %R'):"
			sed 's/^/   /' "$d/update.log" >&2
		else
			sed 's/^/   /' "$d/update.log" >&2
			die "apt-get update for $suite failed (mirror $(sed -n 's/^deb \[[^]]*\] \([^ ]*\) .*/\1/p' "$d/sources.list"))"
		fi
	)
}

# suite_show SUITE PKG[=VERSION] FIELD: a field of the candidate (or the
# given version) of a package in the suite's lists.
suite_show() {
	suite_apt "$1" apt-cache show --no-all-versions "$2" 2>/dev/null |
		sed -n "s/^$3: //p" | head -n 1
}

# suite_download SUITE DIR PKG=VERSION...: download packages into DIR.
suite_download() {
	local suite=$1 dir=$2 log
	shift 2
	mkdir -p "$dir"
	log=$(cd "$dir" && suite_apt "$suite" apt-get download -qq "$@" 2>&1) || {
		printf '%s\n' "$log" >&2
		return 1
	}
}

# kernel_select SEL: resolve a selector. Sets KSEL (the selector), SUITE,
# KVER (kernel release, e.g. 6.12.57+deb13-cloud-amd64) and KPKGVER (the
# Debian version of its headers and image packages). For a suite other
# than the host's it refreshes the private lists first (see suite_update).
kernel_select() {
	local deps
	KSEL=${1:-6.1}
	SUITE=$(kernel_suite "$KSEL") || die "unknown kernel '$KSEL' (known: $ALL_KERNELS, or bookworm, trixie, sid)"
	if [ "$SUITE" = debug ]; then
		eval "$("$DMCLONE_ROOT/scripts/debug-kernel.sh")"	# KVER ... KDIR PDATA_INC
		KPKGVER=debug
		return 0
	fi
	if [ "$SUITE" = "$HOST_SUITE" ]; then
		KVER=$(host_kver)
		[ -n "$KVER" ] || die "cannot resolve the version of linux-headers-cloud-amd64 (run 'make deps')"
		KPKGVER=$(pkg_version "linux-headers-$KVER")
		return 0
	fi
	suite_update "$SUITE"
	deps=$(suite_show "$SUITE" linux-headers-cloud-amd64 Depends)
	KVER=$(sed -n 's/.*linux-headers-\([0-9][^ ,]*-cloud-amd64\).*/\1/p' <<<"$deps")
	KPKGVER=$(sed -n 's/.*linux-headers-[0-9][^ ,]*-cloud-amd64 (= \([^)]*\)).*/\1/p' <<<"$deps")
	[ -n "$KVER" ] && [ -n "$KPKGVER" ] ||
		die "cannot resolve the kernel of $SUITE from linux-headers-cloud-amd64 (Depends: '${deps:-none}')"
}

# kernel_module_path KVER: where the dm-clone.ko built for KVER lies: the
# repository's own build for the host's kernel, else the per-kernel build
# directory scripts/build-module.sh uses.
kernel_module_path() {
	if [ "$1" = "$(host_kver)" ]; then
		echo "$DMCLONE_ROOT/dm-clone.ko"
	else
		echo "$DMCLONE_OUT/build/$1/dm-clone.ko"
	fi
}
