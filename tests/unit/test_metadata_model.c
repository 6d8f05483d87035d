/* Model-based test of impl/thin/metadata.c: seeded random thin-pool
 * operations on a metadata file, against a model of the pool.
 *
 * Model: devices -> (vblock -> data block, time) and details; pool time,
 * transaction id; the metadata snapshot as a frozen copy; the state at the
 * last commit (tmd_abort must return to it exactly). Data reference counts
 * are per leaf node in dm-thin (a snapshot's shared leaves keep count 1), so
 * the model checks "count > 0 iff some device or the metadata snapshot maps
 * the block", and the exact per-leaf counts are checked by the independent
 * on-disk checker (model_util.c) after every commit. New data blocks must be
 * unmapped now and in the committed state.
 *
 * Every few hundred operations and at the end the real thin_check and
 * thin_dump (thin-provisioning-tools) must accept the file, and thin_dump's
 * XML must describe exactly the model (also for the metadata snapshot, with
 * thin_dump -m). Skipped with a message if the tools are absent.
 *
 * THINP_SEED overrides the seed, THINP_TEST_SCALE scales the op count. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "stack_util.h"
#include "thin/metadata.h"

#define DEFAULT_SEED   0x6d6f64656cull /* "model" */
#define META_BYTES0    (8ull << 20)    /* grown in 8 MiB steps ... */
#define META_BYTES_MAX (80ull << 20)   /* ... past 64 MiB: a second metadata bitmap */
#define NR_DATA0       12000u
#define MAX_DATA       60000u
#define MAX_DEVS       28
#define MAX_DEPTH      16
#define VSPACE         20000u

static char g_dir[PATH_MAX];
static char g_thin_check[PATH_MAX], g_thin_dump[PATH_MAX];
static bool g_have_tools;

static void set_ctx(const char *test, uint64_t op, const char *what)
{
	snprintf(su_ctx_buf, sizeof(su_ctx_buf), "%s seed=%" PRIu64 " op=%" PRIu64 " %s", test,
	         su_seed, op, what);
}

/* ---- the model ---- */

struct mmap {
	uint64_t v, d;
	uint32_t t;
};

struct mdev {
	uint64_t id;
	struct thin_details det;
	unsigned depth; /* snapshot chain length */
	struct mmap *a;
	size_t nr, cap;
};

struct pstate {
	struct mdev devs[MAX_DEVS];
	size_t n;
	uint32_t time;
	uint64_t trans;
	uint64_t nr_data, meta_blocks;
	bool held;
	struct pstate *held_state; /* the metadata snapshot's view */
};

/* Existence of a device; the lookup itself must not fail. */
static bool dev_there(struct tmd *md, uint64_t id)
{
	bool exists = false;
	REQ0(tmd_device_exists(md, id, &exists));
	return exists;
}

static void mdev_copy(struct mdev *dst, const struct mdev *src)
{
	struct mmap *keep = dst->a;
	size_t cap = dst->cap;
	*dst = *src;
	dst->a = keep;
	dst->cap = cap;
	if (dst->cap < src->nr) {
		dst->cap = src->nr + 64;
		dst->a = realloc(dst->a, dst->cap * sizeof(*dst->a));
		ck_assert(dst->a);
	}
	if (src->nr)
		memcpy(dst->a, src->a, src->nr * sizeof(*src->a));
	dst->nr = src->nr;
}

static void ps_free(struct pstate *p)
{
	for (size_t i = 0; i < MAX_DEVS; i++) {
		free(p->devs[i].a);
		p->devs[i].a = NULL;
		p->devs[i].cap = p->devs[i].nr = 0;
	}
	if (p->held_state) {
		ps_free(p->held_state);
		free(p->held_state);
		p->held_state = NULL;
	}
}

static void ps_copy(struct pstate *dst, const struct pstate *src)
{
	for (size_t i = 0; i < src->n; i++)
		mdev_copy(&dst->devs[i], &src->devs[i]);
	dst->n = src->n;
	dst->time = src->time;
	dst->trans = src->trans;
	dst->nr_data = src->nr_data;
	dst->meta_blocks = src->meta_blocks;
	dst->held = src->held;
	if (src->held_state) {
		if (!dst->held_state) {
			dst->held_state = calloc(1, sizeof(*dst->held_state));
			ck_assert(dst->held_state);
		}
		ps_copy(dst->held_state, src->held_state);
	} else if (dst->held_state) {
		ps_free(dst->held_state);
		free(dst->held_state);
		dst->held_state = NULL;
	}
}

static struct mdev *ps_dev(struct pstate *p, uint64_t id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->devs[i].id == id)
			return &p->devs[i];
	return NULL;
}

