/* `docker info`'s devicemapper block (docs/docker-driver.md §7): sizes from the pool's status
 * in blocks, the available space capped by the host file system under a loop file, and the
 * keys in the order of the last drivers (or, SPACED, as Docker 1.12 printed them). */
#include "graph/graph_internal.h"
#include "graph/graph_units.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>

struct out {
	struct tg_status_pair *p;
	size_t n;
	bool spaced;
};

static void put(struct out *o, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void put(struct out *o, const char *key, const char *fmt, ...)
{
	if (o->n == TG_STATUS_MAX)
		return;
	struct tg_status_pair *p = &o->p[o->n++];
	snprintf(p->key, sizeof(p->key), "%s", key);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->value, sizeof(p->value), fmt, ap);
	va_end(ap);
}

static void put_size(struct out *o, const char *key, uint64_t bytes)
{
	char h[32];
	tg_human_size(bytes, o->spaced, h, sizeof(h));
	put(o, key, "%s", h);
}

/* Docker lowers "Available" to what the file system under a loop file still has free
 * (f_bfree, not f_bavail). */
static uint64_t cap_by_host(const char *file, uint64_t avail)
{
	struct statfs sf;
	if (!*file || statfs(file, &sf))
		return avail;
	uint64_t host = (uint64_t)sf.f_bfree * (uint64_t)sf.f_bsize;
	return host < avail ? host : avail;
}

int tg_status(struct tg_driver *d, bool spaced, struct tg_status_pair *pairs, size_t *nr,
	      char *warning, size_t wlen, char *err, size_t len)
{
	struct tg_pool_info pi;
	char why[512];
	pthread_mutex_lock(&d->lock);
	int r = d->ops->status(d->be, &pi, why, sizeof(why));
	struct tg_device *base = tg_find(d, "");
	uint64_t base_size = base ? base->info.size : 0;
	unsigned deleted = d->nr_deleted;
	pthread_mutex_unlock(&d->lock);
	if (r)
		return tg_err(err, len, r, "devmapper: Error getting pool status: %s", why);
	uint64_t B = pi.block_bytes, M = 4096;
	uint64_t data_avail = cap_by_host(pi.data_file, (pi.data_total - pi.data_used) * B);
	uint64_t meta_avail = cap_by_host(pi.meta_file, (pi.meta_total - pi.meta_used) * M);
	uint64_t min_free = pi.data_total * d->opt.min_free_space / 100 * B;
	const char *udev = pi.udev_sync ? "true" : "false";
	const char *yes[] = {"false", "true"};
	struct out o = {pairs, 0, spaced};
	put(&o, "Pool Name", "%s", pi.pool_name);
	put_size(&o, "Pool Blocksize", B);
	put_size(&o, "Base Device Size", base_size);
	put(&o, "Backing Filesystem", "%s", d->ds.base_fs);
	if (!spaced) {
		put(&o, "Udev Sync Supported", "%s", udev);
		if (pi.data_dev[0])
			put(&o, "Data file", "%s", pi.data_dev);
		if (pi.meta_dev[0])
			put(&o, "Metadata file", "%s", pi.meta_dev);
		if (pi.data_file[0])
			put(&o, "Data loop file", "%s", pi.data_file);
		if (pi.meta_file[0])
			put(&o, "Metadata loop file", "%s", pi.meta_file);
	} else {
		put(&o, "Data file", "%s", pi.data_dev);
		put(&o, "Metadata file", "%s", pi.meta_dev);
	}
	put_size(&o, "Data Space Used", pi.data_used * B);
	put_size(&o, "Data Space Total", pi.data_total * B);
	put_size(&o, "Data Space Available", data_avail);
	put_size(&o, "Metadata Space Used", pi.meta_used * M);
	put_size(&o, "Metadata Space Total", pi.meta_total * M);
	put_size(&o, "Metadata Space Available", meta_avail);
	put_size(&o, "Thin Pool Minimum Free Space", min_free);
	if (spaced)
		put(&o, "Udev Sync Supported", "%s", udev);
	put(&o, "Deferred Removal Enabled", "%s", yes[d->opt.use_deferred_removal]);
	put(&o, "Deferred Deletion Enabled", "%s", yes[d->opt.use_deferred_deletion]);
	put(&o, "Deferred Deleted Device Count", "%u", deleted);
	if (spaced) {
		if (pi.data_file[0])
			put(&o, "Data loop file", "%s", pi.data_file);
		if (pi.meta_file[0])
			put(&o, "Metadata loop file", "%s", pi.meta_file);
	}
	if (pi.lib_version[0])
		put(&o, "Library Version", "%s", pi.lib_version);
	*nr = o.n;
	warning[0] = 0;
	if (pi.data_file[0] && !d->opt.no_warn_on_loop_devices)
		snprintf(warning, wlen, "%s",
			 spaced ? " WARNING: Usage of loopback devices is strongly discouraged for "
				  "production use. Use `--storage-opt dm.thinpooldev` to specify a "
				  "custom block storage device."
				: "WARNING: devicemapper: usage of loopback devices is strongly "
				  "discouraged for production use.\n         Use `--storage-opt "
				  "dm.thinpooldev` to specify a custom block storage device.");
	return 0;
}

int tg_pool_stats(struct tg_driver *d, bool reset, struct tg_class_count *out, size_t *nr,
		  char *err, size_t len)
{
	*nr = 0;
	if (!d->ops->stats)
		return tg_err(err, len, -ENOTSUP, "the %s backend keeps no per-class IO counters",
			      d->ops->name);
	char why[512] = "";
	pthread_mutex_lock(&d->lock);
	int r = d->ops->stats(d->be, reset, out, nr, why, sizeof(why));
	pthread_mutex_unlock(&d->lock);
	return r ? tg_err(err, len, r, "Error getting the pool's IO counters: %s", why) : 0;
}
