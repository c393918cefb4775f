// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone: clone a read-only source device onto a writable destination,
 * usable at once.
 *
 * Design
 * ------
 *
 * The target length is cut into regions of a power-of-two number of
 * sectors; region N lies at sector N * region_size on both the source and
 * the destination. The metadata layer (dm-clone-metadata.c) keeps one bit
 * per region, set once the region's data is on the destination
 * ("hydrated").
 *
 * Life of a bio. clone_map() looks at the region the bio starts in. A bio
 * spanning several regions that are not all hydrated (except a read of
 * regions none of which is, which goes whole to the source) is cut at the
 * first region boundary with dm_accept_partial_bio(); dm core maps the
 * rest as a new bio. Then:
 *
 *  - an empty flush passes to the destination when nothing awaits a
 *    commit, otherwise it waits for the worker's next commit (which
 *    flushes the destination first);
 *  - a discard goes to the worker (see "Discards" below);
 *  - a bio to hydrated regions is remapped to the destination;
 *  - a read of an unhydrated region is remapped to the source (a read
 *    of whole such regions may be their copy: its data goes on to the
 *    destination, see dm-clone-hydration.c);
 *  - a write to an unhydrated region waits for the region's hydration. If
 *    the region is already being hydrated the bio joins that hydration's
 *    list. Otherwise a hydration starts at once: a write covering the
 *    whole region *is* the hydration (it goes to the destination, and its
 *    completion marks the region), any other write waits for a copy of
 *    the region from the source, which the copy engine starts before any
 *    background copy. When the hydration ends, the
 *    waiting bios go to the destination (or fail with it).
 *
 * A FUA write completes only after a commit of everything hydrated before
 * it: clone_end_io() holds it back until the worker commits.
 *
 * Life of a region. Unhydrated; then in flight: a struct clone_hydration
 * holding it (and maybe its neighbours, up to a group of HD_GROUP_REGIONS)
 * sits in a hash table keyed by group, which is the region's lock (only
 * one hydration per region, writers wait on it); then hydrated in core
 * (its bit set, right after the destination write completed); then
 * hydrated on disk after the next commit. A background pass started by the
 * worker walks the bitmap and copies unhydrated regions in batches
 * covering up to hydration_batch_size regions per copy job (reading across
 * the hydrated holes between them), keeping at most hydration_threshold
 * regions in flight. Copies go through the copy
 * engine, which reuses its buffers. Hydration (regions in flight, copy
 * jobs, the background pass) is in dm-clone-hydration.c, the copy engine
 * (its buffers, window and throttle) in dm-clone-copier.c; what the target
 * and hydration share, in dm-clone-target.h. When a batch fails, its
 * regions are copied again one by one, so that one unreadable region does
 * not hold back its neighbours; a region whose own copy fails stays
 * unhydrated, and the next pass retries it after a back-off.
 *
 * Discards. Only regions a discard covers completely are affected: they
 * are marked hydrated without copying (their content is the user's to
 * lose) and, with passdown, the discard is trimmed to exactly those
 * regions and passed to the destination; they are marked after it
 * completes. Regions in flight are left to their hydration. A discard that
 * covers no whole region completes at once, with no effect. The worker
 * marks discards in steps of DISCARD_COMMIT_REGIONS (over one discard or
 * many), committing after each, so that no transaction grows with the
 * device.
 *
 * Commit protocol. The worker commits when a flush or FUA write waits,
 * about once a second when regions were marked, on postsuspend and on a
 * status query: pre-commit (regions marked so far enter the transaction),
 * flush the destination, commit the metadata. A region is therefore
 * recorded as hydrated only after its data was durable on the destination.
 *
 * Metadata failure. Every failing metadata operation goes through
 * clone_metadata_error(): it aborts the transaction, reloading the bitmap
 * from the last commit, and switches to read-only mode (writes to
 * unhydrated regions and flushes that need a commit fail, hydration
 * stops); if the abort fails too, to fail mode (all I/O fails). Either
 * raises a dm event.
 *
 * Reloads. A new table for the same device is constructed while the old
 * one is live. Its bitmap is stale by the time it resumes: the old table
 * went on hydrating and committed at its postsuspend. So preresume asks
 * the metadata layer to reload if the superblock changed since.
 *
 * Lock order. The module's locks, all in one list; the other files'
 * comments point here. "A -> B": B may be taken while A is held, never
 * the other way round.
 *
 *	commit_lock (mutex, struct clone: commits and mode changes)
 *	  -> the metadata's lock (rw_semaphore, dm-clone-metadata.c)
 *	       -> the metadata's bitmap_lock (spinlock, irqsave)
 *	clone->lock (spinlock, irqsave: bio lists, hydrations in flight)
 *	  -> the metadata's bitmap_lock
 *	Taken alone, with nothing held and nothing taken inside:
 *	  the copy engine's lock (spinlock, irqsave, dm-clone-copier.c),
 *	  throttle_lock (spinlock, irq, dm-clone-copier.c),
 *	  share_lock (spinlock, irqsave, struct clone: the source's share
 *	  with the user's reads),
 *	  md_devs_lock (mutex, dm-clone-metadata.c: commit counts),
 *	  open_mutex of the disks below a device (dm-clone-compat.h: at
 *	  table load only, nested by depth).
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/jiffies.h>
#include <linux/log2.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "dm-clone-compat.h"
#include "dm-clone-metadata.h"
#include "dm-clone-region.h"
#include "dm-clone-target.h"

#define DM_MSG_PREFIX "clone"

/* Commit at least this often while regions get hydrated (jiffies). */
#define COMMIT_PERIOD			HZ
/*
 * Defaults of the tunables when the table gives none: background copy
 * jobs of DEFAULT_BATCH_BYTES each, DEFAULT_THRESHOLD_BYTES in flight at
 * most (bytes, converted to regions of the table's size, at least 1).
 */
#define DEFAULT_BATCH_BYTES		SZ_1M
#define DEFAULT_THRESHOLD_BYTES		(48 * SZ_1M)
/*
 * A discard marks at most this many regions per metadata transaction
 * (count): a discard of a whole large device makes a series of bounded
 * commits, not one that rewrites the whole bitset at once (and needs
 * room for a second copy of it).
 */
#define DISCARD_COMMIT_REGIONS		BIT(20)

/* ---- Helpers ---- */

static const char *mode_name(enum clone_mode mode)
{
	switch (mode) {
	case CM_WRITE:
		return "rw";
	case CM_READ_ONLY:
		return "ro";
	default:
		return "Fail";
	}
}

/* Region N is at sector N * region_size on both devices: no offsets. */
static void remap_to_source(struct clone *clone, struct bio *bio)
{
	bio_set_dev(bio, clone->source_dev->bdev);
	bio->bi_iter.bi_sector = bio_target_sector(clone, bio);
}

static void defer_bio(struct clone *clone, struct bio_list *list,
		      struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&clone->lock, flags);
	bio_list_add(list, bio);
	spin_unlock_irqrestore(&clone->lock, flags);
	wake_worker(clone);
}

