/* A device's flusher: one long-lived thread that runs the flushes a commit overlaps with its
 * metadata writes (tp_dev_flush_start / tp_dev_flush_wait). A thread created and joined per
 * commit cost 70-180 us of clone, stack setup and join on every commit; this one is created by
 * the device's first overlapped flush and joined by tp_dev_close. */
#include "io/dev_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct tp_flusher {
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* a job was handed over, or STOP */
	pthread_cond_t done;    /* a job finished */
	struct tp_flush_job *job; /* the one in hand (NULL: idle) */
	bool stop;
	pid_t owner;            /* a forked child has the pointer but not the thread */
	pthread_t thread;
};

static void *flusher_main(void *arg)
{
	struct tp_flusher *f = arg;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->job && !f->stop)
			pthread_cond_wait(&f->wake, &f->mu);
		struct tp_flush_job *job = f->job;
		if (!job)
			break;
		pthread_mutex_unlock(&f->mu);
		int r = tp_dev_flush(job->d);
		pthread_mutex_lock(&f->mu);
		job->r = r;
		job->done = true;
		f->job = NULL;
		pthread_cond_broadcast(&f->done);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static struct tp_flusher *flusher_new(void)
{
	struct tp_flusher *f = calloc(1, sizeof(*f));
	sigset_t all, old;

	if (!f)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->wake, NULL);
	pthread_cond_init(&f->done, NULL);
	f->owner = getpid();
	/* Signals stay with the application's threads (fio's, the CLI's handlers): the flusher
	 * starts with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&f->thread, NULL, flusher_main, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_cond_destroy(&f->done);
		pthread_cond_destroy(&f->wake);
		pthread_mutex_destroy(&f->mu);
		free(f);
		return NULL;
	}
	return f;
}

static void flusher_free(struct tp_flusher *f)
{
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->done);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* D's flusher, started on first use; NULL when there is none to use (no thread could be
 * created, or this is a forked child of the process that created it). */
static struct tp_flusher *flusher_get(struct tp_dev *d)
{
	struct tp_flusher *f = __atomic_load_n(&d->flusher, __ATOMIC_ACQUIRE);

	if (!f) {
		struct tp_flusher *mine = flusher_new(), *none = NULL;
		if (!mine)
			return NULL;
		/* two first flushes at once: one flusher is installed, the other ended */
		if (__atomic_compare_exchange_n(&d->flusher, &none, mine, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			f = mine;
		else {
			flusher_free(mine);
			f = none;
		}
	}
	return f->owner == getpid() ? f : NULL;
}

void tp_dev_flush_start(struct tp_dev *d, struct tp_flush_job *job)
{
	job->d = d;
	job->r = 0;
	job->queued = false;
	job->done = false;
	/* Without the capability (wrappers, test devices that record the order of IO across
	 * devices) the flush stays in line, in order; so does a second flush started while the
	 * flusher still has one (callers of the same device, which a pool's commits never are). */
	struct tp_flusher *f = (d->caps & TP_DEV_CAP_ASYNC_FLUSH) ? flusher_get(d) : NULL;
	if (f) {
		pthread_mutex_lock(&f->mu);
		if (!f->job && !f->stop) {
			f->job = job;
			job->queued = true;
			pthread_cond_signal(&f->wake);
		}
		pthread_mutex_unlock(&f->mu);
		if (job->queued)
			return;
	}
	job->r = tp_dev_flush(d);
}

int tp_dev_flush_wait(struct tp_flush_job *job)
{
	if (job->queued) {
		struct tp_flusher *f = job->d->flusher;
		pthread_mutex_lock(&f->mu);
		while (!job->done)
			pthread_cond_wait(&f->done, &f->mu);
		pthread_mutex_unlock(&f->mu);
		job->queued = false;
	}
	return job->r;
}

void tp_flusher_stop(struct tp_dev *d)
{
	struct tp_flusher *f = d->flusher;

	if (!f)
		return;
	d->flusher = NULL;
	/* a forked child's copy: no thread to join, and the lock may be a copy of a held one */
	if (f->owner != getpid())
		free(f);
	else
		flusher_free(f);
}
