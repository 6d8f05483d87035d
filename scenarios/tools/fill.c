/* fill — scenario 8 (fill to full) on libthinp, with the timeline fio cannot see.
 *
 * fio's thinp engine shows what each IO did, but not the pool's low-water event (a dm event,
 * not an IO) nor how long a write waits in queue mode. This helper drives the library directly:
 *
 *   1. formats a small pool (DATA, METADATA; files are created sparse in loop mode) with a
 *      low-water mark, registers the low-water callback;
 *   2. baseline: provisions 1/8 of the pool, then BS-byte overwrites of random provisioned
 *      blocks ("overwrite at 12%");
 *   3. fills it: one BS-byte first write per pool block (every write provisions) until the
 *      pool refuses a write; each IO's time, latency, class and the free blocks go to the
 *      timeline CSV, the low-water callback's IO index and time to the summary;
 *   4. at 100%: more writes that need a new block (error mode: ENOSPC at once; queue mode:
 *      each waits --timeout-ms and then fails), then BS-byte overwrites of random provisioned
 *      blocks, which must still succeed ("overwrite at 100%");
 *   5. queue mode with --resume-ms: one more write needing a block waits while another thread
 *      grows the data file after that many ms; the write's latency is the stall (loop mode).
 *
 * Usage: fill --data PATH --metadata PATH --mode loop|direct --data-size BYTES
 *             [--block-size BYTES] [--bs BYTES] [--low-water BLOCKS] [--no-space error|queue]
 *             [--timeout-ms MS] [--resume-ms MS] [--probe N] --timeline CSV --summary JSON
 * Sizes are plain bytes. Exit 0 when every phase behaved as dm-thin says it must. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thinp.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t t0;
static volatile uint64_t io_index;
static volatile int64_t low_water_io = -1;
static volatile uint64_t low_water_ns;

static void on_low_water(void *ctx, struct thinp_pool *p)
{
	(void)ctx;
	(void)p;
	if (low_water_io < 0) {
		low_water_ns = now_ns() - t0;
		low_water_io = (int64_t)io_index;
	}
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "fill: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t free_blocks(struct thinp_pool *p)
{
	struct thinp_pool_status st;
	if (thinp_pool_status(p, true, &st))
		return 0;
	return st.total_data_blocks - st.used_data_blocks;
}

/* simple statistics of a latency sample (ns) */
struct sample {
	uint64_t *v;
	size_t n, cap;
};
static void push(struct sample *s, uint64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			die("%s", "out of memory");
	}
	s->v[s->n++] = x;
}
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}
static void put_sample(FILE *f, const char *name, struct sample *s, bool comma)
{
	double mean = 0;
	for (size_t i = 0; i < s->n; i++)
		mean += (double)s->v[i];
	mean = s->n ? mean / (double)s->n : 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	uint64_t p50 = s->n ? s->v[s->n / 2] : 0;
	uint64_t p99 = s->n ? s->v[(s->n * 99) / 100 < s->n ? (s->n * 99) / 100 : s->n - 1] : 0;
	uint64_t mx = s->n ? s->v[s->n - 1] : 0;
	fprintf(f,
	        "  \"%s\": {\"count\": %zu, \"mean_ns\": %.0f, \"p50_ns\": %" PRIu64
	        ", \"p99_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 "}%s\n",
	        name, s->n, mean, p50, p99, mx, comma ? "," : "");
}

