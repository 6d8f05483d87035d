/* Unit tests for impl/thin/check.c (the strict metadata checker).
 *
 * Valid images are built with the library (impl/thin/metadata.h) and must
 * check clean; then each corruption is applied to a copy of a valid image
 * (re-sealing checksums where the point is a semantic fault) and must be
 * reported with a specific phrase. Every verdict is also compared with the
 * real thin_check 0.9.0 when it is installed: both verdicts are printed, and
 * where 0.9.0 is known to catch the fault its rejection is asserted too.
 *
 * Randomised tests (churn, fuzz) use a fixed seed, overridable with
 * THINP_SEED, and print it on failure. */
#include "thin/check.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/dev.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

#define BLK            4096u
#define MiB            (1024ull * 1024ull)
#define META_SIZE      (8 * MiB)
#define NR_DATA_BLOCKS 100000u /* 7 data bitmaps, the last one partial */
#define XOR_SB         160774u
#define XOR_NODE       121107u
#define XOR_BITMAP     240779u
#define XOR_INDEX      160478u
#define PER_BITMAP     16320u

/* Set once in main() before any test forks; read-only afterwards (Check's
 * tests take no arguments, so file scope is the only way to pass them). */
static char scratch_dir[PATH_MAX];
static bool have_thin_check;
static uint64_t base_seed = 20240601;

/* ---- small utilities ------------------------------------------------------------------------ */

