/* Thin-pool metadata (see metadata.h): the superblock, opening, formatting,
 * commit and abort, the btree value types, and the superblock's fields
 * (transaction id, needs_check, what restore sets). metadata_internal.h
 * lists the other files. */
#include "thin/metadata.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/space_map.h"
#include "pdata/transaction_manager.h"
#include "thin/metadata_internal.h"
#include "thin/superblock.h"

int tmd_fail(struct tmd *md, int r, const char *fmt, ...)
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

/* The cache when the caller gave no size: the metadata in use and an
 * eighth more to grow into (so lookups in a large pool stay hits, as
 * dm-bufio's cache is sized from what it holds), never below the 16 MiB
 * default and never above the cap: 1/16 of the machine's memory, at most
 * 1 GiB. An explicit size is left alone. */
static int autosize_cache(struct tmd *md)
{
	if (md->args.cache_blocks)
		return 0;
	uint64_t used = sm_meta_nr_blocks(md->msm) - sm_meta_nr_free(md->msm);
	uint64_t want = used + used / 8;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t cap = 1ull << 30;
	if (pages > 0 && page > 0 && (uint64_t)pages * (uint64_t)page / 16 < cap)
		cap = (uint64_t)pages * (uint64_t)page / 16;
	cap /= TP_BLOCK_SIZE;
	if (cap < THIN_DEFAULT_CACHE_BLOCKS)
		cap = THIN_DEFAULT_CACHE_BLOCKS;
	struct bm_stats st;
	bm_get_stats(md->bm, &st);
	uint64_t now = st.capacity;
	/* grow by a quarter at least, so a growing pool rehashes rarely;
	 * shrink only when a quarter of it is no longer wanted */
	if (want > now && want < now + now / 4)
		want = now + now / 4;
	if (want > cap)
		want = cap;
	if (want < THIN_DEFAULT_CACHE_BLOCKS)
		want = THIN_DEFAULT_CACHE_BLOCKS;
	if (want == now || (want < now && want >= now - now / 4))
		return 0;
	return bm_set_capacity(md->bm, (size_t)want);
}

