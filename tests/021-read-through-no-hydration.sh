#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Read-through with no_hydration: every read of the clone (O_DIRECT in 1 MiB
# pieces, buffered, small unaligned reads crossing region boundaries, reads
# of the partial last region) returns the source byte-exact; reading never
# hydrates anything (hydrated stays 0, nothing in flight, even across a
# suspend/resume and the periodic commit) and never writes the destination
# (prefilled with another pattern, unchanged afterwards).
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/datapath.sh"

need_module
need_cmd dmclone-pattern sha256sum

src=$(mkdev src 16)				# 32768 sectors
dest=$(mkdev dest 16)
meta=$(mkdev meta 4)
rs=64
len=$((32768 - 21))				# partial last region: 43 sectors
nr=$(((len + rs - 1) / rs))

fill_pattern "$src" 1
fill_pattern "$dest" 9

CLONE_LEN=$len clone_create c "$meta" "$dest" "$src" $rs 1 no_hydration
clone=/dev/mapper/c
assert_eq "$(clone_features c)" no_hydration "features: $(clone_status c)"
expect_hydrated c 0
assert_eq "$(clone_regions c)" "$nr" "regions"

log "O_DIRECT read of everything"
check_pattern "$clone" 1 0 "$len" || fail "clone does not read the source"

log "buffered read of everything"
drop_caches
want=$(head -c $((len * 512)) "$src" | sha256sum)
got=$(sha256sum <"$clone")
assert_eq "${got%% *}" "${want%% *}" "sha256 of a buffered read of the clone"

log "small unaligned reads"
# Single sectors, odd runs crossing region boundaries, the partial last
# region and the very last sector.
for spec in "0 1" "1 3" "63 2" "127 130" "1001 7" "4095 1" "4097 513" \
	"$((len - 43)) 43" "$((len - 44)) 2" "$((len - 1)) 1" "$((len - 300)) 300"; do
	# shellcheck disable=SC2086 # split into its words
	set -- $spec
	a=$(dd if="$clone" bs=512 skip="$1" count="$2" iflag=direct status=none | sha256sum)
	b=$(dd if="$src" bs=512 skip="$1" count="$2" iflag=direct status=none | sha256sum)
	assert_eq "$a" "$b" "sectors $1+$2 of the clone"
	check_pattern "$clone" 1 "$1" "$2" || fail "sectors $1+$2"
done
# One read bigger than the dm device's own read splitting: 4 MiB at once.
a=$(dd if="$clone" bs=4M skip=1 count=1 iflag=direct status=none | sha256sum)
b=$(dd if="$src" bs=4M skip=1 count=1 iflag=direct status=none | sha256sum)
assert_eq "$a" "$b" "a 4 MiB read"

log "nothing hydrated, nothing written"
# Let the periodic commit and the worker run, then look again.
dmsetup suspend c
dmsetup resume c
check_pattern "$clone" 1 0 "$len" || fail "clone does not read the source after a resume"
st=$(clone_status c)
assert_eq "$(clone_hydrated c)" 0 "hydrated after reading everything: $st"
assert_eq "$(clone_hydrating c)" 0 "in flight after reading everything: $st"
assert_eq "$(clone_features c)" no_hydration "features: $st"
dm_remove c
check_pattern "$dest" 9 || fail "the destination changed although nothing was written"
check_pattern "$src" 1 || fail "the source changed"
log "ok"
