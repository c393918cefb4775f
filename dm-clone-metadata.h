/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone metadata: the persistent record of which regions are hydrated.
 *
 * This header is the only door to the metadata layer. The layer knows no
 * bio: it owns the superblock, the on-disk bitset of hydrated regions, the
 * in-core copy of that bitset, commit and abort, and the read-only and
 * failed states. Every function states what it returns, whether it may
 * block, from which context it may be called and what it does once the
 * metadata is read-only.
 */

#ifndef DM_CLONE_METADATA_H
#define DM_CLONE_METADATA_H

#include <linux/types.h>
#include <linux/blkdev.h>

/* Metadata block size: 4 KiB, in 512-byte sectors. */
#define DM_CLONE_METADATA_BLOCK_SIZE	8

/*
 * The space map of the persistent-data library addresses at most this many
 * sectors of metadata (about 15.9 GiB); a larger device is used in part.
 */
#define DM_CLONE_METADATA_MAX_SECTORS	(255ULL * ((1 << 14) - 64) * 8)

struct dm_clone_metadata;

/*
 * dm_clone_metadata_open() - open the metadata on @bdev, formatting it if
 * its first 4 KiB are all zero.
 * @target_size: table length in sectors, checked against the superblock.
 * @region_size: region size in sectors, checked against the superblock.
 * @error: on failure, a sentence for ti->error.
 *
 * Returns the metadata or an ERR_PTR(). Blocks (I/O); process context.
 */
struct dm_clone_metadata *dm_clone_metadata_open(struct block_device *bdev,
						 sector_t target_size,
						 sector_t region_size,
						 const char **error);

/*
 * dm_clone_metadata_close() - free everything; uncommitted changes are
 * lost (commit first). Blocks; process context.
 */
