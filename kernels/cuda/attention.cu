/* kernels/cuda/attention.cu — op ATTENTION and the launchers of attention.h: argument checks, the
 * choice of kernel, and the launches. Kernel bodies: attn_kernels.cuh. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/attn_kernels.cuh"

#include <math.h>

/* Specialise at one boundary (STYLE.md §7): head dim -> template constant. */
#define LISA_DISPATCH_HEAD_DIM(d, D_CONST, ...)                                                    \
    switch (d) {                                                                                   \
    case 64: {                                                                                     \
        constexpr int D_CONST = 64;                                                                \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case 80: {                                                                                     \
        constexpr int D_CONST = 80;                                                                \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case 128: {                                                                                    \
        constexpr int D_CONST = 128;                                                               \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    default:                                                                                       \
        return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: head dim %d (supported: 64, 80, 128)", (int)(d)); \
    }

namespace {

/* q/k/v/y of the op viewed as [B, T, H, D] with strides (a 3-D tensor is B = 1). */
struct View4 {
    void *data;
    lisa_dtype dt;
    int64_t B, T, H, D, bs, ts, hs;
};

lisa_status view4(const char *what, const lisa_tensor *t, View4 *v) {
    char b[96];
    LISA_TRY(lisa_cuda_check_float("attention", what, t));
    if (t->n_dims != 3 && t->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "attention: %s %s must be [B, T, H, D] (or [T, H, D])", what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    const int o = t->n_dims - 3;
    if (t->shape[o + 2] > 1 && t->stride[o + 2] != 1)
        return lisa_fail(LISA_ERR_SHAPE, "attention: %s %s needs a contiguous head dim", what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    v->data = t->data, v->dt = t->dtype;
    v->B = o ? t->shape[0] : 1, v->T = t->shape[o], v->H = t->shape[o + 1], v->D = t->shape[o + 2];
    v->bs = o ? t->stride[0] : 0, v->ts = t->stride[o], v->hs = t->stride[o + 1];
    return LISA_OK;
}

/* 16-byte aligned rows: the base and every stride (in bytes) multiples of 16. */
bool rows16(const View4 &v) {
    const int64_t es = (int64_t)lisa_dtype_size(v.dt);
    return ((uintptr_t)v.data & 15u) == 0 && (v.bs * es) % 16 == 0 && (v.ts * es) % 16 == 0 && (v.hs * es) % 16 == 0;
}

struct Rel {
    const void *h = nullptr, *w = nullptr;
    int32_t dt = 0, kh = 0, kw = 0;
    int64_t hbs = 0, hhs = 0, hrs = 0, wbs = 0, whs = 0, wrs = 0;
};

lisa_status rel_view(const lisa_attn_params *p, const View4 &q, int64_t Tk, Rel *r) {
    char b1[96], b2[96];
    if (!p->rel_h && !p->rel_w) return LISA_OK;
    if (!p->rel_h || !p->rel_w) return lisa_fail(LISA_ERR_INVALID_ARG, "attention: rel_h and rel_w come together");
    LISA_TRY(lisa_cuda_check_float("attention", "rel_h", p->rel_h));
    LISA_TRY(lisa_cuda_check_float("attention", "rel_w", p->rel_w));
    const lisa_tensor *h = p->rel_h, *w = p->rel_w;
    bool ok = h->n_dims == 4 && w->n_dims == 4 && h->dtype == w->dtype && h->shape[0] == q.B && w->shape[0] == q.B &&
              h->shape[1] == q.H && w->shape[1] == q.H && h->shape[2] == q.T && w->shape[2] == q.T &&
              h->shape[3] * w->shape[3] == Tk && (h->shape[3] == 1 || h->stride[3] == 1) &&
              (w->shape[3] == 1 || w->stride[3] == 1);
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "attention: rel_h %s / rel_w %s must be [B, H, Tq, k_h] / [B, H, Tq, k_w] with "
                                         "k_h·k_w = Tk = %lld",
                         lisa_tensor_shape_str(h, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2), (long long)Tk);
    r->h = h->data, r->w = w->data, r->dt = h->dtype, r->kh = (int32_t)h->shape[3], r->kw = (int32_t)w->shape[3];
    r->hbs = h->stride[0], r->hhs = h->stride[1], r->hrs = h->stride[2];
    r->wbs = w->stride[0], r->whs = w->stride[1], r->wrs = w->stride[2];
    return LISA_OK;
}

lisa_status launch_flash(lisa_backend *be, lk_flash_params &fp, int64_t max_tq, int D) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const size_t smem = lk_flash_smem_bytes(D, fp.k_h, fp.k_w);
    if (smem > im->smem_optin)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: %zu bytes of shared memory (rel-pos %dx%d) exceed the "
                                               "device's %zu",
                         smem, fp.k_h, fp.k_w, im->smem_optin);
    if (fp.Hq > 65535 || fp.B > 65535) return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: grid too large");
    if (max_tq == 0) return LISA_OK;
    dim3 grid((unsigned)((max_tq + LK_FLASH_BM - 1) / LK_FLASH_BM), (unsigned)fp.Hq, (unsigned)fp.B);
    LISA_DISPATCH_HEAD_DIM(D, HD, {
        CUDA_CHECK(cudaFuncSetAttribute(lk_flash_fwd<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        lk_flash_fwd<HD><<<grid, LK_FLASH_THREADS, smem, im->stream>>>(fp);
        CUDA_CHECK_LAUNCH();
    });
    return LISA_OK;
}

/* Splits the keys so that the grid has about two blocks per SM, at least 256 keys per split. */
void plan_splits(const lisa_backend *be, int64_t blocks, int64_t max_tk, int32_t *n_split, int32_t *kps) {
    const int64_t target = 2 * (int64_t)lisa_cuda_impl_of(be)->num_sms;
    int64_t s = (target + blocks - 1) / (blocks > 0 ? blocks : 1);
    int64_t s_max = (max_tk + 255) / 256;
    if (s > s_max) s = s_max;
    if (s < 1) s = 1;
    int64_t per = (max_tk + s - 1) / s;
    per = (per + 31) / 32 * 32;
    if (per < 32) per = 32;
    *kps = (int32_t)per;
    *n_split = (int32_t)((max_tk + per - 1) / per);
    if (*n_split < 1) *n_split = 1;
}

/* grid (n_split, Hq, B) split kernel, then (Hq, B) combine when the keys were split. */
template <typename T> cudaError_t splitkv_run(const lk_splitkv_params &sp, cudaStream_t st) {
    lk_attn_splitkv<T><<<dim3(sp.n_split, sp.Hq, sp.B), LK_SPLITKV_WARPS * 32, 0, st>>>(sp);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sp.n_split > 1) {
        lk_attn_combine<T><<<dim3(sp.Hq, sp.B), 128, 0, st>>>(sp);
        e = cudaGetLastError();
    }
    return e;
}

lisa_status launch_splitkv(lisa_backend *be, lk_splitkv_params &sp, lisa_dtype dt, int64_t max_tk) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (sp.B > 65535 || sp.Hq > 65535) return lisa_fail(LISA_ERR_UNSUPPORTED, "split-KV attention: grid too large");
    plan_splits(be, (int64_t)sp.B * sp.Hq, max_tk, &sp.n_split, &sp.keys_per_split);
    const size_t mark = lisa_arena_mark(&be->scratch);
    if (sp.n_split > 1) {
        const size_t rows = (size_t)sp.B * sp.Hq * sp.n_split * sp.Tq;
        void *po, *pml;
        LISA_TRY(lisa_cuda_scratch(be, rows * sp.D * sizeof(float), &po));
        lisa_status s = lisa_cuda_scratch(be, rows * 2 * sizeof(float), &pml);
        if (s != LISA_OK) {
            lisa_arena_reset(&be->scratch, mark);
            return s;
        }
        sp.part_o = (float *)po, sp.part_ml = (float *)pml;
    }
    cudaError_t e;
    switch (dt) {
    case LISA_DTYPE_F32: e = splitkv_run<float>(sp, im->stream); break;
    case LISA_DTYPE_BF16: e = splitkv_run<lisa_bf16_t>(sp, im->stream); break;
    case LISA_DTYPE_F16: e = splitkv_run<lisa_f16_t>(sp, im->stream); break;
    default:
        lisa_arena_reset(&be->scratch, mark);
        return lisa_fail(LISA_ERR_UNSUPPORTED, "split-KV attention: dtype %s", lisa_dtype_name(dt));
    }
    lisa_status s = LISA_OK;
    if (e != cudaSuccess)
        s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "split-KV attention launch", cudaGetErrorString(e));
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} // namespace

extern "C" {

const char *lisa_cuda_attn_path_name(lisa_cuda_attn_path p) {
    switch (p) {
    case LISA_CUDA_ATTN_AUTO: return "auto";
    case LISA_CUDA_ATTN_FLASH: return "flash";
    case LISA_CUDA_ATTN_SPLITKV: return "splitkv";
    case LISA_CUDA_ATTN_REFERENCE: return "reference";
    }
    return "?";
}

lisa_status lisa_cuda_attention_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                     const lisa_tensor *v, const lisa_attn_params *p, lisa_cuda_attn_path path) {
    char b1[96], b2[96], b3[96];
    if (!p) return lisa_fail(LISA_ERR_INVALID_ARG, "attention: params are NULL");
    View4 Q, K, V, Y;
    LISA_TRY(view4("q", q, &Q));
    LISA_TRY(view4("k", k, &K));
    LISA_TRY(view4("v", v, &V));
    LISA_TRY(view4("y", y, &Y));
    if (q->n_dims != k->n_dims || k->n_dims != v->n_dims || Q.B != K.B || K.B != V.B || K.T != V.T || K.H != V.H ||
        Q.D != K.D || K.D != V.D || Y.B != Q.B || Y.T != Q.T || Y.H != Q.H || Y.D != Q.D || K.H == 0 || Q.H % K.H != 0)
        return lisa_fail(LISA_ERR_SHAPE, "attention: q %s, k %s, v %s (and y) do not agree (q[B, Tq, Hq, D], "
                                         "k/v[B, Tk, Hkv, D], Hq %% Hkv == 0)",
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2),
                         lisa_tensor_shape_str(v, b3, sizeof b3));
    const int64_t B = Q.B, Tq = Q.T, Tk = K.T, Hq = Q.H, Hkv = K.H, D = Q.D;
    Rel rel;
    LISA_TRY(rel_view(p, Q, Tk, &rel));
    const lisa_tensor *bias = p->bias;
    int64_t bias_bs = 0, bias_hs = 0, bias_rs = 0;
    if (bias) {
        LISA_TRY(lisa_cuda_check_float("attention", "bias", bias));
        bool ok = bias->dtype == LISA_DTYPE_F32 && bias->n_dims == 4 && (bias->shape[0] == B || bias->shape[0] == 1) &&
                  (bias->shape[1] == Hq || bias->shape[1] == 1) && bias->shape[2] == Tq && bias->shape[3] == Tk &&
                  (Tk <= 1 || bias->stride[3] == 1);
        if (!ok)
            return lisa_fail(LISA_ERR_SHAPE, "attention: bias %s must be F32 [B or 1, H or 1, %lld, %lld]",
                             lisa_tensor_shape_str(bias, b1, sizeof b1), (long long)Tq, (long long)Tk);
        bias_bs = bias->shape[0] == 1 ? 0 : bias->stride[0];
        bias_hs = bias->shape[1] == 1 ? 0 : bias->stride[1];
        bias_rs = bias->stride[2];
    }
    if (B * Tq * Hq == 0 || D == 0) return LISA_OK;
    if (B > INT32_MAX || Tq > INT32_MAX || Tk > INT32_MAX || Hq > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: dims beyond int32");

    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const bool same16 = Q.dt == K.dt && K.dt == V.dt;
    const bool flash_ok = same16 && Q.dt == LISA_DTYPE_BF16 && (Y.dt == LISA_DTYPE_BF16 || Y.dt == LISA_DTYPE_F32) &&
                          (D == 64 || D == 80 || D == 128) && !bias && rows16(Q) && rows16(K) && rows16(V) &&
                          ((uintptr_t)Y.data & 3u) == 0 && Y.bs % 2 == 0 && Y.ts % 2 == 0 && Y.hs % 2 == 0 &&
                          lk_flash_smem_bytes((int)D, rel.kh, rel.kw) <= im->smem_optin;
    const int vec = 16 / (int)lisa_dtype_size(Q.dt);
    const bool splitkv_ok = same16 && Y.dt == Q.dt && Tq <= LK_SPLITKV_MAXQ && D <= LK_SPLITKV_MAXD && D % vec == 0 &&
                            !bias && !rel.h && rows16(K) && rows16(V);
    const bool ref_ok = D <= 256;
    if (path == LISA_CUDA_ATTN_AUTO)
        path = flash_ok && Tq > LK_SPLITKV_MAXQ ? LISA_CUDA_ATTN_FLASH
               : splitkv_ok                     ? LISA_CUDA_ATTN_SPLITKV
               : flash_ok                       ? LISA_CUDA_ATTN_FLASH
                                                : LISA_CUDA_ATTN_REFERENCE;

    if (path == LISA_CUDA_ATTN_FLASH) {
        if (!flash_ok)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: the flash kernel needs BF16 q/k/v, a BF16/F32 output, head "
                                                   "dim 64/80/128 (got %lld), no additive bias and 16-byte aligned rows",
                             (long long)D);
        lk_flash_params fp = {};
        fp.q = (const lisa_bf16_t *)Q.data, fp.k = (const lisa_bf16_t *)K.data, fp.v = (const lisa_bf16_t *)V.data;
        fp.o = Y.data, fp.o_f32 = Y.dt == LISA_DTYPE_F32;
        fp.q_bs = Q.bs, fp.q_rs = Q.ts, fp.q_hs = Q.hs, fp.k_bs = K.bs, fp.k_rs = K.ts, fp.k_hs = K.hs;
        fp.v_bs = V.bs, fp.v_rs = V.ts, fp.v_hs = V.hs, fp.o_bs = Y.bs, fp.o_rs = Y.ts, fp.o_hs = Y.hs;
        fp.B = (int32_t)B, fp.Tq = (int32_t)Tq, fp.Tk = (int32_t)Tk, fp.Hq = (int32_t)Hq, fp.Hkv = (int32_t)Hkv;
        fp.scale_log2 = p->scale * LK_LOG2E, fp.causal = p->causal;
        fp.rel_h = rel.h, fp.rel_w = rel.w, fp.rel_dtype = rel.dt, fp.k_h = rel.kh, fp.k_w = rel.kw;
        fp.rh_bs = rel.hbs, fp.rh_hs = rel.hhs, fp.rh_rs = rel.hrs, fp.rw_bs = rel.wbs, fp.rw_hs = rel.whs, fp.rw_rs = rel.wrs;
        return launch_flash(be, fp, Tq, (int)D);
    }
    if (path == LISA_CUDA_ATTN_SPLITKV) {
        if (!splitkv_ok)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: the split-KV kernel needs Tq <= %d (got %lld), head dim <= %d "
                                                   "and a multiple of %d (got %lld), one dtype for q/k/v/y, no bias or "
                                                   "rel-pos, 16-byte aligned key rows",
                             LK_SPLITKV_MAXQ, (long long)Tq, LK_SPLITKV_MAXD, vec, (long long)D);
        lk_splitkv_params sp = {};
        sp.q = Q.data, sp.q_bs = Q.bs, sp.q_rs = Q.ts, sp.q_hs = Q.hs;
        sp.k = K.data, sp.v = V.data, sp.k_bs = K.bs, sp.k_rs = K.ts, sp.k_hs = K.hs, sp.v_bs = V.bs, sp.v_rs = V.ts, sp.v_hs = V.hs;
        sp.o = Y.data, sp.o_bs = Y.bs, sp.o_rs = Y.ts, sp.o_hs = Y.hs;
        sp.B = (int32_t)B, sp.Tq = (int32_t)Tq, sp.Tk = (int32_t)Tk, sp.Hq = (int32_t)Hq, sp.Hkv = (int32_t)Hkv, sp.D = (int32_t)D;
        sp.scale_log2 = p->scale * LK_LOG2E, sp.causal = p->causal;
        return launch_splitkv(be, sp, Q.dt, Tk);
    }
    if (!ref_ok)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: head dim %lld (the cuda kernels take <= 256)", (long long)D);
    lk_attn_ref_params rp = {};
    rp.q = Q.data, rp.k = K.data, rp.v = V.data, rp.o = Y.data;
    rp.q_dt = Q.dt, rp.k_dt = K.dt, rp.v_dt = V.dt, rp.o_dt = Y.dt;
    rp.q_bs = Q.bs, rp.q_rs = Q.ts, rp.q_hs = Q.hs, rp.k_bs = K.bs, rp.k_rs = K.ts, rp.k_hs = K.hs;
    rp.v_bs = V.bs, rp.v_rs = V.ts, rp.v_hs = V.hs, rp.o_bs = Y.bs, rp.o_rs = Y.ts, rp.o_hs = Y.hs;
    rp.B = (int32_t)B, rp.Tq = (int32_t)Tq, rp.Tk = (int32_t)Tk, rp.Hq = (int32_t)Hq, rp.Hkv = (int32_t)Hkv, rp.D = (int32_t)D;
    rp.scale = p->scale, rp.causal = p->causal;
    rp.bias = bias ? (const float *)bias->data : nullptr, rp.bias_bs = bias_bs, rp.bias_hs = bias_hs, rp.bias_rs = bias_rs;
    rp.rel_h = rel.h, rp.rel_w = rel.w, rp.rel_dtype = rel.dt, rp.k_h = rel.kh, rp.k_w = rel.kw;
    rp.rh_bs = rel.hbs, rp.rh_hs = rel.hhs, rp.rh_rs = rel.hrs, rp.rw_bs = rel.wbs, rp.rw_hs = rel.whs, rp.rw_rs = rel.wrs;
    const int64_t rows = B * Tq * Hq;
    if ((rows + 3) / 4 > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: too many rows");
    lk_attn_ref<<<(unsigned)((rows + 3) / 4), 128, 0, im->stream>>>(rp);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                const lisa_tensor *v, const lisa_attn_params *p) {
    return lisa_cuda_attention_path(be, y, q, k, v, p, LISA_CUDA_ATTN_AUTO);
}

lisa_status lisa_cuda_flash_attn_varlen(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                        const lisa_tensor *v, const lisa_tensor *cu_seqlens_q,
                                        const lisa_tensor *cu_seqlens_k, int32_t max_seqlen_q, float scale, bool causal) {
    char b1[96], b2[96];
    View4 Q, K, V, Y;
    LISA_TRY(view4("q", q, &Q));
    LISA_TRY(view4("k", k, &K));
    LISA_TRY(view4("v", v, &V));
    LISA_TRY(view4("y", y, &Y));
    if (q->n_dims != 3 || k->n_dims != 3 || v->n_dims != 3 || y->n_dims != 3 || K.T != V.T || K.H != V.H || Q.D != K.D ||
        K.D != V.D || !lisa_tensor_same_shape(y, q) || K.H == 0 || Q.H % K.H != 0)
        return lisa_fail(LISA_ERR_SHAPE, "flash_attn_varlen: q %s, k %s must be packed [total, H, D] (Hq %% Hkv == 0)",
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2));
    for (const lisa_tensor *c : {cu_seqlens_q, cu_seqlens_k})
        if (!c || c->device != LISA_DEVICE_CUDA || c->dtype != LISA_DTYPE_I32 || c->n_dims != 1 || c->shape[0] < 2 ||
            !lisa_tensor_is_contiguous(c) || c->shape[0] != cu_seqlens_q->shape[0])
            return lisa_fail(LISA_ERR_SHAPE, "flash_attn_varlen: cu_seqlens must be device I32 [B+1], both of one size");
    if (Q.dt != LISA_DTYPE_BF16 || K.dt != LISA_DTYPE_BF16 || V.dt != LISA_DTYPE_BF16 ||
        (Y.dt != LISA_DTYPE_BF16 && Y.dt != LISA_DTYPE_F32) || !rows16(Q) || !rows16(K) || !rows16(V) ||
        ((uintptr_t)Y.data & 3u) != 0 || Y.ts % 2 != 0 || Y.hs % 2 != 0)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "flash_attn_varlen: needs BF16 q/k/v, a BF16/F32 output and 16-byte aligned rows");
    if (max_seqlen_q < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "flash_attn_varlen: max_seqlen_q %d", max_seqlen_q);
    lk_flash_params fp = {};
    fp.q = (const lisa_bf16_t *)Q.data, fp.k = (const lisa_bf16_t *)K.data, fp.v = (const lisa_bf16_t *)V.data;
    fp.o = Y.data, fp.o_f32 = Y.dt == LISA_DTYPE_F32;
    fp.q_rs = Q.ts, fp.q_hs = Q.hs, fp.k_rs = K.ts, fp.k_hs = K.hs, fp.v_rs = V.ts, fp.v_hs = V.hs, fp.o_rs = Y.ts, fp.o_hs = Y.hs;
    fp.cu_seqlens_q = (const int32_t *)cu_seqlens_q->data, fp.cu_seqlens_k = (const int32_t *)cu_seqlens_k->data;
    fp.B = (int32_t)(cu_seqlens_q->shape[0] - 1), fp.Tq = max_seqlen_q, fp.Tk = 0;
    fp.Hq = (int32_t)Q.H, fp.Hkv = (int32_t)K.H, fp.scale_log2 = scale * LK_LOG2E, fp.causal = causal;
    return launch_flash(be, fp, max_seqlen_q, (int)Q.D);
}

