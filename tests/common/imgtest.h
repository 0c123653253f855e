/* tests/common/imgtest.h — small helpers shared by the image and preprocessing tests: golden-file
 * line reading, hex decoding, CRC32 (zlib, as Python's zlib.crc32) and a readable diff of u8
 * buffers. Header-only (static functions) so that no CMake change is needed. */
#ifndef LISA_TESTS_IMGTEST_H
#define LISA_TESTS_IMGTEST_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static inline uint32_t it_crc32(const void *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *b = p;
    while (n > 0) { /* zlib's length argument is uInt */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k, n -= k;
    }
    return (uint32_t)c;
}

/* "tests/data/<rel>" as a malloc'd string. */
static inline char *it_data_path(const char *rel) {
    size_t n = strlen(LISA_TESTDATA_DIR) + strlen(rel) + 2;
    char *p = malloc(n);
    cr_assert(p);
    snprintf(p, n, "%s/%s", LISA_TESTDATA_DIR, rel);
    return p;
}

/* Decodes `hex` (2 chars per byte) into out[0..n); false if the length or a digit is wrong. */
static inline bool it_unhex(uint8_t *out, size_t n, const char *hex) {
    if (strlen(hex) != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

/* Reads the next non-comment, non-empty line of f into a malloc'd buffer (*line, *cap as for
 * getline), stripped of the newline. Returns false at EOF. */
static inline bool it_next_line(FILE *f, char **line, size_t *cap) {
    ssize_t n;
    while ((n = getline(line, cap, f)) >= 0) {
        while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = '\0';
        if (n == 0 || (*line)[0] == '#') continue;
        return true;
    }
    return false;
}

/* Compares got/ref u8 buffers of an h x w x c image; logs the number of differing values, the
 * max |difference| and the first few differing pixels. Returns the max difference (0 = equal). */
static inline int it_diff_u8(const char *what, const uint8_t *got, const uint8_t *ref, int32_t h, int32_t w,
                             int32_t c) {
    size_t n = (size_t)h * (size_t)w * (size_t)c, bad = 0;
    int maxd = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        if (!d) continue;
        bad++;
        if (d > maxd) maxd = d;
        if (shown++ < 5)
            cr_log_error("%s: pixel (y=%zu, x=%zu, ch=%zu): got %d, expected %d", what, i / ((size_t)w * c),
                         (i / (size_t)c) % (size_t)w, i % (size_t)c, got[i], ref[i]);
    }
    if (bad) cr_log_error("%s: %zu of %zu values differ, max |diff| %d", what, bad, n, maxd);
    return maxd;
}

#endif
