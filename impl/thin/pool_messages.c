/* Pool messages (create_thin, create_snap, delete, set_transaction_id,
 * reserve/release_metadata_snap): each runs under the exclusive commit
 * barrier and commits, as the kernel commits after every message. */
#include <errno.h>
#include <pthread.h>

#include "thin/pool_internal.h"

typedef int (*msg_fn)(struct tmd *md, uint64_t a, uint64_t b);
static int m_delete(struct tmd *md, uint64_t a, uint64_t b);

static int message(struct thinp_pool *p, msg_fn fn, uint64_t a, uint64_t b, const char *name)
{
	struct meta_mark m;
	pthread_rwlock_wrlock(&p->commit_barrier);
	md_lock(p, &m);
	int r = pool_check_writable(p);
	if (r) {
		/* the kernel refuses messages in read-only and fail modes */
		pool_err(p, -EOPNOTSUPP, "unable to service pool target messages in READ_ONLY or FAIL mode (%s)",
		         name);
		r = -EOPNOTSUPP;
		goto out;
	}
	if (fn == m_delete && pool_thin_is_open(p, a)) {
		/* dm-thin's __delete_device: an open thin device is not deleted */
		r = pool_err(p, -EBUSY, "delete: thin device %llu is open (close it first)",
		             (unsigned long long)a);
		goto out;
	}
	r = fn(p->md, a, b);
	if (r) {
		if (r == -EEXIST || r == -ENODATA || r == -EINVAL || r == -EBUSY ||
		    r == -EOVERFLOW)
			pool_err(p, r, "%s: %s", name, tmd_error(p->md));
		else
			pool_metadata_failed(p, r, name);
		goto out;
	}
	r = pool_commit_locked(p, NULL);
out:
	md_unlock(p, &m, NULL);
	pthread_rwlock_unlock(&p->commit_barrier);
	return r;
}

static int m_create(struct tmd *md, uint64_t a, uint64_t b) { (void)b; return tmd_create_thin(md, a); }
static int m_snap(struct tmd *md, uint64_t a, uint64_t b) { return tmd_create_snap(md, a, b); }
static int m_delete(struct tmd *md, uint64_t a, uint64_t b) { (void)b; return tmd_delete_thin(md, a); }
static int m_trans(struct tmd *md, uint64_t a, uint64_t b) { return tmd_set_transaction_id(md, a, b); }
static int m_reserve(struct tmd *md, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return tmd_reserve_metadata_snap(md);
}
static int m_release(struct tmd *md, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return tmd_release_metadata_snap(md);
}

int thinp_create_thin(struct thinp_pool *p, uint64_t id)
{
	return message(p, m_create, id, 0, "create_thin");
}
int thinp_create_snap(struct thinp_pool *p, uint64_t id, uint64_t origin)
{
	return message(p, m_snap, id, origin, "create_snap");
}
int thinp_delete_thin(struct thinp_pool *p, uint64_t id)
{
	return message(p, m_delete, id, 0, "delete");
}
int thinp_set_transaction_id(struct thinp_pool *p, uint64_t cur, uint64_t next)
{
	return message(p, m_trans, cur, next, "set_transaction_id");
}
int thinp_reserve_metadata_snap(struct thinp_pool *p)
{
	return message(p, m_reserve, 0, 0, "reserve_metadata_snap");
}
int thinp_release_metadata_snap(struct thinp_pool *p)
{
	return message(p, m_release, 0, 0, "release_metadata_snap");
}
