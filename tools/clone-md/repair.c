// SPDX-License-Identifier: GPL-2.0-only
/*
 * clone_repair: salvage the hydrated regions readable from damaged
 * metadata into fresh metadata on another device. Regions whose state
 * cannot be read are settled by comparing source and destination data
 * when both are given, otherwise only by the user's explicit choice.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "md.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s -i BAD -o NEW [OPTIONS]\n"
		"Write fresh dm-clone metadata to NEW with every region state readable\n"
		"from BAD. Regions whose state cannot be read are listed; they need:\n\n"
		"      --source DEV --destination DEV\n"
		"                          count an unreadable region hydrated when its\n"
		"                          data are equal on both devices\n"
		"      --assume-hydrated   count the remaining ones hydrated\n"
		"      --assume-unhydrated count the remaining ones unhydrated\n"
		"      --region-size N --target-size N\n"
		"                          sectors, when BAD's superblock is unreadable\n"
		"      --force             overwrite NEW even if it holds other data\n"
		"  -h, --help              this text\n"
		"  -V, --version           the version\n\n"
		"Exit status: 0 written, 1 unreadable regions without a choice or cannot\n"
		"write, 2 usage error.\n", prog);
}

static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return 0;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

#define CMP_CHUNK	(1024u * 1024u)

/* Whether bytes [off, off + len) are equal on both devices; -1 on error. */
static int equal_range(const struct dev *s, const struct dev *t, uint8_t *a,
		       uint8_t *b, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < CMP_CHUNK ? (size_t)len : CMP_CHUNK;

		if (pio_full(s->fd, a, n, off, false) ||
		    pio_full(t->fd, b, n, off, false))
			return -1;
		if (memcmp(a, b, n))
			return 0;
		off += n;
		len -= n;
	}
	return 1;
}

/* Settle unknown regions whose data compare equal: they are hydrated. */
static int compare_unknown(const char *src, const char *dst, uint64_t region_size,
			   uint64_t target_size, struct bits *known,
			   struct bits *hydrated, uint64_t *settled)
{
	uint64_t end = target_size * 512, bytes = region_size * 512;
	uint8_t *a = NULL, *b = NULL;
	struct dev s, t;
	int r = -1;

