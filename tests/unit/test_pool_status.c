/* The exact `dmsetup status` text of the pool and thin targets
 * (docs/dm-thin-behaviour.md, "Status lines"; pool_status()/thin_status() in
 * dm-thin.c):
 *
 *   pool: "<trans id> <used meta>/<total meta> <used data>/<total data>
 *          <held root|-> <rw|ro|out_of_data_space>
 *          <discard_passdown|no_discard_passdown|ignore_discard>
 *          <queue_if_no_space|error_if_no_space> <needs_check|-> <meta low water> "
 *         each field followed by one space, the last too; "Fail" in FAIL mode;
 *   thin: "<mapped sectors> <highest mapped sector|->", no trailing space.
 *
 * The numbers are checked against independent sources: used metadata blocks
 * (the blocks referenced plus the hidden reserve, min(4096, total/10)) and
 * the held root against an independent walk of the committed metadata
 * (model_util.c), the metadata low watermark against min(1024, blocks/4). */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dev.h"
#include "support/dev_fault.h"
#include "model_util.h"
#include "pool_util.h"
#include "thinp.h"

#define KiB          1024ull
#define MiB          (1024ull * KiB)
#define DEFAULT_SEED 0x737461747573ull /* "status" */

/* ---- a pool on sparse files ---- */

static void env_open(struct pu_env *e, uint32_t block_sectors, uint64_t nr_data_blocks,
                     uint64_t meta_bytes, const struct thinp_pool_opts *opts, bool fault)
{
	struct thinp_pool_opts o = { 0 };
	if (opts)
		o = *opts;
	o.no_commit_timer = true;
	pu_env_open(e, block_sectors, nr_data_blocks, meta_bytes, &o, fault);
}

static void env_close(struct pu_env *e)
{
	if (e->p)
		thinp_pool_close(e->p);
	e->p = NULL;
}

static void pool_line(struct pu_env *e, bool noflush, char *buf, size_t len)
{
	memset(buf, 0x7f, len);
	REQ0(thinp_pool_status_line(e->p, noflush, buf, len));
	REQ(memchr(buf, 0, len) != NULL, "status line not terminated");
}

static void thin_line(struct pu_env *e, uint64_t id, char *buf, size_t len)
{
	REQ0(thinp_thin_status_line(e->p, id, buf, len));
}

/* Used metadata blocks and held root of the committed metadata, walked
 * independently from the file. */
static void disk_summary(struct pu_env *e, struct mu_thin_summary *sum)
{
	struct tp_dev *d;
	REQ0(tp_dev_open_file(e->meta_path, TP_DEV_RDONLY, 0, &d));
	char err[1024] = "";
	int r = mu_check_thin(d, NULL, NULL, sum, err, sizeof(err));
	tp_dev_close(d);
	REQ(r == 0, "independent metadata check failed: %s", err);
}

/* Used metadata blocks as the kernel reports them: the blocks referenced
 * plus the reserve that dm_pool_get_free_metadata_block_count() hides,
 * min(4096, total / 10) (__set_metadata_reserve()). */
static uint64_t meta_used(const struct mu_thin_summary *sum, uint64_t total_blocks)
{
	uint64_t reserve = total_blocks / 10 < 4096 ? total_blocks / 10 : 4096;
	return sum->nr_meta_used + reserve;
}

static uint64_t meta_low_water(uint64_t meta_bytes)
{
	uint64_t q = meta_bytes / 4096 / 4;
	return q < 1024 ? q : 1024;
}

static void write_at(struct pu_env *e, struct thinp_thin *t, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	REQ(buf != NULL, "out of memory");
	memset(buf, 0x5c, len);
	int r = thinp_write(t, buf, len, off, 0, NULL);
	free(buf);
	REQ(r == 0, "write at %" PRIu64 ": %d %s", off, r, thinp_pool_error(e->p));
}

/* ---- tests ---- */

