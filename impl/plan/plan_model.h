/* The capacity model (docs/capacity-planning.md, "The model"): a time-stepped simulation of a
 * spec's data and metadata blocks, and the events LVM, dm-thin and Docker raise on the way. */
#ifndef THINP_PLAN_MODEL_H
#define THINP_PLAN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "plan/plan_spec.h"

enum plan_event_kind {
	PLAN_EV_LOW_WATER,       /* dm-thin's low-water event */
	PLAN_EV_AUTOEXTEND_DATA, /* LVM grew the data LV */
	PLAN_EV_AUTOEXTEND_META, /* LVM grew the metadata LV */
	PLAN_EV_VG_FULL,         /* an autoextend found too little VG space */
	PLAN_EV_MIN_FREE_DATA,   /* Docker starts refusing creates: data */
	PLAN_EV_MIN_FREE_META,   /* ... metadata */
	PLAN_EV_DATA_FULL,       /* the pool has no free data block */
	PLAN_EV_META_FULL,       /* no free metadata block (beyond the reserve) */
};

struct plan_event {
	enum plan_event_kind kind;
	double t_h;           /* hours from the start */
	double before, after; /* blocks: used at the event; AUTOEXTEND: total before/after */
};

struct plan_point {
	double t_h;
	double data_used, data_total; /* pool blocks */
	double meta_used, meta_total; /* 4 KiB blocks; used as the status shows it (reserve in) */
	double thins;
};

/* Metadata blocks by what holds them, at one moment. */
struct plan_meta_parts {
	double superblock, space_maps, top_level, details, images, containers, overflow, reserve;
};

#define PLAN_MAX_EVENTS 64

struct plan_result {
	struct plan_point *pts;
	size_t nr_pts;
	struct plan_event ev[PLAN_MAX_EVENTS];
	unsigned nr_ev;
	double peak_data, peak_meta; /* blocks in use (metadata: without the reserve) */
	double peak_demand;          /* data blocks the workload wants, beyond a full pool too */
	double peak_thins;
	struct plan_meta_parts parts_at_peak;
	double bytes_written;                /* by containers */
	double zero_bytes;                   /* written to zero new blocks (IO, not space) */
	double copy_bytes;                   /* copied by CoW (IO) */
	double vg_free_left;                 /* bytes */
	double data_size_end, meta_size_end; /* bytes, after autoextends */
};

/* The exclusive blocks of one container that has written W bytes. */
struct plan_container {
	double data;                       /* data blocks it provisioned (fresh + copied) */
	double fresh_seq, fresh_rand, cow; /* of them: new mappings by kind, copied blocks */
	double partial;                    /* blocks first written by less than a whole block */
	double leaves, internal;           /* metadata nodes of its own (unshared) */
	double cow_leaves;                 /* of the image's leaves, how many it copied */
};
void plan_container_blocks(const struct plan_spec *s, double image_blocks, double w,
                           struct plan_container *c);

/* Data blocks and metadata nodes of one image's layers (each a snapshot of the one below,
 * written sequentially). */
struct plan_image {
	double data;         /* blocks */
	double nodes;        /* exclusive metadata nodes of all its layers */
	double top_mappings; /* mappings of the top layer */
	double top_leaves;
};
void plan_image_blocks(const struct plan_spec *s, struct plan_image *img);

/* Run S. Returns 0, or -1 (out of memory). Free with plan_result_free. */
int plan_run(const struct plan_spec *s, struct plan_result *r);
void plan_result_free(struct plan_result *r);
const char *plan_event_name(enum plan_event_kind k);

#endif
