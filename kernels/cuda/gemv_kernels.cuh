/* kernels/cuda/gemv_kernels.cuh — the small-M linear (decode): y[M, N] = x[M, K]·w[N, K]ᵀ for
 * M <= 16 at the weight-streaming bandwidth roofline (launcher: kernels/cuda/gemv.cu).
 *
 * Why: a decode step multiplies 1-16 activation rows by every weight matrix; the time is the bytes
 * of bf16 weights read once (13 GB per LLaMA-7B step), which cuBLASLt's small-M kernels stream at
 * 65-80 % of the copy bandwidth (bench/gpu/README.md). Design (docs/architecture.md "performance
 * model": one pass over the weights, enough bytes in flight):
 * - tensor cores for any M <= 16: mma.sync m16n8k16 with A = the x rows (zero rows pad M to 8 or 16)
 *   and B = 8 weight rows, so 16 rows cost the same weight traffic as 1 and no FMA or shared-memory
 *   bandwidth limit appears at M = 16;
 * - 16-byte weight loads: lane (g = lane/4, t = lane%4) loads w[n0+g][k + 8t .. +8) (a warp reads 8
 *   rows x 64 contiguous bytes per step). The 8 values feed two mmas directly: the reduction order
 *   over k is free, so logical k (2t, 2t+1 | 2t+8, 2t+9) of mma step j is physical k 8t+4j+(0,1 |
 *   2,3) for both A and B — no shuffles, no shared-memory staging of w;
 * - LK_GEMV_UNROLL (4) independent 16-byte loads per lane in flight before their first use;
 * - x staged once per block in shared memory ([MP][LK_GEMV_KC] bf16, rows padded by 64 bytes so that
 *   the 8 rows a quarter-warp reads fall in distinct banks);
 * - split-K in fixed chunks of LK_GEMV_KC = 1024 (grid.y = splits): every split writes fp32 partials,
 *   and the last block of each 32-row tile to finish (an atomic ticket after a threadfence) sums
 *   them in split order, applies the epilogue and resets the ticket. One launch, deterministic (the
 *   same bits every run), and a row's result depends neither on M nor on the other rows (the
 *   split points depend on K only; mma rows are independent).
 * Epilogue in fp32 (LINEAR_EX, kernels/ops.def): + bias[n], activation (ReLU, exact erf GELU, quick
 * GELU), + residual[m, n] (may alias y), one rounding to y's dtype (BF16 or F32).
 */
#ifndef LISA_KERNELS_CUDA_GEMV_KERNELS_CUH
#define LISA_KERNELS_CUDA_GEMV_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

enum {
    LK_GEMV_WARPS = 4,     /* warps per block; each owns 8 weight rows */
    LK_GEMV_ROWS = 32,     /* weight rows (outputs n) per block */
    LK_GEMV_KC = 1024,     /* k per split */
    LK_GEMV_MAXM = 16,
    LK_GEMV_UNROLL = 4,    /* 16-byte weight loads in flight per lane */
    LK_GEMV_XPAD = 32,     /* bf16 elements (64 bytes) of padding per staged x row */
};

/* Activations of the epilogue (the values of lisa_act, kernels/ops.h: LINEAR_EX). */
enum { LK_ACT_NONE = 0, LK_ACT_RELU = 1, LK_ACT_GELU = 2, LK_ACT_QUICK_GELU = 3 };

typedef struct lk_gemv_params {
    const lisa_bf16_t *x; /* [M, K] rows with stride lda (elements), 16-byte aligned */
    int64_t lda;
    const lisa_bf16_t *w; /* [N, K] contiguous, 16-byte aligned, K % 8 == 0 */
    void *y;              /* [M, N] rows with stride ldy, dtype ydt (F32 or BF16) */
    int32_t ydt;
    int64_t ldy;
    const void *bias; /* [N] of dtype bdt, or NULL */
    int32_t bdt;
    const void *res; /* [M, N] of y's dtype, row stride ldr, may alias y; or NULL */
    int64_t ldr;
    int32_t act;
    int32_t M, N, K, S; /* S = ceil(K / LK_GEMV_KC) */
    float *part;        /* [S, M, N] fp32 partial sums when S > 1 */
    int *tickets;       /* [ceil(N / LK_GEMV_ROWS)] zero; the last block of a tile resets its ticket */
} lk_gemv_params;

/* Shared memory of lk_gemv<MP>: x[MP][LK_GEMV_KC + LK_GEMV_XPAD] bf16. */
LISA_HD size_t lk_gemv_smem_bytes(int MP) { return (size_t)MP * (LK_GEMV_KC + LK_GEMV_XPAD) * 2; }

LISA_DEV float lk_gemv_epilogue(const lk_gemv_params &p, int m, int n, float v) {
    if (p.bias) v += lk_load(p.bias, p.bdt, n);
    if (p.act == LK_ACT_RELU) v = lk_relu(v);
    else if (p.act == LK_ACT_GELU) v = lk_gelu_erf(v);
    else if (p.act == LK_ACT_QUICK_GELU) v = lk_quick_gelu(v);
    if (p.res) v += lk_load(p.res, p.ydt, (int64_t)m * p.ldr + n);
    return v;
}

