#include "thin/metadata.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/space_map.h"
#include "pdata/transaction_manager.h"
#include "thin/superblock.h"

/* Details of a device touched in the open transaction. */
struct tmd_dev {
	uint64_t id;
	struct thin_details d;
	bool changed;
};

struct tmd {
	struct tmd_open_args args;
	struct bm *bm;
	struct sm_meta *msm;
	struct tm *tm;
	struct sm_disk *dsm;

	struct btree_info info;         /* 2 levels: dev, vblock -> block/time */
	struct btree_info tl_info;      /* dev -> subtree root */
	struct btree_info bl_info;      /* vblock -> block/time */
	struct btree_info details_info; /* dev -> details */

	struct thin_superblock sb; /* in-core copy; roots below are current */
	uint64_t root, details_root;

	struct tmd_dev *devs;
	size_t nr_devs, cap_devs;
	/* open-addressing index over devs (slot = index + 1, 0 = empty), so
	 * touching many devices in one transaction stays linear */
	uint32_t *dev_slots;
	size_t nr_slots;

	bool changed;
	bool failed; /* a metadata operation failed: only abort is allowed */
	char err[512];
};

static int fail(struct tmd *md, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(md->err, sizeof(md->err), fmt, ap);
	va_end(ap);
	return r;
}

const char *tmd_error(const struct tmd *md) { return md->err; }
bool tmd_changed(const struct tmd *md) { return md->changed; }

/* ---- value types ---- */

static uint64_t pack_bt(uint64_t b, uint32_t t) { return b << 24 | (t & THIN_MAX_TIME); }

static int data_inc(void *ctx, const void *v)
{
	return sm_disk_inc(((struct tmd *)ctx)->dsm, le64_get(v) >> 24);
}

static int data_dec(void *ctx, const void *v)
{
	return sm_disk_dec(((struct tmd *)ctx)->dsm, le64_get(v) >> 24);
}

static bool data_equal(void *ctx, const void *a, const void *b)
{
	(void)ctx;
	return le64_get(a) >> 24 == le64_get(b) >> 24;
}

static void setup_infos(struct tmd *md)
{
	struct btree_value_type data_vt = {md, 8, data_inc, data_dec, data_equal};
	md->info = (struct btree_info){md->tm, 2, data_vt};
	md->bl_info = (struct btree_info){md->tm, 1, data_vt};
	md->tl_info = (struct btree_info){
		md->tm, 1, {&md->bl_info, 8, btree_subtree_inc, btree_subtree_dec, NULL}};
	md->details_info = (struct btree_info){md->tm, 1, {NULL, 24, NULL, NULL, NULL}};
}

static void forget_devs(struct tmd *md)
{
	md->nr_devs = 0;
	if (md->dev_slots)
		memset(md->dev_slots, 0, md->nr_slots * sizeof(*md->dev_slots));
}

static void destroy_objects(struct tmd *md)
{
	sm_disk_destroy(md->dsm);
	tm_destroy(md->tm);
	sm_meta_destroy(md->msm);
	bm_destroy(md->bm);
	md->dsm = NULL;
	md->tm = NULL;
	md->msm = NULL;
	md->bm = NULL;
	forget_devs(md);
}

static int validate_block_size(uint32_t s)
{
	return s >= THIN_MIN_BLOCK_SECTORS && s <= THIN_MAX_BLOCK_SECTORS && s % 128 == 0;
}

