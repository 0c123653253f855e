/* tests/test_ops_rope.c — ROPE against (1) golden values from transformers 4.31
 * LlamaRotaryEmbedding + apply_rotary_pos_emb on torch 1.13 (tests/golden/gen_rope.py), and
 * (2) a double-precision rotation written here, whose angle follows the HF recipe (F32 inv_freq,
 * F32 product pos·inv_freq) because that rounding is part of the reference semantics.
 *
 * Tolerances: vs torch, atol 3e-7, rtol 0 (|y| < 2): the F32 inv_freq and angles match torch
 * bit for bit, but torch's vectorised cos/sin (Sleef, u10) differ from correctly rounded values by
 * one ulp in ~6% of cases, so ~6% of outputs differ by ~1 ulp (max seen 1.2e-7). Computing the
 * angle in double instead would miss the golden values by up to ~1e-4 at position 4000.
 * Vs the double rotation: atol 2e-6, rtol 2e-6. */
#include "ops_testutil.h"

#include <math.h>

/* The hash input of gen_rope.py, bit-identical to its numpy expression. */
static float golden_x(int64_t t, int64_t h, int64_t d) {
    int64_t k = (t * 7919 + h * 104729 + d * 31 + (t * d) % 977) % 2003;
    return (float)((double)k / 1000.0 - 1.0);
}

Test(ops_rope, matches_transformers_4_31) {
    lisa_backend *be = tu_cpu_backend();
    FILE *f = ot_open_golden("rope.txt");
    char line[4096];
    int n_cases = 0;
    while (ot_next_line(f, line, sizeof line)) {
        int D, T, H;
        double theta;
        cr_assert(sscanf(line, "case %d %lf %d %d", &D, &theta, &T, &H) == 4, "bad line '%s'", line);
        lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 1, T, 0, 0, 0);
        cr_assert(ot_next_line(f, line, sizeof line));
        char *p = line;
        for (int t = 0; t < T; t++) ((int32_t *)pos.data)[t] = (int32_t)strtol(p, &p, 10);
        lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 3, T, H, D, 0);
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++) ((float *)x.data)[((int64_t)t * H + h) * D + d] = golden_x(t, h, d);
        double *ref = malloc(sizeof(double) * (size_t)(T * H * D));
        for (int64_t i = 0; i < (int64_t)T * H * D; i++) {
            cr_assert(ot_next_line(f, line, sizeof line));
            unsigned bits; /* the exact F32 value (the decimal column is for humans) */
            cr_assert(sscanf(line, "%*s %x", &bits) == 1, "bad line '%s'", line);
            float v;
            memcpy(&v, &bits, 4);
            ref[i] = v;
        }
        lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, T, H, D, 0);
        tu_poison(&y);
        OT_OK(lisa_op_rope(be, &y, &x, &pos, (float)theta));
        char what[64];
        snprintf(what, sizeof what, "rope vs HF D=%d theta=%g", D, theta);
        cr_expect(tu_check_close(what, &y, ref, 3e-7, 0), "%s", what);
        free(ref);
        lisa_tensor_free(&pos);
        lisa_tensor_free(&x);
        lisa_tensor_free(&y);
        n_cases++;
    }
    fclose(f);
    cr_expect_eq(n_cases, 3);
    lisa_backend_free(be);
}

/* ref for x[B, T, H, D] with pos[B, T] (or [T] when pos_bt is false). */
static double *ref_rope(const lisa_tensor *x, const int32_t *pos, bool pos_bt, double theta) {
    const int64_t B = x->n_dims == 4 ? x->shape[0] : 1, T = x->shape[x->n_dims - 3], H = x->shape[x->n_dims - 2],
                  D = x->shape[x->n_dims - 1], D2 = D / 2;
    double *v = ot_values(x), *out = malloc(sizeof(double) * (size_t)(B * T * H * D));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < D2; i++) {
                /* HF: inv_freq = 1/(theta ** (arange(0, D, 2).float() / D)) in F32; freqs = t·inv_freq in F32 */
                const float inv = 1.0f / (float)pow(theta, (double)((float)(2 * i) / (float)D));
                double ang = (double)((float)pos[pos_bt ? b * T + t : t] * inv);
                for (int64_t h = 0; h < H; h++) {
                    const int64_t o = ((b * T + t) * H + h) * D;
                    out[o + i] = v[o + i] * cos(ang) - v[o + i + D2] * sin(ang);
                    out[o + i + D2] = v[o + i + D2] * cos(ang) + v[o + i] * sin(ang);
                }
            }
    free(v);
    return out;
}

