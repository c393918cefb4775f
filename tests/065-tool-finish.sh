#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone finish under a mounted filesystem. An ext4 source with files is
# cloned (paused) from a slow source and mounted; finish refuses while the
# copy is incomplete, naming the percentage, and changes nothing. Then,
# with copying resumed, finish --wait says where the copy stands, waits for
# completion and swaps the table to linear over the destination while a
# writer keeps creating files in the mounted filesystem. Afterwards the table is exactly linear over the destination,
# the metadata device and the source are no longer held, the filesystem is
# still mounted and writable, every file (old, modified, written during the
# swap) matches its checksum after dropping caches, e2fsck is clean, and
# the destination alone holds the filesystem. finish on a finished device
# fails; a multi-segment table keeps its other segments.
# finish --wait waits on the device's dm event, not by polling: while a
# clone is paused one and the same 'dmsetup wait' process sleeps for
# seconds; resumed, finish returns soon after the completion event
# (as seen by a 'dmsetup wait' of the test's own) and of the last region
# being copied (loose bounds: 15 and 20 s). It gives up (exit 1, table untouched) at --timeout, when the
# clone goes read-only, and when the clone is removed, each within
# seconds; --timeout without --wait, or not a positive number, and the
# old --interval are usage errors.
# create --whole-destination onto a destination larger than the source
# gives a device of the destination's size whose tail is the destination's
# own sectors (they read what the destination held, take writes), says so;
# remove prints a resume command that keeps the option, and that command
# resumes; finish keeps the tail: the table is two linear segments over
# the destination and every sector reads as before.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_module dm-delay
need_tool
need_cmd mkfs.ext4 e2fsck sha256sum mount umount

src=$(mkdev src 32)				# 65536 sectors
dest=$(mkdev dest 32)
meta=$(mkdev meta 4)
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"
sums=$TEST_TMP/sums

log "an ext4 source with files"
fs_with_files "$src" "$sums" 12 150000 4
dm_create slow "0 65536 delay $src 0 30"

log "clone (paused), mount at once"
tool_ok create c /dev/mapper/slow "$dest" "$meta" --no-hydration --threshold 2 --batch 1
track_dm c
on_exit "touch '$TEST_TMP/stop'; umount -l '$mnt' 2>/dev/null"
mount /dev/mapper/c "$mnt"
(cd "$mnt" && sha256sum --quiet -c "$sums") || fail "files differ on the fresh clone"
head -c 300000 /dev/urandom >"$mnt/d/file3"			# modify one
(cd "$mnt" && sha256sum d/file3) >>"$sums.new"

