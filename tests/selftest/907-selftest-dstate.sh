#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Selftest: a test stuck in D state (I/O to a suspended dm device) cannot
# be killed; the runner reports a timeout and moves to a new guest.
# timeout: 20
. "$(dirname "$0")/lib/common.sh"
need_module dm-mod
dev=$(mkdev lower 8)
dm_create stuck "0 16384 linear $dev 0"
dmsetup suspend stuck
echo "writing to a suspended device: stuck in D state from here"
dd if=/dev/zero of=/dev/mapper/stuck bs=4k count=1 oflag=direct
