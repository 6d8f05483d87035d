/* thin_restore: metadata built from thin_dump XML (see xml.h). The XML is read
 * by xml_read.c (libexpat); this file judges what the elements say and writes
 * the metadata as it goes. */
#include "thin/xml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "thin/xml_read.h"

enum state {
	S_TOP,
	S_SUPERBLOCK,
	S_DEVICE,
	S_MAPPING, /* inside <single_mapping> or <range_mapping>: only its end may follow */
	S_DONE
};

struct restore {
	struct xml_reader *x;
	struct tp_dev *meta;
	const struct xml_restore_opts *opts;
	struct tmd *md;
	uint64_t nr_data_blocks;
	uint32_t pool_time;
	enum state st;
	unsigned long sb_line;
	/* the tag being handled */
	const char *name;
	struct xml_attr *attrs;
	unsigned nr_attrs;
	unsigned long tag_line;
	/* the mapping element open in S_MAPPING */
	char mapping[XML_MAX_NAME];
	unsigned long mapping_line;
	/* device being read */
	uint64_t dev;
	unsigned long dev_line;
	uint64_t xml_mapped_blocks;
	struct thin_details details;
};

/* ---- attributes ---- */

static struct xml_attr *find_attr(struct restore *rs, const char *name)
{
	for (unsigned i = 0; i < rs->nr_attrs; i++)
		if (!strcmp(rs->attrs[i].name, name)) {
			rs->attrs[i].used = true;
			return &rs->attrs[i];
		}
	return NULL;
}

/* Report against the tag's own line. */
__attribute__((format(printf, 2, 3))) static int tag_fail(struct restore *rs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = xml_vfail(rs->x, rs->tag_line, fmt, ap);
	va_end(ap);
	return r;
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int get_u64(struct restore *rs, const char *name, uint64_t max, bool required, uint64_t *out)
{
	struct xml_attr *a = find_attr(rs, name);
	if (!a) {
		if (required)
			return tag_fail(rs, "<%s> is missing the %s attribute", rs->name, name);
		return 1;
	}
	const char *p = a->value;
	while (is_space(*p))
		p++;
	if (*p < '0' || *p > '9')
		return tag_fail(rs, "<%s> %s=\"%s\" is not a non-negative decimal number", rs->name,
		                name, a->value);
	uint64_t v = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return tag_fail(rs, "<%s> %s=\"%s\" is too big", rs->name, name, a->value);
		v = v * 10 + d;
	}
	while (is_space(*p))
		p++;
	if (*p)
		return tag_fail(rs, "<%s> %s=\"%s\" is not a non-negative decimal number", rs->name,
		                name, a->value);
	if (v > max)
		return tag_fail(rs, "<%s> %s %" PRIu64 " is too big (at most %" PRIu64 ")",
		                rs->name, name, v, max);
	*out = v;
	return 0;
}

/* ---- building the metadata ---- */

static void warn(struct restore *rs, const char *fmt, ...)
{
	if (!rs->opts->warn)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rs->opts->warn(rs->opts->warn_ctx, msg);
}

/* R: what the metadata call returned. Not every failure leaves a message in
 * tmd_error() (running out of space does not), hence the fallbacks. */
static int md_fail(struct restore *rs, int r, const char *what)
{
	if (r == -ENOSPC)
		return tag_fail(rs,
		                "%s: the metadata device is full (%" PRIu64 " blocks of 4 KiB): "
		                "restore to a bigger one",
		                what, tmd_nr_metadata_blocks(rs->md));
	const char *msg = tmd_error(rs->md);
	return tag_fail(rs, "%s: %s", what, *msg ? msg : strerror(-r));
}

static int no_unknown_children(struct restore *rs)
{
	if (!strcmp(rs->name, "def") || !strcmp(rs->name, "ref"))
		return tag_fail(rs,
		                "<%s> (shared mapping definitions, written by thin_dump 1.x) "
		                "is not supported: dump the metadata with thin_dump 0.9.x or "
		                "thinp dump, which write every mapping out",
		                rs->name);
	return 0;
}