void dm_clone_metadata_close(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_refresh() - reload all state from disk if another
 * user (an older table of the same device) committed since we last read
 * or wrote the superblock. Only valid while nothing else uses @cmd (the
 * target is suspended) and with no uncommitted changes.
 *
 * Returns 0 (and sets *@reloaded) or a negative errno; on error the
 * metadata is unusable and must be closed. Blocks; process context.
 */
int dm_clone_metadata_refresh(struct dm_clone_metadata *cmd, bool *reloaded);

/*
 * dm_clone_is_region_hydrated() - test the in-core bit of @region_nr.
 * Lockless, never blocks, any context. @region_nr must be in range.
 */
bool dm_clone_is_region_hydrated(struct dm_clone_metadata *cmd,
				 unsigned long region_nr);

/*
 * dm_clone_is_range_hydrated() - true if every region in
 * [@start, @start + @nr) is hydrated. Lockless, never blocks, any context.
 */
bool dm_clone_is_range_hydrated(struct dm_clone_metadata *cmd,
				unsigned long start, unsigned long nr);

/*
 * dm_clone_is_range_unhydrated() - true if no region in
 * [@start, @start + @nr) is hydrated. Lockless, never blocks, any context.
 */
bool dm_clone_is_range_unhydrated(struct dm_clone_metadata *cmd,
				  unsigned long start, unsigned long nr);

/*
 * dm_clone_set_regions_hydrated() - mark [@start, @start + @nr) hydrated
 * in core; the change reaches the disk with the next commit. Never blocks,
 * any context (takes a spinlock with interrupts disabled); keep @nr small
 * (at most a few thousand) so the lock is held briefly.
 *
 * Returns the number of regions that were not hydrated before, or
 * -EPERM (changing nothing) once the metadata is read-only or failed.
 */
long dm_clone_set_regions_hydrated(struct dm_clone_metadata *cmd,
				   unsigned long start, unsigned long nr);

/*
 * dm_clone_find_next_unhydrated_region() - the first unhydrated region at
 * or after @start, or the number of regions if there is none. Lockless,
 * never blocks, any context; the answer may be stale by the time it is
 * used, so callers recheck under their own lock.
 */
unsigned long dm_clone_find_next_unhydrated_region(struct dm_clone_metadata *cmd,
						   unsigned long start);

/* The same within [@start, @end): @end when every region there is hydrated. */
unsigned long dm_clone_find_unhydrated_in(struct dm_clone_metadata *cmd,
					  unsigned long start,
					  unsigned long end);

/* The first hydrated region within [@start, @end), or @end if none is. */
unsigned long dm_clone_find_hydrated_in(struct dm_clone_metadata *cmd,
					unsigned long start,
					unsigned long end);

/* Number of hydrated regions (in core). Never blocks, any context. */
unsigned long dm_clone_nr_of_hydrated_regions(struct dm_clone_metadata *cmd);

/* True when every region is hydrated (in core). Never blocks, any context. */
bool dm_clone_is_hydration_done(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_release_bitmap() - once every region is hydrated and
 * committed, free the in-core bitmaps (queries keep working: they all
 * answer "hydrated"). Does nothing otherwise. Blocks (waits for an RCU
 * grace period); process context.
 */
void dm_clone_metadata_release_bitmap(struct dm_clone_metadata *cmd);

/*
 * dm_clone_changed_this_transaction() - true if regions were marked since
 * the last successful commit. Never blocks, any context.
 */
bool dm_clone_changed_this_transaction(struct dm_clone_metadata *cmd);

/*
 * Committing is two steps so that the caller can flush the destination in
 * between:
 *
 * dm_clone_metadata_pre_commit() - move every region marked in core so far
 * into the open transaction, or as many as the free metadata space lets
 * one transaction hold: it then returns 1, and the rest waits for the next
 * transaction (setting a bit twice is harmless, so a large commit can be
 * split into several). Regions marked after it returns belong to the next
 * transaction. The caller must flush the destination *after* this returns
 * and before calling dm_clone_metadata_commit(), so that every region in
 * the transaction has its data durable before it is recorded.
 *
 * dm_clone_metadata_commit() - write the transaction: everything else
 * first, the superblock last, so that a crash leaves either the old or the
 * new state.
 *
 * Both return 0 (or 1, above) or a negative errno, -EPERM once read-only
 * or failed. Both block; process context; the caller serialises them.
 */
int dm_clone_metadata_pre_commit(struct dm_clone_metadata *cmd);
int dm_clone_metadata_commit(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_abort() - drop the open transaction and reload the
 * in-core bitmap from the last committed state, then stay read-only. With
 * @needs_check (a metadata operation failed, not the destination), also
 * set the superblock's needs_check flag, so that later tables open the
 * metadata read-only until it has been checked (a device that refuses the
 * write gets it at dm_clone_metadata_record_needs_check()). Returns 0 or a negative errno, after
 * which the metadata is failed and only dm_clone_metadata_close() remains
 * useful. Blocks; process context.
 */
int dm_clone_metadata_abort(struct dm_clone_metadata *cmd, bool needs_check);

/*
 * dm_clone_metadata_record_needs_check() - write the needs_check flag an
 * abort could not write (the device refused it then), if any. Blocks;
 * process context.
 */
void dm_clone_metadata_record_needs_check(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_needs_check() - the superblock's needs_check flag was
 * set when the metadata was opened or last reloaded (it is then
 * read-only), or by an abort since. Blocks briefly; process context.
 */
bool dm_clone_metadata_needs_check(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_grow() - when the table is longer than the metadata's
 * target length (dm_clone_metadata_open() accepted it, the new regions
 * unhydrated in core), resize the on-disk bitset and record the new
 * length, in one commit. 0 when there is nothing to grow. -EINVAL when the
 * old length ends inside a region hydrated since the open, -ENOSPC when
 * the metadata device is too small (nothing changed then), another
 * negative errno when a metadata operation failed (the caller aborts).
 * Until it succeeds, nothing may be committed. Blocks; process context.
 */
int dm_clone_metadata_grow(struct dm_clone_metadata *cmd);

/*
 * dm_clone_metadata_set_read_only() - refuse all further changes. Blocks
 * (takes a rw_semaphore); process context.
 */
void dm_clone_metadata_set_read_only(struct dm_clone_metadata *cmd);

/*
 * dm_clone_get_metadata_usage() - used and total metadata blocks of the
 * space map. Returns 0 or a negative errno (also once failed). Blocks
 * briefly (rw_semaphore); process context. With @nowait, when a commit
 * holds the lock (it may wait on a hung device), the figures of the last
 * call instead of waiting.
 */
int dm_clone_get_metadata_usage(struct dm_clone_metadata *cmd,
				u64 *used, u64 *total, bool nowait);

#endif /* DM_CLONE_METADATA_H */
