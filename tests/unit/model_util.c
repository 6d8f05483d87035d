/* Shared helpers for the model-based unit tests; see model_util.h. */
#include "model_util.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pdata/endian.h"
#include "pdata/format.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

/* ---- PRNG, seed, scale ---- */

uint64_t mu_seed(uint64_t def)
{
	const char *s = getenv("THINP_SEED");
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "ignoring malformed THINP_SEED=%s\n", s);
		return def;
	}
	return v;
}

double mu_scale(void)
{
	const char *s = getenv("THINP_TEST_SCALE");
	if (!s || !*s)
		return 1.0;
	char *end;
	double v = strtod(s, &end);
	if (*end || !(v > 0)) {
		fprintf(stderr, "ignoring malformed THINP_TEST_SCALE=%s\n", s);
		return 1.0;
	}
	return v;
}

uint64_t mu_scaled(uint64_t n, uint64_t min)
{
	double v = (double)n * mu_scale();
	uint64_t r = v >= 1e18 ? (uint64_t)1e18 : (uint64_t)v;
	return r < min ? min : r;
}

void mu_rng_init(struct mu_rng *r, uint64_t seed)
{
	r->s = seed ^ 0x5DEECE66Dull;
}

uint64_t mu_next(struct mu_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint64_t mu_below(struct mu_rng *r, uint64_t n)
{
	/* the modulo bias is irrelevant for test-sized n */
	return n ? mu_next(r) % n : 0;
}

bool mu_pct(struct mu_rng *r, unsigned pct)
{
	return mu_below(r, 100) < pct;
}

void mu_fill(struct mu_rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		uint64_t v = mu_next(r);
		size_t n = len < 8 ? len : 8;
		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

/* ---- scratch directories, external programs ---- */

int mu_mkdtemp(char *buf, size_t len, const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	int n = snprintf(buf, len, "%s/thinp-%s-XXXXXX", tmp, tag);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void mu_rmtree(const char *path)
{
	if (path && *path)
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool mu_find_prog(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/local/sbin", path ? path : "");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (!*d)
			continue;
		int n = snprintf(buf, len, "%s/%s", d, name);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

int mu_run(const char *cmd, char *out, size_t len)
{
	char full[8192];
	snprintf(full, sizeof(full), "(%s) 2>&1", cmd);
	FILE *p = popen(full, "r");
	if (!p)
		return -1;
	size_t used = 0;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		if (out && len && used < len - 1) {
			size_t room = len - 1 - used;
			size_t c = n < room ? n : room;
			memcpy(out + used, chunk, c);
			used += c;
		}
	}
	if (out && len)
		out[used] = 0;
	int st = pclose(p);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* ---- metadata checker ---- */

static const char *kind_name(unsigned k)
{
	static const char *const names[] = { "free",           "btree node", "bitmap",
		                             "metadata index", "superblock", "caller block" };
	return k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

static int mc_fail(struct mu_mc *mc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(mc->err, sizeof(mc->err), fmt, ap);
	va_end(ap);
	return -1;
}

int mu_mc_init(struct mu_mc *mc, struct tp_dev *dev)
{
	memset(mc, 0, sizeof(*mc));
	int r = bm_create(dev, 256, &mc->bm);
	if (r)
		return mc_fail(mc, "bm_create: %s", strerror(-r));
	uint64_t n = mc->nr_blocks = bm_nr_blocks(mc->bm);
	mc->expect = calloc(n ? n : 1, sizeof(*mc->expect));
	mc->kind = calloc(n ? n : 1, sizeof(*mc->kind));
	mc->height = calloc(n ? n : 1, sizeof(*mc->height));
	mc->first_key = calloc(n ? n : 1, sizeof(*mc->first_key));
	mc->last_key = calloc(n ? n : 1, sizeof(*mc->last_key));
	mc->entries = calloc(n ? n : 1, sizeof(*mc->entries));
	if (!mc->expect || !mc->kind || !mc->height || !mc->first_key || !mc->last_key ||
	    !mc->entries) {
		mu_mc_free(mc);
		return mc_fail(mc, "out of memory");
	}
	return 0;
}

void mu_mc_free(struct mu_mc *mc)
{
	bm_destroy(mc->bm);
	free(mc->expect);
	free(mc->kind);
	free(mc->height);
	free(mc->first_key);
	free(mc->last_key);
	free(mc->entries);
	mc->bm = NULL;
	mc->expect = NULL;
	mc->kind = NULL;
	mc->height = NULL;
	mc->first_key = mc->last_key = mc->entries = NULL;
}

int mu_mc_ref(struct mu_mc *mc, uint64_t b, enum mu_kind kind)
{
	if (b >= mc->nr_blocks)
		return mc_fail(mc, "reference to %s block %llu beyond the device (%llu blocks)",
		               kind_name(kind), (unsigned long long)b,
		               (unsigned long long)mc->nr_blocks);
	if (mc->kind[b] != MU_FREE && mc->kind[b] != kind)
		return mc_fail(mc, "block %llu is referenced both as a %s and as a %s",
		               (unsigned long long)b, kind_name(mc->kind[b]), kind_name(kind));
	mc->kind[b] = (uint8_t)kind;
	mc->expect[b]++;
	return 0;
}

static int read_block(struct mu_mc *mc, uint64_t b, const struct bm_validator *v, uint8_t *out)
{
	struct bm_block *blk;
	int r = bm_read_lock(mc->bm, b, v, &blk);
	if (r)
		return mc_fail(mc, "reading %s %llu: %s (%s)", v->name, (unsigned long long)b,
		               strerror(-r), bm_last_error(mc->bm));
	memcpy(out, bm_block_data(blk), TP_BLOCK_SIZE);
	bm_unlock(blk);
	return 0;
}

struct visit_args {
	unsigned levels;
	uint32_t vs;
	mu_leaf_fn fn;
	void *ctx;
};

static uint64_t nkey(const uint8_t *d, uint32_t i)
{
	return le64_get(d + BTREE_HEADER_SIZE + 8 * i);
}

static const uint8_t *nval(const uint8_t *d, uint32_t i)
{
	return d + BTREE_HEADER_SIZE + 8 * (size_t)le32_get(d + 20) + (size_t)i * le32_get(d + 24);
}

/* Keys of node B must lie in [lo, hi) (hi == 0 && !has_hi: unbounded). */
static int visit_node(struct mu_mc *mc, const struct visit_args *a, uint64_t b, unsigned level,
                      uint64_t lo, uint64_t hi, bool has_hi, bool is_root, int *height,
                      uint64_t *entries)
{
	bool first = b < mc->nr_blocks && mc->kind[b] == MU_FREE;
	if (mu_mc_ref(mc, b, MU_NODE))
		return -1;
	if (!first) {
		if (mc->height[b] < 0)
			return mc_fail(mc, "btree node %llu is its own ancestor",
			               (unsigned long long)b);
		if (mc->first_key[b] <= mc->last_key[b] &&
		    (mc->first_key[b] < lo || (has_hi && mc->last_key[b] >= hi)))
			return mc_fail(
			        mc,
			        "shared btree node %llu: keys %llu..%llu outside the parent's range [%llu, %llu)",
			        (unsigned long long)b, (unsigned long long)mc->first_key[b],
			        (unsigned long long)mc->last_key[b], (unsigned long long)lo,
			        (unsigned long long)hi);
		*height = mc->height[b];
		*entries = mc->entries[b];
		return 0;
	}
	mc->nr_nodes++;
	mc->height[b] = -1;
	uint8_t d[TP_BLOCK_SIZE];
	if (read_block(mc, b, &tp_btree_validator, d))
		return -1;
	uint32_t flags = le32_get(d + 4), nr = le32_get(d + 16), max = le32_get(d + 20),
	         vsf = le32_get(d + 24), pad = le32_get(d + 28);
	bool leaf = flags == BTREE_LEAF_NODE, bottom = level + 1 == a->levels;
	if (flags != BTREE_LEAF_NODE && flags != BTREE_INTERNAL_NODE)
		return mc_fail(mc, "btree node %llu: flags %u", (unsigned long long)b, flags);
	uint32_t want_vs = leaf && bottom ? a->vs : 8;
	if (vsf != want_vs)
		return mc_fail(mc, "btree node %llu (%s, level %u): value size %u, expected %u",
		               (unsigned long long)b, leaf ? "leaf" : "internal", level, vsf,
		               want_vs);
	if (max != btree_max_entries(vsf) || nr > max)
		return mc_fail(mc, "btree node %llu: nr %u max %u for value size %u",
		               (unsigned long long)b, nr, max, vsf);
	if (pad)
		return mc_fail(mc, "btree node %llu: header padding %u", (unsigned long long)b,
		               pad);
	if (!is_root && nr < max / 3)
		return mc_fail(mc, "non-root btree node %llu has %u entries (< %u = max/3)",
		               (unsigned long long)b, nr, max / 3);
	if (!leaf && nr < (is_root ? 2u : 1u))
		return mc_fail(mc, "internal %s node %llu has %u entries", is_root ? "root" : "",
		               (unsigned long long)b, nr);
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t k = nkey(d, i);
		if (i && k <= nkey(d, i - 1))
			return mc_fail(mc, "btree node %llu: key[%u]=%llu <= key[%u]=%llu",
			               (unsigned long long)b, i, (unsigned long long)k, i - 1,
			               (unsigned long long)nkey(d, i - 1));
		if (k < lo || (has_hi && k >= hi))
			return mc_fail(
			        mc,
			        "btree node %llu: key[%u]=%llu outside the parent's range [%llu, %llu)",
			        (unsigned long long)b, i, (unsigned long long)k,
			        (unsigned long long)lo, (unsigned long long)hi);
	}
	if (nr) {
		mc->first_key[b] = nkey(d, 0);
		mc->last_key[b] = nkey(d, nr - 1);
	} else {
		mc->first_key[b] = 1;
		mc->last_key[b] = 0;
	}
	uint64_t total = 0;
	int h = 0;
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t v = le64_get(nval(d, i));
		if (!leaf) {
			int ch;
			uint64_t ce;
			bool chi = i + 1 < nr ? true : has_hi;
			uint64_t chv = i + 1 < nr ? nkey(d, i + 1) : hi;
			if (visit_node(mc, a, v, level, nkey(d, i), chv, chi, false, &ch, &ce))
				return -1;
			if (i && ch != h)
				return mc_fail(
				        mc,
				        "btree node %llu: children at different depths (%d and %d)",
				        (unsigned long long)b, h, ch);
			h = ch;
			total += ce;
		} else if (!bottom) {
			int ch;
			uint64_t ce;
			if (visit_node(mc, a, v, level + 1, 0, 0, false, true, &ch, &ce))
				return -1;
			total += ce;
		} else {
			if (a->fn && a->fn(a->ctx, nkey(d, i), nval(d, i)))
				return mc->err[0] ?
				               -1 :
				               mc_fail(mc,
				                       "leaf callback failed at node %llu key %llu",
				                       (unsigned long long)b,
				                       (unsigned long long)nkey(d, i));
			total++;
		}
	}
	mc->height[b] = (int16_t)(leaf ? 0 : h + 1);
	mc->entries[b] = total;
	*height = mc->height[b];
	*entries = total;
	return 0;
}

int mu_mc_btree(struct mu_mc *mc, uint64_t root, unsigned levels, uint32_t vs, mu_leaf_fn fn,
                void *ctx, uint64_t *nr_entries)
{
	struct visit_args a = { levels, vs, fn, ctx };
	int h;
	uint64_t e;
	if (visit_node(mc, &a, root, 0, 0, 0, false, true, &h, &e))
		return -1;
	if (nr_entries)
		*nr_entries = e;
	return 0;
}

/* Walk the leaf entries of a single-level tree already checked by mu_mc_btree. */
static int raw_walk(struct mu_mc *mc, uint64_t b, mu_leaf_fn fn, void *ctx)
{
	uint8_t d[TP_BLOCK_SIZE];
	if (read_block(mc, b, &tp_btree_validator, d))
		return -1;
	uint32_t nr = le32_get(d + 16);
	bool leaf = le32_get(d + 4) == BTREE_LEAF_NODE;
	for (uint32_t i = 0; i < nr; i++) {
		int r = leaf ? fn(ctx, nkey(d, i), nval(d, i)) :
		               raw_walk(mc, le64_get(nval(d, i)), fn, ctx);
		if (r)
			return r;
	}
	return 0;
}

struct overflow_ctx {
	struct mu_mc *mc;
	uint32_t *counts;
	uint8_t *seen;
	uint64_t nr;
	const char *what;
};

static int overflow_entry(void *c, uint64_t key, const uint8_t *value)
{
	struct overflow_ctx *o = c;
	uint32_t v = le32_get(value);
	if (key >= o->nr)
		return mc_fail(o->mc, "%s overflow entry for block %llu beyond the map (%llu)",
		               o->what, (unsigned long long)key, (unsigned long long)o->nr);
	if (o->counts[key] != 3)
		return mc_fail(o->mc, "%s overflow entry for block %llu whose bitmap value is %u",
		               o->what, (unsigned long long)key, o->counts[key]);
	if (v < 3)
		return mc_fail(o->mc, "%s overflow entry for block %llu holds count %u (< 3)",
		               o->what, (unsigned long long)key, v);
	o->seen[key] = 1;
	o->counts[key] = v;
	return 0;
}

/* Decode bitmaps and overflow tree into *counts. */
static int decode_sm(struct mu_mc *mc, const char *what, const struct sm_index_entry *ie,
                     uint64_t nb, uint64_t nr_blocks, uint64_t nr_allocated, uint64_t ref_root,
                     uint32_t **counts_out)
{
	uint32_t *counts = calloc(nr_blocks ? nr_blocks : 1, sizeof(*counts));
	uint8_t *seen = calloc(nr_blocks ? nr_blocks : 1, 1);
	if (!counts || !seen) {
		free(counts);
		free(seen);
		return mc_fail(mc, "out of memory");
	}
	uint8_t d[TP_BLOCK_SIZE];
	for (uint64_t i = 0; i < nb; i++) {
		if (mu_mc_ref(mc, ie[i].blocknr, MU_BITMAP) ||
		    read_block(mc, ie[i].blocknr, &tp_bitmap_validator, d))
			goto fail;
		uint64_t first = i * SM_ENTRIES_PER_BITMAP;
		uint64_t n = nr_blocks - first;
		if (n > SM_ENTRIES_PER_BITMAP)
			n = SM_ENTRIES_PER_BITMAP;
		uint32_t nr_free = 0, first_free = (uint32_t)n;
		for (uint32_t e = 0; e < SM_ENTRIES_PER_BITMAP; e++) {
			unsigned v = sm_bitmap_get(d, e);
			if (e >= n) {
				if (v) {
					mc_fail(mc, "%s bitmap %llu: entry %u past the end is %u",
					        what, (unsigned long long)i, e, v);
					goto fail;
				}
				continue;
			}
			counts[first + e] = v;
			if (!v) {
				nr_free++;
				if (first_free == n)
					first_free = e;
			}
		}
		if (ie[i].nr_free != nr_free) {
			mc_fail(mc, "%s index entry %llu: nr_free %u, bitmap has %u free", what,
			        (unsigned long long)i, ie[i].nr_free, nr_free);
			goto fail;
		}
		if (ie[i].none_free_before > first_free) {
			mc_fail(mc, "%s index entry %llu: none_free_before %u but entry %u is free",
			        what, (unsigned long long)i, ie[i].none_free_before, first_free);
			goto fail;
		}
		if (ie[i].none_free_before != first_free) {
			mc_fail(mc,
			        "%s index entry %llu: none_free_before %u not exact (first free %u)",
			        what, (unsigned long long)i, ie[i].none_free_before, first_free);
			goto fail;
		}
	}
	struct overflow_ctx o = { mc, counts, seen, nr_blocks, what };
	if (mu_mc_btree(mc, ref_root, 1, 4, overflow_entry, &o, NULL))
		goto fail;
	uint64_t alloc = 0;
	for (uint64_t b = 0; b < nr_blocks; b++) {
		if (counts[b] == 3 && !seen[b]) {
			mc_fail(mc, "%s block %llu: bitmap value 3 without an overflow entry", what,
			        (unsigned long long)b);
			goto fail;
		}
		if (counts[b])
			alloc++;
	}
	if (alloc != nr_allocated) {
		mc_fail(mc, "%s: root says nr_allocated %llu, bitmaps have %llu", what,
		        (unsigned long long)nr_allocated, (unsigned long long)alloc);
		goto fail;
	}
	free(seen);
	*counts_out = counts;
	return 0;
fail:
	free(counts);
	free(seen);
	return -1;
}

int mu_mc_sm_meta(struct mu_mc *mc, const uint8_t root_bytes[32], uint32_t **counts, uint64_t *nr)
{
	struct sm_root root;
	sm_root_unpack(root_bytes, &root);
	if (!root.nr_blocks || root.nr_blocks > mc->nr_blocks ||
	    root.nr_blocks > SM_METADATA_MAX_BLOCKS)
		return mc_fail(mc, "metadata space map nr_blocks %llu (device %llu)",
		               (unsigned long long)root.nr_blocks,
		               (unsigned long long)mc->nr_blocks);
	uint64_t nb = (root.nr_blocks + SM_ENTRIES_PER_BITMAP - 1) / SM_ENTRIES_PER_BITMAP;
	uint8_t d[TP_BLOCK_SIZE];
	if (mu_mc_ref(mc, root.bitmap_root, MU_INDEX) ||
	    read_block(mc, root.bitmap_root, &tp_index_validator, d))
		return -1;
	if (le32_get(d + 4))
		return mc_fail(mc, "metadata index %llu: padding %u",
		               (unsigned long long)root.bitmap_root, le32_get(d + 4));
	struct sm_index_entry ie[SM_MAX_METADATA_BITMAPS];
	for (uint64_t i = 0; i < SM_MAX_METADATA_BITMAPS; i++) {
		const uint8_t *p = d + 16 + i * SM_INDEX_ENTRY_SIZE;
		if (i < nb) {
			sm_index_entry_unpack(p, &ie[i]);
		} else {
			for (unsigned j = 0; j < SM_INDEX_ENTRY_SIZE; j++)
				if (p[j])
					return mc_fail(
					        mc,
					        "metadata index: entry %llu past %llu bitmaps is not zero",
					        (unsigned long long)i, (unsigned long long)nb);
		}
	}
	if (decode_sm(mc, "metadata", ie, nb, root.nr_blocks, root.nr_allocated,
	              root.ref_count_root, counts))
		return -1;
	*nr = root.nr_blocks;
	return 0;
}

struct ie_ctx {
	struct mu_mc *mc;
	struct sm_index_entry *ie;
	uint8_t *seen;
	uint64_t nb;
};

static int ie_entry(void *c, uint64_t key, const uint8_t *value)
{
	struct ie_ctx *x = c;
	if (key >= x->nb)
		return mc_fail(x->mc, "data index has an entry for bitmap %llu of %llu",
		               (unsigned long long)key, (unsigned long long)x->nb);
	sm_index_entry_unpack(value, &x->ie[key]);
	x->seen[key] = 1;
	return 0;
}

int mu_mc_sm_disk(struct mu_mc *mc, const uint8_t root_bytes[32], uint32_t **counts, uint64_t *nr)
{
	struct sm_root root;
	sm_root_unpack(root_bytes, &root);
	uint64_t nb = (root.nr_blocks + SM_ENTRIES_PER_BITMAP - 1) / SM_ENTRIES_PER_BITMAP;
	struct sm_index_entry *ie = calloc(nb ? nb : 1, sizeof(*ie));
	uint8_t *seen = calloc(nb ? nb : 1, 1);
	if (!ie || !seen) {
		free(ie);
		free(seen);
		return mc_fail(mc, "out of memory");
	}
	struct ie_ctx x = { mc, ie, seen, nb };
	int r = mu_mc_btree(mc, root.bitmap_root, 1, SM_INDEX_ENTRY_SIZE, ie_entry, &x, NULL);
	for (uint64_t i = 0; !r && i < nb; i++)
		if (!seen[i])
			r = mc_fail(mc, "data index lacks bitmap %llu", (unsigned long long)i);
	if (!r)
		r = decode_sm(mc, "data", ie, nb, root.nr_blocks, root.nr_allocated,
		              root.ref_count_root, counts);
	free(ie);
	free(seen);
	if (!r)
		*nr = root.nr_blocks;
	return r;
}

int mu_mc_compare(struct mu_mc *mc, const uint32_t *counts, uint64_t nr)
{
	for (uint64_t b = 0; b < mc->nr_blocks; b++) {
		uint32_t have = b < nr ? counts[b] : 0;
		if (b >= nr && mc->expect[b])
			return mc_fail(
			        mc,
			        "metadata block %llu (%s) is referenced but beyond the space map (%llu)",
			        (unsigned long long)b, kind_name(mc->kind[b]),
			        (unsigned long long)nr);
		if (have != mc->expect[b])
			return mc_fail(
			        mc, "metadata block %llu (%s): space map count %u, references %u",
			        (unsigned long long)b, kind_name(mc->kind[b]), have, mc->expect[b]);
	}
	return 0;
}

/* ---- whole thin-pool metadata ---- */

struct data_ctx {
	struct mu_mc *mc;
	uint32_t *expect;
	uint64_t nr_data;
	uint32_t time;
};

static int data_entry(void *c, uint64_t key, const uint8_t *value)
{
	struct data_ctx *x = c;
	uint64_t v = le64_get(value), b = v >> 24;
	uint32_t t = (uint32_t)(v & THIN_MAX_TIME);
	if (b >= x->nr_data)
		return mc_fail(x->mc, "vblock %llu maps data block %llu beyond the pool (%llu)",
		               (unsigned long long)key, (unsigned long long)b,
		               (unsigned long long)x->nr_data);
	if (t > x->time)
		return mc_fail(x->mc, "vblock %llu mapped at time %u, after the pool time %u",
		               (unsigned long long)key, t, x->time);
	x->expect[b]++;
	return 0;
}

struct kv {
	uint64_t key;
	uint8_t v[24];
};

struct kv_list {
	struct kv *a;
	size_t nr, cap;
	uint32_t vs;
};

static int kv_add(void *c, uint64_t key, const uint8_t *value)
{
	struct kv_list *l = c;
	if (l->nr == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct kv *n = realloc(l->a, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->a = n;
		l->cap = cap;
	}
	l->a[l->nr].key = key;
	memcpy(l->a[l->nr].v, value, l->vs);
	l->nr++;
	return 0;
}

int mu_check_thin(struct tp_dev *dev, uint32_t **data_counts, uint64_t *nr_data,
                  struct mu_thin_summary *sum, char *err, size_t errlen)
{
	struct mu_mc mc;
	uint32_t *dexpect = NULL, *dcounts = NULL, *mcounts = NULL;
	uint64_t ndata = 0, nmeta = 0;
	struct kv_list top = { .vs = 8 }, det = { .vs = 24 };
	int r = -1;
	memset(sum, 0, sizeof(*sum));
	if (mu_mc_init(&mc, dev)) {
		snprintf(err, errlen, "%s", mc.err);
		return -1;
	}
	uint8_t d[TP_BLOCK_SIZE];
	struct thin_superblock sb;
	if (mu_mc_ref(&mc, 0, MU_SB) || read_block(&mc, 0, &thin_sb_validator, d))
		goto out;
	thin_sb_unpack(d, &sb);
	if (sb.version < 1 || sb.version > THIN_VERSION || sb.metadata_block_size != 8 ||
	    sb.incompat_flags || sb.compat_ro_flags || sb.data_block_size < 128 ||
	    sb.data_block_size % 128) {
		mc_fail(&mc,
		        "superblock: version %u, metadata_block_size %u, incompat 0x%x, compat_ro 0x%x, data_block_size %u",
		        sb.version, sb.metadata_block_size, sb.incompat_flags, sb.compat_ro_flags,
		        sb.data_block_size);
		goto out;
	}
	struct sm_root droot;
	sm_root_unpack(sb.data_sm_root, &droot);
	ndata = droot.nr_blocks;
	dexpect = calloc(ndata ? ndata : 1, sizeof(*dexpect));
	if (!dexpect) {
		mc_fail(&mc, "out of memory");
		goto out;
	}
	struct data_ctx dc = { &mc, dexpect, ndata, sb.time };
	if (mu_mc_btree(&mc, sb.data_mapping_root, 2, 8, data_entry, &dc, &sum->nr_mappings) ||
	    mu_mc_btree(&mc, sb.device_details_root, 1, 24, NULL, NULL, NULL))
		goto out;
	/* devices: top-level entries against details */
	if (raw_walk(&mc, sb.data_mapping_root, kv_add, &top) ||
	    raw_walk(&mc, sb.device_details_root, kv_add, &det))
		goto out;
	if (top.nr != det.nr) {
		mc_fail(&mc, "mapping tree has %zu devices, details tree %zu", top.nr, det.nr);
		goto out;
	}
	for (size_t i = 0; i < top.nr; i++) {
		struct thin_details td;
		thin_details_unpack(det.a[i].v, &td);
		uint64_t sub = le64_get(top.a[i].v);
		if (top.a[i].key != det.a[i].key) {
			mc_fail(&mc, "device %llu in the mapping tree, %llu in the details tree",
			        (unsigned long long)top.a[i].key, (unsigned long long)det.a[i].key);
			goto out;
		}
		if (top.a[i].key > THIN_MAX_DEV_ID) {
			mc_fail(&mc, "device id %llu exceeds 24 bits",
			        (unsigned long long)top.a[i].key);
			goto out;
		}
		if (td.mapped_blocks != mc.entries[sub]) {
			mc_fail(&mc,
			        "device %llu: details say %llu mapped blocks, the tree has %llu",
			        (unsigned long long)top.a[i].key,
			        (unsigned long long)td.mapped_blocks,
			        (unsigned long long)mc.entries[sub]);
			goto out;
		}
		if (td.creation_time > td.snapshotted_time || td.snapshotted_time > sb.time) {
			mc_fail(&mc,
			        "device %llu: creation_time %u, snapshotted_time %u, pool time %u",
			        (unsigned long long)top.a[i].key, td.creation_time,
			        td.snapshotted_time, sb.time);
			goto out;
		}
	}
	sum->nr_devices = top.nr;
	sum->held_root = sb.held_root;
	if (sb.held_root) {
		struct thin_superblock hs;
		if (mu_mc_ref(&mc, sb.held_root, MU_SB) ||
		    read_block(&mc, sb.held_root, &thin_sb_validator, d))
			goto out;
		thin_sb_unpack(d, &hs);
		for (unsigned i = 0; i < SM_ROOT_FIELD_SIZE; i++)
			if (hs.data_sm_root[i] || hs.metadata_sm_root[i]) {
				mc_fail(&mc, "metadata snapshot %llu: space map roots not zeroed",
				        (unsigned long long)sb.held_root);
				goto out;
			}
		if (hs.held_root) {
			mc_fail(&mc, "metadata snapshot %llu has a held_root itself",
			        (unsigned long long)sb.held_root);
			goto out;
		}
		if (mu_mc_btree(&mc, hs.data_mapping_root, 2, 8, data_entry, &dc, NULL) ||
		    mu_mc_btree(&mc, hs.device_details_root, 1, 24, NULL, NULL, NULL))
			goto out;
	}
	uint64_t n2;
	if (mu_mc_sm_disk(&mc, sb.data_sm_root, &dcounts, &n2))
		goto out;
	if (mu_mc_sm_meta(&mc, sb.metadata_sm_root, &mcounts, &nmeta))
		goto out;
	if (mu_mc_compare(&mc, mcounts, nmeta))
		goto out;
	for (uint64_t b = 0; b < ndata; b++) {
		if (dcounts[b] != dexpect[b]) {
			mc_fail(&mc, "data block %llu: space map count %u, %u leaf entries map it",
			        (unsigned long long)b, dcounts[b], dexpect[b]);
			goto out;
		}
		if (dcounts[b])
			sum->nr_data_used++;
	}
	for (uint64_t b = 0; b < mc.nr_blocks; b++)
		if (mc.expect[b])
			sum->nr_meta_used++;
	r = 0;
out:
	if (r)
		snprintf(err, errlen, "%s", mc.err);
	if (!r && data_counts) {
		*data_counts = dcounts;
		dcounts = NULL;
	}
	if (!r && nr_data)
		*nr_data = ndata;
	free(dexpect);
	free(dcounts);
	free(mcounts);
	free(top.a);
	free(det.a);
	mu_mc_free(&mc);
	return r;
}