static size_t mm_lb(const struct mdev *d, uint64_t v)
{
	size_t lo = 0, hi = d->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->a[mid].v < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct mmap *mm_find(struct mdev *d, uint64_t v)
{
	size_t i = mm_lb(d, v);
	return i < d->nr && d->a[i].v == v ? &d->a[i] : NULL;
}

static void mm_set(struct mdev *d, uint64_t v, uint64_t b, uint32_t t)
{
	size_t i = mm_lb(d, v);
	if (i < d->nr && d->a[i].v == v) {
		d->a[i].d = b;
		d->a[i].t = t;
		return;
	}
	if (d->nr == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->a = realloc(d->a, d->cap * sizeof(*d->a));
		ck_assert(d->a);
	}
	mu_memmove(&d->a[i + 1], &d->a[i], (d->nr - i) * sizeof(*d->a));
	d->a[i] = (struct mmap){ v, b, t };
	d->nr++;
}

/* Per data block: mappings referencing it in the current model. */
struct refs {
	uint32_t *cur;  /* over current devices, counted per device */
	uint8_t *held;  /* referenced by the metadata snapshot */
	uint32_t *ccur; /* cur at the last commit */
	uint8_t *cheld; /* held at the last commit */
};

static void refs_recompute(struct refs *r, const struct pstate *p)
{
	memset(r->cur, 0, MAX_DATA * sizeof(*r->cur));
	memset(r->held, 0, MAX_DATA);
	for (size_t i = 0; i < p->n; i++)
		for (size_t j = 0; j < p->devs[i].nr; j++)
			r->cur[p->devs[i].a[j].d]++;
	if (p->held_state)
		for (size_t i = 0; i < p->held_state->n; i++)
			for (size_t j = 0; j < p->held_state->devs[i].nr; j++)
				r->held[p->held_state->devs[i].a[j].d] = 1;
}

/* ---- thin_check / thin_dump ---- */

static unsigned long long attr(const char *line, const char *name, bool *ok)
{
	char key[64];
	snprintf(key, sizeof(key), " %s=\"", name);
	const char *p = strstr(line, key);
	if (!p) {
		*ok = false;
		return 0;
	}
	return strtoull(p + strlen(key), NULL, 10);
}

static int cmp_mmap(const void *a, const void *b)
{
	const struct mmap *x = a, *y = b;
	return x->v < y->v ? -1 : x->v > y->v;
}

/* Parse thin_dump XML from PATH and compare it with P. */
static void compare_dump(const char *path, struct pstate *p, const char *what, bool held)
{
	FILE *f = fopen(path, "r");
	REQ(f, "%s: cannot read the dump", what);
	char line[1024];
	struct mdev *cur = NULL;
	struct mmap *got = NULL;
	size_t ngot = 0, cap = 0, ndevs = 0;
	bool ok = true, sb = false;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "<superblock")) {
			sb = true;
			REQ(attr(line, "time", &ok) == p->time && ok,
			    "%s: dump time differs (%u): %s", what, p->time, line);
			REQ(attr(line, "transaction", &ok) == p->trans && ok,
			    "%s: dump transaction differs (%" PRIu64 "): %s", what, p->trans, line);
			/* a metadata snapshot's superblock has zeroed space-map roots */
			REQ(attr(line, "nr_data_blocks", &ok) == (held ? 0 : p->nr_data) && ok,
			    "%s: dump nr_data_blocks: %s", what, line);
		} else if (strstr(line, "<device")) {
			uint64_t id = attr(line, "dev_id", &ok);
			cur = ps_dev(p, id);
			REQ(cur && ok, "%s: dump has device %" PRIu64 " the model lacks", what, id);
			REQ(attr(line, "mapped_blocks", &ok) == cur->det.mapped_blocks &&
			            attr(line, "transaction", &ok) == cur->det.transaction_id &&
			            attr(line, "creation_time", &ok) == cur->det.creation_time &&
			            attr(line, "snap_time", &ok) == cur->det.snapshotted_time && ok,
			    "%s: device %" PRIu64 " details differ from the model {%" PRIu64
			    ", %" PRIu64 ", %u, %u}: %s",
			    what, id, cur->det.mapped_blocks, cur->det.transaction_id,
			    cur->det.creation_time, cur->det.snapshotted_time, line);
			ngot = 0;
			ndevs++;
		} else if (strstr(line, "</device>")) {
			REQ(cur, "%s: stray </device>", what);
			if (ngot)
				qsort(got, ngot, sizeof(*got), cmp_mmap);
			REQ(ngot == cur->nr,
			    "%s: device %" PRIu64 ": dump has %zu mappings, model %zu", what,
			    cur->id, ngot, cur->nr);
			for (size_t i = 0; i < ngot; i++)
				REQ(got[i].v == cur->a[i].v && got[i].d == cur->a[i].d &&
				            got[i].t == cur->a[i].t,
				    "%s: device %" PRIu64 " mapping %zu: dump %" PRIu64 "->%" PRIu64
				    "@%u, model %" PRIu64 "->%" PRIu64 "@%u",
				    what, cur->id, i, got[i].v, got[i].d, got[i].t, cur->a[i].v,
				    cur->a[i].d, cur->a[i].t);
			cur = NULL;
		} else if (strstr(line, "_mapping")) {
			REQ(cur, "%s: mapping outside a device: %s", what, line);
			uint64_t v, d, len = 1;
			uint32_t t = (uint32_t)attr(line, "time", &ok);
			if (strstr(line, "<range_mapping")) {
				v = attr(line, "origin_begin", &ok);
				d = attr(line, "data_begin", &ok);
				len = attr(line, "length", &ok);
			} else {
				v = attr(line, "origin_block", &ok);
				d = attr(line, "data_block", &ok);
			}
			REQ(ok, "%s: cannot parse: %s", what, line);
			for (uint64_t i = 0; i < len; i++) {
				if (ngot == cap) {
					cap = cap ? 2 * cap : 1024;
					got = realloc(got, cap * sizeof(*got));
					ck_assert(got);
				}
				got[ngot++] = (struct mmap){ v + i, d + i, t };
			}
		}
	}
	fclose(f);
	free(got);
	REQ(sb, "%s: no superblock in the dump", what);
	REQ(ndevs == p->n, "%s: dump has %zu devices, model %zu", what, ndevs, p->n);
}

static uint64_t g_tool_runs;

/* thin_check + thin_dump on the committed file; HELD_BLOCK non-zero: also
 * dump the metadata snapshot and compare it with HELD. */
static void run_tools(const char *meta, struct pstate *p, uint64_t held_block)
{
	if (!g_have_tools)
		return;
	char cmd[4 * PATH_MAX + 128], out[8192], dump[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "%s %s", g_thin_check, meta);
	int st = mu_run(cmd, out, sizeof(out));
	REQ(st == 0, "thin_check exited %d:\n%s", st, out);
	snprintf(dump, sizeof(dump), "%s/dump.xml", g_dir);
	snprintf(cmd, sizeof(cmd), "%s %s -o %s", g_thin_dump, meta, dump);
	st = mu_run(cmd, out, sizeof(out));
	REQ(st == 0, "thin_dump exited %d:\n%s", st, out);
	compare_dump(dump, p, "thin_dump", false);
	if (held_block) {
		REQ(p->held_state, "metadata snapshot without a model");
		snprintf(cmd, sizeof(cmd), "%s --metadata-snap=%" PRIu64 " %s -o %s", g_thin_dump,
		         held_block, meta, dump);
		st = mu_run(cmd, out, sizeof(out));
		REQ(st == 0, "thin_dump -m exited %d:\n%s", st, out);
		compare_dump(dump, p->held_state, "thin_dump -m", true);
	}
	g_tool_runs++;
}

/* ---- comparing the library with the model ---- */

struct walk_ctx {
	const struct mdev *d;
	size_t i;
	char msg[256];
};

static int walk_fn(void *ctx, uint64_t v, uint64_t b, uint32_t t)
{
	struct walk_ctx *w = ctx;
	if (w->i >= w->d->nr) {
		snprintf(w->msg, sizeof(w->msg), "extra mapping %" PRIu64 "->%" PRIu64, v, b);
		return 1;
	}
	const struct mmap *m = &w->d->a[w->i];
	if (m->v != v || m->d != b || m->t != t) {
		snprintf(w->msg, sizeof(w->msg),
		         "mapping %zu: %" PRIu64 "->%" PRIu64 "@%u, model %" PRIu64 "->%" PRIu64
		         "@%u",
		         w->i, v, b, t, m->v, m->d, m->t);
		return 1;
	}
	w->i++;
	return 0;
}

static void check_details(struct tmd *md, const struct mdev *d)
{
	struct thin_details det;
	int r = tmd_get_details(md, d->id, &det);
	REQ(r == 0, "get_details %" PRIu64 " = %d (%s)", d->id, r, tmd_error(md));
	REQ(det.mapped_blocks == d->det.mapped_blocks &&
	            det.transaction_id == d->det.transaction_id &&
	            det.creation_time == d->det.creation_time &&
	            det.snapshotted_time == d->det.snapshotted_time,
	    "device %" PRIu64 " details {%" PRIu64 ", %" PRIu64 ", %u, %u}, model {%" PRIu64
	    ", %" PRIu64 ", %u, %u}",
	    d->id, det.mapped_blocks, det.transaction_id, det.creation_time, det.snapshotted_time,
	    d->det.mapped_blocks, d->det.transaction_id, d->det.creation_time,
	    d->det.snapshotted_time);
}

