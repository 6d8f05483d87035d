/* Kernel backend: pool create / activate / extend, the part that prepares devices.
 *   direct:   the pool is NAME, --data/--metadata are block devices;
 *   loop-lvm: the pool is a DIR; DIR/data and DIR/metadata (created sparse by `create`)
 *             are attached to autoclear loop devices, which detach when the pool goes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli/backend_kernel.h"
#include "cli/cli_msg.h"
#include "cli/cli_table.h"

#define THIN_SB_MAGIC 27022010ull /* thin-pool superblock magic, at byte 32 */

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
static int grow_file(const char *cmd, const char *path, uint64_t size)
{
	struct stat st;
	if (stat(path, &st))
		return cli_fail(cmd, "%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size > size)
		return cli_fail(cmd, "%s is %llu bytes: a pool cannot shrink to %llu", path,
		                (unsigned long long)st.st_size, (unsigned long long)size);
	if ((uint64_t)st.st_size < size && truncate(path, (off_t)size))
		return cli_fail(cmd, "cannot grow %s: %s", path, strerror(errno));
	return 0;
}

/* A sparse file of SIZE bytes, unless PATH exists. */
static int make_file(const char *cmd, const char *path, uint64_t size)
{
	struct tp_dev *d;
	int r = thinp_dev_open(path, THINP_DEV_CREATE, size, &d);
	if (r)
		return cli_fail(cmd, "cannot create %s: %s", path, strerror(-r));
	thinp_dev_close(d);
	return 0;
}

/* Where the pool goes: its name and devices (paths), and the DIR if loop-lvm. */
struct target {
	char name[TDM_NAME_MAX], data[PATH_MAX], meta[PATH_MAX];
	const char *dir;
};

/* Direct: ARG is the NAME, the devices are block devices (checked before anything is
 * written to them). */
static int direct_target(struct tdm_ctx *c, struct cli_pool_args *a, struct target *t)
{
	if (!a->data || !a->metadata)
		return cli_usage(a->cmd, "--data and --metadata go together");
	if (a->name)
		return cli_usage(a->cmd,
		                 "with --data/--metadata the pool's name is '%s': --name is for a "
		                 "pool directory",
		                 a->pool);
	if (!tdm_valid_name(a->pool))
		return cli_usage(a->cmd, "invalid pool name '%s': " BACKEND_DM_NAME_RULE, a->pool);
	snprintf(t->name, sizeof(t->name), "%s", a->pool);
	snprintf(t->data, sizeof(t->data), "%s", a->data);
	snprintf(t->meta, sizeof(t->meta), "%s", a->metadata);
	uint64_t sec;
	for (int i = 0; i < 2; i++)
		if (tdm_blockdev_sectors(c, i ? t->meta : t->data, 0, 0, &sec))
			return cli_fail(a->cmd, "%s%s", c->msg,
			                c->err == ENOTBLK ? " (for files, name a pool directory: "
			                                    "loop-lvm)" :
			                                    "");
	return 0;
}

/* Loop-lvm: ARG is the DIR (made by create), which must not be active already. */
static int dir_target(struct tdm_ctx *c, struct cli_pool_args *a, bool create, struct target *t)
{
	const char *dir = a->pool;
	if (create && mkdir(dir, 0755) && errno != EEXIST)
		return cli_fail(a->cmd, "cannot create directory %s: %s", dir, strerror(errno));
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		if (create)
			return cli_fail(a->cmd, "%s is not a pool directory", dir);
		return cli_usage(a->cmd,
		                 "%s is not a pool directory (name a directory, or a pool with "
		                 "--data and --metadata)",
		                 dir);
	}
	t->dir = dir;
	snprintf(t->data, sizeof(t->data), "%s/data", dir);
	snprintf(t->meta, sizeof(t->meta), "%s/metadata", dir);
	if (!create)
		cli_load_table(dir, a);
	/* the name: --name, else the one remembered, else Docker's pattern
	 * (docker-<maj>:<min>-<inode>-pool of the graph root) */
	struct tdm_ctx q = *c;
	char known[TDM_NAME_MAX];
	struct tdm_info ki;
	if (!tdm_dir_name(&q, dir, known, sizeof(known)) && !tdm_info(&q, known, &ki) && ki.exists)
		return cli_fail(
		        a->cmd, "%s is active on the kernel as /dev/mapper/%s%s", dir, known,
		        create ? ": remove it first (thinp --backend kernel pool remove)" : "");
	if (a->name)
		snprintf(t->name, sizeof(t->name), "%s", a->name);
	else if (tdm_dir_name(&q, dir, t->name, sizeof(t->name)))
		snprintf(t->name, sizeof(t->name), "thinp-%u:%u-%llu-pool", major(st.st_dev),
		         minor(st.st_dev), (unsigned long long)st.st_ino);
	if (!tdm_valid_name(t->name))
		return cli_usage(a->cmd, "invalid pool name '%s': " BACKEND_DM_NAME_RULE, t->name);
	return 0;
}