static int begin_superblock(struct restore *rs)
{
	const struct xml_restore_opts *o = rs->opts;
	struct xml_attr *uuid_attr = find_attr(rs, "uuid");
	if (!uuid_attr)
		return tag_fail(rs, "<superblock> is missing the uuid attribute");
	uint64_t time, trans, dbs, nr_data, flags = 0, version = 1, snap;
	int r = get_u64(rs, "time", THIN_MAX_TIME, true, &time);
	if (!r)
		r = get_u64(rs, "transaction", UINT64_MAX, true, &trans);
	if (!r)
		r = get_u64(rs, "data_block_size", UINT32_MAX, true, &dbs);
	if (!r)
		r = get_u64(rs, "nr_data_blocks", THIN_MAX_DATA_BLOCK, true, &nr_data);
	if (r >= 0)
		r = get_u64(rs, "flags", UINT32_MAX, false, &flags);
	if (r >= 0)
		r = get_u64(rs, "version", UINT32_MAX, false, &version);
	if (r >= 0)
		r = get_u64(rs, "metadata_snap", UINT64_MAX, false, &snap);
	if (r < 0)
		return r;
	if (r == 0)
		/* thin_restore ignores it too: the snapshot's trees are not in the XML */
		warn(rs,
		     "line %lu: metadata_snap=\"%" PRIu64 "\" ignored: a metadata snapshot "
		     "cannot be restored",
		     rs->tag_line, snap);
	if (version < 1 || version > THIN_VERSION)
		return tag_fail(rs, "<superblock> version %" PRIu64 " is not supported (1..%u)",
		                version, THIN_VERSION);
	if (o->set_transaction_id)
		trans = o->transaction_id;
	if (o->set_data_block_size)
		dbs = o->data_block_size;
	if (o->set_nr_data_blocks)
		nr_data = o->nr_data_blocks;
	rs->nr_data_blocks = nr_data;
	rs->pool_time = (uint32_t)time;

	struct tmd_open_args a = { .meta = rs->meta, .cache_blocks = o->cache_blocks };
	char err[512];
	r = tmd_format(&a, (uint32_t)dbs, nr_data, &rs->md, err, sizeof(err));
	if (r)
		return tag_fail(rs, "cannot create the metadata: %s", err);
	/* The format committed an empty, valid pool. Invalidate it until the
	 * final commit, so that a crash part-way leaves nothing that looks like
	 * metadata. The final commit rewrites block 0 from scratch. */
	uint8_t zero[TP_BLOCK_SIZE] = { 0 };
	r = tp_dev_pwrite(rs->meta, zero, sizeof(zero), 0);
	if (!r)
		r = tp_dev_flush(rs->meta);
	if (r)
		return tag_fail(rs, "writing the metadata device failed: %s", strerror(-r));

	/* uuid: thin_restore stores up to 16 raw bytes of the string */
	uint8_t uuid[16] = { 0 };
	size_t ulen = strlen(uuid_attr->value);
	memcpy(uuid, uuid_attr->value, ulen < 16 ? ulen : 16);
	r = tmd_set_sb_fields(rs->md, uuid, (uint32_t)time, trans, (uint32_t)flags,
	                      (uint32_t)version);
	if (r)
		return md_fail(rs, r, "<superblock>");
	return 0;
}

static int begin_device(struct restore *rs)
{
	uint64_t dev, mapped, trans, ctime, stime;
	int r = get_u64(rs, "dev_id", THIN_MAX_DEV_ID, true, &dev);
	if (!r)
		r = get_u64(rs, "mapped_blocks", UINT64_MAX, true, &mapped);
	if (!r)
		r = get_u64(rs, "transaction", UINT64_MAX, true, &trans);
	if (!r)
		r = get_u64(rs, "creation_time", UINT32_MAX, true, &ctime);
	if (!r)
		r = get_u64(rs, "snap_time", UINT32_MAX, true, &stime);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(rs->md, dev, &exists);
	if (r)
		return md_fail(rs, r, "<device>");
	if (exists)
		return tag_fail(rs, "device %" PRIu64 " appears twice", dev);
	r = tmd_create_thin(rs->md, dev);
	if (r)
		return md_fail(rs, r, "<device>");
	rs->dev = dev;
	rs->dev_line = rs->tag_line;
	rs->xml_mapped_blocks = mapped;
	rs->details = (struct thin_details){ 0, trans, (uint32_t)ctime, (uint32_t)stime };
	/* thin_restore accepts this, but the kernel never writes it and the checker
	 * rejects it (a later snapshot could take such a device's mappings for shared):
	 * restore never writes metadata the checker rejects */
	if (ctime > rs->pool_time || stime > rs->pool_time)
		return tag_fail(rs,
		                "device %" PRIu64 " has creation_time %" PRIu64 "/snap_time %" PRIu64
		                " later than the pool time %" PRIu32
		                " (the kernel never writes this; fix the superblock's time)",
		                dev, ctime, stime, rs->pool_time);
	return 0;
}

