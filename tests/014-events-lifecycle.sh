#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Events and life cycle. `dmsetup wait` wakes when hydration completes
# (one event, not before, not again). Background copying does not start
# at load, only at the first resume: not for a new device loaded with
# --notable, not for a new table loaded under a live clone; and not while
# the clone is suspended. A reload swaps in the new arguments and keeps
# the hydrated regions. The module
# parameter clone_hydration_throttle: default 100, mode 0644, takes 0..100
# (also at load time, and in any base the kernel's integer parameters
# take), refuses anything else and keeps its value;
# hydration completes at 50 and at 0 (slow, never stuck). The module
# cannot be unloaded while a clone exists, unloads cleanly after, and
# loads again. Removing a clone while
# copies are in flight (slow source) is quick and clean, and a new clone
# on the same metadata carries on to a byte-exact copy.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/control.sh"

need_cmd dmsetup dmclone-pattern
PARAM=/sys/module/dm_clone/parameters/clone_hydration_throttle
# Start from a fresh load (default parameter value).
if grep -q '^dm_clone ' /proc/modules; then
	rmmod dm_clone || fail "cannot unload dm_clone at the start"
fi
need_module
need_module dm-delay

src=$(mkdev src 8)			# 16384 sectors
dst=$(mkdev dst 8)
md=$(mkdev md 4)
fill_pattern "$src" 1
LEN=16384

# events NAME: the device's event counter.
events() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }
# running PID: the process is alive.
running() { kill -0 "$1" 2>/dev/null; }
not_running() { ! kill -0 "$1" 2>/dev/null; }

log "dmsetup wait wakes when hydration completes"
dm_create w "0 $LEN clone $md $dst $src 8 1 no_hydration"
ev=$(events w)
dmsetup wait w "$ev" &
waiter=$!
on_exit "kill $waiter 2>/dev/null"
assert_hydrated_stays w 0 5
running $waiter || fail "dmsetup wait returned before anything happened (event $(events w), was $ev)"
dm_message w enable_hydration
wait_for 60 not_running $waiter || fail "dmsetup wait did not return: $(clone_status w)"
wait $waiter || fail "dmsetup wait failed"
clone_parse w
assert_eq "$ST_HYDRATED" "$ST_REGIONS" "hydrated regions when dmsetup wait returned"
assert_eq "$(events w)" $((ev + 1)) "event counter after hydration"
# No more events once complete (the periodic commit raises none).
ev=$(events w)
dmsetup wait w "$ev" &
waiter=$!
on_exit "kill $waiter 2>/dev/null"
assert_hydrated_stays w "$ST_REGIONS" 8
running $waiter || fail "an event after hydration completed (event $(events w), was $ev)"
kill $waiter
wait $waiter 2>/dev/null || true
cmp_dev /dev/mapper/w "$src"
dm_remove w

log "no copying before the first resume (create --notable, load)"
zero_dev "$dst"
wipe_md "$md"
dmsetup create --notable nt
on_exit "dmsetup remove nt >/dev/null 2>&1"
dmsetup load nt --table "0 $LEN clone $md $dst $src 8"
for i in 1 2 3 4 5 6; do
	clone_parse_inactive nt
	assert_eq "$ST_HYDRATED/$ST_REGIONS $ST_HYDRATING" "0/2048 0" "inactive table's status, sample $i"
	sleep 0.2
done
assert_eq "$(identify_dev "$dst")" "0-16383: zeros" "destination before the first resume"
dmsetup resume nt
wait_hydrated nt 60
cmp_dev /dev/mapper/nt "$src"
dmsetup remove nt

log "no copying by a new table loaded under a live clone"
zero_dev "$dst"
wipe_md "$md"
dm_create lc "0 $LEN clone $md $dst $src 8 1 no_hydration"
dmsetup reload lc --table "0 $LEN clone $md $dst $src 8"
clone_parse_inactive lc
assert_eq "$ST_FEATURES" "" "features of the inactive table"
assert_hydrated_stays lc 0 6
assert_eq "$(identify_dev "$dst")" "0-16383: zeros" "destination with the new table loaded, not resumed"
dmsetup suspend lc
dmsetup resume lc
assert_eq "$(dm_table lc)" "0 $LEN clone $(dev_majmin "$md") $(dev_majmin "$dst") $(dev_majmin "$src") 8" "table after the swap"
wait_hydrated lc 60
cmp_dev /dev/mapper/lc "$src"

log "no copying while suspended, even if enabled meanwhile"
dm_remove lc
zero_dev "$dst"
wipe_md "$md"
dm_create lc "0 $LEN clone $md $dst $src 8 1 no_hydration"
dmsetup suspend lc
dm_message lc enable_hydration
clone_parse lc
assert_eq "$ST_FEATURES" "" "features after enable_hydration while suspended"
assert_hydrated_stays lc 0 6
assert_eq "$(identify_dev "$dst")" "0-16383: zeros" "destination of a suspended clone"
dmsetup resume lc
wait_hydrated lc 60
cmp_dev /dev/mapper/lc "$src"

