/* Strict offline checker of thin-pool metadata (see check.h and
 * shared/design/metadata-format.md).
 *
 * Independence: this file reads raw 4 KiB blocks itself and shares nothing
 * with the writer but the field codecs (endian, crc32c, sm_root/index_entry,
 * bitmap 2-bit get, superblock unpack). Constants that define validity are
 * restated here on purpose, so a wrong constant in the writer cannot make the
 * checker agree with it.
 *
 * Shape of the run:
 *   1. superblock fields;
 *   2. metadata space map: index block, bitmaps (raw 2-bit counts kept per
 *      block), overflow btree;
 *   3. every btree from every root (data-sm index and overflow, mapping and
 *      details trees, and those pinned by a held metadata snapshot). Each node
 *      is parsed once; a second pointer to it only adds a reference and is
 *      checked against what the first visit recorded (type, key range, height);
 *   4. per superblock: mapping tree vs details tree (devices, mapped_blocks);
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
#include "thin/superblock.h"

#define BLK                   4096u
#define CK_MAGIC              27022010ull
#define CK_SB_XOR             160774u
#define CK_NODE_XOR           121107u
#define CK_BITMAP_XOR         240779u
#define CK_INDEX_XOR          160478u
#define CK_ENTRIES_PER_BITMAP 16320u
#define CK_MAX_META_BITMAPS   255u
#define CK_MAX_META_BLOCKS    ((uint64_t)CK_MAX_META_BITMAPS * CK_ENTRIES_PER_BITMAP)
#define CK_MAX_DEV_ID         ((1ull << 24) - 1)
#define CK_MAX_TIME           ((1u << 24) - 1)
#define CK_NODE_INTERNAL      1u
#define CK_NODE_LEAF          2u

/* Minimum fill of a non-root node is max/3 >= 42 entries, so even 2^64 keys
 * fit in far fewer levels than this; deeper means a corrupt (or cyclic)
 * structure. */
#define MAX_LEVEL 16u
/* top-level tree + per-device subtree, plus slack for the enumerations */
#define MAX_STACK                 (2u * MAX_LEVEL + 4u)
#define DEFAULT_REPORTS_PER_CLASS 64u

/* ---- block kinds ---- */

enum ttype {
	T_NONE,
	T_TOP,     /* device id -> subtree root */
	T_DEV,     /* virtual block -> data block/time */
	T_DETAILS, /* device id -> details */
	T_DINDEX,  /* data-sm bitmap number -> index entry */
	T_DOVF,    /* data-sm overflow counts */
	T_MOVF,    /* metadata-sm overflow counts */
	NR_TTYPES
};

/* Block kind byte: 1..NR_TTYPES-1 are btree nodes of that type. */
enum {
	K_FREE = 0,
	K_SB = NR_TTYPES,
	K_SB_COPY,
	K_MINDEX,
	K_MBITMAP,
	K_DBITMAP,
};

static const char *const tree_names[NR_TTYPES] = {
	[T_NONE] = "?",
	[T_TOP] = "top-level mapping tree",
	[T_DEV] = "per-device mapping tree",
	[T_DETAILS] = "device details tree",
	[T_DINDEX] = "data space map index tree",
	[T_DOVF] = "data space map overflow tree",
	[T_MOVF] = "metadata space map overflow tree",
};

static const uint32_t leaf_value_size[NR_TTYPES] = {
	[T_TOP] = 8, [T_DEV] = 8, [T_DETAILS] = 24, [T_DINDEX] = 16, [T_DOVF] = 4, [T_MOVF] = 4,
};

static const char *kind_name(unsigned k)
{
	switch (k) {
	case K_SB:
		return "the superblock";
	case K_SB_COPY:
		return "the metadata snapshot superblock copy";
	case K_MINDEX:
		return "the metadata space map index";
	case K_MBITMAP:
		return "a metadata space map bitmap";
	case K_DBITMAP:
		return "a data space map bitmap";
	default:
		break;
	}
	if (k > T_NONE && k < NR_TTYPES)
		return tree_names[k];
	return "unreferenced";
}

/* Fault classes, only to cap how many messages of one sort are printed. */
enum fclass {
	F_SB,
	F_PTR,
	F_NODE,
	F_SHARE,
	F_MAPPING,
	F_DEVICES,
	F_SM,
	F_DCOUNT,
	F_MCOUNT,
	NR_FCLASSES
};

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

/* What the first visit learned about a btree node; later pointers to the
 * same node are checked against it instead of walking it again. */
enum {
	NS_IN_PROGRESS = 1,
	NS_DONE,
	NS_BAD
};

struct node_info {
	uint64_t first_key, last_key;
	uint64_t nr_values; /* leaf entries below (mappings for a device subtree) */
	uint32_t nr_entries, max_entries;
	uint8_t state;
	uint8_t height;
	bool clean; /* parsed, ordered, children clean: safe to enumerate */
	bool fill_reported;
};

struct ovf_entry {
	uint64_t b;
	uint32_t count;
};

struct u64_vec {
	uint64_t *v;
	size_t n, cap;
};

struct ovf_vec {
	struct ovf_entry *v;
	size_t n, cap;
};

/* The superblock a tree hangs from (the live one or the held copy). */
struct sb_ctx {
	const char *label; /* "" or " (metadata snapshot)" */
	uint32_t time;
	uint64_t mapping_root, details_root;
};

struct tree {
	enum ttype type;
	const struct sb_ctx *sb;
	char name[128];
};

