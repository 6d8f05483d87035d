/* Crash and fault tests of the thin metadata, below the storage layer.
 *
 * A seeded workload (format; thin devices; snapshot chains; allocate+insert,
 * overwrite, remove, remove_range; delete; metadata snapshot reserve/release;
 * transaction ids; data and metadata resizes; aborts; transactions of 1 to
 * 30 steps) runs against a metadata device wrapped by the fault injector. A
 * recording run notes, after every commit, the write count at which it
 * completed and a digest of the committed state, read back from the disk and
 * compared with an independent model of the pool (which also checks that no
 * data block still used by the committed state is handed out again).
 *
 * test_crash_cut_points replays the workload from scratch with a volatile
 * write cache and power cut after write K, for 1000+ values of K (every
 * boundary when there are at most 1000); after the crash the surviving disk
 * must open, hold exactly the last commit completed before the cut, pass the
 * strict checker, every 50th thin_check, and every 10th accept a new
 * transaction. Such cuts only produce "all writes up to some flush" states,
 * so test_crash_torn_epochs also rebuilds, from a log of one run, states
 * where any subset of the writes issued since the last flush reached the
 * disk (what a volatile cache may do) and checks them the same way.
 *
 * The fault tests fail one metadata write (during the ops of a transaction,
 * during its commit, during format) or one read, and require a clean error,
 * refusal of further changes after a failed write until tmd_abort, and the
 * last committed state after it; a failure the library absorbed (a
 * write-back retried at commit) must have lost nothing.
 *
 * Replay with THINP_CRASH_SEED (and THINP_CRASH_STEPS, THINP_CRASH_POINTS)
 * or THINP_FAULT_SEED in the environment; every failure message names the
 * seed and the cut point or fault position. */
#include "io/dev.h"
#include "support/dev_fault.h"
#include "pdata/block_manager.h"
#include "thin/check.h"
#include "thin/metadata.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KiB 1024ull
#define MiB (1024ull * KiB)

#define META_SIZE     (4 * MiB)
#define META_MAX_SIZE (8 * MiB)
/* Just below four data space-map bitmaps (16320 entries each), so resizes
 * cross into a fifth bitmap block. */
#define NR_DATA_BLOCKS     64000ull
#define DATA_BLOCK_SECTORS 128u
/* Small on purpose: dirty blocks get written back (and can be lost) in the
 * middle of transactions, not only at commit. */
#define CACHE_BLOCKS        24u
#define VERIFY_CACHE_BLOCKS 256u
#define NVB                 16384u /* virtual blocks per device the workload touches */
#define MAX_DEVS            10u
#define MAX_DEV_ID          32u
#define RECOVERY_DEV        1000u

#define DEFAULT_SEED   0x7468696e63726173ull
#define DEFAULT_STEPS  600u
#define DEFAULT_POINTS 1000u

/* A step's result when the library answered but not as the model expects;
 * outside errno's range so it is never mistaken for a library error. */
#define WL_MISMATCH (-100000)

/* ---- small helpers ---------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	ck_assert_msg(p != NULL, "out of memory");
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	ck_assert_msg(p != NULL, "out of memory");
	return p;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoull(s, &end, 0);
	ck_assert_msg(!errno && !*end, "%s=%s is not a number", name, s);
	return v;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rng {
	uint64_t s;
};

/* splitmix64: tiny, seedable from any value, good enough for a workload */
static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* Workload index -> virtual block. Half the indexes map above 2^32 so keys
 * use the full width; the map is monotonic, so index order is key order and
 * an index range is a key range. */
static uint64_t vb_of(unsigned idx)
{
	return idx < NVB / 2 ? idx : (1ull << 32) + idx;
}

/* ---- state digest ----------------------------------------------------------------------------- */

/* A hash of the committed state in a canonical order, plus a short readable
 * summary to print when two digests differ. */
struct digest {
	uint64_t h;
	uint64_t nr_mappings;
	char sum[256];
	size_t len;
};

static void dg_init(struct digest *d)
{
	memset(d, 0, sizeof(*d));
	d->h = 1469598103934665603ull; /* FNV-1a */
}

static void dg_u64(struct digest *d, uint64_t x)
{
	for (int i = 0; i < 8; i++) {
		d->h ^= (x >> (8 * i)) & 0xff;
		d->h *= 1099511628211ull;
	}
}

static void dg_text(struct digest *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (d->len + 1 >= sizeof(d->sum))
		return;
	va_start(ap, fmt);
	n = vsnprintf(d->sum + d->len, sizeof(d->sum) - d->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		d->len += (size_t)n < sizeof(d->sum) - d->len ? (size_t)n :
		                                                sizeof(d->sum) - d->len - 1;
}

static void dg_pool(struct digest *d, uint32_t time, uint64_t trans_id, bool held, uint64_t nr_data,
                    uint64_t meta_blocks, uint64_t nr_free)
{
	dg_u64(d, time);
	dg_u64(d, trans_id);
	dg_u64(d, held);
	dg_u64(d, nr_data);
	dg_u64(d, meta_blocks);
	dg_u64(d, nr_free);
	dg_text(d, "time=%u tid=%llu held=%d data=%llu meta=%llu free=%llu devs:", time,
	        (unsigned long long)trans_id, held, (unsigned long long)nr_data,
	        (unsigned long long)meta_blocks, (unsigned long long)nr_free);
}

static void dg_dev(struct digest *d, uint64_t id, const struct thin_details *t)
{
	dg_u64(d, ~0ull); /* separates devices whatever their mappings */
	dg_u64(d, id);
	dg_u64(d, t->mapped_blocks);
	dg_u64(d, t->transaction_id);
	dg_u64(d, t->creation_time);
	dg_u64(d, t->snapshotted_time);
	dg_text(d, " %llu(%llu,t%llu,c%u,s%u)", (unsigned long long)id,
	        (unsigned long long)t->mapped_blocks, (unsigned long long)t->transaction_id,
	        t->creation_time, t->snapshotted_time);
}

static void dg_map(struct digest *d, uint64_t vb, uint64_t db, uint32_t time)
{
	dg_u64(d, vb);
	dg_u64(d, db);
	dg_u64(d, time);
	d->nr_mappings++;
}

static int dg_walk_cb(void *ctx, uint64_t vb, uint64_t db, uint32_t time)
{
	dg_map(ctx, vb, db, time);
	return 0;
}

/* Digest of what MD sees (its committed state when nothing is pending). */
static int digest_md(struct tmd *md, struct digest *d)
{
	struct thin_sb_info si;
	uint64_t *ids = NULL;
	size_t nr = 0;
	int r;

	dg_init(d);
	tmd_sb_info(md, &si);
	dg_pool(d, si.time, si.transaction_id, si.held_root != 0, si.nr_data_blocks,
	        si.metadata_nr_blocks, tmd_nr_free_data_blocks(md));
	r = tmd_list_devices(md, &ids, &nr);
	if (r)
		return r;
	for (size_t i = 0; i < nr && !r; i++) {
		struct thin_details t;

		r = tmd_get_details(md, ids[i], &t);
		if (!r) {
			dg_dev(d, ids[i], &t);
			r = tmd_walk_mappings(md, ids[i], dg_walk_cb, d);
		}
	}
	free(ids);
	dg_text(d, " maps=%llu", (unsigned long long)d->nr_mappings);
	return r;
}

/* ---- the model -------------------------------------------------------------------------------- */

struct ment {
	uint32_t db1; /* data block + 1; 0 = unmapped (the pool stays far below 2^32) */
	uint32_t time;
};

struct mdev {
	uint64_t id;
	struct thin_details d;
	struct ment *e; /* NVB entries */
};

/* What the pool must contain, kept without any sharing so that it cannot
 * share the library's bugs. Data block reference counts follow the rule the
 * strict checker also uses: a block is in use while some leaf of a live
 * device or of the held metadata snapshot names it. */
struct model {
	uint32_t time;
	uint64_t trans_id;
	uint64_t nr_data;
	uint64_t meta_blocks;
	struct mdev dev[MAX_DEVS]; /* ascending ids */
	size_t nr_devs;
	uint32_t *cnt; /* nr_data: live leaf entries naming each block */
	uint8_t *held; /* nr_held: blocks named by the metadata snapshot; NULL = none */
	uint64_t nr_held;
	uint64_t nr_inuse;
	/* Transaction-local: blocks allocated in / freed by the open transaction.
	 * A block freed in the transaction is still in use in the committed
	 * state and must not be handed out again before the commit. */
	uint8_t *tx_new, *tx_freed;
	uint64_t nr_tx_freed;
	uint64_t *touched;
	size_t nr_touched, cap_touched;
};

static void m_init(struct model *m, uint64_t nr_data, uint64_t meta_blocks)
{
	memset(m, 0, sizeof(*m));
	m->nr_data = nr_data;
	m->meta_blocks = meta_blocks;
	m->cnt = xcalloc(nr_data, sizeof(*m->cnt));
	m->tx_new = xcalloc(nr_data, 1);
	m->tx_freed = xcalloc(nr_data, 1);
}

static void m_free(struct model *m)
{
	for (size_t i = 0; i < m->nr_devs; i++)
		free(m->dev[i].e);
	free(m->cnt);
	free(m->held);
	free(m->tx_new);
	free(m->tx_freed);
	free(m->touched);
	memset(m, 0, sizeof(*m));
}

/* Deep copy of the durable part; the copy starts with an empty transaction. */
static void m_copy(struct model *dst, const struct model *src)
{
	m_init(dst, src->nr_data, src->meta_blocks);
	dst->time = src->time;
	dst->trans_id = src->trans_id;
	dst->nr_devs = src->nr_devs;
	for (size_t i = 0; i < src->nr_devs; i++) {
		dst->dev[i] = src->dev[i];
		dst->dev[i].e = xcalloc(NVB, sizeof(struct ment));
		memcpy(dst->dev[i].e, src->dev[i].e, NVB * sizeof(struct ment));
	}
	memcpy(dst->cnt, src->cnt, src->nr_data * sizeof(*src->cnt));
	if (src->held) {
		dst->held = xcalloc(src->nr_held, 1);
		memcpy(dst->held, src->held, src->nr_held);
		dst->nr_held = src->nr_held;
	}
	dst->nr_inuse = src->nr_inuse;
}

static void m_touch(struct model *m, uint64_t b)
{
	if (m->nr_touched == m->cap_touched) {
		m->cap_touched = m->cap_touched ? 2 * m->cap_touched : 256;
		m->touched = xrealloc(m->touched, m->cap_touched * sizeof(*m->touched));
	}
	m->touched[m->nr_touched++] = b;
}

static void m_tx_reset(struct model *m)
{
	for (size_t i = 0; i < m->nr_touched; i++) {
		m->tx_new[m->touched[i]] = 0;
		m->tx_freed[m->touched[i]] = 0;
	}
	m->nr_touched = 0;
	m->nr_tx_freed = 0;
}

static bool m_in_use(const struct model *m, uint64_t b)
{
	return m->cnt[b] || (m->held && b < m->nr_held && m->held[b]);
}

static void m_became_free(struct model *m, uint64_t b)
{
	m->nr_inuse--;
	if (!m->tx_new[b] && !m->tx_freed[b]) {
		m->tx_freed[b] = 1;
		m->nr_tx_freed++;
		m_touch(m, b);
	}
}

static void m_ref(struct model *m, uint64_t b, int delta)
{
	bool was = m_in_use(m, b);

	m->cnt[b] = (uint32_t)((int64_t)m->cnt[b] + delta);
	if (!was && m_in_use(m, b))
		m->nr_inuse++;
	else if (was && !m_in_use(m, b))
		m_became_free(m, b);
}

static void m_set(struct model *m, size_t di, unsigned idx, uint32_t db1, uint32_t time)
{
	struct mdev *d = &m->dev[di];
	struct ment old = d->e[idx];

	if (db1) {
		m_ref(m, db1 - 1, +1);
		d->d.mapped_blocks++;
	}
	if (old.db1) {
		m_ref(m, old.db1 - 1, -1);
		d->d.mapped_blocks--;
	}
	d->e[idx] = (struct ment){ db1, db1 ? time : 0 };
}

static int m_find(const struct model *m, uint64_t id)
{
	for (size_t i = 0; i < m->nr_devs; i++)
		if (m->dev[i].id == id)
			return (int)i;
	return -1;
}

/* Takes ownership of E; the caller has already counted E's references. */
static size_t m_add_dev(struct model *m, uint64_t id, const struct thin_details *t, struct ment *e)
{
	size_t i = m->nr_devs;

	ck_assert(m->nr_devs < MAX_DEVS);
	while (i > 0 && m->dev[i - 1].id > id) {
		m->dev[i] = m->dev[i - 1];
		i--;
	}
	m->dev[i] = (struct mdev){ id, *t, e };
	m->nr_devs++;
	return i;
}

static void m_del_dev(struct model *m, size_t di)
{
	struct ment *e = m->dev[di].e;

	for (unsigned idx = 0; idx < NVB; idx++)
		if (e[idx].db1)
			m_ref(m, e[idx].db1 - 1, -1);
	free(e);
	memmove(&m->dev[di], &m->dev[di + 1], (m->nr_devs - di - 1) * sizeof(m->dev[0]));
	m->nr_devs--;
}

static void m_reserve(struct model *m)
{
	m->held = xcalloc(m->nr_data, 1);
	m->nr_held = m->nr_data;
	for (uint64_t b = 0; b < m->nr_data; b++)
		m->held[b] = m->cnt[b] > 0;
}

static void m_release(struct model *m)
{
	uint8_t *held = m->held;
	uint64_t nr = m->nr_held;

	m->held = NULL;
	m->nr_held = 0;
	for (uint64_t b = 0; b < nr; b++)
		if (held[b] && !m->cnt[b])
			m_became_free(m, b);
	free(held);
}

static void m_resize_data(struct model *m, uint64_t nr)
{
	m->cnt = xrealloc(m->cnt, nr * sizeof(*m->cnt));
	m->tx_new = xrealloc(m->tx_new, nr);
	m->tx_freed = xrealloc(m->tx_freed, nr);
	memset(m->cnt + m->nr_data, 0, (nr - m->nr_data) * sizeof(*m->cnt));
	memset(m->tx_new + m->nr_data, 0, nr - m->nr_data);
	memset(m->tx_freed + m->nr_data, 0, nr - m->nr_data);
	m->nr_data = nr;
}

static void digest_model(const struct model *m, struct digest *d)
{
	dg_init(d);
	dg_pool(d, m->time, m->trans_id, m->held != NULL, m->nr_data, m->meta_blocks,
	        m->nr_data - m->nr_inuse);
	for (size_t i = 0; i < m->nr_devs; i++) {
		dg_dev(d, m->dev[i].id, &m->dev[i].d);
		for (unsigned idx = 0; idx < NVB; idx++)
			if (m->dev[i].e[idx].db1)
				dg_map(d, vb_of(idx), m->dev[i].e[idx].db1 - 1,
				       m->dev[i].e[idx].time);
	}
	dg_text(d, " maps=%llu", (unsigned long long)d->nr_mappings);
}

/* ---- checkers --------------------------------------------------------------------------------- */

struct tc_ctx {
	const char *what;
	unsigned shown;
};

static void tc_report(void *ctx, const char *msg)
{
	struct tc_ctx *c = ctx;

	if (c->shown++ < 20)
		fprintf(stderr, "%s: tcheck: %s\n", c->what, msg);
}

static void run_tcheck(struct tp_dev *dev, const char *what)
{
	struct tcheck_opts o = { .skip_data_counts = 0 };
	struct tc_ctx c = { what, 0 };
	unsigned nerr = 0;
	int r = tcheck_run(dev, &o, tc_report, &c, &nerr);

	ck_assert_msg(r == 0, "%s: the strict checker could not run: %s", what, strerror(-r));
	ck_assert_msg(nerr == 0, "%s: the strict checker found %u errors (listed above)", what,
	              nerr);
}

/* thin_check is optional at run time: it is a system tool, and its absence
 * must not hide the rest of the results. */
static bool find_thin_check(char *out, size_t len)
{
	const char *env = getenv("THIN_CHECK");
	const char *fixed[] = { "/usr/sbin/thin_check", "/sbin/thin_check", "/usr/bin/thin_check",
		                "/usr/local/sbin/thin_check", "/usr/local/bin/thin_check" };
	const char *path = getenv("PATH");

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, X_OK) == 0;
	}
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		if (n && (size_t)snprintf(out, len, "%.*s/thin_check", (int)n, path) < len &&
		    access(out, X_OK) == 0)
			return true;
		path = colon ? colon + 1 : NULL;
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		snprintf(out, len, "%s", fixed[i]);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

