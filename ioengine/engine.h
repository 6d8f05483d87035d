/*
 * The thinp fio engine's internal header: the options, the per-job state, the
 * pool registry's records, and what each file of the engine offers the others.
 *
 *   engine.c           fio's hooks for a job's life (init, files, cleanup), the ops table
 *   engine_options.c   the options table (fio --enghelp) and its parse-time checks
 *   engine_registry.c  the pools this process has open, shared by its jobs (thread=1)
 *   engine_workers.c   the IO path: queue/commit/getevents and the worker threads
 *   engine_prefill.c   thinp_prefill
 *   engine_warnings.c  warnings about input that does not do what fio users may expect
 *   engine_sink.c      thinp_stats files and the per-job summary lines
 *   engine_stats.c     per-class counters and histograms (plain C11, no fio headers)
 *   engine_loops.c     thinp_losetup: the loop devices behind a pool and their IO counters
 *
 * Everything here is compiled against fio's headers. The .so is linked with
 * hidden visibility, so these names stay inside it; only `ioengine` is
 * exported.
 */
#ifndef THINP_ENGINE_H
#define THINP_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fio.h"

#include "engine_stats.h"
#include "thinp.h"

#ifndef THINP_FIO_VERSION
#define THINP_FIO_VERSION "unknown"
#endif

#define THINP_MAX_DEV_ID          ((1ull << 24) - 1) /* dm-thin device ids are 24-bit */
#define THINP_MAX_WORKERS         1024u
#define THINP_DEFAULT_WORKERS_CAP 64u
#define THINP_ERRORS_LOGGED       3u /* per job; fio reports every error itself */
#define META_BLOCK                4096u
#define THINP_MAX_META_BYTES      (16ull << 30) /* thinp_metadata_size */

/* ---- options (engine_options.c) ---- */

enum {
	MODE_LOOP,
	MODE_DIRECT
};
enum {
	DISCARD_PASSDOWN,
	DISCARD_NOPASSDOWN,
	DISCARD_IGNORE
};
enum {
	NOSPACE_QUEUE,
	NOSPACE_ERROR
};

struct thinp_options {
	void *pad; /* fio keeps a thread_data pointer at offset 0 of engine options */
	char *pool_dir;
	char *data_path;
	char *meta_path;
	unsigned int mode;
	unsigned int losetup;
	unsigned int create;
	unsigned long long data_size;
	unsigned long long meta_size;
	unsigned long long block_size;
	unsigned int zero;
	unsigned int cow; /* enum thinp_cow_policy */
	unsigned int discard;
	unsigned int no_space;
	unsigned int no_space_timeout;
	unsigned int commit_interval;
	unsigned int cache;
	unsigned int read_only;
	char *dev_str;
	char *snap_str;
	unsigned long long dev_size;
	unsigned int prefill;
	char *stats_path;
	unsigned int workers;
	/* set by the verify callbacks from dev_str / snap_str */
	unsigned long long dev_id;
	unsigned long long snap_origin;
	unsigned int has_snap;
};

extern struct fio_option thinp_fio_options[];
extern const char *const mode_names[];
extern const char *const discard_names[];
extern const char *const no_space_names[];

/* thinp_dev's check (fio's verify hook), again at init: 0 or 1 with the message logged. */
int options_parse_dev(struct thinp_options *o);

/* ---- the pool registry (engine_registry.c) ----
 * Every pool this process has open, shared by the jobs (threads) naming the
 * same data and metadata devices, and the thinp_stats files those jobs feed.
 * One mutex guards all of it; it is taken only when jobs start and end, never
 * on the IO path. */

/* The pool's devices are opened O_DIRECT: direct-lvm, or the loops of thinp_losetup=1. */
static inline bool opts_odirect(const struct thinp_options *o)
{
	return o->mode == MODE_DIRECT || o->losetup;
}

/* Pool options that must agree between jobs sharing a pool. */
struct pool_cfg {
	unsigned int mode, losetup, zero, cow, discard, no_space, no_space_timeout, commit_interval,
	        cache, read_only;
	unsigned long long block_size; /* as opened: the pool's own */
};

/* One loop device behind a pool (thinp_losetup=1): its name and its block-layer counters
 * (/sys/block/NAME/stat), so a stats file shows the IO really went through it. */
