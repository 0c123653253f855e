/* kernels/cuda/attention.cu — op ATTENTION and the launchers of attention.h: argument checks, the
 * choice of kernel, and the launches. Kernel bodies: attn_kernels.cuh. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/attn_kernels.cuh"
#include "kernels/cuda/attn_sm90.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Specialise at one boundary (docs/style.md §7): head dim -> template constant. */
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

static lisa_status view4(const char *what, const lisa_tensor *t, View4 *v) {
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
static bool rows16(const View4 &v) {
    const int64_t es = (int64_t)lisa_dtype_size(v.dt);
    return ((uintptr_t)v.data & 15u) == 0 && (v.bs * es) % 16 == 0 && (v.ts * es) % 16 == 0 && (v.hs * es) % 16 == 0;
}

struct Rel {
    const void *h = nullptr, *w = nullptr;
    int32_t dt = 0, kh = 0, kw = 0;
    int64_t hbs = 0, hhs = 0, hrs = 0, hcs = 1, wbs = 0, whs = 0, wrs = 0, wcs = 1;
};

static lisa_status rel_view(const lisa_attn_params *p, const View4 &q, int64_t Tk, Rel *r) {
    char b1[96], b2[96];
    if (!p->rel_h && !p->rel_w) return LISA_OK;
    if (!p->rel_h || !p->rel_w) return lisa_fail(LISA_ERR_INVALID_ARG, "attention: rel_h and rel_w come together");
    LISA_TRY(lisa_cuda_check_float("attention", "rel_h", p->rel_h));
    LISA_TRY(lisa_cuda_check_float("attention", "rel_w", p->rel_w));
    const lisa_tensor *h = p->rel_h, *w = p->rel_w;
    bool ok = h->n_dims == 4 && w->n_dims == 4 && h->dtype == w->dtype && h->shape[0] == q.B && w->shape[0] == q.B &&
              h->shape[1] == q.H && w->shape[1] == q.H && h->shape[2] == q.T && w->shape[2] == q.T &&
              h->shape[3] * w->shape[3] == Tk;
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "attention: rel_h %s / rel_w %s must be [B, H, Tq, k_h] / [B, H, Tq, k_w] with "
                                         "k_h·k_w = Tk = %lld",
                         lisa_tensor_shape_str(h, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2), (long long)Tk);
    r->h = h->data, r->w = w->data, r->dt = h->dtype, r->kh = (int32_t)h->shape[3], r->kw = (int32_t)w->shape[3];
    r->hbs = h->stride[0], r->hhs = h->stride[1], r->hrs = h->stride[2], r->hcs = h->stride[3];
    r->wbs = w->stride[0], r->whs = w->stride[1], r->wrs = w->stride[2], r->wcs = w->stride[3];
    return LISA_OK;
}

static lisa_status launch_flash(lisa_backend *be, lk_flash_params &fp, int64_t max_tq, int D) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const size_t smem = lk_flash_smem_bytes(D, fp.k_h, fp.k_w);
    if (smem > im->smem_optin)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: %zu bytes of shared memory (rel-pos %dx%d) exceed the "
                                               "device's %zu",
                         smem, fp.k_h, fp.k_w, im->smem_optin);
    if (fp.Hq > 65535 || fp.B > 65535) return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: grid too large");
    if (max_tq == 0) return LISA_OK;
    dim3 grid((unsigned)((max_tq + LK_FLASH_BM - 1) / LK_FLASH_BM), (unsigned)fp.Hq, (unsigned)fp.B);
    lk_flash_fn fn = nullptr;
    LISA_DISPATCH_HEAD_DIM(D, HD, fn = lk_flash_select<HD>(fp));
    if (!fn)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "flash attention: no compiled variant for head dim %d %s rel-pos, %s, %s "
                                               "(attn_kernels.cuh lk_flash_select)",
                         D, fp.rel_pos_h ? "with fused" : fp.rel_h ? "with" : "without", fp.causal ? "causal" : "not causal",
                         fp.kv_indices ? "paged" : "dense");
    CUDA_CHECK(cudaFuncSetAttribute((const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    fn<<<grid, LK_FLASH_THREADS, smem, im->stream>>>(fp);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

/* Whether lk_flash_select has a variant for these features (dense, not paged). */
static bool flash_variant(int64_t D, bool rel, bool causal) {
    lk_flash_params t = {};
    t.causal = causal;
    t.rel_h = rel ? (const void *)&t : nullptr;
    switch (D) {
    case 64: return lk_flash_select<64>(t) != nullptr;
    case 80: return lk_flash_select<80>(t) != nullptr;
    case 128: return lk_flash_select<128>(t) != nullptr;
    default: return false;
    }
}

/* Fixed 256-key splits: a sequence's split points (and so its result, bit for bit) depend only on
 * its own key count, never on the rest of the batch (ops.def PAGED_ATTENTION asks batch
 * invariance). 256 keys = 2 chunks of 32 per warp; decode at 1K context already gives
 * 4 splits x 32 heads = 128 blocks for batch 1. */
static void plan_splits(int64_t max_tk, int32_t *n_split, int32_t *kps) {
    *kps = LK_SPLITKV_KEYS;
    *n_split = (int32_t)((max_tk + LK_SPLITKV_KEYS - 1) / LK_SPLITKV_KEYS);
    if (*n_split < 1) *n_split = 1;
}

/* grid (n_split, Hq, B) split kernel, then (Hq, B) combine when the keys were split. */
template <typename T> static cudaError_t splitkv_run(const lk_splitkv_params &sp, cudaStream_t st) {
    lk_attn_splitkv<T><<<dim3(sp.n_split, sp.Hq, sp.B), LK_SPLITKV_WARPS * 32, 0, st>>>(sp);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sp.n_split > 1) {
        lk_attn_combine<T><<<dim3(sp.Hq, sp.B), 128, 0, st>>>(sp);
        e = cudaGetLastError();
    }
    return e;
}

static lisa_status launch_splitkv(lisa_backend *be, lk_splitkv_params &sp, lisa_dtype dt, int64_t max_tk) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (im->capturing && im->capture_kv_keys > max_tk) max_tk = im->capture_kv_keys; /* a graph outlives this call */
    if (sp.B > 65535 || sp.Hq > 65535 || max_tk > INT32_MAX - LK_SPLITKV_KEYS)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "split-KV attention: grid too large");
    plan_splits(max_tk, &sp.n_split, &sp.keys_per_split);
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

/* One layer's KV pool: k_pages = v_pages [n_pages, page_size, Hkv, D], contiguous, 16-byte aligned;
 * when q is given, D and GQA must agree with q[.., Hq, D]. */
struct Pool {
    int64_t NP, PS, Hkv, D;
};

static lisa_status pool_check(const char *op, const lisa_tensor *kp, const lisa_tensor *vp, const lisa_tensor *q, Pool *pool) {
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_dense(op, "k_pages", kp));
    LISA_TRY(lisa_cuda_check_dense(op, "v_pages", vp));
    if (kp->n_dims != 4 || !lisa_tensor_same_shape(kp, vp) || kp->dtype != vp->dtype || kp->shape[2] == 0 ||
        (q && (q->shape[q->n_dims - 1] != kp->shape[3] || q->shape[q->n_dims - 2] % kp->shape[2] != 0)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: pages %s / q %s: need pools [n_pages, page_size, Hkv, D] and q[.., Hq, D] "
                                         "with Hq %% Hkv == 0",
                         op, lisa_tensor_shape_str(kp, b1, sizeof b1), q ? lisa_tensor_shape_str(q, b2, sizeof b2) : "-");
    pool->NP = kp->shape[0], pool->PS = kp->shape[1], pool->Hkv = kp->shape[2], pool->D = kp->shape[3];
    const int64_t row_bytes = pool->D * (int64_t)lisa_dtype_size(kp->dtype);
    if (q && (((uintptr_t)kp->data & 15u) != 0 || ((uintptr_t)vp->data & 15u) != 0 || row_bytes % 16 != 0 ||
              pool->D > LK_SPLITKV_MAXD))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: the cuda kernels need 16-byte aligned page rows and head dim <= %d "
                                               "(got %lld)",
                         op, LK_SPLITKV_MAXD, (long long)pool->D);
    return LISA_OK;
}

