/* thinp: one binary, one subcommand per table entry (like git). A new
 * subcommand is a cmd_NAME(argc, argv) in its own impl/cli/cmd_NAME.c, a
 * declaration in commands.h and a line in the table below; `thinp help NAME`
 * runs `thinp NAME --help`, so every subcommand must accept --help. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

#ifndef THINP_VERSION
#define THINP_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/* In the order `thinp --help` lists them. */
static const struct command commands[] = {
	{ "pool", cmd_pool, "create a pool, show its status, extend it" },
	{ "thin", cmd_thin, "create, snapshot, delete a thin device; show its status" },
	{ "write", cmd_write, "write bytes from stdin to a thin device" },
	{ "read", cmd_read, "read bytes of a thin device to stdout" },
	{ "discard", cmd_discard, "unmap a byte range of a thin device" },
	{ "set-transaction-id", cmd_set_transaction_id,
	  "compare-and-swap the pool's transaction id" },
	{ "metadata-snap", cmd_metadata_snap, "reserve or release the metadata snapshot" },
	{ "check", cmd_check, "verify thin-pool metadata (stricter than thin_check)" },
	{ "dump", cmd_dump, "write metadata as thin_dump XML (like thin_dump)" },
	{ "restore", cmd_restore, "build metadata from thin_dump XML (like thin_restore)" },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("Usage: thinp [--backend user|kernel] [-v] COMMAND [ARGS...]\n"
	      "       thinp help COMMAND\n"
	      "       thinp --version\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NR_COMMANDS; i++)
		fprintf(f, "  %-19s %s\n", commands[i].name, commands[i].summary);
	fputs("\n--backend user (default): libthinp on files or block devices. --backend kernel:\n"
	      "the kernel's dm-thin through libdevmapper (pool, thin, set-transaction-id,\n"
	      "metadata-snap); -v shows libdevmapper's log.\n"
	      "\nExit status: 0 success, 1 failure, 2 usage error.\n",
	      f);
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
	fprintf(stderr, "thinp: unknown command '%s'\n\n", name);
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
	    (!strcmp(name, "help") && argc == 2)) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("thinp %s\n", THINP_VERSION);
		return 0;
	}
	if (!strcmp(name, "help")) {
		if (argc > 3) {
			fputs("thinp: usage: thinp help COMMAND\n", stderr);
			return 2;
		}
		const struct command *c = find(argv[2]);
		if (!c)
			return unknown(argv[2]);
		char help[] = "--help";
		char *args[] = { argv[2], help, NULL };
		return c->run(2, args);
	}
	/* Global options before COMMAND (--backend X, -v) go to the end of its arguments,
	 * where the pool commands' option parser takes them like their own. */
	int g = 1;
	while (g < argc && (!strcmp(argv[g], "-v") || !strcmp(argv[g], "-vv") ||
	                    !strcmp(argv[g], "--verbose") || !strncmp(argv[g], "--backend=", 10) ||
	                    (!strcmp(argv[g], "--backend") && g + 1 < argc)))
		g += strcmp(argv[g], "--backend") ? 1 : 2;
	if (g == 1) {
		const struct command *c = find(name);
		if (!c)
			return unknown(name);
		return c->run(argc - 1, argv + 1);
	}
	if (g >= argc) {
		fprintf(stderr, "thinp: %s: a COMMAND must follow\n\n", argv[g - 1]);
		usage(stderr);
		return 2;
	}
	const struct command *c = find(argv[g]);
	if (!c)
		return unknown(argv[g]);
	static const char *const backend_commands[] = {
		"pool", "thin", "set-transaction-id", "metadata-snap", "write", "read", "discard"
	};
	bool takes = false;
	for (size_t i = 0; i < sizeof(backend_commands) / sizeof(backend_commands[0]); i++)
		takes |= !strcmp(c->name, backend_commands[i]);
	if (!takes) {
		fprintf(stderr,
		        "thinp: --backend and -v apply to pool, thin, set-transaction-id and "
		        "metadata-snap, not to '%s'\n",
		        c->name);
		return 2;
	}
	/* argv[g..] then the global options: a new vector (argv itself stays untouched) */
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args) {
		fputs("thinp: out of memory\n", stderr);
		return 1;
	}
	int n = 0;
	for (int i = g; i < argc; i++)
		args[n++] = argv[i];
	for (int i = 1; i < g; i++)
		args[n++] = argv[i];
	int rc = c->run(n, args);
	free(args);
	return rc;
}
