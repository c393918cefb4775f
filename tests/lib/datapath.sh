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
