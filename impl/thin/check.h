/* Strict offline checker of thin-pool metadata. It walks every structure from
 * the superblock with its own reader (sharing only the block codecs with the
 * writer) and recomputes what thin_check 0.9.0 skips: data block reference
 * counts (= number of leaf entries pointing at each block, a shared leaf
 * counted once), mapped_blocks per device, mappings inside the data device,
 * magic/blocknr/checksums, btree fill and ordering, metadata reference counts,
 * nr_allocated / nr_free / none_free_before in both space maps. */
#ifndef THINP_THIN_CHECK_H
#define THINP_THIN_CHECK_H

#include <stdint.h>

#include "io/dev.h"

/* Called once per fault found, with a complete sentence. */
typedef void (*tcheck_report_fn)(void *ctx, const char *msg);

struct tcheck_opts {
	uint64_t metadata_snap; /* check the tree held by this metadata snapshot too; 0 = auto (sb held_root) */
	int skip_data_counts;   /* 1 = do not compare data space-map counts */
};

/* Returns 0 when the check ran (then *nr_errors tells the verdict) or a
 * negative errno when it could not (device unreadable, out of memory). */
int tcheck_run(struct tp_dev *meta, const struct tcheck_opts *opts, tcheck_report_fn report,
	       void *ctx, unsigned *nr_errors);

#endif
