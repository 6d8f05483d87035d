/* Model test of the thin pool's data path (impl/thin/pool.c).
 *
 * Seeded random operations run against a real pool (data and metadata on
 * sparse files in a scratch directory) and against an in-memory model that
 * holds every thin device's bytes:
 *
 *  - writes of every size (1 byte .. 2 pool blocks) and alignment, crossing
 *    block boundaries, some with FUA;
 *  - reads compared byte for byte;
 *  - discards (whole blocks become unmapped and read as zeros, partial-block
 *    parts are no-ops), which also pass down to the data file;
 *  - thin creation, snapshots of snapshots up to 16 deep (a snapshot copies
 *    the model; some snapshots are bigger than their origin), deletes;
 *  - data resizes, flushes, commits, metadata snapshots, close + reopen (with
 *    the zeroing option sometimes toggled, as a table reload may) followed by
 *    a full comparison of every device.
 *
 * Zeroing: a partial first write to an unmapped block zeroes the rest of the
 * block, unless skip_block_zeroing is set: then the rest is stale data. The
 * model keeps an "undefined" bit per byte for that; undefined bytes are not
 * compared but learned on first read (stale data must still be stable from
 * then on: a block's content may only change through its owner).
 *
 * Each phase (a few thousand ops) ends with a commit, the strict checker
 * (tcheck_run, 0 errors), the real thin_check (exit 0), a full comparison of
 * every device and of every device's mapped-block count.
 *
 * THINP_SEED overrides the seed, THINP_TEST_SCALE scales the op counts. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/dev.h"
#include "model_util.h"
#include "thin/check.h"
#include "thinp.h"

#define DEFAULT_SEED 0x706f6f6c6d6f64ull /* "poolmod" */
#define OPS_PER_RUN 50000u
#define PHASE_OPS 5000u
#define MAX_DEVS 40u
#define MAX_DEPTH 16u
#define MODEL_BUDGET (112ull << 20) /* bytes of modelled thin devices */
#define META_BYTES (32ull << 20)
#define LOG_LINES 24u
#define KiB 1024ull
#define MiB (1024ull * KiB)

struct cfg {
	const char *name;
	uint32_t block_sectors;
	bool skip_zero;
	uint64_t seed_mix;
};

struct mdev {
	uint64_t id, size, nblocks;
	unsigned depth;
	uint8_t *data;
	uint64_t *undef; /* 1 bit per byte: content not defined (stale data) */
	uint8_t *mapped; /* per virtual block */
	struct thinp_thin *t;
};

enum op_kind {
	OP_WRITE,
	OP_READ,
	OP_DISCARD,
	OP_FLUSH,
	OP_COMMIT,
	OP_CREATE,
	OP_SNAP,
	OP_DELETE,
	OP_RESIZE,
	OP_REOPEN,
	OP_METASNAP,
	OP_STATUS,
	OP_BEYOND,
	NR_OPS
};

static const char *const op_names[NR_OPS] = {"write",  "read",   "discard", "flush",    "commit",
					     "create", "snap",   "delete",  "resize",   "reopen",
					     "metasnap", "status", "beyond"};

struct world {
	const struct cfg *cfg;
	uint64_t seed;
	struct mu_rng rng;
	char dir[PATH_MAX], data_path[PATH_MAX + 16], meta_path[PATH_MAX + 16];
	char thin_check[PATH_MAX];
	bool have_thin_check;

	struct thinp_pool *p;
	struct thinp_pool_opts o;
	uint64_t bs;
	uint64_t data_bytes;

	struct mdev *devs[MAX_DEVS];
	unsigned ndev;
	uint64_t next_id;
	uint64_t model_bytes;
	uint64_t churn; /* data blocks possibly freed since the last commit (not reusable yet) */
	bool held;

	uint64_t op;
	char log[LOG_LINES][200];
	unsigned nlog;

	uint8_t *wbuf, *rbuf;
	size_t buflen;

	uint64_t counts[NR_OPS];
	uint64_t classes[THINP_NR_CLASSES];
	uint64_t bytes_learned, checks, thin_checks, reopens;
	unsigned max_depth;
};

/* ---- failure reporting ---- */

static void logop(struct world *w, const char *fmt, ...)
{
	va_list ap;
	char *line = w->log[w->nlog++ % LOG_LINES];
	int n = snprintf(line, sizeof(w->log[0]), "#%" PRIu64 " ", w->op);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(w->log[0]) - (size_t)n, fmt, ap);
	va_end(ap);
}

