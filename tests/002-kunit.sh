#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The KUnit tests of dm-clone's pure logic (tests/kunit/dm-clone-kunit.c:
# region arithmetic at its limits, parsing, the region map's bitmap
# patterns) pass in the kernel: loading dm-clone-kunit.ko runs them, and
# every case of its KTAP results (debugfs) must be "ok". Skips on kernels
# without KUnit: only the debug kernel (tests/run --kernel debug) has it,
# and tests/run builds the module only for that one.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"

suite=dm-clone-region
[ -d /sys/kernel/debug/kunit ] ||
	skip "this kernel has no KUnit (with debugfs): see tests/run --kernel debug"
modinfo dm-clone-kunit >/dev/null 2>&1 ||
	skip "dm-clone-kunit.ko is not built for this kernel"

log "loading dm-clone-kunit (runs the $suite suite)"
need_module dm-clone-kunit
results=/sys/kernel/debug/kunit/$suite/results
[ -r "$results" ] || fail "no KUnit results in $results"
ktap=$(cat "$results")
printf '%s\n' "$ktap"

# The cases are the indented result lines; the plan says how many.
plan=$(sed -n 's/^[[:space:]]\{1,\}1\.\.\([0-9]\{1,\}\)$/\1/p' <<<"$ktap" | head -n 1)
ok=$(grep -c -E '^[[:space:]]+ok [0-9]+ ' <<<"$ktap" || true)
bad=$(grep -c -E '^[[:space:]]*not ok [0-9]+ ' <<<"$ktap" || true)
log "plan ${plan:-none}: $ok cases ok, $bad results not ok"
[ -n "$plan" ] && [ "$plan" -gt 0 ] || fail "no KTAP plan in the results"
[ "$bad" = 0 ] || fail "KUnit: $(grep -E '^[[:space:]]*not ok ' <<<"$ktap" | sed 's/^[[:space:]]*//' | tr '\n' ';')"
assert_eq "$ok" "$plan" "KUnit cases that passed"
grep -q -E "^ok [0-9]+ $suite\$" <<<"$ktap" || fail "no 'ok' result for the suite $suite"
