/* Shared plumbing for the pdata-level model tests; see stack_util.h. */
#include "stack_util.h"

#include <stdio.h>

#include "io/dev.h"
#include "model_util.h"
#include "pdata/format.h"

uint64_t su_seed;
char su_ctx_buf[256];

void su_set_ctx(const char *test, uint64_t op)
{
	snprintf(su_ctx_buf, sizeof(su_ctx_buf), "%s seed=%" PRIu64 " op=%" PRIu64, test, su_seed,
	         op);
}

int su_main(uint64_t def_seed, const char *name, Suite *(*suite)(void))
{
	su_seed = mu_seed(def_seed);
	fprintf(stderr, "%s: seed %" PRIu64 " (THINP_SEED), scale %g (THINP_TEST_SCALE)\n", name,
	        su_seed, mu_scale());
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

void su_stack_create(struct su_stack *s, uint64_t dev_blocks, uint64_t sm_blocks, size_t cache)
{
	memset(s, 0, sizeof(*s));
	s->cache = cache;
	REQ0(tp_dev_open_mem(dev_blocks * TP_BLOCK_SIZE, &s->dev));
	REQ0(bm_create(s->dev, cache, &s->bm));
	REQ0(sm_meta_create(sm_blocks, &s->sm));
	uint64_t b = 99;
	REQ0(sm_meta_new_block(s->sm, &b)); /* a pretend superblock */
	REQ(b == 0, "first metadata block %" PRIu64, b);
	REQ0(tm_create(s->bm, s->sm, &s->tm));
}

void su_stack_close(struct su_stack *s)
{
	sm_disk_destroy(s->dsm);
	tm_destroy(s->tm);
	sm_meta_destroy(s->sm);
	bm_destroy(s->bm);
	s->dsm = NULL;
	s->tm = NULL;
	s->sm = NULL;
	s->bm = NULL;
}

void su_stack_destroy(struct su_stack *s)
{
	su_stack_close(s);
	tp_dev_close(s->dev);
	s->dev = NULL;
}

void su_stack_commit(struct su_stack *s)
{
	if (s->dsm)
		REQ0(sm_disk_write(s->dsm, s->droot));
	REQ0(sm_meta_write(s->sm, s->tm, s->mroot));
	REQ0(bm_flush(s->bm));
	sm_meta_committed(s->sm);
	if (s->dsm)
		REQ0(sm_disk_committed(s->dsm));
	s->committed = true;
}

void su_stack_reopen(struct su_stack *s)
{
	REQ(s->committed, "reopen before any commit");
	bool data = s->dsm != NULL;
	su_stack_close(s);
	REQ0(bm_create(s->dev, s->cache, &s->bm));
	REQ0(sm_meta_open(s->bm, s->mroot, &s->sm));
	REQ0(tm_create(s->bm, s->sm, &s->tm));
	REQ0(sm_meta_load_overflow(s->sm, s->tm));
	if (data)
		REQ0(sm_disk_open(s->tm, s->droot, &s->dsm));
}
