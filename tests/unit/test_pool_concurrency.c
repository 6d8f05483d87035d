/* Concurrent IO on one pool: the bio-prison guarantees of dm-thin
 * (one provisioner or copier per block, readers never see a half-remapped
 * block) and a seeded mixed load checked byte for byte, then the metadata
 * checked by thin_check and an independent walker.
 *
 *  (a) threads writing 4 KiB each into the same unprovisioned block (of one
 *      thin, or of two thins) provision it exactly once; nobody's data is
 *      lost to the zeroing of the block;
 *  (b) the same into a shared block: exactly one copy per device, the
 *      other device's data unchanged;
 *  (c) readers of a block while a writer breaks its sharing see the whole
 *      old or the whole new 4 KiB, never a mix;
 *  (d) random mixed load (writes, reads, discards, flushes, snapshots,
 *      status and commits) on several thins, each thread checking its own
 *      disjoint regions;
 *  (e) reads and overwrites of provisioned blocks while the data device
 *      grows (files and memory);
 *  (f) the fast path of reads and overwrites of provisioned blocks (no
 *      commit barrier, no md_mutex) against discards, snapshots taken and
 *      deleted, thins deleted and commits: every thread's pages read back
 *      as written, a snapshot holds for every page a write between the
 *      last one completed before it and the last one started after it;
 *      and that path completes while another thread holds md_mutex;
 *  (g) seeded overwrites and reads of provisioned blocks while a commit is
 *      stopped inside its IO (a metadata device that holds its writes until
 *      the test lets them go): they complete, and read back as written,
 *      then and after a reopen.
 *
 * Thread interleavings are not reproducible; the op sequences are
 * (THINP_SEED). Built with -fsanitize=thread by `make tsan`. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dev.h"
#include "model_util.h"
#include "pool_util.h"
#include "support/dev_hold.h"
#include "thin/check.h"
#include "thin/pool_internal.h"
#include "thinp.h"

#define KiB          1024ull
#define MiB          (1024ull * KiB)
#define K4           (4 * KiB)
#define DEFAULT_SEED 0x636f6e63ull /* "conc" */

/* Worker threads never assert: the first failure is recorded, everyone
 * stops, and the main thread reports it after the join. */
static pthread_mutex_t g_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_fail[512];
static int g_stop; /* atomic */

static void tfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tfail(const char *fmt, ...)
{
	pthread_mutex_lock(&g_fail_lock);
	if (!g_fail[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g_fail, sizeof(g_fail), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&g_fail_lock);
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
}

static bool stopped(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_ACQUIRE);
}

static void check_no_thread_failure(void)
{
	pthread_mutex_lock(&g_fail_lock);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", g_fail);
	pthread_mutex_unlock(&g_fail_lock);
	REQ(!msg[0], "%s", msg);
}

/* ---- a pool on sparse files ---- */

static void env_open(struct pu_env *e, uint32_t block_sectors, uint64_t nr_data_blocks,
                     const struct thinp_pool_opts *opts)
{
	struct thinp_pool_opts o = { 0 };
	if (opts)
		o = *opts;
	if (!o.commit_interval_ms)
		o.commit_interval_ms = 20; /* commits race with the IO */
	o.no_space_timeout_ms = 5000;      /* never expected; bounds a bug */
	pu_env_open(e, block_sectors, nr_data_blocks, 16 * MiB, &o, false);
}

static void env_reopen(struct pu_env *e)
{
	REQ0(thinp_pool_close(e->p));
	REQ0(tp_dev_open_file(e->data_path, 0, 0, &e->data));
	REQ0(tp_dev_open_file(e->meta_path, 0, 0, &e->meta));
	char err[512] = "";
	int r = thinp_pool_open(e->data, e->meta, &e->o, &e->p, err, sizeof(err));
	REQ(r == 0, "reopen: %d %s", r, err);
}

static void report_fault(void *c, const char *msg)
{
	char *acc = c;
	size_t n = strlen(acc);
	if (n < 1500)
		snprintf(acc + n, 2048 - n, "%s\n", msg);
}

/* Close the pool, then check the metadata: thin_check (if installed), the
 * library's checker and the independent walker of model_util.c. */
static void env_close_and_check(struct pu_env *e)
{
	REQ0(thinp_pool_close(e->p));
	e->p = NULL;
	char prog[PATH_MAX];
	if (mu_find_prog("thin_check", prog, sizeof(prog))) {
		char cmd[3 * PATH_MAX], out[4096];
		snprintf(cmd, sizeof(cmd), "'%s' '%s'", prog, e->meta_path);
		int st = mu_run(cmd, out, sizeof(out));
		REQ(st == 0, "thin_check exited %d:\n%s", st, out);
	} else {
		fprintf(stderr, "note: thin_check not installed; only the built-in checks ran\n");
	}
	struct tp_dev *d;
	REQ0(tp_dev_open_file(e->meta_path, TP_DEV_RDONLY, 0, &d));
	char faults[2048] = "";
	unsigned nerr = 0;
	struct tcheck_opts co = { 0 };
	int r = tcheck_run(d, &co, report_fault, faults, &nerr);
	REQ(r == 0 && nerr == 0, "tcheck_run = %d, %u faults:\n%s", r, nerr, faults);
	char err[1024] = "";
	struct mu_thin_summary sum;
	r = mu_check_thin(d, NULL, NULL, &sum, err, sizeof(err));
	tp_dev_close(d);
	REQ(r == 0, "independent metadata check: %s", err);
}

static uint64_t used_blocks(struct pu_env *e)
{
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e->p, true, &st));
	return st.used_data_blocks;
}

/* 4 KiB pages tagged word by word: (tag << 20 | word index), so a page
 * mixing two writes is detected. */
static void fill_page(uint8_t *p, uint64_t tag)
{
	for (unsigned i = 0; i < K4 / 8; i++) {
		uint64_t v = (tag << 20) | i;
		memcpy(p + 8 * i, &v, 8);
	}
}

/* Tag of a consistent page, or UINT64_MAX for a torn one. */
static uint64_t page_tag(const uint8_t *p)
{
	uint64_t v0;
	memcpy(&v0, p, 8);
	uint64_t tag = v0 >> 20;
	for (unsigned i = 0; i < K4 / 8; i++) {
		uint64_t v;
		memcpy(&v, p + 8 * i, 8);
		if (v != ((tag << 20) | i))
			return UINT64_MAX;
	}
	return tag;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- (a) one unprovisioned block, many writers ---- */

#define NT 8

struct same_block {
	struct pu_env *e;
	struct thinp_thin *t[NT];
	pthread_barrier_t bar;
	uint64_t rounds; /* blocks */
	unsigned variant;
	unsigned cls_count[NT][THINP_NR_CLASSES];
};

struct targ {
	void *shared;
	unsigned id;
	pthread_t th;
};

/* Blocks are written in batches: after a barrier each thread writes its own
 * page into every block of the batch, in its own random order, so that
 * several threads keep meeting on the same blocks. */
#define BATCH 16

static void *same_block_main(void *arg)
{
	struct targ *a = arg;
	struct same_block *sb = a->shared;
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed * 977 + a->id);
	uint8_t page[K4];
	for (uint64_t b0 = 0; b0 < sb->rounds; b0 += BATCH) {
		pthread_barrier_wait(&sb->bar);
		unsigned n = sb->rounds - b0 < BATCH ? (unsigned)(sb->rounds - b0) : BATCH;
		unsigned order[BATCH];
		for (unsigned j = 0; j < n; j++)
			order[j] = j;
		for (unsigned j = n; j > 1; j--) {
			unsigned k = (unsigned)mu_below(&rng, j), x = order[j - 1];
			order[j - 1] = order[k];
			order[k] = x;
		}
		for (unsigned j = 0; j < n && !stopped(); j++) {
			uint64_t b = b0 + order[j];
			fill_page(page, b * NT + a->id);
			struct thinp_io_result res;
			int rc = thinp_write(sb->t[a->id], page, K4, b * sb->e->B + a->id * K4, 0,
			                     &res);
			if (rc)
				tfail("thread %u block %" PRIu64 ": write returned %d", a->id, b,
				      rc);
			else
				sb->cls_count[a->id][res.cls]++;
		}
	}
	return NULL;
}

