/* What the driver's files share: the driver's state and the backend table (a pool on
 * libthinp, or on dm-thin through libdevmapper). */
#ifndef THINP_GRAPH_INTERNAL_H
#define THINP_GRAPH_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/graph_meta.h"

#define TG_MAX_DEVICE_ID 0xffffffu /* thin ids are 24-bit (dm-thin's limit) */

/* The pool as the driver sees it: the status fields Docker reads, in blocks. */
struct tg_pool_info {
	uint64_t transaction_id;
	uint64_t data_used, data_total;   /* pool blocks */
	uint64_t meta_used, meta_total;   /* 4 KiB blocks */
	uint64_t block_bytes;
	char pool_name[128];
	char data_dev[PATH_MAX], meta_dev[PATH_MAX];   /* "Data file": a loop device, or "" */
	char data_file[PATH_MAX], meta_file[PATH_MAX]; /* "Data loop file", or "" */
	bool udev_sync;        /* "Udev Sync Supported": libdm syncs with udev (kernel backend) */
	char lib_version[64];  /* "Library Version": libdevmapper's, or "" (none printed) */
};

/* Errors: a negative errno; ERR gets the sentence. -EEXIST from a create is dm-thin's
 * "File exists" (Docker retries with another id), -EBUSY its "busy". */
struct tg_backend_ops {
	const char *name;
	int (*status)(void *be, struct tg_pool_info *st, char *err, size_t len);
	int (*create_thin)(void *be, uint64_t id, char *err, size_t len);
	int (*create_snap)(void *be, uint64_t id, uint64_t origin, char *err, size_t len);
	int (*delete_thin)(void *be, uint64_t id, char *err, size_t len);
	int (*set_transaction_id)(void *be, uint64_t cur, uint64_t next, char *err, size_t len);
	/* A block device of SIZE bytes for thin ID named NAME: DEV gets its path. Activating an
	 * active device gives its path again. */
	int (*activate)(void *be, const char *name, uint64_t id, uint64_t size, char *dev,
			size_t dlen, char *err, size_t len);
	/* -EBUSY while open; DEFERRED: remove it when its last opener closes (0). */
	int (*deactivate)(void *be, const char *name, bool deferred, char *err, size_t len);
	bool (*is_active)(void *be, const char *name);
	/* Freeze a device's IO (and its mounted file system, MOUNT may be NULL) across a
	 * snapshot of it, as dm suspend does. */
	int (*suspend)(void *be, const char *name, const char *mount, char *err, size_t len);
	int (*resume)(void *be, const char *name, const char *mount, char *err, size_t len);
	int (*resize_data)(void *be, uint64_t bytes, char *err, size_t len);
	/* Per-class IO counters into OUT (at most TG_CLASSES_MAX), zeroed after when RESET. */
	int (*stats)(void *be, bool reset, struct tg_class_count *out, size_t *nr, char *err,
		     size_t len);
	/* Retry deferred removals; returns how many are still pending. */
	int (*reap)(void *be);
	void (*close)(void *be);
};

struct tg_backend_args {
	const char *root;         /* ROOT */
	const char *pool_dir;     /* ROOT/devicemapper */
	const char *run_dir;      /* ROOT/thinbench (sockets, the FUSE mount) */
	const char *prefix;       /* docker-MAJ:MIN-INO */
	const struct tg_options *opt;
	FILE *log;
};

int tg_backend_lib_open(const struct tg_backend_args *a, const struct tg_backend_ops **ops,
			void **be, char *err, size_t len);
int tg_backend_kernel_open(const struct tg_backend_args *a, const struct tg_backend_ops **ops,
			   void **be, char *err, size_t len);

/* Device ids: a bitmap of 2^24 bits and the next id to try (Docker's deviceIDMap). */
struct tg_ids {
	uint8_t *map;
	uint32_t next;
};
int tg_ids_init(struct tg_ids *ids);
void tg_ids_free(struct tg_ids *ids);
void tg_ids_mark(struct tg_ids *ids, uint32_t id, bool used);
bool tg_ids_is_free(const struct tg_ids *ids, uint32_t id);
/* Advance NEXT, take the first free id from there (wrapping at 2^24). -ENOSPC when none. */
int tg_ids_alloc(struct tg_ids *ids, uint32_t *id);

