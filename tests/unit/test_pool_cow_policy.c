/* The pool's CoW/zeroing policy (struct thinp_pool_opts.cow_policy):
 *
 *  - an unknown policy is refused when the pool opens, naming the value;
 *  - power loss at every write boundary of a workload of partial writes into shared blocks
 *    (CoW) and into new blocks with zeroing, under both policies: the pool reopens in write
 *    mode and every block reads back as it was at the last completed commit or, when the
 *    power went during a commit, as it was at that commit. A merged CoW writes the copy and
 *    the data in one IO to a block that is mapped only after it, so flushed data is never
 *    lost and no block is found half copied.
 *
 * The devices are in memory, each behind the fault injector (tests/support/dev_fault.h) in
 * volatile mode, and above both a "power" gate sharing one write counter: from its Kth
 * write on, every IO of both devices fails, and then both crash (unflushed writes lost).
 * THINP_SEED changes the workload. The exact byte counts of both policies are asserted in
 * test_pool_amplification.c. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "pool_util.h"
#include "support/dev_fault.h"
#include "thinp.h"

#define DEFAULT_SEED 0x636f77ull /* "cow" */
#define NBLK         12u         /* thin size in blocks; the origin writes the first NB_ORIG */
#define NB_ORIG      8u
#define NOPS         24u
#define DATA_BLOCKS  64u
#define META_BYTES   (4ull << 20)

/* ---- one power supply for both devices ---- */

struct power {
	uint64_t writes, limit; /* the limit-th write and all IO after it fail */
	bool lost;
};

struct gate {
	struct tp_dev dev;
	struct tp_dev *lower; /* not owned: the disks outlive the pool */
	struct power *pw;
};

static struct gate *to_gate(struct tp_dev *d) { return (struct gate *)(void *)d; }

static int gate_io(struct gate *g, bool write)
{
	if (g->pw->lost)
		return -EIO;
	if (write && ++g->pw->writes >= g->pw->limit) {
		g->pw->lost = true;
		return -EIO;
	}
	return 0;
}

static int g_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	int r = gate_io(to_gate(d), false);
	return r ? r : tp_dev_pread(to_gate(d)->lower, buf, len, off);
}

static int g_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	int r = gate_io(to_gate(d), true);
	return r ? r : tp_dev_pwrite(to_gate(d)->lower, buf, len, off);
}

static int g_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	int r = gate_io(to_gate(d), true);
	return r ? r : tp_dev_write_zeroes(to_gate(d)->lower, off, len);
}

static int g_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	int r = gate_io(to_gate(d), true);
	return r ? r : tp_dev_discard(to_gate(d)->lower, off, len);
}

static int g_flush(struct tp_dev *d)
{
	int r = gate_io(to_gate(d), false);
	return r ? r : tp_dev_flush(to_gate(d)->lower);
}

static int g_resize(struct tp_dev *d, uint64_t size)
{
	(void)d;
	(void)size;
	return -ENOTSUP;
}

