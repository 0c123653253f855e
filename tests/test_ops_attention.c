/* tests/test_ops_attention.c — ATTENTION and REL_POS against a naive double-precision reference
 * written here (scores, masks, decomposed rel-pos terms and softmax all in double, straight from
 * the SAM / HF formulas), plus a hand-checked case.
 *
 * Tolerances (|got − ref| <= atol + rtol·|ref|): the op's q·kᵀ and p·v are F32 sgemms and its
 * additive terms are F32, so attention outputs (|y| <~ 1) use atol 2e-6, rtol 1e-5; rel-pos runs
 * with larger scores (|s| up to ~10) and uses atol 1e-5, rtol 1e-5; rel_pos itself sums in double
 * and rounds once: atol 1e-6, rtol 1e-6. */
#include "ops_testutil.h"

#include <math.h>

typedef struct attn_case {
    int64_t B, Tq, Tk, Hq, Hkv, D;
    bool causal;
} attn_case;

/* Naive reference. q, k, v, bias: dense doubles in logical order; bias broadcast per its shape
 * (right-aligned [bB, bH, Tq, Tk]); rh/rw: [B, Hq, Tq, k_h] / [B, Hq, Tq, k_w] or NULL. */
static double *ref_attention(const attn_case *c, const double *q, const double *k, const double *v, double scale,
                             const double *bias, const int64_t bshape[4], const double *rh, const double *rw,
                             int64_t k_h, int64_t k_w) {
    const int64_t G = c->Hq / c->Hkv;
    double *out = calloc((size_t)(c->B * c->Tq * c->Hq * c->D), sizeof(double));
    double *s = malloc(sizeof(double) * (size_t)c->Tk);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Tq; i++) {
                const int64_t kh = h / G;
                const double *qi = q + ((b * c->Tq + i) * c->Hq + h) * c->D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < c->Tk; j++) {
                    const double *kj = k + ((b * c->Tk + j) * c->Hkv + kh) * c->D;
                    double acc = 0;
                    for (int64_t d = 0; d < c->D; d++) acc += qi[d] * kj[d];
                    acc *= scale;
                    if (bias) {
                        int64_t bb = bshape[0] == 1 ? 0 : b, bh = bshape[1] == 1 ? 0 : h;
                        acc += bias[((bb * bshape[1] + bh) * c->Tq + i) * c->Tk + j];
                    }
                    if (rh) {
                        const int64_t ky = j / k_w, kx = j % k_w, row = (b * c->Hq + h) * c->Tq + i;
                        acc += rh[row * k_h + ky] + rw[row * k_w + kx];
                    }
                    if (c->causal && j > i + c->Tk - c->Tq) acc = -INFINITY;
                    s[j] = acc;
                    if (acc > mx) mx = acc;
                }
                double sum = 0;
                for (int64_t j = 0; j < c->Tk; j++) sum += (s[j] = exp(s[j] - mx));
                double *o = out + ((b * c->Tq + i) * c->Hq + h) * c->D;
                for (int64_t j = 0; j < c->Tk; j++) {
                    const double *vj = v + ((b * c->Tk + j) * c->Hkv + kh) * c->D;
                    for (int64_t d = 0; d < c->D; d++) o[d] += s[j] / sum * vj[d];
                }
            }
    free(s);
    return out;
}

