/* thinp_pool_open_paths: a pool from paths, the one place that knows how a
 * pool's two devices are found, created, grown and checked before the pool
 * formats or opens them (the CLI, the fio engine and the tools all come
 * through here). */
#include "thinp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/dev.h"
#include "thin/metadata.h"

#define SB_BYTES 4096u
#define SB_MAGIC_OFFSET 32u

/* What is on the metadata device before we touch it. */
enum sb_state { SB_BLANK, SB_POOL, SB_OTHER };

struct opening {
	char data[PATH_MAX], meta[PATH_MAX];
	const char *made[2]; /* files this call created: removed again on failure */
	const char *made_dir;
	char *err;
	size_t errlen;
};

static int fail(struct opening *op, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct opening *op, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (op->errlen)
		vsnprintf(op->err, op->errlen, fmt, ap);
	va_end(ap);
	for (int i = 0; i < 2; i++)
		if (op->made[i])
			unlink(op->made[i]);
	if (op->made_dir)
		rmdir(op->made_dir);
	return r;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static bool is_block_device(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

static const char *open_hint(int r, unsigned flags)
{
	if (r == -EBUSY)
		return " (another process has this pool open)";
	if ((r == -EPERM || r == -EACCES) && (flags & THINP_DEV_LOOP))
		return " (loop devices need root)";
	if (r == -EINVAL && (flags & THINP_DEV_DIRECT))
		return " (O_DIRECT needs a filesystem or device that supports it)";
	return "";
}

static int open_dev(struct opening *op, const char *what, const char *path, unsigned flags,
		    uint64_t size, struct tp_dev **out)
{
	int r = thinp_dev_open(path, flags, size, out);
	if (r)
		return fail(op, r, "cannot open the %s device %s: %s%s", what, path, strerror(-r),
			    open_hint(r, flags));
	return 0;
}

static int read_sb_state(struct tp_dev *m, enum sb_state *st)
{
	*st = SB_BLANK;
	if (m->size < SB_BYTES)
		return 0; /* reads as zeros: a new pool */
	uint8_t *sb;
	int r = posix_memalign((void **)&sb, SB_BYTES, SB_BYTES) ? -ENOMEM : 0;
	if (r)
		return r;
	r = tp_dev_pread(m, sb, SB_BYTES, 0);
	if (!r) {
		uint64_t magic;
		memcpy(&magic, sb + SB_MAGIC_OFFSET, sizeof(magic));
		bool zero = true;
		for (unsigned i = 0; i < SB_BYTES && zero; i++)
			zero = !sb[i];
		*st = zero ? SB_BLANK : magic == THIN_SUPERBLOCK_MAGIC ? SB_POOL : SB_OTHER;
	}
	free(sb);
	return r;
}

/* Grow a device to WANT when it is smaller (files, loop devices over files). */
static int grow(struct opening *op, const char *what, const char *path, struct tp_dev *d,
		uint64_t want)
{
	if (d->size >= want)
		return 0;
	uint64_t have = d->size;
	int r = tp_dev_resize(d, want);
	if (r == -ENOTSUP)
		return fail(op, r,
			    "the %s device %s has %llu bytes, fewer than the %llu asked for: grow it "
			    "or ask for less (without a %s size a block device is used whole)",
			    what, path, (unsigned long long)have, (unsigned long long)want, what);
	if (r)
		return fail(op, r, "cannot grow the %s file %s to %llu bytes: %s", what, path,
			    (unsigned long long)want, strerror(-r));
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) ? -errno : 0;
	close(fd);
	return r;
}

/* Sync the directory holding PATH (a file or a directory); MSG says why not. */
static int sync_parent(const char *path, char *msg, size_t len)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	const char *dir = dirname(copy);
	int r = sync_dir(dir);
	if (r)
		snprintf(msg, len, "cannot sync the directory %s (so that %s survives a power cut): %s",
			 dir, path, strerror(-r));
	return r;
}

/* A formatted pool survives a power cut only once the names of what this call created
 * are durable too: the files' entries in their directories and, when it made DIR,
 * DIR's entry in its parent (the format's commit already synced the files' data). */
static int sync_created(const struct opening *op, bool one_dir, char *msg, size_t len)
{
	int r = 0;
	if (op->made[0])
		r = sync_parent(op->made[0], msg, len);
	if (!r && op->made[1] && !(one_dir && op->made[0]))
		r = sync_parent(op->made[1], msg, len);
	if (!r && op->made_dir)
		r = sync_parent(op->made_dir, msg, len);
	return r;
}

int thinp_pool_open_paths(const struct thinp_pool_paths *w, const struct thinp_pool_opts *o,
			  struct thinp_pool **out, bool *formatted, char *err, size_t errlen)
{
	struct opening op = { .err = err, .errlen = errlen };
	*out = NULL;
	if (formatted)
		*formatted = false;
	if (errlen)
		*err = '\0';
	if (!w->dir && (!w->data || !w->metadata))
		return fail(&op, -EINVAL,
			    "name the pool: a directory (holding data and metadata) or a data and "
			    "a metadata device");
	if (w->how != THINP_OPEN_EXISTING && w->how != THINP_OPEN_CREATE &&
	    w->how != THINP_OPEN_ANY)
		return fail(&op, -EINVAL, "unknown open mode %d", (int)w->how);
	if (w->dir) {
		if ((size_t)snprintf(op.data, sizeof(op.data), "%s/data", w->dir) >= sizeof(op.data) ||
		    (size_t)snprintf(op.meta, sizeof(op.meta), "%s/metadata", w->dir) >=
			    sizeof(op.meta))
			return fail(&op, -ENAMETOOLONG, "the pool directory path is too long: %s",
				    w->dir);
	} else {
		snprintf(op.data, sizeof(op.data), "%s", w->data);
		snprintf(op.meta, sizeof(op.meta), "%s", w->metadata);
	}
	bool creating = w->how != THINP_OPEN_EXISTING && !o->read_only;
	bool have_data = exists(op.data), have_meta = exists(op.meta);

