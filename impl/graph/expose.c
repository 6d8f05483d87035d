/* The FUSE bridge (expose.h): a flat directory whose regular files are thin devices.
 *
 * Low-level libfuse on worker threads of our own rather than fuse_session_loop_mt: a
 * worker polls the FUSE device together with an eventfd, so tg_expose_stop can end the
 * workers whether or not the kernel still sends requests (libfuse's loop only notices
 * fuse_session_exit when a request arrives). Inode numbers are never reused (an inode the
 * kernel still remembers after a remove can never name a later device), so FORGET needs
 * no bookkeeping. Entry and attribute timeouts are 0: devices come and go behind the
 * kernel's back (tg_expose_add/remove), and a name must never outlive its device.
 *
 * Every file is opened direct_io: the loop device over a file keeps its own page cache,
 * and a second cache here would hold the same data twice and delay writes the loop
 * device believes written (docs/expose.md). */
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>

#include "graph/expose.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thinp.h"

/* Requests served at once. The kernel serialises direct writes to one file (libfuse
 * 3.14 cannot ask for parallel direct writes), but reads, other files and flushes go on
 * beside them; a write waiting for pool space (queue mode) holds only its own worker. */
#define EXPOSE_WORKERS 4
#define ROOT_INO       FUSE_ROOT_ID
#define FIRST_DEV_INO  3 /* readdir offsets 1 and 2 are "." and ".." (see xp_readdir) */
#define ZERO_CHUNK     (1u << 20)

struct xdev {
	struct xdev *next;
	char name[NAME_MAX + 1];
	fuse_ino_t ino;
	uint64_t thin_id, size;
	struct thinp_thin *thin;
	unsigned openers; /* open file handles: remove refuses while > 0 */
	time_t added;
};

struct tg_expose {
	struct thinp_pool *pool;
	char *mountpoint;
	struct fuse_session *se;
	bool mounted;
	int stop_fd; /* eventfd: written once by tg_expose_stop, wakes every worker */
	pthread_t workers[EXPOSE_WORKERS];
	unsigned nr_workers;
	pthread_mutex_t lock;  /* the device list and each device's openers */
	pthread_cond_t closed; /* a device's last opener released it */
	struct xdev *devs;     /* ascending by ino (readdir continues by ino) */
	fuse_ino_t next_ino;
	uid_t uid;
	gid_t gid;
	time_t started;
};

static struct tg_expose *xp_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The caller holds e->lock. */
static struct xdev *find_ino(struct tg_expose *e, fuse_ino_t ino)
{
	for (struct xdev *d = e->devs; d; d = d->next)
		if (d->ino == ino)
			return d;
	return NULL;
}

static struct xdev *find_name(struct tg_expose *e, const char *name)
{
	for (struct xdev *d = e->devs; d; d = d->next)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static void root_attr(const struct tg_expose *e, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ROOT_INO;
	st->st_mode = S_IFDIR | 0700;
	st->st_nlink = 2;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_atime = st->st_mtime = st->st_ctime = e->started;
}

/* A device's attributes; st_blocks counts the thin's mapped sectors, so du shows what the
 * pool provisioned. Called without e->lock: the status is a pool call. */
static void dev_attr(const struct tg_expose *e, fuse_ino_t ino, uint64_t thin_id, uint64_t size,
                     time_t added, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = (off_t)size;
	st->st_blksize = (blksize_t)thinp_pool_block_bytes(e->pool);
	struct thinp_thin_status ts;
	if (!thinp_thin_status(e->pool, thin_id, &ts))
		st->st_blocks = (blkcnt_t)ts.mapped_sectors;
	st->st_atime = st->st_mtime = st->st_ctime = added;
}

/* Attributes of INO into ST: 0 or -ENOENT. */
static int attr_of(struct tg_expose *e, fuse_ino_t ino, struct stat *st)
{
	if (ino == ROOT_INO) {
		root_attr(e, st);
		return 0;
	}
	pthread_mutex_lock(&e->lock);
	struct xdev *d = find_ino(e, ino);
	uint64_t id = d ? d->thin_id : 0, size = d ? d->size : 0;
	time_t added = d ? d->added : 0;
	pthread_mutex_unlock(&e->lock);
	if (!d)
		return -ENOENT;
	dev_attr(e, ino, id, size, added, st);
	return 0;
}

static void xp_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tg_expose *e = xp_of(req);
	if (parent != ROOT_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&e->lock);
	struct xdev *d = find_name(e, name);
	fuse_ino_t ino = d ? d->ino : 0;
	pthread_mutex_unlock(&e->lock);
	struct fuse_entry_param ep = { .ino = ino, .generation = 1 };
	if (!ino || attr_of(e, ino, &ep.attr)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_entry(req, &ep);
}

static void xp_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino, (void)nlookup;
	fuse_reply_none(req);
}

