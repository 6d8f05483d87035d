/* The spec parsers of thinp plan (impl/plan/plan_yaml.c, plan_json.c) and the spec reader
 * (plan_spec.c):
 *
 *   - valid YAML: nested mappings, lists of scalars and of mappings (aligned with their key
 *     or indented), quoted strings with escapes, comments, a leading "---"; the tree with its
 *     lines and columns; the same document as JSON gives the same tree;
 *   - invalid YAML and JSON with the exact "line L, column C: reason" messages;
 *   - the spec reader: defaults, sizes/percent/durations, and bad values naming the key and
 *     its line;
 *   - seeded mutations (THINP_SEED, printed) of a valid spec: every one either parses or
 *     fails with a located message, never crashes or leaks (under ASan).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_util.h"
#include "pool_util.h"
#include "plan/plan_doc.h"
#include "plan/plan_spec.h"

static uint64_t seed;

static struct pdoc *parse_ok(const char *text)
{
	struct pdoc *d;
	char err[256] = "";
	int r = pdoc_parse(text, &d, err, sizeof(err));
	ck_assert_msg(r == 0, "parse failed: %s", err);
	return d;
}

static void parse_bad(const char *text, const char *want)
{
	struct pdoc *d = (struct pdoc *)1;
	char err[256] = "";
	ck_assert_int_eq(pdoc_parse(text, &d, err, sizeof(err)), -1);
	ck_assert_ptr_null(d);
	ck_assert_str_eq(err, want);
}

static const struct pdoc *get(const struct pdoc *m, const char *key)
{
	for (const struct pdoc *v = m->child; v; v = v->next)
		if (!strcmp(v->key, key))
			return v;
	ck_abort_msg("no key %s", key);
	return NULL;
}

/* A canonical one-line rendering of a tree, to compare trees. */
static void render(const struct pdoc *d, char *out, size_t len)
{
	size_t n = strlen(out);
	if (d->key)
		n += (size_t)snprintf(out + n, len - n, "%s=", d->key);
	if (d->kind == PDOC_SCALAR) {
		snprintf(out + n, len - n, "'%s'%s;", d->text, d->quoted ? "q" : "");
		return;
	}
	snprintf(out + n, len - n, "%c", d->kind == PDOC_MAP ? '{' : '[');
	for (const struct pdoc *c = d->child; c; c = c->next)
		render(c, out, len);
	n = strlen(out);
	snprintf(out + n, len - n, "%c", d->kind == PDOC_MAP ? '}' : ']');
}

static const char yaml_doc[] = "---\n"
                               "# a comment line\n"
                               "workload:\n"
                               "  images: 3        # trailing comment\n"
                               "  name: \"ci \\\"box\\\" #1\"\n"
                               "  other: 'it''s'\n"
                               "  write_mix:\n"
                               "  - size: 4k\n"
                               "    share: 0.5\n"
                               "  -   size: 1M\n"
                               "      share: 0.5\n"
                               "  tags:\n"
                               "    - a\n"
                               "    - b c\n"
                               "\n"
                               "pool:\n"
                               "  zeroing: true\n";

static const char json_doc[] =
        "{\"workload\": {\"images\": 3, \"name\": \"ci \\\"box\\\" #1\", \"other\": \"it's\",\n"
        " \"write_mix\": [{\"size\": \"4k\", \"share\": 0.5}, {\"size\": \"1M\", \"share\": 0.5}],\n"
        " \"tags\": [\"a\", \"b c\"]}, \"pool\": {\"zeroing\": true}}";

