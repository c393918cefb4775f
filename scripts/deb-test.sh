#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The Debian packages' install test (`make deb-test`):
#
#   scripts/deb-test.sh [--no-build] [--no-guest] [--keep]
#
#   1. builds the packages (scripts/deb.sh; --no-build: use those in
#      out/deb/);
#   2. copies the bookworm chroot of scripts/chroot.sh (created on first
#      use) to a fresh one, installs the guest kernel's headers there
#      (linux-headers-KVER, the host's linux-headers-cloud-amd64 release)
#      and then both packages with apt, which pulls in dkms;
#   3. checks that DKMS built and installed dm-clone.ko for KVER on its
#      own (dkms status, the .ko's vermagic), and that the tool runs;
#   4. purges both packages and checks that nothing is left: dkms status
#      empty, every file the packages installed gone, no
#      /usr/src/dm-clone-*, /var/lib/dkms/dm-clone, nor dm-clone.ko under
#      /lib/modules;
#   5. boots the test guest with that DKMS-built dm-clone.ko and the
#      packaged dmclone, and makes, copies and finishes a small clone
#      (--no-guest skips this).
# Prints the time each step took. --keep keeps the chroot (its path is
# printed). Downloaded packages are cached in $DMCLONE_CACHE/deb-test-apt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/common.sh
. "$here/common.sh"
# shellcheck source=scripts/kernels.sh
. "$here/kernels.sh"
root=$DMCLONE_ROOT

build=1 guest=1 keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--no-guest) guest=0 ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "run as root (the chroot needs it)"

t0=$SECONDS
step_start=$SECONDS
step() {
	note "$1 ($((SECONDS - step_start)) s for the previous step)"
	step_start=$SECONDS
}

version=$(cat "$root/VERSION")
out=$DMCLONE_OUT/deb
if [ $build = 1 ]; then
	step "building the packages"
	"$here/deb.sh" >/dev/null
fi
arch=$(dpkg --print-architecture)
debs=("$out/dm-clone-dkms_${version}_all.deb" "$out/dmclone_${version}_${arch}.deb")
for d in "${debs[@]}"; do
	[ -f "$d" ] || die "no $d: run scripts/deb.sh (make deb) first"
done
kver=$(host_kver)
[ -n "$kver" ] || die "cannot tell the guest kernel's release (is linux-headers-cloud-amd64 installed? make deps)"

