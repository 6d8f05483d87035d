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
	/* The trees of the superblock's held metadata snapshot (held_root) are
	 * always checked and counted. Nonzero: also report a fault unless
	 * held_root is this block. */
	uint64_t metadata_snap;
	int skip_data_counts; /* 1 = do not compare data space-map counts */
	/* 1 = do not walk the per-device mapping trees, as thin_check
	 * --skip-mappings: the superblock, both space maps' structure, the
	 * details tree and the top level of the mapping tree (every device's
	 * subtree root must be a block on the device) are checked, nothing
	 * below it is read. What the walk would have counted is not compared:
	 * data reference counts, mapped_blocks, and metadata counts that look
	 * too high (the uncounted references are below the top level); counts
	 * too low are still faults. Implies skip_data_counts. */
	int skip_mappings;
	int super_block_only; /* 1 = check only the superblock fields */
	/* 1 = non-fatal faults are reported as warnings and not counted in
	 * *nr_errors, like thin_check --ignore-non-fatal-errors: reference
	 * counts that are too high (leaks) and space-map counters that
	 * understate free space (nr_free too low, none_free_before too high,
	 * nr_allocated too high) — wasted space, no danger to data. */
	int ignore_leaks;
	/* Messages of one sort printed before the rest are only counted
	 * (a summary line follows); 0 = 64. Every fault is counted anyway. */
	unsigned max_reports_per_kind;
};

/* Returns 0 when the check ran (then *nr_errors tells the verdict) or a
 * negative errno when it could not (device unreadable, out of memory). */
int tcheck_run(struct tp_dev *meta, const struct tcheck_opts *opts, tcheck_report_fn report,
               void *ctx, unsigned *nr_errors);

#endif
