/* The commit's IO (impl/thin/metadata.c commit_io, impl/pdata/block_manager.c
 * bm_write_dirty / bm_unlock_durable):
 *
 *  - order: the new metadata blocks in location order, adjacent ones in one
 *    vectored write, one metadata flush, then the superblock alone in one
 *    durable (DSYNC) write, after the data device's flush has returned;
 *  - the data flush overlaps the metadata writes when the data device can
 *    flush on another thread (a gated flush that only returns once the
 *    metadata flush happened);
 *  - the same bytes on disk whether the device writes vectors itself or
 *    one block per call (the generic fallback);
 *  - a power cut after every write of a commit (dev_fault, volatile cache)
 *    leaves either the previous commit or the new one, never less, and
 *    metadata the strict checker accepts.
 *
 * Seeded: THINP_SEED (printed), THINP_TEST_SCALE scales the mapping counts. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "stack_util.h"
#include "support/dev_fault.h"
#include "thin/check.h"
#include "thin/metadata.h"

#define DEFAULT_SEED 0xC0FFEEull
#define META_BYTES (8ull << 20)
#define DATA_BLOCKS 100000ull

/* ---- a recording device: every write and flush, in one log shared by
 * the metadata and the data device ---- */

enum ev_kind { EV_WRITE, EV_FLUSH_BEGIN, EV_FLUSH_END };

struct ev {
	int dev; /* 0 metadata, 1 data */
	enum ev_kind kind;
	uint64_t off, len;
	int bufs;
	bool dsync;
};

struct evlog {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct ev ev[1 << 17];
	size_t nr;
	unsigned meta_durable; /* metadata flushes and DSYNC block writes (not the superblock) */
};

struct rec {
	struct tp_dev dev;
	struct tp_dev *inner;
	struct evlog *log;
	int id;
	bool owns_inner;
	/* gated flush (the data device): waits until the metadata blocks are
	 * durable (a metadata flush or DSYNC write); INLINE
	 * is set when it was called on the committing thread instead */
	bool gate;
	pthread_t committer;
	bool inline_flush;
};

static struct rec *to_rec(struct tp_dev *d) { return (struct rec *)(void *)d; }

static void log_ev(struct rec *r, enum ev_kind k, uint64_t off, uint64_t len, int bufs, bool dsync)
{
	pthread_mutex_lock(&r->log->lock);
	REQ(r->log->nr < sizeof(r->log->ev) / sizeof(r->log->ev[0]), "event log full");
	r->log->ev[r->log->nr++] = (struct ev){r->id, k, off, len, bufs, dsync};
	if (r->id == 0 && (k == EV_FLUSH_END || (k == EV_WRITE && dsync && off)))
		r->log->meta_durable++;
	pthread_cond_broadcast(&r->log->cv);
	pthread_mutex_unlock(&r->log->lock);
}

static int rec_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return tp_dev_pread(to_rec(d)->inner, buf, len, off);
}

static int rec_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	int r = tp_dev_pwrite(to_rec(d)->inner, buf, len, off);
	if (!r)
		log_ev(to_rec(d), EV_WRITE, off, len, 1, false);
	return r;
}

static int rec_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
		       unsigned flags)
{
	uint64_t len = 0;
	for (int i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	int r = tp_dev_pwritev(to_rec(d)->inner, iov, cnt, off, flags);
	if (!r)
		log_ev(to_rec(d), EV_WRITE, off, len, cnt, flags & TP_WRITE_DSYNC);
	return r;
}

static int rec_flush(struct tp_dev *d)
{
	struct rec *r = to_rec(d);
	log_ev(r, EV_FLUSH_BEGIN, 0, 0, 0, false);
	if (r->gate) {
		if (pthread_equal(pthread_self(), r->committer)) {
			r->inline_flush = true; /* nothing can overlap it: do not wait */
		} else {
			pthread_mutex_lock(&r->log->lock);
			while (!r->log->meta_durable)
				pthread_cond_wait(&r->log->cv, &r->log->lock);
			pthread_mutex_unlock(&r->log->lock);
		}
	}
	int e = tp_dev_flush(r->inner);
	log_ev(r, EV_FLUSH_END, 0, 0, 0, false);
	return e;
}

static int rec_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_write_zeroes(to_rec(d)->inner, off, len);
}

static int rec_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_discard(to_rec(d)->inner, off, len);
}

