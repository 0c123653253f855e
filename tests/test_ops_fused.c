/* tests/test_ops_fused.c — the fused ops of kernels/ops.def (LINEAR_EX, ADD_RMSNORM, ADD_LAYERNORM,
 * LAYERNORM_WINDOW_PARTITION, WINDOW_UNPARTITION_ADD, ROPE_QK, TWOWAY_ATTENTION, TWOWAY_MLP, MLP3,
 * ATTENTION_RELPOS) on the CPU backend.
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

/* ---- TWOWAY_ATTENTION / TWOWAY_MLP (SAM's two-way transformer) ------------------------------------ */

/* The composition ops.def names, spelled out with the unfused ops (the old decoder graph). */
static void twoway_ref(lisa_backend *be, lisa_tensor *y, const lisa_tensor *xq, const lisa_tensor *qpe,
                       const lisa_tensor *xk, const lisa_tensor *kpe, const lisa_tensor *xv, const lisa_twoway_attn *a,
                       bool residual, const lisa_tensor *g, const lisa_tensor *b) {
    const int64_t N = xq->shape[0], Tq = xq->shape[1], Tk = xk->shape[1], C = xq->shape[2];
    const int64_t Ci = a->q_w->shape[0], H = a->heads, D = Ci / H;
    lisa_tensor tq = tu_tensor(LISA_DTYPE_F32, 3, N, Tq, C, 0), tk = tu_tensor(LISA_DTYPE_F32, 3, N, Tk, C, 0);
    if (qpe) OT_OK(lisa_op_add(be, &tq, xq, qpe));
    else memcpy(tq.data, xq->data, lisa_tensor_nbytes(xq));
    if (kpe) OT_OK(lisa_op_add(be, &tk, xk, kpe));
    else memcpy(tk.data, xk->data, lisa_tensor_nbytes(xk));
    lisa_tensor q = tu_tensor(LISA_DTYPE_F32, 4, N, Tq, H, D), k = tu_tensor(LISA_DTYPE_F32, 4, N, Tk, H, D);
    lisa_tensor v = tu_tensor(LISA_DTYPE_F32, 4, N, Tk, H, D), o = tu_tensor(LISA_DTYPE_F32, 4, N, Tq, H, D);
    lisa_tensor q3 = lisa_tensor_view4(q.data, LISA_DTYPE_F32, 3, N, Tq, Ci, 0);
    lisa_tensor k3 = lisa_tensor_view4(k.data, LISA_DTYPE_F32, 3, N, Tk, Ci, 0);
    lisa_tensor v3 = lisa_tensor_view4(v.data, LISA_DTYPE_F32, 3, N, Tk, Ci, 0);
    lisa_tensor o3 = lisa_tensor_view4(o.data, LISA_DTYPE_F32, 3, N, Tq, Ci, 0);
    OT_OK(lisa_op_linear(be, &q3, &tq, a->q_w, a->q_b));
    OT_OK(lisa_op_linear(be, &k3, &tk, a->k_w, a->k_b));
    OT_OK(lisa_op_linear(be, &v3, xv, a->v_w, a->v_b));
    const lisa_attn_params p = {.scale = 1.0f / sqrtf((float)D)};
    OT_OK(lisa_op_attention(be, &o, &q, &k, &v, &p));
    lisa_tensor att = tu_tensor(LISA_DTYPE_F32, 3, N, Tq, C, 0), sum = tu_tensor(LISA_DTYPE_F32, 3, N, Tq, C, 0);
    OT_OK(lisa_op_linear(be, &att, &o3, a->out_w, a->out_b));
    if (residual) {
        OT_OK(lisa_op_add(be, &sum, xq, &att));
        OT_OK(lisa_op_layernorm(be, y, &sum, g, b, 1e-5f));
    } else {
        OT_OK(lisa_op_layernorm(be, y, &att, g, b, 1e-5f));
    }
    lisa_tensor_free(&tq), lisa_tensor_free(&tk), lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v);
    lisa_tensor_free(&o), lisa_tensor_free(&att), lisa_tensor_free(&sum);
}

