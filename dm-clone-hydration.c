// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone hydration: regions in flight, the copy engine, the copy window,
 * the throttle, and the background pass. The target (dm-clone-target.c)
 * maps bios and owns the worker; this file copies regions for it.
 *
 * Regions in flight. A struct clone_hydration holds a run of regions (at
 * most HD_CHUNK_REGIONS, within one chunk of that many) while they are
 * copied, or while a write covering a whole region goes to the
 * destination. It sits in a hash table keyed by chunk; being there is
 * the regions' lock: a write to one of them waits on the hydration's list
 * and goes on when it ends. A copy job is a list of hydrations of
 * contiguous regions led by the first.
 *
 * Lock order (outer first): clone->lock (spinlock, irqsave) -> metadata's
 * bitmap_lock; clone->copy_lock and throttle_lock are taken alone.
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/mempool.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "dm-clone-compat.h"
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
/* Regions marked per lock hold when a discard marks a range (count). */
#define DISCARD_MARK_CHUNK		4096
/* Back-off before retrying regions whose copy failed (jiffies). */
#define RETRY_BACKOFF_MIN		HZ
#define RETRY_BACKOFF_MAX		(60 * HZ)
/* Failed copies logged: at most this many per interval (jiffies). */
#define COPY_FAIL_BURST			5
#define COPY_FAIL_INTERVAL		(5 * HZ)

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
 * a round during which user writes waited for regions in flight halves
 * the window, down to WINDOW_YIELD chunks, and holds it for WINDOW_HOLD
 * rounds; else the window doubles while chunks take under WINDOW_FREE
 * percent of the shortest round's mean round trip in the last
 * WINDOW_EPOCH_NS or so; past that, a larger window is kept when it
 * copied at least WINDOW_GAIN percent as fast, and tried again after
 * WINDOW_HOLD rounds.
 */
#define WINDOW_START			8
#define WINDOW_YIELD			8
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
 * past @region's chunk. If @holder, *@holder is the hydration holding it
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
	bool background = leader->background, marked = true;

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
	if (atomic_sub_and_test(n, &clone->in_flight))
		wake_up(&clone->in_flight_wait);
	wake_worker(clone);
	return marked;
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
 * in flight, at least one, plus the one left to writes' jobs, at most
 * COPY_MAX_BUFS; one once hydration is complete (no copy should start
 * then). At least one for background jobs whatever the threshold: a
 * threshold lowered (to 0, to pause copying) while jobs are queued stops
 * new jobs, but the queued ones must still finish, or their regions stay
 * in flight for ever and the writes waiting for them with them.
 */
