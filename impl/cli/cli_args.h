/* Command lines of the thinp subcommands: one getopt_long loop for all of them
 * (with --, --help and --version), and the parsers of numbers and sizes.
 * Every usage error is reported here in the shape of cli_msg.h (exit 2). */
#ifndef THINP_CLI_ARGS_H
#define THINP_CLI_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

/* The one version string of the tool (`thinp --version`, `thinp CMD --version`);
 * the build may pass -DTHINP_VERSION=... */
#ifndef THINP_VERSION
#define THINP_VERSION "0.1.0"
#endif

/* Every command takes these (they end its longopts, before the { 0 }). */
#define CLI_OPT_HELP    'h'
#define CLI_OPT_VERSION 'V'
/* clang-format off */
#define CLI_STD_LONGOPTS                                                             \
	{ "help", no_argument, NULL, CLI_OPT_HELP },                                 \
	{ "version", no_argument, NULL, CLI_OPT_VERSION }
/* clang-format on */
#define CLI_STD_SHORTOPTS "hV"

/* cli_parse's result when --help or --version was printed: the command exits 0. */
#define CLI_DONE (-1)

/* How one command's line is read. */
struct cli_cmd {
	const char *name;              /* "pool create": in messages and the --help hint */
	const char *usage;             /* printed by --help (stdout) */
	const char *shortopts;         /* getopt's, with CLI_STD_SHORTOPTS */
	const struct option *longopts; /* with CLI_STD_LONGOPTS */
	/* An argument like -5 is a (negative, so invalid) value, not an option:
	 * the command's positionals are numbers. */
	bool numbers;
	/* Stop at the first positional (the dispatcher: the rest belongs to the
	 * command); its index goes to *stop_at (argc when there is none). */
	int *stop_at;
	/* One option: C is its getopt value, OPT its name as "--name" or "-c".
	 * Returns 0, or an exit status (usage errors reported with cli_usage). */
	int (*option)(void *ctx, int c, const char *arg, const char *opt);
	void *ctx;
};

/* Parse ARGV[1..] (ARGV[0] is the command's name): options go to CMD->option,
 * positionals into POS (at most MAX, in order; everything after "--" is
 * positional). Returns 0, CLI_DONE, or 2 (reported). */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, const char **pos, int max, int *nr);

/* Numbers and sizes. WHAT names the value in messages ("--low-water", "ID");
 * negatives, overflow, garbage and empty strings are usage errors of CMD that
 * name WHAT and the value. Each returns 0 or 2 (reported). */
int cli_u64(const char *cmd, const char *what, const char *s, uint64_t max, uint64_t *out);
/* "100G", "64k", "4096", "1MiB" (k/m/g/t, binary, case-insensitive). */
int cli_size(const char *cmd, const char *what, const char *s, uint64_t *out);
/* A thin device id: 24 bits, as dm-thin's. */
int cli_thin_id(const char *cmd, const char *what, const char *s, uint64_t *out);

#endif
