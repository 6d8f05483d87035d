/* The texts of the thin-pool and thin targets, with no libdevmapper: table parameter
 * builders, table and status parsers (the formats of pool_status()/thin_status() in
 * drivers/md/dm-thin.c), and device names. Pure functions, unit-tested on their own. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dm/dm_backend.h"

bool tdm_valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= TDM_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._+:@-", *p)))
			return false;
	return true;
}

/* ---- parsers ---- */

static bool parse_u64(const char **p, uint64_t *v)
{
	char *end;
	if (**p < '0' || **p > '9')
		return false;
	errno = 0;
	unsigned long long x = strtoull(*p, &end, 10);
	if (errno)
		return false;
	*v = x;
	*p = end;
	return true;
}

/* Next space-separated word into W; false at the end of the text. */
static bool word(const char **p, char *w, size_t len)
{
	while (**p == ' ')
		(*p)++;
	size_t n = strcspn(*p, " \n");
	if (!n)
		return false;
	snprintf(w, len, "%.*s", (int)n, *p);
	*p += n;
	return true;
}

int tdm_parse_pool_status(const char *line, struct thinp_pool_status *st)
{
	memset(st, 0, sizeof(*st));
	const char *p = line;
	while (*p == ' ')
		p++;
	if (!strncmp(p, "Fail", 4) || !strncmp(p, "Error", 5)) {
		st->mode = THINP_MODE_FAIL;
		return 0;
	}
	/* <trans> <used>/<total meta> <used>/<total data> */
	if (!parse_u64(&p, &st->transaction_id) || *p++ != ' ' ||
	    !parse_u64(&p, &st->used_meta_blocks) || *p++ != '/' ||
	    !parse_u64(&p, &st->total_meta_blocks) || *p++ != ' ' ||
	    !parse_u64(&p, &st->used_data_blocks) || *p++ != '/' ||
	    !parse_u64(&p, &st->total_data_blocks))
		return -EINVAL;
	char w[32];
	/* <held root|-> */
	if (!word(&p, w, sizeof(w)))
		return -EINVAL;
	if (strcmp(w, "-")) {
		const char *q = w;
		if (!parse_u64(&q, &st->held_root) || *q)
			return -EINVAL;
	}
	/* the rest arrived over kernel versions; absent fields keep the kernel defaults */
	st->discard_enabled = st->discard_passdown = true;
	if (!word(&p, w, sizeof(w)))
		return 0;
	if (!strcmp(w, "rw"))
		st->mode = THINP_MODE_WRITE;
	else if (!strcmp(w, "ro"))
		st->mode = THINP_MODE_READ_ONLY;
	else if (!strcmp(w, "out_of_data_space"))
		st->mode = THINP_MODE_OUT_OF_DATA_SPACE;
	else
		return -EINVAL;
	while (word(&p, w, sizeof(w))) {
		if (!strcmp(w, "ignore_discard"))
			st->discard_enabled = st->discard_passdown = false;
		else if (!strcmp(w, "discard_passdown"))
			st->discard_enabled = st->discard_passdown = true;
		else if (!strcmp(w, "no_discard_passdown"))
			st->discard_passdown = false;
		else if (!strcmp(w, "error_if_no_space"))
			st->error_if_no_space = true;
		else if (!strcmp(w, "queue_if_no_space"))
			st->error_if_no_space = false;
		else if (!strcmp(w, "needs_check"))
			st->needs_check = true;
		else if (!strcmp(w, "-"))
			;
		else {
			const char *q = w;
			if (!parse_u64(&q, &st->metadata_low_water) || *q)
				return -EINVAL;
		}
	}
	return 0;
}

int tdm_parse_thin_status(const char *line, struct thinp_thin_status *st)
{
	memset(st, 0, sizeof(*st));
	const char *p = line;
	while (*p == ' ')
		p++;
	if (!strncmp(p, "Fail", 4))
		return -EIO;
	/* thin_status() prints "-" when the thin has no device in the pool's metadata any
	 * more, and "Error" when it cannot read the counts: neither is a malformed line */
	if (p[0] == '-' && (p[1] == 0 || p[1] == ' ' || p[1] == '\n'))
		return -ENODEV;
	if (!strncmp(p, "Error", 5) && (p[5] == 0 || p[5] == ' ' || p[5] == '\n'))
		return -EREMOTEIO;
	if (!parse_u64(&p, &st->mapped_sectors))
		return -EINVAL;
	char w[32];
	if (!word(&p, w, sizeof(w)))
		return -EINVAL;
	if (strcmp(w, "-")) {
		const char *q = w;
		if (!parse_u64(&q, &st->highest_mapped_sector) || *q)
			return -EINVAL;
		st->has_mapped = true;
	}
	return word(&p, w, sizeof(w)) ? -EINVAL : 0;
}

