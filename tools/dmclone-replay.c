// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmclone-replay: read a dm-log-writes log and replay it onto a device,
 * for crash-consistency tests (tests/080-crash-replay.sh). Built statically
 * into the test guest as /usr/local/bin/dmclone-replay (scripts/mkinitramfs.sh)
 * and on the host by `make -C tools`.
 *
 * The log format (drivers/md/dm-log-writes.c, version 1), little-endian:
 *
 *   sector 0:          super: magic (8), version (8), nr_entries (8),
 *                      sectorsize (4); the rest of the block is zero
 *   then nr_entries of:
 *     one block:       entry: sector (8), nr_sectors (8), flags (8),
 *                      data_len (8); for a mark, its name (data_len bytes,
 *                      NUL-padded) follows in the same block
 *     nr_sectors blocks of the data written (none for a discard, a mark,
 *                      or an empty flush)
 *
 * A block is `sectorsize` bytes (the logical block size of the logged
 * device); entry sectors and counts are in blocks, log offsets start at
 * byte `sectorsize`. Flags: 1 flush, 2 FUA, 4 discard, 8 mark, 16 metadata.
 * dm-log-writes logs a write once it is on stable storage: plain writes
 * when the next flush completes (just before the flush entry), FUA writes
 * when they complete, so replaying a prefix of the log gives a state the
 * device could have been in after a power cut. The super's nr_entries is
 * rewritten after each FUA write and mark, and at removal (which adds the
 * mark "dm-log-writes-end"); entries past it are ignored.
 *
 * Entries are numbered from 1. "Replay to N" applies entries 1..N, so the
 * target shows the state right after entry N (N = 0: nothing).
 *
 *   dmclone-replay stats LOG
 *   dmclone-replay list LOG [--all]
 *   dmclone-replay replay LOG TARGET [--to N | --to-mark NAME | --to-flush K]
 *                                    [--from N] [--state FILE] [--discard zero|skip]
 *                                    [--coherent]
 *
 * stats: counts of entries, writes, flushes, FUA writes, discards, marks,
 * sectors and bytes, whether the log ends with the end mark.
 * list: one line per flush/FUA point and mark, "ENTRY KIND SECTOR COUNT
 * [NAME]" (KIND: flush, fua, flush+fua, mark; SECTOR and COUNT in blocks);
 * --all lists every entry (KIND also write, discard).
 * replay: applies entries to TARGET, by default all of them; --to N up to
 * entry N, --to-mark NAME up to the first mark NAME, --to-flush K up to the
 * K-th flush/FUA point (1-based, as `list` counts them). Incremental
 * replay: --from N starts at entry N (entries before it are assumed
 * applied); --state FILE starts where the previous run with the same FILE
 * stopped (the file holds the next entry and its log offset) and records
 * where this one stops. A discard is replayed as zeros (--discard zero,
 * the default) or not at all (--discard skip). --coherent keeps the data
 * of a FUA write over a plain write logged after it in the same flush
 * interval (see struct fua_set: dm-log-writes orders such pairs the way
 * no disk does).
 *
 * Everything read is checked (magic, version, block size, entry flags,
 * bounds against the log and the target, mark names): a truncated or
 * garbage log is reported and nothing past the bad entry is applied.
 * Exit status: 0 done, 1 bad log or I/O error, 2 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MAGIC		0x6a736677736872ULL
#define LOG_VERSION		1ULL
#define FLAG_FLUSH		(1ULL << 0)
#define FLAG_FUA		(1ULL << 1)
#define FLAG_DISCARD		(1ULL << 2)
#define FLAG_MARK		(1ULL << 3)
#define FLAG_METADATA		(1ULL << 4)
#define FLAGS_KNOWN		0x1fULL
#define ENTRY_HDR_SIZE		32
#define SUPER_SIZE		28
#define MAX_BLOCK_SIZE		65536		/* bytes; 512..64 KiB, power of 2 */
#define COPY_CHUNK		(1024 * 1024)	/* bytes per read/write while copying */
#define END_MARK		"dm-log-writes-end"
#define STATE_MAGIC		"dmclone-replay-state"

