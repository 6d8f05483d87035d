/* Space maps: reference counts of metadata blocks (sm_meta) and of data
 * blocks (sm_disk), in the dm-persistent-data on-disk format.
 *
 * sm_meta keeps the metadata device's counts in memory (at most 4,161,600
 * blocks, the format's limit) plus a bitset of blocks referenced by the
 * committed state; at commit it writes its bitmaps, its single index block
 * and its overflow btree, all of which it counts itself.
 *
 * sm_disk keeps the data device's counts on disk: bitmap blocks shadowed
 * through the transaction manager, an index btree (bitmap number -> index
 * entry) and an overflow btree for counts >= 3. Only the index entries (16
 * bytes per 16320 data blocks) live in memory. */
#ifndef THINP_PDATA_SPACE_MAP_H
#define THINP_PDATA_SPACE_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "pdata/btree.h"
#include "pdata/format.h"
#include "pdata/transaction_manager.h"

/* ---- metadata space map ---- */
struct sm_meta;

/* A fresh map of NR_BLOCKS, all free. Its on-disk structures are created by
 * the first commit. */
int sm_meta_create(uint64_t nr_blocks, struct sm_meta **out);
/* Load the map described by ROOT (superblock bytes) through BM. The
 * overflow counts are loaded by sm_meta_load_overflow once a tm exists. */
int sm_meta_open(struct bm *bm, const uint8_t root[SM_ROOT_SIZE], struct sm_meta **out);
int sm_meta_load_overflow(struct sm_meta *sm, struct tm *tm);
void sm_meta_destroy(struct sm_meta *sm);

uint64_t sm_meta_nr_blocks(const struct sm_meta *sm);
uint64_t sm_meta_nr_free(const struct sm_meta *sm);
uint32_t sm_meta_get_count(const struct sm_meta *sm, uint64_t b);
/* True if B is referenced now but was free at the last commit. */
bool sm_meta_is_new(const struct sm_meta *sm, uint64_t b);
int sm_meta_inc(struct sm_meta *sm, uint64_t b);
int sm_meta_dec(struct sm_meta *sm, uint64_t b);
/* Allocate a block free now and at the last commit; -ENOSPC if none. */
int sm_meta_new_block(struct sm_meta *sm, uint64_t *b);
/* Grow to NR_BLOCKS (<= SM_METADATA_MAX_BLOCKS). */
int sm_meta_extend(struct sm_meta *sm, uint64_t nr_blocks);
/* Write the map out through TM and produce its root. Afterwards the current
 * state is the committed state (call sm_meta_committed once the superblock
 * is durable). */
int sm_meta_write(struct sm_meta *sm, struct tm *tm, uint8_t root[SM_ROOT_SIZE]);
void sm_meta_committed(struct sm_meta *sm);

/* ---- data space map ---- */
struct sm_disk;

int sm_disk_create(struct tm *tm, uint64_t nr_blocks, struct sm_disk **out);
int sm_disk_open(struct tm *tm, const uint8_t root[SM_ROOT_SIZE], struct sm_disk **out);
void sm_disk_destroy(struct sm_disk *sm);

uint64_t sm_disk_nr_blocks(const struct sm_disk *sm);
uint64_t sm_disk_nr_free(const struct sm_disk *sm);
int sm_disk_get_count(struct sm_disk *sm, uint64_t b, uint32_t *count);
int sm_disk_set_count(struct sm_disk *sm, uint64_t b, uint32_t count);
int sm_disk_inc(struct sm_disk *sm, uint64_t b);
int sm_disk_dec(struct sm_disk *sm, uint64_t b);
int sm_disk_new_block(struct sm_disk *sm, uint64_t *b);
int sm_disk_extend(struct sm_disk *sm, uint64_t nr_blocks);
/* Write changed index entries, produce the root; sm_disk_committed after
 * the superblock is durable. */
int sm_disk_write(struct sm_disk *sm, uint8_t root[SM_ROOT_SIZE]);
int sm_disk_committed(struct sm_disk *sm);

#endif
