#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Crash consistency by replay. The clone's destination and metadata are
# two linear slices of one dm-log-writes device, so one log orders every
# write to both as it reached stable storage. A clone hydrates (slow
# source, small regions, read-driven hydration on) while a writer writes
# tagged 4 KiB blocks (seed 1000+N for the N-th write), plain, then fsync,
# or O_DIRECT|O_DSYNC (FUA), and marks the log ("dK") each time a fsync or
# FUA write has returned; between writes it reads blocks too, so that
# regions read are copied ahead of the pass. Every flush/FUA point of the
# log and random points between are replayed (tools/dmclone-replay,
# incrementally, --coherent: see lib/replay.sh, which also checks that the
# whole log replays to the logged device); on a copy of each, a
# no_hydration clone with the original source must: open read-write
# (status parses); hold at every block the source's data or a version
# written there, in place, never torn; hold every write made durable by a
# mark at or before the point (fsync: all writes before it; FUA: that
# write), at least at that generation; have on the destination only its
# filler, source or user data, and at least as many filler-free regions
# as it reports hydrated.
# timeout: 420
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/replay.sh"

need_module
need_module dm-log-writes
need_module dm-delay
need_cmd dmclone-pattern dmclone-replay dd shuf sync

rs=16					# 8 KiB regions
dsz=16384				# destination: 8 MiB, 1024 regions
msz=8192				# metadata: 4 MiB
nblk=$((dsz / 8))			# 4 KiB blocks
nrand=${REPLAY_RANDOM_POINTS:-25}	# random points between flush points
wsecs=${REPLAY_WRITER_SECONDS:-8}	# how long the writer runs

src=$(mkdev src 8)
logdev=$(mkdev log 128)
rams=$(mkbrd 3 16)			# logged, replay target, check copy
# shellcheck disable=SC2086,SC2116 # the names, on one line
read -r ram0 ram1 ram2 <<<"$(echo $rams)"
fill_pattern "$src" 1 >/dev/null	# the source: seed 1

# The logged device: destination filled with seed 99 (neither source nor
# user data: a region recorded hydrated but never copied shows it),
# metadata zeroed. The replay target starts as its copy.
fill_pattern "$ram0" 99 0 $dsz >/dev/null
dd if=/dev/zero of="$ram0" bs=512 seek=$dsz count=$msz oflag=direct status=none
dd if="$ram0" of="$ram1" bs=1M iflag=direct oflag=direct status=none	# the base
dd if=/dev/zero of="$logdev" bs=4096 count=1 oflag=direct conv=notrunc status=none

dm_create lw "0 $(dev_sectors "$ram0") log-writes $ram0 $logdev"
dm_create dst "0 $dsz linear /dev/mapper/lw 0"
dm_create mta "0 $msz linear /dev/mapper/lw $dsz"
dm_create slowsrc "$(delay_table "$src" 25)"	# copies in flight for 25 ms
clone_create c /dev/mapper/mta /dev/mapper/dst /dev/mapper/slowsrc $rs \
	0 4 hydration_threshold 2 hydration_batch_size 1
clone=/dev/mapper/c
q=/sys/block/dm-$(dmsetup info -c --noheadings -o minor c | tr -d ' ')/queue
log "clone: write_cache $(cat "$q/write_cache"), fua $(cat "$q/fua"); $(clone_status c)"

# ---------------------------------------------------------------- workload

writes=$TEST_TMP/writes			# "SEQ BLOCK NBLOCKS", once acknowledged
durable=$TEST_TMP/durable		# "K fsync MAXSEQ" or "K fua SEQ"
: >"$writes"
: >"$durable"
seq=0 k=0 nfsync=0 nfua=0 nread=0
# Blocks written with FUA since the last fsync: plain writes keep off them
# (dm-log-writes cannot order a plain write after a FUA write to the same
# blocks before the next flush; see lib/replay.sh).
declare -A fua_blocks=()

# write_blocks BLOCK N [dsync]: write N blocks at BLOCK as write number seq+1.
write_blocks() {
	seq=$((seq + 1))
	dmclone-pattern gen $((1000 + seq)) $(($1 * 8)) $(($2 * 8)) |
		dd of=$clone bs=4096 count="$2" seek="$1" iflag=fullblock \
			oflag=direct${3:+,$3} conv=notrunc status=none ||
		fail "write $seq (blocks $1+$2) failed"
	echo "$seq $1 $2" >>"$writes"
}

# durable_mark KIND SEQ: record what is durable now and mark the log.
durable_mark() {
	k=$((k + 1))
	echo "$k $1 $2" >>"$durable"
	dm_message lw mark "d$k"
}