/* What is on the metadata device fits the command: CREATE refuses an existing pool
 * without --force (and then grows the files, clears the superblock: the kernel formats
 * an all-zero one); activate requires one. */
static int prepare_metadata(struct cli_pool_args *a, const struct target *t, bool create,
                            uint64_t data_size, uint64_t meta_size)
{
	if (t->dir && create) { /* sparse files, grown (never shrunk) to the sizes asked */
		if (make_file(a->cmd, t->data, data_size) || make_file(a->cmd, t->meta, meta_size))
			return 1;
	}
	int held = holds_pool(t->meta);
	if (held < 0)
		return cli_fail(a->cmd, "cannot read metadata device %s: %s", t->meta,
		                strerror(-held));
	if (create && held && !a->force)
		return cli_fail(
		        a->cmd,
		        "%s already holds a thin pool: refusing to overwrite it (use --force "
		        "to destroy it, or `pool activate` to use it)",
		        t->meta);
	if (!create && !held)
		return cli_fail(a->cmd, "%s holds no thin pool: create one with `pool create`",
		                t->meta);
	if (!create)
		return 0;
	if (t->dir &&
	    (grow_file(a->cmd, t->data, data_size) || grow_file(a->cmd, t->meta, meta_size)))
		return 1;
	int r = sb_io(t->meta, true, NULL);
	if (r)
		return cli_fail(a->cmd, "cannot clear the metadata superblock of %s: %s", t->meta,
		                strerror(-r));
	return 0;
}

/* Load the thin-pool table; loop-lvm attaches the files first (our descriptors keep
 * the loops until the pool holds them) and records DIR/table and DIR/kernel.json. */
static int activate(struct tdm_ctx *c, struct cli_pool_args *a, const struct target *t)
{
	char lo_data[64] = "", lo_meta[64] = "";
	int fd_data = -1, fd_meta = -1, rc = 0;
	const char *mdev = t->meta, *ddev = t->data;
	uint64_t sectors;
	if (t->dir) {
		if (tdm_loop_attach(c, t->meta, lo_meta, sizeof(lo_meta), &fd_meta) ||
		    tdm_loop_attach(c, t->data, lo_data, sizeof(lo_data), &fd_data)) {
			rc = kernel_fail(a, c);
			goto out;
		}
		mdev = lo_meta;
		ddev = lo_data;
	}
	if (tdm_blockdev_sectors(c, ddev, 0, 0, &sectors) ||
	    tdm_pool_create(c, t->name, mdev, ddev, sectors, &a->opts)) {
		rc = kernel_fail(a, c);
		goto out;
	}
	if (t->dir) {
		int r = cli_save_table(t->dir, &a->opts);
		if (r)
			cli_warn(a->cmd, "cannot save %s/table: %s", t->dir, strerror(-r));
		if (tdm_dir_save(c, t->dir, t->name, lo_data, lo_meta)) {
			/* without kernel.json the directory cannot name its pool again */
			struct tdm_ctx rm = *c;
			(void)tdm_remove(&rm, t->name, 0);
			rc = kernel_fail(a, c);
		}
	}
out:
	if (fd_data >= 0)
		close(fd_data);
	if (fd_meta >= 0)
		close(fd_meta);
	return rc;
}

/* pool create / activate. */
static int pool_up(struct cli_pool_args *a, bool create, char *dev, size_t len)
{
	struct tdm_ctx c;
	if (kernel_ready(&c, a))
		return 1;
	/* Docker's loop-lvm sizes, for the files of a DIR */
	uint64_t data_size = a->data_size ? a->data_size : THINP_DEFAULT_DATA_SIZE;
	uint64_t meta_size = a->meta_size ? a->meta_size : THINP_DEFAULT_META_SIZE;
	struct target t = { .dir = NULL };
	int r = a->data || a->metadata ? direct_target(&c, a, &t) : dir_target(&c, a, create, &t);
	if (r)
		return r;
	struct tdm_info info;
	if (tdm_info(&c, t.name, &info))
		return kernel_fail(a, &c);
	if (info.exists)
		return cli_fail(a->cmd, "/dev/mapper/%s already exists%s", t.name,
		                create ? ": remove it first (thinp --backend kernel pool remove)" :
		                         ": already active");
	if ((r = prepare_metadata(a, &t, create, data_size, meta_size)) ||
	    (r = activate(&c, a, &t)))
		return r;
	snprintf(dev, len, "/dev/mapper/%s", t.name);
	return 0;
}

