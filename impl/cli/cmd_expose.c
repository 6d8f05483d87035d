/* thinp expose: serve a thin device of a userspace pool as a regular file in a FUSE mount
 * (impl/graph/expose.h), and with --loop as a block device (a loop device over the file),
 * until SIGINT or SIGTERM: how this host, without device-mapper, gets a thin device to
 * mkfs and mount (docs/expose.md). The pool is held meanwhile, and DIR/control answers
 * for it as for any command that holds a pool. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"
#include "cli/cli_thins.h"
#include "graph/expose.h"

static const char expose_usage[] =
        "usage: thinp expose DIR ID [--size BYTES] [--name NAME] [--mountpoint MNT] [--loop]\n"
        "       (or --data DEV --metadata DEV instead of DIR; then --mountpoint is needed)\n"
        "Serve thin device ID of the pool as the file MNT/NAME in a FUSE mount (root) until\n"
        "SIGINT or SIGTERM: its reads, writes, fsync and punched holes are the thin's reads,\n"
        "writes, flushes and discards. Prints the file's path, with --loop the loop device\n"
        "attached over it (/dev/loopN, detached at exit), then 'ready'.\n"
        "  --size BYTES      the device's size (k/m/g/t; default: the size `thin create\n"
        "                    --size` recorded in DIR/thins)\n"
        "  --name NAME       the file's name (default: thin-ID)\n"
        "  --mountpoint MNT  an existing empty directory (default: DIR/expose, made 0700\n"
        "                    and removed at exit)\n"
        "  --loop            attach a loop device over the file\n"
        "The pool options of `thinp write` apply (--cow, --direct, --losetup, ...).\n";

enum {
	OPT_MOUNTPOINT = 512,
	OPT_LOOP,
};

/* How long a stop waits for the loop device (or another opener) to let go of the file. */
#define CLOSE_WAIT_MS 30000

struct expose_args {
	struct cli_pool_args pool;
	const char *mountpoint;
	bool loop;
	uint64_t id, size;
	char name[NAME_MAX + 1];
};

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct expose_args *x = ctx;
	if (c == OPT_MOUNTPOINT) {
		x->mountpoint = arg;
		return 0;
	}
	if (c == OPT_LOOP) {
		x->loop = true;
		return 0;
	}
	return cli_pool_option(&x->pool, c, arg, opt);
}

