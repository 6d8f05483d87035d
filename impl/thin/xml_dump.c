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
#include "thin/snap_reader.h"
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

/* -- metadata snapshot (its trees read through snap_reader.h) -- */

static int snap_details(void *ctx, uint64_t dev, struct thin_details *d)
{
	struct snap_dev *sd = snap_reader_find(ctx, dev);
	if (!sd || !sd->has_details)
		return -ENODATA;
	*d = sd->d;
	return 0;
}

int xml_dump_metadata_snap(struct tp_dev *meta, uint64_t snap_block, FILE *out,
                           const struct xml_dump_opts *opts, char *err, size_t errlen)
{
	struct snap_reader s;
	int r = snap_reader_open(&s, meta, snap_block, err, errlen);
	if (r)
		goto out;
	if (s.has_orphan) {
		r = set_err(err, errlen, -EUCLEAN,
		            "metadata contains errors: device %" PRIu64
		            " is in the device details tree but not in the mapping tree",
		            s.details_orphan);
		goto out;
	}
	struct sm_root dsm;
	sm_root_unpack(s.held.data_sm_root, &dsm);
	/* the copy's data space-map root is zeroed, so this is 0 as in 0.9.0 */
	struct dump_header h = { s.held.time,    s.held.trans_id,        s.held.flags,
		                 s.held.version, s.held.data_block_size, dsm.nr_blocks };
	struct dump_source src = { &s, snap_reader_list, snap_details, snap_reader_walk,
		                   snap_reader_error };
	r = dump(&src, &h, out, opts, err, errlen);
out:
	snap_reader_close(&s);
	return r;
}