static int g_refresh(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void g_close(struct tp_dev *d) { free(to_gate(d)); }

static const struct tp_dev_ops gate_ops = {
	.pread = g_pread,
	.pwrite = g_pwrite,
	.flush = g_flush,
	.write_zeroes = g_zero,
	.discard = g_discard,
	.resize = g_resize,
	.refresh_size = g_refresh,
	.close = g_close,
};

static struct tp_dev *gate_new(struct tp_dev *lower, struct power *pw)
{
	struct gate *g = calloc(1, sizeof(*g));
	REQ(g != NULL, "out of memory");
	g->dev.ops = &gate_ops;
	g->dev.align = lower->align;
	g->dev.size = lower->size;
	snprintf(g->dev.name, sizeof(g->dev.name), "power gate");
	g->lower = lower;
	g->pw = pw;
	return &g->dev;
}

/* ---- the workload and its model ---- */

struct op {
	unsigned thin; /* 0: the origin (thin 1), 1: its snapshot (thin 2) */
	uint64_t off, len;
	bool commit; /* a pool commit instead of a write */
};

struct run {
	enum thinp_cow_policy policy;
	uint64_t B, size;
	struct op ops[NOPS];
	uint8_t *origin_data;   /* what the origin holds before the snapshot */
	uint8_t *payload[NOPS]; /* each write's bytes */
	/* the thins' bytes at the last completed commit, and at the one in progress */
	uint8_t *durable[2], *pending[2];
	uint64_t total_writes; /* of both devices in the reference run */
};

static void make_workload(struct run *w, uint32_t block_sectors, enum thinp_cow_policy pol)
{
	memset(w, 0, sizeof(*w));
	w->policy = pol;
	w->B = (uint64_t)block_sectors * 512;
	w->size = NBLK * w->B;
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed ^ block_sectors ^ ((uint64_t)pol << 32));
	w->origin_data = malloc(NB_ORIG * w->B);
	REQ(w->origin_data != NULL, "out of memory");
	mu_fill(&rng, w->origin_data, NB_ORIG * w->B);
	for (unsigned i = 0; i < NOPS; i++) {
		struct op *o = &w->ops[i];
		if (i % 6 == 5) { /* commits between the writes, so crashes find both kinds */
			o->commit = true;
			continue;
		}
		o->thin = (unsigned)mu_below(&rng, 2);
		/* partial and inside one block: a CoW of a shared block, an overwrite of a block
		 * copied before, or (past the origin's blocks) a provision with zeroing */
		uint64_t b = mu_below(&rng, NBLK);
		o->len = (1 + mu_below(&rng, w->B / 512 - 1)) * 512;
		o->off = b * w->B + mu_below(&rng, (w->B - o->len) / 512 + 1) * 512;
		w->payload[i] = malloc(o->len);
		REQ(w->payload[i] != NULL, "out of memory");
		mu_fill(&rng, w->payload[i], o->len);
	}
	for (int t = 0; t < 2; t++) {
		w->durable[t] = calloc(1, w->size);
		w->pending[t] = calloc(1, w->size);
		REQ(w->durable[t] && w->pending[t], "out of memory");
	}
}

static void free_workload(struct run *w)
{
	free(w->origin_data);
	for (unsigned i = 0; i < NOPS; i++)
		free(w->payload[i]);
	for (int t = 0; t < 2; t++) {
		free(w->durable[t]);
		free(w->pending[t]);
	}
}

/* Run the workload with the power going at gate write LIMIT (UINT64_MAX: never), crash,
 * reopen what the disks hold and compare every block with the model. Returns the writes
 * the devices took. */
