#include "pdata/crc32c.h"

/* Table built from the polynomial at first use would need global mutable
 * state; a constant-folded slicing table is not worth it here, so compute the
 * 256-entry table at compile time-ish via a static const initialiser macro. */
#define P 0x82F63B78u
#define C1(c) (((c) & 1) ? (((c) >> 1) ^ P) : ((c) >> 1))
#define C8(c) C1(C1(C1(C1(C1(C1(C1(C1(c))))))))
#define R2(n) C8(n), C8(n + 1)
#define R4(n) R2(n), R2(n + 2)
#define R8(n) R4(n), R4(n + 4)
#define R16(n) R8(n), R8(n + 8)
#define R32(n) R16(n), R16(n + 16)
#define R64(n) R32(n), R32(n + 32)
#define R128(n) R64(n), R64(n + 64)
static const uint32_t crc_table[256] = {R128(0u), R128(128u)};

uint32_t tp_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t tp_block_csum(const void *block, size_t block_size, uint32_t xor_const)
{
	return tp_crc32c(0xFFFFFFFFu, (const uint8_t *)block + 4, block_size - 4) ^ xor_const;
}
