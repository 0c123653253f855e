/* tests/test_ops_conv.c — CONV2D and CONV_TRANSPOSE2D_K2S2 against direct double loops written
 * from the PyTorch definitions (cross-correlation with zero padding; transposed conv as the
 * scatter y[o, 2i+di, 2j+dj] += x[c, i, j]·w[c, o, di, dj]). Small scratch arenas force the
 * pixel- and channel-blocked paths.
 *
 * Tolerance: F32 sgemm over Kc = Ci·kh·kw terms of inputs in [-1, 1]:
 * |got − ref| <= 2e-6·sqrt(Kc) + 1e-5·|ref|. */
#include "ops_testutil.h"

#include <math.h>

static double *ref_conv(const lisa_tensor *x, const lisa_tensor *w, const lisa_tensor *b, int stride, int pad,
                        int64_t Ho, int64_t Wo) {
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    double *xv = ot_values(x), *wv = ot_values(w), *bv = b ? ot_values(b) : NULL;
    double *out = malloc(sizeof(double) * (size_t)(B * Co * Ho * Wo));
    for (int64_t n = 0; n < B; n++)
        for (int64_t o = 0; o < Co; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = bv ? bv[o] : 0;
                    for (int64_t c = 0; c < Ci; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += xv[((n * Ci + c) * H + iy) * W + ix] * wv[((o * Ci + c) * kh + ky) * kw + kx];
                            }
                    out[((n * Co + o) * Ho + oy) * Wo + ox] = acc;
                }
    free(xv);
    free(wv);
    free(bv);
    return out;
}

typedef struct conv_case {
    int64_t B, Ci, H, W, Co, k;
    int stride, pad;
    lisa_dtype wdt;
    bool bias;
} conv_case;

static void check_conv(lisa_backend *be, tu_rng *r, const conv_case *c) {
    const int64_t Ho = (c->H + 2 * c->pad - c->k) / c->stride + 1, Wo = (c->W + 2 * c->pad - c->k) / c->stride + 1;
    lisa_tensor x = ot_rand(r, LISA_DTYPE_F32, 4, c->B, c->Ci, c->H, c->W, -1, 1);
    lisa_tensor w = ot_rand(r, c->wdt, 4, c->Co, c->Ci, c->k, c->k, -1, 1);
    lisa_tensor b = ot_rand(r, c->wdt, 1, c->Co, 0, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, c->B, c->Co, Ho, Wo);
    tu_poison(&y);
    OT_OK(lisa_op_conv2d(be, &y, &x, &w, c->bias ? &b : NULL, c->stride, c->pad));
    double *ref = ref_conv(&x, &w, c->bias ? &b : NULL, c->stride, c->pad, Ho, Wo);
    char what[160];
    snprintf(what, sizeof what, "conv2d x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s%d p%d %s bias=%d", (long long)c->B,
             (long long)c->Ci, (long long)c->H, (long long)c->W, (long long)c->Co, (long long)c->Ci, (long long)c->k,
             (long long)c->k, c->stride, c->pad, lisa_dtype_name(c->wdt), c->bias);
    cr_expect(tu_check_close(what, &y, ref, 2e-6 * sqrt((double)(c->Ci * c->k * c->k)), 1e-5), "%s", what);
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&w);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
}

static const conv_case CASES[] = {
    {1, 3, 64, 48, 37, 16, 16, 0, LISA_DTYPE_F32, true},   /* SAM patch embed (16x16/s16) */
    {2, 3, 42, 28, 19, 14, 14, 0, LISA_DTYPE_BF16, false}, /* CLIP patch embed (14x14/s14, no bias) */
    {1, 769, 5, 7, 37, 1, 1, 0, LISA_DTYPE_F32, false},    /* SAM neck 1x1 */
    {2, 19, 13, 11, 7, 3, 1, 1, LISA_DTYPE_F16, false},    /* SAM neck 3x3 pad 1 */
    {1, 7, 19, 17, 3, 5, 2, 2, LISA_DTYPE_F32, true},      /* odd kernel, stride and padding */
    {3, 1, 1, 1, 1, 1, 1, 0, LISA_DTYPE_BF16, true},
};

Test(ops_conv, conv2d_shapes_and_dtypes) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(70);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_conv(be, &r, &CASES[i]);
    lisa_backend_free(be);
}

Test(ops_conv, conv2d_small_scratch_blocks) {
    /* 96 KiB: the 3x3 neck case (Kc = 171) gets ~70-pixel im2col blocks; the BF16 1x1 case with
     * Kc = 769 widens its weight in channel blocks of ~15 rows */
    lisa_backend *be = ot_small_backend(96 << 10);
    tu_rng r = tu_rng_seed(71);
    const conv_case a = {2, 19, 13, 11, 7, 3, 1, 1, LISA_DTYPE_F32, true};
    const conv_case b = {1, 769, 5, 7, 37, 1, 1, 0, LISA_DTYPE_BF16, true};
    check_conv(be, &r, &a);
    check_conv(be, &r, &b);
    lisa_backend_free(be);
}

