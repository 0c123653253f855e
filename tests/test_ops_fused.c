/* tests/test_ops_fused.c — the fused ops of kernels/ops.def (LINEAR_EX, ADD_RMSNORM, ADD_LAYERNORM,
 * LAYERNORM_WINDOW_PARTITION, WINDOW_UNPARTITION_ADD, ROPE_QK, ATTENTION_RELPOS) on the CPU backend.
 *
 * The CPU backend must give exactly the bits of the composition each op names (the models call the
 * fused ops; the CPU stays the bitwise reference): every case compares the fused call with the
 * composition of the unfused ops bit for bit (memcmp), on awkward shapes, poisoned outputs, BF16
 * weights, a small scratch arena (LINEAR's blocking paths) and every allowed aliasing (sum = x,
 * y = residual); a double reference checks the epilogues' math once more (atol 1e-5, rtol 1e-5 at
 * K <= 769). Errors name the op. */
#include "ops_testutil.h"

#include <math.h>

static bool same_bits(const lisa_tensor *a, const lisa_tensor *b) {
    return lisa_tensor_same_shape(a, b) && lisa_tensor_is_contiguous(a) && lisa_tensor_is_contiguous(b) &&
           memcmp(a->data, b->data, lisa_tensor_nbytes(a)) == 0;
}

static lisa_tensor copy_of(const lisa_tensor *t) {
    lisa_tensor c = tu_tensor(t->dtype, t->n_dims, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    memcpy(c.data, t->data, lisa_tensor_nbytes(t));
    return c;
}

static lisa_status act_op(lisa_backend *be, lisa_tensor *y, lisa_act act) {
    switch (act) {
    case LISA_ACT_RELU: return lisa_op_relu(be, y, y);
    case LISA_ACT_GELU: return lisa_op_gelu(be, y, y);
    case LISA_ACT_QUICK_GELU: return lisa_op_quick_gelu(be, y, y);
    default: return LISA_OK;
    }
}

static double act_ref(double v, lisa_act act) {
    switch (act) {
    case LISA_ACT_RELU: return v > 0 ? v : 0;
    case LISA_ACT_GELU: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case LISA_ACT_QUICK_GELU: return v / (1 + exp(-1.702 * v));
    default: return v;
    }
}

/* ---- LINEAR_EX ---------------------------------------------------------------------------------- */

Test(ops_fused, linear_ex_is_linear_then_activation_bitwise) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(90);
    const int64_t shapes[][3] = {{1, 37, 5}, {7, 769, 37}, {19, 64, 129}, {3, 5, 1}};
    const lisa_act acts[] = {LISA_ACT_NONE, LISA_ACT_RELU, LISA_ACT_GELU, LISA_ACT_QUICK_GELU};
    for (size_t si = 0; si < 4; si++)
        for (int wdt = 0; wdt < 2; wdt++)
            for (size_t ai = 0; ai < 4; ai++) {
                const int64_t M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
                lisa_backend *b = wdt ? small : be; /* BF16 weights widened in blocks of the small arena */
                lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, M, K, 0, 0, -2, 2);
                lisa_tensor w = ot_rand(&r, wdt ? LISA_DTYPE_BF16 : LISA_DTYPE_F32, 2, N, K, 0, 0, -0.5, 0.5);
                lisa_tensor bias = ot_rand(&r, LISA_DTYPE_F32, 1, N, 0, 0, 0, -1, 1);
                lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, M, N, 0, 0), ref = tu_tensor(LISA_DTYPE_F32, 2, M, N, 0, 0);
                tu_poison(&y);
                const lisa_tensor *bp = si == 2 ? NULL : &bias;
                OT_OK(lisa_op_linear_ex(b, &y, &x, &w, bp, NULL, acts[ai]));
                OT_OK(lisa_op_linear(b, &ref, &x, &w, bp));
                OT_OK(act_op(b, &ref, acts[ai]));
                cr_expect(same_bits(&y, &ref), "linear_ex M%lld K%lld N%lld act %d w %s: not the composition's bits",
                          (long long)M, (long long)K, (long long)N, (int)acts[ai], lisa_dtype_name(w.dtype));
                /* the math, against a double reference */
                double *want = malloc((size_t)(M * N) * sizeof(double)), *xv = ot_values(&x), *wv = ot_values(&w);
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double s = bp ? ((const float *)bias.data)[n] : 0;
                        for (int64_t k = 0; k < K; k++) s += xv[m * K + k] * wv[n * K + k];
                        want[m * N + n] = act_ref(s, acts[ai]);
                    }
                cr_expect(tu_check_close("linear_ex vs double", &y, want, 1e-5, 1e-5));
                free(want), free(xv), free(wv);
                lisa_tensor_free(&x), lisa_tensor_free(&w), lisa_tensor_free(&bias), lisa_tensor_free(&y);
                lisa_tensor_free(&ref);
            }
    lisa_backend_free(be);
    lisa_backend_free(small);
}

