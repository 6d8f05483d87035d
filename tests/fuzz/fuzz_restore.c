/* libFuzzer harness: thin_restore XML from the input onto a memory device.
 *
 * The input is the XML text itself (a memory stream, no file). Restore may
 * refuse it with a message, but nothing may crash, leak or hang, and what a
 * restore reports as done must pass the strict checker, open and dump:
 * restore must never write metadata that check rejects. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image.h"
#include "reuse_dev.h"
#include "thin/check.h"
#include "thin/metadata.h"
#include "thin/xml.h"

static void print_msg(void *ctx, const char *msg)
{
	if (ctx)
		fprintf(stderr, "  check: %s\n", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0; /* fmemopen refuses an empty buffer */
	FILE *in = fmemopen((void *)data, size, "r");
	if (!in)
		abort();
	struct tp_dev *meta = fr_dev(FR_META, FI_META_BYTES, FI_META_BYTES);
	if (!meta)
		abort();
	char err[512] = "";
	struct xml_restore_opts o = {.cache_blocks = 64};
	int r = xml_restore(in, meta, &o, err, sizeof(err));
	fclose(in);
	if (!r) {
		unsigned nr = 0;
		struct tcheck_opts co = {.max_reports_per_kind = 1};
		if (tcheck_run(meta, &co, print_msg, NULL, &nr) || nr) {
			fprintf(stderr, "fuzz_restore: restore succeeded but the checker rejects it:\n");
			(void)tcheck_run(meta, &(struct tcheck_opts){0}, print_msg, meta, &nr);
			abort();
		}
		struct tmd_open_args a = {.meta = meta, .cache_blocks = 64, .read_only = true};
		struct tmd *md;
		if (tmd_open(&a, &md, err, sizeof(err))) {
			fprintf(stderr, "fuzz_restore: restored metadata does not open: %s\n", err);
			abort();
		}
		char *buf = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);
		struct xml_dump_opts d = {.format = XML_DUMP_XML};
		if (!out || xml_dump(md, out, &d, err, sizeof(err))) {
			fprintf(stderr, "fuzz_restore: restored metadata does not dump: %s\n", err);
			abort();
		}
		fclose(out);
		free(buf);
		tmd_close_nocommit(md);
	}
	return 0;
}
