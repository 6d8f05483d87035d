/* Strict offline checker of thin-pool metadata (see check.h and
 * docs/on-disk-format.md): the driver, the superblock, the held metadata
 * snapshot and the reporting. check_internal.h says how the work is split.
 *
 * Shape of the run:
 *   1. superblock fields;
 *   2. metadata space map: index block, bitmaps (raw 2-bit counts kept per
 *      block), overflow btree (check_sm.c);
 *   3. every btree from every root (data-sm index and overflow, mapping and
 *      details trees, and those pinned by a held metadata snapshot). Each node
 *      is parsed once; a second pointer to it only adds a reference and is
 *      checked against what the first visit recorded (type, key range, height)
 *      (check_btree.c);
 *   4. per superblock: mapping tree vs details tree (devices, mapped_blocks)
 *      (check_mappings.c);
 *   5. data space map sweep: bitmap counts vs the number of distinct leaves
 *      mapping each block, nr_free, none_free_before, nr_allocated;
 *   6. metadata counts vs the number of pointers found in 1..3.
 * Every loop is bounded by the device size and the recursion by a fixed depth,
 * so no image can make it loop or crash. */
#include "thin/check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "thin/check_internal.h"
#include "thin/superblock.h"

static const char *const fclass_names[NR_FCLASSES] = {
	"superblock",
	"block pointer",
	"btree node",
	"block sharing",
	"mapping",
	"device",
	"space map",
	"data reference count",
	"metadata reference count",
};

/* ---- reporting ---- */

static void vreport(struct ctx *c, enum fclass cls, bool counts, const char *fmt, va_list ap)
{
	if (counts)
		c->nr_errors++;
	if (c->shown[cls] >= c->limit) {
		c->hidden[cls]++;
		return;
	}
	c->shown[cls]++;
	char msg[1024];
	int n = 0;
	if (!counts)
		n = snprintf(msg, sizeof(msg), "warning: ");
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	if (c->report)
		c->report(c->rctx, msg);
}

__attribute__((format(printf, 3, 4))) void ck_fault(struct ctx *c, enum fclass cls, const char *fmt,
                                                    ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, cls, true, fmt, ap);
	va_end(ap);
}

/* A space-map count that is too high wastes space but endangers nothing;
 * thin_check calls that non-fatal, so it can be demoted to a warning. */
__attribute__((format(printf, 3, 4))) void ck_leak(struct ctx *c, enum fclass cls, const char *fmt,
                                                   ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, cls, !c->opts->ignore_leaks, fmt, ap);
	va_end(ap);
}

/* Information that is not a ck_fault (not counted). */
void ck_note(struct ctx *c, const char *msg)
{
	if (c->report) {
		char buf[512];
		snprintf(buf, sizeof(buf), "note: %s", msg);
		c->report(c->rctx, buf);
	}
}

void ck_lost(struct ctx *c, enum ttype type)
{
	c->lost_meta = true;
	if (type == T_TOP || type == T_DEV)
		c->lost_map = true;
	else if (type == T_DOVF)
		c->lost_dovf = true;
	else if (type == T_MOVF)
		c->lost_movf = true;
	else if (type == T_DINDEX)
		c->lost_dindex = true;
}

static void report_hidden(struct ctx *c)
{
	for (unsigned i = 0; i < NR_FCLASSES; i++) {
		if (!c->hidden[i] || !c->report)
			continue;
		char msg[256];
		snprintf(msg, sizeof(msg), "... and %llu more %s fault%s not shown", c->hidden[i],
		         fclass_names[i], c->hidden[i] == 1 ? "" : "s");
		c->report(c->rctx, msg);
	}
}

/* ---- superblock ---- */

static bool roots_zero(const uint8_t *f)
{
	for (unsigned i = 0; i < SM_ROOT_FIELD_SIZE; i++)
		if (f[i])
			return false;
	return true;
}

/* False when the block is not thin-pool metadata at all (nothing else can
 * be checked). */
