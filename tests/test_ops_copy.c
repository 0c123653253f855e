/* tests/test_ops_copy.c — COPY: strided copies (permutes, concatenation into narrowed views) and
 * dtype conversions, against references computed independently in the test:
 * values read element by element through the logical index, and a frexp/nearbyint model of
 * round-to-nearest-even for BF16 (8 significant bits) and F16 (11 bits, subnormals in 2^-24
 * steps, overflow to Inf). */
#include "ops_testutil.h"

#include <math.h>

static const int64_t ROWS[] = {1, 3, 7, 19, 733};
static const int64_t WIDTHS[] = {37, 769};

/* RNE of v to `bits` significant bits (nearbyint rounds half to even in the default mode). */
static double round_sig(double v, int bits) {
    if (v == 0 || !isfinite(v)) return v;
    int e;
    double m = frexp(v, &e);
    return ldexp(nearbyint(ldexp(m, bits)), e - bits);
}

static double ref_bf16(double v) { return isnan(v) ? NAN : round_sig(v, 8); }

static double ref_f16(double v) {
    if (isnan(v) || isinf(v)) return v;
    if (fabs(v) < ldexp(1, -14)) return nearbyint(ldexp(v, 24)) / ldexp(1, 24); /* subnormal grid */
    double r = round_sig(v, 11);
    return fabs(r) > 65504 ? copysign(INFINITY, v) : r;
}

Test(ops_copy, permuted_output_and_input) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(1);
    const int32_t perm[2] = {1, 0};
    for (size_t i = 0; i < sizeof ROWS / sizeof *ROWS; i++)
        for (size_t j = 0; j < sizeof WIDTHS / sizeof *WIDTHS; j++) {
            const int64_t R = ROWS[i], W = WIDTHS[j];
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -3, 3);
            double *ref = ot_values(&x);
            /* y: logical [R, W] view of a [W, R] buffer (strided output) */
            lisa_tensor ybuf = tu_tensor(LISA_DTYPE_F32, 2, W, R, 0, 0), y;
            cr_assert(lisa_tensor_permute(&y, &ybuf, perm) == LISA_OK);
            tu_poison(&ybuf);
            OT_OK(lisa_op_copy(be, &y, &x));
            cr_expect(tu_check_close("copy to permuted", &y, ref, 0, 0)); /* exact */
            /* and back: strided input, contiguous output */
            lisa_tensor z = tu_tensor(LISA_DTYPE_F32, 2, R, W, 0, 0);
            tu_poison(&z);
            OT_OK(lisa_op_copy(be, &z, &y));
            cr_expect(tu_check_close("copy from permuted", &z, ref, 0, 0));
            free(ref);
            lisa_tensor_free(&x);
            lisa_tensor_free(&ybuf);
            lisa_tensor_free(&z);
        }
    lisa_backend_free(be);
}

Test(ops_copy, head_transpose_4d) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(2);
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 19, 3, 37, -1, 1), xp; /* [B, T, H, D] */
    const int32_t perm[4] = {0, 2, 1, 3};
    cr_assert(lisa_tensor_permute(&xp, &x, perm) == LISA_OK); /* [B, H, T, D] view */
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 2, 3, 19, 37);
    tu_poison(&y);
    OT_OK(lisa_op_copy(be, &y, &xp));
    double *ref = malloc(sizeof(double) * 2 * 3 * 19 * 37);
    for (int64_t b = 0; b < 2; b++)
        for (int64_t h = 0; h < 3; h++)
            for (int64_t t = 0; t < 19; t++)
                for (int64_t d = 0; d < 37; d++) {
                    int64_t idx[4] = {b, t, h, d};
                    ref[((b * 3 + h) * 19 + t) * 37 + d] = lisa_tensor_get(&x, idx);
                }
    cr_expect(tu_check_close("copy [B,T,H,D] -> [B,H,T,D]", &y, ref, 0, 0));
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