step "preparing a fresh bookworm chroot"
"$here/chroot.sh" bookworm true
work=$(mktemp -d "$DMCLONE_CACHE/deb-test.XXXXXX")
cleanup() {
	if [ $keep = 1 ]; then
		note "chroot kept: $work/chroot/bookworm (DMCLONE_CACHE=$work scripts/chroot.sh bookworm)"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
mkdir -p "$work/chroot"
cp -a "$DMCLONE_CACHE/chroot/bookworm" "$work/chroot/bookworm"
# The suites the host's apt uses for bookworm, from its own mirrors
# (the kernel headers of the guest may be in bookworm-security only).
mirror=$(debian_mirror)
security=$({
	sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
	sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
} | grep -E '^(https?|file):.*/debian-security/?$' | head -n 1) || true
{
	key="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
	echo "deb $key $mirror bookworm main"
	echo "deb $key $mirror bookworm-updates main"
	[ -z "$security" ] || echo "deb $key $security bookworm-security main"
} >"$work/chroot/bookworm/etc/apt/sources.list"
archives=$DMCLONE_CACHE/deb-test-apt
mkdir -p "$archives/partial" "$work/debs"
cp "${debs[@]}" "$work/debs/"
# in_chroot CMD...: run CMD (a bash script) in the fresh chroot.
in_chroot() {
	DMCLONE_CACHE=$work "$here/chroot.sh" --bind "$archives" --bind "$work/debs" bookworm \
		bash -euo pipefail -c "$1"
}

step "installing linux-headers-$kver and the packages (apt, DKMS builds the module)"
in_chroot "
	printf 'Dir::Cache::Archives \"%s\";\nAPT::Sandbox::User \"root\";\n' $archives \
		>/etc/apt/apt.conf.d/98deb-test
	apt-get update -qq
	apt-get install -y -qq linux-headers-$kver >$work/debs/headers.log 2>&1 ||
		{ tail -n 40 $work/debs/headers.log; exit 1; }
	apt-get install -y -qq $work/debs/dm-clone-dkms_${version}_all.deb $work/debs/dmclone_${version}_${arch}.deb \
		>$work/debs/install.log 2>&1 || { tail -n 40 $work/debs/install.log; exit 1; }
	dpkg -L dm-clone-dkms dmclone | sort >$work/debs/files
" || die "installing the packages failed (above)"

step "checking what DKMS built"
ko=/lib/modules/$kver/updates/dkms/dm-clone.ko
in_chroot "
	fail() { echo \"deb-test: \$*\" >&2; exit 1; }
	st=\$(dkms status dm-clone)
	echo \"dkms status: \$st\"
	[ \"\$st\" = 'dm-clone/$version, $kver, x86_64: installed' ] ||
		fail \"DKMS did not install dm-clone/$version for $kver: '\$st' (log: /var/lib/dkms/dm-clone/$version/build/make.log)\"
	[ -f $ko ] || fail 'no $ko'
	vm=\$(modinfo -F vermagic $ko | cut -d' ' -f1)
	[ \"\$vm\" = $kver ] || fail \"$ko is built for '\$vm', not $kver\"
	[ \"\$(modinfo -F name $ko)\" = dm_clone ] || fail '$ko is not dm_clone'
	[ \"\$(dmclone --version)\" = 'dmclone $version' ] || fail \"dmclone --version: \$(dmclone --version)\"
	dmclone size --size 1t --region 64k >/dev/null || fail 'dmclone size failed'
	for f in /usr/share/man/man8/dmclone.8.gz /usr/share/man/man8/dm-clone.8.gz \
		/usr/share/bash-completion/completions/dmclone \
		/usr/lib/systemd/system-generators/dmclone-generator \
		/usr/lib/udev/rules.d/61-dmclone-destination.rules /usr/share/doc/dmclone/boot.rst; do
		[ -f \$f ] || fail \"the package did not install \$f\"
	done
	cp $ko $work/debs/dm-clone.ko
	cp /usr/sbin/dmclone $work/debs/dmclone
" || die "the installed packages are not right (above)"

step "purging the packages"
in_chroot "
	fail() { echo \"deb-test: \$*\" >&2; exit 1; }
	apt-get purge -y -qq dmclone dm-clone-dkms >$work/debs/purge.log 2>&1 ||
		{ tail -n 40 $work/debs/purge.log; fail 'apt-get purge failed'; }
	st=\$(dkms status dm-clone)
	[ -z \"\$st\" ] || fail \"dkms status still shows: \$st\"
	left=\$(while read -r f; do [ \"\$f\" = /. ] || [ -d \"\$f\" ] || [ ! -e \"\$f\" ] || echo \"\$f\"; done <$work/debs/files)
	[ -z \"\$left\" ] || fail \"files left behind: \$left\"
	for d in /usr/src/dm-clone-$version /var/lib/dkms/dm-clone /usr/share/doc/dmclone /usr/share/doc/dm-clone-dkms; do
		[ ! -e \$d ] || fail \"\$d is left behind\"
	done
	kos=\$(find /lib/modules -name 'dm-clone.ko*')
	[ -z \"\$kos\" ] || fail \"modules left behind: \$kos\"
	echo 'deb-test: nothing left behind'
" || die "removing the packages left something behind (above)"

if [ $guest = 1 ]; then
	step "booting the guest with the DKMS-built module"
	payload=$work/payload
	mkdir -p "$payload"
	cp "$work/debs/dm-clone.ko" "$work/debs/dmclone" "$payload/"
	cat >"$payload/smoke.sh" <<-'SMOKE'
	set -euo pipefail
	tool=/payload/payload/dmclone
	modprobe dm-clone
	modprobe loop 2>/dev/null || true
	case "$(modinfo -F filename dm-clone)" in */updates/*) ;; *) echo "not the module under test: $(modinfo -F filename dm-clone)"; exit 1 ;; esac
	dmsetup targets | grep -q '^clone ' || { echo "no clone target"; exit 1; }
	for n in src dest meta; do truncate -s 32M /tmp/$n.img; done
	src=$(losetup --show -f /tmp/src.img) dest=$(losetup --show -f /tmp/dest.img) meta=$(losetup --show -f /tmp/meta.img)
	dd if=/dev/urandom of="$src" bs=1M count=32 oflag=direct status=none
	"$tool" create smoke "$src" "$dest" "$meta" --region 64k
	"$tool" finish smoke --wait >/dev/null
	cmp "$src" /dev/mapper/smoke || { echo "the clone differs from the source"; exit 1; }
	"$tool" list
	dmsetup remove smoke
	echo "smoke: ok"
	SMOKE
	"$here/guest-run.sh" --no-module --module "$payload/dm-clone.ko" --payload "$payload" \
		--timeout 300 --log-dir "$DMCLONE_OUT/deb-test-guest" -- "$payload/smoke.sh" ||
		die "the guest smoke test of the DKMS-built module failed (logs: $DMCLONE_OUT/deb-test-guest)"
fi
step "done"
note "deb-test passed in $((SECONDS - t0)) s"
