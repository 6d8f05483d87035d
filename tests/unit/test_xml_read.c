/* Unit tests for the XML reader under restore (impl/thin/xml_read.c, through
 * xml_restore()): what the malformed-input corpus of tests/cli cannot reach
 * cheaply — tags across the reader's 64 KiB chunks, line numbers there and
 * with CRLF, the memory cap, UTF-16, entities of an external DTD, the
 * name/value/attribute limits at their edges — and that a failure leaves the
 * superblock zeroed. */
#include "thin/xml.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"

#define META_SIZE (4u << 20)

static const char *const SB_OPEN =
        "<superblock uuid=\"\" time=\"1\" transaction=\"5\" data_block_size=\"128\" "
        "nr_data_blocks=\"1024\">\n";
static const char *const DEV_OPEN = "  <device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" "
                                    "creation_time=\"0\" snap_time=\"1\">\n";
static const char *const MAPPING =
        "    <single_mapping origin_block=\"0\" data_block=\"1\" time=\"0\"/>\n";

/* a growing string */
struct buf {
	char *s;
	size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		ck_assert_ptr_nonnull(b->s);
	}
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	ck_assert_int_lt(n, (int)sizeof(tmp));
	put(b, tmp, (size_t)n);
}

static void repeat(struct buf *b, char c, size_t n)
{
	char chunk[4096];
	memset(chunk, c, sizeof(chunk));
	for (; n > sizeof(chunk); n -= sizeof(chunk))
		put(b, chunk, sizeof(chunk));
	put(b, chunk, n);
}

struct result {
	int r;
	char err[1024];
	char warnings[2048];
	bool sb_zero;
};

static void collect(void *ctx, const char *msg)
{
	struct result *res = ctx;
	size_t n = strlen(res->warnings);
	snprintf(res->warnings + n, sizeof(res->warnings) - n, "%s\n", msg);
}

/* Restore the LEN bytes at XML onto a memory device that held valid
 * metadata (so that a failure must visibly undo it). */
static struct result restore(const char *xml, size_t len)
{
	struct result res = { 0 };
	struct tp_dev *meta;
	ck_assert_int_eq(tp_dev_open_mem(META_SIZE, &meta), 0);
	struct xml_restore_opts opts = { .warn = collect, .warn_ctx = &res };
	static const char valid[] = "<superblock uuid=\"\" time=\"0\" transaction=\"0\" "
	                            "data_block_size=\"128\" nr_data_blocks=\"16\"/>";
	FILE *in = fmemopen((void *)valid, strlen(valid), "r");
	ck_assert_int_eq(xml_restore(in, meta, &opts, res.err, sizeof(res.err)), 0);
	fclose(in);

	in = len ? fmemopen((void *)xml, len, "r") : fopen("/dev/null", "r");
	ck_assert_ptr_nonnull(in);
	res.r = xml_restore(in, meta, &opts, res.err, sizeof(res.err));
	fclose(in);
	static uint8_t block[4096];
	ck_assert_int_eq(tp_dev_pread(meta, block, sizeof(block), 0), 0);
	res.sb_zero = true;
	for (size_t i = 0; i < sizeof(block); i++)
		res.sb_zero &= block[i] == 0;
	tp_dev_close(meta);
	return res;
}

static void expect_error(const struct result *res, const char *msg)
{
	ck_assert_msg(res->r != 0, "accepted, expected \"%s\"", msg);
	ck_assert_msg(!strcmp(res->err, msg), "error \"%s\", expected \"%s\"", res->err, msg);
	ck_assert_msg(res->sb_zero, "failed (%s) but the superblock is not zeroed", res->err);
}

static void expect_ok(const struct result *res)
{
	ck_assert_msg(res->r == 0, "rejected: %s", res->err);
	ck_assert(!res->sb_zero);
}

/* A comment of PAD bytes first moves the tags across the reader's chunk
 * boundaries; an error after them must still name its line. */
START_TEST(test_chunk_boundaries)
{
	static const size_t pads[] = { 0,     1,     65400, 65490, 65500,  65510, 65520,
		                       65530, 65535, 65536, 65537, 131000, 131072 };
	for (size_t i = 0; i < sizeof(pads) / sizeof(pads[0]); i++) {
		for (int bad = 0; bad < 2; bad++) {
			struct buf b = { 0 };
			puts_(&b, "<!--");
			repeat(&b, 'c', pads[i]);
			puts_(&b, "-->\n");
			puts_(&b, SB_OPEN);
			puts_(&b, DEV_OPEN);
			for (int k = 0; k < 2000; k++)
				putf(&b,
				     "    <single_mapping origin_block=\"%d\" data_block=\"%d\" "
				     "time=\"0\"/>\n",
				     k, k % 1000);
			if (bad) /* line 2004 */
				puts_(&b, "    <single_mapping origin_block=\"x\" data_block=\"1\" "
				          "time=\"0\"/>\n");
			puts_(&b, "  </device>\n</superblock>\n");
			struct result res = restore(b.s, b.n);
			if (bad)
				expect_error(
				        &res,
				        "line 2004: <single_mapping> origin_block=\"x\" is not "
				        "a non-negative decimal number");
			else
				expect_ok(&res);
			free(b.s);
		}
	}
}
END_TEST

