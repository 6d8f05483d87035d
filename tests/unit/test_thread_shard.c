/* Counter shards owned by threads (tp_thread_shard, impl/io/dev_shard.c) and the counts kept
 * in them: live threads never share an owned shard, the threads beyond TP_CTR_SHARDS share
 * the last one, a shard whose owner exited is taken over, and the device counters and the
 * pool's per-class counters stay exact through all of it (owned shards are added to without
 * an atomic read-modify-write, so two writers of one shard would lose counts). Seeded:
 * THINP_SEED sets how many writes each thread does. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "thinp.h"

#define NR_THR       (TP_CTR_SHARDS + 3)
#define DEFAULT_SEED 0x7368617264ull /* "shard" */
#define K4           4096u

static uint64_t seed_of(void)
{
	static uint64_t seed;
	static bool printed;
	if (!printed) {
		const char *s = getenv("THINP_SEED");
		seed = s ? strtoull(s, NULL, 0) : DEFAULT_SEED;
		printf("test_thread_shard: seed %" PRIu64 " (THINP_SEED)\n", seed);
		printed = true;
	}
	return seed;
}

struct shard_arg {
	pthread_barrier_t *all_in, *all_counted;
	struct tp_dev *dev;        /* writes go here (NULL: none) */
	struct thinp_thin *thin;   /* or through this pool's thin (NULL: none) */
	uint64_t writes, first;    /* how many 4 KiB writes, from which 4 KiB unit */
	unsigned shard;
	int rc;
};

/* Take a shard, wait until every thread has one (so all are alive at once), write. */
static void *shard_main(void *v)
{
	struct shard_arg *a = v;
	a->shard = tp_thread_shard();
	pthread_barrier_wait(a->all_in);
	uint8_t buf[K4];
	memset(buf, 0x5a, sizeof(buf));
	for (uint64_t i = 0; i < a->writes && !a->rc; i++) {
		if (a->dev)
			a->rc = tp_dev_pwrite(a->dev, buf, K4, (a->first + i % 8) * K4);
		else
			a->rc = thinp_write(a->thin, buf, K4, (a->first + i % 8) * K4, 0, NULL);
	}
	pthread_barrier_wait(a->all_counted);
	return NULL;
}

/* NR_THR threads alive at once: returns the per-shard counts of owners. */
static void run_threads(struct shard_arg *a, struct tp_dev *dev, struct thinp_thin *thin,
			uint64_t writes[NR_THR], unsigned owners[TP_CTR_SHARDS + 1])
{
	pthread_barrier_t in, counted;
	pthread_barrier_init(&in, NULL, NR_THR);
	pthread_barrier_init(&counted, NULL, NR_THR);
	pthread_t th[NR_THR];
	for (unsigned i = 0; i < NR_THR; i++) {
		a[i] = (struct shard_arg){.all_in = &in, .all_counted = &counted, .dev = dev,
					  .thin = thin, .writes = writes[i], .first = i * 16};
		ck_assert_int_eq(pthread_create(&th[i], NULL, shard_main, &a[i]), 0);
	}
	for (unsigned i = 0; i < NR_THR; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&in);
	pthread_barrier_destroy(&counted);
	memset(owners, 0, sizeof(unsigned) * (TP_CTR_SHARDS + 1));
	for (unsigned i = 0; i < NR_THR; i++) {
		ck_assert_int_eq(a[i].rc, 0);
		ck_assert_uint_le(a[i].shard, TP_CTR_SHARDS);
		owners[a[i].shard]++;
	}
}

static void seeded_writes(uint64_t writes[NR_THR], uint64_t salt)
{
	struct mu_rng rng;
	mu_rng_init(&rng, seed_of() ^ salt);
	for (unsigned i = 0; i < NR_THR; i++)
		writes[i] = 2000 + mu_below(&rng, 2000);
}

