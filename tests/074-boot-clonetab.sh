#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A boot from /etc/clonetab, simulated (the guest runs no systemd): the
# installed generator (dmclone-generator, as `make install` puts it) turns
# a clonetab in systemd's own format with two clones, one with
# region-size=64K (and our threshold/batch extensions, to make its copy
# slow enough to be cut), one with no options, into a dmclone@NAME.service
# each with the ExecStart= and ExecStop= lines and links documented in
# Documentation/boot.rst. Each unit's ExecStart= command line, run as a
# shell would, sets its clone up: region sizes as asked, the data of the
# sources readable. Data is written into both; some of the copy happens;
# then a "reboot": both clones are removed with dmsetup (the loop devices
# stay) and the ExecStart= lines run again: both clones come back, with
# at least the regions copied they had before, the data byte-exact (the
# writes included), and the copy goes on to completion. The finish unit's
# ExecStart= (dmclone finish %I --wait, %I filled in) then leaves a linear
# device over each destination that reads the same. With systemd's own
# generator present the same generator writes no unit.
# timeout: 300
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/tool.sh"

need_module
need_module dm-delay
need_tool
need_cmd dmclone-pattern

gen=/usr/lib/systemd/system-generators/dmclone-generator
finish_unit=/usr/lib/systemd/system/dmclone-finish@.service
[ -x "$gen" ] || skip "$gen is not in the guest image (scripts/mkinitramfs.sh installs it)"
[ -f "$finish_unit" ] || skip "$finish_unit is not in the guest image"

# A: 32 MiB, 64 KiB regions (512), its source slow (50 ms a read) and
# copied one region at a time; B: 16 MiB onto a larger destination.
srca=$(mkdev srca 32)
desta=$(mkdev desta 32)
metaa=$(mkdev metaa 4)
refa=$(mkdev refa 32)
srcb=$(mkdev srcb 16)
destb=$(mkdev destb 20)
metab=$(mkdev metab 4)
refb=$(mkdev refb 16)
fill_pattern "$srca" 1
fill_pattern "$refa" 1
fill_pattern "$srcb" 2
fill_pattern "$refb" 2
dm_create slowa "$(delay_table "$srca" 50)"

tab=$TEST_TMP/clonetab
cat >"$tab" <<TAB
# NAME  SOURCE            DESTINATION  METADATA  [OPTIONS]
clonea  /dev/mapper/slowa $desta $metaa region-size=64K,threshold=1,batch=1
cloneb	$srcb	$destb	$metab
TAB
out=$TEST_TMP/generator
mkdir -p "$out"/early "$out"/late "$out/normal"

log "the generator"
DMCLONE_CLONETAB=$tab "$gen" "$out/normal" "$out/early" "$out/late" 2>"$TEST_TMP/gen.err" ||
	fail "the generator exited $?: $(cat "$TEST_TMP/gen.err")"
[ ! -s "$TEST_TMP/gen.err" ] || fail "the generator complained: $(cat "$TEST_TMP/gen.err")"
(cd "$out" && find . | sort)
ua=$out/normal/dmclone@clonea.service
ub=$out/normal/dmclone@cloneb.service
if [ ! -f "$ua" ] || [ ! -f "$ub" ]; then fail "no unit for each clone: $(ls -R "$out")"; fi
cat "$ua"
key() { sed -n "s/^$2=//p" "$1"; }
assert_eq "$(key "$ua" ExecStart)" \
	"/usr/local/sbin/dmclone create clonea /dev/mapper/slowa $desta $metaa --quiet --region-size 64K --threshold 1 --batch 1" \
	"clonea's ExecStart"
assert_eq "$(key "$ub" ExecStart)" "/usr/local/sbin/dmclone create cloneb $srcb $destb $metab --quiet" "cloneb's ExecStart"
assert_eq "$(key "$ua" ExecStop)" "/usr/local/sbin/dmclone remove clonea" "clonea's ExecStop"
assert_eq "$(key "$ub" Requires)" "dev-$(basename "$srcb").device dev-$(basename "$destb").device dev-$(basename "$metab").device" \
	"cloneb's device dependencies"
assert_eq "$(key "$ua" Before)" "local-fs-pre.target umount.target" "clonea before the local filesystems"
for n in clonea cloneb; do
	[ -L "$out/normal/local-fs-pre.target.requires/dmclone@$n.service" ] ||
		fail "dmclone@$n.service is not pulled in at boot"
	[ -L "$out/normal/dev-mapper-$n.device.requires/dmclone@$n.service" ] ||
		fail "dmclone@$n.service is not pulled in by /dev/mapper/$n"
done
assert_eq "$(find "$out/early" "$out/late" -mindepth 1 | wc -l)" 0 "files in the early and late directories"

