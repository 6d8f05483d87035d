/* The capacity model of thinp plan (impl/plan/plan_meta.c, plan_model.c) against hand-computed
 * cases and independent simulations (docs/capacity-planning.md, "The model"):
 *
 *   - node capacities from the node layout (252/168/126/336 entries);
 *   - leaves of sequential inserts: the split rule (halves, appends in the right one) on its
 *     edges, 1000 mappings = 7 leaves (what a real pool showed: 8 new metadata blocks with the
 *     internal node), and against a seeded simulation of libthinp's insert/split;
 *   - random inserts: the expected leaves against the mean of 16 seeded simulations of the
 *     same split rule (1,000 to 60,000 keys; fill 62-72%, not yet ln 2);
 *   - N sequential 64 KiB writes provision N blocks; N random 4 KiB writes over a range of R
 *     blocks provision R(1 - (1 - 1/R)^N), by hand and against a seeded draw;
 *   - sequential and random updates of one image copy their union (by hand, seeded draw);
 *   - random fresh keys after an image, alone and with sequential appends after them: the
 *     container's leaves against a seeded simulation of the split rule (both were misses of
 *     the model that the planning validation cases found on a real pool), and appends
 *     after a span the random writes nearly fill (their own half-full leaves);
 *   - the same near a split, averaged over the spread of each container's distinct count;
 *   - churn: a step on the end of a life starts the successor (not the old one's last moment);
 *   - events: dm-thin's low-water time (once), Docker's dm.min_free_space time (strictly
 *     less, at least 1 block), a full pool holding its size and metadata, LVM
 *     autoextend steps in whole extents up to the VG's free space, then "VG full";
 *   - the metadata blocks of a layered image with a copy-on-write container, part by part,
 *     as counted by hand from the format (a real pool of the same shape used 36).
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_util.h"
#include "pool_util.h"
#include "plan/plan_meta.h"
#include "plan/plan_model.h"
#include "plan/plan_spec.h"

static uint64_t seed;

START_TEST(test_capacity)
{
	ck_assert_uint_eq(plan_node_capacity(8), 252);
	ck_assert_uint_eq(plan_node_capacity(16), 168);
	ck_assert_uint_eq(plan_node_capacity(24), 126);
	ck_assert_uint_eq(plan_node_capacity(4), 336);
}
END_TEST

/* libthinp's insert of increasing keys into one level (impl/pdata/btree_insert.c): a full leaf
 * splits into halves before the insert, which lands in the right half. Returns the leaves. */
static uint64_t simulate_sequential(uint64_t n, unsigned cap)
{
	uint64_t leaves = 1, last = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (last == cap) {
			leaves++;
			last = cap - cap / 2;
		}
		last++;
	}
	return leaves;
}

START_TEST(test_leaves_sequential)
{
	ck_assert_uint_eq(plan_leaves_sequential(0, 252), 1);
	ck_assert_uint_eq(plan_leaves_sequential(252, 252), 1);
	ck_assert_uint_eq(plan_leaves_sequential(253, 252), 2);
	ck_assert_uint_eq(plan_leaves_sequential(378, 252), 2);
	ck_assert_uint_eq(plan_leaves_sequential(379, 252), 3);
	ck_assert_uint_eq(plan_leaves_sequential(1000, 252), 7);
	ck_assert(plan_internal_nodes(7, 1) == 1);
	ck_assert(plan_internal_nodes(1, 1) == 0);
	struct mu_rng rng;
	mu_rng_init(&rng, seed);
	for (int i = 0; i < 200; i++) {
		uint64_t n = mu_below(&rng, 200000);
		unsigned cap = i & 1 ? 252 : 126;
		ck_assert_uint_eq(plan_leaves_sequential(n, cap), simulate_sequential(n, cap));
	}
}
END_TEST

/* PRE keys 0, 1, ... in order (a sequentially written image), then N random keys above
 * them, into leaves of capacity CAP with the same split rule; the leaves made. */
