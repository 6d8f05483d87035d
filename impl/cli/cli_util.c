#include "cli/cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm/dm_backend.h"
#include "io/dev.h"

void cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "thinp: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_parse_u64(const char *what, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-' || !isdigit((unsigned char)*s))
		goto bad;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "thinp: invalid %s '%s': expected a non-negative integer\n", what,
	        s ? s : "");
	return -1;
}

int cli_parse_size(const char *what, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || !isdigit((unsigned char)*s))
		goto bad;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	unsigned shift = 0;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		case 't':
			shift = 40;
			break;
		default:
			goto bad;
		}
		end++;
		if (tolower((unsigned char)*end) == 'i')
			end++;
		if (tolower((unsigned char)*end) == 'b')
			end++;
		if (*end)
			goto bad;
	}
	if (shift && v > (ULLONG_MAX >> shift))
		goto bad;
	*out = (uint64_t)v << shift;
	return 0;
bad:
	fprintf(stderr, "thinp: invalid %s '%s': expected a size like 4096, 64k, 100M, 2G or 1T\n",
	        what, s ? s : "");
	return -1;
}

static int need_arg(int argc, char **argv, int i)
{
	if (i + 1 >= argc) {
		fprintf(stderr, "thinp: option %s needs a value\n", argv[i]);
		return -1;
	}
	return 0;
}

int cli_pool_option(int argc, char **argv, int *i, struct cli_pool_args *a)
{
	const char *o = argv[*i];
	uint64_t v;
	if (!strcmp(o, "--data") || !strcmp(o, "--metadata")) {
		if (need_arg(argc, argv, *i))
			return -1;
		if (o[2] == 'd')
			a->data = argv[++*i];
		else
			a->metadata = argv[++*i];
		return 1;
	}
	if (!strcmp(o, "--block-size")) {
		if (need_arg(argc, argv, *i) || cli_parse_size("block size", argv[*i + 1], &v))
			return -1;
		++*i;
		if (v < 65536 || v > (1ull << 30) || v % 65536) {
			fprintf(stderr,
			        "thinp: invalid block size '%s': use 64k..1g, a multiple of 64k\n",
			        argv[*i]);
			return -1;
		}
		a->opts.block_sectors = (uint32_t)(v / 512);
		a->have_block_size = true;
		return 1;
	}
	if (!strcmp(o, "--low-water")) {
		if (need_arg(argc, argv, *i) || cli_parse_u64("low water mark", argv[*i + 1], &v))
			return -1;
		++*i;
		a->opts.low_water_blocks = v;
		return 1;
	}
	if (!strcmp(o, "--backend") || !strncmp(o, "--backend=", 10)) {
		const char *v = o[9] == '=' ? o + 10 : NULL;
		if (!v) {
			if (need_arg(argc, argv, *i))
				return -1;
			v = argv[++*i];
		}
		if (!strcmp(v, "user"))
			a->backend = CLI_BACKEND_USER;
		else if (!strcmp(v, "kernel"))
			a->backend = CLI_BACKEND_KERNEL;
		else {
			fprintf(stderr, "thinp: invalid backend '%s': use user or kernel\n", v);
			return -1;
		}
		return 1;
	}
	if (!strcmp(o, "-v") || !strcmp(o, "--verbose") || !strcmp(o, "-vv")) {
		a->verbose += o[2] == 'v' ? 2 : 1;
		return 1;
	}
	if (!strcmp(o, "--name")) {
		if (need_arg(argc, argv, *i))
			return -1;
		a->name = argv[++*i];
		return 1;
	}
	struct {
		const char *name;
		bool *flag;
	} flags[] = {
		{ "--deferred", &a->deferred },
		{ "--noflush", &a->noflush },
		{ "--fields", &a->fields },
		{ "--skip-block-zeroing", &a->opts.skip_block_zeroing },
		{ "--error-if-no-space", &a->opts.error_if_no_space },
		{ "--ignore-discard", &a->opts.ignore_discard },
		{ "--no-discard-passdown", &a->opts.no_discard_passdown },
		{ "--read-only", &a->opts.read_only },
		{ "--direct", &a->direct },
		{ "--losetup", &a->losetup },
	};
	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
		if (!strcmp(o, flags[k].name)) {
			*flags[k].flag = true;
			return 1;
		}
	return 0;
}

