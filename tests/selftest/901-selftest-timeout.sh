#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: a test sleeping past its timeout.
# timeout: 10
. "$(dirname "$0")/lib/common.sh"
echo "sleeping past my timeout"
sleep 600
