/* Fault-injecting wrapper: EIO on the Nth read/write, a volatile write cache
 * that a simulated power loss throws away, and "power went after write K".
 *
 * Rules that the tests and crash harnesses rely on:
 *  - pwrite, write_zeroes and discard are all "writes": each is one write
 *    boundary for cut_after(), one step for fail_write() and one in
 *    writes_seen (crash aside, every write that passed the range check).
 *  - In volatile mode writes are queued in order and replayed on the inner
 *    device at the next flush; reads see the queue overlaid on the inner
 *    device. Zeroes and discards read back as zeros while queued.
 *  - Once the cut has fired power is gone: later writes and flushes succeed
 *    without reaching the inner device, so only what was flushed before the
 *    cut (or written through, when not volatile) is guaranteed to survive.
 *  - crash() drops the queue and fails every later op with -EIO. The inner
 *    device stays open (the wrapper owns it until close) so a test can read
 *    it directly to see what "the disk" holds.
 *  - close() without a crash or cut replays the queue without flushing,
 *    like a clean shutdown where the disk writes its cache back eventually.
 *  - crash_torn() is crash() that first lets pieces of the queue reach the
 *    inner device (see dev_fault.h); it never reorders two pieces. */
#include "support/dev_fault.h"
#include "io/dev_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pending_kind {
	P_WRITE,
	P_ZERO,
	P_DISCARD
};

struct pending {
	enum pending_kind kind;
	uint64_t off, len;
	void *data; /* P_WRITE only, aligned for the inner device */
};

struct tp_fault {
	struct tp_dev dev;
	struct tp_dev *inner;

	uint64_t fail_read_at, reads_since_arm;
	uint64_t fail_write_at, writes_since_arm;
	uint64_t cut_after, writes_since_cut_arm;
	uint64_t writes_seen;
	bool volatile_cache;
	bool cut_skips_flush;
	bool power_lost;
	bool crashed;

	struct pending *pend;
	size_t nr_pend, cap_pend;
};

static struct tp_fault *to_fault(struct tp_dev *d)
{
	return tp_container_of(d, struct tp_fault, dev);
}

static void pending_free(struct pending *p)
{
	free(p->data);
	p->data = NULL;
}

static void pending_drop_all(struct tp_fault *f)
{
	for (size_t i = 0; i < f->nr_pend; i++)
		pending_free(&f->pend[i]);
	f->nr_pend = 0;
}

