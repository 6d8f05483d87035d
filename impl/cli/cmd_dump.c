/* thinp dump: thin_dump 0.9.0 compatible (same options for what is
 * supported, byte-identical output). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/cli_offline.h"
#include "cli/cli_output.h"
#include "cli/commands.h"
#include "thin/metadata.h"
#include "thin/xml.h"
#include "thinp.h"

static const char dump_usage[] =
        "Usage: thinp dump [options] METADATA\n"
        "Write thin-pool metadata (a file or block device) as XML, byte-identical to\n"
        "thin_dump 0.9.0. The metadata is opened read-only. A pool open in another process\n"
        "is refused (its metadata changes under the reader), unless -m: the snapshot is\n"
        "stable. The output may be neither the input nor a device of an open pool.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE            write to FILE instead of standard output\n"
        "  -f, --format FORMAT          xml (default) or human_readable\n"
        "  -m, --metadata-snap[=BLOCK]  dump the metadata snapshot instead of the live\n"
        "                               metadata (BLOCK, if given, must be the one the\n"
        "                               superblock holds; note: -mBLOCK, no space)\n"
        "      --dev-id ID              dump only thin device ID\n"
        "      --skip-mappings          devices only, without their mappings\n"
        "  -h, --help                   show this help\n"
        "  -V, --version                print the version\n";

struct dump_args {
	struct xml_dump_opts opts;
	const char *output;
	bool snap;
	uint64_t snap_block;
};

enum {
	OPT_DEV_ID = 256,
	OPT_SKIP_MAPPINGS
};

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct dump_args *da = ctx;
	switch (c) {
	case 'o':
		da->output = arg;
		return 0;
	case 'f':
		if (!strcmp(arg, "xml"))
			da->opts.format = XML_DUMP_XML;
		else if (!strcmp(arg, "human_readable"))
			da->opts.format = XML_DUMP_HUMAN;
		else
			return cli_usage("dump", "unknown format '%s' (use xml or human_readable)",
			                 arg);
		return 0;
	case 'm':
		da->snap = true;
		if (arg && cli_u64("dump", opt, arg, UINT64_MAX, &da->snap_block))
			return 2;
		if (arg && !da->snap_block)
			return cli_usage("dump", "invalid %s '%s': block 0 is the superblock", opt,
			                 arg);
		return 0;
	case OPT_DEV_ID:
		da->opts.one_dev = true;
		return cli_u64("dump", opt, arg, UINT64_MAX, &da->opts.dev_id);
	case OPT_SKIP_MAPPINGS:
		da->opts.skip_mappings = true;
		return 0;
	case 'r':
		return cli_usage("dump",
		                 "%s is not supported: run 'thinp check' to see what is "
		                 "damaged",
		                 "--repair");
	}
	return cli_usage("dump", "unknown option '%s'", opt);
}

/* Write the dump of META (PATH) to OUTPUT or stdout. 0 or 1 (reported). */
static int dump(struct tp_dev *meta, const char *path, const struct dump_args *da)
{
	char err[512];
	struct tmd *md = NULL;
	if (!da->snap) {
		struct tmd_open_args a = { .meta = meta, .read_only = true };
		if (tmd_open(&a, &md, err, sizeof(err)))
			return cli_fail("dump", "%s: %s", path, err);
	}

	/* Opened only now, so bad metadata does not clobber an existing file; held (the
	 * lock a pool takes) until written, so no pool opens it meanwhile. */
	FILE *out = stdout;
	struct tp_dev *held = NULL;
	if (da->output) {
		if (cli_output_claim("dump", da->output, &held)) {
			tmd_close_nocommit(md);
			return 1;
		}
		out = fopen(da->output, "w");
		if (!out) {
			cli_err("dump", "cannot create %s: %s", da->output, strerror(errno));
			if (held)
				thinp_dev_close(held);
			tmd_close_nocommit(md);
			return 1;
		}
	}
	/* failure to get a bigger buffer only costs speed */
	(void)setvbuf(out, NULL, _IOFBF, 1 << 20);

	int r;
	if (da->snap)
		r = xml_dump_metadata_snap(meta, da->snap_block, out, &da->opts, err, sizeof(err));
	else
		r = xml_dump(md, out, &da->opts, err, sizeof(err));
	int rc = 0;
	if (r)
		rc = cli_fail("dump", "%s: %s", path, err);
	if (da->output && fclose(out))
		rc = cli_fail("dump", "writing %s failed: %s", da->output, strerror(errno));
	else if (!da->output && fflush(stdout))
		rc = cli_fail("dump", "writing the output failed: %s", strerror(errno));
	if (held)
		thinp_dev_close(held);
	tmd_close_nocommit(md);
	return rc;
}

int cmd_dump(int argc, char **argv, const struct cli_global *g)
{
	(void)g;
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "metadata-snap", optional_argument, NULL, 'm' },
		{ "dev-id", required_argument, NULL, OPT_DEV_ID },
		{ "skip-mappings", no_argument, NULL, OPT_SKIP_MAPPINGS },
		{ "repair", no_argument, NULL, 'r' },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	struct dump_args da = { .opts = { .format = XML_DUMP_XML } };
	const struct cli_cmd cmd = {
		.name = "dump",
		.usage = dump_usage,
		.shortopts = "o:f:m::r" CLI_STD_SHORTOPTS,
		.longopts = longopts,
		.option = option,
		.ctx = &da,
	};
	const char *pos[2], *path;
	int nr, r = cli_parse(&cmd, argc, argv, pos, 2, &nr);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if ((r = cli_metadata_arg("dump", pos, nr, &path)))
		return r;
	/* before anything is opened: `dump META -o META` truncated what it was to read */
	if (da.output && (r = cli_output_not_input("dump", da.output, path, -1)))
		return r;
	struct tp_dev *meta;
	unsigned flags = THINP_DEV_RDONLY | (da.snap ? 0 : THINP_DEV_EXCL);
	if (cli_open_metadata("dump", path, flags, false,
	                      "dump its metadata snapshot with -m, or stop it", &meta))
		return 1;
	r = dump(meta, path, &da);
	thinp_dev_close(meta);
	return r;
}
