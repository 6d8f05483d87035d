/* power_replay: every power cut of a wlog_fs log, checked.
 *
 *   power_replay LOG WORKDIR POOLNAME THINP THIN_CHECK SEED TORN_PERCENT [MIN_CHECKS]
 *
 * Cut point K keeps the first K records of LOG. What survives it is the strict model
 * of a disk with a volatile write cache: a file's data and size as of its last fsync
 * (fdatasync) plus its O_DSYNC writes, a directory's entries as of its last fsync;
 * nothing else (sockets and fifos are not rebuilt). At cut points
 * where the durable state or the workload's marks changed, that strict state is
 * checked; at the others (between flushes, where the strict state is the previous
 * one), TORN_PERCENT of the cuts check a torn state instead: the strict state plus a
 * seeded random subset of each file's writes since its last fsync, in order (names
 * stay strict). Each state is built in WORKDIR/root (files in WORKDIR/store, linked),
 * and then:
 *   - before `pool create` returned (mark "created"), a missing or half-made pool is
 *     allowed and counted ("half-created: does not open"), never a failure;
 *   - after it: DIR/table holds the table line the CLI wrote, `thinp check` and
 *     thin_check pass on DIR/metadata, the pool opens (read-only) with libthinp;
 *     thins whose create committed exist, thins whose delete committed do not; every
 *     4 KiB unit of every thin that may exist reads back as zeros or one whole write
 *     (pattern.h) no older than the last one a flush or commit acknowledged before the
 *     cut; the data device is as large as the last committed extend.
 * Exit 0 when every state passed (and at least MIN_CHECKS were checked), else 1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "power/pattern.h"
#include "power/wlog.h"
#include "thinp.h"

#define THIN_UNITS 128u /* power_workload's */
#define MAX_DEVS 1024
#define MAX_IDS 4096
#define PG 4096u

/* ---- file contents: pages never change once made, so a serial names a content ---- */
struct page {
	uint64_t serial;
	uint8_t d[PG];
};
struct content {
	struct page **pg;
	size_t n;
	uint64_t size;
};
static uint64_t next_serial = 1;
static uint64_t replay_seed;

static struct page *page_from(const struct page *old)
{
	struct page *p = malloc(sizeof(*p));
	if (!p)
		exit(1);
	p->serial = next_serial++;
	if (old)
		memcpy(p->d, old->d, PG);
	else
		memset(p->d, 0, PG);
	return p;
}

/* Pages made for one torn state, freed once it was checked. */
static struct page **scratch;
static size_t nr_scratch, cap_scratch;
static bool use_scratch;

/* Every other page, kept to the end: a page a write replaced may still be the durable
 * copy's, and sorting that out is not worth the bytes. */
static struct page **kept;
static size_t nr_kept, cap_kept;

static void keep(struct page ***v, size_t *n, size_t *cap, struct page *p)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 256;
		*v = realloc(*v, *cap * sizeof(**v));
		if (!*v)
			exit(1);
	}
	(*v)[(*n)++] = p;
}

static struct page *new_page(const struct page *old)
{
	struct page *p = page_from(old);
	if (use_scratch)
		keep(&scratch, &nr_scratch, &cap_scratch, p);
	else
		keep(&kept, &nr_kept, &cap_kept, p);
	return p;
}

static void content_reserve(struct content *c, uint64_t bytes)
{
	size_t want = (size_t)((bytes + PG - 1) / PG);
	if (want <= c->n)
		return;
	c->pg = realloc(c->pg, want * sizeof(*c->pg));
	memset(c->pg + c->n, 0, (want - c->n) * sizeof(*c->pg));
	c->n = want;
}

