#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of the boot integration and the shell completion, no guest
# needed:
#   * systemd/dmclone-generator turns a sample /etc/clonetab into
#     dmclone@NAME.service units with the ExecStart= line, ordering and
#     device dependencies Documentation/boot.rst describes, and the links
#     that pull them in (noauto, nofail, finish); bad lines are skipped
#     with a message naming the line, the good ones still get units;
#   * `systemd-analyze verify` accepts every generated unit and an
#     instance of dmclone-finish@.service (skipped when systemd-analyze is
#     missing);
#   * udev/dmclone-destination, on a fake sysfs and dmsetup, marks the
#     destination of an active clone and a destination in clonetab, and
#     nothing else (the source, the metadata, a linear device's lower
#     device, an unrelated disk);
#   * completion/dmclone completes commands, options, clone names and
#     prefetch's files.
# Run by `make -C tests/unit`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=tests/unit/check.sh
. "$here/check.sh"

# ---------------------------------------------------------------- generator

gen=$tmp/gen
mkdir -p "$gen"
cat >"$tmp/clonetab" <<'TAB'
# NAME SOURCE DESTINATION METADATA [OPTIONS]
vm1   /dev/nbd0  PARTUUID=0a1b-02  /dev/disk/by-id/nvme-x-part3  region=4k,no-hydration,finish
data  ID=wwn-0x5000  /dev/sdb  /dev/sdc  nofail,threshold=64,batch=4,no-discard-passdown,whole-destination   # a comment
late  /dev/vdb /dev/vdc /dev/vdd noauto

bad%name /dev/a /dev/b /dev/c
short /dev/a /dev/b
byfs /dev/a UUID=1234 /dev/c
opt /dev/a /dev/b /dev/c region=4k,turbo
TAB
tool=$root/scripts/dmclone
rc=0
DMCLONE_CLONETAB=$tmp/clonetab DMCLONE_TOOL=$tool "$root/systemd/dmclone-generator" "$gen" \
	2>"$tmp/gen.err" || rc=$?
check "the generator exits 1 when a line was skipped" eq "$rc" 1
err=$(cat "$tmp/gen.err")
check "line 6 named in the messages" grep -q "clonetab:6: the name 'bad%name' may only hold" <<<"$err"
check "line 7 named in the messages" grep -q "clonetab:7: expected NAME SOURCE DESTINATION METADATA \[OPTIONS\], got 3" <<<"$err"
check "line 8 named in the messages" grep -q "clonetab:8: the destination 'UUID=1234' is named by its filesystem" <<<"$err"
check "line 9 named in the messages" grep -q "clonetab:9: unknown option 'turbo'" <<<"$err"
check "four messages" eq "$(wc -l <"$tmp/gen.err")" 4
units=$(cd "$gen" && find . -name '*.service' -type f | sort | tr '\n' ' ')
check "one unit per good line" eq "$units" "./dmclone@data.service ./dmclone@late.service ./dmclone@vm1.service "
links=$(cd "$gen" && find . -type l -printf '%p -> %l\n' | sort)
check "the links" eq "$links" "./dev-mapper-data.device.requires/dmclone@data.service -> ../dmclone@data.service
./dev-mapper-late.device.requires/dmclone@late.service -> ../dmclone@late.service
./dev-mapper-vm1.device.requires/dmclone@vm1.service -> ../dmclone@vm1.service
./local-fs-pre.target.requires/dmclone@vm1.service -> ../dmclone@vm1.service
./local-fs-pre.target.wants/dmclone@data.service -> ../dmclone@data.service
./multi-user.target.wants/dmclone-finish@vm1.service -> /usr/lib/systemd/system/dmclone-finish@.service"
key() { sed -n "s/^$2=//p" "$gen/$1"; }
check "vm1's ExecStart" eq "$(key dmclone@vm1.service ExecStart)" \
	"$tool create vm1 /dev/nbd0 /dev/disk/by-partuuid/0a1b-02 /dev/disk/by-id/nvme-x-part3 --quiet --region 4k --no-hydration"
check "vm1's ExecStop" eq "$(key dmclone@vm1.service ExecStop)" "$tool remove vm1"
check "vm1 requires its devices" eq "$(key dmclone@vm1.service Requires)" \
	'dev-nbd0.device dev-disk-by\x2dpartuuid-0a1b\x2d02.device dev-disk-by\x2did-nvme\x2dx\x2dpart3.device'
