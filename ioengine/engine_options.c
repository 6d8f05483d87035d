/* The thinp engine's options: the table fio parses and lists (it is the
 * documentation: fio --enghelp=<path>), and the checks that run at parse
 * time (fio's verify hook), so a bad value stops fio before any job starts,
 * with the engine's own message. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "optgroup.h"

const char *const mode_names[] = { "loop", "direct" };
const char *const discard_names[] = { "passdown", "nopassdown", "ignore" };
const char *const no_space_names[] = { "queue", "error" };

static struct thinp_options *opts_of(void *data)
{
	return data;
}

static int parse_id(const char *what, const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = s && *s ? strtoull(s, &end, 10) : 0;
	if (!s || !*s || errno || *end || s[0] == '-' || v > THINP_MAX_DEV_ID) {
		log_err("thinp: %s=%s is invalid: a thin device id is a decimal number from 0 to %llu\n",
		        what, s ? s : "", THINP_MAX_DEV_ID);
		return 1;
	}
	*out = v;
	return 0;
}

static int verify_dev(const struct fio_option *o, void *data)
{
	(void)o;
	return parse_id("thinp_dev", opts_of(data)->dev_str, &opts_of(data)->dev_id);
}

static int verify_snap(const struct fio_option *o, void *data)
{
	(void)o;
	struct thinp_options *to = opts_of(data);
	if (parse_id("thinp_snapshot_of", to->snap_str, &to->snap_origin))
		return 1;
	to->has_snap = 1;
	return 0;
}

/* fio parses "-1" into these unsigned fields without a word: a value with
 * the top bit set came from a negative number, and is shown as one. */
static void log_range(const char *what, long long shown, const char *range)
{
	log_err("thinp: %s=%lld is invalid: %s\n", what, shown, range);
}

static long long shown_ull(unsigned long long v)
{
	return (long long)v; /* two's complement: -1 stays -1 */
}

static long long shown_uint(unsigned int v)
{
	return v > INT_MAX ? (long long)(int)v : (long long)v;
}

static int verify_block_size(const struct fio_option *o, void *data)
{
	(void)o;
	unsigned long long bs = opts_of(data)->block_size;
	if (bs && (bs % 65536 || bs > (1ull << 30))) {
		log_range("thinp_block_size", shown_ull(bs),
		          "a pool block is a multiple of 64k from 64k to 1g (dm-thin's "
		          "128..2097152 sectors)");
		return 1;
	}
	return 0;
}

/* V within [MIN, MAX] bytes, else the message naming the range. */
static int verify_bytes(const char *what, unsigned long long v, unsigned long long min,
                        unsigned long long max, const char *why)
{
	if (v >= min && v <= max)
		return 0;
	char range[200];
	snprintf(range, sizeof(range), "%sit must be from %llu to %llu bytes", why, min, max);
	log_range(what, shown_ull(v), range);
	return 1;
}

static int verify_data_size(const struct fio_option *o, void *data)
{
	(void)o;
	/* a file larger than off_t cannot be created */
	return verify_bytes("thinp_data_size", opts_of(data)->data_size, 65536, INT64_MAX, "");
}

static int verify_meta_size(const struct fio_option *o, void *data)
{
	(void)o;
	/* dm-thin's metadata device: at least a few blocks, at most 16 GiB */
	return verify_bytes("thinp_metadata_size", opts_of(data)->meta_size, 64 * META_BLOCK,
	                    THINP_MAX_META_BYTES, "dm-thin metadata is at most 16g: ");
}

static int verify_dev_size(const struct fio_option *o, void *data)
{
	(void)o;
	unsigned long long v = opts_of(data)->dev_size;
	if (v <= INT64_MAX)
		return 0;
	log_range("thinp_dev_size", shown_ull(v),
	          "it must be from 0 (the end of the job's range) to 9223372036854775807 bytes");
	return 1;
}

/* An unsigned int option within [MIN, MAX]. */
static int verify_uint(const char *what, unsigned int v, unsigned int min, unsigned int max,
                       const char *unit)
{
	if (v >= min && v <= max)
		return 0;
	char range[160];
	snprintf(range, sizeof(range), "it must be from %u to %u%s", min, max, unit);
	log_range(what, shown_uint(v), range);
	return 1;
}

static int verify_workers(const struct fio_option *o, void *data)
{
	(void)o;
	return verify_uint("thinp_workers", opts_of(data)->workers, 0, THINP_MAX_WORKERS, "");
}

