/* The fault wrapper's torn power loss (tests/support/dev_fault.h): the cut
 * that also stops the flush after write K, and tp_fault_crash_torn — which
 * pieces of the volatile cache reach the disk, in what order, with a
 * callback and with its seeded choice. The crash harnesses build on these
 * rules, so they are pinned down here on a small memory device. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "support/dev_fault.h"

#define DEV_BYTES (64u * 1024u)
#define BLK       4096u
#define SECTOR    512u

struct rig {
	struct tp_dev *inner, *dev;
	struct tp_fault *f;
};

static void rig_open(struct rig *g)
{
	ck_assert_int_eq(tp_dev_open_mem(DEV_BYTES, &g->inner), 0);
	ck_assert_int_eq(tp_fault_wrap(g->inner, &g->dev, &g->f), 0);
	tp_fault_set_volatile(g->f, 1);
}

static void fill(uint8_t *b, uint8_t v, size_t n)
{
	memset(b, v, n);
}

static uint8_t disk_byte(struct rig *g, uint64_t off)
{
	uint8_t v;
	ck_assert_int_eq(tp_dev_pread(g->inner, &v, 1, off), 0);
	return v;
}

/* land only the sectors whose bit is set in *ctx (for write 0 of the cache) */
static bool land_mask(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
                      uint64_t piece_off, uint64_t piece_len)
{
	const uint32_t *mask = ctx;
	(void)write_off;
	(void)write_len;
	ck_assert_uint_eq(piece_len, SECTOR);
	return nth == 0 && ((*mask >> (piece_off / SECTOR)) & 1);
}

START_TEST(test_sectors_land_by_mask)
{
	struct rig g;
	uint8_t buf[BLK];
	uint32_t mask = 0x5a; /* sectors 1, 3, 4, 6 */
	struct tp_fault_tear how = { .piece = SECTOR, .land = land_mask, .ctx = &mask };
	struct tp_fault_tear_stats st;

	rig_open(&g);
	fill(buf, 0x11, sizeof(buf));
	ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), BLK), 0);
	ck_assert_int_eq(tp_dev_flush(g.dev), 0);
	fill(buf, 0x22, sizeof(buf));
	ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), BLK), 0);
	ck_assert_uint_eq(tp_fault_cached(g.f), 1);
	ck_assert_int_eq(tp_fault_crash_torn(g.f, &how, &st), 0);
	ck_assert_uint_eq(st.cached, 1);
	ck_assert_uint_eq(st.whole, 0);
	ck_assert_uint_eq(st.partial, 1);
	for (unsigned s = 0; s < BLK / SECTOR; s++) {
		uint8_t want = (mask >> s) & 1 ? 0x22 : 0x11;
		ck_assert_msg(disk_byte(&g, BLK + s * SECTOR) == want &&
		                      disk_byte(&g, BLK + s * SECTOR + SECTOR - 1) == want,
		              "sector %u holds 0x%02x, expected 0x%02x", s,
		              disk_byte(&g, BLK + s * SECTOR), want);
	}
	/* after the crash the wrapper refuses IO; the inner device is the disk */
	ck_assert_int_ne(tp_dev_pread(g.dev, buf, SECTOR, 0), 0);
	tp_dev_close(g.dev);
}
END_TEST

static bool land_second_only(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
                             uint64_t piece_off, uint64_t piece_len)
{
	(void)ctx;
	(void)write_off;
	(void)write_len;
	(void)piece_off;
	(void)piece_len;
	return nth == 1;
}

static bool land_first_only(void *ctx, size_t nth, uint64_t write_off, uint64_t write_len,
                            uint64_t piece_off, uint64_t piece_len)
{
	(void)ctx;
	(void)write_off;
	(void)write_len;
	(void)piece_off;
	(void)piece_len;
	return nth == 0;
}

/* Two cached writes to one block: landing one of them leaves that version;
 * landing both leaves the newer (issue order, never older over newer). */
START_TEST(test_overwrites_keep_issue_order)
{
	for (int which = 0; which < 3; which++) {
		struct rig g;
		uint8_t buf[BLK];
		struct tp_fault_tear how = { .piece = 0, .land_pct = 100 };
		uint8_t want[] = { 0xa1, 0xb2, 0xb2 };

		if (which == 0)
			how.land = land_first_only;
		else if (which == 1)
			how.land = land_second_only;
		rig_open(&g);
		fill(buf, 0xa1, sizeof(buf));
		ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), 0), 0);
		fill(buf, 0xb2, sizeof(buf));
		ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), 0), 0);
		ck_assert_int_eq(tp_fault_crash_torn(g.f, &how, NULL), 0);
		ck_assert_msg(disk_byte(&g, 0) == want[which] &&
		                      disk_byte(&g, BLK - 1) == want[which],
		              "case %d: the block holds 0x%02x, expected 0x%02x", which,
		              disk_byte(&g, 0), want[which]);
		tp_dev_close(g.dev);
	}
}
END_TEST

