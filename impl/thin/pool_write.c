/* Writes that need more than an overwrite in place: a new data block
 * (allocation with the low-water event and the out-of-data-space policy),
 * zeroed unless the write covers it, or a copy of a shared block (CoW), in the
 * kernel's order or merged with the write (the pool's cow_policy), and runs of
 * whole blocks written with one data IO per adjacent extent. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdata/gate_inject.h"
#include "thin/pool_internal.h"

/* The data write's bytes can go to the device as they are (O_DIRECT alignment), so it needs no
 * read-modify-write of its edges and can be issued together with another write. */
static bool data_io_direct(struct thinp_pool *p, const void *buf, size_t len, uint64_t off)
{
	unsigned a = p->data->align > 1 ? p->data->align : 1;
	return off % a == 0 && len % a == 0 && (uintptr_t)buf % a == 0;
}

/* A CoW in the kernel's order: the whole block copied, as kcopyd does (chunked, so 1 GiB blocks
 * do not need 1 GiB of memory), then the write of LEN bytes of DATA at BOFF inside it (DATA NULL:
 * the copy alone). The kernel issues the write once the copy has completed; here the copy
 * carries the write's bytes as well, so the two no longer depend on each other and the data
 * write goes to the device together with the copy's last write (tp_dev_pwrite_batch): one wait
 * where the kernel's order has two. The device writes and holds the same bytes as in the
 * kernel's order (the block, then LEN more), and the caller maps TO only after both completed.
 * A write that needs a read-modify-write of its edges (unaligned for O_DIRECT) goes after the
 * copy, as the kernel's does. */
static int copy_block(struct thinp_pool *p, uint64_t from, uint64_t to, const uint8_t *data,
		      uint64_t boff, size_t len, struct thinp_class_stats *cost)
{
	size_t chunk = p->block_bytes < COPY_CHUNK ? (size_t)p->block_bytes : COPY_CHUNK;
	uint64_t doff = to * p->block_bytes + boff;
	bool together = data && data_io_direct(p, data, len, doff);
	void *buf;
	if (posix_memalign(&buf, 4096, chunk))
		return -ENOMEM;
	int r = 0;
	for (uint64_t done = 0; done < p->block_bytes && !r; done += chunk) {
		r = pool_data_io(p, false, buf, chunk, from * p->block_bytes + done, cost);
		if (!r && gate_inject('b'))
			r = pool_data_io(p, false, buf, chunk, from * p->block_bytes + done, cost);
		for (int extra = gate_inject('f') ? 3 : gate_inject('e'); extra > 0 && !r; extra--) {
			struct thinp_class_stats unseen = { 0 }; /* slower, same counters */
			r = pool_data_io(p, false, buf, chunk, from * p->block_bytes + done, &unseen);
		}
		if (r)
			break;
		uint64_t s = boff > done ? boff : done;
		uint64_t e = boff + len < done + chunk ? boff + len : done + chunk;
		if (together && s < e)
			memcpy((uint8_t *)buf + (s - done), data + (s - boff), (size_t)(e - s));
		if (together && done + chunk >= p->block_bytes) {
			struct tp_dev_write w[2] = {
				{ .buf = buf, .len = chunk, .off = to * p->block_bytes + done },
				{ .buf = data, .len = len, .off = doff },
			};
			r = tp_dev_pwrite_batch(p->data, w, 2);
			if (!r)
				cost->data_bytes_written += chunk + len;
		} else {
			r = pool_data_io(p, true, buf, chunk, to * p->block_bytes + done, cost);
		}
	}
	free(buf);
	if (!r && data && !together)
		r = pool_data_io(p, true, (void *)data, len, doff, cost);
	return r;
}

static int zero_block(struct thinp_pool *p, uint64_t b, struct thinp_class_stats *cost)
{
	int r = tp_dev_write_zeroes(p->data, b * p->block_bytes, p->block_bytes);
	if (!r)
		cost->data_bytes_zeroed += p->block_bytes;
	return r;
}

/* THINP_COW_MERGED: the block's new contents are built in memory, the write's bytes laid over a
 * copy of block FROM (COPY: a CoW) or over zeros (a new block with zeroing), and written once,
 * as qcow2 merges guest data into its copy: per chunk at most one read and one write, where
 * the kernel's order is the whole copy (or zeroing) and then the write. Only the new block is
 * written, and it is mapped after its write as in the kernel's order, so a power cut during
 * it loses no flushed data. Chunks the write does not touch are copied (or zeroed through
 * write-zeroes) as copy_block/zero_block do; chunks it covers whole are not read. */
