#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: the in-guest runner stops responding (SIGSTOP); tests/run
# cuts the silent guest off and goes on in a new guest.
# timeout: 5
. "$(dirname "$0")/lib/common.sh"
echo "stopping the in-guest runner"
kill -STOP "$(cat /tmp/dmclone-runner/runner.pid)"
