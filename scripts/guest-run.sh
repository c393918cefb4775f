#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Boot the test guest (qemu, software emulation), run one script in it as
# root, print the script's output and exit with the script's status.
#
#   scripts/guest-run.sh [options] -- SCRIPT [ARGS...]
#
#   --kernel SEL      boot that kernel: 6.1 (default), 6.12 or 7 (see
#                     scripts/kernels.sh; also DMCLONE_KERNEL)
#   --timeout S       cut the guest off after S seconds (default 600)
#   --mem M           guest memory in MiB (default 3072)
#   --smp N           virtual CPUs (default 2)
#   --payload DIR     copy DIR into the guest as /payload/$(basename DIR)
#                     (repeatable)
#   --module KO       add a kernel module to the guest's module tree
#                     (repeatable); by default the dm-clone.ko built for
#                     the guest's kernel is added when it has been built
#                     (the repository's for 6.1, out/build/KVER/ for the
#                     others: scripts/build-module.sh)
#   --no-module       do not add that dm-clone.ko
#   --env NAME=VALUE  set NAME in the script's environment (repeatable)
#   --append ARGS     extra kernel command line arguments
#   --hung-task S     kernel.hung_task_timeout_secs in the guest (default 30)
#   --log-dir DIR     where console.log (kernel log), output.log (script
#                     output) and qemu.log go (default out/guest-run)
#   --no-log-check    do not fail on bad kernel log lines (the caller checks)
#   --quiet           do not print the script's output (output.log has it)
#
# SCRIPT is a file on the host (run with bash in the guest: from its place
# if it lies in a --payload DIR, else copied to /payload/bin/) or the name
# of a command in the guest image. It runs in /payload with PATH set,
# DM_DISABLE_UDEV=1, /proc /sys /dev /tmp /run and debugfs mounted, and
# stdin from /dev/null. Modules given (and dm-clone.ko) are in
# /lib/modules/$(uname -r)/updates/ with depmod run, so `modprobe dm-clone`
# loads dm-persistent-data and friends too.
#
# The script's output travels on the guest's second serial port, the kernel
# log on the first. The script may print "@@DMCLONE-DEADLINE N" lines: the
# guest is then cut off if it prints no further such line (and does not
# finish) within N seconds (0 disarms); tests/run uses this to detect a dead
# guest quickly.
#
# Exit status: the script's, or 1 if it exited 0 but the kernel log has a
# line matching tests/lib/kernel-log-patterns (the excerpt is printed on
# stderr), 124 if the guest was cut off (timeout, deadline), 125 if it died
# without reporting (panic, triple fault). qemu's own exit code is never
# used: it is 0 after a guest panic too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/kernels.sh"

usage() { sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit "${1:-2}"; }

timeout=600 mem=3072 smp=2 hung=30 append="" log_dir="" log_check=1 quiet=0
default_module=1
payloads=() modules=() envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) export DMCLONE_KERNEL=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--payload) payloads+=("$2"); shift 2 ;;
	--module) modules+=("$2"); shift 2 ;;
	--no-module) default_module=0; shift ;;
	--env) envs+=("$2"); shift 2 ;;
	--append) append="$append $2"; shift 2 ;;
	--hung-task) hung=$2; shift 2 ;;
	--log-dir) log_dir=$2; shift 2 ;;
	--no-log-check) log_check=0; shift ;;
	--quiet) quiet=1; shift ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	*) echo "guest-run: unknown option $1" >&2; usage ;;
	esac
