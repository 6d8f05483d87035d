/* The driver's metadata files (impl/graph/graph_meta.c, graph_json.c) against
 * docs/docker-driver.md §1:
 *
 *   - the exact bytes Docker's json.Marshal writes for a device, the deviceset and the open
 *     transaction, the base device's file name "base", mode 0600, no temporary left behind;
 *   - reading as encoding/json does: keys in any order and case, white space, unknown keys
 *     of any type, null, escapes (\" \\ \/ \uXXXX, surrogate pairs), and refusing truncated
 *     or garbage files with the file named;
 *   - the directory load: left-over ".tmp*" files of a crash between write and rename,
 *     "*.migrated", the two set files and directories are skipped, ids over 0xffffff too;
 *   - write failures with Docker's texts, and the hash rules;
 *   - seeded (THINP_SEED, printed) random round trips of devices, deviceset and
 *     transaction, strings with escapes included.
 *
 * Every test works in its own directory under one mkdtemp scratch directory, removed by
 * the unchecked teardown even when a test fails. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/graph_meta.h"
#include "model_util.h"
#include "pool_util.h"

static uint64_t seed;
static char scratch[4096];

static void scratch_setup(void)
{
	ck_assert_int_eq(mu_mkdtemp(scratch, sizeof(scratch), "graph-meta"), 0);
}

static void scratch_teardown(void)
{
	mu_rmtree(scratch);
}

/* A fresh directory for one test: SCRATCH/NAME. */
static void test_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", scratch, name);
	ck_assert_int_eq(mkdir(buf, 0700), 0);
}

static void write_file(const char *dir, const char *name, const char *content)
{
	char path[8192];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(content, 1, strlen(content), f), strlen(content));
	ck_assert_int_eq(fclose(f), 0);
}

