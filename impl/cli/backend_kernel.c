/* The kernel backend: the same commands drive the kernel's dm-thin through libdevmapper
 * (impl/dm/dm_backend.h). Pool messages go to the pool device, status comes from the
 * kernel's INFO lines parsed into libthinp's own structs, thin devices are activated as
 * /dev/mapper/NAME; IO is not ours: the thins are block devices (dd, blkdiscard, fio).
 * Bringing pools up and growing them is backend_kernel_pool.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/backend_kernel.h"
#include "cli/cli_msg.h"

static struct kernel_pool *kernel(struct backend_pool *p)
{
	return (struct kernel_pool *)p;
}

int kernel_fail(const struct cli_pool_args *a, const struct tdm_ctx *c)
{
	return cli_fail(a->cmd, "%s", c->msg);
}

int kernel_ready(struct tdm_ctx *c, const struct cli_pool_args *a)
{
	memset(c, 0, sizeof(*c));
	c->verbose = a->verbose;
	if (!tdm_available(c))
		return 0;
	/* about the host, not the command: the bare "thinp: " shape */
	return cli_fail(NULL, "%s", c->msg);
}

bool backend_dm_name_ok(const char *name)
{
	return tdm_valid_name(name);
}

int backend_kernel_refuse_dir(const char *cmd, const char *dir)
{
	char path[PATH_MAX], name[TDM_NAME_MAX];
	snprintf(path, sizeof(path), "%s/kernel.json", dir);
	struct tdm_ctx c = { 0 };
	struct tdm_info info;
	if (access(path, F_OK) || tdm_available(&c) || tdm_dir_name(&c, dir, name, sizeof(name)) ||
	    tdm_info(&c, name, &info) || !info.exists)
		return 0;
	return cli_fail(cmd,
	                "%s is active on the kernel as /dev/mapper/%s: use --backend kernel, or "
	                "deactivate it first (thinp --backend kernel pool remove %s)",
	                dir, name, dir);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* Every kernel command on an existing pool starts here. */
static int kernel_open(struct cli_pool_args *a, struct backend_pool **out)
{
	struct kernel_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return cli_fail(a->cmd, "out of memory");
	p->base.ops = &backend_kernel_ops;
	p->base.args = a;
	int r = kernel_ready(&p->c, a);
	if (!r && is_dir(a->pool)) {
		p->dir = a->pool;
		if (tdm_dir_name(&p->c, a->pool, p->name, sizeof(p->name)))
			r = kernel_fail(a, &p->c);
	} else if (!r && !tdm_valid_name(a->pool)) {
		r = cli_usage(a->cmd,
		              "'%s' is neither a pool directory nor a device-mapper name "
		              "(" BACKEND_DM_NAME_RULE ")",
		              a->pool);
	} else if (!r) {
		snprintf(p->name, sizeof(p->name), "%s", a->pool);
	}
	if (r) {
		free(p);
		return r;
	}
	*out = &p->base;
	return 0;
}

static int kernel_close(struct backend_pool *p, int rc)
{
	free(kernel(p));
	return rc;
}

/* pool remove: deactivate (loop-lvm loops detach themselves). */
static int kernel_pool_remove(struct backend_pool *bp, bool deferred)
{
	struct kernel_pool *p = kernel(bp);
	if (!tdm_remove(&p->c, p->name, deferred ? TDM_REMOVE_DEFERRED : 0))
		return 0;
	struct tdm_ctx e = p->c;
	char names[8][TDM_NAME_MAX];
	int nr = 0;
	if (p->c.err == EBUSY && !tdm_pool_thins(&e, p->name, names, 8, &nr) && nr) {
		char list[8 * (TDM_NAME_MAX + 1) + 8] = "";
		size_t n = 0;
		for (int i = 0; i < nr && i < 8; i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, " %s", names[i]);
		return cli_fail(
		        bp->args->cmd,
		        "%s; its thin devices still active:%s%s (thinp --backend kernel thin "
		        "remove)",
		        p->c.msg, list, nr > 8 ? " ..." : "");
	}
	return kernel_fail(bp->args, &p->c);
}

static int kernel_pool_status(struct backend_pool *bp, bool noflush, struct thinp_pool_status *st,
                              char *line, size_t len)
{
	struct kernel_pool *p = kernel(bp);
	struct thinp_pool_status own;
	char own_line[512];
	if (tdm_pool_status(&p->c, p->name, noflush, st ? st : &own, line ? line : own_line,
	                    line ? len : sizeof(own_line)))
		return kernel_fail(bp->args, &p->c);
	return 0;
}

static int kernel_thin_create(struct backend_pool *bp, uint64_t id)
{
	struct kernel_pool *p = kernel(bp);
	return tdm_create_thin(&p->c, p->name, id) ? kernel_fail(bp->args, &p->c) : 0;
}

static int kernel_thin_snap(struct backend_pool *bp, uint64_t id, uint64_t origin)
{
	struct kernel_pool *p = kernel(bp);
	return tdm_create_snap(&p->c, p->name, id, origin) ? kernel_fail(bp->args, &p->c) : 0;
}

static int kernel_thin_delete(struct backend_pool *bp, uint64_t id)
{
	struct kernel_pool *p = kernel(bp);
	return tdm_delete_thin(&p->c, p->name, id) ? kernel_fail(bp->args, &p->c) : 0;
}

/* The default name of an activated thin: the pool's name without a trailing "-pool",
 * then "-ID" (Docker names its devices docker-<maj>:<min>-<inode>-<hash>). */
static void thin_name(const char *pool, uint64_t id, char *out, size_t len)
{
	size_t n = strlen(pool);
	if (n > 5 && !strcmp(pool + n - 5, "-pool"))
		n -= 5;
	snprintf(out, len, "%.*s-%llu", (int)n, pool, (unsigned long long)id);
}

static int kernel_thin_activate(struct backend_pool *bp, uint64_t id, uint64_t size,
                                const char *dm_name, char *dev, size_t len)
{
	struct kernel_pool *p = kernel(bp);
	char name[TDM_NAME_MAX];
	if (dm_name)
		snprintf(name, sizeof(name), "%s", dm_name);
	else
		thin_name(p->name, id, name, sizeof(name));
	if (tdm_thin_activate(&p->c, p->name, name, id, size / 512))
		return kernel_fail(bp->args, &p->c);
	snprintf(dev, len, "/dev/mapper/%s", name);
	return 0;
}

enum {
	MAX_ACTIVE = 16 /* active devices of one thin that status/remove look at */
};

/* The device DM_NAME, else the active devices of ID: at least one, or 1 (reported;
 * FOR_STATUS says why status needs one). */
static int active_devices(struct kernel_pool *p, uint64_t id, const char *dm_name, bool for_status,
                          char (*names)[TDM_NAME_MAX], int *nr)
{
	const struct cli_pool_args *a = p->base.args;
	*nr = 0;
	if (dm_name) {
		snprintf(names[0], TDM_NAME_MAX, "%s", dm_name);
		*nr = 1;
	} else if (tdm_find_thins(&p->c, p->name, id, names, MAX_ACTIVE, nr)) {
		return kernel_fail(a, &p->c);
	}
	if (*nr)
		return 0;
	return cli_fail(a->cmd,
	                "thin device %llu of pool %s is not active%s (thinp --backend kernel thin "
	                "activate %s %llu SIZE)",
	                (unsigned long long)id, p->name,
	                for_status ? ": the kernel reports status only for active devices" : "",
	                a->pool, (unsigned long long)id);
}

static int kernel_thin_status(struct backend_pool *bp, uint64_t id, const char *dm_name,
                              bool noflush, struct thinp_thin_status *st, char *line, size_t len)
{
	struct kernel_pool *p = kernel(bp);
	char names[MAX_ACTIVE][TDM_NAME_MAX];
	int nr, r = active_devices(p, id, dm_name, true, names, &nr);
	if (r)
		return r;
	struct thinp_thin_status own;
	char own_line[256];
	if (tdm_thin_status(&p->c, names[0], noflush, st ? st : &own, line ? line : own_line,
	                    line ? len : sizeof(own_line)))
		return kernel_fail(bp->args, &p->c);
	return 0;
}

static int kernel_thin_remove(struct backend_pool *bp, uint64_t id, const char *dm_name,
                              bool deferred)
{
	struct kernel_pool *p = kernel(bp);
	char names[MAX_ACTIVE][TDM_NAME_MAX];
	int nr, rc = active_devices(p, id, dm_name, false, names, &nr);
	if (rc)
		return rc;
	for (int i = 0; i < nr && i < MAX_ACTIVE; i++)
		if (tdm_remove(&p->c, names[i], deferred ? TDM_REMOVE_DEFERRED : 0))
			rc = kernel_fail(bp->args, &p->c);
	return rc;
}

static int kernel_set_transaction_id(struct backend_pool *bp, uint64_t old, uint64_t next)
{
	struct kernel_pool *p = kernel(bp);
	return tdm_set_transaction_id(&p->c, p->name, old, next) ? kernel_fail(bp->args, &p->c) : 0;
}

static int kernel_metadata_snap(struct backend_pool *bp, bool reserve)
{
	struct kernel_pool *p = kernel(bp);
	int r = reserve ? tdm_reserve_metadata_snap(&p->c, p->name) :
	                  tdm_release_metadata_snap(&p->c, p->name);
	return r ? kernel_fail(bp->args, &p->c) : 0;
}

const struct backend_ops backend_kernel_ops = {
	.name = "kernel",
	.caps = BACKEND_EXTEND_TO_DEVICES,
	.pool_create = kernel_pool_create,
	.pool_activate = kernel_pool_activate,
	.open = kernel_open,
	.close = kernel_close,
	.pool_remove = kernel_pool_remove,
	.pool_status = kernel_pool_status,
	.pool_extend = kernel_pool_extend,
	.thin_create = kernel_thin_create,
	.thin_snap = kernel_thin_snap,
	.thin_delete = kernel_thin_delete,
	.thin_status = kernel_thin_status,
	.thin_activate = kernel_thin_activate,
	.thin_remove = kernel_thin_remove,
	.set_transaction_id = kernel_set_transaction_id,
	.metadata_snap = kernel_metadata_snap,
};
