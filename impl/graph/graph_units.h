/* Sizes and booleans the way Docker's devicemapper driver reads and prints them
 * (docs/docker-driver.md §3 and §7): options are binary (10G = 10 GiB), `docker info`
 * is decimal with four significant digits (10.74GB). */
#ifndef THINP_GRAPH_UNITS_H
#define THINP_GRAPH_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* go-units RAMInBytes: "10G", "64k", "1.5g", "512", "2GiB", case-insensitive, binary.
 * 0 or -EINVAL (ERR gets "invalid size: '<s>'"), -ERANGE on overflow (same text). */
int tg_ram_in_bytes(const char *s, uint64_t *out, char *err, size_t len);

/* go-units HumanSize: divide by 1000 until < 1000, "%.4g" and the unit
 * (B kB MB GB TB PB EB ZB YB). SPACED puts a space before the unit as Dockers up to
 * 1.12 did ("65.54 kB"); otherwise "65.54kB". */
void tg_human_size(uint64_t bytes, bool spaced, char *buf, size_t len);

/* Go strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. 0 or -EINVAL with
 * ERR = `strconv.ParseBool: parsing "<s>": invalid syntax`. */
int tg_parse_bool(const char *s, bool *out, char *err, size_t len);

#endif
