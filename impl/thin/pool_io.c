/* The IO entry points: reads and writes split at pool-block boundaries
 * (writes of whole blocks go by runs, pool_write.c), flush, discard with its
 * deferred passdown, and data device IO aligned for O_DIRECT. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "thin/pool_internal.h"

/* ---- data device IO with alignment for O_DIRECT ---- */

int pool_data_io(struct thinp_pool *p, bool write, void *buf, size_t len, uint64_t off,
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

/* ---- per-block IO ---- */

static int read_block(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
		      size_t len, enum thinp_class *cls, struct thinp_class_stats *cost)
{
	struct thinp_pool *p = t->p;
	pthread_rwlock_t *c = cell(p, t->id, vblock);
	pthread_rwlock_rdlock(c);
	struct meta_mark m;
	struct thin_mapping map;
	int r = lookup_shared(p, t->id, vblock, &map);
	if (r == -EAGAIN) {
		md_lock(p, &m);
		r = mode_get(p) == THINP_MODE_FAIL ? pool_check_writable(p) : tmd_lookup(p->md, t->id, vblock, &map);
		if (r && r != -ENODATA && mode_get(p) != THINP_MODE_FAIL)
			pool_err(p, r, "read: %s", tmd_error(p->md));
		md_unlock(p, &m, cost);
	}
	if (r == -ENODATA) {
		memset(buf, 0, len);
		*cls = THINP_READ_UNMAPPED;
		r = 0;
	} else if (!r) {
		*cls = map.shared ? THINP_READ_SHARED : THINP_READ_MAPPED;
		r = pool_data_io(p, false, buf, len, map.data_block * p->block_bytes + boff, cost);
	}
	pthread_rwlock_unlock(c);
	return r;
}

typedef int (*block_fn)(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
			size_t len, enum thinp_class *cls, struct thinp_class_stats *cost);

static int check_range(struct thinp_thin *t, uint64_t off, uint64_t len)
{
	/* an unbounded thin (size 0) still has the 64-bit byte range: past it the block
	 * loop's position would wrap to offset 0 */
	if (len > UINT64_MAX - off)
		return pool_err(t->p, -EINVAL,
			        "IO at offset %llu length %llu runs past the end of the 64-bit range",
			        (unsigned long long)off, (unsigned long long)len);
	if (t->size && (off > t->size || len > t->size - off))
		return pool_err(t->p, -EINVAL,
			        "IO at offset %llu length %llu is beyond the thin device's %llu bytes",
			        (unsigned long long)off, (unsigned long long)len,
			        (unsigned long long)t->size);
	return 0;
}

/* Split [off, off+len) at pool-block boundaries. */
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
		/* writes of two or more whole blocks go by runs (pool_write_whole_run) */
		uint64_t whole = boff ? 0 : (len - done) / p->block_bytes;
		uint64_t cap = MAX_RUN_BYTES / p->block_bytes; /* bounds an O_DIRECT bounce */
		if (cap > MAX_RUN)
			cap = MAX_RUN;
		if (whole > cap)
			whole = cap;
		if (is_write && whole >= 2) {
			unsigned did;
			r = pool_write_whole_run(t, vblock, (unsigned)whole, buf + done, &did, res);
			if (r)
				return r;
			done += (size_t)did * p->block_bytes;
			if (did)
				continue; /* else its first block needs write_block's slow path (pool_write.c) */
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

int thinp_read(struct thinp_thin *t, void *buf, size_t len, uint64_t off,
	       struct thinp_io_result *res)
{
	return for_each_block(t, buf, len, off, read_block, false, res);
}

static int flush_thin(struct thinp_thin *t, struct thinp_class_stats *cost)
{
	struct thinp_pool *p = t->p;
	md_excl_lock(p);
	bool changed = thin_changed(p, t->id);
	md_excl_unlock(p);
	if (changed)
		return pool_commit(p); /* flushes the data device first */
	int r = tp_dev_flush(p->data);
	if (r)
		pool_err(p, r, "flushing the data device failed: %s", strerror(-r));
	(void)cost;
	return r;
}

int thinp_write(struct thinp_thin *t, const void *buf, size_t len, uint64_t off, unsigned flags,
		struct thinp_io_result *res)
{
	struct thinp_pool *p = t->p;
	/* read-only pools still take writes to provisioned, unshared blocks:
	 * write_block refuses the rest through alloc_block */
	if (mode_get(p) == THINP_MODE_FAIL) {
		md_excl_lock(p);
		int r = pool_check_writable(p);
		md_excl_unlock(p);
		if (r)
			return r;
	}
	int r = for_each_block(t, (uint8_t *)buf, len, off, pool_write_block, true, res);
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
		/* only mapped blocks have anything to discard: jump to the next one, so a
		 * huge range costs its mappings, not its length (the cell is taken after,
		 * and the lookup below decides) */
		struct meta_mark nm;
		md_lock(p, &nm);
		r = pool_check_writable(p);
		uint64_t next = vb;
		struct thin_mapping nmap;
		if (!r) {
			r = tmd_lookup_next(p->md, t->id, vb, &next, &nmap);
			if (r && r != -ENODATA)
				pool_metadata_failed(p, r, "discard");
		}
		md_unlock(p, &nm, &cost);
		if (r == -ENODATA || (!r && next >= end)) {
			r = 0;
			break;
		}
		if (r)
			break;
		vb = next;
		pthread_rwlock_t *c = cell(p, t->id, vb);
		pthread_rwlock_wrlock(c);
		struct meta_mark m;
		md_lock(p, &m);
		struct thin_mapping map;
		r = pool_check_writable(p);
		if (!r)
			r = tmd_lookup(p->md, t->id, vb, &map);
		bool passdown = false;
		if (!r) {
			r = tmd_remove(p->md, t->id, vb);
			uint32_t count = 1;
			if (!r && !p->o.no_discard_passdown)
				r = tmd_data_count(p->md, map.data_block, &count);
			if (r)
				pool_metadata_failed(p, r, "discard");
			else
				r = pool_mark_changed(p, t->id);
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
				r = pool_err(p, dr, "discard passdown failed: %s", strerror(-dr));
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
