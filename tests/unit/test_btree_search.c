/* The search inside one btree node (impl/pdata/btree_internal.h), where a lookup spends
 * most of its cache misses:
 *
 *  - lower_bound and lookup_slot give the largest slot whose key is <= the key, or -1, as a
 *    linear scan does, on seeded nodes of every fill (1..254 keys: dense runs, random gaps,
 *    clusters at one end) and keys below, inside, between and above them; lookup_slot with
 *    the parent's bound as the descent passes it (the next key of the parent: above every key
 *    of the node), with a wrong one (below the node's last key, or far above it: a corrupt
 *    parent) and with none; and a key just below a bound near 2^64, where the guess's
 *    floating-point rounding lands on slot n.
 *
 * Seeded: THINP_SEED (printed). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model_util.h"
#include "pdata/btree_internal.h"
#include "stack_util.h"

#define DEFAULT_SEED 0x5EA2Cull

/* The reference: the largest i with key[i] <= key, or -1. */
static int scan(const uint8_t *d, uint64_t key)
{
	int i = -1;
	for (uint32_t j = 0; j < n_nr(d); j++)
		if (key_at(d, j) <= key)
			i = (int)j;
	return i;
}

/* A leaf of N sorted, distinct keys in one of a few shapes. */
static void make_node(struct mu_rng *rng, uint8_t *d, uint32_t n)
{
	memset(d, 0, TP_BLOCK_SIZE);
	init_node(d, BTREE_LEAF_NODE, 8);
	uint64_t k = mu_below(rng, 4) ? mu_below(rng, 1000000) : 0;
	unsigned shape = (unsigned)mu_below(rng, 4);
	for (uint32_t i = 0; i < n; i++) {
		set_key(d, i, k);
		set_val64(d, i, k ^ 0xABCDull);
		switch (shape) {
		case 0: /* appended vblocks */
			k += 1;
			break;
		case 1: /* random inserts */
			k += 1 + mu_below(rng, 1000);
			break;
		case 2: /* dense, then a jump */
			k += i == n / 2 ? 1 + mu_below(rng, 1ull << 40) : 1;
			break;
		default: /* anything, up to huge gaps */
			k += 1 + mu_below(rng, 1ull << (1 + mu_below(rng, 40)));
			break;
		}
	}
	set_nr(d, n);
}

/* A key to look for: below, at, between or above the node's keys. */
static uint64_t pick_key(struct mu_rng *rng, const uint8_t *d)
{
	uint32_t n = n_nr(d);
	uint64_t first = key_at(d, 0), last = key_at(d, n - 1);
	switch (mu_below(rng, 5)) {
	case 0:
		return first ? mu_below(rng, first) : 0;
	case 1:
		return key_at(d, (uint32_t)mu_below(rng, n));
	case 2:
		return key_at(d, (uint32_t)mu_below(rng, n)) + 1;
	case 3:
		return last + 1 + mu_below(rng, 1000);
	default:
		return first + mu_below(rng, last - first + 1);
	}
}

START_TEST(test_node_search)
{
	struct mu_rng rng;
	mu_rng_init(&rng, su_seed);
	uint64_t nodes = mu_scaled(3000, 300);
	uint8_t d[TP_BLOCK_SIZE];
	uint64_t checked = 0;
	for (uint64_t t = 0; t < nodes; t++) {
		uint32_t n = 1 + (uint32_t)mu_below(&rng, btree_max_entries(8));
		if (t < 8)
			n = (uint32_t)t + 1; /* the smallest nodes every run */
		make_node(&rng, d, n);
		uint64_t last = key_at(d, n - 1);
		su_set_ctx("node", t);
		for (unsigned q = 0; q < 64; q++) {
			uint64_t key = pick_key(&rng, d);
			int want = scan(d, key);
			/* the parent's next key: above the node's last (exact or far) */
			uint64_t above = last + 1 + (mu_pct(&rng, 50) ? 0 : mu_below(&rng, 1ull << 32));
			/* a corrupt parent's: anywhere at or below the last key */
			uint64_t wrong = mu_below(&rng, last + 1);
			REQ(lower_bound(d, key) == want, "n %u key %llu: lower_bound %d, want %d", n,
			    (unsigned long long)key, lower_bound(d, key), want);
			REQ(lookup_slot(d, key, false, 0) == want, "n %u key %llu unbounded: %d, want %d",
			    n, (unsigned long long)key, lookup_slot(d, key, false, 0), want);
			REQ(lookup_slot(d, key, true, above) == want,
			    "n %u key %llu bound %llu: %d, want %d", n, (unsigned long long)key,
			    (unsigned long long)above, lookup_slot(d, key, true, above), want);
			REQ(lookup_slot(d, key, true, wrong) == want,
			    "n %u key %llu wrong bound %llu: %d, want %d", n, (unsigned long long)key,
			    (unsigned long long)wrong, lookup_slot(d, key, true, wrong), want);
			REQ(lookup_slot(d, key, true, UINT64_MAX) == want,
			    "n %u key %llu bound max: %d, want %d", n, (unsigned long long)key,
			    lookup_slot(d, key, true, UINT64_MAX), want);
			checked++;
		}
		/* (key - first) / (hi - first) rounds to 1.0: the guess must stay inside the node */
		REQ(lookup_slot(d, UINT64_MAX - 1, true, UINT64_MAX) == (int)n - 1,
		    "n %u key 2^64-2 bound 2^64-1: %d, want %d", n,
		    lookup_slot(d, UINT64_MAX - 1, true, UINT64_MAX), (int)n - 1);
	}
	printf("node search: %llu nodes, %llu keys, each against a linear scan\n",
	       (unsigned long long)nodes, (unsigned long long)checked);
}
END_TEST

static Suite *btree_search_suite(void)
{
	Suite *s = suite_create("btree_search");
	TCase *tc = tcase_create("search");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_node_search);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return su_main(DEFAULT_SEED, "test_btree_search", btree_search_suite);
}
