#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone --version, list, remove and size, and create's refusal of a
# destination that holds something:
#   * --version prints "dmclone X.Y.Z";
#   * list prints nothing (--json: []) without clones, then one line and
#     one JSON object per clone, with the state and percentage that status
#     gives, read back with a JSON parser (jq); a clone named with a
#     quote, a backslash, a tab, a newline and a ^A (made with dmsetup) is
#     one line of list, quoted, and its JSON name parses back to exactly
#     that name, in list --json and status --json;
#   * remove removes an idle clone and prints the command that resumes it,
#     which does resume with the progress kept; a clone held open is
#     removed on last close (deferred); a linear device and a missing name
#     are refused and left alone;
#   * size gives the kernel module's own minimum where it is the larger
#     rule (a 1 TiB clone in 4 KiB regions, over dm-zero): create refuses
#     a metadata device one block smaller, and so does the kernel, and
#     accepts exactly that size;
#   * create refuses a destination holding ext4 or xfs (saying which),
#     changes nothing, takes it with --force, resumes onto it without
#     --force, and without wipefs warns and goes on;
#   * grow: with the source and destination (dm-linear over larger loop
#     devices) grown, a clone in use grows to the source's size, keeps its
#     progress and completes byte-exact; a second grow says there is
#     nothing to grow; a destination smaller than the source, a --size
#     smaller than the clone, and a clone made with --whole-destination
#     are refused with the table unchanged.
# timeout: 240
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_tool
need_cmd mkfs.ext4 mkfs.xfs wipefs

log "--version and the help of the new commands"
tool_ok --version
assert_match "$TOOL_OUT" "^dmclone [0-9]+\.[0-9]+\.[0-9]+$" "dmclone --version"
for c in list remove size grow; do
	tool_ok help "$c"
	assert_match "$TOOL_OUT" "^Usage: dmclone $c" "dmclone help $c"
	tool_refuses 2 "dmclone $c: unknown option --bogus" "$c" --bogus
done

src=$(mkdev src 32)				# 65536 sectors, 512 regions of 64 KiB
dest=$(mkdev dest 32)
meta=$(mkdev meta 4)
fill_pattern "$src" 3

log "list without clones"
tool_ok list
assert_eq "$TOOL_OUT" "" "dmclone list without clones"
tool_ok list --json
assert_eq "$TOOL_OUT" "[]" "dmclone list --json without clones"

log "list with two clones"
tool_ok create c1 "$src" "$dest" "$meta" --no-hydration
track_dm c1
fill_pattern /dev/mapper/c1 5 0 384		# regions 0-2
dmsetup status c1 >/dev/null
tool_ok status c1 --json --interval 0
pct=$(json_get "$TOOL_OUT" percent)
assert_eq "$pct" 0.58 "percent of c1 (3 of 512)"
# A name the tool would not make, but the kernel takes: a quote, a
# backslash, a tab, a newline and a ^A.
odd=$'q"b\\s\tx\ny\001z'
src2=$(mkdev src2 8)
dest2=$(mkdev dest2 8)
meta2=$(mkdev meta2 4)
dmsetup --manglename none create "$odd" --table \
	"$(clone_table "$meta2" "$dest2" "$src2" 8 1 no_hydration)" ||
	fail "dmsetup create of the oddly named clone failed"
on_exit "dmsetup --manglename none remove $(printf '%q' "$odd") >/dev/null 2>&1 || true"
tool_ok list
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "^NAME +STATE +COPIED +SIZE" "the header of list"
assert_match "$TOOL_OUT" $'\nc1 +paused +0\\.5% +32 MiB +'"$src -> $dest \\($meta\\)" "c1's line"
assert_eq "$(grep -c . <<<"$TOOL_OUT")" 3 "lines of list (the header and one per clone)"
line=$(grep -F -- "$(printf '%q' "$odd") " <<<"$TOOL_OUT") ||
	fail "no line of list names the odd clone as $(printf '%q' "$odd")"
