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
 *  - a read of an unhydrated region is remapped to the source;
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
 * holding it (and maybe its neighbours, up to a chunk of HD_CHUNK_REGIONS)
 * sits in a hash table keyed by chunk, which is the region's lock (only
 * one hydration per region, writers wait on it); then hydrated in core
 * (its bit set, right after the destination write completed); then
 * hydrated on disk after the next commit. A background pass started by the
 * worker walks the bitmap and copies unhydrated regions in batches of up
 * to hydration_batch_size contiguous regions per copy job, keeping at
 * most hydration_threshold regions in flight. Copies go through the copy
 * engine (its own section below), which reuses its buffers. When a batch fails, its
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
 * marks a large discard in steps of DISCARD_COMMIT_REGIONS, committing
 * after each, so that no transaction grows with the device.
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
 * Lock order (outer first):
 *	commit_lock (mutex) -> metadata's lock (rw_semaphore)
 *	clone->lock (spinlock, irqsave) -> metadata's bitmap_lock (spinlock)
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "dm-clone-compat.h"
#include "dm-clone-metadata.h"
#include "dm-clone-region.h"

#define DM_MSG_PREFIX "clone"

/* Commit at least this often while regions get hydrated (jiffies). */
#define COMMIT_PERIOD			HZ
/*
 * Defaults of the tunables when the table gives none: background copy
 * jobs of DEFAULT_BATCH_BYTES each, DEFAULT_THRESHOLD_BYTES in flight at
 * most (bytes, converted to regions of the table's size, at least 1).
 */
#define DEFAULT_BATCH_BYTES		SZ_1M
#define DEFAULT_THRESHOLD_BYTES		SZ_32M
/*
 * Whatever the table says, never more than this many regions in flight
 * (bounds the memory of in-flight hydrations: about 100 bytes each).
 */
#define MAX_HYDRATIONS_IN_FLIGHT	(1024U * 1024U)
/* Hydration objects kept in reserve (count). */
#define MIN_HYDRATIONS			256
/* Buckets of the in-flight hydration hash table (log2). */
#define HASH_BITS_REGIONS		12
/* Regions marked per lock hold when a discard marks a range (count). */
#define DISCARD_MARK_CHUNK		4096
/*
 * A discard marks at most this many regions per metadata transaction
 * (count): a discard of a whole large device makes a series of bounded
 * commits, not one that rewrites the whole bitset at once (and needs
 * room for a second copy of it).
 */
#define DISCARD_COMMIT_REGIONS		BIT(20)
/* Back-off before retrying regions whose copy failed (jiffies). */
#define RETRY_BACKOFF_MIN		HZ
#define RETRY_BACKOFF_MAX		(60 * HZ)

/*
 * The copy engine: buffers of COPY_BUF_PAGES pages (COPY_BUF_SECTORS
 * sectors, the largest chunk a copy job moves at once), at most
 * COPY_MAX_BUFS per clone; when a buffer cannot be allocated, try again
 * after COPY_RETRY_DELAY (jiffies).
 */
#define COPY_BUF_PAGES			(SZ_1M / PAGE_SIZE)
#define COPY_BUF_SECTORS		((sector_t)SZ_1M >> SECTOR_SHIFT)
#define COPY_MAX_BUFS			64U
#define COPY_RETRY_DELAY		(HZ / 10)
/*
 * The copy window (see adapt_window()), when the user gave no
 * hydration_threshold: it starts at WINDOW_START chunks' worth of bytes; a
 * round lasts at least WINDOW_ROUND_NS and as many chunks as the window;
 * the window grows by half while chunks take under WINDOW_FREE percent of
 * the shortest round trip seen in the last WINDOW_EPOCH_NS or so; past
 * that, a larger window is kept when it copied at least WINDOW_GAIN
 * percent as fast, and tried again after WINDOW_HOLD rounds.
 */
#define WINDOW_START			4
#define WINDOW_ROUND_NS			(20 * NSEC_PER_MSEC)
#define WINDOW_FREE			150
#define WINDOW_GAIN			110
#define WINDOW_HOLD			8
#define WINDOW_EPOCH_NS			(10 * NSEC_PER_SEC)
/*
 * Hydrations in flight never cross a chunk of HD_CHUNK_REGIONS regions
 * (2^HD_CHUNK_SHIFT), the unit of the in-flight hash table.
 */
#define HD_CHUNK_SHIFT			8
#define HD_CHUNK_REGIONS		BIT(HD_CHUNK_SHIFT)
/*
 * The throttle: busy and total copy time are halved past THROTTLE_PERIOD;
 * a refused chunk is tried again after THROTTLE_WAIT, and started anyway
 * after THROTTLE_TRIES refusals in a row (jiffies, jiffies, count).
 */
#define THROTTLE_PERIOD			HZ
#define THROTTLE_WAIT			(HZ / 10)
#define THROTTLE_TRIES			10

/* Percentage of time the copy jobs may run (module parameter, 0-100). */
static unsigned int clone_throttle = 100;

static int clone_throttle_set(const char *val, const struct kernel_param *kp)
{
	u32 v;
	char buf[16];
	size_t len = strlen(val);

	/* Accept one trailing newline, as sysfs writes usually carry it. */
	if (len && val[len - 1] == '\n')
		len--;
	if (!len || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, val, len);
	buf[len] = '\0';
	if (!clone_parse_uint(buf, &v) || v > 100)
		return -EINVAL;
	WRITE_ONCE(clone_throttle, v);
	return 0;
}

static const struct kernel_param_ops clone_throttle_ops = {
	.set = clone_throttle_set,
	.get = param_get_uint,
};

module_param_cb(clone_hydration_throttle, &clone_throttle_ops,
		&clone_throttle, 0644);
MODULE_PARM_DESC(clone_hydration_throttle,
		 "Percentage of time the hydration copy jobs may run (0-100, default 100)");

enum clone_mode {
	CM_WRITE,		/* normal */
	CM_READ_ONLY,		/* a metadata operation failed */
	CM_FAIL,		/* the abort failed too */
};

/* Bits of clone->flags. */
enum {
	CLONE_HYDRATION_ENABLED,	/* background copying allowed */
	CLONE_DISCARD_PASSDOWN,		/* discards reach the destination */
	CLONE_RUNNING,			/* resumed: background copying may run */
	CLONE_DONE_EVENT_SENT,		/* "hydration complete" raised */
	CLONE_COPY_RELEASE,		/* complete: free the copy buffers */
	CLONE_THRESHOLD_SET,		/* hydration_threshold given: no window */
};

struct clone {
	struct dm_target *ti;
	struct dm_dev *metadata_dev;
	struct dm_dev *dest_dev;
	struct dm_dev *source_dev;

	sector_t region_size;		/* sectors, a power of two */
	unsigned int region_shift;
	unsigned long nr_regions;
	struct dm_clone_metadata *cmd;

