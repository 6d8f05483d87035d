/* The driver's --storage-opt dm.NAME=VALUE options, with Docker's names, defaults and
 * error texts (docs/docker-driver.md §3). */
#ifndef THINP_GRAPH_OPTIONS_H
#define THINP_GRAPH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_MAX_MKFSARGS 16
#define TG_OPT_STR      256

struct tg_options {
	uint64_t basesize;         /* dm.basesize, bytes (10 GiB) */
	bool basesize_set;         /* given by the user: only then is the base grown */
	uint64_t loopdatasize;     /* dm.loopdatasize (100 GiB) */
	uint64_t loopmetadatasize; /* dm.loopmetadatasize (2 GiB) */
	char fs[8];                /* dm.fs: "ext4", "xfs", or "" = choose at init */
	char mkfsargs[TG_MAX_MKFSARGS][TG_OPT_STR]; /* dm.mkfsarg, repeatable */
	unsigned nr_mkfsargs;
	char mountopt[TG_OPT_STR];    /* dm.mountopt values joined with ',' */
	uint64_t blocksize;           /* dm.blocksize, bytes (64 KiB), cut to 32 bits as Docker's
				     * uint32(size) does; no range check (Docker has none) */
	char thinpooldev[TG_OPT_STR]; /* dm.thinpooldev with /dev/mapper/ stripped */
	bool blkdiscard; /* dm.blkdiscard (true; false with thinpooldev unless given) */
	bool blkdiscard_set;
	bool override_udev_sync_check;
	bool use_deferred_removal;
	bool use_deferred_deletion;
	unsigned min_free_space;      /* dm.min_free_space percent (10), 0 = off */
	bool no_warn_on_loop_devices; /* thinbench's own (not upstream): no loopback warning */
};

void tg_options_default(struct tg_options *o);

/* One "key=value" (split at the first '=', key trimmed and lower-cased, value trimmed, as
 * Docker does). 0, or -EINVAL with Docker's error text in ERR ("devmapper: Unknown option
 * dm.foo", "Unable to parse key/value option: x", "invalid size: 'x'", the ParseBool /
 * ParseUint texts, the dm.min_free_space and dm.fs texts); O is unchanged on error. Real
 * Docker options without a field here (dm.datadev, dm.metadatadev,
 * dm.xfs_nospace_max_retries, dm.libdm_log_level, dm.directlvm_*, dm.thinp_*) are refused
 * as "devmapper: Option <key> is not supported by thinbench: <why and what instead>". */
int tg_options_parse(struct tg_options *o, const char *kv, char *err, size_t len);

/* After every option: the cross-checks (deferred deletion needs deferred removal;
 * blkdiscard's default with thinpooldev). 0 or -EINVAL with the text in ERR. */
int tg_options_finish(struct tg_options *o, char *err, size_t len);

#endif
