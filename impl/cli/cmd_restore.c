/* thinp restore: thin_restore 0.9.0 compatible. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "io/dev.h"
#include "thin/xml.h"

/* thin_restore refuses smaller outputs ("Output file too small") */
#define RESTORE_MIN_BYTES (32u * 1024u)

static const char restore_usage[] =
        "Usage: thinp restore -i XML -o METADATA [options]\n"
        "Build thin-pool metadata from thin_dump XML, like thin_restore 0.9.0. Everything\n"
        "on METADATA is replaced; if the restore fails its superblock is zeroed, so it is\n"
        "never mistaken for valid metadata.\n"
        "\n"
        "Options:\n"
        "  -i, --input XML            thin_dump XML ('-' = standard input)\n"
        "  -o, --output METADATA      an existing file of at least 32 KiB, or a block device\n"
        "  -q, --quiet                do not print warnings\n"
        "      --transaction-id N     override the superblock's transaction id\n"
        "      --data-block-size N    override the data block size (sectors)\n"
        "      --nr-data-blocks N     override the number of data blocks\n"
        "  -h, --help                 show this help\n";

static int usage_error(const char *fmt, const char *arg)
{
	return cli_usage_error("restore", fmt, arg);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void print_warning(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "thinp restore: warning: %s\n", msg);
}

int cmd_restore(int argc, char **argv)
{
	enum {
		OPT_TRANS = 256,
		OPT_DBS,
		OPT_NR_DATA
	};
	static const struct option longopts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "transaction-id", required_argument, NULL, OPT_TRANS },
		{ "data-block-size", required_argument, NULL, OPT_DBS },
		{ "nr-data-blocks", required_argument, NULL, OPT_NR_DATA },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xml_restore_opts opts = { .warn = print_warning };
	const char *input = NULL, *output = NULL;
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "i:o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'q':
			opts.warn = NULL;
			break;
		case OPT_TRANS:
			if (parse_u64(optarg, UINT64_MAX, &v))
				return usage_error("--transaction-id: '%s' is not a number",
				                   optarg);
			opts.set_transaction_id = true;
			opts.transaction_id = v;
			break;
		case OPT_DBS:
			if (parse_u64(optarg, UINT32_MAX, &v))
				return usage_error("--data-block-size: '%s' is not a number of "
				                   "sectors",
				                   optarg);
			opts.set_data_block_size = true;
			opts.data_block_size = (uint32_t)v;
			break;
		case OPT_NR_DATA:
			if (parse_u64(optarg, THIN_MAX_DATA_BLOCK, &v))
				return usage_error("--nr-data-blocks: '%s' is not a block count",
				                   optarg);
			opts.set_nr_data_blocks = true;
			opts.nr_data_blocks = v;
			break;
		case 'h':
			fputs(restore_usage, stdout);
			return 0;
		default:
			fputs("Try 'thinp restore --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s' (use -i XML -o METADATA)",
		                   argv[optind]);
	if (!input)
		return usage_error("%s", "no input given: use -i XML");
	if (!output)
		return usage_error("%s", "no output given: use -o METADATA");

	FILE *in = stdin;
	if (strcmp(input, "-")) {
		in = fopen(input, "r");
		if (!in) {
			fprintf(stderr, "thinp restore: cannot open %s: %s\n", input,
			        strerror(errno));
			return 1;
		}
	}
	/* The XML is read once, front to back: a big buffer is all it needs. */
	(void)setvbuf(in, NULL, _IOFBF, 1 << 20);
	const char *in_name = in == stdin ? "<stdin>" : input;

	struct tp_dev *meta;
	int r = tp_dev_open(output, TP_DEV_EXCL, 0, &meta);
	if (r) {
		if (r == -ENOENT)
			fprintf(stderr,
			        "thinp restore: %s does not exist: create it first (e.g. 'truncate "
			        "-s 16M %s') or give a block device\n",
			        output, output);
		else if (r == -EBUSY)
			fprintf(stderr, "thinp restore: %s is in use by another thinp process\n",
			        output);
		else
			fprintf(stderr, "thinp restore: cannot open %s: %s\n", output,
			        strerror(-r));
		if (in != stdin)
			fclose(in);
		return 1;
	}
	if (meta->size < RESTORE_MIN_BYTES) {
		fprintf(stderr,
		        "thinp restore: %s is too small (%" PRIu64 " bytes): metadata needs at "
		        "least 32 KiB; grow it first (e.g. 'truncate -s 16M %s')\n",
		        output, meta->size, output);
		tp_dev_close(meta);
		if (in != stdin)
			fclose(in);
		return 1;
	}

	char err[1024];
	r = xml_restore(in, meta, &opts, err, sizeof(err));
	if (r)
		fprintf(stderr,
		        "thinp restore: %s: %s\nthinp restore: %s was not restored (its superblock "
		        "is zeroed)\n",
		        in_name, err, output);
	tp_dev_close(meta);
	if (in != stdin)
		fclose(in);
	return r ? 1 : 0;
}
