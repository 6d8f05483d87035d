/* The device flusher (impl/io/dev_flusher.c): the flushes a commit overlaps with its metadata
 * writes run on one long-lived thread per device, not a thread per commit:
 *
 *  - every overlapped flush of a device runs on the same thread, never the caller's;
 *  - the caller goes on while its flush runs (a flush that only returns once the caller
 *    lets it);
 *  - a failed flush's errno reaches tp_dev_flush_wait, and the next flush is fine;
 *  - a device without TP_DEV_CAP_ASYNC_FLUSH flushes in line;
 *  - the device's first such flush starts the thread and tp_dev_close ends it (the
 *    process's thread count one more while it is open, one less after the close);
 *  - a forked child flushes in line (it has the pointer, not the thread) and can close.
 *
 * Seeded: THINP_SEED (printed) picks which flushes fail. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/dev.h"
#include "model_util.h"
#include "stack_util.h"

#define DEFAULT_SEED 0xF1A5Eull

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* A memory device whose flush records the thread it ran on, fails when told to, and (gated)
 * returns only once the test opens the gate. */
struct probe {
	struct tp_dev dev;
	struct tp_dev *inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pid_t tids[256];
	unsigned nr;
	int fail_next;   /* the errno the next flush returns (0: none) */
	bool gated;
	bool gate_open;
	bool in_flush;   /* a gated flush has started and waits for the gate */
};

static struct probe *to_probe(struct tp_dev *d) { return (struct probe *)(void *)d; }

static int probe_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return tp_dev_pread(to_probe(d)->inner, buf, len, off);
}

static int probe_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	return tp_dev_pwrite(to_probe(d)->inner, buf, len, off);
}

static int probe_flush(struct tp_dev *d)
{
	struct probe *p = to_probe(d);
	pthread_mutex_lock(&p->mu);
	if (p->nr < sizeof(p->tids) / sizeof(p->tids[0]))
		p->tids[p->nr++] = my_tid();
	int r = p->fail_next;
	p->fail_next = 0;
	if (p->gated) {
		p->in_flush = true;
		pthread_cond_broadcast(&p->cv);
		while (!p->gate_open)
			pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return r ? r : tp_dev_flush(p->inner);
}

static int probe_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_write_zeroes(to_probe(d)->inner, off, len);
}

static int probe_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return tp_dev_discard(to_probe(d)->inner, off, len);
}

static int probe_resize(struct tp_dev *d, uint64_t size)
{
	(void)d;
	(void)size;
	return -ENOTSUP;
}

