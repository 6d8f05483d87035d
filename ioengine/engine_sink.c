/* What a job leaves behind: its thinp_stats file (shared by the jobs of one
 * process naming the same file, merged, rewritten as each ends) and a few
 * summary lines. The sinks hang off the pool registry and are guarded by its
 * lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

/* the stats file's layout version, its "schema" field (bump it when a field changes meaning
 * or moves; readers such as ci/gate check it) */
#define THINP_STATS_SCHEMA 1

/* thinp_stats with %n replaced by the job name (and %% by %). */
static char *expand_stats_path(const char *tmpl, const char *name)
{
	size_t n = strlen(tmpl) + 1;
	for (const char *p = tmpl; (p = strstr(p, "%n")); p += 2)
		n += strlen(name);
	char *out = malloc(n), *q = out;
	if (!out)
		return NULL;
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '%' && p[1] == 'n') {
			q = stpcpy(q, name);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			*q++ = '%';
			p++;
		} else {
			*q++ = *p;
		}
	}
	*q = '\0';
	return out;
}

static void add_counters(struct thinp_class_stats *a, const struct thinp_class_stats *now,
                         const struct thinp_class_stats *base)
{
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		a[k].ops += now[k].ops - base[k].ops;
		a[k].bytes_requested += now[k].bytes_requested - base[k].bytes_requested;
		a[k].data_bytes_read += now[k].data_bytes_read - base[k].data_bytes_read;
		a[k].data_bytes_written += now[k].data_bytes_written - base[k].data_bytes_written;
		a[k].data_bytes_zeroed += now[k].data_bytes_zeroed - base[k].data_bytes_zeroed;
		a[k].meta_bytes_read += now[k].meta_bytes_read - base[k].meta_bytes_read;
		a[k].meta_bytes_written += now[k].meta_bytes_written - base[k].meta_bytes_written;
	}
}

/* Attach the job to its statistics file (registry lock held). Called after
 * thinp_prefill, so the prefill is not in the pool's counters. */
int sink_attach(struct tjob *j)
{
	char *path = expand_stats_path(j->o->stats_path, j->td->o.name ? j->td->o.name : "");
	if (!path)
		return job_fail(j->td, ENOMEM, "out of memory");
	struct tsink *s;
	for (s = thinp_pool_registry.sinks; s; s = s->next)
		if (!strcmp(s->path, path))
			break;
	if (s) {
		free(path);
	} else {
		s = calloc(1, sizeof(*s));
		if (!s) {
			free(path);
			return job_fail(j->td, ENOMEM, "out of memory");
		}
		s->path = path;
		s->tail = &s->jobs;
		s->next = thinp_pool_registry.sinks;
		thinp_pool_registry.sinks = s;
	}
	if (!s->pool) {
		s->pool = j->tp->pool;
		thinp_pool_stats(s->pool, s->base);
		if (j->tp->cfg.losetup) {
			s->loops = true;
			s->loop_names = j->tp->loops;
		}
		loops_read(&s->loop_names, s->loop_base);
	}
	/* the first job in: the IO phase starts (open and prefill are behind it) */
	if (!s->active)
		phase_begin(&s->phase, j->tp->data_path, j->tp->meta_path,
		            j->tp->cfg.losetup ? &j->tp->loops : &(struct pool_loops){ 0 });
	s->active++;
	j->sink = s;
	return 0;
}

/* The loop devices' counters of the interval that ends (registry lock held). */
static void bank_loops(struct tsink *s)
{
	struct loop_counters now[LOOP_NR];
	loops_read(&s->loop_names, now);
	loops_add(s->loop_acc, now, s->loop_base);
}

/* The job ends (registry lock held, pool still open). */
static void sink_detach(struct tjob *j)
{
	struct tsink *s = j->sink;
	if (--s->active == 0 && s->pool) {
		struct thinp_class_stats now[THINP_NR_CLASSES];
		thinp_pool_stats(s->pool, now);
		add_counters(s->acc, now, s->base);
		bank_loops(s);
		s->pool = NULL;
	}
	j->sink = NULL;
}

/* POOL is about to close (registry lock held): a sink still counting it
 * (jobs of other pools feed the same file) banks what it counted. */
void sinks_pool_closing(struct thinp_pool *pool)
{
	for (struct tsink *s = thinp_pool_registry.sinks; s; s = s->next) {
		if (s->pool != pool)
			continue;
		struct thinp_class_stats now[THINP_NR_CLASSES];
		thinp_pool_stats(pool, now);
		add_counters(s->acc, now, s->base);
		bank_loops(s);
		s->pool = NULL;
	}
}

