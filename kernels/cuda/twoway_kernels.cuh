/* kernels/cuda/twoway_kernels.cuh — SAM's two-way transformer (ops.def TWOWAY_ATTENTION,
 * TWOWAY_MLP) as a few fused kernels per step (launchers: kernels/cuda/twoway.cu).
 *
 * The mask decoder (segment_anything/modeling/transformer.py) alternates a few prompt tokens
 * (T = 6 for LISA: IoU token, 4 mask tokens, the [SEG] embedding) with the 4096 rows of the image
 * embedding, at C = 256 (cross attentions at Ci = 128, 8 heads of 16). Generic ops cost one launch
 * per term (~100 per decoder step, each tiny: launch-bound); here each attention step is:
 *
 *   few-token self-attention (Tq, Tk <= 32):  lk_tw_heads (grid H x N: the head's q/k/v projections
 *       and its softmax over the tokens) + lk_tw_out_ln (grid N: output projection, residual, norm);
 *   tokens -> image (Tq <= 16, many keys):    lk_tw_kv_rows (tensor cores: K = (x + pe)·Wkᵀ and
 *       V = x·Wvᵀ for 32-row tiles) + lk_tw_split (grid splits x H x N: the head's q projection,
 *       then a 256-key split of the softmax, flash-decoding style) + lk_tw_out_ln (combines the
 *       splits in order, output projection, residual, norm);
 *   image -> tokens (many queries, Tk <= 16): lk_tw_kv_tokens (the tokens' K and V) + lk_tw_i2t_rows
 *       (tensor cores: per 32 image rows the q projection, the softmax over the tokens, the output
 *       projection, the residual and the norm, all on chip);
 *   the MLP (few rows):                        lk_tw_mlp_partial (grid hidden chunks x row groups:
 *       ReLU(x·W1ᵀ) for 128 hidden units and their share of ·W2ᵀ) + lk_tw_mlp_ln (the chunks summed in
 *       order, bias, residual, norm);
 *   the prediction heads (MLP3, few rows):    lk_mlp3 (three GEMVs, ReLU between, on chip).
 *
 * Numerics: BF16 activations and weight matrices, everything else (biases, norms, PE) any float
 * dtype; all intermediates stay fp32 on chip or in fp32 scratch (the generic path rounds each to
 * bf16), the tensor-core operands are the bf16 values (inputs, and the sums x + pe rounded once);
 * softmax in the log2 domain with exp2, LayerNorm two-pass (mean, then Σ(x − mean)²). Splits are
 * fixed 256-key chunks combined in split order, so results do not depend on the launch.
 *
 * Token-side GEMVs (lk_tw_rowlin): one warp per output feature, lanes over the input features in
 * 16-byte weight loads, a warp sum per token row; rows in shared memory.
 * Tensor-core tiles (lk_tw_tile_mma): 32 rows x 64 output features per 128-thread block, warp
 * (wr, wc) owning rows 16·wr.. and features 32·wc..; A (rows, bf16) and a 64-row chunk of W (bf16)
 * in padded shared memory (+8 elements per row: ldmatrix rows in distinct banks), fragments by
 * ldmatrix as in lk_flash_fwd (attn_kernels.cuh), mma.sync m16n8k16 with fp32 accumulators.
 */
#ifndef LISA_KERNELS_CUDA_TWOWAY_KERNELS_CUH
#define LISA_KERNELS_CUDA_TWOWAY_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

enum {
    LK_TW_MAXT = 16,        /* token rows a token-side kernel holds in registers (Tq of t2i, Tk of i2t) */
    LK_TW_MAXK = 32,        /* keys of the few-token self-attention (one lane per key) */
    LK_TW_MAXD = 64,        /* head dim of the split and head kernels (2 lanes' worth) */
    LK_TW_SPLIT_KEYS = 256, /* keys per split of lk_tw_split */
    LK_TW_BM = 32,          /* image rows per tensor-core tile */
    LK_TW_BN = 64,          /* output features per weight chunk */
    LK_TW_HC = 128,         /* hidden units per lk_tw_mlp_partial block */
    LK_TW_RG = 16,          /* rows per lk_tw_mlp_partial block */
};

/* Everything the kernels read: contiguous [N, T, C] inputs of runtime dtypes (lisa_dtype codes), a
 * PE with a batch of 1 broadcast (*_b1); bf16 weight matrices; biases and norm params of any float
 * dtype or NULL. Scratch (fp32): kf/vf [N, Tk, Ci] projected keys/values, o [N, Tq, Ci] attention
 * output, part_o [N, H, S, Tq, D] / part_ml [N, H, S, Tq, 2] split partials. */
typedef struct lk_tw_params {
    const void *xq, *qpe, *xk, *kpe, *xv;
    int32_t xq_dt, qpe_dt, xk_dt, kpe_dt, xv_dt;
    bool qpe_b1, kpe_b1;
    const lisa_bf16_t *wq, *wk, *wv, *wo;
    const void *bq, *bk, *bv, *bo;
    int32_t bq_dt, bk_dt, bv_dt, bo_dt;
    const void *ln_g, *ln_b;
    int32_t g_dt, b_dt;
    float eps;
    bool residual;
    void *y; /* [N, Tq, C] */
    int32_t y_dt;
    int32_t N, Tq, Tk, C, Ci, H, D, n_split;
    float scale_log2; /* softmax scale · log2(e) */
    float *kf, *vf, *o, *part_o, *part_ml;
} lk_tw_params;

