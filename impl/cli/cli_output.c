#include "cli/cli_output.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_msg.h"

static bool same(const struct stat *a, const struct stat *b)
{
	/* two nodes of one block device (/dev/dm-0, /dev/mapper/x) share st_rdev */
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int cli_output_not_input(const char *cmd, const char *output, const char *input, int input_fd)
{
	struct stat out, in;
	if (stat(output, &out))
		return 0; /* missing (or unreachable): fopen/open says why */
	if (input ? stat(input, &in) : fstat(input_fd, &in))
		return 0;
	if (!same(&out, &in))
		return 0;
	return cli_usage(cmd,
	                 "the output %s is the input %s: writing it would destroy what is read; "
	                 "write elsewhere",
	                 output, input ? input : "(standard input)");
}

int cli_output_claim(const char *cmd, const char *output, struct tp_dev **held)
{
	*held = NULL;
	struct stat st;
	if (stat(output, &st) || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return 0; /* nothing a pool can hold: created, or /dev/null, a pipe */
	int r = thinp_dev_open(output, THINP_DEV_EXCL, 0, held);
	if (r == -EBUSY)
		return cli_fail(cmd,
		                "%s is in use: " CLI_POOL_OPEN_ELSEWHERE
		                " (or, for a block device, a mount or a device-mapper table) holds "
		                "it; stop it first",
		                output);
	if (r)
		*held = NULL; /* not writable, say: the open for writing reports it */
	return 0;
}
