/* Data space: the low-water event, out-of-data-space handling in both
 * policies, resizing, and discards (docs/dm-thin-behaviour.md, "Data space",
 * "Resize", "Discard and passdown"; alloc_data_block(), check_low_water_mark(), set_pool_mode(),
 * do_no_space_timeout(), commit()/check_for_space() and the discard paths
 * in drivers/md/dm-thin.c).
 *
 * Kernel rules asserted here:
 *  - alloc_data_block() checks the low-water mark with the free count taken
 *    BEFORE allocating: the event fires on the first allocation that finds
 *    free <= low_water_blocks, once, until a resume (here: a data resize);
 *  - with error_if_no_space a write needing a block fails with ENOSPC and
 *    the pool reports out_of_data_space; provisioned unshared blocks stay
 *    writable; a resize returns the pool to rw;
 *  - with queue_if_no_space the write waits for a resize; after
 *    no_space_timeout it fails with ENOSPC and the pool's effective policy
 *    becomes error_if_no_space (shown by the status) until it leaves
 *    out-of-data-space mode;
 *  - a commit that finds free blocks returns an out-of-data-space pool to
 *    write mode (check_for_space), and taking the status without NOFLUSH
 *    commits in that mode too;
 *  - discards unmap whole blocks only; with passdown a block no longer
 *    referenced is discarded on the data device (a punched hole here). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/dev.h"
#include "model_util.h"
#include "pool_util.h"
#include "thinp.h"

#define KiB          1024ull
#define MiB          (1024ull * KiB)
#define DEFAULT_SEED 0x7370616365ull /* "space" */

/* ---- a pool on sparse files ---- */

static void env_open(struct pu_env *e, uint32_t block_sectors, uint64_t nr_data_blocks,
                     const struct thinp_pool_opts *opts)
{
	pu_env_open(e, block_sectors, nr_data_blocks, 4 * MiB, opts, false);
}

static void env_close(struct pu_env *e)
{
	if (e->p)
		REQ0(thinp_pool_close(e->p));
	e->p = NULL;
}

static struct thinp_pool_status status(struct pu_env *e)
{
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e->p, true, &st));
	return st;
}

/* The Nth space-separated field of the pool status line (0-based). */
static void line_field(struct pu_env *e, bool noflush, unsigned n, char *out, size_t len)
{
	char line[256];
	REQ0(thinp_pool_status_line(e->p, noflush, line, sizeof(line)));
	char *save = NULL, *tok = strtok_r(line, " ", &save);
	for (unsigned i = 0; tok && i < n; i++)
		tok = strtok_r(NULL, " ", &save);
	REQ(tok != NULL, "status line has no field %u", n);
	snprintf(out, len, "%s", tok);
}

#define F_MODE  4
#define F_SPACE 6

static void expect_field(struct pu_env *e, unsigned n, const char *want, const char *when)
{
	char f[64];
	line_field(e, true, n, f, sizeof(f));
	REQ(strcmp(f, want) == 0, "%s: status field %u is \"%s\", expected \"%s\"", when, n, f,
	    want);
}

/* Block contents: a tag word per 8 bytes, so any byte identifies its writer. */
static void fill_tag(uint8_t *buf, size_t len, uint64_t tag)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = tag * 0x100000001b3ull + i;
		memcpy(buf + i, &v, 8);
	}
}

static bool has_tag(const uint8_t *buf, size_t len, uint64_t tag)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = tag * 0x100000001b3ull + i, got;
		memcpy(&got, buf + i, 8);
		if (got != v)
			return false;
	}
	return true;
}

static int write_tag(struct thinp_thin *t, uint64_t off, size_t len, uint64_t tag,
                     struct thinp_io_result *res)
{
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	fill_tag(buf, len, tag);
	int r = thinp_write(t, buf, len, off, 0, res);
	free(buf);
	return r;
}

