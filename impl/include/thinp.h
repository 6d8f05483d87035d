/* libthinp: a userspace reference of Linux dm-thin.
 *
 * A pool is a data device and a metadata device; thin devices are sparse
 * virtual volumes that allocate pool blocks on first write and share blocks
 * with their snapshots until written (copy-on-write). The metadata is the
 * kernel's own on-disk format; the IO paths, commit policy, modes and status
 * lines follow drivers/md/dm-thin.c.
 *
 * All calls return 0 or a negative errno; thinp_pool_error() then holds a
 * sentence naming the problem. Every call is thread-safe.
 *
 * This header is the whole contract of libthinp.so (SONAME libthinp.so.0):
 * only what is declared THINP_API here is exported. */
#ifndef THINP_H
#define THINP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define THINP_API __attribute__((visibility("default")))
#else
#define THINP_API
#endif

/* A backing device (file, block device, loop device or memory), opaque. */
struct tp_dev;
struct thinp_pool;
struct thinp_thin;

/* What an IO did, per pool block it touched (the kernel splits bios at
 * block boundaries). Listed from cheapest to dearest within reads/writes. */
enum thinp_class {
	THINP_READ_UNMAPPED,        /* zeros, nothing read */
	THINP_READ_MAPPED,          /* exclusive block */
	THINP_READ_SHARED,          /* block shared with a snapshot */
	THINP_WRITE_OVERWRITE,      /* mapped, not shared: in place */
	THINP_WRITE_PROVISION,      /* new block, partial write, zeroing off */
	THINP_WRITE_PROVISION_ZERO, /* new block, partial write, block zeroed first */
	THINP_WRITE_PROVISION_FULL, /* new block written whole */
	THINP_WRITE_COW,            /* shared block copied, then written */
	THINP_WRITE_COW_FULL,       /* shared block replaced whole: no copy */
	THINP_DISCARD,
	THINP_FLUSH,
	THINP_COMMIT,
	THINP_NR_CLASSES
};

/* Stable lower-case name ("write_cow" …), as used in reports. */
THINP_API const char *thinp_class_name(enum thinp_class c);

/* Counters per class: exact bytes, so amplification is deterministic. */
struct thinp_class_stats {
	uint64_t ops;
	uint64_t bytes_requested;
	uint64_t data_bytes_read;
	uint64_t data_bytes_written;
	uint64_t data_bytes_zeroed; /* through the write-zeroes path */
	uint64_t meta_bytes_read;
	uint64_t meta_bytes_written;
};

struct thinp_io_result {
	enum thinp_class cls; /* dearest class among the blocks touched */
	unsigned nr_blocks;   /* pool blocks touched */
	struct thinp_class_stats cost; /* this IO's own bytes (cost.ops = nr_blocks) */
};

enum thinp_pool_mode {
	THINP_MODE_WRITE,
	THINP_MODE_OUT_OF_DATA_SPACE,
	THINP_MODE_READ_ONLY,
	THINP_MODE_FAIL
};

/* How a partial write to a shared block (CoW) or to a new block with zeroing
 * reaches the data device. */
enum thinp_cow_policy {
	THINP_COW_KERNEL, /* dm-thin's order: copy (or zero) the whole block, then write
	                     the data: CoW reads B, writes B + len; zeroing writes B + len */
	THINP_COW_MERGED  /* the data overlaid in the copied (or zeroed) block: one block
	                     write (CoW reads B, writes B; zeroing writes B) */
};

/* Pool table options: the kernel's words and defaults. */
struct thinp_pool_opts {
	uint32_t block_sectors;     /* 128..2097152, multiple of 128; 0 = 128 (64 KiB) */
	uint64_t low_water_blocks;  /* event when free data blocks <= this */
	bool skip_block_zeroing;
	bool ignore_discard;
	bool no_discard_passdown;
	bool error_if_no_space;
	bool read_only;
	unsigned commit_interval_ms;  /* 0 = 1000 (the kernel's COMMIT_PERIOD) */
	bool no_commit_timer;         /* disable the periodic commit entirely */
	unsigned no_space_timeout_ms; /* 0 = 60000; queued allocations fail after this */
	size_t metadata_cache_blocks; /* 0 = default (16 MiB) */
	/* Called (from the IO thread, pool locks released) once when free data
	 * blocks reach the low-water mark; re-armed by a data resize. */
	void (*low_water_cb)(void *ctx, struct thinp_pool *pool);
	void *cb_ctx;
	/* Not a table option: a runtime choice of libthinp (0 = THINP_COW_KERNEL, so
	 * the exact per-class counters are dm-thin's). */
	enum thinp_cow_policy cow_policy;
};