static void take_list(struct clone *clone, struct bio_list *from,
		      struct bio_list *to)
{
	bio_list_init(to);
	spin_lock_irq(&clone->lock);
	bio_list_merge(to, from);
	bio_list_init(from);
	spin_unlock_irq(&clone->lock);
}

/* ---- Metadata mode and commit ---- */

/*
 * The one path for metadata failures: abort the transaction (reloading the
 * bitmap from the last commit), go read-only, or fail if the abort fails,
 * and raise an event. Process context; caller holds commit_lock.
 */
/*
 * A commit step failed: abort to the last commit and go read-only (or fail
 * mode if the abort fails too). @metadata: a metadata operation failed,
 * so the superblock gets the needs_check flag; a failed destination flush
 * leaves the metadata as trustworthy as its last commit.
 */
static void __clone_transaction_failed(struct clone *clone, const char *op,
				       int r, bool metadata)
{
	enum clone_mode old = get_mode(clone), new = CM_READ_ONLY;

	lockdep_assert_held(&clone->commit_lock);

	DMERR("%s: %s '%s' failed: error %d", clone_device_name(clone),
	      metadata ? "metadata operation" : "operation", op, r);
	if (old == CM_FAIL)
		return;

	if (old == CM_WRITE) {
		WRITE_ONCE(clone->mode, CM_READ_ONLY);
		if (dm_clone_metadata_abort(clone->cmd, metadata))
			new = CM_FAIL;
		else if (metadata)
			DMERR("%s: metadata needs checking: run clone_check before read-write use",
			      clone_device_name(clone));
	} else {
		new = CM_FAIL;
	}
	WRITE_ONCE(clone->mode, new);

	DMERR("%s: switching to %s mode", clone_device_name(clone),
	      new == CM_FAIL ? "fail" : "read-only");
	dm_table_event(clone->ti->table);
}

/*
 * The metadata carries the needs_check flag (it opened read-only): say so,
 * and run read-only.
 */
static void clone_needs_check(struct clone *clone)
{
	DMERR("%s: metadata on %pg needs checking (needs_check flag set): read-only",
	      clone_device_name(clone), clone->metadata_dev->bdev);
	DMERR("%s: run clone_check, then clone_check --clear-needs-check-flag or clone_repair",
	      clone_device_name(clone));
	WRITE_ONCE(clone->mode, CM_READ_ONLY);
}

static void __clone_metadata_error(struct clone *clone, const char *op, int r)
{
	__clone_transaction_failed(clone, op, r, true);
}

static void clone_metadata_error(struct clone *clone, const char *op, int r)
{
	mutex_lock(&clone->commit_lock);
	__clone_metadata_error(clone, op, r);
	mutex_unlock(&clone->commit_lock);
}

/*
 * Commit the regions hydrated so far: pre-commit, flush the destination,
 * commit. Returns 0 when nothing needed committing or the commit
 * succeeded; *@flushed (if given) says whether this call flushed the
 * destination. A caller that must cover writes completed before it was
 * called (a flush) cannot rely on a commit that found nothing to do:
 * another commit may have taken the regions, and flushed the destination,
 * before those writes completed. Blocks; process context.
 *
 * A failed destination flush is handled as a failed metadata operation:
 * the destination may have lost any write since its last successful
 * flush, so the regions hydrated since the last commit can no longer be
 * trusted to hold their data. Committing them after a later successful
 * flush would record lost data as hydrated (reads would return garbage
 * instead of the source's data); the transaction is aborted instead, the
 * bitmap reverts to the last commit and the clone goes read-only.
 */
static int __clone_commit(struct clone *clone, bool *flushed)
{
	int r = 0, more;

	if (flushed)
		*flushed = false;

	mutex_lock(&clone->commit_lock);

	if (!dm_clone_changed_this_transaction(clone->cmd))
		goto out;

	if (get_mode(clone) != CM_WRITE) {
		r = -EIO;
		goto out;
	}

	/* More than the free metadata space holds: several transactions. */
	do {
		more = dm_clone_metadata_pre_commit(clone->cmd);
		if (more < 0) {
			r = more;
			__clone_metadata_error(clone, "pre-commit", r);
			goto out;
		}

		r = blkdev_issue_flush(clone->dest_dev->bdev);
		if (r) {
			DMERR("%s: flushing the destination failed: error %d",
			      clone_device_name(clone), r);
			__clone_transaction_failed(clone, "flush destination",
						   r, false);
			goto out;
		}
		if (flushed)
			*flushed = true;

		r = dm_clone_metadata_commit(clone->cmd);
		if (r) {
			__clone_metadata_error(clone, "commit", r);
			goto out;
		}
	} while (more);
out:
	mutex_unlock(&clone->commit_lock);
	return r;
}

static int clone_commit(struct clone *clone)
{
	return __clone_commit(clone, NULL);
}

/* ---- Discards ---- */