struct ctx {
	struct tp_dev *dev;
	const struct tcheck_opts *opts;
	tcheck_report_fn report;
	void *rctx;
	unsigned nr_errors;
	unsigned limit;
	unsigned shown[NR_FCLASSES];
	unsigned long long hidden[NR_FCLASSES];

	uint64_t dev_blocks; /* whole 4 KiB blocks on the device */
	uint64_t msm_blocks; /* metadata space map nr_blocks as stored */
	uint64_t nr;         /* per-block arrays cover [0, nr) */
	uint8_t *kind;
	uint32_t *expected;
	uint8_t *mraw;      /* raw 2-bit metadata counts; 0xff = unknown */
	uint32_t *node_idx; /* 0 = none, else index + 1 into nodes */
	struct node_info *nodes;
	size_t nr_nodes, cap_nodes;

	uint8_t *bufs[MAX_STACK];
	unsigned depth;

	struct thin_superblock sb;
	struct sm_root dsm, msm;
	bool msm_ok; /* metadata bitmaps read: counts can be compared */

	uint64_t nr_dbitmaps;
	struct sm_index_entry *dindex;
	uint8_t *dindex_present;
	bool dsm_ok;

	struct u64_vec data_refs;
	struct ovf_vec dovf, movf;

	/* Parts of the structure that could not be walked. References from
	 * there are missing, so a count that looks too high may be right:
	 * those "leaks" are not reported (too-low counts still are). */
	bool lost_meta;   /* any tree or pointer: metadata counts */
	bool lost_map;    /* mapping trees: data counts */
	bool lost_dovf;   /* data overflow entries */
	bool lost_movf;   /* metadata overflow entries */
	bool lost_dindex; /* data space map index entries */
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

__attribute__((format(printf, 3, 4))) static void fault(struct ctx *c, enum fclass cls,
                                                        const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, cls, true, fmt, ap);
	va_end(ap);
}

/* A space-map count that is too high wastes space but endangers nothing;
 * thin_check calls that non-fatal, so it can be demoted to a warning. */
__attribute__((format(printf, 3, 4))) static void leak(struct ctx *c, enum fclass cls,
                                                       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, cls, !c->opts->ignore_leaks, fmt, ap);
	va_end(ap);
}

/* Information that is not a fault (not counted). */
static void note(struct ctx *c, const char *msg)
{
	if (c->report) {
		char buf[512];
		snprintf(buf, sizeof(buf), "note: %s", msg);
		c->report(c->rctx, buf);
	}
}

static void lost(struct ctx *c, enum ttype type)
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

/* ---- vectors ---- */

static int u64_push(struct u64_vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		uint64_t *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

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

/* ---- blocks ---- */

static int read_block(struct ctx *c, uint64_t b, uint8_t *buf)
{
	int r = tp_dev_pread(c->dev, buf, BLK, b * BLK);
	if (r) {
		fault(c, F_PTR, "cannot read metadata block %llu: %s", (unsigned long long)b,
		      strerror(-r));
		return r;
	}
	return 0;
}

/* Checksum and self-location of a btree node, bitmap or index block at
 * block B; WHAT names it (and B) in the messages. */
static bool sealed_ok(struct ctx *c, enum fclass cls, const uint8_t *buf, uint64_t b,
                      uint32_t xor_const, const char *what)
{
	bool ok = true;
	uint32_t want = tp_block_csum(buf, BLK, xor_const), got = le32_get(buf);
	if (want != got) {
		fault(c, cls, "%s: bad checksum (stored %u, computed %u)", what, got, want);
		ok = false;
	}
	uint64_t where = le64_get(buf + 8);
	if (where != b) {
		fault(c, cls, "%s: blocknr field says %llu (expected %llu)", what,
		      (unsigned long long)where, (unsigned long long)b);
		ok = false;
	}
	return ok;
}

/* Is B a block the checker can follow and count? Reports why not; FMT
 * describes the pointer and is only formatted on failure. */
__attribute__((format(printf, 3, 4))) static bool ptr_ok(struct ctx *c, uint64_t b, const char *fmt,
                                                         ...)
{
	if (b < c->nr)
		return true;
	char from[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(from, sizeof(from), fmt, ap);
	va_end(ap);
	if (b >= c->dev_blocks)
		fault(c, F_PTR,
		      "%s points at block %llu, beyond the end of the metadata device (%llu blocks)",
		      from, (unsigned long long)b, (unsigned long long)c->dev_blocks);
	else
		fault(c, F_PTR,
		      "%s points at block %llu, outside the metadata space map (%llu blocks)", from,
		      (unsigned long long)b, (unsigned long long)c->msm_blocks);
	return false;
}

static void add_ref(struct ctx *c, uint64_t b)
{
	if (c->expected[b] != UINT32_MAX)
		c->expected[b]++;
}

/* Count a pointer to a block that must be referenced exactly once
 * (superblocks, bitmaps, the index): claims it for KIND. */
static bool claim(struct ctx *c, uint64_t b, unsigned kind, const char *from)
{
	if (!ptr_ok(c, b, "%s", from))
		return false;
	add_ref(c, b);
	if (c->kind[b] != K_FREE) {
		fault(c, F_SHARE, "block %llu is used as %s and also as %s (referenced from %s)",
		      (unsigned long long)b, kind_name(c->kind[b]), kind_name(kind), from);
		return false;
	}
	c->kind[b] = (uint8_t)kind;
	return true;
}

/* ---- btree walk ---- */

struct visit_res {
	bool ok; /* this reference is consistent and the subtree clean */
	uint8_t height;
};

static int visit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi,
                 bool has_hi, bool is_root, unsigned level, struct visit_res *res);

static struct node_info *node_of(struct ctx *c, uint64_t b)
{
	uint32_t i = c->node_idx[b];
	return i ? &c->nodes[i - 1] : NULL;
}

static int new_node(struct ctx *c, uint64_t b, struct node_info **out)
{
	if (c->nr_nodes == c->cap_nodes) {
		size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 256;
		struct node_info *n = realloc(c->nodes, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->nodes = n;
		c->cap_nodes = cap;
	}
	struct node_info *ni = &c->nodes[c->nr_nodes++];
	memset(ni, 0, sizeof(*ni));
	ni->state = NS_IN_PROGRESS;
	c->node_idx[b] = (uint32_t)c->nr_nodes;
	*out = ni;
	return 0;
}

static void check_fill(struct ctx *c, const struct tree *t, uint64_t b, struct node_info *ni)
{
	if (ni->nr_entries >= ni->max_entries / 3 || ni->fill_reported)
		return;
	ni->fill_reported = true;
	fault(c, F_NODE,
	      "btree node %llu in the %s: too few entries (%u, a non-root node needs at least %u = max_entries/3)",
	      (unsigned long long)b, t->name, ni->nr_entries, ni->max_entries / 3);
}

/* Values of a leaf of a device's mapping tree. */
static int dev_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                    const uint8_t *vals, uint32_t nr)
{
	bool time_ok = c->sb.time <= CK_MAX_TIME; /* mapping times are 24 bits */
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t key = le64_get(keys + 8 * i), v = le64_get(vals + 8 * i);
		uint64_t db = v >> 24;
		uint32_t tm = (uint32_t)(v & CK_MAX_TIME);
		if (db >= c->dsm.nr_blocks) {
			fault(c, F_MAPPING,
			      "%s, leaf %llu: virtual block %llu maps to data block %llu, beyond the data device (%llu blocks)",
			      t->name, (unsigned long long)b, (unsigned long long)key,
			      (unsigned long long)db, (unsigned long long)c->dsm.nr_blocks);
		} else {
			int r = u64_push(&c->data_refs, db);
			if (r)
				return r;
		}
		if (time_ok && tm > t->sb->time)
			fault(c, F_MAPPING,
			      "%s, leaf %llu: virtual block %llu has time %u, later than the pool time %u%s",
			      t->name, (unsigned long long)b, (unsigned long long)key, tm,
			      t->sb->time, t->sb->label);
	}
	return 0;
}

