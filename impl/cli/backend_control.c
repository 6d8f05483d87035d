/* The userspace pool another process holds: its devices are locked, so this process
 * cannot open it, but the holder answers on DIR/control (thinp.h, the control socket).
 * Each operation is one request there, so `pool status|extend`, the pool messages and
 * `thin status` print what they print on a pool they open themselves (the texts are the
 * same libthinp status lines; --fields parses them as the kernel's). IO is the holder's
 * alone. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"
#include "dm/dm_backend.h"

struct control_pool {
	struct backend_pool base;
	char sock[PATH_MAX];
};

static struct control_pool *ctl(struct backend_pool *p)
{
	return (struct control_pool *)p;
}

int backend_control_path(const char *dir, char *sock, size_t len)
{
	int n = snprintf(sock, len, "%s/control", dir);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* backend_control_request, reporting nothing when QUIET; *STATUS (may be NULL) gets the
 * server's refusal. */
static int call(const char *cmd, const char *sock, const char *req, char *text, size_t len,
                bool quiet, int *status)
{
	int st = 0;
	char reply[THINP_CONTROL_MAX_REPLY];
	int r = thinp_control_call(sock, req, &st, reply, sizeof(reply));
	if (status)
		*status = r ? 0 : st;
	if (r || st) {
		if (!quiet)
			cli_err(cmd, "%s", *reply ? reply : strerror(-(r ? r : st)));
		return 1;
	}
	if (text)
		snprintf(text, len, "%s", reply);
	return 0;
}

int backend_control_request(const char *cmd, const char *sock, const char *req, char *text,
                            size_t len)
{
	return call(cmd, sock, req, text, len, false, NULL);
}

int backend_control_snap_hold(const char *cmd, const char *sock, bool quiet,
                              struct thinp_pool_status *st, bool *ours)
{
	char text[THINP_CONTROL_MAX_REPLY];
	int refused;
	*ours = call(cmd, sock, "reserve_metadata_snap", NULL, 0, true, &refused) == 0;
	if (call(cmd, sock, "status", text, sizeof(text), quiet, NULL))
		goto fail;
	if (tdm_parse_pool_status(text, st)) {
		if (!quiet)
			cli_err(cmd, "cannot parse the pool status '%s' from %s", text, sock);
		goto fail;
	}
	/* a snapshot someone else holds does as well (it does not change either) */
	if (st->held_root)
		return 0;
	if (!quiet)
		cli_err(cmd, "%s: cannot reserve a metadata snapshot of the open pool: %s", sock,
		        refused ? strerror(-refused) : "none is held after reserving one");
fail:
	if (*ours)
		backend_control_snap_release(cmd, sock, quiet);
	*ours = false;
	return 1;
}

int backend_control_snap_release(const char *cmd, const char *sock, bool quiet)
{
	return call(cmd, sock, "release_metadata_snap", NULL, 0, quiet, NULL);
}

