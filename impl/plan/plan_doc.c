/* The spec tree's storage (plan_doc.h) and the choice of syntax. */
#include "plan/plan_doc.h"

#include <stdlib.h>
#include <string.h>

struct pdoc *pdoc_new(enum pdoc_kind kind, int line, int col)
{
	struct pdoc *d = calloc(1, sizeof(*d));
	if (d) {
		d->kind = kind;
		d->line = line;
		d->col = col;
	}
	return d;
}

int pdoc_append(struct pdoc *parent, struct pdoc *child)
{
	struct pdoc **at = &parent->child;
	for (; *at; at = &(*at)->next)
		if (parent->kind == PDOC_MAP && !strcmp((*at)->key, child->key))
			return -1;
	*at = child;
	return 0;
}

void pdoc_free(struct pdoc *d)
{
	while (d) {
		struct pdoc *next = d->next;
		pdoc_free(d->child);
		free(d->text);
		free(d->key);
		free(d);
		d = next;
	}
}

int pdoc_parse(const char *text, struct pdoc **out, char *err, size_t errlen)
{
	const char *p = text;
	/* comments may come first in YAML only, so a leading '#' means YAML */
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '{')
		return pdoc_parse_json(text, out, err, errlen);
	return pdoc_parse_yaml(text, out, err, errlen);
}
