#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Concurrent writers to the same unhydrated region while its copy is in
# flight (the source is slowed down by dm-delay): several O_DIRECT writers
# of different sectors of one region, of its neighbours, one straddling
# two regions and a whole-region write next door, all started together.
# All writes land: the clone equals a reference with the same writes,
# exactly the touched regions are hydrated; reads of the region while the
# copy is in flight return, per sector, either the old or the new data;
# after full hydration the destination equals the reference too.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern

rs=128
# Times the runner's scale (slow kernels): the copies must stay in flight
# while the writers start and the status is sampled.
delay_ms=$((700 * ${DMCLONE_TIMEOUT_SCALE:-1}))
srcdev=$(mkdev src 8)				# 16384 sectors
dest=$(mkdev dest 8)
ref=$(mkdev ref 8)
meta=$(mkdev meta 4)
len=16384

fill_pattern "$srcdev" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9
dm_create slowsrc "0 $len delay $srcdev 0 $delay_ms"
src=/dev/mapper/slowsrc

clone_create c "$meta" "$dest" "$src" $rs 1 no_hydration
clone=/dev/mapper/c

# Writers: seed, start, count. Region 10 gets 8 writers of different
# sectors; 9 and 11 a few; one straddles 11/12; region 13 is written whole
# while 14 gets partial writes.
writers=(
	"31 $((10 * rs + 0)) 8"
	"32 $((10 * rs + 16)) 1"
	"33 $((10 * rs + 17)) 15"
	"34 $((10 * rs + 40)) 8"
	"35 $((10 * rs + 64)) 32"
	"36 $((10 * rs + 99)) 1"
	"37 $((10 * rs + 101)) 3"
	"38 $((10 * rs + 120)) 8"
	"41 $((9 * rs + 5)) 2"
	"42 $((9 * rs + 127)) 1"
	"43 $((11 * rs + 1)) 1"
	"44 $((11 * rs + 120)) 16"
	"45 $((13 * rs)) $rs"
	"46 $((14 * rs + 7)) 9"
	"47 $((14 * rs + 77)) 11"
)
touched="9 10 11 12 13 14"

# A reader of regions 9-11, polling while the writers run: every sector
# must hold the old data (seed 1) or the data of a writer, at its place.
# shellcheck disable=SC2086 # split into its words
allowed="1 $(for spec in "${writers[@]}"; do set -- $spec; printf '%s ' "$1"; done)"
reader() {
	local i out line
	for ((i = 0; i < 6; i++)); do
		out=$(dmclone-pattern identify "$clone" $((9 * rs)) $((3 * rs)))
		while read -r line; do
			# "A-B: seed S sectors A-B"
			if [[ ! $line =~ ^([0-9]+)-([0-9]+):\ seed\ ([0-9]+)\ sectors\ ([0-9]+)-([0-9]+)$ ]] ||
				[ "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}" != "${BASH_REMATCH[4]}-${BASH_REMATCH[5]}" ] ||
				[[ " $allowed " != *" ${BASH_REMATCH[3]} "* ]]; then
				echo "reader: unexpected content: $line"
				echo "$out"
				return 1
			fi
		done <<<"$out"
	done
}

log "starting ${#writers[@]} writers and a reader"
pids=()
for spec in "${writers[@]}"; do
	# shellcheck disable=SC2086 # split into its words
	set -- $spec
	dmclone-pattern write "$clone" "$1" "$2" "$3" &
	pids+=($!)
done
reader &
reader_pid=$!
# The copies are in flight for a while (the source is slow): make sure
# the writers really met a copy in flight.
in_flight() { [ "$(clone_hydrating c)" -gt 0 ]; }
wait_for 10 in_flight || fail "no region copy was ever seen in flight: $(clone_status c)"
log "status while writing: $(clone_status c)"

for p in "${pids[@]}"; do
	wait "$p" || fail "a writer failed (pid $p)"
done
wait $reader_pid || fail "a read during the writes returned neither old nor new data"
log "writers done"

for spec in "${writers[@]}"; do
	# shellcheck disable=SC2086 # split into its words
	set -- $spec
	dmclone-pattern write "$ref" "$1" "$2" "$3"
done

cmp_dev "$clone" "$ref" $len || fail "clone differs from the reference after concurrent writes"
st=$(clone_status c)
assert_eq "$(clone_hydrated c)" "$(wc -w <<<"$touched")" "hydrated = regions written ($touched): $st"
assert_eq "$(clone_hydrating c)" 0 "in flight: $st"
for r in $touched; do
	cmp_dev "$dest" "$ref" $rs $((r * rs)) $((r * rs)) ||
		fail "destination region $r differs from the reference"
done
check_pattern "$dest" 9 0 $((9 * rs)) || fail "destination changed before region 9"
check_pattern "$dest" 9 $((15 * rs)) $((len - 15 * rs)) || fail "destination changed after region 14"

log "hydrating the rest (slow source: large batches)"
dm_message c hydration_threshold 128
dm_message c hydration_batch_size 32
dm_message c enable_hydration
wait_hydrated c 150
cmp_dev "$clone" "$ref" $len || fail "clone differs from the reference after hydration"
cmp_dev "$dest" "$ref" $len || fail "destination differs from the reference after hydration"
log "ok"
