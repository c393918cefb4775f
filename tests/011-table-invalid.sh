#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Invalid table lines are refused: `dmsetup create` fails with a kernel
# reason that names the problem, and leaves no device behind. Covers the
# argument count, missing and too-small devices, bad region sizes, too many
# regions, bad feature and core argument groups, trailing arguments, a
# device given twice, a clone whose table names itself or (before 6.12) a
# device stacked on it, a metadata device that holds other data (left untouched) or is too
# small. A failed reload of a live clone leaves its table, status and data
# untouched, and the clone keeps working.
# On the debug kernel, a sample of each list of bad values and of the
# tables the argument parser refuses.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"

need_module
need_module dm-zero
need_cmd dmsetup dmclone-pattern

src=$(mkdev src 8)			# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 8)			# as large as the others: see "twice"
small=$(mkdev small 4)			# 8192 sectors
fill_pattern "$src" 1
LEN=16384
T="0 $LEN clone"

# bad TABLE REGEX: creating a clone with TABLE fails, the reason matches
# REGEX (lower case), no device is left.
bad() {
	local why
	why=$(create_should_fail bad "$1" "$2") || exit 1
	log "refused: '$1': $why"
}
# parse_bad TABLE REGEX: bad, for a group of tables the argument parser
# refuses at the same point (on a slow kernel, the first of every three).
parsed=0
parse_bad() {
	parsed=$((parsed + 1))
	if slow_kernel && [ $((parsed % 3)) != 1 ]; then
		return 0
	fi
	bad "$@"
}

log "argument count"
bad "$T" "argument"
bad "$T $md" "argument"
bad "$T $md $dst" "argument"
bad "$T $md $dst $src" "argument"

log "missing devices"
bad "$T /dev/nonexistent $dst $src 8" "metadata"
bad "$T $md /dev/nonexistent $src 8" "destination"
bad "$T $md $dst /dev/nonexistent 8" "source"

log "devices smaller than the length"
bad "$T $md $small $src 8" "destination.*(small|size|length)"
bad "$T $md $dst $small 8" "source.*(small|size|length)"

log "region sizes"
# (On a slow kernel, a sample of each list of values: the same code path.)
for r in $(sample_cases 0 4 12 24 2097153 4194304 8k 0x8 -8 +8 abc 18446744073709551624); do
	bad "$T $md $dst $src $r" "region size"
done

log "too many regions: 2^31 + 1 regions of 8 sectors"
# dm-zero devices of 8 TiB + 4 KiB need no memory and accept writes.
huge=$(((1 << 34) + 8))
dm_create zdst "0 $huge zero"
dm_create zsrc "0 $huge zero"
bad "0 $huge clone $md /dev/mapper/zdst /dev/mapper/zsrc 8" "too many|at most|limit"
# The same devices with 1 GiB regions (8193 regions) are fine: the count
# was the only problem.
wipe_md "$md"
dm_create zc "0 $huge clone $md /dev/mapper/zdst /dev/mapper/zsrc 2097152 1 no_hydration"
clone_parse zc
assert_eq "$ST_REGIONS" 8193 "regions of 8 TiB + 4 KiB in 1 GiB regions"
dm_remove zc
dm_remove zsrc
dm_remove zdst

# From here, tables that pass the device and region checks.
wipe_md "$md"
A="$T $md $dst $src 8"

log "feature groups"
parse_bad "$A 3 no_hydration no_discard_passdown no_hydration" "feature"
parse_bad "$A 1" "feature|argument"
parse_bad "$A 2 no_hydration" "feature|argument"
parse_bad "$A 1 no_such_feature" "feature"
parse_bad "$A 1 no_hydration_" "feature"
parse_bad "$A 1 hydration_threshold" "feature"
parse_bad "$A -1" "feature"
parse_bad "$A x" "feature"

log "core argument groups"
parse_bad "$A 0 1 hydration_threshold" "core|pair|argument"
parse_bad "$A 0 3 hydration_threshold 1 hydration_batch_size" "core|pair|argument"
parse_bad "$A 0 6 hydration_threshold 1 hydration_batch_size 1 hydration_threshold 2" "core|argument"
parse_bad "$A 0 2 hydration_threshold" "core|argument"
parse_bad "$A 0 2 hydration_foo 1" "core|key|argument"
parse_bad "$A 0 2 no_hydration 1" "core|key|argument"
for v in $(sample_cases abc 1x -1 4294967296); do
	bad "$A 0 2 hydration_threshold $v" "value|number|core"
done
for v in $(sample_cases 0x10 + ++1 1.5 99999999999999999999); do
	bad "$A 1 no_hydration 2 hydration_batch_size $v" "value|number|core"
done

log "trailing arguments"
parse_bad "$A 0 0 junk" "argument"
parse_bad "$A 1 no_hydration 2 hydration_threshold 4 junk" "argument"
parse_bad "$A 1 no_hydration 0 junk" "argument"
parse_bad "$A 1 no_hydration junk" "argument|core"

log "the same device twice"
bad "$T $md $md $src 8" "different|same|twice"
bad "$T $md $dst $dst 8" "different|same|twice"
bad "$T $md $dst $md 8" "different|same|twice"
bad "$T $src $dst $src 8" "different|same|twice"

# None of the refused loads wrote to the destination or the source.
assert_eq "$(identify_dev "$dst")" "0-16383: zeros" "destination after the refused loads"
check_pattern "$src" 1

log "a live clone, and reloads that must fail"
wipe_md "$md"
dm_create c "0 $LEN clone $md $dst $src 8 1 no_hydration"
fill_pattern /dev/mapper/c 5 4096 512	# hydrates regions 512-575
wait_for 10 hydrated_at_least c 64 || fail "64 regions after a write: $(clone_status c)"
clone_parse c
assert_eq "$ST_HYDRATED" 64 "regions hydrated by the write"
table0=$(dm_table c)
status0=$(clone_status c)
C=/dev/mapper/c

