#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/endian.h"
#include "pdata/space_map.h"

struct sm_meta {
	uint64_t nr_blocks;
	uint64_t nr_allocated;
	uint32_t *counts;
	uint32_t *committed; /* counts at the last commit */
	uint64_t begin;      /* allocation cursor, as the kernel's */

	uint64_t nr_bitmaps;
	struct sm_index_entry *ie; /* blocknr 0 = not written yet */
	uint8_t *bitmap_dirty;
	uint64_t index_loc;     /* 0 = not written yet */
	uint64_t overflow_root; /* 0 = not written yet */
	bool overflow_dirty;    /* the overflow tree is rebuilt as a whole */
	/* blocks whose count was or became >= 3 since the overflow tree was
	 * last written: only their entries change (duplicates allowed) */
	uint64_t *ov_keys;
	size_t ov_nr, ov_cap;
	bool any_dirty;
};

static uint64_t bitmaps_for(uint64_t nr_blocks)
{
	return (nr_blocks + SM_ENTRIES_PER_BITMAP - 1) / SM_ENTRIES_PER_BITMAP;
}

static int resize_arrays(struct sm_meta *sm, uint64_t nr_blocks)
{
	uint64_t nb = bitmaps_for(nr_blocks);
	uint32_t *c = realloc(sm->counts, nr_blocks * sizeof(*c));
	if (!c)
		return -ENOMEM;
	sm->counts = c;
	uint32_t *cc = realloc(sm->committed, nr_blocks * sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	sm->committed = cc;
	struct sm_index_entry *ie = realloc(sm->ie, (nb ? nb : 1) * sizeof(*ie));
	if (!ie)
		return -ENOMEM;
	sm->ie = ie;
	uint8_t *d = realloc(sm->bitmap_dirty, nb ? nb : 1);
	if (!d)
		return -ENOMEM;
	sm->bitmap_dirty = d;
	if (nr_blocks > sm->nr_blocks) {
		uint64_t n = nr_blocks - sm->nr_blocks;
		memset(sm->counts + sm->nr_blocks, 0, n * sizeof(*c));
		memset(sm->committed + sm->nr_blocks, 0, n * sizeof(*cc));
	}
	for (uint64_t i = sm->nr_bitmaps; i < nb; i++) {
		memset(&sm->ie[i], 0, sizeof(sm->ie[i]));
		sm->bitmap_dirty[i] = 1;
	}
	/* the last old bitmap may have gained entries */
	if (sm->nr_bitmaps && nb >= sm->nr_bitmaps)
		sm->bitmap_dirty[sm->nr_bitmaps - 1] = 1;
	sm->nr_bitmaps = nb;
	sm->nr_blocks = nr_blocks;
	sm->any_dirty = true;
	return 0;
}

int sm_meta_create(uint64_t nr_blocks, struct sm_meta **out)
{
	if (nr_blocks > SM_METADATA_MAX_BLOCKS)
		nr_blocks = SM_METADATA_MAX_BLOCKS;
	struct sm_meta *sm = calloc(1, sizeof(*sm));
	if (!sm)
		return -ENOMEM;
	int r = resize_arrays(sm, nr_blocks);
	if (r) {
		sm_meta_destroy(sm);
		return r;
	}
	sm->overflow_dirty = true;
	*out = sm;
	return 0;
}

void sm_meta_destroy(struct sm_meta *sm)
{
	if (!sm)
		return;
	free(sm->counts);
	free(sm->committed);
	free(sm->ie);
	free(sm->bitmap_dirty);
	free(sm->ov_keys);
	free(sm);
}

int sm_meta_open(struct bm *bm, const uint8_t root_bytes[SM_ROOT_SIZE], struct sm_meta **out)
{
	struct sm_root root;
	sm_root_unpack(root_bytes, &root);
	if (root.nr_blocks == 0 || root.nr_blocks > SM_METADATA_MAX_BLOCKS ||
	    root.nr_blocks > bm_nr_blocks(bm))
		return -EINVAL;
	struct sm_meta *sm = calloc(1, sizeof(*sm));
	if (!sm)
		return -ENOMEM;
	int r = resize_arrays(sm, root.nr_blocks);
	if (r)
		goto fail;
	struct bm_block *blk;
	r = bm_read_lock(bm, root.bitmap_root, &tp_index_validator, &blk);
	if (r)
		goto fail;
	const uint8_t *idx = bm_block_data(blk);
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++)
		sm_index_entry_unpack(idx + 16 + i * SM_INDEX_ENTRY_SIZE, &sm->ie[i]);
	bm_unlock(blk);
	sm->index_loc = root.bitmap_root;
	sm->overflow_root = root.ref_count_root;
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
		r = bm_read_lock(bm, sm->ie[i].blocknr, &tp_bitmap_validator, &blk);
		if (r)
			goto fail;
		uint64_t first = i * SM_ENTRIES_PER_BITMAP;
		uint64_t n = sm->nr_blocks - first;
		if (n > SM_ENTRIES_PER_BITMAP)
			n = SM_ENTRIES_PER_BITMAP;
		for (uint32_t e = 0; e < n; e++) {
			uint32_t v = sm_bitmap_get(bm_block_data(blk), e);
			sm->counts[first + e] = v;
			if (v)
				sm->nr_allocated++;
		}
		bm_unlock(blk);
		sm->bitmap_dirty[i] = 0;
	}
	memcpy(sm->committed, sm->counts, sm->nr_blocks * sizeof(uint32_t));
	sm->any_dirty = false;
	sm->overflow_dirty = false;
	*out = sm;
	return 0;