static int top_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                    const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t dev = le64_get(keys + 8 * i), sub = le64_get(vals + 8 * i);
		if (dev > CK_MAX_DEV_ID)
			fault(c, F_DEVICES, "%s, leaf %llu: device id %llu does not fit in 24 bits",
			      t->name, (unsigned long long)b, (unsigned long long)dev);
		struct tree st = { .type = T_DEV, .sb = t->sb };
		snprintf(st.name, sizeof(st.name), "mapping tree of device %llu%s",
		         (unsigned long long)dev, t->sb->label);
		if (!ptr_ok(c, sub, "the %s entry for device %llu", t->name,
		            (unsigned long long)dev)) {
			lost(c, T_DEV);
			continue;
		}
		add_ref(c, sub);
		struct visit_res res;
		int r = visit(c, &st, sub, 0, 0, false, true, 0, &res);
		if (r)
			return r;
	}
	return 0;
}

static void details_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                         const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t dev = le64_get(keys + 8 * i);
		const uint8_t *v = vals + 24 * i;
		uint32_t ctime = le32_get(v + 16), stime = le32_get(v + 20);
		if (dev > CK_MAX_DEV_ID)
			fault(c, F_DEVICES, "%s, leaf %llu: device id %llu does not fit in 24 bits",
			      t->name, (unsigned long long)b, (unsigned long long)dev);
		if (ctime > t->sb->time)
			fault(c, F_DEVICES,
			      "%s: device %llu has creation_time %u, later than the pool time %u%s",
			      t->name, (unsigned long long)dev, ctime, t->sb->time, t->sb->label);
		if (stime > t->sb->time)
			fault(c, F_DEVICES,
			      "%s: device %llu has snapshotted_time %u, later than the pool time %u%s",
			      t->name, (unsigned long long)dev, stime, t->sb->time, t->sb->label);
	}
}

static void dindex_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                        const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = le64_get(keys + 8 * i);
		struct sm_index_entry ie;
		sm_index_entry_unpack(vals + 16 * i, &ie);
		if (k >= c->nr_dbitmaps) {
			fault(c, F_SM,
			      "%s, leaf %llu: entry for bitmap %llu, but nr_blocks %llu needs only %llu bitmaps",
			      t->name, (unsigned long long)b, (unsigned long long)k,
			      (unsigned long long)c->dsm.nr_blocks,
			      (unsigned long long)c->nr_dbitmaps);
			continue;
		}
		char from[160];
		snprintf(from, sizeof(from), "the data space map index entry for bitmap %llu",
		         (unsigned long long)k);
		if (!claim(c, ie.blocknr, K_DBITMAP, from)) {
			c->lost_meta = true;
			continue;
		}
		/* keys are checked to increase strictly, so each k is seen once */
		c->dindex[k] = ie;
		c->dindex_present[k] = 1;
	}
}

