/* Device ids as Docker allocates them: a bitmap of every id a device file names (deleted
 * ones too), and a cursor that advances before each search, so a fresh set gives the base
 * device id 1 and ids are not reused until the 24-bit space wraps. */
#include "graph/graph_internal.h"

#include <errno.h>
#include <stdlib.h>

#define TG_NR_IDS (TG_MAX_DEVICE_ID + 1u)

int tg_ids_init(struct tg_ids *ids)
{
	ids->map = calloc(TG_NR_IDS / 8, 1);
	ids->next = 0;
	return ids->map ? 0 : -ENOMEM;
}

void tg_ids_free(struct tg_ids *ids)
{
	free(ids->map);
	ids->map = NULL;
}

void tg_ids_mark(struct tg_ids *ids, uint32_t id, bool used)
{
	id &= TG_MAX_DEVICE_ID;
	if (used)
		ids->map[id / 8] |= (uint8_t)(1u << (id % 8));
	else
		ids->map[id / 8] &= (uint8_t)~(1u << (id % 8));
}

bool tg_ids_is_free(const struct tg_ids *ids, uint32_t id)
{
	id &= TG_MAX_DEVICE_ID;
	return !(ids->map[id / 8] & (1u << (id % 8)));
}

int tg_ids_alloc(struct tg_ids *ids, uint32_t *id)
{
	for (uint32_t i = 0; i < TG_NR_IDS; i++) {
		ids->next = (ids->next + 1) & TG_MAX_DEVICE_ID;
		if (tg_ids_is_free(ids, ids->next)) {
			tg_ids_mark(ids, ids->next, true);
			*id = ids->next;
			return 0;
		}
	}
	return -ENOSPC;
}
