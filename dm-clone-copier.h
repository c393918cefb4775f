/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone's copy engine: copies ranges of sectors from the source to the
 * destination, for the hydration (dm-clone-hydration.c). Private to the
 * module.
 *
 * The interface is shaped like dm-kcopyd's: a job copies sectors
 * [start, end) from one device to another and calls back once with the
 * outcome, saying which side failed. What differs, and why the engine
 * exists at all rather than being dm-kcopyd:
 *
 *  - buffers: pieces of up to CLONE_COPY_PIECE_SECTORS (1 MiB) go through
 *    buffers kept while copying goes on and given back when it stops or
 *    is complete, so that pages are not allocated and zeroed per copy,
 *    and one buffer, kept for the clone's life, makes progress never
 *    depend on memory allocation;
 *  - two queues: jobs marked urgent (a user write waits for them) start
 *    before any background job, and have a buffer of their own that
 *    background jobs may not take;
 *  - the window (dm-clone-window.h): without a budget from the user, how
 *    much background copying is in flight follows what the devices show
 *    (round trips, copy rate, user writes waiting);
 *  - the throttle: a module parameter bounding the share of time any
 *    clone's copies may run, over all clones.
 */

#ifndef DM_CLONE_COPIER_H
#define DM_CLONE_COPIER_H

#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/list.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "dm-clone-window.h"

/* The most a buffer, so a piece, holds (sectors). */
#define CLONE_COPY_PIECE_SECTORS	((sector_t)SZ_1M >> SECTOR_SHIFT)

struct clone_copy_job;

/*
 * A job is over: @read_err and @write_err are 0 or a negative errno, for
 * the source read and the destination write (as dm-kcopyd's callback
 * reports them). Called from the copy engine's worker.
 */
typedef void (*clone_copy_notify_fn)(struct clone_copy_job *job,
				     int read_err, int write_err);

/*
 * A job that holds only some of the sectors it reads (it reads across
 * sectors it must not write, to read once rather than in crumbs): the
 * first sector of [@from, @to) to write, @to if none, and in *@run_end
 * where that run of sectors to write ends. Called from the copy engine's
 * worker.
 */
typedef sector_t (*clone_copy_run_fn)(struct clone_copy_job *job,
				      sector_t from, sector_t to,
				      sector_t *run_end);

/*
 * A copy job, embedded in the caller's object. The caller sets the first
 * three fields before clone_copier_copy(); the rest is the engine's until
 * the callback. A job not urgent is background copying: it waits for the
 * urgent ones, and the window (or the budget) bounds it. Without
 * write_run every sector read is written.
 */
struct clone_copy_job {
	clone_copy_notify_fn notify;
	clone_copy_run_fn write_run;	/* or NULL: write all */
	bool urgent;			/* a user write waits for it */

	struct list_head queue;		/* on the urgent or background queue */
	sector_t next, end;		/* sectors still to start */
	unsigned int pieces;		/* in flight */
	int read_err, write_err;
};

/* A clone's copy engine. Its fields are dm-clone-copier.c's. */
struct clone_copier {
	struct workqueue_struct *wq;	/* the clone's; runs the worker */
	struct block_device *source, *dest;
	struct dm_io_client *io_client;
	struct work_struct worker;
	struct delayed_work retry;	/* after a refused buffer or throttle */
	unsigned long flags;		/* COPIER_* bits, atomic */

	/*
	 * Protects the queues and the buffer counts. Taken with interrupts
	 * disabled (I/O completions take it). Taken alone (lock order:
	 * dm-clone-target.c).
	 */
	spinlock_t lock;
	struct list_head urgent;	/* jobs, first served */
	struct list_head background;	/* jobs */
	struct list_head free;		/* idle buffers */
	struct list_head read;		/* read done: to write */
	struct list_head done;		/* written, or failed */
	unsigned int nr_bufs;		/* allocated (or being allocated) */
	unsigned int nr_free;		/* on free */

	/* The budget: sectors in flight the user allows (READ_ONCE). */
	u64 budget_sectors;

	/* The copy engine's worker's alone. */
	unsigned long pieces_started;
	unsigned long pieces_seen;	/* pieces_started at the last trim */
	sector_t bg_sectors;		/* of background pieces in flight */
	struct clone_window window;
	unsigned int window_pieces;	/* window.size, for other readers */
	atomic_t write_waits;		/* writes that waited, this round */
	atomic_t held;			/* the pass was held, this round */
};

/*
 * Set up @c (zeroed, but for a budget already set) to copy from @source to
 * @dest on @wq, with the one buffer it keeps. Returns 0 or a negative
 * errno with *@error set; clone_copier_exit() undoes a half set-up.
 * Process context.
 */
int clone_copier_init(struct clone_copier *c, struct workqueue_struct *wq,
		      struct block_device *source, struct block_device *dest,
		      char **error);

/*
 * Stop the retry timer: no job in flight, and the owner flushes or
 * destroys the workqueue next (at suspend, at teardown). Process context.
 */
void clone_copier_quiesce(struct clone_copier *c);

/*
 * Tear down, after clone_copier_quiesce() and the workqueue's flush or
 * destruction. Process context.
 */
void clone_copier_exit(struct clone_copier *c);

/* Copy sectors [@start, @end) for @job. Any context. */
void clone_copier_copy(struct clone_copier *c, struct clone_copy_job *job,
		       sector_t start, sector_t end);

/*
 * The user's budget: @sectors in flight at most (what hydration_threshold
 * allows); @fixed when the user set it, which turns the window off for
 * good. Any context, even before clone_copier_init().
 */
void clone_copier_set_budget(struct clone_copier *c, u64 sectors, bool fixed);

/*
 * Does the destination take zeroes writes (and has it taken every one so
 * far)? Any context.
 */
bool clone_copier_takes_zeroes(struct clone_copier *c);

/*
 * Do the @len bytes from byte @off of the pages of @pl (a chain whose
 * entries follow each other in an array, as the copier's and the kept
 * reads' are) hold only zeroes? With @clear, make them zeroes instead.
 */
bool clone_pages_zeroes(struct page_list *pl, size_t off, size_t len,
			bool clear);

/* The sectors the window lets background copies have in flight now. */
u64 clone_copier_window_sectors(struct clone_copier *c);

/* A user write waited for a copy in flight (the window gives way). */
static inline void clone_copier_write_waited(struct clone_copier *c)
{
	atomic_inc(&c->write_waits);
}

/*
 * The background pass was held back by something other than the window
 * (the user's reads of the source): the round under way is not judged,
 * its rate says nothing of the window.
 */
static inline void clone_copier_held(struct clone_copier *c)
{
	atomic_set(&c->held, 1);
}

/*
 * Give idle buffers back: all of them for good once copying is over
 * (@complete, or said so before), else all but the one kept if no piece
 * started since the last call. Process context.
 */
void clone_copier_trim(struct clone_copier *c, bool complete);

#endif /* DM_CLONE_COPIER_H */
