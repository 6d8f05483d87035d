/* Model-based tests of impl/pdata/btree.c on the real pdata stack (in-memory
 * device, block manager, metadata space map, transaction manager).
 *
 * Seeded random operations are applied both to the btree and to a sorted
 * array, results compared op by op. At every commit the whole tree is
 * walked against the model, and an independent checker (model_util.c)
 * re-reads the device through a cold cache to verify node structure and that
 * every metadata block's reference count equals the number of pointers to
 * it. Values carry a "resource" whose count is kept by the value type's
 * inc/dec callbacks; it must equal the number of leaf entries (in distinct
 * leaf nodes) holding the resource — the dm-thin data-block rule.
 *
 * THINP_SEED overrides the seed, THINP_TEST_SCALE scales the op counts. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pdata/space_map.h"
#include "pdata/transaction_manager.h"
#include "stack_util.h"

#define DEFAULT_SEED 0x7468696e70ull /* "thinp" */
#define META_BLOCKS  20000u
#define NRES         4096u /* value resources */
#define MAX_VS       24u

static int g_max_height; /* deepest tree seen by verify_refs (0 = a leaf root) */

/* ---- the pdata stack ---- */

static void stack_create(struct su_stack *s, uint64_t nr_blocks, size_t cache)
{
	su_stack_create(s, nr_blocks, nr_blocks, cache);
}

/* ---- values with reference-counted resources ---- */

struct res {
	int64_t count[NRES];
	int64_t committed[NRES];
	unsigned errors;
	uint32_t vs;
};

static uint32_t res_of(const void *v)
{
	return le32_get(v) % NRES;
}

static int res_inc(void *ctx, const void *v)
{
	struct res *r = ctx;
	r->count[res_of(v)]++;
	return 0;
}

static int res_dec(void *ctx, const void *v)
{
	struct res *r = ctx;
	if (r->count[res_of(v)] <= 0) {
		r->errors++;
		return -EINVAL;
	}
	r->count[res_of(v)]--;
	return 0;
}

static bool res_equal(void *ctx, const void *a, const void *b)
{
	(void)ctx;
	return res_of(a) == res_of(b);
}

static void make_value(struct mu_rng *rng, uint8_t *v, uint32_t vs)
{
	mu_fill(rng, v, vs);
	uint32_t id = (uint32_t)mu_below(rng, NRES);
	le32_put(v, id + NRES * (uint32_t)mu_below(rng, 1u << 16));
}

/* ---- the model: a sorted array ---- */

struct ent {
	uint64_t key;
	uint8_t v[MAX_VS];
};

struct model {
	struct ent *a;
	size_t nr, cap;
};

