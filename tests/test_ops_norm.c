/* tests/test_ops_norm.c — LAYERNORM, LAYERNORM2D, RMSNORM, SOFTMAX against two-pass double
 * references written here; F32/BF16/F16 gains and biases (the reference widens the stored values);
 * in-place calls; shape errors.
 *
 * Tolerances (|got − ref| <= atol + rtol·|ref|): the ops reduce in double and round once or twice
 * to F32, so layernorm/layernorm2d use atol 1e-6, rtol 1e-6 on outputs of order 1-3; rmsnorm keeps
 * the F32 roundings of HF (variance, rsqrt, two products): atol 1e-6, rtol 1e-6; softmax
 * atol 1e-8, rtol 1e-6. */
#include "ops_testutil.h"

#include <math.h>

static const int64_t ROWS[] = {1, 3, 7, 19, 733};
static const int64_t WIDTHS[] = {37, 769};
static const lisa_dtype PDT[] = {LISA_DTYPE_F32, LISA_DTYPE_BF16, LISA_DTYPE_F16};
#define NR (sizeof ROWS / sizeof *ROWS)
#define NW (sizeof WIDTHS / sizeof *WIDTHS)

static double *ref_layernorm(const lisa_tensor *x, const lisa_tensor *g, const lisa_tensor *b, double eps) {
    const int64_t C = x->shape[x->n_dims - 1], R = lisa_tensor_numel(x) / C;
    double *v = ot_values(x), *gv = g ? ot_values(g) : NULL, *bv = b ? ot_values(b) : NULL;
    for (int64_t r = 0; r < R; r++) {
        double *row = v + r * C, mean = 0, var = 0;
        for (int64_t c = 0; c < C; c++) mean += row[c];
        mean /= (double)C;
        for (int64_t c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean);
        var /= (double)C; /* biased, like torch */
        for (int64_t c = 0; c < C; c++)
            row[c] = (row[c] - mean) / sqrt(var + eps) * (gv ? gv[c] : 1.0) + (bv ? bv[c] : 0.0);
    }
    free(gv);
    free(bv);
    return v;
}

Test(ops_norm, layernorm_shapes_dtypes_in_place) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(30);
    for (size_t i = 0; i < NR; i++)
        for (size_t j = 0; j < NW; j++)
            for (int k = 0; k < 3; k++) {
                const int64_t R = ROWS[i], C = WIDTHS[j];
                /* an offset mean and a spread that is not 1, so that mean and variance matter */
                lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, C, 0, 0, 2, 7);
                lisa_tensor g = ot_rand(&r, PDT[k], 1, C, 0, 0, 0, 0.5, 1.5);
                lisa_tensor b = ot_rand(&r, PDT[k], 1, C, 0, 0, 0, -1, 1);
                const float eps = k == 1 ? 1e-6f : 1e-5f;
                double *ref = ref_layernorm(&x, &g, &b, eps);
                lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0);
                tu_poison(&y);
                OT_OK(lisa_op_layernorm(be, &y, &x, &g, &b, eps));
                cr_expect(tu_check_close("layernorm", &y, ref, 1e-6, 1e-6), "%lldx%lld %s", (long long)R, (long long)C,
                          lisa_dtype_name(PDT[k]));
                OT_OK(lisa_op_layernorm(be, &x, &x, &g, &b, eps));
                cr_expect(tu_check_close("layernorm in-place", &x, ref, 1e-6, 1e-6));
                free(ref);
                lisa_tensor_free(&x);
                lisa_tensor_free(&g);
                lisa_tensor_free(&b);
                lisa_tensor_free(&y);
            }
    lisa_backend_free(be);
}

