/* models/preprocess.c — Pillow-exact resampling and the SAM / CLIP input pipelines.
 *
 * ref: python-pillow/Pillow 9.4.0 src/libImaging/Resample.c (precompute_coeffs,
 *      normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner)
 *      and src/_imaging.c `_resize` (same size -> copy);
 *      dvlab-research/LISA model/segment_anything/utils/transforms.py (ResizeLongestSide), chat.py
 *      `preprocess`; transformers 4.31 models/clip/image_processing_clip.py, image_transforms.py.
 *
 * Numerics: every coefficient is computed in double exactly as Pillow does (same operations, same
 * order); the build uses -ffp-contract=off so no FMA changes a fixed-point coefficient (docs/parity.md
 * §2.1 "C pitfalls"). Never build this file with -ffast-math.
 */
#include "models/preprocess.h"

#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- Pillow filters (Resample.c lines 20-61) -------------------------------------------------- */

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    /* Keys cubic with a = -0.5, written in Pillow's Horner form; the form matters bit-wise. */
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct resample_filter {
    double (*fn)(double x);
    double support;
} resample_filter;

static bool filter_for(lisa_resample_filter f, resample_filter *out) {
    switch (f) {
    case LISA_RESAMPLE_BILINEAR: *out = (resample_filter){bilinear_filter, 1.0}; return true;
    case LISA_RESAMPLE_BICUBIC: *out = (resample_filter){bicubic_filter, 2.0}; return true;
    }
    return false;
}

/* Resample.c: PRECISION_BITS = 32 - 8 - 2. */
#define PRECISION_BITS 22

/* Pillow's clip8: clip8_lookups[acc >> PRECISION_BITS] over -640..639. The shift is arithmetic
 * (floor) for negative sums on GCC/Clang, as in Pillow; the table only covers reachable values,
 * so a clamp is the same function. */
static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ---- coefficients (precompute_coeffs + normalize_coeffs_8bpc) ----------------------------------- */

/* Pillow's `ksize`: the per-output stride of the coefficient table. */
static int64_t coeff_ksize(int32_t in, int32_t out, const resample_filter *f) {
    /* _resize passes box = (0, 0, in, in) as C floats; in1 - in0 is computed in float. */
    double scale = (double)((float)in - 0.0f) / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    return (int64_t)ceil(support) * 2 + 1;
}

/* Fills bounds[2*out] = (xmin, n taps) and kk[out*ksize] with 22-bit fixed-point weights.
 * Pillow keeps the normalized double weights in a buffer and converts them afterwards; here each
 * weight is evaluated twice (once for the sum, once to normalize), which yields the same doubles
 * because the filter is a pure function of the same argument. */
