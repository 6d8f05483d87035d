/* The thin pool: dm-thin's IO paths (drivers/md/dm-thin.c) over libthinp
 * metadata and a data device.
 *
 * Locking, outermost first: a per-virtual-block cell (striped rwlocks, the
 * role of the kernel's bio prison: one provisioner or copier per block,
 * readers excluded while a block is remapped), the commit barrier (held
 * shared from allocating a data block until its mapping is inserted, so a
 * commit never records an allocation without its mapping), and md_lock
 * around every metadata access. Data IO runs outside md_lock. */
#include "thinp.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/dev.h"
#include "thin/metadata.h"

#define NR_CELLS 1024u
#define MAX_RUN 32u /* whole blocks of one write handled together (write_whole_run); also
                     * keeps the locks one thread holds under ThreadSanitizer's 64 */
#define MAX_RUN_BYTES (16u << 20) /* and at most this many bytes */
#define COPY_CHUNK (1u << 20)

struct thinp_pool {
	struct tp_dev *data, *meta;
	struct tmd *md;
	struct thinp_pool_opts o;
	uint32_t block_sectors;
	uint64_t block_bytes;

	pthread_mutex_t md_lock;
	pthread_cond_t space_cv; /* with md_lock: data space grew or mode changed */
	pthread_rwlock_t commit_barrier;
	pthread_rwlock_t cells[NR_CELLS];

	/* written under md_lock; also read without it (fast paths, status),
	 * so every access goes through mode_get/mode_set */
	enum thinp_pool_mode mode;
	bool low_water_armed;
	/* no_space_timeout expired: error_if_no_space until the pool leaves
	 * out-of-data-space mode (do_no_space_timeout()) */
	bool no_space_timed_out;
	uint64_t *changed_ids; /* thins changed in the open transaction */
	/* data blocks unmapped (count 0) in the open transaction: passed down
	 * only once the commit that unmaps them is durable, because until then
	 * the committed metadata may still map them */
	uint64_t *pd_blocks;
	size_t nr_pd, cap_pd;
	size_t nr_changed, cap_changed;

	pthread_mutex_t stats_lock;
	struct thinp_class_stats stats[THINP_NR_CLASSES];

	pthread_mutex_t timer_lock;
	pthread_cond_t timer_cv;
	pthread_t timer;
	bool timer_running, stopping;

	pthread_mutex_t err_lock; /* err is set by any IO thread */
	char err[512];
};

struct thinp_thin {
	struct thinp_pool *p;
	uint64_t id;
	uint64_t size;
};

static enum thinp_pool_mode mode_get(const struct thinp_pool *p)
{
	return __atomic_load_n(&p->mode, __ATOMIC_ACQUIRE);
}

static void mode_set(struct thinp_pool *p, enum thinp_pool_mode m)
{
	__atomic_store_n(&p->mode, m, __ATOMIC_RELEASE);
}

static const char *const class_names[THINP_NR_CLASSES] = {
	"read_unmapped",        "read_mapped", "read_shared",   "write_overwrite",
	"write_provision",      "write_provision_zero",         "write_provision_full",
	"write_cow",            "write_cow_full",               "discard",
	"flush",                "commit"};

const char *thinp_class_name(enum thinp_class c)
{
	return (unsigned)c < THINP_NR_CLASSES ? class_names[c] : "unknown";
}

static int perr(struct thinp_pool *p, int r, const char *fmt, ...)
{
	char msg[sizeof(p->err)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->err_lock);
	memcpy(p->err, msg, sizeof(msg));
	pthread_mutex_unlock(&p->err_lock);
	return r;
}

const char *thinp_pool_error(struct thinp_pool *p) { return p->err; }

void thinp_pool_error_copy(struct thinp_pool *p, char *buf, size_t len)
{
	pthread_mutex_lock(&p->err_lock);
	snprintf(buf, len, "%s", p->err);
	pthread_mutex_unlock(&p->err_lock);
}
uint32_t thinp_pool_block_bytes(const struct thinp_pool *p) { return (uint32_t)p->block_bytes; }

/* ---- cost accounting ---- */

static void add_cost(struct thinp_class_stats *a, const struct thinp_class_stats *b)
{
	a->ops += b->ops;
	a->bytes_requested += b->bytes_requested;
	a->data_bytes_read += b->data_bytes_read;
	a->data_bytes_written += b->data_bytes_written;
	a->data_bytes_zeroed += b->data_bytes_zeroed;
	a->meta_bytes_read += b->meta_bytes_read;
	a->meta_bytes_written += b->meta_bytes_written;
}

static void record(struct thinp_pool *p, enum thinp_class c, const struct thinp_class_stats *cost)
{
	pthread_mutex_lock(&p->stats_lock);
	add_cost(&p->stats[c], cost);
	pthread_mutex_unlock(&p->stats_lock);
}

void thinp_pool_stats(struct thinp_pool *p, struct thinp_class_stats out[THINP_NR_CLASSES])
{
	pthread_mutex_lock(&p->stats_lock);
	memcpy(out, p->stats, sizeof(p->stats));
	pthread_mutex_unlock(&p->stats_lock);
}

void thinp_pool_stats_reset(struct thinp_pool *p)
{
	pthread_mutex_lock(&p->stats_lock);
	memset(p->stats, 0, sizeof(p->stats));
	pthread_mutex_unlock(&p->stats_lock);
}

/* Metadata IO happens only under md_lock, so the device counters' movement
 * inside a locked section belongs to that section. */
struct meta_mark {
	uint64_t r, w;
};

static void md_lock(struct thinp_pool *p, struct meta_mark *m)
{
	pthread_mutex_lock(&p->md_lock);
	m->r = p->meta->ctr.bytes_read;
	m->w = p->meta->ctr.bytes_written;
}

static void md_unlock(struct thinp_pool *p, struct meta_mark *m, struct thinp_class_stats *cost)
{
	if (cost) {
		cost->meta_bytes_read += p->meta->ctr.bytes_read - m->r;
		cost->meta_bytes_written += p->meta->ctr.bytes_written - m->w;
	}
	pthread_mutex_unlock(&p->md_lock);
}

/* ---- modes and metadata failure ---- */

/* A metadata operation failed: drop the transaction, flag the superblock
 * for thin_check and go read-only, as metadata_operation_failed() does.
 * Called with md_lock held. */