static void scratch_path(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", scratch_dir, name);
	ck_assert(n > 0 && (size_t)n < len);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct msgs {
	char *buf;
	size_t len, cap;
	unsigned n;
};

static void collect(void *ctx, const char *msg)
{
	struct msgs *m = ctx;
	size_t l = strlen(msg);
	if (m->len + l + 2 > m->cap) {
		size_t cap = (m->cap + l + 2) * 2;
		char *n = realloc(m->buf, cap);
		ck_assert_ptr_nonnull(n);
		m->buf = n;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, msg, l);
	m->len += l;
	m->buf[m->len++] = '\n';
	m->buf[m->len] = 0;
	m->n++;
}

static const char *msgs_text(const struct msgs *m)
{
	return m->buf ? m->buf : "";
}

static unsigned check_dev(struct tp_dev *d, const struct tcheck_opts *o, struct msgs *m)
{
	unsigned ne = 12345;
	int r = tcheck_run(d, o, collect, m, &ne);
	ck_assert_msg(r == 0, "tcheck_run failed: %s", strerror(-r));
	return ne;
}

static unsigned check_path(const char *path, const struct tcheck_opts *o, struct msgs *m)
{
	struct tp_dev *d;
	int r = tp_dev_open_file(path, TP_DEV_RDONLY, 0, &d);
	ck_assert_msg(r == 0, "cannot open %s: %s", path, strerror(-r));
	unsigned ne = check_dev(d, o, m);
	tp_dev_close(d);
	return ne;
}

/* Exit status of thin_check -q PATH, -1 when not installed. */
static int thin_check_status(const char *path)
{
	if (!have_thin_check)
		return -1;
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "thin_check -q '%s' >/dev/null 2>&1", path);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *verdict(int st)
{
	return st < 0 ? "not installed" : st == 0 ? "accepted (exit 0)" : "rejected (exit != 0)";
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(in >= 0 && out >= 0, "copy %s -> %s: %s", from, to, strerror(errno));
	static char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert(write(out, buf, (size_t)n) == n);
	ck_assert(n == 0);
	close(in);
	close(out);
}

/* ---- building valid images with the library --------------------------------------------------- */

#define B(x)                                                                                   \
	do {                                                                                   \
		int r_ = (x);                                                                  \
		ck_assert_msg(r_ == 0, "%s failed (%d): %s", #x, r_, md ? tmd_error(md) : ""); \
	} while (0)

struct pool {
	struct tp_dev *dev;
	struct tmd *md;
};

static void pool_format(struct pool *p, const char *path, uint64_t size)
{
	char err[512] = "";
	unlink(path);
	int r = tp_dev_open_file(path, TP_DEV_CREATE, size, &p->dev);
	ck_assert_msg(r == 0, "create %s: %s", path, strerror(-r));
	struct tmd_open_args a = { .meta = p->dev };
	r = tmd_format(&a, 128, NR_DATA_BLOCKS, &p->md, err, sizeof(err));
	ck_assert_msg(r == 0, "tmd_format: %s", err);
}

static void pool_open(struct pool *p, const char *path)
{
	char err[512] = "";
	int r = tp_dev_open_file(path, 0, 0, &p->dev);
	ck_assert_msg(r == 0, "open %s: %s", path, strerror(-r));
	struct tmd_open_args a = { .meta = p->dev };
	r = tmd_open(&a, &p->md, err, sizeof(err));
	ck_assert_msg(r == 0, "tmd_open: %s", err);
}

static void pool_close(struct pool *p)
{
	struct tmd *md = p->md;
	B(tmd_close(md));
	tp_dev_close(p->dev);
}

static void map_new(struct tmd *md, uint64_t dev, uint64_t vblock)
{
	uint64_t b;
	B(tmd_alloc_data_block(md, &b));
	B(tmd_insert(md, dev, vblock, b));
}

/* "Save" an image: copy the file while the pool is closed. */
static void save_as(struct pool *p, const char *path, const char *name)
{
	char to[PATH_MAX];
	pool_close(p);
	scratch_path(to, sizeof(to), name);
	copy_file(path, to);
	pool_open(p, path);
}

static void build_images(void)
{
	char path[PATH_MAX];
	struct pool p;
	struct tmd *md;

	/* empty pool */
	scratch_path(path, sizeof(path), "empty.img");
	pool_format(&p, path, META_SIZE);
	pool_close(&p);

	/* one device, 100 mappings */
	scratch_path(path, sizeof(path), "basic.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	B(tmd_create_thin(md, 0));
	for (uint64_t i = 0; i < 100; i++)
		map_new(md, 0, i * 3);
	pool_close(&p);

	/* origin + snapshots all sharing one subtree (metadata count 5 ->
	 * overflow tree), then writes that unshare it step by step so the
	 * data counts reach 2 and then 4 (data overflow tree) */
	scratch_path(path, sizeof(path), "work.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	B(tmd_create_thin(md, 0));
	for (uint64_t i = 0; i < 100; i++)
		map_new(md, 0, i);
	B(tmd_commit(md));
	B(tmd_create_snap(md, 1, 0));
	B(tmd_create_snap(md, 2, 0));
	B(tmd_create_snap(md, 3, 0));
	B(tmd_create_snap(md, 4, 1));
	save_as(&p, path, "shared.img");
	md = p.md;
	map_new(md, 1, 1000);
	save_as(&p, path, "count2.img");
	md = p.md;
	map_new(md, 2, 1000);
	map_new(md, 3, 5); /* overwrite: drops one reference of the old block */
	save_as(&p, path, "count4.img");
	pool_close(&p);

	/* held metadata snapshot, with later changes sharing and unsharing
	 * nodes with it */
	scratch_path(path, sizeof(path), "held.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	B(tmd_create_thin(md, 0));
	for (uint64_t i = 0; i < 300; i++)
		map_new(md, 0, i * 7);
	B(tmd_create_thin(md, 9));
	map_new(md, 9, 1);
	B(tmd_reserve_metadata_snap(md));
	for (uint64_t i = 0; i < 50; i++)
		map_new(md, 0, 100000 + i);
	B(tmd_create_snap(md, 1, 0));
	map_new(md, 1, 3);
	B(tmd_delete_thin(md, 9));
	save_as(&p, path, "held-copy.img");
	md = p.md;
	/* and released again: the held trees must be freed exactly */
	B(tmd_release_metadata_snap(md));
	save_as(&p, path, "released.img");
	pool_close(&p);

	/* a metadata snapshot taken with nothing changed since: the held
	 * copy's roots are the live roots */
	scratch_path(path, sizeof(path), "held-fresh.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	B(tmd_create_thin(md, 0));
	for (uint64_t i = 0; i < 50; i++)
		map_new(md, 0, i);
	B(tmd_reserve_metadata_snap(md));
	pool_close(&p);

	/* two-level trees: thousands of mappings, a snapshot partly unshared */
	scratch_path(path, sizeof(path), "big.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	B(tmd_create_thin(md, 0));
	for (uint64_t i = 0; i < 5000; i++)
		map_new(md, 0, i);
	B(tmd_create_thin(md, 1));
	for (uint64_t i = 0; i < 3000; i++)
		map_new(md, 1, 1000000 + i * 11);
	B(tmd_commit(md));
	B(tmd_create_snap(md, 2, 0));
	for (uint64_t i = 0; i < 10; i++)
		map_new(md, 2, i * 450);
	pool_close(&p);

	/* many devices: top-level and details trees with internal nodes */
	scratch_path(path, sizeof(path), "manydevs.img");
	pool_format(&p, path, META_SIZE);
	md = p.md;
	for (uint64_t d = 0; d < 300; d++) {
		B(tmd_create_thin(md, d * 5));
		map_new(md, d * 5, d);
		map_new(md, d * 5, d + 1000);
	}
	B(tmd_commit(md));
	for (uint64_t d = 0; d < 40; d++)
		B(tmd_create_snap(md, 2000 + d, d * 5));
	for (uint64_t d = 0; d < 300; d += 7)
		B(tmd_delete_thin(md, d * 5));
	pool_close(&p);
}

/* ---- raw access to an image (for corruptions) ------------------------------------------------ */

struct raw {
	char path[PATH_MAX];
	int fd;
	struct thin_superblock sb;
	struct sm_root dsm, msm;
};

static void rd(struct raw *r, uint64_t b, uint8_t *buf)
{
	ck_assert_msg(pread(r->fd, buf, BLK, (off_t)(b * BLK)) == BLK, "read block %" PRIu64, b);
}

static void wr(struct raw *r, uint64_t b, const uint8_t *buf)
{
	ck_assert_msg(pwrite(r->fd, buf, BLK, (off_t)(b * BLK)) == BLK, "write block %" PRIu64, b);
}

static void seal(uint8_t *buf, uint32_t xor_const)
{
	le32_put(buf, tp_block_csum(buf, BLK, xor_const));
}

/* Flip MASK in byte AT of block B without resealing it: only its checksum is wrong. */
static void flip_byte(struct raw *r, uint64_t b, size_t at, uint8_t mask)
{
	uint8_t buf[BLK];
	rd(r, b, buf);
	buf[at] ^= mask;
	wr(r, b, buf);
}

static void raw_load_sb(struct raw *r)
{
	uint8_t buf[BLK];
	rd(r, 0, buf);
	thin_sb_unpack(buf, &r->sb);
	sm_root_unpack(r->sb.data_sm_root, &r->dsm);
	sm_root_unpack(r->sb.metadata_sm_root, &r->msm);
}

/* Copy image BASE to a scratch file named after the test and open it. */
static void raw_copy(struct raw *r, const char *base, const char *name)
{
	char from[PATH_MAX];
	scratch_path(from, sizeof(from), base);
	scratch_path(r->path, sizeof(r->path), name);
	copy_file(from, r->path);
	r->fd = open(r->path, O_RDWR);
	ck_assert(r->fd >= 0);
	raw_load_sb(r);
}

static void raw_close(struct raw *r)
{
	close(r->fd);
}

static uint32_t n_flags(const uint8_t *n)
{
	return le32_get(n + 4);
}
static uint32_t n_nr(const uint8_t *n)
{
	return le32_get(n + 16);
}
static uint32_t n_max(const uint8_t *n)
{
	return le32_get(n + 20);
}
static uint32_t n_vs(const uint8_t *n)
{
	return le32_get(n + 24);
}
static uint64_t n_key(const uint8_t *n, uint32_t i)
{
	return le64_get(n + 32 + 8 * i);
}
static uint8_t *n_val(uint8_t *n, uint32_t i)
{
	return n + 32 + 8 * n_max(n) + n_vs(n) * i;
}

/* The leaf that holds (or would hold) KEY. */
static uint64_t find_leaf(struct raw *r, uint64_t root, uint64_t key)
{
	uint8_t n[BLK];
	uint64_t b = root;
	for (int depth = 0; depth < 16; depth++) {
		rd(r, b, n);
		if (n_flags(n) == 2)
			return b;
		uint32_t i = 0;
		while (i + 1 < n_nr(n) && n_key(n, i + 1) <= key)
			i++;
		b = le64_get(n_val(n, i));
	}
	ck_abort_msg("tree too deep");
	return 0;
}

/* Index of KEY in a leaf, or abort. */
static uint32_t leaf_index(const uint8_t *n, uint64_t key)
{
	for (uint32_t i = 0; i < n_nr(n); i++)
		if (n_key(n, i) == key)
			return i;
	ck_abort_msg("key %" PRIu64 " not in the leaf", key);
	return 0;
}

/* Root of device DEV's mapping subtree. */
static uint64_t dev_root(struct raw *r, uint64_t dev)
{
	uint8_t n[BLK];
	uint64_t l = find_leaf(r, r->sb.data_mapping_root, dev);
	rd(r, l, n);
	return le64_get(n_val(n, leaf_index(n, dev)));
}

/* Leaves of a tree, left to right. */
static size_t leaves(struct raw *r, uint64_t b, uint64_t *out, size_t max, size_t n_out)
{
	uint8_t n[BLK];
	rd(r, b, n);
	if (n_flags(n) == 2) {
		if (n_out < max)
			out[n_out] = b;
		return n_out + 1;
	}
	uint32_t nr = n_nr(n);
	uint64_t kids[256];
	for (uint32_t i = 0; i < nr && i < 256; i++)
		kids[i] = le64_get(n_val(n, i));
	for (uint32_t i = 0; i < nr && i < 256; i++)
		n_out = leaves(r, kids[i], out, max, n_out);
	return n_out;
}

/* Bitmap block and index entry slot of block B in a space map. For the
 * metadata space map the index is one block; for the data space map it is
 * a btree leaf. */
struct sm_slot {
	uint64_t index_block; /* metadata index block or data index leaf */
	uint32_t index_off;   /* byte offset of the index_entry in it */
	uint64_t bitmap;
	uint32_t entry; /* entry within the bitmap */
	uint32_t xor_index;
};

static void sm_locate(struct raw *r, bool data, uint64_t b, struct sm_slot *s)
{
	uint8_t n[BLK];
	uint64_t i = b / PER_BITMAP;
	s->entry = (uint32_t)(b % PER_BITMAP);
	if (data) {
		s->index_block = find_leaf(r, r->dsm.bitmap_root, i);
		rd(r, s->index_block, n);
		uint32_t k = leaf_index(n, i);
		s->index_off = (uint32_t)(n_val(n, k) - n);
		s->xor_index = XOR_NODE;
	} else {
		s->index_block = r->msm.bitmap_root;
		rd(r, s->index_block, n);
		s->index_off = (uint32_t)(16 + 16 * i);
		s->xor_index = XOR_INDEX;
	}
	s->bitmap = le64_get(n + s->index_off);
}

static unsigned sm_get(struct raw *r, bool data, uint64_t b)
{
	struct sm_slot s;
	uint8_t bm[BLK];
	sm_locate(r, data, b, &s);
	rd(r, s.bitmap, bm);
	return sm_bitmap_get(bm, s.entry);
}

/* Set a raw 2-bit count and re-seal the bitmap (counters left alone). */
static void sm_set(struct raw *r, bool data, uint64_t b, unsigned v)
{
	struct sm_slot s;
	uint8_t bm[BLK];
	sm_locate(r, data, b, &s);
	rd(r, s.bitmap, bm);
	sm_bitmap_set(bm, s.entry, v);
	seal(bm, XOR_BITMAP);
	wr(r, s.bitmap, bm);
}

/* Add DELTA to the nr_free of the index entry covering B, re-sealed. */
static void sm_add_nr_free(struct raw *r, bool data, uint64_t b, int delta)
{
	struct sm_slot s;
	uint8_t n[BLK];
	sm_locate(r, data, b, &s);
	rd(r, s.index_block, n);
	le32_put(n + s.index_off + 8, (uint32_t)((int)le32_get(n + s.index_off + 8) + delta));
	seal(n, s.xor_index);
	wr(r, s.index_block, n);
}

/* Rewrite the superblock from r->sb / r->dsm / r->msm, re-sealed. */
static void sb_write(struct raw *r)
{
	uint8_t buf[BLK];
	rd(r, 0, buf);
	sm_root_pack(&r->dsm, (uint8_t *)r->sb.data_sm_root);
	sm_root_pack(&r->msm, (uint8_t *)r->sb.metadata_sm_root);
	thin_sb_pack(&r->sb, buf);
	seal(buf, XOR_SB);
	wr(r, 0, buf);
}

/* First block (of the data or metadata space map) whose raw count is V. */
static uint64_t first_with_count(struct raw *r, bool data, unsigned v)
{
	uint64_t nb = data ? r->dsm.nr_blocks : r->msm.nr_blocks;
	uint8_t bm[BLK];
	uint64_t cur = UINT64_MAX;
	for (uint64_t b = 0; b < nb; b++) {
		struct sm_slot s;
		if (b % PER_BITMAP == 0 || cur == UINT64_MAX) {
			sm_locate(r, data, b, &s);
			cur = s.bitmap;
			rd(r, cur, bm);
		}
		if (sm_bitmap_get(bm, (uint32_t)(b % PER_BITMAP)) == v)
			return b;
	}
	ck_abort_msg("no block with count %u", v);
	return 0;
}

/* ---- verdicts ----------------------------------------------------------------------------- */

enum {
	TC_ANY = -1,
	TC_ACCEPTS = 0,
	TC_CATCHES = 1
};

/* The checker must report at least one fault containing PHRASE; when
 * thin_check 0.9.0 is known to catch this fault (TC_CATCHES) it must
 * reject the image too. Returns the number of faults. */
static unsigned expect_fault(struct raw *r, const char *phrase, int tc_expect)
{
	struct msgs m = { 0 };
	raw_close(r);
	unsigned ne = check_path(r->path, NULL, &m);
	int tc = thin_check_status(r->path);
	printf("[%s] thinp check: %u fault%s; thin_check 0.9.0: %s%s\n%s\n",
	       strrchr(r->path, '/') + 1, ne, ne == 1 ? "" : "s", verdict(tc),
	       tc_expect == TC_ACCEPTS ? " (0.9.0 is known to miss this)" : "", msgs_text(&m));
	fflush(stdout);
	ck_assert_msg(ne >= 1, "%s: no fault reported", r->path);
	ck_assert_msg(strstr(msgs_text(&m), phrase), "%s: no message contains \"%s\":\n%s", r->path,
	              phrase, msgs_text(&m));
	if (tc_expect == TC_CATCHES && tc >= 0)
		ck_assert_msg(tc != 0, "%s: thin_check 0.9.0 accepted it", r->path);
	free(m.buf);
	return ne;
}

/* ---- valid images -------------------------------------------------------------------------- */

static void expect_clean(const char *name)
{
	char path[PATH_MAX];
	struct msgs m = { 0 };
	scratch_path(path, sizeof(path), name);
	unsigned ne = check_path(path, NULL, &m);
	int tc = thin_check_status(path);
	printf("[%s] thinp check: %u faults; thin_check 0.9.0: %s\n%s", name, ne, verdict(tc),
	       msgs_text(&m));
	fflush(stdout);
	ck_assert_msg(ne == 0, "%s: valid library output flagged:\n%s", name, msgs_text(&m));
	ck_assert_msg(m.n == 0, "%s: messages on a clean image:\n%s", name, msgs_text(&m));
	if (tc >= 0)
		ck_assert_msg(tc == 0, "%s: thin_check 0.9.0 rejects library output", name);
	free(m.buf);
}

START_TEST(test_valid_images)
{
	static const char *const names[] = {
		"empty.img",     "basic.img",      "shared.img",   "count2.img", "count4.img",
		"held-copy.img", "held-fresh.img", "released.img", "big.img",    "manydevs.img",
	};
	expect_clean(names[_i]);
}
END_TEST

/* The valid images really exercise what they are meant to. */
START_TEST(test_valid_images_have_the_features)
{
	struct raw r;
	uint8_t n[BLK];

	/* shared: the subtree root is counted 5 times -> metadata overflow */
	raw_copy(&r, "shared.img", "features-shared.img");
	ck_assert_uint_eq(sm_get(&r, false, dev_root(&r, 0)), 3);
	ck_assert_uint_eq(dev_root(&r, 0), dev_root(&r, 4));
	rd(&r, r.msm.ref_count_root, n);
	ck_assert_uint_ge(n_nr(n), 1);
	raw_close(&r);

	/* count4: data blocks referenced by 4 leaves -> data overflow */
	raw_copy(&r, "count4.img", "features-count4.img");
	ck_assert_uint_eq(sm_get(&r, true, first_with_count(&r, true, 3)), 3);
	rd(&r, r.dsm.ref_count_root, n);
	ck_assert_uint_ge(n_nr(n), 1);
	raw_close(&r);

	/* held: a metadata snapshot is held */
	raw_copy(&r, "held-copy.img", "features-held.img");
	ck_assert_uint_ne(r.sb.held_root, 0);
	raw_close(&r);
	raw_copy(&r, "held-fresh.img", "features-held-fresh.img");
	{
		uint8_t c[BLK];
		struct thin_superblock copy;
		rd(&r, r.sb.held_root, c);
		thin_sb_unpack(c, &copy);
		ck_assert_uint_eq(copy.data_mapping_root, r.sb.data_mapping_root);
		ck_assert_uint_eq(sm_get(&r, false, r.sb.data_mapping_root), 2);
	}
	raw_close(&r);
	raw_copy(&r, "released.img", "features-released.img");
	ck_assert_uint_eq(r.sb.held_root, 0);
	raw_close(&r);

	/* big: two-level device trees */
	raw_copy(&r, "big.img", "features-big.img");
	rd(&r, dev_root(&r, 0), n);
	ck_assert_uint_eq(n_flags(n), 1);
	raw_close(&r);

	/* manydevs: two-level top-level and details trees */
	raw_copy(&r, "manydevs.img", "features-manydevs.img");
	rd(&r, r.sb.data_mapping_root, n);
	ck_assert_uint_eq(n_flags(n), 1);
	rd(&r, r.sb.device_details_root, n);
	ck_assert_uint_eq(n_flags(n), 1);
	raw_close(&r);
}
END_TEST

/* The same image through a memory device and with the option knobs. */
START_TEST(test_options)
{
	char path[PATH_MAX];
	struct msgs m = { 0 };
	struct tcheck_opts o = { .super_block_only = 1 };
	scratch_path(path, sizeof(path), "count4.img");
	ck_assert_uint_eq(check_path(path, &o, &m), 0);

	/* a leak demoted to a warning */
	struct raw r;
	raw_copy(&r, "basic.img", "opts-leak.img");
	uint64_t b = first_with_count(&r, true, 1);
	sm_set(&r, true, b, 2);
	raw_close(&r);
	o = (struct tcheck_opts){ .ignore_leaks = 1 };
	ck_assert_uint_eq(check_path(r.path, &o, &m), 0);
	ck_assert_ptr_nonnull(strstr(msgs_text(&m), "warning: "));
	o = (struct tcheck_opts){ .skip_data_counts = 1 };
	ck_assert_uint_eq(check_path(r.path, &o, &m), 0);
	o = (struct tcheck_opts){ 0 };
	ck_assert_uint_eq(check_path(r.path, &o, &m), 1);
	/* a NULL callback and NULL opts are fine */
	struct tp_dev *d;
	unsigned ne = 0;
	ck_assert_int_eq(tp_dev_open_file(r.path, TP_DEV_RDONLY, 0, &d), 0);
	ck_assert_int_eq(tcheck_run(d, NULL, NULL, NULL, &ne), 0);
	ck_assert_uint_eq(ne, 1);
	tp_dev_close(d);

	/* report capping: every fault counted, few printed */
	raw_copy(&r, "basic.img", "opts-cap.img");
	for (uint64_t i = 0; i < 100; i++) {
		uint64_t x = first_with_count(&r, true, 1);
		sm_set(&r, true, x, 2);
	}
	raw_close(&r);
	struct msgs m2 = { 0 };
	o = (struct tcheck_opts){ .max_reports_per_kind = 5 };
	ck_assert_uint_eq(check_path(r.path, &o, &m2), 100);
	ck_assert_uint_eq(m2.n, 6);
	ck_assert_ptr_nonnull(strstr(msgs_text(&m2), "95 more"));
	/* the held-snapshot request knob */
	scratch_path(path, sizeof(path), "basic.img");
	o = (struct tcheck_opts){ .metadata_snap = 77 };
	struct msgs m3 = { 0 };
	ck_assert_uint_eq(check_path(path, &o, &m3), 1);
	ck_assert_ptr_nonnull(strstr(msgs_text(&m3), "not the requested block 77"));
	free(m.buf);
	free(m2.buf);
	free(m3.buf);
}
END_TEST

/* Metadata written by another implementation: thin_restore 0.9.0. Its
 * trees and counts must check clean; only its known torn update of the
 * metadata space map counters (it frees a template leaf after the commit:
 * nr_free, none_free_before and nr_allocated understate free space by one)
 * may be reported, and only as a non-fatal fault. */
START_TEST(test_thin_restore_output)
{
	if (system("thin_restore -V >/dev/null 2>&1") != 0) {
		printf("thin_restore not installed: skipped\n");
		return;
	}
	char xml[PATH_MAX], meta[PATH_MAX], cmd[3 * PATH_MAX];
	scratch_path(xml, sizeof(xml), "restore.xml");
	scratch_path(meta, sizeof(meta), "restore.img");
	FILE *f = fopen(xml, "w");
	ck_assert_ptr_nonnull(f);
	/* shared data blocks between devices, a range, several leaves */
	fprintf(f, "<superblock uuid=\"\" time=\"3\" transaction=\"5\" version=\"2\" "
	           "data_block_size=\"128\" nr_data_blocks=\"40000\">\n");
	uint64_t data = 0;
	for (int d = 1; d <= 6; d++) {
		int n = d == 3 ? 0 : 700 * d;
		fprintf(f,
		        "<device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" "
		        "creation_time=\"%d\" snap_time=\"3\">\n",
		        d, n + (d > 1 ? 1 : 0), d, d % 4);
		if (n)
			fprintf(f,
			        "<range_mapping origin_begin=\"0\" data_begin=\"%" PRIu64
			        "\" length=\"%d\" time=\"%d\"/>\n",
			        data, n, d % 4);
		data += (uint64_t)n;
		if (d > 1) /* block 5 of device 1, shared */
			fprintf(f, "<single_mapping origin_block=\"900000\" data_block=\"5\" "
			           "time=\"0\"/>\n");
		fprintf(f, "</device>\n");
	}
	fprintf(f, "</superblock>\n");
	ck_assert_int_eq(fclose(f), 0);
	int fd = open(meta, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0 && ftruncate(fd, (off_t)(16 * MiB)) == 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "thin_restore -q -i '%s' -o '%s' >/dev/null 2>&1", xml, meta);
	ck_assert_int_eq(system(cmd), 0);

	struct msgs m = { 0 }, w = { 0 };
	unsigned ne = check_path(meta, NULL, &m);
	printf("[thin_restore output] thinp check: %u faults; thin_check 0.9.0: %s\n%s\n", ne,
	       verdict(thin_check_status(meta)), msgs_text(&m));
	struct tcheck_opts o = { .ignore_leaks = 1 };
	ck_assert_uint_eq(check_path(meta, &o, &w), 0);
	/* every default-mode fault is one of the known counter quirks */
	for (const char *l = msgs_text(&m); *l; l = strchr(l, '\n') + 1)
		ck_assert_msg(!strncmp(l, "metadata space map", 18), "unexpected fault: %.*s",
		              (int)(strchr(l, '\n') - l), l);
	free(m.buf);
	free(w.buf);
}
END_TEST

/* ---- corruptions --------------------------------------------------------------------------- */

START_TEST(test_sb_bad_checksum)
{
	struct raw r;
	raw_copy(&r, "basic.img", "sb-csum.img");
	flip_byte(&r, 0, 1000, 1);
	expect_fault(&r, "superblock: bad checksum", TC_CATCHES);
}
END_TEST

START_TEST(test_sb_zeroed)
{
	struct raw r;
	uint8_t b[BLK] = { 0 };
	raw_copy(&r, "basic.img", "sb-zero.img");
	wr(&r, 0, b);
	expect_fault(&r, "not thin-pool metadata", TC_CATCHES);
}
END_TEST

START_TEST(test_sb_bad_magic)
{
	struct raw r;
	raw_copy(&r, "basic.img", "sb-magic.img");
	r.sb.magic = 27022011;
	sb_write(&r);
	expect_fault(&r, "bad magic 27022011", TC_ACCEPTS);
}
END_TEST

START_TEST(test_sb_fields)
{
	static const struct {
		const char *name, *phrase;
	} cases[] = {
		{ "sb-blocknr.img", "superblock: blocknr field says 5" },
		{ "sb-version.img", "version 7 is not supported" },
		{ "sb-incompat.img", "incompat_flags 0x1" },
		{ "sb-dbs.img", "data_block_size 100 sectors is invalid" },
		{ "sb-mbs.img", "metadata_block_size 16" },
		{ "sb-msm-big.img", "covers 999999 blocks" },
	};
	struct raw r;
	raw_copy(&r, "basic.img", cases[_i].name);
	switch (_i) {
	case 0:
		r.sb.blocknr = 5;
		break;
	case 1:
		r.sb.version = 7;
		break;
	case 2:
		r.sb.incompat_flags = 1;
		break;
	case 3:
		r.sb.data_block_size = 100;
		break;
	case 4:
		r.sb.metadata_block_size = 16;
		break;
	case 5:
		r.msm.nr_blocks = 999999;
		break;
	}
	sb_write(&r);
	expect_fault(&r, cases[_i].phrase, TC_ANY);
}
END_TEST

START_TEST(test_node_bad_checksum)
{
	struct raw r;
	raw_copy(&r, "basic.img", "node-csum.img");
	uint64_t leaf = dev_root(&r, 0);
	flip_byte(&r, leaf, BLK - 1, 0x40);
	expect_fault(&r, "bad checksum", TC_CATCHES);
}
END_TEST

START_TEST(test_node_wrong_blocknr)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "node-blocknr.img");
	uint64_t leaf = dev_root(&r, 0);
	rd(&r, leaf, n);
	le64_put(n + 8, leaf + 1);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "blocknr field says", TC_CATCHES);
}
END_TEST

START_TEST(test_bitmap_bad_checksum)
{
	struct raw r;
	struct sm_slot s;
	raw_copy(&r, "basic.img", "bitmap-csum.img");
	sm_locate(&r, true, 0, &s);
	flip_byte(&r, s.bitmap, BLK - 1, 0x80);
	expect_fault(&r, "data space map bitmap 0", TC_CATCHES);
}
END_TEST

START_TEST(test_metadata_bitmap_bad_checksum)
{
	struct raw r;
	struct sm_slot s;
	raw_copy(&r, "basic.img", "mbitmap-csum.img");
	sm_locate(&r, false, 0, &s);
	flip_byte(&r, s.bitmap, BLK - 1, 0x80);
	expect_fault(&r, "metadata space map bitmap 0", TC_CATCHES);
}
END_TEST

START_TEST(test_index_bad_checksum)
{
	struct raw r;
	raw_copy(&r, "basic.img", "index-csum.img");
	flip_byte(&r, r.msm.bitmap_root, BLK - 1, 1);
	expect_fault(&r, "metadata space map index at block", TC_CATCHES);
}
END_TEST

START_TEST(test_node_header_fields)
{
	static const char *const phrases[] = {
		"max_entries 250, expected 252",
		"value_size 16, expected 8",
		"flags 3 are neither",
		"nr_entries 300 exceeds",
	};
	struct raw r;
	uint8_t n[BLK];
	char name[64];
	snprintf(name, sizeof(name), "node-header-%d.img", _i);
	raw_copy(&r, "basic.img", name);
	uint64_t leaf = dev_root(&r, 0);
	rd(&r, leaf, n);
	uint32_t off[] = { 20, 24, 4, 16 }, val[] = { 250, 16, 3, 300 };
	le32_put(n + off[_i], val[_i]);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, phrases[_i], TC_CATCHES);
}
END_TEST

START_TEST(test_btree_cycle)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "big.img", "cycle.img");
	uint64_t root = dev_root(&r, 0);
	rd(&r, root, n);
	ck_assert_uint_eq(n_flags(n), 1);
	/* the last child points back at the root itself */
	le64_put(n_val(n, n_nr(n) - 1), root);
	seal(n, XOR_NODE);
	wr(&r, root, n);
	expect_fault(&r, "cycle", TC_ANY);
}
END_TEST

START_TEST(test_btree_deep_cycle)
{
	/* a leaf replaced by an internal node pointing at the root: the cycle
	 * spans two levels */
	struct raw r;
	uint8_t n[BLK], root_n[BLK];
	raw_copy(&r, "big.img", "cycle2.img");
	uint64_t root = dev_root(&r, 0);
	rd(&r, root, root_n);
	uint64_t child = le64_get(n_val(root_n, 1));
	rd(&r, child, n);
	memset(n + 4, 0, BLK - 4);
	le32_put(n + 4, 1);
	le64_put(n + 8, child);
	le32_put(n + 16, 1);
	le32_put(n + 20, 252);
	le32_put(n + 24, 8);
	le64_put(n + 32, n_key(root_n, 1));
	le64_put(n + 32 + 8 * 252, root);
	seal(n, XOR_NODE);
	wr(&r, child, n);
	expect_fault(&r, "cycle", TC_ANY);
}
END_TEST

START_TEST(test_keys_out_of_order)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "keys-order.img");
	uint64_t leaf = dev_root(&r, 0);
	rd(&r, leaf, n);
	uint64_t k3 = n_key(n, 3), k4 = n_key(n, 4);
	le64_put(n + 32 + 8 * 3, k4);
	le64_put(n + 32 + 8 * 4, k3);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "keys out of order", TC_CATCHES);
}
END_TEST

