/* The FUSE bridge (impl/graph/expose.h) on memory pools: files that are thin devices,
 * read and written from several threads at once and compared with the thin read directly,
 * remove while open, duplicates, the device's end, punched holes, pool errors, a stop
 * while busy. Mounting FUSE needs root: skipped (exit 0, said so) otherwise. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "graph/expose.h"
#include "model_util.h"
#include "pool_util.h"
#include "thinp.h"

#define MIB           (1024ull * 1024)
#define BLOCK_SECTORS 128 /* 64 KiB */
#define BB            (BLOCK_SECTORS * 512ull)
#define NR_THREADS    4

struct env {
	char mnt[PATH_MAX];
	struct thinp_pool *p;
	struct tg_expose *x;
};

static void env_mnt(struct env *v)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->mnt, sizeof(v->mnt), "%s/mnt-XXXXXX", pu_top);
	REQ(mkdtemp(v->mnt), "mkdtemp %s: %s", v->mnt, strerror(errno));
}

/* A memory pool and the bridge on V->mnt. */
static void env_start(struct env *v, uint64_t data_bytes, const struct thinp_pool_opts *opts)
{
	struct thinp_pool_opts o = opts ? *opts : (struct thinp_pool_opts){ 0 };
	o.block_sectors = BLOCK_SECTORS;
	o.no_commit_timer = true;
	struct tp_dev *data, *meta;
	REQ0(thinp_dev_open_mem(data_bytes, &data));
	REQ0(thinp_dev_open_mem(16 * MIB, &meta));
	char err[512] = "";
	int r = thinp_pool_format(data, meta, &o, &v->p, err, sizeof(err));
	REQ(!r, "format: %s", err);
	r = tg_expose_start(v->p, v->mnt, &v->x, err, sizeof(err));
	REQ(!r, "tg_expose_start: %d %s", r, err);
}

static void env_open(struct env *v, uint64_t data_bytes, const struct thinp_pool_opts *opts)
{
	env_mnt(v);
	env_start(v, data_bytes, opts);
}

static void env_close(struct env *v)
{
	REQ0(tg_expose_stop(v->x));
	REQ0(thinp_pool_close(v->p));
	REQ(!rmdir(v->mnt), "rmdir %s: %s (still mounted?)", v->mnt, strerror(errno));
}

static void add(struct env *v, const char *name, uint64_t id, uint64_t size)
{
	char err[512] = "";
	int r = tg_expose_add(v->x, name, id, size, err, sizeof(err));
	REQ(!r, "add %s: %d %s", name, r, err);
}

static int open_dev(struct env *v, const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", v->mnt, name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	REQ(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

static void pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = pwrite(fd, buf, len, (off_t)off);
	REQ(n == (ssize_t)len, "pwrite %zu at %" PRIu64 ": %zd (%s)", len, off, n,
	    n < 0 ? strerror(errno) : "short");
}

/* The thin's bytes as libthinp reads them, through a handle of its own. */
static void thin_bytes(struct env *v, uint64_t id, uint8_t *buf, size_t len)
{
	struct thinp_thin *t;
	REQ0(thinp_thin_open(v->p, id, 0, &t));
	REQ0(thinp_read(t, buf, len, 0, NULL));
	thinp_thin_close(t);
}

/* ---- concurrent IO ---- */

struct dev_model {
	const char *name;
	uint64_t id, size;
	uint8_t *bytes; /* what the file must hold; threads write disjoint halves */
};

struct worker {
	struct env *v;
	struct dev_model *m;
	uint64_t lo, hi; /* this thread's part of the device */
	uint64_t seed;
	unsigned ops;
	char fail[256];
};

