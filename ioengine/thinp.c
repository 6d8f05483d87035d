/*
 * thinp: a fio external ioengine that does its IO on a libthinp thin device.
 *
 *   fio --ioengine=external:ioengine/thinp.so --thinp_pool=/tmp/pool --thinp_create=1 \
 *       --thinp_data_size=1g --rw=randwrite --bs=4k --size=256m --name=job
 *
 * Each job opens (or formats) a pool - a data and a metadata device, files or
 * block devices - and routes fio's reads, writes, trims and syncs to one thin
 * device of it through libthinp's IO path: the same provisioning, zeroing,
 * copy-on-write, commit and out-of-space behaviour as dm-thin. Every IO comes
 * back with an outcome class (provision, CoW, overwrite, ...) and its exact
 * byte cost on the data and metadata devices; the engine keeps per-class
 * counts, bytes and latency histograms and writes them to thinp_stats.
 *
 * The options table below is the documentation: fio --enghelp=external:<path>.
 *
 * Concurrency: with iodepth=1 an IO runs inline in fio's job thread. With
 * iodepth > 1, queue() stashes IOs, commit() hands them to a small pool of
 * worker threads (libthinp calls block, so in-flight IOs need threads), and
 * getevents() reaps what they completed. Jobs in one process (thread=1) that
 * name the same pool share one open pool through the pool registry - the
 * only global mutable state here; devices are opened with an exclusive flock
 * so another process opening the same pool gets a clear error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fio.h"
#include "optgroup.h"

#include "io/dev.h"
#include "stats.h"
#include "thinp.h"

#ifndef THINP_FIO_VERSION
#define THINP_FIO_VERSION "unknown"
#endif

#define THINP_MAX_DEV_ID          ((1ull << 24) - 1) /* dm-thin device ids are 24-bit */
#define THINP_MAX_WORKERS         1024u
#define THINP_DEFAULT_WORKERS_CAP 64u
#define THINP_ERRORS_LOGGED       3u /* per job; fio reports every error itself */
#define META_BLOCK                4096u

/* ---------------------------------------------------------------------------------------------
 * Options
 */

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
	unsigned int create;
	unsigned long long data_size;
	unsigned long long meta_size;
	unsigned long long block_size;
	unsigned int zero;
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

static const char *const mode_names[] = { "loop", "direct" };
static const char *const discard_names[] = { "passdown", "nopassdown", "ignore" };
static const char *const no_space_names[] = { "queue", "error" };

/* Option checks run at parse time (fio's verify hook), so a bad value stops
 * fio before any job starts, with the engine's own message. */
static struct thinp_options *opts_of(void *data)
{
	return data;
}

static int parse_id(const char *what, const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = s && *s ? strtoull(s, &end, 10) : 0;
	if (!s || !*s || errno || *end || s[0] == '-' || v > THINP_MAX_DEV_ID) {
		log_err("thinp: %s=%s is invalid: a thin device id is a decimal number from 0 to %llu\n",
		        what, s ? s : "", THINP_MAX_DEV_ID);
		return 1;
	}
	*out = v;
	return 0;
}

static int verify_dev(const struct fio_option *o, void *data)
{
	(void)o;
	return parse_id("thinp_dev", opts_of(data)->dev_str, &opts_of(data)->dev_id);
}

static int verify_snap(const struct fio_option *o, void *data)
{
	(void)o;
	struct thinp_options *to = opts_of(data);
	if (parse_id("thinp_snapshot_of", to->snap_str, &to->snap_origin))
		return 1;
	to->has_snap = 1;
	return 0;
}

static int verify_block_size(const struct fio_option *o, void *data)
{
	(void)o;
	unsigned long long bs = opts_of(data)->block_size;
	if (bs && (bs % 65536 || bs > (1ull << 30))) {
		log_err("thinp: thinp_block_size=%llu is invalid: a pool block is a multiple of 64k "
		        "from 64k to 1g (dm-thin's 128..2097152 sectors)\n",
		        bs);
		return 1;
	}
	return 0;
}

static int verify_size(const char *what, unsigned long long v, unsigned long long min)
{
	if (v < min) {
		log_err("thinp: %s=%llu is invalid: it must be at least %llu bytes\n", what, v,
		        min);
		return 1;
	}
	return 0;
}

static int verify_data_size(const struct fio_option *o, void *data)
{
	(void)o;
	return verify_size("thinp_data_size", opts_of(data)->data_size, 65536);
}

static int verify_meta_size(const struct fio_option *o, void *data)
{
	(void)o;
	/* dm-thin's metadata device: at least a few blocks, at most ~16 GiB */
	if (verify_size("thinp_metadata_size", opts_of(data)->meta_size, 64 * META_BLOCK))
		return 1;
	if (opts_of(data)->meta_size > (16ull << 30)) {
		log_err("thinp: thinp_metadata_size=%llu is invalid: dm-thin metadata is at most 16g\n",
		        opts_of(data)->meta_size);
		return 1;
	}
	return 0;
}

static int verify_workers(const struct fio_option *o, void *data)
{
	(void)o;
	if (opts_of(data)->workers > THINP_MAX_WORKERS) {
		log_err("thinp: thinp_workers=%u is invalid: at most %u\n", opts_of(data)->workers,
		        THINP_MAX_WORKERS);
		return 1;
	}
	return 0;
}