static void paths(const struct cli_pool_args *a, char *data, char *meta, size_t len)
{
	if (a->dir) {
		snprintf(data, len, "%s/data", a->dir);
		snprintf(meta, len, "%s/metadata", a->dir);
	} else {
		snprintf(data, len, "%s", a->data);
		snprintf(meta, len, "%s", a->metadata);
	}
}

int cli_save_table(const char *dir, const struct thinp_pool_opts *o)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/table", dir);
	snprintf(tmp, sizeof(tmp), "%s/table.tmp", dir);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	unsigned nf = o->skip_block_zeroing + o->ignore_discard + o->no_discard_passdown +
	              o->error_if_no_space;
	fprintf(f, "%u %llu %u%s%s%s%s\n", o->block_sectors ? o->block_sectors : 128,
	        (unsigned long long)o->low_water_blocks, nf,
	        o->skip_block_zeroing ? " skip_block_zeroing" : "",
	        o->ignore_discard ? " ignore_discard" : "",
	        o->no_discard_passdown ? " no_discard_passdown" : "",
	        o->error_if_no_space ? " error_if_no_space" : "");
	if (fclose(f))
		return -errno;
	return rename(tmp, path) ? -errno : 0;
}

/* Table features saved at creation apply unless the command line set them. */
void cli_load_table(const char *dir, struct cli_pool_args *a)
{
	char path[PATH_MAX], line[512];
	snprintf(path, sizeof(path), "%s/table", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		unsigned bs = 0, nf = 0;
		unsigned long long lw = 0;
		int off = 0;
		if (sscanf(line, "%u %llu %u%n", &bs, &lw, &nf, &off) >= 3) {
			if (!a->have_block_size)
				a->opts.block_sectors = bs;
			if (!a->opts.low_water_blocks)
				a->opts.low_water_blocks = lw;
			char *p = line + off, *tok, *save;
			while ((tok = strtok_r(p, " \n", &save))) {
				p = NULL;
				if (!strcmp(tok, "skip_block_zeroing"))
					a->opts.skip_block_zeroing = true;
				else if (!strcmp(tok, "ignore_discard"))
					a->opts.ignore_discard = true;
				else if (!strcmp(tok, "no_discard_passdown"))
					a->opts.no_discard_passdown = true;
				else if (!strcmp(tok, "error_if_no_space"))
					a->opts.error_if_no_space = true;
			}
		}
	}
	fclose(f);
}

/* A directory activated on the kernel (DIR/kernel.json, and the pool device exists) must not
 * be opened by libthinp at the same time: both would write the same metadata. */
static int refuse_if_kernel_active(const char *dir)
{
	char path[PATH_MAX], name[TDM_NAME_MAX];
	snprintf(path, sizeof(path), "%s/kernel.json", dir);
	struct tdm_ctx c = { 0 };
	struct tdm_info info;
	if (access(path, F_OK) || tdm_available(&c) || tdm_dir_name(&c, dir, name, sizeof(name)) ||
	    tdm_info(&c, name, &info) || !info.exists)
		return 0;
	fprintf(stderr,
	        "thinp: %s is active on the kernel as /dev/mapper/%s: use --backend kernel, or "
	        "deactivate it first (thinp --backend kernel pool remove %s)\n",
	        dir, name, dir);
	return 1;
}

void cli_print_pool_fields(const struct thinp_pool_status *st)
{
	static const char *const modes[] = { "write", "out_of_data_space", "read_only", "fail" };
	printf("transaction_id=%llu\nused_meta_blocks=%llu\ntotal_meta_blocks=%llu\n"
	       "used_data_blocks=%llu\ntotal_data_blocks=%llu\nheld_root=%llu\nmode=%s\n"
	       "discard_enabled=%d\ndiscard_passdown=%d\nerror_if_no_space=%d\nneeds_check=%d\n"
	       "metadata_low_water=%llu\n",
	       (unsigned long long)st->transaction_id, (unsigned long long)st->used_meta_blocks,
	       (unsigned long long)st->total_meta_blocks, (unsigned long long)st->used_data_blocks,
	       (unsigned long long)st->total_data_blocks, (unsigned long long)st->held_root,
	       (unsigned)st->mode < 4 ? modes[st->mode] : "?", st->discard_enabled,
	       st->discard_passdown, st->error_if_no_space, st->needs_check,
	       (unsigned long long)st->metadata_low_water);
}