static int pending_add(struct tp_fault *f, enum pending_kind kind, const void *buf, uint64_t off,
                       uint64_t len)
{
	struct pending *p;

	if (f->nr_pend == f->cap_pend) {
		size_t cap = f->cap_pend ? f->cap_pend * 2 : 16;
		p = realloc(f->pend, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		f->pend = p;
		f->cap_pend = cap;
	}
	p = &f->pend[f->nr_pend];
	p->kind = kind;
	p->off = off;
	p->len = len;
	p->data = NULL;
	if (kind == P_WRITE) {
		int r = tp_alloc_aligned(&p->data, f->dev.align, (size_t)len);
		if (r)
			return r;
		if (len)
			memcpy(p->data, buf, (size_t)len);
	}
	f->nr_pend++;
	return 0;
}

static int inner_apply(struct tp_fault *f, enum pending_kind kind, const void *buf, uint64_t off,
                       uint64_t len)
{
	switch (kind) {
	case P_WRITE:
		return tp_dev_pwrite(f->inner, buf, (size_t)len, off);
	case P_ZERO:
		return tp_dev_write_zeroes(f->inner, off, len);
	case P_DISCARD:
		return tp_dev_discard(f->inner, off, len);
	}
	return -EINVAL;
}

static int pending_apply_one(struct tp_fault *f, const struct pending *p)
{
	return inner_apply(f, p->kind, p->data, p->off, p->len);
}

/* Replay the queue in order. On error the entries already applied are gone
 * and the rest stay queued, so a retry does not apply anything twice. */
static int pending_drain(struct tp_fault *f)
{
	size_t i;
	int r = 0;

	if (!f->nr_pend)
		return 0;
	for (i = 0; i < f->nr_pend; i++) {
		r = pending_apply_one(f, &f->pend[i]);
		if (r)
			break;
		pending_free(&f->pend[i]);
	}
	memmove(f->pend, f->pend + i, (f->nr_pend - i) * sizeof(*f->pend));
	f->nr_pend -= i;
	return r;
}

static void pending_overlay(const struct tp_fault *f, void *buf, size_t len, uint64_t off)
{
	uint64_t end = off + len;

	for (size_t i = 0; i < f->nr_pend; i++) {
		const struct pending *p = &f->pend[i];
		uint64_t s = p->off > off ? p->off : off;
		uint64_t e = p->off + p->len < end ? p->off + p->len : end;

		if (s >= e)
			continue;
		if (p->kind == P_WRITE)
			memcpy((char *)buf + (s - off), (const char *)p->data + (s - p->off),
			       (size_t)(e - s));
		else
			memset((char *)buf + (s - off), 0, (size_t)(e - s));
	}
}

/* A shrink must not leave queued data past the new end, or the replay
 * would fail the range check and wedge the queue. */
static void pending_trim(struct tp_fault *f, uint64_t size)
{
	size_t out = 0;

	for (size_t i = 0; i < f->nr_pend; i++) {
		struct pending *p = &f->pend[i];

		if (p->off >= size) {
			pending_free(p);
			continue;
		}
		if (p->len > size - p->off)
			p->len = size - p->off;
		f->pend[out++] = *p;
	}
	f->nr_pend = out;
}

enum gate {
	GATE_PASS,
	GATE_DROP
};

/* Decide the fate of one write: <0 to fail it, GATE_DROP to swallow it,
 * GATE_PASS to perform it. Both counters advance on every write so that
 * fail_write() and cut_after() stay independent of each other. */
static int write_gate(struct tp_fault *f)
{
	bool fail = false;

	f->writes_seen++;
	if (f->fail_write_at && ++f->writes_since_arm == f->fail_write_at) {
		f->fail_write_at = 0;
		fail = true;
	}
	if (f->cut_after && ++f->writes_since_cut_arm > f->cut_after)
		f->power_lost = true;
	if (fail)
		return -EIO;
	if (f->power_lost)
		return GATE_DROP;
	/* power goes as write K completes: it is performed, nothing after it */
	if (f->cut_after && f->cut_skips_flush && f->writes_since_cut_arm == f->cut_after)
		f->power_lost = true;
	return GATE_PASS;
}

static bool queueing(const struct tp_fault *f)
{
	/* Keep queueing while anything is queued, even after volatile mode
	 * is switched off, so writes can never overtake older queued ones. */
	return f->volatile_cache || f->nr_pend;
}

static int fault_pread(struct tp_dev *d, void *buf, size_t len, uint64_t off)
{
	struct tp_fault *f = to_fault(d);
	int r;

	if (f->crashed)
		return -EIO;
	r = tp_dev_check_range(d, off, len);
	if (r)
		return r;
	if (f->fail_read_at && ++f->reads_since_arm == f->fail_read_at) {
		f->fail_read_at = 0;
		return -EIO;
	}
	r = tp_dev_pread(f->inner, buf, len, off);
	if (r)
		return r;
	pending_overlay(f, buf, len, off);
	tp_ctr_read(d, len);
	return 0;
}

/* Writes, zeroes and discards go through one gate and one queue. A write
 * swallowed after a power loss still counts: its caller saw it succeed. */
static int fault_submit(struct tp_dev *d, enum pending_kind kind, const void *buf, uint64_t off,
                        uint64_t len)
{
	struct tp_fault *f = to_fault(d);
	int r;

	if (f->crashed)
		return -EIO;
	r = tp_dev_check_range(d, off, len);
	if (r)
		return r;
	r = write_gate(f);
	if (r < 0)
		return r;
	if (r == GATE_PASS) {
		if (queueing(f))
			r = pending_add(f, kind, buf, off, len);
		else
			r = inner_apply(f, kind, buf, off, len);
		if (r)
			return r;
	}
	switch (kind) {
	case P_WRITE:
		tp_ctr_write(d, len);
		break;
	case P_ZERO:
		tp_ctr_zero(d, len);
		break;
	case P_DISCARD:
		tp_ctr_discard(d, len);
		break;
	}
	return 0;
}

static int fault_pwrite(struct tp_dev *d, const void *buf, size_t len, uint64_t off)
{
	return fault_submit(d, P_WRITE, buf, off, len);
}

static int fault_write_zeroes(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return fault_submit(d, P_ZERO, NULL, off, len);
}

static int fault_discard(struct tp_dev *d, uint64_t off, uint64_t len)
{
	return fault_submit(d, P_DISCARD, NULL, off, len);
}

static int fault_flush(struct tp_dev *d)
{
	struct tp_fault *f = to_fault(d);
	int r;

	if (f->crashed)
		return -EIO;
	if (!f->power_lost) {
		r = pending_drain(f);
		if (r)
			return r;
		r = tp_dev_flush(f->inner);
		if (r)
			return r;
	}
	tp_ctr_flush(d);
	return 0;
}

static int fault_resize(struct tp_dev *d, uint64_t new_size)
{
	struct tp_fault *f = to_fault(d);
	int r;

	if (f->crashed)
		return -EIO;
	r = tp_dev_resize(f->inner, new_size);
	if (r)
		return r;
	if (new_size < d->size)
		pending_trim(f, new_size);
	d->size = f->inner->size;
	return 0;
}

static int fault_refresh_size(struct tp_dev *d)
{
	struct tp_fault *f = to_fault(d);
	int r;

	if (f->crashed)
		return -EIO;
	r = f->inner->ops->refresh_size(f->inner);
	if (r)
		return r;
	if (f->inner->size < d->size)
		pending_trim(f, f->inner->size);
	d->size = f->inner->size;
	return 0;
}

static void fault_close(struct tp_dev *d)
{
	struct tp_fault *f = to_fault(d);

	/* Best effort: close has no way to report a failed replay, and the
	 * caller skipped the flush that would have. */
	if (!f->crashed && !f->power_lost)
		(void)pending_drain(f);
	pending_drop_all(f);
	free(f->pend);
	tp_dev_close(f->inner);
	free(f);
}

static const struct tp_dev_ops fault_ops = {
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.flush = fault_flush,
	.write_zeroes = fault_write_zeroes,
	.discard = fault_discard,
	.resize = fault_resize,
	.refresh_size = fault_refresh_size,
	.close = fault_close,
};

/* On failure the caller still owns INNER. */
int tp_fault_wrap(struct tp_dev *inner, struct tp_dev **out, struct tp_fault **fault)
{
	struct tp_fault *f;
	char name[sizeof(inner->name)];

	*out = NULL;
	if (fault)
		*fault = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->inner = inner;
	snprintf(name, sizeof(name), "fault:%.*s", (int)(sizeof(name) - 7), inner->name);
	tp_dev_init(&f->dev, &fault_ops, name, inner->size, inner->align);
	*out = &f->dev;
	if (fault)
		*fault = f;
	return 0;
}

void tp_fault_fail_read(struct tp_fault *f, uint64_t nth)
{
	f->fail_read_at = nth;
	f->reads_since_arm = 0;
}

void tp_fault_fail_write(struct tp_fault *f, uint64_t nth)
{
	f->fail_write_at = nth;
	f->writes_since_arm = 0;
}

void tp_fault_set_volatile(struct tp_fault *f, int on)
{
	f->volatile_cache = on != 0;
}

void tp_fault_cut_after(struct tp_fault *f, uint64_t kth_write)
{
	f->cut_after = kth_write;
	f->writes_since_cut_arm = 0;
	f->power_lost = false;
}

void tp_fault_cut_skips_flush(struct tp_fault *f, int on)
{
	f->cut_skips_flush = on != 0;
}

size_t tp_fault_cached(const struct tp_fault *f)
{
	return f->nr_pend;
}

/* splitmix64: a seeded stream, so one seed always tears a cache the same way */
static uint64_t tear_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int tp_fault_crash_torn(struct tp_fault *f, const struct tp_fault_tear *how,
                        struct tp_fault_tear_stats *st)
{
	struct tp_fault_tear_stats s = { .cached = f->nr_pend };
	uint64_t rng = how->seed;
	int r = 0;

	for (size_t i = 0; i < f->nr_pend && !f->crashed; i++) {
		const struct pending *p = &f->pend[i];
		uint64_t piece = p->kind != P_WRITE || !how->piece || how->piece > p->len ?
		                         p->len :
		                         how->piece;
		uint64_t nr_pieces = piece ? (p->len + piece - 1) / piece : 1;
		uint64_t landed = 0;

		for (uint64_t k = 0; k < nr_pieces; k++) {
			uint64_t po = k * piece, pl = p->len - po < piece ? p->len - po : piece;
			bool land = how->land ? how->land(how->ctx, i, p->off, p->len, po, pl) :
			                        tear_next(&rng) % 100 < how->land_pct;

			if (!land)
				continue;
			int e = inner_apply(f, p->kind, p->data ? (const char *)p->data + po : NULL,
			                    p->off + po, pl);
			if (e && !r)
				r = e;
			landed++;
		}
		if (landed == nr_pieces)
			s.whole++;
		else if (landed)
			s.partial++;
	}
	tp_fault_crash(f);
	if (st)
		*st = s;
	return r;
}

void tp_fault_crash(struct tp_fault *f)
{
	pending_drop_all(f);
	f->crashed = true;
}

uint64_t tp_fault_writes_seen(const struct tp_fault *f)
{
	return f->writes_seen;
}