static void check_tag(struct thinp_thin *t, uint64_t off, size_t len, uint64_t tag,
                      const char *what)
{
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	REQ0(thinp_read(t, buf, len, off, NULL));
	bool ok = has_tag(buf, len, tag);
	free(buf);
	REQ(ok, "%s: %zu bytes at %" PRIu64 " do not hold tag %" PRIu64, what, len, off, tag);
}

static void check_zero(struct thinp_thin *t, uint64_t off, size_t len, const char *what)
{
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	struct thinp_io_result res;
	REQ0(thinp_read(t, buf, len, off, &res));
	bool ok = true;
	for (size_t i = 0; i < len; i++)
		ok = ok && !buf[i];
	free(buf);
	REQ(ok, "%s: %zu bytes at %" PRIu64 " are not zero", what, len, off);
	REQ(res.cls == THINP_READ_UNMAPPED, "%s: read class %s", what, thinp_class_name(res.cls));
}

/* ---- low water ---- */

struct lw {
	pthread_mutex_t lock;
	unsigned calls;
	uint64_t used_at_call;
};

static void lw_cb(void *c, struct thinp_pool *p)
{
	struct lw *l = c;
	struct thinp_pool_status st;
	/* the callback runs with the pool's locks released: status works */
	int r = thinp_pool_status(p, true, &st);
	pthread_mutex_lock(&l->lock);
	l->calls++;
	l->used_at_call = r ? UINT64_MAX : st.used_data_blocks;
	pthread_mutex_unlock(&l->lock);
}

static unsigned lw_calls(struct lw *l)
{
	pthread_mutex_lock(&l->lock);
	unsigned n = l->calls;
	pthread_mutex_unlock(&l->lock);
	return n;
}