	/* Constructor arguments from the region size on, for the table. */
	unsigned int nr_table_args;
	char **table_args;

	unsigned long flags;		/* atomic bit operations */
	enum clone_mode mode;		/* READ_ONCE/WRITE_ONCE; commit_lock */
	unsigned int hydration_threshold;	/* regions; READ_ONCE */
	unsigned int hydration_batch_size;	/* regions; READ_ONCE */

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work waker;

	/*
	 * Protects the bio lists, the hash table and nr_hashed. Taken with
	 * interrupts disabled (bio completions take it).
	 */
	spinlock_t lock;
	struct bio_list deferred_bios;		/* go to the destination */
	struct bio_list deferred_discards;	/* not processed yet */
	struct bio_list discards_done;		/* passed down, to mark */
	struct bio_list discards_marking;	/* the worker's, not locked */
	struct bio_list deferred_flushes;	/* empty flushes to commit */
	struct bio_list deferred_completions;	/* FUA writes to commit */
	struct hlist_head *hash;		/* hydrations in flight */
	unsigned long nr_hashed;

	/* Regions being hydrated (background and on demand). */
	atomic_t in_flight;
	wait_queue_head_t in_flight_wait;

	/* Worker only. */
	unsigned long hydration_offset;	/* where the background pass is */
	unsigned long retry_after;	/* jiffies, 0: no retry pending */
	unsigned long retry_backoff;	/* jiffies */
	atomic_t copy_errors;		/* failed copies, for the log */
	atomic_t pass_errors;		/* failed copies in this pass */

	/* Serialises commits and mode changes. */
	struct mutex commit_lock;

	mempool_t hydration_pool;

	/* The copy engine (see "Hydration: the copy engine"). */
	struct dm_io_client *io_client;
	struct work_struct copier;
	struct delayed_work copier_retry;
	/*
	 * Protects the job queues, the buffer queues and the buffer
	 * counts. Taken with interrupts disabled (I/O completions take it).
	 */
	spinlock_t copy_lock;
	struct list_head copy_urgent;	/* jobs of writes, first served */
	struct list_head copy_jobs;	/* background jobs */
	struct list_head copy_free;	/* idle buffers */
	struct list_head copy_read;	/* read done: to write */
	struct list_head copy_done;	/* written, or failed */
	unsigned int nr_bufs;		/* allocated (or being allocated) */
	unsigned int nr_free;		/* on copy_free */
	unsigned long copy_chunks;	/* chunks started; copy worker */
	unsigned long copy_chunks_seen;	/* copy_chunks at the last waker */

	/* The copy window (adapt_window()): the copy worker's. */
	unsigned int window;		/* in chunks of COPY_BUF_SECTORS */
	unsigned int window_before;	/* before the last growth */
	unsigned int window_hold;	/* rounds before growing again */
	bool window_growing;		/* the last change grew it */
	bool window_settle;		/* changed: do not judge this round */
	sector_t bg_sectors;		/* of background chunks in flight */
	unsigned int round_chunks;	/* chunks ended in this round */
	u64 round_sectors;		/* their sectors */
	u64 round_start_ns;
	u64 round_rtt_ns;		/* their round trips, summed */
	u64 last_rate;			/* of the last round, sectors/s */
	u64 base_ns;			/* shortest round trip lately */
	u64 epoch_min_ns;		/* shortest in this epoch */
	u64 epoch_start_ns;
};

/*
 * A region in flight. Background copies of contiguous regions are batched:
 * the first hydration of a batch leads it, the others hang off its list.
 */
struct clone_hydration {
	struct clone *clone;
	unsigned long region_nr;	/* the first */
	unsigned int nr_regions;	/* all in one hash chunk */
	struct hlist_node h;
	struct list_head batch;
	struct bio_list waiting;	/* bios waiting for these regions */
	bool overwrite;			/* hydrated by a whole-region write */

	/* A copy job's state, on its leader: the copy worker's. */
	struct list_head queue;		/* on copy_urgent or copy_jobs */
	unsigned long copy_first, copy_last;	/* regions [first, last) */
	sector_t copy_next, copy_end;	/* sectors still to start */
	unsigned int chunks;		/* in flight */
	bool urgent;			/* a write waits for it */
	bool failed, read_failed;	/* in this round */
	bool retrying;			/* region by region */
	unsigned long retry_region;
};

/* Per-bio data. */
struct clone_bio_data {
	unsigned int flags;
	struct clone_hydration *hd;	/* PB_OVERWRITE */
	unsigned long first, last;	/* PB_DISCARD: regions [first, last) */
};

enum {
	PB_OVERWRITE	= 1 << 0,	/* this bio hydrates pb->hd's region */
	PB_DISCARD	= 1 << 1,	/* mark pb's regions on completion */
	PB_COMMITTED	= 1 << 2,	/* completion was held for a commit */
};

static struct kmem_cache *hydration_cache;

/* ---- Helpers ---- */

static struct clone_bio_data *get_pb(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct clone_bio_data));
}

static const char *clone_device_name(struct clone *clone)
{
	return dm_table_device_name(clone->ti->table);
}

static enum clone_mode get_mode(struct clone *clone)
{
	return READ_ONCE(clone->mode);
}

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

static sector_t bio_target_sector(struct clone *clone, struct bio *bio)
{
	return dm_target_offset(clone->ti, bio->bi_iter.bi_sector);
}

static sector_t region_to_sector(struct clone *clone, unsigned long region)
{
	return (sector_t)region << clone->region_shift;
}

/* Region N is at sector N * region_size on both devices: no offsets. */
static void remap_to_source(struct clone *clone, struct bio *bio)
{
	bio_set_dev(bio, clone->source_dev->bdev);
	bio->bi_iter.bi_sector = bio_target_sector(clone, bio);
}

static void remap_to_dest(struct clone *clone, struct bio *bio)
{
	bio_set_dev(bio, clone->dest_dev->bdev);
	bio->bi_iter.bi_sector = bio_target_sector(clone, bio);
}

static void wake_worker(struct clone *clone)
{
	queue_work(clone->wq, &clone->worker);
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

static void complete_list(struct bio_list *bios, blk_status_t status)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		bio->bi_status = status;
		bio_endio(bio);
	}
}

/* ---- Metadata mode and commit ---- */

/*
 * The one path for metadata failures: abort the transaction (reloading the
 * bitmap from the last commit), go read-only, or fail if the abort fails,
 * and raise an event. Process context; caller holds commit_lock.
 */
