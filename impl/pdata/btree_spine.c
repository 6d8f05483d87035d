/* Bounded walks over possibly corrupt trees: see "corrupt trees" in
 * btree_internal.h. */
#include "pdata/btree_internal.h"

#include <errno.h>
#include <string.h>

/* (The checks themselves are static inline in btree_internal.h: a lookup
 * runs them on every node; only the messages live here.) */

int bt_spine_fault(struct btree_info *info, const struct spine *sp, uint64_t b)
{
	/* a read-only walk did not look for repeats on its way down */
	for (unsigned i = 0; i <= sp->nb; i++) {
		uint64_t x = i < sp->nb ? sp->b[i] : b;
		for (unsigned j = 0; j < i; j++)
			if (sp->b[j] == x)
				return tm_corrupt(
				        info->tm,
				        "btree node %llu is reached again from inside its own subtree (a cycle)",
				        (ull)x);
	}
	return tm_corrupt(
	        info->tm,
	        "btree node %llu sits %u levels below its root, deeper than any tree over 64-bit keys (at most %u): a cycle or a chain of near-empty nodes",
	        (ull)b, sp->depth, BTREE_MAX_DEPTH);
}

int bt_node_fault(struct btree_info *info, const uint8_t *d, uint64_t b, uint32_t vs)
{
	if (!node_fits(d, vs))
		return tm_corrupt(
		        info->tm,
		        "btree %s node %llu holds %u-byte values where %u-byte ones belong (a node of another tree)",
		        is_leaf(d) ? "leaf" : "internal", (ull)b, n_vs(d), is_leaf(d) ? vs : 8);
	return tm_corrupt(info->tm, "btree internal node %llu has no entries", (ull)b);
}

static int inc_children(struct btree_info *info, unsigned level, const uint8_t *d)
{
	uint32_t nr = n_nr(d);
	for (uint32_t i = 0; i < nr; i++) {
		int r = is_leaf(d) ? bt_value_inc(info, level, cval_ptr(d, i)) :
		                     tm_inc(info->tm, val64(d, i));
		if (r)
			return r;
	}
	return 0;
}

int bt_shadow_node(struct btree_info *info, unsigned level, uint64_t b, struct bm_block **out)
{
	bool inc = false;
	int r = tm_shadow_block(info->tm, b, &tp_btree_validator, out, &inc);
	if (r)
		return r;
	r = bt_check_node(info, bm_block_data(*out), b, level_vs(info, level));
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
int bt_shadow_path_node(struct btree_info *info, unsigned level, struct spine *sp, uint64_t b,
                        struct bm_block **out)
{
	int r = bt_spine_enter(info, sp, b);
	if (r)
		return r;
	r = bt_shadow_node(info, level, b, out);
	if (!r)
		bt_spine_shadowed(sp, bm_block_location(*out));
	return r;
}

int bt_new_node(struct btree_info *info, uint32_t flags, uint32_t vs, struct bm_block **out)
{
	int r = tm_new_block(info->tm, &tp_btree_validator, out);
	if (r)
		return r;
	init_node(bm_block_data(*out), flags, vs);
	return 0;
}