static void verify_full(struct tmd *md, struct pstate *p, const struct refs *rf)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int r = tmd_list_devices(md, &ids, &n);
	REQ(r == 0, "list_devices = %d", r);
	REQ(n == p->n, "%zu devices, model %zu", n, p->n);
	for (size_t i = 0; i < n; i++) {
		REQ(i == 0 || ids[i] > ids[i - 1], "device list not ascending");
		REQ(ps_dev(p, ids[i]), "device %" PRIu64 " not in the model", ids[i]);
	}
	free(ids);
	for (size_t i = 0; i < p->n; i++) {
		struct mdev *d = &p->devs[i];
		REQ(dev_there(md, d->id), "device %" PRIu64 " missing", d->id);
		check_details(md, d);
		struct walk_ctx w = { d, 0, "" };
		r = tmd_walk_mappings(md, d->id, walk_fn, &w);
		REQ(r == 0 && w.i == d->nr, "device %" PRIu64 ": walk = %d after %zu of %zu: %s",
		    d->id, r, w.i, d->nr, w.msg);
		uint64_t hi;
		r = tmd_highest_mapped(md, d->id, &hi);
		if (d->nr)
			REQ(r == 0 && hi == d->a[d->nr - 1].v,
			    "highest_mapped %" PRIu64 " = %d %" PRIu64, d->id, r, hi);
		else
			REQ(r == -ENODATA, "highest_mapped of empty device = %d", r);
	}
	struct thin_sb_info sbi;
	tmd_sb_info(md, &sbi);
	REQ(sbi.time == p->time && sbi.transaction_id == p->trans &&
	            tmd_transaction_id(md) == p->trans,
	    "time %u trans %" PRIu64 ", model %u %" PRIu64, sbi.time, sbi.transaction_id, p->time,
	    p->trans);
	REQ((tmd_metadata_snap(md) != 0) == p->held, "metadata snap %" PRIu64 ", model %s",
	    tmd_metadata_snap(md), p->held ? "held" : "none");
	uint64_t used = 0;
	for (uint64_t b = 0; b < p->nr_data; b++) {
		uint32_t c = 0;
		r = tmd_data_count(md, b, &c);
		REQ(r == 0, "data_count %" PRIu64 " = %d", b, r);
		bool want = rf->cur[b] || rf->held[b];
		REQ((c > 0) == want, "data block %" PRIu64 ": count %u, but %u device mappings%s",
		    b, c, rf->cur[b], rf->held[b] ? " + metadata snapshot" : "");
		used += c > 0;
	}
	REQ(tmd_nr_free_data_blocks(md) == p->nr_data - used,
	    "nr_free_data %" PRIu64 ", expected %" PRIu64, tmd_nr_free_data_blocks(md),
	    p->nr_data - used);
	REQ(tmd_nr_data_blocks(md) == p->nr_data && sbi.nr_data_blocks == p->nr_data,
	    "nr_data_blocks %" PRIu64 ", model %" PRIu64, tmd_nr_data_blocks(md), p->nr_data);
	REQ(tmd_nr_metadata_blocks(md) == p->meta_blocks &&
	            sbi.metadata_nr_blocks == p->meta_blocks,
	    "nr_metadata_blocks %" PRIu64 " (superblock %" PRIu64 "), model %" PRIu64,
	    tmd_nr_metadata_blocks(md), sbi.metadata_nr_blocks, p->meta_blocks);
}

/* The committed file, through the independent checker. */
static void verify_disk(const char *meta, struct tmd *md, const struct pstate *p)
{
	struct tp_dev *dev;
	int r = tp_dev_open_file(meta, TP_DEV_RDONLY, 0, &dev);
	REQ(r == 0, "reopening the metadata file read-only = %d", r);
	uint32_t *dc = NULL;
	uint64_t nd = 0;
	struct mu_thin_summary sum;
	char err[1024];
	r = mu_check_thin(dev, &dc, &nd, &sum, err, sizeof(err));
	tp_dev_close(dev);
	REQ(r == 0, "on-disk check: %s", err);
	REQ(nd == p->nr_data, "on-disk data map size %" PRIu64 ", model %" PRIu64, nd, p->nr_data);
	REQ(sum.nr_devices == p->n, "on disk %" PRIu64 " devices, model %zu", sum.nr_devices, p->n);
	uint64_t maps = 0;
	for (size_t i = 0; i < p->n; i++)
		maps += p->devs[i].nr;
	REQ(sum.nr_mappings == maps, "on disk %" PRIu64 " mappings, model %" PRIu64,
	    sum.nr_mappings, maps);
	REQ(sum.held_root == tmd_metadata_snap(md), "on-disk held root %" PRIu64 ", live %" PRIu64,
	    sum.held_root, tmd_metadata_snap(md));
	/* the live map must agree exactly (per-leaf counts) after a commit */
	for (uint64_t b = 0; b < nd; b++) {
		uint32_t c;
		REQ(tmd_data_count(md, b, &c) == 0 && c == dc[b],
		    "data block %" PRIu64 ": live count %u, on disk %u", b, c, dc[b]);
	}
	REQ(tmd_nr_free_metadata_blocks(md) == tmd_nr_metadata_blocks(md) - sum.nr_meta_used,
	    "metadata nr_free %" PRIu64 ", expected %" PRIu64, tmd_nr_free_metadata_blocks(md),
	    tmd_nr_metadata_blocks(md) - sum.nr_meta_used);
	free(dc);
}

/* ---- the random run ---- */

struct stats {
	uint64_t creates, snaps, deletes, provisions, overwrites, clones, removes, ranges, commits,
	        aborts, reopens, reserves, releases, max_depth, max_devs, max_maps, enospc,
	        shared_checked, max_dev_maps, data_resizes, meta_resizes;
};

static uint64_t pick_vblock(struct mu_rng *rng, const struct mdev *d, bool existing)
{
	if (existing && d->nr)
		return d->a[mu_below(rng, d->nr)].v;
	if (mu_pct(rng, 3))
		return (1ull << 32) + mu_below(rng, 1u << 20); /* far out */
	return mu_below(rng, VSPACE);
}

static uint64_t new_dev_id(struct mu_rng *rng, struct pstate *p)
{
	for (;;) {
		uint64_t id =
		        mu_pct(rng, 90) ? mu_below(rng, 64) : mu_below(rng, THIN_MAX_DEV_ID + 1);
		if (!ps_dev(p, id))
			return id;
	}
}

static void remove_dev(struct pstate *p, struct mdev *d)
{
	size_t i = (size_t)(d - p->devs);
	struct mdev tmp = p->devs[i];
	p->devs[i] = p->devs[p->n - 1];
	p->devs[p->n - 1] = tmp;
	p->devs[p->n - 1].nr = 0;
	p->n--;
}