/* Element (n, t, c) of a contiguous [N or 1, T, C] tensor. */
LISA_DEV float lk_tw_ld(const void *x, int dt, bool b1, int n, int t, int T, int C, int c) {
    return lk_load(x, dt, ((int64_t)(b1 ? 0 : n) * T + t) * C + c);
}

/* out[t·ldo + (o − o0)] = act(Σ_k in[t·ldi + k]·W[o·ldw + k] + b[o]) for t < T (<= LK_TW_MAXT),
 * o in [o0, o1): warps of the block take outputs round-robin, lanes take k in 8-element chunks
 * (16-byte loads: W and ldw 8-element aligned, K % 8 == 0). `in` in shared memory, `out` shared or
 * global. Every lane of a warp runs the same iterations (the warp sums are collectives). */
LISA_DEV void lk_tw_rowlin(float *out, int ldo, const float *in, int ldi, int T, const lisa_bf16_t *W, int64_t ldw,
                           int K, int o0, int o1, const void *b, int bdt, bool relu) {
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    for (int o = o0 + warp; o < o1; o += nw) {
        float acc[LK_TW_MAXT];
        LISA_UNROLL
        for (int t = 0; t < LK_TW_MAXT; t++) acc[t] = 0.0f;
        const lisa_bf16_t *wr = W + (int64_t)o * ldw;
        for (int k0 = lane * 8; k0 < K; k0 += 256) {
            float w[8];
            lk_unpack16<lisa_bf16_t>(w, lk_ld16(wr + k0));
            LISA_UNROLL
            for (int t = 0; t < LK_TW_MAXT; t++) {
                if (t >= T) break;
                const float *x = in + t * ldi + k0;
                acc[t] += x[0] * w[0] + x[1] * w[1] + x[2] * w[2] + x[3] * w[3] + x[4] * w[4] + x[5] * w[5] +
                          x[6] * w[6] + x[7] * w[7];
            }
        }
        const float bias = b ? lk_load(b, bdt, o) : 0.0f;
        LISA_UNROLL
        for (int t = 0; t < LK_TW_MAXT; t++) {
            if (t >= T) break; /* uniform */
            float s = lk_warp_sum(acc[t]) + bias;
            if (relu) s = lk_relu(s);
            if (lane == 0) out[t * ldo + (o - o0)] = s;
        }
    }
}

/* LayerNorm of one row of C values held in shared memory `v` (may be overwritten), by one warp:
 * two passes (mean, then Σ(v − mean)²), biased variance; writes y[yo + c] in y's dtype. */
LISA_DEV void lk_tw_ln_row(const float *v, int C, const lk_tw_params &p, int64_t yo) {
    const int lane = (int)threadIdx.x & 31;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += v[c];
    const float mean = lk_warp_sum(s) / (float)C;
    float q = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = v[c] - mean;
        q += d * d;
    }
    const float rstd = lk_rsqrt(lk_warp_sum(q) / (float)C + p.eps);
    for (int c = lane; c < C; c += 32) {
        float r = (v[c] - mean) * rstd;
        if (p.ln_g) r *= lk_load(p.ln_g, p.g_dt, c);
        if (p.ln_b) r += lk_load(p.ln_b, p.b_dt, c);
        lk_store(p.y, p.y_dt, yo + c, r);
    }
}

/* Rows t < T of input n as x + pe into shared memory (fp32, row stride C). */
LISA_DEV void lk_tw_load_rows(float *dst, const void *x, int xdt, const void *pe, int pedt, bool pe_b1, int n, int T,
                              int C) {
    for (int i = (int)threadIdx.x; i < T * C; i += (int)blockDim.x) {
        const int t = i / C, c = i % C;
        float v = lk_tw_ld(x, xdt, false, n, t, T, C, c);
        if (pe) v += lk_tw_ld(pe, pedt, pe_b1, n, t, T, C, c);
        dst[i] = v;
    }
}

/* ============================================================================================
 * Few-token self-attention: lk_tw_heads + lk_tw_out_ln
 * ============================================================================================ */

/* Dynamic shared memory of lk_tw_heads (floats: three token blocks and the head's q/k/v). */
LISA_HD size_t lk_tw_heads_smem(int Tq, int Tk, int C, int D) {
    return ((size_t)(Tq + 2 * Tk) * C + (size_t)(Tq + 2 * Tk) * D) * 4;
}

/* grid (H, N), block 128: head h of prompt n. q/k/v of the head for the few tokens, then one warp
 * per query row: lane j scores key j (Tk <= 32), softmax, o[n, i, h·D + d] = Σ_j p_j v_j[d]. */
