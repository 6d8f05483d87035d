/* wlog_fs: a pass-through FUSE file system that logs, in order, every operation that
 * changes state (creates, unlinks, renames, truncates, fallocates, writes with their
 * bytes) and every durability point (fsync/fdatasync of a file, fsync of a directory, an
 * O_DSYNC write).
 * power_replay rebuilds from that log what a power cut would leave at any point.
 *
 *   wlog_fs BACKING LOG MOUNTPOINT      (returns once mounted; fusermount3 -u ends it)
 *
 * Every file is opened direct_io, so each pwrite of the program under test reaches
 * the daemon as it was issued (no page cache merges or reorders them), O_DIRECT opens
 * included; the daemon is single-threaded, so the log order is the order the kernel
 * handed the requests over, which for one thread issuing blocking calls is its order.
 * The backing directory only serves reads back: its own durability is never relied on,
 * so fsyncs are logged and not passed down. */
#define FUSE_USE_VERSION 31
#include <fuse3/fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "power/wlog.h"

#define MARK_FH UINT64_MAX
#define MAX_FD 4096
#define MAX_INODES 4096

static int root_fd = -1, log_fd = -1;
static uint64_t next_id = WLOG_ROOT_ID + 1;
static uint64_t fd_id[MAX_FD];
static struct {
	ino_t ino;
	uint64_t id;
} inodes[MAX_INODES];
static unsigned nr_inodes;

/* A log that cannot be written makes the whole test meaningless: stop at once. */
static void log_rec(struct wlog_rec *h, const char *n1, const char *n2, const void *data)
{
	h->name1_len = n1 ? (uint32_t)strlen(n1) : 0;
	h->name2_len = n2 ? (uint32_t)strlen(n2) : 0;
	struct iovec v[4] = { { h, sizeof(*h) },
			      { (void *)n1, h->name1_len },
			      { (void *)n2, h->name2_len },
			      { (void *)data, h->data_len } };
	size_t want = sizeof(*h) + h->name1_len + h->name2_len + h->data_len;
	ssize_t n = writev(log_fd, v, 4);
	if (n < 0 || (size_t)n != want) {
		fprintf(stderr, "wlog_fs: cannot append to the log: %s\n",
			n < 0 ? strerror(errno) : "short write");
		abort();
	}
}

static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static bool is_mark(const char *path)
{
	return path && !strcmp(path, "/" WLOG_MARK_NAME);
}

static void set_id(ino_t ino, uint64_t id)
{
	for (unsigned i = 0; i < nr_inodes; i++)
		if (inodes[i].ino == ino) {
			inodes[i].id = id;
			return;
		}
	if (nr_inodes == MAX_INODES) {
		fputs("wlog_fs: too many files\n", stderr);
		abort();
	}
	inodes[nr_inodes].ino = ino;
	inodes[nr_inodes++].id = id;
}

/* The id of what PATH names now (0: not found). */
static uint64_t id_of(const char *path)
{
	struct stat st;
	if (fstatat(root_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW))
		return 0;
	for (unsigned i = 0; i < nr_inodes; i++)
		if (inodes[i].ino == st.st_ino)
			return inodes[i].id;
	return 0;
}

/* Split PATH into its parent's id and its last name (pointing into PATH). */
static uint64_t parent_of(const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	*name = slash + 1;
	if (slash == path)
		return WLOG_ROOT_ID;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	return id_of(dir);
}

static uint64_t new_id(const char *path)
{
	struct stat st;
	if (fstatat(root_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW))
		abort();
	set_id(st.st_ino, next_id);
	return next_id++;
}

static int wl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_mark(path)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0666;
		st->st_nlink = 1;
		return 0;
	}
	int r = fi && fi->fh != MARK_FH ? fstat((int)fi->fh, st)
					 : fstatat(root_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
	return r ? -errno : 0;
}

