#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dmclone's usage: every subcommand has --help (and `dmclone help CMD`)
# printing its usage on stdout with exit 0 and nothing on stderr; no
# command, an unknown command or an unknown option is a usage error (exit
# 2, the usage or a hint on stderr, nothing on stdout); a user who is not
# root is told to use sudo (exit 1) before anything is touched.
# timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/tool.sh"

need_tool

for c in create status watch tune finish; do
	for form in "$c --help" "$c -h" "help $c"; do
		# shellcheck disable=SC2086
		tool $form
		assert_eq "$TOOL_RC" 0 "exit status of dmclone $form"
		assert_eq "$TOOL_ERR" "" "stderr of dmclone $form"
		assert_match "$TOOL_OUT" "^Usage: dmclone $c NAME" "dmclone $form"
	done
	tool_refuses 2 "dmclone $c: unknown option --bogus.*dmclone $c --help" "$c" x --bogus
done
tool_ok --help
for c in create status watch tune finish; do
	assert_match "$TOOL_OUT" "dmclone $c NAME" "the overview names $c"
done
tool_ok help
assert_match "$TOOL_OUT" "dmclone create NAME SOURCE DEST METADATA" "dmclone help"

tool
assert_eq "$TOOL_RC" 2 "exit status without a command"
assert_eq "$TOOL_OUT" "" "stdout without a command"
assert_match "$TOOL_ERR" "dmclone create NAME" "usage on stderr without a command"
tool_refuses 2 "unknown command 'destroy'" destroy x
tool_refuses 2 "no command 'destroy'" help destroy

log "not root"
# In a new user namespace without a mapping, root is the overflow user.
if unshare -U sh -c '[ "$(id -u)" != 0 ]' 2>/dev/null; then
	for args in "status x" "watch x" "tune x --pause" "finish x" "create x /dev/loop0 /dev/loop1 /dev/loop2"; do
		rc=0
		# shellcheck disable=SC2086
		err=$(unshare -U dmclone $args 2>&1 >/dev/null) || rc=$?
		assert_eq "$rc" 1 "exit status of dmclone $args as a user"
		assert_match "$err" "needs root.*sudo" "dmclone $args as a user"
	done
else
	log "cannot run as a non-root user here (unshare -U): the non-root check is not run"
fi
log "ok"