static size_t m_lb(const struct model *m, uint64_t key)
{
	size_t lo = 0, hi = m->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->a[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct ent *m_find(struct model *m, uint64_t key)
{
	size_t i = m_lb(m, key);
	return i < m->nr && m->a[i].key == key ? &m->a[i] : NULL;
}

static void m_set(struct model *m, uint64_t key, const uint8_t *v, uint32_t vs)
{
	size_t i = m_lb(m, key);
	if (i < m->nr && m->a[i].key == key) {
		memcpy(m->a[i].v, v, vs);
		return;
	}
	if (m->nr == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->a = realloc(m->a, m->cap * sizeof(*m->a));
		ck_assert(m->a);
	}
	mu_memmove(&m->a[i + 1], &m->a[i], (m->nr - i) * sizeof(*m->a));
	memset(&m->a[i], 0, sizeof(m->a[i]));
	m->a[i].key = key;
	memcpy(m->a[i].v, v, vs);
	m->nr++;
}

static void m_del_at(struct model *m, size_t i)
{
	mu_memmove(&m->a[i], &m->a[i + 1], (m->nr - i - 1) * sizeof(*m->a));
	m->nr--;
}

static void m_copy(struct model *dst, const struct model *src)
{
	if (dst->cap < src->nr) {
		dst->cap = src->nr;
		dst->a = realloc(dst->a, dst->cap * sizeof(*dst->a));
		ck_assert(dst->a);
	}
	if (src->nr)
		memcpy(dst->a, src->a, src->nr * sizeof(*src->a));
	dst->nr = src->nr;
}

static void m_free(struct model *m)
{
	free(m->a);
	memset(m, 0, sizeof(*m));
}

/* ---- comparing a tree with a model ---- */

struct walk_cmp {
	const struct model *m;
	size_t i;
	uint32_t vs;
	int bad;
	char msg[200];
};

static int walk_cmp_fn(void *ctx, uint64_t key, const void *value)
{
	struct walk_cmp *w = ctx;
	if (w->i >= w->m->nr) {
		snprintf(w->msg, sizeof(w->msg), "tree has extra key %" PRIu64 " after %zu entries",
		         key, w->m->nr);
		return w->bad = 1;
	}
	const struct ent *e = &w->m->a[w->i];
	if (e->key != key) {
		snprintf(w->msg, sizeof(w->msg),
		         "entry %zu: tree key %" PRIu64 ", model key %" PRIu64, w->i, key, e->key);
		return w->bad = 1;
	}
	if (memcmp(e->v, value, w->vs)) {
		snprintf(w->msg, sizeof(w->msg), "key %" PRIu64 ": value differs from the model",
		         key);
		return w->bad = 1;
	}
	w->i++;
	return 0;
}

static void walk_compare(struct btree_info *one, uint64_t root, const struct model *m,
                         const char *what)
{
	struct walk_cmp w = { m, 0, one->value_type.size, 0, "" };
	int r = btree_walk(one, root, walk_cmp_fn, &w);
	REQ(!w.bad, "%s: %s", what, w.msg);
	REQ(r == 0, "%s: btree_walk = %d", what, r);
	REQ(w.i == m->nr, "%s: tree has %zu entries, model %zu", what, w.i, m->nr);
}

/* Leaf callback of the checker: expected resource counts per leaf entry. */
struct res_expect {
	int64_t count[NRES];
};

static int res_expect_fn(void *ctx, uint64_t key, const uint8_t *value)
{
	(void)key;
	((struct res_expect *)ctx)->count[res_of(value)]++;
	return 0;
}

/* Right after a commit: check the device against the live stack. ROOTS are
 * the trees (LEVELS levels, bottom value size VS) the test holds; RES (may be
 * NULL) the resource counts their leaves imply. ENTRIES (may be NULL)
 * receives each root's number of bottom entries. */
static void verify_refs(struct su_stack *s, const uint64_t *roots, size_t nroots, unsigned levels,
                        uint32_t vs, const struct res *res, uint64_t *entries)
{
	struct mu_mc mc;
	REQ(mu_mc_init(&mc, s->dev) == 0, "checker init: %s", mc.err);
	struct res_expect *ex = calloc(1, sizeof(*ex));
	ck_assert(ex);
	REQ(mu_mc_ref(&mc, 0, MU_OTHER) == 0, "%s", mc.err);
	for (size_t i = 0; i < nroots; i++) {
		uint64_t n = 0;
		REQ(mu_mc_btree(&mc, roots[i], levels, vs, res_expect_fn, ex, &n) == 0,
		    "tree %zu (root %" PRIu64 "): %s", i, roots[i], mc.err);
		if (entries)
			entries[i] = n;
		if (mc.height[roots[i]] > g_max_height)
			g_max_height = mc.height[roots[i]];
	}
	uint32_t *counts = NULL;
	uint64_t nr = 0;
	REQ(mu_mc_sm_meta(&mc, s->mroot, &counts, &nr) == 0, "metadata space map: %s", mc.err);
	REQ(mu_mc_compare(&mc, counts, nr) == 0, "%s", mc.err);
	REQ(nr == sm_meta_nr_blocks(s->sm), "space map size %" PRIu64 " on disk, %" PRIu64 " live",
	    nr, sm_meta_nr_blocks(s->sm));
	uint64_t used = 0;
	for (uint64_t b = 0; b < nr; b++) {
		REQ(counts[b] == sm_meta_get_count(s->sm, b),
		    "block %" PRIu64 ": count %u on disk, %u live", b, counts[b],
		    sm_meta_get_count(s->sm, b));
		used += counts[b] != 0;
	}
	REQ(sm_meta_nr_free(s->sm) == nr - used, "nr_free %" PRIu64 ", expected %" PRIu64,
	    sm_meta_nr_free(s->sm), nr - used);
	if (res) {
		REQ(res->errors == 0, "%u resource decrements below zero", res->errors);
		for (uint32_t i = 0; i < NRES; i++)
			REQ(res->count[i] == ex->count[i],
			    "resource %u: count %" PRId64 ", %" PRId64 " leaf entries hold it", i,
			    res->count[i], ex->count[i]);
	}
	free(counts);
	free(ex);
	mu_mc_free(&mc);
}

/* ---- single-level random test ---- */

/* Key choice: mostly a key space that fills nodes, sometimes existing keys,
 * runs above the highest key, and keys near 2^64. */
static uint64_t pick_key(struct mu_rng *rng, const struct model *m, uint64_t space)
{
	unsigned c = (unsigned)mu_below(rng, 100);
	if (c < 35 && m->nr)
		return m->a[mu_below(rng, m->nr)].key;
	if (c < 45 && m->nr) {
		uint64_t hi = m->a[m->nr - 1].key;
		return hi + 1 + mu_below(rng, 3) < hi ? hi : hi + 1 + mu_below(rng, 3);
	}
	if (c < 47)
		return UINT64_MAX - mu_below(rng, 64);
	if (c < 49)
		return mu_below(rng, 64);
	return mu_below(rng, space);
}

struct single_cfg {
	const char *name;
	uint32_t vs;
	bool equal;   /* value type has an equal callback */
	size_t cache; /* small: dirty blocks get evicted mid-transaction */
	uint64_t seed_salt;
	uint64_t ops;
	uint64_t meta_blocks; /* 0: META_BLOCKS */
	uint64_t target;      /* entries to grow to; 0: three levels deep */
	uint64_t space;       /* key space; 0: 2^20 */
	unsigned abort_pct;   /* of commit points that abort instead; 0: 10 */
};

static void run_single(const struct single_cfg *cfg)
{
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ cfg->seed_salt);
	su_set_ctx(cfg->name, 0);

	struct su_stack s;
	stack_create(&s, cfg->meta_blocks ? cfg->meta_blocks : META_BLOCKS, cfg->cache);
	struct res *res = calloc(1, sizeof(*res));
	ck_assert(res);
	res->vs = cfg->vs;
	struct btree_info info = {
		s.tm, 1, { res, cfg->vs, res_inc, res_dec, cfg->equal ? res_equal : NULL }
	};

	uint64_t root, committed_root;
	REQ0(btree_empty(&info, &root));
	struct model m = { 0 }, cm = { 0 };
	su_stack_commit(&s);
	committed_root = root;
	verify_refs(&s, &root, 1, 1, cfg->vs, res, NULL);

	const uint64_t ops = cfg->ops;
	/* Phases: grow until the tree is three levels deep (about max^2
	 * entries), mixed, shrink to almost nothing, mixed, grow, ... — at
	 * least OPS operations in all. */
	const uint32_t maxe = btree_max_entries(cfg->vs);
	const uint64_t target = cfg->target ? cfg->target : (uint64_t)maxe * maxe + 5000;
	const uint64_t space = cfg->space ? cfg->space : 1ull << 20;
	enum {
		GROW,
		MIXED1,
		SHRINK,
		MIXED2
	} phase = GROW;
	uint64_t phase_start = 1, cycles = 0;
	uint64_t next_commit = 1 + mu_below(&rng, 3000);
	uint64_t commits = 0, aborts = 0, reopens = 0, max_entries = 0;
	uint8_t v[MAX_VS], got[MAX_VS];

	uint64_t run_left = 0, run_key = 0, op;
	for (op = 1;; op++) {
		su_set_ctx(cfg->name, op);
		uint64_t in_phase = op - phase_start;
		bool next = false;
		switch (phase) {
		case GROW:
			next = m.nr >= target || in_phase > 3 * target;
			break;
		case MIXED1:
		case MIXED2:
			next = in_phase > ops / 8;
			break;
		case SHRINK:
			next = m.nr < 50 || in_phase > ops;
			break;
		}
		if (next) {
			if (phase == MIXED2)
				cycles++;
			if (phase == MIXED2 && op > ops)
				break;
			phase = (phase + 1) % 4;
			phase_start = op;
			run_left = 0;
		}
		unsigned p_ins = phase == GROW ? 85 : phase == SHRINK ? 20 : 45;
		unsigned p_rem = phase == GROW ? 5 : phase == SHRINK ? 55 : 30;
		unsigned p_range = phase == SHRINK ? 3 : phase == GROW ? 0 : 1;
		unsigned c = (unsigned)mu_below(&rng, 100);
		uint64_t key = pick_key(&rng, &m, space);
		if (phase == SHRINK && m.nr && mu_pct(&rng, 70))
			key = m.a[mu_below(&rng, m.nr)].key;
		if (!run_left && phase == GROW && mu_pct(&rng, 3)) {
			/* a run of ascending keys (one insert per op) */
			run_left = 1 + mu_below(&rng, 200);
			run_key = mu_below(&rng, space) << 4;
		}
		if (run_left) {
			run_left--;
			key = run_key++;
			c = 0;
		}

		if (c < p_ins) {
			make_value(&rng, v, cfg->vs);
			struct ent *e = m_find(&m, key);
			bool same = e && cfg->equal && res_of(e->v) == res_of(v);
			/* the caller holds the new value's reference, unless the tree
			 * keeps the old one (equal) */
			if (!same)
				res->count[res_of(v)]++;
			int inserted = -1;
			uint64_t nr;
			REQ0(btree_insert(&info, root, &key, v, &nr, &inserted));
			REQ(inserted == (e == NULL), "insert %" PRIu64 ": inserted=%d, model %s",
			    key, inserted, e ? "has it" : "lacks it");
			root = nr;
			m_set(&m, key, v, cfg->vs);
		} else if (c < p_ins + p_rem) {
			struct ent *e = m_find(&m, key);
			uint64_t nr = 12345;
			int r = btree_remove(&info, root, &key, &nr);
			if (e) {
				REQ(r == 0, "remove present key %" PRIu64 " = %d", key, r);
				m_del_at(&m, (size_t)(e - m.a));
				root = nr;
			} else {
				REQ(r == -ENODATA, "remove absent key %" PRIu64 " = %d", key, r);
				REQ(nr == root,
				    "remove absent key moved the root %" PRIu64 " -> %" PRIu64,
				    root, nr);
			}
		} else if (c < p_ins + p_rem + p_range) {
			uint64_t len =
			        mu_pct(&rng, 10) ? mu_below(&rng, 1 << 16) : mu_below(&rng, 600);
			uint64_t begin = key, end = begin + len < begin ? UINT64_MAX : begin + len;
			if (mu_pct(&rng, 5))
				end = begin; /* empty range */
			size_t i = m_lb(&m, begin), j = m_lb(&m, end);
			uint64_t nr, removed = 999;
			REQ0(btree_remove_range(&info, root, NULL, begin, end, &nr, &removed));
			REQ(removed == j - i,
			    "remove_range [%" PRIu64 ", %" PRIu64 "): removed %" PRIu64
			    ", model %zu",
			    begin, end, removed, j - i);
			mu_memmove(&m.a[i], &m.a[j], (m.nr - j) * sizeof(*m.a));
			m.nr -= j - i;
			root = nr;
		} else {
			unsigned q = (unsigned)mu_below(&rng, 3);
			if (q == 0) {
				struct ent *e = m_find(&m, key);
				int r = btree_lookup(&info, root, &key, got);
				REQ(r == (e ? 0 : -ENODATA), "lookup %" PRIu64 " = %d, model %s",
				    key, r, e ? "has it" : "lacks it");
				if (e)
					REQ(!memcmp(got, e->v, cfg->vs),
					    "lookup %" PRIu64 ": wrong value", key);
			} else if (q == 1) {
				size_t i = m_lb(&m, key);
				uint64_t fk = 0;
				int r = btree_lookup_next(&info, root, &key, &fk, got);
				if (i < m.nr) {
					REQ(r == 0 && fk == m.a[i].key,
					    "lookup_next %" PRIu64 " = %d key %" PRIu64
					    ", model %" PRIu64,
					    key, r, fk, m.a[i].key);
					REQ(!memcmp(got, m.a[i].v, cfg->vs),
					    "lookup_next %" PRIu64 ": wrong value", key);
				} else {
					REQ(r == -ENODATA,
					    "lookup_next %" PRIu64
					    " past the end = %d (key %" PRIu64 ")",
					    key, r, fk);
				}
			} else {
				uint64_t hk = 0;
				int r = btree_find_highest_key(&info, root, NULL, &hk);
				if (m.nr)
					REQ(r == 0 && hk == m.a[m.nr - 1].key,
					    "find_highest = %d key %" PRIu64 ", model %" PRIu64, r,
					    hk, m.a[m.nr - 1].key);
				else
					REQ(r == -ENODATA, "find_highest on empty tree = %d", r);
			}
		}
		REQ(res->errors == 0, "a resource was decremented below zero");
		if (m.nr > max_entries)
			max_entries = m.nr;

		if (op == next_commit) {
			next_commit = op + 1 + mu_below(&rng, 3000);
			unsigned what = (unsigned)mu_below(&rng, 100);
			if (what < (cfg->abort_pct ? cfg->abort_pct : 10)) {
				/* abort: drop the transaction, back to the committed tree */
				su_stack_reopen(&s);
				info.tm = s.tm;
				root = committed_root;
				m_copy(&m, &cm);
				memcpy(res->count, res->committed, sizeof(res->count));
				aborts++;
			} else {
				su_stack_commit(&s);
				commits++;
				committed_root = root;
				m_copy(&cm, &m);
				memcpy(res->committed, res->count, sizeof(res->count));
				if (what >= 90) {
					su_stack_reopen(&s);
					info.tm = s.tm;
					reopens++;
				}
			}
			walk_compare(&info, root, &m, "tree vs model");
			verify_refs(&s, &root, 1, 1, cfg->vs, res, NULL);
		}
	}
	su_set_ctx(cfg->name, op);
	su_stack_commit(&s);
	commits++;
	walk_compare(&info, root, &m, "final tree vs model");
	verify_refs(&s, &root, 1, 1, cfg->vs, res, NULL);
	/* empty it completely and check that every node is freed */
	uint64_t nr, removed;
	REQ0(btree_remove_range(&info, root, NULL, 0, UINT64_MAX, &nr, &removed));
	size_t last = m.nr && m.a[m.nr - 1].key == UINT64_MAX;
	REQ(removed + last == m.nr, "final remove_range removed %" PRIu64 " of %zu", removed, m.nr);
	root = nr;
	if (last) {
		uint64_t k = UINT64_MAX;
		REQ0(btree_remove(&info, root, &k, &nr));
		root = nr;
	}
	m.nr = 0;
	su_stack_commit(&s);
	walk_compare(&info, root, &m, "emptied tree");
	verify_refs(&s, &root, 1, 1, cfg->vs, res, NULL);
	REQ0(btree_del(&info, root));
	su_stack_commit(&s);
	verify_refs(&s, NULL, 0, 1, cfg->vs, res, NULL);

	fprintf(stderr,
	        "%s: %" PRIu64 " ops, %" PRIu64 " commits, %" PRIu64 " aborts, %" PRIu64
	        " reopens, max %" PRIu64 " entries, max height %d, %" PRIu64 " cycles\n",
	        cfg->name, op - 1, commits, aborts, reopens, max_entries, g_max_height, cycles);
	m_free(&m);
	m_free(&cm);
	free(res);
	su_stack_destroy(&s);
}

START_TEST(test_random_vs8)
{
	struct single_cfg c = { .name = "random-vs8",
		                .vs = 8,
		                .equal = true,
		                .cache = 4096,
		                .seed_salt = 1,
		                .ops = mu_scaled(100000, 2000) };
	run_single(&c);
}
END_TEST

START_TEST(test_random_vs24)
{
	struct single_cfg c = { .name = "random-vs24",
		                .vs = 24,
		                .cache = 4096,
		                .seed_salt = 2,
		                .ops = mu_scaled(100000, 2000) };
	run_single(&c);
}
END_TEST

START_TEST(test_random_vs4)
{
	struct single_cfg c = { .name = "random-vs4",
		                .vs = 4,
		                .cache = 4096,
		                .seed_salt = 3,
		                .ops = mu_scaled(100000, 2000) };
	run_single(&c);
}
END_TEST

START_TEST(test_random_small_cache)
{
	/* a 16-block cache: dirty blocks are written back mid-transaction, so
	 * aborts check that nothing reachable from the commit was overwritten */
	struct single_cfg c = { .name = "random-smallcache",
		                .vs = 24,
		                .equal = true,
		                .cache = 16,
		                .seed_salt = 4,
		                .ops = mu_scaled(30000, 1000),
		                .abort_pct = 30 };
	run_single(&c);
}
END_TEST

START_TEST(test_random_tight)
{
	/* a small device: the allocation cursor wraps around often, so a block
	 * freed in the open transaction would soon be reused (and, with the
	 * tiny cache, written back) — which an abort then exposes */
	struct single_cfg c = { .name = "random-tight",
		                .vs = 24,
		                .cache = 16,
		                .seed_salt = 5,
		                .ops = mu_scaled(30000, 1000),
		                .meta_blocks = 700,
		                .target = 5000,
		                .space = 1u << 14,
		                .abort_pct = 40 };
	run_single(&c);
}
END_TEST

/* ---- sharing: an explicit snapshot scenario ---- */

static void fill(struct btree_info *info, uint64_t *root, struct model *m, struct res *res,
                 struct mu_rng *rng, uint64_t n, uint64_t space)
{
	uint8_t v[MAX_VS];
	uint32_t vs = info->value_type.size;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t key = mu_below(rng, space);
		struct ent *e = m_find(m, key);
		make_value(rng, v, vs);
		bool same = e && info->value_type.equal && res_of(e->v) == res_of(v);
		if (!same)
			res->count[res_of(v)]++;
		REQ0(btree_insert(info, *root, &key, v, root, NULL));
		m_set(m, key, v, vs);
	}
}

