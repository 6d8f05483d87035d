/* libthinp as an outsider uses it: the control socket (thinp_control_serve / _call /
 * _stop). A served pool answers its status, messages and resizes; bad requests are
 * refused with a sentence; the socket is 0600, a stale one is replaced, a live one is
 * not; and a write queued on a full pool (queue mode) resumes when another caller
 * extends the pool through the socket. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "thinp.h"

#define BLOCK 65536u

static char tmp[256];
static char sock[300];

static void setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmp, sizeof(tmp), "%s/thinp-ctl.XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(sock, sizeof(sock), "%s/pool/control", tmp);
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
}

/* A pool in TMP/pool of DATA_BLOCKS blocks, queue mode with a wait no test reaches. */
static struct thinp_pool *make_pool(uint64_t data_blocks)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/pool", tmp);
	struct thinp_pool_paths w = { .dir = dir, .data_size = data_blocks * BLOCK,
		                      .meta_size = 4 << 20, .how = THINP_OPEN_CREATE };
	struct thinp_pool_opts o = { .no_commit_timer = true, .no_space_timeout_ms = 3600000 };
	struct thinp_pool *p;
	char err[512];
	ck_assert_msg(thinp_pool_open_paths(&w, &o, &p, NULL, err, sizeof(err)) == 0, "%s", err);
	return p;
}

static struct thinp_control *serve(struct thinp_pool *p)
{
	struct thinp_control *c;
	char err[512];
	ck_assert_msg(thinp_control_serve(p, sock, &c, err, sizeof(err)) == 0, "%s", err);
	return c;
}

/* REQ's reply: the transport must work; *STATUS and the text are the server's. */
static const char *call(const char *req, int *status)
{
	static char reply[THINP_CONTROL_MAX_REPLY];
	int r = thinp_control_call(sock, req, status, reply, sizeof(reply));
	ck_assert_msg(r == 0, "call '%s': %d %s", req, r, reply);
	return reply;
}