Test(ops_copy, concatenate_into_narrowed_views) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(3);
    lisa_tensor a = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 7, 37, 0, -1, 1);
    lisa_tensor b = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 7, 19, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 3, 7, 56, 0), ya, yb;
    tu_poison(&y);
    cr_assert(lisa_tensor_narrow(&ya, &y, 2, 0, 37) == LISA_OK);
    cr_assert(lisa_tensor_narrow(&yb, &y, 2, 37, 19) == LISA_OK);
    OT_OK(lisa_op_copy(be, &ya, &a));
    OT_OK(lisa_op_copy(be, &yb, &b));
    double *ref = malloc(sizeof(double) * 3 * 7 * 56);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t t = 0; t < 7; t++)
            for (int64_t c = 0; c < 56; c++) {
                int64_t idx[3] = {i, t, c < 37 ? c : c - 37};
                ref[(i * 7 + t) * 56 + c] = lisa_tensor_get(c < 37 ? &a : &b, idx);
            }
    cr_expect(tu_check_close("concat", &y, ref, 0, 0));
    free(ref);
    lisa_tensor_free(&a);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

Test(ops_copy, f32_to_bf16_and_f16_round_to_nearest_even) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(4);
    const lisa_dtype dts[2] = {LISA_DTYPE_BF16, LISA_DTYPE_F16};
    for (size_t i = 0; i < sizeof ROWS / sizeof *ROWS; i++)
        for (int k = 0; k < 2; k++) {
            const int64_t R = ROWS[i], W = 769;
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -4, 4);
            float *xd = x.data;
            /* specials and ties in the first row */
            const float special[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                                     1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65519.0f, 65520.0f, 1e-7f,
                                     -3e-5f, 3.0e38f};
            for (size_t s = 0; s < sizeof special / sizeof *special && (int64_t)s < W; s++) xd[s] = special[s];
            double *ref = ot_values(&x);
            for (int64_t e = 0; e < R * W; e++) ref[e] = dts[k] == LISA_DTYPE_BF16 ? ref_bf16(ref[e]) : ref_f16(ref[e]);
            lisa_tensor y = tu_tensor(dts[k], 2, R, W, 0, 0);
            tu_poison(&y);
            OT_OK(lisa_op_copy(be, &y, &x));
            cr_expect(tu_check_close(dts[k] == LISA_DTYPE_BF16 ? "f32->bf16" : "f32->f16", &y, ref, 0, 0));
            free(ref);
            lisa_tensor_free(&x);
            lisa_tensor_free(&y);
        }
    lisa_backend_free(be);
}

