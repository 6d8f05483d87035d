/* thinp write / read / discard: one IO against a thin device of a userspace pool, in
 * chunks (stdin for write, stdout for read); a write ends with a flush, so it is
 * committed when the command returns. The kernel's thins are block devices: dd,
 * blkdiscard or fio reach them. IO stays inside the thin's size (cli_thins.h), checked
 * here before the pool is opened and again by libthinp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"
#include "cli/cli_thins.h"

#define IO_CHUNK (1u << 20)

static const char io_usage[] =
        "usage: thinp write DIR ID OFFSET LENGTH     (LENGTH bytes from stdin)\n"
        "       thinp read DIR ID OFFSET LENGTH      (LENGTH bytes to stdout)\n"
        "       thinp discard DIR ID OFFSET LENGTH\n"
        "(or --data DEV --metadata DEV instead of DIR). OFFSET and LENGTH take k/m/g/t.\n"
        "The IO must end within the thin's size: the one `thin create --size` recorded in\n"
        "DIR/thins, else --size SIZE (a --data/--metadata pool has no DIR/thins), else 8 EiB.\n"
        "--cow kernel|merged: a partial write to a shared block (or to a new block with\n"
        "zeroing) in dm-thin's order, copy then write (kernel, the default), or as one block\n"
        "write with the data laid over the copy (merged, libthinp's own; not saved).\n";

enum io_kind {
	IO_WRITE,
	IO_READ,
	IO_DISCARD
};

struct io_args {
	enum io_kind kind;
	uint64_t id, off, len;
	uint64_t size; /* the thin's: IO beyond it is refused */
};

static int parse(int argc, char **argv, struct cli_pool_args *a, struct io_args *io)
{
	static const struct option longopts[] = {
		CLI_POOL_LONGOPTS, CLI_THIN_SIZE_LONGOPT, CLI_STD_LONGOPTS, { 0 }
	};
	const struct cli_cmd cmd = {
		.name = a->cmd,
		.usage = io_usage,
		.shortopts = CLI_POOL_SHORTOPTS,
		.longopts = longopts,
		.numbers = true,
		.option = cli_pool_option,
		.ctx = a,
	};
	const char *pos[4];
	int nr, r = cli_parse(&cmd, argc, argv, pos, 4, &nr);
	if (r)
		return r;
	if (!(backend_of(a)->caps & BACKEND_IO))
		return cli_usage(
		        a->cmd, "not with --backend kernel: use the thin's device node (`thinp "
		                "--backend kernel thin activate` prints it) with dd, blkdiscard or "
		                "fio");
	if ((r = cli_take_pool(a, pos, &nr, 3, false)))
		return r;
	if (cli_thin_id(a->cmd, "device id", pos[0], &io->id) ||
	    cli_size(a->cmd, "offset", pos[1], &io->off) ||
	    cli_size(a->cmd, "length", pos[2], &io->len))
		return 2;
	return 0;
}

/* The thin's size into IO->size, and the IO within it: 0, 1 (DIR/thins unreadable) or 2
 * (refused), reported. Without this the pool's offsets wrapped past 2^64: an IO near
 * the top landed at offset 0. */
static int bound(const struct cli_pool_args *a, struct io_args *io)
{
	const char *dir = cli_pool_dir(a);
	uint64_t rec = 0;
	if (dir && cli_thins_get(a->cmd, dir, io->id, &rec))
		return 1;
	if (rec && a->thin_size && a->thin_size != rec)
		return cli_usage(a->cmd,
		                 "--size %llu differs from thin %llu's size %llu bytes (recorded in "
		                 "%s/thins)",
		                 (unsigned long long)a->thin_size, (unsigned long long)io->id,
		                 (unsigned long long)rec, dir);
	io->size = rec ? rec : a->thin_size ? a->thin_size : CLI_THIN_SIZE_MAX;
	if (io->off <= io->size && io->len <= io->size - io->off)
		return 0;
	char what[128];
	if (rec || a->thin_size)
		snprintf(what, sizeof(what), "thin %llu's size %llu bytes",
		         (unsigned long long)io->id, (unsigned long long)io->size);
	else
		snprintf(what, sizeof(what),
		         "%llu bytes (8 EiB), the bound of a thin without a size (thin create "
		         "--size records one)",
		         (unsigned long long)io->size);
	return cli_usage(a->cmd, "offset %llu length %llu ends beyond %s%s",
	                 (unsigned long long)io->off, (unsigned long long)io->len,
	                 io->off > UINT64_MAX - io->len ? "64 bits, and " : "", what);
}

/* LEN bytes between stdin/stdout and the thin, a chunk at a time. */
static int copy(const struct backend_ops *be, struct backend_thin *t, const struct io_args *io,
                const char *cmd)
{
	uint8_t *buf = malloc(IO_CHUNK);
	if (!buf)
		return cli_fail(cmd, "out of memory");
	int rc = 0;
	for (uint64_t done = 0; done < io->len && !rc;) {
		size_t n = io->len - done < IO_CHUNK ? (size_t)(io->len - done) : IO_CHUNK;
		if (io->kind == IO_WRITE) {
			size_t got = fread(buf, 1, n, stdin);
			if (got != n) {
				cli_err(cmd,
				        "stdin ended after %llu of %llu bytes; nothing more written",
				        (unsigned long long)(done + got),
				        (unsigned long long)io->len);
				n = got;
				rc = 1;
			}
			if (n && be->write(t, buf, n, io->off + done))
				rc = 1;
		} else {
			rc = be->read(t, buf, n, io->off + done);
			if (!rc && fwrite(buf, 1, n, stdout) != n)
				rc = cli_fail(cmd, "writing stdout failed");
		}
		done += n;
	}
	free(buf);
	if (io->kind == IO_WRITE && !rc)
		rc = be->flush(t);
	return rc;
}

static int io_cmd(int argc, char **argv, const struct cli_global *g, enum io_kind kind)
{
	struct cli_pool_args a;
	cli_pool_args_init(&a, argv[0], g);
	struct io_args io = { .kind = kind };
	int r = parse(argc, argv, &a, &io);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if ((r = bound(&a, &io)))
		return r;
	/* a write may wait for space on a full pool (queue mode): another shell extends it
	 * through DIR/control; a long read holds the pool as long */
	a.serve_control = kind != IO_DISCARD;
	const struct backend_ops *be = backend_of(&a);
	struct backend_pool *p;
	if ((r = be->open(&a, &p)))
		return r;
	struct backend_thin *t;
	if ((r = be->thin_open(p, io.id, io.size, &t)))
		return be->close(p, r);
	r = kind == IO_DISCARD ? be->discard(t, io.off, io.len) : copy(be, t, &io, a.cmd);
	be->thin_close(t);
	return be->close(p, r);
}

int cmd_write(int argc, char **argv, const struct cli_global *g)
{
	return io_cmd(argc, argv, g, IO_WRITE);
}

int cmd_read(int argc, char **argv, const struct cli_global *g)
{
	return io_cmd(argc, argv, g, IO_READ);
}

int cmd_discard(int argc, char **argv, const struct cli_global *g)
{
	return io_cmd(argc, argv, g, IO_DISCARD);
}
