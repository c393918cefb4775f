// SPDX-License-Identifier: GPL-2.0-only
/*
 * clone_tools: one binary for clone_check, clone_dump, clone_restore and
 * clone_repair, chosen by the name it is run as (or by its first
 * argument), and the helpers the four share: messages, number parsing,
 * reading a dump file, printing region runs, opening a restore target.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"

const char *prog = "clone_tools";

void err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t r = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || r > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		r = r * 10 + (uint64_t)(*s - '0');
	}
	*v = r;
	return true;
}

int print_version(void)
{
	printf("%s (dm-clone metadata tools) %s, metadata version %u\n", prog,
	       CLONE_TOOLS_VERSION, SB_VERSION);
	return 0;
}

int common_option(int c, void (*usage)(FILE *))
{
	if (c == 'h') {
		usage(stdout);
		return 0;
	}
	if (c == 'V')
		return print_version();
	usage(stderr);
	return 2;
}

void report_stderr(void *ctx, uint64_t block, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	fprintf(stderr, "%s: block %llu: ", prog, (unsigned long long)block);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

char *slurp(const char *path, size_t *len, size_t max)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	size_t cap = 0, n = 0;
	char *buf = NULL;

	if (!f) {
		err("%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			char *nb;

			if (cap >= max) {
				err("%s: larger than %zu bytes", path, max);
				goto bad;
			}
			cap = cap ? 2 * cap : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				err("out of memory");
				goto bad;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (!got)
			break;
	}
	if (ferror(f)) {
		err("%s: read error", path);
		goto bad;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
bad:
	free(buf);
	if (f != stdin)
		fclose(f);
	return NULL;
}

void print_ranges(FILE *f, const struct bits *b, const char *prefix)
{
	uint64_t pos = 0, len;

	fputs(prefix, f);
	while (bits_next_run(b, &pos, &len)) {
		if (len == 1)
			fprintf(f, " %llu", (unsigned long long)pos);
		else
			fprintf(f, " %llu-%llu", (unsigned long long)pos,
				(unsigned long long)(pos + len - 1));
		pos += len;
	}
	fputc('\n', f);
}

int open_target(struct dev *d, const char *path, bool force)
{
	uint8_t blk[MD_BLOCK];

	if (dev_open(d, path, true))
		return -1;
	if (dev_read(d, SB_LOCATION, blk)) {
		err("%s: smaller than one 4 KiB metadata block", path);
		dev_close(d);
		return -1;
	}
	if (!force && !block_all_zero(blk) && !super_is_clone(blk)) {
		err("%s: its first 4 KiB are neither all zero nor dm-clone metadata; refusing to overwrite (--force to do it anyway)",
		    path);
		dev_close(d);
		return -1;
	}
	return 0;
}

static const struct tool {
	const char *name;
	int (*main)(int argc, char **argv);
} tools[] = {
	{ "clone_check", check_main },
	{ "clone_dump", dump_main },
	{ "clone_restore", restore_main },
	{ "clone_repair", repair_main },
};

static const struct tool *find_tool(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!strcmp(base, tools[i].name))
			return &tools[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct tool *t = argc > 0 ? find_tool(argv[0]) : NULL;

	if (!t && argc > 1) {
		t = find_tool(argv[1]);
		argc--;
		argv++;
	}
	if (!t) {
		if (argc > 1 && !strcmp(argv[1], "--version"))
			return print_version();
		fprintf(stderr, "usage: clone_tools {clone_check|clone_dump|clone_restore|clone_repair} [ARGS]\n"
			"   or: run it through a link of one of those names\n");
		return 2;
	}
	prog = t->name;
	return t->main(argc, argv);
}
