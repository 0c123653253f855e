/* kernels/cuda/ew_kernels.cuh — elementwise, rotary, gather and argmax kernel bodies (launchers:
 * kernels/cuda/elementwise.cu).
 *
 * Memory-bound kernels take any mix of F32/BF16/F16 operands through the runtime-dtype accessors
 * of prims.cuh (one instantiation per kernel; the dtype switch is uniform over a launch). Math is
 * fp32 and each result is rounded once to the output dtype, except where PyTorch's bf16 reference
 * rounds an intermediate (SiLU before the multiply, RoPE's cos/sin tables and products), which is
 * reproduced so that the bf16 engine tracks the bf16 reference (spec §4.3, §8).
 * Room for speed: 16-byte vectorized contiguous fast paths.
 */
#ifndef LISA_KERNELS_CUDA_EW_KERNELS_CUH
#define LISA_KERNELS_CUDA_EW_KERNELS_CUH

#include "kernels/cuda/kv_kernels.cuh"
#include "kernels/cuda/prims.cuh"

/* A 4-D strided iteration space (shapes padded with leading 1s). Strides in elements; a zero
 * stride broadcasts. n < 2^31 (checked by the launcher) so coordinates use 32-bit division. */
typedef struct lk_ew_desc {
    int32_t n;
    int32_t shape[4];
    int64_t ys[4], as[4], bs[4];
} lk_ew_desc;

enum lk_ew_op {
    LK_EW_COPY = 0,
    LK_EW_ADD,
    LK_EW_MUL,
    LK_EW_SCALE,
    LK_EW_GELU,
    LK_EW_QUICK_GELU,
    LK_EW_RELU,
    LK_EW_SILU_MUL,
};

LISA_DEV void lk_ew_offsets(const lk_ew_desc &d, int32_t i, int64_t *yo, int64_t *ao, int64_t *bo) {
    int32_t c3 = i % d.shape[3];
    i /= d.shape[3];
    int32_t c2 = i % d.shape[2];
    i /= d.shape[2];
    int32_t c1 = i % d.shape[1];
    int32_t c0 = i / d.shape[1];
    *yo = c0 * d.ys[0] + c1 * d.ys[1] + c2 * d.ys[2] + c3 * d.ys[3];
    *ao = c0 * d.as[0] + c1 * d.as[1] + c2 * d.as[2] + c3 * d.as[3];
    *bo = c0 * d.bs[0] + c1 * d.bs[1] + c2 * d.bs[2] + c3 * d.bs[3];
}


/* grid-stride over d.n elements, any block size. y = op(a, b) with scalars s, c (SCALE: a·s + c). */
LISA_GLOBAL void lk_ew(const lk_ew_desc d, void *y, int ydt, const void *a, int adt, const void *b, int bdt, int op,
                       float s, float c) {
    for (int32_t i = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x); i < d.n; i += (int32_t)(gridDim.x * blockDim.x)) {
        int64_t yo, ao, bo;
        lk_ew_offsets(d, i, &yo, &ao, &bo);
        float x = lk_load(a, adt, ao), r;
        switch (op) {
        case LK_EW_ADD: r = x + lk_load(b, bdt, bo); break;
        case LK_EW_MUL: r = x * lk_load(b, bdt, bo); break;
        case LK_EW_SCALE: r = x * s + c; break;
        case LK_EW_GELU: r = lk_gelu_erf(x); break;
        case LK_EW_QUICK_GELU: r = lk_quick_gelu(x); break;
        case LK_EW_RELU: r = lk_relu(x); break;
        case LK_EW_SILU_MUL:
            /* HF LlamaMLP: act_fn(gate(x)) * up(x), each op rounding to the run dtype. */
            r = lk_round_to(ydt, x * lk_sigmoid(x)) * lk_load(b, bdt, bo);
            break;
        default: r = x; break;
        }
        lk_store(y, ydt, yo, r);
    }
}

/* Same-dtype copy of 1/2/4/8-byte elements (integers, or floats without conversion). */
LISA_GLOBAL void lk_copy_raw(const lk_ew_desc d, void *y, const void *a, int elem_bytes) {
    for (int32_t i = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x); i < d.n; i += (int32_t)(gridDim.x * blockDim.x)) {
        int64_t yo, ao, bo;
        lk_ew_offsets(d, i, &yo, &ao, &bo);
        switch (elem_bytes) {
        case 1: ((uint8_t *)y)[yo] = ((const uint8_t *)a)[ao]; break;
        case 2: ((uint16_t *)y)[yo] = ((const uint16_t *)a)[ao]; break;
        case 4: ((uint32_t *)y)[yo] = ((const uint32_t *)a)[ao]; break;
        default: ((uint64_t *)y)[yo] = ((const uint64_t *)a)[ao]; break;
        }
    }
}

/* Integer conversion among I32/I64/U8/BOOL (codes 3, 4, 5, 6): as the CPU backend, values are
 * widened to int64 and narrowed by truncation; BOOL stores v != 0. */