/* Load everything from the committed superblock. */
static int load(struct tmd *md)
{
	size_t cache = md->args.cache_blocks ? md->args.cache_blocks : THIN_DEFAULT_CACHE_BLOCKS;
	int r = bm_create(md->args.meta, cache, &md->bm);
	if (r)
		return fail(md, r, "cannot set up the metadata cache: %s", strerror(-r));
	if (bm_nr_blocks(md->bm) < 1)
		return fail(md, -EINVAL, "metadata device is smaller than one 4 KiB block");
	struct bm_block *blk;
	r = bm_read_lock(md->bm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &blk);
	if (r)
		return fail(md, r, "%s", bm_last_error(md->bm));
	thin_sb_unpack(bm_block_data(blk), &md->sb);
	bm_unlock(blk);

	struct thin_superblock *sb = &md->sb;
	if (sb->version < 1 || sb->version > THIN_VERSION)
		return fail(md, -EINVAL, "superblock version %u is not supported (1..%u)",
			    sb->version, THIN_VERSION);
	if (sb->incompat_flags)
		return fail(md, -EINVAL,
			    "metadata uses unsupported incompatible features (0x%x): refusing to open",
			    sb->incompat_flags);
	if (sb->compat_ro_flags && !md->args.read_only)
		return fail(md, -EROFS,
			    "metadata has unsupported read-only-compatible features (0x%x): open it read-only",
			    sb->compat_ro_flags);
	if (!validate_block_size(sb->data_block_size))
		return fail(md, -EINVAL,
			    "superblock data_block_size %u sectors is invalid (128..2097152, multiple of 128)",
			    sb->data_block_size);
	if (sb->metadata_block_size != 8)
		return fail(md, -EINVAL, "superblock metadata_block_size %u is not 8 sectors",
			    sb->metadata_block_size);

	struct sm_root mroot;
	sm_root_unpack(sb->metadata_sm_root, &mroot);
	if (mroot.nr_blocks > bm_nr_blocks(md->bm))
		return fail(md, -ENOSPC,
			    "metadata device too small: its space map covers %llu blocks but the device has %llu",
			    (unsigned long long)mroot.nr_blocks,
			    (unsigned long long)bm_nr_blocks(md->bm));
	r = sm_meta_open(md->bm, sb->metadata_sm_root, &md->msm);
	if (r)
		return fail(md, r, "cannot load the metadata space map: %s",
			    *bm_last_error(md->bm) ? bm_last_error(md->bm) : strerror(-r));
	r = tm_create(md->bm, md->msm, &md->tm);
	if (r)
		return fail(md, r, "out of memory");
	r = sm_meta_load_overflow(md->msm, md->tm);
	if (r)
		return fail(md, r, "cannot load the metadata space map overflow counts: %s",
			    *bm_last_error(md->bm) ? bm_last_error(md->bm) : strerror(-r));
	r = sm_disk_open(md->tm, sb->data_sm_root, &md->dsm);
	if (r)
		return fail(md, r, "cannot load the data space map: %s",
			    *bm_last_error(md->bm) ? bm_last_error(md->bm) : strerror(-r));
	setup_infos(md);
	md->root = sb->data_mapping_root;
	md->details_root = sb->device_details_root;
	md->changed = false;
	md->failed = false;
	return 0;
}

static struct tmd *alloc_md(const struct tmd_open_args *a)
{
	struct tmd *md = calloc(1, sizeof(*md));
	if (md)
		md->args = *a;
	return md;
}

int tmd_open(const struct tmd_open_args *a, struct tmd **out, char *err, size_t errlen)
{
	struct tmd *md = alloc_md(a);
	if (!md)
		return -ENOMEM;
	int r = load(md);
	if (r) {
		if (err)
			snprintf(err, errlen, "%s", md->err);
		destroy_objects(md);
		free(md);
		return r;
	}
	*out = md;
	return 0;
}

static int write_details(struct tmd *md)
{
	for (size_t i = 0; i < md->nr_devs; i++) {
		if (!md->devs[i].changed)
			continue;
		uint8_t v[24];
		thin_details_pack(&md->devs[i].d, v);
		int r = btree_insert(&md->details_info, md->details_root, &md->devs[i].id, v,
				     &md->details_root, NULL);
		if (r)
			return r;
		md->devs[i].changed = false;
	}
	forget_devs(md);
	return 0;
}