static int copy_dev_to_file(struct tp_dev *dev, const char *path)
{
	size_t chunk = (size_t)MiB;
	char *buf = xcalloc(1, chunk);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int r = 0;

	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (uint64_t off = 0; off < dev->size && !r; off += chunk) {
		size_t n = dev->size - off < chunk ? (size_t)(dev->size - off) : chunk;

		r = tp_dev_pread(dev, buf, n, off);
		if (!r && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			r = -EIO;
	}
	if (close(fd) && !r)
		r = -errno;
	free(buf);
	return r;
}

static void print_file(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "    %s", line);
	fclose(f);
}

/* Run thin_check on a copy of DEV; fails the test unless it exits 0. */
static void run_thin_check(const char *tool, const char *dir, struct tp_dev *dev, const char *what)
{
	char img[PATH_MAX], log[PATH_MAX];
	char *argv[] = { (char *)tool, img, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0, r;

	r = snprintf(img, sizeof(img), "%s/meta.img", dir);
	ck_assert(r > 0 && (size_t)r < sizeof(img));
	r = snprintf(log, sizeof(log), "%s/thin_check.log", dir);
	ck_assert(r > 0 && (size_t)r < sizeof(log));
	r = copy_dev_to_file(dev, img);
	ck_assert_msg(r == 0, "%s: cannot write %s: %s", what, img, strerror(-r));
	ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
	ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), 0);
	ck_assert_int_eq(
	        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600),
	        0);
	ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
	r = posix_spawn(&pid, tool, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_msg(r == 0, "%s: cannot run %s: %s", what, tool, strerror(r));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "%s: thin_check output:\n", what);
		print_file(log);
		ck_abort_msg("%s: thin_check failed (status %d); image kept in %s", what, status,
		             img);
	}
	unlink(img);
	unlink(log);
}

/* ---- a device that logs its writes ------------------------------------------------------------ */

/* The fault wrapper's cut keeps a prefix of the writes and its crash drops
 * everything unflushed, so the states it can produce are exactly "all
 * writes up to some flush". A real disk with a volatile cache may also have
 * written back any subset of the writes since the last flush, in any order.
 * This pass-through device logs every write and flush so such torn states
 * can be rebuilt offline from one run. */
enum {
	LOG_WRITE,
	LOG_ZERO,
	LOG_FLUSH
};

struct wlog_ent {
	int kind;
	uint64_t off, len;
	uint8_t *data; /* LOG_WRITE only */
};

struct wlog {
	struct wlog_ent *e;
	size_t nr, cap;
	uint64_t max_size; /* largest size the device had */
};

struct logdev {
	struct tp_dev dev; /* first: the ops get &dev */
	struct tp_dev *inner;
	struct wlog *log;
};

static int wlog_add(struct wlog *l, int kind, const void *buf, uint64_t off, uint64_t len)
{
	struct wlog_ent *e;

	if (l->nr == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;

		e = realloc(l->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		l->e = e;
		l->cap = cap;
	}
	e = &l->e[l->nr];
	*e = (struct wlog_ent){ kind, off, len, NULL };
	if (kind == LOG_WRITE) {
		e->data = malloc(len ? len : 1);
		if (!e->data)
			return -ENOMEM;
		memcpy(e->data, buf, len);
	}
	l->nr++;
	return 0;
}

static void wlog_free(struct wlog *l)
{
	for (size_t i = 0; i < l->nr; i++)
		free(l->e[i].data);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static struct logdev *to_logdev(struct tp_dev *d)
{
	return (struct logdev *)(void *)d;
}

static int ld_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return tp_dev_pread(to_logdev(d)->inner, buf, len, off);
}

static int ld_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct logdev *ld = to_logdev(d);
	int r = tp_dev_pwrite(ld->inner, buf, len, off);

	return r ? r : wlog_add(ld->log, LOG_WRITE, buf, off, len);
}

static int ld_flush(struct tp_dev *d)
{
	struct logdev *ld = to_logdev(d);
	int r = tp_dev_flush(ld->inner);

	return r ? r : wlog_add(ld->log, LOG_FLUSH, NULL, 0, 0);
}

static int ld_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct logdev *ld = to_logdev(d);
	int r = tp_dev_write_zeroes(ld->inner, off, len);

	return r ? r : wlog_add(ld->log, LOG_ZERO, NULL, off, len);
}

/* The inner device is a mem device, whose discard zeroes. */
static int ld_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct logdev *ld = to_logdev(d);
	int r = tp_dev_discard(ld->inner, off, len);

	return r ? r : wlog_add(ld->log, LOG_ZERO, NULL, off, len);
}

static int ld_resize(struct tp_dev *d, uint64_t size)
{
	struct logdev *ld = to_logdev(d);
	int r = tp_dev_resize(ld->inner, size);

	d->size = ld->inner->size;
	if (d->size > ld->log->max_size)
		ld->log->max_size = d->size;
	return r;
}

static int ld_refresh_size(struct tp_dev *d)
{
	struct logdev *ld = to_logdev(d);
	int r = ld->inner->ops->refresh_size(ld->inner);

	d->size = ld->inner->size;
	return r;
}

static void ld_close(struct tp_dev *d)
{
	struct logdev *ld = to_logdev(d);

	tp_dev_close(ld->inner);
	free(ld);
}

static const struct tp_dev_ops logdev_ops = {
	.pread = ld_pread,
	.pwrite = ld_pwrite,
	.flush = ld_flush,
	.write_zeroes = ld_write_zeroes,
	.discard = ld_discard,
	.resize = ld_resize,
	.refresh_size = ld_refresh_size,
	.close = ld_close,
};

/* Takes ownership of INNER (also on failure); LOG is the caller's. */
static int logdev_wrap(struct tp_dev *inner, struct wlog *log, struct tp_dev **out)
{
	struct logdev *ld = calloc(1, sizeof(*ld));

	if (!ld) {
		tp_dev_close(inner);
		return -ENOMEM;
	}
	ld->dev.ops = &logdev_ops;
	ld->dev.size = inner->size;
	ld->dev.align = inner->align;
	snprintf(ld->dev.name, sizeof(ld->dev.name), "log:%.200s", inner->name);
	ld->inner = inner;
	ld->log = log;
	if (inner->size > log->max_size)
		log->max_size = inner->size;
	*out = &ld->dev;
	return 0;
}

/* ---- the workload ----------------------------------------------------------------------------- */

enum {
	S_INSERT,
	S_OVERWRITE,
	S_REMOVE,
	S_REMOVE_RANGE,
	S_CREATE,
	S_SNAP,
	S_DELETE,
	S_TRANS_ID,
	S_META_SNAP,
	S_RESIZE,
	S_LOOKUP,
	NR_STEP_KINDS
};

static const char *const step_names[NR_STEP_KINDS] = { "insert",       "overwrite", "remove",
	                                               "remove_range", "create",    "snap",
	                                               "delete",       "trans_id",  "meta_snap",
	                                               "resize",       "lookup" };

struct commit_rec {
	uint64_t writes; /* writes seen when the commit returned */
	struct digest dg;
};

struct recording {
	struct commit_rec *c;
	size_t nr, cap;
};

struct wl {
	uint64_t seed;
	struct rng rng;
	struct model m;
	struct model saved; /* the committed state, while an abort is planned */
	bool abort_planned;

	struct tmd *md;
	struct tp_dev *meta, *inner;
	struct tp_fault *f;