/* DATA NULL: zeros. */
static void content_put(struct content *c, uint64_t off, const uint8_t *data, uint64_t len)
{
	content_reserve(c, off + len);
	for (uint64_t pos = off; pos < off + len;) {
		size_t i = (size_t)(pos / PG);
		uint64_t in = pos % PG, n = PG - in;
		if (n > off + len - pos)
			n = off + len - pos;
		if (!data && n == PG)
			c->pg[i] = NULL;
		else if (data || c->pg[i]) {
			struct page *p = new_page(c->pg[i]);
			if (data)
				memcpy(p->d + in, data + (pos - off), n);
			else
				memset(p->d + in, 0, n);
			c->pg[i] = p;
		}
		pos += n;
	}
}

static void content_truncate(struct content *c, uint64_t size)
{
	if (size < c->size) {
		content_put(c, size, NULL, ((size + PG - 1) / PG) * PG - size);
		for (size_t i = (size_t)((size + PG - 1) / PG); i < c->n; i++)
			c->pg[i] = NULL;
	}
	c->size = size;
}

static void content_copy(struct content *dst, const struct content *src)
{
	dst->pg = realloc(dst->pg, (src->n ? src->n : 1) * sizeof(*dst->pg));
	if (src->n) /* (src->pg is NULL while empty: memcpy's pointers must not be) */
		memcpy(dst->pg, src->pg, src->n * sizeof(*dst->pg));
	dst->n = src->n;
	dst->size = src->size;
}

/* ---- the log ---- */
struct rec {
	struct wlog_rec hv; /* a copy: records are packed, unaligned in the log */
	const struct wlog_rec *h;
	const char *n1, *n2;
	const uint8_t *data;
};
static struct rec *recs;
static size_t nr_recs;

static void read_log(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "power_replay: cannot read the log %s: %s\n", path, strerror(errno));
		exit(1);
	}
	const uint8_t *p = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
					     fd, 0)
				      : NULL;
	if (p == MAP_FAILED)
		exit(1);
	size_t cap = 0;
	for (size_t off = 0; off < (size_t)st.st_size;) {
		struct wlog_rec hv;
		memcpy(&hv, p + off, sizeof(hv));
		const struct wlog_rec *h = &hv;
		size_t len = sizeof(*h) + h->name1_len + h->name2_len + h->data_len;
		if (off + len > (size_t)st.st_size) {
			fprintf(stderr, "power_replay: %s: a truncated record at byte %zu\n", path,
				off);
			exit(1);
		}
		if (nr_recs == cap) {
			cap = cap ? 2 * cap : 4096;
			recs = realloc(recs, cap * sizeof(*recs));
		}
		const char *n = (const char *)(p + off + sizeof(hv));
		recs[nr_recs++] = (struct rec){ hv, NULL, n, n + h->name1_len,
						(const uint8_t *)n + h->name1_len + h->name2_len };
		off += len;
	}
	for (size_t i = 0; i < nr_recs; i++)
		recs[i].h = &recs[i].hv;
}

/* ---- the file system model ---- */
struct dent {
	char name[64];
	uint64_t id;
};
struct dir {
	struct dent *e;
	size_t n;
};
struct inode {
	bool used, is_dir, special;
	struct content cur, dur;
	struct dir ents, dents;
	size_t *unflushed; /* record indexes since the last fsync */
	size_t nr_unflushed, cap_unflushed;
};
static struct inode ino[MAX_IDS];

static struct inode *get(uint64_t id)
{
	if (id >= MAX_IDS) {
		fprintf(stderr, "power_replay: file id %" PRIu64 " out of range\n", id);
		exit(1);
	}
	return &ino[id];
}

static void dir_set(struct dir *d, const char *name, size_t len, uint64_t id)
{
	for (size_t i = 0; i < d->n; i++)
		if (strlen(d->e[i].name) == len && !memcmp(d->e[i].name, name, len)) {
			d->e[i].id = id;
			return;
		}
	d->e = realloc(d->e, (d->n + 1) * sizeof(*d->e));
	snprintf(d->e[d->n].name, sizeof(d->e[d->n].name), "%.*s", (int)len, name);
	d->e[d->n++].id = id;
}

