/* What the parts of the strict checker share (check.c drives the run and
 * reports, check_btree.c walks nodes, check_mappings.c judges devices and
 * mappings, check_sm.c judges the space maps). Not a public interface.
 *
 * Independence: the checker reads raw 4 KiB blocks itself and shares nothing
 * with the writer but the field codecs (endian, crc32c, sm_root/index_entry,
 * bitmap 2-bit get, superblock unpack). Constants that define validity are
 * restated here on purpose, so a wrong constant in the writer cannot make the
 * checker agree with it. */
#ifndef THINP_THIN_CHECK_INTERNAL_H
#define THINP_THIN_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdata/format.h"
#include "thin/check.h"
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

/* ---- reporting (check.c) ---- */

__attribute__((format(printf, 3, 4))) void ck_fault(struct ctx *c, enum fclass cls, const char *fmt,
                                                    ...);
/* A space-map count that is too high wastes space but endangers nothing;
 * thin_check calls that non-fatal, so it can be demoted to a warning. */
__attribute__((format(printf, 3, 4))) void ck_leak(struct ctx *c, enum fclass cls, const char *fmt,
                                                   ...);
/* Information that is not a fault (not counted). */
void ck_note(struct ctx *c, const char *msg);
/* Part of a tree of TYPE could not be walked: see the lost_* flags. */
void ck_lost(struct ctx *c, enum ttype type);

/* ---- blocks and btree nodes (check_btree.c) ---- */

const char *ck_kind_name(unsigned k);
int ck_read_block(struct ctx *c, uint64_t b, uint8_t *buf);
bool ck_sealed_ok(struct ctx *c, enum fclass cls, const uint8_t *buf, uint64_t b,
                  uint32_t xor_const, const char *what);
__attribute__((format(printf, 3, 4))) bool ck_ptr_ok(struct ctx *c, uint64_t b, const char *fmt,
                                                     ...);
void ck_add_ref(struct ctx *c, uint64_t b);
bool ck_claim(struct ctx *c, uint64_t b, unsigned kind, const char *from);
struct node_info *ck_node_of(struct ctx *c, uint64_t b);

struct visit_res {
	bool ok; /* this reference is consistent and the subtree clean */
	uint8_t height;
};

int ck_visit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi, bool has_hi,
             bool is_root, unsigned level, struct visit_res *res);
int ck_walk_tree(struct ctx *c, enum ttype type, const struct sb_ctx *sb, uint64_t root,
                 const char *from);

struct kv {
	uint64_t key;
	uint8_t val[24];
};

struct kv_vec {
	struct kv *v;
	size_t n, cap;
};

int ck_enumerate(struct ctx *c, enum ttype type, uint64_t b, unsigned level, struct kv_vec *out,
                 bool *complete);

/* ---- leaf values, devices and mappings (check_mappings.c) ---- */

int ck_dev_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr);
int ck_top_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr);
void ck_details_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                     const uint8_t *vals, uint32_t nr);
int ck_check_devices(struct ctx *c, const struct sb_ctx *sb);

/* ---- space maps (check_sm.c) ---- */

void ck_dindex_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                    const uint8_t *vals, uint32_t nr);
int ck_ovf_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr);
int ck_load_metadata_sm(struct ctx *c);
int ck_check_data_sm(struct ctx *c);
void ck_check_metadata_counts(struct ctx *c);

#endif
