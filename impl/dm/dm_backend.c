/* Kernel backend: dm-thin through libdevmapper (see dm_backend.h). */
#include "dm/dm_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdevmapper.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

bool tdm_valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= TDM_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._+:@-", *p)))
			return false;
	return true;
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

/* What an operation was, for the errno's meaning in context. */
enum tdm_op {
	OP_CREATE,
	OP_REMOVE,
	OP_SUSPEND,
	OP_RESUME,
	OP_RELOAD,
	OP_STATUS,
	OP_TABLE,
	OP_INFO,
	OP_LIST,
	OP_VERSION,
	OP_CREATE_THIN,
	OP_CREATE_SNAP,
	OP_DELETE,
	OP_SET_TRANS,
	OP_RESERVE,
	OP_RELEASE,
	OP_MESSAGE,
	OP_ACTIVATE_THIN,
};

static bool is_message(enum tdm_op op)
{
	return op >= OP_CREATE_THIN && op <= OP_MESSAGE;
}

/* The errno's meaning for this operation (dm-thin.c / dm-thin-metadata.c return codes). */
static const char *meaning(enum tdm_op op, int err)
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
static int run(struct tdm_ctx *c, struct dm_task *dmt, enum tdm_op op, bool cookie,
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
	const char *m = meaning(op, err);
	if (cookie && !cookie_set)
		m = "libdevmapper could not set a udev cookie (semaphores exhausted?)";
	return tdm_fail(c, err, "%s: %s%s%s%s%s%s", what, m ? m : strerror(err), m ? " (" : "",
	                m ? strerror(err) : "", m ? ")" : "", kr[0] ? "; kernel: " : "", kr);
}

static struct dm_task *task(struct tdm_ctx *c, int type, const char *name)
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

int tdm_versions(struct tdm_ctx *c, char *driver, size_t dlen, char *library, size_t llen)
{
	if (library && !dm_get_library_version(library, llen))
		snprintf(library, llen, "?");
	if (!driver)
		return 0;
	struct dm_task *dmt = task(c, DM_DEVICE_VERSION, NULL);
	if (!dmt)
		return -c->err;
	int r = run(c, dmt, OP_VERSION, false, 0, "device-mapper version");
	if (!r && !dm_task_get_driver_version(dmt, driver, dlen))
		r = tdm_fail(c, EIO, "device-mapper version: no driver version returned");
	dm_task_destroy(dmt);
	return r;
}

/* ---- devices ---- */

int tdm_info(struct tdm_ctx *c, const char *name, struct tdm_info *info)
{
	memset(info, 0, sizeof(*info));
	struct dm_task *dmt = task(c, DM_DEVICE_INFO, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "info of %s", name);
	int r = run(c, dmt, OP_INFO, false, 0, what);
	struct dm_info i;
	if (!r && !dm_task_get_info(dmt, &i))
		r = tdm_fail(c, EIO, "%s: libdevmapper returned no info", what);
	if (!r && i.exists) {
		info->exists = true;
		info->suspended = i.suspended;
		info->live_table = i.live_table;
		info->deferred_remove = i.deferred_remove;
		info->open_count = i.open_count;
		info->major = i.major;
		info->minor = i.minor;
		info->event_nr = i.event_nr;
	}
	dm_task_destroy(dmt);
	return r;
}

/* A device that must exist: -ENXIO "no device-mapper device NAME (ROLE)" otherwise. */
static int need_device(struct tdm_ctx *c, const char *name, const char *role, struct tdm_info *info)
{
	struct tdm_info tmp;
	if (!info)
		info = &tmp;
	int r = tdm_info(c, name, info);
	if (r)
		return r;
	if (!info->exists)
		return tdm_fail(c, ENXIO, "no device-mapper device named '%s'%s%s%s", name,
		                role ? " (" : "", role ? role : "", role ? ")" : "");
	return 0;
}

int tdm_remove(struct tdm_ctx *c, const char *name, unsigned flags)
{
	struct dm_task *dmt = task(c, DM_DEVICE_REMOVE, name);
	if (!dmt)
		return -c->err;
	bool deferred = flags & TDM_REMOVE_DEFERRED;
	if (deferred && !dm_task_deferred_remove(dmt)) {
		dm_task_destroy(dmt);
		return tdm_fail(c, EOPNOTSUPP, "remove %s: libdevmapper cannot defer removals",
		                name);
	}
	/* A deferred removal may leave the device in place: with udev, keep libdm from deleting
	 * the /dev/mapper node itself (Docker's RemoveDeviceDeferred). Without udev sync the
	 * library fallback is all there is. */
	uint16_t fl = deferred && dm_udev_get_sync_support() ? DM_UDEV_DISABLE_LIBRARY_FALLBACK : 0;
	char what[TDM_NAME_MAX + 32];
	snprintf(what, sizeof(what), "remove %s%s", name, deferred ? " (deferred)" : "");
	int r = run(c, dmt, OP_REMOVE, true, fl, what);
	dm_task_destroy(dmt);
	return r;
}

