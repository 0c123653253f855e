/* tests/test_runtime.c — status names, last error, tensors, views, arenas, f16/bf16 bit patterns. */
#include "core/arena.h"
#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

Test(runtime, status_names) {
    cr_expect_str_eq(lisa_status_name(LISA_OK), "LISA_OK");
    cr_expect_str_eq(lisa_status_name(LISA_ERR_FORMAT), "LISA_ERR_FORMAT");
    cr_expect_str_eq(lisa_status_name((lisa_status)999), "LISA_ERR_UNKNOWN");
}

static void *other_thread(void *arg) {
    (void)arg;
    lisa_fail(LISA_ERR_IO, "thread-local %d", 2);
    return strcmp(lisa_last_error(), "thread-local 2") == 0 ? (void *)1 : NULL;
}

Test(runtime, last_error_is_thread_local) {
    lisa_status s = lisa_fail(LISA_ERR_FORMAT, "file %s: field '%s'", "a.json", "dtype");
    cr_expect_eq(s, LISA_ERR_FORMAT);
    pthread_t th;
    void *ret = NULL;
    pthread_create(&th, NULL, other_thread, NULL);
    pthread_join(th, &ret);
    cr_expect(ret != NULL);
    cr_expect_str_eq(lisa_last_error(), "file a.json: field 'dtype'");
    lisa_fail_context(s, "loading %s", "model");
    cr_expect_str_eq(lisa_last_error(), "loading model: file a.json: field 'dtype'");
    lisa_clear_error();
    cr_expect_str_eq(lisa_last_error(), "");
}

Test(runtime, tensor_views) {
    float buf[24];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    lisa_tensor t = lisa_tensor_view4(buf, LISA_DTYPE_F32, 3, 2, 3, 4, 0);
    cr_expect_eq(lisa_tensor_numel(&t), 24);
    cr_expect(lisa_tensor_is_contiguous(&t));
    cr_expect_eq(t.stride[0], 12);
    cr_expect_eq(lisa_tensor_dim(&t, -1), 4);

    lisa_tensor p;
    const int32_t perm[3] = {2, 0, 1};
    cr_assert_eq(lisa_tensor_permute(&p, &t, perm), LISA_OK);
    cr_expect(!lisa_tensor_is_contiguous(&p));
    int64_t idx[3] = {3, 1, 2}; /* p[3,1,2] == t[1,2,3] */
    cr_expect_eq(lisa_tensor_get(&p, idx), 1 * 12 + 2 * 4 + 3);

    lisa_tensor n;
    cr_assert_eq(lisa_tensor_narrow(&n, &t, 1, 1, 2), LISA_OK);
    int64_t i2[3] = {1, 0, 0};
    cr_expect_eq(lisa_tensor_get(&n, i2), 12 + 4);
    cr_expect_eq(lisa_tensor_narrow(&n, &t, 1, 2, 2), LISA_ERR_SHAPE);
    cr_expect(strstr(lisa_last_error(), "[2, 4)") != NULL);

    lisa_tensor r;
    const int64_t shape[2] = {6, 4};
    cr_expect_eq(lisa_tensor_reshape(&r, &t, 2, shape), LISA_OK);
    cr_expect_eq(lisa_tensor_reshape(&r, &p, 2, shape), LISA_ERR_SHAPE);
    const int64_t bad[2] = {5, 4};
    cr_expect_eq(lisa_tensor_reshape(&r, &t, 2, bad), LISA_ERR_SHAPE);

    char sbuf[64];
    cr_expect_str_eq(lisa_tensor_shape_str(&t, sbuf, sizeof sbuf), "[2, 3, 4] F32");
    lisa_dtype dt;
    cr_expect(lisa_dtype_from_name("BF16", &dt) && dt == LISA_DTYPE_BF16);
    cr_expect(!lisa_dtype_from_name("F8", &dt));
}

Test(runtime, arena_measure_then_run) {
    lisa_arena m;
    lisa_arena_init_measure(&m, "measure");
    void *p;
    cr_assert_eq(lisa_arena_alloc(&m, 100, &p), LISA_OK);
    cr_expect_null(p);
    size_t mark = lisa_arena_mark(&m);
    cr_assert_eq(lisa_arena_alloc(&m, 1000, &p), LISA_OK);
    lisa_arena_reset(&m, mark);
    cr_assert_eq(lisa_arena_alloc(&m, 10, &p), LISA_OK);
    size_t peak = m.peak;
    cr_expect_eq(peak, 256 + 1024);

    lisa_arena a;
    cr_assert_eq(lisa_arena_init(&a, "real", peak), LISA_OK);
    void *x, *y, *z;
    cr_assert_eq(lisa_arena_alloc(&a, 100, &x), LISA_OK);
    mark = lisa_arena_mark(&a);
    cr_assert_eq(lisa_arena_alloc(&a, 1000, &y), LISA_OK);
    cr_expect(((uintptr_t)y % LISA_ARENA_ALIGN) == 0);
    lisa_arena_reset(&a, mark);
    cr_assert_eq(lisa_arena_alloc(&a, 10, &z), LISA_OK);
    cr_expect_eq(z, y);
    cr_expect_eq(lisa_arena_alloc(&a, 4096, &z), LISA_ERR_OOM);
    cr_expect(strstr(lisa_last_error(), "real") != NULL);
    lisa_arena_free(&a);
}