# exec_start UNIT [INSTANCE]: run each ExecStart= command line of UNIT as a
# shell would (%I as INSTANCE, %% as %); fails the test if one fails.
exec_start() {
	local unit=$1 inst=${2:-} line cmd
	while IFS= read -r line <&3; do
		case "$line" in ExecStart=*) ;; *) continue ;; esac
		cmd=${line#ExecStart=}
		cmd=${cmd//%I/$inst}
		cmd=${cmd//%%/%}
		log "ExecStart: $cmd"
		eval "$cmd" || fail "'$cmd' (an ExecStart of ${unit##*/}) exited $?"
	done 3<"$unit"
}

log "boot 1: the units' ExecStart"
exec_start "$ua"
track_dm clonea
exec_start "$ub"
track_dm cloneb
assert_match "$(dm_table clonea)" "^0 65536 clone $(dev_majmin "$metaa") $(dev_majmin "$desta") $(dev_majmin /dev/mapper/slowa) 128 " \
	"clonea's table (64 KiB regions)"
assert_match "$(dm_table cloneb)" "^0 32768 clone $(dev_majmin "$metab") $(dev_majmin "$destb") $(dev_majmin "$srcb") 128( |$)" \
	"cloneb's table (the default 64 KiB regions)"
assert_eq "$(clone_regions clonea)" 512 "clonea's regions"

log "writes into both, some copying"
ref_write /dev/mapper/clonea "$refa" 5 $((400 * 128 + 3)) 300	# regions 400-402, partly
ref_write /dev/mapper/clonea "$refa" 6 $((500 * 128)) 128		# region 500, whole
ref_write /dev/mapper/cloneb "$refb" 7 1000 5000
wait_for 60 hydrated_at_least clonea 40 || fail "clonea does not copy: $(clone_status clonea)"
# Compared with copying off: reads would have their regions copied ahead
# (read hydration), and clonea would be complete before the reboot.
dm_message clonea disable_hydration
cmp_dev /dev/mapper/clonea "$refa" || fail "clonea differs from its reference before the reboot"
dm_message clonea enable_hydration
cmp_dev /dev/mapper/cloneb "$refb" || fail "cloneb differs from its reference before the reboot"

log "reboot: the clones go, the devices stay"
dmsetup suspend clonea
ha=$(clone_hydrated clonea)
dmsetup suspend cloneb
hb=$(clone_hydrated cloneb)
log "hydrated before the reboot: clonea $ha of 512, cloneb $hb of $(clone_regions cloneb)"
[ "$ha" -lt 450 ] || fail "clonea copied too fast for this test ($ha of 512 regions)"
dmsetup remove clonea || fail "cannot remove clonea"
dmsetup remove cloneb || fail "cannot remove cloneb"
no_dm clonea
no_dm cloneb

log "boot 2: the same ExecStart lines"
exec_start "$ua"
exec_start "$ub"
ha2=$(clone_hydrated clonea)
hb2=$(clone_hydrated cloneb)
log "hydrated after the reboot: clonea $ha2, cloneb $hb2"
[ "$ha2" -ge "$ha" ] || fail "clonea came back with $ha2 regions copied, $ha before the reboot"
[ "$hb2" -ge "$hb" ] || fail "cloneb came back with $hb2 regions copied, $hb before the reboot"
[ "$ha2" -lt 512 ] || fail "clonea is complete already: the copy after the reboot is not tested"
cmp_dev /dev/mapper/clonea "$refa" || fail "clonea differs from its reference after the reboot"
cmp_dev /dev/mapper/cloneb "$refb" || fail "cloneb differs from its reference after the reboot"

log "the copy goes on to completion"
# 20 regions more, or all of them when fewer are left (a slow, loaded
# host lets the resumes take seconds while clonea copies).
more=$((ha2 + 20 < 512 ? ha2 + 20 : 512))
wait_for 60 hydrated_at_least clonea $more || fail "clonea does not copy after the reboot: $(clone_status clonea)"
dm_message clonea hydration_threshold 64
wait_hydrated clonea 120
wait_hydrated cloneb 60

log "the finish unit's ExecStart"
exec_start "$finish_unit" clonea
exec_start "$finish_unit" cloneb
assert_eq "$(dm_table clonea)" "0 65536 linear $(dev_majmin "$desta") 0" "clonea's table after finish"
assert_eq "$(dm_table cloneb)" "0 32768 linear $(dev_majmin "$destb") 0" "cloneb's table after finish"
drop_caches
cmp_dev /dev/mapper/clonea "$refa" || fail "clonea differs from its reference after finish"
cmp_dev /dev/mapper/cloneb "$refb" || fail "cloneb differs from its reference after finish"
cmp_dev "$desta" "$refa" || fail "the destination of clonea differs from its reference"
cmp_dev "$destb" "$refb" 32768 || fail "the destination of cloneb differs from its reference"
dm_remove clonea
dm_remove cloneb

log "with systemd's own generator installed, ours writes nothing"
groot=$TEST_TMP/root
mkdir -p "$groot/usr/lib/systemd/system-generators" "$out/again"
printf '#!/bin/sh\n' >"$groot/usr/lib/systemd/system-generators/systemd-clonesetup-generator"
chmod +x "$groot/usr/lib/systemd/system-generators/systemd-clonesetup-generator"
DMCLONE_CLONETAB=$tab DMCLONE_GENERATOR_ROOT=$groot "$gen" "$out/again" 2>"$TEST_TMP/gen.err" ||
	fail "the generator exited $? beside systemd's"
cat "$TEST_TMP/gen.err"
assert_eq "$(ls -A "$out/again")" "" "units written beside systemd's generator"
grep -q "clonetab:2: clonea: systemd ignores the option(s) threshold=1,batch=1$" "$TEST_TMP/gen.err" ||
	fail "the generator did not name the options systemd ignores"
log "ok"
