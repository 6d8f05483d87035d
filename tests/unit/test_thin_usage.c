/* Per-thin usage (impl/thin/thin_usage.c, thinp_thin_usage): mapped, exclusive and shared
 * blocks as thin_ls counts them, checked against
 *  - a model kept by the test: every thin's vblock -> data block map, updated with each
 *    create, snapshot, insert, extra reference, remove and delete; a block is exclusive
 *    when exactly one (thin, vblock) of the model maps it;
 *  - the independent on-disk walker of model_util.c after each commit: the data space
 *    map's counts are non-zero exactly where the model maps a block, so the model is the
 *    metadata's;
 *  - snapshots that share subtrees (data count 1, two thins mapping the block: shared),
 *    and the public call on a pool.
 * Damaged metadata (a mapping beyond the data device) is tests/cli/report.sh's: the
 * metadata API refuses to write one. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "thin/metadata.h"
#include "thin/thin_usage.h"
#include "thinp.h"

#define DEFAULT_SEED 0x7573616765ull /* "usage" */
#define MAX_DEVS     16
#define VSPACE       256
#define NR_DATA      8192
#define UNMAPPED     UINT64_MAX

static uint64_t g_seed;

struct model {
	bool exists[MAX_DEVS];
	uint64_t map[MAX_DEVS][VSPACE];
};

static struct tmd *format_mem(uint64_t nr_data, struct tp_dev **dev)
{
	char err[512];
	struct tmd *md;
	ck_assert_msg(tp_dev_open_mem(16ull << 20, dev) == 0, "mem dev");
	struct tmd_open_args args = { .meta = *dev };
	ck_assert_msg(tmd_format(&args, 128, nr_data, &md, err, sizeof(err)) == 0, "format: %s",
	              err);
	return md;
}

#define OK(call, what)                                                                    \
	do {                                                                              \
		int r_ = (call);                                                          \
		ck_assert_msg(r_ == 0, "seed %" PRIu64 ": %s = %d: %s", g_seed, what, r_, \
		              tmd_error(md));                                             \
	} while (0)

/* tmd_thin_usage against the model's own count. */
static void compare(struct tmd *md, const struct model *m, uint64_t op)
{
	static uint32_t refs[NR_DATA];
	memset(refs, 0, sizeof(refs));
	for (int d = 0; d < MAX_DEVS; d++)
		for (int v = 0; m->exists[d] && v < VSPACE; v++)
			if (m->map[d][v] != UNMAPPED)
				refs[m->map[d][v]]++;
	struct thinp_thin_usage *u;
	size_t n, k = 0;
	char err[512];
	int r = tmd_thin_usage(md, &u, &n, err, sizeof(err));
	ck_assert_msg(r == 0, "seed %" PRIu64 " op %" PRIu64 ": usage = %d: %s", g_seed, op, r,
	              err);
	for (int d = 0; d < MAX_DEVS; d++) {
		if (!m->exists[d])
			continue;
		uint64_t mapped = 0, excl = 0;
		for (int v = 0; v < VSPACE; v++)
			if (m->map[d][v] != UNMAPPED) {
				mapped++;
				excl += refs[m->map[d][v]] == 1;
			}
		ck_assert_msg(k < n && u[k].id == (uint64_t)d,
		              "seed %" PRIu64 " op %" PRIu64 ": thin %d missing", g_seed, op, d);
		ck_assert_msg(u[k].mapped_blocks == mapped && u[k].exclusive_blocks == excl &&
		                      u[k].shared_blocks == mapped - excl,
		              "seed %" PRIu64 " op %" PRIu64 ": thin %d: %" PRIu64 "/%" PRIu64
		              "/%" PRIu64 " (mapped/exclusive/shared), model %" PRIu64 "/%" PRIu64,
		              g_seed, op, d, u[k].mapped_blocks, u[k].exclusive_blocks,
		              u[k].shared_blocks, mapped, excl);
		struct thin_details det;
		OK(tmd_get_details(md, (uint64_t)d, &det), "details");
		ck_assert_msg(u[k].transaction_id == det.transaction_id &&
		                      u[k].creation_time == det.creation_time &&
		                      u[k].snapshotted_time == det.snapshotted_time,
		              "thin %d: details differ", d);
		k++;
	}
	ck_assert_msg(k == n, "seed %" PRIu64 " op %" PRIu64 ": %zu thins, model %zu", g_seed, op,
	              n, k);
	free(u);
}

/* After a commit: the on-disk data counts (an independent walker) are non-zero exactly
 * where the model maps a block. */
