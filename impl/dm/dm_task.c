/* libdevmapper task plumbing: the error context (tdm_fail), libdm's log captured and mapped
 * to an errno, the kernel's own words from /dev/kmsg, and running a task with a udev cookie.
 * See dm_backend.h for the error conventions. */
#include <errno.h>
#include <fcntl.h>
#include <libdevmapper.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm/dm_internal.h"

#define DM_CONTROL "/dev/mapper/control"

/* libdm log levels (libdm/misc/dm-logging.h); the bits above 7 are flags (_LOG_STDERR ...). */
#define TDM_LOG_LEVEL_MASK 7
#define TDM_LOG_ERR        3
#define TDM_LOG_WARN       4
#define TDM_LOG_INFO       6

int tdm_fail(struct tdm_ctx *c, int err, const char *fmt, ...)
{
	va_list ap;
	if (err < 0)
		err = -err;
	if (!err)
		err = EIO;
	c->err = err;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return -err;
}

int tdm_available(struct tdm_ctx *c)
{
	c->err = 0;
	if (access(DM_CONTROL, F_OK))
		return tdm_fail(c, ENODEV, "%s", TDM_NO_DM_MESSAGE);
	return 0;
}

/* ---- libdm's log: captured, mapped to an errno, echoed only when verbose ----
 *
 * THE REGISTRY. libdm's log callback (dm_log_with_errno_init) takes no context pointer, so
 * the capture of the libdm call in progress is published here, per thread, for the duration
 * of that call only (capture_begin/capture_end around dm_task_run). It is the only mutable
 * global of the kernel backend. Outside a call (e.g. libdm's destructor) messages are
 * dropped: libdm's raw log never reaches the user unless they asked with -v. */
struct tdm_capture {
	struct tdm_ctx *c;
	int logged_errno; /* errno libdm passed with its first error message */
	size_t used;      /* bytes of c->log in use */
};
static _Thread_local struct tdm_capture *tdm_log_registry;

__attribute__((format(printf, 5, 6))) static void
tdm_log_fn(int level, const char *file, int line, int dm_errno_or_class, const char *f, ...)
{
	(void)file;
	(void)line;
	struct tdm_capture *cap = tdm_log_registry;
	if (!cap)
		return;
	int lvl = level & TDM_LOG_LEVEL_MASK;
	char text[512];
	va_list ap;
	va_start(ap, f);
	vsnprintf(text, sizeof(text), f, ap);
	va_end(ap);
	struct tdm_ctx *c = cap->c;
	if (c->verbose > 1 || (c->verbose && lvl <= TDM_LOG_INFO))
		fprintf(stderr, "libdevmapper: %s\n", text);
	if (lvl > TDM_LOG_WARN)
		return;
	if (lvl <= TDM_LOG_ERR && dm_errno_or_class > 0 && !cap->logged_errno)
		cap->logged_errno = dm_errno_or_class;
	size_t room = sizeof(c->log) - cap->used; /* >= 1: the terminating NUL */
	if (room > 1) {
		int n = snprintf(c->log + cap->used, room, "%s%s", cap->used ? "\n" : "", text);
		if (n > 0)
			cap->used += (size_t)n < room ? (size_t)n : room - 1;
	}
}

static void capture_begin(struct tdm_ctx *c, struct tdm_capture *cap)
{
	cap->c = c;
	cap->logged_errno = 0;
	cap->used = 0;
	c->log[0] = 0;
	dm_log_with_errno_init(tdm_log_fn);
	tdm_log_registry = cap;
}

static void capture_end(void)
{
	tdm_log_registry = NULL;
}

/* Docker's way (pkg/devicemapper/devmapper_log.go): recover the errno from libdm's message
 * text. Longer texts first ("No such device or address" before "No such device"). */
static int errno_from_text(const char *text)
{
	static const struct {
		const char *text;
		int err;
	} map[] = {
		{ "No such device or address", ENXIO },
		{ "No such device", ENODEV },
		{ "File exists", EEXIST },
		{ "Device or resource busy", EBUSY },
		{ "busy", EBUSY },
		{ "No data available", ENODATA },
		{ "Invalid argument", EINVAL },
		{ "No space left on device", ENOSPC },
		{ "Operation not supported", EOPNOTSUPP },
		{ "Permission denied", EACCES },
		{ "Operation not permitted", EPERM },
		{ "Cannot allocate memory", ENOMEM },
		{ "Input/output error", EIO },
		{ "No such file or directory", ENOENT },
		{ "Read-only file system", EROFS },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strstr(text, map[i].text))
			return map[i].err;
	return 0;
}

/* The kernel's own words for a failure: device-mapper lines logged to /dev/kmsg after
 * KMSG_FD was positioned at the end. Best effort (needs root; absent = nothing). */
