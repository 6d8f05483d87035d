/* thinp restore: thin_restore 0.9.0 compatible. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/cli_output.h"
#include "cli/commands.h"
#include "thin/xml.h"
#include "thinp.h"

/* thin_restore refuses smaller outputs ("Output file too small") */
#define RESTORE_MIN_BYTES (32u * 1024u)

static const char restore_usage[] =
        "Usage: thinp restore -i XML -o METADATA [options]\n"
        "Build thin-pool metadata from thin_dump XML, like thin_restore 0.9.0. Everything\n"
        "on METADATA is replaced; if the restore fails its superblock is zeroed, so it is\n"
        "never mistaken for valid metadata. METADATA may be neither the input nor a device\n"
        "of a pool open in another process.\n"
        "\n"
        "Options:\n"
        "  -i, --input XML            thin_dump XML ('-' = standard input)\n"
        "  -o, --output METADATA      an existing file of at least 32 KiB, or a block device\n"
        "  -q, --quiet                do not print warnings\n"
        "      --transaction-id N     override the superblock's transaction id\n"
        "      --data-block-size N    override the data block size (sectors)\n"
        "      --nr-data-blocks N     override the number of data blocks\n"
        "  -h, --help                 show this help\n"
        "  -V, --version              print the version\n";

struct restore_args {
	struct xml_restore_opts opts;
	const char *input, *output;
};

enum {
	OPT_TRANS = 256,
	OPT_DBS,
	OPT_NR_DATA
};

static void print_warning(void *ctx, const char *msg)
{
	(void)ctx;
	cli_warn("restore", "%s", msg);
}

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct restore_args *ra = ctx;
	uint64_t v;
	switch (c) {
	case 'i':
		ra->input = arg;
		return 0;
	case 'o':
		ra->output = arg;
		return 0;
	case 'q':
		ra->opts.warn = NULL;
		return 0;
	case OPT_TRANS:
		if (cli_u64("restore", opt, arg, UINT64_MAX, &v))
			return 2;
		ra->opts.set_transaction_id = true;
		ra->opts.transaction_id = v;
		return 0;
	case OPT_DBS:
		if (cli_u64("restore", opt, arg, UINT32_MAX, &v))
			return 2;
		ra->opts.set_data_block_size = true;
		ra->opts.data_block_size = (uint32_t)v;
		return 0;
	case OPT_NR_DATA:
		if (cli_u64("restore", opt, arg, THIN_MAX_DATA_BLOCK, &v))
			return 2;
		ra->opts.set_nr_data_blocks = true;
		ra->opts.nr_data_blocks = v;
		return 0;
	}
	return cli_usage("restore", "unknown option '%s'", opt);
}

/* The output, opened exclusively; 0 or 1 (reported). */
static int open_output(const char *output, struct tp_dev **meta)
{
	int r = thinp_dev_open(output, THINP_DEV_EXCL, 0, meta);
	if (r == -ENOENT)
		return cli_fail("restore",
		                "%s does not exist: create it first (e.g. 'truncate -s 16M %s') or "
		                "give a block device",
		                output, output);
	if (r == -EBUSY)
		return cli_fail("restore",
		                "%s is in use: " CLI_POOL_OPEN_ELSEWHERE
		                " (or, for a block device, a mount or a device-mapper table) holds "
		                "it; stop it first",
		                output);
	if (r)
		return cli_fail("restore", "cannot open %s: %s", output, strerror(-r));
	uint64_t size = thinp_dev_size(*meta);
	if (size < RESTORE_MIN_BYTES) {
		thinp_dev_close(*meta);
		return cli_fail("restore",
		                "%s is too small (%" PRIu64 " bytes): metadata needs at least 32 "
		                "KiB; grow it first (e.g. 'truncate -s 16M %s')",
		                output, size, output);
	}
	return 0;
}

int cmd_restore(int argc, char **argv, const struct cli_global *g)
{
	(void)g;
	static const struct option longopts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "transaction-id", required_argument, NULL, OPT_TRANS },
		{ "data-block-size", required_argument, NULL, OPT_DBS },
		{ "nr-data-blocks", required_argument, NULL, OPT_NR_DATA },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	struct restore_args ra = { .opts = { .warn = print_warning } };
	const struct cli_cmd cmd = {
		.name = "restore",
		.usage = restore_usage,
		.shortopts = "i:o:q" CLI_STD_SHORTOPTS,
		.longopts = longopts,
		.option = option,
		.ctx = &ra,
	};
	const char *pos[1];
	int nr, r = cli_parse(&cmd, argc, argv, pos, 1, &nr);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if (nr)
		return cli_usage("restore", "unexpected argument '%s' (use -i XML -o METADATA)",
		                 pos[0]);
	if (!ra.input)
		return cli_usage("restore", "no input given: use -i XML");
	if (!ra.output)
		return cli_usage("restore", "no output given: use -o METADATA");
	/* a failed restore zeroes the output's superblock: never the input's */
	bool from_stdin = !strcmp(ra.input, "-");
	if ((r = cli_output_not_input("restore", ra.output, from_stdin ? NULL : ra.input,
	                              STDIN_FILENO)))
		return r;

	FILE *in = stdin;
	if (strcmp(ra.input, "-")) {
		in = fopen(ra.input, "r");
		if (!in)
			return cli_fail("restore", "cannot open %s: %s", ra.input, strerror(errno));
	}
	/* The XML is read once, front to back: a big buffer is all it needs. */
	(void)setvbuf(in, NULL, _IOFBF, 1 << 20);
	const char *in_name = in == stdin ? "<stdin>" : ra.input;

	struct tp_dev *meta;
	if (open_output(ra.output, &meta)) {
		if (in != stdin)
			fclose(in);
		return 1;
	}
	char err[1024];
	r = xml_restore(in, meta, &ra.opts, err, sizeof(err));
	if (r) {
		cli_err("restore", "%s: %s", in_name, err);
		cli_err("restore", "%s was not restored (its superblock is zeroed)", ra.output);
	}
	thinp_dev_close(meta);
	if (in != stdin)
		fclose(in);
	return r ? 1 : 0;
}
