/* thinp pool / thin / write / read / discard / set-transaction-id /
 * metadata-snap: each opens the pool, acts, commits and closes, like one
 * dmsetup message or one IO against the kernel's pool. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "io/dev.h"

#define IO_CHUNK (1u << 20)

static int close_pool(struct thinp_pool *p, int rc)
{
	int r = thinp_pool_close(p);
	if (r && !rc) {
		fprintf(stderr, "thinp: committing the pool failed: %s\n", strerror(-r));
		return 1;
	}
	return rc;
}

/* Collect positional args and pool options; returns 0, or an exit code. */
static int parse(int argc, char **argv, int first, struct cli_pool_args *a, const char **pos,
		 int max_pos, int *nr_pos, const char *usage)
{
	*nr_pos = 0;
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("%s", usage);
			return -1;
		}
		int r = cli_pool_option(argc, argv, &i, a);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "thinp: unknown option '%s'\n%s", argv[i], usage);
			return 2;
		}
		if (*nr_pos == max_pos) {
			fprintf(stderr, "thinp: unexpected argument '%s'\n%s", argv[i], usage);
			return 2;
		}
		pos[(*nr_pos)++] = argv[i];
	}
	return 0;
}

/* With --data/--metadata the first positional is not a directory. */
static int take_dir(struct cli_pool_args *a, const char **pos, int *nr, int need,
		    const char *usage)
{
	if (!a->data && !a->metadata) {
		if (*nr < 1) {
			fprintf(stderr, "thinp: missing pool directory\n%s", usage);
			return 2;
		}
		a->dir = pos[0];
		memmove(pos, pos + 1, (size_t)(*nr - 1) * sizeof(*pos));
		(*nr)--;
	} else if (!a->data || !a->metadata) {
		fprintf(stderr, "thinp: --data and --metadata go together\n");
		return 2;
	}
	if (*nr != need) {
		fprintf(stderr, "thinp: expected %d argument%s after the pool\n%s", need,
			need == 1 ? "" : "s", usage);
		return 2;
	}
	return 0;
}

static int report(struct thinp_pool *p, int r, const char *what)
{
	if (!r)
		return 0;
	fprintf(stderr, "thinp: %s: %s\n", what, *thinp_pool_error(p) ? thinp_pool_error(p)
								      : strerror(-r));
	return 1;
}

/* ---- pool create / status / extend ---- */

static const char pool_create_usage[] =
	"usage: thinp pool create DIR [--data-size 100G] [--metadata-size 2G] [--block-size 64k]\n"
	"         [--low-water BLOCKS] [--skip-block-zeroing] [--error-if-no-space]\n"
	"         [--ignore-discard] [--no-discard-passdown] [--force]\n"
	"       thinp pool create --data DEV --metadata DEV [options]\n"
	"Creates DIR/data and DIR/metadata as sparse files (Docker's loop-lvm defaults:\n"
	"100G data, 2G metadata) and formats a pool. An existing pool is kept unless --force.\n";

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Pull "--data-size N" / "--metadata-size N" (and --force when FORCE is
 * given) out of argv; the rest goes to parse(). Returns 0 or an exit code. */
static int take_sizes(int argc, char **argv, uint64_t *data_size, uint64_t *meta_size,
		      bool *force, char **rest, int *nrest)
{
	*nrest = 0;
	for (int i = 0; i < argc; i++) {
		if (i >= 2 && force && !strcmp(argv[i], "--force")) {
			*force = true;
			continue;
		}
		if (i >= 2 && (!strcmp(argv[i], "--data-size") || !strcmp(argv[i], "--metadata-size"))) {
			if (i + 1 >= argc) {
				fprintf(stderr, "thinp: %s needs a value\n", argv[i]);
				return 2;
			}
			bool d = argv[i][2] == 'd';
			if (cli_parse_size(d ? "data size" : "metadata size", argv[i + 1],
					   d ? data_size : meta_size))
				return 2;
			i++;
			continue;
		}
		rest[(*nrest)++] = argv[i];
	}
	return 0;
}

