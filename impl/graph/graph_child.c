/* Block IO that can reach this process's own FUSE bridge runs in a child process. A thread
 * waiting for a bio sleeps uninterruptibly; if the process is killed meanwhile, the bridge's
 * threads die, the bio never completes, and the process never exits — so /dev/fuse is never
 * closed and the kernel never aborts the connection: a stuck process and a dead mount. A
 * child that has closed its copy of /dev/fuse cannot hold the connection: when the holder
 * dies, the kernel aborts it, the child's IO fails, and the child exits. */
#include "graph/graph_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only async-signal-safe calls between fork and _exit (other threads may hold locks). */
int tg_child(int keep_fd, int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (keep_fd > 3)
			close_range(3, (unsigned)keep_fd - 1, 0);
		close_range(keep_fd >= 3 ? (unsigned)keep_fd + 1 : 3, ~0u, 0);
		int r = fn(arg);
		_exit(r < 0 ? (-r > 255 ? EIO : -r) : r);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(st))
		return -EINTR;
	return -WEXITSTATUS(st);
}

static int do_mount(void *arg)
{
	const struct tg_mount_req *m = arg;
	return mount(m->dev, m->dir, m->fs, m->flags, m->opts) ? -errno : 0;
}

int tg_child_mount(const char *dev, const char *dir, const char *fs, unsigned long flags,
		   const char *opts)
{
	struct tg_mount_req m = {dev, dir, fs, opts, flags};
	return tg_child(-1, do_mount, &m);
}

static int do_umount(void *arg)
{
	return umount2(arg, 0) ? -errno : 0;
}

int tg_child_umount(const char *dir)
{
	return tg_child(-1, do_umount, (void *)dir);
}

struct fd_op {
	int fd;
	const char *path;
	unsigned long req;
};

static int do_fsync(void *arg)
{
	return fsync(((struct fd_op *)arg)->fd) ? -errno : 0;
}

int tg_child_fsync(int fd)
{
	struct fd_op op = {fd, NULL, 0};
	return tg_child(fd, do_fsync, &op);
}

int tg_child_close(int fd)
{
	/* the child's copy is the last one: the final writeback of the block device happens
	 * when the child exits */
	struct fd_op op = {fd, NULL, 0};
	int r = tg_child(fd, do_fsync, &op);
	close(fd);
	return r;
}

static int do_ioctl_dir(void *arg)
{
	struct fd_op *op = arg;
	int fd = open(op->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = ioctl(fd, op->req, 0) ? -errno : 0;
	close(fd);
	return r;
}

int tg_child_freeze(const char *dir, bool freeze)
{
	struct fd_op op = {-1, dir, freeze ? FIFREEZE : FITHAW};
	return tg_child(-1, do_ioctl_dir, &op);
}

/* The superblock's type as an exit status (100 xfs, 101 ext4, 102 neither). */
static int do_probe(void *arg)
{
	int fd = open(arg, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unsigned char b[4096];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (n < (ssize_t)sizeof(b))
		return n < 0 ? -errno : -EIO;
	if (b[0] == 'X' && b[1] == 'F' && b[2] == 'S' && b[3] == 'B')
		return 100;
	if (b[0x438] == 0x53 && b[0x439] == 0xef)
		return 101;
	return 102;
}

int tg_probe_fs(const char *dev, char *fs, size_t len)
{
	int r = -tg_child(-1, do_probe, (void *)dev);
	if (r == 100 || r == 101) {
		tg_copy(fs, len, r == 100 ? "xfs" : "ext4");
		return 0;
	}
	return r == 102 ? -EINVAL : -r;
}
