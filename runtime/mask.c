/* runtime/mask.c — COCO RLE (pycocotools-compatible), chat.py's overlay, gray masks. See mask.h. */
#include "runtime/mask.h"

#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

lisa_status lisa_rle_encode(lisa_rle *out, const uint8_t *mask, int32_t h, int32_t w) {
    memset(out, 0, sizeof *out);
    if (h < 0 || w < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "RLE: negative mask size %d x %d", w, h);
    const uint64_t a = (uint64_t)h * (uint64_t)w;
    if (a > UINT32_MAX)
        return lisa_fail(LISA_ERR_LIMIT, "RLE: a %d x %d mask has more pixels than COCO's 32-bit counts hold", w, h);
    /* pass 1: count the runs (column-major walk of a row-major mask) */
    int64_t n = 1;
    uint8_t p = 0;
    for (int32_t x = 0; x < w; x++)
        for (int32_t y = 0; y < h; y++) {
            const uint8_t v = mask[(size_t)y * w + x] != 0;
            if (v != p) {
                n++;
                p = v;
            }
        }
    uint32_t *c = malloc((size_t)n * sizeof *c);
    if (!c) return lisa_fail(LISA_ERR_OOM, "RLE: out of memory for %lld runs", (long long)n);
    /* pass 2: rleEncode — a count is closed whenever the value changes; the first run is of 0s */
    int64_t k = 0;
    uint32_t run = 0;
    p = 0;
    for (int32_t x = 0; x < w; x++)
        for (int32_t y = 0; y < h; y++) {
            const uint8_t v = mask[(size_t)y * w + x] != 0;
            if (v != p) {
                c[k++] = run;
                run = 0;
                p = v;
            }
            run++;
        }
    c[k++] = run;
    LISA_ASSERT(k == n);
    *out = (lisa_rle){.h = h, .w = w, .n = n, .counts = c};
    return LISA_OK;
}

void lisa_rle_decode(uint8_t *mask, const lisa_rle *r) {
    uint8_t v = 0;
    uint64_t j = 0;
    const uint64_t a = (uint64_t)r->h * (uint64_t)r->w;
    for (int64_t i = 0; i < r->n; i++) {
        for (uint32_t c = 0; c < r->counts[i] && j < a; c++, j++) {
            const uint64_t x = j / (uint64_t)r->h, y = j % (uint64_t)r->h;
            mask[y * (uint64_t)r->w + x] = v;
        }
        v = !v;
    }
    for (; j < a; j++) { /* only for counts that do not cover the mask (not produced by this file) */
        const uint64_t x = j / (uint64_t)r->h, y = j % (uint64_t)r->h;
        mask[y * (uint64_t)r->w + x] = 0;
    }
}

void lisa_rle_free(lisa_rle *r) {
    if (!r) return;
    free(r->counts);
    memset(r, 0, sizeof *r);
}

char *lisa_rle_to_string(const lisa_rle *r) {
    /* a delta needs at most 33 bits + sign: 7 chars of 5 payload bits */
    char *s = malloc((size_t)r->n * 7 + 1);
    if (!s) {
        lisa_fail(LISA_ERR_OOM, "RLE: out of memory for the counts string");
        return NULL;
    }
    size_t p = 0;
    for (int64_t i = 0; i < r->n; i++) {
        int64_t x = (int64_t)r->counts[i];
        if (i > 2) x -= (int64_t)r->counts[i - 2];
        int more = 1;
        while (more) {
            int c = (int)(x & 0x1f);
            x = (x - c) / 32; /* == x >> 5 (arithmetic), without implementation-defined shifts */
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            s[p++] = (char)(c + 48);
        }
    }
    s[p] = '\0';
    return s;
}

