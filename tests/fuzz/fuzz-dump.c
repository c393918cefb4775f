// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target of the dump parser (clone_restore's input, XML or
 * JSON): any crash, sanitizer report or hang is a bug; a dump it accepts
 * must write out and parse back to the same regions.
 */
#include <stdlib.h>
#include <string.h>

#include "md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dump dp, again;
	char msg[256], *text;
	size_t len;
	FILE *f;

	if (dump_parse((const char *)data, size, &dp, msg, sizeof(msg)))
		return 0;
	/* Too many regions to write out quickly: parsing was the point. */
	if (dp.nr_regions > (1u << 20)) {
		bits_free(&dp.hydrated);
		return 0;
	}
	f = open_memstream(&text, &len);
	if (!f)
		abort();
	dump_write(f, &dp, size % 2 ? FMT_JSON : FMT_XML);
	fclose(f);
	if (dump_parse(text, len, &again, msg, sizeof(msg)) ||
	    again.nr_regions != dp.nr_regions ||
	    memcmp(again.hydrated.w, dp.hydrated.w,
		   (size_t)(dp.nr_regions + 63) / 64 * 8))
		abort();
	bits_free(&again.hydrated);
	bits_free(&dp.hydrated);
	free(text);
	return 0;
}
