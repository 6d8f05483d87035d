#include "pdata/block_manager.h"
#include "pdata/bm_slab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bm_block {
	struct bm *bm;
	uint64_t b;
	uint8_t *data;
	const struct bm_validator *v; /* the validator the content was checked/sealed with */
	unsigned read_locks;
	bool write_locked;
	bool dirty;
	bool referenced;                 /* used since the clock hand last passed */
	struct bm_block *hnext;          /* hash chain */
	struct bm_block *prev, *next;    /* the clock ring: every cached block */
};

struct bm {
	struct tp_dev *dev;
	uint64_t nr_blocks;
	size_t capacity;
	size_t nr_cached;
	size_t nr_buckets;
	struct bm_block **buckets;
	struct bm_slab slab; /* every cached block's header and data */
	/* Second-chance clock over every cached block: a hit only sets
	 * `referenced` (no relinking, as a hot btree root is hit on every
	 * lookup); eviction sweeps from the hand, skipping locked blocks and
	 * clearing `referenced` ones. New blocks go just behind the hand. */
	struct bm_block *hand;
	struct bm_stats st;
	int wb_error; /* first failed write-back since the last flush (as dm-bufio keeps it) */
	bool unsynced; /* a block was written (not DSYNC) since the last flush */
	struct bm_block **sorted; /* bm_flush_prepare's: the dirty blocks by location, sealed */
	size_t sorted_cap, nr_sorted;
	char err[256];
};

static size_t hash_in(uint64_t b, size_t nr_buckets)
{
	return (size_t)((b * 0x9E3779B97F4A7C15ull) >> 20) & (nr_buckets - 1);
}

static size_t hash_of(const struct bm *bm, uint64_t b) { return hash_in(b, bm->nr_buckets); }

static void ring_remove(struct bm *bm, struct bm_block *blk)
{
	if (blk->next == blk) {
		bm->hand = NULL;
	} else {
		if (bm->hand == blk)
			bm->hand = blk->next;
		blk->prev->next = blk->next;
		blk->next->prev = blk->prev;
	}
	blk->prev = blk->next = NULL;
}

/* Insert just behind the hand: the last block the next sweep reaches. */
static void ring_insert(struct bm *bm, struct bm_block *blk)
{
	if (!bm->hand) {
		blk->prev = blk->next = blk;
		bm->hand = blk;
		return;
	}
	blk->next = bm->hand;
	blk->prev = bm->hand->prev;
	bm->hand->prev->next = blk;
	bm->hand->prev = blk;
}

static size_t buckets_for(size_t capacity)
{
	size_t n = 64;
	while (n < capacity * 2)
		n <<= 1;
	return n;
}

int bm_create(struct tp_dev *dev, size_t cache_blocks, struct bm **out)
{
	struct bm *bm = calloc(1, sizeof(*bm));
	if (!bm)
		return -ENOMEM;
	if (cache_blocks < 16)
		cache_blocks = 16;
	bm->dev = dev;
	bm->nr_blocks = dev->size / TP_BLOCK_SIZE;
	bm->capacity = cache_blocks;
	bm->nr_buckets = buckets_for(cache_blocks);
	bm->buckets = calloc(bm->nr_buckets, sizeof(*bm->buckets));
	if (!bm->buckets) {
		free(bm);
		return -ENOMEM;
	}
	bm->st.capacity = cache_blocks;
	bm_slab_init(&bm->slab, sizeof(struct bm_block));
	*out = bm;
	return 0;
}

static struct bm_block *lookup(struct bm *bm, uint64_t b)
{
	struct bm_block *blk = bm->buckets[hash_of(bm, b)];
	while (blk && blk->b != b)
		blk = blk->hnext;
	return blk;
}

/* lookup for a reader about to search the block: the chain's first block is B nearly always
 * (at most half as many blocks as buckets), so its page's first line (a node's header and
 * first key) is fetched now, beside the header that confirms it, instead of after it. */
