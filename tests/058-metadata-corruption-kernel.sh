#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Damaged metadata never crashes the kernel. The module makes real
# metadata (a clone of 8650752 regions, so the bitset btree has an
# internal root over leaves and 266 array blocks; 8 regions written,
# committed by a suspend); then each kind of block (superblock, space map
# index, space map bitmap, ref-count btree node, bitset btree root and
# leaf, array block) is damaged on a copy in each way (a bit flip, zeroed,
# a wrong block number, a wrong checksum, a cycle, a pointer past the
# device's end), and the device is truncated, and the clone table is
# loaded over the copy. Each image gives the outcome listed in the matrix
# below: the load is refused with the module's reason in the kernel log,
# or the clone comes up and turns ro (with the failed metadata operation
# logged, and a write to an unhydrated region failing) once I/O makes it
# read the damaged block (a whole-region write and a suspend, which
# commits), or, where the damage lies in a block the clone never needs,
# it runs rw. Reads of the written regions and of a sample of unwritten
# ones (whose destination holds other data) must give the right data in
# every mode: never silently wrong data. An all-zero superblock means a
# fresh device (Documentation/dm-clone.rst): it is formatted. The runner
# fails the test on any kernel warning, BUG, KASAN or lockdep report. On
# the debug kernel, the wrong checksums and zeroed blocks but the
# superblock's are left out (the checks of the flipped bit and the wrong
# block number).
# timeout: 600
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"

need_module
need_cmd md-poke dmclone-pattern dd cmp

rs=8
nr=8650752				# 266 array blocks, 2 leaves under the root
big=$((nr * rs))
dmsetup create zsrc --table "0 $big zero"
_dmc_register dm zsrc
src=/dev/mapper/zsrc			# reads zeros
dest=$(mkdev_sectors dest $big)		# sparse
meta=$(mkdev meta 4)
scratch=$(mkdev scratch 4)
short3=$(mkdev short3 3)		# holds the used blocks, not all 1024
short1=$(mkdev short1 1)		# smaller than the module needs
tiny=$(mkdev_sectors tiny 8)		# one block
table() { echo "0 $big clone $1 $dest $src $rs 1 no_hydration"; }

# Written regions (H: pattern 5), unwritten ones whose destination holds
# pattern 9 (U: a clone that counts them hydrated reads 9, not the
# source's zeros), the region each case writes to make a commit (W: its
# array block not yet written) and the one a read-only clone must refuse
# (W2). An array block holds 32576 regions; they are spread over the
# array blocks, so over the leaves.
H="0 1 2 3 40000 5000000 8400000 $((nr - 1))"
U="4 32575 40001 5000001 8209152 8400001 $((nr - 2))"
W=100000
W2=200000
for u in $U $W2; do fill_pattern "$dest" 9 $((u * rs)) $rs; done

log "the module makes the metadata: regions $H written, then a suspend"
dm_create c "$(table "$meta")"
for h in $H; do fill_pattern /dev/mapper/c 5 $((h * rs)) $rs; done
assert_eq "$(clone_hydrated c)/$(clone_regions c)" "8/$nr" "progress after the writes"
dmsetup suspend c
dmsetup resume c
dm_remove c
good=$TEST_TMP/good.img work=$TEST_TMP/work.img
dd if="$meta" of="$good" bs=1M iflag=direct status=none
S=0
I=$(md-poke "$good" locate index)
B=$(md-poke "$good" locate bitmap)
F=$(md-poke "$good" locate refnode)
R=$(md-poke "$good" locate bitset-root)
L=$(md-poke "$good" locate bitset-leaf)
A=$(md-poke "$good" locate array)
log "blocks: index $I, bitmap $B, ref-count root $F, bitset root $R, first leaf $L, first array block $A"
assert_ne "$R" "$L" "the bitset root should be an internal node"
declare -A at=([sb]=$S [index]=$I [bitmap]=$B [refnode]=$F [bitset-root]=$R [bitset-leaf]=$L [array]=$A)
END=1024				# the first block past the metadata device
HUGE=$((1 << 62))			# past the end, and 4 KiB blocks overflow 64-bit bytes

