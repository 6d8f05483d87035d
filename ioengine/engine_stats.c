/* Per-class statistics of the thinp fio engine (see engine_stats.h). */
#include "engine_stats.h"

#include <string.h>

unsigned ts_bucket(uint64_t ns)
{
	if (ns < TS_SUB)
		return (unsigned)ns;
	unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* floor(log2 ns) >= TS_SUB_BITS */
	if (e >= TS_MAX_LOG2)
		return TS_NR_BUCKETS - 1;
	unsigned sub = (unsigned)(ns >> (e - TS_SUB_BITS)) & (TS_SUB - 1);
	return (e - TS_SUB_BITS + 1) * TS_SUB + sub;
}

uint64_t ts_bucket_lo(unsigned idx)
{
	if (idx < TS_SUB)
		return idx;
	unsigned e = idx / TS_SUB + TS_SUB_BITS - 1, sub = idx % TS_SUB;
	return (uint64_t)(TS_SUB + sub) << (e - TS_SUB_BITS);
}

uint64_t ts_bucket_hi(unsigned idx)
{
	if (idx >= TS_NR_BUCKETS - 1)
		return UINT64_MAX;
	return ts_bucket_lo(idx + 1) - 1;
}

void ts_hist_add(struct ts_hist *h, uint64_t ns)
{
	if (!h->count || ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
	h->count++;
	h->sum += ns;
	h->b[ts_bucket(ns)]++;
}

void ts_hist_merge(struct ts_hist *into, const struct ts_hist *from)
{
	if (!from->count)
		return;
	if (!into->count || from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	into->count += from->count;
	into->sum += from->sum;
	for (unsigned i = 0; i < TS_NR_BUCKETS; i++)
		into->b[i] += from->b[i];
}

uint64_t ts_hist_percentile(const struct ts_hist *h, double pct)
{
	if (!h->count)
		return 0;
	/* rank of the sample at PCT (1-based, rounded up), as fio's clat percentiles */
	double want = pct / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < TS_NR_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = ts_bucket_hi(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

void ts_record(struct ts_set *s, const struct thinp_io_result *res, uint64_t bytes, uint64_t ns)
{
	struct ts_class *c = &s->c[(unsigned)res->cls < THINP_NR_CLASSES ? res->cls : THINP_FLUSH];
	c->ios++;
	c->blocks += res->nr_blocks;
	c->bytes += bytes;
	c->data_bytes_read += res->cost.data_bytes_read;
	c->data_bytes_written += res->cost.data_bytes_written;
	c->data_bytes_zeroed += res->cost.data_bytes_zeroed;
	c->meta_bytes_read += res->cost.meta_bytes_read;
	c->meta_bytes_written += res->cost.meta_bytes_written;
	ts_hist_add(&c->lat, ns);
}

void ts_set_merge(struct ts_set *into, const struct ts_set *from)
{
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		struct ts_class *a = &into->c[k];
		const struct ts_class *b = &from->c[k];
		a->ios += b->ios;
		a->blocks += b->blocks;
		a->bytes += b->bytes;
		a->data_bytes_read += b->data_bytes_read;
		a->data_bytes_written += b->data_bytes_written;
		a->data_bytes_zeroed += b->data_bytes_zeroed;
		a->meta_bytes_read += b->meta_bytes_read;
		a->meta_bytes_written += b->meta_bytes_written;
		ts_hist_merge(&a->lat, &b->lat);
	}
	for (unsigned d = 0; d < TS_NR_ERR_DIRS; d++)
		into->errors[d] += from->errors[d];
}

uint64_t ts_set_ios(const struct ts_set *s)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++)
		n += s->c[k].ios;
	return n;
}

/* ---- JSON ---- */

void ts_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static const double pcts[] = { 50.0, 90.0, 99.0, 99.9 };
static const char *const pct_names[] = { "p50", "p90", "p99", "p99.9" };

static void json_hist(FILE *f, const struct ts_hist *h, int ind)
{
	fprintf(f, "{\n%*s\"count\": %llu,\n", ind, "", (unsigned long long)h->count);
	fprintf(f, "%*s\"min\": %llu,\n%*s\"max\": %llu,\n%*s\"mean\": %.1f,\n", ind, "",
	        (unsigned long long)(h->count ? h->min : 0), ind, "", (unsigned long long)h->max,
	        ind, "", h->count ? (double)h->sum / (double)h->count : 0.0);
	for (unsigned i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		fprintf(f, "%*s\"%s\": %llu,\n", ind, "", pct_names[i],
		        (unsigned long long)ts_hist_percentile(h, pcts[i]));
	/* non-empty buckets only: [lowest ns, highest ns (inclusive), count] */
	fprintf(f, "%*s\"buckets\": [", ind, "");
	const char *sep = "";
	for (unsigned i = 0; i < TS_NR_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		uint64_t hi = ts_bucket_hi(i);
		fprintf(f, "%s[%llu, %llu, %llu]", sep, (unsigned long long)ts_bucket_lo(i),
		        (unsigned long long)(hi == UINT64_MAX ? h->max : hi),
		        (unsigned long long)h->b[i]);
		sep = ", ";
	}
	fprintf(f, "]\n%*s}", ind - 2, "");
}

void ts_json_classes(FILE *f, const struct ts_set *s, int ind)
{
	fputs("{\n", f);
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		const struct ts_class *c = &s->c[k];
		int i2 = ind + 2;
		fprintf(f, "%*s\"%s\": {\n", ind, "", thinp_class_name((enum thinp_class)k));
		fprintf(f, "%*s\"ios\": %llu,\n%*s\"blocks\": %llu,\n%*s\"bytes\": %llu,\n", i2, "",
		        (unsigned long long)c->ios, i2, "", (unsigned long long)c->blocks, i2, "",
		        (unsigned long long)c->bytes);
		fprintf(f, "%*s\"data_bytes_read\": %llu,\n%*s\"data_bytes_written\": %llu,\n", i2,
		        "", (unsigned long long)c->data_bytes_read, i2, "",
		        (unsigned long long)c->data_bytes_written);
		fprintf(f, "%*s\"data_bytes_zeroed\": %llu,\n", i2, "",
		        (unsigned long long)c->data_bytes_zeroed);
		fprintf(f, "%*s\"meta_bytes_read\": %llu,\n%*s\"meta_bytes_written\": %llu,\n", i2,
		        "", (unsigned long long)c->meta_bytes_read, i2, "",
		        (unsigned long long)c->meta_bytes_written);
		fprintf(f, "%*s\"latency_ns\": ", i2, "");
		json_hist(f, &c->lat, i2 + 2);
		fprintf(f, "\n%*s}%s\n", ind, "", k + 1 < THINP_NR_CLASSES ? "," : "");
	}
	fprintf(f, "%*s}", ind - 2, "");
}

void ts_json_errors(FILE *f, const struct ts_set *s)
{
	fprintf(f, "{\"read\": %llu, \"write\": %llu, \"trim\": %llu, \"flush\": %llu}",
	        (unsigned long long)s->errors[TS_ERR_READ],
	        (unsigned long long)s->errors[TS_ERR_WRITE],
	        (unsigned long long)s->errors[TS_ERR_TRIM],
	        (unsigned long long)s->errors[TS_ERR_FLUSH]);
}

void ts_json_pool_classes(FILE *f, const struct thinp_class_stats st[THINP_NR_CLASSES], int ind)
{
	fputs("{\n", f);
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		const struct thinp_class_stats *c = &st[k];
		fprintf(f,
		        "%*s\"%s\": {\"ops\": %llu, \"bytes_requested\": %llu, \"data_bytes_read\": %llu, "
		        "\"data_bytes_written\": %llu, \"data_bytes_zeroed\": %llu, "
		        "\"meta_bytes_read\": %llu, \"meta_bytes_written\": %llu}%s\n",
		        ind, "", thinp_class_name((enum thinp_class)k), (unsigned long long)c->ops,
		        (unsigned long long)c->bytes_requested,
		        (unsigned long long)c->data_bytes_read,
		        (unsigned long long)c->data_bytes_written,
		        (unsigned long long)c->data_bytes_zeroed,
		        (unsigned long long)c->meta_bytes_read,
		        (unsigned long long)c->meta_bytes_written,
		        k + 1 < THINP_NR_CLASSES ? "," : "");
	}
	fprintf(f, "%*s}", ind - 2, "");
}

void ts_fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 10000)
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	else if (ns < 10000000)
		snprintf(buf, len, "%.1fus", (double)ns / 1e3);
	else if (ns < 10000000000ull)
		snprintf(buf, len, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.1fs", (double)ns / 1e9);
}

void ts_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f%s", v, units[u]);
}