static int metadata_failed(struct thinp_pool *p, int r, const char *what)
{
	char why[512];
	snprintf(why, sizeof(why), "%s", tmd_error(p->md));
	if (r == -ENOSPC) {
		perr(p, r, "%s: out of metadata space (%s); the pool is read-only until the metadata device is grown",
		     what, why);
	} else {
		perr(p, r, "%s: metadata operation failed (%s); the pool is read-only and needs thin_check",
		     what, why);
	}
	int ar = tmd_abort(p->md);
	if (!ar && r != -ENOSPC) {
		tmd_set_needs_check(p->md);
		ar = tmd_commit(p->md);
	}
	mode_set(p, ar ? THINP_MODE_FAIL : THINP_MODE_READ_ONLY);
	p->nr_changed = 0;
	p->nr_pd = 0; /* the aborted transaction maps them again */
	pthread_cond_broadcast(&p->space_cv);
	return r;
}

static int check_writable(struct thinp_pool *p)
{
	switch (mode_get(p)) {
	case THINP_MODE_FAIL:
		return perr(p, -EIO, "the pool has failed: all IO errors until it is repaired");
	case THINP_MODE_READ_ONLY:
		return perr(p, -EROFS,
			    "the pool is read-only%s", tmd_needs_check(p->md)
							   ? " and needs thin_check"
							   : "");
	default:
		return 0;
	}
}

static int mark_changed(struct thinp_pool *p, uint64_t id)
{
	for (size_t i = 0; i < p->nr_changed; i++)
		if (p->changed_ids[i] == id)
			return 0;
	if (p->nr_changed == p->cap_changed) {
		size_t cap = p->cap_changed ? p->cap_changed * 2 : 16;
		uint64_t *n = realloc(p->changed_ids, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->changed_ids = n;
		p->cap_changed = cap;
	}
	p->changed_ids[p->nr_changed++] = id;
	return 0;
}

static bool thin_changed(struct thinp_pool *p, uint64_t id)
{
	for (size_t i = 0; i < p->nr_changed; i++)
		if (p->changed_ids[i] == id)
			return true;
	return false;
}

/* ---- commit ---- */

/* Called with the commit barrier held exclusively and md_lock held. */
static int commit_locked(struct thinp_pool *p, struct thinp_class_stats *cost)
{
	if (mode_get(p) == THINP_MODE_FAIL || mode_get(p) == THINP_MODE_READ_ONLY || p->o.read_only)
		return 0;
	int r = tmd_commit(p->md);
	if (r)
		return metadata_failed(p, r, "commit");
	p->nr_changed = 0;
	/* deferred passdown; the barrier is held exclusively, so nothing can
	 * allocate a block between the commit and its discard. A block freed
	 * and reallocated within the transaction has a count again: skip it. */
	for (size_t i = 0; i < p->nr_pd; i++) {
		uint32_t count;
		if (tmd_data_count(p->md, p->pd_blocks[i], &count) || count)
			continue;
		/* advisory, like any discard: the unmap is already durable and a
		 * device that cannot discard just keeps the stale bytes */
		(void)tp_dev_discard(p->data, p->pd_blocks[i] * p->block_bytes, p->block_bytes);
	}
	p->nr_pd = 0;
	/* check_for_space(): blocks freed (and now committed) end the
	 * out-of-data-space mode */
	if (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE && tmd_nr_free_data_blocks(p->md)) {
		mode_set(p, THINP_MODE_WRITE);
		p->no_space_timed_out = false;
		pthread_cond_broadcast(&p->space_cv);
	}
	if (cost)
		cost->ops++;
	return 0;
}

static int do_commit(struct thinp_pool *p)
{
	struct thinp_class_stats cost = {0};
	struct meta_mark m;
	pthread_rwlock_wrlock(&p->commit_barrier);
	md_lock(p, &m);
	int r = commit_locked(p, &cost);
	md_unlock(p, &m, &cost);
	pthread_rwlock_unlock(&p->commit_barrier);
	if (cost.ops)
		record(p, THINP_COMMIT, &cost);
	return r;
}

int thinp_pool_commit(struct thinp_pool *p) { return do_commit(p); }

static void *timer_main(void *arg)
{
	struct thinp_pool *p = arg;
	unsigned ms = p->o.commit_interval_ms ? p->o.commit_interval_ms : 1000;
	pthread_mutex_lock(&p->timer_lock);
	while (!p->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->timer_cv, &p->timer_lock, &ts);
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->timer_lock);
		pthread_mutex_lock(&p->md_lock);
		bool changed = tmd_changed(p->md);
		pthread_mutex_unlock(&p->md_lock);
		if (changed)
			(void)do_commit(p); /* a failure switches the pool mode itself */
		pthread_mutex_lock(&p->timer_lock);
	}
	pthread_mutex_unlock(&p->timer_lock);
	return NULL;
}

/* ---- open / close ---- */

static void close_devs(struct tp_dev *data, struct tp_dev *meta)
{
	if (data)
		tp_dev_close(data);
	if (meta)
		tp_dev_close(meta);
}