Test(ops_rope, head_dims_batches_in_place) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(40);
    const int64_t dims[] = {8, 64, 80, 128};
    const int64_t Ts[] = {1, 7, 19};
    for (size_t di = 0; di < 4; di++)
        for (size_t ti = 0; ti < 3; ti++) {
            const int64_t D = dims[di], T = Ts[ti], B = 2, H = 3;
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, B, T, H, D, -2, 2);
            lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 2, B, T, 0, 0);
            for (int64_t e = 0; e < B * T; e++) ((int32_t *)pos.data)[e] = (int32_t)(tu_next_u64(&r) % 4096);
            double *ref = ref_rope(&x, pos.data, true, 10000.0);
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, B, T, H, D);
            tu_poison(&y);
            OT_OK(lisa_op_rope(be, &y, &x, &pos, 10000.0f));
            cr_expect(tu_check_close("rope [B,T,H,D]", &y, ref, 2e-6, 2e-6), "D=%lld T=%lld", (long long)D, (long long)T);
            OT_OK(lisa_op_rope(be, &x, &x, &pos, 10000.0f)); /* in place */
            cr_expect(tu_check_close("rope in-place", &x, ref, 2e-6, 2e-6));
            free(ref);
            lisa_tensor_free(&x);
            lisa_tensor_free(&pos);
            lisa_tensor_free(&y);
        }
    /* [T, H, D] with pos [T], a long sequence (T = 733) */
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 3, 733, 2, 128, 0, -1, 1);
    lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 1, 733, 0, 0, 0);
    for (int t = 0; t < 733; t++) ((int32_t *)pos.data)[t] = 1000 + t;
    double *ref = ref_rope(&x, pos.data, false, 10000.0);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 3, 733, 2, 128, 0);
    tu_poison(&y);
    OT_OK(lisa_op_rope(be, &y, &x, &pos, 10000.0f));
    cr_expect(tu_check_close("rope [T,H,D]", &y, ref, 2e-6, 2e-6));
    free(ref);
    /* errors */
    lisa_tensor x_odd = tu_tensor(LISA_DTYPE_F32, 3, 733, 2, 37, 0);
    lisa_tensor pos_short = tu_tensor(LISA_DTYPE_I32, 1, 732, 0, 0, 0);
    lisa_tensor pos_i64 = tu_tensor(LISA_DTYPE_I64, 1, 733, 0, 0, 0);
    OT_FAILS(lisa_op_rope(be, &x_odd, &x_odd, &pos, 10000.0f), LISA_ERR_SHAPE, "rope");
    OT_FAILS(lisa_op_rope(be, &y, &x, &pos_short, 10000.0f), LISA_ERR_SHAPE, "rope");
    OT_FAILS(lisa_op_rope(be, &y, &x, &pos_i64, 10000.0f), LISA_ERR_SHAPE, "rope");
    lisa_tensor_free(&x);
    lisa_tensor_free(&pos);
    lisa_tensor_free(&y);
    lisa_tensor_free(&x_odd);
    lisa_tensor_free(&pos_short);
    lisa_tensor_free(&pos_i64);
    lisa_backend_free(be);
}

Test(ops_rope, small_scratch_blocks) {
    /* 4 KiB scratch: the cos/sin table holds only a few (b, t) rows per block */
    lisa_backend *be = ot_small_backend(4 << 10);
    tu_rng r = tu_rng_seed(41);
    lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 19, 3, 128, -1, 1);
    lisa_tensor pos = tu_tensor(LISA_DTYPE_I32, 1, 19, 0, 0, 0);
    for (int t = 0; t < 19; t++) ((int32_t *)pos.data)[t] = 3 * t;
    double *ref = ref_rope(&x, pos.data, false, 10000.0);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 4, 2, 19, 3, 128);
    tu_poison(&y);
    OT_OK(lisa_op_rope(be, &y, &x, &pos, 10000.0f));
    cr_expect(tu_check_close("rope small scratch", &y, ref, 2e-6, 2e-6));
    free(ref);
    lisa_tensor_free(&x);
    lisa_tensor_free(&pos);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}