static void precompute_coeffs(int32_t *bounds, int32_t *kk, int64_t ksize, int32_t in, int32_t out,
                              const resample_filter *f) {
    const float in0 = 0.0f, in1 = (float)in;
    double scale = (double)(in1 - in0) / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    for (int32_t xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int32_t xmin = (int32_t)(center - support + 0.5); /* truncation toward zero, as (int) */
        if (xmin < 0) xmin = 0;
        int32_t xmax = (int32_t)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        int32_t *k = kk + (int64_t)xx * ksize;
        for (int32_t x = 0; x < xmax; x++) ww += f->fn((x + xmin - center + 0.5) * ss);
        for (int32_t x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            if (ww != 0.0) w /= ww;
            /* normalize_coeffs_8bpc: round half away from zero. */
            k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS)) : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        for (int64_t x = xmax; x < ksize; x++) k[x] = 0;
        bounds[2 * xx + 0] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

/* ---- workspace layout ---------------------------------------------------------------------------- */

#define WS_ALIGN 64

static size_t align_up(size_t n) { return (n + (WS_ALIGN - 1)) & ~(size_t)(WS_ALIGN - 1); }

typedef struct resample_ws {
    size_t bounds_h, kk_h, bounds_v, kk_v, temp, acc, total; /* byte offsets / sizes */
    int64_t ksize_h, ksize_v;
} resample_ws;

static bool resample_args_ok(int32_t out_h, int32_t out_w, int32_t in_h, int32_t in_w, int32_t c,
                             lisa_resample_filter filter) {
    resample_filter f;
    return out_h >= 1 && out_w >= 1 && in_h >= 1 && in_w >= 1 && (c == 1 || c == 3) && filter_for(filter, &f);
}

/* Offsets are relative to an aligned base. The intermediate (horizontal-pass output) is bounded
 * by all in_h rows; the exact count is only known after the vertical coefficients exist. */
static resample_ws resample_ws_layout(int32_t out_h, int32_t out_w, int32_t in_h, int32_t in_w, int32_t c,
                                      lisa_resample_filter filter) {
    resample_filter f = {bilinear_filter, 1.0};
    LISA_ASSERT(filter_for(filter, &f));
    resample_ws L;
    L.ksize_h = coeff_ksize(in_w, out_w, &f);
    L.ksize_v = coeff_ksize(in_h, out_h, &f);
    size_t off = 0;
    L.bounds_h = off, off += align_up(sizeof(int32_t) * 2 * (size_t)out_w);
    L.kk_h = off, off += align_up(sizeof(int32_t) * (size_t)L.ksize_h * (size_t)out_w);
    L.bounds_v = off, off += align_up(sizeof(int32_t) * 2 * (size_t)out_h);
    L.kk_v = off, off += align_up(sizeof(int32_t) * (size_t)L.ksize_v * (size_t)out_h);
    L.temp = off, off += align_up((size_t)in_h * (size_t)out_w * (size_t)c);
    L.acc = off, off += align_up(sizeof(int32_t) * (size_t)out_w * (size_t)c);
    L.total = off + WS_ALIGN; /* slack for aligning an unaligned caller pointer */
    return L;
}

size_t lisa_resample_u8_workspace_size(int32_t out_h, int32_t out_w, int32_t in_h, int32_t in_w, int32_t c,
                                       lisa_resample_filter filter) {
    if (!resample_args_ok(out_h, out_w, in_h, in_w, c, filter)) return 0;
    return resample_ws_layout(out_h, out_w, in_h, in_w, c, filter).total;
}

static unsigned char *ws_base(void *ws) {
    uintptr_t p = (uintptr_t)ws;
    return (unsigned char *)((p + (WS_ALIGN - 1)) & ~(uintptr_t)(WS_ALIGN - 1));
}

/* ---- the two passes ------------------------------------------------------------------------------ */

/* ImagingResampleHorizontal_8bpc: dst [n_rows, out_w, c] from src rows [row0, row0+n_rows). */
static void resample_horizontal(uint8_t *dst, int32_t out_w, const uint8_t *src, int32_t in_w, int32_t c,
                                int32_t row0, int32_t n_rows, const int32_t *bounds, const int32_t *kk,
                                int64_t ksize) {
    for (int32_t yy = 0; yy < n_rows; yy++) {
        const uint8_t *row = src + ((size_t)(row0 + yy) * (size_t)in_w) * (size_t)c;
        uint8_t *o = dst + (size_t)yy * (size_t)out_w * (size_t)c;
        for (int32_t xx = 0; xx < out_w; xx++) {
            const int32_t xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (int64_t)xx * ksize;
            const uint8_t *p = row + (size_t)xmin * (size_t)c;
            if (c == 3) {
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int32_t x = 0; x < xmax; x++) {
                    s0 += p[3 * x + 0] * k[x];
                    s1 += p[3 * x + 1] * k[x];
                    s2 += p[3 * x + 2] * k[x];
                }
                o[3 * xx + 0] = clip8(s0);
                o[3 * xx + 1] = clip8(s1);
                o[3 * xx + 2] = clip8(s2);
            } else {
                int32_t s0 = 1 << (PRECISION_BITS - 1);
                for (int32_t x = 0; x < xmax; x++) s0 += p[x] * k[x];
                o[xx] = clip8(s0);
            }
        }
    }
}

/* ImagingResampleVertical_8bpc over rows of `row_len` = w*c bytes. The sum is exact integer
 * arithmetic (no overflow for 8-bit input, Resample.c comment on PRECISION_BITS), so summing tap by
 * tap across a whole row gives Pillow's per-pixel result. */
static void resample_vertical(uint8_t *dst, int32_t out_h, const uint8_t *src, size_t row_len, const int32_t *bounds,
                              const int32_t *kk, int64_t ksize, int32_t *acc) {
    for (int32_t yy = 0; yy < out_h; yy++) {
        const int32_t ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (int64_t)yy * ksize;
        for (size_t i = 0; i < row_len; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int32_t y = 0; y < ymax; y++) {
            const uint8_t *r = src + (size_t)(ymin + y) * row_len;
            const int32_t ky = k[y];
            for (size_t i = 0; i < row_len; i++) acc[i] += r[i] * ky;
        }
        uint8_t *o = dst + (size_t)yy * row_len;
        for (size_t i = 0; i < row_len; i++) o[i] = clip8(acc[i]);
    }
}

