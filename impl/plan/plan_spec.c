/* Reading a spec document into struct plan_spec: every key known, every value checked against
 * what the kernel, LVM and Docker accept, each error naming the key, its line and the fix. */
#include "plan/plan_spec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum vtype {
	V_COUNT,
	V_SIZE,
	V_FRACTION,
	V_FLOAT,
	V_PERCENT,
	V_BOOL,
	V_HOURS,
	V_PATTERN
};

struct key {
	const char *name;
	enum vtype type;
	size_t off;
};

#define K(n, t, f)                                  \
	{                                           \
		n, t, offsetof(struct plan_spec, f) \
	}
static const struct key workload_keys[] = {
	K("images", V_COUNT, images),
	K("layers_per_image", V_COUNT, layers_per_image),
	K("layer_size", V_SIZE, layer_size),
	K("containers_per_image", V_COUNT, containers_per_image),
	K("container_writes", V_SIZE, container_writes),
	{ "write_mix", V_COUNT, 0 }, /* a list, read by mix() */
	K("write_span", V_SIZE, write_span),
	K("update_fraction", V_FRACTION, update_fraction),
	K("churn_per_hour", V_FLOAT, churn_per_hour),
	K("duration", V_HOURS, duration_h),
	K("step", V_HOURS, step_h),
	{ NULL, 0, 0 },
};
static const struct key pool_keys[] = {
	K("block_size", V_SIZE, block_size),
	K("zeroing", V_BOOL, zeroing),
	K("data_size", V_SIZE, data_size),
	K("metadata_size", V_SIZE, metadata_size),
	K("low_water_blocks", V_COUNT, low_water_blocks),
	{ NULL, 0, 0 },
};
static const struct key lvm_keys[] = {
	K("autoextend_threshold", V_PERCENT, autoextend_threshold),
	K("autoextend_percent", V_PERCENT, autoextend_percent),
	K("vg_free", V_SIZE, vg_free),
	K("extent_size", V_SIZE, extent_size),
	{ NULL, 0, 0 },
};
/* loopdatasize/loopmetadatasize land in the pool's sizes (read by docker_sizes()) */
static const struct key docker_keys[] = {
	K("min_free_space", V_PERCENT, min_free_space),
	K("basesize", V_SIZE, basesize),
	{ "loopdatasize", V_SIZE, 0 },
	{ "loopmetadatasize", V_SIZE, 0 },
	{ NULL, 0, 0 },
};
#undef K

struct reader {
	char *err;
	size_t errlen;
};

static int bad(struct reader *r, const struct pdoc *v, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int bad(struct reader *r, const struct pdoc *v, const char *path, const char *fmt, ...)
{
	int n = snprintf(r->err, r->errlen, "line %d: %s: ", v->key ? v->key_line : v->line, path);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < r->errlen)
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

int plan_parse_size(const char *s, uint64_t *out)
{
	while (*s == ' ')
		s++;
	if (*s == '-')
		return -2;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (*end | 0x20) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	case 'p':
		shift = 50;
		break;
	default:
		break;
	}
	if (shift) {
		end++;
		if ((*end | 0x20) == 'i' && (end[1] | 0x20) == 'b')
			end += 2;
		else if ((*end | 0x20) == 'b')
			end++;
	} else if ((*end | 0x20) == 'b') {
		end++;
	}
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	if (!*s)
		return -1;
	errno = 0;
	char *end;
	double d = strtod(s, &end);
	if (errno || *end || !isfinite(d))
		return -1;
	*out = d;
	return 0;
}

int plan_parse_hours(const char *s, double *out)
{
	size_t n = strlen(s);
	if (!n)
		return -1;
	double scale = 1;
	char num[64];
	if (n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's':
		scale = 1.0 / 3600;
		num[n - 1] = 0;
		break;
	case 'm':
		scale = 1.0 / 60;
		num[n - 1] = 0;
		break;
	case 'h':
		num[n - 1] = 0;
		break;
	case 'd':
		scale = 24;
		num[n - 1] = 0;
		break;
	default:
		break;
	}
	double v;
	if (parse_double(num, &v))
		return -1;
	*out = v * scale;
	return 0;
}

