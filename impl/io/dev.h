/* Backing devices for libthinp: a sparse/preallocated file (loop-lvm), a raw
 * block device (direct-lvm), a loop device over a file, and memory. (The
 * fault-injecting wrapper used by tests lives in tests/support/dev_fault.h.)
 *
 * Every device is reached through the same small vtable so the layers above
 * (block manager, pool) never know what is underneath. All functions that
 * can fail return 0 or a negative errno. */
#ifndef THINP_IO_DEV_H
#define THINP_IO_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Byte and operation counters, kept by every device (exact, not sampled). */
struct tp_io_counters {
	uint64_t reads;         /* pread calls */
	uint64_t writes;        /* pwrite and pwritev calls */
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t flushes;       /* flush calls, and durable (TP_WRITE_DSYNC) writes */
	uint64_t zero_ops;      /* write_zeroes calls */
	uint64_t bytes_zeroed;  /* bytes zeroed through write_zeroes (not in bytes_written) */
	uint64_t discards;
	uint64_t bytes_discarded;
};

struct tp_dev;

/* Counter shards per device that a thread owns while it lives (tp_thread_shard()); one more,
 * the last, is shared by the threads beyond that many. */
#define TP_CTR_SHARDS 4

/* Most buffers one tp_dev_pwritev takes (IOV_MAX is 1024 on Linux). */
#define TP_DEV_IOV_MAX 256

/* One of the writes a tp_dev_pwrite_batch issues together, and most of them in one batch. */
struct tp_dev_write {
	const void *buf;
	size_t len;
	uint64_t off;
};
#define TP_DEV_BATCH_MAX 8

enum tp_write_flags {
	/* The write is durable when the call returns, as if followed by a flush
	 * of just this range: RWF_DSYNC (a FUA write on a block device opened
	 * O_DIRECT). Earlier writes are not made durable by it. */
	TP_WRITE_DSYNC = 1 << 0,
};

/* Devices whose flush may run on another thread while the caller writes to
 * a different device (their flush is a syscall on their own descriptor). */
enum tp_dev_caps {
	TP_DEV_CAP_ASYNC_FLUSH = 1 << 0,
};

struct tp_dev_ops {
	int (*pread)(struct tp_dev *d, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct tp_dev *d, const void *buf, size_t len, uint64_t off);
	int (*flush)(struct tp_dev *d);
	/* Zero a byte range using the cheapest path the device has (fallocate
	 * ZERO_RANGE/PUNCH_HOLE, BLKZEROOUT), falling back to writing zeros. */
	int (*write_zeroes)(struct tp_dev *d, uint64_t off, uint64_t len);
	/* Give the range back (PUNCH_HOLE / BLKDISCARD). May be a no-op. */
	int (*discard)(struct tp_dev *d, uint64_t off, uint64_t len);
	/* Grow (or shrink) the device: files, and loop devices over files (the file grows, then
	 * LOOP_SET_CAPACITY); other block devices return -ENOTSUP (their owner grows them). */
	int (*resize)(struct tp_dev *d, uint64_t new_size);
	/* Re-read the size (after an external grow). */
	int (*refresh_size)(struct tp_dev *d);
	void (*close)(struct tp_dev *d);
	/* Write CNT (<= TP_DEV_IOV_MAX) buffers back to back from OFF in one
	 * call; FLAGS are tp_write_flags. Last, and optional, so wrappers that
	 * predate it keep compiling: NULL means tp_dev_pwritev_generic. */
	int (*pwritev)(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
		       unsigned flags);
	/* Write CNT (<= TP_DEV_BATCH_MAX) buffers, each at its own offset, all in flight at
	 * once; when it returns every one has completed, in no particular order, so the caller
	 * makes them independent (where two overlap, they carry the same bytes). Optional, after
	 * pwritev for the same reason: NULL means one pwrite after the other. */
	int (*pwrite_batch)(struct tp_dev *d, const struct tp_dev_write *w, int cnt);
};

struct tp_dev {
	const struct tp_dev_ops *ops;
	uint64_t size;                 /* bytes */
	unsigned align;                /* required buffer/offset alignment (1 or 512/4096 for O_DIRECT) */
	unsigned caps;                 /* tp_dev_caps */
	char name[256];
	struct tp_flusher *flusher;    /* dev_flusher.c's thread, once a flush was started */
	/* IO counters, one shard per thread that owns one (tp_thread_shard()) and a shared one
	 * last, each on cache lines of its own (the padding): two pool threads doing IO at once
	 * do not write the same line, nor the line of SIZE that every IO reads, and a thread
	 * adds to its own shard with a plain load and store, no locked instruction. Read them
	 * with tp_dev_ctr(). */
	struct tp_ctr_shard {
		struct tp_io_counters c;
		char pad[128 - sizeof(struct tp_io_counters) % 64];
	} ctr_shard[TP_CTR_SHARDS + 1];
};

