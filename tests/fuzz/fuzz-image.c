// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target of the metadata parsers: the input is the start of a
 * metadata device (the rest reads as zeros, up to the space map size the
 * seeds use), examined as clone_check, clone_dump --repair and
 * clone_repair examine it. Any crash, sanitizer report or hang is a bug.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "md.h"

/* The seeds' device: 160 blocks, enough for the seeds. */
#define DEVICE_BLOCKS	160

static void quiet(void *ctx, uint64_t block, const char *fmt, ...)
{
	(void)ctx;
	(void)block;
	(void)fmt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct exam ex;
	struct dev d;
	FILE *null;

	if (fd < 0)
		fd = memfd_create("clone-md", 0);
	if (fd < 0 || ftruncate(fd, 0) ||
	    pwrite(fd, data, size, 0) != (ssize_t)size ||
	    ftruncate(fd, size > DEVICE_BLOCKS * MD_BLOCK ? (off_t)size :
			  DEVICE_BLOCKS * MD_BLOCK))
		return 0;
	memset(&d, 0, sizeof(d));
	d.fd = fd;
	d.path = "fuzz";
	d.bytes = (uint64_t)lseek(fd, 0, SEEK_END);
	d.nr_blocks = d.bytes / MD_BLOCK;
	if (examine(&d, &ex, EXAM_ALL, quiet, NULL) >= 0 && ex.have_bitset &&
	    (null = fopen("/dev/null", "w"))) {
		struct dump dp = {
			.version = ex.sb.version, .region_size = ex.sb.region_size,
			.target_size = ex.sb.target_size,
			.nr_regions = ex.sb.nr_regions, .hydrated = ex.bs.hydrated,
		};

		dump_write(null, &dp, FMT_XML);
		dump_write(null, &dp, FMT_JSON);
		fclose(null);
	}
	exam_free(&ex);
	return 0;
}