static int pool_create(int argc, char **argv)
{
	struct cli_pool_args a = {0};
	uint64_t data_size = 100ull << 30, meta_size = 2ull << 30;
	bool force = false;
	const char *pos[2];
	int nr, nrest;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	int r = take_sizes(argc, argv, &data_size, &meta_size, &force, rest, &nrest);
	if (!r)
		r = parse(nrest, rest, 2, &a, pos, 1, &nr, pool_create_usage);
	free(rest);
	if (r)
		return r < 0 ? 0 : r;
	if (take_dir(&a, pos, &nr, 0, pool_create_usage))
		return 2;
	if (meta_size < 65536) {
		fprintf(stderr, "thinp: invalid metadata size: at least 64k is needed (2M is the practical floor)\n");
		return 2;
	}
	char data[PATH_MAX], meta[PATH_MAX];
	if (a.dir) {
		if (mkdir(a.dir, 0755) && errno != EEXIST) {
			fprintf(stderr, "thinp: cannot create directory %s: %s\n", a.dir,
				strerror(errno));
			return 1;
		}
		snprintf(data, sizeof(data), "%s/data", a.dir);
		snprintf(meta, sizeof(meta), "%s/metadata", a.dir);
	} else {
		snprintf(data, sizeof(data), "%s", a.data);
		snprintf(meta, sizeof(meta), "%s", a.metadata);
	}
	if (file_exists(meta) && !force) {
		struct tp_dev *m;
		if (!tp_dev_open(meta, TP_DEV_RDONLY, 0, &m)) {
			uint8_t sb[4096] = {0};
			int rr = m->size >= 4096 ? tp_dev_pread(m, sb, 4096, 0) : -1;
			tp_dev_close(m);
			uint64_t magic = 0;
			memcpy(&magic, sb + 32, 8);
			if (!rr && magic == 27022010ull) {
				fprintf(stderr,
					"thinp: %s already holds a thin pool: refusing to overwrite it (use --force to destroy it)\n",
					meta);
				return 1;
			}
		}
	}
	struct tp_dev *d, *m;
	unsigned fl = TP_DEV_CREATE | TP_DEV_EXCL;
	r = tp_dev_open(data, fl | (a.direct ? TP_DEV_DIRECT : 0), data_size, &d);
	if (r) {
		fprintf(stderr, "thinp: cannot open data device %s: %s\n", data, strerror(-r));
		return 1;
	}
	r = tp_dev_open(meta, fl, meta_size, &m);
	if (r) {
		fprintf(stderr, "thinp: cannot open metadata device %s: %s\n", meta, strerror(-r));
		tp_dev_close(d);
		return 1;
	}
	/* the sizes asked for apply to files that already existed, too (grow only) */
	if ((d->size < data_size && (r = tp_dev_resize(d, data_size))) ||
	    (m->size < meta_size && (r = tp_dev_resize(m, meta_size)))) {
		fprintf(stderr, "thinp: cannot size the pool's devices: %s\n", strerror(-r));
		tp_dev_close(d);
		tp_dev_close(m);
		return 1;
	}
	struct thinp_pool *p;
	char err[512];
	a.opts.no_commit_timer = true;
	r = thinp_pool_format(d, m, &a.opts, &p, err, sizeof(err));
	if (r) {
		fprintf(stderr, "thinp: cannot create the pool: %s\n", err);
		return 1;
	}
	if (a.dir && (r = cli_save_table(a.dir, &a.opts))) {
		fprintf(stderr, "thinp: cannot save %s/table: %s\n", a.dir, strerror(-r));
		return close_pool(p, 1);
	}
	return close_pool(p, 0);
}

static const char pool_status_usage[] =
	"usage: thinp pool status DIR | --data DEV --metadata DEV\n"
	"Prints the pool's `dmsetup status` line (the kernel's thin-pool INFO text).\n";

static int pool_status(int argc, char **argv)
{
	struct cli_pool_args a = {0};
	const char *pos[2];
	int nr, r = parse(argc, argv, 2, &a, pos, 2, &nr, pool_status_usage);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, 0, pool_status_usage)))
		return r;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	char line[512];
	r = thinp_pool_status_line(p, false, line, sizeof(line));
	if (!r)
		printf("%s\n", line);
	return close_pool(p, report(p, r, "status"));
}

