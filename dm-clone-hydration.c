// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone hydration: regions in flight, copy jobs and their retries, the
 * background pass, and discard marking. The target (dm-clone-target.c)
 * maps bios and owns the worker; this file decides what to copy and the
 * copy engine (dm-clone-copier.c) copies it.
 *
 * Regions in flight. A struct clone_hydration holds a run of regions (at
 * most HD_GROUP_REGIONS, within one hash group of that many) while they
 * are copied, or while a write covering a whole region goes to the
 * destination. It sits in a hash table keyed by group; being there is the
 * regions' lock: a write to one of them waits on the hydration's list and
 * goes on when it ends. A copy job is a list of hydrations of contiguous
 * regions led by the first, whose struct clone_copy_job it carries.
 *
 * Locks: clone->lock, then the metadata's bitmap_lock (see "Lock order"
 * in dm-clone-target.c).
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/jiffies.h>
#include <linux/llist.h>
#include <linux/mempool.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "dm-clone-compat.h"
#include "dm-clone-copier.h"
#include "dm-clone-metadata.h"
#include "dm-clone-region.h"
#include "dm-clone-target.h"

#define DM_MSG_PREFIX "clone"

/*
 * Whatever the table says, never more than this many regions in flight
 * (bounds the in-flight hydrations: at worst one object, about 150 bytes,
 * per region).
 */
#define MAX_HYDRATIONS_IN_FLIGHT	(1024U * 1024U)
/* Hydration objects kept in reserve (count). */
#define MIN_HYDRATIONS			256
/* Buckets of the in-flight hydration hash table (log2). */
#define HASH_BITS_REGIONS		12
/* Ranges a prefetch message may queue, and read hints kept (count). */
#define PREFETCH_RANGES			1024
#define READ_HINTS			64
/* Regions marked per lock hold when a discard marks a range (count). */
#define DISCARD_MARK_STEP		4096
/* Back-off before retrying regions whose copy failed (jiffies). */
#define RETRY_BACKOFF_MIN		HZ
#define RETRY_BACKOFF_MAX		(60 * HZ)
/* Writes hydrating regions by themselves count this long (jiffies). */
#define OVERWRITE_RECENT		HZ
/* Failed copies logged: at most this many per interval (jiffies). */
#define COPY_FAIL_BURST			5
#define COPY_FAIL_INTERVAL		(5 * HZ)

/*
 * Hydrations in flight never cross a hash group of HD_GROUP_REGIONS
 * regions (2^HD_GROUP_SHIFT), the unit of the in-flight hash table.
 */
#define HD_GROUP_SHIFT			8
#define HD_GROUP_REGIONS		BIT(HD_GROUP_SHIFT)

/* ---- Hydration: in-flight regions ---- */

/*
 * Hydrations in flight are hashed by the group of 2^HD_GROUP_SHIFT regions
 * they lie in; one never crosses a group boundary, so the hydrations that
 * may hold a region are all in its group's bucket.
 */
static struct hlist_head *hash_bucket(struct clone *clone, unsigned long region)
{
	return &clone->hash[hash_long(region >> HD_GROUP_SHIFT,
				      HASH_BITS_REGIONS)];
}

static unsigned long group_end(struct clone *clone, unsigned long region)
{
	unsigned long end = (region | (HD_GROUP_REGIONS - 1)) + 1;

	return min(end, clone->nr_regions);
}

/* The hydration in flight that holds @region, or NULL. */
static struct clone_hydration *__find_hydration(struct clone *clone,
						unsigned long region)
{
	struct clone_hydration *hd;

	lockdep_assert_held(&clone->lock);
	hlist_for_each_entry(hd, hash_bucket(clone, region), h)
		if (region >= hd->region_nr &&
		    region - hd->region_nr < hd->nr_regions)
			return hd;
	return NULL;
}

/*
 * The first region of [@region, @end) in flight, or @end; @end may not be
 * past @region's group. If @holder, *@holder is the hydration holding it
 * (NULL when none is in flight).
 */
static unsigned long __first_in_flight(struct clone *clone,
				       unsigned long region, unsigned long end,
				       struct clone_hydration **holder)
{
	struct clone_hydration *hd, *found = NULL;
	unsigned long first = end;

	lockdep_assert_held(&clone->lock);
	hlist_for_each_entry(hd, hash_bucket(clone, region), h) {
		if (hd->region_nr < first &&
		    hd->region_nr + hd->nr_regions > region) {
			first = max(hd->region_nr, region);
			found = hd;
		}
	}
	if (holder)
		*holder = found;
	return first;
}

static void __insert_hydration(struct clone *clone, struct clone_hydration *hd)
{
	lockdep_assert_held(&clone->lock);
	hlist_add_head(&hd->h, hash_bucket(clone, hd->region_nr));
}

static struct clone_hydration *alloc_hydration(struct clone *clone,
					       unsigned long region,
					       unsigned int nr, gfp_t gfp)
{
	struct clone_hydration *hd = mempool_alloc(&clone->hydration_pool, gfp);

	if (!hd)
		return NULL;
	memset(hd, 0, sizeof(*hd));
	hd->clone = clone;
	hd->region_nr = region;
	hd->nr_regions = nr;
	INIT_HLIST_NODE(&hd->h);
	INIT_LIST_HEAD(&hd->batch);
	INIT_LIST_HEAD(&hd->copy.queue);
	bio_list_init(&hd->waiting);
	return hd;
}

/*
 * End one hydration: take it out of the hash table (unless a failed read
 * taken as its copy did, keep_read_failed()) and hand its waiting bios
 * on, to the worker (which sends them to the destination) when their
 * region is hydrated now, else failing them. Any context.
 */
