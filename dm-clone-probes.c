// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone feature probes: never linked into the module.
 *
 * The Makefile compiles this file against the target kernel, with kbuild's
 * own flags, once for each CLONE_PROBE_<NAME> below, and writes
 * dm-clone-features.h with a CLONE_HAVE_<NAME> for every probe that
 * compiles. dm-clone-compat.h turns those into one interface. Probes
 * rather than version numbers: distributions backport interfaces into
 * older kernels (Debian does into 6.1.y).
 *
 * A probe fails by an error: an unknown member or function, or an
 * incompatible function pointer (both errors in these builds).
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>

#if defined(CLONE_PROBE_QL_DISCARD_MISALIGNED)

/* struct queue_limits still has discard_misaligned (6.1 does, 6.12 not). */
static void __maybe_unused probe(struct queue_limits *limits)
{
	limits->discard_misaligned = 0;
}

#elif defined(CLONE_PROBE_CONST_BM_VALIDATOR)

#include "persistent-data/dm-block-manager.h"

/* The block validator's callbacks take a const validator (6.12 on). */
static void probe_prepare(const struct dm_block_validator *v,
			  struct dm_block *b, size_t block_size)
{
}

static struct dm_block_validator probe __maybe_unused = {
	.prepare_for_write = probe_prepare,
};

#elif defined(CLONE_PROBE_DM_DEVT_FROM_PATH)

/* dm_devt_from_path() replaced dm_get_dev_t() (6.12 has it, 6.1 not). */
static int __maybe_unused probe(const char *path, dev_t *dev)
{
	return dm_devt_from_path(path, dev);
}

#elif defined(CLONE_PROBE_PENDING_HOLDERS)

/*
 * bd_register_pending_holders() exists: the holder list entries of
 * block/holder.c still point at the block device, under the disk's
 * open_mutex (6.1). It went away with the rework that made them point at
 * the device's "holders" kobject, under a private global mutex (6.12).
 */
static int __maybe_unused probe(struct gendisk *disk)
{
	return bd_register_pending_holders(disk);
}

#elif defined(CLONE_PROBE_DM_IO_UNSUP_BITS)

#include <linux/dm-io.h>

/*
 * dm_io() takes a second bitset, of regions whose operation the device
 * does not support, before the I/O priority (7.x).
 */
static int __maybe_unused probe(struct dm_io_request *req,
				struct dm_io_region *where)
{
	return dm_io(req, 1, where, NULL, NULL, 0);
}

#elif defined(CLONE_PROBE_DM_H)

#include "dm.h"

/*
 * drivers/md/dm.h, private to dm core, is at hand: in a kernel tree, or
 * out of tree with PDATA_INC at a whole drivers/md (the debug kernel's).
 * Not in a header package, nor among the headers scripts/deps.sh takes.
 */
static const unsigned int probe __maybe_unused = DM_STATUS_NOFLUSH_FLAG;

#endif
