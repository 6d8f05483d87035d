/* Exact IO amplification of the pool's IO paths, derived from dm-thin
 * (drivers/md/dm-thin.c; docs/dm-thin-behaviour.md, "IO paths" and "Outcome
 * classes and byte costs"):
 *
 *  - a partial write into a new block with zeroing on zeroes the whole block
 *    (schedule_zero -> ll_zero) and then writes the bio;
 *  - with skip_block_zeroing, or when the bio covers the whole block
 *    (io_overwrites_block), nothing is zeroed;
 *  - a partial write to a shared block copies the whole block
 *    (schedule_internal_copy) and then writes the bio; a whole-block write
 *    to a shared block copies nothing;
 *  - sharing is decided by time (snapshotted_time > mapping time), so after
 *    the origin broke sharing the snapshot's write still copies ("n+1");
 *  - IO is split at block boundaries, each piece costed separately;
 *  - unprovisioned reads return zeros without touching the data device.
 *
 * For every IO the per-IO result (class, pieces, costs), the pool's per-class
 * counters and the data device's own byte counters are compared with values
 * computed here, for block sizes 64 KiB .. 1 MiB, on sparse files.
 *
 * The same under the pool's cow_policy THINP_COW_MERGED (libthinp's own, not
 * the kernel's): a partial write to a shared block reads the block and writes
 * it once with the data laid over the copy (read B, write B); a partial write
 * to a new block with zeroing writes zeros and data as one block (write B,
 * nothing through write-zeroes). Everything else is as the kernel's. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dev.h"
#include "model_util.h"
#include "pool_util.h"
#include "thinp.h"

#define KiB          1024ull
#define MiB          (1024ull * KiB)
#define DEFAULT_SEED 0x616d70ull /* "amp" */

static const uint32_t block_sectors_list[] = { 128, 256, 512, 1024, 2048 };

/* ---- a pool on sparse files ---- */

struct amp {
	char dir[PATH_MAX - 64];
	struct tp_dev *data; /* owned by the pool; kept to read its counters */
	struct thinp_pool *p;
	uint64_t B; /* block bytes */
	struct tp_io_counters base;
	struct thinp_class_stats exp[THINP_NR_CLASSES];
	struct mu_rng rng;
};

static void amp_open_policy(struct amp *a, const char *tag, uint32_t block_sectors,
                            bool skip_zero, enum thinp_cow_policy policy)
{
	memset(a, 0, sizeof(*a));
	int n = snprintf(a->dir, sizeof(a->dir), "%s/%s-%u", pu_top, tag, block_sectors);
	REQ(n > 0 && (size_t)n < sizeof(a->dir), "path too long");
	REQ(mkdir(a->dir, 0700) == 0, "mkdir %s: %s", a->dir, strerror(errno));
	a->B = (uint64_t)block_sectors * 512;
	char dpath[PATH_MAX], mpath[PATH_MAX];
	snprintf(dpath, sizeof(dpath), "%s/data", a->dir);
	snprintf(mpath, sizeof(mpath), "%s/meta", a->dir);
	struct tp_dev *meta;
	/* room for every allocation of the longest random run (3 blocks an op): nothing is
	 * committed, and blocks freed in an open transaction are not reused (64 blocks ran out
	 * with some seeds, e.g. THINP_SEED=7) */
	REQ0(tp_dev_open_file(dpath, TP_DEV_CREATE, 1024 * a->B, &a->data));
	REQ0(tp_dev_open_file(mpath, TP_DEV_CREATE, 4 * MiB, &meta));
	struct thinp_pool_opts o = { .block_sectors = block_sectors,
		                     .skip_block_zeroing = skip_zero,
		                     .no_commit_timer = true,
		                     .cow_policy = policy };
	char err[512] = "";
	int r = thinp_pool_format(a->data, meta, &o, &a->p, err, sizeof(err));
	REQ(r == 0, "format: %d %s", r, err);
	REQ0(thinp_create_thin(a->p, 1));
	a->base = tp_dev_ctr(a->data);
	mu_rng_init(&a->rng, pu_seed ^ block_sectors ^ (skip_zero ? 0x5a5a : 0));
}

static void amp_open(struct amp *a, const char *tag, uint32_t block_sectors, bool skip_zero)
{
	amp_open_policy(a, tag, block_sectors, skip_zero, THINP_COW_KERNEL);
}

static void amp_close(struct amp *a)
{
	REQ0(thinp_pool_close(a->p));
	a->p = NULL;
}

static uint64_t used_blocks(struct amp *a)
{
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(a->p, true, &st));
	return st.used_data_blocks;
}

/* ---- expected costs ---- */

struct piece {
	enum thinp_class cls;
	uint64_t req, rd, wr, zr;
};

static const char *cname(enum thinp_class c)
{
	return thinp_class_name(c);
}

/* Compare one IO's result with its expected pieces, then the pool's
 * per-class counters and the data device's counters with the running
 * expectation. */