static unsigned simulate_random_after(struct mu_rng *rng, unsigned pre, unsigned n, unsigned cap)
{
	unsigned nr = 1, max = (pre + n) / (cap / 2) + 2;
	uint64_t **leaf = calloc(max, sizeof(*leaf));
	unsigned *cnt = calloc(max, sizeof(*cnt));
	leaf[0] = malloc(cap * sizeof(uint64_t));
	for (unsigned k = 0; k < pre + n; k++) {
		uint64_t key = k < pre ? k : pre + (mu_next(rng) >> 2);
		unsigned at = 0;
		while (at + 1 < nr && leaf[at + 1][0] <= key)
			at++;
		if (cnt[at] == cap) {
			memmove(&leaf[at + 2], &leaf[at + 1], (nr - at - 1) * sizeof(*leaf));
			memmove(&cnt[at + 2], &cnt[at + 1], (nr - at - 1) * sizeof(*cnt));
			leaf[at + 1] = malloc(cap * sizeof(uint64_t));
			cnt[at + 1] = cap - cap / 2;
			memcpy(leaf[at + 1], leaf[at] + cap / 2, cnt[at + 1] * sizeof(uint64_t));
			cnt[at] = cap / 2;
			nr++;
			if (key >= leaf[at + 1][0])
				at++;
		}
		unsigned j = cnt[at];
		while (j && leaf[at][j - 1] > key) {
			leaf[at][j] = leaf[at][j - 1];
			j--;
		}
		leaf[at][j] = key;
		cnt[at]++;
	}
	for (unsigned i = 0; i < nr; i++)
		free(leaf[i]);
	free(leaf);
	free(cnt);
	return nr;
}

static unsigned simulate_random(struct mu_rng *rng, unsigned n, unsigned cap)
{
	return simulate_random_after(rng, 0, n, cap);
}

START_TEST(test_random_fill)
{
	/* not the asymptotic ln 2: at these sizes the splits come in waves and the fill stays
	 * lower; the model's expectation must match a simulation within 4%. The mean of 16
	 * runs: one run's count spreads by 2.6% at 60,000 keys (sd 8.5 leaves in 100 runs), so
	 * a single draw missed the bar for 30 of seeds 1-200 though the mean is within 0.3% */
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 0x5eed);
	static const unsigned sizes[] = { 1000, 5000, 20000, 60000 };
	for (unsigned i = 0; i < 4; i++) {
		unsigned n = sizes[i];
		double sim = 0;
		for (int k = 0; k < 16; k++)
			sim += simulate_random(&rng, n, 252) / 16.0;
		double model = plan_leaves_random(n, 252);
		printf("test_plan_model: %u random keys: %.2f leaves (fill %.3f), model %.1f\n", n,
		       sim, n / (sim * 252.0), model);
		ck_assert_msg(fabs(model - sim) <= 0.04 * sim + 1, "%u keys: %f vs %f", n, model,
		              sim);
	}
	ck_assert(plan_leaves_random(200, 252) == 1);
	ck_assert(plan_leaves_random(300, 252) == 2);
}
END_TEST

/* A spec of one container and nothing else. */
static struct plan_spec base_spec(void)
{
	struct plan_spec s = {
		.images = 1,
		.layers_per_image = 0,
		.containers_per_image = 1,
		.mix = { { 1 << 20, 1.0, PLAN_SEQUENTIAL } },
		.nr_mix = 1,
		.duration_h = 10,
		.step_h = 10.0 / 1440,
		.block_size = 64 << 10,
		.data_size = 1000ull * (64 << 10),
		.metadata_size = 64ull << 20,
		.autoextend_threshold = 100,
		.autoextend_percent = 20,
		.extent_size = 4 << 20,
		.basesize = 10ull << 30,
		.write_span = 10ull << 30,
	};
	return s;
}

