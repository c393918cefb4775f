// SPDX-License-Identifier: GPL-2.0-only
/*
 * Walking persistent-data btrees and the bitset's array, trusting nothing:
 * every pointer is bounds-checked, every block's checksum, block number
 * and header are verified before use, a path that comes back to one of
 * its own nodes is a cycle, a node reached twice is shared, depth is
 * limited. The references found are counted for the space map check.
 */
#include <stdlib.h>
#include <string.h>

#include "md.h"

const char *const kind_name[] = {
	[K_NONE] = "unused block",
	[K_SUPER] = "superblock",
	[K_INDEX] = "space map index",
	[K_BITMAP] = "space map bitmap",
	[K_REF_NODE] = "ref-count btree node",
	[K_BITSET_NODE] = "bitset btree node",
	[K_ARRAY] = "array block",
};

int seen_init(struct seen *s, uint64_t n)
{
	s->n = n;
	s->refs = calloc((size_t)n + 1, sizeof(*s->refs));
	s->kind = calloc((size_t)n + 1, 1);
	if (!s->refs || !s->kind) {
		seen_free(s);
		return -1;
	}
	return 0;
}

void seen_free(struct seen *s)
{
	free(s->refs);
	free(s->kind);
	s->refs = NULL;
	s->kind = NULL;
}

long seen_add(struct seen *s, uint64_t b, enum kind k, uint64_t from,
	      report_fn report, void *ctx)
{
	long prev;

	if (b >= s->n) {
		report(ctx, from, "%s points to block %llu, past the end of the metadata (%llu blocks)",
		       from ? kind_name[s->kind[from]] : "superblock",
		       (unsigned long long)b, (unsigned long long)s->n);
		return -1;
	}
	if (s->refs[b] && s->kind[b] != k) {
		report(ctx, b, "used as %s and as %s", kind_name[s->kind[b]],
		       kind_name[k]);
		if (s->refs[b] < UINT32_MAX)
			s->refs[b]++;
		return -1;
	}
	prev = s->refs[b];
	s->kind[b] = (uint8_t)k;
	if (s->refs[b] < UINT32_MAX)
		s->refs[b]++;
	return prev;
}

uint32_t btree_max_entries(uint32_t value_size)
{
	return (MD_BLOCK - NODE_HDR) / (8 + value_size) / 3 * 3;
}

bool block_sound(struct walk *w, uint64_t b, const uint8_t *blk,
		 uint32_t xor, unsigned int off_blocknr)
{
	uint32_t csum = block_csum(blk, xor);
	const char *what = kind_name[w->kind];

	if (get64(blk + off_blocknr) != b) {
		w->report(w->ctx, b, "%s: block number field is %llu",
			  what, (unsigned long long)get64(blk + off_blocknr));
		w->problems++;
		return false;
	}
	if (csum != get32(blk)) {
		w->report(w->ctx, b, "%s: bad checksum 0x%08x (computed 0x%08x)",
			  what, get32(blk), csum);
		w->problems++;
		return false;
	}
	return true;
}

static bool read_block(struct walk *w, uint64_t b, uint8_t *blk)
{
	if (dev_read(w->d, b, blk) == 0)
		return true;
	w->report(w->ctx, b, "%s: cannot be read (device truncated?)",
		  kind_name[w->kind]);
	w->problems++;
	return false;
}

/* Header checks of a node that passed its checksum. */
static bool node_header_ok(struct walk *w, uint64_t b, const uint8_t *blk,
			   int depth, uint32_t *flags)
{
	const char *what = kind_name[w->kind];
	uint32_t nr = get32(blk + 16), max = get32(blk + 20);
	uint32_t vsize = get32(blk + 24);

	*flags = get32(blk + 4);
	if (*flags != NODE_INTERNAL && *flags != NODE_LEAF) {
		w->report(w->ctx, b, "%s: flags 0x%x, neither internal nor leaf",
			  what, *flags);
		return false;
	}
	if (vsize != (*flags == NODE_LEAF ? w->value_size : 8)) {
		w->report(w->ctx, b, "%s: value size %u, expected %u", what,
			  vsize, *flags == NODE_LEAF ? w->value_size : 8);
		return false;
	}
	if (max != btree_max_entries(vsize)) {
		w->report(w->ctx, b, "%s: max entries %u, expected %u", what,
			  max, btree_max_entries(vsize));
		return false;
	}
	if (nr > max) {
		w->report(w->ctx, b, "%s: %u entries, at most %u fit", what,
			  nr, max);
		return false;
	}
	if (!nr && (depth || *flags == NODE_INTERNAL)) {
		w->report(w->ctx, b, "%s: empty", what);
		return false;
	}
	return true;
}

