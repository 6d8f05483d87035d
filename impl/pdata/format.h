/* On-disk constants of dm-persistent-data (Linux drivers/md/persistent-data)
 * and the validators for each block type. See docs/on-disk-format.md, sections
 * "Checksums and validators", "Btree nodes" and "Space maps". */
#ifndef THINP_PDATA_FORMAT_H
#define THINP_PDATA_FORMAT_H

#include <stdint.h>

#include "pdata/block_manager.h"

/* checksum xor constants per block type */
#define TP_SUPERBLOCK_CSUM_XOR 160774u
#define TP_BTREE_CSUM_XOR 121107u
#define TP_BITMAP_CSUM_XOR 240779u
#define TP_INDEX_CSUM_XOR 160478u

/* btree node header */
#define BTREE_INTERNAL_NODE 1u
#define BTREE_LEAF_NODE 2u
#define BTREE_HEADER_SIZE 32u

/* space-map bitmaps: 16-byte header then 2 bits per entry */
#define SM_BITMAP_HEADER 16u
#define SM_ENTRIES_PER_BITMAP ((TP_BLOCK_SIZE - SM_BITMAP_HEADER) * 4u) /* 16320 */
#define SM_INDEX_ENTRY_SIZE 16u
#define SM_MAX_METADATA_BITMAPS 255u
#define SM_METADATA_MAX_BLOCKS ((uint64_t)SM_MAX_METADATA_BITMAPS * SM_ENTRIES_PER_BITMAP)
#define SM_ROOT_SIZE 32u
#define SM_ROOT_FIELD_SIZE 128u

/* index_entry as stored on disk */
struct sm_index_entry {
	uint64_t blocknr;
	uint32_t nr_free;
	uint32_t none_free_before;
};

/* sm_root as stored on disk (first 32 bytes of a 128-byte superblock field) */
struct sm_root {
	uint64_t nr_blocks;
	uint64_t nr_allocated;
	uint64_t bitmap_root;
	uint64_t ref_count_root;
};

void sm_root_pack(const struct sm_root *r, uint8_t out[SM_ROOT_SIZE]);
void sm_root_unpack(const uint8_t in[SM_ROOT_SIZE], struct sm_root *r);
void sm_index_entry_pack(const struct sm_index_entry *ie, uint8_t out[SM_INDEX_ENTRY_SIZE]);
void sm_index_entry_unpack(const uint8_t in[SM_INDEX_ENTRY_SIZE], struct sm_index_entry *ie);

/* 2-bit bitmap entries: bit 2i is the high bit, 2i+1 the low bit of entry i
 * within each le64 word. */
unsigned sm_bitmap_get(const void *bitmap_block, uint32_t i);
void sm_bitmap_set(void *bitmap_block, uint32_t i, unsigned v);

extern const struct bm_validator tp_btree_validator;
extern const struct bm_validator tp_bitmap_validator;
extern const struct bm_validator tp_index_validator;

/* Canonical max_entries for a btree node with this value size. */
uint32_t btree_max_entries(uint32_t value_size);

#endif
