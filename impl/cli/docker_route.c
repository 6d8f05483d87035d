/* Routing of `thinp docker` requests (docker_route.h): the daemon's socket first, then this
 * process; and the daemon itself, started detached or in the foreground. */
#include "cli/docker_route.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_msg.h"
#include "graph/graph_daemon.h"

/* Docker's deletion worker ticks every 30 s; tests shorten it (they also run `prune`). */
static unsigned deletion_interval(void)
{
	const char *s = getenv("THINP_DOCKER_DELETION_INTERVAL");
	return s && *s ? (unsigned)strtoul(s, NULL, 10) : 30;
}

static int path_in(const char *root, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/thinbench/%s", root, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int docker_load_options(const char *cmd, const char *root, struct tg_options *o,
			enum tg_backend_kind *be)
{
	char path[PATH_MAX], line[1024], err[512];
	tg_options_default(o);
	*be = TG_BACKEND_LIB;
	if (path_in(root, "options", path, sizeof(path)))
		return cli_fail(cmd, "ROOT '%s' is too long", root);
	FILE *f = fopen(path, "re");
	if (!f)
		return cli_fail(cmd, "'%s' is not a driver home (%s: %s): run 'thinp docker init %s' "
				     "first", root, path, strerror(errno), root);
	int r = 0;
	while (!r && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		if (!strcmp(line, "backend=lib") || !strcmp(line, "backend=kernel"))
			*be = strcmp(line, "backend=lib") ? TG_BACKEND_KERNEL : TG_BACKEND_LIB;
		else if (tg_options_parse(o, line, err, sizeof(err)))
			r = cli_fail(cmd, "%s (recorded in %s)", err, path);
	}
	fclose(f);
	if (!r && tg_options_finish(o, err, sizeof(err)))
		r = cli_fail(cmd, "%s (recorded in %s)", err, path);
	return r;
}

int docker_save_options(const char *cmd, const char *root, const char *const *opts, int nr,
			enum tg_backend_kind be)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/thinbench", root);
	if ((mkdir(root, 0700) && errno != EEXIST) || (mkdir(dir, 0700) && errno != EEXIST))
		return cli_fail(cmd, "cannot create %s: %s", dir, strerror(errno));
	if (path_in(root, "options", path, sizeof(path)))
		return cli_fail(cmd, "ROOT '%s' is too long", root);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return cli_fail(cmd, "cannot write %s: %s", tmp, strerror(errno));
	fprintf(f, "backend=%s\n", be == TG_BACKEND_LIB ? "lib" : "kernel");
	for (int i = 0; i < nr; i++)
		fprintf(f, "%s\n", opts[i]);
	int bad = fflush(f) || fsync(fileno(f));
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path)) {
		unlink(tmp);
		return cli_fail(cmd, "cannot write %s: %s", path, strerror(errno));
	}
	return 0;
}