log "finish refuses while incomplete"
h0=$(clone_hydrated c)
tool_refuses 1 "c is [0-9]+\.[0-9]% copied \([0-9]+ of 512 regions\): finishing needs 100%.*--wait" finish c
h1=$(clone_hydrated c)
[[ $TOOL_ERR =~ is\ ([0-9.]+)%\ copied\ \(([0-9]+)\ of ]] || fail "no percentage in '$TOOL_ERR'"
pct=${BASH_REMATCH[1]} hyd=${BASH_REMATCH[2]}
[ "$hyd" -ge "$h0" ] && [ "$hyd" -le "$h1" ] || fail "finish said $hyd regions, status said $h0 then $h1"
assert_eq "$pct" "$((hyd * 1000 / 512 / 10)).$((hyd * 1000 / 512 % 10))" "percentage named by finish"
assert_match "$(dm_table c)" "^0 65536 clone " "table after the refused finish"
findmnt "$mnt" >/dev/null || fail "the filesystem is no longer mounted"

log "finish --wait under a writer"
: >"$TEST_TMP/written"
(
	i=0
	while [ ! -e "$TEST_TMP/stop" ] && [ $i -lt 400 ]; do
		i=$((i + 1))
		head -c 65536 /dev/urandom >"$mnt/d/new$i"
		(cd "$mnt" && sha256sum "d/new$i") >>"$TEST_TMP/written"
		sleep 0.1
	done
) &
writer=$!
tool_ok tune c --resume
tool finish c --wait
echo "$TOOL_OUT"
[ "$TOOL_RC" = 0 ] || fail "finish --wait exited $TOOL_RC: $TOOL_ERR"
touch "$TEST_TMP/stop"
wait $writer
log "the writer wrote $(wc -l <"$TEST_TMP/written") files during the copy and the swap"
echo "$TOOL_ERR"
assert_match "$TOOL_ERR" "^c: [0-9.]+% copied; waiting for the kernel's completion event"$'\n'"c: 100% copied$" \
	"finish --wait's progress (stderr)"
assert_match "$TOOL_OUT" "c: finished\. /dev/mapper/c is now a linear device over $dest \(32 MiB\)" "finish output"
assert_match "$TOOL_OUT" "metadata device $meta and the source /dev/mapper/slow are no longer used" "finish output"

log "after the swap"
assert_eq "$(dm_table c)" "0 65536 linear $(dev_majmin "$dest") 0" "table after finish"
meta_holders=$(ls "/sys/dev/block/$(dev_majmin "$meta")/holders")
assert_eq "$meta_holders" "" "holders of the metadata device"
slow_holders=$(ls "/sys/dev/block/$(dev_majmin /dev/mapper/slow)/holders")
assert_eq "$slow_holders" "" "holders of the source"
findmnt "$mnt" >/dev/null || fail "the filesystem is no longer mounted"
head -c 123456 /dev/urandom >"$mnt/after"
(cd "$mnt" && sha256sum after) >>"$sums.new"
cat "$sums.new" "$TEST_TMP/written" >>"$sums"
grep -v ' \./d/file3$' "$sums" >"$sums.tmp" && mv "$sums.tmp" "$sums"
drop_caches
(cd "$mnt" && sha256sum --quiet -c "$sums") || fail "files differ after the swap"
umount "$mnt"
e2fsck -f -n /dev/mapper/c || fail "e2fsck on the finished device"
dm_remove c
e2fsck -f -n "$dest" || fail "e2fsck on the destination"
mount -o ro "$dest" "$mnt"
(cd "$mnt" && sha256sum --quiet -c "$sums") || fail "files differ on the destination alone"
umount "$mnt"

log "finish on a finished device"
dm_create lin "0 65536 linear $dest 0"
tool_refuses 1 "not a clone: it is a linear device \(already finished\?\)" finish lin
dm_remove lin

log "a two-segment table: the other segment stays"
extra=$(mkdev extra 4)
meta2=$(mkdev meta2 4)
dm_create two "0 65536 clone $meta2 $dest $src 128
65536 8192 linear $extra 0"
wait_hydrated two 60
tool_ok finish two
assert_eq "$(dm_table two)" "0 65536 linear $(dev_majmin "$dest") 0
65536 8192 linear $(dev_majmin "$extra") 0" "table after finish"
cmp_dev /dev/mapper/two "$src" 65536
dm_remove two

# waiter NAME: the pid of the 'dmsetup wait --noflush NAME ...' process.
waiter() {
	local f c
	for f in /proc/[0-9]*/cmdline; do
		c=$( (tr '\0' ' ' <"$f") 2>/dev/null) || continue
		[[ $c == "dmsetup wait --noflush $1 "[0-9]* ]] || continue
		f=${f#/proc/}
		echo "${f%/cmdline}"
		return 0
	done
	return 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# finish_bg NAME ARGS...: dmclone finish NAME --wait ARGS in the background;
# its pid in FPID, its output in $TEST_TMP/f.out and f.err.
finish_bg() {
	dmclone finish "$@" >"$TEST_TMP/f.out" 2>"$TEST_TMP/f.err" &
	FPID=$!
	on_exit "kill $FPID 2>/dev/null"
}
# finish_ends SECONDS: the background finish exits within SECONDS; its
# exit status in FRC.
finish_ends() {
	wait_for "$1" eval "! kill -0 $FPID 2>/dev/null" ||
		fail "finish --wait still running after $1 s: $(cat "$TEST_TMP/f.out" "$TEST_TMP/f.err")"
	FRC=0
	wait "$FPID" || FRC=$?
	cat "$TEST_TMP/f.out" "$TEST_TMP/f.err"
}

log "finish --wait sleeps in one dmsetup wait, returns promptly on completion"
src3=$(mkdev src3 8)			# 16384 sectors, 128 regions
dest3=$(mkdev dest3 8)
meta3=$(mkdev meta3 4)
fill_pattern "$src3" 6
tool_ok create e "$src3" "$dest3" "$meta3" --no-hydration
track_dm e
finish_bg e --wait
wait_for 30 waiter e >/dev/null || fail "finish --wait runs no 'dmsetup wait': $(cat "$TEST_TMP/f.err")"
w1=$(waiter e)
sleep 3
kill -0 "$FPID" 2>/dev/null || fail "finish --wait ended on a paused clone: $(cat "$TEST_TMP/f.err")"
w2=$(waiter e) || fail "no 'dmsetup wait' any more while paused"
assert_eq "$w2" "$w1" "the dmsetup wait process after 3 s (a poller would run new ones)"
grep -q "warning: e is paused" "$TEST_TMP/f.err" || fail "finish --wait did not warn that e is paused"
# An observer of our own sleeps on the same event, to time finish against.
dmsetup wait --noflush e "$(dmsetup info -c --noheadings -o events e | tr -d ' ')" >/dev/null 2>&1 &
obs=$!
on_exit "kill $obs 2>/dev/null"
tool_ok tune e --resume
t_done="" t_event="" t_end=""
end=$((SECONDS + 60 * ${DMCLONE_TIMEOUT_SCALE:-1}))
while [ -z "$t_end" ] && [ $SECONDS -lt $end ]; do
	if [ -z "$t_done" ]; then
		st=$(dmsetup status --noflush e | awk '$3 == "clone" { print $7 }')
		[ -n "$st" ] && [ "${st%/*}" = "${st#*/}" ] && t_done=$(now_ms)
	fi
	[ -n "$t_event" ] || kill -0 $obs 2>/dev/null || t_event=$(now_ms)
	kill -0 "$FPID" 2>/dev/null || t_end=$(now_ms)
	sleep 0.05
done
[ -n "$t_end" ] || fail "finish --wait did not end after the copy completed: $(clone_status e)"
[ -n "$t_event" ] || t_event=$t_end	# seen in the same look
[ -n "$t_done" ] || t_done=$t_event
finish_ends 5
assert_eq "$FRC" 0 "finish --wait's exit status"
log "last region copied, then $((t_event - t_done)) ms to the event (the commit), then $((t_end - t_event)) ms to the end of finish"
# The switch itself (load, suspend, resume) takes a moment; no timer. The
# bounds are loose (a loaded CI machine under emulation): that it waits on
# the event, not on a timer, is shown above by the one dmsetup wait.
[ $((t_end - t_event)) -le $((15000 * ${DMCLONE_TIMEOUT_SCALE:-1})) ] ||
	fail "finish --wait ended $((t_end - t_event)) ms after the completion event"
[ $((t_end - t_done)) -le $((20000 * ${DMCLONE_TIMEOUT_SCALE:-1})) ] ||
	fail "finish --wait ended $((t_end - t_done)) ms after the last region was copied"
assert_eq "$(dm_table e)" "0 16384 linear $(dev_majmin "$dest3") 0" "table after finish --wait"
cmp_dev /dev/mapper/e "$src3"
dm_remove e

log "finish --wait --timeout gives up, leaving the clone"
tool_ok create e "$src3" "$dest3" "$meta3" --no-hydration --fresh --force
track_dm e
t0=$SECONDS
tool_refuses 1 "e is still 0\.0% copied after 2 s \(--timeout\): left as a clone" finish e --wait --timeout 2
t1=$((SECONDS - t0))
if [ $t1 -lt 2 ] || [ $t1 -gt 20 ]; then fail "finish --wait --timeout 2 took $t1 s"; fi
assert_match "$(dm_table e)" "^0 16384 clone " "table after the timeout"
tool_refuses 2 "--timeout only goes with --wait" finish e --timeout 2
tool_refuses 2 "--timeout wants a positive number of seconds, not '0'" finish e --wait --timeout 0
tool_refuses 2 "--timeout wants a positive number of seconds, not 'soon'" finish e --wait --timeout soon
tool_refuses 2 "unknown option --interval" finish e --wait --interval 5

log "finish --wait gives up when the clone is removed"
finish_bg e --wait
wait_for 10 waiter e >/dev/null || fail "finish --wait runs no 'dmsetup wait'"
dmsetup remove e || fail "cannot remove e"
finish_ends 5
assert_eq "$FRC" 1 "finish --wait's exit status when the clone goes away"
grep -Eq "e went away|no device-mapper device named 'e'" "$TEST_TMP/f.err" ||
	fail "finish --wait did not say the clone went away"

log "finish --wait gives up when the clone goes read-only"
dm_create mdsw "0 8192 linear $meta3 0"
tool_ok create e "$src3" "$dest3" /dev/mapper/mdsw --no-hydration --fresh --force
track_dm e
finish_bg e --wait
wait_for 10 waiter e >/dev/null || fail "finish --wait runs no 'dmsetup wait'"
dm_reload mdsw "0 8192 flakey $meta3 0 0 1 1 error_writes"
# A write to a region not copied yet, then a flush: the commit fails.
dd if=/dev/zero of=/dev/mapper/e bs=4096 count=1 seek=100 oflag=direct conv=fsync status=none 2>/dev/null || true
finish_ends 10
assert_eq "$FRC" 1 "finish --wait's exit status when the clone goes read-only"
grep -q "e switched to read-only metadata mode" "$TEST_TMP/f.err" ||
	fail "finish --wait did not say the clone went read-only"
assert_match "$(dm_table e)" "^0 16384 clone " "table after the read-only switch"
dm_remove e

log "create --whole-destination: a linear tail after the clone"
src4=$(mkdev src4 8)			# 16384 sectors
dest4=$(mkdev dest4 12)			# 24576 sectors
meta4=$(mkdev meta4 4)
fill_pattern "$src4" 8
fill_pattern "$dest4" 7
tool_ok create w "$src4" "$dest4" "$meta4" --no-hydration --whole-destination
track_dm w
echo "$TOOL_ERR"
assert_match "$TOOL_ERR" "the rest of $dest4, 4 MiB, mapped linearly after it: /dev/mapper/w has 12 MiB" "create's report"
assert_eq "$(blockdev --getsz /dev/mapper/w)" 24576 "size of the clone with its tail"
assert_eq "$(dm_table w | sed -n 2p)" "16384 8192 linear $(dev_majmin "$dest4") 16384" "the tail segment"
check_pattern /dev/mapper/w 8 0 16384 || fail "the clone part does not read as the source"
check_pattern /dev/mapper/w 7 16384 8192 || fail "the tail does not read as the destination"
fill_pattern /dev/mapper/w 9 20000 1000
tool_ok remove w
resume=$(sed -n 's/.*to resume: //p' <<<"$TOOL_OUT")
assert_eq "$resume" "dmclone create w $src4 $dest4 $meta4 --whole-destination" "the resume command"
# shellcheck disable=SC2086
tool_ok ${resume#dmclone }
assert_eq "$(blockdev --getsz /dev/mapper/w)" 24576 "size of the resumed clone"
tool finish w --wait
[ "$TOOL_RC" = 0 ] || fail "finish --wait exited $TOOL_RC: $TOOL_ERR"
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "w: finished\. /dev/mapper/w is now a linear device over all of $dest4 \(12 MiB, its linear tail kept\)" "finish output"
assert_eq "$(dm_table w)" "0 16384 linear $(dev_majmin "$dest4") 0
16384 8192 linear $(dev_majmin "$dest4") 16384" "table after finish"
check_pattern /dev/mapper/w 8 0 16384 || fail "the copied part differs after finish"
check_pattern /dev/mapper/w 7 16384 3616 || fail "the tail differs after finish"
check_pattern /dev/mapper/w 9 20000 1000 || fail "what was written to the tail differs after finish"
check_pattern /dev/mapper/w 7 21000 3576 || fail "the end of the tail differs after finish"
dm_remove w
log "ok"
