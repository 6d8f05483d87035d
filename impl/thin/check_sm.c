/* Strict checker: both space maps. The metadata space map's bitmaps are read
 * first (raw counts kept per block); after every tree was walked, the data
 * space map's bitmap counts are compared with the number of distinct leaves
 * mapping each block, the metadata counts with the pointers found, and
 * nr_free / none_free_before / nr_allocated with the bitmaps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "thin/check_internal.h"

static int ovf_push(struct ovf_vec *v, uint64_t b, uint32_t count)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		struct ovf_entry *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = (struct ovf_entry){ b, count };
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_ovf(const void *a, const void *b)
{
	uint64_t x = ((const struct ovf_entry *)a)->b, y = ((const struct ovf_entry *)b)->b;
	return x < y ? -1 : x > y;
}

void ck_dindex_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                    const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = le64_get(keys + 8 * i);
		struct sm_index_entry ie;
		sm_index_entry_unpack(vals + 16 * i, &ie);
		if (k >= c->nr_dbitmaps) {
			ck_fault(
			        c, F_SM,
			        "%s, leaf %llu: entry for bitmap %llu, but nr_blocks %llu needs only %llu bitmaps",
			        t->name, (unsigned long long)b, (unsigned long long)k,
			        (unsigned long long)c->dsm.nr_blocks,
			        (unsigned long long)c->nr_dbitmaps);
			continue;
		}
		char from[160];
		snprintf(from, sizeof(from), "the data space map index entry for bitmap %llu",
		         (unsigned long long)k);
		if (!ck_claim(c, ie.blocknr, K_DBITMAP, from)) {
			c->lost_meta = true;
			continue;
		}
		/* keys are checked to increase strictly, so each k is seen once */
		c->dindex[k] = ie;
		c->dindex_present[k] = 1;
	}
}

int ck_ovf_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr)
{
	struct ovf_vec *v = t->type == T_DOVF ? &c->dovf : &c->movf;
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = le64_get(keys + 8 * i);
		uint32_t n = le32_get(vals + 4 * i);
		if (n < 3)
			ck_fault(
			        c, F_SM,
			        "%s, leaf %llu: block %llu has count %u, but the overflow tree only holds counts >= 3",
			        t->name, (unsigned long long)b, (unsigned long long)k, n);
		int r = ovf_push(v, k, n);
		if (r)
			return r;
	}
	return 0;
}

/* Header checks; false if the node cannot be interpreted at all. */
/* ---- space maps ---- */

/* Per-bitmap bookkeeping both space maps share: free entries, first free,
 * entries set beyond nr_blocks. */
struct bitmap_stats {
	uint32_t in_range; /* entries that stand for real blocks */
	uint32_t nr_free;
	uint32_t first_free;
	uint64_t allocated;
};

static void check_index_entry(struct ctx *c, const char *sm_name, uint64_t i,
                              const struct sm_index_entry *ie, const struct bitmap_stats *st)
{
	/* The kernel starts a partial last bitmap with nr_free = 16320 and
	 * counts down from there; thin_restore uses the true remainder. */
	uint32_t kernel_free = st->nr_free + (CK_ENTRIES_PER_BITMAP - st->in_range);
	/* Understating free space only hides free blocks from the allocator
	 * (a leak); overstating it only sends the allocator searching in
	 * vain. Both are reported; the former is non-fatal like a leak, as
	 * is thin_restore 0.9.0's torn update of these counters. */
	if (ie->nr_free < st->nr_free && ie->nr_free != kernel_free)
		ck_leak(c, F_SM,
		        "%s bitmap %llu (block %llu): index entry nr_free %u, but the bitmap has %u free entries",
		        sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr,
		        ie->nr_free, st->nr_free);
	else if (ie->nr_free != st->nr_free && ie->nr_free != kernel_free)
		ck_fault(
		        c, F_SM,
		        "%s bitmap %llu (block %llu): index entry nr_free %u, but the bitmap has %u free entries",
		        sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr,
		        ie->nr_free, st->nr_free);
	if (ie->none_free_before > st->first_free)
		ck_leak(c, F_SM,
		        "%s bitmap %llu (block %llu): none_free_before %u, but entry %u is already free",
		        sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr,
		        ie->none_free_before, st->first_free);
}

