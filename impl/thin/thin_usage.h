/* Per-thin usage, as thin-provisioning-tools' thin_ls reports it: a thin's mapped blocks,
 * split into exclusive ones (no other mapping of any thin points at the same data block)
 * and shared ones. Sharing is counted from the mappings themselves, never from the data
 * space map: a snapshot shares its origin's mapping subtrees, and a data block reached
 * through a shared subtree has a reference count of 1 while two thins map it. */
#ifndef THINP_THIN_THIN_USAGE_H
#define THINP_THIN_THIN_USAGE_H

#include <stddef.h>

#include "thin/metadata.h"
#include "thinp.h"

/* Where the thins come from: the open metadata (tmd_*) or a metadata snapshot's trees. */
struct usage_source {
	void *ctx;
	int (*list)(void *ctx, uint64_t **ids, size_t *nr); /* ascending, malloc'ed */
	int (*details)(void *ctx, uint64_t dev, struct thin_details *d);
	int (*walk)(void *ctx, uint64_t dev, tmd_mapping_fn fn, void *fn_ctx);
	const char *(*error)(void *ctx); /* the sentence of the last failure */
	uint64_t nr_data_blocks;
};
int thin_usage_count(const struct usage_source *src, struct thinp_thin_usage **out, size_t *nr,
                     char *err, size_t errlen);

/* Every thin of MD, ascending by id, into *OUT (malloc'ed, *NR entries; NULL when 0).
 * Read-only. Two walks of each mapping tree; memory: 2 bits per data block. On failure
 * ERR holds a sentence (a mapping beyond the data device, a read error). */
int tmd_thin_usage(struct tmd *md, struct thinp_thin_usage **out, size_t *nr, char *err,
                   size_t errlen);

#endif
