/* A raw block device: the direct-lvm backing store. Also the generic
 * tp_dev_open()/tp_dev_close() entry points. */
#include "io/dev_internal.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* BLKZEROOUT and BLKDISCARD take ranges in bytes but insist on 512-byte
 * sector alignment whatever the logical block size. */
#define SECTOR 512u

struct block_dev {
	struct tp_dev dev;
	int fd;
	int file_fd; /* a loop device's backing file (tp_block_set_backing_file), else -1 */
	bool rdonly;
	bool direct;
	struct tp_aio_ctxs aio; /* batched writes, when opened O_DIRECT */
};

static struct block_dev *to_block(struct tp_dev *d)
{
	return tp_container_of(d, struct block_dev, dev);
}

static int block_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	struct block_dev *b = to_block(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	r = tp_fd_pread_full(b->fd, buf, len, off);
	if (r)
		return r;
	tp_ctr_read(d, len);
	return 0;
}

static int block_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct block_dev *b = to_block(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	if (b->rdonly)
		return -EROFS;
	r = tp_fd_pwrite_full(b->fd, buf, len, off);
	if (r)
		return r;
	tp_ctr_write(d, len);
	return 0;
}

static int block_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
			 unsigned flags)
{
	struct block_dev *b = to_block(d);
	size_t len;
	int r = tp_iov_check(d, iov, cnt, off, &len);

	if (r)
		return r;
	if (b->rdonly)
		return -EROFS;
	r = tp_fd_pwritev_full(b->fd, iov, cnt, off, flags & TP_WRITE_DSYNC, false);
	if (r)
		return r;
	tp_ctr_write(d, len);
	if (flags & TP_WRITE_DSYNC)
		tp_ctr_flush(d);
	return 0;
}

static int block_pwrite_batch(struct tp_dev *d, const struct tp_dev_write *w, int cnt)
{
	struct block_dev *b = to_block(d);
	/* without O_DIRECT io_submit would write in line: plain writes are the same */
	return tp_dev_batch_fd(d, b->direct ? &b->aio : NULL, b->fd, b->rdonly, w, cnt);
}

static int block_flush(struct tp_dev *d)
{
	/* On a block device fsync is what issues the cache flush; there is no
	 * separate data-only variant worth having. */
	int r = tp_fd_fsync(to_block(d)->fd, false);

	if (r)
		return r;
	tp_ctr_flush(d);
	return 0;
}