/* A contiguous device tensor [1, T, H, D]. */
static lisa_tensor dev_view4(void *data, lisa_dtype dt, int64_t T, int64_t H, int64_t D, int dev) {
    lisa_tensor t = lisa_tensor_view4(data, dt, 4, 1, T, H, D);
    t.device = LISA_DEVICE_CUDA;
    t.device_id = dev;
    return t;
}

/* A contiguous device I32 vector of n entries (n < 0: any length). */
static lisa_status index_check(const char *op, const char *what, const lisa_tensor *t, int64_t n) {
    if (!t || t->device != LISA_DEVICE_CUDA || t->dtype != LISA_DTYPE_I32 || t->n_dims != 1 ||
        !lisa_tensor_is_contiguous(t) || (n >= 0 && t->shape[0] != n) || (!t->data && t->shape[0] > 0))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be a contiguous device I32 vector%s", op, what,
                         n >= 0 ? " of the batch's size (+1 for an indptr)" : "");
    return LISA_OK;
}

/* q or y [T, H, D] rows [r0, r0 + n) as a [1, n, H, D] view. */
static lisa_tensor rows_view(const lisa_tensor *t, int64_t r0, int64_t n) {
    lisa_tensor v = *t;
    v.data = (char *)t->data + (size_t)(r0 * t->stride[0]) * lisa_dtype_size(t->dtype);
    v.n_dims = 4;
    v.shape[0] = 1, v.shape[1] = n, v.shape[2] = t->shape[1], v.shape[3] = t->shape[2];
    v.stride[0] = n * t->stride[0], v.stride[1] = t->stride[0], v.stride[2] = t->stride[1], v.stride[3] = t->stride[2];
    v.owner = false;
    return v;
}

/* PAGED_ATTENTION for the sequences with more than LK_SPLITKV_MAXQ query rows, without the paged
 * flash kernel: per sequence, its kv_len keys are copied page by page (runs of consecutive page
 * ids in one copy) into contiguous scratch [1, Tk, Hkv, D] and the ATTENTION op runs on them
 * (causal there means key j <= i + (Tk − Tq): the paged convention). Slow but general: F32, any
 * head dim <= 256. Reads the host plan only (no sync), so it can be captured in a CUDA graph. */
static lisa_status paged_gather_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k_pages,
                                   const lisa_tensor *v_pages, const Pool &pool, int64_t B, float scale, bool causal,
                                   const int32_t *qo, const int32_t *kv_indptr, const int32_t *kv_indices,
                                   const int32_t *kv_len) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const size_t es = lisa_dtype_size(k_pages->dtype), page_bytes = (size_t)(pool.PS * pool.Hkv * pool.D) * es;
    const size_t row_bytes = (size_t)(pool.Hkv * pool.D) * es;
    lisa_attn_params ap = {};
    ap.scale = scale, ap.causal = causal;
    for (int64_t b = 0; b < B; b++) {
        const int64_t qlen = qo[b + 1] - qo[b], tk = kv_len[b];
        if (qlen <= LK_SPLITKV_MAXQ) continue; /* split-KV takes it */
        const size_t mark = lisa_arena_mark(&be->scratch);
        void *kbuf = nullptr, *vbuf = nullptr;
        lisa_status s = lisa_cuda_scratch(be, (size_t)tk * row_bytes, &kbuf);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)tk * row_bytes, &vbuf);
        const int32_t *pages = kv_indices + kv_indptr[b];
        const int64_t n_pages = (tk + pool.PS - 1) / pool.PS;
        for (int64_t j = 0; s == LISA_OK && j < n_pages;) {
            int64_t run = 1; /* consecutive page ids: one copy */
            while (j + run < n_pages && pages[j + run] == pages[j] + run) run++;
            const int64_t tok0 = j * pool.PS, ntok = (j + run) * pool.PS < tk ? run * pool.PS : tk - tok0;
            const size_t off = (size_t)pages[j] * page_bytes, bytes = (size_t)ntok * row_bytes;
            cudaError_t e = cudaMemcpyAsync((char *)kbuf + (size_t)tok0 * row_bytes, (const char *)k_pages->data + off, bytes,
                                            cudaMemcpyDeviceToDevice, im->stream);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync((char *)vbuf + (size_t)tok0 * row_bytes, (const char *)v_pages->data + off, bytes,
                                    cudaMemcpyDeviceToDevice, im->stream);
            if (e != cudaSuccess)
                s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "paged gather copy", cudaGetErrorString(e));
            j += run;
        }
        if (s == LISA_OK) {
            lisa_tensor kt = dev_view4(kbuf, k_pages->dtype, tk, pool.Hkv, pool.D, be->device_id);
            lisa_tensor vt = dev_view4(vbuf, k_pages->dtype, tk, pool.Hkv, pool.D, be->device_id);
            lisa_tensor qv = rows_view(q, qo[b], qlen), yv = rows_view(y, qo[b], qlen);
            s = lisa_cuda_attention_path(be, &yv, &qv, &kt, &vt, &ap, LISA_CUDA_ATTN_AUTO);
        }
        lisa_arena_reset(&be->scratch, mark);
        if (s != LISA_OK) return lisa_fail_context(s, "paged attention (gathered) of sequence %lld", (long long)b);
    }
    return LISA_OK;
}