/* Seeded writes and reads inside [lo, hi), each read compared with the model. Writes of
 * 1 byte up to 96 KiB at any alignment: pool blocks are provisioned, overwritten, and
 * partly written at once by the other thread's neighbouring half. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct mu_rng rng;
	mu_rng_init(&rng, w->seed);
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", w->v->mnt, w->m->name);
	int fd = open(path, O_RDWR | O_CLOEXEC); /* (REQ is for the main thread only) */
	uint8_t *buf = malloc(96 * 1024);
	if (fd < 0 || !buf)
		snprintf(w->fail, sizeof(w->fail), "open %s: %s", w->m->name, strerror(errno));
	for (unsigned i = 0; i < w->ops && !w->fail[0]; i++) {
		uint64_t span = w->hi - w->lo;
		size_t len = 1 + (size_t)mu_below(&rng, 96 * 1024);
		if (len > span)
			len = (size_t)span;
		uint64_t off = w->lo + mu_below(&rng, span - len + 1);
		if (mu_pct(&rng, 60)) {
			mu_fill(&rng, buf, len);
			ssize_t n = pwrite(fd, buf, len, (off_t)off);
			if (n != (ssize_t)len)
				snprintf(w->fail, sizeof(w->fail),
				         "pwrite %zu at %" PRIu64 ": %zd %s", len, off, n,
				         strerror(errno));
			memcpy(w->m->bytes + off, buf, len);
		} else {
			ssize_t n = pread(fd, buf, len, (off_t)off);
			if (n != (ssize_t)len || memcmp(buf, w->m->bytes + off, len))
				snprintf(w->fail, sizeof(w->fail),
				         "pread %zu at %" PRIu64 ": %zd, not what was written", len,
				         off, n);
		}
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Shared with the IO process (fork): the models and the workers' reports. */
static void *shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQ(p != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

/* The IO threads run in a child process: a process whose own threads wait on its own FUSE
 * mount never exits if it dies (the kernel waits for the answers of requests its dead
 * server threads took). So a failing check here ends the server, the child's IO fails,
 * and both exit. It is forked before this process has threads (ThreadSanitizer supports
 * no threads after a multithreaded fork) and starts when a byte comes down GO (none: the
 * test failed before, it exits). */
static pid_t spawn_io(struct worker *w, int go[2])
{
	REQ(!pipe(go), "pipe: %s", strerror(errno));
	pid_t pid = fork();
	REQ(pid >= 0, "fork: %s", strerror(errno));
	if (pid) {
		close(go[0]);
		return pid;
	}
	close(go[1]);
	char c;
	if (read(go[0], &c, 1) != 1)
		_exit(3);
	pthread_t th[NR_THREADS];
	for (unsigned i = 0; i < NR_THREADS; i++)
		if (pthread_create(&th[i], NULL, worker_run, &w[i]))
			_exit(2);
	for (unsigned i = 0; i < NR_THREADS; i++)
		pthread_join(th[i], NULL);
	_exit(0);
}

START_TEST(test_concurrent_io)
{
	pu_ctx("concurrent_io");
	struct env v;
	env_mnt(&v);
	struct dev_model m[2] = { { "a", 1, 8 * MIB, NULL }, { "b", 2, 3 * MIB + 512, NULL } };
	for (unsigned d = 0; d < 2; d++)
		m[d].bytes = shared(m[d].size);
	/* two threads per device, each on its half (split off the block grid) */
	struct worker *w = shared(NR_THREADS * sizeof(*w));
	unsigned ops = (unsigned)mu_scaled(300, 50);
	for (unsigned i = 0; i < NR_THREADS; i++) {
		struct dev_model *dm = &m[i % 2];
		uint64_t mid = dm->size / 2 + 4096 + 512;
		w[i] = (struct worker){ .v = &v, .m = dm, .ops = ops, .seed = pu_seed + i };
		w[i].lo = i < 2 ? 0 : mid;
		w[i].hi = i < 2 ? mid : dm->size;
	}
	int go[2];
	pid_t pid = spawn_io(w, go);
	env_start(&v, 64 * MIB, NULL);
	for (unsigned d = 0; d < 2; d++) {
		REQ0(thinp_create_thin(v.p, m[d].id));
		add(&v, m[d].name, m[d].id, m[d].size);
	}
	REQ(write(go[1], "g", 1) == 1, "starting the IO process");
	close(go[1]);
	/* meanwhile the table changes: a third device comes and goes under the IO (failures
	 * noted, not checked, until the IO process is gone) */
	REQ0(thinp_create_thin(v.p, 3));
	char cpath[PATH_MAX + 8], err[512] = "", churn[640] = "";
	snprintf(cpath, sizeof(cpath), "%s/c", v.mnt);
	for (unsigned i = 0; i < 50 && !churn[0]; i++) {
		uint64_t size = (i + 1) * 4096;
		struct stat st;
		if (tg_expose_add(v.x, "c", 3, size, err, sizeof(err)))
			snprintf(churn, sizeof(churn), "add c %u: %s", i, err);
		else if (stat(cpath, &st) || (uint64_t)st.st_size != size)
			snprintf(churn, sizeof(churn), "c %u: not there or not %" PRIu64 " bytes",
			         i, size);
		else if (tg_expose_remove(v.x, "c", err, sizeof(err)))
			snprintf(churn, sizeof(churn), "remove c %u: %s", i, err);
		else if (stat(cpath, &st) != -1 || errno != ENOENT)
			snprintf(churn, sizeof(churn), "c %u outlived its remove", i);
	}
	int status;
	REQ(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status),
	    "the IO process: status %#x", status);
	REQ(!churn[0], "%s", churn);
	for (unsigned i = 0; i < NR_THREADS; i++)
		REQ(!w[i].fail[0], "thread %u: %s", i, w[i].fail);
	/* no fsync yet: direct_io must have handed every write to the pool already */
	for (unsigned d = 0; d < 2; d++) {
		uint8_t *got = malloc(m[d].size);
		thin_bytes(&v, m[d].id, got, m[d].size);
		REQ(!memcmp(got, m[d].bytes, m[d].size), "thin %" PRIu64 " differs from the writes",
		    m[d].id);
		int fd = open_dev(&v, m[d].name);
		memset(got, 0xa5, m[d].size);
		REQ(pread(fd, got, m[d].size, 0) == (ssize_t)m[d].size, "pread all");
		REQ(!memcmp(got, m[d].bytes, m[d].size), "%s reads back other bytes", m[d].name);
		struct stat st;
		REQ(!fstat(fd, &st), "fstat");
		REQ((uint64_t)st.st_size == m[d].size && S_ISREG(st.st_mode) &&
		            (st.st_mode & 07777) == 0600,
		    "%s: size %lld mode %o", m[d].name, (long long)st.st_size, st.st_mode);
		REQ(!fsync(fd), "fsync: %s", strerror(errno));
		close(fd);
		free(got);
		munmap(m[d].bytes, m[d].size);
	}
	/* the directory lists exactly the two devices */
	DIR *dir = opendir(v.mnt);
	REQ(dir, "opendir");
	unsigned seen = 0, other = 0;
	for (struct dirent *de; (de = readdir(dir));)
		if (!strcmp(de->d_name, "a") || !strcmp(de->d_name, "b"))
			seen++;
		else if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			other++;
	closedir(dir);
	REQ(seen == 2 && !other, "listing: %u devices, %u others", seen, other);
	munmap(w, NR_THREADS * sizeof(*w));
	env_close(&v);
}
END_TEST

/* ---- the device's end ---- */

START_TEST(test_end_of_device)
{
	pu_ctx("end_of_device");
	struct env v;
	env_open(&v, 16 * MIB, NULL);
	REQ0(thinp_create_thin(v.p, 1));
	uint64_t size = MIB + 512;
	add(&v, "a", 1, size);
	int fd = open_dev(&v, "a");
	char buf[8192];
	memset(buf, 0x5a, sizeof(buf));
	errno = 0;
	REQ(pwrite(fd, buf, 512, (off_t)size) == -1 && errno == ENOSPC,
	    "a write at the end: ENOSPC expected, got %s", strerror(errno));
	REQ(pwrite(fd, buf, 4096, (off_t)(size + BB)) == -1 && errno == ENOSPC,
	    "a write past the end: ENOSPC expected, got %s", strerror(errno));
	ssize_t n = pwrite(fd, buf, 4096, (off_t)(size - 1024));
	REQ(n == 1024, "a write across the end: 1024 bytes expected, got %zd", n);
	REQ(pread(fd, buf, sizeof(buf), (off_t)size) == 0, "a read at the end is EOF");
	memset(buf, 0, sizeof(buf));
	REQ(pread(fd, buf, sizeof(buf), (off_t)(size - 1024)) == 1024, "a read across the end");
	REQ(buf[0] == 0x5a && buf[1023] == 0x5a, "the bytes before the end");
	/* the size is the thin's, fixed */
	REQ(ftruncate(fd, (off_t)(2 * size)) == -1 && errno == EINVAL, "truncate: %s",
	    strerror(errno));
	struct stat st;
	REQ(!fstat(fd, &st) && (uint64_t)st.st_size == size, "size changed");
	close(fd);
	env_close(&v);
}
END_TEST

/* ---- no page cache ---- */

/* Bytes written to the thin behind the file's back are what the open file reads next:
 * nothing of the device is cached on this side (direct_io). */
START_TEST(test_no_cache)
{
	pu_ctx("no_cache");
	struct env v;
	env_open(&v, 16 * MIB, NULL);
	REQ0(thinp_create_thin(v.p, 1));
	add(&v, "a", 1, MIB);
	int fd = open_dev(&v, "a");
	uint8_t buf[8192], mark[8192];
	REQ(pread(fd, buf, sizeof(buf), 0) == sizeof(buf) && !buf[0], "first read");
	memset(mark, 0x77, sizeof(mark));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(v.p, 1, 0, &t));
	REQ0(thinp_write(t, mark, sizeof(mark), 0, 0, NULL));
	thinp_thin_close(t);
	REQ(pread(fd, buf, sizeof(buf), 0) == sizeof(buf) && !memcmp(buf, mark, sizeof(buf)),
	    "the file read stale bytes: a cache sits between it and the thin");
	close(fd);
	env_close(&v);
}
END_TEST