START_TEST(test_child_key_range)
{
	/* a parent key raised above its child's first key */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "big.img", "key-range.img");
	uint64_t root = dev_root(&r, 0);
	rd(&r, root, n);
	le64_put(n + 32 + 8 * 1, n_key(n, 1) + 3);
	seal(n, XOR_NODE);
	wr(&r, root, n);
	expect_fault(&r, "below its parent's key", TC_CATCHES);
}
END_TEST

START_TEST(test_node_underfilled)
{
	struct raw r;
	uint8_t n[BLK];
	uint64_t ls[64];
	raw_copy(&r, "big.img", "underfilled.img");
	size_t nl = leaves(&r, dev_root(&r, 0), ls, 64, 0);
	ck_assert_uint_ge(nl, 2);
	rd(&r, ls[0], n);
	le32_put(n + 16, 10);
	seal(n, XOR_NODE);
	wr(&r, ls[0], n);
	expect_fault(&r, "too few entries", TC_CATCHES);
}
END_TEST

START_TEST(test_leaves_at_different_depths)
{
	/* the root of device 1's two-level tree gets device 0's leaf-root
	 * sibling: replace child 0 by an internal node of the same keys */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "big.img", "depths.img");
	uint64_t root0 = dev_root(&r, 0), root1 = dev_root(&r, 1);
	rd(&r, root1, n);
	ck_assert_uint_eq(n_flags(n), 1);
	/* child 0 of device 1 becomes device 0's whole (two-level) tree:
	 * its keys 0..4999 are below device 1's keys, so only depth differs
	 * (and the parent key) */
	le64_put(n_val(n, 0), root0);
	le64_put(n + 32, 0);
	seal(n, XOR_NODE);
	wr(&r, root1, n);
	expect_fault(&r, "leaves at different depths", TC_ANY);
}
END_TEST

