/* Btree removal: proactive rebalancing on the way down, collapse of a
 * one-child root, range removal (see btree.h). */
#include "pdata/btree_internal.h"

#include <errno.h>
#include <string.h>

/* ---- remove ---- */

/* Make child I of PARENT hold more than the minimum, borrowing from or
 * merging with a sibling, so that removing one entry below keeps every
 * non-root node at least 1/3 full. */
static int rebalance_child(struct btree_info *info, unsigned level, const struct spine *sp,
                           uint8_t *parent, uint32_t i)
{
	uint32_t pnr = n_nr(parent);
	if (pnr < 2)
		return 0; /* only child of the root: the root collapses afterwards */
	struct bm_block *cblk;
	int r = tm_read_lock(info->tm, val64(parent, i), &tp_btree_validator, &cblk);
	if (r)
		return r;
	uint32_t cnr = n_nr(bm_block_data(cblk)), min = n_max(bm_block_data(cblk)) / 3;
	tm_unlock(info->tm, cblk);
	if (cnr > min)
		return 0;

	/* left/right pair: (i-1, i) when there is a left sibling, else (0, 1) */
	uint32_t li = i > 0 ? i - 1 : 0, ri = li + 1;
	uint64_t lloc = val64(parent, li), rloc = val64(parent, ri);
	if (lloc == rloc || bt_on_spine(sp, lloc) || bt_on_spine(sp, rloc))
		return tm_corrupt(
		        info->tm,
		        "btree node %llu is a child twice, or its own ancestor (siblings %llu and %llu)",
		        (ull)(bt_on_spine(sp, rloc) ? rloc : lloc), (ull)lloc, (ull)rloc);
	struct bm_block *lb, *rb;
	r = bt_shadow_node(info, level, lloc, &lb);
	if (r)
		return r;
	r = bt_shadow_node(info, level, rloc, &rb);
	if (r) {
		tm_unlock(info->tm, lb);
		return r;
	}
	set_val64(parent, li, bm_block_location(lb));
	set_val64(parent, ri, bm_block_location(rb));
	uint8_t *ld = bm_block_data(lb), *rd = bm_block_data(rb);
	if (n_flags(ld) != n_flags(rd)) { /* their entries differ in size: never mix them */
		tm_unlock(info->tm, lb);
		tm_unlock(info->tm, rb);
		return tm_corrupt(info->tm,
		                  "btree siblings %llu and %llu are a leaf and an internal node",
		                  (ull)lloc, (ull)rloc);
	}
	uint32_t lnr = n_nr(ld), rnr = n_nr(rd), max = n_max(ld);
	uint32_t sib_nr = li == i ? rnr : lnr;
	if (sib_nr > min + 1 || lnr + rnr > max) {
		/* redistribute evenly */
		uint32_t total = lnr + rnr, target_left = total / 2;
		if (lnr > target_left) {
			uint32_t move = lnr - target_left;
			copy_entries(rd, move, rd, 0, rnr);
			copy_entries(rd, 0, ld, target_left, move);
		} else {
			uint32_t move = target_left - lnr;
			copy_entries(ld, lnr, rd, 0, move);
			copy_entries(rd, 0, rd, move, rnr - move);
		}
		set_nr(ld, target_left);
		set_nr(rd, total - target_left);
		set_key(parent, ri, key_at(rd, 0));
		tm_unlock(info->tm, lb);
		tm_unlock(info->tm, rb);
		return 0;
	}
	/* merge right into left; right's pointers move with it */
	copy_entries(ld, lnr, rd, 0, rnr);
	set_nr(ld, lnr + rnr);
	uint64_t right_loc = bm_block_location(rb);
	tm_unlock(info->tm, lb);
	tm_unlock(info->tm, rb);
	delete_at(parent, ri);
	return tm_dec(info->tm, right_loc);
}

/* An internal root with one child takes over the child's content. */
static int collapse_root(struct btree_info *info, unsigned level, struct bm_block *root_blk)
{
	struct spine sp;
	bt_spine_init(&sp);
	sp.b[sp.nb++] = bm_block_location(root_blk);
	sp.depth = 1;
	for (;;) {
		uint8_t *d = bm_block_data(root_blk);
		if (is_leaf(d) || n_nr(d) != 1)
			return 0;
		struct bm_block *child;
		int r = bt_shadow_path_node(info, level, &sp, val64(d, 0), &child);
		if (r)
			return r;
		uint64_t loc = bm_block_location(child);
		memcpy(d + 4, (uint8_t *)bm_block_data(child) + 4, 4);
		memcpy(d + 16, (uint8_t *)bm_block_data(child) + 16, TP_BLOCK_SIZE - 16);
		tm_unlock(info->tm, child);
		r = tm_dec(info->tm, loc);
		if (r)
			return r;
	}
}