done
[ $# -ge 1 ] || usage
script=$1
shift

apt_install qemu-system-x86 cpio coreutils
eval "$("$here/guest-kernel.sh")"		# KVER VMLINUZ MODROOT MODDIR
base=$("$here/mkinitramfs.sh" "$KVER")

log_dir=${log_dir:-$DMCLONE_OUT/guest-run}
mkdir -p "$log_dir"
console=$log_dir/console.log
output=$log_dir/output.log
qemu_log=$log_dir/qemu.log
rm -f "$console" "$output" "$qemu_log"
: >"$output"

stage=$(mktemp -d "${TMPDIR:-/tmp}/dmclone-guest.XXXXXX")
qpid=""
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	rm -rf "$stage"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The payload: a second cpio archive appended to the base image. ---
mkdir -p "$stage/root/payload/bin" "$stage/root/payload/modules"
guest_script=""
script_real=""
[ -f "$script" ] && script_real=$(readlink -f "$script")
for d in ${payloads[@]+"${payloads[@]}"}; do
	[ -d "$d" ] || die "payload $d is not a directory"
	d=$(readlink -f "$d")
	name=$(basename "$d")
	cp -a "$d" "$stage/root/payload/$name"
	case "$script_real" in
	"$d"/*) guest_script=/payload/$name/${script_real#"$d"/} ;;
	esac
done
if [ -n "$script_real" ] && [ -z "$guest_script" ]; then
	cp "$script_real" "$stage/root/payload/bin/"
	guest_script=/payload/bin/$(basename "$script_real")
fi

own_module=$(kernel_module_path "$KVER")
if [ $default_module = 1 ] && [ -f "$own_module" ]; then
	modules=("$own_module" ${modules[@]+"${modules[@]}"})
fi
for m in ${modules[@]+"${modules[@]}"}; do
	[ -f "$m" ] || die "no module $m"
	cp "$m" "$stage/root/payload/modules/"
done

echo "HUNG_TASK_TIMEOUT=$hung" >"$stage/root/payload/env"
{
	echo "#!/bin/bash"
	for e in ${envs[@]+"${envs[@]}"}; do
		case "$e" in
		[A-Za-z_]*=*) printf 'export %s=%q\n' "${e%%=*}" "${e#*=}" ;;
		*) die "--env wants NAME=VALUE, not '$e'" ;;
		esac
	done
	if [ -n "$guest_script" ]; then
		printf 'exec bash %q' "$guest_script"
	else
		printf 'exec %q' "$script"
	fi
	[ $# -gt 0 ] && printf ' %q' "$@"
	echo
} >"$stage/root/payload/cmd"

initrd=$stage/initrd
cp "$base" "$initrd"
# Pad the compressed base to a cpio block; the kernel skips the zeros.
size=$(stat -c %s "$initrd")
head -c $(((512 - size % 512) % 512)) /dev/zero >>"$initrd"
(cd "$stage/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >>"$initrd"

# --- Boot. ---
cmdline="console=ttyS0,115200 panic=-1 loglevel=7 log_buf_len=8M printk.devkmsg=on"
cmdline="$cmdline mitigations=off nmi_watchdog=0 $append"
timeout --kill-after=10 "$timeout" \
	qemu-system-x86_64 -nodefaults -no-user-config -display none \
	-accel tcg,thread=single -cpu max -smp "$smp" -m "$mem" -no-reboot \
	-kernel "$VMLINUZ" -initrd "$initrd" -append "$cmdline" \
	-serial "file:$console" -serial "file:$output" \
	>"$qemu_log" 2>&1 </dev/null &
qpid=$!

# Follow the output: print it, watch for the deadline and exit markers.
rc="" deadline=0 cut_off="" partial=""
exec 3<"$output"
handle_line() {
	local l=${1%$'\r'}
	case "$l" in
	"@@DMCLONE-EXIT "*) rc=${l#@@DMCLONE-EXIT } ;;
	"@@DMCLONE-DEADLINE "*)
		local n=${l#@@DMCLONE-DEADLINE }
		if [ "$n" -gt 0 ] 2>/dev/null; then deadline=$((SECONDS + n)); else deadline=0; fi
		;;
	*) [ $quiet = 1 ] || printf '%s\n' "$l" ;;
	esac
}
while :; do
	alive=0
	kill -0 "$qpid" 2>/dev/null && alive=1
	while IFS= read -r -u 3 line; do
		handle_line "$partial$line"
		partial=""
	done
	partial+=$line
	[ $alive = 1 ] || break
	if [ $deadline -gt 0 ] && [ $SECONDS -gt $deadline ] && [ -z "$rc" ]; then
		cut_off="no progress from the guest within its deadline"
		kill "$qpid" 2>/dev/null || true
	fi
	sleep 0.2
done
[ -n "$partial" ] && handle_line "$partial"
exec 3<&-
qrc=0
wait "$qpid" || qrc=$?
qpid=""
[ $qrc = 124 ] && [ -z "$cut_off" ] && cut_off="timeout after ${timeout}s"

status=0
if [ -z "$rc" ]; then
	if [ -n "$cut_off" ]; then
		echo "guest-run: guest cut off: $cut_off" >&2
		status=124
	else
		echo "guest-run: guest died without reporting an exit status (qemu status $qrc)" >&2
		status=125
	fi
	echo "guest-run: last kernel log lines ($console):" >&2
	tail -n 40 "$console" 2>/dev/null | sed 's/^/  | /' >&2
	[ -s "$qemu_log" ] && sed 's/^/  qemu: /' "$qemu_log" >&2
else
	status=$rc
fi

if [ $log_check = 1 ] && [ -f "$console" ]; then
	bad=$(grep -E -A 12 -f <(grep -v '^#' "$DMCLONE_ROOT/tests/lib/kernel-log-patterns") \
		"$console" | head -n 80 || true)
	if [ -n "$bad" ]; then
		echo "guest-run: bad kernel log lines ($console):" >&2
		printf '%s\n' "$bad" | sed 's/^/  | /' >&2
		[ "$status" = 0 ] && status=1
	fi
fi
exit "$status"
