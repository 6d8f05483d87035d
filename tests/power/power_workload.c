/* The power-cut test's workload on a directory pool, through libthinp's public API,
 * noting in the mount's mark file (wlog.h) what it is about to write and which flushes
 * and commits returned, so power_replay knows what must survive a cut.
 *
 *   power_workload pattern DEV UNIT VERSION SEED      one unit's bytes to stdout
 *   power_workload run DIR MARKFILE SEED OPS FIRST_ID FIRST_VERSION [--direct] [THIN...]
 *
 * `run` opens the pool DIR (made by `thinp pool create`) whose thins THIN... exist, and
 * does OPS seeded random operations: writes of 1 to 16 units (provisioning, overwrite,
 * copy-on-write of snapshots' shared blocks), flushes (also right after a commit and an
 * overwrite: no metadata change), whole-block discards, thin and
 * snapshot creates (ids from FIRST_ID on), deletes (of those), data extends, commits. Versions of
 * writes count from FIRST_VERSION. Marks (one line per write(2)):
 *   w DEV UNIT VERSION    before writing that unit (a cut may come before or after)
 *   z DEV UNIT COUNT      before discarding COUNT units
 *   c DEV / s DEV ORIGIN / d DEV / x BYTES    before a create, snapshot, delete, extend
 *   f DEV                 thinp_flush(DEV) returned: DEV's writes and discards are durable
 *   C                     a commit (or the close) returned: everything above is durable */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "power/pattern.h"
#include "thinp.h"

#define THIN_UNITS 128u /* 512 KiB per thin: 8 pool blocks of 64 KiB */
#define MAX_THINS 64
#define MAX_LIVE 6
#define BLOCK_UNITS 16u

static int mark_fd = -1;
static struct thinp_pool *pool;
static uint64_t seed, rng;

struct live {
	uint64_t id;
	struct thinp_thin *t;
	bool written[THIN_UNITS]; /* by this run: mapped, so a rewrite is an overwrite */
};
static struct live live[MAX_THINS];
static unsigned nr_live;

static void die(const char *what, int r)
{
	fprintf(stderr, "power_workload: %s: %s (%s)\n", what, strerror(r < 0 ? -r : r),
		pool ? thinp_pool_error(pool) : "");
	exit(1);
}

