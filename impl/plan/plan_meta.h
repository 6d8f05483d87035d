/* Metadata blocks from the on-disk format (docs/on-disk-format.md): btree node capacities, the
 * node count of a tree filled sequentially (libthinp's split rule) or at random, and the space
 * maps' blocks. All counts are 4 KiB metadata blocks. */
#ifndef THINP_PLAN_META_H
#define THINP_PLAN_META_H

#include <stdint.h>

#define PLAN_META_BLOCK 4096u
/* Entries per space-map bitmap block: 4080 bytes of 2-bit counts. */
#define PLAN_SM_ENTRIES 16320u
/* The metadata space map's one index block holds 255 bitmaps. */
#define PLAN_META_MAX_BLOCKS (255ull * PLAN_SM_ENTRIES)
/* Fill of a btree node under random inserts as the keys grow without bound: ln 2 (Yao's
 * result for B-trees); plan_leaves_random() follows the way there. */
#define PLAN_RANDOM_FILL 0.6931471805599453

/* max_entries of a node whose values are VALUE_SIZE bytes: 252 for 8, 168 for 16, 126 for 24,
 * 336 for 4. */
unsigned plan_node_capacity(unsigned value_size);
/* Leaves of a tree holding N keys inserted in increasing order: a full node splits into
 * halves, and the appends go on in the right half, so every leaf but the last keeps CAP/2. */
uint64_t plan_leaves_sequential(uint64_t n, unsigned cap);
/* Expected leaves for N keys inserted in random order (at least 1). */
double plan_leaves_random(double n, unsigned cap);
/* Internal nodes above LEAVES leaves (8-byte child pointers), children added in order
 * (SEQUENTIAL) or at random. */
double plan_internal_nodes(double leaves, int sequential);
/* Levels of internal nodes above LEAVES leaves. */
unsigned plan_internal_depth(double leaves);
/* Blocks of both space maps for a pool of DATA_BLOCKS and META_BLOCKS (bitmaps, the data
 * map's index btree, the metadata map's index block, the two overflow trees' roots). */
uint64_t plan_space_map_blocks(uint64_t data_blocks, uint64_t meta_blocks);
/* The metadata blocks the kernel holds back, reported as used by the status:
 * min(4096, total / 10) (docs/dm-thin-behaviour.md). */
uint64_t plan_meta_reserve(uint64_t meta_blocks);

#endif