static void process_discard(struct clone *clone, struct bio *bio)
{
	struct clone_bio_data *pb = get_pb(bio);
	u64 first, last, start, len;

	if (!clone_discard_regions(bio_target_sector(clone, bio),
				   bio_sectors(bio), clone->ti->len,
				   clone->region_shift, &first, &last) ||
	    get_mode(clone) != CM_WRITE) {
		/* Covers no whole region (or read-only): no effect. */
		bio_endio(bio);
		return;
	}

	pb->first = first;
	pb->last = last;
	if (!test_bit(CLONE_DISCARD_PASSDOWN, &clone->flags)) {
		/* Marked in steps by process_discards(). */
		pb->flags |= PB_COMMITTED;
		bio_list_add(&clone->discards_marking, bio);
		wake_worker(clone);
		return;
	}

	/* Trim the discard to exactly the covered regions. */
	clone_regions_to_sectors(first, last, clone->ti->len,
				 clone->region_shift, &start, &len);
	pb->flags |= PB_DISCARD;
	bio_set_dev(bio, clone->dest_dev->bdev);
	bio->bi_iter.bi_sector = start;
	bio->bi_iter.bi_size = len << SECTOR_SHIFT;
	dm_submit_bio_remap(bio, NULL);
}

/* ---- Worker ---- */

static void process_deferred_bios(struct clone *clone)
{
	struct bio_list bios;
	struct bio *bio;

	take_list(clone, &clone->deferred_bios, &bios);
	while ((bio = bio_list_pop(&bios))) {
		remap_to_dest(clone, bio);
		dm_submit_bio_remap(bio, NULL);
	}
}

static void process_discards(struct clone *clone)
{
	unsigned long marked = 0;
	struct clone_bio_data *pb;
	struct bio_list bios;
	struct bio *bio;

	/* The ones being marked first, then those passed down since. */
	take_list(clone, &clone->discards_done, &bios);
	bio_list_merge_head(&bios, &clone->discards_marking);
	bio_list_init(&clone->discards_marking);
	while ((bio = bio_list_pop(&bios))) {
		unsigned long end;

		pb = get_pb(bio);
		if (bio->bi_status || get_mode(clone) != CM_WRITE) {
			bio_endio(bio);
			continue;
		}
		end = min(pb->last, pb->first + DISCARD_COMMIT_REGIONS - marked);
		clone_mark_discarded(clone, pb->first, end);
		marked += end - pb->first;
		pb->first = end;
		if (end == pb->last)
			bio_endio(bio);
		else
			bio_list_add_head(&bios, bio);
		if (marked < DISCARD_COMMIT_REGIONS)
			continue;
		/*
		 * A step's worth marked, over one discard or many: commit
		 * it, and go on with the rest at the next round of the
		 * worker, after the flushes waiting. Neither a transaction
		 * nor a hold of the commit lock grows with the discard.
		 */
		clone_commit(clone);
		bio_list_merge(&clone->discards_marking, &bios);
		wake_worker(clone);
		break;
	}

	take_list(clone, &clone->deferred_discards, &bios);
	while ((bio = bio_list_pop(&bios)))
		process_discard(clone, bio);
}

/*
 * Commit for the flushes and FUA writes waiting, then complete them. A
 * flush completes on a commit that flushed the destination after it was
 * taken here; when the commit had nothing to do (another one took the
 * regions, maybe before the writes this flush covers completed), the
 * flush goes down to the destination as it is. A FUA write is durable by
 * itself; it only needs its region committed, which any commit since did.
 */
static void process_flushes(struct clone *clone)
{
	struct bio_list flushes, fua;
	blk_status_t status;
	struct bio *bio;
	bool flushed;

	take_list(clone, &clone->deferred_flushes, &flushes);
	take_list(clone, &clone->deferred_completions, &fua);
	if (bio_list_empty(&flushes) && bio_list_empty(&fua))
		return;

	status = errno_to_blk_status(__clone_commit(clone, &flushed));

	while ((bio = bio_list_pop(&flushes))) {
		if (status || flushed) {
			bio->bi_status = status;
			bio_endio(bio);
		} else {
			remap_to_dest(clone, bio);
			dm_submit_bio_remap(bio, NULL);
		}
	}

	while ((bio = bio_list_pop(&fua))) {
		if (status)
			bio->bi_status = status;
		bio_endio(bio);
	}
}

static void check_hydration_done(struct clone *clone)
{
	if (!dm_clone_is_hydration_done(clone->cmd) ||
	    test_bit(CLONE_DONE_EVENT_SENT, &clone->flags))
		return;

	/* Done only once committed (a failed commit reloads the bitmap). */
	if (clone_commit(clone) || !dm_clone_is_hydration_done(clone->cmd))
		return;
	dm_clone_metadata_release_bitmap(clone->cmd);
	clone_copier_trim(&clone->copier, true);
	if (!test_and_set_bit(CLONE_DONE_EVENT_SENT, &clone->flags)) {
		DMINFO("%s: hydration complete: all %lu regions are on the destination",
		       clone_device_name(clone), clone->nr_regions);
		dm_table_event(clone->ti->table);
	}
}

static void do_worker(struct work_struct *ws)
{
	struct clone *clone = container_of(ws, struct clone, worker);

	process_deferred_bios(clone);
	process_discards(clone);
	process_flushes(clone);
	clone_background_hydration(clone);
	check_hydration_done(clone);
}

/* The pass held for the user's reads (dm-clone-share.h) may go on. */
static void do_share_wake(struct work_struct *ws)
{
	struct clone *clone = container_of(to_delayed_work(ws), struct clone,
					   share_wake);

	wake_worker(clone);
}