/* ---- the table: remove while open, duplicates, bad arguments ---- */

START_TEST(test_table)
{
	pu_ctx("table");
	struct env v;
	env_open(&v, 16 * MIB, NULL);
	REQ0(thinp_create_thin(v.p, 1));
	add(&v, "a", 1, MIB);
	char err[512] = "", path[PATH_MAX + 8];
	REQ(tg_expose_add(v.x, "a", 1, MIB, err, sizeof(err)) == -EEXIST && strstr(err, "a"),
	    "duplicate: %s", err);
	REQ(tg_expose_add(v.x, "c", 7, MIB, err, sizeof(err)) == -ENODEV, "no thin 7: %s", err);
	REQ(tg_expose_add(v.x, "x/y", 1, MIB, err, sizeof(err)) == -EINVAL && strstr(err, "x/y"),
	    "name with a slash: %s", err);
	REQ(tg_expose_add(v.x, "d", 1, MIB + 100, err, sizeof(err)) == -EINVAL &&
	            strstr(err, "512"),
	    "size off the sector grid: %s", err);
	REQ(tg_expose_remove(v.x, "zz", err, sizeof(err)) == -ENOENT && strstr(err, "zz"),
	    "remove unknown: %s", err);
	int fd = open_dev(&v, "a");
	REQ(tg_expose_remove(v.x, "a", err, sizeof(err)) == -EBUSY && strstr(err, "open"),
	    "remove while open: %s", err);
	REQ(tg_expose_wait_closed(v.x, "a", 50) == -EBUSY, "wait while open");
	REQ(!close(fd), "close");
	REQ0(tg_expose_wait_closed(v.x, "a", 60000));
	REQ0(tg_expose_remove(v.x, "a", err, sizeof(err)));
	snprintf(path, sizeof(path), "%s/a", v.mnt);
	struct stat st;
	REQ(stat(path, &st) == -1 && errno == ENOENT, "removed a is still there");
	REQ(tg_expose_wait_closed(v.x, "a", 0) == -ENOENT, "wait on a removed name");
	/* a name comes back as a new file, of its new size */
	add(&v, "a", 1, 2 * MIB);
	REQ(!stat(path, &st) && (uint64_t)st.st_size == 2 * MIB, "re-added a: size %lld",
	    (long long)st.st_size);
	env_close(&v);
}
END_TEST