/* The calling thread's shard: 0..TP_CTR_SHARDS-1, which no other live thread of the process
 * uses (claimed at the thread's first call; a shard whose owner has exited is taken over),
 * or TP_CTR_SHARDS, shared by every thread that found none free. Callers keep per-thread
 * state of their own in arrays of TP_CTR_SHARDS + 1 and, in an owned entry, add without
 * atomic read-modify-writes (tp_own_add). */
unsigned tp_thread_shard(void);

/* *F += V in a shard only the calling thread writes: relaxed atomic load and store (plain
 * moves), so readers summing the shards see whole values and the writer pays no lock. */
static inline void tp_own_add(uint64_t *f, uint64_t v)
{
	__atomic_store_n(f, __atomic_load_n(f, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* The counters: the sum of the shards (each a relaxed atomic load; a count taken while IO
 * runs may be mid-update between shards, as any snapshot of running counters is). */
struct tp_io_counters tp_dev_ctr(const struct tp_dev *d);
/* Just the bytes read and written (the pool samples them around every metadata section). */
void tp_dev_ctr_bytes(const struct tp_dev *d, uint64_t *read, uint64_t *written);
/* Zero them (no IO may run meanwhile). */
void tp_dev_ctr_reset(struct tp_dev *d);
/* Set them to C (a wrapper device taking over its inner device's counts). */
void tp_dev_ctr_set(struct tp_dev *d, const struct tp_io_counters *c);

enum tp_dev_flags {
	TP_DEV_RDONLY = 1 << 0,
	TP_DEV_CREATE = 1 << 1, /* create the file if absent (file devices only) */
	TP_DEV_DIRECT = 1 << 2, /* O_DIRECT: callers must use aligned buffers */
	TP_DEV_EXCL = 1 << 3,   /* take an exclusive flock: a second opener gets -EBUSY */
};

/* Open a regular file as a device. With TP_DEV_CREATE and size > 0 a missing
 * file is created sparse with that size. */
int tp_dev_open_file(const char *path, unsigned flags, uint64_t size, struct tp_dev **out);

/* Open a block device (BLKGETSIZE64 for the size, BLKZEROOUT/BLKDISCARD). */
int tp_dev_open_block(const char *path, unsigned flags, struct tp_dev **out);

/* Open whatever PATH is: a block device or a regular file. */
int tp_dev_open(const char *path, unsigned flags, uint64_t size, struct tp_dev **out);

/* Attach the file PATH to a free loop device (autoclear; DIRECT = the
 * loop's --direct-io=on) as losetup does: root only. Returns the loop's path
 * in DEV and an open descriptor *FD that keeps it attached until closed. */
int tp_loop_attach(const char *path, bool direct, char *dev, size_t len, int *fd);
/* The file PATH through a loop device, opened as a block device (FLAGS as
 * for tp_dev_open_block; TP_DEV_DIRECT also sets the loop's direct IO;
 * TP_DEV_EXCL flocks the file for as long as the loop exists). The loop goes
 * away when the device is closed. */
int tp_dev_open_loop(const char *path, unsigned flags, struct tp_dev **out);

/* An in-memory device (tests, model checking). */
int tp_dev_open_mem(uint64_t size, struct tp_dev **out);

static inline int tp_dev_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return d->ops->pread(d, buf, len, off);
}
static inline int tp_dev_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	return d->ops->pwrite(d, buf, len, off);
}
static inline int tp_dev_flush(struct tp_dev *d) { return d->ops->flush(d); }
/* One pwrite per buffer, then a flush if TP_WRITE_DSYNC: what a device
 * without its own pwritev does (same bytes, more calls). */
int tp_dev_pwritev_generic(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
			   unsigned flags);
static inline int tp_dev_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
				 unsigned flags)
{
	if (d->ops->pwritev)
		return d->ops->pwritev(d, iov, cnt, off, flags);
	return tp_dev_pwritev_generic(d, iov, cnt, off, flags);
}

/* The writes W[0..CNT) at once (the pwrite_batch op), or one after the other where the device
 * cannot: each completed one is counted as a write; the first failure is returned. */
int tp_dev_pwrite_batch(struct tp_dev *d, const struct tp_dev_write *w, int cnt);

/* A flush of D that runs while the caller does other IO (on D's flusher thread when D has
 * TP_DEV_CAP_ASYNC_FLUSH, else right away in tp_dev_flush_start). The flusher is started by
 * D's first such flush and lives until tp_dev_close: a commit hands it the flush instead of
 * creating and joining a thread of its own. Every started flush must be waited for. */
struct tp_flush_job {
	struct tp_dev *d;
	int r;
	bool queued; /* handed to the flusher: tp_dev_flush_wait waits for DONE */
	bool done;   /* set by the flusher, under its lock */
};
void tp_dev_flush_start(struct tp_dev *d, struct tp_flush_job *job);
/* The flush's result: 0 or a negative errno. */
int tp_dev_flush_wait(struct tp_flush_job *job);
static inline int tp_dev_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return d->ops->write_zeroes(d, off, len);
}
static inline int tp_dev_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return d->ops->discard(d, off, len);
}
static inline int tp_dev_resize(struct tp_dev *d, uint64_t size) { return d->ops->resize(d, size); }
void tp_dev_close(struct tp_dev *d);

#endif