START_TEST(test_owned_shards)
{
	/* this (forked) test process's main thread takes one first, as a pool's opener would */
	unsigned mine = tp_thread_shard();
	ck_assert_uint_lt(mine, TP_CTR_SHARDS);
	struct tp_dev *d;
	ck_assert_int_eq(tp_dev_open_mem(1ull << 20, &d), 0);
	uint64_t writes[NR_THR], total = 0;
	seeded_writes(writes, 1);
	for (unsigned i = 0; i < NR_THR; i++)
		total += writes[i];
	struct shard_arg a[NR_THR];
	unsigned owners[TP_CTR_SHARDS + 1];
	/* twice: the second round's threads find every owned shard's owner gone but the main
	 * thread's, and take them over */
	for (int round = 0; round < 2; round++) {
		tp_dev_ctr_reset(d);
		run_threads(a, d, NULL, writes, owners);
		for (unsigned s = 0; s < TP_CTR_SHARDS; s++)
			ck_assert_msg(owners[s] == (s == mine ? 0u : 1u),
				      "round %d: shard %u has %u live owners (the main thread owns %u)",
				      round, s, owners[s], mine);
		ck_assert_uint_eq(owners[TP_CTR_SHARDS], NR_THR - (TP_CTR_SHARDS - 1));
		struct tp_io_counters c = tp_dev_ctr(d);
		ck_assert_uint_eq(c.writes, total);
		ck_assert_uint_eq(c.bytes_written, total * K4);
	}
	ck_assert_uint_eq(tp_thread_shard(), mine);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_pool_counts_exact)
{
	struct tp_dev *data, *meta;
	ck_assert_int_eq(tp_dev_open_mem(64ull << 20, &data), 0);
	ck_assert_int_eq(tp_dev_open_mem(16ull << 20, &meta), 0);
	struct thinp_pool_opts o = {.block_sectors = 128, .no_commit_timer = true};
	struct thinp_pool *p;
	char err[256];
	ck_assert_int_eq(thinp_pool_format(data, meta, &o, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	struct thinp_thin *t;
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &t), 0);
	/* every thread's units provisioned first, so the threads' writes are all overwrites */
	uint8_t *blk = calloc(1, 64 * 1024);
	ck_assert_ptr_nonnull(blk);
	for (unsigned i = 0; i < NR_THR; i++)
		ck_assert_int_eq(thinp_write(t, blk, 64 * 1024, (uint64_t)i * 64 * 1024, 0, NULL), 0);
	free(blk);
	uint64_t writes[NR_THR], total = 0;
	seeded_writes(writes, 2);
	for (unsigned i = 0; i < NR_THR; i++)
		total += writes[i];
	struct shard_arg a[NR_THR];
	unsigned owners[TP_CTR_SHARDS + 1];
	for (int round = 0; round < 2; round++) {
		thinp_pool_stats_reset(p);
		run_threads(a, NULL, t, writes, owners);
		ck_assert_uint_ge(owners[TP_CTR_SHARDS], 2); /* the shared slot is used by several */
		struct thinp_class_stats st[THINP_NR_CLASSES];
		thinp_pool_stats(p, st);
		ck_assert_uint_eq(st[THINP_WRITE_OVERWRITE].ops, total);
		ck_assert_uint_eq(st[THINP_WRITE_OVERWRITE].bytes_requested, total * K4);
		ck_assert_uint_eq(st[THINP_WRITE_OVERWRITE].data_bytes_written, total * K4);
		for (unsigned c = 0; c < THINP_NR_CLASSES; c++)
			if (c != THINP_WRITE_OVERWRITE)
				ck_assert_msg(st[c].ops == 0, "round %d: class %s has %" PRIu64 " ops after the reset",
					      round, thinp_class_name(c), st[c].ops);
	}
	thinp_thin_close(t);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("thread_shard");
	TCase *tc = tcase_create("shards");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_owned_shards);
	tcase_add_test(tc, test_pool_counts_exact);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	seed_of();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