end=$((SECONDS + wsecs))
while [ $SECONDS -lt $end ]; do
	b=$((RANDOM % nblk))
	n=$((1 + RANDOM % 3))
	[ $((b + n)) -le $nblk ] || n=$((nblk - b))
	op=$((RANDOM % 6))
	if [ $op -lt 4 ]; then
		for ((i = b; i < b + n; i++)); do
			[ -z "${fua_blocks[$i]:-}" ] || continue 2
		done
	fi
	case $op in
	0 | 1 | 2)
		write_blocks $b $n ;;
	3)
		write_blocks $b $n
		sync $clone || fail "fsync of the clone failed"
		fua_blocks=()
		nfsync=$((nfsync + 1))
		durable_mark fsync $seq ;;
	4)
		write_blocks $b $n dsync
		for ((i = b; i < b + n; i++)); do fua_blocks[$i]=1; done
		nfua=$((nfua + 1))
		durable_mark fua $seq ;;
	5)
		# A read: of regions not copied yet, it queues them for copying
		# ahead of the background pass (read-driven hydration).
		dd if=$clone of=/dev/null bs=4096 count=$n skip=$b iflag=direct status=none ||
			fail "read of blocks $b+$n failed"
		nread=$((nread + 1)) ;;
	esac
done
st=$(clone_status c)
log "writer: $seq writes, $nfsync fsyncs, $nfua FUA writes, $nread reads; $st"
h=$(clone_hydrated c)
[ "$h" -lt "$(clone_regions c)" ] || log "note: hydration completed during the workload"

dm_remove c
dm_remove slowsrc
dm_remove mta
dm_remove dst
dm_remove lw
dmclone-replay stats "$logdev" | sed 's/^/  /'
replay_check_model "$logdev" "$ram1" "$ram0" "$ram2" $((dsz + msz))

# ---------------------------------------------------------------- replay

points=$TEST_TMP/points
dmclone-replay list "$logdev" >"$points.list"
awk '$2 != "mark" { print $1 }' "$points.list" >"$points.flush"
awk '$2 == "mark" && $5 ~ /^d[0-9]+$/ { print $1, substr($5, 2) }' "$points.list" >"$points.marks"
nent=$(dmclone-replay stats "$logdev" | awk '/^entries:/ { print $2 }')
nflush=$(wc -l <"$points.flush")
[ "$nflush" -gt 0 ] || fail "the log has no flush/FUA point"
[ "$(wc -l <"$points.marks")" -eq "$k" ] ||
	fail "the log has $(wc -l <"$points.marks") durability marks, the writer made $k"
# Random points: entries that are not flush/FUA points.
shuf -i 1-"$nent" | grep -vxF -f "$points.flush" | head -n "$nrand" >"$points.rand" || true
nrand=$(wc -l <"$points.rand")
sort -n -u "$points.flush" "$points.rand" >"$points.all"
log "log: $nent entries, $nflush flush/FUA points, $k durability marks; checking $nflush + $nrand points"

# check_clone_awk K: reads the identify map of the clone on stdin; prints
# one line per inconsistency. K: the durability marks in force.
check_clone_awk() {
	awk -v K="$1" -v nblk=$nblk -v wf="$writes" -v df="$durable" '
	BEGIN {
		while ((getline l < wf) > 0) {
			split(l, w, " ")
			for (i = 0; i < w[3]; i++)
				ok[w[2] + i, 1000 + w[1]] = 1
			wb[w[1]] = w[2]; wn[w[1]] = w[3]
		}
		fs = 0
		while ((getline l < df) > 0) {
			split(l, d, " ")
			if (d[1] > K)
				continue
			if (d[2] == "fsync" && d[3] > fs)
				fs = d[3]
			if (d[2] == "fua")
				fua[d[3]] = d[1]
			else
				fsk[d[3]] = d[1]
		}
		for (s in wb)
			if (s + 0 <= fs || (s in fua))
				for (i = 0; i < wn[s]; i++)
					if (need[wb[s] + i] < s + 0)
						need[wb[s] + i] = s + 0
		# how each write became durable, for the messages
		m = "not durable"
		for (n = 1; n in wb; n++)
			;
		for (s = n - 1; s >= 1; s--) {
			if (s in fsk)
				m = "fsync at mark d" fsk[s]
			how[s] = (s in fua) ? "FUA, mark d" fua[s] : m
		}
	}
	{
		split($1, a, /[-:]/)
		if ($2 != "seed" || NF != 5) {
			print "sectors " a[1] "-" a[2] ": " substr($0, index($0, $2))
			bad++
			next
		}
		split($5, f, "-")
		if (f[1] != a[1]) {
			print "sectors " a[1] "-" a[2] ": misplaced data: " $0
			bad++
			next
		}
		for (b = int(a[1] / 8); b <= int(a[2] / 8); b++) {
			if ((b in got) && got[b] != $3) {
				print "block " b ": torn: seeds " got[b] " and " $3
				bad++
			}
			got[b] = $3
			if ($3 != 1 && !((b, $3) in ok)) {
				print "block " b ": seed " $3 ": not written there by anyone"
				bad++
			}
		}
	}
	END {
		for (b = 0; b < nblk; b++) {
			if (!(b in got))
				continue
			if ((b in need) && (got[b] == 1 || got[b] - 1000 < need[b])) {
				print "block " b ": lost durable write " need[b] " (blocks " \
					wb[need[b]] "+" wn[need[b]] ", " how[need[b]] "), holds " \
					(got[b] == 1 ? "the source" : "write " got[b] - 1000)
				bad++
			}
		}
	}'
}

