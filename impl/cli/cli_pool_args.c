#include "cli/cli_pool_args.h"

#include <string.h>

#include "cli/cli_msg.h"
#include "cli/cli_thins.h"

void cli_pool_args_init(struct cli_pool_args *a, const char *cmd, const struct cli_global *g)
{
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->backend = g->backend;
	a->verbose = g->verbose;
}

/* --data-size / --metadata-size: 0 is refused, not taken for "not given" (the defaults).
 * The metadata's MAX is the kernel's: dm-thin warns about a bigger device and leaves the
 * rest unused; asking for a bigger one is a mistake, said before any file is made. */
static int pool_size(struct cli_pool_args *a, const char *opt, const char *arg, uint64_t max,
                     uint64_t *out)
{
	uint64_t v;
	if (cli_size(a->cmd, opt, arg, &v))
		return 2;
	if (!v)
		return cli_usage(a->cmd, "invalid %s '%s': must be > 0", opt, arg);
	if (v > max)
		return cli_usage(a->cmd,
		                 "invalid %s '%s': too large: dm-thin uses at most %llu bytes "
		                 "(15.875 GiB, 4161600 blocks of 4 KiB) of metadata",
		                 opt, arg, (unsigned long long)max);
	*out = v;
	return 0;
}

int cli_pool_option(void *ctx, int c, const char *arg, const char *opt)
{
	struct cli_pool_args *a = ctx;
	uint64_t v;
	switch (c) {
	case CLI_OPT_DATA:
		a->data = arg;
		return 0;
	case CLI_OPT_METADATA:
		a->metadata = arg;
		return 0;
	case CLI_OPT_BLOCK_SIZE:
		if (cli_size(a->cmd, opt, arg, &v))
			return 2;
		if (v < 65536 || v > (1ull << 30) || v % 65536)
			return cli_usage(a->cmd, "invalid %s '%s': use 64k..1g, a multiple of 64k",
			                 opt, arg);
		a->opts.block_sectors = (uint32_t)(v / 512);
		a->have_block_size = true;
		return 0;
	case CLI_OPT_LOW_WATER:
		return cli_u64(a->cmd, opt, arg, UINT64_MAX, &a->opts.low_water_blocks);
	case CLI_OPT_BACKEND:
		if (!strcmp(arg, "user"))
			a->backend = CLI_BACKEND_USER;
		else if (!strcmp(arg, "kernel"))
			a->backend = CLI_BACKEND_KERNEL;
		else
			return cli_usage(a->cmd, "invalid %s '%s': use user or kernel", opt, arg);
		return 0;
	case 'v':
		a->verbose++;
		return 0;
	case CLI_OPT_NAME:
		a->name = arg;
		return 0;
	case CLI_OPT_DATA_SIZE:
		return pool_size(a, opt, arg, UINT64_MAX, &a->data_size);
	case CLI_OPT_METADATA_SIZE:
		return pool_size(a, opt, arg, CLI_META_SIZE_MAX, &a->meta_size);
	case CLI_OPT_DEFERRED:
		a->deferred = true;
		return 0;
	case CLI_OPT_NOFLUSH:
		a->noflush = true;
		return 0;
	case CLI_OPT_FIELDS:
		a->fields = true;
		return 0;
	case CLI_OPT_SKIP_BLOCK_ZEROING:
		a->opts.skip_block_zeroing = true;
		return 0;
	case CLI_OPT_ERROR_IF_NO_SPACE:
		a->opts.error_if_no_space = true;
		return 0;
	case CLI_OPT_IGNORE_DISCARD:
		a->opts.ignore_discard = true;
		return 0;
	case CLI_OPT_NO_DISCARD_PASSDOWN:
		a->opts.no_discard_passdown = true;
		return 0;
	case CLI_OPT_READ_ONLY:
		a->opts.read_only = true;
		return 0;
	case CLI_OPT_DIRECT:
		a->direct = true;
		return 0;
	case CLI_OPT_LOSETUP:
		a->losetup = true;
		return 0;
	case CLI_OPT_FORCE:
		a->force = true;
		return 0;
	case CLI_OPT_COW:
		/* libthinp's runtime choice, not a table feature: nothing on disk depends on it */
		if (!strcmp(arg, "kernel"))
			a->opts.cow_policy = THINP_COW_KERNEL;
		else if (!strcmp(arg, "merged"))
			a->opts.cow_policy = THINP_COW_MERGED;
		else
			return cli_usage(a->cmd, "invalid %s '%s': use kernel or merged", opt, arg);
		return 0;
	case CLI_OPT_SIZE:
		/* a block device's size: whole sectors, and within what an off_t addresses */
		if (cli_size(a->cmd, opt, arg, &v))
			return 2;
		if (!v || v % 512 || v > CLI_THIN_SIZE_MAX)
			return cli_usage(a->cmd,
			                 "invalid %s '%s': a positive multiple of 512 bytes, at most "
			                 "%llu (8 EiB)",
			                 opt, arg, CLI_THIN_SIZE_MAX);
		a->thin_size = v;
		return 0;
	}
	return cli_usage(a->cmd, "unknown option '%s'", opt);
}

static int count_error(const struct cli_pool_args *a, int need, const char *after)
{
	if (!need)
		return cli_usage(a->cmd, "expected the pool (%s)", after);
	return cli_usage(a->cmd, "expected the pool (%s) and %d argument%s", after, need,
	                 need == 1 ? "" : "s");
}

int cli_take_pool(struct cli_pool_args *a, const char **pos, int *nr, int need, bool devices_ok)
{
	if (a->backend == CLI_BACKEND_KERNEL) {
		if (a->opts.cow_policy != THINP_COW_KERNEL)
			return cli_usage(a->cmd,
			                 "--cow merged is libthinp's own: the kernel's dm-thin copies "
			                 "in its order; drop --cow or use --backend user");
		if (!devices_ok && (a->data || a->metadata))
			return cli_usage(a->cmd,
			                 "with --backend kernel name the pool (DIR or NAME), "
			                 "not --data/--metadata");
		if (*nr != need + 1)
			return count_error(a, need, "DIR or NAME");
	} else if (!a->data && !a->metadata) {
		if (*nr < 1)
			return cli_usage(a->cmd, "missing pool directory");
		if (*nr != need + 1)
			return count_error(a, need, "DIR or --data DEV --metadata DEV");
	} else if (!a->data || !a->metadata) {
		return cli_usage(a->cmd, "--data and --metadata go together");
	} else {
		if (*nr != need)
			return count_error(a, need, "DIR or --data DEV --metadata DEV");
		return 0;
	}
	a->pool = pos[0];
	memmove(pos, pos + 1, (size_t)(*nr - 1) * sizeof(*pos));
	(*nr)--;
	return 0;
}
