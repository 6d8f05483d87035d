/* The control socket of an open pool (thinp.h): the process holding the pool's
 * device locks answers status, resize and message requests from other processes,
 * which cannot open the pool themselves. Without it a write queued on a full pool
 * in queue mode could only time out: nobody else could extend the pool.
 * The server calls the public thinp_* functions only, from one thread of its own,
 * one connection at a time (requests are short; a pool message serialises on the
 * pool's own locks anyway). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "thinp.h"

/* A client that connects and sends nothing must not hold the server (and with it
 * every other client) forever. */
#define REQUEST_WAIT_MS 10000

struct thinp_control {
	struct thinp_pool *pool;
	char *path;
	int listen_fd;
	int stop_pipe[2]; /* a byte in [1] ends the thread */
	dev_t sock_dev;   /* the socket file bound, so stop removes only ours */
	ino_t sock_ino;
	pthread_t thread;
};

static int set_err(char *err, size_t len, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t len, int r, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int make_addr(const char *path, struct sockaddr_un *sa, char *err, size_t len)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return set_err(err, len, -ENAMETOOLONG,
		               "control socket path %s is longer than %zu bytes (a Unix socket's "
		               "limit): use a shorter pool directory path",
		               path, sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

/* A connected socket to PATH, or -errno (ERR says which and what to do). */
static int connect_to(const char *path, char *err, size_t len)
{
	struct sockaddr_un sa;
	int r = make_addr(path, &sa, err, len);
	if (r)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_err(err, len, -errno, "cannot make a socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	r = -errno;
	close(fd);
	if (r == -ENOENT)
		return set_err(err, len, r, "no control socket at %s: no process serves this pool",
		               path);
	if (r == -ECONNREFUSED)
		return set_err(err, len, r,
		               "nobody answers on %s (left by a process that ended): the pool "
		               "is not served",
		               path);
	return set_err(err, len, r, "cannot connect to %s: %s", path, strerror(-r));
}

/* PATH free for a new socket: absent, or a socket file nobody answers on (removed). */
static int clear_stale(const char *path, char *err, size_t len)
{
	struct stat st;
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return set_err(err, len, -errno, "cannot stat %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return set_err(err, len, -EEXIST,
		               "%s exists and is not a socket: remove it to serve the pool there",
		               path);
	char why[256];
	int fd = connect_to(path, why, sizeof(why));
	if (fd >= 0) {
		close(fd);
		return set_err(err, len, -EBUSY,
		               "%s is the control socket of a pool another process holds and "
		               "serves: stop that process first",
		               path);
	}
	if (fd != -ECONNREFUSED)
		return set_err(err, len, fd, "%s", why);
	if (unlink(path) && errno != ENOENT)
		return set_err(err, len, -errno, "cannot remove the stale socket %s: %s", path,
		               strerror(errno));
	return 0;
}

/* ---- the server's side of one request ---- */

struct reply {
	int status;
	char text[THINP_CONTROL_MAX_REPLY - 24]; /* room for "-NNNN " and the newline */
};

static void reply_err(struct reply *rp, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_err(struct reply *rp, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rp->text, sizeof(rp->text), fmt, ap);
	va_end(ap);
	rp->status = r;
}

/* A libthinp call's result, with the pool's sentence on failure. */
static void reply_pool(struct reply *rp, struct thinp_pool *p, int r)
{
	rp->status = r;
	if (!r)
		return;
	thinp_pool_error_copy(p, rp->text, sizeof(rp->text));
	if (!*rp->text)
		snprintf(rp->text, sizeof(rp->text), "%s", strerror(-r));
}

/* Decimal digits only (no sign, no spaces), as dm-thin's messages read them. */
static bool parse_u64(const char *s, uint64_t *v)
{
	if (!*s)
		return false;
	uint64_t x = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

enum verb {
	V_STATUS,
	V_THIN_STATUS,
	V_EXTEND,
	V_CREATE_THIN,
	V_CREATE_SNAP,
	V_DELETE,
	V_SET_TRANSACTION_ID,
	V_RESERVE,
	V_RELEASE,
};

static const struct {
	const char *name;
	unsigned min_args, max_args;
	const char *args; /* for the message naming a wrong count */
} verbs[] = {
	[V_STATUS] = { "status", 0, 1, "[noflush]" },
	[V_THIN_STATUS] = { "thin_status", 1, 1, "ID" },
	[V_EXTEND] = { "extend", 2, 2, "data|metadata BYTES" },
	[V_CREATE_THIN] = { "create_thin", 1, 1, "ID" },
	[V_CREATE_SNAP] = { "create_snap", 2, 2, "ID ORIGIN_ID" },
	[V_DELETE] = { "delete", 1, 1, "ID" },
	[V_SET_TRANSACTION_ID] = { "set_transaction_id", 2, 2, "OLD NEW" },
	[V_RESERVE] = { "reserve_metadata_snap", 0, 0, "" },
	[V_RELEASE] = { "release_metadata_snap", 0, 0, "" },
};
#define NR_VERBS (sizeof(verbs) / sizeof(verbs[0]))
#define VERB_LIST                                                                           \
	"status, thin_status, extend, create_thin, create_snap, delete, set_transaction_id, " \
	"reserve_metadata_snap or release_metadata_snap"

/* The numeric arguments of V from ARGV[FIRST..NR); false (replied) on a bad one. */
static bool numbers(struct reply *rp, enum verb v, char **argv, unsigned first, unsigned nr,
                    uint64_t *out)
{
	for (unsigned i = first; i < nr; i++)
		if (!parse_u64(argv[i], &out[i - first])) {
			reply_err(rp, -EINVAL,
			          "invalid number '%s' in request %s: use decimal digits (%s %s)",
			          argv[i], verbs[v].name, verbs[v].name, verbs[v].args);
			return false;
		}
	return true;
}

static void run(struct thinp_pool *p, char *line, struct reply *rp)
{
	char *argv[4], *save = NULL;
	unsigned nr = 0;
	for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (nr == 4)
			return reply_err(rp, -EINVAL, "too many words in request '%s ...'", argv[0]);
		argv[nr++] = tok;
	}
	if (!nr)
		return reply_err(rp, -EINVAL, "empty request: use " VERB_LIST);
	unsigned v = 0;
	while (v < NR_VERBS && strcmp(argv[0], verbs[v].name))
		v++;
	if (v == NR_VERBS)
		return reply_err(rp, -EINVAL, "unknown request '%.64s': use " VERB_LIST, argv[0]);
	unsigned args = nr - 1;
	if (args < verbs[v].min_args || args > verbs[v].max_args)
		return reply_err(rp, -EINVAL, "request %s takes %s, got %u: use %s%s%s",
		                 verbs[v].name, *verbs[v].args ? verbs[v].args : "no arguments",
		                 args, verbs[v].name, *verbs[v].args ? " " : "", verbs[v].args);
	uint64_t n[2] = { 0, 0 };
	int r;
	switch ((enum verb)v) {
	case V_STATUS: {
		bool noflush = args == 1;
		if (noflush && strcmp(argv[1], "noflush"))
			return reply_err(rp, -EINVAL,
			                 "invalid status option '%.64s': use status or status noflush",
			                 argv[1]);
		r = thinp_pool_status_line(p, noflush, rp->text, sizeof(rp->text));
		return reply_pool(rp, p, r);
	}
	case V_THIN_STATUS:
		if (!numbers(rp, v, argv, 1, nr, n))
			return;
		r = thinp_thin_status_line(p, n[0], rp->text, sizeof(rp->text));
		return reply_pool(rp, p, r);
	case V_EXTEND: {
		bool data = !strcmp(argv[1], "data");
		if (!data && strcmp(argv[1], "metadata"))
			return reply_err(rp, -EINVAL,
			                 "invalid device '%.64s' to extend: use data or metadata",
			                 argv[1]);
		if (!numbers(rp, v, argv, 2, nr, n))
			return;
		r = data ? thinp_pool_resize_data(p, n[0]) : thinp_pool_resize_metadata(p, n[0]);
		return reply_pool(rp, p, r);
	}
	case V_CREATE_THIN:
		if (numbers(rp, v, argv, 1, nr, n))
			reply_pool(rp, p, thinp_create_thin(p, n[0]));
		return;
	case V_CREATE_SNAP:
		if (numbers(rp, v, argv, 1, nr, n))
			reply_pool(rp, p, thinp_create_snap(p, n[0], n[1]));
		return;
	case V_DELETE:
		if (numbers(rp, v, argv, 1, nr, n))
			reply_pool(rp, p, thinp_delete_thin(p, n[0]));
		return;
	case V_SET_TRANSACTION_ID:
		if (numbers(rp, v, argv, 1, nr, n))
			reply_pool(rp, p, thinp_set_transaction_id(p, n[0], n[1]));
		return;
	case V_RESERVE:
		return reply_pool(rp, p, thinp_reserve_metadata_snap(p));
	case V_RELEASE:
		return reply_pool(rp, p, thinp_release_metadata_snap(p));
	}
}

/* Wait for FD to be readable; false when the server is stopping or the client was
 * silent too long. */
static bool wait_readable(struct thinp_control *c, int fd)
{
	struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = c->stop_pipe[0], .events = POLLIN } };
	for (;;) {
		int n = poll(pf, 2, REQUEST_WAIT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 && !pf[1].revents && pf[0].revents;
	}
}

/* One connection: read the request line (bounded), run it, send the reply. */
static void serve_one(struct thinp_control *c, int fd)
{
	struct reply rp = { 0 };
	char line[THINP_CONTROL_MAX_REQUEST + 2];
	size_t got = 0;
	bool done = false, too_long = false;
	while (!done) {
		if (!wait_readable(c, fd))
			return;
		ssize_t n = recv(fd, line + got, sizeof(line) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			done = true; /* EOF ends a request without a newline */
			break;
		}
		got += (size_t)n;
		char *nl = memchr(line, '\n', got);
		if (nl) {
			got = (size_t)(nl - line);
			done = true;
		} else if (got > THINP_CONTROL_MAX_REQUEST) {
			too_long = true;
			done = true;
		}
	}
	line[got] = '\0';
	if (got && line[got - 1] == '\r')
		line[--got] = '\0';
	if (too_long)
		reply_err(&rp, -EINVAL, "request longer than %d bytes: refused",
		          THINP_CONTROL_MAX_REQUEST);
	else if (memchr(line, '\0', got))
		reply_err(&rp, -EINVAL, "request holds a NUL byte: refused");
	else
		run(c->pool, line, &rp);
	for (char *s = rp.text; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
	char out[THINP_CONTROL_MAX_REPLY];
	int len = snprintf(out, sizeof(out), "%d%s%s\n", rp.status, *rp.text ? " " : "", rp.text);
	for (size_t off = 0; len > 0 && off < (size_t)len;) {
		ssize_t n = send(fd, out + off, (size_t)len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
	/* the rest of an over-long request read away: a close with unread bytes would reset
	 * the connection, and the client could lose the reply */
	shutdown(fd, SHUT_WR);
	for (size_t drained = 0; drained < 65536 && wait_readable(c, fd);) {
		ssize_t n = recv(fd, line, sizeof(line), 0);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		drained += n > 0 ? (size_t)n : 0;
	}
}

/* Only the pool owner's uid and root may drive it (the socket's mode says the same;
 * this holds also where a directory's permissions let others reach the file). */
static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void *serve_thread(void *arg)
{
	struct thinp_control *c = arg;
	struct pollfd pf[2] = { { .fd = c->listen_fd, .events = POLLIN },
		                { .fd = c->stop_pipe[0], .events = POLLIN } };
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (!pf[0].revents)
			continue;
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue; /* ECONNABORTED, EINTR, EMFILE: the next poll retries */
		if (peer_allowed(fd))
			serve_one(c, fd);
		close(fd);
	}
	return NULL;
}

int thinp_control_serve(struct thinp_pool *p, const char *sock_path, struct thinp_control **out,
                        char *err, size_t errlen)
{
	*out = NULL;
	struct sockaddr_un sa;
	int r = make_addr(sock_path, &sa, err, errlen);
	if (r || (r = clear_stale(sock_path, err, errlen)))
		return r;
	struct thinp_control *c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(sock_path))) {
		free(c);
		return set_err(err, errlen, -ENOMEM, "out of memory");
	}
	c->pool = p;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0) {
		r = set_err(err, errlen, -errno, "cannot make a socket: %s", strerror(errno));
		goto fail;
	}
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa))) {
		r = set_err(err, errlen, -errno, "cannot make the control socket %s: %s",
		            sock_path, strerror(errno));
		goto fail;
	}
	struct stat st;
	/* the mode before listen(): nobody can connect before it is 0600 */
	if (chmod(sock_path, 0600) || stat(sock_path, &st)) {
		r = set_err(err, errlen, -errno, "cannot set the mode of %s: %s", sock_path,
		            strerror(errno));
		unlink(sock_path);
		goto fail;
	}
	c->sock_dev = st.st_dev;
	c->sock_ino = st.st_ino;
	if (listen(c->listen_fd, 16) || pipe2(c->stop_pipe, O_CLOEXEC)) {
		r = set_err(err, errlen, -errno, "cannot serve %s: %s", sock_path, strerror(errno));
		unlink(sock_path);
		goto fail;
	}
	int e = pthread_create(&c->thread, NULL, serve_thread, c);
	if (e) {
		r = set_err(err, errlen, -e, "cannot start the thread serving %s: %s", sock_path,
		            strerror(e));
		unlink(sock_path);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	for (int i = 0; i < 2; i++)
		if (c->stop_pipe[i] >= 0)
			close(c->stop_pipe[i]);
	free(c->path);
	free(c);
	return r;
}