check "vm1 after its devices" eq "$(key dmclone@vm1.service After)" \
	'dev-nbd0.device dev-disk-by\x2dpartuuid-0a1b\x2d02.device dev-disk-by\x2did-nvme\x2dx\x2dpart3.device modprobe@dm_mod.service'
check "vm1 before local-fs-pre.target" eq "$(key dmclone@vm1.service Before)" "local-fs-pre.target umount.target"
check "vm1 without default dependencies" eq "$(key dmclone@vm1.service DefaultDependencies)" no
check "data's ExecStart" eq "$(key dmclone@data.service ExecStart)" \
	"$tool create data /dev/disk/by-id/wwn-0x5000 /dev/sdb /dev/sdc --quiet --threshold 64 --batch 4 --no-discard-passdown --whole-destination"
check "late's ExecStart" eq "$(key dmclone@late.service ExecStart)" "$tool create late /dev/vdb /dev/vdc /dev/vdd --quiet"

# systemd's spelling: region-size=BYTES (K, M, G: 1024-based, upper case,
# as systemd parses it), "-" for no options. Bad sizes skip their line
# with a message naming it; the other lines still get their units.
gen3=$tmp/gen3
mkdir -p "$gen3"
cat >"$tmp/clonetab3" <<'TAB'
sd1 /dev/vdb /dev/vdc /dev/vdd region-size=64K
sd2 /dev/vdb /dev/vdc /dev/vdd region-size=1M,nofail
sd3 /dev/vdb /dev/vdc /dev/vdd region-size=4096
sd4 /dev/vdb /dev/vdc /dev/vdd -
lower /dev/a /dev/b /dev/c region-size=64k
three /dev/a /dev/b /dev/c region-size=48K
big /dev/a /dev/b /dev/c region-size=2G
small /dev/a /dev/b /dev/c region-size=2048
empty /dev/a /dev/b /dev/c region-size=
frac /dev/a /dev/b /dev/c region-size=1.5M
twice /dev/a /dev/b /dev/c region=4k,region-size=4K
sd5 /dev/vdb /dev/vdc /dev/vdd region-size=1G
sd6 /dev/vdb /dev/vdc /dev/vdd region_size=128K
TAB
rc=0
DMCLONE_CLONETAB=$tmp/clonetab3 DMCLONE_TOOL=$tool "$root/systemd/dmclone-generator" "$gen3" \
	2>"$tmp/gen3.err" || rc=$?
check "region-size: the generator exits 1 when a line was skipped" eq "$rc" 1
err=$(cat "$tmp/gen3.err")
echo "$err"
check "region-size: lower-case suffix refused" grep -q "clonetab3:5: 'region-size=64k' is not a size: region-size= takes bytes, or a number with K, M or G (upper case: 64K, 1M); line skipped" <<<"$err"
check "region-size: not a power of two" grep -q "clonetab3:6: 'region-size=48K': the region size must be a power of two from 4K to 1G; line skipped" <<<"$err"
check "region-size: too large" grep -q "clonetab3:7: 'region-size=2G': the region size must be a power of two from 4K to 1G" <<<"$err"
check "region-size: too small" grep -q "clonetab3:8: 'region-size=2048': the region size must be a power of two from 4K to 1G" <<<"$err"
check "region-size: empty" grep -q "clonetab3:9: 'region-size=' is not a size" <<<"$err"
check "region-size: a fraction" grep -q "clonetab3:10: 'region-size=1.5M' is not a size" <<<"$err"
check "region-size: given twice" grep -q "clonetab3:11: the region size is given twice ('region=4k' and 'region-size=4K'); line skipped" <<<"$err"
check "region-size: seven messages" eq "$(wc -l <"$tmp/gen3.err")" 7
units=$(cd "$gen3" && find . -name '*.service' -type f | sort | tr '\n' ' ')
check "region-size: units for the good lines only" eq "$units" \
	"./dmclone@sd1.service ./dmclone@sd2.service ./dmclone@sd3.service ./dmclone@sd4.service ./dmclone@sd5.service ./dmclone@sd6.service "
