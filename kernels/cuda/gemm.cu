/* kernels/cuda/gemm.cu — ops LINEAR, LINEAR_EX, MATMUL, CONV2D, CONV_TRANSPOSE2D_K2S2 on cuBLASLt /
 * cuBLAS (linears of at most 16 BF16 rows on the small-M kernel instead, gemv.cu). im2col and the
 * transposed-conv scatter kernels are in conv_kernels.cuh.
 *
 * LINEAR_EX, y = act(x · wᵀ + b) + residual, fuses what the model graphs put around a GEMM: the bias
 * and ReLU through cuBLASLt epilogues, the residual through its C operand (beta = 1, C may be D).
 * cuBLASLt's GELU epilogue is the tanh approximation while SAM needs exact erf GELU (spec §5.1) and
 * CLIP quick GELU, so those run the bias epilogue and then one in-place elementwise pass (room for
 * speed: a custom epilogue). Numerics: BF16/F16 operands use tensor cores with fp32 accumulation;
 * F32 operands use an fp32 GEMM (CUBLAS_COMPUTE_32F, no TF32) so that checks are exact to fp32.
 * Operands of different dtypes are widened/narrowed to x's dtype in scratch, in row chunks.
 *
 * Row-major GEMMs map onto column-major cuBLAS by computing Cᵀ = op(B)ᵀ·op(A)ᵀ: a row-major
 * [R, C] matrix with row stride ld is the column-major C x R matrix with leading dimension ld.
 * For Linear, y[M, N] = x[M, K]·w[N, K]ᵀ is cuBLAS m = N, n = M, k = K, A = w (op T, ld K),
 * B = x (op N, ld = x's row stride), D = y (ld = y's row stride); the bias epilogue adds b along
 * D's rows = the N output features.
 */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/conv_kernels.cuh"

#include <stdlib.h>
#include <string.h>

namespace {

const int kThreads = 256;
const int kPlanCap = 128;

static cudaDataType cuda_type(lisa_dtype t) {
    switch (t) {
    case LISA_DTYPE_BF16: return CUDA_R_16BF;
    case LISA_DTYPE_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

static unsigned ptr_align(const void *p) {
    uintptr_t u = (uintptr_t)p;
    return (u & 15u) == 0 ? 16u : (u & 7u) == 0 ? 8u : (u & 3u) == 0 ? 4u : 2u;
}

/* One cuBLASLt problem: everything the descriptors and the heuristic depend on. */
struct PlanKey {
    int64_t m, n, k, lda, ldb, ldc, ldd;
    int32_t ab_type, cd_type, epilogue, has_bias, transa;
    uint32_t al_a, al_b, al_c, al_d, al_bias;
    bool operator==(const PlanKey &o) const { return memcmp(this, &o, sizeof *this) == 0; }
};

/* Owns the cuBLASLt descriptors of one cached problem. */
struct Plan {
    PlanKey key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulAlgo_t algo;
    bool have_algo; /* false: the heuristic found none; use the cuBLAS fallback */
};

/* Owns up to kPlanCap plans, evicted round-robin; lives as long as the backend. */
struct GemmCache {
    Plan plans[kPlanCap];
    int n, next;
};

static void plan_release(Plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

#define LT_CHECK(expr)                                                                             \
    do {                                                                                           \
        cublasStatus_t s_ = (expr);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            plan_release(p);                                                                       \
            return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #expr, cublasGetStatusString(s_)); \
        }                                                                                          \
    } while (0)

/* Builds the descriptors for `key` and asks the heuristic for the best algorithm. */
static lisa_status plan_build(lisa_cuda_impl *im, Plan *p, const PlanKey &key, const void *bias) {
    memset(p, 0, sizeof *p);
    p->key = key;
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = key.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = (cublasLtEpilogue_t)key.epilogue;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (key.has_bias) {
        int32_t bt = key.cd_type; /* bias in D's type (cublasLt.h, BIAS_DATA_TYPE) */
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    }
    /* stored shapes: A is k x m (op T) or m x k; B is k x n; C, D are m x n (column-major) */
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, (cudaDataType)key.ab_type, key.transa ? key.k : key.m,
                                        key.transa ? key.m : key.k, key.lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, (cudaDataType)key.ab_type, key.k, key.n, key.ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->c, (cudaDataType)key.cd_type, key.m, key.n, key.ldc));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->d, (cudaDataType)key.cd_type, key.m, key.n, key.ldd));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = im->lt_ws_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.al_a, sizeof key.al_a);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.al_b, sizeof key.al_b);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.al_c, sizeof key.al_c);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.al_d, sizeof key.al_d);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(im->lt, p->op, p->a, p->b, p->c, p->d, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->have_algo = hs == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->have_algo) p->algo = res.algo;
    return LISA_OK;
}