static void wfail(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wfail(struct world *w, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n*** pool model failure [%s] seed=%" PRIu64 " op=%" PRIu64 ": %s\n",
		w->cfg->name, w->seed, w->op, msg);
	fprintf(stderr, "last operations:\n");
	unsigned first = w->nlog > LOG_LINES ? w->nlog - LOG_LINES : 0;
	for (unsigned i = first; i < w->nlog; i++)
		fprintf(stderr, "  %s\n", w->log[i % LOG_LINES]);
	fprintf(stderr, "pool files left in %s; rerun with THINP_SEED=%" PRIu64 "\n", w->dir,
		w->seed);
	fflush(stderr);
	ck_abort_msg("[%s] seed=%" PRIu64 " op=%" PRIu64 ": %s (rerun with THINP_SEED=%" PRIu64
		     ")",
		     w->cfg->name, w->seed, w->op, msg, w->seed);
}

#define OK(w, call)                                                                                \
	do {                                                                                       \
		int r_ = (call);                                                                   \
		if (r_)                                                                            \
			wfail((w), "%s = %d (%s): %s", #call, r_, strerror(-r_),                    \
			     (w)->p ? thinp_pool_error((w)->p) : "");                              \
	} while (0)

/* ---- the model ---- */

static bool undef_get(const struct mdev *d, uint64_t pos)
{
	return (d->undef[pos / 64] >> (pos % 64)) & 1;
}

static void undef_set(struct mdev *d, uint64_t off, uint64_t len, bool v)
{
	uint64_t pos = off, end = off + len;
	while (pos < end) {
		if (pos % 64 == 0 && end - pos >= 64) {
			d->undef[pos / 64] = v ? ~0ull : 0;
			pos += 64;
			continue;
		}
		if (v)
			d->undef[pos / 64] |= 1ull << (pos % 64);
		else
			d->undef[pos / 64] &= ~(1ull << (pos % 64));
		pos++;
	}
}

static uint64_t mdev_bytes(uint64_t size, uint64_t bs)
{
	return size + (size + 63) / 64 * 8 + (size + bs - 1) / bs;
}

static struct mdev *mdev_new(struct world *w, uint64_t id, uint64_t size)
{
	struct mdev *d = calloc(1, sizeof(*d));
	ck_assert(d);
	d->id = id;
	d->size = size;
	d->nblocks = (size + w->bs - 1) / w->bs;
	d->data = calloc(1, size);
	d->undef = calloc((size + 63) / 64, 8);
	d->mapped = calloc(d->nblocks, 1);
	ck_assert(d->data && d->undef && d->mapped);
	w->model_bytes += mdev_bytes(size, w->bs);
	return d;
}

static void mdev_free(struct world *w, struct mdev *d)
{
	w->model_bytes -= mdev_bytes(d->size, w->bs);
	if (d->t)
		thinp_thin_close(d->t);
	free(d->data);
	free(d->undef);
	free(d->mapped);
	free(d);
}

static void thin_open(struct world *w, struct mdev *d)
{
	OK(w, thinp_thin_open(w->p, d->id, d->size, &d->t));
}

/* ---- pool setup ---- */

/* $TMPDIR if set; else tmpfs when there is one: every flush and commit
 * fsyncs the files, which on a disk-backed /tmp makes the run ~5x slower
 * without testing anything more of the pool. */
static int scratch_dir(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	if ((!tmp || !*tmp) && access("/dev/shm", W_OK | X_OK) == 0) {
		int n = snprintf(buf, len, "/dev/shm/thinp-poolmodel-XXXXXX");
		if (n > 0 && (size_t)n < len && mkdtemp(buf))
			return 0;
	}
	return mu_mkdtemp(buf, len, "poolmodel");
}

static void pool_open(struct world *w, bool format)
{
	struct tp_dev *data, *meta;
	char err[512] = "";
	OK(w, tp_dev_open_file(w->data_path, format ? TP_DEV_CREATE : 0, w->data_bytes, &data));
	OK(w, tp_dev_open_file(w->meta_path, format ? TP_DEV_CREATE : 0, META_BYTES, &meta));
	int r = format ? thinp_pool_format(data, meta, &w->o, &w->p, err, sizeof(err))
		       : thinp_pool_open(data, meta, &w->o, &w->p, err, sizeof(err));
	if (r) {
		w->p = NULL;
		wfail(w, "%s: %d (%s): %s", format ? "thinp_pool_format" : "thinp_pool_open", r,
		     strerror(-r), err);
	}
	if (thinp_pool_block_bytes(w->p) != w->bs)
		wfail(w, "pool block size %u, expected %" PRIu64, thinp_pool_block_bytes(w->p), w->bs);
}

