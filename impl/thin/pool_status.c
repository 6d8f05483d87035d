/* Reporting: per-class cost counters and the pool and thin status, as the
 * kernel's pool_status()/thin_status() print them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "thin/pool_internal.h"

/* ---- cost accounting ---- */

static const char *const class_names[THINP_NR_CLASSES] = {
	"read_unmapped",        "read_mapped", "read_shared",   "write_overwrite",
	"write_provision",      "write_provision_zero",         "write_provision_full",
	"write_cow",            "write_cow_full",               "discard",
	"flush",                "commit"};

const char *thinp_class_name(enum thinp_class c)
{
	return (unsigned)c < THINP_NR_CLASSES ? class_names[c] : "unknown";
}

/* The counters' sums since the pool opened: owned slots field by field with atomic loads
 * (their threads add without a lock), the shared slot under its lock. */
static void stats_sum(struct thinp_pool *p, struct thinp_class_stats out[THINP_NR_CLASSES])
{
	memset(out, 0, sizeof(p->slots[0].stats));
	for (unsigned i = 0; i < NR_SLOTS; i++) {
		struct pool_slot *s = &p->slots[i];
		if (i == NR_SLOTS - 1)
			pthread_mutex_lock(&s->stats_lock);
		for (unsigned c = 0; c < THINP_NR_CLASSES; c++) {
			const struct thinp_class_stats *a = &s->stats[c];
			struct thinp_class_stats v = {
				.ops = __atomic_load_n(&a->ops, __ATOMIC_RELAXED),
				.bytes_requested = __atomic_load_n(&a->bytes_requested, __ATOMIC_RELAXED),
				.data_bytes_read = __atomic_load_n(&a->data_bytes_read, __ATOMIC_RELAXED),
				.data_bytes_written = __atomic_load_n(&a->data_bytes_written, __ATOMIC_RELAXED),
				.data_bytes_zeroed = __atomic_load_n(&a->data_bytes_zeroed, __ATOMIC_RELAXED),
				.meta_bytes_read = __atomic_load_n(&a->meta_bytes_read, __ATOMIC_RELAXED),
				.meta_bytes_written = __atomic_load_n(&a->meta_bytes_written, __ATOMIC_RELAXED)};
			add_cost(&out[c], &v);
		}
		if (i == NR_SLOTS - 1)
			pthread_mutex_unlock(&s->stats_lock);
	}
}

void thinp_pool_stats(struct thinp_pool *p, struct thinp_class_stats out[THINP_NR_CLASSES])
{
	pthread_mutex_lock(&p->stats_base_lock);
	stats_sum(p, out);
	for (unsigned c = 0; c < THINP_NR_CLASSES; c++) {
		const struct thinp_class_stats *b = &p->stats_base[c];
		out[c].ops -= b->ops;
		out[c].bytes_requested -= b->bytes_requested;
		out[c].data_bytes_read -= b->data_bytes_read;
		out[c].data_bytes_written -= b->data_bytes_written;
		out[c].data_bytes_zeroed -= b->data_bytes_zeroed;
		out[c].meta_bytes_read -= b->meta_bytes_read;
		out[c].meta_bytes_written -= b->meta_bytes_written;
	}
	pthread_mutex_unlock(&p->stats_base_lock);
}

void thinp_pool_stats_reset(struct thinp_pool *p)
{
	pthread_mutex_lock(&p->stats_base_lock);
	stats_sum(p, p->stats_base);
	pthread_mutex_unlock(&p->stats_base_lock);
}

/* ---- status ---- */

