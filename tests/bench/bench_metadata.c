/* Micro-benchmark of the thin metadata: one thin device filled with N
 * mappings inserted in random virtual-block order (a commit every 10k
 * inserts), then random lookups of existing keys. For each N it prints
 * inserts/s, lookups/s and the block-manager cache figures (capacity, peak
 * cached blocks, memory = peak * 4 KiB, hits/misses) to show that the cost
 * per operation grows like log(n) and memory stays bounded by the cache.
 *
 * Build (after `make lib`):
 *   cc -O2 -Iimpl tests/bench/bench_metadata.c build/libthinp.a -o build/bench_metadata -lpthread
 * Run:
 *   build/bench_metadata                  10k and 1M mappings (about a minute)
 *   build/bench_metadata --max 10000000   adds 10M mappings (takes much longer:
 *                                         ~10x the 1M run, ~250 MB of metadata)
 * Options: --max N (largest size, default 1000000; sizes are 10k, 1M, 10M
 * up to N, plus N itself), --dir DIR (where the scratch directory goes,
 * default $TMPDIR or /tmp), --cache BLOCKS (0 = library default), --lookups N
 * (default: N, at most 1M), --seed S, --order random|seq (the insertion order,
 * default random), --json FILE (the results as JSON too), --quick (what
 * `make bench` runs: --max 10000000 --order seq --lookups 200000).
 *
 * --order seq builds the tree by appending (vblock 0, 1, 2, ...): the 10M
 * fill then takes about a minute instead of ten, because every insert lands
 * in the rightmost leaf, whose path is cached and already shadowed. The tree
 * it leaves is what appending gives (leaves as full as the split rule leaves
 * them after appends; its size is the meta column), not the half-to-full
 * leaves of random inserts; the lookups are random either way, so every
 * lookup walks root to leaf and the cache must hold the tree or miss. The
 * ratio of interest (x10k) compares lookups at equal tree shape across sizes.
 *
 * Each size also measures the machine's bound (docs/benchmark-method.md, what a lookup
 * costs): a pointer chase (one dependent random read after another) over a buffer as big as
 * that size's metadata, with 4 KiB pages and with transparent huge pages, and the lookups in
 * units of that read, taken in turns with it so that both see the same load (pair.rd). The
 * last line ("bound:") says what the largest size costs in dependent DRAM reads, what this
 * design and any design must pay at least, and whether the goal (<= 1.5x the 10k cost) is
 * within reach on this machine at all; --json has the same under "bound".
 *
 * The metadata lives in a 2 GiB sparse file in a fresh mkdtemp directory,
 * removed afterwards; there is no data device (only metadata is measured). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "io/dev.h"
#include "pdata/block_manager.h"
#include "thin/metadata.h"

#define META_FILE_SIZE     (2ull << 30)
#define COMMIT_EVERY       10000u
#define DATA_BLOCK_SECTORS 128u
#define THIN_ID            1u
#define MAX_LOOKUPS        1000000u
/* Lookups timed together for the best-batch figure: the mean over all of them is what the
 * goal states, the fastest batch what the code costs when the load lets it run. */
#define LOOKUP_BATCH 10000u

struct opts {
	uint64_t max;
	bool seq;         /* insert vblocks in order (--order seq), else in a random order */
	const char *json; /* also write the results here */
	uint64_t lookups; /* 0: min(N, MAX_LOOKUPS) */
	size_t cache_blocks;
	uint64_t seed;
	const char *dir;
};

/* The machine's bound at one size: ns per dependent random read (a pointer chase over every
 * cache line, in a random cycle) in a buffer as big as that size's metadata, once with 4 KiB
 * pages and once asking for 2 MiB transparent huge pages (thp_mib says how much of the
 * buffer the kernel gave as huge pages: 0 where THP is off). */
struct chase {
	double ns_4k, ns_thp;
	double thp_mib;
};