/* ---- backing devices ----
 * A pool takes two devices: data and metadata. These open them for
 * thinp_pool_format/thinp_pool_open; thinp_pool_open_paths below does the
 * whole job (both devices, create or open) from paths. */
enum thinp_dev_flags {
	THINP_DEV_RDONLY = 1u << 0,
	THINP_DEV_CREATE = 1u << 1, /* a missing file is created sparse with SIZE bytes */
	THINP_DEV_DIRECT = 1u << 2, /* O_DIRECT (direct-lvm): no page cache */
	THINP_DEV_EXCL = 1u << 3,   /* exclusive flock: a second opener gets -EBUSY */
	THINP_DEV_LOOP = 1u << 4    /* the file through a loop device (root), as loop-lvm */
};
/* Open PATH: a regular file or a block device (its whole size; SIZE only
 * applies to files created with THINP_DEV_CREATE). */
THINP_API int thinp_dev_open(const char *path, unsigned flags, uint64_t size, struct tp_dev **out);
/* A device in memory, SIZE bytes of zeros (tests, models). */
THINP_API int thinp_dev_open_mem(uint64_t size, struct tp_dev **out);
THINP_API uint64_t thinp_dev_size(const struct tp_dev *d);
/* Grow a file (or a loop device's file) to SIZE bytes; -ENOTSUP for block
 * devices, which their owner grows. */
THINP_API int thinp_dev_resize(struct tp_dev *d, uint64_t size);
THINP_API void thinp_dev_close(struct tp_dev *d);
/* Attach the file PATH to a free loop device as losetup does (root only), with autoclear:
 * the loop detaches itself when its last opener closes. DIRECT = --direct-io=on. DEV gets
 * the loop's path (/dev/loopN); *FD is an open read-write descriptor of it, which keeps the
 * loop until closed (close it once a mount or another opener holds the loop). */
THINP_API int thinp_loop_attach(const char *path, bool direct, char *dev, size_t len, int *fd);

/* Format new metadata on META for DATA (the pool takes ownership of both
 * devices, also on failure) and open the pool. */
THINP_API int thinp_pool_format(struct tp_dev *data, struct tp_dev *meta, const struct thinp_pool_opts *o,
		      struct thinp_pool **out, char *err, size_t errlen);
/* Open an existing pool; the block size must match the metadata's. */
THINP_API int thinp_pool_open(struct tp_dev *data, struct tp_dev *meta, const struct thinp_pool_opts *o,
		    struct thinp_pool **out, char *err, size_t errlen);
/* How thinp_pool_open_paths treats what it finds on the metadata device. */
enum thinp_open_how {
	THINP_OPEN_EXISTING, /* open a pool; -ENOENT when there is none */
	THINP_OPEN_CREATE,   /* format a new pool; -EEXIST over an existing one unless force */
	THINP_OPEN_ANY       /* dm-thin's rule: format when the superblock is all zeros, else open */
};

/* Where a pool lives: DIR/data + DIR/metadata (Docker's loop-lvm layout), or
 * two named files or block devices. */
struct thinp_pool_paths {
	const char *dir;      /* or NULL, and then data + metadata */
	const char *data;
	const char *metadata;
	/* Files are created and grown (never shrunk) to these sizes when creating;
	 * 0 = Docker's defaults (100G data, 2G metadata) for files, the whole
	 * device for block devices. */
	uint64_t data_size, meta_size;
	bool direct;          /* the data device O_DIRECT (direct-lvm) */
	bool direct_metadata; /* the metadata device O_DIRECT too (the pool's own cache is its
	                         only cache, as dm-bufio is the kernel's) */
	bool losetup;         /* both files through loop devices (root), as loop-lvm */
	bool force;           /* THINP_OPEN_CREATE over an existing pool */
	enum thinp_open_how how;
};
/* Open both devices (exclusively: a second opener gets -EBUSY; the metadata
 * read-only when O->read_only) and format or open the pool. *FORMATTED (may be
 * NULL) tells which happened. On failure nothing is left open, and files or a
 * directory this call created are removed; ERR names the device and the fix. */
