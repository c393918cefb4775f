// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone's copy engine: jobs copying sectors from the source to the
 * destination through reusable buffers, the window over background jobs
 * and the module-wide throttle (the interface and why it is not dm-kcopyd:
 * dm-clone-copier.h).
 *
 * A job is cut into pieces of at most CLONE_COPY_PIECE_SECTORS, each read
 * into a buffer and written out from it, or, when it read only zeroes and
 * the destination takes zeroes writes, written as one (a thin or sparse
 * destination stays sparse; one refused makes the engine stop trying).
 * The engine's worker starts the reads; I/O completions (any context)
 * queue the buffer back to it, to start the write or to end the piece.
 * When a job's last piece ends, the worker calls the job back.
 *
 * Buffers are allocated as pieces need them, up to a number that follows
 * the budget (copier_buf_limit()), and kept while copying goes on; the
 * last one allowed is left to urgent jobs. One buffer, allocated at setup,
 * stays until copying is complete, so that copies never depend on memory
 * allocation to move on.
 *
 * Locks: the copier's lock is taken alone, and so is the throttle's (see
 * "Lock order" in dm-clone-target.c).
 */

#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/ktime.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "dm-clone-compat.h"
#include "dm-clone-copier.h"
#include "dm-clone-window.h"

/* Pages of a buffer, and buffers of a clone at most. */
#define COPY_BUF_PAGES			(SZ_1M / PAGE_SIZE)
#define COPY_MAX_BUFS			64U
/* When a buffer cannot be allocated, try again after this (jiffies). */
#define COPY_RETRY_DELAY		(HZ / 10)
/*
 * The throttle: busy and total copy time are halved past THROTTLE_PERIOD;
 * a refused piece is tried again after THROTTLE_WAIT, and started anyway
 * after THROTTLE_TRIES refusals in a row (jiffies, jiffies, count).
 */
#define THROTTLE_PERIOD			HZ
#define THROTTLE_WAIT			(HZ / 10)
#define THROTTLE_TRIES			10

/* Bits of clone_copier.flags. */
enum {
	COPIER_FIXED,		/* the user set the budget: no window */
	COPIER_RELEASE,		/* copying is complete: keep no buffer */
	COPIER_ALLOC_FAILED,	/* no new buffer until the retry */
	COPIER_NO_ZEROES,	/* the destination refused a zeroes write */
};

struct copy_buf {
	struct list_head list;		/* on free, read or done */
	struct clone_copier *copier;
	struct clone_copy_job *job;
	sector_t sector;
	sector_t nr_sectors;
	bool writing;			/* the read is done */
	bool zeroes;			/* a run was written as zeroes */
	bool checking;			/* reading the destination's zeroes */
	bool dest_read_failed;
	bool failed;
	bool io_failed;			/* an I/O of the phase failed */
	unsigned int ios;		/* I/Os of the phase in flight (lock) */
	u64 start_ns;			/* when the read was sent */
	unsigned int nr_pages;		/* of pl: COPY_BUF_PAGES or fewer */
	struct page_list *pl;		/* nr_pages pages, chained */
};

/* ---- The throttle (module parameter clone_hydration_throttle) ---- */

/*
 * Copy time is accounted over all clones: busy is the time during which
 * any piece was in flight, total the time since accounting began, both
 * halved whenever total passes THROTTLE_PERIOD. With a throttle below 100,
 * a piece starts only while busy is within that percentage of total;
 * otherwise the worker tries again after THROTTLE_WAIT, and starts one
 * anyway after THROTTLE_TRIES refusals in a row (so that 0 is slow, not
 * stuck).
 */
static unsigned int clone_throttle = 100;

static int clone_throttle_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, 100);
}

static const struct kernel_param_ops clone_throttle_ops = {
	.set = clone_throttle_set,
	.get = param_get_uint,
};

module_param_cb(clone_hydration_throttle, &clone_throttle_ops,
		&clone_throttle, 0644);
MODULE_PARM_DESC(clone_hydration_throttle,
		 "Percentage of time the hydration copy jobs may run (0-100, default 100)");

static DEFINE_SPINLOCK(throttle_lock);
static struct {
	unsigned long last;		/* jiffies of the last update */
	unsigned long busy, total;	/* jiffies */
	unsigned int active;		/* pieces in flight */
	unsigned int refused;		/* in a row */
} throttle;

