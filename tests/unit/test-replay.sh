#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of tools/dmclone-replay, built with the address and
# undefined-behaviour sanitizers, on logs made here in the dm-log-writes
# format: replay to an entry, a mark, a flush point, in one go and
# incrementally (--state, --from) give the expected bytes; --coherent keeps
# a FUA write over an older plain write of the same flush interval; list
# and stats agree with the log; every truncation of the log and hundreds
# of corrupted copies are refused or replayed without a crash (exit status
# 0 or 1, no sanitizer report). Run by `make -C tests/unit`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/build
tool=$build/dmclone-replay
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build"
${CC:-gcc} -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
	-fno-sanitize-recover=all -o "$tool" "$here/../../tools/dmclone-replay.c"
export ASAN_OPTIONS=detect_leaks=0

# shellcheck source=tests/unit/check.sh
. "$here/check.sh"

# le VALUE BYTES: VALUE little-endian.
le() {
	local i out=""
	for ((i = 0; i < $2; i++)); do
		out+=$(printf '\\x%02x' $((($1 >> (8 * i)) & 255)))
	done
	# shellcheck disable=SC2059 # the format is the data
	printf "$out"
}
# pad LEN: zeros up to a 512-byte block after LEN bytes.
pad() { head -c $((512 - $1)) /dev/zero; }
# fill CHAR BLOCKS: BLOCKS blocks of CHAR.
fill() { head -c $(($2 * 512)) /dev/zero | tr '\0' "$1"; }