/* Periodic commit, and a nudge to the background pass. */
static void do_waker(struct work_struct *ws)
{
	struct clone *clone = container_of(to_delayed_work(ws), struct clone,
					   waker);

	clone_commit(clone);
	if (dm_clone_is_hydration_done(clone->cmd))
		dm_clone_metadata_release_bitmap(clone->cmd);
	clone_copier_trim(&clone->copier,
			  dm_clone_is_hydration_done(clone->cmd));
	wake_worker(clone);
	queue_delayed_work(clone->wq, &clone->waker, COMMIT_PERIOD);
}

/* ---- Mapping ---- */

static int clone_map(struct dm_target *ti, struct bio *bio)
{
	struct clone *clone = ti->private;
	struct clone_bio_data *pb = get_pb(bio);
	unsigned long region, nr;
	sector_t offset, to_end;

	pb->flags = 0;
	pb->hd = NULL;

	if (get_mode(clone) == CM_FAIL)
		return DM_MAPIO_KILL;

	if (bio->bi_opf & REQ_PREFLUSH) {
		if (dm_clone_changed_this_transaction(clone->cmd)) {
			defer_bio(clone, &clone->deferred_flushes, bio);
			return DM_MAPIO_SUBMITTED;
		}
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	if (bio_op(bio) == REQ_OP_DISCARD) {
		defer_bio(clone, &clone->deferred_discards, bio);
		return DM_MAPIO_SUBMITTED;
	}

	if (!bio_sectors(bio)) {
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	offset = bio_target_sector(clone, bio);
	region = offset >> clone->region_shift;
	nr = ((offset + bio_sectors(bio) - 1) >> clone->region_shift) -
	     region + 1;

	if (dm_clone_is_range_hydrated(clone->cmd, region, nr)) {
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	/* A read of unhydrated regions only: all of it from the source. */
	if (bio_data_dir(bio) == READ &&
	    dm_clone_is_range_unhydrated(clone->cmd, region, nr)) {
		remap_to_source(clone, bio);
		clone_read_to_source(clone, bio, region, nr);
		return DM_MAPIO_REMAPPED;
	}

	/* Otherwise handle the first region only; dm core maps the rest. */
	if (nr > 1) {
		to_end = region_to_sector(clone, region + 1) - offset;
		dm_accept_partial_bio(bio, to_end);
		if (dm_clone_is_region_hydrated(clone->cmd, region)) {
			remap_to_dest(clone, bio);
			return DM_MAPIO_REMAPPED;
		}
	}

	if (bio_data_dir(bio) == READ) {
		remap_to_source(clone, bio);
		clone_read_to_source(clone, bio, region, 1);
		return DM_MAPIO_REMAPPED;
	}

	if (get_mode(clone) != CM_WRITE)
		return DM_MAPIO_KILL;

	return clone_hydrate_for_write(clone, bio, region);
}

static int clone_end_io(struct dm_target *ti, struct bio *bio,
			blk_status_t *error)
{
	struct clone *clone = ti->private;
	struct clone_bio_data *pb = get_pb(bio);

	if (pb->flags & PB_COMMITTED)
		return DM_ENDIO_DONE;

	if (pb->flags & PB_TIMED)
		clone_read_done(clone, bio, !*error);
	if (pb->flags & PB_KEEP)
		clone_keep_read_end(clone, bio, !*error);

	if (pb->flags & PB_OVERWRITE) {
		pb->flags &= ~PB_OVERWRITE;
		/*
		 * The write is the region's hydration: if the region cannot
		 * be marked (the clone went read-only meanwhile), reads would
		 * go on to the source, so the write must not succeed.
		 */
		if (!clone_end_hydrations(clone, pb->hd, !*error) && !*error)
			*error = BLK_STS_IOERR;
	}

	if (pb->flags & PB_DISCARD) {
		pb->flags &= ~PB_DISCARD;
		pb->flags |= PB_COMMITTED;
		bio->bi_status = *error;
		defer_bio(clone, &clone->discards_done, bio);
		return DM_ENDIO_INCOMPLETE;
	}

	if (!*error && op_is_write(bio_op(bio)) && (bio->bi_opf & REQ_FUA) &&
	    dm_clone_changed_this_transaction(clone->cmd)) {
		pb->flags |= PB_COMMITTED;
		defer_bio(clone, &clone->deferred_completions, bio);
		return DM_ENDIO_INCOMPLETE;
	}

	return DM_ENDIO_DONE;
}

/* ---- Status and messages ---- */

/*
 * Status:
 *   <md block size> <used md blocks>/<total md blocks> <region size>
 *   <hydrated>/<total regions> <hydrating> <#features> <feature>*
 *   4 hydration_threshold <T> hydration_batch_size <B> <mode>
 * or "Fail" in fail mode.
 *
 * Table:
 *   <metadata maj:min> <dest maj:min> <source maj:min> <ctr args from the
 *   region size on, as given>
 */
static void clone_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct clone *clone = ti->private;
	unsigned int sz = 0, i, nr_features;
	u64 used = 0, total = 0;
	bool no_hydration, no_passdown, no_read, noflush;

	switch (type) {
	case STATUSTYPE_INFO:
		if (get_mode(clone) == CM_FAIL) {
			DMEMIT("Fail");
			break;
		}

		noflush = status_flags & CLONE_STATUS_NOFLUSH_FLAG;
		if (!noflush && !dm_suspended(ti))
			clone_commit(clone);

		/* --noflush never waits, not even for a commit stuck on I/O. */
		if (dm_clone_get_metadata_usage(clone->cmd, &used, &total, noflush)) {
			DMEMIT("Error");
			break;
		}

		no_hydration = !test_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
		no_passdown = !test_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
		/* Printed only when the table gave it: classic lines stay. */
		no_read = !test_bit(CLONE_READ_HYDRATION, &clone->flags);
		nr_features = no_hydration + no_passdown + no_read;

		DMEMIT("%u %llu/%llu %llu %lu/%lu %d %u%s%s%s",
		       DM_CLONE_METADATA_BLOCK_SIZE, used, total,
		       (unsigned long long)clone->region_size,
		       dm_clone_nr_of_hydrated_regions(clone->cmd),
		       clone->nr_regions, atomic_read(&clone->in_flight),
		       nr_features, no_hydration ? " no_hydration" : "",
		       no_passdown ? " no_discard_passdown" : "",
		       no_read ? " no_read_hydration" : "");
		DMEMIT(" 4 hydration_threshold %u hydration_batch_size %u %s",
		       READ_ONCE(clone->hydration_threshold),
		       READ_ONCE(clone->hydration_batch_size),
		       mode_name(get_mode(clone)));
		break;

	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %s", clone->metadata_dev->name,
		       clone->dest_dev->name, clone->source_dev->name);
		for (i = 0; i < clone->nr_table_args; i++)
			DMEMIT(" %s", clone->table_args[i]);
		break;

	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",metadata=%s,destination=%s,source=%s,region_size=%llu,mode=%s;",
		       clone->metadata_dev->name, clone->dest_dev->name,
		       clone->source_dev->name,
		       (unsigned long long)clone->region_size,
		       mode_name(get_mode(clone)));
		break;
	}
}

