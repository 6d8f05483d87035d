/* Bounded walks over possibly corrupt trees: see "corrupt trees" in
 * btree_internal.h. */
#include "pdata/btree_internal.h"

#include <errno.h>
#include <string.h>

bool bt_on_spine(const struct spine *sp, uint64_t b)
{
	for (unsigned i = 0; i < sp->nb; i++)
		if (sp->b[i] == b)
			return true;
	return false;
}

int bt_spine_enter(struct btree_info *info, struct spine *sp, uint64_t b)
{
	if (bt_on_spine(sp, b))
		return tm_corrupt(
		        info->tm,
		        "btree node %llu is reached again from inside its own subtree (a cycle)",
		        (ull)b);
	if (sp->depth > BTREE_MAX_DEPTH)
		return tm_corrupt(
		        info->tm,
		        "btree node %llu sits %u levels below its root, deeper than any tree over 64-bit keys (at most %u): a cycle or a chain of near-empty nodes",
		        (ull)b, sp->depth, BTREE_MAX_DEPTH);
	sp->b[sp->nb++] = b;
	sp->depth++;
	return 0;
}

/* The node just entered was shadowed to B: its copy is on the path too. */
void bt_spine_shadowed(struct spine *sp, uint64_t b)
{
	if (sp->b[sp->nb - 1] != b)
		sp->b[sp->nb++] = b;
}

/* Leave the node entered last (recursive walks, which never shadow). */
void bt_spine_leave(struct spine *sp)
{
	sp->nb--;
	sp->depth--;
}

/* A node read for a tree whose leaves hold VS-byte values. */
int bt_check_node(struct btree_info *info, const uint8_t *d, uint64_t b, uint32_t vs)
{
	if (!node_fits(d, vs))
		return tm_corrupt(
		        info->tm,
		        "btree %s node %llu holds %u-byte values where %u-byte ones belong (a node of another tree)",
		        is_leaf(d) ? "leaf" : "internal", (ull)b, n_vs(d), is_leaf(d) ? vs : 8);
	if (!is_leaf(d) && !n_nr(d))
		return tm_corrupt(info->tm, "btree internal node %llu has no entries", (ull)b);
	return 0;
}

/* Read-lock B as the next node of the path SP. */
int bt_read_node(struct btree_info *info, struct spine *sp, uint64_t b, uint32_t vs,
                 struct bm_block **out)
{
	int r = bt_spine_enter(info, sp, b);
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
