#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Progress survives closing and reopening the clone. (1) A no_hydration
# clone takes writes (whole-region, partial, straddling, last region) and
# is removed at once (removal suspends and commits): a new clone on the
# same metadata reports exactly the touched regions hydrated and reads
# back the writes byte-exact. (2) Background copying (one region at a
# time from a delayed source) is stopped mid-way by a suspend; the count
# seen while suspended is what the metadata holds: the device is removed
# while suspended and a new table over the same metadata, loaded but not
# yet resumed, reports exactly that count; after resume copying goes on
# from there. (3) Suspend/resume cycles mid-hydration with writes in
# between never lose progress; hydration finishes byte-exact, and a
# reopened finished clone is complete at once.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors
len=$((32768 - 40))				# last region (1023) has 24 sectors
nr=$(((len + rs - 1) / rs))
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
ref=$(mkdev ref 16)
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9				# in neither source nor writes
# Each source read takes 10 ms more: one region at a time is slow.
dm_create slowsrc "$(delay_table "$src" 10)"
slow=/dev/mapper/slowsrc
clone=/dev/mapper/c
export CLONE_LEN=$len

# --- (1) writes to a no_hydration clone, removed right away ---
log "part 1: writes, then removal"
clone_create c "$meta" "$dest" "$slow" $rs 1 no_hydration
# O_DIRECT writes without fsync: nothing asks for a commit but the removal
# (and the periodic commit, if it comes first).
wr() {
	out=$(dd_write $clone "$2" "$3" "$1") || fail "write of sectors $2+$3 failed: $out"
	fill_pattern "$ref" "$1" "$2" "$3" >/dev/null
}
wr 2 $((10 * rs)) $rs			# region 10, whole
wr 3 $((20 * rs + 5)) 3			# inside region 20
wr 4 $((30 * rs + 16)) $((2 * rs))	# regions 30-32
wr 5 $((len - 10)) 10			# last region
touched=6
st=$(clone_status_noflush c)
log "status (no commit): $st"
# shellcheck disable=SC2086 # the status line, split into its words
set -- $st
assert_eq "$4" "$touched/$nr" "hydrated after the writes"
dm_remove c

clone_create c "$meta" "$dest" "$slow" $rs 1 no_hydration
assert_eq "$(clone_hydrated c)" $touched "hydrated regions after reopening"
cmp_dev $clone "$ref" "$len" || fail "reopened clone differs from the reference"

# --- (2) background copying stopped by a suspend, removed suspended ---
log "part 2: background copying, suspend, remove, reopen"
dm_message c hydration_threshold 1
dm_message c hydration_batch_size 1
dm_message c enable_hydration
wait_for 60 hydrated_at_least c $((touched + 40)) ||
	fail "background copying did not start: $(clone_status c)"
dmsetup suspend c
st=$(clone_status c)
log "suspended: $st"
# shellcheck disable=SC2086 # the status line, split into its words
set -- $st
h=${4%/*}
assert_eq "$5" 0 "regions in flight while suspended"
[ "$h" -lt $((nr - 100)) ] || fail "hydration too fast for this test ($h of $nr regions)"
dm_remove c

# no_read_hydration: the test's own reads (cmp_dev) are checks, and a read
# of whole regions would copy them at once (not one region at a time).
table=$(clone_table "$meta" "$dest" "$slow" $rs 1 no_read_hydration 4 hydration_threshold 1 hydration_batch_size 1)
dmsetup create c --notable || fail "dmsetup create --notable failed"
_dmc_register dm c
dmsetup load c --table "$table" || fail "loading the same table over the metadata failed"
st=$(dmsetup status --inactive c | awk '$3 == "clone" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }')
log "loaded, not resumed: $st"
# shellcheck disable=SC2086 # the status line, split into its words
set -- $st
assert_eq "$4" "$h/$nr" "hydrated regions in the reloaded table"
dmsetup resume c
wait_for 60 hydrated_at_least c $((h + 40)) ||
	fail "copying did not go on after reopening: $(clone_status c)"
cmp_dev $clone "$ref" "$len" || fail "clone differs from the reference after reopening"

# --- (3) suspend/resume cycles mid-hydration, with writes ---
log "part 3: suspend/resume cycles"
prev=$(clone_hydrated c)
for i in 1 2 3 4 5; do
	wait_for 60 hydrated_at_least c $((prev + 10)) ||
		fail "cycle $i: no progress: $(clone_status c)"
	# Writes near the end, where the background pass has not been yet.
	ref_write $clone "$ref" $((10 + i)) $(((900 + 10 * i) * rs + 7)) $((rs + 3))
	dmsetup suspend c
	st=$(clone_status c)
	# shellcheck disable=SC2086 # the status line, split into its words
	set -- $st
	assert_eq "$5" 0 "cycle $i: regions in flight while suspended"
	h=${4%/*}
	[ "$h" -ge "$prev" ] || fail "cycle $i: hydrated went back from $prev to $h"
	dmsetup resume c
	now=$(clone_hydrated c)
	[ "$now" -ge "$h" ] || fail "cycle $i: hydrated went back from $h to $now after resume"
	log "cycle $i: $h hydrated while suspended, $now after resume"
	prev=$now
done
cmp_dev $clone "$ref" "$len" || fail "clone differs from the reference after the cycles"

log "finishing"
dm_message c hydration_batch_size 64
dm_message c hydration_threshold 256
wait_hydrated c 120
assert_eq "$(clone_hydrating c)" 0 "regions in flight once hydrated"
cmp_dev $clone "$ref" "$len" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" "$len" || fail "destination differs from the reference"
dm_remove c

# A finished clone reopens finished, and reads the destination.
clone_create c "$meta" "$dest" "$slow" $rs 1 no_hydration
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nr/$nr" "reopened finished clone"
cmp_dev $clone "$ref" "$len" || fail "reopened finished clone differs from the reference"
dm_remove c
log "ok"
