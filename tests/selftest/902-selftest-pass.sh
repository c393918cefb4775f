#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: passes.
. "$(dirname "$0")/lib/common.sh"
echo fine