START_TEST(test_yaml_valid)
{
	struct pdoc *d = parse_ok(yaml_doc);
	ck_assert_int_eq(d->kind, PDOC_MAP);
	const struct pdoc *w = get(d, "workload");
	ck_assert_int_eq(w->key_line, 3);
	const struct pdoc *im = get(w, "images");
	ck_assert_str_eq(im->text, "3");
	ck_assert(!im->quoted);
	ck_assert_int_eq(im->line, 4);
	ck_assert_int_eq(im->col, 11);
	ck_assert_str_eq(get(w, "name")->text, "ci \"box\" #1");
	ck_assert(get(w, "name")->quoted);
	ck_assert_str_eq(get(w, "other")->text, "it's");
	const struct pdoc *mix = get(w, "write_mix");
	ck_assert_int_eq(mix->kind, PDOC_LIST);
	ck_assert_str_eq(get(mix->child, "size")->text, "4k");
	ck_assert_str_eq(get(mix->child->next, "share")->text, "0.5");
	ck_assert_int_eq(get(mix->child->next, "share")->key_line, 11);
	ck_assert_int_eq(get(mix->child->next, "share")->key_col, 7);
	ck_assert_str_eq(get(w, "tags")->child->next->text, "b c");
	ck_assert_str_eq(get(get(d, "pool"), "zeroing")->text, "true");
	pdoc_free(d);
}
END_TEST

START_TEST(test_json_same_tree)
{
	struct pdoc *y = parse_ok(yaml_doc), *j = parse_ok(json_doc);
	char a[2048] = "", b[2048] = "";
	render(y, a, sizeof(a));
	render(j, b, sizeof(b));
	/* JSON quotes the sizes the YAML leaves plain; the trees differ only there */
	ck_assert_str_eq(a, "{workload={images='3';name='ci \"box\" #1'q;other='it's'q;"
	                    "write_mix=[{size='4k';share='0.5';}{size='1M';share='0.5';}]"
	                    "tags=['a';'b c';]}pool={zeroing='true';}}");
	ck_assert_str_eq(b, "{workload={images='3';name='ci \"box\" #1'q;other='it's'q;"
	                    "write_mix=[{size='4k'q;share='0.5';}{size='1M'q;share='0.5';}]"
	                    "tags=['a'q;'b c'q;]}pool={zeroing='true';}}");
	pdoc_free(y);
	pdoc_free(j);
}
END_TEST

START_TEST(test_yaml_invalid)
{
	parse_bad("", "line 1, column 1: the spec is empty");
	parse_bad("# only\n\n", "line 1, column 1: the spec is empty");
	parse_bad("a: 1\n\tb: 2\n",
	          "line 2, column 1: a tab in the indentation; indent with spaces");
	parse_bad("a: 1\n  b: 2\n", "line 2, column 3: unexpected indentation");
	parse_bad("a:\n  b: 1\n c: 2\n", "line 3, column 2: unexpected indentation");
	parse_bad("a: 1\na: 2\n", "line 2, column 1: duplicate key 'a'");
	parse_bad("a:\n", "line 1, column 3: no value (an empty value or null is not allowed)");
	parse_bad("a: [1, 2]\n",
	          "line 1, column 4: flow collections ('[') are not supported; use block style");
	parse_bad("a: &x 1\n",
	          "line 1, column 4: anchors, aliases and tags ('&') are not supported");
	parse_bad("a: |\n  text\n",
	          "line 1, column 4: block scalars ('|') are not supported; quote the string");
	parse_bad("a: \"open\n", "line 1, column 4: unterminated double-quoted string");
	parse_bad("a: \"x\" y\n", "line 1, column 7: text after the closing quote: ' y'");
	parse_bad("a: \"\\q\"\n", "line 1, column 6: unknown escape '\\q'");
	parse_bad(
	        "a b c\n",
	        "line 1, column 1: the spec must be a mapping of sections (workload:, pool:, ...)");
	parse_bad(
	        "- 1\n",
	        "line 1, column 1: the spec must be a mapping of sections (workload:, pool:, ...)");
	parse_bad("  a: 1\n", "line 1, column 3: the first key is indented");
	parse_bad("a:\n  - 1\n  b: 2\n", "line 3, column 3: expected a list item ('- ')");
	parse_bad("a:\n- 1\n  b: 2\n", "line 3, column 3: unexpected indentation");
	parse_bad("a:\n  b: 1\n  - 2\n", "line 3, column 3: a list item where a key was expected");
	parse_bad("a:\n  - 1\n  junk\n", "line 3, column 3: expected a list item ('- ')");
	parse_bad("a@b: 1\n",
	          "line 1, column 2: '@' in the key 'a@b' (keys are letters, digits, _ - .)");
	parse_bad("a: 1\n---\nb: 2\n",
	          "line 2, column 1: several documents in one file are not supported");
}
END_TEST

