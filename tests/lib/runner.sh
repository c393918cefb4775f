#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# In-guest test runner, started by tests/run through scripts/guest-run.sh:
#
#   runner.sh TESTDIR TEST.sh...
#
# Runs each test in turn as `bash TESTDIR/TEST.sh` in its own session and
# scratch directory, with its timeout (`# timeout: N` in the first 20 lines
# of the test, default 300 s) enforced here: at the timeout the blocked
# tasks are dumped to the kernel log (sysrq w), the test's process group
# gets SIGTERM (its cleanup trap runs), then SIGKILL. After each test the
# runner removes what the test left behind (dm devices, loop devices,
# brd/scsi_debug/null_blk, dm-clone), collects the kernel log lines the
# test produced (dmesg -c) and fails the test if one of them matches
# lib/kernel-log-patterns.
#
# On a kernel with kmemleak (the debug kernel: /sys/kernel/debug/kmemleak),
# what boot left is scanned and cleared before the first test, and after
# each test (once its devices and modules are gone) kmemleak scans once:
# the unreferenced objects it reports join the test's kernel log lines,
# where "unreferenced object" fails the test. Automatic scanning is off in
# that kernel. kmemleak reports an object only at the second scan that
# finds it unreferenced with unchanged contents, and only once it is
# older than 5 s: so a leak shows up after the test that made it or after
# the next one (the report's "age" tells which). After the last test the
# runner waits DMCLONE_KMEMLEAK_WAIT seconds (default 5) and scans twice,
# so no leak goes unreported. One scan per test, not two, because a scan
# of this guest takes about 10 s on the debug kernel.
#
# DMCLONE_TIMEOUT_SCALE (an integer, default 1) multiplies every test's
# timeout, for slow kernels (KASAN); tests/run sets it.
#
# Protocol on stdout (parsed by tests/run; everything else is noise):
#   @@DMCLONE-DEADLINE N        (for guest-run.sh: cut off if silent N s)
#   @@TEST-START NAME TIMEOUT
#   @@O LINE                    a line of the test's output (stdout+stderr)
#   @@K LINE                    a kernel log line produced during the test
#   @@TEST-END NAME pass|fail|skip|timeout REASON
#   @@RUNNER-RESTART REASON     the guest is unusable (an unkillable test,
#                               devices that cannot be removed): tests/run
#                               runs the remaining tests in a new guest
#   @@RUNNER-DONE
set -u
testdir=$1
shift
patterns=$(grep -v '^#' "$testdir/lib/kernel-log-patterns")
default_timeout=300
# Seconds the guest may stay silent past a test's timeout (tests/run
# sets it; killing a test takes the runner up to ~30 s).
grace=${DMCLONE_RUNNER_GRACE:-120}
state=/tmp/dmclone-runner
mkdir -p "$state"
echo $$ >"$state/runner.pid"
scale=${DMCLONE_TIMEOUT_SCALE:-1}
kmemleak=/sys/kernel/debug/kmemleak
kmemleak_wait=${DMCLONE_KMEMLEAK_WAIT:-5}

kmsg() { echo "dmclone-runner: $*" >/dev/kmsg 2>/dev/null || true; }
out() { printf '@@O %s\n' "$*"; }