static int init_pool(struct thinp_pool *p)
{
	pthread_mutex_init(&p->md_lock, NULL);
	pthread_cond_init(&p->space_cv, NULL);
	/* Writers first: a stream of readers must not starve a CoW of its
	 * block, nor a stream of writes starve the commit. Nothing here takes
	 * a read lock twice, so writer preference cannot deadlock. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&p->commit_barrier, &ra);
	for (unsigned i = 0; i < NR_CELLS; i++)
		pthread_rwlock_init(&p->cells[i], &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&p->stats_lock, NULL);
	pthread_mutex_init(&p->timer_lock, NULL);
	pthread_cond_init(&p->timer_cv, NULL);
	mode_set(p, p->o.read_only ? THINP_MODE_READ_ONLY : THINP_MODE_WRITE);
	p->low_water_armed = true;
	if (p->o.read_only || p->o.no_commit_timer)
		return 0;
	if (pthread_create(&p->timer, NULL, timer_main, p))
		return -EAGAIN;
	p->timer_running = true;
	return 0;
}

static void destroy_pool(struct thinp_pool *p)
{
	if (p->timer_running) {
		pthread_mutex_lock(&p->timer_lock);
		p->stopping = true;
		pthread_cond_broadcast(&p->timer_cv);
		pthread_mutex_unlock(&p->timer_lock);
		pthread_join(p->timer, NULL);
	}
	pthread_mutex_destroy(&p->md_lock);
	pthread_cond_destroy(&p->space_cv);
	pthread_rwlock_destroy(&p->commit_barrier);
	for (unsigned i = 0; i < NR_CELLS; i++)
		pthread_rwlock_destroy(&p->cells[i]);
	pthread_mutex_destroy(&p->stats_lock);
	pthread_mutex_destroy(&p->timer_lock);
	pthread_cond_destroy(&p->timer_cv);
	free(p->changed_ids);
	free(p->pd_blocks);
	pthread_mutex_destroy(&p->err_lock);
	free(p);
}

static int pool_setup(struct tp_dev *data, struct tp_dev *meta, const struct thinp_pool_opts *o,
		      bool format, struct thinp_pool **out, char *err, size_t errlen)
{
	struct thinp_pool *p = calloc(1, sizeof(*p));
	if (!p) {
		close_devs(data, meta);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->err_lock, NULL);
	if (o)
		p->o = *o;
	p->data = data;
	p->meta = meta;
	p->block_sectors = p->o.block_sectors ? p->o.block_sectors : 128;
	p->block_bytes = (uint64_t)p->block_sectors * 512;
	int r;
	uint64_t nr_data = data->size / p->block_bytes;
	struct tmd_open_args a = {.meta = meta,
				  .data = data,
				  .cache_blocks = p->o.metadata_cache_blocks,
				  .read_only = p->o.read_only};
	char why[512] = "";
	if (format) {
		if (p->o.read_only) {
			r = -EINVAL;
			snprintf(why, sizeof(why),
				 "read_only is invalid when creating a pool: the metadata is not formatted yet");
			goto fail;
		}
		if (!nr_data) {
			r = -EINVAL;
			snprintf(why, sizeof(why),
				 "the data device (%llu bytes) is smaller than one %llu-byte pool block",
				 (unsigned long long)data->size, (unsigned long long)p->block_bytes);
			goto fail;
		}
		r = tmd_format(&a, p->block_sectors, nr_data, &p->md, why, sizeof(why));
	} else {
		r = tmd_open(&a, &p->md, why, sizeof(why));
	}
	if (r)
		goto fail;
	struct thin_sb_info sbi;
	tmd_sb_info(p->md, &sbi);
	if (!format && p->o.block_sectors && sbi.data_block_size != p->o.block_sectors) {
		r = -EINVAL;
		snprintf(why, sizeof(why),
			 "the metadata's data block size is %u sectors, not the %u requested: a pool's block size is fixed at creation",
			 sbi.data_block_size, p->o.block_sectors);
		goto fail_md;
	}
	p->block_sectors = sbi.data_block_size;
	p->block_bytes = (uint64_t)p->block_sectors * 512;
	nr_data = data->size / p->block_bytes;
	if (nr_data < tmd_nr_data_blocks(p->md)) {
		r = -ENOSPC;
		snprintf(why, sizeof(why),
			 "pool target too small: the metadata describes %llu data blocks but the data device holds %llu",
			 (unsigned long long)tmd_nr_data_blocks(p->md), (unsigned long long)nr_data);
		goto fail_md;
	}
	if (!p->o.read_only) {
		/* the kernel grows the maps to the devices on resume */
		if (nr_data > tmd_nr_data_blocks(p->md) && (r = tmd_resize_data(p->md, nr_data)))
			goto fail_tmd;
		if ((r = tmd_resize_metadata(p->md)))
			goto fail_tmd;
		if (tmd_changed(p->md) && (r = tmd_commit(p->md)))
			goto fail_tmd;
	}
	if (!p->o.read_only && tmd_needs_check(p->md)) {
		p->o.read_only = true; /* needs_check keeps the pool from returning to write mode */
	}
	r = init_pool(p);
	if (r) {
		snprintf(why, sizeof(why), "cannot start the commit timer thread");
		goto fail_md;
	}
	*out = p;
	return 0;
fail_tmd:
	snprintf(why, sizeof(why), "%s", tmd_error(p->md));
fail_md:
	tmd_close_nocommit(p->md);
fail:
	if (err)
		snprintf(err, errlen, "%s", *why ? why : strerror(-r));
	close_devs(data, meta);
	pthread_mutex_destroy(&p->err_lock);
	free(p);
	return r;
}

int thinp_pool_format(struct tp_dev *data, struct tp_dev *meta, const struct thinp_pool_opts *o,
		      struct thinp_pool **out, char *err, size_t errlen)
{
	return pool_setup(data, meta, o, true, out, err, errlen);
}

int thinp_pool_open(struct tp_dev *data, struct tp_dev *meta, const struct thinp_pool_opts *o,
		    struct thinp_pool **out, char *err, size_t errlen)
{
	return pool_setup(data, meta, o, false, out, err, errlen);
}

int thinp_pool_close(struct thinp_pool *p)
{
	if (!p)
		return 0;
	int r = 0;
	if (mode_get(p) != THINP_MODE_FAIL && mode_get(p) != THINP_MODE_READ_ONLY && !p->o.read_only)
		r = do_commit(p);
	if (p->timer_running) {
		pthread_mutex_lock(&p->timer_lock);
		p->stopping = true;
		pthread_cond_broadcast(&p->timer_cv);
		pthread_mutex_unlock(&p->timer_lock);
		pthread_join(p->timer, NULL);
		p->timer_running = false;
	}
	tmd_close_nocommit(p->md);
	close_devs(p->data, p->meta);
	destroy_pool(p);
	return r;
}

/* ---- messages ---- */

typedef int (*msg_fn)(struct tmd *md, uint64_t a, uint64_t b);

static int message(struct thinp_pool *p, msg_fn fn, uint64_t a, uint64_t b, const char *name)
{
	struct meta_mark m;
	pthread_rwlock_wrlock(&p->commit_barrier);
	md_lock(p, &m);
	int r = check_writable(p);
	if (r) {
		/* the kernel refuses messages in read-only and fail modes */
		perr(p, -EOPNOTSUPP, "unable to service pool target messages in READ_ONLY or FAIL mode (%s)",
		     name);
		r = -EOPNOTSUPP;
		goto out;
	}
	r = fn(p->md, a, b);
	if (r) {
		if (r == -EEXIST || r == -ENODATA || r == -EINVAL || r == -EBUSY ||
		    r == -EOVERFLOW)
			perr(p, r, "%s: %s", name, tmd_error(p->md));
		else
			metadata_failed(p, r, name);
		goto out;
	}
	r = commit_locked(p, NULL);
out:
	md_unlock(p, &m, NULL);
	pthread_rwlock_unlock(&p->commit_barrier);
	return r;
}

