/* core/hash.c — see hash.h. */
#include "core/hash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull,
                      P4 = 0x85EBCA77C2B2AE63ull, P5 = 0x27D4EB2F165667C5ull;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8); /* little-endian hosts only matter: keys never leave the process */
    return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }

static inline uint64_t avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

lisa_hash128 lisa_hash128_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data, *end = p + n;
    uint64_t a = seed + P1 + P2, b = seed + P2, c = seed, d = seed - P1;
    while (end - p >= 32) {
        a = round64(a, read64(p));
        b = round64(b, read64(p + 8));
        c = round64(c, read64(p + 16));
        d = round64(d, read64(p + 24));
        p += 32;
    }
    uint64_t t = 0; /* the tail, zero-padded; its length enters through n */
    while (end - p >= 8) {
        a = round64(a ^ t, read64(p));
        t = rotl(t + P4, 17);
        p += 8;
    }
    unsigned char last[8] = {0};
    memcpy(last, p, (size_t)(end - p));
    b = round64(b, read64(last) ^ P5);
    const uint64_t len = (uint64_t)n;
    /* two different mixes of the four lanes */
    uint64_t lo = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + len * P5;
    uint64_t hi = (a * P3) ^ rotl(b * P4, 23) ^ rotl(c * P1, 41) ^ (d * P2) ^ (len + P3);
    lisa_hash128 h = {avalanche(lo ^ rotl(hi, 29)), avalanche(hi + P4 * lo)};
    return h;
}

static uint64_t g_seed;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void draw_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec * P1 ^ (uint64_t)ts.tv_sec * P2 ^ (uint64_t)(uintptr_t)&s;
    }
    g_seed = avalanche(s);
}

uint64_t lisa_hash_random_seed(void) {
    pthread_once(&g_once, draw_seed);
    return g_seed;
}