struct loop_counters {
	uint64_t reads, read_sectors, writes, write_sectors, flushes;
	/* ms, Documentation/block/stat.rst: where the loop's time went (io_ticks: busy) */
	uint64_t read_ticks, write_ticks, flush_ticks, io_ticks, time_in_queue;
};
enum {
	LOOP_DATA,
	LOOP_META,
	LOOP_NR
};
struct pool_loops {
	char name[LOOP_NR][32]; /* "loop3"; "" = not found (the stats file says so) */
};
/* The pool's devices' counters over the IO phase alone (first IO to last, fio's flushes
 * included; not the pool's open, prefill or closing commit), so their busy times compare
 * with per-IO latencies: the loops of thinp_losetup=1, else the data and metadata
 * themselves where they are block devices (direct-lvm). */
struct io_phase {
	char stat[LOOP_NR][64]; /* their /sys stat files; "" = not a block device */
	char dev[LOOP_NR][64];
	struct loop_counters base[LOOP_NR], acc[LOOP_NR];
	uint64_t t0_ns, window_ns; /* CLOCK_MONOTONIC at the phase's start; its summed length */
	bool running;
};
/* thinp_mode=loop: buffered loops attached by the engine over the pool's files (locked
 * against a second process while the pool is open), which the pool opens O_DIRECT. */
struct loop_hold {
	char dev[LOOP_NR][64]; /* /dev/loopN */
	int loop_fd[LOOP_NR];  /* ours, until the pool has the devices open */
	int lock_fd[LOOP_NR];  /* the files' flocks, held while the pool is open */
};

struct sink_job {
	struct sink_job *next;
	char *name;
	unsigned int jobnum;
	unsigned long long dev, size;
	struct ts_set s;
};

/* One thinp_stats file. It outlives pools (jobs run one after another in a
 * process keep adding to it) and is rewritten whenever one of its jobs ends.
 * The pool's block-level counters are reported for the intervals during
 * which its jobs were running: ACC holds the finished intervals, BASE the
 * counters of POOL when the current one began. */
struct tsink {
	struct tsink *next;
	char *path;
	struct ts_set total;
	struct sink_job *jobs, **tail;
	unsigned int active;     /* jobs attached and not yet ended */
	struct thinp_pool *pool; /* of the current interval; NULL between intervals */
	struct thinp_class_stats base[THINP_NR_CLASSES], acc[THINP_NR_CLASSES];
	/* the same intervals' loop-device counters (thinp_losetup=1) */
	struct loop_counters loop_base[LOOP_NR], loop_acc[LOOP_NR];
	bool loops; /* a pool of the file's jobs was behind loop devices */
	struct pool_loops loop_names;
	struct io_phase phase;
};

struct tpool {
	struct tpool *next;
	char *data_path, *meta_path; /* canonical paths: the registry key */
	unsigned int refs;
	struct thinp_pool *pool;
	struct thinp_control *control; /* DIR/control served while open (thinp_pool=DIR) */
	struct pool_cfg cfg;
	struct pool_loops loops;   /* thinp_losetup=1: the loops behind data_path, meta_path */
	struct loop_hold hold;     /* thinp_mode=loop + thinp_losetup=1: the engine's loops */
	unsigned long long *snaps; /* thin ids this process snapshotted (siblings reuse them) */
	size_t nr_snaps;
};

struct thinp_registry {
	pthread_mutex_t lock;
	struct tpool *pools;
	struct tsink *sinks;
};
extern struct thinp_registry thinp_pool_registry;

/* ---- per-job state ---- */

struct worker {
	struct tjob *j;
	unsigned int idx; /* its stats set: j->stats[idx] */
	pthread_t thread;
};

struct tjob {
	struct thread_data *td;
	struct thinp_options *o;
	struct tpool *tp;
	struct thinp_thin *thin;
	unsigned long long thin_size;
	struct tsink *sink;
	unsigned int io_flags; /* THINP_IO_FUA for sync=1 */

	/* stats[0]: IOs run inline by the job thread; stats[1 + i]: worker i's */
	struct ts_set *stats;
	atomic_uint errors_logged;
	/* false during fio's ramp_time: like fio's own statistics, ours start after it */
	atomic_bool counting;

	/* async machinery (iodepth > 1) */
	unsigned int depth, nworkers, cap;
	struct worker *workers;
	unsigned int nstarted; /* workers to join */
	pthread_mutex_t lock;
	pthread_cond_t work_cv, done_cv;
	bool lock_init, stopping;
	struct io_u **pending; /* queued, not yet committed: job thread only */
	unsigned int npending;
	struct io_u **work; /* committed, not yet taken by a worker (ring) */
	unsigned int work_head, work_count;
	struct io_u **done; /* completed, not yet reaped (ring) */
	unsigned int done_head, done_count;
	struct io_u **events; /* reaped by the last getevents(): job thread only */
};