static int wl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags fl)
{
	(void)off, (void)fi, (void)fl;
	int fd = openat(root_fd, rel(path), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (fill(buf, e->d_name, NULL, 0, 0))
			break;
	closedir(d);
	return 0;
}

static int wl_mkdir(const char *path, mode_t mode)
{
	const char *name;
	uint64_t parent = parent_of(path, &name);
	if (mkdirat(root_fd, rel(path), mode))
		return -errno;
	struct wlog_rec h = { .type = WLOG_CREATE, .flags = WLOG_DIR, .id = parent,
			      .id2 = new_id(path) };
	log_rec(&h, name, NULL, NULL);
	return 0;
}

/* Sockets (bind(2): the CLI's DIR/control) and fifos: names without data. */
static int wl_mknod(const char *path, mode_t mode, dev_t rdev)
{
	if (!S_ISSOCK(mode) && !S_ISFIFO(mode))
		return -EPERM;
	const char *name;
	uint64_t parent = parent_of(path, &name);
	if (mknodat(root_fd, rel(path), mode, rdev))
		return -errno;
	struct wlog_rec h = { .type = WLOG_CREATE, .flags = WLOG_SPECIAL, .id = parent,
			      .id2 = new_id(path) };
	log_rec(&h, name, NULL, NULL);
	return 0;
}

static int remove_entry(const char *path, int flags)
{
	if (is_mark(path))
		return 0;
	const char *name;
	uint64_t parent = parent_of(path, &name);
	if (unlinkat(root_fd, rel(path), flags))
		return -errno;
	struct wlog_rec h = { .type = WLOG_UNLINK, .id = parent };
	log_rec(&h, name, NULL, NULL);
	return 0;
}

static int wl_unlink(const char *path)
{
	return remove_entry(path, 0);
}

static int wl_rmdir(const char *path)
{
	return remove_entry(path, AT_REMOVEDIR);
}

static int wl_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL; /* exchange and whiteouts: nothing here uses them */
	const char *n1, *n2;
	uint64_t p1 = parent_of(from, &n1), p2 = parent_of(to, &n2);
	if (renameat2(root_fd, rel(from), root_fd, rel(to), flags))
		return -errno;
	struct wlog_rec h = { .type = WLOG_RENAME, .id = p1, .id2 = p2 };
	log_rec(&h, n1, n2, NULL);
	return 0;
}

static int wl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if ((fi && fi->fh == MARK_FH) || is_mark(path))
		return 0;
	uint64_t id;
	if (fi) {
		if (ftruncate((int)fi->fh, size))
			return -errno;
		id = fd_id[fi->fh];
	} else {
		int fd = openat(root_fd, rel(path), O_WRONLY);
		if (fd < 0)
			return -errno;
		int r = ftruncate(fd, size) ? -errno : 0;
		close(fd);
		if (r)
			return r;
		id = id_of(path);
	}
	struct wlog_rec h = { .type = WLOG_TRUNCATE, .id = id, .len = (uint64_t)size };
	log_rec(&h, NULL, NULL, NULL);
	return 0;
}

/* The backing file is opened without O_DIRECT: the mount gives the program under test
 * O_DIRECT semantics (direct_io), the backing file only has to store the bytes. */
static int open_backing(const char *path, struct fuse_file_info *fi, int flags, mode_t mode,
			bool created)
{
	int fd = openat(root_fd, rel(path), flags & ~(O_DIRECT | O_NOCTTY), mode);
	if (fd < 0)
		return -errno;
	if (fd >= MAX_FD) {
		close(fd);
		return -EMFILE;
	}
	if (created) {
		const char *name;
		uint64_t parent = parent_of(path, &name);
		struct wlog_rec h = { .type = WLOG_CREATE, .id = parent, .id2 = new_id(path) };
		log_rec(&h, name, NULL, NULL);
	}
	fd_id[fd] = id_of(path);
	fi->fh = (uint64_t)fd;
	fi->direct_io = 1;
	if (flags & O_TRUNC) {
		struct wlog_rec h = { .type = WLOG_TRUNCATE, .id = fd_id[fd], .len = 0 };
		log_rec(&h, NULL, NULL, NULL);
	}
	return 0;
}

static int wl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_mark(path)) {
		fi->fh = MARK_FH;
		fi->direct_io = 1;
		return 0;
	}
	bool existed = id_of(path) != 0;
	return open_backing(path, fi, fi->flags | O_CREAT, mode, !existed);
}

static int wl_open(const char *path, struct fuse_file_info *fi)
{
	if (is_mark(path)) {
		fi->fh = MARK_FH;
		fi->direct_io = 1;
		return 0;
	}
	return open_backing(path, fi, fi->flags & ~(O_CREAT | O_EXCL), 0, false);
}

