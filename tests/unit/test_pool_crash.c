/* Power loss at every kind of write boundary during pool provisioning and
 * copy-on-write workloads (impl/thin/pool.c over the whole metadata stack).
 *
 * The data and metadata devices are in-memory devices behind the
 * fault-injecting wrapper (io/dev.h) in volatile mode: writes sit in a
 * write cache until the device is flushed, and a crash throws the cache
 * away. Above each wrapper sits a small "power" gate (below) shared by both
 * devices: the wrapper's cut_after(K) drops the metadata's (or the data's)
 * K+1st write, and from that instant the gate fails every IO on BOTH devices
 * — the power went for the whole machine, not for one disk.
 *
 * A seeded workload is recorded once (create thin, writes that provision
 * with and without zeroing, partial and whole blocks, snapshots, CoW writes,
 * overwrites, discards, FUA writes, flushes, commits, deletes) and run once
 * without faults to count the write boundaries of both devices and where the
 * flushes and commits fall. Then for each chosen cut point K on the metadata
 * device and, separately, on the data device, the workload is replayed with
 * the cut armed, both devices crash, and the pool is reopened from copies of
 * what the disks hold. It must open in write mode, the strict checker
 * (tcheck_run) must find 0 errors (nothing leaked or double referenced), the
 * real thin_check must pass (every 25th point), and every thin device must
 * read back, per 4 KiB unit:
 *  - exactly what it held at the last completed flush/commit that covered
 *    it, if the unit was not touched after that point;
 *  - otherwise one of the states the unit went through since then (old or
 *    new, never a mixture within one write).
 * Bytes a partial provision without zeroing left stale are not compared.
 * Devices whose create/snapshot/delete message was cut may or may not exist;
 * all others must (or must not) exist. Finally the recovered pool must take a
 * write and a commit and still check clean.
 *
 * The torn variant (test_crash_torn) cuts the power the instant write K
 * completes (a flush right after it does not run) and then tears both
 * volatile caches (dev_fault.h, tp_fault_crash_torn): of the writes not
 * yet flushed, each metadata write lands in 512-byte sectors, each sector
 * independently, and each data write lands whole or not at all, both
 * seeded and independently per device. Units then read back, per byte, a
 * value one of the unit's states since its last flush holds there (writes
 * since then land in any subset); units untouched since their flush must
 * still be exact, and so must everything else above.
 *
 * A directed case (test_cut_commit_with_overwrites) holds a commit inside its
 * IO while overwrites and reads of flushed blocks run beside it, as the pool
 * allows, then cuts the power after each of the commit's metadata writes
 * (hold_case below).
 *
 * THINP_SEED overrides the seed, THINP_TEST_SCALE scales the workload's
 * op count (so the cut points next to its commits) and the evenly spread cut
 * points. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/dev.h"
#include "support/dev_fault.h"
#include "support/dev_hold.h"
#include "model_util.h"
#include "thin/check.h"
#include "thinp.h"

#define DEFAULT_SEED 0x63726173685eull
#define KiB 1024ull
#define MiB (1024ull * KiB)
#define BLOCK_SECTORS 128u
#define BS (BLOCK_SECTORS * 512ull)
#define DEV_SIZE (1 * MiB)
#define NBLK (DEV_SIZE / BS)
#define UNIT 4096u
#define NUNITS (DEV_SIZE / UNIT)
#define DATA_BYTES (8 * MiB)
#define META_BYTES (2 * MiB)
#define MAX_LIVE 6u
#define MAX_DEVS 512u /* > ops per workload: ids are never reused */
#define EVEN_POINTS 160u /* per device per config, before scaling */
#define NEAR 2u          /* boundaries either side of each flush/commit */
#define THIN_CHECK_EVERY 25u

/* ---- the workload ---- */

enum op_kind {
	W_CREATE,
	W_SNAP,
	W_DELETE,
	W_WRITE,
	W_DISCARD,
	W_FLUSH,
	W_COMMIT,
};

struct op {
	enum op_kind kind;
	uint64_t id, origin;
	uint64_t off, len;
	unsigned flags;
	uint64_t data_seed;
	uint8_t *data; /* W_WRITE: len bytes from data_seed */
};

struct cfg {
	const char *name;
	bool torn; /* see the header: cut as write K completes, torn caches */
	bool skip_zero;
	size_t cache_blocks; /* 0 = default; small forces evictions mid-transaction */
	unsigned nops;
	uint64_t seed_mix;
};

struct workload {
	struct op *ops;
	unsigned nops;
};

static void gen_workload(struct mu_rng *rng, const struct cfg *cfg, struct workload *wl)
{
	struct {
		uint64_t id;
		unsigned depth;
	} live[MAX_LIVE];
	unsigned nlive = 0;
	uint64_t next_id = 1;
	/* at least 40 ops: a few commits with writes between them even at a tiny scale */
	unsigned want = (unsigned)mu_scaled(cfg->nops, 40);
	wl->ops = calloc(want, sizeof(*wl->ops));
	ck_assert(wl->ops);
	wl->nops = 0;
	while (wl->nops < want) {
		struct op o = {0};
		unsigned x = (unsigned)mu_below(rng, 1000);
		if (!nlive || (nlive < 2 && x < 30)) {
			o.kind = W_CREATE;
			o.id = next_id++;
			live[nlive].id = o.id;
			live[nlive++].depth = 0;
		} else if (x < 60) {
			unsigned i = (unsigned)mu_below(rng, nlive);
			if (nlive >= MAX_LIVE || live[i].depth >= 16)
				continue;
			o.kind = W_SNAP;
			o.id = next_id++;
			o.origin = live[i].id;
			live[nlive].id = o.id;
			live[nlive++].depth = live[i].depth + 1;
		} else if (x < 80) {
			if (nlive < 2)
				continue;
			unsigned i = (unsigned)mu_below(rng, nlive);
			o.kind = W_DELETE;
			o.id = live[i].id;
			live[i] = live[--nlive];
		} else if (x < 100) {
			if (nlive >= MAX_LIVE)
				continue;
			o.kind = W_CREATE;
			o.id = next_id++;
			live[nlive].id = o.id;
			live[nlive++].depth = 0;
		} else if (x < 170) {
			o.kind = W_DISCARD;
			o.id = live[mu_below(rng, nlive)].id;
			switch (mu_below(rng, 3)) {
			case 0:
				o.len = BS * (1 + mu_below(rng, 3));
				o.off = mu_below(rng, NBLK - o.len / BS + 1) * BS;
				break;
			case 1:
				o.len = 1 + mu_below(rng, BS);
				o.off = mu_below(rng, DEV_SIZE - o.len + 1);
				break;
			default:
				o.len = 1 + mu_below(rng, 4 * BS);
				o.off = mu_below(rng, DEV_SIZE - o.len + 1);
				break;
			}
		} else if (x < 290) {
			o.kind = W_FLUSH;
			o.id = live[mu_below(rng, nlive)].id;
		} else if (x < 320) {
			o.kind = W_COMMIT;
		} else {
			o.kind = W_WRITE;
			o.id = live[mu_below(rng, nlive)].id;
			o.flags = mu_pct(rng, 6) ? THINP_IO_FUA : 0;
			o.data_seed = mu_next(rng);
			switch (mu_below(rng, 7)) {
			case 0: /* small, unaligned */
				o.len = 1 + mu_below(rng, 600);
				o.off = mu_below(rng, DEV_SIZE - o.len + 1);
				break;
			case 1: /* 4 KiB units */
				o.len = UNIT * (1 + mu_below(rng, 4));
				o.off = mu_below(rng, (DEV_SIZE - o.len) / UNIT + 1) * UNIT;
				break;
			case 2: /* whole block */
				o.len = BS;
				o.off = mu_below(rng, NBLK) * BS;
				break;
			case 3: /* two whole blocks */
				o.len = 2 * BS;
				o.off = mu_below(rng, NBLK - 1) * BS;
				break;
			case 4: /* crossing a block boundary */
			{
				o.len = UNIT + mu_below(rng, BS);
				uint64_t edge = (1 + mu_below(rng, NBLK - 1)) * BS;
				uint64_t back = UNIT / 2 + mu_below(rng, o.len - UNIT);
				o.off = back < edge ? edge - back : 0;
				if (o.off + o.len > DEV_SIZE)
					o.off = DEV_SIZE - o.len;
				break;
			}
			default: /* anything up to 2 blocks */
				o.len = 1 + mu_below(rng, 2 * BS);
				o.off = mu_below(rng, DEV_SIZE - o.len + 1);
				break;
			}
		}
		if (o.kind == W_WRITE) {
			struct mu_rng dr;
			mu_rng_init(&dr, o.data_seed);
			o.data = malloc(o.len);
			ck_assert(o.data);
			mu_fill(&dr, o.data, o.len);
		}
		wl->ops[wl->nops++] = o;
	}
}