struct resume_arg {
	struct thinp_pool *pool;
	uint64_t new_bytes;
	unsigned ms;
	int rc;
};
static void *resume_thread(void *a)
{
	struct resume_arg *r = a;
	usleep(r->ms * 1000u);
	r->rc = thinp_pool_resize_data(r->pool, r->new_bytes);
	return NULL;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static FILE *tl;
static struct thinp_pool *pool;
static struct thinp_thin *thin;
static void *buf;
static uint64_t bs = 4096;

/* one timed write of BS bytes at OFF; a line of the timeline; its latency into S (if any) */
static int io(const char *phase, uint64_t off, struct sample *s)
{
	struct thinp_io_result res = {0};
	uint64_t s0 = now_ns();
	int r = thinp_write(thin, buf, bs, off, 0, &res);
	uint64_t lat = now_ns() - s0;
	if (s)
		push(s, lat);
	fprintf(tl, "%" PRIu64 " %.3f %.3f %s %" PRIu64 " %d %s\n", io_index, (double)(s0 - t0) / 1e6,
	        (double)lat / 1e3, r ? "error" : thinp_class_name(res.cls), free_blocks(pool), r,
	        phase);
	io_index++;
	return r;
}

int main(int argc, char **argv)
{
	const char *data = NULL, *meta = NULL, *mode = "loop", *no_space = "error";
	const char *timeline = NULL, *summary = NULL;
	uint64_t data_size = 64ull << 20, block = 65536, low_water = 0;
	unsigned timeout_ms = 200, resume_ms = 0, probe = 4;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("missing value for %s", a);
		i++;
		if (!strcmp(a, "--data")) data = v;
		else if (!strcmp(a, "--metadata")) meta = v;
		else if (!strcmp(a, "--mode")) mode = v;
		else if (!strcmp(a, "--data-size")) data_size = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--block-size")) block = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--bs")) bs = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--low-water")) low_water = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--no-space")) no_space = v;
		else if (!strcmp(a, "--timeout-ms")) timeout_ms = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--resume-ms")) resume_ms = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--probe")) probe = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--timeline")) timeline = v;
		else if (!strcmp(a, "--summary")) summary = v;
		else die("unknown option %s", a);
	}
	if (!data || !meta || !timeline || !summary)
		die("%s", "--data, --metadata, --timeline and --summary are required");
	bool direct = !strcmp(mode, "direct");
	bool queue = !strcmp(no_space, "queue");
	if (bs > block || block % 65536 || bs % 512)
		die("%s", "--bs must be a multiple of 512 no larger than --block-size (a multiple of 64k)");

	struct stat sb;
	bool data_is_file = stat(data, &sb) != 0 || S_ISREG(sb.st_mode);
	struct thinp_pool_paths where = {
		.data = data,
		.metadata = meta,
		.data_size = data_size,
		.meta_size = 64ull << 20,
		.direct = direct,
		.force = true, /* every run starts from a new pool */
		.how = THINP_OPEN_CREATE,
	};
	struct thinp_pool_opts po = {
		.block_sectors = (uint32_t)(block / 512),
		.low_water_blocks = low_water,
		.skip_block_zeroing = true, /* Docker's loop-lvm preset */
		.error_if_no_space = !queue,
		.no_space_timeout_ms = timeout_ms,
		.low_water_cb = on_low_water,
	};
	struct thinp_pool *p;
	char err[512] = "";
	if (thinp_pool_open_paths(&where, &po, &p, NULL, err, sizeof(err)))
		die("%s", err);
	uint64_t nblocks = free_blocks(p);
	if (thinp_create_thin(p, 1))
		die("%s", thinp_pool_error(p));
	struct thinp_thin *t;
	if (thinp_thin_open(p, 1, 4 * nblocks * block, &t))
		die("%s", thinp_pool_error(p));

	pool = p;
	thin = t;
	if (posix_memalign(&buf, 4096, bs))
		die("%s", "out of memory");
	memset(buf, 0x5a, bs);

	tl = fopen(timeline, "w");
	if (!tl)
		die("cannot write %s", timeline);
	fprintf(tl, "# io t_ms lat_us class free_blocks rc phase\n");
	struct sample s_fill = {0}, s_ow12 = {0}, s_ow100 = {0}, s_nospc = {0};
	uint64_t full_io = 0, full_ns = 0, fills = 0;
	int ok = 1;
	t0 = now_ns();
	uint64_t next = 0; /* next virtual block to provision */

	/* 2. baseline: 1/8 of the pool, then overwrites of it */
	uint64_t base = nblocks / 8 ? nblocks / 8 : 1;
	for (; next < base; next++, fills++)
		if (io("fill", next * block, &s_fill))
			die("%s", "a write failed while the pool had space");
	for (unsigned i = 0; i < 4 * base && i < 4096; i++)
		if (io("overwrite_12", (rnd() % next) * block, &s_ow12))
			die("%s", "an overwrite failed");
	/* 3. fill every remaining block: each write provisions one */
	for (; next < nblocks; next++, fills++)
		if (io("fill", next * block, &s_fill)) {
			fprintf(stderr, "fill: write %" PRIu64 " failed before the pool was full\n", next);
			ok = 0;
			break;
		}
	full_io = io_index - 1;
	full_ns = now_ns() - t0;
	/* 4. queue mode: a write needing a block waits until the pool grows (the thread grows the
	 * data file by 16 blocks after resume_ms); then those 16 blocks are filled too */
	int64_t resume_lat = -1;
	int resume_rc = 0;
	if (queue && resume_ms && data_is_file && ok) {
		struct resume_arg ra = {p, data_size + 16 * block, resume_ms, 0};
		pthread_t th;
		pthread_create(&th, NULL, resume_thread, &ra);
		uint64_t s0 = now_ns();
		resume_rc = io("resumed", next * block, NULL);
		resume_lat = (int64_t)(now_ns() - s0);
		pthread_join(th, NULL);
		if (ra.rc || resume_rc) {
			fprintf(stderr, "fill: the queued write did not resume (resize %d, write %d)\n",
			        ra.rc, resume_rc);
			ok = 0;
		}
		for (next++, fills++; free_blocks(p) > 0; next++, fills++)
			if (io("fill", next * block, &s_fill)) {
				ok = 0;
				break;
			}
		full_io = io_index - 1;
		full_ns = now_ns() - t0;
	}
	/* 5. at 100%: writes that need a block are refused: error mode at once; queue mode the
	 * first after no_space_timeout, which also flips the pool to error mode (the kernel's rule),
	 * so the later ones fail at once; overwrites of provisioned blocks still succeed */
	uint64_t first_refusal = 0;
	for (unsigned i = 0; i < probe; i++) {
		uint64_t s0 = now_ns();
		int r = io("need_block", (next + i) * block, i ? &s_nospc : NULL);
		if (!i)
			first_refusal = now_ns() - s0;
		if (r != -ENOSPC) {
			fprintf(stderr, "fill: a write needing a block at 100%% returned %d\n", r);
			ok = 0;
		}
	}
	for (unsigned i = 0; i < 4 * base && i < 4096; i++)
		if (io("overwrite_100", (rnd() % next) * block, &s_ow100)) {
			fprintf(stderr, "fill: an overwrite of a provisioned block failed at 100%%\n");
			ok = 0;
			break;
		}
	fclose(tl);
	thinp_thin_close(t);
	thinp_pool_close(p);
	free(buf);

	FILE *f = fopen(summary, "w");
	if (!f)
		die("cannot write %s", summary);
	fprintf(f, "{\n  \"mode\": \"%s\", \"no_space\": \"%s\", \"block_size\": %" PRIu64
	           ", \"bs\": %" PRIu64 ",\n",
	        mode, no_space, block, bs);
	fprintf(f, "  \"pool_blocks\": %" PRIu64 ", \"low_water_blocks\": %" PRIu64
	           ", \"provisioned\": %" PRIu64 ",\n",
	        nblocks, low_water, fills);
	fprintf(f, "  \"low_water_io\": %" PRId64 ", \"low_water_ms\": %.3f,\n", (int64_t)low_water_io,
	        low_water_io < 0 ? -1.0 : (double)low_water_ns / 1e6);
	fprintf(f, "  \"full_io\": %" PRIu64 ", \"full_ms\": %.3f, \"timeout_ms\": %u,\n", full_io,
	        (double)full_ns / 1e6, timeout_ms);
	fprintf(f, "  \"resume_ms\": %u, \"resume_latency_ns\": %" PRId64 ", \"resume_rc\": %d,\n",
	        resume_ms, resume_lat, resume_rc);
	fprintf(f, "  \"first_refusal_ns\": %" PRIu64 ",\n", first_refusal);
	fprintf(f, "  \"ok\": %s,\n", ok ? "true" : "false");
	put_sample(f, "provision", &s_fill, true);
	put_sample(f, "overwrite_12", &s_ow12, true);
	put_sample(f, "need_block_at_100", &s_nospc, true);
	put_sample(f, "overwrite_100", &s_ow100, false);
	fprintf(f, "}\n");
	fclose(f);
	return ok ? 0 : 1;
}