START_TEST(test_tree_type_mixup)
{
	/* the details root pointed at the top-level mapping tree's root */
	struct raw r;
	raw_copy(&r, "basic.img", "type-mixup.img");
	r.sb.device_details_root = r.sb.data_mapping_root;
	sb_write(&r);
	expect_fault(&r, "also as a node of the device details tree", TC_CATCHES);
}
END_TEST

START_TEST(test_data_count_2_to_1)
{
	struct raw r;
	raw_copy(&r, "count2.img", "dcount-2to1.img");
	uint64_t b = first_with_count(&r, true, 2);
	sm_set(&r, true, b, 1);
	char phrase[128];
	snprintf(phrase, sizeof(phrase),
	         "data block %" PRIu64
	         ": reference count 1 in the data space map, but 2 leaf nodes map it (too low",
	         b);
	ck_assert_uint_eq(expect_fault(&r, phrase, TC_ACCEPTS), 1);
}
END_TEST

START_TEST(test_data_count_1_to_2)
{
	struct raw r;
	raw_copy(&r, "count2.img", "dcount-1to2.img");
	uint64_t b = first_with_count(&r, true, 1);
	sm_set(&r, true, b, 2);
	char phrase[128];
	snprintf(phrase, sizeof(phrase),
	         "data block %" PRIu64
	         ": reference count 2 in the data space map, but 1 leaf node maps it (leaked)",
	         b);
	ck_assert_uint_eq(expect_fault(&r, phrase, TC_ACCEPTS), 1);
}
END_TEST

