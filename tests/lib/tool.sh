# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Helpers for the tests of the life-cycle tool scripts/dmclone (tests
# 060-069). The tool is in the guest image as /usr/local/sbin/dmclone
# (scripts/mkinitramfs.sh installs it). Source after common.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/tool.sh"
#
#   need_tool                 skip unless dmclone is in the image
#   tool ARGS...              run dmclone; stdout, stderr and the status in
#                             TOOL_OUT, TOOL_ERR, TOOL_RC (never fails)
#   tool_ok ARGS...           tool, and fail the test unless it exits 0
#   tool_refuses RC REGEX ARGS...
#                             tool must exit RC with an error on stderr
#                             matching the ERE REGEX (case-insensitive) and
#                             nothing on stdout
#   json_parse JQ-ARGS...     jq (fails the test when jq is missing)
#   json_check JSON           JSON must parse (jq) as one flat JSON object
#                             with no key twice; fails the test
#   json_get JSON KEY         the value of KEY, parsed (strings unquoted,
#                             null as null); fails if there is no KEY
#   fs_with_files DEV SUMS N STEP BIG_MIB
#                             ext4 on DEV with files d/file1..N (I * STEP
#                             random bytes each) and big (BIG_MIB MiB);
#                             their sha256sum lines in SUMS; DEV unmounted
#   head_sum DEV              sha256 of DEV's first 4 KiB (O_DIRECT)
#   dev_sum DEV               sha256 of all of DEV (O_DIRECT)
#   no_dm NAME                fail if a dm device NAME exists
#   track_dm NAME             remove dm device NAME at exit (tool-made)

need_tool() {
	command -v dmclone >/dev/null 2>&1 ||
		skip "the dmclone tool is not in the guest image (scripts/mkinitramfs.sh installs it)"
}

tool() {
	local e=$TEST_TMP/.tool-err
	TOOL_RC=0
	TOOL_OUT=$(dmclone "$@" 2>"$e") || TOOL_RC=$?
	TOOL_ERR=$(cat "$e")
	return 0
}

tool_ok() {
	tool "$@"
	[ "$TOOL_RC" = 0 ] || fail "dmclone $* exited $TOOL_RC: $TOOL_ERR"
}

tool_refuses() {
	local rc=$1 re=$2
	shift 2
	tool "$@"
	[ "$TOOL_RC" = "$rc" ] ||
		fail "dmclone $*: expected exit $rc, got $TOOL_RC (stdout '$TOOL_OUT', stderr '$TOOL_ERR')"
	[ -z "$TOOL_OUT" ] || fail "dmclone $*: printed on stdout while refusing: '$TOOL_OUT'"
	[[ ${TOOL_ERR,,} =~ ${re,,} ]] ||
		fail "dmclone $*: the error '$TOOL_ERR' does not match /$re/"
	log "refused as expected: $(head -n 1 <<<"$TOOL_ERR")"
}

# The JSON is read with jq, a real parser (in the guest image). It reads
# one JSON text from standard input and fails on anything that is not.
json_parse() {
	command -v jq >/dev/null 2>&1 || fail "jq is not in the guest image (scripts/mkinitramfs.sh adds it)"
	jq "$@"
}

json_check() {
	local t dup
	t=$(json_parse -r 'type' <<<"$1" 2>&1) || fail "not JSON ($t): '$1'"
	[ "$t" = object ] || fail "not a JSON object but $t: '$1'"
	t=$(json_parse -r '[.[] | type | select(. == "object" or . == "array")] | length' <<<"$1") ||
		fail "cannot read the values of '$1'"
	[ "$t" = 0 ] || fail "not a flat JSON object ($t nested values): '$1'"
	# The streaming parser reports every key, also one that repeats.
	dup=$(jq -c --stream 'select(length == 2) | .[0][0]' <<<"$1" | sort | uniq -d)
	[ -z "$dup" ] || fail "a JSON key appears twice: $dup"
}

json_get() {
	local v
	# shellcheck disable=SC2016 # $k is jq's
	v=$(json_parse -r --arg k "$2" 'if has($k) then .[$k] else error("no key " + $k) end' <<<"$1" 2>&1) ||
		fail "cannot read $2 from '$1': $v"
	echo "$v"
}

fs_with_files() {
	local dev=$1 sums=$2 n=$3 step=$4 big=$5 m=$TEST_TMP/.fs_with_files i
	mkdir -p "$m"
	mkfs.ext4 -q -F -b 4096 -E nodiscard "$dev" || fail "mkfs.ext4 $dev failed"
	mount "$dev" "$m" || fail "cannot mount the new ext4 on $dev"
	mkdir -p "$m/d"
	for ((i = 1; i <= n; i++)); do head -c $((i * step)) /dev/urandom >"$m/d/file$i"; done
	head -c $((big * 1024 * 1024)) /dev/urandom >"$m/big"
	(cd "$m" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$sums"
	umount "$m" || fail "cannot unmount the new ext4 on $dev"
}

head_sum() { dd if="$1" bs=4096 count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1; }
dev_sum() { dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }

no_dm() {
	if dmsetup info "$1" >/dev/null 2>&1; then
		fail "a device $1 exists but should not: $(dmsetup table "$1" 2>&1)"
	fi
	return 0
}

# track_dm NAME: remove the dm device NAME (made by the tool) at exit, like
# the devices of dm_create; dm_remove NAME removes it earlier.
track_dm() { _dmc_register dm "$1"; }