START_TEST(test_sequential_writes)
{
	struct plan_spec s = base_spec();
	s.mix[0].size = 64 << 10;
	struct plan_container c;
	plan_container_blocks(&s, 0, 1000.0 * (64 << 10), &c);
	ck_assert(c.data == 1000);
	ck_assert(c.fresh_seq == 1000);
	ck_assert(c.leaves == 7);
	ck_assert(c.internal == 1);
	ck_assert(c.partial == 0); /* whole-block writes: nothing to zero */
	s.mix[0].size = 4096;
	plan_container_blocks(&s, 0, 1000.0 * (64 << 10), &c);
	ck_assert(c.partial == 1000); /* 4 KiB appends: each new block zeroed first */
}
END_TEST

START_TEST(test_random_writes)
{
	struct plan_spec s = base_spec();
	s.mix[0] = (struct plan_write){ 4096, 1.0, PLAN_RANDOM };
	s.write_span = 16384ull * (64 << 10); /* R = 16384 blocks */
	struct plan_container c;
	plan_container_blocks(&s, 0, 16384.0 * 4096, &c);
	/* 16384 (1 - (1 - 1/16384)^16384), by hand */
	ck_assert_msg(fabs(c.fresh_rand - 10356.847180) < 1e-3, "%f", c.fresh_rand);
	ck_assert(c.data == c.fresh_rand);
	ck_assert(c.partial == c.fresh_rand);
	/* the same draws made: distinct blocks within 5 standard deviations */
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 0xd1ce);
	const uint64_t R = 16384, N = 16384;
	unsigned char *hit = calloc(R, 1);
	uint64_t distinct = 0;
	for (uint64_t i = 0; i < N; i++) {
		uint64_t b = mu_below(&rng, R);
		distinct += !hit[b];
		hit[b] = 1;
	}
	free(hit);
	double sd = sqrt(R * (exp(-1.0) - 2 * exp(-2.0)));
	printf("test_plan_model: %" PRIu64 " random writes over %" PRIu64 " blocks hit %" PRIu64
	       ", model %.1f (sd %.1f)\n",
	       N, R, distinct, c.fresh_rand, sd);
	ck_assert(fabs((double)distinct - c.fresh_rand) < 5 * sd);
	/* updates to image data: the same formula over the image's blocks, copies */
	s.update_fraction = 1;
	plan_container_blocks(&s, 2048, 2048.0 * 4096, &c);
	ck_assert(fabs(c.cow - 2048 * (1 - pow(1 - 1 / 2048.0, 2048))) < 1e-6);
	ck_assert(c.fresh_rand == 0);
}
END_TEST

START_TEST(test_mixed_updates)
{
	/* updates only: 80% in sequential 64 KiB writes (the image's first 1024 of 2048 blocks),
	 * 20% in random 4 KiB ones over the whole image (4096 of them): the random ones copy only
	 * what the sequential ones left, 1024 + 1024 (1 - (1 - 1/2048)^4096) = 1909.5 (counting
	 * both in full gave the whole image, 2048); and a seeded draw of the same writes */
	struct plan_spec s = base_spec();
	s.mix[0] = (struct plan_write){ 64 << 10, 0.8, PLAN_SEQUENTIAL };
	s.mix[1] = (struct plan_write){ 4096, 0.2, PLAN_RANDOM };
	s.nr_mix = 2;
	s.update_fraction = 1;
	const double w = 80.0 * (1 << 20);
	struct plan_container c;
	plan_container_blocks(&s, 2048, w, &c);
	double want = 1024 + 1024 * (1 - pow(1 - 1 / 2048.0, 4096));
	ck_assert_msg(fabs(c.cow - want) < 1e-6, "cow %f, want %f", c.cow, want);
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 0xc0e);
	unsigned char *hit = calloc(2048, 1);
	double copied = 1024;
	memset(hit, 1, 1024);
	for (int i = 0; i < 4096; i++) {
		uint64_t b = mu_below(&rng, 2048);
		copied += !hit[b];
		hit[b] = 1;
	}
	free(hit);
	printf("test_plan_model: 1024 sequential + 4096 random updates of 2048 blocks copy %.0f, "
	       "model %.1f\n",
	       copied, c.cow);
	ck_assert_msg(fabs(copied - c.cow) < 0.02 * copied, "%f vs %f", copied, c.cow);
}
END_TEST

