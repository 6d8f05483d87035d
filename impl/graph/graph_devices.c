/* Devices and Docker's transaction protocol (docs/docker-driver.md §4, §5, §8): every create
 * and delete opens a transaction on disk first and raises the pool's transaction id by one
 * last, so a crash at any step leaves either no trace of a create or a delete to finish,
 * which the next start rolls back (tg_process_pending_txn). */
#include "graph/graph_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tg_device *tg_find(struct tg_driver *d, const char *hash)
{
	for (size_t i = 0; i < d->nr_devs; i++)
		if (!strcmp(d->devs[i].info.hash, hash))
			return &d->devs[i];
	return NULL;
}

void tg_device_name(const struct tg_driver *d, const char *hash, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%s", d->prefix, *hash ? hash : "base");
}

static struct tg_device *add_device(struct tg_driver *d, const struct tg_devinfo *info)
{
	if (d->nr_devs == d->cap_devs) {
		size_t cap = d->cap_devs ? d->cap_devs * 2 : 16;
		struct tg_device *n = realloc(d->devs, cap * sizeof(*n));
		if (!n)
			return NULL;
		d->devs = n;
		d->cap_devs = cap;
	}
	struct tg_device *dev = &d->devs[d->nr_devs++];
	memset(dev, 0, sizeof(*dev));
	dev->info = *info;
	return dev;
}

static void drop_device(struct tg_driver *d, struct tg_device *dev)
{
	size_t i = (size_t)(dev - d->devs);
	d->devs[i] = d->devs[--d->nr_devs];
}

