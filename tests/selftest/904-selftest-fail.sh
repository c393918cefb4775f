#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: fails with output.
. "$(dirname "$0")/lib/common.sh"
echo "some output before failing"
assert_eq 1 2 "one"
