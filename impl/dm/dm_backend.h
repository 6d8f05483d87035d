/* Kernel backend: the real dm-thin driven through libdevmapper, the way Docker's devmapper
 * graphdriver drove it (docs/dm-thin-behaviour.md, "Driving the kernel: the kernel backend").
 *
 * - thin-pool and thin devices are created with DM_DEVICE_CREATE and a one-target table:
 *     0 <data sectors> thin-pool <meta> <data> <block sectors> <low water> <#feat> <feat>...
 *     0 <size sectors> thin <pool maj:min> <dev id>
 * - pool messages (create_thin, create_snap, delete, set_transaction_id,
 *   reserve/release_metadata_snap) go to the pool at sector 0 (DM_DEVICE_TARGET_MSG);
 * - status INFO lines are parsed into libthinp's own struct thinp_pool_status /
 *   struct thinp_thin_status, so both backends report through the same types;
 * - growing the pool is suspend -> reload (same table, new length) -> resume;
 * - removal can be deferred (the kernel removes the device on its last close).
 *
 * libdevmapper returns only 0/1. Every call here returns 0 or a negative errno and, on
 * failure, leaves in the caller's struct tdm_ctx the errno and one sentence naming the
 * operation and the errno's meaning ("create_thin 1 on pool tp: device id already in use
 * (File exists)"). The errno comes from the ioctl (dm_task_get_errno), else from libdm's log
 * callback errno, else from libdm's log text ("File exists" -> EEXIST, as Docker did).
 * libdm's raw log lines are kept in ctx->log and printed only when ctx->verbose is set.
 *
 * No global state except the log-capture registry in dm_task.c (libdm's log callback has
 * no context argument). Calls are not meant to run concurrently on the same device names.
 * dm_internal.h lists the files. */
#ifndef THINP_DM_BACKEND_H
#define THINP_DM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thinp.h"

#define TDM_NAME_MAX 128 /* device-mapper names are < 128 bytes (DM_NAME_LEN) */

/* One per caller: options in, the last error out. */
struct tdm_ctx {
	int verbose;    /* in: 1 echoes libdm's log up to info level to stderr, 2 also debug */
	int err;        /* out: positive errno of the last failure, 0 after success */
	char msg[1024]; /* out: the last failure in one sentence */
	char log[2048]; /* out: libdm's own messages during the last failing call */
};

/* The message printed when the kernel has no device-mapper. */
#define TDM_NO_DM_MESSAGE                                                                    \
	"the kernel has no device-mapper (/dev/mapper/control is missing): use the default " \
	"userspace backend, or run inside the VM harness: make vm-test"

/* 0 if /dev/mapper/control exists; -ENODEV with TDM_NO_DM_MESSAGE otherwise. Call it before
 * anything else: libdm would otherwise try to create the control node itself. */
int tdm_available(struct tdm_ctx *c);

/* ---- devices ---- */
struct tdm_info {
	bool exists;
	bool suspended;
	bool live_table;
	bool deferred_remove; /* a deferred removal is pending (the device is still open) */
	int32_t open_count;
	uint32_t major, minor;
	uint32_t event_nr;
};
/* info->exists = false (and 0 returned) when there is no such device. */
int tdm_info(struct tdm_ctx *c, const char *name, struct tdm_info *info);

#define TDM_REMOVE_DEFERRED 1u /* remove on last close instead of failing with EBUSY */
int tdm_remove(struct tdm_ctx *c, const char *name, unsigned flags);
/* Cancel a pending deferred removal of NAME (the message "@cancel_deferred_remove"). */
int tdm_cancel_deferred_remove(struct tdm_ctx *c, const char *name);
int tdm_suspend(struct tdm_ctx *c, const char *name);
int tdm_resume(struct tdm_ctx *c, const char *name);

/* Ask libdevmapper to sync with udev and say whether it can (Docker's UdevSetSyncSupport:
 * false without udev, or with DM_DISABLE_UDEV set). */
bool tdm_udev_sync_supported(void);
/* libdevmapper's version string, e.g. "1.02.185 (2022-05-18)"; "" if it has none. */
void tdm_library_version(char *buf, size_t len);

/* ---- thin-pool ---- */
/* The thin-pool parameters "<meta> <data> <bs> <lw> <#feat> <feat>..." for table options O
 * (block size, low water, skip_block_zeroing, ignore_discard, no_discard_passdown,
 * error_if_no_space, read_only). Devices are paths or "maj:min". */
int tdm_pool_params(const char *meta_dev, const char *data_dev, const struct thinp_pool_opts *o,
                    char *buf, size_t len);

/* Create and activate /dev/mapper/NAME over META_DEV/DATA_DEV with DATA_SECTORS of data
 * (the table length; the kernel rounds down to whole blocks). A zeroed metadata superblock
 * is formatted by the kernel; an existing pool is opened. */
int tdm_pool_create(struct tdm_ctx *c, const char *name, const char *meta_dev, const char *data_dev,
                    uint64_t data_sectors, const struct thinp_pool_opts *o);

/* The pool's live table, parsed (devices as "maj:min"). */
struct tdm_pool_table {
	uint64_t data_sectors; /* table length */
	char meta_dev[32], data_dev[32];
	uint32_t meta_major, meta_minor, data_major, data_minor;
	struct thinp_pool_opts opts; /* block_sectors, low_water_blocks and the feature flags */
};
int tdm_pool_table(struct tdm_ctx *c, const char *pool, struct tdm_pool_table *t);

/* Grow the pool to DATA_SECTORS (0: keep the length, e.g. after the metadata device grew)
 * by suspend -> reload -> resume, the "increase capacity on a running device" path. The
 * data device must already be that big (loop-lvm: grow the file and set the loop capacity
 * first; direct-lvm: lvextend). On a reload failure the old table is resumed. */