/* Sinks live as long as the engine is loaded. */
__attribute__((destructor)) static void free_sinks(void)
{
	while (thinp_pool_registry.sinks) {
		struct tsink *s = thinp_pool_registry.sinks;
		thinp_pool_registry.sinks = s->next;
		while (s->jobs) {
			struct sink_job *sj = s->jobs;
			s->jobs = sj->next;
			free(sj->name);
			free(sj);
		}
		free(s->path);
		free(s);
	}
}

static const char *pool_mode_name(enum thinp_pool_mode m)
{
	switch (m) {
	case THINP_MODE_WRITE:
		return "write";
	case THINP_MODE_OUT_OF_DATA_SPACE:
		return "out_of_data_space";
	case THINP_MODE_READ_ONLY:
		return "read_only";
	default:
		return "fail";
	}
}

/* Rewrite the sink's file with everything merged so far (registry lock held).
 * Written to a temporary name and renamed, so readers never see half a file. */
static int write_sink(struct tjob *j, struct tsink *s)
{
	struct tpool *tp = j->tp;
	size_t n = strlen(s->path) + 16;
	char *tmp = malloc(n);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, n, "%s.tmp%d", s->path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		int e = errno;
		free(tmp);
		return -e;
	}
	struct thinp_pool_status st;
	memset(&st, 0, sizeof(st));
	thinp_pool_status(tp->pool, true, &st);
	char line[512] = "";
	thinp_pool_status_line(tp->pool, true, line, sizeof(line));
	/* block-level counters: finished intervals plus the running one */
	struct thinp_class_stats now[THINP_NR_CLASSES], delta[THINP_NR_CLASSES];
	memcpy(delta, s->acc, sizeof(delta));
	struct loop_counters loops[LOOP_NR];
	memcpy(loops, s->loop_acc, sizeof(loops));
	if (s->pool) {
		thinp_pool_stats(s->pool, now);
		add_counters(delta, now, s->base);
		struct loop_counters lnow[LOOP_NR];
		loops_read(&s->loop_names, lnow);
		loops_add(loops, lnow, s->loop_base);
	}

	fprintf(f, "{\n  \"schema\": %d,\n  \"engine\": \"thinp\",\n  \"built_against\": ",
	        THINP_STATS_SCHEMA);
	ts_json_string(f, THINP_FIO_VERSION);
	fprintf(f, ",\n  \"latency\": \"ns inside the libthinp call per IO; an IO is classed by "
	           "the dearest outcome among the pool blocks it touched\",\n");
	fprintf(f, "  \"pool\": {\n    \"data\": ");
	ts_json_string(f, tp->data_path);
	fprintf(f, ",\n    \"metadata\": ");
	ts_json_string(f, tp->meta_path);
	fprintf(f,
	        ",\n    \"mode\": \"%s\",\n    \"losetup\": %s,\n    \"block_size\": %llu,\n    \"zeroing\": %s,\n"
	        "    \"discard\": \"%s\",\n    \"no_space\": \"%s\",\n"
	        "    \"commit_interval_ms\": %u,\n",
	        mode_names[tp->cfg.mode], tp->cfg.losetup ? "true" : "false", tp->cfg.block_size,
	        tp->cfg.zero ? "true" : "false", discard_names[tp->cfg.discard],
	        no_space_names[tp->cfg.no_space], tp->cfg.commit_interval);
	fprintf(f,
	        "    \"pool_mode\": \"%s\",\n    \"transaction_id\": %llu,\n"
	        "    \"used_data_blocks\": %llu,\n    \"total_data_blocks\": %llu,\n"
	        "    \"used_metadata_blocks\": %llu,\n    \"total_metadata_blocks\": %llu,\n"
	        "    \"status\": ",
	        pool_mode_name(st.mode), (unsigned long long)st.transaction_id,
	        (unsigned long long)st.used_data_blocks, (unsigned long long)st.total_data_blocks,
	        (unsigned long long)st.used_meta_blocks, (unsigned long long)st.total_meta_blocks);
	ts_json_string(f, line);
	fprintf(f, ",\n    \"loop_devices\": ");
	loops_json(f, s->loops, &s->loop_names, loops);
	fprintf(f, ",\n    \"io_phase\": ");
	phase_json(f, &s->phase);
	fprintf(f, ",\n    \"blocks\": ");
	ts_json_pool_classes(f, delta, 6);
	fprintf(f, "\n  },\n  \"errors\": ");
	ts_json_errors(f, &s->total);
	fprintf(f, ",\n  \"classes\": ");
	ts_json_classes(f, &s->total, 4);
	fprintf(f, ",\n  \"jobs\": [");
	for (struct sink_job *sj = s->jobs; sj; sj = sj->next) {
		fprintf(f, "%s\n    {\n      \"name\": ", sj == s->jobs ? "" : ",");
		ts_json_string(f, sj->name);
		fprintf(f,
		        ",\n      \"jobnum\": %u,\n      \"thin_dev\": %llu,\n      \"thin_size\": %llu,\n"
		        "      \"ios\": %llu,\n      \"errors\": ",
		        sj->jobnum, sj->dev, sj->size, (unsigned long long)ts_set_ios(&sj->s));
		ts_json_errors(f, &sj->s);
		fprintf(f, ",\n      \"classes\": ");
		ts_json_classes(f, &sj->s, 8);
		fprintf(f, "\n    }");
	}
	fprintf(f, "\n  ]\n}\n");
	int r = 0;
	if (ferror(f))
		r = -EIO;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, s->path))
		r = -errno;
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