	if (dev_open(&s, src, false))
		return -1;
	if (dev_open(&t, dst, false)) {
		dev_close(&s);
		return -1;
	}
	if (s.bytes < end || t.bytes < end) {
		err("%s and %s must hold the %llu sectors of the target",
		    src, dst, (unsigned long long)target_size);
		goto out;
	}
	/* Aligned: block devices are read O_DIRECT. */
	if (posix_memalign((void **)&a, MD_BLOCK, CMP_CHUNK) ||
	    posix_memalign((void **)&b, MD_BLOCK, CMP_CHUNK)) {
		err("out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < known->n; i++) {
		uint64_t off = i * bytes;
		int eq;

		if (bits_test(known, i))
			continue;
		eq = equal_range(&s, &t, a, b, off, off + bytes > end ? end - off : bytes);
		if (eq < 0) {
			err("cannot read region %llu of %s or %s",
			    (unsigned long long)i, src, dst);
			goto out;
		}
		if (eq) {
			bits_set(known, i);
			bits_set(hydrated, i);
			(*settled)++;
		}
	}
	r = 0;
out:
	free(a);
	free(b);
	dev_close(&s);
	dev_close(&t);
	return r;
}

enum { O_SOURCE = 256, O_DEST, O_HYD, O_UNHYD, O_RSIZE, O_TSIZE, O_FORCE };

int repair_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "destination", required_argument, NULL, O_DEST },
		{ "assume-hydrated", no_argument, NULL, O_HYD },
		{ "assume-unhydrated", no_argument, NULL, O_UNHYD },
		{ "region-size", required_argument, NULL, O_RSIZE },
		{ "target-size", required_argument, NULL, O_TSIZE },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *in = NULL, *out = NULL, *src = NULL, *dst = NULL, *error;
	uint64_t rsize = 0, tsize = 0, nr, nr_known, settled = 0, unknown;
	struct bits known, hydrated;
	int c, assume = -1, r;
	bool force = false;
	struct exam ex;
	struct dev d;

	while ((c = getopt_long(argc, argv, "i:o:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case O_SOURCE: src = optarg; break;
		case O_DEST: dst = optarg; break;
		case O_HYD:
		case O_UNHYD:
			if (assume >= 0) {
				err("--assume-hydrated and --assume-unhydrated exclude each other");
				return 2;
			}
			assume = c == O_HYD;
			break;
		case O_RSIZE:
		case O_TSIZE:
			if (!parse_u64(optarg, c == O_RSIZE ? &rsize : &tsize) ||
			    !(c == O_RSIZE ? rsize : tsize)) {
				err("%s: not a positive number of sectors", optarg);
				return 2;
			}
			break;
		case O_FORCE: force = true; break;
		default: return common_option(c, usage);
		}
	}
	if (!in || !out || optind != argc || !src != !dst || !rsize != !tsize) {
		err(!in ? "no damaged metadata given (-i)" :
		    !out ? "no output device given (-o)" :
		    optind != argc ? "unexpected argument" :
		    !src != !dst ? "--source and --destination go together" :
		    "--region-size and --target-size go together");
		usage(stderr);
		return 2;
	}
	if (same_file(in, out)) {
		err("%s: input and output are the same; repair writes a new copy", out);
		return 2;
	}
	if (dev_open(&d, in, false))
		return 2;
	r = examine(&d, &ex, EXAM_BITSET, report_stderr, NULL);
	dev_close(&d);
	if (r < 0)
		return 2;

	if (ex.sb_intact) {
		if ((rsize && rsize != ex.sb.region_size) ||
		    (tsize && tsize != ex.sb.target_size)) {
			err("--region-size/--target-size differ from the superblock's %llu/%llu",
			    (unsigned long long)ex.sb.region_size,
			    (unsigned long long)ex.sb.target_size);
			exam_free(&ex);
			return 2;
		}
		rsize = ex.sb.region_size;
		tsize = ex.sb.target_size;
	} else if (!rsize) {
		err("%s: the superblock cannot be trusted, so neither the region size, the target size nor the bitset are known: give --region-size and --target-size (every region's state is then unknown)",
		    in);
		exam_free(&ex);
		return 1;
	} else if (rsize < MIN_REGION_SIZE || rsize > MAX_REGION_SIZE ||
		   (rsize & (rsize - 1)) || (tsize + rsize - 1) / rsize > MAX_REGIONS) {
		err("--region-size must be a power of two from %llu to %llu sectors, with at most %llu regions",
		    MIN_REGION_SIZE, MAX_REGION_SIZE, MAX_REGIONS);
		exam_free(&ex);
		return 2;
	}
	nr = tsize / rsize + (tsize % rsize ? 1 : 0);
	if (ex.sb_intact && ex.have_bitset) {
		known = ex.bs.known;
		hydrated = ex.bs.hydrated;
	} else if (bits_init(&known, nr) || bits_init(&hydrated, nr)) {
		err("out of memory");
		return 2;
	}
	nr_known = bits_count(&known);
	if (nr_known < nr && src &&
	    compare_unknown(src, dst, rsize, tsize, &known, &hydrated, &settled)) {
		r = 1;
		goto out;
	}
	unknown = nr - nr_known - settled;
	if (unknown) {
		struct bits u;

		if (bits_init(&u, nr) == 0) {
			for (uint64_t i = 0; i < nr; i++)
				if (!bits_test(&known, i))
					bits_set(&u, i);
			print_ranges(stderr, &u, "regions whose state is unknown:");
			bits_free(&u);
		}
		if (assume < 0) {
			err("%llu of %llu regions unknown: nothing written. Choose --assume-hydrated or --assume-unhydrated (see clone_repair(8): neither is safe in general), or give --source and --destination",
			    (unsigned long long)unknown, (unsigned long long)nr);
			r = 1;
			goto out;
		}
		if (assume)
			for (uint64_t i = 0; i < nr; i++)
				if (!bits_test(&known, i))
					bits_set(&hydrated, i);
	}
	if (open_target(&d, out, force)) {
		r = 1;
		goto out;
	}
	r = md_format(&d, rsize, tsize, 0, &hydrated, &error);
	dev_close(&d);
	if (r) {
		err("%s: %s", out, error);
		r = 1;
		goto out;
	}
	printf("%s: %llu regions: %llu read, %llu equal on source and destination, %llu assumed %s; %llu hydrated\n",
	       out, (unsigned long long)nr, (unsigned long long)nr_known,
	       (unsigned long long)settled, (unsigned long long)unknown,
	       assume == 1 ? "hydrated" : "unhydrated",
	       (unsigned long long)bits_count(&hydrated));
out:
	if (ex.sb_intact && ex.have_bitset) {
		exam_free(&ex);
	} else {
		bits_free(&known);
		bits_free(&hydrated);
		exam_free(&ex);
	}
	return r;
}