/* The seeded choice: 0% lands nothing, 100% everything, 50% a mix that
 * depends on the seed alone. */
START_TEST(test_seeded_tear_is_deterministic)
{
	uint8_t img[2][DEV_BYTES];
	uint64_t landed[2] = { 0, 0 };

	for (int pct = 0; pct <= 100; pct += 50) {
		for (int run = 0; run < 2; run++) {
			struct rig g;
			uint8_t buf[2 * BLK];
			struct tp_fault_tear how = { .piece = SECTOR,
				                     .seed = 0x5eed,
				                     .land_pct = (unsigned)pct };
			struct tp_fault_tear_stats st;

			rig_open(&g);
			for (unsigned i = 0; i < 4; i++) {
				fill(buf, (uint8_t)(0x40 + i), sizeof(buf));
				ck_assert_int_eq(
				        tp_dev_pwrite(g.dev, buf, sizeof(buf), i * 2 * BLK), 0);
			}
			ck_assert_int_eq(tp_dev_write_zeroes(g.dev, 8 * BLK, BLK), 0);
			ck_assert_int_eq(tp_fault_crash_torn(g.f, &how, &st), 0);
			ck_assert_uint_eq(st.cached, 5);
			ck_assert_int_eq(tp_dev_pread(g.inner, img[run], DEV_BYTES, 0), 0);
			landed[run] = 0;
			for (unsigned s = 0; s < 8 * BLK / SECTOR; s++)
				landed[run] += img[run][s * SECTOR] != 0;
			if (pct == 0)
				ck_assert_uint_eq(st.whole + st.partial, 0);
			if (pct == 100)
				ck_assert_uint_eq(st.whole, 5);
			tp_dev_close(g.dev);
		}
		ck_assert_msg(!memcmp(img[0], img[1], DEV_BYTES), "%d%%: one seed, two disks", pct);
		if (pct == 0)
			ck_assert_uint_eq(landed[0], 0);
		else if (pct == 100)
			ck_assert_uint_eq(landed[0], 8 * BLK / SECTOR);
		else
			ck_assert_msg(landed[0] > 0 && landed[0] < 8 * BLK / SECTOR,
			              "50%%: %llu of 64 sectors landed",
			              (unsigned long long)landed[0]);
	}
}
END_TEST

/* Without the option a flush issued right after write K still completes;
 * with it, power is gone as write K completes: the flush does not drain,
 * and write K+1 never reaches even the cache. */
START_TEST(test_cut_skips_flush)
{
	for (int skips = 0; skips < 2; skips++) {
		struct rig g;
		uint8_t buf[BLK];

		rig_open(&g);
		tp_fault_cut_skips_flush(g.f, skips);
		tp_fault_cut_after(g.f, 2);
		fill(buf, 0x33, sizeof(buf));
		ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), 0), 0);
		ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), BLK), 0);
		ck_assert_int_eq(tp_dev_flush(g.dev), 0);
		ck_assert_uint_eq(tp_fault_cached(g.f), skips ? 2 : 0);
		ck_assert_int_eq(tp_dev_pwrite(g.dev, buf, sizeof(buf), 2 * BLK), 0);
		ck_assert_uint_eq(tp_fault_cached(g.f), skips ? 2 : 0);
		ck_assert_uint_eq(tp_fault_writes_seen(g.f), 3);
		tp_fault_crash(g.f);
		ck_assert_uint_eq(disk_byte(&g, 0), skips ? 0 : 0x33);
		ck_assert_uint_eq(disk_byte(&g, BLK), skips ? 0 : 0x33);
		ck_assert_uint_eq(disk_byte(&g, 2 * BLK), 0);
		tp_dev_close(g.dev);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dev_fault_torn");
	TCase *tc = tcase_create("torn");
	tcase_add_test(tc, test_sectors_land_by_mask);
	tcase_add_test(tc, test_overwrites_keep_issue_order);
	tcase_add_test(tc, test_seeded_tear_is_deterministic);
	tcase_add_test(tc, test_cut_skips_flush);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
