#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/endian.h"
#include "pdata/space_map.h"

struct sm_disk {
	struct tm *tm;
	struct btree_info index_info; /* bitmap number -> index entry */
	struct btree_info ref_info;   /* block -> count, for counts >= 3 */
	uint64_t nr_blocks, nr_allocated;
	uint64_t nr_bitmaps;
	struct sm_index_entry *ie;
	uint8_t *ie_dirty;
	uint64_t index_root, ref_root;
	uint64_t begin; /* allocation cursor, as the kernel's */

	/* the committed state, for "free in both" allocation */
	uint64_t c_nr_bitmaps;
	struct sm_index_entry *c_ie;
};

static uint64_t bitmaps_for(uint64_t nr_blocks)
{
	return (nr_blocks + SM_ENTRIES_PER_BITMAP - 1) / SM_ENTRIES_PER_BITMAP;
}

static uint32_t entries_in(const struct sm_disk *sm, uint64_t i)
{
	uint64_t n = sm->nr_blocks - i * SM_ENTRIES_PER_BITMAP;
	return n > SM_ENTRIES_PER_BITMAP ? SM_ENTRIES_PER_BITMAP : (uint32_t)n;
}

static struct sm_disk *alloc_sm(struct tm *tm)
{
	struct sm_disk *sm = calloc(1, sizeof(*sm));
	if (!sm)
		return NULL;
	sm->tm = tm;
	sm->index_info = (struct btree_info){.tm = tm, .levels = 1, .value_type = {.size = 16}};
	sm->ref_info = (struct btree_info){.tm = tm, .levels = 1, .value_type = {.size = 4}};
	return sm;
}

static int grow_arrays(struct sm_disk *sm, uint64_t nb)
{
	struct sm_index_entry *ie = realloc(sm->ie, (nb ? nb : 1) * sizeof(*ie));
	if (!ie)
		return -ENOMEM;
	sm->ie = ie;
	uint8_t *d = realloc(sm->ie_dirty, nb ? nb : 1);
	if (!d)
		return -ENOMEM;
	sm->ie_dirty = d;
	for (uint64_t i = sm->nr_bitmaps; i < nb; i++) {
		memset(&sm->ie[i], 0, sizeof(sm->ie[i]));
		sm->ie_dirty[i] = 0;
	}
	return 0;
}

static int snapshot_committed(struct sm_disk *sm)
{
	struct sm_index_entry *c = realloc(sm->c_ie, (sm->nr_bitmaps ? sm->nr_bitmaps : 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c, sm->ie, sm->nr_bitmaps * sizeof(*c));
	sm->c_ie = c;
	sm->c_nr_bitmaps = sm->nr_bitmaps;
	return 0;
}

void sm_disk_destroy(struct sm_disk *sm)
{
	if (!sm)
		return;
	free(sm->ie);
	free(sm->ie_dirty);
	free(sm->c_ie);
	free(sm);
}

/* Add bitmaps so that NR_BLOCKS are covered. */
static int add_blocks(struct sm_disk *sm, uint64_t nr_blocks)
{
	uint64_t old_nb = sm->nr_bitmaps, nb = bitmaps_for(nr_blocks);
	/* each new bitmap takes a free metadata block: fail before sizing the
	 * index arrays for a count that cannot fit (2^40 blocks: 1 GiB of them) */
	if (nb - old_nb > sm_meta_nr_free(tm_sm(sm->tm)))
		return -ENOSPC;
	int r = grow_arrays(sm, nb);
	if (r)
		return r;
	if (old_nb) {
		/* the old last bitmap may gain entries */
		uint32_t before = entries_in(sm, old_nb - 1);
		uint64_t save = sm->nr_blocks;
		sm->nr_blocks = nr_blocks;
		uint32_t after = entries_in(sm, old_nb - 1);
		sm->nr_blocks = save;
		if (after != before) {
			sm->ie[old_nb - 1].nr_free += after - before;
			sm->ie_dirty[old_nb - 1] = 1;
		}
	}
	sm->nr_blocks = nr_blocks;
	for (uint64_t i = old_nb; i < nb; i++) {
		struct bm_block *blk;
		r = tm_new_block(sm->tm, &tp_bitmap_validator, &blk);
		if (r)
			return r;
		sm->ie[i] = (struct sm_index_entry){bm_block_location(blk), entries_in(sm, i), 0};
		tm_unlock(sm->tm, blk);
		sm->ie_dirty[i] = 1;
		sm->nr_bitmaps = i + 1;
	}
	sm->nr_bitmaps = nb;
	return 0;
}

int sm_disk_create(struct tm *tm, uint64_t nr_blocks, struct sm_disk **out)
{
	struct sm_disk *sm = alloc_sm(tm);
	if (!sm)
		return -ENOMEM;
	int r = btree_empty(&sm->ref_info, &sm->ref_root);
	if (!r)
		r = btree_empty(&sm->index_info, &sm->index_root);
	if (!r)
		r = add_blocks(sm, nr_blocks);
	if (r) {
		sm_disk_destroy(sm);
		return r;
	}
	*out = sm;
	return 0;
}

struct ie_load {
	struct sm_disk *sm;
};

static int load_ie(void *ctx, uint64_t key, const void *value)
{
	struct sm_disk *sm = ((struct ie_load *)ctx)->sm;
	if (key >= sm->nr_bitmaps)
		return tm_corrupt(sm->tm, "data space map index has bitmap %llu of %llu",
				  (unsigned long long)key, (unsigned long long)sm->nr_bitmaps);
	sm_index_entry_unpack(value, &sm->ie[key]);
	sm->ie_dirty[key] = 2; /* seen */
	return 0;
}

int sm_disk_open(struct tm *tm, const uint8_t root_bytes[SM_ROOT_SIZE], struct sm_disk **out)
{
	struct sm_root root;
	sm_root_unpack(root_bytes, &root);
	struct sm_disk *sm = alloc_sm(tm);
	if (!sm)
		return -ENOMEM;
	sm->nr_blocks = root.nr_blocks;
	sm->nr_allocated = root.nr_allocated;
	sm->index_root = root.bitmap_root;
	sm->ref_root = root.ref_count_root;
	int r = 0;
	/* every bitmap is a metadata block: a count beyond that is corrupt, and
	 * would have us allocate gigabytes of index entries for it */
	if (bitmaps_for(root.nr_blocks) > bm_nr_blocks(tm_bm(tm))) {
		r = tm_corrupt(tm, "data space map of %llu blocks needs more bitmaps than the %llu-block metadata device holds",
			       (unsigned long long)root.nr_blocks,
			       (unsigned long long)bm_nr_blocks(tm_bm(tm)));
		goto fail;
	}
	r = grow_arrays(sm, bitmaps_for(root.nr_blocks));
	if (r)
		goto fail;
	sm->nr_bitmaps = bitmaps_for(root.nr_blocks);
	struct ie_load l = {sm};
	r = btree_walk(&sm->index_info, sm->index_root, load_ie, &l);
	if (r)
		goto fail;
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
		if (sm->ie_dirty[i] != 2) {
			r = tm_corrupt(tm, "data space map index lacks bitmap %llu",
				       (unsigned long long)i);
			goto fail;
		}
		sm->ie_dirty[i] = 0;
	}
	r = snapshot_committed(sm);
	if (r)
		goto fail;
	*out = sm;
	return 0;
fail:
	sm_disk_destroy(sm);
	return r;
}

