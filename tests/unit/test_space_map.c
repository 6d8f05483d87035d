/* Model-based tests of the space maps (impl/pdata/sm_disk.c, sm_metadata.c)
 * on the real pdata stack over an in-memory device.
 *
 * sm_disk (the data space map): seeded random inc/dec/set_count/new_block on
 * ~100k blocks (several bitmaps, hot blocks with counts >= 3 so the overflow
 * tree grows past one node) against a count array; commits, aborts, reopens
 * and an extension mid-run. new_block must return a block free now and at the
 * last commit. At every commit all counts are read back, and an independent
 * decoder (model_util.c) re-reads the device through a cold cache: bitmaps,
 * index entries (nr_free, none_free_before), overflow tree, nr_allocated, and
 * every metadata block's count against the pointers to it.
 *
 * sm_meta (the metadata space map): the same against a model of "user"
 * counts plus the map's own structures (index, bitmaps, overflow nodes) as
 * written by the last commit.
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
#include "pdata/format.h"
#include "pdata/space_map.h"
#include "pdata/transaction_manager.h"
#include "stack_util.h"

#define DEFAULT_SEED 0x736d617073ull /* "smaps" */

/* ---- sm_disk against a model ---- */

struct dmodel {
	uint32_t *count, *committed;
	uint64_t nr, used, committed_nr, committed_used;
};

static void dm_resize(struct dmodel *m, uint64_t nr)
{
	m->count = realloc(m->count, nr * sizeof(*m->count));
	m->committed = realloc(m->committed, nr * sizeof(*m->committed));
	ck_assert(m->count && m->committed);
	for (uint64_t b = m->nr; b < nr; b++)
		m->count[b] = m->committed[b] = 0;
	m->nr = nr;
}

static void dm_set(struct dmodel *m, uint64_t b, uint32_t c)
{
	if (!m->count[b] && c)
		m->used++;
	else if (m->count[b] && !c)
		m->used--;
	m->count[b] = c;
}

static void dm_commit(struct dmodel *m)
{
	memcpy(m->committed, m->count, m->nr * sizeof(*m->count));
	m->committed_nr = m->nr;
	m->committed_used = m->used;
}

static void dm_abort(struct dmodel *m)
{
	m->nr = m->committed_nr;
	memcpy(m->count, m->committed, m->nr * sizeof(*m->count));
	m->used = m->committed_used;
}

/* After a commit: decode the device, compare with the model and the live map. */
static void verify_disk(struct su_stack *s, const struct dmodel *m, bool read_all)
{
	REQ(sm_disk_nr_blocks(s->dsm) == m->nr, "nr_blocks %" PRIu64 ", model %" PRIu64,
	    sm_disk_nr_blocks(s->dsm), m->nr);
	REQ(sm_disk_nr_free(s->dsm) == m->nr - m->used, "nr_free %" PRIu64 ", model %" PRIu64,
	    sm_disk_nr_free(s->dsm), m->nr - m->used);
	if (read_all)
		for (uint64_t b = 0; b < m->nr; b++) {
			uint32_t c = 0xdead;
			REQ0(sm_disk_get_count(s->dsm, b, &c));
			REQ(c == m->count[b], "block %" PRIu64 ": count %u, model %u", b, c,
			    m->count[b]);
		}
	uint32_t c;
	REQ(sm_disk_get_count(s->dsm, m->nr, &c) == -ERANGE, "get_count past the end");

	struct mu_mc mc;
	REQ(mu_mc_init(&mc, s->dev) == 0, "checker: %s", mc.err);
	REQ(mu_mc_ref(&mc, 0, MU_OTHER) == 0, "%s", mc.err);
	uint32_t *dc = NULL, *mcnt = NULL;
	uint64_t dn = 0, mn = 0;
	REQ(mu_mc_sm_disk(&mc, s->droot, &dc, &dn) == 0, "data space map on disk: %s", mc.err);
	REQ(mu_mc_sm_meta(&mc, s->mroot, &mcnt, &mn) == 0, "metadata space map on disk: %s",
	    mc.err);
	REQ(mu_mc_compare(&mc, mcnt, mn) == 0, "%s", mc.err);
	REQ(dn == m->nr, "on-disk data map has %" PRIu64 " blocks, model %" PRIu64, dn, m->nr);
	for (uint64_t b = 0; b < dn; b++)
		REQ(dc[b] == m->count[b], "on disk: data block %" PRIu64 " count %u, model %u", b,
		    dc[b], m->count[b]);
	for (uint64_t b = 0; b < mn; b++)
		REQ(mcnt[b] == sm_meta_get_count(s->sm, b),
		    "metadata block %" PRIu64 ": %u on disk, %u live", b, mcnt[b],
		    sm_meta_get_count(s->sm, b));
	free(dc);
	free(mcnt);
	mu_mc_free(&mc);
}

