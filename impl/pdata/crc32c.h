/* CRC-32C (Castagnoli) as dm-persistent-data uses it: reflected polynomial
 * 0x82F63B78, caller-supplied seed, no final inversion. */
#ifndef THINP_PDATA_CRC32C_H
#define THINP_PDATA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t tp_crc32c(uint32_t seed, const void *buf, size_t len);
/* The table-driven version (what tp_crc32c falls back to without SSE4.2). */
uint32_t tp_crc32c_portable(uint32_t seed, const void *buf, size_t len);

/* The checksum dm-persistent-data stores in a block: crc over bytes 4..end
 * with seed 0xFFFFFFFF, xored with the per-block-type constant. */
uint32_t tp_block_csum(const void *block, size_t block_size, uint32_t xor_const);

#endif