key3() { sed -n "s/^$2=//p" "$gen3/$1"; }
check "region-size=64K passed on" eq "$(key3 dmclone@sd1.service ExecStart)" "$tool create sd1 /dev/vdb /dev/vdc /dev/vdd --quiet --region-size 64K"
check "region-size=1M passed on" eq "$(key3 dmclone@sd2.service ExecStart)" "$tool create sd2 /dev/vdb /dev/vdc /dev/vdd --quiet --region-size 1M"
check "region-size=4096 passed on" eq "$(key3 dmclone@sd3.service ExecStart)" "$tool create sd3 /dev/vdb /dev/vdc /dev/vdd --quiet --region-size 4096"
check "region_size=128K (the spelling of systemd's sources) passed on" eq "$(key3 dmclone@sd6.service ExecStart)" "$tool create sd6 /dev/vdb /dev/vdc /dev/vdd --quiet --region-size 128K"
check "'-' is no option" eq "$(key3 dmclone@sd4.service ExecStart)" "$tool create sd4 /dev/vdb /dev/vdc /dev/vdd --quiet"
check "region-size=1G passed on" eq "$(key3 dmclone@sd5.service ExecStart)" "$tool create sd5 /dev/vdb /dev/vdc /dev/vdd --quiet --region-size 1G"
check "nofail beside region-size" test -L "$gen3/local-fs-pre.target.wants/dmclone@sd2.service"
# The tool takes what the generator passes: the size the generator checked.
check "dmclone create --region-size is an option" grep -q -- '--region-size) ' "$tool"

# Unit names as systemd-escape makes them (the generator has its own).
if command -v systemd-escape >/dev/null 2>&1; then
	gen4=$tmp/gen4
	mkdir -p "$gen4"
	printf '%s\n' 'a-b+c.d /dev/disk/by-path/pci-0000:00:1f.2-ata-1 /dev/disk/by-id/x_y.z /dev//vd-e/ finish' \
		'.dot /dev/vdb /dev/vdc /dev/vdd' >"$tmp/clonetab4"
	DMCLONE_CLONETAB=$tmp/clonetab4 DMCLONE_TOOL=$tool "$root/systemd/dmclone-generator" "$gen4"
	want="$(systemd-escape --template=dmclone@.service .dot) $(systemd-escape --template=dmclone@.service a-b+c.d) "
	check "unit names as systemd-escape's" eq "$(cd "$gen4" && find . -name '*.service' -type f | sed 's|^\./||' | sort | tr '\n' ' ')" "$want"
	want="$(systemd-escape --path --suffix=device /dev/disk/by-path/pci-0000:00:1f.2-ata-1 /dev/disk/by-id/x_y.z /dev//vd-e/ | tr '\n' ' ')"
	check "device units as systemd-escape's" eq "$(sed -n 's/^Requires=//p' "$gen4/dmclone@a\x2db\x2bc.d.service") " "$want"
	check "mapper device unit as systemd-escape's" test -L \
		"$gen4/$(systemd-escape --path --suffix=device /dev/mapper/a-b+c.d).requires/dmclone@a\x2db\x2bc.d.service"
	check "finish unit name as systemd-escape's" test -L \
		"$gen4/multi-user.target.wants/$(systemd-escape --template=dmclone-finish@.service a-b+c.d)"
fi

# systemd 262 and later: its own generator reads /etc/clonetab. Ours then
# writes nothing (no clone set up twice), and names per line what systemd
# does not honour; masked (a link to /dev/null in /etc), it is not counted.
sysroot=$tmp/sysroot
mkdir -p "$sysroot/usr/lib/systemd/system-generators" "$tmp/gen5"
printf '#!/bin/sh\n' >"$sysroot/usr/lib/systemd/system-generators/systemd-clonesetup-generator"
chmod +x "$sysroot/usr/lib/systemd/system-generators/systemd-clonesetup-generator"
cat >"$tmp/clonetab5" <<'TAB'
  # portable, indented comment (systemd strips the white space first)
p1 /dev/vdb /dev/vdc /dev/vdd region-size=64K
p2 /dev/vdb /dev/vdc /dev/vdd
ext /dev/vdb /dev/vdc /dev/vdd region=4k,nofail,finish
byid ID=wwn-1 PARTUUID=77-01 /dev/vdd
TAB
rc=0
DMCLONE_CLONETAB=$tmp/clonetab5 DMCLONE_TOOL=$tool DMCLONE_GENERATOR_ROOT=$sysroot \
	"$root/systemd/dmclone-generator" "$tmp/gen5" 2>"$tmp/gen5.err" || rc=$?
