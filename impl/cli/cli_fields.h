/* `status --fields`: the parsed status structs as key=value lines, the same for both
 * backends (the kernel's INFO text parsed, or libthinp's own). */
#ifndef THINP_CLI_FIELDS_H
#define THINP_CLI_FIELDS_H

#include "thinp.h"

void cli_print_pool_fields(const struct thinp_pool_status *st);
void cli_print_thin_fields(const struct thinp_thin_status *st);

#endif