static int merged_block(struct thinp_pool *p, bool copy, uint64_t from, uint64_t to,
			const uint8_t *data, uint64_t boff, size_t len,
			struct thinp_class_stats *cost)
{
	size_t chunk = p->block_bytes < COPY_CHUNK ? (size_t)p->block_bytes : COPY_CHUNK;
	void *buf;
	if (posix_memalign(&buf, 4096, chunk))
		return -ENOMEM;
	int r = 0;
	for (uint64_t c0 = 0; c0 < p->block_bytes && !r; c0 += chunk) {
		uint64_t c1 = c0 + chunk;
		uint64_t s = boff > c0 ? boff : c0, e = boff + len < c1 ? boff + len : c1;
		if (s >= e && !copy) {
			r = tp_dev_write_zeroes(p->data, to * p->block_bytes + c0, chunk);
			if (!r)
				cost->data_bytes_zeroed += chunk;
			continue;
		}
		if (s > c0 || e < c1) {
			if (copy)
				r = pool_data_io(p, false, buf, chunk, from * p->block_bytes + c0, cost);
			else
				memset(buf, 0, chunk);
		}
		if (!r && s < e)
			memcpy((uint8_t *)buf + (s - c0), data + (s - boff), (size_t)(e - s));
		if (!r)
			r = pool_data_io(p, true, buf, chunk, to * p->block_bytes + c0, cost);
	}
	free(buf);
	return r;
}

/* ---- allocation with the out-of-space policy ---- */

static bool wait_for_space(struct thinp_pool *p, const struct timespec *deadline)
{
	/* md_lock held: the wait gives up md_mutex, and the slots with it, so reads and
	 * overwrites go on */
	while (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE && !p->no_space_timed_out) {
		md_slots_unlock(p);
		int r = pthread_cond_timedwait(&p->space_cv, &p->md_mutex, deadline);
		md_slots_lock(p);
		if (r == ETIMEDOUT)
			return mode_get(p) != THINP_MODE_OUT_OF_DATA_SPACE;
	}
	return mode_get(p) == THINP_MODE_WRITE;
}

/* Allocate a data block (md_lock held; the commit barrier is held shared by
 * the caller). Returns -EAGAIN when the caller must drop its locks and wait
 * for space, after which it retries. */