/* ---- Hopper: which kernel runs which shape --------------------------------------------------- */

/* Shape classes of the attention LISA runs (the bench's rows: bench/bench_gpu_kernels.c). */
enum AttnClass { CLS_SAM_WINDOW_REL, CLS_SAM_GLOBAL_REL, CLS_DENSE, CLS_CAUSAL, CLS_VARLEN, CLS_COUNT };

/* Per shape class, the kernel AUTO runs on Hopper (compute capability 9.0 with sm_90a code):
 * FLASH (mma.sync, attn_kernels.cuh) or WGMMA (attn_sm90.cuh). To be filled from the GPU suite's
 * kernel benchmark (bench/results/<date>-<card>.json: attn_<class>_terms_tflops of the mma.sync kernel
 * against attn_<class>_wgmma_tflops for ATTENTION with rel-pos terms; for the SAM classes of
 * ATTENTION_RELPOS, which the encoder calls, attn_<class>_fused_tflops against
 * attn_<class>_fused_wgmma_tflops) once lisa-check shows the wgmma kernel correct on the card;
 * no GPU has run it yet, so every class stays on the mma.sync kernel. */
static const lisa_cuda_attn_path k_attn_choice_sm90[CLS_COUNT] = {
    LISA_CUDA_ATTN_FLASH, /* SAM windows 14x14, rel-pos, D 80 (attn_sam_window_*) */
    LISA_CUDA_ATTN_FLASH, /* SAM global 64x64, rel-pos, D 80 (attn_sam_global_*) */
    LISA_CUDA_ATTN_FLASH, /* dense, not causal (CLIP D 64, SAM without rel-pos) */
    LISA_CUDA_ATTN_FLASH, /* dense causal (LLaMA prefill without varlen, D 128) */
    LISA_CUDA_ATTN_FLASH, /* varlen (LLaMA prefill of a batch, D 128: attn_llama_prefill_*) */
};

/* AUTO's choice for a flash-capable problem: the table, unless LISA_CUDA_ATTN_SM90 says 1 or 0. */
static bool choose_wgmma(lisa_backend *be, AttnClass cls) {
    const char *env = getenv("LISA_CUDA_ATTN_SM90");
    if (env && !strcmp(env, "0")) return false;
    const bool want = (env && !strcmp(env, "1")) || k_attn_choice_sm90[cls] == LISA_CUDA_ATTN_WGMMA;
    return want && lisa_cuda_fa3_available(be);
}

/* lk_fa3_args of q/k/v/y views (dense [B, T, H, D]). */
static void fa3_args_dense(lk_fa3_args *a, const View4 &Q, const View4 &K, const View4 &V, const View4 &Y, float scale,
                           bool causal) {
    memset(a, 0, sizeof *a);
    a->q = Q.data, a->k = K.data, a->v = V.data, a->o = Y.data, a->o_f32 = Y.dt == LISA_DTYPE_F32;
    a->q_bs = Q.bs, a->q_rs = Q.ts, a->q_hs = Q.hs, a->k_bs = K.bs, a->k_rs = K.ts, a->k_hs = K.hs;
    a->v_bs = V.bs, a->v_rs = V.ts, a->v_hs = V.hs, a->o_bs = Y.bs, a->o_rs = Y.ts, a->o_hs = Y.hs;
    a->B = (int32_t)Q.B, a->Tq = (int32_t)Q.T, a->Tk = (int32_t)K.T, a->Hq = (int32_t)Q.H, a->Hkv = (int32_t)K.H;
    a->D = (int32_t)Q.D, a->scale = scale, a->causal = causal;
}

} // namespace