# check_dest_awk HYDRATED: reads the identify map of the destination slice;
# prints one line per inconsistency.
check_dest_awk() {
	awk -v h="$1" -v rs=$rs -v nreg=$((dsz / rs)) -v wf="$writes" '
	BEGIN {
		while ((getline l < wf) > 0) {
			split(l, w, " ")
			for (i = 0; i < w[3]; i++)
				ok[w[2] + i, 1000 + w[1]] = 1
		}
	}
	{
		split($1, a, /[-:]/)
		split($5, f, "-")
		if ($2 != "seed" || NF != 5 || f[1] != a[1]) {
			print "destination sectors " a[1] "-" a[2] ": " substr($0, index($0, $2))
			bad++
			next
		}
		if ($3 == 99) {
			for (r = int(a[1] / rs); r <= int(a[2] / rs); r++)
				filler[r] = 1
			next
		}
		if ($3 == 1)
			next
		for (b = int(a[1] / 8); b <= int(a[2] / 8); b++)
			if (!((b, $3) in ok)) {
				print "destination block " b ": seed " $3 ": not written there by anyone"
				bad++
			}
	}
	END {
		full = 0
		for (r = 0; r < nreg; r++)
			if (!(r in filler))
				full++
		if (full < h)
			print "metadata says " h " regions are hydrated, the destination holds data in only " full
	}'
}

state=$TEST_TMP/replay.state
rm -f "$state"
# The copy of each replayed state, under fixed slices; the clone is
# created on them per point.
dm_create chd "0 $dsz linear $ram2 0"
dm_create chm "0 $msz linear $ram2 $dsz"
_dmc_register dm chc
checked=0 nbad=0 t0=$SECONDS
while read -r p <&3; do
	dmclone-replay replay "$logdev" "$ram1" --to "$p" --state "$state" --coherent 2>"$TEST_TMP/err" ||
		fail "replay to entry $p failed: $(cat "$TEST_TMP/err")"
	kk=$(awk -v p="$p" '$1 <= p { k = $2 } END { print k + 0 }' "$points.marks")
	dd if="$ram1" of="$ram2" bs=1M count=$(((dsz + msz) / 2048)) iflag=direct oflag=direct status=none
	what="entry $p (marks d1..d$kk in force)"
	if ! dmsetup create chc --table "$(clone_table /dev/mapper/chm /dev/mapper/chd "$src" $rs 1 no_hydration)" 2>"$TEST_TMP/err"; then
		echo "INCONSISTENT at $what: the clone does not open: $(cat "$TEST_TMP/err"); $(dmesg | tail -n 3)"
		nbad=$((nbad + 1))
	else
		st=$(clone_status chc)
		# shellcheck disable=SC2086 # the status line, split into its words
		set -- $st
		hy=${4%/*}
		if [ "${*: -1}" != rw ] || ! [[ $hy =~ ^[0-9]+$ ]]; then
			echo "INCONSISTENT at $what: status: $st"
			nbad=$((nbad + 1))
			hy=0
		fi
		out=$(identify_dev /dev/mapper/chc | check_clone_awk "$kk")
		dmsetup remove chc || fail "cannot remove the check clone"
		out2=$(identify_dev /dev/mapper/chd | check_dest_awk "$hy")
		[ -z "$out2" ] || out="${out:+$out$'\n'}$out2"
		if [ -n "$out" ]; then
			echo "INCONSISTENT at $what: $st"
			echo "$out" | head -n 10 | sed 's/^/    /'
			nbad=$((nbad + 1))
		fi
	fi
	checked=$((checked + 1))
	[ $((checked % 25)) -ne 0 ] || log "$checked points checked ($((SECONDS - t0)) s), at entry $p, $nbad inconsistencies"
done 3<"$points.all"

echo "checked $checked replay points ($nflush flush/FUA points, $nrand random), $nbad inconsistencies"
[ "$nbad" -eq 0 ] || fail "$nbad replay points are inconsistent"
