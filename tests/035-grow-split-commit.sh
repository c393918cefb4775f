#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Growing a clone whose old table must write a large commit at its
# suspend. The clone (4 KiB regions over a zero source, 300 bitset array
# blocks: about 37 GiB, sparse) sits on the smallest metadata device that
# holds it grown by two array blocks' worth of regions, so that its free
# metadata blocks are fewer than the array blocks a commit may have to
# copy: fio writes single regions at random all over the clone, at a rate
# that changes most array blocks between two periodic commits, and the
# clone is grown twice while fio runs (reload with a longer table,
# suspend, resume): the suspend's commit is split into several
# transactions. Then: the status shows the new region count and rw after
# each grow and the kernel log says the clone grew; fio's own read-back
# verification passes; the hydrated count is exactly the number of
# regions fio wrote; the metadata passes clone_check; a new clone over it
# (the grown length) shows the same count, fio verifies every block it
# wrote again, and the grown tail reads the source's zeroes and keeps a
# write.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern fio clone_check

rs=8						# 4 KiB regions
per_block=$((509 * 64))				# regions per bitset array block
nr0=$((300 * per_block))
nr2=$((nr0 + 2 * per_block))
array=$(((nr2 / 64 + 508) / 509))
min_blocks=$((array + array / 64 + 128))	# the kernel's minimum for nr2
nios=${GROW_SPLIT_WRITES:-12000}

dm_create zsrc "0 $((nr0 * rs)) zero"
dest=$(mkdev_sectors dest $((nr2 * rs)))	# sparse, in the guest's tmpfs
meta=$(mkdev_sectors meta $((min_blocks * 8)))
table_of() { CLONE_LEN=$(($1 * rs)) clone_table "$meta" "$dest" /dev/mapper/zsrc $rs 1 no_hydration; }
dm_create c "$(table_of $nr0)"
clone=/dev/mapper/c
free=$(($(clone_md_total c) - $(clone_md_used c)))
log "metadata: $min_blocks blocks, $free free at the old length, 300 array blocks"
[ "$free" -lt 300 ] || fail "the test needs fewer free metadata blocks ($free) than array blocks"

# The fio job: NIOS single-region writes at random over the first
# length, without repeats; with --verify_only the same blocks are read
# back and checked.
fio_job() { spread_fio $clone "$nr0" "$nios" "$@"; }
fio_job --output="$TEST_TMP/fio.out" &
fpid=$!
on_exit "kill -9 $fpid 2>/dev/null; wait $fpid 2>/dev/null"

written() { clone_written c; }
written_at_least() { [ "$(written)" -ge "$1" ]; }

size=$nr0
for step in 1 2; do
	wait_for 120 written_at_least $((step * nios / 4)) ||
		fail "fio does not get on: $(clone_status_noflush c)"
	new=$((nr0 + step * per_block))
	log "grow $step to $new regions while fio writes ($(written) regions written)"
	dm_swap zsrc "0 $((new * rs)) zero"
	log_mark
	dmsetup load c --table "$(table_of $new)" || {
		log_since_mark | grep -E 'clone|array|block manager' >&2
		fail "loading the longer table failed (kernel log above)"
	}
	timeout 120 dmsetup suspend c || fail "the suspend (and its commit) failed or hung"
	timeout 60 dmsetup resume c || fail "the resume (and the grow) failed or hung"
	st=$(clone_status_noflush c)
	assert_match "$st" " [0-9]+/$new [0-9]+ 1 no_hydration 4 .* rw$" "status after grow $step"
	log_since_mark | grep -q "grown to $((new * rs)) sectors" ||
		fail "the kernel log does not say the clone grew to $((new * rs)) sectors: $(log_since_mark | tail -n 3)"
	size=$new
done
rc=0
wait $fpid || rc=$?
[ $rc = 0 ] || { cat "$TEST_TMP/fio.out"; fail "fio failed (status $rc)"; }
grep -E 'issued rwts|IOPS' "$TEST_TMP/fio.out" || true
dmsetup status c >/dev/null
assert_eq "$(clone_mode c)" rw "mode after the grows"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nios/$size" "hydrated regions: those fio wrote"
dm_remove c

log "the metadata: clone_check, a new clone of the grown length"
clone_check "$meta" >/dev/null 2>&1 || fail "clone_check: $(clone_check "$meta" 2>&1 | head -n 5)"
dm_create c "$(table_of $nr2)"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$nios/$nr2" "a new clone over the metadata"
fio_job --verify_only --output="$TEST_TMP/fio-verify.out" ||
	{ cat "$TEST_TMP/fio-verify.out"; fail "fio's verification of the reopened clone failed"; }
tail=$((nr0 * rs))
tail_end=$((nr2 * rs))
cmp_dev $clone /dev/mapper/zsrc 65536 "$tail" "$tail" ||
	fail "the grown tail's first 32 MiB do not read the source's zeroes"
cmp_dev $clone /dev/mapper/zsrc 65536 $((tail_end - 65536)) $((tail_end - 65536)) ||
	fail "the grown tail's last 32 MiB do not read the source's zeroes"
fill_pattern $clone 3 $((tail + 4096)) 64
check_pattern $clone 3 $((tail + 4096)) 64 || fail "a write to the grown tail does not read back"
dmsetup status c >/dev/null
assert_eq "$(clone_hydrated c)" $((nios + 8)) "hydrated regions after the write to the tail"
dm_remove c
dm_remove zsrc