static void expect_io(struct amp *a, const char *what, int r, const struct thinp_io_result *res,
                      enum thinp_class cls, unsigned n, const struct piece *pcs)
{
	pu_ctx("B=%" PRIu64 " %s", a->B, what);
	REQ(r == 0, "IO failed: %d (%s)", r, thinp_pool_error(a->p));
	struct thinp_class_stats sum = { 0 };
	for (unsigned i = 0; i < n; i++) {
		sum.ops++;
		sum.bytes_requested += pcs[i].req;
		sum.data_bytes_read += pcs[i].rd;
		sum.data_bytes_written += pcs[i].wr;
		sum.data_bytes_zeroed += pcs[i].zr;
		struct thinp_class_stats *e = &a->exp[pcs[i].cls];
		e->ops++;
		e->bytes_requested += pcs[i].req;
		e->data_bytes_read += pcs[i].rd;
		e->data_bytes_written += pcs[i].wr;
		e->data_bytes_zeroed += pcs[i].zr;
	}
	REQ(res->cls == cls, "class %s, expected %s", cname(res->cls), cname(cls));
	REQ(res->nr_blocks == n, "nr_blocks %u, expected %u", res->nr_blocks, n);
	REQ(res->cost.ops == sum.ops, "cost.ops %" PRIu64 ", expected %" PRIu64, res->cost.ops,
	    sum.ops);
	REQ(res->cost.bytes_requested == sum.bytes_requested,
	    "cost.bytes_requested %" PRIu64 ", expected %" PRIu64, res->cost.bytes_requested,
	    sum.bytes_requested);
	REQ(res->cost.data_bytes_read == sum.data_bytes_read,
	    "cost.data_bytes_read %" PRIu64 ", expected %" PRIu64, res->cost.data_bytes_read,
	    sum.data_bytes_read);
	REQ(res->cost.data_bytes_written == sum.data_bytes_written,
	    "cost.data_bytes_written %" PRIu64 ", expected %" PRIu64, res->cost.data_bytes_written,
	    sum.data_bytes_written);
	REQ(res->cost.data_bytes_zeroed == sum.data_bytes_zeroed,
	    "cost.data_bytes_zeroed %" PRIu64 ", expected %" PRIu64, res->cost.data_bytes_zeroed,
	    sum.data_bytes_zeroed);

	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(a->p, st);
	uint64_t tot_rd = 0, tot_wr = 0, tot_zr = 0;
	for (int c = 0; c < THINP_NR_CLASSES; c++) {
		tot_rd += st[c].data_bytes_read;
		tot_wr += st[c].data_bytes_written;
		tot_zr += st[c].data_bytes_zeroed;
		if (c == THINP_FLUSH || c == THINP_COMMIT)
			continue;
		const struct thinp_class_stats *e = &a->exp[c];
		REQ(st[c].ops == e->ops && st[c].bytes_requested == e->bytes_requested &&
		            st[c].data_bytes_read == e->data_bytes_read &&
		            st[c].data_bytes_written == e->data_bytes_written &&
		            st[c].data_bytes_zeroed == e->data_bytes_zeroed,
		    "pool stats for %s: ops %" PRIu64 " req %" PRIu64 " rd %" PRIu64 " wr %" PRIu64
		    " zr %" PRIu64 "; expected ops %" PRIu64 " req %" PRIu64 " rd %" PRIu64
		    " wr %" PRIu64 " zr %" PRIu64,
		    cname(c), st[c].ops, st[c].bytes_requested, st[c].data_bytes_read,
		    st[c].data_bytes_written, st[c].data_bytes_zeroed, e->ops, e->bytes_requested,
		    e->data_bytes_read, e->data_bytes_written, e->data_bytes_zeroed);
	}
	/* the data device saw exactly what the classes were charged */
	const struct tp_io_counters cv = tp_dev_ctr(a->data), *c = &cv;
	REQ(c->bytes_written - a->base.bytes_written == tot_wr,
	    "data device wrote %" PRIu64 " bytes, classes account for %" PRIu64,
	    c->bytes_written - a->base.bytes_written, tot_wr);
	REQ(c->bytes_read - a->base.bytes_read == tot_rd,
	    "data device read %" PRIu64 " bytes, classes account for %" PRIu64,
	    c->bytes_read - a->base.bytes_read, tot_rd);
	REQ(c->bytes_zeroed - a->base.bytes_zeroed == tot_zr,
	    "data device zeroed %" PRIu64 " bytes, classes account for %" PRIu64,
	    c->bytes_zeroed - a->base.bytes_zeroed, tot_zr);
}

/* ---- IO helpers with a byte model per thin device ---- */

struct dev {
	struct thinp_thin *t;
	uint8_t *model;
	uint64_t size;
};

static void dev_open(struct amp *a, struct dev *d, uint64_t id, const struct dev *copy_of)
{
	d->size = 16 * a->B;
	REQ0(thinp_thin_open(a->p, id, d->size, &d->t));
	d->model = malloc(d->size);
	REQ(d->model != NULL, "out of memory");
	if (copy_of)
		memcpy(d->model, copy_of->model, d->size);
	else
		memset(d->model, 0, d->size);
}

static void dev_close(struct dev *d)
{
	thinp_thin_close(d->t);
	free(d->model);
}

