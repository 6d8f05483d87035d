/* Everything thinp writes to stderr goes through here, so every message has
 * one shape:
 *   thinp CMD: MESSAGE                  a failure (the command exits 1)
 *   thinp CMD: MESSAGE                  a usage error (exit 2): the command
 *   Try 'thinp CMD --help'.             line was wrong, nothing was done
 * CMD is the command as typed ("pool create", "dump"); NULL gives
 * "thinp: MESSAGE", for what concerns the tool or the host rather than one
 * command. */
#ifndef THINP_CLI_MSG_H
#define THINP_CLI_MSG_H

#include <stdarg.h>

#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* "thinp CMD: MESSAGE". */
void cli_err(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* cli_err, then returns 1: `return cli_fail(...)` ends a failing command. */
int cli_fail(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* The message and the --help hint; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
int cli_vusage(const char *cmd, const char *fmt, va_list ap);
/* "thinp CMD: warning: MESSAGE" (the command goes on). */
void cli_warn(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* One line of a report that has its own format (check's faults, as
 * thin_check prints them), as is. */
void cli_report_line(const char *line);
/* A block of text (the tool's usage after a bad command line), as is. */
void cli_err_text(const char *text);

#endif
