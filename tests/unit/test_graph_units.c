/* Sizes, booleans and integers as Docker's Go code reads and prints them
 * (impl/graph/graph_units.c, docs/docker-driver.md §3 and §7):
 *
 *   - RAMInBytes on go-units' own test values (size_test.go) and on the edges of its pattern
 *     ^(\d+(\.\d+)*) ?([kmgtp])?i?b?$ (case-insensitive), with the exact error texts;
 *   - HumanSize on go-units' values and the docker-info figures of the driver doc;
 *   - strconv.ParseBool and ParseUint with Go's error texts and quoting;
 *   - seeded round trips (THINP_SEED, printed): sizes written with a random unit spelling
 *     parse back exactly, printed sizes are within half a unit of the 4th digit.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_units.h"
#include "model_util.h"
#include "pool_util.h"

#define KiB UINT64_C(1024)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)
#define PiB (1024ull * TiB)

static uint64_t seed;

static uint64_t size_ok(const char *s)
{
	uint64_t v = 12345;
	char err[256] = "";
	int r = tg_ram_in_bytes(s, &v, err, sizeof(err));
	ck_assert_msg(r == 0, "RAMInBytes(\"%s\") = %d (%s), expected success", s, r, err);
	return v;
}

static void size_err(const char *s, int want, const char *text)
{
	uint64_t v = 777;
	char err[1024] = "";
	int r = tg_ram_in_bytes(s, &v, err, sizeof(err));
	ck_assert_msg(r == want, "RAMInBytes(\"%s\") = %d, expected %d", s, r, want);
	ck_assert_msg(v == 777, "RAMInBytes(\"%s\") wrote a value on error", s);
	ck_assert_msg(!strcmp(err, text), "RAMInBytes(\"%s\") said \"%s\", expected \"%s\"", s, err,
	              text);
}

START_TEST(test_ram_in_bytes_go_units_cases)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "32", 32 },
		{ "32b", 32 },
		{ "32B", 32 },
		{ "32k", 32 * KiB },
		{ "32K", 32 * KiB },
		{ "32kb", 32 * KiB },
		{ "32Kb", 32 * KiB },
		{ "32Kib", 32 * KiB },
		{ "32KIB", 32 * KiB },
		{ "32Mb", 32 * MiB },
		{ "32Gb", 32 * GiB },
		{ "32Tb", 32 * TiB },
		{ "32Pb", 32 * PiB },
		{ "32PB", 32 * PiB },
		{ "32P", 32 * PiB },
		{ "32.3", 32 },
		/* int64(32.3 * MiB) and int64(0.3 * MiB): truncated after multiplying */
		{ "32.3 mb", 33869004 },
		{ "0.3MB", 314572 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(size_ok(ok[i].s) == ok[i].v,
		              "RAMInBytes(\"%s\") = %" PRIu64 ", expected %" PRIu64, ok[i].s,
		              size_ok(ok[i].s), ok[i].v);
	static const char *const bad[] = { "", "hello", "-32", " 32 ", "32m b", "32bm" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "invalid size: '%s'", bad[i]);
		size_err(bad[i], -EINVAL, want);
	}
}
END_TEST

START_TEST(test_ram_in_bytes_driver_values)
{
	/* the option defaults and examples of docs/docker-driver.md §3 */
	ck_assert_uint_eq(size_ok("10G"), 10737418240ull);
	ck_assert_uint_eq(size_ok("100G"), 100 * GiB);
	ck_assert_uint_eq(size_ok("2G"), 2 * GiB);
	ck_assert_uint_eq(size_ok("64k"), 65536);
	ck_assert_uint_eq(size_ok("64K"), 65536);
	ck_assert_uint_eq(size_ok("1.5g"), 1610612736ull);
	ck_assert_uint_eq(size_ok("2GiB"), 2 * GiB);
	ck_assert_uint_eq(size_ok("512"), 512);
	ck_assert_uint_eq(size_ok("0"), 0);
	ck_assert_uint_eq(size_ok("0.5"), 0);
}
END_TEST

