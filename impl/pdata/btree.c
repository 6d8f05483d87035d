/* Btree: empty trees, deletion, lookups and the in-order walk (see btree.h;
 * btree_internal.h lists the other files). */
#include "pdata/btree_internal.h"
#include "pdata/gate_inject.h"

#include <errno.h>
#include <string.h>

/* ---- levels and value reference counting ---- */

static int del_level(struct btree_info *info, unsigned level, uint64_t root);

int bt_value_inc(struct btree_info *info, unsigned level, const void *v)
{
	if (!bottom(info, level))
		return tm_inc(info->tm, le64_get(v));
	return info->value_type.inc ? info->value_type.inc(info->value_type.context, v) : 0;
}

int bt_value_dec(struct btree_info *info, unsigned level, const void *v)
{
	if (!bottom(info, level))
		return del_level(info, level + 1, le64_get(v));
	return info->value_type.dec ? info->value_type.dec(info->value_type.context, v) : 0;
}

int bt_empty_level(struct btree_info *info, unsigned level, uint64_t *root)
{
	struct bm_block *blk;
	int r = bt_new_node(info, BTREE_LEAF_NODE, level_vs(info, level), &blk);
	if (r)
		return r;
	*root = bm_block_location(blk);
	tm_unlock(info->tm, blk);
	return 0;
}

int btree_empty(struct btree_info *info, uint64_t *root)
{
	return bt_empty_level(info, 0, root);
}

/* Drop one reference to node B (of a tree of LEVEL, on the path SP); recurse
 * when it was the last. */
static int del_node(struct btree_info *info, unsigned level, struct spine *sp, uint64_t b)
{
	uint32_t count;
	int r = tm_ref(info->tm, b, &count);
	if (r == -ERANGE)
		return tm_corrupt(info->tm, "btree node %llu is beyond the metadata space map",
		                  (ull)b);
	if (r)
		return r;
	if (count > 1)
		return tm_dec(info->tm, b);
	if (!count) /* freed by this very deletion: reached twice */
		return tm_corrupt(
		        info->tm,
		        "btree node %llu is referenced more often than its reference count says",
		        (ull)b);

	/* Last reference: copy the node out before freeing it, since freeing
	 * values may allocate metadata blocks and reuse this one. */
	uint8_t node[TP_BLOCK_SIZE];
	struct bm_block *blk;
	r = bt_read_node(info, sp, b, level_vs(info, level), &blk);
	if (r)
		return r;
	memcpy(node, bm_block_data(blk), TP_BLOCK_SIZE);
	tm_unlock(info->tm, blk);
	r = tm_dec(info->tm, b);
	uint32_t nr = n_nr(node);
	for (uint32_t i = 0; i < nr && !r; i++)
		r = is_leaf(node) ? bt_value_dec(info, level, cval_ptr(node, i)) :
		                    del_node(info, level, sp, val64(node, i));
	bt_spine_leave(sp);
	return r;
}

static int del_level(struct btree_info *info, unsigned level, uint64_t root)
{
	struct spine sp;
	bt_spine_init(&sp);
	return del_node(info, level, &sp, root);
}

int btree_del(struct btree_info *info, uint64_t root)
{
	return del_level(info, 0, root);
}

int btree_subtree_inc(void *info, const void *value)
{
	return tm_inc(((struct btree_info *)info)->tm, le64_get(value));
}

int btree_subtree_dec(void *info, const void *value)
{
	return btree_del(info, le64_get(value));
}

/* ---- lookup ---- */

/* Find KEY in the single-level tree at ROOT; copies the value (vs bytes). */
static int lookup_one(struct btree_info *info, uint64_t root, uint64_t key, uint32_t vs,
                      void *value)
{
	struct spine sp;
	bt_spine_init(&sp);
	struct bm_block *blk;
	int r = bt_read_node(info, &sp, root, vs, &blk);
	if (r)
		return r;
	bool bounded = false;
	uint64_t hi = 0;
	for (;;) {
		const uint8_t *d = bm_block_data(blk);
		int i = lookup_slot(d, key, bounded, hi);
		if (i < 0) {
			tm_unlock(info->tm, blk);
			return -ENODATA;
		}
		if (is_leaf(d)) {
			if (key_at(d, (uint32_t)i) != key) {
				tm_unlock(info->tm, blk);
				return -ENODATA;
			}
			memcpy(value, cval_ptr(d, (uint32_t)i), n_vs(d));
			tm_unlock(info->tm, blk);
			return 0;
		}
		uint64_t child = val64(d, (uint32_t)i);
		if ((uint32_t)i + 1 < n_nr(d)) {
			bounded = true;
			hi = key_at(d, (uint32_t)i + 1);
		}
		tm_unlock(info->tm, blk);
		r = bt_read_node(info, &sp, child, vs, &blk);
		if (r)
			return r;
	}
}