static struct fio_option options[] = {
	{
		.name = "thinp_pool",
		.lname = "thinp pool directory",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, pool_dir),
		.help = "Pool directory: data device DIR/data, metadata device DIR/metadata "
			"(created with thinp_create=1)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_data",
		.lname = "thinp data device",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, data_path),
		.help = "Data device of the pool, a file or a block device (instead of thinp_pool's "
			"DIR/data)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_metadata",
		.lname = "thinp metadata device",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, meta_path),
		.help = "Metadata device of the pool, a file or a block device (instead of "
			"thinp_pool's DIR/metadata)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_mode",
		.lname = "thinp backing store mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, mode),
		.help = "How the pool's devices are reached: loop (page cache, Docker loop-lvm; default) "
			"or direct (O_DIRECT, direct-lvm). fio's direct= does not change this",
		.def = "loop",
		.posval =
			{
				{.ival = "loop",
				 .oval = MODE_LOOP,
				 .help = "through the page cache, like a loop device without direct-io "
					 "(Docker loop-lvm)"},
				{.ival = "direct",
				 .oval = MODE_DIRECT,
				 .help = "O_DIRECT on data and metadata (direct-lvm); the filesystem "
					 "must support O_DIRECT"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_create",
		.lname = "thinp create pool",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, create),
		.help = "1 = format a new pool when the metadata device is absent or its superblock "
			"is all zeros (as dm-thin does); an existing pool is opened, never "
			"reformatted. Default 0: the pool must exist",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_data_size",
		.lname = "thinp data size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, data_size),
		.verify = verify_data_size,
		.help = "Size of a data file that thinp_create creates, sparse (default 100g, as "
			"Docker's loop-lvm)",
		.def = "100g",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_metadata_size",
		.lname = "thinp metadata size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, meta_size),
		.verify = verify_meta_size,
		.help = "Size of a metadata file that thinp_create creates, sparse, at most 16g "
			"(default 2g)",
		.def = "2g",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_block_size",
		.lname = "thinp pool block size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, block_size),
		.verify = verify_block_size,
		.help = "Pool block size, the allocation and copy-on-write unit: a multiple of 64k "
			"up to 1g. Default: 64k for a new pool, the pool's own for an existing one "
			"(a different value is an error)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_zero",
		.lname = "thinp zero new blocks",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, zero),
		.help = "Zero a newly provisioned block before a partial write to it (default 1, as "
			"dm-thin); 0 = skip_block_zeroing",
		.def = "1",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_discard",
		.lname = "thinp discard mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, discard),
		.help = "What the pool does with trims: passdown (unmap, discard freed blocks on the "
			"data device; default), nopassdown (unmap only) or ignore",
		.def = "passdown",
		.posval =
			{
				{.ival = "passdown",
				 .oval = DISCARD_PASSDOWN,
				 .help = "unmap, and discard freed blocks on the data device"},
				{.ival = "nopassdown",
				 .oval = DISCARD_NOPASSDOWN,
				 .help = "unmap only (no_discard_passdown)"},
				{.ival = "ignore",
				 .oval = DISCARD_IGNORE,
				 .help = "complete trims without unmapping (ignore_discard)"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_no_space",
		.lname = "thinp out-of-space mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, no_space),
		.help = "When the data device is full, writes needing a block: queue (wait up to "
			"thinp_no_space_timeout, then ENOSPC; default) or error (ENOSPC at once)",
		.def = "queue",
		.posval =
			{
				{.ival = "queue",
				 .oval = NOSPACE_QUEUE,
				 .help = "wait up to thinp_no_space_timeout for the pool to grow, then "
					 "fail with ENOSPC (dm-thin's default)"},
				{.ival = "error",
				 .oval = NOSPACE_ERROR,
				 .help = "fail with ENOSPC at once (error_if_no_space)"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_no_space_timeout",
		.lname = "thinp no-space timeout",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, no_space_timeout),
		.help = "Milliseconds a queued write waits for space with thinp_no_space=queue "
			"(dm-thin's no_space_timeout; default 60000)",
		.def = "60000",
		.minval = 1,
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_commit_interval",
		.lname = "thinp commit interval",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, commit_interval),
		.help = "Milliseconds between periodic metadata commits (default 1000, dm-thin's "
			"COMMIT_PERIOD); 0 = commit only on flush/FUA and at close",
		.def = "1000",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_cache",
		.lname = "thinp metadata cache",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, cache),
		.help = "Metadata block cache size in 4 KiB blocks (default 0 = the library's "
			"16 MiB)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_read_only",
		.lname = "thinp read-only pool",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, read_only),
		.help = "1 = open the pool read-only (dm-thin's read_only feature): writes that need "
			"a new block fail with EROFS. Default 0",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_dev",
		.lname = "thinp thin device id",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, dev_str),
		.verify = verify_dev,
		.help = "Thin device id (0..16777215) the job does IO to, created empty if absent "
			"(default 0)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_dev_size",
		.lname = "thinp thin device size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, dev_size),
		.help = "Virtual size of the thin device (fio's file size; bounds every IO). "
			"Default: the end of the job's range, offset + size",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_snapshot_of",
		.lname = "thinp snapshot origin",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, snap_str),
		.verify = verify_snap,
		.help = "Before the job starts, snapshot this thin device into thinp_dev, which must "
			"not exist yet (create_snap); the job's writes then copy-on-write. Jobs of "
			"one process sharing the pool reuse the snapshot",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_prefill",
		.lname = "thinp prefill",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, prefill),
		.help = "1 = before the job starts, provision every unmapped pool block of its range "
			"with a whole-block zero write (mapped blocks are left alone), so the job "
			"measures overwrites. Default 0",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_stats",
		.lname = "thinp statistics file",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, stats_path),
		.help = "Write per-outcome-class statistics (counts, bytes, latency histograms, "
			"percentiles) as JSON to this file when the job ends (%n = the job name). "
			"Jobs of one process naming the same file are merged into it; a later "
			"fio process replaces it",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_workers",
		.lname = "thinp worker threads",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, workers),
		.verify = verify_workers,
		.help = "Threads running IOs when iodepth > 1 (default 0 = iodepth, at most 64); "
			"with iodepth=1 IOs run in the job thread",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

/* ---------------------------------------------------------------------------------------------
 * The pool registry: every pool this process has open, shared by the jobs
 * (threads) naming the same data and metadata devices, and the thinp_stats
 * files those jobs feed. One mutex guards all of it; it is taken only when
 * jobs start and end, never on the IO path.
 */

/* Pool options that must agree between jobs sharing a pool. */
struct pool_cfg {
	unsigned int mode, zero, discard, no_space, no_space_timeout, commit_interval, cache,
	        read_only;
	unsigned long long block_size; /* as opened: the pool's own */
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
};

struct tpool {
	struct tpool *next;
	char *data_path, *meta_path; /* canonical paths: the registry key */
	unsigned int refs;
	struct thinp_pool *pool;
	struct pool_cfg cfg;
	unsigned long long *snaps; /* thin ids this process snapshotted (siblings reuse them) */
	size_t nr_snaps;
};

static struct {
	pthread_mutex_t lock;
	struct tpool *pools;
	struct tsink *sinks;
} thinp_pool_registry = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL };

/* ---------------------------------------------------------------------------------------------
 * Per-job state
 */

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

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Log an engine error and make it the job's error, so fio exits non-zero and
 * its final "err=" line carries the engine's words. ERR is a positive errno. */
