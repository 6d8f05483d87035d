#include "cli/cli_offline.h"

#include <string.h>

#include "cli/cli_msg.h"

int cli_open_metadata_arg(const char *cmd, const char **pos, int nr, bool quiet,
                          struct tp_dev **meta, const char **path)
{
	if (nr == 0)
		return cli_usage(cmd, "no metadata file or device given");
	if (nr > 1)
		return cli_usage(cmd, "one metadata file or device only (extra argument '%s')",
		                 pos[1]);
	*path = pos[0];
	int r = thinp_dev_open(*path, THINP_DEV_RDONLY, 0, meta);
	if (r) {
		if (!quiet)
			cli_err(cmd, "cannot open %s: %s", *path, strerror(-r));
		return 1;
	}
	return 0;
}