START_TEST(test_ram_in_bytes_pattern_edges)
{
	/* what the pattern lets through besides the obvious */
	ck_assert_uint_eq(size_ok("32i"), 32); /* an 'i' without a unit */
	ck_assert_uint_eq(size_ok("32ib"), 32);
	ck_assert_uint_eq(size_ok("32 "), 32); /* the one space, and nothing after */
	ck_assert_uint_eq(size_ok("32 k"), 32 * KiB);
	ck_assert_uint_eq(size_ok("32 KiB"), 32 * KiB);
	ck_assert_uint_eq(size_ok("007k"), 7 * KiB);
	ck_assert_uint_eq(size_ok("1.0009765625k"), 1025); /* exact in binary */
	ck_assert_uint_eq(size_ok("0000000000000000000000000000000000000000000000000000000000000"
	                          "000000000000005k"),
	                  5 * KiB); /* leading zeros are no limit */
	ck_assert_uint_eq(size_ok("9223372036854774784"), 9223372036854774784ull); /* 2^63-1024 */
	ck_assert_uint_eq(size_ok("8191.99999P"), (uint64_t)(8191.99999 * (double)PiB));

	size_err("32  k", -EINVAL, "invalid size: '32  k'");
	size_err("32kk", -EINVAL, "invalid size: '32kk'");
	size_err("32bi", -EINVAL, "invalid size: '32bi'");
	size_err("32e", -EINVAL, "invalid size: '32e'");
	size_err("32E", -EINVAL, "invalid size: '32E'");
	size_err("1e3", -EINVAL, "invalid size: '1e3'");
	size_err(".5k", -EINVAL, "invalid size: '.5k'");
	size_err("5.k", -EINVAL, "invalid size: '5.k'");
	size_err("+5", -EINVAL, "invalid size: '+5'");
	size_err("5\tk", -EINVAL, "invalid size: '5\tk'");
	size_err("0x10", -EINVAL, "invalid size: '0x10'");
	/* the pattern's (\.\d+)* admits a second dot; Go's ParseFloat then refuses it */
	size_err("1.2.3", -EINVAL, "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax");
	size_err("1.2.3 G", -EINVAL, "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax");
	/* 2^63 and beyond: Go's int64() would wrap, we refuse */
	size_err("8192P", -ERANGE, "invalid size: '8192P': larger than 8 EiB (2^63-1 bytes)");
	size_err("9223372036854775808", -ERANGE,
	         "invalid size: '9223372036854775808': larger than 8 EiB (2^63-1 bytes)");
	size_err("99999999999999999999T", -ERANGE,
	         "invalid size: '99999999999999999999T': larger than 8 EiB (2^63-1 bytes)");
	char big[420];
	big[0] = '1';
	memset(big + 1, '0', 400);
	big[401] = '\0';
	char want[512];
	snprintf(want, sizeof(want), "strconv.ParseFloat: parsing \"%s\": value out of range", big);
	size_err(big, -ERANGE, want);
}
END_TEST

static void human(uint64_t n, const char *want, const char *want_spaced)
{
	char buf[64];
	tg_human_size(n, false, buf, sizeof(buf));
	ck_assert_msg(!strcmp(buf, want), "HumanSize(%" PRIu64 ") = \"%s\", expected \"%s\"", n,
	              buf, want);
	if (want_spaced) {
		tg_human_size(n, true, buf, sizeof(buf));
		ck_assert_msg(!strcmp(buf, want_spaced),
		              "HumanSize(%" PRIu64 ", spaced) = \"%s\", expected \"%s\"", n, buf,
		              want_spaced);
	}
}

START_TEST(test_human_size)
{
	/* go-units' own cases */
	human(1000, "1kB", "1 kB");
	human(1024, "1.024kB", NULL);
	human(1000000, "1MB", NULL);
	human(1048576, "1.049MB", NULL);
	human(2000000, "2MB", NULL);
	human(3420000000ull, "3.42GB", NULL);
	human(5372000000000ull, "5.372TB", NULL);
	human(2220000000000000ull, "2.22PB", NULL);
	/* the driver doc's docker-info figures */
	human(0, "0B", "0 B");
	human(999, "999B", "999 B");
	human(64 * KiB, "65.54kB", "65.54 kB");
	human(512 * KiB, "524.3kB", NULL);
	human(10 * GiB, "10.74GB", "10.74 GB");
	human(100 * GiB, "107.4GB", "107.4 GB");
	human(2 * GiB, "2.147GB", NULL);
	human(10 * GiB + 0, "10.74GB", NULL); /* 10% of a 100 GiB pool */
	/* rounding: 999.95 kB has four significant digits "1000", the unit stays */
	human(999950, "1000kB", "1000 kB");
	human(999949, "999.9kB", NULL);
	human(UINT64_MAX, "18.45EB", "18.45 EB");
}
END_TEST

