/* thinp thin create / snap / delete / status / activate / remove: pool messages and the
 * status of one thin device; activate/remove are the kernel's (device nodes), notes for
 * the userspace backend once the thin is known to exist. A directory pool keeps each
 * thin's size in DIR/thins (cli_thins.h): create and snap record it once the pool
 * message succeeded, delete drops it. */
#include <stdio.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_fields.h"
#include "cli/cli_msg.h"
#include "cli/cli_thins.h"
#include "cli/cmd_report.h"

static const char thin_usage[] =
        "usage: thinp thin create DIR ID [--size SIZE]\n"
        "       thinp thin snap DIR ID ORIGIN_ID [--size SIZE]\n"
        "       thinp thin delete DIR ID\n"
        "       thinp thin status DIR ID [--fields] [--noflush]\n"
        "       thinp thin ls DIR [-o FIELD,...] [--format text|json] [--noheadings]\n"
        "       thinp thin activate DIR ID SIZE [--name NAME]\n"
        "       thinp thin remove DIR ID [--name NAME] [--deferred]\n"
        "(or --data DEV --metadata DEV instead of DIR). IDs are 24-bit (0..16777215).\n"
        "--size: the thin's size (a multiple of 512 bytes), kept in DIR/thins; read, write\n"
        "and discard stay inside it. A snapshot takes its origin's unless given; a thin\n"
        "without one is bounded by 8 EiB. status --fields shows it (size_bytes).\n"
        "With --backend kernel the pool is a DIR or a device-mapper NAME (see pool create):\n"
        "create/snap/delete are pool messages (snap suspends the origin's active devices);\n"
        "activate makes /dev/mapper/NAME (default: the pool's name minus -pool, then -ID;\n"
        "printed) of SIZE bytes; status needs an active device; remove deactivates --name, or\n"
        "every active device of ID (--deferred: on its last close). The userspace backend\n"
        "has nothing to activate or remove.\n";

enum thin_sub {
	THIN_CREATE,
	THIN_SNAP,
	THIN_DELETE,
	THIN_STATUS,
	THIN_ACTIVATE,
	THIN_REMOVE
};

static const struct {
	const char *name, *cmd;
	int need; /* positionals after the pool */
} subs[] = {
	[THIN_CREATE] = { "create", "thin create", 1 },
	[THIN_SNAP] = { "snap", "thin snap", 2 },
	[THIN_DELETE] = { "delete", "thin delete", 1 },
	[THIN_STATUS] = { "status", "thin status", 1 },
	[THIN_ACTIVATE] = { "activate", "thin activate", 2 },
	[THIN_REMOVE] = { "remove", "thin remove", 1 },
};

/* What the command line asks, validated before the backend is touched. */
struct thin_args {
	enum thin_sub sub;
	uint64_t id, origin, size;
	const char *dir; /* the pool directory (DIR/thins), or NULL */
};

static int parse(int argc, char **argv, struct cli_pool_args *a, struct thin_args *t)
{
	static const struct option longopts[] = { CLI_POOL_LONGOPTS, CLI_STD_LONGOPTS, { 0 } };
	static const struct option sized_longopts[] = {
		CLI_POOL_LONGOPTS, CLI_THIN_SIZE_LONGOPT, CLI_STD_LONGOPTS, { 0 }
	};
	const bool sized = t->sub == THIN_CREATE || t->sub == THIN_SNAP;
	const struct cli_cmd cmd = {
		.name = a->cmd,
		.usage = thin_usage,
		.shortopts = CLI_POOL_SHORTOPTS,
		.longopts = sized ? sized_longopts : longopts,
		.numbers = true,
		.option = cli_pool_option,
		.ctx = a,
	};
	const int need = subs[t->sub].need;
	const char *pos[4];
	int nr, r = cli_parse(&cmd, argc, argv, pos, need + 1, &nr);
	if (r || (r = cli_take_pool(a, pos, &nr, need, false)))
		return r;
	if (cli_thin_id(a->cmd, "device id", pos[0], &t->id))
		return 2;
	if (t->sub == THIN_SNAP && cli_thin_id(a->cmd, "origin device id", pos[1], &t->origin))
		return 2;
	if (t->sub == THIN_ACTIVATE) {
		if (cli_size(a->cmd, "thin device size", pos[1], &t->size))
			return 2;
		if (!t->size || t->size % 512)
			return cli_usage(
			        a->cmd,
			        "invalid thin device size '%s': a positive multiple of 512 bytes",
			        pos[1]);
	}
	if (a->name && !backend_dm_name_ok(a->name))
		return cli_usage(a->cmd, "invalid device name '%s': " BACKEND_DM_NAME_RULE,
		                 a->name);
	t->dir = cli_pool_dir(a);
	if (a->thin_size && !t->dir)
		return cli_usage(a->cmd,
		                 "--size is kept in a pool directory (DIR/thins), and this pool has "
		                 "none: give --size to each read, write and discard instead");
	return 0;
}

