#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The same tables and messages give the same status and table lines from
# the kernel's own dm-clone (the peer, a black box) and from ours: the
# classic grammar, the same number of fields, the features (table and
# live) printed the same way, tunables given by table or message printed
# as given, the same table line, and the same messages accepted and
# refused (but for a message with a word too many, which the contract
# refuses and the classic module ignores: there only ours is held to the
# contract, both answers are reported). Fields that depend on timing (hydrated and in-flight regions,
# used metadata blocks) are compared by shape only, and so are the
# default tunables of a table that gives none, which the contract leaves
# to each implementation: their values are reported. Skipped on kernels
# that ship no dm-clone of their own (6.1, 6.12 cloud kernels).
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_peer
need_cmd dmclone-pattern

src=$(mkdev src 8)		# 16384 sectors: 2048 regions of 8
dst=$(mkdev dst 8)
md=$(mkdev md 4)
fill_pattern "$src" 1
LEN=16384
T="0 $LEN clone $md $dst $src 8"


# record IMPL WHAT SET: check clone c's status grammar and append its
# normal form (see ic_norm_status) to $TEST_TMP/IMPL.
record() {
	local st
	st=$(clone_status c)
	assert_match "$st" "$STATUS_RE" "$1 status grammar ($2)"
	log "$1: $2: $st"
	printf '%s: %s\n' "$2" "$(ic_norm_status "$st" "$3")" >>"$TEST_TMP/$1"
}

# msg IMPL MESSAGE...: send a message, record whether it was accepted.
msg() {
	local impl=$1 r=ok
	shift
	dm_message c "$@" >/dev/null 2>&1 || r=refused
	printf 'message %s: %s\n' "$*" "$r" >>"$TEST_TMP/$impl"
}

run() {
	local impl=$1
	: >"$TEST_TMP/$impl"
	"load_$impl"

	zero_dev "$md"
	dm_create c "$T 1 no_hydration"
	record "$impl" "no_hydration" ""
	echo "table: $(dm_table c)" >>"$TEST_TMP/$impl"
	msg "$impl" hydration_threshold 7
	record "$impl" "after hydration_threshold 7" hydration_threshold
	msg "$impl" hydration_batch_size 3
	record "$impl" "after hydration_batch_size 3" "hydration_threshold hydration_batch_size"
	msg "$impl" enable_hydration
	record "$impl" "after enable_hydration" "hydration_threshold hydration_batch_size"
	msg "$impl" disable_hydration
	record "$impl" "after disable_hydration" "hydration_threshold hydration_batch_size"
	msg "$impl" bogus
	msg "$impl" hydration_threshold
	msg "$impl" hydration_threshold abc
	msg "$impl" hydration_batch_size 1 2
	msg "$impl" hydration_batch_size -1
	msg "$impl" Enable_Hydration
	msg "$impl" disable_hydration
	# A word too many: the contract refuses it (-EINVAL); the classic
	# module is known to ignore it, so only ours is held to it here.
	if dm_message c enable_hydration now >/dev/null 2>&1; then
		extra[$impl]=accepted
	else
		extra[$impl]=refused
	fi
	echo "table after messages: $(dm_table c)" >>"$TEST_TMP/$impl"
	dm_remove c

	zero_dev "$md"
	dm_create c "$T 2 no_hydration no_discard_passdown 4 hydration_threshold 5 hydration_batch_size 2"
	record "$impl" "both features and both tunables" "hydration_threshold hydration_batch_size"
	echo "table: $(dm_table c)" >>"$TEST_TMP/$impl"
	dm_remove c

	zero_dev "$md"
	dm_create c "$T 1 no_discard_passdown"
	record "$impl" "no_discard_passdown" ""
	echo "table: $(dm_table c)" >>"$TEST_TMP/$impl"
	defaults[$impl]="hydration_threshold $(clone_core_arg c hydration_threshold) hydration_batch_size $(clone_core_arg c hydration_batch_size)"
	wait_hydrated c 120
	record "$impl" "hydrated" ""
	dm_remove c

	# A freshly formatted metadata device: its used blocks.
	zero_dev "$md"
	dm_create c "$T 1 no_hydration"
	fresh[$impl]=$(status_field c 2)
	dm_remove c
	unload_clone
}

declare -A defaults fresh extra
run peer
run ours

log "default tunables for regions of 8 sectors: peer: ${defaults[peer]}; ours: ${defaults[ours]}"
log "metadata blocks used/total when freshly formatted: peer ${fresh[peer]}, ours ${fresh[ours]}"
log "'enable_hydration now' (a word too many): peer ${extra[peer]}, ours ${extra[ours]}"
assert_eq "${extra[ours]}" refused "ours, for a message with a word too many"
assert_eq "${fresh[ours]#*/}" "${fresh[peer]#*/}" "total metadata blocks"
if ! diff -u "$TEST_TMP/peer" "$TEST_TMP/ours"; then
	fail "the peer and ours differ (above: - peer, + ours)"
fi
log "ok: $(wc -l <"$TEST_TMP/ours") lines identical"