static void compare_disk(struct tp_dev *dev, const struct model *m)
{
	static bool mapped[NR_DATA];
	memset(mapped, 0, sizeof(mapped));
	for (int d = 0; d < MAX_DEVS; d++)
		for (int v = 0; m->exists[d] && v < VSPACE; v++)
			if (m->map[d][v] != UNMAPPED)
				mapped[m->map[d][v]] = true;
	uint32_t *counts;
	uint64_t nr;
	struct mu_thin_summary sum;
	char err[512];
	int r = mu_check_thin(dev, &counts, &nr, &sum, err, sizeof(err));
	ck_assert_msg(r == 0, "seed %" PRIu64 ": on-disk check: %s", g_seed, err);
	ck_assert_uint_eq(nr, NR_DATA);
	for (uint64_t b = 0; b < nr; b++)
		ck_assert_msg((counts[b] > 0) == mapped[b],
		              "seed %" PRIu64 ": data block %" PRIu64 " count %u, model %s", g_seed,
		              b, counts[b], mapped[b] ? "mapped" : "unmapped");
	free(counts);
}

/* A random (thin, vblock) the model maps, or false. */
static bool pick_mapped(struct mu_rng *rng, const struct model *m, int *d, int *v)
{
	for (int tries = 0; tries < 64; tries++) {
		*d = (int)mu_below(rng, MAX_DEVS);
		*v = (int)mu_below(rng, VSPACE);
		if (m->exists[*d] && m->map[*d][*v] != UNMAPPED)
			return true;
	}
	return false;
}

START_TEST(test_random_model)
{
	struct mu_rng rng;
	mu_rng_init(&rng, g_seed);
	struct tp_dev *dev;
	struct tmd *md = format_mem(NR_DATA, &dev);
	static struct model m;
	memset(&m, 0, sizeof(m));
	const uint64_t nr_ops = mu_scaled(3000, 300);
	for (uint64_t op = 0; op < nr_ops; op++) {
		int d = (int)mu_below(&rng, MAX_DEVS), v = (int)mu_below(&rng, VSPACE), o, ov;
		unsigned what = (unsigned)mu_below(&rng, 100);
		if (!m.exists[d] && what < 90) {
			/* a new thin, or a snapshot of a random existing one */
			int origin = (int)mu_below(&rng, MAX_DEVS);
			if (m.exists[origin] && mu_pct(&rng, 60)) {
				OK(tmd_create_snap(md, (uint64_t)d, (uint64_t)origin), "snap");
				memcpy(m.map[d], m.map[origin], sizeof(m.map[d]));
			} else {
				OK(tmd_create_thin(md, (uint64_t)d), "create");
				for (int i = 0; i < VSPACE; i++)
					m.map[d][i] = UNMAPPED;
			}
			m.exists[d] = true;
		} else if (!m.exists[d]) {
			continue;
		} else if (what < 55) {
			/* a write: a new block, the old mapping (if any) dropped */
			uint64_t b;
			int r = tmd_alloc_data_block(md, &b);
			if (r == -ENOSPC) {
				OK(tmd_commit(md), "commit");
				r = tmd_alloc_data_block(md, &b);
			}
			OK(r, "alloc");
			OK(tmd_insert(md, (uint64_t)d, (uint64_t)v, b), "insert");
			m.map[d][v] = b;
		} else if (what < 70 && pick_mapped(&rng, &m, &o, &ov) &&
		           m.map[o][ov] != m.map[d][v]) {
			/* a second mapping of an existing block (thin_restore's shared blocks); not
			 * over a mapping of that same block, which dm-btree keeps without dropping a
			 * reference (its values compare equal), so the inc would leak */
			uint64_t b = m.map[o][ov];
			OK(tmd_data_inc(md, b), "inc");
			OK(tmd_insert(md, (uint64_t)d, (uint64_t)v, b), "insert shared");
			m.map[d][v] = b;
		} else if (what < 85) {
			int r = tmd_remove(md, (uint64_t)d, (uint64_t)v);
			ck_assert_msg(r == 0 || (r == -ENODATA && m.map[d][v] == UNMAPPED),
			              "seed %" PRIu64 ": remove = %d", g_seed, r);
			m.map[d][v] = UNMAPPED;
		} else if (what < 92) {
			OK(tmd_delete_thin(md, (uint64_t)d), "delete");
			m.exists[d] = false;
		}
		if (op % 97 == 0)
			compare(md, &m, op);
		if (op % 251 == 0) {
			OK(tmd_commit(md), "commit");
			compare_disk(dev, &m);
		}
	}
	compare(md, &m, nr_ops);
	OK(tmd_commit(md), "commit");
	compare_disk(dev, &m);
	tmd_close(md);
	tp_dev_close(dev);
}
END_TEST

/* Snapshots share their origin's subtree: the data space map counts those blocks once, yet
 * two thins map them, so neither has them exclusive (thin_ls's answer). */