/* After a successful create (ORIGIN_SIZE 0) or snap: the thin's size into DIR/thins. A
 * create without --size drops a record left by an earlier thin of that id. */
static int record(const struct cli_pool_args *a, const struct thin_args *t, uint64_t origin_size)
{
	uint64_t size = a->thin_size ? a->thin_size : origin_size;
	if (!t->dir || !cli_thins_set(a->cmd, t->dir, t->id, size))
		return 0;
	cli_err(a->cmd, "thin %llu exists, but its size is not recorded: IO on it is bounded by "
	                "8 EiB until `thin delete` and a new create",
	        (unsigned long long)t->id);
	return 1;
}

static int run(const struct backend_ops *be, struct backend_pool *p, const struct thin_args *t)
{
	const struct cli_pool_args *a = p->args;
	char out[256];
	struct thinp_thin_status st;
	uint64_t size = 0;
	int r;
	switch (t->sub) {
	case THIN_CREATE:
		r = be->thin_create(p, t->id);
		return r ? r : record(a, t, 0);
	case THIN_SNAP:
		if (t->dir && cli_thins_get(a->cmd, t->dir, t->origin, &size))
			return 1;
		r = be->thin_snap(p, t->id, t->origin);
		return r ? r : record(a, t, size);
	case THIN_DELETE:
		if ((r = be->thin_delete(p, t->id)))
			return r;
		return t->dir ? cli_thins_set(a->cmd, t->dir, t->id, 0) : 0;
	case THIN_STATUS:
		if (a->fields && t->dir && cli_thins_get(a->cmd, t->dir, t->id, &size))
			return 1;
		r = be->thin_status(p, t->id, a->name, a->noflush, a->fields ? &st : NULL,
		                    a->fields ? NULL : out, sizeof(out));
		if (!r && a->fields) {
			cli_print_thin_fields(&st);
			if (size)
				printf("size_bytes=%llu\n", (unsigned long long)size);
		} else if (!r) {
			printf("%s\n", out);
		}
		return r;
	case THIN_ACTIVATE:
		r = be->thin_activate(p, t->id, t->size, a->name, out, sizeof(out));
		if (!r && *out)
			printf("%s\n", out);
		return r;
	case THIN_REMOVE:
		return be->thin_remove(p, t->id, a->name, a->deferred);
	}
	return 1;
}

int cmd_thin(int argc, char **argv, const struct cli_global *g)
{
	if (argc < 2)
		return cli_usage("thin", "missing subcommand (create, snap, delete, status, ls, "
		                         "activate or remove)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(thin_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("thinp %s\n", THINP_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "ls")) /* its own options and report (cmd_report.c) */
		return cmd_thin_ls(argc - 1, argv + 1, g);
	struct thin_args t = { 0 };
	size_t i = 0;
	while (i < sizeof(subs) / sizeof(subs[0]) && strcmp(argv[1], subs[i].name))
		i++;
	if (i == sizeof(subs) / sizeof(subs[0]))
		return cli_usage("thin", "unknown thin subcommand '%s'", argv[1]);
	t.sub = (enum thin_sub)i;
	struct cli_pool_args a;
	cli_pool_args_init(&a, subs[i].cmd, g);
	int r = parse(argc - 1, argv + 1, &a, &t);
	if (r)
		return r == CLI_DONE ? 0 : r;
	a.via_control = true;
	struct backend_pool *p;
	if ((r = backend_of(&a)->open(&a, &p)))
		return r;
	return p->ops->close(p, run(p->ops, p, &t));
}