entries=0
# ent SECTOR BLOCKS FLAGS [CHAR | NAME]: one entry (data of CHAR, or a mark NAME).
ent() {
	local name=""
	[ $(($3 & 8)) -eq 0 ] || name=$4
	{
		le "$1" 8; le "$2" 8; le "$3" 8; le ${#name} 8
		printf '%s' "$name"
		pad $((32 + ${#name}))
		if [ $(($3 & 12)) -eq 0 ] && [ "$2" -gt 0 ]; then fill "$4" "$2"; fi
	} >>"$tmp/entries"
	entries=$((entries + 1))
}
mklog() {
	{ le $((0x6a736677736872)) 8; le 1 8; le $entries 8; le 512 4; pad 28; cat "$tmp/entries"; } >"$1"
}

# The log: FUA F on 2-3, FUA G on 4, mark m1, plain P on 0-7 (completed
# before the FUAs), flush, plain Q on 3, discard 6-7, flush, mark end.
: >"$tmp/entries"
ent 2 2 2 F		# 1
ent 4 1 2 G		# 2
ent 0 0 8 m1		# 3
ent 0 8 0 P		# 4
ent 0 0 1		# 5
ent 3 1 0 Q		# 6
ent 6 2 4		# 7
ent 0 0 1		# 8
ent 0 0 8 dm-log-writes-end	# 9
mklog "$tmp/log"

# expect NAME CONTENT: the 8 blocks of the target, one character each (0: zeros).
expect() {
	local got
	got=$(od -An -v -c -w512 "$tmp/t" | awk '{ print $1 }' | tr -d '\n' | sed 's/\\0/0/g')
	[ "$got" = "$2" ] || { echo "$1: target holds $got, expected $2" >&2; return 1; }
}
fresh() { rm -f "$tmp/t" "$tmp/st"; truncate -s 4096 "$tmp/t"; }

fresh; "$tool" replay "$tmp/log" "$tmp/t" --to 2 2>/dev/null
check "to entry 2" expect "to entry 2" 00FFG000
fresh; "$tool" replay "$tmp/log" "$tmp/t" --to-mark m1 2>/dev/null
check "to mark m1" expect "to mark m1" 00FFG000
fresh; "$tool" replay "$tmp/log" "$tmp/t" 2>/dev/null
check "all, log order" expect "all, log order" PPPQPP00
fresh; "$tool" replay "$tmp/log" "$tmp/t" --coherent 2>/dev/null
check "all, coherent" expect "all, coherent" PPFQGP00
fresh; "$tool" replay "$tmp/log" "$tmp/t" --to-flush 3 --coherent 2>/dev/null
check "to flush point 3" expect "to flush point 3" PPFFGPPP
fresh
for p in 1 2 4 6 7 9; do
	"$tool" replay "$tmp/log" "$tmp/t" --to $p --state "$tmp/st" --coherent 2>/dev/null
done
check "incremental, coherent" expect "incremental, coherent" PPFQGP00
check "cannot go back" bash -c "! '$tool' replay '$tmp/log' '$tmp/t' --to 3 --state '$tmp/st' 2>/dev/null"
fresh; "$tool" replay "$tmp/log" "$tmp/t" --to 2 2>/dev/null
"$tool" replay "$tmp/log" "$tmp/t" --from 3 --coherent 2>/dev/null
check "--from" expect "--from" PPFQGP00
check "list" test "$("$tool" list "$tmp/log" | tr '\n' ';')" = \
	"1 fua 2 2;2 fua 4 1;3 mark 0 0 m1;5 flush 0 0;8 flush 0 0;9 mark 0 0 dm-log-writes-end;"
check "list --all" test "$("$tool" list "$tmp/log" --all | wc -l)" -eq 9
check "stats" bash -c "'$tool' stats '$tmp/log' | grep -q 'ends with dm-log-writes-end: yes'"
check "target too small" bash -c "truncate -s 1024 '$tmp/small'; ! '$tool' replay '$tmp/log' '$tmp/small' 2>/dev/null"
check "no such mark" bash -c "! '$tool' replay '$tmp/log' '$tmp/t' --to-mark nope 2>/dev/null"
check "usage" bash -c "'$tool' replay '$tmp/log' 2>/dev/null; [ \$? -eq 2 ]"

# ok_or_refused CMD...: exit status 0 or 1, and no sanitizer report.
ok_or_refused() {
	local rc=0
	"$@" >/dev/null 2>"$tmp/err" || rc=$?
	if [ $rc -gt 1 ] || grep -q "Sanitizer\|runtime error" "$tmp/err"; then
		echo "status $rc: $*" >&2
		head -n 5 "$tmp/err" >&2
		return 1
	fi
}

# Every truncation: refused (all entries are announced by the super).
size=$(stat -c %s "$tmp/log")
bad=0
for ((n = 0; n < size; n += 100)); do
	head -c $n "$tmp/log" >"$tmp/cut"
	if "$tool" list "$tmp/cut" >/dev/null 2>&1; then bad=$((bad + 1)); fi
	ok_or_refused "$tool" replay "$tmp/cut" "$tmp/t" || bad=$((bad + 1))
done
check "every truncation refused" test $bad -eq 0

# Corrupted copies: random bytes overwritten in the super and the headers.
bad=0
for ((i = 0; i < ${REPLAY_FUZZ:-300}; i++)); do
	cp "$tmp/log" "$tmp/fz"
	for ((j = 0; j < 1 + RANDOM % 4; j++)); do
		blk=$((RANDOM % (size / 512)))
		off=$((blk * 512 + RANDOM % 40))
		# shellcheck disable=SC2059 # the format is the byte
		printf "$(printf '\\x%02x' $((RANDOM % 256)))" |
			dd of="$tmp/fz" bs=1 seek=$off conv=notrunc status=none
	done
	fresh
	ok_or_refused "$tool" list "$tmp/fz" --all || bad=$((bad + 1))
	ok_or_refused "$tool" stats "$tmp/fz" || bad=$((bad + 1))
	ok_or_refused "$tool" replay "$tmp/fz" "$tmp/t" --coherent --state "$tmp/st" --to 4 &&
		ok_or_refused "$tool" replay "$tmp/fz" "$tmp/t" --coherent --state "$tmp/st" ||
		bad=$((bad + 1))
done
check "corrupted logs: no crash" test $bad -eq 0

check_summary test-replay