	uint64_t cut;                   /* power goes after this write; 0 = never */
	struct recording *rec;          /* recording run: append each commit */
	const struct recording *expect; /* replay: the commits must land where recorded */
	size_t nr_commits;
	bool allow_reserve; /* reserving a metadata snapshot commits first */
	bool plan_aborts;
	unsigned tx_left; /* steps until the open transaction ends */
	uint64_t ops;     /* library calls that change the metadata */
	uint64_t nr_kind[NR_STEP_KINDS], nr_aborts;
	char why[768];
};

static int wl_fail(struct wl *w, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->why, sizeof(w->why), fmt, ap);
	va_end(ap);
	return r ? r : WL_MISMATCH;
}

static bool power_lost(const struct wl *w)
{
	return w->cut && tp_fault_writes_seen(w->f) > w->cut;
}

/* The stack is tmd -> fault wrapper -> [write log ->] mem device. LOG, when
 * given, records every write that reaches the disk. */
static void wl_setup(struct wl *w, uint64_t seed, bool volatile_cache, struct wlog *log)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->seed = seed;
	w->rng.s = seed;
	w->allow_reserve = true;
	w->plan_aborts = true;
	r = tp_dev_open_mem(META_SIZE, &w->inner);
	ck_assert_msg(r == 0, "tp_dev_open_mem: %s", strerror(-r));
	if (log) {
		r = logdev_wrap(w->inner, log, &w->inner);
		ck_assert_msg(r == 0, "logdev_wrap: %s", strerror(-r));
	}
	r = tp_fault_wrap(w->inner, &w->meta, &w->f);
	if (r)
		tp_dev_close(w->inner);
	ck_assert_msg(r == 0, "tp_fault_wrap: %s", strerror(-r));
	tp_fault_set_volatile(w->f, volatile_cache);
}

static void wl_teardown(struct wl *w)
{
	tmd_close_nocommit(w->md);
	w->md = NULL;
	m_free(&w->m);
	if (w->abort_planned)
		m_free(&w->saved);
	w->abort_planned = false;
	tp_dev_close(w->meta); /* closes the inner device too */
	w->meta = w->inner = NULL;
}

/* What the disk under the wrapper holds now, opened on its own. */
static int digest_inner(struct wl *w, struct digest *d)
{
	struct tmd_open_args a = { .meta = w->inner,
		                   .cache_blocks = VERIFY_CACHE_BLOCKS,
		                   .read_only = true };
	struct tmd *md;
	char err[512];
	int r = tmd_open(&a, &md, err, sizeof(err));

	if (r)
		return wl_fail(w, r, "the committed metadata does not open: %s", err);
	r = digest_md(md, d);
	if (r)
		r = wl_fail(w, r, "reading the committed metadata failed: %s", tmd_error(md));
	tmd_close_nocommit(md);
	return r;
}

/* Mostly short transactions, some long enough that the small cache writes
 * dirty blocks back before the commit. */
static void plan_next_tx(struct wl *w)
{
	w->tx_left = rng_below(&w->rng, 10) < 7 ? 1 + (unsigned)rng_below(&w->rng, 4) :
	                                          5 + (unsigned)rng_below(&w->rng, 26);
}

/* Bookkeeping after a commit: record it or check it landed where recorded,
 * start a new model transaction, and maybe plan to abort the next one. */
static int wl_committed(struct wl *w)
{
	uint64_t writes = tp_fault_writes_seen(w->f);
	int r;

	if (w->rec) {
		struct commit_rec c = { writes, { 0 } };
		struct digest disk;
		char what[128];

		/* The commit flushed, so the inner device holds it in full. */
		r = digest_inner(w, &disk);
		if (r)
			return r;
		digest_model(&w->m, &c.dg);
		if (disk.h != c.dg.h || strcmp(disk.sum, c.dg.sum))
			return wl_fail(
			        w, 0,
			        "commit %zu: the disk differs from the model\n  disk:  %s\n  model: %s",
			        w->nr_commits, disk.sum, c.dg.sum);
		snprintf(what, sizeof(what), "seed %#llx commit %zu", (unsigned long long)w->seed,
		         w->nr_commits);
		run_tcheck(w->inner, what);
		if (w->rec->nr == w->rec->cap) {
			w->rec->cap = w->rec->cap ? 2 * w->rec->cap : 64;
			w->rec->c = xrealloc(w->rec->c, w->rec->cap * sizeof(*w->rec->c));
		}
		w->rec->c[w->rec->nr++] = c;
	} else if (w->expect && !power_lost(w)) {
		if (w->nr_commits >= w->expect->nr || w->expect->c[w->nr_commits].writes != writes)
			return wl_fail(
			        w, 0,
			        "replay is not deterministic: commit %zu completed at write %llu, recorded at %llu",
			        w->nr_commits, (unsigned long long)writes,
			        w->nr_commits < w->expect->nr ?
			                (unsigned long long)w->expect->c[w->nr_commits].writes :
			                0ull);
	}
	w->nr_commits++;
	m_tx_reset(&w->m);
	if (w->abort_planned) {
		m_free(&w->saved);
		w->abort_planned = false;
	}
	if (w->plan_aborts && rng_below(&w->rng, 12) == 0) {
		m_copy(&w->saved, &w->m);
		w->abort_planned = true;
	}
	plan_next_tx(w);
	return 0;
}

static int wl_commit(struct wl *w)
{
	int r = tmd_commit(w->md);

	if (r)
		return wl_fail(w, r, "commit: %s", tmd_error(w->md));
	return wl_committed(w);
}

static int wl_abort(struct wl *w)
{
	int r = tmd_abort(w->md);

	if (r)
		return wl_fail(w, r, "abort: %s", tmd_error(w->md));
	m_free(&w->m);
	w->m = w->saved;
	w->abort_planned = false;
	w->nr_aborts++;
	plan_next_tx(w);
	if (tmd_transaction_id(w->md) != w->m.trans_id)
		return wl_fail(w, 0, "after abort the transaction id is %llu, expected %llu",
		               (unsigned long long)tmd_transaction_id(w->md),
		               (unsigned long long)w->m.trans_id);
	return 0;
}

/* End the transaction the way it was planned. */
static int wl_end_tx(struct wl *w)
{
	return w->abort_planned ? wl_abort(w) : wl_commit(w);
}

static int wl_format(struct wl *w)
{
	struct tmd_open_args a = { .meta = w->meta,
		                   .cache_blocks = CACHE_BLOCKS,
		                   .read_only = false };
	struct thin_sb_info si;
	char err[512];
	int r = tmd_format(&a, DATA_BLOCK_SECTORS, NR_DATA_BLOCKS, &w->md, err, sizeof(err));

	w->ops++;
	if (r)
		return wl_fail(w, r, "format: %s", err);
	tmd_sb_info(w->md, &si);
	m_init(&w->m, NR_DATA_BLOCKS, si.metadata_nr_blocks);
	return wl_committed(w);
}

static uint64_t pick_free_id(struct wl *w)
{
	for (;;) {
		uint64_t id = rng_below(&w->rng, MAX_DEV_ID);

		if (m_find(&w->m, id) < 0)
			return id;
	}
}

/* Up to WANT distinct mapped indexes of device DI, by random probing (a
 * scan would make big devices slow to sample). */
static size_t pick_mapped(struct wl *w, size_t di, unsigned *out, size_t want)
{
	size_t n = 0;

	for (size_t probe = 0; probe < 8 * want && n < want; probe++) {
		unsigned idx = (unsigned)rng_below(&w->rng, NVB);
		bool dup = false;

		if (!w->m.dev[di].e[idx].db1)
			continue;
		for (size_t j = 0; j < n; j++)
			dup |= out[j] == idx;
		if (!dup)
			out[n++] = idx;
	}
	return n;
}

static int insert_one(struct wl *w, size_t di, unsigned idx)
{
	struct model *m = &w->m;
	uint64_t id = m->dev[di].id, b;
	int r = tmd_alloc_data_block(w->md, &b);

	w->ops++;
	if (r)
		return wl_fail(w, r, "alloc_data_block: %s", tmd_error(w->md));
	if (b >= m->nr_data || m_in_use(m, b) || m->tx_freed[b])
		return wl_fail(
		        w, 0, "alloc_data_block returned block %llu, which is %s",
		        (unsigned long long)b,
		        b >= m->nr_data ?
		                "beyond the data device" :
		        m_in_use(m, b) ?
		                "still in use" :
		                "freed in this transaction (still used by the committed state)");
	m->tx_new[b] = 1;
	m_touch(m, b);
	w->ops++;
	r = tmd_insert(w->md, id, vb_of(idx), b);
	if (r)
		return wl_fail(w, r, "insert dev %llu vblock %llu -> %llu: %s",
		               (unsigned long long)id, (unsigned long long)vb_of(idx),
		               (unsigned long long)b, tmd_error(w->md));
	m_set(m, di, idx, (uint32_t)(b + 1), m->time);
	return 0;
}

static int step_create(struct wl *w)
{
	struct model *m = &w->m;
	struct thin_details t = { 0, m->trans_id, m->time, m->time };
	uint64_t id;
	int r;

	if (m->nr_devs >= MAX_DEVS)
		return 0;
	if (m->nr_devs && rng_below(&w->rng, 8) == 0) {
		id = m->dev[rng_below(&w->rng, m->nr_devs)].id;
		w->ops++;
		r = tmd_create_thin(w->md, id);
		if (r != -EEXIST)
			return wl_fail(w, r ? r : WL_MISMATCH,
			               "create_thin of existing device %llu returned %d (%s)",
			               (unsigned long long)id, r, tmd_error(w->md));
	}
	id = pick_free_id(w);
	w->ops++;
	r = tmd_create_thin(w->md, id);
	if (r)
		return wl_fail(w, r, "create_thin %llu: %s", (unsigned long long)id,
		               tmd_error(w->md));
	m_add_dev(m, id, &t, xcalloc(NVB, sizeof(struct ment)));
	return 0;
}

static int step_snap(struct wl *w)
{
	struct model *m = &w->m;
	struct thin_details t;
	struct mdev *o;
	struct ment *e;
	uint64_t id;
	int r;

	if (!m->nr_devs || m->nr_devs >= MAX_DEVS)
		return 0;
	o = &m->dev[rng_below(&w->rng, m->nr_devs)];
	id = pick_free_id(w);
	w->ops++;
	r = tmd_create_snap(w->md, id, o->id);
	if (r)
		return wl_fail(w, r, "create_snap %llu of %llu: %s", (unsigned long long)id,
		               (unsigned long long)o->id, tmd_error(w->md));
	m->time++;
	o->d.snapshotted_time = m->time;
	t = (struct thin_details){ o->d.mapped_blocks, m->trans_id, m->time, m->time };
	e = xcalloc(NVB, sizeof(*e));
	memcpy(e, o->e, NVB * sizeof(*e));
	for (unsigned idx = 0; idx < NVB; idx++)
		if (e[idx].db1)
			m_ref(m, e[idx].db1 - 1, +1);
	m_add_dev(m, id, &t, e);
	return 0;
}

static int step_remove_range(struct wl *w);

static int step_insert(struct wl *w)
{
	struct model *m = &w->m;
	unsigned k = 1 + (unsigned)rng_below(&w->rng, 128);
	unsigned start = (unsigned)rng_below(&w->rng, NVB);
	unsigned stride = 1 + (unsigned)rng_below(&w->rng, 7);
	unsigned pattern = (unsigned)rng_below(&w->rng, 3);
	size_t di;

	if (!m->nr_devs)
		return step_create(w);
	di = rng_below(&w->rng, m->nr_devs);
	/* keep clear of a full data device: that is a different test */
	if (m->nr_data - m->nr_inuse - m->nr_tx_freed < k + 64)
		return step_remove_range(w);
	for (unsigned j = 0; j < k; j++) {
		unsigned idx = pattern == 0 ? (start + j) % NVB :
		               pattern == 1 ? (unsigned)rng_below(&w->rng, NVB) :
		                              (start + j * stride) % NVB;
		int r = insert_one(w, di, idx);

		if (r)
			return r;
	}
	return 0;
}

