/* The driver's metadata files in ROOT/metadata/ (docs/docker-driver.md §1): one JSON per
 * device, deviceset-metadata and transaction-metadata, written as Docker writes them
 * (a .tmp file in the same directory, fsync, rename). */
#ifndef THINP_GRAPH_META_H
#define THINP_GRAPH_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_HASH_MAX 128 /* longest device hash (Docker's ids are 64 hex digits) */

struct tg_devinfo {
	char hash[TG_HASH_MAX + 1]; /* "" = the base device (file "base") */
	uint64_t device_id;
	uint64_t size; /* bytes */
	uint64_t transaction_id;
	bool initialized;
	bool deleted;
};

struct tg_deviceset {
	uint64_t next_device_id;
	char base_uuid[64]; /* BaseDeviceUUID, "" if none */
	char base_fs[8];    /* BaseDeviceFilesystem, "" if none */
};

struct tg_txn {
	uint64_t open_transaction_id;
	char device_hash[TG_HASH_MAX + 1];
	uint64_t device_id;
};

/* A hash a user may give as a layer/container id: 1..TG_HASH_MAX of [A-Za-z0-9_.-], not
 * starting with '.', not "base", "deviceset-metadata", "transaction-metadata", nor ending
 * ".migrated". 0 or -EINVAL with a sentence naming it and what is allowed. */
int tg_meta_check_hash(const char *hash, char *err, size_t len);

/* DIR is ROOT/metadata. ERR may be NULL when LEN is 0 (here and below).
 * Errors: negative errno, ERR gets Docker's wording
 * ("devmapper: Error writing metadata to <path>: ..."). A save writes DIR/.tmpXXXXXX
 * (0600), fsyncs it, renames it over the target and fsyncs DIR (Docker does not sync DIR;
 * we do, so that the file is durable before the pool's transaction id moves); a failed
 * save leaves no temporary behind. A hash other than "" must pass tg_meta_check_hash
 * (-EINVAL otherwise). A remove of a missing file is no error, and also syncs DIR. */
int tg_meta_save_device(const char *dir, const struct tg_devinfo *d, char *err, size_t len);
int tg_meta_remove_device(const char *dir, const char *hash, char *err, size_t len);
/* Every device file in DIR (skipping ".*", "*.migrated", the two set files and
 * directories; ids over 0xffffff are skipped as Docker's 2015 loader did — the newest
 * Docker fails its start on them instead). *OUT is malloc'd (free it; it may be NULL when *NR is 0),
 * sorted by hash, the base's hash "". A file that cannot be parsed fails the whole load
 * (-EINVAL, ERR "devmapper: Error loading device metadata file <path>: <what> at byte N").
 * Other errors: "devmapper: Error reading ... <path>: <strerror>" (the caller adds Docker's
 * "devmapper: Failed to load device files:" in front). Parsing is encoding/json's: keys in
 * any order and case, unknown keys and white space ignored, null leaves a field at zero,
 * anything after the object refused. */
int tg_meta_load_devices(const char *dir, struct tg_devinfo **out, size_t *nr, char *err,
                         size_t len);

int tg_meta_save_deviceset(const char *dir, const struct tg_deviceset *s, char *err, size_t len);
/* A missing file gives zeros and 0. */
int tg_meta_load_deviceset(const char *dir, struct tg_deviceset *s, char *err, size_t len);

int tg_meta_save_txn(const char *dir, const struct tg_txn *t, char *err, size_t len);
/* -ENOENT when there is no file. A file that cannot be parsed is -EINVAL naming it
 * (Docker ignores its json.Unmarshal error here and goes on with what it got). */
int tg_meta_load_txn(const char *dir, struct tg_txn *t, char *err, size_t len);
int tg_meta_remove_txn(const char *dir, char *err, size_t len);

#endif