fail:
	sm_meta_destroy(sm);
	return r;
}

struct overflow_load {
	struct sm_meta *sm;
	struct tm *tm;
	uint64_t loaded;
};

static int load_overflow_entry(void *ctx, uint64_t key, const void *value)
{
	struct overflow_load *ol = ctx;
	if (key >= ol->sm->nr_blocks || ol->sm->counts[key] != 3 || le32_get(value) < 3)
		return tm_corrupt(ol->tm,
				  "metadata space map overflow count %u for block %llu, whose bitmap entry is not 3",
				  le32_get(value), (unsigned long long)key);
	ol->sm->counts[key] = le32_get(value);
	ol->sm->committed[key] = ol->sm->counts[key];
	ol->loaded++;
	return 0;
}

int sm_meta_load_overflow(struct sm_meta *sm, struct tm *tm)
{
	struct btree_info info = {.tm = tm, .levels = 1, .value_type = {.size = 4}};
	/* Counted before the walk: an overflow count of exactly 3 looks the
	 * same as a bitmap 3 afterwards. */
	uint64_t threes = 0;
	for (uint64_t b = 0; b < sm->nr_blocks; b++)
		threes += sm->counts[b] == 3;
	struct overflow_load ol = {sm, tm, 0};
	int r = btree_walk(&info, sm->overflow_root, load_overflow_entry, &ol);
	if (r)
		return r;
	if (ol.loaded != threes)
		return tm_corrupt(tm, "metadata space map: %llu blocks have count 3 in their bitmap, %llu an overflow count",
				  (unsigned long long)threes, (unsigned long long)ol.loaded);
	return 0;
}

uint64_t sm_meta_nr_blocks(const struct sm_meta *sm) { return sm->nr_blocks; }
uint64_t sm_meta_nr_free(const struct sm_meta *sm) { return sm->nr_blocks - sm->nr_allocated; }

uint32_t sm_meta_get_count(const struct sm_meta *sm, uint64_t b)
{
	return b < sm->nr_blocks ? sm->counts[b] : 0;
}

bool sm_meta_is_new(const struct sm_meta *sm, uint64_t b)
{
	return b < sm->nr_blocks && sm->counts[b] && !sm->committed[b];
}

static void set_count(struct sm_meta *sm, uint64_t b, uint32_t c)
{
	uint32_t old = sm->counts[b];
	if (!old && c)
		sm->nr_allocated++;
	else if (old && !c)
		sm->nr_allocated--;
	if ((old >= 3 || c >= 3) && !sm->overflow_dirty) {
		if (sm->ov_nr == sm->ov_cap) {
			size_t cap = sm->ov_cap ? 2 * sm->ov_cap : 64;
			uint64_t *k = realloc(sm->ov_keys, cap * sizeof(*k));
			if (!k) {
				/* no room to remember the block: rebuild the tree instead */
				sm->overflow_dirty = true;
				goto counted;
			}
			sm->ov_keys = k;
			sm->ov_cap = cap;
		}
		sm->ov_keys[sm->ov_nr++] = b;
	}
counted:
	sm->counts[b] = c;
	sm->bitmap_dirty[b / SM_ENTRIES_PER_BITMAP] = 1;
	sm->any_dirty = true;
}