static int commit(struct tmd *md)
{
	int r;
	if (md->args.data) {
		/* data first: a mapping must never reach disk before its data */
		r = tp_dev_flush(md->args.data);
		if (r)
			return fail(md, r, "flushing the data device failed: %s", strerror(-r));
	}
	r = write_details(md);
	if (r)
		return fail(md, r, "writing device details failed: %s", strerror(-r));
	struct thin_superblock sb = md->sb;
	memset(sb.data_sm_root, 0, sizeof(sb.data_sm_root));
	memset(sb.metadata_sm_root, 0, sizeof(sb.metadata_sm_root));
	r = sm_disk_write(md->dsm, sb.data_sm_root);
	if (r)
		return fail(md, r, "writing the data space map failed: %s", strerror(-r));
	r = sm_meta_write(md->msm, md->tm, sb.metadata_sm_root);
	if (r)
		return fail(md, r, "writing the metadata space map failed: %s", strerror(-r));
	r = bm_flush(md->bm);
	if (r)
		return fail(md, r, "writing metadata blocks failed: %s", strerror(-r));
	sb.data_mapping_root = md->root;
	sb.device_details_root = md->details_root;
	sb.magic = THIN_SUPERBLOCK_MAGIC;
	sb.metadata_block_size = 8;
	struct bm_block *blk;
	r = bm_write_lock_zero(md->bm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &blk);
	if (r)
		return fail(md, r, "locking the superblock failed: %s", strerror(-r));
	thin_sb_pack(&sb, bm_block_data(blk));
	bm_unlock(blk);
	r = bm_flush(md->bm);
	if (r)
		return fail(md, r, "writing the superblock failed: %s", strerror(-r));
	sm_meta_committed(md->msm);
	r = sm_disk_committed(md->dsm);
	if (r)
		return fail(md, r, "out of memory after commit");
	md->sb = sb;
	md->changed = false;
	return 0;
}

int tmd_commit(struct tmd *md)
{
	if (md->failed)
		return fail(md, -EIO, "metadata operation failed earlier; abort the transaction first");
	if (md->args.read_only)
		return 0;
	int r = commit(md);
	if (r)
		md->failed = true;
	return r;
}

int tmd_abort(struct tmd *md)
{
	bm_drop_dirty(md->bm);
	destroy_objects(md);
	return load(md);
}

int tmd_format(const struct tmd_open_args *a, uint32_t data_block_sectors,
	       uint64_t nr_data_blocks, struct tmd **out, char *err, size_t errlen)
{
	struct tmd *md = alloc_md(a);
	if (!md)
		return -ENOMEM;
	int r;
	if (!validate_block_size(data_block_sectors)) {
		r = fail(md, -EINVAL,
			 "data block size %u sectors is invalid: use 128..2097152 sectors (64 KiB..1 GiB), a multiple of 128",
			 data_block_sectors);
		goto out;
	}
	if (nr_data_blocks > THIN_MAX_DATA_BLOCK) {
		r = fail(md, -EINVAL, "%llu data blocks exceed the format's 2^40 limit",
			 (unsigned long long)nr_data_blocks);
		goto out;
	}
	size_t cache = a->cache_blocks ? a->cache_blocks : THIN_DEFAULT_CACHE_BLOCKS;
	r = bm_create(a->meta, cache, &md->bm);
	if (r)
		goto out;
	uint64_t nr_meta = bm_nr_blocks(md->bm);
	if (nr_meta > SM_METADATA_MAX_BLOCKS)
		nr_meta = SM_METADATA_MAX_BLOCKS;
	if (nr_meta < 16) {
		r = fail(md, -ENOSPC, "metadata device too small (%llu bytes): it needs at least 64 KiB",
			 (unsigned long long)a->meta->size);
		goto out;
	}
	r = sm_meta_create(nr_meta, &md->msm);
	if (r)
		goto out;
	uint64_t sb_loc;
	r = sm_meta_new_block(md->msm, &sb_loc); /* block 0: the superblock */
	if (r)
		goto out;
	r = tm_create(md->bm, md->msm, &md->tm);
	if (r)
		goto out;
	r = sm_disk_create(md->tm, nr_data_blocks, &md->dsm);
	if (r)
		goto out;
	setup_infos(md);
	r = btree_empty(&md->info, &md->root);
	if (r)
		goto out;
	r = btree_empty(&md->details_info, &md->details_root);
	if (r)
		goto out;
	memset(&md->sb, 0, sizeof(md->sb));
	md->sb.magic = THIN_SUPERBLOCK_MAGIC;
	md->sb.version = THIN_VERSION;
	md->sb.data_block_size = data_block_sectors;
	md->sb.metadata_block_size = 8;
	md->sb.metadata_nr_blocks = nr_meta;
	r = commit(md);
	if (r)
		goto out;
	*out = md;
	return 0;
out:
	if (err)
		snprintf(err, errlen, "%s", *md->err ? md->err : strerror(-r));
	destroy_objects(md);
	free(md);
	return r;
}

int tmd_close(struct tmd *md)
{
	int r = 0;
	if (!md)
		return 0;
	if (!md->failed && !md->args.read_only && md->changed)
		r = tmd_commit(md);
	tmd_close_nocommit(md);
	return r;
}

