/* The driver's pool on the kernel's dm-thin (--backend kernel), through impl/dm, as Docker's
 * deviceset.go drives it (docs/docker-driver.md §2, §7, §9): loop-lvm's sparse files
 * ROOT/devicemapper/{data,metadata} on autoclear loop devices under the pool
 * /dev/mapper/<prefix>-pool with Docker's table, or an existing pool named by dm.thinpooldev;
 * thin devices /dev/mapper/<prefix>-<hash>. The kernel holds the devices and the mounts, so
 * a pool found active at start (a killed holder, a restart) is taken as it is. */
#include "dm/dm_backend.h"
#include "graph/graph_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct kern_be {
	struct tdm_ctx c;
	char pool[TDM_NAME_MAX];
	bool own_pool;                                 /* made here: removed at close */
	char data_file[PATH_MAX], meta_file[PATH_MAX]; /* loop-lvm only */
	char data_loop[64], meta_loop[64];
	bool udev_sync;
	char lib_version[64];
	FILE *log;
};

/* The last impl/dm failure as the driver's error (a negative errno and its sentence). */
static int kfail(struct kern_be *b, char *err, size_t len)
{
	int e = b->c.err ? b->c.err : EIO;
	return tg_err(err, len, -e, "%s", b->c.msg);
}

static int k_status(void *be, struct tg_pool_info *st, char *err, size_t len)
{
	struct kern_be *b = be;
	struct thinp_pool_status ps;
	struct tdm_pool_table t;
	if (tdm_pool_status(&b->c, b->pool, false, &ps, NULL, 0) ||
	    tdm_pool_table(&b->c, b->pool, &t))
		return kfail(b, err, len);
	memset(st, 0, sizeof(*st));
	st->transaction_id = ps.transaction_id;
	st->data_used = ps.used_data_blocks;
	st->data_total = ps.total_data_blocks;
	st->meta_used = ps.used_meta_blocks;
	st->meta_total = ps.total_meta_blocks;
	/* Docker derives the block size from the table: its length over the data blocks */
	st->block_bytes = ps.total_data_blocks ? t.data_sectors / ps.total_data_blocks * 512
					       : (uint64_t)t.opts.block_sectors * 512;
	snprintf(st->pool_name, sizeof(st->pool_name), "%s", b->pool);
	snprintf(st->data_dev, sizeof(st->data_dev), "%s", b->data_loop);
	snprintf(st->meta_dev, sizeof(st->meta_dev), "%s", b->meta_loop);
	snprintf(st->data_file, sizeof(st->data_file), "%s", b->data_file);
	snprintf(st->meta_file, sizeof(st->meta_file), "%s", b->meta_file);
	st->udev_sync = b->udev_sync;
	snprintf(st->lib_version, sizeof(st->lib_version), "%s", b->lib_version);
	return 0;
}

static int k_create_thin(void *be, uint64_t id, char *err, size_t len)
{
	struct kern_be *b = be;
	return tdm_create_thin(&b->c, b->pool, id) ? kfail(b, err, len) : 0;
}

static int k_create_snap(void *be, uint64_t id, uint64_t origin, char *err, size_t len)
{
	struct kern_be *b = be;
	return tdm_create_snap(&b->c, b->pool, id, origin) ? kfail(b, err, len) : 0;
}

static int k_delete(void *be, uint64_t id, char *err, size_t len)
{
	struct kern_be *b = be;
	return tdm_delete_thin(&b->c, b->pool, id) ? kfail(b, err, len) : 0;
}

static int k_set_txn(void *be, uint64_t cur, uint64_t next, char *err, size_t len)
{
	struct kern_be *b = be;
	return tdm_set_transaction_id(&b->c, b->pool, cur, next) ? kfail(b, err, len) : 0;
}

/* An active device is used as it is (Docker's activateDeviceIfNeeded), a pending deferred
 * removal cancelled first: otherwise the device would vanish under its next mount. */