static void xp_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	int r = attr_of(xp_of(req), ino, &st);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0);
}

/* A device's size is the thin's table length: fixed. Times are accepted and forgotten
 * (touch works); ownership and mode stay as the bridge sets them. */
static void xp_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	int r = attr_of(xp_of(req), ino, &st);
	if (!r && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		r = -EPERM;
	if (!r && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)
		r = -EINVAL;
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0);
}

static void xp_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tg_expose *e = xp_of(req);
	pthread_mutex_lock(&e->lock);
	struct xdev *d = find_ino(e, ino);
	if (d)
		d->openers++;
	pthread_mutex_unlock(&e->lock);
	if (!d) {
		fuse_reply_err(req, ino == ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* No FLUSH at close: closing a block device makes nothing durable either, and a
	 * process using its own bridge would, when it dies, wait forever in close for a
	 * flush that its killed workers never answer. */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi)) {
		/* the opener is gone (interrupted): no RELEASE will come for this handle */
		pthread_mutex_lock(&e->lock);
		if (!--d->openers)
			pthread_cond_broadcast(&e->closed);
		pthread_mutex_unlock(&e->lock);
	}
}

static void xp_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct tg_expose *e = xp_of(req);
	struct xdev *d = (struct xdev *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&e->lock);
	if (!--d->openers)
		pthread_cond_broadcast(&e->closed);
	pthread_mutex_unlock(&e->lock);
	fuse_reply_err(req, 0);
}

/* An open handle's device stays valid: remove refuses while it is open. */
static struct xdev *dev_of(struct fuse_file_info *fi)
{
	return (struct xdev *)(uintptr_t)fi->fh;
}

/* Reads end at the device's end, as a block device's do (short read, then 0). */
static void xp_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	(void)ino;
	struct xdev *d = dev_of(fi);
	uint64_t o = (uint64_t)off;
	size_t n = o >= d->size ? 0 : d->size - o < size ? (size_t)(d->size - o) : size;
	if (!n) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	char *buf = malloc(n);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int r = thinp_read(d->thin, buf, n, o, NULL);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

/* A write wholly past the end fails with ENOSPC, as one past a block device's end does
 * (the file cannot grow: its size is the thin's); one that crosses the end is short. */
static void xp_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	(void)ino;
	struct xdev *d = dev_of(fi);
	uint64_t o = (uint64_t)off;
	if (size && o >= d->size) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	size_t n = d->size - o < size ? (size_t)(d->size - o) : size;
	int r = n ? thinp_write(d->thin, buf, n, o, 0, NULL) : 0;
	if (r)
		fuse_reply_err(req, -r); /* e.g. ENOSPC from a full pool with error_if_no_space */
	else
		fuse_reply_write(req, n);
}

/* fsync is the device's REQ_PREFLUSH (the loop device sends one for each flush it gets):
 * a commit when the thin changed, else a flush of the data device. */
static void xp_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino, (void)datasync;
	fuse_reply_err(req, -thinp_flush(dev_of(fi)->thin, NULL));
}

/* LEN bytes of zeros at OFF. */
static int write_zeros(struct thinp_thin *t, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	size_t chunk = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
	void *z = calloc(1, chunk);
	if (!z)
		return -ENOMEM;
	int r = 0;
	for (uint64_t done = 0; done < len && !r;) {
		size_t n = len - done < chunk ? (size_t)(len - done) : chunk;
		r = thinp_write(t, z, n, off + done, 0, NULL);
		done += n;
	}
	free(z);
	return r;
}

/* A punched hole must read back as zeros (the loop device turns a write-zeroes request
 * into one). dm-thin discards whole pool blocks only, so the whole blocks inside the
 * range are discarded (unmapped: they read as zeros and return to the pool) and the
 * partial blocks at its edges are overwritten with zeros. A pool that ignores discards
 * cannot punch holes (EOPNOTSUPP; the loop device then stops sending them). */