/* At most this many ranges in one prefetch message. */
#define PREFETCH_MSG_RANGES	256

/*
 * "prefetch <start> <length> [<start> <length>]...": @argc words from
 * @argv, pairs. Every range is checked before any is queued.
 */
static int prefetch_message(struct clone *clone, unsigned int argc,
			    char **argv)
{
	unsigned int n = argc / 2, i, bad = 0;
	u64 *sectors;
	int r;

	if (n > PREFETCH_MSG_RANGES) {
		DMERR("%s: prefetch takes at most %u ranges a message, not %u",
		      clone_device_name(clone), PREFETCH_MSG_RANGES, n);
		return -EINVAL;
	}
	sectors = kmalloc_array(argc, sizeof(*sectors), GFP_KERNEL);
	if (!sectors)
		return -ENOMEM;
	for (i = 0; i < argc; i++) {
		if (clone_parse_u64(argv[i], &sectors[i]))
			continue;
		i -= i % 2;
		DMERR("%s: prefetch takes a start and a length, in sectors: '%s %s'",
		      clone_device_name(clone), argv[i], argv[i + 1]);
		r = -EINVAL;
		goto out;
	}
	r = clone_prefetch(clone, sectors, n, &bad);
	if (r == -EINVAL)
		DMERR("%s: prefetch %llu+%llu: not a range inside the clone (%llu sectors)",
		      clone_device_name(clone), sectors[2 * bad],
		      sectors[2 * bad + 1], (unsigned long long)clone->ti->len);
	else if (r == -EBUSY && n == 1)
		DMERR("%s: prefetch %llu+%llu: too many ranges waiting; try again later",
		      clone_device_name(clone), sectors[0], sectors[1]);
	else if (r == -EBUSY)
		DMERR("%s: prefetch of %u ranges: too many ranges waiting; try again later",
		      clone_device_name(clone), n);
out:
	kfree(sectors);
	return r;
}

/* "<tunable> <value>": a decimal unsigned 32-bit value, else nothing changes. */
/* A tunable's value from a message; wakes the worker to apply it. */
static int parse_tunable(struct clone *clone, char **argv, u32 *value)
{
	if (!clone_parse_uint(argv[1], value)) {
		DMERR("%s: invalid %s '%s'", clone_device_name(clone), argv[0],
		      argv[1]);
		return -EINVAL;
	}
	wake_worker(clone);
	return 0;
}

void clone_set_threshold(struct clone *clone, unsigned int regions, bool user)
{
	WRITE_ONCE(clone->hydration_threshold, regions);
	clone_copier_set_budget(&clone->copier,
				(u64)regions << clone->region_shift, user);
}

static int clone_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct clone *clone = ti->private;
	u32 v;
	int r;

	if (argc == 1 && !strcasecmp(argv[0], "enable_hydration")) {
		set_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
		wake_worker(clone);
		return 0;
	}

	if (argc == 1 && !strcasecmp(argv[0], "disable_hydration")) {
		clear_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
		return 0;
	}

	if (argc == 2 && !strcasecmp(argv[0], "hydration_threshold")) {
		r = parse_tunable(clone, argv, &v);
		if (!r)
			clone_set_threshold(clone, v, true);
		return r;
	}

	if (argc >= 3 && argc % 2 && !strcasecmp(argv[0], "prefetch"))
		return prefetch_message(clone, argc - 1, argv + 1);

	if (argc == 2 && !strcasecmp(argv[0], "hydration_batch_size")) {
		r = parse_tunable(clone, argv, &v);
		if (!r)
			WRITE_ONCE(clone->hydration_batch_size, v);
		return r;
	}

	DMERR("%s: unsupported message '%s' with %u argument(s)",
	      clone_device_name(clone), argc ? argv[0] : "", argc ? argc - 1 : 0);
	return -EINVAL;
}

/* ---- Suspend and resume ---- */

static void clone_presuspend(struct dm_target *ti)
{
	struct clone *clone = ti->private;

	clear_bit(CLONE_RUNNING, &clone->flags);
}

static void clone_presuspend_undo(struct dm_target *ti)
{
	struct clone *clone = ti->private;

	set_bit(CLONE_RUNNING, &clone->flags);
	wake_worker(clone);
}

static void clone_postsuspend(struct dm_target *ti)
{
	struct clone *clone = ti->private;

	cancel_delayed_work_sync(&clone->waker);
	/*
	 * dm core waited for user bios; now the background copies. A worker
	 * that looked at CLONE_RUNNING before presuspend cleared it may still
	 * be starting copies: let it finish first, so that the wait below
	 * sees them. Later runs of the worker start none.
	 */
	flush_work(&clone->worker);
	/* Only a worker that starts copies queues it: none will now. */
	cancel_delayed_work_sync(&clone->share_wake);
	wait_event(clone->in_flight_wait, !atomic_read(&clone->in_flight));
	clone_copier_quiesce(&clone->copier);
	flush_workqueue(clone->wq);
	clone_commit(clone);
	/* A needs_check flag the device refused earlier, if it is back. */
	if (get_mode(clone) != CM_WRITE)
		dm_clone_metadata_record_needs_check(clone->cmd);
}