START_TEST(test_low_water_and_error_if_no_space)
{
	pu_ctx("low water, error_if_no_space");
	struct lw l = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct thinp_pool_opts o = { .low_water_blocks = 8,
		                     .error_if_no_space = true,
		                     .low_water_cb = lw_cb,
		                     .cb_ctx = &l,
		                     .no_commit_timer = true };
	struct pu_env e;
	env_open(&e, 128, 64, &o);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	const uint64_t B = e.B, K = 4 * KiB;

	/* 64 allocations of one block each; the event belongs to the first
	 * allocation that finds at most 8 blocks free: the 57th */
	for (uint64_t i = 0; i < 64; i++) {
		pu_ctx("low water: allocation %" PRIu64, i + 1);
		uint64_t free_before = 64 - i;
		REQ0(write_tag(t, i * B + (i % 16) * K, K, i, NULL));
		unsigned want = free_before <= 8 ? 1 : 0;
		REQ(lw_calls(&l) == want,
		    "%u low-water calls after the allocation that found %" PRIu64
		    " free blocks (low water 8), expected %u",
		    lw_calls(&l), free_before, want);
		REQ(status(&e).used_data_blocks == i + 1, "used %" PRIu64 " blocks",
		    status(&e).used_data_blocks);
	}
	expect_field(&e, F_MODE, "rw", "pool just full");
	/* the allocation that does not fit fails at once */
	pu_ctx("error_if_no_space: full");
	struct thinp_io_result res;
	int r = write_tag(t, 64 * B, K, 999, &res);
	REQ(r == -ENOSPC, "write into a full error_if_no_space pool returned %d", r);
	expect_field(&e, F_MODE, "out_of_data_space", "after ENOSPC");
	expect_field(&e, F_SPACE, "error_if_no_space", "after ENOSPC");
	REQ(lw_calls(&l) == 1, "%u low-water calls after ENOSPC", lw_calls(&l));
	r = write_tag(t, 65 * B - K, 2 * K, 999, NULL); /* the first piece fits nowhere either */
	REQ(r == -ENOSPC, "a second write returned %d", r);
	/* everything written before reads back */
	for (uint64_t i = 0; i < 64; i++)
		check_tag(t, i * B + (i % 16) * K, K, i, "data written before ENOSPC");
	check_zero(t, 64 * B, B, "the failed write's block");
	/* provisioned unshared blocks keep working: rewrite all of them */
	pu_ctx("out of data space: overwrites");
	for (uint64_t i = 0; i < 64; i++) {
		REQ0(write_tag(t, i * B, B, 1000 + i, &res));
		REQ(res.cls == THINP_WRITE_OVERWRITE, "block %" PRIu64 ": class %s", i,
		    thinp_class_name(res.cls));
	}
	for (uint64_t i = 0; i < 64; i++)
		check_tag(t, i * B, B, 1000 + i, "overwritten while out of space");
	/* messages still work; a CoW needs a block and fails */
	REQ0(thinp_create_snap(e.p, 2, 1));
	struct thinp_thin *s;
	REQ0(thinp_thin_open(e.p, 2, 0, &s));
	r = write_tag(s, 0, K, 7, NULL);
	REQ(r == -ENOSPC, "a CoW in a full pool returned %d", r);
	check_tag(s, 0, B, 1000, "snapshot after a failed CoW");
	thinp_thin_close(s);
	REQ0(thinp_delete_thin(e.p, 2));
	expect_field(&e, F_MODE, "out_of_data_space", "before resize");

	/* grow: write mode, the event re-armed */
	pu_ctx("resize to 128 blocks");
	REQ0(thinp_pool_resize_data(e.p, 128 * B));
	expect_field(&e, F_MODE, "rw", "after resize");
	expect_field(&e, F_SPACE, "error_if_no_space", "after resize");
	REQ(status(&e).total_data_blocks == 128, "total %" PRIu64, status(&e).total_data_blocks);
	REQ(lw_calls(&l) == 1, "a resize called the low-water callback (%u calls)", lw_calls(&l));
	for (uint64_t i = 64; i < 128; i++) {
		pu_ctx("after resize: allocation %" PRIu64, i + 1);
		uint64_t free_before = 128 - i;
		REQ0(write_tag(t, i * B, B, i, NULL));
		unsigned want = free_before <= 8 ? 2 : 1;
		REQ(lw_calls(&l) == want,
		    "%u low-water calls after the allocation that found %" PRIu64
		    " free blocks, expected %u",
		    lw_calls(&l), free_before, want);
	}
	r = write_tag(t, 128 * B, K, 999, NULL);
	REQ(r == -ENOSPC, "write into the full grown pool returned %d", r);
	/* a small grow leaves free <= low water: the next allocation fires at once */
	pu_ctx("resize to 132 blocks");
	REQ0(thinp_pool_resize_data(e.p, 132 * B));
	REQ(lw_calls(&l) == 2, "%u calls before the next allocation", lw_calls(&l));
	REQ0(write_tag(t, 128 * B, K, 128, NULL));
	REQ(lw_calls(&l) == 3, "%u low-water calls after a grow to 4 free blocks, expected 3",
	    lw_calls(&l));
	for (uint64_t i = 129; i < 132; i++)
		REQ0(write_tag(t, i * B, K, i, NULL));
	REQ(lw_calls(&l) == 3, "%u low-water calls, expected 3", lw_calls(&l));
	REQ(status(&e).used_data_blocks == 132, "used %" PRIu64, status(&e).used_data_blocks);
	check_tag(t, 100 * B, B, 100, "data after resizes");
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

/* ---- queue_if_no_space: writers wait for a resize ---- */

struct writer {
	struct thinp_thin *t;
	uint64_t off, len, tag;
	int r;
	int done; /* atomic */
	pthread_t th;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	w->r = write_tag(w->t, w->off, w->len, w->tag, NULL);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Wait (bounded) until the pool reports MODE. Synchronisation only. */
static void wait_mode(struct pu_env *e, enum thinp_pool_mode mode)
{
	for (int i = 0; i < 60000; i++) {
		if (status(e).mode == mode)
			return;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	REQ(0, "the pool never reached mode %d", mode);
}

START_TEST(test_queue_until_resize)
{
	pu_ctx("queue_if_no_space, resize");
	struct thinp_pool_opts o = { .no_space_timeout_ms = 50000 };
	struct pu_env e;
	env_open(&e, 256, 16, &o);
	const uint64_t B = e.B;
	REQ0(thinp_create_thin(e.p, 1));
	REQ0(thinp_create_thin(e.p, 2));
	struct thinp_thin *t1, *t2;
	REQ0(thinp_thin_open(e.p, 1, 0, &t1));
	REQ0(thinp_thin_open(e.p, 2, 0, &t2));
	for (uint64_t i = 0; i < 16; i++)
		REQ0(write_tag(i % 2 ? t2 : t1, i * B, B, i, NULL));
	expect_field(&e, F_MODE, "rw", "full, before any wait");
	/* four writers on two thins, each needing a new block */
	struct writer w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){ .t = i % 2 ? t2 : t1,
			                .off = (uint64_t)(20 + i) * B + 4096 * (uint64_t)i,
			                .len = 8192,
			                .tag = 500 + (uint64_t)i };
		REQ(pthread_create(&w[i].th, NULL, writer_main, &w[i]) == 0, "pthread_create");
	}
	wait_mode(&e, THINP_MODE_OUT_OF_DATA_SPACE);
	expect_field(&e, F_MODE, "out_of_data_space", "writer waiting");
	expect_field(&e, F_SPACE, "queue_if_no_space", "writer waiting");
	/* while they wait, provisioned blocks stay writable and readable */
	REQ0(write_tag(t1, 0, B, 77, NULL));
	check_tag(t1, 0, B, 77, "overwrite while writers wait");
	check_tag(t2, 3 * B, B, 3, "read while writers wait");
	for (int i = 0; i < 4; i++)
		REQ(!__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE),
		    "writer %d completed (r=%d) without space", i, w[i].r);
	REQ0(thinp_pool_resize_data(e.p, 32 * B));
	for (int i = 0; i < 4; i++) {
		pthread_join(w[i].th, NULL);
		REQ(w[i].r == 0, "queued writer %d returned %d after the resize", i, w[i].r);
		check_tag(w[i].t, w[i].off, w[i].len, w[i].tag, "queued write");
	}
	expect_field(&e, F_MODE, "rw", "after resize");
	REQ(status(&e).used_data_blocks == 20, "used %" PRIu64, status(&e).used_data_blocks);
	for (uint64_t i = 1; i < 16; i++)
		check_tag(i % 2 ? t2 : t1, i * B, B, i, "data written before the wait");
	thinp_thin_close(t1);
	thinp_thin_close(t2);
	env_close(&e);
}
END_TEST

