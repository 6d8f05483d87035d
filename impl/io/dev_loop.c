/* Loop devices over files: Docker's loop-lvm put the pool's sparse files
 * behind /dev/loopN, so the pool sees block devices (buffered, or with
 * --direct-io=on). Attachments use autoclear: the loop detaches itself when
 * its last opener closes, so nothing is left behind after a crash. */
#include "io/dev_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
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
 * LOOP_SET_STATUS64. */
static int bind_loop(int lfd, int file_fd, const char *name, bool direct)
{
	uint32_t flags = LO_FLAGS_AUTOCLEAR | (direct ? LO_FLAGS_DIRECT_IO : 0);
	struct loop_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (uint32_t)file_fd;
	cfg.info.lo_flags = flags;
	set_file_name(cfg.info.lo_file_name, name);
	if (!ioctl(lfd, LOOP_CONFIGURE, &cfg))
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	if (ioctl(lfd, LOOP_SET_FD, file_fd))
		return -errno;
	struct loop_info64 info;
	memset(&info, 0, sizeof(info));
	info.lo_flags = flags & ~(uint32_t)LO_FLAGS_DIRECT_IO;
	set_file_name(info.lo_file_name, name);
	if (ioctl(lfd, LOOP_SET_STATUS64, &info) ||
	    (direct && ioctl(lfd, LOOP_SET_DIRECT_IO, 1UL))) {
		int e = errno;
		(void)ioctl(lfd, LOOP_CLR_FD, 0);
		return -e;
	}
	return 0;
}

/* FILE_FD (may be NULL): also return our descriptor of the backing file (to grow it). */
static int attach(const char *path, bool direct, bool excl, char *dev, size_t len, int *fd,
                  int *file_fd)
{
	*fd = -1;
	char real[PATH_MAX];
	if (!realpath(path, real))
		return -errno;
	int ffd = open(real, O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (ffd < 0)
		return -errno;
	/* The loop keeps this open file description, and with it the lock, for
	 * as long as it stays attached: a second opener of the file fails as it
	 * would on the plain file. */
	if (excl && flock(ffd, LOCK_EX | LOCK_NB)) {
		int e = errno == EWOULDBLOCK ? EBUSY : errno;
		close(ffd);
		return -e;
	}
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		int e = errno;
		close(ffd);
		return -e;
	}
	int r = -EBUSY;
	for (int attempt = 0; attempt < 20; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = -errno;
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
			break;
		}
		r = bind_loop(lfd, ffd, real, direct);
		if (!r) {
			*fd = lfd;
			break;
		}
		close(lfd);
		if (r != -EBUSY) /* EBUSY: another process took it first; try the next */
			break;
	}
	close(ctl);
	if (file_fd && !r)
		*file_fd = ffd;
	else
		close(ffd); /* the loop holds its own reference to the file */
	return r;
}

int tp_loop_attach(const char *path, bool direct, char *dev, size_t len, int *fd)
{
	return attach(path, direct, false, dev, len, fd, NULL);
}

int tp_dev_open_loop(const char *path, unsigned flags, struct tp_dev **out)
{
	char dev[64];
	int lfd, ffd;
	int r = attach(path, flags & TP_DEV_DIRECT, flags & TP_DEV_EXCL, dev, sizeof(dev), &lfd,
	               &ffd);
	if (r)
		return r;
	r = tp_dev_open_block(dev, flags & ~(unsigned)TP_DEV_CREATE, out);
	/* the device's own descriptor now keeps the loop; ours can go, and with
	 * autoclear the loop detaches when the device is closed */
	close(lfd);
	if (r) {
		close(ffd);
		return r;
	}
	snprintf((*out)->name, sizeof((*out)->name), "%s (loop over %s)", dev, path);
	return tp_block_set_backing_file(*out, ffd); /* block devices always take it */
}
