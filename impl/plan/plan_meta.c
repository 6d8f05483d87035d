/* The metadata arithmetic of plan_meta.h. */
#include "plan/plan_meta.h"

#include <math.h>
#include <stdlib.h>

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

/* Random inserts: the expected number of leaves, from the expected count of leaves of each
 * size (fringe analysis). A key lands in a leaf with K keys with probability K/N (it owns the
 * K gaps after its keys); a full leaf splits into halves and the key lands in one of them.
 * The expectation evolves linearly, so stepping it gives the exact mean, including the waves
 * of splits that keep the fill near 62-66% for the sizes containers reach rather than the
 * asymptotic ln 2; tabulated once per capacity at N = CAP * 2^(i/16). */
#define RAND_GRID 400
struct rand_table {
	unsigned cap;
	double leaves[RAND_GRID];
};

static void rand_table_build(struct rand_table *t, unsigned cap)
{
	double *c = calloc(cap + 1, sizeof(double));
	t->cap = cap;
	if (!c) {
		for (unsigned i = 0; i < RAND_GRID; i++)
			t->leaves[i] = cap * pow(2, i / 16.0) / (cap * PLAN_RANDOM_FILL);
		return;
	}
	c[cap] = 1; /* the first CAP keys fill the root leaf */
	double n = cap, leaves = 1;
	for (unsigned i = 0; i < RAND_GRID; i++) {
		double target = cap * pow(2, i / 16.0);
		while (n < target) {
			double b = floor(n / 4000);
			if (b < 1)
				b = 1;
			if (n + b > target)
				b = target - n;
			double full = c[cap] * cap / n * b;
			for (unsigned k = cap - 1; k >= 1; k--) {
				double p = c[k] * k / n * b;
				c[k] -= p;
				c[k + 1] += p;
			}
			c[cap] -= full;
			c[cap / 2] += full;
			c[cap - cap / 2 + 1] += full;
			leaves += full;
			n += b;
		}
		t->leaves[i] = leaves;
	}
	free(c);
}

double plan_leaves_random(double n, unsigned cap)
{
	/* the capacities the trees use; built on first use (the plan is single-threaded) */
	static struct rand_table tables[4];
	if (n <= cap)
		return 1;
	struct rand_table *t = NULL;
	for (unsigned i = 0; i < 4 && !t; i++) {
		if (tables[i].cap == cap)
			t = &tables[i];
		else if (!tables[i].cap) {
			rand_table_build(&tables[i], cap);
			t = &tables[i];
		}
	}
	if (!t)
		return n / (cap * PLAN_RANDOM_FILL);
	double x = 16 * log2(n / cap);
	if (x >= RAND_GRID - 1)
		return t->leaves[RAND_GRID - 1] * n / (cap * pow(2, (RAND_GRID - 1) / 16.0));
	unsigned i = (unsigned)x;
	double f = x - i;
	return t->leaves[i] * (1 - f) + t->leaves[i + 1] * f;
}

double plan_internal_nodes(double leaves, int sequential)
{
	unsigned cap = plan_node_capacity(8);
	double total = 0;
	while (leaves > 1) {
		double level = sequential ?
		                       (double)plan_leaves_sequential((uint64_t)ceil(leaves), cap) :
		                       plan_leaves_random(leaves, cap);
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
