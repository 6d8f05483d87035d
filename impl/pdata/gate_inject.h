/* Regressions injected on purpose, for the regression gate's self-test (tests/gate) only:
 * compiled in by -DTHINP_GATE_INJECT (a test-only build directory, never the shipped
 * library), each switched on by its letter in the environment variable THINP_GATE_INJECT:
 *   a  a whole-block write over a shared block copies the old block anyway
 *   b  a CoW copy reads the old block twice
 * Without the flag gate_inject() is the constant false and the sites compile to nothing. */
#ifndef THINP_PDATA_GATE_INJECT_H
#define THINP_PDATA_GATE_INJECT_H

#include <stdbool.h>

#ifdef THINP_GATE_INJECT
#include <stdlib.h>
#include <string.h>
static inline bool gate_inject(char which)
{
	const char *e = getenv("THINP_GATE_INJECT");
	return e && strchr(e, which);
}
#else
#define gate_inject(which) false
#endif

#endif