static void share_scenario(bool commit_first)
{
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ (commit_first ? 11 : 12));
	const char *name = commit_first ? "share-committed" : "share-uncommitted";
	su_set_ctx(name, 0);
	struct su_stack s;
	stack_create(&s, META_BLOCKS, 4096);
	struct res *res = calloc(1, sizeof(*res));
	ck_assert(res);
	struct btree_info info = { s.tm, 1, { res, 8, res_inc, res_dec, NULL } };
	uint64_t a;
	struct model ma = { 0 }, mb = { 0 };
	REQ0(btree_empty(&info, &a));
	fill(&info, &a, &ma, res, &rng, 30000, 1u << 18); /* 3 levels */
	if (commit_first)
		su_stack_commit(&s);

	/* snapshot: B shares A's root */
	REQ0(tm_inc(s.tm, a));
	uint64_t b = a;
	m_copy(&mb, &ma);
	uint32_t cnt;
	REQ0(tm_ref(s.tm, a, &cnt));
	REQ(cnt == 2, "shared root count %u", cnt);

	/* mutate A only */
	su_set_ctx(name, 1);
	fill(&info, &a, &ma, res, &rng, 300, 1u << 18);
	for (int i = 0; i < 300 && ma.nr; i++) {
		size_t j = mu_below(&rng, ma.nr);
		uint64_t k = ma.a[j].key, nr;
		REQ0(btree_remove(&info, a, &k, &nr));
		a = nr;
		m_del_at(&ma, j);
	}
	uint64_t nr, removed;
	REQ0(btree_remove_range(&info, a, NULL, 1000, 60000, &nr, &removed));
	a = nr;
	size_t i0 = m_lb(&ma, 1000), i1 = m_lb(&ma, 60000);
	REQ(removed == i1 - i0, "remove_range removed %" PRIu64 ", model %zu", removed, i1 - i0);
	mu_memmove(&ma.a[i0], &ma.a[i1], (ma.nr - i1) * sizeof(*ma.a));
	ma.nr -= i1 - i0;
	REQ(a != b, "mutating a shared tree must move its root");

	walk_compare(&info, a, &ma, "mutated copy");
	walk_compare(&info, b, &mb, "untouched copy");
	su_stack_commit(&s);
	uint64_t roots[2] = { a, b }, ent[2];
	verify_refs(&s, roots, 2, 1, 8, res, ent);
	REQ(ent[0] == ma.nr && ent[1] == mb.nr, "entries %" PRIu64 "/%" PRIu64, ent[0], ent[1]);

	/* a commit + reopen keeps both */
	su_stack_reopen(&s);
	info.tm = s.tm;
	walk_compare(&info, a, &ma, "mutated copy after reopen");
	walk_compare(&info, b, &mb, "untouched copy after reopen");

	/* delete A: exactly the nodes only A used are freed */
	su_set_ctx(name, 2);
	uint64_t free_before = sm_meta_nr_free(s.sm);
	REQ0(btree_del(&info, a));
	walk_compare(&info, b, &mb, "survivor after deleting the copy");
	su_stack_commit(&s);
	verify_refs(&s, &b, 1, 1, 8, res, ent);
	REQ(ent[0] == mb.nr, "survivor entries %" PRIu64, ent[0]);
	REQ(sm_meta_nr_free(s.sm) > free_before, "deleting a diverged copy freed nothing");

	/* delete B: nothing but the pretend superblock and the space map remains */
	su_set_ctx(name, 3);
	REQ0(btree_del(&info, b));
	su_stack_commit(&s);
	verify_refs(&s, NULL, 0, 1, 8, res, NULL);
	for (uint32_t i = 0; i < NRES; i++)
		REQ(res->count[i] == 0, "resource %u still has %" PRId64 " references", i,
		    res->count[i]);
	m_free(&ma);
	m_free(&mb);
	free(res);
	su_stack_destroy(&s);
}