static int job_fail(struct thread_data *td, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int job_fail(struct thread_data *td, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("thinp: job '%s': %s\n", td->o.name, msg);
	td_vmsg(td, err, msg, "thinp");
	return 1;
}

/* Informational lines go to stdout with fio's normal output, but to stderr
 * when fio writes JSON or terse output there, so that stays parseable. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (output_format & (FIO_OUTPUT_JSON | FIO_OUTPUT_JSON_PLUS | FIO_OUTPUT_TERSE)) {
		fputs(buf, stderr);
		fflush(stderr);
	} else {
		log_info("%s", buf);
	}
}

/* PATH made absolute and free of symlinks, also when its last component does
 * not exist yet (a pool file thinp_create is about to create). */
static char *canon_path(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return strdup(buf);
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *slash = strrchr(copy, '/');
	const char *dir = ".", *base = copy;
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		base = slash + 1;
	}
	char *out = NULL;
	if (realpath(dir, buf)) {
		size_t n = strlen(buf) + strlen(base) + 2;
		out = malloc(n);
		if (out)
			snprintf(out, n, "%s%s%s", buf, strcmp(buf, "/") ? "/" : "", base);
	}
	free(copy);
	return out;
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void cfg_from_opts(struct pool_cfg *c, const struct thinp_options *o)
{
	memset(c, 0, sizeof(*c));
	c->mode = o->mode;
	c->zero = o->zero;
	c->discard = o->discard;
	c->no_space = o->no_space;
	c->no_space_timeout = o->no_space_timeout;
	c->commit_interval = o->commit_interval;
	c->cache = o->cache;
	c->read_only = o->read_only;
	c->block_size = o->block_size;
}

/* The first option two jobs sharing a pool disagree on, or NULL. */
static const char *cfg_conflict(const struct pool_cfg *have, const struct pool_cfg *want)
{
	if (have->mode != want->mode)
		return "thinp_mode";
	if (have->zero != want->zero)
		return "thinp_zero";
	if (have->discard != want->discard)
		return "thinp_discard";
	if (have->no_space != want->no_space)
		return "thinp_no_space";
	if (have->no_space_timeout != want->no_space_timeout)
		return "thinp_no_space_timeout";
	if (have->commit_interval != want->commit_interval)
		return "thinp_commit_interval";
	if (have->cache != want->cache)
		return "thinp_cache";
	if (have->read_only != want->read_only)
		return "thinp_read_only";
	if (want->block_size && have->block_size != want->block_size)
		return "thinp_block_size";
	return NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static const char *open_hint(int r, unsigned int mode)
{
	if (r == -EBUSY)
		return " (another process has this pool open - its devices are flock()ed: use "
		       "thread=1 to share one pool between jobs, or run the jobs one after another)";
	if (r == -EINVAL && mode == MODE_DIRECT)
		return " (thinp_mode=direct needs a filesystem or device that supports O_DIRECT)";
	return "";
}

/* The pool's last error message, copied under the library's lock: other jobs'
 * IOs may be failing at the same moment. The buffer is a compound literal,
 * alive until the end of the calling block. */
#define POOL_MSG(p) pool_msg((p), (char[512]){ 0 }, 512)
static const char *pool_msg(struct thinp_pool *p, char *buf, size_t len)
{
	thinp_pool_error_copy(p, buf, len);
	return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Opening the pool (registry lock held)
 */

static int open_pool(struct thread_data *td, const struct thinp_options *o, const char *data,
                     const char *meta, struct thinp_pool **out)
{
	bool have_data = access(data, F_OK) == 0, have_meta = access(meta, F_OK) == 0;
	if (!o->create && (!have_data || !have_meta))
		return job_fail(td, ENOENT,
		                "no pool at %s + %s: %s does not exist (set "
		                "thinp_create=1 to create a new pool)",
		                data, meta, have_data ? meta : data);
	/* a device without its partner is someone's data: never format around it */
	if (have_data != have_meta)
		return job_fail(td, EEXIST,
		                "%s exists but %s does not: refusing to create a pool "
		                "over an existing device (remove it or name both devices "
		                "of the existing pool)",
		                have_data ? data : meta, have_data ? meta : data);

	unsigned flags = TP_DEV_EXCL;
	if (o->mode == MODE_DIRECT)
		flags |= TP_DEV_DIRECT;
	if (o->create && !o->read_only)
		flags |= TP_DEV_CREATE;
	/* a read-only pool still writes provisioned, unshared blocks in place
	 * (dm-thin's read-only mode); only its metadata is read-only */
	unsigned meta_flags = o->read_only ? flags | TP_DEV_RDONLY : flags;

	struct tp_dev *md = NULL, *dd = NULL;
	int r = tp_dev_open(meta, meta_flags, o->meta_size, &md);
	if (r)
		return job_fail(td, -r, "cannot open the metadata device %s: %s%s", meta,
		                strerror(-r), open_hint(r, o->mode));
	r = tp_dev_open(data, flags, o->data_size, &dd);
	if (r) {
		tp_dev_close(md);
		return job_fail(td, -r, "cannot open the data device %s: %s%s", data, strerror(-r),
		                open_hint(r, o->mode));
	}

	/* dm-thin formats the metadata exactly when its superblock is all zeros
	 * (a new file reads as zeros), and opens it otherwise */
	void *sb;
	if (posix_memalign(&sb, META_BLOCK, META_BLOCK)) {
		tp_dev_close(md);
		tp_dev_close(dd);
		return job_fail(td, ENOMEM, "out of memory");
	}
	bool blank = true;
	if (md->size >= META_BLOCK) {
		r = tp_dev_pread(md, sb, META_BLOCK, 0);
		if (r) {
			free(sb);
			tp_dev_close(md);
			tp_dev_close(dd);
			return job_fail(td, -r, "cannot read the superblock of %s: %s", meta,
			                strerror(-r));
		}
		blank = all_zero(sb, META_BLOCK);
	}
	free(sb);

	struct thinp_pool_opts po = {
		.block_sectors = (uint32_t)(o->block_size / 512),
		.skip_block_zeroing = !o->zero,
		.ignore_discard = o->discard == DISCARD_IGNORE,
		.no_discard_passdown = o->discard == DISCARD_NOPASSDOWN,
		.error_if_no_space = o->no_space == NOSPACE_ERROR,
		.read_only = o->read_only,
		.commit_interval_ms = o->commit_interval,
		.no_commit_timer = o->commit_interval == 0,
		.no_space_timeout_ms = o->no_space_timeout,
		.metadata_cache_blocks = o->cache,
	};
	char err[512] = "";
	if (blank) {
		if (!o->create) {
			tp_dev_close(md);
			tp_dev_close(dd);
			return job_fail(td, ENOENT,
			                "no pool on %s: its superblock is all zeros (set "
			                "thinp_create=1 to format a new pool)",
			                meta);
		}
		if (!po.block_sectors)
			po.block_sectors = 128;
		r = thinp_pool_format(dd, md, &po, out, err, sizeof(err));
		if (r)
			return job_fail(td, -r, "cannot format a pool on %s + %s: %s", data, meta,
			                *err ? err : strerror(-r));
		note("thinp: formatted a new pool on %s + %s (%u KiB blocks)\n", data, meta,
		     po.block_sectors / 2);
	} else {
		r = thinp_pool_open(dd, md, &po, out, err, sizeof(err));
		if (r)
			return job_fail(td, -r, "cannot open the pool on %s + %s: %s", data, meta,
			                *err ? err : strerror(-r));
	}
	return 0;
}

static int registry_acquire(struct tjob *j)
{
	struct thread_data *td = j->td;
	const struct thinp_options *o = j->o;
	char *data = NULL, *meta = NULL;
	int ret = 1;

	if (!o->pool_dir && (!o->data_path || !o->meta_path))
		return job_fail(td, EINVAL,
		                "no pool given: set thinp_pool=<dir>, or both "
		                "thinp_data= and thinp_metadata=");
	if (o->pool_dir && o->create && mkdir(o->pool_dir, 0755) && errno != EEXIST)
		return job_fail(td, errno, "cannot create the pool directory %s: %s", o->pool_dir,
		                strerror(errno));
	char *d = o->data_path ? strdup(o->data_path) : join_path(o->pool_dir, "data");
	char *m = o->meta_path ? strdup(o->meta_path) : join_path(o->pool_dir, "metadata");
	if (d && m) {
		data = canon_path(d);
		meta = canon_path(m);
	}
	if (!data || !meta) {
		/* realpath() of the directory failed: it does not exist */
		job_fail(td, ENOENT, "no pool at %s + %s: %s%s", d ? d : "?", m ? m : "?",
		         o->pool_dir && !o->create ? "the directory does not exist" :
		                                     "their directory does not exist",
		         o->create ? "" : " (set thinp_create=1 to create a new pool)");
		goto out;
	}
	if (!strcmp(data, meta)) {
		job_fail(td, EINVAL, "the data and metadata devices are the same file %s", data);
		goto out;
	}

	struct pool_cfg want;
	cfg_from_opts(&want, o);
	pthread_mutex_lock(&thinp_pool_registry.lock);
	struct tpool *tp;
	for (tp = thinp_pool_registry.pools; tp; tp = tp->next)
		if (!strcmp(tp->data_path, data) && !strcmp(tp->meta_path, meta))
			break;
	if (tp) {
		const char *c = cfg_conflict(&tp->cfg, &want);
		if (c) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			job_fail(td, EINVAL,
			         "jobs sharing the pool %s must use the same pool options, "
			         "but this job's %s differs from the one that opened it",
			         data, c);
			goto out;
		}
		tp->refs++;
	} else {
		tp = calloc(1, sizeof(*tp));
		struct thinp_pool *pool = NULL;
		if (!tp) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			job_fail(td, ENOMEM, "out of memory");
			goto out;
		}
		if (open_pool(td, o, data, meta, &pool)) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			free(tp);
			goto out;
		}
		tp->pool = pool;
		tp->refs = 1;
		tp->cfg = want;
		tp->cfg.block_size = thinp_pool_block_bytes(pool);
		tp->data_path = data;
		tp->meta_path = meta;
		data = meta = NULL;
		tp->next = thinp_pool_registry.pools;
		thinp_pool_registry.pools = tp;
	}
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	j->tp = tp;
	ret = 0;
out:
	free(d);
	free(m);
	free(data);
	free(meta);
	return ret;
}

