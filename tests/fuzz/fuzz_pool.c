/* libFuzzer harness: a pool on fuzzed metadata, driven by a list of ops.
 *
 * Input (pool_input.h): flags, an op list, then the metadata image (image.h)
 * on a 2 MiB memory device. A memory data device is sized from the image's
 * superblock (at most 32 MiB), the pool opened through the public API (no
 * commit timer thread; allocations fail at once when the pool is full, as
 * with error_if_no_space, instead of waiting a minute for a resize), and the
 * ops run: reads, writes, discards, flushes, status, thin and snapshot
 * creation and deletion, commits, the metadata snapshot. Nothing may crash,
 * leak or hang, and when the checker found the metadata clean before, the
 * metadata the pool leaves at close must be clean too. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "pdata/format.h"
#include "pool_input.h"
#include "reuse_dev.h"
#include "thin/check.h"
#include "thin/superblock.h"
#include "thinp.h"

#define MAX_DATA_BYTES (32ull << 20)
#define MAX_IO_SECTORS 1024u
#define NR_THINS       8u

/* ---- checking ---- */

static void print_msg(void *ctx, const char *msg)
{
	if (ctx)
		fprintf(stderr, "  check: %s\n", msg);
}

/* Faults found, or UINT32_MAX when the checker could not run. */
static unsigned check(struct tp_dev *meta, bool verbose)
{
	unsigned nr = 0;
	struct tcheck_opts o = {.max_reports_per_kind = verbose ? 0 : 1};
	return tcheck_run(meta, &o, print_msg, verbose ? meta : NULL, &nr) ? UINT32_MAX : nr;
}

/* The data device the image's superblock asks for, capped. */
static uint64_t data_bytes(struct tp_dev *meta)
{
	uint8_t b[TP_BLOCK_SIZE];
	if (tp_dev_pread(meta, b, sizeof(b), 0))
		return MAX_DATA_BYTES;
	struct thin_superblock sb;
	thin_sb_unpack(b, &sb);
	struct sm_root dr;
	sm_root_unpack(sb.data_sm_root, &dr);
	uint64_t block = (uint64_t)sb.data_block_size * 512;
	if (!block || !dr.nr_blocks || dr.nr_blocks > MAX_DATA_BYTES / block)
		return MAX_DATA_BYTES;
	return dr.nr_blocks * block;
}

/* ---- the ops ---- */

static uint8_t buf[MAX_IO_SECTORS * 512];

static void run_op(struct thinp_pool *p, struct thinp_thin **thins, const struct pi_op *op)
{
	uint64_t id = op->thin % NR_THINS;
	uint64_t off = ((uint64_t)op->a | (uint64_t)(op->c >> 8) << 16) * 512;
	size_t len = (size_t)(op->b % MAX_IO_SECTORS + 1) * 512;
	struct thinp_io_result res;
	struct thinp_pool_status ps;
	struct thinp_thin_status ts;
	char line[512];
	bool io = op->code == PI_READ || op->code == PI_WRITE || op->code == PI_DISCARD ||
		  op->code == PI_FLUSH;
	if (io && !thins[id] && thinp_thin_open(p, id, 0, &thins[id]))
		return;
	switch (op->code) {
	case PI_READ:
		(void)thinp_read(thins[id], buf, len, off, &res);
		break;
	case PI_WRITE:
		memset(buf, op->thin ^ op->a, len);
		(void)thinp_write(thins[id], buf, len, off, op->c & 1 ? THINP_IO_FUA : 0, &res);
		break;
	case PI_DISCARD:
		(void)thinp_discard(thins[id], off, len, &res);
		break;
	case PI_FLUSH:
		(void)thinp_flush(thins[id], &res);
		break;
	case PI_POOL_STATUS:
		(void)thinp_pool_status(p, op->c & 1, &ps);
		(void)thinp_pool_status_line(p, op->c & 1, line, sizeof(line));
		break;
	case PI_THIN_STATUS:
		(void)thinp_thin_status(p, id, &ts);
		(void)thinp_thin_status_line(p, id, line, sizeof(line));
		break;
	case PI_CREATE_THIN:
		(void)thinp_create_thin(p, id);
		break;
	case PI_CREATE_SNAP:
		(void)thinp_create_snap(p, id, op->a % NR_THINS);
		break;
	case PI_DELETE:
		if (thins[id]) {
			thinp_thin_close(thins[id]);
			thins[id] = NULL;
		}
		(void)thinp_delete_thin(p, id);
		break;
	case PI_COMMIT:
		(void)thinp_pool_commit(p);
		break;
	case PI_RESERVE:
		(void)thinp_reserve_metadata_snap(p);
		break;
	case PI_RELEASE:
		(void)thinp_release_metadata_snap(p);
		break;
	case PI_SET_TRANSACTION:
		(void)thinp_set_transaction_id(p, op->c, (uint64_t)op->c + 1);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	if (size < 2)
		return 0;
	unsigned flags = in[0], nr_ops = in[1];
	size_t image = 2 + (size_t)nr_ops * PI_OP_BYTES;
	if (image > size)
		return 0;
	struct tp_dev *meta, *data;
	if (fi_meta_dev(in + image, size - image, flags, &meta))
		abort();
	unsigned before = check(meta, false);

	/* (reuse_dev.h: the pool's close leaves both devices to us) */
	data = fr_dev(FR_DATA, data_bytes(meta), MAX_DATA_BYTES);
	if (!data)
		abort();
	struct thinp_pool_opts o = {.no_commit_timer = true,
				    .error_if_no_space = true,
				    .metadata_cache_blocks = 64,
				    .skip_block_zeroing = flags & 0x02,
				    .ignore_discard = flags & 0x04,
				    .no_discard_passdown = flags & 0x08};
	struct thinp_pool *p;
	char err[512];
	if (!thinp_pool_open(data, meta, &o, &p, err, sizeof(err))) {
		struct thinp_thin *thins[NR_THINS] = {NULL};
		for (unsigned i = 0; i < nr_ops; i++) {
			struct pi_op op;
			pi_op_unpack(in + 2 + (size_t)i * PI_OP_BYTES, &op);
			run_op(p, thins, &op);
		}
		for (unsigned i = 0; i < NR_THINS; i++)
			if (thins[i])
				thinp_thin_close(thins[i]);
		(void)thinp_pool_close(p);
	}
	if (before == 0 && check(meta, false) != 0) {
		fprintf(stderr, "fuzz_pool: the pool left clean metadata unclean:\n");
		check(meta, true);
		abort();
	}
	return 0;
}
