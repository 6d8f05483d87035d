/* Per-thin usage of a metadata snapshot (thin_ls -m): the trees the superblock copy at
 * held_root names, read through a block manager of its own. The holder of a live pool
 * keeps those blocks referenced, so they do not change under the reader while the
 * snapshot is held; the rest of the metadata does, and is not read except the superblock
 * (the data device's size). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pdata/transaction_manager.h"
#include "thin/superblock.h"
#include "thin/thin_usage.h"

struct snap_dev {
	uint64_t id, root;
	struct thin_details d;
	bool has_details;
};

struct snap {
	struct bm *bm;
	struct tm *tm;
	struct btree_info top, details, bottom;
	struct snap_dev *devs;
	size_t nr, cap;
	char err[256];
};

static struct snap_dev *find(struct snap *s, uint64_t id)
{
	size_t lo = 0, hi = s->nr; /* the top-level walk gives ids ascending */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->devs[mid].id == id)
			return &s->devs[mid];
		if (s->devs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int collect_dev(void *ctx, uint64_t key, const void *value)
{
	struct snap *s = ctx;
	if (s->nr == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct snap_dev *n = realloc(s->devs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->devs = n;
		s->cap = cap;
	}
	s->devs[s->nr++] = (struct snap_dev){ .id = key, .root = le64_get(value) };
	return 0;
}

static int collect_details(void *ctx, uint64_t key, const void *value)
{
	struct snap_dev *sd = find(ctx, key);
	if (sd) {
		thin_details_unpack(value, &sd->d);
		sd->has_details = true;
	}
	return 0;
}

static int fail(struct snap *s, int r, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what,
	         *bm_last_error(s->bm) ? bm_last_error(s->bm) : strerror(-r));
	return r;
}

static int snap_list(void *ctx, uint64_t **ids, size_t *nr)
{
	struct snap *s = ctx;
	*ids = malloc((s->nr ? s->nr : 1) * sizeof(**ids));
	if (!*ids)
		return fail(s, -ENOMEM, "listing the thins");
	for (size_t i = 0; i < s->nr; i++)
		(*ids)[i] = s->devs[i].id;
	*nr = s->nr;
	return 0;
}

static int snap_details(void *ctx, uint64_t dev, struct thin_details *d)
{
	struct snap *s = ctx;
	struct snap_dev *sd = find(s, dev);
	if (!sd || !sd->has_details) {
		snprintf(s->err, sizeof(s->err),
		         "the snapshot's details tree has no thin %" PRIu64 " (damaged metadata)",
		         dev);
		return -EUCLEAN;
	}
	*d = sd->d;
	return 0;
}

struct walk_ctx {
	tmd_mapping_fn fn;
	void *fn_ctx;
};

static int walk_one(void *ctx, uint64_t key, const void *value)
{
	struct walk_ctx *w = ctx;
	uint64_t x = le64_get(value); /* data block << 24 | time */
	return w->fn(w->fn_ctx, key, x >> 24, (uint32_t)(x & THIN_MAX_TIME));
}

static int snap_walk(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx)
{
	struct snap *s = ctx;
	struct walk_ctx w = { fn, fn_ctx };
	int r = btree_walk(&s->bottom, find(s, dev)->root, walk_one, &w);
	return r && r != -EUCLEAN ? fail(s, r, "walking the mapping tree") : r;
}

static const char *snap_error(void *ctx)
{
	return ((struct snap *)ctx)->err;
}

static int read_sb(struct snap *s, uint64_t b, struct thin_superblock *sb, char *err, size_t errlen)
{
	struct bm_block *blk;
	int r = bm_read_lock(s->bm, b, &thin_sb_validator, &blk);
	if (r) {
		snprintf(err, errlen, "cannot read the %s at block %" PRIu64 ": %s",
		         b ? "metadata snapshot" : "superblock", b,
		         *bm_last_error(s->bm) ? bm_last_error(s->bm) : strerror(-r));
		return r;
	}
	thin_sb_unpack(bm_block_data(blk), sb);
	bm_unlock(blk);
	return 0;
}

int thinp_thin_usage_snap(struct tp_dev *meta, uint64_t snap_block, struct thinp_thin_usage **out,
                          size_t *nr, uint32_t *block_sectors, char *err, size_t errlen)
{
	struct snap s = { 0 };
	struct thin_superblock sb, held;
	*out = NULL;
	*nr = 0;
	/* a small cache: each node is visited twice, one device at a time */
	int r = bm_create(meta, 256, &s.bm);
	if (r) {
		snprintf(err, errlen, "cannot set up the metadata cache: %s", strerror(-r));
		return r;
	}
	if ((r = tm_create(s.bm, NULL, &s.tm))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((r = read_sb(&s, THIN_SUPERBLOCK_LOCATION, &sb, err, errlen)))
		goto out;
	if (!sb.held_root) {
		r = -ENOENT;
		snprintf(err, errlen, "the metadata holds no metadata snapshot: reserve one first");
		goto out;
	}
	if (snap_block && snap_block != sb.held_root) {
		r = -EINVAL;
		snprintf(err, errlen,
		         "block %" PRIu64 " is not the metadata snapshot: the superblock holds one "
		         "at block %" PRIu64,
		         snap_block, sb.held_root);
		goto out;
	}
	if ((r = read_sb(&s, sb.held_root, &held, err, errlen)))
		goto out;
	s.top = (struct btree_info){ s.tm, 1, { NULL, 8, NULL, NULL, NULL } };
	s.bottom = s.top;
	s.details = (struct btree_info){ s.tm, 1, { NULL, 24, NULL, NULL, NULL } };
	r = btree_walk(&s.top, held.data_mapping_root, collect_dev, &s);
	if (!r)
		r = btree_walk(&s.details, held.device_details_root, collect_details, &s);
	if (r) {
		fail(&s, r, "reading the metadata snapshot's trees");
		snprintf(err, errlen, "%s", s.err);
		goto out;
	}
	/* the copy's own data space map root is zeroed: the live superblock gives the size,
	 * which only grows, so every block the snapshot maps is below it */
	struct sm_root dsm;
	sm_root_unpack(sb.data_sm_root, &dsm);
	const struct usage_source src = { &s,        snap_list,  snap_details,
		                          snap_walk, snap_error, dsm.nr_blocks };
	r = thin_usage_count(&src, out, nr, err, errlen);
	*block_sectors = held.data_block_size;
out:
	free(s.devs);
	tm_destroy(s.tm);
	bm_destroy(s.bm);
	return r;
}
