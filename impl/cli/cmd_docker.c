/* thinp docker: Docker's devicemapper graph driver on a thin pool (impl/graph): init a
 * driver home, create layers and containers, get (mount) and put them, remove, list, and
 * `docker info`'s devicemapper block. Requests go to the daemon that holds ROOT, or run in
 * this process when none does (docker_route.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/commands.h"
#include "cli/docker_route.h"
#include "graph/graph_daemon.h"
#include "graph/graph_meta.h"

static const char docker_usage[] =
        "usage: thinp docker init|daemon|create|remove|get|put|exists|ls|info|device|prune|\n"
        "                    resize|stats|cleanup ROOT ...   (thinp docker SUBCOMMAND --help)\n"
        "Docker's devicemapper storage driver on a thin pool: ROOT is the driver's home\n"
        "(Docker's /var/lib/docker/devicemapper), docs/graph-driver.md.\n";

#define MAX_STORAGE_OPTS 64

struct dargs {
	const char *cmd;
	const char *parent;
	uint64_t size;
	bool json, old_format, foreground, reset;
	bool backend_set;
	enum tg_backend_kind backend;
	const char *opts[MAX_STORAGE_OPTS];
	int nr_opts;
};

enum { OPT_PARENT = 256, OPT_SIZE, OPT_FORMAT, OPT_OLD, OPT_FG, OPT_STORAGE, OPT_BACKEND, OPT_RESET };

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct dargs *a = ctx;
	switch (c) {
	case OPT_PARENT:
		a->parent = arg;
		return 0;
	case OPT_SIZE:
		return cli_size(a->cmd, opt, arg, &a->size);
	case OPT_FORMAT:
		if (strcmp(arg, "json") && strcmp(arg, "text"))
			return cli_usage(a->cmd, "invalid %s '%s': use text or json", opt, arg);
		a->json = !strcmp(arg, "json");
		return 0;
	case OPT_OLD:
		a->old_format = true;
		return 0;
	case OPT_FG:
		a->foreground = true;
		return 0;
	case OPT_RESET:
		a->reset = true;
		return 0;
	case OPT_STORAGE:
		if (a->nr_opts == MAX_STORAGE_OPTS)
			return cli_usage(a->cmd, "more than %d %s options", MAX_STORAGE_OPTS, opt);
		a->opts[a->nr_opts++] = arg;
		return 0;
	case OPT_BACKEND:
		if (strcmp(arg, "user") && strcmp(arg, "kernel"))
			return cli_usage(a->cmd, "invalid %s '%s': use user or kernel", opt, arg);
		a->backend = strcmp(arg, "user") ? TG_BACKEND_KERNEL : TG_BACKEND_LIB;
		a->backend_set = true;
		return 0;
	}
	return 2;
}

/* Parse this subcommand's line: NEED positionals (ROOT first) into POS. */
static int parse(int argc, char **argv, struct dargs *a, const char *usage, int need,
		 const char **pos)
{
	static const struct option longopts[] = {
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "old-format", no_argument, NULL, OPT_OLD },
		{ "foreground", no_argument, NULL, OPT_FG },
		{ "storage-opt", required_argument, NULL, OPT_STORAGE },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "reset", no_argument, NULL, OPT_RESET },
		CLI_STD_LONGOPTS,
		{ 0 }
	};
	const struct cli_cmd cmd = { .name = a->cmd, .usage = usage, .shortopts = CLI_STD_SHORTOPTS,
				     .longopts = longopts, .option = option, .ctx = a };
	int nr, r = cli_parse(&cmd, argc, argv, pos, need, &nr);
	if (r)
		return r;
	if (nr < need)
		return cli_usage(a->cmd, "missing %s", nr ? "ID" : "ROOT");
	return 0;
}

/* The request's outcome: the reply printed by PRINT (or as is), the daemon's error as
 * this command's failure. */
