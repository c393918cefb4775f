#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: a dm device left behind is removed by the runner.
. "$(dirname "$0")/lib/common.sh"
need_module dm-mod
dmsetup create leftover --table "0 100 error"
echo "leaving a dm device behind"