int sm_meta_inc(struct sm_meta *sm, uint64_t b)
{
	if (b >= sm->nr_blocks)
		return -ERANGE;
	if (sm->counts[b] == UINT32_MAX)
		return -EOVERFLOW;
	set_count(sm, b, sm->counts[b] + 1);
	return 0;
}

int sm_meta_dec(struct sm_meta *sm, uint64_t b)
{
	if (b >= sm->nr_blocks)
		return -ERANGE;
	if (!sm->counts[b])
		return -EINVAL; /* freeing a free block: a reference-count bug upstream */
	set_count(sm, b, sm->counts[b] - 1);
	return 0;
}

static int find_free(const struct sm_meta *sm, uint64_t from, uint64_t to, uint64_t *b)
{
	for (uint64_t i = from; i < to; i++)
		if (!sm->counts[i] && !sm->committed[i]) {
			*b = i;
			return 0;
		}
	return -ENOSPC;
}

int sm_meta_new_block(struct sm_meta *sm, uint64_t *b)
{
	int r = find_free(sm, sm->begin, sm->nr_blocks, b);
	if (r == -ENOSPC)
		r = find_free(sm, 0, sm->begin, b);
	if (r)
		return r;
	set_count(sm, *b, 1);
	sm->begin = *b + 1;
	return 0;
}

int sm_meta_extend(struct sm_meta *sm, uint64_t nr_blocks)
{
	if (nr_blocks > SM_METADATA_MAX_BLOCKS)
		nr_blocks = SM_METADATA_MAX_BLOCKS;
	if (nr_blocks < sm->nr_blocks)
		return -EINVAL;
	if (nr_blocks == sm->nr_blocks)
		return 0;
	return resize_arrays(sm, nr_blocks);
}

/* The overflow tree from scratch: a new space map, or when a changed block
 * could not be remembered. */
