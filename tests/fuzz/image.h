/* Fuzz inputs that stand for a metadata device.
 *
 * An image is mostly zeros (a pool's metadata uses a few blocks at the start
 * of the device), so inputs are zero-run encoded: every byte is itself,
 * except 0x00 lo hi, which stands for (lo | hi << 8) + 1 zero bytes. Seeds
 * stay a few KiB, and the fuzzer's mutations land on the bytes that mean
 * something instead of on megabytes of zeros.
 *
 * A mutated block fails its checksum, so by default every block that looks
 * like one of the format's block types is re-sealed after decoding (the
 * checksum recomputed, nothing else touched): the fuzzer then reaches the
 * code behind the validators. Flag FI_RAW keeps the checksums as given. */
#ifndef THINP_TESTS_FUZZ_IMAGE_H
#define THINP_TESTS_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "io/dev.h"

/* Every metadata device of the harnesses: 512 blocks. */
#define FI_META_BYTES (2u << 20)

/* Bits of the flags byte that starts every harness input. */
#define FI_RAW 0x01u /* do not re-seal checksums */

/* Decode IN onto the metadata memory device of reuse_dev.h (FI_META_BYTES;
 * bytes past its end are dropped) and re-seal it unless FI_RAW. 0 or a
 * negative errno. Closing the device does nothing. */
int fi_meta_dev(const uint8_t *in, size_t len, unsigned flags, struct tp_dev **out);

/* Decode into IMG (CAP bytes, zeroed by the caller); the decoded length. */
size_t fi_decode(const uint8_t *in, size_t len, uint8_t *img, size_t cap);
/* Encode LEN bytes of IMG, trailing zeros dropped; the encoded length, or 0
 * when CAP is too small. */
size_t fi_encode(const uint8_t *img, size_t len, uint8_t *out, size_t cap);
/* Recompute the checksum of every block of IMG that looks like a superblock,
 * btree node, space-map bitmap or metadata space-map index. */
void fi_reseal(uint8_t *img, size_t len);

#endif
