/* kernels/cuda/twoway.cu — ops TWOWAY_ATTENTION, TWOWAY_MLP and MLP3 (SAM's mask decoder) on the
 * GPU: argument checks, the choice between the fused kernels (twoway_kernels.cuh) and the
 * composition of this backend's ops (kernels/compose.c), and the launches.
 *
 * Fused (BF16 activations and weight matrices; C and Ci multiples of 16, head dim <= 64, 16-byte
 * aligned weights; shared memory within the device's opt-in limit):
 *   Tq <= 16, Tk <= 16 (self-attention of the tokens): lk_tw_heads + lk_tw_out_ln      2 kernels
 *   Tq <= 16, Tk > 16 (tokens -> image):  lk_tw_kv_rows + lk_tw_split + lk_tw_out_ln   3 kernels
 *   Tq > 16, Tk <= 16 (image -> tokens):  lk_tw_kv_tokens + lk_tw_i2t_rows             2 kernels
 *   TWOWAY_MLP (C, Hm multiples of 8):    lk_tw_mlp_partial + lk_tw_mlp_ln             2 kernels
 *   MLP3 (C, H0, H1 multiples of 8):      lk_mlp3                                     1 kernel
 * Everything else (F32 exact-check runs, odd shapes) runs the composition: one op per term. */
#include "kernels/compose.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/twoway_kernels.cuh"

#include <math.h>

