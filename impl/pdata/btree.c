#include "pdata/btree.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pdata/endian.h"
#include "pdata/format.h"

/* ---- node accessors (d = block data) ---- */

static uint32_t n_flags(const uint8_t *d) { return le32_get(d + 4); }
static uint32_t n_nr(const uint8_t *d) { return le32_get(d + 16); }
static uint32_t n_max(const uint8_t *d) { return le32_get(d + 20); }
static uint32_t n_vs(const uint8_t *d) { return le32_get(d + 24); }
static void set_nr(uint8_t *d, uint32_t nr) { le32_put(d + 16, nr); }
static bool is_leaf(const uint8_t *d) { return n_flags(d) == BTREE_LEAF_NODE; }
static uint64_t key_at(const uint8_t *d, uint32_t i) { return le64_get(d + BTREE_HEADER_SIZE + 8 * i); }
static void set_key(uint8_t *d, uint32_t i, uint64_t k) { le64_put(d + BTREE_HEADER_SIZE + 8 * i, k); }
static uint8_t *val_ptr(uint8_t *d, uint32_t i)
{
	return d + BTREE_HEADER_SIZE + 8 * n_max(d) + (size_t)i * n_vs(d);
}
static const uint8_t *cval_ptr(const uint8_t *d, uint32_t i)
{
	return d + BTREE_HEADER_SIZE + 8 * n_max(d) + (size_t)i * n_vs(d);
}
static uint64_t val64(const uint8_t *d, uint32_t i) { return le64_get(cval_ptr(d, i)); }
static void set_val64(uint8_t *d, uint32_t i, uint64_t v) { le64_put(val_ptr(d, i), v); }

/* A node read for a tree must carry that tree's value size (leaves) or 8
 * (internal nodes); anything else is corruption, and copying its values
 * would overrun the caller's buffer. */
static bool node_fits(const uint8_t *d, uint32_t vs)
{
	return n_vs(d) == (is_leaf(d) ? vs : 8);
}

/* ---- corrupt trees: every walk is bounded ----
 * A walk keeps the nodes of its current root-to-node path (the originals and,
 * when it writes, their shadows). A node reached again from inside its own
 * subtree is a cycle, and a path longer than BTREE_MAX_DEPTH + 1 nodes belongs
 * to no real tree: either would make the walk loop forever (or, when it
 * shadows, until metadata space runs out). Both fail with -EUCLEAN. */

typedef unsigned long long ull; /* for printf */

struct spine {
	uint64_t b[2 * (BTREE_MAX_DEPTH + 1)];
	unsigned nb;    /* entries used in b */
	unsigned depth; /* nodes entered: the next one sits at this depth */
};

static bool on_spine(const struct spine *sp, uint64_t b)
{
	for (unsigned i = 0; i < sp->nb; i++)
		if (sp->b[i] == b)
			return true;
	return false;
}

static int spine_enter(struct btree_info *info, struct spine *sp, uint64_t b)
{
	if (on_spine(sp, b))
		return tm_corrupt(info->tm,
				  "btree node %llu is reached again from inside its own subtree (a cycle)",
				  (ull)b);
	if (sp->depth > BTREE_MAX_DEPTH)
		return tm_corrupt(info->tm,
				  "btree node %llu sits %u levels below its root, deeper than any tree over 64-bit keys (at most %u): a cycle or a chain of near-empty nodes",
				  (ull)b, sp->depth, BTREE_MAX_DEPTH);
	sp->b[sp->nb++] = b;
	sp->depth++;
	return 0;
}

/* The node just entered was shadowed to B: its copy is on the path too. */
static void spine_shadowed(struct spine *sp, uint64_t b)
{
	if (sp->b[sp->nb - 1] != b)
		sp->b[sp->nb++] = b;
}

/* Leave the node entered last (recursive walks, which never shadow). */
static void spine_leave(struct spine *sp)
{
	sp->nb--;
	sp->depth--;
}

/* A node read for a tree whose leaves hold VS-byte values. */
static int check_node(struct btree_info *info, const uint8_t *d, uint64_t b, uint32_t vs)
{
	if (!node_fits(d, vs))
		return tm_corrupt(info->tm,
				  "btree %s node %llu holds %u-byte values where %u-byte ones belong (a node of another tree)",
				  is_leaf(d) ? "leaf" : "internal", (ull)b, n_vs(d), is_leaf(d) ? vs : 8);
	if (!is_leaf(d) && !n_nr(d))
		return tm_corrupt(info->tm, "btree internal node %llu has no entries", (ull)b);
	return 0;
}