static void sinks_pool_closing(struct thinp_pool *pool);

static void registry_release(struct tjob *j)
{
	struct tpool *tp = j->tp;
	if (!tp)
		return;
	j->tp = NULL;
	pthread_mutex_lock(&thinp_pool_registry.lock);
	if (--tp->refs) {
		pthread_mutex_unlock(&thinp_pool_registry.lock);
		return;
	}
	for (struct tpool **pp = &thinp_pool_registry.pools; *pp; pp = &(*pp)->next) {
		if (*pp == tp) {
			*pp = tp->next;
			break;
		}
	}
	/* the last job out closes the pool: a final commit, as a table unload does */
	sinks_pool_closing(tp->pool);
	int r = thinp_pool_close(tp->pool);
	if (r)
		log_err("thinp: closing the pool %s + %s failed: %s\n", tp->data_path,
		        tp->meta_path, strerror(-r));
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	free(tp->snaps);
	free(tp->data_path);
	free(tp->meta_path);
	free(tp);
}

/* Create the job's thin device, or snapshot its origin into it (registry
 * lock held, so sibling jobs see each other's devices). */
static int prepare_thin(struct tjob *j)
{
	struct thread_data *td = j->td;
	const struct thinp_options *o = j->o;
	struct tpool *tp = j->tp;
	struct thinp_thin *probe;
	unsigned long long id = o->dev_id;

	int r = thinp_thin_open(tp->pool, id, 0, &probe);
	if (r && r != -ENODEV)
		return job_fail(td, -r, "cannot look up thin device %llu: %s", id,
		                POOL_MSG(tp->pool));
	bool exists = r == 0;
	if (exists)
		thinp_thin_close(probe);

	if (o->has_snap) {
		if (o->snap_origin == id)
			return job_fail(td, EINVAL,
			                "thinp_snapshot_of=%llu names thinp_dev itself: a "
			                "snapshot needs a new id",
			                id);
		for (size_t i = 0; i < tp->nr_snaps; i++)
			if (tp->snaps[i] == id)
				return 0; /* a sibling job took it already */
		if (exists)
			return job_fail(td, EEXIST,
			                "thin device %llu already exists: "
			                "thinp_snapshot_of=%llu snapshots into a new id (pick "
			                "another thinp_dev, or delete device %llu first)",
			                id, o->snap_origin, id);
		r = thinp_create_snap(tp->pool, id, o->snap_origin);
		if (r)
			return job_fail(td, -r, "cannot snapshot thin device %llu into %llu: %s",
			                o->snap_origin, id, POOL_MSG(tp->pool));
		unsigned long long *n = realloc(tp->snaps, (tp->nr_snaps + 1) * sizeof(*n));
		if (!n)
			return job_fail(td, ENOMEM, "out of memory");
		tp->snaps = n;
		tp->snaps[tp->nr_snaps++] = id;
		return 0;
	}
	if (!exists) {
		r = thinp_create_thin(tp->pool, id);
		if (r)
			return job_fail(td, -r, "cannot create thin device %llu: %s", id,
			                POOL_MSG(tp->pool));
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The IO path
 */

static void log_io_error(struct tjob *j, const char *op, struct io_u *io_u, int r)
{
	unsigned n = atomic_fetch_add(&j->errors_logged, 1);
	if (n >= THINP_ERRORS_LOGGED) {
		return;
	}
	/* the pool's message names the cause (out of data space, read-only, ...) */
	char why[512];
	thinp_pool_error_copy(j->tp->pool, why, sizeof(why));
	log_err("thinp: job '%s': %s of %llu bytes at offset %llu failed: %s%s%s\n", j->td->o.name,
	        op, (unsigned long long)io_u->xfer_buflen, (unsigned long long)io_u->offset,
	        strerror(-r), *why ? ": " : "", why);
	if (n + 1 == THINP_ERRORS_LOGGED)
		log_err("thinp: job '%s': further IO errors are not described\n", j->td->o.name);
}

/* Run one IO on the pool and account it in ST (owned by the calling thread). */
static void do_io(struct tjob *j, struct io_u *io_u, struct ts_set *st)
{
	struct thinp_io_result res;
	uint64_t bytes = io_u->xfer_buflen;
	enum ts_err_dir ed;
	const char *op;
	int r;

	uint64_t t0 = now_ns();
	switch (io_u->ddir) {
	case DDIR_READ:
		op = "read";
		ed = TS_ERR_READ;
		r = thinp_read(j->thin, io_u->xfer_buf, io_u->xfer_buflen, io_u->offset, &res);
		break;
	case DDIR_WRITE:
		op = "write";
		ed = TS_ERR_WRITE;
		r = thinp_write(j->thin, io_u->xfer_buf, io_u->xfer_buflen, io_u->offset,
		                j->io_flags, &res);
		break;
	case DDIR_TRIM:
		op = "trim";
		ed = TS_ERR_TRIM;
		r = thinp_discard(j->thin, io_u->offset, io_u->xfer_buflen, &res);
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
	case DDIR_SYNC_FILE_RANGE:
		/* fsync/fdatasync of a thin device is a REQ_PREFLUSH bio: it commits
		 * when this thin changed in the open transaction */
		op = "flush";
		ed = TS_ERR_FLUSH;
		bytes = 0;
		r = thinp_flush(j->thin, &res);
		break;
	default:
		op = "io";
		ed = TS_ERR_FLUSH;
		r = -EINVAL;
		break;
	}
	uint64_t ns = now_ns() - t0;

	if (r) {
		io_u->error = (unsigned)-r;
		io_u->resid = io_u->xfer_buflen;
		st->errors[ed]++;
		log_io_error(j, op, io_u, r);
		return;
	}
	io_u->error = 0;
	io_u->resid = 0;
	if (atomic_load_explicit(&j->counting, memory_order_relaxed))
		ts_record(st, &res, bytes, ns);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct tjob *j = w->j;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->work_count && !j->stopping)
			pthread_cond_wait(&j->work_cv, &j->lock);
		if (!j->work_count)
			break; /* stopping, nothing left */
		struct io_u *io_u = j->work[j->work_head];
		j->work_head = (j->work_head + 1) % j->cap;
		j->work_count--;
		pthread_mutex_unlock(&j->lock);

		do_io(j, io_u, &j->stats[w->idx]);

		pthread_mutex_lock(&j->lock);
		j->done[(j->done_head + j->done_count) % j->cap] = io_u;
		j->done_count++;
		pthread_cond_signal(&j->done_cv);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static enum fio_q_status fio_thinp_queue(struct thread_data *td, struct io_u *io_u)
{
	struct tjob *j = td->io_ops_data;

	fio_ro_check(td, io_u);
	if (!atomic_load_explicit(&j->counting, memory_order_relaxed) && td->ramp_time_over)
		atomic_store(&j->counting, true);
	if (!j->nworkers) {
		/* iodepth=1: run it here. fio leaves issue_time and the submit and
		 * complete counts to engines with ->commit, so do them as its sync
		 * path would. */
		if (fio_fill_issue_time(td))
			fio_gettime(&io_u->issue_time, NULL);
		do_io(j, io_u, &j->stats[0]);
		io_u_mark_submit(td, 1);
		io_u_mark_complete(td, 1);
		return FIO_Q_COMPLETED;
	}
	if (j->npending == j->cap)
		return FIO_Q_BUSY;
	j->pending[j->npending++] = io_u;
	return FIO_Q_QUEUED;
}

static int fio_thinp_commit(struct thread_data *td)
{
	struct tjob *j = td->io_ops_data;
	unsigned int n = j->npending;

	if (!n)
		return 0;
	if (fio_fill_issue_time(td)) {
		struct timespec now;
		fio_gettime(&now, NULL);
		for (unsigned int i = 0; i < n; i++) {
			memcpy(&j->pending[i]->issue_time, &now, sizeof(now));
			io_u_queued(td, j->pending[i]);
		}
	}
	pthread_mutex_lock(&j->lock);
	/* fio never has more than iodepth io_us, so the ring cannot overflow */
	for (unsigned int i = 0; i < n; i++)
		j->work[(j->work_head + j->work_count + i) % j->cap] = j->pending[i];
	j->work_count += n;
	if (n == 1)
		pthread_cond_signal(&j->work_cv);
	else
		pthread_cond_broadcast(&j->work_cv);
	pthread_mutex_unlock(&j->lock);
	io_u_mark_submit(td, n);
	j->npending = 0;
	return 0;
}

static int fio_thinp_getevents(struct thread_data *td, unsigned int min, unsigned int max,
                               const struct timespec *t)
{
	struct tjob *j = td->io_ops_data;
	struct timespec deadline;
	unsigned int n;

	if (t) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += t->tv_sec;
		deadline.tv_nsec += t->tv_nsec;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&j->lock);
	while (j->done_count < min) {
		if (!t)
			pthread_cond_wait(&j->done_cv, &j->lock);
		else if (pthread_cond_timedwait(&j->done_cv, &j->lock, &deadline) == ETIMEDOUT)
			break;
	}
	n = j->done_count < max ? j->done_count : max;
	for (unsigned int i = 0; i < n; i++) {
		j->events[i] = j->done[j->done_head];
		j->done_head = (j->done_head + 1) % j->cap;
	}
	j->done_count -= n;
	pthread_mutex_unlock(&j->lock);
	return (int)n;
}

static struct io_u *fio_thinp_event(struct thread_data *td, int event)
{
	struct tjob *j = td->io_ops_data;
	return j->events[event];
}

/* ---------------------------------------------------------------------------------------------
 * Files: the job's one file is the thin device
 */

static int fio_thinp_get_file_size(struct thread_data *td, struct fio_file *f)
{
	/* runs in fio's main process before the job forks: no pool access here */
	struct thinp_options *o = td->eo;
	if (o->dev_size) {
		f->real_file_size = o->dev_size;
	} else if (td->o.start_offset_percent || td->o.offset_increment_percent) {
		/* percentages are of the device size, which is what we are asked */
		log_err("thinp: job '%s': offset=/offset_increment= in percent need "
		        "thinp_dev_size=\n",
		        td->o.name);
		td_vmsg(td, EINVAL, "offsets in percent need thinp_dev_size", "thinp");
		return 1;
	} else if (td->o.size) {
		/* A thin device is as large as its table says; by default make it
		 * end where this job's range ends (offset_increment included), so
		 * fio does not clamp the range to size= from offset 0. */
		f->real_file_size = get_start_offset(td, f) + td->o.size / td->o.nr_files;
	} else {
		return 0; /* fio asks for size= */
	}
	fio_file_set_size_known(f);
	return 0;
}

/* Whole-block zero writes to every unmapped block of [off, off+len): a read
 * probe tells mapped from unmapped, so existing data is never touched. */
static int prefill(struct tjob *j, uint64_t off, uint64_t len)
{
	struct thread_data *td = j->td;
	uint64_t bs = thinp_pool_block_bytes(j->tp->pool);
	uint64_t start = off / bs * bs, end = off + len;
	end = (end + bs - 1) / bs * bs;
	if (end > j->thin_size)
		end = j->thin_size;
	/* anonymous memory reads as zeros without being touched, even for 1 GiB blocks */
	void *zeros = mmap(NULL, bs, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *probe;
	if (zeros == MAP_FAILED)
		return job_fail(td, ENOMEM, "thinp_prefill: cannot map %llu bytes",
		                (unsigned long long)bs);
	if (posix_memalign(&probe, META_BLOCK, META_BLOCK)) {
		munmap(zeros, bs);
		return job_fail(td, ENOMEM, "out of memory");
	}
	uint64_t filled = 0;
	int r = 0;
	for (uint64_t pos = start; pos < end && !r; pos += bs) {
		uint64_t n = end - pos < bs ? end - pos : bs;
		struct thinp_io_result res;
		r = thinp_read(j->thin, probe, n < META_BLOCK ? n : META_BLOCK, pos, &res);
		if (!r && res.cls == THINP_READ_UNMAPPED) {
			r = thinp_write(j->thin, zeros, n, pos, 0, &res);
			filled++;
		}
	}
	free(probe);
	munmap(zeros, bs);
	if (r)
		return job_fail(td, -r, "thinp_prefill failed: %s", POOL_MSG(j->tp->pool));
	note("thinp: job '%s': prefilled %llu of %llu blocks of thin %llu\n", td->o.name,
	     (unsigned long long)filled, (unsigned long long)((end - start + bs - 1) / bs),
	     j->o->dev_id);
	return 0;
}

/* thinp_stats with %n replaced by the job name (and %% by %). */
static char *expand_stats_path(const char *tmpl, const char *name)
{
	size_t n = strlen(tmpl) + 1;
	for (const char *p = tmpl; (p = strstr(p, "%n")); p += 2)
		n += strlen(name);
	char *out = malloc(n), *q = out;
	if (!out)
		return NULL;
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '%' && p[1] == 'n') {
			q = stpcpy(q, name);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			*q++ = '%';
			p++;
		} else {
			*q++ = *p;
		}
	}
	*q = '\0';
	return out;
}

