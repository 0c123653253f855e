/* tests/fuzz/fuzz_rle.c — libFuzzer target for the COCO RLE string parser (core/mask.h), the
 * one mask routine that reads untrusted text (annotation files). Input: 2 bytes of mask size
 * (h, w in 0..255), then the counts string. Property: no crash or sanitizer report; a string that
 * parses covers exactly h*w pixels, and decode/encode/stringify/parse round-trips the mask. */
#include "core/mask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const int32_t h = data[0], w = data[1];
    char *s = malloc(size - 1);
    if (!s) return 0;
    memcpy(s, data + 2, size - 2);
    s[size - 2] = '\0';
    lisa_rle r;
    if (lisa_rle_from_string(&r, s, h, w) == LISA_OK) {
        uint64_t total = 0;
        for (int64_t i = 0; i < r.n; i++)
            total += r.counts[i];
        if (total != (uint64_t)h * (uint64_t)w) abort();
        uint8_t *m = malloc((size_t)h * w + 1), *m2 = malloc((size_t)h * w + 1);
        lisa_rle_decode(m, &r);
        lisa_rle e, e2;
        if (lisa_rle_encode(&e, m, h, w) != LISA_OK) abort();
        char *t = lisa_rle_to_string(&e);
        if (!t || lisa_rle_from_string(&e2, t, h, w) != LISA_OK) abort();
        if (e2.n != e.n || memcmp(e2.counts, e.counts, (size_t)e.n * sizeof *e.counts)) abort();
        lisa_rle_decode(m2, &e2);
        if (memcmp(m, m2, (size_t)h * w)) abort();
        double bb[4];
        lisa_rle_bbox(bb, &e);
        if (lisa_rle_area(&e) > (uint64_t)h * w || bb[0] + bb[2] > w || bb[1] + bb[3] > h) abort();
        free(t);
        lisa_rle_free(&e);
        lisa_rle_free(&e2);
        free(m);
        free(m2);
        lisa_rle_free(&r);
    }
    free(s);
    return 0;
}
