#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Races of the prefetch message. A clone of 64 MiB (32 KiB regions)
# hydrates from a source behind dm-delay, a few regions in flight at a
# time, while a writer writes the first half and a reader reads (and
# checks) regions of the second half, so that copies of every kind are
# queued and in flight. Meanwhile `prefetch` messages of random ranges are
# sent in a loop:
#   * first beside status queries without --noflush (each one commits the
#     metadata under the commit lock): every prefetch is accepted, every
#     status line is well formed and rw;
#   * then beside suspend/resume cycles (plain and --noflush), with one
#     to four ranges a message: every message and every suspend/resume
#     returns (a refused prefetch is only counted), the mode stays rw.
# At the end the clone hydrates completely and is byte-exact against the
# reference (the source with the writer's writes), and so is a new clone
# over the same metadata; clone_check finds the metadata sound.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/datapath.sh"
. "$(dirname "$0")/lib/control.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern clone_check timeout

rs=64					# 32 KiB regions
mb=64
sectors=$((mb * 2048))
nr=$((sectors / rs))			# 2048 regions
half=$((sectors / 2))
race_s=${PREFETCH_RACE_SECONDS:-10}	# each phase

src=$(mkdev src $mb)
dest=$(mkdev dest $mb)
meta=$(mkdev meta 4)
ref=$(mkdev ref $mb)
fill_pattern "$src" 1
fill_pattern "$ref" 1
fill_pattern "$dest" 9 0 $((4 * 2048))		# old data the copies must replace
dm_create slow "$(delay_table "$src" 50)"
table=$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 0 4 hydration_threshold 4 hydration_batch_size 2)
dm_create c "$table"
clone=/dev/mapper/c

stop=$TEST_TMP/stop
errs=$TEST_TMP/side-errors
: >"$errs"

# bad MSG: record a failure of a side loop (checked at the end of a phase).
bad() { side_bad "$@"; }

# The writer: random runs of sectors in the first half, each logged once
# acknowledged, so that the reference can replay them.
writer() { side_writer $clone "$half" 200; }

# The reader: reads of one to four regions of the second half, which the
# writer never touches: they hold the source's data, copied or not (and
# queue the regions not copied yet for copying).
reader() {
	local r n
	while [ ! -e "$stop" ]; do
		r=$((nr / 2 + RANDOM % (nr / 2 - 4)))
		n=$((RANDOM % 4 + 1))
		if ! timeout 60 dmclone-pattern check $clone 1 $((r * rs)) $((n * rs)) >/dev/null; then
			bad "read of regions $r+$n failed, hung or returned wrong data"
			return
		fi
	done
}

# prefetcher MUST: prefetch random ranges (not aligned to regions) until
# told to stop; with MUST=1 every message must be accepted, and each
# names one range (several could fill the queue of ranges: refused);
# with MUST=0, one to four ranges a message.
prefetcher() {
	local start len n=0 refused=0 rc k ranges
	while [ ! -e "$stop" ]; do
		ranges=()
		k=1
		[ "$1" = 1 ] || k=$((RANDOM % 4 + 1))
		while [ ${#ranges[@]} -lt $((2 * k)) ]; do
			start=$(((RANDOM * 32768 + RANDOM) % (sectors - 1)))
			len=$((RANDOM % (16 * rs) + 1))
			[ $((start + len)) -le $sectors ] || len=$((sectors - start))
			ranges+=("$start" "$len")
		done
		rc=0
		timeout 60 dmsetup message c 0 prefetch "${ranges[@]}" 2>/dev/null || rc=$?
		if [ $rc = 124 ]; then
			bad "prefetch ${ranges[*]} hung"
			return
		elif [ $rc != 0 ] && [ "$1" = 1 ]; then
			bad "prefetch ${ranges[*]} was refused"
			return
		elif [ $rc != 0 ]; then
			refused=$((refused + 1))
		fi
		n=$((n + 1))
	done
	echo "$n $refused" >"$TEST_TMP/prefetches"
}

# statuser: status queries that commit, each checked against the grammar.
statuser() {
	local st n=0
	while [ ! -e "$stop" ]; do
		if ! st=$(timeout 60 dmsetup status c); then
			bad "status failed or hung"
			return
		fi
		st=${st#0 "$sectors" clone }
		parse_status "$st" 2>>"$errs" || { bad "status: $st"; return; }
		[ "$ST_MODE" = rw ] || { bad "mode $ST_MODE: $st"; return; }
		n=$((n + 1))
	done
	echo "$n" >"$TEST_TMP/statuses"
}

# cycler: suspend and resume, plain and --noflush, until told to stop.
cycler() {
	local n=0 how
	while [ ! -e "$stop" ]; do
		how=""
		[ $((n % 2)) = 1 ] && how=--noflush
		timeout 60 dmsetup suspend $how c || { bad "suspend $how failed or hung"; return; }
		timeout 60 dmsetup resume c || { bad "resume failed or hung"; return; }
		n=$((n + 1))
	done
	echo "$n" >"$TEST_TMP/cycles"
}

# phase NAME SIDE MUST COUNTS: run the writer, the reader, the prefetcher
# (MUST) and SIDE for race_s seconds, then stop them and check what they
# recorded; COUNTS names the file where SIDE left its count.
phase() {
	local pids=() p
	rm -f "$stop"
	writer & pids+=($!)
	reader & pids+=($!)
	prefetcher "$3" & pids+=($!)
	$2 & pids+=($!)
	on_exit "touch $stop; wait ${pids[*]} 2>/dev/null"
	sleep "$race_s"
	touch "$stop"
	for p in "${pids[@]}"; do
		wait "$p" || bad "a side loop exited with status $?"
	done
	if [ -s "$errs" ]; then
		cat "$errs" >&2
		fail "$1: $(head -n 1 "$errs")"
	fi
	log "$1: $(cat "$TEST_TMP/prefetches") prefetches (sent, refused); $2: $(cat "$TEST_TMP/$4"); $(clone_status_noflush c)"
	assert_eq "$(clone_mode c)" rw "mode after $1"
}

: >"$TEST_TMP/writes"
wait_for 30 hydrated_at_least c 8 || fail "no progress: $(clone_status c)"
log "prefetches beside committing status queries"
phase "prefetch + status" statuser 1 statuses
[ "$(clone_hydrated c)" -lt "$nr" ] || log "(hydration completed within the first phase)"
log "prefetches beside suspend/resume cycles"
phase "prefetch + suspend/resume" cycler 0 cycles

# The rest of the copy at full speed.
dm_message c hydration_threshold 512
dm_message c hydration_batch_size 64
wait_hydrated c 180
dmsetup status c >/dev/null
assert_eq "$(clone_hydrating c)" 0 "regions in flight once hydrated"
log "$(wc -l <"$TEST_TMP/writes") writes; replaying them on the reference"
side_replay "$ref"
verify_reopen c "$dest" "$meta" "$ref" "$table"
dm_remove slow
