/* kernels/cuda/sam_kernels.cuh — SAM-specific kernel bodies: window partition/unpartition,
 * decomposed relative-position terms and bilinear resize (launchers: kernels/cuda/sam.cu; the
 * dense positional encoding is computed once at load on the host, models/sam_encoder.c).
 * All grid-stride, any block size; runtime dtypes through prims.cuh.
 */
#ifndef LISA_KERNELS_CUDA_SAM_KERNELS_CUH
#define LISA_KERNELS_CUDA_SAM_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

/* ---- window partition / unpartition (spec §5.1; ops.def WINDOW_PARTITION) ------------------ */
typedef struct lk_window_params {
    const void *x;   /* partition: [B, H, W, C]; unpartition: [B·nh·nw, S, S, C] */
    const void *res; /* unpartition only: y = res + unpartition(x), res like y, or NULL */
    void *y;         /* partition: [B·nh·nw, S, S, C]; unpartition: [B, H, W, C] */
    int32_t xdt, resdt, ydt;
    int32_t B, H, W, C, S, nh, nw;
} lk_window_params;

/* grid-stride over the windowed tensor's elements; padding (beyond H or W) is zero. */
LISA_GLOBAL void lk_window_partition(const lk_window_params p) {
    const int64_t n = (int64_t)p.B * p.nh * p.nw * p.S * p.S * p.C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % p.C, t = i / p.C;
        int sx = (int)(t % p.S);
        t /= p.S;
        int sy = (int)(t % p.S);
        int64_t w = t / p.S;
        int b = (int)(w / ((int64_t)p.nh * p.nw)), wi = (int)(w % ((int64_t)p.nh * p.nw));
        int hh = (wi / p.nw) * p.S + sy, ww = (wi % p.nw) * p.S + sx;
        float v = 0.0f;
        if (hh < p.H && ww < p.W) v = lk_load(p.x, p.xdt, (((int64_t)b * p.H + hh) * p.W + ww) * p.C + c);
        lk_store(p.y, p.ydt, i, v);
    }
}

/* grid-stride over y[B, H, W, C] (the crop): y = x[window of (h, w)] (+ res). y may alias res. */
LISA_GLOBAL void lk_window_unpartition(const lk_window_params p) {
    const int64_t n = (int64_t)p.B * p.H * p.W * p.C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % p.C, t = i / p.C;
        int ww = (int)(t % p.W);
        t /= p.W;
        int hh = (int)(t % p.H);
        int b = (int)(t / p.H);
        int64_t w = ((int64_t)b * p.nh + hh / p.S) * p.nw + ww / p.S;
        float v = lk_load(p.x, p.xdt, ((w * p.S + hh % p.S) * p.S + ww % p.S) * p.C + c);
        if (p.res) v += lk_load(p.res, p.resdt, i);
        lk_store(p.y, p.ydt, i, v);
    }
}

/* ---- decomposed relative position (ops.def REL_POS, spec §5.1) -------------------------------- */
typedef struct lk_relpos_params {
    const void *q;            /* [B, qh·qw, H, D] (strides q_bs, q_ts, q_hs; D contiguous), unscaled */
    const void *rph, *rpw;    /* [2·qh−1, D], [2·qw−1, D] */
    void *rel_h, *rel_w;      /* [B, H, qh·qw, qh], [B, H, qh·qw, qw] contiguous */
    int64_t q_bs, q_ts, q_hs;
    int32_t qdt, rphdt, rpwdt, rhdt, rwdt;
    int32_t B, H, D, qh, qw;
} lk_relpos_params;

/* grid-stride over B·H·T·(qh + qw) outputs, one D-long dot product each:
 * rel_h[b,h,(y,x),ky] = Σ_c q[b,(y,x),h,c]·rph[y−ky+qh−1, c];  rel_w likewise with x, kx. */
LISA_GLOBAL void lk_rel_pos(const lk_relpos_params p) {
    const int T = p.qh * p.qw, K = p.qh + p.qw;
    const int64_t n = (int64_t)p.B * p.H * T * K;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int k = (int)(i % K);
        int64_t r = i / K;
        int t = (int)(r % T);
        r /= T;
        int h = (int)(r % p.H), b = (int)(r / p.H);
        int y = t / p.qw, x = t % p.qw;
        const int64_t qo = (int64_t)b * p.q_bs + (int64_t)t * p.q_ts + (int64_t)h * p.q_hs;
        const bool is_h = k < p.qh;
        const void *tab = is_h ? p.rph : p.rpw;
        const int tdt = is_h ? p.rphdt : p.rpwdt;
        const int64_t to = is_h ? (int64_t)(y - k + p.qh - 1) * p.D : (int64_t)(x - (k - p.qh) + p.qw - 1) * p.D;
        float acc = 0.0f;
        for (int c = 0; c < p.D; c++) acc += lk_load(p.q, p.qdt, qo + c) * lk_load(tab, tdt, to + c);
        const int64_t row = ((int64_t)b * p.H + h) * T + t;
        if (is_h)
            lk_store(p.rel_h, p.rhdt, row * p.qh + k, acc);
        else
            lk_store(p.rel_w, p.rwdt, row * p.qw + (k - p.qh), acc);
    }
}

/* ---- bilinear resize, align_corners=False, no antialias (docs/parity.md §3) ---------------------- */
/* PyTorch CUDA's upsample_bilinear2d with float accumulators: scale = (float)in/out,
 * src = scale·(d+0.5)−0.5 clamped at 0, i0 = (int)src, i1 = i0 + (i0 < in−1), λ1 = src − i0. */
LISA_DEV void lk_bilinear_axis(int d, int in, int out, int *i0, int *i1, float *l0, float *l1) {
    if (in == out) {
        *i0 = *i1 = d;
        *l0 = 1.0f, *l1 = 0.0f;
        return;
    }
    const float scale = (float)in / (float)out;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    *i0 = (int)src;
    *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
    *l1 = src - (float)*i0;
    *l0 = 1.0f - *l1;
}

/* grid-stride over N·Ho·Wo outputs of x[N, H, W] -> y[N, Ho, Wo] (planes contiguous). */
LISA_GLOBAL void lk_bilinear(void *y, int ydt, const void *x, int xdt, int64_t N, int32_t H, int32_t W, int32_t Ho,
                             int32_t Wo) {
    const int64_t n = N * Ho * Wo;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int ox = (int)(i % Wo), oy = (int)((i / Wo) % Ho);
        int64_t plane = i / ((int64_t)Ho * Wo);
        int y0, y1, x0, x1;
        float ly0, ly1, lx0, lx1;
        lk_bilinear_axis(oy, H, Ho, &y0, &y1, &ly0, &ly1);
        lk_bilinear_axis(ox, W, Wo, &x0, &x1, &lx0, &lx1);
        const int64_t base = plane * H * W;
        float v00 = lk_load(x, xdt, base + (int64_t)y0 * W + x0), v01 = lk_load(x, xdt, base + (int64_t)y0 * W + x1);
        float v10 = lk_load(x, xdt, base + (int64_t)y1 * W + x0), v11 = lk_load(x, xdt, base + (int64_t)y1 * W + x1);
        lk_store(y, ydt, i, ly0 * (lx0 * v00 + lx1 * v01) + ly1 * (lx0 * v10 + lx1 * v11));
    }
}

#endif
