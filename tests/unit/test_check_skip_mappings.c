/* The strict checker's skip_mappings mode (thin_check --skip-mappings): on a
 * pool with tens of thousands of mappings it must not read one block of the
 * per-device mapping trees (a recording device notes every block read; an
 * independent walker, model_util's mc, says which blocks those trees hold),
 * must pass a pool whose mapping leaf is damaged (the full check fails it),
 * and must still fail a damaged superblock, device details tree or top level
 * of the mapping tree, and a subtree root that points outside the device.
 *
 * THINP_SEED picks the mappings, THINP_TEST_SCALE multiplies their number. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "io/dev_internal.h"
#include "model_util.h"
#include "pdata/block_manager.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "thin/check.h"
#include "thin/metadata.h"

#define META_BYTES       (32u << 20)
#define NR_DATA_BLOCKS   (1u << 20)
#define NR_THINS         4u
#define DEFAULT_MAPPINGS 40000u
#define DEFAULT_SEED     0x736b69706d6170ull
#define SB_MAPPING_ROOT  320u
#define SB_DETAILS_ROOT  328u
#define NODE_XOR         121107u

/* ---- a device that records which blocks were read ---- */

struct rec_dev {
	struct tp_dev dev;
	struct tp_dev *inner;
	uint8_t *read; /* per 4 KiB block: read at least once */
	uint64_t reads;
};

static struct rec_dev *to_rec(struct tp_dev *d)
{
	return tp_container_of(d, struct rec_dev, dev);
}

static int rec_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	struct rec_dev *r = to_rec(d);
	for (uint64_t b = off / TP_BLOCK_SIZE; len && b <= (off + len - 1) / TP_BLOCK_SIZE; b++)
		if (b < d->size / TP_BLOCK_SIZE)
			r->read[b] = 1;
	r->reads++;
	return tp_dev_pread(r->inner, buf, len, off);
}

static int rec_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	(void)d;
	(void)buf;
	(void)len;
	(void)off;
	return -EROFS; /* a checker never writes */
}

static int rec_flush(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static int rec_zero(struct tp_dev *d, uint64_t off, uint64_t len)
{
	(void)d;
	(void)off;
	(void)len;
	return -EROFS;
}

static int rec_resize(struct tp_dev *d, uint64_t size)
{
	(void)d;
	(void)size;
	return -EROFS;
}

static int rec_refresh(struct tp_dev *d)
{
	(void)d;
	return 0;
}

static void rec_close(struct tp_dev *d)
{
	struct rec_dev *r = to_rec(d);
	free(r->read);
	free(r);
}

static const struct tp_dev_ops rec_ops = {
	.pread = rec_pread,
	.pwrite = rec_pwrite,
	.flush = rec_flush,
	.write_zeroes = rec_zero,
	.discard = rec_zero,
	.resize = rec_resize,
	.refresh_size = rec_refresh,
	.close = rec_close,
};

/* A view of INNER (still owned by the caller) that records reads. */
static struct rec_dev *rec_new(struct tp_dev *inner)
{
	struct rec_dev *r = calloc(1, sizeof(*r));
	ck_assert(r);
	r->inner = inner;
	r->read = calloc(inner->size / TP_BLOCK_SIZE, 1);
	ck_assert(r->read);
	tp_dev_init(&r->dev, &rec_ops, "recording", inner->size, inner->align);
	return r;
}

/* ---- the pool ---- */

struct pool {
	struct tp_dev *meta;
	uint64_t nr_blocks;
	uint8_t *dev_node; /* per block: a node of a per-device mapping tree */
	uint8_t *top_node; /* per block: a node of the top level of the mapping tree */
	uint64_t nr_dev_nodes, nr_dev_leaves, first_dev_leaf, mappings;
};

static int count_leaf(void *ctx, uint64_t key, const uint8_t *value)
{
	(void)key;
	(void)value;
	(*(uint64_t *)ctx)++;
	return 0;
}

/* Thins 1..NR_THINS with random mappings (thin 4 a snapshot of thin 1, so
 * subtrees are shared), committed; then the node sets from the walker. */
static void build_pool(struct pool *p, uint64_t seed, uint64_t mappings)
{
	struct mu_rng rng;
	struct tmd *md;
	char err[512];
	struct tmd_open_args a = { .cache_blocks = 4096 };

	memset(p, 0, sizeof(*p));
	mu_rng_init(&rng, seed);
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &p->meta), 0);
	a.meta = p->meta;
	ck_assert_msg(!tmd_format(&a, 128, NR_DATA_BLOCKS, &md, err, sizeof(err)), "%s", err);
	for (uint64_t t = 1; t < NR_THINS; t++)
		ck_assert_int_eq(tmd_create_thin(md, t), 0);
	for (uint64_t i = 0; i < mappings; i++) {
		uint64_t b, t = 1 + mu_below(&rng, NR_THINS - 1);
		ck_assert_int_eq(tmd_alloc_data_block(md, &b), 0);
		ck_assert_int_eq(tmd_insert(md, t, mu_below(&rng, 4 * mappings), b), 0);
	}
	ck_assert_int_eq(tmd_commit(md), 0);
	ck_assert_int_eq(tmd_create_snap(md, NR_THINS, 1), 0);
	ck_assert_int_eq(tmd_close(md), 0);

	uint8_t sb[TP_BLOCK_SIZE];
	ck_assert_int_eq(tp_dev_pread(p->meta, sb, sizeof(sb), 0), 0);
	uint64_t root = le64_get(sb + SB_MAPPING_ROOT);
	struct mu_mc top, all;
	uint64_t n = 0;
	ck_assert_int_eq(mu_mc_init(&top, p->meta), 0);
	ck_assert_msg(!mu_mc_btree(&top, root, 1, 8, NULL, NULL, NULL), "%s", top.err);
	ck_assert_int_eq(mu_mc_init(&all, p->meta), 0);
	ck_assert_msg(!mu_mc_btree(&all, root, 2, 8, count_leaf, &n, NULL), "%s", all.err);
	p->nr_blocks = p->meta->size / TP_BLOCK_SIZE;
	p->dev_node = calloc(p->nr_blocks, 1);
	p->top_node = calloc(p->nr_blocks, 1);
	ck_assert(p->dev_node && p->top_node);
	for (uint64_t b = 0; b < p->nr_blocks; b++) {
		p->top_node[b] = top.kind[b] == MU_NODE;
		if (all.kind[b] != MU_NODE || p->top_node[b])
			continue;
		p->dev_node[b] = 1;
		p->nr_dev_nodes++;
		if (all.height[b] == 0) {
			if (!p->nr_dev_leaves)
				p->first_dev_leaf = b;
			p->nr_dev_leaves++;
		}
	}
	p->mappings = n;
	mu_mc_free(&top);
	mu_mc_free(&all);
}

