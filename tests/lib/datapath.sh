# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the data path tests (tests/020-039). Source after common.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/datapath.sh"
#
# Sizes are in 512-byte sectors.

# zero_meta DEV: zero the first 4 KiB of a metadata device, so that the next
# clone table over it formats it afresh.
zero_meta() {
	dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct conv=notrunc status=none
}

# dd_pattern DEV SEED START COUNT OFLAGS: write COUNT sectors of pattern SEED
# (as sectors START...) at sector START of DEV in ONE write(2), with dd and
# the given output flags (for example direct,dsync for a FUA write, or
# "" for a buffered write followed by fsync).
dd_pattern() {
	local dev=$1 seed=$2 start=$3 count=$4 oflags=$5 f
	f=$TEST_TMP/dd_pattern.$$.$RANDOM
	dmclone-pattern gen "$seed" "$start" "$count" >"$f"
	dd if="$f" of="$dev" bs=$((count * 512)) count=1 seek=$((start * 512)) \
		oflag=seek_bytes${oflags:+,$oflags} \
		conv=notrunc,fsync status=none 2>&1 ||
		{ rm -f "$f"; return 1; }
	rm -f "$f"
}

# expect_hydrated NAME N [WHAT]: the clone's hydrated count is N.
expect_hydrated() {
	assert_eq "$(clone_hydrated "$1")" "$2" "${3:-hydrated regions of $1}"
}

# region_range_of START COUNT SHIFT: print the first and last region numbers
# touched by sectors [START, START + COUNT).
region_range_of() {
	echo $(($1 >> $3)) $((($1 + $2 - 1) >> $3))
}

# ---------------------------------------------------------------- races
# Side loops of the race tests (035-038): a loop records a failure with
# side_bad (in $TEST_TMP/side-errors, checked by the test at the end of a phase)
# and stops when $TEST_TMP/stop exists.

side_bad() { echo "$*" >>"$TEST_TMP/side-errors"; }

# side_writer DEV SPAN MAXCOUNT: until told to stop, write pattern 2 to
# random runs of 1 to MAXCOUNT sectors below sector SPAN - MAXCOUNT of
# DEV, each logged once acknowledged ("START COUNT" in $TEST_TMP/writes),
# so that a reference can replay them.
side_writer() {
	local dev=$1 span=$2 max=$3 start count
	while [ ! -e "$TEST_TMP/stop" ]; do
		start=$(((RANDOM * 32768 + RANDOM) % (span - max)))
		count=$((RANDOM % max + 1))
		if ! timeout 60 dmclone-pattern write "$dev" 2 $start $count >/dev/null; then
			side_bad "write of $start+$count failed or hung"
			return
		fi
		echo "$start $count" >>"$TEST_TMP/writes"
	done
}

# spread_fio DEV REGIONS NIOS [FIO-OPTION...]: NIOS single-region (4 KiB)
# writes at random over the first REGIONS regions of DEV, without
# repeats, verified by crc32c; with --verify_only the same blocks are read
# back and checked.
spread_fio() {
	local dev=$1 regions=$2 nios=$3
	shift 3
	fio --name=spread --filename="$dev" --rw=randwrite --bs=4k \
		--size=$((regions * 4096)) --io_size=$((nios * 4096)) --randrepeat=1 \
		--ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c \
		--verify_fatal=1 "$@"
}

# clone_written NAME: the hydrated count, from a status query that does
# not commit (a plain one would commit what a suspend is to commit).
clone_written() { clone_status_noflush "$1" | awk '{ split($4, a, "/"); print a[1] }'; }

# side_replay REF: write to REF what side_writer wrote (its log).
side_replay() {
	local start count
	while read -r start count; do
		dmclone-pattern write "$1" 2 "$start" "$count" >/dev/null
	done <"$TEST_TMP/writes"
}

# verify_reopen NAME DEST META REF TABLE: the hydrated clone NAME and its
# destination DEST equal REF; NAME removed, its metadata META passes
# clone_check, and a new NAME with TABLE opens all hydrated and equals
# REF (removed at the end).
verify_reopen() {
	local name=$1 dest=$2 meta=$3 ref=$4 table=$5 nr
	nr=$(clone_regions "$name")
	cmp_dev "/dev/mapper/$name" "$ref" || fail "the clone differs from the reference"
	cmp_dev "$dest" "$ref" || fail "the destination differs from the reference"
	dm_remove "$name"
	clone_check "$meta" >/dev/null 2>&1 || fail "clone_check: $(clone_check "$meta" 2>&1 | head -n 5)"
	dm_create "$name" "$table"
	assert_eq "$(clone_hydrated "$name")/$(clone_regions "$name")" "$nr/$nr" "a new clone over the metadata"
	cmp_dev "/dev/mapper/$name" "$ref" || fail "the reopened clone differs from the reference"
	dm_remove "$name"
}