lisa_status lisa_resample_u8(uint8_t *dst, int32_t out_h, int32_t out_w, const uint8_t *src, int32_t in_h, int32_t in_w,
                             int32_t c, lisa_resample_filter filter, void *ws, size_t ws_bytes) {
    resample_filter f;
    if (!filter_for(filter, &f))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "resample: filter %d (only 2 = BILINEAR and 3 = BICUBIC)", (int)filter);
    if (c != 1 && c != 3) return lisa_fail(LISA_ERR_INVALID_ARG, "resample: %d channels (only 1 and 3)", (int)c);
    if (out_h < 1 || out_w < 1 || in_h < 1 || in_w < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "resample: sizes must be >= 1 (in %dx%d -> out %dx%d, h x w)", (int)in_h,
                         (int)in_w, (int)out_h, (int)out_w);
    LISA_ASSERT(dst && src);

    const size_t row_out = (size_t)out_w * (size_t)c;
    if (out_h == in_h && out_w == in_w) { /* _resize: integral box of the output size -> ImagingCrop */
        memcpy(dst, src, (size_t)out_h * row_out);
        return LISA_OK;
    }
    resample_ws L = resample_ws_layout(out_h, out_w, in_h, in_w, c, filter);
    if (!ws || ws_bytes < L.total)
        return lisa_fail(LISA_ERR_OOM, "resample: workspace of %zu bytes, need %zu (in %dx%d -> out %dx%d)", ws_bytes,
                         L.total, (int)in_h, (int)in_w, (int)out_h, (int)out_w);
    unsigned char *base = ws_base(ws);
    int32_t *bounds_h = (int32_t *)(base + L.bounds_h), *kk_h = (int32_t *)(base + L.kk_h);
    int32_t *bounds_v = (int32_t *)(base + L.bounds_v), *kk_v = (int32_t *)(base + L.kk_v);
    uint8_t *temp = base + L.temp;
    int32_t *acc = (int32_t *)(base + L.acc);

    const bool need_h = out_w != in_w, need_v = out_h != in_h;
    /* ImagingResampleInner computes both tables before either pass. */
    precompute_coeffs(bounds_h, kk_h, L.ksize_h, in_w, out_w, &f);
    precompute_coeffs(bounds_v, kk_v, L.ksize_v, in_h, out_h, &f);
    const int32_t ybox_first = bounds_v[0];
    const int32_t ybox_last = bounds_v[2 * out_h - 2] + bounds_v[2 * out_h - 1];

    if (need_h && need_v) {
        /* Horizontal pass over only the source rows the vertical pass reads, into a u8
         * intermediate (rounded and clipped: part of the exact result); bounds shift to match. */
        for (int32_t i = 0; i < out_h; i++) bounds_v[2 * i] -= ybox_first;
        resample_horizontal(temp, out_w, src, in_w, c, ybox_first, ybox_last - ybox_first, bounds_h, kk_h, L.ksize_h);
        resample_vertical(dst, out_h, temp, row_out, bounds_v, kk_v, L.ksize_v, acc);
    } else if (need_h) {
        /* ybox covers all rows when the height is unchanged; the intermediate is the output. */
        LISA_ASSERT(ybox_first == 0 && ybox_last == in_h);
        resample_horizontal(dst, out_w, src, in_w, c, 0, in_h, bounds_h, kk_h, L.ksize_h);
    } else {
        resample_vertical(dst, out_h, src, row_out, bounds_v, kk_v, L.ksize_v, acc);
    }
    return LISA_OK;
}

/* ---- shared helpers ------------------------------------------------------------------------------ */

/* Accepts F32 CPU contiguous [3, H, W] or [1, 3, H, W]. */
static lisa_status check_chw_out(const lisa_tensor *out, int32_t oh, int32_t ow, const char *who) {
    char buf[96];
    bool ok = out && out->data && out->dtype == LISA_DTYPE_F32 && out->device == LISA_DEVICE_CPU &&
              lisa_tensor_is_contiguous(out);
    if (ok) {
        if (out->n_dims == 3)
            ok = out->shape[0] == 3 && out->shape[1] == oh && out->shape[2] == ow;
        else if (out->n_dims == 4)
            ok = out->shape[0] == 1 && out->shape[1] == 3 && out->shape[2] == oh && out->shape[3] == ow;
        else
            ok = false;
    }
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "%s: output must be a contiguous CPU F32 [3, %d, %d] (or [1, 3, %d, %d]), got %s",
                         who, (int)oh, (int)ow, (int)oh, (int)ow,
                         out ? lisa_tensor_shape_str(out, buf, sizeof buf) : "NULL");
    return LISA_OK;
}