static int run(struct dargs *a, const char *root, const char *req, bool start,
	       int (*print)(struct dargs *a, char *reply))
{
	int st;
	char *reply;
	if (docker_request(a->cmd, root, req, start, &st, &reply))
		return 1;
	int r = 0;
	if (st) {
		/* one message line: a tool's output quoted in it is joined */
		size_t n = strlen(reply);
		while (n && reply[n - 1] == '\n')
			reply[--n] = 0;
		for (char *c = reply; *c; c++)
			if (*c == '\n')
				*c = ' ';
		r = cli_fail(a->cmd, "%s", *reply ? reply : strerror(-st));
	} else if (print) {
		r = print(a, reply);
	} else if (*reply) {
		fputs(reply, stdout);
		if (reply[strlen(reply) - 1] != '\n')
			putchar('\n');
	}
	free(reply);
	return r;
}

/* S's characters escaped for a JSON string, without the quotes */
static void json_chars(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
}

static void json_str(const char *s)
{
	putchar('"');
	json_chars(s);
	putchar('"');
}

/* A device row of the protocol: HASH ID SIZE TXN INIT DELETED MOUNTS NAME. */
struct row {
	char *f[8];
};

static int split_row(char *line, struct row *r)
{
	int n = 0;
	for (char *s = line; n < 8; n++) {
		r->f[n] = s;
		char *t = strchr(s, '\t');
		if (!t) {
			n++;
			break;
		}
		*t = 0;
		s = t + 1;
	}
	return n == 8 ? 0 : -1;
}

static const char *shown_id(const char *h) { return strcmp(h, "-") ? h : "base"; }

static void print_row_json(const struct row *r)
{
	printf("{\"id\": ");
	json_str(shown_id(r->f[0]));
	printf(", \"DeviceId\": %s, \"DeviceSize\": %s, \"DeviceName\": ", r->f[1], r->f[2]);
	json_str(r->f[7]);
	printf(", \"transaction_id\": %s, \"initialized\": %s, \"deleted\": %s, \"mounts\": %s}",
	       r->f[3], strcmp(r->f[4], "1") ? "false" : "true",
	       strcmp(r->f[5], "1") ? "false" : "true", r->f[6]);
}

static int print_ls(struct dargs *a, char *reply)
{
	if (a->json)
		printf("{\"devices\": [");
	int n = 0;
	for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
		struct row r;
		if (split_row(line, &r))
			return cli_fail(a->cmd, "unexpected reply line '%s'", line);
		if (a->json) {
			printf("%s", n++ ? ", " : "");
			print_row_json(&r);
		} else {
			printf("%s\n", shown_id(r.f[0]));
		}
	}
	if (a->json)
		printf("]}\n");
	return 0;
}

static int print_device(struct dargs *a, char *reply)
{
	struct row r;
	reply[strcspn(reply, "\n")] = 0;
	if (split_row(reply, &r))
		return cli_fail(a->cmd, "unexpected reply '%s'", reply);
	if (a->json) {
		print_row_json(&r);
		putchar('\n');
		return 0;
	}
	printf("Id: %s\nDeviceId: %s\nDeviceSize: %s\nDeviceName: %s\nTransactionId: %s\n"
	       "Initialized: %s\nDeleted: %s\nMounts: %s\n",
	       shown_id(r.f[0]), r.f[1], r.f[2], r.f[7], r.f[3], strcmp(r.f[4], "1") ? "false" : "true",
	       strcmp(r.f[5], "1") ? "false" : "true", r.f[6]);
	return 0;
}

