/* tests/test_ops_window.c — WINDOW_PARTITION / WINDOW_UNPARTITION against index arithmetic
 * written here from segment_anything's window_partition (zero pad bottom/right, windows
 * row-major, tokens row-major inside) and window_unpartition (inverse, crop). Data movement only,
 * so every check is exact (atol 0, rtol 0). */
#include "ops_testutil.h"

static void check_partition(lisa_backend *be, tu_rng *r, int64_t B, int64_t H, int64_t W, int64_t C, int32_t S) {
    const int64_t nh = (H + S - 1) / S, nw = (W + S - 1) / S, NW = B * nh * nw;
    lisa_tensor x = ot_rand(r, LISA_DTYPE_F32, 4, B, H, W, C, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, NW, S, S, C);
    tu_poison(&y);
    OT_OK(lisa_op_window_partition(be, &y, &x, S));
    double *xv = ot_values(&x), *ref = malloc(sizeof(double) * (size_t)(NW * S * S * C));
    for (int64_t b = 0; b < B; b++)
        for (int64_t wy = 0; wy < nh; wy++)
            for (int64_t wx = 0; wx < nw; wx++)
                for (int64_t i = 0; i < S; i++)
                    for (int64_t j = 0; j < S; j++)
                        for (int64_t c = 0; c < C; c++) {
                            const int64_t gy = wy * S + i, gx = wx * S + j;
                            const int64_t o = ((((b * nh + wy) * nw + wx) * S + i) * S + j) * C + c;
                            ref[o] = (gy < H && gx < W) ? xv[((b * H + gy) * W + gx) * C + c] : 0.0;
                        }
    char what[96];
    snprintf(what, sizeof what, "window_partition [%lld,%lld,%lld,%lld] S=%d", (long long)B, (long long)H, (long long)W,
             (long long)C, S);
    cr_expect(tu_check_close(what, &y, ref, 0, 0), "%s", what);

    /* unpartition of random windows (padding included) against the crop */
    lisa_tensor wins = ot_rand(r, LISA_DTYPE_F32, 4, NW, S, S, C, -1, 1);
    lisa_tensor z = tu_tensor(LISA_DTYPE_F32, 4, B, H, W, C);
    tu_poison(&z);
    OT_OK(lisa_op_window_unpartition(be, &z, &wins, S));
    double *wv = ot_values(&wins), *zref = malloc(sizeof(double) * (size_t)(B * H * W * C));
    for (int64_t b = 0; b < B; b++)
        for (int64_t gy = 0; gy < H; gy++)
            for (int64_t gx = 0; gx < W; gx++)
                for (int64_t c = 0; c < C; c++)
                    zref[((b * H + gy) * W + gx) * C + c] =
                        wv[((((b * nh + gy / S) * nw + gx / S) * S + gy % S) * S + gx % S) * C + c];
    cr_expect(tu_check_close("window_unpartition", &z, zref, 0, 0), "%s", what);
    /* round trip */
    tu_poison(&z);
    OT_OK(lisa_op_window_unpartition(be, &z, &y, S));
    cr_expect(tu_check_close("partition -> unpartition", &z, xv, 0, 0), "%s", what);
    free(xv);
    free(ref);
    free(wv);
    free(zref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&wins);
    lisa_tensor_free(&z);
}

Test(ops_window, partition_unpartition) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(60);
    check_partition(be, &r, 2, 17, 23, 37, 7); /* padding on both axes */
    check_partition(be, &r, 1, 64, 64, 8, 14); /* SAM: 64 -> 70, 5x5 windows */
    check_partition(be, &r, 1, 28, 14, 3, 14); /* exact fit, no padding */
    check_partition(be, &r, 3, 1, 1, 769, 3);  /* one token per image */
    check_partition(be, &r, 1, 19, 7, 5, 19);  /* one window row */
    lisa_backend_free(be);
}

Test(ops_window, shape_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 4, 2, 17, 23, 37);
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 4, 23, 7, 7, 37); /* needs 2·3·4 = 24 windows */
    lisa_tensor y_c = tu_tensor(LISA_DTYPE_F32, 4, 24, 7, 7, 36);
    lisa_tensor x3 = tu_tensor(LISA_DTYPE_F32, 3, 17, 23, 37, 0);
    OT_FAILS(lisa_op_window_partition(be, &y_bad, &x, 7), LISA_ERR_SHAPE, "window_partition");
    OT_FAILS(lisa_op_window_partition(be, &y_c, &x, 7), LISA_ERR_SHAPE, "window_partition");
    OT_FAILS(lisa_op_window_partition(be, &y_c, &x3, 7), LISA_ERR_SHAPE, "window_partition");
    OT_FAILS(lisa_op_window_unpartition(be, &x, &y_bad, 7), LISA_ERR_SHAPE, "window_unpartition");
    OT_FAILS(lisa_op_window_unpartition(be, &x, &y_c, 7), LISA_ERR_SHAPE, "window_unpartition");
    OT_FAILS(lisa_op_window_partition(be, &y_c, &x, 0), LISA_ERR_INVALID_ARG, "window_partition");
    lisa_tensor_free(&x);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&y_c);
    lisa_tensor_free(&x3);
    lisa_backend_free(be);
}