static int do_write(struct amp *a, struct dev *d, uint64_t off, uint64_t len,
                    struct thinp_io_result *res)
{
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	mu_fill(&a->rng, buf, len);
	int r = thinp_write(d->t, buf, len, off, 0, res);
	if (!r)
		memcpy(d->model + off, buf, len);
	free(buf);
	return r;
}

/* Reads compare with the model at once. */
static int do_read(struct amp *a, struct dev *d, uint64_t off, uint64_t len,
                   struct thinp_io_result *res)
{
	(void)a;
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	memset(buf, 0xA5, len);
	int r = thinp_read(d->t, buf, len, off, res);
	if (!r)
		REQ(memcmp(buf, d->model + off, len) == 0,
		    "read of %" PRIu64 " bytes at %" PRIu64 " differs from what was written", len,
		    off);
	free(buf);
	return r;
}

static void verify_all(struct amp *a, struct dev *d, const char *name)
{
	pu_ctx("B=%" PRIu64 " final check of %s", a->B, name);
	uint8_t *buf = malloc(a->B);
	REQ(buf != NULL, "out of memory");
	for (uint64_t off = 0; off < d->size; off += a->B) {
		REQ0(thinp_read(d->t, buf, a->B, off, NULL));
		if (memcmp(buf, d->model + off, a->B) == 0)
			continue;
		uint64_t i = 0;
		while (buf[i] == d->model[off + i])
			i++;
		REQ(0, "byte %" PRIu64 " is %u, expected %u", off + i, buf[i], d->model[off + i]);
	}
	free(buf);
}

static void expect_used(struct amp *a, uint64_t want, const char *what)
{
	pu_ctx("B=%" PRIu64 " %s", a->B, what);
	uint64_t u = used_blocks(a);
	REQ(u == want, "pool uses %" PRIu64 " data blocks, expected %" PRIu64, u, want);
}

/* ---- zeroing on: provision, overwrite, CoW, n+1, splits, reads ---- */