/*
 * Account the time since the last update. The time before the first use
 * and long idle gaps give no credit: at most THROTTLE_PERIOD counts.
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

/* May a piece start now? If so, it counts as in flight. */
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

/* ---- Buffers ---- */

static void free_copy_buf(struct copy_buf *buf)
{
	unsigned int i;

	for (i = 0; i < buf->nr_pages && buf->pl[i].page; i++)
		__free_page(buf->pl[i].page);
	kfree(buf->pl);
	kfree(buf);
}

/* A buffer of @pages pages (COPY_BUF_PAGES at most). */
static struct copy_buf *alloc_copy_buf(struct clone_copier *c,
				       unsigned int pages, gfp_t gfp)
{
	struct copy_buf *buf = kzalloc(sizeof(*buf), gfp);
	unsigned int i;

	if (!buf)
		return NULL;
	buf->copier = c;
	buf->nr_pages = pages;
	buf->pl = kcalloc(pages, sizeof(*buf->pl), gfp);
	if (!buf->pl) {
		kfree(buf);
		return NULL;
	}
	for (i = 0; i < pages; i++) {
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
 * Buffers the engine may hold now: enough for the budget, at least one,
 * plus the one left to urgent jobs, at most COPY_MAX_BUFS; one once
 * copying is complete (no copy should start then). At least one for
 * background jobs whatever the budget: a budget lowered (to 0, to pause
 * copying) while jobs are queued stops new jobs, but the queued ones must
 * still finish, or their regions stay in flight for ever and the writes
 * waiting for them with them.
 */
static unsigned int copier_buf_limit(struct clone_copier *c)
{
	u64 sectors = READ_ONCE(c->budget_sectors);

	if (test_bit(COPIER_RELEASE, &c->flags))
		return 1;	/* none kept idle: see clone_copier_trim() */
	return clamp_t(u64, DIV_ROUND_UP_ULL(sectors, CLONE_COPY_PIECE_SECTORS),
		       1, COPY_MAX_BUFS - 1) + 1;
}

/*
 * Give a buffer back: kept while under the limit, else freed (and always
 * freed when it is one of an urgent piece's own size).
 */
static void put_copy_buf(struct clone_copier *c, struct copy_buf *buf)
{
	spin_lock_irq(&c->lock);
	if (c->nr_bufs > copier_buf_limit(c) || buf->nr_pages < COPY_BUF_PAGES) {
		c->nr_bufs--;
	} else {
		list_add(&buf->list, &c->free);
		c->nr_free++;
		buf = NULL;
	}
	spin_unlock_irq(&c->lock);
	if (buf)
		free_copy_buf(buf);
}

/* Free the idle buffers beyond @keep. Process context. */
static void trim_copy_bufs(struct clone_copier *c, unsigned int keep)
{
	struct copy_buf *buf, *tmp;
	LIST_HEAD(victims);

	spin_lock_irq(&c->lock);
	list_for_each_entry_safe(buf, tmp, &c->free, list) {
		if (c->nr_bufs <= keep)
			break;
		list_move(&buf->list, &victims);
		c->nr_bufs--;
		c->nr_free--;
	}
	spin_unlock_irq(&c->lock);

	list_for_each_entry_safe(buf, tmp, &victims, list)
		free_copy_buf(buf);
}

/*
 * May another background piece start? Not past the buffers allowed (the
 * last one is for urgent jobs), nor, unless the user set the budget, past
 * the window.
 */
static bool __background_may_start(struct clone_copier *c, unsigned int limit)
{
	lockdep_assert_held(&c->lock);
	if (c->nr_bufs - c->nr_free + 1 >= limit)
		return false;
	return test_bit(COPIER_FIXED, &c->flags) ||
	       c->bg_sectors < (sector_t)c->window_pieces *
			       CLONE_COPY_PIECE_SECTORS;
}

/*
 * Its buffers all busy, may a background piece of @sectors, smaller than a
 * buffer, start in a buffer of its own size? Only under a budget the user
 * set (the window bounds the others), while the background's sectors in
 * flight stay within it, and not into the urgent jobs' last buffer: the
 * limit counts whole buffers, and a budget of a few regions (a small
 * hydration_threshold) would otherwise be one buffer, in which regions
 * copied one a job (batch 1, scattered regions, prefetch ranges) go one
 * at a time.
 */
static bool __background_may_add(struct clone_copier *c, sector_t sectors)
{
	lockdep_assert_held(&c->lock);
	return test_bit(COPIER_FIXED, &c->flags) &&
	       sectors < CLONE_COPY_PIECE_SECTORS &&
	       c->nr_bufs < COPY_MAX_BUFS - 1 &&
	       c->bg_sectors + sectors <= READ_ONCE(c->budget_sectors);
}

/*
 * Take a buffer for a piece of @sectors of an urgent or background job: a
 * free one, or a new one while under the limit, of which background jobs
 * leave the last one. Past the limit, an urgent piece (a write waits for
 * it) gets a new buffer of its own size, up to COPY_MAX_BUFS buffers in
 * all: the limit follows the budget, and a budget under a few buffers
 * (a small hydration_threshold) would otherwise let writes to uncopied
 * regions copy them two at a time. A small background piece may get one
 * too, within the budget (__background_may_add()). NULL if none may be
 * had now. Worker.
 */
static struct copy_buf *get_copy_buf(struct clone_copier *c, bool urgent,
				     sector_t sectors)
{
	unsigned int limit = copier_buf_limit(c), pages = COPY_BUF_PAGES;
	struct copy_buf *buf = NULL;
	bool own = false;

	spin_lock_irq(&c->lock);
	if (!urgent && !__background_may_start(c, limit)) {
		if (!__background_may_add(c, sectors))
			goto none;
		own = true;	/* the free buffer, if any, is the urgent's */
	}
	if (!own)
		buf = list_first_entry_or_null(&c->free, struct copy_buf, list);
	if (buf) {
		list_del(&buf->list);
		c->nr_free--;
		spin_unlock_irq(&c->lock);
		return buf;
	}
	if (test_bit(COPIER_ALLOC_FAILED, &c->flags))
		goto none;
	if (own || c->nr_bufs >= limit) {
		if (!own && (!urgent || c->nr_bufs >= COPY_MAX_BUFS))
			goto none;
		pages = DIV_ROUND_UP((size_t)sectors << SECTOR_SHIFT,
				     PAGE_SIZE);
	}
	c->nr_bufs++;	/* the slot of the one allocated below */
	spin_unlock_irq(&c->lock);

	buf = alloc_copy_buf(c, pages, GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (!buf) {
		spin_lock_irq(&c->lock);
		c->nr_bufs--;
		spin_unlock_irq(&c->lock);
		/*
		 * Nothing may be in flight to wake us up: try again later,
		 * not at every piece meanwhile (a failed allocation of
		 * zeroed pages costs more than the copy).
		 */
		set_bit(COPIER_ALLOC_FAILED, &c->flags);
		queue_delayed_work(c->wq, &c->retry, COPY_RETRY_DELAY);
	}
	return buf;
none:
	spin_unlock_irq(&c->lock);
	return NULL;
}

/* ---- Pieces ---- */

static void kick_copier(struct clone_copier *c)
{
	queue_work(c->wq, &c->worker);
}

/*
 * One I/O of a piece's read or write is over (or could not be sent); once
 * the phase's last one is, hand the buffer back to the worker, to write
 * it out, or to end the piece. Any context.
 */
static void copy_io_end(struct copy_buf *buf, bool failed)
{
	struct clone_copier *c = buf->copier;
	unsigned long flags;

	spin_lock_irqsave(&c->lock, flags);
	if (failed)
		buf->io_failed = true;
	if (--buf->ios)
		goto out;
	failed = buf->io_failed;
	buf->io_failed = false;
	if (buf->checking) {
		/* The destination was read: the worker decides (a failed read: write). */
		buf->dest_read_failed = failed;
		list_add_tail(&buf->list, &c->read);
		goto kick;
	}
	if (failed && buf->zeroes) {
		/* Write the zeroes read as data, from now on. */
		set_bit(COPIER_NO_ZEROES, &c->flags);
		buf->zeroes = false;
		list_add_tail(&buf->list, &c->read);
		goto kick;
	}
	if (failed)
		buf->failed = true;
	if (!buf->failed && !buf->writing) {
		buf->writing = true;
		list_add_tail(&buf->list, &c->read);
	} else {
		list_add_tail(&buf->list, &c->done);
	}
kick:
	spin_unlock_irqrestore(&c->lock, flags);
	kick_copier(c);
	return;
out:
	spin_unlock_irqrestore(&c->lock, flags);
}

static void copy_io_done(CLONE_IO_NOTIFY_ARGS)
{
	copy_io_end(context, CLONE_IO_NOTIFY_ERROR);
}

/*
 * Send one I/O of @buf's phase, @op on @bdev: sectors [@sector, @sector +
 * @count) of the piece, from or into the buffer at the same place.
 * Worker.
 */
static void copy_submit(struct clone_copier *c, struct copy_buf *buf,
			sector_t sector, sector_t count, blk_opf_t op,
			struct block_device *bdev)
{
	size_t off = (size_t)(sector - buf->sector) << SECTOR_SHIFT;
	struct dm_io_request req = {
		.bi_opf = op,
		.mem.type = DM_IO_PAGE_LIST,
		.mem.ptr.pl = &buf->pl[off >> PAGE_SHIFT],
		.mem.offset = off & ~PAGE_MASK,
		.notify.fn = copy_io_done,
		.notify.context = buf,
		.client = c->io_client,
	};
	struct dm_io_region where = {
		.bdev = bdev,
		.sector = sector,
		.count = count,
	};

	spin_lock_irq(&c->lock);
	buf->ios++;
	spin_unlock_irq(&c->lock);
	if (clone_dm_io_async(&req, &where))
		copy_io_end(buf, true);
}

bool clone_pages_zeroes(struct page_list *pl, size_t off, size_t len,
			bool clear)
{
	bool zero = true;
	size_t n;
	void *p;

	pl += off >> PAGE_SHIFT;
	off &= ~PAGE_MASK;
	for (; len && zero; pl = pl->next, off = 0) {
		n = min_t(size_t, len, PAGE_SIZE - off);
		p = kmap_local_page(pl->page);
		if (clear)
			memset(p + off, 0, n);
		else
			zero = !memchr_inv(p + off, 0, n);
		kunmap_local(p);
		len -= n;
	}
	return zero;
}

/*
 * Do sectors [@sector, @sector + @count) of the piece's buffer hold only
 * zeroes? With @clear, make them zeroes instead.
 */
static bool buf_zeroes(struct copy_buf *buf, sector_t sector, sector_t count,
		       bool clear)
{
	return clone_pages_zeroes(buf->pl,
				  (size_t)(sector - buf->sector) << SECTOR_SHIFT,
				  (size_t)count << SECTOR_SHIFT, clear);
}

bool clone_copier_takes_zeroes(struct clone_copier *c)
{
	return !test_bit(COPIER_NO_ZEROES, &c->flags) &&
	       bdev_write_zeroes_sectors(c->dest);
}

/*
 * The next run of the piece to write from @s, in [*@s, *@e); false when
 * none is left. All of the piece for a job without write_run.
 */
static bool next_run(struct copy_buf *buf, sector_t *s, sector_t *e)
{
	struct clone_copy_job *job = buf->job;
	sector_t end = buf->sector + buf->nr_sectors;

	if (*s >= end)
		return false;
	*e = end;
	if (job->write_run) {
		*s = job->write_run(job, *s, end, e);
		*e = min(*e, end);
	}
	return *s < end;
}

/* Do all the runs of the piece to write hold zeroes (in the buffer)? */
static bool runs_zeroes(struct copy_buf *buf)
{
	sector_t s, e;

	for (s = buf->sector; next_run(buf, &s, &e); s = e)
		if (!buf_zeroes(buf, s, e - s, false))
			return false;
	return true;
}

/*
 * The piece is read: write what the job holds of it, run by run, runs of
 * zeroes as zeroes writes where the destination takes them. Where it does
 * not, a piece that read only zeroes reads the destination first (into
 * the buffer: the source's bytes are known) and is not written at all if
 * the destination holds zeroes there already: a thin volume, which reads
 * unprovisioned blocks as zeroes and takes no zeroes writes, stays
 * sparse. Worker.
 */
static void write_piece(struct clone_copier *c, struct copy_buf *buf)
{
	bool zeroes_ok = clone_copier_takes_zeroes(c);
	bool clear = false, z;
	sector_t s, e;

	if (buf->checking) {
		buf->checking = false;
		if (!buf->dest_read_failed && runs_zeroes(buf)) {
			/* Nothing to write: the piece ends as a written one. */
			buf->ios = 1;
			copy_io_end(buf, false);
			return;
		}
		clear = true;	/* the buffer holds the destination's bytes */
	} else if (!zeroes_ok && runs_zeroes(buf)) {
		buf->checking = true;
		buf->ios = 1;	/* until every read is sent */
		for (s = buf->sector; next_run(buf, &s, &e); s = e)
			copy_submit(c, buf, s, e - s, REQ_OP_READ, c->dest);
		copy_io_end(buf, false);
		return;
	}

	buf->ios = 1;	/* until every run is sent */
	buf->zeroes = false;
	for (s = buf->sector; next_run(buf, &s, &e); s = e) {
		if (clear)
			buf_zeroes(buf, s, e - s, true);
		z = zeroes_ok && buf_zeroes(buf, s, e - s, false);
		buf->zeroes |= z;
		copy_submit(c, buf, s, e - s,
			    z ? REQ_OP_WRITE_ZEROES : REQ_OP_WRITE, c->dest);
	}
	copy_io_end(buf, false);
}

/* A background piece ended: a sample for the window. Worker. */
static void window_sample(struct clone_copier *c, struct copy_buf *buf)
{
	struct clone_window *w = &c->window;
	u64 now = ktime_get_ns();
	bool waited;

	c->bg_sectors -= buf->nr_sectors;
	if (!clone_window_sample(w, now, buf->nr_sectors, now - buf->start_ns))
		return;
	/* Held by the user's reads: a new round, the window as it was. */
	if (atomic_xchg(&c->held, 0)) {
		clone_window_start_round(w, now);
		return;
	}
	/* A round not judged leaves the waits to the next one. */
	waited = clone_window_judged(w) && atomic_xchg(&c->write_waits, 0);
	WRITE_ONCE(c->window_pieces,
		   clone_window_next(w, now, waited, copier_buf_limit(c) - 1));
}

/* A piece's write is done, or it failed. Worker. */
static void piece_done(struct clone_copier *c, struct copy_buf *buf)
{
	struct clone_copy_job *job = buf->job;

	throttle_end();
	if (!job->urgent)
		window_sample(c, buf);
	if (buf->failed) {
		if (buf->writing)
			job->write_err = -EIO;
		else
			job->read_err = -EIO;
	}
	put_copy_buf(c, buf);
	if (!--job->pieces && job->next >= job->end)
		job->notify(job, job->read_err, job->write_err);
}

/*
 * Start a piece, if a job waits and a buffer may be had; false if none
 * could start. Worker.
 */
static bool start_piece(struct clone_copier *c)
{
	struct clone_copy_job *job;
	struct copy_buf *buf;
	bool urgent;

	spin_lock_irq(&c->lock);
	job = list_first_entry_or_null(&c->urgent, struct clone_copy_job,
				       queue);
	urgent = job;
	if (!job)
		job = list_first_entry_or_null(&c->background,
					       struct clone_copy_job, queue);
	spin_unlock_irq(&c->lock);
	if (!job)
		return false;

	buf = get_copy_buf(c, urgent, min_t(sector_t, CLONE_COPY_PIECE_SECTORS,
					    job->end - job->next));
	if (!buf)
		return false;
	if (!throttle_start()) {
		put_copy_buf(c, buf);
		queue_delayed_work(c->wq, &c->retry, THROTTLE_WAIT);
		return false;
	}

	buf->job = job;
	buf->sector = job->next;
	buf->nr_sectors = min_t(sector_t, CLONE_COPY_PIECE_SECTORS,
				job->end - job->next);
	buf->writing = false;
	buf->zeroes = false;
	buf->checking = false;
	buf->failed = false;
	buf->io_failed = false;
	buf->ios = 1;	/* until the read is sent */
	job->next += buf->nr_sectors;
	job->pieces++;
	if (!urgent)
		c->bg_sectors += buf->nr_sectors;
	if (job->next >= job->end) {
		spin_lock_irq(&c->lock);
		list_del_init(&job->queue);
		spin_unlock_irq(&c->lock);
	}
	c->pieces_started++;
	buf->start_ns = ktime_get_ns();
	copy_submit(c, buf, buf->sector, buf->nr_sectors, REQ_OP_READ, c->source);
	copy_io_end(buf, false);
	return true;
}

/*
 * End the pieces written (or failed), send the writes of pieces read and
 * start more, one of each at a time: a device that copies as it is sent
 * (brd, pmem) makes each read or write slow to send, and pieces that are
 * over should not wait behind a window's worth of them.
 */
static void do_copier(struct work_struct *ws)
{
	struct clone_copier *c = container_of(ws, struct clone_copier, worker);
	struct copy_buf *buf, *tmp, *write;
	LIST_HEAD(done);
	bool more;

	do {
		spin_lock_irq(&c->lock);
		list_splice_init(&c->done, &done);
		write = list_first_entry_or_null(&c->read, struct copy_buf,
						 list);
		if (write)
			list_del(&write->list);
		spin_unlock_irq(&c->lock);

		more = write || !list_empty(&done);
		list_for_each_entry_safe(buf, tmp, &done, list) {
			list_del(&buf->list);
			piece_done(c, buf);
		}
		if (start_piece(c))
			more = true;
		if (write)
			write_piece(c, write);
		cond_resched();
	} while (more);
}

static void do_copier_retry(struct work_struct *ws)
{
	struct clone_copier *c = container_of(to_delayed_work(ws),
					      struct clone_copier, retry);

	clear_bit(COPIER_ALLOC_FAILED, &c->flags);
	kick_copier(c);
}

/* ---- The interface ---- */

void clone_copier_copy(struct clone_copier *c, struct clone_copy_job *job,
		       sector_t start, sector_t end)
{
	unsigned long flags;

	job->next = start;
	job->end = end;
	job->pieces = 0;
	job->read_err = 0;
	job->write_err = 0;
	spin_lock_irqsave(&c->lock, flags);
	list_add_tail(&job->queue, job->urgent ? &c->urgent : &c->background);
	spin_unlock_irqrestore(&c->lock, flags);
	kick_copier(c);
}

void clone_copier_set_budget(struct clone_copier *c, u64 sectors, bool fixed)
{
	WRITE_ONCE(c->budget_sectors, sectors);
	if (fixed)
		set_bit(COPIER_FIXED, &c->flags);
}

u64 clone_copier_window_sectors(struct clone_copier *c)
{
	if (test_bit(COPIER_FIXED, &c->flags))
		return U64_MAX;
	return ((u64)READ_ONCE(c->window_pieces) + 1) *
	       CLONE_COPY_PIECE_SECTORS;
}

void clone_copier_trim(struct clone_copier *c, bool complete)
{
	unsigned long pieces = READ_ONCE(c->pieces_started);

	if (complete)
		set_bit(COPIER_RELEASE, &c->flags);
	if (test_bit(COPIER_RELEASE, &c->flags)) {
		trim_copy_bufs(c, 0);
		return;
	}
	if (pieces == c->pieces_seen)
		trim_copy_bufs(c, 1);
	c->pieces_seen = pieces;
}

int clone_copier_init(struct clone_copier *c, struct workqueue_struct *wq,
		      struct block_device *source, struct block_device *dest,
		      char **error)
{
	struct copy_buf *buf;
	int r;

	c->source = source;
	c->dest = dest;
	spin_lock_init(&c->lock);
	INIT_LIST_HEAD(&c->urgent);
	INIT_LIST_HEAD(&c->background);
	INIT_LIST_HEAD(&c->free);
	INIT_LIST_HEAD(&c->read);
	INIT_LIST_HEAD(&c->done);
	INIT_WORK(&c->worker, do_copier);
	INIT_DELAYED_WORK(&c->retry, do_copier_retry);
	c->wq = wq;		/* last: it says the above is set up */
	c->nr_bufs = 0;
	c->nr_free = 0;
	c->pieces_started = 0;
	c->pieces_seen = 0;
	c->bg_sectors = 0;
	atomic_set(&c->write_waits, 0);
	atomic_set(&c->held, 0);
	clone_window_init(&c->window);
	c->window_pieces = c->window.size;

	c->io_client = dm_io_client_create();
	if (IS_ERR(c->io_client)) {
		r = PTR_ERR(c->io_client);
		c->io_client = NULL;
		*error = "Cannot create the dm-io client";
		return r;
	}

	/* The buffer kept until copying is complete. */
	buf = alloc_copy_buf(c, COPY_BUF_PAGES, GFP_KERNEL);
	if (!buf) {
		*error = "Cannot allocate the copy buffer";
		return -ENOMEM;
	}
	list_add(&buf->list, &c->free);
	c->nr_bufs = 1;
	c->nr_free = 1;
	return 0;
}

void clone_copier_quiesce(struct clone_copier *c)
{
	if (c->wq)
		cancel_delayed_work_sync(&c->retry);
}

void clone_copier_exit(struct clone_copier *c)
{
	if (!c->wq)
		return;		/* never set up */
	trim_copy_bufs(c, 0);
	if (c->io_client)
		dm_io_client_destroy(c->io_client);
	c->io_client = NULL;
}
