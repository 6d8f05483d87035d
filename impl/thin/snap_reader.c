/* Reading a metadata snapshot's trees (snap_reader.h). */
#include "thin/snap_reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pdata/transaction_manager.h"

struct snap_dev *snap_reader_find(struct snap_reader *s, uint64_t id)
{
	size_t lo = 0, hi = s->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
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
	struct snap_reader *s = ctx;
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

/* Walked rather than looked up per device: btree_walk never copies more than
 * the caller's value size out of a node, whatever the node claims. */
static int collect_details(void *ctx, uint64_t key, const void *value)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_reader_find(s, key);
	if (!sd) {
		if (!s->has_orphan) {
			s->has_orphan = true;
			s->details_orphan = key;
		}
		return 0;
	}
	thin_details_unpack(value, &sd->d);
	sd->has_details = true;
	return 0;
}

static const char *why(struct snap_reader *s, int r)
{
	return *bm_last_error(s->bm) ? bm_last_error(s->bm) : strerror(-r);
}

static int fail(struct snap_reader *s, int r, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what, why(s, r));
	return r;
}

const char *snap_reader_error(void *ctx)
{
	return ((struct snap_reader *)ctx)->err;
}

int snap_reader_list(void *ctx, uint64_t **ids, size_t *nr)
{
	struct snap_reader *s = ctx;
	*ids = malloc((s->nr ? s->nr : 1) * sizeof(**ids));
	if (!*ids)
		return fail(s, -ENOMEM, "listing the thin devices");
	for (size_t i = 0; i < s->nr; i++)
		(*ids)[i] = s->devs[i].id;
	*nr = s->nr;
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

int snap_reader_walk(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_reader_find(s, dev);
	if (!sd)
		return -ENODATA;
	struct walk_ctx w = { fn, fn_ctx };
	int r = btree_walk(&s->bottom, sd->root, walk_one, &w);
	return r ? fail(s, r, "walking the mapping tree") : 0;
}

static int read_sb(struct snap_reader *s, uint64_t b, struct thin_superblock *sb, char *err,
                   size_t errlen)
{
	struct bm_block *blk;
	int r = bm_read_lock(s->bm, b, &thin_sb_validator, &blk);
	if (r) {
		snprintf(err, errlen, "cannot read the %s at block %" PRIu64 ": %s",
		         b ? "metadata snapshot" : "superblock", b, why(s, r));
		return r;
	}
	thin_sb_unpack(bm_block_data(blk), sb);
	bm_unlock(blk);
	return 0;
}

int snap_reader_open(struct snap_reader *s, struct tp_dev *meta, uint64_t snap_block, char *err,
                     size_t errlen)
{
	memset(s, 0, sizeof(*s));
	/* a small cache: the readers visit each node once or twice, one device at a time */
	int r = bm_create(meta, 256, &s->bm);
	if (r) {
		snprintf(err, errlen, "cannot set up the metadata cache: %s", strerror(-r));
		return r;
	}
	if ((r = tm_create(s->bm, NULL, &s->tm))) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	if ((r = read_sb(s, THIN_SUPERBLOCK_LOCATION, &s->sb, err, errlen)))
		return r;
	if (!s->sb.held_root) {
		snprintf(err, errlen,
		         "the metadata holds no metadata snapshot (reserve one first: "
		         "thinp metadata-snap DIR reserve)");
		return -ENOENT;
	}
	if (snap_block && snap_block != s->sb.held_root) {
		snprintf(err, errlen,
		         "block %" PRIu64 " is not the metadata snapshot: the superblock holds one "
		         "at block %" PRIu64,
		         snap_block, s->sb.held_root);
		return -EINVAL;
	}
	if ((r = read_sb(s, s->sb.held_root, &s->held, err, errlen)))
		return r;
	s->top = (struct btree_info){ s->tm, 1, { NULL, 8, NULL, NULL, NULL } };
	s->bottom = s->top;
	s->details = (struct btree_info){ s->tm, 1, { NULL, 24, NULL, NULL, NULL } };
	r = btree_walk(&s->top, s->held.data_mapping_root, collect_dev, s);
	if (!r)
		r = btree_walk(&s->details, s->held.device_details_root, collect_details, s);
	if (r) {
		fail(s, r, "reading the metadata snapshot's trees");
		snprintf(err, errlen, "%s", s->err);
	}
	return r;
}

void snap_reader_close(struct snap_reader *s)
{
	free(s->devs);
	if (s->tm)
		tm_destroy(s->tm);
	if (s->bm)
		bm_destroy(s->bm);
	s->devs = NULL;
	s->tm = NULL;
	s->bm = NULL;
}