void thinp_control_stop(struct thinp_control *c)
{
	if (!c)
		return;
	char b = 0;
	while (write(c->stop_pipe[1], &b, 1) < 0 && errno == EINTR)
		;
	pthread_join(c->thread, NULL);
	struct stat st;
	/* another server may have replaced a socket it found unanswered: leave it */
	if (!stat(c->path, &st) && st.st_dev == c->sock_dev && st.st_ino == c->sock_ino)
		unlink(c->path);
	close(c->listen_fd);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	free(c->path);
	free(c);
}

/* ---- the client ---- */

int thinp_control_call(const char *sock_path, const char *request, int *status, char *reply,
                       size_t len)
{
	size_t rlen = strlen(request);
	if (rlen > THINP_CONTROL_MAX_REQUEST)
		return set_err(reply, len, -EINVAL, "request longer than %d bytes",
		               THINP_CONTROL_MAX_REQUEST);
	if (memchr(request, '\n', rlen))
		return set_err(reply, len, -EINVAL, "a request is one line: no newline in it");
	int fd = connect_to(sock_path, reply, len);
	if (fd < 0)
		return fd;
	char buf[THINP_CONTROL_MAX_REPLY + 1];
	memcpy(buf, request, rlen);
	buf[rlen] = '\n';
	int r = 0;
	for (size_t off = 0; off < rlen + 1;) {
		ssize_t n = send(fd, buf + off, rlen + 1 - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = set_err(reply, len, -errno, "cannot send to %s: %s", sock_path,
			            strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = set_err(reply, len, -errno, "no reply from %s: %s", sock_path,
			            strerror(errno));
			goto out;
		}
		if (n == 0 || (got += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	char *nl = memchr(buf, '\n', got), *end;
	errno = 0;
	long st = strtol(buf, &end, 10);
	if (!nl || end == buf || errno || st > 0 || st < -4095 || (*end != ' ' && *end != '\n')) {
		r = set_err(reply, len, -EPROTO, "%s gave no reply line%s", sock_path,
		            got ? " of the protocol (STATUS TEXT)" : " (its server stopped?)");
		goto out;
	}
	*nl = '\0';
	*status = (int)st;
	set_err(reply, len, 0, "%s", *end == ' ' ? end + 1 : "");
out:
	close(fd);
	return r;
}
