/* Seed generator of the fuzz corpora: `make fuzz-corpus` (mkcorpus DIR).
 *
 * Valid pools are built with libthinp's metadata API on a memory device of
 * the harnesses' size (thins, snapshots, shared and overflow-counted blocks,
 * a held metadata snapshot); hand-made corruptions are applied to a copy of
 * one of them (a self-pointing internal node, a cycle of two nodes, a chain
 * deeper than any tree, a node of another tree, a bad checksum, a mapping
 * tree whose leaf points back at its own root). Written as:
 *   DIR/metadata/NAME  flags byte + zero-run encoded image (image.h)
 *   DIR/pool/NAME      the same, after a short op list (fuzz_pool.c)
 *   DIR/restore/NAME   thin_dump XML of the valid pools, and hand-written XML
 * The same build always writes the same files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pool_input.h"
#include "thin/metadata.h"
#include "thin/superblock.h"
#include "thin/xml.h"

#define BLK        TP_BLOCK_SIZE
#define NR_DATA    400u /* 64 KiB blocks: a 25 MiB data device */
#define BLOCK_SECT 128u

static const char *out_dir;

#define DIE(...)                                      \
	do {                                          \
		fprintf(stderr, "mkcorpus: " __VA_ARGS__); \
		fputc('\n', stderr);                  \
		exit(1);                              \
	} while (0)