static void add_counters(struct thinp_class_stats *a, const struct thinp_class_stats *now,
                         const struct thinp_class_stats *base)
{
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		a[k].ops += now[k].ops - base[k].ops;
		a[k].bytes_requested += now[k].bytes_requested - base[k].bytes_requested;
		a[k].data_bytes_read += now[k].data_bytes_read - base[k].data_bytes_read;
		a[k].data_bytes_written += now[k].data_bytes_written - base[k].data_bytes_written;
		a[k].data_bytes_zeroed += now[k].data_bytes_zeroed - base[k].data_bytes_zeroed;
		a[k].meta_bytes_read += now[k].meta_bytes_read - base[k].meta_bytes_read;
		a[k].meta_bytes_written += now[k].meta_bytes_written - base[k].meta_bytes_written;
	}
}

/* Attach the job to its statistics file (registry lock held). Called after
 * thinp_prefill, so the prefill is not in the pool's counters. */
static int attach_sink(struct tjob *j)
{
	char *path = expand_stats_path(j->o->stats_path, j->td->o.name ? j->td->o.name : "");
	if (!path)
		return job_fail(j->td, ENOMEM, "out of memory");
	struct tsink *s;
	for (s = thinp_pool_registry.sinks; s; s = s->next)
		if (!strcmp(s->path, path))
			break;
	if (s) {
		free(path);
	} else {
		s = calloc(1, sizeof(*s));
		if (!s) {
			free(path);
			return job_fail(j->td, ENOMEM, "out of memory");
		}
		s->path = path;
		s->tail = &s->jobs;
		s->next = thinp_pool_registry.sinks;
		thinp_pool_registry.sinks = s;
	}
	if (!s->pool) {
		s->pool = j->tp->pool;
		thinp_pool_stats(s->pool, s->base);
	}
	s->active++;
	j->sink = s;
	return 0;
}

