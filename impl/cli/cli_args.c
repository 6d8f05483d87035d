#include "cli/cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_msg.h"

#define THIN_ID_MAX 0xFFFFFFu

static bool negative_number(const char *s)
{
	return s[0] == '-' && isdigit((unsigned char)s[1]);
}

/* getopt keeps state between calls (the position inside "-vq"); a command
 * line is always parsed from a clean start, in order ("+": no permutation, so
 * positionals keep their places and "--" is seen where it is). */
static void getopt_restart(void)
{
	static char prog[] = "thinp";
	static char *none[] = { prog, NULL };
	optind = 0;
	opterr = 0;
	(void)getopt(1, none, "+");
}

/* The long option ARG (without "=value") is a prefix of: none, one, several. */
static int long_matches(const struct option *longopts, const char *arg, size_t len)
{
	int n = 0;
	for (const struct option *o = longopts; o->name; o++) {
		if (strlen(o->name) == len && !strncmp(o->name, arg, len))
			return 1; /* exact */
		n += !strncmp(o->name, arg, len);
	}
	return n;
}

/* getopt returned '?' or ':' for the element ELEM (short option CH when ELEM is a cluster). */
static int bad_option(const struct cli_cmd *cmd, int c, const char *elem, int ch)
{
	if (elem && !strncmp(elem, "--", 2)) {
		const char *name = elem + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int n = long_matches(cmd->longopts, name, len);
		if (c == ':')
			return cli_usage(cmd->name, "option '--%.*s' needs a value", (int)len,
			                 name);
		if (n > 1)
			return cli_usage(cmd->name, "ambiguous option '--%.*s'", (int)len, name);
		if (n == 1 && eq)
			return cli_usage(cmd->name, "option '--%.*s' takes no value (in '%s')",
			                 (int)len, name, elem);
		return cli_usage(cmd->name, "unknown option '--%.*s'", (int)len, name);
	}
	if (c == ':')
		return cli_usage(cmd->name, "option '-%c' needs a value", ch);
	if (isprint(ch))
		return cli_usage(cmd->name, "unknown option '-%c'", ch);
	return cli_usage(cmd->name, "unknown option '%s'", elem ? elem : "?");
}

static int take_positional(const struct cli_cmd *cmd, const char *arg, const char **pos, int max,
                           int *nr)
{
	if (*nr == max)
		return cli_usage(cmd->name, "unexpected argument '%s'", arg);
	pos[(*nr)++] = arg;
	return 0;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, const char **pos, int max, int *nr)
{
	char shortopts[64];
	snprintf(shortopts, sizeof(shortopts), "+:%s", cmd->shortopts);
	*nr = 0;
	if (cmd->stop_at)
		*cmd->stop_at = argc;
	getopt_restart();
	optind = 1;
	bool in_cluster = false; /* inside "-vq": getopt goes on with the same element */
	for (;;) {
		int at = optind;
		if (!in_cluster) {
			if (at >= argc)
				return 0;
			const char *s = argv[at];
			if (!strcmp(s, "--")) {
				for (int i = at + 1; i < argc; i++) {
					if (cmd->stop_at) {
						*cmd->stop_at = i;
						return 0;
					}
					if (take_positional(cmd, argv[i], pos, max, nr))
						return 2;
				}
				return 0;
			}
			if (s[0] != '-' || !s[1] || (cmd->numbers && negative_number(s))) {
				if (cmd->stop_at) {
					*cmd->stop_at = at;
					return 0;
				}
				if (take_positional(cmd, s, pos, max, nr))
					return 2;
				optind = at + 1;
				continue;
			}
		}
		int idx = -1;
		int c = getopt_long(argc, argv, shortopts, cmd->longopts, &idx);
		if (c == -1)
			return 0; /* not reached: positionals and "--" are taken above */
		in_cluster = optind == at;
		if (c == '?' || c == ':')
			return bad_option(cmd, c, argv[in_cluster ? at : optind - 1], optopt);
		char opt[64];
		if (idx >= 0)
			snprintf(opt, sizeof(opt), "--%s", cmd->longopts[idx].name);
		else
			snprintf(opt, sizeof(opt), "-%c", c);
		if (c == CLI_OPT_HELP) {
			fputs(cmd->usage, stdout);
			return CLI_DONE;
		}
		if (c == CLI_OPT_VERSION) {
			printf("thinp %s\n", THINP_VERSION);
			return CLI_DONE;
		}
		int r = cmd->option ? cmd->option(cmd->ctx, c, optarg, opt) :
		                      cli_usage(cmd->name, "unknown option '%s'", opt);
		if (r)
			return r;
	}
}

