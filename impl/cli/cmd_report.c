/* thinp pool report / thinp thin ls: one row per pool (lvs -o data_percent,...) or per thin
 * (thin_ls), the columns chosen with -o, printed as an aligned table or as JSON. Both read
 * only: report asks the pool for its status (through DIR/control when another process
 * holds it, or the kernel's status with --backend kernel); ls walks the mapping trees
 * (libthinp's thinp_thin_usage) of a pool opened here, or those of a metadata snapshot
 * (thinp_thin_usage_snap) when another process holds it. */
#include "cli/cmd_report.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"
#include "cli/cli_thins.h"

#define MAX_FIELDS 64
#define CELL       48

enum cell_type {
	CELL_NUM,
	CELL_STR,
	CELL_BOOL,
	CELL_NULL
};

struct cell {
	enum cell_type type;
	char text[CELL];
};

/* What -o, --format and --noheadings asked. */
struct report_args {
	struct cli_pool_args *pool;
	const char *fields; /* -o, or NULL: the defaults */
	bool json;
	bool noheadings;
};

enum {
	OPT_FORMAT = 400,
	OPT_NOHEADINGS
};

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct report_args *r = ctx;
	switch (c) {
	case 'o':
		r->fields = arg;
		return 0;
	case OPT_FORMAT:
		if (!strcmp(arg, "json") || !strcmp(arg, "text")) {
			r->json = !strcmp(arg, "json");
			return 0;
		}
		return cli_usage(r->pool->cmd, "invalid %s '%s': use text or json", opt, arg);
	case OPT_NOHEADINGS:
		r->noheadings = true;
		return 0;
	}
	return cli_pool_option(r->pool, c, arg, opt);
}