Test(ops_fused, linear_ex_residual_in_place_and_apart) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(91);
    const int64_t shapes[][3] = {{1, 37, 5}, {7, 769, 37}, {733, 19, 64}};
    for (size_t si = 0; si < 3; si++)
        for (int wdt = 0; wdt < 2; wdt++) {
            const int64_t M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
            lisa_backend *b = wdt ? small : be;
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 3, 1, M, K, 0, -2, 2);
            lisa_tensor w = ot_rand(&r, wdt ? LISA_DTYPE_BF16 : LISA_DTYPE_F32, 2, N, K, 0, 0, -0.5, 0.5);
            lisa_tensor bias = ot_rand(&r, LISA_DTYPE_BF16, 1, N, 0, 0, 0, -1, 1);
            lisa_tensor res = ot_rand(&r, LISA_DTYPE_F32, 3, 1, M, N, 0, -3, 3);
            /* composition: t = LINEAR(x); ref = ADD(res, t) */
            lisa_tensor t = tu_tensor(LISA_DTYPE_F32, 3, 1, M, N, 0), ref = tu_tensor(LISA_DTYPE_F32, 3, 1, M, N, 0);
            OT_OK(lisa_op_linear(b, &t, &x, &w, &bias));
            OT_OK(lisa_op_add(b, &ref, &res, &t));
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 1, M, N, 0);
            tu_poison(&y);
            OT_OK(lisa_op_linear_ex(b, &y, &x, &w, &bias, &res, LISA_ACT_NONE));
            cr_expect(same_bits(&y, &ref), "residual apart M%lld N%lld", (long long)M, (long long)N);
            /* x = x + Linear(h): y is the residual */
            lisa_tensor io = copy_of(&res);
            OT_OK(lisa_op_linear_ex(b, &io, &x, &w, &bias, &io, LISA_ACT_NONE));
            cr_expect(same_bits(&io, &ref), "residual in place M%lld N%lld", (long long)M, (long long)N);
            lisa_tensor_free(&x), lisa_tensor_free(&w), lisa_tensor_free(&bias), lisa_tensor_free(&res);
            lisa_tensor_free(&t), lisa_tensor_free(&ref), lisa_tensor_free(&y), lisa_tensor_free(&io);
        }
    /* errors */
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, 3, 8, 0, 0, -1, 1), w = ot_rand(&r, LISA_DTYPE_F32, 2, 5, 8, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 3, 5, 0, 0), res = tu_tensor(LISA_DTYPE_F32, 2, 3, 5, 0, 0);
    lisa_tensor res_bad = tu_tensor(LISA_DTYPE_F32, 2, 3, 4, 0, 0);
    tu_fill_uniform(&res, &r, -1, 1);
    OT_FAILS(lisa_op_linear_ex(be, &y, &x, &w, NULL, &res, LISA_ACT_RELU), LISA_ERR_INVALID_ARG, "linear_ex");
    OT_FAILS(lisa_op_linear_ex(be, &y, &x, &w, NULL, NULL, (lisa_act)17), LISA_ERR_INVALID_ARG, "linear_ex");
    OT_FAILS(lisa_op_linear_ex(be, &y, &x, &w, NULL, &res_bad, LISA_ACT_NONE), LISA_ERR_SHAPE, "linear_ex");
    lisa_tensor part;
    cr_assert(lisa_tensor_narrow(&part, &y, 1, 1, 4) == LISA_OK);
    lisa_tensor yy = y;
    yy.shape[1] = 4, yy.data = part.data; /* a y starting inside the residual: partial overlap */
    lisa_tensor rr = y;
    rr.shape[1] = 4;
    lisa_tensor w4 = ot_rand(&r, LISA_DTYPE_F32, 2, 4, 8, 0, 0, -1, 1);
    OT_FAILS(lisa_op_linear_ex(be, &yy, &x, &w4, NULL, &rr, LISA_ACT_NONE), LISA_ERR_INVALID_ARG, "linear_ex");
    lisa_tensor_free(&x), lisa_tensor_free(&w), lisa_tensor_free(&y), lisa_tensor_free(&res);
    lisa_tensor_free(&res_bad), lisa_tensor_free(&w4);
    lisa_backend_free(be);
    lisa_backend_free(small);
}

