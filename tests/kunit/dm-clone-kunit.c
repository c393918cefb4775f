// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of dm-clone's pure logic, run in the kernel (the debug
 * kernel tier: KASAN, lockdep): the region and sector arithmetic of
 * dm-clone-region.h at its limits (2^31 regions, sector_t's maximum), the
 * region size bounds, discard rounding to fully covered regions, number
 * parsing; and the kernel bitmap patterns the region map relies on
 * (ranges that cross a word boundary, the last partial word).
 *
 * tests/unit checks the same header in userspace with the sanitizers;
 * this module checks it compiled with the kernel's flags and types, next
 * to the kernel's own bitmap code. Built against a configured kernel tree
 * (tests/kunit/Makefile), loaded by tests/002-kunit.sh.
 */
#include <kunit/test.h>
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/limits.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/types.h>

#include "dm-clone-region.h"

/* ---- Region counts ---- */

static void clone_kunit_nr_regions(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, sizeof(sector_t), sizeof(u64));

	KUNIT_EXPECT_EQ(test, clone_nr_regions(0, 8), 0ULL);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(1, 8), 1ULL);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(8, 8), 1ULL);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(9, 8), 2ULL);

	/* 2^31 regions: exactly the limit, one sector more is past it. */
	KUNIT_EXPECT_EQ(test, clone_nr_regions(8ULL << 31, 8), CLONE_MAX_REGIONS);
	KUNIT_EXPECT_EQ(test, clone_nr_regions((8ULL << 31) - 1, 8),
			CLONE_MAX_REGIONS);
	KUNIT_EXPECT_EQ(test, clone_nr_regions((8ULL << 31) + 1, 8),
			CLONE_MAX_REGIONS + 1);
	KUNIT_EXPECT_EQ(test,
			clone_nr_regions(CLONE_MAX_REGIONS * CLONE_MAX_REGION_SIZE,
					 CLONE_MAX_REGION_SIZE),
			CLONE_MAX_REGIONS);

	/* sector_t's maximum: no overflow. */
	KUNIT_EXPECT_EQ(test, clone_nr_regions(U64_MAX, 1), U64_MAX);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(U64_MAX, 8), (U64_MAX >> 3) + 1);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(U64_MAX - 7, 8), U64_MAX >> 3);
	KUNIT_EXPECT_EQ(test, clone_nr_regions(U64_MAX, CLONE_MAX_REGION_SIZE),
			(U64_MAX >> 21) + 1);

	/* The region map of 2^31 regions: indexable by unsigned long. */
	KUNIT_EXPECT_LE(test, CLONE_MAX_REGIONS, (u64)ULONG_MAX);
	KUNIT_EXPECT_EQ(test, (u64)BITS_TO_LONGS(CLONE_MAX_REGIONS),
			CLONE_MAX_REGIONS / BITS_PER_LONG);
}

/* ---- Region size ---- */

