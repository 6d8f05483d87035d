/* The metadata cache (impl/pdata/block_manager.c, its sizing in
 * impl/thin/metadata.c):
 *
 *  - second-chance clock: a block hit since the hand last passed survives
 *    the next eviction, blocks never hit go first, locked blocks are never
 *    evicted and a cache of locked blocks only grows past its capacity;
 *  - a block freed by the transaction manager (a shadowed original, a
 *    deleted node) leaves the cache at once, dirty or not, and is never
 *    written;
 *  - bm_set_capacity grows (rehashing) and shrinks the cache;
 *  - without an explicit size the thin metadata sizes its cache from the
 *    metadata in use, so lookups in a pool larger than the 16 MiB default
 *    stay hits; an explicit size is left alone;
 *  - bm_peek (the lookups of the pool's fast path) sees only blocks cached,
 *    validated by the same validator and not write-locked, changes no
 *    counter, and its reference keeps a block from the next eviction.
 *
 * Seeded: THINP_SEED (printed). */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "pdata/block_manager.h"
#include "pdata/transaction_manager.h"
#include "stack_util.h"
#include "thin/metadata.h"

#define DEFAULT_SEED 0xCAC4Eull

static struct tp_dev *mem_dev(uint64_t size)
{
	struct tp_dev *d;
	REQ0(tp_dev_open_mem(size, &d));
	return d;
}

static void touch(struct bm *bm, uint64_t b)
{
	struct bm_block *blk;
	REQ0(bm_read_lock(bm, b, NULL, &blk));
	bm_unlock(blk);
}

static bool cached(struct bm *bm, uint64_t b)
{
	struct bm_stats before, after;
	bm_get_stats(bm, &before);
	touch(bm, b);
	bm_get_stats(bm, &after);
	return after.hits == before.hits + 1;
}

START_TEST(test_clock_second_chance)
{
	su_set_ctx("clock", 0);
	struct tp_dev *d = mem_dev(1 << 20);
	struct bm *bm;
	REQ0(bm_create(d, 16, &bm));
	for (uint64_t b = 0; b < 16; b++)
		touch(bm, b);
	/* hit 0 and 5: they get a second chance, 1 (never hit) goes first */
	touch(bm, 0);
	touch(bm, 5);
	touch(bm, 100);
	struct bm_stats st;
	bm_get_stats(bm, &st);
	REQ(st.cached == 16 && st.evictions == 1, "%zu cached, %" PRIu64 " evictions", st.cached,
	    st.evictions);
	/* (cached() itself hits, so probe the evicted block last) */
	REQ(cached(bm, 0) && cached(bm, 5) && cached(bm, 100), "a referenced block was evicted");
	REQ(!cached(bm, 1), "block 1, never hit, survived the eviction");

	/* locked blocks are never evicted: hold 20 read locks on a 16-block cache */
	struct bm_block *held[20];
	for (uint64_t i = 0; i < 20; i++)
		REQ0(bm_read_lock(bm, 200 + i, NULL, &held[i]));
	bm_get_stats(bm, &st);
	REQ(st.cached >= 20, "%zu cached with 20 blocks locked", st.cached);
	for (int i = 0; i < 20; i++)
		bm_unlock(held[i]);
	bm_get_stats(bm, &st);
	REQ(st.cached <= 16, "%zu cached after the locks went (capacity 16)", st.cached);
	bm_destroy(bm);
	tp_dev_close(d);
}
END_TEST

static int check_ok(const void *data, uint64_t b, char *err, size_t errlen)
{
	(void)data, (void)b, (void)err, (void)errlen;
	return 0;
}

