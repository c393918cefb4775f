// SPDX-License-Identifier: GPL-2.0-only
/*
 * The dm-clone superblock (block 0): decoding it, telling clone metadata
 * from anything else, and checking every field against the device it
 * lives on and against the bounds the kernel target accepts.
 */
#include <string.h>

#include "md.h"

void super_decode(const uint8_t *blk, struct super *sb)
{
	const uint8_t *smr = blk + SB_OFF_SM_ROOT;

	sb->csum = get32(blk + SB_OFF_CSUM);
	sb->flags = get32(blk + SB_OFF_FLAGS);
	sb->blocknr = get64(blk + SB_OFF_BLOCKNR);
	sb->magic = get64(blk + SB_OFF_MAGIC);
	sb->version = get32(blk + SB_OFF_VERSION);
	sb->region_size = get64(blk + SB_OFF_REGION_SIZE);
	sb->target_size = get64(blk + SB_OFF_TARGET_SIZE);
	sb->bitset_root = get64(blk + SB_OFF_BITSET_ROOT);
	sb->sm_nr_blocks = get64(smr + SMR_NR_BLOCKS);
	sb->sm_nr_allocated = get64(smr + SMR_NR_ALLOCATED);
	sb->sm_index = get64(smr + SMR_BITMAP_ROOT);
	sb->sm_ref_root = get64(smr + SMR_REF_COUNT_ROOT);
	sb->nr_regions = 0;
	if (sb->region_size)
		sb->nr_regions = sb->target_size / sb->region_size +
				 (sb->target_size % sb->region_size ? 1 : 0);
}

bool super_is_clone(const uint8_t *blk)
{
	return get64(blk + SB_OFF_MAGIC) == SB_MAGIC;
}

bool block_all_zero(const uint8_t *blk)
{
	for (unsigned int i = 0; i < MD_BLOCK; i++)
		if (blk[i])
			return false;
	return true;
}

/* The blocks the kernel's space map addresses on this device. */
uint64_t sm_usable_blocks(const struct dev *d)
{
	return d->nr_blocks < SM_MAX_BLOCKS ? d->nr_blocks : SM_MAX_BLOCKS;
}

/*
 * As the kernel computes it (min_metadata_blocks() in dm-clone-metadata.c):
 * the bitset's array blocks, a 64th more, and room for a small commit.
 */
uint64_t min_metadata_blocks(uint64_t nr_regions)
{
	uint64_t words = (nr_regions + 63) / 64;
	uint64_t array_blocks = (words + ARRAY_WORDS - 1) / ARRAY_WORDS;

	return array_blocks + array_blocks / 64 + 2 * 64;
}

int super_check(const uint8_t *blk, const struct dev *d, struct super *sb,
		report_fn report, void *ctx)
{
	uint64_t usable = sm_usable_blocks(d);
	uint32_t csum = block_csum(blk, SB_CSUM_XOR);
	int n = 0;

	super_decode(blk, sb);
	if (sb->magic != SB_MAGIC) {
		report(ctx, 0, "superblock: bad magic 0x%llx (expected 0x%llx)",
		       (unsigned long long)sb->magic, SB_MAGIC);
		return 1;
	}
	if (sb->blocknr != SB_LOCATION) {
		report(ctx, 0, "superblock: block number field is %llu, expected 0",
		       (unsigned long long)sb->blocknr);
		n++;
	}
	if (csum != sb->csum) {
		report(ctx, 0, "superblock: bad checksum 0x%08x (computed 0x%08x)",
		       sb->csum, csum);
		n++;
	}
	if (sb->version != SB_VERSION) {
		report(ctx, 0, "superblock: unsupported version %u (expected %u)",
		       sb->version, SB_VERSION);
		n++;
	}
	if (sb->flags & ~SB_FLAG_NEEDS_CHECK) {
		report(ctx, 0, "superblock: unknown flags 0x%x", sb->flags);
		n++;
	}
	if (sb->region_size < MIN_REGION_SIZE ||
	    sb->region_size > MAX_REGION_SIZE ||
	    (sb->region_size & (sb->region_size - 1))) {
		report(ctx, 0, "superblock: invalid region size %llu sectors (a power of two, %llu to %llu)",
		       (unsigned long long)sb->region_size, MIN_REGION_SIZE,
		       MAX_REGION_SIZE);
		n++;
		sb->nr_regions = 0;
	} else if (!sb->target_size || sb->nr_regions > MAX_REGIONS) {
		report(ctx, 0, "superblock: target size %llu sectors gives %llu regions (1 to %llu allowed)",
		       (unsigned long long)sb->target_size,
		       (unsigned long long)sb->nr_regions, MAX_REGIONS);
		n++;
		sb->nr_regions = 0;
	}
	if (!sb->sm_nr_blocks || sb->sm_nr_blocks > usable) {
		report(ctx, 0, "superblock: space map covers %llu blocks, the device holds %llu",
		       (unsigned long long)sb->sm_nr_blocks,
		       (unsigned long long)usable);
		n++;
	}
	if (sb->sm_nr_allocated > sb->sm_nr_blocks) {
		report(ctx, 0, "superblock: %llu blocks allocated of %llu",
		       (unsigned long long)sb->sm_nr_allocated,
		       (unsigned long long)sb->sm_nr_blocks);
		n++;
	}
	const struct { const char *name; uint64_t b; } roots[] = {
		{ "space map index", sb->sm_index },
		{ "ref-count btree root", sb->sm_ref_root },
		{ "bitset root", sb->bitset_root },
	};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		if (roots[i].b && roots[i].b < usable)
			continue;
		report(ctx, 0, "superblock: %s at block %llu, out of range",
		       roots[i].name, (unsigned long long)roots[i].b);
		n++;
	}
	if (sb->nr_regions && min_metadata_blocks(sb->nr_regions) > usable) {
		report(ctx, 0, "superblock: %llu regions need at least %llu metadata blocks, the device holds %llu",
		       (unsigned long long)sb->nr_regions,
		       (unsigned long long)min_metadata_blocks(sb->nr_regions),
		       (unsigned long long)usable);
		n++;
	}
	return n;
}