/* ---- ADD_RMSNORM / ADD_LAYERNORM ------------------------------------------------------------------ */

Test(ops_fused, add_norms_are_add_then_norm_bitwise) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(92);
    const int64_t shapes[][2] = {{1, 37}, {7, 769}, {19, 5}, {733, 64}};
    for (size_t si = 0; si < 4; si++)
        for (int layer = 0; layer < 2; layer++)
            for (int alias = 0; alias < 3; alias++) { /* sum apart, sum = x, sum = r */
                const int64_t R = shapes[si][0], C = shapes[si][1];
                lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, C, 0, 0, -2, 3);
                lisa_tensor res = ot_rand(&r, LISA_DTYPE_F32, 2, R, C, 0, 0, -2, 2);
                lisa_tensor g = ot_rand(&r, LISA_DTYPE_BF16, 1, C, 0, 0, 0, 0.5, 1.5);
                lisa_tensor b = ot_rand(&r, LISA_DTYPE_F32, 1, C, 0, 0, 0, -1, 1);
                lisa_tensor sref = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0), yref = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0);
                OT_OK(lisa_op_add(be, &sref, &x, &res));
                if (layer) OT_OK(lisa_op_layernorm(be, &yref, &sref, &g, &b, 1e-6f));
                else OT_OK(lisa_op_rmsnorm(be, &yref, &sref, &g, 1e-6f));
                lisa_tensor sum = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0), y = tu_tensor(LISA_DTYPE_F32, 2, R, C, 0, 0);
                tu_poison(&sum);
                tu_poison(&y);
                lisa_tensor *sp = alias == 0 ? &sum : alias == 1 ? &x : &res;
                if (layer) OT_OK(lisa_op_add_layernorm(be, sp, &y, &x, &res, &g, &b, 1e-6f));
                else OT_OK(lisa_op_add_rmsnorm(be, sp, &y, &x, &res, &g, 1e-6f));
                cr_expect(same_bits(sp, &sref), "%s [%lld,%lld] alias %d: sum", layer ? "add_layernorm" : "add_rmsnorm",
                          (long long)R, (long long)C, alias);
                cr_expect(same_bits(&y, &yref), "%s [%lld,%lld] alias %d: y", layer ? "add_layernorm" : "add_rmsnorm",
                          (long long)R, (long long)C, alias);
                lisa_tensor_free(&x), lisa_tensor_free(&res), lisa_tensor_free(&g), lisa_tensor_free(&b);
                lisa_tensor_free(&sref), lisa_tensor_free(&yref), lisa_tensor_free(&sum), lisa_tensor_free(&y);
            }
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, 3, 8, 0, 0, -1, 1), res = ot_rand(&r, LISA_DTYPE_F32, 2, 3, 8, 0, 0, -1, 1);
    lisa_tensor sum = tu_tensor(LISA_DTYPE_F32, 2, 3, 8, 0, 0), bad = tu_tensor(LISA_DTYPE_F32, 2, 3, 7, 0, 0);
    OT_FAILS(lisa_op_add_rmsnorm(be, &sum, &x, &x, &res, NULL, 1e-6f), LISA_ERR_INVALID_ARG, "add_rmsnorm");
    OT_FAILS(lisa_op_add_layernorm(be, &sum, &sum, &x, &res, NULL, NULL, 1e-6f), LISA_ERR_INVALID_ARG, "add_layernorm");
    OT_FAILS(lisa_op_add_rmsnorm(be, &bad, &sum, &x, &res, NULL, 1e-6f), LISA_ERR_SHAPE, "add_rmsnorm");
    OT_FAILS(lisa_op_add_layernorm(be, NULL, &sum, &x, &res, NULL, NULL, 1e-6f), LISA_ERR_INVALID_ARG, "add_layernorm");
    lisa_tensor_free(&x), lisa_tensor_free(&res), lisa_tensor_free(&sum), lisa_tensor_free(&bad);
    lisa_backend_free(be);
}