static inline struct bm_block *lookup_fetch(struct bm *bm, uint64_t b)
{
	struct bm_block *blk = bm->buckets[hash_of(bm, b)];
	if (blk)
		__builtin_prefetch(bm_slab_page(&bm->slab, blk));
	while (blk && blk->b != b)
		blk = blk->hnext;
	return blk;
}

static void unhash_free(struct bm *bm, struct bm_block *blk)
{
	struct bm_block **pp = &bm->buckets[hash_of(bm, blk->b)];
	while (*pp != blk)
		pp = &(*pp)->hnext;
	*pp = blk->hnext;
	ring_remove(bm, blk);
	bm_slab_put(&bm->slab, blk);
	bm->nr_cached--;
}

static int write_block(struct bm *bm, struct bm_block *blk)
{
	if (blk->v && blk->v->prepare)
		blk->v->prepare(blk->data, blk->b);
	int r = tp_dev_pwrite(bm->dev, blk->data, TP_BLOCK_SIZE, blk->b * TP_BLOCK_SIZE);
	if (r)
		return r;
	bm->unsynced = true;
	blk->dirty = false;
	bm->st.writebacks++;
	return 0;
}

static bool locked(const struct bm_block *blk) { return blk->write_locked || blk->read_locks; }

/* Evict unlocked blocks the hand finds unreferenced until within capacity.
 * Two turns of the ring clear every reference bit, so a longer sweep only
 * meets locked blocks: stop there (the cache may exceed its capacity by
 * the blocks its callers hold). */
static int shrink(struct bm *bm)
{
	size_t budget = 2 * bm->nr_cached + 1;
	while (bm->nr_cached > bm->capacity && bm->hand && budget--) {
		struct bm_block *victim = bm->hand;
		if (locked(victim)) {
			bm->hand = victim->next;
			continue;
		}
		if (__atomic_load_n(&victim->referenced, __ATOMIC_RELAXED)) {
			__atomic_store_n(&victim->referenced, false, __ATOMIC_RELAXED);
			bm->hand = victim->next;
			continue;
		}
		if (victim->dirty) {
			int r = write_block(bm, victim);
			if (r) {
				if (!bm->wb_error)
					bm->wb_error = r;
				return r;
			}
		}
		unhash_free(bm, victim);
		bm->st.evictions++;
	}
	return 0;
}

static int validate(struct bm *bm, struct bm_block *blk, const struct bm_validator *v)
{
	if (!v || blk->v == v)
		return 0;
	char msg[200] = "";
	if (v->check(blk->data, blk->b, msg, sizeof(msg))) {
		snprintf(bm->err, sizeof(bm->err), "%s block %llu: %s", v->name,
			 (unsigned long long)blk->b, msg);
		return -EILSEQ;
	}
	blk->v = v;
	return 0;
}

enum get_mode { GET_READ, GET_WRITE, GET_ZERO };

