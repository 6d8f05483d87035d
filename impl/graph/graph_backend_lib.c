/* The driver's pool on libthinp: ROOT/devicemapper/{data,metadata} as loop-lvm's sparse
 * files, held by this process (with its control socket, ROOT/devicemapper/control, so
 * `thinp pool status` reaches it as `dmsetup status` reaches a kernel pool). A thin device
 * is activated as a file of the FUSE bridge (ROOT/thinbench/mapper/<name>, the analogue of
 * /dev/mapper/<name>) behind a loop device, the block device that is formatted and mounted. */
#include "graph/expose.h"
#include "graph/graph_internal.h"
#include "thinp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct lib_active {
	char name[200];
	char dev[64];
	int loop_fd;   /* keeps the autoclear loop while no mount holds it; -1 once closed */
	bool pending;  /* deferred removal: removed when its last opener closes */
};

struct lib_be {
	struct thinp_pool *pool;
	struct thinp_control *ctl;
	struct tg_expose *ex;
	char mapper[PATH_MAX];
	char data_file[PATH_MAX], meta_file[PATH_MAX];
	char pool_name[128];
	struct lib_active *act;
	size_t nr, cap;
	FILE *log;
};

static struct lib_active *find(struct lib_be *b, const char *name)
{
	for (size_t i = 0; i < b->nr; i++)
		if (!strcmp(b->act[i].name, name))
			return &b->act[i];
	return NULL;
}

static int pool_fail(struct lib_be *b, int r, char *err, size_t len)
{
	char why[512];
	thinp_pool_error_copy(b->pool, why, sizeof(why));
	return tg_err(err, len, r, "%s", why[0] ? why : strerror(-r));
}

static int lib_status(void *be, struct tg_pool_info *st, char *err, size_t len)
{
	struct lib_be *b = be;
	struct thinp_pool_status ps;
	int r = thinp_pool_status(b->pool, true, &ps);
	if (r)
		return pool_fail(b, r, err, len);
	memset(st, 0, sizeof(*st));
	st->transaction_id = ps.transaction_id;
	st->data_used = ps.used_data_blocks;
	st->data_total = ps.total_data_blocks;
	st->meta_used = ps.used_meta_blocks;
	st->meta_total = ps.total_meta_blocks;
	st->block_bytes = thinp_pool_block_bytes(b->pool);
	snprintf(st->pool_name, sizeof(st->pool_name), "%s", b->pool_name);
	snprintf(st->data_file, sizeof(st->data_file), "%s", b->data_file);
	snprintf(st->meta_file, sizeof(st->meta_file), "%s", b->meta_file);
	return 0;
}

static int lib_stats(void *be, bool reset, struct tg_class_count *out, size_t *nr, char *err,
		     size_t len)
{
	struct lib_be *b = be;
	struct thinp_class_stats cs[THINP_NR_CLASSES];
	(void)err;
	(void)len;
	thinp_pool_stats(b->pool, cs);
	if (reset)
		thinp_pool_stats_reset(b->pool);
	*nr = 0;
	for (int c = 0; c < THINP_NR_CLASSES && *nr < TG_CLASSES_MAX; c++) {
		struct tg_class_count *o = &out[(*nr)++];
		tg_copy(o->name, sizeof(o->name), thinp_class_name((enum thinp_class)c));
		o->ops = cs[c].ops;
		o->bytes_requested = cs[c].bytes_requested;
		o->data_read = cs[c].data_bytes_read;
		o->data_written = cs[c].data_bytes_written;
		o->data_zeroed = cs[c].data_bytes_zeroed;
		o->meta_read = cs[c].meta_bytes_read;
		o->meta_written = cs[c].meta_bytes_written;
	}
	return 0;
}

static int lib_create_thin(void *be, uint64_t id, char *err, size_t len)
{
	struct lib_be *b = be;
	int r = thinp_create_thin(b->pool, id);
	return r ? pool_fail(b, r, err, len) : 0;
}

static int lib_create_snap(void *be, uint64_t id, uint64_t origin, char *err, size_t len)
{
	struct lib_be *b = be;
	int r = thinp_create_snap(b->pool, id, origin);
	return r ? pool_fail(b, r, err, len) : 0;
}

static int lib_delete(void *be, uint64_t id, char *err, size_t len)
{
	struct lib_be *b = be;
	int r = thinp_delete_thin(b->pool, id);
	return r ? pool_fail(b, r, err, len) : 0;
}

static int lib_set_txn(void *be, uint64_t cur, uint64_t next, char *err, size_t len)
{
	struct lib_be *b = be;
	int r = thinp_set_transaction_id(b->pool, cur, next);
	return r ? pool_fail(b, r, err, len) : 0;
}

