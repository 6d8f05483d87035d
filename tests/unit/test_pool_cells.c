/* Where the pool's cells fall (cell() in thin/pool_internal.h): every IO writes its block's
 * cell, so the cells' places decide which cache lines two threads share. A run of CELL_RUN
 * aligned blocks of a thin takes CELL_RUN consecutive cells, so threads in different regions or
 * thins write different lines; the same block always has the same cell. Seeded (THINP_SEED):
 * which thins and runs are checked. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_util.h"
#include "thin/pool_internal.h"
#include "thinp.h"

#define DEFAULT_SEED 0x63656c6c73ull /* "cells" */
#define NR_CHECKS    200u

static uint64_t seed;

static struct thinp_pool *open_pool(void)
{
	struct tp_dev *data, *meta;
	ck_assert_int_eq(tp_dev_open_mem(16ull << 20, &data), 0);
	ck_assert_int_eq(tp_dev_open_mem(16ull << 20, &meta), 0);
	struct thinp_pool_opts o = {.block_sectors = 128, .no_commit_timer = true};
	struct thinp_pool *p;
	char err[256];
	ck_assert_int_eq(thinp_pool_format(data, meta, &o, &p, err, sizeof(err)), 0);
	return p;
}

START_TEST(test_runs_on_consecutive_cells)
{
	struct thinp_pool *p = open_pool();
	struct mu_rng rng;
	mu_rng_init(&rng, seed);
	for (unsigned i = 0; i < NR_CHECKS; i++) {
		uint64_t id = mu_below(&rng, 1u << 24);
		uint64_t run = mu_below(&rng, 1ull << 40) / CELL_RUN * CELL_RUN;
		pthread_rwlock_t *first = cell(p, id, run);
		ck_assert(first >= p->cells && first + CELL_RUN <= p->cells + NR_CELLS);
		for (uint64_t k = 1; k < CELL_RUN; k++)
			ck_assert_msg(cell(p, id, run + k) == first + k,
				      "thin %" PRIu64 " block %" PRIu64 ": cell %td, want %td", id,
				      run + k, cell(p, id, run + k) - p->cells, first + k - p->cells);
		ck_assert_ptr_eq(cell(p, id, run), first); /* the same block, the same cell */
	}
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

/* Runs spread over the array: the first blocks of 4096 runs land on every place a run can
 * take, none on more than a few times its share. */
START_TEST(test_runs_spread)
{
	struct thinp_pool *p = open_pool();
	enum { PLACES = NR_CELLS / CELL_RUN, RUNS = 64 * PLACES };
	unsigned hits[PLACES] = {0};
	struct mu_rng rng;
	mu_rng_init(&rng, seed ^ 1);
	uint64_t id = 1 + mu_below(&rng, 1000);
	for (uint64_t r = 0; r < RUNS / 2; r++) {
		hits[(cell(p, id, r * CELL_RUN) - p->cells) / CELL_RUN]++;
		hits[(cell(p, id + 1 + r, 0) - p->cells) / CELL_RUN]++; /* other thins' first runs */
	}
	for (unsigned k = 0; k < PLACES; k++)
		ck_assert_msg(hits[k] > 0 && hits[k] < 4 * (RUNS / PLACES),
			      "place %u of %u took %u of %u runs", k, (unsigned)PLACES, hits[k],
			      (unsigned)RUNS);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

int main(void)
{
	const char *s = getenv("THINP_SEED");
	seed = s ? strtoull(s, NULL, 0) : DEFAULT_SEED;
	printf("test_pool_cells: seed %" PRIu64 " (THINP_SEED)\n", seed);
	Suite *su = suite_create("pool_cells");
	TCase *tc = tcase_create("cells");
	tcase_set_timeout(tc, 120); /* (the pool format, under sanitizers) */
	tcase_add_test(tc, test_runs_on_consecutive_cells);
	tcase_add_test(tc, test_runs_spread);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