static int open_txn(struct tg_driver *d, const char *hash, uint64_t id, char *err, size_t len)
{
	d->txn.open_transaction_id = d->transaction_id + 1;
	snprintf(d->txn.device_hash, sizeof(d->txn.device_hash), "%s", hash);
	d->txn.device_id = id;
	char why[512];
	int r = tg_meta_save_txn(d->meta_dir, &d->txn, why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Error saving transaction metadata: %s", why);
	return 0;
}

static int refresh_txn(struct tg_driver *d, uint64_t id, char *err, size_t len)
{
	d->txn.device_id = id;
	char why[512];
	int r = tg_meta_save_txn(d->meta_dir, &d->txn, why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Error saving transaction metadata: %s", why);
	return 0;
}

static int close_txn(struct tg_driver *d, char *err, size_t len)
{
	char why[512];
	int r = d->ops->set_transaction_id(d->be, d->transaction_id, d->txn.open_transaction_id,
					   why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Error setting devmapper transaction ID: %s",
			      why);
	d->transaction_id = d->txn.open_transaction_id;
	return 0;
}

int tg_create_device(struct tg_driver *d, const char *hash, const struct tg_device *origin,
		     uint64_t size, struct tg_device **out, char *err, size_t len)
{
	char why[512];
	uint32_t id;
	bool opened = false;
	int r;
	for (;;) {
		if (tg_ids_alloc(&d->ids, &id))
			return tg_err(err, len, -ENOSPC, "devmapper: Unable to find a free device ID");
		r = opened ? refresh_txn(d, id, err, len) : open_txn(d, hash, id, err, len);
		if (r) {
			tg_ids_mark(&d->ids, id, false);
			return r;
		}
		opened = true;
		r = origin ? d->ops->create_snap(d->be, id, origin->info.device_id, why, sizeof(why))
			   : d->ops->create_thin(d->be, id, why, sizeof(why));
		if (r != -EEXIST)
			break;
		/* the pool has a thin no metadata file names (a rollback whose delete failed):
		 * Docker keeps the id marked and takes the next one */
		tg_log(d, "devmapper: Device ID %u exists in pool but it is supposed to be unused", id);
	}
	if (r) {
		tg_ids_mark(&d->ids, id, false);
		return tg_err(err, len, r, "devmapper: Error creating %s device %s: %s",
			      origin ? "snap" : "thin", *hash ? hash : "base", why);
	}
	struct tg_devinfo info = {.device_id = id, .size = size,
				  .transaction_id = d->txn.open_transaction_id};
	snprintf(info.hash, sizeof(info.hash), "%s", hash);
	r = tg_meta_save_device(d->meta_dir, &info, why, sizeof(why));
	struct tg_device *dev = r ? NULL : add_device(d, &info);
	if (!dev) {
		if (!r)
			tg_meta_remove_device(d->meta_dir, hash, NULL, 0);
		d->ops->delete_thin(d->be, id, NULL, 0);
		tg_ids_mark(&d->ids, id, false);
		return tg_err(err, len, r ? r : -ENOMEM, "devmapper: Error registering device %s: %s",
			      *hash ? hash : "base", r ? why : "out of memory");
	}
	r = close_txn(d, err, len);
	if (r) {
		tg_meta_remove_device(d->meta_dir, hash, NULL, 0);
		d->ops->delete_thin(d->be, id, NULL, 0);
		tg_ids_mark(&d->ids, id, false);
		drop_device(d, dev);
		return r;
	}
	*out = dev;
	return 0;
}

/* Docker's issueDiscard: the pool does not give a deleted thin's blocks back to the
 * sparse loop file, so the whole device is discarded first — only when nobody has it open. */
static void issue_discard(struct tg_driver *d, struct tg_device *dev)
{
	if (dev->mounts)
		return;
	char why[512];
	if (tg_activate(d, dev, why, sizeof(why)))
		return;
	char *argv[] = {"blkdiscard", dev->dev, NULL};
	char out[512];
	int r = tg_run(argv, out, sizeof(out));
	if (r)
		tg_log(d, "devmapper: Error discarding device %s: %s", dev->dev, out);
	sync();
}

int tg_delete_device(struct tg_driver *d, struct tg_device *dev, bool sync_delete, char *err,
		     size_t len)
{
	char why[512];
	if (d->opt.blkdiscard)
		issue_discard(d, dev);
	int r = tg_deactivate(d, dev, d->opt.use_deferred_deletion && !sync_delete, why, sizeof(why));
	if (r && !(r == -EBUSY && d->opt.use_deferred_deletion && !sync_delete))
		return tg_err(err, len, r, "devmapper: Error deactivating device %s: %s",
			      dev->info.hash, why);
	char hash[TG_HASH_MAX + 1];
	snprintf(hash, sizeof(hash), "%s", dev->info.hash);
	uint64_t id = dev->info.device_id;
	r = open_txn(d, hash, id, err, len);
	if (r)
		return r;
	r = d->ops->delete_thin(d->be, id, why, sizeof(why));
	if (!r) {
		r = tg_meta_remove_device(d->meta_dir, hash, why, sizeof(why));
		if (r) {
			tg_err(err, len, r, "%s", why);
		} else {
			if (dev->info.deleted)
				d->nr_deleted--;
			tg_ids_mark(&d->ids, (uint32_t)id, false);
			drop_device(d, dev);
		}
	} else if (r == -EBUSY && d->opt.use_deferred_deletion && !sync_delete) {
		r = 0;
		if (!dev->info.deleted) {
			dev->info.deleted = true;
			r = tg_meta_save_device(d->meta_dir, &dev->info, why, sizeof(why));
			if (r) {
				dev->info.deleted = false;
				tg_err(err, len, r, "%s", why);
			} else {
				d->nr_deleted++;
			}
		}
	} else {
		tg_err(err, len, r, "devmapper: Error deleting device %s: %s", hash, why);
	}
	/* Docker closes the transaction whatever happened, and ignores its error */
	close_txn(d, NULL, 0);
	return r;
}

int tg_process_pending_txn(struct tg_driver *d, char *err, size_t len)
{
	char why[512];
	struct tg_txn t;
	int r = tg_meta_load_txn(d->meta_dir, &t, why, sizeof(why));
	if (r == -ENOENT) {
		d->txn.open_transaction_id = d->transaction_id;
		return 0;
	}
	if (r)
		return tg_err(err, len, r, "%s", why);
	d->txn = t;
	if (t.open_transaction_id == d->transaction_id)
		return 0;
	if (t.open_transaction_id < d->transaction_id) {
		tg_log(d, "devmapper: Open Transaction id %llu is less than pool transaction id %llu",
		       (unsigned long long)t.open_transaction_id,
		       (unsigned long long)d->transaction_id);
		return 0;
	}
	tg_log(d, "devmapper: Rolling back open transaction: TransactionID=%llu hash=%s device_id=%llu",
	       (unsigned long long)t.open_transaction_id, t.device_hash,
	       (unsigned long long)t.device_id);
	r = d->ops->delete_thin(d->be, t.device_id, why, sizeof(why));
	if (r)
		tg_log(d, "devmapper: Unable to delete device: %s", why);
	if (!tg_meta_remove_device(d->meta_dir, t.device_hash, why, sizeof(why))) {
		tg_ids_mark(&d->ids, (uint32_t)t.device_id, false);
		struct tg_device *dev = tg_find(d, t.device_hash);
		if (dev && dev->info.device_id == t.device_id) {
			if (dev->info.deleted)
				d->nr_deleted--;
			drop_device(d, dev);
		}
	}
	r = tg_meta_remove_txn(d->meta_dir, why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Unable to remove transaction metadata: %s", why);
	d->txn.open_transaction_id = d->transaction_id;
	return 0;
}

/* Docker's poolHasFreeSpace for one kind of block: at least ⌊total·p/100⌋ (and 1) free, in
 * blocks; WHAT is "data" or "metadata", as in its message. */
static int enough_free(uint64_t used, uint64_t total, unsigned pct, const char *what, char *err,
		       size_t len)
{
	uint64_t min = total * pct / 100;
	if (!min)
		min = 1;
	if (total - used >= min)
		return 0;
	return tg_err(err, len, -ENOSPC,
		      "devmapper: Thin Pool has %llu free %s blocks which is less than minimum "
		      "required %llu free %s blocks. Create more free %sspace in thin pool or use "
		      "dm.min_free_space option to change behavior",
		      (unsigned long long)(total - used), what, (unsigned long long)min, what,
		      strcmp(what, "data") ? "metadata " : "");
}

int tg_pool_has_free_space(struct tg_driver *d, char *err, size_t len)
{
	if (!d->opt.min_free_space)
		return 0;
	struct tg_pool_info st;
	char why[512];
	int r = d->ops->status(d->be, &st, why, sizeof(why));
	if (r)
		return tg_err(err, len, r, "devmapper: Error getting pool status: %s", why);
	r = enough_free(st.data_used, st.data_total, d->opt.min_free_space, "data", err, len);
	return r ? r : enough_free(st.meta_used, st.meta_total, d->opt.min_free_space, "metadata",
				   err, len);
}
