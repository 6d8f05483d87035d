/* The graph driver's operations (docs/docker-driver.md §5–§7): Init, Create, Remove, Get,
 * Put, Exists, List and Cleanup over the devices and transactions of graph_devices.c. */
#include "graph/graph_internal.h"
#include "graph/graph_units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int tg_err(char *err, size_t len, int code, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

void tg_log(struct tg_driver *d, const char *fmt, ...)
{
	if (!d->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(d->log, fmt, ap);
	va_end(ap);
	fputc('\n', d->log);
	fflush(d->log);
}

static int mkdir_mode(const char *path, mode_t mode, char *err, size_t len)
{
	if (mkdir(path, mode) && errno != EEXIST)
		return tg_err(err, len, -errno, "Error creating %s: %s", path, strerror(errno));
	return 0;
}

/* Docker's name prefix from ROOT's device and inode, with the old 12/20-bit split of dev_t. */
static void make_prefix(struct tg_driver *d, const struct stat *st)
{
	unsigned long long dev = st->st_dev;
	snprintf(d->prefix, sizeof(d->prefix), "docker-%llu:%llu-%llu", (dev >> 8) & 0xfff,
		 (dev & 0xff) | ((dev >> 12) & 0xfff00), (unsigned long long)st->st_ino);
}

static int load_devices(struct tg_driver *d, char *err, size_t len)
{
	struct tg_devinfo *list;
	size_t nr;
	char why[512];
	int r = tg_meta_load_devices(d->meta_dir, &list, &nr, why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Failed to load device files:%s", why);
	d->devs = calloc(nr ? nr : 1, sizeof(*d->devs));
	if (!d->devs) {
		free(list);
		return -ENOMEM;
	}
	d->cap_devs = nr ? nr : 1;
	for (size_t i = 0; i < nr; i++) {
		d->devs[d->nr_devs].info = list[i];
		d->nr_devs++;
		tg_ids_mark(&d->ids, (uint32_t)list[i].device_id, true);
		if (list[i].deleted)
			d->nr_deleted++;
	}
	free(list);
	return 0;
}

int tg_driver_open(const char *root, const struct tg_options *opt, enum tg_backend_kind kind,
		   FILE *log, struct tg_driver **out, char *err, size_t len)
{
	struct tg_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->opt = *opt;
	d->kind = kind;
	d->log = log;
	pthread_mutex_init(&d->lock, NULL);
	int r = mkdir_mode(root, 0700, err, len);
	if (r)
		goto fail;
	char real[PATH_MAX];
	if (!realpath(root, real)) {
		r = tg_err(err, len, -errno, "Error resolving %s: %s", root, strerror(errno));
		goto fail;
	}
	if (strlen(real) >= sizeof(d->root)) {
		r = tg_err(err, len, -ENAMETOOLONG, "ROOT %s is too long", real);
		goto fail;
	}
	tg_copy(d->root, sizeof(d->root), real);
	struct stat st;
	if (stat(d->root, &st)) {
		r = tg_err(err, len, -errno, "Error reading %s: %s", d->root, strerror(errno));
		goto fail;
	}
	make_prefix(d, &st);
	snprintf(d->pool_dir, sizeof(d->pool_dir), "%s/devicemapper", d->root);
	snprintf(d->meta_dir, sizeof(d->meta_dir), "%s/metadata", d->root);
	snprintf(d->mnt_dir, sizeof(d->mnt_dir), "%s/mnt", d->root);
	snprintf(d->run_dir, sizeof(d->run_dir), "%s/thinbench", d->root);
	if ((r = mkdir_mode(d->meta_dir, 0700, err, len)) ||
	    (r = mkdir_mode(d->run_dir, 0700, err, len)) || (r = tg_ids_init(&d->ids)))
		goto fail;
	struct tg_backend_args a = {.root = d->root, .pool_dir = d->pool_dir,
				    .run_dir = d->run_dir, .prefix = d->prefix, .opt = &d->opt,
				    .log = log};
	r = kind == TG_BACKEND_LIB ? tg_backend_lib_open(&a, &d->ops, &d->be, err, len)
				   : tg_backend_kernel_open(&a, &d->ops, &d->be, err, len);
	if (r)
		goto fail;
	if (!d->opt.thinpooldev[0] && !d->opt.no_warn_on_loop_devices)
		tg_log(d, "Usage of loopback devices is strongly discouraged for production use. "
			  "Please use `--storage-opt dm.thinpooldev` or use `man dockerd` to refer to "
			  "dm.thinpooldev section.");
	/* the pool is ours now: whatever is still mounted below ROOT was left by a holder
	 * that was killed */
	tg_unmount_all(d);
	struct tg_pool_info pi;
	char why[512];
	if ((r = d->ops->status(d->be, &pi, why, sizeof(why)))) {
		r = tg_err(err, len, r, "devmapper: Error getting pool status: %s", why);
		goto fail_be;
	}
	d->transaction_id = pi.transaction_id;
	if ((r = tg_meta_load_deviceset(d->meta_dir, &d->ds, why, sizeof(why)))) {
		r = tg_err(err, len, r, "%s", why);
		goto fail_be;
	}
	d->ids.next = (uint32_t)(d->ds.next_device_id & TG_MAX_DEVICE_ID);
	if ((r = load_devices(d, err, len)) || (r = tg_process_pending_txn(d, err, len)) ||
	    (r = tg_setup_base(d, err, len)))
		goto fail_be;
	*out = d;
	return 0;
fail_be:
	d->ops->close(d->be);
fail:
	tg_ids_free(&d->ids);
	free(d->devs);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return r;
}

int tg_driver_close(struct tg_driver *d)
{
	if (!d)
		return 0;
	char why[512], dir[PATH_MAX + TG_HASH_MAX + 8];
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nr_devs; i++) {
		struct tg_device *dev = &d->devs[i];
		if (dev->mounts) {
			snprintf(dir, sizeof(dir), "%s/%s", d->mnt_dir, dev->info.hash);
			if (tg_unmount(dir, why, sizeof(why)))
				tg_log(d, "%s", why);
			rmdir(dir);
			dev->mounts = 0;
		}
		if (tg_deactivate(d, dev, false, why, sizeof(why)))
			tg_log(d, "%s", why);
	}
	/* Docker's Shutdown saves the set (next_device_id) first */
	d->ds.next_device_id = d->ids.next;
	if (tg_meta_save_deviceset(d->meta_dir, &d->ds, why, sizeof(why)))
		tg_log(d, "%s", why);
	pthread_mutex_unlock(&d->lock);
	d->ops->close(d->be);
	tg_unmount_all(d);
	tg_ids_free(&d->ids);
	free(d->devs);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return 0;
}

int tg_create(struct tg_driver *d, const char *id, const char *parent, uint64_t size, char *err,
	      size_t len)
{
	int r = tg_meta_check_hash(id, err, len);
	if (r)
		return r;
	if (!parent)
		parent = "";
	pthread_mutex_lock(&d->lock);
	struct tg_device *p = tg_find(d, parent), *dev;
	if (!p) {
		r = tg_err(err, len, -ENOENT, "devmapper: Unknown device %s", parent);
		goto out;
	}
	if (p->info.deleted) {
		r = tg_err(err, len, -EINVAL,
			   "devmapper: Base device %s has been marked for deferred deletion", parent);
		goto out;
	}
	if ((dev = tg_find(d, id))) {
		r = tg_err(err, len, -EEXIST, "devmapper: device %s already exists. Deleted=%s", id,
			   dev->info.deleted ? "true" : "false");
		goto out;
	}
	if (size && size < p->info.size) {
		char h[32];
		tg_human_size(p->info.size, false, h, sizeof(h));
		r = tg_err(err, len, -EINVAL, "devmapper: Container size cannot be smaller than %s", h);
		goto out;
	}
	if ((r = tg_pool_has_free_space(d, err, len)))
		goto out;
	/* snapshotting a device in use: its IO (and file system) frozen across the message,
	 * as Docker suspends an active origin */
	char pname[200], pmount[PATH_MAX + TG_HASH_MAX + 8];
	tg_device_name(d, p->info.hash, pname, sizeof(pname));
	bool active = d->ops->is_active(d->be, pname);
	snprintf(pmount, sizeof(pmount), "%s/%s", d->mnt_dir, p->info.hash);
	if (active && (r = d->ops->suspend(d->be, pname, p->mounts ? pmount : NULL, err, len)))
		goto out;
	size_t pi = (size_t)(p - d->devs);
	r = tg_create_device(d, id, p, p->info.size, &dev, err, len);
	p = &d->devs[pi]; /* the table may have moved */
	if (active) {
		char why[512];
		int rr = d->ops->resume(d->be, pname, p->mounts ? pmount : NULL, why, sizeof(why));
		if (rr && !r)
			r = tg_err(err, len, rr, "%s", why);
	}
	if (r || !size || size == dev->info.size)
		goto out;
	/* a larger container: its size recorded, its file system grown (AddDevice) */
	dev->info.size = size;
	char why[512];
	if ((r = tg_meta_save_device(d->meta_dir, &dev->info, why, sizeof(why))))
		r = tg_err(err, len, r, "%s", why);
	else
		r = tg_grow_fs(d, dev, err, len);
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}

int tg_remove(struct tg_driver *d, const char *id, char *err, size_t len)
{
	pthread_mutex_lock(&d->lock);
	struct tg_device *dev = tg_find(d, id);
	int r = 0;
	if (dev && !*id)
		r = tg_err(err, len, -EINVAL, "devmapper: the base device cannot be removed");
	else if (dev && dev->mounts)
		r = tg_err(err, len, -EBUSY, "failed to remove device %s: devmapper: device is mounted "
					     "(put it first)", id);
	else if (dev) {
		char why[1024];
		r = tg_delete_device(d, dev, false, why, sizeof(why));
		if (r)
			tg_err(err, len, r, "failed to remove device %s: %s", id, why);
	}
	if (!r && *id) {
		char dir[PATH_MAX + TG_HASH_MAX + 8];
		snprintf(dir, sizeof(dir), "%s/%s", d->mnt_dir, id);
		if (rmdir(dir) && errno != ENOENT)
			tg_log(d, "devmapper: Failed to remove mount point %s: %s", dir, strerror(errno));
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

static int write_id_file(const char *dir, const char *id, char *err, size_t len)
{
	char path[PATH_MAX + TG_HASH_MAX + 16];
	snprintf(path, sizeof(path), "%s/id", dir);
	if (!access(path, F_OK))
		return 0;
	FILE *f = fopen(path, "wx");
	if (!f)
		return tg_err(err, len, -errno, "Error creating %s: %s", path, strerror(errno));
	fchmod(fileno(f), 0600);
	int bad = fputs(id, f) < 0;
	bad |= fclose(f) != 0;
	return bad ? tg_err(err, len, -EIO, "Error writing %s", path) : 0;
}

int tg_get(struct tg_driver *d, const char *id, char *path, size_t plen, char *err, size_t len)
{
	pthread_mutex_lock(&d->lock);
	struct tg_device *dev = tg_find(d, id);
	char dir[PATH_MAX + TG_HASH_MAX + 8], rootfs[sizeof(dir) + 8];
	snprintf(dir, sizeof(dir), "%s/%s", d->mnt_dir, id);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	int r = 0;
	if (!dev) {
		r = tg_err(err, len, -ENOENT, "devmapper: Unknown device %s", id);
		goto out;
	}
	if (dev->mounts) {
		dev->mounts++;
		goto done;
	}
	if (dev->info.deleted) {
		r = tg_err(err, len, -EINVAL,
			   "devmapper: Can't mount device %s as it has been marked for deferred deletion",
			   id);
		goto out;
	}
	if ((r = mkdir_mode(d->mnt_dir, 0755, err, len)) || (r = mkdir_mode(dir, 0755, err, len)))
		goto out;
	if ((r = tg_mount_device(d, dev, dir, err, len))) {
		rmdir(dir);
		goto out;
	}
	if ((r = mkdir_mode(rootfs, 0755, err, len)) || (r = write_id_file(dir, id, err, len))) {
		tg_unmount(dir, NULL, 0);
		goto out;
	}
	dev->mounts = 1;
done:
	snprintf(path, plen, "%s", rootfs);
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}

int tg_put(struct tg_driver *d, const char *id, char *err, size_t len)
{
	pthread_mutex_lock(&d->lock);
	struct tg_device *dev = tg_find(d, id);
	int r = 0;
	if (!dev)
		r = tg_err(err, len, -ENOENT, "devmapper: Unknown device %s", id);
	else if (!dev->mounts)
		r = tg_err(err, len, -EINVAL, "devmapper: device %s is not mounted", id);
	else if (--dev->mounts == 0) {
		char dir[PATH_MAX + TG_HASH_MAX + 8], why[512];
		snprintf(dir, sizeof(dir), "%s/%s", d->mnt_dir, id);
		if ((r = tg_unmount(dir, why, sizeof(why)))) {
			tg_log(d, "Error unmounting device %s: %s", id, why);
			dev->mounts = 1;
			tg_err(err, len, r, "Error unmounting device %s: %s", id, why);
		} else {
			rmdir(dir);
			r = tg_deactivate(d, dev, d->opt.use_deferred_removal, err, len);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

bool tg_exists(struct tg_driver *d, const char *id)
{
	pthread_mutex_lock(&d->lock);
	bool e = tg_find(d, id) != NULL;
	pthread_mutex_unlock(&d->lock);
	return e;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void tg_list_free(char **ids, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(ids[i]);
	free(ids);
}

int tg_list(struct tg_driver *d, char ***ids, size_t *nr)
{
	pthread_mutex_lock(&d->lock);
	char **l = calloc(d->nr_devs ? d->nr_devs : 1, sizeof(*l));
	size_t n = 0;
	int r = l ? 0 : -ENOMEM;
	for (size_t i = 0; !r && i < d->nr_devs; i++)
		if (!(l[n++] = strdup(d->devs[i].info.hash)))
			r = -ENOMEM;
	pthread_mutex_unlock(&d->lock);
	if (r) {
		tg_list_free(l, n);
		return r;
	}
	qsort(l, n, sizeof(*l), by_name);
	*ids = l;
	*nr = n;
	return 0;
}

int tg_device(struct tg_driver *d, const char *id, struct tg_device_view *v, char *err, size_t len)
{
	pthread_mutex_lock(&d->lock);
	struct tg_device *dev = tg_find(d, id);
	int r = 0;
	if (!dev) {
		r = tg_err(err, len, -ENOENT, "devmapper: Unknown device %s", id);
	} else {
		memset(v, 0, sizeof(*v));
		snprintf(v->hash, sizeof(v->hash), "%s", dev->info.hash);
		v->device_id = dev->info.device_id;
		v->size = dev->info.size;
		v->transaction_id = dev->info.transaction_id;
		v->initialized = dev->info.initialized;
		v->deleted = dev->info.deleted;
		v->mounts = dev->mounts;
		tg_device_name(d, dev->info.hash, v->name, sizeof(v->name));
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

int tg_delete_deferred(struct tg_driver *d)
{
	pthread_mutex_lock(&d->lock);
	d->ops->reap(d->be);
	int deleted = 0;
	char why[1024];
	/* (a delete moves the table's last entry into the freed slot: walk from the end) */
	for (size_t i = d->nr_devs; i-- > 0;) {
		struct tg_device *dev = &d->devs[i];
		if (!dev->info.deleted)
			continue;
		char hash[TG_HASH_MAX + 1];
		snprintf(hash, sizeof(hash), "%s", dev->info.hash);
		int r = tg_delete_device(d, dev, false, why, sizeof(why));
		if (!r && !tg_find(d, hash))
			deleted++;
		else if (r)
			tg_log(d, "devmapper: Error deleting device %s: %s", hash, why);
	}
	pthread_mutex_unlock(&d->lock);
	return deleted;
}

int tg_resize_pool(struct tg_driver *d, uint64_t bytes, char *err, size_t len)
{
	pthread_mutex_lock(&d->lock);
	int r = d->ops->resize_data(d->be, bytes, err, len);
	pthread_mutex_unlock(&d->lock);
	return r;
}
