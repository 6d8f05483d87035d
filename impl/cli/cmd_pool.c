/* thinp pool / thin / write / read / discard / set-transaction-id /
 * metadata-snap: each opens the pool, acts, commits and closes, like one
 * dmsetup message or one IO against the kernel's pool.
 *
 * With --backend kernel (before or after the subcommand) the same commands drive
 * the kernel's dm-thin through libdevmapper (impl/dm/): the pool is a
 * device-mapper device /dev/mapper/NAME, named on the command line either as
 * NAME (direct: `pool create NAME --data DEV --metadata DEV`) or as a loop-lvm
 * directory DIR (DIR/data and DIR/metadata attached to loop devices, Docker's
 * loop-lvm; DIR/kernel.json remembers the pool's name, DIR/table its features).
 * The kernel-only subcommands `pool activate|remove` and `thin activate|remove`
 * are notes that do nothing for the userspace backend, which has no devices. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dm/dm_backend.h"
#include "io/dev.h"

#define IO_CHUNK (1u << 20)

static int close_pool(struct thinp_pool *p, int rc)
{
	int r = thinp_pool_close(p);
	if (r && !rc) {
		fprintf(stderr, "thinp: committing the pool failed: %s\n", strerror(-r));
		return 1;
	}
	return rc;
}

/* Collect positional args and pool options; returns 0, or an exit code. */
static int parse(int argc, char **argv, int first, struct cli_pool_args *a, const char **pos,
                 int max_pos, int *nr_pos, const char *usage)
{
	*nr_pos = 0;
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("%s", usage);
			return -1;
		}
		int r = cli_pool_option(argc, argv, &i, a);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "thinp: unknown option '%s'\n%s", argv[i], usage);
			return 2;
		}
		if (*nr_pos == max_pos) {
			fprintf(stderr, "thinp: unexpected argument '%s'\n%s", argv[i], usage);
			return 2;
		}
		pos[(*nr_pos)++] = argv[i];
	}
	return 0;
}

/* With --data/--metadata the first positional is not a directory. */
static int take_dir(struct cli_pool_args *a, const char **pos, int *nr, int need, const char *usage)
{
	if (!a->data && !a->metadata) {
		if (*nr < 1) {
			fprintf(stderr, "thinp: missing pool directory\n%s", usage);
			return 2;
		}
		a->dir = pos[0];
		memmove(pos, pos + 1, (size_t)(*nr - 1) * sizeof(*pos));
		(*nr)--;
	} else if (!a->data || !a->metadata) {
		fprintf(stderr, "thinp: --data and --metadata go together\n");
		return 2;
	}
	if (*nr != need) {
		fprintf(stderr, "thinp: expected %d argument%s after the pool\n%s", need,
		        need == 1 ? "" : "s", usage);
		return 2;
	}
	return 0;
}

static int report(struct thinp_pool *p, int r, const char *what)
{
	if (!r)
		return 0;
	fprintf(stderr, "thinp: %s: %s\n", what,
	        *thinp_pool_error(p) ? thinp_pool_error(p) : strerror(-r));
	return 1;
}

/* ---- kernel backend helpers (--backend kernel) ---- */

#define THIN_SB_MAGIC 27022010ull /* thin-pool superblock magic, at byte 32 */

static int kfail(const struct tdm_ctx *c)
{
	fprintf(stderr, "thinp: %s\n", c->msg);
	return 1;
}

