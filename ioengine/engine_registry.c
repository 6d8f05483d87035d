/* The pool registry: every pool this process has open, keyed by the canonical
 * paths of its two devices, so jobs of one fio process (thread=1) naming the
 * same pool share one open pool (refcounted; the last job out commits and
 * closes it). Pools are opened through libthinp's thinp_pool_open_paths, the
 * one opener of the library's users; a pool directory's is served on
 * DIR/control while open, so `thinp pool status|extend` and the messages
 * reach it from another shell (a job queued on a full pool waits for that
 * extend, as on the kernel). Also where a job's thin device is created or
 * snapshotted. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"

struct thinp_registry thinp_pool_registry = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL };

/* PATH made absolute and free of symlinks, also when its last component does
 * not exist yet (a pool file thinp_create is about to create). */
static char *canon_path(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return strdup(buf);
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *slash = strrchr(copy, '/');
	const char *dir = ".", *base = copy;
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		base = slash + 1;
	}
	char *out = NULL;
	if (realpath(dir, buf)) {
		size_t n = strlen(buf) + strlen(base) + 2;
		out = malloc(n);
		if (out)
			snprintf(out, n, "%s%s%s", buf, strcmp(buf, "/") ? "/" : "", base);
	}
	free(copy);
	return out;
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void cfg_from_opts(struct pool_cfg *c, const struct thinp_options *o)
{
	memset(c, 0, sizeof(*c));
	c->mode = o->mode;
	c->losetup = o->losetup;
	c->zero = o->zero;
	c->cow = o->cow;
	c->discard = o->discard;
	c->no_space = o->no_space;
	c->no_space_timeout = o->no_space_timeout;
	c->commit_interval = o->commit_interval;
	c->cache = o->cache;
	c->read_only = o->read_only;
	c->block_size = o->block_size;
}

/* The first option two jobs sharing a pool disagree on, or NULL. */
static const char *cfg_conflict(const struct pool_cfg *have, const struct pool_cfg *want)
{
	if (have->mode != want->mode)
		return "thinp_mode";
	if (have->losetup != want->losetup)
		return "thinp_losetup";
	if (have->zero != want->zero)
		return "thinp_zero";
	if (have->cow != want->cow)
		return "thinp_cow";
	if (have->discard != want->discard)
		return "thinp_discard";
	if (have->no_space != want->no_space)
		return "thinp_no_space";
	if (have->no_space_timeout != want->no_space_timeout)
		return "thinp_no_space_timeout";
	if (have->commit_interval != want->commit_interval)
		return "thinp_commit_interval";
	if (have->cache != want->cache)
		return "thinp_cache";
	if (have->read_only != want->read_only)
		return "thinp_read_only";
	if (want->block_size && have->block_size != want->block_size)
		return "thinp_block_size";
	return NULL;
}

/* What the engine adds to the opener's message: how a job gets past it. */
static const char *open_hint(int r, const struct thinp_options *o)
{
	if (r == -EBUSY)
		return ": its devices are flock()ed; use thread=1 to share one pool between jobs, "
		       "or run the jobs one after another";
	if (r == -ENOENT && !o->create)
		return "; set thinp_create=1 to create a new pool";
	return "";
}

/* thinp_data_size and thinp_metadata_size size the files thinp_create makes;
 * a block device is used whole, as it always was, so the opener gets no size. */
static uint64_t file_size(const char *path, unsigned long long size)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode) ? 0 : size;
}

/* DIR/control for the pool whose canonical metadata path is META (DIR/metadata). Not
 * served, the jobs run the same: a warning. */
static void serve_control(struct tpool *tp)
{
	char *sock = strdup(tp->meta_path);
	char *slash = sock ? strrchr(sock, '/') : NULL;
	char err[512] = "out of memory";
	int r = -ENOMEM;
	if (slash) {
		slash[0] = '\0';
		char *path = join_path(sock, "control");
		r = path ? thinp_control_serve(tp->pool, path, &tp->control, err, sizeof(err)) :
		           -ENOMEM;
		free(path);
	}
	free(sock);
	if (r)
		log_err("thinp: warning: `thinp pool status|extend` cannot reach this pool while "
		        "fio has it open: %s\n",
		        err);
}

/* (registry lock held) HOLD: thinp_mode=loop + thinp_losetup=1, the engine's loops over
 * DATA and META, which the pool opens instead (O_DIRECT, whole). */
