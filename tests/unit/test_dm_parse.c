/* The kernel backend's texts, without libdevmapper or a kernel (impl/dm/dm_parse.c):
 *
 *   - thin-pool status INFO lines, as pool_status() in drivers/md/dm-thin.c prints them:
 *     "<trans> <used>/<total meta> <used>/<total data> <held root|-> <rw|ro|out_of_data_space>
 *      <discard word> <queue_if_no_space|error_if_no_space> <needs_check|-> <low water> ",
 *     every field followed by a space; older kernels stop after the held root or after the
 *     no-space word; "Fail" in fail mode and "Error" when the kernel could not read its
 *     metadata;
 *   - thin status INFO lines (thin_status()): "<mapped sectors> <highest sector|->", "Fail";
 *   - thin-pool table parameters (emit_flags()): "<meta> <data> <block sectors> <low water>
 *     <#features> <feature>... " with the devices as maj:min and a trailing space;
 *   - thin table parameters: "<pool maj:min> <dev id> [<origin maj:min>]";
 *   - the table builders, and device names.
 *
 * Every accepted line is checked field by field; malformed, truncated and overflowing lines
 * must be refused, never half-parsed into a plausible status. libthinp's own status lines
 * (the same format) must parse back to the struct libthinp reported. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/dm_backend.h"
#include "io/dev.h"
#include "thinp.h"

/* ---- thin-pool status ---- */

static struct thinp_pool_status pool_ok(const char *line)
{
	struct thinp_pool_status st;
	int r = tdm_parse_pool_status(line, &st);
	ck_assert_msg(r == 0, "'%s' refused (%d)", line, r);
	return st;
}

static void pool_bad(const char *line)
{
	struct thinp_pool_status st;
	int r = tdm_parse_pool_status(line, &st);
	ck_assert_msg(r == -EINVAL, "'%s' gave %d, not -EINVAL", line, r);
}

START_TEST(test_pool_status_fresh)
{
	/* a fresh pool of 1024 x 64 KiB blocks on 1 MiB of metadata, current kernels */
	struct thinp_pool_status st = pool_ok("0 34/256 0/1024 - rw discard_passdown "
					      "queue_if_no_space - 64 ");
	ck_assert_uint_eq(st.transaction_id, 0);
	ck_assert_uint_eq(st.used_meta_blocks, 34);
	ck_assert_uint_eq(st.total_meta_blocks, 256);
	ck_assert_uint_eq(st.used_data_blocks, 0);
	ck_assert_uint_eq(st.total_data_blocks, 1024);
	ck_assert_uint_eq(st.held_root, 0);
	ck_assert_int_eq(st.mode, THINP_MODE_WRITE);
	ck_assert(st.discard_enabled);
	ck_assert(st.discard_passdown);
	ck_assert(!st.error_if_no_space);
	ck_assert(!st.needs_check);
	ck_assert_uint_eq(st.metadata_low_water, 64);
}
END_TEST

START_TEST(test_pool_status_loop_lvm)
{
	/* Docker's loop-lvm pool after some writes and a transaction id change */
	struct thinp_pool_status st = pool_ok("5 1329/524288 33/4096 - rw discard_passdown "
					      "queue_if_no_space - 1024 ");
	ck_assert_uint_eq(st.transaction_id, 5);
	ck_assert_uint_eq(st.used_meta_blocks, 1329);
	ck_assert_uint_eq(st.total_meta_blocks, 524288);
	ck_assert_uint_eq(st.used_data_blocks, 33);
	ck_assert_uint_eq(st.total_data_blocks, 4096);
	ck_assert_uint_eq(st.metadata_low_water, 1024);
	ck_assert_int_eq(st.mode, THINP_MODE_WRITE);
}
END_TEST

