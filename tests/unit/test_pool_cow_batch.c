/* A kernel-policy CoW (THINP_COW_KERNEL) of a partial write: the copy carries the write's bytes,
 * and the data write goes to the device together with the copy's last write, in one
 * tp_dev_pwrite_batch:
 *
 *  - one batch per CoW of an aligned write: the copy's last chunk and the data write, which
 *    overlap; the device is made to complete them in either order and the block reads back the
 *    same (the copy already holds the data), the origin untouched;
 *  - the bytes the pool counts are the kernel order's, unchanged: the block read, the block
 *    and the write written;
 *  - a block of two copy chunks: the first chunk written alone, with the data where the write
 *    falls in it, the batch for the last one;
 *  - a write that needs a read-modify-write of its edges (unaligned for the device) goes after
 *    the copy, as before, with no batch; the merged policy never batches (one write);
 *  - a failed batch gives the block back: the snapshot still reads the origin's bytes and the
 *    pool's used blocks are as before.
 *
 * The data device is a memory device behind a recorder that keeps every batch and completes
 * its writes in the order the test asks. THINP_SEED picks the write offsets and the bytes. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "pool_util.h"
#include "thinp.h"

#define DEFAULT_SEED 0xba7c4ull
#define NB           8u /* blocks of the origin */
#define MAX_SEEN     64

/* ---- a data device that records batches ---- */

struct rec {
	struct tp_dev dev;
	struct tp_dev *lower; /* not owned */
	bool reverse;         /* complete a batch's writes last to first */
	int fail;             /* a batch returns this, having written nothing */
	unsigned nbatch;
	struct tp_dev_write seen[MAX_SEEN][2];
	int seen_cnt[MAX_SEEN];
};

static struct rec *to_rec(struct tp_dev *d) { return (struct rec *)(void *)d; }

static int r_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return tp_dev_pread(to_rec(d)->lower, buf, len, off);
}

static int r_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	return tp_dev_pwrite(to_rec(d)->lower, buf, len, off);
}

static int r_batch(struct tp_dev *d, const struct tp_dev_write *w, int cnt)
{
	struct rec *rc = to_rec(d);
	if (rc->nbatch < MAX_SEEN) {
		rc->seen_cnt[rc->nbatch] = cnt;
		for (int i = 0; i < cnt && i < 2; i++)
			rc->seen[rc->nbatch][i] = w[i];
	}
	rc->nbatch++;
	if (rc->fail)
		return rc->fail;
	for (int k = 0; k < cnt; k++) {
		const struct tp_dev_write *x = &w[rc->reverse ? cnt - 1 - k : k];
		int r = tp_dev_pwrite(rc->lower, x->buf, x->len, x->off);
		if (r)
			return r;
	}
	return 0;
}

static int r_flush(struct tp_dev *d) { return tp_dev_flush(to_rec(d)->lower); }

static int r_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_write_zeroes(to_rec(d)->lower, off, len);
}

static int r_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_discard(to_rec(d)->lower, off, len);
}

static int r_resize(struct tp_dev *d, uint64_t size)
{
	(void)d;
	(void)size;
	return -ENOTSUP;
}

static int r_refresh(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void r_close(struct tp_dev *d) { (void)d; /* the test frees it */ }

static const struct tp_dev_ops rec_ops = {
	.pread = r_pread,
	.pwrite = r_pwrite,
	.flush = r_flush,
	.write_zeroes = r_zero,
	.discard = r_discard,
	.resize = r_resize,
	.refresh_size = r_refresh,
	.close = r_close,
	.pwrite_batch = r_batch,
};

/* ---- a pool with an origin of NB written blocks and its snapshot ---- */

struct env {
	struct tp_dev *mem;
	struct rec *rec;
	struct thinp_pool *p;
	struct thinp_thin *origin, *snap;
	uint64_t B;
	uint8_t *orig; /* the origin's bytes */
};

static void fill(uint8_t *b, size_t len, uint64_t salt)
{
	uint64_t x = pu_seed ^ (salt * 0x9E3779B97F4A7C15ull);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x | 1);
	}
}