/* SOCK as an address for the raw clients below (the fixture's path is short). */
static struct sockaddr_un raw_addr(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ck_assert_uint_lt(strlen(sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	return sa;
}

static void call_ok(const char *req)
{
	int st;
	const char *text = call(req, &st);
	ck_assert_msg(st == 0, "'%s' answered %d %s", req, st, text);
}

START_TEST(status_messages_and_extend_through_the_socket)
{
	struct thinp_pool *p = make_pool(16);
	struct thinp_control *c = serve(p);
	struct stat st;
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	char want[512];
	int s;
	ck_assert_int_eq(thinp_pool_status_line(p, true, want, sizeof(want)), 0);
	ck_assert_str_eq(call("status noflush", &s), want);
	ck_assert_int_eq(s, 0);

	call_ok("create_thin 1");
	call_ok("create_snap 2 1");
	call_ok("set_transaction_id 0 7");
	call_ok("extend data 2097152");
	call_ok("reserve_metadata_snap");
	struct thinp_pool_status ps;
	ck_assert_int_eq(thinp_pool_status(p, true, &ps), 0);
	ck_assert_uint_eq(ps.transaction_id, 7);
	ck_assert_uint_eq(ps.total_data_blocks, 32);
	ck_assert_uint_ne(ps.held_root, 0);
	ck_assert_int_eq(thinp_pool_status_line(p, true, want, sizeof(want)), 0);
	ck_assert_str_eq(call("status", &s), want);
	call_ok("release_metadata_snap");
	call_ok("delete 2");
	struct thinp_thin_status ts;
	ck_assert_int_eq(thinp_thin_status(p, 2, &ts), -ENODATA);
	ck_assert_str_eq(call("thin_status 1", &s), "0 -");
	/* the pool's own failures come back with its sentence */
	const char *t = call("create_thin 1", &s);
	ck_assert_int_eq(s, -EEXIST);
	ck_assert_msg(strstr(t, "create_thin"), "%s", t);
	t = call("set_transaction_id 0 8", &s);
	ck_assert_int_eq(s, -EINVAL);

	thinp_control_stop(c);
	ck_assert_int_ne(stat(sock, &st), 0); /* stop removes the socket */
	char reply[256];
	ck_assert_int_eq(thinp_control_call(sock, "status", &s, reply, sizeof(reply)), -ENOENT);
	ck_assert_msg(strstr(reply, sock), "%s", reply);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(bad_requests_are_refused_with_a_sentence)
{
	struct thinp_pool *p = make_pool(16);
	struct thinp_control *c = serve(p);
	static const struct {
		const char *req, *says;
	} bad[] = {
		{ "", "empty request" },
		{ "frobnicate 1", "unknown request 'frobnicate'" },
		{ "create_thin", "create_thin takes ID, got 0" },
		{ "create_snap 1", "create_snap takes ID ORIGIN_ID, got 1" },
		{ "delete -1", "invalid number '-1'" },
		{ "create_thin 0x10", "invalid number '0x10'" },
		{ "thin_status 99999999999999999999", "invalid number" },
		{ "extend swap 1", "invalid device 'swap'" },
		{ "status now", "invalid status option 'now'" },
		{ "reserve_metadata_snap 1", "takes no arguments, got 1" },
		{ "a b c d e", "too many words" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int s;
		const char *t = call(bad[i].req, &s);
		ck_assert_msg(s == -EINVAL, "'%s' answered %d %s", bad[i].req, s, t);
		ck_assert_msg(strstr(t, bad[i].says), "'%s' answered '%s'", bad[i].req, t);
	}
	/* the client refuses what it cannot send as one bounded line */
	char big[THINP_CONTROL_MAX_REQUEST + 2], reply[256];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	int s;
	ck_assert_int_eq(thinp_control_call(sock, big, &s, reply, sizeof(reply)), -EINVAL);
	ck_assert_int_eq(thinp_control_call(sock, "status\nstatus", &s, reply, sizeof(reply)),
	                 -EINVAL);

	/* a raw client sending more than the bound gets the refusal, not a hang */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = raw_addr();
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char flood[4096];
	memset(flood, 'y', sizeof(flood));
	ck_assert_int_eq(send(fd, flood, sizeof(flood), MSG_NOSIGNAL), (ssize_t)sizeof(flood));
	char got[512] = "";
	size_t n = 0;
	for (ssize_t k; (k = recv(fd, got + n, sizeof(got) - 1 - n, 0)) > 0;)
		n += (size_t)k;
	got[n] = '\0';
	close(fd);
	ck_assert_msg(strstr(got, "-22 request longer than 256 bytes"), "%s", got);

	/* the pool is unharmed and still served */
	call_ok("create_thin 5");
	thinp_control_stop(c);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

START_TEST(a_stale_socket_is_replaced_a_live_one_is_not)
{
	struct thinp_pool *p = make_pool(16);
	/* a socket file left by a process that ended: bound, nobody listening */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = raw_addr();
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	int s;
	char reply[512];
	ck_assert_int_eq(thinp_control_call(sock, "status", &s, reply, sizeof(reply)),
	                 -ECONNREFUSED);
	struct thinp_control *c = serve(p);
	call_ok("status noflush");

	struct thinp_control *c2;
	char err[512];
	ck_assert_int_eq(thinp_control_serve(p, sock, &c2, err, sizeof(err)), -EBUSY);
	ck_assert_msg(strstr(err, sock) && strstr(err, "another process"), "%s", err);
	call_ok("status noflush"); /* the refused server left the live one alone */
	thinp_control_stop(c);

	/* a file that is not a socket is never removed */
	FILE *f = fopen(sock, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(thinp_control_serve(p, sock, &c2, err, sizeof(err)), -EEXIST);
	ck_assert_msg(strstr(err, "not a socket"), "%s", err);
	struct stat st;
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

struct writer {
	struct thinp_thin *t;
	uint64_t len;
	int r;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = malloc(w->len);
	memset(buf, 0xa5, w->len);
	w->r = thinp_write(w->t, buf, w->len, 0, 0, NULL);
	if (!w->r)
		w->r = thinp_flush(w->t, NULL);
	free(buf);
	return NULL;
}

START_TEST(a_queued_write_resumes_when_the_socket_extends_the_pool)
{
	struct thinp_pool *p = make_pool(4);
	struct thinp_control *c = serve(p);
	ck_assert_int_eq(thinp_create_thin(p, 1), 0);
	struct writer w = { .len = 8 * BLOCK };
	ck_assert_int_eq(thinp_thin_open(p, 1, 0, &w.t), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, write_all, &w), 0);
	/* the writer fills 4 blocks, then waits for space: poll until the pool says so */
	int s, tries = 0;
	while (!strstr(call("status noflush", &s), "out_of_data_space")) {
		ck_assert_msg(++tries < 1000000, "the pool never ran out of data space");
		sched_yield();
	}
	ck_assert_int_eq(s, 0);
	call_ok("extend data 1048576");
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(w.r, 0);
	const char *t = call("thin_status 1", &s);
	ck_assert_msg(!strncmp(t, "1024 1023", 9), "%s", t); /* 8 blocks of 128 sectors */
	t = call("status", &s);
	ck_assert_msg(strstr(t, " 8/16 ") && strstr(t, " rw "), "%s", t);
	thinp_thin_close(w.t);
	thinp_control_stop(c);
	ck_assert_int_eq(thinp_pool_close(p), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("public API: the control socket");
	TCase *tc = tcase_create("control");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, status_messages_and_extend_through_the_socket);
	tcase_add_test(tc, bad_requests_are_refused_with_a_sentence);
	tcase_add_test(tc, a_stale_socket_is_replaced_a_live_one_is_not);
	tcase_add_test(tc, a_queued_write_resumes_when_the_socket_extends_the_pool);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