static void pool_close(struct world *w)
{
	for (unsigned i = 0; i < w->ndev; i++) {
		thinp_thin_close(w->devs[i]->t);
		w->devs[i]->t = NULL;
	}
	int r = thinp_pool_close(w->p);
	w->p = NULL;
	if (r)
		wfail(w, "thinp_pool_close = %d (%s)", r, strerror(-r));
	w->churn = 0;
}

/* ---- comparing ---- */

static void compare(struct world *w, struct mdev *d, uint64_t off, size_t len, const uint8_t *got,
		    const char *what)
{
	uint64_t pos = off, end = off + len;
	while (pos < end) {
		if (pos % 64 == 0 && end - pos >= 64 && !d->undef[pos / 64]) {
			if (!memcmp(d->data + pos, got + (pos - off), 64)) {
				pos += 64;
				continue;
			}
		}
		uint8_t g = got[pos - off];
		if (undef_get(d, pos)) {
			/* stale data: learn it, it must not change from now on */
			d->data[pos] = g;
			d->undef[pos / 64] &= ~(1ull << (pos % 64));
			w->bytes_learned++;
		} else if (d->data[pos] != g) {
			uint64_t vb = pos / w->bs;
			uint64_t n = 0;
			while (pos + n < end && n < 1000000 && !undef_get(d, pos + n) &&
			       d->data[pos + n] != got[pos + n - off])
				n++;
			wfail(w,
			     "%s: thin %" PRIu64 " (size %" PRIu64 ", depth %u) byte %" PRIu64
			     " (vblock %" PRIu64 " +%" PRIu64 ", %s in the model): read 0x%02x, "
			     "expected 0x%02x; %" PRIu64 " differing bytes from there (IO %" PRIu64
			     "+%zu)",
			     what, d->id, d->size, d->depth, pos, vb, pos % w->bs,
			     d->mapped[vb] ? "mapped" : "unmapped", g, d->data[pos], n, off, len);
		}
		pos++;
	}
}

static void check_range(struct world *w, struct mdev *d, uint64_t off, size_t len, const char *what)
{
	struct thinp_io_result res;
	int r = thinp_read(d->t, w->rbuf, len, off, &res);
	if (r)
		wfail(w, "%s: read thin %" PRIu64 " %" PRIu64 "+%zu = %d (%s): %s", what, d->id, off,
		     len, r, strerror(-r), thinp_pool_error(w->p));
	compare(w, d, off, len, w->rbuf, what);
}

static void check_dev(struct world *w, struct mdev *d, const char *what)
{
	for (uint64_t off = 0; off < d->size; off += w->buflen) {
		size_t n = d->size - off < w->buflen ? (size_t)(d->size - off) : w->buflen;
		check_range(w, d, off, n, what);
	}
	struct thinp_thin_status st;
	OK(w, thinp_thin_status(w->p, d->id, &st));
	uint64_t nmapped = 0, hi = 0;
	bool any = false;
	for (uint64_t b = 0; b < d->nblocks; b++)
		if (d->mapped[b]) {
			nmapped++;
			hi = b;
			any = true;
		}
	uint64_t bsec = w->bs / 512;
	if (st.mapped_sectors != nmapped * bsec || st.has_mapped != any ||
	    (any && st.highest_mapped_sector != (hi + 1) * bsec - 1))
		wfail(w,
		     "%s: thin %" PRIu64 " status: %" PRIu64 " mapped sectors, highest %s%" PRIu64
		     "; the model has %" PRIu64 " blocks mapped, highest %" PRIu64,
		     what, d->id, st.mapped_sectors, st.has_mapped ? "" : "(none) ",
		     st.highest_mapped_sector, nmapped, hi);
}

static void check_all(struct world *w, const char *what)
{
	for (unsigned i = 0; i < w->ndev; i++)
		check_dev(w, w->devs[i], what);
	w->checks++;
}

struct report_buf {
	char text[2048];
	unsigned n;
};

static void report_cb(void *ctx, const char *msg)
{
	struct report_buf *rb = ctx;
	size_t used = strlen(rb->text);
	if (rb->n++ < 6 && used < sizeof(rb->text) - 2)
		snprintf(rb->text + used, sizeof(rb->text) - used, "%s%s", used ? " | " : "", msg);
}

