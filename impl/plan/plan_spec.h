/* A capacity-planning spec (docs/capacity-planning.md, "Spec keys"): the workload and the
 * pool, LVM and Docker parameters, read from a parsed document with every value checked. */
#ifndef THINP_PLAN_SPEC_H
#define THINP_PLAN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan/plan_doc.h"

#define PLAN_MAX_MIX 16

/* The kernel's limits (docs/on-disk-format.md, "Metadata space map"; dm-thin's block size). */
#define PLAN_MIN_BLOCK    (64ull << 10)
#define PLAN_MAX_BLOCK    (1ull << 30)
#define PLAN_MAX_METADATA (16ull << 30)

enum plan_pattern {
	PLAN_SEQUENTIAL,
	PLAN_RANDOM
};

struct plan_write {
	uint64_t size; /* bytes per write */
	double share;  /* of the bytes written */
	enum plan_pattern pattern;
};

struct plan_spec {
	/* workload */
	uint64_t images, layers_per_image, layer_size;
	uint64_t containers_per_image; /* running at once */
	uint64_t container_writes;     /* bytes one container writes in its life */
	struct plan_write mix[PLAN_MAX_MIX];
	unsigned nr_mix;
	uint64_t write_span;    /* bytes a container's random writes fall in */
	double update_fraction; /* of a container's writes: to image data (CoW) */
	double churn_per_hour;  /* containers deleted and replaced per hour */
	double duration_h, step_h;
	/* pool */
	uint64_t block_size;
	bool zeroing;
	uint64_t data_size, metadata_size;
	uint64_t low_water_blocks;
	/* LVM (threshold 100: autoextend off, as lvm.conf) */
	double autoextend_threshold, autoextend_percent;
	uint64_t vg_free, extent_size;
	/* Docker */
	double min_free_space; /* percent, 0 = off */
	uint64_t basesize;
};

/* Defaults, then DOC's values. Returns 0, or -1 with "line L: KEY: REASON" in ERR (KEY the
 * dotted path, "pool.block_size"). */
int plan_spec_read(const struct pdoc *doc, struct plan_spec *spec, char *err, size_t errlen);
/* Parse a size ("64k", "10G", "4096"; binary k/m/g/t/p, optional "iB"/"B") to bytes: 0, or -1
 * if it is not one, -2 if negative. */
int plan_parse_size(const char *s, uint64_t *out);
/* Parse a duration ("90s", "30m", "24h", "7d"; a bare number is hours) to hours. */
int plan_parse_hours(const char *s, double *out);

#endif