err=$(cat "$tmp/gen5.err")
echo "$err"
check "systemd's generator installed: exit 0" eq "$rc" 0
check "systemd's generator installed: nothing written" eq "$(ls -A "$tmp/gen5")" ""
check "systemd's generator installed: says so" grep -q \
	"^dmclone-generator: /usr/lib/systemd/system-generators/systemd-clonesetup-generator is installed: systemd sets up the clones of $tmp/clonetab5 itself (systemd-clonesetup@NAME.service); no dmclone@ unit is written$" <<<"$err"
check "systemd's generator installed: our options named" grep -q \
	"clonetab5:4: ext: systemd ignores the option(s) region=4k,nofail,finish$" <<<"$err"
check "systemd's generator installed: non-/dev devices named" grep -q \
	"clonetab5:5: byid: systemd skips the line: it takes /dev/ paths only, not 'ID=wwn-1' 'PARTUUID=77-01'$" <<<"$err"
check "systemd's generator installed: three messages" eq "$(wc -l <"$tmp/gen5.err")" 3
mkdir -p "$sysroot/etc/systemd/system-generators"
ln -s /dev/null "$sysroot/etc/systemd/system-generators/systemd-clonesetup-generator"
DMCLONE_CLONETAB=$tmp/clonetab5 DMCLONE_TOOL=$tool DMCLONE_GENERATOR_ROOT=$sysroot \
	"$root/systemd/dmclone-generator" "$tmp/gen5" 2>"$tmp/gen5.err"
units=$(cd "$tmp/gen5" && find . -name '*.service' -type f | sort | tr '\n' ' ')
check "systemd's generator masked: ours writes the units" eq "$units" \
	"./dmclone@byid.service ./dmclone@ext.service ./dmclone@p1.service ./dmclone@p2.service "

# No clonetab: nothing, exit 0.
mkdir "$tmp/gen2"
check "no clonetab: exit 0" env DMCLONE_CLONETAB="$tmp/none" "$root/systemd/dmclone-generator" "$tmp/gen2"
check "no clonetab: no unit" eq "$(ls -A "$tmp/gen2")" ""

# ---------------------------------------------------------------- verify

if command -v systemd-analyze >/dev/null 2>&1; then
	# The finish template with the tool's path, beside the generated units.
	sed "s|/usr/sbin/dmclone|$tool|" "$root/systemd/dmclone-finish@.service" >"$gen/dmclone-finish@.service"
	for u in dmclone@vm1.service dmclone@data.service dmclone@late.service dmclone-finish@vm1.service; do
		out=$(cd "$gen" && SYSTEMD_UNIT_PATH=$gen: systemd-analyze verify --man=no "$u" 2>&1) && rc=0 || rc=$?
		check "systemd-analyze verify $u (exit status)" eq "$rc" 0
		check "systemd-analyze verify $u (no message)" eq "$out" ""
	done
	# verify does catch a broken unit.
	printf '[Unit]\nBefore=x.target\n[Service]\nExecStart=relative\nBogus=1\n' >"$gen/broken.service"
	check "systemd-analyze verify fails a broken unit" eval \
		"! (cd '$gen' && SYSTEMD_UNIT_PATH='$gen:' systemd-analyze verify --man=no broken.service >/dev/null 2>&1)"
else
	echo "test-boot: systemd-analyze is not installed: the units are not verified (apt install systemd)"
fi

# ---------------------------------------------------------------- udev helper

