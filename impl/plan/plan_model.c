/* The time-stepped capacity model (plan_model.h; docs/capacity-planning.md, "The model"). Each
 * step evaluates the pool's content in closed form from the spec (images pulled at the start,
 * containers writing at a steady rate and replaced by churn), then applies what the pool's
 * neighbours do when a threshold is crossed: dm-thin's low-water event, LVM's autoextend,
 * Docker's dm.min_free_space, a full pool. */
#include "plan/plan_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan_meta.h"

const char *plan_event_name(enum plan_event_kind k)
{
	static const char *names[] = {
		"low_water",     "autoextend_data",   "autoextend_metadata", "vg_full",
		"min_free_data", "min_free_metadata", "data_full",           "metadata_full",
	};
	return names[k];
}

/* Distinct targets hit by N uniform draws over RANGE: range·(1 − (1 − 1/range)^N). */
static double distinct(double range, double n)
{
	if (range <= 0 || n <= 0)
		return 0;
	if (range < 1)
		return range;
	return range * -expm1(n * log1p(-1 / range));
}

/* The variance of that count: R q^N + R (R − 1) (1 − 2/R)^N − R² q^2N, q = 1 − 1/R. */
static double distinct_var(double range, double n)
{
	if (range < 2 || n <= 0)
		return 0;
	double q = exp(n * log1p(-1 / range)), q2 = exp(n * log1p(-2 / range));
	double v = range * q + range * (range - 1) * q2 - range * range * q * q;
	return v > 0 ? v : 0;
}

/* New leaves of the random region for KEYS random keys (LAST: the image's last leaf's
 * entries they start among, APPENDS: sequential keys after them). */
static double region_leaves(double keys, double last, double appends, bool image, unsigned cap)
{
	double all = keys + last + appends;
	if (!image)
		return plan_leaves_random(all, cap);
	return all > cap ? plan_leaves_random(all - cap / 2.0, cap) : 0;
}

/* region_leaves() averaged over the distinct keys' spread (mean MEAN, standard deviation
 * SD) at nine equally likely points of the normal distribution: the splits happen at set
 * key counts, and with the mean alone a whole wave of them came at once where the pool's
 * containers, each a draw of its own, split a step apart. */
static double region_leaves_spread(double mean, double sd, double last, double appends, bool image,
                                   unsigned cap)
{
	static const double z[] = { -1.5932, -0.9674, -0.5895, -0.2822, 0,
		                    0.2822,  0.5895,  0.9674,  1.5932 };
	double sum = 0;
	for (unsigned i = 0; i < 9; i++) {
		double k = mean + sd * z[i];
		sum += region_leaves(k > 0 ? k : 0, last, appends, image, cap);
	}
	return sum / 9;
}

void plan_container_blocks(const struct plan_spec *s, double image_blocks, double w,
                           struct plan_container *c)
{
	memset(c, 0, sizeof(*c));
	if (w <= 0)
		return;
	double bs = (double)s->block_size, u = s->update_fraction;
	double span = ceil((double)s->write_span / bs);
	/* random writes of all sizes land in one span: the chance a block stays untouched is a
	 * product over the entries, so their draws add up in one exponent */
	double rand_draws = 0, cow_rand_draws = 0, cow_seq = 0;
	bool small_random = false;
	for (unsigned i = 0; i < s->nr_mix; i++) {
		const struct plan_write *m = &s->mix[i];
		double bytes = w * m->share, n = bytes / (double)m->size;
		double per = (double)m->size >= bs ? (double)m->size / bs : 1;
		if (m->pattern == PLAN_RANDOM) {
			rand_draws += n * (1 - u) * per;
			cow_rand_draws += n * u * per;
		} else {
			double fresh = ceil(bytes * (1 - u) / bs);
			c->fresh_seq += fresh;
			if ((double)m->size < bs)
				c->partial += fresh;
			cow_seq += ceil(bytes * u / bs);
		}
		if (m->pattern == PLAN_RANDOM && (double)m->size < bs)
			small_random = true;
	}
	c->fresh_rand = distinct(span, rand_draws);
	double rand_sd = sqrt(distinct_var(span, rand_draws));
	/* a block first written by a random write smaller than itself is zeroed first */
	if (small_random)
		c->partial += c->fresh_rand;
	/* copies: a block of the image is copied once, at its first update. Sequential updates
	 * copy the image from its start; random ones land anywhere in it, so only the share of
	 * their hits outside the sequentially copied blocks copies more (counting both in full
	 * overstated a churn replay's data by 1-2%) */
	double seq_cow = cow_seq < image_blocks ? cow_seq : image_blocks;
	double rand_hit =
	        image_blocks > 0 ? distinct(image_blocks, cow_rand_draws) / image_blocks : 0;
	c->cow = seq_cow + (image_blocks - seq_cow) * rand_hit;
	c->data = c->fresh_seq + c->fresh_rand + c->cow;

