#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Simulated power cuts. The destination and the metadata sit on dm devices
# that, at a random instant during hydration and concurrent user writes
# (each fsynced, recorded once acknowledged), are frozen and switched to
# drop every write (dm-flakey drop_writes): the devices keep what was
# written before the cut. The clone goes on a little, is removed, the
# devices are restored ("power cycle") and a no_hydration clone is opened
# on them. The metadata opens read-write with at least the progress last
# reported before the cut; every sector of the clone holds the source's
# data or the user's (the destination was prefilled with a pattern in
# neither, so a region recorded hydrated but never written shows it); and
# every write acknowledged with fsync before the cut is present. Then
# hydration completes and the same holds, with the destination equal to
# the clone. Three cuts at random instants.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_module dm-delay
need_module dm-flakey
need_cmd dmclone-pattern dd shuf

rs=32						# 16 KiB regions
src=$(mkdev src 16)				# 32768 sectors, 1024 regions
destloop=$(mkdev dest 16)
metaloop=$(mkdev meta 4)
nr=1024
fill_pattern "$src" 1				# user writes: seed 2; garbage: seed 99
dm_create slowsrc "$(delay_table "$src" 100)"	# copies in flight for 0.1 s
dm_create dfl "$(linear_table "$destloop")"
dm_create mfl "$(linear_table "$metaloop")"
dest=/dev/mapper/dfl
meta=/dev/mapper/mfl
clone=/dev/mapper/c
acked=$TEST_TMP/acked				# "START COUNT" of acknowledged writes
stop=$TEST_TMP/writer.stop

# writer: one write of pattern 2 into each region of a random order, whole
# or partial, each with fsync; appends it to $acked once acknowledged.
writer() {
	local r off len
	for r in $(shuf -i 0-$((nr - 1))); do
		[ -e "$stop" ] && return
		if ((RANDOM % 3 == 0)); then
			off=0 len=$rs
		else
			off=$((RANDOM % rs))
			len=$((1 + RANDOM % (rs - off)))
		fi
		dmclone-pattern write $clone 2 $((r * rs + off)) $len >/dev/null 2>&1 || return
		echo "$((r * rs + off)) $len" >>"$acked"
	done
}

for iter in 1 2 3; do
	log "--- cut $iter"
	fill_pattern "$destloop" 99 >/dev/null
	dd if=/dev/zero of="$metaloop" bs=4096 count=1 oflag=direct conv=notrunc status=none
	: >"$acked"
	rm -f "$stop"
	clone_create c "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 hydration_threshold 8 hydration_batch_size 1

	writer &
	wpid=$!
	delay=$((10 + RANDOM % 30))			# 1.0-3.9 s
	sleep "$((delay / 10)).$((delay % 10))"

	# The cut: what was acknowledged before it must survive.
	hpre=$(clone_hydrated c)			# the status query commits
	nacked=$(wc -l <"$acked")
	# Both freeze at about the same instant; from then on their writes
	# (and flushes) "succeed" without reaching the devices.
	dmsetup load mfl --table "$(flakey_table "$metaloop" drop_writes)"
	dmsetup load dfl --table "$(flakey_table "$destloop" drop_writes)"
	dmsetup suspend mfl &
	s1=$!
	dmsetup suspend dfl || fail "cannot suspend the destination"
	wait $s1 || fail "cannot suspend the metadata device"
	dmsetup resume mfl
	dmsetup resume dfl
	log "cut after ${delay}00 ms: $hpre of $nr hydrated, $nacked writes acknowledged"

	# Life goes on a little after the cut, then the clone is torn down.
	sleep 1
	touch "$stop"
	wait $wpid || true
	log "$(($(wc -l <"$acked") - nacked)) more writes after the cut; $(clone_status c)"
	t0=$SECONDS
	dm_remove c
	[ $((SECONDS - t0)) -le 10 ] || fail "removal after the cut took $((SECONDS - t0)) s"

	# Power cycle: the devices hold what was written before the cut.
	dm_swap mfl "$(linear_table "$metaloop")"
	dm_swap dfl "$(linear_table "$destloop")"
	clone_create c "$meta" "$dest" /dev/mapper/slowsrc $rs 1 no_hydration
	st=$(clone_status c)
	log "after the power cycle: $st"
	assert_eq "$(clone_mode c)" rw "mode after the power cycle"
	h=$(clone_hydrated c)
	[ "$h" -ge "$hpre" ] || fail "hydrated regions after the power cycle: $h, less than the $hpre committed before the cut"
	check_clone $clone "$acked" "cut $iter" "$nacked"

	dm_message c hydration_batch_size 64
	dm_message c hydration_threshold 256
	dm_message c enable_hydration
	wait_hydrated c 60
	check_clone $clone "$acked" "cut $iter, hydrated" "$nacked"
	cmp_dev $clone "$dest" || fail "cut $iter: destination differs from the hydrated clone"
	dm_remove c
done
log "ok"