START_TEST(test_pool_status_held_root)
{
	struct thinp_pool_status st = pool_ok("7 140/16384 33/4096 62 rw no_discard_passdown "
					      "error_if_no_space - 1024 ");
	ck_assert_uint_eq(st.transaction_id, 7);
	ck_assert_uint_eq(st.held_root, 62);
	ck_assert_int_eq(st.mode, THINP_MODE_WRITE);
	ck_assert(st.discard_enabled);
	ck_assert(!st.discard_passdown);
	ck_assert(st.error_if_no_space);
	ck_assert(!st.needs_check);
}
END_TEST

START_TEST(test_pool_status_out_of_data_space)
{
	struct thinp_pool_status st = pool_ok("3 200/16384 4096/4096 - out_of_data_space "
					      "discard_passdown queue_if_no_space - 1024 ");
	ck_assert_int_eq(st.mode, THINP_MODE_OUT_OF_DATA_SPACE);
	ck_assert_uint_eq(st.used_data_blocks, 4096);
	ck_assert_uint_eq(st.total_data_blocks, 4096);
	ck_assert(!st.error_if_no_space);
	/* after no_space_timeout the kernel reports error_if_no_space */
	st = pool_ok("3 200/16384 4096/4096 - out_of_data_space discard_passdown "
		     "error_if_no_space - 1024 ");
	ck_assert_int_eq(st.mode, THINP_MODE_OUT_OF_DATA_SPACE);
	ck_assert(st.error_if_no_space);
}
END_TEST

START_TEST(test_pool_status_read_only)
{
	/* out of metadata space: ro, the whole map in use */
	struct thinp_pool_status st = pool_ok("9 256/256 812/1024 - ro discard_passdown "
					      "queue_if_no_space - 64 ");
	ck_assert_int_eq(st.mode, THINP_MODE_READ_ONLY);
	ck_assert(!st.needs_check);
	ck_assert_uint_eq(st.used_meta_blocks, 256);
	/* a metadata failure: ro and needs_check */
	st = pool_ok("9 300/16384 812/1024 - ro discard_passdown queue_if_no_space needs_check "
		     "1024 ");
	ck_assert_int_eq(st.mode, THINP_MODE_READ_ONLY);
	ck_assert(st.needs_check);
	ck_assert_uint_eq(st.metadata_low_water, 1024);
}
END_TEST

START_TEST(test_pool_status_ignore_discard)
{
	struct thinp_pool_status st = pool_ok("0 34/256 0/1024 - rw ignore_discard "
					      "queue_if_no_space - 64 ");
	ck_assert(!st.discard_enabled);
	ck_assert(!st.discard_passdown);
}
END_TEST

START_TEST(test_pool_status_fail)
{
	struct thinp_pool_status st;
	memset(&st, 0xa5, sizeof(st));
	ck_assert_int_eq(tdm_parse_pool_status("Fail", &st), 0);
	ck_assert_int_eq(st.mode, THINP_MODE_FAIL);
	/* nothing else is known: no stale numbers survive */
	ck_assert_uint_eq(st.transaction_id, 0);
	ck_assert_uint_eq(st.total_data_blocks, 0);
	ck_assert_uint_eq(st.held_root, 0);
	ck_assert(!st.needs_check);
	/* "Error": pool_status() could not read the metadata */
	memset(&st, 0xa5, sizeof(st));
	ck_assert_int_eq(tdm_parse_pool_status("Error", &st), 0);
	ck_assert_int_eq(st.mode, THINP_MODE_FAIL);
	ck_assert_uint_eq(st.used_meta_blocks, 0);
	st = pool_ok("  Fail\n");
	ck_assert_int_eq(st.mode, THINP_MODE_FAIL);
}
END_TEST