START_TEST(test_peek)
{
	su_set_ctx("peek", 0);
	struct tp_dev *d = mem_dev(1 << 20);
	struct bm *bm;
	REQ0(bm_create(d, 16, &bm));
	const struct bm_validator v = {"test", NULL, check_ok}, w = {"other", NULL, check_ok};
	REQ(bm_peek(bm, 3, &v) == NULL, "block 3 peeked before it was ever read");
	struct bm_block *blk;
	REQ0(bm_read_lock(bm, 3, &v, &blk));
	bm_unlock(blk);
	struct bm_stats before, after;
	bm_get_stats(bm, &before);
	REQ(bm_peek(bm, 3, &v) == bm_block_data(blk), "a cached, validated block not peeked");
	REQ(bm_peek(bm, 3, &w) == NULL, "peeked through another validator than it was checked with");
	REQ(bm_peek(bm, 1u << 20, &v) == NULL, "peeked beyond the device");
	bm_get_stats(bm, &after);
	REQ(after.hits == before.hits && after.misses == before.misses,
	    "peeks counted: hits %" PRIu64 " -> %" PRIu64 ", misses %" PRIu64 " -> %" PRIu64,
	    before.hits, after.hits, before.misses, after.misses);
	REQ0(bm_write_lock(bm, 3, &v, &blk));
	REQ(bm_peek(bm, 3, &v) == NULL, "a write-locked block peeked");
	bm_unlock(blk);

	bm_destroy(bm);

	/* a peek is a use: after a sweep has cleared every reference bit, the peeked block
	 * survives the hand's next pass, its unpeeked neighbour does not */
	REQ0(bm_create(d, 16, &bm));
	for (uint64_t b = 0; b < 16; b++)
		touch(bm, b);
	touch(bm, 16); /* the sweep clears 0..15 and evicts 0 */
	REQ(bm_peek(bm, 0, NULL) == NULL && bm_peek(bm, 5, NULL) != NULL,
	    "the first sweep did not evict block 0 alone");
	for (uint64_t b = 17; b <= 21; b++)
		touch(bm, b); /* 1..4 go, then the hand meets 5 */
	REQ(bm_peek(bm, 5, NULL) != NULL, "block 5, peeked since the last sweep, was evicted");
	REQ(bm_peek(bm, 6, NULL) == NULL, "block 6, not used since the last sweep, stayed");
	bm_destroy(bm);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_set_capacity)
{
	su_set_ctx("set_capacity", 0);
	struct tp_dev *d = mem_dev(8 << 20);
	struct bm *bm;
	REQ0(bm_create(d, 16, &bm));
	REQ0(bm_set_capacity(bm, 1000));
	for (uint64_t b = 0; b < 1000; b++)
		touch(bm, b);
	struct bm_stats st;
	bm_get_stats(bm, &st);
	REQ(st.capacity == 1000 && st.cached == 1000 && st.evictions == 0,
	    "capacity %zu, %zu cached, %" PRIu64 " evictions", st.capacity, st.cached, st.evictions);
	for (uint64_t b = 0; b < 1000; b++)
		REQ(cached(bm, b), "block %" PRIu64 " lost in the rehash", b);
	REQ0(bm_set_capacity(bm, 100));
	bm_get_stats(bm, &st);
	REQ(st.cached == 100, "%zu cached after shrinking to 100", st.cached);
	bm_destroy(bm);
	tp_dev_close(d);
}
END_TEST

/* ---- freed blocks leave the cache ---- */

START_TEST(test_freed_blocks_dropped)
{
	su_set_ctx("freed_dropped", 0);
	struct su_stack s;
	su_stack_create(&s, 1024, 1024, 256);
	/* a committed block, then shadowed: the original's last reference goes */
	struct bm_block *blk;
	REQ0(tm_new_block(s.tm, NULL, &blk));
	uint64_t orig = bm_block_location(blk);
	memset(bm_block_data(blk), 0xAB, TP_BLOCK_SIZE);
	tm_unlock(s.tm, blk);
	su_stack_commit(&s);
	REQ(cached(s.bm, orig), "the committed block is not cached");

	bool inc;
	REQ0(tm_shadow_block(s.tm, orig, NULL, &blk, &inc));
	uint64_t copy = bm_block_location(blk);
	REQ(copy != orig, "a committed block was modified in place");
	tm_unlock(s.tm, blk);
	struct bm_stats st;
	bm_get_stats(s.bm, &st);
	REQ(st.dropped >= 1, "the shadowed original was not dropped");
	REQ(!cached(s.bm, orig), "the shadowed original (dead) is still cached");

	/* a dirty block freed in its own transaction is dropped, never written */
	REQ0(tm_new_block(s.tm, NULL, &blk));
	uint64_t tmp = bm_block_location(blk);
	tm_unlock(s.tm, blk);
	REQ0(tm_dec(s.tm, tmp));
	uint64_t written = tp_dev_ctr(s.dev).bytes_written;
	REQ0(tm_dec(s.tm, copy)); /* the copy too: nothing of this transaction stays */
	su_stack_commit(&s);
	/* the commit wrote the space map (bitmap + index), not the dead blocks */
	REQ(tp_dev_ctr(s.dev).bytes_written - written <= 2 * TP_BLOCK_SIZE,
	    "the commit wrote %" PRIu64 " bytes: dead blocks went to disk",
	    tp_dev_ctr(s.dev).bytes_written - written);
	REQ(!cached(s.bm, tmp) && !cached(s.bm, copy), "a freed block is still cached");
	su_stack_destroy(&s);
}
END_TEST