LISA_GLOBAL void lk_tw_heads(const lk_tw_params p) {
    LISA_SHARED float pw[4][LK_TW_MAXK];
    const int h = (int)blockIdx.x, n = (int)blockIdx.y, D = p.D, C = p.C;
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    float *tq = (float *)lk_dyn_smem(), *tk = tq + p.Tq * C, *tv = tk + p.Tk * C;
    float *q = tv + p.Tk * C, *k = q + p.Tq * D, *v = k + p.Tk * D;
    lk_tw_load_rows(tq, p.xq, p.xq_dt, p.qpe, p.qpe_dt, p.qpe_b1, n, p.Tq, C);
    lk_tw_load_rows(tk, p.xk, p.xk_dt, p.kpe, p.kpe_dt, p.kpe_b1, n, p.Tk, C);
    lk_tw_load_rows(tv, p.xv, p.xv_dt, nullptr, 0, false, n, p.Tk, C);
    lk_syncthreads();
    lk_tw_rowlin(q, D, tq, C, p.Tq, p.wq, C, C, h * D, h * D + D, p.bq, p.bq_dt, false);
    lk_tw_rowlin(k, D, tk, C, p.Tk, p.wk, C, C, h * D, h * D + D, p.bk, p.bk_dt, false);
    lk_tw_rowlin(v, D, tv, C, p.Tk, p.wv, C, C, h * D, h * D + D, p.bv, p.bv_dt, false);
    lk_syncthreads();
    for (int i = warp; i < p.Tq; i += nw) { /* uniform per warp */
        float s = -INFINITY;
        if (lane < p.Tk) {
            float acc = 0.0f;
            for (int d = 0; d < D; d++) acc += q[i * D + d] * k[lane * D + d];
            s = acc * p.scale_log2;
        }
        const float m = lk_warp_max(s);
        const float e = lane < p.Tk ? lk_exp2(s - m) : 0.0f;
        const float l = lk_warp_sum(e);
        pw[warp][lane] = e / l;
        lk_syncwarp();
        for (int d = lane; d < D; d += 32) {
            float acc = 0.0f;
            for (int j = 0; j < p.Tk; j++) acc += pw[warp][j] * v[j * D + d];
            p.o[((int64_t)n * p.Tq + i) * p.Ci + h * D + d] = acc;
        }
        lk_syncwarp(); /* pw reused by this warp's next row */
    }
}

/* Dynamic shared memory of lk_tw_out_ln (floats: the attention output and the projected rows). */
LISA_HD size_t lk_tw_out_ln_smem(int Tq, int C, int Ci) { return ((size_t)Tq * Ci + (size_t)Tq * C) * 4; }

/* grid N, block 256: the attention output of prompt n (from p.o, or combined from the n_split
 * partials when part_o is set), a = o·Woᵀ + bo, y = LayerNorm(xq + a) (or of a alone). */
LISA_GLOBAL void lk_tw_out_ln(const lk_tw_params p) {
    const int n = (int)blockIdx.x, Tq = p.Tq, C = p.C, Ci = p.Ci, D = p.D;
    const int warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    float *o = (float *)lk_dyn_smem(), *a = o + Tq * Ci;
    for (int i = (int)threadIdx.x; i < Tq * Ci; i += (int)blockDim.x) {
        const int t = i / Ci, c = i % Ci;
        if (!p.part_o) {
            o[i] = p.o[((int64_t)n * Tq + t) * Ci + c];
            continue;
        }
        const int h = c / D, d = c % D, S = p.n_split;
        const int64_t base = ((int64_t)n * p.H + h) * S * Tq; /* partial (s, t) at base + s·Tq + t */
        float M = -INFINITY;
        for (int s = 0; s < S; s++) M = fmaxf(M, p.part_ml[(base + (int64_t)s * Tq + t) * 2]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int s = 0; s < S; s++) {
                const int64_t pi = base + (int64_t)s * Tq + t;
                const float f = lk_exp2(p.part_ml[pi * 2] - M);
                L += p.part_ml[pi * 2 + 1] * f;
                O += p.part_o[pi * D + d] * f;
            }
        }
        o[i] = L > 0.0f ? O / L : NAN;
    }
    lk_syncthreads();
    lk_tw_rowlin(a, C, o, Ci, Tq, p.wo, Ci, Ci, 0, C, p.bo, p.bo_dt, false);
    lk_syncthreads();
    for (int t = warp; t < Tq; t += nw) {
        float *row = a + t * C;
        if (p.residual)
            for (int c = (int)threadIdx.x & 31; c < C; c += 32) row[c] += lk_tw_ld(p.xq, p.xq_dt, false, n, t, Tq, C, c);
        lk_syncwarp();
        lk_tw_ln_row(row, C, p, ((int64_t)n * Tq + t) * C);
    }
}

/* ============================================================================================
 * Tensor-core tiles over image rows
 * ============================================================================================ */

/* Stages rows [o0, o0 + 64) x [0, K) of W (row stride K, bf16) into Ws (row pitch K + 8) with
 * 16-byte cp.async, rows >= O zero-filled; 128 threads; K % 8 == 0. Commits one group. */