/* Commit, then check the metadata file with both checkers. */
static void check_metadata(struct world *w)
{
	OK(w, thinp_pool_commit(w->p));
	w->churn = 0;
	struct tp_dev *m;
	OK(w, tp_dev_open_file(w->meta_path, TP_DEV_RDONLY, 0, &m));
	struct report_buf rb = {.text = ""};
	unsigned nerr = 0;
	int r = tcheck_run(m, NULL, report_cb, &rb, &nerr);
	tp_dev_close(m);
	if (r || nerr)
		wfail(w, "tcheck_run = %d, %u errors: %s", r, nerr, rb.text);
	if (w->have_thin_check) {
		char cmd[2 * PATH_MAX + 32], out[4096];
		snprintf(cmd, sizeof(cmd), "'%s' '%s'", w->thin_check, w->meta_path);
		int st = mu_run(cmd, out, sizeof(out));
		if (st != 0)
			wfail(w, "thin_check exited %d:\n%s", st, out);
		w->thin_checks++;
	}
}

/* ---- operations ---- */

static struct mdev *pick_dev(struct world *w)
{
	return w->ndev ? w->devs[mu_below(&w->rng, w->ndev)] : NULL;
}

static uint64_t new_size(struct world *w)
{
	/* 4..12 MiB, 4 KiB granular: often not a multiple of the block size */
	uint64_t s = 4 * MiB + mu_below(&w->rng, 8 * MiB / 4096 + 1) * 4096;
	if (mu_pct(&w->rng, 30))
		s = s / w->bs * w->bs;
	return s;
}

static uint64_t pick_len(struct world *w, uint64_t max)
{
	uint64_t bs = w->bs, len;
	switch (mu_below(&w->rng, 8)) {
	case 0: len = 1 + mu_below(&w->rng, 16); break;
	case 1: len = 1 + mu_below(&w->rng, 4095); break;
	case 2: len = 4096 * (1 + mu_below(&w->rng, 2 * bs / 4096)); break;
	case 3: len = bs; break;
	case 4: len = bs + 1 + mu_below(&w->rng, bs - 1); break;
	case 5: len = 2 * bs; break;
	case 6: len = 512 * (1 + mu_below(&w->rng, 2 * bs / 512)); break;
	default: len = 1 + mu_below(&w->rng, 2 * bs); break;
	}
	return len > max ? max : len;
}

static uint64_t pick_off(struct world *w, uint64_t size, uint64_t len)
{
	uint64_t bs = w->bs, room = size - len, off;
	switch (mu_below(&w->rng, 6)) {
	case 0: off = mu_below(&w->rng, room + 1); break;
	case 1: off = mu_below(&w->rng, room + 1) / 512 * 512; break;
	case 2: off = mu_below(&w->rng, room + 1) / 4096 * 4096; break;
	case 3: off = mu_below(&w->rng, room + 1) / bs * bs; break;
	case 4: /* straddle a block boundary */
		off = (1 + mu_below(&w->rng, size / bs)) * bs;
		off -= len > 1 ? 1 + mu_below(&w->rng, len - 1) : 0;
		break;
	default: /* near the end of the device */
		off = room - mu_below(&w->rng, room < bs ? room + 1 : bs);
		break;
	}
	return off > room ? room : off;
}

/* Keep room for a write touching up to 3 blocks, counting blocks freed in the
 * open transaction as unusable (they are reused only after a commit). */
static void ensure_space(struct world *w, uint64_t need)
{
	struct thinp_pool_status st;
	OK(w, thinp_pool_status(w->p, true, &st));
	uint64_t free_blocks = st.total_data_blocks - st.used_data_blocks;
	if (free_blocks >= need + w->churn + 4)
		return;
	uint64_t grow = (need + w->churn + 4 - free_blocks) + 16 + mu_below(&w->rng, 64);
	uint64_t nb = w->data_bytes + grow * w->bs + mu_below(&w->rng, 2) * 4096;
	logop(w, "resize data %" PRIu64 " -> %" PRIu64 " (space)", w->data_bytes, nb);
	OK(w, thinp_pool_resize_data(w->p, nb));
	w->data_bytes = nb;
}