static bool parse_majmin(const char **p, uint32_t *ma, uint32_t *mi, char *buf, size_t len)
{
	uint64_t a, b;
	const char *s = *p;
	while (*s == ' ')
		s++;
	const char *start = s;
	if (!parse_u64(&s, &a) || *s++ != ':' || !parse_u64(&s, &b) || a > UINT32_MAX ||
	    b > UINT32_MAX)
		return false;
	*ma = (uint32_t)a;
	*mi = (uint32_t)b;
	snprintf(buf, len, "%.*s", (int)(s - start), start);
	*p = s;
	return true;
}

int tdm_parse_pool_params(const char *params, struct tdm_pool_table *t)
{
	uint64_t length = t->data_sectors;
	memset(t, 0, sizeof(*t));
	t->data_sectors = length;
	const char *p = params;
	uint64_t bs, nf;
	if (!parse_majmin(&p, &t->meta_major, &t->meta_minor, t->meta_dev, sizeof(t->meta_dev)) ||
	    !parse_majmin(&p, &t->data_major, &t->data_minor, t->data_dev, sizeof(t->data_dev)))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (!parse_u64(&p, &bs) || bs > UINT32_MAX)
		return -EINVAL;
	t->opts.block_sectors = (uint32_t)bs;
	while (*p == ' ')
		p++;
	if (!parse_u64(&p, &t->opts.low_water_blocks))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	if (!parse_u64(&p, &nf))
		return -EINVAL;
	char w[32];
	for (uint64_t i = 0; i < nf; i++) {
		if (!word(&p, w, sizeof(w)))
			return -EINVAL;
		if (!strcasecmp(w, "skip_block_zeroing"))
			t->opts.skip_block_zeroing = true;
		else if (!strcasecmp(w, "ignore_discard"))
			t->opts.ignore_discard = true;
		else if (!strcasecmp(w, "no_discard_passdown"))
			t->opts.no_discard_passdown = true;
		else if (!strcasecmp(w, "read_only"))
			t->opts.read_only = true;
		else if (!strcasecmp(w, "error_if_no_space"))
			t->opts.error_if_no_space = true;
		else
			return -EINVAL;
	}
	return 0;
}

/* A thin table as dm-thin's thin_status() prints it (STATUSTYPE_TABLE): the pool and the
 * origin as "maj:min", the id in decimal. */
int tdm_parse_thin_params(const char *params, struct tdm_thin_table *t)
{
	memset(t, 0, sizeof(*t));
	const char *p = params;
	char dev[32];
	if (!parse_majmin(&p, &t->pool_major, &t->pool_minor, dev, sizeof(dev)) || *p != ' ')
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (!parse_u64(&p, &t->id) || (*p && *p != ' ' && *p != '\n'))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (*p && *p != '\n') {
		if (!parse_majmin(&p, &t->origin_major, &t->origin_minor, dev, sizeof(dev)))
			return -EINVAL;
		t->has_origin = true;
	}
	while (*p == ' ' || *p == '\n')
		p++;
	return *p ? -EINVAL : 0;
}

/* ---- table builders ---- */

int tdm_pool_params(const char *meta_dev, const char *data_dev, const struct thinp_pool_opts *o,
                    char *buf, size_t len)
{
	/* the kernel takes at most 4 feature args; no_discard_passdown is moot under
	 * ignore_discard, which leaves at most 4 */
	const char *feat[5];
	unsigned nf = 0;
	if (o->skip_block_zeroing)
		feat[nf++] = "skip_block_zeroing";
	if (o->ignore_discard)
		feat[nf++] = "ignore_discard";
	else if (o->no_discard_passdown)
		feat[nf++] = "no_discard_passdown";
	if (o->read_only)
		feat[nf++] = "read_only";
	if (o->error_if_no_space)
		feat[nf++] = "error_if_no_space";
	int n = snprintf(buf, len, "%s %s %u %llu %u", meta_dev, data_dev,
	                 o->block_sectors ? o->block_sectors : 128,
	                 (unsigned long long)o->low_water_blocks, nf);
	for (unsigned i = 0; i < nf && n >= 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, " %s", feat[i]);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int tdm_thin_params(uint32_t pool_major, uint32_t pool_minor, uint64_t id, char *buf,
                    size_t len)
{
	int n = snprintf(buf, len, "%u:%u %llu", pool_major, pool_minor, (unsigned long long)id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
