/* The strict XML reader under restore: libexpat (the parser thin_restore
 * uses) reads the input in chunks; this layer holds it to what thin_dump
 * writes and hand-written files need, and to the limits restore has always
 * had:
 *   - elements with attributes, comments, processing instructions, an XML
 *     declaration, a DOCTYPE without an internal subset (its entities would
 *     not be expanded, so it is refused; those of an external DTD are not
 *     read, so a reference to one is an unknown entity);
 *   - no text (only whitespace between tags), no CDATA sections;
 *   - UTF-8 only (a UTF-8 byte order mark is skipped, UTF-16 refused);
 *   - names of at most XML_MAX_NAME - 1 characters from [A-Za-z0-9_.:-], at
 *     most XML_MAX_ATTRS attributes per tag, values of at most
 *     XML_MAX_VALUE - 1 bytes; what expat buffers is capped, so no input can
 *     make it grow without bound.
 * Messages start with "line N: ". Those about raw XML syntax are expat's
 * (except where the old reader's words are still known: unquoted values, text,
 * end tags out of place); those about content come from the handlers. */
#ifndef THINP_THIN_XML_READ_H
#define THINP_THIN_XML_READ_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define XML_MAX_NAME  64
#define XML_MAX_VALUE 1024
#define XML_MAX_ATTRS 16

struct xml_reader;

struct xml_attr {
	const char *name;
	const char *value;
	bool used; /* set by the handler that understood it */
};

/* Each returns 0 to go on, or the negative errno of xml_fail(). */
struct xml_reader_ops {
	/* A start tag (<x/> gives start then end). ATTRS is NULL when the tag
	 * is only known by its name: an element where none may stand (after the
	 * root), reported so that the handler can name the place. */
	int (*start)(struct xml_reader *r, void *ctx, const char *name, struct xml_attr *attrs,
	             unsigned nr_attrs);
	/* An end tag, also one that does not close the open element (the
	 * handler says what is open). */
	int (*end)(struct xml_reader *r, void *ctx, const char *name);
	/* The input ended without a syntax error, maybe with elements open. */
	int (*eof)(struct xml_reader *r, void *ctx);
};

/* Read IN to its end, calling OPS with CTX. Returns 0, or a negative errno
 * with the message in ERR. */
int xml_read(FILE *in, const struct xml_reader_ops *ops, void *ctx, char *err, size_t errlen);

/* Line of the event being handled (at eof: the line the input ends on). */
unsigned long xml_line(const struct xml_reader *r);

/* Fail the read with "line LINE: " and the message; returns -EINVAL. Only
 * the first failure counts. */
__attribute__((format(printf, 3, 4))) int xml_fail(struct xml_reader *r, unsigned long line,
                                                   const char *fmt, ...);
__attribute__((format(printf, 3, 0))) int xml_vfail(struct xml_reader *r, unsigned long line,
                                                    const char *fmt, va_list ap);

#endif
