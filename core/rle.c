/* core/rle.c — COCO run-length masks (see rle.h). Ported from the algorithms of pycocotools
 * common/maskApi.c (rleEncode, rleDecode, rleToString, rleFrString, rleFrPoly, rleArea,
 * rleToBbox). */
#include "core/rle.h"

#include "core/error.h"

#include <math.h>
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

static lisa_status rle_alloc(lisa_rle *r, int64_t n, int32_t h, int32_t w, const char *what) {
    memset(r, 0, sizeof *r);
    if (h < 0 || w < 0) return lisa_fail(LISA_ERR_FORMAT, "%s: bad mask size %d x %d", what, h, w);
    r->h = h;
    r->w = w;
    r->n = n;
    if (n > 0 && !(r->counts = malloc((size_t)n * sizeof *r->counts)))
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory for %lld runs", what, (long long)n);
    return LISA_OK;
}

lisa_status lisa_rle_from_counts(lisa_rle *r, const int64_t *counts, int64_t m, int32_t h, int32_t w,
                                 const char *what) {
    LISA_TRY(rle_alloc(r, m, h, w, what));
    for (int64_t i = 0; i < m; i++) {
        if (counts[i] < 0 || counts[i] > (int64_t)h * w) {
            lisa_rle_free(r);
            return lisa_fail(LISA_ERR_FORMAT, "%s: RLE count %lld = %lld out of range", what, (long long)i,
                             (long long)counts[i]);
        }
        r->counts[i] = (uint32_t)counts[i];
    }
    return LISA_OK;
}

static int cmp_u32(const void *a, const void *b) {
    const uint32_t c = *(const uint32_t *)a, d = *(const uint32_t *)b;
    return c > d ? 1 : c < d ? -1 : 0;
}

static uint32_t umax32(uint32_t a, uint32_t b) { return a > b ? a : b; }

lisa_status lisa_rle_from_poly(lisa_rle *r, const double *xy, int64_t k, int32_t h, int32_t w, const char *what) {
    memset(r, 0, sizeof *r);
    const double scale = 5;
    for (int64_t j = 0; j < 2 * k; j++)
        if (!isfinite(xy[j]) || fabs(xy[j]) > 1e6)
            return lisa_fail(LISA_ERR_FORMAT, "%s: polygon coordinate %lld = %g (finite, |v| <= 1e6 supported)", what,
                             (long long)j, xy[j]);
    int *x = malloc(sizeof(int) * (size_t)(k + 1)), *y = malloc(sizeof(int) * (size_t)(k + 1));
    int *u = NULL, *v = NULL;
    uint32_t *a = NULL, *b = NULL;
    lisa_status s = LISA_OK;
    if (!x || !y) {
        s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", what);
        goto done;
    }
    /* upsample and get discrete points densely along the entire boundary */
    for (int64_t j = 0; j < k; j++)
        x[j] = (int)(scale * xy[j * 2 + 0] + .5);
    for (int64_t j = 0; j < k; j++)
        y[j] = (int)(scale * xy[j * 2 + 1] + .5);
    if (k > 0) {
        x[k] = x[0];
        y[k] = y[0];
    }
    int64_t m = 0;
    for (int64_t j = 0; j < k; j++)
        m += umax32((uint32_t)abs(x[j] - x[j + 1]), (uint32_t)abs(y[j] - y[j + 1])) + 1;
    u = malloc(sizeof(int) * (size_t)(m ? m : 1));
    v = malloc(sizeof(int) * (size_t)(m ? m : 1));
    if (!u || !v) {
        s = lisa_fail(LISA_ERR_OOM, "%s: out of memory for %lld boundary points", what, (long long)m);
        goto done;
    }
    m = 0;
    for (int64_t j = 0; j < k; j++) {
        int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1], dx, dy, t, d;
        dx = abs(xe - xs);
        dy = abs(ys - ye);
        const int flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip) {
            t = xs, xs = xe, xe = t;
            t = ys, ys = ye, ye = t;
        }
        if (dx == 0 && dy == 0) { /* 0/0 slope in maskApi.c; that point's v is never read */
            u[m] = xs;
            v[m] = ys;
            m++;
            continue;
        }
        const double sl = dx >= dy ? (double)(ye - ys) / dx : (double)(xe - xs) / dy;
        if (dx >= dy) {
            for (d = 0; d <= dx; d++) {
                t = flip ? dx - d : d;
                u[m] = t + xs;
                v[m] = (int)(ys + sl * t + .5);
                m++;
            }
        } else {
            for (d = 0; d <= dy; d++) {
                t = flip ? dy - d : d;
                v[m] = t + ys;
                u[m] = (int)(xs + sl * t + .5);
                m++;
            }
        }
    }
    /* get points along the y-boundary and downsample */
    const int64_t kk = m;
    m = 0;
    for (int64_t j = 1; j < kk; j++) {
        if (u[j] == u[j - 1]) continue;
        double xd = (double)(u[j] < u[j - 1] ? u[j] : u[j] - 1);
        xd = (xd + .5) / scale - .5;
        if (floor(xd) != xd || xd < 0 || xd > (double)((size_t)w - 1)) continue;
        double yd = (double)(v[j] < v[j - 1] ? v[j] : v[j - 1]);
        yd = (yd + .5) / scale - .5;
        if (yd < 0)
            yd = 0;
        else if (yd > h)
            yd = h;
        yd = ceil(yd);
        u[m] = (int)xd; /* u/v reused in place: m < j, entries already consumed */
        v[m] = (int)yd;
        m++;
    }
    /* compute the rle encoding given y-boundary points */
    const int64_t nb = m;
    a = malloc(sizeof(uint32_t) * (size_t)(nb + 1));
    b = malloc(sizeof(uint32_t) * (size_t)(nb + 1));
    if (!a || !b) {
        s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", what);
        goto done;
    }
    for (int64_t j = 0; j < nb; j++)
        a[j] = (uint32_t)(u[j] * (int)h + v[j]);
    int64_t na = nb;
    a[na++] = (uint32_t)((uint32_t)h * (uint32_t)w);
    qsort(a, (size_t)na, sizeof(uint32_t), cmp_u32);
    uint32_t prev = 0;
    for (int64_t j = 0; j < na; j++) {
        const uint32_t t = a[j];
        a[j] -= prev;
        prev = t;
    }
    int64_t j = 0;
    m = 0;
    b[m++] = a[j++];
    while (j < na) {
        if (a[j] > 0) {
            b[m++] = a[j++];
        } else {
            j++;
            if (j < na) b[m - 1] += a[j++];
        }
    }
    s = rle_alloc(r, m, h, w, what);
    if (s == LISA_OK && m) memcpy(r->counts, b, (size_t)m * sizeof(uint32_t));
done:
    free(x);
    free(y);
    free(u);
    free(v);
    free(a);
    free(b);
    return s;
}

lisa_status lisa_rle_decode_add(uint8_t *mask, const lisa_rle *r, const char *what) {
    const int64_t area = (int64_t)r->h * r->w;
    int64_t pos = 0;
    uint8_t val = 0;
    for (int64_t j = 0; j < r->n; j++) {
        const int64_t c = r->counts[j];
        if (c > area - pos)
            return lisa_fail(LISA_ERR_FORMAT, "%s: RLE runs cover more than the %d x %d mask", what, r->h, r->w);
        if (val) {
            for (int64_t p = pos; p < pos + c; p++) { /* column-major p -> row-major (y, x) */
                const int64_t yy = p % r->h, xx = p / r->h;
                mask[yy * r->w + xx] += 1;
            }
        }
        pos += c;
        val = !val;
    }
    return LISA_OK;
}
