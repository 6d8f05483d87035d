/* The driver's metadata files in ROOT/metadata/ (docs/docker-driver.md §1): one JSON object
 * per device, deviceset-metadata and transaction-metadata, byte for byte what Docker's Go
 * code writes, and read back the way Go's encoding/json reads them (keys in any order and
 * case, unknown keys ignored, null leaves a field alone), so that a metadata directory can
 * move between Docker and thinbench. */
#include "graph/graph_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "graph/graph_json.h"
#include "graph/graph_units.h"

#define DEVICESET_FILE "deviceset-metadata"
#define TXN_FILE       "transaction-metadata"
#define MAX_DEVICE_ID  0xffffffu
/* Far above anything the driver writes (~120 bytes): a bigger file is not ours. */
#define MAX_FILE_SIZE (1u << 20)

/* ---- names ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

int tg_meta_check_hash(const char *hash, char *err, size_t len)
{
	static const char allowed[] = "1 to 128 characters of A-Z a-z 0-9 _ . -, not starting "
	                              "with '.'";
	size_t n = strlen(hash);
	if (!n) {
		snprintf(err, len, "invalid device id '': give %s", allowed);
		return -EINVAL;
	}
	if (n > TG_HASH_MAX) {
		snprintf(err, len, "invalid device id '%.32s...' (%zu characters): give %s", hash,
		         n, allowed);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char c = hash[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-')
			continue;
		char q[600];
		tg_go_quote(hash, q, sizeof(q));
		snprintf(err, len,
		         "invalid device id %s: byte %zu (0x%02x) is not allowed; give %s", q, i,
		         (unsigned char)c, allowed);
		return -EINVAL;
	}
	if (hash[0] == '.') {
		snprintf(err, len,
		         "invalid device id '%s': it starts with '.', which the driver "
		         "keeps for its temporary files; give %s",
		         hash, allowed);
		return -EINVAL;
	}
	if (!strcmp(hash, "base") || !strcmp(hash, DEVICESET_FILE) || !strcmp(hash, TXN_FILE)) {
		snprintf(err, len,
		         "invalid device id '%s': the metadata directory uses that name "
		         "for itself (base, " DEVICESET_FILE ", " TXN_FILE "); give another id",
		         hash);
		return -EINVAL;
	}
	if (ends_with(hash, ".migrated")) {
		snprintf(err, len,
		         "invalid device id '%s': names ending in '.migrated' are skipped "
		         "when the metadata directory is loaded; give another id",
		         hash);
		return -EINVAL;
	}
	return 0;
}

static int join(char *buf, size_t size, const char *dir, const char *name, char *err, size_t len)
{
	if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size) {
		snprintf(err, len, "devmapper: metadata path %s/%s is longer than %zu bytes", dir,
		         name, size - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- writing ---- */

static int fsync_dir(const char *dir, char *err, size_t len)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, len, "devmapper: Error syncing metadata directory %s: %s", dir,
		         strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

/* Docker's writeMetaFile: a ".tmp" file beside the target (0600), the whole content, fsync,
 * close, rename over the target, so a reader sees the old file or the new one, never a
 * part. Then, unlike Docker, an fsync of the directory: without it the rename itself may
 * not survive a power cut, and the transaction protocol (§5) needs the device file on disk
 * before the pool's transaction id moves. A failed write removes its temporary file. */
static int write_meta_file(const char *dir, const char *name, const struct tg_json_out *o,
                           char *err, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int r = join(path, sizeof(path), dir, name, err, len);
	if (r || (r = join(tmp, sizeof(tmp), dir, ".tmpXXXXXX", err, len)))
		return r;
	if (o->overflow) {
		snprintf(err, len,
		         "devmapper: Error encoding metadata to json: %s would exceed "
		         "%zu bytes",
		         path, sizeof(o->buf));
		return -EOVERFLOW;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, len, "devmapper: Error creating metadata file: open %s: %s", tmp,
		         strerror(-r));
		return r;
	}
	size_t done = 0;
	while (done < o->n) {
		ssize_t k = write(fd, o->buf + done, o->n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			snprintf(err, len, "devmapper: Error writing metadata to %s: %s", tmp,
			         k < 0 ? strerror(-r) : "short write");
			goto fail;
		}
		done += (size_t)k;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		snprintf(err, len, "devmapper: Error syncing metadata file %s: %s", tmp,
		         strerror(-r));
		goto fail;
	}
	int cr = close(fd);
	fd = -1;
	if (cr < 0) {
		r = -errno;
		snprintf(err, len, "devmapper: Error closing metadata file %s: %s", tmp,
		         strerror(-r));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		snprintf(err, len, "devmapper: Error committing metadata file %s: %s", tmp,
		         strerror(-r));
		goto fail;
	}
	return fsync_dir(dir, err, len);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

