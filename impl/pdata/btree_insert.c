/* Btree insertion: proactive splits on the way down (see btree.h). */
#include "pdata/btree_internal.h"

#include <errno.h>
#include <string.h>

/* ---- insert ---- */

/* The full root becomes an internal node over two new halves; its location
 * does not change. */
static int split_beneath(struct btree_info *info, struct bm_block *root_blk)
{
	uint8_t *d = bm_block_data(root_blk);
	uint32_t nr = n_nr(d), nr_left = nr / 2, nr_right = nr - nr_left;
	struct bm_block *l, *r_;
	int r = bt_new_node(info, n_flags(d), n_vs(d), &l);
	if (r)
		return r;
	r = bt_new_node(info, n_flags(d), n_vs(d), &r_);
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
	int r = bt_new_node(info, n_flags(cd), n_vs(cd), &sib);
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
int bt_insert_raw(struct btree_info *info, unsigned level, uint64_t root, uint64_t key,
                  const void *value, uint64_t *new_root, uint64_t *leaf, uint32_t *leaf_index,
                  int *inserted)
{
	struct spine sp;
	bt_spine_init(&sp);
	struct bm_block *blk;
	int r = bt_shadow_path_node(info, level, &sp, root, &blk);
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
						r = bt_value_dec(info, level, cval_ptr(d, at));
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
					r = bt_empty_level(info, level + 1, &sub_root);
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
		r = bt_shadow_path_node(info, level, &sp, val64(d, (uint32_t)i), &child);
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
int bt_set_leaf_value(struct btree_info *info, uint64_t leaf, uint32_t index, uint64_t sub_root)
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
		return tm_corrupt(
		        info->tm,
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
		return bt_insert_raw(info, level, root, keys[level], value, new_root, &leaf, &idx,
		                     inserted);
	int r = bt_insert_raw(info, level, root, keys[level], NULL, new_root, &leaf, &idx, &ins);
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
	return sub_new == le64_get(v) ? 0 : bt_set_leaf_value(info, leaf, idx, sub_new);
}

int btree_insert(struct btree_info *info, uint64_t root, const uint64_t *keys, const void *value,
                 uint64_t *new_root, int *inserted)
{
	int dummy;
	return insert_level(info, 0, root, keys, value, new_root, inserted ? inserted : &dummy);
}