	/* metadata. Sequential fresh writes append after the image's mappings, as a layer does:
	 * the leaves the appends create, and the image's last leaf, copied when the first append
	 * lands in it. Random fresh writes start in the image's last leaf too (below).
	 * Each copied image block rewrites the leaf that maps it, once per leaf. */
	unsigned cap = plan_node_capacity(8);
	double img_leaves =
	        image_blocks > 0 ? (double)plan_leaves_sequential((uint64_t)image_blocks, cap) : 0;
	double seq_new = 0, seq_copied = 0, rand_new = 0;
	if (c->fresh_seq > 0) {
		seq_new = (double)plan_leaves_sequential((uint64_t)(image_blocks + c->fresh_seq),
		                                         cap) -
		          img_leaves;
		seq_copied = image_blocks > 0;
	}
	if (c->fresh_rand > 0) {
		/* keys beyond the image's last mapping all land in the image's last leaf (every
		 * leaf before it keeps cap / 2): it is copied, and once full it splits, keeping its
		 * lower half (image entries only, never written again) while the upper half, its
		 * entries counted, goes on as random leaves of their own */
		double last = img_leaves > 0 ? image_blocks - (cap / 2.0) * (img_leaves - 1) : 0;
		rand_new =
		        region_leaves_spread(c->fresh_rand, rand_sd, last, 0, img_leaves > 0, cap);
		seq_copied = img_leaves > 0;
		/* sequential appends beyond the span go into the random region's last leaf and,
		 * once it splits, on in leaves of their own that keep cap / 2 each (the split
		 * rule's halves): a random key never lands among them again. Counting the appends
		 * as random keys of the region made 14.2 new leaves where a simulation of the split
		 * rule makes 12.1 (a span 91% full, 308 appends). The appends left behind in the
		 * region, up to cap / 2, depend on how full its last leaf was: averaged at five
		 * equally likely points */
		if (c->fresh_seq > 0) {
			double most = c->fresh_seq < cap / 2.0 ? c->fresh_seq : cap / 2.0, sum = 0;
			/* none leave a last leaf that never filled */
			bool split = c->fresh_rand + last + c->fresh_seq > cap;
			for (unsigned i = 0; i < 5; i++) {
				double in = most * (2 * i + 1) / 10.0;
				sum += region_leaves_spread(c->fresh_rand, rand_sd, last, in,
				                            img_leaves > 0, cap) +
				       (split ? (c->fresh_seq - in) / (cap / 2.0) : 0);
			}
			rand_new = sum / 5;
			seq_new = 0;
		}
	}
	double cow_leaves = 0;
	if (image_blocks > 0 && c->cow > 0) {
		double seq_part = cow_seq < c->cow ? cow_seq : c->cow;
		double rand_part = c->cow - seq_part;
		cow_leaves = ceil(seq_part / (cap / 2.0)) + distinct(img_leaves, rand_part);
		if (cow_leaves > img_leaves)
			cow_leaves = img_leaves;
	}
	c->cow_leaves = cow_leaves;
	double copied = cow_leaves + seq_copied;
	if (copied > img_leaves)
		copied = img_leaves;
	c->leaves = seq_new + rand_new + copied;
	/* the path above every written leaf is shadowed too: the container's root at least,
	 * at most every internal node of its tree */
	double total = img_leaves + seq_new + rand_new;
	double all = plan_internal_nodes(total, rand_new == 0);
	double touched = plan_internal_depth(total) + c->leaves / (cap * PLAN_RANDOM_FILL);
	c->internal = touched < all ? touched : all;
}