/* ---- SAM's window ops -------------------------------------------------------------------------- */

static const int64_t GRIDS[][5] = {/* B, H, W, C, S */
                                   {2, 10, 9, 37, 4}, {1, 14, 14, 16, 14}, {1, 5, 3, 8, 7}, {3, 29, 31, 5, 14}};

Test(ops_fused, layernorm_window_partition_is_layernorm_then_partition_bitwise) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(93);
    for (size_t i = 0; i < sizeof GRIDS / sizeof *GRIDS; i++) {
        const int64_t B = GRIDS[i][0], H = GRIDS[i][1], W = GRIDS[i][2], C = GRIDS[i][3], S = GRIDS[i][4];
        const int64_t nw = B * ((H + S - 1) / S) * ((W + S - 1) / S);
        lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, B, H, W, C, -3, 5);
        lisa_tensor g = ot_rand(&r, LISA_DTYPE_F32, 1, C, 0, 0, 0, 0.5, 1.5), b = ot_rand(&r, LISA_DTYPE_BF16, 1, C, 0, 0, 0, -1, 1);
        lisa_tensor n = tu_tensor(LISA_DTYPE_F32, 4, B, H, W, C), ref = tu_tensor(LISA_DTYPE_F32, 4, nw, S, S, C);
        OT_OK(lisa_op_layernorm(be, &n, &x, &g, &b, 1e-6f));
        OT_OK(lisa_op_window_partition(be, &ref, &n, (int32_t)S));
        lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, nw, S, S, C);
        tu_poison(&y); /* the padding must be written (zeros) */
        OT_OK(lisa_op_layernorm_window_partition(be, &y, &x, &g, &b, 1e-6f, (int32_t)S));
        cr_expect(same_bits(&y, &ref), "layernorm_window_partition [%lld,%lld,%lld,%lld] S%lld", (long long)B, (long long)H,
                  (long long)W, (long long)C, (long long)S);
        lisa_tensor_free(&x), lisa_tensor_free(&g), lisa_tensor_free(&b), lisa_tensor_free(&n);
        lisa_tensor_free(&ref), lisa_tensor_free(&y);
    }
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 5, 5, 4, -1, 1), y = tu_tensor(LISA_DTYPE_F32, 4, 4, 2, 2, 4);
    lisa_tensor y3 = tu_tensor(LISA_DTYPE_F32, 4, 9, 2, 2, 4);
    OT_FAILS(lisa_op_layernorm_window_partition(be, &y, &x, NULL, NULL, 1e-6f, 2), LISA_ERR_SHAPE, "layernorm_window_partition");
    OT_FAILS(lisa_op_layernorm_window_partition(be, &y3, &x, NULL, NULL, 1e-6f, 0), LISA_ERR_INVALID_ARG,
             "layernorm_window_partition");
    lisa_tensor_free(&x), lisa_tensor_free(&y), lisa_tensor_free(&y3);
    lisa_backend_free(be);
}

