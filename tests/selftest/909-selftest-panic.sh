#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: the guest panics; the runner reports it and goes on in a new guest.
. "$(dirname "$0")/lib/common.sh"
echo "panicking the guest"
echo c >/proc/sysrq-trigger
