// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmclone-pattern: deterministic, self-describing test data for block
 * devices. Built statically by scripts/mkinitramfs.sh into the guest image
 * as /usr/local/bin/dmclone-pattern; tests use it through the helpers in
 * tests/lib/common.sh (fill_pattern, check_pattern, cmp_dev).
 *
 * Every 512-byte sector of pattern SEED at sector N is a pure function of
 * (SEED, N): a 24-byte header ("DMCPAT01", SEED, N, little-endian) followed
 * by pseudo-random bytes seeded from (SEED, N). No two sectors are alike, a
 * partial fill or check at any offset agrees with a full one, and a sector
 * found in the wrong place tells where it came from ("seed 1 sector 4096").
 *
 *   dmclone-pattern write DEV SEED START COUNT     write COUNT sectors at START
 *   dmclone-pattern check DEV SEED START COUNT     verify them
 *   dmclone-pattern cmp A B COUNT [START_A [START_B]]   byte-exact comparison
 *                                                  (sectors reported relative to the starts)
 *   dmclone-pattern identify DEV START COUNT       map what DEV holds
 *   dmclone-pattern gen SEED START COUNT           pattern to stdout
 *
 * START and COUNT are in 512-byte sectors. Device I/O uses O_DIRECT when
 * possible (no stale page cache between the layers of a device stack) and
 * falls back to buffered I/O plus fsync. Exit status: 0 equal/done,
 * 1 mismatch (the differing sector runs are described on stdout), 2 error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR		512
#define CHUNK_SECTORS	2048		/* 1 MiB per I/O */
#define MAX_REPORTS	8		/* differing runs described */

static const char magic[8] = { 'D', 'M', 'C', 'P', 'A', 'T', '0', '1' };

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Fill one sector of pattern @seed for sector @sector. */
static void gen_sector(unsigned char *p, uint64_t seed, uint64_t sector)
{
	uint64_t s = splitmix64(seed ^ splitmix64(sector)) | 1;

	memcpy(p, magic, 8);
	put_le64(p + 8, seed);
	put_le64(p + 16, sector);
	for (int i = 24; i < SECTOR; i += 8) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		put_le64(p + i, s * 0x2545f4914f6cdd1dULL);
	}
}

/* Describe what a sector holds, into @buf. */
static void identify(const unsigned char *p, char *buf, size_t len)
{
	unsigned char want[SECTOR];
	int i;

	for (i = 0; i < SECTOR && !p[i]; i++)
		;
	if (i == SECTOR) {
		snprintf(buf, len, "zeros");
		return;
	}
	if (memcmp(p, magic, 8)) {
		snprintf(buf, len, "unknown data");
		return;
	}
	gen_sector(want, get_le64(p + 8), get_le64(p + 16));
	snprintf(buf, len, "%sseed %" PRIu64 " sector %" PRIu64,
		 memcmp(p, want, SECTOR) ? "corrupt " : "",
		 get_le64(p + 8), get_le64(p + 16));
}

struct dev {
	const char *path;
	int fd;
	int flags;
	int direct;
};

