/* thinp dump: thin_dump 0.9.0 compatible (same options for what is
 * supported, byte-identical output). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "io/dev.h"
#include "thin/metadata.h"
#include "thin/xml.h"

static const char dump_usage[] =
        "Usage: thinp dump [options] METADATA\n"
        "Write thin-pool metadata (a file or block device) as XML, byte-identical to\n"
        "thin_dump 0.9.0. The metadata is opened read-only.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE            write to FILE instead of standard output\n"
        "  -f, --format FORMAT          xml (default) or human_readable\n"
        "  -m, --metadata-snap[=BLOCK]  dump the metadata snapshot instead of the live\n"
        "                               metadata (BLOCK, if given, must be the one the\n"
        "                               superblock holds; note: -mBLOCK, no space)\n"
        "      --dev-id ID              dump only thin device ID\n"
        "      --skip-mappings          devices only, without their mappings\n"
        "  -h, --help                   show this help\n";

static int usage_error(const char *fmt, const char *arg)
{
	return cli_usage_error("dump", fmt, arg);
}

static int parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	enum {
		OPT_DEV_ID = 256,
		OPT_SKIP_MAPPINGS
	};
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "metadata-snap", optional_argument, NULL, 'm' },
		{ "dev-id", required_argument, NULL, OPT_DEV_ID },
		{ "skip-mappings", no_argument, NULL, OPT_SKIP_MAPPINGS },
		{ "repair", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xml_dump_opts opts = { .format = XML_DUMP_XML };
	const char *output = NULL;
	bool snap = false;
	uint64_t snap_block = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:f:m::rh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'f':
			if (!strcmp(optarg, "xml"))
				opts.format = XML_DUMP_XML;
			else if (!strcmp(optarg, "human_readable"))
				opts.format = XML_DUMP_HUMAN;
			else
				return usage_error(
				        "unknown format '%s' (use xml or human_readable)", optarg);
			break;
		case 'm':
			snap = true;
			if (optarg && (parse_u64(optarg, &snap_block) || !snap_block))
				return usage_error("--metadata-snap: '%s' is not a block number",
				                   optarg);
			break;
		case OPT_DEV_ID:
			if (parse_u64(optarg, &opts.dev_id))
				return usage_error("--dev-id: '%s' is not a device id", optarg);
			opts.one_dev = true;
			break;
		case OPT_SKIP_MAPPINGS:
			opts.skip_mappings = true;
			break;
		case 'r':
			return usage_error("%s is not supported: run 'thinp check' to see what is "
			                   "damaged",
			                   "--repair");
		case 'h':
			fputs(dump_usage, stdout);
			return 0;
		default:
			fputs("Try 'thinp dump --help'.\n", stderr);
			return 2;
		}
	}
	const char *path;
	struct tp_dev *meta;
	int r = cli_open_metadata_arg("dump", argc, argv, optind, false, &meta, &path);
	if (r)
		return r;
	char err[512];
	struct tmd *md = NULL;
	if (!snap) {
		struct tmd_open_args a = { .meta = meta, .read_only = true };
		r = tmd_open(&a, &md, err, sizeof(err));
		if (r) {
			fprintf(stderr, "thinp dump: %s: %s\n", path, err);
			tp_dev_close(meta);
			return 1;
		}
	}

	/* Opened only now, so bad metadata does not clobber an existing file. */
	FILE *out = stdout;
	if (output) {
		out = fopen(output, "w");
		if (!out) {
			fprintf(stderr, "thinp dump: cannot create %s: %s\n", output,
			        strerror(errno));
			tmd_close_nocommit(md);
			tp_dev_close(meta);
			return 1;
		}
	}
	/* failure to get a bigger buffer only costs speed */
	(void)setvbuf(out, NULL, _IOFBF, 1 << 20);

	if (snap)
		r = xml_dump_metadata_snap(meta, snap_block, out, &opts, err, sizeof(err));
	else
		r = xml_dump(md, out, &opts, err, sizeof(err));
	int rc = 0;
	if (r) {
		fprintf(stderr, "thinp dump: %s: %s\n", path, err);
		rc = 1;
	}
	if (output && fclose(out)) {
		fprintf(stderr, "thinp dump: writing %s failed: %s\n", output, strerror(errno));
		rc = 1;
	} else if (!output && fflush(stdout)) {
		fprintf(stderr, "thinp dump: writing the output failed: %s\n", strerror(errno));
		rc = 1;
	}
	tmd_close_nocommit(md);
	tp_dev_close(meta);
	return rc;
}