assert_match "$line" " +paused +0\\.0% +8 MiB" "the odd clone's line"
tool_ok list --json
json=$TOOL_OUT
log "json: $json"
# Parsed: an array of two flat objects, the odd name intact.
assert_eq "$(json_parse -r 'type, length' <<<"$json" | paste -sd' ')" "array 2" "list --json"
c1obj=$(json_parse -c '.[] | select(.name == "c1")' <<<"$json") || fail "no object for c1 in $json"
json_check "$c1obj"
assert_eq "$(json_get "$c1obj" state)" paused "state of c1"
assert_eq "$(json_get "$c1obj" percent)" "$pct" "percent of c1 in list and status"
assert_eq "$(json_get "$c1obj" hydrated_regions)" 3 "hydrated_regions of c1"
assert_eq "$(json_get "$c1obj" regions)" 512 "regions of c1"
assert_eq "$(json_get "$c1obj" metadata)" "$meta" "metadata of c1"
# shellcheck disable=SC2016 # $n is jq's
oddobj=$(json_parse -c --arg n "$odd" '.[] | select(.name == $n)' <<<"$json")
[ -n "$oddobj" ] || fail "no object whose parsed name is the odd name in $json"
json_check "$oddobj"
assert_eq "$(json_get "$oddobj" device)" "/dev/mapper/$odd" "device of the odd clone"
assert_eq "$(json_get "$oddobj" state)" paused "state of the odd clone"
assert_eq "$(json_get "$oddobj" regions)" 2048 "regions of the odd clone"
# The escapes themselves: two-character ones where JSON has them.
[[ $json == *'{"name":"q\"b\\s\tx\ny\u0001z","device":"/dev/mapper/q\"b\\s\tx\ny\u0001z"'* ]] ||
	fail "the oddly named clone is not escaped as expected in $json"
tool_ok status "$odd" --json --interval 0
json_check "$TOOL_OUT"
assert_eq "$(json_get "$TOOL_OUT" name)" "$odd" "status --json name of the odd clone"
dmsetup --manglename none remove "$odd"

log "remove an idle clone, resume it"
tool_ok remove c1
echo "$TOOL_OUT"
no_dm c1
assert_match "$TOOL_OUT" "^c1: removed at 0\.5% copied\." "remove's report"
resume=$(sed -n 's/.*to resume: //p' <<<"$TOOL_OUT")
assert_eq "$resume" "dmclone create c1 $src $dest $meta" "the resume command"
tool_ok list
assert_eq "$TOOL_OUT" "" "list after the removal"
# shellcheck disable=SC2086
tool_ok ${resume#dmclone } --no-hydration
assert_match "$TOOL_ERR" "resuming where it stopped" "the printed command resumes"
assert_eq "$(clone_hydrated c1)" 3 "hydrated regions after remove and resume"
check_pattern /dev/mapper/c1 5 0 384 || fail "written data lost across remove and resume"

log "remove a clone in use: deferred"
exec 7</dev/mapper/c1
tool_ok remove c1
echo "$TOOL_OUT"
assert_match "$TOOL_OUT" "c1: in use \(open 1 time\(s\)\): it will be removed when it is last closed" "deferred removal"
dmsetup info c1 >/dev/null 2>&1 || fail "c1 went away while open"
exec 7<&-
wait_for 10 sh -c '! dmsetup info c1 >/dev/null 2>&1' || fail "c1 was not removed on last close"

log "remove refuses what is not a clone"
dm_create lin "0 2048 linear $dest 0"
tool_refuses 1 "'lin' is not a clone: it is a linear device.*nothing removed" remove lin
dmsetup info lin >/dev/null || fail "remove removed the linear device"
dm_remove lin
tool_refuses 1 "no device-mapper device named 'nosuch'" remove nosuch
tool_refuses 2 "expected one NAME" remove

log "size: the kernel's rule, at 1 TiB in 4 KiB regions"
tool_ok size --size 1t --region 4k --bytes
need=$TOOL_OUT
assert_eq "$need" $((8497 * 4096)) "dmclone size of 1 TiB in 4 KiB regions"
tool_ok size --size 1t --region 4k
assert_match "$TOOL_OUT" "268435456 regions of 4 KiB needs a metadata device of at least 33988 KiB" "size's sentence"
tool_ok size --size "$src"
assert_match "$TOOL_OUT" "^A clone of 32 MiB in 512 regions of 64 KiB" "size of a device"
tool_refuses 2 "--size is required" size
tool_refuses 1 "too many" size --size 16t --region 4k
dm_create zsrc "0 $((2 << 30)) zero"
dm_create zdest "0 $((2 << 30)) zero"
small=$(mkdev_sectors small $(((need - 4096) / 512)))
tool_refuses 1 "metadata device $small is too small: 33984 KiB.*needs at least 33988 KiB" \
	create big /dev/mapper/zsrc /dev/mapper/zdest "$small" --region 4k --no-hydration
no_dm big
reason=$(dm_table_load_should_fail big \
	"0 $((2 << 30)) clone $small /dev/mapper/zdest /dev/mapper/zsrc 8 1 no_hydration")
assert_match "$reason" "too small" "the kernel refuses one block less too"
exact=$(mkdev_sectors exact $((need / 512)))
tool_ok create big /dev/mapper/zsrc /dev/mapper/zdest "$exact" --region 4k --no-hydration
track_dm big
assert_eq "$(clone_regions big)" 268435456 "regions of the 1 TiB clone"
tool_ok remove big
no_dm big

log "create refuses a destination that holds a filesystem"
no_dm c1
fsdest=$(mkdev fsdest 320)			# mkfs.xfs wants 300 MiB
meta3=$(mkdev meta3 4)
mkfs.ext4 -q -F "$fsdest"
fs_sum=$(dev_sum "$fsdest")
tool_refuses 1 "destination $fsdest is not empty: it holds ext4 at offset 0x438.*--force.*wipefs -a $fsdest" \
	create c2 "$src" "$fsdest" "$meta3"
no_dm c2
assert_eq "$(dev_sum "$fsdest")" "$fs_sum" "the destination after the refusal"
assert_eq "$(head_sum "$meta3")" "$(head -c 4096 /dev/zero | sha256sum | cut -d' ' -f1)" \
	"the metadata device after the refusal (still zero)"
mkfs.xfs -q -f "$fsdest"
tool_refuses 1 "holds xfs at offset 0x0" create c2 "$src" "$fsdest" "$meta3"
tool_ok create c2 "$src" "$fsdest" "$meta3" --force --no-hydration
track_dm c2
assert_match "$TOOL_ERR" "--force: overwriting what the destination $fsdest holds: xfs" "create --force"
fill_pattern /dev/mapper/c2 7 0 128
tool_ok remove c2
# The destination has the source's data now, and resuming is no new clone.
mkfs.ext4 -q -F "$fsdest"
tool_ok create c2 "$src" "$fsdest" "$meta3" --no-hydration
assert_match "$TOOL_ERR" "resuming" "resume onto a destination with a signature"
tool_ok remove c2

log "create without wipefs: a warning"
mkdir "$TEST_TMP/bin"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
	for f in "$d"/*; do
		b=${f##*/}
		[ "$b" = wipefs ] || [ -e "$TEST_TMP/bin/$b" ] || ln -s "$f" "$TEST_TMP/bin/$b"
	done