/* Leaves under libthinp's split rule, keys inserted one by one (a key already there is an
 * overwrite: nothing changes). */
struct leafsim {
	uint64_t **leaf;
	unsigned *cnt, nr, cap;
};

static void leafsim_init(struct leafsim *t, unsigned max, unsigned cap)
{
	t->leaf = calloc(max, sizeof(*t->leaf));
	t->cnt = calloc(max, sizeof(*t->cnt));
	t->leaf[0] = malloc(cap * sizeof(uint64_t));
	t->nr = 1;
	t->cap = cap;
}

static void leafsim_insert(struct leafsim *t, uint64_t key)
{
	unsigned at = 0, cap = t->cap;
	while (at + 1 < t->nr && t->leaf[at + 1][0] <= key)
		at++;
	for (unsigned j = 0; j < t->cnt[at]; j++)
		if (t->leaf[at][j] == key)
			return;
	if (t->cnt[at] == cap) {
		memmove(&t->leaf[at + 2], &t->leaf[at + 1], (t->nr - at - 1) * sizeof(*t->leaf));
		memmove(&t->cnt[at + 2], &t->cnt[at + 1], (t->nr - at - 1) * sizeof(*t->cnt));
		t->leaf[at + 1] = malloc(cap * sizeof(uint64_t));
		t->cnt[at + 1] = cap - cap / 2;
		memcpy(t->leaf[at + 1], t->leaf[at] + cap / 2, t->cnt[at + 1] * sizeof(uint64_t));
		t->cnt[at] = cap / 2;
		t->nr++;
		if (key >= t->leaf[at + 1][0])
			at++;
	}
	unsigned j = t->cnt[at];
	while (j && t->leaf[at][j - 1] > key) {
		t->leaf[at][j] = t->leaf[at][j - 1];
		j--;
	}
	t->leaf[at][j] = key;
	t->cnt[at]++;
}

static void leafsim_free(struct leafsim *t)
{
	for (unsigned i = 0; i < t->nr; i++)
		free(t->leaf[i]);
	free(t->leaf);
	free(t->cnt);
}

/* A container of spec S (half random 4 KiB writes over a 2048-block span after a
 * 512-block image, half sequential 64 KiB appends after the span) step by step: NRAND
 * random draws and NSEQ appended blocks a step, STEPS steps, the split rule simulated RUNS
 * times (seeded with SALT) against the model's leaves, within 8% at every step. */
static void check_random_then_appends(struct plan_spec *s, int nrand, int nseq, int steps,
                                      uint64_t salt)
{
	s->mix[0] = (struct plan_write){ 4096, 0.5, PLAN_RANDOM };
	s->mix[1] = (struct plan_write){ 64 << 10, 0.5, PLAN_SEQUENTIAL };
	s->nr_mix = 2;
	s->write_span = 2048ull * (64 << 10);
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ salt);
	double sim[16] = { 0 };
	const int runs = 40;
	ck_assert(steps < 16);
	for (int k = 0; k < runs; k++) {
		struct leafsim t;
		leafsim_init(&t, 64, 252);
		for (uint64_t b = 0; b < 512; b++)
			leafsim_insert(&t, b);
		uint64_t next = 512 + 2048;
		for (int st = 1; st <= steps; st++) {
			for (int i = 0; i < nrand; i++)
				leafsim_insert(&t, 512 + mu_below(&rng, 2048));
			for (int i = 0; i < nseq; i++)
				leafsim_insert(&t, next++);
			sim[st] += (double)t.nr / runs;
		}
		leafsim_free(&t);
	}
	for (int st = 1; st <= steps; st++) {
		struct plan_container c;
		plan_container_blocks(s, 512, st * 2.0 * nrand * 4096, &c);
		double model = 4 + c.leaves - 1;
		printf("test_plan_model: step %d: %.0f random of 2048 + %.0f appended: %.2f leaves, "
		       "model %.2f\n",
		       st, c.fresh_rand, c.fresh_seq, sim[st], model);
		ck_assert_msg(fabs(model - sim[st]) <= 0.08 * sim[st], "step %d: model %f, sim %f",
		              st, model, sim[st]);
	}
}

