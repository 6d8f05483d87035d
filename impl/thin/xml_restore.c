#include "thin/xml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/block_manager.h"

/* ---- a small streaming XML reader ----
 * Enough XML for thin_dump output and hand-written files: elements with
 * attributes ('…' or "…", the five predefined entities and character
 * references), comments, processing instructions, a DOCTYPE without an
 * internal subset. Text content may only be whitespace: the format has none. */

#define XR_MAX_NAME  64
#define XR_MAX_VALUE 1024
#define XR_MAX_ATTRS 16

enum xr_event {
	XR_START,
	XR_END,
	XR_EOF
};

struct xr_attr {
	char name[XR_MAX_NAME];
	char value[XR_MAX_VALUE];
	bool used;
};

struct xr {
	FILE *in;
	unsigned long line;     /* current line (1-based) */
	unsigned long tag_line; /* line of the '<' of the last event */
	char name[XR_MAX_NAME];
	struct xr_attr attrs[XR_MAX_ATTRS];
	unsigned nr_attrs;
	bool empty; /* <x/>: the matching XR_END comes next */
	bool pending_end;
	char err[512];
};

static int xr_fail(struct xr *x, const char *fmt, ...)
{
	int n = snprintf(x->err, sizeof(x->err), "line %lu: ", x->line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err + n, sizeof(x->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int xr_getc(struct xr *x)
{
	int c = getc_unlocked(x->in);
	if (c == '\n')
		x->line++;
	return c;
}

static void xr_ungetc(struct xr *x, int c)
{
	if (c == EOF)
		return;
	if (c == '\n')
		x->line--;
	ungetc(c, x->in);
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == ':';
}

static int skip_space(struct xr *x)
{
	int c;
	do
		c = xr_getc(x);
	while (is_space(c));
	return c;
}

/* Skip up to and including the terminator TERM (e.g. "-->"). */
static int skip_until(struct xr *x, const char *term, const char *what)
{
	size_t n = strlen(term), seen = 0;
	char last[4] = { 0 }; /* the last n characters read (n <= 3) */
	unsigned long start = x->line;
	for (;;) {
		int c = xr_getc(x);
		if (c == EOF) {
			x->line = start;
			return xr_fail(x, "%s is not closed with '%s'", what, term);
		}
		memmove(last, last + 1, n - 1);
		last[n - 1] = (char)c;
		if (++seen >= n && !memcmp(last, term, n))
			return 0;
	}
}

static int read_name(struct xr *x, int c, char *buf, const char *what)
{
	size_t n = 0;
	if (!is_name_char(c) || (c >= '0' && c <= '9') || c == '-' || c == '.')
		return c == EOF ? xr_fail(x, "unexpected end of file in %s", what) :
		                  xr_fail(x, "expected %s, found '%c'", what, c);
	while (is_name_char(c)) {
		if (n + 1 >= XR_MAX_NAME)
			return xr_fail(x, "%s is too long", what);
		buf[n++] = (char)c;
		c = xr_getc(x);
	}
	buf[n] = '\0';
	xr_ungetc(x, c);
	return 0;
}

static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xC0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xE0 | cp >> 12);
		p[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		p[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	p[0] = (char)(0xF0 | cp >> 18);
	p[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	p[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	p[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* After '&': decode one entity into OUT, returning its length (or < 0). */
static int read_entity(struct xr *x, char *out)
{
	char ref[16];
	size_t n = 0;
	int c;
	while ((c = xr_getc(x)) != ';') {
		if (c == EOF || is_space(c) || c == '"' || c == '\'' || c == '<' ||
		    n + 1 >= sizeof(ref))
			return xr_fail(x, "malformed entity reference '&%.*s'", (int)n, ref);
		ref[n++] = (char)c;
	}
	ref[n] = '\0';
	static const struct {
		const char *name;
		char c;
	} named[] = {
		{ "lt", '<' }, { "gt", '>' }, { "amp", '&' }, { "quot", '"' }, { "apos", '\'' }
	};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (!strcmp(ref, named[i].name)) {
			out[0] = named[i].c;
			return 1;
		}
	if (ref[0] == '#') {
		bool hex = ref[1] == 'x';
		const char *digits = ref + (hex ? 2 : 1);
		char *end;
		errno = 0;
		unsigned long cp = strtoul(digits, &end, hex ? 16 : 10);
		if (*digits && !*end && !errno && cp > 0 && cp <= 0x10FFFF &&
		    !(cp >= 0xD800 && cp <= 0xDFFF) && (cp >= 0x20 || is_space((int)cp)))
			return (int)put_utf8(out, (uint32_t)cp);
	}
	return xr_fail(x, "unknown entity '&%s;'", ref);
}

static int read_value(struct xr *x, char *buf, const char *attr)
{
	int q = skip_space(x);
	if (q != '"' && q != '\'')
		return xr_fail(x, "attribute %s: value must be quoted", attr);
	size_t n = 0;
	for (;;) {
		int c = xr_getc(x);
		if (c == q)
			break;
		if (c == EOF)
			return xr_fail(x, "attribute %s: unterminated value", attr);
		if (c == '<')
			return xr_fail(x, "attribute %s: '<' is not allowed in a value", attr);
		char tmp[4];
		size_t len = 1;
		tmp[0] = (char)c;
		if (c == '&') {
			int r = read_entity(x, tmp);
			if (r < 0)
				return r;
			len = (size_t)r;
		}
		if (n + len >= XR_MAX_VALUE)
			return xr_fail(x, "attribute %s: value longer than %d bytes", attr,
			               XR_MAX_VALUE - 1);
		memcpy(buf + n, tmp, len);
		n += len;
	}
	buf[n] = '\0';
	return 0;
}

static int read_start_tag(struct xr *x, int c)
{
	int r = read_name(x, c, x->name, "an element name");
	if (r)
		return r;
	x->nr_attrs = 0;
	x->empty = false;
	for (;;) {
		c = xr_getc(x);
		bool spaced = is_space(c);
		if (spaced)
			c = skip_space(x);
		if (c == '>')
			return 0;
		if (c == '/') {
			c = xr_getc(x);
			if (c != '>')
				return xr_fail(x, "<%s>: expected '>' after '/'", x->name);
			x->empty = true;
			return 0;
		}
		if (c == EOF)
			return xr_fail(x, "unexpected end of file inside <%s>", x->name);
		if (!spaced)
			return xr_fail(x, "<%s>: expected a space before the next attribute",
			               x->name);
		if (x->nr_attrs == XR_MAX_ATTRS)
			return xr_fail(x, "<%s> has too many attributes", x->name);
		struct xr_attr *a = &x->attrs[x->nr_attrs];
		r = read_name(x, c, a->name, "an attribute name");
		if (r)
			return r;
		for (unsigned i = 0; i < x->nr_attrs; i++)
			if (!strcmp(x->attrs[i].name, a->name))
				return xr_fail(x, "<%s>: attribute %s appears twice", x->name,
				               a->name);
		if (skip_space(x) != '=')
			return xr_fail(x, "<%s>: expected '=' after attribute %s", x->name,
			               a->name);
		r = read_value(x, a->value, a->name);
		if (r)
			return r;
		a->used = false;
		x->nr_attrs++;
	}
}

/* Next start or end tag, or XR_EOF. <x/> yields XR_START then XR_END. */
static int xr_next(struct xr *x, enum xr_event *ev)
{
	if (x->pending_end) {
		x->pending_end = false;
		*ev = XR_END;
		return 0;
	}
	for (;;) {
		int c = skip_space(x);
		if (c == EOF) {
			if (ferror(x->in))
				return xr_fail(x, "read error: %s", strerror(errno));
			*ev = XR_EOF;
			return 0;
		}
		if (c != '<')
			return xr_fail(x,
			               "unexpected text starting with '%c' (only elements are "
			               "allowed)",
			               c);
		x->tag_line = x->line;
		c = xr_getc(x);
		if (c == '?') {
			int r = skip_until(x, "?>", "a processing instruction");
			if (r)
				return r;
			continue;
		}
		if (c == '!') {
			char buf[8] = { 0 };
			for (size_t i = 0; i < 2; i++) {
				int d = xr_getc(x);
				buf[i] = d == EOF ? '\0' : (char)d;
			}
			int r;
			if (!strcmp(buf, "--")) {
				r = skip_until(x, "-->", "a comment");
			} else if (!strcmp(buf, "DO")) {
				/* DOCTYPE: skipped; an internal subset could declare
				 * entities we do not expand, so refuse it */
				for (;;) {
					int d = xr_getc(x);
					if (d == '[')
						return xr_fail(x, "a DOCTYPE with an internal "
						                  "subset is not supported");
					if (d == EOF)
						return xr_fail(x, "unterminated DOCTYPE");
					if (d == '>')
						break;
				}
				r = 0;
			} else {
				return xr_fail(x, "CDATA sections and declarations other than "
				                  "comments and DOCTYPE are not allowed");
			}
			if (r)
				return r;
			continue;
		}
		if (c == '/') {
			int r = read_name(x, xr_getc(x), x->name, "an element name");
			if (r)
				return r;
			if (skip_space(x) != '>')
				return xr_fail(x, "</%s: expected '>'", x->name);
			*ev = XR_END;
			return 0;
		}
		int r = read_start_tag(x, c);
		if (r)
			return r;
		x->pending_end = x->empty;
		*ev = XR_START;
		return 0;
	}
}

/* ---- attributes ---- */

static struct xr_attr *find_attr(struct xr *x, const char *name)
{
	for (unsigned i = 0; i < x->nr_attrs; i++)
		if (!strcmp(x->attrs[i].name, name)) {
			x->attrs[i].used = true;
			return &x->attrs[i];
		}
	return NULL;
}

/* Report against the tag's own line, not wherever the reader stopped. */
static int tag_fail(struct xr *x, const char *fmt, ...)
{
	int n = snprintf(x->err, sizeof(x->err), "line %lu: ", x->tag_line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err + n, sizeof(x->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int get_u64(struct xr *x, const char *name, uint64_t max, bool required, uint64_t *out)
{
	struct xr_attr *a = find_attr(x, name);
	if (!a) {
		if (required)
			return tag_fail(x, "<%s> is missing the %s attribute", x->name, name);
		return 1;
	}
	const char *p = a->value;
	while (is_space(*p))
		p++;
	if (*p < '0' || *p > '9')
		return tag_fail(x, "<%s> %s=\"%s\" is not a non-negative decimal number", x->name,
		                name, a->value);
	uint64_t v = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return tag_fail(x, "<%s> %s=\"%s\" is too big", x->name, name, a->value);
		v = v * 10 + d;
	}
	while (is_space(*p))
		p++;
	if (*p)
		return tag_fail(x, "<%s> %s=\"%s\" is not a non-negative decimal number", x->name,
		                name, a->value);
	if (v > max)
		return tag_fail(x, "<%s> %s %" PRIu64 " is too big (at most %" PRIu64 ")", x->name,
		                name, v, max);
	*out = v;
	return 0;
}

/* ---- building the metadata ---- */

struct restore {
	struct xr x;
	struct tp_dev *meta;
	const struct xml_restore_opts *opts;
	struct tmd *md;
	uint64_t nr_data_blocks;
	uint32_t pool_time;
	/* device being read */
	uint64_t dev;
	unsigned long dev_line;
	uint64_t xml_mapped_blocks;
	struct thin_details details;
	uint64_t late_mappings; /* with a time later than the pool's */
};

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
		return tag_fail(&rs->x,
		                "%s: the metadata device is full (%" PRIu64 " blocks of 4 KiB): "
		                "restore to a bigger one",
		                what, tmd_nr_metadata_blocks(rs->md));
	const char *msg = tmd_error(rs->md);
	return tag_fail(&rs->x, "%s: %s", what, *msg ? msg : strerror(-r));
}

static int no_unknown_children(struct restore *rs)
{
	struct xr *x = &rs->x;
	if (!strcmp(x->name, "def") || !strcmp(x->name, "ref"))
		return tag_fail(x,
		                "<%s> (shared mapping definitions, written by thin_dump 1.x) "
		                "is not supported: dump the metadata with thin_dump 0.9.x or "
		                "thinp dump, which write every mapping out",
		                x->name);
	return 0;
}

static int begin_superblock(struct restore *rs)
{
	struct xr *x = &rs->x;
	const struct xml_restore_opts *o = rs->opts;
	struct xr_attr *uuid_attr = find_attr(x, "uuid");
	if (!uuid_attr)
		return tag_fail(x, "<superblock> is missing the uuid attribute");
	uint64_t time, trans, dbs, nr_data, flags = 0, version = 1, snap;
	int r = get_u64(x, "time", THIN_MAX_TIME, true, &time);
	if (!r)
		r = get_u64(x, "transaction", UINT64_MAX, true, &trans);
	if (!r)
		r = get_u64(x, "data_block_size", UINT32_MAX, true, &dbs);
	if (!r)
		r = get_u64(x, "nr_data_blocks", THIN_MAX_DATA_BLOCK, true, &nr_data);
	if (r >= 0)
		r = get_u64(x, "flags", UINT32_MAX, false, &flags);
	if (r >= 0)
		r = get_u64(x, "version", UINT32_MAX, false, &version);
	if (r >= 0)
		r = get_u64(x, "metadata_snap", UINT64_MAX, false, &snap);
	if (r < 0)
		return r;
	if (r == 0)
		/* thin_restore ignores it too: the snapshot's trees are not in the XML */
		warn(rs,
		     "line %lu: metadata_snap=\"%" PRIu64 "\" ignored: a metadata snapshot "
		     "cannot be restored",
		     x->tag_line, snap);
	if (version < 1 || version > THIN_VERSION)
		return tag_fail(x, "<superblock> version %" PRIu64 " is not supported (1..%u)",
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
		return tag_fail(x, "cannot create the metadata: %s", err);
	/* The format committed an empty, valid pool. Invalidate it until the
	 * final commit, so that a crash part-way leaves nothing that looks like
	 * metadata. The final commit rewrites block 0 from scratch. */
	uint8_t zero[TP_BLOCK_SIZE] = { 0 };
	r = tp_dev_pwrite(rs->meta, zero, sizeof(zero), 0);
	if (!r)
		r = tp_dev_flush(rs->meta);
	if (r)
		return tag_fail(x, "writing the metadata device failed: %s", strerror(-r));

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
	struct xr *x = &rs->x;
	uint64_t dev, mapped, trans, ctime, stime;
	int r = get_u64(x, "dev_id", THIN_MAX_DEV_ID, true, &dev);
	if (!r)
		r = get_u64(x, "mapped_blocks", UINT64_MAX, true, &mapped);
	if (!r)
		r = get_u64(x, "transaction", UINT64_MAX, true, &trans);
	if (!r)
		r = get_u64(x, "creation_time", UINT32_MAX, true, &ctime);
	if (!r)
		r = get_u64(x, "snap_time", UINT32_MAX, true, &stime);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(rs->md, dev, &exists);
	if (r)
		return md_fail(rs, r, "<device>");
	if (exists)
		return tag_fail(x, "device %" PRIu64 " appears twice", dev);
	r = tmd_create_thin(rs->md, dev);
	if (r)
		return md_fail(rs, r, "<device>");
	rs->dev = dev;
	rs->dev_line = x->tag_line;
	rs->xml_mapped_blocks = mapped;
	rs->details = (struct thin_details){ 0, trans, (uint32_t)ctime, (uint32_t)stime };
	rs->late_mappings = 0;
	/* accepted like thin_restore, but the kernel never writes this */
	if (ctime > rs->pool_time || stime > rs->pool_time)
		warn(rs,
		     "line %lu: device %" PRIu64 " has creation_time %" PRIu64 "/snap_time %" PRIu64
		     " later than the pool time %" PRIu32,
		     x->tag_line, dev, ctime, stime, rs->pool_time);
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
	if (rs->late_mappings)
		warn(rs,
		     "line %lu: device %" PRIu64 " has %" PRIu64 " mapping(s) with a time "
		     "later than the pool time %" PRIu32,
		     rs->dev_line, rs->dev, rs->late_mappings, rs->pool_time);
	r = tmd_set_details(rs->md, rs->dev, &rs->details);
	if (r)
		return md_fail(rs, r, "</device>");
	return 0;
}

static int map_range(struct restore *rs, uint64_t origin, uint64_t data, uint64_t len,
                     uint64_t time)
{
	for (uint64_t i = 0; i < len; i++) {
		/* each occurrence holds its own reference, as in thin_restore's
		 * private per-device trees; an overwritten mapping drops its old one */
		int r = tmd_data_inc(rs->md, data + i);
		if (!r)
			r = tmd_insert_timed(rs->md, rs->dev, origin + i, data + i, (uint32_t)time);
		if (r)
			return md_fail(rs, r, rs->x.name);
	}
	if (time > rs->pool_time)
		rs->late_mappings += len;
	return 0;
}

static int single_mapping(struct restore *rs)
{
	struct xr *x = &rs->x;
	uint64_t origin, data, time;
	int r = get_u64(x, "origin_block", UINT64_MAX, true, &origin);
	if (!r)
		r = get_u64(x, "data_block", UINT64_MAX, true, &data);
	if (!r)
		r = get_u64(x, "time", THIN_MAX_TIME, true, &time);
	if (r)
		return r;
	if (data >= rs->nr_data_blocks)
		return tag_fail(x,
		                "single_mapping data_block %" PRIu64
		                " is beyond nr_data_blocks %" PRIu64,
		                data, rs->nr_data_blocks);
	return map_range(rs, origin, data, 1, time);
}

static int range_mapping(struct restore *rs)
{
	struct xr *x = &rs->x;
	uint64_t origin, data, len, time;
	int r = get_u64(x, "origin_begin", UINT64_MAX, true, &origin);
	if (!r)
		r = get_u64(x, "data_begin", UINT64_MAX, true, &data);
	if (!r)
		r = get_u64(x, "length", UINT64_MAX, true, &len);
	if (!r)
		r = get_u64(x, "time", THIN_MAX_TIME, true, &time);
	if (r)
		return r;
	if (len > UINT64_MAX - origin)
		return tag_fail(x,
		                "range_mapping origin_begin %" PRIu64 " + length %" PRIu64
		                " overflows 64 bits",
		                origin, len);
	if (data >= rs->nr_data_blocks || len > rs->nr_data_blocks - data)
		return tag_fail(x,
		                "range_mapping data blocks %" PRIu64 "..%" PRIu64
		                " go beyond nr_data_blocks %" PRIu64,
		                data, len ? data + len - 1 : data, rs->nr_data_blocks);
	return map_range(rs, origin, data, len, time);
}

/* <single_mapping …/> or <single_mapping …></single_mapping>: nothing inside. */
static int expect_closed(struct restore *rs)
{
	struct xr *x = &rs->x;
	char name[XR_MAX_NAME];
	snprintf(name, sizeof(name), "%s", x->name);
	unsigned long line = x->tag_line;
	enum xr_event ev;
	int r = xr_next(x, &ev);
	if (r)
		return r;
	if (ev == XR_END && !strcmp(x->name, name))
		return 0;
	x->tag_line = line;
	if (ev == XR_EOF)
		return tag_fail(x, "unexpected end of file: <%s> is not closed", name);
	return tag_fail(x, "<%s> is not closed (write <%s .../>): %s%s> follows", name, name,
	                ev == XR_END ? "</" : "<", x->name);
}

static int warn_unknown_attrs(struct restore *rs)
{
	struct xr *x = &rs->x;
	for (unsigned i = 0; i < x->nr_attrs; i++)
		if (!x->attrs[i].used)
			warn(rs, "line %lu: <%s>: unknown attribute %s ignored", x->tag_line,
			     x->name, x->attrs[i].name);
	return 0;
}

enum state {
	S_TOP,
	S_SUPERBLOCK,
	S_DEVICE,
	S_DONE
};

static int parse(struct restore *rs)
{
	struct xr *x = &rs->x;
	enum state st = S_TOP;
	unsigned long sb_line = 0;
	for (;;) {
		enum xr_event ev;
		int r = xr_next(x, &ev);
		if (r)
			return r;
		if (ev == XR_EOF) {
			switch (st) {
			case S_TOP:
				return xr_fail(x,
				               "no <superblock> element: is this thin_dump XML?");
			case S_SUPERBLOCK:
				return xr_fail(x,
				               "unexpected end of file: <superblock> (line %lu) "
				               "is not closed",
				               sb_line);
			case S_DEVICE:
				return xr_fail(x,
				               "unexpected end of file: <device> (line %lu) is "
				               "not closed",
				               rs->dev_line);
			case S_DONE:
				return 0;
			}
		}
		if (ev == XR_END) {
			if (st == S_SUPERBLOCK && !strcmp(x->name, "superblock")) {
				st = S_DONE;
				continue;
			}
			if (st == S_DEVICE && !strcmp(x->name, "device")) {
				r = end_device(rs);
				if (r)
					return r;
				st = S_SUPERBLOCK;
				continue;
			}
			return tag_fail(x, "unexpected </%s>%s", x->name,
			                st == S_DEVICE     ? ": <device> is still open" :
			                st == S_SUPERBLOCK ? ": <superblock> is still open" :
			                                     "");
		}
		r = no_unknown_children(rs);
		if (r)
			return r;
		switch (st) {
		case S_TOP:
			if (strcmp(x->name, "superblock"))
				return tag_fail(x, "expected <superblock>, found <%s>", x->name);
			sb_line = x->tag_line;
			r = begin_superblock(rs);
			st = S_SUPERBLOCK;
			break;
		case S_SUPERBLOCK:
			if (strcmp(x->name, "device"))
				return tag_fail(x,
				                "<%s> is not allowed in <superblock> (only "
				                "<device>)",
				                x->name);
			r = begin_device(rs);
			st = S_DEVICE;
			break;
		case S_DEVICE:
			if (!strcmp(x->name, "single_mapping"))
				r = single_mapping(rs);
			else if (!strcmp(x->name, "range_mapping"))
				r = range_mapping(rs);
			else
				return tag_fail(x,
				                "<%s> is not allowed in <device> (only "
				                "<single_mapping> and <range_mapping>)",
				                x->name);
			if (!r)
				r = warn_unknown_attrs(rs);
			if (!r)
				r = expect_closed(rs);
			if (r)
				return r;
			continue;
		case S_DONE:
			return tag_fail(x, "<%s> after </superblock>", x->name);
		}
		if (r)
			return r;
		warn_unknown_attrs(rs);
	}
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
	rs->x.in = in;
	rs->x.line = 1;
	rs->meta = meta;
	rs->opts = opts;
	/* a UTF-8 byte order mark (some editors add one) */
	int r = 0, c = getc_unlocked(in);
	if (c == 0xEF) {
		if (getc_unlocked(in) != 0xBB || getc_unlocked(in) != 0xBF)
			r = xr_fail(&rs->x, "unexpected bytes at the start: not XML");
	} else if (c != EOF) {
		ungetc(c, in);
	}
	if (!r)
		r = parse(rs);
	if (r) {
		snprintf(err, errlen, "%s", rs->x.err);
	} else if (tmd_commit(rs->md)) {
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