static void do_write(struct world *w, struct mdev *d)
{
	uint64_t len = pick_len(w, d->size);
	uint64_t off = pick_off(w, d->size, len);
	unsigned flags = mu_pct(&w->rng, 3) ? THINP_IO_FUA : 0;
	uint64_t bs = w->bs;
	uint64_t b0 = off / bs, b1 = (off + len - 1) / bs;
	ensure_space(w, b1 - b0 + 1);
	mu_fill(&w->rng, w->wbuf, (size_t)len);
	logop(w, "write thin %" PRIu64 " %" PRIu64 "+%" PRIu64 "%s", d->id, off, len,
	      flags ? " FUA" : "");
	struct thinp_io_result res;
	int r = thinp_write(d->t, w->wbuf, (size_t)len, off, flags, &res);
	if (r)
		wfail(w, "write thin %" PRIu64 " %" PRIu64 "+%" PRIu64 " = %d (%s): %s", d->id, off,
		     len, r, strerror(-r), thinp_pool_error(w->p));
	w->classes[res.cls]++;
	if (res.nr_blocks != b1 - b0 + 1)
		wfail(w, "write touched %u blocks, expected %" PRIu64, res.nr_blocks, b1 - b0 + 1);
	/* the model */
	for (uint64_t b = b0; b <= b1; b++) {
		uint64_t bstart = b * bs, bend = bstart + bs < d->size ? bstart + bs : d->size;
		uint64_t ws = off > bstart ? off : bstart;
		uint64_t we = off + len < bstart + bs ? off + len : bstart + bs;
		bool whole = ws == bstart && we == bstart + bs;
		if (!d->mapped[b]) {
			d->mapped[b] = 1;
			if (!whole && w->o.skip_block_zeroing)
				undef_set(d, bstart, bend - bstart, true);
		} else {
			w->churn++; /* maybe a CoW of a block no longer shared */
		}
	}
	memcpy(d->data + off, w->wbuf, (size_t)len);
	undef_set(d, off, len, false);
	if (mu_pct(&w->rng, 20))
		check_range(w, d, off, (size_t)len, "read back");
}

static void do_read(struct world *w, struct mdev *d)
{
	uint64_t len = pick_len(w, d->size);
	if (mu_pct(&w->rng, 10))
		len = d->size < w->buflen ? d->size : w->buflen;
	uint64_t off = pick_off(w, d->size, len);
	logop(w, "read thin %" PRIu64 " %" PRIu64 "+%" PRIu64, d->id, off, len);
	check_range(w, d, off, (size_t)len, "read");
}

static void do_discard(struct world *w, struct mdev *d)
{
	uint64_t bs = w->bs, len, off;
	switch (mu_below(&w->rng, 4)) {
	case 0: /* block aligned */
		len = bs * (1 + mu_below(&w->rng, 4));
		if (len > d->size / bs * bs)
			len = bs;
		off = mu_below(&w->rng, d->size / bs - len / bs + 1) * bs;
		break;
	case 1: /* sub-block: a no-op */
		len = 1 + mu_below(&w->rng, bs - 1);
		off = pick_off(w, d->size, len);
		break;
	case 2: /* big, unaligned */
		len = 1 + mu_below(&w->rng, d->size / 2);
		off = pick_off(w, d->size, len);
		break;
	default:
		len = pick_len(w, d->size);
		off = pick_off(w, d->size, len);
		break;
	}
	logop(w, "discard thin %" PRIu64 " %" PRIu64 "+%" PRIu64, d->id, off, len);
	struct thinp_io_result res;
	int r = thinp_discard(d->t, off, len, &res);
	if (r)
		wfail(w, "discard thin %" PRIu64 " %" PRIu64 "+%" PRIu64 " = %d (%s): %s", d->id, off,
		     len, r, strerror(-r), thinp_pool_error(w->p));
	for (uint64_t b = (off + bs - 1) / bs; b < (off + len) / bs; b++) {
		if (!d->mapped[b])
			continue;
		d->mapped[b] = 0;
		w->churn++;
		memset(d->data + b * bs, 0, (size_t)bs);
		undef_set(d, b * bs, bs, false);
	}
	if (mu_pct(&w->rng, 30)) {
		uint64_t a = off >= bs ? off - bs : 0;
		uint64_t e = off + len + bs <= d->size ? off + len + bs : d->size;
		for (uint64_t o = a; o < e; o += w->buflen)
			check_range(w, d, o, (size_t)(e - o < w->buflen ? e - o : w->buflen),
				    "read after discard");
	}
}

static void add_dev(struct world *w, struct mdev *d)
{
	ck_assert(w->ndev < MAX_DEVS);
	w->devs[w->ndev++] = d;
}

static uint64_t alloc_id(struct world *w)
{
	uint64_t id = w->next_id;
	w->next_id += 1 + (mu_pct(&w->rng, 20) ? mu_below(&w->rng, 100000) : 0);
	if (w->next_id > (1ull << 24) - 1)
		w->next_id = 1; /* ids of deleted devices may be reused */
	return id;
}

static bool id_in_use(struct world *w, uint64_t id)
{
	for (unsigned i = 0; i < w->ndev; i++)
		if (w->devs[i]->id == id)
			return true;
	return false;
}