struct result {
	uint64_t n;
	double insert_s, commit_s, lookup_s;
	double best_batch_ns; /* ns per lookup of the fastest LOOKUP_BATCH in a row */
	double paired_reads;    /* a lookup in dependent reads of the metadata's size (median) */
	double paired_chase_ns; /* one such read, in those pairs (median) */
	uint64_t nr_lookups;
	struct bm_stats after_insert, after_lookup;
	uint64_t meta_used_blocks;
	uint64_t vm_hwm_kib;
	uint64_t rss_kib; /* resident set with the pool open, after the lookups */
	struct chase chase;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A bijection on [0, 2^bits): odd multiplications and xor-shifts are both
 * invertible mod 2^bits. Cycle-walking it over [0, n) visits every key
 * once in a scrambled order without an n-sized permutation array, so the
 * benchmark's own memory does not blur the cache figures. */
struct perm {
	uint64_t n, mask, k1, k2;
	unsigned shift;
};

static void perm_init(struct perm *p, uint64_t n, uint64_t seed)
{
	unsigned bits = 1;

	while (bits < 63 && (1ull << bits) < n)
		bits++;
	p->n = n;
	p->mask = (1ull << bits) - 1;
	p->shift = bits / 2 + 1;
	p->k1 = (seed * 0x9E3779B97F4A7C15ull) | 1;
	p->k2 = (seed * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull) | 1;
}

static uint64_t perm_round(const struct perm *p, uint64_t x)
{
	x = (x * p->k1) & p->mask;
	x ^= x >> p->shift;
	x = (x * p->k2) & p->mask;
	x ^= x >> p->shift;
	return x;
}

static uint64_t perm_at(const struct perm *p, uint64_t i)
{
	uint64_t x = perm_round(p, i);

	while (x >= p->n)
		x = perm_round(p, x);
	return x;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* A kB figure of /proc/self/status (FMT: "VmHWM: %llu kB"), 0 if /proc is
 * unavailable. */
static uint64_t proc_status_kib(const char *fmt)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Peak resident set of this process (kB). */
static uint64_t vm_hwm_kib(void) { return proc_status_kib("VmHWM: %llu kB"); }

#define LINE        64u
#define HUGE_PAGE   (2u << 20)
#define CHASE_STEPS 2000000u

/* kB of anonymous huge pages in this process (/proc/self/smaps_rollup), 0 if unknown. */
static uint64_t anon_huge_kib(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %llu kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* ns per load of a chain of BYTES / 64 loads, each address read from the line before (a
 * random cycle over every line: no two loads overlap and the prefetchers cannot guess the
 * next), in a 2 MiB-aligned buffer with (HUGE) or without transparent huge pages; *THP_MIB:
 * how much of it came as huge pages. Negative when the memory cannot be had. */
/* A chain of BYTES / 64 loads, each address read from the line before (a random cycle over
 * every line: no two loads overlap and the prefetchers cannot guess the next), in a 2 MiB-
 * aligned buffer with (HUGE) or without transparent huge pages; thp_mib: how much of it came
 * as huge pages. */
struct chain {
	uint8_t *map;
	size_t map_len, lines;
	void **p; /* where the chase stands */
	double thp_mib;
};

static void chain_free(struct chain *c)
{
	if (c->map)
		munmap(c->map, c->map_len);
	c->map = NULL;
}

static int chain_build(struct chain *c, size_t bytes, bool huge, uint64_t seed)
{
	size_t len;
	uint8_t *buf;
	uint32_t *order;
	uint64_t before, rs = seed;

	bytes = bytes < 16 * LINE ? 16 * LINE : bytes;
	len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
	c->lines = bytes / LINE;
	c->map_len = len + HUGE_PAGE;
	c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		return -ENOMEM;
	}
	buf = (uint8_t *)(((uintptr_t)c->map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
	(void)madvise(buf, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
	order = malloc(c->lines * sizeof(*order));
	if (!order) {
		chain_free(c);
		return -ENOMEM;
	}
	before = anon_huge_kib();
	memset(buf, 0, len);
	c->thp_mib = (double)(anon_huge_kib() - before) / 1024.0;
	if (c->thp_mib < 0)
		c->thp_mib = 0;
	/* Sattolo's shuffle: one cycle through every line */
	for (size_t i = 0; i < c->lines; i++)
		order[i] = (uint32_t)i;
	for (size_t i = c->lines - 1; i > 0; i--) {
		size_t j = (size_t)(rng_next(&rs) % i);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < c->lines; i++)
		*(void **)(buf + (size_t)order[i] * LINE) =
		        buf + (size_t)order[(i + 1) % c->lines] * LINE;
	free(order);
	c->p = (void **)buf;
	return 0;
}

/* ns per load of STEPS loads of the chain. */
static double chain_run(struct chain *c, size_t steps)
{
	void *volatile sink;
	void **p = c->p;
	double t0 = now_s();

	for (size_t i = 0; i < steps; i++)
		p = *p;
	double ns = (now_s() - t0) * 1e9 / (double)steps;
	sink = p;
	(void)sink;
	c->p = p;
	return ns;
}

/* ns per dependent read in a fresh chain (warmed: a small one sits in the CPU's caches). */
static double chase_one(size_t bytes, bool huge, uint64_t seed, double *thp_mib)
{
	struct chain c;

	if (chain_build(&c, bytes, huge, seed))
		return -1;
	(void)chain_run(&c, c.lines < CHASE_STEPS ? c.lines : CHASE_STEPS);
	double ns = chain_run(&c, CHASE_STEPS);
	*thp_mib = c.thp_mib;
	chain_free(&c);
	return ns;
}

/* The fastest of CHASE_REPS chases of each kind, taken in turn: on a shared machine (and in
 * a VM, whose host pages its memory in lazily) one chase over a few hundred MiB varied 3x
 * between runs, and the bound is what the machine can do, not what the load left. */
#define CHASE_REPS 3
static int chase_measure(size_t bytes, uint64_t seed, struct chase *c)
{
	c->ns_4k = c->ns_thp = 0;
	for (int i = 0; i < CHASE_REPS; i++) {
		double thp_mib = 0, a = chase_one(bytes, false, seed + (uint64_t)i, &thp_mib);
		double b = chase_one(bytes, true, seed + (uint64_t)i, &thp_mib);

		if (a < 0 || b < 0) {
			fprintf(stderr, "pointer chase over %zu bytes: out of memory\n", bytes);
			return -ENOMEM;
		}
		c->ns_4k = i && c->ns_4k < a ? c->ns_4k : a;
		c->ns_thp = i && c->ns_thp < b ? c->ns_thp : b;
		c->thp_mib = thp_mib;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Lookups in dependent reads, measured in turns: PAIRS times LOOKUP_PAIR lookups, then as
 * many steps of a chase over a buffer the size of the metadata (huge pages), each pair's
 * ratio taken at once and the median kept. On a machine whose memory latency swings with
 * its neighbours' load (3-5x between runs here), the two figures of one pair see the same
 * load, so the ratio says how many reads in a row a lookup waits for whatever the load. */
#define PAIRS       21u
#define LOOKUP_PAIR 5000u
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int paired_reads(struct tmd *md, uint64_t n, uint64_t seed, size_t bytes,
                        struct result *res)
{
	struct chain c;
	double ratio[PAIRS], chase[PAIRS];
	uint64_t rs = seed;
	int r = chain_build(&c, bytes, true, seed);

	if (r) {
		fprintf(stderr, "pointer chase over %zu bytes: out of memory\n", bytes);
		return r;
	}
	(void)chain_run(&c, c.lines < CHASE_STEPS ? c.lines : CHASE_STEPS);
	for (unsigned k = 0; k < PAIRS; k++) {
		double t0 = now_s();

		for (unsigned i = 0; i < LOOKUP_PAIR; i++) {
			struct thin_mapping m;

			r = tmd_lookup(md, THIN_ID, rng_next(&rs) % n, &m);
			if (r) {
				fprintf(stderr, "\nlookup: %s\n", tmd_error(md));
				chain_free(&c);
				return r;
			}
		}
		double ns = (now_s() - t0) * 1e9 / LOOKUP_PAIR;

		chase[k] = chain_run(&c, LOOKUP_PAIR);
		ratio[k] = ns / chase[k];
	}
	chain_free(&c);
	qsort(ratio, PAIRS, sizeof(ratio[0]), cmp_double);
	qsort(chase, PAIRS, sizeof(chase[0]), cmp_double);
	res->paired_reads = ratio[PAIRS / 2];
	res->paired_chase_ns = chase[PAIRS / 2];
	return 0;
}

static int bench_one(const struct opts *o, uint64_t n, struct result *res)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct tmd_open_args a = { 0 };
	struct tp_dev *meta = NULL;
	struct tmd *md = NULL;
	struct perm perm;
	uint64_t rs = o->seed ^ n, nr_lookups;
	double t0, tc = 0;
	char err[512];
	int r, n_dir;

	memset(res, 0, sizeof(*res));
	res->n = n;
	n_dir = snprintf(dir, sizeof(dir), "%s/thinp-bench-XXXXXX", o->dir);
	if (n_dir < 0 || (size_t)n_dir >= sizeof(dir)) {
		fprintf(stderr, "scratch directory name too long\n");
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(dir)) {
		r = -errno;
		fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/meta", dir);
	r = tp_dev_open_file(path, TP_DEV_CREATE, META_FILE_SIZE, &meta);
	if (r) {
		fprintf(stderr, "creating %s: %s\n", path, strerror(-r));
		goto out;
	}
	a.meta = meta;
	a.cache_blocks = o->cache_blocks;
	r = tmd_format(&a, DATA_BLOCK_SECTORS, n, &md, err, sizeof(err));
	if (r) {
		fprintf(stderr, "format: %s\n", err);
		goto out;
	}
	r = tmd_create_thin(md, THIN_ID);
	if (r) {
		fprintf(stderr, "create_thin: %s\n", tmd_error(md));
		goto out;
	}

	perm_init(&perm, n, o->seed);
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t b;

		r = tmd_alloc_data_block(md, &b);
		if (!r)
			r = tmd_insert(md, THIN_ID, o->seq ? i : perm_at(&perm, i), b);
		if (!r && (i + 1) % COMMIT_EVERY == 0) {
			double c0 = now_s();

			r = tmd_commit(md);
			tc += now_s() - c0;
		}
		if (r) {
			fprintf(stderr, "\ninsert %llu of %llu: %s\n", (unsigned long long)i,
			        (unsigned long long)n, tmd_error(md));
			goto out;
		}
		if ((i + 1) % (n / 20 > COMMIT_EVERY ? n / 20 : COMMIT_EVERY) == 0)
			fprintf(stderr, "\r  %llu mappings: inserted %llu (%.0f%%, %.0f/s)    ",
			        (unsigned long long)n, (unsigned long long)(i + 1),
			        100.0 * (double)(i + 1) / (double)n,
			        (double)(i + 1) / (now_s() - t0));
	}
	{
		double c0 = now_s();

		r = tmd_commit(md);
		tc += now_s() - c0;
	}
	if (r) {
		fprintf(stderr, "\nfinal commit: %s\n", tmd_error(md));
		goto out;
	}
	res->insert_s = now_s() - t0;
	res->commit_s = tc;
	tmd_cache_stats(md, &res->after_insert);
	res->meta_used_blocks = tmd_nr_metadata_blocks(md) - tmd_nr_free_metadata_blocks(md);

	nr_lookups = o->lookups ? o->lookups : (n < MAX_LOOKUPS ? n : MAX_LOOKUPS);
	fprintf(stderr, "\r  %llu mappings: inserted in %.1fs; %llu random lookups...          ",
	        (unsigned long long)n, res->insert_s, (unsigned long long)nr_lookups);
	t0 = now_s();
	double tb = t0;
	res->best_batch_ns = 0;
	for (uint64_t i = 0; i < nr_lookups; i++) {
		struct thin_mapping m;
		uint64_t vb = rng_next(&rs) % n;

		r = tmd_lookup(md, THIN_ID, vb, &m);
		if (r) {
			fprintf(stderr, "\nlookup of vblock %llu: %s\n", (unsigned long long)vb,
			        r == -ENODATA ? "not mapped" : tmd_error(md));
			goto out;
		}
		if ((i + 1) % LOOKUP_BATCH == 0) {
			double tn = now_s(), ns = (tn - tb) * 1e9 / LOOKUP_BATCH;

			if (!res->best_batch_ns || ns < res->best_batch_ns)
				res->best_batch_ns = ns;
			tb = tn;
		}
	}
	res->lookup_s = now_s() - t0;
	if (!res->best_batch_ns)
		res->best_batch_ns = res->lookup_s * 1e9 / (double)nr_lookups;
	res->nr_lookups = nr_lookups;
	tmd_cache_stats(md, &res->after_lookup);
	res->vm_hwm_kib = vm_hwm_kib();
	res->rss_kib = proc_status_kib("VmRSS: %llu kB");
	r = paired_reads(md, n, o->seed ^ n ^ 0x5A5A, res->meta_used_blocks * TP_BLOCK_SIZE, res);
	if (r)
		goto out;
	fprintf(stderr, "\r%-100s\r", "");
out:
	tmd_close_nocommit(md);
	tp_dev_close(meta);
	unlink(path);
	rmdir(dir);
	/* (after the pool is gone: the chase has the memory to itself) */
	if (!r)
		r = chase_measure(res->meta_used_blocks * TP_BLOCK_SIZE, o->seed ^ n, &res->chase);
	return r;
}

static void print_header(void)
{
	printf("%10s %11s %11s %9s %6s %10s %8s %8s %9s %12s %12s %12s %12s %9s %9s %9s %10s %7s "
	       "%8s %9s %8s %9s %9s %8s %9s\n",
	       "mappings", "inserts/s", "lookups/s", "ns/look", "x10k", "commit(s)", "cache", "peak",
	       "mem(MiB)", "ins.hits", "ins.misses", "look.hits", "look.misses", "meta(MiB)",
	       "HWM(MiB)", "RSS(MiB)", "RSS/M(MiB)", "nodes", "chase4k", "chaseTHP", "THP(MiB)",
	       "dep.reads", "best(ns)", "pair.rd", "pair.chase");
}

/* Blocks a lookup visits (every one a cache hit or miss): the nodes of its path. */
static double nodes_per_lookup(const struct result *r)
{
	const struct bm_stats *a = &r->after_insert, *b = &r->after_lookup;

	return (double)(b->hits - a->hits + b->misses - a->misses) / (double)r->nr_lookups;
}

/* BASE_NS: the ns per lookup of the first (10k) run, 0 if none yet. */
static void print_result(const struct result *r, double base_ns)
{
	const struct bm_stats *a = &r->after_insert, *b = &r->after_lookup;
	double ns = r->lookup_s * 1e9 / (double)r->nr_lookups;

	printf("%10llu %11.0f %11.0f %9.0f %6.2f %10.2f %8zu %8zu %9.1f %12llu %12llu %12llu %12llu "
	       "%9.1f %9.1f %9.1f %10.1f %7.2f %8.1f %9.1f %8.0f %9.1f %9.0f %8.2f %9.1f\n",
	       (unsigned long long)r->n, (double)r->n / r->insert_s,
	       (double)r->nr_lookups / r->lookup_s, ns, base_ns > 0 ? ns / base_ns : 1.0,
	       r->commit_s, b->capacity, b->peak,
	       (double)b->peak * TP_BLOCK_SIZE / (1024.0 * 1024.0), (unsigned long long)a->hits,
	       (unsigned long long)a->misses, (unsigned long long)(b->hits - a->hits),
	       (unsigned long long)(b->misses - a->misses),
	       (double)r->meta_used_blocks * TP_BLOCK_SIZE / (1024.0 * 1024.0),
	       (double)r->vm_hwm_kib / 1024.0, (double)r->rss_kib / 1024.0,
	       (double)r->rss_kib / 1024.0 / ((double)r->n / 1e6), nodes_per_lookup(r),
	       r->chase.ns_4k, r->chase.ns_thp, r->chase.thp_mib, ns / r->chase.ns_thp,
	       r->best_batch_ns, r->paired_reads, r->paired_chase_ns);
	fflush(stdout);
}

/* One size's figures as a JSON object (the run's report reads them). */
static void json_result(FILE *f, const struct result *r, double base_ns)
{
	const struct bm_stats *a = &r->after_insert, *b = &r->after_lookup;
	double ns = r->lookup_s * 1e9 / (double)r->nr_lookups;

	fprintf(f,
	        "{\"mappings\": %llu, \"inserts_per_s\": %.0f, \"insert_s\": %.3f, "
	        "\"lookups\": %llu, \"ns_per_lookup\": %.1f, \"x10k\": %.3f, "
	        "\"cache_blocks\": %zu, \"peak_cached_blocks\": %zu, \"lookup_hits\": %llu, "
	        "\"lookup_misses\": %llu, \"meta_mib\": %.1f, \"hwm_mib\": %.1f, "
	        "\"rss_mib\": %.1f, \"rss_mib_per_million\": %.2f, \"nodes_per_lookup\": %.2f, "
	        "\"chase_4k_ns\": %.1f, \"chase_thp_ns\": %.1f, \"chase_thp_mib\": %.0f, "
	        "\"dependent_reads\": %.2f, \"best_batch_ns\": %.1f, \"paired_reads\": %.2f, "
	        "\"paired_chase_ns\": %.1f}",
	        (unsigned long long)r->n, (double)r->n / r->insert_s, r->insert_s,
	        (unsigned long long)r->nr_lookups, ns, base_ns > 0 ? ns / base_ns : 1.0, b->capacity,
	        b->peak, (unsigned long long)(b->hits - a->hits),
	        (unsigned long long)(b->misses - a->misses),
	        (double)r->meta_used_blocks * TP_BLOCK_SIZE / (1024.0 * 1024.0),
	        (double)r->vm_hwm_kib / 1024.0, (double)r->rss_kib / 1024.0,
	        (double)r->rss_kib / 1024.0 / ((double)r->n / 1e6), nodes_per_lookup(r),
	        r->chase.ns_4k, r->chase.ns_thp, r->chase.thp_mib, ns / r->chase.ns_thp,
	        r->best_batch_ns, r->paired_reads, r->paired_chase_ns);
}

/* What a lookup at the largest size L must cost on this machine, against the goal (L at
 * most GOAL_X10K times the first size's cost, BASE_NS). The DRAM read: the median chase of
 * L's pairs (a buffer of L's metadata, huge pages where the kernel gives them). Any design pays at
 * least the first size's work plus one such read (the mapping's own line: L's tree does not
 * fit the CPU's caches when its chase is DRAM-bound); this one pays DESIGN_LINES_PER_NODE
 * reads for every node not in the CPU's caches (at least the leaf): the hash bucket, then the
 * block's header with the node's first line (fetched together: block_manager.c's
 * lookup_fetch), then the guessed key's line with its value's line (lookup_slot in
 * btree_internal.h). */
#define GOAL_X10K             1.5
#define DESIGN_LINES_PER_NODE 3
static void print_bound(const struct result *l, double base_ns, double base_best, FILE *f,
                        bool json)
{
	double ns = l->lookup_s * 1e9 / (double)l->nr_lookups;
	double dram = l->paired_chase_ns;
	double any = base_ns + dram, design = base_ns + DESIGN_LINES_PER_NODE * dram;
	bool reachable = any <= GOAL_X10K * base_ns;

	if (json) {
		fprintf(f,
		        ", \"bound\": {\"mappings\": %llu, \"ns_per_lookup\": %.1f, "
		        "\"dram_read_ns\": %.1f, \"dependent_dram_reads\": %.2f, "
		        "\"goal_x10k\": %.2f, \"goal_ns\": %.1f, \"any_design_floor_ns\": %.1f, "
		        "\"any_design_floor_x10k\": %.3f, \"design_lines_per_node\": %d, "
		        "\"design_floor_ns\": %.1f, \"design_floor_x10k\": %.3f, "
		        "\"goal_reachable\": %s, \"best_batch_x10k\": %.3f}",
		        (unsigned long long)l->n, ns, dram, l->paired_reads, GOAL_X10K, GOAL_X10K * base_ns,
		        any, any / base_ns, DESIGN_LINES_PER_NODE, design, design / base_ns,
		        reachable ? "true" : "false", l->best_batch_ns / base_best);
		return;
	}
	fprintf(f,
	        "bound: lookup at %llu mappings = %.0f ns = %.1f dependent DRAM reads of %.0f ns "
	        "(pointer chase over %.0f MiB, %s, in turns with the lookups: medians); it visits %.1f nodes, %d dependent reads each "
	        "when not in the CPU's caches (at least the leaf): %.0f ns = %.2fx the first size's "
	        "%.0f ns with the leaf alone in DRAM; any design needs that size's work plus one "
	        "DRAM read, %.0f ns = %.2fx: the goal (<= %.2fx, %.0f ns) is %s on this machine; "
	        "fastest batches %.0f / %.0f ns = %.2fx\n",
	        (unsigned long long)l->n, ns, l->paired_reads, dram,
	        (double)l->meta_used_blocks * TP_BLOCK_SIZE / (1024.0 * 1024.0),
	        l->chase.thp_mib > 0 ? "huge pages" : "4 KiB pages: no THP given",
	        nodes_per_lookup(l), DESIGN_LINES_PER_NODE, design, design / base_ns, base_ns, any,
	        any / base_ns, GOAL_X10K, GOAL_X10K * base_ns,
	        reachable ? "reachable" : "out of reach", l->best_batch_ns, base_best,
	        l->best_batch_ns / base_best);
}

static void usage(const char *prog)
{
	fprintf(stderr,
	        "usage: %s [--max N] [--order random|seq] [--dir DIR] [--cache BLOCKS] "
	        "[--lookups N] [--seed S] [--json FILE] [--quick]\n"
	        "  sizes 10k, 1M, 10M up to --max (default 1000000), plus --max itself;\n"
	        "  --max 10000000 with random order takes much longer (~10x the 1M run);\n"
	        "  --quick = --max 10000000 --order seq --lookups 200000 (make bench)\n",
	        prog);
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 10000, 1000000, 10000000 };
	const char *tmp = getenv("TMPDIR");
	struct opts o = { .max = 1000000, .seed = 42, .dir = tmp && *tmp ? tmp : "/tmp" };
	uint64_t run[4];
	size_t nr_run = 0;
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		uint64_t v = 0;
		bool has_arg = i + 1 < argc;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(argv[0]);
			return 0;
		}
		if (!strcmp(argv[i], "--quick")) {
			o.max = 10000000;
			o.seq = true;
			o.lookups = 200000;
			continue;
		}
		if (has_arg && !strcmp(argv[i], "--dir")) {
			o.dir = argv[++i];
			continue;
		}
		if (has_arg && !strcmp(argv[i], "--json")) {
			o.json = argv[++i];
			continue;
		}
		if (has_arg && !strcmp(argv[i], "--order")) {
			i++;
			if (strcmp(argv[i], "seq") && strcmp(argv[i], "random")) {
				fprintf(stderr, "--order %s: use --order random or --order seq\n",
				        argv[i]);
				return 2;
			}
			o.seq = !strcmp(argv[i], "seq");
			continue;
		}
		if (!has_arg || parse_u64(argv[i + 1], &v)) {
			fprintf(stderr, "%s%s%s: not an option with a number after it\n", argv[i],
			        has_arg ? " " : "", has_arg ? argv[i + 1] : "");
			usage(argv[0]);
			return 2;
		}
		if (!strcmp(argv[i], "--max"))
			o.max = v;
		else if (!strcmp(argv[i], "--cache"))
			o.cache_blocks = (size_t)v;
		else if (!strcmp(argv[i], "--lookups"))
			o.lookups = v;
		else if (!strcmp(argv[i], "--seed"))
			o.seed = v;
		else {
			fprintf(stderr, "%s: unknown option\n", argv[i]);
			usage(argv[0]);
			return 2;
		}
		i++;
	}
	if (o.max < 1 || o.max > THIN_MAX_DATA_BLOCK) {
		fprintf(stderr, "--max %llu: use 1..%llu\n", (unsigned long long)o.max,
		        (unsigned long long)THIN_MAX_DATA_BLOCK);
		return 2;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i] <= o.max)
			run[nr_run++] = sizes[i];
	if (!nr_run || run[nr_run - 1] != o.max)
		run[nr_run++] = o.max;

	const char *order = o.seq ? "sequential" : "random";
	if (o.cache_blocks)
		printf("thin metadata micro-benchmark: one thin device, %s vblock order, random "
		       "lookups, commit every %u inserts, cache %zu blocks, seed %llu\n",
		       order, COMMIT_EVERY, o.cache_blocks, (unsigned long long)o.seed);
	else
		printf("thin metadata micro-benchmark: one thin device, %s vblock order, random "
		       "lookups, commit every %u inserts, cache sized from the metadata (library "
		       "default: at least %u blocks, capped at 1/16 of memory, at most 1 GiB), seed "
		       "%llu\n",
		       order, COMMIT_EVERY, THIN_DEFAULT_CACHE_BLOCKS, (unsigned long long)o.seed);
	FILE *jf = NULL;
	if (o.json) {
		jf = fopen(o.json, "w");
		if (!jf) {
			fprintf(stderr, "--json %s: %s (name a writable file)\n", o.json,
			        strerror(errno));
			return 1;
		}
		fprintf(jf,
		        "{\"order\": \"%s\", \"seed\": %llu, \"commit_every\": %u, "
		        "\"cache_blocks_option\": %zu, \"sizes\": [",
		        o.seq ? "seq" : "random", (unsigned long long)o.seed, COMMIT_EVERY,
		        o.cache_blocks);
	}
	print_header();
	double base_ns = 0, base_best = 0;
	struct result last;
	for (size_t i = 0; i < nr_run; i++) {
		struct result res;

		if (bench_one(&o, run[i], &res)) {
			failed = 1;
			break;
		}
		print_result(&res, base_ns);
		if (jf) {
			fputs(i ? ", " : "", jf);
			json_result(jf, &res, base_ns);
		}
		if (i == 0) {
			base_ns = res.lookup_s * 1e9 / (double)res.nr_lookups;
			base_best = res.best_batch_ns;
		}
		last = res;
	}
	if (!failed && nr_run > 1)
		print_bound(&last, base_ns, base_best, stdout, false);
	if (jf) {
		fprintf(jf, "]");
		if (!failed && nr_run > 1)
			print_bound(&last, base_ns, base_best, jf, true);
		fprintf(jf, ", \"complete\": %s}\n", failed ? "false" : "true");
		if (fclose(jf)) {
			fprintf(stderr, "--json %s: %s\n", o.json, strerror(errno));
			failed = 1;
		}
	}
	printf("mem = peak cached blocks * 4 KiB; ins./look. = cache hits and misses while inserting "
	       "(with commits) / looking up; meta = metadata blocks in use; HWM = VmHWM of the "
	       "process so far; RSS = VmRSS with the pool open, RSS/M = RSS per million mappings; "
	       "x10k = ns per lookup / that of the first size; nodes = blocks a lookup visits; "
	       "chase4k / chaseTHP = ns per dependent random read in a buffer the size of the "
	       "metadata, 4 KiB pages / transparent huge pages (THP = MiB of it the kernel gave as "
	       "huge pages); dep.reads = ns per lookup / chaseTHP; best = ns per lookup of the fastest %u "
	       "lookups in a row; pair.rd = a lookup in dependent reads of the metadata's size, "
	       "the median of %u pairs of %u lookups then %u chase steps (pair.chase ns each)\n",
	       LOOKUP_BATCH, PAIRS, LOOKUP_PAIR, LOOKUP_PAIR);
	return failed;
}