static const char *prog = "dmclone-replay";

struct dev {
	const char *path;
	int fd;
	int flags;
	int direct;
	uint64_t size;			/* bytes */
};

struct log {
	struct dev dev;
	uint32_t bs;			/* block size, bytes */
	uint64_t nr_entries;		/* from the super */
	unsigned char *blk;		/* one block, aligned */
};

/* One decoded entry. */
struct entry {
	uint64_t nr;			/* 1-based */
	uint64_t off;			/* byte offset of its header in the log */
	uint64_t sector, nr_sectors;	/* blocks */
	uint64_t flags, data_len;
	uint64_t data_off;		/* byte offset of its data */
	uint64_t next_off;		/* byte offset of the next entry */
	char name[MAX_BLOCK_SIZE];	/* mark name */
};

static void __attribute__((format(printf, 1, 2))) err(const char *fmt, ...);

static void err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void *alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len)) {
		err("out of memory");
		exit(1);
	}
	return p;
}

/* Open @path; O_DIRECT when the device or file system allows it. */
static int dev_open(struct dev *d, const char *path, int flags)
{
	struct stat st;
	off_t end;

	d->path = path;
	d->flags = flags;
	d->direct = 1;
	d->fd = open(path, flags | O_DIRECT);
	if (d->fd < 0 && errno == EINVAL) {
		d->direct = 0;
		d->fd = open(path, flags);
	}
	if (d->fd < 0) {
		err("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(d->fd, &st) || (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))) {
		err("%s is neither a block device nor a file", path);
		close(d->fd);
		return -1;
	}
	end = lseek(d->fd, 0, SEEK_END);
	if (end < 0) {
		err("cannot get the size of %s: %s", path, strerror(errno));
		close(d->fd);
		return -1;
	}
	d->size = end;
	return 0;
}

/* Fall back to buffered I/O (an unaligned request for O_DIRECT). */
static int dev_buffered(struct dev *d)
{
	close(d->fd);
	d->direct = 0;
	d->fd = open(d->path, d->flags);
	if (d->fd < 0) {
		err("cannot reopen %s: %s", d->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Read or write exactly @len bytes at @off; the caller checked the bounds. */
static int dev_io(struct dev *d, int wr, unsigned char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = wr ? pwrite(d->fd, buf + done, len - done, off + done)
			       : pread(d->fd, buf + done, len - done, off + done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL && d->direct) {
			if (dev_buffered(d))
				return -1;
			continue;
		}
		if (r < 0) {
			err("%s error on %s at byte %" PRIu64 ": %s", wr ? "write" : "read",
			    d->path, off + done, strerror(errno));
			return -1;
		}
		if (r == 0) {
			err("short %s on %s at byte %" PRIu64, wr ? "write" : "read",
			    d->path, off + done);
			return -1;
		}
		done += r;
	}
	return 0;
}

/* Open the log and check its super. */
static int log_open(struct log *l, const char *path)
{
	unsigned char *s;
	uint64_t magic, version, max_entries;

	if (dev_open(&l->dev, path, O_RDONLY))
		return -1;
	if (l->dev.size < 512) {
		err("%s: too small for a dm-log-writes log (%" PRIu64 " bytes)", path,
		    l->dev.size);
		return -1;
	}
	s = alloc_aligned(MAX_BLOCK_SIZE);
	if (dev_io(&l->dev, 0, s, 512, 0))
		return -1;
	magic = get_le64(s);
	version = get_le64(s + 8);
	l->nr_entries = get_le64(s + 16);
	l->bs = get_le32(s + 24);
	if (magic != LOG_MAGIC) {
		err("%s: not a dm-log-writes log (magic %#" PRIx64 ", expected %#llx)",
		    path, magic, LOG_MAGIC);
		return -1;
	}
	if (version != LOG_VERSION) {
		err("%s: log version %" PRIu64 ", only version %llu is known", path,
		    version, LOG_VERSION);
		return -1;
	}
	if (l->bs < 512 || l->bs > MAX_BLOCK_SIZE || (l->bs & (l->bs - 1))) {
		err("%s: invalid block size %" PRIu32 " in the super", path, l->bs);
		return -1;
	}
	if (l->dev.size < l->bs) {
		err("%s: truncated: smaller than one %" PRIu32 "-byte block", path, l->bs);
		return -1;
	}
	/* Each entry takes at least one block after the super's block. */
	max_entries = l->dev.size / l->bs - 1;
	if (l->nr_entries > max_entries) {
		err("%s: the super claims %" PRIu64 " entries, the log holds at most %" PRIu64
		    " (truncated or corrupt)", path, l->nr_entries, max_entries);
		return -1;
	}
	l->blk = s;
	return 0;
}

/*
 * Decode the entry at byte @off (entry number @nr) into @e, checking it
 * against the log. Returns 0, or -1 with a message.
 */
static int log_entry(struct log *l, uint64_t nr, uint64_t off, struct entry *e)
{
	const char *path = l->dev.path;
	unsigned char *b = l->blk;
	uint64_t data_bytes;

	if (off < l->bs || off % l->bs) {
		err("%s: entry %" PRIu64 ": bad offset %" PRIu64, path, nr, off);
		return -1;
	}
	if (off > l->dev.size || l->dev.size - off < l->bs) {
		err("%s: truncated: entry %" PRIu64 " of %" PRIu64 " would start at byte %"
		    PRIu64 ", past the end of the log (%" PRIu64 " bytes)",
		    path, nr, l->nr_entries, off, l->dev.size);
		return -1;
	}
	if (dev_io(&l->dev, 0, b, l->bs, off))
		return -1;
	e->nr = nr;
	e->off = off;
	e->sector = get_le64(b);
	e->nr_sectors = get_le64(b + 8);
	e->flags = get_le64(b + 16);
	e->data_len = get_le64(b + 24);
	e->name[0] = 0;
	e->data_off = off + l->bs;

	if (e->flags & ~FLAGS_KNOWN) {
		err("%s: entry %" PRIu64 " at byte %" PRIu64 ": unknown flags %#" PRIx64
		    " (garbage?)", path, nr, off, e->flags);
		return -1;
	}
	if (e->flags & FLAG_MARK) {
		if (e->flags != FLAG_MARK || e->nr_sectors || e->sector) {
			err("%s: entry %" PRIu64 ": a mark with flags %#" PRIx64 ", sector %"
			    PRIu64 ", %" PRIu64 " blocks", path, nr, e->flags, e->sector,
			    e->nr_sectors);
			return -1;
		}
		if (!e->data_len || e->data_len > l->bs - ENTRY_HDR_SIZE - 1) {
			err("%s: entry %" PRIu64 ": mark name length %" PRIu64
			    " out of range 1..%" PRIu32, path, nr, e->data_len,
			    l->bs - ENTRY_HDR_SIZE - 1);
			return -1;
		}
		memcpy(e->name, b + ENTRY_HDR_SIZE, e->data_len);
		e->name[e->data_len] = 0;
		if (strlen(e->name) != e->data_len) {
			err("%s: entry %" PRIu64 ": mark name holds a NUL byte", path, nr);
			return -1;
		}
		for (const char *c = e->name; *c; c++)
			if (*c < 0x20 || *c == 0x7f) {
				err("%s: entry %" PRIu64 ": mark name holds a control character",
				    path, nr);
				return -1;
			}
		e->next_off = off + l->bs;
		return 0;
	}
	if (e->data_len) {
		err("%s: entry %" PRIu64 ": inline data (%" PRIu64
		    " bytes) on a non-mark entry is not supported", path, nr, e->data_len);
		return -1;
	}
	if (e->flags & FLAG_DISCARD) {
		if (e->flags & (FLAG_FLUSH | FLAG_FUA)) {
			err("%s: entry %" PRIu64 ": a discard with flush/FUA flags %#" PRIx64,
			    path, nr, e->flags);
			return -1;
		}
		if (!e->nr_sectors) {
			err("%s: entry %" PRIu64 ": an empty discard", path, nr);
			return -1;
		}
		data_bytes = 0;
	} else {
		if (!e->nr_sectors && !(e->flags & FLAG_FLUSH)) {
			err("%s: entry %" PRIu64 ": an empty write without a flush", path, nr);
			return -1;
		}
		if (e->nr_sectors > (UINT64_MAX - off) / l->bs - 2) {
			err("%s: entry %" PRIu64 ": %" PRIu64 " blocks: out of range", path,
			    nr, e->nr_sectors);
			return -1;
		}
		data_bytes = e->nr_sectors * l->bs;
	}
	if (e->sector > UINT64_MAX / l->bs - e->nr_sectors) {
		err("%s: entry %" PRIu64 ": sector %" PRIu64 " + %" PRIu64 ": out of range",
		    path, nr, e->sector, e->nr_sectors);
		return -1;
	}
	if (data_bytes > l->dev.size - e->data_off) {
		err("%s: truncated: the data of entry %" PRIu64 " (%" PRIu64 " bytes at byte %"
		    PRIu64 ") extends past the end of the log (%" PRIu64 " bytes)", path, nr,
		    data_bytes, e->data_off, l->dev.size);
		return -1;
	}
	e->next_off = e->data_off + data_bytes;
	return 0;
}

static const char *entry_kind(const struct entry *e)
{
	if (e->flags & FLAG_MARK)
		return "mark";
	if (e->flags & FLAG_DISCARD)
		return "discard";
	if ((e->flags & (FLAG_FLUSH | FLAG_FUA)) == (FLAG_FLUSH | FLAG_FUA))
		return "flush+fua";
	if (e->flags & FLAG_FLUSH)
		return "flush";
	if (e->flags & FLAG_FUA)
		return "fua";
	return "write";
}

static int is_point(const struct entry *e)
{
	return !(e->flags & FLAG_MARK) && (e->flags & (FLAG_FLUSH | FLAG_FUA));
}

static uint64_t num(const char *s, const char *what)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !*s || *end || *s == '-') {
		err("bad %s '%s': a decimal number is needed", what, s);
		exit(2);
	}
	return v;
}

static int do_stats(struct log *l)
{
	uint64_t writes = 0, flushes = 0, fuas = 0, discards = 0, marks = 0,
		 meta = 0, blocks = 0, discarded = 0, off = l->bs, last_end = 0;
	struct entry *e = malloc(sizeof(*e));
	int ended = 0;

	if (!e)
		return 1;
	for (uint64_t n = 1; n <= l->nr_entries; n++) {
		if (log_entry(l, n, off, e))
			return 1;
		off = e->next_off;
		ended = 0;
		if (e->flags & FLAG_MARK) {
			marks++;
			ended = !strcmp(e->name, END_MARK);
			continue;
		}
		if (e->flags & FLAG_DISCARD) {
			discards++;
			discarded += e->nr_sectors;
			continue;
		}
		if (e->flags & FLAG_FLUSH)
			flushes++;
		if (e->flags & FLAG_FUA)
			fuas++;
		if (e->flags & FLAG_METADATA)
			meta++;
		if (e->nr_sectors) {
			writes++;
			blocks += e->nr_sectors;
			if (e->sector + e->nr_sectors > last_end)
				last_end = e->sector + e->nr_sectors;
		}
	}
	printf("block size:        %" PRIu32 " bytes\n", l->bs);
	printf("entries:           %" PRIu64 "\n", l->nr_entries);
	printf("writes:            %" PRIu64 " (%" PRIu64 " blocks, %" PRIu64 " bytes; "
	       "%" PRIu64 " REQ_META)\n", writes, blocks, blocks * l->bs, meta);
	printf("flushes:           %" PRIu64 "\n", flushes);
	printf("fua writes:        %" PRIu64 "\n", fuas);
	printf("discards:          %" PRIu64 " (%" PRIu64 " blocks)\n", discards, discarded);
	printf("marks:             %" PRIu64 "\n", marks);
	printf("highest block:     %" PRIu64 "\n", last_end ? last_end - 1 : 0);
	printf("log bytes used:    %" PRIu64 " of %" PRIu64 "\n", off, l->dev.size);
	printf("ends with %s: %s\n", END_MARK, ended ? "yes" : "no");
	free(e);
	return 0;
}

static int do_list(struct log *l, int all)
{
	struct entry *e = malloc(sizeof(*e));
	uint64_t off = l->bs;

	if (!e)
		return 1;
	for (uint64_t n = 1; n <= l->nr_entries; n++) {
		if (log_entry(l, n, off, e))
			return 1;
		off = e->next_off;
		if (!all && !is_point(e) && !(e->flags & FLAG_MARK))
			continue;
		printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64 "%s%s\n", n, entry_kind(e),
		       e->sector, e->nr_sectors, e->name[0] ? " " : "", e->name);
	}
	free(e);
	return 0;
}

