/* Per-thin usage of a metadata snapshot (thin_ls -m): the trees the superblock copy at
 * held_root names, read through a block manager of its own. The holder of a live pool
 * keeps those blocks referenced, so they do not change under the reader while the
 * snapshot is held; the rest of the metadata does, and is not read except the superblock
 * (the data device's size). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "pdata/format.h"
#include "thin/snap_reader.h"
#include "thin/thin_usage.h"

static int snap_details(void *ctx, uint64_t dev, struct thin_details *d)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_reader_find(s, dev);
	if (!sd || !sd->has_details) {
		snprintf(s->err, sizeof(s->err),
		         "the snapshot's details tree has no thin %" PRIu64 " (damaged metadata)",
		         dev);
		return -EUCLEAN;
	}
	*d = sd->d;
	return 0;
}

int thinp_thin_usage_snap(struct tp_dev *meta, uint64_t snap_block, struct thinp_thin_usage **out,
                          size_t *nr, uint32_t *block_sectors, char *err, size_t errlen)
{
	struct snap_reader s;
	*out = NULL;
	*nr = 0;
	int r = snap_reader_open(&s, meta, snap_block, err, errlen);
	if (r)
		goto out;
	/* the copy's own data space map root is zeroed: the live superblock gives the size,
	 * which only grows, so every block the snapshot maps is below it */
	struct sm_root dsm;
	sm_root_unpack(s.sb.data_sm_root, &dsm);
	const struct usage_source src = { &s,        snap_reader_list,  snap_details,
		                          snap_reader_walk, snap_reader_error, dsm.nr_blocks };
	r = thin_usage_count(&src, out, nr, err, errlen);
	*block_sectors = s.held.data_block_size;
out:
	snap_reader_close(&s);
	return r;
}