static int end_device(struct restore *rs)
{
	struct thin_details now;
	int r = tmd_get_details(rs->md, rs->dev, &now);
	if (r)
		return md_fail(rs, r, "</device>");
	/* Like thin_restore, count the mappings rather than trust the attribute. */
	rs->details.mapped_blocks = now.mapped_blocks;
	if (now.mapped_blocks != rs->xml_mapped_blocks)
		warn(rs,
		     "line %lu: device %" PRIu64 " says mapped_blocks=\"%" PRIu64
		     "\" but has %" PRIu64 " mappings; using %" PRIu64,
		     rs->dev_line, rs->dev, rs->xml_mapped_blocks, now.mapped_blocks,
		     now.mapped_blocks);
	r = tmd_set_details(rs->md, rs->dev, &rs->details);
	if (r)
		return md_fail(rs, r, "</device>");
	return 0;
}

static int map_range(struct restore *rs, uint64_t origin, uint64_t data, uint64_t len,
                     uint64_t time)
{
	/* as for a device's times (begin_device): never written, rejected by the checker */
	if (time > rs->pool_time)
		return tag_fail(rs,
		                "%s has time %" PRIu64 " later than the pool time %" PRIu32
		                " (the kernel never writes this; fix the superblock's time)",
		                rs->name, time, rs->pool_time);
	for (uint64_t i = 0; i < len; i++) {
		/* each occurrence holds its own reference, as in thin_restore's
		 * private per-device trees; an overwritten mapping drops its old
		 * one, except when it is the same data block (the btree, like the
		 * kernel's, keeps an equal value's reference): then the reference
		 * held is the one (thin_restore 0.9.0 leaks a second) */
		struct thin_mapping old;
		int r = tmd_lookup(rs->md, rs->dev, origin + i, &old);
		if (!r && old.data_block == data + i)
			r = 0;
		else if (!r || r == -ENODATA)
			r = tmd_data_inc(rs->md, data + i);
		if (!r)
			r = tmd_insert_timed(rs->md, rs->dev, origin + i, data + i, (uint32_t)time);
		if (r)
			return md_fail(rs, r, rs->name);
	}
	return 0;
}

static int single_mapping(struct restore *rs)
{
	uint64_t origin, data, time;
	int r = get_u64(rs, "origin_block", UINT64_MAX, true, &origin);
	if (!r)
		r = get_u64(rs, "data_block", UINT64_MAX, true, &data);
	if (!r)
		r = get_u64(rs, "time", THIN_MAX_TIME, true, &time);
	if (r)
		return r;
	if (data >= rs->nr_data_blocks)
		return tag_fail(rs,
		                "single_mapping data_block %" PRIu64
		                " is beyond nr_data_blocks %" PRIu64,
		                data, rs->nr_data_blocks);
	return map_range(rs, origin, data, 1, time);
}

static int range_mapping(struct restore *rs)
{
	uint64_t origin, data, len, time;
	int r = get_u64(rs, "origin_begin", UINT64_MAX, true, &origin);
	if (!r)
		r = get_u64(rs, "data_begin", UINT64_MAX, true, &data);
	if (!r)
		r = get_u64(rs, "length", UINT64_MAX, true, &len);
	if (!r)
		r = get_u64(rs, "time", THIN_MAX_TIME, true, &time);
	if (r)
		return r;
	if (len > UINT64_MAX - origin)
		return tag_fail(rs,
		                "range_mapping origin_begin %" PRIu64 " + length %" PRIu64
		                " overflows 64 bits",
		                origin, len);
	if (data >= rs->nr_data_blocks || len > rs->nr_data_blocks - data)
		return tag_fail(rs,
		                "range_mapping data blocks %" PRIu64 "..%" PRIu64
		                " go beyond nr_data_blocks %" PRIu64,
		                data, len ? data + len - 1 : data, rs->nr_data_blocks);
	return map_range(rs, origin, data, len, time);
}

static void warn_unknown_attrs(struct restore *rs)
{
	for (unsigned i = 0; i < rs->nr_attrs; i++)
		if (!rs->attrs[i].used)
			warn(rs, "line %lu: <%s>: unknown attribute %s ignored", rs->tag_line,
			     rs->name, rs->attrs[i].name);
}

/* ---- the elements, in the order the reader meets them ---- */

/* <single_mapping …/> or <single_mapping …></single_mapping>: nothing inside. */
static int not_closed(struct restore *rs, const char *follows, const char *name)
{
	return xml_fail(rs->x, rs->mapping_line,
	                "<%s> is not closed (write <%s .../>): %s%s> follows", rs->mapping,
	                rs->mapping, follows, name);
}

