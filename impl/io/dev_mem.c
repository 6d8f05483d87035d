/* An in-memory device for tests and model checking. */
#include "io/dev_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The buffer never moves: a pool grows its data device while other threads read and write
 * the blocks already there, and IO takes no lock (it used to take a shared lock that a
 * realloc took exclusively: two threads' IO then wrote one lock word). Address space is
 * reserved for growth up front (MAP_NORESERVE: pages are only used when written), and a
 * resize past the reservation fails. */
#define MEM_MIN_RESERVE (1ull << 30)
#define MEM_GROWTH 8

struct mem_dev {
	struct tp_dev dev;
	unsigned char *data;
	size_t reserved;
};

static size_t page_up(uint64_t n)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	return (size_t)((n + pg - 1) / pg * pg);
}

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
	if (len)
		memcpy(buf, m->data + off, len);
	tp_ctr_read(d, len);
	return 0;
}

static int mem_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	struct mem_dev *m = to_mem(d);
	if (len)
		memcpy(m->data + off, buf, len);
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
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len)
			memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
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
	memset(to_mem(d)->data + off, 0, (size_t)len);
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
	memset(to_mem(d)->data + off, 0, (size_t)len);
	tp_ctr_discard(d, len);
	return 0;
}

static int mem_resize(struct tp_dev *d, uint64_t new_size)
{
	struct mem_dev *m = to_mem(d);
	if ((size_t)new_size != new_size || new_size > m->reserved)
		return -ENOMEM;
	uint64_t old = tp_dev_size_get(d);
	/* a shrink gives the tail's pages back, so a later grow reads zeros there */
	if (new_size < old && page_up(new_size) < page_up(old))
		madvise(m->data + page_up(new_size), page_up(old) - page_up(new_size), MADV_DONTNEED);
	if (new_size < old && new_size % (uint64_t)sysconf(_SC_PAGESIZE))
		memset(m->data + new_size, 0, page_up(new_size) - (size_t)new_size);
	tp_dev_size_set(d, new_size);
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

	munmap(m->data, m->reserved);
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
	uint64_t want = size > UINT64_MAX / 2 / MEM_GROWTH ? size : size * MEM_GROWTH;
	m->reserved = page_up(want > MEM_MIN_RESERVE ? want : MEM_MIN_RESERVE);
	m->data = mmap(NULL, m->reserved, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->data == MAP_FAILED) {
		/* (strict overcommit, or a small address space: no room to grow) */
		m->reserved = page_up(size ? size : 1);
		m->data = mmap(NULL, m->reserved, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (m->data == MAP_FAILED) {
		free(m);
		return -ENOMEM;
	}
	tp_dev_init(&m->dev, &mem_ops, "mem", size, 1);
	*out = &m->dev;
	return 0;
}
