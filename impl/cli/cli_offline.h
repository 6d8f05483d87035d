/* Shared by the offline metadata tools (check, dump): they take exactly one metadata
 * file or device after their options. */
#ifndef THINP_CLI_OFFLINE_H
#define THINP_CLI_OFFLINE_H

#include <stdbool.h>

#include "thinp.h"

/* POS holds NR positionals: the one metadata path into *PATH. 0 or 2 (usage, reported). */
int cli_metadata_arg(const char *cmd, const char **pos, int nr, const char **path);

/* Open PATH with FLAGS (thinp_dev_open's). With THINP_DEV_EXCL, a pool open in another
 * process (it holds that lock) is refused: its metadata changes under a reader.
 * Returns 0, -EBUSY (reported, "the pool is open in another process (BUSY_HINT)") or 1
 * (reported); nothing is reported when QUIET. */
int cli_open_metadata(const char *cmd, const char *path, unsigned flags, bool quiet,
                      const char *busy_hint, struct tp_dev **meta);

#endif