START_TEST(test_zeroing_on)
{
	uint32_t bs = block_sectors_list[_i];
	struct amp a;
	amp_open(&a, "zero", bs, false);
	const uint64_t B = a.B, K = 4 * KiB;
	struct thinp_io_result res;
	struct dev o, s;
	dev_open(&a, &o, 1, NULL);

	expect_used(&a, 0, "fresh pool");
	/* unprovisioned read: zeros, nothing read */
	expect_io(&a, "read unmapped", do_read(&a, &o, 0, K, &res), &res, THINP_READ_UNMAPPED, 1,
	          (struct piece[]){ { THINP_READ_UNMAPPED, K, 0, 0, 0 } });
	/* 4 KiB into a new block: the whole block is zeroed first */
	expect_io(&a, "4K provision with zeroing", do_write(&a, &o, 8 * KiB, K, &res), &res,
	          THINP_WRITE_PROVISION_ZERO, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION_ZERO, K, 0, K, B } });
	expect_used(&a, 1, "after one provision");
	expect_io(&a, "read mapped", do_read(&a, &o, 8 * KiB, K, &res), &res, THINP_READ_MAPPED, 1,
	          (struct piece[]){ { THINP_READ_MAPPED, K, K, 0, 0 } });
	expect_io(&a, "read zeroed part", do_read(&a, &o, 0, K, &res), &res, THINP_READ_MAPPED, 1,
	          (struct piece[]){ { THINP_READ_MAPPED, K, K, 0, 0 } });
	/* overwrite in place: nothing read, nothing zeroed */
	expect_io(&a, "4K overwrite", do_write(&a, &o, 12 * KiB, K, &res), &res,
	          THINP_WRITE_OVERWRITE, 1,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 } });
	/* whole block into a new block: no zeroing although zeroing is on */
	expect_io(&a, "whole-block provision", do_write(&a, &o, B, B, &res), &res,
	          THINP_WRITE_PROVISION_FULL, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION_FULL, B, 0, B, 0 } });
	expect_io(&a, "whole-block overwrite", do_write(&a, &o, B, B, &res), &res,
	          THINP_WRITE_OVERWRITE, 1,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, B, 0, B, 0 } });
	expect_used(&a, 2, "after a whole-block provision");
	/* 56 KiB into a new block: exactly one block */
	expect_io(&a, "56K provision", do_write(&a, &o, 2 * B, 56 * KiB, &res), &res,
	          THINP_WRITE_PROVISION_ZERO, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION_ZERO, 56 * KiB, 0, 56 * KiB, B } });
	expect_used(&a, 3, "after a 56K write into a new block");
	/* across a boundary: mapped | new */
	expect_io(&a, "8K across mapped|new", do_write(&a, &o, 3 * B - K, 2 * K, &res), &res,
	          THINP_WRITE_PROVISION_ZERO, 2,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 },
	                            { THINP_WRITE_PROVISION_ZERO, K, 0, K, B } });
	expect_used(&a, 4, "after a mapped|new write");
	/* across a boundary: new | new */
	expect_io(&a, "8K across new|new", do_write(&a, &o, 5 * B - K, 2 * K, &res), &res,
	          THINP_WRITE_PROVISION_ZERO, 2,
	          (struct piece[]){ { THINP_WRITE_PROVISION_ZERO, K, 0, K, B },
	                            { THINP_WRITE_PROVISION_ZERO, K, 0, K, B } });
	expect_used(&a, 6, "after a new|new write");
	/* mapped | whole new | partial new: the dearest class is provision_full */
	expect_io(&a, "B+8K across three blocks", do_write(&a, &o, 6 * B - K, B + 2 * K, &res),
	          &res, THINP_WRITE_PROVISION_FULL, 3,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 },
	                            { THINP_WRITE_PROVISION_FULL, B, 0, B, 0 },
	                            { THINP_WRITE_PROVISION_ZERO, K, 0, K, B } });
	expect_used(&a, 8, "after a three-block write");
	/* reads across boundaries */
	expect_io(&a, "8K read across mapped|mapped", do_read(&a, &o, 3 * B - K, 2 * K, &res), &res,
	          THINP_READ_MAPPED, 2,
	          (struct piece[]){ { THINP_READ_MAPPED, K, K, 0, 0 },
	                            { THINP_READ_MAPPED, K, K, 0, 0 } });
	expect_io(&a, "8K read across mapped|unmapped", do_read(&a, &o, 8 * B - K, 2 * K, &res),
	          &res, THINP_READ_MAPPED, 2,
	          (struct piece[]){ { THINP_READ_MAPPED, K, K, 0, 0 },
	                            { THINP_READ_UNMAPPED, K, 0, 0, 0 } });
	expect_io(&a, "whole-block read unmapped", do_read(&a, &o, 9 * B, B, &res), &res,
	          THINP_READ_UNMAPPED, 1, (struct piece[]){ { THINP_READ_UNMAPPED, B, 0, 0, 0 } });

	/* ---- snapshot: everything mapped so far is shared ---- */
	pu_ctx("B=%" PRIu64 " create_snap", B);
	REQ0(thinp_create_snap(a.p, 2, 1));
	dev_open(&a, &s, 2, &o);
	expect_used(&a, 8, "after create_snap");
	expect_io(&a, "origin read shared", do_read(&a, &o, 8 * KiB, K, &res), &res,
	          THINP_READ_SHARED, 1, (struct piece[]){ { THINP_READ_SHARED, K, K, 0, 0 } });
	expect_io(&a, "snapshot read shared", do_read(&a, &s, 8 * KiB, K, &res), &res,
	          THINP_READ_SHARED, 1, (struct piece[]){ { THINP_READ_SHARED, K, K, 0, 0 } });
	expect_io(&a, "snapshot read unmapped", do_read(&a, &s, 9 * B, K, &res), &res,
	          THINP_READ_UNMAPPED, 1, (struct piece[]){ { THINP_READ_UNMAPPED, K, 0, 0, 0 } });
	/* 4 KiB to a shared block: copy the block, then write */
	expect_io(&a, "origin 4K CoW", do_write(&a, &o, 16 * KiB, K, &res), &res, THINP_WRITE_COW,
	          1, (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 } });
	expect_used(&a, 9, "after the origin's CoW");
	/* the second write after the CoW is an overwrite */
	expect_io(&a, "origin overwrite after CoW", do_write(&a, &o, 20 * KiB, K, &res), &res,
	          THINP_WRITE_OVERWRITE, 1,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 } });
	expect_io(&a, "origin read after CoW", do_read(&a, &o, 16 * KiB, K, &res), &res,
	          THINP_READ_MAPPED, 1, (struct piece[]){ { THINP_READ_MAPPED, K, K, 0, 0 } });
	/* the snapshot still sees the old data, and still as shared */
	expect_io(&a, "snapshot read after origin CoW", do_read(&a, &s, 16 * KiB, K, &res), &res,
	          THINP_READ_SHARED, 1, (struct piece[]){ { THINP_READ_SHARED, K, K, 0, 0 } });
	/* n+1: the snapshot's write to that block copies again, and frees the
	 * old block (its last reference), so used stays put */
	expect_io(&a, "snapshot 4K CoW after origin broke sharing", do_write(&a, &s, 0, K, &res),
	          &res, THINP_WRITE_COW, 1,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 } });
	expect_used(&a, 9, "after the snapshot's n+1 CoW (old block freed)");
	expect_io(&a, "snapshot overwrite after its CoW", do_write(&a, &s, 4 * KiB, K, &res), &res,
	          THINP_WRITE_OVERWRITE, 1,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 } });
	/* whole block to a shared block: no copy */
	expect_io(&a, "origin whole-block CoW", do_write(&a, &o, 2 * B, B, &res), &res,
	          THINP_WRITE_COW_FULL, 1,
	          (struct piece[]){ { THINP_WRITE_COW_FULL, B, 0, B, 0 } });
	expect_used(&a, 10, "after a whole-block CoW");
	expect_io(&a, "snapshot keeps the old block", do_read(&a, &s, 2 * B, B, &res), &res,
	          THINP_READ_SHARED, 1, (struct piece[]){ { THINP_READ_SHARED, B, B, 0, 0 } });
	/* across a boundary: shared | shared */
	expect_io(&a, "origin 8K across shared|shared", do_write(&a, &o, 4 * B - K, 2 * K, &res),
	          &res, THINP_WRITE_COW, 2,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 },
	                            { THINP_WRITE_COW, K, B, B + K, 0 } });
	expect_used(&a, 12, "after a shared|shared write");
	/* across a boundary: two whole shared blocks from the snapshot side */
	expect_io(&a, "snapshot 2B across shared|shared", do_write(&a, &s, 5 * B, 2 * B, &res),
	          &res, THINP_WRITE_COW_FULL, 2,
	          (struct piece[]){ { THINP_WRITE_COW_FULL, B, 0, B, 0 },
	                            { THINP_WRITE_COW_FULL, B, 0, B, 0 } });
	expect_used(&a, 14, "after the snapshot's whole-block CoWs");
	/* partial shared | whole shared | new, from the origin. The origin's
	 * vblock 6 is still "shared" by time although the snapshot already
	 * replaced its own copy: the CoW frees the old block (+1 -1). */
	expect_io(&a, "origin: partial shared | whole shared | new",
	          do_write(&a, &o, 7 * B - K, B + 2 * K, &res), &res, THINP_WRITE_COW_FULL, 3,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 },
	                            { THINP_WRITE_COW_FULL, B, 0, B, 0 },
	                            { THINP_WRITE_PROVISION_ZERO, K, 0, K, B } });
	expect_used(&a, 16, "after a cow|cow_full|provision_zero write");

	verify_all(&a, &o, "origin");
	verify_all(&a, &s, "snapshot");
	dev_close(&o);
	dev_close(&s);
	amp_close(&a);
}
END_TEST