/* A block to operate on: hot blocks (so counts reach >= 3 and the overflow
 * tree holds hundreds of entries), blocks in use, or anything. */
static uint64_t pick_block(struct mu_rng *rng, const struct dmodel *m, const uint64_t *hot,
                           size_t nhot)
{
	unsigned c = (unsigned)mu_below(rng, 100);
	if (c < 45)
		return hot[mu_below(rng, nhot)] % m->nr;
	if (c < 50)
		return m->nr - 1 - mu_below(rng, m->nr < 40 ? m->nr : 40);
	return mu_below(rng, m->nr);
}

START_TEST(test_disk_random)
{
	const char *name = "sm_disk-random";
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 1);
	su_set_ctx(name, 0);
	struct su_stack s;
	su_stack_create(&s, 16384, 16384, 1024);
	const uint64_t nr0 = 100000; /* 7 bitmaps, the last one partial */
	REQ0(sm_disk_create(s.tm, nr0, &s.dsm));
	struct dmodel m = { 0 };
	dm_resize(&m, nr0);
	su_stack_commit(&s);
	dm_commit(&m);
	verify_disk(&s, &m, true);

	size_t nhot = 2000;
	uint64_t *hot = malloc(nhot * sizeof(*hot));
	ck_assert(hot);
	for (size_t i = 0; i < nhot; i++)
		hot[i] = mu_next(&rng);

	const uint64_t ops = mu_scaled(150000, 3000);
	uint64_t next_commit = 1 + mu_below(&rng, 5000);
	uint64_t commits = 0, aborts = 0, reopens = 0, allocs = 0, enospc = 0, max_count = 0,
	         max_overflow = 0, extends = 0;
	bool extended = false;
	for (uint64_t op = 1; op <= ops; op++) {
		su_set_ctx(name, op);
		if (!extended && op >= ops / 2) {
			/* grow mid-transaction: the old last bitmap gains entries and
			 * new bitmaps appear */
			uint64_t nr = m.nr + 3 * SM_ENTRIES_PER_BITMAP + 1234;
			REQ0(sm_disk_extend(s.dsm, nr));
			dm_resize(&m, nr);
			extended = true;
			extends++;
		}
		unsigned c = (unsigned)mu_below(&rng, 100);
		uint64_t b = pick_block(&rng, &m, hot, nhot);
		if (c < 30) {
			int r = sm_disk_inc(s.dsm, b);
			if (m.count[b] == UINT32_MAX) {
				REQ(r == -EOVERFLOW, "inc of a block at UINT32_MAX = %d", r);
			} else {
				REQ(r == 0, "inc %" PRIu64 " (count %u) = %d", b, m.count[b], r);
				dm_set(&m, b, m.count[b] + 1);
			}
		} else if (c < 52) {
			int r = sm_disk_dec(s.dsm, b);
			if (m.count[b]) {
				REQ(r == 0, "dec %" PRIu64 " (count %u) = %d", b, m.count[b], r);
				dm_set(&m, b, m.count[b] - 1);
			} else {
				REQ(r == -EINVAL, "dec of free block %" PRIu64 " = %d", b, r);
			}
		} else if (c < 60) {
			static const uint32_t vals[] = { 0,    1,     2,
				                         3,    4,     5,
				                         1000, 70000, UINT32_MAX - 1 };
			uint32_t v = mu_pct(&rng, 80) ? vals[mu_below(&rng, 9)] :
			                                (uint32_t)mu_below(&rng, 1u << 20);
			REQ0(sm_disk_set_count(s.dsm, b, v));
			dm_set(&m, b, v);
		} else if (c < 85) {
			uint64_t nb = UINT64_MAX;
			int r = sm_disk_new_block(s.dsm, &nb);
			if (r == -ENOSPC) {
				for (uint64_t x = 0; x < m.nr; x++)
					REQ(m.count[x] || (x < m.committed_nr && m.committed[x]),
					    "ENOSPC but block %" PRIu64
					    " is free now and at the commit",
					    x);
				enospc++;
			} else {
				REQ(r == 0, "new_block = %d", r);
				REQ(nb < m.nr, "new_block returned %" PRIu64 " past the end", nb);
				REQ(m.count[nb] == 0,
				    "new_block returned block %" PRIu64 " in use (count %u)", nb,
				    m.count[nb]);
				REQ(nb >= m.committed_nr || m.committed[nb] == 0,
				    "new_block returned block %" PRIu64
				    " that the last commit still uses (count %u): freed in this transaction",
				    nb, m.committed[nb]);
				dm_set(&m, nb, 1);
				allocs++;
			}
		} else {
			uint32_t got = 0xdead;
			REQ0(sm_disk_get_count(s.dsm, b, &got));
			REQ(got == m.count[b], "get_count %" PRIu64 " = %u, model %u", b, got,
			    m.count[b]);
		}
		if (m.count[b] > max_count)
			max_count = m.count[b];
		REQ(sm_disk_nr_free(s.dsm) == m.nr - m.used, "nr_free %" PRIu64 ", model %" PRIu64,
		    sm_disk_nr_free(s.dsm), m.nr - m.used);

		if (op == next_commit || op == ops) {
			next_commit = op + 1 + mu_below(&rng, 5000);
			unsigned what = (unsigned)mu_below(&rng, 10);
			if (what == 0 && op != ops) {
				su_stack_reopen(&s);
				if (m.committed_nr != m.nr)
					extended = false; /* rolled back: extend again */
				dm_abort(&m);
				aborts++;
			} else {
				su_stack_commit(&s);
				dm_commit(&m);
				commits++;
				if (what == 1) {
					su_stack_reopen(&s);
					reopens++;
				}
			}
			verify_disk(&s, &m, true);
			uint64_t over = 0;
			for (uint64_t x = 0; x < m.nr; x++)
				over += m.count[x] >= 3;
			if (over > max_overflow)
				max_overflow = over;
		}
	}
	fprintf(stderr,
	        "%s: %" PRIu64 " ops, %" PRIu64 " commits, %" PRIu64 " aborts, %" PRIu64
	        " reopens, %" PRIu64 " extends, %" PRIu64 " allocations, %" PRIu64
	        " ENOSPC, max count %" PRIu64 ", max %" PRIu64 " overflow entries\n",
	        name, ops, commits, aborts, reopens, extends, allocs, enospc, max_count,
	        max_overflow);
	REQ(max_overflow > 336, "the overflow tree never needed more than one node (%" PRIu64 ")",
	    max_overflow);
	free(hot);
	free(m.count);
	free(m.committed);
	su_stack_destroy(&s);
}
END_TEST

