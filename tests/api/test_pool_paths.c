/* libthinp as an outsider uses it: thinp.h only, linked to libthinp.so.
 * Covers the device openers and thinp_pool_open_paths (create, open, dm-thin's
 * format-when-blank rule, refusals, undo of a failed create, the exclusive
 * lock, growing files) and one IO round trip with its outcome classes. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thinp.h"

static char tmp[256];

static void setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmp, sizeof(tmp), "%s/thinp-api.XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
}

static const char *path(const char *name)
{
	static char buf[4][300];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, name);
	return buf[i];
}

static bool exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static long long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static int open_paths(struct thinp_pool_paths *w, struct thinp_pool **p, bool *formatted,
		      char *err)
{
	struct thinp_pool_opts o = { .no_commit_timer = true };
	return thinp_pool_open_paths(w, &o, p, formatted, err, 512);
}

START_TEST(create_in_a_directory_with_dockers_sizes_then_open)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .how = THINP_OPEN_CREATE };
	struct thinp_pool *p;
	bool formatted = false;
	char err[512];
	ck_assert_msg(open_paths(&w, &p, &formatted, err) == 0, "%s", err);
	ck_assert(formatted);
	ck_assert_int_eq(file_size(path("pool/data")), (long long)THINP_DEFAULT_DATA_SIZE);
	ck_assert_int_eq(file_size(path("pool/metadata")), (long long)THINP_DEFAULT_META_SIZE);
	ck_assert_uint_eq(thinp_pool_block_bytes(p), 65536);
	ck_assert_int_eq(thinp_pool_close(p), 0);

	w.how = THINP_OPEN_EXISTING;
	ck_assert_msg(open_paths(&w, &p, &formatted, err) == 0, "%s", err);
	ck_assert(!formatted);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(create_refuses_an_existing_pool_unless_forced)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .data_size = 64 << 20,
				      .meta_size = 8 << 20, .how = THINP_OPEN_CREATE };
	struct thinp_pool *p;
	char err[512];
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	ck_assert_int_eq(thinp_pool_close(p), 0);

	ck_assert_int_eq(open_paths(&w, &p, NULL, err), -EEXIST);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err, "already holds a thin pool") && strstr(err, "metadata"), "%s",
		      err);
	/* the refused create left the pool as it was */
	w.how = THINP_OPEN_EXISTING;
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	struct thinp_thin_status ts;
	ck_assert_int_eq(thinp_thin_status(p, 1, &ts), 0);
	ck_assert_int_eq(thinp_pool_close(p), 0);

	w.how = THINP_OPEN_CREATE;
	w.force = true;
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	ck_assert_int_ne(thinp_thin_status(p, 1, &ts), 0); /* a new pool: thin 1 is gone */
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(open_of_a_missing_pool_creates_nothing)
{
	struct thinp_pool_paths w = { .dir = path("none"), .how = THINP_OPEN_EXISTING };
	struct thinp_pool *p;
	char err[512];
	ck_assert_int_eq(open_paths(&w, &p, NULL, err), -ENOENT);
	ck_assert_msg(strstr(err, "does not exist"), "%s", err);
	ck_assert(!exists(path("none")));
}
END_TEST

START_TEST(any_formats_a_blank_pool_then_opens_it)
{
	struct thinp_pool_paths w = { .data = path("d"), .metadata = path("m"),
				      .data_size = 32 << 20, .meta_size = 8 << 20,
				      .how = THINP_OPEN_ANY };
	struct thinp_pool *p;
	struct thinp_thin *t;
	bool formatted;
	char err[512];
	static char buf[4096], back[4096];
	memset(buf, 0xa5, sizeof(buf));
	ck_assert_msg(open_paths(&w, &p, &formatted, err) == 0, "%s", err);
	ck_assert(formatted);
	ck_assert_int_eq(thinp_create_thin(p, 7), 0);
	ck_assert_int_eq(thinp_thin_open(p, 7, 1 << 20, &t), 0);
	struct thinp_io_result res;
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), 8192, THINP_IO_FUA, &res), 0);
	ck_assert_int_eq(res.cls, THINP_WRITE_PROVISION_ZERO); /* zeroing is on by default */
	ck_assert_str_eq(thinp_class_name(res.cls), "write_provision_zero");
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), 8192, 0, &res), 0);
	ck_assert_int_eq(res.cls, THINP_WRITE_OVERWRITE);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);

	ck_assert_msg(open_paths(&w, &p, &formatted, err) == 0, "%s", err);
	ck_assert(!formatted);
	ck_assert_int_eq(thinp_thin_open(p, 7, 1 << 20, &t), 0);
	ck_assert_int_eq(thinp_read(t, back, sizeof(back), 8192, &res), 0);
	ck_assert_int_eq(res.cls, THINP_READ_MAPPED);
	ck_assert_mem_eq(back, buf, sizeof(buf));
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(any_never_formats_beside_a_lone_device)
{
	FILE *f = fopen(path("d"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("somebody's data", f);
	fclose(f);
	struct thinp_pool_paths w = { .data = path("d"), .metadata = path("m"),
				      .how = THINP_OPEN_ANY };
	struct thinp_pool *p;
	char err[512];
	ck_assert_int_eq(open_paths(&w, &p, NULL, err), -EEXIST);
	ck_assert_msg(strstr(err, "refusing to create a pool over an existing device"), "%s", err);
	ck_assert(!exists(path("m")));
	ck_assert_int_eq(file_size(path("d")), 15);
}
END_TEST

START_TEST(a_failed_create_leaves_nothing_it_made)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .meta_size = 1000,
				      .how = THINP_OPEN_CREATE };
	struct thinp_pool *p;
	char err[512];
	ck_assert_int_eq(open_paths(&w, &p, NULL, err), -EINVAL);
	ck_assert_msg(strstr(err, "1000") && strstr(err, "64k"), "%s", err);
	ck_assert(!exists(path("pool")));

	/* the data file is made, then the metadata cannot be: the data file goes again */
	struct thinp_pool_paths w2 = { .data = path("d"), .metadata = path("no/such/dir/m"),
				       .data_size = 1 << 20, .how = THINP_OPEN_CREATE };
	ck_assert_int_eq(open_paths(&w2, &p, NULL, err), -ENOENT);
	ck_assert_msg(strstr(err, "cannot open the metadata device"), "%s", err);
	ck_assert(!exists(path("d")));
}
END_TEST

