# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# The host tests' checks (tests/unit/test-*.sh). Source, do not execute.
#
#   check WHAT CMD...   CMD must succeed; a failure prints "FAIL: WHAT"
#                       and is counted, the test goes on
#   eq GOT EXPECTED     succeeds when both are equal, else prints both
#   check_summary NAME  prints "NAME: N checks, N failed"; fails if any did

fails=0 checks=0
check() {
	local what=$1
	shift
	checks=$((checks + 1))
	if ! "$@"; then
		echo "FAIL: $what" >&2
		fails=$((fails + 1))
	fi
}
eq() { [ "$1" = "$2" ] || { printf '  got      %q\n  expected %q\n' "$1" "$2" >&2; return 1; }; }
check_summary() {
	echo "$1: $checks checks, $fails failed"
	[ "$fails" = 0 ]
}