static void env_open(struct env *e, uint32_t block_sectors, unsigned align,
		     enum thinp_cow_policy policy)
{
	memset(e, 0, sizeof(*e));
	e->B = (uint64_t)block_sectors * 512;
	REQ0(tp_dev_open_mem(4 * NB * e->B, &e->mem));
	e->rec = calloc(1, sizeof(*e->rec));
	REQ(e->rec != NULL, "out of memory");
	e->rec->dev.ops = &rec_ops;
	e->rec->dev.align = align;
	e->rec->dev.size = e->mem->size;
	snprintf(e->rec->dev.name, sizeof(e->rec->dev.name), "batch recorder");
	e->rec->lower = e->mem;
	struct tp_dev *meta;
	REQ0(tp_dev_open_mem(4u << 20, &meta));
	struct thinp_pool_opts o = { .block_sectors = block_sectors, .skip_block_zeroing = true,
				     .no_commit_timer = true, .cow_policy = policy };
	char err[256];
	REQ0(thinp_pool_format(&e->rec->dev, meta, &o, &e->p, err, sizeof(err)));
	REQ0(thinp_create_thin(e->p, 1));
	REQ0(thinp_thin_open(e->p, 1, NB * e->B, &e->origin));
	e->orig = malloc(NB * e->B);
	REQ(e->orig != NULL, "out of memory");
	fill(e->orig, NB * e->B, 1);
	REQ0(thinp_write(e->origin, e->orig, NB * e->B, 0, 0, NULL));
	REQ0(thinp_create_snap(e->p, 2, 1));
	REQ0(thinp_thin_open(e->p, 2, NB * e->B, &e->snap));
	e->rec->nbatch = 0;
}

static void env_close(struct env *e)
{
	thinp_thin_close(e->snap);
	thinp_thin_close(e->origin);
	REQ0(thinp_pool_close(e->p));
	tp_dev_close(e->mem);
	free(e->rec);
	free(e->orig);
}

/* The write of LEN bytes at BOFF of snapshot block V: its result, checked to be a CoW, and
 * the block read back (from the snapshot, and the origin's unchanged). */
static void cow_write(struct env *e, uint64_t v, uint64_t boff, size_t len,
		      struct thinp_io_result *res)
{
	uint8_t *data = NULL, *back = malloc(e->B);
	REQ(back != NULL && posix_memalign((void **)&data, 4096, len) == 0, "out of memory");
	fill(data, len, 100 + v);
	REQ0(thinp_write(e->snap, data, len, v * e->B + boff, 0, res));
	REQ(res->cls == THINP_WRITE_COW, "block %" PRIu64 ": class %d, not a CoW", v, res->cls);
	REQ0(thinp_read(e->snap, back, e->B, v * e->B, NULL));
	REQ(memcmp(back, e->orig + v * e->B, boff) == 0, "block %" PRIu64 ": bytes before the write",
	    v);
	REQ(memcmp(back + boff, data, len) == 0, "block %" PRIu64 ": the write's bytes", v);
	REQ(memcmp(back + boff + len, e->orig + v * e->B + boff + len, e->B - boff - len) == 0,
	    "block %" PRIu64 ": bytes after the write", v);
	REQ0(thinp_read(e->origin, back, e->B, v * e->B, NULL));
	REQ(memcmp(back, e->orig + v * e->B, e->B) == 0, "block %" PRIu64 ": origin changed", v);
	free(back);
	free(data);
}

/* An aligned write at a seeded place in block V: LEN bytes, 4 KiB aligned. */
static uint64_t seeded_boff(const struct env *e, uint64_t v, size_t len)
{
	uint64_t slots = (e->B - len) / 4096 + 1;
	return ((pu_seed >> (v % 32)) + v * 7) % slots * 4096;
}

START_TEST(test_batch_per_cow)
{
	struct env e;
	bool reverse = _i;
	pu_ctx("kernel policy, 64 KiB blocks, the batch completed %s", reverse ? "backwards" : "in order");
	env_open(&e, 128, 4096, THINP_COW_KERNEL);
	e.rec->reverse = reverse;
	for (uint64_t v = 0; v < NB; v++) {
		size_t len = v % 2 ? 4096 : 8192;
		uint64_t boff = v == 0 ? 0 : v == 1 ? e.B - len : seeded_boff(&e, v, len);
		struct thinp_io_result res;
		unsigned before = e.rec->nbatch;
		cow_write(&e, v, boff, len, &res);
		REQ(e.rec->nbatch == before + 1, "block %" PRIu64 ": %u batches for one CoW", v,
		    e.rec->nbatch - before);
		const struct tp_dev_write *w = e.rec->seen[before];
		REQ(e.rec->seen_cnt[before] == 2, "a batch of %d writes", e.rec->seen_cnt[before]);
		REQ(w[0].len == e.B && w[0].off % e.B == 0, "the copy: %zu bytes at %" PRIu64, w[0].len,
		    w[0].off);
		REQ(w[1].len == len && w[1].off == w[0].off + boff,
		    "the data: %zu bytes at %" PRIu64 ", the copy at %" PRIu64, w[1].len, w[1].off,
		    w[0].off);
		/* the kernel order's bytes: the block read, the block and the write written */
		REQ(res.cost.data_bytes_read == e.B && res.cost.data_bytes_written == e.B + len &&
		    res.cost.data_bytes_zeroed == 0,
		    "block %" PRIu64 ": read %" PRIu64 ", written %" PRIu64, v,
		    res.cost.data_bytes_read, res.cost.data_bytes_written);
	}
	env_close(&e);
}
END_TEST

