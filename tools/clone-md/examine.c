// SPDX-License-Identifier: GPL-2.0-only
/*
 * Examining a metadata device as far as it can be read: the superblock,
 * then the bitset it names, then the space map against every reference
 * found; each step only runs on what the previous one found in range.
 */
#include <string.h>
#include <unistd.h>

#include "md.h"

int examine(const struct dev *d, struct exam *ex, enum exam_level level,
	    report_fn report, void *ctx)
{
	uint64_t usable = sm_usable_blocks(d), limit = usable;
	struct seen seen;
	int r;

	memset(ex, 0, sizeof(*ex));
	if (dev_read(d, SB_LOCATION, ex->sb_blk)) {
		report(ctx, 0, "superblock: cannot be read (device smaller than 4 KiB)");
		return ++ex->problems;
	}
	ex->sb_read = true;
	if (block_all_zero(ex->sb_blk)) {
		report(ctx, 0, "superblock: all zeros, no metadata (the kernel formats such a device on first use)");
		return ++ex->problems;
	}
	ex->problems = super_check(ex->sb_blk, d, &ex->sb, report, ctx);
	ex->sb_clone = ex->sb.magic == SB_MAGIC;
	ex->sb_sound = !ex->problems;
	ex->sb_intact = ex->sb_clone && ex->sb.nr_regions &&
			ex->sb.csum == block_csum(ex->sb_blk, SB_CSUM_XOR) &&
			ex->sb.blocknr == SB_LOCATION && ex->sb.version == SB_VERSION;
	if (!ex->sb_clone || level == EXAM_SUPER)
		return ex->problems;
	if (!ex->sb.nr_regions || !ex->sb.bitset_root)
		return ex->problems;

	if (ex->sb.sm_nr_blocks && ex->sb.sm_nr_blocks <= usable)
		limit = ex->sb.sm_nr_blocks;
	if (seen_init(&seen, limit)) {
		err("out of memory");
		return -1;
	}
	seen_add(&seen, SB_LOCATION, K_SUPER, SB_LOCATION, report, ctx);
	r = bitset_read(d, ex->sb.bitset_root, ex->sb.nr_regions, &seen,
			&ex->bs, report, ctx);
	if (r < 0)
		goto out;
	ex->have_bitset = true;
	ex->problems += ex->bs.problems;
	if (level == EXAM_ALL && limit == ex->sb.sm_nr_blocks) {
		r = sm_check(d, &ex->sb, &seen, report, ctx);
		if (r > 0)
			ex->problems += r;
	}
out:
	seen_free(&seen);
	return r < 0 ? r : ex->problems;
}

int examine_arg(int argc, char **argv, void (*usage)(FILE *),
		enum exam_level level, report_fn report, struct exam *ex)
{
	struct dev d;
	int n;

	if (optind != argc - 1) {
		err(optind == argc ? "no device given" : "one device only");
		usage(stderr);
		return -1;
	}
	if (dev_open(&d, argv[optind], false))
		return -1;
	n = examine(&d, ex, level, report, NULL);
	dev_close(&d);
	return n;
}

void exam_free(struct exam *ex)
{
	if (ex->have_bitset)
		bitset_read_free(&ex->bs);
	ex->have_bitset = false;
}
