/* The input of fuzz_pool: a flags byte (image.h), a count byte N, N ops of
 * PI_OP_BYTES each, then the zero-run encoded metadata image. An op is
 * [code][thin id][a: le16][b: le16][c: le16]; what a, b and c mean depends
 * on the code (see fuzz_pool.c). Shared with the seed generator. */
#ifndef THINP_TESTS_FUZZ_POOL_INPUT_H
#define THINP_TESTS_FUZZ_POOL_INPUT_H

#include <stdint.h>

#define PI_OP_BYTES 8u

enum pi_code {
	PI_READ,        /* sector a, b + 1 sectors */
	PI_WRITE,       /* sector a, b + 1 sectors, FUA if c & 1 */
	PI_DISCARD,     /* sector a, b + 1 sectors */
	PI_FLUSH,
	PI_POOL_STATUS, /* noflush if c & 1 */
	PI_THIN_STATUS,
	PI_CREATE_THIN,
	PI_CREATE_SNAP, /* origin a */
	PI_DELETE,
	PI_COMMIT,
	PI_RESERVE,     /* reserve the metadata snapshot */
	PI_RELEASE,
	PI_SET_TRANSACTION, /* from c to c + 1 */
	PI_NR_CODES
};

struct pi_op {
	uint8_t code, thin;
	uint16_t a, b, c;
};

static inline void pi_op_pack(const struct pi_op *op, uint8_t *out)
{
	out[0] = op->code;
	out[1] = op->thin;
	out[2] = (uint8_t)op->a;
	out[3] = (uint8_t)(op->a >> 8);
	out[4] = (uint8_t)op->b;
	out[5] = (uint8_t)(op->b >> 8);
	out[6] = (uint8_t)op->c;
	out[7] = (uint8_t)(op->c >> 8);
}

static inline void pi_op_unpack(const uint8_t *in, struct pi_op *op)
{
	op->code = in[0];
	op->thin = in[1];
	op->a = (uint16_t)(in[2] | in[3] << 8);
	op->b = (uint16_t)(in[4] | in[5] << 8);
	op->c = (uint16_t)(in[6] | in[7] << 8);
}

#endif
