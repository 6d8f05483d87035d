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

int tp_dev_pwritev_generic(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
			   unsigned flags)
{
	if (cnt < 0 || cnt > TP_DEV_IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		int r = tp_dev_pwrite(d, iov[i].iov_base, iov[i].iov_len, off);
		if (r)
			return r;
		off += iov[i].iov_len;
	}
	return (flags & TP_WRITE_DSYNC) ? tp_dev_flush(d) : 0;
}

int tp_iov_check(const struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
		 size_t *len)
{
	size_t total = 0;

	if (cnt < 0 || cnt > TP_DEV_IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	*len = total;
	return tp_dev_check_range(d, off, total);
}

/* pwritev2 until every byte is written: a short write continues from where
 * it stopped, in a copy of the vector (the caller's stays untouched). */
static int fd_pwritev_all(int fd, const struct iovec *iov, int cnt, uint64_t off, int rwf)
{
	struct iovec v[TP_DEV_IOV_MAX];
	int first = 0;

	memcpy(v, iov, (size_t)cnt * sizeof(*v));
	while (first < cnt) {
		ssize_t n = pwritev2(fd, v + first, cnt - first, (off_t)off, rwf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (first < cnt && (size_t)n >= v[first].iov_len) {
			n -= (ssize_t)v[first].iov_len;
			first++;
		}
		if (first < cnt) {
			v[first].iov_base = (char *)v[first].iov_base + n;
			v[first].iov_len -= (size_t)n;
		}
	}
	return 0;
}

int tp_fd_pwritev_full(int fd, const struct iovec *iov, int cnt, uint64_t off, bool dsync,
		       bool data_only)
{
	if (!dsync)
		return fd_pwritev_all(fd, iov, cnt, off, 0);
	int r = fd_pwritev_all(fd, iov, cnt, off, RWF_DSYNC);
	/* Kernels before 4.7 reject the flag (EOPNOTSUPP); the plain write and
	 * a flush give the same guarantee. (A continued short write is fine:
	 * every part was written with the flag.) */
	if (r == -EOPNOTSUPP || r == -EINVAL) {
		r = fd_pwritev_all(fd, iov, cnt, off, 0);
		if (!r)
			r = tp_fd_fsync(fd, data_only);
	}
	return r;
}

#define CTR_FIELDS(X)                                                                            \
	X(reads) X(writes) X(bytes_read) X(bytes_written) X(flushes) X(zero_ops) X(bytes_zeroed) \
	X(discards) X(bytes_discarded)

struct tp_io_counters tp_dev_ctr(const struct tp_dev *d)
{
	struct tp_io_counters sum = {0};
	for (unsigned i = 0; i <= TP_CTR_SHARDS; i++) {
		const struct tp_io_counters *c = &d->ctr_shard[i].c;
#define ADD(f) sum.f += __atomic_load_n(&c->f, __ATOMIC_RELAXED);
		CTR_FIELDS(ADD)
#undef ADD
	}
	return sum;
}

void tp_dev_ctr_bytes(const struct tp_dev *d, uint64_t *read, uint64_t *written)
{
	uint64_t r = 0, w = 0;
	for (unsigned i = 0; i <= TP_CTR_SHARDS; i++) {
		r += __atomic_load_n(&d->ctr_shard[i].c.bytes_read, __ATOMIC_RELAXED);
		w += __atomic_load_n(&d->ctr_shard[i].c.bytes_written, __ATOMIC_RELAXED);
	}
	*read = r;
	*written = w;
}

void tp_dev_ctr_reset(struct tp_dev *d)
{
	for (unsigned i = 0; i <= TP_CTR_SHARDS; i++)
		memset(&d->ctr_shard[i].c, 0, sizeof(d->ctr_shard[i].c));
}

void tp_dev_ctr_set(struct tp_dev *d, const struct tp_io_counters *c)
{
	tp_dev_ctr_reset(d);
	d->ctr_shard[0].c = *c;
}

int tp_dev_pwrite_batch(struct tp_dev *d, const struct tp_dev_write *w, int cnt)
{
	if (cnt < 0 || cnt > TP_DEV_BATCH_MAX)
		return -EINVAL;
	if (d->ops->pwrite_batch)
		return d->ops->pwrite_batch(d, w, cnt);
	for (int i = 0; i < cnt; i++) {
		int r = tp_dev_pwrite(d, w[i].buf, w[i].len, w[i].off);
		if (r)
			return r;
	}
	return 0;
}

int tp_dev_batch_fd(struct tp_dev *d, struct tp_aio_ctxs *c, int fd, bool rdonly,
		    const struct tp_dev_write *w, int cnt)
{
	bool done[TP_DEV_BATCH_MAX];
	int r = 0;

	if (cnt < 0 || cnt > TP_DEV_BATCH_MAX)
		return -EINVAL;
	for (int i = 0; i < cnt && !r; i++)
		r = tp_dev_check_range(d, w[i].off, w[i].len);
	if (r)
		return r;
	if (rdonly)
		return -EROFS;
	r = c ? tp_aio_pwrite_batch(c, fd, w, cnt, done) : -EOPNOTSUPP;
	if (r == -EOPNOTSUPP) {
		r = 0;
		for (int i = 0; i < cnt; i++) {
			done[i] = false;
			if (!r) {
				r = tp_fd_pwrite_full(fd, w[i].buf, w[i].len, w[i].off);
				done[i] = !r;
			}
		}
	}
	for (int i = 0; i < cnt; i++)
		if (done[i])
			tp_ctr_write(d, w[i].len);
	return r;
}