static char *read_all(const char *dir, const char *name)
{
	static char buf[8192];
	char path[8192];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The names in DIR, sorted and joined with ' '. */
static char *listing(const char *dir)
{
	static char out[8192];
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
			if (out[0])
				strcat(out, " ");
			strcat(out, ents[i]->d_name);
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

static struct tg_devinfo dev(const char *hash, uint64_t id, uint64_t size, uint64_t txn, bool init,
                             bool del)
{
	struct tg_devinfo d;
	memset(&d, 0, sizeof(d));
	snprintf(d.hash, sizeof(d.hash), "%s", hash);
	d.device_id = id, d.size = size, d.transaction_id = txn;
	d.initialized = init, d.deleted = del;
	return d;
}

static void save_dev(const char *dir, struct tg_devinfo d)
{
	char err[512] = "";
	int r = tg_meta_save_device(dir, &d, err, sizeof(err));
	ck_assert_msg(r == 0, "save %s: %d %s", d.hash, r, err);
}

/* Load DIR; NR devices expected. */
static struct tg_devinfo *load_ok(const char *dir, size_t want_nr)
{
	struct tg_devinfo *v = NULL;
	size_t nr = 99;
	char err[512] = "";
	int r = tg_meta_load_devices(dir, &v, &nr, err, sizeof(err));
	ck_assert_msg(r == 0, "load: %d %s", r, err);
	ck_assert_uint_eq(nr, want_nr);
	return v;
}

/* Loading DIR fails with -EINVAL and a message naming FILE and containing WHAT. */
static void load_fails(const char *dir, const char *file, const char *what)
{
	struct tg_devinfo *v = (struct tg_devinfo *)1;
	size_t nr = 99;
	char err[512] = "", want[600];
	int r = tg_meta_load_devices(dir, &v, &nr, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "load of %s gave %d (%s), expected -EINVAL", file, r, err);
	snprintf(want, sizeof(want), "devmapper: Error loading device metadata file %s/%s: ", dir,
	         file);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "said \"%s\", expected \"%s...\"", err,
	              want);
	ck_assert_msg(strstr(err, what), "said \"%s\", expected it to contain \"%s\"", err, what);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(nr, 0);
}

static void same_dev(const struct tg_devinfo *a, const struct tg_devinfo *b)
{
	ck_assert_str_eq(a->hash, b->hash);
	ck_assert_uint_eq(a->device_id, b->device_id);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_uint_eq(a->transaction_id, b->transaction_id);
	ck_assert_int_eq(a->initialized, b->initialized);
	ck_assert_int_eq(a->deleted, b->deleted);
}

START_TEST(test_device_bytes_mode_name)
{
	char dir[4200];
	test_dir(dir, sizeof(dir), "bytes");
	save_dev(dir, dev("", 1, 10737418240ull, 1, true, false));
	save_dev(dir, dev("4c6b3f1d9e", 2, 10737418240ull, 2, false, false));
	save_dev(dir, dev("gone", 3, 512, 7, false, true));
	ck_assert_str_eq(read_all(dir, "base"), "{\"device_id\":1,\"size\":10737418240,"
	                                        "\"transaction_id\":1,\"initialized\":true,"
	                                        "\"deleted\":false}");
	ck_assert_str_eq(read_all(dir, "4c6b3f1d9e"),
	                 "{\"device_id\":2,\"size\":10737418240,\"transaction_id\":2,"
	                 "\"initialized\":false,\"deleted\":false}");
	ck_assert_str_eq(read_all(dir, "gone"),
	                 "{\"device_id\":3,\"size\":512,\"transaction_id\":7,"
	                 "\"initialized\":false,\"deleted\":true}");
	/* no temporary file left, every file 0600 */
	ck_assert_str_eq(listing(dir), "4c6b3f1d9e base gone");
	const char *names[] = { "base", "4c6b3f1d9e", "gone" };
	for (int i = 0; i < 3; i++) {
		char path[8192];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_msg((st.st_mode & 07777) == 0600, "%s mode %o", names[i],
		              st.st_mode & 07777);
	}
	/* an overwrite replaces the content */
	save_dev(dir, dev("", 1, 21474836480ull, 1, true, false));
	ck_assert_str_eq(read_all(dir, "base"), "{\"device_id\":1,\"size\":21474836480,"
	                                        "\"transaction_id\":1,\"initialized\":true,"
	                                        "\"deleted\":false}");
	ck_assert_str_eq(listing(dir), "4c6b3f1d9e base gone");

	struct tg_devinfo *v = load_ok(dir, 3);
	/* sorted by hash, the base ("") first */
	struct tg_devinfo want[] = { dev("", 1, 21474836480ull, 1, true, false),
		                     dev("4c6b3f1d9e", 2, 10737418240ull, 2, false, false),
		                     dev("gone", 3, 512, 7, false, true) };
	for (int i = 0; i < 3; i++)
		same_dev(&v[i], &want[i]);
	free(v);

	char err[256];
	ck_assert_int_eq(tg_meta_remove_device(dir, "gone", err, sizeof(err)), 0);
	ck_assert_int_eq(tg_meta_remove_device(dir, "gone", err, sizeof(err)), 0); /* RemoveAll */
	ck_assert_int_eq(tg_meta_remove_device(dir, "", err, sizeof(err)), 0);
	ck_assert_str_eq(listing(dir), "4c6b3f1d9e");
}
END_TEST

START_TEST(test_set_files_bytes)
{
	char dir[4200], err[512] = "";
	test_dir(dir, sizeof(dir), "sets");
	struct tg_deviceset s = { .next_device_id = 5 };
	snprintf(s.base_uuid, sizeof(s.base_uuid), "4a8b5b1e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
	snprintf(s.base_fs, sizeof(s.base_fs), "xfs");
	ck_assert_int_eq(tg_meta_save_deviceset(dir, &s, err, sizeof(err)), 0);
	ck_assert_str_eq(
	        read_all(dir, "deviceset-metadata"),
	        "{\"next_device_id\":5,\"BaseDeviceUUID\":"
	        "\"4a8b5b1e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\",\"BaseDeviceFilesystem\":\"xfs\"}");
	struct tg_deviceset z = { 0 };
	ck_assert_int_eq(tg_meta_save_deviceset(dir, &z, err, sizeof(err)), 0);
	ck_assert_str_eq(
	        read_all(dir, "deviceset-metadata"),
	        "{\"next_device_id\":0,\"BaseDeviceUUID\":\"\",\"BaseDeviceFilesystem\":\"\"}");

	struct tg_txn t = { .open_transaction_id = 3, .device_id = 2 };
	snprintf(t.device_hash, sizeof(t.device_hash), "abc");
	ck_assert_int_eq(tg_meta_save_txn(dir, &t, err, sizeof(err)), 0);
	ck_assert_str_eq(read_all(dir, "transaction-metadata"),
	                 "{\"open_transaction_id\":3,\"device_hash\":\"abc\",\"device_id\":2}");
	struct tg_txn tb = { .open_transaction_id = 1, .device_id = 1 };
	ck_assert_int_eq(tg_meta_save_txn(dir, &tb, err, sizeof(err)), 0);
	ck_assert_str_eq(read_all(dir, "transaction-metadata"),
	                 "{\"open_transaction_id\":1,\"device_hash\":\"\",\"device_id\":1}");
	ck_assert_str_eq(listing(dir), "deviceset-metadata transaction-metadata");

	/* the set files are no devices */
	free(load_ok(dir, 0));

	struct tg_txn l;
	memset(&l, 0x5a, sizeof(l));
	ck_assert_int_eq(tg_meta_load_txn(dir, &l, err, sizeof(err)), 0);
	ck_assert_uint_eq(l.open_transaction_id, 1);
	ck_assert_str_eq(l.device_hash, "");
	ck_assert_uint_eq(l.device_id, 1);
	ck_assert_int_eq(tg_meta_remove_txn(dir, err, sizeof(err)), 0);
	ck_assert_int_eq(tg_meta_load_txn(dir, &l, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(tg_meta_remove_txn(dir, err, sizeof(err)), 0);

	struct tg_deviceset ls;
	memset(&ls, 0x5a, sizeof(ls));
	ck_assert_int_eq(tg_meta_load_deviceset(dir, &ls, err, sizeof(err)), 0);
	ck_assert_uint_eq(ls.next_device_id, 0);
	ck_assert_str_eq(ls.base_uuid, "");
	unlink(strcat(strcpy((char[8192]){ 0 }, dir), "/deviceset-metadata"));
	memset(&ls, 0x5a, sizeof(ls));
	/* a missing deviceset file is no error: zeros */
	ck_assert_int_eq(tg_meta_load_deviceset(dir, &ls, err, sizeof(err)), 0);
	ck_assert_uint_eq(ls.next_device_id, 0);
	ck_assert_str_eq(ls.base_uuid, "");
	ck_assert_str_eq(ls.base_fs, "");
}
END_TEST

START_TEST(test_string_escapes_written_and_read)
{
	char dir[4200], err[512] = "";
	test_dir(dir, sizeof(dir), "escapes");
	struct tg_deviceset s = { .next_device_id = 1 };
	snprintf(s.base_uuid, sizeof(s.base_uuid), "a\"b\\c<>&\n\t\x01\x7f/\xc3\xa9\xe2\x80\xa8");
	snprintf(s.base_fs, sizeof(s.base_fs), "x\xff");
	ck_assert_int_eq(tg_meta_save_deviceset(dir, &s, err, sizeof(err)), 0);
	/* json.Marshal's escaping: HTML characters, control bytes, U+2028, bad UTF-8 */
	ck_assert_str_eq(
	        read_all(dir, "deviceset-metadata"),
	        "{\"next_device_id\":1,\"BaseDeviceUUID\":\"a\\\"b\\\\c\\u003c\\u003e\\u0026"
	        "\\n\\t\\u0001\x7f/\xc3\xa9\\u2028\",\"BaseDeviceFilesystem\":\"x\\ufffd\"}");
	struct tg_deviceset l;
	ck_assert_int_eq(tg_meta_load_deviceset(dir, &l, err, sizeof(err)), 0);
	ck_assert_str_eq(l.base_uuid, s.base_uuid);
	ck_assert_str_eq(l.base_fs, "x\xef\xbf\xbd");

	/* escapes only a reader meets: \/, \u for ASCII, surrogate pairs, a lone surrogate,
	 * \b \f \r, raw UTF-8 */
	write_file(dir, "deviceset-metadata",
	           "{\"BaseDeviceUUID\":\"\\u0061\\u0062\\/c\\b\\f\\r\\ud83d\\ude00\\ud800x\","
	           "\"BaseDeviceFilesystem\":\"\\u00e9\"}");
	ck_assert_int_eq(tg_meta_load_deviceset(dir, &l, err, sizeof(err)), 0);
	ck_assert_str_eq(l.base_uuid, "ab/c\b\f\r\xf0\x9f\x98\x80\xef\xbf\xbdx");
	ck_assert_str_eq(l.base_fs, "\xc3\xa9");
	ck_assert_uint_eq(l.next_device_id, 0);

	static const struct {
		const char *json, *what;
	} bad[] = {
		{ "{\"BaseDeviceUUID\":\"a\\u0000b\"}",
		  "\"BaseDeviceUUID\" holds a NUL character" },
		{ "{\"BaseDeviceFilesystem\":\"ext4ext4\"}",
		  "\"BaseDeviceFilesystem\" is longer than 7 bytes" },
		{ "{\"BaseDeviceUUID\":\"a\\x\"}", "invalid escape '\\x'" },
		{ "{\"BaseDeviceUUID\":\"a\\u12G4\"}", "invalid character in \\u escape" },
		{ "{\"BaseDeviceUUID\":\"a\nb\"}", "invalid control character 0x0a" },
		{ "{\"BaseDeviceUUID\":\"ab", "unexpected end of input in a string" },
		{ "{\"BaseDeviceUUID\":5}", "\"BaseDeviceUUID\" is not a string" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(dir, "deviceset-metadata", bad[i].json);
		err[0] = '\0';
		ck_assert_int_eq(tg_meta_load_deviceset(dir, &l, err, sizeof(err)), -EINVAL);
		char want[8400];
		snprintf(want, sizeof(want),
		         "devmapper: Error loading deviceset metadata file %s/deviceset-metadata: ",
		         dir);
		ck_assert_msg(!strncmp(err, want, strlen(want)) && strstr(err, bad[i].what),
		              "%s: said \"%s\"", bad[i].json, err);
	}

	/* a transaction hash of 128 characters fits, the key and the file are Go's */
	struct tg_txn t = { .open_transaction_id = 9, .device_id = 4 };
	memset(t.device_hash, 'h', TG_HASH_MAX);
	t.device_hash[TG_HASH_MAX] = '\0';
	ck_assert_int_eq(tg_meta_save_txn(dir, &t, err, sizeof(err)), 0);
	struct tg_txn lt;
	ck_assert_int_eq(tg_meta_load_txn(dir, &lt, err, sizeof(err)), 0);
	ck_assert_str_eq(lt.device_hash, t.device_hash);
	write_file(dir, "transaction-metadata", "{\"open_transaction_id\":1,\"device_hash\":");
	ck_assert_int_eq(tg_meta_load_txn(dir, &lt, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "transaction-metadata: unexpected end of input at byte 39"), "%s",
	              err);
}
END_TEST

START_TEST(test_read_like_encoding_json)
{
	char dir[4200];
	test_dir(dir, sizeof(dir), "lenient");
	/* any key order and case, white space everywhere, unknown keys of every type,
	 * a repeated key (the last wins), null (the field stays zero) */
	write_file(dir, "base",
	           " \n\t{ \"deleted\" : true ,\"Size\":5, \"unknown\":{\"a\":[1,-2.5e+3,{\"b\":"
	           "null},[],{}],\"c\":\"x\\\"}y\"}, \"DEVICE_ID\" : 7,\r\n\"transaction_id\":9, "
	           "\"initialized\":false, \"extra\":-1.5E-3, \"t\":true, \"n\":null, \"s\":\"\","
	           "\"size\":6 } \r\n");
	write_file(dir, "abc", "{\"device_id\":8,\"size\":null,\"initialized\":null}");
	write_file(dir, "empty-object", "{}");
	write_file(dir, "max",
	           "{\"device_id\":16777215,\"size\":18446744073709551615,"
	           "\"transaction_id\":18446744073709551615}");
	struct tg_devinfo *v = load_ok(dir, 4);
	struct tg_devinfo want[] = {
		dev("", 7, 6, 9, false, true),
		dev("abc", 8, 0, 0, false, false),
		dev("empty-object", 0, 0, 0, false, false),
		dev("max", 0xffffff, UINT64_MAX, UINT64_MAX, false, false),
	};
	for (int i = 0; i < 4; i++)
		same_dev(&v[i], &want[i]);
	free(v);
}
END_TEST

START_TEST(test_garbage_fails_naming_the_file)
{
	static const struct {
		const char *json, *what;
	} bad[] = {
		{ "", "unexpected end of input at byte 0" },
		{ "   ", "unexpected end of input at byte 3" },
		{ "{\"device_id\":1,\"size\":", "unexpected end of input at byte 22" },
		{ "{\"device_id\":1,\"size\":10737418240,\"transaction_id\":1,\"initia",
		  "unexpected end of input in a string" },
		{ "{\"device_id\":1", "expected ',' or '}' after a value at byte 14" },
		{ "null", "expected '{' at byte 0" },
		{ "[]", "expected '{' at byte 0" },
		{ "\"base\"", "expected '{' at byte 0" },
		{ "{\"device_id\":1}x", "data after the object at byte 15" },
		{ "{\"device_id\":1}{}", "data after the object at byte 15" },
		{ "{\"device_id\":1,}", "expected a string at byte 15" },
		{ "{device_id:1}", "expected a string at byte 1" },
		{ "{\"device_id\" 1}", "expected ':' after a key at byte 13" },
		{ "{\"size\":\"10\"}", "\"size\" is not a number at byte 8" },
		{ "{\"size\":-1}", "\"size\" is -1, not an unsigned 64-bit integer at byte 8" },
		{ "{\"size\":1.5}", "\"size\" is 1.5, not an unsigned 64-bit integer" },
		{ "{\"size\":1e3}", "\"size\" is 1e3, not an unsigned 64-bit integer" },
		{ "{\"size\":18446744073709551616}",
		  "\"size\" is 18446744073709551616, not an unsigned 64-bit integer" },
		{ "{\"size\":01}", "expected ',' or '}' after a value at byte 9" },
		{ "{\"size\":+1}", "invalid character '+' looking for a value at byte 8" },
		{ "{\"initialized\":1}", "\"initialized\" is not true or false at byte 15" },
		{ "{\"deleted\":\"true\"}", "\"deleted\" is not true or false" },
		{ "{\"deleted\":tru}", "invalid character 't' looking for a value at byte 11" },
		{ "{\"other\":tru}", "invalid character 't' looking for a value" },
		{ "{\"other\":[1,}", "invalid character '}' looking for a value" },
		{ "{\"other\":[1 2]}", "expected ',' or ']' in an array" },
		{ "{\"other\":1.}", "invalid number" },
		{ "{\"other\":-}", "invalid number" },
		{ "\xef\xbb\xbf{}", "expected '{' at byte 0" }, /* a BOM: Go refuses it too */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char dir[4200], name[32];
		snprintf(name, sizeof(name), "garbage%zu", i);
		test_dir(dir, sizeof(dir), name);
		save_dev(dir, dev("", 1, 1024, 1, true, false));
		write_file(dir, "f00d", bad[i].json);
		load_fails(dir, "f00d", bad[i].what);
	}
	/* deep nesting is refused, not a stack overflow */
	char deep[800] = "{\"x\":";
	for (int i = 0; i < 100; i++)
		strcat(deep, "[");
	char dir[4200];
	test_dir(dir, sizeof(dir), "deep");
	write_file(dir, "abc", deep);
	load_fails(dir, "abc", "values nested too deeply");
}
END_TEST

START_TEST(test_load_skips)
{
	char dir[4200], sub[8300];
	test_dir(dir, sizeof(dir), "skips");
	save_dev(dir, dev("", 1, 1024, 1, true, false));
	save_dev(dir, dev("abc", 2, 1024, 2, false, false));
	/* a crash between the temporary's write and the rename leaves ".tmp*": the old file
	 * stays, the temporary (complete or not) is not a device */
	write_file(dir, ".tmp123456", "{\"device_id\":2,\"size\":2048,\"transaction_id\":3,");
	write_file(dir, ".tmp999999",
	           "{\"device_id\":5,\"size\":1,\"transaction_id\":1,"
	           "\"initialized\":false,\"deleted\":false}");
	write_file(dir, "json.migrated", "{\"Devices\":{}}");
	write_file(dir, "x.migrated", "garbage");
	write_file(dir, "deviceset-metadata", "{\"next_device_id\":2}");
	write_file(dir, "transaction-metadata", "garbage is not read by the device load");
	snprintf(sub, sizeof(sub), "%s/subdir", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	/* ids beyond 24 bits are skipped, the largest 24-bit id is kept */
	write_file(dir, "toobig", "{\"device_id\":16777216,\"size\":1}");
	write_file(dir, "huge", "{\"device_id\":18446744073709551615}");
	write_file(dir, "edge", "{\"device_id\":16777215,\"size\":1}");
	struct tg_devinfo *v = load_ok(dir, 3);
	same_dev(&v[0], &(struct tg_devinfo){ .hash = "",
	                                      .device_id = 1,
	                                      .size = 1024,
	                                      .transaction_id = 1,
	                                      .initialized = true });
	same_dev(&v[1], &(struct tg_devinfo){
	                        .hash = "abc", .device_id = 2, .size = 1024, .transaction_id = 2 });
	same_dev(&v[2], &(struct tg_devinfo){ .hash = "edge", .device_id = 0xffffff, .size = 1 });
	free(v);

	/* an empty directory: no devices; a missing one: the error names it */
	char empty[4200], err[512];
	test_dir(empty, sizeof(empty), "empty");
	free(load_ok(empty, 0));
	struct tg_devinfo *w;
	size_t nr;
	strcat(empty, "/none");
	ck_assert_int_eq(tg_meta_load_devices(empty, &w, &nr, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "devmapper: Error reading metadata directory ") &&
	                      strstr(err, "/none"),
	              "%s", err);
}
END_TEST

START_TEST(test_write_failures)
{
	char dir[4200], err[1024] = "", want[8400];
	test_dir(dir, sizeof(dir), "fail");
	/* no directory */
	char none[4300];
	snprintf(none, sizeof(none), "%s/none", dir);
	struct tg_devinfo d = dev("abc", 2, 1, 1, false, false);
	ck_assert_int_eq(tg_meta_save_device(none, &d, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "devmapper: Error creating metadata file: open %s/.tmp", none);
	ck_assert_msg(!strncmp(err, want, strlen(want)) && strstr(err, strerror(ENOENT)), "%s",
	              err);
	/* the target is a directory: the rename fails, its temporary is removed */
	char sub[8300];
	snprintf(sub, sizeof(sub), "%s/abc", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	int r = tg_meta_save_device(dir, &d, err, sizeof(err));
	ck_assert_int_eq(r, -EISDIR);
	snprintf(want, sizeof(want), "devmapper: Error committing metadata file %s/.tmp", dir);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "%s", err);
	ck_assert_str_eq(listing(dir), "abc");
	/* a remove that fails names the file */
	write_file(sub, "x", "");
	ck_assert_int_eq(tg_meta_remove_device(dir, "abc", err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "devmapper: Error removing metadata file %s/abc: ", dir);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "%s", err);
	/* bad hashes never reach the file system */
	static const char *const bad[] = {
		"../x",      "a/b", ".tmp1", "base", "deviceset-metadata", "transaction-metadata",
		"x.migrated"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tg_devinfo b = dev(bad[i], 3, 1, 1, false, false);
		ck_assert_int_eq(tg_meta_save_device(dir, &b, err, sizeof(err)), -EINVAL);
		ck_assert_int_eq(tg_meta_remove_device(dir, bad[i], err, sizeof(err)), -EINVAL);
	}
	ck_assert_str_eq(listing(dir), "abc");
	/* callers that do not want the text pass no buffer */
	ck_assert_int_eq(tg_meta_remove_device(dir, "a/b", NULL, 0), -EINVAL);
	ck_assert_int_eq(tg_meta_remove_device(dir, "abc", NULL, 0), -EISDIR);
	ck_assert_int_eq(tg_meta_save_device(none, &d, NULL, 0), -ENOENT);
}
END_TEST

START_TEST(test_check_hash)
{
	char err[512];
	char h128[TG_HASH_MAX + 2];
	memset(h128, 'f', TG_HASH_MAX);
	h128[TG_HASH_MAX] = '\0';
	static const char *const good[] = {
		"a",        "Z",
		"0",        "_",
		"-",        "a.b",
		"a..b",     "x.migrated.y",
		"basex",    "xbase",
		"Base",     "4f1a9b9e8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f",
		"abc-init",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(tg_meta_check_hash(good[i], err, sizeof(err)) == 0, "%s: %s", good[i],
		              err);
	ck_assert_int_eq(tg_meta_check_hash(h128, err, sizeof(err)), 0);
	static const struct {
		const char *h, *text;
	} bad[] = {
		{ "", "invalid device id '': give 1 to 128 characters of A-Z a-z 0-9 _ . -, not "
		      "starting with '.'" },
		{ "a/b", "invalid device id \"a/b\": byte 1 (0x2f) is not allowed; give 1 to 128 "
		         "characters of A-Z a-z 0-9 _ . -, not starting with '.'" },
		{ "a b", "invalid device id \"a b\": byte 1 (0x20) is not allowed;" },
		{ "\xc3\xa9", "invalid device id \"\xc3\xa9\": byte 0 (0xc3) is not allowed;" },
		{ "x\n", "invalid device id \"x\\n\": byte 1 (0x0a) is not allowed;" },
		{ ".", "invalid device id '.': it starts with '.', which the driver keeps for its "
		       "temporary files;" },
		{ "..", "invalid device id '..': it starts with '.'" },
		{ ".tmp123", "invalid device id '.tmp123': it starts with '.'" },
		{ "base",
		  "invalid device id 'base': the metadata directory uses that name for "
		  "itself (base, deviceset-metadata, transaction-metadata); give another id" },
		{ "deviceset-metadata", "invalid device id 'deviceset-metadata': the metadata "
		                        "directory uses that name" },
		{ "transaction-metadata", "invalid device id 'transaction-metadata': the metadata "
		                          "directory uses that name" },
		{ "json.migrated",
		  "invalid device id 'json.migrated': names ending in '.migrated' "
		  "are skipped when the metadata directory is loaded; give another "
		  "id" },
		{ ".migrated", "it starts with '.'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(tg_meta_check_hash(bad[i].h, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].text), "\"%s\": said \"%s\", expected \"%s\"",
		              bad[i].h, err, bad[i].text);
	}
	h128[TG_HASH_MAX] = 'f';
	h128[TG_HASH_MAX + 1] = '\0';
	ck_assert_int_eq(tg_meta_check_hash(h128, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "(129 characters): give 1 to 128 characters"), "%s", err);
}
END_TEST

/* ---- seeded round trips ---- */

static void random_hash(struct mu_rng *r, char *out)
{
	static const char set[] =
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	char err[512];
	do {
		size_t n = 1 + (size_t)mu_below(r, mu_below(r, 4) ? 12 : TG_HASH_MAX);
		for (size_t i = 0; i < n; i++)
			out[i] = set[mu_below(r, sizeof(set) - 1)];
		out[n] = '\0';
	} while (tg_meta_check_hash(out, err, sizeof(err)));
}

/* Valid UTF-8 without NUL: ASCII (control bytes, quotes, backslashes, HTML characters
 * included), 2-, 3- and 4-byte sequences, U+2028. */
static void random_text(struct mu_rng *r, char *out, size_t cap)
{
	size_t n = 0, want = (size_t)mu_below(r, cap);
	while (n < want) {
		unsigned k = (unsigned)mu_below(r, 10);
		if (k < 6 && n + 1 < cap) {
			out[n++] = (char)(1 + mu_below(r, 127));
		} else if (k == 6 && n + 2 < cap) {
			out[n++] = '\xc3', out[n++] = '\xa9';
		} else if (k == 7 && n + 3 < cap) {
			out[n++] = '\xe2', out[n++] = '\x80', out[n++] = '\xa8';
		} else if (k == 8 && n + 4 < cap) {
			out[n++] = '\xf0', out[n++] = '\x9f', out[n++] = '\x98', out[n++] = '\x80';
		} else if (n + 1 < cap) {
			out[n++] = "\"\\<>&/"[mu_below(r, 6)];
		} else {
			break;
		}
	}
	out[n] = '\0';
}

static uint64_t random_u64(struct mu_rng *r)
{
	return mu_next(r) >> mu_below(r, 64);
}

START_TEST(test_random_round_trips)
{
	enum {
		NDEV = 48
	};
	char dir[4200], err[1024] = "";
	test_dir(dir, sizeof(dir), "random");
	struct mu_rng r;
	mu_rng_init(&r, seed);
	struct tg_devinfo model[NDEV];
	bool live[NDEV] = { false };
	for (int i = 0; i < NDEV; i++) {
		memset(&model[i], 0, sizeof(model[i]));
		if (i) {
			bool dup;
			do {
				random_hash(&r, model[i].hash);
				dup = false;
				for (int j = 1; j < i; j++)
					dup |= !strcmp(model[i].hash, model[j].hash);
			} while (dup);
		}
	}
	for (int step = 0; step < 600; step++) {
		int i = (int)mu_below(&r, NDEV);
		if (live[i] && mu_below(&r, 4) == 0) {
			ck_assert_int_eq(
			        tg_meta_remove_device(dir, model[i].hash, err, sizeof(err)), 0);
			live[i] = false;
		} else {
			model[i].device_id = mu_below(&r, 0x1000000);
			model[i].size = random_u64(&r);
			model[i].transaction_id = random_u64(&r);
			model[i].initialized = mu_below(&r, 2);
			model[i].deleted = mu_below(&r, 2);
			save_dev(dir, model[i]);
			live[i] = true;
		}
		if (step % 50 == 0 || step == 599) {
			size_t nlive = 0;
			for (int j = 0; j < NDEV; j++)
				nlive += live[j];
			struct tg_devinfo *v = load_ok(dir, nlive);
			for (size_t k = 0; k < nlive; k++) {
				int j = 0;
				while (j < NDEV && !(live[j] && !strcmp(model[j].hash, v[k].hash)))
					j++;
				ck_assert_msg(j < NDEV, "seed %" PRIu64 ": loaded unknown \"%s\"",
				              seed, v[k].hash);
				same_dev(&v[k], &model[j]);
				if (k)
					ck_assert(strcmp(v[k - 1].hash, v[k].hash) < 0);
			}
			free(v);
		}

		struct tg_deviceset s = { .next_device_id = random_u64(&r) }, ls;
		random_text(&r, s.base_uuid, sizeof(s.base_uuid));
		random_text(&r, s.base_fs, sizeof(s.base_fs));
		ck_assert_int_eq(tg_meta_save_deviceset(dir, &s, err, sizeof(err)), 0);
		ck_assert_int_eq(tg_meta_load_deviceset(dir, &ls, err, sizeof(err)), 0);
		ck_assert_msg(ls.next_device_id == s.next_device_id &&
		                      !strcmp(ls.base_uuid, s.base_uuid) &&
		                      !strcmp(ls.base_fs, s.base_fs),
		              "seed %" PRIu64 " step %d: deviceset differs", seed, step);

		struct tg_txn t = { .open_transaction_id = random_u64(&r),
			            .device_id = mu_below(&r, 0x1000000) },
		              lt;
		if (mu_below(&r, 4))
			random_hash(&r, t.device_hash);
		ck_assert_int_eq(tg_meta_save_txn(dir, &t, err, sizeof(err)), 0);
		ck_assert_int_eq(tg_meta_load_txn(dir, &lt, err, sizeof(err)), 0);
		ck_assert_msg(lt.open_transaction_id == t.open_transaction_id &&
		                      lt.device_id == t.device_id &&
		                      !strcmp(lt.device_hash, t.device_hash),
		              "seed %" PRIu64 " step %d: transaction differs", seed, step);
	}
	/* nothing but the device files and the two set files */
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d)))
		ck_assert_msg(strncmp(de->d_name, ".tmp", 4), "left over: %s", de->d_name);
	closedir(d);
}
END_TEST

static Suite *meta_suite(void)
{
	Suite *s = suite_create("graph_meta");
	TCase *tc = tcase_create("core");
	tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_device_bytes_mode_name);
	tcase_add_test(tc, test_set_files_bytes);
	tcase_add_test(tc, test_string_escapes_written_and_read);
	tcase_add_test(tc, test_read_like_encoding_json);
	tcase_add_test(tc, test_garbage_fails_naming_the_file);
	tcase_add_test(tc, test_load_skips);
	tcase_add_test(tc, test_write_failures);
	tcase_add_test(tc, test_check_hash);
	tcase_add_test(tc, test_random_round_trips);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_graph_meta", meta_suite, &seed);
}