void cli_print_thin_fields(const struct thinp_thin_status *st)
{
	printf("mapped_sectors=%llu\nhas_mapped=%d\nhighest_mapped_sector=%llu\n",
	       (unsigned long long)st->mapped_sectors, st->has_mapped,
	       (unsigned long long)st->highest_mapped_sector);
}

int cli_open_pool(struct cli_pool_args *a, struct thinp_pool **out)
{
	if (!a->dir && (!a->data || !a->metadata)) {
		fprintf(stderr,
		        "thinp: name the pool: a directory DIR (holding data and metadata) or --data DEV --metadata DEV\n");
		return 2;
	}
	if (a->dir) {
		int r = refuse_if_kernel_active(a->dir);
		if (r)
			return r;
		cli_load_table(a->dir, a);
	}
	char data[PATH_MAX], meta[PATH_MAX];
	paths(a, data, meta, sizeof(data));
	/* read_only freezes the metadata only: dm-thin still writes provisioned,
	 * unshared blocks of a read-only pool */
	unsigned fl = TP_DEV_EXCL;
	struct tp_dev *d, *m;
	int r = cli_open_dev(a, data, fl | (a->direct ? TP_DEV_DIRECT : 0), 0, &d);
	if (r) {
		fprintf(stderr, "thinp: cannot open data device %s: %s%s\n", data, strerror(-r),
		        r == -EBUSY ? " (another process has the pool open)" : "");
		return 1;
	}
	r = cli_open_dev(a, meta, fl | (a->opts.read_only ? TP_DEV_RDONLY : 0), 0, &m);
	if (r) {
		fprintf(stderr, "thinp: cannot open metadata device %s: %s%s\n", meta, strerror(-r),
		        r == -EBUSY ? " (another process has the pool open)" : "");
		tp_dev_close(d);
		return 1;
	}
	char err[512];
	a->opts.no_commit_timer = true; /* one-shot commands commit explicitly */
	r = thinp_pool_open(d, m, &a->opts, out, err, sizeof(err));
	if (r) {
		fprintf(stderr, "thinp: cannot open the pool: %s\n", err);
		return 1;
	}
	return 0;
}

int cli_open_dev(const struct cli_pool_args *a, const char *path, unsigned flags, uint64_t size,
		 struct tp_dev **out)
{
	if (!a->losetup)
		return tp_dev_open(path, flags, size, out);
	if (flags & TP_DEV_CREATE) {
		struct tp_dev *f;
		int r = tp_dev_open_file(path, TP_DEV_CREATE, size, &f);
		if (r)
			return r;
		tp_dev_close(f);
	}
	int r = tp_dev_open_loop(path, flags & ~(unsigned)TP_DEV_CREATE, out);
	if (r == -EPERM || r == -EACCES)
		fprintf(stderr, "thinp: --losetup needs root (loop devices): %s\n", path);
	return r;
}

int cli_usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "thinp %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'thinp %s --help'.\n", cmd);
	return 2;
}

int cli_open_metadata_arg(const char *cmd, int argc, char **argv, int optind, bool quiet,
			  struct tp_dev **meta, const char **path)
{
	if (optind == argc)
		return cli_usage_error(cmd, "%s", "no metadata file or device given");
	if (argc - optind > 1)
		return cli_usage_error(cmd, "one metadata file or device only (extra argument '%s')",
				       argv[optind + 1]);
	*path = argv[optind];
	int r = tp_dev_open(*path, TP_DEV_RDONLY, 0, meta);
	if (r) {
		if (!quiet)
			fprintf(stderr, "thinp %s: cannot open %s: %s\n", cmd, *path, strerror(-r));
		return 1;
	}
	return 0;
}
