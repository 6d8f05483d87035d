/* Several writes in flight at once on an O_DIRECT descriptor (the pwrite_batch of block and
 * file devices), through Linux AIO: one io_submit for all of them, then their completions.
 * Two pwrites in a row wait for the device twice; two independent writes submitted together
 * wait about as long as the slower one.
 *
 * A context is set up once and kept by the device while idle: io_destroy waits for an RCU
 * grace period, far longer than the writes it would follow. Any refusal (no AIO in the kernel,
 * aio-max-nr reached, a descriptor AIO does not take, a context a fork left behind) turns the
 * device's batches into plain writes one after the other, which is always correct. */
#include "io/dev_internal.h"

#include <linux/aio_abi.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void tp_aio_ctxs_init(struct tp_aio_ctxs *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void tp_aio_ctxs_destroy(struct tp_aio_ctxs *c)
{
	for (int i = 0; i < c->nidle; i++)
		syscall(SYS_io_destroy, (aio_context_t)c->idle[i]);
	c->nidle = 0;
	pthread_mutex_destroy(&c->lock);
}

static bool ctx_get(struct tp_aio_ctxs *c, aio_context_t *ctx)
{
	pthread_mutex_lock(&c->lock);
	bool off = c->unavailable;
	bool have = !off && c->nidle > 0;
	if (have)
		*ctx = (aio_context_t)c->idle[--c->nidle];
	pthread_mutex_unlock(&c->lock);
	if (off || have)
		return have;
	*ctx = 0;
	if (syscall(SYS_io_setup, (unsigned)TP_DEV_BATCH_MAX, ctx) == 0)
		return true;
	tp_aio_disable(c);
	return false;
}

static void ctx_put(struct tp_aio_ctxs *c, aio_context_t ctx)
{
	pthread_mutex_lock(&c->lock);
	bool keep = c->nidle < TP_AIO_IDLE_MAX;
	if (keep)
		c->idle[c->nidle++] = (uint64_t)ctx;
	pthread_mutex_unlock(&c->lock);
	if (!keep)
		syscall(SYS_io_destroy, ctx);
}

void tp_aio_disable(struct tp_aio_ctxs *c)
{
	pthread_mutex_lock(&c->lock);
	c->unavailable = true;
	pthread_mutex_unlock(&c->lock);
}

/* Wait for N submitted writes; their results in EV. 0, or an errno after which the context
 * is gone (io_destroy returns only once the writes still in flight are done with the
 * buffers). */
static int reap(aio_context_t ctx, struct io_event *ev, int n)
{
	int got = 0;
	while (got < n) {
		long k = syscall(SYS_io_getevents, ctx, (long)(n - got), (long)(n - got), ev + got,
				 NULL);
		if (k >= 0) {
			got += (int)k;
		} else if (errno != EINTR) {
			int r = -errno;
			syscall(SYS_io_destroy, ctx);
			return r;
		}
	}
	return 0;
}

int tp_aio_pwrite_batch(struct tp_aio_ctxs *c, int fd, const struct tp_dev_write *w, int cnt,
			bool *done)
{
	struct iocb cb[TP_DEV_BATCH_MAX], *cbp[TP_DEV_BATCH_MAX];
	struct io_event ev[TP_DEV_BATCH_MAX];
	aio_context_t ctx;

	if (cnt < 0 || cnt > TP_DEV_BATCH_MAX)
		return -EINVAL;
	if (!ctx_get(c, &ctx))
		return -EOPNOTSUPP;
	for (int i = 0; i < cnt; i++) {
		memset(&cb[i], 0, sizeof(cb[i]));
		cb[i].aio_data = (uint64_t)i;
		cb[i].aio_lio_opcode = IOCB_CMD_PWRITE;
		cb[i].aio_fildes = (uint32_t)fd;
		cb[i].aio_buf = (uint64_t)(uintptr_t)w[i].buf;
		cb[i].aio_nbytes = w[i].len;
		cb[i].aio_offset = (int64_t)w[i].off;
		cbp[i] = &cb[i];
		done[i] = false;
	}
	int sub = 0;
	while (sub < cnt) {
		long k = syscall(SYS_io_submit, ctx, (long)(cnt - sub), cbp + sub);
		if (k > 0)
			sub += (int)k;
		else if (k == 0 || errno != EINTR)
			break;
	}
	if (sub == 0) {
		/* refused outright: this descriptor (or this process's context) will not do */
		syscall(SYS_io_destroy, ctx);
		tp_aio_disable(c);
		return -EOPNOTSUPP;
	}
	int r = reap(ctx, ev, sub);
	if (r)
		return r;
	for (int e = 0; e < sub; e++) {
		int i = (int)ev[e].data;
		long long res = (long long)ev[e].res;
		if (res < 0) {
			if (!r)
				r = (int)res;
		} else if ((size_t)res < w[i].len) {
			/* a short write goes on as a plain one, as tp_fd_pwrite_full does */
			int sr = tp_fd_pwrite_full(fd, (const char *)w[i].buf + res,
						   w[i].len - (size_t)res, w[i].off + (uint64_t)res);
			if (sr && !r)
				r = sr;
			done[i] = !sr;
		} else {
			done[i] = true;
		}
	}
	/* what io_submit did not take (out of resources) goes one by one */
	for (int i = sub; i < cnt && !r; i++) {
		r = tp_fd_pwrite_full(fd, w[i].buf, w[i].len, w[i].off);
		done[i] = !r;
	}
	ctx_put(c, ctx);
	return r;
}