static int punch_hole(struct tg_expose *e, struct xdev *d, uint64_t off, uint64_t len)
{
	struct thinp_pool_status st;
	int r = thinp_pool_status(e->pool, true, &st);
	if (r)
		return r;
	if (!st.discard_enabled)
		return -EOPNOTSUPP;
	uint64_t bb = thinp_pool_block_bytes(e->pool), end = off + len;
	uint64_t first = (off + bb - 1) / bb * bb, last = end / bb * bb;
	if (first >= last) /* within one block, or across one boundary only */
		return write_zeros(d->thin, off, len);
	r = write_zeros(d->thin, off, first - off);
	if (!r)
		r = thinp_discard(d->thin, first, last - first, NULL);
	if (!r)
		r = write_zeros(d->thin, last, end - last);
	return r;
}

/* PUNCH_HOLE (with KEEP_SIZE, as Linux requires) and ZERO_RANGE; the range is clipped at
 * the device's end, which never moves. Plain allocation has no meaning on a thin device
 * (blocks are provisioned by writes; nothing reserves them): EOPNOTSUPP. */
static void xp_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
	(void)ino;
	struct xdev *d = dev_of(fi);
	uint64_t o = (uint64_t)off, l = (uint64_t)len;
	if (o >= d->size)
		l = 0;
	else if (l > d->size - o)
		l = d->size - o;
	int r;
	if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		r = l ? punch_hole(xp_of(req), d, o, l) : 0;
	else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE)
		r = write_zeros(d->thin, o, l);
	else
		r = -EOPNOTSUPP;
	fuse_reply_err(req, -r);
}

static void xp_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != ROOT_INO)
		fuse_reply_err(req, ENOTDIR);
	else
		fuse_reply_open(req, fi);
}

/* One entry into BUF at *N: false when it does not fit (fuse_add_direntry then adds
 * nothing and reports the size it needed). */
static bool add_entry(fuse_req_t req, char *buf, size_t size, size_t *n, const char *name,
                      fuse_ino_t ino, mode_t mode, off_t next)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t want = fuse_add_direntry(req, buf + *n, size - *n, name, &st, next);
	if (want > size - *n)
		return false;
	*n += want;
	return true;
}

/* Offsets: "." 1, ".." 2, then a device's ino + 1, so a listing continues correctly
 * across adds and removes between calls. */
static void xp_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	(void)fi;
	struct tg_expose *e = xp_of(req);
	if (ino != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t n = 0;
	bool room = true;
	if (off < 1)
		room = add_entry(req, buf, size, &n, ".", ROOT_INO, S_IFDIR, 1);
	if (room && off < 2)
		room = add_entry(req, buf, size, &n, "..", ROOT_INO, S_IFDIR, 2);
	pthread_mutex_lock(&e->lock);
	for (struct xdev *d = e->devs; d && room; d = d->next)
		if ((off_t)d->ino >= off)
			room = add_entry(req, buf, size, &n, d->name, d->ino, S_IFREG,
			                 (off_t)d->ino + 1);
	pthread_mutex_unlock(&e->lock);
	fuse_reply_buf(req, buf, n);
	free(buf);
}

static const struct fuse_lowlevel_ops xp_ops = {
	.lookup = xp_lookup,
	.forget = xp_forget,
	.getattr = xp_getattr,
	.setattr = xp_setattr,
	.open = xp_open,
	.read = xp_read,
	.write = xp_write,
	.release = xp_release,
	.fsync = xp_fsync,
	.opendir = xp_opendir,
	.readdir = xp_readdir,
	.fallocate = xp_fallocate,
};
/* A worker: requests until the stop eventfd fires or the kernel ends the connection
 * (unmounted: the read fails with ENODEV and libfuse marks the session exited). The FUSE
 * fd is non-blocking, so a worker that lost a request to another one polls again. */
static void *worker(void *arg)
{
	struct tg_expose *e = arg;
#ifdef PR_SET_IO_FLUSHER
	/* This thread writes what a loop device above it is writing back: memory reclaim
	 * must not wait for that writeback here (best effort: needs CAP_SYS_RESOURCE). */
	(void)prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
#endif
	struct fuse_buf buf = { 0 };
	struct pollfd pf[2] = { { .fd = fuse_session_fd(e->se), .events = POLLIN },
		                { .fd = e->stop_fd, .events = POLLIN } };
	while (!fuse_session_exited(e->se)) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		int r = fuse_session_receive_buf(e->se, &buf);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0)
			break;
		fuse_session_process_buf(e->se, &buf);
	}
	free(buf.mem);
	return NULL;
}