static uint64_t dir_del(struct dir *d, const char *name, size_t len)
{
	for (size_t i = 0; i < d->n; i++)
		if (strlen(d->e[i].name) == len && !memcmp(d->e[i].name, name, len)) {
			uint64_t id = d->e[i].id;
			d->e[i] = d->e[--d->n];
			return id;
		}
	return 0;
}

static void apply_data(struct content *c, const struct rec *r)
{
	const struct wlog_rec *h = r->h;
	switch (h->type) {
	case WLOG_WRITE:
		content_put(c, h->off, r->data, h->data_len);
		if (h->off + h->data_len > c->size)
			c->size = h->off + h->data_len;
		break;
	case WLOG_TRUNCATE:
		content_truncate(c, h->len);
		break;
	case WLOG_FALLOCATE: {
		bool keep = h->flags & FALLOC_FL_KEEP_SIZE;
		if (h->flags & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
			uint64_t end = h->off + h->len;
			if (keep && end > c->size)
				end = c->size > h->off ? c->size : h->off;
			content_put(c, h->off, NULL, end - h->off);
		}
		if (!keep && h->off + h->len > c->size)
			c->size = h->off + h->len;
		break;
	}
	}
}

static void apply(size_t k)
{
	const struct rec *r = &recs[k];
	const struct wlog_rec *h = r->h;
	struct inode *in;
	switch (h->type) {
	case WLOG_CREATE:
		in = get(h->id2);
		free(in->cur.pg);
		free(in->dur.pg);
		free(in->ents.e);
		free(in->dents.e);
		free(in->unflushed);
		memset(in, 0, sizeof(*in));
		in->used = true;
		in->is_dir = h->flags & WLOG_DIR;
		in->special = h->flags & WLOG_SPECIAL;
		dir_set(&get(h->id)->ents, r->n1, h->name1_len, h->id2);
		break;
	case WLOG_UNLINK:
		dir_del(&get(h->id)->ents, r->n1, h->name1_len);
		break;
	case WLOG_RENAME: {
		uint64_t id = dir_del(&get(h->id)->ents, r->n1, h->name1_len);
		dir_set(&get(h->id2)->ents, r->n2, h->name2_len, id);
		break;
	}
	case WLOG_WRITE:
	case WLOG_TRUNCATE:
	case WLOG_FALLOCATE:
		in = get(h->id);
		apply_data(&in->cur, r);
		if (h->type == WLOG_WRITE && (h->flags & WLOG_DSYNC)) {
			/* durable at once, alone: the durable copy gets it too; an older unsynced
			 * write under it can no longer land over it (no torn state has it) */
			apply_data(&in->dur, r);
			size_t keep_n = 0;
			for (size_t j = 0; j < in->nr_unflushed; j++) {
				const struct wlog_rec *o = recs[in->unflushed[j]].h;
				uint64_t olen = o->type == WLOG_WRITE ? o->data_len : o->len;
				bool under = o->type == WLOG_WRITE && o->off < h->off + h->data_len &&
					     h->off < o->off + olen;
				if (!under)
					in->unflushed[keep_n++] = in->unflushed[j];
			}
			in->nr_unflushed = keep_n;
			break;
		}
		if (in->nr_unflushed == in->cap_unflushed) {
			in->cap_unflushed = in->cap_unflushed ? 2 * in->cap_unflushed : 64;
			in->unflushed =
				realloc(in->unflushed, in->cap_unflushed * sizeof(size_t));
		}
		in->unflushed[in->nr_unflushed++] = k;
		break;
	case WLOG_FSYNC:
		in = get(h->id);
		content_copy(&in->dur, &in->cur);
		in->nr_unflushed = 0;
		break;
	case WLOG_FSYNCDIR:
		in = get(h->id);
		in->dents.e = realloc(in->dents.e, (in->ents.n + 1) * sizeof(struct dent));
		if (in->ents.n)
			memcpy(in->dents.e, in->ents.e, in->ents.n * sizeof(struct dent));
		in->dents.n = in->ents.n;
		break;
	}
}