static int m_create(struct tmd *md, uint64_t a, uint64_t b) { (void)b; return tmd_create_thin(md, a); }
static int m_snap(struct tmd *md, uint64_t a, uint64_t b) { return tmd_create_snap(md, a, b); }
static int m_delete(struct tmd *md, uint64_t a, uint64_t b) { (void)b; return tmd_delete_thin(md, a); }
static int m_trans(struct tmd *md, uint64_t a, uint64_t b) { return tmd_set_transaction_id(md, a, b); }
static int m_reserve(struct tmd *md, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return tmd_reserve_metadata_snap(md);
}
static int m_release(struct tmd *md, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return tmd_release_metadata_snap(md);
}

int thinp_create_thin(struct thinp_pool *p, uint64_t id)
{
	return message(p, m_create, id, 0, "create_thin");
}
int thinp_create_snap(struct thinp_pool *p, uint64_t id, uint64_t origin)
{
	return message(p, m_snap, id, origin, "create_snap");
}
int thinp_delete_thin(struct thinp_pool *p, uint64_t id)
{
	return message(p, m_delete, id, 0, "delete");
}
int thinp_set_transaction_id(struct thinp_pool *p, uint64_t cur, uint64_t next)
{
	return message(p, m_trans, cur, next, "set_transaction_id");
}
int thinp_reserve_metadata_snap(struct thinp_pool *p)
{
	return message(p, m_reserve, 0, 0, "reserve_metadata_snap");
}
int thinp_release_metadata_snap(struct thinp_pool *p)
{
	return message(p, m_release, 0, 0, "release_metadata_snap");
}

/* ---- resize ---- */

/* Files and loop devices over files grow here; any other block device is grown by its owner
 * (dm-thin expects the same), and a resize then just finds the new size. */
static int grow_dev(struct thinp_pool *p, struct tp_dev *d, const char *what, uint64_t new_bytes)
{
	int r = tp_dev_resize(d, new_bytes);
	if (r == -ENOTSUP && d->ops->refresh_size) {
		r = d->ops->refresh_size(d);
		if (!r && d->size < new_bytes)
			return perr(p, -ENOSPC,
			            "the %s device has %llu bytes, fewer than %llu: grow it first "
			            "(lvextend, a bigger device), then extend the pool",
			            what, (unsigned long long)d->size, (unsigned long long)new_bytes);
	}
	if (r)
		perr(p, r, "cannot grow the %s device to %llu bytes: %s", what,
		     (unsigned long long)new_bytes, strerror(-r));
	return r;
}