void tmd_close_nocommit(struct tmd *md)
{
	if (!md)
		return;
	destroy_objects(md);
	free(md->devs);
	free(md->dev_slots);
	free(md);
}

/* Mark failure on any metadata error, as the kernel does (the pool then
 * needs an abort). That includes running out of metadata space: a btree
 * update that fails half-way (e.g. after shadowing a node) leaves the trees
 * and counts inconsistent, so the transaction must not be committed. (Data
 * ENOSPC is reported by tmd_alloc_data_block before it gets here.) */
static int op_result(struct tmd *md, int r, const char *what)
{
	if (r && r != -ENODATA && r != -EEXIST) { /* EINVAL from below is a refcount or tree bug */
		md->failed = true;
		return fail(md, r, "%s failed: %s%s%s", what, strerror(-r),
			    *bm_last_error(md->bm) ? ": " : "", bm_last_error(md->bm));
	}
	return r;
}

static int writable(struct tmd *md)
{
	if (md->args.read_only)
		return fail(md, -EROFS, "metadata is open read-only");
	if (md->failed)
		return fail(md, -EIO, "metadata operation failed earlier; abort the transaction first");
	return 0;
}

/* ---- device details ---- */

static size_t slot_of(const struct tmd *md, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (md->nr_slots - 1);
}

static void index_add(struct tmd *md, size_t i)
{
	size_t s = slot_of(md, md->devs[i].id);
	while (md->dev_slots[s])
		s = (s + 1) & (md->nr_slots - 1);
	md->dev_slots[s] = (uint32_t)(i + 1);
}

/* Rebuild the index for the current devs (after growth or a removal). */
static int index_rebuild(struct tmd *md, size_t want)
{
	size_t n = 64;
	while (n < want * 2)
		n <<= 1;
	if (n != md->nr_slots) {
		uint32_t *slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		free(md->dev_slots);
		md->dev_slots = slots;
		md->nr_slots = n;
	} else {
		memset(md->dev_slots, 0, n * sizeof(*md->dev_slots));
	}
	for (size_t i = 0; i < md->nr_devs; i++)
		index_add(md, i);
	return 0;
}

static struct tmd_dev *find_dev(struct tmd *md, uint64_t id)
{
	if (!md->nr_slots)
		return NULL;
	for (size_t s = slot_of(md, id); md->dev_slots[s]; s = (s + 1) & (md->nr_slots - 1))
		if (md->devs[md->dev_slots[s] - 1].id == id)
			return &md->devs[md->dev_slots[s] - 1];
	return NULL;
}