extern "C" {

bool lisa_cuda_attn_wgmma_available(lisa_backend *be) { return lisa_cuda_fa3_available(be); }

const char *lisa_cuda_attn_path_name(lisa_cuda_attn_path p) {
    switch (p) {
    case LISA_CUDA_ATTN_AUTO: return "auto";
    case LISA_CUDA_ATTN_FLASH: return "flash";
    case LISA_CUDA_ATTN_SPLITKV: return "splitkv";
    case LISA_CUDA_ATTN_REFERENCE: return "reference";
    case LISA_CUDA_ATTN_WGMMA: return "wgmma";
    case LISA_CUDA_ATTN_UNFUSED: return "unfused";
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
    if (p->causal && Tk < Tq)
        return lisa_fail(LISA_ERR_SHAPE, "attention: causal with q %s longer than k %s leaves queries without keys",
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2));
    /* bias [Tq, Tk], [H|1, Tq, Tk] or [B|1, H|1, Tq, Tk], F32, any strides (ops.def) */
    const lisa_tensor *bias = p->bias;
    int64_t bst[4] = {0, 0, 0, 0};
    if (bias) {
        LISA_TRY(lisa_cuda_check_float("attention", "bias", bias));
        const int64_t want[4] = {B, Hq, Tq, Tk};
        bool ok = bias->dtype == LISA_DTYPE_F32 && bias->n_dims >= 2 && bias->n_dims <= 4;
        for (int d = 0; d < 4 && ok; d++) {
            const int id = d - (4 - bias->n_dims);
            const int64_t n = id >= 0 ? bias->shape[id] : 1;
            ok = n == want[d] || (d < 2 && n == 1);
            bst[d] = id >= 0 && n != 1 ? bias->stride[id] : 0;
        }
        if (!ok)
            return lisa_fail(LISA_ERR_SHAPE, "attention: bias %s must be F32 [B|1, H|1, %lld, %lld] (or [H|1, Tq, Tk], [Tq, Tk])",
                             lisa_tensor_shape_str(bias, b1, sizeof b1), (long long)Tq, (long long)Tk);
    }
    if (B * Tq * Hq == 0 || D == 0) return LISA_OK;
    if (B > INT32_MAX || Tq > INT32_MAX || Tk > INT32_MAX || Hq > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: dims beyond int32");

    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const bool same16 = Q.dt == K.dt && K.dt == V.dt;
    const bool flash_ok = same16 && Q.dt == LISA_DTYPE_BF16 && (Y.dt == LISA_DTYPE_BF16 || Y.dt == LISA_DTYPE_F32) &&
                          flash_variant(D, rel.h != nullptr, p->causal) && !bias && rows16(Q) && rows16(K) && rows16(V) &&
                          ((uintptr_t)Y.data & 3u) == 0 && Y.bs % 2 == 0 && Y.ts % 2 == 0 && Y.hs % 2 == 0 &&
                          lk_flash_smem_bytes((int)D, rel.kh, rel.kw) <= im->smem_optin;
    const int vec = 16 / (int)lisa_dtype_size(Q.dt);
    const bool splitkv_ok = same16 && Y.dt == Q.dt && Tq <= LK_SPLITKV_MAXQ && D <= LK_SPLITKV_MAXD && D % vec == 0 &&
                            !bias && !rel.h && rows16(K) && rows16(V);
    const bool ref_ok = D <= 256;
    /* the wgmma kernel takes what the flash kernel takes (its own shared-memory plan aside), with
     * rel-pos only at head dim 64/80 */
    const bool wgmma_shape_ok = same16 && Q.dt == LISA_DTYPE_BF16 && (Y.dt == LISA_DTYPE_BF16 || Y.dt == LISA_DTYPE_F32) &&
                                (D == 64 || D == 80 || D == 128) && !bias && rows16(Q) && rows16(K) && rows16(V) &&
                                ((uintptr_t)Y.data & 3u) == 0 && Y.bs % 2 == 0 && Y.ts % 2 == 0 && Y.hs % 2 == 0 &&
                                (!rel.h || D != 128);
    bool auto_wgmma = false;
    if (path == LISA_CUDA_ATTN_AUTO) {
        path = flash_ok && Tq > LK_SPLITKV_MAXQ ? LISA_CUDA_ATTN_FLASH
               : splitkv_ok                     ? LISA_CUDA_ATTN_SPLITKV
               : flash_ok                       ? LISA_CUDA_ATTN_FLASH
                                                : LISA_CUDA_ATTN_REFERENCE;
        if (path == LISA_CUDA_ATTN_FLASH && wgmma_shape_ok) {
            const AttnClass cls = rel.h ? (Tk <= 256 ? CLS_SAM_WINDOW_REL : CLS_SAM_GLOBAL_REL)
                                  : p->causal ? CLS_CAUSAL
                                              : CLS_DENSE;
            if (choose_wgmma(be, cls)) path = LISA_CUDA_ATTN_WGMMA, auto_wgmma = true;
        }
    }

    if (path == LISA_CUDA_ATTN_WGMMA) {
        if (!wgmma_shape_ok)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: the wgmma kernel needs BF16 q/k/v, a BF16/F32 output, head "
                                                   "dim 64/80/128 (got %lld; 64/80 with rel-pos), no additive bias and "
                                                   "16-byte aligned rows",
                             (long long)D);
        lk_fa3_args a;
        fa3_args_dense(&a, Q, K, V, Y, p->scale, p->causal);
        if (rel.h) {
            a.rel = 1, a.rel_h = rel.h, a.rel_w = rel.w, a.rel_dtype = rel.dt, a.k_h = rel.kh, a.k_w = rel.kw;
            a.rh_bs = rel.hbs, a.rh_hs = rel.hhs, a.rh_rs = rel.hrs, a.rh_cs = rel.hcs;
            a.rw_bs = rel.wbs, a.rw_hs = rel.whs, a.rw_rs = rel.wrs, a.rw_cs = rel.wcs;
        }
        const lisa_status s = lisa_cuda_fa3_run(be, &a);
        if (s != LISA_ERR_UNSUPPORTED || !auto_wgmma) return s;
        lisa_clear_error(); /* chosen by AUTO but no variant fits (shared memory, grid): mma.sync */
        path = LISA_CUDA_ATTN_FLASH;
    }

    if (path == LISA_CUDA_ATTN_FLASH) {
        if (!flash_ok)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "attention: the flash kernel needs BF16 q/k/v, a BF16/F32 output, head "
                                                   "dim 64/80/128 (got %lld) with a compiled variant (rel-pos: D 80, not "
                                                   "causal), no additive bias and 16-byte aligned rows",
                             (long long)D);
        lk_flash_params fp = {};
        fp.q = (const lisa_bf16_t *)Q.data, fp.k = (const lisa_bf16_t *)K.data, fp.v = (const lisa_bf16_t *)V.data;
        fp.o = Y.data, fp.o_f32 = Y.dt == LISA_DTYPE_F32;
        fp.q_bs = Q.bs, fp.q_rs = Q.ts, fp.q_hs = Q.hs, fp.k_bs = K.bs, fp.k_rs = K.ts, fp.k_hs = K.hs;
        fp.v_bs = V.bs, fp.v_rs = V.ts, fp.v_hs = V.hs, fp.o_bs = Y.bs, fp.o_rs = Y.ts, fp.o_hs = Y.hs;
        fp.B = (int32_t)B, fp.Tq = (int32_t)Tq, fp.Tk = (int32_t)Tk, fp.Hq = (int32_t)Hq, fp.Hkv = (int32_t)Hkv;
        fp.scale_log2 = p->scale * LK_LOG2E, fp.causal = p->causal;
        fp.rel_h = rel.h, fp.rel_w = rel.w, fp.rel_dtype = rel.dt, fp.k_h = rel.kh, fp.k_w = rel.kw;
        fp.rh_bs = rel.hbs, fp.rh_hs = rel.hhs, fp.rh_rs = rel.hrs, fp.rh_cs = rel.hcs;
        fp.rw_bs = rel.wbs, fp.rw_hs = rel.whs, fp.rw_rs = rel.wrs, fp.rw_cs = rel.wcs;
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
    rp.bias = bias ? (const float *)bias->data : nullptr;
    rp.bias_bs = bst[0], rp.bias_hs = bst[1], rp.bias_rs = bst[2], rp.bias_js = bst[3];
    rp.rel_h = rel.h, rp.rel_w = rel.w, rp.rel_dtype = rel.dt, rp.k_h = rel.kh, rp.k_w = rel.kw;
    rp.rh_bs = rel.hbs, rp.rh_hs = rel.hhs, rp.rh_rs = rel.hrs, rp.rh_cs = rel.hcs;
    rp.rw_bs = rel.wbs, rp.rw_hs = rel.whs, rp.rw_rs = rel.wrs, rp.rw_cs = rel.wcs;
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
    return lisa_cuda_flash_attn_varlen_path(be, y, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, scale, causal,
                                            LISA_CUDA_ATTN_AUTO);
}

lisa_status lisa_cuda_flash_attn_varlen_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                             const lisa_tensor *v, const lisa_tensor *cu_seqlens_q,
                                             const lisa_tensor *cu_seqlens_k, int32_t max_seqlen_q, float scale,
                                             bool causal, lisa_cuda_attn_path path) {
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
    if (path != LISA_CUDA_ATTN_AUTO && path != LISA_CUDA_ATTN_FLASH && path != LISA_CUDA_ATTN_WGMMA)
        return lisa_fail(LISA_ERR_INVALID_ARG, "flash_attn_varlen: path %s (flash, wgmma or auto)", lisa_cuda_attn_path_name(path));
    const bool auto_wgmma = path == LISA_CUDA_ATTN_AUTO && choose_wgmma(be, CLS_VARLEN);
    if (auto_wgmma) path = LISA_CUDA_ATTN_WGMMA;
    if (path == LISA_CUDA_ATTN_WGMMA) {
        if (Q.T > INT32_MAX || K.T > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "flash_attn_varlen: rows beyond int32");
        lk_fa3_args a;
        fa3_args_dense(&a, Q, K, V, Y, scale, causal);
        a.cu_q = (const int32_t *)cu_seqlens_q->data, a.cu_k = (const int32_t *)cu_seqlens_k->data;
        a.B = (int32_t)(cu_seqlens_q->shape[0] - 1), a.Tq = max_seqlen_q, a.Tk = 0;
        a.total_q = Q.T, a.total_k = K.T;
        a.q_bs = a.k_bs = a.v_bs = a.o_bs = 0;
        const lisa_status s = lisa_cuda_fa3_run(be, &a);
        if (s != LISA_ERR_UNSUPPORTED || !auto_wgmma) return s;
        lisa_clear_error(); /* no variant fits: the mma.sync kernel */
    }
    lk_flash_params fp = {};
    fp.q = (const lisa_bf16_t *)Q.data, fp.k = (const lisa_bf16_t *)K.data, fp.v = (const lisa_bf16_t *)V.data;
    fp.o = Y.data, fp.o_f32 = Y.dt == LISA_DTYPE_F32;
    fp.q_rs = Q.ts, fp.q_hs = Q.hs, fp.k_rs = K.ts, fp.k_hs = K.hs, fp.v_rs = V.ts, fp.v_hs = V.hs, fp.o_rs = Y.ts, fp.o_hs = Y.hs;
    fp.cu_seqlens_q = (const int32_t *)cu_seqlens_q->data, fp.cu_seqlens_k = (const int32_t *)cu_seqlens_k->data;
    fp.B = (int32_t)(cu_seqlens_q->shape[0] - 1), fp.Tq = max_seqlen_q, fp.Tk = 0;
    fp.Hq = (int32_t)Q.H, fp.Hkv = (int32_t)K.H, fp.scale_log2 = scale * LK_LOG2E, fp.causal = causal;
    return launch_flash(be, fp, max_seqlen_q, (int)Q.D);
}

