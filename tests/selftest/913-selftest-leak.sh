#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: a module that leaks memory (kmemleak, debug kernel).
. "$(dirname "$0")/lib/common.sh"
need_module dmclone_selftest_warn leak=1
echo "leaked 64 bytes"
