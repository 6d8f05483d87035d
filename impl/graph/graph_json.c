/* The metadata files' JSON (docs/docker-driver.md §1): flat objects written byte for byte
 * as Go's json.Marshal writes Docker's structs, and read the way encoding/json fills them
 * (keys in any order and case, unknown keys skipped, null leaves a field alone). */
#include "graph/graph_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph_units.h"

void tg_json_put(struct tg_json_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(o->buf + o->n, sizeof(o->buf) - o->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof(o->buf) - o->n)
		o->overflow = true;
	else
		o->n += (size_t)k;
}

/* A JSON string as Go's json.Marshal writes it: \" \\ \b \f \n \r \t, other control bytes
 * and the HTML-sensitive < > & as \u00XX, malformed UTF-8 as \ufffd, U+2028/2029 escaped. */
void tg_json_put_string(struct tg_json_out *o, const char *s)
{
	size_t n = strlen(s);
	tg_json_put(o, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			size_t ul = tg_utf8_len(s + i, n - i);
			if (!ul) {
				tg_json_put(o, "\\ufffd");
				i++;
			} else if (ul == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
			           ((unsigned char)s[i + 2] & 0xfe) == 0xa8) {
				tg_json_put(o, "\\u202%c",
				            (unsigned char)s[i + 2] == 0xa8 ? '8' : '9');
				i += 3;
			} else {
				tg_json_put(o, "%.*s", (int)ul, s + i);
				i += ul;
			}
			continue;
		}
		switch (c) {
		case '"':
			tg_json_put(o, "\\\"");
			break;
		case '\\':
			tg_json_put(o, "\\\\");
			break;
		case '\b':
			tg_json_put(o, "\\b");
			break;
		case '\f':
			tg_json_put(o, "\\f");
			break;
		case '\n':
			tg_json_put(o, "\\n");
			break;
		case '\r':
			tg_json_put(o, "\\r");
			break;
		case '\t':
			tg_json_put(o, "\\t");
			break;
		default:
			if (c < 0x20 || c == '<' || c == '>' || c == '&')
				tg_json_put(o, "\\u%04x", c);
			else
				tg_json_put(o, "%c", c);
		}
		i++;
	}
	tg_json_put(o, "\"");
}

struct jp {
	const char *s;
	size_t n, i;
	char msg[256];
};

static int jfail(struct jp *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char what[200];
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(p->msg, sizeof(p->msg), "%s at byte %zu", what, p->i);
	return -EINVAL;
}

static void jws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
	                       p->s[p->i] == '\r'))
		p->i++;
}

static int jhex4(struct jp *p, unsigned *out)
{
	if (p->n - p->i < 4)
		return jfail(p, "unexpected end of input in \\u escape");
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p->s[p->i++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return jfail(p, "invalid character in \\u escape");
	}
	*out = v;
	return 0;
}

/* Append one code point as UTF-8 to OUT (CAP bytes, NUL kept); *TRUNC once it no longer fits. */
static void emit(char *out, size_t cap, size_t *n, bool *trunc, const char *bytes, size_t k)
{
	if (!out)
		return;
	if (*n + k >= cap) {
		*trunc = true;
		return;
	}
	memcpy(out + *n, bytes, k);
	*n += k;
	out[*n] = '\0';
}

static void emit_cp(char *out, size_t cap, size_t *n, bool *trunc, unsigned cp)
{
	char b[4];
	size_t k;
	if (cp < 0x80) {
		b[0] = (char)cp, k = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
	} else {
		b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
	}
	emit(out, cap, n, trunc, b, k);
}

/* A string at p->i (its opening quote). OUT may be NULL (skip). Escapes as JSON has them;
 * a lone surrogate and malformed UTF-8 become U+FFFD, as Go decodes them. *NUL if the
 * value holds a U+0000, which a C string cannot keep. */
