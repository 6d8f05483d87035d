/* device-mapper devices, whatever their target: info, removal (deferred or not),
 * suspend/resume, and the single target of a table or status. */
#include <errno.h>
#include <libdevmapper.h>
#include <stdio.h>
#include <string.h>

#include "dm/dm_internal.h"

int tdm_info(struct tdm_ctx *c, const char *name, struct tdm_info *info)
{
	memset(info, 0, sizeof(*info));
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_INFO, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "info of %s", name);
	int r = tdm_run(c, dmt, OP_INFO, false, 0, what);
	struct dm_info i;
	if (!r && !dm_task_get_info(dmt, &i))
		r = tdm_fail(c, EIO, "%s: libdevmapper returned no info", what);
	if (!r && i.exists) {
		info->exists = true;
		info->suspended = i.suspended;
		info->live_table = i.live_table;
		info->deferred_remove = i.deferred_remove;
		info->open_count = i.open_count;
		info->major = i.major;
		info->minor = i.minor;
		info->event_nr = i.event_nr;
	}
	dm_task_destroy(dmt);
	return r;
}

/* A device that must exist: -ENXIO "no device-mapper device NAME (ROLE)" otherwise. */
int tdm_need_device(struct tdm_ctx *c, const char *name, const char *role,
                    struct tdm_info *info)
{
	struct tdm_info tmp;
	if (!info)
		info = &tmp;
	int r = tdm_info(c, name, info);
	if (r)
		return r;
	if (!info->exists)
		return tdm_fail(c, ENXIO, "no device-mapper device named '%s'%s%s%s", name,
		                role ? " (" : "", role ? role : "", role ? ")" : "");
	return 0;
}

int tdm_remove(struct tdm_ctx *c, const char *name, unsigned flags)
{
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_REMOVE, name);
	if (!dmt)
		return -c->err;
	bool deferred = flags & TDM_REMOVE_DEFERRED;
	if (deferred && !dm_task_deferred_remove(dmt)) {
		dm_task_destroy(dmt);
		return tdm_fail(c, EOPNOTSUPP, "remove %s: libdevmapper cannot defer removals",
		                name);
	}
	/* A deferred removal may leave the device in place: with udev, keep libdm from deleting
	 * the /dev/mapper node itself (Docker's RemoveDeviceDeferred). Without udev sync the
	 * library fallback is all there is. */
	uint16_t fl = deferred && dm_udev_get_sync_support() ? DM_UDEV_DISABLE_LIBRARY_FALLBACK : 0;
	char what[TDM_NAME_MAX + 32];
	snprintf(what, sizeof(what), "remove %s%s", name, deferred ? " (deferred)" : "");
	int r = tdm_run(c, dmt, OP_REMOVE, true, fl, what);
	dm_task_destroy(dmt);
	return r;
}

/* Only a resume takes a udev cookie: it is what makes udev (re)create the device node. */
static int suspend_resume(struct tdm_ctx *c, const char *name, bool resume)
{
	struct dm_task *dmt = tdm_task(c, resume ? DM_DEVICE_RESUME : DM_DEVICE_SUSPEND, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "%s %s", resume ? "resume" : "suspend", name);
	int r = tdm_run(c, dmt, resume ? OP_RESUME : OP_SUSPEND, resume, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_suspend(struct tdm_ctx *c, const char *name)
{
	return suspend_resume(c, name, false);
}

int tdm_resume(struct tdm_ctx *c, const char *name)
{
	return suspend_resume(c, name, true);
}

/* STATUS or TABLE of a single-target device. */
int tdm_one_target(struct tdm_ctx *c, int type, const char *name, bool noflush,
                   struct tdm_target *t)
{
	memset(t, 0, sizeof(*t));
	struct dm_task *dmt = tdm_task(c, type, name);
	if (!dmt)
		return -c->err;
	const char *kind = type == DM_DEVICE_STATUS ? "status" : "table";
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "%s of %s", kind, name);
	if (noflush && !dm_task_no_flush(dmt)) {
		dm_task_destroy(dmt);
		return tdm_fail(c, EINVAL, "%s: cannot set noflush", what);
	}
	int r = tdm_run(c, dmt, type == DM_DEVICE_STATUS ? OP_STATUS : OP_TABLE, false, 0, what);
	if (r) {
		dm_task_destroy(dmt);
		return r;
	}
	struct dm_info i;
	if (!dm_task_get_info(dmt, &i) || !i.exists) { /* libdm: ENXIO -> "does not exist" */
		dm_task_destroy(dmt);
		return tdm_fail(c, ENXIO, "%s: %s (%s)", what, tdm_meaning(OP_STATUS, ENXIO),
		                    strerror(ENXIO));
	}
	uint64_t start = 0, length = 0;
	char *ttype = NULL, *params = NULL;
	void *next = dm_get_next_target(dmt, NULL, &start, &length, &ttype, &params);
	if (!ttype) {
		r = tdm_fail(c, ENODATA, "%s: the device has no live table", what);
	} else if (next) {
		r = tdm_fail(c, EINVAL, "%s: more than one target (not a thin or thin-pool device)",
		             what);
	} else {
		t->start = start;
		t->length = length;
		snprintf(t->type, sizeof(t->type), "%s", ttype);
		snprintf(t->params, sizeof(t->params), "%s", params ? params : "");
	}
	dm_task_destroy(dmt);
	return r;
}


int tdm_cancel_deferred_remove(struct tdm_ctx *c, const char *name)
{
	struct dm_task *dmt = tdm_task(c, DM_DEVICE_TARGET_MSG, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 40];
	snprintf(what, sizeof(what), "cancel the deferred removal of %s", name);
	int r;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, "@cancel_deferred_remove"))
		r = tdm_fail(c, ENOMEM, "%s: cannot set the message", what);
	else
		r = tdm_run(c, dmt, OP_REMOVE, false, 0, what);
	dm_task_destroy(dmt);
	return r;
}

bool tdm_udev_sync_supported(void)
{
	dm_udev_set_sync_support(1);
	return dm_udev_get_sync_support() != 0;
}

void tdm_library_version(char *buf, size_t len)
{
	if (!dm_get_library_version(buf, len) && len)
		buf[0] = 0;
}
