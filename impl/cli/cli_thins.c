#include "cli/cli_thins.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_msg.h"

#define THIN_ID_MAX 0xFFFFFFull

struct rec {
	uint64_t id, size;
};

struct recs {
	struct rec *v;
	size_t n, cap;
};

const char *cli_pool_dir(const struct cli_pool_args *a)
{
	struct stat st;
	if (a->data || a->metadata || !a->pool)
		return NULL;
	return !stat(a->pool, &st) && S_ISDIR(st.st_mode) ? a->pool : NULL;
}

static void thins_path(const char *dir, char *path, size_t len)
{
	snprintf(path, len, "%s/thins", dir);
}

/* Decimal digits at *S into *V, stopping at the first non-digit; false on none or
 * overflow. */
static bool take_u64(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*s = p;
	*v = x;
	return true;
}

/* "ID BYTES\n" with the limits `thin create --size` enforces. */
static bool parse_line(const char *line, struct rec *r)
{
	const char *p = line;
	if (!take_u64(&p, &r->id) || *p++ != ' ' || !take_u64(&p, &r->size) || strcmp(p, "\n"))
		return false;
	return r->id <= THIN_ID_MAX && r->size && r->size % 512 == 0 &&
	       r->size <= CLI_THIN_SIZE_MAX;
}

static int by_id(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int push(struct recs *rs, struct rec r)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct rec *v = realloc(rs->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = r;
	return 0;
}

/* PATH into RS, sorted by id (a missing file: none). 0, or 1 (reported). */
static int load(const char *cmd, const char *path, struct recs *rs)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : cli_fail(cmd, "cannot read %s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	unsigned long nr = 0;
	int rc = 0;
	while (!rc && getline(&line, &cap, f) >= 0) {
		struct rec r;
		nr++;
		if (!parse_line(line, &r))
			rc = cli_fail(cmd,
			              "%s is damaged at line %lu: expected 'ID BYTES' (a thin id "
			              "0..16777215, a positive multiple of 512 up to 2^63)",
			              path, nr);
		else if (push(rs, r))
			rc = cli_fail(cmd, "out of memory reading %s", path);
	}
	if (!rc && ferror(f))
		rc = cli_fail(cmd, "cannot read %s: %s", path, strerror(errno));
	free(line);
	fclose(f);
	if (rc)
		return rc;
	qsort(rs->v, rs->n, sizeof(*rs->v), by_id);
	for (size_t i = 1; i < rs->n; i++)
		if (rs->v[i].id == rs->v[i - 1].id)
			return cli_fail(cmd, "%s is damaged: thin %llu has two sizes", path,
			                (unsigned long long)rs->v[i].id);
	return 0;
}

int cli_thins_get(const char *cmd, const char *dir, uint64_t id, uint64_t *size)
{
	char path[PATH_MAX];
	struct recs rs = { 0 };
	thins_path(dir, path, sizeof(path));
	*size = 0;
	int rc = load(cmd, path, &rs);
	for (size_t i = 0; !rc && i < rs.n; i++)
		if (rs.v[i].id == id)
			*size = rs.v[i].size;
	free(rs.v);
	return rc;
}

static int sync_dir(int dfd)
{
	return fsync(dfd) ? -errno : 0;
}

/* RS as DIR/thins: a temporary file in DIR, synced, renamed over it; none left: removed. */
static int store(const char *cmd, const char *dir, int dfd, const struct recs *rs)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	thins_path(dir, path, sizeof(path));
	if (!rs->n) {
		if (unlink(path) && errno != ENOENT)
			return cli_fail(cmd, "cannot remove %s: %s", path, strerror(errno));
		int r = sync_dir(dfd);
		return r ? cli_fail(cmd, "cannot sync %s: %s", dir, strerror(-r)) : 0;
	}
	snprintf(tmp, sizeof(tmp), "%s/.thins.XXXXXX", dir);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return cli_fail(cmd, "cannot create a file in %s: %s", dir, strerror(errno));
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return cli_fail(cmd, "cannot write %s: %s", tmp, strerror(e));
	}
	for (size_t i = 0; i < rs->n; i++)
		fprintf(f, "%llu %llu\n", (unsigned long long)rs->v[i].id,
		        (unsigned long long)rs->v[i].size);
	int r = fflush(f) || fsync(fd) ? -errno : 0;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r) {
		unlink(tmp);
		return cli_fail(cmd, "cannot write %s: %s", path, strerror(-r));
	}
	/* the rename is durable only once the directory is */
	r = sync_dir(dfd);
	return r ? cli_fail(cmd, "cannot sync %s: %s", dir, strerror(-r)) : 0;
}

/* Open and lock DIR for a read-modify-write of DIR/thins; -1 when reported. */
static int lock_dir(const char *cmd, const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		cli_err(cmd, "cannot open %s: %s", dir, strerror(errno));
		return -1;
	}
	while (flock(dfd, LOCK_EX)) {
		if (errno != EINTR) {
			cli_err(cmd, "cannot lock %s: %s", dir, strerror(errno));
			close(dfd);
			return -1;
		}
	}
	return dfd;
}

int cli_thins_set(const char *cmd, const char *dir, uint64_t id, uint64_t size)
{
	char path[PATH_MAX];
	thins_path(dir, path, sizeof(path));
	int dfd = lock_dir(cmd, dir);
	if (dfd < 0)
		return 1;
	struct recs rs = { 0 };
	int rc = load(cmd, path, &rs);
	if (!rc) {
		size_t i = 0;
		while (i < rs.n && rs.v[i].id < id)
			i++;
		bool have = i < rs.n && rs.v[i].id == id;
		if (have && size) {
			rs.v[i].size = size;
		} else if (have) {
			memmove(&rs.v[i], &rs.v[i + 1], (rs.n - i - 1) * sizeof(*rs.v));
			rs.n--;
		} else if (size) {
			if (push(&rs, (struct rec){ id, size }))
				rc = cli_fail(cmd, "out of memory");
			else
				qsort(rs.v, rs.n, sizeof(*rs.v), by_id);
		} else {
			goto out; /* nothing recorded, nothing to drop */
		}
	}
	if (!rc)
		rc = store(cmd, dir, dfd, &rs);
out:
	free(rs.v);
	close(dfd); /* releases the lock */
	return rc;
}

int cli_thins_clear(const char *cmd, const char *dir)
{
	int dfd = lock_dir(cmd, dir);
	if (dfd < 0)
		return 1;
	struct recs none = { 0 };
	int rc = store(cmd, dir, dfd, &none);
	close(dfd);
	return rc;
}