static int jstring(struct jp *p, char *out, size_t cap, bool *trunc, bool *nul)
{
	size_t n = 0;
	*trunc = *nul = false;
	if (out)
		out[0] = '\0';
	if (p->i >= p->n || p->s[p->i] != '"')
		return jfail(p, "expected a string");
	p->i++;
	for (;;) {
		if (p->i >= p->n)
			return jfail(p, "unexpected end of input in a string");
		unsigned char c = (unsigned char)p->s[p->i];
		if (c == '"') {
			p->i++;
			return 0;
		}
		if (c < 0x20)
			return jfail(p, "invalid control character 0x%02x in a string", c);
		if (c != '\\') {
			size_t k = c < 0x80 ? 1 : tg_utf8_len(p->s + p->i, p->n - p->i);
			if (!k) {
				emit_cp(out, cap, &n, trunc, 0xfffd);
				p->i++;
			} else {
				emit(out, cap, &n, trunc, p->s + p->i, k);
				p->i += k;
			}
			continue;
		}
		p->i++;
		if (p->i >= p->n)
			return jfail(p, "unexpected end of input in a string");
		char e = p->s[p->i++];
		unsigned cp;
		switch (e) {
		case '"':
			cp = '"';
			break;
		case '\\':
			cp = '\\';
			break;
		case '/':
			cp = '/';
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u': {
			int r = jhex4(p, &cp);
			if (r)
				return r;
			if (cp >= 0xd800 && cp < 0xdc00 && p->n - p->i >= 6 && p->s[p->i] == '\\' &&
			    p->s[p->i + 1] == 'u') {
				size_t save = p->i;
				unsigned lo;
				p->i += 2;
				if ((r = jhex4(p, &lo)))
					return r;
				if (lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					p->i = save; /* the second escape stands on its own */
			}
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd;
			break;
		}
		default:
			p->i--;
			return jfail(p, "invalid escape '\\%c' in a string", e);
		}
		if (cp == 0)
			*nul = true;
		emit_cp(out, cap, &n, trunc, cp);
	}
}

/* A number literal (JSON grammar) at p->i: *START and *LEN. */
static int jnumber(struct jp *p, const char **start, size_t *len)
{
	size_t b = p->i;
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
		return jfail(p, "invalid number");
	if (p->s[p->i] == '0')
		p->i++;
	else
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
			return jfail(p, "invalid number");
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
			return jfail(p, "invalid number");
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	*start = p->s + b;
	*len = p->i - b;
	return 0;
}

static bool jword(struct jp *p, const char *w)
{
	size_t k = strlen(w);
	if (p->n - p->i >= k && !memcmp(p->s + p->i, w, k)) {
		p->i += k;
		return true;
	}
	return false;
}

static int jobject(struct jp *p, const struct tg_json_field *f, size_t nf, unsigned depth);

/* Any value, discarded (an unknown key's). */
static int jskip(struct jp *p, unsigned depth)
{
	if (depth > 64)
		return jfail(p, "values nested too deeply");
	jws(p);
	if (p->i >= p->n)
		return jfail(p, "unexpected end of input");
	char c = p->s[p->i];
	bool t, z;
	const char *st;
	size_t sl;
	if (c == '"')
		return jstring(p, NULL, 0, &t, &z);
	if (c == '{')
		return jobject(p, NULL, 0, depth + 1);
	if (c == '[') {
		p->i++;
		jws(p);
		if (p->i < p->n && p->s[p->i] == ']') {
			p->i++;
			return 0;
		}
		for (;;) {
			int r = jskip(p, depth + 1);
			if (r)
				return r;
			jws(p);
			if (p->i < p->n && p->s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->i < p->n && p->s[p->i] == ']') {
				p->i++;
				return 0;
			}
			return jfail(p, "expected ',' or ']' in an array");
		}
	}
	if (jword(p, "true") || jword(p, "false") || jword(p, "null"))
		return 0;
	if (c == '-' || (c >= '0' && c <= '9'))
		return jnumber(p, &st, &sl);
	return jfail(p, "invalid character '%c' looking for a value", c);
}

static bool key_eq(const char *a, const char *b)
{
	/* Go matches an incoming key to a field's name case-insensitively when no exact match
	 * exists; the fields here differ in more than case, so one fold-compare does both. */
	for (; *a && *b; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
		if (x != y)
			return false;
	}
	return *a == *b;
}