START_TEST(test_model_random)
{
	const char *name = "thin-model";
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	set_ctx(name, 0, "format");
	char meta[PATH_MAX + 32];
	snprintf(meta, sizeof(meta), "%s/meta.bin", g_dir);
	remove(meta);
	struct tp_dev *dev;
	REQ(tp_dev_open_file(meta, TP_DEV_CREATE, META_BYTES0, &dev) == 0, "create %s", meta);
	struct tmd_open_args args = { .meta = dev, .cache_blocks = 256 };
	struct tmd *md;
	char err[512];
	int r = tmd_format(&args, 128, NR_DATA0, &md, err, sizeof(err));
	REQ(r == 0, "tmd_format = %d: %s", r, err);

	struct pstate *p = calloc(1, sizeof(*p)), *cp = calloc(1, sizeof(*cp));
	struct refs rf = { calloc(MAX_DATA, 4), calloc(MAX_DATA, 1), calloc(MAX_DATA, 4),
		           calloc(MAX_DATA, 1) };
	ck_assert(p && cp && rf.cur && rf.held && rf.ccur && rf.cheld);
	p->nr_data = cp->nr_data = NR_DATA0;
	p->meta_blocks = cp->meta_blocks = META_BYTES0 / 4096;
	verify_full(md, p, &rf);
	verify_disk(meta, md, p);
	run_tools(meta, p, 0);

	struct stats st = { 0 };
	const uint64_t ops = mu_scaled(20000, 500);
	uint64_t next_tools = 300;
	bool check_after_commit = false;
	for (uint64_t op = 1; op <= ops; op++) {
		unsigned c = (unsigned)mu_below(&rng, 1000);
		/* devs[0] is a hot device that grows big (multi-level subtrees) */
		struct mdev *d = !p->n            ? NULL :
		                 mu_pct(&rng, 35) ? &p->devs[0] :
		                                    &p->devs[mu_below(&rng, p->n)];
		bool committed_now = false;

		unsigned p_del = p->n > 20 ? 45 : 41; /* delete: 0.5% or 0.1% */
		if (c >= p_del && c < 70)
			c = 380; /* an overwrite instead */
		if (c >= 975)
			c = 100 + c - 975; /* a provision instead */
		/* grow the metadata device ahead of need */
		if (tmd_nr_free_metadata_blocks(md) < tmd_nr_metadata_blocks(md) / 3)
			c = 974;
		if (c < 15 || !d) {
			set_ctx(name, op, "create_thin");
			if (p->n == MAX_DEVS)
				continue;
			uint64_t id = new_dev_id(&rng, p);
			r = tmd_create_thin(md, id);
			REQ(r == 0, "create_thin %" PRIu64 " = %d (%s)", id, r, tmd_error(md));
			struct mdev *nd = &p->devs[p->n++];
			nd->id = id;
			nd->det = (struct thin_details){ 0, p->trans, p->time, p->time };
			nd->depth = 0;
			nd->nr = 0;
			if (d)
				REQ(tmd_create_thin(md, d->id) == -EEXIST,
				    "create_thin of existing id");
			REQ(tmd_create_thin(md, THIN_MAX_DEV_ID + 1) == -EINVAL,
			    "create_thin of a 25-bit id");
			st.creates++;
		} else if (c < 40) {
			set_ctx(name, op, "create_snap");
			if (p->n == MAX_DEVS)
				continue;
			/* prefer deep origins to build long chains */
			struct mdev *o = d;
			if (mu_pct(&rng, 60))
				for (size_t i = 0; i < p->n; i++)
					if (p->devs[i].depth > o->depth &&
					    p->devs[i].depth < MAX_DEPTH)
						o = &p->devs[i];
			if (o->depth >= MAX_DEPTH)
				continue;
			uint64_t id = new_dev_id(&rng, p);
			r = tmd_create_snap(md, id, o->id);
			REQ(r == 0, "create_snap %" PRIu64 " of %" PRIu64 " = %d (%s)", id, o->id,
			    r, tmd_error(md));
			p->time++;
			struct mdev *nd = &p->devs[p->n++];
			size_t oi = (size_t)(o - p->devs);
			mdev_copy(nd, &p->devs[oi]);
			o = &p->devs[oi];
			nd->id = id;
			nd->depth = o->depth + 1;
			nd->det = (struct thin_details){ o->det.mapped_blocks, p->trans, p->time,
				                         p->time };
			o->det.snapshotted_time = p->time;
			for (size_t j = 0; j < nd->nr; j++)
				rf.cur[nd->a[j].d]++;
			/* everything the snapshot sees is shared, in both */
			for (int k = 0; k < 4 && nd->nr; k++) {
				struct mmap *mm = &nd->a[mu_below(&rng, nd->nr)];
				struct thin_mapping tm;
				REQ(tmd_lookup(md, id, mm->v, &tm) == 0 && tm.shared &&
				            tm.data_block == mm->d,
				    "snapshot %" PRIu64 " vblock %" PRIu64
				    ": shared=%d block %" PRIu64,
				    id, mm->v, tm.shared, tm.data_block);
				REQ(tmd_lookup(md, o->id, mm->v, &tm) == 0 && tm.shared,
				    "origin %" PRIu64 " vblock %" PRIu64
				    " not shared after a snapshot",
				    o->id, mm->v);
				st.shared_checked++;
			}
			if (!ps_dev(p, 1u << 23) && p->n < MAX_DEVS) {
				uint64_t x = new_dev_id(&rng, p);
				r = tmd_create_snap(md, x, 1u << 23);
				REQ(r == -ENODATA, "snapshot of a missing origin = %d", r);
				REQ(!dev_there(md, x), "failed snapshot created a device");
			}
			if (nd->depth > st.max_depth)
				st.max_depth = nd->depth;
			st.snaps++;
		} else if (c < 70) {
			set_ctx(name, op, "delete_thin");
			if (d == &p->devs[0] && p->n > 1 && mu_pct(&rng, 95))
				d = &p->devs[1 + mu_below(&rng, p->n - 1)]; /* spare the hot one */
			r = tmd_delete_thin(md, d->id);
			REQ(r == 0, "delete %" PRIu64 " = %d (%s)", d->id, r, tmd_error(md));
			for (size_t j = 0; j < d->nr; j++)
				rf.cur[d->a[j].d]--;
			uint64_t id = d->id;
			remove_dev(p, d);
			REQ(tmd_delete_thin(md, id) == -ENODATA, "second delete");
			REQ(!dev_there(md, id), "deleted device exists");
			st.deletes++;
		} else if (c < 520) {
			/* provision (new vblock) or overwrite (CoW-like: a new block
			 * replaces the old one) */
			bool over = c >= 380 && d->nr;
			if (!over && mu_pct(&rng, 40))
				d = &p->devs[0];
			set_ctx(name, op, over ? "overwrite" : "provision");
			uint64_t v = pick_vblock(&rng, d, over);
			uint64_t b = UINT64_MAX;
			r = tmd_alloc_data_block(md, &b);
			if (r == -ENOSPC) {
				for (uint64_t x = 0; x < p->nr_data; x++)
					REQ(rf.cur[x] || rf.held[x] || rf.ccur[x] || rf.cheld[x],
					    "ENOSPC with data block %" PRIu64 " free", x);
				st.enospc++;
				continue;
			}
			REQ(r == 0, "alloc_data_block = %d (%s)", r, tmd_error(md));
			REQ(b < p->nr_data && !rf.cur[b] && !rf.held[b],
			    "allocated data block %" PRIu64 " is in use", b);
			REQ(!rf.ccur[b] && !rf.cheld[b],
			    "allocated data block %" PRIu64
			    " is still mapped in the committed state (freed in this transaction)",
			    b);
			struct mmap *old = mm_find(d, v);
			r = tmd_insert(md, d->id, v, b);
			REQ(r == 0, "insert %" PRIu64 ":%" PRIu64 " -> %" PRIu64 " = %d (%s)",
			    d->id, v, b, r, tmd_error(md));
			if (old) {
				rf.cur[old->d]--;
				st.overwrites++;
			} else {
				d->det.mapped_blocks++;
				st.provisions++;
			}
			rf.cur[b]++;
			mm_set(d, v, b, p->time);
			struct thin_mapping tm;
			REQ(tmd_lookup(md, d->id, v, &tm) == 0 && tm.data_block == b &&
			            tm.time == p->time && !tm.shared,
			    "lookup after insert: block %" PRIu64 " time %u shared %d",
			    tm.data_block, tm.time, tm.shared);
		} else if (c < 540) {
			/* map an already mapped block elsewhere (restore-style) */
			set_ctx(name, op, "clone");
			struct mdev *src = &p->devs[mu_below(&rng, p->n)];
			if (!src->nr)
				continue;
			uint64_t b = src->a[mu_below(&rng, src->nr)].d;
			uint64_t v = pick_vblock(&rng, d, mu_pct(&rng, 30));
			struct mmap *old = mm_find(d, v);
			if (old && old->d == b)
				continue; /* same block: the tree keeps the old reference */
			r = tmd_data_inc(md, b);
			REQ(r == 0, "data_inc %" PRIu64 " = %d", b, r);
			r = tmd_insert(md, d->id, v, b);
			REQ(r == 0, "insert = %d (%s)", r, tmd_error(md));
			if (old)
				rf.cur[old->d]--;
			else
				d->det.mapped_blocks++;
			rf.cur[b]++;
			mm_set(d, v, b, p->time);
			st.clones++;
		} else if (c < 640) {
			set_ctx(name, op, "remove");
			bool present = mu_pct(&rng, 80);
			uint64_t v = pick_vblock(&rng, d, present);
			struct mmap *old = mm_find(d, v);
			r = tmd_remove(md, d->id, v);
			if (old) {
				REQ(r == 0, "remove %" PRIu64 ":%" PRIu64 " = %d (%s)", d->id, v, r,
				    tmd_error(md));
				rf.cur[old->d]--;
				size_t i = (size_t)(old - d->a);
				mu_memmove(&d->a[i], &d->a[i + 1], (d->nr - i - 1) * sizeof(*d->a));
				d->nr--;
				d->det.mapped_blocks--;
				st.removes++;
			} else {
				REQ(r == -ENODATA,
				    "remove of unmapped %" PRIu64 ":%" PRIu64 " = %d", d->id, v, r);
			}
			struct thin_mapping tm;
			REQ(tmd_lookup(md, d->id, v, &tm) == -ENODATA, "lookup after remove");
		} else if (c < 655) {
			set_ctx(name, op, "remove_range");
			uint64_t begin = pick_vblock(&rng, d, mu_pct(&rng, 50));
			unsigned k = (unsigned)mu_below(&rng, 100);
			uint64_t len = k < 2  ? mu_below(&rng, 1ull << 40) :
			               k < 10 ? mu_below(&rng, 2000) :
			                        mu_below(&rng, 64);
			uint64_t end = begin + len, n = 12345;
			r = tmd_remove_range(md, d->id, begin, end, &n);
			REQ(r == 0, "remove_range = %d (%s)", r, tmd_error(md));
			size_t i = mm_lb(d, begin), j = mm_lb(d, end);
			REQ(n == j - i,
			    "remove_range [%" PRIu64 ", %" PRIu64 ") removed %" PRIu64
			    ", model %zu",
			    begin, end, n, j - i);
			for (size_t k = i; k < j; k++)
				rf.cur[d->a[k].d]--;
			mu_memmove(&d->a[i], &d->a[j], (d->nr - j) * sizeof(*d->a));
			d->nr -= j - i;
			d->det.mapped_blocks -= j - i;
			st.ranges++;
		} else if (c < 900) {
			set_ctx(name, op, "query");
			uint64_t v = pick_vblock(&rng, d, mu_pct(&rng, 60));
			struct thin_mapping tm;
			unsigned q = (unsigned)mu_below(&rng, 3);
			if (q == 0) {
				struct mmap *mm = mm_find(d, v);
				r = tmd_lookup(md, d->id, v, &tm);
				REQ(r == (mm ? 0 : -ENODATA), "lookup %" PRIu64 ":%" PRIu64 " = %d",
				    d->id, v, r);
				if (mm) {
					REQ(tm.data_block == mm->d && tm.time == mm->t,
					    "lookup %" PRIu64 ":%" PRIu64 " = %" PRIu64
					    "@%u, model %" PRIu64 "@%u",
					    d->id, v, tm.data_block, tm.time, mm->d, mm->t);
					REQ(tm.shared == (mm->t < d->det.snapshotted_time),
					    "lookup %" PRIu64 ":%" PRIu64
					    ": shared=%d, time %u, snapshotted %u",
					    d->id, v, tm.shared, mm->t, d->det.snapshotted_time);
				}
			} else if (q == 1) {
				size_t i = mm_lb(d, v);
				uint64_t f = 0;
				r = tmd_lookup_next(md, d->id, v, &f, &tm);
				if (i < d->nr)
					REQ(r == 0 && f == d->a[i].v &&
					            tm.data_block == d->a[i].d &&
					            tm.time == d->a[i].t &&
					            tm.shared ==
					                    (d->a[i].t < d->det.snapshotted_time),
					    "lookup_next %" PRIu64 ":%" PRIu64 " = %d at %" PRIu64
					    ", model %" PRIu64,
					    d->id, v, r, f, d->a[i].v);
				else
					REQ(r == -ENODATA, "lookup_next past the end = %d", r);
			} else {
				check_details(md, d);
				uint64_t missing = 1u << 23;
				if (!ps_dev(p, missing)) {
					REQ(tmd_lookup(md, missing, 0, &tm) == -ENODATA,
					    "lookup in missing device");
					REQ(tmd_insert(md, missing, 0, 0) == -ENODATA,
					    "insert into missing device");
					REQ(tmd_remove(md, missing, 0) == -ENODATA,
					    "remove from missing device");
				}
			}
		} else if (c < 920) {
			set_ctx(name, op, "set_transaction_id");
			uint64_t next = p->trans + 1 + mu_below(&rng, 3);
			REQ(tmd_set_transaction_id(md, p->trans + 1, next) == -EINVAL,
			    "set_transaction_id with a wrong current id");
			r = tmd_set_transaction_id(md, p->trans, next);
			REQ(r == 0, "set_transaction_id = %d (%s)", r, tmd_error(md));
			p->trans = next;
		} else if (c < 935) {
			if (!p->held) {
				set_ctx(name, op, "reserve_metadata_snap");
				r = tmd_reserve_metadata_snap(md);
				REQ(r == 0, "reserve = %d (%s)", r, tmd_error(md));
				/* it commits first, then holds what it committed */
				ps_copy(cp, p);
				memcpy(rf.ccur, rf.cur, MAX_DATA * 4);
				memcpy(rf.cheld, rf.held, MAX_DATA);
				struct pstate *hs = calloc(1, sizeof(*hs));
				ck_assert(hs);
				ps_copy(hs, p); /* p has no snapshot here */
				p->held = true;
				p->held_state = hs;
				refs_recompute(&rf, p);
				REQ(tmd_reserve_metadata_snap(md) == -EBUSY, "second reserve");
				st.reserves++;
			} else {
				set_ctx(name, op, "release_metadata_snap");
				r = tmd_release_metadata_snap(md);
				REQ(r == 0, "release = %d (%s)", r, tmd_error(md));
				p->held = false;
				ps_free(p->held_state);
				free(p->held_state);
				p->held_state = NULL;
				refs_recompute(&rf, p);
				REQ(tmd_release_metadata_snap(md) == -EINVAL, "second release");
				st.releases++;
			}
		} else if (c < 960) {
			set_ctx(name, op, "commit");
			r = tmd_commit(md);
			REQ(r == 0, "commit = %d (%s)", r, tmd_error(md));
			committed_now = true;
			st.commits++;
		} else if (c < 966) {
			set_ctx(name, op, "abort");
			r = tmd_abort(md);
			REQ(r == 0, "abort = %d (%s)", r, tmd_error(md));
			ps_copy(p, cp);
			memcpy(rf.cur, rf.ccur, MAX_DATA * 4);
			memcpy(rf.held, rf.cheld, MAX_DATA);
			verify_full(md, p, &rf);
			st.aborts++;
		} else if (c < 972) {
			set_ctx(name, op, "close+reopen");
			r = tmd_close(md);
			REQ(r == 0, "close = %d", r);
			r = tmd_open(&args, &md, err, sizeof(err));
			REQ(r == 0, "reopen = %d: %s", r, err);
			committed_now = true;
			st.reopens++;
		} else if (c < 974) {
			set_ctx(name, op, "resize_data");
			if (p->nr_data == MAX_DATA)
				continue;
			uint64_t nr = p->nr_data + 1 + mu_below(&rng, 10000);
			if (nr > MAX_DATA)
				nr = MAX_DATA;
			REQ(tmd_resize_data(md, p->nr_data - 1) == -EINVAL,
			    "shrinking the data device");
			r = tmd_resize_data(md, nr);
			REQ(r == 0, "resize_data %" PRIu64 " = %d (%s)", nr, r, tmd_error(md));
			p->nr_data = nr;
			st.data_resizes++;
		} else {
			set_ctx(name, op, "resize_metadata");
			uint64_t size = dev->size + (8ull << 20);
			if (size > META_BYTES_MAX)
				continue;
			r = tp_dev_resize(dev, size);
			REQ(r == 0, "growing the metadata file = %d", r);
			r = tmd_resize_metadata(md);
			REQ(r == 0, "resize_metadata = %d (%s)", r, tmd_error(md));
			p->meta_blocks = size / 4096;
			st.meta_resizes++;
		}
		if (committed_now) {
			ps_copy(cp, p);
			memcpy(rf.ccur, rf.cur, MAX_DATA * 4);
			memcpy(rf.cheld, rf.held, MAX_DATA);
			verify_full(md, p, &rf);
			verify_disk(meta, md, p);
			if (op >= next_tools || check_after_commit) {
				run_tools(meta, p, tmd_metadata_snap(md));
				next_tools = op + 300 + mu_below(&rng, 300);
				check_after_commit = false;
			}
		} else if (op >= next_tools) {
			check_after_commit = true; /* at the next commit */
		}
		if (p->n > st.max_devs)
			st.max_devs = p->n;
		uint64_t maps = 0;
		for (size_t i = 0; i < p->n; i++) {
			maps += p->devs[i].nr;
			if (p->devs[i].nr > st.max_dev_maps)
				st.max_dev_maps = p->devs[i].nr;
		}
		if (maps > st.max_maps)
			st.max_maps = maps;
	}

	/* the end: commit, check, then delete everything and check it is all free */
	set_ctx(name, ops + 1, "final");
	REQ(tmd_commit(md) == 0, "final commit: %s", tmd_error(md));
	ps_copy(cp, p);
	memcpy(rf.ccur, rf.cur, MAX_DATA * 4);
	memcpy(rf.cheld, rf.held, MAX_DATA);
	verify_full(md, p, &rf);
	verify_disk(meta, md, p);
	run_tools(meta, p, tmd_metadata_snap(md));
	while (p->n) {
		REQ(tmd_delete_thin(md, p->devs[0].id) == 0, "delete: %s", tmd_error(md));
		remove_dev(p, &p->devs[0]);
	}
	if (p->held) {
		REQ(tmd_release_metadata_snap(md) == 0, "release: %s", tmd_error(md));
		p->held = false;
		ps_free(p->held_state);
		free(p->held_state);
		p->held_state = NULL;
	}
	REQ(tmd_commit(md) == 0, "commit: %s", tmd_error(md));
	refs_recompute(&rf, p);
	verify_full(md, p, &rf);
	verify_disk(meta, md, p);
	for (uint64_t b = 0; b < p->nr_data; b++) {
		uint32_t cnt;
		REQ(tmd_data_count(md, b, &cnt) == 0 && cnt == 0, "data block %" PRIu64 " count %u",
		    b, cnt);
	}
	REQ(tmd_nr_free_data_blocks(md) == p->nr_data, "nr_free_data %" PRIu64 " of %" PRIu64,
	    tmd_nr_free_data_blocks(md), p->nr_data);
	run_tools(meta, p, 0);
	REQ(tmd_close(md) == 0, "close");
	tp_dev_close(dev);

	fprintf(stderr,
	        "%s: %" PRIu64 " ops: %" PRIu64 " creates, %" PRIu64
	        " snapshots (max depth %" PRIu64 "), %" PRIu64 " deletes, %" PRIu64
	        " provisions, %" PRIu64 " overwrites, %" PRIu64 " clones, %" PRIu64
	        " removes, %" PRIu64 " range removes, %" PRIu64 " commits, %" PRIu64
	        " aborts, %" PRIu64 " reopens, %" PRIu64 " metadata snaps (%" PRIu64
	        " released), %" PRIu64 " ENOSPC, %" PRIu64 " data / %" PRIu64
	        " metadata resizes, max %" PRIu64 " devices / %" PRIu64 " mappings (%" PRIu64
	        " in one), %" PRIu64 " shared checks, %" PRIu64 " thin_check+thin_dump runs\n",
	        name, ops, st.creates, st.snaps, st.max_depth, st.deletes, st.provisions,
	        st.overwrites, st.clones, st.removes, st.ranges, st.commits, st.aborts, st.reopens,
	        st.reserves, st.releases, st.enospc, st.data_resizes, st.meta_resizes, st.max_devs,
	        st.max_maps, st.max_dev_maps, st.shared_checked, g_tool_runs);
	ps_free(p);
	ps_free(cp);
	free(p);
	free(cp);
	free(rf.cur);
	free(rf.held);
	free(rf.ccur);
	free(rf.cheld);
	remove(meta);
}
END_TEST