static int get_block(struct bm *bm, uint64_t b, const struct bm_validator *v, enum get_mode mode,
		     struct bm_block **out)
{
	if (b >= bm->nr_blocks) {
		snprintf(bm->err, sizeof(bm->err),
			 "block %llu is beyond the end of the metadata device (%llu blocks)",
			 (unsigned long long)b, (unsigned long long)bm->nr_blocks);
		return -ERANGE;
	}
	struct bm_block *blk = mode == GET_READ ? lookup_fetch(bm, b) : lookup(bm, b);
	if (blk) {
		if (blk->write_locked || (mode != GET_READ && blk->read_locks))
			return -EBUSY;
		bm->st.hits++;
		__atomic_store_n(&blk->referenced, true, __ATOMIC_RELAXED);
		if (mode == GET_ZERO) {
			memset(blk->data, 0, TP_BLOCK_SIZE);
			blk->v = v;
		} else {
			int r = validate(bm, blk, v);
			if (r)
				return r;
		}
	} else {
		bm->st.misses++;
		/* huge pages once the cache can fill a chunk: a small one keeps its 4 KiB pages */
		uint8_t *data;
		blk = bm_slab_get(&bm->slab, bm->capacity >= bm->slab.per_chunk, &data);
		if (!blk)
			return -ENOMEM;
		blk->data = data;
		blk->bm = bm;
		blk->b = b;
		if (mode == GET_ZERO) {
			memset(blk->data, 0, TP_BLOCK_SIZE);
			blk->v = v;
		} else {
			int r = tp_dev_pread(bm->dev, blk->data, TP_BLOCK_SIZE, b * TP_BLOCK_SIZE);
			if (r) {
				snprintf(bm->err, sizeof(bm->err),
					 "reading metadata block %llu failed: %s",
					 (unsigned long long)b, strerror(-r));
				bm_slab_put(&bm->slab, blk);
				return r;
			}
			char msg[200] = "";
			if (v && v->check(blk->data, b, msg, sizeof(msg))) {
				snprintf(bm->err, sizeof(bm->err), "%s block %llu: %s", v->name,
					 (unsigned long long)b, msg);
				bm_slab_put(&bm->slab, blk);
				return -EILSEQ;
			}
			blk->v = v;
		}
		size_t h = hash_of(bm, b);
		blk->hnext = bm->buckets[h];
		bm->buckets[h] = blk;
		ring_insert(bm, blk);
		bm->nr_cached++;
		if (bm->nr_cached > bm->st.peak)
			bm->st.peak = bm->nr_cached;
	}
	if (mode == GET_READ) {
		blk->read_locks++;
	} else {
		blk->write_locked = true;
		blk->dirty = true;
		if (v)
			blk->v = v;
	}
	*out = blk;
	return 0;
}

int bm_read_lock(struct bm *bm, uint64_t b, const struct bm_validator *v, struct bm_block **out)
{
	return get_block(bm, b, v, GET_READ, out);
}

int bm_write_lock(struct bm *bm, uint64_t b, const struct bm_validator *v, struct bm_block **out)
{
	return get_block(bm, b, v, GET_WRITE, out);
}

int bm_write_lock_zero(struct bm *bm, uint64_t b, const struct bm_validator *v,
		       struct bm_block **out)
{
	return get_block(bm, b, v, GET_ZERO, out);
}

const void *bm_peek(struct bm *bm, uint64_t b, const struct bm_validator *v)
{
	if (b >= bm->nr_blocks)
		return NULL;
	struct bm_block *blk = lookup_fetch(bm, b);
	if (!blk || blk->write_locked || blk->v != v)
		return NULL;
	/* readers run side by side: the bit is stored only when it changes, so a hot root's
	 * cache line is not written on every lookup */
	if (!__atomic_load_n(&blk->referenced, __ATOMIC_RELAXED))
		__atomic_store_n(&blk->referenced, true, __ATOMIC_RELAXED);
	return blk->data;
}

void bm_unlock(struct bm_block *blk)
{
	struct bm *bm = blk->bm;
	if (blk->write_locked)
		blk->write_locked = false;
	else if (blk->read_locks)
		blk->read_locks--;
	/* A failed write-back leaves the block dirty and cached; the error
	 * surfaces at the next flush, which is where callers can act. */
	if (bm->nr_cached > bm->capacity && !locked(blk))
		(void)shrink(bm);
}

void bm_forget(struct bm *bm, uint64_t b)
{
	struct bm_block *blk = lookup(bm, b);
	if (blk && !locked(blk)) {
		unhash_free(bm, blk);
		bm->st.dropped++;
	}
}