/* Read-lock B as the next node of the path SP. */
static int read_node(struct btree_info *info, struct spine *sp, uint64_t b, uint32_t vs,
		     struct bm_block **out)
{
	int r = spine_enter(info, sp, b);
	if (r)
		return r;
	r = tm_read_lock(info->tm, b, &tp_btree_validator, out);
	if (r)
		return r;
	r = check_node(info, bm_block_data(*out), b, vs);
	if (r)
		tm_unlock(info->tm, *out);
	return r;
}

static void init_node(uint8_t *d, uint32_t flags, uint32_t value_size)
{
	le32_put(d + 4, flags);
	set_nr(d, 0);
	le32_put(d + 20, btree_max_entries(value_size));
	le32_put(d + 24, value_size);
}

/* Largest i with key[i] <= key, or -1. */
static int lower_bound(const uint8_t *d, uint64_t key)
{
	int lo = -1, hi = (int)n_nr(d);
	while (hi - lo > 1) {
		int mid = lo + (hi - lo) / 2;
		if (key_at(d, (uint32_t)mid) <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Copy COUNT entries from src[si] to dst[di] (same value size; may overlap
 * only when src == dst). */
static void copy_entries(uint8_t *dst, uint32_t di, const uint8_t *src, uint32_t si, uint32_t count)
{
	uint32_t vs = n_vs(src);
	memmove(dst + BTREE_HEADER_SIZE + 8 * di, src + BTREE_HEADER_SIZE + 8 * si, 8 * (size_t)count);
	memmove(val_ptr(dst, di), cval_ptr(src, si), (size_t)vs * count);
}

static void insert_at(uint8_t *d, uint32_t i, uint64_t key, const void *value)
{
	uint32_t nr = n_nr(d);
	if (i < nr)
		copy_entries(d, i + 1, d, i, nr - i);
	set_key(d, i, key);
	memcpy(val_ptr(d, i), value, n_vs(d));
	set_nr(d, nr + 1);
}

static void delete_at(uint8_t *d, uint32_t i)
{
	uint32_t nr = n_nr(d);
	if (i + 1 < nr)
		copy_entries(d, i, d, i + 1, nr - i - 1);
	set_nr(d, nr - 1);
}

/* ---- levels and value reference counting ---- */

static bool bottom(const struct btree_info *info, unsigned level) { return level + 1 == info->levels; }

static uint32_t level_vs(const struct btree_info *info, unsigned level)
{
	return bottom(info, level) ? info->value_type.size : 8;
}

static int del_level(struct btree_info *info, unsigned level, uint64_t root);

static int value_inc(struct btree_info *info, unsigned level, const void *v)
{
	if (!bottom(info, level))
		return tm_inc(info->tm, le64_get(v));
	return info->value_type.inc ? info->value_type.inc(info->value_type.context, v) : 0;
}

static int value_dec(struct btree_info *info, unsigned level, const void *v)
{
	if (!bottom(info, level))
		return del_level(info, level + 1, le64_get(v));
	return info->value_type.dec ? info->value_type.dec(info->value_type.context, v) : 0;
}

static int inc_children(struct btree_info *info, unsigned level, const uint8_t *d)
{
	uint32_t nr = n_nr(d);
	for (uint32_t i = 0; i < nr; i++) {
		int r = is_leaf(d) ? value_inc(info, level, cval_ptr(d, i))
				   : tm_inc(info->tm, val64(d, i));
		if (r)
			return r;
	}
	return 0;
}

static int shadow_node(struct btree_info *info, unsigned level, uint64_t b, struct bm_block **out)
{
	bool inc = false;
	int r = tm_shadow_block(info->tm, b, &tp_btree_validator, out, &inc);
	if (r)
		return r;
	r = check_node(info, bm_block_data(*out), b, level_vs(info, level));
	if (r) {
		tm_unlock(info->tm, *out);
		return r;
	}
	if (inc) {
		r = inc_children(info, level, bm_block_data(*out));
		if (r) {
			tm_unlock(info->tm, *out);
			return r;
		}
	}
	return 0;
}

/* Shadow B as the next node of the path SP. */
static int shadow_path_node(struct btree_info *info, unsigned level, struct spine *sp, uint64_t b,
			    struct bm_block **out)
{
	int r = spine_enter(info, sp, b);
	if (r)
		return r;
	r = shadow_node(info, level, b, out);
	if (!r)
		spine_shadowed(sp, bm_block_location(*out));
	return r;
}

static int new_node(struct btree_info *info, uint32_t flags, uint32_t vs, struct bm_block **out)
{
	int r = tm_new_block(info->tm, &tp_btree_validator, out);
	if (r)
		return r;
	init_node(bm_block_data(*out), flags, vs);
	return 0;
}

static int empty_level(struct btree_info *info, unsigned level, uint64_t *root)
{
	struct bm_block *blk;
	int r = new_node(info, BTREE_LEAF_NODE, level_vs(info, level), &blk);
	if (r)
		return r;
	*root = bm_block_location(blk);
	tm_unlock(info->tm, blk);
	return 0;
}

int btree_empty(struct btree_info *info, uint64_t *root) { return empty_level(info, 0, root); }

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
		return tm_corrupt(info->tm,
				  "btree node %llu is referenced more often than its reference count says",
				  (ull)b);

	/* Last reference: copy the node out before freeing it, since freeing
	 * values may allocate metadata blocks and reuse this one. */
	uint8_t node[TP_BLOCK_SIZE];
	struct bm_block *blk;
	r = read_node(info, sp, b, level_vs(info, level), &blk);
	if (r)
		return r;
	memcpy(node, bm_block_data(blk), TP_BLOCK_SIZE);
	tm_unlock(info->tm, blk);
	r = tm_dec(info->tm, b);
	uint32_t nr = n_nr(node);
	for (uint32_t i = 0; i < nr && !r; i++)
		r = is_leaf(node) ? value_dec(info, level, cval_ptr(node, i))
				  : del_node(info, level, sp, val64(node, i));
	spine_leave(sp);
	return r;
}

static int del_level(struct btree_info *info, unsigned level, uint64_t root)
{
	struct spine sp = {.nb = 0};
	return del_node(info, level, &sp, root);
}

int btree_del(struct btree_info *info, uint64_t root) { return del_level(info, 0, root); }

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
	struct spine sp = {.nb = 0};
	struct bm_block *blk;
	int r = read_node(info, &sp, root, vs, &blk);
	if (r)
		return r;
	for (;;) {
		const uint8_t *d = bm_block_data(blk);
		int i = lower_bound(d, key);
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
		tm_unlock(info->tm, blk);
		r = read_node(info, &sp, child, vs, &blk);
		if (r)
			return r;
	}
}

/* Resolve the upper levels: the root of the bottom-level tree for KEYS. */
static int bottom_root(struct btree_info *info, uint64_t root, const uint64_t *keys, uint64_t *out)
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
	int r = bottom_root(info, root, keys, &root);
	if (r)
		return r;
	return lookup_one(info, root, keys[info->levels - 1], info->value_type.size, value);
}