static int rec_resize(struct tp_dev *d, uint64_t size)
{
	int r = tp_dev_resize(to_rec(d)->inner, size);
	if (!r)
		d->size = size;
	return r;
}

static int rec_refresh(struct tp_dev *d)
{
	d->size = to_rec(d)->inner->size;
	return 0;
}

static void rec_close(struct tp_dev *d)
{
	if (to_rec(d)->owns_inner)
		tp_dev_close(to_rec(d)->inner);
	free(d);
}

static const struct tp_dev_ops rec_ops = {
	.pread = rec_pread,
	.pwrite = rec_pwrite,
	.flush = rec_flush,
	.write_zeroes = rec_zero,
	.discard = rec_discard,
	.resize = rec_resize,
	.refresh_size = rec_refresh,
	.close = rec_close,
	.pwritev = rec_pwritev,
};

/* The same without a pwritev op: the device layer's generic fallback. */
static const struct tp_dev_ops rec_generic_ops = {
	.pread = rec_pread,
	.pwrite = rec_pwrite,
	.flush = rec_flush,
	.write_zeroes = rec_zero,
	.discard = rec_discard,
	.resize = rec_resize,
	.refresh_size = rec_refresh,
	.close = rec_close,
};

static struct rec *rec_new(struct tp_dev *inner, bool owns, struct evlog *log, int id,
			   bool generic)
{
	struct rec *r = calloc(1, sizeof(*r));
	REQ(r != NULL, "out of memory");
	r->dev.ops = generic ? &rec_generic_ops : &rec_ops;
	r->dev.size = inner->size;
	r->dev.align = 1;
	snprintf(r->dev.name, sizeof(r->dev.name), "rec%d", id);
	r->inner = inner;
	r->owns_inner = owns;
	r->log = log;
	r->id = id;
	return r;
}

static struct evlog *log_new(void)
{
	struct evlog *l = calloc(1, sizeof(*l));
	REQ(l != NULL, "out of memory");
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cv, NULL);
	return l;
}

static void log_free(struct evlog *l)
{
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cv);
	free(l);
}

static struct tp_dev *mem_dev(uint64_t size)
{
	struct tp_dev *d;
	REQ0(tp_dev_open_mem(size, &d));
	return d;
}

/* ---- the devices' vectored write ---- */

static void check_pwritev(struct tp_dev *d)
{
	uint8_t a[4096], b[1000], c[3096], back[8192];
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 4);
	mu_fill(&rng, a, sizeof(a));
	mu_fill(&rng, b, sizeof(b));
	mu_fill(&rng, c, sizeof(c));
	struct iovec iov[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
	struct tp_io_counters before = tp_dev_ctr(d);
	REQ0(tp_dev_pwritev(d, iov, 3, 8192, 0));
	REQ0(tp_dev_pwritev(d, iov, 1, 65536, TP_WRITE_DSYNC));
	REQ(tp_dev_ctr(d).writes == before.writes + 2 && tp_dev_ctr(d).bytes_written == before.bytes_written + 12288,
	    "%s: %" PRIu64 " writes, %" PRIu64 " bytes", d->name, tp_dev_ctr(d).writes - before.writes,
	    tp_dev_ctr(d).bytes_written - before.bytes_written);
	REQ(tp_dev_ctr(d).flushes == before.flushes + 1, "%s: a DSYNC write counts as a flush", d->name);
	REQ0(tp_dev_pread(d, back, sizeof(back), 8192));
	REQ(!memcmp(back, a, sizeof(a)) && !memcmp(back + 4096, b, sizeof(b)) &&
		    !memcmp(back + 5096, c, sizeof(c)),
	    "%s: the buffers did not land back to back", d->name);
	REQ0(tp_dev_pread(d, back, 4096, 65536));
	REQ(!memcmp(back, a, 4096), "%s: the DSYNC write did not land", d->name);
	int r = tp_dev_pwritev(d, iov, 3, d->size - 4096, 0);
	REQ(r == -EINVAL, "%s: a vector past the end gave %d", d->name, r);
	struct iovec many[TP_DEV_IOV_MAX + 1];
	for (int i = 0; i <= TP_DEV_IOV_MAX; i++)
		many[i] = (struct iovec){a, 1};
	r = tp_dev_pwritev(d, many, TP_DEV_IOV_MAX + 1, 0, 0);
	REQ(r == -EINVAL, "%s: %d buffers gave %d", d->name, TP_DEV_IOV_MAX + 1, r);
	REQ0(tp_dev_pwritev(d, many, TP_DEV_IOV_MAX, 0, 0));
}

