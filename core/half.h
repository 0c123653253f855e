/* core/half.h — bf16 / f16 <-> f32 conversions (round to nearest even, NaN and Inf kept).
 *
 * Header-only so the CPU kernels inline them into their loops. Bit patterns follow IEEE 754
 * binary16 and bfloat16 (the upper 16 bits of a binary32).
 */
#ifndef LISA_CORE_HALF_H
#define LISA_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t lisa_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float lisa_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float lisa_bf16_to_f32(uint16_t h) { return lisa_bits_f32((uint32_t)h << 16); }

/* RNE on the dropped 16 bits; a NaN stays a (quiet) NaN with its sign, Inf stays Inf. */
static inline uint16_t lisa_f32_to_bf16(float f) {
    uint32_t u = lisa_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float lisa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1fu) {
        u = sign | 0x7f800000u | (man << 13); /* Inf / NaN (payload kept) */
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { /* subnormal: normalize */
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            exp--;
        }
        man &= 0x3ffu;
        u = sign | (exp << 23) | (man << 13);
    }
    return lisa_bits_f32(u);
}

static inline uint16_t lisa_f32_to_f16(float f) {
    uint32_t u = lisa_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absu >> 13) & 0x3ffu)); /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520 -> Inf */
    if (absu < 0x38800000u) {                                   /* below 2^-14: subnormal f16 */
        if (absu < 0x33000000u) return (uint16_t)sign;          /* < 2^-25: rounds to 0 */
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* bits to drop so that the result is in units of 2^-24 */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absu - 0x38000000u; /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

#endif
