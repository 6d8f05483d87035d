/* The holding device wrapper (dev_hold.h). */
#include "support/dev_hold.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "io/dev_internal.h"

struct tp_hold {
	struct tp_dev dev;
	struct tp_dev *inner;
	pthread_mutex_t lk;
	pthread_cond_t cv;
	bool armed, held;
	unsigned long epoch; /* releases so far: a held write goes when it moves */
};

static struct tp_hold *to_hold(struct tp_dev *d) { return tp_container_of(d, struct tp_hold, dev); }

/* The wrapper reports the inner device's counters and size as its own. */
static int synced(struct tp_hold *h, int r)
{
	struct tp_io_counters c = tp_dev_ctr(h->inner);
	tp_dev_ctr_set(&h->dev, &c);
	tp_dev_size_set(&h->dev, tp_dev_size_get(h->inner));
	return r;
}

static void gate(struct tp_hold *h)
{
	pthread_mutex_lock(&h->lk);
	if (h->armed) {
		unsigned long epoch = h->epoch;
		h->held = true;
		pthread_cond_broadcast(&h->cv);
		while (h->epoch == epoch)
			pthread_cond_wait(&h->cv, &h->lk);
	}
	pthread_mutex_unlock(&h->lk);
}

static int hold_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	return synced(to_hold(d), tp_dev_pread(to_hold(d)->inner, buf, len, off));
}

static int hold_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	gate(to_hold(d));
	return synced(to_hold(d), tp_dev_pwrite(to_hold(d)->inner, buf, len, off));
}

static int hold_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
			unsigned flags)
{
	gate(to_hold(d));
	return synced(to_hold(d), tp_dev_pwritev(to_hold(d)->inner, iov, cnt, off, flags));
}

static int hold_flush(struct tp_dev *d)
{
	gate(to_hold(d));
	return synced(to_hold(d), tp_dev_flush(to_hold(d)->inner));
}

static int hold_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	gate(to_hold(d));
	return synced(to_hold(d), tp_dev_write_zeroes(to_hold(d)->inner, off, len));
}

static int hold_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return synced(to_hold(d), tp_dev_discard(to_hold(d)->inner, off, len));
}

static int hold_resize(struct tp_dev *d, uint64_t size)
{
	return synced(to_hold(d), tp_dev_resize(to_hold(d)->inner, size));
}

static int hold_refresh(struct tp_dev *d)
{
	struct tp_dev *in = to_hold(d)->inner;
	return synced(to_hold(d), in->ops->refresh_size ? in->ops->refresh_size(in) : 0);
}

static void hold_close(struct tp_dev *d)
{
	struct tp_hold *h = to_hold(d);
	tp_dev_close(h->inner);
	pthread_mutex_destroy(&h->lk);
	pthread_cond_destroy(&h->cv);
	free(h);
}

static const struct tp_dev_ops hold_ops = {
	.pread = hold_pread,
	.pwrite = hold_pwrite,
	.flush = hold_flush,
	.write_zeroes = hold_zeroes,
	.discard = hold_discard,
	.resize = hold_resize,
	.refresh_size = hold_refresh,
	.close = hold_close,
	.pwritev = hold_pwritev,
};

int tp_hold_wrap(struct tp_dev *inner, struct tp_dev **out, struct tp_hold **hold)
{
	struct tp_hold *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->inner = inner;
	pthread_mutex_init(&h->lk, NULL);
	pthread_cond_init(&h->cv, NULL);
	tp_dev_init(&h->dev, &hold_ops, "hold", inner->size, inner->align);
	synced(h, 0);
	*out = &h->dev;
	*hold = h;
	return 0;
}

void tp_hold_arm(struct tp_hold *h)
{
	pthread_mutex_lock(&h->lk);
	h->armed = true;
	h->held = false;
	pthread_mutex_unlock(&h->lk);
}

void tp_hold_wait_held(struct tp_hold *h)
{
	pthread_mutex_lock(&h->lk);
	while (!h->held)
		pthread_cond_wait(&h->cv, &h->lk);
	pthread_mutex_unlock(&h->lk);
}

void tp_hold_release(struct tp_hold *h)
{
	pthread_mutex_lock(&h->lk);
	h->armed = false;
	h->epoch++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lk);
}
