/* Memory devices reused across fuzz inputs; see reuse_dev.h. */
#include "reuse_dev.h"

#include "io/dev_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Written bytes are tracked per chunk, so a reset zeroes only what an input
 * wrote (a pool writes a few blocks scattered over its data device). */
#define CHUNK     (64u * 1024)
#define MAX_BYTES (64ull << 20)

struct rdev {
	struct tp_dev dev; /* first: the library sees this */
	uint8_t *data;
	uint64_t cap;
	uint8_t dirty[MAX_BYTES / CHUNK];
};

static struct rdev slots[FR_NR_SLOTS];

static struct rdev *rd(struct tp_dev *d) { return (struct rdev *)d; }

static int in_range(const struct tp_dev *d, uint64_t off, uint64_t len)
{
	return len <= d->size && off <= d->size - len;
}

void fr_dirty(struct tp_dev *d, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	for (uint64_t c = off / CHUNK; c <= (off + len - 1) / CHUNK; c++)
		rd(d)->dirty[c] = 1;
}

static int r_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	if (!in_range(d, off, len))
		return -EINVAL;
	memcpy(buf, rd(d)->data + off, len);
	tp_ctr_read(d, len);
	return 0;
}

static int r_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	if (!in_range(d, off, len))
		return -EINVAL;
	memcpy(rd(d)->data + off, buf, len);
	fr_dirty(d, off, len);
	tp_ctr_write(d, len);
	return 0;
}

static int r_flush(struct tp_dev *d)
{
	tp_ctr_flush(d);
	return 0;
}

static int r_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	if (!in_range(d, off, len))
		return -EINVAL;
	memset(rd(d)->data + off, 0, len);
	tp_ctr_zero(d, len);
	return 0;
}

static int r_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	if (!in_range(d, off, len))
		return -EINVAL;
	memset(rd(d)->data + off, 0, len);
	tp_ctr_discard(d, len);
	return 0;
}

static int r_resize(struct tp_dev *d, uint64_t size)
{
	if (size > rd(d)->cap)
		return -ENOMEM;
	if (size < d->size)
		memset(rd(d)->data + size, 0, d->size - size);
	d->size = size;
	return 0;
}

static int r_refresh(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void r_close(struct tp_dev *d) { (void)d; }

static const struct tp_dev_ops rdev_ops = {
	.pread = r_pread,
	.pwrite = r_pwrite,
	.flush = r_flush,
	.write_zeroes = r_zeroes,
	.discard = r_discard,
	.resize = r_resize,
	.refresh_size = r_refresh,
	.close = r_close,
};

struct tp_dev *fr_dev(unsigned slot, uint64_t size, uint64_t capacity)
{
	if (slot >= FR_NR_SLOTS)
		return NULL;
	struct rdev *r = &slots[slot];
	if (!r->data) {
		if (capacity > MAX_BYTES || !(r->data = malloc(capacity)))
			return NULL;
		/* written once, so that no later access faults in a page */
		memset(r->data, 0, capacity);
		r->cap = capacity;
	}
	if (size > r->cap)
		return NULL;
	for (uint64_t c = 0; c < (r->cap + CHUNK - 1) / CHUNK; c++) {
		if (!r->dirty[c])
			continue;
		uint64_t at = c * CHUNK;
		memset(r->data + at, 0, r->cap - at < CHUNK ? r->cap - at : CHUNK);
		r->dirty[c] = 0;
	}
	memset(&r->dev, 0, sizeof(r->dev));
	r->dev.ops = &rdev_ops;
	r->dev.size = size;
	r->dev.align = 1;
	return &r->dev;
}

uint8_t *fr_bytes(struct tp_dev *d) { return rd(d)->data; }
