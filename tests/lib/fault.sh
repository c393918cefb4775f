# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the fault matrix tests (tests/050-059) and the stress test.
# Source after lib/common.sh and lib/persistence.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/persistence.sh"
#	. "$(dirname "$0")/lib/fault.sh"
#
# Every I/O helper here runs under `timeout`, so a hang fails the test
# with a message instead of running into the test's timeout:
#
#   setup:    fault_setup
#   tables:   flakey_dead_table flakey_flap_table
#   I/O:      io_read io_write expect_eio_read expect_eio_write
#             expect_ok_read expect_ok_write timed
#   state:    assert_mode assert_no_event clone_log_lines assert_no_flood
#   teardown: remove_and_unload

# Seconds any single user I/O may take before it counts as a hang.
FAULT_IO_TIMEOUT=${FAULT_IO_TIMEOUT:-30}

# ---------------------------------------------------------------- setup

# fault_setup [--no-src] [--no-ref] [--no-fill-dest]: the fault tests'
# shared start. Needs dm-clone, dmclone-pattern, dd and timeout (the test
# skips without them); sets rs=32 (16 KiB regions) and nr=1024 (regions);
# makes loop devices: the source $src (16 MiB, pattern 1; not with
# --no-src), the reference $ref (16 MiB, pattern 1: what the clone must
# read back; not with --no-ref), the destination $dest (16 MiB, pattern 9;
# left blank with --no-fill-dest) and the metadata device $meta (4 MiB).
# A test that puts dm-flakey over one of them keeps the loop device under
# another name (destloop=$dest).
# shellcheck disable=SC2034 # the variables are the calling test's
fault_setup() {
	local with_src=1 with_ref=1 fill_dest=1
	while [ $# -gt 0 ]; do
		case "$1" in
		--no-src) with_src=0 ;;
		--no-ref) with_ref=0 ;;
		--no-fill-dest) fill_dest=0 ;;
		*) fail "usage: fault_setup [--no-src] [--no-ref] [--no-fill-dest], not '$1'" ;;
		esac
		shift
	done
	need_module
	need_cmd dmclone-pattern dd timeout
	rs=32
	nr=1024
	[ $with_src = 1 ] && src=$(mkdev src 16)
	dest=$(mkdev dest 16)
	meta=$(mkdev meta 4)
	[ $with_ref = 1 ] && ref=$(mkdev ref 16)
	[ $with_src = 1 ] && fill_pattern "$src" 1
	[ $with_ref = 1 ] && fill_pattern "$ref" 1
	[ $fill_dest = 1 ] && fill_pattern "$dest" 9
	return 0
}

# ---------------------------------------------------------------- tables

# flakey_dead_table DEV: all of DEV through dm-flakey, permanently "down"
# with no feature: every read and every write fails with EIO (the 6.1
# dm-flakey has no error_reads; without features it errors all I/O).
flakey_dead_table() { echo "0 $(dev_sectors "$1") flakey $1 0 0 1"; }

# flakey_flap_table DEV UP DOWN: DEV alternately healthy for UP seconds and
# failing every I/O for DOWN seconds.
flakey_flap_table() { echo "0 $(dev_sectors "$1") flakey $1 0 $2 $3"; }

# ---------------------------------------------------------------- I/O

# timed SECONDS CMD...: run CMD; fail the test if it has not returned
# within SECONDS (a hang); otherwise return CMD's status.
timed() {
	local t=$1 rc=0
	shift
	timeout -k 5 "$t" "$@" || rc=$?
	[ $rc != 124 ] && [ $rc != 137 ] || fail "hang: '$*' did not return within $t s"
	return $rc
}

# io_read DEV START COUNT: one O_DIRECT read of COUNT sectors at START,
# bounded by FAULT_IO_TIMEOUT. dd's message goes to stdout.
io_read() {
	timed "$FAULT_IO_TIMEOUT" dd if="$1" of=/dev/null bs=$(($3 * 512)) count=1 \
		skip=$(($2 * 512)) iflag=direct,skip_bytes status=none 2>&1 </dev/null
}

# io_write DEV START COUNT SEED: one O_DIRECT write of COUNT sectors of
# pattern SEED at START, then fsync, bounded by FAULT_IO_TIMEOUT.
io_write() {
	local tmp=$TEST_TMP/io_write.$$ rc=0
	dmclone-pattern gen "$4" "$2" "$3" >"$tmp"
	timed "$FAULT_IO_TIMEOUT" dd if="$tmp" of="$1" bs=$(($3 * 512)) count=1 \
		seek=$(($2 * 512)) oflag=direct,seek_bytes conv=notrunc,fsync \
		status=none 2>&1 </dev/null || rc=$?
	rm -f "$tmp"
	return $rc
}

