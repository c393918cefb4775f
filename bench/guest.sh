#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The in-guest half of bench/run: measures the scenarios and prints raw
# figures; bench/run (on the host) aggregates them into the table.
#
#   guest.sh [--size MiB] [--region SECTORS] [--reps N] [--only LIST]
#            [--delay MS] [--fio-secs S] [--cap S] [--qd N] [--interval MS]
#            [--ft-ios N] [--mem-tib N] [--done-gib N] [--plot 0|1]
#            [--impls LIST]
#
# --impls: the implementations and configurations to measure, in turn, in
# the same run: ours (our module, loaded by modprobe), peer (the kernel's
# own dm-clone, insmod of the image's copy, the same table lines as ours),
# tuned (the peer, hand-tuned: 64 KiB regions, hydration_threshold 32,
# hydration_batch_size 32). Default: ours. The module is reloaded between
# them, every clone device removed first; the results of the peer's runs
# carry the row id with a suffix, @peer or @tuned.
#
# Hydrations are timed from the resume (or the enable_hydration message)
# to the dm event the target raises when the last region is hydrated:
# nothing polls the status meanwhile. Progress curves for the plot come
# from extra runs (--plot 1) that poll every --interval ms.
#
# Output protocol (stdout; every other line is a progress message):
#   @@ROW id<TAB>scenario<TAB>unit<TAB>limit<TAB>op<TAB>target
#         a table row: "op target" is the condition on ours/limit
#         (">= 0.90", "<= 1.00"), or "-" for a figure without target
#   @@R id rep ours limit      one measurement (limit "-" if none)
#   @@N id text                a note on a row (capped run, method)
#   @@X text                   the run cannot be made (no peer): the reason
#   @@P series t_seconds percent_hydrated     hydration progress (plot)
#   @@I key value              description of the guest and the run
#   @@DMCLONE-DEADLINE N       for scripts/guest-run.sh (dead guest)
set -o pipefail
export DM_DISABLE_UDEV=1 LC_ALL=C
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
here=$(cd "$(dirname "$0")" && pwd)
SAMPLE=$here/dmc-sample
# The sampler's way of seeing the end of a hydration: the dm event (ours
# raises it at completion) or, for the peer, polling (-i MS): its event
# comes at its next 1 s tick after the completion, up to a second late.
POLL=()

SIZE=1024 REGION=8 REPS=1 ONLY="1 2 3 4 5 6 7 8 9 10" DELAY=10 FIO_SECS=10 CAP=120
QD=16 INTERVAL=100 FT_IOS=2000 MEM_TIB=4 DONE_GIB=256 PLOT=0 IMPLS=ours
while [ $# -gt 0 ]; do
	case "$1" in
	--size) SIZE=$2 ;;
	--region) REGION=$2 ;;
	--reps) REPS=$2 ;;
	--only) ONLY=$2 ;;
	--delay) DELAY=$2 ;;
	--fio-secs) FIO_SECS=$2 ;;
	--cap) CAP=$2 ;;
	--qd) QD=$2 ;;
	--interval) INTERVAL=$2 ;;
	--ft-ios) FT_IOS=$2 ;;
	--mem-tib) MEM_TIB=$2 ;;
	--done-gib) DONE_GIB=$2 ;;
	--plot) PLOT=$2 ;;
	--impls) IMPLS=${2//,/ } ;;
	*) echo "guest.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