static int get_dev(struct tmd *md, uint64_t id, bool create, struct tmd_dev **out)
{
	struct tmd_dev *found = find_dev(md, id);
	if (found) {
		*out = found;
		return 0;
	}
	struct thin_details d;
	uint8_t v[24];
	int r = btree_lookup(&md->details_info, md->details_root, &id, v);
	if (r == -ENODATA && create) {
		d = (struct thin_details){0, md->sb.trans_id, md->sb.time, md->sb.time};
	} else if (r) {
		return r;
	} else {
		thin_details_unpack(v, &d);
	}
	if (md->nr_devs == md->cap_devs) {
		size_t cap = md->cap_devs ? md->cap_devs * 2 : 16;
		struct tmd_dev *n = realloc(md->devs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		md->devs = n;
		md->cap_devs = cap;
	}
	if ((md->nr_devs + 1) * 2 > md->nr_slots) {
		int ir = index_rebuild(md, md->nr_devs + 1);
		if (ir)
			return ir;
	}
	struct tmd_dev *td = &md->devs[md->nr_devs++];
	td->id = id;
	td->d = d;
	td->changed = r == -ENODATA;
	index_add(md, md->nr_devs - 1);
	*out = td;
	return 0;
}

/* Tells "absent" from "could not read": taking a read error for "absent"
 * would let create overwrite a live device. */
int tmd_device_exists(struct tmd *md, uint64_t dev, bool *exists)
{
	struct tmd_dev *td;
	int r = get_dev(md, dev, false, &td);
	*exists = r == 0;
	return r == -ENODATA ? 0 : op_result(md, r, "looking up the device");
}

static int check_dev_id(struct tmd *md, uint64_t dev)
{
	if (dev > THIN_MAX_DEV_ID)
		return fail(md, -EINVAL, "device id %llu is too big: ids are 24-bit (0..%llu)",
			    (unsigned long long)dev, THIN_MAX_DEV_ID);
	return 0;
}

int tmd_create_thin(struct tmd *md, uint64_t dev)
{
	int r = writable(md);
	if (!r)
		r = check_dev_id(md, dev);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(md, dev, &exists);
	if (r)
		return r;
	if (exists)
		return fail(md, -EEXIST, "device %llu already exists", (unsigned long long)dev);
	uint64_t sub;
	r = btree_empty(&md->bl_info, &sub);
	if (r)
		return op_result(md, r, "create_thin");
	uint8_t v[8];
	le64_put(v, sub);
	r = btree_insert(&md->tl_info, md->root, &dev, v, &md->root, NULL);
	if (r)
		return op_result(md, r, "create_thin");
	struct tmd_dev *td;
	r = get_dev(md, dev, true, &td);
	if (r)
		return op_result(md, r, "create_thin");
	md->changed = true;
	return 0;
}

int tmd_create_snap(struct tmd *md, uint64_t dev, uint64_t origin)
{
	int r = writable(md);
	if (!r)
		r = check_dev_id(md, dev);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(md, dev, &exists);
	if (r)
		return r;
	if (exists)
		return fail(md, -EEXIST, "device %llu already exists", (unsigned long long)dev);
	uint8_t v[8];
	r = btree_lookup(&md->tl_info, md->root, &origin, v);
	if (r == -ENODATA)
		return fail(md, -ENODATA, "origin device %llu does not exist",
			    (unsigned long long)origin);
	if (r)
		return op_result(md, r, "create_snap");
	if (md->sb.time == THIN_MAX_TIME)
		return fail(md, -EOVERFLOW, "pool time would exceed 24 bits");
	r = tm_inc(md->tm, le64_get(v));
	if (!r)
		r = btree_insert(&md->tl_info, md->root, &dev, v, &md->root, NULL);
	if (r)
		return op_result(md, r, "create_snap");
	md->sb.time++;
	struct tmd_dev *td, *otd;
	r = get_dev(md, dev, true, &td);
	if (r)
		return op_result(md, r, "create_snap");
	uint64_t td_index = (uint64_t)(td - md->devs);
	r = get_dev(md, origin, false, &otd);
	if (r)
		return op_result(md, r, "create_snap");
	td = &md->devs[td_index]; /* get_dev may have moved the array */
	otd->d.snapshotted_time = md->sb.time;
	otd->changed = true;
	td->d.mapped_blocks = otd->d.mapped_blocks;
	td->d.snapshotted_time = md->sb.time;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_delete_thin(struct tmd *md, uint64_t dev)
{
	int r = writable(md);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(md, dev, &exists);
	if (r)
		return r;
	if (!exists)
		return fail(md, -ENODATA, "device %llu does not exist", (unsigned long long)dev);
	struct tmd_dev *td = find_dev(md, dev);
	if (td) {
		*td = md->devs[--md->nr_devs];
		r = index_rebuild(md, md->nr_devs);
		if (r)
			return fail(md, r, "out of memory");
	}
	r = btree_remove(&md->details_info, md->details_root, &dev, &md->details_root);
	if (r == -ENODATA)
		r = 0; /* created in this transaction: details not written yet */
	if (!r)
		r = btree_remove(&md->tl_info, md->root, &dev, &md->root);
	if (r)
		return op_result(md, r, "delete");
	md->changed = true;
	return 0;
}

struct list_ctx {
	uint64_t *ids;
	size_t nr, cap;
};

static int list_one(void *ctx, uint64_t key, const void *value)
{
	(void)value;
	struct list_ctx *l = ctx;
	if (l->nr == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint64_t *n = realloc(l->ids, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->ids = n;
		l->cap = cap;
	}
	l->ids[l->nr++] = key;
	return 0;
}

int tmd_list_devices(struct tmd *md, uint64_t **ids, size_t *nr)
{
	struct list_ctx l = {0};
	int r = btree_walk(&md->tl_info, md->root, list_one, &l);
	if (r) {
		free(l.ids);
		return op_result(md, r, "listing devices");
	}
	*ids = l.ids;
	*nr = l.nr;
	return 0;
}

int tmd_get_details(struct tmd *md, uint64_t dev, struct thin_details *d)
{
	struct tmd_dev *td;
	int r = get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return op_result(md, r, "reading device details");
	*d = td->d;
	return 0;
}

int tmd_set_details(struct tmd *md, uint64_t dev, const struct thin_details *d)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return op_result(md, r, "reading device details");
	td->d = *d;
	td->changed = true;
	md->changed = true;
	return 0;
}

/* ---- transaction id, metadata snapshot ---- */

int tmd_set_transaction_id(struct tmd *md, uint64_t current, uint64_t next)
{
	int r = writable(md);
	if (r)
		return r;
	if (md->sb.trans_id != current)
		return fail(md, -EINVAL,
			    "transaction id mismatch: pool has %llu, the request expected %llu",
			    (unsigned long long)md->sb.trans_id, (unsigned long long)current);
	md->sb.trans_id = next;
	md->changed = true;
	return 0;
}

uint64_t tmd_transaction_id(const struct tmd *md) { return md->sb.trans_id; }
uint64_t tmd_metadata_snap(const struct tmd *md) { return md->sb.held_root; }

int tmd_reserve_metadata_snap(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	if (md->sb.held_root)
		return fail(md, -EBUSY,
			    "a metadata snapshot already exists: release it before taking another");
	/* The copy must describe the current roots, so commit first. */
	r = tmd_commit(md);
	if (r)
		return r;
	r = tm_inc(md->tm, THIN_SUPERBLOCK_LOCATION);
	if (r)
		return op_result(md, r, "reserve_metadata_snap");
	struct bm_block *copy;
	bool inc;
	r = tm_shadow_block(md->tm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &copy, &inc);
	if (r)
		return op_result(md, r, "reserve_metadata_snap");
	uint8_t *d = bm_block_data(copy);
	memset(d + 64, 0, 2 * SM_ROOT_FIELD_SIZE); /* the copy is not a usable pool */
	uint64_t held = bm_block_location(copy);
	uint64_t mroot = le64_get(d + 320), droot = le64_get(d + 328);
	tm_unlock(md->tm, copy);
	r = tm_inc(md->tm, mroot);
	if (!r)
		r = tm_inc(md->tm, droot);
	if (r)
		return op_result(md, r, "reserve_metadata_snap");
	md->sb.held_root = held;
	md->changed = true;
	return 0;
}

int tmd_release_metadata_snap(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	uint64_t held = md->sb.held_root;
	if (!held)
		return fail(md, -EINVAL, "there is no metadata snapshot to release");
	struct bm_block *blk;
	r = tm_read_lock(md->tm, held, &thin_sb_validator, &blk);
	if (r)
		return op_result(md, r, "release_metadata_snap");
	struct thin_superblock copy;
	thin_sb_unpack(bm_block_data(blk), &copy);
	tm_unlock(md->tm, blk);
	r = btree_del(&md->info, copy.data_mapping_root);
	if (!r)
		r = btree_del(&md->details_info, copy.device_details_root);
	if (!r)
		r = tm_dec(md->tm, held);
	if (r)
		return op_result(md, r, "release_metadata_snap");
	md->sb.held_root = 0;
	md->changed = true;
	return 0;
}

/* ---- mappings ---- */

int tmd_lookup(struct tmd *md, uint64_t dev, uint64_t vblock, struct thin_mapping *m)
{
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	int r = btree_lookup(&md->info, md->root, keys, v);
	if (r)
		return r == -ENODATA ? r : op_result(md, r, "lookup");
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r)
		return op_result(md, r, "lookup");
	uint64_t x = le64_get(v);
	m->data_block = x >> 24;
	m->time = (uint32_t)(x & THIN_MAX_TIME);
	m->shared = td->d.snapshotted_time > m->time;
	return 0;
}

int tmd_lookup_next(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t *found,
		    struct thin_mapping *m)
{
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	int r = btree_lookup_next(&md->info, md->root, keys, found, v);
	if (r)
		return r == -ENODATA ? r : op_result(md, r, "lookup");
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r)
		return op_result(md, r, "lookup");
	uint64_t x = le64_get(v);
	m->data_block = x >> 24;
	m->time = (uint32_t)(x & THIN_MAX_TIME);
	m->shared = td->d.snapshotted_time > m->time;
	return 0;
}