static int ovf_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                    const uint8_t *vals, uint32_t nr)
{
	struct ovf_vec *v = t->type == T_DOVF ? &c->dovf : &c->movf;
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = le64_get(keys + 8 * i);
		uint32_t n = le32_get(vals + 4 * i);
		if (n < 3)
			fault(c, F_SM,
			      "%s, leaf %llu: block %llu has count %u, but the overflow tree only holds counts >= 3",
			      t->name, (unsigned long long)b, (unsigned long long)k, n);
		int r = ovf_push(v, k, n);
		if (r)
			return r;
	}
	return 0;
}

/* Header checks; false if the node cannot be interpreted at all. */
static bool node_header_ok(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *buf,
                           uint32_t *flags_out)
{
	char what[160];
	snprintf(what, sizeof(what), "btree node %llu in the %s", (unsigned long long)b, t->name);
	if (!sealed_ok(c, F_NODE, buf, b, CK_NODE_XOR, what))
		return false;
	uint32_t flags = le32_get(buf + 4), nr = le32_get(buf + 16), max = le32_get(buf + 20),
	         vs = le32_get(buf + 24);
	if (flags != CK_NODE_INTERNAL && flags != CK_NODE_LEAF) {
		fault(c, F_NODE,
		      "btree node %llu in the %s: flags %u are neither internal (1) nor leaf (2)",
		      (unsigned long long)b, t->name, flags);
		return false;
	}
	uint32_t want_vs = flags == CK_NODE_INTERNAL ? 8 : leaf_value_size[t->type];
	if (vs != want_vs) {
		fault(c, F_NODE,
		      "btree node %llu in the %s: value_size %u, expected %u for %s node",
		      (unsigned long long)b, t->name, vs, want_vs,
		      flags == CK_NODE_INTERNAL ? "an internal" : "a leaf");
		return false;
	}
	uint32_t want_max = (BLK - 32) / (8 + vs) / 3 * 3;
	if (max != want_max) {
		fault(c, F_NODE,
		      "btree node %llu in the %s: max_entries %u, expected %u for value_size %u",
		      (unsigned long long)b, t->name, max, want_max, vs);
		return false;
	}
	if (nr > max) {
		fault(c, F_NODE, "btree node %llu in the %s: nr_entries %u exceeds max_entries %u",
		      (unsigned long long)b, t->name, nr, max);
		return false;
	}
	if (flags == CK_NODE_INTERNAL && nr == 0) {
		fault(c, F_NODE, "btree node %llu in the %s: internal node with no entries",
		      (unsigned long long)b, t->name);
		return false;
	}
	*flags_out = flags;
	return true;
}

/* A later pointer to a node already walked: check it fits this place. */
static void revisit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi,
                    bool has_hi, bool is_root, struct visit_res *res)
{
	struct node_info *ni = node_of(c, b);
	res->ok = false;
	if (c->kind[b] != t->type) {
		fault(c, F_SHARE, "block %llu is used as %s and also as a node of the %s",
		      (unsigned long long)b, kind_name(c->kind[b]), t->name);
		lost(c, t->type);
		return;
	}
	if (!ni)
		return;
	if (ni->state == NS_IN_PROGRESS) {
		fault(c, F_NODE,
		      "cycle in the %s: btree node %llu is reached again from inside its own subtree",
		      t->name, (unsigned long long)b);
		return;
	}
	if (ni->state != NS_DONE)
		return; /* damaged, reported on the first visit */
	res->height = ni->height;
	bool ok = ni->clean;
	if (ni->nr_entries) {
		if (ni->first_key < lo) {
			fault(c, F_NODE,
			      "btree node %llu in the %s (shared): first key %llu is below its parent's key %llu",
			      (unsigned long long)b, t->name, (unsigned long long)ni->first_key,
			      (unsigned long long)lo);
			ok = false;
		}
		if (has_hi && ni->last_key >= hi) {
			fault(c, F_NODE,
			      "btree node %llu in the %s (shared): key %llu is not below the next parent key %llu",
			      (unsigned long long)b, t->name, (unsigned long long)ni->last_key,
			      (unsigned long long)hi);
			ok = false;
		}
	}
	if (!is_root)
		check_fill(c, t, b, ni);
	res->ok = ok;
}

