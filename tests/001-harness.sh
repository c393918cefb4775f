#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Harness smoke test (needs no dm-clone): the guest has device-mapper and
# the tools, a loop device and a two-segment linear device over it can be
# created, data written through dm reads back byte-exact through dm and
# underneath at the right offsets, discard works, and everything is removed.
# timeout: 120
. "$(dirname "$0")/lib/common.sh"

need_module dm-mod
need_cmd dmsetup dmclone-pattern blkdiscard fio mkfs.ext4 mkfs.xfs

lower=$(mkdev lower 64)				# 131072 sectors
assert_eq "$(dev_sectors "$lower")" 131072 "size of $lower"

# Two segments, swapped: dm sectors 0-65535 are lower's 65536-131071.
dm_create swapped "0 65536 linear $lower 65536
65536 65536 linear $lower 0"
dev=/dev/mapper/swapped
[ -b "$dev" ] || fail "no $dev (dmsetup did not create the node)"
assert_eq "$(dev_sectors "$dev")" 131072 "size of $dev"
assert_match "$(dm_table swapped)" "^0 65536 linear $(dev_majmin "$lower") 65536" "table"

log "writing pattern 7 through dm"
fill_pattern "$dev" 7
check_pattern "$dev" 7
# Underneath, the halves are swapped.
dmclone-pattern check "$lower" 7 0 1 >/dev/null && fail "lower sector 0 should not hold seed 7 sector 0"
cmp_dev "$dev" "$lower" 65536 0 65536
cmp_dev "$dev" "$lower" 65536 65536 0
identify_dev "$lower"

# A mismatch is reported, with where the data came from.
if out=$(cmp_dev "$dev" "$lower" 16 0 0 2>&1); then
	fail "cmp_dev did not notice a difference"
fi
assert_match "$out" "A has seed 7 sector 0, B has seed 7 sector 65536" "cmp_dev report"

log "discard through dm"
blkdiscard -o $((65536 * 512)) -l $((1024 * 512)) "$dev"
identify_dev "$lower" 0 2048
assert_eq "$(identify_dev "$lower" 0 1024)" "0-1023: zeros" "discarded range"
check_pattern "$dev" 7 $((65536 + 1024)) 1024 || fail "data next to the discard changed"

log "suspend/resume and reload"
dmsetup suspend swapped
assert_match "$(dmsetup info swapped)" "SUSPENDED" "suspend"
dmsetup resume swapped
dm_reload swapped "0 131072 linear $lower 0"
cmp_dev "$dev" "$lower"

log "a bad table is refused"
why=$(dm_table_load_should_fail bad "0 100 linear /dev/nonexistent 0")
log "kernel said: ${why:-nothing}"
assert_fail dmsetup info bad

dm_remove swapped
[ ! -e "$dev" ] || fail "$dev still exists after removal"
log "ok"