lisa_status lisa_cuda_attention_relpos_fused(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                             const lisa_tensor *v, float scale, const lisa_tensor *rel_pos_h,
                                             const lisa_tensor *rel_pos_w) {
    char b1[96], b2[96];
    View4 Q, K, V, Y;
    LISA_TRY(view4("q", q, &Q));
    LISA_TRY(view4("k", k, &K));
    LISA_TRY(view4("v", v, &V));
    LISA_TRY(view4("y", y, &Y));
    LISA_TRY(lisa_cuda_check_float("attention_relpos_fused", "rel_pos_h", rel_pos_h));
    LISA_TRY(lisa_cuda_check_float("attention_relpos_fused", "rel_pos_w", rel_pos_w));
    if (rel_pos_h->n_dims != 2 || rel_pos_w->n_dims != 2 || rel_pos_h->shape[0] % 2 != 1 || rel_pos_w->shape[0] % 2 != 1 ||
        rel_pos_h->shape[1] != Q.D || rel_pos_w->shape[1] != Q.D)
        return lisa_fail(LISA_ERR_SHAPE, "attention_relpos_fused: rel_pos_h %s / rel_pos_w %s must be [2S - 1, D = %lld]",
                         lisa_tensor_shape_str(rel_pos_h, b1, sizeof b1), lisa_tensor_shape_str(rel_pos_w, b2, sizeof b2),
                         (long long)Q.D);
    const int64_t Sh = (rel_pos_h->shape[0] + 1) / 2, Sw = (rel_pos_w->shape[0] + 1) / 2;
    if (q->n_dims != k->n_dims || k->n_dims != v->n_dims || Q.B != K.B || K.B != V.B || Q.T != K.T || K.T != V.T ||
        Q.H != K.H || K.H != V.H || Q.D != K.D || K.D != V.D || Y.B != Q.B || Y.T != Q.T || Y.H != Q.H || Y.D != Q.D ||
        Q.T != Sh * Sw)
        return lisa_fail(LISA_ERR_SHAPE, "attention_relpos_fused: q %s, k %s (and v, y) must be one [B, S_h·S_w = %lld, H, D]",
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2),
                         (long long)(Sh * Sw));
    if (Q.dt != LISA_DTYPE_BF16 || K.dt != LISA_DTYPE_BF16 || V.dt != LISA_DTYPE_BF16 || rel_pos_h->dtype != LISA_DTYPE_BF16 ||
        rel_pos_w->dtype != LISA_DTYPE_BF16 || (Y.dt != LISA_DTYPE_BF16 && Y.dt != LISA_DTYPE_F32) || !rows16(Q) ||
        !rows16(K) || !rows16(V) || ((uintptr_t)Y.data & 3u) != 0 || Y.bs % 2 || Y.ts % 2 || Y.hs % 2 ||
        rel_pos_h->stride[1] != 1 || rel_pos_w->stride[1] != 1 || ((uintptr_t)rel_pos_h->data & 15u) ||
        ((uintptr_t)rel_pos_w->data & 15u) || (rel_pos_h->stride[0] * 2) % 16 || (rel_pos_w->stride[0] * 2) % 16 ||
        (Q.D != 64 && Q.D != 80))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "attention_relpos_fused: needs BF16 q/k/v and tables (16-byte aligned rows), "
                                               "a BF16/F32 output and head dim 64 or 80 (got %lld)",
                         (long long)Q.D);
    if (Q.B * Q.T * Q.H == 0) return LISA_OK;
    lk_fa3_args a;
    fa3_args_dense(&a, Q, K, V, Y, scale, false);
    a.rel = 2, a.k_h = (int32_t)Sh, a.k_w = (int32_t)Sw;
    a.rel_pos_h = rel_pos_h->data, a.rel_pos_w = rel_pos_w->data;
    a.rph_rs = rel_pos_h->stride[0], a.rpw_rs = rel_pos_w->stride[0];
    return lisa_cuda_fa3_run(be, &a);
}

/* ATTENTION_RELPOS as its composition on the GPU: REL_POS into F32 terms in scratch (lk_rel_pos),
 * then ATTENTION with them on `attn_path` (AUTO: the mma.sync REL 1 variant where it fits), per group
 * of batch entries whose terms fit the scratch arena's free space. For the problems no fused
 * variant takes (F32 activations, head dims other than 64/80) and as lisa-check's unfused twin. */
