/* Benchmark (not a test) of the pool's lock scope: 4 KiB writes from 1 and
 * from 2 threads on one thin device, each thread in its own region, and the
 * ratio of their throughputs (ops/s with 2 threads / ops/s with 1; 2.0 is
 * perfect scaling, and on 2 cores the goal of issue #14 is >= 1.8 for
 * overwrites on a memory device).
 *
 *   overwrite   random 4 KiB writes into blocks provisioned beforehand
 *   provision   a 4 KiB first write into each block of the region (zeroing on,
 *               the kernel's default: the block is zeroed, then written; --zeroing off
 *               writes the 4 KiB alone, to tell the zeroing's memory traffic from the
 *               pool's own cost), every data
 *               block written once before by a scratch thin, deleted (no page faults
 *               of fresh memory, no sparse file filled in)
 *
 * on two stores: `mem` (data and metadata in memory: the pool's own cost) and
 * `direct` (data in a preallocated file opened O_DIRECT, metadata in a file
 * beside it, as direct-lvm), each for --reps fresh pools per thread count. The
 * commit timer is off so that a commit does not land in one repetition and not
 * another: the figures are the IO paths' locks, not the commit.
 *
 * Run (after make): BUILD/tests/tools/bench_threads [--reps 5] [--ops N] [--direct-ops N]
 *   [--blocks N] [--dir DIR] [--seed S] [--only mem|direct] [--zeroing on|off]
 * or `make bench-threads ARGS=...`. Prints one line per case and repetition,
 * then per case the median ratio with its min-max (RESULT) and what an op cost the threads
 * (COST: CPU time and sleeps per op, which a loaded machine barely moves); exit 1 on an IO
 * error. The memory overwrite case also runs its floor in each repetition (FLOOR: the same
 * threads' 4 KiB copies at the same offsets into plain memory, no pool), so its ratio can be
 * read against what the machine's memory lets two threads do at all. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "thinp.h"

#define K4         4096u
#define BLOCK      (64u * 1024u)
#define MAX_THR    2
#define MAX_REPS   15
#define META_BYTES (64ull << 20)

struct opts {
	unsigned reps;
	uint64_t ops;        /* overwrites per thread, memory */
	uint64_t direct_ops; /* overwrites per thread, O_DIRECT file */
	uint64_t blocks; /* pool blocks per thread's region */
	uint64_t seed;
	const char *dir;
	const char *only;
	bool no_zeroing; /* --zeroing off: provisioning writes only its 4 KiB (skip_block_zeroing) */
};

struct worker {
	struct thinp_thin *t;
	pthread_barrier_t *start;
	bool provision;
	uint64_t first, blocks, ops, seed;
	uint8_t *floor; /* set: the floor run, the same 4 KiB copies into this memory, no pool */
	double t0, t1; /* this thread's own start and end */
	double cpu;    /* this thread's CPU seconds meanwhile */
	long nvcsw;    /* and its voluntary context switches: the times it slept on a lock */
	int err;
	char pad[64]; /* the two threads' structs never share a cache line */
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static long thread_nvcsw(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_THREAD, &ru) ? 0 : ru.ru_nvcsw;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	void *buf;
	if (posix_memalign(&buf, K4, K4)) {
		w->err = -ENOMEM;
		return NULL;
	}
	memset(buf, 0x5a, K4);
	uint64_t s = w->seed;
	int err = 0;
	pthread_barrier_wait(w->start);
	long cs0 = thread_nvcsw();
	double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	w->t0 = now_s();
	if (w->provision) {
		/* a random 4 KiB of each block: partial, so zeroed first */
		for (uint64_t b = 0; b < w->blocks && !err; b++) {
			uint64_t off = (w->first + b) * BLOCK + splitmix(&s) % (BLOCK / K4) * K4;
			err = thinp_write(w->t, buf, K4, off, 0, NULL);
		}
	} else {
		uint64_t pages = w->blocks * (BLOCK / K4);
		for (uint64_t i = 0; i < w->ops && !err; i++) {
			uint64_t off = w->first * BLOCK + splitmix(&s) % pages * K4;
			if (w->floor) {
				memcpy(w->floor + off, buf, K4);
				__asm__ volatile("" ::: "memory"); /* every copy is made */
			} else {
				err = thinp_write(w->t, buf, K4, off, 0, NULL);
			}
		}
	}
	w->t1 = now_s();
	w->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	w->nvcsw = thread_nvcsw() - cs0;
	w->err = err;
	free(buf);
	return NULL;
}

/* What the threads of a run spent per op: CPU microseconds and sleeps (voluntary context
 * switches: waits for a lock, or for IO). Unlike ops/s, on a loaded machine these barely move
 * with the load, and a lock that two threads fight over shows as sleeps. */