	if (!creating && (!have_data || !have_meta))
		return fail(&op, -ENOENT, "no pool at %s + %s: %s does not exist%s", op.data,
			    op.meta, have_data ? op.meta : op.data,
			    w->how == THINP_OPEN_EXISTING ? " (create the pool first)" : "");
	/* a device without its partner is someone's data: never format around it */
	if (w->how == THINP_OPEN_ANY && have_data != have_meta)
		return fail(&op, -EEXIST,
			    "%s exists but %s does not: refusing to create a pool over an existing "
			    "device (remove it or name both devices of the existing pool)",
			    have_data ? op.data : op.meta, have_data ? op.meta : op.data);

	uint64_t data_size = w->data_size, meta_size = w->meta_size;
	if (creating) {
		if (meta_size && meta_size < 65536)
			return fail(&op, -EINVAL,
				    "invalid metadata size %llu: at least 64k is needed (2M is the "
				    "practical floor)",
				    (unsigned long long)meta_size);
		/* Docker's sizes are defaults for files; a block device is used whole */
		if (!data_size && !(is_block_device(op.data) && !w->losetup))
			data_size = THINP_DEFAULT_DATA_SIZE;
		if (!meta_size && !(is_block_device(op.meta) && !w->losetup))
			meta_size = THINP_DEFAULT_META_SIZE;
		if (w->dir && !exists(w->dir)) {
			if (mkdir(w->dir, 0755) && errno != EEXIST)
				return fail(&op, -errno, "cannot create the directory %s: %s", w->dir,
					    strerror(errno));
			op.made_dir = w->dir;
		}
		op.made[0] = have_data ? NULL : op.data;
		op.made[1] = have_meta ? NULL : op.meta;
	}

	unsigned fl = THINP_DEV_EXCL | (creating ? THINP_DEV_CREATE : 0) |
		      (w->losetup ? THINP_DEV_LOOP : 0);
	/* read-only freezes the metadata only: dm-thin still writes provisioned,
	 * unshared blocks of a read-only pool */
	struct tp_dev *d, *m;
	int r = open_dev(&op, "data", op.data, fl | (w->direct ? THINP_DEV_DIRECT : 0), data_size,
			 &d);
	if (r)
		return r;
	r = open_dev(&op, "metadata", op.meta,
		     fl | (o->read_only ? THINP_DEV_RDONLY : 0) |
			     (w->direct_metadata ? THINP_DEV_DIRECT : 0),
		     meta_size, &m);
	if (r) {
		tp_dev_close(d);
		return r;
	}

	enum sb_state sb = SB_BLANK;
	if ((r = read_sb_state(m, &sb))) {
		tp_dev_close(d);
		tp_dev_close(m);
		return fail(&op, r, "cannot read the superblock of %s: %s", op.meta, strerror(-r));
	}
	bool format = w->how == THINP_OPEN_CREATE || (w->how == THINP_OPEN_ANY && sb == SB_BLANK);
	const char *refuse = NULL;
	if (w->how == THINP_OPEN_CREATE && sb == SB_POOL && !w->force)
		refuse = "already holds a thin pool: refusing to overwrite it (use --force to "
			 "destroy it)";
	else if (format && !creating)
		refuse = "has no pool (its superblock is all zeros) and the pool is opened "
			 "read-only: create it first";
	else if (w->how == THINP_OPEN_EXISTING && sb == SB_BLANK)
		refuse = "holds no thin pool (its superblock is all zeros): create one first";
	if (refuse) {
		tp_dev_close(d);
		tp_dev_close(m);
		return fail(&op, sb == SB_POOL ? -EEXIST : -ENOENT, "%s %s", op.meta, refuse);
	}
	if (format && ((r = grow(&op, "data", op.data, d, data_size)) ||
		       (r = grow(&op, "metadata", op.meta, m, meta_size)))) {
		tp_dev_close(d);
		tp_dev_close(m);
		return r;
	}

	char why[512] = "";
	/* both take the devices, also on failure */
	r = format ? thinp_pool_format(d, m, o, out, why, sizeof(why))
		   : thinp_pool_open(d, m, o, out, why, sizeof(why));
	if (r)
		return fail(&op, r, "cannot %s the pool on %s + %s: %s",
			    format ? "create" : "open", op.data, op.meta, *why ? why : strerror(-r));
	if (format && (r = sync_created(&op, w->dir != NULL, why, sizeof(why)))) {
		thinp_pool_close(*out);
		*out = NULL;
		return fail(&op, r, "%s", why);
	}
	if (formatted)
		*formatted = format;
	return 0;
}
