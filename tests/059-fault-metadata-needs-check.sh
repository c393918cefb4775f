#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The superblock's needs_check flag. The metadata device is a dm table
# whose first 4 KiB (the superblock) are a plain linear map and whose rest
# goes through dm-flakey with error_writes: reads work, every write but
# the superblock's fails, and so do flushes. A commit then fails (its
# shadow blocks cannot be written): the clone goes read-only with a dm
# event, and the kernel log says the metadata needs checking and that the
# flag cannot be made durable yet. Once the device is healthy, the
# clone's suspend (at its removal) writes it: the superblock, still the
# last commit's, has flags bit 0 set. A new clone over it loads read-only
# and says to run clone_check; clone_check finds the metadata clean (exit
# 0) but for the flag; `clone_check --clear-needs-check-flag` clears it,
# and the clone then loads read-write, with the progress of the last
# commit, and completes byte-exact. A reload: the old table fails, and its
# suspend, with the device back, flags the metadata; the new table
# resumes read-only. (A failed destination flush does not set the flag:
# 057 checks that its new table resumes read-write.)
# timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/persistence.sh"
. "$(dirname "$0")/lib/fault.sh"

fault_setup
need_module dm-flakey
need_cmd clone_check od
metaloop=$meta
msz=$(dev_sectors "$metaloop")

md_healthy() { linear_table "$metaloop"; }
md_writes_fail() {
	printf '0 8 linear %s 0\n8 %d flakey %s 8 0 1 1 error_writes\n' \
		"$metaloop" $((msz - 8)) "$metaloop"
}
# sb_flags: the superblock's flags word (bytes 4-7, little-endian), read
# past the page cache (the module writes below it).
sb_flags() {
	dd if="$metaloop" bs=4096 count=1 iflag=direct status=none |
		od -An -tu4 -j4 -N4 | tr -d ' '
}

dm_create mdev "$(md_healthy)"
meta=/dev/mapper/mdev
table=$(clone_table "$meta" "$dest" "$src" $rs 1 no_hydration)
dm_create c "$table"
dmclone-pattern write /dev/mapper/c 2 0 64 || fail "first write failed"
dmclone-pattern write "$ref" 2 0 64
sync
dmsetup status c >/dev/null			# commits
hydrated=$(clone_hydrated c)
[ "$hydrated" -gt 0 ] || fail "no region hydrated by the first write"
assert_eq "$(sb_flags)" 0 "superblock flags after a good commit"

log "every metadata write but the superblock's fails: a commit fails"
dm_swap mdev "$(md_writes_fail)"
log_mark
ev=$(event_nr c)
dmclone-pattern write /dev/mapper/c 2 4096 64 && sync
dmsetup status c >/dev/null 2>&1 || true		# forces a commit
wait_for 10 eval '[ "$(clone_mode c)" = ro ]' ||
	fail "the clone did not go read-only: $(clone_status_noflush c)"
[ "$(event_nr c)" -gt "$ev" ] || fail "no dm event for the switch to read-only"
log_grep 'metadata needs checking: run clone_check' ||
	fail "the kernel log does not say the metadata needs checking"
# The flag's own write went through, but its flush did not (dm-flakey
# fails flushes too): it is written again once the device is back.
log_grep 'cannot write the needs_check flag' ||
	fail "the kernel log does not say the flag could not be written yet"
dm_swap mdev "$(md_healthy)"
dm_remove c
log_grep 'needs_check flag set in the superblock' ||
	fail "the flag was not written at the clone's suspend"
assert_eq "$(sb_flags)" 1 "superblock flags once the device is back"

log "healthy again: a new clone loads read-only and says why"
dm_swap mdev "$(md_healthy)"
log_mark
dm_create c "$table"
assert_eq "$(clone_mode c)" ro "mode of a clone over flagged metadata"
log_grep 'needs checking (needs_check flag set)' ||
	fail "no kernel message about the needs_check flag at load"
log_grep 'run clone_check' ||
	fail "the kernel message does not say to run clone_check"
assert_eq "$(clone_hydrated c)" "$hydrated" "hydrated count of the last commit"
expect_eio_write /dev/mapper/c 8192 8 2 "write to an unhydrated region, read-only"
check_pattern /dev/mapper/c 2 0 64 >/dev/null || fail "first write lost"
dm_remove c

log "clone_check: clean but for the flag; --clear-needs-check-flag clears it"
rc=0
out=$(clone_check "$meta" 2>&1) || rc=$?
assert_eq "$rc" 0 "clone_check exit status on flagged, consistent metadata: $out"
assert_eq "$(sb_flags)" 1 "flags after a plain clone_check (it never writes)"
clone_check --clear-needs-check-flag "$meta" >/dev/null 2>&1 ||
	fail "clone_check --clear-needs-check-flag failed"
assert_eq "$(sb_flags)" 0 "flags after --clear-needs-check-flag"

log "cleared: read-write from the last commit, and complete"
dm_create c "$(clone_table "$meta" "$dest" "$src" $rs)"
assert_eq "$(clone_mode c)" rw "mode once the flag is cleared"
wait_hydrated c 60
dmsetup status c >/dev/null
cmp_dev /dev/mapper/c "$ref" || fail "the clone differs from the reference"
assert_eq "$(sb_flags)" 0 "flags after commits of a healthy clone"
dm_remove c

log "a reload: the old table fails, flags the metadata at its suspend, the new one resumes read-only"
fill_pattern "$dest" 9
dd if=/dev/zero of="$meta" bs=4096 count=1 oflag=direct status=none
dm_create c "$table"
dmclone-pattern write /dev/mapper/c 2 0 64 && sync
dmsetup status c >/dev/null
dmsetup load c --table "$table" || fail "loading the new table failed"
dm_swap mdev "$(md_writes_fail)"
dmclone-pattern write /dev/mapper/c 2 4096 64 && sync	# the periodic commit fails
wait_for 10 eval '[ "$(clone_status_noflush c | awk "{ print \$NF }")" = ro ]' ||
	fail "the old table did not go read-only: $(clone_status_noflush c)"
dm_swap mdev "$(md_healthy)"
dmsetup suspend c || fail "suspend failed"
assert_eq "$(sb_flags)" 1 "superblock flags after the old table's suspend"
dmsetup resume c || fail "resume failed"
assert_eq "$(clone_mode c)" ro "mode of the new table over flagged metadata"
dm_remove c
dm_remove mdev