/* A nearly full data map: new_block must find the last free blocks across
 * the wrap-around, report ENOSPC exactly when nothing is free now and at the
 * commit, and only reuse freed blocks after a commit. */
START_TEST(test_disk_full)
{
	const char *name = "sm_disk-full";
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 2);
	su_set_ctx(name, 0);
	struct su_stack s;
	su_stack_create(&s, 4096, 4096, 256);
	const uint64_t nr = SM_ENTRIES_PER_BITMAP + 77; /* two bitmaps */
	REQ0(sm_disk_create(s.tm, nr, &s.dsm));
	struct dmodel m = { 0 };
	dm_resize(&m, nr);
	su_stack_commit(&s);
	dm_commit(&m);

	for (unsigned round = 0; round < 6; round++) {
		su_set_ctx(name, round);
		/* allocate everything allocatable */
		uint64_t b, n = 0;
		int r;
		while ((r = sm_disk_new_block(s.dsm, &b)) == 0) {
			REQ(b < nr && m.count[b] == 0 && m.committed[b] == 0,
			    "new_block returned %" PRIu64 " (count %u, committed %u)", b,
			    m.count[b], m.committed[b]);
			dm_set(&m, b, 1);
			n++;
		}
		REQ(r == -ENOSPC, "new_block on a full map = %d", r);
		for (uint64_t x = 0; x < nr; x++)
			REQ(m.count[x] || m.committed[x], "ENOSPC with block %" PRIu64 " free", x);
		/* free a random tenth; they stay unusable until the commit */
		uint64_t freed = 0;
		for (uint64_t x = 0; x < nr; x++)
			if (m.count[x] && mu_pct(&rng, 10)) {
				REQ0(sm_disk_set_count(s.dsm, x, 0));
				dm_set(&m, x, 0);
				freed++;
			}
		r = sm_disk_new_block(s.dsm, &b);
		if (r == 0)
			REQ(m.committed[b] == 0 && m.count[b] == 0,
			    "new_block reused block %" PRIu64 " freed in this transaction", b);
		else
			REQ(r == -ENOSPC, "new_block = %d", r);
		if (r == 0)
			dm_set(&m, b, 1);
		REQ(sm_disk_nr_free(s.dsm) == nr - m.used, "nr_free %" PRIu64 ", model %" PRIu64,
		    sm_disk_nr_free(s.dsm), nr - m.used);
		su_stack_commit(&s);
		dm_commit(&m);
		verify_disk(&s, &m, true);
		fprintf(stderr, "%s: round %u allocated %" PRIu64 ", freed %" PRIu64 "\n", name,
		        round, n, freed);
	}
	free(m.count);
	free(m.committed);
	su_stack_destroy(&s);
}
END_TEST

