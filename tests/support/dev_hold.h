/* A device wrapper for tests (never part of libthinp) that stops writes on
 * a gate the test opens: once armed, the next write, vectored write, zeroing
 * or flush waits (and says so) until the test lets it go. A test uses it to
 * hold a commit inside its IO for as long as it likes — no sleeps, no
 * timing. Built into libthinp_testsupport.a. */
#ifndef THINP_TESTS_DEV_HOLD_H
#define THINP_TESTS_DEV_HOLD_H

#include "io/dev.h"

struct tp_hold;

/* Wrap INNER (owned from now on: closing the wrapper closes it) into *OUT. */
int tp_hold_wrap(struct tp_dev *inner, struct tp_dev **out, struct tp_hold **hold);
/* Hold the writes that come from now on. */
void tp_hold_arm(struct tp_hold *h);
/* Wait until a write is held. */
void tp_hold_wait_held(struct tp_hold *h);
/* Let every held write go and hold nothing more until armed again. */
void tp_hold_release(struct tp_hold *h);

#endif
