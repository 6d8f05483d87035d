/* Strict checker: leaf values of the mapping and details trees (mappings
 * inside the data device, times not later than the pool's, 24-bit device
 * ids) and, per superblock, the mapping tree against the details tree
 * (devices, mapped_blocks). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/endian.h"
#include "thin/check_internal.h"

/* ---- vectors ---- */

static int u64_push(struct u64_vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		uint64_t *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

int ck_dev_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr)
{
	bool time_ok = c->sb.time <= CK_MAX_TIME; /* mapping times are 24 bits */
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t key = le64_get(keys + 8 * i), v = le64_get(vals + 8 * i);
		uint64_t db = v >> 24;
		uint32_t tm = (uint32_t)(v & CK_MAX_TIME);
		if (db >= c->dsm.nr_blocks) {
			ck_fault(
			        c, F_MAPPING,
			        "%s, leaf %llu: virtual block %llu maps to data block %llu, beyond the data device (%llu blocks)",
			        t->name, (unsigned long long)b, (unsigned long long)key,
			        (unsigned long long)db, (unsigned long long)c->dsm.nr_blocks);
		} else {
			int r = u64_push(&c->data_refs, db);
			if (r)
				return r;
		}
		if (time_ok && tm > t->sb->time)
			ck_fault(
			        c, F_MAPPING,
			        "%s, leaf %llu: virtual block %llu has time %u, later than the pool time %u%s",
			        t->name, (unsigned long long)b, (unsigned long long)key, tm,
			        t->sb->time, t->sb->label);
	}
	return 0;
}

int ck_top_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t dev = le64_get(keys + 8 * i), sub = le64_get(vals + 8 * i);
		if (dev > CK_MAX_DEV_ID)
			ck_fault(c, F_DEVICES,
			         "%s, leaf %llu: device id %llu does not fit in 24 bits", t->name,
			         (unsigned long long)b, (unsigned long long)dev);
		struct tree st = { .type = T_DEV, .sb = t->sb };
		snprintf(st.name, sizeof(st.name), "mapping tree of device %llu%s",
		         (unsigned long long)dev, t->sb->label);
		if (!ck_ptr_ok(c, sub, "the %s entry for device %llu", t->name,
		               (unsigned long long)dev)) {
			ck_lost(c, T_DEV);
			continue;
		}
		ck_add_ref(c, sub);
		if (c->opts->skip_mappings) {
			/* not read (that is the point); its block must still be
			 * one no other structure uses */
			if (c->kind[sub] == K_FREE)
				c->kind[sub] = T_DEV;
			else if (c->kind[sub] != T_DEV)
				ck_fault(c, F_SHARE,
				         "block %llu is used as %s and also as the root of the %s",
				         (unsigned long long)sub, ck_kind_name(c->kind[sub]), st.name);
			continue;
		}
		struct visit_res res;
		int r = ck_visit(c, &st, sub, 0, 0, false, true, 0, &res);
		if (r)
			return r;
	}
	return 0;
}

void ck_details_leaf(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *keys,
                     const uint8_t *vals, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t dev = le64_get(keys + 8 * i);
		const uint8_t *v = vals + 24 * i;
		uint32_t ctime = le32_get(v + 16), stime = le32_get(v + 20);
		if (dev > CK_MAX_DEV_ID)
			ck_fault(c, F_DEVICES,
			         "%s, leaf %llu: device id %llu does not fit in 24 bits", t->name,
			         (unsigned long long)b, (unsigned long long)dev);
		if (ctime > t->sb->time)
			ck_fault(
			        c, F_DEVICES,
			        "%s: device %llu has creation_time %u, later than the pool time %u%s",
			        t->name, (unsigned long long)dev, ctime, t->sb->time, t->sb->label);
		if (stime > t->sb->time)
			ck_fault(
			        c, F_DEVICES,
			        "%s: device %llu has snapshotted_time %u, later than the pool time %u%s",
			        t->name, (unsigned long long)dev, stime, t->sb->time, t->sb->label);
	}
}

int ck_check_devices(struct ctx *c, const struct sb_ctx *sb)
{
	struct kv_vec tl = { 0 }, det = { 0 };
	bool tl_complete = true, det_complete = true;
	int r = 0;
	if (sb->mapping_root < c->nr)
		r = ck_enumerate(c, T_TOP, sb->mapping_root, 0, &tl, &tl_complete);
	else
		tl_complete = false;
	if (!r && sb->details_root < c->nr)
		r = ck_enumerate(c, T_DETAILS, sb->details_root, 0, &det, &det_complete);
	else
		det_complete = false;
	if (r || !tl_complete || !det_complete)
		goto out; /* the damage was reported; comparing would only add noise */
	size_t i = 0, j = 0;
	while (i < tl.n || j < det.n) {
		if (j >= det.n || (i < tl.n && tl.v[i].key < det.v[j].key)) {
			ck_fault(
			        c, F_DEVICES,
			        "device %llu is in the mapping tree but missing from the details tree%s",
			        (unsigned long long)tl.v[i].key, sb->label);
			i++;
			continue;
		}
		if (i >= tl.n || det.v[j].key < tl.v[i].key) {
			ck_fault(
			        c, F_DEVICES,
			        "device %llu is in the details tree but missing from the mapping tree%s",
			        (unsigned long long)det.v[j].key, sb->label);
			j++;
			continue;
		}
		uint64_t dev = tl.v[i].key, sub = le64_get(tl.v[i].val);
		uint64_t mapped = le64_get(det.v[j].val);
		struct node_info *ni =
		        sub < c->nr && c->kind[sub] == T_DEV ? ck_node_of(c, sub) : NULL;
		if (ni && ni->state == NS_DONE && ni->clean && ni->nr_values != mapped)
			ck_fault(
			        c, F_DEVICES,
			        "device %llu: details say mapped_blocks %llu but its mapping tree (root %llu) holds %llu mappings%s",
			        (unsigned long long)dev, (unsigned long long)mapped,
			        (unsigned long long)sub, (unsigned long long)ni->nr_values,
			        sb->label);
		i++;
		j++;
	}
out:
	free(tl.v);
	free(det.v);
	return r;
}
