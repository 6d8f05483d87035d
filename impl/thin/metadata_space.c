/* Data blocks (allocation and reference counts in the data space map),
 * the space maps' sizes, and growing the data and metadata devices. */
#include <errno.h>

#include "pdata/block_manager.h"
#include "pdata/format.h"
#include "pdata/space_map.h"
#include "thin/metadata_internal.h"

/* ---- data blocks ---- */

int tmd_alloc_data_block(struct tmd *md, uint64_t *b)
{
	int r = writable(md);
	if (r)
		return r;
	r = sm_disk_new_block(md->dsm, b);
	if (r == -ENOSPC)
		return tmd_fail(md, r, "out of data space");
	if (r)
		return tmd_op_result(md, r, "allocating a data block");
	md->changed = true;
	return 0;
}

int tmd_data_inc(struct tmd *md, uint64_t b)
{
	int r = writable(md);
	if (!r)
		r = sm_disk_inc(md->dsm, b);
	if (!r)
		md->changed = true;
	return r == -ERANGE ? tmd_fail(md, -EINVAL, "data block %llu out of range",
				       (unsigned long long)b)
			    : tmd_op_result(md, r, "data block inc");
}

int tmd_data_dec(struct tmd *md, uint64_t b)
{
	int r = writable(md);
	if (!r)
		r = sm_disk_dec(md->dsm, b);
	if (!r)
		md->changed = true;
	return tmd_op_result(md, r, "data block dec");
}

int tmd_data_count(struct tmd *md, uint64_t b, uint32_t *count)
{
	return tmd_op_result(md, sm_disk_get_count(md->dsm, b, count), "data block count");
}

uint64_t tmd_nr_data_blocks(const struct tmd *md) { return sm_disk_nr_blocks(md->dsm); }
uint64_t tmd_nr_free_data_blocks(const struct tmd *md) { return sm_disk_nr_free(md->dsm); }
uint64_t tmd_nr_metadata_blocks(const struct tmd *md) { return sm_meta_nr_blocks(md->msm); }
uint64_t tmd_nr_free_metadata_blocks(const struct tmd *md) { return sm_meta_nr_free(md->msm); }

uint64_t tmd_metadata_reserve(const struct tmd *md)
{
	uint64_t tenth = sm_meta_nr_blocks(md->msm) / 10;
	return tenth < 4096 ? tenth : 4096;
}

int tmd_resize_data(struct tmd *md, uint64_t nr_blocks)
{
	int r = writable(md);
	if (r)
		return r;
	if (nr_blocks < sm_disk_nr_blocks(md->dsm))
		return tmd_fail(md, -EINVAL, "cannot shrink the data device from %llu to %llu blocks",
			        (unsigned long long)sm_disk_nr_blocks(md->dsm),
			        (unsigned long long)nr_blocks);
	if (nr_blocks > THIN_MAX_DATA_BLOCK)
		return tmd_fail(md, -EINVAL, "%llu data blocks exceed the format's 2^40 limit",
			        (unsigned long long)nr_blocks);
	r = sm_disk_extend(md->dsm, nr_blocks);
	if (r)
		return tmd_op_result(md, r, "resizing the data space map");
	md->changed = true;
	return 0;
}

int tmd_resize_metadata(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	r = bm_refresh_size(md->bm);
	if (r)
		return tmd_op_result(md, r, "reading the metadata device size");
	uint64_t n = bm_nr_blocks(md->bm);
	if (n > SM_METADATA_MAX_BLOCKS)
		n = SM_METADATA_MAX_BLOCKS;
	if (n < sm_meta_nr_blocks(md->msm))
		return tmd_fail(md, -EINVAL, "the metadata device shrank below its space map (%llu blocks)",
			        (unsigned long long)sm_meta_nr_blocks(md->msm));
	r = sm_meta_extend(md->msm, n);
	if (r)
		return tmd_op_result(md, r, "resizing the metadata space map");
	md->sb.metadata_nr_blocks = n;
	md->changed = true;
	return 0;
}

