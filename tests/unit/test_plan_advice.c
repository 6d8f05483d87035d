/* The recommendations of thinp plan (impl/plan/plan_advice.c, docs/capacity-planning.md,
 * "Recommendations"):
 *
 *   - writes that fill whole blocks provision the same at every block size: the largest
 *     (1 MiB) is chosen, for the fewest metadata blocks;
 *   - small random writes over a wide range provision a block each: 64 KiB is chosen, and
 *     every larger candidate provisions more;
 *   - the metadata size is twice the model's peak at the chosen block plus the kernel's
 *     reserve, in whole MiB, at least 2 MiB, and at most 16 GiB with the reason saying so;
 *   - the candidates are the model's own runs (their peaks equal a plan_run at that size).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan_advice.h"
#include "plan/plan_meta.h"
#include "plan/plan_model.h"

static struct plan_spec spec(uint64_t size, enum plan_pattern pattern)
{
	struct plan_spec s = {
		.images = 2,
		.layers_per_image = 3,
		.layer_size = 64 << 20,
		.containers_per_image = 2,
		.container_writes = 256 << 20,
		.mix = { { size, 1.0, pattern } },
		.nr_mix = 1,
		.write_span = 4ull << 30,
		.duration_h = 4,
		.step_h = 4.0 / 240,
		.block_size = 64 << 10,
		.data_size = 100ull << 30,
		.metadata_size = 1ull << 30,
		.autoextend_threshold = 100,
		.extent_size = 4 << 20,
		.basesize = 10ull << 30,
	};
	return s;
}

static uint64_t want_metadata(double peak)
{
	double want = 2 * peak;
	want += (double)plan_meta_reserve((uint64_t)(want * 10 / 9));
	double bytes = ceil(want * PLAN_META_BLOCK / (1 << 20)) * (1 << 20);
	return bytes < (2 << 20) ? 2 << 20 : (uint64_t)bytes;
}

START_TEST(test_whole_blocks_choose_largest)
{
	struct plan_spec s = spec(1 << 20, PLAN_SEQUENTIAL);
	struct plan_advice a;
	ck_assert_int_eq(plan_advise(&s, &a), 0);
	ck_assert_uint_eq(a.block_size, 1 << 20);
	for (unsigned i = 1; i < PLAN_CANDIDATES; i++) {
		ck_assert(a.cand[i].peak_data_bytes == a.cand[0].peak_data_bytes);
		ck_assert(a.cand[i].peak_meta_blocks < a.cand[i - 1].peak_meta_blocks);
	}
	ck_assert_uint_eq(a.metadata_size, want_metadata(a.cand[4].peak_meta_blocks));
	ck_assert_ptr_nonnull(strstr(a.reason_block, "the largest block wins"));
}
END_TEST

START_TEST(test_small_random_choose_smallest)
{
	struct plan_spec s = spec(4096, PLAN_RANDOM);
	struct plan_advice a;
	ck_assert_int_eq(plan_advise(&s, &a), 0);
	ck_assert_uint_eq(a.block_size, 64 << 10);
	for (unsigned i = 1; i < PLAN_CANDIDATES; i++)
		ck_assert(a.cand[i].peak_data_bytes > 1.05 * a.cand[0].peak_data_bytes);
	ck_assert_uint_eq(a.metadata_size, want_metadata(a.cand[0].peak_meta_blocks));
	ck_assert_ptr_nonnull(strstr(a.reason_block, "64 KiB, the kernel's smallest"));
	/* a candidate is the model's own run at its block size */
	struct plan_spec t = s;
	t.block_size = 128 << 10;
	t.data_size = 1ull << 50;
	t.min_free_space = 0;
	struct plan_result r;
	ck_assert_int_eq(plan_run(&t, &r), 0);
	ck_assert(r.peak_demand * (128 << 10) == a.cand[1].peak_data_bytes);
	plan_result_free(&r);
}
END_TEST

START_TEST(test_metadata_limits)
{
	/* tiny: LVM's 2 MiB floor */
	struct plan_spec s = spec(1 << 20, PLAN_SEQUENTIAL);
	s.images = 1;
	s.layers_per_image = 1;
	s.layer_size = 1 << 20;
	s.containers_per_image = 0;
	struct plan_advice a;
	ck_assert_int_eq(plan_advise(&s, &a), 0);
	ck_assert_uint_eq(a.metadata_size, 2 << 20);
	ck_assert_ptr_null(strstr(a.reason_meta, "over the 16 GiB limit"));
	/* huge: random 4 KiB writes scattered over 64 TiB by 2000 containers need more than
	 * 16 GiB of metadata at any block size */
	s = spec(4096, PLAN_RANDOM);
	s.images = 100;
	s.containers_per_image = 20;
	s.container_writes = 64ull << 30;
	s.write_span = 64ull << 40;
	s.duration_h = 1;
	s.step_h = 0.5;
	ck_assert_int_eq(plan_advise(&s, &a), 0);
	ck_assert_uint_eq(a.metadata_size, PLAN_MAX_METADATA);
	ck_assert_ptr_nonnull(strstr(a.reason_meta, "over the 16 GiB limit"));
}
END_TEST

static Suite *plan_advice_suite(void)
{
	Suite *s = suite_create("plan_advice");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_whole_blocks_choose_largest);
	tcase_add_test(tc, test_small_random_choose_smallest);
	tcase_add_test(tc, test_metadata_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	printf("test_plan_advice: no randomness\n");
	SRunner *sr = srunner_create(plan_advice_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
