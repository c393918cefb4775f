// SPDX-License-Identifier: GPL-2.0-only
/*
 * Access to a metadata device or image file in 4 KiB blocks: its size
 * (a block device's by ioctl, a file's by stat), and reads and writes that
 * refuse any block past the end instead of returning short data. A block
 * device is opened O_DIRECT so that what the kernel target wrote is read,
 * never a stale page cache, and O_EXCL when written, so that no tool
 * writes the metadata of a clone that is loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md.h"

int dev_open(struct dev *d, const char *path, bool write)
{
	struct stat st;

	memset(d, 0, sizeof(*d));
	d->path = path;
	d->fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (d->fd < 0) {
		err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(d->fd, &st) < 0) {
		err("%s: %s", path, strerror(errno));
		goto bad;
	}
	if (S_ISBLK(st.st_mode)) {
		/* Writing, exclusively: not under a clone that has it open. */
		int fd = open(path, (write ? O_RDWR | O_EXCL : O_RDONLY) |
				    O_CLOEXEC | O_DIRECT);

		if (fd < 0 && errno == EBUSY) {
			err("%s: in use (by a clone or another program); remove the clone first",
			    path);
			goto bad;
		}
		if (fd >= 0 && posix_memalign((void **)&d->bounce, MD_BLOCK, MD_BLOCK) == 0) {
			close(d->fd);
			d->fd = fd;
		} else if (fd >= 0) {
			close(fd);
		}
		if (ioctl(d->fd, BLKGETSIZE64, &d->bytes) < 0) {
			err("%s: cannot read the device size: %s", path,
			    strerror(errno));
			goto bad;
		}
	} else if (S_ISREG(st.st_mode)) {
		d->bytes = (uint64_t)st.st_size;
	} else {
		err("%s: neither a block device nor a regular file", path);
		goto bad;
	}
	d->nr_blocks = d->bytes / MD_BLOCK;
	return 0;
bad:
	dev_close(d);
	return -1;
}

void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->bounce);
	d->bounce = NULL;
}

int pio_full(int fd, uint8_t *buf, size_t len, uint64_t off, bool write)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(fd, buf + done, len - done, (off_t)(off + done)) :
				    pread(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int dev_read(const struct dev *d, uint64_t b, uint8_t *out)
{
	uint8_t *buf = d->bounce ? d->bounce : out;

	if (b >= d->nr_blocks || pio_full(d->fd, buf, MD_BLOCK, b * MD_BLOCK, false))
		return -1;
	if (buf != out)
		memcpy(out, buf, MD_BLOCK);
	return 0;
}

int dev_write(const struct dev *d, uint64_t b, const uint8_t *in)
{
	if (b >= d->nr_blocks)
		return -1;
	if (d->bounce) {
		memcpy(d->bounce, in, MD_BLOCK);
		return pio_full(d->fd, d->bounce, MD_BLOCK, b * MD_BLOCK, true);
	}
	return pio_full(d->fd, (uint8_t *)in, MD_BLOCK, b * MD_BLOCK, true);
}

int dev_sync(const struct dev *d)
{
	return fsync(d->fd);
}