START_TEST(test_share_committed)
{
	share_scenario(true);
}
END_TEST

START_TEST(test_share_uncommitted)
{
	share_scenario(false);
}
END_TEST

/* ---- sharing: a random forest of snapshots ---- */

#define FOREST_MAX 8

START_TEST(test_forest_random)
{
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 21);
	const char *name = "forest";
	su_set_ctx(name, 0);
	struct su_stack s;
	stack_create(&s, META_BLOCKS, 1024);
	struct res *res = calloc(1, sizeof(*res));
	ck_assert(res);
	struct btree_info info = { s.tm, 1, { res, 8, res_inc, res_dec, res_equal } };
	uint64_t roots[FOREST_MAX], croots[FOREST_MAX];
	struct model ms[FOREST_MAX], cms[FOREST_MAX];
	memset(ms, 0, sizeof(ms));
	memset(cms, 0, sizeof(cms));
	size_t n = 1, cn = 0;
	REQ0(btree_empty(&info, &roots[0]));
	su_stack_commit(&s);
	memcpy(croots, roots, sizeof(roots));
	cn = n;
	m_copy(&cms[0], &ms[0]);
	memcpy(res->committed, res->count, sizeof(res->count));

	const uint64_t ops = mu_scaled(60000, 2000);
	uint64_t next_commit = 500;
	uint64_t snaps = 0, dels = 0;
	uint8_t v[MAX_VS];
	for (uint64_t op = 1; op <= ops; op++) {
		su_set_ctx(name, op);
		unsigned c = (unsigned)mu_below(&rng, 1000);
		size_t t = mu_below(&rng, n ? n : 1);
		if (c < 4 && n < FOREST_MAX && n) {
			/* snapshot tree t */
			REQ0(tm_inc(s.tm, roots[t]));
			roots[n] = roots[t];
			m_copy(&ms[n], &ms[t]);
			n++;
			snaps++;
		} else if (c < 7 && n > 1) {
			REQ0(btree_del(&info, roots[t]));
			roots[t] = roots[n - 1];
			m_copy(&ms[t], &ms[n - 1]);
			n--;
			dels++;
		} else if (n == 0) {
			REQ0(btree_empty(&info, &roots[0]));
			ms[0].nr = 0;
			n = 1;
		} else if (c < 600) {
			uint64_t key = pick_key(&rng, &ms[t], 1u << 16);
			make_value(&rng, v, 8);
			struct ent *e = m_find(&ms[t], key);
			if (!(e && res_of(e->v) == res_of(v)))
				res->count[res_of(v)]++;
			REQ0(btree_insert(&info, roots[t], &key, v, &roots[t], NULL));
			m_set(&ms[t], key, v, 8);
		} else if (c < 950) {
			uint64_t key = pick_key(&rng, &ms[t], 1u << 16), nr;
			struct ent *e = m_find(&ms[t], key);
			int r = btree_remove(&info, roots[t], &key, &nr);
			REQ(r == (e ? 0 : -ENODATA), "remove %" PRIu64 " from tree %zu = %d", key,
			    t, r);
			if (e) {
				m_del_at(&ms[t], (size_t)(e - ms[t].a));
				roots[t] = nr;
			}
		} else {
			uint64_t begin = mu_below(&rng, 1u << 16),
			         end = begin + mu_below(&rng, 2000);
			uint64_t nr, removed;
			REQ0(btree_remove_range(&info, roots[t], NULL, begin, end, &nr, &removed));
			size_t i = m_lb(&ms[t], begin), j = m_lb(&ms[t], end);
			REQ(removed == j - i, "remove_range removed %" PRIu64 ", model %zu",
			    removed, j - i);
			mu_memmove(&ms[t].a[i], &ms[t].a[j], (ms[t].nr - j) * sizeof(*ms[t].a));
			ms[t].nr -= j - i;
			roots[t] = nr;
		}
		REQ(res->errors == 0, "a resource was decremented below zero");
		if (op == next_commit || op == ops) {
			next_commit = op + 1 + mu_below(&rng, 2000);
			if (mu_pct(&rng, 10) && op != ops) {
				su_stack_reopen(&s);
				info.tm = s.tm;
				n = cn;
				memcpy(roots, croots, sizeof(roots));
				for (size_t i = 0; i < n; i++)
					m_copy(&ms[i], &cms[i]);
				memcpy(res->count, res->committed, sizeof(res->count));
			} else {
				su_stack_commit(&s);
				cn = n;
				memcpy(croots, roots, sizeof(roots));
				for (size_t i = 0; i < n; i++)
					m_copy(&cms[i], &ms[i]);
				memcpy(res->committed, res->count, sizeof(res->count));
			}
			for (size_t i = 0; i < n; i++)
				walk_compare(&info, roots[i], &ms[i], "forest tree");
			uint64_t ent[FOREST_MAX];
			verify_refs(&s, roots, n, 1, 8, res, ent);
			for (size_t i = 0; i < n; i++)
				REQ(ent[i] == ms[i].nr, "tree %zu: %" PRIu64 " entries, model %zu",
				    i, ent[i], ms[i].nr);
		}
	}
	su_set_ctx(name, ops + 1);
	for (size_t i = 0; i < n; i++)
		REQ0(btree_del(&info, roots[i]));
	su_stack_commit(&s);
	verify_refs(&s, NULL, 0, 1, 8, res, NULL);
	for (uint32_t i = 0; i < NRES; i++)
		REQ(res->count[i] == 0, "resource %u still has %" PRId64 " references", i,
		    res->count[i]);
	fprintf(stderr, "forest: %" PRIu64 " ops, %" PRIu64 " snapshots, %" PRIu64 " deletes\n",
	        ops, snaps, dels);
	for (size_t i = 0; i < FOREST_MAX; i++) {
		m_free(&ms[i]);
		m_free(&cms[i]);
	}
	free(res);
	su_stack_destroy(&s);
}
END_TEST