static void pool_free(struct pool *p)
{
	tp_dev_close(p->meta);
	free(p->dev_node);
	free(p->top_node);
}

struct msgs {
	char text[2048];
	unsigned n;
};

static void collect(void *ctx, const char *msg)
{
	struct msgs *m = ctx;
	size_t used = strlen(m->text);
	if (m->n++ < 6 && used + 3 < sizeof(m->text))
		snprintf(m->text + used, sizeof(m->text) - used, "%s%s", used ? " | " : "", msg);
}

/* Check DEV with or without skip_mappings; *blocks_read and *dev_read (the
 * mapping-tree nodes among them) may be NULL. Returns the error count. */
static unsigned check(struct pool *p, struct tp_dev *dev, bool skip, struct msgs *m,
                      uint64_t *blocks_read, uint64_t *dev_read)
{
	struct rec_dev *r = rec_new(dev);
	struct tcheck_opts o = { .skip_mappings = skip };
	unsigned nerr = 0;
	memset(m, 0, sizeof(*m));
	ck_assert_int_eq(tcheck_run(&r->dev, &o, collect, m, &nerr), 0);
	uint64_t nb = 0, nd = 0;
	for (uint64_t b = 0; b < p->nr_blocks; b++) {
		nb += r->read[b];
		nd += r->read[b] && p->dev_node[b];
	}
	if (blocks_read)
		*blocks_read = nb;
	if (dev_read)
		*dev_read = nd;
	tp_dev_close(&r->dev);
	return nerr;
}

static uint64_t seed_used(void)
{
	uint64_t seed = mu_seed(DEFAULT_SEED);
	fprintf(stderr, "skip_mappings: seed %#" PRIx64 " (THINP_SEED)\n", seed);
	return seed;
}

/* A private copy of the pool's metadata. */
static struct tp_dev *copy_meta(struct pool *p)
{
	struct tp_dev *d;
	uint8_t *buf = malloc(META_BYTES);
	ck_assert(buf);
	ck_assert_int_eq(tp_dev_open_mem(META_BYTES, &d), 0);
	ck_assert_int_eq(tp_dev_pread(p->meta, buf, META_BYTES, 0), 0);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, META_BYTES, 0), 0);
	free(buf);
	return d;
}

/* A copy with byte OFF changed (the block's checksum is left stale). */
static struct tp_dev *damaged(struct pool *p, uint64_t off)
{
	struct tp_dev *d = copy_meta(p);
	uint8_t v;
	ck_assert_int_eq(tp_dev_pread(d, &v, 1, off), 0);
	v ^= 0x5a;
	ck_assert_int_eq(tp_dev_pwrite(d, &v, 1, off), 0);
	return d;
}

