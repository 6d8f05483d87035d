/* The device details tree (dev -> mapped blocks, creation and snapshot
 * times, transaction id) and the per-transaction cache of touched devices;
 * creating, snapshotting, deleting and listing thin devices. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/btree.h"
#include "pdata/endian.h"
#include "pdata/transaction_manager.h"
#include "thin/metadata_internal.h"
#include "thin/superblock.h"

/* ---- device details ---- */

static size_t slot_of(const struct tmd *md, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (md->nr_slots - 1);
}

static void index_add(struct tmd *md, size_t i)
{
	size_t s = slot_of(md, md->devs[i].id);
	while (md->dev_slots[s])
		s = (s + 1) & (md->nr_slots - 1);
	md->dev_slots[s] = (uint32_t)(i + 1);
}

/* Rebuild the index for the current devs (after growth or a removal). */
static int index_rebuild(struct tmd *md, size_t want)
{
	size_t n = 64;
	while (n < want * 2)
		n <<= 1;
	if (n != md->nr_slots) {
		uint32_t *slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		free(md->dev_slots);
		md->dev_slots = slots;
		md->nr_slots = n;
	} else {
		memset(md->dev_slots, 0, n * sizeof(*md->dev_slots));
	}
	for (size_t i = 0; i < md->nr_devs; i++)
		index_add(md, i);
	return 0;
}

static struct tmd_dev *find_dev(struct tmd *md, uint64_t id)
{
	if (!md->nr_slots)
		return NULL;
	for (size_t s = slot_of(md, id); md->dev_slots[s]; s = (s + 1) & (md->nr_slots - 1))
		if (md->devs[md->dev_slots[s] - 1].id == id)
			return &md->devs[md->dev_slots[s] - 1];
	return NULL;
}

struct tmd_dev *tmd_find_dev(struct tmd *md, uint64_t id) { return find_dev(md, id); }

int tmd_get_dev(struct tmd *md, uint64_t id, bool create, struct tmd_dev **out)
{
	struct tmd_dev *found = find_dev(md, id);
	if (found) {
		*out = found;
		return 0;
	}
	struct thin_details d;
	uint8_t v[24];
	int r = btree_lookup(&md->details_info, md->details_root, &id, v);
	if (r == -ENODATA && create) {
		d = (struct thin_details){0, md->sb.trans_id, md->sb.time, md->sb.time};
	} else if (r) {
		return r;
	} else {
		thin_details_unpack(v, &d);
	}
	if (md->nr_devs == md->cap_devs) {
		size_t cap = md->cap_devs ? md->cap_devs * 2 : 16;
		struct tmd_dev *n = realloc(md->devs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		md->devs = n;
		md->cap_devs = cap;
	}
	if ((md->nr_devs + 1) * 2 > md->nr_slots) {
		int ir = index_rebuild(md, md->nr_devs + 1);
		if (ir)
			return ir;
	}
	struct tmd_dev *td = &md->devs[md->nr_devs++];
	td->id = id;
	td->d = d;
	td->changed = r == -ENODATA;
	index_add(md, md->nr_devs - 1);
	*out = td;
	return 0;
}

/* Tells "absent" from "could not read": taking a read error for "absent"
 * would let create overwrite a live device. */
int tmd_device_exists(struct tmd *md, uint64_t dev, bool *exists)
{
	struct tmd_dev *td;
	int r = tmd_get_dev(md, dev, false, &td);
	*exists = r == 0;
	return r == -ENODATA ? 0 : tmd_op_result(md, r, "looking up the device");
}

static int check_dev_id(struct tmd *md, uint64_t dev)
{
	if (dev > THIN_MAX_DEV_ID)
		return tmd_fail(md, -EINVAL, "device id %llu is too big: ids are 24-bit (0..%llu)",
			        (unsigned long long)dev, THIN_MAX_DEV_ID);
	return 0;
}

/* What create_thin and create_snap ask before they add DEV. */
static int check_new_dev(struct tmd *md, uint64_t dev)
{
	int r = writable(md);
	if (!r)
		r = check_dev_id(md, dev);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(md, dev, &exists);
	if (r)
		return r;
	if (exists)
		return tmd_fail(md, -EEXIST, "device %llu already exists", (unsigned long long)dev);
	return 0;
}

int tmd_create_thin(struct tmd *md, uint64_t dev)
{
	int r = check_new_dev(md, dev);
	if (r)
		return r;
	uint64_t sub;
	r = btree_empty(&md->bl_info, &sub);
	if (r)
		return tmd_op_result(md, r, "create_thin");
	uint8_t v[8];
	le64_put(v, sub);
	r = btree_insert(&md->tl_info, md->root, &dev, v, &md->root, NULL);
	if (r)
		return tmd_op_result(md, r, "create_thin");
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, true, &td);
	if (r)
		return tmd_op_result(md, r, "create_thin");
	md->changed = true;
	return 0;
}

