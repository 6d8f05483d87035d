/* The driver's dm.* options (impl/graph/graph_options.c) against docs/docker-driver.md §3:
 * Docker's defaults, every option the driver keeps, key/value splitting and trimming, the
 * lower-cased key, Docker's exact error texts for bad values and unknown keys, the real
 * Docker options thinbench refuses by name, and the checks after parsing (deferred deletion
 * needs deferred removal; blkdiscard off by default with dm.thinpooldev). Seeded
 * (THINP_SEED, printed): option spellings with random key case and white space. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_options.h"
#include "model_util.h"
#include "pool_util.h"

#define GiB (UINT64_C(1) << 30)

static uint64_t seed;

static void parse_ok(struct tg_options *o, const char *kv)
{
	char err[512] = "";
	int r = tg_options_parse(o, kv, err, sizeof(err));
	ck_assert_msg(r == 0, "option \"%s\" refused (%d): %s", kv, r, err);
}

/* KV is refused with exactly TEXT, and O is left as it was. */
static void parse_err(struct tg_options *o, const char *kv, const char *text)
{
	char err[512] = "";
	int r = tg_options_parse(o, kv, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "option \"%s\" gave %d, expected -EINVAL", kv, r);
	ck_assert_msg(!strcmp(err, text), "option \"%s\" said \"%s\", expected \"%s\"", kv, err,
	              text);
}

/* Like parse_err, and O must be untouched. */
static void parse_err_same(struct tg_options *o, const char *kv, const char *text)
{
	struct tg_options before;
	memcpy(&before, o, sizeof(before));
	parse_err(o, kv, text);
	ck_assert_msg(!memcmp(&before, o, sizeof(before)), "option \"%s\" changed the options", kv);
}

START_TEST(test_defaults)
{
	struct tg_options o;
	memset(&o, 0xa5, sizeof(o));
	tg_options_default(&o);
	ck_assert_uint_eq(o.basesize, 10737418240ull);
	ck_assert(!o.basesize_set);
	ck_assert_uint_eq(o.loopdatasize, 100 * GiB);
	ck_assert_uint_eq(o.loopmetadatasize, 2 * GiB);
	ck_assert_str_eq(o.fs, "");
	ck_assert_uint_eq(o.nr_mkfsargs, 0);
	ck_assert_str_eq(o.mountopt, "");
	ck_assert_uint_eq(o.blocksize, 65536);
	ck_assert_str_eq(o.thinpooldev, "");
	ck_assert(o.blkdiscard);
	ck_assert(!o.blkdiscard_set);
	ck_assert(!o.override_udev_sync_check);
	ck_assert(!o.use_deferred_removal);
	ck_assert(!o.use_deferred_deletion);
	ck_assert_uint_eq(o.min_free_space, 10);
	ck_assert(!o.no_warn_on_loop_devices);
	char err[256];
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(o.blkdiscard);
}
END_TEST

START_TEST(test_sizes)
{
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "dm.basesize=20G");
	ck_assert_uint_eq(o.basesize, 20 * GiB);
	ck_assert(o.basesize_set);
	parse_ok(&o, "dm.loopdatasize=200GB");
	ck_assert_uint_eq(o.loopdatasize, 200 * GiB);
	parse_ok(&o, "dm.loopmetadatasize=4g");
	ck_assert_uint_eq(o.loopmetadatasize, 4 * GiB);
	parse_ok(&o, "dm.blocksize=512K");
	ck_assert_uint_eq(o.blocksize, 524288);
	parse_ok(&o, "dm.blocksize=1.5k");
	ck_assert_uint_eq(o.blocksize, 1536);
	/* Docker keeps uint32(size): 4 GiB wraps to 0 and 4 GiB + 64 KiB to 64 KiB */
	parse_ok(&o, "dm.blocksize=4G");
	ck_assert_uint_eq(o.blocksize, 0);
	parse_ok(&o, "dm.blocksize=4194368k");
	ck_assert_uint_eq(o.blocksize, 65536);

	struct tg_options f;
	tg_options_default(&f);
	parse_err_same(&f, "dm.basesize=10X", "invalid size: '10X'");
	ck_assert(!f.basesize_set);
	parse_err_same(&f, "dm.basesize=", "invalid size: ''");
	parse_err_same(&f, "dm.loopdatasize=-1", "invalid size: '-1'");
	parse_err_same(&f, "dm.loopmetadatasize=1 0G", "invalid size: '1 0G'");
	parse_err_same(&f, "dm.blocksize=64 kk", "invalid size: '64 kk'");
	parse_err_same(&f, "dm.basesize=1.2.3G",
	               "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax");
	parse_err_same(&f, "dm.basesize=8192P",
	               "invalid size: '8192P': larger than 8 EiB (2^63-1 bytes)");
}
END_TEST

