// SPDX-License-Identifier: GPL-2.0-only
/*
 * md-poke: the corruption tool of test-metadata-tools.sh. It finds a
 * block of a given kind in a dm-clone metadata image (the superblock, the
 * space map index, its first bitmap, the ref-count btree root, the bitset
 * btree root, its first leaf, the first array block) and damages it: one
 * byte flipped, zeroed, a field set and the checksum made right again, a
 * pointer to another block set (for cycles and pointers past the end), or
 * the stored checksum made wrong.
 *
 *   md-poke IMG locate KIND
 *   md-poke IMG flip KIND OFFSET
 *   md-poke IMG zero KIND
 *   md-poke IMG csum KIND
 *   md-poke IMG set KIND OFFSET BYTES VALUE     (then re-checksummed)
 *   md-poke IMG ptr KIND N BLOCK                (then re-checksummed)
 *
 * ptr sets pointer N of the block to BLOCK: in a bitset btree node, its
 * value N (a child node, or in a leaf an array block); in the space map
 * index, the bitmap of entry N; in the superblock, 0 the bitset root, 1
 * the space map index, 2 the ref-count btree root. Other kinds hold no
 * pointers. IMG may be a block device: it is synced before exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tools/clone-md/md.h"

static FILE *img;

static void rd(uint64_t b, uint8_t *blk)
{
	if (fseek(img, (long)(b * MD_BLOCK), SEEK_SET) ||
	    fread(blk, 1, MD_BLOCK, img) != MD_BLOCK) {
		fprintf(stderr, "md-poke: cannot read block %llu\n",
			(unsigned long long)b);
		exit(1);
	}
}

static void wr(uint64_t b, const uint8_t *blk)
{
	if (fseek(img, (long)(b * MD_BLOCK), SEEK_SET) ||
	    fwrite(blk, 1, MD_BLOCK, img) != MD_BLOCK) {
		fprintf(stderr, "md-poke: cannot write block %llu\n",
			(unsigned long long)b);
		exit(1);
	}
}

static uint64_t locate(const char *kind, uint32_t *xor)
{
	uint8_t sb[MD_BLOCK], blk[MD_BLOCK];
	uint64_t b;

	rd(0, sb);
	*xor = BTREE_CSUM_XOR;
	if (!strcmp(kind, "sb")) {
		*xor = SB_CSUM_XOR;
		return 0;
	}
	if (!strcmp(kind, "index") || !strcmp(kind, "bitmap")) {
		*xor = INDEX_CSUM_XOR;
		b = get64(sb + SB_OFF_SM_ROOT + SMR_BITMAP_ROOT);
		if (!strcmp(kind, "index"))
			return b;
		rd(b, blk);
		*xor = BITMAP_CSUM_XOR;
		return get64(blk + INDEX_HDR);
	}
	if (!strcmp(kind, "refnode"))
		return get64(sb + SB_OFF_SM_ROOT + SMR_REF_COUNT_ROOT);
	b = get64(sb + SB_OFF_BITSET_ROOT);
	if (!strcmp(kind, "bitset-root"))
		return b;
	for (int depth = 0; depth < BTREE_MAX_DEPTH; depth++) {
		rd(b, blk);
		if (get32(blk + 4) == NODE_LEAF)
			break;
		b = get64(blk + NODE_HDR + 8 * get32(blk + 20));
	}
	if (!strcmp(kind, "bitset-leaf"))
		return b;
	if (!strcmp(kind, "array")) {
		*xor = ARRAY_CSUM_XOR;
		return get64(blk + NODE_HDR + 8 * get32(blk + 20));
	}
	fprintf(stderr, "md-poke: unknown kind %s\n", kind);
	exit(2);
}

/* Offset of pointer @n in block @blk of @kind, or -1 if it has none. */
static long ptr_offset(const char *kind, const uint8_t *blk, unsigned long n)
{
	static const long sb_ptrs[] = {
		SB_OFF_BITSET_ROOT,
		SB_OFF_SM_ROOT + SMR_BITMAP_ROOT,
		SB_OFF_SM_ROOT + SMR_REF_COUNT_ROOT,
	};
	uint32_t max;

	if (!strcmp(kind, "sb"))
		return n < 3 ? sb_ptrs[n] : -1;
	if (!strcmp(kind, "index"))
		return n < INDEX_MAX_BITMAPS ? (long)(INDEX_HDR + IE_SIZE * n) : -1;
	if (strcmp(kind, "bitset-root") && strcmp(kind, "bitset-leaf"))
		return -1;
	max = get32(blk + 20);	/* max_entries */
	if ((uint64_t)NODE_HDR + 16ULL * max > MD_BLOCK || n >= max)
		return -1;
	return (long)(NODE_HDR + 8 * max + 8 * n);
}

int main(int argc, char **argv)
{
	uint8_t blk[MD_BLOCK];
	uint32_t xor;
	uint64_t b;

	if (argc < 4 || !(img = fopen(argv[1], "r+b"))) {
		fprintf(stderr, "usage: md-poke IMG locate|flip|zero|csum|set|ptr KIND [ARGS]\n");
		return 2;
	}
	b = locate(argv[3], &xor);
	if (!strcmp(argv[2], "locate")) {
		printf("%llu\n", (unsigned long long)b);
		return 0;
	}
	rd(b, blk);
	if (!strcmp(argv[2], "flip") && argc == 5) {
		blk[strtoul(argv[4], NULL, 0) % MD_BLOCK] ^= 1;
	} else if (!strcmp(argv[2], "zero")) {
		memset(blk, 0, sizeof(blk));
	} else if (!strcmp(argv[2], "csum")) {
		put32(blk, get32(blk) ^ 1);
	} else if (!strcmp(argv[2], "set") && argc == 7) {
		unsigned long off = strtoul(argv[4], NULL, 0) % (MD_BLOCK - 8);
		uint64_t v = strtoull(argv[6], NULL, 0);

		if (!strcmp(argv[5], "4"))
			put32(blk + off, (uint32_t)v);
		else
			put64(blk + off, v);
		block_seal(blk, xor);
	} else if (!strcmp(argv[2], "ptr") && argc == 6) {
		long off = ptr_offset(argv[3], blk, strtoul(argv[4], NULL, 0));

		if (off < 0) {
			fprintf(stderr, "md-poke: %s has no pointer %s\n",
				argv[3], argv[4]);
			return 2;
		}
		put64(blk + off, strtoull(argv[5], NULL, 0));
		block_seal(blk, xor);
	} else {
		fprintf(stderr, "md-poke: bad arguments\n");
		return 2;
	}
	wr(b, blk);
	if (fflush(img) || fsync(fileno(img))) {
		perror("md-poke: sync");
		return 1;
	}
	return fclose(img) ? 1 : 0;
}
