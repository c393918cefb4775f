// SPDX-License-Identifier: GPL-2.0-only
/*
 * Checking the metadata space map: its index block, every bitmap block
 * (checksums, block numbers, free counts), the ref-count btree that holds
 * counts above two, and each block's count against the references
 * actually found from the superblock.
 */
#include <stdlib.h>
#include <string.h>

#include "md.h"

#define UNRESOLVED	UINT32_MAX	/* bitmap says 3: count is in the btree */
#define MAX_REF_LINES	20

struct sm_ctx {
	uint32_t *count;	/* per block, from the bitmaps */
	uint64_t nr_blocks;
};

static unsigned int bitmap_entry(const uint8_t *blk, uint32_t i)
{
	uint64_t word = get64(blk + BITMAP_HDR + 8 * (i / 32));
	unsigned int bit = 2 * (i % 32);

	return (unsigned int)(((word >> bit) & 1) << 1 | ((word >> (bit + 1)) & 1));
}

static void ref_leaf(struct walk *w, uint64_t node, uint64_t key,
		     const uint8_t *value)
{
	struct sm_ctx *c = w->arg;
	uint32_t v = get32(value);

	if (key >= c->nr_blocks) {
		w->report(w->ctx, node, "ref-count btree node: entry for block %llu, past the space map's %llu blocks",
			  (unsigned long long)key, (unsigned long long)c->nr_blocks);
		w->problems++;
		return;
	}
	if (v < 3) {
		w->report(w->ctx, node, "ref-count btree node: block %llu has count %u (the btree holds counts above 2)",
			  (unsigned long long)key, v);
		w->problems++;
	}
	if (c->count[key] != UNRESOLVED) {
		w->report(w->ctx, node, "ref-count btree node: entry for block %llu, whose bitmap count is %u",
			  (unsigned long long)key, c->count[key]);
		w->problems++;
		return;
	}
	c->count[key] = v;
}

/* One bitmap block: its counts into c->count. Returns false if unusable. */
static bool read_bitmap(struct walk *w, struct sm_ctx *c, uint64_t index,
			const uint8_t *ie, uint32_t i)
{
	uint64_t b = get64(ie), start = (uint64_t)i * BITMAP_ENTRIES;
	uint32_t nr_free = get32(ie + 8), nfb = get32(ie + 12);
	uint32_t n = (uint32_t)(c->nr_blocks - start < BITMAP_ENTRIES ?
				c->nr_blocks - start : BITMAP_ENTRIES);
	uint32_t free_found = 0, first_free = BITMAP_ENTRIES;
	uint8_t blk[MD_BLOCK];

	long prev = seen_add(w->seen, b, K_BITMAP, index, w->report, w->ctx);

	if (prev > 0)
		w->report(w->ctx, index, "space map index: bitmap %u is block %llu, named by another entry too",
			  i, (unsigned long long)b);
	if (prev != 0) {
		w->problems++;
		return false;
	}
	if (dev_read(w->d, b, blk)) {
		w->report(w->ctx, b, "space map bitmap: cannot be read");
		w->problems++;
		return false;
	}
	if (!block_sound(w, b, blk, BITMAP_CSUM_XOR, 8))
		return false;
	/* The kernel counts the entries past the space map's end as free. */
	for (uint32_t j = 0; j < BITMAP_ENTRIES; j++) {
		unsigned int v = bitmap_entry(blk, j);

		if (j < n)
			c->count[start + j] = v == 3 ? UNRESOLVED : v;
		if (!v) {
			free_found++;
			if (first_free == BITMAP_ENTRIES)
				first_free = j;
		}
	}
	if (nr_free != free_found) {
		w->report(w->ctx, index, "space map index: bitmap %u says %u blocks free, the bitmap has %u",
			  i, nr_free, free_found);
		w->problems++;
	}
	if (nfb > first_free) {
		w->report(w->ctx, index, "space map index: bitmap %u says none free before %u, block %llu is free",
			  i, nfb, (unsigned long long)(start + first_free));
		w->problems++;
	}
	return true;
}

int sm_check(const struct dev *d, const struct super *sb, struct seen *seen,
	     report_fn report, void *ctx)
{
	struct sm_ctx c = { .nr_blocks = sb->sm_nr_blocks };
	struct walk w = {
		.d = d, .seen = seen, .kind = K_INDEX, .value_size = 4,
		.leaf = ref_leaf, .arg = &c, .report = report, .ctx = ctx,
	};
	uint32_t nr_bitmaps = (uint32_t)((c.nr_blocks + BITMAP_ENTRIES - 1) /
					 BITMAP_ENTRIES);
	uint64_t allocated = 0, mismatches = 0;
	uint8_t index[MD_BLOCK];
	bool all_known = true;
	uint8_t *known;

	c.count = calloc((size_t)c.nr_blocks, sizeof(*c.count));
	known = calloc((size_t)nr_bitmaps + 1, 1);
	if (!c.count || !known) {
		free(c.count);
		free(known);
		err("out of memory");
		return -1;
	}
	if (seen_add(seen, sb->sm_index, K_INDEX, SB_LOCATION, report, ctx) != 0) {
		w.problems++;
		all_known = false;
	} else if (dev_read(d, sb->sm_index, index)) {
		report(ctx, sb->sm_index, "space map index: cannot be read");
		w.problems++;
		all_known = false;
	} else if (!block_sound(&w, sb->sm_index, index, INDEX_CSUM_XOR, 8)) {
		all_known = false;
	} else {
		for (uint32_t i = 0; i < INDEX_MAX_BITMAPS; i++) {
			const uint8_t *ie = index + INDEX_HDR + IE_SIZE * i;

			if (i >= nr_bitmaps) {
				if (get64(ie) || get64(ie + 8)) {
					report(ctx, sb->sm_index, "space map index: entry %u set, only %u bitmaps cover the space map",
					       i, nr_bitmaps);
					w.problems++;
				}
				continue;
			}
			w.kind = K_BITMAP;
			known[i] = read_bitmap(&w, &c, sb->sm_index, ie, i);
			w.kind = K_INDEX;
			all_known &= known[i];
		}
	}

	w.kind = K_REF_NODE;
	btree_walk(&w, sb->sm_ref_root, SB_LOCATION);

	for (uint64_t b = 0; b < c.nr_blocks; b++) {
		uint32_t want = b < seen->n ? seen->refs[b] : 0;

		if (!known[b / BITMAP_ENTRIES])
			continue;
		if (c.count[b] == UNRESOLVED) {
			report(ctx, b, "space map: bitmap count 3 but no ref-count btree entry");
			w.problems++;
			continue;
		}
		if (c.count[b])
			allocated++;
		if (c.count[b] == want)
			continue;
		if (mismatches++ < MAX_REF_LINES) {
			report(ctx, b, "space map: ref count %u, %u references found%s",
			       c.count[b], want,
			       !want ? " (leaked)" : !c.count[b] ? " (in use but free)" : "");
		}
		w.problems++;
	}
	if (mismatches > MAX_REF_LINES)
		report(ctx, sb->sm_index, "space map: %llu more ref count mismatches",
		       (unsigned long long)(mismatches - MAX_REF_LINES));
	if (all_known && allocated != sb->sm_nr_allocated) {
		report(ctx, SB_LOCATION, "superblock: space map says %llu blocks allocated, the bitmaps hold %llu",
		       (unsigned long long)sb->sm_nr_allocated,
		       (unsigned long long)allocated);
		w.problems++;
	}
	free(c.count);
	free(known);
	return w.problems;
}