ONLY=${ONLY//,/ }

ST=/tmp/bench			# scratch: sampler outputs, per-rep figures
rm -rf "$ST"
mkdir -p "$ST"
T_START=$SECONDS
RBYTES=$((REGION * 512))

log() { printf '[%4ds] %s\n' $((SECONDS - T_START)) "$*"; }
deadline() { echo "@@DMCLONE-DEADLINE $1"; }
row() { printf '@@ROW %s\t%s\t%s\t%s\t%s\t%s\n' "$@"; }
# Results and notes of the peer's runs: the row id with the suffix SFX.
SFX=""
res() { echo "@@R $1$SFX $2 $3 $4"; }
note() { echo "@@N $1$SFX $2"; }
info() { echo "@@I $1 $2"; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
# calc EXPR: floating point arithmetic (awk), printed with up to 6 digits.
calc() { awk "BEGIN { v = $1; printf \"%.6g\n\", v }"; }

# ------------------------------------------------------------ devices

SRC=/dev/ram0 DST=/dev/ram1 META="" SECTORS=0
# Every dm device created here, removed in reverse order by cleanup.
DEVS=()
dm_up() {	# dm_up NAME TABLE: create and resume
	dmsetup create "$1" --table "$2" || { log "dmsetup create $1 failed: $2"; return 1; }
	DEVS+=("$1")
}
dm_load() {	# dm_load NAME TABLE: create with the table loaded, not resumed
	dmsetup create "$1" --notable && dmsetup load "$1" --table "$2" ||
		{ log "dmsetup load $1 failed: $2"; return 1; }
	DEVS+=("$1")
}
dm_rm() {
	local n
	for n in "$@"; do
		dmsetup remove --retry "$n" >/dev/null 2>&1 || dmsetup remove --force "$n" >/dev/null 2>&1
	done
}
cleanup_devs() {
	local i
	for ((i = ${#DEVS[@]} - 1; i >= 0; i--)); do
		dmsetup info "${DEVS[i]}" >/dev/null 2>&1 && dm_rm "${DEVS[i]}"
	done
	DEVS=()
}
# The sysfs stat file of a dm device.
statfile() { echo "/sys/block/dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d " ")/stat"; }
# Fresh metadata: zero its first block, the next clone formats it.
new_meta() { dd if=/dev/zero of="$META" bs=4k count=1 oflag=direct status=none; }
# clone_args [FEATURES]: the optional words of a table line: FEATURES
# ("1 no_hydration"), then the core arguments of the configuration (CORE,
# set for the hand-tuned peer).
CORE=""
clone_args() {
	if [ -n "$CORE" ]; then
		echo "${1:-0} $CORE"
	else
		echo "${1:-}"
	fi
}
# clone_line SRCDEV [FEATURES]: a table line over the whole device.
clone_line() {
	local a
	a=$(clone_args "${2:-}")
	echo "0 $SECTORS clone $META $DST $1 $REGION${a:+ $a}"
}

# Slab + VmallocUsed in KiB, after dropping the caches (dentries and
# inodes, dm-bufio's clean buffers) and the empty slabs of every cache, to
# lower the noise.
kmem_kb() {
	local f
	sync
	echo 3 >/proc/sys/vm/drop_caches
	for f in /sys/kernel/slab/*/shrink; do echo 1 >"$f"; done 2>/dev/null
	sleep 1
	awk '/^Slab:/ { s = $2 } /^VmallocUsed:/ { v = $2 } END { print s + v }' /proc/meminfo
}

# ------------------------------------------------------------ fio

# fio_terse ARGS...: run fio, print its terse (version 3) line.
# Fields: 7 read KiB/s, 8 read IOPS, 18-37 read clat percentiles (us),
# 48 write KiB/s, 49 write IOPS, 59-78 write clat percentiles.
fio_terse() {
	fio --output-format=terse --terse-version=3 --percentile_list=50:99:99.9 \
		--ioengine=libaio --direct=1 --randrepeat=0 "$@" 2>"$ST/fio.err" | grep '^3;' | tail -n 1
}
ffield() { cut -d';' -f"$1" <<<"$2"; }
# fpct r|w PCT LINE: a clat percentile (us) of a terse line.
fpct() {
	awk -F';' -v s="$([ "$1" = r ] && echo 18 || echo 59)" -v p="$2" '{
		for (i = s; i < s + 20; i++) { split($i, a, "="); if (a[1] != "" && a[1] + 0 == p + 0) { print a[2]; exit } } }' <<<"$3"
}
# fio_bg DEV RW: start a steady 4 KiB load on DEV in the background (pid in FIO_PID).
fio_bg() {
	fio --name=load --filename="$1" --rw="$2" --bs=4k --iodepth="$QD" \
		--ioengine=libaio --direct=1 --time_based --runtime=3600 \
		--norandommap --randrepeat=0 --output-format=terse >/dev/null 2>&1 &
	FIO_PID=$!
}
fio_stop() {
	[ -n "${FIO_PID:-}" ] || return 0
	local i st
	kill -TERM "$FIO_PID" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		# Gone, or a zombie waiting for us.
		read -r _ _ st _ 2>/dev/null <"/proc/$FIO_PID/stat" || break
		[ "$st" = Z ] && break
		sleep 0.1
	done
	kill -KILL "$FIO_PID" 2>/dev/null
	wait "$FIO_PID" 2>/dev/null
	FIO_PID=""
}
# wait_io NAME: until I/O completes on dm device NAME (the load is running).
wait_io() {
	local f r w i
	f=$(statfile "$1")
	for ((i = 0; i < 300; i++)); do
		read -r r _ _ _ w _ <"$f"
		[ $((r + w)) -gt 0 ] && return 0
		sleep 0.1
	done
	log "no I/O on $1 after 30 s"
	return 1
}

# ------------------------------------------------------------ sampler output

# The sampler prints "t_ms hydrated total [r w ws]..." lines.
# s_rate FILE: hydration rate in MB/s between the first and last line.
s_rate() {
	awk -v rb="$RBYTES" 'NR == 1 { t0 = $1; h0 = $2 } { t = $1; h = $2 }
		END { if (t > t0) printf "%.6g\n", (h - h0) * rb / ((t - t0) / 1000) / 1e6; else print "nan" }' "$1"
}
# s_secs FILE: seconds from t = 0 to the last line.
s_secs() { awk 'END { printf "%.3f\n", $1 / 1000 }' "$1"; }
# s_iops FILE: user I/Os per second (reads + writes of the first -s stat).
s_iops() {
	awk 'NR == 1 { t0 = $1; n0 = $4 + $5 } { t = $1; n = $4 + $5 }
		END { if (t > t0) printf "%.6g\n", (n - n0) / ((t - t0) / 1000); else print "nan" }' "$1"
}
# s_progress SERIES FILE: the plot's points, about every 100 ms.
s_progress() {
	awk -v s="$1" 'NR == 1 || $1 - last >= 100 || $2 == $3 {
		printf "@@P %s %.3f %.3f\n", s, $1 / 1000, $3 ? 100 * $2 / $3 : 0; last = $1 }' "$2"
}
# poll_note ID: a hydration of the peer, timed by polling.
poll_note() {
	[ ${#POLL[@]} = 0 ] || note "$1" "timed by polling the status every ${POLL[1]} ms (the peer's dm event comes up to 1 s after the completion)"
}
# sampler_note ID RC: note a capped or failed sampling.
sampler_note() {
	case "$2" in
	0) ;;
	2) note "$1" "capped: not complete after ${CAP} s, rate over the capped window" ;;
	3) note "$1" "the clone left rw mode during the measurement" ;;
	4) note "$1" "no dm event when the last region was hydrated: timed to the ${CAP} s cap" ;;
	*) note "$1" "sampler failed (status $2)" ;;
	esac
}

# ------------------------------------------------------------ commits

# A kprobe on the metadata commit counts commits (no tracing output kept).
KPROBE=""
tracefs=/sys/kernel/debug/tracing
setup_kprobe() {
	[ -w "$tracefs/kprobe_events" ] || return 0
	if echo 'p:dmcbench_commit dm_clone_metadata_commit' >>"$tracefs/kprobe_events" 2>/dev/null &&
		echo 1 >"$tracefs/events/kprobes/dmcbench_commit/enable" 2>/dev/null; then
		KPROBE=dmcbench_commit
		echo 64 >"$tracefs/buffer_size_kb" 2>/dev/null
	else
		log "no kprobe on dm_clone_metadata_commit: commits not counted"
	fi
}
# Before the module is unloaded: the probe goes with it.
teardown_kprobe() {
	[ -n "$KPROBE" ] || return 0
	echo 0 >"$tracefs/events/kprobes/$KPROBE/enable" 2>/dev/null
	echo "-:$KPROBE" >>"$tracefs/kprobe_events" 2>/dev/null
	KPROBE=""
}
commits() {
	if [ -n "$KPROBE" ]; then
		awk -v k="$KPROBE" '$1 == k { print $2 }' "$tracefs/kprobe_profile"
	else
		echo nan
	fi
}

# ------------------------------------------------------------ scenarios

# Idle hydration (scenario 1, and the base of 3 and 7): dd limit, then an
# untuned clone from resume to hydrated == total. Figures in $ST/*.REP.
hydrate_idle() {
	local rep=$1 out ddout dds limit rate rc c0 c1 m0 m1 secs msf
	out=$ST/idle.$rep.txt
	log "idle: dd $SIZE MiB source -> destination (limit)"
	ddout=$(dd if="$SRC" of="$DST" bs=1M count="$SIZE" iflag=direct oflag=direct 2>&1)
	dds=$(awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) print $(i - 1) }' <<<"$ddout")
	limit=$(calc "$SIZE * 1048576 / $dds / 1e6")
	# Zero the destination, so that the hydration's copy can be checked.
	dd if=/dev/zero of="$DST" bs=1M count="$SIZE" oflag=direct status=none
	new_meta
	dm_load cl "$(clone_line "$SRC")" || return 1
	msf=$(statfile bmeta)
	c0=$(commits)
	read -r _ _ _ _ _ _ m0 _ <"$msf"
	log "idle: untuned clone, resume -> hydrated"
	# Timed to the completion event, which follows the completion commit.
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$out"
	rc=$?
	dmsetup mknodes cl
	sampler_note 1 "$rc"
	poll_note 1
	c1=$(commits)
	read -r _ _ _ _ _ _ m1 _ <"$msf"
	rate=$(s_rate "$out")
	secs=$(s_secs "$out")
	echo "$rate" >"$ST/idle_rate.$rep"
	echo "$limit" >"$ST/dd_rate.$rep"
	log "idle: dd $limit MB/s, clone $rate MB/s ($secs s, $((c1 - c0)) commits, $(((m1 - m0) / 2)) KiB of metadata written)"
	if [ "$rep" = 1 ] && [ "$rc" = 0 ]; then
		if dmclone-pattern check "$DST" 1 0 "$SECTORS" >"$ST/check.txt" 2>&1; then
			log "idle: destination checked: byte-exact copy of the source"
		else
			log "idle: DESTINATION DIFFERS FROM THE SOURCE after hydration:"
			head -n 5 "$ST/check.txt"
			note 1 "the destination did not match the source after hydration"
		fi
	fi
	dm_rm cl
	want 1 && res 1 "$rep" "$rate" "$limit"
	if want 7; then
		[ ${#POLL[@]} = 0 ] || note 7m "commits within the polled hydration: the peer's completion commit comes at its next tick, after"
		res 7c "$rep" "$(calc "($c1 - $c0) / $secs")" -
		res 7m "$rep" "$(calc "($m1 - $m0) * 512 / 1048576 / ($SIZE / 1024)")" -
		[ "$c1" != nan ] && [ $((c1 - c0)) -gt 0 ] &&
			res 7w "$rep" "$(calc "($m1 - $m0) * 512 / 1024 / ($c1 - $c0)")" -
	fi
	return 0
}

# Scenario 2: a latency-bound source (dm-delay on reads).
latency_bound() {
	local rep=$1 l1 l64 c32 rate rate0 t0 fbusy busy
	dm_up dsrc "0 $SECTORS delay $SRC 0 $DELAY" || return 1
	log "latency: fio sequential read of the delayed source, QD 32"
	t0=$(cpu_ticks)
	l1=$(ffield 7 "$(fio_terse --name=seq --filename=/dev/mapper/dsrc --rw=read --bs=1M \
		--iodepth=32 --size="${SIZE}M" --runtime="$CAP")")
	fbusy=$(cpu_busy "$t0" "$(cpu_ticks)")
	l64=$(ffield 7 "$(fio_terse --name=seq --filename=/dev/mapper/dsrc --rw=read --bs=64k \
		--iodepth=32 --size="${SIZE}M" --runtime="$CAP")")
	l1=$(calc "$l1 * 1024 / 1e6")
	l64=$(calc "$l64 * 1024 / 1e6")
	log "latency: fio reading the delayed source and writing the destination side by side"
	c32=$(copy_bound /dev/mapper/dsrc)
	log "latency: untuned clone over the delayed source"
	clone_over /dev/mapper/dsrc "$ST/lat.$rep.txt" 2 || return 1
	rate=$CLONE_RATE busy=$CLONE_BUSY
	poll_note 2
	dm_rm dsrc
	# The same path without the latency: what hiding it perfectly gives.
	dm_up dsrc "0 $SECTORS delay $SRC 0 0" || return 1
	log "latency: untuned clone over the same dm-delay, 0 ms"
	clone_over /dev/mapper/dsrc "$ST/lat0.$rep.txt" 2z || return 1
	rate0=$CLONE_RATE
	dm_rm dsrc
	log "latency: fio 1M $l1 MB/s, 64k $l64 MB/s, read+write side by side $c32 MB/s, clone $rate MB/s (0 ms: $rate0 MB/s)"
	res 2 "$rep" "$rate" "$l1"
	res 2k "$rep" "$rate" "$l64"
	res 2c "$rep" "$rate" "$c32"
	res 2x "$rep" "$c32" "$l1"
	res 2z "$rep" "$rate" "$rate0"
	log "latency: guest CPU busy: $busy % while the clone copies, $fbusy % while fio reads"
	res 2u "$rep" "$busy" 100
	res 2v "$rep" "$fbusy" 100
}

# cpu_ticks: the guest's CPU time so far, in clock ticks: "busy total"
# (busy: all but idle and iowait), summed over the CPUs.
cpu_ticks() {
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i
		print t - $5 - $6, t; exit }' /proc/stat
}

# cpu_busy "BUSY0 TOTAL0" "BUSY1 TOTAL1": percent of the CPU time between
# two cpu_ticks that was busy.
cpu_busy() {
	local b0 t0 b1 t1
	read -r b0 t0 <<<"$1"
	read -r b1 t1 <<<"$2"
	[ $((t1 - t0)) -gt 0 ] || { echo nan; return; }
	calc "100 * ($b1 - $b0) / ($t1 - $t0)"
}

# cpu_secs "BUSY0 TOTAL0" "BUSY1 TOTAL1": the guest's busy CPU time
# between two cpu_ticks, in seconds (summed over the CPUs; /proc/stat
# counts in USER_HZ, 100 a second).
cpu_secs() {
	local b0 b1
	read -r b0 _ <<<"$1"
	read -r b1 _ <<<"$2"
	calc "($b1 - $b0) / 100"
}

# clone_over SRCDEV OUT ID: hydrate an untuned clone of SRCDEV (sampler
# output in OUT, notes under row ID), remove it; its rate in MB/s in
# CLONE_RATE, the share of the guest's CPU time busy meanwhile (percent)
# in CLONE_BUSY.
clone_over() {
	local rc t0
	# brd allocates (and zeroes) a page at its first write, which a disk
	# does not: write the destination once, as scenario 1 does.
	dd if=/dev/zero of="$DST" bs=1M count="$SIZE" oflag=direct status=none
	new_meta
	dm_load cl "$(clone_line "$1")" || return 1
	t0=$(cpu_ticks)
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$2"
	rc=$?
	CLONE_BUSY=$(cpu_busy "$t0" "$(cpu_ticks)")
	sampler_note "$3" "$rc"
	dmsetup mknodes cl
	dm_rm cl
	CLONE_RATE=$(s_rate "$2")
}

# copy_bound SRCDEV: read SRCDEV and write the destination at the same
# time, each sequentially with bs=1M at QD 32 (two fio jobs side by side):
# what any copy has to do, without waiting for a read before its write.
# Prints the rate in MB/s of the slower of the two (SIZE over its runtime).
copy_bound() {
	local out rt_r rt_w rt
	out=$(fio --output-format=terse --terse-version=3 --ioengine=libaio --direct=1 \
		--bs=1M --iodepth=32 --size="${SIZE}M" --runtime="$CAP" \
		--name=rd --filename="$1" --rw=read \
		--name=wr --filename="$DST" --rw=write 2>"$ST/fio.err" | grep '^3;')
	rt_r=$(awk -F';' '$3 == "rd" { print $9 }' <<<"$out")
	rt_w=$(awk -F';' '$3 == "wr" { print $50 }' <<<"$out")
	rt=$((${rt_r:-0} > ${rt_w:-0} ? ${rt_r:-0} : ${rt_w:-0}))
	if [ -z "$rt_r" ] || [ -z "$rt_w" ] || [ "$rt" -le 0 ]; then
		echo nan
		return
	fi
	calc "$SIZE * 1048576 / ($rt / 1000) / 1e6"
}

# The idle rate of this rep (from scenario 1, or measured now).
idle_rate() {
	[ -f "$ST/idle_rate.$1" ] || hydrate_idle "$1" >&2 || return 1
	cat "$ST/idle_rate.$1"
}

# Scenario 3: a steady 4 KiB load (randread or randwrite) on the clone,
# first with hydration disabled (baseline IOPS), then with hydration
# enabled 1 s into the load, until hydrated == total.
under_load() {
	local rep=$1 kind=$2 id=$3 base out
	base=$ST/base.$kind.$rep.txt out=$ST/load.$kind.$rep.txt
	local idle iops0 iops1 rate rc sf r0 r1 w0 w1 t0 t1 ddout dds ddrate iopsd c0 dbusy busy
	idle=$(idle_rate "$rep") || return 1
	new_meta
	dm_up cl "$(clone_line "$SRC" "1 no_hydration")" || return 1
	sf=$(statfile cl)
	log "load $kind: ${FIO_SECS} s with hydration disabled (baseline)"
	fio_bg /dev/mapper/cl "$kind"
	wait_io cl || { fio_stop; return 1; }
	sleep 1
	"$SAMPLE" -d "$FIO_SECS" -s "$sf" cl >"$base"
	iops0=$(s_iops "$base")
	# Reference: the same load beside the most frugal copy there is, dd
	# (source to destination, as in scenario 1): how the guest's CPU is
	# shared between a copy and the load, whatever the copier.
	read -r r0 _ _ _ w0 _ <"$sf"
	t0=$EPOCHREALTIME c0=$(cpu_ticks)
	ddout=$(dd if="$SRC" of="$DST" bs=1M count="$SIZE" iflag=direct oflag=direct 2>&1)
	t1=$EPOCHREALTIME dbusy=$(cpu_busy "$c0" "$(cpu_ticks)")
	read -r r1 _ _ _ w1 _ <"$sf"
	fio_stop
	dds=$(awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) print $(i - 1) }' <<<"$ddout")
	ddrate=$(calc "$SIZE * 1048576 / $dds / 1e6")
	iopsd=$(calc "($r1 + $w1 - $r0 - $w0) / ($t1 - $t0)")
	log "load $kind: beside a dd copy: dd $ddrate MB/s (alone $(cat "$ST/dd_rate.$rep")), user IOPS $iopsd (alone $iops0)"
	res "${id}d" "$rep" "$ddrate" "$(cat "$ST/dd_rate.$rep")"
	res "${id}x" "$rep" "$iopsd" "$iops0"
	dm_rm cl

	new_meta
	dm_up cl "$(clone_line "$SRC" "1 no_hydration")" || return 1
	sf=$(statfile cl)
	log "load $kind: hydration enabled under the load"
	fio_bg /dev/mapper/cl "$kind"
	wait_io cl || { fio_stop; return 1; }
	sleep 1
	c0=$(cpu_ticks)
	"$SAMPLE" "${POLL[@]}" -m enable_hydration -T "$CAP" -s "$sf" cl >"$out"
	rc=$?
	busy=$(cpu_busy "$c0" "$(cpu_ticks)")
	fio_stop
	sampler_note "${id}h" "$rc"
	poll_note "${id}h"
	rate=$(s_rate "$out")
	iops1=$(s_iops "$out")
	log "load $kind: hydration $rate MB/s (idle $idle) in $(s_secs "$out") s, user IOPS $iops1 (baseline $iops0)"
	dm_rm cl
	res "${id}h" "$rep" "$rate" "$idle"
	res "${id}i" "$rep" "$iops1" "$iops0"
	log "load $kind: guest CPU busy: $busy % while the clone copies, $dbusy % beside dd"
	res "${id}u" "$rep" "$busy" 100
	res "${id}v" "$rep" "$dbusy" 100
}

# Scenario 4: a hydrated clone against a linear table over the destination.
steady() {
	local rep=$1 rc t dev line v cl_v lin_v lin2_v order
	new_meta
	dm_load cl "$(clone_line "$SRC")" || return 1
	log "steady: hydrating the clone"
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$ST/steady-hyd.txt"
	rc=$?
	dmsetup mknodes cl
	[ "$rc" = 0 ] || { note 4r "the clone was not fully hydrated (sampler status $rc)"; }
	dm_up lin "0 $SECTORS linear $DST 0" || return 1
	# For the random reads, a second linear table too: the method's own
	# scatter (what two identical tables measure), row 4a.
	dm_up lin2 "0 $SECTORS linear $DST 0" || return 1
	for t in 4r 4w 4s; do
		cl_v=0 lin_v=0 lin2_v=0
		# Each device twice, in A B B A order (a drift of the guest's
		# speed during the row weighs on both alike), A alternating
		# from rep to rep; the mean of the two.
		order=$( ((rep % 2)) && echo "lin cl cl lin" || echo "cl lin lin cl")
		[ "$t" = 4r ] && order=$( ((rep % 2)) && echo "lin cl lin2 lin2 cl lin" || echo "cl lin lin2 lin2 lin cl")
		for dev in $order; do
			case $t in
			4r) line=$(fio_terse --name=rr --filename="/dev/mapper/$dev" --rw=randread --bs=4k \
				--iodepth="$QD" --norandommap --time_based --runtime="$FIO_SECS")
			    v=$(ffield 8 "$line") ;;
			4w) line=$(fio_terse --name=rw --filename="/dev/mapper/$dev" --rw=randwrite --bs=4k \
				--iodepth="$QD" --norandommap --time_based --runtime="$FIO_SECS")
			    v=$(ffield 49 "$line") ;;
			4s) line=$(fio_terse --name=sr --filename="/dev/mapper/$dev" --rw=read --bs=1M \
				--iodepth=4 --time_based --runtime="$FIO_SECS")
			    v=$(calc "$(ffield 7 "$line") * 1024 / 1e6") ;;
			esac
			case $dev in
			cl) cl_v=$(calc "$cl_v + $v / 2") ;;
			lin) lin_v=$(calc "$lin_v + $v / 2") ;;
			lin2) lin2_v=$(calc "$lin2_v + $v / 2") ;;
			esac
		done
		log "steady $t: clone $cl_v, linear $lin_v (second linear: $lin2_v)"
		res "$t" "$rep" "$cl_v" "$lin_v"
		[ "$t" = 4r ] && res 4a "$rep" "$lin2_v" "$lin_v"
	done
	dm_rm lin2 lin cl
}

# Scenario 5: p99 latency of 4 KiB writes to unhydrated regions (QD 1), one
# write per region at a random 4 KiB slot, in random order (fio replays an
# iolog), against the p99 of a region-sized random read of the source plus
# that of a region-sized random write of the destination, plus 1 ms.
first_touch() {
	local rep=$1 id=$2 region=$3 rb n per line ours lr lw log_file=$ST/ft.iolog
	rb=$((region * 512))
	n=$((SECTORS / region))
	[ "$n" -gt "$FT_IOS" ] && n=$FT_IOS
	per=$((rb / 4096))
	{
		echo "fio version 2 iolog"
		echo "/dev/mapper/cl add"
		echo "/dev/mapper/cl open"
		awk -v total=$((SECTORS / region)) -v n="$n" -v per="$per" -v seed="$rep$RANDOM" 'BEGIN {
			srand(seed)
			# n distinct regions out of total (Floyd), each at a random slot.
			for (j = total - n; j < total; j++) {
				r = int(rand() * (j + 1)); if (r in pick) r = j; pick[r] = 1; order[k++] = r
			}
			for (i = k - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = order[i]; order[i] = order[j]; order[j] = t }
			for (i = 0; i < k; i++) printf "/dev/mapper/cl write %d 4096\n", (order[i] * per + int(rand() * per)) * 4096
		}'
		echo "/dev/mapper/cl close"
	} >"$log_file"
	new_meta
	dm_up cl "0 $SECTORS clone $META $DST $SRC $region $(clone_args "1 no_hydration")" || return 1
	log "first touch ($((rb / 1024)) KiB regions): $n writes at QD 1"
	line=$(fio_terse --name=ft --read_iolog="$log_file" --iodepth=1 --replay_no_stall=1)
	ours=$(fpct w 99 "$line")
	log "first touch: p50 $(fpct w 50 "$line") us, p99 $ours us; hydrated $(dmsetup status --noflush cl | awk '{ print $7 }')"
	dm_rm cl
	line=$(fio_terse --name=sr --filename="$SRC" --rw=randread --bs="$rb" --iodepth=1 --number_ios="$n" --size="${SIZE}M")
	lr=$(fpct r 99 "$line")
	line=$(fio_terse --name=dw --filename="$DST" --rw=randwrite --bs="$rb" --iodepth=1 --number_ios="$n" --size="${SIZE}M")
	lw=$(fpct w 99 "$line")
	log "first touch: source read p99 $lr us, destination write p99 $lw us"
	res "$id" "$rep" "$ours" "$(calc "$lr + $lw + 1000")"
	# The hand-tuned peer has 64 KiB regions: its row 5 is also the 64 KiB
	# row, which it does not run again.
	if [ "$IMPL" = tuned ] && [ "$id" = 5 ] && [ "$REGION0" != 128 ]; then
		res 5x "$rep" "$ours" "$(calc "$lr + $lw + 1000")"
		note 5 "64 KiB regions (hand-tuned)"
	fi
}

# Scenario 6: kernel memory (slab + vmalloc) of a large sparse clone
# (zero targets), while hydrating and once complete.
memory() {
	local rep=$1 L regions a b c rc meta_mb t0
	local META=/dev/ram0 DST=/dev/mapper/zdst
	L=$((MEM_TIB << 31))
	regions=$(((L + REGION - 1) / REGION))
	# The bitset needs a bit per region in 4 KiB blocks, plus the btree,
	# and a commit that touches every block needs as many again.
	c=$(((DONE_GIB << 21) / REGION))
	# shellcheck disable=SC2017 # whole MiB first, on purpose
	meta_mb=$(((regions > c ? regions : c) / 8 / 1048576 * 5 / 2 + 32))
	modprobe brd rd_nr=1 rd_size=$((meta_mb * 1024)) max_part=0 || return 1
	dm_up zsrc "0 $L zero" && dm_up zdst "0 $L zero" || return 1
	a=$(kmem_kb)
	new_meta
	log "memory: ${MEM_TIB} TiB clone, $regions regions (metadata formatting)"
	t0=$SECONDS
	dm_up cl "0 $L clone $META $DST /dev/mapper/zsrc $REGION $(clone_args)" || return 1
	log "memory: created in $((SECONDS - t0)) s, hydrating 3 s"
	sleep 3
	b=$(kmem_kb)
	log "memory: slab+vmalloc grew by $((b - a)) KiB ($(calc "($b - $a) * 8192 / $regions") bits/region)"
	res 6 "$rep" "$(calc "($b - $a) * 8192 / $regions")" 1.25
	note 6 "${MEM_TIB} TiB of zero targets, $((RBYTES / 1024)) KiB regions, $((b - a)) KiB"
	dm_rm cl zsrc zdst

	# Release: a DONE_GIB clone, brought to completion quickly: a discard
	# of all but its last GiB marks those regions hydrated without copying
	# (the zero target cannot discard: nothing is passed down), then the
	# background copy hydrates the last GiB.
	L=$((DONE_GIB << 21))
	regions=$(((L + REGION - 1) / REGION))
	dm_up zsrc "0 $L zero" && dm_up zdst "0 $L zero" || return 1
	a=$(kmem_kb)
	new_meta
	dm_up cl "0 $L clone $META $DST /dev/mapper/zsrc $REGION $(clone_args)" || return 1
	sleep 2
	b=$(kmem_kb)
	dmsetup message cl 0 disable_hydration
	log "memory: ${DONE_GIB} GiB clone: +$((b - a)) KiB while hydrating; discarding all but the last GiB"
	t0=$SECONDS
	deadline $((CAP * 4 + 300))
	if blkdiscard -o 0 -l $(((L - 2097152) * 512)) /dev/mapper/cl; then
		log "memory: discard done in $((SECONDS - t0)) s; hydrating the rest"
		"$SAMPLE" "${POLL[@]}" -m enable_hydration -T "$((CAP * 3))" cl >"$ST/mem-done.txt"
		rc=$?
		log "memory: complete after $((SECONDS - t0)) s (sampler status $rc)"
		sleep 2
		c=$(kmem_kb)
		log "memory: after completion +$((c - a)) KiB"
		if [ "$rc" = 0 ]; then
			res 6d "$rep" "$(calc "($c - $a) * 8192 / $regions")" "$(calc "($b - $a) * 8192 / $regions")"
			note 6d "${DONE_GIB} GiB: +$((b - a)) KiB while hydrating, +$((c - a)) KiB once complete; completed by discarding all but the last GiB, then copying it"
		else
			note 6d "the clone did not complete (sampler status $rc)"
		fi
	else
		note 6d "blkdiscard of the clone failed"
	fi
	dm_rm cl zsrc zdst
	rmmod brd
}

# The metadata tools: clone_check of the largest clone's metadata (2^31
# regions, 8 TiB in 4 KiB regions, on 320 MiB), written by the module
# (formatted, a few regions written, committed), against reading the same
# device with dd: clone_check reads every block once, so dd is its limit.
tools() {
	local rep=$1 L=$((1 << 34)) t0 t1 t2 bytes
	local META=/dev/ram0 DST=/dev/mapper/zdst
	modprobe brd rd_nr=1 rd_size=$((320 * 1024)) max_part=0 || return 1
	dm_up zsrc "0 $L zero" && dm_up zdst "0 $L zero" || return 1
	new_meta
	log "tools: formatting the metadata of a 2^31-region clone"
	dm_up cl "0 $L clone $META $DST /dev/mapper/zsrc 8 1 no_hydration" || return 1
	dd if=/dev/zero of=/dev/mapper/cl bs=4k count=1 seek=$((1 << 30)) oflag=direct status=none
	dm_rm cl zsrc zdst
	bytes=$(blockdev --getsize64 "$META")
	t0=$(date +%s%N)
	clone_check -q "$META" || { note 8 "clone_check found the module's metadata damaged"; rmmod brd; return 1; }
	t1=$(date +%s%N)
	dd if="$META" of=/dev/null bs=1M iflag=direct status=none
	t2=$(date +%s%N)
	log "tools: clone_check $(((t1 - t0) / 1000000)) ms, dd $(((t2 - t1) / 1000000)) ms"
	res 8 "$rep" "$(calc "$bytes / (($t1 - $t0) / 1e9) / 1e6")" "$(calc "$bytes / (($t2 - $t1) / 1e9) / 1e6")"
	note 8 "320 MiB metadata on brd, 2^31 regions; clone_check $(((t1 - t0) / 1000000)) ms, dd $(((t2 - t1) / 1000000)) ms"
	rmmod brd
}

# Scenario 10: zero regions. A source half zeroes, extents of 1 MiB
# alternating data and zeroes (linear targets over a brd holding a pattern,
# zero targets between them), hydrated by an untuned clone onto a sparse
# destination: a loop device over a sparse file on tmpfs (row 10l: the
# file's allocated size against the data), then a thin volume (row 10: the
# pool's data blocks used against the blocks the data needs). A zero
# piece written as a zeroes write allocates nothing, where the destination
# advertises write zeroes; where it does not, the zeroes are written as
# data and the destination fills: the note gives write_zeroes_max_bytes.
zero() {
	local rep=$1 ext=2048 n i nd need wz used rc f lo mnt=$ST/zmnt dev
	local SECTORS=$((SIZE * 2048)) META=/dev/ram3 DST
	modprobe brd rd_nr=4 rd_size=$(((SIZE + 64) * 1024)) max_part=0 || return 1
	modprobe loop
	modprobe dm-thin-pool || { log "zero: no dm-thin-pool"; return 1; }
	n=$((SECTORS / ext))		# whole MiB
	nd=$(((n + 1) / 2))
	dmclone-pattern write /dev/ram0 1 0 $((nd * ext))
	for ((i = 0; i < n; i++)); do
		if ((i % 2 == 0)); then
			echo "$((i * ext)) $ext linear /dev/ram0 $((i * ext / 2))"
		else
			echo "$((i * ext)) $ext zero"
		fi
	done >"$ST/zsrc.table"
	dmsetup create zsrc <"$ST/zsrc.table" || { log "zero: cannot create the source"; return 1; }
	DEVS+=(zsrc)

	# Row 10l: a sparse file on tmpfs behind a loop device.
	mkdir -p "$mnt"
	mount -t tmpfs -o size=$((SIZE + 64))m zero "$mnt" || return 1
	f=$mnt/dst
	truncate -s "${SIZE}M" "$f"
	lo=$(losetup -f --show "$f") || { umount "$mnt"; return 1; }
	wz=$(cat "/sys/block/${lo#/dev/}/queue/write_zeroes_max_bytes")
	DST=$lo
	new_meta
	dm_load cl "$(clone_line /dev/mapper/zsrc)" || { losetup -d "$lo"; umount "$mnt"; return 1; }
	log "zero: hydrating onto a sparse file on tmpfs ($lo, write_zeroes_max_bytes $wz)"
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$ST/zero-loop.$rep.txt"
	rc=$?
	sampler_note 10l "$rc"
	dmsetup mknodes cl
	zero_check 10l "$rep" /dev/mapper/cl
	dm_rm cl
	sync
	used=$(($(stat -c '%b * %B' "$f") / 1024))
	log "zero: the file holds $used KiB allocated, the data $((nd * ext / 2)) KiB"
	res 10l "$rep" "$(calc "$used / 1024")" "$(calc "$nd * $ext / 2048")"
	zero_note 10l "loop over tmpfs" "$wz"
	losetup -d "$lo"
	umount "$mnt"

	# Row 10: a thin volume (pool: 64 KiB blocks, no block zeroing).
	dd if=/dev/zero of=/dev/ram2 bs=4k count=1 oflag=direct status=none
	dm_up zpool "0 $(((SIZE + 64) * 2048)) thin-pool /dev/ram2 /dev/ram1 128 0 1 skip_block_zeroing" || return 1
	dmsetup message zpool 0 "create_thin 0" || return 1
	dm_up zthin "0 $SECTORS thin /dev/mapper/zpool 0" || return 1
	dev=dm-$(dmsetup info -c --noheadings -o minor zthin | tr -d ' ')
	wz=$(cat "/sys/block/$dev/queue/write_zeroes_max_bytes")
	DST=/dev/mapper/zthin
	new_meta
	dm_load cl "$(clone_line /dev/mapper/zsrc)" || return 1
	log "zero: hydrating onto a thin volume (write_zeroes_max_bytes $wz)"
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$ST/zero-thin.$rep.txt"
	rc=$?
	sampler_note 10 "$rc"
	dmsetup mknodes cl
	zero_check 10 "$rep" /dev/mapper/cl
	dm_rm cl
	used=$(dmsetup status zpool | awk '{ split($6, a, "/"); print a[1] }')
	need=$((nd * ext / 128))
	log "zero: the pool has $used data blocks (64 KiB) used, the data needs $need ($(dmsetup status zpool))"
	res 10 "$rep" "$used" "$need"
	zero_note 10 "dm-thin" "$wz"
	dm_rm zthin zpool zsrc
	rmmod brd
}
# zero_check ID REP DEV: on the first rep, DEV (the clone) reads back as
# the source.
zero_check() {
	[ "$2" = 1 ] || return 0
	if cmp -s /dev/mapper/zsrc "$3"; then
		log "zero: the clone reads back as the source"
	else
		log "zero: THE CLONE DIFFERS FROM THE SOURCE"
		note "$1" "the clone did not read back as the source"
	fi
}
# zero_note ID WHAT WZ: what the destination advertises.
zero_note() {
	if [ "$3" = 0 ]; then
		note "$1" "$2 advertises no write zeroes here (write_zeroes_max_bytes 0): zeroes go as data, or (ours) not at all where it reads zeroes already"
	else
		note "$1" "$2 advertises write zeroes (write_zeroes_max_bytes $3)"
	fi
}

# The plot's curves: the same hydrations as scenarios 1 and 3, polled
# every --interval ms (each poll is a status ioctl; not used for figures).
plot_runs() {
	local kind out
	new_meta
	dm_load cl "$(clone_line "$SRC")" || return 1
	log "plot: idle hydration, polled every $INTERVAL ms"
	"$SAMPLE" -r -i "$INTERVAL" -T "$CAP" cl >"$ST/plot-idle.txt"
	dmsetup mknodes cl
	s_progress "no load" "$ST/plot-idle.txt"
	dm_rm cl
	for kind in randread randwrite; do
		new_meta
		dm_up cl "$(clone_line "$SRC" "1 no_hydration")" || return 1
		log "plot: hydration under a $kind load, polled every $INTERVAL ms"
		fio_bg /dev/mapper/cl "$kind"
		wait_io cl || { fio_stop; return 1; }
		sleep 1
		"$SAMPLE" -m enable_hydration -i "$INTERVAL" -T "$CAP" cl >"$ST/plot-$kind.txt"
		fio_stop
		s_progress "4k $kind load (QD$QD)" "$ST/plot-$kind.txt"
		dm_rm cl
	done
}

# ------------------------------------------------------------ working set

# Scenario 9: an ext4 filesystem on the source (brd, --size MiB, at most
# 1 GiB), a few hundred files, every 7th of them hot (about a tenth of the
# bytes); the source behind dm-delay, then behind NBD over the loopback
# with netem. A clone is resumed and mounted, and the hot files are read
# three times (the page cache dropped before each pass) while the
# background copy runs; with and without `dmclone prefetch` of the hot
# files before the first pass. Each pass against the same reads on a
# linear table over a fully copied destination (passes 2, 3) or on the
# slow source itself (pass 1); the hydration time with the reads against
# an idle clone over the same source. And what the guest's CPUs allow at
# best (row 9df/9nf): the idle copy's CPU time and that of three passes at
# local speed, spread over the vCPUs without a moment idle, against the
# idle clone's time: over 110 %, no copy meets both the passes' target
# and the hydration's in this guest.
WS_MNT=/mnt/ws
WS_HOT=()		# the hot files, relative to the mount point
WS_HOT_BYTES=0
WS_NBD_PID=""
WS_NBD_MBIT=400		# the NBD link's bandwidth: 50 MB/s
declare -A WS_IDLE	# the idle hydration's time, by source (d, n)

# ws_files MIB: the file set on the filesystem mounted at WS_MNT: files of
# 64 KiB to 8 MiB (sizes spread on a log scale) filling about 60 % of MIB,
# each with a pattern of its own (never zeroes: a zero piece would be
# copied as a zeroes write); every 7th file is hot.
ws_files() {
	local n i sec
	mkdir -p "$WS_MNT"/d{0..7}
	WS_HOT=() WS_HOT_BYTES=0 n=0
	while read -r i sec; do
		dmclone-pattern gen "$((i + 100))" 0 "$sec" >"$WS_MNT/d$((i % 8))/f$i" || return 1
		n=$((n + sec))
		if ((i % 7 == 3)); then
			WS_HOT+=("d$((i % 8))/f$i")
			WS_HOT_BYTES=$((WS_HOT_BYTES + sec * 512))
		fi
	done < <(awk -v budget=$(($1 * 2048 * 6 / 10)) 'BEGIN {
		srand(9)
		for (i = 0; tot < budget; i++) {
			# 128 to 16384 sectors, uniform in log2.
			s = int(2 ^ (7 + 7 * rand()))
			if (tot + s > budget) s = budget - tot
			tot += s
			print i, s
		}
	}')
	log "working set: $(find "$WS_MNT" -type f | wc -l) files, $((n / 2048)) MiB; hot: ${#WS_HOT[@]} files, $((WS_HOT_BYTES / 1048576)) MiB"
}

# ws_mount DEV: mount DEV's ext4 read-only at WS_MNT, with the same
# readahead on every device measured (dm sets its own from the table's
# I/O hints).
ws_mount() {
	blockdev --setra 256 "$1" &&
		mount -t ext4 -o ro "$1" "$WS_MNT" || { log "cannot mount $1"; return 1; }
}
ws_umount() {
	grep -q " $WS_MNT " /proc/mounts || return 0
	umount "$WS_MNT" || umount -l "$WS_MNT"
}

# ws_pass: read the hot files once, page cache dropped first; prints the
# seconds it took.
ws_pass() {
	local t0 t1
	echo 3 >/proc/sys/vm/drop_caches
	t0=$EPOCHREALTIME
	(cd "$WS_MNT" && cat "${WS_HOT[@]}" >/dev/null) || { echo nan; return 1; }
	t1=$EPOCHREALTIME
	calc "$t1 - $t0"
}
ws_rate() { calc "$WS_HOT_BYTES / $1 / 1e6"; }
# median NUMBER...: their median.
median() {
	printf '%s\n' "$@" | sort -g |
		awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The hydrated share of clone cl now, in % (a status without commit).
ws_hydrated() { dmsetup status --noflush cl | awk '{ split($7, h, "/"); printf "%.1f\n", h[2] ? 100 * h[1] / h[2] : 0 }'; }

# ws_nbd_up / ws_nbd_down: /dev/ram0 exported read-only by nbd-server on
# the loopback, attached as /dev/nbd0, every packet on lo delayed by half
# of DELAY (a request waits DELAY ms, as under dm-delay) and the loopback
# limited to WS_NBD_MBIT: a link with a bandwidth, where dm-delay has
# none (a copy with many reads in flight hides any latency, and over
# dm-delay the whole source is copied in seconds, before the reads are
# done).
ws_nbd_up() {
	modprobe nbd || return 1
	ip link set lo up
	printf '[generic]\nuser = root\ngroup = root\n[ws]\nexportname = %s\nreadonly = true\n' "$SRC" >"$ST/nbd.conf"
	rm -f "$ST/nbd.pid"
	nbd-server -C "$ST/nbd.conf" -p "$ST/nbd.pid" >"$ST/nbd.log" 2>&1 || { log "nbd-server failed: $(cat "$ST/nbd.log")"; return 1; }
	local i
	for ((i = 0; i < 100; i++)); do [ -s "$ST/nbd.pid" ] && break; sleep 0.1; done
	WS_NBD_PID=$(cat "$ST/nbd.pid" 2>/dev/null)
	nbd-client 127.0.0.1 /dev/nbd0 -N ws -b 4096 -t 30 >"$ST/nbd-client.log" 2>&1 ||
		{ log "nbd-client failed: $(cat "$ST/nbd-client.log")"; return 1; }
	for ((i = 0; i < 100; i++)); do
		[ "$(blockdev --getsz /dev/nbd0 2>/dev/null || echo 0)" = "$SECTORS" ] && break
		sleep 0.1
	done
	[ "$(blockdev --getsz /dev/nbd0)" = "$SECTORS" ] || { log "/dev/nbd0 did not come up"; return 1; }
	tc qdisc add dev lo root netem delay "$(calc "$DELAY / 2")ms" rate "${WS_NBD_MBIT}mbit" limit 100000 ||
		{ log "tc netem on lo failed"; return 1; }
}
ws_nbd_down() {
	tc qdisc del dev lo root 2>/dev/null
	nbd-client -d /dev/nbd0 >/dev/null 2>&1
	[ -n "$WS_NBD_PID" ] && kill "$WS_NBD_PID" 2>/dev/null
	WS_NBD_PID=""
	return 0
}

# ws_clone SRCDEV OUT ID PREFETCH: a fresh clone of SRCDEV, mounted, three
# passes, then the wait for hydrated == total (the sampler, in the
# background, waits for the completion event). PREFETCH=0: t = 0 at the
# resume, then the mount and the passes. PREFETCH=1: resumed with
# background copying disabled (as systemd-clonesetup starts a clone),
# mounted, `dmclone prefetch` of the hot files, then t = 0 at
# enable_hydration and the passes at once (the tool's own time, long
# under emulation, is not in the figures: the note gives it). Pass times
# in WS_P[1..3], hydration time in WS_SECS, what the note says in WS_NOTE.
ws_clone() {
	local src=$1 out=$2 id=$3 pf=$4 spid rc i h t0 pft=""
	new_meta
	if [ "$pf" = 1 ]; then
		dm_up cl "$(clone_line "$src" "1 no_hydration")" || return 1
		ws_mount /dev/mapper/cl || return 1
		t0=$EPOCHREALTIME
		(cd "$WS_MNT" && dmclone prefetch -q cl "${WS_HOT[@]}") >"$ST/prefetch.txt" 2>&1 ||
			log "dmclone prefetch failed: $(cat "$ST/prefetch.txt")"
		pft=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }')
		log "working set: $(tail -n 1 "$ST/prefetch.txt") ($pft s); hydrated $(ws_hydrated) %"
		"$SAMPLE" -m enable_hydration -T "$CAP" cl >"$out" &
		spid=$!
		for ((i = 0; i < 300; i++)); do [ -s "$out" ] && break; sleep 0.05; done
	else
		dm_load cl "$(clone_line "$src")" || return 1
		"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$out" &
		spid=$!
		for ((i = 0; i < 300; i++)); do [ -s "$out" ] && break; sleep 0.05; done
		dmsetup mknodes cl
		ws_mount /dev/mapper/cl || { wait "$spid"; return 1; }
	fi
	# How much of the device was copied as each pass began. (Not the
	# share of its reads the destination served: the copy reads the
	# destination too, where it checks zero pieces.)
	WS_P=() WS_H=()
	for i in 1 2 3; do
		WS_H[i]=$(ws_hydrated)
		WS_P[i]=$(ws_pass)
	done
	h=$(ws_hydrated)
	ws_umount
	wait "$spid"
	rc=$?
	sampler_note "$id" "$rc"
	WS_SECS=$(s_secs "$out")
	dm_rm cl
	log "working set: passes ${WS_P[1]} ${WS_P[2]} ${WS_P[3]} s, hydrated ${WS_H[1]} ${WS_H[2]} ${WS_H[3]} % before each, $h % after; hydrated == total after $WS_SECS s${pft:+, prefetch command $pft s}"
	WS_NOTE="hydrated ${WS_H[1]}/${WS_H[2]}/${WS_H[3]} % at passes 1/2/3, $h % after${pft:+; dmclone prefetch took $pft s (hydration disabled meanwhile)}"
}

# ws_source REP KIND SRCDEV: the figures of one slow source (d: dm-delay,
# n: nbd), kept in WS_OUT ("id ours limit", in seconds; limit "local" for
# the local time, known at the end) and in notes.
ws_source() {
	local rep=$1 k=$2 src=$3 s0 idle v c0 c1 icpu
	ws_mount "$src" || return 1
	s0=$(ws_pass)
	ws_umount
	log "working set ($k): a pass on the source itself $s0 s"
	log "working set ($k): idle clone, resume -> hydrated"
	new_meta
	dm_load cl "$(clone_line "$src")" || return 1
	c0=$(cpu_ticks)
	"$SAMPLE" "${POLL[@]}" -r -T "$CAP" cl >"$ST/ws-idle-$k.$rep.txt"
	sampler_note "9${k}h" $?
	c1=$(cpu_ticks)
	dmsetup mknodes cl
	dm_rm cl
	idle=$(s_secs "$ST/ws-idle-$k.$rep.txt")
	# The floor the guest's CPUs set to a hydration with the three passes
	# beside it: the idle copy's CPU time (busy share of its time, from
	# its start to the completion the sampler saw) and the CPU time of
	# three local passes (what the passes cost at local speed at least),
	# spread over every vCPU with none left idle.
	icpu=$(calc "$(cpu_busy "$c0" "$c1") / 100 * $(nproc) * $idle")
	WS_OUT+=("9${k}f $icpu floor")
	log "working set ($k): idle hydration $idle s, $icpu s of CPU time"
	# What reading the source costs the guest's CPU (under emulation, and
	# the NBD server runs in the guest): a local pass beside a fio read of
	# the source at QD 32, as deep as a copy reads.
	fio --name=bg --filename="$src" --rw=read --bs=1M --iodepth=32 --ioengine=libaio \
		--direct=1 --time_based --runtime=3600 --output-format=terse >/dev/null 2>&1 &
	FIO_PID=$!
	sleep 1
	dm_up lin "0 $SECTORS linear /dev/ram1 0" && ws_mount /dev/mapper/lin && {
		v=$(ws_pass)
		ws_umount
		WS_OUT+=("9${k}x $v local")
		log "working set ($k): a local pass beside a fio read of the source $v s"
	}
	fio_stop
	dm_rm lin
	for v in "" p; do
		# The prefetch message is ours alone.
		[ -n "$v" ] && [ -n "$SFX" ] && { peer_skip "9$k${v}1" "no prefetch message"; continue; }
		log "working set ($k): clone${v:+ with dmclone prefetch of the hot files}, three passes"
		ws_clone "$src" "$ST/ws-$k$v.$rep.txt" "9$k${v}h" "${v:+1}" || return 1
		WS_OUT+=("9$k${v}1 ${WS_P[1]} $s0" "9$k${v}2 ${WS_P[2]} local"
			"9$k${v}3 ${WS_P[3]} local" "9$k${v}h $WS_SECS $idle")
		if [ -z "$v" ]; then WS_IDLE[$k]=$idle; fi
		note "9$k${v}1" "$WS_NOTE"
	done
}

# ws_local: three passes on a linear table over the fully copied
# destination (/dev/ram1), times appended to WS_LOCAL.
ws_local() {
	local i t c0
	dm_up lin "0 $SECTORS linear /dev/ram1 0" || return 1
	ws_mount /dev/mapper/lin || return 1
	for i in 1 2 3; do
		c0=$(cpu_ticks)
		t=$(ws_pass)
		WS_LOCAL+=("$t")
		WS_LOCAL_CPU+=("$(cpu_secs "$c0" "$(cpu_ticks)")")
	done
	ws_umount
	dm_rm lin
	log "working set: local passes ${WS_LOCAL[*]} s"
}

working_set() {
	local rc
	ws_run "$@"
	rc=$?
	ws_umount
	ws_nbd_down
	return "$rc"
}
ws_run() {
	local rep=$1 mib avail loc id ours lim lcpu k icpu
	mib=$((SIZE < 1024 ? SIZE : 1024))
	avail=$(awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
	# Smaller, by steps of 128 MiB, where two ramdisks of that size do
	# not fit (a kernel whose own memory leaves less): said in a note.
	while [ $((2 * mib + 512)) -gt "$avail" ] && [ "$mib" -gt 256 ]; do
		mib=$(((mib - 1) / 128 * 128))
	done
	if [ $((2 * mib + 512)) -gt "$avail" ]; then
		log "working set: two $mib MiB ramdisks do not fit ($avail MiB available)"
		note 9d1 "not run: two $mib MiB ramdisks do not fit in the guest"
		return 1
	fi
	[ "$mib" -ge "$((SIZE < 1024 ? SIZE : 1024))" ] ||
		note 9d1 "a $mib MiB source: two ramdisks of $((SIZE < 1024 ? SIZE : 1024)) MiB do not fit beside the $avail MiB available (--mem)"
	# The destination through a linear table, as the local passes read it.
	local SECTORS=$((mib * 2048)) META=/dev/ram2 DST=/dev/mapper/wsdst
	modprobe brd rd_nr=3 rd_size=$((mib * 1024)) max_part=0 || return 1
	log "working set: ext4 on a $mib MiB source, writing the file set"
	modprobe ext4 2>/dev/null
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$SRC" || return 1
	mkdir -p "$WS_MNT"
	mount -t ext4 "$SRC" "$WS_MNT" || return 1
	ws_files "$mib" || { ws_umount; return 1; }
	ws_umount
	# The local limit: the same passes on a linear table over a fully
	# copied destination, before the clones and after them (a drift of
	# the guest's speed weighs on both), the median of the six. The copy
	# also writes the whole destination once: brd's allocation of a page
	# at its first write weighs on no clone.
	dd if="$SRC" of=/dev/ram1 bs=1M iflag=direct oflag=direct status=none
	WS_LOCAL=() WS_LOCAL_CPU=() WS_OUT=() WS_IDLE=()
	ws_local || return 1
	dm_up wsdst "0 $SECTORS linear /dev/ram1 0" || return 1
	deadline $((CAP * 8 + 600))
	dm_up dsrc "0 $SECTORS delay $SRC 0 $DELAY" || return 1
	ws_source "$rep" d /dev/mapper/dsrc || { ws_umount; dm_rm cl; }
	dm_rm dsrc
	deadline $((CAP * 8 + 600))
	if ws_nbd_up; then
		ws_source "$rep" n /dev/nbd0 || { ws_umount; dm_rm cl; }
	else
		note 9n1 "not run: the NBD source did not come up"
	fi
	ws_nbd_down
	ws_local
	loc=$(median "${WS_LOCAL[@]}")
	log "working set: local pass (median) $loc s, $(ws_rate "$loc") MB/s"
	lcpu=$(median "${WS_LOCAL_CPU[@]}")
	log "working set: a local pass takes $lcpu s of CPU time (median)"
	for id in "${WS_OUT[@]}"; do
		read -r id ours lim <<<"$id"
		[ "$lim" = local ] && lim=$loc
		case "$id" in
		*f)
			# ours: the idle copy's CPU time. The figure: the floor,
			# in seconds, against the idle hydration's time.
			k=${id:1:1} icpu=$ours
			lim=${WS_IDLE[$k]:-}
			[ -n "$lim" ] || continue
			ours=$(calc "($icpu + 3 * $lcpu) / $(nproc)")
			ours=$(calc "$ours > $lim ? $ours : $lim")
			res "$id" "$rep" "$ours" "$lim"
			note "$id" "the idle copy took $lim s and $icpu s of CPU time, a local pass $lcpu s of CPU time (median); $(nproc) vCPUs"
			;;
		*h) res "$id" "$rep" "$ours" "$lim" ;;
		*) res "$id" "$rep" "$(ws_rate "$ours")" "$(ws_rate "$lim")" ;;
		esac
	done
	note 9d2 "local: the median of $((${#WS_LOCAL[@]})) passes, $loc s; hot set ${#WS_HOT[@]} files, $((WS_HOT_BYTES / 1048576)) MiB, read with cat after drop_caches"
}
# ------------------------------------------------------------ implementations

# The kernel's own dm-clone (the peer), when the image carries one:
# PEER_MODULE, loaded_clone, insmod_peer (tests/lib/peer.sh, which bench/run
# puts beside this script). Ours is loaded by modprobe.
# shellcheck source=../tests/lib/peer.sh
. "$here/peer.sh"
# use_impl ours|peer|tuned: every clone device is gone; load the module,
# set the configuration (REGION, CORE, SFX), a fresh scratch directory.
use_impl() {
	local want=ours
	[ "$1" = ours ] || want=peer
	if [ "$(loaded_clone)" != "$want" ]; then
		teardown_kprobe
		if [ -d /sys/module/dm_clone ]; then
			rmmod dm_clone || { log "cannot unload dm_clone ($(loaded_clone))"; return 1; }
		fi
		if [ "$want" = ours ]; then
			modprobe dm-clone || { log "cannot load our dm-clone"; return 1; }
		else
			insmod_peer || { log "cannot load the peer ($PEER_MODULE)"; return 1; }
		fi
		[ "$(loaded_clone)" = "$want" ] || { log "dm_clone loaded is $(loaded_clone), not $want"; return 1; }
		setup_kprobe
	fi
	IMPL=$1
	case "$1" in
	ours) SFX="" REGION=$REGION0 CORE="" ;;
	peer) SFX=@peer REGION=$REGION0 CORE="" ;;
	tuned) SFX=@tuned REGION=128 CORE="4 hydration_threshold 32 hydration_batch_size 32" ;;
	esac
	POLL=()
	[ "$want" = ours ] || POLL=(-i 25)
	RBYTES=$((REGION * 512))
	rm -rf "$ST"
	mkdir -p "$ST"
	info "target$SFX" "$(dmsetup targets | awk '$1 == "clone" { print $2 }')"
	[ "$IMPLS" = ours ] || log "==== implementation $1: $( [ "$want" = ours ] && echo our || echo "the kernel's own") dm-clone, $((RBYTES / 1024)) KiB regions${CORE:+, core args $CORE}"
}
# peer_skip ID TEXT: a scenario that the peer does not run (a feature only
# we have, or not a module figure): noted on its row.
peer_skip() { [ -z "$SFX" ] || note "$1" "not run on the peer: $2"; }

# ------------------------------------------------------------ main

run() {	# run STEP...: one step; on failure log it and clean up
	local what=$*
	deadline $((CAP * 2 + 600))
	if ! "$@"; then
		log "FAILED: $what"
		echo "@@N fail $what${SFX:+ (on the peer, $IMPL)}"
	fi
	fio_stop
	cleanup_devs
}

cleanup_all() { fio_stop; cleanup_devs; }
trap cleanup_all EXIT

deadline 600
REGION0=$REGION
for IMPL in $IMPLS; do
	case "$IMPL" in
	ours) ;;
	peer|tuned)
		if [ -z "$PEER_MODULE" ] || [ ! -f "$PEER_MODULE" ]; then
			echo "@@X this kernel ($(uname -r)) ships no dm-clone of its own (no peer in the guest image)"
			exit 3
		fi
		;;
	*) echo "guest.sh: unknown implementation $IMPL" >&2; exit 2 ;;
	esac
done
modprobe dm-clone || { echo "cannot load dm-clone"; exit 1; }
modprobe dm-delay
modprobe dm-zero
info kernel "$(uname -r)"
info vcpus "$(nproc)"
info guest_mem_mib "$(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024))"
info target "$(dmsetup targets | awk '$1 == "clone" { print $2 }')"
# Debian's kernels zero every page they allocate (init_on_alloc=1), which
# weighs on copies that allocate their buffers per job.
info init_on_alloc "$(grep -q 'init_on_alloc=0' /proc/cmdline && echo 0 || echo 1)"
info cmdline "$(cat /proc/cmdline)"
info fio "$(fio --version)"
info cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
setup_kprobe
info commit_counter "${KPROBE:-none}"

row 1 "idle hydration, untuned" "MB/s" "dd bs=1M direct" ">=" 0.90
row 2 "latency-bound source (delay ${DELAY} ms)" "MB/s" "fio seq read QD32 bs=1M" ">=" 0.80
row 2k "  same, against bs=64k" "MB/s" "fio seq read QD32 bs=64k" ">=" 0.80
row 2c "  same, against read+write side by side" "MB/s" "fio rd src + wr dst, QD32" "-" -
row 2x "  reference: read+write side by side" "MB/s" "fio seq read QD32 bs=1M" "-" -
row 2z "  same, against the clone over 0 ms" "MB/s" "clone, same dm-delay at 0 ms" "-" -
row 2u "  guest CPU busy while it copies" "%" "both vCPUs all the time" "-" -
row 2v "  guest CPU busy, fio read alone" "%" "both vCPUs all the time" "-" -
row 3rh "hydration under randread load" "MB/s" "idle hydration" ">=" 0.50
row 3ri "user randread IOPS while hydrating" "IOPS" "hydration disabled" ">=" 0.80
row 3rd "  reference: dd copy beside randread" "MB/s" "dd alone" "-" -
row 3rx "  reference: randread IOPS beside dd" "IOPS" "hydration disabled" "-" -
row 3ru "  guest CPU busy while it copies" "%" "both vCPUs all the time" "-" -
row 3rv "  guest CPU busy beside dd" "%" "both vCPUs all the time" "-" -
row 3wh "hydration under randwrite load" "MB/s" "idle hydration" ">=" 0.50
row 3wi "user randwrite IOPS while hydrating" "IOPS" "hydration disabled" ">=" 0.80
row 3wd "  reference: dd copy beside randwrite" "MB/s" "dd alone" "-" -
row 3wx "  reference: randwrite IOPS beside dd" "IOPS" "hydration disabled" "-" -
row 3wu "  guest CPU busy while it copies" "%" "both vCPUs all the time" "-" -
row 3wv "  guest CPU busy beside dd" "%" "both vCPUs all the time" "-" -
row 4r "steady: 4k randread QD${QD}" "IOPS" "linear over dest" ">=" 0.97
row 4a "  reference: a second linear, same" "IOPS" "linear over dest" "-" -
row 4w "steady: 4k randwrite QD${QD}" "IOPS" "linear over dest" ">=" 0.97
row 4s "steady: 1M seq read QD4" "MB/s" "linear over dest" ">=" 0.97
row 5 "first touch p99, $((RBYTES / 1024)) KiB regions" "us" "src rd + dst wr p99 + 1ms" "<=" 1.00
[ "$REGION" != 128 ] && row 5x "first touch p99, 64 KiB regions" "us" "src rd + dst wr p99 + 1ms" "<=" 1.00
row 6 "memory while hydrating" "bit/region" "budget" "<=" 1.00
row 6d "memory kept after completion" "bit/region" "while hydrating" "<=" 0.10
row 7c "metadata commits per second (idle)" "1/s" "-" "-" -
row 7m "metadata written per GiB hydrated" "MiB" "-" "-" -
row 7w "metadata written per commit" "KiB" "-" "-" -
row 8 "clone_check, 2^31 regions (320 MiB)" "MB/s" "dd bs=1M direct" "-" -
for k in d n; do
	[ $k = d ] && what="delay ${DELAY} ms" || what="nbd ${DELAY} ms $((WS_NBD_MBIT / 8)) MB/s"
	for v in "" p; do
		[ -z "$v" ] && lab="working set, $what" || lab="  with dmclone prefetch"
		row "9$k${v}1" "$lab: pass 1" "MB/s" "the slow source itself" ">=" 1.00
		row "9$k${v}2" "  pass 2" "MB/s" "linear over copied dest" ">=" 0.90
		row "9$k${v}3" "  pass 3" "MB/s" "linear over copied dest" ">=" 0.90
		row "9$k${v}h" "  hydration time with the passes" "s" "idle clone, same source" "<=" 1.10
	done
	row "9${k}x" "  reference: local pass beside src read" "MB/s" "linear over copied dest" "-" -
	row "9${k}f" "  reference: CPU floor of hydration with passes" "s" "idle clone, same source" "-" -
done
row 10 "zero regions: thin pool blocks used" "blocks" "blocks of the data" "<=" 1.10
row 10l "zero regions: sparse file allocated" "MiB" "MiB of the data" "<=" 1.10

# reps STEP: run STEP once per repetition, each with a RAM disk of its own.
reps() {
	local rep
	for ((rep = 1; rep <= REPS; rep++)); do
		log "==== $1, rep $rep of $REPS"
		run "$1" "$rep"
		grep -q '^brd ' /proc/modules && rmmod brd
	done
}

# The scenarios, on the implementation loaded (use_impl).
scenarios() {
	local avail rep
	if want 1 || want 2 || want 3 || want 4 || want 5 || want 7; then
		avail=$(awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
		if [ $((2 * SIZE + 384)) -gt "$avail" ]; then
			echo "--size $SIZE MiB: two ramdisks of that size do not fit in the guest ($avail MiB available); use a smaller --size or a larger --mem" >&2
			exit 2
		fi
		SECTORS=$((SIZE * 2048))
		modprobe brd rd_nr=3 rd_size=$((SIZE * 1024)) max_part=0 || exit 1
		# The metadata through a linear table: brd keeps no I/O statistics, dm does.
		dm_up bmeta "0 $SECTORS linear /dev/ram2 0" || exit 1
		META=/dev/mapper/bmeta
		DEVS=()		# bmeta stays until the end of the brd scenarios
		log "filling the source ($SIZE MiB, pattern) and the destination"
		deadline 900
		dmclone-pattern write "$SRC" 1 0 "$SECTORS"
		dd if=/dev/zero of="$DST" bs=1M count="$SIZE" oflag=direct status=none
		for ((rep = 1; rep <= REPS; rep++)); do
			log "==== rep $rep of $REPS"
			if want 1 || want 7; then run hydrate_idle "$rep"; fi
			if want 2; then run latency_bound "$rep"; fi
			if want 3; then
				run under_load "$rep" randread 3r
				run under_load "$rep" randwrite 3w
			fi
			if want 4; then run steady "$rep"; fi
			if want 5; then
				run first_touch "$rep" 5 "$REGION"
				[ "$REGION" != 128 ] && run first_touch "$rep" 5x 128
			fi
		done
		[ "$PLOT" = 1 ] && [ -z "$SFX" ] && run plot_runs
		dm_rm bmeta
		rmmod brd
	fi
	if want 6; then reps memory; fi
	if want 8; then
		if [ -z "$SFX" ]; then reps tools; else peer_skip 8 "it measures our clone_check, not the module"; fi
	fi
	if want 9; then reps working_set; fi
	if want 10; then reps zero; fi
}

for IMPL in $IMPLS; do
	use_impl "$IMPL" || { echo "@@N fail loading $IMPL"; continue; }
	scenarios
	cleanup_devs
done
SFX=""
log "done"
exit 0