LISA_DEV void lk_tw_load_w(lisa_bf16_t *Ws, const lisa_bf16_t *W, int o0, int O, int K) {
    const int cpr = K / 8, pitch = K + 8;
    for (int i = (int)threadIdx.x; i < LK_TW_BN * cpr; i += (int)blockDim.x) {
        const int r = i / cpr, c = i % cpr;
        const bool valid = o0 + r < O;
        const lisa_bf16_t *src = W + (valid ? (int64_t)(o0 + r) * K + c * 8 : 0);
        lk_cp_async_16(Ws + r * pitch + c * 8, src, valid);
    }
    lk_cp_async_commit();
}

/* acc[j][0..3] (n-tile j of this warp's 16 x 32 block) = A[32 x K] · Wchunkᵀ, A and Ws in shared
 * memory with row pitch K + 8 (bf16), K % 16 == 0. Warp w: rows 16·(w & 1), features 32·(w >> 1)
 * of the chunk. Fragment layouts as lk_flash_fwd's S = Q·Kᵀ (prims.cuh lk_mma_bf16_16816). */
LISA_DEV void lk_tw_tile_mma(float acc[4][4], const lisa_bf16_t *As, const lisa_bf16_t *Ws, int K) {
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    const int wr = warp & 1, wc = warp >> 1, pitch = K + 8;
    LISA_UNROLL
    for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    for (int ks = 0; ks < K / 16; ks++) {
        uint32_t af[4];
        const int ar = wr * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ac = ks * 16 + (lane >> 4) * 8;
        lk_ldmatrix_x4(af, As + ar * pitch + ac);
        LISA_UNROLL
        for (int np = 0; np < 2; np++) {
            uint32_t bf[4];
            const int br = wc * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8, bc = ks * 16 + ((lane >> 3) & 1) * 8;
            lk_ldmatrix_x4(bf, Ws + br * pitch + bc);
            const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
            lk_mma_bf16_16816(acc[2 * np], af, b0);
            lk_mma_bf16_16816(acc[2 * np + 1], af, b1);
        }
    }
}

/* The tile row and chunk feature of accumulator element e of n-tile j (for this thread). */
LISA_DEV void lk_tw_acc_pos(int j, int e, int *row, int *col) {
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    *row = (warp & 1) * 16 + (lane >> 2) + (e >> 1) * 8;
    *col = (warp >> 1) * 32 + j * 8 + 2 * (lane & 3) + (e & 1);
}

/* Tile rows r0 .. r0 + 32 of input n, x (+ pe), as bf16 into As (pitch C + 8); rows >= T zero. */
LISA_DEV void lk_tw_load_tile(lisa_bf16_t *As, const void *x, int xdt, const void *pe, int pedt, bool pe_b1, int n,
                              int r0, int T, int C) {
    const int pitch = C + 8;
    for (int i = (int)threadIdx.x; i < LK_TW_BM * C; i += (int)blockDim.x) {
        const int r = i / C, c = i % C, t = r0 + r;
        float v = 0.0f;
        if (t < T) {
            v = lk_tw_ld(x, xdt, false, n, t, T, C, c);
            if (pe) v += lk_tw_ld(pe, pedt, pe_b1, n, t, T, C, c);
        }
        As[r * pitch + c].bits = lk_f32_to_bf16(v);
    }
}

/* Dynamic shared memory of lk_tw_kv_rows: an A tile and a weight chunk (bf16). */
LISA_HD size_t lk_tw_kv_rows_smem(int C) { return ((size_t)LK_TW_BM + LK_TW_BN) * (size_t)(C + 8) * 2; }

/* grid (ceil(Tk / 32), N), block 128: kf = (xk + kpe)·Wkᵀ + bk and vf = xv·Wvᵀ + bv for 32 key
 * rows of prompt n (fp32 out, [N, Tk, Ci]). C % 16 == 0. */
LISA_GLOBAL void lk_tw_kv_rows(const lk_tw_params p) {
    const int r0 = (int)blockIdx.x * LK_TW_BM, n = (int)blockIdx.y, C = p.C, Ci = p.Ci;
    lisa_bf16_t *As = (lisa_bf16_t *)lk_dyn_smem(), *Ws = As + LK_TW_BM * (C + 8);
    for (int pass = 0; pass < 2; pass++) {
        const lisa_bf16_t *W = pass ? p.wv : p.wk;
        const void *bias = pass ? p.bv : p.bk;
        const int bdt = pass ? p.bv_dt : p.bk_dt;
        float *out = pass ? p.vf : p.kf;
        lk_syncthreads(); /* the previous pass's mma is done with As */
        if (pass) lk_tw_load_tile(As, p.xv, p.xv_dt, nullptr, 0, false, n, r0, p.Tk, C);
        else lk_tw_load_tile(As, p.xk, p.xk_dt, p.kpe, p.kpe_dt, p.kpe_b1, n, r0, p.Tk, C);
        for (int o0 = 0; o0 < Ci; o0 += LK_TW_BN) {
            lk_syncthreads(); /* the previous chunk's mma is done with Ws (and As is written) */
            lk_tw_load_w(Ws, W, o0, Ci, C);
            lk_cp_async_wait<0>();
            lk_syncthreads();
            float acc[4][4];
            lk_tw_tile_mma(acc, As, Ws, C);
            LISA_UNROLL
            for (int j = 0; j < 4; j++) {
                LISA_UNROLL
                for (int e = 0; e < 4; e++) {
                    int r, c;
                    lk_tw_acc_pos(j, e, &r, &c);
                    if (r0 + r < p.Tk && o0 + c < Ci)
                        out[((int64_t)n * p.Tk + r0 + r) * Ci + o0 + c] = acc[j][e] + (bias ? lk_load(bias, bdt, o0 + c) : 0.0f);
                }
            }
        }
    }
}