struct run_cost {
	double cpu_us, sleeps;
};

/* Start NTHR workers W together and wait for them: ops/s from the first one's start to the last
 * one's end (the main thread's own clock could start late on a loaded machine), and *COST; < 0
 * when a write failed. */
static double time_workers(struct worker *w, int nthr, struct run_cost *cost)
{
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)nthr + 1);
	pthread_t th[MAX_THR];
	for (int i = 0; i < nthr; i++) {
		w[i].start = &start;
		pthread_create(&th[i], NULL, run_worker, &w[i]);
	}
	pthread_barrier_wait(&start);
	for (int i = 0; i < nthr; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	double t0 = w[0].t0, t1 = w[0].t1;
	for (int i = 1; i < nthr; i++) {
		t0 = w[i].t0 < t0 ? w[i].t0 : t0;
		t1 = w[i].t1 > t1 ? w[i].t1 : t1;
	}
	uint64_t total = 0;
	double cpu = 0, sleeps = 0;
	for (int i = 0; i < nthr; i++) {
		if (w[i].err)
			return -1;
		total += w[i].provision ? w[i].blocks : w[i].ops;
		cpu += w[i].cpu;
		sleeps += (double)w[i].nvcsw;
	}
	cost->cpu_us = cpu * 1e6 / (double)total;
	cost->sleeps = sleeps / (double)total;
	return (double)total / (t1 - t0);
}

/* The floor of the memory overwrite case: the same threads, offsets and 4 KiB copies into
 * plain memory of the same size (written once first, as the pool's regions are), no pool. Its
 * 2/1 ratio is what the memory system allows two threads on this machine. */
static double floor_run(const struct opts *o, int nthr, unsigned rep, struct run_cost *cost)
{
	size_t bytes = (size_t)MAX_THR * o->blocks * BLOCK;
	void *mem;
	if (posix_memalign(&mem, K4, bytes)) {
		fprintf(stderr, "bench_threads: no memory for the floor's %zu bytes\n", bytes);
		return -1;
	}
	memset(mem, 0xa5, bytes);
	struct worker w[MAX_THR];
	for (int i = 0; i < nthr; i++)
		w[i] = (struct worker){.floor = mem, .first = (uint64_t)i * o->blocks,
				       .blocks = o->blocks, .ops = o->ops,
				       .seed = o->seed * 1000003u + rep * 31u + (unsigned)i};
	double ops_s = time_workers(w, nthr, cost);
	free(mem);
	return ops_s;
}