START_TEST(test_json_invalid)
{
	parse_bad("{\"a\": 1,}", "line 1, column 9: expected a quoted key");
	parse_bad("{\"a\": 1} x", "line 1, column 10: text after the object");
	parse_bad("{\"a\" 1}", "line 1, column 6: expected ':' after the key \"a\"");
	parse_bad("{\"a\": null}", "line 1, column 7: null is not a value a spec takes");
	parse_bad("{\"a\": 1,\n \"a\": 2}", "line 2, column 2: duplicate key 'a'");
	parse_bad("{\"a\": [1 2]}", "line 1, column 10: expected ',' or ']'");
	parse_bad("{\"a\": \"x\n\"}", "line 1, column 9: unterminated string");
	parse_bad("{\"a\": \"\\u0041\"}", "line 1, column 9: unsupported escape '\\u'");
	parse_bad("{\"a\": @}", "line 1, column 7: expected a value");
	parse_bad("{\"a\": {\"b\": 1}", "line 1, column 15: expected ',' or '}'");
}
END_TEST

static int spec_of(const char *text, struct plan_spec *s, char *err, size_t len)
{
	struct pdoc *d = parse_ok(text);
	int r = plan_spec_read(d, s, err, len);
	pdoc_free(d);
	return r;
}

static void spec_bad(const char *text, const char *want)
{
	struct plan_spec s;
	char err[512] = "";
	ck_assert_int_eq(spec_of(text, &s, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
}

START_TEST(test_spec_values)
{
	struct plan_spec s;
	char err[512] = "";
	ck_assert_int_eq(
	        spec_of("docker:\n  loopdatasize: 20G\n  basesize: 5G\n", &s, err, sizeof(err)), 0);
	/* defaults: Docker's loop-lvm sizes, 64 KiB blocks, the span = basesize, a step of
	 * duration / 1440 */
	ck_assert_uint_eq(s.data_size, 20ull << 30);
	ck_assert_uint_eq(s.metadata_size, 2ull << 30);
	ck_assert_uint_eq(s.block_size, 64 << 10);
	ck_assert_uint_eq(s.write_span, 5ull << 30);
	ck_assert(s.step_h == 24.0 / 1440);
	ck_assert(s.min_free_space == 10);
	ck_assert_int_eq(spec_of("workload:\n  duration: 90m\n  step: 30s\n"
	                         "  write_mix:\n  - size: 8k\n    pattern: sequential\n"
	                         "lvm:\n  autoextend_threshold: 70%\n"
	                         "pool:\n  block_size: 1G\n  metadata_size: 16G\n",
	                         &s, err, sizeof(err)),
	                 0);
	ck_assert(s.duration_h == 1.5);
	ck_assert(s.step_h == 30.0 / 3600);
	ck_assert_uint_eq(s.nr_mix, 1);
	ck_assert_uint_eq(s.mix[0].size, 8192);
	ck_assert_int_eq(s.mix[0].pattern, PLAN_SEQUENTIAL);
	ck_assert(s.autoextend_threshold == 70);
	ck_assert_uint_eq(s.block_size, 1ull << 30);
	ck_assert_uint_eq(s.metadata_size, 16ull << 30);
}
END_TEST

START_TEST(test_spec_invalid)
{
	spec_bad("pool:\n  block_size: 96k\n",
	         "line 2: pool.block_size: 98304 bytes: the kernel takes 64 KiB to 1 GiB in "
	         "multiples of 64 KiB (64k, 128k, ... 1G)");
	spec_bad("pool:\n  block_size: 0\n",
	         "line 2: pool.block_size: 0 bytes: the kernel takes 64 KiB to 1 GiB in "
	         "multiples of 64 KiB (64k, 128k, ... 1G)");
	spec_bad("pool:\n  metadata_size: 16385M\n",
	         "line 2: pool.metadata_size: 16385M is over the 16 GiB limit of thin-pool "
	         "metadata; give 16G or less");
	spec_bad("pool:\n  data_size: 10X\n",
	         "line 2: pool.data_size: '10X' is not a size; give bytes or k/m/g/t (binary): "
	         "64k, 10G");
	spec_bad("workload:\n  images: -2\n",
	         "line 2: workload.images: -2 is negative; give a count >= 0");
	spec_bad("workload:\n  images: 2k\n",
	         "line 2: workload.images: '2k' is not a whole number");
	spec_bad("workload:\n  update_fraction: 1.5\n",
	         "line 2: workload.update_fraction: 1.5 is outside 0..1; give a fraction such as "
	         "0.25");
	spec_bad("workload:\n  duration: -3h\n",
	         "line 2: workload.duration: -3h is negative; give a duration > 0");
	spec_bad("workload:\n  duration: 2h\n  step: 3h\n",
	         "line 3: workload.step: longer than workload.duration");
	spec_bad(
	        "workload:\n  write_mix:\n  - size: 4k\n    share: 0.5\n  - size: 8k\n    share: 0.4\n",
	        "line 2: workload.write_mix: the shares add up to 0.9; they must add up to 1");
	spec_bad("workload:\n  write_mix:\n  - size: 4k\n    mode: random\n",
	         "line 4: workload.write_mix[0].mode: unknown key; the keys here are: size, share, "
	         "pattern");
	spec_bad("workload:\n  write_mix:\n  - size: 4k\n    pattern: zigzag\n",
	         "line 4: workload.write_mix[0].pattern: 'zigzag' is not a pattern; give random or "
	         "sequential");
	spec_bad("workload:\n  write_mix:\n  - size: 1000\n",
	         "line 3: workload.write_mix[0].size: 1000 is not a whole number of 512-byte "
	         "sectors");
	spec_bad(
	        "pool:\n  data_size: 10G\ndocker:\n  loopdatasize: 20G\n",
	        "line 2: pool.data_size: differs from docker.loopdatasize (20G); give one of them");
	spec_bad("pool:\n  data_size:\n    a: 1\n",
	         "line 2: pool.data_size: expected a single value, found a mapping");
	spec_bad("docker:\n  min_free_space: 120%\n",
	         "line 2: docker.min_free_space: 120% is outside 0..100");
	spec_bad(
	        "docker:\n  min_free_space: ten\n",
	        "line 2: docker.min_free_space: 'ten' is not a percentage; give 0..100 (10 or 10%)");
}
END_TEST

START_TEST(test_mutations)
{
	struct mu_rng rng;
	mu_rng_init(&rng, seed);
	static const char pieces[] = " \t\n:-#\"'[{&|0aZ";
	size_t n = strlen(yaml_doc);
	unsigned parsed = 0, refused = 0;
	for (int i = 0; i < 4000; i++) {
		char buf[sizeof(yaml_doc) + 8];
		memcpy(buf, yaml_doc, n + 1);
		for (int k = 0; k < 1 + (int)mu_below(&rng, 3); k++)
			buf[mu_below(&rng, n)] = pieces[mu_below(&rng, sizeof(pieces) - 1)];
		if (mu_below(&rng, 4) == 0)
			buf[mu_below(&rng, n)] = 0; /* truncated */
		struct pdoc *d;
		char err[256] = "";
		if (pdoc_parse(buf, &d, err, sizeof(err)) == 0) {
			ck_assert_int_eq(d->kind, PDOC_MAP);
			struct plan_spec s;
			(void)plan_spec_read(d, &s, err, sizeof(err));
			pdoc_free(d);
			parsed++;
		} else {
			int l, c;
			ck_assert_msg(sscanf(err, "line %d, column %d: ", &l, &c) == 2 && l >= 1 &&
			                      c >= 1,
			              "unlocated error: %s", err);
			refused++;
		}
	}
	printf("test_plan_yaml: %u mutated specs parsed, %u refused\n", parsed, refused);
	ck_assert_uint_gt(parsed, 0);
	ck_assert_uint_gt(refused, 0);
}
END_TEST

static Suite *plan_yaml_suite(void)
{
	Suite *s = suite_create("plan_yaml");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_yaml_valid);
	tcase_add_test(tc, test_json_same_tree);
	tcase_add_test(tc, test_yaml_invalid);
	tcase_add_test(tc, test_json_invalid);
	tcase_add_test(tc, test_spec_values);
	tcase_add_test(tc, test_spec_invalid);
	tcase_add_test(tc, test_mutations);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pu_run(20261205, "test_plan_yaml", plan_yaml_suite, &seed);
}
