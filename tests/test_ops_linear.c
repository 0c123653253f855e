/* tests/test_ops_linear.c — LINEAR and MATMUL against naive double-precision loops.
 *
 * The op runs cblas_sgemm (F32 accumulation), so the tolerance grows with the reduction length:
 * inputs are uniform in [-1, 1] and each check uses |got − ref| <= 2e-6·sqrt(K) + 1e-5·|ref|
 * (a typical F32 dot-product error is ~6e-8·sqrt(K)·|terms|; a wrong row, column, bias or
 * transposition gives errors of order 0.1 or more). BF16/F16 weights: the reference widens the
 * same stored values. */
#include "ops_testutil.h"

#include <math.h>

static double tol_k(int64_t K) { return 2e-6 * sqrt((double)K); }

/* ref[m, n] = Σ_k x[m, k]·w[n, k] + b[n], all in double. */
static double *ref_linear(const lisa_tensor *x, const lisa_tensor *w, const lisa_tensor *b) {
    const int64_t N = w->shape[0], K = w->shape[1], M = lisa_tensor_numel(x) / K;
    double *xv = ot_values(x), *wv = ot_values(w), *bv = b ? ot_values(b) : NULL;
    double *ref = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = bv ? bv[n] : 0;
            for (int64_t k = 0; k < K; k++) acc += xv[m * K + k] * wv[n * K + k];
            ref[m * N + n] = acc;
        }
    free(xv);
    free(wv);
    free(bv);
    return ref;
}

static void check_linear(lisa_backend *be, tu_rng *r, int64_t M, int64_t K, int64_t N, lisa_dtype wdt, bool bias) {
    lisa_tensor x = ot_rand(r, LISA_DTYPE_F32, 2, M, K, 0, 0, -1, 1);
    lisa_tensor w = ot_rand(r, wdt, 2, N, K, 0, 0, -1, 1);
    lisa_tensor b = ot_rand(r, wdt, 1, N, 0, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, M, N, 0, 0);
    tu_poison(&y);
    OT_OK(lisa_op_linear(be, &y, &x, &w, bias ? &b : NULL));
    double *ref = ref_linear(&x, &w, bias ? &b : NULL);
    char what[128];
    snprintf(what, sizeof what, "linear M=%lld K=%lld N=%lld w=%s bias=%d", (long long)M, (long long)K, (long long)N,
             lisa_dtype_name(wdt), bias);
    cr_expect(tu_check_close(what, &y, ref, tol_k(K), 1e-5), "%s", what);
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&w);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
}

Test(ops_linear, f32_awkward_shapes) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(10);
    const int64_t shapes[][3] = {{1, 37, 37},   {3, 769, 37},  {7, 37, 769},  {19, 769, 769}, {733, 37, 769},
                                 {733, 769, 37}, {5, 5125, 37}, {3, 37, 5125}, {2, 5125, 769}, {1, 1, 3}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        check_linear(be, &r, shapes[i][0], shapes[i][1], shapes[i][2], LISA_DTYPE_F32, i % 2 == 0);
    lisa_backend_free(be);
}

Test(ops_linear, bf16_and_f16_weights) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(11);
    const int64_t shapes[][3] = {{1, 769, 37}, {3, 37, 769}, {19, 769, 769}, {733, 37, 37}, {7, 5125, 37}, {1, 37, 5125}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_linear(be, &r, shapes[i][0], shapes[i][1], shapes[i][2], LISA_DTYPE_BF16, true);
        check_linear(be, &r, shapes[i][0], shapes[i][1], shapes[i][2], LISA_DTYPE_F16, i % 2 == 1);
    }
    lisa_backend_free(be);
}

Test(ops_linear, weight_blocks_in_small_scratch) {
    /* 64 KiB of scratch holds ~21 widened rows of K = 769: N = 769 takes ~37 sgemm blocks. */
    lisa_backend *be = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(12);
    check_linear(be, &r, 7, 769, 769, LISA_DTYPE_BF16, true);
    check_linear(be, &r, 3, 769, 37, LISA_DTYPE_F16, false);
    lisa_backend_free(be);
}

Test(ops_linear, batched_3d_input) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(13);
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 3, 2, 19, 37, 0, -1, 1);
    lisa_tensor w = ot_rand(&r, LISA_DTYPE_F32, 2, 769, 37, 0, 0, -1, 1);
    lisa_tensor b = ot_rand(&r, LISA_DTYPE_F32, 1, 769, 0, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 2, 19, 769, 0);
    tu_poison(&y);
    OT_OK(lisa_op_linear(be, &y, &x, &w, &b));
    double *ref = ref_linear(&x, &w, &b);
    cr_expect(tu_check_close("linear [2, 19, 37]", &y, ref, tol_k(37), 1e-5));
    free(ref);
    /* shape errors name the op */
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 3, 2, 19, 768, 0);
    lisa_tensor b_bad = tu_tensor(LISA_DTYPE_F32, 1, 768, 0, 0, 0);
    lisa_tensor w_bad = tu_tensor(LISA_DTYPE_F32, 2, 769, 36, 0, 0);
    lisa_tensor w_int = tu_tensor(LISA_DTYPE_I32, 2, 769, 37, 0, 0);
    OT_FAILS(lisa_op_linear(be, &y_bad, &x, &w, &b), LISA_ERR_SHAPE, "linear");
    OT_FAILS(lisa_op_linear(be, &y, &x, &w, &b_bad), LISA_ERR_SHAPE, "linear");
    OT_FAILS(lisa_op_linear(be, &y, &x, &w_bad, &b), LISA_ERR_SHAPE, "linear");
    OT_FAILS(lisa_op_linear(be, &y, &x, &w_int, &b), LISA_ERR_SHAPE, "linear");
    /* output aliasing the input is refused */
    lisa_tensor sq = ot_rand(&r, LISA_DTYPE_F32, 2, 37, 37, 0, 0, -1, 1);
    OT_FAILS(lisa_op_linear(be, &x, &x, &sq, NULL), LISA_ERR_INVALID_ARG, "linear");
    lisa_tensor_free(&x);
    lisa_tensor_free(&w);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&b_bad);
    lisa_tensor_free(&w_bad);
    lisa_tensor_free(&w_int);
    lisa_tensor_free(&sq);
    lisa_backend_free(be);
}