/* ============================================================================================
 * Tokens -> image: lk_tw_split (+ lk_tw_kv_rows before, lk_tw_out_ln after)
 * ============================================================================================ */

LISA_HD size_t lk_tw_split_smem(int Tq, int C, int D) { return ((size_t)Tq * C + (size_t)Tq * D) * 4; }

/* grid (n_split, H, N), block 128: head h of prompt n over keys [256·s, 256·(s+1)) of kf/vf.
 * q = (xq + qpe)·Wq[hD..hD+D]ᵀ + bq for the Tq (<= 16) token rows, then each warp walks chunks of
 * 32 keys (lane = key for the scores, lane = head-dim slot for P·V), an online softmax per row;
 * warps merged in shared memory into the split's partial (max, sum, unnormalized o). D <= 64. */
LISA_GLOBAL void lk_tw_split(const lk_tw_params p) {
    LISA_SHARED float wacc[4][LK_TW_MAXT][LK_TW_MAXD];
    LISA_SHARED float wm[4][LK_TW_MAXT], wl[4][LK_TW_MAXT];
    const int s = (int)blockIdx.x, h = (int)blockIdx.y, n = (int)blockIdx.z;
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    const int Tq = p.Tq, Tk = p.Tk, D = p.D, C = p.C, Ci = p.Ci;
    float *tq = (float *)lk_dyn_smem(), *q = tq + Tq * C;
    lk_tw_load_rows(tq, p.xq, p.xq_dt, p.qpe, p.qpe_dt, p.qpe_b1, n, Tq, C);
    lk_syncthreads();
    lk_tw_rowlin(q, D, tq, C, Tq, p.wq, C, C, h * D, h * D + D, p.bq, p.bq_dt, false);
    lk_syncthreads();
    for (int i = (int)threadIdx.x; i < Tq * D; i += (int)blockDim.x) q[i] *= p.scale_log2;
    lk_syncthreads();

    const int kbeg = s * LK_TW_SPLIT_KEYS, kend = kbeg + LK_TW_SPLIT_KEYS < Tk ? kbeg + LK_TW_SPLIT_KEYS : Tk;
    float m[LK_TW_MAXT], l[LK_TW_MAXT], acc[LK_TW_MAXT][2];
    LISA_UNROLL
    for (int i = 0; i < LK_TW_MAXT; i++) m[i] = -INFINITY, l[i] = 0.0f, acc[i][0] = acc[i][1] = 0.0f;
    const float *kb = p.kf + (int64_t)n * Tk * Ci + h * D, *vb = p.vf + (int64_t)n * Tk * Ci + h * D;
    for (int c0 = kbeg + warp * 32; c0 < kend; c0 += 4 * 32) { /* uniform per warp */
        const int j = c0 + lane;
        const bool valid = j < kend;
        float sc[LK_TW_MAXT];
        LISA_UNROLL
        for (int i = 0; i < LK_TW_MAXT; i++) sc[i] = 0.0f;
        if (valid) {
            const float *kr = kb + (int64_t)j * Ci;
            for (int d = 0; d < D; d++) {
                const float kd = kr[d];
                LISA_UNROLL
                for (int i = 0; i < LK_TW_MAXT; i++)
                    if (i < Tq) sc[i] += q[i * D + d] * kd;
            }
        }
        float pr[LK_TW_MAXT];
        LISA_UNROLL
        for (int i = 0; i < LK_TW_MAXT; i++) {
            pr[i] = 0.0f;
            if (i >= Tq) continue; /* uniform */
            const float x = valid ? sc[i] : -INFINITY;
            const float m_new = fmaxf(m[i], lk_warp_max(x));
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = lk_exp2(m[i] - m_use);
            pr[i] = lk_exp2(x - m_use);
            l[i] = l[i] * alpha + lk_warp_sum(pr[i]);
            m[i] = m_new;
            acc[i][0] *= alpha;
            acc[i][1] *= alpha;
        }
        const int nk = kend - c0 < 32 ? kend - c0 : 32;
        for (int jj = 0; jj < nk; jj++) {
            const float *vr = vb + (int64_t)(c0 + jj) * Ci;
            const float v0 = lane < D ? vr[lane] : 0.0f, v1 = lane + 32 < D ? vr[lane + 32] : 0.0f;
            LISA_UNROLL
            for (int i = 0; i < LK_TW_MAXT; i++) {
                if (i >= Tq) continue;
                const float pj = lk_shfl(pr[i], jj);
                acc[i][0] += pj * v0;
                acc[i][1] += pj * v1;
            }
        }
    }
    LISA_UNROLL
    for (int i = 0; i < LK_TW_MAXT; i++) {
        if (i >= Tq) continue;
        if (lane == 0) wm[warp][i] = m[i], wl[warp][i] = l[i];
        if (lane < D) wacc[warp][i][lane] = acc[i][0];
        if (lane + 32 < D) wacc[warp][i][lane + 32] = acc[i][1];
    }
    lk_syncthreads();
    for (int i = (int)threadIdx.x; i < Tq * D; i += (int)blockDim.x) {
        const int t = i / D, d = i % D;
        float M = -INFINITY;
        for (int w = 0; w < 4; w++) M = fmaxf(M, wm[w][t]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int w = 0; w < 4; w++) {
                const float f = lk_exp2(wm[w][t] - M);
                L += wl[w][t] * f;
                O += wacc[w][t][d] * f;
            }
        }
        const int64_t pi = (((int64_t)n * p.H + h) * p.n_split + s) * Tq + t;
        p.part_o[pi * D + d] = O;
        if (d == 0) p.part_ml[pi * 2] = M, p.part_ml[pi * 2 + 1] = L;
    }
}

