/* The two printed forms of a plan (plan_report.h). */
#include "plan/plan_report.h"

#include <math.h>

#include "plan/plan_meta.h"

static const char *event_text(enum plan_event_kind k)
{
	switch (k) {
	case PLAN_EV_LOW_WATER:
		return "dm-thin low-water event (free data <= low_water_blocks)";
	case PLAN_EV_AUTOEXTEND_DATA:
		return "LVM autoextends the data LV";
	case PLAN_EV_AUTOEXTEND_META:
		return "LVM autoextends the metadata LV";
	case PLAN_EV_VG_FULL:
		return "autoextend fails: the VG has too little free space";
	case PLAN_EV_MIN_FREE_DATA:
		return "Docker refuses creates: data below dm.min_free_space";
	case PLAN_EV_MIN_FREE_META:
		return "Docker refuses creates: metadata below dm.min_free_space";
	case PLAN_EV_DATA_FULL:
		return "the pool's data is full";
	case PLAN_EV_META_FULL:
		return "the pool's metadata is full";
	}
	return "?";
}

static double gib(double b)
{
	return b / (1 << 30);
}

void plan_print_text(FILE *f, const struct plan_report *p)
{
	const struct plan_spec *s = p->spec;
	const struct plan_result *r = p->result;
	const struct plan_advice *a = p->advice;
	const struct plan_point *end = &r->pts[r->nr_pts - 1];
	double bs = (double)s->block_size;
	fprintf(f, "Capacity plan for %s\n\n", p->spec_path);
	fprintf(f,
	        "Workload: %llu image(s) x %llu layer(s) of %.2f GiB; %llu container(s) per "
	        "image, each writing %.2f GiB; %.0f%% updates to image data; churn %.2f "
	        "container(s)/h; %.2f h in steps of %.2f min.\n",
	        (unsigned long long)s->images, (unsigned long long)s->layers_per_image,
	        gib((double)s->layer_size), (unsigned long long)s->containers_per_image,
	        gib((double)s->container_writes), s->update_fraction * 100, s->churn_per_hour,
	        s->duration_h, s->step_h * 60);
	fprintf(f,
	        "Pool: %llu KiB blocks, zeroing %s, data %.2f GiB (%.0f blocks), metadata "
	        "%.2f GiB (%.0f blocks).\n\n",
	        (unsigned long long)(s->block_size >> 10), s->zeroing ? "on" : "off",
	        gib((double)s->data_size), r->pts[0].data_total, gib((double)s->metadata_size),
	        r->pts[0].meta_total);
	fprintf(f, "Predicted usage          start        peak         end\n");
	fprintf(f, "  data blocks      %11.0f %11.0f %11.0f  (%.2f GiB at the peak)\n",
	        r->pts[0].data_used, r->peak_data, end->data_used, gib(r->peak_data * bs));
	fprintf(f, "  metadata blocks  %11.0f %11.0f %11.0f  (status counts, reserve of %.0f in)\n",
	        r->pts[0].meta_used, r->peak_meta + r->parts_at_peak.reserve, end->meta_used,
	        r->parts_at_peak.reserve);
	fprintf(f, "  thin devices     %11.0f %11.0f %11.0f\n", r->pts[0].thins, r->peak_thins,
	        end->thins);
	if (r->peak_demand > r->peak_data)
		fprintf(f,
		        "  the workload wants %.0f data blocks (%.2f GiB) at its peak: %.2f GiB more "
		        "than the pool ever holds\n",
		        r->peak_demand, gib(r->peak_demand * bs),
		        gib((r->peak_demand - r->peak_data) * bs));
	const struct plan_meta_parts *m = &r->parts_at_peak;
	fprintf(f,
	        "  metadata at the peak: superblock %.0f, space maps %.0f, top-level tree "
	        "%.0f, details tree %.0f, image layers %.0f, containers %.0f, overflow %.0f\n",
	        m->superblock, m->space_maps, m->top_level, m->details, m->images, m->containers,
	        m->overflow);
	fprintf(f,
	        "  IO: %.2f GiB written by containers, %.2f GiB copied by copy-on-write, "
	        "%.2f GiB of zeroing\n\n",
	        gib(r->bytes_written), gib(r->copy_bytes), gib(r->zero_bytes));
	fprintf(f, "Events\n");
	if (!r->nr_ev)
		fprintf(f, "  none within %.2f h\n", s->duration_h);
	for (unsigned i = 0; i < r->nr_ev; i++) {
		const struct plan_event *e = &r->ev[i];
		fprintf(f, "  %8.2f h  %s", e->t_h, event_text(e->kind));
		if (e->kind == PLAN_EV_AUTOEXTEND_DATA || e->kind == PLAN_EV_AUTOEXTEND_META)
			fprintf(f, ": %.0f -> %.0f blocks", e->before, e->after);
		else if (e->kind == PLAN_EV_MIN_FREE_DATA || e->kind == PLAN_EV_MIN_FREE_META)
			fprintf(f, " (minimum %.0f free blocks)", e->after);
		fputc('\n', f);
	}
	if (s->autoextend_threshold < 100)
		fprintf(f, "  VG free space left: %.2f GiB\n", gib(r->vg_free_left));
	fprintf(f, "\nRecommendations\n");
	fprintf(f, "  block size: %s\n", a->reason_block);
	fprintf(f, "  metadata size: %s\n", a->reason_meta);
	fprintf(f, "  candidates:    block   peak data GiB   peak metadata blocks\n");
	for (unsigned i = 0; i < PLAN_CANDIDATES; i++)
		fprintf(f, "              %5llu KiB %15.2f %22.0f\n",
		        (unsigned long long)(a->cand[i].block_size >> 10),
		        gib(a->cand[i].peak_data_bytes), a->cand[i].peak_meta_blocks);
	fprintf(f, "\nMetadata size, %llu KiB blocks, %.2f GiB pool, %.0f thins\n",
	        (unsigned long long)(a->block_size >> 10), gib((double)s->data_size),
	        r->peak_thins);
	fprintf(f, "  our model (peak, no headroom): %.1f MiB\n",
	        a->meta_peak_blocks * PLAN_META_BLOCK / (1 << 20));
	if (p->tms_bytes >= 0)
		fprintf(f, "  thin_metadata_size:            %.1f MiB  (%s)\n",
		        p->tms_bytes / (1 << 20), p->tms_command);
	else
		fprintf(f, "  thin_metadata_size:            not run (%s)\n", p->tms_error);
	if (p->chart_path)
		fprintf(f, "\nChart: %s\n", p->chart_path);
}

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Whole numbers print as such; JSON has no infinity, none arises. */
static void jnum(FILE *f, double v)
{
	if (v == floor(v) && fabs(v) < 9e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

#define KV(name, v) (fprintf(f, "\"%s\": ", name), jnum(f, v))

void plan_print_json(FILE *f, const struct plan_report *p)
{
	const struct plan_spec *s = p->spec;
	const struct plan_result *r = p->result;
	const struct plan_advice *a = p->advice;
	fprintf(f, "{\"spec\": ");
	jstr(f, p->spec_path);
	fprintf(f, ",\n \"pool\": {");
	KV("block_size", (double)s->block_size), fputs(", ", f);
	fprintf(f, "\"zeroing\": %s, ", s->zeroing ? "true" : "false");
	KV("data_size", (double)s->data_size), fputs(", ", f);
	KV("metadata_size", (double)s->metadata_size), fputs(", ", f);
	KV("data_blocks", r->pts[0].data_total), fputs(", ", f);
	KV("metadata_blocks", r->pts[0].meta_total), fputs(", ", f);
	KV("data_size_end", r->data_size_end), fputs(", ", f);
	KV("metadata_size_end", r->meta_size_end), fputs(", ", f);
	KV("vg_free_left", r->vg_free_left);
	fprintf(f, "},\n \"peak\": {");
	KV("data_blocks", r->peak_data), fputs(", ", f);
	KV("data_demand_blocks", r->peak_demand), fputs(", ", f);
	KV("metadata_blocks", r->peak_meta), fputs(", ", f);
	KV("metadata_blocks_status", r->peak_meta + r->parts_at_peak.reserve), fputs(", ", f);
	KV("thins", r->peak_thins);
	const struct plan_meta_parts *m = &r->parts_at_peak;
	fprintf(f, ", \"metadata_parts\": {");
	KV("superblock", m->superblock), fputs(", ", f);
	KV("space_maps", m->space_maps), fputs(", ", f);
	KV("top_level", m->top_level), fputs(", ", f);
	KV("details", m->details), fputs(", ", f);
	KV("images", m->images), fputs(", ", f);
	KV("containers", m->containers), fputs(", ", f);
	KV("overflow", m->overflow), fputs(", ", f);
	KV("reserve", m->reserve);
	fprintf(f, "}},\n \"io\": {");
	KV("bytes_written", r->bytes_written), fputs(", ", f);
	KV("copy_bytes", r->copy_bytes), fputs(", ", f);
	KV("zero_bytes", r->zero_bytes);
	fprintf(f, "},\n \"events\": [");
	for (unsigned i = 0; i < r->nr_ev; i++) {
		fprintf(f, "%s{\"event\": \"%s\", ", i ? ", " : "", plan_event_name(r->ev[i].kind));
		KV("hours", r->ev[i].t_h), fputs(", ", f);
		KV("before", r->ev[i].before), fputs(", ", f);
		KV("after", r->ev[i].after);
		fputc('}', f);
	}
	fprintf(f, "],\n \"recommendation\": {");
	KV("block_size", (double)a->block_size), fputs(", ", f);
	KV("metadata_size", (double)a->metadata_size), fputs(", ", f);
	KV("metadata_peak_blocks", a->meta_peak_blocks);
	fputs(", \"block_size_reason\": ", f);
	jstr(f, a->reason_block);
	fputs(", \"metadata_size_reason\": ", f);
	jstr(f, a->reason_meta);
	fputs(", \"candidates\": [", f);
	for (unsigned i = 0; i < PLAN_CANDIDATES; i++) {
		fprintf(f, "%s{", i ? ", " : "");
		KV("block_size", (double)a->cand[i].block_size), fputs(", ", f);
		KV("peak_data_bytes", a->cand[i].peak_data_bytes), fputs(", ", f);
		KV("peak_metadata_blocks", a->cand[i].peak_meta_blocks), fputs(", ", f);
		KV("zero_bytes", a->cand[i].zero_bytes), fputs(", ", f);
		KV("copy_bytes", a->cand[i].copy_bytes);
		fputc('}', f);
	}
	fprintf(f, "]},\n \"thin_metadata_size\": {\"bytes\": ");
	if (p->tms_bytes >= 0)
		jnum(f, p->tms_bytes);
	else
		fputs("null", f);
	fputs(", \"command\": ", f);
	jstr(f, p->tms_command);
	fputs(", \"error\": ", f);
	if (p->tms_error)
		jstr(f, p->tms_error);
	else
		fputs("null", f);
	fputs("},\n \"chart\": ", f);
	if (p->chart_path)
		jstr(f, p->chart_path);
	else
		fputs("null", f);
	fputs(",\n \"series\": [", f);
	for (size_t i = 0; i < r->nr_pts; i++) {
		const struct plan_point *q = &r->pts[i];
		fprintf(f, "%s\n  {", i ? "," : "");
		KV("hours", q->t_h), fputs(", ", f);
		KV("data_used", q->data_used), fputs(", ", f);
		KV("data_total", q->data_total), fputs(", ", f);
		KV("metadata_used", q->meta_used), fputs(", ", f);
		KV("metadata_total", q->meta_total), fputs(", ", f);
		KV("thins", q->thins);
		fputc('}', f);
	}
	fputs("]}\n", f);
}