static void __clone_metadata_error(struct clone *clone, const char *op, int r)
{
	enum clone_mode old = get_mode(clone), new = CM_READ_ONLY;

	lockdep_assert_held(&clone->commit_lock);

	DMERR("%s: metadata operation '%s' failed: error %d",
	      clone_device_name(clone), op, r);
	if (old == CM_FAIL)
		return;

	if (old == CM_WRITE) {
		WRITE_ONCE(clone->mode, CM_READ_ONLY);
		if (dm_clone_metadata_abort(clone->cmd))
			new = CM_FAIL;
	} else {
		new = CM_FAIL;
	}
	WRITE_ONCE(clone->mode, new);

	DMERR("%s: switching to %s mode", clone_device_name(clone),
	      new == CM_FAIL ? "fail" : "read-only");
	dm_table_event(clone->ti->table);
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
 * succeeded. Blocks; process context.
 */
static int clone_commit(struct clone *clone)
{
	int r = 0;

	mutex_lock(&clone->commit_lock);

	if (!dm_clone_changed_this_transaction(clone->cmd))
		goto out;

	if (get_mode(clone) != CM_WRITE) {
		r = -EIO;
		goto out;
	}

	r = dm_clone_metadata_pre_commit(clone->cmd);
	if (r) {
		__clone_metadata_error(clone, "pre-commit", r);
		goto out;
	}

	r = blkdev_issue_flush(clone->dest_dev->bdev);
	if (r) {
		DMERR_LIMIT("%s: flushing the destination failed: error %d",
			    clone_device_name(clone), r);
		goto out;
	}

	r = dm_clone_metadata_commit(clone->cmd);
	if (r)
		__clone_metadata_error(clone, "commit", r);
out:
	mutex_unlock(&clone->commit_lock);
	return r;
}

/* ---- Hydration: in-flight regions ---- */

/*
 * Hydrations in flight are hashed by the chunk of 2^HD_CHUNK_SHIFT regions
 * they lie in; one never crosses a chunk boundary, so the hydrations that
 * may hold a region are all in its chunk's bucket.
 */
static struct hlist_head *hash_bucket(struct clone *clone, unsigned long region)
{
	return &clone->hash[hash_long(region >> HD_CHUNK_SHIFT,
				      HASH_BITS_REGIONS)];
}

static unsigned long chunk_end(struct clone *clone, unsigned long region)
{
	unsigned long end = (region | (HD_CHUNK_REGIONS - 1)) + 1;

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
 * past @region's chunk.
 */
static unsigned long __first_in_flight(struct clone *clone,
				       unsigned long region, unsigned long end)
{
	struct clone_hydration *hd;
	unsigned long first = end;

	lockdep_assert_held(&clone->lock);
	hlist_for_each_entry(hd, hash_bucket(clone, region), h)
		if (hd->region_nr < first &&
		    hd->region_nr + hd->nr_regions > region)
			first = max(hd->region_nr, region);
	return first;
}

static void __insert_hydration(struct clone *clone, struct clone_hydration *hd)
{
	lockdep_assert_held(&clone->lock);
	hlist_add_head(&hd->h, hash_bucket(clone, hd->region_nr));
	clone->nr_hashed++;
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
	INIT_LIST_HEAD(&hd->queue);
	bio_list_init(&hd->waiting);
	return hd;
}

/*
 * End one hydration: take it out of the hash table and hand its waiting
 * bios on, to the worker (which sends them to the destination) when their
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
	hlist_del(&hd->h);
	clone->nr_hashed--;
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
 * one), end its hydrations. Any context.
 */
static void end_hydrations(struct clone *clone, struct clone_hydration *leader,
			   bool mark)
{
	struct clone_hydration *hd, *tmp;
	unsigned int n = leader->nr_regions;

	/* On failure the region stays unhydrated (read-only now). */
	if (mark)
		dm_clone_set_regions_hydrated(clone->cmd, leader->region_nr,
					      leader->nr_regions);
	list_for_each_entry_safe(hd, tmp, &leader->batch, batch) {
		list_del(&hd->batch);
		if (mark)
			dm_clone_set_regions_hydrated(clone->cmd, hd->region_nr,
						      hd->nr_regions);
		n += hd->nr_regions;
		end_one_hydration(hd);
	}
	end_one_hydration(leader);

	if (atomic_sub_and_test(n, &clone->in_flight))
		wake_up(&clone->in_flight_wait);
	wake_worker(clone);
}

/* ---- Hydration: the copy engine ---- */

/*
 * Every copy goes through the copy engine. A job is a range of sectors to
 * copy from the source to the destination (a batch of contiguous regions,
 * or the one region a write waits for); it is copied in chunks of at most
 * COPY_BUF_SECTORS, each read into one of the clone's copy buffers and
 * written out from it. Buffers are allocated as jobs need them, up to a
 * number that follows hydration_threshold (copy_buf_limit()), and reused
 * while hydration goes on, so that pages are not allocated (and zeroed)
 * for every copy. The last buffer allowed is left to the jobs of writes,
 * which start before any background job; one buffer, allocated with the
 * clone, is kept until hydration completes, so copies never depend on
 * memory allocation to move on.
 *
 * The copy worker starts reads; completions (any context) queue their
 * buffer back to it, to start the write, or to end the chunk. A job whose
 * copy failed and that spans more than one region is copied again region
 * by region, so that one unreadable region does not keep its neighbours
 * from hydrating.
 *
 * A job's copy state is the copy worker's alone once the job is queued;
 * copy_lock protects the queues and the buffer counts.
 */

struct clone_copy_buf {
	struct list_head list;		/* copy_free, copy_read or copy_done */
	struct clone_hydration *job;
	sector_t sector;
	sector_t nr_sectors;
	bool writing;			/* the read is done */
	bool failed;
	u64 start_ns;			/* when the read was sent */
	struct page_list *pl;		/* COPY_BUF_PAGES pages, chained */
};

static void free_copy_buf(struct clone_copy_buf *buf)
{
	unsigned int i;

	for (i = 0; i < COPY_BUF_PAGES && buf->pl[i].page; i++)
		__free_page(buf->pl[i].page);
	kfree(buf->pl);
	kfree(buf);
}

static struct clone_copy_buf *alloc_copy_buf(gfp_t gfp)
{
	struct clone_copy_buf *buf = kzalloc(sizeof(*buf), gfp);
	unsigned int i;

	if (!buf)
		return NULL;
	buf->pl = kcalloc(COPY_BUF_PAGES, sizeof(*buf->pl), gfp);
	if (!buf->pl) {
		kfree(buf);
		return NULL;
	}
	for (i = 0; i < COPY_BUF_PAGES; i++) {
		buf->pl[i].page = alloc_page(gfp);
		if (!buf->pl[i].page) {
			free_copy_buf(buf);
			return NULL;
		}
		if (i)
			buf->pl[i - 1].next = &buf->pl[i];
	}
	return buf;
}

/*
 * Buffers the engine may hold now: enough for hydration_threshold regions
 * in flight, plus the one left to writes' jobs, at most COPY_MAX_BUFS; one
 * once hydration is complete (no copy should start then).
 */
static unsigned int copy_buf_limit(struct clone *clone)
{
	u64 sectors = (u64)READ_ONCE(clone->hydration_threshold) <<
		      clone->region_shift;

	if (test_bit(CLONE_COPY_RELEASE, &clone->flags))
		return 1;	/* none kept idle: see release_idle_copy_bufs() */
	return min_t(u64, DIV_ROUND_UP_ULL(sectors, COPY_BUF_SECTORS),
		     COPY_MAX_BUFS - 1) + 1;
}

/* Give a buffer back: kept while under the limit, else freed. */
static void put_copy_buf(struct clone *clone, struct clone_copy_buf *buf)
{
	spin_lock_irq(&clone->copy_lock);
	if (clone->nr_bufs > copy_buf_limit(clone)) {
		clone->nr_bufs--;
	} else {
		list_add(&buf->list, &clone->copy_free);
		clone->nr_free++;
		buf = NULL;
	}
	spin_unlock_irq(&clone->copy_lock);
	if (buf)
		free_copy_buf(buf);
}

/*
 * Free the idle buffers beyond @keep. Process context; the copy worker
 * may run meanwhile.
 */
static void trim_copy_bufs(struct clone *clone, unsigned int keep)
{
	struct clone_copy_buf *buf, *tmp;
	LIST_HEAD(victims);

	spin_lock_irq(&clone->copy_lock);
	list_for_each_entry_safe(buf, tmp, &clone->copy_free, list) {
		if (clone->nr_bufs <= keep)
			break;
		list_move(&buf->list, &victims);
		clone->nr_bufs--;
		clone->nr_free--;
	}
	spin_unlock_irq(&clone->copy_lock);

	list_for_each_entry_safe(buf, tmp, &victims, list)
		free_copy_buf(buf);
}

/*
 * May another background chunk start? Not past the buffers allowed (the
 * last one is for writes' jobs), nor, unless the user set
 * hydration_threshold, past the copy window. Caller holds copy_lock.
 */
static bool __background_may_start(struct clone *clone, unsigned int limit)
{
	lockdep_assert_held(&clone->copy_lock);
	if (clone->nr_bufs - clone->nr_free + 1 >= limit)
		return false;
	return test_bit(CLONE_THRESHOLD_SET, &clone->flags) ||
	       clone->bg_sectors < (sector_t)READ_ONCE(clone->window) *
				   COPY_BUF_SECTORS;
}

/*
 * The copy window: how many bytes of background chunks may be in flight
 * when the user gave no hydration_threshold. A few chunks keep a local
 * disk busy, and more only make them wait for each other, and the writes
 * waiting for regions in flight wait with them; a remote source needs
 * many in flight to hide its latency. So, each round (at least
 * WINDOW_ROUND_NS and as many chunks as the window): while chunks take
 * little more than the shortest round trip seen lately (under WINDOW_FREE
 * percent of it), they do not wait for each other and the window grows by
 * half; past that, the window climbs the copy rate: it grows by a quarter
 * (at least one chunk) while that makes copying at least WINDOW_GAIN
 * percent as fast, else goes back to what it was and holds for
 * WINDOW_HOLD rounds before trying again. A round right after a change is
 * not judged: its chunks started before. Copy worker.
 */
static void adapt_window(struct clone *clone, sector_t sectors, u64 rtt)
{
	unsigned int w = clone->window, limit = copy_buf_limit(clone) - 1;
	u64 now = ktime_get_ns(), elapsed, rate, avg;

	rtt = max_t(u64, rtt, 1);
	if (now - clone->epoch_start_ns > WINDOW_EPOCH_NS) {
		clone->base_ns = clone->epoch_min_ns ?: rtt;
		clone->epoch_min_ns = 0;
		clone->epoch_start_ns = now;
	}
	clone->epoch_min_ns = min(clone->epoch_min_ns ?: rtt, rtt);
	clone->base_ns = min(clone->base_ns ?: rtt, rtt);

	elapsed = now - clone->round_start_ns;
	if (elapsed > WINDOW_EPOCH_NS) {
		/* The first chunk after a pause: start a round. */
		clone->round_start_ns = now;
		clone->round_chunks = 0;
		clone->round_sectors = 0;
		clone->round_rtt_ns = 0;
		return;
	}
	clone->round_rtt_ns += rtt;
	clone->round_sectors += sectors;
	if (++clone->round_chunks < w || elapsed < WINDOW_ROUND_NS)
		return;

	rate = div64_u64(clone->round_sectors * NSEC_PER_SEC, elapsed);
	avg = div_u64(clone->round_rtt_ns, clone->round_chunks);
	if (clone->window_settle) {
		clone->window_settle = false;
	} else {
		if (avg * 100 < clone->base_ns * WINDOW_FREE) {
			clone->window_growing = true;
			clone->window_before = w;
			w += max(w / 2, 1U);
		} else if (clone->window_growing) {
			if (rate * 100 >= clone->last_rate * WINDOW_GAIN) {
				clone->window_before = w;
				w += max(w / 4, 1U);
			} else {
				w = clone->window_before;
				clone->window_growing = false;
				clone->window_hold = WINDOW_HOLD;
			}
		} else if (!clone->window_hold || !--clone->window_hold) {
			clone->window_growing = true;
			clone->window_before = w;
			w += max(w / 4, 1U);
		}
		w = clamp(w, 1U, max(limit, 1U));
		clone->window_settle = w != clone->window;
		WRITE_ONCE(clone->window, w);
		clone->last_rate = rate;
	}
	clone->round_start_ns = now;
	clone->round_chunks = 0;
	clone->round_sectors = 0;
	clone->round_rtt_ns = 0;
}

/*
 * Take a buffer for a chunk of a write's job (@urgent) or a background
 * job: a free one, or a new one while under the limit, of which background
 * jobs leave the last one. NULL if none may be had now. Copy worker.
 */
static struct clone_copy_buf *get_copy_buf(struct clone *clone, bool urgent)
{
	unsigned int limit = copy_buf_limit(clone);
	struct clone_copy_buf *buf;

	spin_lock_irq(&clone->copy_lock);
	if (!urgent && !__background_may_start(clone, limit))
		goto none;
	buf = list_first_entry_or_null(&clone->copy_free,
				       struct clone_copy_buf, list);
	if (buf) {
		list_del(&buf->list);
		clone->nr_free--;
		spin_unlock_irq(&clone->copy_lock);
		return buf;
	}
	if (clone->nr_bufs >= limit)
		goto none;
	clone->nr_bufs++;	/* the slot of the one allocated below */
	spin_unlock_irq(&clone->copy_lock);

	buf = alloc_copy_buf(GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (!buf) {
		spin_lock_irq(&clone->copy_lock);
		clone->nr_bufs--;
		spin_unlock_irq(&clone->copy_lock);
		/* Nothing may be in flight to wake us up: try again later. */
		queue_delayed_work(clone->wq, &clone->copier_retry,
				   COPY_RETRY_DELAY);
	}
	return buf;
none:
	spin_unlock_irq(&clone->copy_lock);
	return NULL;
}

static void kick_copier(struct clone *clone)
{
	queue_work(clone->wq, &clone->copier);
}

/* Queue @job to copy sectors [@start, @end). Any context. */
static void queue_copy(struct clone *clone, struct clone_hydration *job,
		       sector_t start, sector_t end)
{
	unsigned long flags;

	job->copy_next = start;
	job->copy_end = end;
	job->failed = false;
	job->read_failed = false;
	spin_lock_irqsave(&clone->copy_lock, flags);
	list_add_tail(&job->queue, job->urgent ? &clone->copy_urgent :
						 &clone->copy_jobs);
	spin_unlock_irqrestore(&clone->copy_lock, flags);
	kick_copier(clone);
}

/* Copy the regions of @job (a leader) and of its batch. Any context. */
static void start_copy(struct clone *clone, struct clone_hydration *job)
{
	struct clone_hydration *last;

	last = list_empty(&job->batch) ? job :
	       list_last_entry(&job->batch, struct clone_hydration, batch);
	job->copy_first = job->region_nr;
	job->copy_last = last->region_nr + last->nr_regions;
	queue_copy(clone, job, region_to_sector(clone, job->copy_first),
		   min(region_to_sector(clone, job->copy_last), clone->ti->len));
}

/* Copy region @job->retry_region alone. Copy worker. */
static void start_region_copy(struct clone *clone, struct clone_hydration *job)
{
	unsigned long r = job->retry_region;

	queue_copy(clone, job, region_to_sector(clone, r),
		   min(region_to_sector(clone, r + 1), clone->ti->len));
}

static void copy_io_done(unsigned long error, void *context)
{
	struct clone_copy_buf *buf = context;
	struct clone *clone = buf->job->clone;
	unsigned long flags;

	spin_lock_irqsave(&clone->copy_lock, flags);
	if (error)
		buf->failed = true;
	list_add_tail(&buf->list, buf->failed || buf->writing ?
		      &clone->copy_done : &clone->copy_read);
	spin_unlock_irqrestore(&clone->copy_lock, flags);
	kick_copier(clone);
}

/* Read the chunk into @buf, or write it out. Copy worker. */
static void copy_submit(struct clone *clone, struct clone_copy_buf *buf)
{
	struct dm_io_request req = {
		.bi_opf = buf->writing ? REQ_OP_WRITE : REQ_OP_READ,
		.mem.type = DM_IO_PAGE_LIST,
		.mem.ptr.pl = buf->pl,
		.notify.fn = copy_io_done,
		.notify.context = buf,
		.client = clone->io_client,
	};
	struct dm_io_region where = {
		.bdev = buf->writing ? clone->dest_dev->bdev :
				       clone->source_dev->bdev,
		.sector = buf->sector,
		.count = buf->nr_sectors,
	};

	if (clone_dm_io_async(&req, &where))
		copy_io_done(1, buf);
}

/* ---- The throttle (module parameter clone_hydration_throttle) ---- */

/*
 * Copy time is accounted over all clones: busy is the time during which
 * any chunk was in flight, total the time since accounting began, both
 * halved whenever total passes THROTTLE_PERIOD. With a throttle below 100,
 * a chunk starts only while busy is within that percentage of total;
 * otherwise the copy worker tries again after THROTTLE_WAIT, and starts
 * one anyway after THROTTLE_TRIES refusals in a row (so that 0 is slow,
 * not stuck).
 */
static DEFINE_SPINLOCK(throttle_lock);
static struct {
	unsigned long last;		/* jiffies of the last update */
	unsigned long busy, total;	/* jiffies */
	unsigned int active;		/* chunks in flight */
	unsigned int refused;		/* refusals in a row */
} throttle;				/* throttle_lock */

static void __throttle_update(void)
{
	unsigned long now = jiffies, d = now - throttle.last;

	lockdep_assert_held(&throttle_lock);
	throttle.last = now;
	throttle.total += d;
	if (throttle.active)
		throttle.busy += d;
	if (throttle.total > THROTTLE_PERIOD) {
		throttle.total /= 2;
		throttle.busy /= 2;
	}
}

/* May a chunk start now? If so, it counts as in flight. */
static bool throttle_start(void)
{
	unsigned int pct = READ_ONCE(clone_throttle);
	bool ok = true;

	if (pct >= 100) {
		spin_lock_irq(&throttle_lock);
		throttle.active++;
		spin_unlock_irq(&throttle_lock);
		return true;
	}

	spin_lock_irq(&throttle_lock);
	__throttle_update();
	if (throttle.busy * 100 > throttle.total * pct &&
	    ++throttle.refused < THROTTLE_TRIES)
		ok = false;
	if (ok) {
		throttle.refused = 0;
		throttle.active++;
	}
	spin_unlock_irq(&throttle_lock);
	return ok;
}

static void throttle_end(void)
{
	spin_lock_irq(&throttle_lock);
	if (READ_ONCE(clone_throttle) < 100)
		__throttle_update();
	throttle.active--;
	spin_unlock_irq(&throttle_lock);
}

/* ---- The copy worker ---- */

/* A region's copy failed: count it, say so (rate-limited). */
static void copy_failed(struct clone *clone, unsigned long region,
			bool read_failed)
{
	atomic_inc(&clone->copy_errors);
	atomic_inc(&clone->pass_errors);
	DMERR_LIMIT("%s: copying region %lu failed (%s error); failed copies so far: %d",
		    clone_device_name(clone), region,
		    read_failed ? "source read" : "destination write",
		    atomic_read(&clone->copy_errors));
}

/* The last chunk of @job is over. Copy worker. */
static void copy_job_done(struct clone *clone, struct clone_hydration *job)
{
	if (!job->retrying) {
		if (!job->failed) {
			end_hydrations(clone, job, true);
			return;
		}
		if (job->copy_last - job->copy_first > 1) {
			job->retrying = true;
			job->retry_region = job->copy_first;
			start_region_copy(clone, job);
			return;
		}
		copy_failed(clone, job->copy_first, job->read_failed);
		end_hydrations(clone, job, false);
		return;
	}

	/* Region by region: mark each that made it. */
	if (job->failed)
		copy_failed(clone, job->retry_region, job->read_failed);
	else
		dm_clone_set_regions_hydrated(clone->cmd, job->retry_region, 1);
	if (++job->retry_region < job->copy_last) {
		start_region_copy(clone, job);
		return;
	}
	end_hydrations(clone, job, false);
}

/* A chunk's write is done, or it failed. Copy worker. */
static void copy_chunk_done(struct clone *clone, struct clone_copy_buf *buf)
{
	struct clone_hydration *job = buf->job;

	throttle_end();
	if (!job->urgent) {
		spin_lock_irq(&clone->copy_lock);
		clone->bg_sectors -= buf->nr_sectors;
		spin_unlock_irq(&clone->copy_lock);
		adapt_window(clone, buf->nr_sectors,
			     ktime_get_ns() - buf->start_ns);
	}
	if (buf->failed) {
		job->failed = true;
		if (!buf->writing)
			job->read_failed = true;
	}
	put_copy_buf(clone, buf);
	if (!--job->chunks && job->copy_next >= job->copy_end)
		copy_job_done(clone, job);
}

/* Start chunks while jobs wait and buffers may be had. Copy worker. */
static void start_chunks(struct clone *clone)
{
	struct clone_hydration *job;
	struct clone_copy_buf *buf;
	bool urgent;

	for (;;) {
		spin_lock_irq(&clone->copy_lock);
		job = list_first_entry_or_null(&clone->copy_urgent,
					       struct clone_hydration, queue);
		urgent = job;
		if (!job)
			job = list_first_entry_or_null(&clone->copy_jobs,
						       struct clone_hydration,
						       queue);
		spin_unlock_irq(&clone->copy_lock);
		if (!job)
			return;

		buf = get_copy_buf(clone, urgent);
		if (!buf)
			return;
		if (!throttle_start()) {
			put_copy_buf(clone, buf);
			queue_delayed_work(clone->wq, &clone->copier_retry,
					   THROTTLE_WAIT);
			return;
		}

		buf->job = job;
		buf->sector = job->copy_next;
		buf->nr_sectors = min_t(sector_t, COPY_BUF_SECTORS,
					job->copy_end - job->copy_next);
		buf->writing = false;
		buf->failed = false;
		job->copy_next += buf->nr_sectors;
		job->chunks++;
		spin_lock_irq(&clone->copy_lock);
		if (!urgent)
			clone->bg_sectors += buf->nr_sectors;
		if (job->copy_next >= job->copy_end)
			list_del_init(&job->queue);
		spin_unlock_irq(&clone->copy_lock);
		clone->copy_chunks++;
		buf->start_ns = ktime_get_ns();
		copy_submit(clone, buf);
		cond_resched();
	}
}

static void do_copier(struct work_struct *ws)
{
	struct clone *clone = container_of(ws, struct clone, copier);
	struct clone_copy_buf *buf, *tmp;
	LIST_HEAD(read);
	LIST_HEAD(done);

	spin_lock_irq(&clone->copy_lock);
	list_splice_init(&clone->copy_read, &read);
	list_splice_init(&clone->copy_done, &done);
	spin_unlock_irq(&clone->copy_lock);

	list_for_each_entry_safe(buf, tmp, &read, list) {
		list_del(&buf->list);
		buf->writing = true;
		copy_submit(clone, buf);
	}
	list_for_each_entry_safe(buf, tmp, &done, list) {
		list_del(&buf->list);
		copy_chunk_done(clone, buf);
	}
	start_chunks(clone);
}

static void do_copier_retry(struct work_struct *ws)
{
	struct clone *clone = container_of(to_delayed_work(ws), struct clone,
					   copier_retry);

	kick_copier(clone);
}

/*
 * Once a copy period (COMMIT_PERIOD) passed without a chunk started, free
 * the idle buffers but the one kept; all of them once hydration is
 * complete. Worker context (the waker).
 */
static void release_idle_copy_bufs(struct clone *clone)
{
	unsigned long chunks = READ_ONCE(clone->copy_chunks);

	if (test_bit(CLONE_COPY_RELEASE, &clone->flags)) {
		trim_copy_bufs(clone, 0);
		return;
	}
	if (chunks == clone->copy_chunks_seen)
		trim_copy_bufs(clone, 1);
	clone->copy_chunks_seen = chunks;
}

/*
 * A write to an unhydrated region: join the region's hydration, or start
 * one. Returns a DM_MAPIO_* value. Process context (may block to
 * allocate).
 */
static int hydrate_for_write(struct clone *clone, struct bio *bio,
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
		new->overwrite = true;
		pb->flags |= PB_OVERWRITE;
		pb->hd = new;
	} else {
		bio_list_add(&new->waiting, bio);
	}
	spin_unlock_irq(&clone->lock);

	if (whole) {
		remap_to_dest(clone, bio);
		return DM_MAPIO_REMAPPED;
	}

	new->urgent = true;
	start_copy(clone, new);
	return DM_MAPIO_SUBMITTED;
}

static bool hydration_may_run(struct clone *clone)
{
	return test_bit(CLONE_HYDRATION_ENABLED, &clone->flags) &&
	       test_bit(CLONE_RUNNING, &clone->flags) &&
	       get_mode(clone) == CM_WRITE;
}

/*
 * Gather up to @max contiguous unhydrated regions from @region that are
 * not in flight into one batch: one hydration per chunk of the hash table
 * it touches. Returns the batch size (0: @region is in flight or hydrated,
 * or no memory). Worker context.
 */
static unsigned int gather_batch(struct clone *clone, unsigned long region,
				 unsigned int max,
				 struct clone_hydration **leaderp)
{
	struct clone_hydration *leader = NULL, *hd;
	unsigned long r = region, end, e;
	unsigned int n = 0;

	while (n < max && r < clone->nr_regions) {
		end = min(chunk_end(clone, r), r + (max - n));

		spin_lock_irq(&clone->lock);
		end = __first_in_flight(clone, r, end);
		for (e = r; e < end; e++)
			if (dm_clone_is_region_hydrated(clone->cmd, e))
				break;
		hd = e > r ? alloc_hydration(clone, r, e - r,
					     GFP_NOWAIT | __GFP_NOWARN) : NULL;
		if (hd) {
			__insert_hydration(clone, hd);
			atomic_add(e - r, &clone->in_flight);
		}
		spin_unlock_irq(&clone->lock);
		if (!hd)
			break;

		if (leader)
			list_add_tail(&hd->batch, &leader->batch);
		else
			leader = hd;
		n += e - r;
		if (e < chunk_end(clone, r))
			break;	/* stopped at a hydrated or busy region */
		r = e;
	}

	*leaderp = leader;
	return n;
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
			clone->retry_after = jiffies + clone->retry_backoff;
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
		clone->retry_after = 0;
	} else {
		clone->retry_backoff = RETRY_BACKOFF_MIN;
	}

	clone->hydration_offset = 0;
	return true;
}

/*
 * Regions the background pass may have in flight: hydration_threshold,
 * and without one from the user, what the copy window can move plus one
 * chunk's worth waiting (a region waits for its copy: no deeper queue).
 */
static unsigned int background_threshold(struct clone *clone)
{
	unsigned int t = min(READ_ONCE(clone->hydration_threshold),
			     MAX_HYDRATIONS_IN_FLIGHT);
	u64 w;

	if (test_bit(CLONE_THRESHOLD_SET, &clone->flags))
		return t;
	w = ((u64)READ_ONCE(clone->window) + 1) * COPY_BUF_SECTORS >>
	    clone->region_shift;
	return min_t(u64, t, max_t(u64, w, 1));
}

/*
 * Start background copies until hydration_threshold regions are in
 * flight. A pass walks the bitmap once from region 0; regions whose copy
 * failed are retried by the next pass after a back-off. Worker context.
 */
static void do_background_hydration(struct clone *clone)
{
	struct clone_hydration *leader;
	unsigned int threshold, batch, n;
	unsigned long region;
	bool wrapped = false;

	while (hydration_may_run(clone)) {
		threshold = background_threshold(clone);
		batch = max(READ_ONCE(clone->hydration_batch_size), 1U);
		n = atomic_read(&clone->in_flight);
		if (n >= threshold)
			return;
		batch = min(batch, threshold - n);

		region = dm_clone_find_next_unhydrated_region(clone->cmd,
							      clone->hydration_offset);
		if (region >= clone->nr_regions) {
			/* End of a pass: start another once it is all done. */
			if (wrapped || atomic_read(&clone->in_flight) ||
			    dm_clone_is_hydration_done(clone->cmd))
				return;
			if (!start_new_pass(clone))
				return;
			wrapped = true;
			continue;
		}

		n = gather_batch(clone, region, batch, &leader);
		if (!n) {
			/* In flight on demand, or no memory for now. */
			clone->hydration_offset = region + 1;
			continue;
		}
		clone->hydration_offset = region + n;
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
static void mark_discarded(struct clone *clone, unsigned long first,
			   unsigned long last)
{
	while (first < last) {
		unsigned long end = min(last, first + DISCARD_MARK_CHUNK);
		unsigned long r = first, e, busy;

		spin_lock_irq(&clone->lock);
		while (r < end) {
			e = min(end, chunk_end(clone, r));
			busy = __first_in_flight(clone, r, e);
			if (busy > r)
				dm_clone_set_regions_hydrated(clone->cmd, r,
							      busy - r);
			if (busy < e) {
				struct clone_hydration *hd;

				hd = __find_hydration(clone, busy);
				r = hd->region_nr + hd->nr_regions;
			} else {
				r = e;
			}
		}
		spin_unlock_irq(&clone->lock);
		first = end;
		cond_resched();
	}
}

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
	struct clone_bio_data *pb;
	struct bio_list bios;
	struct bio *bio;

	take_list(clone, &clone->discards_done, &bios);
	bio_list_merge(&bios, &clone->discards_marking);
	bio_list_init(&clone->discards_marking);
	while ((bio = bio_list_pop(&bios))) {
		unsigned long end;

		pb = get_pb(bio);
		if (bio->bi_status || get_mode(clone) != CM_WRITE) {
			bio_endio(bio);
			continue;
		}
		end = min(pb->last, pb->first + DISCARD_COMMIT_REGIONS);
		mark_discarded(clone, pb->first, end);
		pb->first = end;
		if (end == pb->last) {
			bio_endio(bio);
			continue;
		}
		/*
		 * More to mark: commit this step, and go on with the
		 * next at the next round of the worker, after the
		 * flushes waiting.
		 */
		clone_commit(clone);
		bio_list_add(&clone->discards_marking, bio);
		wake_worker(clone);
	}

	take_list(clone, &clone->deferred_discards, &bios);
	while ((bio = bio_list_pop(&bios)))
		process_discard(clone, bio);
}

/* Commit for the flushes and FUA writes waiting, then complete them. */
static void process_flushes(struct clone *clone)
{
	struct bio_list flushes, fua;
	blk_status_t status;
	struct bio *bio;
	bool committed;

	take_list(clone, &clone->deferred_flushes, &flushes);
	take_list(clone, &clone->deferred_completions, &fua);
	if (bio_list_empty(&flushes) && bio_list_empty(&fua))
		return;

	committed = dm_clone_changed_this_transaction(clone->cmd);
	status = errno_to_blk_status(clone_commit(clone));

	/* A commit flushed the destination; else flushes go down as they are. */
	while ((bio = bio_list_pop(&flushes))) {
		if (status || committed) {
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
	set_bit(CLONE_COPY_RELEASE, &clone->flags);
	trim_copy_bufs(clone, 0);
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
	do_background_hydration(clone);
	check_hydration_done(clone);
}

/* Periodic commit, and a nudge to the background pass. */
static void do_waker(struct work_struct *ws)
{
	struct clone *clone = container_of(to_delayed_work(ws), struct clone,
					   waker);

	clone_commit(clone);
	if (dm_clone_is_hydration_done(clone->cmd)) {
		dm_clone_metadata_release_bitmap(clone->cmd);
		set_bit(CLONE_COPY_RELEASE, &clone->flags);
	}
	release_idle_copy_bufs(clone);
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
		return DM_MAPIO_REMAPPED;
	}

	if (get_mode(clone) != CM_WRITE)
		return DM_MAPIO_KILL;

	return hydrate_for_write(clone, bio, region);
}

static int clone_end_io(struct dm_target *ti, struct bio *bio,
			blk_status_t *error)
{
	struct clone *clone = ti->private;
	struct clone_bio_data *pb = get_pb(bio);

	if (pb->flags & PB_COMMITTED)
		return DM_ENDIO_DONE;

	if (pb->flags & PB_OVERWRITE) {
		pb->flags &= ~PB_OVERWRITE;
		end_hydrations(clone, pb->hd, !*error);
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
	bool no_hydration, no_passdown;

	switch (type) {
	case STATUSTYPE_INFO:
		if (get_mode(clone) == CM_FAIL) {
			DMEMIT("Fail");
			break;
		}

		if (!(status_flags & CLONE_STATUS_NOFLUSH_FLAG) && !dm_suspended(ti))
			clone_commit(clone);

		if (dm_clone_get_metadata_usage(clone->cmd, &used, &total)) {
			DMEMIT("Fail");
			break;
		}

		no_hydration = !test_bit(CLONE_HYDRATION_ENABLED, &clone->flags);
		no_passdown = !test_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
		nr_features = no_hydration + no_passdown;

		DMEMIT("%u %llu/%llu %llu %lu/%lu %d %u%s%s",
		       DM_CLONE_METADATA_BLOCK_SIZE, used, total,
		       (unsigned long long)clone->region_size,
		       dm_clone_nr_of_hydrated_regions(clone->cmd),
		       clone->nr_regions, atomic_read(&clone->in_flight),
		       nr_features, no_hydration ? " no_hydration" : "",
		       no_passdown ? " no_discard_passdown" : "");
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

/* "<tunable> <value>": a decimal unsigned 32-bit value, else nothing changes. */
static int set_tunable(struct clone *clone, char **argv, unsigned int *tunable)
{
	u32 value;

	if (!clone_parse_uint(argv[1], &value)) {
		DMERR("%s: invalid %s '%s'", clone_device_name(clone), argv[0],
		      argv[1]);
		return -EINVAL;
	}
	WRITE_ONCE(*tunable, value);
	wake_worker(clone);
	return 0;
}

static int clone_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct clone *clone = ti->private;
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
		r = set_tunable(clone, argv, &clone->hydration_threshold);
		if (!r)
			set_bit(CLONE_THRESHOLD_SET, &clone->flags);
		return r;
	}

	if (argc == 2 && !strcasecmp(argv[0], "hydration_batch_size"))
		return set_tunable(clone, argv, &clone->hydration_batch_size);

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
	/* dm core waited for user bios; now the background copies. */
	wait_event(clone->in_flight_wait, !atomic_read(&clone->in_flight));
	cancel_delayed_work_sync(&clone->copier_retry);
	flush_workqueue(clone->wq);
	clone_commit(clone);
}

static int clone_preresume(struct dm_target *ti)
{
	struct clone *clone = ti->private;
	bool reloaded;
	int r;

	/* An older table of this device may have committed since our load. */
	if (get_mode(clone) == CM_WRITE &&
	    !dm_clone_changed_this_transaction(clone->cmd)) {
		r = dm_clone_metadata_refresh(clone->cmd, &reloaded);
		if (r) {
			DMERR("%s: cannot re-read the metadata: error %d",
			      clone_device_name(clone), r);
			clone_metadata_error(clone, "refresh", r);
			return r;
		}
		if (reloaded)
			clone->hydration_offset = 0;
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
	limits->discard_alignment = 0;
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

static int parse_features(struct clone *clone, struct dm_arg_set *as)
{
	static const struct dm_arg arg = {
		0, 2, "Invalid number of feature arguments (0 to 2)"
	};
	struct dm_target *ti = clone->ti;
	unsigned int argc;
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
		} else if (!strcasecmp(word, "no_discard_passdown")) {
			clear_bit(CLONE_DISCARD_PASSDOWN, &clone->flags);
		} else {
			ti->error = "Unknown feature (valid: no_hydration, no_discard_passdown)";
			return -EINVAL;
		}
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
			clone->hydration_threshold = v;
			set_bit(CLONE_THRESHOLD_SET, &clone->flags);
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
	clone->hydration_threshold =
		max_t(u64, clone->hydration_batch_size,
		      DEFAULT_THRESHOLD_BYTES / region_bytes);
}

static int create_runtime(struct clone *clone)
{
	struct dm_target *ti = clone->ti;
	struct clone_copy_buf *buf;
	int r;

	clone->hash = kvcalloc(1U << HASH_BITS_REGIONS, sizeof(*clone->hash),
			       GFP_KERNEL);
	if (!clone->hash) {
		ti->error = "Cannot allocate the hydration hash table";
		return -ENOMEM;
	}

	r = mempool_init_slab_pool(&clone->hydration_pool, MIN_HYDRATIONS,
				   hydration_cache);
	if (r) {
		ti->error = "Cannot allocate the hydration pool";
		return r;
	}

	clone->io_client = dm_io_client_create();
	if (IS_ERR(clone->io_client)) {
		r = PTR_ERR(clone->io_client);
		clone->io_client = NULL;
		ti->error = "Cannot create the dm-io client";
		return r;
	}

	/* The copy buffer kept until hydration completes. */
	buf = alloc_copy_buf(GFP_KERNEL);
	if (!buf) {
		ti->error = "Cannot allocate the copy buffer";
		return -ENOMEM;
	}
	list_add(&buf->list, &clone->copy_free);
	clone->nr_bufs = 1;
	clone->nr_free = 1;

	clone->wq = alloc_workqueue("dm-" DM_MSG_PREFIX,
				    WQ_MEM_RECLAIM | CLONE_WQ_PERCPU, 0);
	if (!clone->wq) {
		ti->error = "Cannot allocate the workqueue";
		return -ENOMEM;
	}

	return 0;
}

static void destroy_runtime(struct clone *clone)
{
	if (clone->wq)
		destroy_workqueue(clone->wq);
	trim_copy_bufs(clone, 0);
	if (clone->io_client)
		dm_io_client_destroy(clone->io_client);
	mempool_exit(&clone->hydration_pool);
	kvfree(clone->hash);
}

/*
 * Construct a clone:
 *
 *   <metadata dev> <destination dev> <source dev> <region size>
 *   [<#feature args> [<feature arg>]* [<#core args> [<key> <value>]*]]
 *
 * Features: no_hydration, no_discard_passdown.
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
	spin_lock_init(&clone->copy_lock);
	INIT_LIST_HEAD(&clone->copy_urgent);
	INIT_LIST_HEAD(&clone->copy_jobs);
	INIT_LIST_HEAD(&clone->copy_free);
	INIT_LIST_HEAD(&clone->copy_read);
	INIT_LIST_HEAD(&clone->copy_done);
	INIT_WORK(&clone->copier, do_copier);
	INIT_DELAYED_WORK(&clone->copier_retry, do_copier_retry);
	clone->window = WINDOW_START;
	clone->window_growing = true;
	atomic_set(&clone->in_flight, 0);
	atomic_set(&clone->copy_errors, 0);
	atomic_set(&clone->pass_errors, 0);
	init_waitqueue_head(&clone->in_flight_wait);
	mutex_init(&clone->commit_lock);
	INIT_WORK(&clone->worker, do_worker);
	INIT_DELAYED_WORK(&clone->waker, do_waker);
	clone->retry_backoff = RETRY_BACKOFF_MIN;

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
	cancel_delayed_work_sync(&clone->waker);
	cancel_delayed_work_sync(&clone->copier_retry);
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

	hydration_cache = KMEM_CACHE(clone_hydration, 0);
	if (!hydration_cache)
		return -ENOMEM;

	r = dm_register_target(&clone_target);
	if (r < 0) {
		DMERR("registering the clone target failed: error %d", r);
		kmem_cache_destroy(hydration_cache);
		return r;
	}

	return 0;
}

static void __exit dm_clone_exit(void)
{
	dm_unregister_target(&clone_target);
	kmem_cache_destroy(hydration_cache);
}

module_init(dm_clone_init);
module_exit(dm_clone_exit);

MODULE_DESCRIPTION(DM_NAME " clone target: hydrate a copy of a read-only source device");
MODULE_AUTHOR("dm-clone developers");
MODULE_LICENSE("GPL");
