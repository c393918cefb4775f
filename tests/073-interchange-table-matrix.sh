#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Side by side with the kernel's own dm-clone (the peer, a black box): a
# matrix of table lines (region sizes, feature and core argument groups,
# good and bad, spelled in upper and lower case, a length that leaves a
# partial last region, words left over) and of messages (tunables at 0, at
# the 32-bit limit and past it, in other cases). For each table: accepted
# or refused, and when accepted the table line and the status line
# (timing-dependent fields by shape); for each message: accepted or
# refused and the status after it. The two must agree line for line,
# except where our contract is deliberately stricter than the classic
# module (listed in $STRICTER, checked to be refused by ours). Skipped on
# kernels that ship no dm-clone of their own.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_peer
need_cmd dmclone-pattern

src=$(mkdev src 8)		# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 4)
fill_pattern "$src" 1 >/dev/null
LEN=16384

# The table lines: "LENGTH ARGS...", the clone's devices put in front of ARGS.
tables=(
	"$LEN 8"
	"$LEN 16"
	"$LEN 4096"
	"$LEN 2097152"
	"16380 8"
	"$LEN 7"
	"$LEN 4"
	"$LEN 0"
	"$LEN 4194304"
	"$LEN 8x"
	"$LEN 0x8"
	"$LEN -8"
	"$LEN +8"
	"$LEN ++8"
	"$LEN 8 0"
	"$LEN 8 1 no_hydration"
	"$LEN 8 1 NO_HYDRATION"
	"$LEN 8 1 No_Discard_Passdown"
	"$LEN 8 2 no_hydration no_hydration"
	"$LEN 8 1 bogus"
	"$LEN 8 3 no_hydration no_discard_passdown no_hydration"
	"$LEN 8 1"
	"$LEN 8 x"
	"$LEN 8 0 0"
	"$LEN 8 0 2 hydration_threshold 0"
	"$LEN 8 0 2 hydration_batch_size 0"
	"$LEN 8 0 2 hydration_threshold 4294967295"
	"$LEN 8 0 2 hydration_threshold 4294967296"
	"$LEN 8 0 2 hydration_threshold -1"
	"$LEN 8 0 2 hydration_threshold 1x"
	"$LEN 8 0 2 hydration_threshold +3"
	"$LEN 8 0 2 hydration_batch_size +0"
	"$LEN 8 0 2 hydration_batch_size +"
	"$LEN 8 0 2 HYDRATION_THRESHOLD 3"
	"$LEN 8 0 1 hydration_threshold"
	"$LEN 8 0 2 bogus 1"
	"$LEN 8 0 4 hydration_threshold 1 hydration_threshold 2"
	"$LEN 8 0 6 hydration_threshold 1 hydration_batch_size 2 hydration_threshold 3"
	"$LEN 8 1 no_hydration 2 hydration_batch_size 5"
)
messages=(
	"hydration_threshold 0"
	"hydration_threshold 4294967295"
	"hydration_threshold 4294967296"
	"hydration_batch_size 0"
	"hydration_batch_size 4294967295"
	"HYDRATION_THRESHOLD 3"
	"Hydration_Batch_Size 4"
	"hydration_threshold +5"
	"hydration_threshold ++5"
	"hydration_batch_size +"
	"hydration_threshold 07"
	"disable_hydration"
	"ENABLE_HYDRATION"
	""
)
# Where the contract is stricter than the classic module: "table|ARGS" or
# "message|TEXT". Ours must refuse these; the peer's answer is reported.
STRICTER=""


out() { printf '%s\n' "$*" >>"$TEST_TMP/$impl"; }

stricter() { [[ $'\n'$STRICTER$'\n' == *$'\n'"$1"$'\n'* ]]; }

run() {
	local t len args r st set_words m
	impl=$1
	: >"$TEST_TMP/$impl"
	"load_$impl"
	for t in "${tables[@]}"; do
		len=${t%% *} args=${t#* }
		zero_dev "$md"
		if dmsetup create c --table "0 $len clone $md $dst $src $args" >/dev/null 2>&1; then
			_dmc_register dm c
			r=accepted
		else
			r=refused
		fi
		if stricter "table|$args"; then
			[ "$impl" = peer ] || assert_eq $r refused "ours, for the table '$args'"
			log "$impl: table '$args': $r (ours is stricter)"
			[ $r = refused ] || dm_remove c
			continue
		fi
		out "table $len $args: $r"
		[ $r = accepted ] || continue
		out "  table line: $(dm_table c | cut -d' ' -f4-)"
		out "  status: $(ic_norm_status "$(clone_status c)" "$args")"
		dm_remove c
	done

	zero_dev "$md"
	dm_create c "0 $LEN clone $md $dst $src 8 1 no_hydration"
	set_words=""
	for m in "${messages[@]}"; do
		# shellcheck disable=SC2086
		if dmsetup message c 0 $m >/dev/null 2>&1; then r=accepted; else r=refused; fi
		set_words+=" $m"
		st=$(ic_norm_status "$(clone_status c)" "$set_words")
		if stricter "message|$m"; then
			[ "$impl" = peer ] || assert_eq $r refused "ours, for the message '$m'"
			log "$impl: message '$m': $r (ours is stricter)"
			continue
		fi
		out "message '$m': $r"
		out "  status: $st"
	done
	dm_remove c
	unload_clone
}

run peer
run ours
if ! diff -u "$TEST_TMP/peer" "$TEST_TMP/ours"; then
	fail "the peer and ours differ (above: - peer, + ours)"
fi
log "ok: $(wc -l <"$TEST_TMP/ours") lines identical"
