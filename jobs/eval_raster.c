/* jobs/eval_raster.c — OpenCV 4.8 polygon drawing and LISA's get_mask_from_json (see
 * eval_raster.h). Ported from the algorithms of opencv modules/imgproc/src/drawing.cpp
 * (cv::LineIterator, clipLine, CollectPolyEdges, FillEdgeCollection, PolyLine/ThickLine with
 * thickness 1) and numpy core/src/npysort/quicksort.cpp + heapsort.cpp (aquicksort_,
 * aheapsort_), restricted to what LISA calls: 1-channel u8, LINE_8, shift 0, no offset.
 * Fixed point as in OpenCV: XY_SHIFT = 16.
 *
 * The scanline rule is OpenCV <= 4.10's (4.11 changed it): an edge inside the image is biased by
 * half a pixel (x + 0.5), a clipped edge starts at its clipped integer endpoint, and spans are
 * [floor(x_left), floor(x_right)] (FillEdgeCollection's delta = 0 for LINE_8). Checked against
 * cv2 4.8.0 on the cases of tests/data/eval/raster.txt (and, while writing this, on 600 more
 * random polygons: no pixel differs). */
#include "jobs/eval_raster.h"

#include "core/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { XY_SHIFT = 16, XY_ONE = 1 << XY_SHIFT };

/* ---- lines ---------------------------------------------------------------------------------- */

/* cv::clipLine(Size2l, Point2l&, Point2l&): Cohen-Sutherland against [0,w-1]x[0,h-1] with the
 * intersection computed in double and truncated. Returns true when the clipped line is inside. */
