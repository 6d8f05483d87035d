/* thinp check: thin_check-shaped front end of the strict checker
 * (impl/thin/check.h). Faults go to stderr, one per line; the exit status
 * is 0 when the metadata is clean, 1 when faults were found (or the check
 * could not run), 2 on a usage error. It takes the options LVM passes to
 * thin_check (thin_check_options), so thin_check_executable may name it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/cli_offline.h"
#include "cli/commands.h"
#include "thin/check.h"
#include "thin/metadata.h"
#include "thin/xml.h"
#include "thinp.h"

static const char check_usage[] =
        "Usage: thinp check [options] METADATA\n"
        "Verify thin-pool metadata (a file or block device), read-only unless\n"
        "--clear-needs-check-flag. Checks everything thin_check 0.9.0 does plus data\n"
        "reference counts, mappings beyond the data device, mapped_blocks,\n"
        "magic/version/flags and the space map counters (nr_free, none_free_before,\n"
        "nr_allocated). The metadata of a pool open in another process is refused (it\n"
        "changes under the checker); -m checks its snapshot, which does not. A pool\n"
        "directory's DIR/metadata held by a process that serves DIR/control (thinp\n"
        "write/read, the fio engine) is checked through a metadata snapshot reserved\n"
        "there for the check and released after it.\n"
        "\n"
        "Options:\n"
        "  -q, --quiet                    print nothing; only the exit status tells\n"
        "      --super-block-only         check only the superblock\n"
        "  -m, --metadata-snap[=BLOCK]    a metadata snapshot must be held (with BLOCK:\n"
        "                                 at that block; note: -mBLOCK, no space); it is\n"
        "                                 checked with the rest, or alone while the pool\n"
        "                                 is open elsewhere (its trees, as thin_check -m)\n"
        "      --ignore-non-fatal-errors  warn only about what wastes space without\n"
        "                                 endangering data: leaks (counts too high),\n"
        "                                 counters that understate free space\n"
        "      --clear-needs-check-flag   after a clean check, clear the superblock's\n"
        "                                 needs_check flag (as thin_check; not with -m,\n"
        "                                 --super-block-only, --ignore-non-fatal-errors,\n"
        "                                 --skip-mappings)\n"
        "      --skip-mappings            do not walk the thin devices' mapping trees (as\n"
        "                                 thin_check): superblock, space maps, device\n"
        "                                 details and the top level of the mapping tree;\n"
        "                                 data counts and metadata leaks are not judged\n"
        "      --skip-data-counts         do not compare data space map counts\n"
        "      --max-reports N            print at most N faults of each sort (0: all)\n"
        "  -h, --help                     show this help\n"
        "  -V, --version                  print the version\n"
        "\n"
        "Exit status: 0 clean, 1 faults found or metadata unreadable, 2 usage error.\n";

struct check_args {
	struct tcheck_opts opts;
	bool quiet;
	bool snap;              /* -m: a metadata snapshot must be held */
	bool clear_needs_check; /* --clear-needs-check-flag */
};

enum {
	OPT_SB_ONLY = 256,
	OPT_IGNORE_NON_FATAL,
	OPT_SKIP_DATA_COUNTS,
	OPT_MAX_REPORTS,
	OPT_CLEAR_NEEDS_CHECK,
	OPT_SKIP_MAPPINGS,
	OPT_UNSUPPORTED,
};

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct check_args *ca = ctx;
	uint64_t v;
	switch (c) {
	case 'q':
		ca->quiet = true;
		return 0;
	case OPT_SB_ONLY:
		ca->opts.super_block_only = 1;
		return 0;
	case 'm':
		ca->snap = true;
		if (!arg)
			return 0;
		if (cli_u64("check", opt, arg, UINT64_MAX, &v))
			return 2;
		if (!v)
			return cli_usage("check", "invalid %s '%s': block 0 is the superblock", opt,
			                 arg);
		ca->opts.metadata_snap = v;
		return 0;
	case OPT_IGNORE_NON_FATAL:
		ca->opts.ignore_leaks = 1;
		return 0;
	case OPT_SKIP_DATA_COUNTS:
		ca->opts.skip_data_counts = 1;
		return 0;
	case OPT_MAX_REPORTS:
		if (cli_u64("check", opt, arg, 0xffffffffull, &v))
			return 2;
		ca->opts.max_reports_per_kind = v ? (unsigned)v : 0xffffffffu;
		return 0;
	case OPT_CLEAR_NEEDS_CHECK:
		ca->clear_needs_check = true;
		return 0;
	case OPT_SKIP_MAPPINGS:
		ca->opts.skip_mappings = 1;
		return 0;
	case OPT_UNSUPPORTED:
		return cli_usage("check", "%s is not supported (thinp check repairs nothing)", opt);
	}
	return cli_usage("check", "unknown option '%s'", opt);
}