Test(ops_norm, layernorm_without_affine_and_errors) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(31);
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 3, 2, 7, 769, 0, -50, 50);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 2, 7, 769, 0);
    double *ref = ref_layernorm(&x, NULL, NULL, 1e-5);
    tu_poison(&y);
    OT_OK(lisa_op_layernorm(be, &y, &x, NULL, NULL, 1e-5f));
    cr_expect(tu_check_close("layernorm no affine", &y, ref, 1e-6, 1e-6));
    free(ref);
    lisa_tensor g_bad = tu_tensor(LISA_DTYPE_F32, 1, 768, 0, 0, 0);
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 3, 2, 7, 768, 0);
    lisa_tensor g_int = tu_tensor(LISA_DTYPE_I32, 1, 769, 0, 0, 0);
    OT_FAILS(lisa_op_layernorm(be, &y, &x, &g_bad, NULL, 1e-5f), LISA_ERR_SHAPE, "layernorm");
    OT_FAILS(lisa_op_layernorm(be, &y_bad, &x, NULL, NULL, 1e-5f), LISA_ERR_SHAPE, "layernorm");
    OT_FAILS(lisa_op_layernorm(be, &y, &x, &g_int, NULL, 1e-5f), LISA_ERR_SHAPE, "layernorm");
    lisa_tensor xp;
    const int32_t perm[3] = {0, 2, 1};
    cr_assert(lisa_tensor_permute(&xp, &x, perm) == LISA_OK);
    lisa_tensor yp = tu_tensor(LISA_DTYPE_F32, 3, 2, 769, 7, 0);
    OT_FAILS(lisa_op_layernorm(be, &yp, &xp, NULL, NULL, 1e-5f), LISA_ERR_SHAPE, "layernorm"); /* not contiguous */
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&g_bad);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&g_int);
    lisa_tensor_free(&yp);
    lisa_backend_free(be);
}

/* SAM LayerNorm2d: over channels per pixel of [B, C, H, W]. */
static double *ref_layernorm2d(const lisa_tensor *x, const lisa_tensor *g, const lisa_tensor *b, double eps) {
    const int64_t B = x->n_dims == 4 ? x->shape[0] : 1, C = x->shape[x->n_dims - 3];
    const int64_t P = x->shape[x->n_dims - 2] * x->shape[x->n_dims - 1];
    double *v = ot_values(x), *gv = ot_values(g), *bv = ot_values(b);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t p = 0; p < P; p++) {
            double mean = 0, var = 0;
            for (int64_t c = 0; c < C; c++) mean += v[(bi * C + c) * P + p];
            mean /= (double)C;
            for (int64_t c = 0; c < C; c++) var += pow(v[(bi * C + c) * P + p] - mean, 2);
            var /= (double)C;
            for (int64_t c = 0; c < C; c++) {
                double *e = &v[(bi * C + c) * P + p];
                *e = gv[c] * (*e - mean) / sqrt(var + eps) + bv[c];
            }
        }
    free(gv);
    free(bv);
    return v;
}

