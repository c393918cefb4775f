# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the dm-clone tests. A test is tests/NNN-what-it-checks.sh,
# runs as root inside the test guest (tests/run boots it) and starts with:
#
#	#!/bin/bash
#	# What the test checks, in a sentence or two.
#	# timeout: 120            (optional, seconds; default 300)
#	. "$(dirname "$0")/lib/common.sh"
#
# Sourcing this file sets `set -eEuo pipefail` (a failing command fails
# the test and prints where), and installs an exit trap that removes
# every device the helpers created: dm devices (in reverse order of
# creation), loop devices and their backing files, brd. Register more
# cleanup with `on_exit CMD...`. Exit 0 = pass, 77 = skip (use `skip`),
# anything else = fail. The runner also fails a test whose kernel log has
# a warning, oops, lockdep report, hung task etc. (lib/kernel-log-patterns).
#
# Sizes are in 512-byte sectors unless a name says MB (MiB). Devices are
# loop devices over files in /tmp (a tmpfs in guest memory: keep the sum
# of all devices of a test well under 2 GiB). They support discard.
#
# Helpers, by group (each is documented where it is defined):
#   flow:      log fail skip on_exit need_module need_cmd
#   devices:   mkdev mkdev_sectors mkbrd dev_sectors dev_majmin drop_caches
#   data:      fill_pattern check_pattern cmp_dev identify_dev zero_dev
#   dm:        dm_create dm_remove dm_reload dm_message dm_status dm_table
#              dm_table_load_should_fail log_mark log_since_mark
#   clone:     clone_table clone_create clone_status status_field
#              clone_hydrated clone_regions clone_hydrating clone_mode
#              clone_features clone_core_arg clone_md_used clone_md_total
#              wait_hydrated wait_for
#   asserts:   assert_eq assert_ne assert_match assert_fail

set -eEuo pipefail
export DM_DISABLE_UDEV=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
TEST_TMP=${TEST_TMP:-$(mktemp -d /tmp/dmclone-test.XXXXXX)}
# Cleanup is recorded in a file, so that helpers called in a subshell
# (dev=$(mkdev ...)) register it too.
_DMC_CLEANUP=$TEST_TMP/.cleanup
_DMC_DEVDIR=$TEST_TMP/devices
_DMC_START=$SECONDS
mkdir -p "$_DMC_DEVDIR"
: >"$_DMC_CLEANUP"

# ---------------------------------------------------------------- flow

# log MSG...: print MSG with the seconds since the test started.
log() { printf '[%4ds] %s\n' $((SECONDS - _DMC_START)) "$*"; }

# fail MSG...: fail the test with MSG.
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# skip REASON...: skip the test (exit 77); the runner shows REASON.
skip() {
	echo "SKIP: $*"
	exit 77
}

# on_exit CMD...: run CMD (a shell command line) at exit, before the
# devices are removed; the last registered runs first.
on_exit() { printf 'cmd %s\n' "$*" >>"$_DMC_CLEANUP"; }

_dmc_register() { printf '%s %s\n' "$1" "$2" >>"$_DMC_CLEANUP"; }
_dmc_unregister() {
	local tmp=$_DMC_CLEANUP.tmp
	grep -v -x -F "$1 $2" "$_DMC_CLEANUP" >"$tmp" || true
	mv "$tmp" "$_DMC_CLEANUP"
}

# Undo everything registered, last first. Never fails.
_dmc_cleanup() {
	local rc=$? kind arg
	set +eE
	trap - ERR
	if [ -s "$_DMC_CLEANUP" ]; then
		while read -r kind arg <&3; do
			case "$kind" in
			cmd) eval "$arg" ;;
			dm) _dmc_remove_dm "$arg" ;;
			loop) losetup -d "$arg" 2>/dev/null ;;
			file) rm -f "$arg" ;;
			module) modprobe -r "$arg" 2>/dev/null ;;
			esac
		done 3< <(tac "$_DMC_CLEANUP")
	fi
	rm -rf "$_DMC_DEVDIR"
	return $rc
}
trap _dmc_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR

# need_module [NAME] [PARAMS...]: load a kernel module (default dm-clone,
# which pulls in dm-persistent-data, dm-bufio, dm-mod), or skip the test
# when the module does not exist. dm-clone stays loaded until the runner
# unloads it after the test; other modules loaded here are unloaded at exit.
need_module() {
	local m=${1:-dm-clone}
	[ $# -gt 0 ] && shift
	if ! modinfo "$m" >/dev/null 2>&1; then
		skip "kernel module $m is not available"
	fi
	local loaded
	loaded=$(tr - _ <<<"$m")
	if grep -q "^$loaded " /proc/modules; then
		[ $# -eq 0 ] && return 0
		modprobe -r "$m" || fail "cannot reload $m with $*"
	fi
	modprobe "$m" "$@" || fail "modprobe $m $* failed"
	[ "$m" = dm-clone ] || _dmc_register module "$m"
}

# need_cmd CMD...: skip the test if a command is missing.
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "command $c is not available"
	done
}

# ---------------------------------------------------------------- devices

# mkdev NAME SIZE_MB [LOGICAL_BLOCK_SIZE]: create a loop device over a file
# of SIZE_MB MiB in the guest's tmpfs, print its path (/dev/loopN). The
# device supports discard (holes are punched in the file) and starts
# zeroed. LOGICAL_BLOCK_SIZE is 512 (default) or 4096, etc. Removed at exit.
mkdev() {
	mkdev_sectors "$1" $(($2 * 2048)) "${3:-}"
}

# mkdev_sectors NAME SECTORS [LOGICAL_BLOCK_SIZE]: like mkdev, size in sectors.
mkdev_sectors() {
	local name=$1 sectors=$2 bs=${3:-} file dev
	file=$_DMC_DEVDIR/$name.img
	[ -e "$file" ] && fail "mkdev: device $name exists already"
	modprobe loop 2>/dev/null || true
	truncate -s $((sectors * 512)) "$file"
	_dmc_register file "$file"
	dev=$(losetup --show -f ${bs:+--sector-size "$bs"} "$file") ||
		fail "mkdev: losetup failed for $name"
	_dmc_register loop "$dev"
	echo "$dev"
}

# mkbrd COUNT SIZE_MB: load brd with COUNT RAM disks of SIZE_MB MiB each and
# print their paths (/dev/ram0 ...). brd has no discard support on 6.1.
# brd is unloaded at exit (its memory freed).
mkbrd() {
	local i
	grep -q '^brd ' /proc/modules && fail "mkbrd: brd is loaded already"
	modprobe brd rd_nr="$1" rd_size=$(($2 * 1024)) max_part=0 || fail "cannot load brd"
	_dmc_register module brd
	for ((i = 0; i < $1; i++)); do echo "/dev/ram$i"; done
}

# dev_sectors DEV: size of a block device in 512-byte sectors.
dev_sectors() { blockdev --getsz "$1"; }

# dev_majmin DEV: "major:minor" of a block device (as `dmsetup table` prints).
dev_majmin() {
	local st
	st=$(stat -L -c '%t %T' "$1")
	# shellcheck disable=SC2086 # major and minor, split
	set -- $st
	echo "$((16#$1)):$((16#$2))"
}

# drop_caches: write back and drop the page cache (of all devices).
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- data

# The data helpers use dmclone-pattern (tests/lib/pattern.c): every sector
# of pattern SEED at sector N is a pure function of (SEED, N) with a header
# naming both, so a sector in the wrong place is reported as, e.g.,
# "expected seed 1 sector 2048, found seed 1 sector 0" or "found zeros".
# I/O is O_DIRECT (no stale page cache between the layers of a stack).

# fill_pattern DEV [SEED [START COUNT]]: write pattern SEED (default 1) to
# COUNT sectors from sector START (default: the whole device), then fsync.
fill_pattern() {
	local dev=$1 seed=${2:-1} start=${3:-0} count=${4:-}
	count=${count:-$(($(dev_sectors "$dev") - start))}
	dmclone-pattern write "$dev" "$seed" "$start" "$count"
}

# check_pattern DEV [SEED [START COUNT]]: check that the sectors hold pattern
# SEED; on a mismatch print the differing runs and return 1.
check_pattern() {
	local dev=$1 seed=${2:-1} start=${3:-0} count=${4:-}
	count=${count:-$(($(dev_sectors "$dev") - start))}
	dmclone-pattern check "$dev" "$seed" "$start" "$count" || {
		echo "check_pattern $dev seed $seed sectors $start+$count: mismatch (above)" >&2
		return 1
	}
}

# cmp_dev A B [SECTORS [START_A [START_B]]]: byte-exact comparison of SECTORS
# sectors (default: the smaller device) of A from START_A and of B from
# START_B (default 0). On a mismatch print the differing runs (sector
# numbers relative to the starts), return 1.
cmp_dev() {
	local a=$1 b=$2 n=${3:-} sa=${4:-0} sb=${5:-0} na nb
	if [ -z "$n" ]; then
		na=$(($(dev_sectors "$a") - sa))
		nb=$(($(dev_sectors "$b") - sb))
		n=$((na < nb ? na : nb))
	fi
	dmclone-pattern cmp "$a" "$b" "$n" "$sa" "$sb" || {
		echo "cmp_dev $a $b: $n sectors differ (above)" >&2
		return 1
	}
}

# identify_dev DEV [START COUNT]: print a map of what DEV holds, one line per
# run ("0-2047: seed 1 sectors 0-2047", "2048-4095: zeros"). For diagnostics.
identify_dev() {
	local dev=$1 start=${2:-0} count=${3:-}
	count=${count:-$(($(dev_sectors "$dev") - start))}
	dmclone-pattern identify "$dev" "$start" "$count"
}

# zero_dev DEV: write zeros over the whole device.
zero_dev() { blkdiscard -z "$1"; }

# ---------------------------------------------------------------- dm

# dm_create NAME TABLE: create (and resume) a dm device, removed at exit.
# TABLE may hold several lines. Prints nothing; the device is
# /dev/mapper/NAME.
dm_create() {
	dmsetup create "$1" --table "$2" || fail "dmsetup create $1 failed: $2"
	_dmc_register dm "$1"
}

_dmc_remove_dm() {
	dmsetup info "$1" >/dev/null 2>&1 || return 0
	dmsetup remove "$1" >/dev/null 2>&1 && return 0
	dmsetup resume "$1" >/dev/null 2>&1
	dmsetup remove --retry "$1" >/dev/null 2>&1 && return 0
	dmsetup remove --force "$1"
}

# dm_remove NAME: remove a dm device now (resuming it if suspended).
dm_remove() {
	_dmc_remove_dm "$1" || fail "cannot remove $1"
	_dmc_unregister dm "$1"
}

# dm_reload NAME TABLE: load a new table and swap it in (suspend, resume).
dm_reload() {
	dmsetup reload "$1" --table "$2" || return 1
	dmsetup suspend "$1"
	dmsetup resume "$1"
}

# dm_message NAME MSG...: send a target message (sector 0).
dm_message() {
	local n=$1
	shift
	dmsetup message "$n" 0 "$@"
}

# dm_status NAME, dm_table NAME: the raw dmsetup lines.
dm_status() { dmsetup status "$1"; }
dm_table() { dmsetup table "$1"; }

# log_mark: put a marker into the kernel log; log_since_mark prints the
# kernel log lines after the last marker (for checking kernel messages).
log_mark() {
	_DMC_MARK="dmclone-test: mark $TEST_NAME $RANDOM$RANDOM"
	echo "$_DMC_MARK" >/dev/kmsg
}
log_since_mark() {
	dmesg | awk -v m="${_DMC_MARK:?log_mark first}" 'f; index($0, m) {f = 1}'
}

# log_grep [GREP-OPTION...] PATTERN: true if a kernel log line since the
# mark matches. grep reads to the end (no -q): with pipefail, a grep that
# stops at the first match would fail the pipeline by SIGPIPE whenever the
# log is still being written out.
log_grep() {
	log_since_mark | grep "$@" >/dev/null
}

# dm_table_load_should_fail NAME TABLE: creating a device NAME with TABLE
# must fail. Prints the kernel's reason (the "device-mapper: table: ..."
# lines), so a test can check ti->error. A device that gets created anyway
# is removed and the test fails.
dm_table_load_should_fail() {
	log_mark
	if dmsetup create "$1" --table "$2" >/dev/null 2>&1; then
		_dmc_remove_dm "$1"
		fail "table load succeeded but should have failed: $2"
	fi
	dmsetup remove "$1" >/dev/null 2>&1 || true	# an inactive leftover
	log_since_mark | sed -n 's/.*device-mapper: table: //p'
}

# ---------------------------------------------------------------- clone

# clone_table META DEST SRC REGION [WORDS...]: print a one-segment clone
# table line over the whole source (CLONE_LEN=sectors to override).
clone_table() {
	local meta=$1 dest=$2 src=$3 region=$4 len
	shift 4
	len=${CLONE_LEN:-$(dev_sectors "$src")}
	echo "0 $len clone $meta $dest $src $region${*:+ $*}"
}

# clone_create NAME META DEST SRC REGION [WORDS...]: create a clone device
# /dev/mapper/NAME over the whole source; WORDS are appended to the table
# (for example: 1 no_hydration, or 2 no_hydration no_discard_passdown 2
# hydration_threshold 4). Needs the module (need_module).
clone_create() {
	local name=$1
	shift
	dm_create "$name" "$(clone_table "$@")"
}

# clone_status NAME: the clone target's status words (without "start len
# clone"), from the first clone segment of NAME.
clone_status() {
	dmsetup status "$1" | awk '$3 == "clone" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }'
}

# status_field NAME N: word N (1-based) of clone_status.
status_field() { clone_status "$1" | awk -v n="$2" '{ print $n }'; }

# Accessors for the status fields (see Documentation/dm-clone.rst, "Status"):
#   <md block size> <used>/<total md> <region size> <hydrated>/<regions>
#   <hydrating> <#features> <features>* <#core> <key> <value>... <mode>
clone_md_used() { status_field "$1" 2 | cut -d/ -f1; }
clone_md_total() { status_field "$1" 2 | cut -d/ -f2; }
clone_hydrated() { status_field "$1" 4 | cut -d/ -f1; }
clone_regions() { status_field "$1" 4 | cut -d/ -f2; }
clone_hydrating() { status_field "$1" 5; }
# clone_mode NAME: rw, ro, or Fail.
clone_mode() { clone_status "$1" | awk '{ print $NF }'; }
# clone_features NAME: the live feature words, space separated (may be empty).
clone_features() {
	clone_status "$1" | awk '{ n = $6; s = ""; for (i = 7; i < 7 + n; i++) s = s (s ? " " : "") $i; print s }'
}
# clone_core_arg NAME KEY: the value printed after KEY (hydration_threshold,
# hydration_batch_size).
clone_core_arg() {
	clone_status "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}

# slow_kernel: true on a kernel slowed down by its debugging options
# (tests/run scales the timeouts there: DMCLONE_TIMEOUT_SCALE above 1).
# A test may then take a sample of its cases of one kind: what the debug
# kernel adds (KASAN, lockdep, kmemleak) looks at the code paths, which
# one case of a kind takes as well as all of them; the other kernels run
# every case.
slow_kernel() { [ "${DMCLONE_TIMEOUT_SCALE:-1}" -gt 1 ]; }

# sample_cases WORD...: the words; on a slow kernel, the first, the last
# and every fourth between them.
sample_cases() {
	local i=0 w
	if ! slow_kernel; then
		printf '%s\n' "$@"
		return
	fi
	for w in "$@"; do
		if [ $((i % 4)) = 0 ] || [ $((i + 1)) = $# ]; then
			printf '%s\n' "$w"
		fi
		i=$((i + 1))
	done
}

# wait_for TIMEOUT CMD...: poll CMD every 0.2 s until it succeeds; return 1
# after TIMEOUT seconds (times DMCLONE_TIMEOUT_SCALE, set by tests/run for
# slow kernels, like the default of wait_hydrated).
wait_for() {
	local end=$((SECONDS + $1 * ${DMCLONE_TIMEOUT_SCALE:-1}))
	shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
}

# wait_hydrated NAME [TIMEOUT]: wait until every region is hydrated (default
# timeout 120 s); fails the test on timeout or if the clone leaves rw mode.
wait_hydrated() {
	local name=$1 end=$((SECONDS + ${2:-120} * ${DMCLONE_TIMEOUT_SCALE:-1})) st mode
	while :; do
		st=$(clone_status "$name")
		mode=$(awk '{ print $NF }' <<<"$st")
		[ "$mode" = rw ] || fail "wait_hydrated $name: mode is $mode: $st"
		# shellcheck disable=SC2086 # the status line, split into its words
		set -- $st
		[ "${4%/*}" = "${4#*/}" ] && return 0
		[ $SECONDS -ge $end ] && fail "wait_hydrated $name: timeout, status: $st"
		sleep 0.2
	done
}

# dump_runs META: the hydrated runs clone_dump lists for the metadata
# device META, one "BEGIN LENGTH" line each (regions).
dump_runs() {
	clone_dump "$1" | awk '
		match($0, /begin="[0-9]+"/) {
			b = substr($0, RSTART + 7, RLENGTH - 8)
			match($0, /length="[0-9]+"/)
			print b, substr($0, RSTART + 8, RLENGTH - 9)
		}'
}

# ---------------------------------------------------------------- asserts

# assert_eq ACTUAL EXPECTED [WHAT]: fail unless equal.
assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}

# assert_ne ACTUAL UNEXPECTED [WHAT]: fail if equal.
assert_ne() {
	[ "$1" != "$2" ] || fail "${3:-value}: got '$1', expected anything else"
}

# assert_match STRING REGEX [WHAT]: fail unless STRING matches the ERE.
assert_match() {
	[[ $1 =~ $2 ]] || fail "${3:-value}: '$1' does not match /$2/"
}

# assert_fail CMD...: CMD must fail (exit non-zero).
assert_fail() {
	if "$@" >/dev/null 2>&1; then
		fail "command should have failed: $*"
	fi
	return 0
}
