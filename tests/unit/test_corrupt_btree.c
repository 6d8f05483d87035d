/* Btree operations on corrupt trees must end, and say "metadata corrupt".
 *
 * A valid single-level tree (3000 keys: an internal root over a dozen
 * leaves) is built and committed on the pdata stack; then one structure is
 * damaged on the device (nodes re-sealed, so only the shape is wrong) and
 * every operation of impl/pdata/btree.c is run on it from a cold cache:
 *
 *   self     the root's last child is the root itself
 *   cycle    a leaf replaced by an internal node pointing back at the root
 *   deep     a chain of single-child internal nodes puts a leaf at depth 14,
 *            deeper than any tree over 64-bit keys can be (BTREE_MAX_DEPTH)
 *   type     a child that is a leaf of another tree (24-byte values)
 *   empty    a child that is an internal node with no entries
 *   dag      a child whose subtree reuses one node 252 times per level
 *            (the walk would visit 252^9 leaves)
 *
 * Each operation runs in its own forked test under a short timeout (a hang
 * fails as a timeout) and, where its walk passes the damage, must fail with
 * -EUCLEAN and a tm_error() that starts with "metadata corrupt: ". */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io/dev.h"
#include "pdata/btree.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "stack_util.h"

#define BLK        TP_BLOCK_SIZE
#define DEV_BLOCKS 4096u
#define NKEYS      3000u
#define KEY_STEP   10u
#define TIMEOUT_S  10

struct fx {
	struct su_stack s;
	struct btree_info info;
	uint64_t root;
};

/* ---- node bytes ---- */

static uint32_t n_nr(const uint8_t *n) { return le32_get(n + 16); }
static uint32_t n_max(const uint8_t *n) { return le32_get(n + 20); }
static uint64_t n_key(const uint8_t *n, uint32_t i) { return le64_get(n + 32 + 8 * i); }
static uint64_t n_child(const uint8_t *n, uint32_t i) { return le64_get(n + 32 + 8 * n_max(n) + 8 * i); }
static void set_child(uint8_t *n, uint32_t i, uint64_t b) { le64_put(n + 32 + 8 * n_max(n) + 8 * i, b); }

static void raw_get(struct fx *f, uint64_t b, uint8_t *n)
{
	REQ0(tp_dev_pread(f->s.dev, n, BLK, b * BLK));
}

/* Write a node as a valid block (blocknr and checksum right): only its
 * content is wrong. */
static void raw_put(struct fx *f, uint64_t b, uint8_t *n)
{
	le64_put(n + 8, b);
	le32_put(n, tp_block_csum(n, BLK, TP_BTREE_CSUM_XOR));
	REQ0(tp_dev_pwrite(f->s.dev, n, BLK, b * BLK));
}

/* ---- the fixture ---- */

static void fx_build(struct fx *f)
{
	su_set_ctx("corrupt_btree", 0);
	su_stack_create(&f->s, DEV_BLOCKS, DEV_BLOCKS, 256);
	f->info = (struct btree_info){.tm = f->s.tm, .levels = 1, .value_type = {.size = 8}};
	REQ0(btree_empty(&f->info, &f->root));
	for (uint64_t k = 0; k < NKEYS; k++) {
		uint8_t v[8];
		le64_put(v, k);
		uint64_t key = k * KEY_STEP;
		REQ0(btree_insert(&f->info, f->root, &key, v, &f->root, NULL));
	}
	su_stack_commit(&f->s);
	uint8_t n[BLK];
	raw_get(f, f->root, n);
	REQ(le32_get(n + 4) == BTREE_INTERNAL_NODE && n_nr(n) >= 4, "root: flags %u, %u entries",
	    le32_get(n + 4), n_nr(n));
}

/* A node allocated (refcount 1) in the open transaction; committed by the
 * caller. VALS are 8-byte values (children of an internal node). */
static uint64_t fx_node(struct fx *f, uint32_t flags, uint32_t vs, uint32_t nr,
			const uint64_t *keys, const uint64_t *vals)
{
	struct bm_block *blk;
	REQ0(tm_new_block(f->s.tm, &tp_btree_validator, &blk));
	uint8_t *d = bm_block_data(blk);
	uint32_t max = btree_max_entries(vs);
	le32_put(d + 4, flags);
	le32_put(d + 16, nr);
	le32_put(d + 20, max);
	le32_put(d + 24, vs);
	for (uint32_t i = 0; i < nr; i++) {
		le64_put(d + 32 + 8 * i, keys[i]);
		le64_put(d + 32 + 8 * max + (size_t)vs * i, vals[i]);
	}
	uint64_t b = bm_block_location(blk);
	tm_unlock(f->s.tm, blk);
	return b;
}

