#include "cli/cli_offline.h"

#include <errno.h>
#include <string.h>

#include "cli/cli_msg.h"
#include "cli/cli_output.h"

int cli_metadata_arg(const char *cmd, const char **pos, int nr, const char **path)
{
	if (nr == 0)
		return cli_usage(cmd, "no metadata file or device given");
	if (nr > 1)
		return cli_usage(cmd, "one metadata file or device only (extra argument '%s')",
		                 pos[1]);
	*path = pos[0];
	return 0;
}

int cli_open_metadata(const char *cmd, const char *path, unsigned flags, bool quiet,
                      const char *busy_hint, struct tp_dev **meta)
{
	int r = thinp_dev_open(path, flags, 0, meta);
	if (r == -EBUSY) {
		if (!quiet)
			cli_err(cmd, "%s: " CLI_POOL_OPEN_ELSEWHERE " (%s)", path, busy_hint);
		return -EBUSY;
	}
	if (r) {
		if (!quiet)
			cli_err(cmd, "cannot open %s: %s", path, strerror(-r));
		return 1;
	}
	return 0;
}
