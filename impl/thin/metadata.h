/* Thin-pool metadata: the superblock, the device details tree, the two-level
 * mapping tree (device id -> virtual block -> data block + time), the data and
 * metadata space maps, the pool time and transaction id, and the metadata
 * snapshot — the same operations, semantics and on-disk result as Linux
 * drivers/md/dm-thin-metadata.c.
 *
 * Every call that can fail returns 0 or a negative errno; tmd_error() then
 * holds a sentence naming the problem. Changes become durable at
 * tmd_commit(); tmd_abort() drops them and reloads the committed state. */
#ifndef THINP_THIN_METADATA_H
#define THINP_THIN_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/dev.h"
#include "pdata/block_manager.h"

#define THIN_SUPERBLOCK_MAGIC 27022010ull
#define THIN_VERSION 2u
#define THIN_MAX_DEV_ID ((1ull << 24) - 1)
#define THIN_MAX_TIME ((1u << 24) - 1)
#define THIN_MIN_BLOCK_SECTORS 128u
#define THIN_MAX_BLOCK_SECTORS 2097152u
#define THIN_MAX_DATA_BLOCK ((1ull << 40) - 1)
#define THIN_SB_FLAG_NEEDS_CHECK 1u
#define THIN_DEFAULT_CACHE_BLOCKS 4096u /* 16 MiB */

struct tmd;

struct thin_details {
	uint64_t mapped_blocks;
	uint64_t transaction_id;     /* pool transaction id when the device was created */
	uint32_t creation_time;
	uint32_t snapshotted_time;
};

struct thin_mapping {
	uint64_t data_block;
	uint32_t time;
	bool shared; /* time < the device's snapshotted_time: a write must copy */
};

/* Superblock fields that describe the pool as a whole. */
struct thin_sb_info {
	uint8_t uuid[16];
	uint32_t flags;
	uint32_t version;
	uint32_t time;
	uint64_t transaction_id;
	uint64_t held_root;
	uint32_t data_block_size; /* sectors */
	uint64_t nr_data_blocks;
	uint64_t metadata_nr_blocks;
};

struct tmd_open_args {
	struct tp_dev *meta;       /* required */
	struct tp_dev *data;       /* flushed before each commit; may be NULL */
	size_t cache_blocks;       /* 0 = THIN_DEFAULT_CACHE_BLOCKS */
	bool read_only;
};

/* Write an empty pool's metadata and open it. DATA_BLOCK_SECTORS must be
 * 128..2097152 and a multiple of 128. */
int tmd_format(const struct tmd_open_args *a, uint32_t data_block_sectors,
	       uint64_t nr_data_blocks, struct tmd **out, char *err, size_t errlen);
/* Open existing metadata; refuses a bad superblock with a message in ERR. */
int tmd_open(const struct tmd_open_args *a, struct tmd **out, char *err, size_t errlen);
/* Commit (unless read-only or failed) and free everything. */
int tmd_close(struct tmd *md);
/* Free everything without committing. */
void tmd_close_nocommit(struct tmd *md);

int tmd_commit(struct tmd *md);
/* tmd_commit in three steps, so that lookups from cached metadata (tmd_lookup_peek) can go
 * on during the commit's IO. The caller runs the prepare and the finish with every other
 * call on MD excluded, and the IO with nothing beside it but tmd_lookup_peek callers; no
 * other call on MD between the prepare and the finish. A failed prepare needs no IO or
 * finish; a failed IO is reported again by the finish, which must still run. */
int tmd_commit_prepare(struct tmd *md);
int tmd_commit_io(struct tmd *md);
int tmd_commit_finish(struct tmd *md);
int tmd_abort(struct tmd *md);
bool tmd_changed(const struct tmd *md);
const char *tmd_error(const struct tmd *md);