static lisa_status check_image(const uint8_t *rgb, int32_t h, int32_t w, const char *who) {
    if (!rgb || h < 1 || w < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: input image %dx%d (h x w)%s", who, (int)h, (int)w,
                         rgb ? "" : " has no data");
    return LISA_OK;
}

/* ---- SAM ----------------------------------------------------------------------------------------- */

lisa_sam_preprocess_params lisa_sam_preprocess_default_params(void) {
    /* segment_anything Sam.pixel_mean / pixel_std and LISA chat.py `preprocess` defaults. */
    lisa_sam_preprocess_params p = {
        .target_size = 1024,
        .pixel_mean = {123.675f, 116.28f, 103.53f},
        .pixel_std = {58.395f, 57.12f, 57.375f},
    };
    return p;
}

void lisa_sam_resize_shape(int32_t *h_r, int32_t *w_r, int32_t h, int32_t w, int32_t target_size) {
    /* transforms.py get_preprocess_shape: scale = long_side_length * 1.0 / max(oldh, oldw). */
    double scale = (double)target_size * 1.0 / (double)(h > w ? h : w);
    *h_r = (int32_t)((double)h * scale + 0.5);
    *w_r = (int32_t)((double)w * scale + 0.5);
}

size_t lisa_sam_preprocess_workspace_size(const lisa_sam_preprocess_params *p, int32_t h, int32_t w) {
    lisa_sam_preprocess_params d = lisa_sam_preprocess_default_params();
    if (!p) p = &d;
    if (h < 1 || w < 1 || p->target_size < 1) return 0;
    int32_t h_r, w_r;
    lisa_sam_resize_shape(&h_r, &w_r, h, w, p->target_size);
    if (h_r < 1 || w_r < 1) return 0;
    /* the resized u8 image, then the resampler's own workspace; + slack for aligning `ws` */
    return align_up((size_t)h_r * (size_t)w_r * 3) +
           lisa_resample_u8_workspace_size(h_r, w_r, h, w, 3, LISA_RESAMPLE_BILINEAR) + WS_ALIGN;
}

lisa_status lisa_sam_preprocess(lisa_tensor *out, int32_t *h_r, int32_t *w_r, const uint8_t *rgb, int32_t h, int32_t w,
                                const lisa_sam_preprocess_params *p, void *ws, size_t ws_bytes) {
    lisa_sam_preprocess_params d = lisa_sam_preprocess_default_params();
    if (!p) p = &d;
    LISA_TRY(check_image(rgb, h, w, "sam_preprocess"));
    const int32_t T = p->target_size;
    if (T < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "sam_preprocess: target_size %d", (int)T);
    LISA_TRY(check_chw_out(out, T, T, "sam_preprocess"));
    int32_t hr, wr;
    lisa_sam_resize_shape(&hr, &wr, h, w, T);
    /* A very elongated image can round its short side to 0; Pillow then refuses the resize. */
    if (hr < 1 || wr < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "sam_preprocess: image %dx%d (h x w) resizes to %dx%d at long side %d",
                         (int)h, (int)w, (int)hr, (int)wr, (int)T);
    const size_t need = lisa_sam_preprocess_workspace_size(p, h, w);
    if (!ws || ws_bytes < need)
        return lisa_fail(LISA_ERR_OOM, "sam_preprocess: workspace of %zu bytes, need %zu (image %dx%d)", ws_bytes, need,
                         (int)h, (int)w);

    /* ResizeLongestSide.apply_image: to_pil_image -> resize((neww, newh), BILINEAR) -> uint8. */
    unsigned char *base = ws_base(ws);
    uint8_t *resized = base;
    size_t used = (size_t)(base - (unsigned char *)ws) + align_up((size_t)hr * (size_t)wr * 3);
    LISA_TRY(lisa_resample_u8(resized, hr, wr, rgb, h, w, 3, LISA_RESAMPLE_BILINEAR, (unsigned char *)ws + used,
                              ws_bytes - used));

    /* chat.py preprocess: x = (x - pixel_mean) / pixel_std on a float32 CHW tensor (uint8 - f32
     * promotes to f32), then F.pad(x, (0, T - w_r, 0, T - h_r)) with zeros. */
    float lut[3][256]; /* the same f32 expression, evaluated once per (channel, value) */
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 256; v++) lut[ch][v] = ((float)v - p->pixel_mean[ch]) / p->pixel_std[ch];
    float *o = (float *)out->data;
    const size_t plane = (size_t)T * (size_t)T;
    for (int ch = 0; ch < 3; ch++) {
        const float *l = lut[ch];
        float *op = o + (size_t)ch * plane;
        for (int32_t y = 0; y < T; y++) {
            float *orow = op + (size_t)y * (size_t)T;
            if (y >= hr) {
                memset(orow, 0, sizeof(float) * (size_t)T);
                continue;
            }
            const uint8_t *irow = resized + (size_t)y * (size_t)wr * 3;
            for (int32_t x = 0; x < wr; x++) orow[x] = l[irow[3 * x + ch]];
            for (int32_t x = wr; x < T; x++) orow[x] = 0.0f;
        }
    }
    *h_r = hr;
    *w_r = wr;
    return LISA_OK;
}

