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
 * commit never records an allocation without its mapping), and the metadata
 * lock ("md_lock" below) around every metadata access. Data IO runs outside it.
 *
 * The metadata lock has two sides. Exclusive (md_lock(), md_excl_lock()): md_mutex, then
 * every slot's mutex; everything that may change the metadata or its block cache (a lookup
 * that misses does) takes it. Shared (md_shared_lock()): the calling thread's slot alone,
 * for lookups from cached metadata only (tmd_lookup_peek): the fast path of reads and
 * overwrites of provisioned blocks, which takes no barrier and no md_mutex, so two threads
 * overwriting run side by side instead of taking turns on one mutex. A thread keeps its slot
 * (pool_slot(): the device layer's tp_thread_shard(), so no other live thread has it, except
 * the last slot, which the threads beyond TP_CTR_SHARDS share). The slot's shard of the
 * per-class counters is what record() adds to: in an owned slot with plain loads and stores
 * (no lock, no locked instruction), in the shared one under its stats_lock.
 * A commit (pool_commit) releases the slots for its IO alone, keeping md_mutex and the
 * barrier: the fast path goes on during a commit's writes and flushes, nothing else does.
 * md_mutex and the slots spin briefly before they sleep (init_pool): handing the lock over
 * through the kernel on every provision made two provisioning threads slower than one.
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

#define NR_CELLS 16384u
#define CELL_RUN 256u /* consecutive blocks of a thin on consecutive cells (cell()) */
#define MAX_RUN 32u /* whole blocks of one write handled together (pool_write_whole_run); also
                     * keeps the locks one thread holds under ThreadSanitizer's 64 */
#define MAX_RUN_BYTES (16u << 20) /* and at most this many bytes */
#define COPY_CHUNK (1u << 20)
#define NR_SLOTS (TP_CTR_SHARDS + 1u) /* the last shared by threads that own none */

/* A slot of the shared metadata lock and a shard of the per-class counters (pool_slot()). */
struct pool_slot {
	pthread_mutex_t md;
	pthread_mutex_t stats_lock; /* the shared slot's counters only */
	struct thinp_class_stats stats[THINP_NR_CLASSES];
	char pad[128]; /* two slots' written words never share a cache line (nor its pair) */
};

struct thinp_pool {
	struct tp_dev *data, *meta;
	struct tmd *md;
	struct thinp_pool_opts o;
	uint32_t block_sectors;
	uint64_t block_bytes;

	pthread_mutex_t md_mutex; /* the metadata lock's exclusive side, with every slot's md */
	/* thin ids with open handles (under md_lock): dm-thin refuses to delete an open thin
	 * device with EBUSY (its td->open_count), and Docker's deferred deletion relies on it */
	struct open_thin {
		uint64_t id;
		unsigned n;
	} *open_thins;
	size_t nr_open_thins;
	pthread_cond_t space_cv; /* with md_mutex: data space grew or mode changed */
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

