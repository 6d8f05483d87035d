#include "pdata/format.h"

#include <errno.h>
#include <stdio.h>

#include "pdata/crc32c.h"
#include "pdata/endian.h"

void sm_root_pack(const struct sm_root *r, uint8_t out[SM_ROOT_SIZE])
{
	le64_put(out, r->nr_blocks);
	le64_put(out + 8, r->nr_allocated);
	le64_put(out + 16, r->bitmap_root);
	le64_put(out + 24, r->ref_count_root);
}

void sm_root_unpack(const uint8_t in[SM_ROOT_SIZE], struct sm_root *r)
{
	r->nr_blocks = le64_get(in);
	r->nr_allocated = le64_get(in + 8);
	r->bitmap_root = le64_get(in + 16);
	r->ref_count_root = le64_get(in + 24);
}

void sm_index_entry_pack(const struct sm_index_entry *ie, uint8_t out[SM_INDEX_ENTRY_SIZE])
{
	le64_put(out, ie->blocknr);
	le32_put(out + 8, ie->nr_free);
	le32_put(out + 12, ie->none_free_before);
}

void sm_index_entry_unpack(const uint8_t in[SM_INDEX_ENTRY_SIZE], struct sm_index_entry *ie)
{
	ie->blocknr = le64_get(in);
	ie->nr_free = le32_get(in + 8);
	ie->none_free_before = le32_get(in + 12);
}

unsigned sm_bitmap_get(const void *bitmap_block, uint32_t i)
{
	const uint8_t *w = (const uint8_t *)bitmap_block + SM_BITMAP_HEADER + (i / 32) * 8;
	uint64_t word = le64_get(w);
	unsigned bit = (i % 32) * 2;
	return (unsigned)(((word >> bit) & 1) << 1 | ((word >> (bit + 1)) & 1));
}

void sm_bitmap_set(void *bitmap_block, uint32_t i, unsigned v)
{
	uint8_t *w = (uint8_t *)bitmap_block + SM_BITMAP_HEADER + (i / 32) * 8;
	uint64_t word = le64_get(w);
	unsigned bit = (i % 32) * 2;
	word &= ~(3ull << bit);
	word |= (uint64_t)((v >> 1) & 1) << bit | (uint64_t)(v & 1) << (bit + 1);
	le64_put(w, word);
}

uint32_t btree_max_entries(uint32_t value_size)
{
	uint32_t n = (TP_BLOCK_SIZE - BTREE_HEADER_SIZE) / (8 + value_size);
	return (n / 3) * 3;
}

/* Common shape of btree nodes, bitmaps and the metadata index: csum at 0,
 * blocknr at 8. */
static void seal(void *data, uint64_t b, uint32_t xor_const)
{
	le64_put((uint8_t *)data + 8, b);
	le32_put(data, tp_block_csum(data, TP_BLOCK_SIZE, xor_const));
}

static int check_sealed(const void *data, uint64_t b, uint32_t xor_const, char *err, size_t len)
{
	uint64_t where = le64_get((const uint8_t *)data + 8);
	if (where != b) {
		snprintf(err, len, "blocknr field says %llu (block written to the wrong place)",
			 (unsigned long long)where);
		return -EILSEQ;
	}
	uint32_t want = tp_block_csum(data, TP_BLOCK_SIZE, xor_const);
	uint32_t got = le32_get(data);
	if (want != got) {
		snprintf(err, len, "bad checksum (stored %u, computed %u)", got, want);
		return -EILSEQ;
	}
	return 0;
}

static void btree_prepare(void *data, uint64_t b) { seal(data, b, TP_BTREE_CSUM_XOR); }

static int btree_check(const void *data, uint64_t b, char *err, size_t len)
{
	int r = check_sealed(data, b, TP_BTREE_CSUM_XOR, err, len);
	if (r)
		return r;
	const uint8_t *p = data;
	uint32_t flags = le32_get(p + 4), nr = le32_get(p + 16), max = le32_get(p + 20),
		 vs = le32_get(p + 24);
	if (flags != BTREE_INTERNAL_NODE && flags != BTREE_LEAF_NODE) {
		snprintf(err, len, "node flags %u are neither internal nor leaf", flags);
		return -EILSEQ;
	}
	if (vs == 0 || vs > 1024 || max != btree_max_entries(vs)) {
		snprintf(err, len, "max_entries %u does not match value size %u (want %u)", max,
			 vs, vs ? btree_max_entries(vs) : 0);
		return -EILSEQ;
	}
	if (nr > max) {
		snprintf(err, len, "nr_entries %u exceeds max_entries %u", nr, max);
		return -EILSEQ;
	}
	return 0;
}

static void bitmap_prepare(void *data, uint64_t b) { seal(data, b, TP_BITMAP_CSUM_XOR); }

static int bitmap_check(const void *data, uint64_t b, char *err, size_t len)
{
	return check_sealed(data, b, TP_BITMAP_CSUM_XOR, err, len);
}

static void index_prepare(void *data, uint64_t b) { seal(data, b, TP_INDEX_CSUM_XOR); }

static int index_check(const void *data, uint64_t b, char *err, size_t len)
{
	return check_sealed(data, b, TP_INDEX_CSUM_XOR, err, len);
}

const struct bm_validator tp_btree_validator = {"btree node", btree_prepare, btree_check};
const struct bm_validator tp_bitmap_validator = {"space map bitmap", bitmap_prepare,
						 bitmap_check};
const struct bm_validator tp_index_validator = {"metadata space map index", index_prepare,
						index_check};