static void clone_kunit_region_size(struct kunit *test)
{
	u64 rs;

	for (rs = CLONE_MIN_REGION_SIZE; rs <= CLONE_MAX_REGION_SIZE; rs <<= 1)
		KUNIT_EXPECT_TRUE_MSG(test, clone_region_size_valid(rs, 512, 512),
				      "region size %llu", rs);

	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(0, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(4, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(7, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(CLONE_MAX_REGION_SIZE << 1,
							 512, 512));
	/* Not powers of two. */
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(24, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(CLONE_MAX_REGION_SIZE - 1,
							 512, 512));
	/* Shifting by 9 would overflow: refused by the bounds first. */
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(1ULL << 62, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(1ULL << 55, 512, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(U64_MAX, 512, 512));

	/* Logical block sizes of both devices. */
	KUNIT_EXPECT_TRUE(test, clone_region_size_valid(8, 4096, 4096));
	KUNIT_EXPECT_TRUE(test, clone_region_size_valid(8, 512, 4096));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(8, 512, 8192));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(8, 8192, 512));
	KUNIT_EXPECT_TRUE(test, clone_region_size_valid(16, 8192, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(8, 0, 512));
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(8, 512, 0));
	/* A block size that is not a power of two divides nothing here. */
	KUNIT_EXPECT_FALSE(test, clone_region_size_valid(8, 3000, 512));
}

/* ---- Discards and the sectors of a region range ---- */

/*
 * A discard of [start, start + len) in a target of target_len sectors:
 * when regions are reported covered, every sector of them inside the
 * target lies inside the discard, and the range is region aligned except
 * at the target's end.
 */
static void clone_kunit_check_discard(struct kunit *test, u64 start, u64 len,
				      u64 target_len, unsigned int shift)
{
	u64 first = 0, last = 0, s = 0, n = 0;

	if (!clone_discard_regions(start, len, target_len, shift, &first, &last))
		return;
	KUNIT_EXPECT_LT(test, first, last);
	KUNIT_EXPECT_LE(test, last, clone_nr_regions(target_len, 1ULL << shift));
	clone_regions_to_sectors(first, last, target_len, shift, &s, &n);
	KUNIT_EXPECT_GE_MSG(test, s, start, "discard %llu+%llu of %llu, shift %u",
			    start, len, target_len, shift);
	KUNIT_EXPECT_LE_MSG(test, n, start + len - s,
			    "discard %llu+%llu of %llu, shift %u",
			    start, len, target_len, shift);
	KUNIT_EXPECT_EQ(test, s & ((1ULL << shift) - 1), 0ULL);
	KUNIT_EXPECT_TRUE(test, ((s + n) & ((1ULL << shift) - 1)) == 0 ||
			  s + n == target_len);
}

static void clone_kunit_discard(struct kunit *test)
{
	u64 first, last, t, a, b;
	const u64 limit = CLONE_MAX_REGIONS << 21;	/* 2^52 sectors */

	/* Inside one region, or straddling two partially: nothing. */
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(1, 6, 1000, 3, &first, &last));
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(4, 8, 1000, 3, &first, &last));
	/* Exactly one region; unaligned both ends around three. */
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(8, 8, 1000, 3, &first, &last));
	KUNIT_EXPECT_EQ(test, first, 1ULL);
	KUNIT_EXPECT_EQ(test, last, 2ULL);
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(5, 30, 1000, 3, &first, &last));
	KUNIT_EXPECT_EQ(test, first, 1ULL);
	KUNIT_EXPECT_EQ(test, last, 4ULL);

	/* The partial last region (1001 sectors: region 125 has one). */
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(1000, 1, 1001, 3, &first, &last));
	KUNIT_EXPECT_EQ(test, first, 125ULL);
	KUNIT_EXPECT_EQ(test, last, 126ULL);
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(992, 8, 1001, 3, &first, &last));
	KUNIT_EXPECT_EQ(test, last, 125ULL);

	/* Empty, outside, past the end, wrapping. */
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(0, 0, 1000, 3, &first, &last));
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(1000, 8, 1000, 3, &first, &last));
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(990, 20, 1000, 3, &first, &last));
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(8, U64_MAX, 1000, 3,
						       &first, &last));

	/* The largest target: 2^31 regions of 1 GiB. */
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(0, limit, limit, 21, &first, &last));
	KUNIT_EXPECT_EQ(test, first, 0ULL);
	KUNIT_EXPECT_EQ(test, last, CLONE_MAX_REGIONS);
	KUNIT_ASSERT_TRUE(test, clone_discard_regions(limit - (1ULL << 21), 1ULL << 21,
						      limit, 21, &first, &last));
	KUNIT_EXPECT_EQ(test, first, CLONE_MAX_REGIONS - 1);
	KUNIT_EXPECT_EQ(test, last, CLONE_MAX_REGIONS);
	clone_kunit_check_discard(test, 1, limit - 2, limit, 21);
	clone_kunit_check_discard(test, limit - 3, 3, limit - 1, 21);

	/* sector_t's maximum as the target length: no wrap-around. */
	KUNIT_EXPECT_FALSE(test, clone_discard_regions(U64_MAX - 3, 2, U64_MAX, 3,
						       &first, &last));
	clone_kunit_check_discard(test, U64_MAX - 3, 2, U64_MAX, 3);
	clone_kunit_check_discard(test, U64_MAX - 7, 7, U64_MAX, 3);
	clone_kunit_check_discard(test, U64_MAX - 20, 20, U64_MAX, 3);
	clone_kunit_check_discard(test, 0, U64_MAX, U64_MAX, 21);

	/* Every discard of every small target. */
	for (t = 1; t <= 40; t++)
		for (a = 0; a < t; a++)
			for (b = a + 1; b <= t; b++)
				clone_kunit_check_discard(test, a, b - a, t, 3);
}