/* Extension edge cases: within the last bitmap, to an exact bitmap boundary,
 * by one block, then allocate the new blocks. */
START_TEST(test_disk_extend)
{
	const char *name = "sm_disk-extend";
	su_set_ctx(name, 0);
	struct su_stack s;
	su_stack_create(&s, 4096, 4096, 256);
	REQ0(sm_disk_create(s.tm, 10, &s.dsm));
	struct dmodel m = { 0 };
	dm_resize(&m, 10);
	su_stack_commit(&s);
	dm_commit(&m);
	const uint64_t sizes[] = { 11,
		                   100,
		                   SM_ENTRIES_PER_BITMAP,
		                   SM_ENTRIES_PER_BITMAP + 1,
		                   2 * SM_ENTRIES_PER_BITMAP,
		                   5 * SM_ENTRIES_PER_BITMAP - 3 };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		su_set_ctx(name, i);
		REQ0(sm_disk_extend(s.dsm, sizes[i]));
		REQ(sm_disk_extend(s.dsm, sizes[i] - 1) == -EINVAL, "shrinking must fail");
		dm_resize(&m, sizes[i]);
		/* take a few blocks, including the last one */
		for (int k = 0; k < 5; k++) {
			uint64_t b;
			REQ0(sm_disk_new_block(s.dsm, &b));
			REQ(m.count[b] == 0 && (b >= m.committed_nr || !m.committed[b]),
			    "new_block %" PRIu64, b);
			dm_set(&m, b, 1);
		}
		REQ0(sm_disk_set_count(s.dsm, sizes[i] - 1, 7));
		dm_set(&m, sizes[i] - 1, 7);
		if (i % 2) {
			su_stack_commit(&s);
			dm_commit(&m);
			su_stack_reopen(&s);
		} else {
			su_stack_commit(&s);
			dm_commit(&m);
		}
		verify_disk(&s, &m, true);
	}
	free(m.count);
	free(m.committed);
	su_stack_destroy(&s);
}
END_TEST

/* ---- sm_meta against a model ---- */

struct mmodel {
	uint64_t nr;
	uint32_t *user, *cuser; /* test-held counts, now and at the last commit */
	uint32_t *strct;        /* the map's own structures, as of the last write */
	uint32_t *ctotal;       /* total counts at the last commit */
	uint64_t cnr;
};

static uint32_t mm_total(const struct mmodel *m, uint64_t b)
{
	return m->user[b] + m->strct[b];
}

static void mm_resize(struct mmodel *m, uint64_t nr)
{
	m->user = realloc(m->user, nr * sizeof(uint32_t));
	m->cuser = realloc(m->cuser, nr * sizeof(uint32_t));
	m->strct = realloc(m->strct, nr * sizeof(uint32_t));
	m->ctotal = realloc(m->ctotal, nr * sizeof(uint32_t));
	ck_assert(m->user && m->cuser && m->strct && m->ctotal);
	for (uint64_t b = m->nr; b < nr; b++)
		m->user[b] = m->cuser[b] = m->strct[b] = m->ctotal[b] = 0;
	m->nr = nr;
}

/* After a commit: decode the map from disk; its structure references become
 * the model's; check stored = user + structures, and the live map. */
