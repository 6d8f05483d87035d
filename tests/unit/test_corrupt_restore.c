/* Restore must never write metadata that the checker rejects.
 *
 * Found by tests/fuzz/fuzz_restore.c (reproducers in
 * tests/fuzz/corpus/restore/crash-*):
 *  - XML that maps one virtual block of a device twice to the same data
 *    block was restored "successfully", each occurrence taking a data-block
 *    reference while the second insert overwrote the first mapping (same
 *    block: no reference dropped): the checker reports the block leaked;
 *  - mapping times and a snap_time later than the superblock's time were
 *    restored as given: the checker reports times in the future.
 * Each case here must either be refused by xml_restore (a message naming
 * the input line) or check clean. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "thin/check.h"
#include "thin/xml.h"

#define META_BYTES (2u << 20)

#define HEAD                                                                                    \
	"<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" "        \
	"data_block_size=\"128\" nr_data_blocks=\"64\">\n"                                      \
	"  <device dev_id=\"1\" mapped_blocks=\"2\" transaction=\"0\" creation_time=\"0\" " \
	"snap_time=\"0\">\n"
#define TAIL "  </device>\n</superblock>\n"

static const char *const cases[] = {
	/* the same mapping twice */
	HEAD "    <single_mapping origin_block=\"5\" data_block=\"3\" time=\"0\"/>\n"
	     "    <single_mapping origin_block=\"5\" data_block=\"3\" time=\"0\"/>\n" TAIL,
	/* one virtual block, two data blocks */
	HEAD "    <single_mapping origin_block=\"5\" data_block=\"3\" time=\"0\"/>\n"
	     "    <single_mapping origin_block=\"5\" data_block=\"4\" time=\"0\"/>\n" TAIL,
	/* mapping and snapshot times after the pool's time (superblock time 0) */
	"<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" "
	"data_block_size=\"128\" nr_data_blocks=\"64\">\n"
	"  <device dev_id=\"0\" mapped_blocks=\"4\" transaction=\"0\" creation_time=\"0\" "
	"snap_time=\"1\">\n"
	"    <range_mapping origin_begin=\"7\" data_begin=\"9\" length=\"4\" time=\"1\"/>\n" TAIL,
	/* overlapping ranges */
	HEAD "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"4\" time=\"0\"/>\n"
	     "    <range_mapping origin_begin=\"2\" data_begin=\"10\" length=\"4\" time=\"0\"/>\n" TAIL,
};

static void show(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "  check: %s\n", msg);
}

START_TEST(test_restore_never_writes_what_check_rejects)
{
	const char *xml = cases[_i];
	FILE *in = fmemopen((void *)xml, strlen(xml), "r");
	ck_assert_ptr_nonnull(in);
	struct tp_dev *meta;
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &meta), 0);
	char err[512] = "";
	struct xml_restore_opts o = {.cache_blocks = 0};
	int r = xml_restore(in, meta, &o, err, sizeof(err));
	fclose(in);
	fprintf(stderr, "case %d: restore %d \"%s\"\n", _i, r, err);
	if (!r) {
		unsigned nr = 0;
		struct tcheck_opts co = {.max_reports_per_kind = 4};
		ck_assert_int_eq(tcheck_run(meta, &co, show, NULL, &nr), 0);
		ck_assert_msg(nr == 0,
			      "case %d: restore succeeded but the checker finds %u faults (see above)",
			      _i, nr);
	}
	tp_dev_close(meta);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("corrupt_restore");
	TCase *tc = tcase_create("duplicates");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_restore_never_writes_what_check_rejects, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