static int wl_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == MARK_FH)
		return 0;
	ssize_t n = pread((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int wl_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == MARK_FH) {
		struct wlog_rec h = { .type = WLOG_MARK, .data_len = size };
		log_rec(&h, NULL, NULL, buf);
		return (int)size;
	}
	size_t done = 0;
	while (done < size) {
		ssize_t n = pwrite((int)fi->fh, buf + done, size - done, off + (off_t)done);
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	/* (the kernel passes a write's O_DSYNC/RWF_DSYNC in the write's flags) */
	struct wlog_rec h = { .type = WLOG_WRITE,
			      .flags = (fi->flags & O_DSYNC) ? WLOG_DSYNC : 0,
			      .id = fd_id[fi->fh],
			      .off = (uint64_t)off,
			      .data_len = size };
	log_rec(&h, NULL, NULL, buf);
	return (int)size;
}

static int wl_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh != MARK_FH)
		close((int)fi->fh);
	return 0;
}

static int wl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)datasync;
	if (fi->fh == MARK_FH)
		return 0;
	struct wlog_rec h = { .type = WLOG_FSYNC, .id = fd_id[fi->fh] };
	log_rec(&h, NULL, NULL, NULL);
	return 0;
}

static int wl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	uint64_t id = id_of(path);
	if (!id)
		return -ENOENT;
	struct wlog_rec h = { .type = WLOG_FSYNCDIR, .id = id };
	log_rec(&h, NULL, NULL, NULL);
	return 0;
}

static int wl_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == MARK_FH)
		return -EOPNOTSUPP;
	if (fallocate((int)fi->fh, mode, off, len))
		return -errno;
	struct wlog_rec h = { .type = WLOG_FALLOCATE, .flags = (uint32_t)mode,
			      .id = fd_id[fi->fh], .off = (uint64_t)off, .len = (uint64_t)len };
	log_rec(&h, NULL, NULL, NULL);
	return 0;
}

static int wl_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return fstatvfs(root_fd, st) ? -errno : 0;
}

static int wl_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (is_mark(path))
		return 0;
	int r = fi ? futimens((int)fi->fh, tv)
		   : utimensat(root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return r ? -errno : 0;
}

/* Modes are no part of what a power cut leaves for the pool: passed on, not logged. */
static int wl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_mark(path))
		return 0;
	int r = fi ? fchmod((int)fi->fh, mode) : fchmodat(root_fd, rel(path), mode, 0);
	return r ? -errno : 0;
}

static void *wl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* unlink really unlinks (no .fuse_hidden files to log) */
	cfg->hard_remove = 1;
	cfg->direct_io = 1;
	/* sizes and entries are always asked for again: nothing stale after a truncate */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static const struct fuse_operations ops = {
	.init = wl_init,
	.getattr = wl_getattr,
	.readdir = wl_readdir,
	.mkdir = wl_mkdir,
	.mknod = wl_mknod,
	.unlink = wl_unlink,
	.rmdir = wl_rmdir,
	.rename = wl_rename,
	.truncate = wl_truncate,
	.create = wl_create,
	.open = wl_open,
	.read = wl_read,
	.write = wl_write,
	.release = wl_release,
	.fsync = wl_fsync,
	.fsyncdir = wl_fsyncdir,
	.fallocate = wl_fallocate,
	.statfs = wl_statfs,
	.utimens = wl_utimens,
	.chmod = wl_chmod,
};

int main(int argc, char **argv)
{
	if (argc != 4) {
		fputs("usage: wlog_fs BACKING LOG MOUNTPOINT\n", stderr);
		return 2;
	}
	root_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (root_fd < 0) {
		fprintf(stderr, "wlog_fs: cannot open the backing directory %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(root_fd, &st))
		return 1;
	set_id(st.st_ino, WLOG_ROOT_ID);
	log_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		fprintf(stderr, "wlog_fs: cannot create the log %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	/* -s: one thread, so requests are served (and logged) in the order they came */
	char *fargv[] = { argv[0], "-s", "-o", "fsname=wlog,subtype=wlog", argv[3], NULL };
	return fuse_main(5, fargv, &ops, NULL);
}