static bool clip_line(int64_t w, int64_t h, int64_t *x1, int64_t *y1, int64_t *x2, int64_t *y2) {
    const int64_t right = w - 1, bottom = h - 1;
    if (w <= 0 || h <= 0) return false;
    int c1 = (*x1 < 0) + (*x1 > right) * 2 + (*y1 < 0) * 4 + (*y1 > bottom) * 8;
    int c2 = (*x2 < 0) + (*x2 > right) * 2 + (*y2 < 0) * 4 + (*y2 > bottom) * 8;
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
        int64_t a;
        if (c1 & 12) {
            a = c1 < 8 ? 0 : bottom;
            *x1 += (int64_t)((double)(a - *y1) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
            *y1 = a;
            c1 = (*x1 < 0) + (*x1 > right) * 2;
        }
        if (c2 & 12) {
            a = c2 < 8 ? 0 : bottom;
            *x2 += (int64_t)((double)(a - *y2) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
            *y2 = a;
            c2 = (*x2 < 0) + (*x2 > right) * 2;
        }
        if ((c1 & c2) == 0 && (c1 | c2) != 0) {
            if (c1) {
                a = c1 == 1 ? 0 : right;
                *y1 += (int64_t)((double)(a - *x1) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
                *x1 = a;
                c1 = 0;
            }
            if (c2) {
                a = c2 == 1 ? 0 : right;
                *y2 += (int64_t)((double)(a - *x2) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
                *x2 = a;
                c2 = 0;
            }
        }
    }
    return (c1 | c2) == 0;
}

/* cv::Line(img, pt1, pt2, color, 8): LineIterator(connectivity 8, leftToRight) over the clipped
 * segment. Points are ints (cv::Point), as in OpenCV's call. */
static void line8(uint8_t *img, int32_t h, int32_t w, int32_t px1, int32_t py1, int32_t px2, int32_t py2,
                  uint8_t value) {
    if ((uint32_t)px1 >= (uint32_t)w || (uint32_t)px2 >= (uint32_t)w || (uint32_t)py1 >= (uint32_t)h ||
        (uint32_t)py2 >= (uint32_t)h) {
        int64_t x1 = px1, y1 = py1, x2 = px2, y2 = py2;
        if (!clip_line(w, h, &x1, &y1, &x2, &y2)) return;
        px1 = (int32_t)x1, py1 = (int32_t)y1, px2 = (int32_t)x2, py2 = (int32_t)y2;
    }
    int32_t dx = px2 - px1, dy = py2 - py1, dir_x = 1, dir_y = 1;
    if (dx < 0) { /* left to right: start from pt2 */
        dx = -dx;
        dy = -dy;
        px1 = px2;
        py1 = py2;
    }
    if (dy < 0) {
        dy = -dy;
        dir_y = -1;
    }
    const bool vert = dy > dx;
    if (vert) {
        int32_t t = dx;
        dx = dy;
        dy = t;
    }
    /* major axis: x (or y when vert), one step per point; minor axis steps when err < 0 */
    int32_t err = dx - (dy + dy);
    const int32_t plus_delta = dx + dx, minus_delta = -(dy + dy), count = dx + 1;
    int32_t x = px1, y = py1;
    for (int32_t i = 0; i < count; i++) {
        img[(size_t)y * w + x] = value;
        const bool minor = err < 0;
        err += minus_delta + (minor ? plus_delta : 0);
        if (vert) {
            y += dir_y;
            if (minor) x += dir_x;
        } else {
            x += dir_x;
            if (minor) y += dir_y;
        }
    }
}

void lisa_cv_line(uint8_t *img, int32_t h, int32_t w, lisa_pt p0, lisa_pt p1, uint8_t value) {
    line8(img, h, w, p0.x, p0.y, p1.x, p1.y, value);
}

void lisa_cv_polylines_closed(uint8_t *img, int32_t h, int32_t w, const lisa_pt *pts, int32_t n, uint8_t value) {
    /* PolyLine(closed): segments (v[n-1], v[0]), (v[0], v[1]), ...; ThickLine with thickness 1 and
     * shift 0 rounds (x<<16 + 0.5) >> 16 = x and calls Line. */
    if (n <= 0) return;
    lisa_pt p0 = pts[n - 1];
    for (int32_t i = 0; i < n; i++) {
        line8(img, h, w, p0.x, p0.y, pts[i].x, pts[i].y, value);
        p0 = pts[i];
    }
}

/* ---- polygon fill ---------------------------------------------------------------------------- */

typedef struct poly_edge {
    int32_t y0, y1;
    int64_t x, dx;
    struct poly_edge *next;
} poly_edge;

/* CollectPolyEdges (LINE_8, shift 0, no offset): draws every edge with Line and records the
 * non-horizontal ones with their fixed-point start x (+0.5 inside the image; from the clipped
 * integer endpoints when the edge leaves it) and slope. Returns the count. */
static int32_t collect_edges(uint8_t *img, int32_t h, int32_t w, const lisa_pt *v, int32_t n, poly_edge *edges,
                             uint8_t value) {
    int32_t ne = 0;
    /* x << XY_SHIFT, written as a product: negative coordinates are valid */
    int64_t p0x = (int64_t)v[n - 1].x * XY_ONE, p0y = v[n - 1].y;
    for (int32_t i = 0; i < n; i++) {
        const int64_t p1x = (int64_t)v[i].x * XY_ONE, p1y = v[i].y;
        int64_t p0cy = p0y, p1cy = p1y;
        int64_t t0x = (p0x + (XY_ONE >> 1)) >> XY_SHIFT, t0y = p0y;
        int64_t t1x = (p1x + (XY_ONE >> 1)) >> XY_SHIFT, t1y = p1y;
        line8(img, h, w, (int32_t)t0x, (int32_t)t0y, (int32_t)t1x, (int32_t)t1y, value);
        /* "use clipped endpoints to create a more accurate PolyEdge" */
        int64_t p0cx = p0x, p1cx = p1x;
        if ((uint64_t)t0x >= (uint64_t)w || (uint64_t)t1x >= (uint64_t)w || (uint64_t)t0y >= (uint64_t)h ||
            (uint64_t)t1y >= (uint64_t)h) {
            clip_line(w, h, &t0x, &t0y, &t1x, &t1y);
            if (t0y != t1y) {
                p0cy = t0y;
                p1cy = t1y;
                p0cx = t0x * XY_ONE;
                p1cx = t1x * XY_ONE;
            }
        } else {
            p0cx += XY_ONE >> 1;
            p1cx += XY_ONE >> 1;
        }
        if (p0y != p1y) {
            poly_edge *e = &edges[ne++];
            e->dx = (p1cx - p0cx) / (p1cy - p0cy);
            if (p0y < p1y) {
                e->y0 = (int32_t)p0y;
                e->y1 = (int32_t)p1y;
                e->x = p0cx + (p0y - p0cy) * e->dx;
            } else {
                e->y0 = (int32_t)p1y;
                e->y1 = (int32_t)p0y;
                e->x = p1cx + (p1y - p1cy) * e->dx;
            }
            e->next = NULL;
        }
        p0x = p1x;
        p0y = p1y;
    }
    return ne;
}

static int cmp_edges(const void *a, const void *b) {
    const poly_edge *e1 = a, *e2 = b;
    if (e1->y0 != e2->y0) return e1->y0 < e2->y0 ? -1 : 1;
    if (e1->x != e2->x) return e1->x < e2->x ? -1 : 1;
    return e1->dx < e2->dx ? -1 : e1->dx > e2->dx;
}

static void hline(uint8_t *row, int32_t x1, int32_t x2, uint8_t value) {
    if (x2 >= x1) memset(row + x1, value, (size_t)(x2 - x1 + 1));
}

/* FillEdgeCollection: active-edge scanline fill; spans [ceil(xl), floor(xr)] between edge pairs,
 * an edge is active on rows [y0, y1). edges has room for total + 1 entries (the sentinel). */
static void fill_edges(uint8_t *img, int32_t h, int32_t w, poly_edge *edges, int32_t total, uint8_t value) {
    const int64_t delta = 0; /* LINE_8 in OpenCV <= 4.10 (XY_ONE - 1 only for LINE_AA; 4.11 changed the rule) */
    if (total < 2) return;
    int32_t y_max = INT_MIN, y_min = INT_MAX;
    int64_t x_max = INT64_MIN, x_min = INT64_MAX;
    for (int32_t i = 0; i < total; i++) {
        const poly_edge *e1 = &edges[i];
        LISA_ASSERT(e1->y0 < e1->y1);
        const int64_t x1 = e1->x + (e1->y1 - e1->y0) * e1->dx;
        if (e1->y0 < y_min) y_min = e1->y0;
        if (e1->y1 > y_max) y_max = e1->y1;
        if (e1->x < x_min) x_min = e1->x;
        if (e1->x > x_max) x_max = e1->x;
        if (x1 < x_min) x_min = x1;
        if (x1 > x_max) x_max = x1;
    }
    if (y_max < 0 || y_min >= h || x_max < 0 || x_min >= (int64_t)w * XY_ONE) return;
    qsort(edges, (size_t)total, sizeof *edges, cmp_edges);
    poly_edge tmp = {.y0 = INT_MAX, .next = NULL};
    edges[total] = tmp; /* sentinel */
    edges[total].next = NULL;
    int32_t i = 0;
    poly_edge *e = &edges[0];
    if (y_max > h) y_max = h;
    for (int32_t y = e->y0; y < y_max; y++) {
        poly_edge *last, *prelast, *keep_prelast;
        int draw = 0;
        const bool clipline = y < 0;
        prelast = &tmp;
        last = tmp.next;
        while (last || e->y0 == y) {
            if (last && last->y1 == y) { /* the edge ends on this row */
                prelast->next = last->next;
                last = last->next;
                continue;
            }
            keep_prelast = prelast;
            if (last && (e->y0 > y || last->x < e->x)) {
                prelast = last;
                last = last->next;
            } else if (i < total) { /* insert the next edge starting on this row */
                prelast->next = e;
                e->next = last;
                prelast = e;
                e = &edges[++i];
            } else {
                break;
            }
            if (draw) {
                if (!clipline) {
                    int32_t x1, x2;
                    if (keep_prelast->x > prelast->x) {
                        x1 = (int32_t)((prelast->x + delta) >> XY_SHIFT);
                        x2 = (int32_t)(keep_prelast->x >> XY_SHIFT);
                    } else {
                        x1 = (int32_t)((keep_prelast->x + delta) >> XY_SHIFT);
                        x2 = (int32_t)(prelast->x >> XY_SHIFT);
                    }
                    if (x1 < w && x2 >= 0) {
                        if (x1 < 0) x1 = 0;
                        if (x2 >= w) x2 = w - 1;
                        hline(img + (size_t)y * w, x1, x2, value);
                    }
                }
                keep_prelast->x += keep_prelast->dx;
                prelast->x += prelast->dx;
            }
            draw ^= 1;
        }
        /* bubble sort of the active list by x */
        keep_prelast = NULL;
        do {
            prelast = &tmp;
            last = tmp.next;
            poly_edge *last_exchange = NULL;
            while (last != keep_prelast && last->next != NULL) {
                poly_edge *te = last->next;
                if (last->x > te->x) {
                    prelast->next = te;
                    last->next = te->next;
                    te->next = last;
                    prelast = te;
                    last_exchange = prelast;
                } else {
                    prelast = last;
                    last = te;
                }
            }
            if (last_exchange == NULL) break;
            keep_prelast = last_exchange;
        } while (keep_prelast != tmp.next && keep_prelast != &tmp);
    }
}

lisa_status lisa_cv_fill_poly(uint8_t *img, int32_t h, int32_t w, const lisa_pt *pts, int32_t n, uint8_t value) {
    LISA_ASSERT(n >= 1 && h >= 1 && w >= 1);
    poly_edge *edges = malloc(((size_t)n + 1) * sizeof *edges);
    if (!edges) return lisa_fail(LISA_ERR_OOM, "fillPoly: out of memory for %d edges", n);
    const int32_t ne = collect_edges(img, h, w, pts, n, edges, value);
    fill_edges(img, h, w, edges, ne, value);
    free(edges);
    return LISA_OK;
}

/* ---- numpy argsort ------------------------------------------------------------------------- */

#define NP_SMALL_QUICKSORT 15 /* npysort_common.h */
#define NP_QS_STACK        128

static void np_aheapsort_u64(const uint64_t *v, int64_t *tosort, int64_t n) {
    int64_t *a = tosort - 1; /* 1-based heap indexing, as numpy */
    int64_t i, j, l, tmp;
    for (l = n >> 1; l > 0; --l) {
        tmp = a[l];
        for (i = l, j = l << 1; j <= n;) {
            if (j < n && v[a[j]] < v[a[j + 1]]) j += 1;
            if (v[tmp] < v[a[j]]) {
                a[i] = a[j];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i] = tmp;
    }
    for (; n > 1;) {
        tmp = a[n];
        a[n] = a[1];
        n -= 1;
        for (i = 1, j = 2; j <= n;) {
            if (j < n && v[a[j]] < v[a[j + 1]]) j++;
            if (v[tmp] < v[a[j]]) {
                a[i] = a[j];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i] = tmp;
    }
}

#define IDX_SWAP(a, b)                                                                                                 \
    do {                                                                                                               \
        int64_t t_ = (a);                                                                                              \
        (a) = (b);                                                                                                     \
        (b) = t_;                                                                                                      \
    } while (0)

void lisa_np_argsort_u64(int64_t *idx, const uint64_t *v, int64_t num) {
    for (int64_t k = 0; k < num; k++)
        idx[k] = k;
    if (num < 2) return;
    int64_t *pl = idx, *pr = idx + num - 1;
    int64_t *stack[NP_QS_STACK], **sptr = stack;
    int depth[NP_QS_STACK], *psdepth = depth;
    int cdepth = 0;
    for (uint64_t u = (uint64_t)num; u >>= 1;)
        cdepth++; /* npy_get_msb */
    cdepth *= 2;
    int64_t *pm, *pi, *pj, *pk, vi;
    uint64_t vp;
    for (;;) {
        if (cdepth < 0) {
            np_aheapsort_u64(v, pl, pr - pl + 1);
            goto stack_pop;
        }
        while ((pr - pl) > NP_SMALL_QUICKSORT) {
            pm = pl + ((pr - pl) >> 1);
            if (v[*pm] < v[*pl]) IDX_SWAP(*pm, *pl);
            if (v[*pr] < v[*pm]) IDX_SWAP(*pr, *pm);
            if (v[*pm] < v[*pl]) IDX_SWAP(*pm, *pl);
            vp = v[*pm];
            pi = pl;
            pj = pr - 1;
            IDX_SWAP(*pm, *pj);
            for (;;) {
                do
                    ++pi;
                while (v[*pi] < vp);
                do
                    --pj;
                while (vp < v[*pj]);
                if (pi >= pj) break;
                IDX_SWAP(*pi, *pj);
            }
            pk = pr - 1;
            IDX_SWAP(*pi, *pk);
            if (pi - pl < pr - pi) { /* push the larger partition */
                *sptr++ = pi + 1;
                *sptr++ = pr;
                pr = pi - 1;
            } else {
                *sptr++ = pl;
                *sptr++ = pi - 1;
                pl = pi + 1;
            }
            *psdepth++ = --cdepth;
        }
        for (pi = pl + 1; pi <= pr; ++pi) { /* insertion sort (stable) */
            vi = *pi;
            vp = v[vi];
            pj = pi;
            pk = pi - 1;
            while (pj > pl && vp < v[*pk])
                *pj-- = *pk--;
            *pj = vi;
        }
    stack_pop:
        if (sptr == stack) break;
        pr = *(--sptr);
        pl = *(--sptr);
        cdepth = *(--psdepth);
    }
}

/* ---- get_mask_from_json ------------------------------------------------------------------- */

lisa_status lisa_reasonseg_mask(uint8_t *mask, int32_t h, int32_t w, const lisa_rs_shape *shapes, int32_t n,
                                uint8_t *scratch) {
    const size_t plane = (size_t)h * w;
    memset(mask, 0, plane);
    if (n == 0) return LISA_OK;
    uint8_t *tmp = scratch ? scratch : malloc(plane);
    uint64_t *area = calloc((size_t)n, sizeof *area);
    int64_t *order = malloc((size_t)n * sizeof *order);
    lisa_status s = LISA_OK;
    if (!tmp || !area || !order) s = lisa_fail(LISA_ERR_OOM, "ReasonSeg mask: out of memory (%d x %d)", w, h);
    /* area of each shape drawn alone: polylines(thickness 1) + fillPoly with 1, then sum() */
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        memset(tmp, 0, plane);
        lisa_cv_polylines_closed(tmp, h, w, shapes[i].pts, shapes[i].n, 1);
        s = lisa_cv_fill_poly(tmp, h, w, shapes[i].pts, shapes[i].n, 1);
        uint64_t a = 0;
        for (size_t k = 0; k < plane; k++)
            a += tmp[k];
        area[i] = a;
    }
    /* np.argsort(area_list)[::-1]: largest first, drawn first; later (smaller) shapes overwrite */
    if (s == LISA_OK) lisa_np_argsort_u64(order, area, n);
    for (int32_t k = n - 1; k >= 0 && s == LISA_OK; k--) {
        const lisa_rs_shape *sh = &shapes[order[k]];
        lisa_cv_polylines_closed(mask, h, w, sh->pts, sh->n, sh->value);
        s = lisa_cv_fill_poly(mask, h, w, sh->pts, sh->n, sh->value);
    }
    if (!scratch) free(tmp);
    free(area);
    free(order);
    return s;
}