static void kernel_reason(int kmsg_fd, char *out, size_t len)
{
	out[0] = 0;
	if (kmsg_fd < 0)
		return;
	char rec[1024];
	int lines = 0;
	for (int i = 0; i < 256; i++) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* records overwritten under us */
		if (n <= 0)
			break;
		rec[n] = 0;
		char *msg = strchr(rec, ';');
		if (!msg || !strstr(msg, "device-mapper"))
			continue;
		msg++;
		msg[strcspn(msg, "\n")] = 0;
		if (!strncmp(msg, "device-mapper: ", 15))
			msg += 15;
		if (++lines > 3) { /* keep the last three lines */
			char *semi = strstr(out, "; ");
			if (semi)
				memmove(out, semi + 2, strlen(semi + 2) + 1);
		}
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%s", l ? "; " : "", msg);
	}
}

static int kmsg_open_at_end(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool is_message(enum tdm_op op)
{
	return op >= OP_CREATE_THIN && op <= OP_RELEASE;
}

/* The errno's meaning for this operation (dm-thin.c / dm-thin-metadata.c return codes). */
const char *tdm_meaning(enum tdm_op op, int err)
{
	switch (err) {
	case EEXIST:
		if (op == OP_CREATE_THIN || op == OP_CREATE_SNAP)
			return "the device id is already in use in the pool";
		if (op == OP_CREATE || op == OP_ACTIVATE_THIN)
			return "a device-mapper device of that name already exists";
		break;
	case ENXIO:
		return "no such device-mapper device";
	case EBUSY:
		if (op == OP_REMOVE)
			return "the device is open (in use): close it, or remove it with --deferred";
		if (op == OP_DELETE)
			return "the thin device is active: thinp thin remove it first";
		if (op == OP_RESERVE)
			return "a metadata snapshot is already held: release it first";
		return "the device is busy";
	case ENODATA:
		if (op == OP_CREATE_SNAP)
			return "the origin device id does not exist in the pool";
		if (op == OP_DELETE || op == OP_ACTIVATE_THIN)
			return "no thin device with that id in the pool";
		break;
	case EINVAL:
		if (op == OP_SET_TRANS)
			return "the pool's transaction id is not the expected old value";
		if (op == OP_RELEASE)
			return "no metadata snapshot is held";
		if (op == OP_CREATE || op == OP_RELOAD || op == OP_ACTIVATE_THIN)
			return "the kernel rejected the table";
		if (is_message(op))
			return "the kernel rejected the message";
		break;
	case EOPNOTSUPP:
		if (is_message(op))
			return "the pool refuses messages in read-only or fail mode (out of metadata "
			       "space, needs_check, or failed)";
		break;
	case ENOSPC:
		return "no space left in the pool";
	case EACCES:
	case EPERM:
		return "permission denied (device-mapper needs root)";
	default:
		break;
	}
	return NULL;
}

/* Run DMT (creating, removing and resuming devices with a udev cookie, as Docker did).
 * On failure: the errno (ioctl, else libdm's log errno, else libdm's log text) and
 * "WHAT: meaning (strerror)[; kernel: ...]" in C; returns -errno. */
int tdm_run(struct tdm_ctx *c, struct dm_task *dmt, enum tdm_op op, bool cookie,
            uint16_t udev_flags, const char *what)
{
	struct tdm_capture cap;
	uint32_t ck = 0;
	int kfd = (op == OP_CREATE || op == OP_RELOAD || op == OP_ACTIVATE_THIN || is_message(op)) ?
	                  kmsg_open_at_end() :
	                  -1;
	capture_begin(c, &cap);
	bool cookie_set = cookie && dm_task_set_cookie(dmt, &ck, udev_flags);
	int ok = (!cookie || cookie_set) && dm_task_run(dmt);
	int err = ok ? 0 : dm_task_get_errno(dmt);
	/* every dm_task_set_cookie needs its dm_udev_wait, even after a failure (dmsetup does
	 * the same): it also releases the cookie's semaphore */
	if (cookie_set)
		(void)dm_udev_wait(ck);
	capture_end();
	if (ok) {
		if (kfd >= 0)
			close(kfd);
		c->err = 0;
		return 0;
	}
	if (!err)
		err = cap.logged_errno;
	if (!err)
		err = errno_from_text(c->log);
	if (!err)
		err = EIO;
	char kr[480];
	kernel_reason(kfd, kr, sizeof(kr));
	if (kfd >= 0)
		close(kfd);
	const char *m = tdm_meaning(op, err);
	if (cookie && !cookie_set)
		m = "libdevmapper could not set a udev cookie (semaphores exhausted?)";
	return tdm_fail(c, err, "%s: %s%s%s%s%s%s", what, m ? m : strerror(err), m ? " (" : "",
	                m ? strerror(err) : "", m ? ")" : "", kr[0] ? "; kernel: " : "", kr);
}

struct dm_task *tdm_task(struct tdm_ctx *c, int type, const char *name)
{
	struct dm_task *dmt = dm_task_create(type);
	if (!dmt) {
		tdm_fail(c, ENOMEM, "libdevmapper: cannot create a task");
		return NULL;
	}
	if (name && !dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		tdm_fail(c, EINVAL, "invalid device-mapper name '%s'", name);
		return NULL;
	}
	return dmt;
}