/* Weights of one Attention module: q/k/v [Ci, C], out [C, Ci] (wdt), biases (F32 or BF16). */
typedef struct tw_weights {
    lisa_tensor w[4], bias[4];
    lisa_twoway_attn a;
} tw_weights;

static void tw_weights_make(tw_weights *t, tu_rng *r, int64_t C, int64_t Ci, int32_t heads, lisa_dtype wdt, bool biases) {
    for (int i = 0; i < 4; i++) {
        const int64_t rows = i == 3 ? C : Ci, cols = i == 3 ? Ci : C;
        t->w[i] = ot_rand(r, wdt, 2, rows, cols, 0, 0, -1.0 / sqrt((double)cols) * 1.7, 1.0 / sqrt((double)cols) * 1.7);
        t->bias[i] = ot_rand(r, i % 2 ? LISA_DTYPE_BF16 : LISA_DTYPE_F32, 1, rows, 0, 0, 0, -0.3, 0.3);
    }
    lisa_twoway_attn a = {.q_w = &t->w[0], .k_w = &t->w[1], .v_w = &t->w[2], .out_w = &t->w[3], .heads = heads};
    if (biases) a.q_b = &t->bias[0], a.k_b = &t->bias[1], a.v_b = &t->bias[2], a.out_b = &t->bias[3];
    t->a = a;
}

static void tw_weights_free(tw_weights *t) {
    for (int i = 0; i < 4; i++) lisa_tensor_free(&t->w[i]), lisa_tensor_free(&t->bias[i]);
}