Test(ops_norm, layernorm2d) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(32);
    /* [B, C, H, W]: pixel counts below, at and above the op's 64-pixel block; C 37 and 256 */
    const int64_t shapes[][4] = {{1, 37, 1, 1}, {2, 37, 7, 11}, {1, 256, 8, 8}, {3, 19, 13, 5}, {1, 256, 19, 7}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int k = 0; k < 3; k++) {
            const int64_t *s = shapes[i];
            const bool three_d = s[0] == 1 && k == 2; /* also the [C, H, W] form */
            lisa_tensor x = three_d ? ot_rand(&r, LISA_DTYPE_F32, 3, s[1], s[2], s[3], 0, -4, 6)
                                    : ot_rand(&r, LISA_DTYPE_F32, 4, s[0], s[1], s[2], s[3], -4, 6);
            lisa_tensor g = ot_rand(&r, PDT[k], 1, s[1], 0, 0, 0, 0.5, 1.5);
            lisa_tensor b = ot_rand(&r, PDT[k], 1, s[1], 0, 0, 0, -1, 1);
            double *ref = ref_layernorm2d(&x, &g, &b, 1e-6);
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, x.n_dims, x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
            tu_poison(&y);
            OT_OK(lisa_op_layernorm2d(be, &y, &x, &g, &b, 1e-6f));
            cr_expect(tu_check_close("layernorm2d", &y, ref, 1e-6, 1e-6), "shape %zu dtype %s", i, lisa_dtype_name(PDT[k]));
            OT_OK(lisa_op_layernorm2d(be, &x, &x, &g, &b, 1e-6f));
            cr_expect(tu_check_close("layernorm2d in-place", &x, ref, 1e-6, 1e-6));
            free(ref);
            lisa_tensor_free(&x);
            lisa_tensor_free(&g);
            lisa_tensor_free(&b);
            lisa_tensor_free(&y);
        }
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 2, 37, 5, 0, 0), g = tu_tensor(LISA_DTYPE_F32, 1, 36, 0, 0, 0);
    OT_FAILS(lisa_op_layernorm2d(be, &x, &x, NULL, NULL, 1e-6f), LISA_ERR_SHAPE, "layernorm2d"); /* 2-D */
    lisa_tensor x4 = tu_tensor(LISA_DTYPE_F32, 4, 1, 37, 2, 2);
    OT_FAILS(lisa_op_layernorm2d(be, &x4, &x4, &g, NULL, 1e-6f), LISA_ERR_SHAPE, "layernorm2d");
    lisa_tensor_free(&x);
    lisa_tensor_free(&g);
    lisa_tensor_free(&x4);
    lisa_backend_free(be);
}

/* HF LlamaRMSNorm in double: y = g · x / sqrt(mean(x²) + eps). */
static double *ref_rmsnorm(const lisa_tensor *x, const lisa_tensor *g, double eps) {
    const int64_t C = x->shape[x->n_dims - 1], R = lisa_tensor_numel(x) / C;
    double *v = ot_values(x), *gv = ot_values(g);
    for (int64_t r = 0; r < R; r++) {
        double ms = 0;
        for (int64_t c = 0; c < C; c++) ms += v[r * C + c] * v[r * C + c];
        ms /= (double)C;
        for (int64_t c = 0; c < C; c++) v[r * C + c] = gv[c] * (v[r * C + c] / sqrt(ms + eps));
    }
    free(gv);
    return v;
}

Test(ops_norm, rmsnorm_shapes_dtypes_in_place) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(33);
    for (size_t i = 0; i < NR; i++)
        for (size_t j = 0; j < NW; j++)
            for (int k = 0; k < 3; k++) {
                const int64_t R = ROWS[i], C = WIDTHS[j];
                lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, C, 0, 0, -3, 2);
                lisa_tensor g = ot_rand(&r, PDT[k], 1, C, 0, 0, 0, -2, 2);
                double *ref = ref_rmsnorm(&x, &g, 1e-6);
                lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0);
                tu_poison(&y);
                OT_OK(lisa_op_rmsnorm(be, &y, &x, &g, 1e-6f));
                cr_expect(tu_check_close("rmsnorm", &y, ref, 1e-6, 1e-6), "%lldx%lld %s", (long long)R, (long long)C,
                          lisa_dtype_name(PDT[k]));
                OT_OK(lisa_op_rmsnorm(be, &x, &x, &g, 1e-6f));
                cr_expect(tu_check_close("rmsnorm in-place", &x, ref, 1e-6, 1e-6));
                free(ref);
                lisa_tensor_free(&x);
                lisa_tensor_free(&g);
                lisa_tensor_free(&y);
            }
    /* eps matters for a tiny row: mean(x²) = 1e-8 with eps 1e-6 */
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 2, 1, 37, 0, 0), g = tu_tensor(LISA_DTYPE_F32, 1, 37, 0, 0, 0);
    for (int c = 0; c < 37; c++) ((float *)x.data)[c] = (c % 2 ? 1e-4f : -1e-4f), ((float *)g.data)[c] = 1.0f;
    double *ref = ref_rmsnorm(&x, &g, 1e-6);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 1, 37, 0, 0);
    OT_OK(lisa_op_rmsnorm(be, &y, &x, &g, 1e-6f));
    cr_expect(tu_check_close("rmsnorm eps", &y, ref, 1e-7, 1e-6));
    free(ref);
    lisa_tensor g_bad = tu_tensor(LISA_DTYPE_F32, 1, 36, 0, 0, 0);
    OT_FAILS(lisa_op_rmsnorm(be, &y, &x, &g_bad, 1e-6f), LISA_ERR_SHAPE, "rmsnorm");
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 2, 2, 37, 0, 0);
    OT_FAILS(lisa_op_rmsnorm(be, &y_bad, &x, &g, 1e-6f), LISA_ERR_SHAPE, "rmsnorm");
    lisa_tensor_free(&x);
    lisa_tensor_free(&g);
    lisa_tensor_free(&y);
    lisa_tensor_free(&g_bad);
    lisa_tensor_free(&y_bad);
    lisa_backend_free(be);
}

