/* What the pool commands drive, behind one table of operations:
 *   backend_lib_ops     libthinp on files or block devices (the default), through
 *                       the public API of thinp.h only;
 *   backend_kernel_ops  the kernel's dm-thin through libdevmapper (impl/dm/): the pool is
 *                       a device-mapper device /dev/mapper/NAME, named on the command
 *                       line either as NAME (direct: `pool create NAME --data DEV
 *                       --metadata DEV`) or as a loop-lvm directory DIR (DIR/data and
 *                       DIR/metadata attached to loop devices, Docker's loop-lvm;
 *                       DIR/kernel.json remembers the pool's name, DIR/table its
 *                       features).
 * A command parses its arguments, opens the pool, calls one operation and closes it,
 * like one dmsetup message or one IO against the kernel's pool. Every operation
 * reports its own failure (cli_msg.h, naming args->cmd) and returns 0, or the exit
 * status: 1 failure, 2 usage error. */
#ifndef THINP_CLI_BACKEND_H
#define THINP_CLI_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli_pool_args.h"
#include "thinp.h"

/* An open pool; each backend's own handle starts with this. */
struct backend_pool {
	const struct backend_ops *ops;
	struct cli_pool_args *args; /* the command line that named it */
};
/* A thin device open for IO (backends with BACKEND_IO). */
struct backend_thin;

/* What a backend can do beyond the common operations. */
enum backend_caps {
	BACKEND_IO = 1u << 0, /* read/write/discard (the kernel's thins are block devices) */
	/* pool extend without sizes: the pool takes what its devices have grown to */
	BACKEND_EXTEND_TO_DEVICES = 1u << 1,
};

struct backend_ops {
	const char *name;
	unsigned caps;

	/* Pools that are not open yet. DEV (LEN bytes) gets the device node made, or ""
	 * (the userspace backend has none). pool_create sizes: A->data_size and
	 * A->meta_size (0: the defaults), A->force to format over an existing pool. */
	int (*pool_create)(struct cli_pool_args *a, char *dev, size_t len);
	int (*pool_activate)(struct cli_pool_args *a, char *dev, size_t len);

	/* Open the existing pool A names; close with the command's exit status RC
	 * (returns it, or 1 if closing failed). */
	int (*open)(struct cli_pool_args *a, struct backend_pool **out);
	int (*close)(struct backend_pool *p, int rc);

	int (*pool_remove)(struct backend_pool *p, bool deferred);
	/* ST (or NULL) gets the parsed status, LINE (or NULL) the kernel's INFO text. */
	int (*pool_status)(struct backend_pool *p, bool noflush, struct thinp_pool_status *st,
	                   char *line, size_t len);
	/* Grow the data and/or the metadata device to these bytes (0: unchanged). */
	int (*pool_extend)(struct backend_pool *p, uint64_t data_bytes, uint64_t meta_bytes);

	int (*thin_create)(struct backend_pool *p, uint64_t id);
	int (*thin_snap)(struct backend_pool *p, uint64_t id, uint64_t origin);
	int (*thin_delete)(struct backend_pool *p, uint64_t id);
	/* DM_NAME (or NULL: any active device of ID) for the kernel backend. */
	int (*thin_status)(struct backend_pool *p, uint64_t id, const char *dm_name, bool noflush,
	                   struct thinp_thin_status *st, char *line, size_t len);
	/* SIZE bytes; DM_NAME or NULL (a default name); DEV as for pool_create. */
	int (*thin_activate)(struct backend_pool *p, uint64_t id, uint64_t size,
	                     const char *dm_name, char *dev, size_t len);
	int (*thin_remove)(struct backend_pool *p, uint64_t id, const char *dm_name, bool deferred);

	/* Every thin's usage (thinp_thin_usage; free() *OUT) and the pool's block size. NULL
	 * where the metadata cannot be walked safely: the kernel's pool and a pool another
	 * process holds change it under a reader. */
	int (*thin_usage)(struct backend_pool *p, struct thinp_thin_usage **out, size_t *nr,
	                  uint32_t *block_sectors);
	int (*set_transaction_id)(struct backend_pool *p, uint64_t old, uint64_t next);
	int (*metadata_snap)(struct backend_pool *p, bool reserve);

	/* IO (BACKEND_IO), bounded by SIZE bytes (the thin's size, as a kernel table's). */
	int (*thin_open)(struct backend_pool *p, uint64_t id, uint64_t size,
	                 struct backend_thin **out);
	void (*thin_close)(struct backend_thin *t);
	int (*read)(struct backend_thin *t, void *buf, size_t len, uint64_t off);
	int (*write)(struct backend_thin *t, const void *buf, size_t len, uint64_t off);
	int (*discard)(struct backend_thin *t, uint64_t off, uint64_t len);
	int (*flush)(struct backend_thin *t);
};

extern const struct backend_ops backend_lib_ops;
/* The libthinp pool of P when backend_lib_ops opened it, else NULL: for a command that
 * hands the pool to a layer above libthinp (thinp expose, impl/graph). */
struct thinp_pool *backend_lib_pool(struct backend_pool *p);
extern const struct backend_ops backend_kernel_ops;
/* A userspace pool another process holds, reached through DIR/control (backend_control.c):
 * what the lib backend's open gives a command that allows it (A->via_control) when the
 * pool is busy. Commands call p->ops after open for this reason. No IO, no open. */
extern const struct backend_ops backend_control_ops;

/* The control socket of pool directory DIR into SOCK; -ENAMETOOLONG. */
int backend_control_path(const char *dir, char *sock, size_t len);
/* Open the pool A->pool names through its holder's socket: 0, or -1 when nobody answers
 * there (nothing reported: the caller reports why it could not open the pool), 1 (reported). */
int backend_control_open(struct cli_pool_args *a, struct backend_pool **out);
/* REQ on SOCK; its reply text into TEXT (may be NULL). 0, or 1 with the refusal or the
 * transport's failure reported, naming CMD. */
int backend_control_request(const char *cmd, const char *sock, const char *req, char *text,
                            size_t len);
/* A metadata snapshot of the pool SOCK serves, for a reader of its metadata (thinp check
 * of a live pool): reserved, or the one already held (then *OURS is false). ST gets the
 * pool's status after it (held_root: the snapshot's block). 0, or 1 (reported unless
 * QUIET; nothing is left reserved). */
int backend_control_snap_hold(const char *cmd, const char *sock, bool quiet,
                              struct thinp_pool_status *st, bool *ours);
int backend_control_snap_release(const char *cmd, const char *sock, bool quiet);

static inline const struct backend_ops *backend_of(const struct cli_pool_args *a)
{
	return a->backend == CLI_BACKEND_KERNEL ? &backend_kernel_ops : &backend_lib_ops;
}

/* A device-mapper name thinp accepts (1-127 of A-Z a-z 0-9 . _ + : @ -). */
bool backend_dm_name_ok(const char *name);
#define BACKEND_DM_NAME_RULE "use 1-127 of A-Z a-z 0-9 . _ + : @ -"

/* 1 (reported, naming CMD) when the pool directory DIR is active on the kernel: libthinp
 * must not open it then, both would write the same metadata. 0 otherwise. */
int backend_kernel_refuse_dir(const char *cmd, const char *dir);

#endif
