#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Reads of uncopied regions (which queue their batches for copying ahead
# of the background pass) in a tight loop, racing table swaps and the
# hydration messages. A clone of 64 MiB (32 KiB regions) hydrates from a
# source behind dm-delay; two readers read one to eight regions at random
# places of its last three quarters and check the data, a writer writes
# the first quarter. A side loop meanwhile, in turn: reloads the same
# table; sends disable_hydration; reloads a table with no_read_hydration
# and other tunables; sends disable_hydration, then enable_hydration;
# reloads one with other tunables. After each reload the status shows
# the new table's features and tunables (a disable_hydration sent before
# does not outlive the table), the mode stays rw, and every step returns.
# At the end, back on the first table, the clone hydrates completely and
# is byte-exact against the reference (the source with the writes), and
# so is a new clone over the metadata; clone_check finds it sound.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_module dm-delay
need_cmd dmclone-pattern clone_check timeout

rs=64					# 32 KiB regions
mb=64
sectors=$((mb * 2048))
nr=$((sectors / rs))			# 2048 regions
quarter=$((sectors / 4))
race_s=${READ_RACE_SECONDS:-20}

src=$(mkdev src $mb)
dest=$(mkdev dest $mb)
meta=$(mkdev meta 4)
ref=$(mkdev ref $mb)
fill_pattern "$src" 1
fill_pattern "$ref" 1
dm_create slow "$(delay_table "$src" 25)"
clone=/dev/mapper/c
# The tables the side loop swaps in, and the features and tunables each
# must show in the status.
tables=(
	"$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 0 4 hydration_threshold 4 hydration_batch_size 2)"
	"$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 1 no_read_hydration 4 hydration_threshold 8 hydration_batch_size 4)"
	"$(clone_table "$meta" "$dest" /dev/mapper/slow $rs 0 4 hydration_threshold 2 hydration_batch_size 1)"
)
shows=(
	"0 4 hydration_threshold 4 hydration_batch_size 2 rw"
	"1 no_read_hydration 4 hydration_threshold 8 hydration_batch_size 4 rw"
	"0 4 hydration_threshold 2 hydration_batch_size 1 rw"
)
dm_create c "${tables[0]}"

stop=$TEST_TMP/stop
errs=$TEST_TMP/side-errors
: >"$errs"
: >"$TEST_TMP/writes"
bad() { side_bad "$@"; }

writer() { side_writer $clone "$quarter" 100; }

# reader N: reads that check the source's data, until told to stop; the
# count goes to $TEST_TMP/reads.N.
reader() {
	local r n k=0
	while [ ! -e "$stop" ]; do
		r=$((nr / 4 + RANDOM % (nr * 3 / 4 - 8)))
		n=$((RANDOM % 8 + 1))
		if ! timeout 60 dmclone-pattern check $clone 1 $((r * rs)) $((n * rs)) >/dev/null; then
			bad "read of regions $r+$n failed, hung or returned wrong data"
			return
		fi
		k=$((k + 1))
	done
	echo $k >"$TEST_TMP/reads.$1"
}

# step_reload I: swap in table I and check that the status shows it.
step_reload() {
	local st
	timeout 60 dmsetup reload c --table "${tables[$1]}" || { bad "reload of table $1 failed"; return 1; }
	timeout 60 dmsetup suspend c || { bad "suspend failed or hung"; return 1; }
	timeout 60 dmsetup resume c || { bad "resume failed or hung"; return 1; }
	st=$(clone_status_noflush c)
	[[ $st == *" ${shows[$1]}" ]] ||
		{ bad "after swapping in table $1 the status is: $st"; return 1; }
}

declare -A did=()
pids=()
writer & pids+=($!)
reader 1 & pids+=($!)
reader 2 & pids+=($!)
on_exit "touch $stop; wait ${pids[*]} 2>/dev/null"
wait_for 30 hydrated_at_least c 8 || fail "no progress: $(clone_status c)"
end=$((SECONDS + race_s))
i=0
while [ $SECONDS -lt $end ] && [ ! -s "$errs" ]; do
	i=$((i + 1))
	# Every kind of step in turn; a reload follows a disable_hydration
	# (the new table's own setting must then be in force).
	case $((i % 6)) in
	1) step_reload 0 || break; a="same table" ;;
	2 | 4) timeout 60 dmsetup message c 0 disable_hydration || { bad "disable_hydration failed"; break; }; a=disable ;;
	3) step_reload 1 || break; a="no_read_hydration table" ;;
	5) timeout 60 dmsetup message c 0 enable_hydration || { bad "enable_hydration failed"; break; }; a=enable ;;
	0) step_reload 2 || break; a="other tunables" ;;
	esac
	did[$a]=$((${did[$a]:-0} + 1))
	m=$(clone_mode c)
	[ "$m" = rw ] || { bad "step $i ($a): mode $m"; break; }
done
touch "$stop"
for p in "${pids[@]}"; do
	wait "$p" || bad "a reader or the writer exited with status $?"
done
if [ -s "$errs" ]; then
	cat "$errs" >&2
	fail "$(head -n 1 "$errs")"
fi
summary=""
for a in "${!did[@]}"; do summary+="$a ${did[$a]}, "; done
log "side loop: $i steps (${summary%, }); reads $(cat "$TEST_TMP/reads.1") + $(cat "$TEST_TMP/reads.2"), writes $(wc -l <"$TEST_TMP/writes")"
log "$(clone_status c)"

step_reload 0 || fail "$(cat "$errs")"
# The rest of the copy at full speed.
dm_message c hydration_threshold 512
dm_message c hydration_batch_size 64
dm_message c enable_hydration
wait_hydrated c 180
dmsetup status c >/dev/null
side_replay "$ref"
verify_reopen c "$dest" "$meta" "$ref" "${tables[0]}"
dm_remove slow