START_TEST(test_fresh_pool_line)
{
	pu_ctx("fresh pool");
	struct pu_env e;
	env_open(&e, 128, 64, 8 * MiB, NULL, false);
	char line[256], want[256];
	pool_line(&e, false, line, sizeof(line));
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/2048 0/64 - rw discard_passdown queue_if_no_space - 512 ",
	         meta_used(&sum, 2048));
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e.p, true, &st));
	REQ(st.transaction_id == 0 && st.used_meta_blocks == meta_used(&sum, 2048) &&
	            st.total_meta_blocks == 2048 && st.used_data_blocks == 0 &&
	            st.total_data_blocks == 64 && st.held_root == 0 &&
	            st.mode == THINP_MODE_WRITE && st.discard_enabled && st.discard_passdown &&
	            !st.error_if_no_space && !st.needs_check && st.metadata_low_water == 512,
	    "struct status disagrees with the line \"%s\"", line);

	/* data blocks and metadata use follow the writes */
	REQ0(thinp_create_thin(e.p, 7));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 7, 0, &t));
	write_at(&e, t, 0, 4096);
	write_at(&e, t, 5 * e.B + 100 * 512, 8192);
	write_at(&e, t, 9 * e.B - 4096, 8192); /* two blocks */
	pool_line(&e, false, line, sizeof(line));
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/2048 4/64 - rw discard_passdown queue_if_no_space - 512 ",
	         meta_used(&sum, 2048));
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	REQ(sum.nr_data_used == 4, "the metadata has %" PRIu64 " data blocks in use",
	    sum.nr_data_used);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

START_TEST(test_noflush)
{
	pu_ctx("noflush");
	struct pu_env e;
	env_open(&e, 128, 64, 4 * MiB, NULL, false);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	write_at(&e, t, 0, 4096);
	char line[256];
	uint64_t w0 = tp_dev_ctr(e.meta).bytes_written;
	pool_line(&e, true, line, sizeof(line));
	REQ(tp_dev_ctr(e.meta).bytes_written == w0, "status with NOFLUSH wrote %" PRIu64 " metadata bytes",
	    tp_dev_ctr(e.meta).bytes_written - w0);
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	REQ(sum.nr_data_used == 0, "nothing committed yet, but the disk shows %" PRIu64 " blocks",
	    sum.nr_data_used);
	/* without NOFLUSH the status commits first */
	pool_line(&e, false, line, sizeof(line));
	REQ(tp_dev_ctr(e.meta).bytes_written > w0, "status without NOFLUSH did not commit");
	disk_summary(&e, &sum);
	REQ(sum.nr_data_used == 1, "after the commit the disk shows %" PRIu64 " blocks",
	    sum.nr_data_used);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

struct feat_case {
	bool ignore_discard, no_passdown, eins;
	const char *discard_word, *space_word;
};

static const struct feat_case feat_cases[] = {
	{ false, false, false, "discard_passdown", "queue_if_no_space" },
	{ true, false, false, "ignore_discard", "queue_if_no_space" },
	{ false, true, false, "no_discard_passdown", "queue_if_no_space" },
	{ true, true, false, "ignore_discard", "queue_if_no_space" },
	{ false, false, true, "discard_passdown", "error_if_no_space" },
	{ true, false, true, "ignore_discard", "error_if_no_space" },
	{ false, true, true, "no_discard_passdown", "error_if_no_space" },
};

START_TEST(test_feature_words)
{
	const struct feat_case *c = &feat_cases[_i];
	pu_ctx("features ignore_discard=%d no_discard_passdown=%d error_if_no_space=%d",
	       c->ignore_discard, c->no_passdown, c->eins);
	struct thinp_pool_opts o = { .ignore_discard = c->ignore_discard,
		                     .no_discard_passdown = c->no_passdown,
		                     .error_if_no_space = c->eins,
		                     .skip_block_zeroing = _i & 1 };
	struct pu_env e;
	env_open(&e, 256, 40, 4 * MiB, &o, false);
	char line[256], want[256];
	pool_line(&e, false, line, sizeof(line));
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want), "0 %" PRIu64 "/1024 0/40 - rw %s %s - 256 ",
	         meta_used(&sum, 1024), c->discard_word, c->space_word);
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	/* the struct says what the line says: passdown only where discards are enabled */
	struct thinp_pool_status st;
	REQ(thinp_pool_status(e.p, true, &st) == 0, "pool status: %s", thinp_pool_error(e.p));
	REQ(st.discard_enabled == !c->ignore_discard &&
	            st.discard_passdown == (!c->ignore_discard && !c->no_passdown) &&
	            st.error_if_no_space == c->eins,
	    "status struct discard_enabled=%d discard_passdown=%d error_if_no_space=%d for \"%s\"",
	    st.discard_enabled, st.discard_passdown, st.error_if_no_space, line);
	env_close(&e);
}
END_TEST

