#include "thin/xml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/format.h"
#include "pdata/transaction_manager.h"
#include "thin/superblock.h"

static int set_err(char *err, size_t errlen, int r, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- output formats ---- */

/* What the header line shows. uuid is absent on purpose: 0.9.0 always
 * prints uuid="" whatever the superblock holds. */
struct dump_header {
	uint32_t time;
	uint64_t transaction_id;
	uint32_t flags;
	uint32_t version;
	uint32_t data_block_size;
	uint64_t nr_data_blocks;
};

struct emitter {
	FILE *out;
	enum xml_dump_format format;
	/* the run of mappings being coalesced */
	bool in_run;
	uint64_t origin, data, len;
	uint32_t time;
};

static void begin_superblock(struct emitter *e, const struct dump_header *h)
{
	if (e->format == XML_DUMP_HUMAN)
		fprintf(e->out,
		        "begin superblock: \"\", %" PRIu32 ", %" PRIu64 ", %" PRIu32 ", %" PRIu32
		        ", %" PRIu32 ", %" PRIu64 "\n",
		        h->time, h->transaction_id, h->flags, h->version, h->data_block_size,
		        h->nr_data_blocks);
	else
		fprintf(e->out,
		        "<superblock uuid=\"\" time=\"%" PRIu32 "\" transaction=\"%" PRIu64
		        "\" flags=\"%" PRIu32 "\" version=\"%" PRIu32
		        "\" data_block_size=\"%" PRIu32 "\" nr_data_blocks=\"%" PRIu64 "\">\n",
		        h->time, h->transaction_id, h->flags, h->version, h->data_block_size,
		        h->nr_data_blocks);
}

static void end_superblock(struct emitter *e)
{
	fputs(e->format == XML_DUMP_HUMAN ? "end superblock\n" : "</superblock>\n", e->out);
}

static void begin_device(struct emitter *e, uint64_t dev, const struct thin_details *d)
{
	if (e->format == XML_DUMP_HUMAN)
		fprintf(e->out,
		        "device: %" PRIu64 "\nmapped_blocks: %" PRIu64 "\ntransaction: %" PRIu64
		        "\ncreation time: %" PRIu32 "\nsnap time: %" PRIu32 "\n",
		        dev, d->mapped_blocks, d->transaction_id, d->creation_time,
		        d->snapshotted_time);
	else
		fprintf(e->out,
		        "  <device dev_id=\"%" PRIu64 "\" mapped_blocks=\"%" PRIu64
		        "\" transaction=\"%" PRIu64 "\" creation_time=\"%" PRIu32
		        "\" snap_time=\"%" PRIu32 "\">\n",
		        dev, d->mapped_blocks, d->transaction_id, d->creation_time,
		        d->snapshotted_time);
}

static void end_device(struct emitter *e)
{
	fputs(e->format == XML_DUMP_HUMAN ? "\n" : "  </device>\n", e->out);
}

static void flush_run(struct emitter *e)
{
	if (!e->in_run)
		return;
	e->in_run = false;
	if (e->format == XML_DUMP_HUMAN) {
		if (e->len == 1)
			fprintf(e->out, "    %" PRIu64 " -> %" PRIu64 ", %" PRIu32 "\n", e->origin,
			        e->data, e->time);
		else
			fprintf(e->out,
			        "    (%" PRIu64 "..%" PRIu64 ") -> (%" PRIu64 "..%" PRIu64
			        "), %" PRIu32 "\n",
			        e->origin, e->origin + e->len - 1, e->data, e->data + e->len - 1,
			        e->time);
	} else {
		if (e->len == 1)
			fprintf(e->out,
			        "    <single_mapping origin_block=\"%" PRIu64
			        "\" data_block=\"%" PRIu64 "\" time=\"%" PRIu32 "\"/>\n",
			        e->origin, e->data, e->time);
		else
			fprintf(e->out,
			        "    <range_mapping origin_begin=\"%" PRIu64
			        "\" data_begin=\"%" PRIu64 "\" length=\"%" PRIu64
			        "\" time=\"%" PRIu32 "\"/>\n",
			        e->origin, e->data, e->len, e->time);
	}
}

/* thin_dump 0.9.0 extends a run only while both the virtual and the data
 * block follow on and the time is unchanged; leaf boundaries do not matter. */
static int add_mapping(void *ctx, uint64_t vblock, uint64_t data_block, uint32_t time)
{
	struct emitter *e = ctx;
	if (e->in_run && vblock == e->origin + e->len && data_block == e->data + e->len &&
	    time == e->time) {
		e->len++;
		return 0;
	}
	flush_run(e);
	e->in_run = true;
	e->origin = vblock;
	e->data = data_block;
	e->len = 1;
	e->time = time;
	return 0;
}

/* ---- what is dumped: the live metadata or a metadata snapshot ---- */

struct dump_source {
	void *ctx;
	int (*list_devices)(void *ctx, uint64_t **ids, size_t *nr);
	int (*get_details)(void *ctx, uint64_t dev, struct thin_details *d);
	int (*walk)(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx);
	const char *(*error)(void *ctx);
};

/* Not every failure leaves a message behind (a failed tree walk does not). */
static const char *why(const struct dump_source *src, int r)
{
	const char *msg = src->error(src->ctx);
	return *msg ? msg : strerror(-r);
}

static int dump(const struct dump_source *src, const struct dump_header *h, FILE *out,
                const struct xml_dump_opts *opts, char *err, size_t errlen)
{
	struct emitter e = { .out = out, .format = opts->format };
	uint64_t *ids = NULL;
	size_t nr = 0;
	int r = src->list_devices(src->ctx, &ids, &nr);
	if (r)
		return set_err(err, errlen, r, "cannot list the thin devices: %s", why(src, r));
	begin_superblock(&e, h);
	for (size_t i = 0; i < nr; i++) {
		if (opts->one_dev && ids[i] != opts->dev_id)
			continue;
		struct thin_details d;
		r = src->get_details(src->ctx, ids[i], &d);
		if (r == -ENODATA) {
			/* thin_dump 0.9.0 refuses this too ("metadata contains errors") */
			r = set_err(err, errlen, -EUCLEAN,
			            "metadata contains errors: device %" PRIu64
			            " is in the mapping tree but not in the device details tree",
			            ids[i]);
			goto out;
		}
		if (r) {
			r = set_err(err, errlen, r,
			            "cannot read the details of device %" PRIu64 ": %s", ids[i],
			            why(src, r));
			goto out;
		}
		begin_device(&e, ids[i], &d);
		if (!opts->skip_mappings) {
			r = src->walk(src->ctx, ids[i], add_mapping, &e);
			if (r) {
				r = set_err(err, errlen, r,
				            "cannot read the mappings of device %" PRIu64 ": %s",
				            ids[i], why(src, r));
				goto out;
			}
			flush_run(&e);
		}
		end_device(&e);
		/* stop early rather than walking a huge pool into a dead pipe */
		if (ferror(out)) {
			r = set_err(err, errlen, -EIO, "writing the output failed: %s",
			            strerror(errno));
			goto out;
		}
	}
	end_superblock(&e);
	if (fflush(out) || ferror(out))
		r = set_err(err, errlen, -EIO, "writing the output failed: %s", strerror(errno));
out:
	free(ids);
	return r;
}

/* -- live metadata, through the metadata API -- */

static int md_list(void *ctx, uint64_t **ids, size_t *nr)
{
	return tmd_list_devices(ctx, ids, nr);
}

static int md_details(void *ctx, uint64_t dev, struct thin_details *d)
{
	return tmd_get_details(ctx, dev, d);
}

static int md_walk(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx)
{
	return tmd_walk_mappings(ctx, dev, fn, fn_ctx);
}

static const char *md_error(void *ctx)
{
	return tmd_error(ctx);
}

int xml_dump(struct tmd *md, FILE *out, const struct xml_dump_opts *opts, char *err, size_t errlen)
{
	struct thin_sb_info sb;
	tmd_sb_info(md, &sb);
	struct dump_header h = { sb.time,    sb.transaction_id,  sb.flags,
		                 sb.version, sb.data_block_size, sb.nr_data_blocks };
	struct dump_source src = { md, md_list, md_details, md_walk, md_error };
	return dump(&src, &h, out, opts, err, errlen);
}

/* -- metadata snapshot --
 * The held superblock copy has zeroed space-map roots, so it cannot be opened
 * as a pool (tmd_open); its trees are read directly, read-only. Nothing here
 * allocates or frees metadata blocks, so the transaction manager needs no
 * space map. */

struct snap_dev {
	uint64_t id;
	uint64_t root; /* mapping subtree */
	bool has_details;
	struct thin_details d;
};

struct snap_reader {
	struct bm *bm;
	struct tm *tm;
	struct btree_info tl_info, bl_info, details_info;
	struct snap_dev *devs; /* ascending ids, from the top-level mapping tree */
	size_t nr, cap;
	uint64_t details_orphan; /* a device with details but no mappings, if any */
	bool has_orphan;
	char err[512];
};

static struct snap_dev *snap_find(struct snap_reader *s, uint64_t id)
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

static int snap_collect_dev(void *ctx, uint64_t key, const void *value)
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
static int snap_collect_details(void *ctx, uint64_t key, const void *value)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_find(s, key);
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

static const char *snap_error(void *ctx)
{
	struct snap_reader *s = ctx;
	return s->err;
}

static int snap_fail(struct snap_reader *s, int r, const char *what)
{
	const char *why = *bm_last_error(s->bm) ? bm_last_error(s->bm) : strerror(-r);
	snprintf(s->err, sizeof(s->err), "%s: %s", what, why);
	return r;
}

static int snap_list(void *ctx, uint64_t **ids, size_t *nr)
{
	struct snap_reader *s = ctx;
	*ids = malloc((s->nr ? s->nr : 1) * sizeof(**ids));
	if (!*ids)
		return snap_fail(s, -ENOMEM, "listing devices");
	for (size_t i = 0; i < s->nr; i++)
		(*ids)[i] = s->devs[i].id;
	*nr = s->nr;
	return 0;
}

static int snap_details(void *ctx, uint64_t dev, struct thin_details *d)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_find(s, dev);
	if (!sd || !sd->has_details)
		return -ENODATA;
	*d = sd->d;
	return 0;
}