/* (A child's subtree may hold no key >= KEY only when the key falls between
 * it and its right sibling: at most two children are tried per level, so the
 * walk stays bounded on any shape.) */
static int lookup_next_node(struct btree_info *info, struct spine *sp, uint64_t b, uint64_t key,
			    uint32_t vs, uint64_t *found, void *value)
{
	struct bm_block *blk;
	int r = read_node(info, sp, b, vs, &blk);
	if (r)
		return r;
	const uint8_t *d = bm_block_data(blk);
	uint32_t nr = n_nr(d);
	int i = lower_bound(d, key);
	if (is_leaf(d)) {
		uint32_t j = (i >= 0 && key_at(d, (uint32_t)i) == key) ? (uint32_t)i : (uint32_t)(i + 1);
		if (j >= nr) {
			r = -ENODATA;
		} else {
			*found = key_at(d, j);
			memcpy(value, cval_ptr(d, j), n_vs(d));
			r = 0;
		}
		tm_unlock(info->tm, blk);
		spine_leave(sp);
		return r;
	}
	uint32_t j = i < 0 ? 0 : (uint32_t)i;
	uint64_t children[2] = {val64(d, j), j + 1 < nr ? val64(d, j + 1) : 0};
	bool has_next = j + 1 < nr;
	tm_unlock(info->tm, blk);
	r = lookup_next_node(info, sp, children[0], key, vs, found, value);
	if (r == -ENODATA && has_next)
		r = lookup_next_node(info, sp, children[1], key, vs, found, value);
	spine_leave(sp);
	return r;
}