static int print_info(struct dargs *a, char *reply)
{
	char *warning[4];
	int n = 0, nw = 0;
	if (a->json)
		printf("{\"Driver\": \"devicemapper\", \"DriverStatus\": [");
	else
		printf(a->old_format ? "Storage Driver: devicemapper\n" : " Storage Driver: devicemapper\n");
	for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strchr(line, '\t');
		if (!tab)
			return cli_fail(a->cmd, "unexpected reply line '%s'", line);
		*tab = 0;
		if (!strcmp(line, "WARNING")) {
			if (nw < 4)
				warning[nw++] = tab + 1;
			continue;
		}
		if (a->json) {
			printf("%s[", n++ ? ", " : "");
			json_str(line);
			printf(", ");
			json_str(tab + 1);
			printf("]");
		} else {
			printf("%s%s: %s\n", a->old_format ? " " : "  ", line, tab + 1);
		}
	}
	if (a->json) {
		/* Docker's Warnings list holds the warning as one string */
		printf("], \"Warnings\": [");
		if (nw)
			putchar('"');
		for (int i = 0; i < nw; i++) {
			if (i)
				printf("\\n");
			json_chars(warning[i]);
		}
		printf("%s]}\n", nw ? "\"" : "");
	} else if (nw) {
		/* docker prints its warnings on stderr, after the block */
		fflush(stdout);
		for (int i = 0; i < nw; i++) {
			cli_err_text(warning[i]);
			cli_err_text("\n");
		}
	}
	return 0;
}

/* The stats reply: NAME OPS REQUESTED DATA_READ DATA_WRITTEN DATA_ZEROED META_READ
 * META_WRITTEN per line. */
static int print_stats(struct dargs *a, char *reply)
{
	static const char *const keys[] = {"ops", "bytes_requested", "data_bytes_read",
					   "data_bytes_written", "data_bytes_zeroed",
					   "meta_bytes_read", "meta_bytes_written"};
	if (a->json)
		printf("{\"classes\": {");
	else
		printf("%-22s %10s %14s %14s %14s %14s %14s %14s\n", "class", "ops", "requested",
		       "data_read", "data_written", "data_zeroed", "meta_read", "meta_written");
	int n = 0;
	for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
		char *f[8];
		int nf = 0;
		for (char *s = line, *t; nf < 8; s = t + 1) {
			f[nf++] = s;
			if (!(t = strchr(s, '\t')))
				break;
			*t = 0;
		}
		if (nf != 8)
			return cli_fail(a->cmd, "unexpected reply line '%s'", line);
		if (a->json) {
			printf("%s", n++ ? ", " : "");
			json_str(f[0]);
			printf(": {");
			for (int i = 0; i < 7; i++)
				printf("%s\"%s\": %s", i ? ", " : "", keys[i], f[i + 1]);
			printf("}");
		} else {
			printf("%-22s %10s %14s %14s %14s %14s %14s %14s\n", f[0], f[1], f[2], f[3], f[4],
			       f[5], f[6], f[7]);
		}
	}
	if (a->json)
		printf("}}\n");
	return 0;
}

static int exists_print(struct dargs *a, char *reply)
{
	(void)a;
	reply[strcspn(reply, "\n")] = 0;
	printf("%s\n", reply);
	return strcmp(reply, "true") ? 1 : 0;
}

/* ---- subcommands ---- */

static const char init_usage[] =
        "usage: thinp docker init ROOT [--storage-opt dm.NAME=VALUE]... [--backend user|kernel]\n"
        "Docker's driver Init: ROOT/devicemapper/{data,metadata} (sparse, dm.loopdatasize /\n"
        "dm.loopmetadatasize), ROOT/metadata, the base device made with dm.fs (mkfs.ext4 or\n"
        "mkfs.xfs) at dm.basesize, or checked (UUID) and grown when dm.basesize grew. The\n"
        "options are recorded in ROOT/thinbench/options for every later command (Docker takes\n"
        "them at each daemon start: init again to change them). Options and their Docker\n"
        "defaults: dm.basesize (10G), dm.fs (xfs if available, else ext4), dm.mkfsarg,\n"
        "dm.mountopt, dm.blocksize (64k), dm.loopdatasize (100G), dm.loopmetadatasize (2G),\n"
        "dm.min_free_space (10%), dm.use_deferred_removal, dm.use_deferred_deletion,\n"
        "dm.blkdiscard (true), dm.override_udev_sync_check, dm.thinpooldev (kernel),\n"
        "dm.no_warn_on_loop_devices (thinbench's own).\n";

