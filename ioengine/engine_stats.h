/* Per-outcome-class statistics of the thinp fio engine: counts, exact byte
 * costs and a log-linear latency histogram per class (docs/architecture.md,
 * "Outcome classes"), merged across workers and jobs and written as JSON.
 *
 * Plain C11 with no fio dependency, so it is compiled with the library's own
 * flags; the engine feeds it one record per completed IO. */
#ifndef THINP_ENGINE_STATS_H
#define THINP_ENGINE_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "thinp.h"

/* Log-linear buckets: values below 2^TS_SUB_BITS ns get one bucket each;
 * above, every power of two is cut into 2^TS_SUB_BITS equal buckets, so a
 * bucket is never wider than 1/32 of its lower edge (about 3%), whatever the
 * magnitude. Latencies of 2^TS_MAX_LOG2 ns (about 18 minutes) or more share
 * the last bucket; min and max are kept exactly. */
#define TS_SUB_BITS   5
#define TS_SUB        (1u << TS_SUB_BITS)
#define TS_MAX_LOG2   40
#define TS_NR_BUCKETS ((TS_MAX_LOG2 - TS_SUB_BITS + 1) * TS_SUB)

struct ts_hist {
	uint64_t count;
	uint64_t min, max; /* ns; min is meaningless while count == 0 */
	uint64_t sum;      /* ns; 2^64 ns is 584 years of IO */
	uint64_t b[TS_NR_BUCKETS];
};

/* One outcome class. IOs are classed by the dearest class among the pool
 * blocks they touched (thinp_io_result.cls); their byte costs are the
 * library's exact per-IO costs. */
struct ts_class {
	uint64_t ios;
	uint64_t blocks;          /* pool blocks those IOs touched */
	uint64_t bytes;           /* bytes requested by those IOs */
	uint64_t data_bytes_read; /* on the pool's data device */
	uint64_t data_bytes_written;
	uint64_t data_bytes_zeroed;
	uint64_t meta_bytes_read; /* on the pool's metadata device */
	uint64_t meta_bytes_written;
	struct ts_hist lat;
};

enum ts_err_dir {
	TS_ERR_READ,
	TS_ERR_WRITE,
	TS_ERR_TRIM,
	TS_ERR_FLUSH,
	TS_NR_ERR_DIRS
};

struct ts_set {
	struct ts_class c[THINP_NR_CLASSES];
	uint64_t errors[TS_NR_ERR_DIRS]; /* failed IOs are not classed */
};

unsigned ts_bucket(uint64_t ns);
uint64_t ts_bucket_lo(unsigned idx);
uint64_t ts_bucket_hi(unsigned idx); /* inclusive */

void ts_hist_add(struct ts_hist *h, uint64_t ns);
void ts_hist_merge(struct ts_hist *into, const struct ts_hist *from);
/* The smallest bucket upper edge below which at least PCT percent of the
 * samples lie, clamped to [min, max]; 0 when empty. */
uint64_t ts_hist_percentile(const struct ts_hist *h, double pct);

void ts_record(struct ts_set *s, const struct thinp_io_result *res, uint64_t bytes, uint64_t ns);
void ts_set_merge(struct ts_set *into, const struct ts_set *from);
uint64_t ts_set_ios(const struct ts_set *s);

/* JSON writers. IND is the indentation (spaces) of the object's members. */
void ts_json_string(FILE *f, const char *s);
void ts_json_classes(FILE *f, const struct ts_set *s, int ind);
void ts_json_errors(FILE *f, const struct ts_set *s);
/* The library's block-level counters (thinp_pool_stats), one object per class. */
void ts_json_pool_classes(FILE *f, const struct thinp_class_stats st[THINP_NR_CLASSES], int ind);

/* "12.3us"-style rendering for the summary lines. */
void ts_fmt_ns(char *buf, size_t len, uint64_t ns);
void ts_fmt_bytes(char *buf, size_t len, uint64_t bytes);

#endif