static int clone_preresume(struct dm_target *ti)
{
	struct clone *clone = ti->private;
	unsigned int noio;
	bool reloaded;
	int r;

	/*
	 * An older table of this device may have committed since our load.
	 * The device is suspended: no allocation may wait for its I/O.
	 */
	if (get_mode(clone) == CM_WRITE &&
	    !dm_clone_changed_this_transaction(clone->cmd)) {
		noio = memalloc_noio_save();
		r = dm_clone_metadata_refresh(clone->cmd, &reloaded);
		memalloc_noio_restore(noio);
		if (r) {
			DMERR("%s: cannot re-read the metadata: error %d",
			      clone_device_name(clone), r);
			clone_metadata_error(clone, "refresh", r);
			return r;
		}
		if (reloaded)
			clone->hydration_offset = 0;
		if (reloaded && dm_clone_metadata_needs_check(clone->cmd)) {
			clone_needs_check(clone);
			dm_table_event(clone->ti->table);
		}
	}

	/*
	 * A longer table grows the clone, now that no other table of the
	 * device commits. If that fails the clone resumes read-only (a
	 * failed resume would leave the device suspended, its I/O stuck);
	 * only a failed metadata operation flags the metadata.
	 */
	if (get_mode(clone) == CM_WRITE) {
		noio = memalloc_noio_save();
		r = dm_clone_metadata_grow(clone->cmd);
		memalloc_noio_restore(noio);
		if (r) {
			mutex_lock(&clone->commit_lock);
			__clone_transaction_failed(clone, "grow", r,
						   r != -EINVAL && r != -ENOSPC);
			mutex_unlock(&clone->commit_lock);
		}
	}

	return 0;
}

static void clone_resume(struct dm_target *ti)
{
	struct clone *clone = ti->private;

	set_bit(CLONE_RUNNING, &clone->flags);
	queue_delayed_work(clone->wq, &clone->waker, COMMIT_PERIOD);
	wake_worker(clone);
}

/* ---- Limits and devices ---- */

static int clone_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct clone *clone = ti->private;
	int r;

	r = fn(ti, clone->dest_dev, 0, ti->len, data);
	if (!r)
		r = fn(ti, clone->source_dev, 0, ti->len, data);
	return r;
}

static void clone_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct clone *clone = ti->private;
	struct queue_limits *dest = &bdev_get_queue(clone->dest_dev->bdev)->limits;

	/*
	 * Discards are handled per region; with passdown they reach the
	 * destination, so their size limit is the destination's.
	 */
	limits->discard_granularity = clone->region_size << SECTOR_SHIFT;
	/*
	 * The granularity counts from the device's sector 0, regions from
	 * the target's start: where the target starts off a region multiple
	 * (a multi-segment table), say where region boundaries fall, so that
	 * a large discard split by the queue's limits is split there and its
	 * pieces still cover whole regions.
	 */
	limits->discard_alignment = (ti->begin & (clone->region_size - 1)) <<
				    SECTOR_SHIFT;
	clone_limits_clear_misaligned(limits);
	if (test_bit(CLONE_DISCARD_PASSDOWN, &clone->flags)) {
		limits->max_discard_sectors = dest->max_discard_sectors;
		limits->max_hw_discard_sectors = dest->max_hw_discard_sectors;
	} else {
		limits->max_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_hw_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
	}
}

static void disable_passdown_if_not_supported(struct clone *clone)
{
	struct block_device *bdev = clone->dest_dev->bdev;
	const char *reason = NULL;

	if (!test_bit(CLONE_DISCARD_PASSDOWN, &clone->flags))
		return;

	if (!bdev_max_discard_sectors(bdev))
		reason = "does not support discards";
	else if (bdev_max_discard_sectors(bdev) < clone->region_size)
		reason = "cannot discard a whole region at once";

	if (reason) {
		DMWARN("%s: destination %pg %s: disabling discard passdown",
		       clone_device_name(clone), bdev, reason);
		clear_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
	}
}

/* ---- Constructor and destructor ---- */

static const char err_nr_args[] =
	"Invalid number of arguments (need <metadata> <destination> <source> <region size>)";
static const char err_region_size[] =
	"Invalid region size (power of 2, 8..2097152 sectors, multiple of logical block sizes)";
static const char err_core_key[] =
	"Unknown core argument (valid: hydration_threshold, hydration_batch_size)";

static const char err_feature[] =
	"Unknown feature (valid: no_hydration, no_discard_passdown, no_read_hydration)";

static int parse_features(struct clone *clone, struct dm_arg_set *as)
{
	static const struct dm_arg arg = {
		0, 3, "Invalid number of feature arguments (0 to 2, 3 with no_read_hydration)"
	};
	struct dm_target *ti = clone->ti;
	unsigned int argc, classic = 0;
	const char *word;
	int r;

	if (!as->argc)
		return 0;

	r = dm_read_arg_group(&arg, as, &argc, &ti->error);
	if (r)
		return r;

	while (argc--) {
		word = dm_shift_arg(as);
		if (!strcasecmp(word, "no_hydration")) {
			clear_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
			classic++;
		} else if (!strcasecmp(word, "no_discard_passdown")) {
			clear_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
			classic++;
		} else if (!strcasecmp(word, "no_read_hydration")) {
			clear_bit(CLONE_READ_HYDRATION, &clone->flags);
		} else {
			ti->error = (char *)err_feature;
			return -EINVAL;
		}
	}
	/* Two classic words at most, as the classic target counts them. */
	if (classic > 2) {
		ti->error = (char *)arg.error;
		return -EINVAL;
	}

	return 0;
}