namespace {

static lisa_status composed_attention(lisa_backend *be, const lisa_twoway_dims &d, lisa_tensor *y, const lisa_tensor *xq,
                                      const lisa_tensor *qpe, const lisa_tensor *xk, const lisa_tensor *kpe,
                                      const lisa_tensor *xv, const lisa_twoway_attn *a, bool residual,
                                      const lisa_tensor *g, const lisa_tensor *b, float eps) {
    const size_t mark = lisa_arena_mark(&be->scratch);
    void *tmp = nullptr;
    lisa_status s = lisa_cuda_scratch(be, lisa_twoway_attention_tmp_bytes(&d, qpe, kpe, residual, y->dtype), &tmp);
    if (s == LISA_OK) s = lisa_compose_twoway_attention(be, tmp, y->dtype, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

static bool is_float(const lisa_tensor *t) {
    return t->dtype == LISA_DTYPE_F32 || t->dtype == LISA_DTYPE_BF16 || t->dtype == LISA_DTYPE_F16;
}

/* A weight matrix the fused kernels read: BF16, contiguous, 16-byte aligned, on the device. */
static bool bf16_matrix(const lisa_tensor *w) {
    return w && w->dtype == LISA_DTYPE_BF16 && lisa_tensor_is_contiguous(w) && ((uintptr_t)w->data & 15u) == 0 &&
           w->device == LISA_DEVICE_CUDA;
}

/* An optional parameter vector: NULL, or a contiguous float tensor on the device. */
static bool param_ok(const lisa_tensor *t) {
    return !t || (is_float(t) && lisa_tensor_is_contiguous(t) && t->device == LISA_DEVICE_CUDA);
}

static bool act_ok(const lisa_tensor *t, bool bf16) {
    return !t || (t->device == LISA_DEVICE_CUDA && (bf16 ? t->dtype == LISA_DTYPE_BF16 : is_float(t)));
}

/* Launches kernel<<<grid, threads, smem>>>(p), opting in to more than 48 KiB of shared memory. */
template <typename P>
static lisa_status launch(lisa_backend *be, void (*kernel)(const P), dim3 grid, int threads, size_t smem, const P &p) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute((const void *)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kernel<<<grid, threads, smem, im->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

/* t seen as [rows, C] with one row stride and unit column stride (contiguous tensors and narrows
 * of rows qualify), without recording an error when it is not. */
static bool uniform_rows(const lisa_tensor *t, int64_t *rows, int64_t *rs) {
    const int n = t->n_dims;
    if (n < 1 || (t->shape[n - 1] > 1 && t->stride[n - 1] != 1)) return false;
    *rows = 1, *rs = t->shape[n - 1];
    int64_t expect = -1; /* the stride the next outer dim must have */
    for (int d = n - 2; d >= 0; d--) {
        *rows *= t->shape[d];
        if (t->shape[d] == 1) continue;
        if (expect < 0) *rs = t->stride[d];
        else if (t->stride[d] != expect) return false;
        expect = t->stride[d] * t->shape[d];
    }
    return true;
}

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static lisa_status fused_attention(lisa_backend *be, const lisa_twoway_dims &d, lisa_tensor *y, const lisa_tensor *xq,
                                   const lisa_tensor *qpe, const lisa_tensor *xk, const lisa_tensor *kpe,
                                   const lisa_tensor *xv, const lisa_twoway_attn *a, bool residual, const lisa_tensor *g,
                                   const lisa_tensor *b, float eps, bool *taken) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    *taken = false;
    const int64_t N = d.N, Tq = d.Tq, Tk = d.Tk, C = d.C, Ci = d.Ci, H = d.H, D = d.D;
    const bool few_q = Tq <= LK_TW_MAXT, few_k = Tk <= LK_TW_MAXT;
    bool ok = act_ok(y, true) && act_ok(xq, true) && act_ok(xk, true) && act_ok(xv, true) &&
              act_ok(qpe, false) && act_ok(kpe, false) && bf16_matrix(a->q_w) && bf16_matrix(a->k_w) &&
              bf16_matrix(a->v_w) && bf16_matrix(a->out_w) && param_ok(a->q_b) && param_ok(a->k_b) && param_ok(a->v_b) &&
              param_ok(a->out_b) && param_ok(g) && param_ok(b) && C % 16 == 0 && Ci % 16 == 0 && D <= LK_TW_MAXD &&
              (few_q || few_k) && N <= 65535 && Tq < INT32_MAX / 2 && Tk < INT32_MAX / 2;
    size_t smem = 0;
    if (ok && few_q && few_k) smem = max3(lk_tw_heads_smem((int)Tq, (int)Tk, (int)C, (int)D), lk_tw_out_ln_smem((int)Tq, (int)C, (int)Ci), 0);
    else if (ok && few_q) smem = max3(lk_tw_kv_rows_smem((int)C), lk_tw_split_smem((int)Tq, (int)C, (int)D), lk_tw_out_ln_smem((int)Tq, (int)C, (int)Ci));
    else if (ok) smem = max3(lk_tw_kv_tokens_smem((int)Tk, (int)C), lk_tw_i2t_smem((int)Tk, (int)C, (int)Ci), 0);
    if (!ok || smem > im->smem_optin) return LISA_OK;
    *taken = true;
    if (N == 0 || Tq == 0) return LISA_OK;

    lk_tw_params p = {};
    p.xq = xq->data, p.qpe = qpe ? qpe->data : nullptr, p.xk = xk->data, p.kpe = kpe ? kpe->data : nullptr, p.xv = xv->data;
    p.xq_dt = xq->dtype, p.qpe_dt = qpe ? qpe->dtype : 0, p.xk_dt = xk->dtype, p.kpe_dt = kpe ? kpe->dtype : 0;
    p.xv_dt = xv->dtype, p.qpe_b1 = d.qpe_bcast, p.kpe_b1 = d.kpe_bcast;
    p.wq = (const lisa_bf16_t *)a->q_w->data, p.wk = (const lisa_bf16_t *)a->k_w->data;
    p.wv = (const lisa_bf16_t *)a->v_w->data, p.wo = (const lisa_bf16_t *)a->out_w->data;
    p.bq = a->q_b ? a->q_b->data : nullptr, p.bk = a->k_b ? a->k_b->data : nullptr;
    p.bv = a->v_b ? a->v_b->data : nullptr, p.bo = a->out_b ? a->out_b->data : nullptr;
    p.bq_dt = a->q_b ? a->q_b->dtype : 0, p.bk_dt = a->k_b ? a->k_b->dtype : 0;
    p.bv_dt = a->v_b ? a->v_b->dtype : 0, p.bo_dt = a->out_b ? a->out_b->dtype : 0;
    p.ln_g = g ? g->data : nullptr, p.ln_b = b ? b->data : nullptr, p.g_dt = g ? g->dtype : 0, p.b_dt = b ? b->dtype : 0;
    p.eps = eps, p.residual = residual, p.y = y->data, p.y_dt = y->dtype;
    p.N = (int32_t)N, p.Tq = (int32_t)Tq, p.Tk = (int32_t)Tk, p.C = (int32_t)C, p.Ci = (int32_t)Ci, p.H = (int32_t)H;
    p.D = (int32_t)D, p.scale_log2 = (1.0f / sqrtf((float)D)) * 1.4426950408889634f;

    const size_t mark = lisa_arena_mark(&be->scratch);
    lisa_status s = LISA_OK;
    void *kf = nullptr, *vf = nullptr, *o = nullptr, *po = nullptr, *pml = nullptr;
    const dim3 gN((unsigned)N);
    if (few_q && few_k) { /* self-attention of the tokens */
        s = lisa_cuda_scratch(be, (size_t)(N * Tq * Ci) * 4, &o);
        p.o = (float *)o;
        if (s == LISA_OK)
            s = launch(be, lk_tw_heads, dim3((unsigned)H, (unsigned)N), 128, lk_tw_heads_smem((int)Tq, (int)Tk, (int)C, (int)D), p);
        if (s == LISA_OK) s = launch(be, lk_tw_out_ln, gN, 256, lk_tw_out_ln_smem((int)Tq, (int)C, (int)Ci), p);
    } else if (few_q) { /* tokens -> image */
        p.n_split = (int32_t)((Tk + LK_TW_SPLIT_KEYS - 1) / LK_TW_SPLIT_KEYS);
        const size_t parts = (size_t)(N * H * p.n_split * Tq);
        s = lisa_cuda_scratch(be, (size_t)(N * Tk * Ci) * 4, &kf);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)(N * Tk * Ci) * 4, &vf);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, parts * (size_t)D * 4, &po);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, parts * 2 * 4, &pml);
        p.kf = (float *)kf, p.vf = (float *)vf, p.part_o = (float *)po, p.part_ml = (float *)pml;
        if (s == LISA_OK)
            s = launch(be, lk_tw_kv_rows, dim3((unsigned)((Tk + LK_TW_BM - 1) / LK_TW_BM), (unsigned)N), 128,
                       lk_tw_kv_rows_smem((int)C), p);
        if (s == LISA_OK)
            s = launch(be, lk_tw_split, dim3((unsigned)p.n_split, (unsigned)H, (unsigned)N), 128,
                       lk_tw_split_smem((int)Tq, (int)C, (int)D), p);
        if (s == LISA_OK) s = launch(be, lk_tw_out_ln, gN, 256, lk_tw_out_ln_smem((int)Tq, (int)C, (int)Ci), p);
    } else { /* image -> tokens */
        s = lisa_cuda_scratch(be, (size_t)(N * Tk * Ci) * 4, &kf);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)(N * Tk * Ci) * 4, &vf);
        p.kf = (float *)kf, p.vf = (float *)vf;
        if (s == LISA_OK)
            s = launch(be, lk_tw_kv_tokens, dim3((unsigned)((Ci + LK_TW_BN - 1) / LK_TW_BN), (unsigned)N), 256,
                       lk_tw_kv_tokens_smem((int)Tk, (int)C), p);
        if (s == LISA_OK)
            s = launch(be, lk_tw_i2t_rows, dim3((unsigned)((Tq + LK_TW_BM - 1) / LK_TW_BM), (unsigned)N), 128,
                       lk_tw_i2t_smem((int)Tk, (int)C, (int)Ci), p);
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} // namespace