static int remove_raw(struct btree_info *info, unsigned level, uint64_t root, uint64_t key,
                      uint64_t *new_root)
{
	struct spine sp;
	bt_spine_init(&sp);
	struct bm_block *blk, *root_blk;
	int r = bt_shadow_path_node(info, level, &sp, root, &blk);
	if (r)
		return r;
	root_blk = blk;
	*new_root = bm_block_location(blk);
	for (;;) {
		uint8_t *d = bm_block_data(blk);
		int i = lower_bound(d, key);
		if (i < 0) {
			r = -ENODATA;
			break;
		}
		if (is_leaf(d)) {
			if (key_at(d, (uint32_t)i) != key) {
				r = -ENODATA;
				break;
			}
			r = bt_value_dec(info, level, cval_ptr(d, (uint32_t)i));
			if (!r)
				delete_at(d, (uint32_t)i);
			break;
		}
		r = rebalance_child(info, level, &sp, d, (uint32_t)i);
		if (r)
			break;
		i = lower_bound(d, key);
		if (i < 0) {
			r = -ENODATA;
			break;
		}
		struct bm_block *child;
		r = bt_shadow_path_node(info, level, &sp, val64(d, (uint32_t)i), &child);
		if (r)
			break;
		set_val64(d, (uint32_t)i, bm_block_location(child));
		if (blk != root_blk)
			tm_unlock(info->tm, blk);
		blk = child;
	}
	if (blk != root_blk)
		tm_unlock(info->tm, blk);
	if (!r)
		r = collapse_root(info, level, root_blk);
	tm_unlock(info->tm, root_blk);
	return r;
}

/* Shadow the path to KEY's entry in an upper level (which must exist). */
static int shadow_path(struct btree_info *info, unsigned level, uint64_t root, uint64_t key,
                       uint64_t *new_root, uint64_t *leaf, uint32_t *index)
{
	int ins;
	return bt_insert_raw(info, level, root, key, NULL, new_root, leaf, index, &ins);
}

typedef int (*bottom_op)(struct btree_info *info, unsigned level, uint64_t root, void *arg,
                         uint64_t *new_root);

/* Apply OP to the bottom tree selected by KEYS, shadowing the upper path. */
static int with_bottom(struct btree_info *info, unsigned level, uint64_t root, const uint64_t *keys,
                       bottom_op op, void *arg, uint64_t *new_root)
{
	if (bottom(info, level))
		return op(info, level, root, arg, new_root);
	uint64_t leaf;
	uint32_t idx;
	int r = shadow_path(info, level, root, keys[level], new_root, &leaf, &idx);
	if (r)
		return r;
	struct bm_block *blk;
	r = tm_read_lock(info->tm, leaf, &tp_btree_validator, &blk);
	if (r)
		return r;
	uint64_t sub = val64(bm_block_data(blk), idx);
	tm_unlock(info->tm, blk);
	uint64_t sub_new;
	r = with_bottom(info, level + 1, sub, keys, op, arg, &sub_new);
	if (r)
		return r;
	return sub_new == sub ? 0 : bt_set_leaf_value(info, leaf, idx, sub_new);
}

/* The key was found before: not finding it now means the lookup and the
 * removal took different paths through a corrupt tree. */
static int missing_key(struct btree_info *info, uint64_t key)
{
	return tm_corrupt(info->tm, "btree key %llu is found by a lookup but not by its removal",
	                  (ull)key);
}

static int remove_op(struct btree_info *info, unsigned level, uint64_t root, void *arg,
                     uint64_t *new_root)
{
	uint64_t key = *(const uint64_t *)arg;
	int r = remove_raw(info, level, root, key, new_root);
	return r == -ENODATA ? missing_key(info, key) : r;
}

int btree_remove(struct btree_info *info, uint64_t root, const uint64_t *keys, uint64_t *new_root)
{
	/* Look first so that a missing key leaves the tree untouched. */
	uint8_t v[1024];
	int r = btree_lookup(info, root, keys, v);
	*new_root = root;
	if (r)
		return r;
	return with_bottom(info, 0, root, keys, remove_op, (void *)&keys[info->levels - 1],
	                   new_root);
}

struct range_arg {
	uint64_t begin, end, removed;
};

static int remove_range_op(struct btree_info *info, unsigned level, uint64_t root, void *arg,
                           uint64_t *new_root)
{
	struct range_arg *ra = arg;
	struct btree_info one = *info;
	one.levels = 1;
	uint8_t v[1024];
	*new_root = root;
	for (;;) {
		uint64_t k;
		int r = bt_lookup_next_one(&one, *new_root, ra->begin, info->value_type.size, &k,
		                           v);
		if (r == -ENODATA || (!r && k >= ra->end))
			return 0;
		if (r)
			return r;
		r = remove_raw(info, level, *new_root, k, new_root);
		if (r)
			return r == -ENODATA ? missing_key(info, k) : r;
		ra->removed++;
		ra->begin = k + 1;
	}
}

int btree_remove_range(struct btree_info *info, uint64_t root, const uint64_t *keys, uint64_t begin,
                       uint64_t end, uint64_t *new_root, uint64_t *nr_removed)
{
	struct range_arg ra = { begin, end, 0 };
	uint64_t sub;
	*new_root = root;
	if (nr_removed)
		*nr_removed = 0;
	int r = bt_bottom_root(info, root, keys, &sub);
	if (r)
		return r;
	r = with_bottom(info, 0, root, keys, remove_range_op, &ra, new_root);
	if (nr_removed)
		*nr_removed = ra.removed;
	return r;
}