	struct pool_slot slots[NR_SLOTS];
	/* thinp_pool_stats_reset(): the counters' sums then, which thinp_pool_stats subtracts
	 * (owned slots are written by their thread alone, so a reset cannot zero them) */
	pthread_mutex_t stats_base_lock;
	struct thinp_class_stats stats_base[THINP_NR_CLASSES];

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

/* The calling thread's slot, 0..NR_SLOTS-1: its own below TP_CTR_SHARDS, else the shared last. */
static inline unsigned pool_slot(void) { return tp_thread_shard(); }

static inline void record(struct thinp_pool *p, enum thinp_class c,
			  const struct thinp_class_stats *cost)
{
	unsigned i = pool_slot();
	struct thinp_class_stats *a = &p->slots[i].stats[c];
	if (i < TP_CTR_SHARDS) {
		tp_own_add(&a->ops, cost->ops);
		tp_own_add(&a->bytes_requested, cost->bytes_requested);
		tp_own_add(&a->data_bytes_read, cost->data_bytes_read);
		tp_own_add(&a->data_bytes_written, cost->data_bytes_written);
		tp_own_add(&a->data_bytes_zeroed, cost->data_bytes_zeroed);
		tp_own_add(&a->meta_bytes_read, cost->meta_bytes_read);
		tp_own_add(&a->meta_bytes_written, cost->meta_bytes_written);
		return;
	}
	pthread_mutex_lock(&p->slots[i].stats_lock);
	add_cost(a, cost);
	pthread_mutex_unlock(&p->slots[i].stats_lock);
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

/* The slots' side of the exclusive metadata lock (md_mutex held). */
static inline void md_slots_lock(struct thinp_pool *p)
{
	for (unsigned i = 0; i < NR_SLOTS; i++)
		pthread_mutex_lock(&p->slots[i].md);
}

static inline void md_slots_unlock(struct thinp_pool *p)
{
	for (unsigned i = NR_SLOTS; i-- > 0;)
		pthread_mutex_unlock(&p->slots[i].md);
}

static inline void md_excl_lock(struct thinp_pool *p)
{
	pthread_mutex_lock(&p->md_mutex);
	md_slots_lock(p);
}

static inline void md_excl_unlock(struct thinp_pool *p)
{
	md_slots_unlock(p);
	pthread_mutex_unlock(&p->md_mutex);
}

/* The shared side: returns the slot's mutex to unlock. Never held while taking md_mutex. */
static inline pthread_mutex_t *md_shared_lock(struct thinp_pool *p)
{
	pthread_mutex_t *m = &p->slots[pool_slot()].md;
	pthread_mutex_lock(m);
	return m;
}

/* Metadata IO happens only under the exclusive metadata lock, so the device counters'
 * movement inside a locked section belongs to that section. */
struct meta_mark {
	uint64_t r, w;
};

static inline void md_lock(struct thinp_pool *p, struct meta_mark *m)
{
	md_excl_lock(p);
	tp_dev_ctr_bytes(p->meta, &m->r, &m->w);
}

static inline void md_unlock(struct thinp_pool *p, struct meta_mark *m,
			     struct thinp_class_stats *cost)
{
	if (cost) {
		uint64_t r, w;
		tp_dev_ctr_bytes(p->meta, &r, &w);
		cost->meta_bytes_read += r - m->r;
		cost->meta_bytes_written += w - m->w;
	}
	md_excl_unlock(p);
}

/* ---- the IO paths (pool_io.c, pool_write.c) ---- */

/* The cell (striped lock) of virtual block VBLOCK of thin ID. Every IO writes its cell's lock
 * word, so where cells fall decides which cache lines threads share: each run of CELL_RUN
 * aligned blocks of a thin takes CELL_RUN consecutive cells, the run's place hashed from the
 * thin and the run. Threads working on different thins or different regions then write
 * different lines (a block hashed alone sent every thread over every line of the array, and
 * two overwriting threads moved a line between their cores on about half their writes). */
static inline pthread_rwlock_t *cell(struct thinp_pool *p, uint64_t id, uint64_t vblock)
{
	uint64_t h = (id * 0x9E3779B97F4A7C15ull) ^ ((vblock / CELL_RUN) * 0xC2B2AE3D27D4EB4Full);
	return &p->cells[(h >> 32) % (NR_CELLS / CELL_RUN) * CELL_RUN + vblock % CELL_RUN];
}

/* The mapping of VBLOCK of thin ID from cached metadata under the shared metadata lock
 * (the caller holds the block's cell): 0, -ENODATA, or -EAGAIN when only the exclusive
 * lookup can tell (not cached, the pool failed, an error to report). */
static inline int lookup_shared(struct thinp_pool *p, uint64_t id, uint64_t vblock,
				struct thin_mapping *map)
{
	pthread_mutex_t *m = md_shared_lock(p);
	/* (under the slot: a failed abort, which may free the metadata objects, switches the
	 * mode under the exclusive side) */
	int r = mode_get(p) == THINP_MODE_FAIL ? -EAGAIN : tmd_lookup_peek(p->md, id, vblock, map);
	pthread_mutex_unlock(m);
	return r;
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