/* ============================================================================================
 * Image -> tokens: lk_tw_kv_tokens + lk_tw_i2t_rows
 * ============================================================================================ */

LISA_HD size_t lk_tw_kv_tokens_smem(int Tk, int C) { return (size_t)2 * Tk * C * 4; }

/* grid (ceil(Ci / 64), N), block 256: kf = (xk + kpe)·Wkᵀ + bk, vf = xv·Wvᵀ + bv for the Tk (<= 16)
 * token rows of prompt n, features [64·x, 64·x + 64). */
LISA_GLOBAL void lk_tw_kv_tokens(const lk_tw_params p) {
    const int o0 = (int)blockIdx.x * LK_TW_BN, n = (int)blockIdx.y, C = p.C, Ci = p.Ci, Tk = p.Tk;
    const int o1 = o0 + LK_TW_BN < Ci ? o0 + LK_TW_BN : Ci;
    float *tk = (float *)lk_dyn_smem(), *tv = tk + Tk * C;
    lk_tw_load_rows(tk, p.xk, p.xk_dt, p.kpe, p.kpe_dt, p.kpe_b1, n, Tk, C);
    lk_tw_load_rows(tv, p.xv, p.xv_dt, nullptr, 0, false, n, Tk, C);
    lk_syncthreads();
    lk_tw_rowlin(p.kf + (int64_t)n * Tk * Ci + o0, Ci, tk, C, Tk, p.wk, C, C, o0, o1, p.bk, p.bk_dt, false);
    lk_tw_rowlin(p.vf + (int64_t)n * Tk * Ci + o0, Ci, tv, C, Tk, p.wv, C, C, o0, o1, p.bv, p.bv_dt, false);
}

/* Dynamic shared memory of lk_tw_i2t_rows: A tile (bf16, pitch C + 8; later the attention output
 * with pitch Ci + 8), a weight chunk (bf16, pitch max(C, Ci) + 8), a fp32 tile of max(C, Ci)
 * columns (q, later the projected rows), the tokens' K and V (fp32). */
LISA_HD size_t lk_tw_i2t_smem(int Tk, int C, int Ci) {
    const int wide = C > Ci ? C : Ci;
    return (size_t)LK_TW_BM * (wide + 8) * 2 + (size_t)LK_TW_BN * (wide + 8) * 2 + (size_t)LK_TW_BM * wide * 4 +
           (size_t)2 * Tk * Ci * 4;
}

/* grid (ceil(Tq / 32), N), block 128: 32 image rows of prompt n. q = (xq + qpe)·Wqᵀ + bq (tensor
 * cores), the softmax over the Tk tokens per (row, head) (kf/vf from lk_tw_kv_tokens), a = o·Woᵀ
 * + bo (tensor cores), y = LayerNorm(xq + a). C % 16 == 0, Ci % 16 == 0, Tk <= 16. */