static void verify_meta(struct su_stack *s, struct mmodel *m)
{
	struct mu_mc mc;
	REQ(mu_mc_init(&mc, s->dev) == 0, "checker: %s", mc.err);
	uint32_t *cnt = NULL;
	uint64_t n = 0;
	REQ(mu_mc_sm_meta(&mc, s->mroot, &cnt, &n) == 0, "metadata space map on disk: %s", mc.err);
	REQ(n == m->nr, "on-disk map has %" PRIu64 " blocks, model %" PRIu64, n, m->nr);
	uint64_t used = 0;
	for (uint64_t b = 0; b < n; b++) {
		REQ(cnt[b] == m->user[b] + mc.expect[b],
		    "block %" PRIu64 " (%s): stored count %u, user %u + structure %u", b,
		    mc.kind[b] == MU_NODE   ? "overflow node" :
		    mc.kind[b] == MU_BITMAP ? "bitmap" :
		    mc.kind[b] == MU_INDEX  ? "index" :
		                              "-",
		    cnt[b], m->user[b], mc.expect[b]);
		REQ(cnt[b] == sm_meta_get_count(s->sm, b), "block %" PRIu64 ": %u stored, %u live",
		    b, cnt[b], sm_meta_get_count(s->sm, b));
		/* a structure block must not be in use by the user */
		REQ(!(mc.expect[b] && m->user[b]),
		    "block %" PRIu64 " is both a space-map structure and a user block", b);
		m->strct[b] = mc.expect[b];
		used += cnt[b] != 0;
	}
	REQ(sm_meta_nr_free(s->sm) == n - used, "nr_free %" PRIu64 ", expected %" PRIu64,
	    sm_meta_nr_free(s->sm), n - used);
	free(cnt);
	mu_mc_free(&mc);
}

/* Commit and check that the write took its new structure blocks only from
 * blocks free at the previous commit. */
static void meta_commit(struct su_stack *s, struct mmodel *m)
{
	su_stack_commit(s);
	uint32_t *old = malloc(m->nr * sizeof(uint32_t));
	ck_assert(old);
	memcpy(old, m->strct, m->nr * sizeof(uint32_t));
	verify_meta(s, m);
	for (uint64_t b = 0; b < m->nr; b++) {
		if (m->strct[b] && !old[b])
			REQ(b >= m->cnr || m->ctotal[b] == 0,
			    "the space map wrote a structure to block %" PRIu64
			    ", in use at the previous commit (count %u)",
			    b, m->ctotal[b]);
		m->ctotal[b] = mm_total(m, b);
	}
	memcpy(m->cuser, m->user, m->nr * sizeof(uint32_t));
	m->cnr = m->nr;
	free(old);
}

static void live_check(struct su_stack *s, const struct mmodel *m, uint64_t b)
{
	REQ(sm_meta_get_count(s->sm, b) == mm_total(m, b),
	    "block %" PRIu64 ": live count %u, model user %u + structure %u", b,
	    sm_meta_get_count(s->sm, b), m->user[b], m->strct[b]);
	REQ(sm_meta_is_new(s->sm, b) == (mm_total(m, b) && (b >= m->cnr || !m->ctotal[b])),
	    "block %" PRIu64 ": is_new %d, count %u, committed %u", b, sm_meta_is_new(s->sm, b),
	    mm_total(m, b), b < m->cnr ? m->ctotal[b] : 0);
}