static void clone_kunit_regions_to_sectors(struct kunit *test)
{
	u64 s, n;

	clone_regions_to_sectors(1, 4, 1000, 3, &s, &n);
	KUNIT_EXPECT_EQ(test, s, 8ULL);
	KUNIT_EXPECT_EQ(test, n, 24ULL);
	/* Clipped to the target: the partial last region. */
	clone_regions_to_sectors(124, 126, 1001, 3, &s, &n);
	KUNIT_EXPECT_EQ(test, s, 992ULL);
	KUNIT_EXPECT_EQ(test, n, 9ULL);
	/* An empty range. */
	clone_regions_to_sectors(7, 7, 1000, 3, &s, &n);
	KUNIT_EXPECT_EQ(test, n, 0ULL);
	/* All of the largest target. */
	clone_regions_to_sectors(0, CLONE_MAX_REGIONS, CLONE_MAX_REGIONS << 21, 21,
				 &s, &n);
	KUNIT_EXPECT_EQ(test, s, 0ULL);
	KUNIT_EXPECT_EQ(test, n, CLONE_MAX_REGIONS << 21);
	/* The last (partial) region of a target of sector_t's maximum. */
	clone_regions_to_sectors(U64_MAX >> 3, (U64_MAX >> 3) + 1, U64_MAX, 3,
				 &s, &n);
	KUNIT_EXPECT_EQ(test, s, U64_MAX - 7);
	KUNIT_EXPECT_EQ(test, n, 7ULL);
}

/* ---- Number parsing ---- */

static void clone_kunit_parse_uint(struct kunit *test)
{
	static const char * const bad[] = {
		"", "+", "++1", "+-1", "-1", "-0", " 1", "1 ", "1\n", "1x", "0x10", "1.0",
		"4294967296", "99999999999999999999", "18446744073709551616",
	};
	unsigned int i;
	u32 v;

	KUNIT_EXPECT_TRUE(test, clone_parse_uint("0", &v));
	KUNIT_EXPECT_EQ(test, v, 0U);
	KUNIT_EXPECT_TRUE(test, clone_parse_uint("4294967295", &v));
	KUNIT_EXPECT_EQ(test, v, U32_MAX);
	/* Leading zeros are digits like any other. */
	KUNIT_EXPECT_TRUE(test, clone_parse_uint("007", &v));
	KUNIT_EXPECT_EQ(test, v, 7U);
	KUNIT_EXPECT_TRUE(test, clone_parse_uint("00000000000000000000004294967295", &v));
	KUNIT_EXPECT_EQ(test, v, U32_MAX);
	/* One leading '+', as the classic module's kstrtouint() takes. */
	KUNIT_EXPECT_TRUE(test, clone_parse_uint("+7", &v));
	KUNIT_EXPECT_EQ(test, v, 7U);

	KUNIT_EXPECT_FALSE(test, clone_parse_uint(NULL, &v));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		v = 12345;
		KUNIT_EXPECT_FALSE_MSG(test, clone_parse_uint(bad[i], &v),
				       "\"%s\"", bad[i]);
		/* A refused number leaves the output alone. */
		KUNIT_EXPECT_EQ_MSG(test, v, 12345U, "\"%s\"", bad[i]);
	}
}