/* Runs one case with contiguous q, k, v (optionally an additive bias of shape bshape) and checks. */
static void run_case(lisa_backend *be, tu_rng *r, const attn_case *c, const int64_t *bshape, int bias_dims) {
    lisa_tensor q = ot_rand(r, LISA_DTYPE_F32, 4, c->B, c->Tq, c->Hq, c->D, -1, 1);
    lisa_tensor k = ot_rand(r, LISA_DTYPE_F32, 4, c->B, c->Tk, c->Hkv, c->D, -1, 1);
    lisa_tensor v = ot_rand(r, LISA_DTYPE_F32, 4, c->B, c->Tk, c->Hkv, c->D, -1, 1);
    lisa_tensor bias = {0};
    int64_t b4[4] = {1, 1, c->Tq, c->Tk};
    if (bshape) {
        int64_t s[4] = {1, 1, 1, 1}; /* the last bias_dims entries of bshape */
        for (int d = 0; d < bias_dims; d++) s[d] = bshape[4 - bias_dims + d];
        bias = ot_rand(r, LISA_DTYPE_F32, bias_dims, s[0], s[1], s[2], s[3], -2, 2);
        for (int d = 0; d < 4; d++) b4[d] = bshape[d];
        float *bd = bias.data;
        for (int64_t e = 3; e < lisa_tensor_numel(&bias); e += 7) bd[e] = -INFINITY; /* masked keys */
    }
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, c->B, c->Tq, c->Hq, c->D);
    tu_poison(&y);
    lisa_attn_params p = {.scale = (float)(1.0 / sqrt((double)c->D)), .causal = c->causal, .bias = bshape ? &bias : NULL};
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    double *qv = ot_values(&q), *kv = ot_values(&k), *vv = ot_values(&v), *bv = bshape ? ot_values(&bias) : NULL;
    double *ref = ref_attention(c, qv, kv, vv, p.scale, bv, b4, NULL, NULL, 0, 0);
    char what[160];
    snprintf(what, sizeof what, "attention B=%lld Tq=%lld Tk=%lld Hq=%lld Hkv=%lld D=%lld causal=%d bias=%dd",
             (long long)c->B, (long long)c->Tq, (long long)c->Tk, (long long)c->Hq, (long long)c->Hkv, (long long)c->D,
             c->causal, bshape ? bias_dims : 0);
    cr_expect(tu_check_close(what, &y, ref, 2e-6, 1e-5), "%s", what);
    free(qv);
    free(kv);
    free(vv);
    free(bv);
    free(ref);
    lisa_tensor_free(&q);
    lisa_tensor_free(&k);
    lisa_tensor_free(&v);
    lisa_tensor_free(&bias);
    lisa_tensor_free(&y);
}

Test(ops_attention, hand_checked) {
    lisa_backend *be = tu_cpu_backend();
    float qd[4] = {1, 0, 1, 0}, kd[4] = {1, 0, 0, 1}, vd[4] = {1, 2, 3, 4}, yd[4];
    lisa_tensor q = lisa_tensor_view4(qd, LISA_DTYPE_F32, 4, 1, 2, 1, 2);
    lisa_tensor k = lisa_tensor_view4(kd, LISA_DTYPE_F32, 4, 1, 2, 1, 2);
    lisa_tensor v = lisa_tensor_view4(vd, LISA_DTYPE_F32, 4, 1, 2, 1, 2);
    lisa_tensor y = lisa_tensor_view4(yd, LISA_DTYPE_F32, 4, 1, 2, 1, 2);
    /* scores of both queries: [1, 0] -> p = [e/(1+e), 1/(1+e)] = [0.7310585786, 0.2689414214];
     * y = 0.7310585786·[1, 2] + 0.2689414214·[3, 4] = [1.5378828427, 2.5378828427] */
    lisa_attn_params p = {.scale = 1.0f};
    tu_poison(&y);
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    const double want[4] = {1.5378828427399902, 2.5378828427399902, 1.5378828427399902, 2.5378828427399902};
    cr_expect(tu_check_close("attention hand", &y, want, 1e-6, 0));
    /* causal: query 0 sees key 0 only -> v0 = [1, 2] */
    p.causal = true;
    tu_poison(&y);
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    const double want_c[4] = {1, 2, 1.5378828427399902, 2.5378828427399902};
    cr_expect(tu_check_close("attention hand causal", &y, want_c, 1e-6, 0));
    lisa_backend_free(be);
}

