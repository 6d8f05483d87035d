#include "pdata/bm_slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define BM_SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BM_SLAB_ASAN 1
#endif
#endif
#ifdef BM_SLAB_ASAN
/* A block given back is poisoned until handed out again, so ASan still reports a use after
 * eviction as it did when every block was its own malloc. */
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PAGE BM_SLAB_PAGE
#define CHUNK BM_SLAB_CHUNK

void bm_slab_init(struct bm_slab *s, size_t hdr_size)
{
	memset(s, 0, sizeof(*s));
	hdr_size = (hdr_size + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
	s->hdr_size = hdr_size;
	uint64_t odd = hdr_size;
	while (!(odd & 1)) {
		odd >>= 1;
		s->hdr_tz++;
	}
	/* Newton's iteration doubles the correct low bits of an inverse; odd * odd = 1 mod 8 */
	uint64_t inv = odd;
	for (int k = 0; k < 5; k++)
		inv *= 2 - odd * inv;
	s->page_mul = inv * PAGE;
	/* the most blocks whose headers and pages fit in a chunk, headers in whole pages */
	size_t n = CHUNK / (PAGE + hdr_size);
	while ((n * hdr_size + PAGE - 1) / PAGE + n > CHUNK / PAGE)
		n--;
	s->per_chunk = n;
	s->hdr_pages = (n * hdr_size + PAGE - 1) / PAGE;
	s->page_base = s->hdr_pages * PAGE;
}

static uint8_t *page_of(const struct bm_slab *s, void *hdr) { return bm_slab_page(s, hdr); }

/* A 2 MiB-aligned chunk (a huge page can only back an aligned one): map twice the size and
 * unmap the ends. */
static void *chunk_map(bool huge)
{
	uint8_t *p = mmap(NULL, 2 * (size_t)CHUNK, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)p + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1);
	size_t head = a - (uintptr_t)p;
	if (head)
		munmap(p, head);
	munmap((uint8_t *)a + CHUNK, CHUNK - head);
#ifdef MADV_HUGEPAGE
	if (huge)
		(void)madvise((void *)a, CHUNK, MADV_HUGEPAGE); /* a hint: 4 KiB pages still work */
#else
	(void)huge;
#endif
	return (void *)a;
}

static int grow(struct bm_slab *s, bool huge)
{
	if (s->nr_chunks == s->chunks_cap) {
		size_t cap = s->chunks_cap ? 2 * s->chunks_cap : 8;
		void **c = realloc(s->chunks, cap * sizeof(*c));
		if (!c)
			return -1;
		s->chunks = c;
		s->chunks_cap = cap;
	}
	uint8_t *chunk = chunk_map(huge);
	if (!chunk)
		return -1;
	s->chunks[s->nr_chunks++] = chunk;
	/* free list in address order, so blocks cached together sit together */
	for (size_t i = s->per_chunk; i-- > 0;) {
		void *hdr = chunk + i * s->hdr_size;
		*(void **)hdr = s->free;
		s->free = hdr;
		POISON((uint8_t *)hdr + sizeof(void *), s->hdr_size - sizeof(void *));
		POISON(page_of(s, hdr), PAGE);
	}
	return 0;
}

void *bm_slab_get(struct bm_slab *s, bool huge, uint8_t **page)
{
	if (!s->free && grow(s, huge))
		return NULL;
	void *hdr = s->free;
	UNPOISON(hdr, s->hdr_size);
	s->free = *(void **)hdr;
	memset(hdr, 0, s->hdr_size);
	*page = page_of(s, hdr);
	UNPOISON(*page, PAGE);
	return hdr;
}

void bm_slab_put(struct bm_slab *s, void *hdr)
{
	POISON(page_of(s, hdr), PAGE);
	*(void **)hdr = s->free;
	s->free = hdr;
	POISON((uint8_t *)hdr + sizeof(void *), s->hdr_size - sizeof(void *));
}

void bm_slab_destroy(struct bm_slab *s)
{
	for (size_t i = 0; i < s->nr_chunks; i++) {
		UNPOISON(s->chunks[i], CHUNK);
		munmap(s->chunks[i], CHUNK);
	}
	free(s->chunks);
	memset(s, 0, sizeof(*s));
}