static int k_activate(void *be, const char *name, uint64_t id, uint64_t size, char *dev,
		      size_t dlen, char *err, size_t len)
{
	struct kern_be *b = be;
	struct tdm_info i;
	if (tdm_info(&b->c, name, &i))
		return kfail(b, err, len);
	if (i.exists && i.deferred_remove && tdm_cancel_deferred_remove(&b->c, name)) {
		/* ENXIO: the removal happened meanwhile, so the device is made again below */
		if (b->c.err != ENXIO)
			return kfail(b, err, len);
		i.exists = false;
	}
	if (!i.exists && tdm_thin_activate(&b->c, b->pool, name, id, size / 512))
		return kfail(b, err, len);
	snprintf(dev, dlen, "/dev/mapper/%s", name);
	return 0;
}

static int k_deactivate(void *be, const char *name, bool deferred, char *err, size_t len)
{
	struct kern_be *b = be;
	struct tdm_info i;
	if (tdm_info(&b->c, name, &i))
		return kfail(b, err, len);
	if (!i.exists || (deferred && i.deferred_remove))
		return 0;
	if (!tdm_remove(&b->c, name, deferred ? TDM_REMOVE_DEFERRED : 0))
		return 0;
	return b->c.err == ENXIO ? 0 : kfail(b, err, len);
}

static bool k_is_active(void *be, const char *name)
{
	struct kern_be *b = be;
	struct tdm_info i;
	return !tdm_info(&b->c, name, &i) && i.exists && !i.deferred_remove;
}

/* dm suspend flushes the device's IO and freezes the file system mounted on it: MOUNT is
 * the userspace backend's need, not the kernel's. */
static int k_suspend(void *be, const char *name, const char *mount, char *err, size_t len)
{
	struct kern_be *b = be;
	(void)mount;
	if (tdm_suspend(&b->c, name))
		return tg_err(err, len, -(b->c.err ? b->c.err : EIO), "Unable to suspend %s: %s",
			      name, b->c.msg);
	return 0;
}

static int k_resume(void *be, const char *name, const char *mount, char *err, size_t len)
{
	struct kern_be *b = be;
	(void)mount;
	if (tdm_resume(&b->c, name))
		return tg_err(err, len, -(b->c.err ? b->c.err : EIO), "Unable to resume %s: %s",
			      name, b->c.msg);
	return 0;
}

/* Docker's ResizePool: the data file grown, its loop told (LOOP_SET_CAPACITY), the pool
 * reloaded with the new length by suspend/reload/resume. */
static int k_resize_data(void *be, uint64_t bytes, char *err, size_t len)
{
	struct kern_be *b = be;
	if (!b->data_file[0])
		return tg_err(err, len, -EINVAL,
			      "devmapper: the pool %s named by dm.thinpooldev is not ours to grow: "
			      "extend its data device (lvextend) and reload it instead", b->pool);
	int fd = open(b->data_file, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return tg_err(err, len, -e, "devmapper: Unable to open %s: %s", b->data_file,
			      strerror(e));
	}
	if ((uint64_t)st.st_size > bytes) {
		close(fd);
		return tg_err(err, len, -EINVAL, "devmapper: Can't shrink file");
	}
	if (ftruncate(fd, (off_t)bytes)) {
		int e = errno;
		close(fd);
		return tg_err(err, len, -e, "devmapper: Unable to grow loopback file: %s",
			      strerror(e));
	}
	close(fd);
	if (tdm_loop_set_capacity(&b->c, b->data_loop))
		return tg_err(err, len, -(b->c.err ? b->c.err : EIO),
			      "Unable to update loopback capacity: %s", b->c.msg);
	uint64_t sectors;
	if (tdm_blockdev_sectors(&b->c, b->data_loop, 0, 0, &sectors) ||
	    tdm_pool_grow(&b->c, b->pool, sectors))
		return tg_err(err, len, -(b->c.err ? b->c.err : EIO),
			      "devmapper: Unable to reload pool: %s", b->c.msg);
	return 0;
}