/* A syntax error and an end of file past a chunk boundary, with CRLF lines. */
START_TEST(test_line_numbers)
{
	struct buf b = { 0 };
	puts_(&b, SB_OPEN);
	puts_(&b, DEV_OPEN);
	for (int k = 0; k < 3000; k++)
		putf(&b,
		     "    <single_mapping origin_block=\"%d\" data_block=\"1\" time=\"0\"/>\r\n",
		     k);
	puts_(&b, "    <single_mapping origin_block=0 data_block=\"1\" time=\"0\"/>\r\n");
	struct result res = restore(b.s, b.n);
	expect_error(&res, "line 3003: attribute origin_block: value must be quoted");
	b.n -= strlen("    <single_mapping origin_block=0 data_block=\"1\" time=\"0\"/>\r\n");
	res = restore(b.s, b.n);
	expect_error(&res, "line 3003: unexpected end of file: <device> (line 2) is not closed");
	free(b.s);
}
END_TEST

/* expat holds a token whole: a huge one fails with a message, not by
 * exhausting memory; a merely big one passes. */
START_TEST(test_memory_cap)
{
	for (int big = 0; big < 2; big++) {
		struct buf b = { 0 };
		puts_(&b, SB_OPEN);
		puts_(&b, "<!--");
		repeat(&b, 'c', big ? (size_t)40 << 20 : (size_t)3 << 20);
		puts_(&b, "-->\n</superblock>\n");
		struct result res = restore(b.s, b.n);
		if (big) {
			ck_assert_int_ne(res.r, 0);
			ck_assert_msg(strstr(res.err, "line 2: ") == res.err &&
			                      strstr(res.err, "too big (the reader holds at most"),
			              "%s", res.err);
			ck_assert(res.sb_zero);
		} else {
			expect_ok(&res);
		}
		free(b.s);
	}
	/* a value over the limit is refused by length, however long */
	struct buf b = { 0 };
	puts_(&b, "<superblock uuid=\"");
	repeat(&b, 'u', (size_t)1 << 20);
	puts_(&b, "\"/>\n");
	struct result res = restore(b.s, b.n);
	expect_error(&res, "line 1: attribute uuid: value longer than 1023 bytes");
	free(b.s);
}
END_TEST

START_TEST(test_encodings)
{
	static const char utf16le[] = "\xff\xfe<\0s\0/\0>\0";
	struct result res = restore(utf16le, sizeof(utf16le) - 1);
	expect_error(&res,
	             "line 1: unexpected text starting with '\xff' (only elements are allowed)");
	static const char utf16be_nobom[] = "\0<\0s\0/\0>";
	res = restore(utf16be_nobom, sizeof(utf16be_nobom) - 1);
	expect_error(&res, "line 1: unexpected text starting with '");
	static const char utf16le_nobom[] = "<\0s\0/\0>\0";
	res = restore(utf16le_nobom, sizeof(utf16le_nobom) - 1);
	expect_error(&res, "line 1: expected an element name, found '");
	/* a UTF-8 byte order mark is fine, and the declared encoding is not
	 * followed: the input is UTF-8 */
	static const char bom[] = "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
	                          "<superblock uuid=\"\xc3\xa9\" time=\"0\" transaction=\"0\" "
	                          "data_block_size=\"128\" nr_data_blocks=\"16\"/>\n";
	res = restore(bom, sizeof(bom) - 1);
	expect_ok(&res);
	res = restore("", 0);
	expect_error(&res, "line 1: no <superblock> element: is this thin_dump XML?");
}
END_TEST

START_TEST(test_entities)
{
	/* an external DTD is not read: its entities are unknown, in values ... */
	static const char ext_value[] =
	        "<!DOCTYPE superblock SYSTEM \"thin.dtd\">\n"
	        "<superblock uuid=\"&thin;\" time=\"0\" transaction=\"0\" data_block_size=\"128\" "
	        "nr_data_blocks=\"16\"/>\n";
	struct result res = restore(ext_value, sizeof(ext_value) - 1);
	expect_error(&res, "line 2: unknown entity '&thin;'");
	/* ... and between tags */
	static const char ext_text[] = "<!DOCTYPE superblock SYSTEM \"thin.dtd\">\n"
	                               "<superblock uuid=\"&amp;\" time=\"0\" transaction=\"0\" "
	                               "data_block_size=\"128\" nr_data_blocks=\"16\">\n"
	                               "&thin;</superblock>\n";
	res = restore(ext_text, sizeof(ext_text) - 1);
	expect_error(&res, "line 3: unexpected text starting with '&' (only elements are allowed)");
	/* entities are never declared, so never expanded */
	static const char laughs[] =
	        "<!DOCTYPE superblock [ <!ENTITY a \"aaaaaaaaaaaaaaaa\"> <!ENTITY b "
	        "\"&a;&a;&a;&a;&a;&a;&a;&a;\"> ]>\n<superblock uuid=\"&b;\"/>\n";
	res = restore(laughs, sizeof(laughs) - 1);
	expect_error(&res, "line 1: a DOCTYPE with an internal subset is not supported");
	/* whitespace written as a reference is text */
	struct buf b = { 0 };
	puts_(&b, SB_OPEN);
	puts_(&b, "  &#32;\n</superblock>\n");
	res = restore(b.s, b.n);
	expect_error(&res, "line 2: unexpected text starting with '&' (only elements are allowed)");
	free(b.s);
	/* character references in values are fine */
	static const char refs[] = "<superblock uuid=\"\" time=\"&#x31;\" transaction=\"&#48;\" "
	                           "data_block_size=\"128\" nr_data_blocks=\"16\"/>\n";
	res = restore(refs, sizeof(refs) - 1);
	expect_ok(&res);
}
END_TEST