int kernel_pool_create(struct cli_pool_args *a, char *dev, size_t len)
{
	return pool_up(a, true, dev, len);
}

int kernel_pool_activate(struct cli_pool_args *a, char *dev, size_t len)
{
	return pool_up(a, false, dev, len);
}

/* The loop device behind MAJ:MIN must be backed by FILE (a pool directory's file). */
static int loop_of(struct kernel_pool *p, uint32_t maj, uint32_t min, const char *file, char *dev,
                   size_t len)
{
	char backing[PATH_MAX], real[PATH_MAX];
	if (tdm_loop_lookup(&p->c, maj, min, dev, len, backing, sizeof(backing)))
		return kernel_fail(p->base.args, &p->c);
	if (!realpath(file, real) || strcmp(real, backing))
		return cli_fail(p->base.args->cmd,
		                "the pool's device %u:%u (%s) is backed by %s, not %s", maj, min,
		                dev, backing, file);
	return 0;
}

/* pool extend: grow the data (and/or metadata) device, then suspend/reload/resume.
 *   loop-lvm DIR: the files grow, then `losetup -c` (LOOP_SET_CAPACITY) on their loops;
 *                 without sizes, the loops just pick up files grown by other means;
 *   direct NAME:  the devices must already be big enough (lvextend); without
 *                 --data-size the pool takes the whole data device. */
int kernel_pool_extend(struct backend_pool *bp, uint64_t data_size, uint64_t meta_size)
{
	struct kernel_pool *p = (struct kernel_pool *)bp;
	const char *cmd = bp->args->cmd;
	struct tdm_pool_table t;
	if (tdm_pool_table(&p->c, p->name, &t))
		return kernel_fail(bp->args, &p->c);
	int r;
	if (p->dir) {
		char data[PATH_MAX], meta[PATH_MAX], lo_data[64], lo_meta[64];
		snprintf(data, sizeof(data), "%s/data", p->dir);
		snprintf(meta, sizeof(meta), "%s/metadata", p->dir);
		if ((r = loop_of(p, t.data_major, t.data_minor, data, lo_data, sizeof(lo_data))) ||
		    (r = loop_of(p, t.meta_major, t.meta_minor, meta, lo_meta, sizeof(lo_meta))))
			return r;
		if ((data_size && (r = grow_file(cmd, data, data_size))) ||
		    (meta_size && (r = grow_file(cmd, meta, meta_size))))
			return r;
		if (tdm_loop_set_capacity(&p->c, lo_data) || tdm_loop_set_capacity(&p->c, lo_meta))
			return kernel_fail(bp->args, &p->c);
	}
	uint64_t dsec, msec;
	if (tdm_blockdev_sectors(&p->c, NULL, t.data_major, t.data_minor, &dsec) ||
	    tdm_blockdev_sectors(&p->c, NULL, t.meta_major, t.meta_minor, &msec))
		return kernel_fail(bp->args, &p->c);
	if (data_size && dsec < data_size / 512)
		return cli_fail(cmd,
		                "the data device %s is only %llu bytes: grow it first (e.g. "
		                "lvextend)",
		                t.data_dev, (unsigned long long)dsec * 512);
	if (meta_size && msec < meta_size / 512)
		return cli_fail(cmd,
		                "the metadata device %s is only %llu bytes: grow it first (e.g. "
		                "lvextend)",
		                t.meta_dev, (unsigned long long)msec * 512);
	uint64_t want = data_size && !p->dir ? data_size / 512 : dsec;
	if (want < t.data_sectors)
		return cli_fail(cmd, "the pool has %llu data sectors: it cannot shrink to %llu",
		                (unsigned long long)t.data_sectors, (unsigned long long)want);
	return tdm_pool_grow(&p->c, p->name, want) ? kernel_fail(bp->args, &p->c) : 0;
}