/* Read and check one bitmap block; false if unusable. */
static bool load_bitmap(struct ctx *c, const char *sm_name, uint64_t i, uint64_t b,
                        uint64_t nr_blocks, uint8_t *buf, struct bitmap_stats *st, int *err)
{
	*err = 0;
	if (ck_read_block(c, b, buf))
		return false;
	char what[128];
	snprintf(what, sizeof(what), "%s bitmap %llu at block %llu", sm_name, (unsigned long long)i,
	         (unsigned long long)b);
	if (!ck_sealed_ok(c, F_SM, buf, b, CK_BITMAP_XOR, what))
		return false;
	uint64_t base = i * CK_ENTRIES_PER_BITMAP;
	uint64_t left = nr_blocks - base;
	st->in_range = left > CK_ENTRIES_PER_BITMAP ? CK_ENTRIES_PER_BITMAP : (uint32_t)left;
	st->nr_free = 0;
	st->first_free = st->in_range;
	st->allocated = 0;
	for (uint32_t j = 0; j < st->in_range; j++) {
		if (sm_bitmap_get(buf, j)) {
			st->allocated++;
		} else {
			if (!st->nr_free)
				st->first_free = j;
			st->nr_free++;
		}
	}
	for (uint32_t j = st->in_range; j < CK_ENTRIES_PER_BITMAP; j++)
		if (sm_bitmap_get(buf, j)) {
			ck_fault(
			        c, F_SM,
			        "%s bitmap %llu (block %llu): entry %u is set but lies beyond nr_blocks %llu",
			        sm_name, (unsigned long long)i, (unsigned long long)b, j,
			        (unsigned long long)nr_blocks);
			break;
		}
	return true;
}

