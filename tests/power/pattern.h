/* The content of one 4 KiB unit the power-cut workload writes: a header naming the
 * thin, the unit and the write's version, then bytes from a seeded generator, so a read
 * back tells which write (if any) it holds and whether that write is whole. */
#ifndef THINP_TESTS_POWER_PATTERN_H
#define THINP_TESTS_POWER_PATTERN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PUNIT 4096u
#define PMAGIC 0x3130545543525750ull /* "PWRCUT01" */

static inline uint64_t psplitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void pattern_fill(uint8_t *buf, uint64_t seed, uint64_t dev, uint64_t unit,
				uint64_t version)
{
	uint64_t h[4] = { PMAGIC, dev, unit, version };
	memcpy(buf, h, sizeof(h));
	uint64_t s = seed ^ (dev * 0x100000001b3ull) ^ (unit << 20) ^ (version << 40);
	for (unsigned i = sizeof(h); i < PUNIT; i += 8) {
		uint64_t v = psplitmix(&s);
		memcpy(buf + i, &v, 8);
	}
}

/* The header of BUF (false: no pattern header). */
static inline bool pattern_header(const uint8_t *buf, uint64_t *dev, uint64_t *unit,
				  uint64_t *version)
{
	uint64_t h[4];
	memcpy(h, buf, sizeof(h));
	if (h[0] != PMAGIC)
		return false;
	*dev = h[1], *unit = h[2], *version = h[3];
	return true;
}

#endif
