/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone: what the target (dm-clone-target.c) and its hydration
 * (dm-clone-hydration.c) share. Private to the module.
 */

#ifndef DM_CLONE_TARGET_H
#define DM_CLONE_TARGET_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/llist.h>
#include <linux/mempool.h>
#include <linux/ratelimit.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "dm-clone-copier.h"
#include "dm-clone-share.h"
#include "dm-clone-metadata.h"

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
	CLONE_READ_HYDRATION,		/* reads of uncopied regions copy them */
};

/* Regions [first, last) to copy before the background pass goes on. */
struct clone_want {
	unsigned long first, last;
};

/* A ring of such ranges, oldest first. Under clone->lock. */
struct clone_want_ring {
	struct clone_want *w;
	unsigned int size, head, len;
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
	unsigned int hydration_threshold;	/* regions; clone_set_threshold() */
	unsigned int hydration_batch_size;	/* regions; READ_ONCE */

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work waker;

	/*
	 * Protects the bio lists and the hash table. Taken with
	 * interrupts disabled (bio completions take it). Lock order: see
	 * dm-clone-target.c.
	 */
	spinlock_t lock;
	struct bio_list deferred_bios;		/* go to the destination */
	struct bio_list deferred_discards;	/* not processed yet */
	struct bio_list discards_done;		/* passed down, to mark */
	struct bio_list discards_marking;	/* the worker's, not locked */
	struct bio_list deferred_flushes;	/* empty flushes to commit */
	struct bio_list deferred_completions;	/* FUA writes to commit */
	struct hlist_head *hash;		/* hydrations in flight */
	/* Copy first: ranges asked for by message, ranges just read. */
	struct clone_want_ring prefetch;
	struct clone_want_ring read_hints;

	/* Regions being hydrated (background and on demand). */
	atomic_t in_flight;
	atomic_t bg_in_flight;		/* of those, by the background pass */
	wait_queue_head_t in_flight_wait;
	/* jiffies of the last write that hydrated a region by itself. */
	unsigned long overwrite_at;

	/*
	 * The source shared with the user's reads (dm-clone-share.h):
	 * share_lock (taken alone, interrupts disabled) protects share.
	 */
	spinlock_t share_lock;
	struct clone_share share;
	atomic_t pass_jobs;		/* copy jobs of the pass in flight */
	struct delayed_work share_wake;	/* wakes the worker when a hold ends */

	/*
	 * Reads that are their regions' copy (dm-clone-hydration.c): their
	 * data, read, waiting for keep_work to write it out.
	 */
	struct llist_head keeps;
	struct work_struct keep_work;
	atomic_t keep_pages;		/* pages taken by such reads */

	/* Worker only. */
	unsigned long hydration_offset;	/* where the background pass is */
	unsigned long retry_after;	/* jiffies, 0: none; WRITE_ONCE (map reads) */
	unsigned long retry_backoff;	/* jiffies */
	atomic_t copy_errors;		/* failed copies, for the log */
	struct ratelimit_state copy_fail_rs;	/* their log lines */
	atomic_t pass_errors;		/* failed copies in this pass */

	/* Serialises commits and mode changes (lock order: dm-clone-target.c). */
	struct mutex commit_lock;

	mempool_t hydration_pool;

	/* The copy engine (dm-clone-copier.c). */
	struct clone_copier copier;
};

/*
 * A region in flight. Background copies of contiguous regions are batched:
 * the first hydration of a batch leads it, the others hang off its list.
 */
struct clone_hydration {
	struct clone *clone;
	unsigned long region_nr;	/* the first */
	unsigned int nr_regions;	/* all in one hash group */
	struct hlist_node h;
	struct list_head batch;
	struct bio_list waiting;	/* bios waiting for these regions */

	/* A copy job's state, on its leader: the copy engine's worker's. */
	struct clone_copy_job copy;	/* .urgent: a write waits for it */
	unsigned long copy_first, copy_last;	/* regions [first, last) */
	bool background;		/* a background copy (pass, ring) */
	bool pass;			/* of those, started by the pass */
	bool retrying;			/* region by region */
	unsigned long retry_region;
	struct clone_hydration *cursor;	/* the run held_run() found last */
};

/* Per-bio data. */
struct clone_bio_data {
	unsigned int flags;
	struct clone_hydration *hd;	/* PB_OVERWRITE, PB_KEEP */
	unsigned long first, last;	/* PB_DISCARD: regions [first, last) */
	u64 sent_ns;			/* PB_TIMED: sent to the source at */
	struct bvec_iter keep_iter;	/* PB_KEEP: the read's data */
};