/* ---- skip_block_zeroing ---- */

START_TEST(test_zeroing_off)
{
	uint32_t bs = block_sectors_list[_i];
	struct amp a;
	amp_open(&a, "nozero", bs, true);
	const uint64_t B = a.B, K = 4 * KiB;
	struct thinp_io_result res;
	struct dev o, s;
	dev_open(&a, &o, 1, NULL);

	expect_io(&a, "4K provision without zeroing", do_write(&a, &o, 8 * KiB, K, &res), &res,
	          THINP_WRITE_PROVISION, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION, K, 0, K, 0 } });
	expect_used(&a, 1, "after one provision");
	expect_io(&a, "whole-block provision", do_write(&a, &o, B, B, &res), &res,
	          THINP_WRITE_PROVISION_FULL, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION_FULL, B, 0, B, 0 } });
	expect_io(&a, "56K provision", do_write(&a, &o, 2 * B, 56 * KiB, &res), &res,
	          THINP_WRITE_PROVISION, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION, 56 * KiB, 0, 56 * KiB, 0 } });
	expect_used(&a, 3, "after a 56K write into a new block");
	expect_io(&a, "8K across mapped|new", do_write(&a, &o, 3 * B - K, 2 * K, &res), &res,
	          THINP_WRITE_PROVISION, 2,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 },
	                            { THINP_WRITE_PROVISION, K, 0, K, 0 } });
	expect_io(&a, "4K overwrite", do_write(&a, &o, 0, K, &res), &res, THINP_WRITE_OVERWRITE, 1,
	          (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 } });
	expect_used(&a, 4, "after a mapped|new write");

	pu_ctx("B=%" PRIu64 " create_snap", B);
	REQ0(thinp_create_snap(a.p, 2, 1));
	dev_open(&a, &s, 2, &o);
	/* a CoW copies the whole block whatever the zeroing setting */
	expect_io(&a, "origin 4K CoW", do_write(&a, &o, 4 * KiB, K, &res), &res, THINP_WRITE_COW, 1,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 } });
	expect_io(&a, "snapshot 4K CoW (n+1)", do_write(&a, &s, 0, K, &res), &res, THINP_WRITE_COW,
	          1, (struct piece[]){ { THINP_WRITE_COW, K, B, B + K, 0 } });
	expect_io(&a, "origin whole-block CoW", do_write(&a, &o, B, B, &res), &res,
	          THINP_WRITE_COW_FULL, 1,
	          (struct piece[]){ { THINP_WRITE_COW_FULL, B, 0, B, 0 } });
	expect_used(&a, 6, "after the CoWs");
	expect_io(&a, "snapshot read shared", do_read(&a, &s, B, B, &res), &res, THINP_READ_SHARED,
	          1, (struct piece[]){ { THINP_READ_SHARED, B, B, 0, 0 } });
	expect_io(&a, "origin read", do_read(&a, &o, B, B, &res), &res, THINP_READ_MAPPED, 1,
	          (struct piece[]){ { THINP_READ_MAPPED, B, B, 0, 0 } });

	verify_all(&a, &o, "origin");
	verify_all(&a, &s, "snapshot");
	dev_close(&o);
	dev_close(&s);
	amp_close(&a);
}
END_TEST

/* ---- seeded random IO: per-IO costs predicted from a mapping model ---- */

