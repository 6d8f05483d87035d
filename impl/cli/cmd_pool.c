/* thinp pool create / status / extend / activate / remove: each opens the pool, acts,
 * commits and closes, like one dmsetup command against the kernel's pool. With
 * --backend kernel (before or after the subcommand) they drive the kernel's dm-thin
 * (backend.h); `pool activate|remove` are the kernel's, and notes that do nothing for
 * the userspace backend, which has no devices. */
#include <stdio.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_fields.h"
#include "cli/cli_msg.h"
#include "cli/cli_thins.h"
#include "cli/cmd_report.h"

static const char pool_usage[] =
        "usage: thinp [--backend user|kernel] pool create|status|report|extend|activate|remove ...\n"
        "       (thinp pool SUBCOMMAND --help)\n";

static const char create_usage[] =
        "usage: thinp pool create DIR [--data-size 100G] [--metadata-size 2G] [--block-size 64k]\n"
        "         [--low-water BLOCKS] [--skip-block-zeroing] [--error-if-no-space]\n"
        "         [--ignore-discard] [--no-discard-passdown] [--force] [--losetup] [--direct]\n"
        "       thinp pool create --data DEV --metadata DEV [options]\n"
        "       thinp --backend kernel pool create DIR [--name NAME] [options]\n"
        "       thinp --backend kernel pool create NAME --data DEV --metadata DEV [options]\n"
        "Creates DIR/data and DIR/metadata as sparse files (Docker's loop-lvm defaults:\n"
        "100G data, 2G metadata) and formats a pool. An existing pool is kept unless --force.\n"
        "Block devices given with --data/--metadata are used whole unless a size is given.\n"
        "--losetup reaches the files through loop devices (root), --direct opens the data\n"
        "device O_DIRECT (direct-lvm).\n"
        "With --backend kernel the pool is the kernel's dm-thin, activated as /dev/mapper/NAME\n"
        "(printed): a DIR's files are attached to loop devices (loop-lvm; the name defaults to\n"
        "thinp-<maj>:<min>-<inode>-pool and is kept in DIR/kernel.json), or NAME sits directly\n"
        "on the block devices DEV (direct-lvm). -v shows libdevmapper's log.\n";

static const char status_usage[] =
        "usage: thinp pool status DIR | --data DEV --metadata DEV   [--noflush] [--fields]\n"
        "       thinp --backend kernel pool status DIR|NAME           [--noflush] [--fields]\n"
        "Prints the pool's `dmsetup status` line (the kernel's thin-pool INFO text); --fields\n"
        "prints the parsed status as key=value lines; --noflush does not commit first.\n"
        "A DIR pool another process holds (thinp write/read, the fio engine) is asked\n"
        "through DIR/control, the socket it serves (docs/control-socket.md).\n";

static const char extend_usage[] =
        "usage: thinp pool extend DIR [--data-size N] [--metadata-size N]\n"
        "       thinp --backend kernel pool extend DIR|NAME [--data-size N] [--metadata-size N]\n"
        "Grows the data and/or metadata device (files are extended) and the pool with them.\n"
        "Kernel: suspend, reload the table with the new length, resume. A DIR's files grow and\n"
        "their loop devices re-read the size (losetup -c); a NAME's devices must already be\n"
        "big enough (e.g. lvextend), and without sizes the pool takes the whole data device.\n"
        "A DIR pool another process holds is extended through DIR/control: writes queued on\n"
        "the full pool (queue_if_no_space) then go on.\n";

static const char activate_usage[] =
        "usage: thinp --backend kernel pool activate DIR | NAME --data DEV --metadata DEV [options]\n"
        "       thinp --backend kernel pool remove DIR|NAME [--deferred]\n"
        "Activates an existing pool on the kernel (features from DIR/table unless given), or\n"
        "deactivates it (a DIR's loop devices detach themselves). --deferred: remove when the\n"
        "last user closes it. The userspace backend has nothing to (de)activate.\n";

static const struct option pool_longopts[] = { CLI_POOL_LONGOPTS, CLI_STD_LONGOPTS, { 0 } };
static const struct option extend_longopts[] = {
	CLI_POOL_LONGOPTS, CLI_SIZE_LONGOPTS, CLI_STD_LONGOPTS, { 0 }
};
static const struct option create_longopts[] = {
	CLI_POOL_LONGOPTS, CLI_SIZE_LONGOPTS, CLI_FORCE_LONGOPT, CLI_STD_LONGOPTS, { 0 }
};

/* The subcommand's line into A: the pool and nothing else positional. Returns 0,
 * CLI_DONE (--help) or 2. */
