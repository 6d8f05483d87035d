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

struct opts {
	uint64_t max;
	bool seq;         /* insert vblocks in order (--order seq), else in a random order */
	const char *json; /* also write the results here */
	uint64_t lookups; /* 0: min(N, MAX_LOOKUPS) */
	size_t cache_blocks;
	uint64_t seed;
	const char *dir;
};

struct result {
	uint64_t n;
	double insert_s, commit_s, lookup_s;
	uint64_t nr_lookups;
	struct bm_stats after_insert, after_lookup;
	uint64_t meta_used_blocks;
	uint64_t vm_hwm_kib;
	uint64_t rss_kib; /* resident set with the pool open, after the lookups */
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
	for (uint64_t i = 0; i < nr_lookups; i++) {
		struct thin_mapping m;
		uint64_t vb = rng_next(&rs) % n;

		r = tmd_lookup(md, THIN_ID, vb, &m);
		if (r) {
			fprintf(stderr, "\nlookup of vblock %llu: %s\n", (unsigned long long)vb,
			        r == -ENODATA ? "not mapped" : tmd_error(md));
			goto out;
		}
	}
	res->lookup_s = now_s() - t0;
	res->nr_lookups = nr_lookups;
	tmd_cache_stats(md, &res->after_lookup);
	res->vm_hwm_kib = vm_hwm_kib();
	res->rss_kib = proc_status_kib("VmRSS: %llu kB");
	fprintf(stderr, "\r%-100s\r", "");
out:
	tmd_close_nocommit(md);
	tp_dev_close(meta);
	unlink(path);
	rmdir(dir);
	return r;
}

static void print_header(void)
{
	printf("%10s %11s %11s %9s %6s %10s %8s %8s %9s %12s %12s %12s %12s %9s %9s %9s %10s\n",
	       "mappings", "inserts/s", "lookups/s", "ns/look", "x10k", "commit(s)", "cache", "peak",
	       "mem(MiB)", "ins.hits", "ins.misses", "look.hits", "look.misses", "meta(MiB)",
	       "HWM(MiB)", "RSS(MiB)", "RSS/M(MiB)");
}

/* BASE_NS: the ns per lookup of the first (10k) run, 0 if none yet. */
static void print_result(const struct result *r, double base_ns)
{
	const struct bm_stats *a = &r->after_insert, *b = &r->after_lookup;
	double ns = r->lookup_s * 1e9 / (double)r->nr_lookups;

	printf("%10llu %11.0f %11.0f %9.0f %6.2f %10.2f %8zu %8zu %9.1f %12llu %12llu %12llu %12llu "
	       "%9.1f %9.1f %9.1f %10.1f\n",
	       (unsigned long long)r->n, (double)r->n / r->insert_s,
	       (double)r->nr_lookups / r->lookup_s, ns, base_ns > 0 ? ns / base_ns : 1.0,
	       r->commit_s, b->capacity, b->peak,
	       (double)b->peak * TP_BLOCK_SIZE / (1024.0 * 1024.0), (unsigned long long)a->hits,
	       (unsigned long long)a->misses, (unsigned long long)(b->hits - a->hits),
	       (unsigned long long)(b->misses - a->misses),
	       (double)r->meta_used_blocks * TP_BLOCK_SIZE / (1024.0 * 1024.0),
	       (double)r->vm_hwm_kib / 1024.0, (double)r->rss_kib / 1024.0,
	       (double)r->rss_kib / 1024.0 / ((double)r->n / 1e6));
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
	        "\"rss_mib\": %.1f, \"rss_mib_per_million\": %.2f}",
	        (unsigned long long)r->n, (double)r->n / r->insert_s, r->insert_s,
	        (unsigned long long)r->nr_lookups, ns, base_ns > 0 ? ns / base_ns : 1.0, b->capacity,
	        b->peak, (unsigned long long)(b->hits - a->hits),
	        (unsigned long long)(b->misses - a->misses),
	        (double)r->meta_used_blocks * TP_BLOCK_SIZE / (1024.0 * 1024.0),
	        (double)r->vm_hwm_kib / 1024.0, (double)r->rss_kib / 1024.0,
	        (double)r->rss_kib / 1024.0 / ((double)r->n / 1e6));
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
	double base_ns = 0;
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
		if (i == 0)
			base_ns = res.lookup_s * 1e9 / (double)res.nr_lookups;
	}
	if (jf) {
		fprintf(jf, "], \"complete\": %s}\n", failed ? "false" : "true");
		if (fclose(jf)) {
			fprintf(stderr, "--json %s: %s\n", o.json, strerror(errno));
			failed = 1;
		}
	}
	printf("mem = peak cached blocks * 4 KiB; ins./look. = cache hits and misses while inserting "
	       "(with commits) / looking up; meta = metadata blocks in use; HWM = VmHWM of the "
	       "process so far; RSS = VmRSS with the pool open, RSS/M = RSS per million mappings; "
	       "x10k = ns per lookup / that of the first size\n");
	return failed;
}
