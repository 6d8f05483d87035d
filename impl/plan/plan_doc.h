/* A parsed spec document: the tree that both spec syntaxes (plan_yaml.c, plan_json.c) produce,
 * every node with the line and column it came from, so that plan_spec.c can name the place of
 * a bad value. */
#ifndef THINP_PLAN_DOC_H
#define THINP_PLAN_DOC_H

#include <stdbool.h>
#include <stddef.h>

enum pdoc_kind {
	PDOC_SCALAR,
	PDOC_MAP,
	PDOC_LIST
};

struct pdoc {
	enum pdoc_kind kind;
	int line, col; /* of the value (1-based) */
	char *text;    /* PDOC_SCALAR: its text, quotes and escapes resolved */
	bool quoted;   /* the scalar was a quoted string */
	char *key;     /* an entry of a map: its key */
	int key_line, key_col;
	struct pdoc *child; /* PDOC_MAP/PDOC_LIST: first entry */
	struct pdoc *next;  /* next entry of the parent */
};

/* Parse TEXT (NUL-terminated). On success *OUT is the root (a map) and 0 is returned; on a
 * syntax error -1, with "line L, column C: REASON" in ERR. */
int pdoc_parse_yaml(const char *text, struct pdoc **out, char *err, size_t errlen);
int pdoc_parse_json(const char *text, struct pdoc **out, char *err, size_t errlen);
/* JSON when the first significant character is '{', else YAML. */
int pdoc_parse(const char *text, struct pdoc **out, char *err, size_t errlen);

struct pdoc *pdoc_new(enum pdoc_kind kind, int line, int col);
/* Append CHILD to PARENT's entries; a map refuses a key it already has (returns -1). */
int pdoc_append(struct pdoc *parent, struct pdoc *child);
void pdoc_free(struct pdoc *d);

#endif