START_TEST(test_meta_random)
{
	const char *name = "sm_meta-random";
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 3);
	su_set_ctx(name, 0);
	const uint64_t dev_blocks = 60000, nr0 = 40000; /* 3 bitmaps, then 4 */
	struct su_stack s;
	su_stack_create(&s, dev_blocks, nr0, 512);
	struct mmodel m = { 0 };
	mm_resize(&m, nr0);
	m.user[0] = 1; /* the pretend superblock */
	meta_commit(&s, &m);

	size_t nhot = 1500;
	uint64_t *hot = malloc(nhot * sizeof(*hot));
	ck_assert(hot);
	for (size_t i = 0; i < nhot; i++)
		hot[i] = mu_next(&rng);
	/* blocks with user references (may hold stale entries; rebuilt at commits) */
	uint64_t *mine = malloc(2 * dev_blocks * sizeof(*mine));
	size_t nmine = 1;
	mine[0] = 0;
	ck_assert(mine);

	const uint64_t ops = mu_scaled(150000, 3000);
	uint64_t next_commit = 1 + mu_below(&rng, 5000);
	uint64_t commits = 0, aborts = 0, reopens = 0, allocs = 0, max_over = 0;
	bool extended = false;
	uint64_t used = 0;
	for (uint64_t b = 0; b < m.nr; b++)
		used += mm_total(&m, b) != 0;
	for (uint64_t op = 1; op <= ops; op++) {
		su_set_ctx(name, op);
		if (!extended && op >= ops / 2) {
			uint64_t nr = 55555;
			REQ0(sm_meta_extend(s.sm, nr));
			mm_resize(&m, nr);
			REQ(sm_meta_extend(s.sm, nr - 1) == -EINVAL, "shrinking must fail");
			extended = true;
		}
		unsigned c = (unsigned)mu_below(&rng, 100);
		uint64_t b;
		if (c < 40 && nmine)
			b = mine[mu_below(&rng, nmine)];
		else if (c < 70)
			b = hot[mu_below(&rng, nhot)] % m.nr;
		else
			b = mu_below(&rng, m.nr);
		c = (unsigned)mu_below(&rng, 100);
		bool skip = false;
		uint32_t before = mm_total(&m, b);
		if (c >= 60 && c < 90 && used > m.nr / 2)
			c = 40; /* keep the map half empty so commits have room */
		if (c < 35) {
			/* inc: only blocks the test already holds (the map's
			 * own blocks are not ours to touch) */
			if (m.user[b]) {
				REQ0(sm_meta_inc(s.sm, b));
				m.user[b]++;
			}
		} else if (c < 60) {
			if (!m.user[b]) {
				if (!m.strct[b]) {
					int r = sm_meta_dec(s.sm, b);
					REQ(r == -EINVAL, "dec of free block %" PRIu64 " = %d", b,
					    r);
				}
			} else if (b != 0 || m.user[0] > 1) { /* keep the superblock */
				REQ0(sm_meta_dec(s.sm, b));
				m.user[b]--;
			}
		} else if (c < 90) {
			uint64_t nb = UINT64_MAX;
			int r = sm_meta_new_block(s.sm, &nb);
			if (r == -ENOSPC) {
				for (uint64_t x = 0; x < m.nr; x++)
					REQ(mm_total(&m, x) || (x < m.cnr && m.ctotal[x]),
					    "ENOSPC with block %" PRIu64 " free", x);
				skip = true;
			} else {
				REQ(r == 0, "new_block = %d", r);
				REQ(nb < m.nr && mm_total(&m, nb) == 0,
				    "new_block returned %" PRIu64 " in use (count %u)", nb,
				    nb < m.nr ? mm_total(&m, nb) : 0);
				REQ(nb >= m.cnr || m.ctotal[nb] == 0,
				    "new_block returned %" PRIu64
				    ", still used by the last commit (count %u): freed in this transaction",
				    nb, m.ctotal[nb]);
				m.user[nb] = 1;
				mine[nmine++] = nb;
				allocs++;
				b = nb;
				before = 0;
			}
		} else {
			uint64_t far = m.nr + mu_below(&rng, 10);
			REQ(sm_meta_inc(s.sm, far) == -ERANGE, "inc past the end");
			REQ(sm_meta_get_count(s.sm, far) == 0, "count past the end");
		}
		if (!skip) {
			uint32_t after = mm_total(&m, b);
			used += (after != 0) - (before != 0);
			live_check(&s, &m, b);
		}
		REQ(sm_meta_nr_free(s.sm) == m.nr - used, "nr_free %" PRIu64 ", model %" PRIu64,
		    sm_meta_nr_free(s.sm), m.nr - used);
		if (op == next_commit || op == ops) {
			next_commit = op + 1 + mu_below(&rng, 5000);
			unsigned what = (unsigned)mu_below(&rng, 10);
			if (what == 0 && op != ops) {
				su_stack_reopen(&s);
				if (m.cnr != m.nr) {
					m.nr = m.cnr;
					extended = false;
				}
				memcpy(m.user, m.cuser, m.nr * sizeof(uint32_t));
				aborts++;
			} else {
				meta_commit(&s, &m);
				commits++;
				if (what == 1) {
					su_stack_reopen(&s);
					reopens++;
				}
			}
			/* the structure counts are from the last write either way */
			verify_meta(&s, &m);
			used = 0;
			uint64_t over = 0;
			for (uint64_t x = 0; x < m.nr; x++) {
				used += mm_total(&m, x) != 0;
				over += mm_total(&m, x) >= 3;
				live_check(&s, &m, x);
			}
			if (over > max_over)
				max_over = over;
			nmine = 0;
			for (uint64_t x = 0; x < m.nr; x++)
				if (m.user[x])
					mine[nmine++] = x;
		}
	}
	fprintf(stderr,
	        "%s: %" PRIu64 " ops, %" PRIu64 " commits, %" PRIu64 " aborts, %" PRIu64
	        " reopens, %" PRIu64 " allocations, max %" PRIu64 " overflow entries\n",
	        name, ops, commits, aborts, reopens, allocs, max_over);
	REQ(max_over > 336, "the overflow tree never needed more than one node (%" PRIu64 ")",
	    max_over);
	free(hot);
	free(mine);
	free(m.user);
	free(m.cuser);
	free(m.strct);
	free(m.ctotal);
	su_stack_destroy(&s);
}
END_TEST