# expect_eio_read DEV START COUNT WHAT: the read must fail with EIO.
expect_eio_read() {
	local out
	if out=$(io_read "$1" "$2" "$3"); then
		fail "$4: read of sectors $2+$3 succeeded, expected EIO"
	fi
	assert_match "$out" "Input/output error" "$4: error of the read of sectors $2+$3"
}

# expect_eio_write DEV START COUNT SEED WHAT: the write (or its fsync)
# must fail with EIO.
expect_eio_write() {
	local out
	if out=$(io_write "$1" "$2" "$3" "$4"); then
		fail "$5: write of sectors $2+$3 succeeded, expected EIO"
	fi
	assert_match "$out" "Input/output error" "$5: error of the write of sectors $2+$3"
}

# expect_ok_read DEV START COUNT WHAT, expect_ok_write DEV START COUNT SEED
# WHAT: the I/O must succeed.
expect_ok_read() {
	local out
	out=$(io_read "$1" "$2" "$3") || fail "$4: read of sectors $2+$3 failed: $out"
}
expect_ok_write() {
	local out
	out=$(io_write "$1" "$2" "$3" "$4") || fail "$5: write of sectors $2+$3 failed: $out"
}

# ---------------------------------------------------------------- state

# assert_mode NAME MODE WHAT: the status mode (rw, ro, Fail), read without
# forcing a commit.
assert_mode() {
	local m
	m=$(clone_status_noflush "$1" | awk '{ print $NF }')
	assert_eq "$m" "$2" "${3:-mode of $1}"
}

# assert_no_event NAME EVENT_NR WHAT: no dm event was raised since
# event_nr returned EVENT_NR.
assert_no_event() {
	assert_eq "$(event_nr "$1")" "$2" "${3:-dm event counter of $1}"
}

# clone_log_lines: the number of kernel log lines from the clone target
# ("device-mapper: clone: ...") since the last log_mark.
clone_log_lines() { log_since_mark | grep -c 'device-mapper: clone' || true; }

# ---------------------------------------------------------------- teardown

# remove_and_unload NAME...: remove the dm devices NAME... (each within
# 30 s), then unload dm-clone: no clone may keep the module busy.
remove_and_unload() {
	local n t0
	for n in "$@"; do
		t0=$SECONDS
		timed 30 dmsetup remove "$n" || fail "dmsetup remove $n failed"
		_dmc_unregister dm "$n"
		log "removed $n in $((SECONDS - t0)) s"
	done
	timed 30 modprobe -r dm-clone || fail "dm-clone cannot be unloaded: $(lsmod | grep dm_clone)"
	! grep -q '^dm_clone ' /proc/modules || fail "dm-clone still loaded after modprobe -r"
	log "dm-clone unloaded"
}

# assert_no_flood WHAT MAX: since the last log_mark, each kind of clone
# kernel log line (the line with its numbers blanked) appears at most MAX
# times (callers allow for the rate limit of DMERR_LIMIT, 10 lines per
# 5 s per call site, plus a line per failing pass), and once hundreds of
# copies failed, the per-copy lines are a small fraction of the failures
# (the count the lines carry): the log grows with time, not with failures.
assert_no_flood() {
	local what=$1 max=$2 n failures kinds worst copies
	n=$(clone_log_lines)
	failures=$(log_since_mark | sed -n 's/.*failed copies so far: \([0-9]*\).*/\1/p; s/.*: \([0-9]*\) region copies failed so far.*/\1/p' |
		sort -n | tail -n 1)
	failures=${failures:-0}
	kinds=$(log_since_mark | sed -n 's/.*device-mapper: clone: [0-9]*:[0-9]*: //p' |
		sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn)
	log "$what: $n clone log lines for $failures failed copies; by kind:"
	echo "$kinds" | sed -n 's/^/    /; 1,6p'
	worst=$(echo "$kinds" | awk 'NR == 1 { print $1 + 0 }')
	[ "${worst:-0}" -le "$max" ] || fail "$what: one kind of clone log line $worst times (more than $max): a flood"
	copies=$(log_since_mark | grep -c 'device-mapper: clone: .*copying region' || true)
	[ "$failures" -lt 200 ] || [ $((copies * 10)) -le "$failures" ] ||
		fail "$what: $copies log lines for $failures failed copies: not rate-limited"
}