/* Mapping model of the kernel's sharing rule: a vblock is provisioned or
 * not, and shared iff its mapping predates the device's last snapshot. */
struct vmap {
	bool mapped;
	uint32_t time;
};

static void random_costs(int i, enum thinp_cow_policy policy)
{
	uint32_t bs = block_sectors_list[i];
	struct amp a;
	bool skip_zero = (pu_seed + i) & 1;
	bool merged = policy == THINP_COW_MERGED;
	amp_open_policy(&a, merged ? "random-merged" : "random", bs, skip_zero, policy);
	const uint64_t B = a.B;
	enum {
		NDEV = 3,
		NB = 16
	};
	struct dev d[NDEV];
	struct vmap m[NDEV][NB];
	uint32_t snap_time[NDEV] = { 0 }, pool_time = 0;
	memset(m, 0, sizeof(m));
	dev_open(&a, &d[0], 1, NULL);
	unsigned ndev = 1;
	uint64_t nops = mu_scaled(bs >= 1024 ? 120 : 300, 40);
	struct thinp_io_result res;
	for (uint64_t op = 0; op < nops; op++) {
		unsigned di = (unsigned)mu_below(&a.rng, ndev);
		struct dev *dv = &d[di];
		uint64_t kind = mu_below(&a.rng, 100);
		if (kind < 4 && ndev < NDEV) {
			/* snapshot of DI as device ndev+1 */
			pu_ctx("B=%" PRIu64 " op %" PRIu64 " snapshot", B, op);
			REQ0(thinp_create_snap(a.p, ndev + 1, di + 1));
			pool_time++;
			snap_time[di] = snap_time[ndev] = pool_time;
			memcpy(m[ndev], m[di], sizeof(m[di]));
			dev_open(&a, &d[ndev], ndev + 1, dv);
			ndev++;
			continue;
		}
		/* a random range of 512-byte multiples, up to 2.5 blocks */
		uint64_t len = (1 + mu_below(&a.rng, (5 * B / 2) / 512)) * 512;
		if (mu_pct(&a.rng, 20))
			len = B;
		if (len > dv->size)
			len = dv->size;
		uint64_t off = mu_below(&a.rng, (dv->size - len) / 512 + 1) * 512;
		if (mu_pct(&a.rng, 20))
			off = off / B * B;
		if (off + len > dv->size)
			off = dv->size - len;
		bool write = kind < 60;
		struct piece pcs[4];
		unsigned n = 0;
		enum thinp_class top = write ? THINP_WRITE_OVERWRITE : THINP_READ_UNMAPPED;
		for (uint64_t pos = off; pos < off + len;) {
			uint64_t vb = pos / B, bo = pos % B;
			uint64_t plen = B - bo < off + len - pos ? B - bo : off + len - pos;
			struct vmap *vm = &m[di][vb];
			bool shared = vm->mapped && snap_time[di] > vm->time;
			struct piece pc = { .req = plen };
			if (!write) {
				pc.cls = !vm->mapped ? THINP_READ_UNMAPPED :
				         shared      ? THINP_READ_SHARED :
				                       THINP_READ_MAPPED;
				pc.rd = vm->mapped ? plen : 0;
			} else if (vm->mapped && !shared) {
				pc.cls = THINP_WRITE_OVERWRITE;
				pc.wr = plen;
			} else if (vm->mapped) {
				pc.cls = plen == B ? THINP_WRITE_COW_FULL : THINP_WRITE_COW;
				pc.rd = plen == B ? 0 : B;
				pc.wr = plen == B ? plen : merged ? B : B + plen;
			} else {
				pc.cls = plen == B ? THINP_WRITE_PROVISION_FULL :
				         skip_zero ? THINP_WRITE_PROVISION :
				                     THINP_WRITE_PROVISION_ZERO;
				bool zeroing = pc.cls == THINP_WRITE_PROVISION_ZERO;
				pc.wr = zeroing && merged ? B : plen;
				pc.zr = zeroing && !merged ? B : 0;
			}
			if (write) {
				vm->mapped = true;
				vm->time = pool_time;
			}
			if (n == 0 || pc.cls > top)
				top = pc.cls;
			pcs[n++] = pc;
			pos += plen;
		}
		char what[128];
		snprintf(what, sizeof(what),
		         "op %" PRIu64 ": %s dev %u off %" PRIu64 " len %" PRIu64, op,
		         write ? "write" : "read", di + 1, off, len);
		int r = write ? do_write(&a, dv, off, len, &res) : do_read(&a, dv, off, len, &res);
		expect_io(&a, what, r, &res, top, n, pcs);
	}
	for (unsigned i = 0; i < ndev; i++) {
		verify_all(&a, &d[i], "random device");
		dev_close(&d[i]);
	}
	amp_close(&a);
}

START_TEST(test_random_costs) { random_costs(_i, THINP_COW_KERNEL); }
END_TEST

START_TEST(test_random_costs_merged) { random_costs(_i, THINP_COW_MERGED); }
END_TEST

