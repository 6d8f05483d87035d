/* Shared plumbing for the pool-level unit tests (test_pool_space,
 * test_pool_status, test_pool_concurrency, test_pool_amplification):
 *
 *  - the seed (THINP_SEED), a scratch root removed when the run ends, and a
 *    context string that every failure message starts with;
 *  - REQ/REQ0, which abort the test with that context and the seed;
 *  - a pool formatted on sparse files in a fresh directory.
 *
 * All symbols but REQ/REQ0 are prefixed pu_. */
#ifndef THINP_TESTS_POOL_UTIL_H
#define THINP_TESTS_POOL_UTIL_H

#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "io/dev.h"
#include "support/dev_fault.h"
#include "thinp.h"

extern uint64_t pu_seed;
extern char pu_top[PATH_MAX - 128]; /* scratch root, removed by pu_main() */
extern char pu_ctx_buf[256];

/* Check's ck_assert_msg() reports a passing check to the parent process (a
 * pipe write each): only call it on failure. Main thread only. */
#define REQ(expr, fmt, ...)                                                        \
	do {                                                                       \
		if (!(expr))                                                       \
			ck_abort_msg("[%s] " fmt " (seed %" PRIu64                 \
			             ", rerun with THINP_SEED=%" PRIu64 ")",       \
			             pu_ctx_buf, ##__VA_ARGS__, pu_seed, pu_seed); \
	} while (0)
#define REQ0(call)                                                                    \
	do {                                                                          \
		int r_ = (call);                                                      \
		REQ(r_ == 0, "%s = %d (%s)", #call, r_, strerror(r_ < 0 ? -r_ : r_)); \
	} while (0)

/* Set the context that failure messages start with. */
void pu_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seed from THINP_SEED (else DEF_SEED), make the scratch root thinp-TAG-*,
 * run the suite SUITE() builds, remove the scratch root. The exit status. */
int pu_main(uint64_t def_seed, const char *tag, Suite *(*suite)(void));
/* The same without a scratch directory: the seed (THINP_SEED, else DEF_SEED) into *SEED,
 * printed with NAME, and on failure the line that reruns it. */
int pu_run(uint64_t def_seed, const char *name, Suite *(*suite)(void), uint64_t *seed);

/* ---- a pool on sparse files ---- */

struct pu_env {
	char dir[PATH_MAX - 64];
	char data_path[PATH_MAX], meta_path[PATH_MAX];
	struct tp_dev *data, *meta; /* owned by the pool */
	struct tp_fault *fault;     /* when the metadata device is wrapped */
	struct thinp_pool *p;
	uint64_t B;               /* block bytes */
	struct thinp_pool_opts o; /* as formatted */
};

/* Format a pool of NR_DATA_BLOCKS blocks of BLOCK_SECTORS (which overrides
 * opts->block_sectors; OPTS may be NULL) on a META_BYTES metadata file, both
 * in a new directory under pu_top. With FAULT the metadata device is wrapped
 * in a fault injector (e->fault). */
void pu_env_open(struct pu_env *e, uint32_t block_sectors, uint64_t nr_data_blocks,
                 uint64_t meta_bytes, const struct thinp_pool_opts *opts, bool fault);

#endif