/* (256 MiB: the metadata reserve reaches its 4096-block cap) */
static const uint64_t meta_sizes[] = { 2 * MiB,  4 * MiB + 12 * KiB, 8 * MiB,
	                               16 * MiB, 16 * MiB + 4 * KiB, 64 * MiB,
	                               256 * MiB };

START_TEST(test_metadata_low_water)
{
	uint64_t mb = meta_sizes[_i];
	pu_ctx("metadata device of %" PRIu64 " bytes", mb);
	struct pu_env e;
	env_open(&e, 128, 16, mb, NULL, false);
	char line[256], want[256];
	pool_line(&e, false, line, sizeof(line));
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/%" PRIu64 " 0/16 - rw discard_passdown queue_if_no_space - %" PRIu64
	         " ",
	         meta_used(&sum, mb / 4096), mb / 4096, meta_low_water(mb));
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	/* growing the metadata device moves total and watermark */
	uint64_t nb = mb * 2;
	REQ0(thinp_pool_resize_metadata(e.p, nb));
	pool_line(&e, false, line, sizeof(line));
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/%" PRIu64 " 0/16 - rw discard_passdown queue_if_no_space - %" PRIu64
	         " ",
	         meta_used(&sum, nb / 4096), nb / 4096, meta_low_water(nb));
	REQ(strcmp(line, want) == 0, "after resize to %" PRIu64 ": \"%s\", expected \"%s\"", nb,
	    line, want);
	env_close(&e);
}
END_TEST

START_TEST(test_transaction_id)
{
	pu_ctx("set_transaction_id");
	struct pu_env e;
	env_open(&e, 128, 16, 4 * MiB, NULL, false);
	char line[256];
	REQ0(thinp_set_transaction_id(e.p, 0, 5));
	pool_line(&e, false, line, sizeof(line));
	REQ(strncmp(line, "5 ", 2) == 0, "after set_transaction_id 0 5: \"%s\"", line);
	int r = thinp_set_transaction_id(e.p, 4, 6);
	REQ(r == -EINVAL, "set_transaction_id with the wrong current id returned %d", r);
	r = thinp_set_transaction_id(e.p, 0, 6);
	REQ(r == -EINVAL, "set_transaction_id with the old current id returned %d", r);
	pool_line(&e, false, line, sizeof(line));
	REQ(strncmp(line, "5 ", 2) == 0, "a failed set_transaction_id changed the id: \"%s\"",
	    line);
	REQ0(thinp_set_transaction_id(e.p, 5, 18446744073709551615ull));
	pool_line(&e, false, line, sizeof(line));
	REQ(strncmp(line, "18446744073709551615 ", 21) == 0, "64-bit id: \"%s\"", line);
	REQ0(thinp_set_transaction_id(e.p, 18446744073709551615ull, 42));
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e.p, true, &st));
	REQ(st.transaction_id == 42, "struct transaction id %" PRIu64, st.transaction_id);
	/* the message committed: the id survives a reopen */
	char dpath[PATH_MAX];
	snprintf(dpath, sizeof(dpath), "%s/data", e.dir);
	env_close(&e);
	struct tp_dev *d, *m;
	REQ0(tp_dev_open_file(dpath, 0, 0, &d));
	REQ0(tp_dev_open_file(e.meta_path, 0, 0, &m));
	struct thinp_pool_opts o = { .no_commit_timer = true };
	char err[512] = "";
	r = thinp_pool_open(d, m, &o, &e.p, err, sizeof(err));
	REQ(r == 0, "reopen: %d %s", r, err);
	pool_line(&e, true, line, sizeof(line));
	REQ(strncmp(line, "42 ", 3) == 0, "after reopen: \"%s\"", line);
	env_close(&e);
}
END_TEST

/* dm-thin refuses to delete an open thin device (EBUSY) and deletes it once closed; Docker's
 * deferred deletion is built on that answer. */