Test(ops_attention, causal_kv_prefix_gqa_head_dims) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(50);
    const attn_case cases[] = {
        {2, 7, 19, 4, 4, 128, true},  /* decode-like: 7 new tokens after a 12-token KV prefix */
        {1, 1, 37, 2, 2, 128, true},  /* one decode step */
        {1, 19, 19, 8, 2, 64, true},  /* prefill with GQA (group 4) */
        {2, 3, 733, 6, 3, 80, false}, /* GQA, long key axis */
        {1, 37, 37, 3, 1, 8, false},  /* multi-query, D = 8 */
        {3, 7, 7, 2, 2, 80, false},
        {1, 1, 1, 1, 1, 64, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(be, &r, &cases[i], NULL, 0);
    lisa_backend_free(be);
}

Test(ops_attention, additive_bias_broadcasting) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(51);
    const attn_case c = {2, 7, 19, 3, 3, 8, false};
    const int64_t full[4] = {2, 3, 7, 19}, per_head[4] = {1, 3, 7, 19}, per_batch[4] = {2, 1, 7, 19},
                  plain[4] = {1, 1, 7, 19};
    run_case(be, &r, &c, full, 4);
    run_case(be, &r, &c, per_head, 4);
    run_case(be, &r, &c, per_batch, 4);
    run_case(be, &r, &c, plain, 2); /* [Tq, Tk] */
    const attn_case cc = {1, 7, 19, 2, 2, 64, true};
    const int64_t two_heads[4] = {1, 2, 7, 19};
    run_case(be, &r, &cc, two_heads, 3); /* bias [H, Tq, Tk] + causal */
    lisa_backend_free(be);
}

Test(ops_attention, strided_bias) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(55);
    const attn_case c = {1, 7, 19, 2, 2, 8, false};
    lisa_tensor q = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 7, 2, 8, -1, 1);
    lisa_tensor k = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 19, 2, 8, -1, 1);
    lisa_tensor v = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 19, 2, 8, -1, 1);
    /* bias [1, H, Tq, Tk] as the transpose of a [1, H, Tk, Tq] buffer */
    lisa_tensor bt = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 2, 19, 7, -2, 2), bias;
    const int32_t perm[4] = {0, 1, 3, 2};
    cr_assert(lisa_tensor_permute(&bias, &bt, perm) == LISA_OK);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 1, 7, 2, 8);
    tu_poison(&y);
    lisa_attn_params p = {.scale = 0.3f, .bias = &bias};
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    double *qv = ot_values(&q), *kv = ot_values(&k), *vv = ot_values(&v), *bv = ot_values(&bias);
    const int64_t b4[4] = {1, 2, 7, 19};
    double *ref = ref_attention(&c, qv, kv, vv, 0.3f, bv, b4, NULL, NULL, 0, 0);
    cr_expect(tu_check_close("attention strided bias", &y, ref, 2e-6, 1e-5));
    free(qv);
    free(kv);
    free(vv);
    free(bv);
    free(ref);
    lisa_tensor_free(&q);
    lisa_tensor_free(&k);
    lisa_tensor_free(&v);
    lisa_tensor_free(&bt);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

Test(ops_attention, fully_masked_row_is_nan_like_torch) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(52);
    lisa_tensor q = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 3, 1, 8, -1, 1);
    lisa_tensor k = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 5, 1, 8, -1, 1);
    lisa_tensor v = ot_rand(&r, LISA_DTYPE_F32, 4, 1, 5, 1, 8, -1, 1);
    lisa_tensor bias = tu_tensor(LISA_DTYPE_F32, 2, 3, 5, 0, 0);
    for (int e = 0; e < 15; e++) ((float *)bias.data)[e] = e / 5 == 1 ? -INFINITY : 0.0f; /* row 1 masked */
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 1, 3, 1, 8);
    lisa_attn_params p = {.scale = 0.35f, .bias = &bias};
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    for (int d = 0; d < 8; d++) {
        cr_expect(isnan(((float *)y.data)[8 + d]), "masked row -> NaN");
        cr_expect(isfinite(((float *)y.data)[d]) && isfinite(((float *)y.data)[16 + d]));
    }
    lisa_tensor_free(&q);
    lisa_tensor_free(&k);
    lisa_tensor_free(&v);
    lisa_tensor_free(&bias);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