int tmd_create_thin(struct tmd *md, uint64_t dev);
int tmd_create_snap(struct tmd *md, uint64_t dev, uint64_t origin);
int tmd_delete_thin(struct tmd *md, uint64_t dev);
/* *exists tells whether DEV is there; a read error is returned, not taken for absence. */
int tmd_device_exists(struct tmd *md, uint64_t dev, bool *exists);
/* All device ids, ascending; *ids is malloc'ed. */
int tmd_list_devices(struct tmd *md, uint64_t **ids, size_t *nr);

int tmd_set_transaction_id(struct tmd *md, uint64_t current, uint64_t next);
uint64_t tmd_transaction_id(const struct tmd *md);

int tmd_reserve_metadata_snap(struct tmd *md);
int tmd_release_metadata_snap(struct tmd *md);
uint64_t tmd_metadata_snap(const struct tmd *md); /* 0 = none */

int tmd_get_details(struct tmd *md, uint64_t dev, struct thin_details *d);
/* Overwrite a device's details (restore from XML). */
int tmd_set_details(struct tmd *md, uint64_t dev, const struct thin_details *d);

/* -ENODATA when unmapped. */
int tmd_lookup(struct tmd *md, uint64_t dev, uint64_t vblock, struct thin_mapping *m);
/* tmd_lookup by threads side by side, each excluding every other tmd call but not one
 * another: from cached metadata only, changing nothing; -EAGAIN where tmd_lookup would
 * read a block or load the device's details (or report an error). */
int tmd_lookup_peek(struct tmd *md, uint64_t dev, uint64_t vblock, struct thin_mapping *m);
/* First mapped block >= vblock: -ENODATA when none. */
int tmd_lookup_next(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t *found,
		    struct thin_mapping *m);
/* Map vblock to data_block at the current pool time. The data block's
 * reference must already be held (tmd_alloc_data_block or tmd_data_inc);
 * an overwritten mapping drops its old block's reference. */
int tmd_insert(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block);
int tmd_insert_timed(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block,
		     uint32_t time);
int tmd_remove(struct tmd *md, uint64_t dev, uint64_t vblock);
int tmd_remove_range(struct tmd *md, uint64_t dev, uint64_t begin, uint64_t end,
		     uint64_t *nr_removed);
/* Highest mapped virtual block: -ENODATA if none. */
int tmd_highest_mapped(struct tmd *md, uint64_t dev, uint64_t *vblock);

typedef int (*tmd_mapping_fn)(void *ctx, uint64_t vblock, uint64_t data_block, uint32_t time);
int tmd_walk_mappings(struct tmd *md, uint64_t dev, tmd_mapping_fn fn, void *ctx);

int tmd_alloc_data_block(struct tmd *md, uint64_t *b);
int tmd_data_inc(struct tmd *md, uint64_t b);
int tmd_data_dec(struct tmd *md, uint64_t b);
int tmd_data_count(struct tmd *md, uint64_t b, uint32_t *count);

uint64_t tmd_nr_data_blocks(const struct tmd *md);
uint64_t tmd_nr_free_data_blocks(const struct tmd *md);
uint64_t tmd_nr_metadata_blocks(const struct tmd *md);
uint64_t tmd_nr_free_metadata_blocks(const struct tmd *md);
/* Metadata blocks the kernel keeps back from its free count (status,
 * out-of-metadata-space): min(4096, total / 10) — __set_metadata_reserve(). */
uint64_t tmd_metadata_reserve(const struct tmd *md);
int tmd_resize_data(struct tmd *md, uint64_t nr_blocks);
/* Grow to the metadata device's current size. */
int tmd_resize_metadata(struct tmd *md);

void tmd_sb_info(const struct tmd *md, struct thin_sb_info *info);
/* For restore: time, transaction id, uuid, flags and version as given. */
int tmd_set_sb_fields(struct tmd *md, const uint8_t uuid[16], uint32_t time, uint64_t trans_id,
		      uint32_t flags, uint32_t version);
/* Block-manager cache statistics (memory use is peak * 4 KiB). */
void tmd_cache_stats(const struct tmd *md, struct bm_stats *st);
int tmd_set_needs_check(struct tmd *md);
bool tmd_needs_check(const struct tmd *md);

#endif