static lisa_status plan_get(lisa_backend *be, const PlanKey &key, const void *bias, Plan **out) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    GemmCache *c = (GemmCache *)im->gemm_cache;
    for (int i = 0; i < c->n; i++)
        if (c->plans[i].key == key) {
            *out = &c->plans[i];
            return LISA_OK;
        }
    Plan fresh;
    LISA_TRY(plan_build(im, &fresh, key, bias)); /* releases its descriptors on failure */
    Plan *p;
    if (c->n < kPlanCap) {
        p = &c->plans[c->n++];
    } else {
        p = &c->plans[c->next];
        c->next = (c->next + 1) % kPlanCap;
        plan_release(p);
    }
    *p = fresh;
    *out = p;
    return LISA_OK;
}

/* Row-major strided-batched GEMM on cuBLAS: C[M, N] = op(A)[M, K]·op(B)[K, N] + beta·C, where
 * op(A) = A[M, K] (row stride lda) or, with ta, A[K, M]ᵀ; likewise B. fp32 accumulation. */
static lisa_status gemm_rm(lisa_backend *be, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                    int64_t sA, const void *B, int64_t ldb, int64_t sB, void *C, int64_t ldc, int64_t sC, int64_t batch,
                    cudaDataType ab, cudaDataType ct, float beta) {
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX ||
        batch > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "gemm: dims beyond cuBLAS's int range (M %lld N %lld K %lld)",
                         (long long)M, (long long)N, (long long)K);
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(lisa_cuda_impl_of(be)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, B, ab, (int)ldb,
                                            sB, A, ab, (int)lda, sA, &beta, C, ct, (int)ldc, sC, (int)batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return LISA_OK;
}

static lisa_tensor dev_view(void *data, lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int dev) {
    lisa_tensor t = lisa_tensor_view4(data, dt, n_dims, d0, d1, d2, d3);
    t.device = LISA_DEVICE_CUDA;
    t.device_id = dev;
    return t;
}

/* Converts n contiguous elements of src (dtype sdt) into scratch as dtype dt; *out = src when
 * the dtypes already agree. */
static lisa_status as_dtype(lisa_backend *be, const void *src, lisa_dtype sdt, int64_t n, lisa_dtype dt, const void **out) {
    if (sdt == dt || n == 0) {
        *out = src;
        return LISA_OK;
    }
    void *dst;
    LISA_TRY(lisa_cuda_scratch(be, (size_t)n * lisa_dtype_size(dt), &dst));
    lisa_tensor s = dev_view((void *)src, sdt, 1, n, 0, 0, 0, be->device_id);
    lisa_tensor d = dev_view(dst, dt, 1, n, 0, 0, 0, be->device_id);
    LISA_TRY(lisa_cuda_copy(be, &d, &s));
    *out = dst;
    return LISA_OK;
}

static lisa_status check_param(const char *op, const char *what, const lisa_tensor *t) {
    return t ? lisa_cuda_check_dense(op, what, t) : LISA_OK;
}

/* dtype of the GEMM operands for activation dtype xt, and whether y's dtype can be D. */
static bool out_ok(lisa_dtype xt, lisa_dtype yt) { return yt == xt || (xt != LISA_DTYPE_F32 && yt == LISA_DTYPE_F32); }

