/* Warnings about input the engine takes but that does not do what a fio user
 * may expect: fio options this engine does not honour, IO that
 * thinp_mode=direct read-modify-writes, and a job that may outgrow the pool in
 * queue mode. Each is a warning, not a refusal: the job still measures what it
 * asked for, and the user learns the cost or the wait before it happens. */
#include <stdint.h>

#include "engine.h"

#define RMW_UNIT 4096ull /* thinp_mode=direct reads and writes whole 4 KiB units */

static unsigned long long gcd(unsigned long long a, unsigned long long b)
{
	while (b) {
		unsigned long long t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The worst byte amplification of a BS-byte IO at offsets that are multiples
 * of ALIGN: the 4 KiB units it can touch, over its own size. */
static double rmw_factor(unsigned long long bs, unsigned long long align)
{
	if (!bs)
		return 1.0;
	unsigned long long slack = RMW_UNIT - gcd(align ? align : 1, RMW_UNIT);
	unsigned long long units = (bs + slack + RMW_UNIT - 1) / RMW_UNIT;
	return (double)(units * RMW_UNIT) / (double)bs;
}

/* A warning, not a refusal: the read-modify-write is what the job measures
 * (a 512-byte workload on a direct-lvm pool pays it too), but its 8x cost at
 * bs=512 should not go unexplained. Once per job, for its worst direction. */
static void warn_rmw(struct thread_data *td)
{
	double worst = 1.0;
	unsigned long long wbs = 0, wba = 0;
	for (int d = DDIR_READ; d <= DDIR_WRITE; d++) {
		if ((d == DDIR_READ && !td_read(td)) || (d == DDIR_WRITE && !td_write(td)))
			continue;
		unsigned long long ba = td->o.bs_unaligned ? 1 : td->o.ba[d];
		if (!ba)
			ba = td->o.min_bs[d];
		ba = gcd(ba, td->o.start_offset ? td->o.start_offset : RMW_UNIT);
		unsigned long long sizes[2] = { td->o.min_bs[d], td->o.max_bs[d] };
		for (int i = 0; i < 2; i++) {
			double f = rmw_factor(sizes[i], ba);
			if (f > worst + 1e-9) {
				worst = f;
				wbs = sizes[i];
				wba = ba;
			}
		}
	}
	if (wbs)
		note("thinp: job '%s': warning: thinp_mode=direct read-modify-writes IO smaller "
		     "than or not aligned to 4 KiB in whole 4 KiB units: bs=%llu ba=%llu costs up to "
		     "%.1fx its bytes on the data device; use bs and ba (blockalign) in multiples "
		     "of 4 KiB, or thinp_mode=loop\n",
		     td->o.name, wbs, wba, worst);
}

void job_warn_inputs(struct tjob *j)
{
	struct thread_data *td = j->td;
	if (td->o.odirect && j->o->mode != MODE_DIRECT) /* with thinp_mode=direct it holds */
		note("thinp: job '%s': warning: direct=1 is ignored by this engine: the pool's "
		     "devices are opened as thinp_mode says (%s); use thinp_mode=direct for "
		     "O_DIRECT\n",
		     td->o.name, mode_names[j->o->mode]);
	if (td->o.filename)
		note("thinp: job '%s': warning: filename=%s is ignored by this engine: the job's IO "
		     "goes to thin device %llu of the pool named by thinp_pool (or thinp_data and "
		     "thinp_metadata)\n",
		     td->o.name, td->o.filename, j->o->dev_id);
	if (opts_odirect(j->o))
		warn_rmw(td);
}

void job_warn_no_space(struct tjob *j, uint64_t len)
{
	struct thread_data *td = j->td;
	const struct thinp_options *o = j->o;
	if (o->no_space != NOSPACE_QUEUE || o->read_only || !td_write(td))
		return;
	struct thinp_pool_status st;
	if (thinp_pool_status(j->tp->pool, true, &st))
		return;
	uint64_t bb = thinp_pool_block_bytes(j->tp->pool);
	uint64_t total = st.total_data_blocks * bb;
	uint64_t free = (st.total_data_blocks - st.used_data_blocks) * bb;
	if (len <= free)
		return;
	/* Blocks the thin already maps are overwritten in place, needing no space. Asked
	 * only when the job may not fit: the walk reads the thin's mapping tree into the
	 * metadata cache, which would take those reads out of the first IOs' exact costs. */
	struct thinp_thin_status ts;
	uint64_t mapped = 0;
	if (!thinp_thin_status(j->tp->pool, o->dev_id, &ts))
		mapped = ts.mapped_sectors * 512;
	uint64_t need = len > mapped ? len - mapped : 0;
	if (need <= free)
		return;
	note("thinp: job '%s': warning: this job writes up to %llu bytes but the pool holds %llu "
	     "(%llu free): writes past that will wait up to %.1f s for an extend, then fail "
	     "(thinp_no_space_timeout; thinp_no_space=error fails them at once)\n",
	     td->o.name, (unsigned long long)len, (unsigned long long)total,
	     (unsigned long long)free, o->no_space_timeout / 1000.0);
}
