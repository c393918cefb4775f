#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fault matrix, metadata, dropped writes then a power cut. Test 045 cuts
# the destination and the metadata together; here only the metadata
# device starts dropping every write and flush (dm-flakey drop_writes,
# switched in at a random instant during hydration and fsynced user
# writes) while the destination keeps working, so the clone goes on for a
# few seconds believing its commits are durable. The user notices
# nothing then: mode rw, writes succeed. Then the "power cut": the clone
# is removed (its last commit dropped too), the metadata device restored,
# and a new clone opened on it. It must open read-write with at least the
# progress committed before the drops began, every sector must hold the
# source's or the user's data in its place (the destination was prefilled
# with a third pattern, so a region recorded hydrated without its data
# shows), and every write acknowledged (fsync) before the drops began is
# there. Hydration then completes with the same checks. Two rounds.
# dm-clone unloads at the end.
# timeout: 200
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

need_module dm-delay
need_module dm-flakey
need_cmd shuf
# 1024 regions of 16 KiB (rs=32); the source holds pattern 1, user writes
# seed 2, the destination's garbage seed 99.
fault_setup --no-ref --no-fill-dest
metaloop=$meta
dm_create slowsrc "$(delay_table "$src" 50)"
dm_create mfl "$(linear_table "$metaloop")"
meta=/dev/mapper/mfl
clone=/dev/mapper/c
acked=$TEST_TMP/acked
stop=$TEST_TMP/writer.stop

# writer: one fsynced write of pattern 2 into each region in random order,
# whole or partial; appends "START COUNT" to $acked once acknowledged.
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
		timeout 30 dmclone-pattern write $clone 2 $((r * rs + off)) $len >/dev/null 2>&1 || {
			echo "FAILED $((r * rs + off)) $len" >>"$acked.err"
			return
		}
		echo "$((r * rs + off)) $len" >>"$acked"
	done
}

for round in 1 2; do
	log "--- round $round"
	fill_pattern "$dest" 99 >/dev/null
	dd if=/dev/zero of="$metaloop" bs=4096 count=1 oflag=direct conv=notrunc status=none
	: >"$acked"
	rm -f "$stop" "$acked.err"
	clone_create c "$meta" "$dest" /dev/mapper/slowsrc $rs 0 4 hydration_threshold 8 hydration_batch_size 1

	writer &
	wpid=$!
	delay=$((10 + RANDOM % 20))
	sleep "$((delay / 10)).$((delay % 10))"
	hpre=$(clone_hydrated c)			# commits
	nacked=$(wc -l <"$acked")
	dm_swap mfl "$(flakey_table "$metaloop" drop_writes)"
	log "metadata drops writes after ${delay}00 ms: $hpre of $nr hydrated, $nacked writes acknowledged"

	# The clone goes on, unaware: commits "succeed".
	sleep 3
	assert_mode c rw "mode while the metadata drops writes"
	h2=$(clone_hydrated c)				# commits (dropped)
	[ "$h2" -ge "$hpre" ] || fail "hydrated went back: $hpre, then $h2"
	touch "$stop"
	wait $wpid || true
	[ ! -s "$acked.err" ] || fail "a user write failed while the metadata dropped writes: $(cat "$acked.err")"
	log "$(($(wc -l <"$acked") - nacked)) more writes acknowledged, $h2 hydrated, while writes were dropped"

	# Power cut: remove (the final commit is dropped too), restore.
	t0=$SECONDS
	timed 30 dmsetup remove c || fail "remove failed"
	_dmc_unregister dm c
	[ $((SECONDS - t0)) -le 10 ] || fail "removal took $((SECONDS - t0)) s"
	dm_swap mfl "$(linear_table "$metaloop")"
	clone_create c "$meta" "$dest" /dev/mapper/slowsrc $rs 1 no_hydration
	log "after the power cycle: $(clone_status c)"
	assert_mode c rw "mode after the power cycle"
	h=$(clone_hydrated c)
	[ "$h" -ge "$hpre" ] || fail "hydrated regions after the power cycle: $h, less than the $hpre committed before the drops"
	[ "$h" -le "$h2" ] || fail "more regions hydrated after the power cycle ($h) than ever reported ($h2)"
	check_clone $clone "$acked" "round $round" "$nacked"

	dm_message c hydration_batch_size 64
	dm_message c hydration_threshold 256
	dm_message c enable_hydration
	wait_hydrated c 60
	check_clone $clone "$acked" "round $round, hydrated" "$nacked"
	cmp_dev $clone "$dest" || fail "round $round: destination differs from the hydrated clone"
	if [ $round = 2 ]; then
		remove_and_unload c
	else
		dm_remove c
	fi
done
log "ok"
