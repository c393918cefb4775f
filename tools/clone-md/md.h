/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The dm-clone metadata tools' shared declarations: the on-disk layout of
 * the superblock and of the persistent-data blocks (space map index and
 * bitmaps, btree nodes, array blocks), the in-memory image of one
 * metadata device, and the functions each file of tools/clone-md exports.
 */
#ifndef CLONE_MD_H
#define CLONE_MD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLONE_TOOLS_VERSION	"1.0"

#define MD_BLOCK		4096u
#define MD_BLOCK_SECTORS	8u

/* Superblock (block 0). */
#define SB_LOCATION		0
#define SB_MAGIC		0x8af27f64ULL
#define SB_CSUM_XOR		257649492u
#define SB_VERSION		1u
/* flags bit 0: a metadata operation failed; run clone_check. */
#define SB_FLAG_NEEDS_CHECK	1u
#define SB_OFF_CSUM		0
#define SB_OFF_FLAGS		4
#define SB_OFF_BLOCKNR		8
#define SB_OFF_UUID		16
#define SB_OFF_MAGIC		32
#define SB_OFF_VERSION		40
#define SB_OFF_SM_ROOT		44
#define SB_SM_ROOT_SIZE		128
#define SB_OFF_REGION_SIZE	172
#define SB_OFF_TARGET_SIZE	180
#define SB_OFF_BITSET_ROOT	188

/* The metadata space map root inside the superblock. */
#define SMR_NR_BLOCKS		0
#define SMR_NR_ALLOCATED	8
#define SMR_BITMAP_ROOT		16	/* the index block */
#define SMR_REF_COUNT_ROOT	24

/* Checksum salts of persistent-data's block types. */
#define BTREE_CSUM_XOR		121107u
#define ARRAY_CSUM_XOR		595846735u
#define INDEX_CSUM_XOR		160478u
#define BITMAP_CSUM_XOR		240779u

/* Space map index: header 16 bytes, then 255 entries of 16 bytes. */
#define INDEX_MAX_BITMAPS	255u
#define INDEX_HDR		16
#define IE_SIZE			16
/* Space map bitmap: header 16 bytes, then 2 bits per block. */
#define BITMAP_HDR		16
#define BITMAP_ENTRIES		((MD_BLOCK - BITMAP_HDR) * 4u)	/* 16320 */
#define SM_MAX_BLOCKS		((uint64_t)INDEX_MAX_BITMAPS * BITMAP_ENTRIES)

/* Btree node: 32-byte header, keys, then values. */
#define NODE_HDR		32
#define NODE_INTERNAL		1u
#define NODE_LEAF		2u
#define BTREE_MAX_DEPTH		16

/* Array block: 24-byte header, then values. */
#define ARRAY_HDR		24
#define ARRAY_WORDS		((MD_BLOCK - ARRAY_HDR) / 8u)	/* 509 */

/* Region bounds the kernel target accepts (dm-clone-region.h). */
#define MIN_REGION_SIZE		8ULL
#define MAX_REGION_SIZE		2097152ULL
#define MAX_REGIONS		2147483648ULL

/* Little-endian access, alignment-free. */
uint32_t get32(const uint8_t *p);
uint64_t get64(const uint8_t *p);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);

/* crc32c.c */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
uint32_t block_csum(const uint8_t *blk, uint32_t xor);
void block_seal(uint8_t *blk, uint32_t xor);

/* dev.c: a metadata device or image file, read block by block. */
struct dev {
	int fd;
	const char *path;
	uint64_t bytes;
	uint64_t nr_blocks;	/* whole 4 KiB blocks */
	uint8_t *bounce;	/* aligned buffer for O_DIRECT, or NULL */
};
int dev_open(struct dev *d, const char *path, bool write);
void dev_close(struct dev *d);
int dev_read(const struct dev *d, uint64_t b, uint8_t *buf);
int dev_write(const struct dev *d, uint64_t b, const uint8_t *buf);
int dev_sync(const struct dev *d);
/* All of @len bytes at @off, or -1. */
int pio_full(int fd, uint8_t *buf, size_t len, uint64_t off, bool write);