START_TEST(test_data_count_4_to_3)
{
	/* an overflow count lowered */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "count4.img", "dcount-4to3.img");
	uint64_t leaf = find_leaf(&r, r.dsm.ref_count_root, 0);
	rd(&r, leaf, n);
	ck_assert_uint_ge(n_nr(n), 1);
	ck_assert_uint_eq(le32_get(n_val(n, 0)), 4);
	le32_put(n_val(n, 0), 3);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "reference count 3 in the data space map, but 4 leaf nodes map it",
	             TC_ACCEPTS);
}
END_TEST

START_TEST(test_data_count_3_without_overflow)
{
	struct raw r;
	raw_copy(&r, "basic.img", "dcount-3.img");
	uint64_t b = first_with_count(&r, true, 1);
	sm_set(&r, true, b, 3);
	expect_fault(&r, "the overflow tree has no entry for it", TC_ANY);
}
END_TEST

START_TEST(test_data_overflow_without_3)
{
	/* an overflow entry whose bitmap count was lowered to 2 */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "count4.img", "dcount-ovf.img");
	uint64_t leaf = find_leaf(&r, r.dsm.ref_count_root, 0);
	rd(&r, leaf, n);
	uint64_t b = n_key(n, 0);
	sm_set(&r, true, b, 2);
	expect_fault(&r, "but its bitmap count is 2, not 3", TC_ANY);
}
END_TEST