static void do_create(struct world *w)
{
	uint64_t size = new_size(w);
	if (w->ndev >= MAX_DEVS || w->model_bytes + mdev_bytes(size, w->bs) > MODEL_BUDGET)
		return;
	uint64_t id;
	do
		id = alloc_id(w);
	while (id_in_use(w, id));
	logop(w, "create thin %" PRIu64 " size %" PRIu64, id, size);
	OK(w, thinp_create_thin(w->p, id));
	w->churn = 0;
	struct mdev *d = mdev_new(w, id, size);
	thin_open(w, d);
	add_dev(w, d);
	if (mu_pct(&w->rng, 50))
		check_dev(w, d, "new thin");
}

static void do_snap(struct world *w)
{
	if (!w->ndev)
		return;
	/* favour the deepest snapshot so chains get long */
	struct mdev *o = pick_dev(w);
	if (mu_pct(&w->rng, 50))
		for (unsigned i = 0; i < w->ndev; i++)
			if (w->devs[i]->depth > o->depth && w->devs[i]->depth < MAX_DEPTH)
				o = w->devs[i];
	if (o->depth >= MAX_DEPTH)
		return;
	uint64_t size = o->size;
	if (mu_pct(&w->rng, 15))
		size += 4096 * (1 + mu_below(&w->rng, 2 * MiB / 4096));
	if (w->ndev >= MAX_DEVS || w->model_bytes + mdev_bytes(size, w->bs) > MODEL_BUDGET)
		return;
	uint64_t id;
	do
		id = alloc_id(w);
	while (id_in_use(w, id));
	logop(w, "snap %" PRIu64 " of %" PRIu64 " (depth %u) size %" PRIu64, id, o->id,
	      o->depth + 1, size);
	OK(w, thinp_create_snap(w->p, id, o->id));
	w->churn = 0;
	struct mdev *d = mdev_new(w, id, size);
	d->depth = o->depth + 1;
	if (d->depth > w->max_depth)
		w->max_depth = d->depth;
	memcpy(d->data, o->data, (size_t)o->size);
	memcpy(d->undef, o->undef, (size_t)((o->size + 63) / 64 * 8));
	memcpy(d->mapped, o->mapped, (size_t)o->nblocks);
	if (size > o->size) {
		/* bits of the origin's last block past its end: never written
		 * through the origin, so stale data or zeros */
		uint64_t lb = o->nblocks - 1;
		if (o->size % w->bs && o->mapped[lb]) {
			uint64_t e = (lb + 1) * w->bs < size ? (lb + 1) * w->bs : size;
			undef_set(d, o->size, e - o->size, true);
		}
	}
	thin_open(w, d);
	add_dev(w, d);
	if (mu_pct(&w->rng, 25))
		check_dev(w, d, "new snapshot");
}

static void do_delete(struct world *w)
{
	if (w->ndev <= 1)
		return;
	unsigned i = (unsigned)mu_below(&w->rng, w->ndev);
	struct mdev *d = w->devs[i];
	logop(w, "delete thin %" PRIu64, d->id);
	thinp_thin_close(d->t);
	d->t = NULL;
	OK(w, thinp_delete_thin(w->p, d->id));
	w->churn = 0;
	uint64_t id = d->id;
	w->devs[i] = w->devs[--w->ndev];
	mdev_free(w, d);
	/* the device is gone */
	struct thinp_thin *t = NULL;
	int r = thinp_thin_open(w->p, id, 0, &t);
	if (r != -ENODEV)
		wfail(w, "opening deleted thin %" PRIu64 " gave %d, expected -ENODEV", id, r);
}

static void do_resize(struct world *w)
{
	uint64_t nb = w->data_bytes + w->bs * (1 + mu_below(&w->rng, 8)) + mu_below(&w->rng, 3) * 512;
	logop(w, "resize data %" PRIu64 " -> %" PRIu64, w->data_bytes, nb);
	OK(w, thinp_pool_resize_data(w->p, nb));
	w->data_bytes = nb;
	struct thinp_pool_status st;
	OK(w, thinp_pool_status(w->p, true, &st));
	if (st.total_data_blocks != nb / w->bs)
		wfail(w, "after resize: %" PRIu64 " data blocks, expected %" PRIu64,
		     st.total_data_blocks, nb / w->bs);
}

