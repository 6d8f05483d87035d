/* Inside the kernel backend (backend_kernel.c: open pools, messages, thins, status;
 * backend_kernel_pool.c: bringing pools up and growing them). */
#ifndef THINP_CLI_BACKEND_KERNEL_H
#define THINP_CLI_BACKEND_KERNEL_H

#include "cli/backend.h"
#include "dm/dm_backend.h"

/* A kernel pool named on the command line: a loop-lvm DIR (its device-mapper name read
 * from DIR/kernel.json) or a device-mapper NAME. */
struct kernel_pool {
	struct backend_pool base;
	struct tdm_ctx c;
	char name[TDM_NAME_MAX];
	const char *dir; /* or NULL */
};

/* The failure left in C, reported for A's command; returns 1. */
int kernel_fail(const struct cli_pool_args *a, const struct tdm_ctx *c);
/* The kernel must have device-mapper: 0, or 1 with TDM_NO_DM_MESSAGE printed. */
int kernel_ready(struct tdm_ctx *c, const struct cli_pool_args *a);

int kernel_pool_create(struct cli_pool_args *a, char *dev, size_t len);
int kernel_pool_activate(struct cli_pool_args *a, char *dev, size_t len);
int kernel_pool_extend(struct backend_pool *p, uint64_t data_bytes, uint64_t meta_bytes);

#endif
