#include "thin/thin_usage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "thin/pool_internal.h"

/* 2-bit saturating counts per data block (0, 1, 2 = two or more): exclusive only needs
 * to tell one mapping from several, and a 16 TiB pool of 64 KiB blocks then needs 64 MiB. */
struct usage_walk {
	uint8_t *counts;
	uint64_t nr_data;
	uint64_t dev;
	uint64_t bad_block; /* a mapping beyond the data device (UINT64_MAX: none) */
	uint64_t mapped, exclusive;
};

static unsigned count_get(const uint8_t *c, uint64_t b)
{
	return (c[b / 4] >> ((b % 4) * 2)) & 3u;
}

static int count_mapping(void *ctx, uint64_t vblock, uint64_t data_block, uint32_t time)
{
	(void)vblock;
	(void)time;
	struct usage_walk *w = ctx;
	if (data_block >= w->nr_data) {
		w->bad_block = data_block;
		return -EUCLEAN;
	}
	unsigned v = count_get(w->counts, data_block);
	if (v < 2) {
		unsigned shift = (unsigned)(data_block % 4) * 2;
		w->counts[data_block / 4] = (uint8_t)((w->counts[data_block / 4] & ~(3u << shift)) |
		                                      ((v + 1) << shift));
	}
	return 0;
}

static int tally_mapping(void *ctx, uint64_t vblock, uint64_t data_block, uint32_t time)
{
	(void)vblock;
	(void)time;
	struct usage_walk *w = ctx;
	w->mapped++;
	if (count_get(w->counts, data_block) == 1)
		w->exclusive++;
	return 0;
}

static int walk_failed(const struct usage_source *src, const struct usage_walk *w, int r, char *err,
                       size_t len)
{
	if (r == -EUCLEAN && w->bad_block != UINT64_MAX)
		snprintf(
		        err, len,
		        "thin %llu maps data block %llu, beyond the data device's %llu blocks: the "
		        "metadata is damaged; run thinp check on it",
		        (unsigned long long)w->dev, (unsigned long long)w->bad_block,
		        (unsigned long long)w->nr_data);
	else
		snprintf(err, len, "reading the mappings of thin %llu: %s",
		         (unsigned long long)w->dev, src->error(src->ctx));
	return r;
}

int thin_usage_count(const struct usage_source *src, struct thinp_thin_usage **out, size_t *nr,
                     char *err, size_t errlen)
{
	*out = NULL;
	*nr = 0;
	uint64_t *ids = NULL;
	size_t n = 0;
	int r = src->list(src->ctx, &ids, &n);
	if (r) {
		snprintf(err, errlen, "listing the thin devices: %s", src->error(src->ctx));
		return r;
	}
	struct usage_walk w = { .nr_data = src->nr_data_blocks, .bad_block = UINT64_MAX };
	w.counts = calloc(w.nr_data / 4 + 1, 1);
	struct thinp_thin_usage *u = n ? calloc(n, sizeof(*u)) : NULL;
	if (!w.counts || (n && !u)) {
		snprintf(err, errlen, "out of memory counting %llu data blocks",
		         (unsigned long long)w.nr_data);
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		w.dev = ids[i];
		if ((r = src->walk(src->ctx, ids[i], count_mapping, &w))) {
			walk_failed(src, &w, r, err, errlen);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct thin_details d;
		w.dev = ids[i];
		w.mapped = w.exclusive = 0;
		if ((r = src->details(src->ctx, ids[i], &d))) {
			snprintf(err, errlen, "reading the details of thin %llu: %s",
			         (unsigned long long)ids[i], src->error(src->ctx));
			goto out;
		}
		if ((r = src->walk(src->ctx, ids[i], tally_mapping, &w))) {
			walk_failed(src, &w, r, err, errlen);
			goto out;
		}
		u[i] = (struct thinp_thin_usage){
			.id = ids[i],
			.mapped_blocks = w.mapped,
			.exclusive_blocks = w.exclusive,
			.shared_blocks = w.mapped - w.exclusive,
			.transaction_id = d.transaction_id,
			.creation_time = d.creation_time,
			.snapshotted_time = d.snapshotted_time,
		};
	}
	*out = u;
	*nr = n;
	u = NULL;
out:
	free(u);
	free(w.counts);
	free(ids);
	return r;
}

static int md_list(void *md, uint64_t **ids, size_t *nr)
{
	return tmd_list_devices(md, ids, nr);
}

static int md_details(void *md, uint64_t dev, struct thin_details *d)
{
	return tmd_get_details(md, dev, d);
}

static int md_walk(void *md, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx)
{
	return tmd_walk_mappings(md, dev, fn, fn_ctx);
}

static const char *md_error(void *md)
{
	return tmd_error(md);
}

int tmd_thin_usage(struct tmd *md, struct thinp_thin_usage **out, size_t *nr, char *err,
                   size_t errlen)
{
	const struct usage_source src = { md,      md_list,  md_details,
		                          md_walk, md_error, tmd_nr_data_blocks(md) };
	return thin_usage_count(&src, out, nr, err, errlen);
}

int thinp_thin_usage(struct thinp_pool *p, struct thinp_thin_usage **out, size_t *nr)
{
	char err[512];
	md_excl_lock(p);
	int r = mode_get(p) == THINP_MODE_FAIL ? pool_check_writable(p) :
	                                         tmd_thin_usage(p->md, out, nr, err, sizeof(err));
	if (r && mode_get(p) != THINP_MODE_FAIL)
		pool_err(p, r, "%s", err);
	md_excl_unlock(p);
	return r;
}