START_TEST(test_random_and_appends)
{
	/* 410 random and 26 sequential blocks a step, as an earlier 64 KiB validation case:
	 * the appends land in the random region's last leaf and split it with the random
	 * keys. Counted apart, the model said 8.5 leaves at step 3 where the simulation makes 9.8 */
	struct plan_spec s = base_spec();
	check_random_then_appends(&s, 410, 26, 6, 0x5e9);
}
END_TEST

START_TEST(test_appends_after_saturating_span)
{
	/* the 64 KiB validation case at quick scale: per 40-minute step, 546 random 4 KiB draws
	 * and 34 appended blocks, 12 steps, the span 96% full at the end. Once the appends have
	 * left the random region's last leaf they fill leaves of their own at cap / 2; counted as
	 * random keys of the region the model said 18.2 leaves at step 9 where the split rule
	 * makes 16.1 (and a real pool's metadata was 12.6% under the plan) */
	struct plan_spec s = base_spec();
	check_random_then_appends(&s, 546, 34, 12, 0x5a7);
	/* the same at a quarter of the sizes on 512 KiB blocks (the tiny validation case): a
	 * 16-block image, 64 blocks of span, 13 appends all stay in the copied last leaf, and
	 * no appends' leaf means no internal node (one made 18 metadata blocks for 15) */
	s.write_span = 64ull * (64 << 10);
	struct plan_container c;
	plan_container_blocks(&s, 16, 2 * 13.0 * (64 << 10), &c);
	ck_assert(c.fresh_seq == 13);
	ck_assert_msg(c.leaves == 1 && c.internal == 0, "leaves %f, internal %f", c.leaves,
	              c.internal);
}
END_TEST

START_TEST(test_random_spread)
{
	/* random fresh writes that bring the image's last leaf to about its 252 entries: each
	 * container's distinct count varies, so about half of them have split it; the model
	 * averages over that spread (from the mean alone: no split at all, or all at once) */
	struct plan_spec s = base_spec();
	s.mix[0] = (struct plan_write){ 64 << 10, 1.0, PLAN_RANDOM };
	s.write_span = 256ull * (64 << 10);
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 0x59d);
	static const double mean_keys[] = { 110, 122, 134 };
	for (unsigned i = 0; i < 3; i++) {
		double draws = log1p(-mean_keys[i] / 256) / log1p(-1 / 256.0);
		struct plan_container c;
		plan_container_blocks(&s, 256, draws * (64 << 10), &c);
		double sim = 0;
		const int runs = 400;
		for (int k = 0; k < runs; k++) {
			struct leafsim t;
			leafsim_init(&t, 16, 252);
			for (uint64_t b = 0; b < 256; b++)
				leafsim_insert(&t, b);
			for (int d = 0; d < (int)(draws + 0.5); d++)
				leafsim_insert(&t, 256 + mu_below(&rng, 256));
			sim += (double)t.nr / runs;
			leafsim_free(&t);
		}
		/* the image's 2 leaves, its last one copied, and the new ones */
		double model = 2 + c.leaves - 1;
		printf("test_plan_model: 256 image + %.1f random blocks (%.0f draws): %.3f leaves, "
		       "model %.3f\n",
		       c.fresh_rand, draws, sim, model);
		ck_assert_msg(fabs(model - sim) <= 0.15, "%.0f keys: model %f, sim %f",
		              mean_keys[i], model, sim);
	}
}
END_TEST