/* One scalar V of key PATH into *DST as TYPE. */
static int scalar(struct reader *r, const struct pdoc *v, const char *path, enum vtype type,
                  void *dst)
{
	if (v->kind != PDOC_SCALAR)
		return bad(r, v, path, "expected a single value, found a %s",
		           v->kind == PDOC_MAP ? "mapping" : "list");
	const char *s = v->text;
	double d;
	uint64_t u;
	switch (type) {
	case V_COUNT:
		if (s[0] == '-')
			return bad(r, v, path, "%s is negative; give a count >= 0", s);
		if (plan_parse_size(s, &u) || strpbrk(s, "kKmMgGtTpPbB"))
			return bad(r, v, path, "'%s' is not a whole number", s);
		*(uint64_t *)dst = u;
		return 0;
	case V_SIZE: {
		int e = plan_parse_size(s, &u);
		if (e == -2)
			return bad(r, v, path, "%s is negative; sizes are bytes >= 0", s);
		if (e)
			return bad(r, v, path,
			           "'%s' is not a size; give bytes or k/m/g/t (binary): 64k, 10G",
			           s);
		*(uint64_t *)dst = u;
		return 0;
	}
	case V_FRACTION:
		if (parse_double(s, &d))
			return bad(r, v, path, "'%s' is not a number", s);
		if (d < 0 || d > 1)
			return bad(r, v, path, "%s is outside 0..1; give a fraction such as 0.25",
			           s);
		*(double *)dst = d;
		return 0;
	case V_FLOAT:
		if (parse_double(s, &d))
			return bad(r, v, path, "'%s' is not a number", s);
		if (d < 0)
			return bad(r, v, path, "%s is negative; give a number >= 0", s);
		*(double *)dst = d;
		return 0;
	case V_PERCENT: {
		char num[64];
		size_t n = strlen(s);
		if (n >= sizeof(num))
			return bad(r, v, path, "'%s' is not a percentage", s);
		memcpy(num, s, n + 1);
		if (n && num[n - 1] == '%')
			num[n - 1] = 0;
		if (parse_double(num, &d))
			return bad(r, v, path, "'%s' is not a percentage; give 0..100 (10 or 10%%)",
			           s);
		if (d < 0 || d > 100)
			return bad(r, v, path, "%s is outside 0..100", s);
		*(double *)dst = d;
		return 0;
	}
	case V_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
			*(bool *)dst = true;
		else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
			*(bool *)dst = false;
		else
			return bad(r, v, path, "'%s' is not a boolean; give true or false", s);
		return 0;
	case V_HOURS:
		if (s[0] == '-')
			return bad(r, v, path, "%s is negative; give a duration > 0", s);
		if (plan_parse_hours(s, &d) || d <= 0)
			return bad(r, v, path,
			           "'%s' is not a duration > 0; give 90s, 30m, 24h or 7d (a bare "
			           "number is hours)",
			           s);
		*(double *)dst = d;
		return 0;
	case V_PATTERN:
		if (!strcmp(s, "random"))
			*(enum plan_pattern *)dst = PLAN_RANDOM;
		else if (!strcmp(s, "sequential"))
			*(enum plan_pattern *)dst = PLAN_SEQUENTIAL;
		else
			return bad(r, v, path, "'%s' is not a pattern; give random or sequential",
			           s);
		return 0;
	}
	return -1;
}

static int unknown(struct reader *r, const struct pdoc *v, const char *path, const struct key *keys)
{
	char known[512] = "";
	size_t n = 0;
	for (const struct key *k = keys; k->name && n < sizeof(known); k++)
		n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "", k->name);
	return bad(r, v, path, "unknown key; the keys here are: %s", known);
}