uint64_t sm_disk_nr_blocks(const struct sm_disk *sm) { return sm->nr_blocks; }
uint64_t sm_disk_nr_free(const struct sm_disk *sm) { return sm->nr_blocks - sm->nr_allocated; }

static int bitmap_value(struct sm_disk *sm, uint64_t loc, uint32_t e, unsigned *v)
{
	struct bm_block *blk;
	int r = tm_read_lock(sm->tm, loc, &tp_bitmap_validator, &blk);
	if (r)
		return r;
	*v = sm_bitmap_get(bm_block_data(blk), e);
	tm_unlock(sm->tm, blk);
	return 0;
}

int sm_disk_get_count(struct sm_disk *sm, uint64_t b, uint32_t *count)
{
	if (b >= sm->nr_blocks)
		return -ERANGE;
	unsigned v;
	int r = bitmap_value(sm, sm->ie[b / SM_ENTRIES_PER_BITMAP].blocknr,
			     (uint32_t)(b % SM_ENTRIES_PER_BITMAP), &v);
	if (r)
		return r;
	if (v < 3) {
		*count = v;
		return 0;
	}
	uint8_t val[4];
	r = btree_lookup(&sm->ref_info, sm->ref_root, &b, val);
	if (r == -ENODATA)
		return tm_corrupt(sm->tm, "data block %llu has count 3 in its bitmap but no overflow count",
				  (unsigned long long)b);
	if (r)
		return r;
	*count = le32_get(val);
	return 0;
}

int sm_disk_set_count(struct sm_disk *sm, uint64_t b, uint32_t c)
{
	uint32_t old;
	int r = sm_disk_get_count(sm, b, &old);
	if (r)
		return r;
	if (old == c)
		return 0;
	uint64_t i = b / SM_ENTRIES_PER_BITMAP;
	uint32_t e = (uint32_t)(b % SM_ENTRIES_PER_BITMAP);
	struct bm_block *blk;
	bool inc;
	r = tm_shadow_block(sm->tm, sm->ie[i].blocknr, &tp_bitmap_validator, &blk, &inc);
	if (r)
		return r;
	sm->ie[i].blocknr = bm_block_location(blk);
	sm_bitmap_set(bm_block_data(blk), e, c > 3 ? 3 : c);
	if (!old && c) {
		sm->nr_allocated++;
		sm->ie[i].nr_free--;
		if (e == sm->ie[i].none_free_before) {
			/* keep none_free_before exact: the first free entry */
			uint32_t n = entries_in(sm, i), f = e + 1;
			while (f < n && sm_bitmap_get(bm_block_data(blk), f))
				f++;
			sm->ie[i].none_free_before = f;
		}
	} else if (old && !c) {
		sm->nr_allocated--;
		sm->ie[i].nr_free++;
		if (e < sm->ie[i].none_free_before)
			sm->ie[i].none_free_before = e;
	}
	tm_unlock(sm->tm, blk);
	sm->ie_dirty[i] = 1;

	uint8_t val[4];
	if (c >= 3) {
		le32_put(val, c);
		r = btree_insert(&sm->ref_info, sm->ref_root, &b, val, &sm->ref_root, NULL);
	} else if (old >= 3) {
		r = btree_remove(&sm->ref_info, sm->ref_root, &b, &sm->ref_root);
	}
	return r;
}

