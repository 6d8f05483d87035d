/* The options every pool command takes (where the pool is, its table line,
 * the backend) and how the pool is named on the command line: a directory DIR
 * (Docker's loop-lvm layout: DIR/data, DIR/metadata), --data DEV --metadata
 * DEV, or with the kernel backend a device-mapper NAME. */
#ifndef THINP_CLI_POOL_ARGS_H
#define THINP_CLI_POOL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "thinp.h"

struct cli_pool_args {
	const char *cmd;  /* "thin create": messages name it */
	const char *pool; /* DIR, or a NAME (kernel); NULL when --data/--metadata name it */
	const char *data;
	const char *metadata;
	struct thinp_pool_opts opts;
	bool have_block_size;
	bool direct;  /* O_DIRECT on the data device */
	bool losetup; /* reach the files through loop devices (root), as Docker's loop-lvm */
	enum cli_backend backend; /* --backend user|kernel */
	int verbose;              /* -v: libdevmapper's own log to stderr (-vv: with debug) */
	const char *name;         /* --name: the device-mapper name (kernel backend) */
	bool deferred;            /* --deferred: remove on last close (kernel backend) */
	bool noflush;             /* --noflush: status without committing first */
	bool fields;              /* --fields: status as key=value lines of the parsed struct */
	/* pool create / extend */
	uint64_t data_size, meta_size; /* 0: not given (given, they are > 0) */
	bool force;                    /* create over an existing pool */
	/* thin create / snap, read / write / discard: --size, the thin's size (0: not given) */
	uint64_t thin_size;
	/* A userspace DIR pool another process holds: reach it through DIR/control
	 * (backend_control_ops) instead of failing as busy. */
	bool via_control;
	/* While this command holds a DIR pool, serve DIR/control (commands that may wait:
	 * a write queued on a full pool needs another shell to extend it). */
	bool serve_control;
};

/* The most metadata dm-thin uses: DM_SM_METADATA_MAX_BLOCKS (255 bitmaps of 16320
 * blocks) of 4 KiB, 15.875 GiB. */
#define CLI_META_SIZE_MAX (255ull * 16320 * 4096)

enum {
	CLI_OPT_DATA = 256,
	CLI_OPT_METADATA,
	CLI_OPT_BLOCK_SIZE,
	CLI_OPT_LOW_WATER,
	CLI_OPT_BACKEND,
	CLI_OPT_NAME,
	CLI_OPT_DEFERRED,
	CLI_OPT_NOFLUSH,
	CLI_OPT_FIELDS,
	CLI_OPT_SKIP_BLOCK_ZEROING,
	CLI_OPT_ERROR_IF_NO_SPACE,
	CLI_OPT_IGNORE_DISCARD,
	CLI_OPT_NO_DISCARD_PASSDOWN,
	CLI_OPT_READ_ONLY,
	CLI_OPT_DIRECT,
	CLI_OPT_LOSETUP,
	CLI_OPT_DATA_SIZE,
	CLI_OPT_METADATA_SIZE,
	CLI_OPT_FORCE,
	CLI_OPT_SIZE,
	CLI_OPT_COW,
};

/* Every pool command accepts all of these (as it always did); create and extend add
 * CLI_SIZE_LONGOPTS, create CLI_FORCE_LONGOPT; thin create/snap and the IO commands
 * CLI_THIN_SIZE_LONGOPT. */
#define CLI_POOL_SHORTOPTS "v" CLI_STD_SHORTOPTS
/* clang-format off */
#define CLI_POOL_LONGOPTS                                                            \
	{ "data", required_argument, NULL, CLI_OPT_DATA },                           \
	{ "metadata", required_argument, NULL, CLI_OPT_METADATA },                   \
	{ "block-size", required_argument, NULL, CLI_OPT_BLOCK_SIZE },               \
	{ "low-water", required_argument, NULL, CLI_OPT_LOW_WATER },                 \
	{ "backend", required_argument, NULL, CLI_OPT_BACKEND },                     \
	{ "verbose", no_argument, NULL, 'v' },                                       \
	{ "name", required_argument, NULL, CLI_OPT_NAME },                           \
	{ "deferred", no_argument, NULL, CLI_OPT_DEFERRED },                         \
	{ "noflush", no_argument, NULL, CLI_OPT_NOFLUSH },                           \
	{ "fields", no_argument, NULL, CLI_OPT_FIELDS },                             \
	{ "skip-block-zeroing", no_argument, NULL, CLI_OPT_SKIP_BLOCK_ZEROING },     \
	{ "error-if-no-space", no_argument, NULL, CLI_OPT_ERROR_IF_NO_SPACE },       \
	{ "ignore-discard", no_argument, NULL, CLI_OPT_IGNORE_DISCARD },             \
	{ "no-discard-passdown", no_argument, NULL, CLI_OPT_NO_DISCARD_PASSDOWN },   \
	{ "read-only", no_argument, NULL, CLI_OPT_READ_ONLY },                       \
	{ "direct", no_argument, NULL, CLI_OPT_DIRECT },                             \
	{ "losetup", no_argument, NULL, CLI_OPT_LOSETUP },                           \
	{ "cow", required_argument, NULL, CLI_OPT_COW }
#define CLI_SIZE_LONGOPTS                                                            \
	{ "data-size", required_argument, NULL, CLI_OPT_DATA_SIZE },                 \
	{ "metadata-size", required_argument, NULL, CLI_OPT_METADATA_SIZE }
#define CLI_FORCE_LONGOPT { "force", no_argument, NULL, CLI_OPT_FORCE }
#define CLI_THIN_SIZE_LONGOPT { "size", required_argument, NULL, CLI_OPT_SIZE }
/* clang-format on */

/* A fresh A for command CMD, with the options given before the command. */
void cli_pool_args_init(struct cli_pool_args *a, const char *cmd, const struct cli_global *g);

/* The cli_cmd option callback of the pool commands (CTX is a struct cli_pool_args). */
int cli_pool_option(void *ctx, int c, const char *arg, const char *opt);

/* Take the pool off the front of the positionals POS (*NR of them), which must leave
 * NEED. The user backend names it DIR or --data/--metadata; the kernel backend always
 * by a positional DIR or NAME, with --data/--metadata only where DEVICES_OK (pool
 * commands: `pool create NAME --data DEV --metadata DEV`). Returns 0 or 2 (reported). */
int cli_take_pool(struct cli_pool_args *a, const char **pos, int *nr, int need, bool devices_ok);

#endif
