# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-only
# The tally of several test runs' results, shared by .ci/run and
# scripts/check-all.sh. Source, do not execute.
#
# Each run ends with the runner's closing line "N passed, N failed, N
# skipped" (tests/run); the tally adds them up, and counts a run with no
# such line (a build that failed, a runner that died) as one failure:
#
#   tally_reset                  totals back to zero
#   tally_result LOG             prints LOG's last closing line, if any
#   tally_add RESULT             adds RESULT (a closing line) to the totals;
#                                an empty RESULT adds one failure and
#                                returns 1
#   tally_total                  prints the totals' closing line

tally_reset() { TALLY_PASSED=0 TALLY_FAILED=0 TALLY_SKIPPED=0; }
tally_reset

tally_result() { grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1; }

tally_add() {
	local p f s
	if [ -z "$1" ]; then
		TALLY_FAILED=$((TALLY_FAILED + 1))
		return 1
	fi
	read -r p _ f _ s _ <<<"${1//,/}"
	TALLY_PASSED=$((TALLY_PASSED + p))
	TALLY_FAILED=$((TALLY_FAILED + f))
	TALLY_SKIPPED=$((TALLY_SKIPPED + ${s:-0}))
}

tally_total() { echo "$TALLY_PASSED passed, $TALLY_FAILED failed, $TALLY_SKIPPED skipped"; }