START_TEST(test_dev_pwritev)
{
	su_set_ctx("dev_pwritev", 0);
	struct tp_dev *d = mem_dev(1 << 20);
	check_pwritev(d);
	tp_dev_close(d);

	char dir[256], path[300];
	REQ0(mu_mkdtemp(dir, sizeof(dir), "commit_io"));
	snprintf(path, sizeof(path), "%s/dev", dir);
	REQ0(tp_dev_open_file(path, TP_DEV_CREATE, 1 << 20, &d));
	REQ(d->caps & TP_DEV_CAP_ASYNC_FLUSH, "a file device can flush on another thread");
	check_pwritev(d);
	tp_dev_close(d);
	REQ0(tp_dev_open_file(path, TP_DEV_RDONLY, 0, &d));
	uint8_t x[16] = {0};
	struct iovec one = {x, sizeof(x)};
	int r = tp_dev_pwritev(d, &one, 1, 0, 0);
	REQ(r == -EROFS, "a read-only file took a vectored write: %d", r);
	tp_dev_close(d);
	mu_rmtree(dir);
}
END_TEST

/* ---- a seeded workload ---- */

/* Map N random virtual blocks of thin DEV (creating it if needed) to fresh
 * data blocks. */
static void map_random(struct tmd *md, uint64_t dev, struct mu_rng *rng, unsigned n)
{
	bool exists;
	REQ0(tmd_device_exists(md, dev, &exists));
	if (!exists)
		REQ0(tmd_create_thin(md, dev));
	for (unsigned i = 0; i < n; i++) {
		uint64_t b;
		REQ0(tmd_alloc_data_block(md, &b));
		REQ0(tmd_insert(md, dev, mu_below(rng, 1u << 20), b));
	}
}

static struct tmd *format(struct tp_dev *meta, struct tp_dev *data)
{
	struct tmd_open_args a = {.meta = meta, .data = data};
	struct tmd *md;
	char err[256];
	int r = tmd_format(&a, 128, DATA_BLOCKS, &md, err, sizeof(err));
	REQ(r == 0, "format: %s", err);
	return md;
}

/* ---- commit ordering and coalescing ---- */

/* Check the log of one commit (plus the writes before it, from FIRST_COMMIT
 * on the commit's own): every metadata block write is durable before the
 * superblock's (a DSYNC write, or a flush after it), the superblock is one
 * DSYNC block written last and after the data flush returned; with SORTED,
 * the commit's block writes are in location order and maximally coalesced.
 * Returns the number of metadata flushes. */
static unsigned check_commit_log(struct evlog *log, size_t first_commit, bool sorted,
				 unsigned round)
{
	size_t sb = SIZE_MAX, data_flush_end = SIZE_MAX, last_unsynced = SIZE_MAX;
	size_t last_flush = SIZE_MAX;
	unsigned meta_flushes = 0, calls = 0;
	uint64_t blocks = 0, last_end = 0;
	for (size_t i = 0; i < log->nr; i++) {
		struct ev *e = &log->ev[i];
		if (e->dev == 1) {
			if (e->kind == EV_FLUSH_END)
				data_flush_end = i;
			REQ(e->kind != EV_WRITE, "the commit wrote to the data device");
			continue;
		}
		if (e->kind == EV_FLUSH_END) {
			meta_flushes++;
			last_flush = i;
			continue;
		}
		if (e->kind != EV_WRITE)
			continue;
		if (e->off == 0 && i >= first_commit) {
			REQ(sb == SIZE_MAX, "round %u: the superblock was written twice", round);
			sb = i;
			REQ(e->len == TP_BLOCK_SIZE && e->dsync,
			    "round %u: the superblock write is %" PRIu64 " bytes, dsync %d", round,
			    e->len, e->dsync);
			continue;
		}
		REQ(sb == SIZE_MAX, "round %u: block at %" PRIu64 " written after the superblock",
		    round, e->off);
		if (!e->dsync)
			last_unsynced = i;
		if (i < first_commit || !sorted)
			continue;
		/* strictly ascending, and never adjacent to the previous run:
		 * adjacent blocks belong in the same write */
		REQ(calls == 0 || e->off > last_end,
		    "round %u: write at %" PRIu64 " after one ending at %" PRIu64
		    " (not sorted, or not coalesced)",
		    round, e->off, last_end);
		REQ(e->len % TP_BLOCK_SIZE == 0 && (uint64_t)e->bufs == e->len / TP_BLOCK_SIZE,
		    "round %u: a write of %" PRIu64 " bytes in %d buffers", round, e->len, e->bufs);
		last_end = e->off + e->len;
		calls++;
		blocks += e->len / TP_BLOCK_SIZE;
	}
	REQ(sb != SIZE_MAX && sb == log->nr - 1, "round %u: the superblock is not the last write",
	    round);
	REQ(last_unsynced == SIZE_MAX || (last_flush != SIZE_MAX && last_flush > last_unsynced &&
					  last_flush < sb),
	    "round %u: a metadata write (event %zu) is not flushed before the superblock", round,
	    last_unsynced);
	REQ(meta_flushes <= 1, "round %u: %u metadata flushes", round, meta_flushes);
	REQ(data_flush_end < sb, "round %u: the superblock was written before the data flush ended",
	    round);
	if (sorted)
		REQ(blocks > 1 && calls < blocks,
		    "round %u: %" PRIu64 " blocks in %u writes: nothing coalesced", round, blocks,
		    calls);
	return meta_flushes;
}

