/* thinp: one binary, one subcommand per table entry (like git). A new
 * subcommand is a cmd_NAME(argc, argv, g) in the impl/cli/cmd_*.c of its
 * family, a declaration in commands.h and a line in the table below;
 * `thinp help NAME` runs `thinp NAME --help`, so every subcommand must
 * accept --help (and --version). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/commands.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv, const struct cli_global *g);
	const char *summary;
	bool backend; /* takes --backend and -v */
};

/* In the order `thinp --help` lists them. */
static const struct command commands[] = {
	{ "pool", cmd_pool, "create a pool, show its status or a report, extend it", true },
	{ "thin", cmd_thin, "create, snapshot, delete a thin device; status; list usage", true },
	{ "write", cmd_write, "write bytes from stdin to a thin device", true },
	{ "read", cmd_read, "read bytes of a thin device to stdout", true },
	{ "discard", cmd_discard, "unmap a byte range of a thin device", true },
	{ "set-transaction-id", cmd_set_transaction_id,
	  "compare-and-swap the pool's transaction id", true },
	{ "metadata-snap", cmd_metadata_snap, "reserve or release the metadata snapshot", true },
	{ "check", cmd_check, "verify thin-pool metadata (stricter than thin_check)", false },
	{ "dump", cmd_dump, "write metadata as thin_dump XML (like thin_dump)", false },
	{ "restore", cmd_restore, "build metadata from thin_dump XML (like thin_restore)", false },
	{ "docker", cmd_docker, "Docker's devicemapper storage driver: layers, containers, info", true },
	{ "plan", cmd_plan, "capacity plan from a workload spec (YAML/JSON): usage, events, sizes", false },
	{ "expose", cmd_expose, "serve a thin device as a FUSE file and a loop device", true },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char *usage_text(void)
{
	static char buf[2048];
	size_t n = (size_t)snprintf(buf, sizeof(buf),
	                            "Usage: thinp [--backend user|kernel] [-v] COMMAND [ARGS...]\n"
	                            "       thinp help COMMAND\n"
	                            "       thinp --version\n"
	                            "\n"
	                            "Commands:\n");
	for (size_t i = 0; i < NR_COMMANDS && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "  %-19s %s\n", commands[i].name,
		                      commands[i].summary);
	if (n < sizeof(buf))
		snprintf(
		        buf + n, sizeof(buf) - n,
		        "\n--backend user (default): libthinp on files or block devices. --backend "
		        "kernel:\n"
		        "the kernel's dm-thin through libdevmapper (pool, thin, set-transaction-id,\n"
		        "metadata-snap); -v shows libdevmapper's log.\n"
		        "Every command takes --help and --version; -- ends the options.\n"
		        "\nExit status: 0 success, 1 failure, 2 usage error.\n");
	return buf;
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int unknown(const char *name)
{
	cli_err(NULL, "unknown command '%s'\n", name);
	cli_err_text(usage_text());
	return 2;
}

struct globals {
	struct cli_global g;
	bool given; /* --backend or -v */
};

static int global_option(void *ctx, int c, const char *arg, const char *opt)
{
	struct globals *gl = ctx;
	gl->given = true;
	if (c == 'v') {
		gl->g.verbose++;
		return 0;
	}
	if (!strcmp(arg, "user"))
		gl->g.backend = CLI_BACKEND_USER;
	else if (!strcmp(arg, "kernel"))
		gl->g.backend = CLI_BACKEND_KERNEL;
	else
		return cli_usage(NULL, "invalid %s '%s': use user or kernel", opt, arg);
	return 0;
}

static int help(int argc, char **argv, int at)
{
	if (argc - at > 2)
		return cli_usage(NULL, "usage: thinp help COMMAND");
	if (argc - at == 1) {
		fputs(usage_text(), stdout);
		return 0;
	}
	const struct command *c = find(argv[at + 1]);
	if (!c)
		return unknown(argv[at + 1]);
	static const struct cli_global none = { CLI_BACKEND_USER, 0 };
	char opt[] = "--help";
	char *args[] = { argv[at + 1], opt, NULL };
	return c->run(2, args, &none);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_err_text(usage_text());
		return 2;
	}
	static const struct option longopts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	int at;
	struct globals gl = { { CLI_BACKEND_USER, 0 }, false };
	const struct cli_cmd tool = {
		.name = NULL,
		.usage = usage_text(),
		.shortopts = "v" CLI_STD_SHORTOPTS,
		.longopts = longopts,
		.stop_at = &at,
		.option = global_option,
		.ctx = &gl,
	};
	int r = cli_parse(&tool, argc, argv, NULL, 0, &(int){ 0 });
	if (r)
		return r == CLI_DONE ? 0 : r;
	if (at >= argc) {
		cli_err(NULL, "%s: a COMMAND must follow\n", argv[argc - 1]);
		cli_err_text(usage_text());
		return 2;
	}
	if (!strcmp(argv[at], "help"))
		return help(argc, argv, at);
	const struct command *c = find(argv[at]);
	if (!c)
		return unknown(argv[at]);
	if (gl.given && !c->backend)
		return cli_usage(NULL,
		                 "--backend and -v apply to pool, thin, write, read, discard, "
		                 "set-transaction-id and metadata-snap, not to '%s'",
		                 c->name);
	return c->run(argc - at, argv + at, &gl.g);
}
