/* thinp plan SPEC: capacity planning from a workload spec (YAML or JSON): the predicted data
 * and metadata use over time, the events on the way, recommendations, thin_metadata_size's
 * answer beside ours, and a chart. The model is impl/plan/ (docs/capacity-planning.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_args.h"
#include "cli/cli_msg.h"
#include "cli/commands.h"
#include "plan/plan_advice.h"
#include "plan/plan_doc.h"
#include "plan/plan_model.h"
#include "plan/plan_report.h"
#include "plan/plan_spec.h"
#include "plan/plan_tools.h"

static const char plan_usage[] =
        "Usage: thinp plan SPEC [--format text|json] [--chart FILE.png | --no-chart]\n"
        "Predicts what a workload does to a thin pool: data and metadata blocks over time\n"
        "(metadata from the on-disk format's btrees and space maps), when dm-thin's low-water\n"
        "event, LVM's autoextend, Docker's dm.min_free_space and a full pool or VG happen,\n"
        "the block size and metadata size to use, and thin_metadata_size's answer beside\n"
        "the model's. SPEC is YAML (block style) or JSON; its keys are in\n"
        "docs/capacity-planning.md and examples/docker-ci.yaml.\n"
        "\n"
        "Options:\n"
        "      --format text|json  a readable plan (default) or every number as JSON\n"
        "      --chart FILE.png    draw the predicted use with its thresholds there (gnuplot;\n"
        "                          default: SPEC's name with .plan.png, in the current\n"
        "                          directory; the path is printed)\n"
        "      --no-chart          draw nothing\n"
        "  -h, --help              show this help\n"
        "  -V, --version           print the version\n"
        "\n"
        "Exit status: 0 success, 1 failure (SPEC unreadable, the chart failed), 2 usage\n"
        "error or a bad spec (the message names the key, its line and the reason).\n";

struct plan_args {
	bool json, no_chart;
	const char *chart;
};

enum {
	OPT_FORMAT = 500,
	OPT_CHART,
	OPT_NO_CHART
};

static int option(void *ctx, int c, const char *arg, const char *opt)
{
	struct plan_args *a = ctx;
	switch (c) {
	case OPT_FORMAT:
		if (strcmp(arg, "json") && strcmp(arg, "text"))
			return cli_usage("plan", "invalid %s '%s': use text or json", opt, arg);
		a->json = !strcmp(arg, "json");
		return 0;
	case OPT_CHART:
		if (!*arg)
			return cli_usage("plan", "%s needs a file name (FILE.png)", opt);
		a->chart = arg;
		return 0;
	case OPT_NO_CHART:
		a->no_chart = true;
		return 0;
	}
	return 2;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			char *b = realloc(buf, cap *= 2);
			if (!b) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
		}
		size_t k = fread(buf + n, 1, cap - 1 - n, f);
		n += k;
		if (!k)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (buf && (bad || memchr(buf, 0, n))) {
		free(buf);
		errno = bad ? EIO : EINVAL;
		return NULL;
	}
	if (buf)
		buf[n] = 0;
	return buf;
}

/* SPEC's name without its folder and extension, with .plan.png. */
static void default_chart(const char *spec, char *out, size_t len)
{
	const char *base = strrchr(spec, '/');
	base = base ? base + 1 : spec;
	const char *dot = strrchr(base, '.');
	int n = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
	snprintf(out, len, "%.*s.plan.png", n, base);
}

int cmd_plan(int argc, char **argv, const struct cli_global *g)
{
	(void)g;
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "chart", required_argument, NULL, OPT_CHART },
		{ "no-chart", no_argument, NULL, OPT_NO_CHART },
		CLI_STD_LONGOPTS,
		{ 0 },
	};
	struct plan_args a = { 0 };
	const struct cli_cmd cmd = { .name = "plan",
		                     .usage = plan_usage,
		                     .shortopts = CLI_STD_SHORTOPTS,
		                     .longopts = longopts,
		                     .option = option,
		                     .ctx = &a };
	const char *pos[1];
	int nr, rc = cli_parse(&cmd, argc, argv, pos, 1, &nr);
	if (rc)
		return rc == CLI_DONE ? 0 : rc;
	if (nr != 1)
		return cli_usage("plan", "a SPEC file (YAML or JSON) must be given");
	if (a.chart && a.no_chart)
		return cli_usage("plan", "--chart and --no-chart: give one");
	char *text = read_all(pos[0]);
	if (!text)
		return cli_fail("plan", "cannot read %s: %s", pos[0],
		                errno == EINVAL ? "it holds a NUL byte, not a spec" :
		                                  strerror(errno));
	char err[512];
	struct pdoc *doc;
	int r = pdoc_parse(text, &doc, err, sizeof(err));
	free(text);
	if (r)
		return cli_usage("plan", "%s: %s", pos[0], err);
	struct plan_spec spec;
	r = plan_spec_read(doc, &spec, err, sizeof(err));
	pdoc_free(doc);
	if (r)
		return cli_usage("plan", "%s: %s", pos[0], err);

	struct plan_result res;
	struct plan_advice adv;
	if (plan_run(&spec, &res))
		return cli_fail("plan", "out of memory");
	if (plan_advise(&spec, &adv)) {
		plan_result_free(&res);
		return cli_fail("plan", "out of memory");
	}
	char tms_cmd[256], tms_why[256];
	double tms =
	        plan_thin_metadata_size(adv.block_size, spec.data_size, (uint64_t)res.peak_thins,
	                                tms_cmd, sizeof(tms_cmd), tms_why, sizeof(tms_why));
	char chart[4096];
	const char *chart_path = NULL;
	rc = 0;
	if (!a.no_chart) {
		if (a.chart)
			snprintf(chart, sizeof(chart), "%s", a.chart);
		else
			default_chart(pos[0], chart, sizeof(chart));
		char why[512];
		if (plan_chart(&spec, &res, chart, why, sizeof(why))) {
			if (a.chart) {
				rc = 1;
				cli_err("plan", "no chart: %s", why);
			} else {
				cli_warn("plan", "no chart: %s", why);
			}
		} else {
			chart_path = chart;
		}
	}
	struct plan_report rep = {
		.spec_path = pos[0],
		.spec = &spec,
		.result = &res,
		.advice = &adv,
		.tms_bytes = tms,
		.tms_command = tms_cmd,
		.tms_error = tms < 0 ? tms_why : NULL,
		.chart_path = chart_path,
	};
	if (a.json)
		plan_print_json(stdout, &rep);
	else
		plan_print_text(stdout, &rep);
	plan_result_free(&res);
	if (fflush(stdout))
		return cli_fail("plan", "cannot write the plan: %s", strerror(errno));
	return rc;
}
