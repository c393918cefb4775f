#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A discard of more regions than one metadata transaction takes (2^20:
# the worker marks and commits in steps) marks every region it covers
# completely, in core and on disk: over 2^21 + 3 regions of 4 KiB (a
# `zero` source behind a real first 16 MiB, a sparse destination), a
# discard of
# all but the first and last sectors leaves exactly the two partially
# covered regions unhydrated, still read from the source; after the clone
# is removed and created again, the same count is hydrated. The same with
# discard passdown, where marking follows the destination's completion.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"

need_module
need_cmd dmclone-pattern blkdiscard

rs=8
nr=$((2097152 + 3))
len=$((nr * rs))
head=32768					# 16 MiB of real data
real_src=$(mkdev real_src 16)
meta=$(mkdev meta 64)
fill_pattern "$real_src" 3
dm_create src "0 $head linear $real_src 0
$head $((len - head)) zero"
dst=$(mkdev_sectors dst $len)
src=/dev/mapper/src

# run FEATURES...: one round over fresh metadata.
run() {
	local table
	zero_dev "$meta"
	table=$(clone_table "$meta" "$dst" "$src" $rs "$@")
	dm_create c "$table"
	assert_eq "$(clone_regions c)" $nr "regions"
	assert_eq "$(clone_hydrated c)" 0 "hydrated at first"

	log "discarding sectors 1 .. $((len - 1)) ($*)"
	blkdiscard --offset 512 --length $(((len - 2) * 512)) /dev/mapper/c ||
		fail "blkdiscard failed"
	assert_eq "$(clone_hydrated c)" $((nr - 2)) "hydrated after the discard"
	assert_eq "$(clone_mode c)" rw "mode after the discard"
	# The partially covered first region still reads from the source.
	check_pattern /dev/mapper/c 3 0 $rs ||
		fail "the first region no longer reads the source's data"

	dm_remove c
	dm_create c "$table"
	assert_eq "$(clone_hydrated c)" $((nr - 2)) "hydrated after re-creating the clone"
	check_pattern /dev/mapper/c 3 0 $rs ||
		fail "the first region no longer reads the source's data after re-creating the clone"
	dm_remove c
}

run 2 no_hydration no_discard_passdown
log_mark
run 1 no_hydration
assert_eq "$(log_since_mark | grep -c 'disabling discard passdown' || true)" 0 \
	"passdown switched off (the destination discards)"
