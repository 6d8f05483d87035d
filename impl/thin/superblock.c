#include "thin/superblock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "thin/metadata.h"

void thin_sb_unpack(const void *block, struct thin_superblock *sb)
{
	const uint8_t *p = block;
	sb->flags = le32_get(p + 4);
	sb->blocknr = le64_get(p + 8);
	memcpy(sb->uuid, p + 16, 16);
	sb->magic = le64_get(p + 32);
	sb->version = le32_get(p + 40);
	sb->time = le32_get(p + 44);
	sb->trans_id = le64_get(p + 48);
	sb->held_root = le64_get(p + 56);
	memcpy(sb->data_sm_root, p + 64, SM_ROOT_FIELD_SIZE);
	memcpy(sb->metadata_sm_root, p + 192, SM_ROOT_FIELD_SIZE);
	sb->data_mapping_root = le64_get(p + 320);
	sb->device_details_root = le64_get(p + 328);
	sb->data_block_size = le32_get(p + 336);
	sb->metadata_block_size = le32_get(p + 340);
	sb->metadata_nr_blocks = le64_get(p + 344);
	sb->compat_flags = le32_get(p + 352);
	sb->compat_ro_flags = le32_get(p + 356);
	sb->incompat_flags = le32_get(p + 360);
}

void thin_sb_pack(const struct thin_superblock *sb, void *block)
{
	uint8_t *p = block;
	le32_put(p + 4, sb->flags);
	le64_put(p + 8, sb->blocknr);
	memcpy(p + 16, sb->uuid, 16);
	le64_put(p + 32, sb->magic);
	le32_put(p + 40, sb->version);
	le32_put(p + 44, sb->time);
	le64_put(p + 48, sb->trans_id);
	le64_put(p + 56, sb->held_root);
	memcpy(p + 64, sb->data_sm_root, SM_ROOT_FIELD_SIZE);
	memcpy(p + 192, sb->metadata_sm_root, SM_ROOT_FIELD_SIZE);
	le64_put(p + 320, sb->data_mapping_root);
	le64_put(p + 328, sb->device_details_root);
	le32_put(p + 336, sb->data_block_size);
	le32_put(p + 340, sb->metadata_block_size);
	le64_put(p + 344, sb->metadata_nr_blocks);
	le32_put(p + 352, sb->compat_flags);
	le32_put(p + 356, sb->compat_ro_flags);
	le32_put(p + 360, sb->incompat_flags);
}

static void sb_prepare(void *data, uint64_t b)
{
	le64_put((uint8_t *)data + 8, b);
	le32_put(data, tp_block_csum(data, TP_BLOCK_SIZE, TP_SUPERBLOCK_CSUM_XOR));
}

static int sb_check(const void *data, uint64_t b, char *err, size_t len)
{
	const uint8_t *p = data;
	uint32_t want = tp_block_csum(data, TP_BLOCK_SIZE, TP_SUPERBLOCK_CSUM_XOR);
	if (le32_get(p) != want) {
		/* dm-thin keeps no second superblock, so the only way back is a copy */
		snprintf(err, len,
			 "bad checksum (stored %u, computed %u): not thin-pool metadata, or damaged "
			 "(a torn write?); there is no second copy: restore the metadata from a "
			 "dump (thinp restore or thin_restore)",
			 le32_get(p), want);
		return -EILSEQ;
	}
	if (le64_get(p + 8) != b) {
		snprintf(err, len, "blocknr field says %llu, expected %llu",
			 (unsigned long long)le64_get(p + 8), (unsigned long long)b);
		return -EILSEQ;
	}
	if (le64_get(p + 32) != THIN_SUPERBLOCK_MAGIC) {
		snprintf(err, len, "bad magic %llu (expected %llu)",
			 (unsigned long long)le64_get(p + 32), THIN_SUPERBLOCK_MAGIC);
		return -EILSEQ;
	}
	return 0;
}

const struct bm_validator thin_sb_validator = {"superblock", sb_prepare, sb_check};

void thin_details_pack(const struct thin_details *d, uint8_t out[24])
{
	le64_put(out, d->mapped_blocks);
	le64_put(out + 8, d->transaction_id);
	le32_put(out + 16, d->creation_time);
	le32_put(out + 20, d->snapshotted_time);
}

void thin_details_unpack(const uint8_t in[24], struct thin_details *d)
{
	d->mapped_blocks = le64_get(in);
	d->transaction_id = le64_get(in + 8);
	d->creation_time = le32_get(in + 16);
	d->snapshotted_time = le32_get(in + 20);
}
