/* Zero-run coding and re-sealing of fuzzed metadata images; see image.h. */
#include "image.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "thin/metadata.h"
#include "thin/superblock.h"
#include "reuse_dev.h"

size_t fi_decode(const uint8_t *in, size_t len, uint8_t *img, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o < cap;) {
		if (in[i]) {
			img[o++] = in[i++];
			continue;
		}
		size_t run = 1;
		if (i + 2 < len)
			run = ((size_t)in[i + 1] | (size_t)in[i + 2] << 8) + 1;
		i += 3;
		o += run < cap - o ? run : cap - o; /* IMG is zero already */
	}
	return o;
}

size_t fi_encode(const uint8_t *img, size_t len, uint8_t *out, size_t cap)
{
	while (len && !img[len - 1])
		len--;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		if (img[i]) {
			if (o + 1 > cap)
				return 0;
			out[o++] = img[i++];
			continue;
		}
		size_t run = 0;
		while (i + run < len && !img[i + run] && run < 65536)
			run++;
		if (o + 3 > cap)
			return 0;
		out[o++] = 0;
		out[o++] = (uint8_t)((run - 1) & 0xff);
		out[o++] = (uint8_t)((run - 1) >> 8);
		i += run;
	}
	return o;
}

static void seal(uint8_t *blk, uint32_t xor_const)
{
	le32_put(blk, tp_block_csum(blk, TP_BLOCK_SIZE, xor_const));
}

static bool is_superblock(const uint8_t *blk)
{
	return le64_get(blk + 32) == THIN_SUPERBLOCK_MAGIC;
}

void fi_reseal(uint8_t *img, size_t len)
{
	uint64_t nr = len / TP_BLOCK_SIZE;
	if (!nr)
		return;
	uint64_t index = UINT64_MAX, held = UINT64_MAX;
	if (is_superblock(img)) {
		struct thin_superblock sb;
		thin_sb_unpack(img, &sb);
		struct sm_root mroot;
		sm_root_unpack(sb.metadata_sm_root, &mroot);
		index = mroot.bitmap_root;
		held = sb.held_root;
	}
	for (uint64_t b = 0; b < nr; b++) {
		uint8_t *blk = img + b * TP_BLOCK_SIZE;
		uint32_t flags = le32_get(blk + 4);
		if ((b == 0 || b == held) && is_superblock(blk))
			seal(blk, TP_SUPERBLOCK_CSUM_XOR);
		else if (b == index)
			seal(blk, TP_INDEX_CSUM_XOR);
		else if (flags == BTREE_INTERNAL_NODE || flags == BTREE_LEAF_NODE)
			seal(blk, TP_BTREE_CSUM_XOR);
		else if (b && le64_get(blk + 8) == b)
			seal(blk, TP_BITMAP_CSUM_XOR);
	}
}

int fi_meta_dev(const uint8_t *in, size_t len, unsigned flags, struct tp_dev **out)
{
	*out = fr_dev(FR_META, FI_META_BYTES, FI_META_BYTES);
	if (!*out)
		return -ENOMEM;
	uint8_t *img = fr_bytes(*out);
	size_t n = fi_decode(in, len, img, FI_META_BYTES);
	fr_dirty(*out, 0, n);
	if (!(flags & FI_RAW))
		fi_reseal(img, n);
	return 0;
}
