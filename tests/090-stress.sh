#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Stress: fio writes and verifies (crc32c, verify_backlog) on half of a
# clone for STRESS_SECONDS (default 75) with mixed sizes from 512 B to
# 1 MiB (bssplit), a random-write job, a random read/write job and a
# sequential-write job on separate areas, each fsyncing every few writes,
# while the clone hydrates from a slow source (20 ms, more for longer
# runs) and a side loop, about
# twice a second, toggles disable_hydration/enable_hydration, changes
# hydration_threshold and hydration_batch_size, suspends and resumes
# (sometimes --noflush) and reloads the same table (reload, suspend,
# resume). At the end: fio reports no error and no verify error, the
# mode is rw, hydration completes, the part fio never touched equals the
# source, the fio part did not change when hydration completed, and the
# destination equals the clone. `make stress` runs it with
# STRESS_SECONDS=1200; the timeout below covers that.
# timeout: 1600
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern dd fio timeout

secs=${STRESS_SECONDS:-75}
rs=8						# 4 KiB regions
mb=64
src=$(mkdev src $mb)				# 131072 sectors, 16384 regions
dest=$(mkdev dest $mb)
meta=$(mkdev meta 8)
nr=$((mb * 256))
fill_pattern "$src" 1 >/dev/null
fill_pattern "$dest" 9 >/dev/null
# The source's delay grows with the run time so that hydration (about 80 s
# at 20 ms with the side loop's tunables) lasts most of the run.
sdelay_ms=$((20 * secs / 75))
sdelay_ms=$((sdelay_ms < 20 ? 20 : sdelay_ms > 400 ? 400 : sdelay_ms))
dm_create sdelay "$(delay_table "$src" $sdelay_ms)"
clone=/dev/mapper/c
table=$(clone_table "$meta" "$dest" /dev/mapper/sdelay $rs 0 4 hydration_threshold 4 hydration_batch_size 2)
dm_create c "$table"

# fio area: MiB 16-48 of 64 (sectors 32768-98303); the rest is the source's.
fa_mb=16 fl_mb=32
bss="512/10:4k/35:16k/20:64k/20:256k/10:1m/5"
cat >"$TEST_TMP/stress.fio" <<EOF
[global]
filename=$clone
direct=1
ioengine=libaio
iodepth=4
time_based=1
runtime=$secs
bssplit=$bss
verify=crc32c
verify_fatal=1
verify_dump=0
verify_backlog=64
fsync=16
randrepeat=0

[randwrite]
rw=randwrite
offset=$((fa_mb))m
size=12m

[randrw]
rw=randrw
rwmixread=50
offset=$((fa_mb + 12))m
size=12m

[seqwrite]
rw=write
verify_backlog=8
offset=$((fa_mb + 24))m
size=8m
EOF
log "source delay $sdelay_ms ms; fio for $secs s on MiB $fa_mb-$((fa_mb + fl_mb)), bssplit $bss"
timeout -k 10 $((secs + 300)) fio "$TEST_TMP/stress.fio" --output="$TEST_TMP/fio.out" &
fpid=$!
on_exit "kill $fpid 2>/dev/null; wait $fpid 2>/dev/null"

# The side loop, until fio is done.
declare -A did=()
i=0
while kill -0 $fpid 2>/dev/null; do
	i=$((i + 1))
	case $((RANDOM % 8)) in
	0) dm_message c disable_hydration; a="disable" ;;
	1) dm_message c enable_hydration; a="enable" ;;
	2) dm_message c hydration_threshold $((1 + RANDOM % 16)); a="threshold" ;;
	3) dm_message c hydration_batch_size $((1 + RANDOM % 8)); a="batch" ;;
	4) timed 60 dmsetup suspend c; timed 60 dmsetup resume c; a="suspend" ;;
	5) timed 60 dmsetup suspend --noflush c; timed 60 dmsetup resume c; a="suspend-noflush" ;;
	6) dmsetup reload c --table "$table"; timed 60 dmsetup suspend c; timed 60 dmsetup resume c; a="reload" ;;
	7) clone_status c >/dev/null; a="status" ;;
	esac
	did[$a]=$((${did[$a]:-0} + 1))
	m=$(clone_mode c)
	[ "$m" = rw ] || fail "step $i ($a): mode $m: $(clone_status c)"
	[ $((i % 40)) != 0 ] || log "step $i: $(clone_status_noflush c)"
	sleep 0.$((2 + RANDOM % 6))
done
hmid=$(clone_hydrated c)
rc=0
wait $fpid || rc=$?
summary=""
for a in "${!did[@]}"; do summary+="$a ${did[$a]}, "; done
log "side loop: $i steps (${summary%, }); $hmid of $nr regions hydrated when fio ended"
grep -E 'err=|verify|issued rwts|IOPS' "$TEST_TMP/fio.out" || true
[ $rc = 0 ] || { cat "$TEST_TMP/fio.out"; fail "fio failed (status $rc)"; }
! grep -qi 'verify.*fail\|bad magic\|crc32c.*wanted' "$TEST_TMP/fio.out" || fail "fio reported verify errors"
errs=$(grep -o 'err= *[0-9]*' "$TEST_TMP/fio.out" | awk '{ s += $NF } END { print s + 0 }')
assert_eq "$errs" 0 "fio errors"
ops=$(awk -F'total=' '/issued rwts/ { split($2, a, /[ ,]/); r += a[1]; w += a[2] } END { print r + w }' "$TEST_TMP/fio.out")
log "fio: $ops I/Os, 0 errors, 0 verify errors"

area_copy() {
	dd if=$clone bs=1M skip=$fa_mb count=$fl_mb iflag=direct status=none
}
area_copy >"$TEST_TMP/fio-area"
dm_message c hydration_threshold 1024
dm_message c hydration_batch_size 64
dm_message c enable_hydration
wait_hydrated c 300
cmp_dev $clone "$src" $((fa_mb * 2048)) || fail "clone differs from the source before the fio area"
cmp_dev $clone "$src" $(((mb - fa_mb - fl_mb) * 2048)) $(((fa_mb + fl_mb) * 2048)) $(((fa_mb + fl_mb) * 2048)) ||
	fail "clone differs from the source after the fio area"
area_copy | cmp - "$TEST_TMP/fio-area" || fail "the fio area changed when hydration completed"
cmp_dev $clone "$dest" || fail "destination differs from the hydrated clone"
log "STRESS RESULT: ${secs} s, $ops fio I/Os, 0 verify errors, $i side-loop steps, $nr regions hydrated ($hmid when fio ended), mode rw"
remove_and_unload c
log "ok"