/* Reference conversion through double arithmetic: nearest representable, ties to even. */
static uint16_t ref_round(double v, int man_bits, int min_exp, int max_exp, int bias, int exp_bits) {
    (void)exp_bits;
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    if (isnan(v)) return 0xffff;
    double max_finite = ldexp(2.0 - ldexp(1.0, -man_bits), max_exp);
    double ulp_max = ldexp(1.0, max_exp - man_bits);
    if (a >= max_finite + ulp_max / 2) return sign | (uint16_t)(((1 << exp_bits) - 1) << man_bits);
    int e;
    frexp(a, &e);
    e -= 1;
    if (e < min_exp) e = min_exp;
    double ulp = ldexp(1.0, e - man_bits);
    double q = a / ulp;
    double fl = floor(q), rem = q - fl;
    double m = (rem > 0.5 || (rem == 0.5 && fmod(fl, 2.0) == 1.0)) ? fl + 1 : fl;
    double val = m * ulp;
    if (val == 0) return sign;
    int e2;
    frexp(val, &e2);
    e2 -= 1;
    if (e2 < min_exp) return sign | (uint16_t)(int)(val / ldexp(1.0, min_exp - man_bits)); /* subnormal */
    uint16_t mant = (uint16_t)(int)((val / ldexp(1.0, e2) - 1.0) * (1 << man_bits) + 0.5);
    return sign | (uint16_t)((e2 + bias) << man_bits) | mant;
}

Test(runtime, half_conversions_round_to_nearest_even) {
    tu_rng r = tu_rng_seed(7);
    for (int i = 0; i < 200000; i++) {
        float f;
        uint32_t u = (uint32_t)tu_next_u64(&r);
        if (i % 3 == 0) u = (u & 0x80000000u) | ((112u + (u % 32u)) << 23) | (u & 0x7fffffu); /* f16 range */
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        uint16_t want_bf = ref_round(f, 7, -126, 127, 127, 8);
        uint16_t want_h = ref_round(f, 10, -14, 15, 15, 5);
        uint16_t got_bf = lisa_f32_to_bf16(f), got_h = lisa_f32_to_f16(f);
        if (got_bf != want_bf || got_h != want_h) {
            fprintf(stderr, "f=%a bits %08x: bf16 got %04x want %04x; f16 got %04x want %04x\n", (double)f, u, got_bf,
                    want_bf, got_h, want_h);
            cr_expect_fail("conversion mismatch (see stderr)");
            break;
        }
        /* widening is exact */
        if (isfinite(lisa_bf16_to_f32(got_bf)) && fabs(lisa_bf16_to_f32(got_bf) - f) > fmax(fabs(f) * 0x1p-8, 0x1p-133))
            cr_expect_fail("bf16 roundtrip error too large at bits %08x", u);
    }
    cr_expect(isnan(lisa_bf16_to_f32(lisa_f32_to_bf16(NAN))));
    cr_expect(isnan(lisa_f16_to_f32(lisa_f32_to_f16(NAN))));
    cr_expect(isinf(lisa_bf16_to_f32(lisa_f32_to_bf16(INFINITY))));
    cr_expect(isinf(lisa_f16_to_f32(lisa_f32_to_f16(-INFINITY))));
    cr_expect_eq(lisa_f32_to_f16(65504.0f), 0x7bff);
    cr_expect_eq(lisa_f32_to_f16(65520.0f), 0x7c00);
    cr_expect_eq(lisa_f32_to_f16(0x1p-24f), 0x0001);
    cr_expect_eq(lisa_f32_to_f16(0x1p-25f), 0x0000);  /* tie to even (0) */
    cr_expect_eq(lisa_f32_to_f16(0x1.8p-25f), 0x0001);
    cr_expect_eq(lisa_f16_to_f32(0x0001), 0x1p-24f);
    cr_expect_eq(lisa_f32_to_bf16(1.00390625f), 0x3f80); /* 1 + 2^-8: tie -> even */
    cr_expect_eq(lisa_f32_to_bf16(1.01171875f), 0x3f82); /* 1 + 3*2^-8: tie -> even (up) */
}
