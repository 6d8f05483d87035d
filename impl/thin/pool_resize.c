/* Growing the pool: the data device (more data blocks, which also ends the
 * out-of-data-space mode) and the metadata device (which ends the read-only
 * mode that running out of metadata space leaves). */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "thin/pool_internal.h"

/* Files and loop devices over files grow here; any other block device is grown by its owner
 * (dm-thin expects the same), and a resize then just finds the new size. */
static int grow_dev(struct thinp_pool *p, struct tp_dev *d, const char *what, uint64_t new_bytes)
{
	int r = tp_dev_resize(d, new_bytes);
	if (r == -ENOTSUP && d->ops->refresh_size) {
		r = d->ops->refresh_size(d);
		if (!r && d->size < new_bytes)
			return pool_err(p, -ENOSPC,
			                "the %s device has %llu bytes, fewer than %llu: grow it first "
			                "(lvextend, a bigger device), then extend the pool",
			                what, (unsigned long long)d->size, (unsigned long long)new_bytes);
	}
	if (r)
		pool_err(p, r, "cannot grow the %s device to %llu bytes: %s", what,
		         (unsigned long long)new_bytes, strerror(-r));
	return r;
}

int thinp_pool_resize_data(struct thinp_pool *p, uint64_t new_bytes)
{
	struct meta_mark m;
	md_lock(p, &m);
	int r = pool_check_writable(p);
	if (r)
		goto out;
	if (new_bytes > p->data->size) {
		if ((r = grow_dev(p, p->data, "data", new_bytes)))
			goto out;
	}
	uint64_t nr = new_bytes / p->block_bytes;
	if (nr < tmd_nr_data_blocks(p->md)) {
		r = pool_err(p, -EINVAL, "cannot shrink the pool from %llu to %llu data blocks",
			     (unsigned long long)tmd_nr_data_blocks(p->md), (unsigned long long)nr);
		goto out;
	}
	if (nr > tmd_nr_data_blocks(p->md)) {
		r = tmd_resize_data(p->md, nr);
		if (r) {
			pool_metadata_failed(p, r, "resize data");
			goto out;
		}
	}
	p->low_water_armed = true; /* a resume re-arms the event */
	if (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE)
		mode_set(p, THINP_MODE_WRITE);
	p->no_space_timed_out = false;
	pthread_cond_broadcast(&p->space_cv);
out:
	md_unlock(p, &m, NULL);
	return r;
}

int thinp_pool_resize_metadata(struct thinp_pool *p, uint64_t new_bytes)
{
	struct meta_mark m;
	md_lock(p, &m);
	int r = 0;
	if (mode_get(p) == THINP_MODE_FAIL) {
		r = pool_check_writable(p);
		goto out;
	}
	if (new_bytes > p->meta->size) {
		if ((r = grow_dev(p, p->meta, "metadata", new_bytes)))
			goto out;
	}
	if (mode_get(p) == THINP_MODE_READ_ONLY && !tmd_needs_check(p->md) && !p->o.read_only)
		mode_set(p, THINP_MODE_WRITE); /* out of metadata space ends with a resize */
	r = pool_check_writable(p);
	if (r)
		goto out;
	r = tmd_resize_metadata(p->md);
	if (r)
		pool_metadata_failed(p, r, "resize metadata");
out:
	md_unlock(p, &m, NULL);
	return r;
}
