#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: loading a module that WARNs must fail the test.
. "$(dirname "$0")/lib/common.sh"
need_module dmclone_selftest_warn
echo "module loaded; the runner must see the WARNING"