int thinp_pool_resize_data(struct thinp_pool *p, uint64_t new_bytes)
{
	struct meta_mark m;
	md_lock(p, &m);
	int r = check_writable(p);
	if (r)
		goto out;
	if (new_bytes > p->data->size) {
		if ((r = grow_dev(p, p->data, "data", new_bytes)))
			goto out;
	}
	uint64_t nr = new_bytes / p->block_bytes;
	if (nr < tmd_nr_data_blocks(p->md)) {
		r = perr(p, -EINVAL, "cannot shrink the pool from %llu to %llu data blocks",
			 (unsigned long long)tmd_nr_data_blocks(p->md), (unsigned long long)nr);
		goto out;
	}
	if (nr > tmd_nr_data_blocks(p->md)) {
		r = tmd_resize_data(p->md, nr);
		if (r) {
			metadata_failed(p, r, "resize data");
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
		r = check_writable(p);
		goto out;
	}
	if (new_bytes > p->meta->size) {
		if ((r = grow_dev(p, p->meta, "metadata", new_bytes)))
			goto out;
	}
	if (mode_get(p) == THINP_MODE_READ_ONLY && !tmd_needs_check(p->md) && !p->o.read_only)
		mode_set(p, THINP_MODE_WRITE); /* out of metadata space ends with a resize */
	r = check_writable(p);
	if (r)
		goto out;
	r = tmd_resize_metadata(p->md);
	if (r)
		metadata_failed(p, r, "resize metadata");
out:
	md_unlock(p, &m, NULL);
	return r;
}

/* ---- status ---- */

int thinp_pool_status(struct thinp_pool *p, bool noflush, struct thinp_pool_status *st)
{
	if (!noflush && (mode_get(p) == THINP_MODE_WRITE || mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE)) {
		int r = do_commit(p);
		if (r)
			return r;
	}
	pthread_mutex_lock(&p->md_lock);
	if (mode_get(p) == THINP_MODE_FAIL) {
		/* the metadata objects are gone after a failed abort: the kernel
		 * reports just "Fail" */
		memset(st, 0, sizeof(*st));
		st->mode = THINP_MODE_FAIL;
		pthread_mutex_unlock(&p->md_lock);
		return 0;
	}
	st->transaction_id = tmd_transaction_id(p->md);
	st->total_meta_blocks = tmd_nr_metadata_blocks(p->md);
	/* dm_pool_get_free_metadata_block_count() hides the reserve */
	uint64_t mfree = tmd_nr_free_metadata_blocks(p->md), reserve = tmd_metadata_reserve(p->md);
	mfree = mfree > reserve ? mfree - reserve : 0;
	st->used_meta_blocks = st->total_meta_blocks - mfree;
	st->total_data_blocks = tmd_nr_data_blocks(p->md);
	st->used_data_blocks = st->total_data_blocks - tmd_nr_free_data_blocks(p->md);
	st->held_root = tmd_metadata_snap(p->md);
	st->mode = mode_get(p);
	st->discard_enabled = !p->o.ignore_discard;
	st->discard_passdown = !p->o.no_discard_passdown;
	st->error_if_no_space = p->o.error_if_no_space || p->no_space_timed_out;
	st->needs_check = tmd_needs_check(p->md);
	uint64_t quarter = (p->meta->size / 4096) / 4;
	st->metadata_low_water = quarter < 1024 ? quarter : 1024;
	pthread_mutex_unlock(&p->md_lock);
	return 0;
}

int thinp_pool_status_line(struct thinp_pool *p, bool noflush, char *buf, size_t len)
{
	struct thinp_pool_status st;
	int r = thinp_pool_status(p, noflush, &st);
	if (r)
		return r;
	if (st.mode == THINP_MODE_FAIL) {
		snprintf(buf, len, "Fail");
		return 0;
	}
	char held[32];
	if (st.held_root)
		snprintf(held, sizeof(held), "%llu", (unsigned long long)st.held_root);
	else
		snprintf(held, sizeof(held), "-");
	snprintf(buf, len, "%llu %llu/%llu %llu/%llu %s %s %s %s %s %llu ",
		 (unsigned long long)st.transaction_id, (unsigned long long)st.used_meta_blocks,
		 (unsigned long long)st.total_meta_blocks, (unsigned long long)st.used_data_blocks,
		 (unsigned long long)st.total_data_blocks, held,
		 st.mode == THINP_MODE_OUT_OF_DATA_SPACE ? "out_of_data_space"
		 : st.mode == THINP_MODE_READ_ONLY	 ? "ro"
							 : "rw",
		 !st.discard_enabled ? "ignore_discard"
		 : st.discard_passdown ? "discard_passdown"
				       : "no_discard_passdown",
		 st.error_if_no_space ? "error_if_no_space" : "queue_if_no_space",
		 st.needs_check ? "needs_check" : "-", (unsigned long long)st.metadata_low_water);
	return 0;
}

int thinp_thin_status(struct thinp_pool *p, uint64_t id, struct thinp_thin_status *st)
{
	pthread_mutex_lock(&p->md_lock);
	struct thin_details d;
	int r;
	if (mode_get(p) == THINP_MODE_FAIL) {
		r = check_writable(p); /* -EIO: the metadata objects are gone */
		goto out;
	}
	r = tmd_get_details(p->md, id, &d);
	if (r) {
		perr(p, r, "%s", tmd_error(p->md));
		goto out;
	}
	st->mapped_sectors = d.mapped_blocks * p->block_sectors;
	uint64_t hi;
	r = tmd_highest_mapped(p->md, id, &hi);
	st->has_mapped = r == 0;
	st->highest_mapped_sector = r == 0 ? (hi + 1) * p->block_sectors - 1 : 0;
	if (r == -ENODATA)
		r = 0;
	else if (r)
		perr(p, r, "%s", tmd_error(p->md));
out:
	pthread_mutex_unlock(&p->md_lock);
	return r;
}

int thinp_thin_status_line(struct thinp_pool *p, uint64_t id, char *buf, size_t len)
{
	if (mode_get(p) == THINP_MODE_FAIL) {
		snprintf(buf, len, "Fail");
		return 0;
	}
	struct thinp_thin_status st;
	int r = thinp_thin_status(p, id, &st);
	if (r)
		return r;
	if (st.has_mapped)
		snprintf(buf, len, "%llu %llu", (unsigned long long)st.mapped_sectors,
			 (unsigned long long)st.highest_mapped_sector);
	else
		snprintf(buf, len, "%llu -", (unsigned long long)st.mapped_sectors);
	return 0;
}

/* ---- thin devices ---- */

int thinp_thin_open(struct thinp_pool *p, uint64_t id, uint64_t size_bytes,
		    struct thinp_thin **out)
{
	pthread_mutex_lock(&p->md_lock);
	bool failed = mode_get(p) == THINP_MODE_FAIL, exists = false;
	int r = failed ? 0 : tmd_device_exists(p->md, id, &exists);
	if (r)
		perr(p, r, "cannot open thin device %llu: %s", (unsigned long long)id,
		     tmd_error(p->md));
	pthread_mutex_unlock(&p->md_lock);
	if (r)
		return r;
	if (failed)
		return perr(p, -EINVAL, "couldn't open thin device, pool is in fail mode");
	if (!exists)
		return perr(p, -ENODEV, "thin device %llu does not exist in the pool (create it first)",
			    (unsigned long long)id);
	struct thinp_thin *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->p = p;
	t->id = id;
	t->size = size_bytes;
	*out = t;
	return 0;
}

void thinp_thin_close(struct thinp_thin *t) { free(t); }

static pthread_rwlock_t *cell(struct thinp_pool *p, uint64_t id, uint64_t vblock)
{
	uint64_t h = (id * 0x9E3779B97F4A7C15ull) ^ (vblock * 0xC2B2AE3D27D4EB4Full);
	return &p->cells[(h >> 32) % NR_CELLS];
}

/* ---- data device IO with alignment for O_DIRECT ---- */

static int data_io(struct thinp_pool *p, bool write, void *buf, size_t len, uint64_t off,
		   struct thinp_class_stats *cost)
{
	unsigned a = p->data->align > 1 ? p->data->align : 1;
	if (a == 1 || (off % a == 0 && len % a == 0 && (uintptr_t)buf % a == 0)) {
		int r = write ? tp_dev_pwrite(p->data, buf, len, off)
			      : tp_dev_pread(p->data, buf, len, off);
		if (!r) {
			if (write)
				cost->data_bytes_written += len;
			else
				cost->data_bytes_read += len;
		}
		return r;
	}
	/* O_DIRECT needs aligned offsets, lengths and buffers: bounce, reading
	 * partial head/tail sectors first when writing. */
	uint64_t a0 = off / a * a, a1 = (off + len + a - 1) / a * a;
	size_t blen = (size_t)(a1 - a0);
	void *bounce;
	if (posix_memalign(&bounce, a, blen))
		return -ENOMEM;
	int r = 0;
	if (!write) {
		r = tp_dev_pread(p->data, bounce, blen, a0);
		if (!r) {
			cost->data_bytes_read += blen;
			memcpy(buf, (uint8_t *)bounce + (off - a0), len);
		}
	} else {
		if (off != a0) {
			r = tp_dev_pread(p->data, bounce, a, a0);
			cost->data_bytes_read += r ? 0 : a;
		}
		if (!r && (off + len) != a1 && (a1 - a != a0 || off == a0)) {
			r = tp_dev_pread(p->data, (uint8_t *)bounce + blen - a, a, a1 - a);
			cost->data_bytes_read += r ? 0 : a;
		}
		if (!r) {
			memcpy((uint8_t *)bounce + (off - a0), buf, len);
			r = tp_dev_pwrite(p->data, bounce, blen, a0);
			cost->data_bytes_written += r ? 0 : blen;
		}
	}
	free(bounce);
	return r;
}

/* Copy a whole block, as kcopyd does for a CoW (chunked, so 1 GiB blocks do
 * not need 1 GiB of memory). */
static int copy_block(struct thinp_pool *p, uint64_t from, uint64_t to,
		      struct thinp_class_stats *cost)
{
	size_t chunk = p->block_bytes < COPY_CHUNK ? (size_t)p->block_bytes : COPY_CHUNK;
	void *buf;
	if (posix_memalign(&buf, 4096, chunk))
		return -ENOMEM;
	int r = 0;
	for (uint64_t done = 0; done < p->block_bytes && !r; done += chunk) {
		r = data_io(p, false, buf, chunk, from * p->block_bytes + done, cost);
		if (!r)
			r = data_io(p, true, buf, chunk, to * p->block_bytes + done, cost);
	}
	free(buf);
	return r;
}

static int zero_block(struct thinp_pool *p, uint64_t b, struct thinp_class_stats *cost)
{
	int r = tp_dev_write_zeroes(p->data, b * p->block_bytes, p->block_bytes);
	if (!r)
		cost->data_bytes_zeroed += p->block_bytes;
	return r;
}

/* ---- allocation with the out-of-space policy ---- */

static bool wait_for_space(struct thinp_pool *p, const struct timespec *deadline)
{
	/* md_lock held */
	while (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE && !p->no_space_timed_out) {
		if (pthread_cond_timedwait(&p->space_cv, &p->md_lock, deadline) == ETIMEDOUT)
			return mode_get(p) != THINP_MODE_OUT_OF_DATA_SPACE;
	}
	return mode_get(p) == THINP_MODE_WRITE;
}

/* Allocate a data block (md_lock held; the commit barrier is held shared by
 * the caller). Returns -EAGAIN when the caller must drop its locks and wait
 * for space, after which it retries. */
static int alloc_block(struct thinp_pool *p, uint64_t *b, bool *low_water)
{
	int r = check_writable(p);
	if (r)
		return r;
	bool error_if_no_space = p->o.error_if_no_space || p->no_space_timed_out;
	if (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE)
		return error_if_no_space ? perr(p, -ENOSPC, "out of data space") : -EAGAIN;
	/* check_low_water_mark() looks at the free count before allocating */
	if (p->low_water_armed && tmd_nr_free_data_blocks(p->md) <= p->o.low_water_blocks) {
		p->low_water_armed = false;
		*low_water = true;
	}
	r = tmd_alloc_data_block(p->md, b);
	if (r == -ENOSPC) {
		mode_set(p, THINP_MODE_OUT_OF_DATA_SPACE);
		if (error_if_no_space)
			return perr(p, -ENOSPC,
				    "out of data space: grow the data device (error_if_no_space is set)");
		return -EAGAIN;
	}
	if (r)
		return metadata_failed(p, r, "allocating a data block");
	return 0;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* ---- per-block IO ---- */

static enum thinp_class dearer(enum thinp_class a, enum thinp_class b) { return a > b ? a : b; }

static int read_block(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
		      size_t len, enum thinp_class *cls, struct thinp_class_stats *cost)
{
	struct thinp_pool *p = t->p;
	pthread_rwlock_t *c = cell(p, t->id, vblock);
	pthread_rwlock_rdlock(c);
	struct meta_mark m;
	struct thin_mapping map;
	md_lock(p, &m);
	int r = mode_get(p) == THINP_MODE_FAIL ? check_writable(p) : tmd_lookup(p->md, t->id, vblock, &map);
	if (r && r != -ENODATA && mode_get(p) != THINP_MODE_FAIL)
		perr(p, r, "read: %s", tmd_error(p->md));
	md_unlock(p, &m, cost);
	if (r == -ENODATA) {
		memset(buf, 0, len);
		*cls = THINP_READ_UNMAPPED;
		r = 0;
	} else if (!r) {
		*cls = map.shared ? THINP_READ_SHARED : THINP_READ_MAPPED;
		r = data_io(p, false, buf, len, map.data_block * p->block_bytes + boff, cost);
	}
	pthread_rwlock_unlock(c);
	return r;
}

static int write_block(struct thinp_thin *t, uint64_t vblock, const uint8_t *buf, uint64_t boff,
		       size_t len, enum thinp_class *cls, struct thinp_class_stats *cost)
{
	struct thinp_pool *p = t->p;
	bool whole = boff == 0 && len == p->block_bytes;
	pthread_rwlock_t *c = cell(p, t->id, vblock);
	struct timespec deadline;
	bool have_deadline = false;
	bool low_water = false;
	struct meta_mark m;
	int r;
	pthread_rwlock_wrlock(c);
retry:
	pthread_rwlock_rdlock(&p->commit_barrier);
	md_lock(p, &m);
	struct thin_mapping map;
	r = mode_get(p) == THINP_MODE_FAIL ? check_writable(p) : tmd_lookup(p->md, t->id, vblock, &map);
	if (r && r != -ENODATA) {
		if (mode_get(p) != THINP_MODE_FAIL)
			metadata_failed(p, r, "write lookup");
		goto unlock_md;
	}
	if (!r && !map.shared) {
		md_unlock(p, &m, cost);
		pthread_rwlock_unlock(&p->commit_barrier);
		*cls = THINP_WRITE_OVERWRITE;
		r = data_io(p, true, (void *)buf, len, map.data_block * p->block_bytes + boff, cost);
		goto out;
	}
	bool cow = r == 0;
	uint64_t nb;
	r = alloc_block(p, &nb, &low_water);
	if (r == -EAGAIN) {
		/* queue_if_no_space: wait (without the barrier, so commits and
		 * resizes go on) until the pool grows or the timeout passes */
		pthread_rwlock_unlock(&p->commit_barrier);
		if (!have_deadline) {
			deadline_in(&deadline, p->o.no_space_timeout_ms ? p->o.no_space_timeout_ms
									: 60000);
			have_deadline = true;
		}
		bool ok = wait_for_space(p, &deadline);
		if (!ok && mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE && !p->no_space_timed_out) {
			/* do_no_space_timeout(): fail the queued IO, error from now on */
			p->no_space_timed_out = true;
			pthread_cond_broadcast(&p->space_cv);
		}
		md_unlock(p, &m, cost);
		if (ok)
			goto retry;
		r = perr(p, -ENOSPC, "out of data space: no resize within the no_space_timeout");
		goto out;
	}
	if (r)
		goto unlock_md;
	md_unlock(p, &m, cost);

	if (cow) {
		*cls = whole ? THINP_WRITE_COW_FULL : THINP_WRITE_COW;
		r = whole ? 0 : copy_block(p, map.data_block, nb, cost);
	} else if (whole) {
		*cls = THINP_WRITE_PROVISION_FULL;
	} else if (p->o.skip_block_zeroing) {
		*cls = THINP_WRITE_PROVISION;
	} else {
		*cls = THINP_WRITE_PROVISION_ZERO;
		r = zero_block(p, nb, cost);
	}
	if (!r)
		r = data_io(p, true, (void *)buf, len, nb * p->block_bytes + boff, cost);

	md_lock(p, &m);
	if (r) {
		int dr = tmd_data_dec(p->md, nb); /* give the block back */
		if (dr)
			metadata_failed(p, dr, "releasing a data block after a failed write");
		perr(p, r, "writing the data device failed: %s", strerror(-r));
	} else {
		r = tmd_insert(p->md, t->id, vblock, nb);
		if (r)
			metadata_failed(p, r, "inserting a mapping");
		else
			r = mark_changed(p, t->id);
	}
unlock_md:
	md_unlock(p, &m, cost);
	pthread_rwlock_unlock(&p->commit_barrier);
out:
	pthread_rwlock_unlock(c);
	if (low_water && p->o.low_water_cb)
		p->o.low_water_cb(p->o.cb_ctx, p);
	return r;
}

/* Split [off, off+len) at pool-block boundaries. */
typedef int (*block_fn)(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
			size_t len, enum thinp_class *cls, struct thinp_class_stats *cost);

static int check_range(struct thinp_thin *t, uint64_t off, uint64_t len)
{
	if (t->size && (off > t->size || len > t->size - off))
		return perr(t->p, -EINVAL,
			    "IO at offset %llu length %llu is beyond the thin device's %llu bytes",
			    (unsigned long long)off, (unsigned long long)len,
			    (unsigned long long)t->size);
	return 0;
}

static int write_whole_run(struct thinp_thin *t, uint64_t v, unsigned n, const uint8_t *buf,
			   unsigned *done, struct thinp_io_result *res);

/* One block's outcome into the pool's per-class counters and the IO's result. */
static void account(struct thinp_pool *p, struct thinp_io_result *res, enum thinp_class cls,
		    const struct thinp_class_stats *cost)
{
	record(p, cls, cost);
	add_cost(&res->cost, cost);
	res->cls = res->nr_blocks ? dearer(res->cls, cls) : cls;
	res->nr_blocks++;
}

static int for_each_block(struct thinp_thin *t, uint8_t *buf, size_t len, uint64_t off,
			  block_fn fn, bool is_write, struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	struct thinp_io_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	res->cls = is_write ? THINP_WRITE_OVERWRITE : THINP_READ_UNMAPPED;
	int r = check_range(t, off, len);
	if (r)
		return r;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done;
		uint64_t vblock = pos / p->block_bytes, boff = pos % p->block_bytes;
		size_t n = len - done;
		if (n > p->block_bytes - boff)
			n = (size_t)(p->block_bytes - boff);
		/* writes of two or more whole blocks go by runs (write_whole_run) */
		uint64_t whole = boff ? 0 : (len - done) / p->block_bytes;
		uint64_t cap = MAX_RUN_BYTES / p->block_bytes; /* bounds an O_DIRECT bounce */
		if (cap > MAX_RUN)
			cap = MAX_RUN;
		if (whole > cap)
			whole = cap;
		if (is_write && whole >= 2) {
			unsigned did;
			r = write_whole_run(t, vblock, (unsigned)whole, buf + done, &did, res);
			if (r)
				return r;
			done += (size_t)did * p->block_bytes;
			if (did)
				continue; /* else its first block needs write_block's slow path */
		}
		struct thinp_class_stats cost = {.ops = 1, .bytes_requested = n};
		enum thinp_class cls;
		r = fn(t, vblock, buf + done, boff, n, &cls, &cost);
		if (r)
			return r;
		account(p, res, cls, &cost);
		done += n;
	}
	return 0;
}

static int write_block_fn(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
			  size_t len, enum thinp_class *cls, struct thinp_class_stats *cost)
{
	return write_block(t, vblock, buf, boff, len, cls, cost);
}

/* ---- whole-block runs: one data IO for adjacent data blocks ---- */

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

/* Whole blocks [v, v+n) of one write, n <= MAX_RUN. Each block takes write_block's metadata
 * step (overwrite in place, or a new block for an unmapped or shared one: whole, so neither
 * zeroed nor copied), but the data writes of blocks whose data blocks are adjacent go to the
 * device as one IO: dm-thin too splits a big bio per block, and the block layer merges the
 * per-block bios it issues back into one request. Stops, without an error, at the first block
 * that needs write_block's slow path (no space to allocate, a mode that refuses, a metadata
 * error to report): *done says how many blocks it wrote. Cells are taken in address order, so
 * two runs cannot deadlock and single-block paths (one cell each) cannot join a cycle. */
static int write_whole_run(struct thinp_thin *t, uint64_t v, unsigned n, const uint8_t *buf,
			   unsigned *done, struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	pthread_rwlock_t *locks[MAX_RUN];
	uint64_t target[MAX_RUN];
	bool fresh[MAX_RUN];
	enum thinp_class cls[MAX_RUN];
	struct thinp_class_stats cost[MAX_RUN];
	unsigned nl = 0, k = 0;
	bool low_water = false;
	struct meta_mark m;
	int r = 0;

	for (unsigned i = 0; i < n; i++)
		locks[i] = cell(p, t->id, v + i);
	qsort(locks, n, sizeof(locks[0]), cmp_ptr);
	for (unsigned i = 0; i < n; i++)
		if (!nl || locks[nl - 1] != locks[i])
			locks[nl++] = locks[i];
	for (unsigned i = 0; i < nl; i++)
		pthread_rwlock_wrlock(locks[i]);
	pthread_rwlock_rdlock(&p->commit_barrier);

	for (; k < n; k++) {
		memset(&cost[k], 0, sizeof(cost[k]));
		cost[k].ops = 1;
		cost[k].bytes_requested = p->block_bytes;
		md_lock(p, &m);
		struct thin_mapping map;
		int lr = mode_get(p) == THINP_MODE_FAIL ? -EIO : tmd_lookup(p->md, t->id, v + k, &map);
		if (!lr && !map.shared) {
			target[k] = map.data_block;
			fresh[k] = false;
			cls[k] = THINP_WRITE_OVERWRITE;
		} else if (lr == -ENODATA || !lr) {
			if (alloc_block(p, &target[k], &low_water)) {
				md_unlock(p, &m, &cost[k]);
				break; /* write_block waits for space or reports the error */
			}
			fresh[k] = true;
			cls[k] = lr ? THINP_WRITE_PROVISION_FULL : THINP_WRITE_COW_FULL;
		} else {
			md_unlock(p, &m, &cost[k]);
			break; /* write_block reports it */
		}
		md_unlock(p, &m, &cost[k]);
	}

	unsigned ok = 0; /* blocks [0, ok) reached the data device */
	for (unsigned i = 0; i < k && !r;) {
		unsigned j = i + 1;
		while (j < k && target[j] == target[i] + (j - i))
			j++;
		struct thinp_class_stats io = { 0 };
		r = data_io(p, true, (void *)(buf + (size_t)i * p->block_bytes),
			    (size_t)(j - i) * p->block_bytes, target[i] * p->block_bytes, &io);
		if (r) {
			perr(p, r, "writing the data device failed: %s", strerror(-r));
			break;
		}
		for (; i < j; i++)
			cost[i].data_bytes_written += p->block_bytes;
		ok = j;
	}

	for (unsigned i = 0; i < k; i++) {
		if (!fresh[i])
			continue;
		md_lock(p, &m);
		int mr;
		if (i >= ok) { /* not written: give the block back */
			if ((mr = tmd_data_dec(p->md, target[i])))
				metadata_failed(p, mr, "releasing a data block after a failed write");
		} else if ((mr = tmd_insert(p->md, t->id, v + i, target[i]))) {
			metadata_failed(p, mr, "inserting a mapping");
		} else {
			mr = mark_changed(p, t->id);
		}
		md_unlock(p, &m, &cost[i]);
		if (mr && !r) {
			r = mr;
			ok = i;
		}
	}
	pthread_rwlock_unlock(&p->commit_barrier);
	for (unsigned i = nl; i-- > 0;)
		pthread_rwlock_unlock(locks[i]);
	if (low_water && p->o.low_water_cb)
		p->o.low_water_cb(p->o.cb_ctx, p);

	for (unsigned i = 0; i < ok; i++)
		account(p, res, cls[i], &cost[i]);
	*done = ok;
	return r;
}

int thinp_read(struct thinp_thin *t, void *buf, size_t len, uint64_t off,
	       struct thinp_io_result *res)
{
	return for_each_block(t, buf, len, off, read_block, false, res);
}

static int flush_thin(struct thinp_thin *t, struct thinp_class_stats *cost)
{
	struct thinp_pool *p = t->p;
	pthread_mutex_lock(&p->md_lock);
	bool changed = thin_changed(p, t->id);
	pthread_mutex_unlock(&p->md_lock);
	if (changed)
		return do_commit(p); /* flushes the data device first */
	int r = tp_dev_flush(p->data);
	if (r)
		perr(p, r, "flushing the data device failed: %s", strerror(-r));
	(void)cost;
	return r;
}

int thinp_write(struct thinp_thin *t, const void *buf, size_t len, uint64_t off, unsigned flags,
		struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	pthread_mutex_lock(&p->md_lock);
	int r = check_writable(p);
	pthread_mutex_unlock(&p->md_lock);
	/* read-only pools still take writes to provisioned, unshared blocks:
	 * write_block refuses the rest through alloc_block */
	if (r && mode_get(p) == THINP_MODE_FAIL)
		return r;
	r = for_each_block(t, (uint8_t *)buf, len, off, write_block_fn, true, res);
	if (!r && (flags & THINP_IO_FUA))
		r = flush_thin(t, NULL);
	return r;
}

int thinp_flush(struct thinp_thin *t, struct thinp_io_result *res)
{
	struct thinp_class_stats cost = {.ops = 1};
	int r = flush_thin(t, &cost);
	if (!r)
		record(t->p, THINP_FLUSH, &cost);
	if (res) {
		memset(res, 0, sizeof(*res));
		res->cls = THINP_FLUSH;
		res->cost = cost;
	}
	return r;
}

int thinp_discard(struct thinp_thin *t, uint64_t off, uint64_t len, struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	struct thinp_io_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	res->cls = THINP_DISCARD;
	int r = check_range(t, off, len);
	if (r)
		return r;
	struct thinp_class_stats cost = {.ops = 1, .bytes_requested = len};
	if (p->o.ignore_discard)
		goto done;
	/* sub-block parts of a discard complete as no-ops */
	uint64_t first = (off + p->block_bytes - 1) / p->block_bytes;
	uint64_t end = (off + len) / p->block_bytes;
	for (uint64_t vb = first; vb < end && !r; vb++) {
		pthread_rwlock_t *c = cell(p, t->id, vb);
		pthread_rwlock_wrlock(c);
		struct meta_mark m;
		md_lock(p, &m);
		struct thin_mapping map;
		r = check_writable(p);
		if (!r)
			r = tmd_lookup(p->md, t->id, vb, &map);
		bool passdown = false;
		if (!r) {
			r = tmd_remove(p->md, t->id, vb);
			uint32_t count = 1;
			if (!r && !p->o.no_discard_passdown)
				r = tmd_data_count(p->md, map.data_block, &count);
			if (r)
				metadata_failed(p, r, "discard");
			else
				r = mark_changed(p, t->id);
			passdown = !r && count == 0;
			/* Deferred to the commit: passing it down now (as the kernel
			 * does) lets a crash before that commit bring back committed
			 * mappings of another thin to bytes already discarded. Without
			 * memory for the queue the passdown is skipped (discards are
			 * advisory). */
			if (passdown && p->nr_pd == p->cap_pd) {
				size_t cap = p->cap_pd ? p->cap_pd * 2 : 64;
				uint64_t *n = realloc(p->pd_blocks, cap * sizeof(*n));
				if (n) {
					p->pd_blocks = n;
					p->cap_pd = cap;
				}
			}
			if (passdown && p->nr_pd < p->cap_pd)
				p->pd_blocks[p->nr_pd++] = map.data_block;
			passdown = false;
		} else if (r == -ENODATA) {
			r = 0;
		}
		md_unlock(p, &m, &cost);
		if (passdown) {
			/* only blocks no other mapping references reach the device */
			int dr = tp_dev_discard(p->data, map.data_block * p->block_bytes,
						p->block_bytes);
			if (dr && dr != -EOPNOTSUPP)
				r = perr(p, dr, "discard passdown failed: %s", strerror(-dr));
		}
		pthread_rwlock_unlock(c);
	}
done:
	if (!r) {
		record(p, THINP_DISCARD, &cost);
		res->nr_blocks = 1;
		res->cost = cost;
	}
	return r;
}
