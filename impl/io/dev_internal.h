/* Shared between the device implementations in impl/io/; not part of the
 * public API. */
#ifndef THINP_IO_DEV_INTERNAL_H
#define THINP_IO_DEV_INTERNAL_H

#include "io/dev.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define tp_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Chunk used when zeroes have to be written out by hand. */
#define TP_ZERO_CHUNK (1u << 20)

/* The block device D (tp_dev_open_block) is a loop device over the file FILE_FD, which D
 * now owns: its resize grows the file and has the loop re-read its size. */
int tp_block_set_backing_file(struct tp_dev *d, int file_fd);

void tp_dev_init(struct tp_dev *d, const struct tp_dev_ops *ops, const char *name, uint64_t size,
                 unsigned align);

/* A pool grows its data device (under its metadata lock) while IO to the blocks already
 * there goes on without that lock: the size is read and set atomically. */
static inline uint64_t tp_dev_size_get(const struct tp_dev *d)
{
	return __atomic_load_n(&d->size, __ATOMIC_ACQUIRE);
}

static inline void tp_dev_size_set(struct tp_dev *d, uint64_t size)
{
	__atomic_store_n(&d->size, size, __ATOMIC_RELEASE);
}

/* Every op is range-checked up front so an out-of-range request fails the
 * same way (-EINVAL) on every device instead of extending a file, hitting a
 * short read at EOF or scribbling past a buffer. */
static inline int tp_dev_check_range(const struct tp_dev *d, uint64_t off, uint64_t len)
{
	uint64_t size = tp_dev_size_get(d);
	if (len > size || off > size - len)
		return -EINVAL;
	return 0;
}

/* Counters count completed operations only: a failed op moved no bytes, and
 * amplification figures are computed from these. Several pool threads share a device: each
 * thread adds to the shard it owns without a locked instruction (one right after a 4 KiB copy
 * waits for the copy's stores to drain), or atomically to the shared last shard. */
static inline void tp_ctr_add(struct tp_dev *d, size_t field_off, uint64_t v)
{
	unsigned s = tp_thread_shard();
	uint64_t *f = (uint64_t *)((char *)&d->ctr_shard[s].c + field_off);
	if (s < TP_CTR_SHARDS)
		tp_own_add(f, v);
	else
		__atomic_fetch_add(f, v, __ATOMIC_RELAXED);
}
#define TP_CTR_ADD(d, field, v) tp_ctr_add((d), offsetof(struct tp_io_counters, field), (v))
static inline void tp_ctr_read(struct tp_dev *d, uint64_t len)
{
	TP_CTR_ADD(d, reads, 1);
	TP_CTR_ADD(d, bytes_read, len);
}

static inline void tp_ctr_write(struct tp_dev *d, uint64_t len)
{
	TP_CTR_ADD(d, writes, 1);
	TP_CTR_ADD(d, bytes_written, len);
}

static inline void tp_ctr_flush(struct tp_dev *d)
{
	TP_CTR_ADD(d, flushes, 1);
}

static inline void tp_ctr_zero(struct tp_dev *d, uint64_t len)
{
	TP_CTR_ADD(d, zero_ops, 1);
	TP_CTR_ADD(d, bytes_zeroed, len);
}

static inline void tp_ctr_discard(struct tp_dev *d, uint64_t len)
{
	TP_CTR_ADD(d, discards, 1);
	TP_CTR_ADD(d, bytes_discarded, len);
}

/* "This device cannot do that" as opposed to a real failure. */
static inline bool tp_errno_unsupported(int err)
{
#if ENOTSUP != EOPNOTSUPP
	if (err == ENOTSUP)
		return true;
#endif
	return err == EOPNOTSUPP || err == ENOSYS || err == ENOTTY;
}

/* Full-length positional IO: retries short transfers and EINTR. An early EOF
 * is -EIO because callers range-check against the device size first. */
int tp_fd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int tp_fd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* The whole vector (cnt <= TP_DEV_IOV_MAX) at OFF; DSYNC: durable on return
 * (RWF_DSYNC, else the write and fsync/fdatasync as DATA_ONLY says). */
int tp_fd_pwritev_full(int fd, const struct iovec *iov, int cnt, uint64_t off, bool dsync,
		       bool data_only);
/* Validate a pwritev request against D: its total length in *LEN. */
int tp_iov_check(const struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
		 size_t *len);

/* Write LEN zero bytes at OFF through pwrite, with a buffer aligned to ALIGN
 * so it also works on O_DIRECT descriptors. */
int tp_fd_write_zeroes(int fd, unsigned align, uint64_t off, uint64_t len);

/* flock(LOCK_EX|LOCK_NB); -EBUSY when someone else holds it. */
int tp_fd_lock_excl(int fd);

int tp_fd_fsync(int fd, bool data_only);

/* End D's flusher thread, if it has one (tp_dev_close, before the device's own close). */
void tp_flusher_stop(struct tp_dev *d);

/* Linux AIO contexts of one device for its batched writes (dev_aio.c): the idle ones, kept for
 * the next batch. */
#define TP_AIO_IDLE_MAX 16
struct tp_aio_ctxs {
	pthread_mutex_t lock;
	uint64_t idle[TP_AIO_IDLE_MAX];
	int nidle;
	bool unavailable; /* AIO refused once: batches are plain writes from then on */
};
void tp_aio_ctxs_init(struct tp_aio_ctxs *c);
void tp_aio_ctxs_destroy(struct tp_aio_ctxs *c);
void tp_aio_disable(struct tp_aio_ctxs *c);
/* W[0..CNT) written to the O_DIRECT descriptor FD all at once; DONE[i] says which completed
 * (to count them). -EOPNOTSUPP, nothing written, when AIO cannot be used here: the caller
 * writes them one by one. */
int tp_aio_pwrite_batch(struct tp_aio_ctxs *c, int fd, const struct tp_dev_write *w, int cnt,
			bool *done);
/* The device's share of a batch: range and read-only checks, the writes (through C, or one by
 * one where C is NULL or AIO refuses), each completed one counted. */
int tp_dev_batch_fd(struct tp_dev *d, struct tp_aio_ctxs *c, int fd, bool rdonly,
		    const struct tp_dev_write *w, int cnt);

/* posix_memalign that returns 0/-ENOMEM and tolerates align < sizeof(void *). */
int tp_alloc_aligned(void **out, size_t align, size_t len);

#endif