Test(ops_fused, twoway_attention_is_the_composition_bitwise) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(95);
    /* N, Tq, Tk, C, Ci, heads, qpe (0 none, 1 batch N, 2 batch 1), kpe (same), residual, biases:
     * the decoder's self (6 x 6), token->image (6 x 4096-like), image->token (many x 6) shapes at
     * awkward sizes, odd head dims, no PE / no residual (layer 0), NULL biases */
    const int64_t cases[][10] = {{1, 6, 6, 32, 32, 8, 1, 1, 1, 1},   {3, 6, 6, 32, 32, 8, 0, 0, 0, 1},
                                 {2, 6, 300, 32, 16, 8, 1, 2, 1, 1}, {2, 300, 6, 32, 16, 8, 2, 1, 1, 1},
                                 {3, 7, 37, 24, 12, 3, 1, 1, 1, 0},  {1, 5, 19, 40, 40, 5, 2, 2, 0, 1},
                                 {2, 19, 5, 16, 8, 1, 0, 1, 1, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int wdt = 0; wdt < 2; wdt++) {
            const int64_t *c = cases[ci];
            const int64_t N = c[0], Tq = c[1], Tk = c[2], C = c[3], Ci = c[4];
            lisa_backend *bb = wdt ? small : be;
            tw_weights tw;
            tw_weights_make(&tw, &r, C, Ci, (int32_t)c[5], wdt ? LISA_DTYPE_BF16 : LISA_DTYPE_F32, c[9] != 0);
            lisa_tensor xq = ot_rand(&r, LISA_DTYPE_F32, 3, N, Tq, C, 0, -2, 2), xk = ot_rand(&r, LISA_DTYPE_F32, 3, N, Tk, C, 0, -2, 2);
            lisa_tensor xv = ot_rand(&r, LISA_DTYPE_F32, 3, N, Tk, C, 0, -2, 2);
            lisa_tensor qpe = ot_rand(&r, LISA_DTYPE_F32, 3, c[6] == 2 ? 1 : N, Tq, C, 0, -1, 1);
            lisa_tensor kpe = ot_rand(&r, LISA_DTYPE_F32, 3, c[7] == 2 ? 1 : N, Tk, C, 0, -1, 1);
            lisa_tensor g = ot_rand(&r, LISA_DTYPE_F32, 1, C, 0, 0, 0, 0.5, 1.5), b = ot_rand(&r, LISA_DTYPE_BF16, 1, C, 0, 0, 0, -1, 1);
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, N, Tq, C, 0), ref = tu_tensor(LISA_DTYPE_F32, 3, N, Tq, C, 0);
            tu_poison(&y);
            const lisa_tensor *qp = c[6] ? &qpe : NULL, *kp = c[7] ? &kpe : NULL;
            twoway_ref(bb, &ref, &xq, qp, &xk, kp, &xv, &tw.a, c[8] != 0, &g, &b);
            OT_OK(lisa_op_twoway_attention(bb, &y, &xq, qp, &xk, kp, &xv, &tw.a, c[8] != 0, &g, &b, 1e-5f));
            cr_expect(same_bits(&y, &ref), "twoway_attention case %zu (N%lld Tq%lld Tk%lld C%lld Ci%lld) w %s: not the "
                      "composition's bits", ci, (long long)N, (long long)Tq, (long long)Tk, (long long)C, (long long)Ci,
                      wdt ? "bf16" : "f32");
            /* self-attention form: xq = xk = xv, qpe = kpe */
            if (Tq == Tk) {
                twoway_ref(bb, &ref, &xq, qp, &xq, qp, &xq, &tw.a, true, &g, &b);
                OT_OK(lisa_op_twoway_attention(bb, &y, &xq, qp, &xq, qp, &xq, &tw.a, true, &g, &b, 1e-5f));
                cr_expect(same_bits(&y, &ref), "twoway_attention self form, case %zu", ci);
            }
            tw_weights_free(&tw);
            lisa_tensor_free(&xq), lisa_tensor_free(&xk), lisa_tensor_free(&xv), lisa_tensor_free(&qpe);
            lisa_tensor_free(&kpe), lisa_tensor_free(&g), lisa_tensor_free(&b), lisa_tensor_free(&y), lisa_tensor_free(&ref);
        }
    /* errors name the op and the offending tensor */
    tw_weights tw;
    tw_weights_make(&tw, &r, 16, 8, 2, LISA_DTYPE_F32, true);
    lisa_tensor xq = ot_rand(&r, LISA_DTYPE_F32, 3, 2, 4, 16, 0, -1, 1), xk = ot_rand(&r, LISA_DTYPE_F32, 3, 2, 9, 16, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 2, 4, 16, 0), pe3 = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 9, 16, 0, -1, 1);
    lisa_tensor xk15 = ot_rand(&r, LISA_DTYPE_F32, 3, 2, 9, 15, 0, -1, 1);
    OT_FAILS(lisa_op_twoway_attention(be, &y, &xq, NULL, &xk, &pe3, &xk, &tw.a, true, NULL, NULL, 1e-5f), LISA_ERR_SHAPE, "kpe");
    OT_FAILS(lisa_op_twoway_attention(be, &y, &xq, NULL, &xk15, NULL, &xk15, &tw.a, true, NULL, NULL, 1e-5f), LISA_ERR_SHAPE,
             "twoway_attention");
    OT_FAILS(lisa_op_twoway_attention(be, &xq, &xq, NULL, &xk, NULL, &xk, &tw.a, true, NULL, NULL, 1e-5f),
             LISA_ERR_INVALID_ARG, "y overlaps xq");
    lisa_twoway_attn bad = tw.a;
    bad.heads = 3;
    OT_FAILS(lisa_op_twoway_attention(be, &y, &xq, NULL, &xk, NULL, &xk, &bad, true, NULL, NULL, 1e-5f), LISA_ERR_SHAPE,
             "3 heads");
    bad = tw.a;
    bad.out_w = &tw.w[0];
    OT_FAILS(lisa_op_twoway_attention(be, &y, &xq, NULL, &xk, NULL, &xk, &bad, true, NULL, NULL, 1e-5f), LISA_ERR_SHAPE,
             "out_w");
    tw_weights_free(&tw);
    lisa_tensor_free(&xq), lisa_tensor_free(&xk), lisa_tensor_free(&y), lisa_tensor_free(&pe3), lisa_tensor_free(&xk15);
    lisa_backend_free(be);
    lisa_backend_free(small);
}

