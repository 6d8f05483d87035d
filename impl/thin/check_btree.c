/* Strict checker: blocks and btree nodes. Every node is parsed once; a second
 * pointer to it only adds a reference and is checked against what the first
 * visit recorded (type, key range, height). Recursion is bounded by MAX_LEVEL
 * and the block buffers by MAX_STACK, so no image can make it loop or crash. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdata/crc32c.h"
#include "pdata/endian.h"
#include "thin/check_internal.h"

static const char *const tree_names[NR_TTYPES] = {
	[T_NONE] = "?",
	[T_TOP] = "top-level mapping tree",
	[T_DEV] = "per-device mapping tree",
	[T_DETAILS] = "device details tree",
	[T_DINDEX] = "data space map index tree",
	[T_DOVF] = "data space map overflow tree",
	[T_MOVF] = "metadata space map overflow tree",
};

static const uint32_t leaf_value_size[NR_TTYPES] = {
	[T_TOP] = 8, [T_DEV] = 8, [T_DETAILS] = 24, [T_DINDEX] = 16, [T_DOVF] = 4, [T_MOVF] = 4,
};

const char *ck_kind_name(unsigned k)
{
	switch (k) {
	case K_SB:
		return "the superblock";
	case K_SB_COPY:
		return "the metadata snapshot superblock copy";
	case K_MINDEX:
		return "the metadata space map index";
	case K_MBITMAP:
		return "a metadata space map bitmap";
	case K_DBITMAP:
		return "a data space map bitmap";
	default:
		break;
	}
	if (k > T_NONE && k < NR_TTYPES)
		return tree_names[k];
	return "unreferenced";
}

/* ---- blocks ---- */

int ck_read_block(struct ctx *c, uint64_t b, uint8_t *buf)
{
	int r = tp_dev_pread(c->dev, buf, BLK, b * BLK);
	if (r) {
		ck_fault(c, F_PTR, "cannot read metadata block %llu: %s", (unsigned long long)b,
		         strerror(-r));
		return r;
	}
	return 0;
}

/* Checksum and self-location of a btree node, bitmap or index block at
 * block B; WHAT names it (and B) in the messages. */
bool ck_sealed_ok(struct ctx *c, enum fclass cls, const uint8_t *buf, uint64_t b,
                  uint32_t xor_const, const char *what)
{
	bool ok = true;
	uint32_t want = tp_block_csum(buf, BLK, xor_const), got = le32_get(buf);
	if (want != got) {
		ck_fault(c, cls, "%s: bad checksum (stored %u, computed %u)", what, got, want);
		ok = false;
	}
	uint64_t where = le64_get(buf + 8);
	if (where != b) {
		ck_fault(c, cls, "%s: blocknr field says %llu (expected %llu)", what,
		         (unsigned long long)where, (unsigned long long)b);
		ok = false;
	}
	return ok;
}

/* Is B a block the checker can follow and count? Reports why not; FMT
 * describes the pointer and is only formatted on failure. */