Test(ops_copy, half_to_f32_and_bf16_to_f16) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(5);
    /* Every BF16 bit pattern widened to F32: exact, value = bits << 16 as an F32. */
    lisa_tensor hb = tu_tensor(LISA_DTYPE_BF16, 2, 256, 256, 0, 0);
    for (uint32_t u = 0; u < 65536; u++) ((uint16_t *)hb.data)[u] = (uint16_t)u;
    lisa_tensor yf = tu_tensor(LISA_DTYPE_F32, 2, 256, 256, 0, 0);
    tu_poison(&yf);
    OT_OK(lisa_op_copy(be, &yf, &hb));
    bool ok = true;
    for (uint32_t u = 0; u < 65536 && ok; u++) {
        uint32_t want = u << 16, got;
        memcpy(&got, (float *)yf.data + u, 4);
        bool nan_ok = isnan(((float *)yf.data)[u]) && ((want & 0x7f800000u) == 0x7f800000u) && (want & 0x7fffffu);
        ok = got == want || nan_ok;
        cr_expect(ok, "bf16 0x%04x -> f32 0x%08x, want 0x%08x", u, got, want);
    }
    /* F16 [19, 37] -> F32 via a permuted input; values: random F32 rounded to F16 by the reference. */
    lisa_tensor h = tu_tensor(LISA_DTYPE_F16, 2, 37, 19, 0, 0), hp;
    tu_fill_uniform(&h, &r, -100, 100); /* lisa_tensor_set rounds to F16 */
    const int32_t perm[2] = {1, 0};
    cr_assert(lisa_tensor_permute(&hp, &h, perm) == LISA_OK);
    double *ref = ot_values(&hp);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 19, 37, 0, 0);
    tu_poison(&y);
    OT_OK(lisa_op_copy(be, &y, &hp));
    cr_expect(tu_check_close("f16 -> f32 (strided)", &y, ref, 0, 0));
    /* BF16 -> F16: one rounding of the exact BF16 value */
    lisa_tensor b = ot_rand(&r, LISA_DTYPE_BF16, 2, 7, 769, 0, 0, -300, 300);
    double *rb = ot_values(&b);
    for (int64_t e = 0; e < 7 * 769; e++) rb[e] = ref_f16(rb[e]);
    lisa_tensor y16 = tu_tensor(LISA_DTYPE_F16, 2, 7, 769, 0, 0);
    tu_poison(&y16);
    OT_OK(lisa_op_copy(be, &y16, &b));
    cr_expect(tu_check_close("bf16 -> f16", &y16, rb, 0, 0));
    free(ref);
    free(rb);
    lisa_tensor_free(&hb);
    lisa_tensor_free(&yf);
    lisa_tensor_free(&h);
    lisa_tensor_free(&y);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y16);
    lisa_backend_free(be);
}

Test(ops_copy, integers) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor a = tu_tensor(LISA_DTYPE_I32, 2, 19, 37, 0, 0), ap;
    for (int64_t i = 0; i < 19 * 37; i++) ((int32_t *)a.data)[i] = (int32_t)(i * 2654435761u) - 7;
    const int32_t perm[2] = {1, 0};
    cr_assert(lisa_tensor_permute(&ap, &a, perm) == LISA_OK);
    lisa_tensor y = tu_tensor(LISA_DTYPE_I64, 2, 37, 19, 0, 0);
    tu_poison(&y);
    OT_OK(lisa_op_copy(be, &y, &ap));
    for (int64_t i = 0; i < 37; i++)
        for (int64_t j = 0; j < 19; j++)
            cr_expect_eq(((int64_t *)y.data)[i * 19 + j], (int64_t)((int32_t *)a.data)[j * 37 + i]);
    lisa_tensor z = tu_tensor(LISA_DTYPE_I32, 2, 37, 19, 0, 0);
    tu_poison(&z);
    OT_OK(lisa_op_copy(be, &z, &y));
    for (int64_t i = 0; i < 37 * 19; i++) cr_expect_eq(((int32_t *)z.data)[i], (int32_t)((int64_t *)y.data)[i]);
    lisa_tensor_free(&a);
    lisa_tensor_free(&y);
    lisa_tensor_free(&z);
    lisa_backend_free(be);
}

Test(ops_copy, errors_name_the_op) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 2, 3, 37, 0, 0);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 3, 36, 0, 0);
    lisa_tensor yi = tu_tensor(LISA_DTYPE_I32, 2, 3, 37, 0, 0);
    tu_poison(&x);
    OT_FAILS(lisa_op_copy(be, &y, &x), LISA_ERR_SHAPE, "copy");
    OT_FAILS(lisa_op_copy(be, &yi, &x), LISA_ERR_SHAPE, "copy");
    lisa_tensor a, b;
    cr_assert(lisa_tensor_narrow(&a, &x, 1, 0, 30) == LISA_OK);
    cr_assert(lisa_tensor_narrow(&b, &x, 1, 5, 30) == LISA_OK);
    OT_FAILS(lisa_op_copy(be, &b, &a), LISA_ERR_INVALID_ARG, "copy");
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&yi);
    lisa_backend_free(be);
}
