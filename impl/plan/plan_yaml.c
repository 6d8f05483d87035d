/* The block-style YAML subset of capacity-planning specs (docs/capacity-planning.md, "Spec
 * syntax"): mappings nested by indentation, lists of "- " items, plain and quoted scalars,
 * comments. Everything else YAML has (flow collections, anchors, tags, block scalars, several
 * documents) is refused by name rather than misread. */
#include "plan/plan_doc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct yline {
	int no;     /* 1-based line number */
	int indent; /* column of the content, 0-based */
	char *s;    /* the content: comment and trailing blanks cut */
};

struct yparser {
	struct yline *lines;
	int nr, at;
	char *err;
	size_t errlen;
	int failed;
};

static int fail(struct yparser *y, int line, int col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(struct yparser *y, int line, int col, const char *fmt, ...)
{
	if (y->failed)
		return -1;
	y->failed = 1;
	int n = snprintf(y->err, y->errlen, "line %d, column %d: ", line, col);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < y->errlen)
		vsnprintf(y->err + n, y->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Where the comment starts in S (a '#' at the start or after a blank, outside quotes), or the
 * end; an unterminated quote is left for the scalar parser to report. */
static char *comment_start(char *s)
{
	char q = 0;
	for (char *p = s; *p; p++) {
		if (q) {
			if (q == '"' && *p == '\\' && p[1])
				p++;
			else if (*p == q)
				q = 0;
		} else if (*p == '"' || *p == '\'') {
			if (p == s || p[-1] == ' ' || p[-1] == ':' || p[-1] == '-')
				q = *p;
		} else if (*p == '#' && (p == s || p[-1] == ' ')) {
			return p;
		}
	}
	return s + strlen(s);
}

static int split_lines(struct yparser *y, char *buf)
{
	int no = 0;
	for (char *p = buf; p && *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		no++;
		size_t len = strlen(p);
		if (len && p[len - 1] == '\r')
			p[--len] = 0;
		int ind = 0;
		while (p[ind] == ' ')
			ind++;
		if (p[ind] == '\t')
			return fail(y, no, ind + 1, "a tab in the indentation; indent with spaces");
		char *c = comment_start(p + ind);
		*c = 0;
		while (c > p + ind && c[-1] == ' ')
			*--c = 0;
		if (p[ind]) {
			if (!strcmp(p + ind, "---") && ind == 0 && y->nr == 0) {
				/* a document start marker before any content is harmless */
			} else {
				if (!strcmp(p + ind, "---") || !strcmp(p + ind, "..."))
					return fail(
					        y, no, ind + 1,
					        "several documents in one file are not supported");
				struct yline *l = &y->lines[y->nr++];
				l->no = no;
				l->indent = ind;
				l->s = p + ind;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* A scalar at S (line L, column C): quoted ("..." with \" \\ \n \t escapes, or '...' with '' for
 * a quote), or plain up to the end. */
static struct pdoc *scalar(struct yparser *y, const char *s, int l, int c)
{
	struct pdoc *d = pdoc_new(PDOC_SCALAR, l, c);
	size_t n = strlen(s);
	char *t = malloc(n + 1);
	if (!d || !t) {
		free(t);
		pdoc_free(d);
		fail(y, l, c, "out of memory");
		return NULL;
	}
	d->text = t;
	if (*s == '[' || *s == '{') {
		fail(y, l, c, "flow collections ('%c') are not supported; use block style", *s);
	} else if (*s == '&' || *s == '*' || *s == '!') {
		fail(y, l, c, "anchors, aliases and tags ('%c') are not supported", *s);
	} else if (*s == '|' || *s == '>') {
		fail(y, l, c, "block scalars ('%c') are not supported; quote the string", *s);
	} else if (*s == '"' || *s == '\'') {
		char q = *s;
		const char *p = s + 1;
		d->quoted = true;
		for (;; p++) {
			if (!*p) {
				fail(y, l, c, "unterminated %s-quoted string",
				     q == '"' ? "double" : "single");
				break;
			}
			if (*p == q && q == '\'' && p[1] == '\'') {
				*t++ = '\'';
				p++;
			} else if (*p == q) {
				if (p[1])
					fail(y, l, c + (int)(p + 1 - s),
					     "text after the closing quote: '%s'", p + 1);
				break;
			} else if (q == '"' && *p == '\\') {
				p++;
				switch (*p) {
				case 'n':
					*t++ = '\n';
					break;
				case 't':
					*t++ = '\t';
					break;
				case '"':
					*t++ = '"';
					break;
				case '\\':
					*t++ = '\\';
					break;
				default:
					fail(y, l, c + (int)(p - s), "unknown escape '\\%c'",
					     *p ? *p : ' ');
					goto out;
				}
			} else {
				*t++ = *p;
			}
		}
out:
		*t = 0;
	} else {
		strcpy(t, s);
	}
	if (y->failed) {
		pdoc_free(d);
		return NULL;
	}
	return d;
}

/* A block at INDENT; ALIGNED: a list sitting at its parent key's indentation, which a key
 * line at that indentation ends. */
static struct pdoc *block(struct yparser *y, int indent, bool aligned);

/* The value after "key:" or "- " on line L: inline text, or a nested block on the next lines
 * (deeper than PARENT_INDENT; a list may also sit at PARENT_INDENT under a map key). */
static struct pdoc *value(struct yparser *y, const char *rest, struct yline *l, int col,
                          int parent_indent, bool list_may_align)
{
	if (*rest)
		return scalar(y, rest, l->no, col);
	if (y->at < y->nr) {
		struct yline *n = &y->lines[y->at];
		if (n->indent > parent_indent)
			return block(y, n->indent, false);
		if (list_may_align && n->indent == parent_indent && n->s[0] == '-' &&
		    (n->s[1] == ' ' || !n->s[1]))
			return block(y, n->indent, true);
	}
	fail(y, l->no, col, "no value (an empty value or null is not allowed)");
	return NULL;
}

static char *key_end(char *s);

static struct pdoc *list(struct yparser *y, int indent, bool aligned)
{
	struct yline *first = &y->lines[y->at];
	struct pdoc *d = pdoc_new(PDOC_LIST, first->no, indent + 1);
	if (!d)
		return NULL;
	while (y->at < y->nr && !y->failed) {
		struct yline *l = &y->lines[y->at];
		if (l->indent < indent)
			break;
		if (l->indent > indent) {
			fail(y, l->no, l->indent + 1, "unexpected indentation");
			break;
		}
		if (l->s[0] != '-' || (l->s[1] != ' ' && l->s[1])) {
			if (aligned && key_end(l->s))
				break; /* a key of the enclosing map, aligned with this list */
			fail(y, l->no, l->indent + 1, "expected a list item ('- ')");
			break;
		}
		int off = 1;
		while (l->s[off] == ' ')
			off++;
		struct pdoc *item;
		if (!l->s[off]) {
			y->at++;
			item = value(y, "", l, l->indent + 1, indent, false);
		} else {
			/* "- key: v" starts a map whose keys align with "key": re-read the
			 * line as if it began there */
			l->s += off;
			l->indent += off;
			item = block(y, l->indent, false);
		}
		if (!item)
			break;
		pdoc_append(d, item);
	}
	if (y->failed) {
		pdoc_free(d);
		return NULL;
	}
	return d;
}

/* The end of a key in S: its ':' (followed by a blank or the end), or NULL. */
static char *key_end(char *s)
{
	if (*s == '"' || *s == '\'')
		return NULL;
	for (char *p = s; *p; p++)
		if (*p == ':' && (p[1] == ' ' || !p[1]))
			return p;
	return NULL;
}

static struct pdoc *map(struct yparser *y, int indent)
{
	struct yline *first = &y->lines[y->at];
	struct pdoc *d = pdoc_new(PDOC_MAP, first->no, indent + 1);
	if (!d)
		return NULL;
	while (y->at < y->nr && !y->failed) {
		struct yline *l = &y->lines[y->at];
		if (l->indent < indent)
			break;
		if (l->indent > indent) {
			fail(y, l->no, l->indent + 1, "unexpected indentation");
			break;
		}
		if (l->s[0] == '-' && (l->s[1] == ' ' || !l->s[1])) {
			fail(y, l->no, l->indent + 1, "a list item where a key was expected");
			break;
		}
		char *e = key_end(l->s);
		if (!e) {
			fail(y, l->no, l->indent + 1, "expected 'key: value', found '%s'", l->s);
			break;
		}
		*e = 0;
		char *k = l->s;
		for (char *p = k; *p; p++)
			if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= 'a' && *p <= 'z') ||
			      (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
				fail(y, l->no, l->indent + 1 + (int)(p - k),
				     "'%c' in the key '%s' (keys are letters, digits, _ - .)", *p,
				     k);
				goto out;
			}
		char *rest = e + 1;
		while (*rest == ' ')
			rest++;
		y->at++;
		struct pdoc *v =
		        value(y, rest, l, l->indent + 1 + (int)(rest - l->s), indent, true);
		if (!v)
			break;
		v->key = strdup(k);
		v->key_line = l->no;
		v->key_col = l->indent + 1;
		if (!v->key) {
			pdoc_free(v);
			fail(y, l->no, l->indent + 1, "out of memory");
			break;
		}
		if (pdoc_append(d, v)) {
			fail(y, l->no, l->indent + 1, "duplicate key '%s'", k);
			pdoc_free(v);
			break;
		}
	}
out:
	if (y->failed) {
		pdoc_free(d);
		return NULL;
	}
	return d;
}

static struct pdoc *block(struct yparser *y, int indent, bool aligned)
{
	struct yline *l = &y->lines[y->at];
	if (l->s[0] == '-' && (l->s[1] == ' ' || !l->s[1]))
		return list(y, indent, aligned);
	if (!key_end(l->s)) {
		/* a lone scalar where a block was expected */
		y->at++;
		return scalar(y, l->s, l->no, l->indent + 1);
	}
	return map(y, indent);
}

int pdoc_parse_yaml(const char *text, struct pdoc **out, char *err, size_t errlen)
{
	*out = NULL;
	char *buf = strdup(text);
	size_t nl = 1;
	for (const char *p = text; *p; p++)
		nl += *p == '\n';
	struct yparser y = { .lines = calloc(nl, sizeof(struct yline)),
		             .err = err,
		             .errlen = errlen };
	if (!buf || !y.lines) {
		free(buf);
		free(y.lines);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct pdoc *root = NULL;
	if (!split_lines(&y, buf)) {
		if (!y.nr) {
			fail(&y, 1, 1, "the spec is empty");
		} else if (y.lines[0].indent) {
			fail(&y, y.lines[0].no, y.lines[0].indent + 1, "the first key is indented");
		} else {
			root = block(&y, 0, false);
			if (root && root->kind != PDOC_MAP)
				fail(&y, root->line, root->col,
				     "the spec must be a mapping of sections (workload:, pool:, ...)");
			else if (root && y.at < y.nr)
				fail(&y, y.lines[y.at].no, y.lines[y.at].indent + 1,
				     "unexpected text '%s'", y.lines[y.at].s);
		}
	}
	free(y.lines);
	free(buf);
	if (y.failed) {
		pdoc_free(root);
		return -1;
	}
	*out = root;
	return 0;
}
