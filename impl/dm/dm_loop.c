/* Loop devices (loop-lvm) and block device sizes for the kernel backend. Plain ioctls and
 * sysfs: no libdevmapper here. */
#include "dm/dm_backend.h"
#include "io/dev.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tdm_loop_attach(struct tdm_ctx *c, const char *path, char *dev, size_t len, int *fd)
{
	/* buffered, like Docker's loop-lvm */
	int r = tp_loop_attach(path, false, dev, len, fd);
	if (r)
		return tdm_fail(c, -r, "cannot attach %s to a loop device: %s%s", path,
				strerror(-r),
				r == -ENOENT ? " (is the loop module loaded?)" : "");
	return 0;
}

int tdm_loop_set_capacity(struct tdm_ctx *c, const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tdm_fail(c, errno, "cannot open %s: %s", dev, strerror(errno));
	int r = ioctl(fd, LOOP_SET_CAPACITY, 0) ? -errno : 0;
	close(fd);
	if (r)
		return tdm_fail(c, -r,
		                "%s: cannot re-read the backing file's size (losetup -c): %s", dev,
		                strerror(-r));
	return 0;
}

static int read_sysfs(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int r = fgets(buf, (int)len, f) ? 0 : -EIO;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return r;
}

int tdm_loop_lookup(struct tdm_ctx *c, uint32_t major, uint32_t minor, char *dev, size_t dlen,
                    char *backing, size_t blen)
{
	char path[128], link[PATH_MAX], file[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file", major, minor);
	if (read_sysfs(path, file, sizeof(file)))
		return tdm_fail(c, ENXIO, "%u:%u is not a loop device", major, minor);
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major, minor);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return tdm_fail(c, ENXIO, "%u:%u: no such block device", major, minor);
	link[n] = 0;
	const char *base = strrchr(link, '/');
	if (dev)
		snprintf(dev, dlen, "/dev/%s", base ? base + 1 : link);
	if (backing)
		snprintf(backing, blen, "%s", file);
	return 0;
}

int tdm_blockdev_sectors(struct tdm_ctx *c, const char *path, uint32_t major, uint32_t minor,
                         uint64_t *sectors)
{
	if (path) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return tdm_fail(c, errno, "cannot open %s: %s", path, strerror(errno));
		struct stat st;
		uint64_t bytes = 0;
		int r = 0;
		if (fstat(fd, &st))
			r = -errno;
		else if (!S_ISBLK(st.st_mode))
			r = -ENOTBLK;
		else if (ioctl(fd, BLKGETSIZE64, &bytes))
			r = -errno;
		close(fd);
		if (r)
			return tdm_fail(c, -r, "%s: %s", path,
			                r == -ENOTBLK ? "not a block device" : strerror(-r));
		*sectors = bytes / 512;
		return 0;
	}
	char p[96], buf[64];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/size", major, minor);
	if (read_sysfs(p, buf, sizeof(buf)))
		return tdm_fail(c, ENXIO, "%u:%u: no such block device", major, minor);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || *end)
		return tdm_fail(c, EIO, "%s: unexpected '%s'", p, buf);
	*sectors = v;
	return 0;
}