static void end_one_hydration(struct clone_hydration *hd)
{
	struct clone *clone = hd->clone;
	struct bio_list bios, failed;
	unsigned long flags;
	struct bio *bio;

	bio_list_init(&failed);
	bio_list_init(&bios);

	spin_lock_irqsave(&clone->lock, flags);
	hlist_del_init(&hd->h);
	bio_list_merge(&bios, &hd->waiting);
	while ((bio = bio_list_pop(&bios))) {
		unsigned long region = bio_target_sector(clone, bio) >>
				       clone->region_shift;

		if (dm_clone_is_region_hydrated(clone->cmd, region))
			bio_list_add(&clone->deferred_bios, bio);
		else
			bio_list_add(&failed, bio);
	}
	spin_unlock_irqrestore(&clone->lock, flags);

	complete_list(&failed, BLK_STS_IOERR);
	mempool_free(hd, &clone->hydration_pool);
}

/*
 * End a copy job (or a whole-region write): mark its regions hydrated
 * unless @mark is false (then the regions that made it were marked one by
 * one), end its hydrations. Returns false if marking was refused. Any
 * context.
 */
bool clone_end_hydrations(struct clone *clone, struct clone_hydration *leader,
			  bool mark)
{
	struct clone_hydration *hd, *tmp;
	unsigned int n = leader->nr_regions;
	bool background = leader->background, pass = leader->pass;
	bool marked = true;

	/* On failure the regions stay unhydrated (read-only now). */
	if (mark && dm_clone_set_regions_hydrated(clone->cmd, leader->region_nr,
						  leader->nr_regions) < 0)
		marked = false;
	list_for_each_entry_safe(hd, tmp, &leader->batch, batch) {
		list_del(&hd->batch);
		if (mark && dm_clone_set_regions_hydrated(clone->cmd, hd->region_nr,
							  hd->nr_regions) < 0)
			marked = false;
		n += hd->nr_regions;
		end_one_hydration(hd);
	}
	end_one_hydration(leader);

	if (background)
		atomic_sub(n, &clone->bg_in_flight);
	if (pass)
		atomic_dec(&clone->pass_jobs);
	if (atomic_sub_and_test(n, &clone->in_flight))
		wake_up(&clone->in_flight_wait);
	wake_worker(clone);
	return marked;
}

/* ---- Copy jobs ---- */

/*
 * A copy job copies the regions of a batch (or the one region a write
 * waits for) through the copy engine. When it fails and spans more than
 * one region, its regions are copied again one by one, so that one
 * unreadable region does not keep its neighbours from hydrating.
 */

/*
 * The first region from @r that @job's batch holds, or copy_last; in
 * *@run_end, where the run holding it ends. Walks on from the run last
 * found: the engine asks in order within a piece, and mostly in order
 * from piece to piece. Copy engine's worker.
 */
static unsigned long held_run(struct clone_hydration *job, unsigned long r,
			      unsigned long *run_end)
{
	struct clone_hydration *hd = job->cursor;

	if (!hd || hd->region_nr > r)
		hd = job;
	while (r >= hd->region_nr + hd->nr_regions) {
		/* The leader's batch is the list's head, the others' entries. */
		if (hd->batch.next == &job->batch) {
			*run_end = job->copy_last;
			return job->copy_last;
		}
		hd = list_next_entry(hd, batch);
	}
	job->cursor = hd;
	*run_end = hd->region_nr + hd->nr_regions;
	return max(r, hd->region_nr);
}

/* The copy engine's write_run for a batch with holes: its runs' sectors. */
static sector_t batch_write_run(struct clone_copy_job *copy, sector_t from,
				sector_t to, sector_t *run_end)
{
	struct clone_hydration *job = container_of(copy, struct clone_hydration,
						   copy);
	struct clone *clone = job->clone;
	unsigned long r, e;
	sector_t s;

	r = held_run(job, from >> clone->region_shift, &e);
	if (r >= job->copy_last)
		return to;
	s = max(from, region_to_sector(clone, r));
	*run_end = min(region_to_sector(clone, e), clone->ti->len);
	return min(s, to);
}

/* Copy region @job->retry_region alone. Copy engine's worker. */
static void start_region_copy(struct clone *clone, struct clone_hydration *job)
{
	unsigned long r = job->retry_region;

	clone_copier_copy(&clone->copier, &job->copy, region_to_sector(clone, r),
			  min(region_to_sector(clone, r + 1), clone->ti->len));
}

/*
 * A region's copy failed: count it, say so, at most COPY_FAIL_BURST times
 * per COPY_FAIL_INTERVAL for the clone (the count is in each line, and in
 * the pass's retry line).
 */
static void copy_failed(struct clone *clone, unsigned long region,
			bool read_failed)
{
	atomic_inc(&clone->copy_errors);
	atomic_inc(&clone->pass_errors);
	if (!__ratelimit(&clone->copy_fail_rs))
		return;
	DMERR("%s: copying region %lu failed (%s error); failed copies so far: %d",
	      clone_device_name(clone), region,
	      read_failed ? "source read" : "destination write",
	      atomic_read(&clone->copy_errors));
}

/*
 * The copy engine ended @copy: mark what made it, or copy again region by
 * region. Copy engine's worker.
 */
static void copy_job_done(struct clone_copy_job *copy, int read_err,
			  int write_err)
{
	struct clone_hydration *job = container_of(copy, struct clone_hydration,
						   copy);
	struct clone *clone = job->clone;
	bool failed = read_err || write_err;
	unsigned long next;

	if (!job->retrying) {
		if (!failed) {
			clone_end_hydrations(clone, job, true);
			return;
		}
		if (job->copy_last - job->copy_first > 1) {
			job->retrying = true;
			job->cursor = NULL;
			job->retry_region = job->copy_first;
			start_region_copy(clone, job);
			return;
		}
		copy_failed(clone, job->copy_first, read_err);
		clone_end_hydrations(clone, job, false);
		return;
	}

	/* Region by region: mark each that made it. */
	if (failed)
		copy_failed(clone, job->retry_region, read_err);
	else
		dm_clone_set_regions_hydrated(clone->cmd, job->retry_region, 1);
	/* The next region held: not the holes the batch read across. */
	job->retry_region = held_run(job, job->retry_region + 1, &next);
	if (job->retry_region < job->copy_last) {
		start_region_copy(clone, job);
		return;
	}
	clone_end_hydrations(clone, job, false);
}