static void free_workload(struct workload *wl)
{
	for (unsigned i = 0; i < wl->nops; i++)
		free(wl->ops[i].data);
	free(wl->ops);
}

static const char *op_str(const struct op *o, char *buf, size_t len)
{
	switch (o->kind) {
	case W_CREATE: snprintf(buf, len, "create %" PRIu64, o->id); break;
	case W_SNAP: snprintf(buf, len, "snap %" PRIu64 " of %" PRIu64, o->id, o->origin); break;
	case W_DELETE: snprintf(buf, len, "delete %" PRIu64, o->id); break;
	case W_WRITE:
		snprintf(buf, len, "write %" PRIu64 " %" PRIu64 "+%" PRIu64 "%s", o->id, o->off,
			 o->len, o->flags ? " FUA" : "");
		break;
	case W_DISCARD:
		snprintf(buf, len, "discard %" PRIu64 " %" PRIu64 "+%" PRIu64, o->id, o->off, o->len);
		break;
	case W_FLUSH: snprintf(buf, len, "flush %" PRIu64, o->id); break;
	case W_COMMIT: snprintf(buf, len, "commit"); break;
	}
	return buf;
}

/* ---- the power gate: one power supply for both devices ---- */

struct power {
	bool lost;
	bool armed;
	bool at_write; /* power goes as write K completes (torn runs), not at write K+1 */
	struct tp_fault *cut; /* the wrapper whose writes are counted */
	uint64_t limit;       /* power goes when its writes_seen exceeds this */
};

struct gate {
	struct tp_dev dev;
	struct tp_dev *lower;
	struct power *pw; /* NULL: a plain pass-through */
	bool owns_lower;
};

static struct power no_power_cut; /* never armed, never lost */

static struct gate *to_gate(struct tp_dev *d) { return (struct gate *)(void *)d; }

static void gate_sync(struct gate *g)
{
	struct tp_io_counters lower = tp_dev_ctr(g->lower);
	tp_dev_ctr_set(&g->dev, &lower);
	g->dev.size = g->lower->size;
}

static int gate_after_write(struct gate *g, int r)
{
	struct power *pw = g->pw;
	uint64_t seen = pw->armed ? tp_fault_writes_seen(pw->cut) : 0;
	if (pw->armed && (seen > pw->limit || (pw->at_write && seen == pw->limit)))
		pw->lost = true;
	gate_sync(g);
	return pw->lost ? -EIO : r;
}

static int gate_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	struct gate *g = to_gate(d);
	if (g->pw->lost)
		return -EIO;
	int r = tp_dev_pread(g->lower, buf, len, off);
	gate_sync(g);
	return r;
}

static int gate_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct gate *g = to_gate(d);
	if (g->pw->lost)
		return -EIO;
	return gate_after_write(g, tp_dev_pwrite(g->lower, buf, len, off));
}

static int gate_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct gate *g = to_gate(d);
	if (g->pw->lost)
		return -EIO;
	return gate_after_write(g, tp_dev_write_zeroes(g->lower, off, len));
}

static int gate_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct gate *g = to_gate(d);
	if (g->pw->lost)
		return -EIO;
	return gate_after_write(g, tp_dev_discard(g->lower, off, len));
}

static int gate_flush(struct tp_dev *d)
{
	struct gate *g = to_gate(d);
	if (g->pw->lost)
		return -EIO;
	int r = tp_dev_flush(g->lower);
	gate_sync(g);
	return r;
}

static int gate_resize(struct tp_dev *d, uint64_t size)
{
	(void)d;
	(void)size;
	return -ENOTSUP;
}

static int gate_refresh(struct tp_dev *d)
{
	gate_sync(to_gate(d));
	return 0;
}

static void gate_close(struct tp_dev *d)
{
	struct gate *g = to_gate(d);
	if (g->owns_lower)
		tp_dev_close(g->lower);
	free(g);
}

static const struct tp_dev_ops gate_ops = {
	.pread = gate_pread,
	.pwrite = gate_pwrite,
	.flush = gate_flush,
	.write_zeroes = gate_zero,
	.discard = gate_discard,
	.resize = gate_resize,
	.refresh_size = gate_refresh,
	.close = gate_close,
};

/* OWNS: close LOWER with the gate. A gate that does not own its lower
 * device lets the test keep the disks past the pool that used them. */
static struct tp_dev *gate_new(struct tp_dev *lower, struct power *pw, const char *name,
			       bool owns)
{
	struct gate *g = calloc(1, sizeof(*g));
	ck_assert(g);
	g->dev.ops = &gate_ops;
	g->dev.align = lower->align;
	snprintf(g->dev.name, sizeof(g->dev.name), "gate:%s", name);
	g->lower = lower;
	g->pw = pw ? pw : &no_power_cut;
	g->owns_lower = owns;
	gate_sync(g);
	return &g->dev;
}

/* ---- the model: per 4 KiB unit, every state it may be found in ---- */

struct ustate {
	uint8_t data[UNIT];
	uint8_t undef[UNIT / 8]; /* 1 bit per byte: stale, not compared */
	bool any_undef;
};

struct unit {
	struct ustate *s; /* s[0]: state at the device's last durability point; s[n-1]: now */
	unsigned n, cap;
};

enum exist { EX_NO, EX_YES, EX_MAYBE };

struct cdev {
	uint64_t id;
	enum exist ex;
	bool live; /* in the workload */
	uint8_t cur[DEV_SIZE];
	uint8_t undef[DEV_SIZE / 8];
	uint8_t mapped[NBLK];
	struct unit u[NUNITS];
};

