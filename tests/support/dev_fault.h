/* Fault-injecting device for tests (never part of libthinp): wraps any
 * tp_dev to fail reads/writes, hold writes volatile until a flush and cut
 * power at a chosen write boundary. Built into libthinp_testsupport.a. */
#ifndef THINP_TESTS_DEV_FAULT_H
#define THINP_TESTS_DEV_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/dev.h"

/* The wrapper forwards to an inner device it owns. It can fail the Nth read
 * or write (1-based, counted from arming) with -EIO, and it can simulate power
 * loss: writes are kept in a volatile cache until the next flush; crash()
 * drops every write not followed by a flush, after which the inner device
 * holds exactly what a real disk with a volatile write cache would hold.
 * It also records write boundaries so a test can replay "crash after the
 * Kth write". */
struct tp_fault;

int tp_fault_wrap(struct tp_dev *inner, struct tp_dev **out, struct tp_fault **fault);
void tp_fault_fail_read(struct tp_fault *f, uint64_t nth);  /* 0 disarms */
void tp_fault_fail_write(struct tp_fault *f, uint64_t nth); /* 0 disarms */
/* Keep unflushed writes volatile (default off: writes go straight through). */
void tp_fault_set_volatile(struct tp_fault *f, int on);
/* Stop accepting writes after the Kth write from now (later writes are
 * silently dropped, as if power went at that boundary). 0 disarms. */
void tp_fault_cut_after(struct tp_fault *f, uint64_t kth_write);
/* With ON, the cut also stops the flush that follows the Kth write: power
 * goes the instant write K completes, so whatever write K (and the writes
 * since the last flush) left in the volatile cache is what a torn crash
 * tears — e.g. a commit's superblock write whose flush never ran. Default
 * off: a flush issued before write K+1 still completes. */
void tp_fault_cut_skips_flush(struct tp_fault *f, int on);
/* Drop all volatile (unflushed) writes now and refuse further IO with -EIO. */
void tp_fault_crash(struct tp_fault *f);

/* A torn power loss: each write still in the volatile cache may reach the
 * disk whole, in part or not at all, as a disk with a volatile cache may
 * leave it. The cache is cut into pieces: a write of N bytes with piece P
 * is ceil(N / P) pieces of P bytes (the last one shorter), P = 0 or >= N
 * makes it one piece. Each piece lands or not by itself; the landing pieces
 * are applied in issue order, so an overwritten range ends up holding its
 * old contents or one of the versions written to it, never an older one
 * over a newer one. Zeroes and discards are one piece (whole or nothing).
 *
 * land() decides each piece; without it a piece lands with probability
 * land_pct percent, drawn from a PRNG seeded with seed (same seed, same
 * cache: same disk). */
typedef bool (*tp_fault_land_fn)(void *ctx, size_t nth_cached, uint64_t write_off,
                                 uint64_t write_len, uint64_t piece_off, uint64_t piece_len);
struct tp_fault_tear {
	uint64_t piece;    /* bytes; 512 = sectors; 0 = whole writes */
	uint64_t seed;     /* without land() */
	unsigned land_pct; /* without land(): 0..100 */
	tp_fault_land_fn land;
	void *ctx;
};
struct tp_fault_tear_stats {
	uint64_t cached;  /* writes in the cache at the crash */
	uint64_t whole;   /* of them: landed whole */
	uint64_t partial; /* landed in part (torn) */
};
/* Tear the cache onto the inner device as HOW says, then crash as
 * tp_fault_crash(). 0, or the inner device's error (the crash happens
 * anyway). ST may be NULL. */
int tp_fault_crash_torn(struct tp_fault *f, const struct tp_fault_tear *how,
                        struct tp_fault_tear_stats *st);
/* Writes (and zeroes, discards) in the volatile cache now. */
size_t tp_fault_cached(const struct tp_fault *f);
/* Number of writes seen (including dropped ones). */
uint64_t tp_fault_writes_seen(const struct tp_fault *f);

#endif
