/* The metadata space map's overflow tree (counts >= 3, impl/pdata/
 * sm_metadata.c) is updated entry by entry, not rebuilt: after a commit that
 * changed one such count, the commit writes the path to that entry (plus the
 * bitmap and index), not a new copy of the whole tree; and the counts read
 * back after seeded random changes across many commits are the model's.
 *
 * Seeded: THINP_SEED (printed). */
#include <check.h>
#include <inttypes.h>
#include <stdlib.h>

#include "model_util.h"
#include "pdata/space_map.h"
#include "stack_util.h"

#define DEFAULT_SEED 0x0F10ull
#define NR_BLOCKS 16384u
#define NR_SHARED 3000u /* blocks with a count >= 3: a tree of about ten leaves */

START_TEST(test_overflow_updated_in_place)
{
	su_set_ctx("overflow_update", 0);
	struct su_stack s;
	su_stack_create(&s, NR_BLOCKS, NR_BLOCKS, 4096);
	/* blocks 8192.. are never allocated by the stack's own structures */
	for (uint64_t i = 0; i < NR_SHARED; i++)
		for (int k = 0; k < 3; k++)
			REQ0(sm_meta_inc(s.sm, 8192 + i));
	su_stack_commit(&s);
	uint64_t before = tp_dev_ctr(s.dev).bytes_written;
	REQ0(sm_meta_inc(s.sm, 8192 + NR_SHARED / 2));
	su_stack_commit(&s);
	uint64_t blocks = (tp_dev_ctr(s.dev).bytes_written - before) / 4096;
	/* bitmap + index + the overflow tree's root and one leaf */
	REQ(blocks <= 4, "changing one overflow count wrote %" PRIu64 " blocks", blocks);
	su_stack_reopen(&s);
	REQ(sm_meta_get_count(s.sm, 8192 + NR_SHARED / 2) == 4, "the new count did not persist");
	REQ(sm_meta_get_count(s.sm, 8192) == 3, "another count changed");
	su_stack_destroy(&s);
}
END_TEST

START_TEST(test_overflow_random)
{
	su_set_ctx("overflow_random", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	struct su_stack s;
	su_stack_create(&s, NR_BLOCKS, NR_BLOCKS, 4096);
	uint32_t *model = calloc(NR_SHARED, sizeof(*model));
	REQ(model != NULL, "out of memory");
	unsigned rounds = (unsigned)mu_scaled(40, 10);
	for (unsigned round = 0; round < rounds; round++) {
		su_set_ctx("overflow_random", round);
		for (unsigned op = 0; op < 500; op++) {
			uint64_t i = mu_below(&rng, NR_SHARED);
			if (model[i] && mu_pct(&rng, 45)) {
				REQ0(sm_meta_dec(s.sm, 8192 + i));
				model[i]--;
			} else {
				REQ0(sm_meta_inc(s.sm, 8192 + i));
				model[i]++;
			}
		}
		su_stack_commit(&s);
		if (round % 4 == 3) {
			su_stack_reopen(&s); /* loads and cross-checks the overflow tree */
			for (uint64_t i = 0; i < NR_SHARED; i++)
				REQ(sm_meta_get_count(s.sm, 8192 + i) == model[i],
				    "block %" PRIu64 ": count %u, model %u", 8192 + i,
				    sm_meta_get_count(s.sm, 8192 + i), model[i]);
		}
	}
	free(model);
	su_stack_destroy(&s);
}
END_TEST

static Suite *overflow_suite(void)
{
	Suite *s = suite_create("sm_overflow");
	TCase *tc = tcase_create("overflow");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_overflow_updated_in_place);
	tcase_add_test(tc, test_overflow_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_sm_overflow", overflow_suite);
}