static int on_start(struct xml_reader *x, void *ctx, const char *name, struct xml_attr *attrs,
                    unsigned nr_attrs)
{
	struct restore *rs = ctx;
	rs->x = x;
	rs->name = name;
	rs->attrs = attrs;
	rs->nr_attrs = nr_attrs;
	rs->tag_line = xml_line(x);
	if (rs->st == S_MAPPING)
		return not_closed(rs, "<", name);
	int r = no_unknown_children(rs);
	if (r)
		return r;
	switch (rs->st) {
	case S_TOP:
		if (strcmp(name, "superblock"))
			return tag_fail(rs, "expected <superblock>, found <%s>", name);
		rs->sb_line = rs->tag_line;
		r = begin_superblock(rs);
		rs->st = S_SUPERBLOCK;
		break;
	case S_SUPERBLOCK:
		if (strcmp(name, "device"))
			return tag_fail(rs, "<%s> is not allowed in <superblock> (only <device>)",
			                name);
		r = begin_device(rs);
		rs->st = S_DEVICE;
		break;
	case S_DEVICE:
		if (!strcmp(name, "single_mapping"))
			r = single_mapping(rs);
		else if (!strcmp(name, "range_mapping"))
			r = range_mapping(rs);
		else
			return tag_fail(
			        rs,
			        "<%s> is not allowed in <device> (only <single_mapping> and "
			        "<range_mapping>)",
			        name);
		snprintf(rs->mapping, sizeof(rs->mapping), "%s", name);
		rs->mapping_line = rs->tag_line;
		rs->st = S_MAPPING;
		break;
	case S_MAPPING:
		break;
	case S_DONE:
		return tag_fail(rs, "<%s> after </superblock>", name);
	}
	if (r)
		return r;
	warn_unknown_attrs(rs);
	return 0;
}

static int on_end(struct xml_reader *x, void *ctx, const char *name)
{
	struct restore *rs = ctx;
	rs->x = x;
	rs->name = name;
	rs->nr_attrs = 0;
	rs->tag_line = xml_line(x);
	switch (rs->st) {
	case S_MAPPING:
		if (strcmp(name, rs->mapping))
			return not_closed(rs, "</", name);
		rs->st = S_DEVICE;
		return 0;
	case S_SUPERBLOCK:
		if (strcmp(name, "superblock"))
			break;
		rs->st = S_DONE;
		return 0;
	case S_DEVICE:
		if (strcmp(name, "device"))
			break;
		rs->st = S_SUPERBLOCK;
		return end_device(rs);
	case S_TOP:
	case S_DONE:
		break;
	}
	return tag_fail(rs, "unexpected </%s>%s", name,
	                rs->st == S_DEVICE     ? ": <device> is still open" :
	                rs->st == S_SUPERBLOCK ? ": <superblock> is still open" :
	                                         "");
}

static int on_eof(struct xml_reader *x, void *ctx)
{
	struct restore *rs = ctx;
	unsigned long line = xml_line(x);
	switch (rs->st) {
	case S_TOP:
		return xml_fail(x, line, "no <superblock> element: is this thin_dump XML?");
	case S_SUPERBLOCK:
		return xml_fail(x, line,
		                "unexpected end of file: <superblock> (line %lu) is not closed",
		                rs->sb_line);
	case S_DEVICE:
		return xml_fail(x, line,
		                "unexpected end of file: <device> (line %lu) is not closed",
		                rs->dev_line);
	case S_MAPPING:
		return xml_fail(x, rs->mapping_line, "unexpected end of file: <%s> is not closed",
		                rs->mapping);
	case S_DONE:
		break;
	}
	return 0;
}

static int zero_superblock(struct tp_dev *meta)
{
	uint8_t zero[TP_BLOCK_SIZE] = { 0 };
	int r = tp_dev_pwrite(meta, zero, sizeof(zero), 0);
	return r ? r : tp_dev_flush(meta);
}

int xml_restore(FILE *in, struct tp_dev *meta, const struct xml_restore_opts *opts, char *err,
                size_t errlen)
{
	struct restore *rs = calloc(1, sizeof(*rs));
	if (!rs) {
		snprintf(err, errlen, "out of memory");
		(void)zero_superblock(meta); /* best effort: the error says it all */
		return -ENOMEM;
	}
	rs->meta = meta;
	rs->opts = opts;
	static const struct xml_reader_ops ops = { on_start, on_end, on_eof };
	int r = xml_read(in, &ops, rs, err, errlen);
	if (!r && tmd_commit(rs->md)) {
		r = -EIO;
		snprintf(err, errlen, "committing the metadata failed: %s", tmd_error(rs->md));
	}
	if (r) {
		tmd_close_nocommit(rs->md);
	} else {
		r = tmd_close(rs->md);
		if (r)
			snprintf(err, errlen, "closing the metadata failed: %s", strerror(-r));
	}
	if (r) {
		int z = zero_superblock(meta);
		if (z) {
			size_t n = strlen(err);
			snprintf(err + n, errlen - n,
			         "; zeroing the superblock afterwards failed too (%s): do not use "
			         "this metadata",
			         strerror(-z));
		}
	}
	free(rs);
	return r;
}