/* The kernel carries out deferred removals itself, at the device's last close. */
static int k_reap(void *be)
{
	(void)be;
	return 0;
}

/* Docker's Shutdown: the pool goes unless it came from dm.thinpooldev; the loops detach
 * themselves with it (autoclear). A device still open keeps it: it is found again at the
 * next start. */
static void k_close(void *be)
{
	struct kern_be *b = be;
	if (b->own_pool && tdm_remove(&b->c, b->pool, 0) && b->log)
		fprintf(b->log, "devmapper: the pool %s stays: %s\n", b->pool, b->c.msg);
	free(b);
}

static const struct tg_backend_ops kernel_ops = {
	.name = "kernel",
	.status = k_status,
	.create_thin = k_create_thin,
	.create_snap = k_create_snap,
	.delete_thin = k_delete,
	.set_transaction_id = k_set_txn,
	.activate = k_activate,
	.deactivate = k_deactivate,
	.is_active = k_is_active,
	.suspend = k_suspend,
	.resume = k_resume,
	.resize_data = k_resize_data,
	.reap = k_reap,
	.close = k_close,
};

/* Docker's ensureImage: the sparse file made or grown to SIZE, never shrunk. */
static int ensure_file(struct kern_be *b, const char *path, uint64_t size, char *err, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return tg_err(err, len, -e, "devmapper: Error opening %s: %s", path, strerror(e));
	}
	int r = 0;
	if ((uint64_t)st.st_size > size) {
		if (b->log)
			fprintf(b->log, "devmapper: Can't shrink loopback file %s\n", path);
	} else if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size)) {
		r = tg_err(err, len, -errno, "devmapper: Unable to grow loopback file %s: %s", path,
			   strerror(errno));
	}
	close(fd);
	return r;
}

/* The loop device behind MAJ:MIN of an active pool's table, which must be backed by FILE
 * (Docker's loadThinPoolLoopBackInfo matches them the same way). */
static int find_loop(struct kern_be *b, uint32_t maj, uint32_t min, const char *file, char *dev,
		     size_t dlen, char *err, size_t len)
{
	char backing[PATH_MAX];
	if (tdm_loop_lookup(&b->c, maj, min, dev, dlen, backing, sizeof(backing)))
		return tg_err(err, len, -(b->c.err ? b->c.err : EIO),
			      "devmapper: the active pool %s is not on loop-lvm files: %s", b->pool,
			      b->c.msg);
	if (strcmp(backing, file))
		return tg_err(err, len, -EEXIST,
			      "devmapper: the active pool %s is backed by %s, not %s: remove it "
			      "(dmsetup remove %s) or use another ROOT", b->pool, backing, file,
			      b->pool);
	return 0;
}

