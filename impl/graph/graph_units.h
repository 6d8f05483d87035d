/* Sizes and booleans the way Docker's devicemapper driver reads and prints them
 * (docs/docker-driver.md §3 and §7): options are binary (10G = 10 GiB), `docker info`
 * is decimal with four significant digits (10.74GB). */
#ifndef THINP_GRAPH_UNITS_H
#define THINP_GRAPH_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* go-units RAMInBytes: "10G", "64k", "1.5g", "512", "2GiB", "32 mb", case-insensitive,
 * binary, the product truncated ("32.3" = 32). 0; -EINVAL with ERR = "invalid size: '<s>'"
 * when S does not match go-units' pattern ^(\d+(\.\d+)*) ?([kmgtp])?i?b?$, or Go's
 * `strconv.ParseFloat: parsing "1.2.3": invalid syntax` for the numbers the pattern lets
 * through; -ERANGE from 2^63 bytes on ("invalid size: '<s>': larger than 8 EiB ...", where
 * Go would silently wrap). */
int tg_ram_in_bytes(const char *s, uint64_t *out, char *err, size_t len);

/* go-units HumanSize: divide by 1000 until < 1000, "%.4g" and the unit
 * (B kB MB GB TB PB EB ZB YB). SPACED puts a space before the unit as Dockers up to
 * 1.12 did ("65.54 kB"); otherwise "65.54kB". */
void tg_human_size(uint64_t bytes, bool spaced, char *buf, size_t len);

/* Go strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. 0 or -EINVAL with
 * ERR = `strconv.ParseBool: parsing "<s>": invalid syntax`. */
int tg_parse_bool(const char *s, bool *out, char *err, size_t len);

/* Go strconv.ParseUint(S, 10, BITS): digits only (no sign, no spaces), at most 2^BITS - 1.
 * 0; -EINVAL with `strconv.ParseUint: parsing "<s>": invalid syntax`; -ERANGE with
 * `...: value out of range`. */
int tg_parse_uint(const char *s, unsigned bits, uint64_t *out, char *err, size_t len);

/* S the way Go's %q / strconv.Quote prints it in an error ("a\"b" -> "\"a\\\"b\""),
 * escaping control bytes and malformed UTF-8; truncated to LEN - 1 bytes. */
void tg_go_quote(const char *s, char *buf, size_t len);

/* Length of the well-formed UTF-8 sequence at S (N bytes available), 0 if malformed. */
size_t tg_utf8_len(const char *s, size_t n);

#endif