/* ---- two levels ---- */

#define TOP_MAX 24

struct top {
	uint64_t id;
	struct model m;
};

struct two {
	struct top t[TOP_MAX];
	size_t n;
};

static struct top *two_find(struct two *w, uint64_t id)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].id == id)
			return &w->t[i];
	return NULL;
}

static void two_copy(struct two *dst, const struct two *src)
{
	for (size_t i = 0; i < src->n; i++) {
		dst->t[i].id = src->t[i].id;
		m_copy(&dst->t[i].m, &src->t[i].m);
	}
	dst->n = src->n;
}

static void two_free(struct two *w)
{
	for (size_t i = 0; i < TOP_MAX; i++)
		m_free(&w->t[i].m);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int collect_keys(void *ctx, uint64_t key, const void *value)
{
	(void)value;
	struct model *m = ctx;
	uint8_t z[MAX_VS] = { 0 };
	m_set(m, key, z, 8);
	return 0;
}

static void two_verify(struct btree_info *top_info, struct btree_info *bottom, uint64_t root,
                       struct two *w)
{
	struct model keys = { 0 };
	REQ0(btree_walk(top_info, root, collect_keys, &keys));
	uint64_t ids[TOP_MAX];
	for (size_t i = 0; i < w->n; i++)
		ids[i] = w->t[i].id;
	qsort(ids, w->n, sizeof(ids[0]), u64_cmp);
	REQ(keys.nr == w->n, "top level has %zu keys, model %zu", keys.nr, w->n);
	for (size_t i = 0; i < w->n; i++) {
		REQ(keys.a[i].key == ids[i], "top key %zu: %" PRIu64 " vs model %" PRIu64, i,
		    keys.a[i].key, ids[i]);
		uint8_t v[8];
		REQ0(btree_lookup(top_info, root, &ids[i], v));
		char what[64];
		snprintf(what, sizeof(what), "subtree %" PRIu64, ids[i]);
		walk_compare(bottom, le64_get(v), &two_find(w, ids[i])->m, what);
	}
	m_free(&keys);
}

START_TEST(test_two_level)
{
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 31);
	const char *name = "two-level";
	su_set_ctx(name, 0);
	struct su_stack s;
	stack_create(&s, META_BLOCKS, 2048);
	struct res *res = calloc(1, sizeof(*res));
	ck_assert(res);
	const uint32_t vs = 8;
	struct btree_value_type vt = { res, vs, res_inc, res_dec, res_equal };
	struct btree_info info = { s.tm, 2, vt };
	struct btree_info bottom = { s.tm, 1, vt };
	struct btree_info top_info = { s.tm,
		                       1,
		                       { &bottom, 8, btree_subtree_inc, btree_subtree_dec, NULL } };
	struct two w, cw;
	memset(&w, 0, sizeof(w));
	memset(&cw, 0, sizeof(cw));
	uint64_t root, croot;
	REQ0(btree_empty(&info, &root));
	su_stack_commit(&s);
	croot = root;
	memcpy(res->committed, res->count, sizeof(res->count));

	const uint64_t ops = mu_scaled(100000, 2000);
	uint64_t next_commit = 1000, snaps = 0, drops = 0;
	uint8_t v[MAX_VS], got[MAX_VS];
	for (uint64_t op = 1; op <= ops; op++) {
		su_set_ctx(name, op);
		unsigned c = (unsigned)mu_below(&rng, 1000);
		/* top keys: a few small ids plus some far apart */
		uint64_t id = mu_pct(&rng, 80) ? mu_below(&rng, 8) : (mu_next(&rng) >> 8);
		if (w.n && mu_pct(&rng, 70))
			id = w.t[mu_below(&rng, w.n)].id;
		struct top *tp = two_find(&w, id);
		if (c < 3 && tp && w.n < TOP_MAX) {
			/* snapshot subtree id under a new top key */
			uint64_t nid = mu_next(&rng) >> 40;
			if (two_find(&w, nid))
				continue;
			uint8_t sv[8];
			REQ0(btree_lookup(&top_info, root, &id, sv));
			REQ0(tm_inc(s.tm, le64_get(sv)));
			int ins = -1;
			REQ0(btree_insert(&top_info, root, &nid, sv, &root, &ins));
			REQ(ins == 1, "snapshot top key %" PRIu64 " existed", nid);
			w.t[w.n].id = nid;
			m_copy(&w.t[w.n].m, &tp->m);
			w.n++;
			snaps++;
		} else if (c < 6 && tp) {
			/* drop a whole subtree through the top level */
			uint64_t nr;
			REQ0(btree_remove(&top_info, root, &id, &nr));
			root = nr;
			size_t i = (size_t)(tp - w.t);
			struct model tmp = w.t[i].m;
			w.t[i] = w.t[w.n - 1];
			w.t[w.n - 1].m = tmp;
			w.t[w.n - 1].m.nr = 0;
			w.n--;
			drops++;
		} else if (c < 600) {
			if (!tp && w.n == TOP_MAX)
				continue;
			uint64_t keys[2] = { id, tp ? pick_key(&rng, &tp->m, 1u << 17) :
				                      mu_below(&rng, 1u << 17) };
			make_value(&rng, v, vs);
			struct ent *e = tp ? m_find(&tp->m, keys[1]) : NULL;
			if (!(e && res_of(e->v) == res_of(v)))
				res->count[res_of(v)]++;
			int ins = -1;
			REQ0(btree_insert(&info, root, keys, v, &root, &ins));
			REQ(ins == (e == NULL), "insert (%" PRIu64 ", %" PRIu64 "): inserted=%d",
			    keys[0], keys[1], ins);
			if (!tp) {
				tp = &w.t[w.n++];
				tp->id = id;
				tp->m.nr = 0;
			}
			m_set(&tp->m, keys[1], v, vs);
		} else if (c < 900) {
			uint64_t keys[2] = { id, tp ? pick_key(&rng, &tp->m, 1u << 17) : 5 };
			struct ent *e = tp ? m_find(&tp->m, keys[1]) : NULL;
			uint64_t nr = 4242;
			int r = btree_remove(&info, root, keys, &nr);
			REQ(r == (e ? 0 : -ENODATA), "remove (%" PRIu64 ", %" PRIu64 ") = %d",
			    keys[0], keys[1], r);
			if (e) {
				m_del_at(&tp->m, (size_t)(e - tp->m.a));
				root = nr;
			} else {
				REQ(nr == root, "failed remove moved the root");
			}
		} else if (c < 930) {
			uint64_t keys[2] = { id, 0 };
			uint64_t begin = mu_below(&rng, 1u << 17),
			         end = begin + mu_below(&rng, 3000);
			uint64_t nr, removed = 77;
			int r = btree_remove_range(&info, root, keys, begin, end, &nr, &removed);
			if (!tp) {
				REQ(r == -ENODATA, "remove_range in a missing subtree = %d", r);
				continue;
			}
			REQ(r == 0, "remove_range = %d", r);
			size_t i = m_lb(&tp->m, begin), j = m_lb(&tp->m, end);
			REQ(removed == j - i, "remove_range removed %" PRIu64 ", model %zu",
			    removed, j - i);
			mu_memmove(&tp->m.a[i], &tp->m.a[j], (tp->m.nr - j) * sizeof(*tp->m.a));
			tp->m.nr -= j - i;
			root = nr;
		} else {
			uint64_t keys[2] = { id, tp ? pick_key(&rng, &tp->m, 1u << 17) : 1 };
			unsigned q = (unsigned)mu_below(&rng, 3);
			if (!tp) {
				uint64_t k;
				REQ(btree_lookup(&info, root, keys, got) == -ENODATA,
				    "lookup in missing subtree");
				REQ(btree_lookup_next(&info, root, keys, &k, got) == -ENODATA,
				    "lookup_next in missing subtree");
				REQ(btree_find_highest_key(&info, root, keys, &k) == -ENODATA,
				    "find_highest in missing subtree");
			} else if (q == 0) {
				struct ent *e = m_find(&tp->m, keys[1]);
				int r = btree_lookup(&info, root, keys, got);
				REQ(r == (e ? 0 : -ENODATA), "lookup = %d", r);
				if (e)
					REQ(!memcmp(got, e->v, vs), "lookup: wrong value");
			} else if (q == 1) {
				size_t i = m_lb(&tp->m, keys[1]);
				uint64_t k = 0;
				int r = btree_lookup_next(&info, root, keys, &k, got);
				if (i < tp->m.nr)
					REQ(r == 0 && k == tp->m.a[i].key &&
					            !memcmp(got, tp->m.a[i].v, vs),
					    "lookup_next (%" PRIu64 ", %" PRIu64
					    ") = %d key %" PRIu64 ", model %" PRIu64,
					    keys[0], keys[1], r, k, tp->m.a[i].key);
				else
					REQ(r == -ENODATA, "lookup_next past the end = %d", r);
			} else {
				uint64_t k = 0;
				int r = btree_find_highest_key(&info, root, keys, &k);
				if (tp->m.nr)
					REQ(r == 0 && k == tp->m.a[tp->m.nr - 1].key,
					    "find_highest = %d %" PRIu64, r, k);
				else
					REQ(r == -ENODATA, "find_highest on empty subtree = %d", r);
			}
		}
		REQ(res->errors == 0, "a resource was decremented below zero");
		if (op >= next_commit || op == ops) {
			next_commit = op + 1 + mu_below(&rng, 4000);
			unsigned what = (unsigned)mu_below(&rng, 10);
			if (what == 0 && op != ops) {
				su_stack_reopen(&s);
				info.tm = bottom.tm = top_info.tm = s.tm;
				root = croot;
				two_copy(&w, &cw);
				memcpy(res->count, res->committed, sizeof(res->count));
			} else {
				su_stack_commit(&s);
				croot = root;
				two_copy(&cw, &w);
				memcpy(res->committed, res->count, sizeof(res->count));
				if (what == 1) {
					su_stack_reopen(&s);
					info.tm = bottom.tm = top_info.tm = s.tm;
				}
			}
			two_verify(&top_info, &bottom, root, &w);
			verify_refs(&s, &root, 1, 2, vs, res, NULL);
		}
	}
	su_set_ctx(name, ops + 1);
	REQ0(btree_del(&info, root));
	su_stack_commit(&s);
	verify_refs(&s, NULL, 0, 2, vs, res, NULL);
	for (uint32_t i = 0; i < NRES; i++)
		REQ(res->count[i] == 0, "resource %u still has %" PRId64 " references", i,
		    res->count[i]);
	fprintf(stderr,
	        "two-level: %" PRIu64 " ops, %" PRIu64 " subtree snapshots, %" PRIu64
	        " subtree drops\n",
	        ops, snaps, drops);
	two_free(&w);
	two_free(&cw);
	free(res);
	su_stack_destroy(&s);
}
END_TEST