THINP_API int thinp_pool_open_paths(const struct thinp_pool_paths *where,
				    const struct thinp_pool_opts *o, struct thinp_pool **out,
				    bool *formatted, char *err, size_t errlen);
#define THINP_DEFAULT_DATA_SIZE (100ull << 30)
#define THINP_DEFAULT_META_SIZE (2ull << 30)

/* Commit and close (also closes the devices). */
THINP_API int thinp_pool_close(struct thinp_pool *p);
/* The last error message (single-threaded callers). */
THINP_API const char *thinp_pool_error(struct thinp_pool *p);
/* The same, copied safely while other threads may be failing too. */
THINP_API void thinp_pool_error_copy(struct thinp_pool *p, char *buf, size_t len);

THINP_API int thinp_pool_commit(struct thinp_pool *p);

/* Pool messages (each commits on success, as the kernel's do). A delete of a thin with an
 * open thinp_thin handle is refused with -EBUSY, as dm-thin refuses an active one. */
THINP_API int thinp_create_thin(struct thinp_pool *p, uint64_t id);
THINP_API int thinp_create_snap(struct thinp_pool *p, uint64_t id, uint64_t origin);
THINP_API int thinp_delete_thin(struct thinp_pool *p, uint64_t id);
THINP_API int thinp_set_transaction_id(struct thinp_pool *p, uint64_t cur, uint64_t next);
THINP_API int thinp_reserve_metadata_snap(struct thinp_pool *p);
THINP_API int thinp_release_metadata_snap(struct thinp_pool *p);

/* Grow the data device to NEW_BYTES (files are extended; block devices must
 * already be that big) / grow the metadata device. Waiting allocations resume. */
THINP_API int thinp_pool_resize_data(struct thinp_pool *p, uint64_t new_bytes);
THINP_API int thinp_pool_resize_metadata(struct thinp_pool *p, uint64_t new_bytes);

THINP_API uint32_t thinp_pool_block_bytes(const struct thinp_pool *p);

struct thinp_pool_status {
	uint64_t transaction_id;
	uint64_t used_meta_blocks, total_meta_blocks;
	uint64_t used_data_blocks, total_data_blocks;
	uint64_t held_root; /* 0 = none */
	enum thinp_pool_mode mode;
	bool discard_enabled, discard_passdown;
	bool error_if_no_space;
	bool needs_check;
	uint64_t metadata_low_water;
};
/* Commits first unless NOFLUSH, as `dmsetup status` does. */
THINP_API int thinp_pool_status(struct thinp_pool *p, bool noflush, struct thinp_pool_status *st);
/* The exact `dmsetup status` INFO text of a thin-pool target. */
THINP_API int thinp_pool_status_line(struct thinp_pool *p, bool noflush, char *buf, size_t len);

struct thinp_thin_status {
	uint64_t mapped_sectors;
	bool has_mapped;
	uint64_t highest_mapped_sector;
};
THINP_API int thinp_thin_status(struct thinp_pool *p, uint64_t id, struct thinp_thin_status *st);
THINP_API int thinp_thin_status_line(struct thinp_pool *p, uint64_t id, char *buf, size_t len);

/* What thin_ls shows per thin device. A mapped block is exclusive when no other mapping,
 * of this thin or any other, points at its data block; shared otherwise. */
struct thinp_thin_usage {
	uint64_t id;
	uint64_t mapped_blocks;
	uint64_t exclusive_blocks;
	uint64_t shared_blocks; /* mapped_blocks - exclusive_blocks */
	uint64_t transaction_id; /* the pool's when the thin was created */
	uint32_t creation_time, snapshotted_time; /* pool times (snapshots taken) */
};
/* Every thin of the pool's open transaction, ascending by id: *OUT is malloc'ed (free()
 * it; NULL when *NR is 0). Walks every mapping tree twice under the metadata lock: IO
 * waits meanwhile. */