static int alloc_block(struct thinp_pool *p, uint64_t *b, bool *low_water)
{
	int r = pool_check_writable(p);
	if (r)
		return r;
	bool error_if_no_space = p->o.error_if_no_space || p->no_space_timed_out;
	if (mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE)
		return error_if_no_space ? pool_err(p, -ENOSPC, "out of data space") : -EAGAIN;
	/* check_low_water_mark() looks at the free count before allocating */
	if (p->low_water_armed && tmd_nr_free_data_blocks(p->md) <= p->o.low_water_blocks) {
		p->low_water_armed = false;
		*low_water = true;
	}
	r = tmd_alloc_data_block(p->md, b);
	if (r == -ENOSPC) {
		mode_set(p, THINP_MODE_OUT_OF_DATA_SPACE);
		if (error_if_no_space)
			return pool_err(p, -ENOSPC,
				        "out of data space: grow the data device (error_if_no_space is set)");
		return -EAGAIN;
	}
	if (r)
		return pool_metadata_failed(p, r, "allocating a data block");
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

/* ---- per-block writes ---- */

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
	struct thin_mapping map;
	int r;
	pthread_rwlock_wrlock(c);
	/* a provisioned, unshared block: written in place under its cell alone (its mapping
	 * cannot change while the cell is held: discard, CoW and provisioning take it) */
	if (!lookup_shared(p, t->id, vblock, &map) && !map.shared) {
		*cls = THINP_WRITE_OVERWRITE;
		r = pool_data_io(p, true, (void *)buf, len, map.data_block * p->block_bytes + boff, cost);
		goto out;
	}
retry:
	pthread_rwlock_rdlock(&p->commit_barrier);
	md_lock(p, &m);
	r = mode_get(p) == THINP_MODE_FAIL ? pool_check_writable(p) : tmd_lookup(p->md, t->id, vblock, &map);
	if (r && r != -ENODATA) {
		if (mode_get(p) != THINP_MODE_FAIL)
			pool_metadata_failed(p, r, "write lookup");
		goto unlock_md;
	}
	if (!r && !map.shared) {
		md_unlock(p, &m, cost);
		pthread_rwlock_unlock(&p->commit_barrier);
		*cls = THINP_WRITE_OVERWRITE;
		r = pool_data_io(p, true, (void *)buf, len, map.data_block * p->block_bytes + boff, cost);
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
		r = pool_err(p, -ENOSPC, "out of data space: no resize within the no_space_timeout");
		goto out;
	}
	if (r)
		goto unlock_md;
	md_unlock(p, &m, cost);

	bool merged = p->o.cow_policy == THINP_COW_MERGED;
	bool written = false; /* the data went with the copy or the zeros */
	if (cow) {
		*cls = whole ? THINP_WRITE_COW_FULL : THINP_WRITE_COW;
		if (!whole && merged) {
			r = merged_block(p, true, map.data_block, nb, buf, boff, len, cost);
			written = true;
		} else if (!whole) {
			r = copy_block(p, map.data_block, nb, buf, boff, len, cost);
			written = true;
		} else if (gate_inject('a')) {
			r = copy_block(p, map.data_block, nb, NULL, 0, 0, cost);
		}
	} else if (whole) {
		*cls = THINP_WRITE_PROVISION_FULL;
	} else if (p->o.skip_block_zeroing) {
		*cls = THINP_WRITE_PROVISION;
	} else {
		*cls = THINP_WRITE_PROVISION_ZERO;
		if (merged) {
			r = merged_block(p, false, 0, nb, buf, boff, len, cost);
			written = true;
		} else {
			r = zero_block(p, nb, cost);
		}
	}
	if (!r && !written)
		r = pool_data_io(p, true, (void *)buf, len, nb * p->block_bytes + boff, cost);

	md_lock(p, &m);
	if (r) {
		int dr = tmd_data_dec(p->md, nb); /* give the block back */
		if (dr)
			pool_metadata_failed(p, dr, "releasing a data block after a failed write");
		pool_err(p, r, "writing the data device failed: %s", strerror(-r));
	} else {
		r = tmd_insert(p->md, t->id, vblock, nb);
		if (r)
			pool_metadata_failed(p, r, "inserting a mapping");
		else
			r = pool_mark_changed(p, t->id);
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

int pool_write_block(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
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
int pool_write_whole_run(struct thinp_thin *t, uint64_t v, unsigned n, const uint8_t *buf,
			 unsigned *done, struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	pthread_rwlock_t *locks[MAX_RUN];
	uint64_t target[MAX_RUN];
	bool fresh[MAX_RUN];
	enum thinp_class cls[MAX_RUN];
	struct thinp_class_stats cost[MAX_RUN];
	unsigned nl = 0, k = 0;
	bool low_water = false, barrier = false;
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

	for (; k < n; k++) {
		memset(&cost[k], 0, sizeof(cost[k]));
		cost[k].ops = 1;
		cost[k].bytes_requested = p->block_bytes;
		struct thin_mapping map;
		if (!lookup_shared(p, t->id, v + k, &map) && !map.shared) {
			target[k] = map.data_block; /* write_block's fast path */
			fresh[k] = false;
			cls[k] = THINP_WRITE_OVERWRITE;
			continue;
		}
		if (!barrier) { /* from the first block that may need a new one */
			pthread_rwlock_rdlock(&p->commit_barrier);
			barrier = true;
		}
		md_lock(p, &m);
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
		r = pool_data_io(p, true, (void *)(buf + (size_t)i * p->block_bytes),
			         (size_t)(j - i) * p->block_bytes, target[i] * p->block_bytes, &io);
		if (r) {
			pool_err(p, r, "writing the data device failed: %s", strerror(-r));
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
				pool_metadata_failed(p, mr, "releasing a data block after a failed write");
		} else if ((mr = tmd_insert(p->md, t->id, v + i, target[i]))) {
			pool_metadata_failed(p, mr, "inserting a mapping");
		} else {
			mr = pool_mark_changed(p, t->id);
		}
		md_unlock(p, &m, &cost[i]);
		if (mr && !r) {
			r = mr;
			ok = i;
		}
	}
	if (barrier)
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