/* The merged policy's point is fewer data IOs: per partial CoW one pread and one pwrite of
 * the block (the kernel's order: a pread, a pwrite of the block, a pwrite of the data), per
 * partial provision with zeroing one pwrite (the kernel's: write-zeroes, then a pwrite). The
 * byte counts of both are checked piece by piece. */
static void merged_vs_kernel(int i, enum thinp_cow_policy policy)
{
	uint32_t bs = block_sectors_list[i];
	bool merged = policy == THINP_COW_MERGED;
	struct amp a;
	amp_open_policy(&a, merged ? "io-merged" : "io-kernel", bs, false, policy);
	const uint64_t B = a.B, K = 4 * KiB;
	struct thinp_io_result res;
	struct dev o, s;
	dev_open(&a, &o, 1, NULL);
	struct tp_io_counters c0 = tp_dev_ctr(a.data);
	expect_io(&a, "4K provision with zeroing", do_write(&a, &o, 8 * KiB, K, &res), &res,
	          THINP_WRITE_PROVISION_ZERO, 1,
	          (struct piece[]){ { THINP_WRITE_PROVISION_ZERO, K, 0, merged ? B : K,
	                              merged ? 0 : B } });
	REQ(tp_dev_ctr(a.data).writes - c0.writes == 1 && tp_dev_ctr(a.data).zero_ops - c0.zero_ops ==
	            (merged ? 0u : 1u) && tp_dev_ctr(a.data).reads == c0.reads,
	    "provision with zeroing: %" PRIu64 " pwrites, %" PRIu64 " write-zeroes, %" PRIu64
	    " preads",
	    tp_dev_ctr(a.data).writes - c0.writes, tp_dev_ctr(a.data).zero_ops - c0.zero_ops,
	    tp_dev_ctr(a.data).reads - c0.reads);
	/* the zeroed part reads back as zeros */
	expect_io(&a, "read the zeroed part", do_read(&a, &o, 0, 8 * KiB, &res), &res,
	          THINP_READ_MAPPED, 1, (struct piece[]){ { THINP_READ_MAPPED, 8 * KiB, 8 * KiB, 0, 0 } });
	REQ0(do_write(&a, &o, B, 3 * B, &res)); /* whole blocks: a run, not counted below */
	memset(a.exp, 0, sizeof(a.exp));
	thinp_pool_stats_reset(a.p);
	a.base = tp_dev_ctr(a.data);
	REQ0(thinp_create_snap(a.p, 2, 1));
	dev_open(&a, &s, 2, &o);
	c0 = tp_dev_ctr(a.data);
	expect_io(&a, "snapshot 4K CoW", do_write(&a, &s, B + 12 * KiB, K, &res), &res,
	          THINP_WRITE_COW, 1,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, merged ? B : B + K, 0 } });
	REQ(tp_dev_ctr(a.data).writes - c0.writes == (merged ? 1u : 2u) &&
	            tp_dev_ctr(a.data).reads - c0.reads == 1 && tp_dev_ctr(a.data).zero_ops == c0.zero_ops,
	    "4K CoW: %" PRIu64 " pwrites, %" PRIu64 " preads", tp_dev_ctr(a.data).writes - c0.writes,
	    tp_dev_ctr(a.data).reads - c0.reads);
	/* a CoW at the block's end and one over all but its first sector */
	expect_io(&a, "origin 4K CoW at the end", do_write(&a, &o, 3 * B - K, K, &res), &res,
	          THINP_WRITE_COW, 1,
	          (struct piece[]){ { THINP_WRITE_COW, K, B, merged ? B : B + K, 0 } });
	expect_io(&a, "snapshot CoW of B-512", do_write(&a, &s, 3 * B + 512, B - 512, &res), &res,
	          THINP_WRITE_COW, 1,
	          (struct piece[]){ { THINP_WRITE_COW, B - 512, B, merged ? B : 2 * B - 512, 0 } });
	/* after the CoW the block is the thin's own: an overwrite in place either way */
	expect_io(&a, "overwrite after the CoW", do_write(&a, &s, B, K, &res), &res,
	          THINP_WRITE_OVERWRITE, 1, (struct piece[]){ { THINP_WRITE_OVERWRITE, K, 0, K, 0 } });
	verify_all(&a, &o, "origin");
	verify_all(&a, &s, "snapshot");
	dev_close(&o);
	dev_close(&s);
	amp_close(&a);
}

START_TEST(test_io_count_kernel) { merged_vs_kernel(_i, THINP_COW_KERNEL); }
END_TEST

START_TEST(test_io_count_merged) { merged_vs_kernel(_i, THINP_COW_MERGED); }
END_TEST

/* Whole blocks of one write reach the data device as one IO per run of adjacent data blocks,
 * as the block layer merges the per-block bios dm-thin issues; each block keeps its class and
 * bytes. Counted in pwrite calls of the data device. */
static uint64_t data_writes(struct amp *a) { return tp_dev_ctr(a->data).writes; }

