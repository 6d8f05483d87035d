/* libFuzzer harness: open fuzzed metadata, run the strict checker, dump it.
 *
 * Input: a flags byte (image.h: FI_RAW keeps checksums as given) and a
 * zero-run encoded metadata image, placed on a 2 MiB memory device. The
 * checker runs on it, then the metadata is opened read-only, each device's
 * highest mapped block and first mapping looked up, and the whole pool
 * dumped as thin_dump XML to a memory stream (and the metadata snapshot,
 * when one is held). Nothing may crash, leak or hang; and metadata the
 * checker accepts must open and dump. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image.h"
#include "thin/check.h"
#include "thin/metadata.h"
#include "thin/xml.h"

static void ignore(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
}

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_metadata: the checker accepts this metadata but %s: %s\n", what,
	        err);
	abort();
}

/* The read paths the pool takes before IO: device list, highest mapped
 * block (thin status), a lookup. Errors are fine, hangs are not. */
static void lookups(struct tmd *md)
{
	uint64_t *ids = NULL;
	size_t nr = 0;
	if (tmd_list_devices(md, &ids, &nr))
		return;
	for (size_t i = 0; i < nr && i < 8; i++) {
		uint64_t vb;
		struct thin_mapping m;
		struct thin_details d;
		(void)tmd_highest_mapped(md, ids[i], &vb);
		(void)tmd_lookup(md, ids[i], 0, &m);
		(void)tmd_get_details(md, ids[i], &d);
	}
	free(ids);
}

static int dump(struct tmd *md, struct tp_dev *meta, bool snap, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!out)
		abort();
	struct xml_dump_opts o = {.format = XML_DUMP_XML};
	int r = snap ? xml_dump_metadata_snap(meta, 0, out, &o, err, errlen)
		     : xml_dump(md, out, &o, err, errlen);
	fclose(out);
	free(buf);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct tp_dev *meta;
	if (fi_meta_dev(data + 1, size - 1, data[0], &meta))
		abort();
	unsigned nr_errors = 0;
	struct tcheck_opts co = {.max_reports_per_kind = 1};
	int r = tcheck_run(meta, &co, ignore, NULL, &nr_errors);
	bool clean = !r && !nr_errors;

	char err[512] = "";
	struct tmd_open_args a = {.meta = meta, .cache_blocks = 64, .read_only = true};
	struct tmd *md;
	r = tmd_open(&a, &md, err, sizeof(err));
	if (r && clean)
		fail("it does not open", err);
	if (!r) {
		lookups(md);
		struct thin_sb_info sbi;
		tmd_sb_info(md, &sbi);
		r = dump(md, meta, false, err, sizeof(err));
		if (r && clean)
			fail("it does not dump", err);
		if (sbi.held_root) {
			r = dump(md, meta, true, err, sizeof(err));
			if (r && clean)
				fail("its metadata snapshot does not dump", err);
		}
		tmd_close_nocommit(md);
	}
	tp_dev_close(meta);
	return 0;
}
