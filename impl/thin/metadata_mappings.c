/* The two-level mapping tree: device id -> virtual block -> data block and
 * the pool time it was written at (a block is shared when that time is older
 * than the device's snapshot time). */
#include <errno.h>
#include <stdbool.h>

#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/space_map.h"
#include "thin/metadata_internal.h"

/* ---- mappings ---- */

static uint64_t pack_bt(uint64_t b, uint32_t t) { return b << 24 | (t & THIN_MAX_TIME); }

static void set_mapping(const struct tmd_dev *td, const uint8_t v[8], struct thin_mapping *m)
{
	uint64_t x = le64_get(v);
	m->data_block = x >> 24;
	m->time = (uint32_t)(x & THIN_MAX_TIME);
	m->shared = td->d.snapshotted_time > m->time;
}

/* A mapping's value, found by a lookup, as the caller sees it: whether it is
 * shared depends on the device's snapshot time, not on the value alone. */
static int unpack_mapping(struct tmd *md, uint64_t dev, const uint8_t v[8], int r,
			  struct thin_mapping *m)
{
	if (r)
		return r == -ENODATA ? r : tmd_op_result(md, r, "lookup");
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, false, &td);
	if (r)
		return tmd_op_result(md, r, "lookup");
	set_mapping(td, v, m);
	return 0;
}

int tmd_lookup(struct tmd *md, uint64_t dev, uint64_t vblock, struct thin_mapping *m)
{
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	return unpack_mapping(md, dev, v, btree_lookup(&md->info, md->root, keys, v), m);
}

int tmd_lookup_peek(struct tmd *md, uint64_t dev, uint64_t vblock, struct thin_mapping *m)
{
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	int r = btree_lookup_peek(&md->info, md->root, keys, v);
	if (r)
		return r;
	const struct tmd_dev *td = tmd_find_dev(md, dev);
	if (!td)
		return -EAGAIN;
	set_mapping(td, v, m);
	return 0;
}

int tmd_lookup_next(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t *found,
		    struct thin_mapping *m)
{
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	return unpack_mapping(md, dev, v,
			      btree_lookup_next(&md->info, md->root, keys, found, v), m);
}

int tmd_insert_timed(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block,
		     uint32_t time)
{
	int r = writable(md);
	if (r)
		return r;
	if (data_block >= sm_disk_nr_blocks(md->dsm))
		return tmd_fail(md, -EINVAL, "data block %llu is beyond the data device (%llu blocks)",
			        (unsigned long long)data_block,
			        (unsigned long long)sm_disk_nr_blocks(md->dsm));
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return tmd_fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return tmd_op_result(md, r, "insert");
	uint64_t td_index = (uint64_t)(td - md->devs);
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	le64_put(v, pack_bt(data_block, time));
	int inserted = 0;
	r = btree_insert(&md->info, md->root, keys, v, &md->root, &inserted);
	if (r)
		return tmd_op_result(md, r, "insert");
	td = &md->devs[td_index];
	if (inserted)
		td->d.mapped_blocks++;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_insert(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block)
{
	return tmd_insert_timed(md, dev, vblock, data_block, md->sb.time);
}

int tmd_remove(struct tmd *md, uint64_t dev, uint64_t vblock)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, false, &td);
	if (r)
		return r == -ENODATA ? r : tmd_op_result(md, r, "remove");
	uint64_t keys[2] = {dev, vblock};
	r = btree_remove(&md->info, md->root, keys, &md->root);
	if (r)
		return r == -ENODATA ? r : tmd_op_result(md, r, "remove");
	td->d.mapped_blocks--;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_remove_range(struct tmd *md, uint64_t dev, uint64_t begin, uint64_t end,
		     uint64_t *nr_removed)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, false, &td);
	if (r)
		return r == -ENODATA ? tmd_fail(md, r, "device %llu does not exist",
					        (unsigned long long)dev)
				     : tmd_op_result(md, r, "remove_range");
	uint64_t keys[2] = {dev, 0}, n = 0;
	r = btree_remove_range(&md->info, md->root, keys, begin, end, &md->root, &n);
	td->d.mapped_blocks -= n;
	if (n) {
		td->changed = true;
		md->changed = true;
	}
	if (nr_removed)
		*nr_removed = n;
	return r ? tmd_op_result(md, r, "remove_range") : 0;
}

int tmd_highest_mapped(struct tmd *md, uint64_t dev, uint64_t *vblock)
{
	uint64_t keys[2] = {dev, 0};
	int r = btree_find_highest_key(&md->info, md->root, keys, vblock);
	return r && r != -ENODATA ? tmd_op_result(md, r, "highest mapped block") : r;
}

struct walk_ctx {
	tmd_mapping_fn fn;
	void *ctx;
	bool stopped; /* the callback returned nonzero: its value, not ours */
};

static int walk_one(void *ctx, uint64_t key, const void *value)
{
	struct walk_ctx *w = ctx;
	uint64_t x = le64_get(value);
	int r = w->fn(w->ctx, key, x >> 24, (uint32_t)(x & THIN_MAX_TIME));
	w->stopped = r != 0;
	return r;
}

int tmd_walk_mappings(struct tmd *md, uint64_t dev, tmd_mapping_fn fn, void *ctx)
{
	uint8_t v[8];
	int r = btree_lookup(&md->tl_info, md->root, &dev, v);
	if (r)
		return r == -ENODATA ? tmd_fail(md, r, "device %llu does not exist",
					        (unsigned long long)dev)
				     : tmd_op_result(md, r, "walk");
	struct walk_ctx w = {fn, ctx, false};
	r = btree_walk(&md->bl_info, le64_get(v), walk_one, &w);
	return r && !w.stopped ? tmd_op_result(md, r, "walk") : r;
}