Test(ops_fused, window_unpartition_add_is_unpartition_then_add_bitwise) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(94);
    for (size_t i = 0; i < sizeof GRIDS / sizeof *GRIDS; i++) {
        const int64_t B = GRIDS[i][0], H = GRIDS[i][1], W = GRIDS[i][2], C = GRIDS[i][3], S = GRIDS[i][4];
        const int64_t nw = B * ((H + S - 1) / S) * ((W + S - 1) / S);
        lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, nw, S, S, C, -2, 2);
        lisa_tensor res = ot_rand(&r, LISA_DTYPE_F32, 4, B, H, W, C, -2, 2);
        lisa_tensor u = tu_tensor(LISA_DTYPE_F32, 4, B, H, W, C), ref = tu_tensor(LISA_DTYPE_F32, 4, B, H, W, C);
        OT_OK(lisa_op_window_unpartition(be, &u, &x, (int32_t)S));
        OT_OK(lisa_op_add(be, &ref, &res, &u));
        lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, B, H, W, C);
        tu_poison(&y);
        OT_OK(lisa_op_window_unpartition_add(be, &y, &x, &res, (int32_t)S));
        cr_expect(same_bits(&y, &ref), "window_unpartition_add case %zu", i);
        OT_OK(lisa_op_window_unpartition_add(be, &res, &x, &res, (int32_t)S)); /* x = x + unpartition(attn) */
        cr_expect(same_bits(&res, &ref), "window_unpartition_add in place, case %zu", i);
        lisa_tensor_free(&x), lisa_tensor_free(&res), lisa_tensor_free(&u), lisa_tensor_free(&ref), lisa_tensor_free(&y);
    }
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, 9, 2, 2, 4, -1, 1), y = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 5, 4);
    lisa_tensor bad = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 4, 4);
    OT_FAILS(lisa_op_window_unpartition_add(be, &y, &x, NULL, 2), LISA_ERR_INVALID_ARG, "window_unpartition_add");
    OT_FAILS(lisa_op_window_unpartition_add(be, &y, &x, &bad, 2), LISA_ERR_SHAPE, "window_unpartition_add");
    OT_FAILS(lisa_op_window_unpartition_add(be, &bad, &x, &bad, 2), LISA_ERR_SHAPE, "window_unpartition_add");
    lisa_tensor_free(&x), lisa_tensor_free(&y), lisa_tensor_free(&bad);
    lisa_backend_free(be);
}

/* ---- ROPE_QK ---------------------------------------------------------------------------------------- */

static lisa_tensor rope_table(int64_t P, int64_t D, float theta) {
    lisa_tensor t = tu_tensor(LISA_DTYPE_F32, 2, P, D, 0, 0);
    lisa_rope_table(t.data, P, D, theta);
    return t;
}

