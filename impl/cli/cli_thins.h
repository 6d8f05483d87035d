/* DIR/thins: the size of each thin device of a directory pool, one "ID BYTES" line per
 * thin, ascending. The kernel keeps a thin's size in its table, not in the metadata
 * (Docker and LVM always give one); the userspace backend has no table, so the size
 * given to `thin create --size` (or a snapshot's origin's) is kept here and bounds
 * every read/write/discard, as the kernel's table length does. */
#ifndef THINP_CLI_THINS_H
#define THINP_CLI_THINS_H

#include <stdint.h>

#include "cli/cli_pool_args.h"

/* The bound of a thin without a size: what an off_t (signed 64 bits) can address, 8 EiB.
 * No device of the host is bigger, and OFFSET+LENGTH never wraps below it. */
#define CLI_THIN_SIZE_MAX (1ull << 63)

/* The pool directory A names (where DIR/thins lives), or NULL: a --data/--metadata pool,
 * or a kernel pool named by its device-mapper NAME. */
const char *cli_pool_dir(const struct cli_pool_args *a);

/* The size DIR/thins records for thin ID into *SIZE (0: none). 0, or 1 when the file
 * cannot be read or is damaged (reported, naming CMD, the file and the line). */
int cli_thins_get(const char *cmd, const char *dir, uint64_t id, uint64_t *size);

/* Record SIZE bytes for thin ID (0: drop its record). The file is rewritten whole, aside
 * (fsync, rename, fsync of DIR), under a lock on DIR, so a crash leaves the old or the
 * new file and concurrent commands do not lose each other's lines. 0 or 1 (reported). */
int cli_thins_set(const char *cmd, const char *dir, uint64_t id, uint64_t size);

/* Drop every record: DIR holds a new pool. 0 or 1 (reported). */
int cli_thins_clear(const char *cmd, const char *dir);

#endif
