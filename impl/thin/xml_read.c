/* The strict XML reader under restore (see xml_read.h): libexpat does the
 * reading; this file feeds it, enforces the limits and turns its verdicts into
 * messages. */
#include "thin/xml_read.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (64u << 10)
/* All expat may hold at once: a token (tag, comment, ...) must fit in its
 * buffer whole. Far above any tag restore accepts (16 attributes of at most
 * 1023 bytes), far below what would hurt. */
#define MEMORY_CAP ((size_t)32 << 20)

struct xml_reader {
	XML_Parser p;
	const struct xml_reader_ops *ops;
	void *ctx;
	int err; /* first failure (negative errno); later events are ignored */
	char msg[512];
	unsigned long line;     /* of the event being handled */
	unsigned long eof_line; /* 1 + newlines read so far */
	XML_Index event_end;    /* stream offset just past the last event */
	bool external_dtd;      /* its entities are not read: refuse references */
	size_t mem_used;
	bool mem_capped;
	struct xml_attr attrs[XML_MAX_ATTRS];
};

/* ---- bounded memory ----
 * expat's allocator hooks take no context; one parse runs on one thread, so
 * the reader it charges is a thread-local. */

static _Thread_local struct xml_reader *charged;

#define HDR (alignof(max_align_t) > sizeof(size_t) ? alignof(max_align_t) : sizeof(size_t))

static void *mem_alloc(size_t n)
{
	struct xml_reader *r = charged;
	if (n > MEMORY_CAP || r->mem_used + n > MEMORY_CAP) {
		r->mem_capped = true;
		return NULL;
	}
	unsigned char *b = malloc(HDR + n);
	if (!b)
		return NULL;
	memcpy(b, &n, sizeof(n));
	r->mem_used += n;
	return b + HDR;
}

static void mem_free(void *p)
{
	if (!p)
		return;
	unsigned char *b = (unsigned char *)p - HDR;
	size_t n;
	memcpy(&n, b, sizeof(n));
	charged->mem_used -= n;
	free(b);
}

static void *mem_realloc(void *p, size_t n)
{
	if (!p)
		return mem_alloc(n);
	unsigned char *b = (unsigned char *)p - HDR;
	size_t old;
	memcpy(&old, b, sizeof(old));
	struct xml_reader *r = charged;
	if (n > MEMORY_CAP || r->mem_used - old + n > MEMORY_CAP) {
		r->mem_capped = true;
		return NULL;
	}
	unsigned char *nb = realloc(b, HDR + n);
	if (!nb)
		return NULL;
	memcpy(nb, &n, sizeof(n));
	r->mem_used = r->mem_used - old + n;
	return nb + HDR;
}

/* ---- messages ---- */

int xml_vfail(struct xml_reader *r, unsigned long line, const char *fmt, va_list ap)
{
	if (r->err)
		return r->err; /* the first failure is the one reported */
	int n = snprintf(r->msg, sizeof(r->msg), "line %lu: ", line);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	r->err = -EINVAL;
	return r->err;
}

int xml_fail(struct xml_reader *r, unsigned long line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = xml_vfail(r, line, fmt, ap);
	va_end(ap);
	return ret;
}

unsigned long xml_line(const struct xml_reader *r)
{
	return r->line;
}

/* ---- what the old reader allowed ---- */

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == ':';
}

/* expat takes names the format never uses (any Unicode letter); keep them out */
static int check_name(struct xml_reader *r, const char *name, const char *what)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (!is_name_char((unsigned char)name[i]))
			return xml_fail(r, r->line, "expected %s, found '%c'", what, name[i]);
	if (n >= XML_MAX_NAME)
		return xml_fail(r, r->line, "%s is too long", what);
	return 0;
}

/* The raw bytes of the current event (NULL if expat keeps no context). */
static const char *raw_event(struct xml_reader *r, int *len)
{
	int off, size;
	const char *buf = XML_GetInputContext(r->p, &off, &size);
	int count = XML_GetCurrentByteCount(r->p);
	if (!buf || count <= 0 || off + count > size)
		return NULL;
	*len = count;
	return buf + off;
}

/* An external DTD is never read, so expat passes references to its entities
 * in attribute values as empty text: find them in the raw tag. */
static int check_entities(struct xml_reader *r)
{
	int len;
	const char *tag = raw_event(r, &len);
	if (!tag)
		return 0;
	static const char *const known[] = { "lt", "gt", "amp", "quot", "apos" };
	for (int i = 0; i < len; i++) {
		if (tag[i] != '&' || (i + 1 < len && tag[i + 1] == '#'))
			continue;
		int n = 0;
		while (i + 1 + n < len && tag[i + 1 + n] != ';')
			n++;
		if (n >= 15)
			return xml_fail(r, r->line, "malformed entity reference '&%.15s'",
			                tag + i + 1);
		bool ok = false;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			ok |= (size_t)n == strlen(known[k]) &&
			      !memcmp(tag + i + 1, known[k], (size_t)n);
		if (!ok)
			return xml_fail(r, r->line, "unknown entity '&%.*s;'", n, tag + i + 1);
	}
	return 0;
}