static void print_fault(void *ctx, const char *msg)
{
	const struct check_args *ca = ctx;
	if (!ca->quiet)
		cli_report_line(msg);
}

static const char busy_hint[] = "check its metadata snapshot, or stop it";

/* A metadata snapshot reserved through the holder's control socket for this check. */
struct live_hold {
	char sock[PATH_MAX];
	bool ours; /* reserved by us: released after the check */
};

/* PATH is DIR/metadata of a pool held by a process serving DIR/control: a snapshot held
 * there, *LIVE, and CA set to check it (its block). 0, 1 (reported), or -ENOENT when
 * PATH is no such pool (nothing reported). */
static int hold_live_snapshot(const char *path, struct check_args *ca, struct live_hold *h,
                              bool *live)
{
	const char *slash = strrchr(path, '/');
	if (strcmp(slash ? slash + 1 : path, "metadata"))
		return -ENOENT;
	int n = slash ? snprintf(h->sock, sizeof(h->sock), "%.*s/control", (int)(slash - path),
	                         path) :
	                snprintf(h->sock, sizeof(h->sock), "control");
	int status;
	char reply[THINP_CONTROL_MAX_REPLY];
	if (n < 0 || (size_t)n >= sizeof(h->sock) ||
	    thinp_control_call(h->sock, "status noflush", &status, reply, sizeof(reply)))
		return -ENOENT;
	struct thinp_pool_status st;
	if (backend_control_snap_hold("check", h->sock, ca->quiet, &st, &h->ours))
		return 1;
	ca->opts.metadata_snap = st.held_root;
	*live = true;
	return 0;
}

/* PATH, locked as an open pool locks it: a pool open in another process writes its
 * metadata under the checker, which would then report faults that are not there (or miss
 * some). Its metadata snapshot (-m, or one reserved through its control socket: H) does
 * not change: *LIVE then, and it alone is checked. 0, or 1 (reported). */
static int open_input(const char *path, struct check_args *ca, struct tp_dev **meta,
                      bool *live, struct live_hold *h)
{
	unsigned flags = THINP_DEV_EXCL | (ca->clear_needs_check ? 0 : THINP_DEV_RDONLY);
	*live = false;
	if (ca->snap) {
		int r = thinp_dev_open(path, flags, 0, meta);
		if (!r)
			return 0;
		if (r == -EBUSY) {
			*live = true;
			flags = THINP_DEV_RDONLY;
		}
	}
	if (!ca->snap && !ca->clear_needs_check) {
		int r = thinp_dev_open(path, flags, 0, meta);
		if (r != -EBUSY) {
			if (r && !ca->quiet)
				cli_err("check", "cannot open %s: %s", path, strerror(-r));
			return r ? 1 : 0;
		}
		r = hold_live_snapshot(path, ca, h, live);
		if (r != -ENOENT) {
			if (r)
				return 1;
			if (!cli_open_metadata("check", path, THINP_DEV_RDONLY, ca->quiet, busy_hint,
			                       meta))
				return 0;
			if (h->ours)
				backend_control_snap_release("check", h->sock, ca->quiet);
			return 1;
		}
	}
	return cli_open_metadata("check", path, flags, ca->quiet, busy_hint, meta) ? 1 : 0;
}

/* Whether the superblock holds a metadata snapshot (unreadable: true, the check says
 * what is wrong). */
static bool snapshot_held(struct tp_dev *meta)
{
	struct tmd_open_args a = { .meta = meta, .read_only = true };
	struct tmd *md;
	char err[256];
	if (tmd_open(&a, &md, err, sizeof(err)))
		return true;
	bool held = tmd_metadata_snap(md) != 0;
	tmd_close_nocommit(md);
	return held;
}

/* The metadata snapshot alone, as thin_check -m does: its device and mapping trees, every
 * node read and validated on the way (the walk of dump -m, its output dropped); it has
 * no space maps to compare. For a pool open elsewhere, whose other metadata moves, and
 * to fail as thin_check does when there is no snapshot. 0 or 1 (reported). */
static int check_snapshot(struct tp_dev *meta, const char *path, const struct check_args *ca)
{
	FILE *null = fopen("/dev/null", "w");
	if (!null)
		return ca->quiet ? 1 : cli_fail("check", "cannot open /dev/null: %s", strerror(errno));
	const struct xml_dump_opts o = { .format = XML_DUMP_XML };
	char err[512];
	int r = xml_dump_metadata_snap(meta, ca->opts.metadata_snap, null, &o, err, sizeof(err));
	fclose(null);
	if (r && !ca->quiet)
		cli_err("check", "%s: %s", path, err);
	return r ? 1 : 0;
}