/* grid (ceil(N / 32), S), block 128, dynamic smem lk_gemv_smem_bytes(MP); MP = 8 (M <= 8) or 16. */
template <int MP> LISA_GLOBAL void lk_gemv(const lk_gemv_params p) {
    static_assert(MP == 8 || MP == 16, "x rows are staged as 8 or 16 (the mma's A rows)");
    constexpr int XS = LK_GEMV_KC + LK_GEMV_XPAD; /* staged row stride (elements) */
    LISA_SHARED int lk_gemv_last_;
    uint16_t *xs = (uint16_t *)lk_dyn_smem();
    const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int tile = (int)blockIdx.x, s = (int)blockIdx.y;
    const int k0 = s * LK_GEMV_KC, kn = p.K - k0 < LK_GEMV_KC ? p.K - k0 : LK_GEMV_KC;
    const int cpr = kn / 8; /* 16-byte chunks per row in this split */

    /* x[m, k0 .. k0+kn) for m < MP into shared memory; rows >= M are zero */
    for (int i = tid; i < MP * cpr; i += LK_GEMV_WARPS * 32) {
        const int m = i / cpr, c = i % cpr;
        lk_u4 v = {{0u, 0u, 0u, 0u}};
        if (m < p.M) v = lk_ld16((const uint16_t *)p.x + (int64_t)m * p.lda + k0 + c * 8);
        memcpy(xs + m * XS + c * 8, &v, 16);
    }
    lk_syncthreads();

    /* this warp's 8 weight rows n0 .. n0+7; lane (g, t) streams row n0 + g */
    const int n0 = tile * LK_GEMV_ROWS + warp * 8, nrow = n0 + g;
    const uint16_t *wr = (const uint16_t *)p.w + (int64_t)(nrow < p.N ? nrow : 0) * p.K + k0;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* (row g, n 2t..2t+1), (row g+8, n 2t..2t+1) */
    const int steps = (cpr + 3) / 4; /* 32 k per step: 4 lanes x 8 */
    for (int st0 = 0; st0 < steps; st0 += LK_GEMV_UNROLL) {
        lk_u4 wv[LK_GEMV_UNROLL];
        LISA_UNROLL
        for (int u = 0; u < LK_GEMV_UNROLL; u++) { /* every load first: LK_GEMV_UNROLL in flight */
            const int c = (st0 + u) * 4 + t;
            const bool ok = nrow < p.N && c < cpr;
            wv[u] = ok ? lk_ld16(wr + c * 8) : lk_u4{{0u, 0u, 0u, 0u}};
        }
        LISA_UNROLL
        for (int u = 0; u < LK_GEMV_UNROLL; u++) {
            const int c = (st0 + u) * 4 + t;
            if ((st0 + u) * 4 >= cpr) break; /* uniform over the warp */
            lk_u4 xa = {{0u, 0u, 0u, 0u}}, xb = {{0u, 0u, 0u, 0u}};
            if (c < cpr) {
                xa = lk_ld16(xs + g * XS + c * 8);
                if (MP == 16) xb = lk_ld16(xs + (g + 8) * XS + c * 8);
            }
            /* mma step 0: physical k 8t+0,1 (a0/a1, b0) and 8t+2,3 (a2/a3, b1); step 1: 8t+4..7 */
            const uint32_t a0[4] = {xa.w[0], xb.w[0], xa.w[1], xb.w[1]}, b0[2] = {wv[u].w[0], wv[u].w[1]};
            const uint32_t a1[4] = {xa.w[2], xb.w[2], xa.w[3], xb.w[3]}, b1[2] = {wv[u].w[2], wv[u].w[3]};
            lk_mma_bf16_16816(d, a0, b0);
            lk_mma_bf16_16816(d, a1, b1);
        }
    }

    /* outputs of this lane: rows m = g, g+8; columns n0 + 2t, n0 + 2t + 1 */
    LISA_UNROLL
    for (int e = 0; e < 4; e++) {
        const int m = g + (e >> 1) * 8, n = n0 + 2 * t + (e & 1);
        if (m >= p.M || n >= p.N) continue;
        if (p.S == 1)
            lk_store(p.y, p.ydt, (int64_t)m * p.ldy + n, lk_gemv_epilogue(p, m, n, d[e]));
        else
            p.part[((int64_t)s * p.M + m) * p.N + n] = d[e];
    }
    if (p.S == 1) return; /* uniform */

    /* the last split of this tile to finish sums the partials in split order */
    lk_threadfence();
    lk_syncthreads();
    if (tid == 0) lk_gemv_last_ = lk_atomic_add(&p.tickets[tile], 1) == p.S - 1;
    lk_syncthreads();
    if (!lk_gemv_last_) return; /* uniform */
    lk_threadfence();
    const int nt = p.N - tile * LK_GEMV_ROWS < LK_GEMV_ROWS ? p.N - tile * LK_GEMV_ROWS : LK_GEMV_ROWS;
    for (int i = tid; i < p.M * nt; i += LK_GEMV_WARPS * 32) {
        const int m = i / nt, n = tile * LK_GEMV_ROWS + i % nt;
        float v = 0.0f;
        for (int sp = 0; sp < p.S; sp++) v += lk_ld_cg(p.part + ((int64_t)sp * p.M + m) * p.N + n);
        lk_store(p.y, p.ydt, (int64_t)m * p.ldy + n, lk_gemv_epilogue(p, m, n, v));
    }
    if (tid == 0) p.tickets[tile] = 0; /* ready for the next launch (stream order) */
}

#endif