int bm_set_capacity(struct bm *bm, size_t cache_blocks)
{
	if (cache_blocks < 16)
		cache_blocks = 16;
	size_t nb = buckets_for(cache_blocks);
	if (nb > bm->nr_buckets) {
		struct bm_block **b = calloc(nb, sizeof(*b));
		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < bm->nr_buckets; i++)
			while (bm->buckets[i]) {
				struct bm_block *blk = bm->buckets[i];
				bm->buckets[i] = blk->hnext;
				size_t h = hash_in(blk->b, nb);
				blk->hnext = b[h];
				b[h] = blk;
			}
		free(bm->buckets);
		bm->buckets = b;
		bm->nr_buckets = nb;
	}
	bm->capacity = cache_blocks;
	bm->st.capacity = cache_blocks;
	return shrink(bm);
}

void *bm_block_data(struct bm_block *blk) { return blk->data; }
uint64_t bm_block_location(const struct bm_block *blk) { return blk->b; }
uint64_t bm_nr_blocks(const struct bm *bm) { return bm->nr_blocks; }

static int by_location(const void *a, const void *b)
{
	uint64_t x = (*(struct bm_block *const *)a)->b, y = (*(struct bm_block *const *)b)->b;
	return x < y ? -1 : x > y;
}

/* Write BLKS[0..N), consecutive locations and sealed already, in one
 * vectored write (FLAGS: tp_write_flags). */
static int write_run(struct bm *bm, struct bm_block **blks, size_t n, unsigned flags)
{
	struct iovec iov[TP_DEV_IOV_MAX];
	for (size_t i = 0; i < n; i++)
		iov[i] = (struct iovec){blks[i]->data, TP_BLOCK_SIZE};
	int r = tp_dev_pwritev(bm->dev, iov, (int)n, blks[0]->b * TP_BLOCK_SIZE, flags);
	if (r)
		return r;
	if (!(flags & TP_WRITE_DSYNC))
		bm->unsynced = true;
	for (size_t i = 0; i < n; i++)
		blks[i]->dirty = false;
	bm->st.writebacks += n;
	return 0;
}

static size_t run_end(struct bm *bm, size_t i, size_t n)
{
	size_t j = i + 1;
	while (j < n && j - i < TP_DEV_IOV_MAX && bm->sorted[j]->b == bm->sorted[j - 1]->b + 1)
		j++;
	return j;
}

int bm_flush_prepare(struct bm *bm)
{
	bm->nr_sorted = 0;
	/* A write-back that failed on eviction fails the flush that follows
	 * even if a retry would succeed: the caller's transaction saw an IO
	 * error and must not commit as if nothing happened. */
	if (bm->wb_error) {
		int r = bm->wb_error;
		bm->wb_error = 0;
		snprintf(bm->err, sizeof(bm->err), "writing back a metadata block failed: %s",
			 strerror(-r));
		return r;
	}
	size_t n = 0;
	for (size_t i = 0; i < bm->nr_buckets; i++)
		for (struct bm_block *blk = bm->buckets[i]; blk; blk = blk->hnext) {
			if (blk->write_locked)
				return -EBUSY;
			if (!blk->dirty)
				continue;
			if (n == bm->sorted_cap) {
				size_t cap = n ? 2 * n : 64;
				struct bm_block **s = realloc(bm->sorted, cap * sizeof(*s));
				if (!s)
					return -ENOMEM;
				bm->sorted = s;
				bm->sorted_cap = cap;
			}
			bm->sorted[n++] = blk;
		}
	/* In location order, adjacent blocks in one write: the device sees a
	 * few large sequential writes instead of one 4 KiB write per block. */
	if (n) /* (no array yet when nothing was ever dirty) */
		qsort(bm->sorted, n, sizeof(*bm->sorted), by_location);
	/* sealed here, while the caller excludes readers: sealing writes into the block */
	for (size_t i = 0; i < n; i++)
		if (bm->sorted[i]->v && bm->sorted[i]->v->prepare)
			bm->sorted[i]->v->prepare(bm->sorted[i]->data, bm->sorted[i]->b);
	bm->nr_sorted = n;
	return 0;
}

