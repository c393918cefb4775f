#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The metadata tools on what the kernel's own dm-clone (the peer) wrote.
# The peer takes writes and a discard and copies a quarter of the regions,
# then is removed: clone_check finds its metadata sound (exit 0, no
# problem line); clone_dump lists exactly as many hydrated regions as the
# peer's last status said; the dump restored onto a blank device opens in
# the peer with the same hydrated count, reading back byte-exact; ours
# opens the restored metadata too, finishes the copy, and clone_check finds
# what ours wrote sound; the peer then opens it with every region
# hydrated. Skipped on kernels that ship no dm-clone of their own.
# timeout: 400
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_peer
need_cmd clone_check clone_dump clone_restore
ic_setup
c=/dev/mapper/c
md=$(awk '{ print $4 }' <<<"$IC_TABLE")
md2=$(mkdev md2 4)
table2=${IC_TABLE/ $md / $md2 }

# dumped_count META: the hydrated regions clone_dump lists.
dumped_count() {
	dump_runs "$1" | awk '{ n += $2 } END { print n + 0 }'
}

log "peer: writes, a discard, a quarter of the copy"
load_peer
dm_create c "$IC_TABLE"
ic_writes c
h=$(ic_half c)
assert_eq "$(clone_hydrated c)" "$h" "the peer's hydrated count (committed by the status)"
dm_remove c

log "clone_check and clone_dump on the peer's metadata"
out=$(clone_check "$md" 2>&1) || fail "clone_check on the peer's metadata: $out"
assert_match "$out" "sound" "clone_check's verdict"
assert_eq "$(dumped_count "$md")" "$h" "regions clone_dump lists"
clone_dump "$md" >"$TEST_TMP/dump.xml" || fail "clone_dump failed"
clone_restore -i "$TEST_TMP/dump.xml" -o "$md2" || fail "clone_restore failed"
clone_check "$md2" >/dev/null || fail "clone_check on the restored metadata"

log "peer: the restored metadata"
dm_create c "$table2"
assert_eq "$(clone_hydrated c)" "$h" "the peer's hydrated count over the restored metadata"
cmp_dev "$c" "$IC_REF" || fail "the peer reads back wrong data over the restored metadata"
dm_remove c

log "ours: the restored metadata, to the end"
load_ours
dm_create c "$table2"
assert_eq "$(clone_hydrated c)" "$h" "our hydrated count over the restored metadata"
dm_message c hydration_threshold 64
dm_message c hydration_batch_size 16
dm_message c enable_hydration
wait_hydrated c 240
cmp_dev "$c" "$IC_REF" || fail "ours reads back wrong data"
dm_remove c
out=$(clone_check "$md2" 2>&1) || fail "clone_check on what ours wrote: $out"
assert_eq "$(dumped_count "$md2")" "$IC_REGIONS" "regions clone_dump lists after ours finished"

log "peer: what ours wrote, all hydrated"
load_peer
dm_create c "$table2"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$IC_REGIONS/$IC_REGIONS" "the peer's status"
cmp_dev "$c" "$IC_REF" || fail "the peer reads back wrong data"
dm_remove c
load_ours
dm_remove slowsrc