int tdm_pool_grow(struct tdm_ctx *c, const char *pool, uint64_t data_sectors);

/* Pool messages, each sent at sector 0 (the kernel commits after each). */
int tdm_create_thin(struct tdm_ctx *c, const char *pool, uint64_t id);
/* Active devices of ORIGIN (found with tdm_find_thins) are suspended around the message,
 * as the kernel documentation asks and Docker did. */
int tdm_create_snap(struct tdm_ctx *c, const char *pool, uint64_t id, uint64_t origin);
int tdm_delete_thin(struct tdm_ctx *c, const char *pool, uint64_t id);
int tdm_set_transaction_id(struct tdm_ctx *c, const char *pool, uint64_t cur, uint64_t next);
int tdm_reserve_metadata_snap(struct tdm_ctx *c, const char *pool);
int tdm_release_metadata_snap(struct tdm_ctx *c, const char *pool);

/* `dmsetup status` of the pool: the INFO text (LINE, without the "start length thin-pool"
 * prefix; may be NULL) and its parse. Without NOFLUSH the kernel commits first. */
int tdm_pool_status(struct tdm_ctx *c, const char *pool, bool noflush, struct thinp_pool_status *st,
                    char *line, size_t len);

/* ---- thin devices ---- */
/* Activate /dev/mapper/NAME: "0 <size sectors> thin <pool maj:min> <id>". */
int tdm_thin_activate(struct tdm_ctx *c, const char *pool, const char *name, uint64_t id,
                      uint64_t size_sectors);
int tdm_thin_status(struct tdm_ctx *c, const char *name, bool noflush, struct thinp_thin_status *st,
                    char *line, size_t len);

/* Names of the active thin devices of POOL mapping device ID (up to MAX); *NR is the count
 * found (may exceed MAX). */
int tdm_find_thins(struct tdm_ctx *c, const char *pool, uint64_t id, char (*names)[TDM_NAME_MAX],
                   int max, int *nr);
/* Names of all active thin devices of POOL. */
int tdm_pool_thins(struct tdm_ctx *c, const char *pool, char (*names)[TDM_NAME_MAX], int max,
                   int *nr);

/* ---- table and status texts (dm_parse.c; no libdm, unit-testable) ---- */
/* Parse a thin-pool INFO line ("Fail" and "Error" give THINP_MODE_FAIL). -EINVAL if the text
 * is not a thin-pool status. */
int tdm_parse_pool_status(const char *line, struct thinp_pool_status *st);
/* Parse a thin INFO line ("<mapped sectors> <highest|->"); "Fail" gives -EIO. */
int tdm_parse_thin_status(const char *line, struct thinp_thin_status *st);
/* Parse thin-pool table params into T (devices must be "maj:min", as the kernel reports);
 * T->data_sectors (the table length) is kept. */
int tdm_parse_pool_params(const char *params, struct tdm_pool_table *t);

/* A thin target's table parameters: "<pool maj:min> <dev id> [<origin maj:min>]". */
struct tdm_thin_table {
	uint32_t pool_major, pool_minor;
	uint64_t id;
	bool has_origin; /* an external origin device */
	uint32_t origin_major, origin_minor;
};
/* "<pool maj:min> <id>" into BUF; -ENAMETOOLONG if LEN is too small. */
int tdm_thin_params(uint32_t pool_major, uint32_t pool_minor, uint64_t id, char *buf,
                    size_t len);
/* Parse thin table params as the kernel reports them; -EINVAL otherwise. */
int tdm_parse_thin_params(const char *params, struct tdm_thin_table *t);

/* A device-mapper name thinp accepts: 1..127 of [A-Za-z0-9._+:@-], not "." or "..". */
bool tdm_valid_name(const char *name);

/* ---- loop devices and block device sizes (dm_loop.c; no libdm) ---- */
/* Attach PATH to a free loop device, buffered like Docker's loop-lvm, with autoclear (it
 * detaches itself when its last user, e.g. the pool, closes it). *FD stays open so the loop
 * survives until the caller has handed it to the kernel; close it afterwards. */
int tdm_loop_attach(struct tdm_ctx *c, const char *path, char *dev, size_t len, int *fd);
/* `losetup -c`: re-read the backing file's size. */
int tdm_loop_set_capacity(struct tdm_ctx *c, const char *dev);
/* The loop device "/dev/loopN" behind MAJOR:MINOR and its backing file (either may be NULL);
 * -ENXIO if it is not a loop device. */
int tdm_loop_lookup(struct tdm_ctx *c, uint32_t major, uint32_t minor, char *dev, size_t dlen,
                    char *backing, size_t blen);
/* Size in 512-byte sectors of a block device given by path, or of MAJOR:MINOR (path NULL). */
int tdm_blockdev_sectors(struct tdm_ctx *c, const char *path, uint32_t major, uint32_t minor,
                         uint64_t *sectors);

/* ---- the loop-lvm directory of the CLI (dm_dir.c) ----
 * DIR/data and DIR/metadata are the sparse files (as in the userspace backend) and
 * DIR/kernel.json records the kernel pool: {"backend":"kernel","name":..,"device":..,
 * "data_loop":..,"metadata_loop":..}. The loops have autoclear set, so removing the pool
 * detaches them; kernel.json is then only the remembered name. */
int tdm_dir_save(struct tdm_ctx *c, const char *dir, const char *name, const char *data_loop,
                 const char *meta_loop);
/* The pool name in DIR/kernel.json; -ENOENT if DIR has none. */
int tdm_dir_name(struct tdm_ctx *c, const char *dir, char *name, size_t len);

/* Set the error (returns -err): for callers composing operations. */
int tdm_fail(struct tdm_ctx *c, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