static int probe_refresh(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void probe_close(struct tp_dev *d)
{
	struct probe *p = to_probe(d);
	tp_dev_close(p->inner);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static const struct tp_dev_ops probe_ops = {
	.pread = probe_pread,
	.pwrite = probe_pwrite,
	.flush = probe_flush,
	.write_zeroes = probe_zero,
	.discard = probe_discard,
	.resize = probe_resize,
	.refresh_size = probe_refresh,
	.close = probe_close,
};

static struct probe *probe_new(bool async)
{
	struct probe *p = calloc(1, sizeof(*p));
	REQ(p != NULL, "out of memory");
	REQ0(tp_dev_open_mem(1 << 20, &p->inner));
	p->dev.ops = &probe_ops;
	p->dev.size = p->inner->size;
	p->dev.align = 1;
	p->dev.caps = async ? TP_DEV_CAP_ASYNC_FLUSH : 0;
	snprintf(p->dev.name, sizeof(p->dev.name), "probe");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return p;
}

/* This process's threads (/proc/self/task). */
static unsigned thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	REQ(d != NULL, "opendir /proc/self/task: %s", strerror(errno));
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int flush_once(struct tp_dev *d)
{
	struct tp_flush_job job;
	tp_dev_flush_start(d, &job);
	return tp_dev_flush_wait(&job);
}

START_TEST(test_one_thread_for_every_flush)
{
	su_set_ctx("one_thread", 0);
	unsigned before = thread_count();
	struct probe *p = probe_new(true);
	const unsigned n = 64;
	for (unsigned i = 0; i < n; i++)
		REQ0(flush_once(&p->dev));
	REQ(p->nr == n, "%u flushes recorded for %u started", p->nr, n);
	for (unsigned i = 0; i < n; i++) {
		REQ(p->tids[i] != my_tid(), "flush %u ran on the caller's thread", i);
		REQ(p->tids[i] == p->tids[0],
		    "flush %u ran on thread %d, flush 0 on %d: a thread per flush", i,
		    (int)p->tids[i], (int)p->tids[0]);
	}
	/* (a sanitizer's runtime may start a thread of its own with the first one created:
	 * the close is compared with the count while open) */
	unsigned open = thread_count();
	REQ(open > before, "%u threads with the device open, %u before", open, before);
	tp_dev_close(&p->dev);
	REQ(thread_count() == open - 1, "%u threads after the close, %u while open",
	    thread_count(), open);
}
END_TEST

START_TEST(test_caller_goes_on_while_it_flushes)
{
	su_set_ctx("overlap", 0);
	struct probe *p = probe_new(true);
	for (unsigned round = 0; round < 8; round++) {
		pthread_mutex_lock(&p->mu);
		p->gated = true;
		p->gate_open = false;
		p->in_flush = false;
		pthread_mutex_unlock(&p->mu);
		struct tp_flush_job job;
		/* returns with the flush still held at the gate: in line it would never return */
		tp_dev_flush_start(&p->dev, &job);
		pthread_mutex_lock(&p->mu);
		while (!p->in_flush)
			pthread_cond_wait(&p->cv, &p->mu);
		p->gate_open = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		REQ0(tp_dev_flush_wait(&job));
	}
	tp_dev_close(&p->dev);
}
END_TEST

START_TEST(test_errors_reach_the_waiter)
{
	su_set_ctx("errors", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	static const int errs[] = {-EIO, -ENOSPC, -EROFS};
	struct probe *p = probe_new(true);
	for (unsigned i = 0; i < 40; i++) {
		int want = mu_below(&rng, 3) == 0 ? errs[mu_below(&rng, 3)] : 0;
		pthread_mutex_lock(&p->mu);
		p->fail_next = want;
		pthread_mutex_unlock(&p->mu);
		int r = flush_once(&p->dev);
		REQ(r == want, "flush %u returned %d, the device %d", i, r, want);
	}
	tp_dev_close(&p->dev);
}
END_TEST

START_TEST(test_no_capability_in_line)
{
	su_set_ctx("in_line", 0);
	unsigned before = thread_count();
	struct probe *p = probe_new(false);
	for (unsigned i = 0; i < 4; i++)
		REQ0(flush_once(&p->dev));
	REQ(p->nr == 4 && p->tids[0] == my_tid() && p->tids[3] == my_tid(),
	    "a device without TP_DEV_CAP_ASYNC_FLUSH flushed on another thread");
	REQ(thread_count() == before, "a flusher thread for a device that cannot use one");
	tp_dev_close(&p->dev);
}
END_TEST

START_TEST(test_forked_child_flushes_in_line)
{
	su_set_ctx("fork", 0);
	struct probe *p = probe_new(true);
	REQ0(flush_once(&p->dev));
	pid_t pid = fork();
	REQ(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* the child's copy of the device: no flusher thread here */
		unsigned before = p->nr;
		int ok = flush_once(&p->dev) == 0 && p->nr == before + 1 &&
			 p->tids[before] == my_tid();
		tp_dev_close(&p->dev);
		_exit(ok ? 0 : 1);
	}
	int st;
	REQ(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	REQ(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "the forked child's flush did not run in line (status %#x)", st);
	REQ0(flush_once(&p->dev));
	tp_dev_close(&p->dev);
}
END_TEST

START_TEST(test_file_device)
{
	su_set_ctx("file", 0);
	char dir[256], path[300];
	REQ0(mu_mkdtemp(dir, sizeof(dir), "dev_flusher"));
	snprintf(path, sizeof(path), "%s/dev", dir);
	unsigned before = thread_count();
	struct tp_dev *d;
	REQ0(tp_dev_open_file(path, TP_DEV_CREATE, 1 << 20, &d));
	char buf[4096];
	memset(buf, 0xa5, sizeof(buf));
	for (unsigned i = 0; i < 8; i++) {
		REQ0(tp_dev_pwrite(d, buf, sizeof(buf), (uint64_t)i * sizeof(buf)));
		REQ0(flush_once(d));
	}
	unsigned open = thread_count();
	REQ(open > before, "%u threads with a file device open, %u before", open, before);
	tp_dev_close(d);
	REQ(thread_count() == open - 1, "%u threads after the close, %u while open",
	    thread_count(), open);
	mu_rmtree(dir);
}
END_TEST

static Suite *dev_flusher_suite(void)
{
	Suite *s = suite_create("dev_flusher");
	TCase *tc = tcase_create("flusher");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_one_thread_for_every_flush);
	tcase_add_test(tc, test_caller_goes_on_while_it_flushes);
	tcase_add_test(tc, test_errors_reach_the_waiter);
	tcase_add_test(tc, test_no_capability_in_line);
	tcase_add_test(tc, test_forked_child_flushes_in_line);
	tcase_add_test(tc, test_file_device);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_dev_flusher", dev_flusher_suite);
}
