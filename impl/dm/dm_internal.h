/* The kernel backend's insides, shared by its files (not installed):
 *   dm_task.c    libdevmapper task plumbing: errors, libdm's log, running a task
 *   dm_device.c  device-mapper devices: info, remove, suspend/resume, a device's one target
 *   dm_pool.c    thin-pool and thin targets: create, table, grow, messages, status, activate
 *   dm_parse.c   table builders and table/status parsers (no libdevmapper)
 *   dm_loop.c    loop devices and block device sizes (no libdevmapper)
 *   dm_dir.c     DIR/kernel.json of the CLI's loop-lvm directory
 * Only the files that include <libdevmapper.h> use the task functions below. */
#ifndef THINP_DM_INTERNAL_H
#define THINP_DM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "dm/dm_backend.h"

struct dm_task;

/* What an operation was, for the errno's meaning in context. The messages are
 * OP_CREATE_THIN..OP_RELEASE (in that order). */
enum tdm_op {
	OP_CREATE,
	OP_REMOVE,
	OP_SUSPEND,
	OP_RESUME,
	OP_RELOAD,
	OP_STATUS,
	OP_TABLE,
	OP_INFO,
	OP_LIST,
	OP_CREATE_THIN,
	OP_CREATE_SNAP,
	OP_DELETE,
	OP_SET_TRANS,
	OP_RESERVE,
	OP_RELEASE,
	OP_ACTIVATE_THIN,
};

/* The single target of a device's table or status. */
struct tdm_target {
	uint64_t start, length; /* sectors */
	char type[32];
	char params[1024];
};

/* ---- dm_task.c ---- */
/* The errno's meaning for operation OP (dm-thin.c / dm-thin-metadata.c return codes), or
 * NULL when strerror() says it all. */
const char *tdm_meaning(enum tdm_op op, int err);
/* A libdm task of TYPE (DM_DEVICE_*) on NAME (may be NULL); NULL with C's error set. */
struct dm_task *tdm_task(struct tdm_ctx *c, int type, const char *name);
/* Run DMT, with a udev cookie when COOKIE; 0, or -errno with "WHAT: meaning" in C. */
int tdm_run(struct tdm_ctx *c, struct dm_task *dmt, enum tdm_op op, bool cookie,
            uint16_t udev_flags, const char *what);

/* ---- dm_device.c ---- */
/* A device that must exist: -ENXIO "no device-mapper device NAME (ROLE)" otherwise. */
int tdm_need_device(struct tdm_ctx *c, const char *name, const char *role,
                    struct tdm_info *info);
/* STATUS (DM_DEVICE_STATUS) or TABLE (DM_DEVICE_TABLE) of a single-target device. */
int tdm_one_target(struct tdm_ctx *c, int type, const char *name, bool noflush,
                   struct tdm_target *t);

#endif
