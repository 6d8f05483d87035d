/* Helper of tests/cli/dump_snapshot.sh: writes, through libthinp's metadata API,
 * metadata that thin_restore cannot produce: devices sharing mapping subtrees
 * (snapshots, some nodes referenced 3+ times so the metadata space map's
 * overflow tree is used) and a metadata snapshot. Prints the snapshot's block.
 *
 *   mk_shared_meta META SEED      (META: an existing file of a few MiB) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/dev.h"
#include "thin/metadata.h"

static struct tmd *md;

static void check(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "mk_shared_meta: %s: %s\n", what, tmd_error(md));
		exit(1);
	}
}

/* map COUNT blocks of DEV from VBLOCK on, to freshly allocated data blocks */
static void map(uint64_t dev, uint64_t vblock, uint64_t count)
{
	for (uint64_t i = 0; i < count; i++) {
		uint64_t b;
		check(tmd_alloc_data_block(md, &b), "alloc");
		check(tmd_insert(md, dev, vblock + i, b), "insert");
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fputs("usage: mk_shared_meta META SEED\n", stderr);
		return 2;
	}
	srandom((unsigned)strtoul(argv[2], NULL, 10));
	struct tp_dev *dev;
	if (tp_dev_open_file(argv[1], 0, 0, &dev)) {
		fprintf(stderr, "mk_shared_meta: cannot open %s\n", argv[1]);
		return 1;
	}
	struct tmd_open_args a = { .meta = dev };
	char err[256];
	if (tmd_format(&a, 128, 1 << 16, &md, err, sizeof(err))) {
		fprintf(stderr, "mk_shared_meta: %s\n", err);
		return 1;
	}
	check(tmd_create_thin(md, 1), "create 1");
	map(1, 0, 2000);
	for (int i = 0; i < 500; i++)
		map(1, 2000 + (uint64_t)(random() % 100000), 1 + (uint64_t)(random() % 8));
	check(tmd_commit(md), "commit");
	check(tmd_create_snap(md, 2, 1), "snap 2");
	check(tmd_create_snap(md, 3, 1), "snap 3");
	check(tmd_create_snap(md, 4, 3), "snap 4");
	check(tmd_set_transaction_id(md, 0, 7), "trans");
	check(tmd_commit(md), "commit");
	/* writes after the snapshots: break sharing here and there */
	for (int i = 0; i < 200; i++)
		map(1 + (uint64_t)(random() % 4), (uint64_t)(random() % 110000), 1);
	check(tmd_reserve_metadata_snap(md), "reserve metadata snap");
	/* changes after the metadata snapshot, which must not show in dump -m */
	map(2, 500, 300);
	uint64_t n;
	check(tmd_remove_range(md, 1, 100, 900, &n), "remove range");
	check(tmd_create_thin(md, 9), "create 9");
	map(9, 1u << 30, 50);
	check(tmd_delete_thin(md, 3), "delete 3");
	/* a subtree root with exactly three references: its count lives in the
	 * overflow tree with the value 3, which a reader must not take for a
	 * missing overflow entry */
	check(tmd_create_thin(md, 20), "create 20");
	map(20, 0, 10);
	check(tmd_create_snap(md, 21, 20), "snap 21");
	check(tmd_create_snap(md, 22, 20), "snap 22");
	check(tmd_set_transaction_id(md, 7, 8), "trans");
	check(tmd_commit(md), "commit");
	printf("%" PRIu64 "\n", tmd_metadata_snap(md));
	check(tmd_close(md), "close");
	tp_dev_close(dev);
	return 0;
}
