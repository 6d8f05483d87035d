/* Recommendations for a spec: the block size and metadata size the workload wants, with the
 * figures behind them, and the reasoning in words (docs/capacity-planning.md,
 * "Recommendations"). */
#ifndef THINP_PLAN_ADVICE_H
#define THINP_PLAN_ADVICE_H

#include <stddef.h>
#include <stdint.h>

#include "plan/plan_spec.h"

#define PLAN_CANDIDATES 5 /* 64k, 128k, 256k, 512k, 1M */

struct plan_candidate {
	uint64_t block_size;
	double peak_data_bytes;
	double peak_meta_blocks; /* without the reserve */
	double zero_bytes, copy_bytes;
};

struct plan_advice {
	struct plan_candidate cand[PLAN_CANDIDATES];
	uint64_t block_size;     /* recommended */
	uint64_t metadata_size;  /* recommended, bytes */
	double meta_peak_blocks; /* our estimate at the recommended block size */
	char reason_block[768];
	char reason_meta[512];
};

/* Run the model over the candidate block sizes (the pool made large enough that nothing
 * fills, no autoextend) and choose. Returns 0, or -1 (out of memory). */
int plan_advise(const struct plan_spec *s, struct plan_advice *a);

#endif