START_TEST(test_random_after_image)
{
	/* random fresh writes land beyond the image's mappings: they start in the image's last
	 * leaf (copied), with its entries, so their leaves split sooner than from an empty
	 * tree. A 512-block image (leaves of 126, 126, 126, 134) and 924 random fresh blocks:
	 * the container's tree against a seeded simulation of the split rule, over 40 draws
	 * (from an empty tree the model said 4.3 new leaves where the simulation makes 6-7; a
	 * replay on a real pool showed it: 53 metadata blocks for 47 predicted) */
	struct plan_spec s = base_spec();
	s.mix[0] = (struct plan_write){ 4096, 1.0, PLAN_RANDOM };
	s.write_span = 2048ull * (64 << 10);
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 0xa17e);
	static const double fresh[] = { 300, 924, 1500, 1900 };
	for (unsigned i = 0; i < 4; i++) {
		/* the draws that hit fresh[i] blocks */
		double draws = log1p(-fresh[i] / 2048) / log1p(-1 / 2048.0);
		struct plan_container c;
		plan_container_blocks(&s, 512, draws * 4096, &c);
		ck_assert(fabs(c.fresh_rand - fresh[i]) < 1e-3);
		double sim = 0;
		for (int k = 0; k < 40; k++)
			sim += simulate_random_after(&rng, 512, (unsigned)fresh[i], 252);
		sim /= 40;
		/* the container's leaves: the image's 4, its last one copied, and the new ones */
		double model = 4 + c.leaves - 1;
		printf("test_plan_model: 512 image + %.0f random blocks: %.2f leaves, model %.2f\n",
		       fresh[i], sim, model);
		ck_assert_msg(fabs(model - sim) <= 0.05 * sim + 0.5, "%.0f: model %f, sim %f",
		              fresh[i], model, sim);
	}
}
END_TEST

START_TEST(test_churn_life_end)
{
	/* four slots, 1.5 replaced an hour: lives of 8/3 h, slot s's first ending at
	 * (s + 1) 2/3 h; at 14/3 h slot 2 ends its second life (2 + 8/3, in floating point a
	 * hair off): its successor starts with nothing, so the pool holds what it held at 2 h,
	 * when every slot was at the same age (it counted a whole life more) */
	struct plan_spec s = base_spec();
	s.containers_per_image = 4;
	s.churn_per_hour = 1.5;
	s.duration_h = 8;
	s.step_h = 2.0 / 3;
	s.container_writes = 300ull * (64 << 10);
	s.data_size = 100000ull * (64 << 10);
	struct plan_result r;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	ck_assert_uint_eq(r.nr_pts, 13);
	/* (each container rounds its blocks up: 4 at most) */
	ck_assert_msg(fabs(r.pts[7].data_used - r.pts[3].data_used) <= 4, "%f at %f h, %f at 2 h",
	              r.pts[7].data_used, r.pts[7].t_h, r.pts[3].data_used);
	plan_result_free(&r);
	/* 1.2 an hour: lives of 10/3 h; at 10/3 h (step 5) slot 3's first life ends, the step a
	 * hair below it in floating point: ages 2.5, 5/3, 5/6 and 0 h at 90 blocks/h */
	s.churn_per_hour = 1.2;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	ck_assert_msg(fabs(r.pts[5].data_used - 450) <= 4, "%f at %f h", r.pts[5].data_used,
	              r.pts[5].t_h);
	plan_result_free(&r);
}
END_TEST

static const struct plan_event *find_event(const struct plan_result *r, enum plan_event_kind k,
                                           unsigned nth)
{
	for (unsigned i = 0; i < r->nr_ev; i++)
		if (r->ev[i].kind == k && !nth--)
			return &r->ev[i];
	return NULL;
}