START_TEST(test_parse_bool)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
	char err[128];
	for (size_t i = 0; i < 6; i++) {
		bool b = false;
		ck_assert_int_eq(tg_parse_bool(yes[i], &b, err, sizeof(err)), 0);
		ck_assert(b);
		b = true;
		ck_assert_int_eq(tg_parse_bool(no[i], &b, err, sizeof(err)), 0);
		ck_assert(!b);
	}
	static const struct {
		const char *s, *text;
	} bad[] = {
		{ "yes", "strconv.ParseBool: parsing \"yes\": invalid syntax" },
		{ "", "strconv.ParseBool: parsing \"\": invalid syntax" },
		{ "tRUE", "strconv.ParseBool: parsing \"tRUE\": invalid syntax" },
		{ "TRue", "strconv.ParseBool: parsing \"TRue\": invalid syntax" },
		{ " true", "strconv.ParseBool: parsing \" true\": invalid syntax" },
		{ "2", "strconv.ParseBool: parsing \"2\": invalid syntax" },
		{ "on", "strconv.ParseBool: parsing \"on\": invalid syntax" },
		/* Go's %q quoting inside the text */
		{ "a\"b", "strconv.ParseBool: parsing \"a\\\"b\": invalid syntax" },
		{ "a\\b", "strconv.ParseBool: parsing \"a\\\\b\": invalid syntax" },
		{ "x\ny", "strconv.ParseBool: parsing \"x\\ny\": invalid syntax" },
		{ "\x01\x7f", "strconv.ParseBool: parsing \"\\x01\\x7f\": invalid syntax" },
		{ "\xc3\xa9t\xc3\xa9",
		  "strconv.ParseBool: parsing \"\xc3\xa9t\xc3\xa9\": invalid syntax" },
		{ "\xff", "strconv.ParseBool: parsing \"\\xff\": invalid syntax" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool b = true;
		err[0] = '\0';
		ck_assert_int_eq(tg_parse_bool(bad[i].s, &b, err, sizeof(err)), -EINVAL);
		ck_assert_msg(!strcmp(err, bad[i].text), "ParseBool said \"%s\", expected \"%s\"",
		              err, bad[i].text);
		ck_assert(b);
	}
}
END_TEST