/* Resolve the upper levels: the root of the bottom-level tree for KEYS. */
int bt_bottom_root(struct btree_info *info, uint64_t root, const uint64_t *keys, uint64_t *out)
{
	for (unsigned level = 0; level + 1 < info->levels; level++) {
		uint8_t v[8];
		int r = lookup_one(info, root, keys[level], 8, v);
		if (r)
			return r;
		root = le64_get(v);
	}
	*out = root;
	return 0;
}

int btree_lookup(struct btree_info *info, uint64_t root, const uint64_t *keys, void *value)
{
	int r = bt_bottom_root(info, root, keys, &root);
	if (r)
		return r;
	if (gate_inject_every('d', 5))
		(void)lookup_one(info, root, keys[info->levels - 1], info->value_type.size, value);
	return lookup_one(info, root, keys[info->levels - 1], info->value_type.size, value);
}

/* lookup_one through bm_peek: the depth bound and node checks of bt_read_node, but a failed
 * one is -EAGAIN, since the message belongs to the locked lookup that follows. */
static int peek_one(struct btree_info *info, uint64_t root, uint64_t key, uint32_t vs,
		    void *value)
{
	bool bounded = false;
	uint64_t hi = 0;
	for (unsigned depth = 0;; depth++) {
		const uint8_t *d = tm_peek(info->tm, root, &tp_btree_validator);
		if (!d || depth > BTREE_MAX_DEPTH || !node_fits(d, vs) || !(is_leaf(d) || n_nr(d)))
			return -EAGAIN;
		int i = lookup_slot(d, key, bounded, hi);
		if (i < 0)
			return -ENODATA;
		if (is_leaf(d)) {
			if (key_at(d, (uint32_t)i) != key)
				return -ENODATA;
			memcpy(value, cval_ptr(d, (uint32_t)i), n_vs(d));
			return 0;
		}
		root = val64(d, (uint32_t)i);
		if ((uint32_t)i + 1 < n_nr(d)) {
			bounded = true;
			hi = key_at(d, (uint32_t)i + 1);
		}
	}
}

int btree_lookup_peek(struct btree_info *info, uint64_t root, const uint64_t *keys, void *value)
{
	for (unsigned level = 0; level + 1 < info->levels; level++) {
		uint8_t v[8];
		int r = peek_one(info, root, keys[level], 8, v);
		if (r)
			return r;
		root = le64_get(v);
	}
	if (gate_inject_every('d', 5))
		(void)peek_one(info, root, keys[info->levels - 1], info->value_type.size, value);
	return peek_one(info, root, keys[info->levels - 1], info->value_type.size, value);
}

/* (A child's subtree may hold no key >= KEY only when the key falls between
 * it and its right sibling: at most two children are tried per level, so the
 * walk stays bounded on any shape.) */
static int lookup_next_node(struct btree_info *info, struct spine *sp, uint64_t b, uint64_t key,
                            uint32_t vs, uint64_t *found, void *value)
{
	struct bm_block *blk;
	int r = bt_read_node(info, sp, b, vs, &blk);
	if (r)
		return r;
	const uint8_t *d = bm_block_data(blk);
	uint32_t nr = n_nr(d);
	int i = lower_bound(d, key);
	if (is_leaf(d)) {
		uint32_t j =
		        (i >= 0 && key_at(d, (uint32_t)i) == key) ? (uint32_t)i : (uint32_t)(i + 1);
		if (j >= nr) {
			r = -ENODATA;
		} else {
			*found = key_at(d, j);
			memcpy(value, cval_ptr(d, j), n_vs(d));
			r = 0;
		}
		tm_unlock(info->tm, blk);
		bt_spine_leave(sp);
		return r;
	}
	uint32_t j = i < 0 ? 0 : (uint32_t)i;
	uint64_t children[2] = { val64(d, j), j + 1 < nr ? val64(d, j + 1) : 0 };
	bool has_next = j + 1 < nr;
	tm_unlock(info->tm, blk);
	r = lookup_next_node(info, sp, children[0], key, vs, found, value);
	if (r == -ENODATA && has_next)
		r = lookup_next_node(info, sp, children[1], key, vs, found, value);
	bt_spine_leave(sp);
	return r;
}

