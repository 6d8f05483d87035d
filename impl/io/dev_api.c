/* The device openers of the public API (thinp.h): the io layer's own calls
 * behind the flags callers outside libthinp may use. */
#include "thinp.h"

#include <errno.h>
#include <sys/stat.h>

#include "io/dev_internal.h"

_Static_assert((unsigned)THINP_DEV_RDONLY == (unsigned)TP_DEV_RDONLY &&
			       (unsigned)THINP_DEV_CREATE == (unsigned)TP_DEV_CREATE &&
			       (unsigned)THINP_DEV_DIRECT == (unsigned)TP_DEV_DIRECT &&
			       (unsigned)THINP_DEV_EXCL == (unsigned)TP_DEV_EXCL,
	       "thinp.h's device flags are the io layer's");

int thinp_dev_open(const char *path, unsigned flags, uint64_t size, struct tp_dev **out)
{
	*out = NULL;
	if (flags & ~(THINP_DEV_RDONLY | THINP_DEV_CREATE | THINP_DEV_DIRECT | THINP_DEV_EXCL |
		      THINP_DEV_LOOP))
		return -EINVAL;
	if (!(flags & THINP_DEV_LOOP))
		return tp_dev_open(path, flags, size, out);
	/* a loop device needs its file first; it is created (sparse) like any file */
	struct stat st;
	if ((flags & THINP_DEV_CREATE) && stat(path, &st) < 0 && errno == ENOENT) {
		struct tp_dev *f;
		int r = tp_dev_open_file(path, TP_DEV_CREATE, size, &f);
		if (r)
			return r;
		tp_dev_close(f);
	}
	return tp_dev_open_loop(path, flags & ~(unsigned)(THINP_DEV_CREATE | THINP_DEV_LOOP), out);
}

int thinp_dev_open_mem(uint64_t size, struct tp_dev **out) { return tp_dev_open_mem(size, out); }

uint64_t thinp_dev_size(const struct tp_dev *d) { return tp_dev_size_get(d); }

int thinp_dev_resize(struct tp_dev *d, uint64_t size) { return tp_dev_resize(d, size); }

void thinp_dev_close(struct tp_dev *d) { tp_dev_close(d); }

int thinp_loop_attach(const char *path, bool direct, char *dev, size_t len, int *fd)
{
	return tp_loop_attach(path, direct, dev, len, fd);
}