static int parse(int argc, char **argv, struct report_args *r, const char *usage)
{
	static const struct option longopts[] = {
		CLI_POOL_LONGOPTS,
		{ "options", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "noheadings", no_argument, NULL, OPT_NOHEADINGS },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	const struct cli_cmd cmd = {
		.name = r->pool->cmd,
		.usage = usage,
		.shortopts = "o:" CLI_POOL_SHORTOPTS,
		.longopts = longopts,
		.option = option,
		.ctx = r,
	};
	const char *pos[2];
	int nr, rc = cli_parse(&cmd, argc, argv, pos, 1, &nr);
	return rc ? rc : cli_take_pool(r->pool, pos, &nr, 0, false);
}

/* -o LIST (or DEFAULTS) as indexes into NAMES (NR of them; matched case-insensitively, so
 * thin_ls's upper-case names work too). 0, or 2 naming the field and the valid ones. */
static int pick(const char *cmd, const char *list, const char *defaults, const char *const *names,
                size_t nr, size_t *idx, size_t *nidx)
{
	char buf[1024];
	if (snprintf(buf, sizeof(buf), "%s", list ? list : defaults) >= (int)sizeof(buf))
		return cli_usage(cmd,
		                 "the field list -o '%.40s...' is too long: give at most %zu "
		                 "characters",
		                 list, sizeof(buf) - 1);
	*nidx = 0;
	char *p = buf;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		size_t i = 0;
		while (i < nr && strcasecmp(p, names[i]))
			i++;
		if (i == nr || *nidx == MAX_FIELDS) {
			char valid[1024];
			size_t n = 0;
			for (size_t j = 0; j < nr && n < sizeof(valid); j++)
				n += (size_t)snprintf(valid + n, sizeof(valid) - n, "%s%s",
				                      j ? ", " : "", names[j]);
			if (i < nr)
				return cli_usage(
				        cmd, "too many fields in -o '%.40s...': give at most %d",
				        list, MAX_FIELDS);
			return cli_usage(cmd, "unknown field '%s' in -o '%s': valid fields are %s",
			                 p, list, valid);
		}
		idx[(*nidx)++] = i;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static void num(struct cell *c, unsigned long long v)
{
	c->type = CELL_NUM;
	snprintf(c->text, CELL, "%llu", v);
}

static void str(struct cell *c, const char *s)
{
	c->type = CELL_STR;
	snprintf(c->text, CELL, "%s", s);
}

static void boolean(struct cell *c, bool v)
{
	c->type = CELL_BOOL;
	snprintf(c->text, CELL, "%s", v ? "true" : "false");
}

static void null(struct cell *c)
{
	c->type = CELL_NULL;
	snprintf(c->text, CELL, "-");
}

/* USED / TOTAL x 100 to 2 decimals, as lvs prints data_percent (libdevmapper's
 * dm_percent_to_round_float): rounded to nearest, except that 100.00 means full and 0.00
 * empty, so a pool one block short of full reads 99.99 and one block used 0.01. */
static void percent(struct cell *c, uint64_t used, uint64_t total)
{
	unsigned long long hundredths = total ? (used * 20000 + total) / (2 * total) : 0;
	if (hundredths == 10000 && used < total)
		hundredths = 9999;
	else if (hundredths == 0 && used)
		hundredths = 1;
	c->type = CELL_NUM;
	snprintf(c->text, CELL, "%llu.%02llu", hundredths / 100, hundredths % 100);
}

/* ROWS rows of NF cells (row-major): an aligned table (numbers right, words left) under
 * the upper-cased field names, or JSON: {"KEY": [ {field: value, ...}, ... ]} (ONE: the
 * single row as {"KEY": {...}}). */
static void print(const struct report_args *r, const char *key, bool one, const char *const *names,
                  const size_t *idx, size_t nf, const struct cell *cells, size_t rows)
{
	if (r->json) {
		printf("{\"%s\": %s", key, one ? "" : "[");
		for (size_t i = 0; i < rows; i++) {
			printf("%s{", i ? ", " : "");
			for (size_t f = 0; f < nf; f++) {
				const struct cell *c = &cells[i * nf + f];
				const char *q = c->type == CELL_STR ? "\"" : "";
				printf("%s\"%s\": %s%s%s", f ? ", " : "", names[idx[f]], q,
				       c->type == CELL_NULL ? "null" : c->text, q);
			}
			printf("}");
		}
		printf("%s}\n", one ? "" : "]");
		return;
	}
	int width[MAX_FIELDS];
	for (size_t f = 0; f < nf; f++) {
		width[f] = r->noheadings ? 0 : (int)strlen(names[idx[f]]);
		for (size_t i = 0; i < rows; i++) {
			int w = (int)strlen(cells[i * nf + f].text);
			width[f] = w > width[f] ? w : width[f];
		}
	}
	if (!r->noheadings) {
		for (size_t f = 0; f < nf; f++) {
			char h[CELL];
			size_t k = 0;
			for (; names[idx[f]][k] && k < CELL - 1; k++)
				h[k] = (char)(names[idx[f]][k] >= 'a' && names[idx[f]][k] <= 'z' ?
				                      names[idx[f]][k] - 'a' + 'A' :
				                      names[idx[f]][k]);
			h[k] = '\0';
			printf("%-*s%s", f + 1 < nf ? width[f] : 0, h, f + 1 < nf ? " " : "\n");
		}
	}
	for (size_t i = 0; i < rows; i++)
		for (size_t f = 0; f < nf; f++) {
			const struct cell *c = &cells[i * nf + f];
			const char *end = f + 1 < nf ? " " : "\n";
			if (c->type == CELL_STR)
				printf("%-*s%s", f + 1 < nf ? width[f] : 0, c->text, end);
			else
				printf("%*s%s", width[f], c->text, end);
		}
}

/* ---- pool report ---- */

static const char report_usage[] =
        "usage: thinp pool report DIR | --data DEV --metadata DEV  [-o FIELD,...]\n"
        "         [--format text|json] [--noheadings]\n"
        "       thinp --backend kernel pool report DIR|NAME [options]\n"
        "The pool's space, as lvs reports a thin pool: one row of the fields -o names\n"
        "(default: all, in this order):\n"
        "  data_percent, metadata_percent   used / total x 100, 2 decimals (lvs's)\n"
        "  used_data_blocks, total_data_blocks, used_metadata_blocks,\n"
        "  total_metadata_blocks            in pool blocks / 4 KiB metadata blocks\n"
        "  block_size                       the data block size in bytes\n"
        "  low_water                        the table's low-water mark in blocks\n"
        "  mode                             write, out_of_data_space, read_only, fail\n"
        "  transaction_id, needs_check\n"
        "  held_metadata_snap               the metadata snapshot's block, or - (none)\n"
        "block_size and low_water come from DIR/table (- when a kernel NAME pool's are not\n"
        "known). --format json prints {\"pool\": {FIELD: VALUE, ...}}. The status is read\n"
        "without committing (dmsetup status --noflush). A DIR pool another process holds\n"
        "answers through DIR/control.\n";

static const char *const pool_fields[] = {
	"data_percent",
	"metadata_percent",
	"used_data_blocks",
	"total_data_blocks",
	"used_metadata_blocks",
	"total_metadata_blocks",
	"block_size",
	"low_water",
	"mode",
	"transaction_id",
	"needs_check",
	"held_metadata_snap",
};
#define NR_POOL_FIELDS (sizeof(pool_fields) / sizeof(pool_fields[0]))

static void pool_cell(struct cell *c, size_t field, const struct thinp_pool_status *st,
                      const struct cli_pool_args *a, bool table_known)
{
	static const char *const modes[] = { "write", "out_of_data_space", "read_only", "fail" };
	switch (field) {
	case 0:
		percent(c, st->used_data_blocks, st->total_data_blocks);
		return;
	case 1:
		percent(c, st->used_meta_blocks, st->total_meta_blocks);
		return;
	case 2:
		num(c, st->used_data_blocks);
		return;
	case 3:
		num(c, st->total_data_blocks);
		return;
	case 4:
		num(c, st->used_meta_blocks);
		return;
	case 5:
		num(c, st->total_meta_blocks);
		return;
	case 6:
		if (table_known)
			num(c, (a->opts.block_sectors ? a->opts.block_sectors : 128) * 512ull);
		else
			null(c);
		return;
	case 7:
		if (table_known)
			num(c, a->opts.low_water_blocks);
		else
			null(c);
		return;
	case 8:
		str(c, (unsigned)st->mode < 4 ? modes[st->mode] : "unknown");
		return;
	case 9:
		num(c, st->transaction_id);
		return;
	case 10:
		boolean(c, st->needs_check);
		return;
	default:
		if (st->held_root)
			num(c, st->held_root);
		else
			null(c);
	}
}

int cmd_pool_report(int argc, char **argv, struct cli_pool_args *a)
{
	struct report_args r = { .pool = a };
	size_t idx[MAX_FIELDS], nf;
	int rc = parse(argc, argv, &r, report_usage);
	if (rc)
		return rc == CLI_DONE ? 0 : rc;
	if ((rc = pick(a->cmd, r.fields,
	               "data_percent,metadata_percent,used_data_blocks,total_data_blocks,"
	               "used_metadata_blocks,total_metadata_blocks,block_size,low_water,mode,"
	               "transaction_id,needs_check,held_metadata_snap",
	               pool_fields, NR_POOL_FIELDS, idx, &nf)))
		return rc;
	a->via_control = true;
	struct backend_pool *p;
	if ((rc = backend_of(a)->open(a, &p)))
		return rc;
	struct thinp_pool_status st;
	rc = p->ops->pool_status(p, true, &st, NULL, 0);
	if (!rc) {
		/* the user backend opens a pool only with its block size; the kernel's NAME pools
		 * keep theirs in a table thinp never saw */
		bool known =
		        a->backend == CLI_BACKEND_USER || cli_pool_dir(a) || a->have_block_size;
		struct cell cells[MAX_FIELDS];
		for (size_t f = 0; f < nf; f++)
			pool_cell(&cells[f], idx[f], &st, a, known);
		print(&r, "pool", true, pool_fields, idx, nf, cells, 1);
	}
	return p->ops->close(p, rc);
}

/* ---- thin ls ---- */

static const char ls_usage[] =
        "usage: thinp thin ls DIR | --data DEV --metadata DEV  [-o FIELD,...]\n"
        "         [--format text|json] [--noheadings]\n"
        "One row per thin device, as thin_ls prints them. Fields (-o; thin_ls's upper-case\n"
        "names work too; default: dev, mapped_blocks, exclusive_blocks, shared_blocks,\n"
        "transaction, create_time, snap_time, size_bytes):\n"
        "  dev                                the thin's id\n"
        "  mapped_blocks                      blocks its mapping tree maps\n"
        "  exclusive_blocks                   mapped to a data block no other mapping (of\n"
        "                                     any thin) maps: what deleting it frees\n"
        "  shared_blocks                      mapped_blocks - exclusive_blocks\n"
        "  mapped_sectors, exclusive_sectors, shared_sectors, mapped_bytes,\n"
        "  exclusive_bytes, shared_bytes      the same in 512-byte sectors / bytes\n"
        "  transaction                        the pool's transaction id at its creation\n"
        "  create_time, snap_time             the pool time at its creation / last snapshot\n"
        "  size_bytes                         its size in DIR/thins, or - (none recorded)\n"
        "--format json prints {\"thins\": [{FIELD: VALUE, ...}, ...]}. A pool this command\n"
        "opens is read as it stands. A DIR pool another process holds is read from a\n"
        "metadata snapshot reserved through DIR/control for the listing and released after\n"
        "it (one already held is read and kept, with a warning: it shows the pool when it\n"
        "was reserved). The kernel's pool is refused: use thin_ls -m on its snapshot.\n";

static const char *const thin_fields[] = {
	"dev",
	"mapped_blocks",
	"exclusive_blocks",
	"shared_blocks",
	"mapped_sectors",
	"exclusive_sectors",
	"shared_sectors",
	"mapped_bytes",
	"exclusive_bytes",
	"shared_bytes",
	"transaction",
	"create_time",
	"snap_time",
	"size_bytes",
};
#define NR_THIN_FIELDS (sizeof(thin_fields) / sizeof(thin_fields[0]))

static void thin_cell(struct cell *c, size_t field, const struct thinp_thin_usage *u,
                      uint32_t block_sectors, uint64_t size)
{
	const uint64_t blocks[3] = { u->mapped_blocks, u->exclusive_blocks, u->shared_blocks };
	if (field >= 1 && field <= 9) {
		uint64_t unit = field <= 3 ? 1 :
		                field <= 6 ? block_sectors :
		                             block_sectors * 512ull;
		num(c, blocks[(field - 1) % 3] * unit);
		return;
	}
	switch (field) {
	case 0:
		num(c, u->id);
		return;
	case 10:
		num(c, u->transaction_id);
		return;
	case 11:
		num(c, u->creation_time);
		return;
	case 12:
		num(c, u->snapshotted_time);
		return;
	default:
		if (size)
			num(c, size);
		else
			null(c);
	}
}

/* A DIR pool another process holds: its metadata snapshot (reserved through DIR/control
 * for this listing and released after it, or the one already held) is read instead of
 * the metadata, which changes under a reader. 0 or 1 (reported). */
static int live_usage(const struct cli_pool_args *a, struct thinp_thin_usage **u, size_t *n,
                      uint32_t *bs)
{
	char sock[PATH_MAX], path[PATH_MAX], err[1024];
	struct thinp_pool_status st;
	bool ours;
	if (backend_control_path(a->pool, sock, sizeof(sock)) ||
	    snprintf(path, sizeof(path), "%s/metadata", a->pool) >= (int)sizeof(path))
		return cli_fail(a->cmd, "%s: path too long", a->pool);
	if (backend_control_snap_hold(a->cmd, sock, false, &st, &ours))
		return 1;
	if (!ours)
		cli_warn(a->cmd,
		         "a metadata snapshot (block %llu) was already held: this is the pool "
		         "when it was reserved, not now",
		         (unsigned long long)st.held_root);
	struct tp_dev *meta;
	int rc = thinp_dev_open(path, THINP_DEV_RDONLY, 0, &meta);
	if (rc) {
		rc = cli_fail(a->cmd, "cannot open %s: %s", path, strerror(-rc));
	} else {
		if (thinp_thin_usage_snap(meta, st.held_root, u, n, bs, err, sizeof(err)))
			rc = cli_fail(a->cmd, "%s: %s", path, err);
		thinp_dev_close(meta);
	}
	if (ours && backend_control_snap_release(a->cmd, sock, false) && !rc) {
		free(*u);
		rc = 1;
	}
	return rc;
}

static int thin_ls(struct backend_pool *p, const struct report_args *r, const size_t *idx,
                   size_t nf)
{
	const struct cli_pool_args *a = p->args;
	struct thinp_thin_usage *u;
	size_t n;
	uint32_t bs;
	int rc;
	if (p->ops->thin_usage)
		rc = p->ops->thin_usage(p, &u, &n, &bs);
	else if (p->ops == &backend_control_ops)
		rc = live_usage(a, &u, &n, &bs);
	else
		return cli_fail(a->cmd,
		                "the kernel's pool changes its metadata under a reader: reserve a "
		                "metadata snapshot (thinp --backend kernel metadata-snap %s "
		                "reserve) and read it with thin_ls -m, or remove the pool first",
		                a->pool);
	if (rc)
		return rc;
	const char *dir = cli_pool_dir(a);
	struct cell *cells = calloc(n * nf + 1, sizeof(*cells));
	if (!cells) {
		free(u);
		return cli_fail(a->cmd, "out of memory for %zu thins", n);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t size = 0;
		if (dir && cli_thins_get(a->cmd, dir, u[i].id, &size))
			rc = 1;
		for (size_t f = 0; f < nf; f++)
			thin_cell(&cells[i * nf + f], idx[f], &u[i], bs, size);
	}
	if (!rc)
		print(r, "thins", false, thin_fields, idx, nf, cells, n);
	free(cells);
	free(u);
	return rc;
}

int cmd_thin_ls(int argc, char **argv, const struct cli_global *g)
{
	struct cli_pool_args a;
	cli_pool_args_init(&a, "thin ls", g);
	struct report_args r = { .pool = &a };
	size_t idx[MAX_FIELDS], nf;
	int rc = parse(argc, argv, &r, ls_usage);
	if (rc)
		return rc == CLI_DONE ? 0 : rc;
	if ((rc = pick(a.cmd, r.fields,
	               "dev,mapped_blocks,exclusive_blocks,shared_blocks,transaction,create_time,"
	               "snap_time,size_bytes",
	               thin_fields, NR_THIN_FIELDS, idx, &nf)))
		return rc;
	a.via_control = true; /* a held pool is then refused with the way out, not just "busy" */
	struct backend_pool *p;
	if ((rc = backend_of(&a)->open(&a, &p)))
		return rc;
	return p->ops->close(p, thin_ls(p, &r, idx, nf));
}
