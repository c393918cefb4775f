// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of dm-clone-region.h: region counts at the limits, region
 * size validation, discard rounding (never a sector outside the covered
 * regions, the partial last region), number parsing, the bitmap's word
 * masks (every range of a three-word map against a bit by bit loop), the
 * rule by which a copy batch reads across holes (maps of held and hole
 * regions, and the batch the rule makes of them).
 */
#include <string.h>

#include "unit.h"
#include "dm-clone-region.h"

static void test_nr_regions(void)
{
	CHECK(clone_nr_regions(8, 8) == 1);
	CHECK(clone_nr_regions(9, 8) == 2);
	CHECK(clone_nr_regions(1, 8) == 1);
	CHECK(clone_nr_regions(16, 8) == 2);
	/* 2^31 regions of 8 sectors: the limit is exactly reachable. */
	CHECK(clone_nr_regions(8ULL << 31, 8) == CLONE_MAX_REGIONS);
	CHECK(clone_nr_regions((8ULL << 31) + 1, 8) == CLONE_MAX_REGIONS + 1);
	/* Huge lengths do not overflow. */
	CHECK(clone_nr_regions(~0ULL, 2097152) == (~0ULL >> 21) + 1);
}

static void test_region_size(void)
{
	CHECK(clone_region_size_valid(8, 512, 512));
	CHECK(clone_region_size_valid(2097152, 512, 4096));
	CHECK(!clone_region_size_valid(4, 512, 512));
	CHECK(!clone_region_size_valid(4194304, 512, 512));
	CHECK(!clone_region_size_valid(24, 512, 512));	/* not a power of 2 */
	CHECK(!clone_region_size_valid(0, 512, 512));
	CHECK(clone_region_size_valid(8, 4096, 4096));	/* 4 KiB regions */
	CHECK(!clone_region_size_valid(8, 512, 8192));	/* smaller than lbs */
	CHECK(clone_region_size_valid(16, 8192, 512));
	CHECK(!clone_region_size_valid(8, 0, 512));
	CHECK(!clone_region_size_valid(1ULL << 62, 512, 512));
}

static void test_discard(void)
{
	u64 f, l, s, n;

	/* Inside one region: nothing. */
	CHECK(!clone_discard_regions(1, 6, 1000, 3, &f, &l));
	/* Exactly one region. */
	CHECK(clone_discard_regions(8, 8, 1000, 3, &f, &l) && f == 1 && l == 2);
	/* Straddling two regions partially: nothing. */
	CHECK(!clone_discard_regions(4, 8, 1000, 3, &f, &l));
	/* Unaligned both ends, covering regions 1..3. */
	CHECK(clone_discard_regions(5, 30, 1000, 3, &f, &l) && f == 1 && l == 4);
	/* Partial last region (1000 = 125 * 8; use 1001: region 125 has 1
	 * sector): a discard to the end covers it. */
	CHECK(clone_discard_regions(992, 9, 1001, 3, &f, &l) && f == 124 && l == 126);
	CHECK(clone_discard_regions(1000, 1, 1001, 3, &f, &l) && f == 125 && l == 126);
	/* Not reaching the end: the partial region is not covered. */
	CHECK(clone_discard_regions(992, 8, 1001, 3, &f, &l) && f == 124 && l == 125);
	/* Out of range or empty. */
	CHECK(!clone_discard_regions(0, 0, 1000, 3, &f, &l));
	CHECK(!clone_discard_regions(990, 20, 1000, 3, &f, &l));
	CHECK(!clone_discard_regions(~0ULL - 3, 8, ~0ULL, 3, &f, &l));
	/* At sector_t's maximum: no wrap-around in the rounding... */
	CHECK(!clone_discard_regions(~0ULL - 3, 2, ~0ULL, 3, &f, &l));
	CHECK(clone_discard_regions(~0ULL - 7, 7, ~0ULL, 3, &f, &l) &&
	      f == ~0ULL >> 3 && l == (~0ULL >> 3) + 1);
	/* ...nor in the sectors of the last (partial, 7 sectors) region. */
	clone_regions_to_sectors(~0ULL >> 3, (~0ULL >> 3) + 1, ~0ULL, 3, &s, &n);
	CHECK(s == ~0ULL - 7 && n == 7);
	CHECK(clone_discard_regions(0, ~0ULL, ~0ULL, 21, &f, &l) && f == 0);
	clone_regions_to_sectors(f, l, ~0ULL, 21, &s, &n);
	CHECK(s == 0 && n == ~0ULL);
	/* An empty range past the last full region is empty. */
	clone_regions_to_sectors(l, l, ~0ULL, 21, &s, &n);
	CHECK(n == 0);

	/* Sectors of regions: clipped to the target. */
	clone_regions_to_sectors(124, 126, 1001, 3, &s, &n);
	CHECK(s == 992 && n == 9);
	clone_regions_to_sectors(1, 4, 1000, 3, &s, &n);
	CHECK(s == 8 && n == 24);
	/* Large: 2^31 regions of 2^21 sectors. */
	clone_regions_to_sectors(0, 1ULL << 31, 1ULL << 52, 21, &s, &n);
	CHECK(s == 0 && n == 1ULL << 52);

	/* Exhaustive on a small target: the trimmed range lies inside the
	 * discard and is region aligned (except at the target's end). */
	for (u64 len_t = 1; len_t <= 40; len_t++)
		for (u64 a = 0; a < len_t; a++)
			for (u64 b = a + 1; b <= len_t; b++) {
				if (!clone_discard_regions(a, b - a, len_t, 3, &f, &l))
					continue;
				clone_regions_to_sectors(f, l, len_t, 3, &s, &n);
				CHECK(s >= a && s + n <= b);
				CHECK(s % 8 == 0);
				CHECK((s + n) % 8 == 0 || s + n == len_t);
			}
}