static int open_pool(struct thread_data *td, const struct thinp_options *o, const char *data,
                     const char *meta, struct loop_hold *hold, struct thinp_pool **out)
{
	bool own_loops = o->losetup && o->mode == MODE_LOOP;
	if (own_loops && loops_attach(td, o, (const char *[LOOP_NR]){ data, meta }, hold))
		return 1;
	struct thinp_pool_paths where = {
		.data = own_loops ? hold->dev[LOOP_DATA] : data,
		.metadata = own_loops ? hold->dev[LOOP_META] : meta,
		.data_size = own_loops ? 0 : file_size(data, o->data_size),
		.meta_size = own_loops ? 0 : file_size(meta, o->meta_size),
		.direct = opts_odirect(o),
		.direct_metadata = opts_odirect(o),
		.losetup = o->losetup && !own_loops,
		/* dm-thin's rule: format exactly when the superblock is all zeros (a
		 * new file reads as zeros), open otherwise; never reformat */
		.how = o->create ? THINP_OPEN_ANY : THINP_OPEN_EXISTING,
	};
	struct thinp_pool_opts po = {
		.block_sectors = (uint32_t)(o->block_size / 512),
		.skip_block_zeroing = !o->zero,
		.cow_policy = (enum thinp_cow_policy)o->cow,
		.ignore_discard = o->discard == DISCARD_IGNORE,
		.no_discard_passdown = o->discard == DISCARD_NOPASSDOWN,
		.error_if_no_space = o->no_space == NOSPACE_ERROR,
		.read_only = o->read_only,
		.commit_interval_ms = o->commit_interval,
		.no_commit_timer = o->commit_interval == 0,
		.no_space_timeout_ms = o->no_space_timeout,
		.metadata_cache_blocks = o->cache,
	};
	char err[512] = "";
	bool formatted = false;
	int r = thinp_pool_open_paths(&where, &po, out, &formatted, err, sizeof(err));
	if (own_loops) {
		loops_attached(hold);
		if (r)
			loops_release(hold);
	}
	if (r)
		return job_fail(td, -r, "%s%s", *err ? err : strerror(-r), open_hint(r, o));
	if (formatted)
		note("thinp: formatted a new pool on %s + %s (%llu KiB blocks)\n", data, meta,
		     (unsigned long long)thinp_pool_block_bytes(*out) / 1024);
	return 0;
}

int registry_acquire(struct tjob *j)
{
	struct thread_data *td = j->td;
	const struct thinp_options *o = j->o;
	char *data = NULL, *meta = NULL;
	int ret = 1;

	if (!o->pool_dir && (!o->data_path || !o->meta_path))
		return job_fail(td, EINVAL,
		                "no pool given: set thinp_pool=<dir>, or both "
		                "thinp_data= and thinp_metadata=");
	if (loops_check_root(td, o))
		return 1;
	if (o->pool_dir && o->create && mkdir(o->pool_dir, 0755) && errno != EEXIST)
		return job_fail(td, errno, "cannot create the pool directory %s: %s", o->pool_dir,
		                strerror(errno));
	char *d = o->data_path ? strdup(o->data_path) : join_path(o->pool_dir, "data");
	char *m = o->meta_path ? strdup(o->meta_path) : join_path(o->pool_dir, "metadata");
	if (d && m) {
		data = canon_path(d);
		meta = canon_path(m);
	}
	if (!data || !meta) {
		/* realpath() of the directory failed: it does not exist */
		job_fail(td, ENOENT, "no pool at %s + %s: %s%s", d ? d : "?", m ? m : "?",
		         o->pool_dir && !o->create ? "the directory does not exist" :
		                                     "their directory does not exist",
		         o->create ? "" : " (set thinp_create=1 to create a new pool)");
		goto out;
	}
	if (!strcmp(data, meta)) {
		job_fail(td, EINVAL, "the data and metadata devices are the same file %s", data);
		goto out;
	}

	struct pool_cfg want;
	cfg_from_opts(&want, o);
	pthread_mutex_lock(&thinp_pool_registry.lock);
	struct tpool *tp;
	for (tp = thinp_pool_registry.pools; tp; tp = tp->next)
		if (!strcmp(tp->data_path, data) && !strcmp(tp->meta_path, meta))
			break;
	if (tp) {
		const char *c = cfg_conflict(&tp->cfg, &want);
		if (c) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			job_fail(td, EINVAL,
			         "jobs sharing the pool %s must use the same pool options, "
			         "but this job's %s differs from the one that opened it",
			         data, c);
			goto out;
		}
		tp->refs++;
	} else {
		tp = calloc(1, sizeof(*tp));
		struct thinp_pool *pool = NULL;
		if (!tp) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			job_fail(td, ENOMEM, "out of memory");
			goto out;
		}
		if (open_pool(td, o, data, meta, &tp->hold, &pool)) {
			pthread_mutex_unlock(&thinp_pool_registry.lock);
			free(tp);
			goto out;
		}
		tp->pool = pool;
		tp->refs = 1;
		tp->cfg = want;
		tp->cfg.block_size = thinp_pool_block_bytes(pool);
		tp->data_path = data;
		tp->meta_path = meta;
		data = meta = NULL;
		if (o->losetup)
			loops_find(tp->data_path, tp->meta_path, &tp->loops);
		if (o->pool_dir)
			serve_control(tp);
		tp->next = thinp_pool_registry.pools;
		thinp_pool_registry.pools = tp;
	}
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	j->tp = tp;
	ret = 0;