# A fake sysfs: sdb (8:16) holds clone dm-0 (254:0) as its destination,
# sdc (8:32) its metadata, nbd0 (43:0) its source; sdd (8:48) is under a
# linear dm-1 (254:1); sde (8:64) is nothing.
sys=$tmp/sys
mkholder() {	# mkholder LOWER DMNUM DMDEV NAME
	mkdir -p "$sys/block/dm-$2/dm" "$sys/dev/block/$1/holders"
	echo "$3" >"$sys/block/dm-$2/dev"
	echo "$4" >"$sys/block/dm-$2/dm/name"
	ln -sfn "$sys/block/dm-$2" "$sys/dev/block/$1/holders/dm-$2"
}
mkholder 8:16 0 254:0 vm1
mkholder 8:32 0 254:0 vm1
mkholder 43:0 0 254:0 vm1
mkholder 8:48 1 254:1 lin
mkdir -p "$sys/dev/block/8:64"
cat >"$tmp/dmsetup" <<'DM'
#!/bin/sh
# dmsetup table -j MAJ -m MIN
case "$3:$5" in
254:0) echo "0 2097152 clone 8:32 8:16 43:0 128 1 no_hydration" ;;
254:1) echo "0 2097152 linear 8:48 0" ;;
*) echo "Device does not exist." >&2; exit 1 ;;
esac
DM
chmod +x "$tmp/dmsetup"
printf '# clonetab\nboot1 /dev/nbd1 /dev/vdx /dev/vdy\nboot2 /dev/nbd2 PARTUUID=77-01 /dev/vdz\n' >"$tmp/clonetab2"
helper() {
	DMCLONE_SYSFS=$sys DMCLONE_DMSETUP=$tmp/dmsetup DMCLONE_CLONETAB=$tmp/clonetab2 \
		"$root/udev/dmclone-destination" "$@" | tr '\n' ' '
}
check "active clone's destination" eq "$(helper 8:16 /dev/sdb)" "DMCLONE_DESTINATION=active DMCLONE_NAME=vm1 "
check "active clone's metadata" eq "$(helper 8:32 /dev/sdc)" ""
check "active clone's source" eq "$(helper 43:0 /dev/nbd0)" ""
check "under a linear device" eq "$(helper 8:48 /dev/sdd)" ""
check "an unrelated disk" eq "$(helper 8:64 /dev/sde)" ""
check "a destination in clonetab, by path" eq "$(helper 252:16 /dev/vdx)" "DMCLONE_DESTINATION=clonetab DMCLONE_NAME=boot1 "
check "a destination in clonetab, by PARTUUID" eq "$(helper 252:33 /dev/vdw1 77-01 data)" "DMCLONE_DESTINATION=clonetab DMCLONE_NAME=boot2 "
check "a metadata device in clonetab" eq "$(helper 252:32 /dev/vdy)" ""
check "a source in clonetab" eq "$(helper 43:16 /dev/nbd1)" ""
check "a bad argument" eq "$(helper bogus)" ""
# shellcheck disable=SC2016
check "the rules call the helper by its installed name" \
	grep -q '^IMPORT{program}="dmclone-destination \$major:\$minor' "$root/udev/61-dmclone-destination.rules"

# ---------------------------------------------------------------- completion

complete_words() {	# complete_words WORD...: the completions of the last word
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_dmclone
	[ ${#COMPREPLY[@]} = 0 ] || printf '%s ' "${COMPREPLY[@]}"
}
cat >"$tmp/dmsetup-ls" <<'DM'
#!/bin/sh
printf 'vm1\t(254:0)\ndata\t(254:2)\n'
DM
chmod +x "$tmp/dmsetup-ls"
# shellcheck source=completion/dmclone
. "$root/completion/dmclone"
export DMCLONE_DMSETUP=$tmp/dmsetup-ls
check "complete a command" eq "$(complete_words dmclone cr)" "create "
check "complete the commands" eq "$(complete_words dmclone "")" "create status watch tune finish list remove grow prefetch size help --help --version "
check "complete create's options" eq "$(complete_words dmclone create x --no)" "--no-hydration --no-discard-passdown "
check "complete a clone name" eq "$(complete_words dmclone status "")" "vm1 data "
check "complete a clone name with a prefix" eq "$(complete_words dmclone finish d)" "data "
check "no second name" eq "$(complete_words dmclone remove vm1 "")" ""
check "complete --region" eq "$(complete_words dmclone size --size 1t --region 6)" "64k "
check "complete help's topic" eq "$(complete_words dmclone help s)" "status size "
check "complete prefetch's options" eq "$(complete_words dmclone prefetch vm1 --n)" "--no-wait "
check "complete prefetch's clone name" eq "$(complete_words dmclone prefetch v)" "vm1 "
mkdir -p "$tmp/pf/dir"
: >"$tmp/pf/file1"
check "complete prefetch's PATHs: files and directories" \
	eq "$(complete_words dmclone prefetch vm1 "$tmp/pf/" | tr ' ' '\n' | sort | paste -sd' ')" "$tmp/pf/dir $tmp/pf/file1"
check "complete prefetch's further PATHs, after --timeout" \
	eq "$(complete_words dmclone prefetch vm1 --timeout 5 "$tmp/pf/file1" "$tmp/pf/d")" "$tmp/pf/dir "

check_summary test-boot