/* ---- messages (engine.c) ---- */

/* Log an engine error and make it the job's error, so fio exits non-zero and
 * its final "err=" line carries the engine's words. ERR is a positive errno.
 * Returns 1, fio's failure for the hooks. */
int job_fail(struct thread_data *td, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Informational lines go to stdout with fio's normal output, but to stderr
 * when fio writes JSON or terse output there, so that stays parseable. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The pool's last error message, copied under the library's lock: other jobs'
 * IOs may be failing at the same moment. The buffer is a compound literal,
 * alive until the end of the calling block. */
#define POOL_MSG(p) pool_msg((p), (char[512]){ 0 }, 512)
const char *pool_msg(struct thinp_pool *p, char *buf, size_t len);

/* ---- engine_registry.c ---- */

/* Open (or join) the pool the job names: 0, or 1 with the job failed. */
int registry_acquire(struct tjob *j);
/* Drop the job's reference; the last job out closes the pool. */
void registry_release(struct tjob *j);
/* Create the job's thin device, or snapshot its origin into it (registry
 * lock held, so sibling jobs see each other's devices). */
int registry_prepare_thin(struct tjob *j);

/* ---- engine_workers.c ---- */

/* Allocate the rings and start the job's worker threads (iodepth > 1). */
int workers_start(struct tjob *j);
/* Stop and join them; safe when workers_start never ran or failed midway. */
void workers_stop(struct tjob *j);
enum fio_q_status fio_thinp_queue(struct thread_data *td, struct io_u *io_u);
int fio_thinp_commit(struct thread_data *td);
int fio_thinp_getevents(struct thread_data *td, unsigned int min, unsigned int max,
                        const struct timespec *t);
struct io_u *fio_thinp_event(struct thread_data *td, int event);

/* ---- engine_prefill.c ---- */

/* thinp_prefill over [off, off+len) of the job's thin: 0, or 1 with the job failed. */
int job_prefill(struct tjob *j, uint64_t off, uint64_t len);

/* ---- engine_warnings.c ---- */

/* At init: fio's direct= and filename= (not honoured here), and IO that
 * thinp_mode=direct read-modify-writes. */
void job_warn_inputs(struct tjob *j);
/* With the pool open: a queue-mode job whose LEN-byte range may not fit. */
void job_warn_no_space(struct tjob *j, uint64_t len);

/* ---- engine_loops.c ---- */

/* thinp_losetup=1 without root: the job failed with the way out named (1), else 0. */
int loops_check_root(struct thread_data *td, const struct thinp_options *o);
/* The loop devices whose backing files are DATA and META (canonical paths), into OUT; a
 * note names them. */
void loops_find(const char *data, const char *meta, struct pool_loops *out);
/* Their counters now (zeros for a device not found or not readable). */
void loops_read(const struct pool_loops *l, struct loop_counters now[LOOP_NR]);
/* ACC += NOW - BASE, per device. */
void loops_add(struct loop_counters acc[LOOP_NR], const struct loop_counters now[LOOP_NR],
               const struct loop_counters base[LOOP_NR]);
/* Files PATH[] (created sparse at thinp_data_size / thinp_metadata_size with
 * thinp_create=1 when absent) through loops: 0, or 1 with the job failed and nothing left. */
int loops_attach(struct thread_data *td, const struct thinp_options *o, const char *path[LOOP_NR],
                 struct loop_hold *h);
/* The pool has opened (or failed to open) H->dev[]: drop our descriptors of the loops. */
void loops_attached(struct loop_hold *h);
/* The pool closed: the files' locks go. */
void loops_release(struct loop_hold *h);
/* The stats file's "loop_devices" value: null, or per device its name and counters. */
void loops_json(FILE *f, bool used, const struct pool_loops *l,
                const struct loop_counters c[LOOP_NR]);

/* The IO phase begins (the pool's devices found from DATA, META and the loops L). */
void phase_begin(struct io_phase *p, const char *data, const char *meta,
                 const struct pool_loops *l);
/* ... and ends: its counters and wall time banked. */
void phase_end(struct io_phase *p);
/* The stats file's "io_phase" value: null, or window_ms and per device its counters. */
void phase_json(FILE *f, const struct io_phase *p);

/* ---- engine_sink.c ---- */

/* Attach the job to its statistics file (registry lock held). */
int sink_attach(struct tjob *j);
/* POOL is about to close (registry lock held). */
void sinks_pool_closing(struct thinp_pool *pool);
/* The job ends: its statistics go to its file and its summary lines out. */
void sink_job_end(struct tjob *j);

#endif
