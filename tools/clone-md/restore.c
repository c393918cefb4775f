// SPDX-License-Identifier: GPL-2.0-only
/*
 * clone_restore: write fresh metadata holding a dump's superblock fields
 * and hydrated regions onto a device whose first block is blank or
 * dm-clone metadata already.
 */
#include <getopt.h>
#include <stdlib.h>

#include "md.h"

#define MAX_DUMP_BYTES	(1024u * 1024u * 1024u)

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s -i DUMP -o DEVICE [--force]\n"
		"Write fresh dm-clone metadata from a dump (XML or JSON, see clone_dump).\n\n"
		"  -i, --input DUMP    the dump (\"-\" for stdin)\n"
		"  -o, --output DEVICE the metadata device or image file to write\n"
		"      --force         overwrite DEVICE even if its first 4 KiB are\n"
		"                      neither zero nor dm-clone metadata\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n\n"
		"Exit status: 0 written, 1 bad dump or cannot write, 2 usage error.\n",
		prog);
}

int restore_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *in = NULL, *out = NULL, *error;
	bool force = false;
	char msg[256], *text;
	struct dump dp;
	struct dev d;
	size_t len;
	int c, r;

	while ((c = getopt_long(argc, argv, "i:o:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'F': force = true; break;
		default: return common_option(c, usage);
		}
	}
	if (!in || !out || optind != argc) {
		err(!in ? "no dump given (-i)" : !out ? "no device given (-o)" :
		    "unexpected argument \"%s\"", argv[optind]);
		usage(stderr);
		return 2;
	}
	text = slurp(in, &len, MAX_DUMP_BYTES);
	if (!text)
		return 1;
	r = dump_parse(text, len, &dp, msg, sizeof(msg));
	free(text);
	if (r) {
		err("%s: %s", in, msg);
		return 1;
	}
	if (open_target(&d, out, force)) {
		bits_free(&dp.hydrated);
		return 1;
	}
	r = md_format(&d, dp.region_size, dp.target_size, dp.flags,
		      &dp.hydrated, &error);
	if (r)
		err("%s: %s", out, error);
	dev_close(&d);
	bits_free(&dp.hydrated);
	return r ? 1 : 0;
}
