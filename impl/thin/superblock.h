/* The thin-pool superblock (metadata block 0): codec and validator. */
#ifndef THINP_THIN_SUPERBLOCK_H
#define THINP_THIN_SUPERBLOCK_H

#include <stdint.h>

#include "pdata/block_manager.h"
#include "pdata/format.h"

#define THIN_SUPERBLOCK_LOCATION 0u

struct thin_superblock {
	uint32_t flags;
	uint64_t blocknr;
	uint8_t uuid[16];
	uint64_t magic;
	uint32_t version;
	uint32_t time;
	uint64_t trans_id;
	uint64_t held_root;
	uint8_t data_sm_root[SM_ROOT_FIELD_SIZE];
	uint8_t metadata_sm_root[SM_ROOT_FIELD_SIZE];
	uint64_t data_mapping_root;
	uint64_t device_details_root;
	uint32_t data_block_size;
	uint32_t metadata_block_size;
	uint64_t metadata_nr_blocks;
	uint32_t compat_flags;
	uint32_t compat_ro_flags;
	uint32_t incompat_flags;
};

void thin_sb_unpack(const void *block, struct thin_superblock *sb);
/* Writes the fields; the rest of the block is left as it is (zero). */
void thin_sb_pack(const struct thin_superblock *sb, void *block);

/* Checks checksum, self-location and magic. */
extern const struct bm_validator thin_sb_validator;

/* Details tree values (24 bytes). */
struct thin_details;
void thin_details_pack(const struct thin_details *d, uint8_t out[24]);
void thin_details_unpack(const uint8_t in[24], struct thin_details *d);

#endif