/*
 * Copy the regions of @job (a leader) and of its batch, reading across
 * the holes between them. Any context.
 */
static void start_copy(struct clone *clone, struct clone_hydration *job)
{
	struct clone_hydration *hd;
	unsigned long held = job->nr_regions;

	list_for_each_entry(hd, &job->batch, batch)
		held += hd->nr_regions;
	hd = list_empty(&job->batch) ? job :
	     list_last_entry(&job->batch, struct clone_hydration, batch);
	job->copy_first = job->region_nr;
	job->copy_last = hd->region_nr + hd->nr_regions;
	job->cursor = NULL;
	job->copy.notify = copy_job_done;
	/* Holes between its runs: write the runs only. */
	job->copy.write_run = held < job->copy_last - job->copy_first ?
			      batch_write_run : NULL;
	clone_copier_copy(&clone->copier, &job->copy,
			  region_to_sector(clone, job->copy_first),
			  min(region_to_sector(clone, job->copy_last),
			      clone->ti->len));
}

/*
 * A write to an unhydrated region: join the region's hydration, or start
 * one. Returns a DM_MAPIO_* value. Process context (may block to
 * allocate).
 */
int clone_hydrate_for_write(struct clone *clone, struct bio *bio,
			    unsigned long region)
{
	struct clone_bio_data *pb = get_pb(bio);
	struct clone_hydration *hd, *new;
	bool whole = bio_sectors(bio) == clone->region_size;

	new = alloc_hydration(clone, region, 1, GFP_NOIO);

	spin_lock_irq(&clone->lock);
	hd = __find_hydration(clone, region);
	if (hd) {
		bio_list_add(&hd->waiting, bio);
		clone_copier_write_waited(&clone->copier);
		spin_unlock_irq(&clone->lock);
		mempool_free(new, &clone->hydration_pool);
		return DM_MAPIO_SUBMITTED;
	}

	/* Hydrated (and unhashed) since clone_map() looked? */
	if (dm_clone_is_region_hydrated(clone->cmd, region)) {
		spin_unlock_irq(&clone->lock);
		mempool_free(new, &clone->hydration_pool);
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	__insert_hydration(clone, new);
	atomic_inc(&clone->in_flight);
	if (whole) {
		pb->flags |= PB_OVERWRITE;
		pb->hd = new;
		WRITE_ONCE(clone->overwrite_at, jiffies | 1);
	} else {
		bio_list_add(&new->waiting, bio);
	}
	spin_unlock_irq(&clone->lock);

	if (whole) {
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	new->copy.urgent = true;
	start_copy(clone, new);
	return DM_MAPIO_SUBMITTED;
}

/* May copies not asked for by writes start (prefetched ranges)? */
static bool copy_may_run(struct clone *clone)
{
	return test_bit(CLONE_RUNNING, &clone->flags) &&
	       get_mode(clone) == CM_WRITE;
}

/* And the background pass, and the copies of what was read? */
static bool hydration_may_run(struct clone *clone)
{
	return test_bit(CLONE_HYDRATION_ENABLED, &clone->flags) &&
	       copy_may_run(clone);
}

/*
 * The first region of [@r, @end) (within one group) that is unhydrated
 * and not in flight, or @end; in *@run_end, where the run of such regions
 * from it ends. Under clone->lock.
 */
static unsigned long __next_free_run(struct clone *clone, unsigned long r,
				     unsigned long end, unsigned long *run_end)
{
	struct clone_hydration *hd;
	unsigned long busy;

	lockdep_assert_held(&clone->lock);
	while ((r = dm_clone_find_unhydrated_in(clone->cmd, r, end)) < end) {
		busy = __first_in_flight(clone, r, end, &hd);
		if (busy > r) {
			*run_end = dm_clone_find_hydrated_in(clone->cmd, r + 1,
							     busy);
			return r;
		}
		r = min(hd->region_nr + hd->nr_regions, end);
	}
	return end;
}

/*
 * Gather into one batch the unhydrated regions not in flight among the
 * @max regions from @region: one hydration per run of them (a run never
 * crosses a hash group). Runs need not touch: the job reads the regions
 * between them too and writes only its own (write_run), so that the
 * regions users wrote meanwhile do not break the copy into crumbs, each
 * a read and a write of its own. The regions read and not written stay
 * at most as many as those held, though: a hole longer than that ends
 * the batch. Returns where the batch's regions end, or, with nothing
 * gathered (*@leaderp NULL: all hydrated or in flight, or no memory),
 * where the search stopped. Worker context.
 */
static unsigned long gather_batch(struct clone *clone, unsigned long region,
				  unsigned int max,
				  struct clone_hydration **leaderp)
{
	unsigned long limit = min(region + max, clone->nr_regions);
	unsigned long r = region, s, e, end, held = 0, skipped = 0, last = 0;
	struct clone_hydration *leader = NULL, *hd;

	while (r < limit) {
		end = min(group_end(clone, r), limit);

		spin_lock_irq(&clone->lock);
		s = __next_free_run(clone, r, end, &e);
		if (s >= end) {
			spin_unlock_irq(&clone->lock);
			if (leader)
				skipped += end - r;
			r = end;
			continue;
		}
		if (leader && !clone_batch_may_cross(held, skipped, s - r)) {
			spin_unlock_irq(&clone->lock);
			break;
		}
		hd = alloc_hydration(clone, s, e - s, GFP_NOWAIT | __GFP_NOWARN);
		if (hd) {
			__insert_hydration(clone, hd);
			atomic_add(e - s, &clone->in_flight);
			atomic_add(e - s, &clone->bg_in_flight);
		}
		spin_unlock_irq(&clone->lock);
		if (!hd) {
			r = s;
			break;
		}

		if (leader) {
			list_add_tail(&hd->batch, &leader->batch);
			skipped += s - r;
		} else {
			leader = hd;
			leader->background = true;
		}
		held += e - s;
		last = e;
		r = e;
	}

	*leaderp = leader;
	return leader ? last : r;
}

/*
 * At the end of a pass: start the next one from region 0, unless copies
 * failed during this one, in which case wait for a back-off that doubles
 * (up to RETRY_BACKOFF_MAX) while failures go on. Worker context.
 */
static bool start_new_pass(struct clone *clone)
{
	if (atomic_xchg(&clone->pass_errors, 0) || clone->retry_after) {
		if (!clone->retry_after) {
			WRITE_ONCE(clone->retry_after,
				   jiffies + clone->retry_backoff);
			DMWARN_LIMIT("%s: %d region copies failed so far; retrying in %u s",
				     clone_device_name(clone),
				     atomic_read(&clone->copy_errors),
				     jiffies_to_msecs(clone->retry_backoff) / 1000);
			clone->retry_backoff = min(2 * clone->retry_backoff,
						   (unsigned long)RETRY_BACKOFF_MAX);
			return false;
		}
		if (time_before(jiffies, clone->retry_after))
			return false;
		WRITE_ONCE(clone->retry_after, 0);
	} else {
		clone->retry_backoff = RETRY_BACKOFF_MIN;
	}

	clone->hydration_offset = 0;
	return true;
}

/*
 * Regions the background pass may have in flight: hydration_threshold,
 * and without one from the user, what the copy window can move plus one
 * piece's worth waiting (a region waits for its copy: no deeper queue).
 */
static unsigned int background_threshold(struct clone *clone)
{
	unsigned int t = min(READ_ONCE(clone->hydration_threshold),
			     MAX_HYDRATIONS_IN_FLIGHT);
	u64 w = clone_copier_window_sectors(&clone->copier) >>
		clone->region_shift;

	return min_t(u64, t, max_t(u64, w, 1));
}

/* ---- Reads that are their regions' copy ---- */

/*
 * A read of whole uncopied regions brings their data from the source
 * anyway: written to the destination from memory, it copies them without
 * a second read of the source (over a link, the bytes would cross it
 * twice, and the copy would queue behind the user's next reads). At map
 * time the regions are taken in flight by a hydration of their own (not
 * the pass's), which writes to them wait for as for any copy. When the
 * read ends, its data is copied into pages of ours before the user gets
 * the bio back (the user's buffer may change once it is returned, or even
 * before, under O_DIRECT: ours cannot), then keep_work writes them out
 * (all zeroes as a zeroes write where the destination takes one) and the
 * regions are marked like a copy's. Whatever goes wrong on the way (no
 * memory, a failed write, zeroes for a destination without zeroes writes)
 * turns the hydration into an ordinary copy of its regions from the
 * source; a failed read ends it with nothing marked, unless writes wait
 * for it (they get the copy). Taken only with background copying enabled,
 * a threshold above 0 (the threshold does not bound them otherwise: they
 * read nothing more from the source) and no copy failing, for reads of
 * KEEP_READ_MIN to KEEP_READ_PAGES, and KEEP_CLONE_PAGES of them at a
 * time. Smaller reads are scattered ones, more often than not: each a
 * copy of its own would cut the uncopied space into crumbs, and cost a
 * write, a hop to keep_work and a mark per few KiB; the whole batches
 * around them (the read hints) do better there.
 */
#define KEEP_READ_MIN		SZ_64K
#define KEEP_READ_PAGES		(SZ_1M >> PAGE_SHIFT)
#define KEEP_CLONE_PAGES	(SZ_16M >> PAGE_SHIFT)

struct clone_keep {
	struct llist_node node;
	struct clone_hydration *hd;
	sector_t sector, nr_sectors;
	unsigned int nr_pages;
	struct page_list pl[];
};

/*
 * Regions [@region, @end) are unhydrated and none is in flight? They may
 * span several groups.
 */
static bool __all_free(struct clone *clone, unsigned long region,
		       unsigned long end)
{
	unsigned long e;

	lockdep_assert_held(&clone->lock);
	if (dm_clone_find_hydrated_in(clone->cmd, region, end) < end)
		return false;
	for (; region < end; region = e) {
		e = min(group_end(clone, region), end);
		if (__first_in_flight(clone, region, e, NULL) < e)
			return false;
	}
	return true;
}

/*
 * Take the read @bio (remapped to the source: its sector is the target's)
 * of regions [@region, @region + @nr) as their copy, if it covers them
 * whole and they are free: one hydration per group they touch (two at
 * most), led by the first. True if taken. Map context.
 */
static bool keep_take(struct clone *clone, struct bio *bio,
		      unsigned long region, unsigned long nr)
{
	struct clone_bio_data *pb = get_pb(bio);
	unsigned long last = region + nr, e;
	unsigned int pages = DIV_ROUND_UP(bio->bi_iter.bi_size, PAGE_SIZE);
	struct clone_hydration *hd[2] = { NULL, NULL };
	unsigned long flags;
	unsigned int i, n;
	bool taken = false;

	if (bio->bi_iter.bi_sector != region_to_sector(clone, region) ||
	    bio_end_sector(bio) != min(region_to_sector(clone, last),
				       clone->ti->len) ||
	    bio->bi_iter.bi_size < KEEP_READ_MIN || pages > KEEP_READ_PAGES ||
	    !READ_ONCE(clone->hydration_threshold) ||
	    !hydration_may_run(clone))
		return false;
	/* Copies fail: no new ones before the pass's back-off (copy_wanted()). */
	if (READ_ONCE(clone->retry_after) || atomic_read(&clone->pass_errors))
		return false;
	n = group_end(clone, region) < last ? 2 : 1;
	if (n > 1 && group_end(clone, group_end(clone, region)) < last)
		return false;
	if (atomic_add_return(pages, &clone->keep_pages) > KEEP_CLONE_PAGES)
		goto out;
	for (i = 0; i < n; i++) {
		hd[i] = alloc_hydration(clone, region, 0,
					GFP_NOWAIT | __GFP_NOWARN);
		if (!hd[i])
			goto out;
	}

	spin_lock_irqsave(&clone->lock, flags);
	if (__all_free(clone, region, last)) {
		for (i = 0; i < n; i++, region = e) {
			e = min(group_end(clone, region), last);
			hd[i]->region_nr = region;
			hd[i]->nr_regions = e - region;
			__insert_hydration(clone, hd[i]);
			if (i)
				list_add_tail(&hd[i]->batch, &hd[0]->batch);
		}
		atomic_add(nr, &clone->in_flight);
		taken = true;
	}
	spin_unlock_irqrestore(&clone->lock, flags);
	if (taken) {
		pb->flags |= PB_KEEP;
		pb->hd = hd[0];
		pb->keep_iter = bio->bi_iter;
		return true;
	}
out:
	for (i = 0; i < n; i++)
		if (hd[i])
			mempool_free(hd[i], &clone->hydration_pool);
	atomic_sub(pages, &clone->keep_pages);
	return false;
}

/* Do writes wait for the hydration @leader or its batch? Under the lock. */
static bool __batch_waited(struct clone_hydration *leader)
{
	struct clone_hydration *hd;

	if (!bio_list_empty(&leader->waiting))
		return true;
	list_for_each_entry(hd, &leader->batch, batch)
		if (!bio_list_empty(&hd->waiting))
			return true;
	return false;
}

/* The read could not be the copy after all: copy the regions instead. */
static void keep_fall_back(struct clone *clone, struct clone_hydration *leader)
{
	unsigned long flags;

	spin_lock_irqsave(&clone->lock, flags);
	leader->copy.urgent = __batch_waited(leader);
	spin_unlock_irqrestore(&clone->lock, flags);
	start_copy(clone, leader);
}

/*
 * The read failed: end the hydration with nothing marked, unless writes
 * wait for it (then they get a copy, which fails or not for them). Its
 * hydrations leave the table under the same lock hold that found none
 * waiting, so none can join them after.
 */
static void keep_read_failed(struct clone *clone,
			     struct clone_hydration *leader)
{
	struct clone_hydration *hd;
	unsigned long flags;
	bool waited;

	spin_lock_irqsave(&clone->lock, flags);
	waited = __batch_waited(leader);
	if (!waited) {
		hlist_del_init(&leader->h);
		list_for_each_entry(hd, &leader->batch, batch)
			hlist_del_init(&hd->h);
	}
	spin_unlock_irqrestore(&clone->lock, flags);
	if (waited)
		keep_fall_back(clone, leader);
	else
		clone_end_hydrations(clone, leader, false);
}

static void free_keep(struct clone *clone, struct clone_keep *k)
{
	unsigned int i;

	for (i = 0; i < k->nr_pages; i++)
		__free_page(k->pl[i].page);
	atomic_sub(k->nr_pages, &clone->keep_pages);
	kfree(k);
}

/* Copy the data of @bio (its iterator @iter) into @k's pages. */
static void keep_copy_data(struct clone_keep *k, struct bio *bio,
			   struct bvec_iter iter)
{
	struct bio_vec bv;
	struct bvec_iter it;
	size_t off = 0, done, n;
	char *src, *dst;

	__bio_for_each_segment(bv, bio, it, iter) {
		src = bvec_kmap_local(&bv);
		for (done = 0; done < bv.bv_len; done += n, off += n) {
			n = min_t(size_t, bv.bv_len - done,
				  PAGE_SIZE - offset_in_page(off));
			dst = kmap_local_page(k->pl[off >> PAGE_SHIFT].page);
			memcpy(dst + offset_in_page(off), src + done, n);
			kunmap_local(dst);
		}
		kunmap_local(src);
	}
}

void clone_keep_read_end(struct clone *clone, struct bio *bio, bool ok)
{
	struct clone_bio_data *pb = get_pb(bio);
	struct clone_hydration *hd = pb->hd;
	unsigned int pages = DIV_ROUND_UP(pb->keep_iter.bi_size, PAGE_SIZE);
	struct clone_keep *k = NULL;
	unsigned int i;

	pb->flags &= ~PB_KEEP;
	pb->hd = NULL;
	if (!ok) {
		atomic_sub(pages, &clone->keep_pages);
		keep_read_failed(clone, hd);
		return;
	}

	/* In completion context: no waiting for memory. */
	k = kmalloc(struct_size(k, pl, pages), GFP_NOWAIT | __GFP_NOWARN);
	if (!k)
		goto fall_back;
	k->hd = hd;
	k->sector = pb->keep_iter.bi_sector;
	k->nr_sectors = pb->keep_iter.bi_size >> SECTOR_SHIFT;
	k->nr_pages = 0;
	for (i = 0; i < pages; i++) {
		k->pl[i].page = alloc_page(GFP_NOWAIT | __GFP_NOWARN);
		if (!k->pl[i].page)
			goto fall_back;
		k->pl[i].next = i + 1 < pages ? &k->pl[i + 1] : NULL;
		k->nr_pages++;
	}
	keep_copy_data(k, bio, pb->keep_iter);
	if (llist_add(&k->node, &clone->keeps))
		queue_work(clone->wq, &clone->keep_work);
	return;

fall_back:
	if (k) {
		/* free_keep() gives back the pages it frees: the rest here. */
		atomic_sub(pages - k->nr_pages, &clone->keep_pages);
		free_keep(clone, k);
	} else {
		atomic_sub(pages, &clone->keep_pages);
	}
	keep_fall_back(clone, hd);
}

/* The destination write of @context (a struct clone_keep) ended. */
static void keep_written(CLONE_IO_NOTIFY_ARGS)
{
	struct clone_keep *k = context;
	struct clone_hydration *hd = k->hd;
	struct clone *clone = hd->clone;

	free_keep(clone, k);
	if (CLONE_IO_NOTIFY_ERROR)
		keep_fall_back(clone, hd);
	else
		clone_end_hydrations(clone, hd, true);
}

/* Write out the data of the reads kept so far. Workqueue. */
static void do_keep_work(struct work_struct *ws)
{
	struct clone *clone = container_of(ws, struct clone, keep_work);
	struct clone_keep *k, *tmp;
	struct llist_node *list;
	struct dm_io_request req;
	struct dm_io_region where;
	bool zeroes;

	list = llist_reverse_order(llist_del_all(&clone->keeps));
	llist_for_each_entry_safe(k, tmp, list, node) {
		zeroes = clone_pages_zeroes(k->pl, 0,
					    (size_t)k->nr_sectors << SECTOR_SHIFT,
					    false);
		if (zeroes && !clone_copier_takes_zeroes(&clone->copier)) {
			/* The copy engine knows how to keep such a one sparse. */
			struct clone_hydration *hd = k->hd;

			free_keep(clone, k);
			keep_fall_back(clone, hd);
			continue;
		}
		req = (struct dm_io_request){
			.bi_opf = zeroes ? REQ_OP_WRITE_ZEROES : REQ_OP_WRITE,
			.mem.type = DM_IO_PAGE_LIST,
			.mem.ptr.pl = k->pl,
			.notify.fn = keep_written,
			.notify.context = k,
			.client = clone->copier.io_client,
		};
		where = (struct dm_io_region){
			.bdev = clone->dest_dev->bdev,
			.sector = k->sector,
			.count = k->nr_sectors,
		};
		if (clone_dm_io_async(&req, &where)) {
			struct clone_hydration *hd = k->hd;

			free_keep(clone, k);
			keep_fall_back(clone, hd);
		}
	}
}

/* ---- Copy first: prefetched ranges, regions just read ---- */

/*
 * Two rings of region ranges are copied before the background pass goes
 * on, in this order: the ranges a prefetch message asked for (kept until
 * copied; a full ring refuses more), then the regions reads of uncopied
 * regions went to the source for (hints: contiguous reads merge into one
 * range, so that regions read together are copied together; a full ring
 * forgets its oldest). Copies of both are background copies: the
 * threshold and the copy window bound them, and they wait for the copies
 * writes need. Read hints are taken only while hydration is enabled;
 * prefetched ranges are copied even with background hydration disabled
 * (they were asked for), but not with a threshold of 0. While copies fail
 * (in the pass, or during its back-off) both wait for the pass: failing
 * regions are retried on its schedule only.
 */

/* Push [@first, @last) at the ring's tail, merged with it if they touch. */
static bool __want_push(struct clone_want_ring *ring, unsigned long first,
			unsigned long last, bool forget_oldest)
{
	struct clone_want *tail;

	if (ring->len) {
		tail = &ring->w[(ring->head + ring->len - 1) % ring->size];
		if (first <= tail->last && last >= tail->first) {
			tail->first = min(tail->first, first);
			tail->last = max(tail->last, last);
			return true;
		}
	}
	if (ring->len == ring->size) {
		if (!forget_oldest)
			return false;
		ring->head = (ring->head + 1) % ring->size;
		ring->len--;
	}
	ring->w[(ring->head + ring->len) % ring->size] =
		(struct clone_want){ .first = first, .last = last };
	ring->len++;
	return true;
}

void clone_read_to_source(struct clone *clone, struct bio *bio,
			  unsigned long region, unsigned long nr)
{
	struct clone_bio_data *pb = get_pb(bio);
	unsigned long flags, first, last, b;
	bool was_empty;

	if (!test_bit(CLONE_READ_HYDRATION, &clone->flags) ||
	    !test_bit(CLONE_HYDRATION_ENABLED, &clone->flags))
		return;

	pb->flags |= PB_TIMED;
	if (!atomic_read(&clone->pass_jobs))
		pb->flags |= PB_CLEAN;
	pb->sent_ns = ktime_get_ns();
	spin_lock_irqsave(&clone->share_lock, flags);
	clone_share_sent(&clone->share, pb->sent_ns);
	spin_unlock_irqrestore(&clone->share_lock, flags);
	/* The read is the copy of its regions: nothing more to read. */
	if (keep_take(clone, bio, region, nr))
		return;
	/*
	 * The whole batches around what was read: scattered reads copied
	 * region by region would leave the uncopied space in crumbs, and
	 * the background pass's batches with it.
	 */
	b = max(READ_ONCE(clone->hydration_batch_size), 1U);
	first = region - region % b;
	last = min(DIV_ROUND_UP(region + nr, b) * b, clone->nr_regions);
	spin_lock_irqsave(&clone->lock, flags);
	was_empty = !clone->read_hints.len;
	__want_push(&clone->read_hints, first, last, true);
	spin_unlock_irqrestore(&clone->lock, flags);
	/*
	 * A ring that holds ranges already is drained by the worker's copy
	 * loop, woken by each copy that ends: no wake-up per read.
	 */
	if (was_empty)
		wake_worker(clone);
}

void clone_read_done(struct clone *clone, struct bio *bio, bool ok)
{
	struct clone_bio_data *pb = get_pb(bio);
	bool clean = pb->flags & PB_CLEAN;
	u64 now, left;
	unsigned int before, after;
	unsigned long flags;

	pb->flags &= ~(PB_TIMED | PB_CLEAN);
	if (!ok)
		return;
	now = ktime_get_ns();
	spin_lock_irqsave(&clone->share_lock, flags);
	before = clone_share_pass(&clone->share, now, &left);
	clone_share_done(&clone->share, pb->sent_ns, now, clean);
	after = clone_share_pass(&clone->share, now, &left);
	spin_unlock_irqrestore(&clone->share_lock, flags);
	/* The pass may have more in flight now (a probe ended, say). */
	if (after > before)
		wake_worker(clone);
}

/*
 * How many entries of @ring the @n ranges of @w (regions, in order) would
 * take when pushed: a range that touches the tail before it (the ring's,
 * or the range before it) is merged into it, as __want_push() does.
 */
static unsigned int __want_slots(const struct clone_want_ring *ring,
				 const struct clone_want *w, unsigned int n)
{
	struct clone_want tail;
	bool have = ring->len;
	unsigned int i, slots = 0;

	if (have)
		tail = ring->w[(ring->head + ring->len - 1) % ring->size];
	for (i = 0; i < n; i++) {
		if (have && w[i].first <= tail.last && w[i].last >= tail.first) {
			tail.first = min(tail.first, w[i].first);
			tail.last = max(tail.last, w[i].last);
			continue;
		}
		tail = w[i];
		have = true;
		slots++;
	}
	return slots;
}

int clone_prefetch(struct clone *clone, const u64 *sectors, unsigned int n,
		   unsigned int *bad)
{
	struct clone_want *w;
	unsigned int i;
	u64 start, len;
	int r = 0;

	w = kmalloc_array(n, sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		start = sectors[2 * i];
		len = sectors[2 * i + 1];
		if (!len || start >= clone->ti->len ||
		    len > clone->ti->len - start) {
			*bad = i;
			r = -EINVAL;
			goto out;
		}
		w[i].first = start >> clone->region_shift;
		w[i].last = ((start + len - 1) >> clone->region_shift) + 1;
	}
	spin_lock_irq(&clone->lock);
	if (__want_slots(&clone->prefetch, w, n) >
	    clone->prefetch.size - clone->prefetch.len) {
		r = -EBUSY;
	} else {
		for (i = 0; i < n; i++)
			__want_push(&clone->prefetch, w[i].first, w[i].last,
				    false);
	}
	spin_unlock_irq(&clone->lock);
	if (!r)
		wake_worker(clone);
out:
	kfree(w);
	return r;
}

/*
 * The first region to copy from a ring: the first unhydrated one of its
 * oldest range (ranges found copied already are dropped), in *@region,
 * and where that range ends, in *@end. False when the ring has none.
 */
static bool want_next(struct clone *clone, struct clone_want_ring *ring,
		      unsigned long *region, unsigned long *end)
{
	struct clone_want *w;
	unsigned long r;

	spin_lock_irq(&clone->lock);
	while (ring->len) {
		w = &ring->w[ring->head];
		r = dm_clone_find_unhydrated_in(clone->cmd, w->first, w->last);
		if (r < w->last) {
			w->first = r;
			*region = r;
			*end = w->last;
			spin_unlock_irq(&clone->lock);
			return true;
		}
		ring->head = (ring->head + 1) % ring->size;
		ring->len--;
	}
	spin_unlock_irq(&clone->lock);
	return false;
}

/* Regions [@region, @to) of the ring's oldest range are being copied. */
static void want_advance(struct clone *clone, struct clone_want_ring *ring,
			 unsigned long region, unsigned long to)
{
	struct clone_want *w;

	spin_lock_irq(&clone->lock);
	if (ring->len) {
		w = &ring->w[ring->head];
		/* Unless the range went (a full ring of hints forgot it). */
		if (w->first <= region && region < w->last)
			w->first = min(to, w->last);
	}
	spin_unlock_irq(&clone->lock);
}

/*
 * Start one copy from the rings, if they hold an uncopied region: true if
 * a ring had one (even if it was in flight already). Worker context.
 */
static bool copy_wanted(struct clone *clone, unsigned int batch,
			bool hints)
{
	struct clone_want_ring *ring = &clone->prefetch;
	struct clone_hydration *leader;
	unsigned long region, end;

	/*
	 * Copies fail in this pass, or the pass waits for its back-off:
	 * these ranges wait too, or reads of regions that cannot be copied
	 * would have them copied again and again, past the back-off.
	 */
	if (clone->retry_after || atomic_read(&clone->pass_errors))
		return false;
	if (!want_next(clone, ring, &region, &end)) {
		if (!hints || !hydration_may_run(clone))
			return false;
		ring = &clone->read_hints;
		if (!want_next(clone, ring, &region, &end))
			return false;
	}
	end = gather_batch(clone, region, min_t(unsigned long, batch,
						end - region), &leader);
	/* None: in flight (for a write, or the background pass). */
	want_advance(clone, ring, region, max(end, region + 1));
	if (leader)
		start_copy(clone, leader);
	return true;
}

/* ---- The background pass ---- */

/* Whole-region writes hydrated regions by themselves this last second? */
static bool writes_cutting(struct clone *clone)
{
	unsigned long at = READ_ONCE(clone->overwrite_at);

	return at && time_before(jiffies, at + OVERWRITE_RECENT);
}

/*
 * May the pass start a copy, beside the user's reads of the source
 * (dm-clone-share.h)? If not, the worker is woken when that may change.
 * *@small: the copy must be small (rule 5). Worker context.
 */
static bool share_allows(struct clone *clone, bool *small)
{
	unsigned int allowed;
	u64 left;

	spin_lock_irq(&clone->share_lock);
	allowed = clone_share_pass(&clone->share, ktime_get_ns(), &left);
	spin_unlock_irq(&clone->share_lock);
	*small = allowed != CLONE_SHARE_ANY;
	if (allowed == CLONE_SHARE_ANY)
		return true;
	clone_copier_held(&clone->copier);
	if (atomic_read(&clone->pass_jobs) < allowed)
		return true;
	/* A copy of the pass that ends wakes the worker too. */
	queue_delayed_work(clone->wq, &clone->share_wake,
			   nsecs_to_jiffies(left) + 1);
	return false;
}

/*
 * Start background copies until hydration_threshold regions are in
 * flight: the ranges to copy first, then the pass. A pass walks the
 * bitmap once from region 0; regions whose copy failed are retried by the
 * next pass after a back-off. Worker context.
 */
void clone_background_hydration(struct clone *clone)
{
	struct clone_hydration *leader;
	unsigned int threshold, full, batch, n;
	unsigned long region, end;
	bool wrapped = false, hints = true, small;

	while (copy_may_run(clone)) {
		threshold = background_threshold(clone);
		full = max(READ_ONCE(clone->hydration_batch_size), 1U);
		n = atomic_read(&clone->in_flight);
		if (n >= threshold)
			return;
		batch = min(full, threshold - n);

		/*
		 * Prefetched ranges first; read ranges take turns with the
		 * pass: scattered reads make one-region copies, which must
		 * not crowd out the pass's batches.
		 */
		if (copy_wanted(clone, batch, hints)) {
			hints = false;
			cond_resched();
			continue;
		}
		hints = true;
		if (!hydration_may_run(clone))
			return;
		/*
		 * While writes cut the uncopied space, the pass waits for
		 * room for half a batch (see clone_batch_room()). Not
		 * otherwise: a slow source wants every region of the
		 * threshold in flight, and the copies asked for above are
		 * what a user waits for.
		 */
		if (writes_cutting(clone) &&
		    !clone_batch_room(threshold, n, full,
				      atomic_read(&clone->bg_in_flight)))
			return;
		/* Reads of uncopied regions wait behind the pass's copies? */
		if (!share_allows(clone, &small))
			return;
		if (small)
			batch = min_t(unsigned int, batch,
				      max(CLONE_SHARE_PIECE_SECTORS >>
					  clone->region_shift, 1U));

		region = dm_clone_find_next_unhydrated_region(clone->cmd,
							      clone->hydration_offset);
		if (region >= clone->nr_regions) {
			/*
			 * End of a pass: start another once its copies are
			 * over (their failures decide the back-off). Copies
			 * for writes do not hold it back: steady writes
			 * would keep the regions skipped meanwhile waiting.
			 */
			if (wrapped || atomic_read(&clone->bg_in_flight) ||
			    dm_clone_is_hydration_done(clone->cmd))
				return;
			if (!start_new_pass(clone))
				return;
			wrapped = true;
			continue;
		}

		end = gather_batch(clone, region, batch, &leader);
		if (!leader) {
			/* In flight on demand, or no memory for now. */
			clone->hydration_offset = max(end, region + 1);
			cond_resched();
			continue;
		}
		clone->hydration_offset = end;
		leader->pass = true;
		atomic_inc(&clone->pass_jobs);
		start_copy(clone, leader);
		cond_resched();
	}
}

/* ---- Discards ---- */

/*
 * Mark regions [@first, @last) hydrated, leaving those in flight to their
 * hydration: marking them now would let new writes reach the destination
 * before the copy in flight overwrites them. Worker context.
 */
void clone_mark_discarded(struct clone *clone, unsigned long first,
			  unsigned long last)
{
	while (first < last) {
		unsigned long end = min(last, first + DISCARD_MARK_STEP);
		unsigned long r = first, e, busy;
		struct clone_hydration *hd;

		spin_lock_irq(&clone->lock);
		while (r < end) {
			e = min(end, group_end(clone, r));
			busy = __first_in_flight(clone, r, e, &hd);
			if (busy > r)
				dm_clone_set_regions_hydrated(clone->cmd, r,
							      busy - r);
			/* Past the hydration in flight, if one stopped us. */
			r = hd ? hd->region_nr + hd->nr_regions : e;
		}
		spin_unlock_irq(&clone->lock);
		first = end;
		cond_resched();
	}
}

/* ---- Setting up ---- */

static struct kmem_cache *hydration_cache;

int clone_hydration_module_init(void)
{
	hydration_cache = KMEM_CACHE(clone_hydration, 0);
	return hydration_cache ? 0 : -ENOMEM;
}

void clone_hydration_module_exit(void)
{
	kmem_cache_destroy(hydration_cache);
}

int clone_hydration_init(struct clone *clone)
{
	struct dm_target *ti = clone->ti;
	int r;

	clone->retry_backoff = RETRY_BACKOFF_MIN;
	spin_lock_init(&clone->share_lock);
	init_llist_head(&clone->keeps);
	INIT_WORK(&clone->keep_work, do_keep_work);
	atomic_set(&clone->keep_pages, 0);
	atomic_set(&clone->pass_jobs, 0);
	ratelimit_state_init(&clone->copy_fail_rs, COPY_FAIL_INTERVAL,
			     COPY_FAIL_BURST);
	/*
	 * No "callbacks suppressed" lines: the count is in each line. The
	 * flag defers that message to ratelimit_state_exit(), never called.
	 */
	ratelimit_set_flags(&clone->copy_fail_rs, RATELIMIT_MSG_ON_RELEASE);

	clone->hash = kvcalloc(1U << HASH_BITS_REGIONS, sizeof(*clone->hash),
			       GFP_KERNEL);
	if (!clone->hash) {
		ti->error = "Cannot allocate the hydration hash table";
		return -ENOMEM;
	}

	clone->prefetch.size = PREFETCH_RANGES;
	clone->prefetch.w = kvcalloc(PREFETCH_RANGES, sizeof(struct clone_want),
				     GFP_KERNEL);
	clone->read_hints.size = READ_HINTS;
	clone->read_hints.w = kcalloc(READ_HINTS, sizeof(struct clone_want),
				      GFP_KERNEL);
	if (!clone->prefetch.w || !clone->read_hints.w) {
		ti->error = "Cannot allocate the prefetch rings";
		return -ENOMEM;
	}

	r = mempool_init_slab_pool(&clone->hydration_pool, MIN_HYDRATIONS,
				   hydration_cache);
	if (r) {
		ti->error = "Cannot allocate the hydration pool";
		return r;
	}

	return clone_copier_init(&clone->copier, clone->wq,
				 clone->source_dev->bdev, clone->dest_dev->bdev,
				 &ti->error);
}

void clone_hydration_exit(struct clone *clone)
{
	clone_copier_exit(&clone->copier);
	mempool_exit(&clone->hydration_pool);
	kfree(clone->read_hints.w);
	kvfree(clone->prefetch.w);
	kvfree(clone->hash);
}
