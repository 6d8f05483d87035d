/* Shared plumbing for the pdata-level model tests (test_btree,
 * test_space_map, test_metadata_model):
 *
 *  - the seed (THINP_SEED) and a context string that every failure message
 *    starts with;
 *  - REQ/REQ0, which abort the test with that context and the seed;
 *  - the pdata stack (in-memory device, block manager, metadata space map,
 *    transaction manager, optionally a data space map) with commit and
 *    reopen-from-the-last-commit.
 *
 * All symbols but REQ/REQ0 are prefixed su_. */
#ifndef THINP_TESTS_STACK_UTIL_H
#define THINP_TESTS_STACK_UTIL_H

#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pdata/block_manager.h"
#include "pdata/space_map.h"
#include "pdata/transaction_manager.h"

extern uint64_t su_seed;
extern char su_ctx_buf[256];

/* Check's ck_assert_* write to the parent on every call (a write() per
 * assertion), so assert only on failure. */
#define REQ(expr, fmt, ...)                                                              \
	do {                                                                             \
		if (!(expr))                                                             \
			ck_abort_msg("[%s] " fmt " (rerun with THINP_SEED=%" PRIu64 ")", \
			             su_ctx_buf, ##__VA_ARGS__, su_seed);                \
	} while (0)
#define REQ0(call)                                                                    \
	do {                                                                          \
		int r_ = (call);                                                      \
		REQ(r_ == 0, "%s = %d (%s)", #call, r_, strerror(r_ < 0 ? -r_ : r_)); \
	} while (0)

/* Context "TEST seed=S op=OP". */
void su_set_ctx(const char *test, uint64_t op);

/* Seed from THINP_SEED (else DEF_SEED), announce it as NAME's, run the suite
 * SUITE() builds. The exit status. */
int su_main(uint64_t def_seed, const char *name, Suite *(*suite)(void));

/* ---- the pdata stack ---- */

struct su_stack {
	struct tp_dev *dev;
	struct bm *bm;
	struct sm_meta *sm;
	struct tm *tm;
	struct sm_disk *dsm; /* set by the caller when it wants a data space map */
	size_t cache;
	uint8_t mroot[SM_ROOT_SIZE], droot[SM_ROOT_SIZE]; /* as of the last commit */
	bool committed;
};

/* DEV_BLOCKS on a fresh in-memory device, a metadata space map of SM_BLOCKS
 * whose block 0 is taken (a pretend superblock), CACHE blocks of cache. */
void su_stack_create(struct su_stack *s, uint64_t dev_blocks, uint64_t sm_blocks, size_t cache);
/* Everything but the device; dirty blocks are dropped, i.e. an abort. */
void su_stack_close(struct su_stack *s);
void su_stack_destroy(struct su_stack *s);
void su_stack_commit(struct su_stack *s);
/* Throw away the open transaction and load the committed state. */
void su_stack_reopen(struct su_stack *s);

#endif