# group_procs PGID: "pid:state:comm" of the live (non-zombie) processes of
# a process group.
group_procs() {
	local f stat rest
	for f in /proc/[0-9]*/stat; do
		read -r stat <"$f" 2>/dev/null || continue
		rest=${stat##*) }
		# shellcheck disable=SC2086
		set -- $rest			# state ppid pgrp ...
		if [ "$3" = "$PGID_WANTED" ] && [ "$1" != Z ]; then
			f=${f#/proc/}
			printf '%s:%s:%s ' "${f%/stat}" "$1" "$(cat "/proc/${f%/stat}/comm" 2>/dev/null)"
		fi
	done
}
group_alive() { PGID_WANTED=$1; [ -n "$(group_procs)" ]; }

# wait_group_gone PGID SECONDS: wait until no live process is in the group.
wait_group_gone() {
	local end=$((SECONDS + $2))
	while group_alive "$1"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
	return 0
}

# reset_environment: remove what a test left behind. Prints what it did as
# test output; returns 1 if the guest is not clean afterwards.
reset_environment() {
	local dev ok=0 m
	for dev in $(dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}'); do
		out "[runner] removing leftover dm device $dev"
	done
	if [ -n "$(dmsetup ls 2>/dev/null | awk '$1 != "No"')" ]; then
		# Twice: stacked devices go top first, the rest on the second pass.
		dmsetup remove_all >/dev/null 2>&1
		dmsetup remove_all >/dev/null 2>&1
		if [ -n "$(dmsetup ls 2>/dev/null | awk '$1 != "No"')" ]; then
			dmsetup remove_all --force >/dev/null 2>&1
			out "[runner] cannot remove dm devices: $(dmsetup ls 2>&1 | tr '\n' ' ')"
			ok=1
		fi
	fi
	if [ -n "$(losetup -a 2>/dev/null)" ]; then
		out "[runner] detaching leftover loop devices: $(losetup -a | cut -d: -f1 | tr '\n' ' ')"
		losetup -D 2>/dev/null
		[ -z "$(losetup -a 2>/dev/null)" ] || { out "[runner] cannot detach loop devices"; ok=1; }
	fi
	for m in dm_clone brd scsi_debug null_blk; do
		grep -q "^$m " /proc/modules || continue
		rmmod "$m" 2>/dev/null || { out "[runner] cannot unload $m"; ok=1; }
	done
	return $ok
}

# kmemleak_report [full]: scan, print the unreferenced objects kmemleak
# reports now and forget them (clear). With "full", wait and scan a second
# time first, so that every object older than 5 s and unreferenced is
# reported now (see above).
kmemleak_report() {
	echo scan >"$kmemleak" 2>/dev/null || return 0
	if [ "${1:-}" = full ]; then
		sleep "$kmemleak_wait"
		echo scan >"$kmemleak" 2>/dev/null || return 0
	fi
	cat "$kmemleak" 2>/dev/null
	echo clear >"$kmemleak" 2>/dev/null
}

# The kernel log of the boot goes with the first test's, as always; the
# lines of the boot scan (its "new suspected memory leaks") do not.
: >"$state/boot-kmsg"
if [ -w "$kmemleak" ]; then
	dmesg -c >"$state/boot-kmsg" 2>/dev/null
	kmemleak_report full >"$state/kmemleak-boot"
	dmesg -c >/dev/null 2>&1
	echo "runner: kmemleak: $(grep -c '^unreferenced object' "$state/kmemleak-boot") objects from boot cleared"
fi

last_test=${!#}
for t in "$@"; do
	name=${t%.sh}
	path=$testdir/$t
	tmo=$(sed -n '1,20s/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$path" | head -n 1)
	tmo=$((${tmo:-$default_timeout} * scale))

	echo "@@DMCLONE-DEADLINE $((tmo + grace))"
	echo "@@TEST-START $name $tmo"
	kmsg "start $name"
	scratch=$(mktemp -d "/tmp/$name.XXXXXX")
	pidf=$state/pid rcf=$state/rc
	rm -f "$pidf" "$rcf"

	# The test runs in its own session (so its whole process group can be
	# signalled); its output is streamed with the @@O prefix.
	(
		cd "$scratch" &&
		TESTDIR=$testdir TEST_NAME=$name TEST_TMP=$scratch TEST_TIMEOUT=$tmo \
		setsid -w bash -c 'echo $$ >"$1"; bash "$2" </dev/null; echo $? >"$3"' \
			_ "$pidf" "$path" "$rcf" 2>&1 |
		while IFS= read -r line || [ -n "$line" ]; do printf '@@O %s\n' "$line"; done
	) &
	streamer=$!

	for _ in $(seq 50); do [ -s "$pidf" ] && break; sleep 0.1; done
	pgid=$(cat "$pidf" 2>/dev/null)
	status="" reason=""
	if [ -z "$pgid" ]; then
		status=fail reason="the test did not start"
	else
		end=$((SECONDS + tmo))
		while kill -0 "$pgid" 2>/dev/null && [ $SECONDS -lt $end ]; do
			sleep 0.2
		done
		if kill -0 "$pgid" 2>/dev/null; then
			status=timeout reason="timeout after ${tmo}s"
			kmsg "timeout $name, blocked tasks follow"
			echo w >/proc/sysrq-trigger 2>/dev/null
			kill -TERM -- "-$pgid" 2>/dev/null
			if ! wait_group_gone "$pgid" 15; then
				kill -KILL -- "-$pgid" 2>/dev/null
				if ! wait_group_gone "$pgid" 10; then
					PGID_WANTED=$pgid
					stuck=$(group_procs)
					reason="$reason; unkillable: $stuck"
				fi
			fi
		else
			# The test is done; stray background processes are not.
			if group_alive "$pgid"; then
				PGID_WANTED=$pgid
				out "[runner] killing processes the test left running: $(group_procs)"
				kill -KILL -- "-$pgid" 2>/dev/null
				wait_group_gone "$pgid" 10 || reason="unkillable leftover processes"
			fi
		fi
	fi
	# The streamer ends when every writer of the pipe is gone; a process
	# stuck in the kernel keeps it open, so do not wait for it forever.
	for _ in $(seq 25); do kill -0 "$streamer" 2>/dev/null || break; sleep 0.2; done
	kill "$streamer" 2>/dev/null
	wait "$streamer" 2>/dev/null

	if [ -z "$status" ]; then
		rc=$(cat "$rcf" 2>/dev/null)
		case "$rc" in
		0) status=pass ;;
		77) status=skip ;;
		"") status=fail reason="the test was killed" ;;
		*) status=fail reason="exit status $rc" ;;
		esac
	fi

	echo "@@DMCLONE-DEADLINE 120"
	restart=""
	case "$reason" in *unkillable*) restart="unkillable processes of $name" ;; esac
	if [ -z "$restart" ]; then
		reset_environment || restart="$name left devices that cannot be removed"
	fi
	rm -rf "$scratch" 2>/dev/null

	if [ -z "$restart" ] && [ -w "$kmemleak" ]; then
		# The last test's scan is the full one.
		scan=""
		[ "$t" = "$last_test" ] && scan=full
		kmemleak_report $scan >"$state/leaks"
		if [ -s "$state/leaks" ]; then
			out "[runner] kmemleak: $(grep -c '^unreferenced object' "$state/leaks") unreferenced objects (in the kernel log below; made during this test or the one before it: see their age)"
		fi
	else
		: >"$state/leaks"
	fi

	kmsg "end $name"
	dmesg -c >"$state/kmsg.new" 2>/dev/null
	cat "$state/boot-kmsg" "$state/kmsg.new" "$state/leaks" >"$state/kmsg"
	: >"$state/boot-kmsg"
	while IFS= read -r line; do printf '@@K %s\n' "$line"; done <"$state/kmsg"
	if grep -q -E -e "$patterns" "$state/kmsg"; then
		bad=$(grep -m 1 -E -e "$patterns" "$state/kmsg" | sed 's/^\[[ 0-9.]*\] //')
		case "$status" in
		pass|skip) status=fail reason="kernel log: $bad" ;;
		*) reason="$reason; kernel log: $bad" ;;
		esac
	fi
	echo "@@TEST-END $name $status $reason"
	if [ -n "$restart" ]; then
		echo "@@RUNNER-RESTART $restart"
		exit 0
	fi
done
echo "@@RUNNER-DONE"