int thinp_pool_status(struct thinp_pool *p, bool noflush, struct thinp_pool_status *st)
{
	if (!noflush && (mode_get(p) == THINP_MODE_WRITE || mode_get(p) == THINP_MODE_OUT_OF_DATA_SPACE)) {
		int r = pool_commit(p);
		if (r)
			return r;
	}
	md_excl_lock(p);
	if (mode_get(p) == THINP_MODE_FAIL) {
		/* the metadata objects are gone after a failed abort: the kernel
		 * reports just "Fail" */
		memset(st, 0, sizeof(*st));
		st->mode = THINP_MODE_FAIL;
		md_excl_unlock(p);
		return 0;
	}
	st->transaction_id = tmd_transaction_id(p->md);
	st->total_meta_blocks = tmd_nr_metadata_blocks(p->md);
	/* dm_pool_get_free_metadata_block_count() hides the reserve */
	uint64_t mfree = tmd_nr_free_metadata_blocks(p->md), reserve = tmd_metadata_reserve(p->md);
	mfree = mfree > reserve ? mfree - reserve : 0;
	st->used_meta_blocks = st->total_meta_blocks - mfree;
	st->total_data_blocks = tmd_nr_data_blocks(p->md);
	st->used_data_blocks = st->total_data_blocks - tmd_nr_free_data_blocks(p->md);
	st->held_root = tmd_metadata_snap(p->md);
	st->mode = mode_get(p);
	st->discard_enabled = !p->o.ignore_discard;
	/* ignore_discard turns passdown off too (the kernel prints one word for both) */
	st->discard_passdown = !p->o.ignore_discard && !p->o.no_discard_passdown;
	st->error_if_no_space = p->o.error_if_no_space || p->no_space_timed_out;
	st->needs_check = tmd_needs_check(p->md);
	uint64_t quarter = (p->meta->size / 4096) / 4;
	st->metadata_low_water = quarter < 1024 ? quarter : 1024;
	md_excl_unlock(p);
	return 0;
}

int thinp_pool_status_line(struct thinp_pool *p, bool noflush, char *buf, size_t len)
{
	struct thinp_pool_status st;
	int r = thinp_pool_status(p, noflush, &st);
	if (r)
		return r;
	if (st.mode == THINP_MODE_FAIL) {
		snprintf(buf, len, "Fail");
		return 0;
	}
	char held[32];
	if (st.held_root)
		snprintf(held, sizeof(held), "%llu", (unsigned long long)st.held_root);
	else
		snprintf(held, sizeof(held), "-");
	snprintf(buf, len, "%llu %llu/%llu %llu/%llu %s %s %s %s %s %llu ",
		 (unsigned long long)st.transaction_id, (unsigned long long)st.used_meta_blocks,
		 (unsigned long long)st.total_meta_blocks, (unsigned long long)st.used_data_blocks,
		 (unsigned long long)st.total_data_blocks, held,
		 st.mode == THINP_MODE_OUT_OF_DATA_SPACE ? "out_of_data_space"
		 : st.mode == THINP_MODE_READ_ONLY	 ? "ro"
							 : "rw",
		 !st.discard_enabled ? "ignore_discard"
		 : st.discard_passdown ? "discard_passdown"
				       : "no_discard_passdown",
		 st.error_if_no_space ? "error_if_no_space" : "queue_if_no_space",
		 st.needs_check ? "needs_check" : "-", (unsigned long long)st.metadata_low_water);
	return 0;
}

int thinp_thin_status(struct thinp_pool *p, uint64_t id, struct thinp_thin_status *st)
{
	md_excl_lock(p);
	struct thin_details d;
	int r;
	if (mode_get(p) == THINP_MODE_FAIL) {
		r = pool_check_writable(p); /* -EIO: the metadata objects are gone */
		goto out;
	}
	r = tmd_get_details(p->md, id, &d);
	if (r) {
		pool_err(p, r, "%s", tmd_error(p->md));
		goto out;
	}
	st->mapped_sectors = d.mapped_blocks * p->block_sectors;
	uint64_t hi;
	r = tmd_highest_mapped(p->md, id, &hi);
	st->has_mapped = r == 0;
	st->highest_mapped_sector = r == 0 ? (hi + 1) * p->block_sectors - 1 : 0;
	if (r == -ENODATA)
		r = 0;
	else if (r)
		pool_err(p, r, "%s", tmd_error(p->md));
out:
	md_excl_unlock(p);
	return r;
}

int thinp_thin_status_line(struct thinp_pool *p, uint64_t id, char *buf, size_t len)
{
	if (mode_get(p) == THINP_MODE_FAIL) {
		snprintf(buf, len, "Fail");
		return 0;
	}
	struct thinp_thin_status st;
	int r = thinp_thin_status(p, id, &st);
	if (r)
		return r;
	if (st.has_mapped)
		snprintf(buf, len, "%llu %llu", (unsigned long long)st.mapped_sectors,
			 (unsigned long long)st.highest_mapped_sector);
	else
		snprintf(buf, len, "%llu -", (unsigned long long)st.mapped_sectors);
	return 0;
}
