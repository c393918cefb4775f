#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone finish under a mounted filesystem. An ext4 source with files is
# cloned (paused) from a slow source and mounted; finish refuses while the
# copy is incomplete, naming the percentage, and changes nothing. Then,
# with copying resumed, finish --wait shows progress, waits for completion
# and swaps the table to linear over the destination while a writer keeps
# creating files in the mounted filesystem. Afterwards the table is exactly linear over the destination,
# the metadata device and the source are no longer held, the filesystem is
# still mounted and writable, every file (old, modified, written during the
# swap) matches its checksum after dropping caches, e2fsck is clean, and
# the destination alone holds the filesystem. finish on a finished device
# fails; a multi-segment table keeps its other segments.
# create --whole-destination onto a destination larger than the source
# gives a device of the destination's size whose tail is the destination's
# own sectors (they read what the destination held, take writes), says so;
# remove prints a resume command that keeps the option, and that command
# resumes; finish keeps the tail: the table is two linear segments over
# the destination and every sector reads as before.
# timeout: 240
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
mkfs.ext4 -q -F -b 4096 -E nodiscard "$src"
mount "$src" "$mnt"
mkdir -p "$mnt/d"
for i in $(seq 1 12); do head -c $((i * 150000)) /dev/urandom >"$mnt/d/file$i"; done
head -c $((4 * 1024 * 1024)) /dev/urandom >"$mnt/big"
umount "$mnt"
mount -o ro "$src" "$mnt"
(cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$sums"
umount "$mnt"
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
tool finish c --wait --interval 0.5
echo "$TOOL_OUT"
[ "$TOOL_RC" = 0 ] || fail "finish --wait exited $TOOL_RC: $TOOL_ERR"
touch "$TEST_TMP/stop"
wait $writer
log "the writer wrote $(wc -l <"$TEST_TMP/written") files during the copy and the swap"
grep -q '^\[[#.]*\] ' <<<"$TOOL_OUT" || fail "finish --wait showed no progress"
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