/* ---- expat handlers ---- */

static void seen(struct xml_reader *r)
{
	XML_Index end = XML_GetCurrentByteIndex(r->p) + XML_GetCurrentByteCount(r->p);
	if (end > r->event_end)
		r->event_end = end;
	r->line = (unsigned long)XML_GetCurrentLineNumber(r->p);
}

static void stop_on(struct xml_reader *r, int ret)
{
	if (ret && !r->err)
		r->err = ret;
	if (r->err)
		XML_StopParser(r->p, XML_FALSE);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
	struct xml_reader *r = data;
	if (r->err)
		return;
	seen(r);
	int ret = check_name(r, name, "an element name");
	unsigned n = 0;
	for (; !ret && atts[2 * n]; n++) {
		if (n == XML_MAX_ATTRS) {
			ret = xml_fail(r, r->line, "<%s> has too many attributes", name);
			break;
		}
		const char *an = atts[2 * n], *av = atts[2 * n + 1];
		ret = check_name(r, an, "an attribute name");
		if (!ret && strlen(av) >= XML_MAX_VALUE)
			ret = xml_fail(r, r->line, "attribute %s: value longer than %d bytes", an,
			               XML_MAX_VALUE - 1);
		r->attrs[n] = (struct xml_attr){ an, av, false };
	}
	if (!ret && r->external_dtd)
		ret = check_entities(r);
	if (!ret)
		ret = r->ops->start(r, r->ctx, name, r->attrs, n);
	stop_on(r, ret);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	struct xml_reader *r = data;
	if (r->err)
		return;
	seen(r);
	stop_on(r, r->ops->end(r, r->ctx, name));
}

static int unexpected_text(struct xml_reader *r, unsigned long line, char c)
{
	return xml_fail(r, line, "unexpected text starting with '%c' (only elements are allowed)",
	                c);
}

/* Only whitespace may stand between tags, written out: the old reader saw
 * "&#32;" as text, and so does this one (the raw bytes are judged). */
static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct xml_reader *r = data;
	if (r->err)
		return;
	seen(r);
	int rlen;
	const char *raw = raw_event(r, &rlen);
	if (!raw) {
		raw = s;
		rlen = len;
	}
	unsigned long line = r->line;
	for (int i = 0; i < rlen; i++) {
		if (!is_space((unsigned char)raw[i])) {
			stop_on(r, unexpected_text(r, line, raw[i]));
			return;
		}
		line += raw[i] == '\n';
	}
}

static void XMLCALL on_skipped_entity(void *data, const XML_Char *name, int is_param)
{
	struct xml_reader *r = data;
	(void)name;
	(void)is_param;
	if (r->err)
		return;
	seen(r);
	stop_on(r, unexpected_text(r, r->line, '&'));
}

static void XMLCALL on_cdata(void *data)
{
	struct xml_reader *r = data;
	if (r->err)
		return;
	seen(r);
	stop_on(r, xml_fail(r, r->line,
	                    "CDATA sections and declarations other than comments and DOCTYPE "
	                    "are not allowed"));
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
	struct xml_reader *r = data;
	(void)name;
	if (r->err)
		return;
	seen(r);
	r->external_dtd |= sysid || pubid;
	if (has_internal_subset)
		stop_on(r,
		        xml_fail(r, r->line, "a DOCTYPE with an internal subset is not supported"));
}

/* comments, processing instructions, the declaration, whitespace outside
 * the root: only where they end matters */
static void XMLCALL on_other(void *data, const XML_Char *s, int len)
{
	(void)s;
	(void)len;
	struct xml_reader *r = data;
	if (!r->err)
		seen(r);
}

/* ---- expat's verdicts ---- */

