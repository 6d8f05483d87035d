/* The holder of a ROOT (Docker's daemon role): one process opens the driver and keeps it,
 * so mounts outlive the command that made them; other commands reach it through
 * ROOT/thinbench/driver.sock (docs/graph-driver.md gives the protocol). */
#ifndef THINP_GRAPH_DAEMON_H
#define THINP_GRAPH_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "graph/graph.h"

#define TG_REQUEST_MAX 512

/* ROOT/thinbench/driver.sock for ROOT (as given or resolved). */
int tg_daemon_sock_path(const char *root, char *buf, size_t len);

/* Serve D on SOCK until a `shutdown` request or *STOP, then close D (a `shutdown` is
 * answered once D is closed: every device unmounted). Runs a deferred-deletion pass every
 * DELETION_INTERVAL seconds (Docker's worker ticks every 30; 0 = never). "ready\n" goes to
 * READY_FD (then closed; -1 = none) once the socket listens. */
int tg_daemon_serve(struct tg_driver *d, const char *sock, unsigned deletion_interval,
		    volatile sig_atomic_t *stop, int ready_fd, char *err, size_t len);

/* Run one request in this process, exactly as the daemon would: *STATUS 0 or -errno,
 * *REPLY (malloc'd) its text; *SHUTDOWN set for a `shutdown` (the caller closes D). */
int tg_daemon_handle(struct tg_driver *d, const char *request, int *status, char **reply,
		     bool *shutdown);

/* Send one request line; *STATUS gets the daemon's 0 or -errno, *REPLY (malloc'd) the text.
 * Returns 0 when a daemon answered, -ENOENT / -ECONNREFUSED when none listens. */
int tg_daemon_call(const char *sock, const char *request, int *status, char **reply);

#endif
