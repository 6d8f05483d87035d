/* Writes thin-pool metadata through libthinp after a seeded random sequence
 * of pool-level metadata operations: create, snapshot chains up to 16 deep,
 * inserts, overwrites, removes, range removes, deletes, metadata snapshot
 * reserve/release, commits. Used by random_ops.sh, which hands the result to
 * thin_check, thin_dump and thinp check/dump.
 *
 * usage: mk_random_meta META SEED NR_OPS   (META must exist, >= 8 MiB)
 * Prints "held" when a metadata snapshot is left reserved. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dev.h"
#include "thin/metadata.h"

#define MAX_DEVS 64
#define VSPACE 4096 /* virtual blocks per device used by the workload */

static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int die(struct tmd *md, const char *what, int r, uint64_t seed, long op)
{
	fprintf(stderr, "mk_random_meta: seed %llu op %ld: %s failed (%s): %s\n",
		(unsigned long long)seed, op, what, strerror(-r), md ? tmd_error(md) : "");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: mk_random_meta META SEED NR_OPS\n");
		return 2;
	}
	uint64_t seed = strtoull(argv[2], NULL, 10), s = seed;
	long nops = strtol(argv[3], NULL, 10);
	struct tp_dev *meta;
	int r = tp_dev_open_file(argv[1], 0, 0, &meta);
	if (r)
		die(NULL, "open", r, seed, -1);
	struct tmd_open_args a = {.meta = meta, .cache_blocks = 64};
	struct tmd *md;
	char err[512];
	r = tmd_format(&a, 128 << (next(&s) % 3), 100000, &md, err, sizeof(err));
	if (r) {
		fprintf(stderr, "mk_random_meta: format: %s\n", err);
		return 1;
	}
	uint64_t devs[MAX_DEVS];
	unsigned depth[MAX_DEVS];
	size_t nr = 0;
	uint64_t next_id = (uint64_t)(next(&s) % 1000);
	bool held = false;
	for (long op = 0; op < nops; op++) {
		unsigned k = (unsigned)(next(&s) % 100);
		if (nr == 0 || (k < 3 && nr < MAX_DEVS)) {
			r = tmd_create_thin(md, next_id);
			if (r)
				die(md, "create_thin", r, seed, op);
			depth[nr] = 0;
			devs[nr++] = next_id++;
		} else if (k < 8 && nr < MAX_DEVS) {
			/* snapshot of a random device; chains grow by snapshotting the
			 * newest, capped at 16 deep */
			size_t o = next(&s) % 2 ? nr - 1 : next(&s) % nr;
			if (depth[o] >= 16)
				continue;
			r = tmd_create_snap(md, next_id, devs[o]);
			if (r)
				die(md, "create_snap", r, seed, op);
			depth[nr] = depth[o] + 1;
			devs[nr++] = next_id++;
		} else if (k < 10 && nr > 1) {
			size_t d = next(&s) % nr;
			r = tmd_delete_thin(md, devs[d]);
			if (r)
				die(md, "delete", r, seed, op);
			devs[d] = devs[--nr];
			depth[d] = depth[nr];
		} else if (k < 12) {
			size_t d = next(&s) % nr;
			uint64_t b = next(&s) % VSPACE, n = 1 + next(&s) % 64, removed;
			r = tmd_remove_range(md, devs[d], b, b + n, &removed);
			if (r)
				die(md, "remove_range", r, seed, op);
		} else if (k < 20) {
			size_t d = next(&s) % nr;
			r = tmd_remove(md, devs[d], next(&s) % VSPACE);
			if (r && r != -ENODATA)
				die(md, "remove", r, seed, op);
		} else if (k < 21) {
			r = held ? tmd_release_metadata_snap(md) : tmd_reserve_metadata_snap(md);
			if (r)
				die(md, "metadata snap", r, seed, op);
			held = !held;
		} else if (k < 24) {
			r = tmd_commit(md);
			if (r)
				die(md, "commit", r, seed, op);
		} else {
			/* insert or overwrite (a CoW replaces the data block) */
			size_t d = next(&s) % nr;
			uint64_t b;
			r = tmd_alloc_data_block(md, &b);
			if (r == -ENOSPC)
				continue;
			if (!r)
				r = tmd_insert(md, devs[d], next(&s) % VSPACE, b);
			if (r)
				die(md, "insert", r, seed, op);
		}
	}
	r = tmd_close(md);
	if (r)
		die(NULL, "close", r, seed, nops);
	tp_dev_close(meta);
	if (held)
		printf("held\n");
	return 0;
}