START_TEST(test_metadata_count_too_low)
{
	/* the subtree root shared by devices 0 and 4 (count 2 in count4.img) */
	struct raw r;
	raw_copy(&r, "count4.img", "mcount-low.img");
	uint64_t b = dev_root(&r, 0);
	ck_assert_uint_eq(sm_get(&r, false, b), 2);
	sm_set(&r, false, b, 1);
	char phrase[160];
	snprintf(
	        phrase, sizeof(phrase),
	        "metadata block %" PRIu64
	        " (per-device mapping tree): reference count 1 in the metadata space map, but 2 references were found (too low",
	        b);
	ck_assert_uint_eq(expect_fault(&r, phrase, TC_CATCHES), 1);
}
END_TEST

START_TEST(test_metadata_count_overflow_too_low)
{
	/* shared.img: subtree root count 5 lives in the overflow tree */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "shared.img", "mcount-ovf.img");
	uint64_t b = dev_root(&r, 0);
	uint64_t leaf = find_leaf(&r, r.msm.ref_count_root, b);
	rd(&r, leaf, n);
	uint32_t i = leaf_index(n, b);
	ck_assert_uint_eq(le32_get(n_val(n, i)), 5);
	le32_put(n_val(n, i), 4);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "reference count 4 in the metadata space map, but 5 references",
	             TC_CATCHES);
}
END_TEST

START_TEST(test_metadata_leak)
{
	/* an unreferenced block marked allocated, with nr_free and
	 * nr_allocated adjusted so the leak is the only fault */
	struct raw r;
	raw_copy(&r, "basic.img", "mcount-leak.img");
	uint64_t b = r.msm.nr_blocks - 1;
	ck_assert_uint_eq(sm_get(&r, false, b), 0);
	sm_set(&r, false, b, 1);
	sm_add_nr_free(&r, false, b, -1);
	r.msm.nr_allocated++;
	sb_write(&r);
	char phrase[128];
	snprintf(
	        phrase, sizeof(phrase),
	        "metadata block %" PRIu64
	        " (unreferenced): reference count 1 in the metadata space map, but 0 references were found (leaked)",
	        b);
	ck_assert_uint_eq(expect_fault(&r, phrase, TC_CATCHES), 1);
}
END_TEST

START_TEST(test_mapping_beyond_data_device)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "beyond-data.img");
	uint64_t leaf = dev_root(&r, 0);
	rd(&r, leaf, n);
	le64_put(n_val(n, 7), (uint64_t)(NR_DATA_BLOCKS + 5) << 24);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "maps to data block 100005, beyond the data device (100000 blocks)",
	             TC_ACCEPTS);
}
END_TEST

START_TEST(test_mapping_time_in_future)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "future-time.img");
	uint64_t leaf = dev_root(&r, 0);
	rd(&r, leaf, n);
	le64_put(n_val(n, 2), le64_get(n_val(n, 2)) | 9);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "has time 9, later than the pool time 0", TC_ANY);
}
END_TEST

START_TEST(test_wrong_mapped_blocks)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "mapped-blocks.img");
	uint64_t leaf = find_leaf(&r, r.sb.device_details_root, 0);
	rd(&r, leaf, n);
	uint8_t *v = n_val(n, leaf_index(n, 0));
	ck_assert_uint_eq(le64_get(v), 100);
	le64_put(v, 101);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	ck_assert_uint_eq(
	        expect_fault(&r, "details say mapped_blocks 101 but its mapping tree", TC_ACCEPTS),
	        1);
}
END_TEST

START_TEST(test_details_times)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "shared.img", "details-time.img");
	uint64_t leaf = find_leaf(&r, r.sb.device_details_root, 2);
	rd(&r, leaf, n);
	uint8_t *v = n_val(n, leaf_index(n, 2));
	le32_put(v + 20, r.sb.time + 1);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "snapshotted_time 5, later than the pool time 4", TC_ANY);
}
END_TEST

START_TEST(test_device_missing_from_details)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "shared.img", "missing-details.img");
	uint64_t leaf = find_leaf(&r, r.sb.device_details_root, 1);
	rd(&r, leaf, n);
	uint32_t i = leaf_index(n, 1), nr = n_nr(n);
	/* drop entry i: shift the keys and the values */
	memmove(n + 32 + 8 * i, n + 32 + 8 * (i + 1), 8 * (nr - i - 1));
	memmove(n_val(n, i), n_val(n, i + 1), 24 * (nr - i - 1));
	le32_put(n + 16, nr - 1);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	ck_assert_uint_eq(
	        expect_fault(&r,
	                     "device 1 is in the mapping tree but missing from the details tree",
	                     TC_ACCEPTS),
	        1);
}
END_TEST

START_TEST(test_device_missing_from_mapping)
{
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "shared.img", "missing-mapping.img");
	uint64_t leaf = find_leaf(&r, r.sb.data_mapping_root, 4);
	rd(&r, leaf, n);
	uint32_t i = leaf_index(n, 4), nr = n_nr(n);
	ck_assert_uint_eq(i, nr - 1);
	le32_put(n + 16, nr - 1);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	/* the shared subtree root also loses a reference: count 5 stored, 4
	 * pointers left */
	expect_fault(&r, "device 4 is in the details tree but missing from the mapping tree",
	             TC_ANY);
}
END_TEST

START_TEST(test_wrong_nr_free)
{
	struct raw r;
	raw_copy(&r, "basic.img", "nr-free.img");
	sm_add_nr_free(&r, true, 0, -1);
	ck_assert_uint_eq(
	        expect_fault(&r, "index entry nr_free 16219, but the bitmap has 16220 free entries",
	                     TC_ACCEPTS),
	        1);
}
END_TEST

START_TEST(test_wrong_metadata_nr_free)
{
	struct raw r;
	raw_copy(&r, "basic.img", "m-nr-free.img");
	sm_add_nr_free(&r, false, 0, 2);
	expect_fault(&r, "metadata space map bitmap 0", TC_ACCEPTS);
}
END_TEST

START_TEST(test_none_free_before_too_high)
{
	struct raw r;
	uint8_t n[BLK];
	struct sm_slot s;
	raw_copy(&r, "basic.img", "nfb.img");
	sm_locate(&r, true, 0, &s);
	rd(&r, s.index_block, n);
	le32_put(n + s.index_off + 12, 5000);
	seal(n, XOR_NODE);
	wr(&r, s.index_block, n);
	expect_fault(&r, "none_free_before 5000, but entry 100 is already free", TC_ACCEPTS);
}
END_TEST

START_TEST(test_wrong_nr_allocated)
{
	struct raw r;
	raw_copy(&r, "basic.img", "nr-allocated.img");
	r.dsm.nr_allocated++;
	sb_write(&r);
	ck_assert_uint_eq(
	        expect_fault(
	                &r,
	                "data space map: nr_allocated is 101 in the superblock, but the bitmaps hold 100",
	                TC_ACCEPTS),
	        1);
}
END_TEST

START_TEST(test_wrong_metadata_nr_allocated)
{
	struct raw r;
	raw_copy(&r, "basic.img", "m-nr-allocated.img");
	r.msm.nr_allocated--;
	sb_write(&r);
	ck_assert_uint_eq(expect_fault(&r, "metadata space map: nr_allocated", TC_ACCEPTS), 1);
}
END_TEST