static lisa_status linear_impl(lisa_backend *be, const char *op, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                        const lisa_tensor *b, const lisa_tensor *residual, lisa_act act) {
    char b1[96], b2[96], b3[96];
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    LISA_TRY(lisa_cuda_check_float(op, "x", x));
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    LISA_TRY(lisa_cuda_check_dense(op, "w", w));
    LISA_TRY(check_param(op, "b", b));
    if (residual) {
        LISA_TRY(lisa_cuda_check_float(op, "residual", residual));
        if (act != LISA_ACT_NONE)
            return lisa_fail(LISA_ERR_INVALID_ARG, "%s: a residual cannot follow an activation epilogue", op);
    }
    if ((unsigned)act > LISA_ACT_QUICK_GELU) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: unknown activation %d", op, (int)act);
    int64_t M, lda, M2, ldd, ldc = 0;
    if (x->n_dims < 1 || y->n_dims != x->n_dims || w->n_dims != 2)
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s, w %s, y %s: need x[.., K], w[N, K], y[.., N]", op,
                         lisa_tensor_shape_str(x, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2),
                         lisa_tensor_shape_str(y, b3, sizeof b3));
    const int64_t K = x->shape[x->n_dims - 1], N = w->shape[0];
    bool lead_ok = true;
    for (int d = 0; d < x->n_dims - 1; d++) lead_ok &= x->shape[d] == y->shape[d];
    if (w->shape[1] != K || y->shape[y->n_dims - 1] != N || !lead_ok || (b && lisa_tensor_numel(b) != N) ||
        (residual && !lisa_tensor_same_shape(residual, y)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s, w %s, y %s do not agree (y[.., N] = x[.., K]·w[N, K]ᵀ)", op,
                         lisa_tensor_shape_str(x, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2),
                         lisa_tensor_shape_str(y, b3, sizeof b3));
    LISA_TRY(lisa_cuda_rows(op, "x", x, &M, &lda));
    LISA_TRY(lisa_cuda_rows(op, "y", y, &M2, &ldd));
    if (residual) {
        LISA_TRY(lisa_cuda_rows(op, "residual", residual, &M2, &ldc));
        if (residual->dtype != y->dtype)
            return lisa_fail(LISA_ERR_SHAPE, "%s: residual %s must have y's dtype %s", op,
                             lisa_tensor_shape_str(residual, b1, sizeof b1), lisa_dtype_name(y->dtype));
    }
    const lisa_dtype ct = x->dtype;
    if (!out_ok(ct, y->dtype))
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s for x %s: the output is x's dtype, or F32 for 16-bit x", op,
                         lisa_tensor_shape_str(y, b1, sizeof b1), lisa_tensor_shape_str(x, b2, sizeof b2));
    if (M == 0 || N == 0) return LISA_OK;
    if (K == 0) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: K = 0", op);
    if (lda < K || ldd < N) return lisa_fail(LISA_ERR_SHAPE, "%s: overlapping rows", op);
    /* decode-sized M: the bandwidth-bound small-M kernel with the whole epilogue (gemv.cu) */
    if (lisa_cuda_gemv_applies(be, y, x, w, M, lda, ldd))
        return lisa_cuda_gemv(be, y, x, w, b, residual, (int32_t)act, M, lda, ldd, ldc);

    const size_t mark = lisa_arena_mark(&be->scratch);
    lisa_status s = LISA_OK;
    const void *bias = nullptr;
    if (b) s = as_dtype(be, b->data, b->dtype, N, y->dtype, &bias);
    /* Weights in x's dtype: converted in chunks of output rows that fit half the free scratch. */
    int64_t rows_per_chunk = N;
    const size_t csz = lisa_dtype_size(ct);
    if (s == LISA_OK && w->dtype != ct) {
        size_t free_b = be->scratch.cap - be->scratch.used;
        rows_per_chunk = (int64_t)(free_b / 2 / ((size_t)K * csz));
        if (rows_per_chunk < 1)
            s = lisa_fail(LISA_ERR_OOM, "%s: converting w %s needs %zu bytes of scratch per row, %zu free", op,
                          lisa_tensor_shape_str(w, b1, sizeof b1), (size_t)K * csz, free_b);
        if (rows_per_chunk > N) rows_per_chunk = N;
    }
    const size_t ysz = lisa_dtype_size(y->dtype), wsz = lisa_dtype_size(w->dtype);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (act == LISA_ACT_RELU)
        epi = b ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    else if (b)
        epi = CUBLASLT_EPILOGUE_BIAS;
    const size_t chunk_mark = lisa_arena_mark(&be->scratch);
    for (int64_t n0 = 0; s == LISA_OK && n0 < N; n0 += rows_per_chunk) {
        lisa_arena_reset(&be->scratch, chunk_mark);
        const int64_t n1 = n0 + rows_per_chunk < N ? n0 + rows_per_chunk : N, m = n1 - n0;
        const void *wc;
        s = as_dtype(be, (const char *)w->data + (size_t)(n0 * K) * wsz, w->dtype, m * K, ct, &wc);
        if (s != LISA_OK) break;
        void *dptr = (char *)y->data + (size_t)n0 * ysz;
        const void *cptr = residual ? (const void *)((const char *)residual->data + (size_t)n0 * ysz) : dptr;
        const void *bptr = bias ? (const void *)((const char *)bias + (size_t)n0 * ysz) : nullptr;
        PlanKey key;
        memset(&key, 0, sizeof key);
        key.m = m, key.n = M, key.k = K, key.lda = K, key.ldb = lda, key.ldc = residual ? ldc : ldd, key.ldd = ldd;
        key.ab_type = cuda_type(ct), key.cd_type = cuda_type(y->dtype), key.epilogue = (int32_t)epi;
        key.has_bias = bptr != nullptr, key.transa = 1;
        key.al_a = ptr_align(wc), key.al_b = ptr_align(x->data), key.al_c = ptr_align(cptr), key.al_d = ptr_align(dptr);
        key.al_bias = bptr ? ptr_align(bptr) : 0;
        Plan *plan = nullptr;
        s = plan_get(be, key, bptr, &plan);
        if (s != LISA_OK) break;
        const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
        if (plan->have_algo) {
            if (bptr) {
                cublasStatus_t bs = cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bptr, sizeof bptr);
                if (bs != CUBLAS_STATUS_SUCCESS) {
                    s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "set bias pointer", cublasGetStatusString(bs));
                    break;
                }
            }
            cublasStatus_t ms = cublasLtMatmul(im->lt, plan->op, &alpha, wc, plan->a, x->data, plan->b, &beta, cptr,
                                               plan->c, dptr, plan->d, &plan->algo, im->lt_ws, im->lt_ws_bytes, im->stream);
            if (ms != CUBLAS_STATUS_SUCCESS)
                s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "cublasLtMatmul", cublasGetStatusString(ms));
        } else {
            /* No cuBLASLt algorithm (unusual alignment): plain cuBLAS, then bias and activation. */
            if (residual && cptr != dptr) {
                lisa_tensor rv = dev_view((void *)cptr, y->dtype, 2, M, m, 0, 0, be->device_id);
                lisa_tensor dv = dev_view(dptr, y->dtype, 2, M, m, 0, 0, be->device_id);
                rv.stride[0] = ldc, dv.stride[0] = ldd;
                s = lisa_cuda_copy(be, &dv, &rv);
                if (s != LISA_OK) break;
            }
            s = gemm_rm(be, false, true, M, m, K, x->data, lda, 0, wc, K, 0, dptr, ldd, 0, 1, cuda_type(ct),
                        cuda_type(y->dtype), beta);
            lisa_tensor dv = dev_view(dptr, y->dtype, 2, M, m, 0, 0, be->device_id);
            dv.stride[0] = ldd;
            if (s == LISA_OK && bptr) {
                lisa_tensor bv = dev_view((void *)bptr, y->dtype, 1, m, 0, 0, 0, be->device_id);
                s = lisa_cuda_add(be, &dv, &dv, &bv);
            }
            if (s == LISA_OK && act == LISA_ACT_RELU) s = lisa_cuda_relu(be, &dv, &dv);
        }
    }
    if (s == LISA_OK && act == LISA_ACT_GELU) s = lisa_cuda_gelu(be, y, y);
    if (s == LISA_OK && act == LISA_ACT_QUICK_GELU) s = lisa_cuda_quick_gelu(be, y, y);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} // namespace