/* The job ends (registry lock held, pool still open). */
static void detach_sink(struct tjob *j)
{
	struct tsink *s = j->sink;
	if (--s->active == 0 && s->pool) {
		struct thinp_class_stats now[THINP_NR_CLASSES];
		thinp_pool_stats(s->pool, now);
		add_counters(s->acc, now, s->base);
		s->pool = NULL;
	}
	j->sink = NULL;
}

/* POOL is about to close (registry lock held): a sink still counting it
 * (jobs of other pools feed the same file) banks what it counted. */
static void sinks_pool_closing(struct thinp_pool *pool)
{
	for (struct tsink *s = thinp_pool_registry.sinks; s; s = s->next) {
		if (s->pool != pool)
			continue;
		struct thinp_class_stats now[THINP_NR_CLASSES];
		thinp_pool_stats(pool, now);
		add_counters(s->acc, now, s->base);
		s->pool = NULL;
	}
}

/* Sinks live as long as the engine is loaded. */
__attribute__((destructor)) static void free_sinks(void)
{
	while (thinp_pool_registry.sinks) {
		struct tsink *s = thinp_pool_registry.sinks;
		thinp_pool_registry.sinks = s->next;
		while (s->jobs) {
			struct sink_job *sj = s->jobs;
			s->jobs = sj->next;
			free(sj->name);
			free(sj);
		}
		free(s->path);
		free(s);
	}
}

static int fio_thinp_open_file(struct thread_data *td, struct fio_file *f)
{
	struct tjob *j = td->io_ops_data;
	const struct thinp_options *o = j->o;

	if (j->thin)
		return 0; /* fio reopens files between phases; the thin stays open */
	uint64_t end = f->file_offset + f->io_size;
	if (o->dev_size && end > o->dev_size)
		return job_fail(td, EINVAL,
		                "the job's range ends at %llu, beyond "
		                "thinp_dev_size=%llu",
		                (unsigned long long)end, o->dev_size);
	j->thin_size = o->dev_size ? o->dev_size : end;
	int r = thinp_thin_open(j->tp->pool, o->dev_id, j->thin_size, &j->thin);
	if (r)
		return job_fail(td, -r, "cannot open thin device %llu: %s", o->dev_id,
		                POOL_MSG(j->tp->pool));
	if (o->prefill && prefill(j, f->file_offset, f->io_size))
		return 1;
	if (o->stats_path) {
		pthread_mutex_lock(&thinp_pool_registry.lock);
		r = attach_sink(j);
		pthread_mutex_unlock(&thinp_pool_registry.lock);
		if (r)
			return 1;
	}
	return 0;
}