static void do_reopen(struct world *w, const char *why)
{
	logop(w, "reopen (%s)", why);
	pool_close(w);
	if (mu_pct(&w->rng, 20))
		w->o.skip_block_zeroing = !w->o.skip_block_zeroing;
	else
		w->o.skip_block_zeroing = w->cfg->skip_zero;
	uint32_t bsec = w->o.block_sectors;
	if (mu_pct(&w->rng, 30))
		w->o.block_sectors = 0; /* take it from the metadata */
	pool_open(w, false);
	w->o.block_sectors = bsec;
	for (unsigned i = 0; i < w->ndev; i++)
		thin_open(w, w->devs[i]);
	check_all(w, "after reopen");
	w->reopens++;
}

static void do_metasnap(struct world *w)
{
	logop(w, "%s metadata snapshot", w->held ? "release" : "reserve");
	if (w->held)
		OK(w, thinp_release_metadata_snap(w->p));
	else
		OK(w, thinp_reserve_metadata_snap(w->p));
	w->held = !w->held;
	w->churn = 0;
	struct thinp_pool_status st;
	OK(w, thinp_pool_status(w->p, true, &st));
	if ((st.held_root != 0) != w->held)
		wfail(w, "held_root %" PRIu64 " but the model %s one", st.held_root,
		     w->held ? "holds" : "does not hold");
}

static void do_status(struct world *w)
{
	struct mdev *d = pick_dev(w);
	logop(w, "status thin %" PRIu64, d->id);
	struct thinp_pool_status st;
	OK(w, thinp_pool_status(w->p, mu_pct(&w->rng, 50), &st));
	if (st.mode != THINP_MODE_WRITE || st.needs_check)
		wfail(w, "pool mode %d needs_check %d", st.mode, st.needs_check);
	if (st.used_data_blocks > st.total_data_blocks)
		wfail(w, "used %" PRIu64 " > total %" PRIu64 " data blocks", st.used_data_blocks,
		     st.total_data_blocks);
	struct thinp_thin_status ts;
	OK(w, thinp_thin_status(w->p, d->id, &ts));
	uint64_t n = 0;
	for (uint64_t b = 0; b < d->nblocks; b++)
		n += d->mapped[b];
	if (ts.mapped_sectors != n * (w->bs / 512))
		wfail(w, "thin %" PRIu64 ": %" PRIu64 " mapped sectors, the model has %" PRIu64
			" blocks",
		     d->id, ts.mapped_sectors, n);
}

static void do_beyond(struct world *w, struct mdev *d)
{
	logop(w, "IO beyond the end of thin %" PRIu64, d->id);
	uint8_t b[2] = {1, 2};
	if (thinp_write(d->t, b, 2, d->size - 1, 0, NULL) != -EINVAL)
		wfail(w, "a write crossing the end of the thin was not refused");
	if (thinp_read(d->t, b, 2, d->size - 1, NULL) != -EINVAL)
		wfail(w, "a read crossing the end of the thin was not refused");
	if (thinp_discard(d->t, d->size, 1, NULL) != -EINVAL)
		wfail(w, "a discard past the end of the thin was not refused");
}

static enum op_kind pick_op(struct world *w)
{
	static const struct {
		enum op_kind k;
		unsigned weight; /* per 10000 */
	} mix[] = {
		{OP_WRITE, 4600}, {OP_READ, 3000},   {OP_DISCARD, 700}, {OP_FLUSH, 500},
		{OP_COMMIT, 300}, {OP_CREATE, 150},  {OP_SNAP, 300},    {OP_DELETE, 200},
		{OP_RESIZE, 25},  {OP_REOPEN, 20},   {OP_METASNAP, 40}, {OP_STATUS, 100},
		{OP_BEYOND, 30},
	};
	unsigned total = 0;
	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++)
		total += mix[i].weight;
	unsigned x = (unsigned)mu_below(&w->rng, total);
	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		if (x < mix[i].weight)
			return mix[i].k;
		x -= mix[i].weight;
	}
	return OP_READ;
}