extern "C" {

lisa_status lisa_cuda_gemm_cache_create(lisa_backend *be) {
    GemmCache *c = (GemmCache *)calloc(1, sizeof(GemmCache));
    if (!c) return lisa_fail(LISA_ERR_OOM, "cuda backend: out of host memory (gemm cache)");
    lisa_cuda_impl_of(be)->gemm_cache = c;
    return LISA_OK;
}

void lisa_cuda_gemm_cache_destroy(lisa_backend *be) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    GemmCache *c = (GemmCache *)im->gemm_cache;
    if (!c) return;
    for (int i = 0; i < c->n; i++) plan_release(&c->plans[i]);
    free(c);
    im->gemm_cache = nullptr;
}

lisa_status lisa_cuda_linear(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                             const lisa_tensor *b) {
    return linear_impl(be, "linear", y, x, w, b, nullptr, LISA_ACT_NONE);
}

lisa_status lisa_cuda_linear_ex(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                const lisa_tensor *b, const lisa_tensor *residual, lisa_act act) {
    return linear_impl(be, "linear_ex", y, x, w, b, residual, act);
}

lisa_status lisa_cuda_matmul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b, bool trans_b) {
    const char *op = "matmul";
    char b1[96], b2[96], b3[96];
    LISA_TRY(lisa_cuda_check_float(op, "a", a));
    LISA_TRY(lisa_cuda_check_float(op, "b", b));
    LISA_TRY(lisa_cuda_check_dense(op, "y", y));
    const int na = a->n_dims, nb = b->n_dims;
    bool dims_ok = (na == 2 || na == 3) && (nb == 2 || nb == 3) && y->n_dims == (na > nb ? na : nb);
    int64_t Ba = na == 3 ? a->shape[0] : 1, Bb = nb == 3 ? b->shape[0] : 1;
    int64_t M = dims_ok ? a->shape[na - 2] : 0, K = dims_ok ? a->shape[na - 1] : 0;
    int64_t Kb = dims_ok ? (trans_b ? b->shape[nb - 1] : b->shape[nb - 2]) : 0;
    int64_t N = dims_ok ? (trans_b ? b->shape[nb - 2] : b->shape[nb - 1]) : 0;
    int64_t B = Ba > Bb ? Ba : Bb;
    dims_ok = dims_ok && Kb == K && (Ba == Bb || Ba == 1 || Bb == 1) && y->shape[y->n_dims - 2] == M &&
              y->shape[y->n_dims - 1] == N && (y->n_dims == 2 || y->shape[0] == B);
    if (!dims_ok)
        return lisa_fail(LISA_ERR_SHAPE, "%s: a %s, b %s%s, y %s do not agree", op, lisa_tensor_shape_str(a, b1, sizeof b1),
                         lisa_tensor_shape_str(b, b2, sizeof b2), trans_b ? " (transposed)" : "",
                         lisa_tensor_shape_str(y, b3, sizeof b3));
    if ((K > 1 && a->stride[na - 1] != 1) || (b->shape[nb - 1] > 1 && b->stride[nb - 1] != 1))
        return lisa_fail(LISA_ERR_SHAPE, "%s: a %s and b %s need unit-stride rows", op, lisa_tensor_shape_str(a, b1, sizeof b1),
                         lisa_tensor_shape_str(b, b2, sizeof b2));
    const lisa_dtype ct = a->dtype;
    if (!out_ok(ct, y->dtype))
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s for a %s: the output is a's dtype, or F32 for 16-bit a", op,
                         lisa_tensor_shape_str(y, b1, sizeof b1), lisa_tensor_shape_str(a, b2, sizeof b2));
    if (M * N * B == 0) return LISA_OK;
    if (K == 0) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: K = 0", op);
    const size_t mark = lisa_arena_mark(&be->scratch);
    lisa_status s = LISA_OK;
    const void *bp = b->data;
    int64_t ldb = b->stride[nb - 2], sB = nb == 3 && Bb > 1 ? b->stride[0] : 0;
    if (b->dtype != ct) { /* convert b (as a dense copy) into a's dtype */
        void *dst = nullptr;
        int64_t rows = lisa_tensor_numel(b) / b->shape[nb - 1];
        s = lisa_cuda_scratch(be, (size_t)lisa_tensor_numel(b) * lisa_dtype_size(ct), &dst);
        if (s == LISA_OK) {
            lisa_tensor d = dev_view(dst, ct, nb, b->shape[0], b->shape[1], nb == 3 ? b->shape[2] : 0, 0, be->device_id);
            s = lisa_cuda_copy(be, &d, b);
        }
        bp = dst;
        ldb = b->shape[nb - 1];
        sB = nb == 3 && Bb > 1 ? rows / Bb * ldb : 0;
    }
    if (s == LISA_OK)
        s = gemm_rm(be, false, trans_b, M, N, K, a->data, a->stride[na - 2], na == 3 && Ba > 1 ? a->stride[0] : 0, bp, ldb,
                    sB, y->data, N, M * N, B, cuda_type(ct), cuda_type(y->dtype), 0.0f);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

