/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone compatibility: the only place that knows about differences
 * between kernels and about block layer internals we depend on.
 *
 * Differences are told apart by the feature probes of dm-clone-probes.c
 * (their results are in dm-clone-features.h, generated at build time) or
 * by macros the kernel defines, never by version numbers: distributions
 * backport interfaces into older kernels. Built and tested on 6.1, 6.12
 * and 7.x.
 */

#ifndef DM_CLONE_COMPAT_H
#define DM_CLONE_COMPAT_H

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/ioprio.h>
#include <linux/lockdep.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>

#ifdef DM_CLONE_FEATURES
#include "dm-clone-features.h"
#else
/* In a kernel tree (no probes there): the current interfaces. */
#define CLONE_HAVE_CONST_BM_VALIDATOR	1
#define CLONE_HAVE_DM_DEVT_FROM_PATH	1
#define CLONE_HAVE_DM_IO_UNSUP_BITS	1
#endif

/*
 * Open modes for dm_get_device(): fmode_t up to 6.4, blk_mode_t (which
 * came with BLK_OPEN_READ) since.
 */
#ifdef BLK_OPEN_READ
#define clone_open_mode_t	blk_mode_t
#define CLONE_OPEN_READ		BLK_OPEN_READ
#define CLONE_OPEN_RW		(BLK_OPEN_READ | BLK_OPEN_WRITE)
#else
#define clone_open_mode_t	fmode_t
#define CLONE_OPEN_READ		FMODE_READ
#define CLONE_OPEN_RW		(FMODE_READ | FMODE_WRITE)
#endif

/* The persistent-data block validator's callbacks take it const lately. */
#ifdef CLONE_HAVE_CONST_BM_VALIDATOR
#define CLONE_BM_VALIDATOR_CONST	const
#else
#define CLONE_BM_VALIDATOR_CONST
#endif

/*
 * The arguments of a dm-io notify function, and its error bits: a bitset
 * of regions whose operation the device does not support came with the
 * same change (7.x); for a copy, that is an error too.
 */
#ifdef CLONE_HAVE_DM_IO_UNSUP_BITS
#define CLONE_IO_NOTIFY_ARGS	unsigned long error, unsigned long unsup, \
				void *context
#define CLONE_IO_NOTIFY_ERROR	(error | unsup)
#else
#define CLONE_IO_NOTIFY_ARGS	unsigned long error, void *context
#define CLONE_IO_NOTIFY_ERROR	(error)
#endif

/*
 * clone_dm_io_async() - submit the asynchronous dm-io request @req (its
 * notify function set) on @where, at the default I/O priority. dm_io()
 * gained a bitset of unsupported regions before the priority (7.x); the
 * asynchronous form uses neither bitset. May block to allocate (GFP_NOIO);
 * process context.
 */
static inline int clone_dm_io_async(struct dm_io_request *req,
				    struct dm_io_region *where)
{
#ifdef CLONE_HAVE_DM_IO_UNSUP_BITS
	return dm_io(req, 1, where, NULL, NULL, IOPRIO_DEFAULT);
#else
	return dm_io(req, 1, where, NULL, IOPRIO_DEFAULT);
#endif
}

/*
 * clone_limits_clear_misaligned() - say the discard limits are aligned:
 * queue_limits has lost its discard_misaligned flag (6.12 has none).
 */
static inline void clone_limits_clear_misaligned(struct queue_limits *limits)
{
#ifdef CLONE_HAVE_QL_DISCARD_MISALIGNED
	limits->discard_misaligned = 0;
#endif
}

/*
 * clone_path_is_disk() - true if @path, a device argument of a table line
 * (a path or "major:minor"), names @disk's whole device. Resolves it the
 * way dm_get_device() does. Blocks (path lookup); process context.
 *
 * A table naming its own device has to be told apart before
 * dm_get_device(): 6.12 and later refuse it there with a bare -EINVAL,
 * 6.1 opens it.
 */
static inline bool clone_path_is_disk(const char *path, struct gendisk *disk)
{
	dev_t dev;
#ifdef CLONE_HAVE_DM_DEVT_FROM_PATH
	if (dm_devt_from_path(path, &dev))
		return false;
#else
	unsigned int major, minor;
	char dummy;

	if (sscanf(path, "%u:%u%c", &major, &minor, &dummy) == 2) {
		dev = MKDEV(major, minor);
		if (MAJOR(dev) != major || MINOR(dev) != minor)
			return false;
	} else {
		dev = dm_get_dev_t(path);
		if (!dev)
			return false;
	}
#endif
	return dev == disk_devt(disk);
}

/*
 * Holder links. Device-mapper selects BLOCK_HOLDER_DEPRECATED: every dm
 * disk lists the block devices its table holds on disk->slave_bdevs, as
 * entries private to block/holder.c: a list head, then the block device.
 * Up to the rework that removed bd_register_pending_holders() (6.1 has
 * it), the disk's open_mutex protects that list, so it can be walked
 * safely. Since (6.12, 7.x) the entries hold a kobject instead and the
 * list is protected by a mutex private to block/holder.c: a walk would
 * race with a table swapped below (entries freed under it), so there the
 * check below is limited to the device itself.
 */
#if defined(CONFIG_BLOCK_HOLDER_DEPRECATED) && defined(CLONE_HAVE_PENDING_HOLDERS)
#define CLONE_WALKS_HOLDERS	1

struct clone_bd_holder_disk {
	struct list_head list;
	struct block_device *bdev;
};
#endif

/* How deep a stack of devices we look through (also lockdep's limit). */
#define CLONE_STACK_MAX_DEPTH	(MAX_LOCKDEP_SUBCLASSES - 1)

/*
 * clone_disk_is_below() - true if @target is @upper itself or, where the
 * holder lists can be walked safely (CLONE_WALKS_HOLDERS), one of the
 * devices @upper is stacked on, directly or through others. Takes the
 * open_mutex of each disk on the way down (nested, one level per
 * subclass); never @target's. The devices walked from are held open by
 * the table being loaded. Blocks; process context.
 */
static inline bool clone_disk_is_below(struct gendisk *upper,
				       struct gendisk *target,
				       unsigned int depth)
{
#ifdef CLONE_WALKS_HOLDERS
	struct clone_bd_holder_disk *holder;
	bool found = false;

	if (upper == target)
		return true;
	if (depth >= CLONE_STACK_MAX_DEPTH)
		return false;

	mutex_lock_nested(&upper->open_mutex, depth + 1);
	list_for_each_entry(holder, &upper->slave_bdevs, list) {
		if (clone_disk_is_below(holder->bdev->bd_disk, target,
					depth + 1)) {
			found = true;
			break;
		}
	}
	mutex_unlock(&upper->open_mutex);

	return found;
#else
	return upper == target;
#endif
}

/*
 * The status flag dm core passes to a target for `dmsetup status
 * --noflush` (DM_STATUS_NOFLUSH_FLAG, private to drivers/md/dm.h); not the
 * ioctl's DM_NOFLUSH_FLAG, which dm-ioctl translates into this one.
 */
#define CLONE_STATUS_NOFLUSH_FLAG	BIT(0)

#endif /* DM_CLONE_COMPAT_H */