/* names up to 63 characters, values up to 1023 bytes, 16 attributes */
START_TEST(test_limits)
{
	for (int over = 0; over < 2; over++) {
		struct buf b = { 0 };
		puts_(&b,
		      "<superblock uuid=\"\" time=\"0\" transaction=\"0\" data_block_size=\"128\" "
		      "nr_data_blocks=\"16\" ");
		repeat(&b, 'n', 63 + (size_t)over);
		puts_(&b, "=\"1\"/>\n");
		struct result res = restore(b.s, b.n);
		if (over) {
			expect_error(&res, "line 1: an attribute name is too long");
		} else {
			expect_ok(&res);
			ck_assert_msg(strstr(res.warnings, "unknown attribute nnn"), "%s",
			              res.warnings);
		}
		free(b.s);

		b = (struct buf){ 0 };
		puts_(&b, "<superblock uuid=\"");
		repeat(&b, 'u', 1023 + (size_t)over);
		puts_(&b, "\" time=\"0\" transaction=\"0\" data_block_size=\"128\" "
		          "nr_data_blocks=\"16\"/>\n");
		res = restore(b.s, b.n);
		if (over)
			expect_error(&res, "line 1: attribute uuid: value longer than 1023 bytes");
		else
			expect_ok(&res);
		free(b.s);

		b = (struct buf){ 0 };
		puts_(&b,
		      "<superblock uuid=\"\" time=\"0\" transaction=\"0\" data_block_size=\"128\" "
		      "nr_data_blocks=\"16\"");
		for (int i = 0; i < 11 + over; i++)
			putf(&b, " x%d=\"%d\"", i, i);
		puts_(&b, "/>\n");
		res = restore(b.s, b.n);
		if (over)
			expect_error(&res, "line 1: <superblock> has too many attributes");
		else
			expect_ok(&res);
		free(b.s);
	}
	struct buf b = { 0 };
	puts_(&b, SB_OPEN);
	puts_(&b, "  <d\xc3\xa9vice/>\n</superblock>\n");
	struct result res = restore(b.s, b.n);
	expect_error(&res, "line 2: expected an element name, found '\xc3'");
	free(b.s);
}
END_TEST

/* Tags out of place keep the old messages, found from expat's verdicts. */
START_TEST(test_structure)
{
	struct {
		const char *tail, *msg;
	} cases[] = {
		{ "  </device>\n</superblock>\n<device/>\n",
		  "line 6: <device> after </superblock>" },
		{ "  </device>\n</superblock>\n</device>\n", "line 6: unexpected </device>" },
		{ "</superblock>\n", "line 4: unexpected </superblock>: <device> is still open" },
		{ "  </device>\n</superblock>\ntext\n",
		  "line 6: unexpected text starting with 't' (only elements are allowed)" },
		{ "    <single_mapping origin_block=\"1\" data_block=\"2\" time=\"0\">\n  </device>\n",
		  "line 4: <single_mapping> is not closed (write <single_mapping .../>): </device> "
		  "follows" },
		{ "    <range_mapping origin_begin=\"1\" data_begin=\"2\" length=\"1\" time=\"0\">\n",
		  "line 4: unexpected end of file: <range_mapping> is not closed" },
		{ "  <![CDATA[x]]>\n",
		  "line 4: CDATA sections and declarations other than comments and DOCTYPE are not "
		  "allowed" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = { 0 };
		puts_(&b, SB_OPEN);
		puts_(&b, DEV_OPEN);
		puts_(&b, MAPPING);
		puts_(&b, cases[i].tail);
		struct result res = restore(b.s, b.n);
		expect_error(&res, cases[i].msg);
		free(b.s);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xml_read");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_chunk_boundaries);
	tcase_add_test(tc, test_line_numbers);
	tcase_add_test(tc, test_memory_cap);
	tcase_add_test(tc, test_encodings);
	tcase_add_test(tc, test_entities);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_structure);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