/* ---- the thin metadata sizes its cache ---- */

static void fill(struct tmd *md, unsigned n)
{
	REQ0(tmd_create_thin(md, 1));
	for (unsigned i = 0; i < n; i++) {
		uint64_t b;
		REQ0(tmd_alloc_data_block(md, &b));
		REQ0(tmd_insert(md, 1, (uint64_t)i * 7919u % (4ull * n), b));
		if (i % 20000 == 19999)
			REQ0(tmd_commit(md));
	}
	REQ0(tmd_commit(md));
}

START_TEST(test_cache_sized_from_metadata)
{
	su_set_ctx("autosize", 0);
	unsigned n = 1500000; /* ~35 MiB of metadata: twice the 16 MiB default */
	for (int explicit_size = 0; explicit_size < 2; explicit_size++) {
		struct tp_dev *meta = mem_dev(256ull << 20);
		struct tmd_open_args a = {.meta = meta,
					  .cache_blocks = explicit_size ? THIN_DEFAULT_CACHE_BLOCKS : 0};
		struct tmd *md;
		char err[256];
		REQ(tmd_format(&a, 128, 4ull * n, &md, err, sizeof(err)) == 0, "format: %s", err);
		fill(md, n);
		uint64_t used = tmd_nr_metadata_blocks(md) - tmd_nr_free_metadata_blocks(md);
		struct bm_stats st, st2;
		tmd_cache_stats(md, &st);
		if (explicit_size) {
			REQ(st.capacity == THIN_DEFAULT_CACHE_BLOCKS,
			    "an explicit size became %zu blocks", st.capacity);
		} else {
			REQ(used > THIN_DEFAULT_CACHE_BLOCKS && st.capacity >= used,
			    "%" PRIu64 " metadata blocks in use, cache of %zu blocks", used,
			    st.capacity);
			/* every lookup a hit: the whole tree fits */
			struct mu_rng rng;
			mu_rng_init(&rng, su_seed);
			for (unsigned i = 0; i < 200000; i++) {
				struct thin_mapping m;
				REQ0(tmd_lookup(md, 1, mu_below(&rng, n) * 7919u % (4ull * n), &m));
			}
			tmd_cache_stats(md, &st2);
			REQ(st2.misses == st.misses, "%" PRIu64 " misses in lookups of a cached tree",
			    st2.misses - st.misses);
		}
		tmd_close_nocommit(md);
		/* reopened, the cache is sized from what is there */
		REQ0(tmd_open(&a, &md, err, sizeof(err)));
		tmd_cache_stats(md, &st);
		REQ(explicit_size ? st.capacity == THIN_DEFAULT_CACHE_BLOCKS : st.capacity >= used,
		    "reopened: cache of %zu blocks for %" PRIu64 " in use", st.capacity, used);
		tmd_close_nocommit(md);
		tp_dev_close(meta);
	}
}
END_TEST

static Suite *bm_cache_suite(void)
{
	Suite *s = suite_create("bm_cache");
	TCase *tc = tcase_create("cache");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_clock_second_chance);
	tcase_add_test(tc, test_set_capacity);
	tcase_add_test(tc, test_peek);
	tcase_add_test(tc, test_freed_blocks_dropped);
	tcase_add_test(tc, test_cache_sized_from_metadata);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_bm_cache", bm_cache_suite);
}
