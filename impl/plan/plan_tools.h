/* The outside programs a plan uses: thin_metadata_size (thin-provisioning-tools) for its
 * answer beside ours, and gnuplot for the chart. Both run without a shell. */
#ifndef THINP_PLAN_TOOLS_H
#define THINP_PLAN_TOOLS_H

#include <stddef.h>
#include <stdint.h>

#include "plan/plan_model.h"
#include "plan/plan_spec.h"

/* thin_metadata_size -b BLOCKb -s POOLb -m THINS -u b -n (THINP_THIN_METADATA_SIZE in the
 * environment names another binary). Returns the bytes, or -1 with the reason in WHY; CMD gets
 * the command line either way. */
double plan_thin_metadata_size(uint64_t block, uint64_t pool, uint64_t thins, char *cmd,
                               size_t cmdlen, char *why, size_t whylen);

/* Write PNG_PATH: predicted data and metadata use (percent of their device) over time, with the
 * thresholds of the spec drawn; the data beside it as PNG_PATH.dat, the script as
 * PNG_PATH.gp. Returns 0, or -1 with the reason in WHY. */
int plan_chart(const struct plan_spec *s, const struct plan_result *r, const char *png_path,
               char *why, size_t whylen);

#endif