static int parse_core_args(struct clone *clone, struct dm_arg_set *as)
{
	static const struct dm_arg arg = {
		0, 4, "Invalid number of core arguments (0 to 4)"
	};
	struct dm_target *ti = clone->ti;
	unsigned int argc;
	const char *key, *value;
	u32 v;
	int r;

	if (!as->argc)
		return 0;

	r = dm_read_arg_group(&arg, as, &argc, &ti->error);
	if (r)
		return r;

	if (argc % 2) {
		ti->error = "Core arguments come in key and value pairs";
		return -EINVAL;
	}

	while (argc) {
		key = dm_shift_arg(as);
		value = dm_shift_arg(as);
		argc -= 2;

		if (!clone_parse_uint(value, &v)) {
			ti->error = "Core argument value must be a decimal unsigned number";
			return -EINVAL;
		}

		if (!strcasecmp(key, "hydration_threshold")) {
			clone_set_threshold(clone, v, true);
		} else if (!strcasecmp(key, "hydration_batch_size")) {
			clone->hydration_batch_size = v;
		} else {
			ti->error = (char *)err_core_key;
			return -EINVAL;
		}
	}

	return 0;
}

static int copy_table_args(struct clone *clone, unsigned int argc, char **argv)
{
	unsigned int i;

	clone->table_args = kcalloc(argc, sizeof(char *), GFP_KERNEL);
	if (!clone->table_args)
		return -ENOMEM;

	for (i = 0; i < argc; i++) {
		clone->table_args[i] = kstrdup(argv[i], GFP_KERNEL);
		if (!clone->table_args[i])
			return -ENOMEM;
		clone->nr_table_args++;
	}

	return 0;
}

static void free_table_args(struct clone *clone)
{
	unsigned int i;

	for (i = 0; i < clone->nr_table_args; i++)
		kfree(clone->table_args[i]);
	kfree(clone->table_args);
}

static const char err_self[] =
	"A clone cannot use itself, or a device stacked on it, as a device";

static struct gendisk *self_disk(struct clone *clone)
{
	return dm_disk(dm_table_get_md(clone->ti->table));
}

/* Refuse a device that is the clone itself or is stacked on it. */
static bool is_self(struct clone *clone, struct dm_dev *dev)
{
	return clone_disk_is_below(dev->bdev->bd_disk, self_disk(clone), 0);
}

static int open_device(struct clone *clone, const char *path,
		       clone_open_mode_t mode, struct dm_dev **dev,
		       const char *err_open)
{
	struct dm_target *ti = clone->ti;
	int r;

	/* Before dm_get_device(): newer kernels refuse it there, unsaid. */
	if (clone_path_is_disk(path, self_disk(clone))) {
		ti->error = (char *)err_self;
		return -EINVAL;
	}

	r = dm_get_device(ti, path, mode, dev);
	if (r) {
		ti->error = (char *)err_open;
		return r;
	}

	if (is_self(clone, *dev)) {
		dm_put_device(ti, *dev);
		*dev = NULL;
		ti->error = (char *)err_self;
		return -EINVAL;
	}

	return 0;
}

static void clone_put_devices(struct clone *clone)
{
	struct dm_target *ti = clone->ti;

	if (clone->source_dev)
		dm_put_device(ti, clone->source_dev);
	if (clone->dest_dev)
		dm_put_device(ti, clone->dest_dev);
	if (clone->metadata_dev)
		dm_put_device(ti, clone->metadata_dev);
}

static int parse_devices_and_region(struct clone *clone, char **argv)
{
	struct dm_target *ti = clone->ti;
	sector_t size;
	u64 region_size, nr_regions;
	int r;

	r = open_device(clone, argv[0], CLONE_OPEN_RW,
			&clone->metadata_dev, "Error opening metadata device");
	if (r)
		return r;
	size = bdev_nr_sectors(clone->metadata_dev->bdev);
	if (size > DM_CLONE_METADATA_MAX_SECTORS)
		DMWARN("metadata device %pg is larger than %llu sectors: using only the first part",
		       clone->metadata_dev->bdev, DM_CLONE_METADATA_MAX_SECTORS);

	r = open_device(clone, argv[1], CLONE_OPEN_RW,
			&clone->dest_dev, "Error opening destination device");
	if (r)
		return r;
	if (bdev_nr_sectors(clone->dest_dev->bdev) < ti->len) {
		ti->error = "Destination device is smaller than the target length";
		return -EINVAL;
	}

	r = open_device(clone, argv[2], CLONE_OPEN_READ, &clone->source_dev,
			"Error opening source device");
	if (r)
		return r;
	if (bdev_nr_sectors(clone->source_dev->bdev) < ti->len) {
		ti->error = "Source device is smaller than the target length";
		return -EINVAL;
	}

	if (clone->source_dev->bdev == clone->dest_dev->bdev ||
	    clone->metadata_dev->bdev == clone->dest_dev->bdev ||
	    clone->metadata_dev->bdev == clone->source_dev->bdev) {
		ti->error = "Metadata, destination and source must be three different devices";
		return -EINVAL;
	}

	if (!clone_parse_u64(argv[3], &region_size) ||
	    !clone_region_size_valid(region_size,
				     bdev_logical_block_size(clone->dest_dev->bdev),
				     bdev_logical_block_size(clone->source_dev->bdev))) {
		ti->error = (char *)err_region_size;
		return -EINVAL;
	}
	clone->region_size = region_size;
	clone->region_shift = __ffs64(region_size);

	nr_regions = clone_nr_regions(ti->len, region_size);
	if (nr_regions > CLONE_MAX_REGIONS) {
		ti->error = "Too many regions (at most 2^31): use a larger region size";
		return -EINVAL;
	}
	clone->nr_regions = nr_regions;

	return 0;
}

static void set_default_tunables(struct clone *clone)
{
	u64 region_bytes = clone->region_size << SECTOR_SHIFT;

	clone->hydration_batch_size =
		max_t(u64, 1, DEFAULT_BATCH_BYTES / region_bytes);
	clone_set_threshold(clone,
			    max_t(u64, clone->hydration_batch_size,
				  DEFAULT_THRESHOLD_BYTES / region_bytes),
			    false);
}

