/* Device ids as Docker allocates them (impl/graph/graph_ids.c, docs/docker-driver.md §4):
 *   - a fresh set gives 1, 2, 3 ... (the cursor advances before each search; id 0 only
 *     after a wrap);
 *   - ids in use are skipped, a freed id is reused only when the cursor comes round again;
 *   - the cursor wraps at 2^24;
 *   - with every id in use the allocation fails, and a create fails with Docker's text
 *     "devmapper: Unable to find a free device ID" before touching the pool;
 *   - seeded: random marks and frees against a model of the same rule (THINP_SEED, printed).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "model_util.h"
#include "pool_util.h"

static uint64_t seed;

START_TEST(test_fresh_sequence)
{
	struct tg_ids ids;
	ck_assert_int_eq(tg_ids_init(&ids), 0);
	for (uint32_t want = 1; want <= 5; want++) {
		uint32_t id = 0;
		ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
		ck_assert_uint_eq(id, want);
	}
	/* a freed id is not taken again until the cursor wraps */
	tg_ids_mark(&ids, 2, false);
	uint32_t id;
	ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
	ck_assert_uint_eq(id, 6);
	/* ids in use ahead of the cursor are skipped */
	tg_ids_mark(&ids, 7, true);
	tg_ids_mark(&ids, 8, true);
	ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
	ck_assert_uint_eq(id, 9);
	tg_ids_free(&ids);
}
END_TEST

START_TEST(test_wrap)
{
	struct tg_ids ids;
	ck_assert_int_eq(tg_ids_init(&ids), 0);
	ids.next = TG_MAX_DEVICE_ID - 1;
	uint32_t id;
	ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
	ck_assert_uint_eq(id, TG_MAX_DEVICE_ID);
	ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
	ck_assert_uint_eq(id, 0); /* wrapped: id 0 is reachable now */
	ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
	ck_assert_uint_eq(id, 1);
	tg_ids_free(&ids);
}
END_TEST

START_TEST(test_exhaustion)
{
	struct tg_driver *d = calloc(1, sizeof(*d));
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(tg_ids_init(&d->ids), 0);
	memset(d->ids.map, 0xff, (TG_MAX_DEVICE_ID + 1u) / 8);
	tg_ids_mark(&d->ids, 12345, false);
	uint32_t id;
	ck_assert_int_eq(tg_ids_alloc(&d->ids, &id), 0);
	ck_assert_uint_eq(id, 12345); /* the last free id is found from anywhere */
	ck_assert_int_eq(tg_ids_alloc(&d->ids, &id), -ENOSPC);
	/* the driver's create fails before it opens a transaction or sends a message: no
	 * backend is set, so reaching one would crash */
	struct tg_device *dev = NULL;
	char err[256] = "";
	int r = tg_create_device(d, "layer", NULL, 1 << 20, &dev, err, sizeof(err));
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_str_eq(err, "devmapper: Unable to find a free device ID");
	ck_assert_ptr_null(dev);
	tg_ids_free(&d->ids);
	free(d);
}
END_TEST

/* The model: the same rule over a plain byte per id; marks and frees land just ahead of the
 * cursor, so the allocations skip ids in use and the cursor wraps now and then. */
START_TEST(test_random_against_model)
{
	struct mu_rng rng;
	mu_rng_init(&rng, seed);
	struct tg_ids ids;
	ck_assert_int_eq(tg_ids_init(&ids), 0);
	uint8_t *used = calloc(TG_MAX_DEVICE_ID + 1u, 1);
	ck_assert_ptr_nonnull(used);
	uint32_t cursor = TG_MAX_DEVICE_ID - 2000;
	ids.next = cursor;
	for (int step = 0; step < 20000; step++) {
		if (mu_pct(&rng, 30)) {
			uint32_t v = (cursor + 1 + (uint32_t)mu_below(&rng, 64)) & TG_MAX_DEVICE_ID;
			used[v] = !used[v];
			tg_ids_mark(&ids, v, used[v]);
			continue;
		}
		uint32_t want = cursor;
		do
			want = (want + 1) & TG_MAX_DEVICE_ID;
		while (used[want]);
		uint32_t id;
		ck_assert_int_eq(tg_ids_alloc(&ids, &id), 0);
		ck_assert_msg(id == want, "step %d: allocated %u, the rule gives %u (seed %" PRIu64 ")",
			      step, id, want, seed);
		used[id] = 1;
		cursor = id;
	}
	ck_assert_msg(cursor < TG_MAX_DEVICE_ID - 2000, "the cursor never wrapped (seed %" PRIu64 ")",
		      seed);
	free(used);
	tg_ids_free(&ids);
}
END_TEST

static Suite *ids_suite(void)
{
	Suite *s = suite_create("graph_ids");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_fresh_sequence);
	tcase_add_test(tc, test_wrap);
	tcase_add_test(tc, test_exhaustion);
	tcase_add_test(tc, test_random_against_model);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_graph_ids", ids_suite, &seed);
}