static void test_parse(void)
{
	u32 v;
	u64 w;

	CHECK(clone_parse_uint("0", &v) && v == 0);
	CHECK(clone_parse_uint("4294967295", &v) && v == 4294967295U);
	CHECK(!clone_parse_uint("4294967296", &v));
	CHECK(!clone_parse_uint("-1", &v));
	CHECK(clone_parse_uint("+1", &v) && v == 1);	/* as kstrtouint() */
	CHECK(!clone_parse_uint("+", &v));
	CHECK(!clone_parse_uint("++1", &v));
	CHECK(!clone_parse_uint("+-1", &v));
	CHECK(!clone_parse_uint("1x", &v));
	CHECK(!clone_parse_uint(" 1", &v));
	CHECK(!clone_parse_uint("", &v));
	CHECK(!clone_parse_uint("0x10", &v));
	CHECK(clone_parse_u64("18446744073709551615", &w) && w == ~0ULL);
	CHECK(!clone_parse_u64("18446744073709551616", &w));
	CHECK(clone_parse_u64("2097152", &w) && w == 2097152);
	CHECK(!clone_parse_u64("8.0", &w));
	CHECK(!clone_parse_u64("+8", &w));	/* as the classic region size */
}

static void test_word_mask(void)
{
	const unsigned long nbits = 3 * BITS_PER_LONG;
	unsigned long start, end, s, w, len, mask, map[3], ref[3], steps;
	int bad = 0;

	for (start = 0; start < nbits; start++) {
		for (end = start + 1; end <= nbits; end++) {
			map[0] = map[1] = map[2] = 0;
			ref[0] = ref[1] = ref[2] = 0;
			for (s = start; s < end; s++)
				ref[s / BITS_PER_LONG] |= 1UL << (s % BITS_PER_LONG);
			steps = 0;
			for (s = start; s < end; s += len) {
				mask = clone_word_mask(s, end, &w, &len);
				if (w >= 3 || !len || (map[w] & mask))
					bad++;	/* out of the map, stuck, or twice */
				else
					map[w] |= mask;
				if (__builtin_popcountl(mask) != (int)len)
					bad++;
				if (++steps > 3)
					break;
			}
			if (map[0] != ref[0] || map[1] != ref[1] || map[2] != ref[2])
				bad++;
		}
	}
	CHECK(bad == 0);
	/* A whole word at once, and a range ending inside the first word. */
	mask = clone_word_mask(BITS_PER_LONG, 2 * BITS_PER_LONG, &w, &len);
	CHECK(w == 1 && len == (unsigned long)BITS_PER_LONG && mask == ~0UL);
	mask = clone_word_mask(3, 5, &w, &len);
	CHECK(w == 0 && len == 2 && mask == 0x18);
}