extern "C" {

lisa_status lisa_cuda_twoway_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *xq, const lisa_tensor *qpe,
                                       const lisa_tensor *xk, const lisa_tensor *kpe, const lisa_tensor *xv,
                                       const lisa_twoway_attn *a, bool residual, const lisa_tensor *g,
                                       const lisa_tensor *b, float eps) {
    lisa_twoway_dims d;
    LISA_TRY(lisa_twoway_attention_check(&d, y, xq, qpe, xk, kpe, xv, a, g, b));
    bool taken = false;
    LISA_TRY(fused_attention(be, d, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps, &taken));
    if (taken) return LISA_OK;
    return composed_attention(be, d, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps);
}

lisa_status lisa_cuda_twoway_mlp(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w1,
                                 const lisa_tensor *b1, const lisa_tensor *w2, const lisa_tensor *b2, const lisa_tensor *g,
                                 const lisa_tensor *b, float eps) {
    int64_t R, C, Hm;
    LISA_TRY(lisa_twoway_mlp_check(&R, &C, &Hm, y, x, w1, b1, w2, b2, g, b));
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const size_t mark = lisa_arena_mark(&be->scratch);
    const bool fused = act_ok(x, true) && act_ok(y, true) && bf16_matrix(w1) && bf16_matrix(w2) &&
                       param_ok(b1) && param_ok(b2) && param_ok(g) && param_ok(b) && C % 8 == 0 && Hm % 8 == 0 &&
                       lk_tw_mlp_partial_smem((int)C) <= im->smem_optin && (size_t)8 * C * 4 <= im->smem_optin &&
                       (R + LK_TW_RG - 1) / LK_TW_RG <= 65535 && R < INT32_MAX / 2;
    lisa_status s = LISA_OK;
    if (fused) {
        if (R == 0) return LISA_OK;
        lk_tw_mlp_params p = {};
        p.x = x->data, p.x_dt = x->dtype, p.w1 = (const lisa_bf16_t *)w1->data, p.w2 = (const lisa_bf16_t *)w2->data;
        p.b1 = b1 ? b1->data : nullptr, p.b2 = b2 ? b2->data : nullptr, p.b1_dt = b1 ? b1->dtype : 0, p.b2_dt = b2 ? b2->dtype : 0;
        p.ln_g = g ? g->data : nullptr, p.ln_b = b ? b->data : nullptr, p.g_dt = g ? g->dtype : 0, p.b_dt = b ? b->dtype : 0;
        p.eps = eps, p.y = y->data, p.y_dt = y->dtype;
        p.R = (int32_t)R, p.C = (int32_t)C, p.Hm = (int32_t)Hm, p.n_chunks = (int32_t)((Hm + LK_TW_HC - 1) / LK_TW_HC);
        void *part = nullptr;
        s = lisa_cuda_scratch(be, (size_t)p.n_chunks * (size_t)(R * C) * 4, &part);
        p.part = (float *)part;
        if (s == LISA_OK)
            s = launch(be, lk_tw_mlp_partial, dim3((unsigned)p.n_chunks, (unsigned)((R + LK_TW_RG - 1) / LK_TW_RG)), 256,
                       lk_tw_mlp_partial_smem((int)C), p);
        if (s == LISA_OK) s = launch(be, lk_tw_mlp_ln, dim3((unsigned)((R + 7) / 8)), 256, (size_t)8 * C * 4, p);
    } else {
        void *tmp = nullptr;
        s = lisa_cuda_scratch(be, lisa_twoway_mlp_tmp_bytes(R, C, Hm, y->dtype), &tmp);
        if (s == LISA_OK) s = lisa_compose_twoway_mlp(be, tmp, y->dtype, y, x, w1, b1, w2, b2, g, b, eps);
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

lisa_status lisa_cuda_mlp3(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w0,
                           const lisa_tensor *b0, const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                           const lisa_tensor *b2) {
    int64_t R, C, H0, H1, O, rows = 0, rs = 0;
    LISA_TRY(lisa_mlp3_check(&R, &C, &H0, &H1, &O, y, x, w0, b0, w1, b1, w2, b2));
    LISA_TRY(lisa_cuda_check_float("mlp3", "x", x));
    LISA_TRY(lisa_cuda_check_float("mlp3", "y", y));
    const bool rows_ok = R == 0 || uniform_rows(x, &rows, &rs);
    const size_t smem = lk_mlp3_smem((int)C, (int)H0, (int)H1, (int)O);
    const bool fused = rows_ok && act_ok(x, true) && act_ok(y, true) && bf16_matrix(w0) && bf16_matrix(w1) &&
                       bf16_matrix(w2) && param_ok(b0) && param_ok(b1) && param_ok(b2) && C % 8 == 0 && H0 % 8 == 0 &&
                       H1 % 8 == 0 && smem <= lisa_cuda_impl_of(be)->smem_optin && R < INT32_MAX / 2;
    if (fused) {
        if (R == 0) return LISA_OK;
        lk_mlp3_params p = {};
        p.x = x->data, p.x_dt = x->dtype, p.x_rs = rs;
        p.w0 = (const lisa_bf16_t *)w0->data, p.w1 = (const lisa_bf16_t *)w1->data, p.w2 = (const lisa_bf16_t *)w2->data;
        p.b0 = b0 ? b0->data : nullptr, p.b1 = b1 ? b1->data : nullptr, p.b2 = b2 ? b2->data : nullptr;
        p.b0_dt = b0 ? b0->dtype : 0, p.b1_dt = b1 ? b1->dtype : 0, p.b2_dt = b2 ? b2->dtype : 0;
        p.y = y->data, p.y_dt = y->dtype;
        p.R = (int32_t)R, p.C = (int32_t)C, p.H0 = (int32_t)H0, p.H1 = (int32_t)H1, p.O = (int32_t)O;
        return launch(be, lk_mlp3, dim3((unsigned)((R + LK_TW_RG - 1) / LK_TW_RG)), 256, smem, p);
    }
    const size_t mark = lisa_arena_mark(&be->scratch);
    void *tmp = nullptr;
    lisa_status s = lisa_cuda_scratch(be, lisa_mlp3_tmp_bytes(R, C, H0, H1, y->dtype), &tmp);
    if (s == LISA_OK) s = lisa_compose_mlp3(be, tmp, y->dtype, y, x, w0, b0, w1, b1, w2, b2);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} /* extern "C" */
