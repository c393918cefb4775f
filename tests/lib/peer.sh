# SPDX-License-Identifier: GPL-2.0-only
#
# The kernel's own dm-clone (the "peer") beside ours, in the guest: which
# of the two is loaded, and loading the peer. Needs nothing else: the
# interchange tests (lib/interchange.sh) and the benchmarks' guest script
# (bench/run puts this file beside it) both source it.
#
# The guest image carries the peer, when the kernel ships one, outside the
# module tree (scripts/mkinitramfs.sh names it in /etc/dmclone-image), so
# `modprobe dm-clone` always loads ours. Ours is an out-of-tree module:
# its taint flags (/sys/module/dm_clone/taint) hold an O, the peer's do
# not. That is how the two are told apart.
#
#   PEER_MODULE     the peer's .ko, empty when the image has none
#   loaded_clone    print ours, peer or none
#   insmod_peer     load the peer and the modules it depends on (dm_clone
#                   unloaded first by the caller); the status of insmod

PEER_MODULE=$(sed -n 's/^peer: //p' /etc/dmclone-image 2>/dev/null)

loaded_clone() {
	if [ ! -d /sys/module/dm_clone ]; then
		echo none
	elif grep -q O /sys/module/dm_clone/taint 2>/dev/null; then
		echo ours
	else
		echo peer
	fi
}

insmod_peer() {
	local deps
	deps=$(modinfo -F depends "$PEER_MODULE" | tr , ' ')
	# shellcheck disable=SC2086 # a list of module names
	[ -z "$deps" ] || modprobe -a $deps || return 1
	insmod "$PEER_MODULE"
}