static void mark(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mark(const char *fmt, ...)
{
	char line[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(mark_fd, line, (size_t)n) != n)
		die("writing a mark", errno);
}

static uint64_t rnd(uint64_t n)
{
	return psplitmix(&rng) % n;
}

static void add_live(uint64_t id)
{
	memset(live[nr_live].written, 0, sizeof(live[nr_live].written));
	int r = thinp_thin_open(pool, id, (uint64_t)THIN_UNITS * PUNIT, &live[nr_live].t);
	if (r)
		die("opening a thin", r);
	live[nr_live++].id = id;
}

static void do_write_at(struct live *l, uint64_t u, unsigned n, uint64_t *version,
			uint8_t *buf);

static void do_write(struct live *l, uint64_t *version, uint8_t *buf)
{
	unsigned n = rnd(4) ? 1 : 1 + (unsigned)rnd(BLOCK_UNITS);
	if (!rnd(8))
		n = BLOCK_UNITS; /* a whole pool block: no zeroing, no copy */
	uint64_t u = rnd(THIN_UNITS - n + 1);
	if (n == BLOCK_UNITS)
		u -= u % BLOCK_UNITS;
	do_write_at(l, u, n, version, buf);
}

static void do_write_at(struct live *l, uint64_t u, unsigned n, uint64_t *version, uint8_t *buf)
{
	for (unsigned i = 0; i < n; i++) {
		l->written[u + i] = true;
		uint64_t v = (*version)++;
		mark("w %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", l->id, u + i, v);
		pattern_fill(buf + (size_t)i * PUNIT, seed, l->id, u + i, v);
	}
	struct thinp_io_result res;
	int r = thinp_write(l->t, buf, (size_t)n * PUNIT, u * PUNIT, 0, &res);
	if (r)
		die("write", r);
}

static void do_flush(struct live *l)
{
	struct thinp_io_result res;
	int r = thinp_flush(l->t, &res);
	if (r)
		die("flush", r);
	mark("f %" PRIu64 "\n", l->id);
}

static void do_commit(void)
{
	int r = thinp_pool_commit(pool);
	if (r)
		die("commit", r);
	mark("C\n");
}

/* A commit, then a rewrite of a unit L mapped earlier, then a flush: the flush of a thin
 * with no metadata change, which must still sync the data device. */
static void do_overwrite_flush(struct live *l, uint64_t *version, uint8_t *buf)
{
	uint64_t u = rnd(THIN_UNITS);
	for (unsigned i = 0; i < THIN_UNITS && !l->written[u]; i++)
		u = (u + 1) % THIN_UNITS;
	if (!l->written[u])
		return do_write(l, version, buf);
	do_commit();
	do_write_at(l, u, 1, version, buf);
	do_flush(l);
}

static int run(int argc, char **argv)
{
	const char *dir = argv[2];
	seed = strtoull(argv[4], NULL, 0);
	rng = seed;
	unsigned long ops = strtoul(argv[5], NULL, 0);
	uint64_t first_id = strtoull(argv[6], NULL, 0), next_id = first_id, version = strtoull(argv[7], NULL, 0);
	bool direct = false;
	int i = 8;
	if (i < argc && !strcmp(argv[i], "--direct"))
		direct = true, i++;
	mark_fd = open(argv[3], O_WRONLY);
	if (mark_fd < 0)
		die(argv[3], errno);

	struct thinp_pool_paths w = { .dir = dir, .direct = direct, .how = THINP_OPEN_EXISTING };
	/* commits only where the workload says (and marks) them */
	struct thinp_pool_opts o = { .no_commit_timer = true };
	char err[512];
	if (thinp_pool_open_paths(&w, &o, &pool, NULL, err, sizeof(err))) {
		fprintf(stderr, "power_workload: %s\n", err);
		return 1;
	}
	for (; i < argc; i++)
		add_live(strtoull(argv[i], NULL, 0));

	uint8_t *buf;
	if (posix_memalign((void **)&buf, PUNIT, (size_t)BLOCK_UNITS * PUNIT))
		die("memory", ENOMEM);
	uint64_t data_bytes = 0;
	{
		struct thinp_pool_status st;
		int r = thinp_pool_status(pool, true, &st);
		if (r)
			die("status", r);
		data_bytes = st.total_data_blocks * thinp_pool_block_bytes(pool);
	}
	for (unsigned long op = 0; op < ops; op++) {
		uint64_t k = rnd(100);
		struct live *l = nr_live ? &live[rnd(nr_live)] : NULL;
		if (!l || (k < 4 && nr_live < MAX_LIVE && next_id < 1000)) {
			uint64_t id = next_id++;
			mark("c %" PRIu64 "\n", id);
			int r = thinp_create_thin(pool, id);
			if (r)
				die("create thin", r);
			add_live(id);
		} else if (k < 7 && nr_live < MAX_LIVE) {
			/* as the kernel suspends (and so flushes) an origin before a snapshot */
			do_flush(l);
			uint64_t id = next_id++, origin = l->id;
			mark("s %" PRIu64 " %" PRIu64 "\n", id, origin);
			int r = thinp_create_snap(pool, id, origin);
			if (r)
				die("snapshot", r);
			add_live(id);
		} else if (k < 9 && l->id >= first_id) {
			/* (the thins the CLI made are the CLI's to delete) */
			uint64_t id = l->id;
			thinp_thin_close(l->t);
			*l = live[--nr_live];
			mark("d %" PRIu64 "\n", id);
			int r = thinp_delete_thin(pool, id);
			if (r)
				die("delete thin", r);
		} else if (k < 10) {
			data_bytes += 1u << 20;
			mark("x %" PRIu64 "\n", data_bytes);
			int r = thinp_pool_resize_data(pool, data_bytes);
			if (r)
				die("extend", r);
		} else if (k < 14) {
			do_commit();
		} else if (k < 26) {
			do_flush(l);
		} else if (k < 32) {
			do_overwrite_flush(l, &version, buf);
		} else if (k < 37) {
			uint64_t u = rnd(THIN_UNITS / BLOCK_UNITS) * BLOCK_UNITS;
			mark("z %" PRIu64 " %" PRIu64 " %u\n", l->id, u, BLOCK_UNITS);
			struct thinp_io_result res;
			int r = thinp_discard(l->t, u * PUNIT, (uint64_t)BLOCK_UNITS * PUNIT, &res);
			if (r)
				die("discard", r);
		} else {
			do_write(l, &version, buf);
		}
	}
	for (unsigned j = 0; j < nr_live; j++)
		thinp_thin_close(live[j].t);
	int r = thinp_pool_close(pool);
	pool = NULL;
	if (r)
		die("close", r);
	mark("C\n");
	free(buf);
	close(mark_fd);
	printf("%" PRIu64 " %" PRIu64 "\n", next_id, version);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "pattern")) {
		uint8_t buf[PUNIT];
		pattern_fill(buf, strtoull(argv[5], NULL, 0), strtoull(argv[2], NULL, 0),
			     strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
		return fwrite(buf, 1, sizeof(buf), stdout) == sizeof(buf) ? 0 : 1;
	}
	if (argc >= 8 && !strcmp(argv[1], "run"))
		return run(argc, argv);
	fputs("usage: power_workload pattern DEV UNIT VERSION SEED\n"
	      "       power_workload run DIR MARKFILE SEED OPS FIRST_ID FIRST_VERSION [--direct] "
	      "[THIN...]\n",
	      stderr);
	return 2;
}
