// SPDX-License-Identifier: GPL-2.0-only
/*
 * Checksums and little-endian fields: crc32c (Castagnoli, reflected
 * polynomial 0x82f63b78) as the kernel's crc32c() computes it (no final
 * inversion), and the persistent-data block checksum built on it.
 */
#include "md.h"

static uint32_t table[256];
static bool table_ready;

static void make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		table[i] = c;
	}
	table_ready = true;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!table_ready)
		make_table();
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/*
 * Every block type checksums bytes 4..4095 and stores the sum at 0. The
 * fuzz target of the image parser (tests/fuzz) takes every stored sum as
 * right, so that its inputs reach past the checksums.
 */
uint32_t block_csum(const uint8_t *blk, uint32_t xor)
{
#ifdef CLONE_MD_FUZZING
	(void)xor;
	return get32(blk);
#else
	return crc32c(0xffffffffu, blk + 4, MD_BLOCK - 4) ^ xor;
#endif
}

void block_seal(uint8_t *blk, uint32_t xor)
{
	put32(blk, block_csum(blk, xor));
}

uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}