static void check_convt(lisa_backend *be, tu_rng *r, int64_t B, int64_t Ci, int64_t H, int64_t W, int64_t Co,
                        lisa_dtype wdt, bool bias) {
    lisa_tensor x = ot_rand(r, LISA_DTYPE_F32, 4, B, Ci, H, W, -1, 1);
    lisa_tensor w = ot_rand(r, wdt, 4, Ci, Co, 2, 2, -1, 1);
    lisa_tensor b = ot_rand(r, wdt, 1, Co, 0, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, B, Co, 2 * H, 2 * W);
    tu_poison(&y);
    OT_OK(lisa_op_conv_transpose2d_k2s2(be, &y, &x, &w, bias ? &b : NULL));
    double *xv = ot_values(&x), *wv = ot_values(&w), *bv = ot_values(&b);
    double *ref = calloc((size_t)(B * Co * 4 * H * W), sizeof(double));
    for (int64_t n = 0; n < B; n++)
        for (int64_t o = 0; o < Co; o++)
            for (int64_t oy = 0; oy < 2 * H; oy++)
                for (int64_t ox = 0; ox < 2 * W; ox++) {
                    double acc = bias ? bv[o] : 0;
                    for (int64_t c = 0; c < Ci; c++)
                        acc += xv[((n * Ci + c) * H + oy / 2) * W + ox / 2] * wv[((c * Co + o) * 2 + oy % 2) * 2 + ox % 2];
                    ref[((n * Co + o) * 2 * H + oy) * 2 * W + ox] = acc;
                }
    char what[128];
    snprintf(what, sizeof what, "conv_transpose2d_k2s2 x[%lld,%lld,%lld,%lld] Co=%lld %s", (long long)B, (long long)Ci,
             (long long)H, (long long)W, (long long)Co, lisa_dtype_name(wdt));
    cr_expect(tu_check_close(what, &y, ref, 2e-6 * sqrt((double)Ci), 1e-5), "%s", what);
    free(xv);
    free(wv);
    free(bv);
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&w);
    lisa_tensor_free(&b);
    lisa_tensor_free(&y);
}

Test(ops_conv, conv_transpose2d_k2s2) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(72);
    check_convt(be, &r, 2, 37, 5, 7, 19, LISA_DTYPE_F32, true);
    check_convt(be, &r, 1, 256, 8, 8, 64, LISA_DTYPE_BF16, true); /* SAM's first upscaling, smaller grid */
    check_convt(be, &r, 1, 64, 9, 3, 32, LISA_DTYPE_F16, false);
    check_convt(be, &r, 1, 1, 1, 1, 1, LISA_DTYPE_F32, true);
    lisa_backend_free(be);
    be = ot_small_backend(32 << 10); /* pixel blocks of ~100 pixels for Co·4 = 76 rows */
    check_convt(be, &r, 2, 37, 13, 19, 19, LISA_DTYPE_BF16, true);
    lisa_backend_free(be);
}

Test(ops_conv, shape_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 4, 1, 3, 32, 32), w = tu_tensor(LISA_DTYPE_F32, 4, 8, 3, 16, 16);
    lisa_tensor w_ci = tu_tensor(LISA_DTYPE_F32, 4, 8, 4, 16, 16), y = tu_tensor(LISA_DTYPE_F32, 4, 1, 8, 2, 2);
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 4, 1, 8, 3, 2), b_bad = tu_tensor(LISA_DTYPE_F32, 1, 7, 0, 0, 0);
    memset(x.data, 0, lisa_tensor_nbytes(&x));
    memset(w.data, 0, lisa_tensor_nbytes(&w));
    OT_OK(lisa_op_conv2d(be, &y, &x, &w, NULL, 16, 0));
    OT_FAILS(lisa_op_conv2d(be, &y, &x, &w_ci, NULL, 16, 0), LISA_ERR_SHAPE, "conv2d");
    OT_FAILS(lisa_op_conv2d(be, &y_bad, &x, &w, NULL, 16, 0), LISA_ERR_SHAPE, "conv2d");
    OT_FAILS(lisa_op_conv2d(be, &y, &x, &w, &b_bad, 16, 0), LISA_ERR_SHAPE, "conv2d");
    OT_FAILS(lisa_op_conv2d(be, &y, &x, &w, NULL, 0, 0), LISA_ERR_INVALID_ARG, "conv2d");
    lisa_tensor wt = tu_tensor(LISA_DTYPE_F32, 4, 3, 5, 2, 2), wt3 = tu_tensor(LISA_DTYPE_F32, 4, 3, 5, 3, 3);
    lisa_tensor yt = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 64, 63);
    OT_FAILS(lisa_op_conv_transpose2d_k2s2(be, &yt, &x, &wt, NULL), LISA_ERR_SHAPE, "conv_transpose2d_k2s2");
    OT_FAILS(lisa_op_conv_transpose2d_k2s2(be, &yt, &x, &wt3, NULL), LISA_ERR_SHAPE, "conv_transpose2d_k2s2");
    lisa_tensor_free(&x);
    lisa_tensor_free(&w);
    lisa_tensor_free(&w_ci);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&b_bad);
    lisa_tensor_free(&wt);
    lisa_tensor_free(&wt3);
    lisa_tensor_free(&yt);
    lisa_backend_free(be);
}
