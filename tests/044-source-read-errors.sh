#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A source with unreadable sectors in the middle (linear + error + linear,
# the bad range aligned neither to regions nor to copy batches). With
# no_hydration: reads of the clone in the bad range fail with EIO, reads
# elsewhere (also the readable head and tail of partly bad regions) are
# byte-exact; a partial write to a bad region fails with EIO (its copy
# cannot read the source), a whole-region write there succeeds and reads
# back. Background copying one region per copy: every region but the bad
# ones gets hydrated, nothing stays in flight, and hundreds of failing
# copies leave only a rate-limited trace in the kernel log; the device is
# removed promptly. A second clone with the default (batched) tunables
# also hydrates every good region, the ones sharing a copy batch with bad
# ones included. With the source readable again (same data) a new clone
# on the first clone's metadata completes byte-exact.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern dd

rs=16						# 8 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 2048 regions
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
ref=$(mkdev ref 16)
nr=2048
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9
# Sectors 16484-20483 unreadable: regions 1030 (from its 5th sector) to
# 1280 (up to its 4th). The default copy batch is 1 MiB (128 regions):
# batches 1024-1151 and 1280-1407 hold good and bad regions.
bad_start=16484 bad_len=4000
bad_end=$((bad_start + bad_len))
first_bad=1030 last_bad=1280
dm_create sbad "0 $bad_start linear $src 0
$bad_start $bad_len error
$bad_end $((32768 - bad_end)) linear $src $bad_end"
clone=/dev/mapper/c
clone_create c "$meta" "$dest" /dev/mapper/sbad $rs 1 no_hydration

# good_regions_ok DEV: DEV equals the reference outside the bad range.
good_regions_ok() {
	cmp_dev "$1" "$ref" $bad_start &&
		cmp_dev "$1" "$ref" $((32768 - bad_end)) $bad_end $bad_end
}

log "reads"
for range in "$bad_start 8" "16600 16" "$((bad_end - 1)) 1" "$((first_bad * rs)) $rs"; do
	# shellcheck disable=SC2086 # split into its words
	set -- $range
	if out=$(dd_read $clone "$1" "$2"); then
		fail "read of sectors $1+$2 (bad on the source) succeeded"
	fi
	assert_match "$out" "Input/output error" "error of a read of sectors $1+$2"
done
good_regions_ok $clone || fail "reads outside the bad range differ from the source"
cmp_dev $clone "$src" 4 $((first_bad * rs)) $((first_bad * rs)) ||
	fail "the readable head of region $first_bad differs from the source"
cmp_dev $clone "$src" 12 $bad_end $bad_end ||
	fail "the readable tail of region $last_bad differs from the source"

log "writes"
for w in "$((1035 * rs + 3)) 2" "$((first_bad * rs)) 2" "$((last_bad * rs + 10)) 4"; do
	# shellcheck disable=SC2086 # split into its words
	set -- $w
	if out=$(dd_write $clone "$1" "$2" 4); then
		fail "partial write of sectors $1+$2 (region needs an unreadable copy) succeeded"
	fi
	assert_match "$out" "Input/output error" "error of a partial write of sectors $1+$2"
done
out=$(dd_write $clone $((1040 * rs)) $rs 5) || fail "whole-region write to bad region 1040 failed: $out"
fill_pattern "$ref" 5 $((1040 * rs)) $rs >/dev/null
check_pattern $clone 5 $((1040 * rs)) $rs || fail "whole-region write to region 1040 does not read back"
assert_eq "$(clone_hydrated c)" 1 "hydrated regions after the writes"
nbad=$((last_bad - first_bad + 1 - 1))		# region 1040 is hydrated now

# all_but_bad NAME N: at least N regions hydrated.
all_but_bad() { [ "$(clone_hydrated "$1")" -ge "$2" ]; }

log "background copying, one region per copy"
log_mark
dm_message c hydration_batch_size 1
dm_message c enable_hydration
wait_for 60 all_but_bad c $((nr - nbad)) ||
	fail "hydration did not reach $((nr - nbad)) of $nr regions: $(clone_status c)"
# Every bad region was tried once in the pass; wait for the last copies.
wait_for 15 clone_idle c || fail "copies stay in flight: $(clone_status c)"
assert_eq "$(clone_hydrated c)" $((nr - nbad)) "hydrated regions with $nbad unreadable"
assert_eq "$(clone_mode c)" rw "mode"
lines=$(log_since_mark | grep -c 'clone' || true)
log "kernel log lines about the clone after $nbad or more failed copies: $lines"
log_since_mark | grep clone | head -n 3
[ "$lines" -le 100 ] || fail "$lines kernel log lines about failed copies: not rate-limited"
good_regions_ok $clone || fail "clone differs from the reference outside the bad range"
check_pattern $clone 5 $((1040 * rs)) $rs || fail "region 1040 lost its write"

t0=$SECONDS
dm_remove c
[ $((SECONDS - t0)) -le 10 ] || fail "removal took $((SECONDS - t0)) s"
dmsetup info c >/dev/null 2>&1 && fail "device c still exists"

# A failure here is reported at the end, so that the rest still runs.
log "a second clone, default (batched) copies"
late=""
dest2=$(mkdev dest2 16)
meta2=$(mkdev meta2 4)
clone_create c2 "$meta2" "$dest2" /dev/mapper/sbad $rs
n2=$((nr - nbad - 1))				# region 1040 is not written here
if ! wait_for 30 all_but_bad c2 $n2; then
	late="batched copies: hydration did not reach $n2 of $nr regions (all but the $((nbad + 1)) unreadable ones): $(clone_status c2)"
	echo "FAIL (reported at the end): $late" >&2
fi
wait_for 15 clone_idle c2 || fail "copies stay in flight: $(clone_status c2)"
log "second clone: $(clone_status c2)"
[ -n "$late" ] || assert_eq "$(clone_hydrated c2)" $n2 "hydrated regions of the second clone"
cmp_dev /dev/mapper/c2 "$src" $bad_start || fail "second clone differs from the source before the bad range"
dm_remove c2

log "source readable again: a new clone on the first metadata completes"
dm_swap sbad "$(linear_table "$src")"
clone_create c "$meta" "$dest" /dev/mapper/sbad $rs
wait_hydrated c 60
cmp_dev $clone "$ref" || fail "hydrated clone differs from the reference"
cmp_dev "$dest" "$ref" || fail "destination differs from the reference"
[ -z "$late" ] || fail "$late"
log "ok"