static int start_expose(struct lib_be *b, char *err, size_t len)
{
	if (b->ex)
		return 0;
	if (mkdir(b->mapper, 0700) && errno != EEXIST)
		return tg_err(err, len, -errno, "Error creating %s: %s", b->mapper, strerror(errno));
	return tg_expose_start(b->pool, b->mapper, &b->ex, err, len);
}

/* Is the loop device DEV still bound to FILE? (sysfs names its backing file) */
static bool loop_bound_to(const char *dev, const char *file)
{
	const char *base = strrchr(dev, '/');
	char path[128], back[PATH_MAX + 32];
	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", base ? base + 1 : dev);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool same = fgets(back, sizeof(back), f) && (back[strcspn(back, "\n")] = 0, 1) &&
		    !strcmp(back, file);
	fclose(f);
	return same;
}

static int reactivate(struct lib_be *b, struct lib_active *a, char *dev, size_t dlen, char *err,
		      size_t len);

static int lib_activate(void *be, const char *name, uint64_t id, uint64_t size, char *dev,
			size_t dlen, char *err, size_t len)
{
	struct lib_be *b = be;
	struct lib_active *a = find(b, name);
	if (a && !a->pending) {
		snprintf(dev, dlen, "%s", a->dev);
		return 0;
	}
	if (a)
		return reactivate(b, a, dev, dlen, err, len);
	int r = start_expose(b, err, len);
	if (r)
		return r;
	if (b->nr == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 8;
		struct lib_active *n = realloc(b->act, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->act = n;
		b->cap = cap;
	}
	if ((r = tg_expose_add(b->ex, name, id, size, err, len)))
		return r;
	a = &b->act[b->nr];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	char file[PATH_MAX + 256];
	snprintf(file, sizeof(file), "%s/%s", b->mapper, name);
	r = thinp_loop_attach(file, false, a->dev, sizeof(a->dev), &a->loop_fd);
	if (r) {
		tg_expose_remove(b->ex, name, NULL, 0);
		return tg_err(err, len, r, "loopback attach failed for %s: %s", file, strerror(-r));
	}
	b->nr++;
	snprintf(dev, dlen, "%s", a->dev);
	return 0;
}

/* Activating a device whose deferred removal is pending cancels the removal, as for a
 * dm device. Its loop may still be bound (a lazily detached mount holds it): then that same
 * block device is used again, so one file system never sits on two loop devices of one
 * file; otherwise a new loop is attached over the file, still exposed. */
static int reactivate(struct lib_be *b, struct lib_active *a, char *dev, size_t dlen, char *err,
		      size_t len)
{
	char file[PATH_MAX + 256];
	snprintf(file, sizeof(file), "%s/%s", b->mapper, a->name);
	int r;
	if (loop_bound_to(a->dev, file)) {
		a->loop_fd = open(a->dev, O_RDWR | O_CLOEXEC);
		if (a->loop_fd < 0 || !loop_bound_to(a->dev, file)) {
			if (a->loop_fd >= 0)
				close(a->loop_fd);
			a->loop_fd = -1;
			return tg_err(err, len, -EBUSY, "%s: its loop device %s is going away", a->name,
				      a->dev);
		}
	} else if ((r = thinp_loop_attach(file, false, a->dev, sizeof(a->dev), &a->loop_fd))) {
		a->loop_fd = -1;
		return tg_err(err, len, r, "loopback attach failed for %s: %s", file, strerror(-r));
	}
	a->pending = false;
	snprintf(dev, dlen, "%s", a->dev);
	return 0;
}

/* Release our hold on the loop and take the file out of the bridge. The loop lets go of
 * the file when its last opener closes (autoclear), and FUSE reports that release
 * asynchronously: -EBUSY until then. */
static int try_remove(struct lib_be *b, struct lib_active *a, char *err, size_t len)
{
	if (a->loop_fd >= 0) {
		tg_child_close(a->loop_fd);
		a->loop_fd = -1;
	}
	int r = tg_expose_remove(b->ex, a->name, err, len);
	if (r == -ENOENT)
		r = 0;
	if (!r)
		*a = b->act[--b->nr];
	return r;
}

static int lib_deactivate(void *be, const char *name, bool deferred, char *err, size_t len)
{
	struct lib_be *b = be;
	struct lib_active *a = find(b, name);
	if (!a)
		return 0;
	int r = try_remove(b, a, err, len);
	if (r == -EBUSY && deferred) {
		a->pending = true;
		return 0;
	}
	return r;
}

static bool lib_is_active(void *be, const char *name)
{
	struct lib_active *a = find(be, name);
	return a && !a->pending;
}

static int lib_suspend(void *be, const char *name, const char *mount, char *err, size_t len)
{
	struct lib_active *a = find(be, name);
	int r;
	if (mount && (r = tg_child_freeze(mount, true)))
		return tg_err(err, len, r, "Unable to suspend %s (freeze %s): %s", name, mount,
			      strerror(-r));
	if (a && a->loop_fd >= 0 && (r = tg_child_fsync(a->loop_fd)))
		return tg_err(err, len, r, "Unable to suspend %s (flush): %s", name, strerror(-r));
	return 0;
}

static int lib_resume(void *be, const char *name, const char *mount, char *err, size_t len)
{
	(void)be;
	int r = mount ? tg_child_freeze(mount, false) : 0;
	return r ? tg_err(err, len, r, "Unable to resume %s (thaw %s): %s", name, mount,
			  strerror(-r))
		 : 0;
}

static int lib_resize_data(void *be, uint64_t bytes, char *err, size_t len)
{
	struct lib_be *b = be;
	struct stat st;
	if (!stat(b->data_file, &st) && (uint64_t)st.st_size > bytes)
		return tg_err(err, len, -EINVAL, "devmapper: Can't shrink file");
	int r = thinp_pool_resize_data(b->pool, bytes);
	return r ? pool_fail(b, r, err, len) : 0;
}

static int lib_reap(void *be)
{
	struct lib_be *b = be;
	int pending = 0;
	for (size_t i = b->nr; i-- > 0;)
		if (b->act[i].pending && try_remove(b, &b->act[i], NULL, 0))
			pending++;
	return pending;
}

static void lib_close(void *be)
{
	struct lib_be *b = be;
	/* the loop lets go of its file asynchronously: wait for the bridge to see the release
	 * (20 s at most, Docker's 200 x 100 ms) rather than poll */
	for (size_t i = b->nr; i-- > 0;)
		if (try_remove(b, &b->act[i], NULL, 0) == -EBUSY &&
		    !tg_expose_wait_closed(b->ex, b->act[i].name, 20000))
			try_remove(b, &b->act[i], NULL, 0);
	if (b->ex)
		tg_expose_stop(b->ex);
	rmdir(b->mapper);
	thinp_control_stop(b->ctl);
	thinp_pool_close(b->pool);
	free(b->act);
	free(b);
}

static const struct tg_backend_ops lib_ops = {
	.name = "lib",
	.status = lib_status,
	.create_thin = lib_create_thin,
	.create_snap = lib_create_snap,
	.delete_thin = lib_delete,
	.set_transaction_id = lib_set_txn,
	.activate = lib_activate,
	.deactivate = lib_deactivate,
	.is_active = lib_is_active,
	.suspend = lib_suspend,
	.resume = lib_resume,
	.resize_data = lib_resize_data,
	.stats = lib_stats,
	.reap = lib_reap,
	.close = lib_close,
};

int tg_backend_lib_open(const struct tg_backend_args *a, const struct tg_backend_ops **ops,
			void **be, char *err, size_t len)
{
	const struct tg_options *o = a->opt;
	if (o->thinpooldev[0])
		return tg_err(err, len, -EINVAL,
			      "dm.thinpooldev=%s names a kernel pool: use --backend kernel (the "
			      "userspace backend keeps its pool in ROOT/devicemapper)", o->thinpooldev);
	struct lib_be *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->log = a->log;
	snprintf(b->mapper, sizeof(b->mapper), "%s/mapper", a->run_dir);
	snprintf(b->data_file, sizeof(b->data_file), "%s/data", a->pool_dir);
	snprintf(b->meta_file, sizeof(b->meta_file), "%s/metadata", a->pool_dir);
	snprintf(b->pool_name, sizeof(b->pool_name), "%s-pool", a->prefix);
	/* Docker's loopbackDir is 0700 */
	if (mkdir(a->pool_dir, 0700) && errno != EEXIST) {
		free(b);
		return tg_err(err, len, -errno, "Error creating %s: %s", a->pool_dir, strerror(errno));
	}
	struct thinp_pool_paths where = {.dir = a->pool_dir, .data_size = o->loopdatasize,
					 .meta_size = o->loopmetadatasize,
					 .how = THINP_OPEN_ANY};
	/* Docker's pool table: block zeroing off, low water mark 32768 blocks */
	struct thinp_pool_opts po = {.block_sectors = (uint32_t)(o->blocksize >> 9),
				     .skip_block_zeroing = true, .low_water_blocks = 32768};
	char why[512];
	int r = thinp_pool_open_paths(&where, &po, &b->pool, NULL, why, sizeof(why));
	if (r) {
		free(b);
		return tg_err(err, len, r, "devmapper: Error opening the pool in %s: %s", a->pool_dir,
			      why);
	}
	char sock[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s/control", a->pool_dir);
	if (thinp_control_serve(b->pool, sock, &b->ctl, why, sizeof(why)) && a->log)
		fprintf(a->log, "warning: no control socket: %s\n", why);
	*ops = &lib_ops;
	*be = b;
	return 0;
}