/* ---- CLIP ---------------------------------------------------------------------------------------- */

lisa_clip_preprocess_params lisa_clip_preprocess_default_params(void) {
    /* transformers 4.31 CLIPImageProcessor.__init__ defaults and utils/constants.py
     * OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (= openai/clip-vit-large-patch14 preprocessor_config). */
    lisa_clip_preprocess_params p = {
        .do_resize = true,
        .shortest_edge = 224,
        .resample = LISA_RESAMPLE_BICUBIC,
        .do_center_crop = true,
        .crop_h = 224,
        .crop_w = 224,
        .do_rescale = true,
        .rescale_factor = 1.0 / 255.0,
        .do_normalize = true,
        .image_mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .image_std = {0.26862954f, 0.26130258f, 0.27577711f},
    };
    return p;
}

lisa_status lisa_clip_preprocess_params_check(const lisa_clip_preprocess_params *p) {
    resample_filter f;
    if (p->do_resize && p->shortest_edge < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "clip preprocess: size.shortest_edge %d", (int)p->shortest_edge);
    if (p->do_resize && !filter_for(p->resample, &f))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "clip preprocess: resample %d (only 2 = BILINEAR and 3 = BICUBIC)",
                         (int)p->resample);
    if (p->do_center_crop && (p->crop_h < 1 || p->crop_w < 1))
        return lisa_fail(LISA_ERR_INVALID_ARG, "clip preprocess: crop_size %dx%d (h x w)", (int)p->crop_h,
                         (int)p->crop_w);
    if (p->do_rescale && !isfinite(p->rescale_factor))
        return lisa_fail(LISA_ERR_INVALID_ARG, "clip preprocess: rescale_factor %g", p->rescale_factor);
    /* Without rescale, transformers normalizes a uint8 image with mean/std cast to uint8 (0 for
     * CLIP's values): a division by zero. Not a configuration anyone runs. */
    if (p->do_normalize && !p->do_rescale)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "clip preprocess: do_normalize without do_rescale");
    if (p->do_normalize)
        for (int ch = 0; ch < 3; ch++)
            if (!(p->image_std[ch] != 0.0f) || !isfinite(p->image_std[ch]) || !isfinite(p->image_mean[ch]))
                return lisa_fail(LISA_ERR_INVALID_ARG, "clip preprocess: image_mean[%d] %g / image_std[%d] %g", ch,
                                 (double)p->image_mean[ch], ch, (double)p->image_std[ch]);
    return LISA_OK;
}

void lisa_clip_resize_shape(int32_t *rh, int32_t *rw, const lisa_clip_preprocess_params *p, int32_t h, int32_t w) {
    if (!p->do_resize) {
        *rh = h, *rw = w;
        return;
    }
    /* image_transforms.get_resize_output_image_size(default_to_square=False):
     * short, long = (w, h) if w <= h else (h, w); new_long = int(size * long / short). The int
     * product is exact and Python's true division is the correctly rounded double quotient. */
    const int64_t s = p->shortest_edge;
    const int64_t shrt = w <= h ? w : h, lng = w <= h ? h : w;
    const int32_t new_long = (int32_t)((double)(s * lng) / (double)shrt);
    if (w <= h) {
        *rh = new_long, *rw = (int32_t)s;
    } else {
        *rh = (int32_t)s, *rw = new_long;
    }
}

void lisa_clip_output_shape(int32_t *oh, int32_t *ow, const lisa_clip_preprocess_params *p, int32_t h, int32_t w) {
    if (p->do_center_crop) {
        *oh = p->crop_h, *ow = p->crop_w;
        return;
    }
    lisa_clip_resize_shape(oh, ow, p, h, w);
}