START_TEST(test_whole_block_runs)
{
	uint32_t bs = block_sectors_list[_i];
	struct amp a;
	amp_open(&a, "runs", bs, false);
	const uint64_t B = a.B;
	struct dev d1, d2, d3;
	struct thinp_io_result res;
	dev_open(&a, &d1, 1, NULL);
	pu_ctx("B=%" PRIu64 " runs", B);

	/* 8 fresh blocks: allocated in order, adjacent: one write */
	uint64_t w0 = data_writes(&a);
	REQ0(do_write(&a, &d1, 0, 8 * B, &res));
	REQ(data_writes(&a) - w0 == 1, "provision of 8 blocks: %" PRIu64 " writes",
	    data_writes(&a) - w0);
	REQ(res.cls == THINP_WRITE_PROVISION_FULL && res.nr_blocks == 8 &&
	            res.cost.data_bytes_written == 8 * B && res.cost.ops == 8 &&
	            res.cost.data_bytes_zeroed == 0,
	    "provision result: class %d blocks %u written %" PRIu64, res.cls, res.nr_blocks,
	    res.cost.data_bytes_written);
	/* the same again: overwrite in place, one write */
	w0 = data_writes(&a);
	REQ0(do_write(&a, &d1, 0, 8 * B, &res));
	REQ(data_writes(&a) - w0 == 1 && res.cls == THINP_WRITE_OVERWRITE && res.nr_blocks == 8,
	    "overwrite of 8 blocks: %" PRIu64 " writes, class %d", data_writes(&a) - w0, res.cls);

	/* a hole in the layout: block 9 first (data block X), then 8..11 → 8:X+1 9:X 10:X+2
	 * 11:X+3: runs {8} {9} {10,11} */
	REQ0(do_write(&a, &d1, 9 * B, B, &res));
	w0 = data_writes(&a);
	REQ0(do_write(&a, &d1, 8 * B, 4 * B, &res));
	REQ(data_writes(&a) - w0 == 3, "8..11 with 9 mapped before: %" PRIu64 " writes",
	    data_writes(&a) - w0);
	REQ(res.cls == THINP_WRITE_PROVISION_FULL && res.nr_blocks == 4, "mixed run class %d",
	    res.cls);

	/* head and tail partial, two whole blocks between: write_block, a run, write_block */
	w0 = data_writes(&a);
	REQ0(do_write(&a, &d1, 12 * B + B / 2, 3 * B, &res));
	REQ(res.nr_blocks == 4 && data_writes(&a) - w0 >= 3, "partial edges: %u blocks",
	    res.nr_blocks);

	/* a snapshot: whole-block writes to the shared blocks are CoW without a copy, into
	 * fresh adjacent blocks: one write, nothing read */
	REQ0(thinp_create_snap(a.p, 2, 1));
	dev_open(&a, &d2, 2, &d1);
	uint64_t r0 = tp_dev_ctr(a.data).bytes_read;
	w0 = data_writes(&a);
	REQ0(do_write(&a, &d2, 0, 8 * B, &res));
	REQ(data_writes(&a) - w0 == 1 && res.cls == THINP_WRITE_COW_FULL && res.nr_blocks == 8 &&
	            tp_dev_ctr(a.data).bytes_read == r0,
	    "CoW of 8 whole blocks: %" PRIu64 " writes, class %d", data_writes(&a) - w0,
	    res.cls);
	/* the origin's blocks are shared too (time test): CoW, and its old data stays the
	 * snapshot's view only where the snapshot did not write */
	REQ0(do_write(&a, &d1, 4 * B, 8 * B, &res));
	REQ(res.cls == THINP_WRITE_COW_FULL, "origin after snapshot: class %d", res.cls);

	/* the whole device in one write: runs are cut at 16 MiB or 32 blocks */
	REQ0(thinp_create_thin(a.p, 3));
	dev_open(&a, &d3, 3, NULL);
	REQ(d3.size == 16 * B, "device size");
	REQ0(do_write(&a, &d3, 0, 16 * B, &res));
	REQ(res.nr_blocks == 16 && res.cls == THINP_WRITE_PROVISION_FULL, "16 blocks");

	verify_all(&a, &d1, "origin");
	verify_all(&a, &d2, "snapshot");
	verify_all(&a, &d3, "thin 3");
	dev_close(&d1);
	dev_close(&d2);
	dev_close(&d3);
	amp_close(&a);
}
END_TEST

static Suite *amp_suite(void)
{
	Suite *s = suite_create("pool_amplification");
	TCase *tc = tcase_create("exact");
	tcase_set_timeout(tc, 120);
	int n = (int)(sizeof(block_sectors_list) / sizeof(block_sectors_list[0]));
	tcase_add_loop_test(tc, test_zeroing_on, 0, n);
	tcase_add_loop_test(tc, test_zeroing_off, 0, n);
	tcase_add_loop_test(tc, test_random_costs, 0, n);
	tcase_add_loop_test(tc, test_random_costs_merged, 0, n);
	tcase_add_loop_test(tc, test_io_count_kernel, 0, n);
	tcase_add_loop_test(tc, test_io_count_merged, 0, n);
	tcase_add_loop_test(tc, test_whole_block_runs, 0, n);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(DEFAULT_SEED, "amp", amp_suite);
}
