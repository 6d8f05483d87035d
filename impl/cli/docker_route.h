/* Where a `thinp docker` request runs: in the daemon that holds ROOT (through
 * ROOT/thinbench/driver.sock), or, when none does, in this process, which opens the driver
 * for the one request and closes it again. A mount must outlive the command, so `get`
 * starts a daemon when there is none. */
#ifndef THINP_CLI_DOCKER_ROUTE_H
#define THINP_CLI_DOCKER_ROUTE_H

#include <stdbool.h>

#include "graph/graph.h"

/* The options `thinp docker init` recorded in ROOT/thinbench/options. Returns 0 or 1
 * (reported as CMD's failure). */
int docker_load_options(const char *cmd, const char *root, struct tg_options *o,
			enum tg_backend_kind *be);
/* Record OPTS (the init line's "dm.NAME=VALUE" strings) and the backend. 0 or 1. */
int docker_save_options(const char *cmd, const char *root, const char *const *opts, int nr,
			enum tg_backend_kind be);

/* ROOT/thinbench/options as it is now (malloc'd), or NULL when there is none. */
char *docker_options_snapshot(const char *root);
/* Undo a failed init: ROOT removed when this init created it, else the options recorded
 * before it (OLD_OPTIONS, from docker_options_snapshot; NULL: none) put back, so that the
 * home keeps working with what it had. */
void docker_undo_init(const char *root, const char *old_options, bool root_existed);

/* Run REQUEST (graph_daemon.h's protocol) for ROOT. START_DAEMON: start one when none
 * holds ROOT. *STATUS, *REPLY (malloc'd) as the daemon answered. Returns 0, or 1 when it
 * could not be run at all (reported). */
int docker_request(const char *cmd, const char *root, const char *request, bool start_daemon,
		   int *status, char **reply);

/* Start the daemon for ROOT: detached (its log ROOT/thinbench/daemon.log), returning once
 * it serves, or in the foreground until SIGINT/SIGTERM. 0 or 1 (reported). */
int docker_daemon(const char *cmd, const char *root, bool foreground);

/* Is a daemon serving ROOT? */
bool docker_daemon_running(const char *root);

#endif