static void walk_node(struct walk *w, uint64_t b, uint64_t from, int depth,
		      uint64_t lo, uint64_t hi, bool bounded)
{
	const char *what = kind_name[w->kind];
	uint8_t blk[MD_BLOCK];
	uint32_t flags, nr, max;
	long prev;

	for (int i = 0; i < depth; i++) {
		if (w->path[i] == b) {
			w->report(w->ctx, from, "%s: cycle: points back to block %llu",
				  what, (unsigned long long)b);
			w->problems++;
			return;
		}
	}
	prev = seen_add(w->seen, b, w->kind, from, w->report, w->ctx);
	if (prev < 0) {
		w->problems++;
		return;
	}
	if (prev > 0) {
		w->report(w->ctx, b, "%s: referenced more than once (also from block %llu)",
			  what, (unsigned long long)from);
		w->problems++;
		return;
	}
	if (depth >= BTREE_MAX_DEPTH) {
		w->report(w->ctx, b, "%s: btree deeper than %d levels", what,
			  BTREE_MAX_DEPTH);
		w->problems++;
		return;
	}
	w->path[depth] = b;
	if (!read_block(w, b, blk) || !block_sound(w, b, blk, BTREE_CSUM_XOR, 8))
		return;
	if (!node_header_ok(w, b, blk, depth, &flags)) {
		w->problems++;
		return;
	}
	nr = get32(blk + 16);
	max = get32(blk + 20);
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = get64(blk + NODE_HDR + 8 * i);

		if (k < lo || (bounded && k >= hi) ||
		    (i && k <= get64(blk + NODE_HDR + 8 * (i - 1)))) {
			w->report(w->ctx, b, "%s: key %u (%llu) out of order",
				  what, i, (unsigned long long)k);
			w->problems++;
			return;
		}
	}
	if (flags == NODE_LEAF) {
		const uint8_t *vals = blk + NODE_HDR + 8 * (size_t)max;

		if (w->leaf_depth < 0) {
			w->leaf_depth = depth;
		} else if (w->leaf_depth != depth) {
			w->report(w->ctx, b, "%s: leaf at depth %d, others at %d",
				  what, depth, w->leaf_depth);
			w->problems++;
		}
		for (uint32_t i = 0; i < nr; i++)
			w->leaf(w, b, get64(blk + NODE_HDR + 8 * i),
				vals + (size_t)i * w->value_size);
		return;
	}
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t child = get64(blk + NODE_HDR + 8 * (size_t)max + 8 * i);
		uint64_t k = get64(blk + NODE_HDR + 8 * i);
		bool last = i + 1 == nr;

		walk_node(w, child, b, depth + 1, k,
			  last ? hi : get64(blk + NODE_HDR + 8 * (i + 1)),
			  last ? bounded : true);
	}
}

void btree_walk(struct walk *w, uint64_t root, uint64_t from)
{
	w->leaf_depth = -1;
	walk_node(w, root, from, 0, 0, 0, false);
}

/* ---- The bitset: a dm_array of 64-bit words under a btree ---- */

struct array_walk {
	uint64_t nr_regions, nr_words, nr_ablocks;
	struct bits have;	/* array block indices found */
	struct bitset_read *out;
};

