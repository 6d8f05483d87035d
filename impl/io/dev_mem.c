/* An in-memory device for tests and model checking. */
#include "io/dev_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mem_dev {
	struct tp_dev dev;
	/* A resize reallocates the buffer while a pool may be reading and writing the blocks it
	 * already has: IO holds this shared, the resize exclusively. */
	pthread_rwlock_t lock;
	unsigned char *data;
};

static struct mem_dev *to_mem(struct tp_dev *d)
{
	return tp_container_of(d, struct mem_dev, dev);
}

static int mem_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	pthread_rwlock_rdlock(&m->lock);
	if (len)
		memcpy(buf, m->data + off, len);
	pthread_rwlock_unlock(&m->lock);
	tp_ctr_read(d, len);
	return 0;
}

static int mem_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	pthread_rwlock_rdlock(&m->lock);
	if (len)
		memcpy(m->data + off, buf, len);
	pthread_rwlock_unlock(&m->lock);
	tp_ctr_write(d, len);
	return 0;
}

static int mem_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
		       unsigned flags)
{
	size_t len;
	int r = tp_iov_check(d, iov, cnt, off, &len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	pthread_rwlock_rdlock(&m->lock);
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len)
			memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	pthread_rwlock_unlock(&m->lock);
	tp_ctr_write(d, len);
	if (flags & TP_WRITE_DSYNC)
		tp_ctr_flush(d);
	return 0;
}

static int mem_flush(struct tp_dev *d)
{
	tp_ctr_flush(d);
	return 0;
}

static int mem_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	pthread_rwlock_rdlock(&m->lock);
	memset(m->data + off, 0, (size_t)len);
	pthread_rwlock_unlock(&m->lock);
	tp_ctr_zero(d, len);
	return 0;
}

/* Zeroing mirrors a punched hole in a sparse file, so the mem device and the
 * file device agree on what discarded blocks read back as. */
static int mem_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	pthread_rwlock_rdlock(&m->lock);
	memset(m->data + off, 0, (size_t)len);
	pthread_rwlock_unlock(&m->lock);
	tp_ctr_discard(d, len);
	return 0;
}

static int mem_resize(struct tp_dev *d, uint64_t new_size)
{
	struct mem_dev *m = to_mem(d);
	unsigned char *p;

	if ((size_t)new_size != new_size)
		return -ENOMEM;
	pthread_rwlock_wrlock(&m->lock);
	/* realloc(p, 0) may free and return NULL; keep at least one byte. */
	p = realloc(m->data, new_size ? (size_t)new_size : 1);
	if (!p) {
		pthread_rwlock_unlock(&m->lock);
		return -ENOMEM;
	}
	uint64_t old = tp_dev_size_get(d);
	if (new_size > old)
		memset(p + old, 0, (size_t)(new_size - old));
	m->data = p;
	tp_dev_size_set(d, new_size);
	pthread_rwlock_unlock(&m->lock);
	return 0;
}

static int mem_refresh_size(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void mem_close(struct tp_dev *d)
{
	struct mem_dev *m = to_mem(d);

	pthread_rwlock_destroy(&m->lock);
	free(m->data);
	free(m);
}

static const struct tp_dev_ops mem_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.flush = mem_flush,
	.write_zeroes = mem_write_zeroes,
	.discard = mem_discard,
	.resize = mem_resize,
	.refresh_size = mem_refresh_size,
	.close = mem_close,
	.pwritev = mem_pwritev,
};

int tp_dev_open_mem(uint64_t size, struct tp_dev **out)
{
	struct mem_dev *m;

	*out = NULL;
	if ((size_t)size != size)
		return -ENOMEM;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->data = calloc(size ? (size_t)size : 1, 1);
	if (!m->data) {
		free(m);
		return -ENOMEM;
	}
	pthread_rwlock_init(&m->lock, NULL);
	tp_dev_init(&m->dev, &mem_ops, "mem", size, 1);
	*out = &m->dev;
	return 0;
}
