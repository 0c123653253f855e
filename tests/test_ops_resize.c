/* tests/test_ops_resize.c — BILINEAR against (1) values produced by real torch 1.13
 * F.interpolate(mode="bilinear", align_corners=False) on CPU float32 (tests/golden/gen_bilinear.py,
 * committed in tests/data/golden/bilinear.txt), and (2) the docs/parity.md §3 formula evaluated in
 * double here, on more shapes (leading dims, identity axes).
 *
 * Tolerances: vs torch, exact (atol 0, rtol 0) — the op reproduces torch's F32 scale, double source
 * index, F32 lambdas, F32 weights λh·λw and a double 4-term sum; vs the double formula, atol 1e-5,
 * rtol 1e-6 (inputs in ±10). */
#include "ops_testutil.h"

#include <math.h>

/* The integer-hash input of gen_bilinear.py, bit-identical to its numpy expression. */
static float golden_input(int64_t i, int64_t j) {
    int64_t k = (i * 7919 + j * 104729 + (i * j) % 977) % 2003;
    return (float)((double)k / 100.0 - 10.0);
}

Test(ops_resize, matches_torch_1_13) {
    lisa_backend *be = tu_cpu_backend();
    FILE *f = ot_open_golden("bilinear.txt");
    char line[256];
    int n_cases = 0;
    while (ot_next_line(f, line, sizeof line)) {
        long long H, W, Ho, Wo;
        int n;
        cr_assert(sscanf(line, "case %lld %lld %lld %lld %d", &H, &W, &Ho, &Wo, &n) == 5, "bad line '%s'", line);
        lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 4, 1, 1, H, W), y = tu_tensor(LISA_DTYPE_F32, 4, 1, 1, Ho, Wo);
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) ((float *)x.data)[i * W + j] = golden_input(i, j);
        tu_poison(&y);
        OT_OK(lisa_op_bilinear(be, &y, &x));
        int bad = 0;
        for (int s = 0; s < n; s++) {
            cr_assert(ot_next_line(f, line, sizeof line));
            long long oy, ox;
            unsigned bits;
            cr_assert(sscanf(line, "%lld %lld %*s %x", &oy, &ox, &bits) == 3, "bad line '%s'", line);
            float want, got = ((float *)y.data)[oy * Wo + ox];
            memcpy(&want, &bits, 4);
            if (memcmp(&got, &want, 4) != 0 && bad++ < 5)
                fprintf(stderr, "bilinear %lldx%lld->%lldx%lld at (%lld, %lld): got %.9g want %.9g\n", H, W, Ho, Wo, oy, ox,
                        got, want);
        }
        cr_expect_eq(bad, 0, "bilinear %lldx%lld -> %lldx%lld: %d of %d samples differ from torch", H, W, Ho, Wo, bad, n);
        lisa_tensor_free(&x);
        lisa_tensor_free(&y);
        n_cases++;
    }
    fclose(f);
    cr_expect_eq(n_cases, 7);
    lisa_backend_free(be);
}

/* docs/parity.md §3 per axis, in double apart from the F32 scale. */
static void ref_axis(int64_t in, int64_t out, int64_t d, int64_t *i0, int64_t *i1, double *l1) {
    if (in == out) {
        *i0 = *i1 = d, *l1 = 0;
        return;
    }
    double src = (double)((float)in / (float)out) * (d + 0.5) - 0.5;
    if (src < 0) src = 0;
    *i0 = (int64_t)floor(src);
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = src - (double)*i0;
}

static void check_bilinear(lisa_backend *be, tu_rng *r, int32_t nd, int64_t N0, int64_t N1, int64_t H, int64_t W,
                           int64_t Ho, int64_t Wo) {
    lisa_tensor x = nd == 4 ? ot_rand(r, LISA_DTYPE_F32, 4, N0, N1, H, W, -10, 10) : ot_rand(r, LISA_DTYPE_F32, 2, H, W, 0, 0, -10, 10);
    lisa_tensor y = nd == 4 ? tu_tensor(LISA_DTYPE_F32, 4, N0, N1, Ho, Wo) : tu_tensor(LISA_DTYPE_F32, 2, Ho, Wo, 0, 0);
    tu_poison(&y);
    OT_OK(lisa_op_bilinear(be, &y, &x));
    const int64_t N = nd == 4 ? N0 * N1 : 1;
    double *xv = ot_values(&x), *ref = malloc(sizeof(double) * (size_t)(N * Ho * Wo));
    for (int64_t n = 0; n < N; n++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t y0, y1, x0, x1;
                double ly, lx;
                ref_axis(H, Ho, oy, &y0, &y1, &ly);
                ref_axis(W, Wo, ox, &x0, &x1, &lx);
                const double *p = xv + n * H * W;
                ref[(n * Ho + oy) * Wo + ox] = (1 - ly) * ((1 - lx) * p[y0 * W + x0] + lx * p[y0 * W + x1]) +
                                               ly * ((1 - lx) * p[y1 * W + x0] + lx * p[y1 * W + x1]);
            }
    char what[96];
    snprintf(what, sizeof what, "bilinear %lldx%lld -> %lldx%lld", (long long)H, (long long)W, (long long)Ho, (long long)Wo);
    cr_expect(tu_check_close(what, &y, ref, 1e-5, 1e-6), "%s", what);
    free(xv);
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
}

Test(ops_resize, formula_shapes) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(80);
    check_bilinear(be, &r, 4, 2, 3, 3, 5, 7, 4);
    check_bilinear(be, &r, 4, 1, 3, 37, 19, 733, 37); /* identity width */
    check_bilinear(be, &r, 2, 1, 1, 64, 64, 256, 256);
    check_bilinear(be, &r, 2, 1, 1, 256, 256, 61, 97);
    check_bilinear(be, &r, 4, 1, 1, 1, 1, 7, 3);
    check_bilinear(be, &r, 2, 1, 1, 19, 769, 19, 769); /* equal sizes: a copy */
    lisa_backend_free(be);
}

Test(ops_resize, shape_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 4, 2, 3, 5, 5), y = tu_tensor(LISA_DTYPE_F32, 4, 2, 4, 9, 9);
    lisa_tensor y3 = tu_tensor(LISA_DTYPE_F32, 3, 2, 9, 9, 0), x1 = tu_tensor(LISA_DTYPE_F32, 1, 5, 0, 0, 0);
    OT_FAILS(lisa_op_bilinear(be, &y, &x), LISA_ERR_SHAPE, "bilinear");
    OT_FAILS(lisa_op_bilinear(be, &y3, &x), LISA_ERR_SHAPE, "bilinear");
    OT_FAILS(lisa_op_bilinear(be, &x1, &x1), LISA_ERR_SHAPE, "bilinear");
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y3);
    lisa_tensor_free(&x1);
    lisa_backend_free(be);
}