/* The name at P (up to END), for the messages of tags out of place. */
static void name_at(const char *p, const char *end, char *out)
{
	size_t n = 0;
	while (p + n < end && n + 1 < XML_MAX_NAME && is_name_char((unsigned char)p[n]))
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* Turn a syntax error into the old reader's words where they are known:
 * a tag where none may stand is judged by the handlers, text and unquoted
 * values are named; the rest is expat's. Returns r->err. */
static int syntax_error(struct xml_reader *r)
{
	enum XML_Error code = XML_GetErrorCode(r->p);
	unsigned long line = (unsigned long)XML_GetCurrentLineNumber(r->p);
	if (code == XML_ERROR_NO_MEMORY) {
		if (r->mem_capped)
			return xml_fail(r, line,
			                "a tag, comment or other piece of the XML is too big "
			                "(the reader holds at most %zu MiB)",
			                MEMORY_CAP >> 20);
		r->err = -ENOMEM;
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		return r->err;
	}
	if (code == XML_ERROR_NO_ELEMENTS) { /* input ended between tokens */
		r->line = r->eof_line;
		r->err = r->ops->eof(r, r->ctx);
		if (r->err)
			return r->err;
		return xml_fail(r, r->eof_line, "%s", XML_ErrorString(code));
	}
	int off = 0, size = 0;
	const char *buf = XML_GetInputContext(r->p, &off, &size);
	XML_Index pos = XML_GetCurrentByteIndex(r->p);
	const char *at = buf ? buf + off : NULL, *end = buf ? buf + size : NULL;
	char name[XML_MAX_NAME];
	r->line = line;
	if (at && at < end) {
		bool token_start = pos == r->event_end;
		if (code == XML_ERROR_TAG_MISMATCH) {
			name_at(at, end, name);
			r->err = r->ops->end(r, r->ctx, name);
		} else if (code == XML_ERROR_UNCLOSED_TOKEN) {
			/* a tag cut short: the old reader named the end of the input */
			if (at + 1 < end && at[0] == '<' && at[1] != '!' && at[1] != '?')
				line = r->eof_line;
		} else if (code == XML_ERROR_JUNK_AFTER_DOC_ELEMENT && token_start &&
		           at[0] == '<' && at + 1 < end && is_name_char((unsigned char)at[1])) {
			name_at(at + 1, end, name); /* an element after the root */
			r->err = r->ops->start(r, r->ctx, name, NULL, 0);
		} else if (code == XML_ERROR_INVALID_TOKEN && pos == r->event_end + 1 && at > buf &&
		           at[-1] == '<' && at[0] == '/') {
			name_at(at + 1, end, name); /* an end tag outside the root */
			r->err = r->ops->end(r, r->ctx, name);
		} else if ((code == XML_ERROR_SYNTAX || code == XML_ERROR_INVALID_TOKEN ||
		            code == XML_ERROR_JUNK_AFTER_DOC_ELEMENT) &&
		           token_start && at[0] != '<' && !is_space((unsigned char)at[0])) {
			return unexpected_text(r, line, at[0]);
		} else if (code == XML_ERROR_INVALID_TOKEN && pos > r->event_end) {
			/* name="... expected: what follows the '=' */
			const char *q = at;
			while (q > buf && is_space((unsigned char)q[-1]))
				q--;
			if (q > buf && q[-1] == '=') {
				q--;
				while (q > buf && is_space((unsigned char)q[-1]))
					q--;
				const char *e = q;
				while (q > buf && is_name_char((unsigned char)q[-1]))
					q--;
				if (q < e && (size_t)(e - q) < XML_MAX_NAME)
					return xml_fail(r, line,
					                "attribute %.*s: value must be quoted",
					                (int)(e - q), q);
			}
		}
		if (r->err)
			return r->err;
	}
	return xml_fail(r, line, "%s", XML_ErrorString(code));
}

/* expat follows a byte order mark or a "<\0" start to UTF-16 even when told
 * the input is UTF-8; the old reader saw bytes that cannot start XML. */
static int check_start(struct xml_reader *r, const unsigned char *b, size_t n)
{
	if (n < 2)
		return 0;
	if ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE) ||
	    (b[0] == 0 && b[1] == '<'))
		return unexpected_text(r, 1, (char)b[0]);
	if (b[0] == '<' && b[1] == 0)
		return xml_fail(r, 1, "expected an element name, found '%c'", 0);
	return 0;
}

static int feed(struct xml_reader *r, FILE *in)
{
	bool first = true;
	for (;;) {
		char *buf = XML_GetBuffer(r->p, CHUNK);
		if (!buf)
			return syntax_error(r);
		size_t n = fread(buf, 1, CHUNK, in);
		if (ferror(in))
			return xml_fail(r, r->eof_line, "read error: %s", strerror(errno));
		if (first && check_start(r, (const unsigned char *)buf, n))
			return r->err;
		first = false;
		for (const char *p = buf; (p = memchr(p, '\n', n - (size_t)(p - buf))); p++)
			r->eof_line++;
		bool final = n < CHUNK;
		if (XML_ParseBuffer(r->p, (int)n, final) != XML_STATUS_OK)
			return r->err ? r->err : syntax_error(r);
		if (r->err)
			return r->err;
		if (final) {
			r->line = r->eof_line;
			return r->ops->eof(r, r->ctx);
		}
	}
}

int xml_read(FILE *in, const struct xml_reader_ops *ops, void *ctx, char *err, size_t errlen)
{
	struct xml_reader *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->ops = ops;
	r->ctx = ctx;
	r->line = r->eof_line = 1;
	charged = r;
	static const XML_Memory_Handling_Suite mem = { mem_alloc, mem_realloc, mem_free };
	r->p = XML_ParserCreate_MM("UTF-8", &mem, NULL);
	int ret;
	if (!r->p) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		ret = -ENOMEM;
	} else {
		XML_SetUserData(r->p, r);
		XML_SetElementHandler(r->p, on_start, on_end);
		XML_SetCharacterDataHandler(r->p, on_text);
		XML_SetSkippedEntityHandler(r->p, on_skipped_entity);
		XML_SetStartCdataSectionHandler(r->p, on_cdata);
		XML_SetStartDoctypeDeclHandler(r->p, on_doctype);
		XML_SetDefaultHandlerExpand(r->p, on_other);
		ret = feed(r, in);
		XML_ParserFree(r->p);
	}
	charged = NULL;
	if (ret)
		snprintf(err, errlen, "%s", r->msg);
	free(r);
	return ret;
}
