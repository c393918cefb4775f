#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: skips.
. "$(dirname "$0")/lib/common.sh"
skip "this test always skips"
