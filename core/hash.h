/* core/hash.h — a 128-bit non-cryptographic hash of a byte buffer, for content-addressed caches
 * (the engine's image-embedding cache keys images by their decoded pixels: runtime/image_cache.h).
 *
 * Four 64-bit lanes consume 32 bytes per round (multiply-rotate, the structure of xxHash64), and
 * two different finalizations of the lanes give the two halves. Fast (several GB/s), well mixed,
 * but not collision resistant against an adversary who knows the seed: callers seed it with a
 * per-process random value (lisa_hash_random_seed) so that colliding inputs cannot be prepared
 * in advance.
 */
#ifndef LISA_CORE_HASH_H
#define LISA_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_hash128 {
    uint64_t lo, hi;
} lisa_hash128;

lisa_hash128 lisa_hash128_bytes(const void *data, size_t n, uint64_t seed);
/* A seed drawn once per process (getrandom, else the clock and the address space). Thread-safe. */
uint64_t lisa_hash_random_seed(void);

#ifdef __cplusplus
}
#endif

#endif
