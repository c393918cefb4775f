#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Growing a clone. The source and the destination are dm-linear maps over
# larger loop devices, grown by reloading them (as an extended LV grows).
# A clone of 16 MiB, partly hydrated and taking writes, is grown twice by
# reloading its table with a larger length (`dmsetup reload`, suspend,
# resume), while a writer keeps writing and the background copy runs: the
# status then shows the new region count, the hydrated count never goes
# down, the mode stays rw, and at the end every byte matches the reference
# (the source with the user's writes). The grown metadata opens in a new
# clone of the new length, and, on 7.x, in the kernel's own dm-clone with
# every region hydrated. A shorter table is refused (the live one goes on
# unchanged); so is growing a clone whose old length ends inside a
# hydrated region, saying why.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/interchange.sh"

need_module
need_cmd dmclone-pattern dd

rs=64						# 32 KiB regions
mib=2048					# sectors per MiB
srcloop=$(mkdev srcl 48)
destloop=$(mkdev destl 48)
meta=$(mkdev meta 4)
ref=$(mkdev ref 48)
fill_pattern "$srcloop" 1
fill_pattern "$ref" 1
fill_pattern "$destloop" 9

# sized NAME LOOP MIB: (re)map the first MIB MiB of LOOP as NAME.
sized() {
	if dmsetup info "$1" >/dev/null 2>&1; then
		dm_swap "$1" "0 $(($3 * mib)) linear $2 0"
	else
		dm_create "$1" "0 $(($3 * mib)) linear $2 0"
	fi
}
table_of() {
	CLONE_LEN=$(($1 * mib)) clone_table "$meta" /dev/mapper/dst /dev/mapper/src $rs \
		0 2 hydration_threshold 4
}
# A writer of whole and partial regions at random places of the clone (its
# size in MiB read from $TEST_TMP/size), logging each write for the
# reference, until told to stop.
writer() {
	local start count size
	while [ ! -e "$TEST_TMP/stop" ]; do
		size=$(cat "$TEST_TMP/size")
		start=$(((RANDOM * 32768 + RANDOM) % (size * mib - 96)))
		count=$((RANDOM % 96 + 1))
		dmclone-pattern write /dev/mapper/c 2 "$start" "$count" || return 1
		echo "$start $count" >>"$TEST_TMP/writes"
	done
}
apply_writes() {
	local start count
	while read -r start count; do
		dmclone-pattern write "$ref" 2 "$start" "$count"
	done <"$TEST_TMP/writes"
}

sized src "$srcloop" 16
sized dst "$destloop" 16
dm_create c "$(table_of 16)"
assert_eq "$(clone_regions c)" $((16 * mib / rs)) "regions at 16 MiB"
: >"$TEST_TMP/writes"
echo 16 >"$TEST_TMP/size"
writer &
wpid=$!
wait_for 30 hydrated_at_least c 64 || fail "no progress before the first grow"

log "a shorter table is refused; the live one goes on"
dm_swap_fails() { dmsetup load c --table "$1" 2>/dev/null && return 1; dmsetup clear c; return 0; }
dm_swap_fails "$(table_of 8)" || fail "a table of 8 MiB over 16 MiB of metadata was accepted"
assert_eq "$(clone_regions c)" $((16 * mib / rs)) "regions after the refused shrink"

for size in 32 48; do
	log "grow to $size MiB under writes and copying"
	before=$(clone_hydrated c)
	sized src "$srcloop" $size
	sized dst "$destloop" $size
	log_mark
	dm_swap c "$(table_of $size)"
	assert_eq "$(clone_regions c)" $((size * mib / rs)) "regions at $size MiB"
	assert_eq "$(clone_mode c)" rw "mode after growing to $size MiB"
	[ "$(clone_hydrated c)" -ge "$before" ] ||
		fail "hydrated count went down across the grow: $before, then $(clone_hydrated c)"
	log_grep "grown to $((size * mib)) sectors" ||
		fail "the kernel log does not say the clone grew to $size MiB"
	echo $size >"$TEST_TMP/size"
	wait_for 30 hydrated_at_least c $((before + 32)) || fail "no progress after growing to $size MiB"
done
touch "$TEST_TMP/stop"
wait $wpid || fail "the writer failed"
wait_hydrated c 120
dmsetup status c >/dev/null
apply_writes
cmp_dev /dev/mapper/c "$ref" $((48 * mib)) || fail "the clone differs from the reference"
dm_remove c

log "the grown metadata in a new clone of the new length"
dm_create c "$(table_of 48)"
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "$((48 * mib / rs))/$((48 * mib / rs))" "status of a new clone"
cmp_dev /dev/mapper/c "$ref" $((48 * mib)) || fail "the clone differs from the reference"
dm_remove c

if [ -n "$PEER_MODULE" ] && [ -f "$PEER_MODULE" ]; then
	log "the grown metadata in the kernel's own dm-clone"
	load_peer
	dm_create c "$(table_of 48)"
	st=$(clone_status c)
	assert_match "$st" " $((48 * mib / rs))/$((48 * mib / rs)) " "the peer's status over the grown metadata"
	cmp_dev /dev/mapper/c "$ref" $((48 * mib)) || fail "the clone differs from the reference"
	dm_remove c
	load_ours
fi

log "growing from a length that ends inside a hydrated region is refused"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
odd=$((16 * mib - 8))				# ends 8 sectors short of a region
dm_create c "$(CLONE_LEN=$odd clone_table "$meta" /dev/mapper/dst /dev/mapper/src $rs 1 no_hydration)"
dmclone-pattern write /dev/mapper/c 2 $((odd - 8)) 8 || fail "write to the last region failed"
dmsetup status c >/dev/null
dm_remove c
log_mark
why=$(dm_table_load_should_fail c "$(table_of 16)")
assert_match "$why" "old length ends inside a hydrated region" "reason of the refused grow"
dm_remove dst
dm_remove src
