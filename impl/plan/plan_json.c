/* JSON specs (RFC 8259) read into the same tree as YAML ones (plan_doc.h). Numbers, true and
 * false become unquoted scalars, strings quoted ones; null is refused, as YAML's empty value
 * is, since every key of a spec needs a value. */
#include "plan/plan_doc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jparser {
	const char *s, *p;
	int line;
	const char *line_start;
	char *err;
	size_t errlen;
	int failed;
	int depth;
};

static int col(const struct jparser *j)
{
	return (int)(j->p - j->line_start) + 1;
}

static void *fail(struct jparser *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *fail(struct jparser *j, const char *fmt, ...)
{
	if (!j->failed) {
		j->failed = 1;
		int n = snprintf(j->err, j->errlen, "line %d, column %d: ", j->line, col(j));
		va_list ap;
		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < j->errlen)
			vsnprintf(j->err + n, j->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

static void blank(struct jparser *j)
{
	for (; *j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'; j->p++)
		if (*j->p == '\n') {
			j->line++;
			j->line_start = j->p + 1;
		}
}

/* A string at j->p (on its opening quote) into a new buffer. */
static char *string(struct jparser *j)
{
	const char *start = ++j->p;
	char *t = malloc(strlen(start) + 1), *o = t;
	if (!t)
		return fail(j, "out of memory");
	for (;; j->p++) {
		unsigned char c = (unsigned char)*j->p;
		if (!c || c == '\n') {
			free(t);
			return fail(j, "unterminated string");
		}
		if (c < 0x20) {
			free(t);
			return fail(j, "a control character in a string");
		}
		if (c == '"')
			break;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		j->p++;
		switch (*j->p) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '/':
			*o++ = '/';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		default:
			/* \uXXXX: no spec key or value needs one */
			free(t);
			return fail(j, "unsupported escape '\\%c'", *j->p ? *j->p : ' ');
		}
	}
	j->p++;
	*o = 0;
	return t;
}

static struct pdoc *value(struct jparser *j);

static struct pdoc *container(struct jparser *j, bool is_map)
{
	struct pdoc *d = pdoc_new(is_map ? PDOC_MAP : PDOC_LIST, j->line, col(j));
	if (!d)
		return fail(j, "out of memory");
	if (++j->depth > 64) {
		pdoc_free(d);
		return fail(j, "nested more than 64 deep");
	}
	char close = is_map ? '}' : ']';
	j->p++;
	blank(j);
	if (*j->p == close) {
		j->p++;
		j->depth--;
		return d;
	}
	for (;;) {
		blank(j);
		char *key = NULL;
		int kl = j->line, kc = col(j);
		if (is_map) {
			if (*j->p != '"')
				goto bad_key;
			key = string(j);
			if (!key)
				goto err;
			blank(j);
			if (*j->p != ':') {
				fail(j, "expected ':' after the key \"%s\"", key);
				free(key);
				goto err;
			}
			j->p++;
			blank(j);
		}
		struct pdoc *v = value(j);
		if (!v) {
			free(key);
			goto err;
		}
		v->key = key;
		v->key_line = kl;
		v->key_col = kc;
		if (pdoc_append(d, v)) {
			j->line = kl;
			j->p = j->line_start + kc - 1;
			fail(j, "duplicate key '%s'", key);
			pdoc_free(v);
			goto err;
		}
		blank(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p == close) {
			j->p++;
			break;
		}
		fail(j, "expected ',' or '%c'", close);
		goto err;
	}
	j->depth--;
	return d;
bad_key:
	fail(j, "expected a quoted key");
err:
	pdoc_free(d);
	return NULL;
}

static struct pdoc *value(struct jparser *j)
{
	blank(j);
	int l = j->line, c = col(j);
	if (*j->p == '{')
		return container(j, true);
	if (*j->p == '[')
		return container(j, false);
	struct pdoc *d = pdoc_new(PDOC_SCALAR, l, c);
	if (!d)
		return fail(j, "out of memory");
	if (*j->p == '"') {
		d->quoted = true;
		d->text = string(j);
	} else {
		const char *s = j->p;
		while (*j->p && strchr("+-.0123456789eEtruefalsn", *j->p))
			j->p++;
		size_t n = (size_t)(j->p - s);
		d->text = strndup(s, n);
		if (d->text && !strcmp(d->text, "null")) {
			j->p = s;
			fail(j, "null is not a value a spec takes");
		} else if (d->text && (!n || (strcmp(d->text, "true") && strcmp(d->text, "false") &&
		                              !strchr("-0123456789", *s)))) {
			j->p = s;
			fail(j, "expected a value");
		}
	}
	if (!d->text || j->failed) {
		pdoc_free(d);
		return fail(j, "out of memory");
	}
	return d;
}

int pdoc_parse_json(const char *text, struct pdoc **out, char *err, size_t errlen)
{
	struct jparser j = {
		.s = text, .p = text, .line = 1, .line_start = text, .err = err, .errlen = errlen
	};
	*out = NULL;
	blank(&j);
	if (*j.p != '{') {
		fail(&j, "a JSON spec is one object");
		return -1;
	}
	struct pdoc *root = value(&j);
	if (root) {
		blank(&j);
		if (*j.p) {
			fail(&j, "text after the object");
			pdoc_free(root);
			return -1;
		}
	}
	if (!root)
		return -1;
	*out = root;
	return 0;
}