size_t lisa_clip_preprocess_workspace_size(const lisa_clip_preprocess_params *p, int32_t h, int32_t w) {
    lisa_clip_preprocess_params d = lisa_clip_preprocess_default_params();
    if (!p) p = &d;
    if (h < 1 || w < 1) return 0;
    int32_t rh, rw;
    lisa_clip_resize_shape(&rh, &rw, p, h, w);
    if (rh < 1 || rw < 1) return 0;
    size_t n = align_up((size_t)rh * (size_t)rw * 3);
    if (p->do_resize && (rh != h || rw != w)) n += lisa_resample_u8_workspace_size(rh, rw, h, w, 3, p->resample);
    return n + WS_ALIGN;
}

lisa_status lisa_clip_preprocess(lisa_tensor *out, const uint8_t *rgb, int32_t h, int32_t w,
                                 const lisa_clip_preprocess_params *p, void *ws, size_t ws_bytes) {
    lisa_clip_preprocess_params d = lisa_clip_preprocess_default_params();
    if (!p) p = &d;
    LISA_TRY(lisa_clip_preprocess_params_check(p));
    LISA_TRY(check_image(rgb, h, w, "clip_preprocess"));
    int32_t rh, rw, oh, ow;
    lisa_clip_resize_shape(&rh, &rw, p, h, w);
    if (rh < 1 || rw < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "clip_preprocess: image %dx%d (h x w) resizes to %dx%d", (int)h, (int)w,
                         (int)rh, (int)rw);
    lisa_clip_output_shape(&oh, &ow, p, h, w);
    LISA_TRY(check_chw_out(out, oh, ow, "clip_preprocess"));
    /* center_crop pads with zeros when the image is smaller than the crop, but 4.31 then returns
     * one row/column too few when the size difference is odd; that cannot happen with LISA's
     * config (shortest_edge == crop) and is refused rather than reproduced. */
    if (p->do_center_crop && (rh < p->crop_h || rw < p->crop_w))
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "clip_preprocess: resized image %dx%d (h x w) is smaller than crop_size %dx%d", (int)rh,
                         (int)rw, (int)p->crop_h, (int)p->crop_w);
    const size_t need = lisa_clip_preprocess_workspace_size(p, h, w);
    if (!ws || ws_bytes < need)
        return lisa_fail(LISA_ERR_OOM, "clip_preprocess: workspace of %zu bytes, need %zu (image %dx%d)", ws_bytes,
                         need, (int)h, (int)w);

    /* 1. resize in PIL (same size -> copy). */
    const uint8_t *img = rgb;
    if (rh != h || rw != w) {
        unsigned char *base = ws_base(ws);
        uint8_t *resized = base;
        size_t used = (size_t)(base - (unsigned char *)ws) + align_up((size_t)rh * (size_t)rw * 3);
        LISA_TRY(lisa_resample_u8(resized, rh, rw, rgb, h, w, 3, p->resample, (unsigned char *)ws + used,
                                  ws_bytes - used));
        img = resized;
    }
    /* 2. center crop: top = (h - ch) // 2, left = (w - cw) // 2 (both >= 0 here). */
    const int32_t top = p->do_center_crop ? (rh - p->crop_h) / 2 : 0;
    const int32_t left = p->do_center_crop ? (rw - p->crop_w) / 2 : 0;

    /* 3-5. rescale: float32(u8 * factor) with the product in float64 (numpy 1.24 promotes a uint8
     * array times a Python float to float64); normalize: (x - mean) / std in float32; to CHW. */
    float lut[3][256];
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 256; v++) {
            float x = p->do_rescale ? (float)((double)v * p->rescale_factor) : (float)v;
            if (p->do_normalize) x = (x - p->image_mean[ch]) / p->image_std[ch];
            lut[ch][v] = x;
        }
    float *o = (float *)out->data;
    const size_t plane = (size_t)oh * (size_t)ow;
    for (int ch = 0; ch < 3; ch++)
        for (int32_t y = 0; y < oh; y++) {
            const uint8_t *irow = img + ((size_t)(top + y) * (size_t)rw + (size_t)left) * 3;
            float *orow = o + (size_t)ch * plane + (size_t)y * (size_t)ow;
            for (int32_t x = 0; x < ow; x++) orow[x] = lut[ch][irow[3 * x + ch]];
        }
    return LISA_OK;
}