START_TEST(test_pool_status_older_kernels)
{
	/* before the mode words: counts and held root only, the kernel defaults for the rest */
	struct thinp_pool_status st = pool_ok("2 20/256 10/1024 -");
	ck_assert_uint_eq(st.transaction_id, 2);
	ck_assert_uint_eq(st.used_data_blocks, 10);
	ck_assert_int_eq(st.mode, THINP_MODE_WRITE);
	ck_assert(st.discard_enabled);
	ck_assert(st.discard_passdown);
	ck_assert(!st.error_if_no_space);
	ck_assert_uint_eq(st.metadata_low_water, 0);
	st = pool_ok("2 20/256 10/1024 17 ");
	ck_assert_uint_eq(st.held_root, 17);
	/* before needs_check and the metadata low water mark */
	st = pool_ok("2 20/256 10/1024 - ro no_discard_passdown error_if_no_space ");
	ck_assert_int_eq(st.mode, THINP_MODE_READ_ONLY);
	ck_assert(st.discard_enabled);
	ck_assert(!st.discard_passdown);
	ck_assert(st.error_if_no_space);
	ck_assert(!st.needs_check);
	ck_assert_uint_eq(st.metadata_low_water, 0);
}
END_TEST

START_TEST(test_pool_status_extremes)
{
	/* leading blanks and a trailing newline, as some callers hand them over */
	struct thinp_pool_status st = pool_ok("  1 2/3 4/5 - rw discard_passdown "
					      "queue_if_no_space - 6 \n");
	ck_assert_uint_eq(st.transaction_id, 1);
	ck_assert_uint_eq(st.metadata_low_water, 6);
	/* 64-bit fields take their full range */
	st = pool_ok("18446744073709551615 1/18446744073709551615 0/18446744073709551615 "
		     "18446744073709551615 rw discard_passdown queue_if_no_space - "
		     "18446744073709551615 ");
	ck_assert_uint_eq(st.transaction_id, UINT64_MAX);
	ck_assert_uint_eq(st.total_meta_blocks, UINT64_MAX);
	ck_assert_uint_eq(st.total_data_blocks, UINT64_MAX);
	ck_assert_uint_eq(st.held_root, UINT64_MAX);
	ck_assert_uint_eq(st.metadata_low_water, UINT64_MAX);
}
END_TEST

