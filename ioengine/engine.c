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
 * The options table (engine_options.c) is the documentation:
 * fio --enghelp=<path>. This file holds fio's hooks for a job's life (init,
 * files, cleanup) and the ops table; engine.h says where the rest lives.
 *
 * Concurrency: with iodepth=1 an IO runs inline in fio's job thread; with
 * iodepth > 1 worker threads run them (engine_workers.c). Jobs in one process
 * (thread=1) that name the same pool share one open pool through the pool
 * registry (engine_registry.c) - the only global mutable state here; devices
 * are opened with an exclusive flock so another process opening the same pool
 * gets a clear error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int job_fail(struct thread_data *td, int err, const char *fmt, ...)
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

void note(const char *fmt, ...)
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

const char *pool_msg(struct thinp_pool *p, char *buf, size_t len)
{
	thinp_pool_error_copy(p, buf, len);
	return buf;
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
	job_warn_no_space(j, f->io_size);
	if (o->prefill && job_prefill(j, f->file_offset, f->io_size))
		return 1;
	if (o->stats_path) {
		pthread_mutex_lock(&thinp_pool_registry.lock);
		r = sink_attach(j);
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
 * Init and cleanup
 */

static void fio_thinp_cleanup(struct thread_data *td)
{
	struct tjob *j = td->io_ops_data;
	if (!j)
		return;
	workers_stop(j);
	if (j->stats && j->tp)
		sink_job_end(j);
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
	if (o->dev_str && options_parse_dev(o))
		return job_fail(td, EINVAL, "bad thinp_dev");

	struct tjob *j = calloc(1, sizeof(*j));
	if (!j)
		return job_fail(td, ENOMEM, "out of memory");
	td->io_ops_data = j;
	j->td = td;
	j->o = o;
	job_warn_inputs(j);
	/* O_SYNC writes reach a thin device as FUA bios */
	j->io_flags = td->o.sync_io ? THINP_IO_FUA : 0;
	/* O_DIRECT takes fio's buffers only when they are page-aligned, and fio aligns them only
	 * for direct=1 or a raw-IO engine (init_io_u_buffers; FIO_MEMALIGN just sizes the
	 * area): without this the pool copies every write into a buffer of its own first, a
	 * fresh 1 MiB one per 1 MiB write, where the raw peer (direct=1) writes in place. This
	 * runs before fio sets up the buffers. */
	if (opts_odirect(o))
		td->flags |= (unsigned long long)FIO_RAWIO << TD_ENG_FLAG_SHIFT;
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
	int r = registry_prepare_thin(j);
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	if (r)
		return 1;

	if (j->nworkers && workers_start(j))
		return 1;
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
	.options = thinp_fio_options,
	.option_struct_size = sizeof(struct thinp_options),
};