int tmd_create_snap(struct tmd *md, uint64_t dev, uint64_t origin)
{
	int r = check_new_dev(md, dev);
	if (r)
		return r;
	uint8_t v[8];
	r = btree_lookup(&md->tl_info, md->root, &origin, v);
	if (r == -ENODATA)
		return tmd_fail(md, -ENODATA, "origin device %llu does not exist",
			        (unsigned long long)origin);
	if (r)
		return tmd_op_result(md, r, "create_snap");
	if (md->sb.time == THIN_MAX_TIME)
		return tmd_fail(md, -EOVERFLOW, "pool time would exceed 24 bits");
	r = tm_inc(md->tm, le64_get(v));
	if (!r)
		r = btree_insert(&md->tl_info, md->root, &dev, v, &md->root, NULL);
	if (r)
		return tmd_op_result(md, r, "create_snap");
	md->sb.time++;
	struct tmd_dev *td, *otd;
	r = tmd_get_dev(md, dev, true, &td);
	if (r)
		return tmd_op_result(md, r, "create_snap");
	uint64_t td_index = (uint64_t)(td - md->devs);
	r = tmd_get_dev(md, origin, false, &otd);
	if (r)
		return tmd_op_result(md, r, "create_snap");
	td = &md->devs[td_index]; /* tmd_get_dev may have moved the array */
	otd->d.snapshotted_time = md->sb.time;
	otd->changed = true;
	td->d.mapped_blocks = otd->d.mapped_blocks;
	td->d.snapshotted_time = md->sb.time;
	td->changed = true;
	md->changed = true;
	return 0;
}

int tmd_delete_thin(struct tmd *md, uint64_t dev)
{
	int r = writable(md);
	if (r)
		return r;
	bool exists;
	r = tmd_device_exists(md, dev, &exists);
	if (r)
		return r;
	if (!exists)
		return tmd_fail(md, -ENODATA, "device %llu does not exist", (unsigned long long)dev);
	struct tmd_dev *td = find_dev(md, dev);
	if (td) {
		*td = md->devs[--md->nr_devs];
		r = index_rebuild(md, md->nr_devs);
		if (r)
			return tmd_fail(md, r, "out of memory");
	}
	r = btree_remove(&md->details_info, md->details_root, &dev, &md->details_root);
	if (r == -ENODATA)
		r = 0; /* created in this transaction: details not written yet */
	if (!r)
		r = btree_remove(&md->tl_info, md->root, &dev, &md->root);
	if (r)
		return tmd_op_result(md, r, "delete");
	md->changed = true;
	return 0;
}

struct list_ctx {
	uint64_t *ids;
	size_t nr, cap;
};

static int list_one(void *ctx, uint64_t key, const void *value)
{
	(void)value;
	struct list_ctx *l = ctx;
	if (l->nr == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint64_t *n = realloc(l->ids, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->ids = n;
		l->cap = cap;
	}
	l->ids[l->nr++] = key;
	return 0;
}

int tmd_list_devices(struct tmd *md, uint64_t **ids, size_t *nr)
{
	struct list_ctx l = {0};
	int r = btree_walk(&md->tl_info, md->root, list_one, &l);
	if (r) {
		free(l.ids);
		return tmd_op_result(md, r, "listing devices");
	}
	*ids = l.ids;
	*nr = l.nr;
	return 0;
}

int tmd_get_details(struct tmd *md, uint64_t dev, struct thin_details *d)
{
	struct tmd_dev *td;
	int r = tmd_get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return tmd_fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return tmd_op_result(md, r, "reading device details");
	*d = td->d;
	return 0;
}

int tmd_set_details(struct tmd *md, uint64_t dev, const struct thin_details *d)
{
	int r = writable(md);
	if (r)
		return r;
	struct tmd_dev *td;
	r = tmd_get_dev(md, dev, false, &td);
	if (r == -ENODATA)
		return tmd_fail(md, r, "device %llu does not exist", (unsigned long long)dev);
	if (r)
		return tmd_op_result(md, r, "reading device details");
	td->d = *d;
	td->changed = true;
	md->changed = true;
	return 0;
}