START_TEST(test_batch_two_chunks)
{
	struct env e;
	pu_ctx("kernel policy, 2 MiB blocks (two copy chunks)");
	env_open(&e, 4096, 4096, THINP_COW_KERNEL);
	e.rec->reverse = true;
	struct thinp_io_result res;
	/* in the first chunk: that chunk is written alone, with the data in it */
	cow_write(&e, 0, 4096, 4096, &res);
	REQ(e.rec->nbatch == 1 && e.rec->seen[0][0].len == (1u << 20) &&
	    e.rec->seen[0][0].off % e.B == (1u << 20),
	    "%u batches, the first of %zu bytes at %" PRIu64 " in its block", e.rec->nbatch,
	    e.rec->seen[0][0].len, e.rec->seen[0][0].off % e.B);
	REQ(res.cost.data_bytes_read == e.B && res.cost.data_bytes_written == e.B + 4096,
	    "read %" PRIu64 ", written %" PRIu64, res.cost.data_bytes_read,
	    res.cost.data_bytes_written);
	/* across the chunks' boundary */
	cow_write(&e, 1, (1u << 20) - 4096, 8192, &res);
	REQ(e.rec->nbatch == 2, "%u batches", e.rec->nbatch);
	env_close(&e);
}
END_TEST

START_TEST(test_batch_not_when)
{
	struct env e;
	struct thinp_io_result res;
	pu_ctx("kernel policy, a write unaligned for the device");
	env_open(&e, 128, 4096, THINP_COW_KERNEL);
	cow_write(&e, 2, 1024, 512, &res);
	REQ(e.rec->nbatch == 0, "%u batches for a read-modify-write", e.rec->nbatch);
	/* the copy, then the write's 4 KiB sector read back and written (kernel order) */
	REQ(res.cost.data_bytes_read == e.B + 4096 && res.cost.data_bytes_written == e.B + 4096,
	    "read %" PRIu64 ", written %" PRIu64, res.cost.data_bytes_read,
	    res.cost.data_bytes_written);
	env_close(&e);

	pu_ctx("merged policy");
	env_open(&e, 128, 4096, THINP_COW_MERGED);
	cow_write(&e, 3, 8192, 4096, &res);
	REQ(e.rec->nbatch == 0, "%u batches for a merged CoW", e.rec->nbatch);
	REQ(res.cost.data_bytes_read == e.B && res.cost.data_bytes_written == e.B,
	    "read %" PRIu64 ", written %" PRIu64, res.cost.data_bytes_read,
	    res.cost.data_bytes_written);
	env_close(&e);
}
END_TEST

START_TEST(test_batch_fails)
{
	struct env e;
	pu_ctx("kernel policy, the batch fails");
	env_open(&e, 128, 4096, THINP_COW_KERNEL);
	struct thinp_pool_status st0, st1;
	REQ0(thinp_pool_status(e.p, true, &st0));
	e.rec->fail = -EIO;
	uint8_t *data;
	REQ(posix_memalign((void **)&data, 4096, 4096) == 0, "out of memory");
	fill(data, 4096, 7);
	int r = thinp_write(e.snap, data, 4096, 5 * e.B, 0, NULL);
	REQ(r == -EIO, "the write returned %d, not -EIO", r);
	e.rec->fail = 0;
	REQ0(thinp_pool_status(e.p, true, &st1));
	REQ(st1.used_data_blocks == st0.used_data_blocks, "used data blocks %" PRIu64 " -> %" PRIu64,
	    st0.used_data_blocks, st1.used_data_blocks);
	uint8_t *back = malloc(e.B);
	REQ(back != NULL, "out of memory");
	REQ0(thinp_read(e.snap, back, e.B, 5 * e.B, NULL));
	REQ(memcmp(back, e.orig + 5 * e.B, e.B) == 0, "the snapshot no longer reads the origin's bytes");
	/* and the block can still be broken */
	struct thinp_io_result res;
	cow_write(&e, 5, 0, 4096, &res);
	free(back);
	free(data);
	env_close(&e);
}
END_TEST

static Suite *batch_suite(void)
{
	Suite *s = suite_create("pool_cow_batch");
	TCase *tc = tcase_create("kernel");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_batch_per_cow, 0, 2);
	tcase_add_test(tc, test_batch_two_chunks);
	tcase_add_test(tc, test_batch_not_when);
	tcase_add_test(tc, test_batch_fails);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return pu_run(DEFAULT_SEED, "test_pool_cow_batch", batch_suite, &pu_seed); }
