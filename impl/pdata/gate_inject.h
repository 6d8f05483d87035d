/* Regressions injected on purpose, for the regression gate's self-test (tests/gate) only:
 * compiled in by -DTHINP_GATE_INJECT (a test-only build directory, never the shipped
 * library), each switched on by its letter in the environment variable THINP_GATE_INJECT:
 *   a  a whole-block write over a shared block copies the old block anyway
 *   b  a CoW copy reads the old block twice
 *   c  every commit happens twice
 *   d  a btree lookup spins 20% longer: every fifth lookup is done twice
 *   e  a CoW copy reads the old block twice, the second read uncounted: slower, same
 *      counters
 *   f  as e with three uncounted reads: the CoW step's IOs measured ~43% slower (with b
 *      and e together, two more reads: ~26%); the timing layer's detection tests, by hand:
 *      ci/README.md
 * Without the flag gate_inject() is the constant false and the sites compile to nothing. */
#ifndef THINP_PDATA_GATE_INJECT_H
#define THINP_PDATA_GATE_INJECT_H

#include <stdbool.h>

#ifdef THINP_GATE_INJECT
#include <stdlib.h>
static inline bool gate_inject(char which)
{
	/* read once, as a mask: the instructions a site costs must not depend on the variable
	 * being set (the self-test's base runs without it) */
	static unsigned on;
	static bool read;
	if (!read) {
		const char *e = getenv("THINP_GATE_INJECT");
		for (; e && *e; e++)
			if (*e >= 'a' && *e <= 'z')
				on |= 1u << (*e - 'a');
		read = true;
	}
	return on & (1u << (which - 'a'));
}
/* true on every Nth call while WHICH is on (one counter per file: injection builds only) */
static inline bool gate_inject_every(char which, unsigned n)
{
	static unsigned calls;
	return gate_inject(which) && ++calls % n == 0;
}
#else
#define gate_inject(which) false
#define gate_inject_every(which, n) false
#endif

#endif
