/* The daemon's socket: one request line per connection, answered by "STATUS\n" and the
 * text. Requests run one at a time under the driver's lock, as Docker serialises its
 * device set; the FUSE bridge answers IO on its own threads meanwhile. */
#include "graph/graph_daemon.h"
#include "graph/graph_internal.h"
#include "graph/graph_units.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int tg_daemon_sock_path(const char *root, char *buf, size_t len)
{
	char real[PATH_MAX];
	if (!realpath(root, real))
		return -errno;
	int n = snprintf(buf, len, "%s/thinbench/driver.sock", real);
	return n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)
		       ? -ENAMETOOLONG
		       : 0;
}

struct reply {
	char *buf;
	size_t len, cap;
};

static void add(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (r->len + (size_t)n + 1 > r->cap) {
		size_t cap = (r->len + (size_t)n + 1) * 2;
		char *b = realloc(r->buf, cap);
		if (!b)
			return;
		r->buf = b;
		r->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
	va_end(ap);
	r->len += (size_t)n;
}

/* One device per line: HASH ID SIZE TRANSACTION INITIALIZED DELETED MOUNTS NAME, tab
 * separated, "-" for the base's empty hash. */
static void add_row(struct reply *out, const struct tg_device_view *dv)
{
	add(out, "%s\t%llu\t%llu\t%llu\t%d\t%d\t%u\t%s\n", *dv->hash ? dv->hash : "-",
	    (unsigned long long)dv->device_id, (unsigned long long)dv->size,
	    (unsigned long long)dv->transaction_id, dv->initialized, dv->deleted, dv->mounts,
	    dv->name);
}

static int nwords(char **w, int max, char *line)
{
	int n = 0;
	for (char *s = strtok(line, " "); s && n < max; s = strtok(NULL, " "))
		w[n++] = s;
	return n;
}

static int u64_arg(const char *s, uint64_t *v)
{
	char *end;
	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* "-" stands for the empty hash (the base device) on the wire */
static const char *hash_arg(const char *s) { return strcmp(s, "-") ? s : ""; }

static int handle(struct tg_driver *d, char *line, struct reply *out, bool *shutdown)
{
	if (strlen(line) > TG_REQUEST_MAX) {
		add(out, "request over %d bytes", TG_REQUEST_MAX);
		return -EINVAL;
	}
	char *w[6], err[2048] = "";
	int n = nwords(w, 6, line), r = -EINVAL;
	uint64_t v = 0;
	if (!n) {
		add(out, "empty request");
		return -EINVAL;
	}
	if (!strcmp(w[0], "create") && n == 4 && !u64_arg(w[3], &v)) {
		r = tg_create(d, w[1], hash_arg(w[2]), v, err, sizeof(err));
	} else if (!strcmp(w[0], "remove") && n == 2) {
		r = tg_remove(d, w[1], err, sizeof(err));
	} else if (!strcmp(w[0], "get") && n == 2) {
		char path[PATH_MAX + 300];
		r = tg_get(d, w[1], path, sizeof(path), err, sizeof(err));
		if (!r)
			add(out, "%s", path);
	} else if (!strcmp(w[0], "put") && n == 2) {
		r = tg_put(d, w[1], err, sizeof(err));
	} else if (!strcmp(w[0], "exists") && n == 2) {
		r = 0;
		add(out, "%s", tg_exists(d, hash_arg(w[1])) ? "true" : "false");
	} else if (!strcmp(w[0], "ls") && n == 1) {
		char **ids;
		size_t nr;
		if (!(r = tg_list(d, &ids, &nr))) {
			for (size_t i = 0; i < nr; i++) {
				struct tg_device_view dv;
				if (!tg_device(d, ids[i], &dv, NULL, 0))
					add_row(out, &dv);
			}
			tg_list_free(ids, nr);
		}
	} else if (!strcmp(w[0], "info") && (n == 1 || (n == 2 && !strcmp(w[1], "spaced")))) {
		struct tg_status_pair p[TG_STATUS_MAX];
		size_t nr;
		char warn[512];
		r = tg_status(d, n == 2, p, &nr, warn, sizeof(warn), err, sizeof(err));
		for (size_t i = 0; !r && i < nr; i++)
			add(out, "%s\t%s\n", p[i].key, p[i].value);
		/* one protocol line per line of the warning */
		for (char *w1 = warn, *nl; !r && *w1; w1 = nl ? nl + 1 : w1 + strlen(w1)) {
			nl = strchr(w1, '\n');
			add(out, "WARNING\t%.*s\n", nl ? (int)(nl - w1) : (int)strlen(w1), w1);
		}
	} else if (!strcmp(w[0], "device") && n == 2) {
		struct tg_device_view dv;
		if (!(r = tg_device(d, hash_arg(w[1]), &dv, err, sizeof(err))))
			add_row(out, &dv);
	} else if (!strcmp(w[0], "prune") && n == 1) {
		r = tg_delete_deferred(d);
		if (r >= 0) {
			add(out, "%d", r);
			r = 0;
		}
	} else if (!strcmp(w[0], "resize") && n == 2 && !u64_arg(w[1], &v)) {
		r = tg_resize_pool(d, v, err, sizeof(err));
	} else if (!strcmp(w[0], "stats") && (n == 1 || (n == 2 && !strcmp(w[1], "reset")))) {
		/* one class per line: NAME OPS REQUESTED DATA_READ DATA_WRITTEN DATA_ZEROED
		 * META_READ META_WRITTEN */
		struct tg_class_count c[TG_CLASSES_MAX];
		size_t nr;
		r = tg_pool_stats(d, n == 2, c, &nr, err, sizeof(err));
		for (size_t i = 0; !r && i < nr; i++)
			add(out, "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\n", c[i].name,
			    (unsigned long long)c[i].ops, (unsigned long long)c[i].bytes_requested,
			    (unsigned long long)c[i].data_read, (unsigned long long)c[i].data_written,
			    (unsigned long long)c[i].data_zeroed, (unsigned long long)c[i].meta_read,
			    (unsigned long long)c[i].meta_written);
	} else if (!strcmp(w[0], "shutdown") && n == 1) {
		*shutdown = true;
		r = 0;
	} else {
		add(out, "unknown or malformed request '%s' (create ID PARENT|- SIZE, remove ID, get "
			 "ID, put ID, exists ID, ls, info [spaced], device ID, prune, resize BYTES, "
			 "stats [reset], shutdown)", w[0]);
		return -EINVAL;
	}
	if (r && err[0])
		add(out, "%s", err);
	return r;
}

int tg_daemon_handle(struct tg_driver *d, const char *request, int *status, char **reply,
		     bool *shutdown)
{
	char line[TG_REQUEST_MAX + 2];
	struct reply out = {0};
	*shutdown = false;
	if (strlen(request) > TG_REQUEST_MAX) {
		add(&out, "request over %d bytes", TG_REQUEST_MAX);
		*status = -EINVAL;
	} else {
		snprintf(line, sizeof(line), "%s", request);
		*status = handle(d, line, &out, shutdown);
	}
	*reply = out.buf ? out.buf : strdup("");
	return *reply ? 0 : -ENOMEM;
}

static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		struct pollfd p = {fd, POLLIN, 0};
		/* a client that connects and says nothing cannot hold the daemon */
		if (poll(&p, 1, 10000) <= 0)
			return -ETIMEDOUT;
		ssize_t k = read(fd, buf + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return n + 1 < len ? 0 : -E2BIG;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

int tg_daemon_serve(struct tg_driver *d, const char *sock, unsigned deletion_interval,
		    volatile sig_atomic_t *stop, int ready_fd, char *err, size_t len)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(a.sun_path))
		return tg_err(err, len, -ENAMETOOLONG, "socket path too long: %s", sock);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tg_err(err, len, -errno, "socket: %s", strerror(errno));
	/* the caller holds the pool, so a socket file left here is a dead holder's */
	unlink(sock);
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r || listen(fd, 16)) {
		r = -errno;
		close(fd);
		return tg_err(err, len, r, "cannot serve %s: %s", sock, strerror(-r));
	}
	if (ready_fd >= 0) {
		write_all(ready_fd, "ready\n", 6);
		close(ready_fd);
	}
	bool shutdown = false;
	time_t next_pass = time(NULL) + deletion_interval;
	while (!shutdown && !(stop && *stop)) {
		struct pollfd p = {fd, POLLIN, 0};
		int k = poll(&p, 1, 1000);
		if (deletion_interval && d && time(NULL) >= next_pass) {
			tg_delete_deferred(d);
			next_pass = time(NULL) + deletion_interval;
		}
		if (k <= 0)
			continue;
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		char line[TG_REQUEST_MAX + 2];
		struct reply out = {0};
		int st = read_line(c, line, sizeof(line));
		if (st)
			add(&out, "request too long or not finished by a newline");
		else
			st = handle(d, line, &out, &shutdown);
		if (shutdown) {
			/* nothing answers on the socket any more while the devices are unmounted, and
			 * the reply tells the client that the cleanup is done */
			unlink(sock);
			close(fd);
			fd = -1;
			tg_driver_close(d);
			d = NULL;
		}
		char head[32];
		int hn = snprintf(head, sizeof(head), "%d\n", st);
		write_all(c, head, (size_t)hn);
		if (out.len)
			write_all(c, out.buf, out.len);
		free(out.buf);
		close(c);
	}
	if (fd >= 0) {
		close(fd);
		unlink(sock);
	}
	if (d)
		tg_driver_close(d);
	return 0;
}

int tg_daemon_call(const char *sock, const char *request, int *status, char **reply)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	*reply = NULL;
	if (strlen(sock) >= sizeof(a.sun_path) || strlen(request) > TG_REQUEST_MAX ||
	    strchr(request, '\n'))
		return -EINVAL;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int r = -errno;
		close(fd);
		return r;
	}
	write_all(fd, request, strlen(request));
	write_all(fd, "\n", 1);
	struct reply in = {0};
	char buf[4096];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		add(&in, "%.*s", (int)k, buf);
	}
	close(fd);
	char *nl = in.buf ? strchr(in.buf, '\n') : NULL;
	if (!nl) {
		free(in.buf);
		return -EPROTO;
	}
	*nl = 0;
	*status = atoi(in.buf);
	*reply = strdup(nl + 1);
	free(in.buf);
	return *reply ? 0 : -ENOMEM;
}
