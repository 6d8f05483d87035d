/* DIR/table: the table line of a directory pool (block size, low water, features),
 * saved at creation and read back by every later command, as the kernel keeps them in
 * its table, not in the metadata. */
#ifndef THINP_CLI_TABLE_H
#define THINP_CLI_TABLE_H

#include "cli/cli_pool_args.h"

/* Save O as DIR/table (written aside, then renamed). 0 or -errno. */
int cli_save_table(const char *dir, const struct thinp_pool_opts *o);

/* Apply DIR/table to A, unless the command line set them. A missing table changes
 * nothing. */
void cli_load_table(const char *dir, struct cli_pool_args *a);

#endif