struct snap_walk_ctx {
	tmd_mapping_fn fn;
	void *fn_ctx;
};

static int snap_walk_one(void *ctx, uint64_t key, const void *value)
{
	struct snap_walk_ctx *w = ctx;
	uint64_t x = le64_get(value);
	return w->fn(w->fn_ctx, key, x >> 24, (uint32_t)(x & THIN_MAX_TIME));
}

static int snap_walk(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx)
{
	struct snap_reader *s = ctx;
	struct snap_dev *sd = snap_find(s, dev);
	if (!sd)
		return -ENODATA;
	struct snap_walk_ctx w = { fn, fn_ctx };
	int r = btree_walk(&s->bl_info, sd->root, snap_walk_one, &w);
	return r ? snap_fail(s, r, "walking the mapping tree") : 0;
}

int xml_dump_metadata_snap(struct tp_dev *meta, uint64_t snap_block, FILE *out,
                           const struct xml_dump_opts *opts, char *err, size_t errlen)
{
	struct snap_reader s = { 0 };
	struct thin_superblock sb, held;
	struct bm_block *blk;
	/* A small cache: the walk visits each node once. */
	int r = bm_create(meta, 256, &s.bm);
	if (r)
		return set_err(err, errlen, r, "cannot set up the metadata cache: %s",
		               strerror(-r));
	r = tm_create(s.bm, NULL, &s.tm);
	if (r) {
		r = set_err(err, errlen, r, "out of memory");
		goto out;
	}
	r = bm_read_lock(s.bm, THIN_SUPERBLOCK_LOCATION, &thin_sb_validator, &blk);
	if (r) {
		r = set_err(err, errlen, r, "cannot read the superblock: %s",
		            *bm_last_error(s.bm) ? bm_last_error(s.bm) : strerror(-r));
		goto out;
	}
	thin_sb_unpack(bm_block_data(blk), &sb);
	bm_unlock(blk);
	if (!sb.held_root) {
		r = set_err(err, errlen, -ENOENT,
		            "the metadata has no metadata snapshot (the superblock holds none)");
		goto out;
	}
	if (snap_block && snap_block != sb.held_root) {
		r = set_err(err, errlen, -EINVAL,
		            "block %" PRIu64 " is not the metadata snapshot: the superblock holds "
		            "one at block %" PRIu64,
		            snap_block, sb.held_root);
		goto out;
	}
	r = bm_read_lock(s.bm, sb.held_root, &thin_sb_validator, &blk);
	if (r) {
		r = set_err(err, errlen, r,
		            "cannot read the metadata snapshot at block %" PRIu64 ": %s",
		            sb.held_root,
		            *bm_last_error(s.bm) ? bm_last_error(s.bm) : strerror(-r));
		goto out;
	}
	thin_sb_unpack(bm_block_data(blk), &held);
	bm_unlock(blk);

	s.bl_info = (struct btree_info){ s.tm, 1, { NULL, 8, NULL, NULL, NULL } };
	s.tl_info = (struct btree_info){ s.tm, 1, { NULL, 8, NULL, NULL, NULL } };
	s.details_info = (struct btree_info){ s.tm, 1, { NULL, 24, NULL, NULL, NULL } };
	r = btree_walk(&s.tl_info, held.data_mapping_root, snap_collect_dev, &s);
	if (!r)
		r = btree_walk(&s.details_info, held.device_details_root, snap_collect_details, &s);
	if (r) {
		snap_fail(&s, r, "reading the metadata snapshot's trees");
		r = set_err(err, errlen, r, "%s", s.err);
		goto out;
	}
	if (s.has_orphan) {
		r = set_err(err, errlen, -EUCLEAN,
		            "metadata contains errors: device %" PRIu64
		            " is in the device details tree but not in the mapping tree",
		            s.details_orphan);
		goto out;
	}

	struct sm_root dsm;
	sm_root_unpack(held.data_sm_root, &dsm);
	/* the copy's data space-map root is zeroed, so this is 0 as in 0.9.0 */
	struct dump_header h = { held.time,    held.trans_id,        held.flags,
		                 held.version, held.data_block_size, dsm.nr_blocks };
	struct dump_source src = { &s, snap_list, snap_details, snap_walk, snap_error };
	r = dump(&src, &h, out, opts, err, errlen);
out:
	free(s.devs);
	tm_destroy(s.tm);
	bm_destroy(s.bm);
	return r;
}