/* A full metadata map: ENOSPC exactly when no block is free now and at the
 * commit; a block freed in the transaction is not handed out again. */
START_TEST(test_meta_full)
{
	const char *name = "sm_meta-full";
	su_set_ctx(name, 0);
	struct su_stack s;
	su_stack_create(&s, 300, 300, 64);
	struct mmodel m = { 0 };
	mm_resize(&m, 300);
	m.user[0] = 1;
	meta_commit(&s, &m);
	uint64_t b, first = UINT64_MAX, n = 0;
	int r;
	while ((r = sm_meta_new_block(s.sm, &b)) == 0) {
		REQ(mm_total(&m, b) == 0 && m.ctotal[b] == 0, "new_block %" PRIu64, b);
		m.user[b] = 1;
		if (first == UINT64_MAX)
			first = b;
		n++;
	}
	REQ(r == -ENOSPC, "new_block on a full map = %d", r);
	for (uint64_t x = 0; x < m.nr; x++)
		REQ(mm_total(&m, x), "ENOSPC with block %" PRIu64 " free", x);
	REQ(sm_meta_nr_free(s.sm) == 0, "nr_free %" PRIu64, sm_meta_nr_free(s.sm));
	/* free one allocated in this transaction: reusable at once */
	REQ0(sm_meta_dec(s.sm, first));
	m.user[first] = 0;
	REQ0(sm_meta_new_block(s.sm, &b));
	REQ(b == first, "the only free block is %" PRIu64 ", got %" PRIu64, first, b);
	m.user[b] = 1;
	/* leave room for the commit's own blocks: free 40 and commit */
	uint64_t freed = 0;
	for (uint64_t x = m.nr - 1; x > 0 && freed < 40; x--)
		if (m.user[x]) {
			REQ0(sm_meta_dec(s.sm, x));
			m.user[x] = 0;
			freed++;
		}
	meta_commit(&s, &m);
	/* now free committed blocks: they must not come back before a commit */
	uint64_t gone[20];
	unsigned ng = 0;
	for (uint64_t x = 1; x < m.nr && ng < 20; x++)
		if (m.user[x] && m.ctotal[x]) {
			REQ0(sm_meta_dec(s.sm, x));
			m.user[x] = 0;
			gone[ng++] = x;
		}
	while ((r = sm_meta_new_block(s.sm, &b)) == 0) {
		for (unsigned i = 0; i < ng; i++)
			REQ(b != gone[i], "reused block %" PRIu64 " freed in this transaction", b);
		REQ(mm_total(&m, b) == 0 && m.ctotal[b] == 0, "new_block %" PRIu64, b);
		m.user[b] = 1;
	}
	REQ(r == -ENOSPC, "new_block = %d", r);
	su_stack_destroy(&s);
	free(m.user);
	free(m.cuser);
	free(m.strct);
	free(m.ctotal);
}
END_TEST

static Suite *sm_suite(void)
{
	Suite *s = suite_create("space_map");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 1800);
	tcase_add_test(tc, test_disk_extend);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_disk_random);
	tcase_add_test(tc, test_meta_full);
	tcase_add_test(tc, test_meta_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_space_map", sm_suite);
}