Test(ops_attention, strided_qkv_from_fused_projection_and_query_blocks) {
    /* 512 KiB scratch: K and V of [733, 64] take 375 KB, so queries go in blocks of ~40 rows */
    lisa_backend *be = ot_small_backend(512 << 10);
    tu_rng r = tu_rng_seed(53);
    const attn_case c = {2, 100, 733, 2, 2, 64, false};
    /* qkv[B, T, 3·H, D] as a fused Linear output; q, k, v are narrows of dim 2 (strided views) */
    lisa_tensor qkv_q = ot_rand(&r, LISA_DTYPE_F32, 4, c.B, c.Tq, 3 * c.Hq, c.D, -1, 1);
    lisa_tensor qkv_k = ot_rand(&r, LISA_DTYPE_F32, 4, c.B, c.Tk, 3 * c.Hq, c.D, -1, 1);
    lisa_tensor q, k, v;
    cr_assert(lisa_tensor_narrow(&q, &qkv_q, 2, 0, c.Hq) == LISA_OK);
    cr_assert(lisa_tensor_narrow(&k, &qkv_k, 2, c.Hq, c.Hq) == LISA_OK);
    cr_assert(lisa_tensor_narrow(&v, &qkv_k, 2, 2 * c.Hq, c.Hq) == LISA_OK);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, c.B, c.Tq, c.Hq, c.D);
    tu_poison(&y);
    lisa_attn_params p = {.scale = 0.125f};
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    double *qv = ot_values(&q), *kv = ot_values(&k), *vv = ot_values(&v);
    double *ref = ref_attention(&c, qv, kv, vv, 0.125, NULL, NULL, NULL, NULL, 0, 0);
    cr_expect(tu_check_close("attention strided + blocked", &y, ref, 2e-6, 1e-5));
    /* causal with a KV prefix through the blocked path */
    const attn_case cc = {2, 100, 733, 2, 2, 64, true};
    p.causal = true;
    tu_poison(&y);
    OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
    free(ref);
    ref = ref_attention(&cc, qv, kv, vv, 0.125, NULL, NULL, NULL, NULL, 0, 0);
    cr_expect(tu_check_close("attention strided + blocked causal", &y, ref, 2e-6, 1e-5));
    free(qv);
    free(kv);
    free(vv);
    free(ref);
    lisa_tensor_free(&qkv_q);
    lisa_tensor_free(&qkv_k);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

/* rel_h[b, h, (y, x), ky] = Σ_c q·Rh[y − ky + k_h − 1], rel_w likewise with x, kx — in double. */
static void ref_rel(const double *q, const double *tab_h, const double *tab_w, int64_t B, int64_t qh, int64_t qw,
                    int64_t H, int64_t D, double *rh, double *rw) {
    const int64_t T = qh * qw;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t yy = t / qw, xx = t % qw, row = (b * H + h) * T + t;
                const double *qt = q + ((b * T + t) * H + h) * D;
                for (int64_t ky = 0; ky < qh; ky++) {
                    double acc = 0;
                    for (int64_t c = 0; c < D; c++) acc += qt[c] * tab_h[(yy - ky + qh - 1) * D + c];
                    rh[row * qh + ky] = acc;
                }
                for (int64_t kx = 0; kx < qw; kx++) {
                    double acc = 0;
                    for (int64_t c = 0; c < D; c++) acc += qt[c] * tab_w[(xx - kx + qw - 1) * D + c];
                    rw[row * qw + kx] = acc;
                }
            }
}