static int visit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi,
                 bool has_hi, bool is_root, unsigned level, struct visit_res *res)
{
	res->ok = false;
	res->height = 0;
	if (level >= MAX_LEVEL || c->depth >= MAX_STACK) {
		fault(c, F_NODE,
		      "the %s is deeper than %u levels at block %llu: giving up on this branch",
		      t->name, MAX_LEVEL, (unsigned long long)b);
		lost(c, t->type);
		return 0;
	}
	if (c->kind[b] != K_FREE) {
		revisit(c, t, b, lo, hi, has_hi, is_root, res);
		return 0;
	}
	c->kind[b] = (uint8_t)t->type;
	struct node_info *ni;
	int r = new_node(c, b, &ni);
	if (r)
		return r;
	size_t ni_index = (size_t)(ni - c->nodes); /* c->nodes moves when it grows */
	uint8_t *buf = c->bufs[c->depth++];
	r = read_block(c, b, buf);
	uint32_t flags = 0;
	if (r || !node_header_ok(c, t, b, buf, &flags)) {
		/* a read error was reported like any other damage */
		c->nodes[ni_index].state = NS_BAD;
		lost(c, t->type);
		c->depth--;
		return 0;
	}
	uint32_t nr = le32_get(buf + 16), max = le32_get(buf + 20);
	const uint8_t *keys = buf + 32, *vals = buf + 32 + 8 * max;
	bool clean = true;
	ni->nr_entries = nr;
	ni->max_entries = max;
	if (nr) {
		ni->first_key = le64_get(keys);
		ni->last_key = le64_get(keys + 8 * (nr - 1));
	}
	for (uint32_t i = 1; i < nr; i++) {
		uint64_t prev = le64_get(keys + 8 * (i - 1)), k = le64_get(keys + 8 * i);
		if (k <= prev) {
			fault(c, F_NODE,
			      "btree node %llu in the %s: keys out of order (entry %u key %llu follows key %llu)",
			      (unsigned long long)b, t->name, i, (unsigned long long)k,
			      (unsigned long long)prev);
			clean = false;
			break;
		}
	}
	if (nr && ni->first_key < lo) {
		fault(c, F_NODE,
		      "btree node %llu in the %s: first key %llu is below its parent's key %llu",
		      (unsigned long long)b, t->name, (unsigned long long)ni->first_key,
		      (unsigned long long)lo);
		clean = false;
	}
	if (nr && has_hi && ni->last_key >= hi) {
		fault(c, F_NODE,
		      "btree node %llu in the %s: key %llu is not below the next parent key %llu",
		      (unsigned long long)b, t->name, (unsigned long long)ni->last_key,
		      (unsigned long long)hi);
		clean = false;
	}
	if (!is_root)
		check_fill(c, t, b, ni);

	uint64_t nr_values = 0;
	uint8_t height = 0;
	if (flags == CK_NODE_LEAF) {
		nr_values = nr;
		switch (t->type) {
		case T_TOP:
			r = top_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DEV:
			r = dev_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DETAILS:
			details_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DINDEX:
			dindex_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DOVF:
		case T_MOVF:
			r = ovf_leaf(c, t, b, keys, vals, nr);
			break;
		default:
			break;
		}
		if (r) {
			c->depth--;
			return r;
		}
	} else {
		bool have_height = false, clean_depth = true;
		for (uint32_t i = 0; i < nr; i++) {
			uint64_t child = le64_get(vals + 8 * i);
			uint64_t clo = le64_get(keys + 8 * i);
			bool chas_hi = i + 1 < nr ? true : has_hi;
			uint64_t chi = i + 1 < nr ? le64_get(keys + 8 * (i + 1)) : hi;
			if (!ptr_ok(c, child, "btree node %llu in the %s (entry %u)",
			            (unsigned long long)b, t->name, i)) {
				lost(c, t->type);
				clean = false;
				continue;
			}
			add_ref(c, child);
			struct visit_res cr;
			r = visit(c, t, child, clo, chi, chas_hi, false, level + 1, &cr);
			if (r) {
				c->depth--;
				return r;
			}
			if (!cr.ok) {
				clean = false;
				continue;
			}
			struct node_info *cn = node_of(c, child);
			nr_values += cn->nr_values;
			if (!have_height) {
				height = cr.height;
				have_height = true;
			} else if (cr.height != height && clean_depth) {
				clean_depth = false;
				fault(c, F_NODE,
				      "btree node %llu in the %s: leaves at different depths (child %u at block %llu has height %u, earlier children %u)",
				      (unsigned long long)b, t->name, i, (unsigned long long)child,
				      cr.height, height);
				clean = false;
			} else if (cr.height != height) {
				clean = false;
			}
		}
		height++;
	}
	c->depth--;
	ni = &c->nodes[ni_index];
	ni->nr_values = nr_values;
	ni->height = height;
	ni->clean = clean;
	ni->state = NS_DONE;
	res->ok = clean;
	res->height = height;
	return 0;
}

/* Walk a whole tree from a root pointer (which itself counts as a reference). */
static int walk_tree(struct ctx *c, enum ttype type, const struct sb_ctx *sb, uint64_t root,
                     const char *from)
{
	struct tree t = { .type = type, .sb = sb };
	snprintf(t.name, sizeof(t.name), "%s%s", tree_names[type], sb ? sb->label : "");
	if (!ptr_ok(c, root, "%s", from)) {
		lost(c, type);
		return 0;
	}
	add_ref(c, root);
	struct visit_res res;
	return visit(c, &t, root, 0, 0, false, true, 0, &res);
}

/* ---- enumeration of clean trees (devices and details) ---- */

struct kv {
	uint64_t key;
	uint8_t val[24];
};

struct kv_vec {
	struct kv *v;
	size_t n, cap;
};

static int kv_push(struct kv_vec *v, uint64_t key, const uint8_t *val, size_t vs)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct kv *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	struct kv *e = &v->v[v->n++];
	e->key = key;
	memset(e->val, 0, sizeof(e->val));
	memcpy(e->val, val, vs);
	return 0;
}

/* Collect the leaf entries of a tree the walk found clean. Re-reading is
 * cheap (these trees hold one entry per device) and clean nodes were proven
 * acyclic and ordered, so this terminates. *complete is cleared when part of
 * the tree is unusable. */
static int enumerate(struct ctx *c, enum ttype type, uint64_t b, unsigned level, struct kv_vec *out,
                     bool *complete)
{
	struct node_info *ni = b < c->nr && c->kind[b] == type ? node_of(c, b) : NULL;
	if (!ni || ni->state != NS_DONE || !ni->clean || level >= MAX_LEVEL ||
	    c->depth >= MAX_STACK) {
		*complete = false;
		return 0;
	}
	uint8_t *buf = c->bufs[c->depth++];
	int r = tp_dev_pread(c->dev, buf, BLK, b * BLK);
	if (r) {
		c->depth--;
		*complete = false;
		return 0;
	}
	uint32_t flags = le32_get(buf + 4), nr = le32_get(buf + 16), max = le32_get(buf + 20),
	         vs = le32_get(buf + 24);
	const uint8_t *keys = buf + 32, *vals = buf + 32 + 8 * max;
	for (uint32_t i = 0; i < nr && !r; i++) {
		if (flags == CK_NODE_LEAF)
			r = kv_push(out, le64_get(keys + 8 * i), vals + (size_t)vs * i, vs);
		else
			r = enumerate(c, type, le64_get(vals + 8 * i), level + 1, out, complete);
	}
	c->depth--;
	return r;
}