/* The superblock's needs_check flag cleared (the kernel sets it on a metadata error and
 * keeps the pool read-only until it is gone); nothing is written when it is not set.
 * 0 or 1 (reported unless QUIET). */
static int clear_needs_check(struct tp_dev *meta, const char *path, bool quiet)
{
	struct tmd_open_args a = { .meta = meta };
	struct tmd *md;
	char err[512];
	if (tmd_open(&a, &md, err, sizeof(err)))
		return quiet ? 1 : cli_fail("check", "%s: cannot clear needs_check: %s", path, err);
	struct thin_sb_info sb;
	tmd_sb_info(md, &sb);
	if (!(sb.flags & THIN_SB_FLAG_NEEDS_CHECK)) {
		tmd_close_nocommit(md);
		return 0;
	}
	int r = tmd_set_sb_fields(md, sb.uuid, sb.time, sb.transaction_id,
	                          sb.flags & ~THIN_SB_FLAG_NEEDS_CHECK, sb.version);
	if (r) {
		if (!quiet)
			cli_err("check", "%s: cannot clear needs_check: %s", path, tmd_error(md));
		tmd_close_nocommit(md);
		return 1;
	}
	r = tmd_close(md);
	if (r)
		return quiet ? 1 :
		               cli_fail("check", "%s: cannot clear needs_check: %s", path,
		                        strerror(-r));
	return 0;
}

int cmd_check(int argc, char **argv, const struct cli_global *g)
{
	(void)g;
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "super-block-only", no_argument, NULL, OPT_SB_ONLY },
		{ "metadata-snap", optional_argument, NULL, 'm' },
		{ "ignore-non-fatal-errors", no_argument, NULL, OPT_IGNORE_NON_FATAL },
		{ "skip-data-counts", no_argument, NULL, OPT_SKIP_DATA_COUNTS },
		{ "max-reports", required_argument, NULL, OPT_MAX_REPORTS },
		{ "skip-mappings", no_argument, NULL, OPT_SKIP_MAPPINGS },
		{ "auto-repair", no_argument, NULL, OPT_UNSUPPORTED },
		{ "clear-needs-check-flag", no_argument, NULL, OPT_CLEAR_NEEDS_CHECK },
		{ "override-mapping-root", required_argument, NULL, OPT_UNSUPPORTED },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	struct check_args ca = { .quiet = false };
	const struct cli_cmd cmd = {
		.name = "check",
		.usage = check_usage,
		.shortopts = "qm::" CLI_STD_SHORTOPTS,
		.longopts = longopts,
		.option = option,
		.ctx = &ca,
	};
	const char *pos[2], *path;
	int nr, r = cli_parse(&cmd, argc, argv, pos, 2, &nr);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if ((r = cli_metadata_arg("check", pos, nr, &path)))
		return r;
	/* thin_check's rule: the flag goes only after a full examination that found nothing */
	const char *partial = ca.snap                   ? "-m" :
	                      ca.opts.super_block_only  ? "--super-block-only" :
	                      ca.opts.ignore_leaks      ? "--ignore-non-fatal-errors" :
	                      ca.opts.skip_data_counts  ? "--skip-data-counts" :
	                      ca.opts.skip_mappings     ? "--skip-mappings" :
	                                                  NULL;
	if (ca.clear_needs_check && partial)
		return cli_usage("check",
		                 "--clear-needs-check-flag needs a full check that found nothing: "
		                 "not with %s",
		                 partial);
	struct tp_dev *meta;
	bool live;
	struct live_hold hold = { .ours = false };
	if (open_input(path, &ca, &meta, &live, &hold))
		return 1;
	if (live || (ca.snap && !snapshot_held(meta))) {
		r = check_snapshot(meta, path, &ca);
		thinp_dev_close(meta);
		if (hold.ours && backend_control_snap_release("check", hold.sock, ca.quiet))
			r = 1;
		return r;
	}
	unsigned nr_errors = 0;
	r = tcheck_run(meta, &ca.opts, print_fault, &ca, &nr_errors);
	if (r) {
		if (!ca.quiet)
			cli_err("check", "cannot check %s: %s", path, strerror(-r));
		r = 1;
	} else if (nr_errors) {
		if (!ca.quiet)
			cli_err("check", "%s: %u fault%s found", path, nr_errors,
			        nr_errors == 1 ? "" : "s");
		r = 1;
	} else if (ca.clear_needs_check) {
		r = clear_needs_check(meta, path, ca.quiet);
	}
	thinp_dev_close(meta);
	return r;
}