# data_ok NAME: the written regions read pattern 5, the sample of unwritten
# ones the source's zeros; prints what differs.
data_ok() {
	local h u ok=0
	for h in $H; do
		check_pattern "/dev/mapper/$1" 5 $((h * rs)) $rs >/dev/null 2>&1 ||
			{ echo "written region $h reads wrong data"; ok=1; }
	done
	for u in $U; do
		cmp_dev "/dev/mapper/$1" "$src" $rs $((u * rs)) $((u * rs)) >/dev/null 2>&1 ||
			{ echo "unwritten region $u reads wrong data: $(identify_dev "/dev/mapper/$1" $((u * rs)) $rs 2>&1 | head -1)"; ok=1; }
	done
	return $ok
}

problems=() n=0
problem() { problems+=("$*"); echo "PROBLEM: $*" >&2; }
printf '%-12s %-16s %-9s %s\n' KIND DAMAGE OUTCOME "WHAT THE USER SEES" >"$TEST_TMP/matrix"

# load_case KIND DAMAGE EXPECTED MD: load the clone over metadata device MD,
# drive I/O, note the outcome (refused, ro, fail, rw, formatted) in the
# matrix and a problem if it is not EXPECTED or a check fails.
load_case() {
	local kind=$1 damage=$2 expected=$3 md=$4 dm got what hyd msgs
	n=$((n + 1))
	dm=bad$n
	log_mark
	if ! dmsetup create "$dm" --table "$(table "$md")" >/dev/null 2>&1; then
		dmsetup remove "$dm" >/dev/null 2>&1 || true
		got=refused
		msgs=$(log_since_mark)
		what=$(sed -n 's/.*device-mapper: table: [0-9:]*: clone: //p' <<<"$msgs" | head -n 1)
		[ -n "$what" ] || problem "$kind $damage: refused without the module's reason in the log"
		# The specific complaint, by the module or persistent-data.
		what="$what; $(awk '/device-mapper: / && !/device-mapper: (table|ioctl):/ {
			sub(/^\[[ 0-9.]*\] /, ""); print; exit }' <<<"$msgs")"
	else
		_dmc_register dm "$dm"
		got=$(clone_mode "$dm")
		hyd=$(clone_hydrated "$dm" 2>/dev/null || echo -)
		what="loads $got, $hyd hydrated"
		if [ "$got" = rw ] && [ "$hyd" = 0 ]; then
			got=formatted
			data_ok "$dm" >/dev/null || true	# it reads the source everywhere
		elif [ "$got" != Fail ]; then
			msgs=$(data_ok "$dm") || {
				problem "$kind $damage: loaded $got with wrong data: $msgs"
				got=WRONG-DATA
			}
		fi
		if [ "$got" = rw ]; then
			dd_write "/dev/mapper/$dm" $((W * rs)) $rs 7 >/dev/null ||
				what+=", write failed"
			dmsetup suspend "$dm" && dmsetup resume "$dm"
			got=$(clone_mode "$dm")
			case "$got" in
			rw)
				what+=", commits"
				[ "$(clone_hydrated "$dm")" = $((hyd + 1)) ] ||
					problem "$kind $damage: hydrated count after the commit: $(clone_hydrated "$dm")"
				;;
			ro)
				what+=", ro after a commit: $(log_since_mark | sed -n "s/.*clone: [0-9:]*: \(metadata operation .*\)/\1/p" | head -n 1)"
				log_grep "clone: [0-9:]*: switching to read-only mode" ||
					problem "$kind $damage: ro without its kernel log line"
				dd_write "/dev/mapper/$dm" $((W2 * rs)) $rs 8 >/dev/null &&
					problem "$kind $damage: a write to an unhydrated region works in ro mode"
				msgs=$(data_ok "$dm") || {
					problem "$kind $damage: wrong data in ro mode: $msgs"
					got=WRONG-DATA
				}
				;;
			*) what+=", $got after a commit" ;;
			esac
		fi
		if [ "$got" = Fail ]; then
			dd_read "/dev/mapper/$dm" 0 $rs >/dev/null && problem "$kind $damage: a read works in Fail mode"
		fi
		dm_remove "$dm"
		if [ "$got" = rw ]; then
			# What it committed opens again, with the new write.
			dm_create "$dm" "$(table "$md")"
			[ "$(clone_hydrated "$dm")" = $((hyd + 1)) ] && data_ok "$dm" >/dev/null &&
				check_pattern "/dev/mapper/$dm" 7 $((W * rs)) $rs >/dev/null 2>&1 ||
				problem "$kind $damage: reopened after the commit: $(clone_status "$dm")"
			what+=", reopens"
			dm_remove "$dm"
		fi
	fi
	[ "$got" = "$expected" ] ||
		problem "$kind $damage: outcome $got, expected $expected ($what)"
	printf '%-12s %-16s %-9s %s\n' "$kind" "$damage" "$got" "$what" >>"$TEST_TMP/matrix"
	log "$kind $damage: $got: $what"
}