/* The value S of WHAT is invalid: say why, naming both. */
static int bad_value(const char *cmd, const char *what, const char *s, const char *why)
{
	return cli_usage(cmd, "invalid %s '%s': %s", what, s ? s : "", why);
}

enum num {
	NUM_OK,
	NUM_EMPTY,
	NUM_NEGATIVE,
	NUM_GARBAGE,
	NUM_RANGE
};

/* Leading decimal digits of S into *V, *END after them (strtoull alone would
 * take "-1" as 2^64-1, " 5" and "+5"). */
static enum num digits(const char *s, unsigned long long *v, char **end)
{
	if (!s || !*s)
		return NUM_EMPTY;
	if (negative_number(s))
		return NUM_NEGATIVE;
	if (!isdigit((unsigned char)*s))
		return NUM_GARBAGE;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno == ERANGE ? NUM_RANGE : NUM_OK;
}

static enum num parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;
	enum num r = digits(s, &v, &end);
	if (r == NUM_OK || r == NUM_RANGE) {
		if (*end)
			return NUM_GARBAGE;
		if (r == NUM_OK && v > max)
			r = NUM_RANGE;
	}
	if (r == NUM_OK)
		*out = v;
	return r;
}

static int num_error(const char *cmd, const char *what, const char *s, enum num r,
                     const char *expect, const char *range)
{
	switch (r) {
	case NUM_OK:
		return 0;
	case NUM_NEGATIVE:
		return bad_value(cmd, what, s, "must be ≥ 0");
	case NUM_RANGE:
		return bad_value(cmd, what, s, range);
	case NUM_EMPTY:
	case NUM_GARBAGE:
		break;
	}
	return bad_value(cmd, what, s, expect);
}

static const char expect_int[] = "expected a non-negative integer";

int cli_u64(const char *cmd, const char *what, const char *s, uint64_t max, uint64_t *out)
{
	char range[64];
	snprintf(range, sizeof(range), "too large (at most %llu)", (unsigned long long)max);
	return num_error(cmd, what, s, parse_u64(s, max, out), expect_int, range);
}

int cli_thin_id(const char *cmd, const char *what, const char *s, uint64_t *out)
{
	return num_error(cmd, what, s, parse_u64(s, THIN_ID_MAX, out), expect_int,
	                 "ids are 24-bit (0..16777215)");
}

int cli_size(const char *cmd, const char *what, const char *s, uint64_t *out)
{
	static const char expect[] = "expected a size like 4096, 64k, 100M, 2G or 1T";
	static const char range[] = "too large (at most 18446744073709551615 bytes, 16 EiB - 1)";
	unsigned long long v = 0;
	char *end = NULL;
	enum num r = digits(s, &v, &end);
	if (r != NUM_OK && r != NUM_RANGE)
		return num_error(cmd, what, s, r, expect, range);
	unsigned shift = 0;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		case 't':
			shift = 40;
			break;
		default:
			return bad_value(cmd, what, s, expect);
		}
		end++;
		if (tolower((unsigned char)*end) == 'i')
			end++;
		if (tolower((unsigned char)*end) == 'b')
			end++;
		if (*end)
			return bad_value(cmd, what, s, expect);
	}
	if (r == NUM_RANGE || (shift && v > (ULLONG_MAX >> shift)))
		return bad_value(cmd, what, s, range);
	*out = (uint64_t)v << shift;
	return 0;
}