#define OK(call)                                                                       \
	do {                                                                           \
		int r_ = (call);                                                       \
		if (r_)                                                                \
			DIE("%s: %s (%s)", #call, strerror(-r_), md ? tmd_error(md) : ""); \
	} while (0)

static void write_file(const char *sub, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", out_dir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, sub, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		DIE("cannot write %s", path);
}

/* ---- valid pools ---- */

static struct tmd *md;

static void map_run(uint64_t dev, uint64_t vbegin, uint64_t n)
{
	for (uint64_t v = vbegin; v < vbegin + n; v++) {
		uint64_t b;
		OK(tmd_alloc_data_block(md, &b));
		OK(tmd_insert(md, dev, v, b));
	}
}

enum pool_kind { EMPTY, THINS, HELD, SHARED };

/* A pool of KIND on a fresh FI_META_BYTES memory device. */
static struct tp_dev *make_pool(enum pool_kind kind)
{
	struct tp_dev *meta;
	char err[512];
	md = NULL;
	OK(tp_dev_open_mem(FI_META_BYTES, &meta));
	struct tmd_open_args a = {.meta = meta, .cache_blocks = 256};
	OK(tmd_format(&a, BLOCK_SECT, NR_DATA, &md, err, sizeof(err)));
	if (kind != EMPTY) {
		OK(tmd_create_thin(md, 0));
		map_run(0, 0, 120);
		map_run(0, 1000, 140); /* 260 mappings: an internal root over two leaves */
		OK(tmd_create_thin(md, 1));
		map_run(1, 7, 5);
		OK(tmd_commit(md));
		OK(tmd_create_snap(md, 2, 0));
		map_run(2, 3, 4); /* the snapshot breaks sharing of a few blocks */
		OK(tmd_delete_thin(md, 1));
		OK(tmd_create_thin(md, 5));
		map_run(5, (1ull << 30) - 2, 4); /* a high virtual address */
	}
	if (kind == HELD) {
		OK(tmd_commit(md));
		OK(tmd_reserve_metadata_snap(md));
		map_run(0, 500, 10);
	}
	if (kind == SHARED) {
		/* four devices share thin 0's tree and blocks: counts of 4 go to
		 * the overflow trees of both space maps */
		OK(tmd_commit(md));
		OK(tmd_create_snap(md, 3, 0));
		OK(tmd_create_snap(md, 4, 0));
	}
	OK(tmd_set_transaction_id(md, 0, 7));
	OK(tmd_close(md));
	md = NULL;
	return meta;
}

static uint8_t img[FI_META_BYTES];
static uint8_t enc[FI_META_BYTES + 64];

static void read_image(struct tp_dev *meta)
{
	OK(tp_dev_pread(meta, img, sizeof(img), 0));
}

/* A pool input's op list: one of each kind on thins 0, 2 and a new 6. */
static size_t pool_ops(uint8_t *out)
{
	static const struct pi_op ops[] = {
		{PI_READ, 0, 0, 7, 0},       {PI_WRITE, 0, 16, 3, 0},   {PI_WRITE, 2, 1, 200, 1},
		{PI_READ, 2, 0, 255, 0},     {PI_DISCARD, 0, 128, 255, 0}, {PI_THIN_STATUS, 0, 0, 0, 0},
		{PI_POOL_STATUS, 0, 0, 0, 1}, {PI_CREATE_THIN, 6, 0, 0, 0}, {PI_CREATE_SNAP, 7, 2, 0, 0},
		{PI_WRITE, 7, 40, 9, 0},     {PI_RESERVE, 0, 0, 0, 0},  {PI_WRITE, 0, 2000, 20, 1},
		{PI_COMMIT, 0, 0, 0, 0},     {PI_DELETE, 7, 0, 0, 0},   {PI_RELEASE, 0, 0, 0, 0},
		{PI_FLUSH, 0, 0, 0, 0},
	};
	size_t n = sizeof(ops) / sizeof(ops[0]);
	out[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		pi_op_pack(&ops[i], out + 1 + i * PI_OP_BYTES);
	return 1 + n * PI_OP_BYTES;
}

/* Write IMG as NAME into the metadata corpus (and the pool corpus). */
static void emit(const char *name, unsigned flags, int pool)
{
	size_t n = fi_encode(img, sizeof(img), enc + 1, sizeof(enc) - 1);
	if (!n)
		DIE("%s does not encode", name);
	enc[0] = (uint8_t)flags;
	write_file("metadata", name, enc, n + 1);
	if (!pool)
		return;
	static uint8_t in[sizeof(enc) + 1024];
	in[0] = (uint8_t)flags;
	size_t o = 1 + pool_ops(in + 1);
	memcpy(in + o, enc + 1, n);
	write_file("pool", name, in, o + n);
}

static void emit_xml(const char *name, struct tp_dev *meta)
{
	char *buf = NULL, err[512];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct tmd_open_args a = {.meta = meta, .read_only = true};
	md = NULL;
	OK(tmd_open(&a, &md, err, sizeof(err)));
	struct xml_dump_opts o = {.format = XML_DUMP_XML};
	OK(xml_dump(md, f, &o, err, sizeof(err)));
	fclose(f);
	tmd_close_nocommit(md);
	md = NULL;
	write_file("restore", name, buf, len);
	free(buf);
}

/* ---- raw surgery on IMG ---- */

static uint8_t *blk(uint64_t b) { return img + b * BLK; }
static uint32_t nr_of(uint64_t b) { return le32_get(blk(b) + 16); }
static uint32_t max_of(uint64_t b) { return le32_get(blk(b) + 20); }
static uint64_t key_of(uint64_t b, uint32_t i) { return le64_get(blk(b) + 32 + 8 * i); }
static uint64_t child_of(uint64_t b, uint32_t i) { return le64_get(blk(b) + 32 + 8 * max_of(b) + 8 * i); }
static void set_child(uint64_t b, uint32_t i, uint64_t c) { le64_put(blk(b) + 32 + 8 * max_of(b) + 8 * i, c); }

static void reseal_node(uint64_t b)
{
	le32_put(blk(b), tp_block_csum(blk(b), BLK, TP_BTREE_CSUM_XOR));
}

static struct thin_superblock sb_of_img(void)
{
	struct thin_superblock sb;
	thin_sb_unpack(img, &sb);
	return sb;
}

/* Root of DEV's mapping subtree (the top level is a single leaf here). */
static uint64_t dev_root(uint64_t dev)
{
	uint64_t top = sb_of_img().data_mapping_root;
	if (le32_get(blk(top) + 4) != BTREE_LEAF_NODE)
		DIE("top-level mapping tree is not a single leaf");
	for (uint32_t i = 0; i < nr_of(top); i++)
		if (key_of(top, i) == dev)
			return child_of(top, i);
	DIE("no device %llu", (unsigned long long)dev);
}

/* The first block past every block in use: room for made-up nodes. */
static uint64_t first_unused(void)
{
	uint64_t b = FI_META_BYTES / BLK;
	while (b > 1 && !le64_get(blk(b - 1) + 8) && !le32_get(blk(b - 1)))
		b--;
	return b;
}

static void write_node(uint64_t b, uint32_t flags, uint32_t nr, const uint64_t *keys,
		       const uint64_t *vals)
{
	uint8_t *d = blk(b);
	memset(d, 0, BLK);
	le32_put(d + 4, flags);
	le64_put(d + 8, b);
	le32_put(d + 16, nr);
	le32_put(d + 20, btree_max_entries(8));
	le32_put(d + 24, 8);
	for (uint32_t i = 0; i < nr; i++) {
		le64_put(d + 32 + 8 * i, keys[i]);
		le64_put(d + 32 + 8 * btree_max_entries(8) + 8 * i, vals[i]);
	}
	reseal_node(b);
}

static void corruptions(struct tp_dev *thins)
{
	uint64_t r0;

	/* thin 0's internal root: its last child is itself */
	read_image(thins);
	r0 = dev_root(0);
	if (le32_get(blk(r0) + 4) != BTREE_INTERNAL_NODE)
		DIE("thin 0's root is not internal");
	set_child(r0, nr_of(r0) - 1, r0);
	reseal_node(r0);
	emit("bad-self-pointing-node", 0, 1);

	/* its last leaf becomes an internal node pointing back at the root */
	read_image(thins);
	r0 = dev_root(0);
	uint64_t leaf = child_of(r0, nr_of(r0) - 1), k = key_of(r0, nr_of(r0) - 1);
	write_node(leaf, BTREE_INTERNAL_NODE, 1, &k, &r0);
	emit("bad-cycle-of-two", 0, 1);

	/* 13 single-child internal nodes above the first leaf (in free blocks) */
	read_image(thins);
	r0 = dev_root(0);
	uint64_t below = child_of(r0, 0), k0 = key_of(r0, 0), b = first_unused();
	for (int i = 0; i < 13; i++, b++) {
		write_node(b, BTREE_INTERNAL_NODE, 1, &k0, &below);
		below = b;
	}
	set_child(r0, 0, below);
	reseal_node(r0);
	emit("bad-too-deep", 0, 0);

	/* a leaf of the details tree (24-byte values) as a mapping leaf */
	read_image(thins);
	r0 = dev_root(0);
	set_child(r0, 0, sb_of_img().device_details_root);
	reseal_node(r0);
	emit("bad-wrong-node-type", 0, 1);

	/* device 2's subtree root is the top-level leaf itself */
	read_image(thins);
	uint64_t top = sb_of_img().data_mapping_root;
	for (uint32_t i = 0; i < nr_of(top); i++)
		if (key_of(top, i) == 2)
			le64_put(blk(top) + 32 + 8 * max_of(top) + 8 * i, top);
	reseal_node(top);
	emit("bad-subtree-is-top-level", 0, 1);

	/* a flipped byte in a mapping leaf, checksums kept as they are */
	read_image(thins);
	blk(child_of(dev_root(0), 0))[100] ^= 0x10;
	emit("bad-checksum", FI_RAW, 1);

	/* the internal root's keys out of order */
	read_image(thins);
	r0 = dev_root(0);
	le64_put(blk(r0) + 32, key_of(r0, 1) + 1);
	reseal_node(r0);
	emit("bad-keys-out-of-order", 0, 0);
}

/* ---- hand-written XML ---- */

static const struct {
	const char *name, *text;
} xml_seeds[] = {
	{"xml-empty-pool", "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" "
			   "data_block_size=\"128\" nr_data_blocks=\"64\">\n</superblock>\n"},
	{"xml-edges",
	 "<superblock uuid=\"\" time=\"16777215\" transaction=\"18446744073709551615\" flags=\"0\" "
	 "version=\"2\" data_block_size=\"2097152\" nr_data_blocks=\"300\">\n"
	 "  <device dev_id=\"16777215\" mapped_blocks=\"3\" transaction=\"0\" creation_time=\"0\" "
	 "snap_time=\"16777215\">\n"
	 "    <range_mapping origin_begin=\"18446744073709551613\" data_begin=\"297\" length=\"3\" "
	 "time=\"16777215\"/>\n"
	 "  </device>\n"
	 "  <device dev_id=\"0\" mapped_blocks=\"2\" transaction=\"1\" creation_time=\"1\" "
	 "snap_time=\"2\">\n"
	 "    <single_mapping origin_block=\"0\" data_block=\"0\" time=\"1\"/>\n"
	 "    <single_mapping origin_block=\"5\" data_block=\"0\" time=\"2\"/>\n"
	 "  </device>\n</superblock>\n"},
	{"xml-bad-mapping-beyond-data",
	 "<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" "
	 "data_block_size=\"128\" nr_data_blocks=\"4\">\n"
	 "  <device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\" "
	 "snap_time=\"0\">\n"
	 "    <single_mapping origin_block=\"9\" data_block=\"4\" time=\"0\"/>\n"
	 "  </device>\n</superblock>\n"},
	{"xml-bad-overlap",
	 "<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" "
	 "data_block_size=\"128\" nr_data_blocks=\"40\">\n"
	 "  <device dev_id=\"1\" mapped_blocks=\"6\" transaction=\"0\" creation_time=\"0\" "
	 "snap_time=\"0\">\n"
	 "    <range_mapping origin_begin=\"10\" data_begin=\"0\" length=\"5\" time=\"0\"/>\n"
	 "    <single_mapping origin_block=\"12\" data_block=\"30\" time=\"0\"/>\n"
	 "  </device>\n"
	 "  <device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" "
	 "snap_time=\"0\">\n  </device>\n</superblock>\n"},
	{"xml-bad-structure",
	 "<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" "
	 "data_block_size=\"128\" nr_data_blocks=\"40\">\n"
	 "  <device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\">\n"
	 "    <def name=\"x\"><single_mapping origin_block=\"1\" data_block=\"1\" time=\"0\"/></def>\n"
	 "    <ref name=\"x\"/>\n  <device dev_id=\"2\">\n</superblock>\n"},
};

int main(int argc, char **argv)
{
	if (argc != 2)
		DIE("usage: mkcorpus DIR");
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	static const char *const names[] = {"empty", "thins", "held", "shared"};
	struct tp_dev *thins = NULL;
	for (int k = EMPTY; k <= SHARED; k++) {
		struct tp_dev *meta = make_pool((enum pool_kind)k);
		read_image(meta);
		emit(names[k], 0, 1);
		emit_xml(names[k], meta);
		if (k == THINS)
			thins = meta;
		else
			tp_dev_close(meta);
	}
	corruptions(thins);
	tp_dev_close(thins);
	for (size_t i = 0; i < sizeof(xml_seeds) / sizeof(xml_seeds[0]); i++)
		write_file("restore", xml_seeds[i].name, xml_seeds[i].text, strlen(xml_seeds[i].text));
	return 0;
}