Test(ops_attention, rel_pos_op_and_sam_attention) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(54);
    const int64_t grids[][2] = {{5, 7}, {14, 14}, {1, 3}};
    const lisa_dtype tdt[] = {LISA_DTYPE_F32, LISA_DTYPE_BF16, LISA_DTYPE_F16};
    for (size_t gi = 0; gi < 3; gi++) {
        const int64_t qh = grids[gi][0], qw = grids[gi][1], T = qh * qw, B = 2, H = 2, D = 80;
        /* q as the strided narrow of a fused qkv [B, T, 3H, D] */
        lisa_tensor qkv = ot_rand(&r, LISA_DTYPE_F32, 4, B, T, 3 * H, D, -1, 1), q, k, v;
        cr_assert(lisa_tensor_narrow(&q, &qkv, 2, 0, H) == LISA_OK);
        cr_assert(lisa_tensor_narrow(&k, &qkv, 2, H, H) == LISA_OK);
        cr_assert(lisa_tensor_narrow(&v, &qkv, 2, 2 * H, H) == LISA_OK);
        lisa_tensor th = ot_rand(&r, tdt[gi], 2, 2 * qh - 1, D, 0, 0, -0.5, 0.5);
        lisa_tensor tw = ot_rand(&r, tdt[gi], 2, 2 * qw - 1, D, 0, 0, -0.5, 0.5);
        lisa_tensor rh = tu_tensor(LISA_DTYPE_F32, 4, B, H, T, qh), rw = tu_tensor(LISA_DTYPE_F32, 4, B, H, T, qw);
        tu_poison(&rh);
        tu_poison(&rw);
        OT_OK(lisa_op_rel_pos(be, &rh, &rw, &q, &th, &tw, (int32_t)qh, (int32_t)qw));
        double *qv = ot_values(&q), *kv = ot_values(&k), *vv = ot_values(&v), *thv = ot_values(&th),
               *twv = ot_values(&tw);
        double *rrh = malloc(sizeof(double) * (size_t)(B * H * T * qh)), *rrw = malloc(sizeof(double) * (size_t)(B * H * T * qw));
        ref_rel(qv, thv, twv, B, qh, qw, H, D, rrh, rrw);
        cr_expect(tu_check_close("rel_pos rel_h", &rh, rrh, 1e-6, 1e-6), "grid %lldx%lld", (long long)qh, (long long)qw);
        cr_expect(tu_check_close("rel_pos rel_w", &rw, rrw, 1e-6, 1e-6), "grid %lldx%lld", (long long)qh, (long long)qw);
        /* SAM attention: (q·scale)kᵀ + rel_h + rel_w with the unscaled-q terms */
        const attn_case c = {B, T, T, H, H, D, false};
        lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, B, T, H, D);
        tu_poison(&y);
        lisa_attn_params p = {.scale = (float)(1.0 / sqrt(80.0)), .rel_h = &rh, .rel_w = &rw};
        OT_OK(lisa_op_attention(be, &y, &q, &k, &v, &p));
        double *ref = ref_attention(&c, qv, kv, vv, p.scale, NULL, NULL, rrh, rrw, qh, qw);
        cr_expect(tu_check_close("attention + rel-pos", &y, ref, 1e-5, 1e-5), "grid %lldx%lld", (long long)qh, (long long)qw);
        free(qv);
        free(kv);
        free(vv);
        free(thv);
        free(twv);
        free(rrh);
        free(rrw);
        free(ref);
        lisa_tensor_free(&qkv);
        lisa_tensor_free(&th);
        lisa_tensor_free(&tw);
        lisa_tensor_free(&rh);
        lisa_tensor_free(&rw);
        lisa_tensor_free(&y);
    }
    lisa_backend_free(be);
}

