/* kernels/cpu/linear.c — LINEAR and MATMUL (ops.def) on OpenBLAS cblas_sgemm, F32 throughout.
 *
 * Dimension letters: M rows of activations, K reduction, N outputs, B batch.
 * BF16/F16 weights are widened to F32 in blocks of rows of W that fit the scratch arena, one
 * sgemm per block (docs/architecture.md "Numerics": the CPU backend computes in F32). sgemm accumulates in
 * F32 like PyTorch's CPU addmm, so results differ from a double reference by ~sqrt(K) ulp.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <string.h>

/* y[M, N] rows all = bias (widened), or zeros when bias is NULL. */
static void fill_rows(float *y, int64_t M, int64_t N, const float *bias) {
    for (int64_t m = 0; m < M; m++) {
        if (bias) memcpy(y + m * N, bias, (size_t)N * sizeof(float));
        else memset(y + m * N, 0, (size_t)N * sizeof(float));
    }
}

lisa_status lisa_cpu_linear(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                            const lisa_tensor *b) {
    char s1[96], s2[96], s3[96];
    LISA_TRY(lisa_cpu_check_f32("linear", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("linear", "y", y, true));
    LISA_TRY(lisa_cpu_check_param("linear", "w", w));
    if (b) LISA_TRY(lisa_cpu_check_param("linear", "b", b));
    if (x->n_dims < 1 || w->n_dims != 2 || w->shape[1] != x->shape[x->n_dims - 1])
        return lisa_fail(LISA_ERR_SHAPE, "linear: x %s and w %s do not agree (want x[..., K], w[N, K])",
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(w, s2, sizeof s2));
    const int64_t N = w->shape[0], K = w->shape[1];
    bool y_ok = y->n_dims == x->n_dims && y->shape[y->n_dims - 1] == N;
    for (int d = 0; y_ok && d < x->n_dims - 1; d++) y_ok = y->shape[d] == x->shape[d];
    if (!y_ok)
        return lisa_fail(LISA_ERR_SHAPE, "linear: y %s does not match x %s with w %s", lisa_tensor_shape_str(y, s1, sizeof s1),
                         lisa_tensor_shape_str(x, s2, sizeof s2), lisa_tensor_shape_str(w, s3, sizeof s3));
    if (b && (b->n_dims != 1 || b->shape[0] != N))
        return lisa_fail(LISA_ERR_SHAPE, "linear: b %s does not match w %s", lisa_tensor_shape_str(b, s1, sizeof s1),
                         lisa_tensor_shape_str(w, s2, sizeof s2));
    LISA_TRY(lisa_cpu_check_no_overlap("linear", "x", y, x));
    const int64_t M = K > 0 ? lisa_tensor_numel(x) / K : lisa_tensor_numel(y) / (N ? N : 1);
    if (M == 0 || N == 0) return LISA_OK;
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "linear: x %s exceeds the 32-bit sizes of cblas_sgemm",
                         lisa_tensor_shape_str(x, s1, sizeof s1));

    size_t mark = lisa_arena_mark(&be->scratch);
    lisa_status st = LISA_OK;
    float *bias = NULL;
    if (b) {
        if (b->dtype == LISA_DTYPE_F32) {
            bias = b->data;
        } else {
            st = lisa_cpu_scratch_f32(be, "linear", N, &bias);
            if (st != LISA_OK) goto out;
            lisa_cpu_load_f32(bias, b, 0, N);
        }
    }
    /* Bias first, then sgemm with beta = 1 (as torch addmm: y = bias + x·wᵀ). */
    fill_rows(y->data, M, N, bias);
    if (K == 0) goto out;
    if (w->dtype == LISA_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x->data, (int)K, w->data,
                    (int)K, 1.0f, y->data, (int)N);
        goto out;
    }
    /* Widen nb rows of W at a time: as many as the free scratch holds. */
    int64_t nb = (int64_t)(lisa_cpu_scratch_free(be) / ((size_t)K * sizeof(float) + 64));
    if (nb > N) nb = N;
    if (nb < 1) nb = 1;
    float *wt = NULL;
    st = lisa_cpu_scratch_f32(be, "linear (bf16/f16 weight block)", nb * K, &wt);
    if (st != LISA_OK) goto out;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        int64_t nn = N - n0 < nb ? N - n0 : nb;
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, nn * K))
        for (int64_t r = 0; r < nn; r++) lisa_cpu_load_f32(wt + r * K, w, (n0 + r) * K, K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nn, (int)K, 1.0f, x->data, (int)K, wt, (int)K,
                    1.0f, (float *)y->data + n0, (int)N);
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* Reads [B, R, C] (3-D) or [R, C] (2-D, B = 1) of a matmul operand. */
static bool mm_dims(const lisa_tensor *t, int64_t *B, int64_t *R, int64_t *C) {
    if (t->n_dims == 2) {
        *B = 1, *R = t->shape[0], *C = t->shape[1];
        return true;
    }
    if (t->n_dims == 3) {
        *B = t->shape[0], *R = t->shape[1], *C = t->shape[2];
        return true;
    }
    return false;
}