static int fio_thinp_close_file(struct thread_data *td, struct fio_file *f)
{
	(void)td;
	f->fd = -1;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Statistics output
 */

static const char *pool_mode_name(enum thinp_pool_mode m)
{
	switch (m) {
	case THINP_MODE_WRITE:
		return "write";
	case THINP_MODE_OUT_OF_DATA_SPACE:
		return "out_of_data_space";
	case THINP_MODE_READ_ONLY:
		return "read_only";
	default:
		return "fail";
	}
}

/* Rewrite the sink's file with everything merged so far (registry lock held).
 * Written to a temporary name and renamed, so readers never see half a file. */
static int write_sink(struct tjob *j, struct tsink *s)
{
	struct tpool *tp = j->tp;
	size_t n = strlen(s->path) + 16;
	char *tmp = malloc(n);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, n, "%s.tmp%d", s->path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		int e = errno;
		free(tmp);
		return -e;
	}
	struct thinp_pool_status st;
	memset(&st, 0, sizeof(st));
	thinp_pool_status(tp->pool, true, &st);
	char line[512] = "";
	thinp_pool_status_line(tp->pool, true, line, sizeof(line));
	/* block-level counters: finished intervals plus the running one */
	struct thinp_class_stats now[THINP_NR_CLASSES], delta[THINP_NR_CLASSES];
	memcpy(delta, s->acc, sizeof(delta));
	if (s->pool) {
		thinp_pool_stats(s->pool, now);
		add_counters(delta, now, s->base);
	}

	fprintf(f, "{\n  \"engine\": \"thinp\",\n  \"built_against\": ");
	ts_json_string(f, THINP_FIO_VERSION);
	fprintf(f, ",\n  \"latency\": \"ns inside the libthinp call per IO; an IO is classed by "
	           "the dearest outcome among the pool blocks it touched\",\n");
	fprintf(f, "  \"pool\": {\n    \"data\": ");
	ts_json_string(f, tp->data_path);
	fprintf(f, ",\n    \"metadata\": ");
	ts_json_string(f, tp->meta_path);
	fprintf(f,
	        ",\n    \"mode\": \"%s\",\n    \"block_size\": %llu,\n    \"zeroing\": %s,\n"
	        "    \"discard\": \"%s\",\n    \"no_space\": \"%s\",\n"
	        "    \"commit_interval_ms\": %u,\n",
	        mode_names[tp->cfg.mode], tp->cfg.block_size, tp->cfg.zero ? "true" : "false",
	        discard_names[tp->cfg.discard], no_space_names[tp->cfg.no_space],
	        tp->cfg.commit_interval);
	fprintf(f,
	        "    \"pool_mode\": \"%s\",\n    \"transaction_id\": %llu,\n"
	        "    \"used_data_blocks\": %llu,\n    \"total_data_blocks\": %llu,\n"
	        "    \"used_metadata_blocks\": %llu,\n    \"total_metadata_blocks\": %llu,\n"
	        "    \"status\": ",
	        pool_mode_name(st.mode), (unsigned long long)st.transaction_id,
	        (unsigned long long)st.used_data_blocks, (unsigned long long)st.total_data_blocks,
	        (unsigned long long)st.used_meta_blocks, (unsigned long long)st.total_meta_blocks);
	ts_json_string(f, line);
	fprintf(f, ",\n    \"blocks\": ");
	ts_json_pool_classes(f, delta, 6);
	fprintf(f, "\n  },\n  \"errors\": ");
	ts_json_errors(f, &s->total);
	fprintf(f, ",\n  \"classes\": ");
	ts_json_classes(f, &s->total, 4);
	fprintf(f, ",\n  \"jobs\": [");
	for (struct sink_job *sj = s->jobs; sj; sj = sj->next) {
		fprintf(f, "%s\n    {\n      \"name\": ", sj == s->jobs ? "" : ",");
		ts_json_string(f, sj->name);
		fprintf(f,
		        ",\n      \"jobnum\": %u,\n      \"thin_dev\": %llu,\n      \"thin_size\": %llu,\n"
		        "      \"ios\": %llu,\n      \"errors\": ",
		        sj->jobnum, sj->dev, sj->size, (unsigned long long)ts_set_ios(&sj->s));
		ts_json_errors(f, &sj->s);
		fprintf(f, ",\n      \"classes\": ");
		ts_json_classes(f, &sj->s, 8);
		fprintf(f, "\n    }");
	}
	fprintf(f, "\n  ]\n}\n");
	int r = 0;
	if (ferror(f))
		r = -EIO;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, s->path))
		r = -errno;
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

/* A few lines per job: where its IOs went and what they cost. */
static void print_summary(struct tjob *j, const struct ts_set *s)
{
	char buf[4096];
	size_t len = 0;
#define APPEND(...)                                                                         \
	do {                                                                                \
		if (len < sizeof(buf))                                                      \
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__); \
	} while (0)
	uint64_t errs = 0;
	for (unsigned d = 0; d < TS_NR_ERR_DIRS; d++)
		errs += s->errors[d];
	APPEND("thinp: job '%s' (%u): thin %llu (%llu bytes): %llu IOs, %llu errors\n",
	       j->td->o.name, j->td->thread_number, j->o->dev_id, j->thin_size,
	       (unsigned long long)ts_set_ios(s), (unsigned long long)errs);
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		const struct ts_class *c = &s->c[k];
		if (!c->ios)
			continue;
		char p50[16], p99[16], mx[16], dw[16], dz[16], dr[16], mw[16];
		ts_fmt_ns(p50, sizeof(p50), ts_hist_percentile(&c->lat, 50));
		ts_fmt_ns(p99, sizeof(p99), ts_hist_percentile(&c->lat, 99));
		ts_fmt_ns(mx, sizeof(mx), c->lat.max);
		ts_fmt_bytes(dr, sizeof(dr), c->data_bytes_read);
		ts_fmt_bytes(dw, sizeof(dw), c->data_bytes_written);
		ts_fmt_bytes(dz, sizeof(dz), c->data_bytes_zeroed);
		ts_fmt_bytes(mw, sizeof(mw), c->meta_bytes_written);
		APPEND("thinp:   %-21s %9llu ios  p50 %-8s p99 %-8s max %-8s data r %s w %s z %s  "
		       "meta w %s\n",
		       thinp_class_name((enum thinp_class)k), (unsigned long long)c->ios, p50, p99,
		       mx, dr, dw, dz, mw);
	}
	if (j->sink)
		APPEND("thinp:   statistics in %s\n", j->sink->path);
