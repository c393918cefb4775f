#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Every message, good and bad. enable/disable_hydration (any case),
# hydration_threshold N and hydration_batch_size N take effect in the
# status and leave `dmsetup table` alone; a bad message (unknown, wrong
# argument count, non-numeric, negative, overflowing, empty) fails
# `dmsetup message` and changes nothing. disable_hydration really stops the
# copy (once the copies in flight finish, the hydrated count stays put) and
# enable_hydration resumes it to completion, byte-exact; a new
# hydration_threshold bounds the copies in flight at once, up or down. The
# systemd-clonesetup flow (create with no_hydration, enable_hydration,
# wait, switch to linear) works.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"

need_module
need_module dm-delay
need_cmd dmsetup dmclone-pattern

src=$(mkdev src 8)			# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 4)
fill_pattern "$src" 1
LEN=16384

# data_sectors DEV: how many sectors of DEV are not zeros.
data_sectors() {
	identify_dev "$1" | awk -F'[-:]' '$0 !~ /: zeros$/ { n += $2 - $1 + 1 } END { print n + 0 }'
}

log "good messages take effect"
dm_create c "0 $LEN clone $md $dst $src 8 1 no_hydration 4 hydration_threshold 1 hydration_batch_size 1"
table0=$(dm_table c)
# spec: message | expected T B features
for spec in "hydration_threshold 7|7 1 no_hydration" \
	"hydration_batch_size 3|7 3 no_hydration" \
	"HYDRATION_THRESHOLD 9|9 3 no_hydration" \
	"Hydration_Batch_Size 5|9 5 no_hydration" \
	"hydration_threshold 0|0 5 no_hydration" \
	"hydration_threshold 4294967295|4294967295 5 no_hydration" \
	"hydration_batch_size 4294967295|4294967295 4294967295 no_hydration" \
	"hydration_batch_size 1|4294967295 1 no_hydration" \
	"hydration_threshold 16|16 1 no_hydration" \
	"enable_hydration|16 1 " \
	"disable_hydration|16 1 no_hydration" \
	"ENABLE_HYDRATION|16 1 " \
	"Disable_Hydration|16 1 no_hydration" \
	"disable_hydration|16 1 no_hydration"; do
	msg=${spec%|*} want=${spec#*|}
	# shellcheck disable=SC2086
	dm_message c $msg || fail "message '$msg' failed"
	clone_parse c
	assert_eq "$ST_T $ST_B $ST_FEATURES" "$want" "status after '$msg'"
	assert_eq "$(dm_table c)" "$table0" "table after '$msg'"
done
# The enable/disable above may have let a few copies start; wait for them.
wait_for 10 hydrating_is c 0 || fail "copies in flight: $(clone_status c)"

# One leading '+' is taken, as the in-kernel dm-clone takes it (073
# compares the two).
dm_message c hydration_threshold +16 || fail "message 'hydration_threshold +16' failed"
assert_eq "$(clone_core_arg c hydration_threshold)" 16 "threshold set to +16"

log "bad messages fail and change nothing"
# `--` keeps dmsetup from taking "-1" for an option; it does pass the
# words on to the kernel:
dmsetup message -- c 0 hydration_threshold 15
assert_eq "$(clone_core_arg c hydration_threshold)" 15 "threshold set through 'dmsetup message --'"
status0=$(clone_status c)
# Each line is one message, split on spaces; "<empty>" is an empty word.
while read -r msg; do
	[ -n "$msg" ] || continue
	read -r -a words <<<"${msg//<empty>/}"
	[[ $msg == *"<empty>"* ]] && words+=("")
	if dmsetup message -- c 0 "${words[@]}" >/dev/null 2>&1; then
		fail "message '$msg' succeeded but should have failed"
	fi
	assert_eq "$(clone_status c)" "$status0" "status after the bad message '$msg'"
	assert_eq "$(dm_table c)" "$table0" "table after the bad message '$msg'"
done <<'EOF'
no_such_message
hydration
enable_hydrationx
enable_hydration x
enable_hydration 1
disable_hydration now
hydration_threshold
hydration_threshold 1 2
hydration_threshold abc
hydration_threshold 1x
hydration_threshold 0x10
hydration_threshold -1
hydration_threshold +
hydration_threshold ++1
hydration_threshold 1.5
hydration_threshold 4294967296
hydration_threshold 99999999999999999999
hydration_threshold <empty>
hydration_batch_size
hydration_batch_size 2 3
hydration_batch_size abc
hydration_batch_size -1
hydration_batch_size 4294967296
hydration_batch_size <empty>
hydration_threshold=4
<empty>
EOF
# dmsetup refuses some of these itself; send the empty message and a
# message with only spaces through the ioctl anyway, if dmsetup lets us.
assert_fail dmsetup message c 0 " "
assert_eq "$(clone_status c)" "$status0" "status after a blank message"
dm_remove c

# A slow source: each read waits 100 ms; 256 regions of 32 KiB.
slow=$(slow_dev slowsrc "$src" 100)

# max_in_flight NAME SAMPLES: the largest "hydrating" seen over SAMPLES
# status samples (MAXF); fails if the copy finishes meanwhile.
max_in_flight() {
	local i
	MAXF=0
	for ((i = 0; i < $2; i++)); do
		clone_parse "$1"
		[ "$ST_HYDRATED" -lt "$ST_REGIONS" ] || fail "the copy finished too early to observe"
		[ "$ST_HYDRATING" -gt "$MAXF" ] && MAXF=$ST_HYDRATING
		sleep 0.1
	done
}
above() { [ "$(clone_hydrating "$1")" -gt "$2" ]; }
at_most() { [ "$(clone_hydrating "$1")" -le "$2" ]; }

log "hydration_threshold is obeyed as it changes"
zero_dev "$dst"
wipe_md "$md"
dm_create c "0 $LEN clone $md $dst $slow 64 0 4 hydration_threshold 1 hydration_batch_size 1"
wait_for 30 hydrated_at_least c 1 || fail "no progress: $(clone_status c)"
max_in_flight c 6
assert_eq "$MAXF" 1 "most regions in flight with threshold 1"
dm_message c hydration_threshold 6
wait_for 10 above c 1 || fail "threshold 6 did not let more copies run: $(clone_status c)"
max_in_flight c 6
[ "$MAXF" -le 6 ] || fail "$MAXF regions in flight with threshold 6"
log "threshold 6: up to $MAXF regions seen in flight"
dm_message c hydration_threshold 2
wait_for 10 at_most c 2 || fail "still more than 2 in flight after threshold 2: $(clone_status c)"
max_in_flight c 6
[ "$MAXF" -le 2 ] || fail "$MAXF regions in flight with threshold 2"
dm_message c hydration_threshold 64
wait_hydrated c 90
cmp_dev "$dst" "$src"
dm_remove c

log "disable_hydration stops the copy, enable_hydration resumes it"
# 4 regions in flight at a time.
zero_dev "$dst"
wipe_md "$md"
dm_create c "0 $LEN clone $md $dst $slow 64 0 4 hydration_threshold 4 hydration_batch_size 2"
wait_for 60 hydrated_at_least c 8 || fail "hydration does not start: $(clone_status c)"
dm_message c disable_hydration
wait_for 20 hydrating_is c 0 || fail "copies still in flight 20 s after disable_hydration: $(clone_status c)"
clone_parse c
stopped=$ST_HYDRATED
assert_eq "$ST_FEATURES" no_hydration "features while disabled"
[ "$stopped" -lt 200 ] || fail "the copy finished too fast to test disable_hydration: $stopped of 256"
log "stopped at $stopped of 256 regions"
assert_hydrated_stays c "$stopped" 10
# The clone reads right, half copied, and reading copies nothing.
cmp_dev /dev/mapper/c "$src"
assert_hydrated_stays c "$stopped" 2
# The destination holds exactly the regions the status counts.
assert_eq "$(data_sectors "$dst")" $((stopped * 64)) "sectors of data on the destination"
dm_message c enable_hydration
wait_for 20 hydrated_at_least c $((stopped + 1)) || fail "enable_hydration did not resume the copy: $(clone_status c)"
wait_hydrated c 90
cmp_dev /dev/mapper/c "$src"
cmp_dev "$dst" "$src"
dm_remove c
dm_remove slowsrc

log "the systemd-clonesetup flow"
zero_dev "$dst"
wipe_md "$md"
dm_create sc "0 $LEN clone $md $dst $src 8 1 no_hydration"
clone_parse sc
assert_eq "$ST_FEATURES" no_hydration "features of a no_hydration table"
assert_hydrated_stays sc 0 5
dm_message sc enable_hydration
clone_parse sc
assert_eq "$ST_FEATURES" "" "features after enable_hydration"
wait_hydrated sc 60
cmp_dev /dev/mapper/sc "$src"
# Then swap in a linear table over the destination.
dmsetup suspend sc
dmsetup load sc --table "0 $LEN linear $dst 0"
dmsetup resume sc
assert_eq "$(dm_table sc)" "0 $LEN linear $(dev_majmin "$dst") 0" "table after the switch to linear"
cmp_dev /dev/mapper/sc "$src"
dm_remove sc

log "ok"
