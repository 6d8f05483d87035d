/* Subcommands of the thinp CLI. Each takes argv with argv[0] = the subcommand
 * name, and the options given before it (G), and returns the process exit
 * status (0 ok, 1 failure, 2 usage error). */
#ifndef THINP_CLI_COMMANDS_H
#define THINP_CLI_COMMANDS_H

/* Which pool implementation a command drives: libthinp on files/devices (the default) or
 * the kernel's dm-thin through libdevmapper (impl/dm/). */
enum cli_backend {
	CLI_BACKEND_USER,
	CLI_BACKEND_KERNEL
};

/* Options before COMMAND (thinp --backend kernel -v pool ...); the pool commands take
 * them after COMMAND too, where they count after these. */
struct cli_global {
	enum cli_backend backend;
	int verbose; /* -v: libdevmapper's own log to stderr (-vv: with debug) */
};

int cmd_dump(int argc, char **argv, const struct cli_global *g);
int cmd_restore(int argc, char **argv, const struct cli_global *g);
int cmd_check(int argc, char **argv, const struct cli_global *g);
int cmd_pool(int argc, char **argv, const struct cli_global *g);
int cmd_thin(int argc, char **argv, const struct cli_global *g);
int cmd_write(int argc, char **argv, const struct cli_global *g);
int cmd_read(int argc, char **argv, const struct cli_global *g);
int cmd_discard(int argc, char **argv, const struct cli_global *g);
int cmd_set_transaction_id(int argc, char **argv, const struct cli_global *g);
int cmd_metadata_snap(int argc, char **argv, const struct cli_global *g);
int cmd_docker(int argc, char **argv, const struct cli_global *g);
int cmd_plan(int argc, char **argv, const struct cli_global *g);
int cmd_expose(int argc, char **argv, const struct cli_global *g);

#endif