static unsigned int copy_buf_limit(struct clone *clone)
{
	u64 sectors = (u64)READ_ONCE(clone->hydration_threshold) <<
		      clone->region_shift;

	if (test_bit(CLONE_COPY_RELEASE, &clone->flags))
		return 1;	/* none kept idle: see clone_release_copy_bufs() */
	return clamp_t(u64, DIV_ROUND_UP_ULL(sectors, COPY_BUF_SECTORS), 1,
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

/* Start a round of the copy window at @now. Copy worker. */
static void start_round(struct clone *clone, u64 now)
{
	clone->round_start_ns = now;
	clone->round_chunks = 0;
	clone->round_sectors = 0;
	clone->round_rtt_ns = 0;
}

/*
 * The copy window: how many bytes of background chunks may be in flight
 * when the user gave no hydration_threshold. A few chunks keep a local
 * disk busy, and more only make them wait for each other, and the writes
 * waiting for regions in flight wait with them; a remote source needs
 * many in flight to hide its latency. So, each round (at least
 * WINDOW_ROUND_NS and as many chunks as the window): if user writes had to
 * wait for regions in flight, the window halves (not below WINDOW_YIELD)
 * and holds, user I/O first; else, while chunks take
 * little more than the shortest round's mean round trip lately (under
 * WINDOW_FREE percent of it), they do not wait for each other and the
 * window doubles (and the next round judges the doubled window on its
 * round trips: a burst of new chunks cannot make them look shorter); past
 * that, the window climbs the copy rate: it grows by a quarter (at least
 * one chunk) while that makes copying at least WINDOW_GAIN percent as
 * fast, else goes back to what it was before that step and holds for
 * WINDOW_HOLD rounds before trying again. A round right after a step is
 * not judged on its rate: its chunks started before. Copy worker.
 */
static void adapt_window(struct clone *clone, sector_t sectors, u64 rtt)
{
	unsigned int w = clone->window, limit = copy_buf_limit(clone) - 1;
	u64 now = ktime_get_ns(), elapsed, rate, avg;

	rtt = max_t(u64, rtt, 1);
	elapsed = now - clone->round_start_ns;
	if (elapsed > WINDOW_EPOCH_NS) {
		/* The first chunk after a pause: start a round. */
		start_round(clone, now);
		return;
	}
	clone->round_rtt_ns += rtt;
	clone->round_sectors += sectors;
	if (++clone->round_chunks < w || elapsed < WINDOW_ROUND_NS)
		return;

	rate = div64_u64(clone->round_sectors * NSEC_PER_SEC, elapsed);
	avg = div_u64(clone->round_rtt_ns, clone->round_chunks);

	/*
	 * The base: the shortest round's mean round trip, of this epoch or
	 * the last (a round's mean, not the shortest chunk, which jitter
	 * makes an outlier).
	 */
	if (now - clone->epoch_start_ns > WINDOW_EPOCH_NS) {
		clone->base_ns = clone->epoch_min_ns ?: avg;
		clone->epoch_min_ns = 0;
		clone->epoch_start_ns = now;
	}
	clone->epoch_min_ns = min(clone->epoch_min_ns ?: avg, avg);
	clone->base_ns = min(clone->base_ns ?: avg, avg);
	if (clone->window_settle) {
		clone->window_settle = false;
	} else {
		bool doubled = false;

		if (atomic_xchg(&clone->write_waits, 0)) {
			/* Writes waited for regions in flight: give way. */
			w = max(w / 2, min(w, WINDOW_YIELD));
			clone->window_growing = false;
			clone->window_hold = WINDOW_HOLD;
		} else if (avg * 100 < clone->base_ns * WINDOW_FREE) {
			clone->window_growing = false;
			clone->window_hold = 0;
			w *= 2;
			doubled = true;
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
		clone->window_settle = !doubled && w != clone->window;
		WRITE_ONCE(clone->window, w);
		clone->last_rate = rate;
	}
	start_round(clone, now);
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
	if (clone->nr_bufs >= limit ||
	    test_bit(CLONE_COPY_ALLOC_FAILED, &clone->flags))
		goto none;
	clone->nr_bufs++;	/* the slot of the one allocated below */
	spin_unlock_irq(&clone->copy_lock);

	buf = alloc_copy_buf(GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (!buf) {
		spin_lock_irq(&clone->copy_lock);
		clone->nr_bufs--;
		spin_unlock_irq(&clone->copy_lock);
		/*
		 * Nothing may be in flight to wake us up: try again later,
		 * not at every chunk meanwhile (a failed allocation of
		 * zeroed pages costs more than the copy).
		 */
		set_bit(CLONE_COPY_ALLOC_FAILED, &clone->flags);
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

/*
 * A chunk's read or write is over (or could not be sent): hand the buffer
 * back to the copy worker, to write it out, or to end the chunk. Any
 * context.
 */
static void copy_io_end(struct clone_copy_buf *buf, bool failed)
{
	struct clone *clone = buf->job->clone;
	unsigned long flags;

	spin_lock_irqsave(&clone->copy_lock, flags);
	if (failed)
		buf->failed = true;
	if (!buf->failed && !buf->writing) {
		buf->writing = true;
		list_add_tail(&buf->list, &clone->copy_read);
	} else {
		list_add_tail(&buf->list, &clone->copy_done);
	}
	spin_unlock_irqrestore(&clone->copy_lock, flags);
	kick_copier(clone);
}

static void copy_io_done(CLONE_IO_NOTIFY_ARGS)
{
	copy_io_end(context, CLONE_IO_NOTIFY_ERROR);
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
		copy_io_end(buf, true);
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

/*
 * Account the time since the last update. The first update accounts
 * nothing (the idle time before it is no credit), and no gap counts for
 * more than THROTTLE_PERIOD: a long idle time would otherwise let copies
 * run unthrottled for as long again.
 */
static void __throttle_update(void)
{
	unsigned long now = jiffies, d = now - throttle.last;

	lockdep_assert_held(&throttle_lock);
	if (!throttle.last)
		d = 0;
	throttle.last = now ?: 1;
	d = min_t(unsigned long, d, THROTTLE_PERIOD);
	throttle.total += d;
	if (throttle.active)
		throttle.busy += d;
	while (throttle.total > THROTTLE_PERIOD) {
		throttle.total /= 2;
		throttle.busy /= 2;
	}
}

/* May a chunk start now? If so, it counts as in flight. */
static bool throttle_start(void)
{
	unsigned int pct = READ_ONCE(clone_throttle);
	bool ok = true;

	spin_lock_irq(&throttle_lock);
	if (pct < 100) {
		__throttle_update();
		if (throttle.busy * 100 > throttle.total * pct &&
		    ++throttle.refused < THROTTLE_TRIES)
			ok = false;
	}
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

/* The last chunk of @job is over. Copy worker. */
static void copy_job_done(struct clone *clone, struct clone_hydration *job)
{
	if (!job->retrying) {
		if (!job->failed) {
			clone_end_hydrations(clone, job, true);
			return;
		}
		if (job->copy_last - job->copy_first > 1) {
			job->retrying = true;
			job->retry_region = job->copy_first;
			start_region_copy(clone, job);
			return;
		}
		copy_failed(clone, job->copy_first, job->read_failed);
		clone_end_hydrations(clone, job, false);
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
	clone_end_hydrations(clone, job, false);
}

/* A chunk's write is done, or it failed. Copy worker. */
static void copy_chunk_done(struct clone *clone, struct clone_copy_buf *buf)
{
	struct clone_hydration *job = buf->job;

	throttle_end();
	if (!job->urgent) {
		clone->bg_sectors -= buf->nr_sectors;
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

/*
 * Start a chunk, if a job waits and a buffer may be had; false if none
 * could start. Copy worker.
 */
static bool start_chunk(struct clone *clone)
{
	struct clone_hydration *job;
	struct clone_copy_buf *buf;
	bool urgent;

	spin_lock_irq(&clone->copy_lock);
	job = list_first_entry_or_null(&clone->copy_urgent,
				       struct clone_hydration, queue);
	urgent = job;
	if (!job)
		job = list_first_entry_or_null(&clone->copy_jobs,
					       struct clone_hydration, queue);
	spin_unlock_irq(&clone->copy_lock);
	if (!job)
		return false;

	buf = get_copy_buf(clone, urgent);
	if (!buf)
		return false;
	if (!throttle_start()) {
		put_copy_buf(clone, buf);
		queue_delayed_work(clone->wq, &clone->copier_retry,
				   THROTTLE_WAIT);
		return false;
	}

	buf->job = job;
	buf->sector = job->copy_next;
	buf->nr_sectors = min_t(sector_t, COPY_BUF_SECTORS,
				job->copy_end - job->copy_next);
	buf->writing = false;
	buf->failed = false;
	job->copy_next += buf->nr_sectors;
	job->chunks++;
	if (!urgent)
		clone->bg_sectors += buf->nr_sectors;
	if (job->copy_next >= job->copy_end) {
		spin_lock_irq(&clone->copy_lock);
		list_del_init(&job->queue);
		spin_unlock_irq(&clone->copy_lock);
	}
	clone->copy_chunks++;
	buf->start_ns = ktime_get_ns();
	copy_submit(clone, buf);
	return true;
}

/*
 * End the chunks written (or failed), send the writes of chunks read and
 * start more, one of each at a time: a device that copies as it is sent
 * (brd, pmem) makes each read or write slow to send, and chunks that are
 * over should not wait behind a window's worth of them.
 */
static void do_copier(struct work_struct *ws)
{
	struct clone *clone = container_of(ws, struct clone, copier);
	struct clone_copy_buf *buf, *tmp, *write;
	LIST_HEAD(done);
	bool more;

	do {
		spin_lock_irq(&clone->copy_lock);
		list_splice_init(&clone->copy_done, &done);
		write = list_first_entry_or_null(&clone->copy_read,
						 struct clone_copy_buf, list);
		if (write)
			list_del(&write->list);
		spin_unlock_irq(&clone->copy_lock);

		more = write || !list_empty(&done);
		list_for_each_entry_safe(buf, tmp, &done, list) {
			list_del(&buf->list);
			copy_chunk_done(clone, buf);
		}
		if (start_chunk(clone))
			more = true;
		if (write)
			copy_submit(clone, write);
		cond_resched();
	} while (more);
}

static void do_copier_retry(struct work_struct *ws)
{
	struct clone *clone = container_of(to_delayed_work(ws), struct clone,
					   copier_retry);

	clear_bit(CLONE_COPY_ALLOC_FAILED, &clone->flags);
	kick_copier(clone);
}

void clone_release_copy_bufs(struct clone *clone, bool complete)
{
	unsigned long chunks = READ_ONCE(clone->copy_chunks);

	if (complete)
		set_bit(CLONE_COPY_RELEASE, &clone->flags);
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
		atomic_inc(&clone->write_waits);	/* for adapt_window() */
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
		end = __first_in_flight(clone, r, end, NULL);
		for (e = r; e < end; e++)
			if (dm_clone_is_region_hydrated(clone->cmd, e))
				break;
		hd = e > r ? alloc_hydration(clone, r, e - r,
					     GFP_NOWAIT | __GFP_NOWARN) : NULL;
		if (hd) {
			__insert_hydration(clone, hd);
			atomic_add(e - r, &clone->in_flight);
			atomic_add(e - r, &clone->bg_in_flight);
		}
		spin_unlock_irq(&clone->lock);
		if (!hd)
			break;

		if (leader) {
			list_add_tail(&hd->batch, &leader->batch);
		} else {
			leader = hd;
			leader->background = true;
		}
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
void clone_background_hydration(struct clone *clone)
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

		n = gather_batch(clone, region, batch, &leader);
		if (!n) {
			/* In flight on demand, or no memory for now. */
			clone->hydration_offset = region + 1;
			cond_resched();
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
void clone_mark_discarded(struct clone *clone, unsigned long first,
			  unsigned long last)
{
	while (first < last) {
		unsigned long end = min(last, first + DISCARD_MARK_CHUNK);
		unsigned long r = first, e, busy;
		struct clone_hydration *hd;

		spin_lock_irq(&clone->lock);
		while (r < end) {
			e = min(end, chunk_end(clone, r));
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
	struct clone_copy_buf *buf;
	int r;

	clone->retry_backoff = RETRY_BACKOFF_MIN;
	ratelimit_state_init(&clone->copy_fail_rs, COPY_FAIL_INTERVAL,
			     COPY_FAIL_BURST);
	/*
	 * No "callbacks suppressed" lines: the count is in each line. The
	 * flag defers that message to ratelimit_state_exit(), never called.
	 */
	ratelimit_set_flags(&clone->copy_fail_rs, RATELIMIT_MSG_ON_RELEASE);
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

	return 0;
}

void clone_hydration_exit(struct clone *clone)
{
	/* The copy worker and its retry timer are gone with the workqueue. */
	trim_copy_bufs(clone, 0);
	if (clone->io_client)
		dm_io_client_destroy(clone->io_client);
	mempool_exit(&clone->hydration_pool);
	kvfree(clone->hash);
}
