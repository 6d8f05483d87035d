/* The thin-pool and thin targets: pool creation, its table, growth by suspend -> reload ->
 * resume, pool messages, status, thin activation and the search for a pool's active thins. */
#include <errno.h>
#include <inttypes.h>
#include <libdevmapper.h>
#include <stdio.h>
#include <string.h>

#include "dm/dm_internal.h"

/* ---- thin-pool ---- */

int tdm_pool_create(struct tdm_ctx *c, const char *name, const char *meta_dev, const char *data_dev,
                    uint64_t data_sectors, const struct thinp_pool_opts *o)
{
	if (!tdm_valid_name(name))
		return tdm_fail(c, EINVAL,
		                "invalid pool name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -",
		                name);
	char params[1024];
	if (tdm_pool_params(meta_dev, data_dev, o, params, sizeof(params)))
		return tdm_fail(c, ENAMETOOLONG, "create pool %s: device paths too long", name);
	uint32_t bs = o->block_sectors ? o->block_sectors : 128;
	if (data_sectors < bs)
		return tdm_fail(
		        c, EINVAL,
		        "create pool %s: the data device (%llu sectors) is smaller than one "
		        "block (%u sectors)",
		        name, (unsigned long long)data_sectors, bs);
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_CREATE, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 32];
	snprintf(what, sizeof(what), "create pool %s", name);
	int r;
	if (!dm_task_add_target(dmt, 0, data_sectors, "thin-pool", params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = tdm_run(c, dmt, OP_CREATE, true, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_pool_table(struct tdm_ctx *c, const char *pool, struct tdm_pool_table *t)
{
	struct tdm_target tg;
	int r = tdm_one_target(c, DM_DEVICE_TABLE, pool, false, &tg);
	if (r)
		return r;
	if (strcmp(tg.type, "thin-pool"))
		return tdm_fail(c, EINVAL, "'%s' is not a thin pool (its target is %s)", pool,
		                tg.type);
	t->data_sectors = tg.length;
	if (tdm_parse_pool_params(tg.params, t))
		return tdm_fail(c, EINVAL, "table of %s: cannot parse '%s'", pool, tg.params);
	return 0;
}

static int reload(struct tdm_ctx *c, const char *name, uint64_t length, const char *type,
                  const char *params)
{
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_RELOAD, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "reload %s", name);
	int r;
	if (!dm_task_add_target(dmt, 0, length, type, params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = tdm_run(c, dmt, OP_RELOAD, false, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_pool_grow(struct tdm_ctx *c, const char *pool, uint64_t data_sectors)
{
	struct tdm_target tg;
	int r = tdm_one_target(c, DM_DEVICE_TABLE, pool, false, &tg);
	if (r)
		return r;
	if (strcmp(tg.type, "thin-pool"))
		return tdm_fail(c, EINVAL, "'%s' is not a thin pool (its target is %s)", pool,
		                tg.type);
	uint64_t len = data_sectors ? data_sectors : tg.length;
	if (len < tg.length)
		return tdm_fail(c, EINVAL,
		                "grow %s: a thin pool cannot shrink (%llu sectors now, %llu asked)",
		                pool, (unsigned long long)tg.length, (unsigned long long)len);
	/* suspend -> reload -> resume, as Docker's ResizePool did: the resume swaps in the
	 * new table and the pool's preresume grows the data (and metadata) space maps */
	if ((r = tdm_suspend(c, pool)))
		return r;
	r = reload(c, pool, len, "thin-pool", tg.params);
	struct tdm_ctx rc = *c;
	int r2 = tdm_resume(&rc, pool);
	if (r)
		return r; /* the old table is live again (if the resume worked) */
	if (r2) {
		*c = rc;
		return r2;
	}
	return 0;
}

/* ---- messages ---- */

static int message(struct tdm_ctx *c, const char *pool, const char *msg, enum tdm_op op)
{
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_TARGET_MSG, pool);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 128];
	snprintf(what, sizeof(what), "%s on pool %s", msg, pool);
	int r;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg))
		r = tdm_fail(c, ENOMEM, "%s: cannot build the message", what);
	else
		r = tdm_run(c, dmt, op, false, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_create_thin(struct tdm_ctx *c, const char *pool, uint64_t id)
{
	char m[64];
	snprintf(m, sizeof(m), "create_thin %" PRIu64, id);
	return message(c, pool, m, OP_CREATE_THIN);
}

int tdm_create_snap(struct tdm_ctx *c, const char *pool, uint64_t id, uint64_t origin)
{
	enum {
		MAX_ACTIVE = 16
	};
	char names[MAX_ACTIVE][TDM_NAME_MAX];
	int nr = 0, r = tdm_find_thins(c, pool, origin, names, MAX_ACTIVE, &nr);
	if (r)
		return r;
	if (nr > MAX_ACTIVE)
		return tdm_fail(c, EBUSY,
		                "create_snap: origin %llu has %d active devices (at most %d)",
		                (unsigned long long)origin, nr, MAX_ACTIVE);
	int suspended = 0;
	for (; suspended < nr; suspended++)
		if ((r = tdm_suspend(c, names[suspended])))
			break;
	if (!r) {
		char m[96];
		snprintf(m, sizeof(m), "create_snap %" PRIu64 " %" PRIu64, id, origin);
		r = message(c, pool, m, OP_CREATE_SNAP);
	}
	for (int i = 0; i < suspended; i++) {
		struct tdm_ctx rc = *c;
		int r2 = tdm_resume(&rc, names[i]);
		if (r2 && !r) {
			*c = rc;
			r = r2;
		}
	}
	return r;
}

int tdm_delete_thin(struct tdm_ctx *c, const char *pool, uint64_t id)
{
	char m[64];
	snprintf(m, sizeof(m), "delete %" PRIu64, id);
	return message(c, pool, m, OP_DELETE);
}

int tdm_set_transaction_id(struct tdm_ctx *c, const char *pool, uint64_t cur, uint64_t next)
{
	char m[96];
	snprintf(m, sizeof(m), "set_transaction_id %" PRIu64 " %" PRIu64, cur, next);
	return message(c, pool, m, OP_SET_TRANS);
}

int tdm_reserve_metadata_snap(struct tdm_ctx *c, const char *pool)
{
	return message(c, pool, "reserve_metadata_snap", OP_RESERVE);
}

int tdm_release_metadata_snap(struct tdm_ctx *c, const char *pool)
{
	return message(c, pool, "release_metadata_snap", OP_RELEASE);
}

/* ---- status ---- */

/* The status of NAME, whose one target must be a TYPE (NOUN in the message); its text into
 * LINE unless that is NULL. */
static int typed_status(struct tdm_ctx *c, const char *name, bool noflush, const char *type,
                        const char *noun, struct tdm_target *t, char *line, size_t len)
{
	int r = tdm_one_target(c, DM_DEVICE_STATUS, name, noflush, t);
	if (r)
		return r;
	if (strcmp(t->type, type))
		return tdm_fail(c, EINVAL, "'%s' is not %s (its target is %s)", name, noun,
		                t->type);
	if (line)
		snprintf(line, len, "%s", t->params);
	return 0;
}

int tdm_pool_status(struct tdm_ctx *c, const char *pool, bool noflush, struct thinp_pool_status *st,
                    char *line, size_t len)
{
	struct tdm_target t;
	int r = typed_status(c, pool, noflush, "thin-pool", "a thin pool", &t, line, len);
	if (r)
		return r;
	if (st && tdm_parse_pool_status(t.params, st))
		return tdm_fail(c, EPROTO, "status of %s: cannot parse '%s'", pool, t.params);
	return 0;
}

int tdm_thin_status(struct tdm_ctx *c, const char *name, bool noflush, struct thinp_thin_status *st,
                    char *line, size_t len)
{
	struct tdm_target t;
	int r = typed_status(c, name, noflush, "thin", "a thin device", &t, line, len);
	if (r)
		return r;
	if (st) {
		r = tdm_parse_thin_status(t.params, st);
		if (r == -EIO)
			return tdm_fail(c, EIO, "status of %s: the pool has failed (Fail)", name);
		if (r == -ENODEV)
			return tdm_fail(c, ENODEV,
			                "status of %s: its thin device is no longer in the pool (status '-'); "
			                "remove the device with `dmsetup remove %s`", name, name);
		if (r == -EREMOTEIO)
			return tdm_fail(c, EIO,
			                "status of %s: the kernel could not read its mapping counts (Error); "
			                "see the kernel log and check the pool's metadata", name);
		if (r)
			return tdm_fail(c, EPROTO, "status of %s: cannot parse '%s'", name,
			                t.params);
	}
	return 0;
}

/* ---- thin devices ---- */

int tdm_thin_activate(struct tdm_ctx *c, const char *pool, const char *name, uint64_t id,
                      uint64_t size_sectors)
{
	if (!tdm_valid_name(name))
		return tdm_fail(c, EINVAL,
		                "invalid device name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -",
		                name);
	if (!size_sectors)
		return tdm_fail(c, EINVAL, "activate %s: the size must be at least one sector",
		                name);
	struct tdm_info pi;
	int r = tdm_need_device(c, pool, "the pool", &pi);
	if (r)
		return r;
	char params[64];
	if (tdm_thin_params(pi.major, pi.minor, id, params, sizeof(params)))
		return tdm_fail(c, ENAMETOOLONG, "activate %s: thin table too long", name);
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_CREATE, name);
	if (!dmt)
		return -c->err;
	char what[2 * TDM_NAME_MAX + 64];
	snprintf(what, sizeof(what), "activate thin %llu of pool %s as %s", (unsigned long long)id,
	         pool, name);
	if (!dm_task_add_target(dmt, 0, size_sectors, "thin", params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = tdm_run(c, dmt, OP_ACTIVATE_THIN, true, 0, what);
	dm_task_destroy(dmt);
	return r;
}

/* Active thin devices of POOL; ID < 0 matches every id. */
static int pool_thins(struct tdm_ctx *c, const char *pool, int64_t id, char (*names)[TDM_NAME_MAX],
                      int max, int *nr)
{
	*nr = 0;
	struct tdm_info pi;
	int r = tdm_need_device(c, pool, "the pool", &pi);
	if (r)
		return r;
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_LIST, NULL);
	if (!dmt)
		return -c->err;
	if ((r = tdm_run(c, dmt, OP_LIST, false, 0, "list devices"))) {
		dm_task_destroy(dmt);
		return r;
	}
	struct dm_names *n = dm_task_get_names(dmt);
	for (; n && n->dev; n = n->next ? (struct dm_names *)((char *)n + n->next) : NULL) {
		struct tdm_ctx sub = { .verbose = c->verbose };
		struct tdm_target t;
		/* devices that vanish or have no table meanwhile are not ours to report */
		if (tdm_one_target(&sub, DM_DEVICE_TABLE, n->name, false, &t) || strcmp(t.type, "thin"))
			continue;
		struct tdm_thin_table tt;
		if (tdm_parse_thin_params(t.params, &tt) || tt.pool_major != pi.major ||
		    tt.pool_minor != pi.minor || (id >= 0 && tt.id != (uint64_t)id))
			continue;
		if (*nr < max)
			snprintf(names[*nr], TDM_NAME_MAX, "%s", n->name);
		(*nr)++;
	}
	dm_task_destroy(dmt);
	c->err = 0;
	return 0;
}

int tdm_find_thins(struct tdm_ctx *c, const char *pool, uint64_t id, char (*names)[TDM_NAME_MAX],
                   int max, int *nr)
{
	if (id > 0xFFFFFF)
		return tdm_fail(c, EINVAL, "invalid device id %llu: ids are 24-bit",
		                (unsigned long long)id);
	return pool_thins(c, pool, (int64_t)id, names, max, nr);
}

int tdm_pool_thins(struct tdm_ctx *c, const char *pool, char (*names)[TDM_NAME_MAX], int max,
                   int *nr)
{
	return pool_thins(c, pool, -1, names, max, nr);
}