static void unit_push(struct cdev *d, unsigned ui)
{
	struct unit *u = &d->u[ui];
	const uint8_t *data = d->cur + (size_t)ui * UNIT;
	const uint8_t *undef = d->undef + (size_t)ui * UNIT / 8;
	if (u->n) {
		struct ustate *last = &u->s[u->n - 1];
		if (!memcmp(last->data, data, UNIT) && !memcmp(last->undef, undef, UNIT / 8))
			return;
	}
	if (u->n == u->cap) {
		u->cap = u->cap ? u->cap * 2 : 2;
		u->s = realloc(u->s, u->cap * sizeof(*u->s));
		ck_assert(u->s);
	}
	struct ustate *s = &u->s[u->n++];
	memcpy(s->data, data, UNIT);
	memcpy(s->undef, undef, UNIT / 8);
	s->any_undef = false;
	for (unsigned i = 0; i < UNIT / 8; i++)
		if (undef[i])
			s->any_undef = true;
}

static void unit_durable(struct cdev *d)
{
	for (unsigned i = 0; i < NUNITS; i++) {
		struct unit *u = &d->u[i];
		if (u->n > 1) {
			u->s[0] = u->s[u->n - 1];
			u->n = 1;
		}
	}
}

static void set_undef(struct cdev *d, uint64_t off, uint64_t len, bool v)
{
	uint64_t end = off + len;
	while (off < end && off % 8) {
		if (v)
			d->undef[off / 8] |= (uint8_t)(1u << (off % 8));
		else
			d->undef[off / 8] &= (uint8_t)~(1u << (off % 8));
		off++;
	}
	if (end - off >= 8) {
		memset(d->undef + off / 8, v ? 0xff : 0, (size_t)((end - off) / 8));
		off += (end - off) / 8 * 8;
	}
	for (uint64_t p = off; p < end; p++) {
		if (v)
			d->undef[p / 8] |= (uint8_t)(1u << (p % 8));
		else
			d->undef[p / 8] &= (uint8_t)~(1u << (p % 8));
	}
}

static struct cdev *cdev_new(uint64_t id)
{
	struct cdev *d = calloc(1, sizeof(*d));
	ck_assert(d);
	d->id = id;
	return d;
}

static void cdev_init_units(struct cdev *d)
{
	for (unsigned i = 0; i < NUNITS; i++)
		unit_push(d, i);
}

static void cdev_free(struct cdev *d)
{
	for (unsigned i = 0; i < NUNITS; i++)
		free(d->u[i].s);
	free(d);
}

/* ---- one run ---- */

struct record {
	/* per op: writes_seen (relative to the format) before and after, per device */
	uint64_t (*pre)[2], (*post)[2];
	bool *durable; /* the op is a flush, commit or message */
	uint64_t total[2];
};

enum { DEV_META = 0, DEV_DATA = 1 };
static const char *const dev_names[2] = {"metadata", "data"};

struct ctx {
	const struct cfg *cfg;
	uint64_t seed;
	const struct workload *wl;
	char tmpdir[PATH_MAX];
	char thin_check[PATH_MAX];
	bool have_thin_check;
	uint8_t *buf;
	const struct record *ref;

	/* the current run */
	int target; /* -1: no cut */
	uint64_t k;
	unsigned point_nr;
	struct cdev *devs[MAX_DEVS];
	unsigned ndev;
	unsigned stopped_at; /* op index where the power went, nops if never */

	/* statistics */
	unsigned points[2], thin_checks, cut_messages, maybe_found[2];
	uint64_t torn_cached[2], torn_whole[2], torn_partial[2];
	unsigned torn_sb, torn_sb_new; /* crashes with a superblock write cached; its sector 0 landed */
	uint64_t units_checked, units_dirty;
};

static void cfail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfail(struct ctx *c, const char *fmt, ...)
{
	char msg[2048], opb[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char where[128];
	if (c->target < 0)
		snprintf(where, sizeof(where), "no cut (reference run, crash after the last op)");
	else
		snprintf(where, sizeof(where), "cut on the %s device after write %" PRIu64 " (point %u)",
			 dev_names[c->target], c->k, c->point_nr);
	fprintf(stderr, "\n*** pool crash failure [%s] seed=%" PRIu64 ", %s, power lost in op %u: %s\n",
		c->cfg->name, c->seed, where, c->stopped_at, msg);
	unsigned from = c->stopped_at > 12 ? c->stopped_at - 12 : 0;
	for (unsigned i = from; i <= c->stopped_at && i < c->wl->nops; i++)
		fprintf(stderr, "  op %u: %s\n", i, op_str(&c->wl->ops[i], opb, sizeof(opb)));
	fflush(stderr);
	ck_abort_msg("[%s] seed=%" PRIu64 ", %s: %s (rerun with THINP_SEED=%" PRIu64 ")",
		     c->cfg->name, c->seed, where, msg, c->seed);
}

static struct cdev *find_dev(struct ctx *c, uint64_t id)
{
	for (unsigned i = 0; i < c->ndev; i++)
		if (c->devs[i]->id == id)
			return c->devs[i];
	return NULL;
}

static void all_durable(struct ctx *c)
{
	for (unsigned i = 0; i < c->ndev; i++)
		if (c->devs[i]->live)
			unit_durable(c->devs[i]);
}

/* Apply op O to the model (as if it completed; durability is handled by the
 * caller once it is known to have completed). */
static void model_apply(struct ctx *c, const struct op *o, const uint8_t *wdata)
{
	struct cdev *d;
	switch (o->kind) {
	case W_CREATE:
		ck_assert(c->ndev < MAX_DEVS);
		d = c->devs[c->ndev++] = cdev_new(o->id);
		d->live = true;
		d->ex = EX_MAYBE;
		cdev_init_units(d);
		break;
	case W_SNAP: {
		struct cdev *org = find_dev(c, o->origin);
		ck_assert(org && c->ndev < MAX_DEVS);
		d = c->devs[c->ndev++] = cdev_new(o->id);
		d->live = true;
		d->ex = EX_MAYBE;
		memcpy(d->cur, org->cur, sizeof(d->cur));
		memcpy(d->undef, org->undef, sizeof(d->undef));
		memcpy(d->mapped, org->mapped, sizeof(d->mapped));
		cdev_init_units(d);
		break;
	}
	case W_DELETE:
		d = find_dev(c, o->id);
		d->live = false;
		d->ex = EX_MAYBE;
		break;
	case W_WRITE: {
		d = find_dev(c, o->id);
		uint64_t b0 = o->off / BS, b1 = (o->off + o->len - 1) / BS;
		uint64_t u0 = o->off / UNIT, u1 = (o->off + o->len - 1) / UNIT;
		for (uint64_t b = b0; b <= b1; b++) {
			bool whole = o->off <= b * BS && o->off + o->len >= (b + 1) * BS;
			if (!d->mapped[b]) {
				d->mapped[b] = 1;
				if (!whole && c->cfg->skip_zero) {
					set_undef(d, b * BS, BS, true);
					if (b * BS / UNIT < u0)
						u0 = b * BS / UNIT;
					if (((b + 1) * BS - 1) / UNIT > u1)
						u1 = ((b + 1) * BS - 1) / UNIT;
				}
			}
		}
		memcpy(d->cur + o->off, wdata, o->len);
		set_undef(d, o->off, o->len, false);
		for (uint64_t u = u0; u <= u1; u++)
			unit_push(d, (unsigned)u);
		break;
	}
	case W_DISCARD:
		d = find_dev(c, o->id);
		for (uint64_t b = (o->off + BS - 1) / BS; b < (o->off + o->len) / BS; b++) {
			if (!d->mapped[b])
				continue;
			d->mapped[b] = 0;
			memset(d->cur + b * BS, 0, BS);
			set_undef(d, b * BS, BS, false);
			for (uint64_t u = b * BS / UNIT; u < (b + 1) * BS / UNIT; u++)
				unit_push(d, (unsigned)u);
		}
		break;
	case W_FLUSH:
	case W_COMMIT:
		break;
	}
}

static int exec_op(struct thinp_pool *p, struct thinp_thin **thins, const struct op *o,
		   const uint8_t *wdata)
{
	struct thinp_thin *t = thins[o->id];
	int r;
	switch (o->kind) {
	case W_CREATE:
		r = thinp_create_thin(p, o->id);
		if (!r)
			r = thinp_thin_open(p, o->id, DEV_SIZE, &thins[o->id]);
		return r;
	case W_SNAP:
		r = thinp_create_snap(p, o->id, o->origin);
		if (!r)
			r = thinp_thin_open(p, o->id, DEV_SIZE, &thins[o->id]);
		return r;
	case W_DELETE:
		thinp_thin_close(t);
		thins[o->id] = NULL;
		return thinp_delete_thin(p, o->id);
	case W_WRITE: return thinp_write(t, wdata, o->len, o->off, o->flags, NULL);
	case W_DISCARD: return thinp_discard(t, o->off, o->len, NULL);
	case W_FLUSH: return thinp_flush(t, NULL);
	case W_COMMIT: return thinp_pool_commit(p);
	}
	return -EINVAL;
}

static uint64_t nr_commits(struct thinp_pool *p)
{
	struct thinp_class_stats st[THINP_NR_CLASSES];
	thinp_pool_stats(p, st);
	return st[THINP_COMMIT].ops;
}

static struct tp_dev *copy_dev(struct tp_dev *inner)
{
	uint8_t *b = malloc(inner->size);
	ck_assert(b);
	ck_assert_int_eq(tp_dev_pread(inner, b, inner->size, 0), 0);
	struct tp_dev *m;
	ck_assert_int_eq(tp_dev_open_mem(inner->size, &m), 0);
	ck_assert_int_eq(tp_dev_pwrite(m, b, inner->size, 0), 0);
	free(b);
	return m;
}

struct report_buf {
	char text[1024];
	unsigned n;
};

static void report_cb(void *ctx, const char *msg)
{
	struct report_buf *rb = ctx;
	size_t used = strlen(rb->text);
	if (rb->n++ < 4 && used < sizeof(rb->text) - 2)
		snprintf(rb->text + used, sizeof(rb->text) - used, "%s%s", used ? " | " : "", msg);
}

static void tcheck(struct ctx *c, struct tp_dev *meta, const char *when)
{
	struct report_buf rb = {.text = ""};
	unsigned nerr = 0;
	int r = tcheck_run(meta, NULL, report_cb, &rb, &nerr);
	if (r || nerr)
		cfail(c, "tcheck_run %s = %d, %u errors: %s", when, r, nerr, rb.text);
}

static void run_thin_check(struct ctx *c, const uint8_t *meta, uint64_t size)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/meta", c->tmpdir);
	FILE *f = fopen(path, "wb");
	ck_assert(f);
	ck_assert(fwrite(meta, 1, size, f) == size);
	ck_assert(fclose(f) == 0);
	char cmd[2 * PATH_MAX + 64], out[4096];
	snprintf(cmd, sizeof(cmd), "'%s' '%s'", c->thin_check, path);
	int st = mu_run(cmd, out, sizeof(out));
	if (st != 0)
		cfail(c, "thin_check on the recovered metadata exited %d:\n%s", st, out);
	c->thin_checks++;
}

