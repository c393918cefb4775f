// SPDX-License-Identifier: GPL-2.0-only
/*
 * clone_check: verify a dm-clone metadata device (superblock, bitset
 * btree and array blocks, metadata space map and every reference count)
 * and print one line per problem; optionally clear the needs_check flag.
 */
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "md.h"

static bool quiet;

static void report(void *ctx, uint64_t block, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	if (quiet)
		return;
	printf("block %llu: ", (unsigned long long)block);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s [OPTIONS] DEVICE\n"
		"Check dm-clone metadata on DEVICE (a block device or an image file).\n\n"
		"  -q, --quiet                  print nothing, only set the exit status\n"
		"      --super-block-only       check the superblock alone\n"
		"      --clear-needs-check-flag clear the needs_check flag if the metadata is sound\n"
		"  -h, --help                   this text\n"
		"  -V, --version                the version\n\n"
		"Exit status: 0 sound, 1 damaged or not dm-clone metadata, 2 usage error\n"
		"or DEVICE cannot be opened.\n", prog);
}

static int clear_flag(const char *path, struct exam *ex)
{
	struct dev d;
	int r = 0;

	if (dev_open(&d, path, true))
		return 2;
	put32(ex->sb_blk + SB_OFF_FLAGS, ex->sb.flags & ~SB_FLAG_NEEDS_CHECK);
	block_seal(ex->sb_blk, SB_CSUM_XOR);
	if (dev_write(&d, SB_LOCATION, ex->sb_blk) || dev_sync(&d)) {
		err("%s: cannot write the superblock", path);
		r = 1;
	}
	dev_close(&d);
	return r;
}

int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "super-block-only", no_argument, NULL, 's' },
		{ "clear-needs-check-flag", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool super_only = false, clear = false;
	struct exam ex;
	int c, n;

	while ((c = getopt_long(argc, argv, "qhV", opts, NULL)) != -1) {
		switch (c) {
		case 'q': quiet = true; break;
		case 's': super_only = true; break;
		case 'c': clear = true; break;
		default: return common_option(c, usage);
		}
	}
	n = examine_arg(argc, argv, usage, super_only ? EXAM_SUPER : EXAM_ALL,
			report, &ex);
	if (n < 0)
		return 2;
	if (n > 0) {
		if (!quiet)
			fprintf(stderr, "%s: %s: %d problem%s%s\n", prog, argv[optind], n,
				n == 1 ? "" : "s",
				ex.sb_clone ? "" : " (not dm-clone metadata)");
		if (clear)
			err("needs_check flag left set: the metadata is damaged");
		exam_free(&ex);
		return 1;
	}
	if (!quiet && ex.have_bitset)
		printf("%s: sound: %llu regions of %llu sectors, %llu hydrated, %llu of %llu metadata blocks in use\n",
		       argv[optind], (unsigned long long)ex.sb.nr_regions,
		       (unsigned long long)ex.sb.region_size,
		       (unsigned long long)bits_count(&ex.bs.hydrated),
		       (unsigned long long)ex.sb.sm_nr_allocated,
		       (unsigned long long)ex.sb.sm_nr_blocks);
	else if (!quiet)
		printf("%s: superblock sound\n", argv[optind]);
	exam_free(&ex);
	if (ex.sb.flags & SB_FLAG_NEEDS_CHECK) {
		if (clear)
			return clear_flag(argv[optind], &ex);
		if (!quiet)
			printf("%s: needs_check flag set (--clear-needs-check-flag clears it)\n",
			       argv[optind]);
	}
	return 0;
}
