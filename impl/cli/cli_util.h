/* Shared by the thinp subcommands: argument parsing and opening a pool from
 * a directory (Docker's loop-lvm layout: DIR/data, DIR/metadata) or from
 * explicit devices. */
#ifndef THINP_CLI_UTIL_H
#define THINP_CLI_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "io/dev.h"
#include "thinp.h"

/* Parse "100G", "64k", "4096" (k/m/g/t, binary, case-insensitive). Prints a
 * usage error naming WHAT and returns -1 on bad input. */
int cli_parse_size(const char *what, const char *s, uint64_t *out);
int cli_parse_u64(const char *what, const char *s, uint64_t *out);

/* Which pool implementation a command drives: libthinp on files/devices (the default) or
 * the kernel's dm-thin through libdevmapper (impl/dm/). */
enum cli_backend {
	CLI_BACKEND_USER,
	CLI_BACKEND_KERNEL
};

/* Where a pool lives and how its table line looks. */
struct cli_pool_args {
	const char *dir; /* or NULL with data+metadata */
	const char *data;
	const char *metadata;
	struct thinp_pool_opts opts;
	bool direct; /* O_DIRECT on the data device */
	bool losetup; /* reach the files through loop devices (root), as Docker's loop-lvm */
	bool have_block_size;
	enum cli_backend backend; /* --backend user|kernel */
	int verbose;              /* -v: libdevmapper's own log to stderr (-vv: with debug) */
	const char *name;         /* --name: the device-mapper name (kernel backend) */
	bool deferred;            /* --deferred: remove on last close (kernel backend) */
	bool noflush;             /* --noflush: status without committing first */
	bool fields;              /* --fields: status as key=value lines of the parsed struct */
};

/* Parse the common pool options at argv[*i] (--data, --metadata, feature
 * flags, --block-size, --low-water, --direct, --backend, -v, --name, --deferred,
 * --noflush, --fields). Returns 1 if consumed, 0 if not a pool option, -1 on a
 * usage error (already printed). */
int cli_pool_option(int argc, char **argv, int *i, struct cli_pool_args *a);

/* Apply DIR/table (block size, low water, features saved at creation) to A, unless the
 * command line set them. */
void cli_load_table(const char *dir, struct cli_pool_args *a);

/* The parsed status structs as key=value lines (--fields), the same for both backends. */
void cli_print_pool_fields(const struct thinp_pool_status *st);
void cli_print_thin_fields(const struct thinp_thin_status *st);

/* Open an existing pool (features from DIR/table unless overridden). Prints
 * the error and returns non-zero on failure. */
int cli_open_pool(struct cli_pool_args *a, struct thinp_pool **out);

/* Open one of the pool's devices: the file or device PATH, or with --losetup
 * the file through a loop device (created with SIZE first when FLAGS has
 * TP_DEV_CREATE and it is missing). */
int cli_open_dev(const struct cli_pool_args *a, const char *path, unsigned flags, uint64_t size,
		 struct tp_dev **out);

/* Save/read the table line (block size, low water, features) next to a
 * directory pool, as the kernel keeps it in its table, not in metadata. */
int cli_save_table(const char *dir, const struct thinp_pool_opts *o);

/* "thinp CMD: <fmt with arg>" plus the --help hint on stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, const char *arg);

/* The offline metadata tools (check, dump) take exactly one metadata file or
 * device after their options: open it read-only. Returns 0, 1 (cannot open:
 * reported unless QUIET) or 2 (usage, reported). */
int cli_open_metadata_arg(const char *cmd, int argc, char **argv, int optind, bool quiet,
			  struct tp_dev **meta, const char **path);

/* Print "thinp: CMD: MSG" to stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