/* Point child I of the root at B (raw, after the last commit). */
static void fx_set_root_child(struct fx *f, uint32_t i, uint64_t b)
{
	uint8_t n[BLK];
	raw_get(f, f->root, n);
	set_child(n, i, b);
	raw_put(f, f->root, n);
}

static uint32_t fx_root_nr(struct fx *f)
{
	uint8_t n[BLK];
	raw_get(f, f->root, n);
	return n_nr(n);
}

static uint64_t fx_root_key(struct fx *f, uint32_t i)
{
	uint8_t n[BLK];
	raw_get(f, f->root, n);
	return n_key(n, i);
}

static uint64_t fx_root_child(struct fx *f, uint32_t i)
{
	uint8_t n[BLK];
	raw_get(f, f->root, n);
	return n_child(n, i);
}

/* Forget every cached block: the operations read the damage from the device. */
static void fx_reopen(struct fx *f)
{
	su_stack_reopen(&f->s);
	f->info.tm = f->s.tm;
}

/* ---- the operations ---- */

enum op { OP_LOOKUP, OP_NEXT, OP_HIGHEST, OP_INSERT, OP_REMOVE, OP_RANGE, OP_WALK, OP_DEL, NR_OPS };
static const char *const op_names[NR_OPS] = {"lookup", "lookup_next", "find_highest_key",
					      "insert", "remove", "remove_range", "walk", "del"};

static int count_fn(void *ctx, uint64_t key, const void *value)
{
	(void)key;
	(void)value;
	++*(uint64_t *)ctx;
	return 0;
}

/* Run OP aimed at KEY (a key the damaged part of the tree would hold). */
static int run_op(struct fx *f, enum op op, uint64_t key)
{
	uint8_t v[8];
	uint64_t k = key, found, nr, n = 0;
	le64_put(v, 7);
	switch (op) {
	case OP_LOOKUP:
		return btree_lookup(&f->info, f->root, &k, v);
	case OP_NEXT:
		return btree_lookup_next(&f->info, f->root, &k, &found, v);
	case OP_HIGHEST:
		return btree_find_highest_key(&f->info, f->root, NULL, &found);
	case OP_INSERT:
		k = key + 1; /* a new key: the walk must go all the way down */
		return btree_insert(&f->info, f->root, &k, v, &nr, NULL);
	case OP_REMOVE:
		return btree_remove(&f->info, f->root, &k, &nr);
	case OP_RANGE:
		return btree_remove_range(&f->info, f->root, NULL, 0, UINT64_MAX, &nr, &n);
	case OP_WALK:
		return btree_walk(&f->info, f->root, count_fn, &n);
	case OP_DEL:
		return btree_del(&f->info, f->root);
	default:
		return -EINVAL;
	}
}

#define ALL_OPS ((1u << NR_OPS) - 1)

/* OP must end; when it is in DETECT it must also fail as corrupt (a DAG, for
 * one, is only visible to the operations that visit a node twice). */
static void expect_corrupt(struct fx *f, const char *damage, enum op op, uint64_t key,
			   unsigned detect)
{
	int r = run_op(f, op, key);
	const char *msg = tm_error(f->s.tm);
	fprintf(stderr, "%s/%s: %d %s\n", damage, op_names[op], r, msg);
	if (!(detect & 1u << op)) {
		su_stack_destroy(&f->s);
		return;
	}
	REQ(r == -EUCLEAN, "%s on the %s tree: %d (%s), want -EUCLEAN (%s)", op_names[op], damage,
	    r, strerror(r < 0 ? -r : r), msg);
	REQ(strncmp(msg, "metadata corrupt: ", 18) == 0, "%s on the %s tree: message \"%s\"",
	    op_names[op], damage, msg);
	su_stack_destroy(&f->s);
}

/* ---- the damages ---- */

START_TEST(test_self)
{
	struct fx f;
	fx_build(&f);
	uint32_t last = fx_root_nr(&f) - 1;
	fx_set_root_child(&f, last, f.root);
	fx_reopen(&f);
	expect_corrupt(&f, "self", (enum op)_i, (NKEYS - 1) * KEY_STEP, ALL_OPS);
}
END_TEST