lisa_status lisa_cpu_matmul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b, bool trans_b) {
    char s1[96], s2[96], s3[96];
    LISA_TRY(lisa_cpu_check_f32("matmul", "a", a, true));
    LISA_TRY(lisa_cpu_check_f32("matmul", "b", b, true));
    LISA_TRY(lisa_cpu_check_f32("matmul", "y", y, true));
    int64_t Ba, M, K, Bb, Kb, N;
    bool ok = mm_dims(a, &Ba, &M, &K) && mm_dims(b, &Bb, &Kb, &N);
    if (ok && trans_b) {
        int64_t t = Kb;
        Kb = N, N = t;
    }
    ok = ok && Kb == K && (Ba == Bb || Ba == 1 || Bb == 1);
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "matmul: a %s and b %s%s do not agree", lisa_tensor_shape_str(a, s1, sizeof s1),
                         lisa_tensor_shape_str(b, s2, sizeof s2), trans_b ? " (transposed)" : "");
    const int64_t B = Ba > Bb ? Ba : Bb;
    const int32_t y_dims = a->n_dims > b->n_dims ? a->n_dims : b->n_dims;
    bool y_ok = y->n_dims == y_dims && y->shape[y_dims - 2] == M && y->shape[y_dims - 1] == N &&
                (y_dims == 2 || y->shape[0] == B);
    if (!y_ok)
        return lisa_fail(LISA_ERR_SHAPE, "matmul: y %s, want [%lld, %lld, %lld] (batch dim only if a or b has one) for a %s, b %s",
                         lisa_tensor_shape_str(y, s1, sizeof s1), (long long)B, (long long)M, (long long)N,
                         lisa_tensor_shape_str(a, s2, sizeof s2), lisa_tensor_shape_str(b, s3, sizeof s3));
    LISA_TRY(lisa_cpu_check_no_overlap("matmul", "a", y, a));
    LISA_TRY(lisa_cpu_check_no_overlap("matmul", "b", y, b));
    if (B == 0 || M == 0 || N == 0) return LISA_OK;
    float *yd = y->data;
    if (K == 0) {
        memset(yd, 0, lisa_tensor_nbytes(y));
        return LISA_OK;
    }
    const float *ad = a->data, *bd = b->data;
    const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    const int ldb = trans_b ? (int)K : (int)N;
    if (Bb == 1) {
        /* One b for every batch: a is [B·M, K] rows, y is [B·M, N] rows, a single sgemm. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)(Ba * M), (int)N, (int)K, 1.0f, ad, (int)K, bd, ldb, 0.0f, yd,
                    (int)N);
        return LISA_OK;
    }
    for (int64_t i = 0; i < B; i++) {
        const float *ai = ad + (Ba == 1 ? 0 : i * M * K);
        const float *bi = bd + i * K * N;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)M, (int)N, (int)K, 1.0f, ai, (int)K, bi, ldb, 0.0f,
                    yd + i * M * N, (int)N);
    }
    return LISA_OK;
}
