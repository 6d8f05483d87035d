/* Persistent btree in the dm-persistent-data format: 64-bit keys, fixed-size
 * values, one node per metadata block, nested levels (a value of an upper
 * level is the root of a lower-level tree).
 *
 * Invariants kept: strictly increasing keys, internal key i = lowest key of
 * child i, all leaves at one depth, every non-root node at least 1/3 full.
 * Every update returns the new root (the root may move when shadowed). */
#ifndef THINP_PDATA_BTREE_H
#define THINP_PDATA_BTREE_H

#include <stdbool.h>
#include <stdint.h>

#include "pdata/transaction_manager.h"

#define BTREE_MAX_LEVELS 4
/* The deepest a node can sit below the root of its tree (the root is at 0).
 * A well-formed tree keeps every non-root node at least 1/3 full, so an
 * internal node below the root has at least 252 / 3 = 84 children, and every
 * leaf holds at least one of the distinct 64-bit keys: leaves at depth d
 * number at least 84^(d-1), hence hold at least 84^(d-1) keys, and
 * 84^10 < 2^64 < 84^11 leaves d <= 11. A walk that finds a node deeper, or a
 * node already on its own path, is on corrupt metadata (a cycle, a chain of
 * near-empty nodes) and fails with -EUCLEAN instead of looping. */
#define BTREE_MAX_DEPTH 11

/* How values of the bottom level are reference counted. inc/dec may be NULL
 * (plain values). equal decides whether an overwrite drops the old value. */
struct btree_value_type {
	void *context;
	uint32_t size;
	int (*inc)(void *context, const void *value);
	int (*dec)(void *context, const void *value);
	bool (*equal)(void *context, const void *a, const void *b);
};

struct btree_info {
	struct tm *tm;
	unsigned levels;
	struct btree_value_type value_type; /* of the bottom level */
};

int btree_empty(struct btree_info *info, uint64_t *root);
/* Drop one reference to the tree; frees nodes (and drops values) no longer
 * referenced. */
int btree_del(struct btree_info *info, uint64_t root);

/* Every call fails with -EUCLEAN, and tm_error() names the fault, when the
 * nodes it visits cannot be a tree: a cycle, a path deeper than
 * BTREE_MAX_DEPTH, a node of another tree (value size), an empty internal
 * node, keys out of order (walk), a node freed while still referenced. */

/* 0 and the value, or -ENODATA. */
int btree_lookup(struct btree_info *info, uint64_t root, const uint64_t *keys, void *value);
/* btree_lookup for threads that run side by side, each excluding every other call on the
 * tree's block manager but not one another: only nodes cached and validated already are
 * read, and nothing in the cache changes. 0 and the value, -ENODATA, or -EAGAIN when a node
 * is not cached or fails a check (btree_lookup reads it, or names the corruption). */
int btree_lookup_peek(struct btree_info *info, uint64_t root, const uint64_t *keys,
		      void *value);
/* First key >= keys[last] in the bottom tree selected by the upper keys:
 * 0 with *found_key and value, or -ENODATA. */
int btree_lookup_next(struct btree_info *info, uint64_t root, const uint64_t *keys,
		      uint64_t *found_key, void *value);
/* Highest key of the bottom tree selected by the upper keys, -ENODATA if empty. */
int btree_find_highest_key(struct btree_info *info, uint64_t root, const uint64_t *keys,
			   uint64_t *key);

/* Insert or overwrite. *inserted (may be NULL) = 1 if the key was new. A
 * missing upper-level key gets a new empty subtree. */
int btree_insert(struct btree_info *info, uint64_t root, const uint64_t *keys, const void *value,
		 uint64_t *new_root, int *inserted);
/* Remove one key; -ENODATA if absent (tree unchanged, *new_root = root). */
int btree_remove(struct btree_info *info, uint64_t root, const uint64_t *keys,
		 uint64_t *new_root);
/* Remove every bottom-level key in [begin, end); *nr_removed (may be NULL). */
int btree_remove_range(struct btree_info *info, uint64_t root, const uint64_t *keys,
		       uint64_t begin, uint64_t end, uint64_t *new_root, uint64_t *nr_removed);

/* In-order walk of a single-level tree (or one bottom subtree when levels>1:
 * pass the subtree root and use a single-level info). fn returns non-zero to
 * stop; that value is returned. */
typedef int (*btree_walk_fn)(void *context, uint64_t key, const void *value);
int btree_walk(struct btree_info *info, uint64_t root, btree_walk_fn fn, void *context);

/* Value type for upper levels: the value is a subtree root. */
int btree_subtree_inc(void *info, const void *value);
int btree_subtree_dec(void *info, const void *value);

#endif