START_TEST(test_cycle)
{
	struct fx f;
	fx_build(&f);
	uint32_t last = fx_root_nr(&f) - 1;
	uint64_t key = fx_root_key(&f, last);
	uint64_t leaf = fx_root_child(&f, last);
	/* the leaf becomes an internal node whose one child is the root */
	uint8_t n[BLK];
	memset(n, 0, BLK);
	le32_put(n + 4, BTREE_INTERNAL_NODE);
	le32_put(n + 16, 1);
	le32_put(n + 20, btree_max_entries(8));
	le32_put(n + 24, 8);
	le64_put(n + 32, key);
	set_child(n, 0, f.root);
	raw_put(&f, leaf, n);
	fx_reopen(&f);
	expect_corrupt(&f, "cycle", (enum op)_i, key + KEY_STEP, ALL_OPS);
}
END_TEST

START_TEST(test_deep)
{
	struct fx f;
	fx_build(&f);
	/* the first and the last leaf, each at depth 14 */
	uint32_t last = fx_root_nr(&f) - 1;
	uint32_t at[2] = {0, last};
	uint64_t top[2];
	for (int c = 0; c < 2; c++) {
		uint64_t key = fx_root_key(&f, at[c]), below = fx_root_child(&f, at[c]);
		for (int i = 0; i < 13; i++)
			below = fx_node(&f, BTREE_INTERNAL_NODE, 8, 1, &key, &below);
		top[c] = below;
	}
	su_stack_commit(&f.s);
	fx_set_root_child(&f, 0, top[0]);
	fx_set_root_child(&f, last, top[1]);
	fx_reopen(&f);
	expect_corrupt(&f, "deep", (enum op)_i, KEY_STEP, ALL_OPS);
}
END_TEST

START_TEST(test_type)
{
	/* the first and the last child: 24-byte values where 8 belong */
	struct fx f;
	fx_build(&f);
	uint32_t last = fx_root_nr(&f) - 1;
	uint64_t keys[4], vals[4] = {0, 0, 0, 0};
	for (int i = 0; i < 4; i++)
		keys[i] = fx_root_key(&f, last) + (uint64_t)i * KEY_STEP;
	uint64_t hi = fx_node(&f, BTREE_LEAF_NODE, 24, 4, keys, vals);
	for (int i = 0; i < 4; i++)
		keys[i] = (uint64_t)i * KEY_STEP;
	uint64_t lo = fx_node(&f, BTREE_LEAF_NODE, 24, 4, keys, vals);
	su_stack_commit(&f.s);
	fx_set_root_child(&f, 0, lo);
	fx_set_root_child(&f, last, hi);
	fx_reopen(&f);
	expect_corrupt(&f, "type", (enum op)_i, KEY_STEP, ALL_OPS);
}
END_TEST

START_TEST(test_empty)
{
	struct fx f;
	fx_build(&f);
	uint64_t b = fx_node(&f, BTREE_INTERNAL_NODE, 8, 0, NULL, NULL);
	uint32_t last = fx_root_nr(&f) - 1;
	uint64_t b2 = fx_node(&f, BTREE_INTERNAL_NODE, 8, 0, NULL, NULL);
	su_stack_commit(&f.s);
	fx_set_root_child(&f, 0, b);
	fx_set_root_child(&f, last, b2);
	fx_reopen(&f);
	expect_corrupt(&f, "empty", (enum op)_i, KEY_STEP, ALL_OPS);
}
END_TEST

START_TEST(test_dag)
{
	/* nine internal levels of 252 entries, every entry the same child */
	struct fx f;
	fx_build(&f);
	uint32_t max = btree_max_entries(8);
	uint64_t keys[252], vals[252];
	uint64_t leaf_key = 0, leaf_val = 0;
	uint64_t below = fx_node(&f, BTREE_LEAF_NODE, 8, 1, &leaf_key, &leaf_val);
	for (int level = 0; level < 9; level++) {
		for (uint32_t i = 0; i < max; i++) {
			keys[i] = i;
			vals[i] = below;
		}
		below = fx_node(&f, BTREE_INTERNAL_NODE, 8, max, keys, vals);
	}
	su_stack_commit(&f.s);
	fx_set_root_child(&f, 0, below);
	fx_reopen(&f);
	expect_corrupt(&f, "dag", (enum op)_i, 0, 1u << OP_WALK | 1u << OP_DEL);
}
END_TEST

static Suite *corrupt_suite(void)
{
	Suite *s = suite_create("corrupt_btree");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {{"self", test_self}, {"cycle", test_cycle}, {"deep", test_deep},
		     {"type", test_type}, {"empty", test_empty}, {"dag", test_dag}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, TIMEOUT_S);
		tcase_add_loop_test(tc, cases[i].test, 0, NR_OPS);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	return su_main(1, "test_corrupt_btree", corrupt_suite);
}
