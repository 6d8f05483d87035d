/* Corrupt thin-pool metadata must be named as such, all the way up.
 *
 * A pool (thin 0 with 300 mappings: an internal subtree root over two
 * leaves; thin 1 its snapshot, sharing that subtree) is made with the
 * metadata API on a memory device; then the subtree root's last child is
 * pointed at the root itself (re-sealed: only the shape is wrong), the
 * "mapping-tree internal node that points to itself" of the issue. On it:
 *
 *   - metadata level: tmd_highest_mapped (what `thinp thin status` runs),
 *     tmd_lookup, tmd_insert must end with -EUCLEAN;
 *   - pool level (thinp.h): thin status, a read and a write (on the
 *     snapshot, whose shared subtree made the write shadow the loop until
 *     metadata space ran out) must end with -EUCLEAN;
 *   - and every message (tmd_error, thinp_pool_error) must say "metadata
 *     corrupt" and name the node, never strerror(EILSEQ) ("Invalid or
 *     incomplete multibyte or wide character") nor strerror(EUCLEAN) alone.
 *
 * Each check runs forked under a short timeout, so a hang fails as one. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "thin/metadata.h"
#include "thin/superblock.h"
#include "thinp.h"

#define BLK        TP_BLOCK_SIZE
#define META_BYTES (4u << 20)
#define NR_DATA    1024u /* 64 KiB blocks */
#define NR_MAPPED  300u
#define TIMEOUT_S  10

static void ok(int r, const char *what, struct tmd *md)
{
	ck_assert_msg(r == 0, "%s: %s (%s)", what, strerror(-r), md ? tmd_error(md) : "");
}

/* ---- the damaged image ---- */

static uint64_t dev_root(struct tp_dev *meta, uint64_t dev)
{
	uint8_t sbb[BLK], n[BLK];
	ok(tp_dev_pread(meta, sbb, BLK, 0), "read superblock", NULL);
	struct thin_superblock sb;
	thin_sb_unpack(sbb, &sb);
	ok(tp_dev_pread(meta, n, BLK, sb.data_mapping_root * BLK), "read top level", NULL);
	ck_assert_uint_eq(le32_get(n + 4), BTREE_LEAF_NODE);
	uint32_t max = le32_get(n + 20);
	for (uint32_t i = 0; i < le32_get(n + 16); i++)
		if (le64_get(n + 32 + 8 * i) == dev)
			return le64_get(n + 32 + 8 * max + 8 * i);
	ck_abort_msg("device %llu not in the top-level tree", (unsigned long long)dev);
	return 0;
}

/* The pool, committed, with thin 0's subtree root pointing at itself. */
static struct tp_dev *damaged_meta(void)
{
	struct tp_dev *meta;
	struct tmd *md = NULL;
	char err[512];
	ok(tp_dev_open_mem(META_BYTES, &meta), "open meta", NULL);
	struct tmd_open_args a = {.meta = meta};
	ok(tmd_format(&a, 128, NR_DATA, &md, err, sizeof(err)), "format", md);
	ok(tmd_create_thin(md, 0), "create thin 0", md);
	for (uint64_t v = 0; v < NR_MAPPED; v++) {
		uint64_t b;
		ok(tmd_alloc_data_block(md, &b), "alloc", md);
		ok(tmd_insert(md, 0, v, b), "insert", md);
	}
	ok(tmd_commit(md), "commit", md);
	ok(tmd_create_snap(md, 1, 0), "snapshot", md);
	ok(tmd_close(md), "close", NULL);

	uint64_t root = dev_root(meta, 0);
	uint8_t n[BLK];
	ok(tp_dev_pread(meta, n, BLK, root * BLK), "read root", NULL);
	ck_assert_uint_eq(le32_get(n + 4), BTREE_INTERNAL_NODE);
	uint32_t max = le32_get(n + 20), last = le32_get(n + 16) - 1;
	le64_put(n + 32 + 8 * max + 8 * last, root);
	le32_put(n, tp_block_csum(n, BLK, TP_BTREE_CSUM_XOR));
	ok(tp_dev_pwrite(meta, n, BLK, root * BLK), "write root", NULL);
	return meta;
}

/* (the metadata does not own its device: close_damaged closes both) */
static struct tp_dev *open_meta;