/* ref[i, m, n] = Σ_k a[i|0, m, k]·b[i|0, k, n] (or b[i|0, n, k] when trans_b). */
static void check_matmul(lisa_backend *be, tu_rng *r, int64_t Ba, int64_t Bb, int64_t M, int64_t K, int64_t N, bool tb,
                         bool two_d) {
    lisa_tensor a = two_d ? ot_rand(r, LISA_DTYPE_F32, 2, M, K, 0, 0, -1, 1)
                          : ot_rand(r, LISA_DTYPE_F32, 3, Ba, M, K, 0, -1, 1);
    lisa_tensor b = two_d ? (tb ? ot_rand(r, LISA_DTYPE_F32, 2, N, K, 0, 0, -1, 1) : ot_rand(r, LISA_DTYPE_F32, 2, K, N, 0, 0, -1, 1))
                          : (tb ? ot_rand(r, LISA_DTYPE_F32, 3, Bb, N, K, 0, -1, 1)
                                : ot_rand(r, LISA_DTYPE_F32, 3, Bb, K, N, 0, -1, 1));
    const int64_t B = two_d ? 1 : (Ba > Bb ? Ba : Bb);
    lisa_tensor y = two_d ? tu_tensor(LISA_DTYPE_F32, 2, M, N, 0, 0) : tu_tensor(LISA_DTYPE_F32, 3, B, M, N, 0);
    tu_poison(&y);
    OT_OK(lisa_op_matmul(be, &y, &a, &b, tb));
    double *av = ot_values(&a), *bv = ot_values(&b), *ref = malloc(sizeof(double) * (size_t)(B * M * N));
    for (int64_t i = 0; i < B; i++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                const double *ai = av + (Ba == 1 || two_d ? 0 : i) * M * K;
                const double *bi = bv + (Bb == 1 || two_d ? 0 : i) * K * N;
                double acc = 0;
                for (int64_t k = 0; k < K; k++) acc += ai[m * K + k] * (tb ? bi[n * K + k] : bi[k * N + n]);
                ref[(i * M + m) * N + n] = acc;
            }
    char what[128];
    snprintf(what, sizeof what, "matmul Ba=%lld Bb=%lld M=%lld K=%lld N=%lld trans_b=%d", (long long)Ba, (long long)Bb,
             (long long)M, (long long)K, (long long)N, tb);
    cr_expect(tu_check_close(what, &y, ref, tol_k(K), 1e-5), "%s", what);
    free(av);
    free(bv);
    free(ref);
    lisa_tensor_free(&a);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
}

Test(ops_matmul, shapes_transposes_and_broadcast) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(14);
    check_matmul(be, &r, 1, 1, 19, 37, 769, false, true);
    check_matmul(be, &r, 1, 1, 733, 37, 7, true, true);
    check_matmul(be, &r, 3, 3, 7, 769, 37, false, false);
    check_matmul(be, &r, 3, 3, 19, 37, 19, true, false);
    check_matmul(be, &r, 1, 4, 3, 37, 37, false, false); /* a broadcasts */
    check_matmul(be, &r, 4, 1, 7, 37, 19, true, false);  /* b broadcasts */
    check_matmul(be, &r, 2, 1, 1, 769, 5, false, false);
    lisa_backend_free(be);
}

Test(ops_matmul, shape_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor a = tu_tensor(LISA_DTYPE_F32, 3, 2, 7, 37, 0);
    lisa_tensor b = tu_tensor(LISA_DTYPE_F32, 3, 3, 37, 5, 0);
    lisa_tensor b2 = tu_tensor(LISA_DTYPE_F32, 3, 2, 36, 5, 0);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 2, 7, 5, 0);
    OT_FAILS(lisa_op_matmul(be, &y, &a, &b, false), LISA_ERR_SHAPE, "matmul");  /* batch 2 vs 3 */
    OT_FAILS(lisa_op_matmul(be, &y, &a, &b2, false), LISA_ERR_SHAPE, "matmul"); /* K 37 vs 36 */
    OT_FAILS(lisa_op_matmul(be, &y, &a, &b2, true), LISA_ERR_SHAPE, "matmul");
    lisa_tensor_free(&a);
    lisa_tensor_free(&b);
    lisa_tensor_free(&b2);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}
