/* Batched writes (tp_dev_pwrite_batch, impl/io/dev_aio.c):
 *
 *  - on an O_DIRECT file (and an O_DIRECT loop device, as root) the writes go out through one
 *    io_submit, not as write syscalls (/proc/self/io's syscw does not move), land where they
 *    should, overlapping ones included, and count one write each;
 *  - a buffered file writes them one after the other (syscw moves by one each), and a device
 *    without the op (memory) as plain pwrites: same bytes, same counts;
 *  - refusals: too many writes, a range past the end (nothing written), a read-only device;
 *  - AIO refused (a descriptor io_submit rejects): nothing written, -EOPNOTSUPP, and the
 *    device's batches stay off without asking again;
 *  - four threads batching on one device at once: every byte and count exact.
 *
 * THINP_SEED picks the offsets and bytes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/dev_internal.h"
#include "pool_util.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define DEV_BYTES (8 * MiB)

static void fill(uint8_t *b, size_t len, uint64_t salt)
{
	uint64_t x = pu_seed ^ (salt * 0x9E3779B97F4A7C15ull) ^ 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x | 1);
	}
}

/* write syscalls of this process so far; -1 when /proc/self/io cannot tell */
static long syscw(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "syscw:", 6))
			v = atol(line + 6);
	fclose(f);
	return v;
}

static void *aligned(size_t len)
{
	void *p = NULL;
	REQ(posix_memalign(&p, 4096, len) == 0, "out of memory");
	return p;
}

/* Three writes: 64 KiB at a seeded 64 KiB slot, 4 KiB inside it carrying the same bytes,
 * 8 KiB at a seeded 4 KiB slot of the second half. Written, read back, counted; SYSCW_PER
 * write syscalls per write expected (-1: not checked). */
static void batch_roundtrip(struct tp_dev *d, long syscw_per)
{
	uint8_t *a = aligned(64 * KiB), *c = aligned(8 * KiB), *back = aligned(64 * KiB);
	uint64_t oa = (pu_seed % 32) * 64 * KiB, oc = DEV_BYTES / 2 + (pu_seed % 500) * 4 * KiB;
	fill(a, 64 * KiB, 1);
	fill(c, 8 * KiB, 2);
	struct tp_dev_write w[3] = {
		{ .buf = a, .len = 64 * KiB, .off = oa },
		{ .buf = a + 16 * KiB, .len = 4 * KiB, .off = oa + 16 * KiB },
		{ .buf = c, .len = 8 * KiB, .off = oc },
	};
	struct tp_io_counters c0 = tp_dev_ctr(d);
	long s0 = syscw();
	REQ0(tp_dev_pwrite_batch(d, w, 3));
	long s1 = syscw();
	struct tp_io_counters c1 = tp_dev_ctr(d);
	if (syscw_per >= 0 && s0 >= 0 && s1 >= 0)
		REQ(s1 - s0 == 3 * syscw_per, "%ld write syscalls for 3 batched writes, want %ld",
		    s1 - s0, 3 * syscw_per);
	else if (syscw_per >= 0)
		printf("SKIP the write syscall count: /proc/self/io unreadable\n");
	REQ(c1.writes - c0.writes == 3 && c1.bytes_written - c0.bytes_written == 76 * KiB,
	    "counted %" PRIu64 " writes, %" PRIu64 " bytes", c1.writes - c0.writes,
	    c1.bytes_written - c0.bytes_written);
	REQ0(tp_dev_pread(d, back, 64 * KiB, oa));
	REQ(memcmp(back, a, 64 * KiB) == 0, "the 64 KiB write at %" PRIu64 " reads back wrong", oa);
	REQ0(tp_dev_pread(d, back, 8 * KiB, oc));
	REQ(memcmp(back, c, 8 * KiB) == 0, "the 8 KiB write at %" PRIu64 " reads back wrong", oc);
	free(a);
	free(c);
	free(back);
}

static void scratch_file(char *path, size_t len, const char *name)
{
	int n = snprintf(path, len, "%s/%s", pu_top, name);
	REQ(n > 0 && (size_t)n < len, "path too long");
}

START_TEST(test_batch_direct_file)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	pu_ctx("O_DIRECT file");
	scratch_file(path, sizeof(path), "direct.img");
	int r = tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_DIRECT, DEV_BYTES, &d);
	if (r == -EINVAL) {
		printf("SKIP test_batch_direct_file: %s refuses O_DIRECT\n", pu_top);
		return;
	}
	REQ0(r);
	batch_roundtrip(d, 0);
	batch_roundtrip(d, 0); /* the kept context again */
	tp_dev_close(d);
}
END_TEST