/* ---- holes ---- */

static unsigned mapped_blocks(struct env *v, uint64_t id)
{
	struct thinp_thin_status ts;
	REQ0(thinp_thin_status(v->p, id, &ts));
	return (unsigned)(ts.mapped_sectors / BLOCK_SECTORS);
}

START_TEST(test_punch_hole)
{
	pu_ctx("punch_hole");
	struct env v;
	env_open(&v, 16 * MIB, NULL);
	REQ0(thinp_create_thin(v.p, 1));
	uint64_t size = 16 * BB;
	add(&v, "a", 1, size);
	int fd = open_dev(&v, "a");
	uint8_t *want = malloc(size), *got = malloc(size);
	struct mu_rng rng;
	mu_rng_init(&rng, pu_seed);
	mu_fill(&rng, want, 10 * BB);
	memset(want + 10 * BB, 0, size - 10 * BB);
	pwrite_all(fd, want, 10 * BB, 0);
	REQ(mapped_blocks(&v, 1) == 10, "10 blocks written, %u mapped", mapped_blocks(&v, 1));
	struct stat st;
	REQ(!fstat(fd, &st) && (uint64_t)st.st_blocks == 10 * BLOCK_SECTORS,
	    "st_blocks %lld: the thin's mapped sectors", (long long)st.st_blocks);
	/* half a block, blocks 1-3 whole, half a block: three blocks return to the pool */
	REQ(!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(BB / 2),
	               (off_t)(4 * BB)),
	    "punch: %s", strerror(errno));
	memset(want + BB / 2, 0, 4 * BB);
	REQ(mapped_blocks(&v, 1) == 7, "after the punch: %u blocks mapped, 7 expected",
	    mapped_blocks(&v, 1));
	/* inside one block: zeros, the block stays */
	REQ(!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(6 * BB + 100), 1000),
	    "small punch: %s", strerror(errno));
	memset(want + 6 * BB + 100, 0, 1000);
	REQ(!fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)(8 * BB + 7), (off_t)(BB + 9)),
	    "zero range: %s", strerror(errno));
	memset(want + 8 * BB + 7, 0, BB + 9);
	REQ(mapped_blocks(&v, 1) == 7, "zeroing unmapped nothing: %u", mapped_blocks(&v, 1));
	/* past the end: clipped, the size stays */
	REQ(!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(size - BB),
	               (off_t)(4 * BB)),
	    "punch across the end: %s", strerror(errno));
	REQ(fallocate(fd, 0, 0, (off_t)BB) == -1 && errno == EOPNOTSUPP,
	    "plain allocation: EOPNOTSUPP expected, %s", strerror(errno));
	REQ(!fstat(fd, &st) && (uint64_t)st.st_size == size, "size moved");
	REQ(pread(fd, got, size, 0) == (ssize_t)size && !memcmp(got, want, size),
	    "bytes after the holes (file)");
	thin_bytes(&v, 1, got, size);
	REQ(!memcmp(got, want, size), "bytes after the holes (thin)");
	close(fd);
	free(want);
	free(got);
	env_close(&v);
}
END_TEST