int tmd_insert_timed(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block,
		     uint32_t time)
{
	int r = writable(md);
	if (r)
		return r;
	if (data_block >= sm_disk_nr_blocks(md->dsm))
		return fail(md, -EINVAL, "data block %llu is beyond the data device (%llu blocks)",
			    (unsigned long long)data_block,
			    (unsigned long long)sm_disk_nr_blocks(md->dsm));
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return op_result(md, r, "insert");
	uint64_t td_index = (uint64_t)(td - md->devs);
	uint64_t keys[2] = {dev, vblock};
	uint8_t v[8];
	le64_put(v, pack_bt(data_block, time));
	int inserted = 0;
	r = btree_insert(&md->info, md->root, keys, v, &md->root, &inserted);
	if (r)
		return op_result(md, r, "insert");
	td = &md->devs[td_index];
	if (inserted)
		td->d.mapped_blocks++;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_insert(struct tmd *md, uint64_t dev, uint64_t vblock, uint64_t data_block)
{
	return tmd_insert_timed(md, dev, vblock, data_block, md->sb.time);
}

int tmd_remove(struct tmd *md, uint64_t dev, uint64_t vblock)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r)
		return r == -ENODATA ? r : op_result(md, r, "remove");
	uint64_t keys[2] = {dev, vblock};
	r = btree_remove(&md->info, md->root, keys, &md->root);
	if (r)
		return r == -ENODATA ? r : op_result(md, r, "remove");
	td->d.mapped_blocks--;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_remove_range(struct tmd *md, uint64_t dev, uint64_t begin, uint64_t end,
		     uint64_t *nr_removed)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = get_dev(md, dev, false, &td);
	if (r)
		return r == -ENODATA ? fail(md, r, "device %llu does not exist",
					    (unsigned long long)dev)
				     : op_result(md, r, "remove_range");
	uint64_t keys[2] = {dev, 0}, n = 0;
	r = btree_remove_range(&md->info, md->root, keys, begin, end, &md->root, &n);
	td->d.mapped_blocks -= n;
	if (n) {
		td->changed = true;
		md->changed = true;
	}
	if (nr_removed)
		*nr_removed = n;
	return r ? op_result(md, r, "remove_range") : 0;
}