void plan_image_blocks(const struct plan_spec *s, struct plan_image *img)
{
	unsigned cap = plan_node_capacity(8);
	double per_layer = ceil((double)s->layer_size / (double)s->block_size);
	double m = 0;
	memset(img, 0, sizeof(*img));
	for (uint64_t k = 0; k < s->layers_per_image; k++) {
		if (per_layer <= 0)
			continue;
		/* a layer appends after the mappings of the one below: the leaves the appends
		 * create, the shared last leaf it copies, and the right edge above them */
		double before = m ? (double)plan_leaves_sequential((uint64_t)m, cap) : 0;
		double after = (double)plan_leaves_sequential((uint64_t)(m + per_layer), cap);
		double ib = m ? plan_internal_nodes(before, 1) : 0;
		double ia = plan_internal_nodes(after, 1);
		img->nodes += (after - before) + (m ? 1 : 0) + (ia - ib) +
		              (m ? plan_internal_depth(before) : 0);
		m += per_layer;
	}
	img->data = m;
	img->top_mappings = m;
	img->top_leaves = m ? (double)plan_leaves_sequential((uint64_t)m, cap) : 0;
}

struct sim {
	const struct plan_spec *s;
	struct plan_result *r;
	struct plan_image img;
	double data_total, meta_total; /* blocks */
	double vg_free;                /* bytes */
	double slots, life_h, rate;    /* containers; lifetime (0: the whole run); bytes/h */
	bool low_armed, min_data, min_meta, data_full, meta_full, vg_full;
	double full_md; /* metadata blocks when the data filled; < 0 while it is not full */
};

static void event(struct sim *m, enum plan_event_kind k, double t, double before, double after)
{
	struct plan_result *r = m->r;
	if (r->nr_ev < PLAN_MAX_EVENTS)
		r->ev[r->nr_ev++] = (struct plan_event){ k, t, before, after };
}

/* Bytes written so far by the container in SLOT at time T. */
static double written(const struct sim *m, double slot, double t)
{
	if (!m->life_h)
		return m->rate * t;
	/* a step landing on the end of a life (t - first a whole number of lives, give or take
	 * the rounding of both, on either side) is the successor's start, not the old
	 * container's last moment */
	double first = (slot + 1) * m->life_h / m->slots, eps = 1e-9 * m->life_h;
	if (t < first - eps)
		return m->rate * t;
	double age = t > first ? fmod(t - first, m->life_h) : 0;
	if (m->life_h - age < eps)
		age = 0;
	return m->rate * age;
}

/* The pool's content at time T. */
static void state(struct sim *m, double t, double *data, struct plan_meta_parts *p, double *thins)
{
	const struct plan_spec *s = m->s;
	unsigned cap8 = plan_node_capacity(8), cap24 = plan_node_capacity(24);
	double images = (double)s->images;
	double d = images * m->img.data, nodes = 0, cow_leaves = 0, writers = 0;
	for (uint64_t i = 0; i < s->images; i++)
		for (uint64_t j = 0; j < s->containers_per_image; j++) {
			struct plan_container c;
			double w = written(m, (double)(j * s->images + i), t);
			plan_container_blocks(s, m->img.data, w, &c);
			d += c.data;
			nodes += c.leaves + c.internal;
			cow_leaves += c.cow_leaves;
			writers += c.cow_leaves > 0;
		}
	if (images > 0) {
		cow_leaves /= images;
		writers /= images;
	}
	*data = d;
	double t_count =
	        1 + images * ((double)s->layers_per_image + (double)s->containers_per_image);
	*thins = t_count;
	memset(p, 0, sizeof(*p));
	p->superblock = 1;
	p->space_maps =
	        (double)plan_space_map_blocks((uint64_t)m->data_total, (uint64_t)m->meta_total);
	double tl = (double)plan_leaves_sequential((uint64_t)t_count, cap8);
	p->top_level = tl + plan_internal_nodes(tl, 1);
	double dl = (double)plan_leaves_sequential((uint64_t)t_count, cap24);
	p->details = dl + plan_internal_nodes(dl, 1);
	/* each thin's subtree root: the base device's own; layers and containers share until
	 * written (counted in images/containers) */
	p->images = 1 + images * m->img.nodes;
	p->containers = nodes;
	/* counts of 3 or more go to the overflow trees: image blocks whose leaf two containers
	 * copied (1 + 2 leaf references), and image leaves under a root two containers copied */
	double k = (double)s->containers_per_image, over = 0;
	if (m->img.top_leaves > 0 && k >= 2) {
		double q = cow_leaves / k / m->img.top_leaves;
		double p2 = 1 - pow(1 - q, k) - k * q * pow(1 - q, k - 1);
		over += images * m->img.top_mappings * (p2 > 0 ? p2 : 0);
		if (writers >= 2)
			over += images * m->img.top_leaves;
	}
	if (over > 0) {
		double ol = plan_leaves_random(over, plan_node_capacity(4));
		p->overflow = ol - 1 + plan_internal_nodes(ol, 0);
	}
	p->reserve = (double)plan_meta_reserve((uint64_t)m->meta_total);
}