static int parse(int argc, char **argv, struct cli_pool_args *a, const char *usage,
                 const struct option *longopts)
{
	const struct cli_cmd cmd = {
		.name = a->cmd,
		.usage = usage,
		.shortopts = CLI_POOL_SHORTOPTS,
		.longopts = longopts,
		.option = cli_pool_option,
		.ctx = a,
	};
	const char *pos[2];
	int nr, r = cli_parse(&cmd, argc, argv, pos, 1, &nr);
	return r ? r : cli_take_pool(a, pos, &nr, 0, true);
}

static int done(int r)
{
	return r == CLI_DONE ? 0 : r;
}

static int pool_create(int argc, char **argv, struct cli_pool_args *a)
{
	int r = parse(argc, argv, a, create_usage, create_longopts);
	if (r)
		return done(r);
	if (a->meta_size && a->meta_size < 65536)
		return cli_usage(a->cmd, "invalid metadata size: at least 64k is needed (2M is the "
		                         "practical floor)");
	if (a->backend == CLI_BACKEND_USER && a->opts.read_only)
		return cli_usage(a->cmd,
		                 "--read-only is invalid when creating a pool: the metadata "
		                 "is not formatted yet");
	char dev[256];
	r = backend_of(a)->pool_create(a, dev, sizeof(dev));
	/* a new pool has no thins: sizes recorded for an old one's must not apply to it */
	const char *dir = r ? NULL : cli_pool_dir(a);
	if (dir && cli_thins_clear(a->cmd, dir))
		r = 1;
	if (!r && *dev)
		printf("%s\n", dev);
	return r;
}

static int pool_status(int argc, char **argv, struct cli_pool_args *a)
{
	int r = parse(argc, argv, a, status_usage, pool_longopts);
	if (r)
		return done(r);
	a->via_control = true;
	struct backend_pool *p;
	if ((r = backend_of(a)->open(a, &p)))
		return r;
	const struct backend_ops *be = p->ops; /* the lib's, or its holder's socket */
	struct thinp_pool_status st;
	char line[512];
	r = be->pool_status(p, a->noflush, a->fields ? &st : NULL, a->fields ? NULL : line,
	                    sizeof(line));
	if (!r && a->fields)
		cli_print_pool_fields(&st);
	else if (!r)
		printf("%s\n", line);
	return be->close(p, r);
}

static int pool_extend(int argc, char **argv, struct cli_pool_args *a)
{
	int r = parse(argc, argv, a, extend_usage, extend_longopts);
	if (r)
		return done(r);
	const struct backend_ops *be = backend_of(a);
	if (!a->data_size && !a->meta_size && !(be->caps & BACKEND_EXTEND_TO_DEVICES))
		return cli_usage(a->cmd, "needs --data-size and/or --metadata-size");
	a->via_control = true;
	struct backend_pool *p;
	if ((r = be->open(a, &p)))
		return r;
	be = p->ops;
	return be->close(p, be->pool_extend(p, a->data_size, a->meta_size));
}

static int pool_activate(int argc, char **argv, struct cli_pool_args *a)
{
	int r = parse(argc, argv, a, activate_usage, pool_longopts);
	if (r)
		return done(r);
	char dev[256];
	r = backend_of(a)->pool_activate(a, dev, sizeof(dev));
	if (!r && *dev)
		printf("%s\n", dev);
	return r;
}

static int pool_remove(int argc, char **argv, struct cli_pool_args *a)
{
	int r = parse(argc, argv, a, activate_usage, pool_longopts);
	if (r)
		return done(r);
	const struct backend_ops *be = backend_of(a);
	struct backend_pool *p;
	if ((r = be->open(a, &p)))
		return r;
	return be->close(p, be->pool_remove(p, a->deferred));
}

int cmd_pool(int argc, char **argv, const struct cli_global *g)
{
	static const struct {
		const char *name, *cmd;
		int (*run)(int argc, char **argv, struct cli_pool_args *a);
	} subs[] = {
		{ "create", "pool create", pool_create },
		{ "status", "pool status", pool_status },
		{ "report", "pool report", cmd_pool_report },
		{ "extend", "pool extend", pool_extend },
		{ "activate", "pool activate", pool_activate },
		{ "remove", "pool remove", pool_remove },
	};
	if (argc < 2)
		return cli_usage("pool",
		                 "missing subcommand (create, status, report, extend, activate "
		                 "or remove)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(pool_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("thinp %s\n", THINP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name)) {
			struct cli_pool_args a;
			cli_pool_args_init(&a, subs[i].cmd, g);
			return subs[i].run(argc - 1, argv + 1, &a);
		}
	return cli_usage("pool", "unknown pool subcommand '%s'", argv[1]);
}