Test(ops_fused, twoway_mlp_is_the_composition_bitwise) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(96);
    const int64_t cases[][4] = {{1, 6, 32, 64}, {3, 6, 256, 2048}, {2, 7, 37, 19}, {1, 1, 5, 3}}; /* N, T, C, Hm */
    for (size_t ci = 0; ci < 4; ci++)
        for (int wdt = 0; wdt < 2; wdt++) {
            const int64_t N = cases[ci][0], T = cases[ci][1], C = cases[ci][2], Hm = cases[ci][3];
            lisa_backend *bb = wdt ? small : be;
            const lisa_dtype dt = wdt ? LISA_DTYPE_BF16 : LISA_DTYPE_F32;
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 3, N, T, C, 0, -2, 2);
            lisa_tensor w1 = ot_rand(&r, dt, 2, Hm, C, 0, 0, -0.3, 0.3), w2 = ot_rand(&r, dt, 2, C, Hm, 0, 0, -0.3, 0.3);
            lisa_tensor b1 = ot_rand(&r, LISA_DTYPE_F32, 1, Hm, 0, 0, 0, -0.5, 0.5), b2 = ot_rand(&r, dt, 1, C, 0, 0, 0, -0.5, 0.5);
            lisa_tensor g = ot_rand(&r, LISA_DTYPE_F32, 1, C, 0, 0, 0, 0.5, 1.5), b = ot_rand(&r, LISA_DTYPE_F32, 1, C, 0, 0, 0, -1, 1);
            lisa_tensor h = tu_tensor(LISA_DTYPE_F32, 3, N, T, Hm, 0), m = tu_tensor(LISA_DTYPE_F32, 3, N, T, C, 0);
            lisa_tensor sum = tu_tensor(LISA_DTYPE_F32, 3, N, T, C, 0), ref = tu_tensor(LISA_DTYPE_F32, 3, N, T, C, 0);
            OT_OK(lisa_op_linear(bb, &h, &x, &w1, &b1));
            OT_OK(lisa_op_relu(bb, &h, &h));
            OT_OK(lisa_op_linear(bb, &m, &h, &w2, &b2));
            OT_OK(lisa_op_add(bb, &sum, &x, &m));
            OT_OK(lisa_op_layernorm(bb, &ref, &sum, &g, &b, 1e-5f));
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, N, T, C, 0);
            tu_poison(&y);
            OT_OK(lisa_op_twoway_mlp(bb, &y, &x, &w1, &b1, &w2, &b2, &g, &b, 1e-5f));
            cr_expect(same_bits(&y, &ref), "twoway_mlp [%lld,%lld,%lld] Hm %lld w %s: not the composition's bits",
                      (long long)N, (long long)T, (long long)C, (long long)Hm, lisa_dtype_name(dt));
            lisa_tensor_free(&x), lisa_tensor_free(&w1), lisa_tensor_free(&w2), lisa_tensor_free(&b1), lisa_tensor_free(&b2);
            lisa_tensor_free(&g), lisa_tensor_free(&b), lisa_tensor_free(&h), lisa_tensor_free(&m), lisa_tensor_free(&sum);
            lisa_tensor_free(&ref), lisa_tensor_free(&y);
        }
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, 3, 8, 0, 0, -1, 1), w1 = ot_rand(&r, LISA_DTYPE_F32, 2, 5, 8, 0, 0, -1, 1);
    lisa_tensor w2 = ot_rand(&r, LISA_DTYPE_F32, 2, 8, 4, 0, 0, -1, 1), y = tu_tensor(LISA_DTYPE_F32, 2, 3, 8, 0, 0);
    OT_FAILS(lisa_op_twoway_mlp(be, &y, &x, &w1, NULL, &w2, NULL, NULL, NULL, 1e-5f), LISA_ERR_SHAPE, "w2");
    lisa_tensor w2ok = ot_rand(&r, LISA_DTYPE_F32, 2, 8, 5, 0, 0, -1, 1);
    OT_FAILS(lisa_op_twoway_mlp(be, &x, &x, &w1, NULL, &w2ok, NULL, NULL, NULL, 1e-5f), LISA_ERR_INVALID_ARG, "y overlaps x");
    lisa_tensor_free(&x), lisa_tensor_free(&w1), lisa_tensor_free(&w2), lisa_tensor_free(&y), lisa_tensor_free(&w2ok);
    lisa_backend_free(be);
    lisa_backend_free(small);
}

