/* The thin pool: dm-thin's IO paths (drivers/md/dm-thin.c) over libthinp
 * metadata and a data device. This file: the pool's lifecycle (format, open,
 * close), its error sentence and modes, the commit and the commit timer, and
 * thin device handles; pool_internal.h lists the other files and the lock
 * order. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdata/gate_inject.h"
#include "thin/pool_internal.h"

int pool_err(struct thinp_pool *p, int r, const char *fmt, ...)
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

/* ---- modes and metadata failure ---- */

/* A metadata operation failed: drop the transaction, flag the superblock
 * for thin_check and go read-only, as metadata_operation_failed() does.
 * Called with md_lock held. */
int pool_metadata_failed(struct thinp_pool *p, int r, const char *what)
{
	char why[512];
	snprintf(why, sizeof(why), "%s", tmd_error(p->md));
	if (r == -ENOSPC) {
		pool_err(p, r, "%s: out of metadata space (%s); the pool is read-only until the metadata device is grown",
		         what, why);
	} else {
		pool_err(p, r, "%s: metadata operation failed (%s); the pool is read-only and needs thin_check",
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

int pool_check_writable(struct thinp_pool *p)
{
	switch (mode_get(p)) {
	case THINP_MODE_FAIL:
		return pool_err(p, -EIO, "the pool has failed: all IO errors until it is repaired");
	case THINP_MODE_READ_ONLY:
		return pool_err(p, -EROFS,
			        "the pool is read-only%s", tmd_needs_check(p->md)
							       ? " and needs thin_check"
							       : "");
	default:
		return 0;
	}
}

int pool_mark_changed(struct thinp_pool *p, uint64_t id)
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

/* ---- commit ---- */

static bool may_commit(struct thinp_pool *p)
{
	return mode_get(p) != THINP_MODE_FAIL && mode_get(p) != THINP_MODE_READ_ONLY &&
	       !p->o.read_only;
}

/* What follows a commit whose result is R (the barrier held exclusively, md_lock held). */
static int committed(struct thinp_pool *p, int r, struct thinp_class_stats *cost)
{
	if (!r && gate_inject('c'))
		r = tmd_commit(p->md);
	if (r)
		return pool_metadata_failed(p, r, "commit");
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

/* Called with the commit barrier held exclusively and md_lock held. */
int pool_commit_locked(struct thinp_pool *p, struct thinp_class_stats *cost)
{
	return may_commit(p) ? committed(p, tmd_commit(p->md), cost) : 0;
}

int pool_commit(struct thinp_pool *p)
{
	struct thinp_class_stats cost = {0};
	struct meta_mark m;
	int r = 0;
	pthread_rwlock_wrlock(&p->commit_barrier);
	md_lock(p, &m);
	if (may_commit(p)) {
		r = tmd_commit_prepare(p->md);
		if (!r) {
			/* The commit's IO with the slots released: lookups from cached metadata
			 * (lookup_shared), so reads and overwrites of provisioned blocks, go on.
			 * md_mutex and the barrier stay held, so nothing else reads or changes the
			 * metadata, its cache or the metadata device's counters (md_unlock still
			 * charges the commit its own IO), nothing is allocated, and a second commit
			 * waits for this one's superblock. */
			md_slots_unlock(p);
			(void)tmd_commit_io(p->md); /* (the finish reports its failure) */
			md_slots_lock(p);
			r = tmd_commit_finish(p->md);
		}
		r = committed(p, r, &cost);
	}
	md_unlock(p, &m, &cost);
	pthread_rwlock_unlock(&p->commit_barrier);
	if (cost.ops)
		record(p, THINP_COMMIT, &cost);
	return r;
}

int thinp_pool_commit(struct thinp_pool *p) { return pool_commit(p); }

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
		md_excl_lock(p);
		bool changed = tmd_changed(p->md);
		md_excl_unlock(p);
		if (changed)
			(void)pool_commit(p); /* a failure switches the pool mode itself */
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
	/* The metadata lock's sections are a few microseconds (an allocation, an insert): a
	 * thread that finds it taken spins briefly before it sleeps, as a sleep and a wake-up
	 * (two futex calls, a context switch, on a VM two exits) cost more than the section,
	 * and two provisioning threads otherwise hand the lock over through the kernel on
	 * nearly every write. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&p->md_mutex, &ma);
	for (unsigned i = 0; i < NR_SLOTS; i++) {
		pthread_mutex_init(&p->slots[i].md, &ma);
		pthread_mutex_init(&p->slots[i].stats_lock, NULL);
	}
	pthread_mutex_init(&p->stats_base_lock, NULL);
	pthread_mutexattr_destroy(&ma);
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
	pthread_mutex_destroy(&p->md_mutex);
	for (unsigned i = 0; i < NR_SLOTS; i++) {
		pthread_mutex_destroy(&p->slots[i].md);
		pthread_mutex_destroy(&p->slots[i].stats_lock);
	}
	pthread_mutex_destroy(&p->stats_base_lock);
	pthread_cond_destroy(&p->space_cv);
	pthread_rwlock_destroy(&p->commit_barrier);
	for (unsigned i = 0; i < NR_CELLS; i++)
		pthread_rwlock_destroy(&p->cells[i]);
	pthread_mutex_destroy(&p->timer_lock);
	pthread_cond_destroy(&p->timer_cv);
	free(p->changed_ids);
	free(p->pd_blocks);
	free(p->open_thins);
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
	if (p->o.cow_policy != THINP_COW_KERNEL && p->o.cow_policy != THINP_COW_MERGED) {
		r = -EINVAL;
		snprintf(why, sizeof(why),
			 "cow_policy %d is not a CoW policy: use THINP_COW_KERNEL or THINP_COW_MERGED",
			 (int)p->o.cow_policy);
		goto fail;
	}
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
		r = pool_commit(p);
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

/* ---- thin devices ---- */

bool pool_thin_is_open(struct thinp_pool *p, uint64_t id)
{
	for (size_t i = 0; i < p->nr_open_thins; i++)
		if (p->open_thins[i].id == id)
			return true;
	return false;
}

/* Count an open (+1) or a close (-1) of thin ID, under md_lock. */
static int open_count(struct thinp_pool *p, uint64_t id, int delta)
{
	for (size_t i = 0; i < p->nr_open_thins; i++) {
		if (p->open_thins[i].id != id)
			continue;
		if (delta > 0) {
			p->open_thins[i].n++;
		} else if (--p->open_thins[i].n == 0) {
			p->open_thins[i] = p->open_thins[--p->nr_open_thins];
		}
		return 0;
	}
	if (delta < 0)
		return 0;
	struct open_thin *n = realloc(p->open_thins, (p->nr_open_thins + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	p->open_thins = n;
	p->open_thins[p->nr_open_thins++] = (struct open_thin){id, 1};
	return 0;
}

int thinp_thin_open(struct thinp_pool *p, uint64_t id, uint64_t size_bytes,
		    struct thinp_thin **out)
{
	md_excl_lock(p);
	bool failed = mode_get(p) == THINP_MODE_FAIL, exists = false;
	int r = failed ? 0 : tmd_device_exists(p->md, id, &exists);
	if (r)
		pool_err(p, r, "cannot open thin device %llu: %s", (unsigned long long)id,
		         tmd_error(p->md));
	md_excl_unlock(p);
	if (r)
		return r;
	if (failed)
		return pool_err(p, -EINVAL, "couldn't open thin device, pool is in fail mode");
	if (!exists)
		return pool_err(p, -ENODEV, "thin device %llu does not exist in the pool (create it first)",
			        (unsigned long long)id);
	struct thinp_thin *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->p = p;
	t->id = id;
	t->size = size_bytes;
	md_excl_lock(p);
	r = open_count(p, id, 1);
	md_excl_unlock(p);
	if (r) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

void thinp_thin_close(struct thinp_thin *t)
{
	if (!t)
		return;
	md_excl_lock(t->p);
	open_count(t->p, t->id, -1);
	md_excl_unlock(t->p);
	free(t);
}
