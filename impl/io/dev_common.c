#include "io/dev_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

void tp_dev_init(struct tp_dev *d, const struct tp_dev_ops *ops, const char *name, uint64_t size,
                 unsigned align)
{
	size_t n = strnlen(name, sizeof(d->name) - 1);

	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->size = size;
	d->align = align ? align : 1;
	/* Long paths are truncated: the name is for messages only. */
	memcpy(d->name, name, n);
	d->name[n] = '\0';
}

/* The whole range or an error: short transfers are continued, EINTR retried. */
static int fd_io_full(int fd, bool write, char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* end of file on a read; on a write, a zero-byte write would spin forever */
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int tp_fd_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return fd_io_full(fd, false, buf, len, off);
}

int tp_fd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	/* (pwrite only reads the buffer: the cast just lets one loop serve both) */
	return fd_io_full(fd, true, (char *)(uintptr_t)buf, len, off);
}

int tp_alloc_aligned(void **out, size_t align, size_t len)
{
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (len == 0)
		len = 1;
	if (posix_memalign(out, align, len))
		return -ENOMEM;
	return 0;
}

int tp_fd_write_zeroes(int fd, unsigned align, uint64_t off, uint64_t len)
{
	size_t chunk = TP_ZERO_CHUNK;
	void *zeroes;
	int r;

	if (align > chunk)
		chunk = align;
	if (len < chunk)
		chunk = (size_t)len;
	r = tp_alloc_aligned(&zeroes, align, chunk);
	if (r)
		return r;
	memset(zeroes, 0, chunk);

	while (len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		r = tp_fd_pwrite_full(fd, zeroes, n, off);
		if (r)
			break;
		off += n;
		len -= n;
	}
	free(zeroes);
	return r;
}

int tp_fd_lock_excl(int fd)
{
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}
	return 0;
}

int tp_fd_fsync(int fd, bool data_only)
{
	int r = data_only ? fdatasync(fd) : fsync(fd);

	/* Deliberately not retried on any error: after a failed fsync the
	 * kernel may already have dropped the dirty pages, so a second call
	 * could report success for data that never reached the disk. */
	return r < 0 ? -errno : 0;
}