START_TEST(test_delete_open_thin)
{
	pu_ctx("delete of an open thin");
	struct pu_env e;
	env_open(&e, 128, 16, 4 * MiB, NULL, false);
	REQ0(thinp_create_thin(e.p, 3));
	struct thinp_thin *t1, *t2;
	REQ0(thinp_thin_open(e.p, 3, 1 * MiB, &t1));
	REQ0(thinp_thin_open(e.p, 3, 1 * MiB, &t2));
	int r = thinp_delete_thin(e.p, 3);
	REQ(r == -EBUSY, "delete of a thin open twice returned %d", r);
	REQ(strstr(thinp_pool_error(e.p), "is open") != NULL, "error: %s", thinp_pool_error(e.p));
	thinp_thin_close(t1);
	r = thinp_delete_thin(e.p, 3);
	REQ(r == -EBUSY, "delete of a thin still open once returned %d", r);
	struct thinp_thin_status ts;
	REQ0(thinp_thin_status(e.p, 3, &ts)); /* still there */
	thinp_thin_close(t2);
	REQ0(thinp_delete_thin(e.p, 3));
	r = thinp_thin_status(e.p, 3, &ts);
	REQ(r != 0, "thin 3 still has a status after its delete");
	env_close(&e);
}
END_TEST

START_TEST(test_held_root)
{
	pu_ctx("reserve_metadata_snap");
	struct pu_env e;
	env_open(&e, 128, 64, 4 * MiB, NULL, false);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	write_at(&e, t, 0, 3 * e.B);
	REQ0(thinp_reserve_metadata_snap(e.p));
	char line[256], want[256];
	pool_line(&e, false, line, sizeof(line));
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	REQ(sum.held_root != 0, "no held root on disk after reserve_metadata_snap");
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/1024 3/64 %" PRIu64 " rw discard_passdown queue_if_no_space - 256 ",
	         meta_used(&sum, 1024), sum.held_root);
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	/* the held root stays while the pool changes */
	write_at(&e, t, 10 * e.B, 4096);
	REQ0(thinp_set_transaction_id(e.p, 0, 1));
	pool_line(&e, false, line, sizeof(line));
	uint64_t held = sum.held_root;
	disk_summary(&e, &sum);
	REQ(sum.held_root == held, "held root moved from %" PRIu64 " to %" PRIu64, held,
	    sum.held_root);
	snprintf(want, sizeof(want),
	         "1 %" PRIu64 "/1024 4/64 %" PRIu64 " rw discard_passdown queue_if_no_space - 256 ",
	         meta_used(&sum, 1024), held);
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	int r = thinp_reserve_metadata_snap(e.p);
	REQ(r == -EBUSY, "a second reserve_metadata_snap returned %d", r);
	REQ0(thinp_release_metadata_snap(e.p));
	pool_line(&e, false, line, sizeof(line));
	disk_summary(&e, &sum);
	REQ(sum.held_root == 0, "held root %" PRIu64 " on disk after release", sum.held_root);
	snprintf(want, sizeof(want),
	         "1 %" PRIu64 "/1024 4/64 - rw discard_passdown queue_if_no_space - 256 ",
	         meta_used(&sum, 1024));
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	r = thinp_release_metadata_snap(e.p);
	REQ(r == -EINVAL, "release without a metadata snapshot returned %d", r);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

START_TEST(test_out_of_data_space_word)
{
	pu_ctx("out_of_data_space");
	struct thinp_pool_opts o = { .error_if_no_space = true };
	struct pu_env e;
	env_open(&e, 128, 4, 4 * MiB, &o, false);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	write_at(&e, t, 0, 4 * e.B);
	char line[256], want[256];
	pool_line(&e, false, line, sizeof(line));
	struct mu_thin_summary sum;
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/1024 4/4 - rw discard_passdown error_if_no_space - 256 ",
	         meta_used(&sum, 1024));
	REQ(strcmp(line, want) == 0,
	    "full pool before any failed allocation: \"%s\", expected \"%s\"", line, want);
	uint8_t buf[4096] = { 1 };
	int r = thinp_write(t, buf, sizeof(buf), 4 * e.B, 0, NULL);
	REQ(r == -ENOSPC, "write beyond a full pool returned %d", r);
	pool_line(&e, false, line, sizeof(line));
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64
	         "/1024 4/4 - out_of_data_space discard_passdown error_if_no_space - 256 ",
	         meta_used(&sum, 1024));
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	REQ0(thinp_pool_resize_data(e.p, 8 * e.B));
	pool_line(&e, false, line, sizeof(line));
	disk_summary(&e, &sum);
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/1024 4/8 - rw discard_passdown error_if_no_space - 256 ",
	         meta_used(&sum, 1024));
	REQ(strcmp(line, want) == 0, "after resize: \"%s\", expected \"%s\"", line, want);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