/* super.c: the superblock, decoded. */
struct super {
	uint32_t csum, flags, version;
	uint64_t blocknr, magic, region_size, target_size, bitset_root;
	uint64_t sm_nr_blocks, sm_nr_allocated, sm_index, sm_ref_root;
	uint64_t nr_regions;	/* ceil(target_size / region_size) */
};
void super_decode(const uint8_t *blk, struct super *sb);
bool super_is_clone(const uint8_t *blk);
bool block_all_zero(const uint8_t *blk);
/* One problem per call of report(); returns the number found. */
typedef void (*report_fn)(void *ctx, uint64_t block, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int super_check(const uint8_t *blk, const struct dev *d, struct super *sb,
		report_fn report, void *ctx);
uint64_t sm_usable_blocks(const struct dev *d);
uint64_t min_metadata_blocks(uint64_t nr_regions);

/* bits.c: a plain bitmap of regions, and runs of it. */
struct bits {
	uint64_t n;
	uint64_t *w;
};
int bits_init(struct bits *b, uint64_t n);
void bits_free(struct bits *b);
void bits_set(struct bits *b, uint64_t i);
bool bits_test(const struct bits *b, uint64_t i);
void bits_set_range(struct bits *b, uint64_t begin, uint64_t len);
uint64_t bits_count(const struct bits *b);
/* Next run of set bits at or after *pos: returns false when none. */
bool bits_next_run(const struct bits *b, uint64_t *pos, uint64_t *len);

/* walk.c: read the bitset; a btree walker with cycle and depth checks. */
enum kind { K_NONE, K_SUPER, K_INDEX, K_BITMAP, K_REF_NODE, K_BITSET_NODE,
	    K_ARRAY };
extern const char *const kind_name[];
struct seen {
	uint64_t n;
	uint32_t *refs;		/* references found to each block */
	uint8_t *kind;		/* what each referenced block is */
};
int seen_init(struct seen *s, uint64_t n);
void seen_free(struct seen *s);
/*
 * Count a reference from @from to @b as a block of @k; reports a pointer
 * out of range or a block used as two kinds. Returns the references
 * counted before this one, or -1 when @b must not be read.
 */
long seen_add(struct seen *s, uint64_t b, enum kind k, uint64_t from,
	      report_fn report, void *ctx);

struct walk {
	const struct dev *d;
	struct seen *seen;
	enum kind kind;
	uint32_t value_size;	/* of the leaves */
	void (*leaf)(struct walk *w, uint64_t node, uint64_t key,
		     const uint8_t *value);
	void *arg;
	report_fn report;
	void *ctx;
	int problems;
	int leaf_depth;
	uint64_t path[BTREE_MAX_DEPTH + 1];
};
/* Walk the btree under @root (referenced from block @from). */
void btree_walk(struct walk *w, uint64_t root, uint64_t from);
uint32_t btree_max_entries(uint32_t value_size);
/* Check a block's checksum and block number field (at @off_blocknr). */
bool block_sound(struct walk *w, uint64_t b, const uint8_t *blk,
		 uint32_t xor, unsigned int off_blocknr);

struct bitset_read {
	struct bits hydrated;	/* bits read from sound array blocks */
	struct bits known;	/* regions whose state was read */
	uint64_t words_found;	/* array entries in sound blocks */
	int problems;
};
/*
 * Read the bitset under @root for @nr_regions regions from @d; every
 * btree node and array block reached is counted in @seen (may be NULL).
 * Problems go to @report.
 */
int bitset_read(const struct dev *d, uint64_t root, uint64_t nr_regions,
		struct seen *seen, struct bitset_read *out,
		report_fn report, void *ctx);
void bitset_read_free(struct bitset_read *r);

/* spacemap.c: check the metadata space map against the references seen. */
int sm_check(const struct dev *d, const struct super *sb, struct seen *seen,
	     report_fn report, void *ctx);

/* examine.c: read (and check) one metadata device as far as it goes. */
enum exam_level { EXAM_SUPER, EXAM_BITSET, EXAM_ALL };
struct exam {
	uint8_t sb_blk[MD_BLOCK];
	struct super sb;
	bool sb_read;		/* block 0 could be read */
	bool sb_clone;		/* it has the magic */
	bool sb_intact;		/* and checksum, number, version, geometry */
	bool sb_sound;		/* and no problem at all */
	bool have_bitset;	/* bs below was filled */
	struct bitset_read bs;
	int problems;
};
int examine(const struct dev *d, struct exam *ex, enum exam_level level,
	    report_fn report, void *ctx);
/*
 * The one device argument left in @argv after the options, opened and
 * examined; returns the problems found, or -1 (usage error or a device
 * that cannot be opened, reported).
 */
int examine_arg(int argc, char **argv, void (*usage)(FILE *),
		enum exam_level level, report_fn report, struct exam *ex);
void exam_free(struct exam *ex);

/* format.c: write fresh metadata holding @hydrated. */
int md_format(const struct dev *d, uint64_t region_size, uint64_t target_size,
	      uint32_t flags, const struct bits *hydrated, const char **error);

/* dumpfmt.c: the dump grammar, written and read. */
struct dump {
	uint32_t version, flags;
	uint64_t region_size, target_size, nr_regions;
	struct bits hydrated;
};
enum dump_format { FMT_XML, FMT_JSON };
void dump_write(FILE *f, const struct dump *dp, enum dump_format fmt);
/* Parses @text; on failure returns -1 and a message in @err. */
int dump_parse(const char *text, size_t len, struct dump *dp,
	       char *err, size_t errlen);

/* Reading a whole dump file (or stdin for "-"), bounded. */
char *slurp(const char *path, size_t *len, size_t max);

/* The tools. */
int check_main(int argc, char **argv);
int dump_main(int argc, char **argv);
int restore_main(int argc, char **argv);
int repair_main(int argc, char **argv);

/* main.c: messages and helpers the tools share. */
extern const char *prog;
void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool parse_u64(const char *s, uint64_t *v);
/* Prints the --version line; returns 0. */
int print_version(void);
/* -h, -V or an unknown option (@c from getopt): the exit status. */
int common_option(int c, void (*usage)(FILE *));
/* A problem on stderr: "PROG: block N: what". */
void report_stderr(void *ctx, uint64_t block, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Regions of @b as "N" or "N-M" runs on one line after @prefix. */
void print_ranges(FILE *f, const struct bits *b, const char *prefix);
/*
 * Open @path for writing fresh metadata: refused (returns -1) unless its
 * first 4 KiB are all zero or dm-clone metadata, or @force.
 */
int open_target(struct dev *d, const char *path, bool force);

#endif