/* Load everything from the committed superblock. */
static int load(struct tmd *md)
{
	size_t cache = md->args.cache_blocks ? md->args.cache_blocks : THIN_DEFAULT_CACHE_BLOCKS;
	int r = bm_create(md->args.meta, cache, &md->bm);
	if (r)
		return tmd_fail(md, r, "cannot set up the metadata cache: %s", strerror(-r));
	if (bm_nr_blocks(md->bm) < 1)
		return tmd_fail(md, -EINVAL, "metadata device is smaller than one 4 KiB block");
	struct bm_block *blk;
	r = bm_read_lock(md->bm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &blk);
	if (r)
		return tmd_fail(md, r, "%s", bm_last_error(md->bm));
	thin_sb_unpack(bm_block_data(blk), &md->sb);
	bm_unlock(blk);

	struct thin_superblock *sb = &md->sb;
	if (sb->version < 1 || sb->version > THIN_VERSION)
		return tmd_fail(md, -EINVAL, "superblock version %u is not supported (1..%u)",
			        sb->version, THIN_VERSION);
	if (sb->incompat_flags)
		return tmd_fail(md, -EINVAL,
			        "metadata uses unsupported incompatible features (0x%x): refusing to open",
			        sb->incompat_flags);
	if (sb->compat_ro_flags && !md->args.read_only)
		return tmd_fail(md, -EROFS,
			        "metadata has unsupported read-only-compatible features (0x%x): open it read-only",
			        sb->compat_ro_flags);
	if (!validate_block_size(sb->data_block_size))
		return tmd_fail(md, -EINVAL,
			        "superblock data_block_size %u sectors is invalid (128..2097152, multiple of 128)",
			        sb->data_block_size);
	if (sb->metadata_block_size != 8)
		return tmd_fail(md, -EINVAL, "superblock metadata_block_size %u is not 8 sectors",
			        sb->metadata_block_size);

	struct sm_root mroot;
	sm_root_unpack(sb->metadata_sm_root, &mroot);
	if (mroot.nr_blocks > bm_nr_blocks(md->bm))
		return tmd_fail(md, -ENOSPC,
			        "metadata device too small: its space map covers %llu blocks but the device has %llu",
			        (unsigned long long)mroot.nr_blocks,
			        (unsigned long long)bm_nr_blocks(md->bm));
	r = sm_meta_open(md->bm, sb->metadata_sm_root, &md->msm);
	if (r)
		return tmd_fail(md, r, "cannot load the metadata space map: %s",
			        *bm_last_error(md->bm) ? bm_last_error(md->bm) : strerror(-r));
	r = tm_create(md->bm, md->msm, &md->tm);
	if (r)
		return tmd_fail(md, r, "out of memory");
	r = autosize_cache(md);
	if (r)
		return tmd_fail(md, r, "cannot size the metadata cache: %s", strerror(-r));
	r = sm_meta_load_overflow(md->msm, md->tm);
	if (r)
		return tmd_fail(md, r, "cannot load the metadata space map overflow counts: %s",
			        *bm_last_error(md->bm) ? bm_last_error(md->bm) : strerror(-r));
	r = sm_disk_open(md->tm, sb->data_sm_root, &md->dsm);
	if (r)
		return tmd_fail(md, r, "cannot load the data space map: %s",
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
	/* (the loaded details stay until tmd_commit_finish: lookups from cached metadata
	 * during the commit's IO need them) */
	return 0;
}

/* The commit in three steps (see docs/on-disk-format.md, commit ordering).
 * The preparation changes metadata blocks (details, space maps, seals), so
 * it runs with every reader excluded; the IO then only reads the cache, so
 * lookups from cached metadata (tmd_lookup_peek) may run beside it; the
 * finish updates the cache and the in-core state. The data device's flush
 * starts first and runs while the new metadata blocks are written (they are
 * unreachable until the superblock points at them); those blocks go out in
 * location order and coalesced, one metadata flush, and only once both
 * flushes are done the superblock in one durable write. */
int tmd_commit_prepare(struct tmd *md)
{
	struct tmd_commit_state *c = &md->commit;
	c->active = false;
	if (md->failed)
		return tmd_fail(md, -EIO, "metadata operation failed earlier; abort the transaction first");
	if (md->args.read_only)
		return 0;
	if (!c->sb_block && posix_memalign((void **)&c->sb_block, TP_BLOCK_SIZE, TP_BLOCK_SIZE)) {
		c->sb_block = NULL;
		md->failed = true;
		return tmd_fail(md, -ENOMEM, "out of memory for the superblock's write");
	}
	c->active = true;
	c->sb = md->sb;
	if (md->args.data)
		tp_dev_flush_start(md->args.data, &c->data_flush);
	struct thin_superblock *sb = &c->sb;
	int r = write_details(md);
	if (r) {
		tmd_fail(md, r, "writing device details failed: %s", strerror(-r));
		goto fail;
	}
	memset(sb->data_sm_root, 0, sizeof(sb->data_sm_root));
	memset(sb->metadata_sm_root, 0, sizeof(sb->metadata_sm_root));
	r = sm_disk_write(md->dsm, sb->data_sm_root);
	if (r) {
		tmd_fail(md, r, "writing the data space map failed: %s", strerror(-r));
		goto fail;
	}
	r = sm_meta_write(md->msm, md->tm, sb->metadata_sm_root);
	if (r) {
		tmd_fail(md, r, "writing the metadata space map failed: %s", strerror(-r));
		goto fail;
	}
	r = bm_flush_prepare(md->bm);
	if (r) {
		tmd_fail(md, r, "writing metadata blocks failed: %s", strerror(-r));
		goto fail;
	}
	sb->data_mapping_root = md->root;
	sb->device_details_root = md->details_root;
	sb->magic = THIN_SUPERBLOCK_MAGIC;
	sb->metadata_block_size = 8;
	memset(c->sb_block, 0, TP_BLOCK_SIZE);
	thin_sb_pack(sb, c->sb_block);
	thin_sb_validator.prepare(c->sb_block, THIN_SUPERBLOCK_LOCATION);
	return 0;
fail:
	if (md->args.data)
		(void)tp_dev_flush_wait(&c->data_flush); /* the failure is the one to report */
	c->active = false;
	md->failed = true;
	return r;
}

int tmd_commit_io(struct tmd *md)
{
	struct tmd_commit_state *c = &md->commit;
	if (!c->active)
		return 0;
	int r = bm_flush_io(md->bm), dr = 0;
	/* data first: a mapping must never reach disk before its data */
	if (md->args.data)
		dr = tp_dev_flush_wait(&c->data_flush);
	if (r) {
		snprintf(c->err, sizeof(c->err), "writing metadata blocks failed: %s", strerror(-r));
	} else if (dr) {
		r = dr;
		snprintf(c->err, sizeof(c->err), "flushing the data device failed: %s", strerror(-dr));
	} else if ((r = bm_write_copy_durable(md->bm, THIN_SUPERBLOCK_LOCATION, c->sb_block))) {
		snprintf(c->err, sizeof(c->err), "writing the superblock failed: %s", strerror(-r));
	}
	c->io_result = r;
	return r;
}

int tmd_commit_finish(struct tmd *md)
{
	struct tmd_commit_state *c = &md->commit;
	if (!c->active)
		return 0;
	c->active = false;
	int r = c->io_result;
	if (r) {
		md->failed = true;
		return tmd_fail(md, r, "%s", c->err);
	}
	r = bm_flush_finish(md->bm);
	if (!r)
		r = bm_install_clean(md->bm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator,
				     c->sb_block);
	if (r) {
		md->failed = true;
		return tmd_fail(md, r, "after the commit, updating the metadata cache failed: %s",
			        strerror(-r));
	}
	forget_devs(md);
	sm_meta_committed(md->msm);
	r = sm_disk_committed(md->dsm);
	if (r) {
		md->failed = true;
		return tmd_fail(md, r, "out of memory after commit");
	}
	md->sb = c->sb;
	md->changed = false;
	/* (a cache that cannot grow just stays as it is) */
	(void)autosize_cache(md);
	return 0;
}

static int commit(struct tmd *md)
{
	int r = tmd_commit_prepare(md);
	if (r)
		return r;
	(void)tmd_commit_io(md); /* (its failure is the finish's result) */
	return tmd_commit_finish(md);
}

int tmd_commit(struct tmd *md) { return commit(md); }

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
		r = tmd_fail(md, -EINVAL,
			     "data block size %u sectors is invalid: use 128..2097152 sectors (64 KiB..1 GiB), a multiple of 128",
			     data_block_sectors);
		goto out;
	}
	if (nr_data_blocks > THIN_MAX_DATA_BLOCK) {
		r = tmd_fail(md, -EINVAL, "%llu data blocks exceed the format's 2^40 limit",
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
		r = tmd_fail(md, -ENOSPC, "metadata device too small (%llu bytes): it needs at least 64 KiB",
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
	free(md->commit.sb_block);
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
	free(md->commit.sb_block);
	free(md->devs);
	free(md->dev_slots);
	free(md);
}

/* Mark failure on any metadata error, as the kernel does (the pool then
 * needs an abort). That includes running out of metadata space: a btree
 * update that fails half-way (e.g. after shadowing a node) leaves the trees
 * and counts inconsistent, so the transaction must not be committed. (Data
 * ENOSPC is reported by tmd_alloc_data_block before it gets here.) */
int tmd_op_result(struct tmd *md, int r, const char *what)
{
	if (r && r != -ENODATA && r != -EEXIST) { /* EINVAL from below is a refcount or tree bug */
		md->failed = true;
		/* the errno's own text ("Structure needs cleaning", "Invalid or incomplete
		 * multibyte …") would hide what the walk or the validator found */
		if (r == -EUCLEAN && *tm_error(md->tm))
			return tmd_fail(md, r, "%s failed: %s", what, tm_error(md->tm));
		if (r == -EILSEQ && *bm_last_error(md->bm))
			return tmd_fail(md, r, "%s failed: metadata corrupt: %s", what,
				        bm_last_error(md->bm));
		return tmd_fail(md, r, "%s failed: %s%s%s", what, strerror(-r),
			        *bm_last_error(md->bm) ? ": " : "", bm_last_error(md->bm));
	}
	return r;
}

/* ---- superblock fields ---- */

int tmd_set_transaction_id(struct tmd *md, uint64_t current, uint64_t next)
{
	int r = writable(md);
	if (r)
		return r;
	if (md->sb.trans_id != current)
		return tmd_fail(md, -EINVAL,
			        "transaction id mismatch: pool has %llu, the request expected %llu",
			        (unsigned long long)md->sb.trans_id, (unsigned long long)current);
	md->sb.trans_id = next;
	md->changed = true;
	return 0;
}

uint64_t tmd_transaction_id(const struct tmd *md) { return md->sb.trans_id; }
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
		return tmd_fail(md, -EINVAL, "time %u exceeds 24 bits", time);
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