/* A failed metadata write: abort, needs_check, read-only ("ro", "needs_check"). */
START_TEST(test_read_only_needs_check)
{
	pu_ctx("metadata write failure");
	struct pu_env e;
	env_open(&e, 128, 16, 4 * MiB, NULL, true);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	write_at(&e, t, 0, 4096);
	tp_fault_fail_write(e.fault, 1);
	int r = thinp_pool_commit(e.p);
	REQ(r != 0, "the commit survived a failed metadata write");
	char line[256];
	pool_line(&e, false, line, sizeof(line));
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e.p, true, &st));
	REQ(st.mode == THINP_MODE_READ_ONLY && st.needs_check, "mode %d needs_check %d", st.mode,
	    st.needs_check);
	char want[256];
	snprintf(want, sizeof(want),
	         "0 %" PRIu64 "/1024 %" PRIu64
	         "/16 - ro discard_passdown queue_if_no_space needs_check 256 ",
	         st.used_meta_blocks, st.used_data_blocks);
	REQ(strcmp(line, want) == 0, "pool status \"%s\", expected \"%s\"", line, want);
	/* the aborted transaction lost the mapping */
	REQ(st.used_data_blocks == 0, "used data blocks %" PRIu64 " after the abort",
	    st.used_data_blocks);
	r = thinp_create_thin(e.p, 2);
	REQ(r == -EOPNOTSUPP, "create_thin in read-only mode returned %d", r);
	char tl[64];
	thin_line(&e, 1, tl, sizeof(tl));
	REQ(strcmp(tl, "0 -") == 0, "thin status \"%s\"", tl);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

/* Metadata unreachable: the abort fails too, the pool fails ("Fail"). */
START_TEST(test_fail_mode)
{
	pu_ctx("metadata device gone");
	struct pu_env e;
	env_open(&e, 128, 16, 4 * MiB, NULL, true);
	REQ0(thinp_create_thin(e.p, 1));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 1, 0, &t));
	write_at(&e, t, 0, 4096);
	tp_fault_crash(e.fault);
	int r = thinp_pool_commit(e.p);
	REQ(r != 0, "the commit survived a dead metadata device");
	struct thinp_pool_status st;
	REQ0(thinp_pool_status(e.p, true, &st));
	REQ(st.mode == THINP_MODE_FAIL, "mode %d, expected FAIL", st.mode);
	char line[256], tl[64];
	pool_line(&e, false, line, sizeof(line));
	REQ(strcmp(line, "Fail") == 0, "pool status \"%s\", expected \"Fail\"", line);
	thin_line(&e, 1, tl, sizeof(tl));
	REQ(strcmp(tl, "Fail") == 0, "thin status \"%s\", expected \"Fail\"", tl);
	uint8_t buf[4096];
	r = thinp_read(t, buf, sizeof(buf), 0, NULL);
	REQ(r == -EIO, "read in FAIL mode returned %d", r);
	/* nothing may reach the (torn down) metadata any more */
	struct thinp_thin_status ts;
	r = thinp_thin_status(e.p, 1, &ts);
	REQ(r != 0, "thin status struct in FAIL mode succeeded");
	struct thinp_thin *t2 = NULL;
	r = thinp_thin_open(e.p, 1, 0, &t2);
	REQ(r != 0, "thin open in FAIL mode succeeded");
	r = thinp_create_thin(e.p, 2);
	REQ(r == -EOPNOTSUPP, "create_thin in FAIL mode returned %d", r);
	r = thinp_write(t, buf, sizeof(buf), 0, 0, NULL);
	REQ(r == -EIO, "write in FAIL mode returned %d", r);
	r = thinp_discard(t, 0, 1 << 20, NULL);
	REQ(r == -EIO, "discard in FAIL mode returned %d", r);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

static const uint32_t thin_bs[] = { 128, 256, 1024 };