static int jfield(struct jp *p, const struct tg_json_field *f)
{
	jws(p);
	if (jword(p, "null"))
		return 0; /* Go leaves a non-pointer field as it was */
	if (p->i >= p->n)
		return jfail(p, "unexpected end of input");
	char c = p->s[p->i];
	size_t at = p->i;
	if (f->type == TG_JSON_BOOL) {
		if (jword(p, "true"))
			*(bool *)f->ptr = true;
		else if (jword(p, "false"))
			*(bool *)f->ptr = false;
		else
			return jskip(p, 0) ?
			               -EINVAL :
			               (p->i = at, jfail(p, "\"%s\" is not true or false", f->key));
		return 0;
	}
	if (f->type == TG_JSON_STR) {
		if (c != '"')
			return jskip(p, 0) ?
			               -EINVAL :
			               (p->i = at, jfail(p, "\"%s\" is not a string", f->key));
		bool trunc, nul;
		int r = jstring(p, f->ptr, f->cap, &trunc, &nul);
		if (r)
			return r;
		if (trunc) {
			p->i = at;
			return jfail(p, "\"%s\" is longer than %zu bytes", f->key, f->cap - 1);
		}
		if (nul) {
			p->i = at;
			return jfail(p, "\"%s\" holds a NUL character", f->key);
		}
		return 0;
	}
	const char *st;
	size_t sl;
	if (c != '-' && (c < '0' || c > '9'))
		return jskip(p, 0) ? -EINVAL :
		                     (p->i = at, jfail(p, "\"%s\" is not a number", f->key));
	int r = jnumber(p, &st, &sl);
	if (r)
		return r;
	uint64_t v = 0;
	for (size_t k = 0; k < sl; k++) {
		if (st[k] < '0' || st[k] > '9' || v > (UINT64_MAX - (uint64_t)(st[k] - '0')) / 10) {
			p->i = at;
			return jfail(p, "\"%s\" is %.*s, not an unsigned 64-bit integer", f->key,
			             (int)(sl > 40 ? 40 : sl), st);
		}
		v = v * 10 + (uint64_t)(st[k] - '0');
	}
	*(uint64_t *)f->ptr = v;
	return 0;
}

/* An object at p->i; F (NF entries) are the fields to fill, the rest is skipped. */
static int jobject(struct jp *p, const struct tg_json_field *f, size_t nf, unsigned depth)
{
	jws(p);
	if (p->i >= p->n)
		return jfail(p, "unexpected end of input");
	if (p->s[p->i] != '{')
		return jfail(p, "expected '{'");
	p->i++;
	jws(p);
	if (p->i < p->n && p->s[p->i] == '}') {
		p->i++;
		return 0;
	}
	for (;;) {
		jws(p);
		char key[64];
		bool trunc, nul;
		int r = jstring(p, key, sizeof(key), &trunc, &nul);
		if (r)
			return r;
		jws(p);
		if (p->i >= p->n || p->s[p->i] != ':')
			return jfail(p, "expected ':' after a key");
		p->i++;
		const struct tg_json_field *hit = NULL;
		for (size_t k = 0; k < nf && !trunc && !nul; k++)
			if (key_eq(key, f[k].key))
				hit = &f[k];
		r = hit ? jfield(p, hit) : jskip(p, depth);
		if (r)
			return r;
		jws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == '}') {
			p->i++;
			return 0;
		}
		return jfail(p, "expected ',' or '}' after a value");
	}
}

/* One whole file: an object and nothing but white space after it. */
int tg_json_parse_flat(const char *buf, size_t n, const struct tg_json_field *f, size_t nf,
                       char *msg, size_t msglen)
{
	struct jp p = { .s = buf, .n = n, .i = 0 };
	int r = jobject(&p, f, nf, 0);
	if (!r) {
		jws(&p);
		if (p.i != p.n)
			r = jfail(&p, "data after the object");
	}
	if (r)
		snprintf(msg, msglen, "%s", p.msg);
	return r;
}