static bool check_superblock(struct ctx *c, const uint8_t *buf)
{
	struct thin_superblock *sb = &c->sb;
	thin_sb_unpack(buf, sb);
	uint32_t want = tp_block_csum(buf, BLK, CK_SB_XOR), got = le32_get(buf);
	bool csum_ok = want == got;
	if (!csum_ok)
		ck_fault(c, F_SB, "superblock: bad checksum (stored %u, computed %u)", got, want);
	if (sb->magic != CK_MAGIC) {
		ck_fault(c, F_SB, "superblock: bad magic %llu (expected %llu)",
		         (unsigned long long)sb->magic, CK_MAGIC);
		if (!csum_ok) {
			ck_fault(c, F_SB,
			         "block 0 is not thin-pool metadata: nothing else checked");
			return false;
		}
	}
	if (sb->blocknr != 0)
		ck_fault(c, F_SB, "superblock: blocknr field says %llu (expected 0)",
		         (unsigned long long)sb->blocknr);
	if (sb->version < 1 || sb->version > 2)
		ck_fault(c, F_SB, "superblock: version %u is not supported (1 or 2)", sb->version);
	if (sb->incompat_flags)
		ck_fault(c, F_SB,
		         "superblock: incompat_flags 0x%x (no incompatible features exist)",
		         sb->incompat_flags);
	if (sb->data_block_size < 128 || sb->data_block_size > 2097152 || sb->data_block_size % 128)
		ck_fault(
		        c, F_SB,
		        "superblock: data_block_size %u sectors is invalid (128..2097152, a multiple of 128)",
		        sb->data_block_size);
	if (sb->metadata_block_size != 8)
		ck_fault(c, F_SB, "superblock: metadata_block_size %u, expected 8 sectors",
		         sb->metadata_block_size);
	if (sb->flags & 1u)
		ck_note(c,
		        "superblock: the NEEDS_CHECK flag is set (the kernel keeps the pool read-only until it is cleared)");
	sm_root_unpack(sb->metadata_sm_root, &c->msm);
	sm_root_unpack(sb->data_sm_root, &c->dsm);
	if (c->msm.nr_blocks > c->dev_blocks)
		ck_fault(
		        c, F_SB,
		        "superblock: the metadata space map covers %llu blocks but the device has only %llu (truncated?)",
		        (unsigned long long)c->msm.nr_blocks, (unsigned long long)c->dev_blocks);
	if (c->msm.nr_blocks > CK_MAX_META_BLOCKS)
		ck_fault(
		        c, F_SB,
		        "superblock: the metadata space map claims %llu blocks, more than the format's %llu",
		        (unsigned long long)c->msm.nr_blocks,
		        (unsigned long long)CK_MAX_META_BLOCKS);
	if (c->msm.nr_allocated > c->msm.nr_blocks)
		ck_fault(c, F_SB,
		         "superblock: metadata space map nr_allocated %llu > nr_blocks %llu",
		         (unsigned long long)c->msm.nr_allocated,
		         (unsigned long long)c->msm.nr_blocks);
	if (c->dsm.nr_allocated > c->dsm.nr_blocks)
		ck_fault(c, F_SB, "superblock: data space map nr_allocated %llu > nr_blocks %llu",
		         (unsigned long long)c->dsm.nr_allocated,
		         (unsigned long long)c->dsm.nr_blocks);
	return true;
}

/* ---- held metadata snapshot ---- */