START_TEST(test_no_discard)
{
	pu_ctx("no_discard");
	struct env v;
	struct thinp_pool_opts o = { .ignore_discard = true };
	env_open(&v, 16 * MIB, &o);
	REQ0(thinp_create_thin(v.p, 1));
	add(&v, "a", 1, 4 * BB);
	int fd = open_dev(&v, "a");
	uint8_t buf[4096];
	memset(buf, 1, sizeof(buf));
	pwrite_all(fd, buf, sizeof(buf), 0);
	REQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)(2 * BB)) == -1 &&
	            errno == EOPNOTSUPP,
	    "a pool ignoring discards punches no hole: %s", strerror(errno));
	REQ(pread(fd, buf, sizeof(buf), 0) == sizeof(buf) && buf[0] == 1 && buf[4095] == 1,
	    "the data stays");
	close(fd);
	env_close(&v);
}
END_TEST

/* ---- errors of the pool reach the writer ---- */

START_TEST(test_pool_full)
{
	pu_ctx("pool_full");
	struct env v;
	struct thinp_pool_opts o = { .error_if_no_space = true };
	env_open(&v, 4 * BB, &o);
	REQ0(thinp_create_thin(v.p, 1));
	add(&v, "a", 1, 16 * BB);
	int fd = open_dev(&v, "a");
	uint8_t *buf = malloc(BB);
	memset(buf, 3, BB);
	for (unsigned b = 0; b < 4; b++)
		pwrite_all(fd, buf, BB, b * BB);
	errno = 0;
	REQ(pwrite(fd, buf, BB, 4 * BB) == -1 && errno == ENOSPC,
	    "a write to a full pool: ENOSPC expected, got %s", strerror(errno));
	/* still served: what was written reads back */
	memset(buf, 0, BB);
	REQ(pread(fd, buf, BB, 3 * BB) == (ssize_t)BB && buf[0] == 3 && buf[BB - 1] == 3,
	    "reading after the failure");
	free(buf);
	close(fd);
	env_close(&v);
}
END_TEST