static int mix(struct reader *r, const struct pdoc *list, struct plan_spec *spec)
{
	if (list->kind != PDOC_LIST)
		return bad(r, list, "workload.write_mix",
		           "expected a list of {size, share, pattern} items");
	spec->nr_mix = 0;
	double total = 0;
	for (const struct pdoc *it = list->child; it; it = it->next) {
		char path[64];
		snprintf(path, sizeof(path), "workload.write_mix[%u]", spec->nr_mix);
		if (it->kind != PDOC_MAP)
			return bad(r, it, path, "expected a mapping with size, share and pattern");
		if (spec->nr_mix == PLAN_MAX_MIX)
			return bad(r, it, path, "more than %d entries", PLAN_MAX_MIX);
		struct plan_write *w = &spec->mix[spec->nr_mix];
		*w = (struct plan_write){ 4096, 1.0, PLAN_RANDOM };
		bool has_share = false;
		for (const struct pdoc *f = it->child; f; f = f->next) {
			char fp[96];
			snprintf(fp, sizeof(fp), "%s.%s", path, f->key);
			int e;
			if (!strcmp(f->key, "size"))
				e = scalar(r, f, fp, V_SIZE, &w->size);
			else if (!strcmp(f->key, "share"))
				e = scalar(r, f, fp, V_FRACTION, &w->share), has_share = true;
			else if (!strcmp(f->key, "pattern"))
				e = scalar(r, f, fp, V_PATTERN, &w->pattern);
			else
				e = bad(r, f, fp,
				        "unknown key; the keys here are: size, share, pattern");
			if (e)
				return e;
			if (!strcmp(f->key, "size") && (w->size < 512 || w->size % 512))
				return bad(r, f, fp, "%s is not a whole number of 512-byte sectors",
				           f->text);
		}
		if (!has_share && list->child->next)
			return bad(r, it, path, "share missing (several entries: each needs one)");
		total += w->share;
		spec->nr_mix++;
	}
	if (!spec->nr_mix)
		return bad(r, list, "workload.write_mix", "empty; give at least one entry");
	if (fabs(total - 1.0) > 1e-6)
		return bad(r, list, "workload.write_mix",
		           "the shares add up to %g; they must add up to 1", total);
	return 0;
}

static int section(struct reader *r, const struct pdoc *sec, const char *name,
                   const struct key *keys, struct plan_spec *spec, const struct pdoc **loop)
{
	if (sec->kind != PDOC_MAP)
		return bad(r, sec, name, "expected a mapping of keys");
	for (const struct pdoc *v = sec->child; v; v = v->next) {
		char path[96];
		snprintf(path, sizeof(path), "%s.%s", name, v->key);
		const struct key *k = keys;
		while (k->name && strcmp(k->name, v->key))
			k++;
		if (!k->name)
			return unknown(r, v, path, keys);
		int e;
		if (!strcmp(k->name, "write_mix"))
			e = mix(r, v, spec);
		else if (!strcmp(k->name, "loopdatasize"))
			e = scalar(r, v, path, V_SIZE, &spec->data_size), loop[0] = v;
		else if (!strcmp(k->name, "loopmetadatasize"))
			e = scalar(r, v, path, V_SIZE, &spec->metadata_size), loop[1] = v;
		else
			e = scalar(r, v, path, k->type, (char *)spec + k->off);
		if (e)
			return e;
	}
	return 0;
}

/* KEY's entry in MAP; NULL when MAP is not a mapping (reported by section()). */
static const struct pdoc *find(const struct pdoc *map, const char *key)
{
	if (!map || map->kind != PDOC_MAP)
		return NULL;
	for (const struct pdoc *v = map->child; v; v = v->next)
		if (!strcmp(v->key, key))
			return v;
	return NULL;
}