static int check_held(struct ctx *c, uint64_t held, struct sb_ctx *hs)
{
	if (!ck_claim(c, held, K_SB_COPY, "the superblock's held_root (metadata snapshot)")) {
		ck_lost(c, T_TOP);
		return 0;
	}
	uint8_t *buf = c->bufs[c->depth++];
	if (ck_read_block(c, held, buf)) {
		c->depth--;
		ck_lost(c, T_TOP);
		return 0;
	}
	int r;
	struct thin_superblock copy;
	thin_sb_unpack(buf, &copy);
	c->depth--;
	uint32_t want = tp_block_csum(buf, BLK, CK_SB_XOR), got = le32_get(buf);
	if (want != got) {
		ck_fault(
		        c, F_SB,
		        "metadata snapshot superblock copy at block %llu: bad checksum (stored %u, computed %u)",
		        (unsigned long long)held, got, want);
		ck_lost(c, T_TOP);
		return 0;
	}
	if (copy.blocknr != held)
		ck_fault(c, F_SB,
		         "metadata snapshot superblock copy at block %llu: blocknr field says %llu",
		         (unsigned long long)held, (unsigned long long)copy.blocknr);
	if (copy.magic != CK_MAGIC)
		ck_fault(c, F_SB, "metadata snapshot superblock copy at block %llu: bad magic %llu",
		         (unsigned long long)held, (unsigned long long)copy.magic);
	if (!roots_zero(copy.data_sm_root) || !roots_zero(copy.metadata_sm_root))
		ck_fault(
		        c, F_SB,
		        "metadata snapshot superblock copy at block %llu: its space map roots are not zeroed",
		        (unsigned long long)held);
	if (copy.time > c->sb.time)
		ck_fault(
		        c, F_SB,
		        "metadata snapshot superblock copy at block %llu: time %u is later than the pool time %u",
		        (unsigned long long)held, copy.time, c->sb.time);
	hs->time = copy.time;
	hs->mapping_root = copy.data_mapping_root;
	hs->details_root = copy.device_details_root;
	r = ck_walk_tree(c, T_TOP, hs, copy.data_mapping_root,
	                 "the metadata snapshot's data_mapping_root");
	if (!r)
		r = ck_walk_tree(c, T_DETAILS, hs, copy.device_details_root,
		                 "the metadata snapshot's device_details_root");
	return r;
}

/* ---- driver ---- */

static int setup(struct ctx *c)
{
	for (unsigned i = 0; i < MAX_STACK; i++) {
		c->bufs[i] = malloc(BLK);
		if (!c->bufs[i])
			return -ENOMEM;
	}
	return 0;
}

static int alloc_arrays(struct ctx *c)
{
	uint64_t nb = c->msm.nr_blocks > CK_MAX_META_BLOCKS ? CK_MAX_META_BLOCKS : c->msm.nr_blocks;
	c->msm_blocks = c->msm.nr_blocks;
	c->nr = nb < c->dev_blocks ? nb : c->dev_blocks;
	size_t n = (size_t)(c->nr ? c->nr : 1);
	c->kind = calloc(n, 1);
	c->expected = calloc(n, sizeof(*c->expected));
	c->mraw = malloc(n);
	c->node_idx = calloc(n, sizeof(*c->node_idx));
	if (!c->kind || !c->expected || !c->mraw || !c->node_idx)
		return -ENOMEM;
	memset(c->mraw, 0xff, n);

	/* Every data bitmap is a metadata block; more bitmaps than the device
	 * has blocks cannot be right and must not size an allocation. */
	/* (no "+ 16319": nr_blocks is untrusted and could wrap) */
	uint64_t ndb = c->dsm.nr_blocks / CK_ENTRIES_PER_BITMAP +
	               !!(c->dsm.nr_blocks % CK_ENTRIES_PER_BITMAP);
	c->nr_dbitmaps = ndb;
	if (ndb > c->dev_blocks) {
		ck_fault(
		        c, F_SB,
		        "superblock: the data space map's nr_blocks %llu needs %llu bitmaps, more than the metadata device's %llu blocks",
		        (unsigned long long)c->dsm.nr_blocks, (unsigned long long)ndb,
		        (unsigned long long)c->dev_blocks);
		c->nr_dbitmaps = 0;
		return 0;
	}
	c->dindex = calloc(ndb ? ndb : 1, sizeof(*c->dindex));
	c->dindex_present = calloc(ndb ? ndb : 1, 1);
	if (!c->dindex || !c->dindex_present)
		return -ENOMEM;
	c->dsm_ok = true;
	return 0;
}