static void array_leaf(struct walk *w, uint64_t node, uint64_t key,
		       const uint8_t *value)
{
	struct array_walk *a = w->arg;
	uint64_t b = get64(value), first, want;
	uint8_t blk[MD_BLOCK];
	enum kind k = w->kind;
	long prev;

	if (key >= a->nr_ablocks) {
		w->report(w->ctx, node, "bitset btree node: array block index %llu, the regions need %llu",
			  (unsigned long long)key,
			  (unsigned long long)a->nr_ablocks);
		w->problems++;
		return;
	}
	bits_set(&a->have, key);
	prev = seen_add(w->seen, b, K_ARRAY, node, w->report, w->ctx);
	if (prev < 0) {
		w->problems++;
		return;
	}
	w->kind = K_ARRAY;
	if (!read_block(w, b, blk) || !block_sound(w, b, blk, ARRAY_CSUM_XOR, 16)) {
		w->kind = k;
		return;
	}
	w->kind = k;
	first = key * ARRAY_WORDS;
	want = a->nr_words - first < ARRAY_WORDS ? a->nr_words - first : ARRAY_WORDS;
	if (get32(blk + 12) != 8 || get32(blk + 4) != ARRAY_WORDS ||
	    get32(blk + 8) != want) {
		w->report(w->ctx, b, "array block: value size %u, %u of %u entries; expected 8, %llu of %u",
			  get32(blk + 12), get32(blk + 8), get32(blk + 4),
			  (unsigned long long)want, ARRAY_WORDS);
		w->problems++;
		return;
	}
	for (uint64_t j = 0; j < want; j++) {
		uint64_t word = get64(blk + ARRAY_HDR + 8 * j);
		uint64_t wi = first + j, mask = ~0ULL;
		uint64_t left = a->nr_regions - wi * 64;

		if (left < 64)
			mask = (1ULL << left) - 1;
		if (word & ~mask) {
			w->report(w->ctx, b, "array block: bits set past the last region (%llu)",
				  (unsigned long long)a->nr_regions - 1);
			w->problems++;
		}
		a->out->hydrated.w[wi] = word & mask;
		a->out->known.w[wi] = mask;
	}
	a->out->words_found += want;
}

int bitset_read(const struct dev *d, uint64_t root, uint64_t nr_regions,
		struct seen *seen, struct bitset_read *out,
		report_fn report, void *ctx)
{
	struct array_walk a = { .nr_regions = nr_regions, .out = out };
	struct walk w = {
		.d = d, .seen = seen, .kind = K_BITSET_NODE, .value_size = 8,
		.leaf = array_leaf, .arg = &a, .report = report, .ctx = ctx,
	};
	uint64_t pos = 0;

	memset(out, 0, sizeof(*out));
	a.nr_words = (nr_regions + 63) / 64;
	a.nr_ablocks = (a.nr_words + ARRAY_WORDS - 1) / ARRAY_WORDS;
	if (bits_init(&out->hydrated, nr_regions) ||
	    bits_init(&out->known, nr_regions) ||
	    bits_init(&a.have, a.nr_ablocks)) {
		bits_free(&a.have);
		bitset_read_free(out);
		err("out of memory");
		return -1;
	}
	btree_walk(&w, root, SB_LOCATION);
	/* Array blocks no sound leaf named. */
	while (pos < a.nr_ablocks) {
		uint64_t end = pos;

		while (end < a.nr_ablocks && !bits_test(&a.have, end))
			end++;
		if (end > pos) {
			report(ctx, root, "bitset: no array block for words %llu-%llu (regions %llu-%llu)",
			       (unsigned long long)(pos * ARRAY_WORDS),
			       (unsigned long long)(end * ARRAY_WORDS < a.nr_words ?
						    end * ARRAY_WORDS : a.nr_words) - 1,
			       (unsigned long long)(pos * ARRAY_WORDS * 64),
			       (unsigned long long)(end * ARRAY_WORDS * 64 < nr_regions ?
						    end * ARRAY_WORDS * 64 : nr_regions) - 1);
			w.problems++;
		}
		pos = end + 1;
	}
	bits_free(&a.have);
	out->problems = w.problems;
	return 0;
}

void bitset_read_free(struct bitset_read *r)
{
	bits_free(&r->hydrated);
	bits_free(&r->known);
}
