/* Shared by the offline metadata tools (check, dump): they take exactly one metadata
 * file or device after their options, opened read-only. */
#ifndef THINP_CLI_OFFLINE_H
#define THINP_CLI_OFFLINE_H

#include <stdbool.h>

#include "thinp.h"

/* POS holds NR positionals. Returns 0 (*META open, *PATH its name), 1 (cannot open:
 * reported unless QUIET) or 2 (usage, reported). */
int cli_open_metadata_arg(const char *cmd, const char **pos, int nr, bool quiet,
                          struct tp_dev **meta, const char **path);

#endif