log "a reload swaps the arguments and keeps the progress"
dm_remove lc
zero_dev "$dst"
wipe_md "$md"
dm_create lc "0 $LEN clone $md $dst $src 8 1 no_hydration"
fill_pattern /dev/mapper/lc 2 0 800		# hydrates regions 0-99
clone_parse lc
assert_eq "$ST_HYDRATED" 100 "regions hydrated by the write"
dmsetup reload lc --table "0 $LEN clone $md $dst $src 8 2 no_hydration no_discard_passdown 2 hydration_threshold 3"
dmsetup suspend lc
dmsetup resume lc
assert_eq "$(dm_table lc)" "0 $LEN clone $(dev_majmin "$md") $(dev_majmin "$dst") $(dev_majmin "$src") 8 2 no_hydration no_discard_passdown 2 hydration_threshold 3" "table after the reload"
clone_parse lc
assert_eq "$ST_HYDRATED $ST_FEATURES $ST_T" "100 no_discard_passdown no_hydration 3" "status after the reload"
dmclone-pattern check /dev/mapper/lc 2 0 800
cmp_dev /dev/mapper/lc "$src" $((LEN - 800)) 800 800

log "module parameter clone_hydration_throttle"
[ -e $PARAM ] || fail "no $PARAM"
assert_eq "$(cat $PARAM)" 100 "default throttle"
assert_eq "$(stat -c %a $PARAM)" 644 "mode of $PARAM"
for v in 0 1 50 99 100 42; do
	echo "$v" >$PARAM || fail "writing $v to $PARAM failed"
	assert_eq "$(cat $PARAM)" "$v" "throttle after writing $v"
done
printf 37 >$PARAM || fail "writing 37 without a newline failed"
assert_eq "$(cat $PARAM)" 37 "throttle after writing 37 without a newline"
for v in 101 200 -1 abc "" 1.5 4294967296 4294967333 100abc 0x65 "5 5"; do
	if (printf '%s\n' "$v" >$PARAM) 2>/dev/null; then
		fail "writing '$v' to $PARAM succeeded"
	fi
	assert_eq "$(cat $PARAM)" 37 "throttle after the refused write of '$v'"
done
# Parsed as every integer module parameter is (kstrtouint, base 0).
echo 0x10 >$PARAM || fail "writing 0x10 to $PARAM failed"
assert_eq "$(cat $PARAM)" 16 "throttle after writing 0x10"

log "the module cannot be unloaded while a clone exists"
assert_fail rmmod dm_clone
grep -q '^dm_clone ' /proc/modules || fail "dm_clone was unloaded under a clone"
dmclone-pattern check /dev/mapper/lc 2 0 800
cmp_dev /dev/mapper/lc "$src" $((LEN - 800)) 800 800
dm_remove lc

log "unload after use, load again with throttle 50 (a load-time parameter)"
rmmod dm_clone || fail "rmmod dm_clone failed after its devices were removed"
grep -q '^dm_clone ' /proc/modules && fail "dm_clone is still loaded after rmmod"
need_module dm-clone clone_hydration_throttle=50
assert_eq "$(cat $PARAM)" 50 "throttle given at load time"
dmsetup targets | grep -q '^clone ' || fail "no clone target after reloading the module"

log "hydration completes with throttle 50"
zero_dev "$dst"
wipe_md "$md"
dm_create t "0 $LEN clone $md $dst $src 8"
wait_hydrated t 120
cmp_dev /dev/mapper/t "$src"
cmp_dev "$dst" "$src"
dm_remove t

# At 0 the copies may run 0 % of the time: slow, but never stuck (a chunk
# starts anyway after ten refusals in a row).
log "hydration completes with throttle 0"
echo 0 >$PARAM
zero_dev "$dst"
wipe_md "$md"
dm_create t "0 $LEN clone $md $dst $src 8"
wait_hydrated t 120
cmp_dev /dev/mapper/t "$src"
dm_remove t
echo 100 >$PARAM

log "removing a clone while copies are in flight"
zero_dev "$dst"
wipe_md "$md"
slow=$(slow_dev slowsrc "$src" 500)
dm_create r "0 $LEN clone $md $dst $slow 64 0 4 hydration_threshold 8 hydration_batch_size 1"
busy() { [ "$(clone_hydrating r)" -gt 0 ]; }
wait_for 60 hydrated_at_least r 16 || fail "the copy does not progress: $(clone_status r)"
wait_for 30 busy || fail "no copies in flight: $(clone_status r)"
clone_parse r
seen=$ST_HYDRATED
log "removing with $ST_HYDRATING copies in flight, $seen regions hydrated"
t0=$SECONDS
dm_remove r
[ $((SECONDS - t0)) -le 20 ] || fail "removing the clone took $((SECONDS - t0)) s"
log "removed in $((SECONDS - t0)) s"
# The next clone on the same metadata starts from where this one stopped
# (it committed on the way out) and completes byte-exact.
dm_create r2 "0 $LEN clone $md $dst $src 64"
clone_parse r2
[ "$ST_HYDRATED" -ge "$seen" ] || fail "the new clone has $ST_HYDRATED regions hydrated, the old one had $seen"
wait_hydrated r2 60
cmp_dev /dev/mapper/r2 "$src"
cmp_dev "$dst" "$src"
dm_remove r2

log "ok"