static int create_runtime(struct clone *clone)
{
	struct dm_target *ti = clone->ti;

	/*
	 * Unbound: the worker and the copy engine's worker must not wait
	 * behind other per-CPU work on the CPU that completed their I/O (a
	 * stacked source's own worker copying a burst of reads, for one).
	 */
	clone->wq = alloc_workqueue("dm-" DM_MSG_PREFIX,
				    WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!clone->wq) {
		ti->error = "Cannot allocate the workqueue";
		return -ENOMEM;
	}

	return clone_hydration_init(clone);
}

static void destroy_runtime(struct clone *clone)
{
	/* Nothing may be queued on the workqueue once it is destroyed. */
	if (clone->wq) {
		cancel_delayed_work_sync(&clone->waker);
		cancel_delayed_work_sync(&clone->share_wake);
		clone_copier_quiesce(&clone->copier);
		destroy_workqueue(clone->wq);
	}
	clone_hydration_exit(clone);
}

/*
 * Construct a clone:
 *
 *   <metadata dev> <destination dev> <source dev> <region size>
 *   [<#feature args> [<feature arg>]* [<#core args> [<key> <value>]*]]
 *
 * Features: no_hydration, no_discard_passdown, no_read_hydration.
 * Core arguments: hydration_threshold <regions>, hydration_batch_size
 * <regions>.
 */
static int clone_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as;
	struct clone *clone;
	const char *error;
	int r;

	if (argc < 4) {
		ti->error = (char *)err_nr_args;
		return -EINVAL;
	}

	clone = kzalloc(sizeof(*clone), GFP_KERNEL);
	if (!clone) {
		ti->error = "Cannot allocate the clone structure";
		return -ENOMEM;
	}
	clone->ti = ti;
	ti->private = clone;
	set_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
	set_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
	set_bit(CLONE_READ_HYDRATION, &clone->flags);

	r = parse_devices_and_region(clone, argv);
	if (r)
		goto bad_devices;

	set_default_tunables(clone);
	as.argc = argc - 4;
	as.argv = argv + 4;
	r = parse_features(clone, &as);
	if (r)
		goto bad_devices;
	r = parse_core_args(clone, &as);
	if (r)
		goto bad_devices;
	if (as.argc) {
		ti->error = "Too many arguments";
		r = -EINVAL;
		goto bad_devices;
	}

	r = copy_table_args(clone, argc - 3, argv + 3);
	if (r) {
		ti->error = "Cannot allocate memory for the table arguments";
		goto bad_table_args;
	}

	spin_lock_init(&clone->lock);
	bio_list_init(&clone->deferred_bios);
	bio_list_init(&clone->deferred_discards);
	bio_list_init(&clone->discards_done);
	bio_list_init(&clone->discards_marking);
	bio_list_init(&clone->deferred_flushes);
	bio_list_init(&clone->deferred_completions);
	atomic_set(&clone->in_flight, 0);
	atomic_set(&clone->bg_in_flight, 0);
	atomic_set(&clone->copy_errors, 0);
	atomic_set(&clone->pass_errors, 0);
	init_waitqueue_head(&clone->in_flight_wait);
	mutex_init(&clone->commit_lock);
	INIT_WORK(&clone->worker, do_worker);
	INIT_DELAYED_WORK(&clone->waker, do_waker);
	INIT_DELAYED_WORK(&clone->share_wake, do_share_wake);

	r = create_runtime(clone);
	if (r)
		goto bad_runtime;

	/* Last: it may format the metadata, which nothing may undo. */
	clone->cmd = dm_clone_metadata_open(clone->metadata_dev->bdev, ti->len,
					    clone->region_size, &error);
	if (IS_ERR(clone->cmd)) {
		r = PTR_ERR(clone->cmd);
		clone->cmd = NULL;
		ti->error = (char *)error;
		goto bad_runtime;
	}

	if (dm_clone_metadata_needs_check(clone->cmd))
		clone_needs_check(clone);

	disable_passdown_if_not_supported(clone);

	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = 1;
	ti->discards_supported = true;
	ti->per_io_data_size = sizeof(struct clone_bio_data);

	return 0;

bad_runtime:
	destroy_runtime(clone);
bad_table_args:
	free_table_args(clone);
bad_devices:
	clone_put_devices(clone);
	kfree(clone);
	ti->private = NULL;
	return r;
}

static void clone_dtr(struct dm_target *ti)
{
	struct clone *clone = ti->private;

	/* Suspended (or never resumed): nothing is in flight. */
	destroy_runtime(clone);
	dm_clone_metadata_close(clone->cmd);
	free_table_args(clone);
	clone_put_devices(clone);
	kfree(clone);
}

static struct target_type clone_target = {
	.name = "clone",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = clone_ctr,
	.dtr = clone_dtr,
	.map = clone_map,
	.end_io = clone_end_io,
	.presuspend = clone_presuspend,
	.presuspend_undo = clone_presuspend_undo,
	.postsuspend = clone_postsuspend,
	.preresume = clone_preresume,
	.resume = clone_resume,
	.status = clone_status,
	.message = clone_message,
	.io_hints = clone_io_hints,
	.iterate_devices = clone_iterate_devices,
};

static int __init dm_clone_init(void)
{
	int r;

	r = clone_hydration_module_init();
	if (r)
		return r;

	r = dm_register_target(&clone_target);
	if (r < 0) {
		DMERR("registering the clone target failed: error %d", r);
		clone_hydration_module_exit();
		return r;
	}

	return 0;
}

static void __exit dm_clone_exit(void)
{
	dm_unregister_target(&clone_target);
	clone_hydration_module_exit();
}

module_init(dm_clone_init);
module_exit(dm_clone_exit);

MODULE_DESCRIPTION(DM_NAME " clone target: hydrate a copy of a read-only source device");
MODULE_AUTHOR("dm-clone developers");
MODULE_LICENSE("GPL");