static void clone_kunit_parse_u64(struct kunit *test)
{
	static const char * const bad[] = {
		"", "+", "+0", "++0", "-0", "-1", " 8", "8 ", "8\t", "1e3", "0x8", "8.0",
		"18446744073709551616", "18446744073709551620",
		"99999999999999999999", "184467440737095516150",
	};
	unsigned int i;
	u64 v;

	KUNIT_EXPECT_TRUE(test, clone_parse_u64("18446744073709551615", &v));
	KUNIT_EXPECT_EQ(test, v, U64_MAX);
	KUNIT_EXPECT_TRUE(test, clone_parse_u64("18446744073709551614", &v));
	KUNIT_EXPECT_EQ(test, v, U64_MAX - 1);
	KUNIT_EXPECT_TRUE(test, clone_parse_u64("2097152", &v));
	KUNIT_EXPECT_EQ(test, v, CLONE_MAX_REGION_SIZE);
	KUNIT_EXPECT_TRUE(test, clone_parse_u64("000018446744073709551615", &v));
	KUNIT_EXPECT_EQ(test, v, U64_MAX);
	KUNIT_EXPECT_TRUE(test, clone_parse_u64("0", &v));
	KUNIT_EXPECT_EQ(test, v, 0ULL);

	KUNIT_EXPECT_FALSE(test, clone_parse_u64(NULL, &v));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		v = 12345;
		KUNIT_EXPECT_FALSE_MSG(test, clone_parse_u64(bad[i], &v),
				       "\"%s\"", bad[i]);
		KUNIT_EXPECT_EQ_MSG(test, v, 12345ULL, "\"%s\"", bad[i]);
	}
}

/* ---- The region map's bitmap patterns ---- */

/* Two full words and a partial third: the last word has 3 bits in use. */
#define CLONE_KUNIT_NBITS	(2 * BITS_PER_LONG + 3)

static unsigned long *clone_kunit_bitmap(struct kunit *test)
{
	unsigned long *map;

	/* Exactly the longs a region map of this size gets, for KASAN. */
	map = kunit_kcalloc(test, BITS_TO_LONGS(CLONE_KUNIT_NBITS),
			    sizeof(unsigned long), GFP_KERNEL);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, map);
	return map;
}

/* The metadata's range checks, spelled as it spells them. */
static bool range_all_set(const unsigned long *map, unsigned long start,
			  unsigned long nr)
{
	return find_next_zero_bit(map, start + nr, start) >= start + nr;
}

static bool range_all_clear(const unsigned long *map, unsigned long start,
			    unsigned long nr)
{
	return find_next_bit(map, start + nr, start) >= start + nr;
}

static void clone_kunit_bitmap_ranges(struct kunit *test)
{
	const unsigned long nbits = CLONE_KUNIT_NBITS, w = BITS_PER_LONG;
	unsigned long *map = clone_kunit_bitmap(test);

	/* A range across the first word boundary. */
	bitmap_set(map, w - 4, 8);
	KUNIT_EXPECT_TRUE(test, range_all_set(map, w - 4, 8));
	KUNIT_EXPECT_FALSE(test, range_all_set(map, w - 5, 8));
	KUNIT_EXPECT_FALSE(test, range_all_set(map, w - 4, 9));
	KUNIT_EXPECT_TRUE(test, range_all_clear(map, 0, w - 4));
	KUNIT_EXPECT_FALSE(test, range_all_clear(map, 0, w - 3));
	KUNIT_EXPECT_EQ(test, find_next_zero_bit(map, nbits, w - 4), w + 4);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, nbits), 8U);

	/* The last partial word, up to the last bit. */
	bitmap_set(map, nbits - 5, 5);
	KUNIT_EXPECT_TRUE(test, range_all_set(map, nbits - 5, 5));
	KUNIT_EXPECT_EQ(test, find_next_zero_bit(map, nbits, nbits - 5), nbits);
	KUNIT_EXPECT_EQ(test, find_next_zero_bit(map, nbits, nbits - 1), nbits);
	KUNIT_EXPECT_EQ(test, find_next_bit(map, nbits, nbits), nbits);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, nbits), 13U);

	/* Bits past the end, in the last word, are not regions. */
	map[BITS_TO_LONGS(nbits) - 1] |= ~0UL << (nbits % w);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, nbits), 13U);
	KUNIT_EXPECT_EQ(test, find_next_zero_bit(map, nbits, nbits - 5), nbits);
	map[BITS_TO_LONGS(nbits) - 1] &= BITMAP_LAST_WORD_MASK(nbits);

	/* Everything set: no unhydrated region left. */
	bitmap_set(map, 0, nbits);
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, nbits));
	KUNIT_EXPECT_EQ(test, find_first_zero_bit(map, nbits), nbits);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, nbits), (unsigned int)nbits);
	bitmap_clear(map, w, 1);
	KUNIT_EXPECT_EQ(test, find_first_zero_bit(map, nbits), w);
	KUNIT_EXPECT_FALSE(test, bitmap_full(map, nbits));
}