#undef APPEND
	note("%s", buf);
}

/* ---------------------------------------------------------------------------------------------
 * Init and cleanup
 */

static void stop_workers(struct tjob *j)
{
	if (!j->lock_init) { /* init failed before any worker existed */
		free(j->workers);
		j->workers = NULL;
		return;
	}
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_broadcast(&j->work_cv);
	pthread_mutex_unlock(&j->lock);
	for (unsigned int i = 0; i < j->nstarted; i++)
		pthread_join(j->workers[i].thread, NULL);
	free(j->workers);
	j->workers = NULL;
}

static void fio_thinp_cleanup(struct thread_data *td)
{
	struct tjob *j = td->io_ops_data;
	if (!j)
		return;
	stop_workers(j);

	if (j->stats && j->tp) {
		struct ts_set *total = calloc(1, sizeof(*total));
		if (total) {
			for (unsigned int i = 0; i <= j->nworkers; i++)
				ts_set_merge(total, &j->stats[i]);
			pthread_mutex_lock(&thinp_pool_registry.lock);
			/* The last job out commits now rather than in thinp_pool_close,
			 * so the final commit's cost is in the statistics. */
			if (j->tp->refs == 1 && !j->tp->cfg.read_only)
				(void)thinp_pool_commit(j->tp->pool);
			if (j->sink) {
				struct sink_job *sj = calloc(1, sizeof(*sj));
				if (sj) {
					sj->name = strdup(td->o.name ? td->o.name : "");
					sj->jobnum = td->thread_number;
					sj->dev = j->o->dev_id;
					sj->size = j->thin_size;
					sj->s = *total;
					*j->sink->tail = sj;
					j->sink->tail = &sj->next;
				}
				ts_set_merge(&j->sink->total, total);
				int r = write_sink(j, j->sink);
				if (r)
					log_err("thinp: job '%s': cannot write %s: %s\n",
					        td->o.name, j->sink->path, strerror(-r));
			}
			if (j->thin)
				print_summary(j, total);
			if (j->sink)
				detach_sink(j);
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			free(total);
		}
	}
	if (j->thin)
		thinp_thin_close(j->thin);
	registry_release(j);
	if (j->lock_init) {
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->work_cv);
		pthread_cond_destroy(&j->done_cv);
	}
	free(j->stats);
	free(j->pending);
	free(j->work);
	free(j->done);
	free(j->events);
	free(j);
	td->io_ops_data = NULL;
}

/* Exported under the name fio's dlopen path looks up for external engines
 * (everything else in the .so is hidden). */
extern __attribute__((visibility("default"))) struct ioengine_ops ioengine;

static int fio_thinp_init(struct thread_data *td)
{
	struct thinp_options *o = td->eo;

	/* A cheap guard against headers that do not match the running fio: fio
	 * checked our ops version, and thread_data must point back at our ops. */
	if (td->io_ops != &ioengine || !o) {
		log_err("thinp: fio's thread_data does not match the headers this engine was built "
		        "with (%s): rebuild it against the installed fio\n",
		        THINP_FIO_VERSION);
		return 1;
	}
	if (td->o.nr_files > 1)
		return job_fail(td, EINVAL,
		                "nrfiles=%u: a job does IO to one thin device (use "
		                "numjobs with offset_increment, or one job per "
		                "thinp_dev)",
		                td->o.nr_files);
	if (td->o.fsync_on_close)
		return job_fail(td, EINVAL,
		                "fsync_on_close fsyncs a file descriptor this engine "
		                "does not have: use end_fsync=1, which flushes the thin "
		                "device");
	if (o->dev_str && verify_dev(NULL, o))
		return job_fail(td, EINVAL, "bad thinp_dev");

	struct tjob *j = calloc(1, sizeof(*j));
	if (!j)
		return job_fail(td, ENOMEM, "out of memory");
	td->io_ops_data = j;
	j->td = td;
	j->o = o;
	/* O_SYNC writes reach a thin device as FUA bios */
	j->io_flags = td->o.sync_io ? THINP_IO_FUA : 0;
	atomic_init(&j->errors_logged, 0);
	atomic_init(&j->counting, !td->o.ramp_time);

	j->depth = td->o.iodepth ? td->o.iodepth : 1;
	if (j->depth > 1) {
		unsigned int w = o->workers ? o->workers : j->depth;
		if (!o->workers && w > THINP_DEFAULT_WORKERS_CAP)
			w = THINP_DEFAULT_WORKERS_CAP;
		if (w > j->depth)
			w = j->depth;
		j->nworkers = w;
	}
	j->stats = calloc(j->nworkers + 1, sizeof(*j->stats));
	if (!j->stats)
		return job_fail(td, ENOMEM, "out of memory");

	if (registry_acquire(j))
		return 1;
	pthread_mutex_lock(&thinp_pool_registry.lock);
	int r = prepare_thin(j);
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	if (r)
		return 1;

	if (j->nworkers) {
		j->cap = j->depth + 1;
		j->pending = calloc(j->cap, sizeof(*j->pending));
		j->work = calloc(j->cap, sizeof(*j->work));
		j->done = calloc(j->cap, sizeof(*j->done));
		j->events = calloc(j->cap, sizeof(*j->events));
		j->workers = calloc(j->nworkers, sizeof(*j->workers));
		if (!j->pending || !j->work || !j->done || !j->events || !j->workers)
			return job_fail(td, ENOMEM, "out of memory");
		pthread_mutex_init(&j->lock, NULL);
		pthread_cond_init(&j->work_cv, NULL);
		pthread_cond_init(&j->done_cv, NULL);
		j->lock_init = true;
		for (unsigned int i = 0; i < j->nworkers; i++) {
			j->workers[i].j = j;
			j->workers[i].idx = i + 1;
			int e = pthread_create(&j->workers[i].thread, NULL, worker_main,
			                       &j->workers[i]);
			if (e)
				return job_fail(td, e, "cannot start worker thread %u of %u: %s",
				                i + 1, j->nworkers, strerror(e));
			j->nstarted++;
		}
	}
	return 0;
}

struct ioengine_ops ioengine = {
	.name = "thinp",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NODISKUTIL | FIO_MEMALIGN | FIO_ASYNCIO_SETS_ISSUE_TIME,
	.init = fio_thinp_init,
	.cleanup = fio_thinp_cleanup,
	.queue = fio_thinp_queue,
	.commit = fio_thinp_commit,
	.getevents = fio_thinp_getevents,
	.event = fio_thinp_event,
	.open_file = fio_thinp_open_file,
	.close_file = fio_thinp_close_file,
	.get_file_size = fio_thinp_get_file_size,
	.options = options,
	.option_struct_size = sizeof(struct thinp_options),
};