/* ---- ROPE_QK_KV_APPEND ----------------------------------------------------------------------------- */

/* q/k/v as views of one [T, (Hq + 2·Hkv)·D] fused projection output, rotated and appended into a
 * pool of 5 pages x 4 slots (padding rows skipped): q, k and both pools equal ROPE_QK then
 * KV_APPEND bit for bit; the untouched pool slots keep their values. */
Test(ops_fused, rope_qk_kv_append_is_rope_qk_then_kv_append_bitwise) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(97);
    const int64_t cases[][4] = {{7, 4, 2, 16}, {1, 8, 8, 128}, {11, 3, 1, 6}}; /* T, Hq, Hkv, D */
    for (size_t ci = 0; ci < 3; ci++) {
        const int64_t T = cases[ci][0], Hq = cases[ci][1], Hk = cases[ci][2], D = cases[ci][3], NP = 5, PS = 4;
        lisa_tensor table = rope_table(512, D, 10000.0f), pos = tu_tensor(LISA_DTYPE_I32, 1, T, 0, 0, 0);
        lisa_tensor slots = tu_tensor(LISA_DTYPE_I32, 1, T, 0, 0, 0);
        for (int64_t t = 0; t < T; t++) {
            ((int32_t *)pos.data)[t] = (int32_t)(t * 37 % 512);
            ((int32_t *)slots.data)[t] = t == 2 ? -1 : (int32_t)((t * 7 + 3) % (NP * PS)); /* row 2: padding */
        }
        lisa_tensor qkv[2], kp[2], vp[2];
        qkv[0] = ot_rand(&r, LISA_DTYPE_F32, 2, T, (Hq + 2 * Hk) * D, 0, 0, -2, 2), qkv[1] = copy_of(&qkv[0]);
        kp[0] = ot_rand(&r, LISA_DTYPE_F32, 4, NP, PS, Hk, D, -5, 5), kp[1] = copy_of(&kp[0]);
        vp[0] = ot_rand(&r, LISA_DTYPE_F32, 4, NP, PS, Hk, D, -5, 5), vp[1] = copy_of(&vp[0]);
        lisa_tensor q[2], k[2], v[2];
        for (int i = 0; i < 2; i++) {
            lisa_tensor *vw[3] = {&q[i], &k[i], &v[i]};
            const int64_t c0[3] = {0, Hq * D, (Hq + Hk) * D}, heads[3] = {Hq, Hk, Hk};
            for (int j = 0; j < 3; j++) {
                cr_assert(lisa_tensor_narrow(vw[j], &qkv[i], 1, c0[j], heads[j] * D) == LISA_OK);
                vw[j]->n_dims = 3, vw[j]->shape[1] = heads[j], vw[j]->shape[2] = D;
                vw[j]->stride[1] = D, vw[j]->stride[2] = 1;
            }
        }
        OT_OK(lisa_op_rope_qk(be, &q[0], &k[0], &pos, &table));
        OT_OK(lisa_op_kv_append(be, &kp[0], &vp[0], &k[0], &v[0], &slots));
        OT_OK(lisa_op_rope_qk_kv_append(be, &q[1], &k[1], &v[1], &pos, &table, &kp[1], &vp[1], &slots));
        cr_expect(same_bits(&qkv[1], &qkv[0]), "rope_qk_kv_append T%lld Hq%lld Hkv%lld D%lld: q/k/v", (long long)T,
                  (long long)Hq, (long long)Hk, (long long)D);
        cr_expect(same_bits(&kp[1], &kp[0]) && same_bits(&vp[1], &vp[0]), "rope_qk_kv_append case %zu: pools", ci);
        for (int i = 0; i < 2; i++) lisa_tensor_free(&qkv[i]), lisa_tensor_free(&kp[i]), lisa_tensor_free(&vp[i]);
        lisa_tensor_free(&table), lisa_tensor_free(&pos), lisa_tensor_free(&slots);
    }
    /* a slot outside the pool: INVALID_ARG naming it, the pools untouched */
    lisa_tensor q = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 2, 8, 0, -1, 1), k = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 1, 8, 0, -1, 1);
    lisa_tensor v = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 1, 8, 0, -1, 1), table = rope_table(16, 8, 10000.0f);
    lisa_tensor kp = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 4, 1, 8, -1, 1), vp = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 4, 1, 8, -1, 1);
    lisa_tensor kp0 = copy_of(&kp), vp0 = copy_of(&vp);
    lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 1, 3, 0, 0, 0), slots = tu_tensor(LISA_DTYPE_I32, 1, 3, 0, 0, 0);
    const int32_t sl[3] = {0, 8, 1}, ps[3] = {1, 2, 3};
    memcpy(slots.data, sl, sizeof sl), memcpy(pos.data, ps, sizeof ps);
    OT_FAILS(lisa_op_rope_qk_kv_append(be, &q, &k, &v, &pos, &table, &kp, &vp, &slots), LISA_ERR_INVALID_ARG, "slot 8");
    cr_expect(same_bits(&kp, &kp0) && same_bits(&vp, &vp0), "a bad slot wrote to the pool");
    lisa_tensor q4 = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 3, 2, 8, -1, 1);
    OT_FAILS(lisa_op_rope_qk_kv_append(be, &q4, &k, &v, &pos, &table, &kp, &vp, &slots), LISA_ERR_SHAPE, "rope_qk_kv_append");
    lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&table), lisa_tensor_free(&kp);
    lisa_tensor_free(&vp), lisa_tensor_free(&kp0), lisa_tensor_free(&vp0), lisa_tensor_free(&pos), lisa_tensor_free(&slots);
    lisa_tensor_free(&q4);
    lisa_backend_free(be);
}