START_TEST(test_min_free_space)
{
	/* 100 blocks/h into 1000: Docker's 10% wants 100 free, refused once the 901st block
	 * is written: 9 h; full when the 1000th block gets its first byte: 9.99 h */
	struct plan_spec s = base_spec();
	s.container_writes = 1000ull * (64 << 10);
	s.min_free_space = 10;
	struct plan_result r;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	const struct plan_event *e = find_event(&r, PLAN_EV_MIN_FREE_DATA, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(fabs(e->t_h - 9.0) <= s.step_h, "min_free_space at %f h", e->t_h);
	ck_assert(e->after == 100);
	e = find_event(&r, PLAN_EV_DATA_FULL, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(fabs(e->t_h - 9.99) <= s.step_h, "full at %f h", e->t_h);
	plan_result_free(&r);
	/* 0.05% of 1000 blocks is 0: at least 1 block must stay free, so creates are refused
	 * only when the pool is full */
	s.min_free_space = 0.05;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	e = find_event(&r, PLAN_EV_MIN_FREE_DATA, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert(e->after == 1);
	ck_assert_msg(fabs(e->t_h - 9.99) <= s.step_h, "min_free_space at %f h", e->t_h);
	plan_result_free(&r);
	/* off */
	s.min_free_space = 0;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	ck_assert_ptr_null(find_event(&r, PLAN_EV_MIN_FREE_DATA, 0));
	plan_result_free(&r);
	/* a workload wanting 1500 blocks of a 1000-block pool: the pool holds 1000 at most, the
	 * demand is reported apart; full at 1000 / 150 per hour */
	s.container_writes = 1500ull * (64 << 10);
	ck_assert_int_eq(plan_run(&s, &r), 0);
	ck_assert(r.peak_data == 1000);
	ck_assert(r.peak_demand == 1500);
	for (size_t i = 0; i < r.nr_pts; i++)
		ck_assert(r.pts[i].data_used <= r.pts[i].data_total);
	e = find_event(&r, PLAN_EV_DATA_FULL, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(fabs(e->t_h - 999.0 / 150) <= s.step_h, "full at %f h", e->t_h);
	/* nothing is provisioned on a full pool: the metadata stops growing there */
	size_t full = 0;
	while (r.pts[full].data_used < r.pts[full].data_total)
		full++;
	ck_assert(r.pts[r.nr_pts - 1].meta_used == r.pts[full].meta_used);
	ck_assert(r.pts[full].meta_used > r.pts[0].meta_used);
	plan_result_free(&r);
}
END_TEST

START_TEST(test_low_water)
{
	/* 100 blocks/h into 1000, low water 100: free <= 100 once the 900th block is first
	 * written, at 8.99 h; once only */
	struct plan_spec s = base_spec();
	s.container_writes = 1000ull * (64 << 10);
	s.low_water_blocks = 100;
	struct plan_result r;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	const struct plan_event *e = find_event(&r, PLAN_EV_LOW_WATER, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(fabs(e->t_h - 8.99) <= s.step_h, "low water at %f h", e->t_h);
	ck_assert_ptr_null(find_event(&r, PLAN_EV_LOW_WATER, 1));
	plan_result_free(&r);
	/* an autoextend at 80% keeps the free space above the mark: no event */
	s.autoextend_threshold = 80;
	s.vg_free = 1ull << 30;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	ck_assert_ptr_null(find_event(&r, PLAN_EV_LOW_WATER, 0));
	ck_assert_ptr_nonnull(find_event(&r, PLAN_EV_AUTOEXTEND_DATA, 0));
	plan_result_free(&r);
}
END_TEST

START_TEST(test_autoextend)
{
	/* 200 blocks/h into 1000 blocks of 64 KiB, threshold 80%, +20% in 4 MiB extents:
	 *   800 used at 4 h:        62.5 MiB + 12.5 -> 16 MiB: 1000 -> 1256 blocks
	 *   1004.8 at 5.024 h:      78.5 MiB + 15.7 -> 16 MiB: 1256 -> 1512
	 *   1209.6 at 6.048 h:      94.5 MiB + 18.9 -> 20 MiB: 1512 -> 1832
	 *   1465.6 at 7.328 h:     114.5 MiB + 22.9 -> 24 MiB: 1832 -> 2216
	 *   1772.8 at 8.864 h:     138.5 MiB + 27.7 -> 28 MiB: only 24 MiB left of 100: VG full */
	struct plan_spec s = base_spec();
	s.container_writes = 2000ull * (64 << 10);
	s.autoextend_threshold = 80;
	s.vg_free = 100ull << 20;
	struct plan_result r;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	static const double at[] = { 4.0, 5.024, 6.048, 7.328 };
	static const double to[] = { 1256, 1512, 1832, 2216 };
	for (unsigned i = 0; i < 4; i++) {
		const struct plan_event *e = find_event(&r, PLAN_EV_AUTOEXTEND_DATA, i);
		ck_assert_ptr_nonnull(e);
		ck_assert_msg(fabs(e->t_h - at[i]) <= 2 * s.step_h, "extend %u at %f", i, e->t_h);
		ck_assert_msg(e->after == to[i], "extend %u to %f", i, e->after);
	}
	ck_assert_ptr_null(find_event(&r, PLAN_EV_AUTOEXTEND_DATA, 4));
	const struct plan_event *e = find_event(&r, PLAN_EV_VG_FULL, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(fabs(e->t_h - 8.864) <= 2 * s.step_h, "VG full at %f", e->t_h);
	ck_assert(r.vg_free_left == (100 - 16 - 16 - 20 - 24) * 1048576.0);
	ck_assert(r.data_size_end == 2216.0 * (64 << 10));
	ck_assert_ptr_null(find_event(&r, PLAN_EV_DATA_FULL, 0));
	plan_result_free(&r);
}
END_TEST

START_TEST(test_layered_metadata)
{
	/* two 64 MiB layers and a container writing 8 MiB over image data and 8 MiB after it,
	 * 64 KiB blocks, 1 GiB data, 64 MiB metadata:
	 *   superblock 1; space maps 8: 2 data bitmaps (16384 blocks), their index leaf,
	 *     2 metadata bitmaps, the metadata index block, 2 overflow roots;
	 *   top-level and details trees: one leaf each (4 thins);
	 *   images 20: the base device's root 1; layer 1: 1024 mappings = 8 leaves + 1 internal;
	 *     layer 2: 2048 = 16 leaves (8 new), its copy of layer 1's last leaf, the internal
	 *     node copied (still 1): 10;
	 *   container 5: the appended 128 mappings fit one new leaf (2176 = 17 leaves), the
	 *     image's last leaf copied, 128 copied blocks in 2 leaves (126 per leaf), and the
	 *     internal node: 4 leaves + 1.
	 * A pool built so by the CLI reports 1674 used: 36 and the reserve of 1638. */
	struct plan_spec s = base_spec();
	s.layers_per_image = 2;
	s.layer_size = 64 << 20;
	s.container_writes = 16 << 20;
	s.update_fraction = 0.5;
	s.data_size = 1ull << 30;
	s.duration_h = 1;
	s.step_h = 1.0 / 60;
	struct plan_result r;
	ck_assert_int_eq(plan_run(&s, &r), 0);
	const struct plan_meta_parts *p = &r.parts_at_peak;
	ck_assert(p->superblock == 1);
	ck_assert(p->space_maps == 8);
	ck_assert(p->top_level == 1);
	ck_assert(p->details == 1);
	ck_assert(p->images == 20);
	ck_assert_msg(fabs(p->containers - 5) < 0.05, "containers %f", p->containers);
	ck_assert(p->overflow == 0);
	ck_assert(p->reserve == 1638);
	ck_assert(r.peak_data == 2304);
	const struct plan_point *end = &r.pts[r.nr_pts - 1];
	ck_assert_msg(fabs(end->meta_used - 1674) < 0.05, "%f", end->meta_used);
	plan_result_free(&r);
}
END_TEST

static Suite *plan_model_suite(void)
{
	Suite *s = suite_create("plan_model");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_leaves_sequential);
	tcase_add_test(tc, test_random_fill);
	tcase_add_test(tc, test_sequential_writes);
	tcase_add_test(tc, test_random_writes);
	tcase_add_test(tc, test_mixed_updates);
	tcase_add_test(tc, test_random_after_image);
	tcase_add_test(tc, test_random_and_appends);
	tcase_add_test(tc, test_appends_after_saturating_span);
	tcase_add_test(tc, test_churn_life_end);
	tcase_add_test(tc, test_random_spread);
	tcase_add_test(tc, test_min_free_space);
	tcase_add_test(tc, test_low_water);
	tcase_add_test(tc, test_autoextend);
	tcase_add_test(tc, test_layered_metadata);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_plan_model", plan_model_suite, &seed);
}