LISA_GLOBAL void lk_tw_i2t_rows(const lk_tw_params p) {
    const int r0 = (int)blockIdx.x * LK_TW_BM, n = (int)blockIdx.y;
    const int C = p.C, Ci = p.Ci, D = p.D, H = p.H, Tk = p.Tk, Tq = p.Tq;
    const int warp = (int)threadIdx.x >> 5, wide = C > Ci ? C : Ci;
    lisa_bf16_t *As = (lisa_bf16_t *)lk_dyn_smem(), *Ws = As + LK_TW_BM * (wide + 8);
    float *F = (float *)(Ws + LK_TW_BN * (wide + 8)), *ks = F + LK_TW_BM * wide, *vs = ks + Tk * Ci;
    for (int i = (int)threadIdx.x; i < Tk * Ci; i += (int)blockDim.x) {
        ks[i] = p.kf[(int64_t)n * Tk * Ci + i];
        vs[i] = p.vf[(int64_t)n * Tk * Ci + i];
    }
    lk_tw_load_tile(As, p.xq, p.xq_dt, p.qpe, p.qpe_dt, p.qpe_b1, n, r0, Tq, C);
    /* q tile (fp32, row stride Ci) */
    for (int o0 = 0; o0 < Ci; o0 += LK_TW_BN) {
        lk_syncthreads();
        lk_tw_load_w(Ws, p.wq, o0, Ci, C);
        lk_cp_async_wait<0>();
        lk_syncthreads();
        float acc[4][4];
        lk_tw_tile_mma(acc, As, Ws, C);
        LISA_UNROLL
        for (int j = 0; j < 4; j++) {
            LISA_UNROLL
            for (int e = 0; e < 4; e++) {
                int r, c;
                lk_tw_acc_pos(j, e, &r, &c);
                if (o0 + c < Ci) F[r * Ci + o0 + c] = acc[j][e] + (p.bq ? lk_load(p.bq, p.bq_dt, o0 + c) : 0.0f);
            }
        }
    }
    lk_syncthreads(); /* q complete; As is free */
    /* softmax over the tokens, one thread per (row, head); o as bf16 into As (pitch Ci + 8) */
    for (int i = (int)threadIdx.x; i < LK_TW_BM * H; i += (int)blockDim.x) {
        const int r = i / H, h = i % H;
        const float *qr = F + r * Ci + h * D;
        float sc[LK_TW_MAXT], mx = -INFINITY;
        for (int j = 0; j < Tk; j++) {
            float a = 0.0f;
            for (int d = 0; d < D; d++) a += qr[d] * ks[j * Ci + h * D + d];
            sc[j] = a * p.scale_log2;
            mx = fmaxf(mx, sc[j]);
        }
        float l = 0.0f;
        for (int j = 0; j < Tk; j++) {
            sc[j] = lk_exp2(sc[j] - mx);
            l += sc[j];
        }
        const float inv = l > 0.0f ? 1.0f / l : NAN;
        for (int d = 0; d < D; d++) {
            float a = 0.0f;
            for (int j = 0; j < Tk; j++) a += sc[j] * vs[j * Ci + h * D + d];
            As[r * (Ci + 8) + h * D + d].bits = lk_f32_to_bf16(a * inv);
        }
    }
    /* projected rows + residual (fp32, row stride C) */
    for (int o0 = 0; o0 < C; o0 += LK_TW_BN) {
        lk_syncthreads(); /* As written (first chunk) / Ws free (later chunks); F's q is dead */
        lk_tw_load_w(Ws, p.wo, o0, C, Ci);
        lk_cp_async_wait<0>();
        lk_syncthreads();
        float acc[4][4];
        lk_tw_tile_mma(acc, As, Ws, Ci); /* (q in F was last read before this loop's first barrier) */
        LISA_UNROLL
        for (int j = 0; j < 4; j++) {
            LISA_UNROLL
            for (int e = 0; e < 4; e++) {
                int r, c;
                lk_tw_acc_pos(j, e, &r, &c);
                if (o0 + c < C && r0 + r < Tq)
                    F[r * C + o0 + c] = acc[j][e] + (p.bo ? lk_load(p.bo, p.bo_dt, o0 + c) : 0.0f) +
                                        (p.residual ? lk_tw_ld(p.xq, p.xq_dt, false, n, r0 + r, Tq, C, o0 + c) : 0.0f);
            }
        }
    }
    lk_syncthreads();
    for (int r = warp; r < LK_TW_BM; r += (int)blockDim.x >> 5)
        if (r0 + r < Tq) lk_tw_ln_row(F + r * C, C, p, ((int64_t)n * Tq + r0 + r) * C);
}

/* ============================================================================================
 * The MLP: lk_tw_mlp_partial + lk_tw_mlp_ln
 * ============================================================================================ */

/* MLP operands: x [R, C] (runtime dtype), w1 [Hm, C], w2 [C, Hm] (bf16), part [n_chunks, R, C]. */
typedef struct lk_tw_mlp_params {
    const void *x;
    int32_t x_dt;
    const lisa_bf16_t *w1, *w2;
    const void *b1, *b2;
    int32_t b1_dt, b2_dt;
    const void *ln_g, *ln_b;
    int32_t g_dt, b_dt;
    float eps;
    void *y;
    int32_t y_dt;
    int32_t R, C, Hm, n_chunks;
    float *part;
} lk_tw_mlp_params;

LISA_HD size_t lk_tw_mlp_partial_smem(int C) { return ((size_t)LK_TW_RG * C + (size_t)LK_TW_RG * LK_TW_HC) * 4; }

/* grid (ceil(Hm / 128), ceil(R / 16)), block 256: h = ReLU(x·W1[chunk]ᵀ + b1[chunk]) for 16 rows,
 * part[chunk] = h·W2[:, chunk]ᵀ. Hm % 8 == 0, C % 8 == 0. */
