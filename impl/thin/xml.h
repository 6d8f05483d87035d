/* thin_dump / thin_restore XML (thin-provisioning-tools 0.9.0 format).
 *
 * The dump is byte-identical to `thin_dump` 0.9.0: same attribute order,
 * two-space indentation, runs of consecutive virtual AND data blocks with the
 * same time coalesced into <range_mapping>, uuid always "" and no
 * metadata_snap attribute (0.9.0 prints neither). The human_readable format
 * of `thin_dump -f human_readable` is produced too.
 *
 * The restore accepts what thin_dump 0.9.0 writes (superblock, device,
 * range_mapping, single_mapping), read with libexpat like thin_restore does
 * (xml_read.h says how strictly), and builds the metadata the way
 * thin_restore does: one private mapping subtree per device, one data-block
 * reference per mapping occurrence, mapped_blocks counted from the mappings.
 * The shared-subtree syntax of later tools (<def>, <ref>) is rejected. Errors
 * name the input line. */
#ifndef THINP_THIN_XML_H
#define THINP_THIN_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/dev.h"
#include "thin/metadata.h"

enum xml_dump_format {
	XML_DUMP_XML,
	XML_DUMP_HUMAN, /* thin_dump -f human_readable */
};

struct xml_dump_opts {
	enum xml_dump_format format;
	bool skip_mappings; /* devices only */
	bool one_dev;       /* only the device dev_id (nothing if absent, like thin_dump) */
	uint64_t dev_id;
};

/* Dump the current (committed or in-core) state of MD to OUT. Returns 0, or a
 * negative errno with a sentence in ERR. OUT is flushed; a write error fails. */
int xml_dump(struct tmd *md, FILE *out, const struct xml_dump_opts *opts, char *err, size_t errlen);

/* Dump the metadata snapshot (thin_dump -m): the trees held by the superblock
 * copy at SNAP_BLOCK, which must be the one the superblock of META names
 * (0 = whatever the superblock names). Like 0.9.0 the header shows the copy's
 * time and transaction and nr_data_blocks="0" (the copy has no space maps). */
int xml_dump_metadata_snap(struct tp_dev *meta, uint64_t snap_block, FILE *out,
                           const struct xml_dump_opts *opts, char *err, size_t errlen);

/* Non-fatal remarks during a restore (e.g. a wrong mapped_blocks attribute). */
typedef void (*xml_warn_fn)(void *ctx, const char *msg);

struct xml_restore_opts {
	/* thin_restore --transaction-id / --data-block-size / --nr-data-blocks */
	bool set_transaction_id;
	uint64_t transaction_id;
	bool set_data_block_size;
	uint32_t data_block_size;
	bool set_nr_data_blocks;
	uint64_t nr_data_blocks;
	size_t cache_blocks; /* 0 = library default */
	xml_warn_fn warn;    /* may be NULL */
	void *warn_ctx;
};

/* Parse IN and write the metadata to META (formatted from scratch). On any
 * failure META's superblock block is zeroed, so a failed or interrupted
 * restore never looks like valid metadata; the error (with "line N: " when it
 * is about the input) is in ERR. */
int xml_restore(FILE *in, struct tp_dev *meta, const struct xml_restore_opts *opts, char *err,
                size_t errlen);

#endif