# case_ KIND DAMAGE EXPECTED [MD-POKE ARGS... [+ MD-POKE ARGS...]]: damage a
# copy of the good metadata with `md-poke COPY ARGS...` (each group in
# turn) and load it.
case_() {
	local kind=$1 damage=$2 expected=$3 a args=()
	shift 3
	cp "$good" "$work"
	for a in "$@" +; do
		if [ "$a" = + ]; then
			[ ${#args[@]} -eq 0 ] || md-poke "$work" "${args[@]}"
			args=()
		else
			args+=("$a")
		fi
	done
	dd if="$work" of="$scratch" bs=1M oflag=direct status=none
	load_case "$kind" "$damage" "$expected" "$scratch"
}

case_ none none rw

# The four damages every block can take. The superblock and everything
# reached from it at load (the space map index, the bitset btree, every
# array block) is checked then; the space map bitmap is read by the first
# commit (which allocates); the ref-count btree only for a block counted 3
# or more, and the module's metadata has none (its tree is empty): the
# clone never reads it.
declare -A late=([bitmap]=ro [refnode]=rw)
for k in sb index bitmap refnode bitset-root bitset-leaf array; do
	b=${at[$k]} e=${late[$k]:-refused}
	off=8
	[ $k = array ] && off=16	# the array block's number is after its sizes
	case_ $k bit-flip "$e" flip $k 300
	case_ $k wrong-blocknr "$e" set $k $off 8 $((b + 7))
	if [ $k = sb ]; then
		case_ $k zeroed formatted zero $k
	fi
	# On a slow kernel, not the two that take the same check as the
	# two above: a bad checksum (as the flipped bit's) and a zeroed
	# block (block number 0: a wrong block number).
	slow_kernel && continue
	case_ $k wrong-checksum "$e" csum $k
	[ $k = sb ] || case_ $k zeroed "$e" zero $k
done

# Cycles: a block pointing to itself or to a block of another kind.
case_ sb root=self refused ptr sb 0 0
case_ sb root=index refused ptr sb 0 "$I"
case_ index bitmap=self ro ptr index 0 "$I"
case_ bitset-root child0=self refused ptr bitset-root 0 "$R"
case_ bitset-root child1=self refused ptr bitset-root 1 "$R"
case_ bitset-root child1=array refused ptr bitset-root 1 "$A"
case_ bitset-leaf value0=self refused ptr bitset-leaf 0 "$L"
case_ bitset-leaf value0=root refused ptr bitset-leaf 0 "$R"

# An array block claiming more entries than it holds (its reader would run
# past the block's end), or fewer (the words after it would shift).
case_ array entries=510 refused set array 8 4 510
case_ array entries=100 refused set array 8 4 100

# Pointers past the end of the device.
case_ sb root=end refused ptr sb 0 $END
case_ sb index=end refused ptr sb 1 $END
case_ sb refroot=end refused ptr sb 2 $END
case_ index bitmap=end ro ptr index 0 $END
case_ index bitmap=huge ro ptr index 0 $HUGE
case_ bitset-root child1=end refused ptr bitset-root 1 $END
case_ bitset-root child0=huge refused ptr bitset-root 0 $HUGE
case_ bitset-leaf value0=end refused ptr bitset-leaf 0 $END
case_ bitset-leaf value1=huge refused ptr bitset-leaf 1 $HUGE
case_ refnode entry=end rw set refnode 16 4 1 + set refnode 32 8 $END + \
	set refnode $((32 + 8 * 336)) 4 5	# one entry: block END counted 5

# Truncated: the space map reaches past the end; smaller than needed.
for d in "$short3" "$short1" "$tiny"; do
	dd if="$good" of="$d" bs=4096 count=$(($(dev_sectors "$d") / 8)) oflag=direct status=none
	load_case truncated "$(($(dev_sectors "$d") / 2))KiB" refused "$d"
done

log "the matrix:"
cat "$TEST_TMP/matrix"
if [ ${#problems[@]} -gt 0 ]; then
	printf '%s\n' "${problems[@]}" >&2
	fail "${#problems[@]} problem(s) (above)"
fi
log "ok: $n images"
