#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: a background process left running is killed; the test passes.
. "$(dirname "$0")/lib/common.sh"
sleep 1000 &
echo "leaving a sleep behind"