lisa_status lisa_cuda_conv2d(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                             const lisa_tensor *b, int32_t stride, int32_t pad) {
    const char *op = "conv2d";
    char b1[96], b2[96], b3[96];
    LISA_TRY(lisa_cuda_check_dense(op, "x", x));
    LISA_TRY(lisa_cuda_check_dense(op, "w", w));
    LISA_TRY(lisa_cuda_check_dense(op, "y", y));
    LISA_TRY(check_param(op, "b", b));
    if (stride <= 0 || pad < 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: stride %d pad %d", op, stride, pad);
    if (x->n_dims != 4 || w->n_dims != 4 || y->n_dims != 4 || w->shape[1] != x->shape[1])
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s, w %s, y %s: need x[B, Cin, H, W], w[Cout, Cin, kh, kw]", op,
                         lisa_tensor_shape_str(x, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2),
                         lisa_tensor_shape_str(y, b3, sizeof b3));
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    if (H + 2 * pad < kh || W + 2 * pad < kw || y->shape[0] != B || y->shape[1] != Co || y->shape[2] != Ho ||
        y->shape[3] != Wo || (b && lisa_tensor_numel(b) != Co))
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s must be [%lld, %lld, %lld, %lld] for x %s and w %s", op,
                         lisa_tensor_shape_str(y, b1, sizeof b1), (long long)B, (long long)Co, (long long)Ho, (long long)Wo,
                         lisa_tensor_shape_str(x, b2, sizeof b2), lisa_tensor_shape_str(w, b3, sizeof b3));
    const lisa_dtype ct = x->dtype;
    if (!out_ok(ct, y->dtype))
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s for x %s: the output is x's dtype, or F32 for 16-bit x", op,
                         lisa_tensor_shape_str(y, b1, sizeof b1), lisa_tensor_shape_str(x, b2, sizeof b2));
    if (B * Co * Ho * Wo == 0) return LISA_OK;
    if (lisa_cuda_impl_of(be)->conv_path == LISA_CUDA_CONV_CUDNN && kh * kw > 1 && x->dtype != LISA_DTYPE_F32) {
        lisa_status cs = lisa_cuda_conv2d_cudnn(be, y, x, w, b, stride, pad); /* conv_cudnn.c */
        if (cs != LISA_ERR_UNSUPPORTED) return cs;
        lisa_clear_error(); /* cuDNN does not take it: im2col + GEMM below */
    }
    const int64_t K = Ci * kh * kw, P = Ho * Wo;
    const size_t mark = lisa_arena_mark(&be->scratch);
    const void *wc = nullptr;
    lisa_status s = as_dtype(be, w->data, w->dtype, Co * K, ct, &wc);
    /* im2col for as many images at a time as half the free scratch holds */
    const size_t per_image = (size_t)(K * P) * lisa_dtype_size(ct);
    int64_t imgs = s == LISA_OK ? (int64_t)((be->scratch.cap - be->scratch.used) / 2 / per_image) : 0;
    if (s == LISA_OK && imgs < 1)
        s = lisa_fail(LISA_ERR_OOM, "%s: im2col of one image needs %zu bytes of scratch", op, per_image);
    if (imgs > B) imgs = B;
    void *col = nullptr;
    if (s == LISA_OK) s = lisa_cuda_scratch(be, per_image * (size_t)imgs, &col);
    cudaStream_t st = lisa_cuda_impl_of(be)->stream;
    const size_t xsz = lisa_dtype_size(x->dtype), ysz = lisa_dtype_size(y->dtype);
    for (int64_t b0 = 0; s == LISA_OK && b0 < B; b0 += imgs) {
        const int64_t nb = b0 + imgs < B ? imgs : B - b0;
        lk_im2col<<<lisa_cuda_grid_1d(be, nb * K * P, kThreads), kThreads, 0, st>>>(
            col, ct, (const char *)x->data + (size_t)(b0 * Ci * H * W) * xsz, x->dtype, (int32_t)nb, (int32_t)Ci,
            (int32_t)H, (int32_t)W, (int32_t)kh, (int32_t)kw, stride, pad, (int32_t)Ho, (int32_t)Wo);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "lk_im2col launch", cudaGetErrorString(e));
            break;
        }
        /* y_b[Co, P] = w[Co, K] · col_b[K, P], the weights shared across the batch (stride 0) */
        s = gemm_rm(be, false, false, Co, P, K, wc, K, 0, col, P, K * P, (char *)y->data + (size_t)(b0 * Co * P) * ysz, P,
                    Co * P, nb, cuda_type(ct), cuda_type(y->dtype), 0.0f);
    }
    if (s == LISA_OK && b) {
        lisa_tensor yv = dev_view(y->data, y->dtype, 3, B, Co, P, 0, be->device_id);
        lisa_tensor bv = dev_view(b->data, b->dtype, 2, Co, 1, 0, 0, be->device_id);
        s = lisa_cuda_add(be, &yv, &yv, &bv);
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

lisa_status lisa_cuda_conv_transpose2d_k2s2(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                            const lisa_tensor *b) {
    const char *op = "conv_transpose2d_k2s2";
    char b1[96], b2[96], b3[96];
    LISA_TRY(lisa_cuda_check_dense(op, "x", x));
    LISA_TRY(lisa_cuda_check_dense(op, "w", w));
    LISA_TRY(lisa_cuda_check_dense(op, "y", y));
    LISA_TRY(check_param(op, "b", b));
    if (x->n_dims != 4 || w->n_dims != 4 || y->n_dims != 4 || w->shape[0] != x->shape[1] || w->shape[2] != 2 ||
        w->shape[3] != 2 || y->shape[0] != x->shape[0] || y->shape[1] != w->shape[1] || y->shape[2] != 2 * x->shape[2] ||
        y->shape[3] != 2 * x->shape[3] || (b && lisa_tensor_numel(b) != w->shape[1]))
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s, w %s, y %s: need x[B, Cin, H, W], w[Cin, Cout, 2, 2], y[B, Cout, 2H, 2W]",
                         op, lisa_tensor_shape_str(x, b1, sizeof b1), lisa_tensor_shape_str(w, b2, sizeof b2),
                         lisa_tensor_shape_str(y, b3, sizeof b3));
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3], Co = w->shape[1], P = H * W;
    const lisa_dtype ct = x->dtype;
    if (B * Co * P == 0) return LISA_OK;
    if (lisa_cuda_impl_of(be)->convt_path == LISA_CUDA_CONV_CUDNN && ct != LISA_DTYPE_F32) {
        lisa_status cs = lisa_cuda_convt_k2s2_cudnn(be, y, x, w, b); /* conv_cudnn.c */
        if (cs != LISA_ERR_UNSUPPORTED) return cs;
        lisa_clear_error(); /* cuDNN does not take it: GEMM + scatter below */
    }
    const size_t mark = lisa_arena_mark(&be->scratch);
    const void *wc = nullptr;
    void *z = nullptr;
    lisa_status s = as_dtype(be, w->data, w->dtype, Ci * Co * 4, ct, &wc);
    if (s == LISA_OK) s = lisa_cuda_scratch(be, (size_t)(B * Co * 4 * P) * sizeof(float), &z);
    /* z_b[Co·4, P] = w[Ci, Co·4]ᵀ · x_b[Ci, P], in F32 */
    if (s == LISA_OK)
        s = gemm_rm(be, true, false, Co * 4, P, Ci, wc, Co * 4, 0, x->data, P, Ci * P, z, P, Co * 4 * P, B, cuda_type(ct),
                    CUDA_R_32F, 0.0f);
    if (s == LISA_OK) {
        lk_convt_scatter<<<lisa_cuda_grid_1d(be, B * Co * 4 * P, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(
            y->data, y->dtype, (const float *)z, b ? b->data : nullptr, b ? b->dtype : 0, (int32_t)B, (int32_t)Co,
            (int32_t)H, (int32_t)W);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "lk_convt_scatter launch", cudaGetErrorString(e));
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} /* extern "C" */