/* Only a resume takes a udev cookie: it is what makes udev (re)create the device node. */
static int suspend_resume(struct tdm_ctx *c, const char *name, bool resume)
{
	struct dm_task *dmt = task(c, resume ? DM_DEVICE_RESUME : DM_DEVICE_SUSPEND, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "%s %s", resume ? "resume" : "suspend", name);
	int r = run(c, dmt, resume ? OP_RESUME : OP_SUSPEND, resume, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_suspend(struct tdm_ctx *c, const char *name)
{
	return suspend_resume(c, name, false);
}

int tdm_resume(struct tdm_ctx *c, const char *name)
{
	return suspend_resume(c, name, true);
}

/* STATUS or TABLE of a single-target device. */
static int one_target(struct tdm_ctx *c, int type, const char *name, bool noflush,
                      struct tdm_target *t)
{
	memset(t, 0, sizeof(*t));
	struct dm_task *dmt = task(c, type, name);
	if (!dmt)
		return -c->err;
	const char *kind = type == DM_DEVICE_STATUS ? "status" : "table";
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "%s of %s", kind, name);
	if (noflush && !dm_task_no_flush(dmt)) {
		dm_task_destroy(dmt);
		return tdm_fail(c, EINVAL, "%s: cannot set noflush", what);
	}
	int r = run(c, dmt, type == DM_DEVICE_STATUS ? OP_STATUS : OP_TABLE, false, 0, what);
	if (r) {
		dm_task_destroy(dmt);
		return r;
	}
	struct dm_info i;
	if (!dm_task_get_info(dmt, &i) || !i.exists) { /* libdm: ENXIO -> "does not exist" */
		dm_task_destroy(dmt);
		return tdm_fail(c, ENXIO, "%s: %s (%s)", what, meaning(OP_STATUS, ENXIO),
		                strerror(ENXIO));
	}
	uint64_t start = 0, length = 0;
	char *ttype = NULL, *params = NULL;
	void *next = dm_get_next_target(dmt, NULL, &start, &length, &ttype, &params);
	if (!ttype) {
		r = tdm_fail(c, ENODATA, "%s: the device has no live table", what);
	} else if (next) {
		r = tdm_fail(c, EINVAL, "%s: more than one target (not a thin or thin-pool device)",
		             what);
	} else {
		t->start = start;
		t->length = length;
		snprintf(t->type, sizeof(t->type), "%s", ttype);
		snprintf(t->params, sizeof(t->params), "%s", params ? params : "");
	}
	dm_task_destroy(dmt);
	return r;
}

int tdm_table(struct tdm_ctx *c, const char *name, struct tdm_target *t)
{
	return one_target(c, DM_DEVICE_TABLE, name, false, t);
}

/* ---- status parsers ---- */

static bool parse_u64(const char **p, uint64_t *v)
{
	char *end;
	if (**p < '0' || **p > '9')
		return false;
	errno = 0;
	unsigned long long x = strtoull(*p, &end, 10);
	if (errno)
		return false;
	*v = x;
	*p = end;
	return true;
}

/* Next space-separated word into W; false at the end of the text. */
static bool word(const char **p, char *w, size_t len)
{
	while (**p == ' ')
		(*p)++;
	size_t n = strcspn(*p, " \n");
	if (!n)
		return false;
	snprintf(w, len, "%.*s", (int)n, *p);
	*p += n;
	return true;
}

int tdm_parse_pool_status(const char *line, struct thinp_pool_status *st)
{
	memset(st, 0, sizeof(*st));
	const char *p = line;
	while (*p == ' ')
		p++;
	if (!strncmp(p, "Fail", 4) || !strncmp(p, "Error", 5)) {
		st->mode = THINP_MODE_FAIL;
		return 0;
	}
	/* <trans> <used>/<total meta> <used>/<total data> */
	if (!parse_u64(&p, &st->transaction_id) || *p++ != ' ' ||
	    !parse_u64(&p, &st->used_meta_blocks) || *p++ != '/' ||
	    !parse_u64(&p, &st->total_meta_blocks) || *p++ != ' ' ||
	    !parse_u64(&p, &st->used_data_blocks) || *p++ != '/' ||
	    !parse_u64(&p, &st->total_data_blocks))
		return -EINVAL;
	char w[32];
	/* <held root|-> */
	if (!word(&p, w, sizeof(w)))
		return -EINVAL;
	if (strcmp(w, "-")) {
		const char *q = w;
		if (!parse_u64(&q, &st->held_root) || *q)
			return -EINVAL;
	}
	/* the rest arrived over kernel versions; absent fields keep the kernel defaults */
	st->discard_enabled = st->discard_passdown = true;
	if (!word(&p, w, sizeof(w)))
		return 0;
	if (!strcmp(w, "rw"))
		st->mode = THINP_MODE_WRITE;
	else if (!strcmp(w, "ro"))
		st->mode = THINP_MODE_READ_ONLY;
	else if (!strcmp(w, "out_of_data_space"))
		st->mode = THINP_MODE_OUT_OF_DATA_SPACE;
	else
		return -EINVAL;
	while (word(&p, w, sizeof(w))) {
		if (!strcmp(w, "ignore_discard"))
			st->discard_enabled = st->discard_passdown = false;
		else if (!strcmp(w, "discard_passdown"))
			st->discard_enabled = st->discard_passdown = true;
		else if (!strcmp(w, "no_discard_passdown"))
			st->discard_passdown = false;
		else if (!strcmp(w, "error_if_no_space"))
			st->error_if_no_space = true;
		else if (!strcmp(w, "queue_if_no_space"))
			st->error_if_no_space = false;
		else if (!strcmp(w, "needs_check"))
			st->needs_check = true;
		else if (!strcmp(w, "-"))
			;
		else {
			const char *q = w;
			if (!parse_u64(&q, &st->metadata_low_water) || *q)
				return -EINVAL;
		}
	}
	return 0;
}

int tdm_parse_thin_status(const char *line, struct thinp_thin_status *st)
{
	memset(st, 0, sizeof(*st));
	const char *p = line;
	while (*p == ' ')
		p++;
	if (!strncmp(p, "Fail", 4))
		return -EIO;
	if (!parse_u64(&p, &st->mapped_sectors))
		return -EINVAL;
	char w[32];
	if (!word(&p, w, sizeof(w)))
		return -EINVAL;
	if (strcmp(w, "-")) {
		const char *q = w;
		if (!parse_u64(&q, &st->highest_mapped_sector) || *q)
			return -EINVAL;
		st->has_mapped = true;
	}
	return word(&p, w, sizeof(w)) ? -EINVAL : 0;
}

static bool parse_majmin(const char **p, uint32_t *ma, uint32_t *mi, char *buf, size_t len)
{
	uint64_t a, b;
	const char *s = *p;
	while (*s == ' ')
		s++;
	const char *start = s;
	if (!parse_u64(&s, &a) || *s++ != ':' || !parse_u64(&s, &b) || a > UINT32_MAX ||
	    b > UINT32_MAX)
		return false;
	*ma = (uint32_t)a;
	*mi = (uint32_t)b;
	snprintf(buf, len, "%.*s", (int)(s - start), start);
	*p = s;
	return true;
}

int tdm_parse_pool_params(const char *params, struct tdm_pool_table *t)
{
	uint64_t length = t->data_sectors;
	memset(t, 0, sizeof(*t));
	t->data_sectors = length;
	const char *p = params;
	uint64_t bs, nf;
	if (!parse_majmin(&p, &t->meta_major, &t->meta_minor, t->meta_dev, sizeof(t->meta_dev)) ||
	    !parse_majmin(&p, &t->data_major, &t->data_minor, t->data_dev, sizeof(t->data_dev)))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (!parse_u64(&p, &bs) || bs > UINT32_MAX)
		return -EINVAL;
	t->opts.block_sectors = (uint32_t)bs;
	while (*p == ' ')
		p++;
	if (!parse_u64(&p, &t->opts.low_water_blocks))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	if (!parse_u64(&p, &nf))
		return -EINVAL;
	char w[32];
	for (uint64_t i = 0; i < nf; i++) {
		if (!word(&p, w, sizeof(w)))
			return -EINVAL;
		if (!strcasecmp(w, "skip_block_zeroing"))
			t->opts.skip_block_zeroing = true;
		else if (!strcasecmp(w, "ignore_discard"))
			t->opts.ignore_discard = true;
		else if (!strcasecmp(w, "no_discard_passdown"))
			t->opts.no_discard_passdown = true;
		else if (!strcasecmp(w, "read_only"))
			t->opts.read_only = true;
		else if (!strcasecmp(w, "error_if_no_space"))
			t->opts.error_if_no_space = true;
		else
			return -EINVAL;
	}
	return 0;
}

/* ---- thin-pool ---- */

int tdm_pool_params(const char *meta_dev, const char *data_dev, const struct thinp_pool_opts *o,
                    char *buf, size_t len)
{
	/* the kernel takes at most 4 feature args; no_discard_passdown is moot under
	 * ignore_discard, which leaves at most 4 */
	const char *feat[5];
	unsigned nf = 0;
	if (o->skip_block_zeroing)
		feat[nf++] = "skip_block_zeroing";
	if (o->ignore_discard)
		feat[nf++] = "ignore_discard";
	else if (o->no_discard_passdown)
		feat[nf++] = "no_discard_passdown";
	if (o->read_only)
		feat[nf++] = "read_only";
	if (o->error_if_no_space)
		feat[nf++] = "error_if_no_space";
	int n = snprintf(buf, len, "%s %s %u %llu %u", meta_dev, data_dev,
	                 o->block_sectors ? o->block_sectors : 128,
	                 (unsigned long long)o->low_water_blocks, nf);
	for (unsigned i = 0; i < nf && n >= 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, " %s", feat[i]);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int tdm_pool_create(struct tdm_ctx *c, const char *name, const char *meta_dev, const char *data_dev,
                    uint64_t data_sectors, const struct thinp_pool_opts *o)
{
	if (!tdm_valid_name(name))
		return tdm_fail(c, EINVAL,
		                "invalid pool name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -",
		                name);
	char params[1024];
	if (tdm_pool_params(meta_dev, data_dev, o, params, sizeof(params)))
		return tdm_fail(c, ENAMETOOLONG, "create pool %s: device paths too long", name);
	uint32_t bs = o->block_sectors ? o->block_sectors : 128;
	if (data_sectors < bs)
		return tdm_fail(
		        c, EINVAL,
		        "create pool %s: the data device (%llu sectors) is smaller than one "
		        "block (%u sectors)",
		        name, (unsigned long long)data_sectors, bs);
	struct dm_task *dmt = task(c, DM_DEVICE_CREATE, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 32];
	snprintf(what, sizeof(what), "create pool %s", name);
	int r;
	if (!dm_task_add_target(dmt, 0, data_sectors, "thin-pool", params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = run(c, dmt, OP_CREATE, true, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_pool_table(struct tdm_ctx *c, const char *pool, struct tdm_pool_table *t)
{
	struct tdm_target tg;
	int r = one_target(c, DM_DEVICE_TABLE, pool, false, &tg);
	if (r)
		return r;
	if (strcmp(tg.type, "thin-pool"))
		return tdm_fail(c, EINVAL, "'%s' is not a thin pool (its target is %s)", pool,
		                tg.type);
	t->data_sectors = tg.length;
	if (tdm_parse_pool_params(tg.params, t))
		return tdm_fail(c, EINVAL, "table of %s: cannot parse '%s'", pool, tg.params);
	return 0;
}

static int reload(struct tdm_ctx *c, const char *name, uint64_t length, const char *type,
                  const char *params)
{
	struct dm_task *dmt = task(c, DM_DEVICE_RELOAD, name);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 16];
	snprintf(what, sizeof(what), "reload %s", name);
	int r;
	if (!dm_task_add_target(dmt, 0, length, type, params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = run(c, dmt, OP_RELOAD, false, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_pool_grow(struct tdm_ctx *c, const char *pool, uint64_t data_sectors)
{
	struct tdm_target tg;
	int r = one_target(c, DM_DEVICE_TABLE, pool, false, &tg);
	if (r)
		return r;
	if (strcmp(tg.type, "thin-pool"))
		return tdm_fail(c, EINVAL, "'%s' is not a thin pool (its target is %s)", pool,
		                tg.type);
	uint64_t len = data_sectors ? data_sectors : tg.length;
	if (len < tg.length)
		return tdm_fail(c, EINVAL,
		                "grow %s: a thin pool cannot shrink (%llu sectors now, %llu asked)",
		                pool, (unsigned long long)tg.length, (unsigned long long)len);
	/* suspend -> reload -> resume, as Docker's ResizePool did: the resume swaps in the
	 * new table and the pool's preresume grows the data (and metadata) space maps */
	if ((r = tdm_suspend(c, pool)))
		return r;
	r = reload(c, pool, len, "thin-pool", tg.params);
	struct tdm_ctx rc = *c;
	int r2 = tdm_resume(&rc, pool);
	if (r)
		return r; /* the old table is live again (if the resume worked) */
	if (r2) {
		*c = rc;
		return r2;
	}
	return 0;
}

/* ---- messages ---- */

static int message(struct tdm_ctx *c, const char *pool, const char *msg, enum tdm_op op)
{
	struct dm_task *dmt = task(c, DM_DEVICE_TARGET_MSG, pool);
	if (!dmt)
		return -c->err;
	char what[TDM_NAME_MAX + 128];
	snprintf(what, sizeof(what), "%s on pool %s", msg, pool);
	int r;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg))
		r = tdm_fail(c, ENOMEM, "%s: cannot build the message", what);
	else
		r = run(c, dmt, op, false, 0, what);
	dm_task_destroy(dmt);
	return r;
}

int tdm_message(struct tdm_ctx *c, const char *pool, const char *msg)
{
	return message(c, pool, msg, OP_MESSAGE);
}

int tdm_create_thin(struct tdm_ctx *c, const char *pool, uint64_t id)
{
	char m[64];
	snprintf(m, sizeof(m), "create_thin %" PRIu64, id);
	return message(c, pool, m, OP_CREATE_THIN);
}

int tdm_create_snap(struct tdm_ctx *c, const char *pool, uint64_t id, uint64_t origin)
{
	enum {
		MAX_ACTIVE = 16
	};
	char names[MAX_ACTIVE][TDM_NAME_MAX];
	int nr = 0, r = tdm_find_thins(c, pool, origin, names, MAX_ACTIVE, &nr);
	if (r)
		return r;
	if (nr > MAX_ACTIVE)
		return tdm_fail(c, EBUSY,
		                "create_snap: origin %llu has %d active devices (at most %d)",
		                (unsigned long long)origin, nr, MAX_ACTIVE);
	int suspended = 0;
	for (; suspended < nr; suspended++)
		if ((r = tdm_suspend(c, names[suspended])))
			break;
	if (!r) {
		char m[96];
		snprintf(m, sizeof(m), "create_snap %" PRIu64 " %" PRIu64, id, origin);
		r = message(c, pool, m, OP_CREATE_SNAP);
	}
	for (int i = 0; i < suspended; i++) {
		struct tdm_ctx rc = *c;
		int r2 = tdm_resume(&rc, names[i]);
		if (r2 && !r) {
			*c = rc;
			r = r2;
		}
	}
	return r;
}

int tdm_delete_thin(struct tdm_ctx *c, const char *pool, uint64_t id)
{
	char m[64];
	snprintf(m, sizeof(m), "delete %" PRIu64, id);
	return message(c, pool, m, OP_DELETE);
}

int tdm_set_transaction_id(struct tdm_ctx *c, const char *pool, uint64_t cur, uint64_t next)
{
	char m[96];
	snprintf(m, sizeof(m), "set_transaction_id %" PRIu64 " %" PRIu64, cur, next);
	return message(c, pool, m, OP_SET_TRANS);
}

int tdm_reserve_metadata_snap(struct tdm_ctx *c, const char *pool)
{
	return message(c, pool, "reserve_metadata_snap", OP_RESERVE);
}

int tdm_release_metadata_snap(struct tdm_ctx *c, const char *pool)
{
	return message(c, pool, "release_metadata_snap", OP_RELEASE);
}

/* ---- status ---- */

/* The status of NAME, whose one target must be a TYPE (NOUN in the message); its text into
 * LINE unless that is NULL. */
static int typed_status(struct tdm_ctx *c, const char *name, bool noflush, const char *type,
                        const char *noun, struct tdm_target *t, char *line, size_t len)
{
	int r = one_target(c, DM_DEVICE_STATUS, name, noflush, t);
	if (r)
		return r;
	if (strcmp(t->type, type))
		return tdm_fail(c, EINVAL, "'%s' is not %s (its target is %s)", name, noun,
		                t->type);
	if (line)
		snprintf(line, len, "%s", t->params);
	return 0;
}

int tdm_pool_status(struct tdm_ctx *c, const char *pool, bool noflush, struct thinp_pool_status *st,
                    char *line, size_t len)
{
	struct tdm_target t;
	int r = typed_status(c, pool, noflush, "thin-pool", "a thin pool", &t, line, len);
	if (r)
		return r;
	if (st && tdm_parse_pool_status(t.params, st))
		return tdm_fail(c, EPROTO, "status of %s: cannot parse '%s'", pool, t.params);
	return 0;
}

int tdm_thin_status(struct tdm_ctx *c, const char *name, bool noflush, struct thinp_thin_status *st,
                    char *line, size_t len)
{
	struct tdm_target t;
	int r = typed_status(c, name, noflush, "thin", "a thin device", &t, line, len);
	if (r)
		return r;
	if (st) {
		r = tdm_parse_thin_status(t.params, st);
		if (r == -EIO)
			return tdm_fail(c, EIO, "status of %s: the pool has failed (Fail)", name);
		if (r)
			return tdm_fail(c, EPROTO, "status of %s: cannot parse '%s'", name,
			                t.params);
	}
	return 0;
}

/* ---- thin devices ---- */

int tdm_thin_activate(struct tdm_ctx *c, const char *pool, const char *name, uint64_t id,
                      uint64_t size_sectors)
{
	if (!tdm_valid_name(name))
		return tdm_fail(c, EINVAL,
		                "invalid device name '%s': use 1-127 of A-Z a-z 0-9 . _ + : @ -",
		                name);
	if (!size_sectors)
		return tdm_fail(c, EINVAL, "activate %s: the size must be at least one sector",
		                name);
	struct tdm_info pi;
	int r = need_device(c, pool, "the pool", &pi);
	if (r)
		return r;
	char params[64];
	snprintf(params, sizeof(params), "%u:%u %" PRIu64, pi.major, pi.minor, id);
	struct dm_task *dmt = task(c, DM_DEVICE_CREATE, name);
	if (!dmt)
		return -c->err;
	char what[2 * TDM_NAME_MAX + 64];
	snprintf(what, sizeof(what), "activate thin %llu of pool %s as %s", (unsigned long long)id,
	         pool, name);
	if (!dm_task_add_target(dmt, 0, size_sectors, "thin", params))
		r = tdm_fail(c, ENOMEM, "%s: cannot add the table", what);
	else
		r = run(c, dmt, OP_ACTIVATE_THIN, true, 0, what);
	dm_task_destroy(dmt);
	return r;
}

/* Active thin devices of POOL; ID < 0 matches every id. */
static int pool_thins(struct tdm_ctx *c, const char *pool, int64_t id, char (*names)[TDM_NAME_MAX],
                      int max, int *nr)
{
	*nr = 0;
	struct tdm_info pi;
	int r = need_device(c, pool, "the pool", &pi);
	if (r)
		return r;
	struct dm_task *dmt = task(c, DM_DEVICE_LIST, NULL);
	if (!dmt)
		return -c->err;
	if ((r = run(c, dmt, OP_LIST, false, 0, "list devices"))) {
		dm_task_destroy(dmt);
		return r;
	}
	struct dm_names *n = dm_task_get_names(dmt);
	for (; n && n->dev; n = n->next ? (struct dm_names *)((char *)n + n->next) : NULL) {
		struct tdm_ctx sub = { .verbose = c->verbose };
		struct tdm_target t;
		/* devices that vanish or have no table meanwhile are not ours to report */
		if (one_target(&sub, DM_DEVICE_TABLE, n->name, false, &t) || strcmp(t.type, "thin"))
			continue;
		unsigned ma, mi;
		unsigned long long tid;
		if (sscanf(t.params, "%u:%u %llu", &ma, &mi, &tid) != 3 || ma != pi.major ||
		    mi != pi.minor || (id >= 0 && tid != (unsigned long long)id))
			continue;
		if (*nr < max)
			snprintf(names[*nr], TDM_NAME_MAX, "%s", n->name);
		(*nr)++;
	}
	dm_task_destroy(dmt);
	c->err = 0;
	return 0;
}

int tdm_find_thins(struct tdm_ctx *c, const char *pool, uint64_t id, char (*names)[TDM_NAME_MAX],
                   int max, int *nr)
{
	if (id > 0xFFFFFF)
		return tdm_fail(c, EINVAL, "invalid device id %llu: ids are 24-bit",
		                (unsigned long long)id);
	return pool_thins(c, pool, (int64_t)id, names, max, nr);
}

int tdm_pool_thins(struct tdm_ctx *c, const char *pool, char (*names)[TDM_NAME_MAX], int max,
                   int *nr)
{
	return pool_thins(c, pool, -1, names, max, nr);
}
