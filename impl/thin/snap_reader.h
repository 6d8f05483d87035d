/* A metadata snapshot read directly, read-only: the superblock copy at held_root has
 * zeroed space-map roots, so it cannot be opened as a pool (tmd_open); its trees are
 * walked through a block manager of its own. Nothing here allocates or frees metadata
 * blocks, so the transaction manager needs no space map. The holder of a live pool keeps
 * the snapshot's blocks referenced, so they do not change under the reader. Used by the
 * snapshot dump (thin_dump -m) and the snapshot usage (thin_ls -m). */
#ifndef THIN_SNAP_READER_H
#define THIN_SNAP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdata/btree.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

struct tp_dev;

struct snap_dev {
	uint64_t id;
	uint64_t root; /* mapping subtree */
	bool has_details;
	struct thin_details d;
};

struct snap_reader {
	struct bm *bm;
	struct tm *tm;
	struct btree_info top, bottom, details;
	struct thin_superblock sb, held; /* the live superblock and the snapshot's copy */
	struct snap_dev *devs;           /* ascending ids, from the top-level mapping tree */
	size_t nr, cap;
	uint64_t details_orphan; /* a device with details but no mappings, if any */
	bool has_orphan;
	char err[512];
};

/* Read the superblock, the snapshot it holds (which must be SNAP_BLOCK unless that is 0),
 * the snapshot's device list and details. -ENOENT when there is no snapshot. ERR names
 * the problem; snap_reader_close() in every case. */
int snap_reader_open(struct snap_reader *s, struct tp_dev *meta, uint64_t snap_block, char *err,
                     size_t errlen);
void snap_reader_close(struct snap_reader *s);
struct snap_dev *snap_reader_find(struct snap_reader *s, uint64_t id);

/* The callbacks of a dump or usage source (CTX = the reader). */
int snap_reader_list(void *ctx, uint64_t **ids, size_t *nr);
int snap_reader_walk(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx);
const char *snap_reader_error(void *ctx);

#endif