START_TEST(test_batch_direct_loop)
{
	char path[PATH_MAX];
	struct tp_dev *f, *d;
	pu_ctx("O_DIRECT loop device");
	if (geteuid() != 0) {
		printf("SKIP test_batch_direct_loop: not root (loop devices)\n");
		return;
	}
	scratch_file(path, sizeof(path), "loop.img");
	REQ0(tp_dev_open_file(path, TP_DEV_CREATE, DEV_BYTES, &f));
	tp_dev_close(f);
	int r = tp_dev_open_loop(path, TP_DEV_DIRECT, &d);
	if (r) {
		printf("SKIP test_batch_direct_loop: no loop device (%s)\n", strerror(-r));
		return;
	}
	batch_roundtrip(d, 0);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_batch_plain)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	pu_ctx("buffered file");
	scratch_file(path, sizeof(path), "plain.img");
	REQ0(tp_dev_open_file(path, TP_DEV_CREATE, DEV_BYTES, &d));
	batch_roundtrip(d, 1);
	tp_dev_close(d);
	pu_ctx("memory device");
	REQ0(tp_dev_open_mem(DEV_BYTES, &d));
	REQ(d->ops->pwrite_batch == NULL, "the memory device grew a batch op: test its own way");
	batch_roundtrip(d, 0);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_batch_refusals)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	uint8_t *a = aligned(4 * KiB);
	fill(a, 4 * KiB, 3);
	struct tp_dev_write w[TP_DEV_BATCH_MAX + 1];
	for (int i = 0; i <= TP_DEV_BATCH_MAX; i++)
		w[i] = (struct tp_dev_write){ .buf = a, .len = 4 * KiB, .off = (uint64_t)i * 4 * KiB };
	pu_ctx("refusals");
	scratch_file(path, sizeof(path), "refuse.img");
	int r = tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_DIRECT, DEV_BYTES, &d);
	if (r == -EINVAL) {
		REQ0(tp_dev_open_file(path, TP_DEV_CREATE, DEV_BYTES, &d));
	} else {
		REQ0(r);
	}
	r = tp_dev_pwrite_batch(d, w, TP_DEV_BATCH_MAX + 1);
	REQ(r == -EINVAL, "%d writes in a batch: %d, not -EINVAL", TP_DEV_BATCH_MAX + 1, r);
	w[1].off = DEV_BYTES - 2 * KiB; /* runs past the end */
	r = tp_dev_pwrite_batch(d, w, 2);
	REQ(r == -EINVAL, "a write past the end: %d, not -EINVAL", r);
	REQ(tp_dev_ctr(d).writes == 0, "%" PRIu64 " writes counted after refusals",
	    tp_dev_ctr(d).writes);
	uint8_t *back = aligned(4 * KiB);
	REQ0(tp_dev_pread(d, back, 4 * KiB, 0));
	for (int i = 0; i < 4096; i++)
		REQ(back[i] == 0, "a refused batch wrote byte %d", i);
	tp_dev_close(d);
	REQ0(tp_dev_open_file(path, TP_DEV_RDONLY, 0, &d));
	w[1].off = 4 * KiB;
	r = tp_dev_pwrite_batch(d, w, 2);
	REQ(r == -EROFS, "a read-only device: %d, not -EROFS", r);
	tp_dev_close(d);
	free(back);
	free(a);
}
END_TEST