/* A few lines per job: where its IOs went and what they cost. */
static void print_summary(struct tjob *j, const struct ts_set *s)
{
	char buf[4096];
	size_t len = 0;
#define APPEND(...)                                                                         \
	do {                                                                                \
		if (len < sizeof(buf))                                                      \
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__); \
	} while (0)
	uint64_t errs = 0;
	for (unsigned d = 0; d < TS_NR_ERR_DIRS; d++)
		errs += s->errors[d];
	APPEND("thinp: job '%s' (%u): thin %llu (%llu bytes): %llu IOs, %llu errors\n",
	       j->td->o.name, j->td->thread_number, j->o->dev_id, j->thin_size,
	       (unsigned long long)ts_set_ios(s), (unsigned long long)errs);
	for (unsigned k = 0; k < THINP_NR_CLASSES; k++) {
		const struct ts_class *c = &s->c[k];
		if (!c->ios)
			continue;
		char p50[16], p99[16], mx[16], dw[16], dz[16], dr[16], mw[16];
		ts_fmt_ns(p50, sizeof(p50), ts_hist_percentile(&c->lat, 50));
		ts_fmt_ns(p99, sizeof(p99), ts_hist_percentile(&c->lat, 99));
		ts_fmt_ns(mx, sizeof(mx), c->lat.max);
		ts_fmt_bytes(dr, sizeof(dr), c->data_bytes_read);
		ts_fmt_bytes(dw, sizeof(dw), c->data_bytes_written);
		ts_fmt_bytes(dz, sizeof(dz), c->data_bytes_zeroed);
		ts_fmt_bytes(mw, sizeof(mw), c->meta_bytes_written);
		APPEND("thinp:   %-21s %9llu ios  p50 %-8s p99 %-8s max %-8s data r %s w %s z %s  "
		       "meta w %s\n",
		       thinp_class_name((enum thinp_class)k), (unsigned long long)c->ios, p50, p99,
		       mx, dr, dw, dz, mw);
	}
	if (j->sink)
		APPEND("thinp:   statistics in %s\n", j->sink->path);
#undef APPEND
	note("%s", buf);
}

void sink_job_end(struct tjob *j)
{
	struct thread_data *td = j->td;
	struct ts_set *total = calloc(1, sizeof(*total));
	if (!total)
		return;
	for (unsigned int i = 0; i <= j->nworkers; i++)
		ts_set_merge(total, &j->stats[i]);
	pthread_mutex_lock(&thinp_pool_registry.lock);
	/* the last job's IOs and fio's flushes are done: the IO phase ends before the commit */
	if (j->sink && j->sink->active == 1)
		phase_end(&j->sink->phase);
	/* The last job out commits now rather than in thinp_pool_close,
	 * so the final commit's cost is in the statistics. */
	if (j->tp->refs == 1 && !j->tp->cfg.read_only)
		(void)thinp_pool_commit(j->tp->pool);
	if (j->sink) {
		struct sink_job *sj = calloc(1, sizeof(*sj));
		if (sj) {
			sj->name = strdup(td->o.name ? td->o.name : "");
			sj->jobnum = td->thread_number;
			sj->dev = j->o->dev_id;
			sj->size = j->thin_size;
			sj->s = *total;
			*j->sink->tail = sj;
			j->sink->tail = &sj->next;
		}
		ts_set_merge(&j->sink->total, total);
		int r = write_sink(j, j->sink);
		if (r)
			log_err("thinp: job '%s': cannot write %s: %s\n", td->o.name, j->sink->path,
			        strerror(-r));
	}
	if (j->thin)
		print_summary(j, total);
	if (j->sink)
		sink_detach(j);
	pthread_mutex_unlock(&thinp_pool_registry.lock);
	free(total);
}