struct tg_device {
	struct tg_devinfo info;
	unsigned mounts;      /* Get references */
	char dev[PATH_MAX];   /* active block device, "" if not active */
};

struct tg_driver {
	char root[PATH_MAX - 256]; /* (room for the names below it) */
	char pool_dir[PATH_MAX];   /* ROOT/devicemapper */
	char meta_dir[PATH_MAX];   /* ROOT/metadata */
	char mnt_dir[PATH_MAX];    /* ROOT/mnt */
	char run_dir[PATH_MAX];    /* ROOT/thinbench */
	char prefix[64];           /* docker-MAJ:MIN-INO */
	struct tg_options opt;
	enum tg_backend_kind kind;
	FILE *log;

	const struct tg_backend_ops *ops;
	void *be;

	pthread_mutex_t lock;     /* one driver operation at a time (Docker's per-set lock) */
	uint64_t transaction_id;  /* the pool's */
	struct tg_txn txn;        /* the open transaction */
	struct tg_ids ids;
	struct tg_deviceset ds;
	struct tg_device *devs;
	size_t nr_devs, cap_devs;
	unsigned nr_deleted;
};

/* graph_devices.c */
struct tg_device *tg_find(struct tg_driver *d, const char *hash);
void tg_device_name(const struct tg_driver *d, const char *hash, char *buf, size_t len);
int tg_create_device(struct tg_driver *d, const char *hash, const struct tg_device *origin,
		     uint64_t size, struct tg_device **out, char *err, size_t len);
int tg_delete_device(struct tg_driver *d, struct tg_device *dev, bool sync_delete, char *err,
		     size_t len);
int tg_process_pending_txn(struct tg_driver *d, char *err, size_t len);
int tg_pool_has_free_space(struct tg_driver *d, char *err, size_t len);

/* graph_mount.c */
int tg_activate(struct tg_driver *d, struct tg_device *dev, char *err, size_t len);
/* DEFERRED: Docker's deferred removal (the device goes when its last opener closes);
 * otherwise an EBUSY is retried as Docker retries it (200 × 100 ms). */
int tg_deactivate(struct tg_driver *d, struct tg_device *dev, bool deferred, char *err,
		  size_t len);
/* Unmount every mount below ROOT (deepest first, lazily): Docker's RecursiveUnmount, and what
 * a killed holder leaves behind. */
void tg_unmount_all(struct tg_driver *d);
int tg_mount_device(struct tg_driver *d, struct tg_device *dev, const char *dir, char *err,
		    size_t len);
int tg_unmount(const char *dir, char *err, size_t len);
int tg_probe_fs(const char *dev, char *fs, size_t len);
/* Docker's options for FS (xfs: nouuid first, then dm.mountopt), split as mount(8) does
 * into MS_* flags (*FLAGS) and the file system's own options (BUF). */
void tg_mount_options(const struct tg_driver *d, const char *fs, unsigned long *flags, char *buf,
		      size_t len);
/* Run ARGV (a NULL-terminated list), its output kept in OUT; the exit status or -errno. */
int tg_run(char *const argv[], char *out, size_t olen);

/* graph_child.c: block IO that may reach this process's FUSE bridge, run in a child */
struct tg_mount_req {
	const char *dev, *dir, *fs, *opts;
	unsigned long flags;
};
int tg_child(int keep_fd, int (*fn)(void *arg), void *arg);
int tg_child_mount(const char *dev, const char *dir, const char *fs, unsigned long flags,
		   const char *opts);
int tg_child_umount(const char *dir);
int tg_child_fsync(int fd);
/* fsync and close FD, the last close (and its writeback) in the child */
int tg_child_close(int fd);
int tg_child_freeze(const char *dir, bool freeze);

/* graph_base.c */
int tg_setup_base(struct tg_driver *d, char *err, size_t len);
int tg_grow_fs(struct tg_driver *d, struct tg_device *dev, char *err, size_t len);

/* Copy SRC into DST of LEN bytes, cut if longer. */
static inline void tg_copy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

void tg_log(struct tg_driver *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tg_err(char *err, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
