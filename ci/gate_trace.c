/* The regression gate's trace driver: fixed job shapes on seeded traces through libthinp's
 * public API (memory devices, no commit timer), printing each case's per-class counters as
 * JSON on stdout. The gate (ci/gate) compares them exactly with ci/baseline/, and runs this
 * same program under callgrind for the instruction layer: every case's measured operations
 * (gate_ops_CASE) run inside gate_measure, which callgrind's --zero-before/--dump-after
 * bracket (one function: callgrind honours only one --zero-before), one dump per case in
 * the order the cases run; setup and the JSON printing stay outside the count.
 *
 *   gate_trace [--seed N] [--list] [CASE...]      (no CASE: all; THINP_SEED sets the seed)
 * Exit 0, 1 when an operation failed unexpectedly, 2 on bad arguments. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thinp.h"

#define SCHEMA      1
#define BLOCK       65536u
#define SMALL       4096u
#define DATA_BYTES  (64u << 20)
#define META_BYTES  (8u << 20)
#define THIN_BLOCKS 512u /* a thin spans 32 MiB: random offsets land in it */
#define MAX_THINS   8

struct ctx {
	struct thinp_pool *p;
	struct thinp_thin *t[MAX_THINS];
	unsigned nr_thins;
	uint64_t rng;
	unsigned errors; /* IOs that failed as the case expects (fill_to_full's ENOSPC) */
	unsigned ios;
	uint8_t buf[BLOCK];
	bool failed;
};

struct gate_case {
	const char *name;
	bool zeroing;
	uint64_t data_bytes;
	void (*setup)(struct ctx *c);
	void (*ops)(struct ctx *c);
};

/* xorshift64*: the trace's only source of variation; seeded per case from the seed and the
 * case name, so a case's trace does not depend on which other cases run. */
