// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writing fresh metadata in the layout the kernel itself writes: a
 * superblock, the metadata space map (index, bitmaps, an empty ref-count
 * btree) counting every block once, the bitset's array blocks under a
 * btree; every other block first, a flush, then the superblock and a
 * second flush, so a crash leaves no valid superblock over half a format.
 */
#include <stdlib.h>
#include <string.h>

#include "md.h"

struct writer {
	const struct dev *d;
	uint64_t next;		/* next free block */
	int failed;
};

static uint64_t put_block(struct writer *wr, uint8_t *blk, uint32_t xor)
{
	uint64_t b = wr->next++;

	if (xor == ARRAY_CSUM_XOR)
		put64(blk + 16, b);
	else
		put64(blk + 8, b);
	block_seal(blk, xor);
	if (dev_write(wr->d, b, blk))
		wr->failed = 1;
	return b;
}

static uint64_t put_node(struct writer *wr, uint32_t flags, uint32_t vsize,
			 const uint64_t *keys, const uint64_t *vals, uint32_t n)
{
	uint32_t max = btree_max_entries(vsize);
	uint8_t blk[MD_BLOCK];

	memset(blk, 0, sizeof(blk));
	put32(blk + 4, flags);
	put32(blk + 16, n);
	put32(blk + 20, max);
	put32(blk + 24, vsize);
	for (uint32_t i = 0; i < n; i++) {
		put64(blk + NODE_HDR + 8 * i, keys[i]);
		if (vsize == 8)
			put64(blk + NODE_HDR + 8 * max + 8 * i, vals[i]);
		else
			put32(blk + NODE_HDR + 8 * max + 4 * i, (uint32_t)vals[i]);
	}
	return put_block(wr, blk, BTREE_CSUM_XOR);
}

/*
 * A btree of value size 8 over @n (key, value) pairs, leaves full: each
 * level's nodes become the next level's entries, keyed by their first key.
 */
static uint64_t put_btree(struct writer *wr, uint64_t *keys, uint64_t *vals,
			  uint64_t n)
{
	uint32_t max = btree_max_entries(8);
	uint32_t flags = NODE_LEAF;

	for (;;) {
		uint64_t out = 0;

		for (uint64_t i = 0; i < n || (!n && !i); i += max) {
			uint32_t m = (uint32_t)(n - i < max ? n - i : max);
			uint64_t k = n ? keys[i] : 0;

			vals[out] = put_node(wr, flags, 8, keys + i, vals + i, m);
			keys[out++] = k;
			if (!n)
				break;
		}
		if (out == 1)
			return vals[0];
		n = out;
		flags = NODE_INTERNAL;
	}
}

static uint64_t blocks_needed(uint64_t nr_ablocks, uint32_t nr_bitmaps)
{
	uint64_t need = 3 + nr_bitmaps + nr_ablocks, level = nr_ablocks;

	do {
		level = (level + 251) / 252;
		need += level ? level : 1;
	} while (level > 1);
	return need;
}

int md_format(const struct dev *d, uint64_t region_size, uint64_t target_size,
	      uint32_t flags, const struct bits *hydrated, const char **error)
{
	uint64_t nr_regions = hydrated->n, nr_words = (nr_regions + 63) / 64;
	uint64_t nr_ablocks = (nr_words + ARRAY_WORDS - 1) / ARRAY_WORDS;
	uint64_t nr_blocks = sm_usable_blocks(d), *keys, *vals, root, refroot;
	uint32_t nr_bitmaps = (uint32_t)((nr_blocks + BITMAP_ENTRIES - 1) /
					 BITMAP_ENTRIES);
	struct writer wr = { .d = d, .next = 2 + nr_bitmaps };
	uint8_t blk[MD_BLOCK], index[MD_BLOCK];
	uint64_t used;

	if (nr_blocks < min_metadata_blocks(nr_regions) ||
	    nr_blocks < blocks_needed(nr_ablocks, nr_bitmaps)) {
		*error = "metadata device too small for the number of regions";
		return -1;
	}
	keys = calloc((size_t)nr_ablocks + 1, sizeof(*keys));
	vals = calloc((size_t)nr_ablocks + 1, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		*error = "out of memory";
		return -1;
	}

	/* The ref-count btree: empty, every count is 1. */
	refroot = put_node(&wr, NODE_LEAF, 4, NULL, NULL, 0);

	for (uint64_t a = 0; a < nr_ablocks; a++) {
		uint64_t first = a * ARRAY_WORDS;
		uint32_t n = (uint32_t)(nr_words - first < ARRAY_WORDS ?
					nr_words - first : ARRAY_WORDS);

		memset(blk, 0, sizeof(blk));
		put32(blk + 4, ARRAY_WORDS);
		put32(blk + 8, n);
		put32(blk + 12, 8);
		for (uint32_t j = 0; j < n; j++)
			put64(blk + ARRAY_HDR + 8 * j, hydrated->w[first + j]);
		keys[a] = a;
		vals[a] = put_block(&wr, blk, ARRAY_CSUM_XOR);
	}
	root = put_btree(&wr, keys, vals, nr_ablocks);
	free(keys);
	free(vals);
	used = wr.next;

	/* Bitmaps: blocks [0, used) have count 1, the rest are free. */
	memset(index, 0, sizeof(index));
	for (uint32_t i = 0; i < nr_bitmaps; i++) {
		uint64_t start = (uint64_t)i * BITMAP_ENTRIES, b = 2 + i;
		uint32_t inuse = 0;
		uint8_t *ie = index + INDEX_HDR + IE_SIZE * i;

		memset(blk, 0, sizeof(blk));
		for (uint32_t j = 0; j < BITMAP_ENTRIES && start + j < used; j++) {
			uint8_t *w = blk + BITMAP_HDR + 8 * (j / 32);

			put64(w, get64(w) | 1ULL << (2 * (j % 32) + 1));
			inuse++;
		}
		put64(blk + 8, b);
		block_seal(blk, BITMAP_CSUM_XOR);
		if (dev_write(d, b, blk))
			wr.failed = 1;
		put64(ie, b);
		put32(ie + 8, BITMAP_ENTRIES - inuse);
		put32(ie + 12, inuse);
	}
	put64(index + 8, 1);
	block_seal(index, INDEX_CSUM_XOR);
	if (dev_write(d, 1, index))
		wr.failed = 1;
	if (wr.failed || dev_sync(d)) {
		*error = "cannot write the metadata device";
		return -1;
	}

	memset(blk, 0, sizeof(blk));
	put32(blk + SB_OFF_FLAGS, flags);
	put64(blk + SB_OFF_BLOCKNR, SB_LOCATION);
	put64(blk + SB_OFF_MAGIC, SB_MAGIC);
	put32(blk + SB_OFF_VERSION, SB_VERSION);
	put64(blk + SB_OFF_SM_ROOT + SMR_NR_BLOCKS, nr_blocks);
	put64(blk + SB_OFF_SM_ROOT + SMR_NR_ALLOCATED, used);
	put64(blk + SB_OFF_SM_ROOT + SMR_BITMAP_ROOT, 1);
	put64(blk + SB_OFF_SM_ROOT + SMR_REF_COUNT_ROOT, refroot);
	put64(blk + SB_OFF_REGION_SIZE, region_size);
	put64(blk + SB_OFF_TARGET_SIZE, target_size);
	put64(blk + SB_OFF_BITSET_ROOT, root);
	block_seal(blk, SB_CSUM_XOR);
	if (dev_write(d, SB_LOCATION, blk) || dev_sync(d)) {
		*error = "cannot write the superblock";
		return -1;
	}
	return 0;
}
