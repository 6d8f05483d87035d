/* Internals shared by the btree files (not part of the pdata API):
 *   btree.c         empty trees, deletion, lookups and the in-order walk
 *   btree_spine.c   bounded walks: the root-to-node path, node checks,
 *                   reading and shadowing a node on a path
 *   btree_insert.c  insertion with splits
 *   btree_remove.c  removal with rebalancing, range removal
 * Node accessors are static inline so the hot paths keep inlining them. */
#ifndef THINP_PDATA_BTREE_INTERNAL_H
#define THINP_PDATA_BTREE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/format.h"

/* ---- node accessors (d = block data) ---- */

static inline uint32_t n_flags(const uint8_t *d)
{
	return le32_get(d + 4);
}
static inline uint32_t n_nr(const uint8_t *d)
{
	return le32_get(d + 16);
}
static inline uint32_t n_max(const uint8_t *d)
{
	return le32_get(d + 20);
}
static inline uint32_t n_vs(const uint8_t *d)
{
	return le32_get(d + 24);
}
static inline void set_nr(uint8_t *d, uint32_t nr)
{
	le32_put(d + 16, nr);
}
static inline bool is_leaf(const uint8_t *d)
{
	return n_flags(d) == BTREE_LEAF_NODE;
}
static inline uint64_t key_at(const uint8_t *d, uint32_t i)
{
	return le64_get(d + BTREE_HEADER_SIZE + 8 * i);
}
static inline void set_key(uint8_t *d, uint32_t i, uint64_t k)
{
	le64_put(d + BTREE_HEADER_SIZE + 8 * i, k);
}
static inline uint8_t *val_ptr(uint8_t *d, uint32_t i)
{
	return d + BTREE_HEADER_SIZE + 8 * n_max(d) + (size_t)i * n_vs(d);
}
static inline const uint8_t *cval_ptr(const uint8_t *d, uint32_t i)
{
	return d + BTREE_HEADER_SIZE + 8 * n_max(d) + (size_t)i * n_vs(d);
}
static inline uint64_t val64(const uint8_t *d, uint32_t i)
{
	return le64_get(cval_ptr(d, i));
}
static inline void set_val64(uint8_t *d, uint32_t i, uint64_t v)
{
	le64_put(val_ptr(d, i), v);
}

/* A node read for a tree must carry that tree's value size (leaves) or 8
 * (internal nodes); anything else is corruption, and copying its values
 * would overrun the caller's buffer. */
static inline bool node_fits(const uint8_t *d, uint32_t vs)
{
	return n_vs(d) == (is_leaf(d) ? vs : 8);
}

static inline void init_node(uint8_t *d, uint32_t flags, uint32_t value_size)
{
	le32_put(d + 4, flags);
	set_nr(d, 0);
	le32_put(d + 20, btree_max_entries(value_size));
	le32_put(d + 24, value_size);
}

/* Largest i with key[i] <= key, or -1.
 *
 * A node's keys are spread evenly more often than not (appended vblocks are consecutive,
 * random ones uniform), so the search starts where the key would sit if they were: from the
 * first and last keys (loaded side by side) it guesses the slot, steps a few slots from there,
 * and only when that did not settle it falls back to halving what is left. A binary search
 * over a full node touches 6-8 cache lines, each load waiting for the one before; this one
 * 3-4, two of them at once, which is what a lookup over a tree too big for the CPU caches
 * waits for (docs/benchmark-method.md). Unsorted (corrupt) keys give some index in range, as
 * the plain halving did. */