/* The kernel must have device-mapper: prints TDM_NO_DM_MESSAGE (exit 1) otherwise. */
static int k_ready(struct tdm_ctx *c, const struct cli_pool_args *a)
{
	memset(c, 0, sizeof(*c));
	c->verbose = a->verbose;
	return tdm_available(c) ? kfail(c) : 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* A kernel pool named on the command line: a loop-lvm DIR (its device-mapper name read
 * from DIR/kernel.json) or a device-mapper NAME. Returns 0 or an exit code. */
struct kpool {
	char name[TDM_NAME_MAX];
	const char *dir;
};

static int k_resolve(struct tdm_ctx *c, const char *arg, struct kpool *kp)
{
	kp->dir = NULL;
	if (is_dir(arg)) {
		kp->dir = arg;
		return tdm_dir_name(c, arg, kp->name, sizeof(kp->name)) ? kfail(c) : 0;
	}
	if (!tdm_valid_name(arg)) {
		fprintf(stderr,
		        "thinp: '%s' is neither a pool directory nor a device-mapper name "
		        "(1-127 of A-Z a-z 0-9 . _ + : @ -)\n",
		        arg);
		return 2;
	}
	snprintf(kp->name, sizeof(kp->name), "%s", arg);
	return 0;
}

/* Every kernel command on an existing pool starts here. Returns 0 or an exit code. */
static int k_open_pool(struct tdm_ctx *c, const struct cli_pool_args *a, const char *arg,
                       struct kpool *kp)
{
	if (k_ready(c, a))
		return 1;
	return k_resolve(c, arg, kp);
}

/* The first 4 KiB of PATH (O_DIRECT where possible: a block device's page cache may be
 * stale next to the kernel's dm-bufio). Returns 0 or -errno. */
static int sb_io(const char *path, bool zero, uint8_t *sb)
{
	/* O_EXCL on a block device fails with EBUSY while a dm table (or a mount) holds it */
	int fl = zero ? O_RDWR | O_EXCL : O_RDONLY;
	int fd = open(path, fl | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, fl | O_CLOEXEC); /* e.g. tmpfs */
	if (fd < 0)
		return -errno;
	void *buf;
	if (posix_memalign(&buf, 4096, 4096)) {
		close(fd);
		return -ENOMEM;
	}
	memset(buf, 0, 4096);
	ssize_t n = zero ? pwrite(fd, buf, 4096, 0) : pread(fd, buf, 4096, 0);
	int r = n == 4096 ? 0 : n < 0 ? -errno : -EIO;
	if (!r && zero && fsync(fd))
		r = -errno;
	if (!r && sb)
		memcpy(sb, buf, 4096);
	free(buf);
	close(fd);
	return r;
}

/* 1 if PATH holds a thin-pool superblock, 0 if not, -errno if unreadable. */
static int holds_pool(const char *path)
{
	uint8_t sb[4096];
	int r = sb_io(path, false, sb);
	if (r)
		return r == -EIO ? 0 : r; /* shorter than a superblock: no pool */
	uint64_t magic;
	memcpy(&magic, sb + 32, 8);
	return magic == THIN_SB_MAGIC;
}

/* Grow a pool file to SIZE bytes (never shrinks). */
static int grow_file(const char *path, uint64_t size)
{
	struct stat st;
	if (stat(path, &st)) {
		fprintf(stderr, "thinp: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if ((uint64_t)st.st_size > size) {
		fprintf(stderr, "thinp: %s is %llu bytes: a pool cannot shrink to %llu\n", path,
		        (unsigned long long)st.st_size, (unsigned long long)size);
		return 1;
	}
	if ((uint64_t)st.st_size < size && truncate(path, (off_t)size)) {
		fprintf(stderr, "thinp: cannot grow %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

/* pool create / activate with the kernel backend.
 *   direct:   ARG is the NAME, --data/--metadata are block devices;
 *   loop-lvm: ARG is a DIR; DIR/data and DIR/metadata (created sparse by `create`) are
 *             attached to autoclear loop devices, which detach when the pool goes.
 * CREATE formats (the kernel formats an all-zero superblock: it is zeroed first), refusing
 * an existing pool without FORCE; activate requires one. */
static int k_pool_up(struct cli_pool_args *a, const char *arg, uint64_t data_size,
                     uint64_t meta_size, bool force, bool create)
{
	struct tdm_ctx c;
	if (k_ready(&c, a))
		return 1;
	const bool direct = a->data || a->metadata;
	if (direct && (!a->data || !a->metadata)) {
		fprintf(stderr, "thinp: --data and --metadata go together\n");
		return 2;
	}
	char name[TDM_NAME_MAX], data[PATH_MAX], meta[PATH_MAX];
	const char *dir = direct ? NULL : arg;
	if (direct) {
		if (a->name) {
			fprintf(stderr,
			        "thinp: with --data/--metadata the pool's name is '%s': "
			        "--name is for a pool directory\n",
			        arg);
			return 2;
		}
		if (!tdm_valid_name(arg)) {
			fprintf(stderr,
			        "thinp: invalid pool name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -\n",
			        arg);
			return 2;
		}
		snprintf(name, sizeof(name), "%s", arg);
		snprintf(data, sizeof(data), "%s", a->data);
		snprintf(meta, sizeof(meta), "%s", a->metadata);
	} else {
		if (create && mkdir(dir, 0755) && errno != EEXIST) {
			fprintf(stderr, "thinp: cannot create directory %s: %s\n", dir,
			        strerror(errno));
			return 1;
		}
		struct stat st;
		if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "thinp: %s is not a pool directory%s\n", dir,
			        create ?
			                "" :
			                " (name a directory, or a pool with --data and --metadata)");
			return create ? 1 : 2;
		}
		snprintf(data, sizeof(data), "%s/data", dir);
		snprintf(meta, sizeof(meta), "%s/metadata", dir);
		if (!create)
			cli_load_table(dir, a);
		/* the name: --name, else the one remembered, else Docker's pattern
		 * (docker-<maj>:<min>-<inode>-pool of the graph root) */
		struct tdm_ctx q = c;
		char known[TDM_NAME_MAX];
		struct tdm_info ki;
		if (!tdm_dir_name(&q, dir, known, sizeof(known)) && !tdm_info(&q, known, &ki) &&
		    ki.exists) {
			fprintf(stderr, "thinp: %s is active on the kernel as /dev/mapper/%s%s\n",
			        dir, known,
			        create ? ": remove it first (thinp --backend kernel pool remove)" :
			                 "");
			return 1;
		}
		if (a->name)
			snprintf(name, sizeof(name), "%s", a->name);
		else if (tdm_dir_name(&q, dir, name, sizeof(name)))
			snprintf(name, sizeof(name), "thinp-%u:%u-%llu-pool", major(st.st_dev),
			         minor(st.st_dev), (unsigned long long)st.st_ino);
		if (!tdm_valid_name(name)) {
			fprintf(stderr,
			        "thinp: invalid pool name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -\n",
			        name);
			return 2;
		}
	}
	if (direct) { /* block devices only (before anything is written to them) */
		uint64_t sec;
		for (int i = 0; i < 2; i++)
			if (tdm_blockdev_sectors(&c, i ? meta : data, 0, 0, &sec)) {
				fprintf(stderr, "thinp: %s%s\n", c.msg,
				        c.err == ENOTBLK ? " (for files, name a pool directory: "
				                           "loop-lvm)" :
				                           "");
				return 1;
			}
	}
	struct tdm_info info;
	if (tdm_info(&c, name, &info))
		return kfail(&c);
	if (info.exists) {
		fprintf(stderr, "thinp: /dev/mapper/%s already exists%s\n", name,
		        create ? ": remove it first (thinp --backend kernel pool remove)" :
		                 ": already active");
		return 1;
	}
	if (!direct && create) { /* sparse files, grown (never shrunk) to the sizes asked */
		for (int i = 0; i < 2; i++) {
			const char *path = i ? meta : data;
			uint64_t size = i ? meta_size : data_size;
			struct tp_dev *d;
			int r = tp_dev_open(path, TP_DEV_CREATE, size, &d);
			if (r) {
				fprintf(stderr, "thinp: cannot create %s: %s\n", path,
				        strerror(-r));
				return 1;
			}
			tp_dev_close(d);
		}
	}
	int held = holds_pool(meta);
	if (held < 0) {
		fprintf(stderr, "thinp: cannot read metadata device %s: %s\n", meta,
		        strerror(-held));
		return 1;
	}
	if (create && held && !force) {
		fprintf(stderr,
		        "thinp: %s already holds a thin pool: refusing to overwrite it (use --force to "
		        "destroy it, or `pool activate` to use it)\n",
		        meta);
		return 1;
	}
	if (!create && !held) {
		fprintf(stderr, "thinp: %s holds no thin pool: create one with `pool create`\n",
		        meta);
		return 1;
	}
	if (!direct && create) {
		int r = grow_file(data, data_size);
		if (!r)
			r = grow_file(meta, meta_size);
		if (r)
			return r;
	}
	if (create) {
		int r = sb_io(meta, true, NULL);
		if (r) {
			fprintf(stderr, "thinp: cannot clear the metadata superblock of %s: %s\n",
			        meta, strerror(-r));
			return 1;
		}
	}
	/* loop-lvm: attach the files; our descriptors keep the loops until the pool holds them */
	char lo_data[64] = "", lo_meta[64] = "";
	int fd_data = -1, fd_meta = -1, rc = 0;
	const char *mdev = meta, *ddev = data;
	if (!direct) {
		if (tdm_loop_attach(&c, meta, lo_meta, sizeof(lo_meta), &fd_meta) ||
		    tdm_loop_attach(&c, data, lo_data, sizeof(lo_data), &fd_data)) {
			rc = kfail(&c);
			goto out;
		}
		mdev = lo_meta;
		ddev = lo_data;
	}
	uint64_t sectors;
	if (tdm_blockdev_sectors(&c, ddev, 0, 0, &sectors)) {
		rc = kfail(&c);
		goto out;
	}
	if (tdm_pool_create(&c, name, mdev, ddev, sectors, &a->opts)) {
		rc = kfail(&c);
		goto out;
	}
	if (dir) {
		int r = cli_save_table(dir, &a->opts);
		if (r)
			fprintf(stderr, "thinp: warning: cannot save %s/table: %s\n", dir,
			        strerror(-r));
		if (tdm_dir_save(&c, dir, name, lo_data, lo_meta)) {
			/* without kernel.json the directory cannot name its pool again */
			struct tdm_ctx rm = c;
			(void)tdm_remove(&rm, name, 0);
			rc = kfail(&c);
			goto out;
		}
	}
	printf("/dev/mapper/%s\n", name);
out:
	if (fd_data >= 0)
		close(fd_data);
	if (fd_meta >= 0)
		close(fd_meta);
	return rc;
}

/* pool remove: deactivate (loop-lvm loops detach themselves). */
static int k_pool_remove(struct cli_pool_args *a, const char *arg)
{
	struct tdm_ctx c;
	struct kpool kp;
	int r = k_open_pool(&c, a, arg, &kp);
	if (r)
		return r;
	if (!tdm_remove(&c, kp.name, a->deferred ? TDM_REMOVE_DEFERRED : 0))
		return 0;
	struct tdm_ctx e = c;
	char names[8][TDM_NAME_MAX];
	int nr = 0;
	if (c.err == EBUSY && !tdm_pool_thins(&e, kp.name, names, 8, &nr) && nr) {
		fprintf(stderr, "thinp: %s; its thin devices still active:", c.msg);
		for (int i = 0; i < nr && i < 8; i++)
			fprintf(stderr, " %s", names[i]);
		fprintf(stderr, "%s (thinp --backend kernel thin remove)\n", nr > 8 ? " ..." : "");
		return 1;
	}
	return kfail(&c);
}

static int k_pool_status(struct cli_pool_args *a, const char *arg)
{
	struct tdm_ctx c;
	struct kpool kp;
	int r = k_open_pool(&c, a, arg, &kp);
	if (r)
		return r;
	struct thinp_pool_status st;
	char line[512];
	if (tdm_pool_status(&c, kp.name, a->noflush, &st, line, sizeof(line)))
		return kfail(&c);
	if (a->fields)
		cli_print_pool_fields(&st);
	else
		printf("%s\n", line);
	return 0;
}

/* The loop device behind MAJ:MIN must be backed by FILE (a pool directory's file). */
static int k_loop_of(struct tdm_ctx *c, uint32_t maj, uint32_t min, const char *file, char *dev,
                     size_t len)
{
	char backing[PATH_MAX], real[PATH_MAX];
	if (tdm_loop_lookup(c, maj, min, dev, len, backing, sizeof(backing)))
		return kfail(c);
	if (!realpath(file, real) || strcmp(real, backing)) {
		fprintf(stderr, "thinp: the pool's device %u:%u (%s) is backed by %s, not %s\n",
		        maj, min, dev, backing, file);
		return 1;
	}
	return 0;
}

/* pool extend: grow the data (and/or metadata) device, then suspend/reload/resume.
 *   loop-lvm DIR: the files grow, then `losetup -c` (LOOP_SET_CAPACITY) on their loops;
 *                 without sizes, the loops just pick up files grown by other means;
 *   direct NAME:  the devices must already be big enough (lvextend); without
 *                 --data-size the pool takes the whole data device. */
static int k_pool_extend(struct cli_pool_args *a, const char *arg, uint64_t data_size,
                         uint64_t meta_size)
{
	struct tdm_ctx c;
	struct kpool kp;
	int r = k_open_pool(&c, a, arg, &kp);
	if (r)
		return r;
	struct tdm_pool_table t;
	if (tdm_pool_table(&c, kp.name, &t))
		return kfail(&c);
	uint64_t dsec, msec;
	if (kp.dir) {
		char data[PATH_MAX], meta[PATH_MAX], lo_data[64], lo_meta[64];
		snprintf(data, sizeof(data), "%s/data", kp.dir);
		snprintf(meta, sizeof(meta), "%s/metadata", kp.dir);
		if ((r = k_loop_of(&c, t.data_major, t.data_minor, data, lo_data,
		                   sizeof(lo_data))) ||
		    (r = k_loop_of(&c, t.meta_major, t.meta_minor, meta, lo_meta, sizeof(lo_meta))))
			return r;
		if ((data_size && (r = grow_file(data, data_size))) ||
		    (meta_size && (r = grow_file(meta, meta_size))))
			return r;
		if (tdm_loop_set_capacity(&c, lo_data) || tdm_loop_set_capacity(&c, lo_meta))
			return kfail(&c);
	}
	if (tdm_blockdev_sectors(&c, NULL, t.data_major, t.data_minor, &dsec) ||
	    tdm_blockdev_sectors(&c, NULL, t.meta_major, t.meta_minor, &msec))
		return kfail(&c);
	if (data_size && dsec < data_size / 512) {
		fprintf(stderr,
		        "thinp: the data device %s is only %llu bytes: grow it first (e.g. lvextend)\n",
		        t.data_dev, (unsigned long long)dsec * 512);
		return 1;
	}
	if (meta_size && msec < meta_size / 512) {
		fprintf(stderr,
		        "thinp: the metadata device %s is only %llu bytes: grow it first (e.g. lvextend)\n",
		        t.meta_dev, (unsigned long long)msec * 512);
		return 1;
	}
	uint64_t want = data_size && !kp.dir ? data_size / 512 : dsec;
	if (want < t.data_sectors) {
		fprintf(stderr, "thinp: the pool has %llu data sectors: it cannot shrink to %llu\n",
		        (unsigned long long)t.data_sectors, (unsigned long long)want);
		return 1;
	}
	return tdm_pool_grow(&c, kp.name, want) ? kfail(&c) : 0;
}

/* The default name of an activated thin: the pool's name without a trailing "-pool",
 * then "-ID" (Docker names its devices docker-<maj>:<min>-<inode>-<hash>). */
static void k_thin_name(const char *pool, uint64_t id, char *out, size_t len)
{
	size_t n = strlen(pool);
	if (n > 5 && !strcmp(pool + n - 5, "-pool"))
		n -= 5;
	snprintf(out, len, "%.*s-%llu", (int)n, pool, (unsigned long long)id);
}

/* thin create/snap/delete/status/activate/remove with the kernel backend. */
static int k_thin(struct cli_pool_args *a, const char *sub, const char *pool_arg, uint64_t id,
                  uint64_t origin, uint64_t size)
{
	struct tdm_ctx c;
	struct kpool kp;
	int r = k_open_pool(&c, a, pool_arg, &kp);
	if (r)
		return r;
	if (!strcmp(sub, "create"))
		return tdm_create_thin(&c, kp.name, id) ? kfail(&c) : 0;
	if (!strcmp(sub, "snap"))
		return tdm_create_snap(&c, kp.name, id, origin) ? kfail(&c) : 0;
	if (!strcmp(sub, "delete"))
		return tdm_delete_thin(&c, kp.name, id) ? kfail(&c) : 0;
	if (!strcmp(sub, "activate")) {
		char name[TDM_NAME_MAX];
		if (a->name)
			snprintf(name, sizeof(name), "%s", a->name);
		else
			k_thin_name(kp.name, id, name, sizeof(name));
		if (tdm_thin_activate(&c, kp.name, name, id, size / 512))
			return kfail(&c);
		printf("/dev/mapper/%s\n", name);
		return 0;
	}
	/* status / remove: the named device, else the active devices of this id */
	enum {
		MAX = 16
	};
	char names[MAX][TDM_NAME_MAX];
	int nr = 0;
	if (a->name) {
		snprintf(names[0], TDM_NAME_MAX, "%s", a->name);
		nr = 1;
	} else if (tdm_find_thins(&c, kp.name, id, names, MAX, &nr)) {
		return kfail(&c);
	}
	if (!nr) {
		fprintf(stderr,
		        "thinp: thin %s: thin device %llu of pool %s is not active%s (thinp --backend "
		        "kernel thin activate %s %llu SIZE)\n",
		        sub, (unsigned long long)id, kp.name,
		        !strcmp(sub, "status") ?
		                ": the kernel reports status only for active devices" :
		                "",
		        pool_arg, (unsigned long long)id);
		return 1;
	}
	if (!strcmp(sub, "status")) {
		struct thinp_thin_status st;
		char line[256];
		if (tdm_thin_status(&c, names[0], a->noflush, &st, line, sizeof(line)))
			return kfail(&c);
		if (a->fields)
			cli_print_thin_fields(&st);
		else
			printf("%s\n", line);
		return 0;
	}
	int rc = 0;
	for (int i = 0; i < nr && i < MAX; i++)
		if (tdm_remove(&c, names[i], a->deferred ? TDM_REMOVE_DEFERRED : 0))
			rc = kfail(&c);
	return rc;
}

static int user_backend_note(const char *what)
{
	fprintf(stderr,
	        "thinp: %s: nothing to do for the userspace backend (it has no device nodes: thin "
	        "devices are reached with thinp read/write/discard); --backend kernel does this "
	        "on the kernel\n",
	        what);
	return 0;
}

/* ---- pool create / status / extend ---- */

static const char pool_create_usage[] =
        "usage: thinp pool create DIR [--data-size 100G] [--metadata-size 2G] [--block-size 64k]\n"
        "         [--low-water BLOCKS] [--skip-block-zeroing] [--error-if-no-space]\n"
        "         [--ignore-discard] [--no-discard-passdown] [--force]\n"
        "       thinp pool create --data DEV --metadata DEV [options]\n"
        "       thinp --backend kernel pool create DIR [--name NAME] [options]\n"
        "       thinp --backend kernel pool create NAME --data DEV --metadata DEV [options]\n"
        "Creates DIR/data and DIR/metadata as sparse files (Docker's loop-lvm defaults:\n"
        "100G data, 2G metadata) and formats a pool. An existing pool is kept unless --force.\n"
        "Block devices given with --data/--metadata are used whole unless a size is given.\n"
        "With --backend kernel the pool is the kernel's dm-thin, activated as /dev/mapper/NAME\n"
        "(printed): a DIR's files are attached to loop devices (loop-lvm; the name defaults to\n"
        "thinp-<maj>:<min>-<inode>-pool and is kept in DIR/kernel.json), or NAME sits directly\n"
        "on the block devices DEV (direct-lvm). -v shows libdevmapper's log.\n";

static const char pool_activate_usage[] =
        "usage: thinp --backend kernel pool activate DIR | NAME --data DEV --metadata DEV [options]\n"
        "       thinp --backend kernel pool remove DIR|NAME [--deferred]\n"
        "Activates an existing pool on the kernel (features from DIR/table unless given), or\n"
        "deactivates it (a DIR's loop devices detach themselves). --deferred: remove when the\n"
        "last user closes it. The userspace backend has nothing to (de)activate.\n";

static bool is_block_device(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISBLK(st.st_mode);
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

struct created {
	const char *paths[2]; /* files this command created, or NULL */
};

static int undo_create(const struct created *c, int rc)
{
	for (int i = 0; i < 2; i++)
		if (c->paths[i] && unlink(c->paths[i]) && errno != ENOENT)
			fprintf(stderr, "thinp: cannot remove %s: %s\n", c->paths[i], strerror(errno));
	return rc;
}

/* Pull "--data-size N" / "--metadata-size N" (and --force when FORCE is
 * given) out of argv; the rest goes to parse(). Returns 0 or an exit code. */
static int take_sizes(int argc, char **argv, uint64_t *data_size, uint64_t *meta_size, bool *force,
                      char **rest, int *nrest)
{
	*nrest = 0;
	for (int i = 0; i < argc; i++) {
		if (i >= 2 && force && !strcmp(argv[i], "--force")) {
			*force = true;
			continue;
		}
		if (i >= 2 &&
		    (!strcmp(argv[i], "--data-size") || !strcmp(argv[i], "--metadata-size"))) {
			if (i + 1 >= argc) {
				fprintf(stderr, "thinp: %s needs a value\n", argv[i]);
				return 2;
			}
			bool d = argv[i][2] == 'd';
			if (cli_parse_size(d ? "data size" : "metadata size", argv[i + 1],
			                   d ? data_size : meta_size))
				return 2;
			i++;
			continue;
		}
		rest[(*nrest)++] = argv[i];
	}
	return 0;
}

static int pool_create(int argc, char **argv)
{
	struct cli_pool_args a = { 0 };
	uint64_t data_size = 0, meta_size = 0; /* 0: not given */
	const uint64_t data_default = 100ull << 30, meta_default = 2ull << 30; /* Docker's */
	bool force = false;
	const char *pos[2];
	int nr, nrest;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	int r = take_sizes(argc, argv, &data_size, &meta_size, &force, rest, &nrest);
	if (!r)
		r = parse(nrest, rest, 2, &a, pos, 1, &nr, pool_create_usage);
	free(rest);
	if (r)
		return r < 0 ? 0 : r;
	if (a.backend == CLI_BACKEND_KERNEL) {
		if (nr != 1) {
			fprintf(stderr, "thinp: expected the pool (DIR or NAME)\n%s",
			        pool_create_usage);
			return 2;
		}
		data_size = data_size ? data_size : data_default;
		meta_size = meta_size ? meta_size : meta_default;
		if (meta_size < 65536) {
			fprintf(stderr,
			        "thinp: invalid metadata size: at least 64k is needed (2M is the practical floor)\n");
			return 2;
		}
		return k_pool_up(&a, pos[0], data_size, meta_size, force, true);
	}
	if (take_dir(&a, pos, &nr, 0, pool_create_usage))
		return 2;
	if (meta_size && meta_size < 65536) {
		fprintf(stderr,
		        "thinp: invalid metadata size: at least 64k is needed (2M is the practical floor)\n");
		return 2;
	}
	char data[PATH_MAX], meta[PATH_MAX];
	if (a.dir) {
		if (mkdir(a.dir, 0755) && errno != EEXIST) {
			fprintf(stderr, "thinp: cannot create directory %s: %s\n", a.dir,
			        strerror(errno));
			return 1;
		}
		snprintf(data, sizeof(data), "%s/data", a.dir);
		snprintf(meta, sizeof(meta), "%s/metadata", a.dir);
	} else {
		snprintf(data, sizeof(data), "%s", a.data);
		snprintf(meta, sizeof(meta), "%s", a.metadata);
	}
	if (file_exists(meta) && !force) {
		struct tp_dev *m;
		if (!tp_dev_open(meta, TP_DEV_RDONLY, 0, &m)) {
			uint8_t sb[4096] = { 0 };
			int rr = m->size >= 4096 ? tp_dev_pread(m, sb, 4096, 0) : -1;
			tp_dev_close(m);
			uint64_t magic = 0;
			memcpy(&magic, sb + 32, 8);
			if (!rr && magic == 27022010ull) {
				fprintf(stderr,
				        "thinp: %s already holds a thin pool: refusing to overwrite it (use --force to destroy it)\n",
				        meta);
				return 1;
			}
		}
	}
	/* Docker's sizes are defaults for files; a block device is used whole unless a size
	 * is given */
	bool data_blk = is_block_device(data) && !a.losetup;
	bool meta_blk = is_block_device(meta) && !a.losetup;
	if (!data_size && !data_blk)
		data_size = data_default;
	if (!meta_size && !meta_blk)
		meta_size = meta_default;
	/* a failed create leaves no files behind that it made */
	struct created made = { { file_exists(data) ? NULL : data, file_exists(meta) ? NULL : meta } };
	struct tp_dev *d, *m;
	unsigned fl = TP_DEV_CREATE | TP_DEV_EXCL;
	r = cli_open_dev(&a, data, fl | (a.direct ? TP_DEV_DIRECT : 0), data_size, &d);
	if (r) {
		fprintf(stderr, "thinp: cannot open data device %s: %s\n", data, strerror(-r));
		return undo_create(&made, 1);
	}
	r = cli_open_dev(&a, meta, fl, meta_size, &m);
	if (r) {
		fprintf(stderr, "thinp: cannot open metadata device %s: %s\n", meta, strerror(-r));
		tp_dev_close(d);
		return undo_create(&made, 1);
	}
	/* the sizes asked for apply to files that already existed, too (grow only) */
	const char *what = "data", *path = data;
	uint64_t have = d->size, want = data_size;
	if ((d->size < data_size && (r = tp_dev_resize(d, data_size))) ||
	    (what = "metadata", path = meta, have = m->size, want = meta_size,
	     m->size < meta_size && (r = tp_dev_resize(m, meta_size)))) {
		if (r == -ENOTSUP)
			fprintf(stderr,
			        "thinp: the %s device %s has %llu bytes, fewer than the %llu asked for: "
			        "grow it or ask for less (without --%s-size a block device is used "
			        "whole)\n",
			        what, path, (unsigned long long)have, (unsigned long long)want, what);
		else
			fprintf(stderr, "thinp: cannot grow the %s file %s to %llu bytes: %s\n", what,
			        path, (unsigned long long)want, strerror(-r));
		tp_dev_close(d);
		tp_dev_close(m);
		return undo_create(&made, 1);
	}
	struct thinp_pool *p;
	char err[512];
	a.opts.no_commit_timer = true;
	r = thinp_pool_format(d, m, &a.opts, &p, err, sizeof(err));
	if (r) {
		fprintf(stderr, "thinp: cannot create the pool: %s\n", err);
		return undo_create(&made, 1);
	}
	if (a.dir && (r = cli_save_table(a.dir, &a.opts))) {
		fprintf(stderr, "thinp: cannot save %s/table: %s\n", a.dir, strerror(-r));
		return close_pool(p, 1);
	}
	return close_pool(p, 0);
}

static const char pool_status_usage[] =
        "usage: thinp pool status DIR | --data DEV --metadata DEV   [--noflush] [--fields]\n"
        "       thinp --backend kernel pool status DIR|NAME           [--noflush] [--fields]\n"
        "Prints the pool's `dmsetup status` line (the kernel's thin-pool INFO text); --fields\n"
        "prints the parsed status as key=value lines; --noflush does not commit first.\n";

static int pool_status(int argc, char **argv)
{
	struct cli_pool_args a = { 0 };
	const char *pos[2];
	int nr, r = parse(argc, argv, 2, &a, pos, 2, &nr, pool_status_usage);
	if (r)
		return r < 0 ? 0 : r;
	if (a.backend == CLI_BACKEND_KERNEL) {
		if (nr != 1) {
			fprintf(stderr, "thinp: expected the pool (DIR or NAME)\n%s",
			        pool_status_usage);
			return 2;
		}
		return k_pool_status(&a, pos[0]);
	}
	if ((r = take_dir(&a, pos, &nr, 0, pool_status_usage)))
		return r;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	if (a.fields) {
		struct thinp_pool_status st;
		r = thinp_pool_status(p, a.noflush, &st);
		if (!r)
			cli_print_pool_fields(&st);
	} else {
		char line[512];
		r = thinp_pool_status_line(p, a.noflush, line, sizeof(line));
		if (!r)
			printf("%s\n", line);
	}
	return close_pool(p, report(p, r, "status"));
}

static const char pool_extend_usage[] =
        "usage: thinp pool extend DIR [--data-size N] [--metadata-size N]\n"
        "       thinp --backend kernel pool extend DIR|NAME [--data-size N] [--metadata-size N]\n"
        "Grows the data and/or metadata device (files are extended) and the pool with them.\n"
        "Kernel: suspend, reload the table with the new length, resume. A DIR's files grow and\n"
        "their loop devices re-read the size (losetup -c); a NAME's devices must already be\n"
        "big enough (e.g. lvextend), and without sizes the pool takes the whole data device.\n";

static int pool_extend(int argc, char **argv)
{
	struct cli_pool_args a = { 0 };
	uint64_t data_size = 0, meta_size = 0;
	const char *pos[2];
	int nr, nrest;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	int r = take_sizes(argc, argv, &data_size, &meta_size, NULL, rest, &nrest);
	if (!r)
		r = parse(nrest, rest, 2, &a, pos, 1, &nr, pool_extend_usage);
	free(rest);
	if (r)
		return r < 0 ? 0 : r;
	if (a.backend == CLI_BACKEND_KERNEL) {
		if (nr != 1) {
			fprintf(stderr, "thinp: expected the pool (DIR or NAME)\n%s",
			        pool_extend_usage);
			return 2;
		}
		return k_pool_extend(&a, pos[0], data_size, meta_size);
	}
	if ((r = take_dir(&a, pos, &nr, 0, pool_extend_usage)))
		return r;
	if (!data_size && !meta_size) {
		fprintf(stderr, "thinp: pool extend needs --data-size and/or --metadata-size\n%s",
		        pool_extend_usage);
		return 2;
	}
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	if (data_size)
		r = thinp_pool_resize_data(p, data_size);
	if (!r && meta_size)
		r = thinp_pool_resize_metadata(p, meta_size);
	return close_pool(p, report(p, r, "extend"));
}

/* pool activate / remove: the kernel's; a note for the userspace backend */
static int pool_activate_remove(int argc, char **argv)
{
	bool activate = !strcmp(argv[1], "activate");
	struct cli_pool_args a = { 0 };
	const char *pos[2];
	int nr, r = parse(argc, argv, 2, &a, pos, 1, &nr, pool_activate_usage);
	if (r)
		return r < 0 ? 0 : r;
	if (a.backend != CLI_BACKEND_KERNEL) {
		if ((r = take_dir(&a, pos, &nr, 0, pool_activate_usage)))
			return r;
		struct thinp_pool *p; /* the pool must at least open */
		if ((r = cli_open_pool(&a, &p)))
			return r;
		user_backend_note(activate ? "pool activate" : "pool remove");
		return close_pool(p, 0);
	}
	if (nr != 1) {
		fprintf(stderr, "thinp: expected the pool (DIR or NAME)\n%s", pool_activate_usage);
		return 2;
	}
	return activate ? k_pool_up(&a, pos[0], 0, 0, false, false) : k_pool_remove(&a, pos[0]);
}

int cmd_pool(int argc, char **argv)
{
	static const char usage[] =
	        "usage: thinp [--backend user|kernel] pool create|status|extend|activate|remove ...\n"
	        "       (thinp pool SUBCOMMAND --help)\n";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "create"))
		return pool_create(argc, argv);
	if (!strcmp(argv[1], "status"))
		return pool_status(argc, argv);
	if (!strcmp(argv[1], "extend"))
		return pool_extend(argc, argv);
	if (!strcmp(argv[1], "activate") || !strcmp(argv[1], "remove"))
		return pool_activate_remove(argc, argv);
	fprintf(stderr, "thinp: unknown pool subcommand '%s'\n%s", argv[1], usage);
	return 2;
}

/* ---- thin create / snap / delete / status ---- */

static const char thin_usage[] =
        "usage: thinp thin create DIR ID\n"
        "       thinp thin snap DIR ID ORIGIN_ID\n"
        "       thinp thin delete DIR ID\n"
        "       thinp thin status DIR ID [--fields]\n"
        "       thinp thin activate DIR ID SIZE [--name NAME]\n"
        "       thinp thin remove DIR ID [--name NAME] [--deferred]\n"
        "(or --data DEV --metadata DEV instead of DIR). IDs are 24-bit (0..16777215).\n"
        "With --backend kernel the pool is a DIR or a device-mapper NAME (see pool create):\n"
        "create/snap/delete are pool messages (snap suspends the origin's active devices);\n"
        "activate makes /dev/mapper/NAME (default: the pool's name minus -pool, then -ID;\n"
        "printed) of SIZE bytes; status needs an active device; remove deactivates --name, or\n"
        "every active device of ID (--deferred: on its last close). The userspace backend\n"
        "has nothing to activate or remove.\n";

int cmd_thin(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(thin_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	int need;
	if (!strcmp(sub, "create") || !strcmp(sub, "delete") || !strcmp(sub, "status") ||
	    !strcmp(sub, "remove"))
		need = 1;
	else if (!strcmp(sub, "snap") || !strcmp(sub, "activate"))
		need = 2;
	else {
		fprintf(stderr, "thinp: unknown thin subcommand '%s'\n%s", sub, thin_usage);
		return 2;
	}
	const bool activate = !strcmp(sub, "activate");
	struct cli_pool_args a = { 0 };
	const char *pos[4];
	int nr, r = parse(argc, argv, 2, &a, pos, 3, &nr, thin_usage);
	if (r)
		return r < 0 ? 0 : r;
	const char *pool_arg = NULL;
	if (a.backend == CLI_BACKEND_KERNEL) {
		if (a.data || a.metadata) {
			fprintf(stderr,
			        "thinp: with --backend kernel name the pool (DIR or NAME), not --data/--metadata\n");
			return 2;
		}
		if (nr != need + 1) {
			fprintf(stderr, "thinp: expected the pool and %d argument%s\n%s", need,
			        need == 1 ? "" : "s", thin_usage);
			return 2;
		}
		pool_arg = pos[0];
		memmove(pos, pos + 1, (size_t)need * sizeof(*pos));
	} else if ((r = take_dir(&a, pos, &nr, need, thin_usage))) {
		return r;
	}
	uint64_t id, origin = 0, size = 0;
	if (cli_parse_u64("device id", pos[0], &id) ||
	    (need == 2 && !activate && cli_parse_u64("origin device id", pos[1], &origin)) ||
	    (activate && cli_parse_size("thin device size", pos[1], &size)))
		return 2;
	if (id > 0xFFFFFF || origin > 0xFFFFFF) {
		fprintf(stderr, "thinp: invalid device id '%s': ids are 24-bit (0..16777215)\n",
		        id > 0xFFFFFF ? pos[0] : pos[1]);
		return 2;
	}
	if (activate && (!size || size % 512)) {
		fprintf(stderr,
		        "thinp: invalid thin device size '%s': a positive multiple of 512 bytes\n",
		        pos[1]);
		return 2;
	}
	if (a.name && !tdm_valid_name(a.name)) {
		fprintf(stderr,
		        "thinp: invalid device name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -\n",
		        a.name);
		return 2;
	}
	if (pool_arg)
		return k_thin(&a, sub, pool_arg, id, origin, size);
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	if (!strcmp(sub, "create")) {
		r = thinp_create_thin(p, id);
	} else if (!strcmp(sub, "snap")) {
		r = thinp_create_snap(p, id, origin);
	} else if (!strcmp(sub, "delete")) {
		r = thinp_delete_thin(p, id);
	} else if (!strcmp(sub, "status") && !a.fields) {
		char line[256];
		r = thinp_thin_status_line(p, id, line, sizeof(line));
		if (!r)
			printf("%s\n", line);
	} else { /* status --fields; activate/remove check that the thin exists */
		struct thinp_thin_status st;
		r = thinp_thin_status(p, id, &st);
		if (!r && a.fields)
			cli_print_thin_fields(&st);
		else if (!r && strcmp(sub, "status"))
			user_backend_note(activate ? "thin activate" : "thin remove");
	}
	char what[64];
	snprintf(what, sizeof(what), "thin %s", sub);
	return close_pool(p, report(p, r, what));
}

/* ---- write / read / discard ---- */

static const char io_usage[] =
        "usage: thinp write DIR ID OFFSET LENGTH     (LENGTH bytes from stdin)\n"
        "       thinp read DIR ID OFFSET LENGTH      (LENGTH bytes to stdout)\n"
        "       thinp discard DIR ID OFFSET LENGTH\n"
        "(or --data DEV --metadata DEV instead of DIR). OFFSET and LENGTH take k/m/g/t.\n";

static int io_cmd(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct cli_pool_args a = { 0 };
	const char *pos[5];
	int nr, r = parse(argc, argv, 1, &a, pos, 4, &nr, io_usage);
	if (r)
		return r < 0 ? 0 : r;
	if (a.backend == CLI_BACKEND_KERNEL) {
		fprintf(stderr,
		        "thinp: %s: not with --backend kernel: use the thin's device node (`thinp "
		        "--backend kernel thin activate` prints it) with dd, blkdiscard or fio\n",
		        cmd);
		return 2;
	}
	if ((r = take_dir(&a, pos, &nr, 3, io_usage)))
		return r;
	uint64_t id, off, len;
	if (cli_parse_u64("device id", pos[0], &id) || cli_parse_size("offset", pos[1], &off) ||
	    cli_parse_size("length", pos[2], &len))
		return 2;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	struct thinp_thin *t;
	r = thinp_thin_open(p, id, 0, &t);
	if (r)
		return close_pool(p, report(p, r, cmd));
	int rc = 0;
	if (!strcmp(cmd, "discard")) {
		rc = report(p, thinp_discard(t, off, len, NULL), cmd);
	} else {
		uint8_t *buf = malloc(IO_CHUNK);
		if (!buf) {
			thinp_thin_close(t);
			return close_pool(p, 1);
		}
		bool w = !strcmp(cmd, "write");
		for (uint64_t done = 0; done < len && !rc;) {
			size_t n = len - done < IO_CHUNK ? (size_t)(len - done) : IO_CHUNK;
			if (w) {
				size_t got = fread(buf, 1, n, stdin);
				if (got != n) {
					fprintf(stderr,
					        "thinp: write: stdin ended after %llu of %llu bytes; nothing more written\n",
					        (unsigned long long)(done + got),
					        (unsigned long long)len);
					n = got;
					rc = 1;
				}
				if (n &&
				    report(p, thinp_write(t, buf, n, off + done, 0, NULL), cmd))
					rc = 1;
			} else {
				rc = report(p, thinp_read(t, buf, n, off + done, NULL), cmd);
				if (!rc && fwrite(buf, 1, n, stdout) != n) {
					fprintf(stderr, "thinp: read: writing stdout failed\n");
					rc = 1;
				}
			}
			done += n;
		}
		free(buf);
		if (w && !rc)
			rc = report(p, thinp_flush(t, NULL), cmd);
	}
	thinp_thin_close(t);
	return close_pool(p, rc);
}

int cmd_write(int argc, char **argv)
{
	return io_cmd(argc, argv);
}
int cmd_read(int argc, char **argv)
{
	return io_cmd(argc, argv);
}
int cmd_discard(int argc, char **argv)
{
	return io_cmd(argc, argv);
}

/* ---- set-transaction-id / metadata-snap ---- */

static const char trans_usage[] =
        "usage: thinp set-transaction-id DIR OLD NEW\n"
        "       thinp --backend kernel set-transaction-id DIR|NAME OLD NEW\n"
        "Compare-and-swap of the pool's 64-bit transaction id (fails unless it is OLD).\n";

/* Kernel pool for the message commands: POS[0] is the pool; the rest shift down. */
static int k_message_pool(struct cli_pool_args *a, const char **pos, int *nr, int need,
                          const char *usage, struct tdm_ctx *c, struct kpool *kp)
{
	if (a->data || a->metadata) {
		fprintf(stderr,
		        "thinp: with --backend kernel name the pool (DIR or NAME), not --data/--metadata\n");
		return 2;
	}
	if (*nr != need + 1) {
		fprintf(stderr, "thinp: expected the pool and %d argument%s\n%s", need,
		        need == 1 ? "" : "s", usage);
		return 2;
	}
	int r = k_open_pool(c, a, pos[0], kp);
	if (r)
		return r;
	memmove(pos, pos + 1, (size_t)need * sizeof(*pos));
	*nr = need;
	return 0;
}

int cmd_set_transaction_id(int argc, char **argv)
{
	struct cli_pool_args a = { 0 };
	const char *pos[4];
	int nr, r = parse(argc, argv, 1, &a, pos, 3, &nr, trans_usage);
	if (r)
		return r < 0 ? 0 : r;
	struct tdm_ctx c;
	struct kpool kp;
	const bool kernel = a.backend == CLI_BACKEND_KERNEL;
	if (kernel) {
		if (nr == 3 && (cli_parse_u64("old transaction id", pos[1], &(uint64_t){ 0 }) ||
		                cli_parse_u64("new transaction id", pos[2], &(uint64_t){ 0 })))
			return 2;
		if ((r = k_message_pool(&a, pos, &nr, 2, trans_usage, &c, &kp)))
			return r;
	} else if ((r = take_dir(&a, pos, &nr, 2, trans_usage))) {
		return r;
	}
	uint64_t old, nw;
	if (cli_parse_u64("old transaction id", pos[0], &old) ||
	    cli_parse_u64("new transaction id", pos[1], &nw))
		return 2;
	if (kernel)
		return tdm_set_transaction_id(&c, kp.name, old, nw) ? kfail(&c) : 0;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	return close_pool(p, report(p, thinp_set_transaction_id(p, old, nw), "set-transaction-id"));
}

static const char msnap_usage[] =
        "usage: thinp metadata-snap DIR reserve|release\n"
        "       thinp --backend kernel metadata-snap DIR|NAME reserve|release\n"
        "Holds (or drops) a read-only copy of the metadata roots for live thin_dump -m.\n";

int cmd_metadata_snap(int argc, char **argv)
{
	struct cli_pool_args a = { 0 };
	const char *pos[3];
	int nr, r = parse(argc, argv, 1, &a, pos, 2, &nr, msnap_usage);
	if (r)
		return r < 0 ? 0 : r;
	struct tdm_ctx c;
	struct kpool kp;
	const bool kernel = a.backend == CLI_BACKEND_KERNEL;
	if (kernel) {
		if (nr == 2 && strcmp(pos[1], "reserve") && strcmp(pos[1], "release")) {
			fprintf(stderr, "thinp: invalid action '%s': use reserve or release\n",
			        pos[1]);
			return 2;
		}
		if ((r = k_message_pool(&a, pos, &nr, 1, msnap_usage, &c, &kp)))
			return r;
	} else if ((r = take_dir(&a, pos, &nr, 1, msnap_usage))) {
		return r;
	}
	bool reserve = !strcmp(pos[0], "reserve");
	if (!reserve && strcmp(pos[0], "release")) {
		fprintf(stderr, "thinp: invalid action '%s': use reserve or release\n", pos[0]);
		return 2;
	}
	if (kernel)
		return (reserve ? tdm_reserve_metadata_snap(&c, kp.name) :
		                  tdm_release_metadata_snap(&c, kp.name)) ?
		               kfail(&c) :
		               0;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	r = reserve ? thinp_reserve_metadata_snap(p) : thinp_release_metadata_snap(p);
	return close_pool(p, report(p, r, "metadata-snap"));
}