static struct tmd *open_damaged(void)
{
	struct tmd *md = NULL;
	char err[512];
	struct tmd_open_args a = {.meta = open_meta = damaged_meta()};
	ok(tmd_open(&a, &md, err, sizeof(err)), "open", md);
	return md;
}

static void close_damaged(struct tmd *md)
{
	tmd_close_nocommit(md);
	tp_dev_close(open_meta);
}

static void expect_named(int r, const char *what, const char *msg)
{
	fprintf(stderr, "%s: %d \"%s\"\n", what, r, msg);
	ck_assert_msg(r == -EUCLEAN, "%s: %d (%s), want -EUCLEAN; message \"%s\"", what, r,
		      strerror(r < 0 ? -r : r), msg);
}

static void expect_message(const char *what, const char *msg)
{
	ck_assert_msg(strstr(msg, "metadata corrupt") && strstr(msg, "cycle") &&
			      !strstr(msg, "Invalid or incomplete multibyte"),
		      "%s: message \"%s\" does not name the corruption", what, msg);
}

/* ---- metadata level ---- */

enum md_op { MD_HIGHEST, MD_LOOKUP, MD_INSERT, NR_MD_OPS };

static int md_op(struct tmd *md, int op)
{
	uint64_t vb, b;
	struct thin_mapping m;
	switch (op) {
	case MD_HIGHEST:
		return tmd_highest_mapped(md, 0, &vb);
	case MD_LOOKUP:
		return tmd_lookup(md, 0, NR_MAPPED - 1, &m);
	default:
		if (tmd_alloc_data_block(md, &b))
			return -EIO;
		return tmd_insert(md, 0, NR_MAPPED + 5, b);
	}
}

START_TEST(test_md_errno)
{
	struct tmd *md = open_damaged();
	int r = md_op(md, _i);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", tmd_error(md));
	close_damaged(md);
	expect_named(r, "tmd op", msg);
}
END_TEST

START_TEST(test_md_message)
{
	struct tmd *md = open_damaged();
	(void)md_op(md, _i);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", tmd_error(md));
	close_damaged(md);
	expect_message("tmd op", msg);
}
END_TEST

/* ---- pool level ---- */

enum pool_op { P_THIN_STATUS, P_READ, P_WRITE, NR_POOL_OPS };

static int pool_op(int op, char *msg, size_t len)
{
	struct tp_dev *data;
	struct thinp_pool *p;
	ok(thinp_dev_open_mem((uint64_t)NR_DATA * 65536, &data), "open data", NULL);
	struct thinp_pool_opts o = {.no_commit_timer = true, .error_if_no_space = true};
	char err[512];
	int r = thinp_pool_open(data, damaged_meta(), &o, &p, err, sizeof(err));
	ck_assert_msg(r == 0, "pool open: %s", err);
	struct thinp_thin *t;
	struct thinp_thin_status ts;
	struct thinp_io_result res;
	static uint8_t buf[65536];
	/* the last leaf holds the highest blocks; the snapshot shares it */
	uint64_t off = (uint64_t)(NR_MAPPED - 1) * 65536;
	if (op == P_THIN_STATUS) {
		r = thinp_thin_status(p, 0, &ts);
	} else {
		ok(thinp_thin_open(p, op == P_WRITE ? 1 : 0, 0, &t), "thin open", NULL);
		r = op == P_READ ? thinp_read(t, buf, 4096, off, &res)
				 : thinp_write(t, buf, 4096, off, 0, &res);
		thinp_thin_close(t);
	}
	thinp_pool_error_copy(p, msg, len);
	(void)thinp_pool_close(p);
	return r;
}

START_TEST(test_pool_errno)
{
	char msg[512];
	int r = pool_op(_i, msg, sizeof(msg));
	expect_named(r, "pool op", msg);
}
END_TEST

START_TEST(test_pool_message)
{
	char msg[512];
	(void)pool_op(_i, msg, sizeof(msg));
	expect_message("pool op", msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("corrupt_metadata");
	TCase *tc = tcase_create("errno");
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_loop_test(tc, test_md_errno, 0, NR_MD_OPS);
	tcase_add_loop_test(tc, test_pool_errno, 0, NR_POOL_OPS);
	suite_add_tcase(s, tc);
	tc = tcase_create("message");
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_loop_test(tc, test_md_message, 0, NR_MD_OPS);
	tcase_add_loop_test(tc, test_pool_message, 0, NR_POOL_OPS);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