/* Metadata formatted on an in-memory device of META_BYTES: 64 KiB data blocks, NR_DATA of
 * them. */
static struct tmd *format_mem(uint64_t meta_bytes, uint64_t nr_data, struct tp_dev **dev)
{
	char err[512];
	struct tmd *md;
	REQ(tp_dev_open_mem(meta_bytes, dev) == 0, "mem dev");
	struct tmd_open_args args = { .meta = *dev };
	REQ(tmd_format(&args, 128, nr_data, &md, err, sizeof(err)) == 0, "format: %s", err);
	return md;
}

/* Running out of data space is an ordinary error: nothing fails, freed
 * blocks come back after the commit. */
START_TEST(test_data_enospc)
{
	set_ctx("data-enospc", 0, "");
	struct tp_dev *dev;
	struct tmd *md = format_mem(4ull << 20, 64, &dev);
	char err[512];
	REQ(tmd_create_thin(md, 7) == 0, "create");
	uint64_t b, v = 0;
	int r;
	while ((r = tmd_alloc_data_block(md, &b)) == 0)
		REQ(tmd_insert(md, 7, v++, b) == 0, "insert: %s", tmd_error(md));
	REQ(r == -ENOSPC && v == 64, "alloc = %d after %" PRIu64 " blocks", r, v);
	REQ(tmd_nr_free_data_blocks(md) == 0, "nr_free %" PRIu64, tmd_nr_free_data_blocks(md));
	REQ(tmd_commit(md) == 0, "commit after ENOSPC: %s", tmd_error(md));
	/* unmap half: not reusable until committed */
	uint64_t n;
	REQ(tmd_remove_range(md, 7, 0, 32, &n) == 0 && n == 32, "remove_range");
	REQ(tmd_nr_free_data_blocks(md) == 32, "nr_free %" PRIu64, tmd_nr_free_data_blocks(md));
	REQ(tmd_alloc_data_block(md, &b) == -ENOSPC, "reused a block freed in this transaction");
	REQ(tmd_commit(md) == 0, "commit: %s", tmd_error(md));
	for (int i = 0; i < 32; i++) {
		REQ(tmd_alloc_data_block(md, &b) == 0 && b < 32, "alloc after commit: %" PRIu64, b);
		REQ(tmd_insert(md, 7, 1000 + (uint64_t)i, b) == 0, "insert");
	}
	REQ(tmd_alloc_data_block(md, &b) == -ENOSPC, "full again");
	REQ(tmd_commit(md) == 0, "commit");
	uint32_t *dc = NULL;
	uint64_t nd;
	struct mu_thin_summary sum;
	REQ(mu_check_thin(dev, &dc, &nd, &sum, err, sizeof(err)) == 0, "on-disk check: %s", err);
	REQ(sum.nr_data_used == 64 && sum.nr_mappings == 64, "used %" PRIu64 " mappings %" PRIu64,
	    sum.nr_data_used, sum.nr_mappings);
	free(dc);
	tmd_close(md);
	tp_dev_close(dev);
}
END_TEST