START_TEST(test_parse_uint)
{
	static const struct {
		const char *s;
		unsigned bits;
		int r;
		uint64_t v;
		const char *what;
	} cases[] = {
		{ "10", 32, 0, 10, NULL },
		{ "0", 32, 0, 0, NULL },
		{ "007", 32, 0, 7, NULL },
		{ "4294967295", 32, 0, 4294967295ull, NULL },
		{ "18446744073709551615", 64, 0, UINT64_MAX, NULL },
		{ "4294967296", 32, -ERANGE, 0, "value out of range" },
		{ "18446744073709551616", 64, -ERANGE, 0, "value out of range" },
		{ "", 32, -EINVAL, 0, "invalid syntax" },
		{ "+1", 32, -EINVAL, 0, "invalid syntax" },
		{ "-1", 32, -EINVAL, 0, "invalid syntax" },
		{ " 1", 32, -EINVAL, 0, "invalid syntax" },
		{ "1_000", 32, -EINVAL, 0, "invalid syntax" },
		{ "10%", 32, -EINVAL, 0, "invalid syntax" },
		/* Go reports whichever comes first, scanning left to right */
		{ "99999999999999999999x", 64, -ERANGE, 0, "value out of range" },
		{ "1x99999999999999999999", 64, -EINVAL, 0, "invalid syntax" },
		{ "4294967296x", 32, -ERANGE, 0, "value out of range" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 4242;
		char err[128] = "";
		int r = tg_parse_uint(cases[i].s, cases[i].bits, &v, err, sizeof(err));
		ck_assert_msg(r == cases[i].r, "ParseUint(\"%s\", %u) = %d", cases[i].s,
		              cases[i].bits, r);
		if (!r) {
			ck_assert_uint_eq(v, cases[i].v);
			continue;
		}
		char want[128];
		snprintf(want, sizeof(want), "strconv.ParseUint: parsing \"%s\": %s", cases[i].s,
		         cases[i].what);
		ck_assert_msg(!strcmp(err, want), "said \"%s\", expected \"%s\"", err, want);
		ck_assert_uint_eq(v, 4242);
	}
}
END_TEST

START_TEST(test_go_quote_truncates)
{
	char buf[6];
	tg_go_quote("abcdefgh", buf, sizeof(buf));
	ck_assert_str_eq(buf, "\"abcd");
	tg_go_quote("", buf, sizeof(buf));
	ck_assert_str_eq(buf, "\"\"");
}
END_TEST

static uint64_t rnd(struct mu_rng *r, uint64_t n)
{
	return mu_below(r, n);
}

/* A random spelling of unit U (0..5 = none k m g t p): case, 'i', 'b', one space. */
static void spell_unit(struct mu_rng *r, unsigned u, char *out)
{
	static const char letters[] = " kmgtp";
	size_t o = 0;
	if (rnd(r, 2))
		out[o++] = ' ';
	if (u) {
		char c = letters[u];
		out[o++] = rnd(r, 2) ? (char)(c - 'a' + 'A') : c;
	}
	if (rnd(r, 3) == 0)
		out[o++] = rnd(r, 2) ? 'i' : 'I';
	if (rnd(r, 2))
		out[o++] = rnd(r, 2) ? 'b' : 'B';
	out[o] = '\0';
}

START_TEST(test_ram_in_bytes_random_round_trip)
{
	struct mu_rng r;
	mu_rng_init(&r, seed);
	for (int i = 0; i < 20000; i++) {
		unsigned u = (unsigned)rnd(&r, 6);
		uint64_t mul = 1ull << (10 * u);
		/* an integer part below 2^(53 - 10u) and k/1024 in decimal: the value and its
		 * product are exact in a double, so the expected bytes are exact too */
		uint64_t a = rnd(&r, 1ull << (u ? 43 - 10 * (u - 1) : 53));
		uint64_t k = u ? rnd(&r, 1024) : 0;
		char num[64], unit[8], s[80];
		int n = snprintf(num, sizeof(num), "%" PRIu64, a);
		if (k) {
			/* k/1024 = k * 9765625 / 10^10 */
			snprintf(num + n, sizeof(num) - (size_t)n, ".%010" PRIu64,
			         k * UINT64_C(9765625));
		}
		spell_unit(&r, u, unit);
		snprintf(s, sizeof(s), "%s%s", num, unit);
		uint64_t want = a * mul + (u ? k * (mul / 1024) : 0);
		uint64_t got = size_ok(s);
		ck_assert_msg(got == want,
		              "seed %" PRIu64 ": RAMInBytes(\"%s\") = %" PRIu64
		              ", expected %" PRIu64,
		              seed, s, got, want);
	}
}
END_TEST

START_TEST(test_human_size_random)
{
	static const char *const abbrs[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	struct mu_rng r;
	mu_rng_init(&r, seed ^ 0x4855u);
	for (int i = 0; i < 20000; i++) {
		uint64_t n = mu_next(&r) >> rnd(&r, 64);
		char buf[64];
		tg_human_size(n, false, buf, sizeof(buf));
		char *end;
		double x = strtod(buf, &end);
		int e = -1;
		for (int j = 0; j < 7; j++)
			if (!strcmp(end, abbrs[j]))
				e = j;
		ck_assert_msg(e >= 0, "seed %" PRIu64 ": \"%s\" has no unit", seed, buf);
		/* the unit is the largest power of 1000 not above n, the figure has at most 4
		 * significant digits and is within half a unit of its last digit */
		double p = pow(1000.0, e);
		ck_assert_msg((e == 0 || n >= (uint64_t)p) && (e == 6 || (double)n < p * 1000.0),
		              "seed %" PRIu64 ": %" PRIu64 " printed as \"%s\"", seed, n, buf);
		double exact = (double)n / p;
		double ulp = x >= 1000 ? 1 : x >= 100 ? 0.1 : x >= 10 ? 0.01 : 0.001;
		ck_assert_msg(fabs(x - exact) <= ulp / 2 * (1 + 1e-9),
		              "seed %" PRIu64 ": %" PRIu64 " printed as \"%s\"", seed, n, buf);
		char spaced[64], want[64];
		tg_human_size(n, true, spaced, sizeof(spaced));
		snprintf(want, sizeof(want), "%.*s %s", (int)(end - buf), buf, end);
		ck_assert_str_eq(spaced, want);
	}
}
END_TEST

static Suite *units_suite(void)
{
	Suite *s = suite_create("graph_units");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_ram_in_bytes_go_units_cases);
	tcase_add_test(tc, test_ram_in_bytes_driver_values);
	tcase_add_test(tc, test_ram_in_bytes_pattern_edges);
	tcase_add_test(tc, test_human_size);
	tcase_add_test(tc, test_parse_bool);
	tcase_add_test(tc, test_parse_uint);
	tcase_add_test(tc, test_go_quote_truncates);
	tcase_add_test(tc, test_ram_in_bytes_random_round_trip);
	tcase_add_test(tc, test_human_size_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_graph_units", units_suite, &seed);
}