/*
 * Setting a range a word at a time, with the masks the metadata uses
 * (clone_word_mask(), as dm_clone_set_regions_hydrated() does), against
 * bitmap_set and a bit by bit reference; and the range checks against a
 * bit by bit loop, for every range of a map with an irregular pattern.
 */
static unsigned long clone_kunit_set_words(unsigned long *map,
					   unsigned long start,
					   unsigned long nr)
{
	unsigned long end = start + nr, added = 0, w, len, mask;

	while (start < end) {
		mask = clone_word_mask(start, end, &w, &len);
		added += hweight_long(~map[w] & mask);
		map[w] |= mask;
		start += len;
	}
	return added;
}

static void clone_kunit_bitmap_every_range(struct kunit *test)
{
	const unsigned long nbits = CLONE_KUNIT_NBITS;
	unsigned long *a = clone_kunit_bitmap(test);
	unsigned long *b = clone_kunit_bitmap(test);
	unsigned long start, nr, i, added, before;
	bool set, clear;
	u32 x = 1;

	for (start = 0; start < nbits; start++) {
		for (nr = 1; start + nr <= nbits; nr++) {
			bitmap_zero(a, nbits);
			/* One bit already set, inside the range or not. */
			__set_bit((start * 7 + 3) % nbits, a);
			bitmap_copy(b, a, nbits);
			before = bitmap_weight(a, nbits);
			added = clone_kunit_set_words(a, start, nr);
			bitmap_set(b, start, nr);
			if (!bitmap_equal(a, b, nbits) ||
			    added != bitmap_weight(a, nbits) - before ||
			    a[BITS_TO_LONGS(nbits) - 1] & ~BITMAP_LAST_WORD_MASK(nbits)) {
				KUNIT_FAIL(test, "word-wise set of %lu+%lu: added %lu, map %*pb",
					   start, nr, added, (int)nbits, a);
				return;
			}
		}
	}

	/* An irregular pattern (a linear congruential generator). */
	bitmap_zero(a, nbits);
	for (i = 0; i < nbits; i++) {
		x = x * 1103515245 + 12345;
		if (x & 0x40000000)
			__set_bit(i, a);
	}
	bitmap_set(a, 60, 12);		/* a run across the word boundary */
	for (start = 0; start < nbits; start++) {
		for (nr = 1; start + nr <= nbits; nr++) {
			set = true;
			clear = true;
			for (i = start; i < start + nr; i++) {
				if (test_bit(i, a))
					clear = false;
				else
					set = false;
			}
			if (range_all_set(a, start, nr) != set ||
			    range_all_clear(a, start, nr) != clear) {
				KUNIT_FAIL(test, "range check of %lu+%lu: set %d/%d, clear %d/%d",
					   start, nr, range_all_set(a, start, nr), set,
					   range_all_clear(a, start, nr), clear);
				return;
			}
		}
	}
}

static struct kunit_case clone_kunit_cases[] = {
	KUNIT_CASE(clone_kunit_nr_regions),
	KUNIT_CASE(clone_kunit_region_size),
	KUNIT_CASE(clone_kunit_discard),
	KUNIT_CASE(clone_kunit_regions_to_sectors),
	KUNIT_CASE(clone_kunit_parse_uint),
	KUNIT_CASE(clone_kunit_parse_u64),
	KUNIT_CASE(clone_kunit_bitmap_ranges),
	KUNIT_CASE(clone_kunit_bitmap_every_range),
	{}
};

static struct kunit_suite clone_kunit_suite = {
	.name = "dm-clone-region",
	.test_cases = clone_kunit_cases,
};

kunit_test_suite(clone_kunit_suite);

MODULE_DESCRIPTION("KUnit tests of dm-clone's region arithmetic and bitmap patterns");
MODULE_LICENSE("GPL");
