/* A regular file as a device: the loop-lvm backing store. */
#include "io/dev_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_dev {
	struct tp_dev dev;
	int fd;
	bool rdonly;
	bool direct;
	struct tp_aio_ctxs aio; /* batched writes, when opened O_DIRECT */
};

static struct file_dev *to_file(struct tp_dev *d)
{
	return tp_container_of(d, struct file_dev, dev);
}

static int file_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	struct file_dev *f = to_file(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	r = tp_fd_pread_full(f->fd, buf, len, off);
	if (r)
		return r;
	tp_ctr_read(d, len);
	return 0;
}

static int file_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct file_dev *f = to_file(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	if (f->rdonly)
		return -EROFS;
	r = tp_fd_pwrite_full(f->fd, buf, len, off);
	if (r)
		return r;
	tp_ctr_write(d, len);
	return 0;
}

static int file_pwritev(struct tp_dev *d, const struct iovec *iov, int cnt, uint64_t off,
			unsigned flags)
{
	struct file_dev *f = to_file(d);
	size_t len;
	int r = tp_iov_check(d, iov, cnt, off, &len);

	if (r)
		return r;
	if (f->rdonly)
		return -EROFS;
	r = tp_fd_pwritev_full(f->fd, iov, cnt, off, flags & TP_WRITE_DSYNC, true);
	if (r)
		return r;
	tp_ctr_write(d, len);
	if (flags & TP_WRITE_DSYNC)
		tp_ctr_flush(d);
	return 0;
}

static int file_pwrite_batch(struct tp_dev *d, const struct tp_dev_write *w, int cnt)
{
	struct file_dev *f = to_file(d);
	/* buffered, io_submit would write in line: plain writes are the same */
	return tp_dev_batch_fd(d, f->direct ? &f->aio : NULL, f->fd, f->rdonly, w, cnt);
}

static int file_flush(struct tp_dev *d)
{
	struct file_dev *f = to_file(d);
	/* fdatasync still writes the inode when the size changed, which is
	 * the only metadata a later read depends on. */
	int r = tp_fd_fsync(f->fd, true);

	if (r)
		return r;
	tp_ctr_flush(d);
	return 0;
}

static int fallocate_range(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* EINVAL is included because some filesystems use it for "this mode, or
 * this alignment, is not supported here"; writing zeros is always correct. */
static bool try_next_method(int r)
{
	return tp_errno_unsupported(-r) || r == -EINVAL;
}

static int file_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct file_dev *f = to_file(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	if (f->rdonly)
		return -EROFS;
	if (len) {
		r = fallocate_range(f->fd, FALLOC_FL_ZERO_RANGE, off, len);
		if (r && try_next_method(r))
			r = fallocate_range(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			                    len);
		if (r && try_next_method(r))
			r = tp_fd_write_zeroes(f->fd, d->align, off, len);
		if (r)
			return r;
	}
	tp_ctr_zero(d, len);
	return 0;
}

static int file_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	struct file_dev *f = to_file(d);
	int r = tp_dev_check_range(d, off, len);

	if (r)
		return r;
	if (f->rdonly)
		return -EROFS;
	if (len) {
		r = fallocate_range(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		/* Discard is advisory: a filesystem without hole punching just
		 * keeps the blocks allocated. */
		if (r && !tp_errno_unsupported(-r))
			return r;
	}
	tp_ctr_discard(d, len);
	return 0;
}

static int file_resize(struct tp_dev *d, uint64_t new_size)
{
	struct file_dev *f = to_file(d);

	if (f->rdonly)
		return -EROFS;
	if (new_size > INT64_MAX)
		return -EFBIG;
	while (ftruncate(f->fd, (off_t)new_size) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	tp_dev_size_set(d, new_size);
	return 0;
}

static int file_refresh_size(struct tp_dev *d)
{
	struct file_dev *f = to_file(d);
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	tp_dev_size_set(d, (uint64_t)st.st_size);
	return 0;
}

static void file_close(struct tp_dev *d)
{
	struct file_dev *f = to_file(d);

	tp_aio_ctxs_destroy(&f->aio);
	close(f->fd);
	free(f);
}

static const struct tp_dev_ops file_ops = {
	.pread = file_pread,
	.pwrite = file_pwrite,
	.flush = file_flush,
	.write_zeroes = file_write_zeroes,
	.discard = file_discard,
	.resize = file_resize,
	.refresh_size = file_refresh_size,
	.close = file_close,
	.pwritev = file_pwritev,
	.pwrite_batch = file_pwrite_batch,
};

/* O_DIRECT needs buffers, offsets and lengths aligned to what the filesystem
 * reports; 4096 covers every logical block size in common use, so it is the
 * floor even where the kernel would accept 512. */
static unsigned direct_align(int fd)
{
	unsigned align = 4096;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (stx.stx_dio_offset_align > align)
			align = stx.stx_dio_offset_align;
		if (stx.stx_dio_mem_align > align)
			align = stx.stx_dio_mem_align;
	}
#else
	(void)fd;
#endif
	return align;
}

static int open_retry(const char *path, int oflags, mode_t mode)
{
	int fd;

	do
		fd = open(path, oflags, mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int tp_dev_open_file(const char *path, unsigned flags, uint64_t size, struct tp_dev **out)
{
	bool rdonly = flags & TP_DEV_RDONLY;
	int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	bool created = false, locked = false;
	struct file_dev *f;
	struct stat st;
	int fd, r;

	*out = NULL;
	if ((flags & TP_DEV_CREATE) && rdonly)
		return -EINVAL;
	if (size > INT64_MAX)
		return -EFBIG;
	if (flags & TP_DEV_DIRECT)
		oflags |= O_DIRECT;

	if (flags & TP_DEV_CREATE) {
		/* O_EXCL tells us whether the file is new, and only a new file
		 * gets sized: an existing one keeps its contents and size. */
		fd = open_retry(path, oflags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0)
			created = true;
		else if (fd == -EEXIST)
			fd = open_retry(path, oflags, 0);
	} else {
		fd = open_retry(path, oflags, 0);
	}
	if (fd < 0)
		return fd;

	/* Lock before sizing so a concurrent EXCL opener of a file we just
	 * created cannot see it half-initialised. */
	if (flags & TP_DEV_EXCL) {
		r = tp_fd_lock_excl(fd);
		if (r)
			goto fail;
		locked = true;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto fail;
	}
	if (created && size) {
		/* ftruncate extends without allocating: the file stays sparse. */
		while (ftruncate(fd, (off_t)size) < 0) {
			if (errno != EINTR) {
				r = -errno;
				goto fail;
			}
		}
		st.st_size = (off_t)size;
	}

	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto fail;
	}
	f->fd = fd;
	f->rdonly = rdonly;
	f->direct = flags & TP_DEV_DIRECT;
	tp_aio_ctxs_init(&f->aio);
	tp_dev_init(&f->dev, &file_ops, path, (uint64_t)st.st_size,
	            (flags & TP_DEV_DIRECT) ? direct_align(fd) : 1);
	f->dev.caps = TP_DEV_CAP_ASYNC_FLUSH;
	*out = &f->dev;
	return 0;

fail:
	/* Only remove a file we created and still own; if the lock failed, a
	 * concurrent opener is already using it. */
	if (created && (locked || !(flags & TP_DEV_EXCL)))
		unlink(path);
	close(fd);
	return r;
}
