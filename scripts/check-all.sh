#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The guest suite on every supported kernel, one after the other (`make
# check-all` runs it after the static checks and unit tests).
#
#   scripts/check-all.sh [--kernels "K..."] [TEST...]
#
# Runs `tests/run --kernel K [TEST...]` for K in 6.1, 6.12 and 7 (see
# scripts/kernels.sh), or in the kernels --kernels names (which may include
# `debug`, the debug kernel of `make check-debug`), goes on after a
# failure, and ends with one line per
# kernel (its release, the suite's result line and the time it took) and
# the total "N passed, N failed, N skipped". Exit status 1 if any kernel
# failed (a failed test, or a build that failed).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/kernels.sh"
. "$here/tally.sh"

kernels=$ALL_KERNELS
case "${1:-}" in
-h|--help) sed -n '4,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
--kernels) kernels=$2; shift 2 ;;
esac

rc=0 lines=()
mkdir -p "$DMCLONE_OUT"
for k in $kernels; do
	echo "# make check-all: kernel $k"
	log=$DMCLONE_OUT/check-all-$k.log
	start=$SECONDS
	"$DMCLONE_ROOT/tests/run" --kernel "$k" "$@" 2>&1 | tee "$log"
	krc=${PIPESTATUS[0]}
	took=$((SECONDS - start))
	kver=$(sed -n 's/^>> guest: kernel \([^,]*\),.*/\1/p' "$log" | tail -n 1)
	result=$(tally_result "$log")
	tally_add "$result" || result="no result (see $log)"
	[ "$krc" = 0 ] || rc=1
	lines+=("$(printf '# %-5s %-28s %s (%d s)' "$k" "${kver:-?}" "$result" "$took")")
done

echo "# make check-all: per kernel"
printf '%s\n' "${lines[@]}"
tally_total
exit $rc