static const char pool_extend_usage[] =
	"usage: thinp pool extend DIR [--data-size N] [--metadata-size N]\n"
	"Grows the data and/or metadata device (files are extended) and the pool with them.\n";

static int pool_extend(int argc, char **argv)
{
	struct cli_pool_args a = {0};
	uint64_t data_size = 0, meta_size = 0;
	const char *pos[2];
	int nr, nrest;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	int r = take_sizes(argc, argv, &data_size, &meta_size, NULL, rest, &nrest);
	if (!r)
		r = parse(nrest, rest, 2, &a, pos, 1, &nr, pool_extend_usage);
	free(rest);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, 0, pool_extend_usage)))
		return r;
	if (!data_size && !meta_size) {
		fprintf(stderr, "thinp: pool extend needs --data-size and/or --metadata-size\n%s",
			pool_extend_usage);
		return 2;
	}
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	if (data_size)
		r = thinp_pool_resize_data(p, data_size);
	if (!r && meta_size)
		r = thinp_pool_resize_metadata(p, meta_size);
	return close_pool(p, report(p, r, "extend"));
}

int cmd_pool(int argc, char **argv)
{
	static const char usage[] =
		"usage: thinp pool create|status|extend ...   (thinp pool SUBCOMMAND --help)\n";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "create"))
		return pool_create(argc, argv);
	if (!strcmp(argv[1], "status"))
		return pool_status(argc, argv);
	if (!strcmp(argv[1], "extend"))
		return pool_extend(argc, argv);
	fprintf(stderr, "thinp: unknown pool subcommand '%s'\n%s", argv[1], usage);
	return 2;
}

/* ---- thin create / snap / delete / status ---- */

static const char thin_usage[] =
	"usage: thinp thin create DIR ID\n"
	"       thinp thin snap DIR ID ORIGIN_ID\n"
	"       thinp thin delete DIR ID\n"
	"       thinp thin status DIR ID\n"
	"(or --data DEV --metadata DEV instead of DIR). IDs are 24-bit (0..16777215).\n";

int cmd_thin(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(thin_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	int need;
	if (!strcmp(sub, "create") || !strcmp(sub, "delete") || !strcmp(sub, "status"))
		need = 1;
	else if (!strcmp(sub, "snap"))
		need = 2;
	else {
		fprintf(stderr, "thinp: unknown thin subcommand '%s'\n%s", sub, thin_usage);
		return 2;
	}
	struct cli_pool_args a = {0};
	const char *pos[4];
	int nr, r = parse(argc, argv, 2, &a, pos, 3, &nr, thin_usage);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, need, thin_usage)))
		return r;
	uint64_t id, origin = 0;
	if (cli_parse_u64("device id", pos[0], &id) ||
	    (need == 2 && cli_parse_u64("origin device id", pos[1], &origin)))
		return 2;
	if (id > 0xFFFFFF || origin > 0xFFFFFF) {
		fprintf(stderr, "thinp: invalid device id '%s': ids are 24-bit (0..16777215)\n",
			id > 0xFFFFFF ? pos[0] : pos[1]);
		return 2;
	}
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	if (!strcmp(sub, "create")) {
		r = thinp_create_thin(p, id);
	} else if (!strcmp(sub, "snap")) {
		r = thinp_create_snap(p, id, origin);
	} else if (!strcmp(sub, "delete")) {
		r = thinp_delete_thin(p, id);
	} else {
		char line[256];
		r = thinp_thin_status_line(p, id, line, sizeof(line));
		if (!r)
			printf("%s\n", line);
	}
	char what[64];
	snprintf(what, sizeof(what), "thin %s", sub);
	return close_pool(p, report(p, r, what));
}

/* ---- write / read / discard ---- */

static const char io_usage[] =
	"usage: thinp write DIR ID OFFSET LENGTH     (LENGTH bytes from stdin)\n"
	"       thinp read DIR ID OFFSET LENGTH      (LENGTH bytes to stdout)\n"
	"       thinp discard DIR ID OFFSET LENGTH\n"
	"(or --data DEV --metadata DEV instead of DIR). OFFSET and LENGTH take k/m/g/t.\n";

