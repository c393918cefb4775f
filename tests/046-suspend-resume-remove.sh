#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Suspend, resume and removal under load. (1) 20 or more suspend/resume
# cycles (every fourth with --noflush) while the clone copies from a slow source
# and fio runs a verified random read/write job on a quarter of it: each
# suspend leaves no copy in flight, every resume goes on in rw mode, fio
# finds no error, hydration completes, the fio area keeps what fio wrote
# and the rest equals the source; the destination equals the clone.
# (2) `dmsetup remove` while copies from a very slow source are in flight
# returns promptly and leaves no device; the metadata then opens again
# and the clone reads the source byte-exact.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd fio

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 1024 regions
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
nr=1024
fill_pattern "$src" 1
fill_pattern "$dest" 9
dm_create slowsrc "$(delay_table "$src" 20)"
clone=/dev/mapper/c
clone_create c "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 hydration_threshold 2 hydration_batch_size 1

# fio on regions 256-511 (4 KiB blocks: partial region writes), paced to
# outlast the cycles, verifying everything it wrote at the end.
fa_start=8192 fa_len=8192			# sectors
fio --name=randrw --filename=$clone --rw=randrw --bs=4k --direct=1 \
	--ioengine=libaio --iodepth=8 --offset=$((fa_start * 512)) \
	--size=$((fa_len * 512)) --rate_iops=100 --verify=crc32c \
	--verify_fatal=1 --output="$TEST_TMP/fio.out" &
fpid=$!
on_exit "kill $fpid 2>/dev/null; wait $fpid 2>/dev/null"

log "suspend/resume cycles"
prev=0 i=0
# At least 20 cycles, and on until fio is done (at most 100).
while [ $i -lt 20 ] || { kill -0 $fpid 2>/dev/null && [ $i -lt 100 ]; }; do
	i=$((i + 1))
	flag=""
	[ $((i % 4)) = 0 ] && flag=--noflush
	dmsetup suspend $flag c || fail "cycle $i: dmsetup suspend $flag failed"
	# shellcheck disable=SC2046 # the status line, split into its words
	set -- $(clone_status c)
	assert_eq "$5" 0 "cycle $i: copies in flight while suspended"
	h=${4%/*}
	[ "$h" -ge "$prev" ] || fail "cycle $i: hydrated went back from $prev to $h"
	dmsetup resume c || fail "cycle $i: dmsetup resume failed"
	assert_eq "$(clone_mode c)" rw "cycle $i: mode after resume"
	prev=$h
	sleep 0.$((RANDOM % 5))
done
log "after $i cycles: $(clone_status c)"
[ "$prev" -lt "$nr" ] || log "note: hydration finished during the cycles"

rc=0
wait $fpid || rc=$?
grep -E 'err=|verify|READ:|WRITE:' "$TEST_TMP/fio.out" || true
[ $rc = 0 ] || { cat "$TEST_TMP/fio.out"; fail "fio failed (status $rc)"; }
# area_copy: the fio area of the clone, to stdout.
area_copy() {
	dd if=$clone bs=1M skip=$((fa_start * 512)) count=$((fa_len * 512)) \
		iflag=direct,skip_bytes,count_bytes status=none
}
area_copy >"$TEST_TMP/fio-area"

dm_message c hydration_batch_size 64
dm_message c hydration_threshold 256
wait_hydrated c 120
cmp_dev $clone "$src" $fa_start || fail "clone differs from the source before the fio area"
cmp_dev $clone "$src" $((32768 - fa_start - fa_len)) $((fa_start + fa_len)) $((fa_start + fa_len)) ||
	fail "clone differs from the source after the fio area"
area_copy | cmp - "$TEST_TMP/fio-area" ||
	fail "the fio area changed once hydration completed"
cmp_dev $clone "$dest" || fail "destination differs from the hydrated clone"
dm_remove c

log "removal with copies in flight"
dest2=$(mkdev dest2 16)
meta2=$(mkdev meta2 4)
fill_pattern "$dest2" 9
dm_create vslowsrc "$(delay_table "$src" 500)"
# 8 single-region copies of 500 ms at a time: copies stay in flight for
# about a minute, so the check below cannot miss them however slow the host.
clone_create c2 "$meta2" "$dest2" /dev/mapper/vslowsrc $rs 0 4 hydration_threshold 8 hydration_batch_size 1
in_flight() { [ "$(clone_hydrating c2)" -gt 0 ]; }
wait_for 10 in_flight || fail "no copies in flight: $(clone_status c2)"
log "removing with $(clone_hydrating c2) regions in flight"
t0=$SECONDS
dmsetup remove c2 || fail "dmsetup remove with copies in flight failed"
_dmc_unregister dm c2
took=$((SECONDS - t0))
log "removal took $took s"
[ $took -le 10 ] || fail "removal with copies in flight took $took s"
dmsetup info c2 >/dev/null 2>&1 && fail "device c2 still exists after removal"
[ ! -e /dev/mapper/c2 ] || fail "/dev/mapper/c2 still exists after removal"

clone_create c2 "$meta2" "$dest2" "$src" $rs 1 no_hydration
log "reopened: $(clone_status c2)"
cmp_dev /dev/mapper/c2 "$src" || fail "reopened clone differs from the source"
dm_remove c2
log "ok"
