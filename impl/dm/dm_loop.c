/* Loop devices (loop-lvm) and block device sizes for the kernel backend. Plain ioctls and
 * sysfs: no libdevmapper here. */
#include "dm/dm_backend.h"

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

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* lo_file_name is informational (losetup shows it); long paths are cut, as losetup does */
static void set_file_name(uint8_t *dst, const char *name)
{
	size_t n = strlen(name);
	if (n >= LO_NAME_SIZE)
		n = LO_NAME_SIZE - 1;
	memcpy(dst, name, n);
	dst[n] = 0;
}

/* Bind FILE_FD to the loop device LFD: LOOP_CONFIGURE (5.8+), else LOOP_SET_FD +
 * LOOP_SET_STATUS64. Returns 0 or -errno. */
static int bind_loop(int lfd, int file_fd, const char *name)
{
	struct loop_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (uint32_t)file_fd;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	set_file_name(cfg.info.lo_file_name, name);
	if (!ioctl(lfd, LOOP_CONFIGURE, &cfg))
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	if (ioctl(lfd, LOOP_SET_FD, file_fd))
		return -errno;
	struct loop_info64 info;
	memset(&info, 0, sizeof(info));
	info.lo_flags = LO_FLAGS_AUTOCLEAR;
	set_file_name(info.lo_file_name, name);
	if (ioctl(lfd, LOOP_SET_STATUS64, &info)) {
		int e = errno;
		(void)ioctl(lfd, LOOP_CLR_FD, 0);
		return -e;
	}
	return 0;
}

int tdm_loop_attach(struct tdm_ctx *c, const char *path, char *dev, size_t len, int *fd)
{
	*fd = -1;
	char real[PATH_MAX];
	if (!realpath(path, real))
		return tdm_fail(c, errno, "cannot attach %s to a loop device: %s", path,
		                strerror(errno));
	int ffd = open(real, O_RDWR | O_CLOEXEC);
	if (ffd < 0)
		return tdm_fail(c, errno, "cannot open %s: %s", real, strerror(errno));
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		int e = errno;
		close(ffd);
		return tdm_fail(c, e,
		                "cannot open /dev/loop-control (is the loop module loaded?): %s",
		                strerror(e));
	}
	int r = -EBUSY;
	for (int attempt = 0; attempt < 20; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = tdm_fail(c, errno, "no free loop device: %s", strerror(errno));
			break;
		}
		snprintf(dev, len, "/dev/loop%d", n);
		int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			r = -errno;
			if (errno == ENOENT) { /* devtmpfs has not made the node yet */
				nap_ms(50);
				continue;
			}
			r = tdm_fail(c, -r, "cannot open %s: %s", dev, strerror(-r));
			break;
		}
		r = bind_loop(lfd, ffd, real);
		if (!r) {
			*fd = lfd;
			break;
		}
		close(lfd);
		if (r != -EBUSY) { /* EBUSY: another process took it first; try the next */
			r = tdm_fail(c, -r, "cannot attach %s to %s: %s", real, dev, strerror(-r));
			break;
		}
	}
	if (r == -EBUSY)
		r = tdm_fail(c, EBUSY,
		             "cannot attach %s: every free loop device was taken meanwhile", real);
	close(ctl);
	close(ffd); /* the loop holds its own reference to the file */
	return r;
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