static uint64_t rnd(struct ctx *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(struct ctx *c, uint64_t n)
{
	return rnd(c) % n;
}

static void must(struct ctx *c, int r, const char *what)
{
	if (r && !c->failed) {
		fprintf(stderr, "gate_trace: %s failed: %s (%s)\n", what, strerror(-r),
		        thinp_pool_error(c->p));
		c->failed = true;
	}
}

static void write_at(struct ctx *c, unsigned thin, uint64_t off, size_t len)
{
	memset(c->buf, (int)(off / SMALL) & 0xff, len);
	c->ios++;
	must(c, thinp_write(c->t[thin], c->buf, len, off, 0, NULL), "write");
}

static void read_at(struct ctx *c, unsigned thin, uint64_t off, size_t len)
{
	c->ios++;
	must(c, thinp_read(c->t[thin], c->buf, len, off, NULL), "read");
}

static void open_thin(struct ctx *c, uint64_t id)
{
	must(c, thinp_thin_open(c->p, id, (uint64_t)THIN_BLOCKS * BLOCK, &c->t[c->nr_thins]),
	     "thin open");
	c->nr_thins++;
}

/* a 4 KiB-aligned offset somewhere in the first N blocks */
static uint64_t small_off(struct ctx *c, unsigned blocks)
{
	return below(c, (uint64_t)blocks * (BLOCK / SMALL)) * SMALL;
}

static void prefill(struct ctx *c, unsigned blocks)
{
	for (unsigned b = 0; b < blocks; b++)
		write_at(c, 0, (uint64_t)b * BLOCK, BLOCK);
	must(c, thinp_pool_commit(c->p), "commit");
}

static void snapshot_of(struct ctx *c, uint64_t id, uint64_t origin)
{
	must(c, thinp_create_snap(c->p, id, origin), "snapshot");
	must(c, thinp_pool_commit(c->p), "commit");
	open_thin(c, id);
}

/* ---- setups (not measured) ---- */
static void setup_empty(struct ctx *c)
{
	(void)c;
}
static void setup_prefilled(struct ctx *c)
{
	prefill(c, 64);
}
static void setup_snapshot(struct ctx *c)
{
	prefill(c, 64);
	snapshot_of(c, 2, 1);
}
static void setup_chain(struct ctx *c)
{
	prefill(c, 32);
	for (unsigned i = 0; i < 4; i++)
		snapshot_of(c, 2 + i, 1 + i);
}

/* ---- measured operations: one function per case ---- */
void gate_ops_provision_zero(struct ctx *c);
void gate_ops_provision_nozero(struct ctx *c);
void gate_ops_provision_full(struct ctx *c);
void gate_ops_overwrite(struct ctx *c);
void gate_ops_cow_4k(struct ctx *c);
void gate_ops_cow_64k(struct ctx *c);
void gate_ops_discard(struct ctx *c);
void gate_ops_snapshot_chain(struct ctx *c);
void gate_ops_fill_to_full(struct ctx *c);
void gate_ops_commit_every_8(struct ctx *c);
void gate_ops_reads(struct ctx *c);

static void provision_small(struct ctx *c)
{
	for (unsigned i = 0; i < 256; i++)
		write_at(c, 0, small_off(c, THIN_BLOCKS), SMALL);
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_provision_zero(struct ctx *c)
{
	provision_small(c);
}

__attribute__((noinline)) void gate_ops_provision_nozero(struct ctx *c)
{
	provision_small(c); /* the same trace; the pool skips zeroing */
}

__attribute__((noinline)) void gate_ops_provision_full(struct ctx *c)
{
	for (unsigned i = 0; i < 128; i++)
		write_at(c, 0, below(c, THIN_BLOCKS) * BLOCK, BLOCK);
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_overwrite(struct ctx *c)
{
	for (unsigned i = 0; i < 256; i++)
		write_at(c, 0, small_off(c, 64), SMALL);
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_cow_4k(struct ctx *c)
{
	for (unsigned i = 0; i < 128; i++)
		write_at(c, 0, small_off(c, 64), SMALL);
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_cow_64k(struct ctx *c)
{
	for (unsigned i = 0; i < 128; i++)
		write_at(c, 0, below(c, 64) * BLOCK, BLOCK);
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_discard(struct ctx *c)
{
	for (unsigned i = 0; i < 48; i++) {
		c->ios++;
		must(c, thinp_discard(c->t[0], below(c, 64) * BLOCK, BLOCK, NULL), "discard");
	}
	/* partial discards: the kernel (and libthinp) unmap whole blocks only */
	for (unsigned i = 0; i < 16; i++) {
		c->ios++;
		must(c, thinp_discard(c->t[0], small_off(c, 64), SMALL, NULL), "discard");
	}
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_snapshot_chain(struct ctx *c)
{
	for (unsigned i = 0; i < 160; i++) {
		unsigned thin = (unsigned)below(c, c->nr_thins);
		if (below(c, 2))
			write_at(c, thin, small_off(c, 32), SMALL);
		else
			read_at(c, thin, small_off(c, 40), SMALL);
	}
	must(c, thinp_pool_commit(c->p), "commit");
}

__attribute__((noinline)) void gate_ops_fill_to_full(struct ctx *c)
{
	/* 40 whole-block writes into a 32-block pool with error_if_no_space: the last ones fail
	 * at once with ENOSPC (counted as errors, not failures) */
	for (unsigned i = 0; i < 40; i++) {
		memset(c->buf, (int)i, BLOCK);
		c->ios++;
		int r = thinp_write(c->t[0], c->buf, BLOCK, (uint64_t)i * BLOCK, 0, NULL);
		if (r == -ENOSPC)
			c->errors++;
		else
			must(c, r, "write");
	}
}

__attribute__((noinline)) void gate_ops_commit_every_8(struct ctx *c)
{
	for (unsigned i = 0; i < 256; i++) {
		write_at(c, 0, small_off(c, 128), SMALL);
		if (i % 8 == 7) {
			c->ios++;
			must(c, thinp_flush(c->t[0], NULL), "flush");
		}
	}
}

__attribute__((noinline)) void gate_ops_reads(struct ctx *c)
{
	/* thin 1 and its snapshot 2, 64 blocks shared; half of thin 1 then overwritten
	 * whole (exclusive again) by the setup; reads cover shared, mapped and unmapped */
	/* 512-byte reads: the mapping lookup, not the copying, is most of their cost */
	for (unsigned i = 0; i < 256; i++)
		read_at(c, (unsigned)below(c, 2), small_off(c, 128) + below(c, 8) * 512, 512);
}

/* The measured part of every case (see the top): called through a pointer, never inlined. */
void gate_measure(void (*ops)(struct ctx *c), struct ctx *c);
__attribute__((noinline)) void gate_measure(void (*ops)(struct ctx *c), struct ctx *c)
{
	ops(c);
}

static void setup_reads(struct ctx *c)
{
	setup_snapshot(c);
	for (unsigned b = 0; b < 32; b++)
		write_at(c, 0, (uint64_t)b * BLOCK, BLOCK);
	must(c, thinp_pool_commit(c->p), "commit");
}

static const struct gate_case cases[] = {
	{ "provision_zero", true, DATA_BYTES, setup_empty, gate_ops_provision_zero },
	{ "provision_nozero", false, DATA_BYTES, setup_empty, gate_ops_provision_nozero },
	{ "provision_full", true, DATA_BYTES, setup_empty, gate_ops_provision_full },
	{ "overwrite", true, DATA_BYTES, setup_prefilled, gate_ops_overwrite },
	{ "cow_4k", true, DATA_BYTES, setup_snapshot, gate_ops_cow_4k },
	{ "cow_64k", true, DATA_BYTES, setup_snapshot, gate_ops_cow_64k },
	{ "discard", true, DATA_BYTES, setup_prefilled, gate_ops_discard },
	{ "snapshot_chain", true, DATA_BYTES, setup_chain, gate_ops_snapshot_chain },
	{ "fill_to_full", true, 32u * BLOCK, setup_empty, gate_ops_fill_to_full },
	{ "commit_every_8", true, DATA_BYTES, setup_empty, gate_ops_commit_every_8 },
	{ "reads", true, DATA_BYTES, setup_reads, gate_ops_reads },
};
#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void print_stats(const struct thinp_class_stats *s)
{
	printf("{\"ops\": %llu, \"bytes_requested\": %llu, \"data_bytes_read\": %llu, "
	       "\"data_bytes_written\": %llu, \"data_bytes_zeroed\": %llu, "
	       "\"meta_bytes_read\": %llu, \"meta_bytes_written\": %llu}",
	       (unsigned long long)s->ops, (unsigned long long)s->bytes_requested,
	       (unsigned long long)s->data_bytes_read, (unsigned long long)s->data_bytes_written,
	       (unsigned long long)s->data_bytes_zeroed, (unsigned long long)s->meta_bytes_read,
	       (unsigned long long)s->meta_bytes_written);
}

/* Runs one case and prints its JSON object; false when an operation failed. */
static bool run_case(const struct gate_case *gc, uint64_t seed, bool first)
{
	static struct ctx c;
	memset(&c, 0, sizeof(c));
	c.rng = (seed ^ name_hash(gc->name)) | 1;
	struct tp_dev *d, *m;
	char err[512] = "";
	struct thinp_pool_opts o = { .no_commit_timer = true,
		                     .skip_block_zeroing = !gc->zeroing,
		                     .error_if_no_space = true };
	if (thinp_dev_open_mem(gc->data_bytes, &d) || thinp_dev_open_mem(META_BYTES, &m)) {
		fprintf(stderr, "gate_trace: %s: cannot allocate the memory devices\n", gc->name);
		return false;
	}
	if (thinp_pool_format(d, m, &o, &c.p, err, sizeof(err))) {
		fprintf(stderr, "gate_trace: %s: pool format failed: %s\n", gc->name, err);
		return false;
	}
	must(&c, thinp_create_thin(c.p, 1), "create thin");
	open_thin(&c, 1);
	gc->setup(&c);
	c.ios = 0;
	thinp_pool_stats_reset(c.p);
	gate_measure(gc->ops, &c);
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(c.p, st);
	struct thinp_pool_status ps;
	must(&c, thinp_pool_status(c.p, true, &ps), "status");

	printf("%s    \"%s\": {\"ios\": %u, \"errors\": %u, \"used_data_blocks\": %llu, "
	       "\"used_meta_blocks\": %llu, \"classes\": {",
	       first ? "" : ",\n", gc->name, c.ios, c.errors,
	       (unsigned long long)ps.used_data_blocks, (unsigned long long)ps.used_meta_blocks);
	bool any = false;
	for (int k = 0; k < THINP_NR_CLASSES; k++) {
		if (!st[k].ops && !st[k].meta_bytes_written && !st[k].meta_bytes_read)
			continue;
		printf("%s\n      \"%s\": ", any ? "," : "", thinp_class_name((enum thinp_class)k));
		print_stats(&st[k]);
		any = true;
	}
	printf("}}");
	for (unsigned i = 0; i < c.nr_thins; i++)
		thinp_thin_close(c.t[i]);
	must(&c, thinp_pool_close(c.p), "pool close");
	return !c.failed;
}

static const struct gate_case *find_case(const char *name)
{
	for (size_t i = 0; i < NR_CASES; i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	return NULL;
}

static int usage(const char *why, const char *what)
{
	fprintf(stderr, "gate_trace: %s%s\nusage: gate_trace [--seed N] [--list] [CASE...]\n", why,
	        what);
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t seed = 1;
	const char *env = getenv("THINP_SEED");
	const struct gate_case *sel[NR_CASES];
	size_t n = 0;
	if (env && *env) {
		char *end;
		seed = strtoull(env, &end, 0);
		if (*end)
			return usage("THINP_SEED is not a number: ", env);
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < NR_CASES; k++)
				printf("%s\n", cases[k].name);
			return 0;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			char *end;
			seed = strtoull(argv[++i], &end, 0);
			if (*end || !*argv[i])
				return usage("--seed takes a number, not: ", argv[i]);
		} else if (argv[i][0] == '-') {
			return usage("unknown option: ", argv[i]);
		} else {
			const struct gate_case *gc = find_case(argv[i]);
			if (!gc)
				return usage("unknown case (see --list): ", argv[i]);
			if (n == NR_CASES)
				return usage("too many cases: ", argv[i]);
			sel[n++] = gc;
		}
	}
	if (!n)
		for (; n < NR_CASES; n++)
			sel[n] = &cases[n];
	fprintf(stderr, "gate_trace: seed %llu\n", (unsigned long long)seed);
	/* the compiler decides the instruction counts: the gate shows it beside a change */
	printf("{\"schema\": %d, \"seed\": %llu, \"block_bytes\": %u, \"compiler\": \"%s\", "
	       "\"cases\": {\n",
	       SCHEMA, (unsigned long long)seed, BLOCK, __VERSION__);
	bool ok = true;
	for (size_t i = 0; i < n; i++)
		ok = run_case(sel[i], seed, i == 0) && ok;
	printf("\n}}\n");
	return ok ? 0 : 1;
}