Test(ops_fused, rope_qk_from_the_table_is_rope_bitwise_on_strided_views) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(95);
    const int64_t cases[][4] = {{7, 4, 2, 16}, {19, 3, 3, 6}, {1, 8, 1, 128}}; /* T, Hq, Hkv, D */
    for (size_t i = 0; i < 3; i++)
        for (int fused = 0; fused < 2; fused++) {
            const int64_t T = cases[i][0], Hq = cases[i][1], Hk = cases[i][2], D = cases[i][3];
            lisa_tensor table = rope_table(2048, D, 10000.0f);
            lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 1, T, 0, 0, 0);
            for (int64_t t = 0; t < T; t++) ((int32_t *)pos.data)[t] = (int32_t)(t * 97 % 2048 + (t == 0 ? 2047 : 0));
            /* fused: q and k are views of one [T, (Hq + 2·Hkv)·D] projection output, as the device
             * backends' QKV GEMM leaves them */
            lisa_tensor qkv = ot_rand(&r, LISA_DTYPE_F32, 2, T, (Hq + 2 * Hk) * D, 0, 0, -2, 2), q, k, qn, kn;
            if (fused) {
                cr_assert(lisa_tensor_narrow(&qn, &qkv, 1, 0, Hq * D) == LISA_OK);
                cr_assert(lisa_tensor_narrow(&kn, &qkv, 1, Hq * D, Hk * D) == LISA_OK);
                q = qn, k = kn;
                q.n_dims = k.n_dims = 3;
                q.shape[1] = Hq, k.shape[1] = Hk, q.shape[2] = k.shape[2] = D;
                q.stride[1] = k.stride[1] = D, q.stride[2] = k.stride[2] = 1;
            } else {
                q = ot_rand(&r, LISA_DTYPE_F32, 3, T, Hq, D, 0, -2, 2);
                k = ot_rand(&r, LISA_DTYPE_F32, 3, T, Hk, D, 0, -2, 2);
            }
            lisa_tensor qr = tu_tensor(LISA_DTYPE_F32, 3, T, Hq, D, 0), kr = tu_tensor(LISA_DTYPE_F32, 3, T, Hk, D, 0);
            lisa_tensor qc = tu_tensor(LISA_DTYPE_F32, 3, T, Hq, D, 0), kc = tu_tensor(LISA_DTYPE_F32, 3, T, Hk, D, 0);
            OT_OK(lisa_op_copy(be, &qc, &q));
            OT_OK(lisa_op_copy(be, &kc, &k));
            OT_OK(lisa_op_rope(be, &qr, &qc, &pos, 10000.0f));
            OT_OK(lisa_op_rope(be, &kr, &kc, &pos, 10000.0f));
            lisa_tensor v0 = copy_of(&qkv);
            OT_OK(lisa_op_rope_qk(be, &q, &k, &pos, &table));
            OT_OK(lisa_op_copy(be, &qc, &q));
            OT_OK(lisa_op_copy(be, &kc, &k));
            cr_expect(same_bits(&qc, &qr) && same_bits(&kc, &kr), "rope_qk T%lld Hq%lld Hkv%lld D%lld %s", (long long)T,
                      (long long)Hq, (long long)Hk, (long long)D, fused ? "views" : "contiguous");
            if (fused) { /* v, the rest of the projection, is untouched */
                const size_t off = (size_t)((Hq + Hk) * D);
                for (int64_t t = 0; t < T; t++)
                    cr_expect(memcmp((float *)qkv.data + t * qkv.shape[1] + off, (float *)v0.data + t * qkv.shape[1] + off,
                                     (size_t)(Hk * D) * sizeof(float)) == 0);
            } else {
                lisa_tensor_free(&q), lisa_tensor_free(&k);
            }
            lisa_tensor_free(&table), lisa_tensor_free(&pos), lisa_tensor_free(&qkv), lisa_tensor_free(&v0);
            lisa_tensor_free(&qr), lisa_tensor_free(&kr), lisa_tensor_free(&qc), lisa_tensor_free(&kc);
        }
    /* [B, T, H, D] with per-row positions [B, T], another theta */
    lisa_tensor q = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 5, 3, 8, -1, 1), k = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 5, 1, 8, -1, 1);
    lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 2, 2, 5, 0, 0), table = rope_table(40, 8, 500000.0f);
    for (int i = 0; i < 10; i++) ((int32_t *)pos.data)[i] = 3 * i + 1;
    lisa_tensor qr = tu_tensor(LISA_DTYPE_F32, 4, 2, 5, 3, 8), kr = tu_tensor(LISA_DTYPE_F32, 4, 2, 5, 1, 8);
    OT_OK(lisa_op_rope(be, &qr, &q, &pos, 500000.0f));
    OT_OK(lisa_op_rope(be, &kr, &k, &pos, 500000.0f));
    OT_OK(lisa_op_rope_qk(be, &q, &k, &pos, &table));
    cr_expect(same_bits(&q, &qr) && same_bits(&k, &kr), "rope_qk [B, T, H, D]");
    /* the table itself: cos^2 + sin^2 = 1 and angle 0 at position 0 */
    const float *tv = table.data;
    cr_expect(tv[0] == 1.0f && tv[4] == 0.0f);
    for (int64_t i = 0; i < 40 * 4; i++) {
        const double c = tv[(i / 4) * 8 + i % 4], sn = tv[(i / 4) * 8 + 4 + i % 4];
        cr_expect(fabs(c * c + sn * sn - 1) < 1e-6);
    }
    /* errors */
    lisa_tensor k_bad = tu_tensor(LISA_DTYPE_F32, 4, 2, 4, 1, 8), short_table = rope_table(20, 8, 500000.0f);
    lisa_tensor wide_table = rope_table(40, 16, 500000.0f);
    OT_FAILS(lisa_op_rope_qk(be, &q, &k_bad, &pos, &table), LISA_ERR_SHAPE, "rope_qk");
    OT_FAILS(lisa_op_rope_qk(be, &q, &k, &pos, &short_table), LISA_ERR_INVALID_ARG, "position 22");
    OT_FAILS(lisa_op_rope_qk(be, &q, &k, &pos, &wide_table), LISA_ERR_SHAPE, "rope_qk");
    lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&pos), lisa_tensor_free(&qr), lisa_tensor_free(&kr);
    lisa_tensor_free(&k_bad), lisa_tensor_free(&table), lisa_tensor_free(&short_table), lisa_tensor_free(&wide_table);
    lisa_backend_free(be);
}