static int lookup_next_one(struct btree_info *info, uint64_t root, uint64_t key, uint32_t vs,
			   uint64_t *found, void *value)
{
	struct spine sp = {.nb = 0};
	return lookup_next_node(info, &sp, root, key, vs, found, value);
}

int btree_lookup_next(struct btree_info *info, uint64_t root, const uint64_t *keys,
		      uint64_t *found_key, void *value)
{
	int r = bottom_root(info, root, keys, &root);
	if (r)
		return r;
	return lookup_next_one(info, root, keys[info->levels - 1], info->value_type.size,
			       found_key, value);
}

int btree_find_highest_key(struct btree_info *info, uint64_t root, const uint64_t *keys,
			   uint64_t *key)
{
	int r = bottom_root(info, root, keys, &root);
	if (r)
		return r;
	struct spine sp = {.nb = 0};
	uint32_t vs = info->value_type.size;
	struct bm_block *blk;
	r = read_node(info, &sp, root, vs, &blk);
	if (r)
		return r;
	for (;;) {
		const uint8_t *d = bm_block_data(blk);
		uint32_t nr = n_nr(d);
		if (!nr) { /* an empty leaf: the empty tree, or corruption below the root */
			tm_unlock(info->tm, blk);
			return sp.depth == 1 ? -ENODATA
					     : tm_corrupt(info->tm, "btree leaf %llu below the root has no entries",
							  (ull)sp.b[sp.nb - 1]);
		}
		if (is_leaf(d)) {
			*key = key_at(d, nr - 1);
			tm_unlock(info->tm, blk);
			return 0;
		}
		uint64_t child = val64(d, nr - 1);
		tm_unlock(info->tm, blk);
		r = read_node(info, &sp, child, vs, &blk);
		if (r)
			return r;
	}
}

/* ---- insert ---- */

/* The full root becomes an internal node over two new halves; its location
 * does not change. */
static int split_beneath(struct btree_info *info, struct bm_block *root_blk)
{
	uint8_t *d = bm_block_data(root_blk);
	uint32_t nr = n_nr(d), nr_left = nr / 2, nr_right = nr - nr_left;
	struct bm_block *l, *r_;
	int r = new_node(info, n_flags(d), n_vs(d), &l);
	if (r)
		return r;
	r = new_node(info, n_flags(d), n_vs(d), &r_);
	if (r) {
		tm_unlock(info->tm, l);
		return r;
	}
	uint8_t *ld = bm_block_data(l), *rd = bm_block_data(r_);
	copy_entries(ld, 0, d, 0, nr_left);
	set_nr(ld, nr_left);
	copy_entries(rd, 0, d, nr_left, nr_right);
	set_nr(rd, nr_right);

	init_node(d, BTREE_INTERNAL_NODE, 8);
	set_nr(d, 2);
	set_key(d, 0, key_at(ld, 0));
	set_val64(d, 0, bm_block_location(l));
	set_key(d, 1, key_at(rd, 0));
	set_val64(d, 1, bm_block_location(r_));
	tm_unlock(info->tm, l);
	tm_unlock(info->tm, r_);
	return 0;
}

/* Child I of PARENT (write-locked) is full and write-locked in *CHILD: move
 * its upper half to a new right sibling, then leave in *CHILD whichever of
 * the two should hold KEY (the other is unlocked). */
static int split_sibling(struct btree_info *info, uint8_t *parent, uint32_t i,
			 struct bm_block **child, uint64_t key)
{
	uint8_t *cd = bm_block_data(*child);
	uint32_t nr = n_nr(cd), nr_left = nr / 2, nr_right = nr - nr_left;
	struct bm_block *sib;
	int r = new_node(info, n_flags(cd), n_vs(cd), &sib);
	if (r)
		return r;
	uint8_t *sd = bm_block_data(sib);
	copy_entries(sd, 0, cd, nr_left, nr_right);
	set_nr(sd, nr_right);
	set_nr(cd, nr_left);
	uint8_t loc[8];
	le64_put(loc, bm_block_location(sib));
	insert_at(parent, i + 1, key_at(sd, 0), loc);
	if (key >= key_at(sd, 0)) {
		tm_unlock(info->tm, *child);
		*child = sib;
	} else {
		tm_unlock(info->tm, sib);
	}
	return 0;
}