/* Mapping tree vs details tree of one superblock. */
static int check_devices(struct ctx *c, const struct sb_ctx *sb)
{
	struct kv_vec tl = { 0 }, det = { 0 };
	bool tl_complete = true, det_complete = true;
	int r = 0;
	if (sb->mapping_root < c->nr)
		r = enumerate(c, T_TOP, sb->mapping_root, 0, &tl, &tl_complete);
	else
		tl_complete = false;
	if (!r && sb->details_root < c->nr)
		r = enumerate(c, T_DETAILS, sb->details_root, 0, &det, &det_complete);
	else
		det_complete = false;
	if (r || !tl_complete || !det_complete)
		goto out; /* the damage was reported; comparing would only add noise */
	size_t i = 0, j = 0;
	while (i < tl.n || j < det.n) {
		if (j >= det.n || (i < tl.n && tl.v[i].key < det.v[j].key)) {
			fault(c, F_DEVICES,
			      "device %llu is in the mapping tree but missing from the details tree%s",
			      (unsigned long long)tl.v[i].key, sb->label);
			i++;
			continue;
		}
		if (i >= tl.n || det.v[j].key < tl.v[i].key) {
			fault(c, F_DEVICES,
			      "device %llu is in the details tree but missing from the mapping tree%s",
			      (unsigned long long)det.v[j].key, sb->label);
			j++;
			continue;
		}
		uint64_t dev = tl.v[i].key, sub = le64_get(tl.v[i].val);
		uint64_t mapped = le64_get(det.v[j].val);
		struct node_info *ni =
		        sub < c->nr && c->kind[sub] == T_DEV ? node_of(c, sub) : NULL;
		if (ni && ni->state == NS_DONE && ni->clean && ni->nr_values != mapped)
			fault(c, F_DEVICES,
			      "device %llu: details say mapped_blocks %llu but its mapping tree (root %llu) holds %llu mappings%s",
			      (unsigned long long)dev, (unsigned long long)mapped,
			      (unsigned long long)sub, (unsigned long long)ni->nr_values,
			      sb->label);
		i++;
		j++;
	}
out:
	free(tl.v);
	free(det.v);
	return r;
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
		fault(c, F_SB, "superblock: bad checksum (stored %u, computed %u)", got, want);
	if (sb->magic != CK_MAGIC) {
		fault(c, F_SB, "superblock: bad magic %llu (expected %llu)",
		      (unsigned long long)sb->magic, CK_MAGIC);
		if (!csum_ok) {
			fault(c, F_SB, "block 0 is not thin-pool metadata: nothing else checked");
			return false;
		}
	}
	if (sb->blocknr != 0)
		fault(c, F_SB, "superblock: blocknr field says %llu (expected 0)",
		      (unsigned long long)sb->blocknr);
	if (sb->version < 1 || sb->version > 2)
		fault(c, F_SB, "superblock: version %u is not supported (1 or 2)", sb->version);
	if (sb->incompat_flags)
		fault(c, F_SB, "superblock: incompat_flags 0x%x (no incompatible features exist)",
		      sb->incompat_flags);
	if (sb->data_block_size < 128 || sb->data_block_size > 2097152 || sb->data_block_size % 128)
		fault(c, F_SB,
		      "superblock: data_block_size %u sectors is invalid (128..2097152, a multiple of 128)",
		      sb->data_block_size);
	if (sb->metadata_block_size != 8)
		fault(c, F_SB, "superblock: metadata_block_size %u, expected 8 sectors",
		      sb->metadata_block_size);
	if (sb->flags & 1u)
		note(c,
		     "superblock: the NEEDS_CHECK flag is set (the kernel keeps the pool read-only until it is cleared)");
	sm_root_unpack(sb->metadata_sm_root, &c->msm);
	sm_root_unpack(sb->data_sm_root, &c->dsm);
	if (c->msm.nr_blocks > c->dev_blocks)
		fault(c, F_SB,
		      "superblock: the metadata space map covers %llu blocks but the device has only %llu (truncated?)",
		      (unsigned long long)c->msm.nr_blocks, (unsigned long long)c->dev_blocks);
	if (c->msm.nr_blocks > CK_MAX_META_BLOCKS)
		fault(c, F_SB,
		      "superblock: the metadata space map claims %llu blocks, more than the format's %llu",
		      (unsigned long long)c->msm.nr_blocks, (unsigned long long)CK_MAX_META_BLOCKS);
	if (c->msm.nr_allocated > c->msm.nr_blocks)
		fault(c, F_SB, "superblock: metadata space map nr_allocated %llu > nr_blocks %llu",
		      (unsigned long long)c->msm.nr_allocated,
		      (unsigned long long)c->msm.nr_blocks);
	if (c->dsm.nr_allocated > c->dsm.nr_blocks)
		fault(c, F_SB, "superblock: data space map nr_allocated %llu > nr_blocks %llu",
		      (unsigned long long)c->dsm.nr_allocated,
		      (unsigned long long)c->dsm.nr_blocks);
	return true;
}

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
		leak(c, F_SM,
		     "%s bitmap %llu (block %llu): index entry nr_free %u, but the bitmap has %u free entries",
		     sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr, ie->nr_free,
		     st->nr_free);
	else if (ie->nr_free != st->nr_free && ie->nr_free != kernel_free)
		fault(c, F_SM,
		      "%s bitmap %llu (block %llu): index entry nr_free %u, but the bitmap has %u free entries",
		      sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr, ie->nr_free,
		      st->nr_free);
	if (ie->none_free_before > st->first_free)
		leak(c, F_SM,
		     "%s bitmap %llu (block %llu): none_free_before %u, but entry %u is already free",
		     sm_name, (unsigned long long)i, (unsigned long long)ie->blocknr,
		     ie->none_free_before, st->first_free);
}

