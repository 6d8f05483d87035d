/* thinp check: thin_check-shaped front end of the strict checker
 * (impl/thin/check.h). Faults go to stderr, one per line; the exit status
 * is 0 when the metadata is clean, 1 when faults were found (or the check
 * could not run), 2 on a usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "io/dev.h"
#include "thin/check.h"

static const char check_usage[] =
        "Usage: thinp check [options] METADATA\n"
        "Verify thin-pool metadata (a file or block device), read-only. Checks\n"
        "everything thin_check 0.9.0 does plus data reference counts, mappings\n"
        "beyond the data device, mapped_blocks, magic/version/flags and the space\n"
        "map counters (nr_free, none_free_before, nr_allocated).\n"
        "\n"
        "Options:\n"
        "  -q, --quiet                    print nothing; only the exit status tells\n"
        "      --super-block-only         check only the superblock\n"
        "  -m, --metadata-snap[=BLOCK]    (the held metadata snapshot is always checked)\n"
        "                                 with BLOCK: also fail unless it is the one\n"
        "                                 the superblock holds (note: -mBLOCK, no space)\n"
        "      --ignore-non-fatal-errors  warn only about what wastes space without\n"
        "                                 endangering data: leaks (counts too high),\n"
        "                                 counters that understate free space\n"
        "      --skip-data-counts         do not compare data space map counts\n"
        "      --max-reports N            print at most N faults of each sort (0: all)\n"
        "  -h, --help                     show this help\n"
        "\n"
        "Exit status: 0 clean, 1 faults found or metadata unreadable, 2 usage error.\n";

static int usage_error(const char *fmt, const char *arg)
{
	return cli_usage_error("check", fmt, arg);
}

static int parse_u64(const char *s, unsigned long long *out)
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

struct printer {
	int quiet;
};

static void print_fault(void *ctx, const char *msg)
{
	const struct printer *p = ctx;
	if (!p->quiet)
		fprintf(stderr, "%s\n", msg);
}

int cmd_check(int argc, char **argv)
{
	enum {
		OPT_SB_ONLY = 256,
		OPT_IGNORE_NON_FATAL,
		OPT_SKIP_DATA_COUNTS,
		OPT_MAX_REPORTS,
		OPT_UNSUPPORTED,
	};
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "super-block-only", no_argument, NULL, OPT_SB_ONLY },
		{ "metadata-snap", optional_argument, NULL, 'm' },
		{ "ignore-non-fatal-errors", no_argument, NULL, OPT_IGNORE_NON_FATAL },
		{ "skip-data-counts", no_argument, NULL, OPT_SKIP_DATA_COUNTS },
		{ "max-reports", required_argument, NULL, OPT_MAX_REPORTS },
		{ "skip-mappings", no_argument, NULL, OPT_UNSUPPORTED },
		{ "auto-repair", no_argument, NULL, OPT_UNSUPPORTED },
		{ "clear-needs-check-flag", no_argument, NULL, OPT_UNSUPPORTED },
		{ "override-mapping-root", required_argument, NULL, OPT_UNSUPPORTED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tcheck_opts opts = { 0 };
	struct printer pr = { 0 };
	unsigned long long v;
	int c, idx = 0;
	optind = 0; /* the dispatcher may have run getopt already */
	while ((c = getopt_long(argc, argv, "qm::h", longopts, &idx)) != -1) {
		switch (c) {
		case 'q':
			pr.quiet = 1;
			break;
		case OPT_SB_ONLY:
			opts.super_block_only = 1;
			break;
		case 'm':
			if (optarg && (parse_u64(optarg, &v) || !v))
				return usage_error("--metadata-snap: '%s' is not a block number",
				                   optarg);
			if (optarg)
				opts.metadata_snap = v;
			break;
		case OPT_IGNORE_NON_FATAL:
			opts.ignore_leaks = 1;
			break;
		case OPT_SKIP_DATA_COUNTS:
			opts.skip_data_counts = 1;
			break;
		case OPT_MAX_REPORTS:
			if (parse_u64(optarg, &v) || v > 0xffffffffull)
				return usage_error("--max-reports: '%s' is not a count", optarg);
			opts.max_reports_per_kind = v ? (unsigned)v : 0xffffffffu;
			break;
		case OPT_UNSUPPORTED:
			return usage_error("--%s is not supported (thinp check never writes)",
			                   longopts[idx].name);
		case 'h':
			fputs(check_usage, stdout);
			return 0;
		default:
			fputs("Try 'thinp check --help'.\n", stderr);
			return 2;
		}
	}
	const char *path;
	struct tp_dev *meta;
	int r = cli_open_metadata_arg("check", argc, argv, optind, pr.quiet, &meta, &path);
	if (r)
		return r;
	unsigned nr_errors = 0;
	r = tcheck_run(meta, &opts, print_fault, &pr, &nr_errors);
	tp_dev_close(meta);
	if (r) {
		if (!pr.quiet)
			fprintf(stderr, "thinp check: cannot check %s: %s\n", path, strerror(-r));
		return 1;
	}
	if (nr_errors) {
		if (!pr.quiet)
			fprintf(stderr, "thinp check: %s: %u fault%s found\n", path, nr_errors,
			        nr_errors == 1 ? "" : "s");
		return 1;
	}
	return 0;
}