out:
	free(d);
	free(m);
	free(data);
	free(meta);
	return ret;
}

void registry_release(struct tjob *j)
{
	struct tpool *tp = j->tp;
	if (!tp)
		return;
	j->tp = NULL;
	pthread_mutex_lock(&thinp_pool_registry.lock);
	if (--tp->refs) {
		pthread_mutex_unlock(&thinp_pool_registry.lock);
		return;
	}
	for (struct tpool **pp = &thinp_pool_registry.pools; *pp; pp = &(*pp)->next) {
		if (*pp == tp) {
			*pp = tp->next;
			break;
		}
	}
	/* the last job out closes the pool: a final commit, as a table unload does */
	thinp_control_stop(tp->control);
	sinks_pool_closing(tp->pool);
	int r = thinp_pool_close(tp->pool);
	if (r)
		log_err("thinp: closing the pool %s + %s failed: %s\n", tp->data_path,
		        tp->meta_path, strerror(-r));
	if (tp->cfg.losetup && tp->cfg.mode == MODE_LOOP)
		loops_release(&tp->hold);
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	free(tp->snaps);
	free(tp->data_path);
	free(tp->meta_path);
	free(tp);
}

/* (registry lock held) */
int registry_prepare_thin(struct tjob *j)
{
	struct thread_data *td = j->td;
	const struct thinp_options *o = j->o;
	struct tpool *tp = j->tp;
	struct thinp_thin *probe;
	unsigned long long id = o->dev_id;

	int r = thinp_thin_open(tp->pool, id, 0, &probe);
	if (r && r != -ENODEV)
		return job_fail(td, -r, "cannot look up thin device %llu: %s", id,
		                POOL_MSG(tp->pool));
	bool exists = r == 0;
	if (exists)
		thinp_thin_close(probe);

	if (o->has_snap) {
		if (o->snap_origin == id)
			return job_fail(td, EINVAL,
			                "thinp_snapshot_of=%llu names thinp_dev itself: a "
			                "snapshot needs a new id",
			                id);
		for (size_t i = 0; i < tp->nr_snaps; i++)
			if (tp->snaps[i] == id)
				return 0; /* a sibling job took it already */
		if (exists)
			return job_fail(td, EEXIST,
			                "thin device %llu already exists: "
			                "thinp_snapshot_of=%llu snapshots into a new id (pick "
			                "another thinp_dev, or delete device %llu first)",
			                id, o->snap_origin, id);
		r = thinp_create_snap(tp->pool, id, o->snap_origin);
		if (r)
			return job_fail(td, -r, "cannot snapshot thin device %llu into %llu: %s",
			                o->snap_origin, id, POOL_MSG(tp->pool));
		unsigned long long *n = realloc(tp->snaps, (tp->nr_snaps + 1) * sizeof(*n));
		if (!n)
			return job_fail(td, ENOMEM, "out of memory");
		tp->snaps = n;
		tp->snaps[tp->nr_snaps++] = id;
		return 0;
	}
	if (!exists) {
		r = thinp_create_thin(tp->pool, id);
		if (r)
			return job_fail(td, -r, "cannot create thin device %llu: %s", id,
			                POOL_MSG(tp->pool));
	}
	return 0;
}