THINP_API int thinp_thin_usage(struct thinp_pool *p, struct thinp_thin_usage **out, size_t *nr);
/* The same for the metadata snapshot held in META (thin_ls -m), which does not change while
 * it is held, even under a pool another process has open. SNAP_BLOCK must be the one the
 * superblock holds (0: whichever). *BLOCK_SECTORS gets the pool's block size; ERR the
 * problem's sentence. */
THINP_API int thinp_thin_usage_snap(struct tp_dev *meta, uint64_t snap_block,
				    struct thinp_thin_usage **out, size_t *nr,
				    uint32_t *block_sectors, char *err, size_t errlen);

/* Per-class counters since open (or the last reset). */
THINP_API void thinp_pool_stats(struct thinp_pool *p, struct thinp_class_stats out[THINP_NR_CLASSES]);
THINP_API void thinp_pool_stats_reset(struct thinp_pool *p);

/* ---- the control socket ----
 * A pool is open in one process at a time (its devices are locked: other openers get
 * -EBUSY). That process may answer requests about the pool on a Unix stream socket, as
 * dmsetup status/message/resume reach a pool the kernel holds. One request line per
 * connection, one reply line "STATUS[ TEXT]": STATUS is 0 or a negative errno, TEXT the
 * answer or the pool's error sentence. Requests (docs/control-socket.md):
 *   status [noflush]                 the pool's status line (commits first unless noflush)
 *   thin_status ID                   a thin's status line
 *   extend data|metadata BYTES       grow a device and the pool (thinp_pool_resize_*)
 *   create_thin ID | create_snap ID ORIGIN | delete ID | set_transaction_id OLD NEW |
 *   reserve_metadata_snap | release_metadata_snap      the pool messages */
#define THINP_CONTROL_MAX_REQUEST 256 /* bytes of a request line, its newline excluded */
#define THINP_CONTROL_MAX_REPLY 1024  /* bytes of a reply line, its newline included */
struct thinp_control;
/* Serve P on a socket at SOCK_PATH (mode 0600; only the caller's uid and root are
 * answered) from a thread of its own. A socket file nobody listens on is replaced; one
 * that answers gives -EBUSY, any other file -EEXIST. ERR names the path and the fix. */
THINP_API int thinp_control_serve(struct thinp_pool *p, const char *sock_path,
				  struct thinp_control **out, char *err, size_t errlen);
/* Stop serving and remove the socket; before thinp_pool_close. NULL is a no-op. */
THINP_API void thinp_control_stop(struct thinp_control *c);
/* Send REQUEST (one line, no newline) to the server at SOCK_PATH. Returns 0 when it
 * answered: *STATUS is its 0 or -errno, REPLY its text. Else a negative errno and REPLY
 * a sentence: -ENOENT (no socket), -ECONNREFUSED (no process serves it), -EINVAL (a
 * request over THINP_CONTROL_MAX_REQUEST bytes or with a newline), -EPROTO. */
THINP_API int thinp_control_call(const char *sock_path, const char *request, int *status,
				 char *reply, size_t len);

/* ---- thin devices ---- */
/* SIZE_BYTES bounds IO (0 = no bound). */
THINP_API int thinp_thin_open(struct thinp_pool *p, uint64_t id, uint64_t size_bytes,
		    struct thinp_thin **out);
THINP_API void thinp_thin_close(struct thinp_thin *t);

#define THINP_IO_FUA 1u

THINP_API int thinp_read(struct thinp_thin *t, void *buf, size_t len, uint64_t off,
	       struct thinp_io_result *res);
THINP_API int thinp_write(struct thinp_thin *t, const void *buf, size_t len, uint64_t off, unsigned flags,
		struct thinp_io_result *res);
THINP_API int thinp_discard(struct thinp_thin *t, uint64_t off, uint64_t len, struct thinp_io_result *res);
/* REQ_PREFLUSH: commits when this thin changed in the open transaction. */
THINP_API int thinp_flush(struct thinp_thin *t, struct thinp_io_result *res);

#ifdef __cplusplus
}
#endif
#endif
