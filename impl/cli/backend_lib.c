/* The userspace backend: libthinp on files or block devices, through thinp.h alone. A
 * directory pool's table line lives in DIR/table (cli_table.h). The kernel-only
 * operations (pool activate|remove, thin activate|remove) are notes that do nothing:
 * this backend has no device nodes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"
#include "cli/cli_table.h"

struct lib_pool {
	struct backend_pool base;
	struct thinp_pool *pool;
	struct thinp_control *control; /* DIR/control served while open (A->serve_control) */
};

struct backend_thin {
	struct lib_pool *p;
	struct thinp_thin *t;
};

static struct lib_pool *lib(struct backend_pool *p)
{
	return (struct lib_pool *)p;
}

/* R from libthinp, reported with the pool's own sentence. */
static int report(struct lib_pool *p, int r)
{
	if (!r)
		return 0;
	const char *why = thinp_pool_error(p->pool);
	cli_err(p->base.args->cmd, "%s", *why ? why : strerror(-r));
	return 1;
}

static int note(const struct cli_pool_args *a)
{
	cli_err(a->cmd,
	        "nothing to do for the userspace backend (it has no device nodes: thin devices "
	        "are reached with thinp read/write/discard); --backend kernel does this on the "
	        "kernel");
	return 0;
}

/* 0 or libthinp's -errno, with its sentence in ERR (unreported). */
static int open_paths(struct cli_pool_args *a, enum thinp_open_how how, struct thinp_pool **out,
                      char *err, size_t errlen)
{
	struct thinp_pool_paths w = {
		.dir = a->pool,
		.data = a->data,
		.metadata = a->metadata,
		.data_size = a->data_size,
		.meta_size = a->meta_size,
		.direct = a->direct,
		.losetup = a->losetup,
		.force = a->force,
		.how = how,
	};
	a->opts.no_commit_timer = true; /* one-shot commands commit explicitly */
	return thinp_pool_open_paths(&w, &a->opts, out, NULL, err, errlen);
}

static int close_pool(struct thinp_pool *pool, const char *cmd, int rc)
{
	int r = thinp_pool_close(pool);
	if (r && !rc)
		return cli_fail(cmd, "committing the pool failed: %s", strerror(-r));
	return rc;
}

static int lib_pool_create(struct cli_pool_args *a, char *dev, size_t len)
{
	if (len)
		*dev = '\0';
	/* --force must never reformat metadata a kernel pool is using */
	if (a->pool && backend_kernel_refuse_dir(a->cmd, a->pool))
		return 1;
	struct thinp_pool *pool;
	char err[1024];
	if (open_paths(a, THINP_OPEN_CREATE, &pool, err, sizeof(err)))
		return cli_fail(a->cmd, "%s", err);
	int r = a->pool ? cli_save_table(a->pool, &a->opts) : 0;
	if (r) {
		cli_err(a->cmd, "cannot save %s/table: %s", a->pool, strerror(-r));
		return close_pool(pool, a->cmd, 1);
	}
	return close_pool(pool, a->cmd, 0);
}

/* DIR/control while this command holds the pool; a pool not served is only a warning:
 * the command itself works the same. */
static void serve(struct lib_pool *p)
{
	const struct cli_pool_args *a = p->base.args;
	char sock[4096], err[1024];
	int r = backend_control_path(a->pool, sock, sizeof(sock));
	if (r)
		snprintf(err, sizeof(err), "%s/control: path too long", a->pool);
	else
		r = thinp_control_serve(p->pool, sock, &p->control, err, sizeof(err));
	if (r)
		cli_warn(a->cmd, "other commands cannot reach this pool while it is open: %s", err);
}

static int lib_open(struct cli_pool_args *a, struct backend_pool **out)
{
	if (a->pool) {
		if (backend_kernel_refuse_dir(a->cmd, a->pool))
			return 1;
		cli_load_table(a->pool, a);
	}
	struct lib_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return cli_fail(a->cmd, "out of memory");
	char err[1024];
	int r = open_paths(a, THINP_OPEN_EXISTING, &p->pool, err, sizeof(err));
	if (r) {
		free(p);
		/* held by another process: its control socket, if it serves one, does the job */
		if (r == -EBUSY && a->via_control && a->pool &&
		    (r = backend_control_open(a, out)) >= 0)
			return r;
		return cli_fail(a->cmd, "%s", err);
	}
	p->base.ops = &backend_lib_ops;
	p->base.args = a;
	*out = &p->base;
	if (a->serve_control && a->pool)
		serve(p);
	return 0;
}

static int lib_close(struct backend_pool *bp, int rc)
{
	struct lib_pool *p = lib(bp);
	thinp_control_stop(p->control); /* before the close: it serves the pool */
	rc = close_pool(p->pool, bp->args->cmd, rc);
	free(p);
	return rc;
}

/* The pool must at least open. */
static int lib_pool_activate(struct cli_pool_args *a, char *dev, size_t len)
{
	if (len)
		*dev = '\0';
	struct backend_pool *p;
	int r = lib_open(a, &p);
	if (r)
		return r;
	return lib_close(p, note(a));
}

static int lib_pool_remove(struct backend_pool *p, bool deferred)
{
	(void)deferred;
	return note(p->args);
}

static int lib_pool_status(struct backend_pool *bp, bool noflush, struct thinp_pool_status *st,
                           char *line, size_t len)
{
	struct lib_pool *p = lib(bp);
	int r = st ? thinp_pool_status(p->pool, noflush, st) : 0;
	if (!r && line)
		r = thinp_pool_status_line(p->pool, noflush, line, len);
	return report(p, r);
}

