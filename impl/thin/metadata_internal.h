/* Thin-pool metadata's insides, shared by its files (not installed):
 *   metadata.c           open, format, commit, abort, close; btree value types; superblock
 *                        fields (transaction id, needs_check, restore's fields)
 *   metadata_devices.c   device details and the cache of devices touched in a transaction;
 *                        create_thin, create_snap, delete, list
 *   metadata_mappings.c  the two-level mapping tree: lookup, insert, remove, walk
 *   metadata_space.c     data block allocation and counts, space map sizes, resize
 *   metadata_snap.c      reserve/release of the metadata snapshot */
#ifndef THINP_THIN_METADATA_INTERNAL_H
#define THINP_THIN_METADATA_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdata/btree.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

/* Details of a device touched in the open transaction. */
struct tmd_dev {
	uint64_t id;
	struct thin_details d;
	bool changed;
};

/* A commit between tmd_commit_prepare and tmd_commit_finish. */
struct tmd_commit_state {
	bool active;               /* prepared: the IO and the finish have work */
	struct thin_superblock sb; /* the superblock being committed */
	uint8_t *sb_block;         /* it packed and sealed (4 KiB, aligned for O_DIRECT) */
	struct tp_flush_job data_flush;
	int io_result;
	char err[256]; /* the IO's failure, set where md->err may not be written */
};

struct tmd {
	struct tmd_open_args args;
	struct bm *bm;
	struct sm_meta *msm;
	struct tm *tm;
	struct sm_disk *dsm;

	struct btree_info info;         /* 2 levels: dev, vblock -> block/time */
	struct btree_info tl_info;      /* dev -> subtree root */
	struct btree_info bl_info;      /* vblock -> block/time */
	struct btree_info details_info; /* dev -> details */

	struct thin_superblock sb; /* in-core copy; roots below are current */
	uint64_t root, details_root;

	struct tmd_dev *devs;
	size_t nr_devs, cap_devs;
	/* open-addressing index over devs (slot = index + 1, 0 = empty), so
	 * touching many devices in one transaction stays linear */
	uint32_t *dev_slots;
	size_t nr_slots;

	struct tmd_commit_state commit;

	bool changed;
	bool failed; /* a metadata operation failed: only abort is allowed */
	char err[512];
};

/* Set the error sentence; returns R. */
int tmd_fail(struct tmd *md, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* R, after marking the metadata failed (and saying why) unless R is 0, -ENODATA or -EEXIST. */
int tmd_op_result(struct tmd *md, int r, const char *what);
/* The cached details of device ID, read from the details tree on first use; a device
 * unknown to the tree is -ENODATA, or new (changed) details when CREATE. */
int tmd_get_dev(struct tmd *md, uint64_t id, bool create, struct tmd_dev **out);
/* Device ID if its details are loaded already, else NULL (changes nothing). */
struct tmd_dev *tmd_find_dev(struct tmd *md, uint64_t id);

static inline int writable(struct tmd *md)
{
	if (md->args.read_only)
		return tmd_fail(md, -EROFS, "metadata is open read-only");
	if (md->failed)
		return tmd_fail(md, -EIO, "metadata operation failed earlier; abort the transaction first");
	return 0;
}

#endif