/*
 * The batch clone_batch_may_cross() makes of @map ('H': a region the
 * batch may hold, '.': a hole), walked as the hydration's gather does:
 * the first region held and the end of the last, in *@first and *@end.
 */
static void batch_of(const char *map, unsigned long *first, unsigned long *end)
{
	unsigned long r = 0, n = strlen(map), held = 0, skipped = 0, s, e;

	*first = *end = n;
	while (r < n) {
		for (s = r; s < n && map[s] == '.'; s++)
			;
		if (s == n)
			break;
		if (held && !clone_batch_may_cross(held, skipped, s - r))
			break;
		for (e = s; e < n && map[e] == 'H'; e++)
			;
		if (held)
			skipped += s - r;
		else
			*first = s;
		held += e - s;
		*end = e;
		r = e;
	}
}

static void test_batch_holes(void)
{
	static const struct {
		const char *map;
		unsigned long first, end;
	} t[] = {
		{ "HHHH", 0, 4 },
		{ "H.H.H.H", 0, 7 },		/* each hole as long as held */
		{ "H..H", 0, 1 },		/* a hole longer than held */
		{ "HH..HH...H", 0, 6 },		/* 2 + 3 holes > 4 held */
		{ "HH..HH..H", 0, 9 },		/* 2 + 2 holes <= 4 held */
		{ "...HH.H", 3, 7 },		/* leading holes are not read */
		{ "...", 3, 3 },		/* nothing to hold */
		{ "H.HH...H", 0, 4 },		/* 1 + 3 > 3 held: stop */
	};
	unsigned long f, e, i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		batch_of(t[i].map, &f, &e);
		if (f != t[i].first || e != t[i].end)
			fprintf(stderr, "batch of %s: [%lu, %lu), want [%lu, %lu)\n",
				t[i].map, f, e, t[i].first, t[i].end);
		CHECK(f == t[i].first && e == t[i].end);
	}
}

/*
 * The background pass under clone_batch_room(): a window of @threshold
 * regions full of one-region copies (what writes leave), copies ending
 * oldest first, a batch started whenever the rule lets one, as large as
 * the room (at most @batch). Returns the smallest batch started.
 */
static unsigned long smallest_batch(unsigned long threshold,
				    unsigned long batch)
{
	unsigned long q[4096], head = 0, len = 0, n = 0, b, i, least = ~0UL;

	while (n < threshold) {		/* the crumbs */
		q[len++] = 1;
		n++;
	}
	for (i = 0; i < 2000; i++) {
		n -= q[head % 4096];	/* the oldest copy ends */
		head++;
		len--;
		while (clone_batch_room(threshold, n, batch, n)) {
			b = batch < threshold - n ? batch : threshold - n;
			q[(head + len++) % 4096] = b;
			n += b;
			if (b < least)
				least = b;
		}
	}
	return least;
}

static void test_batch_room(void)
{
	/* Full, or room for less than half a batch: wait. */
	CHECK(!clone_batch_room(2304, 2304, 256, 2304));
	CHECK(!clone_batch_room(2304, 2200, 256, 2200));
	CHECK(clone_batch_room(2304, 2176, 256, 2176));
	/* Nothing of the pass in flight: start, however small. */
	CHECK(clone_batch_room(2304, 2300, 256, 0));
	/* A threshold under the batch: half of the threshold. */
	CHECK(!clone_batch_room(16, 9, 256, 9));
	CHECK(clone_batch_room(16, 8, 256, 8));
	CHECK(clone_batch_room(1, 0, 256, 0));
	CHECK(!clone_batch_room(1, 1, 256, 1));
	/* Crumbs do not make crumbs: batches stay at half a batch or more. */
	CHECK(smallest_batch(2304, 256) >= 128);
	CHECK(smallest_batch(64, 32) >= 16);
	CHECK(smallest_batch(2304, 1) == 1);
}

int main(void)
{
	test_nr_regions();
	test_region_size();
	test_discard();
	test_parse();
	test_word_mask();
	test_batch_holes();
	test_batch_room();
	UNIT_DONE();
}
