/* thinp: one binary, one subcommand per table entry (like git). A new
 * subcommand is a cmd_NAME(argc, argv) in its own impl/cli/cmd_NAME.c, a
 * declaration in commands.h and a line in the table below; `thinp help NAME`
 * runs `thinp NAME --help`, so every subcommand must accept --help. */
#include <stdio.h>
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
	fputs("Usage: thinp COMMAND [ARGS...]\n"
	      "       thinp help COMMAND\n"
	      "       thinp --version\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NR_COMMANDS; i++)
		fprintf(f, "  %-19s %s\n", commands[i].name, commands[i].summary);
	fputs("\nExit status: 0 success, 1 failure, 2 usage error.\n", f);
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
	const struct command *c = find(name);
	if (!c)
		return unknown(name);
	return c->run(argc - 1, argv + 1);
}