/* ---- materializing a state ---- */
static char workdir[1024];
/* What WORKDIR/store/ID holds: the serial of each page (0: zeros). */
struct matf {
	uint64_t *ser;
	size_t n;
	uint64_t size;
};
static struct matf mat[MAX_IDS];
static int mat_fd[MAX_IDS];
static char ns_now[8192], ns_want[8192];
static char made[64][2048];
static int nr_made;

static void fatal(const char *what, const char *path)
{
	fprintf(stderr, "power_replay: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

/* Whether the last sync_file changed what the file holds. */
static bool file_changed;
/* Whether the pool's metadata (or the names) changed since the checkers last ran on it:
 * they are deterministic, so an unchanged metadata file keeps their verdict. */
static bool meta_changed = true;

static void sync_file(uint64_t id, const struct content *want)
{
	file_changed = false;
	struct matf *m = &mat[id];
	char path[2300];
	if (!mat_fd[id]) {
		snprintf(path, sizeof(path), "%s/store/%" PRIu64, workdir, id);
		mat_fd[id] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (mat_fd[id] < 0)
			fatal("cannot create", path);
	}
	int fd = mat_fd[id];
	size_t pages = (size_t)((want->size + PG - 1) / PG);
	if (pages > m->n) {
		m->ser = realloc(m->ser, pages * sizeof(*m->ser));
		memset(m->ser + m->n, 0, (pages - m->n) * sizeof(*m->ser));
		m->n = pages;
	}
	if (want->size != m->size) {
		if (ftruncate(fd, (off_t)want->size))
			fatal("truncate", "store");
		file_changed = true;
		/* beyond the end reads as zeros; the last page, cut or grown, is rewritten */
		for (size_t i = pages; i < m->n; i++)
			m->ser[i] = 0;
		if (pages && want->size % PG)
			m->ser[pages - 1] = UINT64_MAX;
		if (m->size % PG && m->size < want->size)
			m->ser[m->size / PG] = UINT64_MAX;
		m->size = want->size;
	}
	static const uint8_t zeros[PG];
	for (size_t i = 0; i < pages; i++) {
		struct page *w = i < want->n ? want->pg[i] : NULL;
		uint64_t ws = w ? w->serial : 0;
		if (ws == m->ser[i])
			continue;
		uint64_t off = (uint64_t)i * PG, n = want->size - off < PG ? want->size - off : PG;
		if (pwrite(fd, w ? w->d : zeros, n, (off_t)off) != (ssize_t)n)
			fatal("write", "store");
		m->ser[i] = ws;
		file_changed = true;
	}
}

static void list_ns(uint64_t dir, const char *prefix, char *out, size_t len)
{
	const struct dir *d = &get(dir)->dents;
	for (size_t i = 0; i < d->n; i++) {
		/* a socket or fifo that outlived the cut holds nothing to check */
		if (get(d->e[i].id)->special)
			continue;
		size_t used = strlen(out);
		snprintf(out + used, len - used, "%s/%s:%" PRIu64 ":%d;", prefix, d->e[i].name,
			 d->e[i].id, get(d->e[i].id)->is_dir);
		if (get(d->e[i].id)->is_dir) {
			char sub[1024];
			snprintf(sub, sizeof(sub), "%s/%s", prefix, d->e[i].name);
			list_ns(d->e[i].id, sub, out, len);
		}
	}
}

static void build_ns(uint64_t dir, const char *path)
{
	const struct dir *d = &get(dir)->dents;
	for (size_t i = 0; i < d->n; i++) {
		char p[2048], src[2300];
		if (get(d->e[i].id)->special)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, d->e[i].name);
		if (get(d->e[i].id)->is_dir) {
			if (mkdir(p, 0755))
				fatal("mkdir", p);
			snprintf(made[nr_made++], sizeof(made[0]), "%s", p);
			build_ns(d->e[i].id, p);
		} else {
			snprintf(src, sizeof(src), "%s/store/%" PRIu64, workdir, d->e[i].id);
			if (link(src, p))
				fatal("link", p);
			snprintf(made[nr_made++], sizeof(made[0]), "%s", p);
		}
	}
}

static void sync_files(uint64_t dir, bool torn, uint64_t *rng)
{
	const struct dir *d = &get(dir)->dents;
	for (size_t i = 0; i < d->n; i++) {
		uint64_t id = d->e[i].id;
		struct inode *in = get(id);
		if (in->special)
			continue;
		if (in->is_dir) {
			sync_files(id, torn, rng);
			continue;
		}
		if (!torn || !in->nr_unflushed) {
			sync_file(id, &in->dur);
		} else {
			struct content t = { 0 };
			content_copy(&t, &in->dur);
			for (size_t j = 0; j < in->nr_unflushed; j++)
				if (psplitmix(rng) & 1)
					apply_data(&t, &recs[in->unflushed[j]]);
			sync_file(id, &t);
			free(t.pg);
		}
		if (file_changed && !strcmp(d->e[i].name, "metadata"))
			meta_changed = true;
	}
}

static void materialize(bool torn, uint64_t *rng)
{
	ns_want[0] = '\0';
	list_ns(WLOG_ROOT_ID, "", ns_want, sizeof(ns_want));
	use_scratch = torn;
	/* files first: the links below must find them */
	sync_files(WLOG_ROOT_ID, torn, rng);
	use_scratch = false;
	if (strcmp(ns_want, ns_now)) {
		while (nr_made)
			remove(made[--nr_made]);
		char root[2300];
		snprintf(root, sizeof(root), "%s/root", workdir);
		build_ns(WLOG_ROOT_ID, root);
		memcpy(ns_now, ns_want, sizeof(ns_now));
		meta_changed = true;
	}
}

/* ---- what the workload's marks promise ---- */
struct ver {
	uint64_t dev, version; /* version 0: zeros */
};
struct unit {
	struct ver *v;
	size_t n;
	size_t dur; /* v[dur] is the oldest content a read may still return */
};
struct dev {
	bool known, create_acked, deleted, delete_acked;
	struct unit u[THIN_UNITS];
};
static struct dev devs[MAX_DEVS];
static bool created;
static char table_line[512];
static uint64_t extend_pending, extend_acked;

static struct dev *dev_at(uint64_t id)
{
	if (id >= MAX_DEVS) {
		fprintf(stderr, "power_replay: thin id %" PRIu64 " out of range\n", id);
		exit(1);
	}
	return &devs[id];
}

static void push(struct unit *u, uint64_t dev, uint64_t version)
{
	u->v = realloc(u->v, (u->n + 1) * sizeof(*u->v));
	u->v[u->n++] = (struct ver){ dev, version };
}

static void ack_dev(struct dev *d)
{
	for (unsigned i = 0; i < THIN_UNITS; i++)
		if (d->u[i].n)
			d->u[i].dur = d->u[i].n - 1;
}

static void apply_mark(const struct rec *r)
{
	char line[512];
	snprintf(line, sizeof(line), "%.*s", (int)r->h->data_len, (const char *)r->data);
	uint64_t a, b, c;
	if (sscanf(line, "w %" SCNu64 " %" SCNu64 " %" SCNu64, &a, &b, &c) == 3 && b < THIN_UNITS) {
		push(&dev_at(a)->u[b], a, c);
	} else if (sscanf(line, "z %" SCNu64 " %" SCNu64 " %" SCNu64, &a, &b, &c) == 3) {
		for (uint64_t i = b; i < b + c && i < THIN_UNITS; i++)
			push(&dev_at(a)->u[i], 0, 0);
	} else if (sscanf(line, "f %" SCNu64, &a) == 1) {
		struct dev *d = dev_at(a);
		/* a flush after writes to the thin commits its changes, its creation
		 * included (a discard alone may change nothing) */
		for (unsigned i = 0; i < THIN_UNITS; i++)
			for (size_t j = 0; j < d->u[i].n; j++)
				if (d->u[i].v[j].version && d->u[i].v[j].dev == a)
					d->create_acked = true;
		ack_dev(d);
	} else if (sscanf(line, "c %" SCNu64, &a) == 1) {
		struct dev *d = dev_at(a);
		d->known = true;
		for (unsigned i = 0; i < THIN_UNITS; i++)
			push(&d->u[i], 0, 0);
	} else if (sscanf(line, "s %" SCNu64 " %" SCNu64, &a, &b) == 2) {
		struct dev *d = dev_at(a), *o = dev_at(b);
		d->known = true;
		for (unsigned i = 0; i < THIN_UNITS; i++)
			for (size_t j = o->u[i].dur; j < o->u[i].n; j++)
				push(&d->u[i], o->u[i].v[j].dev, o->u[i].v[j].version);
	} else if (sscanf(line, "d %" SCNu64, &a) == 1) {
		dev_at(a)->deleted = true;
	} else if (sscanf(line, "x %" SCNu64, &a) == 1) {
		extend_pending = a;
	} else if (!strcmp(line, "C\n")) {
		for (unsigned i = 0; i < MAX_DEVS; i++) {
			if (!devs[i].known)
				continue;
			devs[i].create_acked = true;
			devs[i].delete_acked = devs[i].deleted;
			ack_dev(&devs[i]);
		}
		if (extend_pending > extend_acked)
			extend_acked = extend_pending;
	} else if (!strcmp(line, "created\n")) {
		created = true;
	} else if (!strncmp(line, "table ", 6)) {
		snprintf(table_line, sizeof(table_line), "%s", line + 6);
	}
}

/* ---- checking one state ---- */
static const char *thinp_bin, *thin_check_bin, *pool_name;
static unsigned long checker_runs, failures, half_created, absent, strict_checks, torn_checks;
static size_t cut;
static bool cut_torn;

static void failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failure(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (++failures <= 20) {
		fprintf(stderr, "FAIL cut %zu/%zu (%s): ", cut, nr_recs, cut_torn ? "torn" : "strict");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

/* Run ARGV quietly; on failure again with its output in OUT. (posix_spawn: a fork of
 * this process, which holds every page of the log's files, would copy its page tables
 * for each of the thousands of runs.) */
extern char **environ;
static int run(char *const argv[], const char *out)
{
	for (int pass = 0; pass < 2; pass++) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, pass ? out : "/dev/null",
						 O_WRONLY | O_CREAT | O_TRUNC, 0644);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
		pid_t pid;
		int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		if (e) {
			errno = e;
			fatal("cannot run", argv[0]);
		}
		int st;
		if (waitpid(pid, &st, 0) < 0)
			fatal("waitpid", argv[0]);
		if (WIFEXITED(st) && !WEXITSTATUS(st))
			return 0;
	}
	return 1;
}

static bool read_table(const char *dir, char *line, size_t len)
{
	char path[2400];
	snprintf(path, sizeof(path), "%s/table", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(line, (int)len, f))
		*line = '\0';
	fclose(f);
	return true;
}

static void check_unit(uint64_t id, unsigned u, const uint8_t *buf)
{
	const struct unit *e = &devs[id].u[u];
	uint64_t dev = 0, unit = 0, version = 0;
	bool zero = true;
	for (unsigned i = 0; i < PUNIT && zero; i++)
		zero = !buf[i];
	if (!zero) {
		uint8_t want[PUNIT];
		if (!pattern_header(buf, &dev, &unit, &version) || unit != u) {
			failure("thin %" PRIu64 " unit %u holds bytes no write put there", id, u);
			return;
		}
		pattern_fill(want, replay_seed, dev, unit, version);
		if (memcmp(want, buf, PUNIT)) {
			failure("thin %" PRIu64 " unit %u holds a torn copy of version %" PRIu64, id, u,
				version);
			return;
		}
	}
	size_t n = e->n ? e->n : 1;
	for (size_t j = n; j-- > 0;) {
		struct ver v = e->n ? e->v[j] : (struct ver){ 0, 0 };
		bool same = zero ? !v.version : v.version == version && v.dev == dev;
		if (!same)
			continue;
		if (j < e->dur)
			failure("thin %" PRIu64 " unit %u lost a flushed write: it holds %s%" PRIu64
				", older than the acknowledged version %" PRIu64,
				id, u, zero ? "zeros " : "version ", version, e->v[e->dur].version);
		return;
	}
	failure("thin %" PRIu64 " unit %u holds %s%" PRIu64 ", which was never written there",
		id, u, zero ? "zeros " : "version ", version);
}

static void check_state(void)
{
	char dir[2300], meta[2400], out[2400], data[2400];
	snprintf(dir, sizeof(dir), "%s/root/%s", workdir, pool_name);
	snprintf(meta, sizeof(meta), "%s/metadata", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(out, sizeof(out), "%s/tool.out", workdir);
	struct stat st;
	bool whole = !stat(meta, &st) && st.st_size && !stat(data, &st);
	if (!created && !whole) {
		absent++;
		return;
	}
	if (!whole) {
		failure("`pool create` returned, but %s/data or %s/metadata is gone (or empty)",
			pool_name, pool_name);
		return;
	}
	char line[256] = "";
	if (created && !read_table(dir, line, sizeof(line))) {
		failure("`pool create` returned, but %s/table is missing", pool_name);
		return;
	}
	if (created && strcmp(line, table_line)) {
		failure("`pool create` returned, but %s/table holds \"%.*s\", not \"%.*s\"",
			pool_name, (int)strcspn(line, "\n"), line, (int)strcspn(table_line, "\n"),
			table_line);
		return;
	}
	char *check_argv[] = { (char *)thinp_bin, "check", "-q", meta, NULL };
	char *oracle_argv[] = { (char *)thin_check_bin, meta, NULL };
	static char verdict[600]; /* "": both passed, else what failed */
	if (meta_changed) {
		const char *who = run(check_argv, out)	  ? "thinp check"
				  : run(oracle_argv, out) ? "thin_check"
							  : NULL;
		*verdict = '\0';
		if (who) {
			/* the first line of the report that says something */
			FILE *f = fopen(out, "r");
			char msg[300] = "", l[300];
			while (f && !*msg && fgets(l, sizeof(l), f))
				if (l[strspn(l, " \t\n")])
					snprintf(msg, sizeof(msg), "%.*s", (int)strcspn(l, "\n"), l);
			if (f)
				fclose(f);
			snprintf(verdict, sizeof(verdict), "%s fails: %s", who,
				 *msg ? msg : "(no report)");
		}
		meta_changed = false;
		checker_runs++;
	}
	struct thinp_pool *pool = NULL;
	struct thinp_pool_paths w = { .dir = dir, .how = THINP_OPEN_EXISTING };
	struct thinp_pool_opts o = { .read_only = true, .no_commit_timer = true };
	char err[512] = "";
	bool checked = !*verdict && !thinp_pool_open_paths(&w, &o, &pool, NULL, err, sizeof(err));
	if (!checked && !created) {
		half_created++;
		return;
	}
	if (!checked) {
		failure("the pool is corrupt: %s", *verdict ? verdict : err);
		return;
	}
	uint8_t *buf;
	if (posix_memalign((void **)&buf, PUNIT, PUNIT))
		exit(1);
	for (uint64_t id = 0; id < MAX_DEVS; id++) {
		struct dev *d = &devs[id];
		struct thinp_thin *t;
		int r = thinp_thin_open(pool, id, (uint64_t)THIN_UNITS * PUNIT, &t);
		if (r) {
			if (d->known && d->create_acked && !d->deleted)
				failure("thin %" PRIu64 " was committed but is gone: %s", id,
					strerror(-r));
			continue;
		}
		if (!d->known || d->delete_acked) {
			failure("thin %" PRIu64 " exists, but %s", id,
				d->known ? "its delete was committed" : "was never created");
		} else {
			for (unsigned u = 0; u < THIN_UNITS; u++) {
				struct thinp_io_result res;
				r = thinp_read(t, buf, PUNIT, (uint64_t)u * PUNIT, &res);
				if (r) {
					failure("thin %" PRIu64 " unit %u does not read: %s", id, u,
						strerror(-r));
					break;
				}
				check_unit(id, u, buf);
			}
		}
		thinp_thin_close(t);
	}
	free(buf);
	struct thinp_pool_status ps;
	int r = thinp_pool_status(pool, true, &ps);
	if (r)
		failure("no pool status: %s", strerror(-r));
	else if (ps.total_data_blocks * thinp_pool_block_bytes(pool) < extend_acked)
		failure("the data device has %" PRIu64 " blocks, fewer than the committed extend "
			"to %" PRIu64 " bytes",
			ps.total_data_blocks, extend_acked);
	r = thinp_pool_close(pool);
	if (r)
		failure("closing the pool failed: %s", strerror(-r));
}

int main(int argc, char **argv)
{
	if (argc != 8 && argc != 9) {
		fputs("usage: power_replay LOG WORKDIR POOLNAME THINP THIN_CHECK SEED TORN_PERCENT "
		      "[MIN_CHECKS]\n",
		      stderr);
		return 2;
	}
	read_log(argv[1]);
	snprintf(workdir, sizeof(workdir), "%s", argv[2]);
	pool_name = argv[3];
	thinp_bin = argv[4];
	thin_check_bin = argv[5];
	replay_seed = strtoull(argv[6], NULL, 0);
	unsigned torn_pct = (unsigned)strtoul(argv[7], NULL, 0);
	unsigned long min_checks = argc == 9 ? strtoul(argv[8], NULL, 0) : 0;
	char p[2300];
	snprintf(p, sizeof(p), "%s/store", workdir);
	if (mkdir(p, 0755))
		fatal("mkdir", p);
	snprintf(p, sizeof(p), "%s/root", workdir);
	if (mkdir(p, 0755))
		fatal("mkdir", p);
	get(WLOG_ROOT_ID)->used = get(WLOG_ROOT_ID)->is_dir = true;
	uint64_t rng = replay_seed ^ 0x7e57ull;
	for (cut = 0; cut <= nr_recs; cut++) {
		/* the strict state or the promises changed: check the strict state */
		bool changed = !cut || recs[cut - 1].h->type == WLOG_FSYNC ||
			       recs[cut - 1].h->type == WLOG_FSYNCDIR ||
			       recs[cut - 1].h->type == WLOG_MARK;
		cut_torn = !changed && psplitmix(&rng) % 100 < torn_pct;
		if (changed || cut_torn) {
			materialize(cut_torn, &rng);
			check_state();
			while (nr_scratch)
				free(scratch[--nr_scratch]);
			if (cut_torn)
				torn_checks++;
			else
				strict_checks++;
		}
		if (cut < nr_recs) {
			apply(cut);
			if (recs[cut].h->type == WLOG_MARK)
				apply_mark(&recs[cut]);
		}
	}
	unsigned long checks = strict_checks + torn_checks;
	printf("power_replay: %zu records, %zu cut points; %lu states checked (%lu strict, %lu "
	       "torn; the checkers ran on %lu distinct metadata images); no pool yet: %lu, half-created (pool create had not returned, does not "
	       "open): %lu; failures: %lu\n",
	       nr_recs, nr_recs + 1, checks, strict_checks, torn_checks, checker_runs, absent, half_created,
	       failures);
	if (checks < min_checks) {
		fprintf(stderr, "power_replay: only %lu states checked, fewer than %lu\n", checks,
			min_checks);
		return 1;
	}
	return failures ? 1 : 0;
}