/* Docker removes with os.RemoveAll: a missing file is no error. The directory is synced
 * for the same reason as after a write: a delete's JSON must be gone before the pool's
 * transaction id moves. */
static int remove_meta_file(const char *dir, const char *name, char *err, size_t len)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, name, err, len);
	if (r)
		return r;
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(err, len, "devmapper: Error removing metadata file %s: %s", path,
		         strerror(-r));
		return r;
	}
	return fsync_dir(dir, err, len);
}

static const char *device_file(const char *hash)
{
	return hash[0] ? hash : "base";
}

int tg_meta_save_device(const char *dir, const struct tg_devinfo *d, char *err, size_t len)
{
	int r;
	if (d->hash[0] && (r = tg_meta_check_hash(d->hash, err, len)))
		return r;
	struct tg_json_out o = { .n = 0 };
	tg_json_put(&o,
	            "{\"device_id\":%llu,\"size\":%llu,\"transaction_id\":%llu,\"initialized\":%s,"
	            "\"deleted\":%s}",
	            (unsigned long long)d->device_id, (unsigned long long)d->size,
	            (unsigned long long)d->transaction_id, d->initialized ? "true" : "false",
	            d->deleted ? "true" : "false");
	return write_meta_file(dir, device_file(d->hash), &o, err, len);
}

int tg_meta_remove_device(const char *dir, const char *hash, char *err, size_t len)
{
	int r;
	if (hash[0] && (r = tg_meta_check_hash(hash, err, len)))
		return r;
	return remove_meta_file(dir, device_file(hash), err, len);
}

int tg_meta_save_deviceset(const char *dir, const struct tg_deviceset *s, char *err, size_t len)
{
	struct tg_json_out o = { .n = 0 };
	tg_json_put(&o, "{\"next_device_id\":%llu,\"BaseDeviceUUID\":",
	            (unsigned long long)s->next_device_id);
	tg_json_put_string(&o, s->base_uuid);
	tg_json_put(&o, ",\"BaseDeviceFilesystem\":");
	tg_json_put_string(&o, s->base_fs);
	tg_json_put(&o, "}");
	return write_meta_file(dir, DEVICESET_FILE, &o, err, len);
}

int tg_meta_save_txn(const char *dir, const struct tg_txn *t, char *err, size_t len)
{
	struct tg_json_out o = { .n = 0 };
	tg_json_put(&o, "{\"open_transaction_id\":%llu,\"device_hash\":",
	            (unsigned long long)t->open_transaction_id);
	tg_json_put_string(&o, t->device_hash);
	tg_json_put(&o, ",\"device_id\":%llu}", (unsigned long long)t->device_id);
	return write_meta_file(dir, TXN_FILE, &o, err, len);
}

int tg_meta_remove_txn(const char *dir, char *err, size_t len)
{
	return remove_meta_file(dir, TXN_FILE, err, len);
}

/* ---- reading ---- */

/* The file's content, malloc'd; -ENOENT (ERR untouched) if it does not exist. */
static int read_file(const char *path, const char *what, char **out, size_t *n, char *err,
                     size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e != ENOENT)
			snprintf(err, len, "devmapper: Error reading %s %s: %s", what, path,
			         strerror(e));
		return -e;
	}
	struct stat st;
	int r = 0;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, len, "devmapper: Error reading %s %s: %s", what, path, strerror(-r));
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, len, "devmapper: Error reading %s %s: not a regular file", what,
		         path);
	} else if (st.st_size > MAX_FILE_SIZE) {
		r = -EFBIG;
		snprintf(err, len,
		         "devmapper: Error reading %s %s: %lld bytes, more than any "
		         "metadata file (%u)",
		         what, path, (long long)st.st_size, MAX_FILE_SIZE);
	} else if (!(buf = malloc((size_t)st.st_size + 1))) {
		r = -ENOMEM;
		snprintf(err, len, "devmapper: Error reading %s %s: out of memory", what, path);
	}
	size_t got = 0;
	while (!r && got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			snprintf(err, len, "devmapper: Error reading %s %s: %s", what, path,
			         strerror(-r));
		}
		if (k <= 0)
			break; /* shrank while read: parse what is there */
		got += (size_t)k;
	}
	close(fd);
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*n = got;
	return 0;
}

static int load_flat(const char *path, const char *what, const struct tg_json_field *f, size_t nf,
                     char *err, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	int r = read_file(path, what, &buf, &n, err, len);
	if (r)
		return r;
	char msg[256];
	r = tg_json_parse_flat(buf, n, f, nf, msg, sizeof(msg));
	free(buf);
	if (r)
		snprintf(err, len, "devmapper: Error loading %s %s: %s", what, path, msg);
	return r;
}