/* Torn runs: any subset of the unflushed writes may have landed, so each
 * byte holds what one of the unit's states holds there (a stale byte of
 * an unzeroed provision matches anything). */
static bool unit_matches_bytewise(const struct unit *u, const uint8_t *got)
{
	for (unsigned i = 0; i < UNIT; i++) {
		bool ok = false;
		for (unsigned s = 0; s < u->n && !ok; s++)
			ok = ((u->s[s].undef[i / 8] >> (i % 8)) & 1) || u->s[s].data[i] == got[i];
		if (!ok)
			return false;
	}
	return true;
}

static bool unit_matches(const struct ustate *s, const uint8_t *got)
{
	if (!s->any_undef)
		return !memcmp(s->data, got, UNIT);
	for (unsigned i = 0; i < UNIT; i++)
		if (!((s->undef[i / 8] >> (i % 8)) & 1) && s->data[i] != got[i])
			return false;
	return true;
}

static void verify_dev(struct ctx *c, struct thinp_pool *p, struct cdev *d)
{
	struct thinp_thin *t;
	int r = thinp_thin_open(p, d->id, DEV_SIZE, &t);
	if (r == -ENODEV) {
		if (d->ex == EX_YES)
			cfail(c, "thin %" PRIu64 " is gone after recovery, but it was created by a "
				 "completed message",
			      d->id);
		return;
	}
	if (r)
		cfail(c, "thinp_thin_open(%" PRIu64 ") = %d", d->id, r);
	if (d->ex == EX_NO)
		cfail(c, "thin %" PRIu64 " exists after recovery, but its delete completed", d->id);
	if (d->ex == EX_MAYBE)
		c->maybe_found[d->live ? 0 : 1]++;
	r = thinp_read(t, c->buf, DEV_SIZE, 0, NULL);
	if (r)
		cfail(c, "reading recovered thin %" PRIu64 " = %d: %s", d->id, r,
		      thinp_pool_error(p));
	for (unsigned ui = 0; ui < NUNITS; ui++) {
		const struct unit *u = &d->u[ui];
		const uint8_t *got = c->buf + (size_t)ui * UNIT;
		c->units_checked++;
		if (u->n > 1)
			c->units_dirty++;
		bool ok = false;
		for (unsigned s = 0; s < u->n && !ok; s++)
			ok = unit_matches(&u->s[s], got);
		if (!ok && c->cfg->torn && u->n > 1)
			ok = unit_matches_bytewise(u, got);
		if (ok)
			continue;
		/* describe the first differing byte against the durable state */
		const struct ustate *s0 = &u->s[0];
		unsigned i = 0;
		while (i < UNIT && (((s0->undef[i / 8] >> (i % 8)) & 1) || s0->data[i] == got[i]))
			i++;
		unsigned nz = 0;
		for (unsigned j = 0; j < UNIT; j++)
			nz += got[j] != 0;
		cfail(c,
		      "thin %" PRIu64 " (%s) unit %u (bytes %u..%u, vblock %u): matches none of "
		      "its %u possible states; %s; first difference from the durable state at "
		      "+%u: read 0x%02x, expected 0x%02x; %u non-zero bytes read",
		      d->id,
		      d->ex == EX_YES ? "exists" : d->ex == EX_MAYBE ? "may exist" : "deleted", ui,
		      ui * UNIT, (ui + 1) * UNIT - 1, (unsigned)(ui * UNIT / BS), u->n,
		      u->n == 1 ? "not written since its last flush" : "written since its last flush",
		      i, i < UNIT ? got[i] : 0, i < UNIT ? s0->data[i] : 0, nz);
	}
	thinp_thin_close(t);
}

/* Seeded landing of cached pieces (half of them), noting whether a
 * superblock write (block 0, whole) was cached and its first sector landed. */
struct tear_ctx {
	struct mu_rng rng;
	bool sb_cached, sb_new;
};

