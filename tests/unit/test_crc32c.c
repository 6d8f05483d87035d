/* CRC-32C as dm-persistent-data uses it: the published check value, the
 * checksum thin_check expects for a zeroed superblock, and the hardware path
 * agreeing with the table on random buffers of every length and alignment. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/crc32c.h"
#include "pdata/format.h"

START_TEST(test_vectors)
{
	ck_assert_uint_eq(tp_crc32c(0xFFFFFFFFu, "123456789", 9), 0x1CF96D7Cu);
	ck_assert_uint_eq(tp_crc32c_portable(0xFFFFFFFFu, "123456789", 9), 0x1CF96D7Cu);
	static uint8_t zero[4096];
	/* thin_check: "bad checksum in superblock, wanted 1490015127" */
	ck_assert_uint_eq(tp_block_csum(zero, sizeof(zero), TP_SUPERBLOCK_CSUM_XOR), 1490015127u);
}
END_TEST

START_TEST(test_paths_agree)
{
	uint64_t s = 0x1234567;
	uint8_t buf[4200];
	for (size_t i = 0; i < sizeof(buf); i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (uint8_t)(s >> 56);
	}
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 1 + len / 3)
			ck_assert_msg(tp_crc32c(0xFFFFFFFFu, buf + off, len) ==
					      tp_crc32c_portable(0xFFFFFFFFu, buf + off, len),
				      "off %zu len %zu", off, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_vectors);
	tcase_add_test(tc, test_paths_agree);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
