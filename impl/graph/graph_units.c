/* Sizes, booleans and unsigned integers parsed and printed the way Docker's Go code does
 * (go-units RAMInBytes / HumanSize, strconv.ParseBool / ParseUint), error texts included,
 * so that thinbench's driver answers a bad --storage-opt with the words Docker uses. */
#include "graph/graph_units.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at S (at most N bytes), 0 if malformed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, min = 0x80, cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, min = 0x800, cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, min = 0x10000, cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t tg_utf8_len(const char *s, size_t n)
{
	return n ? utf8_len((const unsigned char *)s, n) : 0;
}

void tg_go_quote(const char *s, char *buf, size_t len)
{
	if (!len)
		return;
	size_t o = 0, n = strlen(s);
#define PUT(c)                          \
	do {                            \
		if (o + 1 < len)        \
			buf[o++] = (c); \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		switch (c) {
		case '\a':
			esc = "\\a";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\v':
			esc = "\\v";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '"':
			esc = "\\\"";
			break;
		default:
			break;
		}
		if (esc) {
			for (; *esc; esc++)
				PUT(*esc);
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			PUT((char)c);
			i++;
			continue;
		}
		size_t ul = c >= 0x80 ? utf8_len((const unsigned char *)s + i, n - i) : 0;
		if (ul) {
			for (size_t k = 0; k < ul; k++)
				PUT(s[i + k]);
			i += ul;
			continue;
		}
		char hex[5];
		snprintf(hex, sizeof(hex), "\\x%02x", c);
		for (const char *h = hex; *h; h++)
			PUT(*h);
		i++;
	}
	PUT('"');
#undef PUT
	buf[o] = '\0';
}

/* Go's strconv.NumError text: `strconv.FN: parsing "S": WHAT`. */
static void num_error(const char *fn, const char *s, const char *what, char *err, size_t len)
{
	size_t qlen = strlen(s) * 4 + 3;
	char *q = malloc(qlen);
	if (q)
		tg_go_quote(s, q, qlen);
	snprintf(err, len, "strconv.%s: parsing %s: %s", fn, q ? q : "(out of memory)", what);
	free(q);
}

int tg_parse_uint(const char *s, unsigned bits, uint64_t *out, char *err, size_t len)
{
	uint64_t max = bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	uint64_t cutoff = UINT64_MAX / 10 + 1;
	uint64_t n = 0;
	if (!*s) {
		num_error("ParseUint", s, "invalid syntax", err, len);
		return -EINVAL;
	}
	/* Character by character, as Go does: a bad character before the value overflows
	 * is a syntax error, an overflow before a bad character a range error. */
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9') {
			num_error("ParseUint", s, "invalid syntax", err, len);
			return -EINVAL;
		}
		if (n >= cutoff) {
			num_error("ParseUint", s, "value out of range", err, len);
			return -ERANGE;
		}
		n *= 10;
		uint64_t n1 = n + (uint64_t)(*p - '0');
		if (n1 < n || n1 > max) {
			num_error("ParseUint", s, "value out of range", err, len);
			return -ERANGE;
		}
		n = n1;
	}
	*out = n;
	return 0;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* go-units' pattern, case-insensitive: ^(\d+(\.\d+)*) ?([kmgtp])?i?b?$. Sets the end of
 * the number and the unit letter (0 if none). */
static bool match_size(const char *s, size_t *num_end, int *unit)
{
	const char *p = s;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	while (p[0] == '.' && p[1] >= '0' && p[1] <= '9') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	*num_end = (size_t)(p - s);
	if (*p == ' ')
		p++;
	*unit = 0;
	if (*p && strchr("kmgtp", lower(*p)))
		*unit = lower(*p++);
	if (lower(*p) == 'i')
		p++;
	if (lower(*p) == 'b')
		p++;
	return *p == '\0';
}

/* strtod in the C locale: the caller's locale may use ',' as decimal point, Go never does. */
static double c_strtod(const char *s, char **end)
{
	locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c == (locale_t)0)
		return strtod(s, end);
	double v = strtod_l(s, end, c);
	freelocale(c);
	return v;
}

int tg_ram_in_bytes(const char *s, uint64_t *out, char *err, size_t len)
{
	size_t num_end;
	int unit;
	if (!match_size(s, &num_end, &unit)) {
		snprintf(err, len, "invalid size: '%s'", s);
		return -EINVAL;
	}
	char *num = malloc(num_end + 1);
	if (!num) {
		snprintf(err, len, "invalid size: '%s': out of memory", s);
		return -ENOMEM;
	}
	memcpy(num, s, num_end);
	num[num_end] = '\0';
	int r = 0;
	char *end;
	double v = 0;
	if (strchr(num, '.') != strrchr(num, '.')) {
		/* The pattern lets "1.2.3" through; Go's ParseFloat then refuses it. */
		num_error("ParseFloat", num, "invalid syntax", err, len);
		r = -EINVAL;
	} else {
		errno = 0;
		v = c_strtod(num, &end);
		if (*end) {
			num_error("ParseFloat", num, "invalid syntax", err, len);
			r = -EINVAL;
		} else if (errno == ERANGE && v > 1.0) {
			num_error("ParseFloat", num, "value out of range", err, len);
			r = -ERANGE;
		}
	}
	free(num);
	if (r)
		return r;
	static const struct {
		int unit;
		double mul;
	} units[] = { { 'k', 1024.0 },
		      { 'm', 1048576.0 },
		      { 'g', 1073741824.0 },
		      { 't', 1099511627776.0 },
		      { 'p', 1125899906842624.0 } };
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (units[i].unit == unit)
			v *= units[i].mul;
	/* Go converts to int64: anything from 2^63 on would wrap; refuse it instead. */
	if (!(v < 9223372036854775808.0)) {
		snprintf(err, len, "invalid size: '%s': larger than 8 EiB (2^63-1 bytes)", s);
		return -ERANGE;
	}
	*out = (uint64_t)v;
	return 0;
}

void tg_human_size(uint64_t bytes, bool spaced, char *buf, size_t len)
{
	static const char *const abbrs[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB" };
	const size_t last = sizeof(abbrs) / sizeof(abbrs[0]) - 1;
	double v = (double)bytes;
	size_t i = 0;
	while (v >= 1000.0 && i < last) {
		v /= 1000.0;
		i++;
	}
	snprintf(buf, len, spaced ? "%.4g %s" : "%.4g%s", v, abbrs[i]);
}

int tg_parse_bool(const char *s, bool *out, char *err, size_t len)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	num_error("ParseBool", s, "invalid syntax", err, len);
	return -EINVAL;
}