dm_create top "0 $LEN linear $C 0"
stacked=/dev/mapper/top

# info_field NAME FIELD: a field of `dmsetup info NAME`.
info_field() { dmsetup info "$1" | awk -v f="$2" -F': *' '$1 == f { print $2 }'; }

# reload_should_fail TABLE REGEX: `dmsetup reload c` fails with a reason
# matching REGEX; the live table is untouched, no inactive table is left.
reload_should_fail() {
	local why
	log_mark
	if dmsetup reload c --table "$1" >/dev/null 2>&1; then
		fail "reload of c succeeded but should have failed: $1"
	fi
	why=$(log_since_mark | sed -n 's/.*device-mapper: table: //p' | head -n 1)
	[[ $(tr '[:upper:]' '[:lower:]' <<<"$why") =~ $2 ]] ||
		fail "reload '$1' failed, but the reason '$why' does not match /$2/"
	log "reload refused: '$1': $why"
	assert_eq "$(dm_table c)" "$table0" "live table after a failed reload"
	assert_eq "$(info_field c 'Tables present')" LIVE "tables after a failed reload"
	assert_eq "$(info_field c State)" ACTIVE "state after a failed reload"
	assert_eq "$(clone_status c)" "$status0" "status after a failed reload"
}

# Where the block layer keeps its holder lists private (6.12 and later),
# the clone cannot see that a device is stacked on it without racing
# with table swaps below (see dm-clone-compat.h): such a table loads
# there; it is cleared without being resumed.
holders_walked() {
	local v
	v=$(uname -r | cut -d. -f1,2)
	[ "$(printf '%s\n' "$v" 6.12 | sort -V | head -n 1)" != 6.12 ]
}
reload_stacked() {
	if holders_walked; then
		reload_should_fail "$1" "itself|stacked"
		return
	fi
	dmsetup reload c --table "$1" >/dev/null 2>&1 ||
		fail "reload through a stacked device failed on $(uname -r): $1"
	dmsetup clear c
	assert_eq "$(info_field c 'Tables present')" LIVE "tables after clearing"
	assert_eq "$(clone_status c)" "$status0" "status after clearing"
	log "loaded (holder lists not walked on $(uname -r)): '$1'"
}

reload_should_fail "$T $md $dst $C 8" "itself|stacked"
reload_stacked "$T $md $dst $stacked 8"
reload_should_fail "$T $md $C $src 8" "itself|stacked"
reload_stacked "$T $md $stacked $src 8"
reload_should_fail "$T $C $dst $src 8" "itself|stacked"
reload_should_fail "$T $md $dst $src 12" "region size"
reload_should_fail "$T $md $dst $src 8 1 bogus" "feature"
# Valid on its own, but the metadata was written for regions of 8.
reload_should_fail "$T $md $dst $src 16 1 no_hydration" "region size|metadata|superblock"
# ... and for a length of 16384.
reload_should_fail "0 8192 clone $md $dst $src 8 1 no_hydration" "length|size|metadata|superblock"

log "the live clone still works"
# A new clone may use the clone, or a device stacked on it, as its source:
# only the clone's own table may not.
wipe_md "$small"
dst2=$(mkdev dst2 8)
dm_create c2 "0 $LEN clone $small $dst2 $stacked 8"
wait_hydrated c2 60
cmp_dev /dev/mapper/c2 "$src" 4096
cmp_dev /dev/mapper/c2 /dev/mapper/c 512 4096 4096
dmclone-pattern check /dev/mapper/c2 5 4096 512
dm_remove c2
dm_remove top
# Reads (both kinds of region), a write, a suspend/resume, hydration.
cmp_dev $C "$src" 4096
dmclone-pattern check $C 5 4096 512
cmp_dev $C "$src" $((LEN - 4608)) 4608 4608
fill_pattern $C 6 200 4			# part of region 25
dmsetup suspend c
dmsetup resume c
clone_parse c
assert_eq "$ST_HYDRATED" 65 "hydrated regions after a write and a suspend"
dm_message c enable_hydration
wait_hydrated c 60
cmp_dev "$dst" "$src" 200
dmclone-pattern check "$dst" 6 200 4
cmp_dev "$dst" "$src" $((4096 - 204)) 204 204
dmclone-pattern check "$dst" 5 4096 512
cmp_dev "$dst" "$src" $((LEN - 4608)) 4608 4608
assert_eq "$(dm_table c)" "$table0" "table at the end"
dm_remove c

log "metadata devices holding something else, or too small"
# Data that is not clone metadata is refused and left alone.
notmd=$(mkdev notmd 1)
fill_pattern "$notmd" 9
bad "$T $notmd $dst $src 8" "metadata|superblock"
check_pattern "$notmd" 9 || fail "a refused load wrote to a device that holds data"
tinier=$(mkdev_sectors tinier 1)	# less than a metadata block
bad "$T $tinier $dst $src 8" "metadata|small|space|superblock"
tiny=$(mkdev_sectors tiny 8)		# one 4 KiB block: just a superblock
bad "$T $tiny $dst $src 8" "metadata|small|space"
# 2^24 regions need more than 512 blocks of bitset: 64 blocks are too few.
big=$((1 << 27))
dm_create zdst "0 $big zero"
dm_create zsrc "0 $big zero"
small_md=$(mkdev_sectors small_md 512)
bad "0 $big clone $small_md /dev/mapper/zdst /dev/mapper/zsrc 8" "metadata|small|space"

log "ok"