START_TEST(test_thin_line)
{
	uint32_t bs = thin_bs[_i];
	pu_ctx("thin status, block %u sectors", bs);
	struct pu_env e;
	env_open(&e, bs, 32, 4 * MiB, NULL, false);
	REQ0(thinp_create_thin(e.p, 3));
	struct thinp_thin *t;
	REQ0(thinp_thin_open(e.p, 3, 0, &t));
	char tl[64], want[64];
	thin_line(&e, 3, tl, sizeof(tl));
	REQ(strcmp(tl, "0 -") == 0, "fresh thin: \"%s\"", tl);
	write_at(&e, t, 3 * e.B + 4096, 4096);
	thin_line(&e, 3, tl, sizeof(tl));
	snprintf(want, sizeof(want), "%u %u", bs, 4 * bs - 1);
	REQ(strcmp(tl, want) == 0, "one block at vblock 3: \"%s\", expected \"%s\"", tl, want);
	write_at(&e, t, 0, 512);
	thin_line(&e, 3, tl, sizeof(tl));
	snprintf(want, sizeof(want), "%u %u", 2 * bs, 4 * bs - 1);
	REQ(strcmp(tl, want) == 0, "vblocks 0 and 3: \"%s\", expected \"%s\"", tl, want);
	/* far away: beyond 32-bit sectors */
	uint64_t far = 1ull << 40;
	write_at(&e, t, far, 4096);
	uint64_t fb = far / e.B;
	thin_line(&e, 3, tl, sizeof(tl));
	snprintf(want, sizeof(want), "%u %" PRIu64, 3 * bs, (fb + 1) * bs - 1);
	REQ(strcmp(tl, want) == 0, "vblock %" PRIu64 ": \"%s\", expected \"%s\"", fb, tl, want);
	REQ0(thinp_discard(t, fb * e.B, e.B, NULL));
	REQ0(thinp_discard(t, 3 * e.B, e.B, NULL));
	thin_line(&e, 3, tl, sizeof(tl));
	snprintf(want, sizeof(want), "%u %u", bs, bs - 1);
	REQ(strcmp(tl, want) == 0, "after discards: \"%s\", expected \"%s\"", tl, want);
	/* a snapshot reports the origin's mappings; a CoW does not change them */
	write_at(&e, t, 7 * e.B, e.B);
	REQ0(thinp_create_snap(e.p, 4, 3));
	snprintf(want, sizeof(want), "%u %u", 2 * bs, 8 * bs - 1);
	thin_line(&e, 4, tl, sizeof(tl));
	REQ(strcmp(tl, want) == 0, "snapshot: \"%s\", expected \"%s\"", tl, want);
	write_at(&e, t, 7 * e.B, 4096);
	thin_line(&e, 3, tl, sizeof(tl));
	REQ(strcmp(tl, want) == 0, "origin after CoW: \"%s\", expected \"%s\"", tl, want);
	thin_line(&e, 4, tl, sizeof(tl));
	REQ(strcmp(tl, want) == 0, "snapshot after the origin's CoW: \"%s\", expected \"%s\"", tl,
	    want);
	REQ0(thinp_discard(t, 0, 8 * e.B, NULL));
	thin_line(&e, 3, tl, sizeof(tl));
	REQ(strcmp(tl, "0 -") == 0, "origin emptied: \"%s\"", tl);
	thin_line(&e, 4, tl, sizeof(tl));
	REQ(strcmp(tl, want) == 0, "snapshot after the origin emptied: \"%s\"", tl);
	REQ0(thinp_delete_thin(e.p, 4));
	int r = thinp_thin_status_line(e.p, 4, tl, sizeof(tl));
	REQ(r != 0, "status of a deleted thin succeeded: \"%s\"", tl);
	thinp_thin_close(t);
	env_close(&e);
}
END_TEST

static Suite *status_suite(void)
{
	Suite *s = suite_create("pool_status");
	TCase *tc = tcase_create("status");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fresh_pool_line);
	tcase_add_test(tc, test_noflush);
	tcase_add_loop_test(tc, test_feature_words, 0,
	                    (int)(sizeof(feat_cases) / sizeof(feat_cases[0])));
	tcase_add_loop_test(tc, test_metadata_low_water, 0,
	                    (int)(sizeof(meta_sizes) / sizeof(meta_sizes[0])));
	tcase_add_test(tc, test_transaction_id);
	tcase_add_test(tc, test_held_root);
	tcase_add_test(tc, test_delete_open_thin);
	tcase_add_test(tc, test_out_of_data_space_word);
	tcase_add_test(tc, test_read_only_needs_check);
	tcase_add_test(tc, test_fail_mode);
	tcase_add_loop_test(tc, test_thin_line, 0, (int)(sizeof(thin_bs) / sizeof(thin_bs[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_main(DEFAULT_SEED, "status", status_suite);
}