static int fail(char *err, size_t len, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int r, const char *fmt, ...)
{
	if (len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Frees what start made (workers already joined, session unmounted). */
static void destroy(struct tg_expose *e)
{
	if (e->se)
		fuse_session_destroy(e->se);
	if (e->stop_fd >= 0)
		close(e->stop_fd);
	pthread_cond_destroy(&e->closed);
	pthread_mutex_destroy(&e->lock);
	free(e->mountpoint);
	free(e);
}

/* Wakes every worker and joins them. */
static void stop_workers(struct tg_expose *e)
{
	uint64_t one = 1;
	if (e->nr_workers && write(e->stop_fd, &one, sizeof(one)) != sizeof(one))
		abort(); /* an eventfd write of 1 cannot fail short of a bug */
	for (unsigned i = 0; i < e->nr_workers; i++)
		pthread_join(e->workers[i], NULL);
	e->nr_workers = 0;
}

int tg_expose_start(struct thinp_pool *pool, const char *mountpoint, struct tg_expose **out,
                    char *err, size_t len)
{
	*out = NULL;
	struct stat st;
	if (stat(mountpoint, &st)) {
		int r = -errno;
		return fail(err, len, r, "cannot expose devices on %s: %s (%s)", mountpoint,
		            strerror(-r),
		            r == -ENOTCONN ?
		                    "the mount of a bridge whose process died: umount -l it" :
		                    "create the directory");
	}
	if (!S_ISDIR(st.st_mode))
		return fail(err, len, -ENOTDIR, "cannot expose devices on %s: not a directory",
		            mountpoint);
	if (access("/dev/fuse", R_OK | W_OK))
		return fail(
		        err, len, -errno,
		        "cannot expose devices on %s: /dev/fuse: %s (load the fuse module; in a "
		        "container, pass the device /dev/fuse)",
		        mountpoint, strerror(errno));
	struct tg_expose *e = calloc(1, sizeof(*e));
	if (!e)
		return fail(err, len, -ENOMEM, "out of memory");
	e->pool = pool;
	e->stop_fd = -1;
	e->next_ino = FIRST_DEV_INO;
	e->uid = geteuid();
	e->gid = getegid();
	e->started = time(NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a wait is not moved by the clock */
	pthread_cond_init(&e->closed, &ca);
	pthread_condattr_destroy(&ca);
	e->mountpoint = strdup(mountpoint);
	e->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!e->mountpoint || e->stop_fd < 0) {
		int r = e->mountpoint ? -errno : -ENOMEM;
		destroy(e);
		return fail(err, len, r, "cannot expose devices on %s: %s", mountpoint,
		            strerror(-r));
	}
	/* default_permissions: the kernel enforces the files' 0600 (this code checks no
	 * permission itself). No allow_other: only the mounting user's processes (root's,
	 * any of them) may use the mount, which is what a loop device needs: the file is
	 * opened by its attacher, and IO on an open file is not checked again, so the loop's
	 * kernel threads pass (tests/cli/expose.sh); allow_other would also make a mount by
	 * a user other than root depend on user_allow_other in /etc/fuse.conf. */
	char *argv[] = { "thinp-expose", "-o", "default_permissions,fsname=thinp,subtype=thinp",
		         NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	e->se = fuse_session_new(&args, &xp_ops, sizeof(xp_ops), e);
	fuse_opt_free_args(&args);
	if (!e->se) {
		destroy(e);
		return fail(err, len, -EINVAL,
		            "cannot expose devices on %s: libfuse refused the "
		            "session (its message is above)",
		            mountpoint);
	}
	if (fuse_session_mount(e->se, mountpoint)) {
		destroy(e);
		return fail(err, len, -EPERM,
		            "cannot mount FUSE on %s (libfuse's reason is above): it must be an "
		            "empty directory, and mounting needs root or fusermount3",
		            mountpoint);
	}
	e->mounted = true;
	int fd = fuse_session_fd(e->se);
	int r = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) ? -errno : 0;
	for (unsigned i = 0; !r && i < EXPOSE_WORKERS; i++) {
		r = -pthread_create(&e->workers[i], NULL, worker, e);
		if (!r)
			e->nr_workers++;
	}
	if (r) {
		stop_workers(e);
		fuse_session_unmount(e->se);
		destroy(e);
		return fail(err, len, r, "cannot serve FUSE on %s: %s", mountpoint, strerror(-r));
	}
	*out = e;
	return 0;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	return n && n <= NAME_MAX && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int tg_expose_add(struct tg_expose *e, const char *name, uint64_t thin_id, uint64_t size, char *err,
                  size_t len)
{
	if (!name_ok(name))
		return fail(err, len, -EINVAL,
		            "cannot expose '%s': a file name (1-%d bytes, no '/', not . or ..)",
		            name, NAME_MAX);
	if (!size || size % 512 || size > (uint64_t)INT64_MAX)
		return fail(err, len, -EINVAL,
		            "cannot expose thin %llu of %llu bytes: a device's size is a positive "
		            "multiple of 512 bytes",
		            (unsigned long long)thin_id, (unsigned long long)size);
	struct xdev *d = calloc(1, sizeof(*d));
	if (!d)
		return fail(err, len, -ENOMEM, "out of memory");
	int r = thinp_thin_open(e->pool, thin_id, size, &d->thin);
	if (r) {
		char why[512];
		thinp_pool_error_copy(e->pool, why, sizeof(why));
		free(d);
		return fail(err, len, r, "cannot expose thin %llu: %s", (unsigned long long)thin_id,
		            *why ? why : strerror(-r));
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->thin_id = thin_id;
	d->size = size;
	d->added = time(NULL);
	pthread_mutex_lock(&e->lock);
	if (find_name(e, name)) {
		pthread_mutex_unlock(&e->lock);
		thinp_thin_close(d->thin);
		free(d);
		return fail(err, len, -EEXIST, "cannot expose '%s': %s/%s is exposed already", name,
		            e->mountpoint, name);
	}
	d->ino = e->next_ino++;
	struct xdev **tail = &e->devs;
	while (*tail)
		tail = &(*tail)->next;
	*tail = d;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Flush and close D, which is off the list; the thin's flush error or 0. */
static int drop(struct tg_expose *e, struct xdev *d, char *err, size_t len)
{
	int r = thinp_flush(d->thin, NULL);
	if (r && len) {
		char why[512];
		thinp_pool_error_copy(e->pool, why, sizeof(why));
		fail(err, len, r, "flushing thin %llu (%s) failed: %s",
		     (unsigned long long)d->thin_id, d->name, *why ? why : strerror(-r));
	}
	thinp_thin_close(d->thin);
	free(d);
	return r;
}

int tg_expose_remove(struct tg_expose *e, const char *name, char *err, size_t len)
{
	pthread_mutex_lock(&e->lock);
	struct xdev **p = &e->devs;
	while (*p && strcmp((*p)->name, name))
		p = &(*p)->next;
	struct xdev *d = *p;
	unsigned openers = d ? d->openers : 0;
	if (d && !openers)
		*p = d->next;
	pthread_mutex_unlock(&e->lock);
	if (!d)
		return fail(err, len, -ENOENT, "'%s' is not exposed on %s", name, e->mountpoint);
	if (openers)
		return fail(err, len, -EBUSY,
		            "cannot remove %s/%s: open %u time%s (detach the loop device or close "
		            "the file first)",
		            e->mountpoint, name, openers, openers == 1 ? "" : "s");
	return drop(e, d, err, len);
}

int tg_expose_wait_closed(struct tg_expose *e, const char *name, unsigned timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	int r = 0;
	pthread_mutex_lock(&e->lock);
	struct xdev *d;
	while ((d = find_name(e, name)) && d->openers && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&e->closed, &e->lock, &until);
	int rc = !d ? -ENOENT : d->openers ? -EBUSY : 0;
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int tg_expose_stop(struct tg_expose *e)
{
	if (!e)
		return 0;
	int rc = 0;
	if (e->mounted && umount2(e->mountpoint, UMOUNT_NOFOLLOW) && errno == EBUSY)
		rc = -EBUSY;
	stop_workers(e);
	/* After a clean umount2 the connection is gone and this only closes the fd; when it
	 * was busy (or we may not umount), libfuse closes the fd, which fails what the
	 * openers still ask, and detaches the mount lazily (root) or through fusermount3. */
	if (e->mounted)
		fuse_session_unmount(e->se);
	while (e->devs) {
		struct xdev *d = e->devs;
		e->devs = d->next;
		int r = drop(e, d, NULL, 0);
		if (r && !rc)
			rc = r;
	}
	destroy(e);
	return rc;
}