START_TEST(test_commit_order_and_coalescing)
{
	su_set_ctx("commit_order", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	unsigned flushed = 0, synced = 0;
	/* the default cache (nothing evicted: the commit writes everything)
	 * and a 16-block one (blocks written back early must be flushed) */
	for (int tiny = 0; tiny < 2; tiny++) {
		struct evlog *log = log_new();
		struct rec *meta = rec_new(mem_dev(META_BYTES), true, log, 0, false);
		struct rec *data = rec_new(mem_dev(1ull << 20), true, log, 1, false);
		struct tmd_open_args a = {.meta = &meta->dev, .data = &data->dev,
					  .cache_blocks = tiny ? 16 : 0};
		struct tmd *md;
		char err[256];
		REQ(tmd_format(&a, 128, DATA_BLOCKS, &md, err, sizeof(err)) == 0, "format: %s", err);
		unsigned n = tiny ? 2000 : (unsigned)mu_scaled(3000, 500);
		for (unsigned round = 0; round < 4; round++) {
			su_set_ctx("commit_order", (uint64_t)tiny * 10 + round);
			log->nr = 0;
			/* round 3: a handful, which fit in one run */
			map_random(md, 1 + round % 2, &rng, round == 3 ? 3 : n);
			size_t first_commit = log->nr;
			REQ0(tmd_commit(md));
			if (check_commit_log(log, first_commit, !tiny, round))
				flushed++;
			else
				synced++;
		}
		REQ0(tmd_close(md));
		tp_dev_close(&meta->dev);
		tp_dev_close(&data->dev);
		log_free(log);
	}
	/* both ways to make the blocks durable were taken */
	REQ(flushed && synced, "%u commits flushed, %u wrote one DSYNC run", flushed, synced);
}
END_TEST

/* ---- the data flush runs alongside the metadata writes ---- */

struct commit_arg {
	struct tmd *md;
	struct rec *data;
	int r;
};

static void *commit_main(void *p)
{
	struct commit_arg *a = p;
	a->data->committer = pthread_self();
	a->r = tmd_commit(a->md);
	return NULL;
}

START_TEST(test_data_flush_overlaps)
{
	su_set_ctx("data_flush_overlaps", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 1);
	struct evlog *log = log_new();
	struct rec *meta = rec_new(mem_dev(META_BYTES), true, log, 0, false);
	struct rec *data = rec_new(mem_dev(1ull << 20), true, log, 1, false);
	struct tmd *md = format(&meta->dev, &data->dev);
	map_random(md, 1, &rng, 500);
	data->dev.caps = TP_DEV_CAP_ASYNC_FLUSH;
	data->gate = true;
	log->nr = 0;
	log->meta_durable = 0;

	/* The committing thread sets COMMITTER itself; the gate compares it. */
	struct commit_arg a = {md, data, 0};
	pthread_t t;
	REQ(pthread_create(&t, NULL, commit_main, &a) == 0, "pthread_create");
	pthread_join(t, NULL);
	REQ0(a.r);
	REQ(!data->inline_flush,
	    "the data flush ran on the committing thread: the metadata writes waited for it");
	size_t data_begin = SIZE_MAX, data_end = SIZE_MAX, first_meta = SIZE_MAX, sb = SIZE_MAX;
	for (size_t i = 0; i < log->nr; i++) {
		struct ev *e = &log->ev[i];
		if (e->dev == 1 && e->kind == EV_FLUSH_BEGIN)
			data_begin = i;
		if (e->dev == 1 && e->kind == EV_FLUSH_END)
			data_end = i;
		if (e->dev == 0 && e->kind == EV_WRITE && e->off && first_meta == SIZE_MAX)
			first_meta = i;
		if (e->dev == 0 && e->kind == EV_WRITE && e->off == 0)
			sb = i;
	}
	REQ(data_begin != SIZE_MAX && first_meta != SIZE_MAX && sb != SIZE_MAX,
	    "missing IO: data flush %zu, metadata write %zu, superblock %zu", data_begin, first_meta,
	    sb);
	REQ(first_meta < data_end, "no metadata write while the data flush was pending");
	REQ(data_end < sb, "superblock written before the data flush returned");
	data->gate = false;
	REQ0(tmd_close(md));
	tp_dev_close(&meta->dev);
	tp_dev_close(&data->dev);
	log_free(log);
}
END_TEST

/* ---- the same bytes with and without a vectored write ---- */

START_TEST(test_image_identical)
{
	su_set_ctx("image_identical", 0);
	struct evlog *log = log_new();
	struct tp_dev *img[2];
	for (int v = 0; v < 2; v++) {
		struct mu_rng rng;
		mu_rng_init(&rng, su_seed ^ 2);
		img[v] = mem_dev(META_BYTES);
		struct rec *meta = rec_new(img[v], false, log, 0, v == 1);
		struct tmd *md = format(&meta->dev, NULL);
		for (unsigned round = 0; round < 4; round++) {
			map_random(md, 1 + round % 3, &rng, 800);
			if (round == 2)
				REQ0(tmd_create_snap(md, 7, 1));
			log->nr = 0;
			REQ0(tmd_commit(md));
		}
		REQ0(tmd_close(md));
		tp_dev_close(&meta->dev);
	}
	uint8_t *a = malloc(TP_BLOCK_SIZE), *b = malloc(TP_BLOCK_SIZE);
	REQ(a && b, "out of memory");
	for (uint64_t off = 0; off < META_BYTES; off += TP_BLOCK_SIZE) {
		REQ0(tp_dev_pread(img[0], a, TP_BLOCK_SIZE, off));
		REQ0(tp_dev_pread(img[1], b, TP_BLOCK_SIZE, off));
		REQ(memcmp(a, b, TP_BLOCK_SIZE) == 0,
		    "metadata block %" PRIu64 " differs between vectored and per-block writes",
		    off / TP_BLOCK_SIZE);
	}
	free(a);
	free(b);
	tp_dev_close(img[0]);
	tp_dev_close(img[1]);
	log_free(log);
}
END_TEST

/* ---- power cut at every write of a commit ---- */

struct mapping_list {
	uint64_t *v;
	size_t nr, cap;
};

static int collect(void *ctx, uint64_t vblock, uint64_t data_block, uint32_t time)
{
	struct mapping_list *l = ctx;
	(void)time;
	if (l->nr == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * 2 * sizeof(*l->v));
		if (!l->v)
			return -ENOMEM;
	}
	l->v[2 * l->nr] = vblock;
	l->v[2 * l->nr + 1] = data_block;
	l->nr++;
	return 0;
}