/* Read and check one bitmap block; false if unusable. */
static bool load_bitmap(struct ctx *c, const char *sm_name, uint64_t i, uint64_t b,
                        uint64_t nr_blocks, uint8_t *buf, struct bitmap_stats *st, int *err)
{
	*err = 0;
	if (read_block(c, b, buf))
		return false;
	char what[128];
	snprintf(what, sizeof(what), "%s bitmap %llu at block %llu", sm_name, (unsigned long long)i,
	         (unsigned long long)b);
	if (!sealed_ok(c, F_SM, buf, b, CK_BITMAP_XOR, what))
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
			fault(c, F_SM,
			      "%s bitmap %llu (block %llu): entry %u is set but lies beyond nr_blocks %llu",
			      sm_name, (unsigned long long)i, (unsigned long long)b, j,
			      (unsigned long long)nr_blocks);
			break;
		}
	return true;
}

/* Index block and bitmaps of the metadata space map: raw counts into mraw. */
static int load_metadata_sm(struct ctx *c)
{
	uint64_t nb = c->msm.nr_blocks > CK_MAX_META_BLOCKS ? CK_MAX_META_BLOCKS : c->msm.nr_blocks;
	/* Bitmaps for blocks past the end of the device describe nothing
	 * that exists (the shortfall is reported with the superblock). */
	uint64_t covered = nb < c->dev_blocks ? nb : c->dev_blocks;
	uint64_t nr_bitmaps = covered / CK_ENTRIES_PER_BITMAP + !!(covered % CK_ENTRIES_PER_BITMAP);
	bool all = covered == c->msm.nr_blocks;
	if (!claim(c, c->msm.bitmap_root, K_MINDEX,
	           "the superblock's metadata space map root (index block)"))
		return 0;
	uint8_t *idx = c->bufs[c->depth++];
	int r = 0;
	if (read_block(c, c->msm.bitmap_root, idx)) {
		c->depth--;
		return 0;
	}
	char what[96];
	snprintf(what, sizeof(what), "metadata space map index at block %llu",
	         (unsigned long long)c->msm.bitmap_root);
	if (!sealed_ok(c, F_SM, idx, c->msm.bitmap_root, CK_INDEX_XOR, what)) {
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
		if (!claim(c, ie.blocknr, K_MBITMAP, from) ||
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
		leak(c, F_SM,
		     "metadata space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		     (unsigned long long)c->msm.nr_allocated, (unsigned long long)allocated);
	else if (all && allocated != c->msm.nr_allocated)
		fault(c, F_SM,
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
		fault(c, F_SM,
		      "%s overflow tree has an entry for block %llu (count %u), but its bitmap count is %u, not 3",
		      sm_name, (unsigned long long)b, e->count, raw);
		return true;
	}
	if (raw != 3)
		return true;
	if (!ovf_lost)
		fault(c, F_SM,
		      "%s block %llu: bitmap count 3 means \">= 3, see the overflow tree\", but the overflow tree has no entry for it",
		      unit, (unsigned long long)b);
	return false;
}

/* Bitmap counts of the data space map vs the references found. */
static int check_data_sm(struct ctx *c)
{
	if (!c->dsm_ok)
		return 0;
	if (!c->lost_dindex)
		for (uint64_t i = 0; i < c->nr_dbitmaps; i++)
			if (!c->dindex_present[i])
				fault(c, F_SM, "data space map index has no entry for bitmap %llu",
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
			    stored == expected || c->opts->skip_data_counts)
				continue;
			if (stored > expected && c->lost_map)
				continue;
			if (stored > expected)
				leak(c, F_DCOUNT,
				     "data block %llu: reference count %llu in the data space map, but %llu leaf node%s map%s it (leaked)",
				     (unsigned long long)b, (unsigned long long)stored,
				     (unsigned long long)expected, expected == 1 ? "" : "s",
				     expected == 1 ? "s" : "");
			else
				fault(c, F_DCOUNT,
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
			fault(c, F_SM,
			      "data space map overflow tree has an entry for block %llu, beyond nr_blocks %llu",
			      (unsigned long long)c->dovf.v[oi].b, (unsigned long long)nb);
	if (all && allocated < c->dsm.nr_allocated)
		leak(c, F_SM,
		     "data space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		     (unsigned long long)c->dsm.nr_allocated, (unsigned long long)allocated);
	else if (all && allocated != c->dsm.nr_allocated)
		fault(c, F_SM,
		      "data space map: nr_allocated is %llu in the superblock, but the bitmaps hold %llu allocated blocks",
		      (unsigned long long)c->dsm.nr_allocated, (unsigned long long)allocated);
	if (c->lost_map && !c->opts->skip_data_counts)
		note(c,
		     "part of the mapping trees could not be walked, so data blocks whose count looks too high are not reported");
	return 0;
}

/* Stored metadata counts vs the pointers found. */
static void check_metadata_counts(struct ctx *c)
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
		if (stored > expected && c->lost_meta)
			continue;
		if (stored > expected)
			leak(c, F_MCOUNT,
			     "metadata block %llu (%s): reference count %llu in the metadata space map, but %llu reference%s found (leaked)",
			     (unsigned long long)b, kind_name(c->kind[b]),
			     (unsigned long long)stored, (unsigned long long)expected,
			     expected == 1 ? " was" : "s were");
		else
			fault(c, F_MCOUNT,
			      "metadata block %llu (%s): reference count %llu in the metadata space map, but %llu reference%s found (too low: the block could be reused while still referenced)",
			      (unsigned long long)b, kind_name(c->kind[b]),
			      (unsigned long long)stored, (unsigned long long)expected,
			      expected == 1 ? " was" : "s were");
	}
	for (; oi < c->movf.n; oi++)
		if (c->movf.v[oi].b >= c->msm.nr_blocks)
			fault(c, F_SM,
			      "metadata space map overflow tree has an entry for block %llu, beyond nr_blocks %llu",
			      (unsigned long long)c->movf.v[oi].b,
			      (unsigned long long)c->msm.nr_blocks);
	if (c->lost_meta)
		note(c,
		     "part of the metadata could not be walked, so metadata blocks whose count looks too high are not reported");
}

/* ---- held metadata snapshot ---- */

static int check_held(struct ctx *c, uint64_t held, struct sb_ctx *hs)
{
	if (!claim(c, held, K_SB_COPY, "the superblock's held_root (metadata snapshot)")) {
		lost(c, T_TOP);
		return 0;
	}
	uint8_t *buf = c->bufs[c->depth++];
	if (read_block(c, held, buf)) {
		c->depth--;
		lost(c, T_TOP);
		return 0;
	}
	int r;
	struct thin_superblock copy;
	thin_sb_unpack(buf, &copy);
	c->depth--;
	uint32_t want = tp_block_csum(buf, BLK, CK_SB_XOR), got = le32_get(buf);
	if (want != got) {
		fault(c, F_SB,
		      "metadata snapshot superblock copy at block %llu: bad checksum (stored %u, computed %u)",
		      (unsigned long long)held, got, want);
		lost(c, T_TOP);
		return 0;
	}
	if (copy.blocknr != held)
		fault(c, F_SB,
		      "metadata snapshot superblock copy at block %llu: blocknr field says %llu",
		      (unsigned long long)held, (unsigned long long)copy.blocknr);
	if (copy.magic != CK_MAGIC)
		fault(c, F_SB, "metadata snapshot superblock copy at block %llu: bad magic %llu",
		      (unsigned long long)held, (unsigned long long)copy.magic);
	if (!roots_zero(copy.data_sm_root) || !roots_zero(copy.metadata_sm_root))
		fault(c, F_SB,
		      "metadata snapshot superblock copy at block %llu: its space map roots are not zeroed",
		      (unsigned long long)held);
	if (copy.time > c->sb.time)
		fault(c, F_SB,
		      "metadata snapshot superblock copy at block %llu: time %u is later than the pool time %u",
		      (unsigned long long)held, copy.time, c->sb.time);
	hs->time = copy.time;
	hs->mapping_root = copy.data_mapping_root;
	hs->details_root = copy.device_details_root;
	r = walk_tree(c, T_TOP, hs, copy.data_mapping_root,
	              "the metadata snapshot's data_mapping_root");
	if (!r)
		r = walk_tree(c, T_DETAILS, hs, copy.device_details_root,
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
		fault(c, F_SB,
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
		fault(c, F_SB, "the metadata device (%llu bytes) is smaller than one 4 KiB block",
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
		fault(c, F_SB, "the metadata space map is empty: nothing else can be checked");
		return 0;
	}
	c->kind[0] = K_SB;
	c->expected[0] = 1;

	struct sb_ctx live = { "", c->sb.time, c->sb.data_mapping_root, c->sb.device_details_root };
	struct sb_ctx held = { " (metadata snapshot)", 0, 0, 0 };

	r = load_metadata_sm(c);
	if (!r)
		r = walk_tree(c, T_MOVF, NULL, c->msm.ref_count_root,
		              "the metadata space map's ref_count_root");
	if (!r)
		r = walk_tree(c, T_DINDEX, NULL, c->dsm.bitmap_root,
		              "the data space map's bitmap_root");
	if (!r)
		r = walk_tree(c, T_DOVF, NULL, c->dsm.ref_count_root,
		              "the data space map's ref_count_root");
	if (!r)
		r = walk_tree(c, T_TOP, &live, c->sb.data_mapping_root,
		              "the superblock's data_mapping_root");
	if (!r)
		r = walk_tree(c, T_DETAILS, &live, c->sb.device_details_root,
		              "the superblock's device_details_root");
	uint64_t held_root = c->sb.held_root;
	if (c->opts->metadata_snap && c->opts->metadata_snap != held_root) {
		fault(c, F_SB,
		      "the superblock holds metadata snapshot %llu, not the requested block %llu",
		      (unsigned long long)held_root, (unsigned long long)c->opts->metadata_snap);
	}
	if (!r && held_root)
		r = check_held(c, held_root, &held);
	if (!r)
		r = check_devices(c, &live);
	if (!r && held_root && held.mapping_root)
		r = check_devices(c, &held);
	if (!r)
		r = check_data_sm(c);
	if (r)
		return r;
	if (c->msm_ok)
		check_metadata_counts(c);
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
