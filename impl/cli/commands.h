/* Subcommands of the thinp CLI. Each takes argv with argv[0] = the subcommand
 * name and returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef THINP_CLI_COMMANDS_H
#define THINP_CLI_COMMANDS_H

int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_pool(int argc, char **argv);
int cmd_thin(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_discard(int argc, char **argv);
int cmd_set_transaction_id(int argc, char **argv);
int cmd_metadata_snap(int argc, char **argv);

#endif