static int count_fn(void *ctx, uint64_t v, uint64_t b, uint32_t t)
{
	(void)v;
	(void)b;
	(void)t;
	(*(uint64_t *)ctx)++;
	return 0;
}

static uint64_t nr_mapped(struct tmd *md, uint64_t dev)
{
	uint64_t n = 0;
	REQ(tmd_walk_mappings(md, dev, count_fn, &n) == 0, "walk %" PRIu64 ": %s", dev,
	    tmd_error(md));
	return n;
}

/* Running out of metadata space in the middle of an insert: the btree is
 * left half-updated (in the case built here, device 1's committed root has
 * been shadowed — its count dropped to 0 — but the top-level tree still
 * points to it). Whatever the library does next, a commit that succeeds
 * must write a consistent image; the kernel aborts the transaction on any
 * metadata failure. */
START_TEST(test_metadata_enospc)
{
	set_ctx("metadata-enospc", 0, "");
	const uint64_t blocks = 24;
	struct tp_dev *dev;
	struct tmd *md = format_mem(blocks * 4096, 4096, &dev);
	char err[512];
	REQ(tmd_create_thin(md, 1) == 0 && tmd_create_thin(md, 2) == 0, "create");
	uint64_t b;
	for (uint64_t v = 0; v < 252; v++) /* device 1's root leaf: full */
		REQ(tmd_alloc_data_block(md, &b) == 0 && tmd_insert(md, 1, v, b) == 0, "fill: %s",
		    tmd_error(md));
	REQ(tmd_commit(md) == 0, "commit");
	/* find the fewest device-2 mappings after which one more device-1
	 * mapping (which splits its root) runs out of metadata space */
	uint64_t lo = 0, hi = 4096;
	int r = 0;
	while (lo < hi) {
		uint64_t k = (lo + hi) / 2;
		REQ(tmd_abort(md) == 0, "abort: %s", tmd_error(md));
		bool fits = true;
		for (uint64_t i = 0; i < k && fits; i++) {
			REQ(tmd_alloc_data_block(md, &b) == 0, "alloc");
			fits = tmd_insert(md, 2, i, b) == 0;
		}
		if (fits) {
			REQ(tmd_alloc_data_block(md, &b) == 0, "alloc");
			r = tmd_insert(md, 1, 1000, b);
		}
		if (fits && r == 0)
			lo = k + 1;
		else
			hi = k;
	}
	set_ctx("metadata-enospc", lo, "");
	REQ(tmd_abort(md) == 0, "abort: %s", tmd_error(md));
	for (uint64_t i = 0; i < lo; i++)
		REQ(tmd_alloc_data_block(md, &b) == 0 && tmd_insert(md, 2, i, b) == 0,
		    "device 2 mapping %" PRIu64 ": %s", i, tmd_error(md));
	REQ(tmd_alloc_data_block(md, &b) == 0, "alloc");
	r = tmd_insert(md, 1, 1000, b);
	REQ(r == -ENOSPC, "insert after %" PRIu64 " device-2 mappings = %d, expected ENOSPC", lo,
	    r);
	/* free metadata blocks of this transaction and try to commit */
	uint64_t n;
	(void)tmd_data_dec(md, b);
	(void)tmd_remove_range(md, 2, 0, 1ull << 30, &n);
	r = tmd_commit(md);
	if (r == 0) {
		uint32_t *dc = NULL;
		uint64_t nd;
		struct mu_thin_summary sum;
		int c = mu_check_thin(dev, &dc, &nd, &sum, err, sizeof(err));
		free(dc);
		REQ(c == 0,
		    "tmd_insert failed with ENOSPC (device 1's root split after %" PRIu64
		    " device-2 mappings in a %" PRIu64 "-block metadata device), then "
		    "remove_range + tmd_commit succeeded and wrote a corrupt image: %s",
		    lo, blocks, err);
	} else {
		REQ(tmd_abort(md) == 0, "abort after the refused commit: %s", tmd_error(md));
		REQ(nr_mapped(md, 1) == 252 && nr_mapped(md, 2) == 0, "state after abort");
		REQ(tmd_commit(md) == 0, "commit after abort: %s", tmd_error(md));
		uint32_t *dc = NULL;
		uint64_t nd;
		struct mu_thin_summary sum;
		REQ(mu_check_thin(dev, &dc, &nd, &sum, err, sizeof(err)) == 0, "on-disk check: %s",
		    err);
		free(dc);
	}
	tmd_close_nocommit(md);
	tp_dev_close(dev);
}
END_TEST