static lisa_status relpos_composed(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                   const lisa_tensor *v, const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w,
                                   int32_t q_h, int32_t q_w, float scale, lisa_cuda_attn_path attn_path) {
    const int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2];
    const size_t per_b = (size_t)(H * T * ((int64_t)q_h + q_w)) * sizeof(float) + 2 * LISA_ARENA_ALIGN;
    const size_t mark = lisa_arena_mark(&be->scratch), avail = be->scratch.cap - be->scratch.used;
    int64_t group = per_b ? (int64_t)(avail / per_b) : B;
    group = group > B ? B : group;
    if (group < 1 && B > 0)
        return lisa_fail(LISA_ERR_OOM, "attention_relpos: the rel-pos terms of one batch entry (%zu bytes) exceed the "
                                       "%zu free bytes of the cuda backend's scratch arena",
                         per_b, avail);
    lisa_status s = LISA_OK;
    for (int64_t b0 = 0; s == LISA_OK && b0 < B; b0 += group) {
        const int64_t nb = B - b0 < group ? B - b0 : group;
        lisa_tensor qb, kb, vb, yb;
        void *th = nullptr, *tw = nullptr;
        s = lisa_tensor_narrow(&qb, q, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&kb, k, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&vb, v, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&yb, y, 0, b0, nb);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)(nb * H * T * q_h) * sizeof(float), &th);
        if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)(nb * H * T * q_w) * sizeof(float), &tw);
        if (s == LISA_OK) {
            lisa_tensor rh = lisa_tensor_view4(th, LISA_DTYPE_F32, 4, nb, H, T, q_h);
            lisa_tensor rw = lisa_tensor_view4(tw, LISA_DTYPE_F32, 4, nb, H, T, q_w);
            rh.device = rw.device = LISA_DEVICE_CUDA, rh.device_id = rw.device_id = be->device_id;
            s = lisa_cuda_rel_pos(be, &rh, &rw, &qb, rel_pos_h, rel_pos_w, q_h, q_w);
            lisa_attn_params ap = {};
            ap.scale = scale, ap.rel_h = &rh, ap.rel_w = &rw;
            if (s == LISA_OK) s = lisa_cuda_attention_path(be, &yb, &qb, &kb, &vb, &ap, attn_path);
        }
        lisa_arena_reset(&be->scratch, mark);
    }
    return s == LISA_OK ? s : lisa_fail_context(s, "attention_relpos (unfused)");
}

lisa_status lisa_cuda_attention_relpos(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                       const lisa_tensor *v, const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w,
                                       int32_t q_h, int32_t q_w, float scale) {
    return lisa_cuda_attention_relpos_path(be, y, q, k, v, rel_pos_h, rel_pos_w, q_h, q_w, scale, LISA_CUDA_ATTN_AUTO);
}

lisa_status lisa_cuda_attention_relpos_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                            const lisa_tensor *v, const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w,
                                            int32_t q_h, int32_t q_w, float scale, lisa_cuda_attn_path path) {
    const char *op = "attention_relpos";
    char b1[96], b2[96];
    View4 Q, K, V, Y;
    LISA_TRY(view4("q", q, &Q));
    LISA_TRY(view4("k", k, &K));
    LISA_TRY(view4("v", v, &V));
    LISA_TRY(view4("y", y, &Y));
    LISA_TRY(lisa_cuda_check_float(op, "rel_pos_h", rel_pos_h));
    LISA_TRY(lisa_cuda_check_float(op, "rel_pos_w", rel_pos_w));
    if (q->n_dims != 4 || k->n_dims != 4 || v->n_dims != 4 || y->n_dims != 4 || q_h <= 0 || q_w <= 0 ||
        Q.T != (int64_t)q_h * q_w || K.T != Q.T || V.T != K.T || Q.B != K.B || K.B != V.B || K.H != V.H || Q.D != K.D ||
        K.D != V.D || Y.B != Q.B || Y.T != Q.T || Y.H != Q.H || Y.D != Q.D || K.H == 0 || Q.H % K.H != 0)
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s and k %s (v, y) must be [B, %d·%d, H, D] (the key grid is the query grid)",
                         op, lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2), q_h, q_w);
    if (rel_pos_h->n_dims != 2 || rel_pos_w->n_dims != 2 || rel_pos_h->shape[1] != Q.D || rel_pos_w->shape[1] != Q.D)
        return lisa_fail(LISA_ERR_SHAPE, "%s: rel_pos_h %s / rel_pos_w %s must be [2·%d−1, %lld] / [2·%d−1, %lld]", op,
                         lisa_tensor_shape_str(rel_pos_h, b1, sizeof b1), lisa_tensor_shape_str(rel_pos_w, b2, sizeof b2),
                         q_h, (long long)Q.D, q_w, (long long)Q.D);
    if (rel_pos_h->shape[0] != 2 * (int64_t)q_h - 1 || rel_pos_w->shape[0] != 2 * (int64_t)q_w - 1)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: rel_pos_h %s / rel_pos_w %s for a %dx%d grid: only tables of length "
                                               "2*size-1 are supported (no interpolation, as REL_POS)",
                         op, lisa_tensor_shape_str(rel_pos_h, b1, sizeof b1), lisa_tensor_shape_str(rel_pos_w, b2, sizeof b2),
                         q_h, q_w);
    const int64_t B = Q.B, T = Q.T, D = Q.D;
    if (B > INT32_MAX || T > INT32_MAX || Q.H > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: dims beyond int32", op);
    /* the fused kernels' conditions: bf16 everywhere in, 16-byte aligned rows (cp.async / TMA), table
     * rows contiguous; the mma.sync kernel also: (ky, kx) in 8 bits each, its shared-memory plan */
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const bool tabs16 = rel_pos_h->dtype == LISA_DTYPE_BF16 && rel_pos_w->dtype == LISA_DTYPE_BF16 &&
                        (D == 1 || (rel_pos_h->stride[1] == 1 && rel_pos_w->stride[1] == 1)) &&
                        ((uintptr_t)rel_pos_h->data & 15u) == 0 && ((uintptr_t)rel_pos_w->data & 15u) == 0 &&
                        (rel_pos_h->stride[0] * 2) % 16 == 0 && (rel_pos_w->stride[0] * 2) % 16 == 0;
    const bool fused_in = Q.dt == LISA_DTYPE_BF16 && K.dt == LISA_DTYPE_BF16 && V.dt == LISA_DTYPE_BF16 && tabs16 &&
                          (Y.dt == LISA_DTYPE_BF16 || Y.dt == LISA_DTYPE_F32) && rows16(Q) && rows16(K) && rows16(V) &&
                          ((uintptr_t)Y.data & 3u) == 0 && Y.bs % 2 == 0 && Y.ts % 2 == 0 && Y.hs % 2 == 0 &&
                          (D == 64 || D == 80);
    const bool flash_fits = fused_in && q_h <= 255 && q_w <= 255 && lk_flash_smem_bytes((int)D, q_h, q_w) <= im->smem_optin;
    if (path == LISA_CUDA_ATTN_AUTO) {
        if (fused_in && Q.H == K.H && choose_wgmma(be, T <= 256 ? CLS_SAM_WINDOW_REL : CLS_SAM_GLOBAL_REL)) {
            const lisa_status s = lisa_cuda_attention_relpos_fused(be, y, q, k, v, scale, rel_pos_h, rel_pos_w);
            if (s != LISA_ERR_UNSUPPORTED) return s;
            lisa_clear_error(); /* chosen by the table but no variant fits: the mma.sync kernel */
        }
        path = flash_fits ? LISA_CUDA_ATTN_FLASH : LISA_CUDA_ATTN_UNFUSED;
    }
    switch (path) {
    case LISA_CUDA_ATTN_WGMMA: return lisa_cuda_attention_relpos_fused(be, y, q, k, v, scale, rel_pos_h, rel_pos_w);
    case LISA_CUDA_ATTN_UNFUSED: return relpos_composed(be, y, q, k, v, rel_pos_h, rel_pos_w, q_h, q_w, scale, LISA_CUDA_ATTN_AUTO);
    case LISA_CUDA_ATTN_REFERENCE:
        return relpos_composed(be, y, q, k, v, rel_pos_h, rel_pos_w, q_h, q_w, scale, LISA_CUDA_ATTN_REFERENCE);
    case LISA_CUDA_ATTN_FLASH: break;
    default:
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: path %s (auto, flash, wgmma, unfused or reference)", op,
                         lisa_cuda_attn_path_name(path));
    }
    if (!flash_fits)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: the fused flash kernel needs BF16 q/k/v and tables with 16-byte aligned "
                                               "rows, a BF16/F32 output, head dim 64 or 80 (got %lld) and grids up to "
                                               "255x255 (got %dx%d)",
                         op, (long long)D, q_h, q_w);
    if (B * T * Q.H == 0) return LISA_OK;
    lk_flash_params fp = {};
    fp.q = (const lisa_bf16_t *)Q.data, fp.k = (const lisa_bf16_t *)K.data, fp.v = (const lisa_bf16_t *)V.data;
    fp.o = Y.data, fp.o_f32 = Y.dt == LISA_DTYPE_F32;
    fp.q_bs = Q.bs, fp.q_rs = Q.ts, fp.q_hs = Q.hs, fp.k_bs = K.bs, fp.k_rs = K.ts, fp.k_hs = K.hs;
    fp.v_bs = V.bs, fp.v_rs = V.ts, fp.v_hs = V.hs, fp.o_bs = Y.bs, fp.o_rs = Y.ts, fp.o_hs = Y.hs;
    fp.B = (int32_t)B, fp.Tq = (int32_t)T, fp.Tk = (int32_t)T, fp.Hq = (int32_t)Q.H, fp.Hkv = (int32_t)K.H;
    fp.scale_log2 = scale * LK_LOG2E;
    fp.k_h = q_h, fp.k_w = q_w;
    fp.rel_pos_h = (const lisa_bf16_t *)rel_pos_h->data, fp.rel_pos_w = (const lisa_bf16_t *)rel_pos_w->data;
    fp.rph_rs = rel_pos_h->stride[0], fp.rpw_rs = rel_pos_w->stride[0];
    return launch_flash(be, fp, T, (int)D);
}