static void die(const char *what, const char *path)
{
	fprintf(stderr, "dmclone-pattern: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

static void dev_open(struct dev *d, const char *path, int flags)
{
	d->path = path;
	d->flags = flags;
	d->direct = 1;
	d->fd = open(path, flags | O_DIRECT);
	if (d->fd < 0 && errno == EINVAL) {
		d->direct = 0;
		d->fd = open(path, flags);
	}
	if (d->fd < 0)
		die("cannot open", path);
}

/* Reopen without O_DIRECT (unaligned offset for the device's block size). */
static void dev_buffered(struct dev *d)
{
	close(d->fd);
	d->direct = 0;
	d->fd = open(d->path, d->flags);
	if (d->fd < 0)
		die("cannot reopen", d->path);
}

static void dev_io(struct dev *d, int wr, unsigned char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = wr ? pwrite(d->fd, buf + done, len - done, off + done)
			       : pread(d->fd, buf + done, len - done, off + done);
		if (r < 0 && errno == EINVAL && d->direct) {
			dev_buffered(d);
			continue;
		}
		if (r < 0)
			die(wr ? "write error on" : "read error on", d->path);
		if (r == 0) {
			errno = ENOSPC;
			die("short I/O (device too small?) on", d->path);
		}
		done += r;
	}
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "dmclone-pattern: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* Runs of differing sectors, reported as they close. */
struct report {
	uint64_t start, len, total;
	int shown;
	char a[96], b[96];
	const char *la, *lb;
};

static void report_flush(struct report *r)
{
	if (!r->len)
		return;
	if (r->shown++ < MAX_REPORTS)
		printf("sectors %" PRIu64 "-%" PRIu64 " differ: %s %s, %s %s\n",
		       r->start, r->start + r->len - 1, r->la, r->a, r->lb, r->b);
	r->len = 0;
}

static void report_sector(struct report *r, uint64_t sector,
			  const unsigned char *a, const unsigned char *b)
{
	r->total++;
	if (r->len && r->start + r->len == sector) {
		r->len++;
		return;
	}
	report_flush(r);
	r->start = sector;
	r->len = 1;
	identify(a, r->a, sizeof(r->a));
	identify(b, r->b, sizeof(r->b));
}

static int report_end(struct report *r)
{
	report_flush(r);
	if (r->shown > MAX_REPORTS)
		printf("... %d more runs\n", r->shown - MAX_REPORTS);
	if (r->total)
		printf("%" PRIu64 " sectors differ\n", r->total);
	return r->total ? 1 : 0;
}

static unsigned char *alloc_buf(void)
{
	void *p;

	if (posix_memalign(&p, 4096, CHUNK_SECTORS * SECTOR)) {
		perror("dmclone-pattern: posix_memalign");
		exit(2);
	}
	return p;
}

static void fill(unsigned char *buf, uint64_t seed, uint64_t sector, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		gen_sector(buf + i * SECTOR, seed, sector + i);
}

static int do_gen(uint64_t seed, uint64_t start, uint64_t count)
{
	unsigned char *buf = alloc_buf();

	for (uint64_t s = start; s < start + count; s += CHUNK_SECTORS) {
		uint64_t n = start + count - s < CHUNK_SECTORS ? start + count - s : CHUNK_SECTORS;

		fill(buf, seed, s, n);
		if (fwrite(buf, SECTOR, n, stdout) != n)
			die("write error on", "stdout");
	}
	return fflush(stdout) ? 2 : 0;
}

static int do_write(const char *path, uint64_t seed, uint64_t start, uint64_t count)
{
	unsigned char *buf = alloc_buf();
	struct dev d;

	dev_open(&d, path, O_WRONLY);
	for (uint64_t s = start; s < start + count; s += CHUNK_SECTORS) {
		uint64_t n = start + count - s < CHUNK_SECTORS ? start + count - s : CHUNK_SECTORS;

		fill(buf, seed, s, n);
		dev_io(&d, 1, buf, n * SECTOR, s * SECTOR);
	}
	if (fsync(d.fd))
		die("fsync failed on", path);
	close(d.fd);
	return 0;
}

static int do_check(const char *path, uint64_t seed, uint64_t start, uint64_t count)
{
	unsigned char *buf = alloc_buf(), want[SECTOR];
	struct report r = { .la = "expected", .lb = "found" };
	struct dev d;

	dev_open(&d, path, O_RDONLY);
	for (uint64_t s = start; s < start + count; s += CHUNK_SECTORS) {
		uint64_t n = start + count - s < CHUNK_SECTORS ? start + count - s : CHUNK_SECTORS;

		dev_io(&d, 0, buf, n * SECTOR, s * SECTOR);
		for (uint64_t i = 0; i < n; i++) {
			gen_sector(want, seed, s + i);
			if (memcmp(want, buf + i * SECTOR, SECTOR))
				report_sector(&r, s + i, want, buf + i * SECTOR);
		}
	}
	close(d.fd);
	return report_end(&r);
}

static int do_cmp(const char *pa, const char *pb, uint64_t count, uint64_t sa, uint64_t sb)
{
	unsigned char *a = alloc_buf(), *b = alloc_buf();
	struct report r = { .la = "A has", .lb = "B has" };
	struct dev da, db;

	dev_open(&da, pa, O_RDONLY);
	dev_open(&db, pb, O_RDONLY);
	for (uint64_t s = 0; s < count; s += CHUNK_SECTORS) {
		uint64_t n = count - s < CHUNK_SECTORS ? count - s : CHUNK_SECTORS;

		dev_io(&da, 0, a, n * SECTOR, (sa + s) * SECTOR);
		dev_io(&db, 0, b, n * SECTOR, (sb + s) * SECTOR);
		if (!memcmp(a, b, n * SECTOR))
			continue;
		for (uint64_t i = 0; i < n; i++)
			if (memcmp(a + i * SECTOR, b + i * SECTOR, SECTOR))
				report_sector(&r, s + i, a + i * SECTOR, b + i * SECTOR);
	}
	close(da.fd);
	close(db.fd);
	return report_end(&r);
}

/* Print runs of consecutive sectors: "FIRST-LAST: seed S sectors X-Y". */
struct run {
	uint64_t first, len, seed, from;
	int kind;			/* 0 zeros, 1 pattern, 2 anything else */
};

static void run_print(const struct run *r)
{
	if (!r->len)
		return;
	printf("%" PRIu64 "-%" PRIu64 ": ", r->first, r->first + r->len - 1);
	if (r->kind == 1)
		printf("seed %" PRIu64 " sectors %" PRIu64 "-%" PRIu64 "\n",
		       r->seed, r->from, r->from + r->len - 1);
	else
		printf("%s\n", r->kind ? "unknown data" : "zeros");
}

static int do_identify(const char *path, uint64_t start, uint64_t count)
{
	unsigned char *buf = alloc_buf(), want[SECTOR];
	struct run r = { 0 }, c;
	struct dev d;

	dev_open(&d, path, O_RDONLY);
	for (uint64_t s = start; s < start + count; s += CHUNK_SECTORS) {
		uint64_t n = start + count - s < CHUNK_SECTORS ? start + count - s : CHUNK_SECTORS;

		dev_io(&d, 0, buf, n * SECTOR, s * SECTOR);
		for (uint64_t i = 0; i < n; i++) {
			unsigned char *p = buf + i * SECTOR;
			int j;

			for (j = 0; j < SECTOR && !p[j]; j++)
				;
			c = (struct run){ .first = s + i, .len = 1, .kind = 2 };
			if (j == SECTOR) {
				c.kind = 0;
			} else if (!memcmp(p, magic, 8)) {
				c.seed = get_le64(p + 8);
				c.from = get_le64(p + 16);
				gen_sector(want, c.seed, c.from);
				if (!memcmp(p, want, SECTOR))
					c.kind = 1;
			}
			if (r.len && c.kind == r.kind &&
			    (c.kind != 1 || (c.seed == r.seed && c.from == r.from + r.len))) {
				r.len++;
				continue;
			}
			run_print(&r);
			r = c;
		}
	}
	run_print(&r);
	close(d.fd);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: dmclone-pattern write DEV SEED START COUNT\n"
		"       dmclone-pattern check DEV SEED START COUNT\n"
		"       dmclone-pattern cmp A B COUNT [START_A [START_B]]\n"
		"       dmclone-pattern identify DEV START COUNT\n"
		"       dmclone-pattern gen SEED START COUNT\n"
		"(START and COUNT in 512-byte sectors)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "write") && argc == 6)
		return do_write(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	if (!strcmp(cmd, "check") && argc == 6)
		return do_check(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	if (!strcmp(cmd, "cmp") && argc >= 5 && argc <= 7)
		return do_cmp(argv[2], argv[3], num(argv[4]),
			      argc > 5 ? num(argv[5]) : 0, argc > 6 ? num(argv[6]) : 0);
	if (!strcmp(cmd, "identify") && argc == 5)
		return do_identify(argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(cmd, "gen") && argc == 5) {
		setvbuf(stdout, NULL, _IOFBF, 1 << 20);
		return do_gen(num(argv[2]), num(argv[3]), num(argv[4]));
	}
	usage();
	return 2;
}