LISA_GLOBAL void lk_tw_mlp_partial(const lk_tw_mlp_params p) {
    const int ch = (int)blockIdx.x, g0 = (int)blockIdx.y * LK_TW_RG, C = p.C;
    const int rows = p.R - g0 < LK_TW_RG ? p.R - g0 : LK_TW_RG;
    const int h0 = ch * LK_TW_HC, h1 = h0 + LK_TW_HC < p.Hm ? h0 + LK_TW_HC : p.Hm;
    float *xs = (float *)lk_dyn_smem(), *hs = xs + LK_TW_RG * C;
    for (int i = (int)threadIdx.x; i < rows * C; i += (int)blockDim.x)
        xs[i] = lk_load(p.x, p.x_dt, (int64_t)g0 * C + i);
    lk_syncthreads();
    lk_tw_rowlin(hs, LK_TW_HC, xs, C, rows, p.w1, C, C, h0, h1, p.b1, p.b1_dt, true);
    lk_syncthreads();
    float *out = p.part + ((int64_t)ch * p.R + g0) * C;
    lk_tw_rowlin(out, C, hs, LK_TW_HC, rows, p.w2 + h0, p.Hm, h1 - h0, 0, C, nullptr, 0, false);
}

/* grid ceil(R / 8), block 256 (a warp per row): m = Σ_chunks part (in chunk order) + b2,
 * y = LayerNorm(x + m). Row values staged in shared memory (8 rows x C floats). */
LISA_GLOBAL void lk_tw_mlp_ln(const lk_tw_mlp_params p) {
    const int warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31, r = (int)blockIdx.x * 8 + warp, C = p.C;
    if (r >= p.R) return; /* whole warp; no block barrier below */
    float *row = (float *)lk_dyn_smem() + warp * C;
    for (int c = lane; c < C; c += 32) {
        float v = p.b2 ? lk_load(p.b2, p.b2_dt, c) : 0.0f;
        for (int ch = 0; ch < p.n_chunks; ch++) v += p.part[((int64_t)ch * p.R + r) * C + c];
        row[c] = v + lk_load(p.x, p.x_dt, (int64_t)r * C + c);
    }
    lk_syncwarp();
    lk_tw_params lp = {};
    lp.ln_g = p.ln_g, lp.ln_b = p.ln_b, lp.g_dt = p.g_dt, lp.b_dt = p.b_dt, lp.eps = p.eps, lp.y = p.y, lp.y_dt = p.y_dt;
    lk_tw_ln_row(row, C, lp, (int64_t)r * C);
}

/* ============================================================================================
 * MLP3 (the decoder's hypernetwork and IoU heads): lk_mlp3
 * ============================================================================================ */

/* x rows (runtime dtype, row r at x + r·x_rs, unit column stride), bf16 weights, y [R, O]. */
typedef struct lk_mlp3_params {
    const void *x;
    int32_t x_dt;
    int64_t x_rs;
    const lisa_bf16_t *w0, *w1, *w2;
    const void *b0, *b1, *b2;
    int32_t b0_dt, b1_dt, b2_dt;
    void *y;
    int32_t y_dt;
    int32_t R, C, H0, H1, O;
} lk_mlp3_params;

LISA_HD size_t lk_mlp3_smem(int C, int H0, int H1, int O) { return (size_t)LK_TW_RG * (C + H0 + H1 + O) * 4; }

/* grid ceil(R / 16), block 256: three GEMVs over 16 rows held in shared memory (fp32 between the
 * layers, ReLU after the first two). C, H0, H1 multiples of 8. */
LISA_GLOBAL void lk_mlp3(const lk_mlp3_params p) {
    const int g0 = (int)blockIdx.x * LK_TW_RG, rows = p.R - g0 < LK_TW_RG ? p.R - g0 : LK_TW_RG;
    float *xs = (float *)lk_dyn_smem(), *h0 = xs + LK_TW_RG * p.C, *h1 = h0 + LK_TW_RG * p.H0, *ys = h1 + LK_TW_RG * p.H1;
    for (int i = (int)threadIdx.x; i < rows * p.C; i += (int)blockDim.x)
        xs[i] = lk_load(p.x, p.x_dt, (int64_t)(g0 + i / p.C) * p.x_rs + i % p.C);
    lk_syncthreads();
    lk_tw_rowlin(h0, p.H0, xs, p.C, rows, p.w0, p.C, p.C, 0, p.H0, p.b0, p.b0_dt, true);
    lk_syncthreads();
    lk_tw_rowlin(h1, p.H1, h0, p.H0, rows, p.w1, p.H0, p.H0, 0, p.H1, p.b1, p.b1_dt, true);
    lk_syncthreads();
    lk_tw_rowlin(ys, p.O, h1, p.H1, rows, p.w2, p.H1, p.H1, 0, p.O, p.b2, p.b2_dt, false);
    lk_syncthreads();
    for (int i = (int)threadIdx.x; i < rows * p.O; i += (int)blockDim.x) lk_store(p.y, p.y_dt, (int64_t)g0 * p.O + i, ys[i]);
}

#endif
