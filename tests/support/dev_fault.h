/* Fault-injecting device for tests (never part of libthinp): wraps any
 * tp_dev to fail reads/writes, hold writes volatile until a flush and cut
 * power at a chosen write boundary. Built into libthinp_testsupport.a. */
#ifndef THINP_TESTS_DEV_FAULT_H
#define THINP_TESTS_DEV_FAULT_H

#include <stdint.h>

#include "io/dev.h"

/* The wrapper forwards to an inner device it owns. It can fail the Nth read
 * or write (1-based, counted from arming) with -EIO, and it can simulate power
 * loss: writes are kept in a volatile cache until the next flush; crash()
 * drops every write not followed by a flush, after which the inner device
 * holds exactly what a real disk with a volatile write cache would hold.
 * It also records write boundaries so a test can replay "crash after the
 * Kth write". */
struct tp_fault;

int tp_fault_wrap(struct tp_dev *inner, struct tp_dev **out, struct tp_fault **fault);
void tp_fault_fail_read(struct tp_fault *f, uint64_t nth);  /* 0 disarms */
void tp_fault_fail_write(struct tp_fault *f, uint64_t nth); /* 0 disarms */
/* Keep unflushed writes volatile (default off: writes go straight through). */
void tp_fault_set_volatile(struct tp_fault *f, int on);
/* Stop accepting writes after the Kth write from now (later writes are
 * silently dropped, as if power went at that boundary). 0 disarms. */
void tp_fault_cut_after(struct tp_fault *f, uint64_t kth_write);
/* Drop all volatile (unflushed) writes now and refuse further IO with -EIO. */
void tp_fault_crash(struct tp_fault *f);
/* Number of writes seen (including dropped ones). */
uint64_t tp_fault_writes_seen(const struct tp_fault *f);

#endif