static uint64_t run_once(struct run *w, uint64_t limit)
{
	pu_ctx("%s B=%" PRIu64 " power lost at write %" PRIu64,
	       w->policy == THINP_COW_MERGED ? "merged" : "kernel", w->B, limit);
	struct power pw = { .limit = limit };
	struct tp_dev *inner[2], *fdev[2], *gdev[2];
	struct tp_fault *f[2];
	REQ0(tp_dev_open_mem(DATA_BLOCKS * w->B, &inner[0]));
	REQ0(tp_dev_open_mem(META_BYTES, &inner[1]));
	for (int i = 0; i < 2; i++) {
		REQ0(tp_fault_wrap(inner[i], &fdev[i], &f[i]));
		tp_fault_set_volatile(f[i], 1);
		gdev[i] = gate_new(fdev[i], &pw);
	}
	struct thinp_pool_opts o = { .block_sectors = (uint32_t)(w->B / 512),
		                     .no_commit_timer = true,
		                     .error_if_no_space = true,
		                     .cow_policy = w->policy };
	struct thinp_pool *p;
	char err[512] = "";
	uint8_t *cur[2];
	for (int t = 0; t < 2; t++) {
		cur[t] = calloc(1, w->size);
		REQ(cur[t] != NULL, "out of memory");
		memset(w->durable[t], 0, w->size);
		memset(w->pending[t], 0, w->size);
	}
	/* the setup (format, origin written, snapshot) may lose power too: the model's durable
	 * state only moves with a commit that returned */
	bool committing = false, formatted = false;
	struct thinp_thin *th[2] = { NULL, NULL };
	bool exists[2] = { false, false }; /* their create message returned */
	int r = thinp_pool_format(gdev[0], gdev[1], &o, &p, err, sizeof(err));
	formatted = r == 0;
	if (r) {
		REQ(pw.lost, "format = %d: %s", r, err);
		goto crash;
	}
	if ((r = thinp_create_thin(p, 1)) || (r = thinp_thin_open(p, 1, w->size, &th[0])))
		goto failed;
	exists[0] = true;
	if ((r = thinp_write(th[0], w->origin_data, NB_ORIG * w->B, 0, 0, NULL)))
		goto failed;
	memcpy(cur[0], w->origin_data, NB_ORIG * w->B);
	memcpy(w->pending[0], cur[0], w->size);
	memcpy(w->pending[1], cur[1], w->size);
	committing = true;
	if ((r = thinp_pool_commit(p)))
		goto failed;
	committing = false;
	memcpy(w->durable[0], cur[0], w->size);
	/* create_snap commits: from it on the snapshot exists with the origin's bytes */
	memcpy(cur[1], cur[0], w->size);
	memcpy(w->pending[1], cur[1], w->size);
	committing = true;
	if ((r = thinp_create_snap(p, 2, 1)) || (r = thinp_thin_open(p, 2, w->size, &th[1])))
		goto failed;
	exists[1] = true;
	committing = false;
	memcpy(w->durable[1], cur[1], w->size);
	for (unsigned i = 0; i < NOPS; i++) {
		const struct op *op = &w->ops[i];
		if (op->commit) {
			memcpy(w->pending[0], cur[0], w->size);
			memcpy(w->pending[1], cur[1], w->size);
			committing = true;
			if ((r = thinp_pool_commit(p)))
				goto failed;
			committing = false;
			memcpy(w->durable[0], cur[0], w->size);
			memcpy(w->durable[1], cur[1], w->size);
			continue;
		}
		if ((r = thinp_write(th[op->thin], w->payload[i], op->len, op->off, 0, NULL)))
			goto failed;
		memcpy(cur[op->thin] + op->off, w->payload[i], op->len);
	}
	/* no power cut: the pool reads back exactly the model */
	for (int t = 0; t < 2; t++) {
		uint8_t *buf = malloc(w->size);
		REQ(buf != NULL, "out of memory");
		REQ0(thinp_read(th[t], buf, w->size, 0, NULL));
		REQ(memcmp(buf, cur[t], w->size) == 0, "thin %d differs from the model before the crash",
		    t + 1);
		free(buf);
	}
	r = 0;
failed:
	if (r)
		REQ(pw.lost, "an IO failed with the power on: %d (%s)", r, thinp_pool_error(p));
	for (int t = 0; t < 2; t++)
		if (th[t])
			thinp_thin_close(th[t]);
	(void)thinp_pool_close(p); /* with the power gone it fails */
crash:;
	uint64_t seen = pw.writes;
	tp_fault_crash(f[0]);
	tp_fault_crash(f[1]);
	if (!committing) /* nothing was in flight: the pending state is the durable one */
		for (int t = 0; t < 2; t++)
			memcpy(w->pending[t], w->durable[t], w->size);

	/* recover from what the disks hold */
	struct power none = { .limit = UINT64_MAX };
	struct tp_dev *d = gate_new(inner[0], &none), *m = gate_new(inner[1], &none);
	struct thinp_pool *q;
	r = thinp_pool_open(d, m, &o, &q, err, sizeof(err));
	if (r && !formatted)
		goto out; /* the power went while formatting: nothing was promised */
	REQ(r == 0, "the pool does not open after the crash: %d: %s", r, err);
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(q, true, &st));
	REQ(st.mode == THINP_MODE_WRITE && !st.needs_check, "recovered pool: mode %d needs_check %d",
	    st.mode, st.needs_check);
	uint8_t *got = malloc(w->B);
	REQ(got != NULL, "out of memory");
	for (unsigned t = 0; t < 2; t++) {
		struct thinp_thin *tt;
		int tr = thinp_thin_open(q, t + 1, w->size, &tt);
		if (tr) { /* a thin whose create message had not returned */
			REQ(!exists[t], "thin %u is missing after the crash: %d", t + 1, tr);
			continue;
		}
		for (uint64_t b = 0; b < NBLK; b++) {
			REQ0(thinp_read(tt, got, w->B, b * w->B, NULL));
			const uint8_t *was = w->durable[t] + b * w->B, *next = w->pending[t] + b * w->B;
			if (memcmp(got, was, w->B) == 0 || memcmp(got, next, w->B) == 0)
				continue;
			uint64_t i = 0;
			while (got[i] == was[i])
				i++;
			REQ(0,
			    "thin %u block %" PRIu64 " matches neither its committed state nor the "
			    "commit in progress: byte %" PRIu64 " is 0x%02x, committed 0x%02x",
			    t + 1, b, i, got[i], was[i]);
		}
		thinp_thin_close(tt);
	}
	free(got);
	/* and it takes a CoW again */
	struct thinp_thin *t2;
	if (!thinp_thin_open(q, 2, w->size, &t2)) {
		uint8_t one[512];
		memset(one, 0x5a, sizeof(one));
		REQ0(thinp_write(t2, one, sizeof(one), 512, 0, NULL));
		thinp_thin_close(t2);
	}
	REQ0(thinp_pool_commit(q));