#define LB_STEPS 4
/* The search from guess G, given key[lo] <= key < key[hi] (hi == n: past the last key). */
static inline int lb_from(const uint8_t *d, uint64_t key, int lo, int hi, int g)
{
	if (key_at(d, (uint32_t)g) <= key) {
		lo = g;
		for (int s = 0; s < LB_STEPS && lo + 1 < hi; s++) {
			if (key_at(d, (uint32_t)(lo + 1)) > key) {
				hi = lo + 1;
				break;
			}
			lo++;
		}
	} else {
		hi = g;
		for (int s = 0; s < LB_STEPS && hi - 1 > lo; s++) {
			if (key_at(d, (uint32_t)(hi - 1)) <= key) {
				lo = hi - 1;
				break;
			}
			hi--;
		}
	}
	while (hi - lo > 1) {
		int mid = lo + (hi - lo) / 2;
		if (key_at(d, (uint32_t)mid) <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static inline int lower_bound(const uint8_t *d, uint64_t key)
{
	int n = (int)n_nr(d);
	if (n == 0 || key < key_at(d, 0))
		return -1;
	uint64_t first = key_at(d, 0), last = key_at(d, (uint32_t)(n - 1));
	if (key >= last)
		return n - 1;
	/* first <= key < last: some lo in [0, n-2] has key[lo] <= key < key[lo + 1] */
	int g = (int)((double)(key - first) / (double)(last - first) * (double)(n - 1));
	if (g < 0)
		g = 0;
	if (g > n - 2)
		g = n - 2;
	return lb_from(d, key, 0, n - 1, g);
}

/* lower_bound for a lookup's descent. A node below the root lies between two keys of its
 * parent: its first key (in the line of its header) and the parent's next key, HI (exclusive;
 * BOUNDED false where none is known: a root, or the last child of a last child). With both the
 * guess needs no load of the node's last key, which sits lines away from its header: a node
 * out of the CPU's caches then costs its header's line and, fetched together, the guessed
 * key's line and that slot's value line (software prefetch), instead of four lines in a row.
 * A wrong HI (corruption) only makes the guess poor: the search itself never trusts it. */
static inline int lookup_slot(const uint8_t *d, uint64_t key, bool bounded, uint64_t hi)
{
	int n = (int)n_nr(d);
	if (!bounded || hi <= key || n < 2)
		return lower_bound(d, key);
	uint64_t first = key_at(d, 0);
	if (key < first)
		return -1;
	/* first <= key < hi: the n keys spread over [first, hi) */
	int g = (int)((double)(key - first) / (double)(hi - first) * (double)n);
	if (g > n - 1)
		g = n - 1;
	__builtin_prefetch(cval_ptr(d, (uint32_t)g));
	return lb_from(d, key, 0, n, g);
}

/* Copy COUNT entries from src[si] to dst[di] (same value size; may overlap
 * only when src == dst). */
static inline void copy_entries(uint8_t *dst, uint32_t di, const uint8_t *src, uint32_t si,
                                uint32_t count)
{
	uint32_t vs = n_vs(src);
	memmove(dst + BTREE_HEADER_SIZE + 8 * di, src + BTREE_HEADER_SIZE + 8 * si,
	        8 * (size_t)count);
	memmove(val_ptr(dst, di), cval_ptr(src, si), (size_t)vs * count);
}

static inline void insert_at(uint8_t *d, uint32_t i, uint64_t key, const void *value)
{
	uint32_t nr = n_nr(d);
	if (i < nr)
		copy_entries(d, i + 1, d, i, nr - i);
	set_key(d, i, key);
	memcpy(val_ptr(d, i), value, n_vs(d));
	set_nr(d, nr + 1);
}

static inline void delete_at(uint8_t *d, uint32_t i)
{
	uint32_t nr = n_nr(d);
	if (i + 1 < nr)
		copy_entries(d, i, d, i + 1, nr - i - 1);
	set_nr(d, nr - 1);
}

/* ---- levels ---- */

static inline bool bottom(const struct btree_info *info, unsigned level)
{
	return level + 1 == info->levels;
}

static inline uint32_t level_vs(const struct btree_info *info, unsigned level)
{
	return bottom(info, level) ? info->value_type.size : 8;
}

/* ---- corrupt trees: every walk is bounded (btree_spine.c) ----
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

static inline void bt_spine_init(struct spine *sp)
{
	sp->nb = 0; /* (b[] unset: a lookup starts two spines, 200 bytes each) */
	sp->depth = 0;
}

static inline bool bt_on_spine(const struct spine *sp, uint64_t b)
{
	for (unsigned i = 0; i < sp->nb; i++)
		if (sp->b[i] == b)
			return true;
	return false;
}

/* The messages, out of line (btree_spine.c): -EUCLEAN. */
int bt_spine_fault(struct btree_info *info, const struct spine *sp, uint64_t b);
int bt_node_fault(struct btree_info *info, const uint8_t *d, uint64_t b, uint32_t vs);

/* Enter node B one level below the path's end: -EUCLEAN when B is on the
 * path already or the path is too long. */
static inline int bt_spine_enter(struct btree_info *info, struct spine *sp, uint64_t b)
{
	if (__builtin_expect(sp->depth > BTREE_MAX_DEPTH || bt_on_spine(sp, b), 0))
		return bt_spine_fault(info, sp, b);
	sp->b[sp->nb++] = b;
	sp->depth++;
	return 0;
}

/* The same for walks that only read: the depth bound alone stops them (a
 * cycle cannot corrupt anything when nothing is written, and the message
 * still finds it), so the hot lookup path skips the path scan. */
static inline int bt_spine_descend(struct btree_info *info, struct spine *sp, uint64_t b)
{
	if (__builtin_expect(sp->depth > BTREE_MAX_DEPTH, 0))
		return bt_spine_fault(info, sp, b);
	sp->b[sp->nb++] = b;
	sp->depth++;
	return 0;
}

/* The node just entered was shadowed to B: its copy is on the path too. */
static inline void bt_spine_shadowed(struct spine *sp, uint64_t b)
{
	if (sp->b[sp->nb - 1] != b)
		sp->b[sp->nb++] = b;
}

/* Leave the node entered last (recursive walks, which never shadow). */
static inline void bt_spine_leave(struct spine *sp)
{
	sp->nb--;
	sp->depth--;
}

/* -EUCLEAN unless the node D at B fits a tree whose leaves hold VS bytes
 * (the right value size for its kind; an internal node has entries). */
static inline int bt_check_node(struct btree_info *info, const uint8_t *d, uint64_t b, uint32_t vs)
{
	if (__builtin_expect(node_fits(d, vs) && (is_leaf(d) || n_nr(d)), 1))
		return 0;
	return bt_node_fault(info, d, b, vs);
}

/* Read-lock B as the next node of the path SP. */
static inline int bt_read_node(struct btree_info *info, struct spine *sp, uint64_t b, uint32_t vs,
                               struct bm_block **out)
{
	int r = bt_spine_descend(info, sp, b);
	if (r)
		return r;
	r = tm_read_lock(info->tm, b, &tp_btree_validator, out);
	if (r)
		return r;
	r = bt_check_node(info, bm_block_data(*out), b, vs);
	if (r)
		tm_unlock(info->tm, *out);
	return r;
}

/* A writable copy of node B of a tree of LEVEL (references of its children
 * taken when it was shared). */
int bt_shadow_node(struct btree_info *info, unsigned level, uint64_t b, struct bm_block **out);
/* Shadow B as the next node of the path SP. */
int bt_shadow_path_node(struct btree_info *info, unsigned level, struct spine *sp, uint64_t b,
                        struct bm_block **out);
int bt_new_node(struct btree_info *info, uint32_t flags, uint32_t vs, struct bm_block **out);

/* ---- shared between btree.c, btree_insert.c and btree_remove.c ---- */

int bt_value_inc(struct btree_info *info, unsigned level, const void *v);
/* Drop a value of LEVEL: a subtree reference, or the value type's dec. */
int bt_value_dec(struct btree_info *info, unsigned level, const void *v);
/* A new empty tree for LEVEL. */
int bt_empty_level(struct btree_info *info, unsigned level, uint64_t *root);
/* Resolve the upper levels: the root of the bottom-level tree for KEYS. */
int bt_bottom_root(struct btree_info *info, uint64_t root, const uint64_t *keys, uint64_t *out);
/* First key >= KEY in the single-level tree at ROOT (leaf values VS bytes). */
int bt_lookup_next_one(struct btree_info *info, uint64_t root, uint64_t key, uint32_t vs,
                       uint64_t *found, void *value);
/* Insert KEY into the tree of LEVEL at ROOT. VALUE NULL means an upper level:
 * keep an existing entry, or create an empty subtree for a new one. Reports
 * where the key's leaf entry ended up. */
int bt_insert_raw(struct btree_info *info, unsigned level, uint64_t root, uint64_t key,
                  const void *value, uint64_t *new_root, uint64_t *leaf, uint32_t *leaf_index,
                  int *inserted);
/* Point the upper-level leaf entry at a (possibly moved) subtree root. */
int bt_set_leaf_value(struct btree_info *info, uint64_t leaf, uint32_t index, uint64_t sub_root);

#endif