static int range_ioctl(int fd, unsigned long req, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	while (ioctl(fd, req, range) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int block_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct block_dev *b = to_block(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	if (b->rdonly)
		return -EROFS;
	if (len) {
		r = -EINVAL;
		if (off % SECTOR == 0 && len % SECTOR == 0)
			r = range_ioctl(b->fd, BLKZEROOUT, off, len);
		/* Writing zeros is always correct, so any refusal of the
		 * ioctl (unsupported, unaligned) falls back rather than fails. */
		if (r && (tp_errno_unsupported(-r) || r == -EINVAL))
			r = tp_fd_write_zeroes(b->fd, d->align, off, len);
		if (r)
			return r;
	}
	tp_ctr_zero(d, len);
	return 0;
}

static int block_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct block_dev *b = to_block(d);
	int r = tp_dev_check_range(d, off, len);
	uint64_t start, end;

	if (r)
		return r;
	if (b->rdonly)
		return -EROFS;
	/* Discard is advisory, so an unaligned range shrinks to the whole
	 * sectors inside it rather than failing. */
	start = (off + SECTOR - 1) / SECTOR * SECTOR;
	end = (off + len) / SECTOR * SECTOR;
	if (end > start) {
		r = range_ioctl(b->fd, BLKDISCARD, start, end - start);
		if (r && !tp_errno_unsupported(-r))
			return r;
	}
	tp_ctr_discard(d, len);
	return 0;
}

static int read_size(int fd, uint64_t *size)
{
	if (ioctl(fd, BLKGETSIZE64, size) < 0)
		return -errno;
	return 0;
}

/* Only a loop device over a file can be grown from here, the way loop-lvm's operators grow
 * it (`truncate -s`, then `losetup -c`); any other block device is grown by its owner
 * (lvextend) and picked up with refresh_size. */
static int block_resize(struct tp_dev *d, uint64_t new_size)
{
	struct block_dev *b = to_block(d);

	if (b->file_fd < 0)
		return -ENOTSUP;
	if (b->rdonly)
		return -EROFS;
	if (new_size < tp_dev_size_get(d) || new_size % SECTOR)
		return -EINVAL;
	if (ftruncate(b->file_fd, (off_t)new_size) < 0 || ioctl(b->fd, LOOP_SET_CAPACITY, 0) < 0)
		return -errno;
	uint64_t size;
	int r = read_size(b->fd, &size);
	if (r)
		return r;
	if (size < new_size) /* the loop did not take the new size */
		return -EIO;
	tp_dev_size_set(d, size);
	return 0;
}

static int block_refresh_size(struct tp_dev *d)
{
	uint64_t size;
	int r = read_size(to_block(d)->fd, &size);
	if (!r)
		tp_dev_size_set(d, size);
	return r;
}

static void block_close(struct tp_dev *d)
{
	struct block_dev *b = to_block(d);

	tp_aio_ctxs_destroy(&b->aio);
	close(b->fd);
	if (b->file_fd >= 0)
		close(b->file_fd);
	free(b);
}

static const struct tp_dev_ops block_ops = {
	.pread = block_pread,
	.pwrite = block_pwrite,
	.flush = block_flush,
	.write_zeroes = block_write_zeroes,
	.discard = block_discard,
	.resize = block_resize,
	.refresh_size = block_refresh_size,
	.close = block_close,
	.pwritev = block_pwritev,
	.pwrite_batch = block_pwrite_batch,
};

int tp_dev_open_block(const char *path, unsigned flags, struct tp_dev **out)
{
	bool rdonly = flags & TP_DEV_RDONLY;
	int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	unsigned align = 1;
	struct block_dev *b;
	struct stat st;
	uint64_t size;
	int fd, r;

	*out = NULL;
	if (flags & TP_DEV_DIRECT)
		oflags |= O_DIRECT;
	/* On a block device O_EXCL (without O_CREAT) is the kernel's own
	 * exclusive claim: it also keeps out mounts and other O_EXCL openers
	 * such as LVM, which a flock alone would not. */
	if (flags & TP_DEV_EXCL)
		oflags |= O_EXCL;

	do
		fd = open(path, oflags);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISBLK(st.st_mode)) {
		r = -ENOTBLK;
		goto fail;
	}
	/* The flock is the udev convention: it stops probing of the device
	 * while we own it. */
	if (flags & TP_DEV_EXCL) {
		r = tp_fd_lock_excl(fd);
		if (r)
			goto fail;
	}
	r = read_size(fd, &size);
	if (r)
		goto fail;
	if (flags & TP_DEV_DIRECT) {
		int ssz;

		if (ioctl(fd, BLKSSZGET, &ssz) < 0) {
			r = -errno;
			goto fail;
		}
		align = ssz > 0 ? (unsigned)ssz : SECTOR;
	}

	b = calloc(1, sizeof(*b));
	if (!b) {
		r = -ENOMEM;
		goto fail;
	}
	b->fd = fd;
	b->file_fd = -1;
	b->rdonly = rdonly;
	b->direct = flags & TP_DEV_DIRECT;
	tp_aio_ctxs_init(&b->aio);
	tp_dev_init(&b->dev, &block_ops, path, size, align);
	b->dev.caps = TP_DEV_CAP_ASYNC_FLUSH;
	*out = &b->dev;
	return 0;

fail:
	close(fd);
	return r;
}

int tp_block_set_backing_file(struct tp_dev *d, int file_fd)
{
	if (d->ops != &block_ops)
		return -EINVAL;
	struct block_dev *b = to_block(d);
	if (b->file_fd >= 0)
		close(b->file_fd);
	b->file_fd = file_fd;
	return 0;
}

int tp_dev_open(const char *path, unsigned flags, uint64_t size, struct tp_dev **out)
{
	struct stat st;

	*out = NULL;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT && (flags & TP_DEV_CREATE))
			return tp_dev_open_file(path, flags, size, out);
		return -errno;
	}
	if (S_ISBLK(st.st_mode))
		return tp_dev_open_block(path, flags, out);
	if (S_ISREG(st.st_mode))
		return tp_dev_open_file(path, flags, size, out);
	return -EINVAL;
}

void tp_dev_close(struct tp_dev *d)
{
	if (d) {
		tp_flusher_stop(d);
		d->ops->close(d);
	}
}
