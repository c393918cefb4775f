#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of the metadata tools (tools/clone-md: clone_check, clone_dump,
# clone_restore, clone_repair), built with the address and
# undefined-behaviour sanitizers. Images are made by clone_restore from
# dumps; dump -> restore -> dump gives the same dump (XML and JSON, and
# byte-identical images); bad dumps, bad arguments, missing and foreign
# devices are refused with the documented exit status and message. The
# corruption matrix damages each kind of block (superblock, space map
# index, space map bitmap, ref-count btree node, bitset btree internal node
# and leaf, array block) in each applicable way (a bit flip, zeroed, wrong
# block number, wrong checksum, a cycle, an out-of-range pointer) and
# truncates the device: clone_check exits 1 naming the block and the
# damage, nothing crashes, and clone_repair recovers exactly the regions
# whose state is readable (asking for a choice about the others). Hundreds
# of randomly damaged images never crash a tool. Run by `make -C tests/unit`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/build
tools=$here/../../tools/clone-md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build"
cflags=(-O1 -g -std=gnu11 -Wall -Wextra -Werror "-fsanitize=address,undefined"
	-fno-sanitize-recover=all)
${CC:-gcc} "${cflags[@]}" -o "$build/clone_tools" "$tools"/*.c
${CC:-gcc} "${cflags[@]}" -o "$build/md-poke" "$here/md-poke.c" "$tools/crc32c.c"
for t in clone_check clone_dump clone_restore clone_repair; do
	ln -sf clone_tools "$build/$t"
done
export PATH=$build:$PATH
# A sanitizer report exits 86 (never a tool's own status) and prints its name.
export ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=halt_on_error=1:exitcode=86
poke() { "$build/md-poke" "$@"; }

fails=0 checks=0
bad() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}
# run CMD ARGS...: run a tool; OUT, ERR, RC hold the result; a sanitizer
# report fails the test wherever it happens.
run() {
	RC=0
	OUT=$("$@" 2>"$tmp/err") || RC=$?
	ERR=$(cat "$tmp/err")
	if [ "$RC" = 86 ] || grep -qE "Sanitizer|runtime error" "$tmp/err"; then
		bad "sanitizer report from $*: $(head -5 "$tmp/err")"
	fi
}
# expect RC REGEX WHAT CMD ARGS...: CMD exits RC and stdout+stderr match REGEX.
expect() {
	local rc=$1 re=$2 what=$3
	shift 3
	checks=$((checks + 1))
	run "$@"
	if [ "$RC" != "$rc" ]; then
		bad "$what: exit $RC, expected $rc ($* -> $OUT $ERR)"
	elif ! grep -qE -- "$re" <<<"$OUT
$ERR"; then
		bad "$what: output does not match /$re/: $OUT $ERR"
	fi
}
# same A B WHAT: files A and B are equal.
same() {
	checks=$((checks + 1))
	cmp -s "$1" "$2" || bad "$3: $(diff "$1" "$2" | head -5)"
}
blank() { rm -f "$1"; truncate -s "${2:-4M}" "$1"; }

# ---- the dumps ----
# big: 254 array blocks, two leaves under an internal node.
nr=$((253 * 509 * 64 + 1000))
cat >"$tmp/big.xml" <<EOX
<superblock version="1" region_size="8" target_size="$((nr * 8))" nr_regions="$nr" nr_hydrated="6034" flags="0">
  <range begin="0" length="10"/>
  <range begin="32570" length="20"/>
  <range begin="100000" length="5000"/>
  <range begin="$((nr - 1000))" length="1000"/>
  <range begin="$((nr + 1))" length="0"/>
</superblock>
EOX
sed -i '/length="0"/d;s/6034/6030/' "$tmp/big.xml"
cat >"$tmp/small.json" <<'EOJ'
{"version": 1, "region_size": 8, "target_size": 512, "flags": 1,
 "hydrated": [{"begin": 3, "length": 1}, {"begin": 10, "length": 54}]}
EOJ

# ---- round trips ----
blank "$tmp/big.img"
expect 0 '^$' "restore big" clone_restore -i "$tmp/big.xml" -o "$tmp/big.img"
expect 0 "sound: $nr regions of 8 sectors, 6030 hydrated" "check big" clone_check "$tmp/big.img"
expect 0 "" "dump big" clone_dump -o "$tmp/big.out.xml" "$tmp/big.img"
same "$tmp/big.xml" "$tmp/big.out.xml" "dump -> restore -> dump (XML)"
expect 0 "" "dump big json" clone_dump --format json -o "$tmp/big.json" "$tmp/big.img"
blank "$tmp/big2.img"
expect 0 '^$' "restore big from json" clone_restore -i "$tmp/big.json" -o "$tmp/big2.img"
same "$tmp/big.img" "$tmp/big2.img" "images restored from the XML and the JSON dump"
expect 0 "" "dump restored json" clone_dump --format json -o "$tmp/big2.json" "$tmp/big2.img"
same "$tmp/big.json" "$tmp/big2.json" "dump -> restore -> dump (JSON)"
checks=$((checks + 1))
[ "$(poke "$tmp/big.img" locate bitset-root)" != "$(poke "$tmp/big.img" locate bitset-leaf)" ] ||
	bad "the big image's bitset root should be an internal node"

blank "$tmp/small.img" 1M
expect 0 '^$' "restore small" clone_restore -i - -o "$tmp/small.img" <"$tmp/small.json"
expect 0 'needs_check flag set' "check notes needs_check" clone_check "$tmp/small.img"
expect 0 '<superblock version="1" region_size="8" target_size="512" nr_regions="64" nr_hydrated="55" flags="1">' \
	"dump small" clone_dump "$tmp/small.img"
expect 0 '<range begin="3" length="1"/>' "dump small: single region" clone_dump "$tmp/small.img"
expect 0 '' "clear needs_check" clone_check --clear-needs-check-flag "$tmp/small.img"
expect 0 'flags="0"' "needs_check cleared" clone_dump "$tmp/small.img"
expect 0 'sound: 64 regions' "check after clearing" clone_check "$tmp/small.img"
run clone_dump --format json "$tmp/small.img"
checks=$((checks + 1))
[ "$OUT" = '{
  "version": 1,
  "region_size": 8,
  "target_size": 512,
  "nr_regions": 64,
  "nr_hydrated": 55,
  "flags": 0,
  "hydrated": [
    {"begin": 3, "length": 1},
    {"begin": 10, "length": 54}
  ]
}' ] || bad "JSON dump of the small image: $OUT"

# ---- usage, missing and foreign devices ----
expect 2 'no device given' "check without device" clone_check
expect 2 'Usage: clone_check' "check bad option" clone_check --frobnicate x
expect 0 'Usage: clone_dump' "dump --help" clone_dump --help
expect 0 'clone_repair \(dm-clone metadata tools\) [0-9.]+, metadata version 1' "repair --version" clone_repair --version
expect 2 'unknown format "yaml"' "dump bad format" clone_dump --format yaml "$tmp/big.img"
expect 2 "$tmp/nonexistent: No such file or directory" "check missing device" clone_check "$tmp/nonexistent"
expect 2 'no dump given' "restore without -i" clone_restore -o "$tmp/x"
expect 2 'go together' "repair source alone" clone_repair -i "$tmp/big.img" -o "$tmp/x" --source "$tmp/x"
expect 2 'exclude each other' "repair both assumptions" clone_repair -i a -o b --assume-hydrated --assume-unhydrated
expect 2 'same' "repair onto itself" clone_repair -i "$tmp/big.img" -o "$tmp/big.img"
expect 2 'usage: clone_tools' "clone_tools alone" clone_tools
expect 0 '^Usage: clone_check' "clone_tools NAME" clone_tools clone_check --help
head -c 8192 /dev/urandom >"$tmp/foreign"
expect 1 'block 0: superblock: bad magic' "check foreign data" clone_check "$tmp/foreign"
expect 1 'not dm-clone metadata' "dump foreign data" clone_dump "$tmp/foreign"
cp "$tmp/foreign" "$tmp/foreign.orig"
expect 1 'neither all zero nor dm-clone metadata.*--force' "restore onto foreign data" \
	clone_restore -i "$tmp/small.json" -o "$tmp/foreign"
same "$tmp/foreign" "$tmp/foreign.orig" "refused restore leaves the device alone"
truncate -s 1M "$tmp/foreign"
expect 0 '^$' "restore --force onto foreign data" clone_restore -i "$tmp/small.json" -o "$tmp/foreign" --force
blank "$tmp/zero" 1M
expect 1 'block 0: superblock: all zeros' "check a blank device" clone_check "$tmp/zero"
blank "$tmp/tiny" 100K
expect 1 'too small' "restore onto a tiny device" clone_restore -i "$tmp/big.xml" -o "$tmp/tiny"

# ---- bad dumps ----
baddump() {	# baddump REGEX WHAT TEXT
	printf '%s\n' "$3" >"$tmp/bad.dump"
	expect 1 "$1" "bad dump: $2" clone_restore -i "$tmp/bad.dump" -o "$tmp/zero"
}
hdr='<superblock version="1" region_size="8" target_size="512">'
baddump ': range 2 \(begin 4, length 1\): empty, overlapping' overlap "$hdr
<range begin=\"0\" length=\"5\"/><range begin=\"4\" length=\"1\"/></superblock>"
baddump 'past region 63' "out of range" "$hdr<range begin=\"60\" length=\"5\"/></superblock>"
baddump 'region_size 12: a power of two' "region size" '<superblock version="1" region_size="12" target_size="512"/>'
baddump 'version 2, only 1' version '<superblock version="2" region_size="8" target_size="512"/>'
baddump 'trailing text' "trailing text" "$hdr</superblock>junk"
baddump 'nr_hydrated 3, the ranges hold 0' "nr_hydrated" '<superblock version="1" region_size="8" target_size="512" nr_hydrated="3"/>'
baddump 'unknown field "colour"' "unknown field" '{"version": 1, "region_size": 8, "target_size": 512, "colour": 3, "hydrated": []}'
baddump 'expected a decimal number' "huge number" '<superblock version="1" region_size="8" target_size="99999999999999999999999"/>'
baddump 'target_size missing' "missing field" '<superblock version="1" region_size="8"/>'
baddump 'no "hydrated" list' "json without ranges" '{"version": 1, "region_size": 8, "target_size": 512}'
baddump 'gives 0 regions' "empty target" '<superblock version="1" region_size="8" target_size="0"/>'
baddump 'line 1: expected <superblock' "not a dump" 'hello'

# ---- the corruption matrix ----
# damage KIND HOW...: a copy of big.img in $tmp/d.img with the damage.
damage() {
	cp "$tmp/big.img" "$tmp/d.img"
	local kind=$1 how=$2
	shift 2
	poke "$tmp/d.img" "$how" "$kind" "$@"
}
declare -A name=([sb]=superblock [index]="space map index" [bitmap]="space map bitmap"
	[refnode]="ref-count btree node" [bitset-root]="bitset btree node"
	[bitset-leaf]="bitset btree node" [array]="array block")
declare -A at
for k in sb index bitmap refnode bitset-root bitset-leaf array; do
	at[$k]=$(poke "$tmp/big.img" locate $k)
done
R=${at[bitset-root]} L=${at[bitset-leaf]} I=${at[index]}
# What clone_repair must find readable after each kind's damage: the
# regions of the lost array blocks are unknown, the others keep their state.
declare -A lost=([sb]="0-$((nr - 1))" [index]="" [bitmap]="" [refnode]=""
	[bitset-root]="0-$((nr - 1))" [bitset-leaf]="0-$((252 * 32576 - 1))"
	[array]="0-32575")
# expected_after KIND: the dump clone_repair --assume-unhydrated must give.
expected_after() {
	local first=${lost[$1]%-*} end=${lost[$1]#*-}
	[ -n "${lost[$1]}" ] || { cat "$tmp/big.xml"; return; }
	awk -v first="$first" -v end="$end" '
		function put(b, l) {
			if (l <= 0) return
			out = out sprintf("  <range begin=\"%d\" length=\"%d\"/>\n", b, l); n += l
		}
		/<range/ {
			match($0, /begin="[0-9]+"/); b = substr($0, RSTART + 7, RLENGTH - 8) + 0
			match($0, /length="[0-9]+"/); l = substr($0, RSTART + 8, RLENGTH - 9) + 0
			put(b, (b + l < first ? b + l : first) - b)
			put(b > end + 1 ? b : end + 1, b + l - (b > end + 1 ? b : end + 1))
			next
		}
		/<superblock/ { head = $0 }
		END {
			sub(/nr_hydrated="[0-9]+"/, "nr_hydrated=\"" n + 0 "\"", head)
			printf "%s\n%s</superblock>\n", head, out
		}' "$tmp/big.xml"
}
# repaired KIND: clone_repair recovers exactly the readable regions.
repaired() {
	local kind=$1 what=$2 sizes=()
	[ "$kind" = sb ] && sizes=(--region-size 8 --target-size $((nr * 8)))
	blank "$tmp/new.img"
	if [ -z "${lost[$kind]}" ]; then
		expect 0 "6030 hydrated" "$what: repair" clone_repair -i "$tmp/d.img" -o "$tmp/new.img" "${sizes[@]}"
	else
		expect 1 "regions whose state is unknown: ${lost[$kind]}\$" "$what: repair lists the unknown regions" \
			clone_repair -i "$tmp/d.img" -o "$tmp/new.img" "${sizes[@]}"
		expect 0 "read" "$what: repair --assume-unhydrated" \
			clone_repair -i "$tmp/d.img" -o "$tmp/new.img" "${sizes[@]}" --assume-unhydrated
	fi
	expect 0 "sound" "$what: repaired image checks clean" clone_check "$tmp/new.img"
	run clone_dump -o "$tmp/new.xml" "$tmp/new.img"
	expected_after "$kind" >"$tmp/want.xml"
	same "$tmp/new.xml" "$tmp/want.xml" "$what: repaired regions"
}
# broken KIND REGEX WHAT: clone_check exits 1 with a line matching REGEX,
# then the repair.
broken() {
	expect 1 "$2" "$3: check" clone_check "$tmp/d.img"
	expect 1 '' "$3: check --quiet" clone_check --quiet "$tmp/d.img"
	checks=$((checks + 1))
	[ -z "$OUT$ERR" ] || bad "$3: --quiet printed $OUT $ERR"
	run clone_dump --repair "$tmp/d.img"
	checks=$((checks + 1))
	[ "$RC" = 0 ] || [ "$RC" = 1 ] || bad "$3: dump --repair exit $RC"
	repaired "$1" "$3"
}
for k in sb index bitmap refnode bitset-root bitset-leaf array; do
	b=${at[$k]} n=${name[$k]}
	damage $k flip 300
	broken $k "^block $b: $n: bad checksum" "$k bit flip"
	damage $k csum
	broken $k "^block $b: $n: bad checksum" "$k wrong checksum"
	off=8
	[ $k = array ] && off=16
	damage $k set $off 8 $((b + 7))
	broken $k "^block $b: $n: block number field is $((b + 7))(, expected 0)?\$" "$k wrong block number"
	damage $k zero
	if [ $k = sb ]; then
		broken $k "^block 0: superblock: all zeros" "$k zeroed"
	else
		broken $k "^block $b: $n: block number field is 0\$" "$k zeroed"
	fi
done
damage array flip 300
expect 0 "superblock sound" "--super-block-only ignores a bad array block" clone_check --super-block-only "$tmp/d.img"
# md-poke's ptr names the same fields as these offsets.
for p in "bitset-root 1 $R $((32 + 8 * 252 + 8))" "bitset-leaf 0 $L $((32 + 8 * 252))" \
	"index 0 $I 16" "sb 0 99 188" "sb 1 98 60" "sb 2 97 68"; do
	read -r k i v off <<<"$p"
	damage "$k" ptr "$i" "$v"
	cp "$tmp/d.img" "$tmp/d2.img"
	damage "$k" set "$off" 8 "$v"
	same "$tmp/d2.img" "$tmp/d.img" "md-poke ptr $k $i = set $k $off"
done
expect 2 'refnode has no pointer 0' "md-poke ptr refnode" poke "$tmp/d.img" ptr refnode 0 1
expect 2 'bitset-leaf has no pointer 252' "md-poke ptr past max_entries" poke "$tmp/d.img" ptr bitset-leaf 252 1
# Cycles and shared blocks.
damage bitset-root set $((32 + 8 * 252 + 8)) 8 "$R"
lost[bitset-root]="$((252 * 32576))-$((nr - 1))"
broken bitset-root "^block $R: bitset btree node: cycle: points back to block $R\$" "bitset internal node cycle"
damage bitset-leaf set $((32 + 8 * 252)) 8 "$L"
lost[bitset-leaf]="0-32575"
broken bitset-leaf "^block $L: used as bitset btree node and as array block\$" "bitset leaf pointing at itself"
lost[bitset-leaf]="0-$((252 * 32576 - 1))"
damage index set 16 8 "$I"
broken index "^block $I: used as space map index and as space map bitmap\$" "index pointing at itself"
damage bitset-root set $((32 + 8 * 252 + 8)) 8 "${at[array]}"
broken bitset-root "^block ${at[array]}: used as array block and as bitset btree node\$" "bitset node pointing at an array block"
# Out-of-range pointers.
big_b=99999999
damage sb set 188 8 $big_b
lost[sb]="0-$((nr - 1))"
broken sb "^block 0: superblock: bitset root at block $big_b, out of range\$" "superblock bitset root out of range"
damage index set 16 8 $big_b
broken index "^block $I: space map index points to block $big_b, past the end of the metadata \\(1024 blocks\\)\$" "index pointing past the end"
damage bitset-root set $((32 + 8 * 252)) 8 $big_b
lost[bitset-root]="0-$((252 * 32576 - 1))"
broken bitset-root "^block $R: bitset btree node points to block $big_b, past the end of the metadata" "internal node pointing past the end"
damage bitset-leaf set $((32 + 8 * 252)) 8 $big_b
lost[bitset-leaf]="0-32575"
broken bitset-leaf "^block $L: bitset btree node points to block $big_b, past the end of the metadata" "leaf pointing past the end"
damage refnode set 16 4 1
poke "$tmp/d.img" set refnode 32 8 $big_b
poke "$tmp/d.img" set refnode $((32 + 8 * 336)) 4 5
broken refnode "^block ${at[refnode]}: ref-count btree node: entry for block $big_b, past the space map's 1024 blocks\$" "ref-count entry past the end"
# Key order.
damage bitset-leaf set 40 8 0
lost[bitset-leaf]="0-$((252 * 32576 - 1))"
broken bitset-leaf "^block $L: bitset btree node: key 1 \\(0\\) out of order\$" "leaf keys out of order"
# Reference counts: a free block counted (leaked), a used one free.
damage bitmap set $((16 + 8 * 15)) 8 $((1 << 41))		# block 500: count 1
broken bitmap "^block 500: space map: ref count 1, 0 references found \\(leaked\\)\$" "leaked block"
checks=$((checks + 1))
grep -q "^block $I: space map index: bitmap 0 says 16059 blocks free, the bitmap has 16058\$" <<<"$(clone_check "$tmp/d.img" 2>&1)" ||
	bad "leaked block: the index's free count"
damage bitmap set 16 8 0xAAAAAAAAAAAAA2AA			# block 5: count 0
broken bitmap "^block 5: space map: ref count 0, 1 references found \\(in use but free\\)\$" "block in use but free"
damage bitmap set 16 8 0xAAAAAAAAAAAAAEAA			# block 5: count 3
broken bitmap "^block 5: space map: bitmap count 3 but no ref-count btree entry\$" "count 3 without a btree entry"
# An array block shared by two leaf entries, counted twice: sound (the
# kernel may share array blocks); both indices read the same words.
damage bitset-leaf set $((32 + 8 * 252 + 8)) 8 "${at[array]}"	# index 1 -> block of index 0
poke "$tmp/d.img" set bitmap 16 8 0xAAAAAAAAAAAAA1AA		# block 4: 2, block 5: 0
poke "$tmp/d.img" set index 24 4 16060				# one more block free
poke "$tmp/d.img" set index 28 4 5				# the first free one is 5
poke "$tmp/d.img" set sb 52 8 260				# one fewer allocated
checks=$((checks + 1))
[ "${at[array]}" = 4 ] || bad "the first array block should be block 4, is ${at[array]}"
expect 0 "sound: $nr regions of 8 sectors, 6032 hydrated" "a shared array block counted twice" clone_check "$tmp/d.img"
# A bit past the last region.
printf '<superblock version="1" region_size="8" target_size="520"/>\n' >"$tmp/65.xml"
blank "$tmp/d.img" 1M
clone_restore -i "$tmp/65.xml" -o "$tmp/d.img"
poke "$tmp/d.img" set array $((24 + 8)) 8 2
expect 1 "^block $(poke "$tmp/d.img" locate array): array block: bits set past the last region \(64\)\$" \
	"a bit past the last region" clone_check "$tmp/d.img"
# Truncated devices.
for size in 2M 1M 4096 100; do
	cp "$tmp/big.img" "$tmp/d.img"
	truncate -s $size "$tmp/d.img"
	case $size in
	2M) re="^block 0: superblock: space map covers 1024 blocks, the device holds 512\$"; lost[sb]="" ;;
	1M) re="^block 0: superblock: bitset root at block $R, out of range\$"; lost[sb]="0-$((nr - 1))" ;;
	4096) re="^block 0: superblock: space map covers 1024 blocks, the device holds 1\$" ;;
	*) re="^block 0: superblock: cannot be read \\(device smaller than 4 KiB\\)\$" ;;
	esac
	expect 1 "$re" "truncated to $size: check" clone_check "$tmp/d.img"
	run clone_dump --repair "$tmp/d.img"
	if [ $size = 2M ]; then
		blank "$tmp/new.img"
		expect 0 "6030 hydrated" "truncated to 2M: repair reads everything" \
			clone_repair -i "$tmp/d.img" -o "$tmp/new.img"
	elif [ $size != 100 ]; then
		blank "$tmp/new.img"
		expect 1 "regions whose state is unknown: 0-$((nr - 1))\$" "truncated to $size: repair" \
			clone_repair -i "$tmp/d.img" -o "$tmp/new.img"
	fi
done

# ---- repair settles unknown regions by comparing the data ----
head -c $((64 * 4096)) /dev/urandom >"$tmp/src"
{ head -c $((10 * 4096)) "$tmp/src"; head -c $((54 * 4096)) /dev/urandom; } >"$tmp/dst"
cp "$tmp/small.img" "$tmp/d.img"
poke "$tmp/d.img" flip array 100
blank "$tmp/new.img" 1M
expect 1 "regions whose state is unknown: 10-63\$" "compare settles the equal regions" \
	clone_repair -i "$tmp/d.img" -o "$tmp/new.img" --source "$tmp/src" --destination "$tmp/dst"
expect 0 "64 regions: 0 read, 10 equal on source and destination, 54 assumed hydrated; 64 hydrated" \
	"compare, then --assume-hydrated" clone_repair -i "$tmp/d.img" -o "$tmp/new.img" \
	--source "$tmp/src" --destination "$tmp/dst" --assume-hydrated
expect 0 "64 regions: 0 read, 10 equal on source and destination, 54 assumed unhydrated; 10 hydrated" \
	"compare, then --assume-unhydrated" clone_repair -i "$tmp/d.img" -o "$tmp/new.img" \
	--source "$tmp/src" --destination "$tmp/dst" --assume-unhydrated
expect 0 '<range begin="0" length="10"/>' "compare: the dump" clone_dump "$tmp/new.img"

# ---- random damage never crashes a tool ----
crashes_before=$fails
for ((i = 0; i < ${RANDOM_ROUNDS:-100}; i++)); do
	cp "$tmp/big.img" "$tmp/d.img"
	for ((j = 0; j < 1 + i % 4; j++)); do
		blk=$(((RANDOM * 32768 + RANDOM) % 262))
		off=$((RANDOM % 4096))
		# shellcheck disable=SC2059 # the format is the two random bytes
		printf "\\x$(printf %02x $((RANDOM % 256)))\\x$(printf %02x $((RANDOM % 256)))" |
			dd of="$tmp/d.img" bs=1 seek=$((blk * 4096 + off)) conv=notrunc status=none
		if [ $((i % 5)) = 0 ]; then
			kinds=(sb index bitmap refnode bitset-root bitset-leaf array)
			poke "$tmp/d.img" set "${kinds[RANDOM % 7]}" $((RANDOM % 4000)) 8 \
				$((RANDOM * RANDOM)) 2>/dev/null || true
		fi
	done
	for cmd in "clone_check $tmp/d.img" "clone_dump --repair $tmp/d.img" \
		"clone_repair -i $tmp/d.img -o $tmp/new.img --force --assume-unhydrated"; do
		# shellcheck disable=SC2086
		run $cmd
		checks=$((checks + 1))
		case $RC in 0|1|2) ;; *) bad "random damage $i: $cmd exit $RC: $ERR" ;; esac
	done
done
[ "$fails" = "$crashes_before" ] || echo "random damage: failures above" >&2

echo "test-metadata-tools: $checks checks, $fails failed"
[ "$fails" = 0 ]