static int d_init(int argc, char **argv, struct dargs *a)
{
	const char *pos[1];
	int r = parse(argc, argv, a, init_usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	struct tg_options o;
	char err[512];
	tg_options_default(&o);
	for (int i = 0; i < a->nr_opts; i++)
		if (tg_options_parse(&o, a->opts[i], err, sizeof(err)))
			return cli_usage(a->cmd, "--storage-opt %s: %s", a->opts[i], err);
	if (tg_options_finish(&o, err, sizeof(err)))
		return cli_usage(a->cmd, "%s", err);
	if (docker_daemon_running(pos[0]))
		return cli_fail(a->cmd, "a daemon holds %s: 'thinp docker cleanup %s' first (options "
					"apply when the driver starts)", pos[0], pos[0]);
	/* a failed init leaves the home as it was: a new ROOT removed, an existing one with
	 * the options it had (Docker's daemon just does not start with bad options) */
	bool existed = access(pos[0], F_OK) == 0;
	char *old = docker_options_snapshot(pos[0]);
	r = docker_save_options(a->cmd, pos[0], a->opts, a->nr_opts, a->backend);
	if (!r)
		r = run(a, pos[0], "info", false, print_info);
	if (r)
		docker_undo_init(pos[0], old, existed);
	free(old);
	return r;
}

static const char daemon_usage[] =
        "usage: thinp docker daemon ROOT [--foreground]\n"
        "Starts the process that holds ROOT's pool and serves its mounts (Docker's daemon\n"
        "role) on ROOT/thinbench/driver.sock; detached (log: ROOT/thinbench/daemon.log,\n"
        "pid: ROOT/thinbench/daemon.pid) unless --foreground, which prints 'ready' and serves\n"
        "until SIGINT/SIGTERM. `get` starts one when none runs; `cleanup` stops it.\n";

static int d_daemon(int argc, char **argv, struct dargs *a)
{
	const char *pos[1];
	int r = parse(argc, argv, a, daemon_usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	return docker_daemon(a->cmd, pos[0], a->foreground);
}

static const char create_usage[] =
        "usage: thinp docker create ROOT ID [--parent PARENT] [--size BYTES]\n"
        "A layer or container ID as a thin snapshot of PARENT (default: the base device),\n"
        "inside Docker's transaction protocol. --size (k/m/g/t) grows it beyond the parent's\n"
        "size (its file system too). Refused below dm.min_free_space.\n";

static int d_create(int argc, char **argv, struct dargs *a)
{
	const char *pos[2];
	int r = parse(argc, argv, a, create_usage, 2, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	char req[TG_REQUEST_MAX + 64], err[256];
	if (tg_meta_check_hash(pos[1], err, sizeof(err)))
		return cli_usage(a->cmd, "%s", err);
	const char *parent = a->parent && *a->parent && strcmp(a->parent, "base") ? a->parent : "-";
	if (strcmp(parent, "-") && tg_meta_check_hash(parent, err, sizeof(err)))
		return cli_usage(a->cmd, "--parent: %s", err);
	snprintf(req, sizeof(req), "create %s %s %" PRIu64, pos[1], parent, a->size);
	return run(a, pos[0], req, false, NULL);
}

static int simple(int argc, char **argv, struct dargs *a, const char *usage, const char *verb,
		  bool start, int (*print)(struct dargs *, char *))
{
	const char *pos[2];
	int r = parse(argc, argv, a, usage, 2, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	char req[TG_REQUEST_MAX + 64], err[256];
	if (strcmp(pos[1], "base") && tg_meta_check_hash(pos[1], err, sizeof(err)))
		return cli_usage(a->cmd, "%s", err);
	snprintf(req, sizeof(req), "%s %s", verb, strcmp(pos[1], "base") ? pos[1] : "-");
	return run(a, pos[0], req, start, print);
}

static const char remove_usage[] =
        "usage: thinp docker remove ROOT ID\n"
        "Docker's Remove: discards (dm.blkdiscard) and deletes the device in a transaction. An\n"
        "unknown ID succeeds. A device still open is marked deleted when\n"
        "dm.use_deferred_deletion is on, and deleted by a later pass (prune, or the daemon's\n"
        "worker every 30 s).\n";
static const char get_usage[] =
        "usage: thinp docker get ROOT ID\n"
        "Docker's Get: activates and mounts ID on ROOT/mnt/ID and prints ROOT/mnt/ID/rootfs.\n"
        "The mount outlives the command: the daemon holds it (started if none runs).\n";
static const char put_usage[] =
        "usage: thinp docker put ROOT ID\n"
        "Docker's Put: the last put of a device unmounts and deactivates it.\n";
static const char exists_usage[] =
        "usage: thinp docker exists ROOT ID\n"
        "Prints true (exit 0) or false (exit 1); true for a device marked deleted, as Docker.\n";
static const char device_usage[] =
        "usage: thinp docker device ROOT ID [--format text|json]\n"
        "One device: Docker's GetMetadata (DeviceId, DeviceSize, DeviceName) and its record.\n";

static int d_remove(int c, char **v, struct dargs *a)
{
	return simple(c, v, a, remove_usage, "remove", false, NULL);
}
static int d_get(int c, char **v, struct dargs *a)
{
	return simple(c, v, a, get_usage, "get", true, NULL);
}
static int d_put(int c, char **v, struct dargs *a)
{
	return simple(c, v, a, put_usage, "put", false, NULL);
}
static int d_exists(int c, char **v, struct dargs *a)
{
	return simple(c, v, a, exists_usage, "exists", false, exists_print);
}
static int d_device(int c, char **v, struct dargs *a)
{
	return simple(c, v, a, device_usage, "device", false, print_device);
}

static int root_only(int argc, char **argv, struct dargs *a, const char *usage, const char *req,
		     int (*print)(struct dargs *, char *))
{
	const char *pos[1];
	int r = parse(argc, argv, a, usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	return run(a, pos[0], req, false, print);
}

static const char ls_usage[] =
        "usage: thinp docker ls ROOT [--format text|json]\n"
        "Every device, sorted (the base device as 'base'); json adds each one's record.\n";
static const char info_usage[] =
        "usage: thinp docker info ROOT [--format text|json] [--old-format]\n"
        "The devicemapper block of `docker info`, in Docker's order and wording; sizes as\n"
        "Docker prints them (65.54kB); --old-format as Docker 1.12 did (65.54 kB, its order).\n"
        "json: {\"Driver\", \"DriverStatus\": [[KEY, VALUE], ...], \"Warnings\"}.\n";
static const char prune_usage[] =
        "usage: thinp docker prune ROOT\n"
        "One pass of Docker's deferred-deletion worker: retries every device marked deleted,\n"
        "prints how many were deleted.\n";
static const char cleanup_usage[] =
        "usage: thinp docker cleanup ROOT\n"
        "Docker's Cleanup: unmounts every device, deactivates them, closes the pool and stops\n"
        "the daemon (after a killed daemon: unmounts what it left behind).\n";

static int d_ls(int c, char **v, struct dargs *a)
{
	return root_only(c, v, a, ls_usage, "ls", print_ls);
}
static int d_info(int c, char **v, struct dargs *a)
{
	const char *pos[1];
	int r = parse(c, v, a, info_usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	return run(a, pos[0], a->old_format ? "info spaced" : "info", false, print_info);
}
static const char stats_usage[] =
        "usage: thinp docker stats ROOT [--reset] [--format text|json]\n"
        "The pool's IO counters per outcome class (write_provision, write_cow, ...: what the\n"
        "mounted file systems made the pool do) since the daemon opened it or the last\n"
        "--reset, which zeroes them after printing. Bytes are exact: data read, written and\n"
        "zeroed on the data file, metadata read and written.\n";

static int d_stats(int c, char **v, struct dargs *a)
{
	const char *pos[1];
	int r = parse(c, v, a, stats_usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	return run(a, pos[0], a->reset ? "stats reset" : "stats", false, print_stats);
}
static int d_prune(int c, char **v, struct dargs *a)
{
	return root_only(c, v, a, prune_usage, "prune", NULL);
}
static int d_cleanup(int c, char **v, struct dargs *a)
{
	return root_only(c, v, a, cleanup_usage, "shutdown", NULL);
}

static const char resize_usage[] =
        "usage: thinp docker resize ROOT SIZE\n"
        "Grows the pool's data file to SIZE as Docker's `device_tool resize` (the seed's\n"
        "loop-lvm procedure): SIZE is an integer with an optional unit k, kb, m, mb, g, gb, t,\n"
        "tb (binary: 200GB = 200 GiB). Mounted devices keep working.\n";

/* device_tool's sizes: binary units, "GB" included */
static int tool_size(const char *cmd, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || *s == '-' || errno)
		return cli_usage(cmd, "Invalid size: '%s'", s);
	static const char *units[] = {"", "k", "kb", "m", "mb", "g", "gb", "t", "tb"};
	static const unsigned shift[] = {0, 10, 10, 20, 20, 30, 30, 40, 40};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcasecmp(end, units[i])) {
			if (v > (UINT64_MAX >> shift[i]))
				return cli_usage(cmd, "Invalid size: '%s' is too large", s);
			*out = (uint64_t)v << shift[i];
			return 0;
		}
	return cli_usage(cmd, "Invalid size: Unknown size unit: %s", end);
}

static int d_resize(int argc, char **argv, struct dargs *a)
{
	const char *pos[2];
	int r = parse(argc, argv, a, resize_usage, 2, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	uint64_t bytes = 0;
	if (tool_size(a->cmd, pos[1], &bytes))
		return 2;
	char req[64];
	snprintf(req, sizeof(req), "resize %" PRIu64, bytes);
	return run(a, pos[0], req, false, NULL);
}

int cmd_docker(int argc, char **argv, const struct cli_global *g)
{
	static const struct {
		const char *name, *cmd;
		int (*run)(int argc, char **argv, struct dargs *a);
	} subs[] = {
		{ "init", "docker init", d_init },       { "daemon", "docker daemon", d_daemon },
		{ "create", "docker create", d_create }, { "remove", "docker remove", d_remove },
		{ "get", "docker get", d_get },          { "put", "docker put", d_put },
		{ "exists", "docker exists", d_exists }, { "ls", "docker ls", d_ls },
		{ "info", "docker info", d_info },       { "device", "docker device", d_device },
		{ "prune", "docker prune", d_prune },    { "resize", "docker resize", d_resize },
		{ "stats", "docker stats", d_stats },    { "cleanup", "docker cleanup", d_cleanup },
	};
	if (argc < 2)
		return cli_usage("docker", "missing subcommand (init, daemon, create, remove, get, "
					   "put, exists, ls, info, device, prune, resize, stats or cleanup)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(docker_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("thinp %s\n", THINP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name)) {
			struct dargs a = { .cmd = subs[i].cmd,
					   .backend = g->backend == CLI_BACKEND_KERNEL
							      ? TG_BACKEND_KERNEL
							      : TG_BACKEND_LIB };
			return subs[i].run(argc - 1, argv + 1, &a);
		}
	return cli_usage("docker", "unknown docker subcommand '%s'", argv[1]);
}
