#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Zero regions. A source of 32 MiB whose first half holds data and whose
# second half reads back zeroes is cloned onto a destination that takes
# zeroes writes (a loop device over a sparse file: a zeroes write punches
# a hole): once hydration completes the clone reads back byte-exact, and
# the destination's file has no more than the data half allocated (a copy
# that writes the zeroes as data allocates all 32 MiB). The destination's
# old contents under the zero half (pattern 9) are gone: it reads zeroes.
# The same clone onto a destination that takes no zeroes writes (brd)
# reads back byte-exact too.
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd dmclone-pattern

rs=128						# 64 KiB regions
src=$(mkdev src 32)
meta=$(mkdev meta 4)
fill_pattern "$src" 1 0 32768			# the first 16 MiB; the rest reads zeroes
dest=$(mkdev dest 32)
destfile=$(losetup -n -O BACK-FILE "$dest")
[ -f "$destfile" ] || fail "cannot find the destination's file ($destfile)"
# The file is sparse; old data under the zero half only.
fill_pattern "$dest" 9 32768 32768
sync
before=$(($(stat -c %b "$destfile") * 512))
log "destination file: $before bytes allocated before the copy"
[ "$before" -ge $((16 << 20)) ] || fail "the destination's old zero-half data is not allocated ($before bytes)"
[ "$(cat "/sys/block/${dest#/dev/}/queue/write_zeroes_max_bytes")" -gt 0 ] ||
	skip "this kernel's loop device takes no zeroes writes"

dm_create c "$(clone_table "$meta" "$dest" "$src" $rs)"
wait_hydrated c 120
dmsetup status c >/dev/null
cmp_dev /dev/mapper/c "$src" || fail "the clone differs from the source"
dm_remove c
sync
after=$(($(stat -c %b "$destfile") * 512))
log "destination file: $after bytes allocated after the copy"
[ "$after" -le $(((16 << 20) + (1 << 20))) ] ||
	fail "the zero half was written as data: $after bytes allocated (at most 17 MiB expected)"
cmp_dev "$dest" "$src" || fail "the destination differs from the source"

log "a destination that takes no zeroes writes (brd)"
ram=$(mkbrd 1 32)
fill_pattern "$ram" 9
[ "$(cat /sys/block/ram0/queue/write_zeroes_max_bytes)" = 0 ] ||
	log "(brd takes zeroes writes on this kernel)"
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
dm_create c "$(clone_table "$meta" "$ram" "$src" $rs)"
wait_hydrated c 120
cmp_dev /dev/mapper/c "$src" || fail "the clone onto brd differs from the source"
dm_remove c