static int verify_no_space_timeout(const struct fio_option *o, void *data)
{
	(void)o;
	return verify_uint("thinp_no_space_timeout", opts_of(data)->no_space_timeout, 1, INT_MAX,
	                   " milliseconds");
}

static int verify_commit_interval(const struct fio_option *o, void *data)
{
	(void)o;
	return verify_uint("thinp_commit_interval", opts_of(data)->commit_interval, 0, INT_MAX,
	                   " milliseconds");
}

static int verify_cache(const struct fio_option *o, void *data)
{
	(void)o;
	/* a cache larger than the largest metadata device holds nothing more */
	return verify_uint("thinp_cache", opts_of(data)->cache, 0,
	                   (unsigned int)(THINP_MAX_META_BYTES / META_BLOCK), " blocks of 4 KiB");
}

int options_parse_dev(struct thinp_options *o)
{
	return verify_dev(NULL, o);
}

struct fio_option thinp_fio_options[] = {
	{
		.name = "thinp_pool",
		.lname = "thinp pool directory",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, pool_dir),
		.help = "Pool directory: data device DIR/data, metadata device DIR/metadata "
			"(created with thinp_create=1)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_data",
		.lname = "thinp data device",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, data_path),
		.help = "Data device of the pool, a file or a block device (instead of thinp_pool's "
			"DIR/data)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_metadata",
		.lname = "thinp metadata device",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, meta_path),
		.help = "Metadata device of the pool, a file or a block device (instead of "
			"thinp_pool's DIR/metadata)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_mode",
		.lname = "thinp backing store mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, mode),
		.help = "How the pool's devices are reached: loop (page cache, Docker loop-lvm; default) "
			"or direct (O_DIRECT, direct-lvm; IO below or unaligned to 4 KiB is "
			"read-modify-written, with a warning). fio's direct= is ignored with a "
			"warning, not taken as direct: the mode is the pool's, shared by its jobs",
		.def = "loop",
		.posval =
			{
				{.ival = "loop",
				 .oval = MODE_LOOP,
				 .help = "through the page cache, like a loop device without direct-io "
					 "(Docker loop-lvm)"},
				{.ival = "direct",
				 .oval = MODE_DIRECT,
				 .help = "O_DIRECT on data and metadata (direct-lvm); the filesystem "
					 "must support O_DIRECT"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_losetup",
		.lname = "thinp loop devices over the pool's files",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, losetup),
		.help = "1 = reach the pool's two files through loop devices, as Docker's loop-lvm "
			"put dm-thin on /dev/loopN over its sparse files. thinp_mode=loop: buffered "
			"loops, which the pool opens O_DIRECT, so each IO reaches the loop driver at "
			"once (as a dm-thin bio) and the loop writes the files' page cache; "
			"thinp_mode=direct: loops with --direct-io=on. Root only (an error "
			"otherwise). The loops detach themselves when the pool closes, also when fio "
			"is killed; thinp_stats names them with their IO counters. Default 0: the "
			"files directly",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_create",
		.lname = "thinp create pool",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, create),
		.help = "1 = format a new pool when the metadata device is absent or its superblock "
			"is all zeros (as dm-thin does); an existing pool is opened, never "
			"reformatted. Default 0: the pool must exist",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_data_size",
		.lname = "thinp data size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, data_size),
		.verify = verify_data_size,
		.help = "Size of a data file that thinp_create creates, sparse (default 100g, as "
			"Docker's loop-lvm)",
		.def = "100g",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_metadata_size",
		.lname = "thinp metadata size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, meta_size),
		.verify = verify_meta_size,
		.help = "Size of a metadata file that thinp_create creates, sparse, at most 16g "
			"(default 2g)",
		.def = "2g",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_block_size",
		.lname = "thinp pool block size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, block_size),
		.verify = verify_block_size,
		.help = "Pool block size, the allocation and copy-on-write unit: a multiple of 64k "
			"up to 1g. Default: 64k for a new pool, the pool's own for an existing one "
			"(a different value is an error)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_zero",
		.lname = "thinp zero new blocks",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, zero),
		.help = "Zero a newly provisioned block before a partial write to it (default 1, as "
			"dm-thin); 0 = skip_block_zeroing",
		.def = "1",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_cow",
		.lname = "thinp CoW and zeroing policy",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, cow),
		.help = "How a partial write to a shared block (CoW) or to a new block with zeroing "
			"reaches the data device: kernel (dm-thin's order: copy or zero the block, "
			"then write the data; default) or merged (libthinp's own: one block write "
			"with the data laid over the copy or the zeros)",
		.def = "kernel",
		.posval =
			{
				{.ival = "kernel",
				 .oval = THINP_COW_KERNEL,
				 .help = "copy (read B, write B) or zero B, then write the data, "
					 "as dm-thin"},
				{.ival = "merged",
				 .oval = THINP_COW_MERGED,
				 .help = "read B, write B with the data in it (CoW); write B of zeros "
					 "and data (zeroing)"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_discard",
		.lname = "thinp discard mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, discard),
		.help = "What the pool does with trims: passdown (unmap, discard freed blocks on the "
			"data device; default), nopassdown (unmap only) or ignore",
		.def = "passdown",
		.posval =
			{
				{.ival = "passdown",
				 .oval = DISCARD_PASSDOWN,
				 .help = "unmap, and discard freed blocks on the data device"},
				{.ival = "nopassdown",
				 .oval = DISCARD_NOPASSDOWN,
				 .help = "unmap only (no_discard_passdown)"},
				{.ival = "ignore",
				 .oval = DISCARD_IGNORE,
				 .help = "complete trims without unmapping (ignore_discard)"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_no_space",
		.lname = "thinp out-of-space mode",
		.type = FIO_OPT_STR,
		.off1 = offsetof(struct thinp_options, no_space),
		.help = "When the data device is full, writes needing a block: queue (wait up to "
			"thinp_no_space_timeout, then ENOSPC; default) or error (ENOSPC at once)",
		.def = "queue",
		.posval =
			{
				{.ival = "queue",
				 .oval = NOSPACE_QUEUE,
				 .help = "wait up to thinp_no_space_timeout for the pool to grow, then "
					 "fail with ENOSPC (dm-thin's default)"},
				{.ival = "error",
				 .oval = NOSPACE_ERROR,
				 .help = "fail with ENOSPC at once (error_if_no_space)"},
			},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_no_space_timeout",
		.lname = "thinp no-space timeout",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, no_space_timeout),
		.verify = verify_no_space_timeout,
		.help = "Milliseconds a queued write waits for space with thinp_no_space=queue "
			"(dm-thin's no_space_timeout; default 60000)",
		.def = "60000",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_commit_interval",
		.lname = "thinp commit interval",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, commit_interval),
		.verify = verify_commit_interval,
		.help = "Milliseconds between periodic metadata commits (default 1000, dm-thin's "
			"COMMIT_PERIOD); 0 = commit only on flush/FUA and at close",
		.def = "1000",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_cache",
		.lname = "thinp metadata cache",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, cache),
		.verify = verify_cache,
		.help = "Metadata block cache size in 4 KiB blocks (default 0 = the library's "
			"16 MiB)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_read_only",
		.lname = "thinp read-only pool",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, read_only),
		.help = "1 = open the pool read-only (dm-thin's read_only feature): writes that need "
			"a new block fail with EROFS. Default 0",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_dev",
		.lname = "thinp thin device id",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, dev_str),
		.verify = verify_dev,
		.help = "Thin device id (0..16777215) the job does IO to, created empty if absent "
			"(default 0)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_dev_size",
		.lname = "thinp thin device size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct thinp_options, dev_size),
		.verify = verify_dev_size,
		.help = "Virtual size of the thin device (fio's file size; bounds every IO). "
			"Default: the end of the job's range, offset + size",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_snapshot_of",
		.lname = "thinp snapshot origin",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, snap_str),
		.verify = verify_snap,
		.help = "Before the job starts, snapshot this thin device into thinp_dev, which must "
			"not exist yet (create_snap); the job's writes then copy-on-write. Jobs of "
			"one process sharing the pool reuse the snapshot",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_prefill",
		.lname = "thinp prefill",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct thinp_options, prefill),
		.help = "1 = before the job starts, provision every unmapped pool block of its range "
			"with a whole-block zero write (mapped blocks are left alone), so the job "
			"measures overwrites. Default 0",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_stats",
		.lname = "thinp statistics file",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct thinp_options, stats_path),
		.help = "Write per-outcome-class statistics (counts, bytes, latency histograms, "
			"percentiles) as JSON to this file when the job ends (%n = the job name). "
			"Jobs of one process naming the same file are merged into it; a later "
			"fio process replaces it",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "thinp_workers",
		.lname = "thinp worker threads",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct thinp_options, workers),
		.verify = verify_workers,
		.help = "Threads running IOs when iodepth > 1 (default 0 = iodepth, at most 64); "
			"with iodepth=1 IOs run in the job thread",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};
