#include "pdata/transaction_manager.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/space_map.h"

struct tm {
	struct bm *bm;
	struct sm_meta *sm;
	char err[320];
};

int tm_create(struct bm *bm, struct sm_meta *sm, struct tm **out)
{
	struct tm *tm = calloc(1, sizeof(*tm));
	if (!tm)
		return -ENOMEM;
	tm->bm = bm;
	tm->sm = sm;
	*out = tm;
	return 0;
}

void tm_destroy(struct tm *tm) { free(tm); }
struct bm *tm_bm(struct tm *tm) { return tm->bm; }
struct sm_meta *tm_sm(struct tm *tm) { return tm->sm; }

/* A block whose last reference went is dead: its cached copy goes too. */
static int dec(struct tm *tm, uint64_t b)
{
	int r = sm_meta_dec(tm->sm, b);
	if (!r && !sm_meta_get_count(tm->sm, b))
		bm_forget(tm->bm, b);
	return r;
}

int tm_new_block(struct tm *tm, const struct bm_validator *v, struct bm_block **out)
{
	uint64_t b;
	int r = sm_meta_new_block(tm->sm, &b);
	if (r)
		return r;
	r = bm_write_lock_zero(tm->bm, b, v, out);
	if (r)
		(void)sm_meta_dec(tm->sm, b);
	return r;
}

/* A block that fails its validator or lies beyond the device, reached
 * through a pointer in the metadata: corruption (R from the block manager). */
static int read_result(struct tm *tm, int r)
{
	return r == -EILSEQ || r == -ERANGE ? tm_corrupt(tm, "%s", bm_last_error(tm->bm)) : r;
}

int tm_shadow_block(struct tm *tm, uint64_t orig, const struct bm_validator *v,
		    struct bm_block **out, bool *inc_children)
{
	uint32_t count = sm_meta_get_count(tm->sm, orig);
	if (count == 0) /* the caller's tree points at a free block */
		return tm_corrupt(tm, "%s block %llu is in use but free in the metadata space map",
				  v ? v->name : "metadata", (unsigned long long)orig);
	*inc_children = count > 1;
	if (count == 1 && sm_meta_is_new(tm->sm, orig))
		return read_result(tm, bm_write_lock(tm->bm, orig, v, out));

	struct bm_block *src;
	int r = bm_read_lock(tm->bm, orig, v, &src);
	if (r)
		return read_result(tm, r);
	uint64_t b;
	r = sm_meta_new_block(tm->sm, &b);
	if (r) {
		bm_unlock(src);
		return r;
	}
	r = bm_write_lock_zero(tm->bm, b, v, out);
	if (r) {
		bm_unlock(src);
		(void)sm_meta_dec(tm->sm, b);
		return r;
	}
	memcpy(bm_block_data(*out), bm_block_data(src), TP_BLOCK_SIZE);
	bm_unlock(src);
	return dec(tm, orig);
}

int tm_read_lock(struct tm *tm, uint64_t b, const struct bm_validator *v, struct bm_block **out)
{
	return read_result(tm, bm_read_lock(tm->bm, b, v, out));
}

const void *tm_peek(struct tm *tm, uint64_t b, const struct bm_validator *v)
{
	return bm_peek(tm->bm, b, v);
}

void tm_unlock(struct tm *tm, struct bm_block *blk)
{
	(void)tm;
	bm_unlock(blk);
}

int tm_inc(struct tm *tm, uint64_t b) { return sm_meta_inc(tm->sm, b); }
int tm_dec(struct tm *tm, uint64_t b) { return dec(tm, b); }

int tm_ref(struct tm *tm, uint64_t b, uint32_t *count)
{
	if (b >= sm_meta_nr_blocks(tm->sm))
		return -ERANGE;
	*count = sm_meta_get_count(tm->sm, b);
	return 0;
}

int tm_corrupt(struct tm *tm, const char *fmt, ...)
{
	static const char prefix[] = "metadata corrupt: ";
	memcpy(tm->err, prefix, sizeof(prefix));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tm->err + sizeof(prefix) - 1, sizeof(tm->err) - (sizeof(prefix) - 1), fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

const char *tm_error(const struct tm *tm) { return tm->err; }
