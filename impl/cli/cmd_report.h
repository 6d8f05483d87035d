/* thinp pool report and thinp thin ls (cmd_report.c): lvs- and thin_ls-shaped reports of a
 * pool's space and of each thin's mapped, exclusive and shared blocks. */
#ifndef THINP_CLI_CMD_REPORT_H
#define THINP_CLI_CMD_REPORT_H

#include "cli/cli_pool_args.h"

/* ARGV[0] is "report"; A is initialised for "pool report". */
int cmd_pool_report(int argc, char **argv, struct cli_pool_args *a);
/* ARGV[0] is "ls". */
int cmd_thin_ls(int argc, char **argv, const struct cli_global *g);

#endif