lisa_status lisa_cuda_attn_decode_paged(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q,
                                        const lisa_tensor *k_pages, const lisa_tensor *v_pages,
                                        const lisa_tensor *kv_indptr, const lisa_tensor *kv_indices,
                                        const lisa_tensor *kv_last_page_len, int32_t max_kv_len, float scale) {
    const char *op = "attn_decode_paged";
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_float(op, "q", q));
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    LISA_TRY(lisa_cuda_check_dense(op, "k_pages", k_pages));
    LISA_TRY(lisa_cuda_check_dense(op, "v_pages", v_pages));
    if (q->n_dims != 3 || !lisa_tensor_same_shape(y, q) || k_pages->n_dims != 4 || !lisa_tensor_same_shape(k_pages, v_pages) ||
        k_pages->shape[3] != q->shape[2] || k_pages->shape[2] == 0 || q->shape[1] % k_pages->shape[2] != 0 ||
        (q->shape[2] > 1 && (q->stride[2] != 1 || y->stride[2] != 1)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s / k_pages %s: need q[B, Hq, D], pages [n_pages, page_size, Hkv, D]", op,
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k_pages, b2, sizeof b2));
    const int64_t B = q->shape[0];
    struct {
        const lisa_tensor *t;
        const char *name;
        int64_t n;
    } idx[3] = {{kv_indptr, "kv_indptr", B + 1}, {kv_indices, "kv_indices", -1}, {kv_last_page_len, "kv_last_page_len", B}};
    for (auto &e : idx)
        if (!e.t || e.t->device != LISA_DEVICE_CUDA || e.t->dtype != LISA_DTYPE_I32 || e.t->n_dims != 1 ||
            !lisa_tensor_is_contiguous(e.t) || (e.n >= 0 && e.t->shape[0] != e.n))
            return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be a contiguous device I32 vector%s", op, e.name,
                             e.n >= 0 ? " of the batch's size (+1 for indptr)" : "");
    const lisa_dtype dt = q->dtype;
    const int64_t D = q->shape[2];
    const int vec = 16 / (int)lisa_dtype_size(dt);
    if (k_pages->dtype != dt || y->dtype != dt || D > LK_SPLITKV_MAXD || D % vec != 0 ||
        ((uintptr_t)k_pages->data & 15u) != 0 || ((uintptr_t)v_pages->data & 15u) != 0)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: needs one dtype for q/pages/y, head dim <= %d and a multiple of %d "
                                               "(got %lld), 16-byte aligned pages",
                         op, LK_SPLITKV_MAXD, vec, (long long)D);
    if (max_kv_len < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: max_kv_len %d", op, max_kv_len);
    if (B == 0) return LISA_OK;
    lk_splitkv_params sp = {};
    sp.q = q->data, sp.q_bs = q->stride[0], sp.q_rs = 0, sp.q_hs = q->stride[1];
    sp.k = k_pages->data, sp.v = v_pages->data;
    sp.kv_indptr = (const int32_t *)kv_indptr->data, sp.kv_indices = (const int32_t *)kv_indices->data;
    sp.kv_last_page_len = (const int32_t *)kv_last_page_len->data, sp.page_size = (int32_t)k_pages->shape[1];
    sp.o = y->data, sp.o_bs = y->stride[0], sp.o_rs = 0, sp.o_hs = y->stride[1];
    sp.B = (int32_t)B, sp.Tq = 1, sp.Tk = max_kv_len, sp.Hq = (int32_t)q->shape[1], sp.Hkv = (int32_t)k_pages->shape[2];
    sp.D = (int32_t)D, sp.scale_log2 = scale * LK_LOG2E;
    return launch_splitkv(be, sp, dt, max_kv_len);
}

} /* extern "C" */