static int io_cmd(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct cli_pool_args a = {0};
	const char *pos[5];
	int nr, r = parse(argc, argv, 1, &a, pos, 4, &nr, io_usage);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, 3, io_usage)))
		return r;
	uint64_t id, off, len;
	if (cli_parse_u64("device id", pos[0], &id) || cli_parse_size("offset", pos[1], &off) ||
	    cli_parse_size("length", pos[2], &len))
		return 2;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	struct thinp_thin *t;
	r = thinp_thin_open(p, id, 0, &t);
	if (r)
		return close_pool(p, report(p, r, cmd));
	int rc = 0;
	if (!strcmp(cmd, "discard")) {
		rc = report(p, thinp_discard(t, off, len, NULL), cmd);
	} else {
		uint8_t *buf = malloc(IO_CHUNK);
		if (!buf) {
			thinp_thin_close(t);
			return close_pool(p, 1);
		}
		bool w = !strcmp(cmd, "write");
		for (uint64_t done = 0; done < len && !rc;) {
			size_t n = len - done < IO_CHUNK ? (size_t)(len - done) : IO_CHUNK;
			if (w) {
				size_t got = fread(buf, 1, n, stdin);
				if (got != n) {
					fprintf(stderr,
						"thinp: write: stdin ended after %llu of %llu bytes; nothing more written\n",
						(unsigned long long)(done + got),
						(unsigned long long)len);
					n = got;
					rc = 1;
				}
				if (n && report(p, thinp_write(t, buf, n, off + done, 0, NULL), cmd))
					rc = 1;
			} else {
				rc = report(p, thinp_read(t, buf, n, off + done, NULL), cmd);
				if (!rc && fwrite(buf, 1, n, stdout) != n) {
					fprintf(stderr, "thinp: read: writing stdout failed\n");
					rc = 1;
				}
			}
			done += n;
		}
		free(buf);
		if (w && !rc)
			rc = report(p, thinp_flush(t, NULL), cmd);
	}
	thinp_thin_close(t);
	return close_pool(p, rc);
}

int cmd_write(int argc, char **argv) { return io_cmd(argc, argv); }
int cmd_read(int argc, char **argv) { return io_cmd(argc, argv); }
int cmd_discard(int argc, char **argv) { return io_cmd(argc, argv); }

/* ---- set-transaction-id / metadata-snap ---- */

static const char trans_usage[] =
	"usage: thinp set-transaction-id DIR OLD NEW\n"
	"Compare-and-swap of the pool's 64-bit transaction id (fails unless it is OLD).\n";

int cmd_set_transaction_id(int argc, char **argv)
{
	struct cli_pool_args a = {0};
	const char *pos[4];
	int nr, r = parse(argc, argv, 1, &a, pos, 3, &nr, trans_usage);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, 2, trans_usage)))
		return r;
	uint64_t old, nw;
	if (cli_parse_u64("old transaction id", pos[0], &old) ||
	    cli_parse_u64("new transaction id", pos[1], &nw))
		return 2;
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	return close_pool(p, report(p, thinp_set_transaction_id(p, old, nw), "set-transaction-id"));
}

static const char msnap_usage[] =
	"usage: thinp metadata-snap DIR reserve|release\n"
	"Holds (or drops) a read-only copy of the metadata roots for live thin_dump -m.\n";

int cmd_metadata_snap(int argc, char **argv)
{
	struct cli_pool_args a = {0};
	const char *pos[3];
	int nr, r = parse(argc, argv, 1, &a, pos, 2, &nr, msnap_usage);
	if (r)
		return r < 0 ? 0 : r;
	if ((r = take_dir(&a, pos, &nr, 1, msnap_usage)))
		return r;
	bool reserve = !strcmp(pos[0], "reserve");
	if (!reserve && strcmp(pos[0], "release")) {
		fprintf(stderr, "thinp: invalid action '%s': use reserve or release\n", pos[0]);
		return 2;
	}
	struct thinp_pool *p;
	if ((r = cli_open_pool(&a, &p)))
		return r;
	r = reserve ? thinp_reserve_metadata_snap(p) : thinp_release_metadata_snap(p);
	return close_pool(p, report(p, r, "metadata-snap"));
}