int bt_lookup_next_one(struct btree_info *info, uint64_t root, uint64_t key, uint32_t vs,
                       uint64_t *found, void *value)
{
	struct spine sp;
	bt_spine_init(&sp);
	return lookup_next_node(info, &sp, root, key, vs, found, value);
}

int btree_lookup_next(struct btree_info *info, uint64_t root, const uint64_t *keys,
                      uint64_t *found_key, void *value)
{
	int r = bt_bottom_root(info, root, keys, &root);
	if (r)
		return r;
	return bt_lookup_next_one(info, root, keys[info->levels - 1], info->value_type.size,
	                          found_key, value);
}

int btree_find_highest_key(struct btree_info *info, uint64_t root, const uint64_t *keys,
                           uint64_t *key)
{
	int r = bt_bottom_root(info, root, keys, &root);
	if (r)
		return r;
	struct spine sp;
	bt_spine_init(&sp);
	uint32_t vs = info->value_type.size;
	struct bm_block *blk;
	r = bt_read_node(info, &sp, root, vs, &blk);
	if (r)
		return r;
	for (;;) {
		const uint8_t *d = bm_block_data(blk);
		uint32_t nr = n_nr(d);
		if (!nr) { /* an empty leaf: the empty tree, or corruption below the root */
			tm_unlock(info->tm, blk);
			return sp.depth == 1 ?
			               -ENODATA :
			               tm_corrupt(info->tm,
			                          "btree leaf %llu below the root has no entries",
			                          (ull)sp.b[sp.nb - 1]);
		}
		if (is_leaf(d)) {
			*key = key_at(d, nr - 1);
			tm_unlock(info->tm, blk);
			return 0;
		}
		uint64_t child = val64(d, nr - 1);
		tm_unlock(info->tm, blk);
		r = bt_read_node(info, &sp, child, vs, &blk);
		if (r)
			return r;
	}
}

/* ---- walk ---- */

/* Keys must come out strictly increasing and every node below the root must
 * hold entries: then a node reached twice (a DAG inside one tree) repeats a
 * key at its first leaf, and the walk costs O(keys x depth) on any shape
 * (without it, 252 pointers per level to one node make 252^depth visits). */
struct walk {
	struct btree_info *info;
	btree_walk_fn fn;
	void *ctx;
	struct spine sp;
	uint64_t last;
	bool any;
};

static int walk_node(struct walk *w, uint64_t b)
{
	uint8_t node[TP_BLOCK_SIZE];
	struct bm_block *blk;
	int r = bt_read_node(w->info, &w->sp, b, w->info->value_type.size, &blk);
	if (r)
		return r;
	memcpy(node, bm_block_data(blk), TP_BLOCK_SIZE);
	tm_unlock(w->info->tm, blk);
	uint32_t nr = n_nr(node);
	if (!nr && w->sp.depth > 1)
		r = tm_corrupt(w->info->tm, "btree leaf %llu below the root has no entries",
		               (ull)b);
	for (uint32_t i = 0; i < nr && !r; i++) {
		if (!is_leaf(node)) {
			r = walk_node(w, val64(node, i));
			continue;
		}
		uint64_t k = key_at(node, i);
		if (w->any && k <= w->last) {
			r = tm_corrupt(
			        w->info->tm,
			        "btree leaf %llu: key %llu after %llu (keys out of order, or a node reached twice)",
			        (ull)b, (ull)k, (ull)w->last);
			break;
		}
		w->last = k;
		w->any = true;
		r = w->fn(w->ctx, k, cval_ptr(node, i));
	}
	bt_spine_leave(&w->sp);
	return r;
}

int btree_walk(struct btree_info *info, uint64_t root, btree_walk_fn fn, void *context)
{
	struct walk w = { .info = info, .fn = fn, .ctx = context };
	return walk_node(&w, root);
}