START_TEST(test_split_trim_case)
{
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "  DM.BaseSize \t=  30G  ");
	ck_assert_uint_eq(o.basesize, 30 * GiB);
	/* the first '=' splits; the rest belongs to the value */
	parse_ok(&o, "dm.mountopt=uid=0");
	ck_assert_str_eq(o.mountopt, "uid=0");
	/* the value keeps its case */
	parse_ok(&o, "DM.THINPOOLDEV=/dev/mapper/Docker-ThinPool");
	ck_assert_str_eq(o.thinpooldev, "Docker-ThinPool");

	parse_err_same(&o, "dm.basesize", "Unable to parse key/value option: dm.basesize");
	parse_err_same(&o, "  x ", "Unable to parse key/value option:   x ");
	parse_err_same(&o, "", "Unable to parse key/value option: ");
	parse_err_same(&o, "dm.foo=1", "devmapper: Unknown option dm.foo");
	parse_err_same(&o, " DM.Foo = 1", "devmapper: Unknown option dm.foo");
	parse_err_same(&o, "=1", "devmapper: Unknown option ");
	/* a per-container option is not a driver option */
	parse_err_same(&o, "size=10G", "devmapper: Unknown option size");
	parse_err_same(&o, "dm.basesize2=1G", "devmapper: Unknown option dm.basesize2");
}
END_TEST

START_TEST(test_fs_mkfs_mount_pool)
{
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "dm.fs=xfs");
	ck_assert_str_eq(o.fs, "xfs");
	parse_ok(&o, "dm.fs=ext4");
	ck_assert_str_eq(o.fs, "ext4");
	parse_err_same(&o, "dm.fs=EXT4", "devmapper: Unsupported filesystem EXT4");
	parse_err_same(&o, "dm.fs=btrfs", "devmapper: Unsupported filesystem btrfs");
	parse_err_same(&o, "dm.fs=", "devmapper: Unsupported filesystem ");
	parse_err_same(&o, "dm.fs=ext4x", "devmapper: Unsupported filesystem ext4x");

	for (int i = 0; i < TG_MAX_MKFSARGS; i++) {
		char kv[64];
		snprintf(kv, sizeof(kv), "dm.mkfsarg=-Oarg%d", i);
		parse_ok(&o, kv);
	}
	ck_assert_uint_eq(o.nr_mkfsargs, TG_MAX_MKFSARGS);
	ck_assert_str_eq(o.mkfsargs[0], "-Oarg0");
	ck_assert_str_eq(o.mkfsargs[TG_MAX_MKFSARGS - 1], "-Oarg15");
	parse_err_same(&o, "dm.mkfsarg=-K",
	               "devmapper: Option dm.mkfsarg given more than 16 times (at '-K'): thinbench "
	               "keeps at most 16 mkfs arguments");

	/* joinMountOptions: empty sides add no comma */
	parse_ok(&o, "dm.mountopt=");
	ck_assert_str_eq(o.mountopt, "");
	parse_ok(&o, "dm.mountopt=nodiscard");
	parse_ok(&o, "dm.mountopt=");
	parse_ok(&o, "dm.mountopt=noatime,nobarrier");
	ck_assert_str_eq(o.mountopt, "nodiscard,noatime,nobarrier");

	parse_ok(&o, "dm.thinpooldev=/dev/mapper/docker-thinpool");
	ck_assert_str_eq(o.thinpooldev, "docker-thinpool");
	parse_ok(&o, "dm.thinpooldev=mypool");
	ck_assert_str_eq(o.thinpooldev, "mypool");
	parse_ok(&o, "dm.thinpooldev=/dev/vg0/pool");
	ck_assert_str_eq(o.thinpooldev, "/dev/vg0/pool");

	char longv[TG_OPT_STR + 16];
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	char kv[TG_OPT_STR + 64], want[TG_OPT_STR * 2];
	snprintf(kv, sizeof(kv), "dm.thinpooldev=%s", longv);
	snprintf(want, sizeof(want),
	         "devmapper: Option dm.thinpooldev value '%s' is too long: thinbench keeps at "
	         "most 255 characters",
	         longv);
	parse_err_same(&o, kv, want);
}
END_TEST