static bool tear_land(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
		      uint64_t piece_off, uint64_t piece_len)
{
	struct tear_ctx *t = ctx;
	bool land = mu_pct(&t->rng, 50);
	(void)nth;
	(void)piece_len;
	if (write_off == 0 && write_len == UNIT) {
		t->sb_cached = true;
		if (piece_off == 0)
			t->sb_new = land;
	}
	return land;
}

/* Run the workload once; cut on TARGET after K writes (TARGET < 0: no cut,
 * and with REC record the boundaries). Then crash, recover and verify. */
static void run_once(struct ctx *c, int target, uint64_t k, struct record *rec)
{
	c->target = target;
	c->k = k;
	c->ndev = 0;
	struct power pw = {0};
	struct tp_dev *inner[2], *fdev[2], *gdev[2];
	struct tp_fault *f[2];
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &inner[DEV_META]), 0);
	ck_assert_int_eq(tp_dev_open_mem(DATA_BYTES, &inner[DEV_DATA]), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(tp_fault_wrap(inner[i], &fdev[i], &f[i]), 0);
		tp_fault_set_volatile(f[i], 1);
		/* the gates do not own the wrappers: after the crash the
		 * wrappers' inner devices are the disks to recover from */
		gdev[i] = gate_new(fdev[i], &pw, dev_names[i], false);
	}
	struct thinp_pool_opts o = {
		.block_sectors = BLOCK_SECTORS,
		.skip_block_zeroing = c->cfg->skip_zero,
		.no_commit_timer = true,
		.error_if_no_space = true,
		.metadata_cache_blocks = c->cfg->cache_blocks,
	};
	struct thinp_pool *p;
	char err[512] = "";
	int r = thinp_pool_format(gdev[DEV_DATA], gdev[DEV_META], &o, &p, err, sizeof(err));
	if (r)
		cfail(c, "thinp_pool_format = %d: %s", r, err);
	uint64_t base[2] = {tp_fault_writes_seen(f[0]), tp_fault_writes_seen(f[1])};
	if (target >= 0) {
		if (k)
			tp_fault_cut_after(f[target], k);
		tp_fault_cut_skips_flush(f[target], c->cfg->torn);
		pw.cut = f[target];
		pw.limit = base[target] + k;
		pw.armed = true;
		pw.at_write = c->cfg->torn;
		pw.lost = k == 0;
	}

	struct thinp_thin *thins[MAX_DEVS] = {0};
	c->stopped_at = c->wl->nops;
	for (unsigned i = 0; i < c->wl->nops; i++) {
		const struct op *op = &c->wl->ops[i];
		const uint8_t *wdata = op->data;
		uint64_t commits_before = nr_commits(p);
		if (rec) {
			rec->pre[i][0] = tp_fault_writes_seen(f[0]) - base[0];
			rec->pre[i][1] = tp_fault_writes_seen(f[1]) - base[1];
		}
		model_apply(c, op, wdata);
		r = exec_op(p, thins, op, wdata);
		if (rec) {
			rec->post[i][0] = tp_fault_writes_seen(f[0]) - base[0];
			rec->post[i][1] = tp_fault_writes_seen(f[1]) - base[1];
		}
		if (pw.lost) {
			c->stopped_at = i;
			if (op->kind == W_CREATE || op->kind == W_SNAP || op->kind == W_DELETE)
				c->cut_messages++;
			break;
		}
		if (r)
			cfail(c, "op %u with power on = %d (%s): %s", i, r, strerror(-r),
			      thinp_pool_error(p));
		/* completed: durability */
		/* a flush (or FUA) commits when its thin changed in the open
		 * transaction: then every thin's writes are durable */
		bool committed = nr_commits(p) != commits_before;
		struct cdev *d = op->kind == W_COMMIT ? NULL : find_dev(c, op->id);
		switch (op->kind) {
		case W_CREATE:
		case W_SNAP:
			d->ex = EX_YES;
			all_durable(c);
			break;
		case W_DELETE:
			d->ex = EX_NO;
			all_durable(c);
			break;
		case W_COMMIT: all_durable(c); break;
		case W_FLUSH:
		case W_WRITE:
			if (op->kind == W_WRITE && !(op->flags & THINP_IO_FUA))
				break;
			if (committed)
				all_durable(c);
			else
				unit_durable(d);
			break;
		case W_DISCARD: break;
		}
		if (rec)
			rec->durable[i] = op->kind != W_WRITE || (op->flags & THINP_IO_FUA);
	}
	if (rec) {
		rec->total[0] = tp_fault_writes_seen(f[0]) - base[0];
		rec->total[1] = tp_fault_writes_seen(f[1]) - base[1];
		/* without a fault the pool must hold exactly the model now */
		for (unsigned i = 0; i < c->ndev; i++) {
			struct cdev *d = c->devs[i];
			if (!d->live)
				continue;
			ck_assert_int_eq(thinp_read(thins[d->id], c->buf, DEV_SIZE, 0, NULL),
					 0);
			for (uint64_t b = 0; b < DEV_SIZE; b++)
				if (!((d->undef[b / 8] >> (b % 8)) & 1) && c->buf[b] != d->cur[b])
					cfail(c, "reference run: thin %" PRIu64 " byte %" PRIu64
						 " reads 0x%02x, the model has 0x%02x",
					      d->id, b, c->buf[b], d->cur[b]);
		}
	} else if (target >= 0) {
		/* determinism: the power went in the op that issues write K+1
		 * in the reference run (torn: write K) */
		const struct record *ref = c->ref;
		unsigned expect = c->wl->nops;
		uint64_t w = c->cfg->torn ? k - 1 : k;
		if (k == 0)
			expect = 0;
		else
			for (unsigned i = 0; i < c->wl->nops; i++)
				if (ref->pre[i][target] <= w && w < ref->post[i][target]) {
					expect = i;
					break;
				}
		if (c->stopped_at != expect)
			cfail(c, "the power went in op %u, but the reference run issues write %" PRIu64
				 " in op %u: the workload is not deterministic",
			      c->stopped_at, k + 1, expect);
	}

	/* power loss: both caches are lost (torn: in part); read what the disks hold */
	if (c->cfg->torn && target >= 0) {
		for (int i = 0; i < 2; i++) {
			struct tear_ctx tc = {0};
			mu_rng_init(&tc.rng, c->seed ^ (k * 0x9e3779b97f4a7c15ull) ^
						     ((uint64_t)target << 60) ^ (uint64_t)i);
			struct tp_fault_tear how = {
				.piece = i == DEV_META ? 512 : 0,
				.land = tear_land,
				.ctx = &tc,
			};
			struct tp_fault_tear_stats ts;
			r = tp_fault_crash_torn(f[i], &how, &ts);
			if (r)
				cfail(c, "tearing the %s cache = %d", dev_names[i], r);
			c->torn_cached[i] += ts.cached;
			c->torn_whole[i] += ts.whole;
			c->torn_partial[i] += ts.partial;
			if (i == DEV_META && tc.sb_cached) {
				c->torn_sb++;
				c->torn_sb_new += tc.sb_new;
			}
		}
	}
	tp_fault_crash(f[0]);
	tp_fault_crash(f[1]);
	for (unsigned i = 0; i < MAX_DEVS; i++)
		if (thins[i])
			thinp_thin_close(thins[i]);
	(void)thinp_pool_close(p); /* fails: the devices are gone */
	/* the recovered pool runs straight on the disks' contents */
	struct tp_dev *mcopy = gate_new(inner[DEV_META], NULL, "recovered metadata", false);
	struct tp_dev *dcopy = gate_new(inner[DEV_DATA], NULL, "recovered data", false);

	tcheck(c, mcopy, "on the recovered metadata");
	if (c->have_thin_check && c->point_nr % THIN_CHECK_EVERY == 0) {
		uint8_t *meta_bytes = malloc(META_BYTES);
		ck_assert(meta_bytes);
		ck_assert_int_eq(tp_dev_pread(mcopy, meta_bytes, META_BYTES, 0), 0);
		run_thin_check(c, meta_bytes, META_BYTES);
		free(meta_bytes);
	}

	r = thinp_pool_open(dcopy, mcopy, &o, &p, err, sizeof(err));
	if (r)
		cfail(c, "the pool does not open after the crash: %d (%s): %s", r, strerror(-r), err);
	struct thinp_pool_status st;
	r = thinp_pool_status(p, true, &st);
	if (r || st.mode != THINP_MODE_WRITE || st.needs_check)
		cfail(c, "recovered pool: status %d, mode %d, needs_check %d", r, st.mode,
		      st.needs_check);
	for (unsigned i = 0; i < c->ndev; i++)
		verify_dev(c, p, c->devs[i]);

	/* the recovered pool works: provision, CoW and commit, still clean */
	for (unsigned i = 0; i < c->ndev; i++) {
		struct thinp_thin *t;
		if (thinp_thin_open(p, c->devs[i]->id, DEV_SIZE, &t))
			continue;
		memset(c->buf, 0xA5, 3 * UNIT);
		r = thinp_write(t, c->buf, 3 * UNIT, BS - UNIT, 0, NULL);
		if (!r)
			r = thinp_discard(t, 3 * BS, BS, NULL);
		thinp_thin_close(t);
		if (r)
			cfail(c, "writing thin %" PRIu64 " after recovery = %d: %s", c->devs[i]->id, r,
			      thinp_pool_error(p));
	}
	r = thinp_pool_commit(p);
	if (r)
		cfail(c, "commit after recovery = %d: %s", r, thinp_pool_error(p));
	tcheck(c, mcopy, "after a write and commit on the recovered pool");
	r = thinp_pool_close(p);
	if (r)
		cfail(c, "closing the recovered pool = %d", r);
	tp_dev_close(fdev[0]); /* and with them the disks */
	tp_dev_close(fdev[1]);

	for (unsigned i = 0; i < c->ndev; i++)
		cdev_free(c->devs[i]);
	c->ndev = 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void run_cfg(const struct cfg *cfg)
{
	struct ctx *c = calloc(1, sizeof(*c));
	ck_assert(c);
	c->cfg = cfg;
	c->seed = mu_seed(DEFAULT_SEED) ^ cfg->seed_mix;
	c->buf = malloc(DEV_SIZE);
	ck_assert(c->buf);
	int r = mu_mkdtemp(c->tmpdir, sizeof(c->tmpdir), "poolcrash");
	ck_assert_msg(!r, "mkdtemp: %s", strerror(-r));
	c->have_thin_check = mu_find_prog("thin_check", c->thin_check, sizeof(c->thin_check));
	if (!c->have_thin_check)
		fprintf(stderr, "[%s] thin_check not found: only tcheck_run checks\n", cfg->name);

	struct mu_rng rng;
	mu_rng_init(&rng, c->seed);
	struct workload wl;
	gen_workload(&rng, cfg, &wl);
	ck_assert(wl.nops + 1 < MAX_DEVS);
	c->wl = &wl;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	struct record rec = {0};
	rec.pre = calloc(wl.nops, sizeof(*rec.pre));
	rec.post = calloc(wl.nops, sizeof(*rec.post));
	rec.durable = calloc(wl.nops, sizeof(*rec.durable));
	ck_assert(rec.pre && rec.post && rec.durable);
	c->point_nr = 1; /* the reference run's crash at the end: no thin_check */
	run_once(c, -1, 0, &rec);
	c->ref = &rec;

	unsigned nflush = 0;
	for (unsigned i = 0; i < wl.nops; i++)
		nflush += rec.durable[i];
	uint64_t even = mu_scaled(EVEN_POINTS, 20);
	for (int dev = 0; dev < 2; dev++) {
		uint64_t total = rec.total[dev];
		size_t cap = (size_t)(even + 2 + (uint64_t)nflush * (2 * NEAR + 2) + total);
		uint64_t *pts = malloc(cap * sizeof(*pts));
		ck_assert(pts);
		size_t n = 0;
		/* evenly spread over 0..total (0: before the first write;
		 * total: after the last, so only the final caches are lost) */
		for (uint64_t j = 0; j <= even; j++)
			pts[n++] = total * j / even;
		/* every boundary inside and next to each flush/commit */
		for (unsigned i = 0; i < wl.nops; i++) {
			if (!rec.durable[i])
				continue;
			uint64_t a = rec.pre[i][dev] > NEAR ? rec.pre[i][dev] - NEAR : 0;
			uint64_t e = rec.post[i][dev] + NEAR < total ? rec.post[i][dev] + NEAR : total;
			for (uint64_t kk = a; kk <= e && n < cap; kk++)
				pts[n++] = kk;
		}
		qsort(pts, n, sizeof(*pts), cmp_u64);
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (!m || pts[i] != pts[m - 1])
				pts[m++] = pts[i];
		for (size_t i = 0; i < m; i++) {
			c->point_nr++;
			run_once(c, dev, pts[i], NULL);
			c->points[dev]++;
		}
		printf("[%s] %s device: %" PRIu64 " write boundaries, %zu cut points\n", cfg->name,
		       dev_names[dev], total, m);
		free(pts);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("[%s] seed=%" PRIu64 ": %u ops (%u flush/commit/message), %u+%u cut points, %u cut "
	       "inside a message, %u+%u maybe-devices found (created/deleted), %" PRIu64
	       " units checked (%" PRIu64 " written since their flush), %u thin_check runs, "
	       "%.1fs\n",
	       cfg->name, c->seed, wl.nops, nflush, c->points[0], c->points[1], c->cut_messages,
	       c->maybe_found[0], c->maybe_found[1], c->units_checked, c->units_dirty,
	       c->thin_checks, secs);
	if (cfg->torn)
		printf("[%s] torn caches: metadata %" PRIu64 " cached writes, %" PRIu64
		       " landed whole, %" PRIu64 " in part (sectors); %u crashes with a superblock "
		       "write cached (%u with its first sector landed); data %" PRIu64
		       " cached, %" PRIu64 " landed\n",
		       cfg->name, c->torn_cached[0], c->torn_whole[0], c->torn_partial[0], c->torn_sb,
		       c->torn_sb_new, c->torn_cached[1], c->torn_whole[1]);
	fflush(stdout);
	free(rec.pre);
	free(rec.post);
	free(rec.durable);
	free_workload(&wl);
	mu_rmtree(c->tmpdir);
	free(c->buf);
	free(c);
}


/* ---- directed: a discard passed down before the commit that unmaps it ----
 *
 * Thin 1's block 0 is written and flushed; thin 2 is a snapshot of it, so
 * both map data block B in the committed metadata. Thin 1 then writes one
 * 4 KiB unit of the block (CoW: thin 1 now maps a new block, B is thin 2's
 * alone in the open transaction) and thin 2 discards the block: B's count
 * reaches 0 and the discard is passed down to the data device at once. A
 * flush of an unrelated, unchanged thin flushes only the data device, which
 * makes the passed-down discard durable (an SSD may apply it at once
 * anyway). After a power loss the committed metadata still maps thin 1's
 * block 0 to B — whose data was discarded: thin 1's 15 other units, flushed
 * and never rewritten, read back as zeros.
 * The same happens when thin 1 replaces the shared block whole (no copy). */
static void passdown_case(bool whole_overwrite)
{
	struct tp_dev *inner[2], *fdev[2];
	struct tp_fault *f[2];
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &inner[DEV_META]), 0);
	ck_assert_int_eq(tp_dev_open_mem(DATA_BYTES, &inner[DEV_DATA]), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(tp_fault_wrap(inner[i], &fdev[i], &f[i]), 0);
		tp_fault_set_volatile(f[i], 1);
	}
	struct thinp_pool_opts o = {.block_sectors = BLOCK_SECTORS, .no_commit_timer = true};
	struct thinp_pool *p;
	char err[512] = "";
	ck_assert_msg(!thinp_pool_format(fdev[DEV_DATA], fdev[DEV_META], &o, &p, err, sizeof(err)),
		      "%s", err);
	struct thinp_thin *t1, *t2, *t3;
	uint8_t *buf = malloc(BS);
	ck_assert(buf);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	ck_assert_int_eq(thinp_create_thin(p, 3), 0);
	ck_assert_int_eq(thinp_thin_open(p, 1, DEV_SIZE, &t1), 0);
	ck_assert_int_eq(thinp_thin_open(p, 3, DEV_SIZE, &t3), 0);
	memset(buf, 0x11, BS);
	ck_assert_int_eq(thinp_write(t1, buf, BS, 0, 0, NULL), 0);
	ck_assert_int_eq(thinp_flush(t1, NULL), 0); /* durable: thin 1 block 0 = 0x11 */
	ck_assert_int_eq(thinp_create_snap(p, 2, 1), 0);
	ck_assert_int_eq(thinp_thin_open(p, 2, DEV_SIZE, &t2), 0);
	memset(buf, 0x22, BS);
	ck_assert_int_eq(thinp_write(t1, buf, whole_overwrite ? BS : UNIT, 0, 0, NULL), 0);
	ck_assert_int_eq(thinp_discard(t2, 0, BS, NULL), 0);
	ck_assert_int_eq(thinp_flush(t3, NULL), 0); /* thin 3 unchanged: data flush only */
	tp_fault_crash(f[0]);
	tp_fault_crash(f[1]);
	struct tp_dev *mcopy = copy_dev(inner[DEV_META]);
	struct tp_dev *dcopy = copy_dev(inner[DEV_DATA]);
	thinp_thin_close(t1);
	thinp_thin_close(t2);
	thinp_thin_close(t3);
	(void)thinp_pool_close(p);

	ck_assert_msg(!thinp_pool_open(dcopy, mcopy, &o, &p, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(thinp_thin_open(p, 1, DEV_SIZE, &t1), 0);
	ck_assert_int_eq(thinp_read(t1, buf, BS, 0, NULL), 0);
	unsigned first = whole_overwrite ? 0 : 1, lost = 0;
	for (unsigned u = first; u < BS / UNIT; u++) {
		const uint8_t *g = buf + u * UNIT;
		bool old = true, new = true;
		for (unsigned i = 0; i < UNIT; i++) {
			old &= g[i] == 0x11;
			new &= g[i] == 0x22;
		}
		if (!old && !(whole_overwrite && new))
			lost++;
	}
	thinp_thin_close(t1);
	(void)thinp_pool_close(p);
	free(buf);
	ck_assert_msg(!lost,
		      "power loss after a snapshot's discard was passed down before its commit: "
		      "%u of thin 1's %u flushed 4 KiB units of block 0 %s (they read as zeros): "
		      "the committed metadata still maps them to the discarded data block "
		      "(%s write on thin 1, discard on its snapshot, flush of another thin)",
		      lost, (unsigned)(BS / UNIT - first),
		      whole_overwrite ? "are neither old nor new" : "were never rewritten but are lost",
		      whole_overwrite ? "whole-block" : "4 KiB CoW");
}

START_TEST(test_passdown_cow) { passdown_case(false); }
END_TEST

START_TEST(test_passdown_cow_full) { passdown_case(true); }
END_TEST

/* ---- a power cut at every write of a commit that overwrites run beside ----
 *
 * The pool lets reads and overwrites of provisioned blocks go on while a commit's IO runs
 * (pool.c, pool_commit). Thin 1's blocks 0..HB-1 are written and flushed (the baseline),
 * blocks HB..2HB-1 provisioned in the open transaction; the commit is then held at its
 * first metadata write (support/dev_hold.h) while seeded 4 KiB overwrites and reads of the
 * baseline blocks run, each read checked. Then the power goes after the commit's Kth
 * metadata write, for every K up to the commit's last write, with and without the flush
 * that follows write K, and both devices crash. The pool reopened from what the disks hold
 * must check clean and read back: a baseline unit not overwritten exactly as flushed, an
 * overwritten one old or new; the new blocks exactly as written when the superblock landed
 * (the last write, its flush run), otherwise unmapped (zeros). */
#define HB 4u /* blocks in the baseline, and new ones */
#define HOLD_OVERWRITES 24u

struct hold_run {
	uint64_t seed;
	uint64_t k;    /* 0: no cut */
	bool skip;     /* the cut stops the flush after write K too */
	uint64_t writes; /* out: the commit's metadata writes */
};

static void hold_fill(uint64_t seed, uint64_t tag, uint8_t *buf, size_t len)
{
	struct mu_rng r;
	mu_rng_init(&r, seed ^ (tag * 0x9E3779B97F4A7C15ull));
	mu_fill(&r, buf, len);
}

static void *hold_commit_main(void *arg)
{
	(void)thinp_pool_commit(arg); /* (a cut commit "succeeds": its writes just vanish) */
	return NULL;
}

static void hold_case(struct hold_run *hr)
{
	struct tp_dev *inner[2], *fdev[2], *held;
	struct tp_fault *f[2];
	struct tp_hold *hold;
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &inner[DEV_META]), 0);
	ck_assert_int_eq(tp_dev_open_mem(DATA_BYTES, &inner[DEV_DATA]), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(tp_fault_wrap(inner[i], &fdev[i], &f[i]), 0);
		tp_fault_set_volatile(f[i], 1);
	}
	ck_assert_int_eq(tp_hold_wrap(fdev[DEV_META], &held, &hold), 0);
	struct thinp_pool_opts o = {.block_sectors = BLOCK_SECTORS, .no_commit_timer = true};
	struct thinp_pool *p;
	char err[512] = "";
	ck_assert_msg(!thinp_pool_format(fdev[DEV_DATA], held, &o, &p, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, DEV_SIZE, &t), 0);
	/* the model: per unit, its flushed content's tag and the tag overwritten during the
	 * commit (0: none) */
	enum { UPB = BS / UNIT };
	uint64_t base[2 * HB * UPB], over[HB * UPB];
	memset(over, 0, sizeof(over));
	uint8_t *buf = malloc(BS);
	ck_assert(buf);
	for (unsigned b = 0; b < 2 * HB; b++) {
		for (unsigned u = 0; u < UPB; u++) {
			base[b * UPB + u] = 1 + b * UPB + u;
			hold_fill(hr->seed, base[b * UPB + u], buf + u * UNIT, UNIT);
		}
		ck_assert_int_eq(thinp_write(t, buf, BS, b * BS, 0, NULL), 0);
		if (b == HB - 1)
			ck_assert_int_eq(thinp_flush(t, NULL), 0); /* the baseline is durable */
	}
	uint64_t w0 = tp_fault_writes_seen(f[DEV_META]);
	tp_hold_arm(hold);
	pthread_t ct;
	ck_assert_int_eq(pthread_create(&ct, NULL, hold_commit_main, p), 0);
	tp_hold_wait_held(hold);
	/* the commit is inside its IO: its first metadata write waits at the hold */
	ck_assert_uint_eq(tp_fault_writes_seen(f[DEV_META]), w0);
	struct mu_rng rng;
	mu_rng_init(&rng, hr->seed);
	uint8_t want[UNIT];
	for (unsigned i = 0; i < HOLD_OVERWRITES; i++) {
		unsigned u = (unsigned)mu_below(&rng, HB * UPB);
		if (mu_below(&rng, 3)) {
			over[u] = 1000 + i;
			hold_fill(hr->seed, over[u], buf, UNIT);
			ck_assert_int_eq(thinp_write(t, buf, UNIT, (uint64_t)u * UNIT, 0, NULL), 0);
		} else {
			ck_assert_int_eq(thinp_read(t, buf, UNIT, (uint64_t)u * UNIT, NULL), 0);
			hold_fill(hr->seed, over[u] ? over[u] : base[u], want, UNIT);
			ck_assert_msg(!memcmp(buf, want, UNIT), "unit %u read during the commit differs",
				      u);
		}
	}
	if (hr->k) {
		tp_fault_cut_after(f[DEV_META], hr->k);
		tp_fault_cut_skips_flush(f[DEV_META], hr->skip);
	}
	tp_hold_release(hold);
	pthread_join(ct, NULL);
	hr->writes = tp_fault_writes_seen(f[DEV_META]) - w0;
	bool landed = !hr->k || (hr->k >= hr->writes && !hr->skip);
	tp_fault_crash(f[DEV_META]);
	tp_fault_crash(f[DEV_DATA]);
	struct tp_dev *mcopy = copy_dev(inner[DEV_META]);
	struct tp_dev *dcopy = copy_dev(inner[DEV_DATA]);
	thinp_thin_close(t);
	(void)thinp_pool_close(p);

	struct report_buf rb = {.text = ""};
	unsigned nerr = 0;
	int r = tcheck_run(mcopy, NULL, report_cb, &rb, &nerr);
	ck_assert_msg(!r && !nerr, "cut after write %" PRIu64 "%s: tcheck_run = %d, %u errors: %s",
		      hr->k, hr->skip ? " (and its flush)" : "", r, nerr, rb.text);
	ck_assert_msg(!thinp_pool_open(dcopy, mcopy, &o, &p, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(thinp_thin_open(p, 1, DEV_SIZE, &t), 0);
	uint8_t alt[UNIT];
	for (unsigned u = 0; u < 2 * HB * UPB; u++) {
		ck_assert_int_eq(thinp_read(t, buf, UNIT, (uint64_t)u * UNIT, NULL), 0);
		bool ok;
		if (u >= HB * UPB && !landed) {
			memset(want, 0, UNIT);
			ok = !memcmp(buf, want, UNIT);
		} else {
			hold_fill(hr->seed, base[u], want, UNIT);
			ok = !memcmp(buf, want, UNIT);
			if (!ok && u < HB * UPB && over[u]) {
				hold_fill(hr->seed, over[u], alt, UNIT);
				ok = !memcmp(buf, alt, UNIT);
			}
		}
		ck_assert_msg(ok,
			      "seed %" PRIu64 ", cut after the commit's metadata write %" PRIu64
			      " of %" PRIu64 "%s: unit %u (%s) %s (rerun with THINP_SEED=%" PRIu64 ")",
			      hr->seed, hr->k, hr->writes, hr->skip ? " and its flush" : "", u,
			      u < HB * UPB ? (over[u] ? "overwritten during the commit" : "flushed before it")
					   : "provisioned in the commit",
			      u >= HB * UPB ? (landed ? "lost though the superblock landed"
						      : "mapped though the superblock did not land")
					    : "lost",
			      hr->seed);
	}
	/* the recovered pool takes a write and a commit */
	ck_assert_int_eq(thinp_write(t, buf, UNIT, 0, 0, NULL), 0);
	ck_assert_int_eq(thinp_pool_commit(p), 0);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
	free(buf);
}

START_TEST(test_cut_commit_with_overwrites)
{
	uint64_t seed = mu_seed(DEFAULT_SEED) ^ 0x686f6c64ull; /* "hold" */
	struct hold_run ref = {.seed = seed};
	hold_case(&ref);
	ck_assert_msg(ref.writes >= 3, "the commit wrote %" PRIu64 " metadata blocks, expected a few",
		      ref.writes);
	for (int skip = 0; skip < 2; skip++)
		for (uint64_t k = 1; k <= ref.writes; k++) {
			struct hold_run hr = {.seed = seed, .k = k, .skip = skip};
			hold_case(&hr);
			ck_assert_msg(hr.writes == ref.writes,
				      "the commit wrote %" PRIu64 " blocks, %" PRIu64 " without the cut",
				      hr.writes, ref.writes);
		}
	fprintf(stderr, "commit held with overwrites: seed %" PRIu64 ", cut after each of its %" PRIu64
		" metadata writes, with and without the flush after it\n", seed, ref.writes);
}
END_TEST

static const struct cfg cfgs[] = {
	{"zeroing", false, false, 0, 260, 0},
	{"skip-zeroing-small-cache", false, true, 16, 260, 0x5a5a},
	{"zeroing-small-cache", false, false, 16, 320, 0xa5a5},
};

static const struct cfg torn_cfgs[] = {
	{"torn-zeroing-small-cache", true, false, 16, 260, 0x746f726e},
	{"torn-skip-zeroing", true, true, 0, 260, 0x7465617a},
};

START_TEST(test_crash) { run_cfg(&cfgs[_i]); }
END_TEST

START_TEST(test_crash_torn) { run_cfg(&torn_cfgs[_i]); }
END_TEST

int main(void)
{
	/* keep the per-run device-sized buffers in the heap rather than fresh
	 * mmaps: page faults dominated the runtime */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	Suite *s = suite_create("pool_crash");
	TCase *tc = tcase_create("crash");
	tcase_set_timeout(tc, 1800);
	tcase_add_loop_test(tc, test_crash, 0, (int)(sizeof(cfgs) / sizeof(cfgs[0])));
	suite_add_tcase(s, tc);
	TCase *tt = tcase_create("torn");
	tcase_set_timeout(tt, 1800);
	tcase_add_loop_test(tt, test_crash_torn, 0, (int)(sizeof(torn_cfgs) / sizeof(torn_cfgs[0])));
	suite_add_tcase(s, tt);
	TCase *td = tcase_create("directed");
	tcase_set_timeout(td, 300); /* a held commit cut at each of its writes: seconds when busy */
	tcase_add_test(td, test_passdown_cow);
	tcase_add_test(td, test_passdown_cow_full);
	tcase_add_test(td, test_cut_commit_with_overwrites);
	suite_add_tcase(s, td);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
