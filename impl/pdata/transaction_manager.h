/* Transaction manager: copy-on-write ("shadowing") of metadata blocks on top
 * of the block manager and the metadata space map.
 *
 * A block reachable from the committed superblock is never written: changing
 * it means shadowing it to a new block. Blocks allocated in the open
 * transaction are modified in place while they have a single reference.
 * New blocks are only ever taken from blocks free in both the current and the
 * committed state, so a block freed in this transaction is not reused before
 * the commit that makes its freeing durable. */
#ifndef THINP_PDATA_TRANSACTION_MANAGER_H
#define THINP_PDATA_TRANSACTION_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "pdata/block_manager.h"

struct sm_meta;
struct tm;

int tm_create(struct bm *bm, struct sm_meta *sm, struct tm **out);
void tm_destroy(struct tm *tm);

struct bm *tm_bm(struct tm *tm);
struct sm_meta *tm_sm(struct tm *tm);

/* Allocate a new zeroed block, write-locked. */
int tm_new_block(struct tm *tm, const struct bm_validator *v, struct bm_block **out);
/* Get a writable version of ORIG: in place if it was allocated in this
 * transaction and has one reference, else a copy in a new block (ORIG loses
 * one reference). *inc_children is set when ORIG was shared, in which case
 * the caller must add a reference to everything the copy points to. */
int tm_shadow_block(struct tm *tm, uint64_t orig, const struct bm_validator *v,
		    struct bm_block **out, bool *inc_children);
int tm_read_lock(struct tm *tm, uint64_t b, const struct bm_validator *v, struct bm_block **out);
/* (tm_read_lock and tm_shadow_block: a block that fails its validator, lies
 * beyond the device or, shadowed, is free in the space map was reached
 * through a corrupt pointer: -EUCLEAN, see tm_corrupt.) */
void tm_unlock(struct tm *tm, struct bm_block *blk);
/* bm_peek on the transaction manager's block manager (lookups side by side). */
const void *tm_peek(struct tm *tm, uint64_t b, const struct bm_validator *v);

int tm_inc(struct tm *tm, uint64_t b);
int tm_dec(struct tm *tm, uint64_t b);
int tm_ref(struct tm *tm, uint64_t b, uint32_t *count);

/* Corrupt metadata found by a walk over the blocks (a btree that loops or is
 * deeper than any real tree, a node of the wrong kind, a block that fails
 * its validator): record "metadata corrupt: <what>" and return -EUCLEAN (the
 * kernel's EFSCORRUPTED), so callers can tell corruption from IO errors and
 * name it instead of printing strerror. */
int tm_corrupt(struct tm *tm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The sentence of the last tm_corrupt, "" if none. */
const char *tm_error(const struct tm *tm);

#endif