START_TEST(test_batch_aio_refused)
{
	char path[PATH_MAX];
	struct tp_aio_ctxs c;
	bool done[2] = { true, true };
	uint8_t *a = aligned(4 * KiB);
	fill(a, 4 * KiB, 4);
	struct tp_dev_write w[2] = { { .buf = a, .len = 4 * KiB, .off = 0 },
				     { .buf = a, .len = 4 * KiB, .off = 8 * KiB } };
	pu_ctx("AIO refused");
	scratch_file(path, sizeof(path), "opath.img");
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	REQ(fd >= 0 && ftruncate(fd, 64 * KiB) == 0, "cannot make %s", path);
	close(fd);
	fd = open(path, O_PATH); /* io_submit refuses it (EBADF) */
	REQ(fd >= 0, "O_PATH open of %s", path);
	tp_aio_ctxs_init(&c);
	int r = tp_aio_pwrite_batch(&c, fd, w, 2, done);
	REQ(r == -EOPNOTSUPP, "a descriptor AIO refuses: %d, not -EOPNOTSUPP", r);
	REQ(!done[0] && !done[1], "writes marked done after a refusal");
	REQ(c.unavailable && c.nidle == 0, "still on (%d) with %d contexts kept", !c.unavailable,
	    c.nidle);
	/* off from then on, without another io_submit: a good descriptor is refused too */
	int good = open(path, O_RDWR);
	REQ(good >= 0, "open %s", path);
	r = tp_aio_pwrite_batch(&c, good, w, 2, done);
	REQ(r == -EOPNOTSUPP, "after a refusal: %d, not -EOPNOTSUPP", r);
	tp_aio_ctxs_destroy(&c);
	close(good);
	close(fd);
	free(a);
}
END_TEST

struct thr {
	struct tp_dev *d;
	unsigned idx;
	int r;
};

/* 64 batches of two 4 KiB writes to this thread's own 256 KiB */
static void *batcher(void *arg)
{
	struct thr *t = arg;
	uint8_t *a = NULL, *b = NULL;
	if (posix_memalign((void **)&a, 4096, 4 * KiB) || posix_memalign((void **)&b, 4096, 4 * KiB)) {
		t->r = -ENOMEM;
		return NULL;
	}
	uint64_t base = t->idx * 256 * KiB;
	for (unsigned i = 0; i < 64 && !t->r; i++) {
		fill(a, 4 * KiB, 1000 + t->idx * 64 + i);
		fill(b, 4 * KiB, 5000 + t->idx * 64 + i);
		struct tp_dev_write w[2] = { { .buf = a, .len = 4 * KiB, .off = base + (i % 32) * 8 * KiB },
					     { .buf = b, .len = 4 * KiB,
					       .off = base + (i % 32) * 8 * KiB + 4 * KiB } };
		t->r = tp_dev_pwrite_batch(t->d, w, 2);
	}
	free(a);
	free(b);
	return NULL;
}

START_TEST(test_batch_threads)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	pu_ctx("four threads");
	scratch_file(path, sizeof(path), "threads.img");
	int r = tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_DIRECT, DEV_BYTES, &d);
	if (r == -EINVAL) {
		printf("SKIP test_batch_threads: %s refuses O_DIRECT\n", pu_top);
		return;
	}
	REQ0(r);
	pthread_t th[4];
	struct thr t[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct thr){ .d = d, .idx = i };
		REQ(pthread_create(&th[i], NULL, batcher, &t[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		REQ0(t[i].r);
	}
	struct tp_io_counters c = tp_dev_ctr(d);
	REQ(c.writes == 4 * 128 && c.bytes_written == 4 * 128 * 4 * KiB,
	    "%" PRIu64 " writes, %" PRIu64 " bytes", c.writes, c.bytes_written);
	/* the last pass over each thread's slots (batches 32..63) is what the device holds */
	uint8_t *want = aligned(4 * KiB), *back = aligned(4 * KiB);
	for (unsigned i = 0; i < 4; i++)
		for (unsigned k = 32; k < 64; k++) {
			uint64_t off = i * 256 * KiB + (k % 32) * 8 * KiB;
			fill(want, 4 * KiB, 1000 + i * 64 + k);
			REQ0(tp_dev_pread(d, back, 4 * KiB, off));
			REQ(memcmp(back, want, 4 * KiB) == 0, "thread %u batch %u: first write", i, k);
			fill(want, 4 * KiB, 5000 + i * 64 + k);
			REQ0(tp_dev_pread(d, back, 4 * KiB, off + 4 * KiB));
			REQ(memcmp(back, want, 4 * KiB) == 0, "thread %u batch %u: second write", i, k);
		}
	free(want);
	free(back);
	tp_dev_close(d);
}
END_TEST

static Suite *batch_suite(void)
{
	Suite *s = suite_create("dev_batch");
	TCase *tc = tcase_create("batch");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_batch_direct_file);
	tcase_add_test(tc, test_batch_direct_loop);
	tcase_add_test(tc, test_batch_plain);
	tcase_add_test(tc, test_batch_refusals);
	tcase_add_test(tc, test_batch_aio_refused);
	tcase_add_test(tc, test_batch_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(0xba7c4ull, "devbatch", batch_suite);
}