done
meta4=$(mkdev meta4 4)
dest4=$(mkdev dest4 32)
rc=0
err=$(PATH=$TEST_TMP/bin dmclone create c3 "$src" "$dest4" "$meta4" --no-hydration 2>&1 >/dev/null) || rc=$?
track_dm c3
assert_eq "$rc" 0 "create without wipefs"
assert_match "$err" "warning: cannot check the destination $dest4 for filesystem, RAID or LVM signatures \(neither wipefs nor util-linux's blkid is installed\)" "the warning without wipefs"
log "grow"
gsrcl=$(mkdev gsrcl 24)
gdestl=$(mkdev gdestl 24)
gmeta=$(mkdev gmeta 4)
fill_pattern "$gsrcl" 5
dm_create gsrc "0 16384 linear $gsrcl 0"
dm_create gdst "0 16384 linear $gdestl 0"
tool_ok create g /dev/mapper/gsrc /dev/mapper/gdst "$gmeta" --threshold 8
track_dm g
tool_ok grow g
assert_match "$TOOL_OUT" "^g: already 8 MiB; nothing to grow\.$" "grow with nothing to grow"
dm_swap_t() { dmsetup load "$1" --table "$2" && dmsetup suspend "$1" && dmsetup resume "$1"; }
dm_swap_t gsrc "0 49152 linear $gsrcl 0" || fail "growing the source failed"
before=$(dmsetup table g)
tool_refuses 1 "the destination /dev/mapper/gdst \(8 MiB\) is smaller than the new size, 24 MiB: grow it first; nothing changed" grow g
assert_eq "$(dmsetup table g)" "$before" "table after a refused grow"
dm_swap_t gdst "0 49152 linear $gdestl 0" || fail "growing the destination failed"
tool_refuses 1 "is smaller than g's, 8 MiB: a clone cannot shrink" grow g --size 4m
tool_ok grow g --size 16m
assert_match "$TOOL_OUT" "^g: grown to 16 MiB \(256 regions, 128 new, to be copied\)" "grow --size 16m"
tool_ok grow g
assert_match "$TOOL_OUT" "^g: grown to 24 MiB \(384 regions, 128 new, to be copied\)" "grow to the source's size"
wait_for 60 sh -c '[ "$(dmsetup status g | awk "{ print \$7 }")" = 384/384 ]' ||
	fail "the grown clone did not complete: $(dmsetup status g)"
cmp_dev /dev/mapper/g "$gsrcl" 49152 || fail "the grown clone differs from its source"
tool_ok remove g
meta5=$(mkdev meta5 4)
dest5=$(mkdev dest5 32)
tool_ok create w /dev/mapper/gsrc "$dest5" "$meta5" --whole-destination --no-hydration
track_dm w
before=$(dmsetup table w)
tool_refuses 1 "w maps the rest of its destination after the clone \(create --whole-destination\)" grow w
assert_eq "$(dmsetup table w)" "$before" "table of a --whole-destination clone after a refused grow"
tool_ok remove w
dm_remove gdst
dm_remove gsrc
log "ok"