out:
	if (!r)
		REQ0(thinp_pool_close(q));
	tp_dev_close(fdev[0]);
	tp_dev_close(fdev[1]);
	for (int t = 0; t < 2; t++)
		free(cur[t]);
	return seen;
}

static const uint32_t block_sectors_list[] = { 128, 512 };

static void crash_everywhere(uint32_t block_sectors, enum thinp_cow_policy pol)
{
	struct run w;
	make_workload(&w, block_sectors, pol);
	w.total_writes = run_once(&w, UINT64_MAX);
	REQ(w.total_writes > 20, "the workload wrote only %" PRIu64 " times", w.total_writes);
	for (uint64_t k = 1; k <= w.total_writes; k++)
		run_once(&w, k);
	printf("%s B=%" PRIu64 ": %" PRIu64 " power cuts checked\n",
	       pol == THINP_COW_MERGED ? "merged" : "kernel", w.B, w.total_writes);
	free_workload(&w);
}

START_TEST(test_crash_merged) { crash_everywhere(block_sectors_list[_i], THINP_COW_MERGED); }
END_TEST

START_TEST(test_crash_kernel) { crash_everywhere(block_sectors_list[_i], THINP_COW_KERNEL); }
END_TEST

START_TEST(test_unknown_policy)
{
	pu_ctx("cow_policy 7");
	struct tp_dev *d, *m;
	REQ0(tp_dev_open_mem(DATA_BLOCKS * 65536, &d));
	REQ0(tp_dev_open_mem(META_BYTES, &m));
	struct thinp_pool_opts o = { .no_commit_timer = true, .cow_policy = (enum thinp_cow_policy)7 };
	struct thinp_pool *p = NULL;
	char err[512] = "";
	int r = thinp_pool_format(d, m, &o, &p, err, sizeof(err));
	REQ(r == -EINVAL && p == NULL, "format with cow_policy 7 = %d", r);
	REQ(strstr(err, "cow_policy 7") && strstr(err, "THINP_COW_MERGED"),
	    "the error names neither the value nor the fix: %s", err);
}
END_TEST

static Suite *cow_suite(void)
{
	Suite *s = suite_create("pool_cow_policy");
	TCase *tc = tcase_create("policy");
	tcase_set_timeout(tc, 300);
	int n = (int)(sizeof(block_sectors_list) / sizeof(block_sectors_list[0]));
	tcase_add_test(tc, test_unknown_policy);
	tcase_add_loop_test(tc, test_crash_merged, 0, n);
	tcase_add_loop_test(tc, test_crash_kernel, 0, n);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(DEFAULT_SEED, "cowpol", cow_suite);
}