START_TEST(test_data_index_missing_bitmap)
{
	/* the data index leaf loses its last entry (bitmap 6) */
	struct raw r;
	uint8_t n[BLK];
	raw_copy(&r, "basic.img", "dindex-missing.img");
	uint64_t leaf = find_leaf(&r, r.dsm.bitmap_root, 6);
	rd(&r, leaf, n);
	ck_assert_uint_eq(n_key(n, n_nr(n) - 1), 6);
	le32_put(n + 16, n_nr(n) - 1);
	seal(n, XOR_NODE);
	wr(&r, leaf, n);
	expect_fault(&r, "data space map index has no entry for bitmap 6", TC_CATCHES);
}
END_TEST

START_TEST(test_truncated_half)
{
	struct raw r;
	raw_copy(&r, "big.img", "truncated-half.img");
	struct stat st;
	ck_assert_int_eq(fstat(r.fd, &st), 0);
	ck_assert_int_eq(ftruncate(r.fd, st.st_size / 2), 0);
	expect_fault(&r, "truncated", TC_ANY);
}
END_TEST

START_TEST(test_truncated_to_few_blocks)
{
	struct raw r;
	raw_copy(&r, "big.img", "truncated-few.img");
	ck_assert_int_eq(ftruncate(r.fd, 6 * BLK), 0);
	expect_fault(&r, "beyond the end of the metadata device (6 blocks)", TC_CATCHES);
}
END_TEST

START_TEST(test_truncated_tiny)
{
	struct raw r;
	raw_copy(&r, "basic.img", "truncated-tiny.img");
	ck_assert_int_eq(ftruncate(r.fd, 100), 0);
	raw_close(&r);
	struct msgs m = { 0 };
	unsigned ne = check_path(r.path, NULL, &m);
	ck_assert_uint_eq(ne, 1);
	ck_assert_ptr_nonnull(strstr(msgs_text(&m), "smaller than one 4 KiB block"));
	free(m.buf);
}
END_TEST

START_TEST(test_held_copy_bad_checksum)
{
	struct raw r;
	raw_copy(&r, "held-copy.img", "held-csum.img");
	flip_byte(&r, r.sb.held_root, 2000, 1);
	expect_fault(&r, "metadata snapshot superblock copy at block", TC_ANY);
}
END_TEST

START_TEST(test_held_copy_sm_roots)
{
	struct raw r;
	uint8_t b[BLK];
	raw_copy(&r, "held-copy.img", "held-smroot.img");
	rd(&r, r.sb.held_root, b);
	b[64] = 1;
	seal(b, XOR_SB);
	wr(&r, r.sb.held_root, b);
	ck_assert_uint_eq(expect_fault(&r, "its space map roots are not zeroed", TC_ANY), 1);
}
END_TEST

START_TEST(test_held_tree_unreferenced)
{
	/* dropping held_root leaves the snapshot's blocks counted: leaks */
	struct raw r;
	raw_copy(&r, "held-copy.img", "held-dropped.img");
	r.sb.held_root = 0;
	sb_write(&r);
	expect_fault(&r, "(leaked)", TC_CATCHES);
}
END_TEST

START_TEST(test_held_tree_damaged)
{
	/* a node only the metadata snapshot still references */
	struct raw r;
	uint8_t b[BLK];
	raw_copy(&r, "held-copy.img", "held-node.img");
	rd(&r, r.sb.held_root, b);
	struct thin_superblock copy;
	thin_sb_unpack(b, &copy);
	ck_assert_uint_ne(copy.device_details_root, r.sb.device_details_root);
	flip_byte(&r, copy.device_details_root, BLK - 1, 1);
	expect_fault(&r, "device details tree (metadata snapshot)", TC_ANY);
}
END_TEST

START_TEST(test_block_used_twice)
{
	/* a data bitmap index entry pointing at the metadata bitmap */
	struct raw r;
	uint8_t n[BLK];
	struct sm_slot ms, ds;
	raw_copy(&r, "basic.img", "used-twice.img");
	sm_locate(&r, false, 0, &ms);
	sm_locate(&r, true, 0, &ds);
	rd(&r, ds.index_block, n);
	le64_put(n + ds.index_off, ms.bitmap);
	seal(n, XOR_NODE);
	wr(&r, ds.index_block, n);
	expect_fault(&r,
	             "is used as a metadata space map bitmap and also as a data space map bitmap",
	             TC_ANY);
}
END_TEST

/* Random damage must never crash or hang the checker; node checksums are
 * re-sealed half of the time so the damage reaches the deeper checks. */
START_TEST(test_fuzz)
{
	static const char *const bases[] = { "count4.img", "big.img", "held-copy.img",
		                             "manydevs.img" };
	uint64_t seed = base_seed + (uint64_t)_i;
	uint64_t s = seed;
	for (int iter = 0; iter < 60; iter++) {
		struct raw r;
		raw_copy(&r, bases[iter % 4], "fuzz.img");
		uint64_t used = r.msm.nr_allocated + 4;
		int nmut = 1 + (int)(xorshift(&s) % 4);
		for (int k = 0; k < nmut; k++) {
			uint8_t b[BLK];
			uint64_t blk = xorshift(&s) % used;
			rd(&r, blk, b);
			unsigned off = (unsigned)(xorshift(&s) % BLK);
			switch (xorshift(&s) % 4) {
			case 0:
				b[off] ^= (uint8_t)(1u << (xorshift(&s) % 8));
				break;
			case 1: /* a plausible small number in a header/key/value */
				le64_put(b + (off & ~7u) % (BLK - 8), xorshift(&s) % (used + 8));
				break;
			case 2:
				le32_put(b + 16, (uint32_t)(xorshift(&s) % 400));
				break;
			default:
				memset(b + off, 0, BLK - off);
				break;
			}
			if (xorshift(&s) % 2) {
				uint32_t x = le32_get(b + 4) == 1 || le32_get(b + 4) == 2 ?
				                     XOR_NODE :
				             blk == 0 ? XOR_SB :
				                        XOR_BITMAP;
				seal(b, x);
			}
			wr(&r, blk, b);
		}
		raw_close(&r);
		struct msgs m = { 0 };
		struct tp_dev *d;
		ck_assert_int_eq(tp_dev_open_file(r.path, TP_DEV_RDONLY, 0, &d), 0);
		unsigned ne = 0;
		int rc = tcheck_run(d, NULL, collect, &m, &ne);
		tp_dev_close(d);
		ck_assert_msg(rc == 0, "seed %" PRIu64 " iteration %d: tcheck_run returned %d",
		              seed, iter, rc);
		free(m.buf);
	}
}
END_TEST

/* Random pool activity; the checker must find every committed state clean.
 * This is as much a test of the writer as of the checker. */