/* ---- MLP3 ---------------------------------------------------------------------------------------- */

Test(ops_fused, mlp3_is_copy_then_three_linears_bitwise) {
    lisa_backend *be = tu_cpu_backend(), *small = ot_small_backend(64 << 10);
    tu_rng r = tu_rng_seed(98);
    /* N, rows per token block, C, H0, H1, O: SAM's hypernetwork (256 -> 256 -> 256 -> 32) and IoU
     * head (-> 4) on one token row of [N, 6, C], awkward widths, a contiguous x */
    const int64_t cases[][6] = {{3, 6, 256, 256, 256, 32}, {2, 6, 256, 256, 256, 4}, {5, 1, 37, 19, 8, 3}, {1, 6, 32, 32, 32, 4}};
    for (size_t ci = 0; ci < 4; ci++)
        for (int wdt = 0; wdt < 2; wdt++) {
            const int64_t N = cases[ci][0], T = cases[ci][1], C = cases[ci][2], H0 = cases[ci][3], H1 = cases[ci][4];
            const int64_t O = cases[ci][5];
            lisa_backend *bb = wdt ? small : be;
            const lisa_dtype dt = wdt ? LISA_DTYPE_BF16 : LISA_DTYPE_F32;
            lisa_tensor tok = ot_rand(&r, LISA_DTYPE_F32, 3, N, T, C, 0, -2, 2), x;
            cr_assert(lisa_tensor_narrow(&x, &tok, 1, T > 1 ? 1 : 0, 1) == LISA_OK); /* [N, 1, C], strided rows */
            lisa_tensor w0 = ot_rand(&r, dt, 2, H0, C, 0, 0, -0.2, 0.2), w1 = ot_rand(&r, dt, 2, H1, H0, 0, 0, -0.2, 0.2);
            lisa_tensor w2 = ot_rand(&r, dt, 2, O, H1, 0, 0, -0.3, 0.3), b0 = ot_rand(&r, LISA_DTYPE_F32, 1, H0, 0, 0, 0, -0.2, 0.2);
            lisa_tensor b1 = ot_rand(&r, dt, 1, H1, 0, 0, 0, -0.2, 0.2), b2 = ot_rand(&r, LISA_DTYPE_F32, 1, O, 0, 0, 0, -1, 1);
            lisa_tensor t = tu_tensor(LISA_DTYPE_F32, 3, N, 1, C, 0), h0 = tu_tensor(LISA_DTYPE_F32, 3, N, 1, H0, 0);
            lisa_tensor h1 = tu_tensor(LISA_DTYPE_F32, 3, N, 1, H1, 0), ref = tu_tensor(LISA_DTYPE_F32, 3, N, 1, O, 0);
            OT_OK(lisa_op_copy(bb, &t, &x));
            OT_OK(lisa_op_linear(bb, &h0, &t, &w0, &b0));
            OT_OK(lisa_op_relu(bb, &h0, &h0));
            OT_OK(lisa_op_linear(bb, &h1, &h0, &w1, &b1));
            OT_OK(lisa_op_relu(bb, &h1, &h1));
            OT_OK(lisa_op_linear(bb, &ref, &h1, &w2, &b2));
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, N, 1, O, 0);
            tu_poison(&y);
            OT_OK(lisa_op_mlp3(bb, &y, &x, &w0, &b0, &w1, &b1, &w2, &b2));
            cr_expect(same_bits(&y, &ref), "mlp3 case %zu w %s: not the composition's bits", ci, lisa_dtype_name(dt));
            OT_OK(lisa_op_mlp3(bb, &y, &x, &w0, NULL, &w1, NULL, &w2, NULL)); /* no biases */
            lisa_tensor_free(&tok), lisa_tensor_free(&w0), lisa_tensor_free(&w1), lisa_tensor_free(&w2);
            lisa_tensor_free(&b0), lisa_tensor_free(&b1), lisa_tensor_free(&b2), lisa_tensor_free(&t), lisa_tensor_free(&h0);
            lisa_tensor_free(&h1), lisa_tensor_free(&ref), lisa_tensor_free(&y);
        }
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, 3, 8, 0, 0, -1, 1), w0 = ot_rand(&r, LISA_DTYPE_F32, 2, 5, 8, 0, 0, -1, 1);
    lisa_tensor w1 = ot_rand(&r, LISA_DTYPE_F32, 2, 4, 5, 0, 0, -1, 1), w2 = ot_rand(&r, LISA_DTYPE_F32, 2, 2, 4, 0, 0, -1, 1);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 3, 2, 0, 0), y3 = tu_tensor(LISA_DTYPE_F32, 2, 3, 3, 0, 0);
    OT_FAILS(lisa_op_mlp3(be, &y, &x, &w0, NULL, &w0, NULL, &w2, NULL), LISA_ERR_SHAPE, "w1");
    OT_FAILS(lisa_op_mlp3(be, &y3, &x, &w0, NULL, &w1, NULL, &w2, NULL), LISA_ERR_SHAPE, "mlp3");
    OT_FAILS(lisa_op_mlp3(be, &y, &x, &w0, NULL, &w1, NULL, NULL, NULL), LISA_ERR_INVALID_ARG, "mlp3");
    lisa_tensor_free(&x), lisa_tensor_free(&w0), lisa_tensor_free(&w1), lisa_tensor_free(&w2), lisa_tensor_free(&y);
    lisa_tensor_free(&y3);
    lisa_backend_free(be);
    lisa_backend_free(small);
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
