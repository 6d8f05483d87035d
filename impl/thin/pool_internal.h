/* The thin pool's insides, shared by its files (not installed):
 *   pool.c          lifecycle (format/open/close), errors, modes, commit, commit timer,
 *                   thin device handles
 *   pool_status.c   per-class statistics and the status lines
 *   pool_messages.c create_thin, create_snap, delete, set_transaction_id, metadata snapshot
 *   pool_resize.c   growing the data and metadata devices
 *   pool_io.c       read/write dispatch per pool block, flush, discard, data device IO
 *   pool_write.c    writes that provision or copy: allocation with the out-of-space policy,
 *                   zeroing, CoW, whole-block runs
 *
 * Locking, outermost first: a per-virtual-block cell (striped rwlocks, the
 * role of the kernel's bio prison: one provisioner or copier per block,
 * readers excluded while a block is remapped), the commit barrier (held
 * shared from allocating a data block until its mapping is inserted, so a
 * commit never records an allocation without its mapping), and md_lock
 * around every metadata access. Data IO runs outside md_lock.
 *
 * The helpers the IO paths call per block are static inline here, so splitting the pool
 * into files costs the hot paths no calls. */
#ifndef THINP_THIN_POOL_INTERNAL_H
#define THINP_THIN_POOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/dev.h"
#include "thin/metadata.h"
#include "thinp.h"

#define NR_CELLS 1024u
#define MAX_RUN 32u /* whole blocks of one write handled together (pool_write_whole_run); also
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
	/* thin ids with open handles (under md_lock): dm-thin refuses to delete an open thin
	 * device with EBUSY (its td->open_count), and Docker's deferred deletion relies on it */
	struct open_thin {
		uint64_t id;
		unsigned n;
	} *open_thins;
	size_t nr_open_thins;
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

static inline enum thinp_pool_mode mode_get(const struct thinp_pool *p)
{
	return __atomic_load_n(&p->mode, __ATOMIC_ACQUIRE);
}

static inline void mode_set(struct thinp_pool *p, enum thinp_pool_mode m)
{
	__atomic_store_n(&p->mode, m, __ATOMIC_RELEASE);
}

/* ---- errors, modes, commit (pool.c) ---- */

/* Record the pool's error sentence; returns R. */
/* Under md_lock: does thin ID have an open handle? */
bool pool_thin_is_open(struct thinp_pool *p, uint64_t id);
int pool_err(struct thinp_pool *p, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A metadata operation failed: drop the transaction, go read-only or fail (md_lock held). */
int pool_metadata_failed(struct thinp_pool *p, int r, const char *what);
/* 0, or -EIO (fail mode) / -EROFS (read-only) with the error sentence set. */
int pool_check_writable(struct thinp_pool *p);
/* Note thin ID as changed in the open transaction (md_lock held). */
int pool_mark_changed(struct thinp_pool *p, uint64_t id);
/* Commit with the commit barrier held exclusively and md_lock held. */
int pool_commit_locked(struct thinp_pool *p, struct thinp_class_stats *cost);
/* Take the barrier and md_lock, commit, count it. */
int pool_commit(struct thinp_pool *p);

/* Thin ID changed in the open transaction (md_lock held). */
static inline bool thin_changed(struct thinp_pool *p, uint64_t id)
{
	for (size_t i = 0; i < p->nr_changed; i++)
		if (p->changed_ids[i] == id)
			return true;
	return false;
}

/* ---- cost accounting ---- */

static inline void add_cost(struct thinp_class_stats *a, const struct thinp_class_stats *b)
{
	a->ops += b->ops;
	a->bytes_requested += b->bytes_requested;
	a->data_bytes_read += b->data_bytes_read;
	a->data_bytes_written += b->data_bytes_written;
	a->data_bytes_zeroed += b->data_bytes_zeroed;
	a->meta_bytes_read += b->meta_bytes_read;
	a->meta_bytes_written += b->meta_bytes_written;
}

static inline void record(struct thinp_pool *p, enum thinp_class c,
			  const struct thinp_class_stats *cost)
{
	pthread_mutex_lock(&p->stats_lock);
	add_cost(&p->stats[c], cost);
	pthread_mutex_unlock(&p->stats_lock);
}

static inline enum thinp_class dearer(enum thinp_class a, enum thinp_class b)
{
	return a > b ? a : b;
}

/* One block's outcome into the pool's per-class counters and the IO's result. */
static inline void account(struct thinp_pool *p, struct thinp_io_result *res, enum thinp_class cls,
			   const struct thinp_class_stats *cost)
{
	record(p, cls, cost);
	add_cost(&res->cost, cost);
	res->cls = res->nr_blocks ? dearer(res->cls, cls) : cls;
	res->nr_blocks++;
}

/* Metadata IO happens only under md_lock, so the device counters' movement
 * inside a locked section belongs to that section. */
struct meta_mark {
	uint64_t r, w;
};

static inline void md_lock(struct thinp_pool *p, struct meta_mark *m)
{
	pthread_mutex_lock(&p->md_lock);
	m->r = p->meta->ctr.bytes_read;
	m->w = p->meta->ctr.bytes_written;
}

static inline void md_unlock(struct thinp_pool *p, struct meta_mark *m,
			     struct thinp_class_stats *cost)
{
	if (cost) {
		cost->meta_bytes_read += p->meta->ctr.bytes_read - m->r;
		cost->meta_bytes_written += p->meta->ctr.bytes_written - m->w;
	}
	pthread_mutex_unlock(&p->md_lock);
}

/* ---- the IO paths (pool_io.c, pool_write.c) ---- */

/* The cell (striped lock) of virtual block VBLOCK of thin ID. */
static inline pthread_rwlock_t *cell(struct thinp_pool *p, uint64_t id, uint64_t vblock)
{
	uint64_t h = (id * 0x9E3779B97F4A7C15ull) ^ (vblock * 0xC2B2AE3D27D4EB4Full);
	return &p->cells[(h >> 32) % NR_CELLS];
}

/* Data device IO, bounced when O_DIRECT alignment requires it. */
int pool_data_io(struct thinp_pool *p, bool write, void *buf, size_t len, uint64_t off,
		 struct thinp_class_stats *cost);
/* One block's share of a write (the block_fn of for_each_block). */
int pool_write_block(struct thinp_thin *t, uint64_t vblock, uint8_t *buf, uint64_t boff,
		     size_t len, enum thinp_class *cls, struct thinp_class_stats *cost);
/* Whole blocks [v, v+n) of one write, n <= MAX_RUN; *done blocks were written. */
int pool_write_whole_run(struct thinp_thin *t, uint64_t v, unsigned n, const uint8_t *buf,
			 unsigned *done, struct thinp_io_result *res);

#endif