/* REQ (printf-formatted) on P's socket; its text into TEXT (may be NULL). */
static int request(struct backend_pool *p, char *text, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int request(struct backend_pool *p, char *text, size_t len, const char *fmt, ...)
{
	char req[THINP_CONTROL_MAX_REQUEST + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	return backend_control_request(p->args->cmd, ctl(p)->sock, req, text, len);
}

int backend_control_open(struct cli_pool_args *a, struct backend_pool **out)
{
	struct control_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return cli_fail(a->cmd, "out of memory");
	int status;
	char reply[THINP_CONTROL_MAX_REPLY];
	/* an answer of any kind means a holder serves the pool; the status is its business */
	if (backend_control_path(a->pool, p->sock, sizeof(p->sock)) ||
	    thinp_control_call(p->sock, "status noflush", &status, reply, sizeof(reply))) {
		free(p);
		return -1;
	}
	p->base.ops = &backend_control_ops;
	p->base.args = a;
	*out = &p->base;
	return 0;
}

static int ctl_close(struct backend_pool *p, int rc)
{
	free(ctl(p));
	return rc;
}

static int note(const struct cli_pool_args *a)
{
	cli_err(a->cmd,
	        "nothing to do for the userspace backend (it has no device nodes: thin devices "
	        "are reached with thinp read/write/discard); --backend kernel does this on the "
	        "kernel");
	return 0;
}

static int ctl_pool_status(struct backend_pool *p, bool noflush, struct thinp_pool_status *st,
                           char *line, size_t len)
{
	char text[THINP_CONTROL_MAX_REPLY];
	int r = request(p, text, sizeof(text), "status%s", noflush ? " noflush" : "");
	if (r)
		return r;
	if (st && tdm_parse_pool_status(text, st))
		return cli_fail(p->args->cmd, "cannot parse the pool status '%s' from %s", text,
		                ctl(p)->sock);
	if (line)
		snprintf(line, len, "%s", text);
	return 0;
}

static int ctl_pool_remove(struct backend_pool *p, bool deferred)
{
	(void)deferred;
	return note(p->args);
}

static int ctl_pool_extend(struct backend_pool *p, uint64_t data_bytes, uint64_t meta_bytes)
{
	int r = data_bytes ? request(p, NULL, 0, "extend data %llu",
	                             (unsigned long long)data_bytes) :
	                     0;
	if (!r && meta_bytes)
		r = request(p, NULL, 0, "extend metadata %llu", (unsigned long long)meta_bytes);
	return r;
}

static int ctl_thin_create(struct backend_pool *p, uint64_t id)
{
	return request(p, NULL, 0, "create_thin %llu", (unsigned long long)id);
}

static int ctl_thin_snap(struct backend_pool *p, uint64_t id, uint64_t origin)
{
	return request(p, NULL, 0, "create_snap %llu %llu", (unsigned long long)id,
	               (unsigned long long)origin);
}

static int ctl_thin_delete(struct backend_pool *p, uint64_t id)
{
	return request(p, NULL, 0, "delete %llu", (unsigned long long)id);
}

/* libthinp's thin status reads the open transaction: NOFLUSH changes nothing. */
static int ctl_thin_status(struct backend_pool *p, uint64_t id, const char *dm_name, bool noflush,
                           struct thinp_thin_status *st, char *line, size_t len)
{
	(void)dm_name;
	(void)noflush;
	char text[THINP_CONTROL_MAX_REPLY];
	int r = request(p, text, sizeof(text), "thin_status %llu", (unsigned long long)id);
	if (r)
		return r;
	if (st && tdm_parse_thin_status(text, st))
		return cli_fail(p->args->cmd, "cannot parse the thin status '%s' from %s", text,
		                ctl(p)->sock);
	if (line)
		snprintf(line, len, "%s", text);
	return 0;
}

static int ctl_thin_activate(struct backend_pool *p, uint64_t id, uint64_t size,
                             const char *dm_name, char *dev, size_t len)
{
	(void)size;
	if (len)
		*dev = '\0';
	int r = ctl_thin_status(p, id, dm_name, false, NULL, NULL, 0);
	return r ? r : note(p->args);
}

static int ctl_thin_remove(struct backend_pool *p, uint64_t id, const char *dm_name, bool deferred)
{
	(void)deferred;
	int r = ctl_thin_status(p, id, dm_name, false, NULL, NULL, 0);
	return r ? r : note(p->args);
}

static int ctl_set_transaction_id(struct backend_pool *p, uint64_t old, uint64_t next)
{
	return request(p, NULL, 0, "set_transaction_id %llu %llu", (unsigned long long)old,
	               (unsigned long long)next);
}

static int ctl_metadata_snap(struct backend_pool *p, bool reserve)
{
	return request(p, NULL, 0, "%s_metadata_snap", reserve ? "reserve" : "release");
}

const struct backend_ops backend_control_ops = {
	.name = "user (through the holder's control socket)",
	.caps = 0,
	.close = ctl_close,
	.pool_remove = ctl_pool_remove,
	.pool_status = ctl_pool_status,
	.pool_extend = ctl_pool_extend,
	.thin_create = ctl_thin_create,
	.thin_snap = ctl_thin_snap,
	.thin_delete = ctl_thin_delete,
	.thin_status = ctl_thin_status,
	.thin_activate = ctl_thin_activate,
	.thin_remove = ctl_thin_remove,
	.set_transaction_id = ctl_set_transaction_id,
	.metadata_snap = ctl_metadata_snap,
};