static double parts_sum(const struct plan_meta_parts *p)
{
	return p->superblock + p->space_maps + p->top_level + p->details + p->images +
	       p->containers + p->overflow;
}

/* When a quantity going from A (at T0) to B (at T1) crossed X. */
static double cross(double t0, double a, double t1, double b, double x)
{
	if (b == a)
		return t1;
	double f = (x - a) / (b - a);
	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	return t0 + f * (t1 - t0);
}

/* LVM's autoextend: grow by PERCENT of the size, as many times as it takes to bring the use
 * under the threshold, in whole extents, out of the VG's free space. */
static void autoextend(struct sim *m, double t, double used, double *total, double unit,
                       enum plan_event_kind kind)
{
	const struct plan_spec *s = m->s;
	if (s->autoextend_threshold >= 100 || s->autoextend_percent <= 0)
		return;
	if (used * 100 < s->autoextend_threshold * *total)
		return;
	double add_bytes = 0, cur = *total * unit;
	double step = ceil(cur * s->autoextend_percent / 100 / (double)s->extent_size) *
	              (double)s->extent_size;
	while (used * 100 >= s->autoextend_threshold * (cur + add_bytes) / unit)
		add_bytes += step;
	if (add_bytes > m->vg_free) {
		if (!m->vg_full)
			event(m, PLAN_EV_VG_FULL, t, *total, *total);
		m->vg_full = true;
		return;
	}
	m->vg_free -= add_bytes;
	double before = *total;
	*total = floor((cur + add_bytes) / unit);
	event(m, kind, t, before, *total);
}