START_TEST(a_second_opener_is_told_the_pool_is_busy)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .data_size = 16 << 20,
				      .meta_size = 4 << 20, .how = THINP_OPEN_CREATE };
	struct thinp_pool *p, *q;
	char err[512];
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	w.how = THINP_OPEN_EXISTING;
	ck_assert_int_eq(open_paths(&w, &q, NULL, err), -EBUSY);
	ck_assert_msg(strstr(err, "another process has this pool open"), "%s", err);
	ck_assert_int_eq(thinp_pool_close(p), 0);
	ck_assert_msg(open_paths(&w, &q, NULL, err) == 0, "%s", err);
	ck_assert_int_eq(thinp_pool_close(q), 0);
}
END_TEST

START_TEST(read_only_never_formats)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .how = THINP_OPEN_ANY };
	struct thinp_pool_opts o = { .read_only = true, .no_commit_timer = true };
	struct thinp_pool *p;
	char err[512];
	ck_assert_int_eq(thinp_pool_open_paths(&w, &o, &p, NULL, err, sizeof(err)), -ENOENT);
	ck_assert(!exists(path("pool")));
}
END_TEST

START_TEST(create_grows_existing_files_never_shrinks)
{
	struct thinp_pool_paths w = { .dir = path("pool"), .data_size = 64 << 20,
				      .meta_size = 8 << 20, .how = THINP_OPEN_CREATE };
	struct thinp_pool *p;
	char err[512];
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	ck_assert_int_eq(thinp_pool_close(p), 0);
	w.force = true;
	w.data_size = 128 << 20;
	w.meta_size = 4 << 20;
	ck_assert_msg(open_paths(&w, &p, NULL, err) == 0, "%s", err);
	ck_assert_int_eq(file_size(path("pool/data")), 128 << 20);
	ck_assert_int_eq(file_size(path("pool/metadata")), 8 << 20);
	struct thinp_pool_status st;
	ck_assert_int_eq(thinp_pool_status(p, false, &st), 0);
	ck_assert_uint_eq(st.total_data_blocks, (128 << 20) / 65536);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(device_openers)
{
	struct tp_dev *d, *m;
	ck_assert_int_eq(thinp_dev_open(path("f"), THINP_DEV_CREATE, 1 << 20, &d), 0);
	ck_assert_uint_eq(thinp_dev_size(d), 1 << 20);
	ck_assert_int_eq(thinp_dev_resize(d, 2 << 20), 0);
	ck_assert_uint_eq(thinp_dev_size(d), 2 << 20);
	thinp_dev_close(d);
	ck_assert_int_eq(file_size(path("f")), 2 << 20);
	ck_assert_int_eq(thinp_dev_open(path("f"), 1u << 30, 0, &d), -EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(thinp_dev_open(path("missing"), 0, 0, &d), -ENOENT);

	/* a pool on memory devices, formatted through the lower-level calls */
	ck_assert_int_eq(thinp_dev_open_mem(16 << 20, &d), 0);
	ck_assert_int_eq(thinp_dev_open_mem(4 << 20, &m), 0);
	ck_assert_uint_eq(thinp_dev_size(m), 4 << 20);
	struct thinp_pool_opts o = { .no_commit_timer = true };
	struct thinp_pool *p;
	char err[512];
	ck_assert_msg(thinp_pool_format(d, m, &o, &p, err, sizeof(err)) == 0, "%s", err);
	char line[256];
	ck_assert_int_eq(thinp_pool_status_line(p, false, line, sizeof(line)), 0);
	ck_assert_msg(strstr(line, "/256 "), "%s", line); /* 16 MiB of 64 KiB blocks */
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("public API: devices and opening by paths");
	TCase *tc = tcase_create("open_paths");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, create_in_a_directory_with_dockers_sizes_then_open);
	tcase_add_test(tc, create_refuses_an_existing_pool_unless_forced);
	tcase_add_test(tc, open_of_a_missing_pool_creates_nothing);
	tcase_add_test(tc, any_formats_a_blank_pool_then_opens_it);
	tcase_add_test(tc, any_never_formats_beside_a_lone_device);
	tcase_add_test(tc, a_failed_create_leaves_nothing_it_made);
	tcase_add_test(tc, a_second_opener_is_told_the_pool_is_busy);
	tcase_add_test(tc, read_only_never_formats);
	tcase_add_test(tc, create_grows_existing_files_never_shrinks);
	tcase_add_test(tc, device_openers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