/* ---- ATTENTION_RELPOS --------------------------------------------------------------------------- */

/* SAM shapes: 14x14 windows with q/k/v strided views of a fused qkv (head dim 80, BF16 tables), an
 * odd 5x7 grid (head dim 37, F32 tables), and a 64x64 grid whose terms (2 MiB per batch entry) span
 * two of the op's 16 MiB groups of batch entries (9 entries: 8 + 1); against REL_POS then ATTENTION
 * with F32 terms, bit for bit, also on a small scratch arena (ATTENTION's query blocks). */
Test(ops_fused, attention_relpos_is_rel_pos_then_attention_bitwise) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(256 << 10);
    tu_rng r = tu_rng_seed(97);
    const struct {
        int64_t B, qh, qw, H, D;
        lisa_dtype tdt;
    } cs[] = {{3, 14, 14, 2, 80, LISA_DTYPE_BF16}, {2, 5, 7, 3, 37, LISA_DTYPE_F32}, {9, 64, 64, 1, 8, LISA_DTYPE_F32}};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int64_t B = cs[ci].B, qh = cs[ci].qh, qw = cs[ci].qw, H = cs[ci].H, D = cs[ci].D, T = qh * qw;
        lisa_backend *b = ci == 1 ? small : be;
        lisa_tensor qkv = ot_rand(&r, LISA_DTYPE_F32, 4, B, T, 3 * H, D, -1, 1), q, k, v;
        cr_assert(lisa_tensor_narrow(&q, &qkv, 2, 0, H) == LISA_OK);
        cr_assert(lisa_tensor_narrow(&k, &qkv, 2, H, H) == LISA_OK);
        cr_assert(lisa_tensor_narrow(&v, &qkv, 2, 2 * H, H) == LISA_OK);
        lisa_tensor th = ot_rand(&r, cs[ci].tdt, 2, 2 * qh - 1, D, 0, 0, -0.5, 0.5);
        lisa_tensor tw = ot_rand(&r, cs[ci].tdt, 2, 2 * qw - 1, D, 0, 0, -0.5, 0.5);
        const float scale = 1.0f / sqrtf((float)D);
        lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, B, T, H, D), ref = tu_tensor(LISA_DTYPE_F32, 4, B, T, H, D);
        tu_poison(&y);
        OT_OK(lisa_op_attention_relpos(b, &y, &q, &k, &v, &th, &tw, (int32_t)qh, (int32_t)qw, scale));
        lisa_tensor rh = tu_tensor(LISA_DTYPE_F32, 4, B, H, T, qh), rw = tu_tensor(LISA_DTYPE_F32, 4, B, H, T, qw);
        OT_OK(lisa_op_rel_pos(b, &rh, &rw, &q, &th, &tw, (int32_t)qh, (int32_t)qw));
        const lisa_attn_params p = {.scale = scale, .rel_h = &rh, .rel_w = &rw};
        OT_OK(lisa_op_attention(b, &ref, &q, &k, &v, &p));
        cr_expect(same_bits(&y, &ref), "attention_relpos B%lld %lldx%lld H%lld D%lld: not the composition's bits",
                  (long long)B, (long long)qh, (long long)qw, (long long)H, (long long)D);
        lisa_tensor_free(&qkv), lisa_tensor_free(&th), lisa_tensor_free(&tw);
        lisa_tensor_free(&y), lisa_tensor_free(&ref), lisa_tensor_free(&rh), lisa_tensor_free(&rw);
    }
    lisa_backend_free(be);
    lisa_backend_free(small);
}

