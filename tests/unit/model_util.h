/* Shared helpers for the model-based unit tests (test_btree, test_space_map,
 * test_metadata_model):
 *
 *  - a seeded PRNG (splitmix64), the seed taken from THINP_SEED, and an
 *    iteration scale from THINP_TEST_SCALE;
 *  - scratch directories and external-program helpers (thin_check, thin_dump);
 *  - an independent on-disk checker ("mc"): it reads metadata blocks through
 *    its own block manager (cold cache, validators on) and recomputes what
 *    every reference count must be — one per pointer to a metadata block, a
 *    shared btree node's children counted once, a data block once per leaf
 *    entry of every distinct leaf node — while checking btree structure
 *    (strictly increasing keys within the parent's key range, uniform leaf
 *    depth, non-root nodes at least 1/3 full, canonical max_entries, value
 *    sizes) and space-map structure (index entries' nr_free and
 *    none_free_before, bitmap value 3 iff an overflow entry, nr_allocated).
 *
 * Only the library's public pdata/thin headers and codecs are used; the
 * checker shares no code with the writers it checks beyond block checksums
 * and the 2-bit bitmap codec. All symbols are prefixed mu_. */
#ifndef THINP_TESTS_MODEL_UTIL_H
#define THINP_TESTS_MODEL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include "pdata/block_manager.h"

/* memmove that accepts NULL pointers when N is 0 (an empty model array). */
static inline void mu_memmove(void *dst, const void *src, size_t n)
{
	if (n)
		memmove(dst, src, n);
}

/* ---- PRNG, seed, scale ---- */

struct mu_rng {
	uint64_t s;
};

/* THINP_SEED (decimal or 0x hex) if set, else DEF. */
uint64_t mu_seed(uint64_t def);
/* THINP_TEST_SCALE (a positive float, default 1). */
double mu_scale(void);
/* N * scale, at least MIN. */
uint64_t mu_scaled(uint64_t n, uint64_t min);

void mu_rng_init(struct mu_rng *r, uint64_t seed);
uint64_t mu_next(struct mu_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t mu_below(struct mu_rng *r, uint64_t n);
/* True with probability pct/100. */
bool mu_pct(struct mu_rng *r, unsigned pct);
void mu_fill(struct mu_rng *r, void *buf, size_t len);

/* ---- scratch directories, external programs ---- */

/* mkdtemp under $TMPDIR (or /tmp) named thinp-TAG-XXXXXX. 0 or -errno. */
int mu_mkdtemp(char *buf, size_t len, const char *tag);
void mu_rmtree(const char *path);
/* Full path of NAME found in $PATH, /usr/sbin or /sbin; false if absent. */
bool mu_find_prog(const char *name, char *buf, size_t len);
/* Run a shell command, capturing stdout+stderr (truncated to len-1 bytes,
 * NUL-terminated). Returns the exit status, or -1 if it did not exit. */
int mu_run(const char *cmd, char *out, size_t len);

/* ---- metadata checker ---- */

enum mu_kind {
	MU_FREE = 0,
	MU_NODE,   /* btree node */
	MU_BITMAP, /* space-map bitmap */
	MU_INDEX,  /* metadata space-map index block */
	MU_SB,     /* superblock or metadata-snapshot superblock copy */
	MU_OTHER,  /* caller-declared (e.g. a pretend superblock) */
};

struct mu_mc {
	struct bm *bm;                  /* own, cold */
	uint64_t nr_blocks;             /* device blocks */
	uint32_t *expect;               /* expected metadata reference counts */
	uint8_t *kind;                  /* enum mu_kind */
	int16_t *height;                /* btree nodes: 0 = leaf */
	uint64_t *first_key, *last_key; /* btree nodes with entries */
	uint64_t *entries;              /* btree nodes: bottom-level entries below */
	uint64_t nr_nodes;
	char err[1024];
};

/* Called once per entry of every distinct bottom-level leaf node. */
typedef int (*mu_leaf_fn)(void *ctx, uint64_t key, const uint8_t *value);

/* Check the metadata on DEV through a fresh block manager. */
int mu_mc_init(struct mu_mc *mc, struct tp_dev *dev);
void mu_mc_free(struct mu_mc *mc);

/* One more expected reference to B, which is declared to be of KIND (a
 * block may only be one kind). */
int mu_mc_ref(struct mu_mc *mc, uint64_t b, enum mu_kind kind);

/* A btree of LEVELS levels whose bottom values are VS bytes: one reference
 * to ROOT, then (first visit only) its nodes; upper-level values are roots of
 * lower-level trees. FN may be NULL. *nr_entries (may be NULL) = bottom-level
 * entries reachable (shared subtrees counted each time). */
int mu_mc_btree(struct mu_mc *mc, uint64_t root, unsigned levels, uint32_t vs, mu_leaf_fn fn,
                void *ctx, uint64_t *nr_entries);

/* Decode a metadata space map from its 32-byte root, adding references to
 * its index block, bitmaps and overflow tree, and checking its structure.
 * *counts (malloc'ed, *nr entries) receives the stored reference counts. */
int mu_mc_sm_meta(struct mu_mc *mc, const uint8_t root[32], uint32_t **counts, uint64_t *nr);
/* Same for a data space map (index btree, bitmaps, overflow tree). */
int mu_mc_sm_disk(struct mu_mc *mc, const uint8_t root[32], uint32_t **counts, uint64_t *nr);

/* Compare stored metadata counts with the expected ones: every block of the
 * map must have exactly the expected count, and no reference may point past
 * the map. */
int mu_mc_compare(struct mu_mc *mc, const uint32_t *counts, uint64_t nr);

/* A whole thin-pool metadata device: superblock, mapping and details trees,
 * both space maps, metadata snapshot; all metadata and data counts exact,
 * details mapped_blocks equal to the mappings, data blocks in range, the
 * details and mapping trees holding the same devices. On success, *data_counts
 * (malloc'ed) holds the data space map's counts, *nr_data its size. */
struct mu_thin_summary {
	uint64_t nr_devices;
	uint64_t nr_mappings;  /* over all devices, shared ones counted per device */
	uint64_t nr_meta_used; /* metadata blocks referenced */
	uint64_t nr_data_used; /* data blocks with a non-zero count */
	uint64_t held_root;
};
int mu_check_thin(struct tp_dev *dev, uint32_t **data_counts, uint64_t *nr_data,
                  struct mu_thin_summary *sum, char *err, size_t errlen);

#endif