LISA_GLOBAL void lk_copy_int(const lk_ew_desc d, void *y, int ydt, const void *a, int adt) {
    for (int32_t i = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x); i < d.n; i += (int32_t)(gridDim.x * blockDim.x)) {
        int64_t yo, ao, bo;
        lk_ew_offsets(d, i, &yo, &ao, &bo);
        int64_t v = adt == LK_I32 ? (int64_t)((const int32_t *)a)[ao]
                    : adt == LK_I64 ? ((const int64_t *)a)[ao]
                                    : (int64_t)((const uint8_t *)a)[ao];
        if (ydt == LK_I32)
            ((int32_t *)y)[yo] = (int32_t)v;
        else if (ydt == LK_I64)
            ((int64_t *)y)[yo] = v;
        else if (ydt == LK_BOOL)
            ((uint8_t *)y)[yo] = v != 0;
        else
            ((uint8_t *)y)[yo] = (uint8_t)v;
    }
}

/* ---- RoPE, rotate-half form (HF LLaMA, spec §4.3) ------------------------------------------ */
/* One tensor of a RoPE launch: x[B, T, H, D] (row strides below, D contiguous) -> y, same shape. */
typedef struct lk_rope_slot {
    const void *x;
    void *y;
    int64_t x_bs, x_ts, x_hs, y_bs, y_ts, y_hs;
    int32_t H, xdt, ydt;
} lk_rope_slot;

typedef struct lk_rope_params {
    lk_rope_slot s[2];  /* q and k of the QKV path (n_slots = 2), or one tensor */
    int32_t n_slots;
    const int32_t *pos; /* [B, T] (pos_bs = 0 for [T]) */
    int64_t pos_bs;
    int32_t B, T, D;
    float theta;
    const float *cs;  /* ROPE_QK: F32 [cs_rows, D] cos then sin per position (lisa_rope_table), or NULL */
    int64_t cs_rows;
    /* ROPE_QK_KV_APPEND (kp != NULL; B = 1): slot 1's (k's) rotated rows also go to the pool kp at
     * slots[t], as stored in k (rounded to its dtype) and then in the pool's dtype, and v [T, H1, D]
     * (row strides v_ts, v_hs) to vp; pools [pool_slots, H1, D]; slots -1 or outside skipped */
    void *kp, *vp;
    int32_t pdt, vdt;
    const void *v;
    int64_t v_ts, v_hs, pool_slots;
    const int32_t *slots;
    const int64_t *flag; /* the device error flag: raised (a bad slot) -> the launch does nothing */
} lk_rope_params;

/* grid-stride over every rotation pair of the slots. The angle's cos and sin come from the table
 * (ROPE_QK: the CPU backend's values, computed once) or, without one (ROPE), as HF computes them in
 * fp32: inv_freq = 1 / theta^(2i/D), θ = pos·inv_freq. They and the products are rounded to the
 * run dtype (identity for F32), as the bf16 reference does. A position outside the table gives
 * NaN (the host checks positions; never read past the table). In-place (y == x) is safe: a pair is
 * read and written by one thread. */
LISA_GLOBAL void lk_rope(const lk_rope_params p) {
    const int half = p.D / 2;
    const int64_t n0 = (int64_t)p.B * p.T * p.s[0].H * half;
    const int64_t n = n0 + (p.n_slots > 1 ? (int64_t)p.B * p.T * p.s[1].H * half : 0);
    const int64_t nv = p.kp ? (int64_t)p.T * p.s[1].H * p.D : 0; /* v's elements (append) */
    if (p.flag && p.flag[0] != LK_FLAG_NONE) return; /* a check before this launch failed */
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n + nv; idx += (int64_t)gridDim.x * blockDim.x) {
        if (idx >= n) { /* v row element -> its pool slot */
            const int64_t e = idx - n;
            const int d = (int)(e % p.D), h = (int)((e / p.D) % p.s[1].H);
            const int64_t t = e / ((int64_t)p.D * p.s[1].H), sl = p.slots[t];
            if (sl >= 0 && sl < p.pool_slots)
                lk_store(p.vp, p.pdt, (sl * p.s[1].H + h) * p.D + d, lk_load(p.v, p.vdt, t * p.v_ts + (int64_t)h * p.v_hs + d));
            continue;
        }
        const bool second = idx >= n0;
        const lk_rope_slot &sl = second ? p.s[1] : p.s[0];
        const int64_t j = second ? idx - n0 : idx;
        int i = (int)(j % half);
        int64_t r = j / half;
        int h = (int)(r % sl.H);
        r /= sl.H;
        int t = (int)(r % p.T);
        int b = (int)(r / p.T);
        const int32_t pos = p.pos[(int64_t)b * p.pos_bs + t];
        float c0, s0;
        if (p.cs) {
            const bool in = pos >= 0 && pos < p.cs_rows;
            c0 = in ? p.cs[(int64_t)pos * p.D + i] : NAN;
            s0 = in ? p.cs[(int64_t)pos * p.D + half + i] : NAN;
        } else {
            float inv_freq = 1.0f / powf(p.theta, (float)(2 * i) / (float)p.D);
            float ang = (float)pos * inv_freq;
            c0 = cosf(ang), s0 = sinf(ang);
        }
        float cs = lk_round_to(sl.ydt, c0), sn = lk_round_to(sl.ydt, s0);
        int64_t xo = (int64_t)b * sl.x_bs + (int64_t)t * sl.x_ts + (int64_t)h * sl.x_hs;
        int64_t yo = (int64_t)b * sl.y_bs + (int64_t)t * sl.y_ts + (int64_t)h * sl.y_hs;
        float x1 = lk_load(sl.x, sl.xdt, xo + i), x2 = lk_load(sl.x, sl.xdt, xo + i + half);
        float y1 = lk_round_to(sl.ydt, x1 * cs) + lk_round_to(sl.ydt, -x2 * sn);
        float y2 = lk_round_to(sl.ydt, x2 * cs) + lk_round_to(sl.ydt, x1 * sn);
        lk_store(sl.y, sl.ydt, yo + i, y1);
        lk_store(sl.y, sl.ydt, yo + i + half, y2);
        if (second && p.kp) {
            const int64_t slot = p.slots[t];
            if (slot >= 0 && slot < p.pool_slots) {
                const int64_t dst = (slot * sl.H + h) * p.D;
                lk_store(p.kp, p.pdt, dst + i, lk_round_to(sl.ydt, y1));
                lk_store(p.kp, p.pdt, dst + i + half, lk_round_to(sl.ydt, y2));
            }
        }
    }
}