static int load_device(const char *dir, const char *name, struct tg_devinfo *d, char *err,
                       size_t len)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, name, err, len);
	if (r)
		return r;
	memset(d, 0, sizeof(*d));
	if (strcmp(name, "base")) {
		if (strlen(name) > TG_HASH_MAX) {
			snprintf(err, len,
			         "devmapper: Error loading device metadata file %s: a "
			         "device id is at most %d characters",
			         path, TG_HASH_MAX);
			return -EINVAL;
		}
		snprintf(d->hash, sizeof(d->hash), "%s", name);
	}
	const struct tg_json_field f[] = {
		{ "device_id", TG_JSON_UINT, &d->device_id, 0 },
		{ "size", TG_JSON_UINT, &d->size, 0 },
		{ "transaction_id", TG_JSON_UINT, &d->transaction_id, 0 },
		{ "initialized", TG_JSON_BOOL, &d->initialized, 0 },
		{ "deleted", TG_JSON_BOOL, &d->deleted, 0 },
	};
	r = load_flat(path, "device metadata file", f, sizeof(f) / sizeof(f[0]), err, len);
	if (r == -ENOENT)
		snprintf(err, len,
		         "devmapper: Error loading device metadata file %s: it vanished "
		         "while the directory was read",
		         path);
	return r;
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct tg_devinfo *)a)->hash, ((const struct tg_devinfo *)b)->hash);
}

int tg_meta_load_devices(const char *dir, struct tg_devinfo **out, size_t *nr, char *err,
                         size_t len)
{
	*out = NULL;
	*nr = 0;
	DIR *dp = opendir(dir);
	if (!dp) {
		int e = errno;
		snprintf(err, len, "devmapper: Error reading metadata directory %s: %s", dir,
		         strerror(e));
		return -e;
	}
	struct tg_devinfo *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(dp))) {
		const char *name = de->d_name;
		/* Docker's loadDeviceFilesOnStart skips these: temporaries a crash left
		 * (".tmp..."), the migrated pre-2014 file, the two set files. */
		if (name[0] == '.' || ends_with(name, ".migrated") ||
		    !strcmp(name, DEVICESET_FILE) || !strcmp(name, TXN_FILE))
			continue;
		struct stat st;
		if (fstatat(dirfd(dp), name, &st, 0) == 0 && S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct tg_devinfo *nv = realloc(v, nc * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				snprintf(err, len,
				         "devmapper: Error reading metadata directory %s: out "
				         "of memory",
				         dir);
				break;
			}
			v = nv, cap = nc;
		}
		if ((r = load_device(dir, name, &v[n], err, len)))
			break;
		/* Thin ids are 24 bits. Docker's 2015 loader skipped such a file ("Ignoring
		 * Invalid DeviceId"); the newest one fails the start on it instead (its
		 * loadMetadata returns nothing, so the walk reports an unknown device).
		 * Skipping, as the header promises, keeps the driver up and the device unknown. */
		if (v[n].device_id > MAX_DEVICE_ID)
			continue;
		n++;
	}
	if (!r && errno) {
		r = -errno;
		snprintf(err, len, "devmapper: Error reading metadata directory %s: %s", dir,
		         strerror(-r));
	}
	closedir(dp);
	if (r) {
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_dev);
	*out = v;
	*nr = n;
	return 0;
}

int tg_meta_load_deviceset(const char *dir, struct tg_deviceset *s, char *err, size_t len)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, DEVICESET_FILE, err, len);
	if (r)
		return r;
	memset(s, 0, sizeof(*s));
	const struct tg_json_field f[] = {
		{ "next_device_id", TG_JSON_UINT, &s->next_device_id, 0 },
		{ "BaseDeviceUUID", TG_JSON_STR, s->base_uuid, sizeof(s->base_uuid) },
		{ "BaseDeviceFilesystem", TG_JSON_STR, s->base_fs, sizeof(s->base_fs) },
	};
	r = load_flat(path, "deviceset metadata file", f, sizeof(f) / sizeof(f[0]), err, len);
	if (r == -ENOENT) {
		memset(s, 0, sizeof(*s));
		return 0;
	}
	return r;
}

int tg_meta_load_txn(const char *dir, struct tg_txn *t, char *err, size_t len)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, TXN_FILE, err, len);
	if (r)
		return r;
	memset(t, 0, sizeof(*t));
	const struct tg_json_field f[] = {
		{ "open_transaction_id", TG_JSON_UINT, &t->open_transaction_id, 0 },
		{ "device_hash", TG_JSON_STR, t->device_hash, sizeof(t->device_hash) },
		{ "device_id", TG_JSON_UINT, &t->device_id, 0 },
	};
	r = load_flat(path, "transaction metadata file", f, sizeof(f) / sizeof(f[0]), err, len);
	if (r == -ENOENT)
		snprintf(err, len, "no open transaction: %s does not exist", path);
	return r;
}