START_TEST(test_skip_reads_no_mapping_node)
{
	struct pool p;
	struct msgs m;
	uint64_t full_blocks, full_dev, skip_blocks, skip_dev;

	/* no fewer than 24000: a tree of over 100 mapping leaves, what the checks below need */
	build_pool(&p, seed_used(), mu_scaled(DEFAULT_MAPPINGS, 24000));
	ck_assert_msg(p.nr_dev_leaves > 100, "only %" PRIu64 " mapping leaves", p.nr_dev_leaves);
	ck_assert_msg(check(&p, p.meta, false, &m, &full_blocks, &full_dev) == 0, "full: %s",
	              m.text);
	ck_assert_msg(check(&p, p.meta, true, &m, &skip_blocks, &skip_dev) == 0, "skip: %s",
	              m.text);
	fprintf(stderr,
	        "skip_mappings: %" PRIu64 " mappings in %" PRIu64 " mapping-tree nodes (%" PRIu64
	        " leaves); blocks read: full check %" PRIu64 " (%" PRIu64
	        " of them mapping-tree nodes), skip_mappings %" PRIu64 " (%" PRIu64 ")\n",
	        p.mappings, p.nr_dev_nodes, p.nr_dev_leaves, full_blocks, full_dev, skip_blocks,
	        skip_dev);
	ck_assert_uint_eq(full_dev, p.nr_dev_nodes);
	ck_assert_msg(skip_dev == 0, "skip_mappings read %" PRIu64 " mapping-tree nodes", skip_dev);
	ck_assert_uint_le(skip_blocks + p.nr_dev_nodes, full_blocks);
	pool_free(&p);
}
END_TEST

START_TEST(test_skip_passes_a_damaged_leaf)
{
	struct pool p;
	struct msgs m;

	build_pool(&p, seed_used(), 2000);
	struct tp_dev *d = damaged(&p, p.first_dev_leaf * TP_BLOCK_SIZE + 100);
	ck_assert_msg(check(&p, d, false, &m, NULL, NULL) > 0,
	              "the full check passed a damaged leaf");
	ck_assert_msg(strstr(m.text, "checksum"), "full check: %s", m.text);
	ck_assert_msg(check(&p, d, true, &m, NULL, NULL) == 0, "skip_mappings: %s", m.text);
	tp_dev_close(d);
	pool_free(&p);
}
END_TEST

/* What skip_mappings still reads must still be judged. */
START_TEST(test_skip_fails_damage_above_the_leaves)
{
	struct pool p;
	struct msgs m;
	uint8_t sb[TP_BLOCK_SIZE];
	uint64_t top = 0;

	build_pool(&p, seed_used(), 2000);
	ck_assert_int_eq(tp_dev_pread(p.meta, sb, sizeof(sb), 0), 0);
	for (uint64_t b = 0; b < p.nr_blocks && !top; b++)
		if (p.top_node[b])
			top = b;
	ck_assert(top);
	const struct {
		const char *what, *says;
		uint64_t off;
	} cases[] = {
		{ "superblock", "superblock: bad checksum", 100 },
		{ "device details tree", "device details tree",
		  le64_get(sb + SB_DETAILS_ROOT) * TP_BLOCK_SIZE + 40 },
		{ "top level of the mapping tree", "checksum", top * TP_BLOCK_SIZE + 40 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tp_dev *d = damaged(&p, cases[i].off);
		ck_assert_msg(check(&p, d, true, &m, NULL, NULL) > 0,
		              "skip_mappings passed a damaged %s", cases[i].what);
		ck_assert_msg(strstr(m.text, cases[i].says), "damaged %s: %s", cases[i].what,
		              m.text);
		tp_dev_close(d);
	}
	pool_free(&p);
}
END_TEST

/* A subtree root outside the device: the top-level leaf is rewritten (and
 * resealed) so one device points past the end. */
START_TEST(test_skip_checks_subtree_roots)
{
	struct pool p;
	struct msgs m;
	uint8_t node[TP_BLOCK_SIZE];
	uint64_t top = 0;

	build_pool(&p, seed_used(), 500);
	for (uint64_t b = 0; b < p.nr_blocks && !top; b++)
		if (p.top_node[b])
			top = b;
	ck_assert_int_eq(tp_dev_pread(p.meta, node, sizeof(node), top * TP_BLOCK_SIZE), 0);
	ck_assert_uint_eq(le32_get(node + 4) & 2u, 2u); /* a leaf: few devices */
	uint32_t max = le32_get(node + 20);
	le64_put(node + 32 + 8 * max, p.nr_blocks + 7);
	le32_put(node, tp_block_csum(node, TP_BLOCK_SIZE, NODE_XOR));
	struct tp_dev *d = copy_meta(&p);
	ck_assert_int_eq(tp_dev_pwrite(d, node, sizeof(node), top * TP_BLOCK_SIZE), 0);
	ck_assert_msg(check(&p, d, true, &m, NULL, NULL) > 0, "skip_mappings: %s", m.text);
	ck_assert_msg(strstr(m.text, "beyond the end of the metadata device"), "%s", m.text);
	tp_dev_close(d);
	pool_free(&p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("check_skip_mappings");
	TCase *tc = tcase_create("skip_mappings");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_skip_reads_no_mapping_node);
	tcase_add_test(tc, test_skip_passes_a_damaged_leaf);
	tcase_add_test(tc, test_skip_fails_damage_above_the_leaves);
	tcase_add_test(tc, test_skip_checks_subtree_roots);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