static int parse(int argc, char **argv, struct expose_args *x)
{
	static const struct option longopts[] = {
		CLI_POOL_LONGOPTS,
		CLI_THIN_SIZE_LONGOPT,
		{ "mountpoint", required_argument, NULL, OPT_MOUNTPOINT },
		{ "loop", no_argument, NULL, OPT_LOOP },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	struct cli_pool_args *a = &x->pool;
	const struct cli_cmd cmd = {
		.name = a->cmd,
		.usage = expose_usage,
		.shortopts = CLI_POOL_SHORTOPTS,
		.longopts = longopts,
		.numbers = true,
		.option = option,
		.ctx = x,
	};
	const char *pos[2];
	int nr, r = cli_parse(&cmd, argc, argv, pos, 2, &nr);
	if (r)
		return r;
	if (a->backend == CLI_BACKEND_KERNEL)
		return cli_usage(a->cmd, "not with --backend kernel: the kernel's thins are block "
		                         "devices already (`thinp --backend kernel thin activate` "
		                         "prints the node)");
	if ((r = cli_take_pool(a, pos, &nr, 1, false)))
		return r;
	if (cli_thin_id(a->cmd, "device id", pos[0], &x->id))
		return 2;
	/* --name is the pool options' (a device-mapper name there): here the file's */
	const char *name = a->name;
	if (name && (!*name || strlen(name) > NAME_MAX || strchr(name, '/') || !strcmp(name, ".") ||
	             !strcmp(name, "..")))
		return cli_usage(a->cmd,
		                 "invalid --name '%s': a file name of 1-%d bytes, without '/', not "
		                 ". or ..",
		                 name, NAME_MAX);
	if (name)
		snprintf(x->name, sizeof(x->name), "%s", name);
	else
		snprintf(x->name, sizeof(x->name), "thin-%llu", (unsigned long long)x->id);
	if (!x->mountpoint && !cli_pool_dir(a))
		return cli_usage(a->cmd, "a pool named by --data/--metadata has no DIR/expose: "
		                         "give --mountpoint MNT");
	return 0;
}

/* The device's size: --size, else DIR/thins' record. 0, 1 or 2 (reported). */
static int size_of(struct expose_args *x)
{
	struct cli_pool_args *a = &x->pool;
	const char *dir = cli_pool_dir(a);
	uint64_t rec = 0;
	if (dir && cli_thins_get(a->cmd, dir, x->id, &rec))
		return 1;
	if (rec && a->thin_size && a->thin_size != rec)
		return cli_usage(
		        a->cmd,
		        "--size %llu differs from thin %llu's size %llu bytes (recorded in "
		        "%s/thins): drop --size",
		        (unsigned long long)a->thin_size, (unsigned long long)x->id,
		        (unsigned long long)rec, dir);
	x->size = a->thin_size ? a->thin_size : rec;
	if (!x->size)
		return cli_usage(
		        a->cmd,
		        "thin %llu has no recorded size (`thin create --size` records one): "
		        "give --size BYTES",
		        (unsigned long long)x->id);
	return 0;
}

/* MNT: --mountpoint, or DIR/expose made here (*MADE: remove it at exit). 0 or 1. */
static int mountpoint(const struct expose_args *x, char *mnt, size_t len, bool *made)
{
	const char *cmd = x->pool.cmd;
	*made = false;
	if (x->mountpoint) {
		snprintf(mnt, len, "%s", x->mountpoint);
		return 0;
	}
	if ((size_t)snprintf(mnt, len, "%s/expose", x->pool.pool) >= len)
		return cli_fail(cmd, "%s/expose: path too long", x->pool.pool);
	if (!mkdir(mnt, 0700))
		*made = true;
	else if (errno != EEXIST)
		return cli_fail(cmd, "cannot create %s: %s", mnt, strerror(errno));
	return 0;
}

/* Serve until SIGINT or SIGTERM (blocked in every thread since before the first one
 * started, so sigwait here takes them). */
static void wait_for_signal(const sigset_t *set)
{
	int sig;
	while (sigwait(set, &sig))
		;
}

/* Everything after the pool is open: the bridge, the loop, the wait, the teardown. */
static int serve(struct expose_args *x, struct thinp_pool *pool, const char *mnt,
                 const sigset_t *stop)
{
	const char *cmd = x->pool.cmd;
	char err[1024], path[PATH_MAX + NAME_MAX + 2], dev[64] = "";
	struct tg_expose *e;
	if (tg_expose_start(pool, mnt, &e, err, sizeof(err)))
		return cli_fail(cmd, "%s", err);
	int rc = 0, loop_fd = -1;
	if (tg_expose_add(e, x->name, x->id, x->size, err, sizeof(err))) {
		cli_err(cmd, "%s", err);
		tg_expose_stop(e);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", mnt, x->name);
	int r = x->loop ? thinp_loop_attach(path, false, dev, sizeof(dev), &loop_fd) : 0;
	if (r) {
		cli_err(cmd,
		        "cannot attach a loop device to %s: %s (needs root and /dev/loop-control)",
		        path, strerror(-r));
		rc = 1;
	} else {
		printf("%s\n", path);
		if (x->loop)
			printf("%s\n", dev);
		printf("ready\n");
		fflush(stdout);
		wait_for_signal(stop);
	}
	/* the loop device lets go of the file once this, its last opener, closes (autoclear) */
	if (loop_fd >= 0)
		close(loop_fd);
	if (tg_expose_wait_closed(e, x->name, CLOSE_WAIT_MS) == -EBUSY) {
		cli_warn(cmd,
		         "%s is still open after %u s (%s mounted or open?): stopping anyway; "
		         "its IO fails from now on",
		         path, CLOSE_WAIT_MS / 1000, *dev ? dev : "the file");
		rc = 1;
	}
	r = tg_expose_stop(e);
	if (r && r != -EBUSY) {
		cli_err(cmd, "flushing thin %llu failed: %s", (unsigned long long)x->id,
		        strerror(-r));
		rc = 1;
	}
	return rc;
}

int cmd_expose(int argc, char **argv, const struct cli_global *g)
{
	struct expose_args x = { 0 };
	cli_pool_args_init(&x.pool, argv[0], g);
	int r = parse(argc, argv, &x);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if ((r = size_of(&x)))
		return r;
	char mnt[PATH_MAX];
	bool made;
	if (mountpoint(&x, mnt, sizeof(mnt), &made))
		return 1;
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	x.pool.serve_control = true;
	const struct backend_ops *be = backend_of(&x.pool);
	struct backend_pool *p;
	if ((r = be->open(&x.pool, &p)) == 0)
		r = be->close(p, serve(&x, backend_lib_pool(p), mnt, &stop));
	if (made && rmdir(mnt))
		cli_warn(x.pool.cmd, "cannot remove %s: %s", mnt, strerror(errno));
	return r;
}