/* Index block and bitmaps of the metadata space map: raw counts into mraw. */
int ck_load_metadata_sm(struct ctx *c)
{
	uint64_t nb = c->msm.nr_blocks > CK_MAX_META_BLOCKS ? CK_MAX_META_BLOCKS : c->msm.nr_blocks;
	/* Bitmaps for blocks past the end of the device describe nothing
	 * that exists (the shortfall is reported with the superblock). */
	uint64_t covered = nb < c->dev_blocks ? nb : c->dev_blocks;
	uint64_t nr_bitmaps = covered / CK_ENTRIES_PER_BITMAP + !!(covered % CK_ENTRIES_PER_BITMAP);
	bool all = covered == c->msm.nr_blocks;
	if (!ck_claim(c, c->msm.bitmap_root, K_MINDEX,
	              "the superblock's metadata space map root (index block)"))
		return 0;
	uint8_t *idx = c->bufs[c->depth++];
	int r = 0;
	if (ck_read_block(c, c->msm.bitmap_root, idx)) {
		c->depth--;
		return 0;
	}
	char what[96];
	snprintf(what, sizeof(what), "metadata space map index at block %llu",
	         (unsigned long long)c->msm.bitmap_root);
	if (!ck_sealed_ok(c, F_SM, idx, c->msm.bitmap_root, CK_INDEX_XOR, what)) {
		c->depth--;
		return 0;
	}
	uint8_t *bm = c->bufs[c->depth++];
	uint64_t allocated = 0;
	for (uint64_t i = 0; i < CK_MAX_META_BITMAPS; i++) {
		struct sm_index_entry ie;
		sm_index_entry_unpack(idx + 16 + 16 * i, &ie);
		/* entries past nr_bitmaps are not part of the format (the
		 * kernel never reads them), so their content is not judged */
		if (i >= nr_bitmaps)
			break;
		char from[96];
		snprintf(from, sizeof(from), "metadata space map index entry %llu",
		         (unsigned long long)i);
		struct bitmap_stats st;
		if (!ck_claim(c, ie.blocknr, K_MBITMAP, from) ||
		    !load_bitmap(c, "metadata space map", i, ie.blocknr, nb, bm, &st, &r)) {
			all = false;
			if (r)
				break;
			continue;
		}
		check_index_entry(c, "metadata space map", i, &ie, &st);
		allocated += st.allocated;
		uint64_t base = i * CK_ENTRIES_PER_BITMAP;
		for (uint32_t j = 0; j < st.in_range && base + j < c->nr; j++)
			c->mraw[base + j] = (uint8_t)sm_bitmap_get(bm, j);
	}
	c->depth -= 2;
	if (r)
		return r;
	if (all && allocated < c->msm.nr_allocated)
		ck_leak(c, F_SM,
		        "metadata space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		        (unsigned long long)c->msm.nr_allocated, (unsigned long long)allocated);
	else if (all && allocated != c->msm.nr_allocated)
		ck_fault(
		        c, F_SM,
		        "metadata space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		        (unsigned long long)c->msm.nr_allocated, (unsigned long long)allocated);
	c->msm_ok = true; /* per block: mraw stays 0xff where unknown */
	return 0;
}

/* The count a space map stores for block B: its 2-bit entry, or for 3 the
 * overflow tree's entry. OVF is sorted and *oi advances monotonically with
 * B. False when the count is unknown (reported, or the overflow tree is
 * damaged). */
static bool stored_count(struct ctx *c, const char *sm_name, const char *unit, uint64_t b,
                         unsigned raw, const struct ovf_vec *ovf, size_t *oi, bool ovf_lost,
                         uint64_t *stored)
{
	while (*oi < ovf->n && ovf->v[*oi].b < b)
		(*oi)++; /* duplicates, or blocks whose bitmap was unusable */
	*stored = raw;
	if (*oi < ovf->n && ovf->v[*oi].b == b) {
		const struct ovf_entry *e = &ovf->v[(*oi)++];
		if (raw == 3) {
			*stored = e->count;
			return e->count >= 3; /* a count < 3 there was reported */
		}
		ck_fault(
		        c, F_SM,
		        "%s overflow tree has an entry for block %llu (count %u), but its bitmap count is %u, not 3",
		        sm_name, (unsigned long long)b, e->count, raw);
		return true;
	}
	if (raw != 3)
		return true;
	if (!ovf_lost)
		ck_fault(
		        c, F_SM,
		        "%s block %llu: bitmap count 3 means \">= 3, see the overflow tree\", but the overflow tree has no entry for it",
		        unit, (unsigned long long)b);
	return false;
}

/* Bitmap counts of the data space map vs the references found. */
int ck_check_data_sm(struct ctx *c)
{
	if (!c->dsm_ok)
		return 0;
	if (!c->lost_dindex)
		for (uint64_t i = 0; i < c->nr_dbitmaps; i++)
			if (!c->dindex_present[i])
				ck_fault(c, F_SM,
				         "data space map index has no entry for bitmap %llu",
				         (unsigned long long)i);
	if (c->data_refs.n) /* qsort must not get NULL, even for 0 items */
		qsort(c->data_refs.v, c->data_refs.n, sizeof(uint64_t), cmp_u64);
	if (c->dovf.n)
		qsort(c->dovf.v, c->dovf.n, sizeof(struct ovf_entry), cmp_ovf);
	const uint64_t *refs = c->data_refs.v;
	size_t ri = 0, oi = 0, nrefs = c->data_refs.n;
	uint64_t nb = c->dsm.nr_blocks, allocated = 0;
	bool all = true;
	uint8_t *bm = c->bufs[c->depth++];
	int r = 0;
	for (uint64_t i = 0; i < c->nr_dbitmaps; i++) {
		uint64_t base = i * CK_ENTRIES_PER_BITMAP;
		uint64_t end =
		        base + CK_ENTRIES_PER_BITMAP < nb ? base + CK_ENTRIES_PER_BITMAP : nb;
		struct bitmap_stats st;
		if (!c->dindex_present[i] ||
		    !load_bitmap(c, "data space map", i, c->dindex[i].blocknr, nb, bm, &st, &r)) {
			all = false;
			if (r)
				break;
			while (ri < nrefs && refs[ri] < end)
				ri++;
			continue;
		}
		check_index_entry(c, "data space map", i, &c->dindex[i], &st);
		allocated += st.allocated;
		for (uint64_t b = base; b < end; b++) {
			uint64_t stored, expected = 0;
			while (ri < nrefs && refs[ri] == b) {
				expected++;
				ri++;
			}
			unsigned raw = sm_bitmap_get(bm, (uint32_t)(b - base));
			if (!stored_count(c, "data space map", "data", b, raw, &c->dovf, &oi,
			                  c->lost_dovf, &stored) ||
			    stored == expected || c->opts->skip_data_counts ||
			    c->opts->skip_mappings)
				continue;
			if (stored > expected && c->lost_map)
				continue;
			if (stored > expected)
				ck_leak(c, F_DCOUNT,
				        "data block %llu: reference count %llu in the data space map, but %llu leaf node%s map%s it (leaked)",
				        (unsigned long long)b, (unsigned long long)stored,
				        (unsigned long long)expected, expected == 1 ? "" : "s",
				        expected == 1 ? "s" : "");
			else
				ck_fault(
				        c, F_DCOUNT,
				        "data block %llu: reference count %llu in the data space map, but %llu leaf node%s map%s it (too low: the block could be reused while still mapped)",
				        (unsigned long long)b, (unsigned long long)stored,
				        (unsigned long long)expected, expected == 1 ? "" : "s",
				        expected == 1 ? "s" : "");
		}
	}
	c->depth--;
	if (r)
		return r;
	for (; oi < c->dovf.n; oi++)
		if (c->dovf.v[oi].b >= nb)
			ck_fault(
			        c, F_SM,
			        "data space map overflow tree has an entry for block %llu, beyond nr_blocks %llu",
			        (unsigned long long)c->dovf.v[oi].b, (unsigned long long)nb);
	if (all && allocated < c->dsm.nr_allocated)
		ck_leak(c, F_SM,
		        "data space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		        (unsigned long long)c->dsm.nr_allocated, (unsigned long long)allocated);
	else if (all && allocated != c->dsm.nr_allocated)
		ck_fault(
		        c, F_SM,
		        "data space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		        (unsigned long long)c->dsm.nr_allocated, (unsigned long long)allocated);
	if (c->lost_map && !c->opts->skip_data_counts && !c->opts->skip_mappings)
		ck_note(c,
		        "part of the mapping trees could not be walked, so data blocks whose count looks too high are not reported");
	return 0;
}

/* Stored metadata counts vs the pointers found. */
void ck_check_metadata_counts(struct ctx *c)
{
	if (c->movf.n)
		qsort(c->movf.v, c->movf.n, sizeof(struct ovf_entry), cmp_ovf);
	size_t oi = 0;
	for (uint64_t b = 0; b < c->nr; b++) {
		unsigned raw = c->mraw[b];
		uint64_t stored, expected = c->expected[b];
		if (raw == 0xff)
			continue; /* its bitmap was unusable: reported */
		if (!stored_count(c, "metadata space map", "metadata", b, raw, &c->movf, &oi,
		                  c->lost_movf, &stored) ||
		    stored == expected)
			continue;
		if (stored > expected && (c->lost_meta || c->opts->skip_mappings))
			continue;
		if (stored > expected)
			ck_leak(c, F_MCOUNT,
			        "metadata block %llu (%s): reference count %llu in the metadata space map, but %llu reference%s found (leaked)",
			        (unsigned long long)b, ck_kind_name(c->kind[b]),
			        (unsigned long long)stored, (unsigned long long)expected,
			        expected == 1 ? " was" : "s were");
		else
			ck_fault(
			        c, F_MCOUNT,
			        "metadata block %llu (%s): reference count %llu in the metadata space map, but %llu reference%s found (too low: the block could be reused while still referenced)",
			        (unsigned long long)b, ck_kind_name(c->kind[b]),
			        (unsigned long long)stored, (unsigned long long)expected,
			        expected == 1 ? " was" : "s were");
	}
	for (; oi < c->movf.n; oi++)
		if (c->movf.v[oi].b >= c->msm.nr_blocks)
			ck_fault(
			        c, F_SM,
			        "metadata space map overflow tree has an entry for block %llu, beyond nr_blocks %llu",
			        (unsigned long long)c->movf.v[oi].b,
			        (unsigned long long)c->msm.nr_blocks);
	if (c->lost_meta)
		ck_note(c,
		        "part of the metadata could not be walked, so metadata blocks whose count looks too high are not reported");
}