__attribute__((format(printf, 3, 4))) bool ck_ptr_ok(struct ctx *c, uint64_t b, const char *fmt,
                                                     ...)
{
	if (b < c->nr)
		return true;
	char from[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(from, sizeof(from), fmt, ap);
	va_end(ap);
	if (b >= c->dev_blocks)
		ck_fault(
		        c, F_PTR,
		        "%s points at block %llu, beyond the end of the metadata device (%llu blocks)",
		        from, (unsigned long long)b, (unsigned long long)c->dev_blocks);
	else
		ck_fault(c, F_PTR,
		         "%s points at block %llu, outside the metadata space map (%llu blocks)",
		         from, (unsigned long long)b, (unsigned long long)c->msm_blocks);
	return false;
}

void ck_add_ref(struct ctx *c, uint64_t b)
{
	if (c->expected[b] != UINT32_MAX)
		c->expected[b]++;
}

/* Count a pointer to a block that must be referenced exactly once
 * (superblocks, bitmaps, the index): claims it for KIND. */
bool ck_claim(struct ctx *c, uint64_t b, unsigned kind, const char *from)
{
	if (!ck_ptr_ok(c, b, "%s", from))
		return false;
	ck_add_ref(c, b);
	if (c->kind[b] != K_FREE) {
		ck_fault(c, F_SHARE, "block %llu is used as %s and also as %s (referenced from %s)",
		         (unsigned long long)b, ck_kind_name(c->kind[b]), ck_kind_name(kind), from);
		return false;
	}
	c->kind[b] = (uint8_t)kind;
	return true;
}

/* ---- btree walk ---- */

struct node_info *ck_node_of(struct ctx *c, uint64_t b)
{
	uint32_t i = c->node_idx[b];
	return i ? &c->nodes[i - 1] : NULL;
}

static int new_node(struct ctx *c, uint64_t b, struct node_info **out)
{
	if (c->nr_nodes == c->cap_nodes) {
		size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 256;
		struct node_info *n = realloc(c->nodes, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->nodes = n;
		c->cap_nodes = cap;
	}
	struct node_info *ni = &c->nodes[c->nr_nodes++];
	memset(ni, 0, sizeof(*ni));
	ni->state = NS_IN_PROGRESS;
	c->node_idx[b] = (uint32_t)c->nr_nodes;
	*out = ni;
	return 0;
}

static void check_fill(struct ctx *c, const struct tree *t, uint64_t b, struct node_info *ni)
{
	if (ni->nr_entries >= ni->max_entries / 3 || ni->fill_reported)
		return;
	ni->fill_reported = true;
	ck_fault(
	        c, F_NODE,
	        "btree node %llu in the %s: too few entries (%u, a non-root node needs at least %u = max_entries/3)",
	        (unsigned long long)b, t->name, ni->nr_entries, ni->max_entries / 3);
}

/* Values of a leaf of a device's mapping tree. */
static bool node_header_ok(struct ctx *c, const struct tree *t, uint64_t b, const uint8_t *buf,
                           uint32_t *flags_out)
{
	char what[160];
	snprintf(what, sizeof(what), "btree node %llu in the %s", (unsigned long long)b, t->name);
	if (!ck_sealed_ok(c, F_NODE, buf, b, CK_NODE_XOR, what))
		return false;
	uint32_t flags = le32_get(buf + 4), nr = le32_get(buf + 16), max = le32_get(buf + 20),
	         vs = le32_get(buf + 24);
	if (flags != CK_NODE_INTERNAL && flags != CK_NODE_LEAF) {
		ck_fault(
		        c, F_NODE,
		        "btree node %llu in the %s: flags %u are neither internal (1) nor leaf (2)",
		        (unsigned long long)b, t->name, flags);
		return false;
	}
	uint32_t want_vs = flags == CK_NODE_INTERNAL ? 8 : leaf_value_size[t->type];
	if (vs != want_vs) {
		ck_fault(c, F_NODE,
		         "btree node %llu in the %s: value_size %u, expected %u for %s node",
		         (unsigned long long)b, t->name, vs, want_vs,
		         flags == CK_NODE_INTERNAL ? "an internal" : "a leaf");
		return false;
	}
	uint32_t want_max = (BLK - 32) / (8 + vs) / 3 * 3;
	if (max != want_max) {
		ck_fault(c, F_NODE,
		         "btree node %llu in the %s: max_entries %u, expected %u for value_size %u",
		         (unsigned long long)b, t->name, max, want_max, vs);
		return false;
	}
	if (nr > max) {
		ck_fault(c, F_NODE,
		         "btree node %llu in the %s: nr_entries %u exceeds max_entries %u",
		         (unsigned long long)b, t->name, nr, max);
		return false;
	}
	if (flags == CK_NODE_INTERNAL && nr == 0) {
		ck_fault(c, F_NODE, "btree node %llu in the %s: internal node with no entries",
		         (unsigned long long)b, t->name);
		return false;
	}
	*flags_out = flags;
	return true;
}

/* A later pointer to a node already walked: check it fits this place. */
static void revisit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi,
                    bool has_hi, bool is_root, struct visit_res *res)
{
	struct node_info *ni = ck_node_of(c, b);
	res->ok = false;
	if (c->kind[b] != t->type) {
		ck_fault(c, F_SHARE, "block %llu is used as %s and also as a node of the %s",
		         (unsigned long long)b, ck_kind_name(c->kind[b]), t->name);
		ck_lost(c, t->type);
		return;
	}
	if (!ni)
		return;
	if (ni->state == NS_IN_PROGRESS) {
		ck_fault(
		        c, F_NODE,
		        "cycle in the %s: btree node %llu is reached again from inside its own subtree",
		        t->name, (unsigned long long)b);
		return;
	}
	if (ni->state != NS_DONE)
		return; /* damaged, reported on the first visit */
	res->height = ni->height;
	bool ok = ni->clean;
	if (ni->nr_entries) {
		if (ni->first_key < lo) {
			ck_fault(
			        c, F_NODE,
			        "btree node %llu in the %s (shared): first key %llu is below its parent's key %llu",
			        (unsigned long long)b, t->name, (unsigned long long)ni->first_key,
			        (unsigned long long)lo);
			ok = false;
		}
		if (has_hi && ni->last_key >= hi) {
			ck_fault(
			        c, F_NODE,
			        "btree node %llu in the %s (shared): key %llu is not below the next parent key %llu",
			        (unsigned long long)b, t->name, (unsigned long long)ni->last_key,
			        (unsigned long long)hi);
			ok = false;
		}
	}
	if (!is_root)
		check_fill(c, t, b, ni);
	res->ok = ok;
}

int ck_visit(struct ctx *c, const struct tree *t, uint64_t b, uint64_t lo, uint64_t hi, bool has_hi,
             bool is_root, unsigned level, struct visit_res *res)
{
	res->ok = false;
	res->height = 0;
	if (level >= MAX_LEVEL || c->depth >= MAX_STACK) {
		ck_fault(c, F_NODE,
		         "the %s is deeper than %u levels at block %llu: giving up on this branch",
		         t->name, MAX_LEVEL, (unsigned long long)b);
		ck_lost(c, t->type);
		return 0;
	}
	if (c->kind[b] != K_FREE) {
		revisit(c, t, b, lo, hi, has_hi, is_root, res);
		return 0;
	}
	c->kind[b] = (uint8_t)t->type;
	struct node_info *ni;
	int r = new_node(c, b, &ni);
	if (r)
		return r;
	size_t ni_index = (size_t)(ni - c->nodes); /* c->nodes moves when it grows */
	uint8_t *buf = c->bufs[c->depth++];
	r = ck_read_block(c, b, buf);
	uint32_t flags = 0;
	if (r || !node_header_ok(c, t, b, buf, &flags)) {
		/* a read error was reported like any other damage */
		c->nodes[ni_index].state = NS_BAD;
		ck_lost(c, t->type);
		c->depth--;
		return 0;
	}
	uint32_t nr = le32_get(buf + 16), max = le32_get(buf + 20);
	const uint8_t *keys = buf + 32, *vals = buf + 32 + 8 * max;
	bool clean = true;
	ni->nr_entries = nr;
	ni->max_entries = max;
	if (nr) {
		ni->first_key = le64_get(keys);
		ni->last_key = le64_get(keys + 8 * (nr - 1));
	}
	for (uint32_t i = 1; i < nr; i++) {
		uint64_t prev = le64_get(keys + 8 * (i - 1)), k = le64_get(keys + 8 * i);
		if (k <= prev) {
			ck_fault(
			        c, F_NODE,
			        "btree node %llu in the %s: keys out of order (entry %u key %llu follows key %llu)",
			        (unsigned long long)b, t->name, i, (unsigned long long)k,
			        (unsigned long long)prev);
			clean = false;
			break;
		}
	}
	if (nr && ni->first_key < lo) {
		ck_fault(c, F_NODE,
		         "btree node %llu in the %s: first key %llu is below its parent's key %llu",
		         (unsigned long long)b, t->name, (unsigned long long)ni->first_key,
		         (unsigned long long)lo);
		clean = false;
	}
	if (nr && has_hi && ni->last_key >= hi) {
		ck_fault(
		        c, F_NODE,
		        "btree node %llu in the %s: key %llu is not below the next parent key %llu",
		        (unsigned long long)b, t->name, (unsigned long long)ni->last_key,
		        (unsigned long long)hi);
		clean = false;
	}
	if (!is_root)
		check_fill(c, t, b, ni);

	uint64_t nr_values = 0;
	uint8_t height = 0;
	if (flags == CK_NODE_LEAF) {
		nr_values = nr;
		switch (t->type) {
		case T_TOP:
			r = ck_top_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DEV:
			r = ck_dev_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DETAILS:
			ck_details_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DINDEX:
			ck_dindex_leaf(c, t, b, keys, vals, nr);
			break;
		case T_DOVF:
		case T_MOVF:
			r = ck_ovf_leaf(c, t, b, keys, vals, nr);
			break;
		default:
			break;
		}
		if (r) {
			c->depth--;
			return r;
		}
	} else {
		bool have_height = false, clean_depth = true;
		for (uint32_t i = 0; i < nr; i++) {
			uint64_t child = le64_get(vals + 8 * i);
			uint64_t clo = le64_get(keys + 8 * i);
			bool chas_hi = i + 1 < nr ? true : has_hi;
			uint64_t chi = i + 1 < nr ? le64_get(keys + 8 * (i + 1)) : hi;
			if (!ck_ptr_ok(c, child, "btree node %llu in the %s (entry %u)",
			               (unsigned long long)b, t->name, i)) {
				ck_lost(c, t->type);
				clean = false;
				continue;
			}
			ck_add_ref(c, child);
			struct visit_res cr;
			r = ck_visit(c, t, child, clo, chi, chas_hi, false, level + 1, &cr);
			if (r) {
				c->depth--;
				return r;
			}
			if (!cr.ok) {
				clean = false;
				continue;
			}
			struct node_info *cn = ck_node_of(c, child);
			nr_values += cn->nr_values;
			if (!have_height) {
				height = cr.height;
				have_height = true;
			} else if (cr.height != height && clean_depth) {
				clean_depth = false;
				ck_fault(
				        c, F_NODE,
				        "btree node %llu in the %s: leaves at different depths (child %u at block %llu has height %u, earlier children %u)",
				        (unsigned long long)b, t->name, i,
				        (unsigned long long)child, cr.height, height);
				clean = false;
			} else if (cr.height != height) {
				clean = false;
			}
		}
		height++;
	}
	c->depth--;
	ni = &c->nodes[ni_index];
	ni->nr_values = nr_values;
	ni->height = height;
	ni->clean = clean;
	ni->state = NS_DONE;
	res->ok = clean;
	res->height = height;
	return 0;
}

/* Walk a whole tree from a root pointer (which itself counts as a reference). */
int ck_walk_tree(struct ctx *c, enum ttype type, const struct sb_ctx *sb, uint64_t root,
                 const char *from)
{
	struct tree t = { .type = type, .sb = sb };
	snprintf(t.name, sizeof(t.name), "%s%s", tree_names[type], sb ? sb->label : "");
	if (!ck_ptr_ok(c, root, "%s", from)) {
		ck_lost(c, type);
		return 0;
	}
	ck_add_ref(c, root);
	struct visit_res res;
	return ck_visit(c, &t, root, 0, 0, false, true, 0, &res);
}

static int kv_push(struct kv_vec *v, uint64_t key, const uint8_t *val, size_t vs)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct kv *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	struct kv *e = &v->v[v->n++];
	e->key = key;
	memset(e->val, 0, sizeof(e->val));
	memcpy(e->val, val, vs);
	return 0;
}