/* Insert KEY into the tree of LEVEL at ROOT. VALUE NULL means an upper level:
 * keep an existing entry, or create an empty subtree for a new one. Reports
 * where the key's leaf entry ended up. */
static int insert_raw(struct btree_info *info, unsigned level, uint64_t root, uint64_t key,
		      const void *value, uint64_t *new_root, uint64_t *leaf, uint32_t *leaf_index,
		      int *inserted)
{
	struct spine sp = {.nb = 0};
	struct bm_block *blk;
	int r = shadow_path_node(info, level, &sp, root, &blk);
	if (r)
		return r;
	*new_root = bm_block_location(blk);
	if (n_nr(bm_block_data(blk)) == n_max(bm_block_data(blk))) {
		r = split_beneath(info, blk);
		if (r)
			goto out;
	}
	for (;;) {
		uint8_t *d = bm_block_data(blk);
		int i = lower_bound(d, key);
		if (is_leaf(d)) {
			uint32_t at;
			if (i >= 0 && key_at(d, (uint32_t)i) == key) {
				at = (uint32_t)i;
				*inserted = 0;
				if (value) {
					const struct btree_value_type *vt = &info->value_type;
					bool same = vt->equal &&
						    vt->equal(vt->context, cval_ptr(d, at), value);
					if (!same) {
						r = value_dec(info, level, cval_ptr(d, at));
						if (r)
							goto out;
					}
					memcpy(val_ptr(d, at), value, n_vs(d));
				}
			} else {
				at = (uint32_t)(i + 1);
				uint8_t sub[8];
				const void *v = value;
				if (!v) {
					uint64_t sub_root;
					r = empty_level(info, level + 1, &sub_root);
					if (r)
						goto out;
					le64_put(sub, sub_root);
					v = sub;
				}
				insert_at(d, at, key, v);
				*inserted = 1;
			}
			*leaf = bm_block_location(blk);
			*leaf_index = at;
			break;
		}
		if (i < 0) {
			set_key(d, 0, key);
			i = 0;
		}
		struct bm_block *child;
		r = shadow_path_node(info, level, &sp, val64(d, (uint32_t)i), &child);
		if (r)
			goto out;
		set_val64(d, (uint32_t)i, bm_block_location(child));
		if (n_nr(bm_block_data(child)) == n_max(bm_block_data(child))) {
			r = split_sibling(info, d, (uint32_t)i, &child, key);
			if (r) {
				tm_unlock(info->tm, child);
				goto out;
			}
		}
		tm_unlock(info->tm, blk);
		blk = child;
	}
out:
	tm_unlock(info->tm, blk);
	return r;
}

/* Point the upper-level leaf entry at a (possibly moved) subtree root. The
 * leaf was shadowed in this transaction, so this writes in place. */
static int set_leaf_value(struct btree_info *info, uint64_t leaf, uint32_t index, uint64_t sub_root)
{
	struct bm_block *blk;
	bool inc;
	int r = tm_shadow_block(info->tm, leaf, &tp_btree_validator, &blk, &inc);
	if (r)
		return r;
	if (bm_block_location(blk) != leaf || inc) {
		/* the spine walk shadowed it, so only a lower level sharing
		 * nodes with this one can have moved it */
		tm_unlock(info->tm, blk);
		return tm_corrupt(info->tm,
				  "btree leaf %llu of an upper level was moved by an update of its own subtree (the levels share nodes)",
				  (ull)leaf);
	}
	set_val64(bm_block_data(blk), index, sub_root);
	tm_unlock(info->tm, blk);
	return 0;
}

static int insert_level(struct btree_info *info, unsigned level, uint64_t root,
			const uint64_t *keys, const void *value, uint64_t *new_root, int *inserted)
{
	uint64_t leaf;
	uint32_t idx;
	int ins = 0;
	if (bottom(info, level))
		return insert_raw(info, level, root, keys[level], value, new_root, &leaf, &idx,
				  inserted);
	int r = insert_raw(info, level, root, keys[level], NULL, new_root, &leaf, &idx, &ins);
	if (r)
		return r;
	uint8_t v[8];
	struct bm_block *blk;
	r = tm_read_lock(info->tm, leaf, &tp_btree_validator, &blk);
	if (r)
		return r;
	memcpy(v, cval_ptr(bm_block_data(blk), idx), 8);
	tm_unlock(info->tm, blk);
	uint64_t sub_new;
	r = insert_level(info, level + 1, le64_get(v), keys, value, &sub_new, inserted);
	if (r)
		return r;
	return sub_new == le64_get(v) ? 0 : set_leaf_value(info, leaf, idx, sub_new);
}