static int step_overwrite(struct wl *w)
{
	struct model *m = &w->m;
	unsigned idx[32];
	size_t di, n;

	if (!m->nr_devs)
		return 0;
	di = rng_below(&w->rng, m->nr_devs);
	n = pick_mapped(w, di, idx, 1 + rng_below(&w->rng, 32));
	if (m->nr_data - m->nr_inuse - m->nr_tx_freed < n + 64)
		return 0;
	for (size_t j = 0; j < n; j++) {
		int r = insert_one(w, di, idx[j]);

		if (r)
			return r;
	}
	return 0;
}

static int step_remove(struct wl *w)
{
	struct model *m = &w->m;
	unsigned idx[16];
	size_t di, n;
	int r;

	if (!m->nr_devs)
		return 0;
	di = rng_below(&w->rng, m->nr_devs);
	if (rng_below(&w->rng, 8) == 0) {
		unsigned u = (unsigned)rng_below(&w->rng, NVB);

		if (!m->dev[di].e[u].db1) {
			w->ops++;
			r = tmd_remove(w->md, m->dev[di].id, vb_of(u));
			if (r != -ENODATA)
				return wl_fail(
				        w, r ? r : WL_MISMATCH,
				        "remove of unmapped dev %llu vblock %llu returned %d (%s)",
				        (unsigned long long)m->dev[di].id,
				        (unsigned long long)vb_of(u), r, tmd_error(w->md));
		}
	}
	n = pick_mapped(w, di, idx, 1 + rng_below(&w->rng, 16));
	for (size_t j = 0; j < n; j++) {
		w->ops++;
		r = tmd_remove(w->md, m->dev[di].id, vb_of(idx[j]));
		if (r)
			return wl_fail(w, r, "remove dev %llu vblock %llu: %s",
			               (unsigned long long)m->dev[di].id,
			               (unsigned long long)vb_of(idx[j]), tmd_error(w->md));
		m_set(m, di, idx[j], 0, 0);
	}
	return 0;
}

static int step_remove_range(struct wl *w)
{
	struct model *m = &w->m;
	unsigned a = (unsigned)rng_below(&w->rng, NVB);
	unsigned b = a + 1 + (unsigned)rng_below(&w->rng, 2048);
	uint64_t begin, end, removed = 0, expect = 0;
	size_t di;
	int r;

	if (!m->nr_devs)
		return 0;
	di = rng_below(&w->rng, m->nr_devs);
	if (b > NVB)
		b = NVB;
	begin = vb_of(a);
	end = b < NVB ? vb_of(b) : vb_of(NVB - 1) + 1;
	if (rng_below(&w->rng, 16) == 0) {
		a = 0;
		b = NVB;
		begin = 0;
		end = UINT64_MAX;
	}
	for (unsigned idx = a; idx < b; idx++)
		expect += m->dev[di].e[idx].db1 != 0;
	w->ops++;
	r = tmd_remove_range(w->md, m->dev[di].id, begin, end, &removed);
	if (r)
		return wl_fail(w, r, "remove_range dev %llu [%llu, %llu): %s",
		               (unsigned long long)m->dev[di].id, (unsigned long long)begin,
		               (unsigned long long)end, tmd_error(w->md));
	if (removed != expect)
		return wl_fail(w, 0,
		               "remove_range dev %llu [%llu, %llu) removed %llu, expected %llu",
		               (unsigned long long)m->dev[di].id, (unsigned long long)begin,
		               (unsigned long long)end, (unsigned long long)removed,
		               (unsigned long long)expect);
	for (unsigned idx = a; idx < b; idx++)
		if (m->dev[di].e[idx].db1)
			m_set(m, di, idx, 0, 0);
	return 0;
}

static int step_delete(struct wl *w)
{
	struct model *m = &w->m;
	size_t di;
	int r;

	if (rng_below(&w->rng, 8) == 0) {
		uint64_t id = pick_free_id(w);

		w->ops++;
		r = tmd_delete_thin(w->md, id);
		if (r != -ENODATA)
			return wl_fail(w, r ? r : WL_MISMATCH,
			               "delete of missing device %llu returned %d (%s)",
			               (unsigned long long)id, r, tmd_error(w->md));
	}
	if (m->nr_devs < 2)
		return 0;
	di = rng_below(&w->rng, m->nr_devs);
	w->ops++;
	r = tmd_delete_thin(w->md, m->dev[di].id);
	if (r)
		return wl_fail(w, r, "delete %llu: %s", (unsigned long long)m->dev[di].id,
		               tmd_error(w->md));
	m_del_dev(m, di);
	return 0;
}

static int step_trans_id(struct wl *w)
{
	struct model *m = &w->m;
	uint64_t next = m->trans_id + 1 + rng_below(&w->rng, 3);
	int r;

	if (rng_below(&w->rng, 8) == 0) {
		w->ops++;
		r = tmd_set_transaction_id(w->md, m->trans_id + 1, next);
		if (r != -EINVAL)
			return wl_fail(
			        w, r ? r : WL_MISMATCH,
			        "set_transaction_id with a wrong current id returned %d (%s)", r,
			        tmd_error(w->md));
	}
	w->ops++;
	r = tmd_set_transaction_id(w->md, m->trans_id, next);
	if (r)
		return wl_fail(w, r, "set_transaction_id %llu -> %llu: %s",
		               (unsigned long long)m->trans_id, (unsigned long long)next,
		               tmd_error(w->md));
	m->trans_id = next;
	return 0;
}

static int step_meta_snap(struct wl *w)
{
	struct model *m = &w->m;
	int r;

	if (m->held) {
		w->ops++;
		r = tmd_release_metadata_snap(w->md);
		if (r)
			return wl_fail(w, r, "release_metadata_snap: %s", tmd_error(w->md));
		m_release(m);
		return 0;
	}
	if (!w->allow_reserve)
		return 0;
	/* Reserving commits the open transaction inside the library; commit
	 * it here first so that commit is recorded (the library's own commit
	 * then writes the same state again). */
	r = wl_commit(w);
	if (r)
		return r;
	w->ops++;
	r = tmd_reserve_metadata_snap(w->md);
	if (r)
		return wl_fail(w, r, "reserve_metadata_snap: %s", tmd_error(w->md));
	if (!tmd_metadata_snap(w->md))
		return wl_fail(w, 0, "reserve_metadata_snap succeeded but no snapshot is held");
	m_reserve(m);
	if (rng_below(&w->rng, 4) == 0) {
		w->ops++;
		r = tmd_reserve_metadata_snap(w->md);
		if (r != -EBUSY)
			return wl_fail(w, r ? r : WL_MISMATCH,
			               "a second reserve_metadata_snap returned %d (%s)", r,
			               tmd_error(w->md));
	}
	return 0;
}

static int step_resize(struct wl *w)
{
	struct model *m = &w->m;
	int r;

	if (rng_below(&w->rng, 2) == 0) {
		uint64_t nr = m->nr_data + 64 + rng_below(&w->rng, 512);

		w->ops++;
		r = tmd_resize_data(w->md, nr);
		if (r)
			return wl_fail(w, r, "resize_data to %llu: %s", (unsigned long long)nr,
			               tmd_error(w->md));
		m_resize_data(m, nr);
		return 0;
	}
	if (w->meta->size + MiB > META_MAX_SIZE)
		return 0;
	r = tp_dev_resize(w->meta, w->meta->size + MiB);
	if (r)
		return wl_fail(w, r, "growing the metadata device: %s", strerror(-r));
	w->ops++;
	r = tmd_resize_metadata(w->md);
	if (r)
		return wl_fail(w, r, "resize_metadata: %s", tmd_error(w->md));
	m->meta_blocks = w->meta->size / 4096;
	return 0;
}

/* Reads in the open transaction must see its own changes. */
static int step_lookup(struct wl *w)
{
	struct model *m = &w->m;
	const struct mdev *d;

	if (!m->nr_devs)
		return 0;
	d = &m->dev[rng_below(&w->rng, m->nr_devs)];
	for (int j = 0; j < 8; j++) {
		unsigned idx = (unsigned)rng_below(&w->rng, NVB);
		struct thin_mapping tm;
		int r = tmd_lookup(w->md, d->id, vb_of(idx), &tm);

		if (!d->e[idx].db1) {
			if (r != -ENODATA)
				return wl_fail(
				        w, r ? r : WL_MISMATCH,
				        "lookup of unmapped dev %llu vblock %llu returned %d (%s)",
				        (unsigned long long)d->id, (unsigned long long)vb_of(idx),
				        r, tmd_error(w->md));
			continue;
		}
		if (r)
			return wl_fail(w, r, "lookup dev %llu vblock %llu: %s",
			               (unsigned long long)d->id, (unsigned long long)vb_of(idx),
			               tmd_error(w->md));
		if (tm.data_block != d->e[idx].db1 - 1 || tm.time != d->e[idx].time ||
		    tm.shared != (d->d.snapshotted_time > d->e[idx].time))
			return wl_fail(
			        w, 0,
			        "lookup dev %llu vblock %llu gave block %llu time %u shared %d, expected %llu time %u shared %d",
			        (unsigned long long)d->id, (unsigned long long)vb_of(idx),
			        (unsigned long long)tm.data_block, tm.time, tm.shared,
			        (unsigned long long)(d->e[idx].db1 - 1), d->e[idx].time,
			        d->d.snapshotted_time > d->e[idx].time);
	}
	return 0;
}

static int wl_step(struct wl *w)
{
	/* cumulative weights, in step-kind order */
	static const unsigned upto[NR_STEP_KINDS] = { 30, 42, 52, 58, 64, 71, 75, 80, 84, 87, 100 };
	static int (*const fn[NR_STEP_KINDS])(
	        struct wl *) = { step_insert,    step_overwrite, step_remove, step_remove_range,
		                 step_create,    step_snap,      step_delete, step_trans_id,
		                 step_meta_snap, step_resize,    step_lookup };
	unsigned x = (unsigned)rng_below(&w->rng, 100), k = 0;

	while (x >= upto[k])
		k++;
	w->nr_kind[k]++;
	return fn[k](w);
}

/* A step failed: fine after the power went (the rest is lost anyway),
 * otherwise a test failure naming the seed and the cut. */
static bool wl_stop(struct wl *w, int r, const char *where)
{
	if (power_lost(w))
		return true;
	if (r)
		ck_abort_msg("seed %#llx cut %llu, %s: %s (%d)", (unsigned long long)w->seed,
		             (unsigned long long)w->cut, where, w->why, r);
	return false;
}

/* The crash workload: format, STEPS steps in transactions of planned
 * lengths, a final commit. Returns early once the power is gone. */
static void wl_run(struct wl *w, unsigned steps)
{
	char where[64];

	if (wl_stop(w, wl_format(w), "format"))
		return;
	for (unsigned i = 0; i < steps; i++) {
		snprintf(where, sizeof(where), "step %u", i);
		if (wl_stop(w, wl_step(w), where))
			return;
		if (--w->tx_left == 0 && wl_stop(w, wl_end_tx(w), where))
			return;
	}
	if (w->abort_planned && wl_stop(w, wl_abort(w), "final abort"))
		return;
	wl_stop(w, wl_commit(w), "final commit");
}

/* ---- crash tests ------------------------------------------------------------------------------ */

struct crash_cfg {
	uint64_t seed;
	unsigned steps;
	const struct recording *rec;
	const char *tmpdir;
	const char *thin_check; /* NULL: not installed */
};