Test(ops_attention, rel_pos_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor q = tu_tensor(LISA_DTYPE_F32, 4, 1, 35, 2, 8);
    lisa_tensor th = tu_tensor(LISA_DTYPE_F32, 2, 9, 8, 0, 0), tw = tu_tensor(LISA_DTYPE_F32, 2, 13, 8, 0, 0);
    lisa_tensor th_long = tu_tensor(LISA_DTYPE_F32, 2, 11, 8, 0, 0), tw_d = tu_tensor(LISA_DTYPE_F32, 2, 13, 9, 0, 0);
    lisa_tensor rh = tu_tensor(LISA_DTYPE_F32, 4, 1, 2, 35, 5), rw = tu_tensor(LISA_DTYPE_F32, 4, 1, 2, 35, 7);
    lisa_tensor rh_k = tu_tensor(LISA_DTYPE_F32, 4, 1, 2, 35, 6);
    memset(q.data, 0, lisa_tensor_nbytes(&q));
    OT_OK(lisa_op_rel_pos(be, &rh, &rw, &q, &th, &tw, 5, 7));
    OT_FAILS(lisa_op_rel_pos(be, &rh, &rw, &q, &th, &tw, 7, 5), LISA_ERR_UNSUPPORTED, "rel_pos"); /* grids differ */
    OT_FAILS(lisa_op_rel_pos(be, &rh, &rw, &q, &th_long, &tw, 5, 7), LISA_ERR_UNSUPPORTED, "rel_pos");
    OT_FAILS(lisa_op_rel_pos(be, &rh_k, &rw, &q, &th, &tw, 5, 7), LISA_ERR_UNSUPPORTED, "rel_pos");
    OT_FAILS(lisa_op_rel_pos(be, &rh, &rw, &q, &th, &tw, 6, 6), LISA_ERR_SHAPE, "rel_pos"); /* 36 != 35 tokens */
    OT_FAILS(lisa_op_rel_pos(be, &rh, &rw, &q, &th, &tw_d, 5, 7), LISA_ERR_SHAPE, "rel_pos");
    lisa_tensor_free(&q);
    lisa_tensor_free(&th);
    lisa_tensor_free(&tw);
    lisa_tensor_free(&th_long);
    lisa_tensor_free(&tw_d);
    lisa_tensor_free(&rh);
    lisa_tensor_free(&rw);
    lisa_tensor_free(&rh_k);
    lisa_backend_free(be);
}

Test(ops_attention, shape_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor q = tu_tensor(LISA_DTYPE_F32, 4, 1, 7, 6, 8), k = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 4, 8);
    lisa_tensor k3 = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 3, 8), v3 = tu_tensor(LISA_DTYPE_F32, 4, 1, 5, 3, 9);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 1, 7, 6, 8), y_bad = tu_tensor(LISA_DTYPE_F32, 4, 1, 7, 6, 9);
    lisa_tensor bias_bad = tu_tensor(LISA_DTYPE_F32, 4, 1, 2, 7, 5);
    lisa_tensor rh = tu_tensor(LISA_DTYPE_F32, 4, 1, 6, 7, 2), rw = tu_tensor(LISA_DTYPE_F32, 4, 1, 6, 7, 3);
    memset(q.data, 0, lisa_tensor_nbytes(&q));
    memset(k3.data, 0, lisa_tensor_nbytes(&k3));
    lisa_attn_params p = {.scale = 1.0f};
    OT_FAILS(lisa_op_attention(be, &y, &q, &k, &k, &p), LISA_ERR_SHAPE, "attention"); /* 6 % 4 != 0 */
    OT_FAILS(lisa_op_attention(be, &y, &q, &k3, &v3, &p), LISA_ERR_SHAPE, "attention");
    OT_FAILS(lisa_op_attention(be, &y_bad, &q, &k3, &k3, &p), LISA_ERR_SHAPE, "attention");
    p.bias = &bias_bad; /* 2 heads vs 6 */
    OT_FAILS(lisa_op_attention(be, &y, &q, &k3, &k3, &p), LISA_ERR_SHAPE, "attention");
    p.bias = NULL;
    p.rel_h = &rh, p.rel_w = &rw; /* 2·3 = 6 keys vs 5 */
    OT_FAILS(lisa_op_attention(be, &y, &q, &k3, &k3, &p), LISA_ERR_SHAPE, "attention");
    p.rel_h = p.rel_w = NULL;
    p.causal = true; /* 7 queries, 5 keys */
    OT_FAILS(lisa_op_attention(be, &y, &q, &k3, &k3, &p), LISA_ERR_SHAPE, "attention");
    lisa_tensor_free(&q);
    lisa_tensor_free(&k);
    lisa_tensor_free(&k3);
    lisa_tensor_free(&v3);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&bias_bad);
    lisa_tensor_free(&rh);
    lisa_tensor_free(&rw);
    lisa_backend_free(be);
}
