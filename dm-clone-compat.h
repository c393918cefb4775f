/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone compatibility: the only place that knows about differences
 * between kernels and about block layer internals we depend on.
 */

#ifndef DM_CLONE_COMPAT_H
#define DM_CLONE_COMPAT_H

#include <linux/blkdev.h>
#include <linux/lockdep.h>
#include <linux/mutex.h>

/*
 * Holder links. Device-mapper selects BLOCK_HOLDER_DEPRECATED: every dm
 * disk lists the block devices its table holds on disk->slave_bdevs, as
 * entries private to block/holder.c whose leading fields are these (the
 * layout has not changed since the list was introduced in 5.16).
 */
struct clone_bd_holder_disk {
	struct list_head list;
	struct block_device *bdev;
};

/* How deep a stack of devices we look through (also lockdep's limit). */
#define CLONE_STACK_MAX_DEPTH	(MAX_LOCKDEP_SUBCLASSES - 1)

/*
 * clone_disk_is_below() - true if @target is @upper itself or one of the
 * devices @upper is stacked on, directly or through others. Takes the
 * open_mutex of each disk on the way down (nested, one level per
 * subclass); never @target's. Blocks; process context.
 */
static inline bool clone_disk_is_below(struct gendisk *upper,
				       struct gendisk *target,
				       unsigned int depth)
{
#ifdef CONFIG_BLOCK_HOLDER_DEPRECATED
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

#endif /* DM_CLONE_COMPAT_H */
