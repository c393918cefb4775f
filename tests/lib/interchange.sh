# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the interchange tests (tests/07x-interchange-*.sh): the
# kernel's own dm-clone (the "peer", used as a black box) and ours take
# turns on the same devices. Both register the target "clone" as module
# dm_clone, so only one is loaded at a time: switching needs every clone
# device removed first. Source after lib/common.sh.
#
# The guest image carries the peer, when the kernel ships one (sid's 7.x
# does; the 6.1 and 6.12 cloud kernels do not), outside the module tree
# (scripts/mkinitramfs.sh names it in /etc/dmclone-image), so `modprobe
# dm-clone` always loads ours, from updates/.
#
#   need_peer              skip the test when there is no peer
#   load_peer, load_ours   unload the dm-clone that is loaded, load the one
#                          named, check that it is the one running
#   unload_clone           unload dm-clone (no clone device may exist)
#   loaded_clone           print ours, peer or none (lib/peer.sh)
#   hydrated_at_least NAME N   true once NAME has N regions hydrated
#   quiet_hydrating NAME       true when NAME has no copy in flight
#   ic_norm_status STATUS SET  STATUS in a form both implementations share
#
# Which one is loaded and how the peer is loaded: lib/peer.sh.

# shellcheck source=peer.sh
. "$(dirname "${BASH_SOURCE[0]}")/peer.sh"

need_peer() {
	[ -n "$PEER_MODULE" ] && [ -f "$PEER_MODULE" ] ||
		skip "this kernel ($(uname -r)) ships no dm-clone of its own to interchange with"
	modinfo dm-clone >/dev/null 2>&1 || skip "our dm-clone.ko is not built for $(uname -r)"
	need_module dm-mod
}

unload_clone() {
	[ -d /sys/module/dm_clone ] || return 0
	rmmod dm_clone || fail "cannot unload dm_clone ($(loaded_clone)): is a clone device left?"
}

load_peer() {
	unload_clone
	insmod_peer || fail "cannot load the peer ($PEER_MODULE) and the modules it depends on"
	assert_eq "$(loaded_clone)" peer "dm_clone loaded after insmod of the peer"
	log "loaded the kernel's own dm-clone (target version $(target_version))"
}

load_ours() {
	unload_clone
	modprobe dm-clone || fail "modprobe dm-clone (ours) failed"
	assert_eq "$(loaded_clone)" ours "dm_clone loaded by modprobe"
	log "loaded our dm-clone (target version $(target_version))"
}

# target_version: the version `dmsetup targets` prints for clone.
target_version() { dmsetup targets | awk '$1 == "clone" { print $2 }'; }

hydrated_at_least() { [ "$(clone_hydrated "$1")" -ge "$2" ]; }
quiet_hydrating() { [ "$(clone_hydrating "$1")" = 0 ]; }

# The classic status grammar (Documentation/dm-clone.rst, "Status"),
# features and all.
# shellcheck disable=SC2034 # for the tests that source this file
STATUS_RE='^8 [0-9]+/[0-9]+ [0-9]+ [0-9]+/[0-9]+ [0-9]+ (0|1 (no_hydration|no_discard_passdown)|2 no_hydration no_discard_passdown) 4 hydration_threshold [0-9]+ hydration_batch_size [0-9]+ (rw|ro)$'

# --- A shared scenario for the half-way hand-overs (070, 071). ---
#
# A 16 MiB source (pattern 1) behind dm-delay (50 ms a request, so that a
# clone copying one region at a time cannot finish before it is stopped),
# a destination, a metadata device, and a reference device that receives
# the same writes as the clone: what the clone must read back. Regions of
# 128 sectors: 256 regions.
IC_LEN=32768
IC_REGION=128
IC_REGIONS=256
IC_DISCARD_START=12800		# regions 100-109
IC_DISCARD_LEN=1280
# shellcheck disable=SC2034 # for the tests that source this file
IC_TOUCHED=14			# regions hydrated by ic_writes

# ic_setup: the devices; sets IC_TABLE (with no_hydration, throttled to
# one region at a time), IC_REF and IC_DST, for the calling test.
# shellcheck disable=SC2034 # for the tests that source this file
ic_setup() {
	local src dst md
	need_module dm-delay
	need_cmd dmclone-pattern blkdiscard
	src=$(mkdev src 16)
	dst=$(mkdev dst 16)
	md=$(mkdev md 4)
	IC_REF=$(mkdev ref 16)
	fill_pattern "$src" 1
	fill_pattern "$IC_REF" 1
	dm_create slowsrc "0 $IC_LEN delay $src 0 50"
	IC_TABLE="0 $IC_LEN clone $md $dst /dev/mapper/slowsrc $IC_REGION 1 no_hydration 4 hydration_threshold 1 hydration_batch_size 1"
	IC_DST=$dst
}

# ic_writes NAME: writes to unhydrated regions of clone NAME (a write across
# two regions, a whole region, a small one) and a discard of ten whole
# regions; the reference gets the same.
ic_writes() {
	local dev=/dev/mapper/$1 d
	for d in "$dev" "$IC_REF"; do
		fill_pattern "$d" 2 1000 100		# regions 7 and 8, partly
		fill_pattern "$d" 3 2560 128		# region 20, whole
		fill_pattern "$d" 4 30000 8		# region 234, partly
	done
	blkdiscard -o $((IC_DISCARD_START * 512)) -l $((IC_DISCARD_LEN * 512)) "$dev"
	# Discarded whole regions read as zeros (the destination's content).
	dd if=/dev/zero of="$IC_REF" bs=512 seek="$IC_DISCARD_START" \
		count="$IC_DISCARD_LEN" oflag=direct conv=notrunc status=none
}

# ic_half NAME: let clone NAME copy one region at a time until a quarter
# of the regions are hydrated, stop it, wait for the copies in flight;
# prints the number of regions hydrated then, which must be short of all.
ic_half() {
	local name=$1 h
	dm_message "$name" hydration_threshold 1
	dm_message "$name" hydration_batch_size 1
	dm_message "$name" enable_hydration
	wait_for 120 hydrated_at_least "$name" $((IC_REGIONS / 4)) ||
		fail "$name: no progress: $(clone_status "$name")"
	dm_message "$name" disable_hydration
	wait_for 30 quiet_hydrating "$name" ||
		fail "$name: copies still in flight after disable_hydration: $(clone_status "$name")"
	h=$(clone_hydrated "$name")
	[ "$h" -lt "$IC_REGIONS" ] ||
		fail "$name finished hydrating before it could be stopped half way: $(clone_status "$name")"
	echo "$h"
}

# ic_norm_status STATUS SET: STATUS with the timing-dependent fields (used
# metadata blocks, hydrated and hydrating regions) replaced by their shape,
# and the tunables SET does not name (case-insensitive: those neither the
# table nor a message gave, the implementation's defaults, which each
# implementation chooses) by D.
ic_norm_status() {
	awk -v set=" ${2,,} " '{
		split($2, m, "/"); $2 = "U/" m[2]
		split($4, r, "/"); $4 = "H/" r[2]
		$5 = "h"
		for (i = 1; i < NF; i++)
			if (($i == "hydration_threshold" || $i == "hydration_batch_size") &&
			    index(set, " " $i " ") == 0)
				$(i + 1) = "D"
		print
	}' <<<"$1"
}