static void run(const struct cfg *cfg)
{
	struct world *w = calloc(1, sizeof(*w));
	ck_assert(w);
	w->cfg = cfg;
	w->seed = mu_seed(DEFAULT_SEED) ^ cfg->seed_mix;
	mu_rng_init(&w->rng, w->seed);
	w->bs = (uint64_t)cfg->block_sectors * 512;
	w->buflen = (size_t)(4 * w->bs > MiB ? 4 * w->bs : MiB);
	w->wbuf = malloc(w->buflen);
	w->rbuf = malloc(w->buflen);
	ck_assert(w->wbuf && w->rbuf);
	w->next_id = 1;
	int r = scratch_dir(w->dir, sizeof(w->dir));
	ck_assert_msg(!r, "mkdtemp: %s", strerror(-r));
	snprintf(w->data_path, sizeof(w->data_path), "%s/data", w->dir);
	snprintf(w->meta_path, sizeof(w->meta_path), "%s/meta", w->dir);
	w->have_thin_check = mu_find_prog("thin_check", w->thin_check, sizeof(w->thin_check));
	if (!w->have_thin_check)
		fprintf(stderr, "[%s] thin_check not found: only tcheck_run checks the metadata\n",
			cfg->name);

	w->o.block_sectors = cfg->block_sectors;
	w->o.skip_block_zeroing = cfg->skip_zero;
	w->o.no_commit_timer = true;
	w->o.error_if_no_space = true; /* a model bug must not hang on queued IO */
	w->data_bytes = 256 * w->bs;
	pool_open(w, true);
	do_create(w);
	do_create(w);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t nops = mu_scaled(OPS_PER_RUN, 2000);
	uint64_t phase = mu_scaled(PHASE_OPS, 500);
	for (w->op = 1; w->op <= nops; w->op++) {
		if (!w->ndev)
			do_create(w);
		enum op_kind k = pick_op(w);
		struct mdev *d = pick_dev(w);
		w->counts[k]++;
		switch (k) {
		case OP_WRITE: do_write(w, d); break;
		case OP_READ: do_read(w, d); break;
		case OP_DISCARD: do_discard(w, d); break;
		case OP_FLUSH:
			logop(w, "flush thin %" PRIu64, d->id);
			OK(w, thinp_flush(d->t, NULL));
			break;
		case OP_COMMIT:
			logop(w, "commit");
			OK(w, thinp_pool_commit(w->p));
			w->churn = 0;
			break;
		case OP_CREATE: do_create(w); break;
		case OP_SNAP: do_snap(w); break;
		case OP_DELETE: do_delete(w); break;
		case OP_RESIZE: do_resize(w); break;
		case OP_REOPEN: do_reopen(w, "random"); break;
		case OP_METASNAP: do_metasnap(w); break;
		case OP_STATUS: do_status(w); break;
		case OP_BEYOND: do_beyond(w, d); break;
		default: break;
		}
		if (w->op % phase == 0) {
			logop(w, "phase end: commit + checks");
			check_metadata(w);
			check_all(w, "phase end");
			if ((w->op / phase) % 3 == 0)
				do_reopen(w, "phase end");
		}
	}
	check_metadata(w);
	do_reopen(w, "final");
	check_metadata(w);

	unsigned maxdepth = 0;
	for (unsigned i = 0; i < w->ndev; i++)
		if (w->devs[i]->depth > maxdepth)
			maxdepth = w->devs[i]->depth;
	struct thinp_pool_status st;
	OK(w, thinp_pool_status(w->p, true, &st));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("[%s] seed=%" PRIu64 ": %" PRIu64 " ops in %.1fs (%s):", cfg->name, w->seed, nops,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, w->dir);
	for (int k = 0; k < NR_OPS; k++)
		printf(" %s=%" PRIu64, op_names[k], w->counts[k]);
	printf("\n[%s] write classes:", cfg->name);
	for (int c = 0; c < THINP_NR_CLASSES; c++)
		if (w->classes[c])
			printf(" %s=%" PRIu64, thinp_class_name((enum thinp_class)c), w->classes[c]);
	printf("\n[%s] %u devices (deepest snapshot now %u, ever %u), %" PRIu64 "/%" PRIu64
	       " data blocks used, %" PRIu64 " stale bytes learned, %" PRIu64
	       " full checks, %" PRIu64 " thin_check runs, %" PRIu64 " reopens\n",
	       cfg->name, w->ndev, maxdepth, w->max_depth, st.used_data_blocks, st.total_data_blocks,
	       w->bytes_learned, w->checks, w->thin_checks, w->reopens);
	fflush(stdout);

	pool_close(w);
	for (unsigned i = 0; i < w->ndev; i++)
		mdev_free(w, w->devs[i]);
	mu_rmtree(w->dir);
	free(w->wbuf);
	free(w->rbuf);
	free(w);
}

static const struct cfg cfgs[] = {
	{"64k-zero", 128, false, 0},
	{"64k-skipzero", 128, true, 0x1111},
	{"256k-zero", 512, false, 0x2222},
	{"256k-skipzero", 512, true, 0x3333},
};

START_TEST(test_model) { run(&cfgs[_i]); }
END_TEST

int main(void)
{
	Suite *s = suite_create("pool_model");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 3600);
	tcase_add_loop_test(tc, test_model, 0, (int)(sizeof(cfgs) / sizeof(cfgs[0])));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