START_TEST(test_shared_subtree)
{
	struct tp_dev *dev;
	struct tmd *md = format_mem(1024, &dev);
	OK(tmd_create_thin(md, 1), "create");
	for (uint64_t v = 0; v < 10; v++) {
		uint64_t b;
		OK(tmd_alloc_data_block(md, &b), "alloc");
		OK(tmd_insert(md, 1, v, b), "insert");
	}
	OK(tmd_commit(md), "commit");
	OK(tmd_create_snap(md, 2, 1), "snap");
	OK(tmd_commit(md), "commit");
	struct thin_mapping map;
	uint32_t count;
	OK(tmd_lookup(md, 1, 3, &map), "lookup");
	OK(tmd_data_count(md, map.data_block, &count), "count");
	ck_assert_uint_eq(count, 1); /* the subtree is shared, not the block */
	struct thinp_thin_usage *u;
	size_t n;
	char err[256];
	ck_assert_int_eq(tmd_thin_usage(md, &u, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(u[i].mapped_blocks == 10 && u[i].exclusive_blocks == 0 &&
		                      u[i].shared_blocks == 10,
		              "thin %" PRIu64 ": %" PRIu64 " exclusive", u[i].id,
		              u[i].exclusive_blocks);
	free(u);
	/* a write to the snapshot: its new block is its own, the old one the origin's */
	uint64_t b;
	OK(tmd_alloc_data_block(md, &b), "alloc");
	OK(tmd_insert(md, 2, 3, b), "insert");
	ck_assert_int_eq(tmd_thin_usage(md, &u, &n, err, sizeof(err)), 0);
	ck_assert_msg(u[0].exclusive_blocks == 1 && u[0].shared_blocks == 9 &&
	                      u[1].exclusive_blocks == 1 && u[1].shared_blocks == 9,
	              "after CoW: %" PRIu64 "/%" PRIu64 ", %" PRIu64 "/%" PRIu64,
	              u[0].exclusive_blocks, u[0].shared_blocks, u[1].exclusive_blocks,
	              u[1].shared_blocks);
	free(u);
	tmd_close(md);
	tp_dev_close(dev);
}
END_TEST

/* The public call on a pool: writes, a snapshot, a CoW; an empty pool has no thins. */
START_TEST(test_public_api)
{
	struct tp_dev *data, *meta;
	ck_assert_int_eq(thinp_dev_open_mem(64 * 65536, &data), 0);
	ck_assert_int_eq(thinp_dev_open_mem(4 << 20, &meta), 0);
	struct thinp_pool_opts o = { .no_commit_timer = true };
	struct thinp_pool *p;
	char err[256];
	ck_assert_int_eq(thinp_pool_format(data, meta, &o, &p, err, sizeof(err)), 0);
	struct thinp_thin_usage *u = (void *)1;
	size_t n = 1;
	ck_assert_int_eq(thinp_thin_usage(p, &u, &n), 0);
	ck_assert_msg(u == NULL && n == 0, "empty pool");
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &t), 0);
	static char buf[3 * 65536];
	memset(buf, 0x5a, sizeof(buf));
	ck_assert_int_eq(thinp_write(t, buf, sizeof(buf), 0, 0, NULL), 0);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_create_snap(p, 2, 1), 0);
	ck_assert_int_eq(thinp_thin_open(p, 2, 0, &t), 0);
	ck_assert_int_eq(thinp_write(t, buf, 512, 0, 0, NULL), 0);
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_thin_usage(p, &u, &n), 0);
	ck_assert_uint_eq(n, 2);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(u[i].id == (uint64_t)i + 1 && u[i].mapped_blocks == 3 &&
		                      u[i].exclusive_blocks == 1 && u[i].shared_blocks == 2,
		              "thin %" PRIu64 ": %" PRIu64 "/%" PRIu64 "/%" PRIu64, u[i].id,
		              u[i].mapped_blocks, u[i].exclusive_blocks, u[i].shared_blocks);
	ck_assert_uint_eq(u[1].creation_time, 1); /* the snapshot advanced the pool time */
	/* a metadata snapshot shows the pool as it was when reserved, whatever follows */
	struct thinp_thin_usage *s;
	size_t ns;
	uint32_t bs = 0;
	ck_assert_int_eq(thinp_thin_usage_snap(meta, 0, &s, &ns, &bs, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "no metadata snapshot"), "%s", err);
	ck_assert_int_eq(thinp_reserve_metadata_snap(p), 0);
	ck_assert_int_eq(thinp_delete_thin(p, 1), 0);
	ck_assert_int_eq(thinp_thin_usage_snap(meta, 1, &s, &ns, &bs, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(thinp_thin_usage_snap(meta, 0, &s, &ns, &bs, err, sizeof(err)), 0);
	ck_assert_uint_eq(bs, 128);
	ck_assert_uint_eq(ns, 2);
	ck_assert_msg(!memcmp(s, u, 2 * sizeof(*u)), "the snapshot's usage differs from before");
	free(s);
	free(u);
	ck_assert_int_eq(thinp_thin_usage(p, &u, &n), 0);
	ck_assert_msg(n == 1 && u[0].id == 2 && u[0].exclusive_blocks == 3,
	              "after deleting thin 1, thin 2 holds its 3 blocks alone");
	free(u);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

int main(void)
{
	g_seed = mu_seed(DEFAULT_SEED);
	fprintf(stderr, "test_thin_usage: seed %" PRIu64 " (THINP_SEED), scale %g\n", g_seed,
	        mu_scale());
	Suite *s = suite_create("thin_usage");
	TCase *tc = tcase_create("usage");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_random_model);
	tcase_add_test(tc, test_shared_subtree);
	tcase_add_test(tc, test_public_api);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
