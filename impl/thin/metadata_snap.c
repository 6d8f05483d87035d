/* The metadata snapshot (reserve/release_metadata_snap): a shadow of the
 * superblock holding references to the mapping and details trees, which
 * thin_dump --metadata-snap reads while the pool runs. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pdata/transaction_manager.h"
#include "thin/metadata_internal.h"
#include "thin/superblock.h"

uint64_t tmd_metadata_snap(const struct tmd *md) { return md->sb.held_root; }

int tmd_reserve_metadata_snap(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	if (md->sb.held_root)
		return tmd_fail(md, -EBUSY,
			        "a metadata snapshot already exists: release it before taking another");
	/* The copy must describe the current roots, so commit first. */
	r = tmd_commit(md);
	if (r)
		return r;
	r = tm_inc(md->tm, THIN_SUPERBLOCK_LOCATION);
	if (r)
		return tmd_op_result(md, r, "reserve_metadata_snap");
	struct bm_block *copy;
	bool inc;
	r = tm_shadow_block(md->tm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &copy, &inc);
	if (r)
		return tmd_op_result(md, r, "reserve_metadata_snap");
	uint8_t *d = bm_block_data(copy);
	memset(d + 64, 0, 2 * SM_ROOT_FIELD_SIZE); /* the copy is not a usable pool */
	uint64_t held = bm_block_location(copy);
	uint64_t mroot = le64_get(d + 320), droot = le64_get(d + 328);
	tm_unlock(md->tm, copy);
	r = tm_inc(md->tm, mroot);
	if (!r)
		r = tm_inc(md->tm, droot);
	if (r)
		return tmd_op_result(md, r, "reserve_metadata_snap");
	md->sb.held_root = held;
	md->changed = true;
	return 0;
}

int tmd_release_metadata_snap(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	uint64_t held = md->sb.held_root;
	if (!held)
		return tmd_fail(md, -EINVAL, "there is no metadata snapshot to release");
	struct bm_block *blk;
	r = tm_read_lock(md->tm, held, &thin_sb_validator, &blk);
	if (r)
		return tmd_op_result(md, r, "release_metadata_snap");
	struct thin_superblock copy;
	thin_sb_unpack(bm_block_data(blk), &copy);
	tm_unlock(md->tm, blk);
	r = btree_del(&md->info, copy.data_mapping_root);
	if (!r)
		r = btree_del(&md->details_info, copy.device_details_root);
	if (!r)
		r = tm_dec(md->tm, held);
	if (r)
		return tmd_op_result(md, r, "release_metadata_snap");
	md->sb.held_root = 0;
	md->changed = true;
	return 0;
}

