/* Block manager: the metadata device as an array of 4 KiB blocks, seen
 * through a bounded cache, with per-block-type validators.
 *
 * Validators check a block when it is read from the device (checksum,
 * self-location, magic) and seal it (checksum, self-location) when it is
 * written back. The cache holds at most its capacity of blocks (more only
 * while callers hold locks on them), evicting by a second-chance clock; dirty blocks are written back on eviction (safe, because the
 * transaction manager only dirties blocks unreachable from the committed
 * superblock) and on flush. */
#ifndef THINP_PDATA_BLOCK_MANAGER_H
#define THINP_PDATA_BLOCK_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "io/dev.h"

#define TP_BLOCK_SIZE 4096u

struct bm_validator {
	const char *name;
	/* Set csum/blocknr before the block is written. */
	void (*prepare)(void *data, uint64_t b);
	/* 0 if valid, else -EILSEQ with a message in err. */
	int (*check)(const void *data, uint64_t b, char *err, size_t errlen);
};

struct bm;
struct bm_block;

struct bm_stats {
	uint64_t hits, misses, evictions, writebacks;
	uint64_t dropped;    /* freed blocks forgotten at once (bm_forget) */
	size_t cached;       /* blocks in the cache now */
	size_t capacity;     /* configured capacity (blocks) */
	size_t peak;         /* most blocks ever cached at once */
};

/* Create a block manager over DEV (not owned) caching at most CACHE_BLOCKS
 * unlocked blocks (minimum 16). */
int bm_create(struct tp_dev *dev, size_t cache_blocks, struct bm **out);
void bm_destroy(struct bm *bm);

/* Blocks on the device (size / 4096). */
uint64_t bm_nr_blocks(const struct bm *bm);

int bm_read_lock(struct bm *bm, uint64_t b, const struct bm_validator *v, struct bm_block **out);
/* Lock for writing, reading the current content. */
int bm_write_lock(struct bm *bm, uint64_t b, const struct bm_validator *v, struct bm_block **out);
/* Lock for writing a block whose old content is irrelevant: zero-filled. */
int bm_write_lock_zero(struct bm *bm, uint64_t b, const struct bm_validator *v,
		       struct bm_block **out);
void bm_unlock(struct bm_block *blk);
/* Block B's content when it is cached, validated by V already and not write-locked, else
 * NULL; nothing is read, locked or counted. For lookups by several threads at once that
 * exclude every other call on BM (which all change the cache): the pointer is good until
 * the next such call. */
const void *bm_peek(struct bm *bm, uint64_t b, const struct bm_validator *v);

/* Block B was freed: drop it from the cache now (unless locked), dirty or
 * not, instead of letting a dead copy take the place of a live block until
 * the clock reaches it. */
void bm_forget(struct bm *bm, uint64_t b);
/* Change the capacity (minimum 16), evicting down to it when it shrank. */
int bm_set_capacity(struct bm *bm, size_t cache_blocks);

void *bm_block_data(struct bm_block *blk);
uint64_t bm_block_location(const struct bm_block *blk);

/* Write every dirty block (sealed by its validator), in location order with
 * adjacent blocks coalesced into one vectored write, without a flush.
 * Fails with -EBUSY if a block is still write-locked. */
int bm_write_dirty(struct bm *bm);
/* bm_write_dirty, then flush the device; except that when the dirty blocks
 * are one run of adjacent blocks and nothing was written since the last
 * flush, that run goes out in one durable (TP_WRITE_DSYNC) write instead. */
int bm_flush(struct bm *bm);
/* bm_flush in three steps, so that bm_peek readers may run during its IO:
 *  - bm_flush_prepare, with every other call on BM excluded: finds the dirty
 *    blocks (-EBUSY if one is write-locked) and seals them;
 *  - bm_flush_io, with only bm_peek readers beside it: writes them and flushes
 *    the device as bm_flush does. It reads the blocks' data and changes no
 *    cache structure, so a reader's pointer stays good;
 *  - bm_flush_finish, excluding everything again: what bm_flush does after
 *    the IO (evicting down to the capacity).
 * Nothing may dirty a block between the prepare and the IO. */
int bm_flush_prepare(struct bm *bm);
int bm_flush_io(struct bm *bm);
int bm_flush_finish(struct bm *bm);
/* Write the 4 KiB BUF (sealed by the caller) to block B durably
 * (TP_WRITE_DSYNC), leaving the cache alone: safe beside bm_peek readers. */
int bm_write_copy_durable(struct bm *bm, uint64_t b, const void *buf);
/* Block B now holds BUF on the device: cache it clean (as bm_unlock_durable
 * leaves the block it wrote), validated by V. */
int bm_install_clean(struct bm *bm, uint64_t b, const struct bm_validator *v, const void *buf);
/* Seal and write the write-locked BLK durably (TP_WRITE_DSYNC: the one
 * block, not what was written before it), then unlock it. On failure it
 * is unlocked still dirty. */
int bm_unlock_durable(struct bm_block *blk);
/* Forget every dirty block without writing it (transaction abort). */
void bm_drop_dirty(struct bm *bm);
/* Re-read the device size after it grew. */
int bm_refresh_size(struct bm *bm);

void bm_get_stats(const struct bm *bm, struct bm_stats *st);
/* The message of the last validation failure, "" if none. */
const char *bm_last_error(const struct bm *bm);

#endif
