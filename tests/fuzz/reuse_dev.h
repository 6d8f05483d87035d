/* Memory devices that live for the whole fuzzing process.
 *
 * Under ASan a fresh megabytes-large calloc and free per input costs more
 * than the input's own work (shadow poisoning, quarantine, page faults), so
 * each harness takes its devices from a few slots allocated once and handed
 * out again for every input: zeroed where it was written since, sized as
 * asked (up to the slot's capacity, at most 64 MiB). Closing one does nothing,
 * which also lets a harness read a device after the pool that owned it has
 * closed it. */
#ifndef THINP_TESTS_FUZZ_REUSE_DEV_H
#define THINP_TESTS_FUZZ_REUSE_DEV_H

#include <stdint.h>

#include "io/dev.h"

enum { FR_META, FR_DATA, FR_NR_SLOTS };

/* The device of SLOT, all zeros, SIZE bytes (<= CAPACITY, which the first
 * call of each slot fixes). NULL when out of memory or SIZE is too big. */
struct tp_dev *fr_dev(unsigned slot, uint64_t size, uint64_t capacity);
/* Its bytes, for filling it directly; fr_dirty then marks what was filled. */
uint8_t *fr_bytes(struct tp_dev *d);
void fr_dirty(struct tp_dev *d, uint64_t off, uint64_t len);

#endif