int tmd_highest_mapped(struct tmd *md, uint64_t dev, uint64_t *vblock)
{
	uint64_t keys[2] = {dev, 0};
	int r = btree_find_highest_key(&md->info, md->root, keys, vblock);
	return r && r != -ENODATA ? op_result(md, r, "highest mapped block") : r;
}

struct walk_ctx {
	tmd_mapping_fn fn;
	void *ctx;
	bool stopped; /* the callback returned nonzero: its value, not ours */
};

static int walk_one(void *ctx, uint64_t key, const void *value)
{
	struct walk_ctx *w = ctx;
	uint64_t x = le64_get(value);
	int r = w->fn(w->ctx, key, x >> 24, (uint32_t)(x & THIN_MAX_TIME));
	w->stopped = r != 0;
	return r;
}

int tmd_walk_mappings(struct tmd *md, uint64_t dev, tmd_mapping_fn fn, void *ctx)
{
	uint8_t v[8];
	int r = btree_lookup(&md->tl_info, md->root, &dev, v);
	if (r)
		return r == -ENODATA ? fail(md, r, "device %llu does not exist",
					    (unsigned long long)dev)
				     : op_result(md, r, "walk");
	struct walk_ctx w = {fn, ctx, false};
	r = btree_walk(&md->bl_info, le64_get(v), walk_one, &w);
	return r && !w.stopped ? op_result(md, r, "walk") : r;
}

/* ---- data blocks ---- */

int tmd_alloc_data_block(struct tmd *md, uint64_t *b)
{
	int r = writable(md);
	if (r)
		return r;
	r = sm_disk_new_block(md->dsm, b);
	if (r == -ENOSPC)
		return fail(md, r, "out of data space");
	if (r)
		return op_result(md, r, "allocating a data block");
	md->changed = true;
	return 0;
}

int tmd_data_inc(struct tmd *md, uint64_t b)
{
	int r = writable(md);
	if (!r)
		r = sm_disk_inc(md->dsm, b);
	if (!r)
		md->changed = true;
	return r == -ERANGE ? fail(md, -EINVAL, "data block %llu out of range",
				   (unsigned long long)b)
			    : op_result(md, r, "data block inc");
}

