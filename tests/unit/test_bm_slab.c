/* The block manager's block memory (impl/pdata/bm_slab.c):
 *
 *  - a cache's blocks are packed into 2 MiB-aligned chunks (what lets a huge page, and one TLB
 *    entry, cover 500 of them): the pages of as many blocks as a chunk holds, cached one
 *    after another, lie in at most two chunks;
 *  - every header and page handed out is its own: pages 4 KiB-aligned, headers zeroed, and a
 *    pattern written over every header and page at once reads back intact;
 *  - a block given back is handed out again before a new chunk is mapped;
 *  - the block manager's content survives eviction and re-reading through the slab
 *    (seeded random reads, writes and flushes against a model of the device).
 *
 * Seeded: THINP_SEED (printed). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "model_util.h"
#include "pdata/block_manager.h"
#include "pdata/bm_slab.h"
#include "stack_util.h"

#define DEFAULT_SEED 0x51ABull
#define CHUNK_BYTES (2ull << 20)

struct hdr {
	void *link;
	uint64_t words[9];
};

START_TEST(test_bm_blocks_share_chunks)
{
	su_set_ctx("chunks", 0);
	struct tp_dev *dev;
	REQ0(tp_dev_open_mem(8ull << 20, &dev));
	struct bm *bm;
	REQ0(bm_create(dev, 2048, &bm));
	struct bm_slab probe;
	bm_slab_init(&probe, 64);
	size_t n = probe.per_chunk; /* about 500 */
	uintptr_t chunks[8];
	size_t nr_chunks = 0;
	for (size_t b = 0; b < n; b++) {
		struct bm_block *blk;
		REQ0(bm_write_lock_zero(bm, b, NULL, &blk));
		uintptr_t c = (uintptr_t)bm_block_data(blk) & ~(uintptr_t)(CHUNK_BYTES - 1);
		REQ(((uintptr_t)bm_block_data(blk) & 4095) == 0, "block %zu's page is not aligned", b);
		size_t i = 0;
		while (i < nr_chunks && chunks[i] != c)
			i++;
		if (i == nr_chunks) {
			REQ(nr_chunks < 2, "%zu blocks cached one after another span %zu+ 2 MiB chunks",
			    b + 1, nr_chunks + 1);
			chunks[nr_chunks++] = c;
		}
		bm_unlock(blk);
	}
	bm_drop_dirty(bm);
	bm_destroy(bm);
	tp_dev_close(dev);
}
END_TEST

START_TEST(test_slab_blocks_are_distinct)
{
	su_set_ctx("distinct", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	struct bm_slab s;
	bm_slab_init(&s, sizeof(struct hdr));
	REQ(s.per_chunk > 400 && s.per_chunk < 512, "%zu blocks per chunk", s.per_chunk);
	size_t n = 3 * s.per_chunk + 17;
	struct hdr **h = calloc(n, sizeof(*h));
	uint8_t **pg = calloc(n, sizeof(*pg));
	REQ(h && pg, "out of memory");
	for (size_t i = 0; i < n; i++) {
		h[i] = bm_slab_get(&s, i % 2, &pg[i]);
		REQ(h[i] != NULL, "bm_slab_get %zu failed", i);
		REQ(((uintptr_t)pg[i] & 4095) == 0, "page %zu not 4 KiB-aligned", i);
		for (size_t w = 0; w < sizeof(h[i]->words) / 8; w++)
			REQ(h[i]->words[w] == 0 && h[i]->link == NULL, "header %zu not zeroed", i);
		memset(h[i]->words, (int)(i & 0xff), sizeof(h[i]->words));
		memset(pg[i], (int)((i * 7) & 0xff), 4096);
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t w = 0; w < sizeof(h[i]->words); w++)
			REQ(((uint8_t *)h[i]->words)[w] == (i & 0xff), "header %zu overwritten", i);
		for (size_t w = 0; w < 4096; w++)
			REQ(pg[i][w] == ((i * 7) & 0xff), "page %zu overwritten at %zu", i, w);
	}
	size_t chunks = s.nr_chunks;
	REQ(chunks == 4, "%zu blocks took %zu chunks", n, chunks);
	/* give back a random half and take as many again: no new chunk */
	size_t back = 0;
	for (size_t i = 0; i < n; i++)
		if (mu_pct(&rng, 50)) {
			bm_slab_put(&s, h[i]);
			h[i] = NULL;
			back++;
		}
	for (size_t i = 0; i < back; i++) {
		uint8_t *p;
		REQ(bm_slab_get(&s, false, &p) != NULL, "bm_slab_get after a put failed");
	}
	REQ(s.nr_chunks == chunks, "%zu blocks given back, then taken: %zu chunks, %zu before",
	    back, s.nr_chunks, chunks);
	bm_slab_destroy(&s);
	free(h);
	free(pg);
}
END_TEST

START_TEST(test_bm_content_through_eviction)
{
	su_set_ctx("content", 0);
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed ^ 2);
	const uint64_t nr = 2048;
	struct tp_dev *dev;
	REQ0(tp_dev_open_mem(nr * TP_BLOCK_SIZE, &dev));
	struct bm *bm;
	REQ0(bm_create(dev, 64, &bm)); /* small: blocks are evicted and their slots reused */
	uint32_t *model = calloc(nr, sizeof(*model));
	REQ(model != NULL, "out of memory");
	for (unsigned op = 0; op < 20000; op++) {
		su_set_ctx("content", op);
		uint64_t b = mu_below(&rng, nr);
		struct bm_block *blk;
		if (mu_pct(&rng, 40)) {
			REQ0(bm_write_lock(bm, b, NULL, &blk));
			uint32_t v = (uint32_t)mu_next(&rng) | 1;
			uint32_t *d = bm_block_data(blk);
			for (unsigned i = 0; i < TP_BLOCK_SIZE / 4; i++)
				d[i] = v + i;
			model[b] = v;
		} else {
			REQ0(bm_read_lock(bm, b, NULL, &blk));
			const uint32_t *d = bm_block_data(blk);
			for (unsigned i = 0; i < TP_BLOCK_SIZE / 4; i++)
				REQ(d[i] == (model[b] ? model[b] + i : 0), "block %llu word %u: %u",
				    (unsigned long long)b, i, d[i]);
		}
		bm_unlock(blk);
		if (mu_pct(&rng, 1))
			REQ0(bm_flush(bm));
	}
	free(model);
	bm_destroy(bm);
	tp_dev_close(dev);
}
END_TEST

static Suite *bm_slab_suite(void)
{
	Suite *s = suite_create("bm_slab");
	TCase *tc = tcase_create("slab");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bm_blocks_share_chunks);
	tcase_add_test(tc, test_slab_blocks_are_distinct);
	tcase_add_test(tc, test_bm_content_through_eviction);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_bm_slab", bm_slab_suite);
}