START_TEST(test_bools)
{
	static const char *const keys[] = { "dm.blkdiscard", "dm.override_udev_sync_check",
		                            "dm.use_deferred_removal", "dm.use_deferred_deletion",
		                            "dm.no_warn_on_loop_devices" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct tg_options o;
		tg_options_default(&o);
		bool *field = i == 0 ? &o.blkdiscard :
		              i == 1 ? &o.override_udev_sync_check :
		              i == 2 ? &o.use_deferred_removal :
		              i == 3 ? &o.use_deferred_deletion :
		                       &o.no_warn_on_loop_devices;
		char kv[128];
		snprintf(kv, sizeof(kv), "%s=True", keys[i]);
		parse_ok(&o, kv);
		ck_assert_msg(*field, "%s", kv);
		snprintf(kv, sizeof(kv), "%s=0", keys[i]);
		parse_ok(&o, kv);
		ck_assert_msg(!*field, "%s", kv);
		snprintf(kv, sizeof(kv), "%s=yes", keys[i]);
		parse_err(&o, kv, "strconv.ParseBool: parsing \"yes\": invalid syntax");
		snprintf(kv, sizeof(kv), "%s=", keys[i]);
		parse_err(&o, kv, "strconv.ParseBool: parsing \"\": invalid syntax");
	}
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "dm.blkdiscard=false");
	ck_assert(o.blkdiscard_set);
}
END_TEST

START_TEST(test_min_free_space)
{
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "dm.min_free_space=0%");
	ck_assert_uint_eq(o.min_free_space, 0);
	parse_ok(&o, "dm.min_free_space=99%");
	ck_assert_uint_eq(o.min_free_space, 99);
	parse_ok(&o, "dm.min_free_space=007%");
	ck_assert_uint_eq(o.min_free_space, 7);
	static const struct {
		const char *val, *text;
	} bad[] = {
		{ "10", "devmapper: Option dm.min_free_space requires % suffix" },
		{ "", "devmapper: Option dm.min_free_space requires % suffix" },
		{ "10%x", "devmapper: Option dm.min_free_space requires % suffix" },
		{ "100%", "devmapper: Invalid value 100% for option dm.min_free_space" },
		{ "4294967295%",
		  "devmapper: Invalid value 4294967295% for option dm.min_free_space" },
		{ "%", "strconv.ParseUint: parsing \"\": invalid syntax" },
		{ "abc%", "strconv.ParseUint: parsing \"abc\": invalid syntax" },
		{ "-1%", "strconv.ParseUint: parsing \"-1\": invalid syntax" },
		{ "+5%", "strconv.ParseUint: parsing \"+5\": invalid syntax" },
		{ "5 %", "strconv.ParseUint: parsing \"5 \": invalid syntax" },
		{ "10%%", "strconv.ParseUint: parsing \"10%\": invalid syntax" },
		{ "4294967296%", "strconv.ParseUint: parsing \"4294967296\": value out of range" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char kv[128];
		snprintf(kv, sizeof(kv), "dm.min_free_space=%s", bad[i].val);
		parse_err_same(&o, kv, bad[i].text);
	}
	ck_assert_uint_eq(o.min_free_space, 7);
}
END_TEST