/* Collect the leaf entries of a tree the walk found clean. Re-reading is
 * cheap (these trees hold one entry per device) and clean nodes were proven
 * acyclic and ordered, so this terminates. *complete is cleared when part of
 * the tree is unusable. */
int ck_enumerate(struct ctx *c, enum ttype type, uint64_t b, unsigned level, struct kv_vec *out,
                 bool *complete)
{
	struct node_info *ni = b < c->nr && c->kind[b] == type ? ck_node_of(c, b) : NULL;
	if (!ni || ni->state != NS_DONE || !ni->clean || level >= MAX_LEVEL ||
	    c->depth >= MAX_STACK) {
		*complete = false;
		return 0;
	}
	uint8_t *buf = c->bufs[c->depth++];
	int r = tp_dev_pread(c->dev, buf, BLK, b * BLK);
	if (r) {
		c->depth--;
		*complete = false;
		return 0;
	}
	uint32_t flags = le32_get(buf + 4), nr = le32_get(buf + 16), max = le32_get(buf + 20),
	         vs = le32_get(buf + 24);
	const uint8_t *keys = buf + 32, *vals = buf + 32 + 8 * max;
	for (uint32_t i = 0; i < nr && !r; i++) {
		if (flags == CK_NODE_LEAF)
			r = kv_push(out, le64_get(keys + 8 * i), vals + (size_t)vs * i, vs);
		else
			r = ck_enumerate(c, type, le64_get(vals + 8 * i), level + 1, out, complete);
	}
	c->depth--;
	return r;
}

/* Mapping tree vs details tree of one superblock. */
