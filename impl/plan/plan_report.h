/* A plan printed: readable text, or JSON with every number (docs/capacity-planning.md,
 * "Output"). */
#ifndef THINP_PLAN_REPORT_H
#define THINP_PLAN_REPORT_H

#include <stdio.h>

#include "plan/plan_advice.h"
#include "plan/plan_model.h"
#include "plan/plan_spec.h"

struct plan_report {
	const char *spec_path;
	const struct plan_spec *spec;
	const struct plan_result *result;
	const struct plan_advice *advice;
	double tms_bytes;        /* thin_metadata_size's answer; < 0: not run */
	const char *tms_command; /* how it was run */
	const char *tms_error;   /* why it was not */
	const char *chart_path;  /* NULL: no chart */
};

void plan_print_text(FILE *f, const struct plan_report *p);
void plan_print_json(FILE *f, const struct plan_report *p);

#endif