int btree_insert(struct btree_info *info, uint64_t root, const uint64_t *keys, const void *value,
		 uint64_t *new_root, int *inserted)
{
	int dummy;
	return insert_level(info, 0, root, keys, value, new_root, inserted ? inserted : &dummy);
}

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
	if (lloc == rloc || on_spine(sp, lloc) || on_spine(sp, rloc))
		return tm_corrupt(info->tm,
				  "btree node %llu is a child twice, or its own ancestor (siblings %llu and %llu)",
				  (ull)(on_spine(sp, rloc) ? rloc : lloc), (ull)lloc, (ull)rloc);
	struct bm_block *lb, *rb;
	r = shadow_node(info, level, lloc, &lb);
	if (r)
		return r;
	r = shadow_node(info, level, rloc, &rb);
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
		return tm_corrupt(info->tm, "btree siblings %llu and %llu are a leaf and an internal node",
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
	struct spine sp = {.b = {bm_block_location(root_blk)}, .nb = 1, .depth = 1};
	for (;;) {
		uint8_t *d = bm_block_data(root_blk);
		if (is_leaf(d) || n_nr(d) != 1)
			return 0;
		struct bm_block *child;
		int r = shadow_path_node(info, level, &sp, val64(d, 0), &child);
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
	struct spine sp = {.nb = 0};
	struct bm_block *blk, *root_blk;
	int r = shadow_path_node(info, level, &sp, root, &blk);
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
			r = value_dec(info, level, cval_ptr(d, (uint32_t)i));
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
		r = shadow_path_node(info, level, &sp, val64(d, (uint32_t)i), &child);
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
	return insert_raw(info, level, root, key, NULL, new_root, leaf, index, &ins);
}

typedef int (*bottom_op)(struct btree_info *info, unsigned level, uint64_t root, void *arg,
			 uint64_t *new_root);

/* Apply OP to the bottom tree selected by KEYS, shadowing the upper path. */
static int with_bottom(struct btree_info *info, unsigned level, uint64_t root,
		       const uint64_t *keys, bottom_op op, void *arg, uint64_t *new_root)
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
	return sub_new == sub ? 0 : set_leaf_value(info, leaf, idx, sub_new);
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
		int r = lookup_next_one(&one, *new_root, ra->begin, info->value_type.size, &k, v);
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

int btree_remove_range(struct btree_info *info, uint64_t root, const uint64_t *keys,
		       uint64_t begin, uint64_t end, uint64_t *new_root, uint64_t *nr_removed)
{
	struct range_arg ra = {begin, end, 0};
	uint64_t sub;
	*new_root = root;
	if (nr_removed)
		*nr_removed = 0;
	int r = bottom_root(info, root, keys, &sub);
	if (r)
		return r;
	r = with_bottom(info, 0, root, keys, remove_range_op, &ra, new_root);
	if (nr_removed)
		*nr_removed = ra.removed;
	return r;
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
	int r = read_node(w->info, &w->sp, b, w->info->value_type.size, &blk);
	if (r)
		return r;
	memcpy(node, bm_block_data(blk), TP_BLOCK_SIZE);
	tm_unlock(w->info->tm, blk);
	uint32_t nr = n_nr(node);
	if (!nr && w->sp.depth > 1)
		r = tm_corrupt(w->info->tm, "btree leaf %llu below the root has no entries", (ull)b);
	for (uint32_t i = 0; i < nr && !r; i++) {
		if (!is_leaf(node)) {
			r = walk_node(w, val64(node, i));
			continue;
		}
		uint64_t k = key_at(node, i);
		if (w->any && k <= w->last) {
			r = tm_corrupt(w->info->tm,
				       "btree leaf %llu: key %llu after %llu (keys out of order, or a node reached twice)",
				       (ull)b, (ull)k, (ull)w->last);
			break;
		}
		w->last = k;
		w->any = true;
		r = w->fn(w->ctx, k, cval_ptr(node, i));
	}
	spine_leave(&w->sp);
	return r;
}

int btree_walk(struct btree_info *info, uint64_t root, btree_walk_fn fn, void *context)
{
	struct walk w = {.info = info, .fn = fn, .ctx = context};
	return walk_node(&w, root);
}