lisa_status lisa_rle_from_string(lisa_rle *out, const char *s, int32_t h, int32_t w) {
    memset(out, 0, sizeof *out);
    if (h < 0 || w < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "RLE: negative mask size %d x %d", w, h);
    const uint64_t a = (uint64_t)h * (uint64_t)w;
    if (a > UINT32_MAX) return lisa_fail(LISA_ERR_LIMIT, "RLE: a %d x %d mask is too large for COCO counts", w, h);
    const size_t len = strlen(s);
    uint32_t *c = malloc((len ? len : 1) * sizeof *c); /* at most one count per character */
    if (!c) return lisa_fail(LISA_ERR_OOM, "RLE: out of memory");
    int64_t m = 0;
    uint64_t total = 0;
    size_t p = 0;
    while (p < len) {
        const size_t start = p;
        int64_t x = 0;
        int k = 0, more = 1;
        while (more) {
            if (p >= len) {
                free(c);
                return lisa_fail(LISA_ERR_FORMAT, "RLE string: value starting at offset %zu is truncated", start);
            }
            const int ch = (unsigned char)s[p];
            if (ch < 48 || ch > 48 + 63) {
                free(c);
                return lisa_fail(LISA_ERR_FORMAT, "RLE string: character 0x%02x at offset %zu is outside '0'..'o'", ch,
                                 p);
            }
            if (k >= 7) {
                free(c);
                return lisa_fail(LISA_ERR_FORMAT,
                                 "RLE string: value starting at offset %zu is longer than 7 characters", start);
            }
            const int v = ch - 48;
            x |= (int64_t)(v & 0x1f) << (5 * k);
            more = v & 0x20;
            p++;
            k++;
            if (!more && (v & 0x10)) x -= (int64_t)1 << (5 * k); /* sign-extend (x |= -1 << 5k) */
        }
        if (m > 2) x += (int64_t)c[m - 2];
        if (x < 0 || x > (int64_t)UINT32_MAX || total + (uint64_t)x > a) {
            free(c);
            return lisa_fail(LISA_ERR_FORMAT,
                             "RLE string: run %lld (offset %zu) is %lld, outside 0..%llu (the pixels left of %d x %d)",
                             (long long)m, start, (long long)x, (unsigned long long)(a - total), w, h);
        }
        c[m++] = (uint32_t)x;
        total += (uint64_t)x;
    }
    if (total != a) {
        free(c);
        return lisa_fail(LISA_ERR_FORMAT, "RLE string: runs cover %llu pixels, the mask has %d x %d = %llu",
                         (unsigned long long)total, w, h, (unsigned long long)a);
    }
    *out = (lisa_rle){.h = h, .w = w, .n = m, .counts = c};
    return LISA_OK;
}

uint64_t lisa_rle_area(const lisa_rle *r) {
    uint64_t s = 0;
    for (int64_t j = 1; j < r->n; j += 2)
        s += r->counts[j];
    return s;
}

void lisa_rle_bbox(double bbox[4], const lisa_rle *r) {
    /* rleToBbox, with its uint arithmetic: runs are walked in pairs (a trailing 0-run ignored); a
     * 1-run that wraps into a later column makes the box span the full height. */
    const uint32_t h = (uint32_t)r->h, w = (uint32_t)r->w;
    const int64_t m = (r->n / 2) * 2;
    if (m == 0) {
        bbox[0] = bbox[1] = bbox[2] = bbox[3] = 0;
        return;
    }
    uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
    for (int64_t j = 0; j < m; j++) {
        cc += r->counts[j];
        const uint32_t t = cc - (uint32_t)(j % 2), y = t % h, x = (t - y) / h;
        if (j % 2 == 0)
            xp = x;
        else if (xp < x) {
            ys = 0;
            ye = h - 1;
        }
        xs = x < xs ? x : xs;
        xe = x > xe ? x : xe;
        ys = y < ys ? y : ys;
        ye = y > ye ? y : ye;
    }
    bbox[0] = xs;
    bbox[2] = (double)(xe - xs + 1);
    bbox[1] = ys;
    bbox[3] = (double)(ye - ys + 1);
}

void lisa_mask_overlay_red(uint8_t *out, const uint8_t *rgb, const uint8_t *mask, int32_t h, int32_t w) {
    const size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) {
        const uint8_t r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        if (mask[i]) {
            /* numpy: image * 0.5 + [255, 0, 0] * 0.5 in float64, stored to uint8 by truncation;
             * every value is exact in double and lies in [0, 255] */
            out[3 * i] = (uint8_t)(r * 0.5 + 127.5);
            out[3 * i + 1] = (uint8_t)(g * 0.5 + 0.0);
            out[3 * i + 2] = (uint8_t)(b * 0.5 + 0.0);
        } else {
            out[3 * i] = r;
            out[3 * i + 1] = g;
            out[3 * i + 2] = b;
        }
    }
}

void lisa_mask_to_gray(uint8_t *out, const uint8_t *mask, int32_t h, int32_t w, uint8_t on) {
    const size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        out[i] = mask[i] ? on : 0;
}
