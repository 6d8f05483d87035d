/* thinp_prefill: before the job starts, provision every unmapped pool block of
 * its range with a whole-block zero write, so the job measures overwrites. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "engine.h"

/* Whole-block zero writes to every unmapped block of [off, off+len): a read
 * probe tells mapped from unmapped, so existing data is never touched. */
int job_prefill(struct tjob *j, uint64_t off, uint64_t len)
{
	struct thread_data *td = j->td;
	uint64_t bs = thinp_pool_block_bytes(j->tp->pool);
	uint64_t start = off / bs * bs, end = off + len;
	end = (end + bs - 1) / bs * bs;
	if (end > j->thin_size)
		end = j->thin_size;
	/* anonymous memory reads as zeros without being touched, even for 1 GiB blocks */
	void *zeros = mmap(NULL, bs, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *probe;
	if (zeros == MAP_FAILED)
		return job_fail(td, ENOMEM, "thinp_prefill: cannot map %llu bytes",
		                (unsigned long long)bs);
	if (posix_memalign(&probe, META_BLOCK, META_BLOCK)) {
		munmap(zeros, bs);
		return job_fail(td, ENOMEM, "out of memory");
	}
	uint64_t filled = 0;
	int r = 0;
	for (uint64_t pos = start; pos < end && !r; pos += bs) {
		uint64_t n = end - pos < bs ? end - pos : bs;
		struct thinp_io_result res;
		r = thinp_read(j->thin, probe, n < META_BLOCK ? n : META_BLOCK, pos, &res);
		if (!r && res.cls == THINP_READ_UNMAPPED) {
			r = thinp_write(j->thin, zeros, n, pos, 0, &res);
			filled++;
		}
	}
	free(probe);
	munmap(zeros, bs);
	/* Committed before the job, so the job's first commit does not carry the prefill's
	 * mappings: the kernel runner's prefill is committed by the pool status it reads
	 * before the measured step, and the two must count the same commits. */
	if (!r && filled)
		r = thinp_pool_commit(j->tp->pool);
	if (r)
		return job_fail(td, -r, "thinp_prefill failed: %s", POOL_MSG(j->tp->pool));
	note("thinp: job '%s': prefilled %llu of %llu blocks of thin %llu\n", td->o.name,
	     (unsigned long long)filled, (unsigned long long)((end - start + bs - 1) / bs),
	     j->o->dev_id);
	return 0;
}
