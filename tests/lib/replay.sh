# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the crash-replay tests (tests/080-089), on top of
# tools/dmclone-replay. Source after lib/common.sh:
#
#	. "$(dirname "$0")/lib/common.sh"
#	. "$(dirname "$0")/lib/replay.sh"
#
#   replay_check_model

# replay_check_model LOG BASE TRUTH SCRATCH SECTORS: replays all of LOG onto
# a copy of BASE (the logged device as it was when logging started) in
# SCRATCH and compares the first SECTORS sectors with TRUTH (the logged
# device now), once in log order and once with --coherent. Prints both
# results. dm-log-writes logs a plain write at the next flush but a FUA
# write at once, so a plain write that completed before a FUA write to the
# same sectors comes after it in the log: a log-order replay then ends
# with older data than the device has. The --coherent replay must give the
# device exactly, or the replay points are not states the device could
# have been in, and the test fails.
replay_check_model() {
	local log=$1 base=$2 truth=$3 scratch=$4 n=$5 mode out
	for mode in "" --coherent; do
		dd if="$base" of="$scratch" bs=512 count="$n" iflag=direct oflag=direct status=none
		dmclone-replay replay "$log" "$scratch" $mode 2>/dev/null ||
			fail "full replay ${mode:-in log order} failed"
		if out=$(dmclone-pattern cmp "$truth" "$scratch" "$n"); then
			log "full replay ${mode:-in log order}: equals the logged device"
		else
			log "full replay ${mode:-in log order}: differs from the logged device: $(tail -n 1 <<<"$out")"
			head -n 4 <<<"$out" | sed 's/^/    /'
			[ -z "$mode" ] || fail "the log does not replay to the device it was taken of: its replay points are not states the device could have been in"
		fi
	done
}