char *docker_options_snapshot(const char *root)
{
	char path[PATH_MAX];
	if (path_in(root, "options", path, sizeof(path)))
		return NULL;
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int c;
	while (m && (c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(f);
	if (m)
		fclose(m);
	return buf;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

void docker_undo_init(const char *root, const char *old_options, bool root_existed)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	if (!root_existed) {
		/* everything under ROOT is this init's: depth first, never across a mount */
		(void)nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
		return;
	}
	if (path_in(root, "options", path, sizeof(path)))
		return;
	if (!old_options) {
		unlink(path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	int bad = fputs(old_options, f) == EOF;
	bad |= fflush(f) || fsync(fileno(f));
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path))
		unlink(tmp);
}

static FILE *open_log(const char *root)
{
	char path[PATH_MAX];
	if (path_in(root, "daemon.log", path, sizeof(path)))
		return NULL;
	return fopen(path, "ae");
}

static int open_driver(const char *cmd, const char *root, FILE *log, struct tg_driver **d)
{
	struct tg_options o;
	enum tg_backend_kind be;
	char err[2048];
	if (docker_load_options(cmd, root, &o, &be))
		return 1;
	int r = tg_driver_open(root, &o, be, log, d, err, sizeof(err));
	if (r == -EBUSY)
		return cli_fail(cmd, "%s (another process holds the pool of %s and is not its daemon: "
				     "stop it first)", err, root);
	return r ? cli_fail(cmd, "%s", err) : 0;
}

bool docker_daemon_running(const char *root)
{
	char sock[PATH_MAX], *reply = NULL;
	int st;
	if (tg_daemon_sock_path(root, sock, sizeof(sock)))
		return false;
	int r = tg_daemon_call(sock, "exists -", &st, &reply);
	free(reply);
	return r == 0;
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void write_pid(const char *root)
{
	char path[PATH_MAX];
	if (path_in(root, "daemon.pid", path, sizeof(path)))
		return;
	FILE *f = fopen(path, "we");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
}

static int serve(const char *cmd, const char *root, struct tg_driver *d, int ready_fd)
{
	char sock[PATH_MAX], err[512];
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (tg_daemon_sock_path(root, sock, sizeof(sock))) {
		tg_driver_close(d);
		return cli_fail(cmd, "the socket path under '%s' is too long for a Unix socket", root);
	}
	write_pid(root);
	int r = tg_daemon_serve(d, sock, deletion_interval(), &stop_flag, ready_fd, err,
				sizeof(err));
	return r ? cli_fail(cmd, "%s", err) : 0;
}

int docker_daemon(const char *cmd, const char *root, bool foreground)
{
	if (docker_daemon_running(root))
		return cli_fail(cmd, "a daemon already serves %s ('thinp docker cleanup %s' stops it)",
				root, root);
	struct tg_options o;
	enum tg_backend_kind be;
	if (docker_load_options(cmd, root, &o, &be))
		return 1;
	struct tg_driver *d;
	if (foreground) {
		if (open_driver(cmd, root, stderr, &d))
			return 1;
		fflush(stdout);
		return serve(cmd, root, d, dup(1));
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC))
		return cli_fail(cmd, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return cli_fail(cmd, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		FILE *log = open_log(root);
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(log ? fileno(log) : nul, 1);
		dup2(log ? fileno(log) : nul, 2);
		/* the parent learns the outcome from the pipe: a failure's message goes there too */
		FILE *note = fdopen(pfd[1], "w");
		char err[2048];
		struct tg_options oo;
		enum tg_backend_kind bb;
		if (docker_load_options(cmd, root, &oo, &bb))
			_exit(1);
		int r = tg_driver_open(root, &oo, bb, log, &d, err, sizeof(err));
		if (r) {
			fprintf(note, "E%s\n", err);
			fclose(note);
			_exit(1);
		}
		/* serve() says "ready" once the socket listens */
		int fd = dup(pfd[1]);
		fclose(note);
		_exit(serve(cmd, root, d, fd));
	}
	close(pfd[1]);
	char buf[2100] = "";
	FILE *in = fdopen(pfd[0], "r");
	if (!in || !fgets(buf, sizeof(buf), in))
		buf[0] = 0;
	if (in)
		fclose(in);
	buf[strcspn(buf, "\n")] = 0;
	if (!strcmp(buf, "ready"))
		return 0;
	return cli_fail(cmd, "the daemon for %s did not start: %s", root,
			buf[0] == 'E' ? buf + 1 : "it exited (see ROOT/thinbench/daemon.log)");
}

int docker_request(const char *cmd, const char *root, const char *request, bool start_daemon,
		   int *status, char **reply)
{
	char sock[PATH_MAX];
	if (access(root, F_OK))
		return cli_fail(cmd, "'%s': %s (run 'thinp docker init %s' first)", root,
				strerror(errno), root);
	if (tg_daemon_sock_path(root, sock, sizeof(sock)))
		return cli_fail(cmd, "the socket path under '%s' is too long for a Unix socket", root);
	int r = tg_daemon_call(sock, request, status, reply);
	if (!r)
		return 0;
	if (r != -ENOENT && r != -ECONNREFUSED)
		return cli_fail(cmd, "the daemon of %s did not answer: %s", root, strerror(-r));
	if (start_daemon) {
		if (docker_daemon(cmd, root, false))
			return 1;
		r = tg_daemon_call(sock, request, status, reply);
		return r ? cli_fail(cmd, "the daemon of %s did not answer: %s", root, strerror(-r))
			 : 0;
	}
	FILE *log = open_log(root);
	struct tg_driver *d;
	if (open_driver(cmd, root, log, &d)) {
		if (log)
			fclose(log);
		return 1;
	}
	bool shutdown;
	r = tg_daemon_handle(d, request, status, reply, &shutdown);
	tg_driver_close(d);
	if (log)
		fclose(log);
	return r ? cli_fail(cmd, "%s", strerror(-r)) : 0;
}