static void snapshot_mappings(struct tmd *md, struct mapping_list *out)
{
	memset(out, 0, sizeof(*out));
	REQ0(tmd_walk_mappings(md, 1, collect, out));
}

static bool same(const struct mapping_list *a, const struct mapping_list *b)
{
	return a->nr == b->nr && !memcmp(a->v, b->v, a->nr * 2 * sizeof(*a->v));
}

static void count_check_fault(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "  check: %s\n", msg);
}

/* Run the seeded workload on META: commit state A, then the changes of B.
 * CUT: 0 = commit B normally, else cut power after B's commit's CUT-th
 * write (SKIP_FLUSH: the cut also stops the flush after it). The commit
 * writes counted in *WRITES; the mappings of A and of B in *A and *B. */
static void run_cut(struct tp_dev *inner, uint64_t cut, bool skip_flush, uint64_t *writes,
		    struct mapping_list *ma, struct mapping_list *mb)
{
	struct evlog *log = log_new();
	/* the fault device owns REC, which leaves INNER alone when closed */
	struct rec *borrow = rec_new(inner, false, log, 0, false);
	struct tp_dev *fdev;
	struct tp_fault *f;
	REQ0(tp_fault_wrap(&borrow->dev, &fdev, &f));
	tp_fault_set_volatile(f, 1);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 3);
	struct tmd *md = format(fdev, NULL);
	map_random(md, 1, &rng, 1500);
	REQ0(tmd_commit(md));
	snapshot_mappings(md, ma);
	map_random(md, 1, &rng, 1500);
	snapshot_mappings(md, mb);
	uint64_t before = tp_fault_writes_seen(f);
	if (cut) {
		tp_fault_cut_skips_flush(f, skip_flush);
		tp_fault_cut_after(f, cut);
	}
	(void)tmd_commit(md); /* a cut write is dropped silently: the commit "succeeds" */
	*writes = tp_fault_writes_seen(f) - before;
	tp_fault_crash(f);
	tmd_close_nocommit(md);
	tp_dev_close(fdev);
	log_free(log);
}