/* ---- queue_if_no_space: no_space_timeout ---- */

START_TEST(test_queue_timeout)
{
	pu_ctx("queue_if_no_space, no_space_timeout");
	struct thinp_pool_opts o = { .no_space_timeout_ms = 200 };
	struct pu_env e;
	env_open(&e, 128, 8, &o);
	const uint64_t B = e.B;
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	for (uint64_t i = 0; i < 8; i++)
		REQ0(write_tag(t, i * B, B, i, NULL));
	struct writer w[3];
	for (int i = 0; i < 3; i++) {
		w[i] = (struct writer){
			.t = t, .off = (uint64_t)(10 + i) * B, .len = 4096, .tag = 300 + (uint64_t)i
		};
		REQ(pthread_create(&w[i].th, NULL, writer_main, &w[i]) == 0, "pthread_create");
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(w[i].th, NULL);
		REQ(w[i].r == -ENOSPC, "writer %d returned %d, expected ENOSPC after the timeout",
		    i, w[i].r);
	}
	/* do_no_space_timeout(): the pool now errors instead of queueing */
	expect_field(&e, F_MODE, "out_of_data_space", "after the timeout");
	expect_field(&e, F_SPACE, "error_if_no_space", "after the timeout");
	int r = write_tag(t, 20 * B, 4096, 1, NULL);
	REQ(r == -ENOSPC, "a write after the timeout returned %d", r);
	for (uint64_t i = 0; i < 8; i++)
		check_tag(t, i * B, B, i, "data written before the timeout");
	REQ0(write_tag(t, 2 * B, B, 42, NULL));
	check_tag(t, 2 * B, B, 42, "overwrite after the timeout");
	/* growing the pool restores write mode and the queueing policy */
	REQ0(thinp_pool_resize_data(e.p, 16 * B));
	expect_field(&e, F_MODE, "rw", "after resize");
	expect_field(&e, F_SPACE, "queue_if_no_space", "after resize");
	REQ0(write_tag(t, 10 * B, 4096, 310, NULL));
	check_tag(t, 10 * B, 4096, 310, "write after resize");
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

/* ---- leaving out-of-data-space without a resize ---- */

START_TEST(test_space_freed_by_discard)
{
	pu_ctx("out of data space, discard, commit");
	struct thinp_pool_opts o = { .error_if_no_space = true, .no_commit_timer = true };
	struct pu_env e;
	env_open(&e, 128, 8, &o);
	const uint64_t B = e.B;
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	for (uint64_t i = 0; i < 8; i++)
		REQ0(write_tag(t, i * B, B, i, NULL));
	int r = write_tag(t, 8 * B, 4096, 8, NULL);
	REQ(r == -ENOSPC, "write into a full pool returned %d", r);
	expect_field(&e, F_MODE, "out_of_data_space", "full");
	/* discards work while out of space and free the blocks */
	REQ0(thinp_discard(t, 2 * B, 2 * B, NULL));
	REQ(status(&e).used_data_blocks == 6, "used %" PRIu64 " after discarding 2 of 8",
	    status(&e).used_data_blocks);
	/* the next commit finds free space (check_for_space): write mode again.
	 * `dmsetup status` without NOFLUSH commits in this mode. */
	char f[64];
	line_field(&e, false, F_MODE, f, sizeof(f));
	REQ(strcmp(f, "rw") == 0,
	    "after freeing blocks, status (which commits) shows \"%s\", expected \"rw\"", f);
	REQ0(write_tag(t, 8 * B, 4096, 8, NULL));
	REQ0(write_tag(t, 9 * B, B, 9, NULL));
	r = write_tag(t, 10 * B, 4096, 10, NULL);
	REQ(r == -ENOSPC, "third write into 2 freed blocks returned %d", r);
	check_tag(t, 8 * B, 4096, 8, "write after leaving out-of-space mode");
	check_tag(t, 9 * B, B, 9, "write after leaving out-of-space mode");
	/* same through an explicit commit */
	REQ0(thinp_discard(t, 0, B, NULL));
	REQ0(thinp_pool_commit(e.p));
	expect_field(&e, F_MODE, "rw", "after discard + commit");
	REQ0(write_tag(t, 11 * B, 4096, 11, NULL));
	for (uint64_t i = 4; i < 8; i++)
		check_tag(t, i * B, B, i, "untouched data");
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

/* ---- discards ---- */

static bool punch_supported(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/punch-probe", dir);
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	if (fd < 0)
		return false;
	char buf[65536];
	memset(buf, 1, sizeof(buf));
	bool ok = pwrite(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) && fsync(fd) == 0 &&
	          fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, sizeof(buf)) == 0;
	struct stat st;
	ok = ok && fstat(fd, &st) == 0 && st.st_blocks == 0;
	close(fd);
	unlink(path);
	return ok;
}

static uint64_t file_blocks(const char *path)
{
	struct stat st;
	REQ(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_blocks;
}

START_TEST(test_discard_passdown)
{
	static const uint32_t bsl[] = { 128, 512 };
	uint32_t bs = bsl[_i];
	pu_ctx("discard passdown, block %u sectors", bs);
	struct thinp_pool_opts o = { .no_commit_timer = true };
	struct pu_env e;
	env_open(&e, bs, 64, &o);
	const uint64_t B = e.B, S = B / 512;
	bool punch = punch_supported(e.dir);
	if (!punch)
		fprintf(stderr, "note: %s cannot punch holes; st_blocks checks skipped\n", e.dir);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	for (uint64_t i = 0; i < 16; i++)
		REQ0(write_tag(t, i * B, B, i, NULL));
	REQ0(thinp_flush(t, NULL));
	uint64_t s0 = file_blocks(e.data_path);
	REQ(!punch || s0 >= 16 * S, "data file holds %" PRIu64 " sectors after writing 16 blocks",
	    s0);
	struct tp_io_counters c0 = tp_dev_ctr(e.data);

	/* four whole blocks: unmapped, freed, holes in the file */
	struct thinp_io_result res;
	REQ0(thinp_discard(t, 4 * B, 4 * B, &res));
	REQ(res.cls == THINP_DISCARD, "discard class %s", thinp_class_name(res.cls));
	REQ(status(&e).used_data_blocks == 12, "used %" PRIu64 " after discarding 4 of 16",
	    status(&e).used_data_blocks);
	/* passdown waits for the commit that makes the unmap durable: until
	 * then the committed metadata still maps the blocks */
	REQ(tp_dev_ctr(e.data).discards == c0.discards, "a discard reached the data device before the commit");
	REQ0(thinp_pool_commit(e.p));
	REQ(tp_dev_ctr(e.data).discards - c0.discards == 4 &&
	            tp_dev_ctr(e.data).bytes_discarded - c0.bytes_discarded == 4 * B,
	    "data device saw %" PRIu64 " discards of %" PRIu64 " bytes, expected 4 of %" PRIu64,
	    tp_dev_ctr(e.data).discards - c0.discards, tp_dev_ctr(e.data).bytes_discarded - c0.bytes_discarded,
	    4 * B);
	uint64_t s1 = file_blocks(e.data_path);
	REQ(!punch || s1 + 4 * S <= s0, "data file went from %" PRIu64 " to %" PRIu64 " sectors",
	    s0, s1);
	check_zero(t, 4 * B, 4 * B, "discarded range");
	check_tag(t, 3 * B, B, 3, "block before the discard");
	check_tag(t, 8 * B, B, 8, "block after the discard");

	/* sub-block discards are no-ops; partial ends are ignored */
	REQ0(thinp_discard(t, 8 * B + 4096, B - 4096, NULL));
	REQ0(thinp_discard(t, 10 * B - 4096, 2 * B + 8192, NULL)); /* only 10 and 11 whole */
	REQ(status(&e).used_data_blocks == 10, "used %" PRIu64 " after partial discards",
	    status(&e).used_data_blocks);
	check_tag(t, 8 * B, B, 8, "block under a sub-block discard");
	check_tag(t, 9 * B, B, 9, "block before a ragged discard");
	check_tag(t, 12 * B, B, 12, "block after a ragged discard");
	check_zero(t, 10 * B, 2 * B, "whole blocks of a ragged discard");
	/* discarding unmapped space is fine */
	REQ0(thinp_discard(t, 40 * B, 8 * B, NULL));

	/* shared blocks: unmapped from one device, kept for the other */
	REQ0(thinp_create_snap(e.p, 2, 1));
	struct thinp_thin *s;
	REQ0(thinp_thin_open(e.p, 2, 0, &s));
	struct tp_io_counters c1 = tp_dev_ctr(e.data);
	uint64_t s2 = file_blocks(e.data_path);
	REQ0(thinp_discard(t, 0, 4 * B, NULL));
	REQ(status(&e).used_data_blocks == 10, "used %" PRIu64 " after discarding shared blocks",
	    status(&e).used_data_blocks);
	REQ(tp_dev_ctr(e.data).discards == c1.discards, "a shared block was discarded on the data device");
	REQ(!punch || file_blocks(e.data_path) == s2, "the data file lost shared blocks");
	check_zero(t, 0, 4 * B, "origin after discarding shared blocks");
	for (uint64_t i = 0; i < 4; i++)
		check_tag(s, i * B, B, i, "snapshot keeps the blocks");
	/* the last reference goes: freed and passed down */
	REQ0(thinp_discard(s, 0, 4 * B, NULL));
	REQ(status(&e).used_data_blocks == 6, "used %" PRIu64, status(&e).used_data_blocks);
	REQ0(thinp_pool_commit(e.p));
	REQ(tp_dev_ctr(e.data).discards - c1.discards == 4, "%" PRIu64 " discards passed down, expected 4",
	    tp_dev_ctr(e.data).discards - c1.discards);
	REQ(!punch || file_blocks(e.data_path) + 4 * S <= s2, "data file did not shrink");
	/* freed blocks are reused after a commit */
	REQ0(thinp_pool_commit(e.p));
	for (uint64_t i = 0; i < 58; i++)
		REQ0(write_tag(t, (16 + i) * B, B, 2000 + i, NULL));
	REQ(status(&e).used_data_blocks == 64, "used %" PRIu64, status(&e).used_data_blocks);
	for (uint64_t i = 0; i < 58; i++)
		check_tag(t, (16 + i) * B, B, 2000 + i, "blocks reusing discarded space");
	for (uint64_t i = 12; i < 16; i++)
		check_tag(t, i * B, B, i, "old data");
	thinp_thin_close(s);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

START_TEST(test_discard_no_passdown_and_ignore)
{
	pu_ctx("no_discard_passdown / ignore_discard");
	for (int mode = 0; mode < 2; mode++) {
		struct thinp_pool_opts o = { .no_commit_timer = true,
			                     .no_discard_passdown = mode == 0,
			                     .ignore_discard = mode == 1 };
		pu_ctx("%s", mode ? "ignore_discard" : "no_discard_passdown");
		struct pu_env e;
		env_open(&e, 128, 32, &o);
		const uint64_t B = e.B;
		REQ0(thinp_create_thin(e.p, 1));
		struct thinp_thin *t;
		REQ0(thinp_thin_open(e.p, 1, 0, &t));
		for (uint64_t i = 0; i < 8; i++)
			REQ0(write_tag(t, i * B, B, i, NULL));
		REQ0(thinp_flush(t, NULL));
		uint64_t s0 = file_blocks(e.data_path);
		struct tp_io_counters c0 = tp_dev_ctr(e.data);
		struct thinp_io_result res;
		REQ0(thinp_discard(t, 2 * B, 4 * B, &res));
		REQ(tp_dev_ctr(e.data).discards == c0.discards, "the data device saw a discard");
		REQ(file_blocks(e.data_path) == s0, "the data file changed");
		if (mode == 0) {
			REQ(status(&e).used_data_blocks == 4, "used %" PRIu64,
			    status(&e).used_data_blocks);
			check_zero(t, 2 * B, 4 * B, "unmapped range");
		} else {
			REQ(status(&e).used_data_blocks == 8, "used %" PRIu64,
			    status(&e).used_data_blocks);
			for (uint64_t i = 2; i < 6; i++)
				check_tag(t, i * B, B, i, "ignored discard");
		}
		check_tag(t, 0, B, 0, "data outside the discard");
		check_tag(t, 7 * B, B, 7, "data outside the discard");
		thinp_thin_close(t);
		env_close(&e);
	}
}
END_TEST

static Suite *space_suite(void)
{
	Suite *s = suite_create("pool_space");
	TCase *tc = tcase_create("space");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_low_water_and_error_if_no_space);
	tcase_add_test(tc, test_queue_until_resize);
	tcase_add_test(tc, test_queue_timeout);
	tcase_add_test(tc, test_space_freed_by_discard);
	tcase_add_loop_test(tc, test_discard_passdown, 0, 2);
	tcase_add_test(tc, test_discard_no_passdown_and_ignore);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(DEFAULT_SEED, "space", space_suite);
}
