/* The IO path. With iodepth=1 an IO runs inline in fio's job thread. With
 * iodepth > 1, queue() stashes IOs, commit() hands them to a small pool of
 * worker threads (libthinp calls block, so in-flight IOs need threads), and
 * getevents() reaps what they completed. The job's rings are bounded by
 * iodepth, and one mutex per job guards them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


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

enum fio_q_status fio_thinp_queue(struct thread_data *td, struct io_u *io_u)
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

int fio_thinp_commit(struct thread_data *td)
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

int fio_thinp_getevents(struct thread_data *td, unsigned int min, unsigned int max,
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

struct io_u *fio_thinp_event(struct thread_data *td, int event)
{
	struct tjob *j = td->io_ops_data;
	return j->events[event];
}

int workers_start(struct tjob *j)
{
	struct thread_data *td = j->td;
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
		int e = pthread_create(&j->workers[i].thread, NULL, worker_main, &j->workers[i]);
		if (e)
			return job_fail(td, e, "cannot start worker thread %u of %u: %s", i + 1,
			                j->nworkers, strerror(e));
		j->nstarted++;
	}
	return 0;
}

void workers_stop(struct tjob *j)
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