/* The checks across keys and against the kernel's limits. */
static int limits(struct reader *r, const struct pdoc *doc, struct plan_spec *s)
{
	const struct pdoc *pool = find(doc, "pool"), *wl = find(doc, "workload");
	const struct pdoc *at = find(pool, "block_size");
	if (s->block_size % PLAN_MIN_BLOCK || s->block_size < PLAN_MIN_BLOCK ||
	    s->block_size > PLAN_MAX_BLOCK)
		return bad(r, at ? at : doc, "pool.block_size",
		           "%llu bytes: the kernel takes 64 KiB to 1 GiB in multiples of 64 KiB "
		           "(64k, 128k, ... 1G)",
		           (unsigned long long)s->block_size);
	at = find(pool, "metadata_size");
	if (!at)
		at = find(find(doc, "docker"), "loopmetadatasize");
	if (s->metadata_size > PLAN_MAX_METADATA)
		return bad(r, at ? at : doc,
		           at && at->key[0] == 'l' ? "docker.loopmetadatasize" :
		                                     "pool.metadata_size",
		           "%s is over the 16 GiB limit of thin-pool metadata; give 16G or less",
		           at ? at->text : "");
	if (s->metadata_size < (64u << 10))
		return bad(r, at ? at : doc, "pool.metadata_size",
		           "%llu bytes is too small; give at least 64k",
		           (unsigned long long)s->metadata_size);
	at = find(pool, "data_size");
	if (s->data_size < s->block_size)
		return bad(r, at ? at : doc, "pool.data_size",
		           "%llu bytes is less than one block (%llu bytes)",
		           (unsigned long long)s->data_size, (unsigned long long)s->block_size);
	if (s->step_h > s->duration_h)
		return bad(r, find(wl, "step") ? find(wl, "step") : doc, "workload.step",
		           "longer than workload.duration");
	if (!s->extent_size || s->extent_size % 512) {
		at = find(find(doc, "lvm"), "extent_size");
		return bad(r, at ? at : doc, "lvm.extent_size",
		           "must be a whole number of 512-byte sectors > 0 (LVM's default: 4M)");
	}
	return 0;
}

int plan_spec_read(const struct pdoc *doc, struct plan_spec *s, char *err, size_t errlen)
{
	struct reader r = { err, errlen };
	*s = (struct plan_spec){
		.images = 1,
		.layers_per_image = 1,
		.layer_size = 100ull << 20,
		.containers_per_image = 1,
		.container_writes = 100ull << 20,
		.mix = { { 4096, 1.0, PLAN_RANDOM } },
		.nr_mix = 1,
		.duration_h = 24,
		.block_size = 64 << 10,
		.zeroing = true,
		/* Docker's loop-lvm defaults (docs/docker-driver.md) */
		.data_size = 100ull << 30,
		.metadata_size = 2ull << 30,
		.autoextend_threshold = 100,
		.autoextend_percent = 20,
		.extent_size = 4 << 20,
		.min_free_space = 10,
		.basesize = 10ull << 30,
	};
	const struct pdoc *loop[2] = { NULL, NULL }, *explicit[2];
	explicit[0] = find(find(doc, "pool"), "data_size");
	explicit[1] = find(find(doc, "pool"), "metadata_size");
	/* docker first: pool.data_size/metadata_size, when given, are read after it */
	static const char *order[] = { "docker", "workload", "lvm", "pool" };
	for (const struct pdoc *v = doc->child; v; v = v->next) {
		size_t i = 0;
		while (i < 4 && strcmp(order[i], v->key))
			i++;
		if (i == 4)
			return bad(
			        &r, v, v->key,
			        "unknown section; the sections are: workload, pool, lvm, docker");
	}
	static const struct key *keys[] = { docker_keys, workload_keys, lvm_keys, pool_keys };
	for (size_t i = 0; i < 4; i++) {
		const struct pdoc *sec = find(doc, order[i]);
		if (sec && section(&r, sec, order[i], keys[i], s, loop))
			return -1;
	}
	for (int i = 0; i < 2; i++)
		if (loop[i] && explicit[i] && strcmp(loop[i]->text, explicit[i] -> text))
			return bad(&r, explicit[i], i ? "pool.metadata_size" : "pool.data_size",
			           "differs from docker.%s (%s); give one of them",
			           i ? "loopmetadatasize" : "loopdatasize", loop[i]->text);
	if (!find(find(doc, "workload"), "write_span"))
		s->write_span = s->basesize;
	if (!find(find(doc, "workload"), "step"))
		s->step_h = s->duration_h / 1440;
	return limits(&r, doc, s);
}