START_TEST(test_unsupported_docker_options)
{
	static const char *const keys[] = {
		"dm.datadev",
		"dm.metadatadev",
		"dm.xfs_nospace_max_retries",
		"dm.libdm_log_level",
		"dm.directlvm_device",
		"dm.directlvm_device_force",
		"dm.thinp_percent",
		"dm.thinp_metapercent",
		"dm.thinp_autoextend_threshold",
		"dm.thinp_autoextend_percent",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct tg_options o;
		tg_options_default(&o);
		struct tg_options before;
		memcpy(&before, &o, sizeof(o));
		char kv[128], err[512] = "", want[128];
		snprintf(kv, sizeof(kv), "%s=1", keys[i]);
		ck_assert_int_eq(tg_options_parse(&o, kv, err, sizeof(err)), -EINVAL);
		snprintf(want, sizeof(want),
		         "devmapper: Option %s is not supported by thinbench: ", keys[i]);
		ck_assert_msg(!strncmp(err, want, strlen(want)), "%s said \"%s\"", kv, err);
		/* and it says what to do instead */
		ck_assert_msg(strstr(err, "drop it") || strstr(err, "dm.thinpooldev"), "%s", err);
		ck_assert(!memcmp(&before, &o, sizeof(o)));
		/* the key is matched after lower-casing, like every other */
		for (char *p = kv; *p && *p != '='; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		ck_assert_int_eq(tg_options_parse(&o, kv, err, sizeof(err)), -EINVAL);
		ck_assert_msg(!strncmp(err, want, strlen(want)), "%s said \"%s\"", kv, err);
	}
}
END_TEST

START_TEST(test_finish)
{
	char err[512] = "";
	struct tg_options o;
	tg_options_default(&o);
	parse_ok(&o, "dm.use_deferred_deletion=true");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "devmapper: Deferred deletion can not be enabled as deferred removal "
	                      "is not enabled. Enable deferred removal using --storage-opt "
	                      "dm.use_deferred_removal=true parameter");
	parse_ok(&o, "dm.use_deferred_removal=true");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(o.use_deferred_removal && o.use_deferred_deletion);

	/* removal alone is fine */
	tg_options_default(&o);
	parse_ok(&o, "dm.use_deferred_removal=true");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);

	/* blkdiscard: off with a pool of the user's unless given, in any order */
	tg_options_default(&o);
	parse_ok(&o, "dm.thinpooldev=/dev/mapper/p");
	ck_assert(o.blkdiscard);
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(!o.blkdiscard);

	tg_options_default(&o);
	parse_ok(&o, "dm.blkdiscard=true");
	parse_ok(&o, "dm.thinpooldev=p");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(o.blkdiscard);

	tg_options_default(&o);
	parse_ok(&o, "dm.blkdiscard=false");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(!o.blkdiscard);

	/* "/dev/mapper/" alone strips to no pool: loop files, discard stays on */
	tg_options_default(&o);
	parse_ok(&o, "dm.thinpooldev=/dev/mapper/");
	ck_assert_int_eq(tg_options_finish(&o, err, sizeof(err)), 0);
	ck_assert(o.blkdiscard);
}
END_TEST

/* Random key case and white space around a random size or bool: the same result as the
 * plain spelling. */
START_TEST(test_random_spellings)
{
	static const char *const keys[] = { "dm.basesize", "dm.loopdatasize", "dm.loopmetadatasize",
		                            "dm.blkdiscard", "dm.use_deferred_removal" };
	static const char ws[] = " \t\n\v\f\r";
	struct mu_rng r;
	mu_rng_init(&r, seed);
	for (int i = 0; i < 5000; i++) {
		size_t k = (size_t)mu_below(&r, 5);
		char val[32];
		uint64_t n = mu_below(&r, 1u << 20);
		if (k < 3)
			snprintf(val, sizeof(val), "%" PRIu64 "%s", n, mu_below(&r, 2) ? "M" : "k");
		else
			snprintf(val, sizeof(val), "%s", n & 1 ? "true" : "0");
		char kv[128];
		size_t o = 0;
		for (uint64_t j = mu_below(&r, 3); j; j--)
			kv[o++] = ws[mu_below(&r, 6)];
		for (const char *p = keys[k]; *p; p++)
			kv[o++] =
			        (*p >= 'a' && *p <= 'z' && mu_below(&r, 2)) ? (char)(*p - 32) : *p;
		for (uint64_t j = mu_below(&r, 3); j; j--)
			kv[o++] = ws[mu_below(&r, 6)];
		kv[o++] = '=';
		for (uint64_t j = mu_below(&r, 3); j; j--)
			kv[o++] = ws[mu_below(&r, 6)];
		o += (size_t)snprintf(kv + o, sizeof(kv) - o, "%s", val);
		for (uint64_t j = mu_below(&r, 3); j; j--)
			kv[o++] = ws[mu_below(&r, 6)];
		kv[o] = '\0';

		struct tg_options a, b;
		tg_options_default(&a);
		tg_options_default(&b);
		char plain[128], err[256] = "";
		snprintf(plain, sizeof(plain), "%s=%s", keys[k], val);
		ck_assert_int_eq(tg_options_parse(&a, plain, err, sizeof(err)), 0);
		int rc = tg_options_parse(&b, kv, err, sizeof(err));
		ck_assert_msg(rc == 0, "seed %" PRIu64 ": \"%s\" refused: %s", seed, kv, err);
		ck_assert_msg(!memcmp(&a, &b, sizeof(a)),
		              "seed %" PRIu64 ": \"%s\" differs from \"%s\"", seed, kv, plain);
	}
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("graph_options");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_split_trim_case);
	tcase_add_test(tc, test_fs_mkfs_mount_pool);
	tcase_add_test(tc, test_bools);
	tcase_add_test(tc, test_min_free_space);
	tcase_add_test(tc, test_unsupported_docker_options);
	tcase_add_test(tc, test_finish);
	tcase_add_test(tc, test_random_spellings);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_graph_options", options_suite, &seed);
}
