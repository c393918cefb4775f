#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A clone started by ours is finished by the kernel's own dm-clone (the
# peer, a black box). Ours formats the metadata, takes writes to
# unhydrated regions (across two regions, a whole region, a small one) and
# a discard of whole regions, then copies one region at a time until it is
# stopped about a quarter of the way; the device is removed and ours
# unloaded. The peer loads the very same table: it must report exactly
# the regions ours recorded, read back byte-exact, then hydrate the rest
# and leave the destination equal to the reference. Finally ours opens
# what the peer wrote and sees every region hydrated. Skipped on kernels
# that ship no dm-clone of their own (6.1, 6.12 cloud kernels).
# timeout: 400
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_peer
ic_setup
c=/dev/mapper/c

log "ours: create, write, discard, hydrate part way"
load_ours
dm_create c "$IC_TABLE"
ic_writes c
log "ours: $(clone_status c)"
assert_eq "$(clone_hydrated c)" "$IC_TOUCHED" "regions hydrated by the writes and the discard"
cmp_dev "$c" "$IC_REF"
h=$(ic_half c)
log "ours: stopped at $h of $IC_REGIONS regions: $(clone_status c)"
cmp_dev "$c" "$IC_REF"
dm_remove c

log "peer: the same table on our metadata"
load_peer
dm_create c "$IC_TABLE"
st=$(clone_status c)
log "peer: $st"
assert_match "$st" "$STATUS_RE" "peer status grammar"
assert_eq "$(clone_hydrated c)" "$h" "regions hydrated, as ours recorded them"
assert_eq "$(clone_regions c)" "$IC_REGIONS" "regions"
assert_eq "$(clone_mode c)" rw "mode"
cmp_dev "$c" "$IC_REF"

log "peer: finish the hydration"
dm_message c hydration_threshold 64
dm_message c hydration_batch_size 16
dm_message c enable_hydration
wait_hydrated c 240
cmp_dev "$c" "$IC_REF"
dm_remove c
cmp_dev "$IC_DST" "$IC_REF" "$IC_LEN"

log "ours: opens what the peer wrote, all hydrated"
load_ours
dm_create c "$IC_TABLE"
log "ours: $(clone_status c)"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$IC_REGIONS/$IC_REGIONS" "regions hydrated for ours"
cmp_dev "$c" "$IC_REF"
dm_remove c
unload_clone
log "ok"