static int lib_pool_extend(struct backend_pool *bp, uint64_t data_bytes, uint64_t meta_bytes)
{
	struct lib_pool *p = lib(bp);
	int r = data_bytes ? thinp_pool_resize_data(p->pool, data_bytes) : 0;
	if (!r && meta_bytes)
		r = thinp_pool_resize_metadata(p->pool, meta_bytes);
	return report(p, r);
}

static int lib_thin_create(struct backend_pool *bp, uint64_t id)
{
	return report(lib(bp), thinp_create_thin(lib(bp)->pool, id));
}

static int lib_thin_snap(struct backend_pool *bp, uint64_t id, uint64_t origin)
{
	return report(lib(bp), thinp_create_snap(lib(bp)->pool, id, origin));
}

static int lib_thin_delete(struct backend_pool *bp, uint64_t id)
{
	return report(lib(bp), thinp_delete_thin(lib(bp)->pool, id));
}

/* libthinp's thin status reads the open transaction: NOFLUSH changes nothing. */
static int lib_thin_status(struct backend_pool *bp, uint64_t id, const char *dm_name, bool noflush,
                           struct thinp_thin_status *st, char *line, size_t len)
{
	(void)dm_name;
	(void)noflush;
	struct lib_pool *p = lib(bp);
	int r = st ? thinp_thin_status(p->pool, id, st) : 0;
	if (!r && line)
		r = thinp_thin_status_line(p->pool, id, line, len);
	return report(p, r);
}

/* The thin must at least exist. */
static int lib_thin_activate(struct backend_pool *bp, uint64_t id, uint64_t size,
                             const char *dm_name, char *dev, size_t len)
{
	(void)size;
	if (len)
		*dev = '\0';
	struct thinp_thin_status st;
	int r = lib_thin_status(bp, id, dm_name, false, &st, NULL, 0);
	return r ? r : note(bp->args);
}

static int lib_thin_remove(struct backend_pool *bp, uint64_t id, const char *dm_name, bool deferred)
{
	(void)deferred;
	struct thinp_thin_status st;
	int r = lib_thin_status(bp, id, dm_name, false, &st, NULL, 0);
	return r ? r : note(bp->args);
}

static int lib_thin_usage(struct backend_pool *bp, struct thinp_thin_usage **out, size_t *nr,
                          uint32_t *block_sectors)
{
	struct lib_pool *p = lib(bp);
	*block_sectors = thinp_pool_block_bytes(p->pool) / 512;
	return report(p, thinp_thin_usage(p->pool, out, nr));
}

static int lib_set_transaction_id(struct backend_pool *bp, uint64_t old, uint64_t next)
{
	return report(lib(bp), thinp_set_transaction_id(lib(bp)->pool, old, next));
}

static int lib_metadata_snap(struct backend_pool *bp, bool reserve)
{
	struct thinp_pool *pool = lib(bp)->pool;
	return report(lib(bp), reserve ? thinp_reserve_metadata_snap(pool) :
	                                 thinp_release_metadata_snap(pool));
}

static int lib_thin_open(struct backend_pool *bp, uint64_t id, uint64_t size,
                         struct backend_thin **out)
{
	struct backend_thin *t = calloc(1, sizeof(*t));
	if (!t)
		return cli_fail(bp->args->cmd, "out of memory");
	t->p = lib(bp);
	int r = report(t->p, thinp_thin_open(t->p->pool, id, size, &t->t));
	if (r) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

static void lib_thin_close(struct backend_thin *t)
{
	thinp_thin_close(t->t);
	free(t);
}

static int lib_read(struct backend_thin *t, void *buf, size_t len, uint64_t off)
{
	return report(t->p, thinp_read(t->t, buf, len, off, NULL));
}

static int lib_write(struct backend_thin *t, const void *buf, size_t len, uint64_t off)
{
	return report(t->p, thinp_write(t->t, buf, len, off, 0, NULL));
}

static int lib_discard(struct backend_thin *t, uint64_t off, uint64_t len)
{
	return report(t->p, thinp_discard(t->t, off, len, NULL));
}

static int lib_flush(struct backend_thin *t)
{
	return report(t->p, thinp_flush(t->t, NULL));
}

struct thinp_pool *backend_lib_pool(struct backend_pool *p)
{
	return p->ops == &backend_lib_ops ? lib(p)->pool : NULL;
}

const struct backend_ops backend_lib_ops = {
	.name = "user",
	.caps = BACKEND_IO,
	.pool_create = lib_pool_create,
	.pool_activate = lib_pool_activate,
	.open = lib_open,
	.close = lib_close,
	.pool_remove = lib_pool_remove,
	.pool_status = lib_pool_status,
	.pool_extend = lib_pool_extend,
	.thin_create = lib_thin_create,
	.thin_snap = lib_thin_snap,
	.thin_delete = lib_thin_delete,
	.thin_status = lib_thin_status,
	.thin_activate = lib_thin_activate,
	.thin_remove = lib_thin_remove,
	.thin_usage = lib_thin_usage,
	.set_transaction_id = lib_set_transaction_id,
	.metadata_snap = lib_metadata_snap,
	.thin_open = lib_thin_open,
	.thin_close = lib_thin_close,
	.read = lib_read,
	.write = lib_write,
	.discard = lib_discard,
	.flush = lib_flush,
};