/* ---- small deterministic edge cases ---- */

START_TEST(test_edges)
{
	su_set_ctx("edges", 0);
	struct su_stack s;
	stack_create(&s, 2048, 64);
	struct btree_info info = { s.tm, 1, { NULL, 8, NULL, NULL, NULL } };
	uint64_t root, nr, k = 5, fk;
	uint8_t v[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, got[8];
	REQ0(btree_empty(&info, &root));
	REQ(btree_lookup(&info, root, &k, got) == -ENODATA, "lookup in empty tree");
	REQ(btree_lookup_next(&info, root, &k, &fk, got) == -ENODATA, "lookup_next in empty tree");
	REQ(btree_find_highest_key(&info, root, NULL, &fk) == -ENODATA, "highest in empty tree");
	REQ(btree_remove(&info, root, &k, &nr) == -ENODATA && nr == root, "remove in empty tree");
	uint64_t removed = 9;
	REQ0(btree_remove_range(&info, root, NULL, 0, UINT64_MAX, &nr, &removed));
	REQ(removed == 0, "remove_range in empty tree removed %" PRIu64, removed);
	root = nr;
	/* extreme keys */
	uint64_t keys[] = { 0, UINT64_MAX, 1, UINT64_MAX - 1 };
	for (unsigned i = 0; i < 4; i++)
		REQ0(btree_insert(&info, root, &keys[i], v, &root, NULL));
	k = UINT64_MAX;
	REQ0(btree_find_highest_key(&info, root, NULL, &fk));
	REQ(fk == UINT64_MAX, "highest %" PRIu64, fk);
	k = 2;
	REQ0(btree_lookup_next(&info, root, &k, &fk, got));
	REQ(fk == UINT64_MAX - 1, "lookup_next(2) = %" PRIu64, fk);
	/* [x, UINT64_MAX) cannot include UINT64_MAX */
	REQ0(btree_remove_range(&info, root, NULL, 1, UINT64_MAX, &nr, &removed));
	root = nr;
	REQ(removed == 2, "remove_range [1, max) removed %" PRIu64, removed);
	REQ0(btree_find_highest_key(&info, root, NULL, &fk));
	REQ(fk == UINT64_MAX, "highest after range %" PRIu64, fk);
	su_stack_commit(&s);
	verify_refs(&s, &root, 1, 1, 8, NULL, NULL);
	/* sequential ascending and descending fills split and merge cleanly */
	for (uint64_t i = 0; i < 20000; i++) {
		k = 1000000 + i;
		REQ0(btree_insert(&info, root, &k, v, &root, NULL));
		k = 999999 - i;
		REQ0(btree_insert(&info, root, &k, v, &root, NULL));
	}
	su_stack_commit(&s);
	uint64_t ent;
	verify_refs(&s, &root, 1, 1, 8, NULL, &ent);
	REQ(ent == 40002, "entries %" PRIu64, ent);
	for (uint64_t i = 0; i < 20000; i++) {
		k = 1000000 + 19999 - i;
		REQ0(btree_remove(&info, root, &k, &root));
		if (i % 5000 == 0) {
			su_stack_commit(&s);
			verify_refs(&s, &root, 1, 1, 8, NULL, NULL);
		}
	}
	REQ0(btree_remove_range(&info, root, NULL, 0, 1000000, &nr, &removed));
	root = nr;
	REQ(removed == 20001, "removed %" PRIu64, removed); /* 980000..999999 and 0 */
	su_stack_commit(&s);
	verify_refs(&s, &root, 1, 1, 8, NULL, &ent);
	REQ(ent == 1, "entries left %" PRIu64, ent);
	su_stack_destroy(&s);
}
END_TEST

static Suite *btree_suite(void)
{
	Suite *s = suite_create("btree");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 1800);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_random_vs8);
	tcase_add_test(tc, test_random_vs24);
	tcase_add_test(tc, test_random_vs4);
	tcase_add_test(tc, test_random_small_cache);
	tcase_add_test(tc, test_random_tight);
	tcase_add_test(tc, test_share_committed);
	tcase_add_test(tc, test_share_uncommitted);
	tcase_add_test(tc, test_forest_random);
	tcase_add_test(tc, test_two_level);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_btree", btree_suite);
}
