/* The JSON of the driver's metadata files (docs/docker-driver.md §1): flat objects of
 * unsigned integers, booleans and strings, written as Go's json.Marshal writes them and
 * read as encoding/json fills a Go struct. */
#ifndef THINP_GRAPH_JSON_H
#define THINP_GRAPH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An object being written; OVERFLOW once something did not fit. */
struct tg_json_out {
	char buf[1024];
	size_t n;
	bool overflow;
};

/* printf-style raw text (keys, numbers, punctuation). */
void tg_json_put(struct tg_json_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string value as json.Marshal escapes it: \" \\ \b \f \n \r \t, other control bytes and
 * < > & as \u00XX, U+2028/2029 as \u2028/\u2029, malformed UTF-8 as \ufffd. */
void tg_json_put_string(struct tg_json_out *o, const char *s);

enum tg_json_type {
	TG_JSON_UINT, /* uint64_t: digits only (no sign, fraction or exponent), <= 2^64-1 */
	TG_JSON_BOOL, /* bool: true or false */
	TG_JSON_STR,  /* char[cap]: longer values and values holding U+0000 are refused */
};

struct tg_json_field {
	const char *key; /* matched as encoding/json does: exactly, else ignoring ASCII case */
	enum tg_json_type type;
	void *ptr;
	size_t cap; /* TG_JSON_STR: the buffer's size */
};

/* BUF (N bytes) must be one object, white space around it allowed. Its keys fill F (NF
 * fields; a repeated key: the last wins; null leaves the field alone); other keys' values,
 * of any JSON type, are skipped. 0, or -EINVAL with MSG = "<what> at byte <offset>". */
int tg_json_parse_flat(const char *buf, size_t n, const struct tg_json_field *f, size_t nf,
                       char *msg, size_t msglen);

#endif