START_TEST(test_pool_status_malformed)
{
	static const char *const bad[] = {
		"",
		"   ",
		"garbage",
		"rw",
		"-",
		/* truncated */
		"1",
		"1 ",
		"1 2",
		"1 2/",
		"1 2/3",
		"1 2/3 ",
		"1 2/3 4",
		"1 2/3 4/",
		"1 2/3 4/5",
		"1 2/3 4/5 ",
		/* wrong separators, signs, doubled blanks */
		"1 2-3 4/5 -",
		"1 2/3 4-5 -",
		"1,2/3 4/5 -",
		"1  2/3 4/5 -",
		"-1 2/3 4/5 -",
		"+1 2/3 4/5 -",
		"1 -2/3 4/5 -",
		"1 2/3 4/5 x",
		"1 2/3 4/5 12x",
		"1 2/3 4/5 -1",
		/* unknown words */
		"1 2/3 4/5 - rx",
		"1 2/3 4/5 - RW",
		"1 2/3 4/5 - rw bogus",
		"1 2/3 4/5 - rw discard_passdown queue_if_no_space - 64x ",
		"1 2/3 4/5 - rw discard_passdown queue_if_no_space needs_checks 64 ",
		/* numbers past 64 bits */
		"18446744073709551616 2/3 4/5 -",
		"1 18446744073709551616/3 4/5 -",
		"1 2/18446744073709551616 4/5 -",
		"1 2/3 18446744073709551616/5 -",
		"1 2/3 4/18446744073709551616 -",
		"1 2/3 4/5 18446744073709551616",
		"1 2/3 4/5 - rw discard_passdown queue_if_no_space - 18446744073709551616 ",
		"1 2/3 4/5 99999999999999999999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		pool_bad(bad[i]);
}
END_TEST

/* ---- thin status ---- */

static struct thinp_thin_status thin_ok(const char *line)
{
	struct thinp_thin_status st;
	int r = tdm_parse_thin_status(line, &st);
	ck_assert_msg(r == 0, "'%s' refused (%d)", line, r);
	return st;
}

START_TEST(test_thin_status)
{
	struct thinp_thin_status st = thin_ok("0 -");
	ck_assert_uint_eq(st.mapped_sectors, 0);
	ck_assert(!st.has_mapped);
	ck_assert_uint_eq(st.highest_mapped_sector, 0);
	/* 1 MiB written at offset 0 of a thin with 64 KiB blocks */
	st = thin_ok("2048 2047");
	ck_assert_uint_eq(st.mapped_sectors, 2048);
	ck_assert(st.has_mapped);
	ck_assert_uint_eq(st.highest_mapped_sector, 2047);
	/* then 64 KiB at block 500 */
	st = thin_ok("2176 64127");
	ck_assert_uint_eq(st.mapped_sectors, 2176);
	ck_assert_uint_eq(st.highest_mapped_sector, 64127);
	st = thin_ok(" 8192 8191\n");
	ck_assert_uint_eq(st.mapped_sectors, 8192);
	ck_assert_uint_eq(st.highest_mapped_sector, 8191);
	st = thin_ok("18446744073709551615 18446744073709551615");
	ck_assert_uint_eq(st.mapped_sectors, UINT64_MAX);
	ck_assert_uint_eq(st.highest_mapped_sector, UINT64_MAX);
}
END_TEST

START_TEST(test_thin_status_fail_and_malformed)
{
	struct thinp_thin_status st;
	/* the pool failed: an error of its own, for the caller to say so */
	ck_assert_int_eq(tdm_parse_thin_status("Fail", &st), -EIO);
	ck_assert_int_eq(tdm_parse_thin_status(" Fail\n", &st), -EIO);
	/* a thin whose device is gone: nothing to report, and not a malformed line */
	ck_assert_int_eq(tdm_parse_thin_status("-", &st), -ENODEV);
	ck_assert_int_eq(tdm_parse_thin_status(" -\n", &st), -ENODEV);
	/* thin_status() could not read its counts */
	ck_assert_int_eq(tdm_parse_thin_status("Error", &st), -EREMOTEIO);
	ck_assert_int_eq(tdm_parse_thin_status("Error\n", &st), -EREMOTEIO);
	static const char *const bad[] = {
		"",
		" ",
		"--",
		"Errors",
		"2048",
		"2048 ",
		"x -",
		"2048 x",
		"2048 2047x",
		"2048 -1",
		"-1 -",
		"2048 2047 9",
		"2048 - -",
		"18446744073709551616 -",
		"0 18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&st, 0xa5, sizeof(st));
		int r = tdm_parse_thin_status(bad[i], &st);
		ck_assert_msg(r == -EINVAL, "'%s' gave %d, not -EINVAL", bad[i], r);
	}
}
END_TEST

/* ---- thin-pool table ---- */

static struct tdm_pool_table table_ok(const char *params, uint64_t length)
{
	struct tdm_pool_table t;
	memset(&t, 0xa5, sizeof(t));
	t.data_sectors = length;
	int r = tdm_parse_pool_params(params, &t);
	ck_assert_msg(r == 0, "'%s' refused (%d)", params, r);
	ck_assert_uint_eq(t.data_sectors, length); /* the table length is the caller's */
	return t;
}

START_TEST(test_pool_table)
{
	/* loop-lvm as Docker set it up: `dmsetup table` prints a trailing space */
	struct tdm_pool_table t = table_ok("7:1 7:0 128 16 1 skip_block_zeroing ", 524288);
	ck_assert_str_eq(t.meta_dev, "7:1");
	ck_assert_str_eq(t.data_dev, "7:0");
	ck_assert_uint_eq(t.meta_major, 7);
	ck_assert_uint_eq(t.meta_minor, 1);
	ck_assert_uint_eq(t.data_major, 7);
	ck_assert_uint_eq(t.data_minor, 0);
	ck_assert_uint_eq(t.opts.block_sectors, 128);
	ck_assert_uint_eq(t.opts.low_water_blocks, 16);
	ck_assert(t.opts.skip_block_zeroing);
	ck_assert(!t.opts.ignore_discard);
	ck_assert(!t.opts.no_discard_passdown);
	ck_assert(!t.opts.read_only);
	ck_assert(!t.opts.error_if_no_space);
	ck_assert(!t.opts.no_commit_timer); /* not a table option: cleared, not left stale */

	/* direct-lvm, no features */
	t = table_ok("253:3 253:4 1024 0 0 ", 262144);
	ck_assert_str_eq(t.meta_dev, "253:3");
	ck_assert_str_eq(t.data_dev, "253:4");
	ck_assert_uint_eq(t.data_minor, 4);
	ck_assert_uint_eq(t.opts.block_sectors, 1024);
	ck_assert_uint_eq(t.opts.low_water_blocks, 0);
	ck_assert(!t.opts.skip_block_zeroing);

	/* every feature dm-thin prints */
	t = table_ok("253:3 253:4 2097152 32768 5 skip_block_zeroing ignore_discard "
		     "no_discard_passdown read_only error_if_no_space ",
		     1);
	ck_assert_uint_eq(t.opts.block_sectors, 2097152);
	ck_assert_uint_eq(t.opts.low_water_blocks, 32768);
	ck_assert(t.opts.skip_block_zeroing);
	ck_assert(t.opts.ignore_discard);
	ck_assert(t.opts.no_discard_passdown);
	ck_assert(t.opts.read_only);
	ck_assert(t.opts.error_if_no_space);

	/* the feature words are case-insensitive, as the kernel reads them */
	t = table_ok("259:0 259:1 128 0 1 Skip_Block_Zeroing", 128);
	ck_assert(t.opts.skip_block_zeroing);
	/* no feature count at all */
	t = table_ok("259:0 259:1 128 7", 128);
	ck_assert_uint_eq(t.opts.low_water_blocks, 7);
	/* the largest device numbers */
	t = table_ok("4294967295:4294967295 0:0 128 0 0", 128);
	ck_assert_uint_eq(t.meta_major, UINT32_MAX);
	ck_assert_uint_eq(t.meta_minor, UINT32_MAX);
	ck_assert_str_eq(t.meta_dev, "4294967295:4294967295");
}
END_TEST

START_TEST(test_pool_table_malformed)
{
	static const char *const bad[] = {
		"",
		"7:1",
		"7:1 7:0",
		"7:1 7:0 ",
		"7:1 7:0 128",
		"7:1 7:0 128 ",
		"/dev/loop1 /dev/loop0 128 16 0", /* devices are maj:min in a live table */
		"7 7:0 128 16 0",
		"7: 7:0 128 16 0",
		"7:1 :0 128 16 0",
		"7:1 7:0 x 16 0",
		"7:1 7:0 128 x 0",
		"7:1 7:0 128 16 x",
		"7:1 7:0 128 16 1",
		"7:1 7:0 128 16 2 skip_block_zeroing",
		"7:1 7:0 128 16 1 bogus",
		"7:1 7:0 128 16 1 skip_block_zeroing_and_more",
		"4294967296:1 7:0 128 16 0",
		"7:4294967296 7:0 128 16 0",
		"7:1 4294967296:0 128 16 0",
		"7:1 7:0 4294967296 16 0",
		"7:1 7:0 128 18446744073709551616 0",
		"7:1 7:0 128 16 18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdm_pool_table t = {.data_sectors = 1};
		int r = tdm_parse_pool_params(bad[i], &t);
		ck_assert_msg(r == -EINVAL, "'%s' gave %d, not -EINVAL", bad[i], r);
	}
}
END_TEST

START_TEST(test_pool_params_builder)
{
	char buf[256];
	struct thinp_pool_opts o = {0};
	ck_assert_int_eq(tdm_pool_params("/dev/loop1", "/dev/loop0", &o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/dev/loop1 /dev/loop0 128 0 0");

	o = (struct thinp_pool_opts){.block_sectors = 1024, .low_water_blocks = 16,
				     .skip_block_zeroing = true, .error_if_no_space = true};
	ck_assert_int_eq(tdm_pool_params("7:1", "7:0", &o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "7:1 7:0 1024 16 2 skip_block_zeroing error_if_no_space");

	/* no_discard_passdown is moot under ignore_discard: at most 4 features reach the kernel */
	o = (struct thinp_pool_opts){.skip_block_zeroing = true, .ignore_discard = true,
				     .no_discard_passdown = true, .read_only = true,
				     .error_if_no_space = true};
	ck_assert_int_eq(tdm_pool_params("7:1", "7:0", &o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "7:1 7:0 128 0 4 skip_block_zeroing ignore_discard read_only "
			      "error_if_no_space");
	o = (struct thinp_pool_opts){.no_discard_passdown = true};
	ck_assert_int_eq(tdm_pool_params("7:1", "7:0", &o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "7:1 7:0 128 0 1 no_discard_passdown");

	/* too small a buffer, at every length short of the text */
	o = (struct thinp_pool_opts){.skip_block_zeroing = true};
	const char *want = "7:1 7:0 128 0 1 skip_block_zeroing";
	for (size_t len = 1; len <= strlen(want); len++)
		ck_assert_int_eq(tdm_pool_params("7:1", "7:0", &o, buf, len), -ENAMETOOLONG);
	ck_assert_int_eq(tdm_pool_params("7:1", "7:0", &o, buf, strlen(want) + 1), 0);
	ck_assert_str_eq(buf, want);
}
END_TEST

/* What the builder writes, the parser reads back, for every feature combination. */
START_TEST(test_pool_params_round_trip)
{
	unsigned m = (unsigned)_i;
	struct thinp_pool_opts o = {.block_sectors = 128u << (m % 5), .low_water_blocks = m * 7,
				    .skip_block_zeroing = m & 1, .ignore_discard = m & 2,
				    .no_discard_passdown = m & 4, .read_only = m & 8,
				    .error_if_no_space = m & 16};
	char buf[256];
	ck_assert_int_eq(tdm_pool_params("253:10", "253:11", &o, buf, sizeof(buf)), 0);
	struct tdm_pool_table t = {.data_sectors = 4096};
	ck_assert_msg(tdm_parse_pool_params(buf, &t) == 0, "'%s' refused", buf);
	ck_assert_uint_eq(t.meta_minor, 10);
	ck_assert_uint_eq(t.data_minor, 11);
	ck_assert_uint_eq(t.opts.block_sectors, o.block_sectors);
	ck_assert_uint_eq(t.opts.low_water_blocks, o.low_water_blocks);
	ck_assert_int_eq(t.opts.skip_block_zeroing, o.skip_block_zeroing);
	ck_assert_int_eq(t.opts.ignore_discard, o.ignore_discard);
	ck_assert_int_eq(t.opts.no_discard_passdown, o.no_discard_passdown && !o.ignore_discard);
	ck_assert_int_eq(t.opts.read_only, o.read_only);
	ck_assert_int_eq(t.opts.error_if_no_space, o.error_if_no_space);
}
END_TEST

/* ---- thin table ---- */

START_TEST(test_thin_table)
{
	char buf[64];
	ck_assert_int_eq(tdm_thin_params(253, 0, 1, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "253:0 1");
	struct tdm_thin_table t;
	ck_assert_int_eq(tdm_parse_thin_params(buf, &t), 0);
	ck_assert_uint_eq(t.pool_major, 253);
	ck_assert_uint_eq(t.pool_minor, 0);
	ck_assert_uint_eq(t.id, 1);
	ck_assert(!t.has_origin);

	ck_assert_int_eq(tdm_thin_params(UINT32_MAX, UINT32_MAX, 0xFFFFFF, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "4294967295:4294967295 16777215");
	ck_assert_int_eq(tdm_parse_thin_params(buf, &t), 0);
	ck_assert_uint_eq(t.pool_major, UINT32_MAX);
	ck_assert_uint_eq(t.id, 0xFFFFFF);

	/* an external origin, as thin_status() prints it after the id */
	ck_assert_int_eq(tdm_parse_thin_params("253:2 7 8:16", &t), 0);
	ck_assert_uint_eq(t.pool_minor, 2);
	ck_assert_uint_eq(t.id, 7);
	ck_assert(t.has_origin);
	ck_assert_uint_eq(t.origin_major, 8);
	ck_assert_uint_eq(t.origin_minor, 16);
	ck_assert_int_eq(tdm_parse_thin_params("253:2 7 \n", &t), 0);
	ck_assert(!t.has_origin);

	for (size_t len = 1; len <= strlen("253:0 1"); len++)
		ck_assert_int_eq(tdm_thin_params(253, 0, 1, buf, len), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_thin_table_malformed)
{
	static const char *const bad[] = {
		"",
		"253:0",
		"253:0 ",
		"253:0 x",
		"253:0 1x",
		"253:0 -1",
		"253:01",
		"/dev/mapper/tp 1",
		"253 1",
		"253:0 1 junk",
		"253:0 1 8:16 9:0",
		"253:0 1 8:",
		"4294967296:0 1",
		"253:0 18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdm_thin_table t;
		int r = tdm_parse_thin_params(bad[i], &t);
		ck_assert_msg(r == -EINVAL, "'%s' gave %d, not -EINVAL", bad[i], r);
	}
}
END_TEST

/* ---- names ---- */

START_TEST(test_valid_name)
{
	ck_assert(tdm_valid_name("tp"));
	ck_assert(tdm_valid_name("tp-1"));
	ck_assert(tdm_valid_name("docker-8:1-1234-pool"));
	ck_assert(tdm_valid_name("a.b_c+d:e@f"));
	ck_assert(tdm_valid_name("..."));
	ck_assert(!tdm_valid_name(NULL));
	ck_assert(!tdm_valid_name(""));
	ck_assert(!tdm_valid_name("."));
	ck_assert(!tdm_valid_name(".."));
	ck_assert(!tdm_valid_name("a/b"));
	ck_assert(!tdm_valid_name("a b"));
	ck_assert(!tdm_valid_name("tp\n"));
	ck_assert(!tdm_valid_name("t*p"));
	char n[TDM_NAME_MAX + 1];
	memset(n, 'x', sizeof(n));
	n[TDM_NAME_MAX - 1] = 0; /* 127 bytes: the longest */
	ck_assert(tdm_valid_name(n));
	n[TDM_NAME_MAX - 1] = 'x';
	n[TDM_NAME_MAX] = 0; /* 128 */
	ck_assert(!tdm_valid_name(n));
}
END_TEST

/* ---- libthinp's lines parse back to libthinp's structs ---- */

static void same_pool_status(const struct thinp_pool_status *a, const struct thinp_pool_status *b)
{
	ck_assert_uint_eq(a->transaction_id, b->transaction_id);
	ck_assert_uint_eq(a->used_meta_blocks, b->used_meta_blocks);
	ck_assert_uint_eq(a->total_meta_blocks, b->total_meta_blocks);
	ck_assert_uint_eq(a->used_data_blocks, b->used_data_blocks);
	ck_assert_uint_eq(a->total_data_blocks, b->total_data_blocks);
	ck_assert_uint_eq(a->held_root, b->held_root);
	ck_assert_int_eq(a->mode, b->mode);
	ck_assert_int_eq(a->discard_enabled, b->discard_enabled);
	/* the line has no passdown word under ignore_discard (the parser then says false,
	 * libthinp's struct keeps the table option) */
	if (a->discard_enabled)
		ck_assert_int_eq(a->discard_passdown, b->discard_passdown);
	else
		ck_assert(!b->discard_passdown);
	ck_assert_int_eq(a->error_if_no_space, b->error_if_no_space);
	ck_assert_int_eq(a->needs_check, b->needs_check);
	ck_assert_uint_eq(a->metadata_low_water, b->metadata_low_water);
}

static void check_pool_lines(struct thinp_pool *p)
{
	char line[512];
	struct thinp_pool_status want, got;
	ck_assert_int_eq(thinp_pool_status(p, true, &want), 0);
	ck_assert_int_eq(thinp_pool_status_line(p, true, line, sizeof(line)), 0);
	ck_assert_msg(tdm_parse_pool_status(line, &got) == 0, "'%s' refused", line);
	same_pool_status(&want, &got);
	if (want.mode == THINP_MODE_FAIL)
		return;
	struct thinp_thin_status tw, tg;
	ck_assert_int_eq(thinp_thin_status(p, 1, &tw), 0);
	ck_assert_int_eq(thinp_thin_status_line(p, 1, line, sizeof(line)), 0);
	ck_assert_msg(tdm_parse_thin_status(line, &tg) == 0, "'%s' refused", line);
	ck_assert_uint_eq(tg.mapped_sectors, tw.mapped_sectors);
	ck_assert_int_eq(tg.has_mapped, tw.has_mapped);
	ck_assert_uint_eq(tg.highest_mapped_sector, tw.highest_mapped_sector);
}

START_TEST(test_libthinp_lines)
{
	unsigned m = (unsigned)_i;
	struct thinp_pool_opts o = {.no_commit_timer = true, .ignore_discard = m & 1,
				    .no_discard_passdown = m & 2, .error_if_no_space = m & 4};
	struct tp_dev *data, *meta;
	ck_assert_int_eq(tp_dev_open_mem(64ull << 20, &data), 0);
	ck_assert_int_eq(tp_dev_open_mem(4ull << 20, &meta), 0);
	struct thinp_pool *p;
	char err[256];
	ck_assert_msg(thinp_pool_format(data, meta, &o, &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	check_pool_lines(p);

	/* mapped blocks, a transaction id, a held metadata snapshot */
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &t), 0);
	static uint8_t buf[3 << 16];
	memset(buf, 0x5a, sizeof(buf));
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), 40ull << 16, 0, NULL), 0);
	ck_assert_int_eq(thinp_set_transaction_id(p, 0, 41), 0);
	ck_assert_int_eq(thinp_reserve_metadata_snap(p), 0);
	check_pool_lines(p);

	/* out of data space, with the pool's own policy word */
	struct thinp_pool_status st;
	ck_assert_int_eq(thinp_pool_status(p, true, &st), 0);
	uint64_t left = st.total_data_blocks - st.used_data_blocks;
	if (o.error_if_no_space) {
		for (uint64_t b = 0; b <= left; b++)
			(void)thinp_write(t, buf, 1 << 16, (100 + b) << 16, 0, NULL);
		ck_assert_int_eq(thinp_pool_status(p, true, &st), 0);
		ck_assert_int_eq(st.mode, THINP_MODE_OUT_OF_DATA_SPACE);
		check_pool_lines(p);
	}
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

static Suite *dm_parse_suite(void)
{
	Suite *s = suite_create("dm_parse");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_pool_status_fresh);
	tcase_add_test(tc, test_pool_status_loop_lvm);
	tcase_add_test(tc, test_pool_status_held_root);
	tcase_add_test(tc, test_pool_status_out_of_data_space);
	tcase_add_test(tc, test_pool_status_read_only);
	tcase_add_test(tc, test_pool_status_ignore_discard);
	tcase_add_test(tc, test_pool_status_fail);
	tcase_add_test(tc, test_pool_status_older_kernels);
	tcase_add_test(tc, test_pool_status_extremes);
	tcase_add_test(tc, test_pool_status_malformed);
	tcase_add_test(tc, test_thin_status);
	tcase_add_test(tc, test_thin_status_fail_and_malformed);
	tcase_add_test(tc, test_pool_table);
	tcase_add_test(tc, test_pool_table_malformed);
	tcase_add_test(tc, test_pool_params_builder);
	tcase_add_loop_test(tc, test_pool_params_round_trip, 0, 32);
	tcase_add_test(tc, test_thin_table);
	tcase_add_test(tc, test_thin_table_malformed);
	tcase_add_test(tc, test_valid_name);
	tcase_add_loop_test(tc, test_libthinp_lines, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dm_parse_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