int tmd_data_dec(struct tmd *md, uint64_t b)
{
	int r = writable(md);
	if (!r)
		r = sm_disk_dec(md->dsm, b);
	if (!r)
		md->changed = true;
	return op_result(md, r, "data block dec");
}

int tmd_data_count(struct tmd *md, uint64_t b, uint32_t *count)
{
	return op_result(md, sm_disk_get_count(md->dsm, b, count), "data block count");
}

uint64_t tmd_nr_data_blocks(const struct tmd *md) { return sm_disk_nr_blocks(md->dsm); }
uint64_t tmd_nr_free_data_blocks(const struct tmd *md) { return sm_disk_nr_free(md->dsm); }
uint64_t tmd_nr_metadata_blocks(const struct tmd *md) { return sm_meta_nr_blocks(md->msm); }
uint64_t tmd_nr_free_metadata_blocks(const struct tmd *md) { return sm_meta_nr_free(md->msm); }

uint64_t tmd_metadata_reserve(const struct tmd *md)
{
	uint64_t tenth = sm_meta_nr_blocks(md->msm) / 10;
	return tenth < 4096 ? tenth : 4096;
}

int tmd_resize_data(struct tmd *md, uint64_t nr_blocks)
{
	int r = writable(md);
	if (r)
		return r;
	if (nr_blocks < sm_disk_nr_blocks(md->dsm))
		return fail(md, -EINVAL, "cannot shrink the data device from %llu to %llu blocks",
			    (unsigned long long)sm_disk_nr_blocks(md->dsm),
			    (unsigned long long)nr_blocks);
	if (nr_blocks > THIN_MAX_DATA_BLOCK)
		return fail(md, -EINVAL, "%llu data blocks exceed the format's 2^40 limit",
			    (unsigned long long)nr_blocks);
	r = sm_disk_extend(md->dsm, nr_blocks);
	if (r)
		return op_result(md, r, "resizing the data space map");
	md->changed = true;
	return 0;
}

int tmd_resize_metadata(struct tmd *md)
{
	int r = writable(md);
	if (r)
		return r;
	r = bm_refresh_size(md->bm);
	if (r)
		return op_result(md, r, "reading the metadata device size");
	uint64_t n = bm_nr_blocks(md->bm);
	if (n > SM_METADATA_MAX_BLOCKS)
		n = SM_METADATA_MAX_BLOCKS;
	if (n < sm_meta_nr_blocks(md->msm))
		return fail(md, -EINVAL, "the metadata device shrank below its space map (%llu blocks)",
			    (unsigned long long)sm_meta_nr_blocks(md->msm));
	r = sm_meta_extend(md->msm, n);
	if (r)
		return op_result(md, r, "resizing the metadata space map");
	md->sb.metadata_nr_blocks = n;
	md->changed = true;
	return 0;
}

void tmd_sb_info(const struct tmd *md, struct thin_sb_info *info)
{
	memcpy(info->uuid, md->sb.uuid, 16);
	info->flags = md->sb.flags;
	info->version = md->sb.version;
	info->time = md->sb.time;
	info->transaction_id = md->sb.trans_id;
	info->held_root = md->sb.held_root;
	info->data_block_size = md->sb.data_block_size;
	info->nr_data_blocks = sm_disk_nr_blocks(md->dsm);
	info->metadata_nr_blocks = md->sb.metadata_nr_blocks;
}

int tmd_set_sb_fields(struct tmd *md, const uint8_t uuid[16], uint32_t time, uint64_t trans_id,
		      uint32_t flags, uint32_t version)
{
	int r = writable(md);
	if (r)
		return r;
	if (time > THIN_MAX_TIME)
		return fail(md, -EINVAL, "time %u exceeds 24 bits", time);
	memcpy(md->sb.uuid, uuid, 16);
	md->sb.time = time;
	md->sb.trans_id = trans_id;
	md->sb.flags = flags;
	md->sb.version = version;
	md->changed = true;
	return 0;
}

void tmd_cache_stats(const struct tmd *md, struct bm_stats *st) { bm_get_stats(md->bm, st); }

int tmd_set_needs_check(struct tmd *md)
{
	md->sb.flags |= THIN_SB_FLAG_NEEDS_CHECK;
	md->changed = true;
	return 0;
}

bool tmd_needs_check(const struct tmd *md) { return md->sb.flags & THIN_SB_FLAG_NEEDS_CHECK; }