START_TEST(test_power_cut_every_commit_write)
{
	su_set_ctx("power_cut", 0);
	uint64_t writes;
	struct mapping_list a, b;
	struct tp_dev *inner = mem_dev(META_BYTES);
	run_cut(inner, 0, false, &writes, &a, &b);
	tp_dev_close(inner);
	REQ(writes >= 3, "the commit wrote %" PRIu64 " times", writes);
	REQ(!same(&a, &b), "the workload did not change the mappings");
	unsigned saw_a = 0, saw_b = 0;
	for (uint64_t k = 1; k <= writes; k++)
		for (int skip = 0; skip < 2; skip++) {
			su_set_ctx("power_cut", k * 2 + (uint64_t)skip);
			struct mapping_list ca, cb, got;
			uint64_t w;
			inner = mem_dev(META_BYTES);
			run_cut(inner, k, skip, &w, &ca, &cb);
			REQ(same(&ca, &a) && same(&cb, &b), "the seeded workload is not repeatable");
			struct tcheck_opts o = {0};
			unsigned errors = 0;
			REQ0(tcheck_run(inner, &o, count_check_fault, NULL, &errors));
			REQ(errors == 0, "cut after write %" PRIu64 "/%" PRIu64 " (skip flush %d): %u check errors",
			    k, writes, skip, errors);
			struct tmd_open_args oa = {.meta = inner};
			struct tmd *md;
			char err[256];
			int r = tmd_open(&oa, &md, err, sizeof(err));
			REQ(r == 0, "cut after write %" PRIu64 ": reopen: %s", k, err);
			snapshot_mappings(md, &got);
			bool is_a = same(&got, &a), is_b = same(&got, &b);
			REQ(is_a || is_b,
			    "cut after write %" PRIu64 "/%" PRIu64 " (skip flush %d): %zu mappings, "
			    "neither the last commit (%zu) nor the new one (%zu)",
			    k, writes, skip, got.nr, a.nr, b.nr);
			saw_a += is_a;
			saw_b += is_b;
			tmd_close_nocommit(md);
			tp_dev_close(inner);
			free(ca.v);
			free(cb.v);
			free(got.v);
		}
	/* the superblock is the last write: cut before it, the old state */
	REQ(saw_a > 0 && saw_b > 0, "states seen: %u old, %u new", saw_a, saw_b);
	free(a.v);
	free(b.v);
}
END_TEST

static Suite *commit_io_suite(void)
{
	Suite *s = suite_create("commit_io");
	TCase *tc = tcase_create("commit");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_dev_pwritev);
	tcase_add_test(tc, test_commit_order_and_coalescing);
	tcase_add_test(tc, test_data_flush_overlaps);
	tcase_add_test(tc, test_image_identical);
	tcase_add_test(tc, test_power_cut_every_commit_write);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_commit_io", commit_io_suite);
}
