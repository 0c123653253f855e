/* kernels/cuda/norm_kernels.cuh — LayerNorm / RMSNorm / LayerNorm2d / softmax kernel bodies
 * (launchers: kernels/cuda/norm.cu). fp32 statistics, biased variance, two passes over a row held
 * in shared memory (mean, then Σ(x−mean)²: no cancellation), one rounding of each output.
 *
 * lk_rownorm also carries the fusions the ViT-H block wants (spec §5.1):
 *   - residual add: s = x + r is written out and normalized (x = s + attn; n = LN2(x));
 *   - window partition: output row (window, sy, sx) reads input row (b, wy·S+sy, wx·S+sx) and is
 *     zero for padding tokens (LN1 then pad then partition == partition of LN1, since padding is
 *     applied after the norm and is not normalized);
 * and RMSNorm (spec §4.3): y = g · round_y(x · rsqrt(mean(x²) + eps)).
 */
#ifndef LISA_KERNELS_CUDA_NORM_KERNELS_CUH
#define LISA_KERNELS_CUDA_NORM_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

typedef struct lk_rownorm_params {
    const void *x;    /* [rows_in, C], row stride x_rs */
    const void *res;  /* residual, same layout as x (row stride res_rs), or NULL */
    void *sum_out;    /* x + res written here (row stride sum_rs), or NULL */
    void *y;          /* [rows_out, C], row stride y_rs */
    const void *g, *b; /* [C] or NULL */
    int64_t x_rs, res_rs, sum_rs, y_rs;
    int32_t C, rows_out;
    int32_t xdt, resdt, sumdt, ydt, gdt, bdt;
    float eps;
    bool rms;
    /* window partition (win > 0): x is [B, H, W, C] rows, y is [B·nh·nw, win, win, C] rows */
    int32_t win, H, W, nh, nw;
} lk_rownorm_params;

LISA_DEV int64_t lk_rownorm_src(const lk_rownorm_params &p, int64_t r) {
    if (p.win <= 0) return r;
    int64_t per_win = (int64_t)p.win * p.win;
    int64_t w = r / per_win, s = r % per_win;
    int64_t b = w / ((int64_t)p.nh * p.nw), wi = w % ((int64_t)p.nh * p.nw);
    int64_t hh = (wi / p.nw) * p.win + s / p.win, ww = (wi % p.nw) * p.win + s % p.win;
    if (hh >= p.H || ww >= p.W) return -1;
    return (b * p.H + hh) * p.W + ww;
}

/* grid rows_out, block 256, dynamic smem C floats. */
LISA_GLOBAL void lk_rownorm(const lk_rownorm_params p) {
    float *row = (float *)lk_dyn_smem();
    const int64_t r = blockIdx.x;
    const int64_t src = lk_rownorm_src(p, r);
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x, C = p.C;
    const int64_t yo = r * p.y_rs;
    if (src < 0) { /* padding token of a partitioned window: literal zeros (spec §5.1) */
        for (int c = tid; c < C; c += nt) lk_store(p.y, p.ydt, yo + c, 0.0f);
        return;
    }
    float acc = 0.0f;
    for (int c = tid; c < C; c += nt) {
        float v = lk_load(p.x, p.xdt, src * p.x_rs + c);
        if (p.res) {
            v += lk_load(p.res, p.resdt, src * p.res_rs + c);
            v = lk_round_to(p.sumdt, v); /* the normalized value is the stored residual stream */
            lk_store(p.sum_out, p.sumdt, src * p.sum_rs + c, v);
        }
        row[c] = v;
        acc += p.rms ? v * v : v;
    }
    float mean = 0.0f, rstd;
    if (p.rms) {
        rstd = lk_rsqrt(lk_block_sum(acc) / (float)C + p.eps);
    } else {
        mean = lk_block_sum(acc) / (float)C;
        float sq = 0.0f;
        for (int c = tid; c < C; c += nt) {
            float d = row[c] - mean;
            sq += d * d;
        }
        rstd = lk_rsqrt(lk_block_sum(sq) / (float)C + p.eps);
    }
    for (int c = tid; c < C; c += nt) {
        float v = (row[c] - mean) * rstd;
        if (p.rms) {
            v = lk_round_to(p.ydt, v); /* HF: weight * hidden.to(input_dtype) */
            if (p.g) v *= lk_load(p.g, p.gdt, c);
        } else {
            if (p.g) v *= lk_load(p.g, p.gdt, c);
            if (p.b) v += lk_load(p.b, p.bdt, c);
        }
        lk_store(p.y, p.ydt, yo + c, v);
    }
}

/* SAM LayerNorm2d over channels of x[B, C, P] (P = H·W): grid-stride over B·P pixels, each
 * thread loops over C (adjacent threads read adjacent pixels: coalesced). y may alias x. */
LISA_GLOBAL void lk_layernorm2d(void *y, int ydt, const void *x, int xdt, const void *g, int gdt, const void *b, int bdt,
                                int32_t B, int32_t C, int64_t P, float eps) {
    const int64_t n = (int64_t)B * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (i / P) * C * P + i % P;
        float mean = 0.0f;
        for (int c = 0; c < C; c++) mean += lk_load(x, xdt, base + c * P);
        mean /= (float)C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = lk_load(x, xdt, base + c * P) - mean;
            var += d * d;
        }
        const float rstd = lk_rsqrt(var / (float)C + eps);
        for (int c = 0; c < C; c++) {
            float v = (lk_load(x, xdt, base + c * P) - mean) * rstd;
            if (g) v *= lk_load(g, gdt, c);
            if (b) v += lk_load(b, bdt, c);
            lk_store(y, ydt, base + c * P, v);
        }
    }
}

/* Softmax over rows of x[R, N] (max-subtracted, fp32): grid R, block 256; three passes over the
 * row (max, Σexp, write) so that N is unbounded (vocab-sized rows). y may alias x. */
LISA_GLOBAL void lk_softmax(void *y, int ydt, int64_t y_rs, const void *x, int xdt, int64_t x_rs, int32_t N) {
    const int64_t xo = (int64_t)blockIdx.x * x_rs, yo = (int64_t)blockIdx.x * y_rs;
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
    float mx = -INFINITY;
    for (int j = tid; j < N; j += nt) mx = fmaxf(mx, lk_load(x, xdt, xo + j));
    mx = lk_block_max(mx);
    if (mx == -INFINITY) mx = 0.0f; /* all -inf: exp gives 0/0 = NaN, as torch */
    float sum = 0.0f;
    for (int j = tid; j < N; j += nt) sum += expf(lk_load(x, xdt, xo + j) - mx);
    const float inv = 1.0f / lk_block_sum(sum);
    for (int j = tid; j < N; j += nt) lk_store(y, ydt, yo + j, expf(lk_load(x, xdt, xo + j) - mx) * inv);
}

#endif