int bm_flush_io(struct bm *bm)
{
	size_t n = bm->nr_sorted;
	bm->nr_sorted = 0;
	/* One run and nothing unflushed before it: its DSYNC write (FUA) is
	 * the flush, one wait instead of a write and a flush in series. */
	if (!bm->unsynced && n && run_end(bm, 0, n) == n)
		return write_run(bm, bm->sorted, n, TP_WRITE_DSYNC);
	for (size_t i = 0; i < n;) {
		size_t j = run_end(bm, i, n);
		int r = write_run(bm, bm->sorted + i, j - i, 0);
		if (r)
			return r;
		i = j;
	}
	int r = tp_dev_flush(bm->dev);
	if (!r)
		bm->unsynced = false;
	return r;
}

int bm_flush_finish(struct bm *bm) { return shrink(bm); }

int bm_write_dirty(struct bm *bm)
{
	int r = bm_flush_prepare(bm);
	size_t n = bm->nr_sorted;
	bm->nr_sorted = 0;
	for (size_t i = 0; !r && i < n;) {
		size_t j = run_end(bm, i, n);
		r = write_run(bm, bm->sorted + i, j - i, 0);
		i = j;
	}
	return r;
}

int bm_flush(struct bm *bm)
{
	int r = bm_flush_prepare(bm);
	if (!r)
		r = bm_flush_io(bm);
	/* (evicting waits for the writes: a dirty block evicted is one more write) */
	return r ? r : bm_flush_finish(bm);
}

int bm_write_copy_durable(struct bm *bm, uint64_t b, const void *buf)
{
	struct iovec iov = {(void *)buf, TP_BLOCK_SIZE};
	return tp_dev_pwritev(bm->dev, &iov, 1, b * TP_BLOCK_SIZE, TP_WRITE_DSYNC);
}

int bm_install_clean(struct bm *bm, uint64_t b, const struct bm_validator *v, const void *buf)
{
	struct bm_block *blk;
	int r = get_block(bm, b, v, GET_ZERO, &blk);
	if (r)
		return r;
	memcpy(blk->data, buf, TP_BLOCK_SIZE);
	blk->dirty = false;
	bm->st.writebacks++;
	bm_unlock(blk);
	return 0;
}

int bm_unlock_durable(struct bm_block *blk)
{
	struct bm *bm = blk->bm;
	if (blk->v && blk->v->prepare)
		blk->v->prepare(blk->data, blk->b);
	struct iovec iov = {blk->data, TP_BLOCK_SIZE};
	int r = tp_dev_pwritev(bm->dev, &iov, 1, blk->b * TP_BLOCK_SIZE, TP_WRITE_DSYNC);
	if (!r) {
		blk->dirty = false;
		bm->st.writebacks++;
	}
	bm_unlock(blk);
	return r;
}

void bm_drop_dirty(struct bm *bm)
{
	bm->wb_error = 0;
	for (size_t i = 0; i < bm->nr_buckets; i++) {
		struct bm_block *blk = bm->buckets[i];
		while (blk) {
			struct bm_block *next = blk->hnext;
			if (blk->dirty && !blk->write_locked && !blk->read_locks)
				unhash_free(bm, blk);
			blk = next;
		}
	}
}

int bm_refresh_size(struct bm *bm)
{
	if (bm->dev->ops->refresh_size) {
		int r = bm->dev->ops->refresh_size(bm->dev);
		if (r)
			return r;
	}
	bm->nr_blocks = bm->dev->size / TP_BLOCK_SIZE;
	return 0;
}

void bm_destroy(struct bm *bm)
{
	if (!bm)
		return;
	bm_slab_destroy(&bm->slab);
	free(bm->buckets);
	free(bm->sorted);
	free(bm);
}

void bm_get_stats(const struct bm *bm, struct bm_stats *st)
{
	*st = bm->st;
	st->cached = bm->nr_cached;
}

const char *bm_last_error(const struct bm *bm) { return bm->err; }
