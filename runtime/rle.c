/* runtime/rle.c — COCO RLE decode (see rle.h). Ported from the algorithms of pycocotools
 * common/maskApi.c (rleFrString, rleFrPoly, rleDecode). */
#include "runtime/rle.h"

#include "runtime/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lisa_rle_free(lisa_rle *r) {
    if (!r) return;
    free(r->cnts);
    memset(r, 0, sizeof *r);
}

static lisa_status rle_alloc(lisa_rle *r, int64_t m, int32_t h, int32_t w, const char *what) {
    memset(r, 0, sizeof *r);
    if (h < 0 || w < 0) return lisa_fail(LISA_ERR_FORMAT, "%s: bad mask size %d x %d", what, h, w);
    r->h = h;
    r->w = w;
    r->m = m;
    if (m > 0 && !(r->cnts = malloc((size_t)m * sizeof *r->cnts)))
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory for %lld runs", what, (long long)m);
    return LISA_OK;
}

lisa_status lisa_rle_from_string(lisa_rle *r, const char *s, int32_t h, int32_t w, const char *what) {
    const size_t len = strlen(s);
    LISA_TRY(rle_alloc(r, (int64_t)len, h, w, what));
    const int64_t area = (int64_t)h * w;
    int64_t m = 0;
    size_t p = 0;
    while (s[p]) {
        int64_t x = 0;
        int k = 0, more = 1;
        while (more) {
            const int c = (unsigned char)s[p] - 48;
            if (!s[p] || c < 0 || c > 63 || k >= 12) {
                lisa_rle_free(r);
                return lisa_fail(LISA_ERR_FORMAT, "%s: bad RLE counts string at character %zu", what, p);
            }
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            p++;
            k++;
            if (!more && (c & 0x10)) x |= (int64_t)-1 * ((int64_t)1 << (5 * k)); /* sign-extend */
        }
        if (m > 2) x += (int64_t)r->cnts[m - 2]; /* delta-coded from the third run on */
        if (x < 0 || x > area) {
            lisa_rle_free(r);
            return lisa_fail(LISA_ERR_FORMAT, "%s: RLE run %lld of length %lld does not fit a %d x %d mask", what,
                             (long long)m, (long long)x, h, w);
        }
        r->cnts[m++] = (uint32_t)x;
    }
    r->m = m;
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
        r->cnts[i] = (uint32_t)counts[i];
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
    if (s == LISA_OK && m) memcpy(r->cnts, b, (size_t)m * sizeof(uint32_t));
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
    for (int64_t j = 0; j < r->m; j++) {
        const int64_t c = r->cnts[j];
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