int sm_disk_inc(struct sm_disk *sm, uint64_t b)
{
	uint32_t c;
	int r = sm_disk_get_count(sm, b, &c);
	if (r)
		return r;
	if (c == UINT32_MAX)
		return -EOVERFLOW;
	return sm_disk_set_count(sm, b, c + 1);
}

int sm_disk_dec(struct sm_disk *sm, uint64_t b)
{
	uint32_t c;
	int r = sm_disk_get_count(sm, b, &c);
	if (r)
		return r;
	if (!c)
		return -EINVAL;
	return sm_disk_set_count(sm, b, c - 1);
}

/* First block in [from, to) free now and in the committed state. */
static int find_common_free(struct sm_disk *sm, uint64_t from, uint64_t to, uint64_t *b)
{
	while (from < to) {
		uint64_t i = from / SM_ENTRIES_PER_BITMAP;
		uint64_t bitmap_end = (i + 1) * SM_ENTRIES_PER_BITMAP;
		uint64_t end = bitmap_end < to ? bitmap_end : to;
		if (sm->ie[i].nr_free) {
			uint32_t e = (uint32_t)(from % SM_ENTRIES_PER_BITMAP);
			if (e < sm->ie[i].none_free_before)
				e = sm->ie[i].none_free_before;
			uint32_t e_end = (uint32_t)(end - i * SM_ENTRIES_PER_BITMAP);
			struct bm_block *cur, *old = NULL;
			int r = tm_read_lock(sm->tm, sm->ie[i].blocknr, &tp_bitmap_validator, &cur);
			if (r)
				return r;
			if (i < sm->c_nr_bitmaps && sm->c_ie[i].blocknr != sm->ie[i].blocknr) {
				r = tm_read_lock(sm->tm, sm->c_ie[i].blocknr, &tp_bitmap_validator,
						 &old);
				if (r) {
					tm_unlock(sm->tm, cur);
					return r;
				}
			}
			for (; e < e_end; e++) {
				if (sm_bitmap_get(bm_block_data(cur), e))
					continue;
				if (old && sm_bitmap_get(bm_block_data(old), e))
					continue;
				break;
			}
			tm_unlock(sm->tm, cur);
			if (old)
				tm_unlock(sm->tm, old);
			if (e < e_end) {
				*b = i * SM_ENTRIES_PER_BITMAP + e;
				return 0;
			}
		}
		from = end;
	}
	return -ENOSPC;
}

int sm_disk_new_block(struct sm_disk *sm, uint64_t *b)
{
	int r = find_common_free(sm, sm->begin, sm->nr_blocks, b);
	if (r == -ENOSPC)
		r = find_common_free(sm, 0, sm->begin < sm->nr_blocks ? sm->begin : sm->nr_blocks, b);
	if (r)
		return r;
	r = sm_disk_set_count(sm, *b, 1);
	if (r)
		return r;
	sm->begin = *b + 1;
	return 0;
}

int sm_disk_extend(struct sm_disk *sm, uint64_t nr_blocks)
{
	if (nr_blocks < sm->nr_blocks)
		return -EINVAL;
	if (nr_blocks == sm->nr_blocks)
		return 0;
	return add_blocks(sm, nr_blocks);
}

int sm_disk_write(struct sm_disk *sm, uint8_t root_bytes[SM_ROOT_SIZE])
{
	for (uint64_t i = 0; i < sm->nr_bitmaps; i++) {
		if (!sm->ie_dirty[i])
			continue;
		uint8_t v[SM_INDEX_ENTRY_SIZE];
		sm_index_entry_pack(&sm->ie[i], v);
		int r = btree_insert(&sm->index_info, sm->index_root, &i, v, &sm->index_root, NULL);
		if (r)
			return r;
	}
	struct sm_root root = {sm->nr_blocks, sm->nr_allocated, sm->index_root, sm->ref_root};
	sm_root_pack(&root, root_bytes);
	return 0;
}

int sm_disk_committed(struct sm_disk *sm)
{
	memset(sm->ie_dirty, 0, sm->nr_bitmaps);
	return snapshot_committed(sm);
}
