#include "cli/cli_msg.h"

#include <stdio.h>

static void vmsg(const char *cmd, const char *kind, const char *fmt, va_list ap)
{
	/* one buffered write per message: lines of concurrent commands do not mix */
	char buf[4096];
	int n = cmd ? snprintf(buf, sizeof(buf), "thinp %s: %s", cmd, kind) :
	              snprintf(buf, sizeof(buf), "thinp: %s", kind);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(buf))
		vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", buf);
}

void cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(cmd, "", fmt, ap);
	va_end(ap);
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(cmd, "", fmt, ap);
	va_end(ap);
	return 1;
}

int cli_vusage(const char *cmd, const char *fmt, va_list ap)
{
	vmsg(cmd, "", fmt, ap);
	fprintf(stderr, "Try 'thinp%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
	return 2;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cli_vusage(cmd, fmt, ap);
	va_end(ap);
	return r;
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(cmd, "warning: ", fmt, ap);
	va_end(ap);
}

void cli_report_line(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

void cli_err_text(const char *text)
{
	fputs(text, stderr);
}