static int rebuild_overflow(struct sm_meta *sm, struct tm *tm)
{
	struct btree_info info = {.tm = tm, .levels = 1, .value_type = {.size = 4}};
	uint64_t root;
	int r = btree_empty(&info, &root);
	if (r)
		return r;
	for (uint64_t b = 0; b < sm->nr_blocks; b++) {
		if (sm->counts[b] < 3)
			continue;
		uint8_t v[4];
		le32_put(v, sm->counts[b]);
		r = btree_insert(&info, root, &b, v, &root, NULL);
		if (r)
			return r;
	}
	if (sm->overflow_root) {
		r = btree_del(&info, sm->overflow_root);
		if (r)
			return r;
	}
	sm->overflow_root = root;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Only the entries of the blocks whose count was or became >= 3, as the
 * kernel's sm_ll_insert does: a count of 3 or more is (re)inserted, one
 * that dropped below 3 is removed. Rescanning every count on each change
 * cost O(metadata size) per commit once snapshots shared nodes. The tree's
 * own blocks never reach a count of 3, so updating it adds no keys. */
static int update_overflow(struct sm_meta *sm, struct tm *tm)
{
	struct btree_info info = {.tm = tm, .levels = 1, .value_type = {.size = 4}};
	size_t n = sm->ov_nr;
	qsort(sm->ov_keys, n, sizeof(*sm->ov_keys), by_key);
	for (size_t i = 0; i < n; i++) {
		uint64_t b = sm->ov_keys[i];
		if (i && b == sm->ov_keys[i - 1])
			continue;
		int r;
		if (sm->counts[b] >= 3) {
			uint8_t v[4];
			le32_put(v, sm->counts[b]);
			r = btree_insert(&info, sm->overflow_root, &b, v, &sm->overflow_root, NULL);
		} else {
			/* absent when it went from below 3 to 3+ and back */
			uint8_t v[4];
			r = btree_lookup(&info, sm->overflow_root, &b, v);
			if (!r)
				r = btree_remove(&info, sm->overflow_root, &b, &sm->overflow_root);
			else if (r == -ENODATA)
				r = 0;
		}
		if (r)
			return r;
	}
	/* keys added meanwhile (none expected) are left for the next round */
	memmove(sm->ov_keys, sm->ov_keys + n, (sm->ov_nr - n) * sizeof(*sm->ov_keys));
	sm->ov_nr -= n;
	return 0;
}

/* Give a structure block a location written in this transaction. */
static int relocate(struct sm_meta *sm, uint64_t *loc, bool *changed)
{
	if (*loc && sm_meta_is_new(sm, *loc) && sm->counts[*loc] == 1)
		return 0;
	uint64_t nb;
	int r = sm_meta_new_block(sm, &nb);
	if (r)
		return r;
	if (*loc) {
		r = sm_meta_dec(sm, *loc);
		if (r)
			return r;
	}
	*loc = nb;
	*changed = true;
	return 0;
}

int sm_meta_write(struct sm_meta *sm, struct tm *tm, uint8_t root_bytes[SM_ROOT_SIZE])
{
	int r;
	/* Allocating blocks for the map's own structures changes the map, so
	 * iterate until every dirty structure sits in a block of this
	 * transaction; each block moves at most once. */
	bool changed = sm->any_dirty;
	while (changed) {
		changed = false;
		if (sm->overflow_dirty || !sm->overflow_root) {
			sm->overflow_dirty = false;
			sm->ov_nr = 0;
			r = rebuild_overflow(sm, tm);
			if (r)
				return r;
			changed = true;
		} else if (sm->ov_nr) {
			r = update_overflow(sm, tm);
			if (r)
				return r;
			changed = true;
		}
		for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
			if (!sm->bitmap_dirty[i])
				continue;
			r = relocate(sm, &sm->ie[i].blocknr, &changed);
			if (r)
				return r;
		}
		r = relocate(sm, &sm->index_loc, &changed);
		if (r)
			return r;
	}

	struct bm *bm = tm_bm(tm);
	struct bm_block *blk;
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
		if (!sm->bitmap_dirty[i])
			continue;
		r = bm_write_lock_zero(bm, sm->ie[i].blocknr, &tp_bitmap_validator, &blk);
		if (r)
			return r;
		uint64_t first = i * SM_ENTRIES_PER_BITMAP;
		uint64_t n = sm->nr_blocks - first;
		if (n > SM_ENTRIES_PER_BITMAP)
			n = SM_ENTRIES_PER_BITMAP;
		uint32_t nr_free = 0, nfb = (uint32_t)n;
		for (uint32_t e = 0; e < n; e++) {
			uint32_t c = sm->counts[first + e];
			sm_bitmap_set(bm_block_data(blk), e, c > 3 ? 3 : c);
			if (!c) {
				nr_free++;
				if (nfb == n)
					nfb = e;
			}
		}
		bm_unlock(blk);
		sm->ie[i].nr_free = nr_free;
		sm->ie[i].none_free_before = nfb;
	}
	if (sm->any_dirty) {
		r = bm_write_lock_zero(bm, sm->index_loc, &tp_index_validator, &blk);
		if (r)
			return r;
		uint8_t *d = bm_block_data(blk);
		for (uint64_t i = 0; i < sm->nr_bitmaps; i++)
			sm_index_entry_pack(&sm->ie[i], d + 16 + i * SM_INDEX_ENTRY_SIZE);
		bm_unlock(blk);
	}
	struct sm_root root = {sm->nr_blocks, sm->nr_allocated, sm->index_loc, sm->overflow_root};
	sm_root_pack(&root, root_bytes);
	return 0;
}

void sm_meta_committed(struct sm_meta *sm)
{
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
		if (!sm->bitmap_dirty[i])
			continue;
		uint64_t first = i * SM_ENTRIES_PER_BITMAP;
		uint64_t n = sm->nr_blocks - first;
		if (n > SM_ENTRIES_PER_BITMAP)
			n = SM_ENTRIES_PER_BITMAP;
		memcpy(sm->committed + first, sm->counts + first, n * sizeof(uint32_t));
		sm->bitmap_dirty[i] = 0;
	}
	sm->any_dirty = false;
}