lisa_status lisa_cuda_paged_attention_ex(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q,
                                         const lisa_tensor *k_pages, const lisa_tensor *v_pages, int32_t batch,
                                         int32_t page_size, float scale, bool causal, const lisa_tensor *qo_indptr,
                                         const lisa_tensor *kv_indptr, const lisa_tensor *kv_indices,
                                         const lisa_tensor *kv_len, const int32_t *host_qo_indptr,
                                         const int32_t *host_kv_indptr, const int32_t *host_kv_indices,
                                         const int32_t *host_kv_len) {
    const char *op = "paged_attention";
    char b1[96], b2[96];
    if (!host_qo_indptr || !host_kv_indptr || !host_kv_indices || !host_kv_len)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: the plan's host index arrays are required", op);
    LISA_TRY(lisa_cuda_check_float(op, "q", q));
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    if (q->n_dims != 3 || !lisa_tensor_same_shape(y, q) || (q->shape[2] > 1 && (q->stride[2] != 1 || y->stride[2] != 1)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s / y %s: need packed [T, Hq, D] with a contiguous D", op,
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(y, b2, sizeof b2));
    Pool pool;
    LISA_TRY(pool_check(op, k_pages, v_pages, q, &pool));
    if (pool.PS != page_size)
        return lisa_fail(LISA_ERR_SHAPE, "%s: page_size %d but the pool's pages hold %lld tokens", op, page_size,
                         (long long)pool.PS);
    const int64_t B = batch, T = q->shape[0], Hq = q->shape[1];
    if (B < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: batch %d", op, batch);
    LISA_TRY(index_check(op, "qo_indptr", qo_indptr, B + 1));
    LISA_TRY(index_check(op, "kv_indptr", kv_indptr, B + 1));
    LISA_TRY(index_check(op, "kv_indices", kv_indices, -1));
    LISA_TRY(index_check(op, "kv_len", kv_len, B));
    /* validate the plan on the host (the device copies hold the same values) */
    if (host_qo_indptr[0] != 0 || host_qo_indptr[B] != T)
        return lisa_fail(LISA_ERR_SHAPE, "%s: qo_indptr covers [%d, %d) but q has %lld rows", op, host_qo_indptr[0],
                         host_qo_indptr[B], (long long)T);
    int64_t max_q = 0, max_tk = 0;
    bool any_long = false, any_short = false;
    for (int64_t b = 0; b < B; b++) {
        const int64_t qlen = host_qo_indptr[b + 1] - host_qo_indptr[b], tk = host_kv_len[b];
        const int64_t npg = host_kv_indptr[b + 1] - host_kv_indptr[b];
        if (qlen < 0 || tk < qlen || (tk + pool.PS - 1) / pool.PS > npg)
            return lisa_fail(LISA_ERR_SHAPE, "%s: sequence %lld has %lld queries, %lld keys and %lld pages (page_size %lld)",
                             op, (long long)b, (long long)qlen, (long long)tk, (long long)npg, (long long)pool.PS);
        for (int64_t j = host_kv_indptr[b]; j < host_kv_indptr[b + 1]; j++)
            if (host_kv_indices[j] < 0 || host_kv_indices[j] >= pool.NP)
                return lisa_fail(LISA_ERR_INVALID_ARG, "%s: page id %d outside the pool of %lld pages", op,
                                 host_kv_indices[j], (long long)pool.NP);
        max_q = qlen > max_q ? qlen : max_q;
        max_tk = tk > max_tk ? tk : max_tk;
        any_long |= qlen > LK_SPLITKV_MAXQ;
        any_short |= qlen > 0 && qlen <= LK_SPLITKV_MAXQ;
    }
    if (T == 0 || max_tk == 0) return LISA_OK;
    if (y->dtype != q->dtype || k_pages->dtype != q->dtype)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: q, y and the pages must share a dtype", op);
    /* Each sequence goes to one kernel by its own query count: > 8 rows (prefill chunks) to flash,
     * 1..8 rows (decode) to split-KV. Both launches skip the other class's sequences. */
    const int D = (int)pool.D;
    const bool flash_ok = q->dtype == LISA_DTYPE_BF16 && D == 128 && /* the paged flash variants (lk_flash_select) */
                          ((uintptr_t)q->data & 15u) == 0 && (q->stride[0] * 2) % 16 == 0 &&
                          (q->stride[1] * 2) % 16 == 0 && ((uintptr_t)y->data & 3u) == 0 && y->stride[0] % 2 == 0 &&
                          y->stride[1] % 2 == 0;
    if (any_long && !flash_ok) {
        /* F32 activations (exact checks) or head dims the flash kernel lacks (tiny test models):
         * gather each long sequence's keys into scratch and run the dense ATTENTION op on them. */
        LISA_TRY(paged_gather_attention(be, y, q, k_pages, v_pages, pool, B, scale, causal, host_qo_indptr, host_kv_indptr,
                                        host_kv_indices, host_kv_len));
    } else if (any_long) {
        lk_flash_params fp = {};
        fp.q = (const lisa_bf16_t *)q->data, fp.k = (const lisa_bf16_t *)k_pages->data, fp.v = (const lisa_bf16_t *)v_pages->data;
        fp.o = y->data;
        fp.q_rs = q->stride[0], fp.q_hs = q->stride[1], fp.o_rs = y->stride[0], fp.o_hs = y->stride[1];
        fp.k_rs = fp.v_rs = pool.Hkv * pool.D, fp.k_hs = fp.v_hs = pool.D;
        fp.cu_seqlens_q = (const int32_t *)qo_indptr->data;
        fp.kv_indptr = (const int32_t *)kv_indptr->data, fp.kv_indices = (const int32_t *)kv_indices->data;
        fp.kv_len = (const int32_t *)kv_len->data, fp.page_size = (int32_t)pool.PS, fp.q_min = LK_SPLITKV_MAXQ + 1;
        fp.B = (int32_t)B, fp.Tq = (int32_t)max_q, fp.Hq = (int32_t)Hq, fp.Hkv = (int32_t)pool.Hkv;
        fp.scale_log2 = scale * LK_LOG2E, fp.causal = causal;
        LISA_TRY(launch_flash(be, fp, max_q, D));
    }
    if (any_short) {
        lk_splitkv_params sp = {};
        sp.q = q->data, sp.q_rs = q->stride[0], sp.q_hs = q->stride[1], sp.qo_indptr = (const int32_t *)qo_indptr->data;
        sp.k = k_pages->data, sp.v = v_pages->data, sp.k_rs = sp.v_rs = pool.Hkv * pool.D, sp.k_hs = sp.v_hs = pool.D;
        sp.kv_indptr = (const int32_t *)kv_indptr->data, sp.kv_indices = (const int32_t *)kv_indices->data;
        sp.kv_len = (const int32_t *)kv_len->data, sp.page_size = (int32_t)pool.PS;
        sp.o = y->data, sp.o_rs = y->stride[0], sp.o_hs = y->stride[1];
        sp.B = (int32_t)B, sp.Tq = (int32_t)(max_q < (int64_t)LK_SPLITKV_MAXQ ? max_q : (int64_t)LK_SPLITKV_MAXQ), sp.Tk = (int32_t)max_tk;
        sp.Hq = (int32_t)Hq, sp.Hkv = (int32_t)pool.Hkv, sp.D = (int32_t)pool.D;
        sp.scale_log2 = scale * LK_LOG2E, sp.causal = causal;
        LISA_TRY(launch_splitkv(be, sp, q->dtype, max_tk));
    }
    return LISA_OK;
}

lisa_status lisa_cuda_kv_append(lisa_backend *be, lisa_tensor *k_pages, lisa_tensor *v_pages, const lisa_tensor *k,
                                const lisa_tensor *v, const lisa_tensor *slots) {
    const char *op = "kv_append";
    char b1[96], b2[96];
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    LISA_TRY(lisa_cuda_check_float(op, "k", k));
    LISA_TRY(lisa_cuda_check_float(op, "v", v));
    Pool pool;
    LISA_TRY(pool_check(op, k_pages, v_pages, NULL, &pool));
    if (k->n_dims != 3 || !lisa_tensor_same_shape(k, v) || k->dtype != v->dtype || k->shape[1] != pool.Hkv ||
        k->shape[2] != pool.D || (pool.D > 1 && (k->stride[2] != 1 || v->stride[2] != 1)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: k %s / pool %s do not agree (want k = v [T, Hkv, D], D contiguous)", op,
                         lisa_tensor_shape_str(k, b1, sizeof b1), lisa_tensor_shape_str(k_pages, b2, sizeof b2));
    LISA_TRY(index_check(op, "slots", slots, k->shape[0]));
    const int64_t T = k->shape[0], n = T * pool.Hkv * pool.D, n_slots = pool.NP * pool.PS;
    if (n == 0) return LISA_OK;
    if (T > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: %lld rows", op, (long long)T);
    const unsigned grid = lisa_cuda_grid_1d(be, n, 256);
    /* every slot is checked before anything is written (as the CPU backend), on the device: a bad
     * slot raises the flag, the append writes nothing, the next wait reports it (cuda.h) */
    lk_kv_slots_check<<<lisa_cuda_grid_1d(be, T, 256), 256, 0, im->stream>>>((const int32_t *)slots->data, (int32_t)T,
                                                                             n_slots, im->flag);
    CUDA_CHECK_LAUNCH();
    lisa_cuda_flag_armed(be);
    lk_kv_append<<<grid, 256, 0, im->stream>>>(k_pages->data, v_pages->data, k_pages->dtype, k->data, v->data, k->dtype,
                                               k->stride[0], k->stride[1], v->stride[0], v->stride[1],
                                               (const int32_t *)slots->data, (int32_t)T, (int32_t)pool.Hkv,
                                               (int32_t)pool.D, n_slots, im->flag);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} /* extern "C" */
