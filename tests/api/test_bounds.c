/* IO ranges at the edges of the 64-bit space, through thinp.h alone: an
 * unbounded thin (size 0) refuses a range that would wrap past 2^64 (it used
 * to write the tail at offset 0), and a discard of a huge range costs its
 * mappings, not its length (it used to visit every virtual block, ~2^46 of
 * them here, under Check's timeout that is a failure). */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thinp.h"

#define BLOCK 65536u

static struct thinp_pool *new_pool(void)
{
	struct tp_dev *d, *m;
	ck_assert_int_eq(thinp_dev_open_mem(64u << 20, &d), 0);
	ck_assert_int_eq(thinp_dev_open_mem(8u << 20, &m), 0);
	struct thinp_pool_opts o = { .no_commit_timer = true, .skip_block_zeroing = true };
	struct thinp_pool *p;
	char err[512];
	ck_assert_msg(thinp_pool_format(d, m, &o, &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	return p;
}

START_TEST(a_range_past_2_64_is_refused_not_wrapped)
{
	struct thinp_pool *p = new_pool();
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &t), 0); /* unbounded */
	static uint8_t buf[4096], back[4096];
	memset(buf, 0x77, sizeof(buf));
	uint64_t off = UINT64_MAX - 99; /* 18446744073709551516, as in the report */
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), off, 0, NULL), -EINVAL);
	ck_assert_msg(strstr(thinp_pool_error(p), "64-bit"), "%s", thinp_pool_error(p));
	ck_assert_int_eq(thinp_read(t, back, sizeof(back), off, NULL), -EINVAL);
	ck_assert_int_eq(thinp_discard(t, off, sizeof(buf), NULL), -EINVAL);
	/* nothing reached offset 0 */
	struct thinp_io_result res;
	ck_assert_int_eq(thinp_read(t, back, sizeof(back), 0, &res), 0);
	ck_assert_int_eq(res.cls, THINP_READ_UNMAPPED);
	struct thinp_thin_status st;
	ck_assert_int_eq(thinp_thin_status(p, 1, &st), 0);
	ck_assert(!st.has_mapped);
	/* the last whole bytes below 2^64 are still addressable */
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), UINT64_MAX - 4095 - 4096, 0, NULL), 0);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(a_huge_discard_walks_only_mapped_blocks)
{
	struct thinp_pool *p = new_pool();
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &t), 0);
	static uint8_t buf[BLOCK];
	memset(buf, 0x5a, sizeof(buf));
	const uint64_t at[] = { 3, 1000, 1ull << 40 }; /* virtual blocks, far apart */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(thinp_write(t, buf, BLOCK, at[i] * BLOCK, 0, NULL), 0);
	struct thinp_pool_status ps;
	ck_assert_int_eq(thinp_pool_status(p, false, &ps), 0);
	ck_assert_uint_eq(ps.used_data_blocks, 3);

	/* 2^62 bytes from block 4: blocks 4 .. 2^46 + 3, holding two of the three */
	struct thinp_io_result res;
	ck_assert_int_eq(thinp_discard(t, 4 * BLOCK, 1ull << 62, &res), 0);
	ck_assert_int_eq(res.cls, THINP_DISCARD);
	ck_assert_int_eq(thinp_pool_status(p, false, &ps), 0);
	ck_assert_uint_eq(ps.used_data_blocks, 1); /* block 1000 and 2^40 went */
	ck_assert_int_eq(thinp_read(t, buf, BLOCK, 3 * BLOCK, &res), 0);
	ck_assert_int_eq(res.cls, THINP_READ_MAPPED); /* block 3 stays: below the range */
	ck_assert_int_eq(thinp_read(t, buf, BLOCK, (1ull << 40) * BLOCK, &res), 0);
	ck_assert_int_eq(res.cls, THINP_READ_UNMAPPED);

	/* a discard of an unmapped huge range is quick and a no-op */
	ck_assert_int_eq(thinp_discard(t, 1ull << 62, 1ull << 62, NULL), 0);
	ck_assert_int_eq(thinp_pool_status(p, false, &ps), 0);
	ck_assert_uint_eq(ps.used_data_blocks, 1);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("public API: ranges at the 64-bit edge");
	TCase *tc = tcase_create("bounds");
	tcase_set_timeout(tc, 30); /* generous for a loaded machine; the old discard took years */
	tcase_add_test(tc, a_range_past_2_64_is_refused_not_wrapped);
	tcase_add_test(tc, a_huge_discard_walks_only_mapped_blocks);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