/* The shared flag in a snapshot chain, step by step. */
START_TEST(test_shared_flag)
{
	set_ctx("shared-flag", 0, "");
	struct tp_dev *dev;
	struct tmd *md = format_mem(8ull << 20, 1000, &dev);
	char err[512];
	uint64_t b[8];
	REQ(tmd_create_thin(md, 1) == 0, "create");
	for (int i = 0; i < 4; i++) {
		REQ(tmd_alloc_data_block(md, &b[i]) == 0, "alloc");
		REQ(tmd_insert(md, 1, (uint64_t)i, b[i]) == 0, "insert");
	}
	struct thin_mapping m;
	REQ(tmd_lookup(md, 1, 0, &m) == 0 && !m.shared && m.time == 0, "fresh mapping shared");
	REQ(tmd_create_snap(md, 2, 1) == 0, "snap: %s", tmd_error(md));
	for (uint64_t v = 0; v < 4; v++) {
		REQ(tmd_lookup(md, 1, v, &m) == 0 && m.shared, "origin %" PRIu64 " not shared", v);
		REQ(tmd_lookup(md, 2, v, &m) == 0 && m.shared && m.data_block == b[v],
		    "snapshot %" PRIu64 " not shared", v);
	}
	/* rewrite vblock 0 in the snapshot: private there, still shared in the origin */
	REQ(tmd_alloc_data_block(md, &b[4]) == 0, "alloc");
	REQ(tmd_insert(md, 2, 0, b[4]) == 0, "insert");
	REQ(tmd_lookup(md, 2, 0, &m) == 0 && !m.shared && m.data_block == b[4] && m.time == 1,
	    "rewritten snapshot block: shared=%d time %u", m.shared, m.time);
	REQ(tmd_lookup(md, 1, 0, &m) == 0 && m.shared && m.data_block == b[0], "origin block");
	/* a snapshot of the snapshot: everything shared again in both */
	REQ(tmd_create_snap(md, 3, 2) == 0, "snap of snap");
	REQ(tmd_lookup(md, 2, 0, &m) == 0 && m.shared, "re-snapshotted block not shared");
	REQ(tmd_lookup(md, 3, 0, &m) == 0 && m.shared && m.data_block == b[4],
	    "snap-of-snap block");
	/* the origin was not snapshotted again: its rewrites are private */
	REQ(tmd_alloc_data_block(md, &b[5]) == 0, "alloc");
	REQ(tmd_insert(md, 1, 1, b[5]) == 0, "insert");
	REQ(tmd_lookup(md, 1, 1, &m) == 0 && !m.shared && m.time == 2, "origin rewrite: shared=%d",
	    m.shared);
	struct thin_details d;
	REQ(tmd_get_details(md, 1, &d) == 0 && d.snapshotted_time == 1 && d.creation_time == 0,
	    "origin details %u %u", d.creation_time, d.snapshotted_time);
	REQ(tmd_get_details(md, 3, &d) == 0 && d.snapshotted_time == 2 && d.creation_time == 2 &&
	            d.mapped_blocks == 4,
	    "snap-of-snap details");
	/* data counts: shared leaves keep count 1 until a shadow splits them */
	REQ(tmd_commit(md) == 0, "commit");
	for (int i = 0; i < 6; i++) {
		uint32_t c;
		REQ(tmd_data_count(md, b[i], &c) == 0 && c >= 1, "block %" PRIu64 " count %u", b[i],
		    c);
	}
	uint32_t *dc = NULL;
	uint64_t nd;
	struct mu_thin_summary sum;
	REQ(mu_check_thin(dev, &dc, &nd, &sum, err, sizeof(err)) == 0, "on-disk check: %s", err);
	REQ(sum.nr_devices == 3 && sum.nr_mappings == 12, "devices %" PRIu64 " mappings %" PRIu64,
	    sum.nr_devices, sum.nr_mappings);
	free(dc);
	tmd_close(md);
	tp_dev_close(dev);
}
END_TEST