/*
 * The state file: "dmclone-replay-state NEXT OFFSET BLOCK_SIZE EPOCH EPOCH_OFFSET":
 * the next entry to apply and its log offset, and the first entry after
 * the last flush before it (for --coherent).
 */
struct pos {
	uint64_t next, off;		/* next entry to apply */
	uint64_t epoch, epoch_off;	/* first entry after the last flush */
};

static int state_read(const char *path, struct pos *p, uint32_t bs)
{
	char magic[32];
	uint64_t b;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (errno == ENOENT)
			return 1;
		err("cannot open the state file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fscanf(f, "%31s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
		   magic, &p->next, &p->off, &b, &p->epoch, &p->epoch_off) != 6 ||
	    strcmp(magic, STATE_MAGIC) || !p->next || b != bs || p->off < bs ||
	    p->off % bs || !p->epoch || p->epoch > p->next || p->epoch_off < bs ||
	    p->epoch_off % bs || p->epoch_off > p->off) {
		err("%s: not a state file of this log", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int state_write(const char *path, const struct pos *p, uint32_t bs)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		err("state file name too long");
		return -1;
	}
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu64 " %" PRIu64 "\n",
			  STATE_MAGIC, p->next, p->off, bs, p->epoch, p->epoch_off) < 0 ||
	    fclose(f) || rename(tmp, path)) {
		err("cannot write the state file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * --coherent: the block ranges written by FUA writes since the last flush.
 * dm-log-writes logs a FUA write when it completes but a plain write only
 * at the next flush, so a plain write that completed before a FUA write to
 * the same blocks is logged after it, and a replay in log order lets the
 * older data win, which no disk does (a completed write is superseded by a
 * later write to the same blocks, cached or not). With --coherent, a plain
 * write or discard does not overwrite blocks written by a FUA write logged
 * earlier in the same flush interval. That assumes it completed before
 * the FUA write; the log cannot tell, so callers should avoid plain writes
 * over FUA-written blocks before the next flush (compare the device the
 * log was taken of with a full replay to check).
 */
struct fua_set {
	uint64_t (*r)[2];		/* [start, end) in blocks */
	size_t n, cap;
};

static int fua_add(struct fua_set *f, uint64_t start, uint64_t end)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;
		void *r = realloc(f->r, cap * sizeof(*f->r));

		if (!r) {
			err("out of memory");
			return -1;
		}
		f->r = r;
		f->cap = cap;
	}
	f->r[f->n][0] = start;
	f->r[f->n][1] = end;
	f->n++;
	return 0;
}