static int loop_lvm(struct kern_be *b, const struct tg_backend_args *a, char *err, size_t len)
{
	const struct tg_options *o = a->opt;
	snprintf(b->pool, sizeof(b->pool), "%s-pool", a->prefix);
	snprintf(b->data_file, sizeof(b->data_file), "%s/data", a->pool_dir);
	snprintf(b->meta_file, sizeof(b->meta_file), "%s/metadata", a->pool_dir);
	b->own_pool = true;
	struct tdm_info i;
	if (tdm_info(&b->c, b->pool, &i))
		return kfail(b, err, len);
	if (i.exists) {
		struct tdm_pool_table t;
		int r;
		if (tdm_pool_table(&b->c, b->pool, &t))
			return kfail(b, err, len);
		if ((r = find_loop(b, t.data_major, t.data_minor, b->data_file, b->data_loop,
				   sizeof(b->data_loop), err, len)) ||
		    (r = find_loop(b, t.meta_major, t.meta_minor, b->meta_file, b->meta_loop,
				   sizeof(b->meta_loop), err, len)))
			return r;
		return 0;
	}
	/* Docker's loopbackDir is 0700 */
	if (mkdir(a->pool_dir, 0700) && errno != EEXIST)
		return tg_err(err, len, -errno, "Error creating %s: %s", a->pool_dir, strerror(errno));
	int r;
	if ((r = ensure_file(b, b->data_file, o->loopdatasize, err, len)) ||
	    (r = ensure_file(b, b->meta_file, o->loopmetadatasize, err, len)))
		return r;
	int fd_data = -1, fd_meta = -1;
	uint64_t sectors;
	/* Docker's pool table: block zeroing off, low water mark 32768 blocks */
	struct thinp_pool_opts po = {.block_sectors = (uint32_t)(o->blocksize >> 9),
				     .skip_block_zeroing = true, .low_water_blocks = 32768};
	if (tdm_loop_attach(&b->c, b->data_file, b->data_loop, sizeof(b->data_loop), &fd_data) ||
	    tdm_loop_attach(&b->c, b->meta_file, b->meta_loop, sizeof(b->meta_loop), &fd_meta))
		r = tg_err(err, len, -(b->c.err ? b->c.err : EIO), "loopback attach failed: %s",
			   b->c.msg);
	else if (tdm_blockdev_sectors(&b->c, b->data_loop, 0, 0, &sectors) ||
		 tdm_pool_create(&b->c, b->pool, b->meta_loop, b->data_loop, sectors, &po))
		r = tg_err(err, len, -(b->c.err ? b->c.err : EIO),
			   "devmapper: Error creating the pool %s: %s", b->pool, b->c.msg);
	/* the pool holds the loops now (or, on failure, autoclear lets them go) */
	if (fd_data >= 0)
		close(fd_data);
	if (fd_meta >= 0)
		close(fd_meta);
	return r;
}

static int named_pool(struct kern_be *b, const char *name, char *err, size_t len)
{
	if (!tdm_valid_name(name))
		return tg_err(err, len, -EINVAL,
			      "devmapper: dm.thinpooldev=%s is not a device-mapper name: give the "
			      "pool's name (1-127 of A-Z a-z 0-9 . _ + : @ -) or /dev/mapper/NAME",
			      name);
	tg_copy(b->pool, sizeof(b->pool), name);
	struct tdm_info i;
	if (tdm_info(&b->c, b->pool, &i))
		return kfail(b, err, len);
	if (!i.exists)
		return tg_err(err, len, -ENOENT,
			      "devmapper: dm.thinpooldev=%s: there is no device /dev/mapper/%s: make "
			      "the thin pool first (e.g. lvcreate --type thin-pool)", name, name);
	struct tdm_pool_table t;
	return tdm_pool_table(&b->c, b->pool, &t) ? kfail(b, err, len) : 0;
}

int tg_backend_kernel_open(const struct tg_backend_args *a, const struct tg_backend_ops **ops,
			   void **be, char *err, size_t len)
{
	struct kern_be *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->log = a->log;
	int r = tdm_available(&b->c);
	if (r) {
		free(b);
		return tg_err(err, len, r, "%s", TDM_NO_DM_MESSAGE);
	}
	/* Docker refuses to run devicemapper without udev sync unless told to */
	b->udev_sync = tdm_udev_sync_supported();
	if (!b->udev_sync && !a->opt->override_udev_sync_check) {
		free(b);
		return tg_err(err, len, -ENOTSUP,
			      "devmapper: Udev sync is not supported. This will lead to data loss and "
			      "unexpected behavior. Install a more recent version of libdevmapper or "
			      "select a different storage driver. For more information, see "
			      "https://docs.docker.com/engine/reference/commandline/dockerd/"
			      "#storage-driver-options (or start anyway with --storage-opt "
			      "dm.override_udev_sync_check=true)");
	}
	tdm_library_version(b->lib_version, sizeof(b->lib_version));
	r = a->opt->thinpooldev[0] ? named_pool(b, a->opt->thinpooldev, err, len)
				   : loop_lvm(b, a, err, len);
	if (r) {
		free(b);
		return r;
	}
	*ops = &kernel_ops;
	*be = b;
	return 0;
}