static double *ref_softmax(const lisa_tensor *x) {
    const int64_t C = x->shape[x->n_dims - 1], R = lisa_tensor_numel(x) / C;
    double *v = ot_values(x);
    for (int64_t r = 0; r < R; r++) {
        double *row = v + r * C, mx = -INFINITY, sum = 0;
        for (int64_t c = 0; c < C; c++) mx = row[c] > mx ? row[c] : mx;
        if (isinf(mx)) { /* all −inf: torch gives NaN */
            for (int64_t c = 0; c < C; c++) row[c] = NAN;
            continue;
        }
        for (int64_t c = 0; c < C; c++) sum += exp(row[c] - mx);
        for (int64_t c = 0; c < C; c++) row[c] = exp(row[c] - mx) / sum;
    }
    return v;
}

Test(ops_norm, softmax) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(34);
    for (size_t i = 0; i < NR; i++)
        for (size_t j = 0; j < NW; j++) {
            const int64_t R = ROWS[i], C = WIDTHS[j];
            /* large offsets: without max subtraction exp() overflows even in double */
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, C, 0, 0, 790, 810);
            float *xd = x.data;
            for (int64_t e = 0; e < R * C; e += 5) xd[e] = -INFINITY; /* masked entries */
            if (R > 2)
                for (int64_t c = 0; c < C; c++) xd[2 * C + c] = -INFINITY; /* a fully masked row -> NaN */
            double *ref = ref_softmax(&x);
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0);
            tu_poison(&y);
            OT_OK(lisa_op_softmax(be, &y, &x));
            cr_expect(tu_check_close("softmax", &y, ref, 1e-8, 1e-6), "%lldx%lld", (long long)R, (long long)C);
            OT_OK(lisa_op_softmax(be, &x, &x));
            cr_expect(tu_check_close("softmax in-place", &x, ref, 1e-8, 1e-6));
            free(ref);
            lisa_tensor_free(&x);
            lisa_tensor_free(&y);
        }
    /* a tiny hand-checked row: softmax([0, ln 3]) = [1/4, 3/4] */
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 1, 2, 0, 0, 0), y = tu_tensor(LISA_DTYPE_F32, 1, 2, 0, 0, 0);
    ((float *)x.data)[0] = 0.0f, ((float *)x.data)[1] = (float)log(3.0);
    OT_OK(lisa_op_softmax(be, &y, &x));
    const double want[2] = {0.25, 0.75};
    cr_expect(tu_check_close("softmax hand", &y, want, 1e-7, 0));
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 1, 3, 0, 0, 0);
    OT_FAILS(lisa_op_softmax(be, &y_bad, &x), LISA_ERR_SHAPE, "softmax");
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y_bad);
    lisa_backend_free(be);
}
