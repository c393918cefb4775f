#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Checks before installing dm-clone.ko for a kernel (`make install`, DKMS):
#
#   scripts/install-check.sh [KVER] [KO]
#
# KVER is the kernel release to install for (default: the running one), KO
# the built module (default: dm-clone.ko beside the Makefile). Refuses
# (exit 1, with what to do) when:
#   * the kernel has dm-clone built in: its "clone" target cannot be
#     replaced by a module;
#   * KVER is the running kernel and its in-tree dm-clone module is loaded
#     (/sys/module/dm_clone exists and is not an out-of-tree module: no "O"
#     in its taint flags): both register the device-mapper target "clone",
#     so ours could not load until that one is unloaded;
#   * KO was built for another kernel release than KVER.
# Notes (exit 0) when the kernel also ships its own dm-clone.ko: ours goes
# to /lib/modules/KVER/updates/, which depmod ranks first, so `modprobe
# dm-clone` loads ours; or when an older build of ours is loaded (unload it
# to load the new one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kver=${1:-$(uname -r)}
ko=${2:-$here/../dm-clone.ko}
moddir=/lib/modules/$kver

refuse() {
	echo "install: refusing to install dm-clone for $kver: $*" >&2
	exit 1
}
note() { echo "install: $*" >&2; }

if [ -f "$ko" ] && command -v modinfo >/dev/null 2>&1; then
	built_for=$(modinfo -F vermagic "$ko" 2>/dev/null | awk '{ print $1 }')
	if [ -n "$built_for" ] && [ "$built_for" != "$kver" ]; then
		refuse "$ko was built for kernel $built_for. Build it for $kver first: make KDIR=$moddir/build (see the README, 'Using dm-clone on a real host')"
	fi
fi

if [ -f "$moddir/modules.builtin" ] && grep -q '/dm-clone\.ko$' "$moddir/modules.builtin"; then
	refuse "this kernel has dm-clone built in (CONFIG_DM_CLONE=y): its device-mapper target 'clone' cannot be replaced by a module. Use a kernel with CONFIG_DM_CLONE=m or not set"
fi

if [ "$kver" = "$(uname -r)" ] && [ -d /sys/module/dm_clone ]; then
	taint=$(cat /sys/module/dm_clone/taint 2>/dev/null || true)
	if [[ $taint != *O* ]]; then
		devs=$(dmsetup table 2>/dev/null | awk '$4 == "clone" { sub(":", "", $1); print $1 }' | sort -u | tr '\n' ' ' || true)
		what="Unload it with 'modprobe -r dm-clone'"
		[ -n "$devs" ] && what="Finish or remove the clone devices using it (${devs% }), then unload it with 'modprobe -r dm-clone'"
		refuse "the running kernel's own (in-tree) dm-clone module is loaded (/sys/module/dm_clone): it owns the device-mapper target 'clone', so this one could not load beside it. $what, and run the installation again"
	fi
	note "an older build of this dm-clone is loaded; after installing, unload it (modprobe -r dm-clone, once no clone device uses it) to load the new one"
fi

if find "$moddir/kernel" -name 'dm-clone.ko*' 2>/dev/null | grep -q .; then
	note "kernel $kver ships its own dm-clone module; this one is installed to $moddir/updates/, which depmod ranks first, so 'modprobe dm-clone' loads this one"
fi
exit 0