/* One repetition: a fresh pool, NTHR threads; returns ops/s or < 0, and *COST. */
static double one_run(const struct opts *o, bool direct, bool provision, int nthr, unsigned rep,
		      const char *dir, struct run_cost *cost)
{
	uint64_t data_bytes = (uint64_t)MAX_THR * o->blocks * BLOCK;
	struct tp_dev *data = NULL, *meta = NULL;
	char dpath[4096], mpath[4096];
	int r;
	if (direct) {
		snprintf(dpath, sizeof(dpath), "%s/data", dir);
		snprintf(mpath, sizeof(mpath), "%s/meta", dir);
		unlink(dpath);
		unlink(mpath);
		r = thinp_dev_open(dpath, THINP_DEV_CREATE | THINP_DEV_DIRECT, data_bytes, &data);
		if (!r)
			r = thinp_dev_open(mpath, THINP_DEV_CREATE, META_BYTES, &meta);
	} else {
		r = thinp_dev_open_mem(data_bytes, &data);
		if (!r)
			r = thinp_dev_open_mem(META_BYTES, &meta);
	}
	if (r) {
		fprintf(stderr, "bench_threads: opening the devices failed: %s\n", strerror(-r));
		if (data)
			thinp_dev_close(data);
		return -1;
	}
	struct thinp_pool_opts po = {.block_sectors = BLOCK / 512,
				     .no_commit_timer = true,
				     .skip_block_zeroing = o->no_zeroing};
	struct thinp_pool *p;
	char err[256];
	if ((r = thinp_pool_format(data, meta, &po, &p, err, sizeof(err)))) {
		fprintf(stderr, "bench_threads: formatting the pool failed: %s\n", err);
		return -1;
	}
	struct thinp_thin *t = NULL;
	if (provision) {
		/* every data block written once by a scratch thin, deleted and committed: the first
		 * writes then measure the pool, not the page faults of fresh memory or the file
		 * system allocating a sparse file */
		void *blk = NULL;
		r = thinp_create_thin(p, 2);
		if (!r)
			r = thinp_thin_open(p, 2, 0, &t);
		if (!r && posix_memalign(&blk, K4, BLOCK)) {
			blk = NULL;
			r = -ENOMEM;
		}
		if (blk)
			memset(blk, 0, BLOCK);
		for (uint64_t b = 0; !r && b < data_bytes / BLOCK; b++)
			r = thinp_write(t, blk, BLOCK, b * BLOCK, 0, NULL);
		free(blk);
		if (t) {
			thinp_thin_close(t);
			t = NULL;
		}
		if (!r)
			r = thinp_delete_thin(p, 2);
		if (!r)
			r = thinp_pool_commit(p);
	}
	if (!r)
		r = thinp_create_thin(p, 1);
	if (!r)
		r = thinp_thin_open(p, 1, 0, &t);
	if (!r && !provision) {
		/* the regions provisioned (whole blocks: no zeroing) and committed */
		void *blk;
		if (posix_memalign(&blk, K4, BLOCK))
			r = -ENOMEM;
		else
			memset(blk, 0xa5, BLOCK);
		for (uint64_t b = 0; !r && b < (uint64_t)nthr * o->blocks; b++)
			r = thinp_write(t, blk, BLOCK, b * BLOCK, 0, NULL);
		if (!r)
			free(blk);
		if (!r)
			r = thinp_pool_commit(p);
	}
	double ops_s = -1;
	if (r) {
		fprintf(stderr, "bench_threads: preparing the pool failed: %s\n", thinp_pool_error(p));
		goto out;
	}
	struct worker w[MAX_THR];
	for (int i = 0; i < nthr; i++)
		w[i] = (struct worker){.t = t, .provision = provision, .first = (uint64_t)i * o->blocks,
				       .blocks = o->blocks, .ops = direct ? o->direct_ops : o->ops,
				       .seed = o->seed * 1000003u + rep * 31u + (unsigned)i};
	ops_s = time_workers(w, nthr, cost);
	if (ops_s < 0)
		fprintf(stderr, "bench_threads: a write failed: %s\n", thinp_pool_error(p));
out:
	if (t)
		thinp_thin_close(t);
	thinp_pool_close(p);
	if (direct) {
		unlink(dpath);
		unlink(mpath);
	}
	return ops_s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int run_case(const struct opts *o, bool direct, bool provision, const char *dir)
{
	const char *name = provision ? "provision" : "overwrite";
	const char *store = direct ? "direct" : "mem";
	double ratio[MAX_REPS], one[MAX_REPS], two[MAX_REPS];
	double cpu1[MAX_REPS], cpu2[MAX_REPS], sl1[MAX_REPS], sl2[MAX_REPS];
	double fratio[MAX_REPS], f1[MAX_REPS], f2[MAX_REPS];
	bool floor = !direct && !provision;
	for (unsigned rep = 0; rep < o->reps; rep++) {
		/* 1 and 2 threads alternate, so a burst of load hits both alike */
		struct run_cost c1, c2;
		one[rep] = one_run(o, direct, provision, 1, rep, dir, &c1);
		two[rep] = one_run(o, direct, provision, 2, rep, dir, &c2);
		if (one[rep] < 0 || two[rep] < 0)
			return 1;
		ratio[rep] = two[rep] / one[rep];
		cpu1[rep] = c1.cpu_us;
		cpu2[rep] = c2.cpu_us;
		sl1[rep] = c1.sleeps;
		sl2[rep] = c2.sleeps;
		printf("%-9s %-6s rep %u: 1 thread %.0f ops/s, 2 threads %.0f ops/s, ratio %.2f; "
		       "per op: CPU %.2f / %.2f us, sleeps %.3f / %.3f\n",
		       name, store, rep + 1, one[rep], two[rep], ratio[rep], c1.cpu_us, c2.cpu_us,
		       c1.sleeps, c2.sleeps);
		fflush(stdout);
		if (floor) {
			struct run_cost fc1, fc2;
			f1[rep] = floor_run(o, 1, rep, &fc1);
			f2[rep] = floor_run(o, 2, rep, &fc2);
			if (f1[rep] < 0 || f2[rep] < 0)
				return 1;
			fratio[rep] = f2[rep] / f1[rep];
			printf("floor     mem    rep %u: 1 thread %.0f copies/s, 2 threads %.0f copies/s, "
			       "ratio %.2f; per copy: CPU %.2f / %.2f us\n",
			       rep + 1, f1[rep], f2[rep], fratio[rep], fc1.cpu_us, fc2.cpu_us);
			fflush(stdout);
		}
	}
	double m1 = median(one, o->reps), m2 = median(two, o->reps), mr = median(ratio, o->reps);
	printf("RESULT %s %s: 1 thread %.0f ops/s, 2 threads %.0f ops/s, 2/1 ratio %.2f "
	       "[%.2f-%.2f] (median [min-max] of %u)\n",
	       name, store, m1, m2, mr, ratio[0], ratio[o->reps - 1], o->reps);
	if (floor) {
		double fm = median(fratio, o->reps); /* (sorts fratio: min and max at its ends) */
		printf("FLOOR %s %s: the same 4 KiB copies into plain memory, no pool: 1 thread %.0f/s, "
		       "2 threads %.0f/s, 2/1 ratio %.2f [%.2f-%.2f] (median [min-max] of %u)\n",
		       name, store, median(f1, o->reps), median(f2, o->reps), fm, fratio[0],
		       fratio[o->reps - 1], o->reps);
	}
	printf("COST %s %s: per op, 1 thread CPU %.2f us and %.3f sleeps, 2 threads CPU %.2f us and "
	       "%.3f sleeps (medians of %u)\n",
	       name, store, median(cpu1, o->reps), median(sl1, o->reps), median(cpu2, o->reps),
	       median(sl2, o->reps), o->reps);
	return 0;
}

static int usage(const char *msg)
{
	fprintf(stderr,
		"bench_threads: %s\n"
		"usage: bench_threads [--reps 1..%d] [--ops N] [--direct-ops N] [--blocks N] [--dir DIR] [--seed S] "
		"[--only mem|direct] [--zeroing on|off]\n",
		msg, MAX_REPS);
	return 2;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return false;
	*v = x;
	return true;
}

int main(int argc, char **argv)
{
	struct opts o = {.reps = 5, .ops = 400000, .direct_ops = 20000, .blocks = 1024, .seed = 0x7468726473ull};
	const char *env = getenv("THINP_SEED");
	if (env && !parse_u64(env, &o.seed))
		return usage("THINP_SEED is not a number: set it to an unsigned integer");
	o.dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t x;
		char msg[300];
		if (!v) {
			snprintf(msg, sizeof(msg), "%s needs a value (or is unknown)", a);
			return usage(msg);
		}
		i++;
		if (!strcmp(a, "--zeroing")) {
			if (strcmp(v, "on") && strcmp(v, "off")) {
				snprintf(msg, sizeof(msg), "--zeroing %s: give on or off", v);
				return usage(msg);
			}
			o.no_zeroing = !strcmp(v, "off");
			continue;
		}
		if (!strcmp(a, "--dir") || !strcmp(a, "--only")) {
			*(!strcmp(a, "--dir") ? &o.dir : &o.only) = v;
			if (o.only && strcmp(o.only, "mem") && strcmp(o.only, "direct")) {
				snprintf(msg, sizeof(msg), "--only %s: give mem or direct", v);
				return usage(msg);
			}
			continue;
		}
		if (!parse_u64(v, &x) || !x) {
			snprintf(msg, sizeof(msg), "%s %s: give a positive integer", a, v);
			return usage(msg);
		}
		if (!strcmp(a, "--reps") && x <= MAX_REPS)
			o.reps = (unsigned)x;
		else if (!strcmp(a, "--ops"))
			o.ops = x;
		else if (!strcmp(a, "--direct-ops"))
			o.direct_ops = x;
		else if (!strcmp(a, "--blocks") && x <= (1ull << 24))
			o.blocks = x;
		else if (!strcmp(a, "--seed"))
			o.seed = x;
		else {
			snprintf(msg, sizeof(msg), "%s %s: unknown option or out of range", a, v);
			return usage(msg);
		}
	}
	printf("bench_threads: seed %" PRIu64 " (THINP_SEED), %u repetitions, %" PRIu64
	       " overwrites per thread (%" PRIu64 " on the O_DIRECT file), %" PRIu64
	       " blocks of 64 KiB per thread, zeroing %s, %ld CPUs online\n",
	       o.seed, o.reps, o.ops, o.direct_ops, o.blocks, o.no_zeroing ? "off" : "on",
	       sysconf(_SC_NPROCESSORS_ONLN));
	int rc = 0;
	if (!o.only || !strcmp(o.only, "mem")) {
		rc |= run_case(&o, false, false, NULL);
		rc |= run_case(&o, false, true, NULL);
	}
	if (!rc && (!o.only || !strcmp(o.only, "direct"))) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/bench_threads.XXXXXX", o.dir);
		if (!mkdtemp(dir)) {
			fprintf(stderr, "bench_threads: mkdtemp under %s failed: %s (set --dir)\n", o.dir,
				strerror(errno));
			return 1;
		}
		rc |= run_case(&o, true, false, dir);
		if (!rc)
			rc |= run_case(&o, true, true, dir);
		rmdir(dir);
	}
	return rc ? 1 : 0;
}
