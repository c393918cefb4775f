# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the persistence, reload and failure tests (tests/040-059).
# Source after lib/common.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/persistence.sh"
#
#   reference:  ref_write
#   devices:    dev_sum dm_swap event_nr clone_status_noflush
#   tables:     delay_table flakey_table linear_table
#   dd:         dd_read dd_write
#   waiting:    hydrated_at_least clone_idle
#   checks:     check_clone

# ---------------------------------------------------------------- reference

# ref_write DEV REF SEED START COUNT: write COUNT sectors of pattern SEED at
# sector START to DEV (the clone) and to REF (a plain device holding what
# the clone must read back). Fails the test if the write to DEV fails.
ref_write() {
	local dev=$1 ref=$2 seed=$3 start=$4 count=$5
	fill_pattern "$dev" "$seed" "$start" "$count" ||
		fail "write of seed $seed sectors $start+$count to $dev failed"
	fill_pattern "$ref" "$seed" "$start" "$count" >/dev/null
}

# ---------------------------------------------------------------- devices

# dev_sum DEV: sha256 of the whole device, read with O_DIRECT (past any
# page cache), for "this device was not touched" checks.
dev_sum() {
	dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1
}

# dm_swap NAME TABLE: load TABLE into the inactive slot of NAME and swap it
# in (suspend, resume), failing the test on error.
dm_swap() {
	dmsetup load "$1" --table "$2" || fail "dmsetup load $1 failed: $2"
	dmsetup suspend "$1" || fail "dmsetup suspend $1 failed"
	dmsetup resume "$1" || fail "dmsetup resume $1 failed"
}

# event_nr NAME: the dm event counter of NAME.
event_nr() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }

# clone_status_noflush NAME: like clone_status, but the query does not
# commit (dmsetup status --noflush).
clone_status_noflush() {
	dmsetup status --noflush "$1" |
		awk '$3 == "clone" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }'
}

# ---------------------------------------------------------------- tables

# linear_table DEV: a table mapping all of DEV.
linear_table() { echo "0 $(dev_sectors "$1") linear $1 0"; }

# delay_table DEV MS: all of DEV, every I/O delayed by MS milliseconds
# (dm-delay; need_module dm-delay first).
delay_table() { echo "0 $(dev_sectors "$1") delay $1 0 $2"; }

# flakey_table DEV MODE: all of DEV through dm-flakey (need_module
# dm-flakey first). MODE: up (pass everything), error_writes (writes and
# flushes fail with EIO, reads pass), drop_writes (writes and flushes
# "succeed" without reaching DEV, reads pass).
flakey_table() {
	local n
	n=$(dev_sectors "$1")
	case "$2" in
	up) echo "0 $n flakey $1 0 1 0" ;;
	error_writes | drop_writes) echo "0 $n flakey $1 0 0 1 1 $2" ;;
	*) fail "flakey_table: unknown mode $2" ;;
	esac
}

# ---------------------------------------------------------------- dd

# dd_read DEV START COUNT: read COUNT sectors at START with O_DIRECT to
# /dev/null. Returns dd's status; its error message goes to stdout (so a
# caller can capture it).
dd_read() {
	dd if="$1" of=/dev/null bs=$(($3 * 512)) count=1 skip=$(($2 * 512)) iflag=direct,skip_bytes status=none 2>&1 </dev/null
}

# dd_write DEV START COUNT [SEED]: write COUNT sectors of pattern SEED
# (default 3) at START with O_DIRECT, one write. Returns dd's status; its
# error message goes to stdout.
dd_write() {
	local tmp=$TEST_TMP/dd_write.$$ rc=0
	dmclone-pattern gen "${4:-3}" "$2" "$3" >"$tmp"
	dd if="$tmp" of="$1" bs=$(($3 * 512)) count=1 seek=$(($2 * 512)) \
		oflag=direct,seek_bytes conv=notrunc status=none 2>&1 </dev/null || rc=$?
	rm -f "$tmp"
	return $rc
}

# ---------------------------------------------------------------- waiting

# hydrated_at_least NAME N: true once the clone reports N or more hydrated
# regions (for wait_for).
hydrated_at_least() { [ "$(clone_hydrated "$1")" -ge "$2" ]; }
hydrated_is() { [ "$(clone_hydrated "$1")" = "$2" ]; }

# clone_idle NAME: true when no region copy is in flight (for wait_for).
clone_idle() { [ "$(clone_hydrating "$1")" = 0 ]; }

# ---------------------------------------------------------------- checks

# check_clone DEV ACKED WHAT NACKED: after a power cut, every sector of DEV
# (the clone) holds pattern 1 (the source's) or 2 (the user's) at its own
# place, and the first NACKED writes listed in the file ACKED ("START
# COUNT" lines, the writes acknowledged before the cut) are there. WHAT
# names the check in failures.
check_clone() {
	local dev=$1 acked=$2 what=$3 n=$4 bad start count
	bad=$(identify_dev "$dev" | awk '{
		split($1, a, /[-:]/); split($5, b, "-")
		if (!(NF == 5 && $2 == "seed" && ($3 == 1 || $3 == 2) && a[1] == b[1] && a[2] == b[2]))
			print
	}')
	if [ -n "$bad" ]; then
		echo "$bad" | head -n 20 >&2
		fail "$what: sectors holding neither the source's nor the user's data (above)"
	fi
	while read -r start count; do
		check_pattern "$dev" 2 "$start" "$count" >/dev/null ||
			fail "$what: acknowledged write of sectors $start+$count is lost"
	done < <(head -n "$n" "$acked")
}