enum {
	PB_OVERWRITE	= 1 << 0,	/* this bio hydrates pb->hd's region */
	PB_DISCARD	= 1 << 1,	/* mark pb's regions on completion */
	PB_COMMITTED	= 1 << 2,	/* completion was held for a commit */
	PB_TIMED	= 1 << 3,	/* a read timed for the share */
	PB_CLEAN	= 1 << 4,	/* sent with no pass copy in flight */
	PB_KEEP		= 1 << 5,	/* this read copies pb->hd's regions */
};

/* ---- Helpers ---- */

static inline struct clone_bio_data *get_pb(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct clone_bio_data));
}

static inline const char *clone_device_name(struct clone *clone)
{
	return dm_table_device_name(clone->ti->table);
}

static inline enum clone_mode get_mode(struct clone *clone)
{
	return READ_ONCE(clone->mode);
}

static inline sector_t bio_target_sector(struct clone *clone, struct bio *bio)
{
	return dm_target_offset(clone->ti, bio->bi_iter.bi_sector);
}

static inline sector_t region_to_sector(struct clone *clone, unsigned long region)
{
	return (sector_t)region << clone->region_shift;
}

static inline void remap_to_dest(struct clone *clone, struct bio *bio)
{
	bio_set_dev(bio, clone->dest_dev->bdev);
	bio->bi_iter.bi_sector = bio_target_sector(clone, bio);
}

static inline void wake_worker(struct clone *clone)
{
	queue_work(clone->wq, &clone->worker);
}

static inline void complete_list(struct bio_list *bios, blk_status_t status)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		bio->bi_status = status;
		bio_endio(bio);
	}
}

/* ---- Hydration (dm-clone-hydration.c) ---- */

/*
 * Set up and tear down a clone's hydration: the in-flight hash table, the
 * hydration objects, the copy engine (with the one copy buffer it keeps
 * until hydration completes). clone_hydration_init() sets ti->error on
 * failure; clone_hydration_exit() undoes what it did, even half of it.
 * Process context; nothing in flight for the exit.
 */
int clone_hydration_init(struct clone *clone);
void clone_hydration_exit(struct clone *clone);

/* The module-wide cache of hydration objects. */
int clone_hydration_module_init(void);
void clone_hydration_module_exit(void);

/*
 * A write to unhydrated region @region: join the region's hydration or
 * start one (a whole-region write is its own hydration). Returns a
 * DM_MAPIO_* value. Map context (may block to allocate).
 */
int clone_hydrate_for_write(struct clone *clone, struct bio *bio,
			    unsigned long region);

/*
 * End the hydration @leader (and its batch): mark its regions hydrated if
 * @mark, hand the bios that waited for them on (those whose region could
 * not be marked fail). Returns false if @mark and the regions could not be
 * marked (the metadata is read-only). Any context.
 */
bool clone_end_hydrations(struct clone *clone, struct clone_hydration *leader,
			  bool mark);

/* Start background copies as the tunables allow. Worker context. */
void clone_background_hydration(struct clone *clone);

/*
 * A read @bio of @nr unhydrated regions from @region goes to the source:
 * with read hydration on and hydration enabled, copy them ahead of the
 * background pass (with the read's own data when it covers them whole:
 * PB_KEEP), and time the read for the share of the source
 * (dm-clone-share.h). Map context.
 */
void clone_read_to_source(struct clone *clone, struct bio *bio,
			  unsigned long region, unsigned long nr);

/*
 * A read timed by clone_read_to_source() ended; @ok: without an error (a
 * failed read's round trip says nothing of the source's). Any context.
 */
void clone_read_done(struct clone *clone, struct bio *bio, bool ok);

/*
 * A read that clone_read_to_source() took as the copy of its regions
 * (PB_KEEP) ended; @ok: without an error. Any context.
 */
void clone_keep_read_end(struct clone *clone, struct bio *bio, bool ok);

/*
 * Copy the regions of @n sector ranges before any other background copy,
 * in their order: range i is [@sectors[2i], @sectors[2i] + @sectors[2i+1]).
 * Returns 0; -EINVAL for a range outside the target or empty (its index
 * in *@bad); -EBUSY when the ranges waiting already leave no room for all
 * of them; -ENOMEM. Nothing is queued unless all are. Process context.
 */
int clone_prefetch(struct clone *clone, const u64 *sectors, unsigned int n,
		   unsigned int *bad);

/*
 * Mark regions [@first, @last) hydrated, leaving those in flight to their
 * hydration. Worker context.
 */
void clone_mark_discarded(struct clone *clone, unsigned long first,
			  unsigned long last);

/*
 * Set hydration_threshold to @regions, and tell the copy engine; @user:
 * the user chose it (the table or a message), which turns the copy window
 * off. The one place both change. Any context.
 */
void clone_set_threshold(struct clone *clone, unsigned int regions, bool user);

#endif /* DM_CLONE_TARGET_H */
