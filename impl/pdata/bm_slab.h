/* Memory for the block manager's cached blocks: each a header (struct bm_block) and its 4 KiB
 * page, carved from 2 MiB chunks that hold both. A lookup in a big tree visits a few blocks
 * spread over hundreds of MiB; with every page and header a separate malloc each visit is a
 * TLB miss or two (a page walk that itself misses the CPU caches). A chunk is one transparent
 * huge page where the kernel gives them (madvise), so a block's header and data share one TLB
 * entry with 500 other blocks. Chunks go back to the system only with the slab: the memory is
 * bounded by the most blocks ever cached at once (the cache's peak), as before. */
#ifndef THINP_PDATA_BM_SLAB_H
#define THINP_PDATA_BM_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bm_slab {
	size_t hdr_size;   /* bytes per header, pointer-aligned */
	/* a header's page from its offset in the chunk without a division: hdr_size is 2^hdr_tz
	 * times an odd number whose inverse mod 2^64, times the page size, is page_mul (offsets
	 * are exact multiples of hdr_size); the pages start page_base bytes into the chunk */
	unsigned hdr_tz;
	uint64_t page_mul;
	size_t page_base;
	size_t per_chunk;  /* blocks per chunk */
	size_t hdr_pages;  /* 4 KiB pages of headers at the start of a chunk */
	void **chunks;
	size_t nr_chunks, chunks_cap;
	void *free;        /* free headers, linked through their first word */
};

#define BM_SLAB_PAGE  4096u
#define BM_SLAB_CHUNK (2u << 20)

/* HDR's page, from HDR's address alone (no load of the header): a caller holding a header
 * pointer whose header is not in the CPU's caches yet can start fetching both at once. */
static inline uint8_t *bm_slab_page(const struct bm_slab *s, const void *hdr)
{
	uintptr_t base = (uintptr_t)hdr & ~(uintptr_t)(BM_SLAB_CHUNK - 1);
	uint64_t off = (((uint64_t)(uintptr_t)hdr - base) >> s->hdr_tz) * s->page_mul;
	return (uint8_t *)base + s->page_base + (size_t)off;
}

/* HDR_SIZE: sizeof the header (at least a pointer). */
void bm_slab_init(struct bm_slab *s, size_t hdr_size);
/* A zeroed header and, in *PAGE, its 4 KiB-aligned page (content undefined); NULL when out of
 * memory. HUGE: a new chunk, if one is needed, asks for a transparent huge page (callers pass
 * whether the cache is big enough to fill one). */
void *bm_slab_get(struct bm_slab *s, bool huge, uint8_t **page);
/* Give back a header from bm_slab_get (its page with it). */
void bm_slab_put(struct bm_slab *s, void *hdr);
/* Every chunk back to the system (every header is given back with it). */
void bm_slab_destroy(struct bm_slab *s);

#endif