Test(ops_fused, attention_relpos_errors_name_the_op) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(98);
    lisa_tensor q = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 35, 2, 8, -1, 1), k36 = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 36, 2, 8, -1, 1);
    lisa_tensor th = ot_rand(&r, LISA_DTYPE_F32, 2, 9, 8, 0, 0, -1, 1), tw = ot_rand(&r, LISA_DTYPE_F32, 2, 13, 8, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 1, 35, 2, 8);
    OT_OK(lisa_op_attention_relpos(be, &y, &q, &q, &q, &th, &tw, 5, 7, 0.5f));
    OT_FAILS(lisa_op_attention_relpos(be, &y, &q, &q, &q, &th, &tw, 6, 6, 0.5f), LISA_ERR_SHAPE, "attention_relpos");
    OT_FAILS(lisa_op_attention_relpos(be, &y, &q, &k36, &k36, &th, &tw, 5, 7, 0.5f), LISA_ERR_SHAPE, "attention_relpos");
    /* tables of the other grid size: REL_POS's error (no interpolation), under the op's name */
    OT_FAILS(lisa_op_attention_relpos(be, &y, &q, &q, &q, &tw, &th, 5, 7, 0.5f), LISA_ERR_UNSUPPORTED,
             "attention_relpos: rel_pos");
    lisa_tensor_free(&q), lisa_tensor_free(&k36), lisa_tensor_free(&th), lisa_tensor_free(&tw), lisa_tensor_free(&y);
    lisa_backend_free(be);
}

/* lisa_backend_fuses: the CPU composes every fused op and no unfused one counts as fused. */
Test(ops_fused, cpu_backend_composes_every_fused_op) {
    lisa_backend *be = tu_cpu_backend();
    for (int op = 0; op < LISA_OP_COUNT; op++) cr_expect(!lisa_backend_fuses(be, (lisa_op)op), "op %s", lisa_op_name((lisa_op)op));
    cr_expect(lisa_op_is_fused(LISA_OP_ATTENTION_RELPOS) && lisa_op_is_fused(LISA_OP_LINEAR_EX));
    cr_expect(!lisa_op_is_fused(LISA_OP_ATTENTION) && !lisa_op_is_fused(LISA_OP_REL_POS));
    lisa_backend native = *be;
    native.composed_ops = 0; /* a backend that runs them as kernels */
    cr_expect(lisa_backend_fuses(&native, LISA_OP_ATTENTION_RELPOS) && !lisa_backend_fuses(&native, LISA_OP_ATTENTION));
    lisa_backend_free(be);
}