static int run(struct ctx *c)
{
	if (c->dev_blocks < 1) {
		ck_fault(c, F_SB,
		         "the metadata device (%llu bytes) is smaller than one 4 KiB block",
		         (unsigned long long)c->dev->size);
		return 0;
	}
	int r = tp_dev_pread(c->dev, c->bufs[0], BLK, 0);
	if (r)
		return r; /* no superblock, no check */
	if (!check_superblock(c, c->bufs[0]) || c->opts->super_block_only)
		return 0;
	r = alloc_arrays(c);
	if (r)
		return r;
	if (c->nr < 1) {
		ck_fault(c, F_SB, "the metadata space map is empty: nothing else can be checked");
		return 0;
	}
	c->kind[0] = K_SB;
	c->expected[0] = 1;

	struct sb_ctx live = { "", c->sb.time, c->sb.data_mapping_root, c->sb.device_details_root };
	struct sb_ctx held = { " (metadata snapshot)", 0, 0, 0 };

	r = ck_load_metadata_sm(c);
	if (!r)
		r = ck_walk_tree(c, T_MOVF, NULL, c->msm.ref_count_root,
		                 "the metadata space map's ref_count_root");
	if (!r)
		r = ck_walk_tree(c, T_DINDEX, NULL, c->dsm.bitmap_root,
		                 "the data space map's bitmap_root");
	if (!r)
		r = ck_walk_tree(c, T_DOVF, NULL, c->dsm.ref_count_root,
		                 "the data space map's ref_count_root");
	if (!r)
		r = ck_walk_tree(c, T_TOP, &live, c->sb.data_mapping_root,
		                 "the superblock's data_mapping_root");
	if (!r)
		r = ck_walk_tree(c, T_DETAILS, &live, c->sb.device_details_root,
		                 "the superblock's device_details_root");
	uint64_t held_root = c->sb.held_root;
	if (c->opts->metadata_snap && c->opts->metadata_snap != held_root) {
		ck_fault(
		        c, F_SB,
		        "the superblock holds metadata snapshot %llu, not the requested block %llu",
		        (unsigned long long)held_root, (unsigned long long)c->opts->metadata_snap);
	}
	if (!r && held_root)
		r = check_held(c, held_root, &held);
	if (!r)
		r = ck_check_devices(c, &live);
	if (!r && held_root && held.mapping_root)
		r = ck_check_devices(c, &held);
	if (!r)
		r = ck_check_data_sm(c);
	if (r)
		return r;
	if (c->msm_ok)
		ck_check_metadata_counts(c);
	return 0;
}

int tcheck_run(struct tp_dev *meta, const struct tcheck_opts *opts, tcheck_report_fn report,
               void *ctx, unsigned *nr_errors)
{
	static const struct tcheck_opts defaults;
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dev = meta;
	c->opts = opts ? opts : &defaults;
	c->report = report;
	c->rctx = ctx;
	c->limit = c->opts->max_reports_per_kind ? c->opts->max_reports_per_kind :
	                                           DEFAULT_REPORTS_PER_CLASS;
	c->dev_blocks = meta->size / BLK;
	int r = setup(c);
	if (!r)
		r = run(c);
	if (!r)
		report_hidden(c);
	if (nr_errors)
		*nr_errors = c->nr_errors;
	for (unsigned i = 0; i < MAX_STACK; i++)
		free(c->bufs[i]);
	free(c->kind);
	free(c->expected);
	free(c->mraw);
	free(c->node_idx);
	free(c->nodes);
	free(c->dindex);
	free(c->dindex_present);
	free(c->data_refs.v);
	free(c->dovf.v);
	free(c->movf.v);
	free(c);
	return r;
}