/* ---- start and stop ---- */

START_TEST(test_start_stop)
{
	pu_ctx("start_stop");
	REQ0(tg_expose_stop(NULL));
	struct env v;
	env_open(&v, 16 * MIB, NULL);
	char err[512] = "", file[PATH_MAX + 8];
	snprintf(file, sizeof(file), "%s/plain", pu_top);
	int pf = open(file, O_CREAT | O_WRONLY, 0600);
	REQ(pf >= 0, "create %s", file);
	close(pf);
	struct tg_expose *x2 = (void *)1;
	REQ(tg_expose_start(v.p, file, &x2, err, sizeof(err)) == -ENOTDIR && !x2 &&
	            strstr(err, file),
	    "start on a file: %s", err);
	REQ0(tg_expose_stop(x2));
	/* a stop while a file is open: detached lazily, the opener's IO fails, no hang */
	REQ0(thinp_create_thin(v.p, 1));
	add(&v, "a", 1, MIB);
	int fd = open_dev(&v, "a");
	uint8_t buf[512] = { 9 };
	pwrite_all(fd, buf, sizeof(buf), 0);
	REQ(tg_expose_stop(v.x) == -EBUSY, "stop while open: -EBUSY expected");
	REQ(pread(fd, buf, sizeof(buf), 0) == -1, "IO after the stop must fail");
	close(fd);
	/* the write reached the thin before the stop */
	thin_bytes(&v, 1, buf, sizeof(buf));
	REQ(buf[0] == 9, "the write before the stop");
	/* a bridge whose process died leaves a dead mount: a new start names the way out */
	pid_t pid = fork();
	REQ(pid >= 0, "fork");
	if (!pid) {
		struct tg_expose *dead;
		_exit(tg_expose_start(v.p, v.mnt, &dead, err, sizeof(err)) ? 1 : 0);
	}
	int status;
	REQ(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status),
	    "the child's bridge");
	x2 = NULL;
	REQ(tg_expose_start(v.p, v.mnt, &x2, err, sizeof(err)) == -ENOTCONN && !x2 &&
	            strstr(err, "umount -l"),
	    "start on a dead mount: %s", err);
	REQ(!umount2(v.mnt, MNT_DETACH), "umount the dead mount: %s", strerror(errno));
	REQ0(thinp_pool_close(v.p));
	REQ(!rmdir(v.mnt), "rmdir %s: %s (still mounted?)", v.mnt, strerror(errno));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("expose");
	TCase *tc = tcase_create("expose");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_concurrent_io);
	tcase_add_test(tc, test_end_of_device);
	tcase_add_test(tc, test_no_cache);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_punch_hole);
	tcase_add_test(tc, test_no_discard);
	tcase_add_test(tc, test_pool_full);
	tcase_add_test(tc, test_start_stop);
	suite_add_tcase(s, tc);
	return s;
}

/* A test that failed (its process gone) leaves its mount behind, its connection dead:
 * detach every mnt-* under the scratch root before removing it. */
static void detach_mounts(void)
{
	DIR *d = opendir(pu_top);
	if (!d)
		return;
	char path[PATH_MAX + 300];
	for (struct dirent *de; (de = readdir(d));)
		if (!strncmp(de->d_name, "mnt-", 4)) {
			snprintf(path, sizeof(path), "%s/%s", pu_top, de->d_name);
			umount2(path, MNT_DETACH);
		}
	closedir(d);
}

int main(void)
{
	if (geteuid()) {
		printf("test_expose: not root, FUSE cannot be mounted here: skipped\n");
		return 0;
	}
	pu_seed = mu_seed(20261205);
	int r = mu_mkdtemp(pu_top, sizeof(pu_top), "expose");
	if (r) {
		fprintf(stderr, "cannot create a scratch directory: %s\n", strerror(-r));
		return 1;
	}
	printf("seed %" PRIu64 " (THINP_SEED), scratch %s\n", pu_seed, pu_top);
	fflush(stdout);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	detach_mounts();
	mu_rmtree(pu_top);
	if (failed)
		fprintf(stderr, "FAILED with seed %" PRIu64 ": rerun with THINP_SEED=%" PRIu64 "\n",
		        pu_seed, pu_seed);
	return failed ? 1 : 0;
}