START_TEST(test_same_new_block)
{
	/* 0: one thin; 1: two thins, same vblock; 2: one thin, no zeroing */
	unsigned variant = (unsigned)_i;
	pu_ctx("same unprovisioned block, variant %u", variant);
	struct thinp_pool_opts o = { .skip_block_zeroing = variant == 2 };
	struct pu_env e;
	env_open(&e, 128, 512, &o);
	REQ0(thinp_create_thin(e.p, 1));
	REQ0(thinp_create_thin(e.p, 2));
	struct same_block sb = { .e = &e, .rounds = mu_scaled(64, 16), .variant = variant };
	unsigned ndev = variant == 1 ? 2 : 1;
	for (unsigned i = 0; i < NT; i++)
		REQ0(thinp_thin_open(e.p, 1 + (ndev == 2 ? i % 2 : 0), 0, &sb.t[i]));
	pthread_barrier_init(&sb.bar, NULL, NT);
	struct targ a[NT];
	for (unsigned i = 0; i < NT; i++) {
		a[i] = (struct targ){ .shared = &sb, .id = i };
		REQ(pthread_create(&a[i].th, NULL, same_block_main, &a[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < NT; i++)
		pthread_join(a[i].th, NULL);
	pthread_barrier_destroy(&sb.bar);
	check_no_thread_failure();

	uint64_t R = sb.rounds;
	uint64_t used = used_blocks(&e);
	REQ(used == R * ndev, "%" PRIu64 " blocks on %u thin(s) allocated %" PRIu64 " blocks", R,
	    ndev, used);
	unsigned prov = 0, over = 0;
	enum thinp_class pc = variant == 2 ? THINP_WRITE_PROVISION : THINP_WRITE_PROVISION_ZERO;
	for (unsigned i = 0; i < NT; i++) {
		prov += sb.cls_count[i][pc];
		over += sb.cls_count[i][THINP_WRITE_OVERWRITE];
	}
	REQ(prov == R * ndev && over == R * (NT - ndev),
	    "%u provisions and %u overwrites, expected %" PRIu64 " and %" PRIu64, prov, over,
	    R * ndev, R * (NT - ndev));
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(e.p, st);
	REQ(st[pc].ops == R * ndev && st[THINP_WRITE_OVERWRITE].ops == R * (NT - ndev),
	    "pool stats: %" PRIu64 " provisions, %" PRIu64 " overwrites", st[pc].ops,
	    st[THINP_WRITE_OVERWRITE].ops);
	/* every thread's page is there, the rest of each block is zero */
	uint8_t *blk = malloc(e.B);
	REQ(blk != NULL, "out of memory");
	for (uint64_t r = 0; r < R; r++) {
		for (unsigned d = 0; d < ndev; d++) {
			struct thinp_thin *t = sb.t[d];
			REQ0(thinp_read(t, blk, e.B, r * e.B, NULL));
			for (unsigned i = 0; i < NT; i++) {
				bool mine = ndev == 1 || i % 2 == d;
				uint8_t *pg = blk + i * K4;
				if (mine)
					REQ(page_tag(pg) == r * NT + i,
					    "round %" PRIu64 " thin %u: page %u holds tag %" PRIu64
					    ", expected %" PRIu64,
					    r, d + 1, i, page_tag(pg), r * NT + i);
				else
					REQ(all_zero(pg, K4),
					    "round %" PRIu64 " thin %u: page %u not zero", r, d + 1,
					    i);
			}
			REQ(all_zero(blk + NT * K4, e.B - NT * K4),
			    "round %" PRIu64 " thin %u: unwritten tail not zero", r, d + 1);
		}
	}
	free(blk);
	for (unsigned i = 0; i < NT; i++)
		thinp_thin_close(sb.t[i]);
	env_close_and_check(&e);
}
END_TEST

/* ---- (b) one shared block, many writers ---- */

START_TEST(test_same_shared_block)
{
	/* 0: all on the origin; 1: all on the snapshot; 2: half and half */
	unsigned variant = (unsigned)_i;
	pu_ctx("same shared block, variant %u", variant);
	struct pu_env e;
	env_open(&e, 128, 1024, NULL);
	REQ0(thinp_create_thin(e.p, 1));
	uint64_t R = mu_scaled(64, 16);
	struct thinp_thin *o1;
	REQ0(thinp_thin_open(e.p, 1, 0, &o1));
	/* the origin's blocks: every page tagged 1000000 + block*64 + page */
	uint8_t *blk = malloc(e.B);
	REQ(blk != NULL, "out of memory");
	for (uint64_t r = 0; r < R; r++) {
		for (unsigned pg = 0; pg < e.B / K4; pg++)
			fill_page(blk + pg * K4, 1000000 + r * 64 + pg);
		REQ0(thinp_write(o1, blk, e.B, r * e.B, 0, NULL));
	}
	REQ0(thinp_create_snap(e.p, 2, 1));
	REQ(used_blocks(&e) == R, "used %" PRIu64, used_blocks(&e));
	thinp_pool_stats_reset(e.p);

	struct same_block sb = { .e = &e, .rounds = R, .variant = variant };
	for (unsigned i = 0; i < NT; i++) {
		uint64_t id = variant == 0 ? 1 : variant == 1 ? 2 : 1 + i % 2;
		REQ0(thinp_thin_open(e.p, id, 0, &sb.t[i]));
	}
	pthread_barrier_init(&sb.bar, NULL, NT);
	struct targ a[NT];
	for (unsigned i = 0; i < NT; i++) {
		a[i] = (struct targ){ .shared = &sb, .id = i };
		REQ(pthread_create(&a[i].th, NULL, same_block_main, &a[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < NT; i++)
		pthread_join(a[i].th, NULL);
	pthread_barrier_destroy(&sb.bar);
	check_no_thread_failure();

	unsigned ndev = variant == 2 ? 2 : 1;
	/* one copy per written device and block; with both devices written the
	 * second copy frees the original (+1 -1), so used is 2R either way */
	uint64_t used = used_blocks(&e);
	REQ(used == 2 * R, "used %" PRIu64 " blocks, expected %" PRIu64, used, 2 * R);
	unsigned cow = 0, over = 0;
	for (unsigned i = 0; i < NT; i++) {
		cow += sb.cls_count[i][THINP_WRITE_COW];
		over += sb.cls_count[i][THINP_WRITE_OVERWRITE];
	}
	REQ(cow == R * ndev && over == R * (NT - ndev),
	    "%u CoWs and %u overwrites, expected %" PRIu64 " and %" PRIu64, cow, over, R * ndev,
	    R * (NT - ndev));
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(e.p, st);
	REQ(st[THINP_WRITE_COW].ops == R * ndev &&
	            st[THINP_WRITE_COW].data_bytes_read == R * ndev * e.B,
	    "pool stats: %" PRIu64 " CoWs reading %" PRIu64 " bytes", st[THINP_WRITE_COW].ops,
	    st[THINP_WRITE_COW].data_bytes_read);
	struct thinp_thin *s2;
	REQ0(thinp_thin_open(e.p, 2, 0, &s2));
	struct thinp_thin *dev[2] = { o1, s2 };
	for (uint64_t r = 0; r < R; r++) {
		for (unsigned d = 0; d < 2; d++) {
			REQ0(thinp_read(dev[d], blk, e.B, r * e.B, NULL));
			for (unsigned pg = 0; pg < e.B / K4; pg++) {
				bool written =
				        pg < NT && (variant == 2 ? pg % 2 == d : variant == d);
				uint64_t want = written ? r * NT + pg : 1000000 + r * 64 + pg;
				REQ(page_tag(blk + pg * K4) == want,
				    "round %" PRIu64 " thin %u page %u: tag %" PRIu64
				    ", expected %" PRIu64,
				    r, d + 1, pg, page_tag(blk + pg * K4), want);
			}
		}
	}
	free(blk);
	for (unsigned i = 0; i < NT; i++)
		thinp_thin_close(sb.t[i]);
	thinp_thin_close(o1);
	thinp_thin_close(s2);
	env_close_and_check(&e);
}
END_TEST

/* ---- (c) readers racing a CoW ---- */

#define NREADERS 6

struct race {
	struct pu_env *e;
	struct thinp_thin *origin;
	struct thinp_thin *snap[NREADERS]; /* reopened per round by the main thread */
	pthread_barrier_t start, end;
	uint64_t rounds;
	int writer_done;                    /* atomic */
	uint64_t page_off;                  /* the page readers read */
	uint64_t reads, old_seen, new_seen; /* atomics */
};

static void *race_writer(void *arg)
{
	struct targ *a = arg;
	struct race *rc = a->shared;
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed ^ 0x77);
	uint8_t *blk = malloc(rc->e->B);
	if (!blk) {
		tfail("out of memory");
		return NULL;
	}
	for (uint64_t r = 1; r <= rc->rounds; r++) {
		pthread_barrier_wait(&rc->start);
		if (!stopped()) {
			/* a partial CoW (copy then write) or a whole-block one */
			bool whole = mu_pct(&rng, 30);
			int x;
			if (whole) {
				for (unsigned pg = 0; pg < rc->e->B / K4; pg++)
					fill_page(blk + pg * K4, r);
				x = thinp_write(rc->origin, blk, rc->e->B, 0, 0, NULL);
			} else {
				fill_page(blk, r);
				x = thinp_write(rc->origin, blk, K4, rc->page_off, 0, NULL);
			}
			if (x)
				tfail("round %" PRIu64 ": CoW write returned %d", r, x);
		}
		__atomic_store_n(&rc->writer_done, 1, __ATOMIC_RELEASE);
		pthread_barrier_wait(&rc->end);
	}
	free(blk);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct targ *a = arg;
	struct race *rc = a->shared;
	uint8_t page[K4];
	for (uint64_t r = 1; r <= rc->rounds; r++) {
		pthread_barrier_wait(&rc->start);
		/* half the readers read the origin, half the snapshot */
		bool on_snap = a->id % 2;
		struct thinp_thin *t = on_snap ? rc->snap[a->id] : rc->origin;
		for (unsigned n = 0; !stopped(); n++) {
			bool last = __atomic_load_n(&rc->writer_done, __ATOMIC_ACQUIRE) && n >= 4;
			int x = thinp_read(t, page, K4, rc->page_off, NULL);
			if (x) {
				tfail("round %" PRIu64 ": read returned %d", r, x);
				break;
			}
			uint64_t tag = page_tag(page);
			__atomic_fetch_add(&rc->reads, 1, __ATOMIC_RELAXED);
			if (tag == UINT64_MAX) {
				tfail("round %" PRIu64 ": reader %u (%s) saw a torn page", r, a->id,
				      on_snap ? "snapshot" : "origin");
				break;
			}
			if (tag == r - 1) {
				__atomic_fetch_add(&rc->old_seen, 1, __ATOMIC_RELAXED);
			} else if (tag == r && !on_snap) {
				__atomic_fetch_add(&rc->new_seen, 1, __ATOMIC_RELAXED);
			} else {
				tfail("round %" PRIu64 ": reader %u (%s) saw tag %" PRIu64, r,
				      a->id, on_snap ? "snapshot" : "origin", tag);
				break;
			}
			if (last)
				break;
			/* the cells are reader-preferring rwlocks: without a pause,
			 * back-to-back readers starve the writer for a long time */
			sched_yield();
		}
		pthread_barrier_wait(&rc->end);
	}
	return NULL;
}

START_TEST(test_readers_during_cow)
{
	pu_ctx("readers during CoW");
	struct pu_env e;
	env_open(&e, 128, 256, NULL);
	REQ0(thinp_create_thin(e.p, 1));
	struct race rc = { .e = &e, .rounds = mu_scaled(150, 20), .page_off = 5 * K4 };
	REQ0(thinp_thin_open(e.p, 1, 0, &rc.origin));
	uint8_t *blk = malloc(e.B);
	REQ(blk != NULL, "out of memory");
	for (unsigned pg = 0; pg < e.B / K4; pg++)
		fill_page(blk + pg * K4, 0);
	REQ0(thinp_write(rc.origin, blk, e.B, 0, 0, NULL));
	pthread_barrier_init(&rc.start, NULL, NREADERS + 2);
	pthread_barrier_init(&rc.end, NULL, NREADERS + 2);
	struct targ w = { .shared = &rc, .id = 0 }, rd[NREADERS];
	REQ(pthread_create(&w.th, NULL, race_writer, &w) == 0, "pthread_create");
	for (unsigned i = 0; i < NREADERS; i++) {
		rd[i] = (struct targ){ .shared = &rc, .id = i };
		REQ(pthread_create(&rd[i].th, NULL, race_reader, &rd[i]) == 0, "pthread_create");
	}
	for (uint64_t r = 1; r <= rc.rounds; r++) {
		/* quiesced: snapshot the origin, so the next write must copy */
		int x = thinp_create_snap(e.p, 1000 + r, 1);
		if (x)
			tfail("round %" PRIu64 ": create_snap returned %d (%s)", r, x,
			      thinp_pool_error(e.p));
		for (unsigned i = 0; i < NREADERS; i++)
			if (!x && thinp_thin_open(e.p, 1000 + r, 0, &rc.snap[i]))
				tfail("round %" PRIu64 ": cannot open the snapshot", r);
		__atomic_store_n(&rc.writer_done, 0, __ATOMIC_RELEASE);
		pthread_barrier_wait(&rc.start);
		pthread_barrier_wait(&rc.end);
		for (unsigned i = 0; i < NREADERS; i++)
			thinp_thin_close(rc.snap[i]);
		/* drop the previous snapshot: the pool stays small */
		if (!x && r > 1 && thinp_delete_thin(e.p, 1000 + r - 1))
			tfail("round %" PRIu64 ": delete returned an error", r);
	}
	pthread_join(w.th, NULL);
	for (unsigned i = 0; i < NREADERS; i++)
		pthread_join(rd[i].th, NULL);
	pthread_barrier_destroy(&rc.start);
	pthread_barrier_destroy(&rc.end);
	check_no_thread_failure();
	printf("readers during CoW: %" PRIu64 " reads, %" PRIu64 " old, %" PRIu64 " new\n",
	       rc.reads, rc.old_seen, rc.new_seen);
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(e.p, st);
	REQ(st[THINP_WRITE_COW].ops + st[THINP_WRITE_COW_FULL].ops == rc.rounds,
	    "%" PRIu64 " + %" PRIu64 " CoWs in %" PRIu64 " rounds", st[THINP_WRITE_COW].ops,
	    st[THINP_WRITE_COW_FULL].ops, rc.rounds);
	REQ0(thinp_read(rc.origin, blk, K4, rc.page_off, NULL));
	REQ(page_tag(blk) == rc.rounds, "final page tag %" PRIu64, page_tag(blk));
	free(blk);
	thinp_thin_close(rc.origin);
	env_close_and_check(&e);
}
END_TEST

/* ---- (d) random mixed load ---- */

#define LT            6     /* load threads */
#define PRIV_BLOCKS   32ull /* private thin size, in blocks */
#define SHARED_BLOCKS 32ull /* the thin all threads share, in blocks */

struct load {
	struct pu_env *e;
	uint64_t ops;
	uint8_t *shared_model; /* pages of thin 1; page p belongs to thread p % LT */
	int workers_left;      /* atomic */
	uint64_t counts[LT][8];
};

struct lthread {
	struct load *L;
	unsigned id;
	pthread_t th;
	struct thinp_thin *shared, *priv, *snap;
	uint8_t *model, *snap_model;
	bool has_snap;
	uint64_t snap_id;
};

static uint64_t priv_id(unsigned i)
{
	return 10 + i;
}

static bool check_range(struct thinp_thin *t, const uint8_t *model, uint64_t off, uint64_t len,
                        const char *what, unsigned tid)
{
	uint8_t *buf = malloc(len);
	if (!buf) {
		tfail("out of memory");
		return false;
	}
	int r = thinp_read(t, buf, len, off, NULL);
	bool ok = r == 0 && memcmp(buf, model + off, len) == 0;
	if (!ok) {
		uint64_t i = 0;
		while (r == 0 && i < len && buf[i] == model[off + i])
			i++;
		tfail("thread %u: %s read of %" PRIu64 " bytes at %" PRIu64
		      " returned %d / differs at byte %" PRIu64,
		      tid, what, len, off, r, off + i);
	}
	free(buf);
	return ok;
}

static void *load_main(void *arg)
{
	struct lthread *lt = arg;
	struct load *L = lt->L;
	struct thinp_pool *p = L->e->p;
	const uint64_t B = L->e->B, psize = PRIV_BLOCKS * B;
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed * 131 + lt->id);
	uint8_t *buf = malloc(3 * B);
	if (!buf) {
		tfail("out of memory");
		goto out;
	}
	for (uint64_t op = 0; op < L->ops && !stopped(); op++) {
		uint64_t k = mu_below(&rng, 100);
		if (k < 30) { /* write the private thin */
			uint64_t len = (1 + mu_below(&rng, 3 * B / 512)) * 512;
			if (mu_pct(&rng, 15))
				len = B;
			uint64_t off = mu_below(&rng, (psize - len) / 512 + 1) * 512;
			if (mu_pct(&rng, 25))
				off = off / B * B;
			if (off + len > psize)
				off = psize - len;
			mu_fill(&rng, buf, len);
			int r = thinp_write(lt->priv, buf, len, off,
			                    mu_pct(&rng, 5) ? THINP_IO_FUA : 0, NULL);
			if (r) {
				tfail("thread %u: private write returned %d", lt->id, r);
				break;
			}
			memcpy(lt->model + off, buf, len);
			L->counts[lt->id][0]++;
		} else if (k < 45) { /* read the private thin */
			uint64_t len = (1 + mu_below(&rng, 3 * B / 512)) * 512;
			uint64_t off = mu_below(&rng, (psize - len) / 512 + 1) * 512;
			if (!check_range(lt->priv, lt->model, off, len, "private", lt->id))
				break;
			L->counts[lt->id][1]++;
		} else if (k < 65) { /* write an own page of the shared thin */
			uint64_t npages = SHARED_BLOCKS * B / K4;
			uint64_t pg = mu_below(&rng, npages / LT) * LT + lt->id;
			uint64_t a0 = mu_below(&rng, 8) * 512,
			         a1 = a0 + (1 + mu_below(&rng, 8 - a0 / 512)) * 512;
			uint64_t off = pg * K4 + a0, len = a1 - a0;
			mu_fill(&rng, buf, len);
			int r = thinp_write(lt->shared, buf, len, off, 0, NULL);
			if (r) {
				tfail("thread %u: shared write returned %d", lt->id, r);
				break;
			}
			memcpy(L->shared_model + off, buf, len);
			L->counts[lt->id][2]++;
		} else if (k < 73) { /* read an own page of the shared thin */
			uint64_t npages = SHARED_BLOCKS * B / K4;
			uint64_t pg = mu_below(&rng, npages / LT) * LT + lt->id;
			if (!check_range(lt->shared, L->shared_model, pg * K4, K4, "shared",
			                 lt->id))
				break;
			L->counts[lt->id][3]++;
		} else if (k < 80) { /* discard part of the private thin */
			uint64_t len = (1 + mu_below(&rng, 4 * B / 512)) * 512;
			uint64_t off = mu_below(&rng, (psize - len) / 512 + 1) * 512;
			if (mu_pct(&rng, 50))
				off = off / B * B;
			if (off + len > psize)
				off = psize - len;
			int r = thinp_discard(lt->priv, off, len, NULL);
			if (r) {
				tfail("thread %u: discard returned %d", lt->id, r);
				break;
			}
			/* only whole blocks are unmapped */
			uint64_t b0 = (off + B - 1) / B, b1 = (off + len) / B;
			for (uint64_t b = b0; b < b1; b++)
				memset(lt->model + b * B, 0, B);
			L->counts[lt->id][4]++;
		} else if (k < 84) {
			int r = thinp_flush(mu_pct(&rng, 50) ? lt->priv : lt->shared, NULL);
			if (r) {
				tfail("thread %u: flush returned %d", lt->id, r);
				break;
			}
		} else if (k < 88) { /* snapshot the private thin (quiesced: only we write it) */
			if (lt->has_snap) {
				thinp_thin_close(lt->snap);
				int r = thinp_delete_thin(p, lt->snap_id);
				if (r) {
					tfail("thread %u: delete returned %d", lt->id, r);
					lt->has_snap = false;
					break;
				}
			}
			lt->snap_id = 100 + lt->id * 1000 + op % 1000;
			lt->has_snap = false;
			int r = thinp_create_snap(p, lt->snap_id, priv_id(lt->id));
			if (!r)
				r = thinp_thin_open(p, lt->snap_id, psize, &lt->snap);
			if (r) {
				tfail("thread %u: snapshot returned %d (%s)", lt->id, r,
				      thinp_pool_error(p));
				break;
			}
			lt->has_snap = true;
			memcpy(lt->snap_model, lt->model, psize);
			L->counts[lt->id][5]++;
		} else if (lt->has_snap) { /* read (or write) the snapshot */
			uint64_t len = (1 + mu_below(&rng, 2 * B / 512)) * 512;
			uint64_t off = mu_below(&rng, (psize - len) / 512 + 1) * 512;
			if (mu_pct(&rng, 30)) {
				mu_fill(&rng, buf, len);
				int r = thinp_write(lt->snap, buf, len, off, 0, NULL);
				if (r) {
					tfail("thread %u: snapshot write returned %d", lt->id, r);
					break;
				}
				memcpy(lt->snap_model + off, buf, len);
			} else if (!check_range(lt->snap, lt->snap_model, off, len, "snapshot",
			                        lt->id)) {
				break;
			}
			L->counts[lt->id][6]++;
		}
	}
out:
	free(buf);
	__atomic_fetch_sub(&L->workers_left, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Status, stats, thin status lines and commits while the load runs. */
static void *monitor_main(void *arg)
{
	struct load *L = arg;
	struct thinp_pool *p = L->e->p;
	uint64_t n = 0;
	while (__atomic_load_n(&L->workers_left, __ATOMIC_ACQUIRE) > 0 && !stopped()) {
		char line[256];
		struct thinp_class_stats st[THINP_NR_CLASSES];
		int r = thinp_pool_status_line(p, n % 2, line, sizeof(line));
		if (r || strncmp(line, "0 ", 2) != 0) {
			tfail("monitor: status line returned %d: \"%s\"", r, r ? "" : line);
			break;
		}
		thinp_pool_stats(p, st);
		/* thins come and go (snapshots): errors are fine, crashes are not */
		(void)thinp_thin_status_line(p, priv_id((unsigned)(n % LT)), line, sizeof(line));
		(void)thinp_thin_status_line(p, 100 + (n % LT) * 1000 + n % 1000, line,
		                             sizeof(line));
		if (n % 8 == 0 && (r = thinp_pool_commit(p))) {
			tfail("monitor: commit returned %d", r);
			break;
		}
		n++;
		sched_yield();
	}
	return NULL;
}

START_TEST(test_random_load)
{
	pu_ctx("random load");
	struct pu_env e;
	env_open(&e, 128, 1024, NULL);
	const uint64_t B = e.B, psize = PRIV_BLOCKS * B;
	struct load L = { .e = &e, .ops = mu_scaled(1500, 200), .workers_left = LT };
	L.shared_model = calloc(1, SHARED_BLOCKS * B);
	REQ(L.shared_model != NULL, "out of memory");
	REQ0(thinp_create_thin(e.p, 1));
	struct lthread lt[LT];
	for (unsigned i = 0; i < LT; i++) {
		lt[i] = (struct lthread){ .L = &L, .id = i };
		REQ0(thinp_create_thin(e.p, priv_id(i)));
		REQ0(thinp_thin_open(e.p, 1, SHARED_BLOCKS * B, &lt[i].shared));
		REQ0(thinp_thin_open(e.p, priv_id(i), psize, &lt[i].priv));
		lt[i].model = calloc(1, psize);
		lt[i].snap_model = calloc(1, psize);
		REQ(lt[i].model && lt[i].snap_model, "out of memory");
	}
	pthread_t mon;
	for (unsigned i = 0; i < LT; i++)
		REQ(pthread_create(&lt[i].th, NULL, load_main, &lt[i]) == 0, "pthread_create");
	REQ(pthread_create(&mon, NULL, monitor_main, &L) == 0, "pthread_create");
	for (unsigned i = 0; i < LT; i++)
		pthread_join(lt[i].th, NULL);
	pthread_join(mon, NULL);
	check_no_thread_failure();
	uint64_t tot[8] = { 0 };
	for (unsigned i = 0; i < LT; i++)
		for (int k = 0; k < 8; k++)
			tot[k] += L.counts[i][k];
	printf("random load: %" PRIu64 " private writes, %" PRIu64 " reads, %" PRIu64
	       " shared writes, %" PRIu64 " reads, %" PRIu64 " discards, %" PRIu64
	       " snapshots, %" PRIu64 " snapshot IOs\n",
	       tot[0], tot[1], tot[2], tot[3], tot[4], tot[5], tot[6]);

	/* byte for byte, before and after a close/reopen */
	for (int pass = 0; pass < 2; pass++) {
		pu_ctx("random load: final check, pass %d", pass);
		struct thinp_thin *sh;
		REQ0(thinp_thin_open(e.p, 1, SHARED_BLOCKS * B, &sh));
		bool ok = check_range(sh, L.shared_model, 0, SHARED_BLOCKS * B, "final shared", LT);
		thinp_thin_close(sh);
		for (unsigned i = 0; ok && i < LT; i++) {
			struct thinp_thin *t;
			REQ0(thinp_thin_open(e.p, priv_id(i), psize, &t));
			ok = check_range(t, lt[i].model, 0, psize, "final private", i);
			thinp_thin_close(t);
			if (ok && lt[i].has_snap) {
				REQ0(thinp_thin_open(e.p, lt[i].snap_id, psize, &t));
				ok = check_range(t, lt[i].snap_model, 0, psize, "final snapshot",
				                 i);
				thinp_thin_close(t);
			}
		}
		check_no_thread_failure();
		if (pass == 0) {
			for (unsigned i = 0; i < LT; i++) {
				thinp_thin_close(lt[i].shared);
				thinp_thin_close(lt[i].priv);
				if (lt[i].has_snap)
					thinp_thin_close(lt[i].snap);
			}
			env_reopen(&e);
		}
	}
	for (unsigned i = 0; i < LT; i++) {
		free(lt[i].model);
		free(lt[i].snap_model);
	}
	free(L.shared_model);
	env_close_and_check(&e);
}
END_TEST

/* ---- (e) whole-block runs racing: several threads write the same blocks whole ---- */

#define RUN 4

struct runs {
	struct pu_env *e;
	struct thinp_thin *t[NT];
	pthread_barrier_t bar;
	uint64_t rounds;
};

/* Each round, after a barrier, every thread writes blocks [r*RUN, r*RUN+RUN) whole in one
 * write (a run), or, for odd threads every other round, block by block from the end, so runs
 * meet single-block writers in the other order too. Each page is tagged with its writer. */
static void *runs_main(void *arg)
{
	struct targ *a = arg;
	struct runs *rs = a->shared;
	const uint64_t B = rs->e->B;
	uint8_t *buf = malloc(RUN * B);
	if (!buf) {
		tfail("out of memory");
		return NULL;
	}
	for (uint64_t r = 0; r < rs->rounds && !stopped(); r++) {
		for (uint64_t pg = 0; pg < RUN * B / K4; pg++)
			fill_page(buf + pg * K4, (r * NT + a->id) * 4096 + pg);
		pthread_barrier_wait(&rs->bar);
		int rc = 0;
		if ((a->id & 1) && (r & 1)) {
			for (unsigned j = RUN; j-- > 0 && !rc;)
				rc = thinp_write(rs->t[a->id], buf + j * B, B, (r * RUN + j) * B, 0, NULL);
		} else {
			rc = thinp_write(rs->t[a->id], buf, RUN * B, r * RUN * B, 0, NULL);
		}
		if (rc)
			tfail("thread %u round %" PRIu64 ": write returned %d", a->id, r, rc);
	}
	free(buf);
	return NULL;
}

START_TEST(test_racing_runs)
{
	/* 0: a fresh thin (provision runs); 1: a snapshot of a written origin (CoW runs) */
	unsigned variant = (unsigned)_i;
	pu_ctx("racing whole-block runs, variant %u", variant);
	struct thinp_pool_opts o = { 0 };
	struct pu_env e;
	env_open(&e, 128, 1024, &o);
	struct runs rs = { .e = &e, .rounds = mu_scaled(48, 12) };
	const uint64_t B = e.B, span = rs.rounds * RUN * B;
	REQ0(thinp_create_thin(e.p, 1));
	uint64_t id = 1;
	if (variant == 1) {
		struct thinp_thin *o1;
		REQ0(thinp_thin_open(e.p, 1, 0, &o1));
		uint8_t *z = calloc(1, span);
		REQ(z != NULL, "out of memory");
		REQ0(thinp_write(o1, z, span, 0, 0, NULL));
		free(z);
		thinp_thin_close(o1);
		REQ0(thinp_create_snap(e.p, 2, 1));
		id = 2;
	}
	uint64_t used0 = used_blocks(&e);
	for (unsigned i = 0; i < NT; i++)
		REQ0(thinp_thin_open(e.p, id, 0, &rs.t[i]));
	pthread_barrier_init(&rs.bar, NULL, NT);
	struct targ a[NT];
	for (unsigned i = 0; i < NT; i++) {
		a[i] = (struct targ){ .shared = &rs, .id = i };
		REQ(pthread_create(&a[i].th, NULL, runs_main, &a[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < NT; i++)
		pthread_join(a[i].th, NULL);
	pthread_barrier_destroy(&rs.bar);
	check_no_thread_failure();

	/* every block was allocated exactly once, by one of the racing writers */
	uint64_t nb = rs.rounds * RUN;
	REQ(used_blocks(&e) - used0 == nb, "%" PRIu64 " blocks written, %" PRIu64 " allocated", nb,
	    used_blocks(&e) - used0);
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(e.p, st);
	enum thinp_class first = variant ? THINP_WRITE_COW_FULL : THINP_WRITE_PROVISION_FULL;
	REQ(st[first].ops == nb, "%" PRIu64 " first writes counted, expected %" PRIu64,
	    st[first].ops, nb);
	/* and each block holds one writer's block whole: no page torn, no mix of writers */
	uint8_t *blk = malloc(B);
	REQ(blk != NULL, "out of memory");
	for (uint64_t b = 0; b < nb; b++) {
		REQ0(thinp_read(rs.t[0], blk, B, b * B, NULL));
		uint64_t r = b / RUN, j = b % RUN, writer = UINT64_MAX;
		for (uint64_t pg = 0; pg < B / K4; pg++) {
			uint64_t tag = page_tag(blk + pg * K4);
			REQ(tag != UINT64_MAX, "block %" PRIu64 " page %" PRIu64 " torn", b, pg);
			uint64_t w = tag / 4096 - r * NT, want_pg = j * (B / K4) + pg;
			REQ(tag / 4096 >= r * NT && w < NT && tag % 4096 == want_pg,
			    "block %" PRIu64 " page %" PRIu64 ": tag %" PRIu64 " is no writer's", b, pg,
			    tag);
			if (pg == 0)
				writer = w;
			REQ(w == writer, "block %" PRIu64 " mixes writers %" PRIu64 " and %" PRIu64, b,
			    writer, w);
		}
	}
	free(blk);
	for (unsigned i = 0; i < NT; i++)
		thinp_thin_close(rs.t[i]);
	env_close_and_check(&e);
}
END_TEST

/* ---- (e) IO on provisioned blocks while the data device grows ---- */

/* Reads and overwrites of provisioned blocks take neither md_lock nor the commit barrier's
 * exclusive side, so they meet a data resize (which only holds md_lock) head on: the device's
 * size must be read and grown without a race, and a memory device must not move its buffer
 * under them. */
#define RESIZE_BLOCKS 32

struct resize_io {
	struct thinp_pool *p;
	struct thinp_thin *t[2];
	uint64_t B, grows;
	int done; /* atomic: the resizer finished */
};

static void *resize_io_main(void *arg)
{
	struct targ *a = arg;
	struct resize_io *ri = a->shared;
	uint8_t page[K4], back[K4];
	for (uint64_t n = 0; !stopped() && !__atomic_load_n(&ri->done, __ATOMIC_ACQUIRE); n++) {
		/* thread 0 overwrites its pages (tag counts up), thread 1 reads the others' */
		uint64_t b = n % RESIZE_BLOCKS, off = b * ri->B + a->id * K4;
		int rc;
		if (a->id == 0) {
			fill_page(page, n + 1);
			rc = thinp_write(ri->t[0], page, K4, off, 0, NULL);
		} else {
			rc = thinp_read(ri->t[1], back, K4, off, NULL);
			if (!rc && page_tag(back) != b + 1)
				tfail("block %" PRIu64 " read back tag %" PRIu64 ", expected %" PRIu64, b,
				      page_tag(back), b + 1);
		}
		if (rc)
			tfail("thread %u: IO at %" PRIu64 " returned %d", a->id, off, rc);
	}
	return NULL;
}

START_TEST(test_resize_during_io)
{
	/* 0: sparse files, 1: memory devices */
	unsigned variant = (unsigned)_i;
	pu_ctx("reads and overwrites during data resizes, %s", variant ? "memory" : "files");
	struct thinp_pool_opts o = { .commit_interval_ms = 20 };
	struct pu_env e;
	struct thinp_pool *p;
	const uint64_t B = 64 * KiB;
	if (variant == 0) {
		env_open(&e, 128, RESIZE_BLOCKS, &o);
		p = e.p;
	} else {
		struct tp_dev *data, *meta;
		REQ0(thinp_dev_open_mem(RESIZE_BLOCKS * B, &data));
		REQ0(thinp_dev_open_mem(4 * MiB, &meta));
		char err[256] = "";
		int r = thinp_pool_format(data, meta, &o, &p, err, sizeof(err));
		REQ(r == 0, "format: %d %s", r, err);
	}
	REQ0(thinp_create_thin(p, 1));
	struct resize_io ri = { .p = p, .B = B, .grows = mu_scaled(200, 50) };
	REQ0(thinp_thin_open(p, 1, 0, &ri.t[0]));
	REQ0(thinp_thin_open(p, 1, 0, &ri.t[1]));
	/* every block provisioned: page 1 of block b holds tag b + 1 for the reader */
	uint8_t *blk = malloc(B);
	REQ(blk != NULL, "out of memory");
	for (uint64_t b = 0; b < RESIZE_BLOCKS; b++) {
		memset(blk, 0, B);
		fill_page(blk + K4, b + 1);
		REQ0(thinp_write(ri.t[0], blk, B, b * B, 0, NULL));
	}
	free(blk);
	struct targ a[2];
	for (unsigned i = 0; i < 2; i++) {
		a[i] = (struct targ){ .shared = &ri, .id = i };
		REQ(pthread_create(&a[i].th, NULL, resize_io_main, &a[i]) == 0, "pthread_create");
	}
	int rr = 0;
	for (uint64_t g = 1; g <= ri.grows && !stopped() && !rr; g++)
		rr = thinp_pool_resize_data(p, (RESIZE_BLOCKS + g) * B);
	__atomic_store_n(&ri.done, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(a[i].th, NULL);
	REQ(rr == 0, "resize: %d %s", rr, thinp_pool_error(p));
	check_no_thread_failure();
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(p, true, &st));
	REQ(st.total_data_blocks == RESIZE_BLOCKS + ri.grows, "%" PRIu64 " data blocks, expected %" PRIu64,
	    st.total_data_blocks, RESIZE_BLOCKS + ri.grows);
	thinp_thin_close(ri.t[0]);
	thinp_thin_close(ri.t[1]);
	if (variant == 0)
		env_close_and_check(&e);
	else
		REQ0(thinp_pool_close(p));
}
END_TEST

/* ---- (f) the fast path against discard, snapshots, deletes and commits ---- */

#define FP_BLOCKS 8 /* per IO thread */
#define FP_PPB    16 /* 4 KiB pages per 64 KiB block */
#define FP_PAGES  (FP_BLOCKS * FP_PPB)

struct fast_path {
	struct thinp_pool *p;
	struct thinp_thin *t[2];
	uint64_t B, ops;
	/* per IO thread and page: the tag of the last write started and completed (atomics) */
	uint64_t started[2][FP_PAGES], done[2][FP_PAGES];
	uint64_t issued[2], completed[2]; /* per IO thread: its ops begun and ended (atomics) */
	int finished; /* atomic: IO threads still running */
};

static uint64_t fp_tag(unsigned id, uint64_t n) { return ((uint64_t)id + 1) << 32 | n; }

static void *fast_path_main(void *arg)
{
	struct targ *a = arg;
	struct fast_path *fp = a->shared;
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed * 7919 + a->id);
	uint8_t page[K4], back[K4];
	for (uint64_t n = 1; n <= fp->ops && !stopped(); n++) {
		unsigned pg = (unsigned)mu_below(&rng, FP_PAGES);
		uint64_t off = ((uint64_t)a->id * FP_BLOCKS + pg / FP_PPB) * fp->B + pg % FP_PPB * K4;
		int rc;
		__atomic_store_n(&fp->issued[a->id], n, __ATOMIC_RELEASE);
		if (mu_below(&rng, 10) < 7) {
			uint64_t tag = fp_tag(a->id, n);
			fill_page(page, tag);
			__atomic_store_n(&fp->started[a->id][pg], tag, __ATOMIC_RELEASE);
			rc = thinp_write(fp->t[a->id], page, K4, off, 0, NULL);
			__atomic_store_n(&fp->done[a->id][pg], tag, __ATOMIC_RELEASE);
		} else {
			rc = thinp_read(fp->t[a->id], back, K4, off, NULL);
			uint64_t want = __atomic_load_n(&fp->done[a->id][pg], __ATOMIC_ACQUIRE);
			if (!rc && page_tag(back) != want)
				tfail("thread %u page %u read back tag %" PRIx64 ", wrote %" PRIx64,
				      a->id, pg, page_tag(back), want);
		}
		if (rc)
			tfail("thread %u: IO at %" PRIu64 " returned %d", a->id, off, rc);
		__atomic_store_n(&fp->completed[a->id], n, __ATOMIC_RELEASE);
	}
	__atomic_fetch_sub(&fp->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Snapshot SNAP of thin 1 taken between LO (completed writes) and HI (started writes). */
static void fp_check_snapshot(struct fast_path *fp, uint64_t snap, uint64_t lo[2][FP_PAGES],
			      uint64_t hi[2][FP_PAGES])
{
	struct thinp_thin *t;
	REQ0(thinp_thin_open(fp->p, snap, 0, &t));
	uint8_t back[K4];
	for (unsigned id = 0; id < 2; id++)
		for (unsigned pg = 0; pg < FP_PAGES; pg++) {
			uint64_t off = ((uint64_t)id * FP_BLOCKS + pg / FP_PPB) * fp->B + pg % FP_PPB * K4;
			REQ0(thinp_read(t, back, K4, off, NULL));
			uint64_t tag = page_tag(back);
			REQ(tag != UINT64_MAX && tag >= lo[id][pg] && tag <= hi[id][pg] &&
			            (tag >> 32) == (lo[id][pg] >> 32),
			    "snapshot %" PRIu64 " page %u of thread %u: tag %" PRIx64
			    " outside [%" PRIx64 ", %" PRIx64 "]",
			    snap, pg, id, tag, lo[id][pg], hi[id][pg]);
		}
	thinp_thin_close(t);
}

START_TEST(test_fast_path_races)
{
	pu_ctx("overwrites and reads of provisioned blocks against discard, snapshots, deletes, commits");
	struct pu_env e;
	env_open(&e, 128, 256, NULL);
	struct fast_path fp = { .p = e.p, .B = e.B, .ops = mu_scaled(100000, 5000), .finished = 2 };
	REQ0(thinp_create_thin(e.p, 1));
	for (unsigned i = 0; i < 2; i++)
		REQ0(thinp_thin_open(e.p, 1, 0, &fp.t[i]));
	/* every page of both regions written once (tag n = 0), so all blocks are provisioned */
	uint8_t page[K4], back[K4];
	for (unsigned id = 0; id < 2; id++)
		for (unsigned pg = 0; pg < FP_PAGES; pg++) {
			uint64_t off = ((uint64_t)id * FP_BLOCKS + pg / FP_PPB) * e.B + pg % FP_PPB * K4;
			fp.started[id][pg] = fp.done[id][pg] = fp_tag(id, 0);
			fill_page(page, fp_tag(id, 0));
			REQ0(thinp_write(fp.t[0], page, K4, off, 0, NULL));
		}
	struct targ a[2];
	for (unsigned i = 0; i < 2; i++) {
		a[i] = (struct targ){ .shared = &fp, .id = i };
		REQ(pthread_create(&a[i].th, NULL, fast_path_main, &a[i]) == 0, "pthread_create");
	}
	/* the control thread: its own region (blocks 2*FP_BLOCKS..) for discards, snapshots of
	 * thin 1 checked and deleted, thin 2 created, written and deleted, commits */
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed ^ 0xfa57);
	struct thinp_thin *ct;
	REQ0(thinp_thin_open(e.p, 1, 0, &ct));
	static uint64_t lo[2][FP_PAGES], hi[2][FP_PAGES];
	uint64_t snap = 100, rounds = 0;
	while (__atomic_load_n(&fp.finished, __ATOMIC_ACQUIRE) && !stopped()) {
		rounds++;
		unsigned op = (unsigned)mu_below(&rng, 4);
		if (op == 0) {
			uint64_t vb = 2 * FP_BLOCKS + mu_below(&rng, FP_BLOCKS);
			fill_page(page, rounds);
			REQ0(thinp_write(ct, page, K4, vb * e.B, 0, NULL));
			REQ0(thinp_discard(ct, vb * e.B, e.B, NULL));
			REQ0(thinp_read(ct, back, K4, vb * e.B, NULL));
			REQ(all_zero(back, K4), "block %" PRIu64 " reads non-zero after its discard", vb);
		} else if (op == 1) {
			for (unsigned id = 0; id < 2; id++)
				for (unsigned pg = 0; pg < FP_PAGES; pg++)
					lo[id][pg] = __atomic_load_n(&fp.done[id][pg], __ATOMIC_ACQUIRE);
			REQ0(thinp_create_snap(e.p, snap, 1));
			for (unsigned id = 0; id < 2; id++)
				for (unsigned pg = 0; pg < FP_PAGES; pg++)
					hi[id][pg] = __atomic_load_n(&fp.started[id][pg], __ATOMIC_ACQUIRE);
			/* an overwrite that looked its block up before the snapshot may still be
			 * writing in place (the kernel leaves this to the caller's suspend): read
			 * the snapshot once every IO begun by now has ended */
			for (unsigned id = 0; id < 2; id++) {
				uint64_t upto = __atomic_load_n(&fp.issued[id], __ATOMIC_ACQUIRE);
				while (__atomic_load_n(&fp.completed[id], __ATOMIC_ACQUIRE) < upto &&
				       !stopped())
					sched_yield();
			}
			fp_check_snapshot(&fp, snap, lo, hi);
			REQ0(thinp_delete_thin(e.p, snap));
			snap++;
		} else if (op == 2) {
			struct thinp_thin *t2;
			REQ0(thinp_create_thin(e.p, 2));
			REQ0(thinp_thin_open(e.p, 2, 0, &t2));
			fill_page(page, rounds);
			REQ0(thinp_write(t2, page, K4, mu_below(&rng, 4) * e.B, 0, NULL));
			thinp_thin_close(t2);
			REQ0(thinp_delete_thin(e.p, 2));
		} else {
			REQ0(thinp_pool_commit(e.p));
		}
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(a[i].th, NULL);
	check_no_thread_failure();
	REQ(rounds > 1, "the control thread ran %" PRIu64 " rounds", rounds);
	thinp_thin_close(ct);
	for (unsigned i = 0; i < 2; i++)
		thinp_thin_close(fp.t[i]);
	env_close_and_check(&e);
}
END_TEST

/* A read and an overwrite of a provisioned block need neither md_mutex nor the barrier: they
 * complete while this thread holds both (before the fast path they waited for md_lock). */
struct held_io {
	struct thinp_thin *t;
	uint64_t B;
	int rc;
};

static void *held_io_main(void *arg)
{
	struct held_io *h = arg;
	uint8_t page[K4], back[K4];
	fill_page(page, 7);
	h->rc = thinp_write(h->t, page, K4, 3 * K4, 0, NULL);
	if (!h->rc)
		h->rc = thinp_read(h->t, back, K4, 3 * K4, NULL);
	if (!h->rc && page_tag(back) != 7)
		h->rc = -EILSEQ;
	/* two whole blocks: a run (pool_write_whole_run), whose overwrites take the same path */
	uint8_t *two = malloc(2 * h->B);
	if (!two)
		h->rc = h->rc ? h->rc : -ENOMEM;
	for (unsigned i = 0; !h->rc && i < 2 * h->B / K4; i++)
		fill_page(two + (size_t)i * K4, 100 + i);
	if (!h->rc)
		h->rc = thinp_write(h->t, two, 2 * h->B, 0, 0, NULL);
	if (!h->rc)
		h->rc = thinp_read(h->t, back, K4, h->B + K4, NULL);
	if (!h->rc && page_tag(back) != 100 + h->B / K4 + 1)
		h->rc = -EILSEQ;
	free(two);
	return NULL;
}

START_TEST(test_fast_path_lock_free)
{
	pu_ctx("overwrite and read while md_mutex and the commit barrier are held");
	struct thinp_pool_opts o = { .no_commit_timer = true };
	struct pu_env e;
	env_open(&e, 128, 16, &o);
	REQ0(thinp_create_thin(e.p, 1));
	struct held_io h = { .B = e.B };
	REQ0(thinp_thin_open(e.p, 1, 0, &h.t));
	uint8_t *blk = calloc(1, 2 * e.B);
	REQ(blk != NULL, "out of memory");
	REQ0(thinp_write(h.t, blk, 2 * e.B, 0, 0, NULL));
	free(blk);
	pthread_rwlock_wrlock(&e.p->commit_barrier);
	pthread_mutex_lock(&e.p->md_mutex);
	pthread_t th;
	REQ(pthread_create(&th, NULL, held_io_main, &h) == 0, "pthread_create");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30; /* only bounds the failure: the pass returns in microseconds */
	int jr = pthread_timedjoin_np(th, NULL, &ts);
	pthread_mutex_unlock(&e.p->md_mutex);
	pthread_rwlock_unlock(&e.p->commit_barrier);
	if (jr)
		pthread_join(th, NULL);
	REQ(jr == 0, "the overwrite waited for md_mutex or the barrier (join: %s)", strerror(jr));
	REQ(h.rc == 0, "IO returned %d", h.rc);
	thinp_thin_close(h.t);
	env_close_and_check(&e);
}
END_TEST

/* ---- a commit whose IO is held: reads and overwrites go on ---- */

struct held_commit {
	struct thinp_pool *p;
	int rc;
};

static void *held_commit_main(void *arg)
{
	struct held_commit *c = arg;
	c->rc = thinp_pool_commit(c->p);
	return NULL;
}

#define HC_BLOCKS 6u /* provisioned per round */
#define HC_ROUNDS 8u
#define HC_OPS    64u

/* The IO of one round, run while the commit is held: seeded overwrites (partial pages and
 * whole blocks) and reads of the blocks provisioned so far, each read checked against the
 * model. */
struct held_round {
	struct thinp_thin *t;
	uint64_t B, nr_blocks, seed, round;
	uint64_t *model; /* per 4 KiB page: its tag */
	int rc;
	char why[256];
};

static void *held_round_main(void *arg)
{
	struct held_round *h = arg;
	struct mu_rng rng;
	mu_rng_init(&rng, h->seed);
	uint64_t ppb = h->B / K4;
	uint8_t page[K4];
	uint8_t *blk = malloc(h->B);
	if (!blk) {
		h->rc = -ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < HC_OPS && !h->rc; i++) {
		uint64_t b = mu_below(&rng, h->nr_blocks), pg = mu_below(&rng, ppb);
		/* tags fit fill_page's 44 bits: the round's, then the op's, then a page's */
		uint64_t tag = (h->round + 1) << 32 | (uint64_t)(i + 1) << 16;
		unsigned op = (unsigned)mu_below(&rng, 8);
		if (op < 4) { /* one page */
			fill_page(page, tag);
			h->rc = thinp_write(h->t, page, K4, b * h->B + pg * K4, 0, NULL);
			h->model[b * ppb + pg] = tag;
		} else if (op == 4) { /* a whole block: the run path */
			for (uint64_t k = 0; k < ppb; k++) {
				fill_page(blk + k * K4, tag + k);
				h->model[b * ppb + k] = tag + k;
			}
			h->rc = thinp_write(h->t, blk, h->B, b * h->B, 0, NULL);
		} else {
			h->rc = thinp_read(h->t, page, K4, b * h->B + pg * K4, NULL);
			if (!h->rc && page_tag(page) != h->model[b * ppb + pg]) {
				snprintf(h->why, sizeof(h->why),
					 "block %" PRIu64 " page %" PRIu64 " read tag %" PRIx64
					 ", wrote %" PRIx64,
					 b, pg, page_tag(page), h->model[b * ppb + pg]);
				h->rc = -EILSEQ;
			}
		}
	}
	free(blk);
	return NULL;
}

START_TEST(test_io_during_commit_io)
{
	pu_ctx("overwrites and reads of provisioned blocks while a commit's IO is held");
	struct pu_env e;
	memset(&e, 0, sizeof(e));
	int n = snprintf(e.dir, sizeof(e.dir), "%s/pool-XXXXXX", pu_top);
	REQ(n > 0 && (size_t)n < sizeof(e.dir), "path too long");
	REQ(mkdtemp(e.dir) != NULL, "mkdtemp %s: %s", e.dir, strerror(errno));
	e.o.no_commit_timer = true;
	e.o.block_sectors = 128;
	e.B = 128 * 512;
	uint64_t nr_blocks = HC_BLOCKS * HC_ROUNDS;
	snprintf(e.data_path, sizeof(e.data_path), "%s/data", e.dir);
	snprintf(e.meta_path, sizeof(e.meta_path), "%s/meta", e.dir);
	REQ0(tp_dev_open_file(e.data_path, TP_DEV_CREATE, nr_blocks * e.B, &e.data));
	REQ0(tp_dev_open_file(e.meta_path, TP_DEV_CREATE, 16 * MiB, &e.meta));
	struct tp_dev *held;
	struct tp_hold *hd;
	REQ0(tp_hold_wrap(e.meta, &held, &hd));
	char err[512] = "";
	int r = thinp_pool_format(e.data, held, &e.o, &e.p, err, sizeof(err));
	REQ(r == 0, "format: %d %s", r, err);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	uint64_t ppb = e.B / K4;
	uint64_t *model = calloc(nr_blocks * ppb, sizeof(*model));
	uint8_t *blk = malloc(e.B);
	REQ(model && blk, "out of memory");
	for (unsigned round = 0; round < HC_ROUNDS; round++) {
		/* new blocks: the commit has metadata to write */
		for (uint64_t b = round * HC_BLOCKS; b < (round + 1) * HC_BLOCKS; b++) {
			for (uint64_t k = 0; k < ppb; k++) {
				model[b * ppb + k] = b << 8 | k; /* (op tags have bits 16..43 set) */
				fill_page(blk + k * K4, model[b * ppb + k]);
			}
			REQ0(thinp_write(t, blk, e.B, b * e.B, 0, NULL));
		}
		tp_hold_arm(hd);
		struct held_commit hc = {.p = e.p};
		pthread_t ct, it;
		REQ(pthread_create(&ct, NULL, held_commit_main, &hc) == 0, "pthread_create");
		tp_hold_wait_held(hd);
		/* the commit is inside its IO now, and stays there until the gate opens */
		struct held_round h = {.t = t,
				       .B = e.B,
				       .nr_blocks = (round + 1) * HC_BLOCKS,
				       .seed = pu_seed * 131 + round,
				       .round = round,
				       .model = model};
		REQ(pthread_create(&it, NULL, held_round_main, &h) == 0, "pthread_create");
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 30; /* only bounds the failure: the pass returns in milliseconds */
		int jr = pthread_timedjoin_np(it, NULL, &ts);
		tp_hold_release(hd);
		if (jr)
			pthread_join(it, NULL);
		pthread_join(ct, NULL);
		REQ(jr == 0, "round %u: the IO waited for the commit's IO (join: %s)", round,
		    strerror(jr));
		REQ(h.rc == 0, "round %u: IO returned %d %s", round, h.rc, h.why);
		REQ(hc.rc == 0, "round %u: commit returned %d: %s", round, hc.rc,
		    thinp_pool_error(e.p));
	}
	/* everything as the model says, now and after a reopen */
	for (int pass = 0; pass < 2; pass++) {
		uint8_t page[K4];
		for (uint64_t i = 0; i < nr_blocks * ppb; i++) {
			REQ0(thinp_read(t, page, K4, i * K4, NULL));
			REQ(page_tag(page) == model[i], "pass %d page %" PRIu64 ": tag %" PRIx64 ", wrote %" PRIx64,
			    pass, i, page_tag(page), model[i]);
		}
		if (pass)
			break;
		thinp_thin_close(t);
		env_reopen(&e);
		REQ0(thinp_thin_open(e.p, 1, 0, &t));
	}
	free(blk);
	free(model);
	thinp_thin_close(t);
	env_close_and_check(&e);
}
END_TEST

static Suite *conc_suite(void)
{
	Suite *s = suite_create("pool_concurrency");
	/* separate cases so that CK_RUN_CASE can pick one */
	TCase *tc = tcase_create("new_block");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_same_new_block, 0, 3);
	suite_add_tcase(s, tc);
	tc = tcase_create("shared_block");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_same_shared_block, 0, 3);
	suite_add_tcase(s, tc);
	tc = tcase_create("readers");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_readers_during_cow);
	suite_add_tcase(s, tc);
	tc = tcase_create("runs");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_racing_runs, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("resize");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_resize_during_io, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("fast_path");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_fast_path_lock_free);
	tcase_add_test(tc, test_fast_path_races);
	tcase_add_test(tc, test_io_during_commit_io);
	suite_add_tcase(s, tc);
	tc = tcase_create("load");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_random_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(DEFAULT_SEED, "conc", conc_suite);
}
