// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-clone metadata.
 *
 * Design
 * ------
 *
 * The metadata device holds one fact per region: hydrated or not. It is a
 * dm_bitset (bit N set: region N hydrated) kept by the persistent-data
 * library: a block manager over dm-bufio, a transaction manager that
 * shadows every block it changes, and the metadata space map that counts
 * block references. Block 0 is the superblock; it names the roots of the
 * space map and of the bitset and carries the region size and the target
 * length, which must match the table on every open. The format is version
 * 1 of the in-kernel dm-clone, so either implementation opens what the
 * other wrote.
 *
 * In core we keep a plain bitmap of hydrated regions (one bit per region)
 * and a bitmap of "dirty words" (one bit per BITS_PER_LONG regions) that
 * says which words of the first changed since they were last moved into a
 * transaction. That is the whole per-region memory cost: a little over one
 * bit per region. Readers test the bitmap locklessly; bits are only ever
 * set while the metadata is writable, and an abort replaces whole words
 * with WRITE_ONCE(), so a reader sees, for every bit, either the old or
 * the new value, and never loses a bit that both agree on.
 *
 * The commit protocol has three steps, the middle one the caller's:
 *
 *  1. pre-commit: for each dirty word, take the word's value under the
 *     bitmap lock (clearing its dirty bit) and set its bits in the on-disk
 *     bitset. Every bit taken was set when its region's data had already
 *     been written to the destination;
 *  2. the caller flushes the destination, making that data durable;
 *  3. commit: the transaction manager writes every changed block, flushes,
 *     then writes the superblock and flushes again. A crash before the
 *     superblock lands leaves the previous transaction intact.
 *
 * A bit set after its word was taken in step 1 waits for the next commit
 * (its word is dirty again). So no commit ever records a region whose data
 * could still be lost.
 *
 * When an operation fails, the target calls dm_clone_metadata_abort():
 * the persistent-data objects are destroyed and re-opened from the last
 * committed superblock and the in-core bitmap is reloaded from it. The
 * metadata then stays read-only; if the abort itself fails it is failed
 * and refuses everything.
 *
 * Locks
 * -----
 *
 * (Their order among the module's locks: "Lock order" in dm-clone-target.c.)
 *
 * lock (rw_semaphore): the persistent-data objects (bm, tm, sm, bitset
 *	info and root), the committed roots and the read_only/fail flags'
 *	transitions. Taken for writing by everything that changes on-disk
 *	state, for reading by queries.
 * bitmap_lock (spinlock, irqsave): writers of region_map, dirty_words,
 *	nr_hydrated, nr_dirty and all_hydrated. May be taken inside lock,
 *	never the other way round.
 *
 * Once every region is hydrated and committed nothing can change any more
 * (bits are only ever set), so the in-core bitmaps are freed and
 * all_hydrated answers every query. Lockless readers test all_hydrated
 * first, inside an RCU read-side section; the bitmaps are freed after a
 * grace period.
 */

#include <linux/device-mapper.h>
#include <linux/bitmap.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "persistent-data/dm-bitset.h"
#include "persistent-data/dm-block-manager.h"
#include "persistent-data/dm-space-map.h"
#include "persistent-data/dm-space-map-common.h"
#include "persistent-data/dm-transaction-manager.h"

#include "dm-clone-compat.h"
#include "dm-clone-metadata.h"
#include "dm-clone-region.h"

#define DM_MSG_PREFIX "clone metadata"

#define SUPERBLOCK_LOCATION		0
#define SUPERBLOCK_MAGIC		0x8af27f64
#define SUPERBLOCK_CSUM_XOR		257649492
#define DM_CLONE_METADATA_VERSION	1
/*
 * Superblock flags: bit 0, "needs check", is set when a metadata operation
 * failed; the metadata then opens read-only until a checker clears it.
 * Other bits are kept as they were read.
 */
#define SB_FLAG_NEEDS_CHECK		BIT(0)
#define METADATA_BLOCK_BYTES		(DM_CLONE_METADATA_BLOCK_SIZE << SECTOR_SHIFT)
/* Block locks one thread holds at most (persistent-data's own need). */
#define MAX_CONCURRENT_LOCKS		5
#define SPACE_MAP_ROOT_SIZE		128
#define UUID_LEN			16

/* Regions per on-disk bitset word. */
#define BITS_PER_DISK_WORD		64
/* Bitset words per array block: (4096 - 24-byte header) / 8. */
#define DISK_WORDS_PER_ARRAY_BLOCK	509
/*
 * Reads of the metadata a table load makes at most while the live table
 * on the same device keeps committing under it (count).
 */
#define OPEN_TRIES			8
/* Metadata blocks a commit may need beyond the array blocks it shadows. */
#define COMMIT_SLACK_BLOCKS		64

struct clone_superblock_disk {
	__le32 csum;
	__le32 flags;
	__le64 blocknr;
	__u8 uuid[UUID_LEN];
	__le64 magic;
	__le32 version;
	__u8 metadata_space_map_root[SPACE_MAP_ROOT_SIZE];
	__le64 region_size;
	__le64 target_size;
	__le64 bitset_root;
} __packed;

struct dm_clone_metadata {
	struct block_device *bdev;
	sector_t target_size;
	sector_t region_size;
	unsigned long nr_regions;
	unsigned long nr_longs;		/* words of region_map */
	/*
	 * The on-disk bitset's regions and the stored length: less than
	 * nr_regions and target_size while a grow (a table longer than the
	 * metadata's target length) is pending.
	 */
	unsigned long disk_regions;
	sector_t disk_target_size;

	/* Protects the persistent-data objects below and the mode flags. */
	struct rw_semaphore lock;
	struct dm_block_manager *bm;
	struct dm_space_map *sm;
	struct dm_transaction_manager *tm;
	struct dm_disk_bitset bitset_info;
	dm_block_t bitset_root;
	/* What the superblock said when we last read or wrote it. */
	dm_block_t committed_bitset_root;
	u8 committed_sm_root[SPACE_MAP_ROOT_SIZE];
	/* The device's commit count (see struct clone_md_dev) then. */
	struct clone_md_dev *md_dev;
	u64 commits_seen;
	/* The superblock's flags, as read (written back by commits). */
	u32 sb_flags;
	/* needs_check could not be written yet: try again at suspend. */
	bool needs_check_pending;
	/* A transaction holds changes not yet committed. */
	bool transaction_dirty;
	bool read_only;			/* also read locklessly */
	bool failed;			/* also read locklessly */
	/* Usage figures last read under lock; READ_ONCE without it. */
	u64 last_used;
	u64 last_total;

	/* Protects the writers of the four fields below. */
	spinlock_t bitmap_lock;
	unsigned long *region_map;	/* bit N: region N hydrated */
	unsigned long *dirty_words;	/* bit W: region_map[W] changed */
	unsigned long nr_hydrated;
	unsigned long nr_dirty;		/* bits set in dirty_words */
	bool all_hydrated;		/* bitmaps freed; READ_ONCE */
};

/* ---- Commits counted per metadata device ---- */

/*
 * Tables of one device take turns on its metadata: a new table is loaded,
 * and reads the metadata, while the old one is still live and committing.
 * When the new one resumes it must know whether the old one committed
 * since. The superblock cannot tell: the format has no generation number,
 * and the space map hands out freed blocks again, so after some commits
 * the very roots read at load time come back with other bits behind them.
 * So every open metadata object counts the commits of its device here, in
 * core, with every other object open on the same device.
 */
struct clone_md_dev {
	struct list_head list;		/* on md_devs */
	dev_t dev;
	unsigned int users;		/* md_devs_lock */
	atomic64_t commits;
};

static LIST_HEAD(md_devs);
static DEFINE_MUTEX(md_devs_lock);

static struct clone_md_dev *md_dev_get(dev_t dev)
{
	struct clone_md_dev *d;

	mutex_lock(&md_devs_lock);
	list_for_each_entry(d, &md_devs, list) {
		if (d->dev == dev) {
			d->users++;
			goto out;
		}
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (d) {
		d->dev = dev;
		d->users = 1;
		atomic64_set(&d->commits, 0);
		list_add(&d->list, &md_devs);
	}
out:
	mutex_unlock(&md_devs_lock);
	return d;
}

static void md_dev_put(struct clone_md_dev *d)
{
	mutex_lock(&md_devs_lock);
	if (!--d->users) {
		list_del(&d->list);
		kfree(d);
	}
	mutex_unlock(&md_devs_lock);
}

/* ---- Superblock validator ---- */

static void
sb_prepare_for_write(CLONE_BM_VALIDATOR_CONST struct dm_block_validator *v,
		     struct dm_block *b, size_t block_size)
{
	struct clone_superblock_disk *sb = dm_block_data(b);

	sb->blocknr = cpu_to_le64(dm_block_location(b));
	sb->csum = cpu_to_le32(dm_bm_checksum(&sb->flags,
					      block_size - sizeof(__le32),
					      SUPERBLOCK_CSUM_XOR));
}

static int sb_check(CLONE_BM_VALIDATOR_CONST struct dm_block_validator *v,
		    struct dm_block *b, size_t block_size)
{
	struct clone_superblock_disk *sb = dm_block_data(b);
	__le32 csum;

	if (le64_to_cpu(sb->blocknr) != dm_block_location(b)) {
		DMERR("superblock: block number %llu, expected %llu",
		      le64_to_cpu(sb->blocknr),
		      (unsigned long long)dm_block_location(b));
		return -ENOTBLK;
	}

	if (le64_to_cpu(sb->magic) != SUPERBLOCK_MAGIC) {
		DMERR("superblock: bad magic 0x%llx, expected 0x%x",
		      le64_to_cpu(sb->magic), SUPERBLOCK_MAGIC);
		return -EILSEQ;
	}

	csum = cpu_to_le32(dm_bm_checksum(&sb->flags,
					  block_size - sizeof(__le32),
					  SUPERBLOCK_CSUM_XOR));
	if (csum != sb->csum) {
		DMERR("superblock: bad checksum %u, expected %u",
		      le32_to_cpu(sb->csum), le32_to_cpu(csum));
		return -EILSEQ;
	}

	if (le32_to_cpu(sb->version) != DM_CLONE_METADATA_VERSION) {
		DMERR("superblock: unsupported metadata version %u (this module reads version %u)",
		      le32_to_cpu(sb->version), DM_CLONE_METADATA_VERSION);
		return -EINVAL;
	}

	return 0;
}

static struct dm_block_validator sb_validator = {
	.name = "clone_superblock",
	.prepare_for_write = sb_prepare_for_write,
	.check = sb_check,
};

/* ---- In-core bitmap ---- */

static unsigned long nr_disk_words(struct dm_clone_metadata *cmd)
{
	return DIV_ROUND_UP(cmd->disk_regions, BITS_PER_DISK_WORD);
}

/* Mask of the valid bits of long word @w of region_map. */
static unsigned long valid_mask(struct dm_clone_metadata *cmd, unsigned long w)
{
	if (w == cmd->nr_longs - 1 && cmd->nr_regions % BITS_PER_LONG)
		return BITMAP_LAST_WORD_MASK(cmd->nr_regions);
	return ~0UL;
}

/*
 * Replace the in-core bits of disk word @i with @val (little-endian on
 * disk, bit N of the word is region 64 * i + N). Called without
 * bitmap_lock: only while setters are refused (read-only) or before the
 * metadata is published.
 */
static void store_disk_word(struct dm_clone_metadata *cmd, unsigned long i,
			    u64 val)
{
#if BITS_PER_LONG == 64
	WRITE_ONCE(cmd->region_map[i], val & valid_mask(cmd, i));
#else
	unsigned long w = 2 * i;

	WRITE_ONCE(cmd->region_map[w], lower_32_bits(val) & valid_mask(cmd, w));
	if (w + 1 < cmd->nr_longs)
		WRITE_ONCE(cmd->region_map[w + 1],
			   upper_32_bits(val) & valid_mask(cmd, w + 1));
#endif
}

/*
 * The cursor must stand on word @i of the bitset: entry i % 509 of the
 * array block whose btree key is i / 509. The cursor follows whatever the
 * btree points to and checks only each block's checksum, so a child
 * pointer back to a node above (a cycle), or an array block claiming more
 * or fewer entries than it holds, both sealed with good checksums, would
 * give it the words of other regions (regions counted hydrated that are
 * not: the clone reads the destination's garbage), or make it read past
 * the end of the block.
 */
static int check_bitset_position(struct dm_array_cursor *c, unsigned long i)
{
	unsigned long block = i / DISK_WORDS_PER_ARRAY_BLOCK;
	__le64 value_le;
	u64 key;
	int r;

	if (c->index != i % DISK_WORDS_PER_ARRAY_BLOCK) {
		DMERR("region bitset: word %lu is entry %u of its array block, expected %lu",
		      i, c->index, i % DISK_WORDS_PER_ARRAY_BLOCK);
		return -EINVAL;
	}
	if (c->index)
		return 0;

	r = dm_btree_cursor_get_value(&c->cursor, &key, &value_le);
	if (r)
		return r;
	if (key != block) {
		DMERR("region bitset: array block %lu found under btree key %llu (a cycle?)",
		      block, key);
		return -EINVAL;
	}

	return 0;
}

/*
 * Load the committed bitset into region_map. The array must hold a word
 * for every 64 regions, each where it belongs; a shorter or misplaced one
 * is corrupt. Blocks.
 */
static int __load_bitset_in_core(struct dm_clone_metadata *cmd)
{
	unsigned long i, n = nr_disk_words(cmd);
	struct dm_array_cursor c;
	unsigned long flags;
	__le64 *value;
	int r;

	/* Everything is set on disk too: nothing to load. */
	if (READ_ONCE(cmd->all_hydrated))
		return 0;

	memset(&c, 0, sizeof(c));
	r = dm_array_cursor_begin(&cmd->bitset_info.array_info,
				  cmd->bitset_root, &c);
	if (r) {
		/*
		 * A begin that fails below the root (an unreadable leaf)
		 * leaves the btree nodes above it locked; ending the cursor
		 * releases them (the block manager BUG()s on a held block
		 * when it is destroyed). Safe on any failed begin: it leaves
		 * no array block held.
		 */
		dm_array_cursor_end(&c);
		DMERR("cannot read the region bitset: error %d", r);
		return r == -ENODATA ? -EINVAL : r;
	}

	for (i = 0; i < n; i++) {
		r = check_bitset_position(&c, i);
		if (r)
			break;
		dm_array_cursor_get_value(&c, (void **)&value);
		store_disk_word(cmd, i, le64_to_cpu(*value));
		if (i + 1 == n)
			break;
		r = dm_array_cursor_next(&c);
		if (r) {
			DMERR("region bitset too short: %lu of %lu words (error %d)",
			      i + 1, n, r);
			r = -EINVAL;
			break;
		}
		cond_resched();
	}
	dm_array_cursor_end(&c);
	if (r)
		return r;

	spin_lock_irqsave(&cmd->bitmap_lock, flags);
	/* Regions past the bitset's (a grow pending, or stray bits). */
	bitmap_clear(cmd->region_map, cmd->disk_regions,
		     cmd->nr_regions - cmd->disk_regions);
	bitmap_zero(cmd->dirty_words, cmd->nr_longs);
	cmd->nr_dirty = 0;
	cmd->nr_hydrated = bitmap_weight(cmd->region_map, cmd->nr_regions);
	spin_unlock_irqrestore(&cmd->bitmap_lock, flags);

	return 0;
}

bool dm_clone_is_region_hydrated(struct dm_clone_metadata *cmd,
				 unsigned long region_nr)
{
	bool r;

	rcu_read_lock();
	r = READ_ONCE(cmd->all_hydrated) ||
	    test_bit(region_nr, cmd->region_map);
	rcu_read_unlock();

	return r;
}

bool dm_clone_is_range_hydrated(struct dm_clone_metadata *cmd,
				unsigned long start, unsigned long nr)
{
	bool r;

	rcu_read_lock();
	r = READ_ONCE(cmd->all_hydrated) ||
	    find_next_zero_bit(cmd->region_map, start + nr, start) >= start + nr;
	rcu_read_unlock();

	return r;
}

bool dm_clone_is_range_unhydrated(struct dm_clone_metadata *cmd,
				  unsigned long start, unsigned long nr)
{
	bool r;

	rcu_read_lock();
	r = !READ_ONCE(cmd->all_hydrated) &&
	    find_next_bit(cmd->region_map, start + nr, start) >= start + nr;
	rcu_read_unlock();

	return r;
}

unsigned long dm_clone_find_next_unhydrated_region(struct dm_clone_metadata *cmd,
						   unsigned long start)
{
	return dm_clone_find_unhydrated_in(cmd, start, cmd->nr_regions);
}

/*
 * The first region of [@start, @end) that is hydrated (@hydrated) or not,
 * or the end of the range (within the device) if there is none.
 */
static unsigned long find_region_in(struct dm_clone_metadata *cmd,
				    unsigned long start, unsigned long end,
				    bool hydrated)
{
	unsigned long r = end, last = min(end, cmd->nr_regions);

	rcu_read_lock();
	if (start < last) {
		if (READ_ONCE(cmd->all_hydrated))
			r = hydrated ? start : end;
		else if (hydrated)
			r = find_next_bit(cmd->region_map, last, start);
		else
			r = find_next_zero_bit(cmd->region_map, last, start);
	}
	rcu_read_unlock();

	return r;
}

unsigned long dm_clone_find_unhydrated_in(struct dm_clone_metadata *cmd,
					  unsigned long start,
					  unsigned long end)
{
	return find_region_in(cmd, start, end, false);
}

unsigned long dm_clone_find_hydrated_in(struct dm_clone_metadata *cmd,
					unsigned long start,
					unsigned long end)
{
	return find_region_in(cmd, start, end, true);
}

unsigned long dm_clone_nr_of_hydrated_regions(struct dm_clone_metadata *cmd)
{
	return READ_ONCE(cmd->nr_hydrated);
}

bool dm_clone_is_hydration_done(struct dm_clone_metadata *cmd)
{
	return READ_ONCE(cmd->nr_hydrated) == cmd->nr_regions;
}

bool dm_clone_changed_this_transaction(struct dm_clone_metadata *cmd)
{
	if (READ_ONCE(cmd->nr_dirty))
		return true;
	smp_rmb();	/* pairs with the smp_wmb() in pre-commit */
	return READ_ONCE(cmd->transaction_dirty);
}

long dm_clone_set_regions_hydrated(struct dm_clone_metadata *cmd,
				   unsigned long start, unsigned long nr)
{
	unsigned long end = start + nr, flags, w, added = 0;

	if (WARN_ON_ONCE(end > cmd->nr_regions || end < start))
		return -EINVAL;

	spin_lock_irqsave(&cmd->bitmap_lock, flags);
	if (cmd->all_hydrated) {
		spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
		return 0;
	}
	if (READ_ONCE(cmd->read_only) || READ_ONCE(cmd->failed)) {
		spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
		return -EPERM;
	}

	while (start < end) {
		unsigned long len, old;
		unsigned long mask = clone_word_mask(start, end, &w, &len);

		old = cmd->region_map[w];
		if (~old & mask) {
			added += hweight_long(~old & mask);
			WRITE_ONCE(cmd->region_map[w], old | mask);
			if (!__test_and_set_bit(w, cmd->dirty_words))
				WRITE_ONCE(cmd->nr_dirty, cmd->nr_dirty + 1);
		}
		start += len;
	}
	cmd->nr_hydrated += added;
	spin_unlock_irqrestore(&cmd->bitmap_lock, flags);

	return added;
}

/* ---- Persistent-data objects ---- */

/* The persistent-data objects, taken out of cmd to be destroyed unlocked. */
struct clone_pd_objects {
	struct dm_block_manager *bm;
	struct dm_transaction_manager *tm;
	struct dm_space_map *sm;
};

static void __take_persistent_data(struct dm_clone_metadata *cmd,
				   struct clone_pd_objects *o)
{
	o->bm = cmd->bm;
	o->tm = cmd->tm;
	o->sm = cmd->sm;
	cmd->bm = NULL;
	cmd->tm = NULL;
	cmd->sm = NULL;
}

static void destroy_persistent_data(struct clone_pd_objects *o)
{
	if (o->sm)
		dm_sm_destroy(o->sm);
	if (o->tm)
		dm_tm_destroy(o->tm);
	if (o->bm)
		dm_block_manager_destroy(o->bm);
}

static void __destroy_persistent_data(struct dm_clone_metadata *cmd)
{
	struct clone_pd_objects o;

	__take_persistent_data(cmd, &o);
	destroy_persistent_data(&o);
}

static int __superblock_all_zeroes(struct dm_clone_metadata *cmd, bool *zero)
{
	struct dm_block *b;
	int r;

	r = dm_bm_read_lock(cmd->bm, SUPERBLOCK_LOCATION, NULL, &b);
	if (r)
		return r;
	*zero = !memchr_inv(dm_block_data(b), 0, METADATA_BLOCK_BYTES);
	dm_bm_unlock(b);

	return 0;
}

static void __remember_committed(struct dm_clone_metadata *cmd,
				 struct clone_superblock_disk *sb)
{
	cmd->committed_bitset_root = le64_to_cpu(sb->bitset_root);
	memcpy(cmd->committed_sm_root, sb->metadata_space_map_root,
	       SPACE_MAP_ROOT_SIZE);
}

static int __write_superblock(struct dm_clone_metadata *cmd)
{
	struct clone_superblock_disk *sb;
	u8 sm_root[SPACE_MAP_ROOT_SIZE];
	struct dm_block *sblock;
	size_t len;
	int r;

	r = dm_sm_root_size(cmd->sm, &len);
	if (r)
		return r;
	if (WARN_ON_ONCE(len > SPACE_MAP_ROOT_SIZE))
		return -EINVAL;
	memset(sm_root, 0, sizeof(sm_root));
	r = dm_sm_copy_root(cmd->sm, sm_root, len);
	if (r)
		return r;

	r = dm_bm_write_lock_zero(cmd->bm, SUPERBLOCK_LOCATION, &sb_validator,
				  &sblock);
	if (r)
		return r;

	sb = dm_block_data(sblock);
	sb->flags = cpu_to_le32(cmd->sb_flags);
	memset(sb->uuid, 0, sizeof(sb->uuid));
	sb->magic = cpu_to_le64(SUPERBLOCK_MAGIC);
	sb->version = cpu_to_le32(DM_CLONE_METADATA_VERSION);
	memcpy(sb->metadata_space_map_root, sm_root, SPACE_MAP_ROOT_SIZE);
	sb->region_size = cpu_to_le64(cmd->region_size);
	sb->target_size = cpu_to_le64(cmd->disk_target_size);
	sb->bitset_root = cpu_to_le64(cmd->bitset_root);
	__remember_committed(cmd, sb);

	/* Writes all other dirty blocks, flushes, then the superblock. */
	r = dm_tm_commit(cmd->tm, sblock);
	if (!r)
		cmd->commits_seen = atomic64_inc_return(&cmd->md_dev->commits);
	return r;
}

static int __format_metadata(struct dm_clone_metadata *cmd)
{
	struct dm_transaction_manager *tm;
	struct dm_space_map *sm;
	int r;

	/* On failure tm and sm are freed already: keep them out of cmd. */
	r = dm_tm_create_with_sm(cmd->bm, SUPERBLOCK_LOCATION, &tm, &sm);
	if (r) {
		DMERR("cannot create the transaction manager: error %d", r);
		return r;
	}
	cmd->tm = tm;
	cmd->sm = sm;

	dm_disk_bitset_init(cmd->tm, &cmd->bitset_info);
	cmd->disk_regions = cmd->nr_regions;
	cmd->disk_target_size = cmd->target_size;
	r = dm_bitset_empty(&cmd->bitset_info, &cmd->bitset_root);
	if (r)
		return r;
	r = dm_bitset_resize(&cmd->bitset_info, cmd->bitset_root, 0,
			     cmd->nr_regions, false, &cmd->bitset_root);
	if (r) {
		DMERR("cannot create a bitset of %lu regions: error %d",
		      cmd->nr_regions, r);
		return r;
	}

	r = dm_tm_pre_commit(cmd->tm);
	if (r)
		return r;

	return __write_superblock(cmd);
}

/* Bounds of a space map root read from disk: a hostile one is refused. */
static int check_sm_root(struct dm_clone_metadata *cmd,
			 struct clone_superblock_disk *sb)
{
	struct disk_sm_root smr;
	u64 dev_blocks = min_t(u64, bdev_nr_sectors(cmd->bdev),
			       DM_CLONE_METADATA_MAX_SECTORS) /
			 DM_CLONE_METADATA_BLOCK_SIZE;
	u64 nr_blocks;

	BUILD_BUG_ON(sizeof(smr) > SPACE_MAP_ROOT_SIZE);
	memcpy(&smr, sb->metadata_space_map_root, sizeof(smr));
	nr_blocks = le64_to_cpu(smr.nr_blocks);

	if (!nr_blocks || nr_blocks > dev_blocks ||
	    le64_to_cpu(smr.nr_allocated) > nr_blocks ||
	    le64_to_cpu(smr.bitmap_root) >= nr_blocks ||
	    le64_to_cpu(smr.ref_count_root) >= nr_blocks ||
	    le64_to_cpu(sb->bitset_root) >= nr_blocks ||
	    le64_to_cpu(sb->bitset_root) == SUPERBLOCK_LOCATION) {
		DMERR("superblock roots out of bounds (%llu blocks, device has %llu)",
		      nr_blocks, dev_blocks);
		return -EINVAL;
	}

	return 0;
}

static int __open_metadata(struct dm_clone_metadata *cmd, const char **error)
{
	struct clone_superblock_disk *sb;
	u64 disk_size;
	struct dm_transaction_manager *tm;
	struct dm_space_map *sm;
	struct dm_block *sblock;
	int r;

	r = dm_bm_read_lock(cmd->bm, SUPERBLOCK_LOCATION, &sb_validator,
			    &sblock);
	if (r) {
		*error = "Invalid metadata superblock (magic, checksum or version)";
		return r;
	}
	sb = dm_block_data(sblock);

	if (le64_to_cpu(sb->region_size) != cmd->region_size) {
		DMERR("region size in the metadata is %llu sectors, the table gives %llu",
		      le64_to_cpu(sb->region_size),
		      (unsigned long long)cmd->region_size);
		*error = "Region size differs from the one stored in the metadata";
		r = -EINVAL;
		goto out_unlock;
	}

	/* A longer table grows the clone (at resume); a shorter one is refused. */
	disk_size = le64_to_cpu(sb->target_size);
	if (!disk_size || disk_size > cmd->target_size) {
		DMERR("target length: metadata %llu sectors, table %llu (a clone cannot shrink)",
		      disk_size, (unsigned long long)cmd->target_size);
		*error = "Target length is smaller than the one stored in the metadata";
		r = -EINVAL;
		goto out_unlock;
	}
	cmd->disk_target_size = disk_size;
	cmd->disk_regions = div64_u64(disk_size + cmd->region_size - 1,
				      cmd->region_size);

	r = check_sm_root(cmd, sb);
	if (r) {
		*error = "Metadata superblock is corrupt (roots out of bounds)";
		goto out_unlock;
	}

	/* On failure tm and sm are freed already: keep them out of cmd. */
	r = dm_tm_open_with_sm(cmd->bm, SUPERBLOCK_LOCATION,
			       sb->metadata_space_map_root,
			       sizeof(sb->metadata_space_map_root), &tm, &sm);
	if (r) {
		DMERR("cannot open the metadata space map: error %d", r);
		*error = "Metadata space map is corrupt";
		goto out_unlock;
	}
	cmd->tm = tm;
	cmd->sm = sm;

	dm_disk_bitset_init(cmd->tm, &cmd->bitset_info);
	cmd->bitset_root = le64_to_cpu(sb->bitset_root);
	cmd->sb_flags = le32_to_cpu(sb->flags);
	__remember_committed(cmd, sb);

out_unlock:
	dm_bm_unlock(sblock);
	return r;
}

static struct dm_block_manager *new_block_manager(struct dm_clone_metadata *cmd,
						  const char **error)
{
	struct dm_block_manager *bm;

	bm = dm_block_manager_create(cmd->bdev, METADATA_BLOCK_BYTES,
				     MAX_CONCURRENT_LOCKS);
	if (IS_ERR(bm))
		*error = "Cannot create the metadata block manager";
	return bm;
}

/*
 * Open (or format) the metadata through @bm, which becomes cmd's (and is
 * destroyed with the rest on failure). The commit count is read first: a
 * commit by another table after that makes the next refresh reload.
 */
static int __create_persistent_data(struct dm_clone_metadata *cmd,
				    struct dm_block_manager *bm,
				    bool may_format, const char **error)
{
	bool zero = false;
	int r;

	cmd->bm = bm;
	cmd->commits_seen = atomic64_read(&cmd->md_dev->commits);

	/* (Only then: @bm may hold the superblock, validated, already.) */
	if (may_format) {
		r = __superblock_all_zeroes(cmd, &zero);
		if (r) {
			*error = "Cannot read the metadata superblock";
			goto bad;
		}
	}

	if (zero) {
		r = __format_metadata(cmd);
		if (r) {
			*error = r == -ENOSPC ?
				"Metadata device is too small for the number of regions" :
				"Cannot format the metadata device";
			goto bad;
		}
		return 0;
	}

	r = __open_metadata(cmd, error);
	if (r)
		goto bad;

	r = __load_bitset_in_core(cmd);
	if (r) {
		*error = "Cannot load the region bitset from the metadata (corrupt?)";
		goto bad;
	}

	return 0;

bad:
	__destroy_persistent_data(cmd);
	return r;
}

/*
 * The smallest metadata device accepted for @nr_regions: the bitset's array
 * blocks, a 64th more for its btree and the space map, and room for a
 * commit of a few array blocks at a time (commits that need more are split:
 * see dm_clone_metadata_pre_commit()).
 */
static u64 min_metadata_blocks(u64 nr_regions)
{
	u64 array_blocks = DIV_ROUND_UP(DIV_ROUND_UP(nr_regions,
						     BITS_PER_DISK_WORD),
					DISK_WORDS_PER_ARRAY_BLOCK);

	return array_blocks + array_blocks / 64 + 2 * COMMIT_SLACK_BLOCKS;
}

/*
 * A table longer than the metadata's target length grows the clone: the
 * new regions start unhydrated. Unless the old length ended inside a
 * region that is hydrated: that region's part past the old end was never
 * copied, and copying the whole region again would overwrite what the
 * user wrote to its first part, so that is refused.
 */
static int __check_grow(struct dm_clone_metadata *cmd, const char **error)
{
	unsigned long last = cmd->disk_regions - 1;

	if (cmd->disk_target_size == cmd->target_size)
		return 0;
	if ((cmd->disk_target_size & (cmd->region_size - 1)) &&
	    test_bit(last, cmd->region_map)) {
		DMERR("cannot grow: the old length (%llu sectors) ends in hydrated region %lu",
		      (unsigned long long)cmd->disk_target_size, last);
		*error = "Cannot grow a clone whose old length ends inside a hydrated region";
		return -EINVAL;
	}
	return 0;
}

struct dm_clone_metadata *dm_clone_metadata_open(struct block_device *bdev,
						 sector_t target_size,
						 sector_t region_size,
						 const char **error)
{
	struct dm_clone_metadata *cmd;
	struct dm_block_manager *bm;
	u64 nr_regions, dev_blocks, used, total;
	unsigned int tries;
	int r;

	BUILD_BUG_ON(sizeof(struct clone_superblock_disk) != 196);
	BUILD_BUG_ON(sizeof(struct clone_superblock_disk) > METADATA_BLOCK_BYTES);

	nr_regions = div64_u64(target_size + region_size - 1, region_size);
	if (!nr_regions || nr_regions > (1ULL << 31)) {
		*error = "Invalid number of regions";
		return ERR_PTR(-EINVAL);
	}

	dev_blocks = min_t(u64, bdev_nr_sectors(bdev),
			   DM_CLONE_METADATA_MAX_SECTORS) /
		     DM_CLONE_METADATA_BLOCK_SIZE;
	if (dev_blocks < min_metadata_blocks(nr_regions)) {
		DMERR("metadata device too small: %llu regions need at least %llu KiB",
		      nr_regions, min_metadata_blocks(nr_regions) * 4);
		*error = "Metadata device is too small for the number of regions";
		return ERR_PTR(-ENOSPC);
	}

	cmd = kzalloc(sizeof(*cmd), GFP_KERNEL);
	if (!cmd) {
		*error = "Cannot allocate the metadata structure";
		return ERR_PTR(-ENOMEM);
	}

	cmd->bdev = bdev;
	cmd->target_size = target_size;
	cmd->region_size = region_size;
	cmd->nr_regions = nr_regions;
	cmd->nr_longs = BITS_TO_LONGS(nr_regions);
	init_rwsem(&cmd->lock);
	spin_lock_init(&cmd->bitmap_lock);

	cmd->region_map = kvcalloc(cmd->nr_longs, sizeof(unsigned long),
				   GFP_KERNEL);
	cmd->dirty_words = kvcalloc(BITS_TO_LONGS(cmd->nr_longs),
				    sizeof(unsigned long), GFP_KERNEL);
	if (!cmd->region_map || !cmd->dirty_words) {
		*error = "Cannot allocate the in-core region bitmap";
		r = -ENOMEM;
		goto bad;
	}

	cmd->md_dev = md_dev_get(bdev->bd_dev);
	if (!cmd->md_dev) {
		*error = "Cannot allocate the metadata structure";
		r = -ENOMEM;
		goto bad;
	}

	for (tries = 1; ; tries++) {
		bm = new_block_manager(cmd, error);
		if (IS_ERR(bm)) {
			r = PTR_ERR(bm);
			goto bad;
		}
		r = __create_persistent_data(cmd, bm, true, error);
		if (!r)
			break;
		/*
		 * A live table on the same device (this is a reload) committed
		 * while we read: a block its commit freed may have been
		 * reused under us, and read as damaged. Read it all again.
		 * A load that succeeds over such a commit is reloaded at
		 * resume, once the live table is suspended (refresh).
		 */
		if (atomic64_read(&cmd->md_dev->commits) == cmd->commits_seen)
			goto bad;
		if (tries == OPEN_TRIES) {
			*error = "Metadata changed by live commits while read: try again";
			goto bad;
		}
		DMINFO("the live table committed while the metadata was read: reading it again");
	}
	r = __check_grow(cmd, error);
	if (r) {
		__destroy_persistent_data(cmd);
		goto bad;
	}
	if (cmd->disk_target_size != cmd->target_size)
		DMINFO("growing from %llu to %llu sectors (%lu to %lu regions) at resume",
		       (unsigned long long)cmd->disk_target_size,
		       (unsigned long long)cmd->target_size, cmd->disk_regions,
		       cmd->nr_regions);
	if (cmd->sb_flags & SB_FLAG_NEEDS_CHECK)
		dm_clone_metadata_set_read_only(cmd);

	/* The first usage figures, for a status that must not wait. */
	dm_clone_get_metadata_usage(cmd, &used, &total, false);
	return cmd;

bad:
	if (cmd->md_dev)
		md_dev_put(cmd->md_dev);
	kvfree(cmd->dirty_words);
	kvfree(cmd->region_map);
	kfree(cmd);
	return ERR_PTR(r);
}

void dm_clone_metadata_close(struct dm_clone_metadata *cmd)
{
	__destroy_persistent_data(cmd);
	md_dev_put(cmd->md_dev);
	kvfree(cmd->dirty_words);
	kvfree(cmd->region_map);
	kfree(cmd);
}

int dm_clone_metadata_refresh(struct dm_clone_metadata *cmd, bool *reloaded)
{
	struct clone_superblock_disk *sb;
	struct clone_pd_objects old = { };
	struct dm_block_manager *bm;
	struct dm_block *sblock;
	const char *error;
	bool same, flagged = false;
	int r;

	*reloaded = false;

	/*
	 * A new block manager reads the superblock past our cache; it serves
	 * the reload if there is one. Created and destroyed outside the lock
	 * (a block manager registers with the buffer cache's shrinker).
	 */
	bm = new_block_manager(cmd, &error);
	if (IS_ERR(bm))
		return PTR_ERR(bm);
	r = dm_bm_read_lock(bm, SUPERBLOCK_LOCATION, &sb_validator, &sblock);
	if (r) {
		dm_block_manager_destroy(bm);
		return r;
	}
	sb = dm_block_data(sblock);

	down_write(&cmd->lock);
	/*
	 * Another table committed since, or the roots or flags differ (a tool
	 * wrote, or a failed table set needs_check).
	 */
	same = atomic64_read(&cmd->md_dev->commits) == cmd->commits_seen &&
	       le32_to_cpu(sb->flags) == cmd->sb_flags &&
	       le64_to_cpu(sb->bitset_root) == cmd->committed_bitset_root &&
	       !memcmp(sb->metadata_space_map_root, cmd->committed_sm_root,
		       SPACE_MAP_ROOT_SIZE);
	dm_bm_unlock(sblock);

	if (same || cmd->failed) {
		up_write(&cmd->lock);
		dm_block_manager_destroy(bm);
		return cmd->failed ? -EIO : 0;
	}

	DMINFO("metadata changed on disk since this table was loaded: reloading");
	__take_persistent_data(cmd, &old);
	r = __create_persistent_data(cmd, bm, false, &error);
	if (r) {
		DMERR("reloading the metadata failed: %s (error %d)", error, r);
		cmd->failed = true;
	} else {
		cmd->transaction_dirty = false;
		*reloaded = true;
		flagged = cmd->sb_flags & SB_FLAG_NEEDS_CHECK;
	}
	up_write(&cmd->lock);
	destroy_persistent_data(&old);
	if (flagged)
		dm_clone_metadata_set_read_only(cmd);

	return r;
}

bool dm_clone_metadata_needs_check(struct dm_clone_metadata *cmd)
{
	bool r;

	down_read(&cmd->lock);
	r = cmd->sb_flags & SB_FLAG_NEEDS_CHECK;
	up_read(&cmd->lock);
	return r;
}

/*
 * Set the needs_check flag in the superblock as it was last committed: the
 * superblock block alone is rewritten, with the same roots, even though
 * the metadata is read-only (its block manager is writable for this
 * only). On failure (the device still refuses writes, or its flushes) the
 * flag stays pending, for dm_clone_metadata_record_needs_check().
 */
static void __set_needs_check(struct dm_clone_metadata *cmd)
{
	struct clone_superblock_disk *sb;
	struct dm_block *sblock;
	bool ro = dm_bm_is_read_only(cmd->bm);
	int r;

	lockdep_assert_held_write(&cmd->lock);
	if (ro)
		dm_bm_set_read_write(cmd->bm);
	r = dm_bm_write_lock(cmd->bm, SUPERBLOCK_LOCATION, &sb_validator,
			     &sblock);
	if (!r) {
		sb = dm_block_data(sblock);
		sb->flags = cpu_to_le32(cmd->sb_flags | SB_FLAG_NEEDS_CHECK);
		dm_bm_unlock(sblock);
		r = dm_bm_flush(cmd->bm);
	}
	if (ro)
		dm_bm_set_read_only(cmd->bm);

	cmd->needs_check_pending = r;
	if (r) {
		DMERR("cannot write the needs_check flag (error %d): will try again at suspend",
		      r);
		return;
	}
	cmd->sb_flags |= SB_FLAG_NEEDS_CHECK;
	DMINFO("needs_check flag set in the superblock");
}

void dm_clone_metadata_record_needs_check(struct dm_clone_metadata *cmd)
{
	down_write(&cmd->lock);
	if (cmd->needs_check_pending && cmd->bm && !cmd->failed)
		__set_needs_check(cmd);
	up_write(&cmd->lock);
}

void dm_clone_metadata_release_bitmap(struct dm_clone_metadata *cmd)
{
	unsigned long *map, *dirty, flags;

	down_write(&cmd->lock);
	spin_lock_irqsave(&cmd->bitmap_lock, flags);
	if (cmd->all_hydrated || cmd->nr_hydrated != cmd->nr_regions ||
	    cmd->nr_dirty || cmd->transaction_dirty || cmd->failed) {
		spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
		up_write(&cmd->lock);
		return;
	}
	WRITE_ONCE(cmd->all_hydrated, true);
	map = cmd->region_map;
	dirty = cmd->dirty_words;
	spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
	up_write(&cmd->lock);

	/* Wait for lockless readers that may still look at the bitmap. */
	synchronize_rcu();
	cmd->region_map = NULL;
	cmd->dirty_words = NULL;
	kvfree(dirty);
	kvfree(map);
}

/* ---- Commit and abort ---- */

/*
 * Write the on-disk bitset word that holds in-core word @w, whole, from the
 * in-core bitmap: one array update per word, not one per bit (a discard of
 * a whole large device sets billions). The in-core word may hold bits set
 * since it was taken: their data was written before they were set, so the
 * destination flush that follows this pre-commit covers it too.
 */
static int __word_to_bitset(struct dm_clone_metadata *cmd, unsigned long w)
{
	unsigned long di = (unsigned long)((u64)w * BITS_PER_LONG /
					   BITS_PER_DISK_WORD);
	__le64 value;
	u64 v;

#if BITS_PER_LONG == 64
	v = READ_ONCE(cmd->region_map[w]);
#else
	v = READ_ONCE(cmd->region_map[2 * di]);
	if (2 * di + 1 < cmd->nr_longs)
		v |= (u64)READ_ONCE(cmd->region_map[2 * di + 1]) << 32;
#endif
	value = cpu_to_le64(v);
	__dm_bless_for_disk(&value);
	return dm_array_set_value(&cmd->bitset_info.array_info,
				  cmd->bitset_root, di, &value,
				  &cmd->bitset_root);
}

/*
 * How many array blocks the open transaction may shadow without running out
 * of metadata space half-way (running out inside the persistent-data
 * library can leave a block locked, which a later abort cannot recover
 * from): half the free blocks beyond COMMIT_SLACK_BLOCKS, since each array
 * block shadowed may cost a second block (its btree leaf, the space map's
 * record of the old copy's release). -ENOSPC when not even one.
 */
static int __commit_budget(struct dm_clone_metadata *cmd, u64 *budget)
{
	dm_block_t nr_free;
	int r;

	r = dm_sm_get_nr_free(cmd->sm, &nr_free);
	if (r)
		return r;
	if (nr_free < COMMIT_SLACK_BLOCKS + 2) {
		DMERR("metadata full: %llu free blocks, a commit needs at least %u",
		      (unsigned long long)nr_free, COMMIT_SLACK_BLOCKS + 2);
		return -ENOSPC;
	}
	*budget = (nr_free - COMMIT_SLACK_BLOCKS) / 2;
	return 0;
}

/* The array block of the on-disk bitset that holds in-core word @w. */
static unsigned long word_array_block(unsigned long w)
{
	return (unsigned long)((u64)w * BITS_PER_LONG / BITS_PER_DISK_WORD /
			       DISK_WORDS_PER_ARRAY_BLOCK);
}

int dm_clone_metadata_pre_commit(struct dm_clone_metadata *cmd)
{
	unsigned long w = 0, flags, blk, last_blk = ULONG_MAX;
	u64 budget, blocks = 0;
	bool more = false;
	int r = 0;

	down_write(&cmd->lock);
	if (cmd->read_only || cmd->failed) {
		r = -EPERM;
		goto out;
	}

	/* Nothing is committed before the grow (at resume). */
	if (WARN_ON_ONCE(cmd->disk_target_size != cmd->target_size)) {
		r = -EINVAL;
		goto out;
	}
	r = __commit_budget(cmd, &budget);
	if (r)
		goto out;

	while (!cmd->all_hydrated) {
		spin_lock_irqsave(&cmd->bitmap_lock, flags);
		w = find_next_bit(cmd->dirty_words, cmd->nr_longs, w);
		if (w >= cmd->nr_longs) {
			spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
			break;
		}
		/* Words are taken in order: a new array block, or the end. */
		blk = word_array_block(w);
		if (blk != last_blk) {
			if (blocks == budget) {
				spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
				more = true;	/* the rest in the next transaction */
				break;
			}
			blocks++;
			last_blk = blk;
		}
		/*
		 * The transaction holds changes before the dirty count
		 * drops: dm_clone_changed_this_transaction() must never see
		 * neither (a flush would then pass while this commit runs).
		 */
		WRITE_ONCE(cmd->transaction_dirty, true);
		smp_wmb();	/* pairs with dm_clone_changed_this_transaction() */
		__clear_bit(w, cmd->dirty_words);
		WRITE_ONCE(cmd->nr_dirty, cmd->nr_dirty - 1);
		spin_unlock_irqrestore(&cmd->bitmap_lock, flags);

		r = __word_to_bitset(cmd, w);
		if (r)
			goto out;
		w++;
		cond_resched();
	}

	r = dm_bitset_flush(&cmd->bitset_info, cmd->bitset_root,
			    &cmd->bitset_root);
	if (!r && more)
		r = 1;
out:
	up_write(&cmd->lock);
	return r;
}

int dm_clone_metadata_commit(struct dm_clone_metadata *cmd)
{
	int r;

	down_write(&cmd->lock);
	if (cmd->read_only || cmd->failed) {
		r = -EPERM;
		goto out;
	}

	r = dm_tm_pre_commit(cmd->tm);
	if (!r)
		r = __write_superblock(cmd);
	if (!r)
		cmd->transaction_dirty = false;
out:
	up_write(&cmd->lock);
	return r;
}

int dm_clone_metadata_grow(struct dm_clone_metadata *cmd)
{
	u64 old_blocks, new_blocks, need;
	unsigned long old_regions;
	sector_t old_size;
	dm_block_t nr_free;
	const char *error;
	int r;

	down_write(&cmd->lock);
	if (cmd->disk_target_size == cmd->target_size) {
		r = 0;
		goto out;
	}
	if (cmd->read_only || cmd->failed) {
		r = -EPERM;
		goto out;
	}
	/* Again: another table may have hydrated that region since the load. */
	r = __check_grow(cmd, &error);
	if (r)
		goto out;

	/* The new array blocks, their btree, and a commit's slack. */
	old_blocks = DIV_ROUND_UP(nr_disk_words(cmd), DISK_WORDS_PER_ARRAY_BLOCK);
	new_blocks = DIV_ROUND_UP(DIV_ROUND_UP(cmd->nr_regions, BITS_PER_DISK_WORD),
				  DISK_WORDS_PER_ARRAY_BLOCK);
	need = new_blocks - old_blocks;
	need += need / 64 + COMMIT_SLACK_BLOCKS;
	r = dm_sm_get_nr_free(cmd->sm, &nr_free);
	if (r)
		goto out;
	if (nr_free < need) {
		DMERR("cannot grow: %llu free metadata blocks, growing needs %llu",
		      (unsigned long long)nr_free, need);
		r = -ENOSPC;
		goto out;
	}

	old_regions = cmd->disk_regions;
	old_size = cmd->disk_target_size;
	r = dm_bitset_flush(&cmd->bitset_info, cmd->bitset_root,
			    &cmd->bitset_root);
	/* (A longer last region alone needs no new bit.) */
	if (!r && old_regions != cmd->nr_regions)
		r = dm_bitset_resize(&cmd->bitset_info, cmd->bitset_root,
				     old_regions, cmd->nr_regions, false,
				     &cmd->bitset_root);
	if (!r) {
		cmd->transaction_dirty = true;
		cmd->disk_regions = cmd->nr_regions;
		cmd->disk_target_size = cmd->target_size;
		r = dm_tm_pre_commit(cmd->tm);
	}
	if (!r)
		r = __write_superblock(cmd);
	if (r) {
		/* The caller aborts to the last commit, of the old length. */
		cmd->disk_regions = old_regions;
		cmd->disk_target_size = old_size;
		DMERR("growing the region bitset failed: error %d", r);
		goto out;
	}
	cmd->transaction_dirty = false;
	DMINFO("grown to %llu sectors (%lu regions)",
	       (unsigned long long)cmd->target_size, cmd->nr_regions);
out:
	up_write(&cmd->lock);
	return r;
}

void dm_clone_metadata_set_read_only(struct dm_clone_metadata *cmd)
{
	unsigned long flags;

	down_write(&cmd->lock);
	spin_lock_irqsave(&cmd->bitmap_lock, flags);
	WRITE_ONCE(cmd->read_only, true);
	spin_unlock_irqrestore(&cmd->bitmap_lock, flags);
	if (cmd->bm)
		dm_bm_set_read_only(cmd->bm);
	up_write(&cmd->lock);
}

int dm_clone_metadata_abort(struct dm_clone_metadata *cmd, bool needs_check)
{
	struct clone_pd_objects old = { };
	struct dm_block_manager *bm;
	const char *error;
	int r;

	dm_clone_metadata_set_read_only(cmd);

	/* Outside the lock, as in dm_clone_metadata_refresh(). */
	bm = new_block_manager(cmd, &error);

	down_write(&cmd->lock);
	if (cmd->failed) {
		r = -EPERM;
		goto out;
	}

	__take_persistent_data(cmd, &old);
	if (IS_ERR(bm)) {
		r = PTR_ERR(bm);
		bm = NULL;
	} else {
		r = __create_persistent_data(cmd, bm, false, &error);
		bm = NULL;	/* cmd's, or destroyed */
	}
	if (r) {
		DMERR("aborting the metadata transaction failed: %s (error %d)",
		      error, r);
		WRITE_ONCE(cmd->failed, true);
		goto out;
	}
	if (needs_check)
		__set_needs_check(cmd);
	dm_bm_set_read_only(cmd->bm);
	cmd->transaction_dirty = false;
out:
	up_write(&cmd->lock);
	if (!IS_ERR_OR_NULL(bm))
		dm_block_manager_destroy(bm);
	destroy_persistent_data(&old);
	return r;
}

int dm_clone_get_metadata_usage(struct dm_clone_metadata *cmd,
				u64 *used, u64 *total, bool nowait)
{
	dm_block_t nr_free, nr_blocks;
	int r = -EPERM;

	if (!nowait || !READ_ONCE(cmd->last_total)) {
		down_read(&cmd->lock);
	} else if (!down_read_trylock(&cmd->lock)) {
		/* A commit holds the lock, maybe stuck on the device. */
		if (READ_ONCE(cmd->failed))
			return -EPERM;
		*used = READ_ONCE(cmd->last_used);
		*total = READ_ONCE(cmd->last_total);
		return 0;
	}

	if (!cmd->failed && cmd->sm) {
		r = dm_sm_get_nr_free(cmd->sm, &nr_free);
		if (!r)
			r = dm_sm_get_nr_blocks(cmd->sm, &nr_blocks);
		if (!r) {
			*used = nr_blocks - nr_free;
			*total = nr_blocks;
			WRITE_ONCE(cmd->last_used, *used);
			WRITE_ONCE(cmd->last_total, *total);
		}
	}
	up_read(&cmd->lock);

	return r;
}
