// SPDX-License-Identifier: GPL-2.0-only
/*
 * clone_dump: print a metadata device's superblock fields and hydrated
 * regions as runs, in XML or JSON; with --repair, whatever can be read
 * from damaged metadata, the unreadable regions named on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "md.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s [OPTIONS] DEVICE\n"
		"Dump dm-clone metadata: the superblock and the hydrated regions.\n\n"
		"  -o, --output FILE        write the dump to FILE instead of stdout\n"
		"  -f, --format xml|json    the dump's format (default xml)\n"
		"  -r, --repair             dump what can be read from damaged metadata\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n\n"
		"Exit status: 0 dumped, 1 metadata damaged (with --repair: some regions\n"
		"unreadable, listed on stderr), 2 usage error or DEVICE cannot be opened.\n",
		prog);
}

int dump_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "repair", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum dump_format fmt = FMT_XML;
	const char *out = NULL;
	bool repair = false;
	struct bits unknown;
	struct exam ex;
	struct dump dp;
	FILE *f = stdout;
	int c, n, rc = 0;

	while ((c = getopt_long(argc, argv, "o:f:rhV", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'f':
			if (!strcmp(optarg, "xml")) {
				fmt = FMT_XML;
			} else if (!strcmp(optarg, "json")) {
				fmt = FMT_JSON;
			} else {
				err("unknown format \"%s\" (xml or json)", optarg);
				return 2;
			}
			break;
		case 'r': repair = true; break;
		default: return common_option(c, usage);
		}
	}
	n = examine_arg(argc, argv, usage, repair ? EXAM_BITSET : EXAM_ALL,
			report_stderr, &ex);
	if (n < 0)
		return 2;
	if (!ex.sb_clone) {
		err("%s: not dm-clone metadata", argv[optind]);
		return 1;
	}
	if (n > 0 && (!repair || !ex.sb_intact || !ex.have_bitset)) {
		err("%s: damaged metadata (%d problem%s)%s", argv[optind], n,
		    n == 1 ? "" : "s",
		    repair ? "; the superblock cannot be trusted: see clone_repair" :
			     "; --repair dumps what can be read");
		exam_free(&ex);
		return 1;
	}
	dp.version = ex.sb.version;
	dp.flags = ex.sb.flags;
	dp.region_size = ex.sb.region_size;
	dp.target_size = ex.sb.target_size;
	dp.nr_regions = ex.sb.nr_regions;
	dp.hydrated = ex.bs.hydrated;
	if (out && !(f = fopen(out, "w"))) {
		err("%s: %s", out, strerror(errno));
		exam_free(&ex);
		return 2;
	}
	dump_write(f, &dp, fmt);
	if (fflush(f) || (out && fclose(f))) {
		err("%s: write error", out ? out : "stdout");
		rc = 2;
	}
	if (bits_init(&unknown, ex.sb.nr_regions) == 0) {
		for (uint64_t i = 0; i < (ex.sb.nr_regions + 63) / 64; i++)
			unknown.w[i] = ~ex.bs.known.w[i];
		if (ex.sb.nr_regions % 64)
			unknown.w[ex.sb.nr_regions / 64] &= (1ULL << (ex.sb.nr_regions % 64)) - 1;
		if (bits_count(&unknown)) {
			print_ranges(stderr, &unknown,
				     "unreadable regions, left out of the dump (neither hydrated nor unhydrated is known):");
			rc = rc ? rc : 1;
		}
		bits_free(&unknown);
	}
	exam_free(&ex);
	return rc;
}
