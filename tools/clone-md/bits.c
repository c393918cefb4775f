// SPDX-License-Identifier: GPL-2.0-only
/*
 * A plain in-memory bitmap of regions (bit N: region N) and the runs of
 * set bits the dumps and the repair report are made of.
 */
#include <stdlib.h>

#include "md.h"

int bits_init(struct bits *b, uint64_t n)
{
	b->n = n;
	b->w = calloc((size_t)(n / 64 + 1), sizeof(uint64_t));
	return b->w ? 0 : -1;
}

void bits_free(struct bits *b)
{
	free(b->w);
	b->w = NULL;
	b->n = 0;
}

void bits_set(struct bits *b, uint64_t i)
{
	if (i < b->n)
		b->w[i / 64] |= 1ULL << (i % 64);
}

bool bits_test(const struct bits *b, uint64_t i)
{
	return i < b->n && (b->w[i / 64] >> (i % 64)) & 1;
}

void bits_set_range(struct bits *b, uint64_t begin, uint64_t len)
{
	uint64_t end = begin + len;

	if (end > b->n || end < begin)
		end = b->n;
	for (uint64_t i = begin; i < end; ) {
		if (i % 64 == 0 && end - i >= 64) {
			b->w[i / 64] = ~0ULL;
			i += 64;
		} else {
			bits_set(b, i++);
		}
	}
}

uint64_t bits_count(const struct bits *b)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < (b->n + 63) / 64; i++)
		c += (uint64_t)__builtin_popcountll(b->w[i]);
	return c;
}

/* Finds the bit equal to @want at or after @i, or b->n. */
static uint64_t find(const struct bits *b, uint64_t i, bool want)
{
	while (i < b->n) {
		uint64_t w = b->w[i / 64];

		if (!want)
			w = ~w;
		w &= ~0ULL << (i % 64);
		if (w) {
			i = i / 64 * 64 + (uint64_t)__builtin_ctzll(w);
			return i < b->n ? i : b->n;
		}
		i = (i / 64 + 1) * 64;
	}
	return b->n;
}

bool bits_next_run(const struct bits *b, uint64_t *pos, uint64_t *len)
{
	uint64_t begin = find(b, *pos, true), end;

	if (begin >= b->n)
		return false;
	end = find(b, begin, false);
	*pos = begin;
	*len = end - begin;
	return true;
}
