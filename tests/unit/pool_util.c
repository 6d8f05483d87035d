/* Shared plumbing for the pool-level unit tests; see pool_util.h. */
#include "pool_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_util.h"

uint64_t pu_seed;
char pu_top[PATH_MAX - 128];
char pu_ctx_buf[256];

void pu_ctx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pu_ctx_buf, sizeof(pu_ctx_buf), fmt, ap);
	va_end(ap);
}

int pu_run(uint64_t def_seed, const char *name, Suite *(*suite)(void), uint64_t *seed)
{
	*seed = mu_seed(def_seed);
	printf("%s: seed %" PRIu64 " (THINP_SEED)\n", name, *seed);
	fflush(stdout);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		fprintf(stderr, "FAILED with seed %" PRIu64 ": rerun with THINP_SEED=%" PRIu64 "\n",
		        *seed, *seed);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int pu_main(uint64_t def_seed, const char *tag, Suite *(*suite)(void))
{
	pu_seed = mu_seed(def_seed);
	int r = mu_mkdtemp(pu_top, sizeof(pu_top), tag);
	if (r) {
		fprintf(stderr, "cannot create a scratch directory: %s\n", strerror(-r));
		return 1;
	}
	printf("seed %" PRIu64 " (THINP_SEED), scratch %s\n", pu_seed, pu_top);
	fflush(stdout);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	mu_rmtree(pu_top);
	if (failed)
		fprintf(stderr, "FAILED with seed %" PRIu64 ": rerun with THINP_SEED=%" PRIu64 "\n",
		        pu_seed, pu_seed);
	return failed ? 1 : 0;
}

void pu_env_open(struct pu_env *e, uint32_t block_sectors, uint64_t nr_data_blocks,
                 uint64_t meta_bytes, const struct thinp_pool_opts *opts, bool fault)
{
	memset(e, 0, sizeof(*e));
	/* each test runs in a forked child: mkdtemp keeps their names apart */
	int n = snprintf(e->dir, sizeof(e->dir), "%s/pool-XXXXXX", pu_top);
	REQ(n > 0 && (size_t)n < sizeof(e->dir), "path too long");
	REQ(mkdtemp(e->dir) != NULL, "mkdtemp %s: %s", e->dir, strerror(errno));
	if (opts)
		e->o = *opts;
	e->o.block_sectors = block_sectors;
	e->B = (uint64_t)block_sectors * 512;
	snprintf(e->data_path, sizeof(e->data_path), "%s/data", e->dir);
	snprintf(e->meta_path, sizeof(e->meta_path), "%s/meta", e->dir);
	REQ0(tp_dev_open_file(e->data_path, TP_DEV_CREATE, nr_data_blocks * e->B, &e->data));
	REQ0(tp_dev_open_file(e->meta_path, TP_DEV_CREATE, meta_bytes, &e->meta));
	struct tp_dev *m = e->meta;
	if (fault)
		REQ0(tp_fault_wrap(e->meta, &m, &e->fault));
	char err[512] = "";
	int r = thinp_pool_format(e->data, m, &e->o, &e->p, err, sizeof(err));
	REQ(r == 0, "format: %d %s", r, err);
}