static void crash_cfg_init(struct crash_cfg *cfg, struct recording *rec, char *tmpl, size_t tlen,
                           char *tool, size_t toollen)
{
	const char *tmp = getenv("TMPDIR");

	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = env_u64("THINP_CRASH_SEED", DEFAULT_SEED);
	cfg->steps = (unsigned)env_u64("THINP_CRASH_STEPS", DEFAULT_STEPS);
	cfg->rec = rec;
	snprintf(tmpl, tlen, "%s/thinp-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
	cfg->tmpdir = tmpl;
	cfg->thin_check = find_thin_check(tool, toollen) ? tool : NULL;
	if (!cfg->thin_check)
		fprintf(stderr, "crash: thin_check not found; only the built-in checker runs\n");
	fprintf(stderr, "crash: seed %#llx, %u steps (replay: THINP_CRASH_SEED=%#llx)\n",
	        (unsigned long long)cfg->seed, cfg->steps, (unsigned long long)cfg->seed);
}

/* The run that every crash state is judged against: it notes where each
 * commit completes and what it holds (checked against the model). */
static uint64_t record_run(const struct crash_cfg *cfg, struct recording *rec, struct wlog *log)
{
	struct bm_stats st;
	uint64_t maps = 0, writes;
	struct wl w;
	char kinds[512];
	size_t n = 0;

	wl_setup(&w, cfg->seed, log == NULL, log);
	w.rec = rec;
	wl_run(&w, cfg->steps);
	writes = tp_fault_writes_seen(w.f);
	tmd_cache_stats(w.md, &st);
	for (size_t i = 0; i < w.m.nr_devs; i++)
		maps += w.m.dev[i].d.mapped_blocks;
	kinds[0] = 0;
	for (int k = 0; k < NR_STEP_KINDS; k++)
		n += (size_t)snprintf(kinds + n, n < sizeof(kinds) ? sizeof(kinds) - n : 0,
		                      " %s %llu", step_names[k], (unsigned long long)w.nr_kind[k]);
	fprintf(stderr,
	        "crash: %llu metadata ops in %zu commits + %llu aborts, %llu writes; steps:%s\n"
	        "crash: at the end %zu devices, %llu mappings, %llu metadata blocks used; cache %zu "
	        "blocks, since the last abort %llu evictions, %llu write-backs\n",
	        (unsigned long long)w.ops, rec->nr, (unsigned long long)w.nr_aborts,
	        (unsigned long long)writes, kinds, w.m.nr_devs, (unsigned long long)maps,
	        (unsigned long long)(tmd_nr_metadata_blocks(w.md) -
	                             tmd_nr_free_metadata_blocks(w.md)),
	        st.capacity, (unsigned long long)st.evictions, (unsigned long long)st.writebacks);
	wl_teardown(&w);
	return writes;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* After a crash: open the survivor read-write, add a device with a few
 * mappings, commit, and check again. */
static void check_recovery(struct tp_dev *disk, const char *what)
{
	struct tmd_open_args a = { .meta = disk,
		                   .cache_blocks = VERIFY_CACHE_BLOCKS,
		                   .read_only = false };
	struct thin_details t;
	struct tmd *md;
	char err[512];
	int r = tmd_open(&a, &md, err, sizeof(err));

	ck_assert_msg(r == 0, "%s: reopening read-write failed: %s", what, err);
	r = tmd_create_thin(md, RECOVERY_DEV);
	ck_assert_msg(r == 0, "%s: create_thin after recovery: %s", what, tmd_error(md));
	for (unsigned j = 0; j < 20; j++) {
		uint64_t b;

		r = tmd_alloc_data_block(md, &b);
		ck_assert_msg(r == 0, "%s: alloc after recovery: %s", what, tmd_error(md));
		r = tmd_insert(md, RECOVERY_DEV, j * 7, b);
		ck_assert_msg(r == 0, "%s: insert after recovery: %s", what, tmd_error(md));
	}
	r = tmd_commit(md);
	ck_assert_msg(r == 0, "%s: commit after recovery: %s", what, tmd_error(md));
	tmd_close_nocommit(md);
	run_tcheck(disk, what);
	a.read_only = true;
	r = tmd_open(&a, &md, err, sizeof(err));
	ck_assert_msg(r == 0, "%s: reopening after recovery failed: %s", what, err);
	r = tmd_get_details(md, RECOVERY_DEV, &t);
	ck_assert_msg(r == 0 && t.mapped_blocks == 20,
	              "%s: the device created after recovery has %llu mappings (r=%d)", what,
	              (unsigned long long)t.mapped_blocks, r);
	tmd_close_nocommit(md);
}

/* A private copy, for checks that write. */
static struct tp_dev *dup_dev(struct tp_dev *src)
{
	struct tp_dev *d;
	char *buf = xcalloc(1, (size_t)src->size);
	int r = tp_dev_open_mem(src->size, &d);

	ck_assert_msg(r == 0, "tp_dev_open_mem: %s", strerror(-r));
	r = tp_dev_pread(src, buf, (size_t)src->size, 0);
	if (!r)
		r = tp_dev_pwrite(d, buf, (size_t)src->size, 0);
	ck_assert_msg(r == 0, "copying the disk: %s", strerror(-r));
	free(buf);
	return d;
}

/* What a crashed DISK must hold: EXPECT (NULL: the format never completed,
 * so nothing may open). Every NTH state also gets the slower checks. When
 * DISK_IS_SCRATCH is false the recovery check runs on a copy. */
static void verify_disk(const struct crash_cfg *cfg, struct tp_dev *disk,
                        const struct commit_rec *expect, const char *what, size_t nth,
                        bool disk_is_scratch)
{
	struct tmd_open_args a = { .meta = disk,
		                   .cache_blocks = VERIFY_CACHE_BLOCKS,
		                   .read_only = true };
	struct digest got;
	struct tmd *md;
	char err[512] = "";
	int r = tmd_open(&a, &md, err, sizeof(err));

	if (!expect) {
		/* nothing to find, but no crash and a clean error either */
		if (!r)
			tmd_close_nocommit(md);
		ck_assert_msg(r < 0, "%s: opened metadata whose format never completed", what);
		ck_assert_msg(*err, "%s: tmd_open failed without a message", what);
		return;
	}
	ck_assert_msg(r == 0, "%s: the crashed metadata does not open: %s", what, err);
	r = digest_md(md, &got);
	ck_assert_msg(r == 0, "%s: reading the crashed metadata failed: %s", what, tmd_error(md));
	tmd_close_nocommit(md);
	ck_assert_msg(
	        got.h == expect->dg.h && !strcmp(got.sum, expect->dg.sum),
	        "%s: after the crash the pool is not the last durable commit (commit %zu, completed at write %llu)\n  disk:     %s\n  expected: %s",
	        what, (size_t)(expect - cfg->rec->c), (unsigned long long)expect->writes, got.sum,
	        expect->dg.sum);
	run_tcheck(disk, what);
	if (cfg->thin_check && nth % 50 == 0)
		run_thin_check(cfg->thin_check, cfg->tmpdir, disk, what);
	if (nth % 10 == 0) {
		struct tp_dev *scratch = disk_is_scratch ? disk : dup_dev(disk);

		check_recovery(scratch, what);
		if (scratch != disk)
			tp_dev_close(scratch);
	}
}

/* Rerun the workload with power cut after write K, then crash. */
static void check_cut(const struct crash_cfg *cfg, uint64_t k, size_t nth)
{
	const struct recording *rec = cfg->rec;
	const struct commit_rec *expect = NULL;
	struct wl w;
	char what[128];

	snprintf(what, sizeof(what), "seed %#llx cut %llu", (unsigned long long)cfg->seed,
	         (unsigned long long)k);
	wl_setup(&w, cfg->seed, true, NULL);
	w.cut = k;
	w.expect = rec;
	/* cut_after(0) means "no cut", so power lost before the first write is
	 * simply a workload that never ran. */
	if (k) {
		tp_fault_cut_after(w.f, k);
		wl_run(&w, cfg->steps);
	}
	tp_fault_crash(w.f);
	tmd_close_nocommit(w.md);
	w.md = NULL;
	for (size_t i = 0; i < rec->nr && rec->c[i].writes <= k; i++)
		expect = &rec->c[i];
	/* the wrapper keeps its inner device open after a crash: that is the disk */
	verify_disk(cfg, w.inner, expect, what, nth, true);
	wl_teardown(&w);
}

START_TEST(test_crash_cut_points)
{
	struct crash_cfg cfg;
	struct recording rec = { 0 };
	uint64_t want = env_u64("THINP_CRASH_POINTS", DEFAULT_POINTS);
	char tool[PATH_MAX], tmpl[PATH_MAX];
	uint64_t total_writes, *pts;
	size_t nr = 0, n_uniq = 0;
	double t0 = now_s(), t1;

	crash_cfg_init(&cfg, &rec, tmpl, sizeof(tmpl), tool, sizeof(tool));
	total_writes = record_run(&cfg, &rec, NULL);
	t1 = now_s();

	pts = xcalloc(want + 4 * rec.nr + 2, sizeof(*pts));
	if (total_writes <= want) {
		for (uint64_t k = 0; k <= total_writes; k++)
			pts[nr++] = k;
	} else {
		for (uint64_t i = 0; i < want; i++)
			pts[nr++] = i * total_writes / (want - 1);
		/* every boundary next to a commit point: the superblock write and
		 * the writes and flushes right before and after it */
		for (size_t i = 0; i < rec.nr; i++)
			for (uint64_t d = 0; d < 4; d++)
				if (rec.c[i].writes + d >= 2 &&
				    rec.c[i].writes + d - 2 <= total_writes)
					pts[nr++] = rec.c[i].writes + d - 2;
	}
	qsort(pts, nr, sizeof(*pts), cmp_u64);
	for (size_t i = 0; i < nr; i++)
		if (!n_uniq || pts[n_uniq - 1] != pts[i])
			pts[n_uniq++] = pts[i];

	for (size_t i = 0; i < n_uniq; i++)
		check_cut(&cfg, pts[i], i);

	fprintf(stderr,
	        "crash: cut points: %zu of %llu write boundaries checked (thin_check on %zu, "
	        "recovery on %zu); record %.1fs, total %.1fs\n",
	        n_uniq, (unsigned long long)total_writes + 1,
	        cfg.thin_check ? (n_uniq + 49) / 50 : 0, (n_uniq + 9) / 10, t1 - t0, now_s() - t0);
	ck_assert_msg(n_uniq >= (total_writes + 1 < want ? total_writes + 1 : want),
	              "only %zu cut points", n_uniq);
	free(pts);
	free(rec.c);
	rmdir(tmpl);
}
END_TEST

/* Apply log entry E to DISK; with UNDO, first save what it overwrites. */
static void apply_ent(struct tp_dev *disk, const struct wlog_ent *e, uint8_t **undo)
{
	int r;

	if (e->kind == LOG_FLUSH)
		return;
	if (undo) {
		*undo = xcalloc(1, (size_t)e->len);
		r = tp_dev_pread(disk, *undo, (size_t)e->len, e->off);
		ck_assert_msg(r == 0, "saving the disk: %s", strerror(-r));
	}
	r = e->kind == LOG_WRITE ? tp_dev_pwrite(disk, e->data, (size_t)e->len, e->off) :
	                           tp_dev_write_zeroes(disk, e->off, e->len);
	ck_assert_msg(r == 0, "replaying the log: %s", strerror(-r));
}

#define TORN_STATES_PER_EPOCH 10u

enum torn_mode {
	TORN_ALL_BUT_ONE,
	TORN_ONLY_ONE,
	TORN_RANDOM,
	TORN_ALL
};

static bool torn_keep(enum torn_mode mode, size_t j, size_t chosen, struct rng *rng)
{
	switch (mode) {
	case TORN_ALL_BUT_ONE:
		return j != chosen;
	case TORN_ONLY_ONE:
		return j == chosen;
	case TORN_RANDOM:
		return rng_below(rng, 2) == 0;
	case TORN_ALL:
		break;
	}
	return true;
}

/* Crash states a prefix cut cannot produce: everything up to some flush is
 * on the disk, plus a random subset of the writes issued since (any of
 * them, in any order, as a disk's volatile cache may write back). */
START_TEST(test_crash_torn_epochs)
{
	struct crash_cfg cfg;
	struct recording rec = { 0 };
	struct wlog log = { 0 };
	char tool[PATH_MAX], tmpl[PATH_MAX];
	struct tp_dev *disk;
	struct rng rng;
	uint64_t total_writes, widx = 0, states = 0, torn_commits = 0;
	size_t *wi, nr_w, *pick, ci = 0;
	uint8_t **undo;
	double t0 = now_s(), t1;
	int r;

	crash_cfg_init(&cfg, &rec, tmpl, sizeof(tmpl), tool, sizeof(tool));
	total_writes = record_run(&cfg, &rec, &log);
	t1 = now_s();
	rng.s = cfg.seed ^ 0x746f726eull;
	r = tp_dev_open_mem(log.max_size, &disk);
	ck_assert_msg(r == 0, "tp_dev_open_mem: %s", strerror(-r));
	wi = xcalloc(log.nr, sizeof(*wi));
	pick = xcalloc(log.nr, sizeof(*pick));
	undo = xcalloc(log.nr, sizeof(*undo));

	/* Walk the log one flush epoch at a time; DISK holds every epoch before
	 * the current one. */
	for (size_t e0 = 0; e0 < log.nr;) {
		size_t e1 = e0;
		uint64_t first = widx + 1; /* write number of the epoch's first write */

		nr_w = 0;
		while (e1 < log.nr && log.e[e1].kind != LOG_FLUSH)
			wi[nr_w++] = e1++;
		for (unsigned t = 0; nr_w && t < TORN_STATES_PER_EPOCH; t++) {
			/* writes issued: the first K of the epoch; persisted: a
			 * subset. The first state is the whole epoch (= the next
			 * flush completed), the one a prefix cut also produces. */
			size_t k = t == 0 ? nr_w : 1 + (size_t)rng_below(&rng, nr_w);
			enum torn_mode mode =
			        t == 0 ? TORN_ALL : (enum torn_mode)rng_below(&rng, TORN_ALL);
			size_t chosen = (size_t)rng_below(&rng, k), np = 0;
			const struct commit_rec *expect = NULL;
			bool torn = false;
			char what[200], how[64];

			for (size_t j = 0; j < k; j++)
				if (torn_keep(mode, j, chosen, &rng))
					pick[np++] = j;
			/* the last commit whose superblock write is on the disk */
			while (ci < rec.nr && rec.c[ci].writes < first)
				ci++;
			expect = ci ? &rec.c[ci - 1] : NULL;
			for (size_t j = 0; j < np; j++) {
				uint64_t wno = first + pick[j];

				for (size_t c = ci; c < rec.nr && rec.c[c].writes <= wno; c++)
					if (rec.c[c].writes == wno)
						expect = &rec.c[c];
			}
			for (size_t c = ci; c < rec.nr && rec.c[c].writes < first + k; c++)
				torn |= expect != &rec.c[c] && rec.c[c].writes >= first;
			torn_commits += torn;
			if (mode == TORN_ALL_BUT_ONE || mode == TORN_ONLY_ONE)
				snprintf(how, sizeof(how), "%s write %llu",
				         mode == TORN_ONLY_ONE ? "only" : "all but",
				         (unsigned long long)(first + chosen));
			else
				snprintf(how, sizeof(how), "%s",
				         mode == TORN_RANDOM ? "a random subset" : "all");
			snprintf(
			        what, sizeof(what),
			        "seed %#llx torn state: of writes %llu..%llu since the last flush, %s "
			        "(%zu writes) reached the disk",
			        (unsigned long long)cfg.seed, (unsigned long long)first,
			        (unsigned long long)(first + k - 1), how, np);
			for (size_t j = 0; j < np; j++)
				apply_ent(disk, &log.e[wi[pick[j]]], &undo[j]);
			verify_disk(&cfg, disk, expect, what, (size_t)states, false);
			states++;
			for (size_t j = np; j-- > 0;) {
				const struct wlog_ent *e = &log.e[wi[pick[j]]];

				r = tp_dev_pwrite(disk, undo[j], (size_t)e->len, e->off);
				ck_assert_msg(r == 0, "restoring the disk: %s", strerror(-r));
				free(undo[j]);
				undo[j] = NULL;
			}
		}
		/* the flush: the whole epoch is durable */
		for (size_t j = 0; j < nr_w; j++)
			apply_ent(disk, &log.e[wi[j]], NULL);
		widx += nr_w;
		e0 = e1 + 1;
	}
	ck_assert_msg(widx == total_writes, "the log holds %llu writes, the wrapper saw %llu",
	              (unsigned long long)widx, (unsigned long long)total_writes);
	fprintf(stderr,
	        "crash: %llu torn states checked (%llu with a commit's superblock write lost); "
	        "record %.1fs, total %.1fs\n",
	        (unsigned long long)states, (unsigned long long)torn_commits, t1 - t0,
	        now_s() - t0);
	tp_dev_close(disk);
	free(wi);
	free(pick);
	free(undo);
	wlog_free(&log);
	free(rec.c);
	rmdir(tmpl);
}
END_TEST

/* ---- torn sectors ----------------------------------------------------------------------------- */

/* The cut tests keep or lose whole writes. A disk promises no more than
 * that each 512-byte sector is written whole: a 4 KiB metadata block whose
 * write was under way when the power went can hold some new sectors and
 * some old ones. Below, the power goes the instant write K completes (a
 * flush right after it never runs) and every write since the last flush
 * lands sector by sector, each sector with probability 1/2. Blocks other
 * than the superblock are written only to blocks no durable superblock
 * references (and flushed before the superblock that will), so tearing
 * them must change nothing; the superblock keeps every field in its first
 * sector and zeros after, so a sector-torn superblock is the old one or
 * the new one, decided by its first sector. */

#define TORN_SECTOR_EVEN_POINTS 400u
#define SECTOR                  512u

struct sector_tear {
	struct rng rng;
	bool sb_cached, sb_landed; /* a superblock write was cached; its first sector landed */
	uint64_t pieces, landed;
};

static bool sector_land(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
                        uint64_t piece_off, uint64_t piece_len)
{
	struct sector_tear *t = ctx;
	bool land = rng_below(&t->rng, 2) == 0;

	(void)nth;
	(void)piece_len;
	if (write_off == 0 && write_len == TP_BLOCK_SIZE) {
		t->sb_cached = true;
		if (piece_off == 0)
			t->sb_landed = land;
	}
	t->pieces++;
	t->landed += land;
	return land;
}

/* Replay with the power cut as write K completes, tear the cache by
 * sectors, and verify. Returns whether a superblock write was cached. */
static bool check_torn_cut(const struct crash_cfg *cfg, uint64_t k, size_t nth,
                           struct tp_fault_tear_stats *sum)
{
	const struct recording *rec = cfg->rec;
	const struct commit_rec *expect = NULL;
	struct sector_tear t = { .rng.s = cfg->seed ^ (k * 0x9E3779B97F4A7C15ull) ^ 0x736563ull };
	struct tp_fault_tear how = { .piece = SECTOR, .land = sector_land, .ctx = &t };
	struct tp_fault_tear_stats st;
	struct wl w;
	char what[200];
	int r;

	wl_setup(&w, cfg->seed, true, NULL);
	w.cut = k;
	w.expect = rec;
	tp_fault_cut_skips_flush(w.f, 1);
	if (k) {
		tp_fault_cut_after(w.f, k);
		wl_run(&w, cfg->steps);
	}
	r = tp_fault_crash_torn(w.f, &how, &st);
	ck_assert_msg(r == 0, "tearing the cache: %s", strerror(-r));
	sum->cached += st.cached;
	sum->whole += st.whole;
	sum->partial += st.partial;
	tmd_close_nocommit(w.md);
	w.md = NULL;
	/* commits whose superblock write came before K were flushed; the
	 * one whose superblock write is K counts if its first sector landed
	 * (a superblock write no commit was recorded at is the library's own
	 * commit inside reserve_metadata_snap, of the state just recorded) */
	for (size_t i = 0; i < rec->nr && rec->c[i].writes <= k; i++)
		if (rec->c[i].writes < k || t.sb_landed)
			expect = &rec->c[i];
	snprintf(what, sizeof(what),
	         "seed %#llx torn cut %llu: %llu cached writes, %llu of their %llu sectors landed%s",
	         (unsigned long long)cfg->seed, (unsigned long long)k,
	         (unsigned long long)st.cached, (unsigned long long)t.landed,
	         (unsigned long long)t.pieces,
	         t.sb_cached ? (t.sb_landed ? " (superblock: first sector new)" :
	                                      " (superblock: first sector old)") :
	                       "");
	verify_disk(cfg, w.inner, expect, what, nth, true);
	wl_teardown(&w);
	return t.sb_cached;
}

START_TEST(test_crash_torn_sectors)
{
	struct crash_cfg cfg;
	struct recording rec = { 0 };
	uint64_t even = env_u64("THINP_CRASH_TORN_POINTS", TORN_SECTOR_EVEN_POINTS);
	char tool[PATH_MAX], tmpl[PATH_MAX];
	struct tp_fault_tear_stats sum = { 0 };
	uint64_t total_writes, *pts;
	size_t nr = 0, n_uniq = 0, with_sb = 0;
	double t0 = now_s();

	{
		/* THINP_TEST_SCALE is a positive float, as for the other unit tests */
		const char *sc = getenv("THINP_TEST_SCALE");
		double scale = sc && *sc ? strtod(sc, NULL) : 1.0;

		if (scale > 0)
			even = (uint64_t)((double)even * scale);
	}
	crash_cfg_init(&cfg, &rec, tmpl, sizeof(tmpl), tool, sizeof(tool));
	total_writes = record_run(&cfg, &rec, NULL);
	pts = xcalloc(even + 2 * rec.nr + 2, sizeof(*pts));
	for (uint64_t i = 0; i <= even; i++)
		pts[nr++] = 1 + i * (total_writes - 1) / (even ? even : 1);
	/* every commit's superblock write, and the write before it (the
	 * last node or bitmap write of the commit, before its flush) */
	for (size_t i = 0; i < rec.nr; i++) {
		pts[nr++] = rec.c[i].writes;
		if (rec.c[i].writes > 1)
			pts[nr++] = rec.c[i].writes - 1;
	}
	qsort(pts, nr, sizeof(*pts), cmp_u64);
	for (size_t i = 0; i < nr; i++)
		if (!n_uniq || pts[n_uniq - 1] != pts[i])
			pts[n_uniq++] = pts[i];
	for (size_t i = 0; i < n_uniq; i++)
		with_sb += check_torn_cut(&cfg, pts[i], i, &sum);
	fprintf(stderr,
	        "crash: torn sectors: %zu cut points of %llu writes (%zu with a superblock write "
	        "cached), %llu cached writes torn: %llu landed whole, %llu in part; total %.1fs\n",
	        n_uniq, (unsigned long long)total_writes, with_sb, (unsigned long long)sum.cached,
	        (unsigned long long)sum.whole, (unsigned long long)sum.partial, now_s() - t0);
	ck_assert_msg(with_sb >= rec.nr, "only %zu cut points had a superblock write cached, "
	                                 "%zu commits were recorded", with_sb, rec.nr);
	ck_assert_msg(sum.partial > 0, "no write was torn");
	free(pts);
	free(rec.c);
	rmdir(tmpl);
}
END_TEST

/* A short history for the directed superblock tests: commit 1 holds thin 1
 * with 40 mappings; commit 2 adds thin 2 and 40 more mappings. Without
 * HOW it runs in full and returns both commits' digests and superblock
 * images and the number of commit 2's superblock write in *SB_WRITE. With
 * HOW the power goes as write *SB_WRITE completes (commit 2's superblock,
 * its flush never runs) and the cache is torn as HOW says. Returns a copy
 * of the surviving disk. */
struct sb_hist {
	struct digest dg[2];
	uint8_t sb[2][TP_BLOCK_SIZE];
	uint64_t sb_write;
};

static struct tp_dev *sb_history(const struct tp_fault_tear *how, struct sb_hist *h)
{
	struct tmd_open_args a = { .cache_blocks = CACHE_BLOCKS };
	struct tp_dev *inner, *meta, *disk;
	struct tp_fault *f;
	struct tmd *md;
	char err[512];
	int r = tp_dev_open_mem(META_SIZE, &inner);

	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(tp_fault_wrap(inner, &meta, &f), 0);
	tp_fault_set_volatile(f, 1);
	if (how) {
		tp_fault_cut_skips_flush(f, 1);
		tp_fault_cut_after(f, h->sb_write);
	}
	a.meta = meta;
	r = tmd_format(&a, DATA_BLOCK_SECTORS, NR_DATA_BLOCKS, &md, err, sizeof(err));
	ck_assert_msg(r == 0, "format: %s", err);
	for (unsigned pass = 0; pass < 2; pass++) {
		ck_assert_int_eq(tmd_create_thin(md, 1 + pass), 0);
		for (unsigned j = 0; j < 40; j++) {
			uint64_t b;

			ck_assert_int_eq(tmd_alloc_data_block(md, &b), 0);
			ck_assert_int_eq(tmd_insert(md, 1 + pass, j * 3, b), 0);
		}
		/* with HOW, commit 2's flush is silently lost, as power loss is */
		ck_assert_int_eq(tmd_commit(md), 0);
		if (!how) {
			struct tmd_open_args ra = { .meta = inner,
				                    .cache_blocks = VERIFY_CACHE_BLOCKS,
				                    .read_only = true };
			struct tmd *rd;

			ck_assert_int_eq(tmd_open(&ra, &rd, err, sizeof(err)), 0);
			ck_assert_int_eq(digest_md(rd, &h->dg[pass]), 0);
			tmd_close_nocommit(rd);
			ck_assert_int_eq(tp_dev_pread(inner, h->sb[pass], TP_BLOCK_SIZE, 0), 0);
			h->sb_write = tp_fault_writes_seen(f);
		}
	}
	if (how) {
		/* the commit flushed everything before its superblock write */
		ck_assert_msg(tp_fault_cached(f) == 1,
		              "%zu writes cached at commit 2's superblock write, expected 1",
		              tp_fault_cached(f));
		ck_assert_int_eq(tp_fault_crash_torn(f, how, NULL), 0);
	}
	tmd_close_nocommit(md);
	disk = dup_dev(inner);
	tp_dev_close(meta);
	return disk;
}

struct mask_tear {
	uint64_t piece;
	uint32_t mask; /* bit i: piece i of the superblock write lands (i < 32) */
};

static bool mask_land(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
                      uint64_t piece_off, uint64_t piece_len)
{
	const struct mask_tear *m = ctx;

	(void)nth;
	(void)write_len;
	(void)piece_len;
	ck_assert_msg(write_off == 0, "the cached write is at %llu, not the superblock",
	              (unsigned long long)write_off);
	uint64_t idx = piece_off / m->piece;

	return idx < 32 && ((m->mask >> idx) & 1); /* pieces past the mask stay old */
}

/* All 256 ways a superblock write can be torn at sector granularity: each
 * must open as the old commit or the new one (the new one exactly when
 * the first sector landed) and check clean. */
START_TEST(test_torn_superblock_sectors)
{
	struct sb_hist h;
	unsigned news = 0;

	tp_dev_close(sb_history(NULL, &h));
	for (uint32_t mask = 0; mask < 256; mask++) {
		struct mask_tear m = { SECTOR, mask };
		struct tp_fault_tear how = { .piece = SECTOR, .land = mask_land, .ctx = &m };
		struct tp_dev *disk = sb_history(&how, &h);
		const struct digest *want = &h.dg[mask & 1];
		struct tmd_open_args a = { .meta = disk,
			                   .cache_blocks = VERIFY_CACHE_BLOCKS,
			                   .read_only = true };
		struct digest got;
		struct tmd *md;
		char err[512], what[96];
		int r = tmd_open(&a, &md, err, sizeof(err));

		snprintf(what, sizeof(what), "superblock write torn, sectors landed: mask 0x%02x", mask);
		ck_assert_msg(r == 0, "%s: does not open: %s", what, err);
		ck_assert_int_eq(digest_md(md, &got), 0);
		tmd_close_nocommit(md);
		ck_assert_msg(got.h == want->h && !strcmp(got.sum, want->sum),
		              "%s: holds %s, expected commit %u (%s)", what, got.sum, 1 + (mask & 1),
		              want->sum);
		run_tcheck(disk, what);
		news += mask & 1;
		tp_dev_close(disk);
	}
	fprintf(stderr, "crash: torn superblock: 256 sector subsets, %u opened as the new commit, "
	                "%u as the old\n", news, 256 - news);
}
END_TEST

static void tc_collect(void *ctx, const char *msg)
{
	char *buf = ctx;
	size_t n = strlen(buf);

	if (n + strlen(msg) + 2 < 1024)
		snprintf(buf + n, 1024 - n, "%s\n", msg);
}

/* Tearing inside a sector (beyond what a disk promises, and what dm-thin
 * relies on): a superblock that is neither the old nor the new one fails
 * its checksum, and the metadata is refused with a message that says so,
 * by tmd_open and by the checker. Seeded masks of 64-byte pieces. */
START_TEST(test_torn_superblock_within_sector)
{
	uint64_t seed = env_u64("THINP_SEED", 0x737562736563ull);
	struct rng rng = { seed };
	struct sb_hist h;
	unsigned mixed = 0, same = 0;

	fprintf(stderr, "crash: torn superblock within a sector: seed %#llx (THINP_SEED)\n",
	        (unsigned long long)seed);
	tp_dev_close(sb_history(NULL, &h));
	for (unsigned i = 0; i < 64; i++) {
		/* pieces 0..7 are the first sector; the rest is zeros in both */
		struct mask_tear m = { 64, (uint32_t)(1 + rng_below(&rng, 254)) };
		struct tp_fault_tear how = { .piece = 64, .land = mask_land, .ctx = &m };
		struct tp_dev *disk = sb_history(&how, &h);
		struct tmd_open_args a = { .meta = disk,
			                   .cache_blocks = VERIFY_CACHE_BLOCKS,
			                   .read_only = true };
		uint8_t blk[TP_BLOCK_SIZE];
		char err[512] = "", report[1024] = "", what[96];
		struct tmd *md;
		unsigned nerr = 0;
		int r;

		snprintf(what, sizeof(what), "seed %#llx: superblock torn by 64-byte mask 0x%02x",
		         (unsigned long long)seed, m.mask);
		ck_assert_int_eq(tp_dev_pread(disk, blk, sizeof(blk), 0), 0);
		if (!memcmp(blk, h.sb[0], sizeof(blk)) || !memcmp(blk, h.sb[1], sizeof(blk))) {
			/* only pieces that did not change landed or stayed */
			same++;
			run_tcheck(disk, what);
			tp_dev_close(disk);
			continue;
		}
		mixed++;
		r = tmd_open(&a, &md, err, sizeof(err));
		if (!r)
			tmd_close_nocommit(md);
		ck_assert_msg(r < 0, "%s: a mixed superblock opened", what);
		ck_assert_msg(strstr(err, "superblock") && strstr(err, "checksum"),
		              "%s: the refusal does not say the superblock checksum failed: %s", what,
		              err);
		ck_assert_msg(strstr(err, "restore"), "%s: the refusal names no way out: %s", what,
		              err);
		if (mixed == 1)
			fprintf(stderr, "crash: %s: refused: %s\n", what, err);
		r = tcheck_run(disk, NULL, tc_collect, report, &nerr);
		ck_assert_int_eq(r, 0);
		ck_assert_msg(nerr > 0 && strstr(report, "superblock: bad checksum"),
		              "%s: the checker says: %s", what, report);
		tp_dev_close(disk);
	}
	fprintf(stderr, "crash: torn superblock within a sector: %u mixed (refused), %u equal to "
	                "the old or new one\n", mixed, same);
	ck_assert_msg(mixed > 0, "no mask mixed the superblock");
}
END_TEST

/* ---- fault tests ------------------------------------------------------------------------------ */

#define DEFAULT_FAULT_SEED 0x6661756c74ull
/* THINP_FAULT_SEED replays the fault tests with another pool history. */
#define FAULT_SEED         env_u64("THINP_FAULT_SEED", DEFAULT_FAULT_SEED)
#define FAULT_PREFIX_STEPS 60u
#define FAULT_TX_STEPS     100u
#define FAULT_MAX_POINTS   400u

/* A pool with some history, committed, on a non-volatile wrapper, ready for
 * a transaction that must not commit by itself. */
static void fault_world(struct wl *w, uint64_t seed)
{
	wl_setup(w, seed, false, NULL);
	if (wl_stop(w, wl_format(w), "format"))
		return;
	for (unsigned i = 0; i < FAULT_PREFIX_STEPS; i++) {
		wl_stop(w, wl_step(w), "prefix step");
		if (--w->tx_left == 0)
			wl_stop(w, wl_end_tx(w), "prefix end of transaction");
	}
	if (w->abort_planned)
		wl_stop(w, wl_abort(w), "prefix abort");
	wl_stop(w, wl_commit(w), "prefix commit");
	if (w->abort_planned)
		m_free(&w->saved);
	w->abort_planned = false;
	w->allow_reserve = false;
	w->plan_aborts = false;
}

/* The transaction under test; returns the first error. */
static int fault_tx(struct wl *w)
{
	for (unsigned i = 0; i < FAULT_TX_STEPS; i++) {
		int r = wl_step(w);

		if (r)
			return r;
	}
	return 0;
}

static void expect_live(struct wl *w, const char *what)
{
	struct digest got, want;
	int r = digest_md(w->md, &got);

	ck_assert_msg(r == 0, "%s: reading the pool failed: %s", what, tmd_error(w->md));
	digest_model(&w->m, &want);
	ck_assert_msg(got.h == want.h && !strcmp(got.sum, want.sum),
	              "%s: the pool differs from the model\n  pool:  %s\n  model: %s", what,
	              got.sum, want.sum);
}

/* Close without committing, reopen from the device, compare with the model. */
static void expect_reopened(struct wl *w, const char *what)
{
	struct tmd_open_args a = { .meta = w->meta,
		                   .cache_blocks = CACHE_BLOCKS,
		                   .read_only = false };
	char err[512];
	int r;

	tmd_close_nocommit(w->md);
	w->md = NULL;
	r = tmd_open(&a, &w->md, err, sizeof(err));
	ck_assert_msg(r == 0, "%s: reopening failed: %s", what, err);
	expect_live(w, what);
	run_tcheck(w->meta, what);
}

/* After a reported failure: a message; after a failed write, changes are
 * refused until abort (the transaction may have lost a block), a failed
 * read need not poison it; abort brings back the committed state. */
static void expect_failed_then_abort(struct wl *w, const struct model *committed, const char *what,
                                     bool must_refuse)
{
	uint64_t b;
	int r;

	ck_assert_msg(*tmd_error(w->md), "%s: failed without a message (%s)", what, w->why);
	if (must_refuse) {
		r = tmd_create_thin(w->md, RECOVERY_DEV);
		ck_assert_msg(r < 0, "%s: create_thin accepted after a failure", what);
		r = tmd_alloc_data_block(w->md, &b);
		ck_assert_msg(r < 0, "%s: alloc_data_block accepted after a failure", what);
		r = tmd_set_transaction_id(w->md, w->m.trans_id, w->m.trans_id + 1);
		ck_assert_msg(r < 0, "%s: set_transaction_id accepted after a failure", what);
		r = tmd_commit(w->md);
		ck_assert_msg(r < 0, "%s: commit accepted after a failure", what);
	}
	r = tmd_abort(w->md);
	ck_assert_msg(r == 0, "%s: abort failed: %s", what, tmd_error(w->md));
	m_free(&w->m);
	m_copy(&w->m, committed);
	expect_live(w, what);
	run_tcheck(w->meta, what);
}

/* Spread at most FAULT_MAX_POINTS fault positions over 1..N, always
 * including every position in [must_from, N]. */
static bool fault_point(uint64_t n, uint64_t total, uint64_t must_from)
{
	uint64_t step = total / FAULT_MAX_POINTS + 1;

	return n >= must_from || n % step == 0 || n == 1;
}

START_TEST(test_write_fault_in_transaction)
{
	uint64_t before, mid, end, tried = 0, in_commit = 0, reported = 0;
	struct rng tx_rng;
	struct model committed;
	struct wl w;
	char what[160];

	/* dry run: how many writes the transaction and its commit make */
	fault_world(&w, FAULT_SEED);
	before = tp_fault_writes_seen(w.f);
	wl_stop(&w, fault_tx(&w), "dry transaction");
	mid = tp_fault_writes_seen(w.f);
	wl_stop(&w, wl_commit(&w), "dry commit");
	end = tp_fault_writes_seen(w.f);
	wl_teardown(&w);
	ck_assert_msg(end > mid, "the commit wrote nothing");

	for (uint64_t n = 1; n <= end - before; n++) {
		bool in_ops;
		int r;

		if (!fault_point(n, end - before, mid - before + 1))
			continue;
		tried++;
		snprintf(what, sizeof(what), "seed %#llx, write %llu of %llu failed",
		         (unsigned long long)FAULT_SEED, (unsigned long long)n,
		         (unsigned long long)(end - before));
		fault_world(&w, FAULT_SEED);
		m_copy(&committed, &w.m);
		tx_rng = w.rng;
		tp_fault_fail_write(w.f, n);
		r = fault_tx(&w);
		in_ops = r != 0;
		if (!r) {
			r = tmd_commit(w.md);
			if (!r)
				m_tx_reset(&w.m);
		}
		ck_assert_msg(r != WL_MISMATCH, "%s: %s", what, w.why);
		if (n > mid - before) {
			in_commit++;
			ck_assert_msg(!in_ops, "%s: an op reported a write made after it", what);
			/* A failed write-back of an evicted block is retried by the
			 * commit's flush, so the commit may still succeed (checked
			 * below against the disk); the superblock write has no
			 * second chance. */
			ck_assert_msg(n < end - before || r < 0,
			              "%s: the superblock write failed but tmd_commit returned 0",
			              what);
		}
		if (r)
			reported++;
		if (r) {
			/* a clean error, then the committed state back and usable */
			expect_failed_then_abort(&w, &committed, what, true);
			w.rng = tx_rng;
			wl_stop(&w, fault_tx(&w), "transaction after abort");
			wl_stop(&w, wl_commit(&w), "commit after abort");
		}
		/* else a write-back failed during the ops and was retried by
		 * the commit: legal only if nothing was lost */
		expect_live(&w, what);
		expect_reopened(&w, what);
		m_free(&committed);
		wl_teardown(&w);
	}
	fprintf(stderr,
	        "write faults: %llu positions tried (%llu in the commit) of %llu writes, %llu reported "
	        "(the rest were write-backs retried by the commit)\n",
	        (unsigned long long)tried, (unsigned long long)in_commit,
	        (unsigned long long)(end - before), (unsigned long long)reported);
}
END_TEST

START_TEST(test_write_fault_in_format)
{
	struct tmd_open_args a;
	struct tp_dev *inner, *meta;
	struct tp_fault *f;
	struct tmd *md = NULL;
	uint64_t writes;
	char err[512];
	int r;

	ck_assert_int_eq(tp_dev_open_mem(META_SIZE, &inner), 0);
	ck_assert_int_eq(tp_fault_wrap(inner, &meta, &f), 0);
	a = (struct tmd_open_args){ .meta = meta,
		                    .cache_blocks = CACHE_BLOCKS,
		                    .read_only = false };
	ck_assert_int_eq(tmd_format(&a, DATA_BLOCK_SECTORS, NR_DATA_BLOCKS, &md, err, sizeof(err)),
	                 0);
	writes = tp_fault_writes_seen(f);
	tmd_close_nocommit(md);
	tp_dev_close(meta);

	for (uint64_t n = 1; n <= writes; n++) {
		ck_assert_int_eq(tp_dev_open_mem(META_SIZE, &inner), 0);
		ck_assert_int_eq(tp_fault_wrap(inner, &meta, &f), 0);
		a.meta = meta;
		tp_fault_fail_write(f, n);
		md = NULL;
		r = tmd_format(&a, DATA_BLOCK_SECTORS, NR_DATA_BLOCKS, &md, err, sizeof(err));
		ck_assert_msg(r < 0, "format succeeded although write %llu of %llu failed",
		              (unsigned long long)n, (unsigned long long)writes);
		ck_assert_msg(md == NULL || r == 0, "format failed but returned a handle");
		ck_assert_msg(*err, "format failed without a message");
		/* a retry on the same device must work */
		r = tmd_format(&a, DATA_BLOCK_SECTORS, NR_DATA_BLOCKS, &md, err, sizeof(err));
		ck_assert_msg(r == 0, "format retry after write %llu failed: %s",
		              (unsigned long long)n, err);
		tmd_close_nocommit(md);
		run_tcheck(meta, "format retry");
		tp_dev_close(meta);
	}
}
END_TEST

/* Fresh cache, so the operations below have to read. */
static void reopen_small_cache(struct wl *w)
{
	struct tmd_open_args a = { .meta = w->meta, .cache_blocks = 16, .read_only = false };
	char err[512];
	int r;

	tmd_close_nocommit(w->md);
	w->md = NULL;
	r = tmd_open(&a, &w->md, err, sizeof(err));
	ck_assert_msg(r == 0, "reopen: %s", err);
}

/* Reads everything, then a transaction and its commit. */
static int read_sequence(struct wl *w)
{
	struct digest d;
	int r;

	for (int i = 0; i < 4; i++) {
		r = step_lookup(w);
		if (r)
			return r;
	}
	r = digest_md(w->md, &d);
	if (r)
		return wl_fail(w, r, "walking the pool: %s", tmd_error(w->md));
	r = fault_tx(w);
	if (r)
		return r;
	r = tmd_commit(w->md);
	if (r)
		return wl_fail(w, r, "commit: %s", tmd_error(w->md));
	m_tx_reset(&w->m);
	return 0;
}

START_TEST(test_read_fault)
{
	uint64_t reads, tried = 0, reported = 0;
	struct model committed;
	struct rng start_rng;
	struct wl w;
	char what[160];

	fault_world(&w, FAULT_SEED + 1);
	reopen_small_cache(&w);
	reads = tp_dev_ctr(w.meta).reads;
	wl_stop(&w, read_sequence(&w), "dry read sequence");
	reads = tp_dev_ctr(w.meta).reads - reads;
	wl_teardown(&w);
	ck_assert_msg(reads > 0, "the sequence read nothing");

	for (uint64_t n = 1; n <= reads; n++) {
		int r;

		if (!fault_point(n, reads, reads + 1))
			continue;
		tried++;
		snprintf(what, sizeof(what), "seed %#llx, read %llu of %llu failed",
		         (unsigned long long)(FAULT_SEED + 1), (unsigned long long)n,
		         (unsigned long long)reads);
		fault_world(&w, FAULT_SEED + 1);
		reopen_small_cache(&w);
		m_copy(&committed, &w.m);
		start_rng = w.rng;
		tp_fault_fail_read(w.f, n);
		r = read_sequence(&w);
		/* a read error may be reported, never turned into a wrong answer */
		ck_assert_msg(r != WL_MISMATCH, "%s: %s", what, w.why);
		if (r) {
			reported++;
			expect_failed_then_abort(&w, &committed, what, false);
			w.rng = start_rng;
			wl_stop(&w, read_sequence(&w), "sequence after abort");
		}
		expect_live(&w, what);
		expect_reopened(&w, what);
		m_free(&committed);
		wl_teardown(&w);
	}
	fprintf(stderr, "read faults: %llu positions tried of %llu reads, %llu reported\n",
	        (unsigned long long)tried, (unsigned long long)reads, (unsigned long long)reported);
}
END_TEST

/* Creating a device that exists must never succeed, even when the read
 * that would find it fails: the library must not take "could not read" for
 * "does not exist" and overwrite the device. */
START_TEST(test_read_fault_create_existing)
{
	uint64_t reads, id, origin;
	struct wl w;
	char what[160];

	fault_world(&w, FAULT_SEED + 2);
	while (w.m.nr_devs < 2) {
		wl_stop(&w, step_create(&w), "create");
		wl_stop(&w, wl_commit(&w), "commit");
	}
	id = w.m.dev[0].id;
	origin = w.m.dev[1].id;
	reopen_small_cache(&w);
	reads = tp_dev_ctr(w.meta).reads;
	ck_assert_int_eq(tmd_create_thin(w.md, id), -EEXIST);
	ck_assert_int_eq(tmd_create_snap(w.md, id, origin), -EEXIST);
	reads = tp_dev_ctr(w.meta).reads - reads;
	wl_teardown(&w);

	for (uint64_t n = 1; n <= reads; n++) {
		for (int snap = 0; snap < 2; snap++) {
			int r;

			snprintf(
			        what, sizeof(what),
			        "seed %#llx, read %llu failed during create_%s of existing device %llu",
			        (unsigned long long)(FAULT_SEED + 2), (unsigned long long)n,
			        snap ? "snap" : "thin", (unsigned long long)id);
			fault_world(&w, FAULT_SEED + 2);
			while (w.m.nr_devs < 2) {
				wl_stop(&w, step_create(&w), "create");
				wl_stop(&w, wl_commit(&w), "commit");
			}
			reopen_small_cache(&w);
			tp_fault_fail_read(w.f, n);
			r = snap ? tmd_create_snap(w.md, id, origin) : tmd_create_thin(w.md, id);
			ck_assert_msg(r < 0, "%s: it returned %d", what, r);
			if (r != -EEXIST) {
				ck_assert_int_eq(tmd_abort(w.md), 0);
			} else {
				ck_assert_int_eq(tmd_commit(w.md), 0);
			}
			expect_live(&w, what);
			expect_reopened(&w, what);
			wl_teardown(&w);
		}
	}
}
END_TEST

START_TEST(test_read_fault_in_open)
{
	struct tmd_open_args a;
	uint64_t reads, opened = 0;
	struct wl w;
	char what[160], err[512];

	fault_world(&w, FAULT_SEED + 3);
	tmd_close_nocommit(w.md);
	w.md = NULL;
	a = (struct tmd_open_args){ .meta = w.meta,
		                    .cache_blocks = CACHE_BLOCKS,
		                    .read_only = false };
	reads = tp_dev_ctr(w.meta).reads;
	ck_assert_int_eq(tmd_open(&a, &w.md, err, sizeof(err)), 0);
	expect_live(&w, "open");
	reads = tp_dev_ctr(w.meta).reads - reads;
	tmd_close_nocommit(w.md);
	w.md = NULL;

	for (uint64_t n = 1; n <= reads; n++) {
		int r;

		snprintf(what, sizeof(what), "seed %#llx, read %llu of open+walk failed",
		         (unsigned long long)(FAULT_SEED + 3), (unsigned long long)n);
		tp_fault_fail_read(w.f, n);
		*err = 0;
		r = tmd_open(&a, &w.md, err, sizeof(err));
		if (r) {
			ck_assert_msg(r < 0 && *err, "%s: tmd_open returned %d, message '%s'", what,
			              r, err);
			w.md = NULL;
			continue;
		}
		/* the failed read came after the open: the walk must report
		 * it, never lie */
		{
			struct digest got, want;

			r = digest_md(w.md, &got);
			if (!r) {
				digest_model(&w.m, &want);
				ck_assert_msg(got.h == want.h,
				              "%s: wrong state\n  got:  %s\n  want: %s", what,
				              got.sum, want.sum);
			} else {
				ck_assert_msg(r < 0 && *tmd_error(w.md),
				              "%s: the walk failed (%d) without a message", what,
				              r);
			}
		}
		opened++;
		tmd_close_nocommit(w.md);
		w.md = NULL;
	}
	fprintf(stderr, "open read faults: %llu reads in open+walk, open succeeded %llu times\n",
	        (unsigned long long)reads, (unsigned long long)opened);
	wl_teardown(&w);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("crash");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_crash_cut_points);
	tcase_add_test(tc, test_crash_torn_epochs);
	tcase_add_test(tc, test_crash_torn_sectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("superblock");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_torn_superblock_sectors);
	tcase_add_test(tc, test_torn_superblock_within_sector);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_write_fault_in_transaction);
	tcase_add_test(tc, test_write_fault_in_format);
	tcase_add_test(tc, test_read_fault);
	tcase_add_test(tc, test_read_fault_create_existing);
	tcase_add_test(tc, test_read_fault_in_open);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crash_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