/* ---- embedding gather ------------------------------------------------------------------------ */
/* grid-stride over T: raises the device flag (prims.cuh lk_flag_raise) for an id outside [0, rows),
 * without a host wait; lk_embedding then writes nothing, so a bad id leaves y untouched (ops.def)
 * and the error is reported at the backend's next wait. */
LISA_GLOBAL void lk_embedding_check(const void *ids, bool ids_i64, int32_t T, int64_t rows, int64_t *flag) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t id = ids_i64 ? ((const int64_t *)ids)[t] : (int64_t)((const int32_t *)ids)[t];
        if (id < 0 || id >= rows) lk_flag_raise(flag, LK_FLAG_EMBEDDING_ID, id, rows);
    }
}

/* grid-stride over T·C: y[t, c] = table[ids[t], c], ids I32 or I64; nothing when the device flag is
 * raised (by lk_embedding_check just before, or an earlier unreported error). */
LISA_GLOBAL void lk_embedding(void *y, int ydt, const void *table, int tdt, const void *ids, bool ids_i64, int32_t T,
                              int32_t C, int64_t rows, const int64_t *flag) {
    if (flag[0] != LK_FLAG_NONE) return;
    const int64_t n = (int64_t)T * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / C, c = i % C;
        int64_t id = ids_i64 ? ((const int64_t *)ids)[t] : (int64_t)((const int32_t *)ids)[t];
        lk_store(y, ydt, i, id < 0 || id >= rows ? 0.0f : lk_load(table, tdt, id * C + c));
    }
}

/* ---- argmax over rows ------------------------------------------------------------------------ */
/* (v2, i2) beats (v1, i1): larger, or equal with a smaller index; NaN beats numbers (torch.argmax
 * returns the first NaN). */
LISA_DEV bool lk_argmax_better(float v2, int i2, float v1, int i1) {
    bool n1 = v1 != v1, n2 = v2 != v2;
    if (n1 || n2) return n2 && (!n1 || i2 < i1);
    return v2 > v1 || (v2 == v1 && i2 < i1);
}

/* grid R, block 256 (any multiple of 32): y[r] = argmax_j x[r, j], first occurrence. */
LISA_GLOBAL void lk_argmax(int32_t *y, const void *x, int xdt, int64_t row_stride, int32_t N) {
    LISA_SHARED float sv[32];
    LISA_SHARED int si[32];
    const int64_t base = (int64_t)blockIdx.x * row_stride;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int j = (int)threadIdx.x; j < N; j += (int)blockDim.x) {
        float v = lk_load(x, xdt, base + j);
        if (lk_argmax_better(v, j, best, bi)) best = v, bi = j;
    }
    for (int m = 16; m > 0; m >>= 1) {
        float ov = lk_shfl_xor(best, m);
        int oi = lk_shfl_xor_i(bi, m);
        if (lk_argmax_better(ov, oi, best, bi)) best = ov, bi = oi;
    }
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    if (lane == 0) sv[warp] = best, si[warp] = bi;
    lk_syncthreads();
    if (warp == 0) {
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
        for (int m = 16; m > 0; m >>= 1) {
            float ov = lk_shfl_xor(best, m);
            int oi = lk_shfl_xor_i(bi, m);
            if (lk_argmax_better(ov, oi, best, bi)) best = ov, bi = oi;
        }
        if (lane == 0) y[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

#endif
