/* The metadata arithmetic of plan_meta.h. */
#include "plan/plan_meta.h"

#include <math.h>

unsigned plan_node_capacity(unsigned value_size)
{
	/* a 4 KiB node: 32-byte header, then max_entries keys of 8 bytes and as many values,
	 * max_entries a multiple of 3 (docs/on-disk-format.md, "Btree nodes") */
	return (4064u / (8u + value_size)) / 3u * 3u;
}

uint64_t plan_leaves_sequential(uint64_t n, unsigned cap)
{
	if (n <= cap)
		return 1;
	uint64_t half = cap / 2;
	return 1 + (n - cap + half - 1) / half;
}

double plan_leaves_random(double n, unsigned cap)
{
	double l = n / (cap * PLAN_RANDOM_FILL);
	return l < 1 ? 1 : l;
}

double plan_internal_nodes(double leaves, int sequential)
{
	unsigned cap = plan_node_capacity(8);
	double total = 0;
	while (leaves > 1) {
		double level = sequential ? (double)plan_leaves_sequential((uint64_t)ceil(leaves), cap)
		                          : plan_leaves_random(leaves, cap);
		total += level;
		leaves = level;
	}
	return total;
}

unsigned plan_internal_depth(double leaves)
{
	unsigned cap = plan_node_capacity(8), d = 0;
	while (leaves > 1) {
		leaves = ceil(leaves / cap);
		d++;
	}
	return d;
}

uint64_t plan_space_map_blocks(uint64_t data_blocks, uint64_t meta_blocks)
{
	uint64_t data_bitmaps = (data_blocks + PLAN_SM_ENTRIES - 1) / PLAN_SM_ENTRIES;
	uint64_t meta_bitmaps = (meta_blocks + PLAN_SM_ENTRIES - 1) / PLAN_SM_ENTRIES;
	/* the data map's index is a btree of 16-byte entries, one per bitmap, in order */
	uint64_t idx_leaves = plan_leaves_sequential(data_bitmaps, plan_node_capacity(16));
	uint64_t idx = idx_leaves + (uint64_t)plan_internal_nodes((double)idx_leaves, 1);
	return data_bitmaps + idx + meta_bitmaps + 1 /* metadata index block */ +
	       2 /* overflow tree roots */;
}

uint64_t plan_meta_reserve(uint64_t meta_blocks)
{
	uint64_t r = meta_blocks / 10;
	return r < 4096 ? r : 4096;
}