int plan_run(const struct plan_spec *s, struct plan_result *r)
{
	memset(r, 0, sizeof(*r));
	size_t steps = (size_t)ceil(s->duration_h / s->step_h - 1e-9);
	r->pts = calloc(steps + 1, sizeof(*r->pts));
	if (!r->pts)
		return -1;
	struct sim m = { .s = s, .r = r, .low_armed = true, .full_md = -1 };
	plan_image_blocks(s, &m.img);
	m.data_total = floor((double)s->data_size / (double)s->block_size);
	double meta = (double)s->metadata_size / PLAN_META_BLOCK;
	m.meta_total =
	        meta < (double)PLAN_META_MAX_BLOCKS ? floor(meta) : (double)PLAN_META_MAX_BLOCKS;
	m.vg_free = (double)s->vg_free;
	m.slots = (double)(s->images * s->containers_per_image);
	m.life_h = s->churn_per_hour > 0 && m.slots > 0 ? m.slots / s->churn_per_hour : 0;
	m.rate = (double)s->container_writes / (m.life_h ? m.life_h : s->duration_h);
	double pt = 0, pd = 0, pmeta = 0;
	for (size_t i = 0; i <= steps; i++) {
		double t = i == steps ? s->duration_h : (double)i * s->step_h;
		double d, thins;
		struct plan_meta_parts p;
		state(&m, t, &d, &p, &thins);
		double md = parts_sum(&p), mu = md + p.reserve;
		/* while the data is full nothing is provisioned (writes queue or fail), so the
		 * metadata stays where it was when the pool filled */
		if (d >= m.data_total && m.full_md >= 0 && md > m.full_md) {
			md = m.full_md;
			mu = md + p.reserve;
		}
		if (i) {
			double free_d = m.data_total - d;
			if (s->low_water_blocks && m.low_armed &&
			    free_d <= (double)s->low_water_blocks) {
				event(&m, PLAN_EV_LOW_WATER,
				      cross(pt, pd, t, d,
				            m.data_total - (double)s->low_water_blocks),
				      d, m.data_total);
				m.low_armed = false;
			}
			double before = m.data_total;
			autoextend(&m,
			           cross(pt, pd * 100 / m.data_total, t, d * 100 / m.data_total,
			                 s->autoextend_threshold),
			           d, &m.data_total, (double)s->block_size,
			           PLAN_EV_AUTOEXTEND_DATA);
			if (m.data_total != before &&
			    m.data_total - d > (double)s->low_water_blocks)
				m.low_armed = true; /* dm-thin re-arms the event on a resize */
			autoextend(&m,
			           cross(pt, pmeta * 100 / m.meta_total, t, mu * 100 / m.meta_total,
			                 s->autoextend_threshold),
			           mu, &m.meta_total, PLAN_META_BLOCK, PLAN_EV_AUTOEXTEND_META);
			if (m.meta_total > (double)PLAN_META_MAX_BLOCKS)
				m.meta_total = (double)PLAN_META_MAX_BLOCKS;
			/* Docker's rule: free < total·p/100 (at least 1), strictly less */
			if (s->min_free_space > 0) {
				double need = floor(m.data_total * s->min_free_space / 100);
				need = need < 1 ? 1 : need;
				bool refuse = m.data_total - d < need;
				if (refuse && !m.min_data)
					event(&m, PLAN_EV_MIN_FREE_DATA,
					      cross(pt, pd, t, d, m.data_total - need), d, need);
				m.min_data = refuse;
				double needm = floor(m.meta_total * s->min_free_space / 100);
				needm = needm < 1 ? 1 : needm;
				refuse = m.meta_total - mu < needm;
				if (refuse && !m.min_meta)
					event(&m, PLAN_EV_MIN_FREE_META,
					      cross(pt, pmeta, t, mu, m.meta_total - needm), mu,
					      needm);
				m.min_meta = refuse;
			}
			if (d >= m.data_total && !m.data_full) {
				event(&m, PLAN_EV_DATA_FULL, cross(pt, pd, t, d, m.data_total), d,
				      m.data_total);
				m.data_full = true;
				m.full_md = md;
			}
			if (d < m.data_total) {
				m.data_full = false;
				m.full_md = -1;
			}
			if (mu >= m.meta_total && !m.meta_full) {
				event(&m, PLAN_EV_META_FULL, cross(pt, pmeta, t, mu, m.meta_total),
				      mu, m.meta_total);
				m.meta_full = true;
			}
		}
		struct plan_point *pp = &r->pts[r->nr_pts++];
		pp->t_h = t;
		pp->data_used = d < m.data_total ? d : m.data_total;
		pp->data_total = m.data_total;
		pp->meta_used = mu < m.meta_total ? mu : m.meta_total;
		pp->meta_total = m.meta_total;
		pp->thins = thins;
		if (pp->data_used > r->peak_data)
			r->peak_data = pp->data_used;
		if (d > r->peak_demand)
			r->peak_demand = d;
		if (md >= r->peak_meta) {
			r->peak_meta = md;
			r->parts_at_peak = p;
		}
		if (thins > r->peak_thins)
			r->peak_thins = thins;
		pt = t;
		pd = d;
		pmeta = mu;
	}
	/* bytes and IO over the whole run, every container life (a life cut short by the end
	 * counts in part) */
	struct plan_container c;
	plan_container_blocks(s, m.img.data, (double)s->container_writes, &c);
	r->bytes_written = m.slots * m.rate * s->duration_h;
	double lives = s->container_writes ? r->bytes_written / (double)s->container_writes : 0;
	r->zero_bytes = s->zeroing ? lives * c.partial * (double)s->block_size : 0;
	r->copy_bytes = lives * c.cow * (double)s->block_size;
	r->vg_free_left = m.vg_free;
	r->data_size_end = m.data_total * (double)s->block_size;
	r->meta_size_end = m.meta_total * PLAN_META_BLOCK;
	return 0;
}

void plan_result_free(struct plan_result *r)
{
	free(r->pts);
	r->pts = NULL;
	r->nr_pts = 0;
}
