/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone region arithmetic, the bitmap's word masks and argument checks:
 * pure functions with no kernel state, shared by the target, the metadata,
 * the KUnit test and the userspace unit tests in tests/unit (which provide
 * u64, u32, bool and BITS_PER_LONG).
 *
 * All region and sector arithmetic is done in u64.
 */

#ifndef DM_CLONE_REGION_H
#define DM_CLONE_REGION_H

/* Region size bounds, in 512-byte sectors (4 KiB ... 1 GiB). */
#define CLONE_MIN_REGION_SIZE		8ULL
#define CLONE_MAX_REGION_SIZE		2097152ULL
/* At most this many regions per target. */
#define CLONE_MAX_REGIONS		2147483648ULL	/* 2^31 */

/* Number of regions covering @len sectors, the last one maybe partial. */
static inline u64 clone_nr_regions(u64 len, u64 region_size)
{
	return len / region_size + (len % region_size ? 1 : 0);
}

/*
 * A region size is valid when it lies in the bounds, is a power of two
 * and is a multiple of both devices' logical block sizes (in bytes).
 */
static inline bool clone_region_size_valid(u64 region_size, u32 dest_lbs,
					   u32 source_lbs)
{
	u64 bytes = region_size << 9;

	if (region_size < CLONE_MIN_REGION_SIZE ||
	    region_size > CLONE_MAX_REGION_SIZE)
		return false;
	if (region_size & (region_size - 1))
		return false;
	if (!dest_lbs || !source_lbs || bytes % dest_lbs || bytes % source_lbs)
		return false;
	return true;
}

/*
 * The regions a discard of [@start, @start + @len) (target-relative
 * sectors) covers completely: [*@first, *@last). A region counts as
 * covered when every sector of it inside the target is covered, so the
 * partial last region is covered by a discard that reaches the target's
 * end. Returns false when no region is covered.
 */
static inline bool clone_discard_regions(u64 start, u64 len, u64 target_len,
					 unsigned int region_shift,
					 u64 *first, u64 *last)
{
	u64 region_size = 1ULL << region_shift;
	u64 end = start + len;

	if (!len || start >= target_len || end > target_len || end < start)
		return false;

	/* Rounded up without computing start + region_size - 1: no wrap. */
	*first = (start >> region_shift) +
		 ((start & (region_size - 1)) ? 1 : 0);
	if (end == target_len)
		*last = clone_nr_regions(target_len, region_size);
	else
		*last = end >> region_shift;

	return *first < *last;
}

/*
 * The first sector of region @region, clipped to the target's end: the
 * partial last region and the end of the target are handled without
 * shifting a region number past 64 bits.
 */
static inline u64 clone_region_to_sector_clipped(u64 region, u64 target_len,
						 unsigned int region_shift)
{
	if (region > (target_len >> region_shift))
		return target_len;
	/* Here region << region_shift <= target_len: no overflow. */
	return region << region_shift;
}

/*
 * The sectors of regions [@first, @last) inside a target of @target_len
 * sectors: [*@start, *@start + *@len). The last region may be partial.
 */
static inline void clone_regions_to_sectors(u64 first, u64 last,
					    u64 target_len,
					    unsigned int region_shift,
					    u64 *start, u64 *len)
{
	u64 end = clone_region_to_sector_clipped(last, target_len, region_shift);

	*start = clone_region_to_sector_clipped(first, target_len, region_shift);
	*len = end - *start;
}

/*
 * Setting (or testing) bits [@start, @end) of a bitmap of unsigned longs a
 * word at a time, one word per step: the step at @start, which must be
 * below @end, concerns word *@word, the returned mask holds the range's
 * bits in it, and *@len of them (the next step starts at @start + *@len).
 */
static inline unsigned long clone_word_mask(unsigned long start,
					    unsigned long end,
					    unsigned long *word,
					    unsigned long *len)
{
	unsigned long bit = start % BITS_PER_LONG;

	*word = start / BITS_PER_LONG;
	*len = end - start < BITS_PER_LONG - bit ? end - start :
						   BITS_PER_LONG - bit;
	return *len == BITS_PER_LONG ? ~0UL : ((1UL << *len) - 1) << bit;
}

/*
 * A copy batch reads across the holes between its runs of regions (the
 * regions it does not hold: hydrated, or in flight elsewhere) and writes
 * only its own, as long as what it reads for holes stays no more than
 * what it holds. May a batch holding @held regions, having crossed
 * @skipped in holes, cross a hole of @hole more? (Holes before its first
 * run are not read: they are no question.)
 */
static inline bool clone_batch_may_cross(unsigned long held,
					 unsigned long skipped,
					 unsigned long hole)
{
	return skipped + hole <= held;
}

/*
 * May the background pass start a batch now? @in_flight regions are in
 * flight of the @threshold allowed, @bg of them background copies; a
 * batch holds at most @batch regions. Not before there is room for half
 * a batch (of what the threshold allows), unless no background copy is in
 * flight: a batch started in whatever room the last copy to end left
 * would be as small as that copy, and once writes have broken the copies
 * into crumbs, crumbs would follow crumbs, each a read, writes and a
 * metadata update of its own, for the rest of the pass.
 */
static inline bool clone_batch_room(unsigned long threshold,
				    unsigned long in_flight,
				    unsigned long batch, unsigned long bg)
{
	unsigned long want = batch < threshold ? batch : threshold;

	if (in_flight >= threshold)
		return false;
	return !bg || threshold - in_flight >= (want + 1) / 2;
}

/*
 * Parse a decimal unsigned 32-bit number: digits only, after at most one
 * '+' (the classic module's parser takes one too), no spaces, no
 * overflow. Returns false on anything else.
 */
static inline bool clone_parse_uint(const char *s, u32 *out)
{
	u64 v = 0;

	if (s && *s == '+')
		s++;
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (u64)(*s - '0');
		if (v > 0xffffffffULL)
			return false;
	}
	*out = (u32)v;
	return true;
}

/*
 * A decimal unsigned 64-bit number (the region size): digits only, no
 * sign at all (the classic module refuses "+8" there), no spaces, no
 * overflow.
 */
static inline bool clone_parse_u64(const char *s, u64 *out)
{
	u64 v = 0, d;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		d = (u64)(*s - '0');
		if (v > (~0ULL - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

#endif /* DM_CLONE_REGION_H */