/* Track the FUA ranges of the current flush interval through entry @e. */
static int fua_note(struct fua_set *f, const struct entry *e, struct pos *p)
{
	if (e->flags & FLAG_MARK)
		return 0;
	if (e->flags & FLAG_FLUSH) {
		f->n = 0;
		p->epoch = e->nr + 1;
		p->epoch_off = e->next_off;
	}
	if ((e->flags & FLAG_FUA) && e->nr_sectors)
		return fua_add(f, e->sector, e->sector + e->nr_sectors);
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Write zeros over @len bytes at @off of the target. */
static int zero_range(struct dev *t, unsigned char *buf, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	if (!ioctl(t->fd, BLKZEROOUT, range))
		return 0;
	memset(buf, 0, COPY_CHUNK);
	while (len) {
		size_t n = len < COPY_CHUNK ? len : COPY_CHUNK;

		if (dev_io(t, 1, buf, n, off))
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

struct replay_opts {
	int discard_zero;		/* replay discards as zeros */
	int coherent;			/* --coherent */
};

/* Apply blocks [@start, @end) of entry @e (data or zeros) to the target. */
static int apply_piece(struct log *l, struct dev *t, const struct entry *e,
		       unsigned char *buf, uint64_t start, uint64_t end, int discard_zero)
{
	uint64_t boff = start * l->bs, blen = (end - start) * l->bs;
	uint64_t doff = e->data_off + (start - e->sector) * l->bs;

	if (e->flags & FLAG_DISCARD)
		return discard_zero ? zero_range(t, buf, boff, blen) : 0;
	for (uint64_t done = 0; done < blen; ) {
		size_t c = blen - done < COPY_CHUNK ? blen - done : COPY_CHUNK;

		if (dev_io(&l->dev, 0, buf, c, doff + done) || dev_io(t, 1, buf, c, boff + done))
			return -1;
		done += c;
	}
	return 0;
}

/*
 * Apply entry @e; with --coherent, a plain write or discard skips the
 * blocks of FUA writes of the current flush interval. Returns the blocks
 * skipped, or -1.
 */
static int64_t apply_entry(struct log *l, struct dev *t, const struct entry *e,
			   unsigned char *buf, struct fua_set *f, const struct replay_opts *o)
{
	uint64_t s = e->sector, end = e->sector + e->nr_sectors, cur = s, skipped = 0;
	uint64_t (*ov)[2];
	size_t n = 0;

	if (!e->nr_sectors || (e->flags & FLAG_MARK))
		return 0;
	if (!o->coherent || (e->flags & (FLAG_FUA | FLAG_FLUSH)) || !f->n)
		return apply_piece(l, t, e, buf, s, end, o->discard_zero) ? -1 : 0;
	ov = malloc(f->n * sizeof(*ov));
	if (!ov) {
		err("out of memory");
		return -1;
	}
	for (size_t i = 0; i < f->n; i++) {
		uint64_t a = f->r[i][0] > s ? f->r[i][0] : s;
		uint64_t b = f->r[i][1] < end ? f->r[i][1] : end;

		if (a < b) {
			ov[n][0] = a;
			ov[n][1] = b;
			n++;
		}
	}
	qsort(ov, n, sizeof(*ov), cmp_range);
	for (size_t i = 0; i <= n; i++) {
		uint64_t a = i < n ? ov[i][0] : end;

		if (a > cur && apply_piece(l, t, e, buf, cur, a, o->discard_zero)) {
			free(ov);
			return -1;
		}
		if (i < n && ov[i][1] > cur) {
			skipped += ov[i][1] - (a > cur ? a : cur);
			cur = ov[i][1];
		} else if (a > cur) {
			cur = a;
		}
	}
	free(ov);
	return skipped;
}

enum stop { STOP_ALL, STOP_ENTRY, STOP_MARK, STOP_FLUSH };

static int do_replay(struct log *l, const char *target, enum stop how, uint64_t to,
		     const char *mark, uint64_t from, const char *state,
		     const struct replay_opts *o)
{
	uint64_t points = 0, applied = 0, bytes = 0, skipped = 0, last;
	struct pos p = { .next = 1, .off = l->bs, .epoch = 1, .epoch_off = l->bs };
	unsigned char *buf = alloc_aligned(COPY_CHUNK);
	struct entry *e = malloc(sizeof(*e));
	struct fua_set f = { 0 };
	struct dev t;
	int found = 0, rc = 1;

	if (!e)
		return 1;
	if (how == STOP_ENTRY && to > l->nr_entries) {
		err("%s: --to %" PRIu64 ": the log has %" PRIu64 " entries", l->dev.path,
		    to, l->nr_entries);
		return 1;
	}
	last = how == STOP_ENTRY ? to : l->nr_entries;
	if (state) {
		rc = state_read(state, &p, l->bs);
		if (rc < 0)
			return 1;
		if (rc == 0 && from) {
			err("--from and an existing --state file exclude each other");
			return 2;
		}
		if (rc == 0 && (p.next > l->nr_entries + 1 || p.off > l->dev.size)) {
			err("%s: state file points past the log (entry %" PRIu64 ")", state,
			    p.next);
			return 1;
		}
	}
	if (dev_open(&t, target, O_RDWR))
		return 1;

	/* Skip to the first entry to apply, noting the FUA ranges on the way. */
	if (from > l->nr_entries + 1) {
		err("--from %" PRIu64 ": the log has %" PRIu64 " entries", from, l->nr_entries);
		return 1;
	}
	for (uint64_t i = 1; i < from; i++) {
		if (log_entry(l, i, p.off, e) || fua_note(&f, e, &p))
			return 1;
		p.off = e->next_off;
		p.next = i + 1;
	}
	if (state && !from && p.epoch < p.next) {
		/* Resumed: rebuild the FUA ranges of the current flush interval. */
		uint64_t o2 = p.epoch_off;

		for (uint64_t i = p.epoch; i < p.next; i++) {
			if (log_entry(l, i, o2, e) || fua_note(&f, e, &p))
				return 1;
			o2 = e->next_off;
		}
		if (o2 != p.off) {
			err("%s: state file does not match the log", state);
			return 1;
		}
	}
	if (how == STOP_FLUSH || how == STOP_MARK) {
		/* Find the stop entry from the start, independent of --from/--state. */
		uint64_t o2 = l->bs;

		for (uint64_t i = 1; i <= l->nr_entries && !found; i++) {
			if (log_entry(l, i, o2, e))
				return 1;
			o2 = e->next_off;
			if (how == STOP_FLUSH && is_point(e) && ++points == to)
				found = 1;
			if (how == STOP_MARK && (e->flags & FLAG_MARK) && !strcmp(e->name, mark))
				found = 1;
			if (found)
				last = i;
		}
		if (!found) {
			if (how == STOP_FLUSH)
				err("%s: --to-flush %" PRIu64 ": the log has %" PRIu64
				    " flush/FUA points", l->dev.path, to, points);
			else
				err("%s: no mark named '%s'", l->dev.path, mark);
			return 1;
		}
	}
	if (p.next > last + 1) {
		err("already past entry %" PRIu64 " (next to apply: %" PRIu64
		    "): replay cannot go back", last, p.next);
		return 1;
	}

	for (; p.next <= last; p.next++) {
		int64_t sk;

		if (log_entry(l, p.next, p.off, e))
			return 1;
		if (!(e->flags & FLAG_MARK) && (e->sector * l->bs > t.size ||
						e->nr_sectors * l->bs > t.size - e->sector * l->bs)) {
			err("entry %" PRIu64 ": blocks %" PRIu64 "+%" PRIu64
			    " are past the end of %s (%" PRIu64 " bytes)", p.next, e->sector,
			    e->nr_sectors, target, t.size);
			return 1;
		}
		sk = apply_entry(l, &t, e, buf, &f, o);
		if (sk < 0 || fua_note(&f, e, &p))
			return 1;
		skipped += sk;
		if (!(e->flags & (FLAG_MARK | FLAG_DISCARD)))
			bytes += (e->nr_sectors - sk) * l->bs;
		applied++;
		p.off = e->next_off;
		/* A flush point is a barrier on the target too. */
		if (is_point(e) && !t.direct && fdatasync(t.fd)) {
			err("fdatasync %s: %s", target, strerror(errno));
			return 1;
		}
	}
	if (fsync(t.fd)) {
		err("fsync %s: %s", target, strerror(errno));
		return 1;
	}
	close(t.fd);
	if (state && state_write(state, &p, l->bs))
		return 1;
	fprintf(stderr, "%s: applied %" PRIu64 " entries (%" PRIu64 " bytes), now at entry %"
		PRIu64 " of %" PRIu64, prog, applied, bytes, p.next - 1, l->nr_entries);
	if (o->coherent)
		fprintf(stderr, "; %" PRIu64 " blocks kept from FUA writes", skipped);
	fputc('\n', stderr);
	free(f.r);
	free(e);
	free(buf);
	return 0;
}

static void usage(int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: %s stats LOG\n"
		"       %s list LOG [--all]\n"
		"       %s replay LOG TARGET [--to N | --to-mark NAME | --to-flush K]\n"
		"                    [--from N] [--state FILE] [--discard zero|skip] [--coherent]\n"
		"Entries are numbered from 1; replaying to N applies entries 1..N.\n",
		prog, prog, prog);
	exit(rc);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "", *mark = NULL, *state = NULL;
	enum stop how = STOP_ALL;
	uint64_t to = 0, from = 0;
	struct replay_opts ro = { .discard_zero = 1 };
	int all = 0, nstops = 0;
	struct log l;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help"))
		usage(0);
	if (argc < 3)
		usage(2);
	if (!strcmp(cmd, "stats") && argc == 3) {
		if (log_open(&l, argv[2]))
			return 1;
		return do_stats(&l);
	}
	if (!strcmp(cmd, "list") && (argc == 3 || (argc == 4 && !strcmp(argv[3], "--all")))) {
		all = argc == 4;
		if (log_open(&l, argv[2]))
			return 1;
		return do_list(&l, all);
	}
	if (strcmp(cmd, "replay") || argc < 4)
		usage(2);
	for (int i = 4; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--coherent")) {
			ro.coherent = 1;
			continue;
		}
		if (!v)
			usage(2);
		i++;
		if (!strcmp(o, "--to")) {
			how = STOP_ENTRY;
			to = num(v, "entry number");
			nstops++;
		} else if (!strcmp(o, "--to-mark")) {
			how = STOP_MARK;
			mark = v;
			nstops++;
		} else if (!strcmp(o, "--to-flush")) {
			how = STOP_FLUSH;
			to = num(v, "flush point");
			if (!to) {
				err("--to-flush counts from 1");
				return 2;
			}
			nstops++;
		} else if (!strcmp(o, "--from")) {
			from = num(v, "entry number");
			if (!from) {
				err("--from counts from 1");
				return 2;
			}
		} else if (!strcmp(o, "--state")) {
			state = v;
		} else if (!strcmp(o, "--discard")) {
			if (!strcmp(v, "zero"))
				ro.discard_zero = 1;
			else if (!strcmp(v, "skip"))
				ro.discard_zero = 0;
			else
				usage(2);
		} else {
			usage(2);
		}
	}
	if (nstops > 1) {
		err("give at most one of --to, --to-mark, --to-flush");
		return 2;
	}
	if (log_open(&l, argv[2]))
		return 1;
	return do_replay(&l, argv[3], how, to, mark, from, state, &ro);
}