/* A reference count found wrong in the middle of an operation (here: a mapping whose data
 * block the space map holds free, so removing the mapping decrements a free block) is a
 * metadata bug, not a user error: the transaction is failed, refuses further changes and is
 * never committed; the last commit stays what the device holds. */
START_TEST(test_refcount_bug_fails_transaction)
{
	set_ctx("refcount-bug", 0, "");
	struct tp_dev *dev;
	struct tmd *md = format_mem(8ull << 20, 1000, &dev);
	char err[512];
	uint64_t b;
	REQ(tmd_create_thin(md, 1) == 0, "create");
	REQ(tmd_alloc_data_block(md, &b) == 0, "alloc");
	REQ(tmd_insert(md, 1, 0, b) == 0, "insert");
	REQ(tmd_commit(md) == 0, "commit");
	REQ(tmd_data_dec(md, b) == 0, "the corrupting dec");
	int r = tmd_remove(md, 1, 0);
	REQ(r == -EINVAL, "remove over a free data block: %d (%s)", r, tmd_error(md));
	REQ(tmd_create_thin(md, 2) == -EIO, "a failed transaction took another change");
	REQ(tmd_commit(md) != 0, "a failed transaction was committed");
	tmd_close_nocommit(md);
	/* the device still holds the last commit: thin 1 maps block 0 to b */
	struct tmd_open_args args = { .meta = dev };
	REQ(tmd_open(&args, &md, err, sizeof(err)) == 0, "reopen: %s", err);
	struct thin_mapping m;
	REQ(tmd_lookup(md, 1, 0, &m) == 0 && m.data_block == b, "mapping lost");
	uint32_t c;
	REQ(tmd_data_count(md, b, &c) == 0 && c == 1, "count %u", c);
	bool exists = true;
	REQ(tmd_device_exists(md, 2, &exists) == 0 && !exists, "thin 2 committed");
	tmd_close(md);
	tp_dev_close(dev);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("metadata_model");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 1800);
	tcase_add_test(tc, test_shared_flag);
	tcase_add_test(tc, test_refcount_bug_fails_transaction);
	tcase_add_test(tc, test_data_enospc);
	tcase_add_test(tc, test_metadata_enospc);
	tcase_add_test(tc, test_model_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	su_seed = mu_seed(DEFAULT_SEED);
	fprintf(stderr,
	        "test_metadata_model: seed %" PRIu64 " (THINP_SEED), scale %g (THINP_TEST_SCALE)\n",
	        su_seed, mu_scale());
	int r = mu_mkdtemp(g_dir, sizeof(g_dir), "model");
	if (r) {
		fprintf(stderr, "cannot create a scratch directory: %s\n", strerror(-r));
		return 1;
	}
	g_have_tools = mu_find_prog("thin_check", g_thin_check, sizeof(g_thin_check)) &&
	               mu_find_prog("thin_dump", g_thin_dump, sizeof(g_thin_dump));
	if (!g_have_tools)
		fprintf(stderr,
		        "SKIP: thin_check/thin_dump not found (install thin-provisioning-tools); "
		        "the model test runs without them\n");
	SRunner *sr = srunner_create(model_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	mu_rmtree(g_dir);
	return failed ? 1 : 0;
}
