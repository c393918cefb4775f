#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A clone started by the kernel's own dm-clone (the peer, a black box) is
# finished by ours. The peer formats the metadata, takes writes to
# unhydrated regions (across two regions, a whole region, a small one) and
# a discard of whole regions, then copies one region at a time until it
# is stopped about a quarter of the way; the device is removed and the
# peer unloaded. Ours loads the very same table: it must report exactly
# the regions the peer recorded, read back byte-exact (hydrated regions
# from the destination, the rest from the source), then hydrate the rest
# and leave the destination equal to the reference. Finally the peer opens
# what ours wrote and sees every region hydrated. Skipped on kernels that
# ship no dm-clone of their own (6.1, 6.12 cloud kernels).
# timeout: 400
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_peer
ic_setup
c=/dev/mapper/c

log "peer: create, write, discard, hydrate part way"
load_peer
dm_create c "$IC_TABLE"
assert_match "$(clone_status c)" "$STATUS_RE" "peer status grammar"
ic_writes c
h=$(clone_hydrated c)
log "peer: $h regions hydrated by the writes and the discard: $(clone_status c)"
[ "$h" -ge "$IC_TOUCHED" ] || fail "peer hydrated only $h regions for the writes and the discard (expected $IC_TOUCHED)"
[ "$h" = "$IC_TOUCHED" ] || log "NOTE: the peer hydrated $h regions, ours would $IC_TOUCHED"
cmp_dev "$c" "$IC_REF"
h=$(ic_half c)
log "peer: stopped at $h of $IC_REGIONS regions: $(clone_status c)"
cmp_dev "$c" "$IC_REF"
dm_remove c

log "ours: the same table on the peer's metadata"
load_ours
dm_create c "$IC_TABLE"
st=$(clone_status c)
log "ours: $st"
assert_match "$st" "$STATUS_RE" "status grammar"
assert_eq "$(clone_hydrated c)" "$h" "regions hydrated, as the peer recorded them"
assert_eq "$(clone_regions c)" "$IC_REGIONS" "regions"
assert_eq "$(clone_features c)" "no_hydration" "features"
assert_eq "$(clone_mode c)" rw "mode"
cmp_dev "$c" "$IC_REF"

log "ours: finish the hydration"
dm_message c hydration_threshold 64
dm_message c hydration_batch_size 16
dm_message c enable_hydration
wait_hydrated c 240
cmp_dev "$c" "$IC_REF"
dm_remove c
cmp_dev "$IC_DST" "$IC_REF" "$IC_LEN"

log "peer: opens what ours wrote, all hydrated"
load_peer
dm_create c "$IC_TABLE"
log "peer: $(clone_status c)"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$IC_REGIONS/$IC_REGIONS" "regions hydrated for the peer"
cmp_dev "$c" "$IC_REF"
dm_remove c
unload_clone
log "ok"
