# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the control-interface tests (tests/010-019: table lines,
# status, messages, events, module parameter). Source after common.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/control.sh"
#
#   parse_status STRING        split a clone status line (strict grammar)
#   clone_parse NAME           parse_status of NAME's clone segment
#   clone_parse_inactive NAME  the same for the inactive table
#   wipe_md DEV                make the next load format fresh metadata
#   create_should_fail NAME TABLE REGEX
#                              a create must fail with a kernel reason
#                              matching REGEX and leave no device behind
#   regions_of LEN REGION      ceil(LEN / REGION)
#   assert_hydrated_stays NAME N SAMPLES
#                              the hydrated count stays N and nothing is
#                              in flight over SAMPLES status samples
#   slow_dev NAME DEV MS       a dm-delay device over DEV (reads and
#                              writes delayed by MS milliseconds, times
#                              DMCLONE_TIMEOUT_SCALE)
#   hydrated_at_least NAME N, hydrating_is NAME N
#                              predicates for wait_for

# The status grammar of Documentation/dm-clone.rst ("Status"), word for
# word: numbers are decimal without leading zeros, the feature words are
# the two known ones, the core arguments are always the four words in
# this order.
_N='(0|[1-9][0-9]*)'
CLONE_STATUS_RE="^8 $_N/$_N $_N $_N/$_N $_N $_N((( no_hydration)|( no_discard_passdown))*) 4 hydration_threshold $_N hydration_batch_size $_N (rw|ro)\$"

# parse_status STRING: check STRING against the status grammar and set
# ST_MD_USED ST_MD_TOTAL ST_REGION ST_HYDRATED ST_REGIONS ST_HYDRATING
# ST_NFEATURES ST_FEATURES (sorted, space separated) ST_T ST_B ST_MODE.
# Returns 1 (with a message on stderr) if the line breaks the grammar:
# a bad word, a feature count that differs from the words that follow,
# a feature given twice.
# shellcheck disable=SC2034
parse_status() {
	local s=$1 words
	if ! [[ $s =~ $CLONE_STATUS_RE ]]; then
		echo "status breaks the grammar: '$s'" >&2
		return 1
	fi
	ST_MD_USED=${BASH_REMATCH[1]}
	ST_MD_TOTAL=${BASH_REMATCH[2]}
	ST_REGION=${BASH_REMATCH[3]}
	ST_HYDRATED=${BASH_REMATCH[4]}
	ST_REGIONS=${BASH_REMATCH[5]}
	ST_HYDRATING=${BASH_REMATCH[6]}
	ST_NFEATURES=${BASH_REMATCH[7]}
	words=${BASH_REMATCH[8]}
	ST_T=${BASH_REMATCH[12]}
	ST_B=${BASH_REMATCH[13]}
	ST_MODE=${BASH_REMATCH[14]}
	# shellcheck disable=SC2086
	set -- $words
	if [ "$#" != "$ST_NFEATURES" ]; then
		echo "status: feature count $ST_NFEATURES but $# feature words: '$s'" >&2
		return 1
	fi
	ST_FEATURES=$(printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ *$//')
	if [ -n "$ST_FEATURES" ] &&
		[ "$(printf '%s\n' "$@" | sort -u | wc -l)" != "$#" ]; then
		echo "status: a feature word appears twice: '$s'" >&2
		return 1
	fi
	return 0
}

# clone_parse NAME: parse_status of the status of NAME's first clone
# segment; fails the test if there is none or it breaks the grammar.
clone_parse() {
	local st
	st=$(clone_status "$1")
	[ -n "$st" ] || fail "$1: no clone segment in 'dmsetup status': $(dmsetup status "$1" 2>&1)"
	parse_status "$st" || fail "$1: bad status line"
}

# clone_parse_inactive NAME: the same for the inactive table (dmsetup
# status --inactive).
clone_parse_inactive() {
	local st
	st=$(dmsetup status --inactive "$1" |
		awk '$3 == "clone" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }')
	[ -n "$st" ] || fail "$1: no clone segment in the inactive table"
	parse_status "$st" || fail "$1: bad status line (inactive table)"
}

# wipe_md DEV: zero the first 4 KiB of DEV, so that the next table load
# formats fresh metadata (for another region size or length).
wipe_md() {
	dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct conv=notrunc status=none
}

# create_should_fail NAME TABLE REGEX: `dmsetup create NAME` with TABLE
# must fail, the kernel's reason (lower-cased) must match the ERE REGEX,
# and no device NAME may be left behind. Prints the reason.
create_should_fail() {
	local name=$1 table=$2 re=$3 why low
	why=$(dm_table_load_should_fail "$name" "$table") || exit 1
	low=$(tr '[:upper:]' '[:lower:]' <<<"$why")
	[[ $low =~ $re ]] ||
		fail "table '$table' failed, but the kernel's reason '$why' does not match /$re/"
	if dmsetup info "$name" >/dev/null 2>&1; then
		fail "table '$table' failed but left device $name behind: $(dmsetup info "$name")"
	fi
	printf '%s\n' "$why" | head -n 1
}

# regions_of LEN REGION: number of regions of a target of LEN sectors.
regions_of() { echo $((($1 + $2 - 1) / $2)); }

# assert_hydrated_stays NAME N SAMPLES: over SAMPLES status samples, 0.2 s
# apart, the clone stays at N hydrated regions with none in flight (used
# to check that something does NOT copy, so it has to look for a while).
assert_hydrated_stays() {
	local name=$1 n=$2 i
	for ((i = 0; i < $3; i++)); do
		clone_parse "$name"
		[ "$ST_HYDRATED" = "$n" ] && [ "$ST_HYDRATING" = 0 ] ||
			fail "$name: expected $n hydrated and 0 in flight, sample $i: $(clone_status "$name")"
		sleep 0.2
	done
}

# slow_dev NAME DEV MS: create a dm-delay device /dev/mapper/NAME over the
# whole of DEV, every I/O delayed by MS milliseconds; print its path. MS
# is multiplied by DMCLONE_TIMEOUT_SCALE (see tests/run): on a slow kernel
# the tests' status sampling slows down, and the copy it observes must
# slow down alike, or it finishes before it can be observed.
slow_dev() {
	need_module dm-delay
	dm_create "$1" "0 $(dev_sectors "$2") delay $2 0 $(($3 * ${DMCLONE_TIMEOUT_SCALE:-1}))"
	echo "/dev/mapper/$1"
}

# Predicates for wait_for (which takes a command, so that the status is
# read on every try, not once when wait_for is called):
# hydrated_at_least NAME N, hydrating_is NAME N.
hydrated_at_least() { [ "$(clone_hydrated "$1")" -ge "$2" ]; }
hydrating_is() { [ "$(clone_hydrating "$1")" = "$2" ]; }