START_TEST(test_churn)
{
	uint64_t seed = base_seed * 7 + (uint64_t)_i, s = seed;
	char path[PATH_MAX];
	struct pool p;
	struct tmd *md;
	scratch_path(path, sizeof(path), "churn.img");
	pool_format(&p, path, 16 * MiB);
	md = p.md;
	uint64_t devs[64];
	size_t ndevs = 0;
	uint64_t next_id = 0;
	bool held = false;
	for (int op = 0; op < 1500; op++) {
		uint64_t x = xorshift(&s) % 100;
		if (x < 3 || ndevs == 0) {
			if (ndevs < 64) {
				B(tmd_create_thin(md, next_id));
				devs[ndevs++] = next_id++;
			}
		} else if (x < 6) {
			if (ndevs < 64) {
				uint64_t origin = devs[xorshift(&s) % ndevs];
				B(tmd_create_snap(md, next_id, origin));
				devs[ndevs++] = next_id++;
			}
		} else if (x < 8 && ndevs > 1) {
			size_t i = xorshift(&s) % ndevs;
			B(tmd_delete_thin(md, devs[i]));
			devs[i] = devs[--ndevs];
		} else if (x < 20) {
			uint64_t dev = devs[xorshift(&s) % ndevs];
			int r = tmd_remove(md, dev, xorshift(&s) % 3000);
			ck_assert_msg(r == 0 || r == -ENODATA, "seed %" PRIu64 ": remove: %s", seed,
			              tmd_error(md));
		} else if (x < 22) {
			if (held)
				B(tmd_release_metadata_snap(md));
			else
				B(tmd_reserve_metadata_snap(md));
			held = !held;
		} else if (x < 25) {
			B(tmd_commit(md));
			struct msgs m = { 0 };
			unsigned ne = check_dev(p.dev, NULL, &m);
			ck_assert_msg(ne == 0,
			              "seed %" PRIu64 " op %d: committed state flagged:\n%s", seed,
			              op, msgs_text(&m));
			free(m.buf);
		} else {
			uint64_t dev = devs[xorshift(&s) % ndevs];
			uint64_t b;
			int r = tmd_alloc_data_block(md, &b);
			if (r == -ENOSPC)
				continue;
			B(r);
			B(tmd_insert(md, dev, xorshift(&s) % 3000, b));
		}
	}
	pool_close(&p);
	struct msgs m = { 0 };
	unsigned ne = check_path(path, NULL, &m);
	int tc = thin_check_status(path);
	printf("[churn seed %" PRIu64 "] thinp check: %u faults; thin_check 0.9.0: %s\n", seed, ne,
	       verdict(tc));
	ck_assert_msg(ne == 0, "seed %" PRIu64 ": final state flagged:\n%s", seed, msgs_text(&m));
	if (tc >= 0)
		ck_assert_msg(tc == 0, "seed %" PRIu64 ": thin_check 0.9.0 rejects the final state",
		              seed);
	free(m.buf);
}
END_TEST

/* The CLI, when the Makefile tells where it is (THINP). */
START_TEST(test_cli)
{
	const char *thinp = getenv("THINP");
	if (!thinp || access(thinp, X_OK)) {
		printf("test_cli: THINP not set or not executable: skipped\n");
		return;
	}
	char cmd[3 * PATH_MAX], path[PATH_MAX];
	struct raw r;
	scratch_path(path, sizeof(path), "count4.img");
	snprintf(cmd, sizeof(cmd), "'%s' check '%s'", thinp, path);
	int st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(cmd, sizeof(cmd), "'%s' check -q '%s'", thinp, path);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	raw_copy(&r, "basic.img", "cli-bad.img");
	r.sb.incompat_flags = 1;
	sb_write(&r);
	raw_close(&r);
	snprintf(cmd, sizeof(cmd), "'%s' check '%s' 2>&1 | grep -q 'incompat_flags'", thinp,
	         r.path);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(cmd, sizeof(cmd), "'%s' check -q '%s'", thinp, r.path);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(cmd, sizeof(cmd), "'%s' check --super-block-only '%s' 2>/dev/null", thinp, r.path);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);

	snprintf(cmd, sizeof(cmd), "'%s' check 2>/dev/null", thinp);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	snprintf(cmd, sizeof(cmd), "'%s' check --bogus '%s' 2>/dev/null", thinp, path);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	snprintf(cmd, sizeof(cmd), "'%s' check '%s/nonexistent' 2>/dev/null", thinp, scratch_dir);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
END_TEST

/* ---- main ---------------------------------------------------------------------------------- */

static Suite *check_suite(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("valid");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_valid_images, 0, 10);
	tcase_add_test(tc, test_valid_images_have_the_features);
	tcase_add_test(tc, test_options);
	tcase_add_test(tc, test_cli);
	tcase_add_test(tc, test_thin_restore_output);
	suite_add_tcase(s, tc);

	tc = tcase_create("corrupt");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sb_bad_checksum);
	tcase_add_test(tc, test_sb_zeroed);
	tcase_add_test(tc, test_sb_bad_magic);
	tcase_add_loop_test(tc, test_sb_fields, 0, 6);
	tcase_add_test(tc, test_node_bad_checksum);
	tcase_add_test(tc, test_node_wrong_blocknr);
	tcase_add_test(tc, test_bitmap_bad_checksum);
	tcase_add_test(tc, test_metadata_bitmap_bad_checksum);
	tcase_add_test(tc, test_index_bad_checksum);
	tcase_add_loop_test(tc, test_node_header_fields, 0, 4);
	tcase_add_test(tc, test_btree_cycle);
	tcase_add_test(tc, test_btree_deep_cycle);
	tcase_add_test(tc, test_keys_out_of_order);
	tcase_add_test(tc, test_child_key_range);
	tcase_add_test(tc, test_node_underfilled);
	tcase_add_test(tc, test_leaves_at_different_depths);
	tcase_add_test(tc, test_tree_type_mixup);
	tcase_add_test(tc, test_data_count_2_to_1);
	tcase_add_test(tc, test_data_count_1_to_2);
	tcase_add_test(tc, test_data_count_4_to_3);
	tcase_add_test(tc, test_data_count_3_without_overflow);
	tcase_add_test(tc, test_data_overflow_without_3);
	tcase_add_test(tc, test_metadata_count_too_low);
	tcase_add_test(tc, test_metadata_count_overflow_too_low);
	tcase_add_test(tc, test_metadata_leak);
	tcase_add_test(tc, test_mapping_beyond_data_device);
	tcase_add_test(tc, test_mapping_time_in_future);
	tcase_add_test(tc, test_wrong_mapped_blocks);
	tcase_add_test(tc, test_details_times);
	tcase_add_test(tc, test_device_missing_from_details);
	tcase_add_test(tc, test_device_missing_from_mapping);
	tcase_add_test(tc, test_wrong_nr_free);
	tcase_add_test(tc, test_wrong_metadata_nr_free);
	tcase_add_test(tc, test_none_free_before_too_high);
	tcase_add_test(tc, test_wrong_nr_allocated);
	tcase_add_test(tc, test_wrong_metadata_nr_allocated);
	tcase_add_test(tc, test_data_index_missing_bitmap);
	tcase_add_test(tc, test_truncated_half);
	tcase_add_test(tc, test_truncated_to_few_blocks);
	tcase_add_test(tc, test_truncated_tiny);
	tcase_add_test(tc, test_held_copy_bad_checksum);
	tcase_add_test(tc, test_held_copy_sm_roots);
	tcase_add_test(tc, test_held_tree_unreferenced);
	tcase_add_test(tc, test_held_tree_damaged);
	tcase_add_test(tc, test_block_used_twice);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_fuzz, 0, 4);
	tcase_add_loop_test(tc, test_churn, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Images are built in a Check test of their own so a writer failure is
 * reported like any other failure (with the library's message). */
START_TEST(test_build_images)
{
	build_images();
}
END_TEST

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	const char *seed = getenv("THINP_SEED");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (seed && *seed)
		base_seed = strtoull(seed, NULL, 0);
	printf("random tests use seed %" PRIu64 " (set THINP_SEED to change)\n", base_seed);
	if (snprintf(scratch_dir, sizeof(scratch_dir), "%s/thinp-test-check-XXXXXX", tmp) >=
	            (int)sizeof(scratch_dir) ||
	    !mkdtemp(scratch_dir)) {
		fprintf(stderr, "cannot create a scratch directory under %s: %s\n", tmp,
		        strerror(errno));
		return 1;
	}
	have_thin_check = system("thin_check -V >/dev/null 2>&1") == 0;
	printf("thin_check 0.9.0 cross-check: %s\n",
	       have_thin_check ? "on" : "off (not installed)");

	Suite *bs = suite_create("build");
	TCase *btc = tcase_create("build");
	tcase_set_timeout(btc, 300);
	tcase_add_test(btc, test_build_images);
	suite_add_tcase(bs, btc);
	SRunner *sr = srunner_create(bs);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (!failed) {
		sr = srunner_create(check_suite());
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	if (nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "warning: could not remove %s\n", scratch_dir);
	return failed ? 1 : 0;
}
