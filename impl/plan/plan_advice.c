/* The recommendations of plan_advice.h. */
#include "plan/plan_advice.h"

#include <math.h>
#include <stdio.h>

#include "plan/plan_meta.h"
#include "plan/plan_model.h"

/* Within this much of the least data, a larger block is as good for space and costs fewer
 * mappings, so fewer metadata blocks and lookups. */
#define PLAN_DATA_SLACK 0.05

int plan_advise(const struct plan_spec *s, struct plan_advice *a)
{
	double least = INFINITY;
	for (unsigned i = 0; i < PLAN_CANDIDATES; i++) {
		struct plan_spec t = *s;
		t.block_size = (64ull << 10) << i;
		/* room for all data, so the peaks are the workload's own: a first run on a vast
		 * pool finds the data's peak, the second sizes the pool to hold it (the data
		 * space map's blocks follow the pool's size) */
		t.data_size = 1ull << 50;
		/* the spec's metadata device: its space map is part of the peak, and one sized
		 * for 16 GiB would inflate it by 256 bitmaps */
		t.metadata_size = s->metadata_size;
		t.autoextend_threshold = 100;
		t.min_free_space = 0;
		t.low_water_blocks = 0;
		struct plan_result r;
		if (plan_run(&t, &r))
			return -1;
		double need = (r.peak_demand + 1) * (double)t.block_size;
		plan_result_free(&r);
		t.data_size = need > (double)s->data_size ? (uint64_t)need : s->data_size;
		if (plan_run(&t, &r))
			return -1;
		struct plan_candidate *c = &a->cand[i];
		c->block_size = t.block_size;
		c->peak_data_bytes = r.peak_demand * (double)t.block_size;
		c->peak_meta_blocks = r.peak_meta;
		c->zero_bytes = r.zero_bytes;
		c->copy_bytes = r.copy_bytes;
		plan_result_free(&r);
		if (c->peak_data_bytes < least)
			least = c->peak_data_bytes;
	}
	unsigned best = 0;
	for (unsigned i = 0; i < PLAN_CANDIDATES; i++)
		if (a->cand[i].peak_data_bytes <= least * (1 + PLAN_DATA_SLACK))
			best = i;
	const struct plan_candidate *b = &a->cand[best], *small = &a->cand[0],
	                            *big = &a->cand[PLAN_CANDIDATES - 1];
	a->block_size = b->block_size;
	if (best == PLAN_CANDIDATES - 1)
		snprintf(
		        a->reason_block, sizeof(a->reason_block),
		        "%llu KiB: the workload provisions about the same data at every block size "
		        "(%.2f GiB at 64 KiB, %.2f GiB at 1 MiB: its writes fill whole blocks), so "
		        "the largest block wins: %.0f metadata blocks instead of %.0f, and fewer "
		        "mappings to look up.",
		        (unsigned long long)(b->block_size >> 10),
		        small->peak_data_bytes / (1 << 30), big->peak_data_bytes / (1 << 30),
		        b->peak_meta_blocks, small->peak_meta_blocks);
	else if (best == 0)
		snprintf(
		        a->reason_block, sizeof(a->reason_block),
		        "64 KiB, the kernel's smallest: every larger block provisions more for this "
		        "workload (peak data %.2f GiB at 64 KiB, %.2f GiB at 128 KiB, %.2f GiB at 1 "
		        "MiB: small random writes and copy-on-write provision or copy a whole block "
		        "each), which outweighs the %.0f metadata blocks it costs. With zeroing on, "
		        "each partly written new block is zeroed first: %.2f GiB of extra writes "
		        "here (zeroing off saves them if the file system never reads unwritten "
		        "blocks).",
		        b->peak_data_bytes / (1 << 30), a->cand[1].peak_data_bytes / (1 << 30),
		        big->peak_data_bytes / (1 << 30), b->peak_meta_blocks,
		        b->zero_bytes / (1 << 30));
	else
		snprintf(a->reason_block, sizeof(a->reason_block),
		         "%llu KiB: larger blocks waste space on this workload (peak data %.2f GiB "
		         "at %llu KiB, %.2f GiB at 1 MiB: small random writes and copy-on-write "
		         "provision or copy a whole block each), and smaller ones would save under "
		         "%.0f%% of the data for %.0f more metadata blocks. With zeroing on, each "
		         "partly written new block is zeroed first: %.2f GiB of extra writes here.",
		         (unsigned long long)(b->block_size >> 10), b->peak_data_bytes / (1 << 30),
		         (unsigned long long)(b->block_size >> 10),
		         big->peak_data_bytes / (1 << 30), PLAN_DATA_SLACK * 100,
		         small->peak_meta_blocks - b->peak_meta_blocks, b->zero_bytes / (1 << 30));
	/* twice the peak: a transaction shadows every node it changes, so until the commit the
	 * old and new copies are both allocated; plus the kernel's reserve */
	double want = 2 * b->peak_meta_blocks;
	want += (double)plan_meta_reserve((uint64_t)(want * 10 / 9));
	double bytes = ceil(want * PLAN_META_BLOCK / (1 << 20)) * (1 << 20);
	if (bytes < (2 << 20))
		bytes = 2 << 20; /* LVM's smallest pool metadata */
	int over = bytes > (double)PLAN_MAX_METADATA;
	if (over)
		bytes = (double)PLAN_MAX_METADATA;
	a->metadata_size = (uint64_t)bytes;
	a->meta_peak_blocks = b->peak_meta_blocks;
	snprintf(
	        a->reason_meta, sizeof(a->reason_meta),
	        "%llu MiB: the model's peak is %.0f metadata blocks (%.1f MiB) at %llu KiB blocks; "
	        "doubled because a commit holds the old and the new copy of every node it "
	        "changed, plus the kernel's reserve of min(4096 blocks, 10%%).%s",
	        (unsigned long long)(a->metadata_size >> 20), b->peak_meta_blocks,
	        b->peak_meta_blocks * PLAN_META_BLOCK / (1 << 20),
	        (unsigned long long)(b->block_size >> 10),
	        over ? " That is over the 16 GiB limit: use a larger block size or fewer "
	               "snapshots." :
	               "");
	return 0;
}
