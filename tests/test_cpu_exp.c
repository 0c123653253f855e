/* tests/test_cpu_exp.c — lisa_cpu_exp (kernels/cpu/cpu.h), the inline exp behind the CPU backend's
 * softmax, QuickGELU and SiLU, against libm's exp: relative error <= 1e-10 on a dense sweep of
 * [-708, 709] and on random arguments (the ops round the result to F32: 6e-8), and the edge cases
 * the ops rely on: e^0 = 1 exactly, -inf and anything below -708 round to 0 in F32, +inf and
 * overflow give +inf, NaN stays NaN. */
#include "kernels/cpu/cpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

static double rel_err(double got, double want) { return fabs(got - want) / want; }

Test(cpu_exp, dense_sweep_matches_libm) {
    double worst = 0, worst_x = 0;
    for (int64_t i = 0; i <= 1417000; i++) {
        const double x = -708.0 + (double)i * 1e-3 + 1.234567e-7 * (double)(i % 7);
        if (x > 709.0) break;
        const double e = rel_err(lisa_cpu_exp(x), exp(x));
        if (e > worst) worst = e, worst_x = x;
    }
    cr_expect(worst <= 1e-10, "worst relative error %.3g at x = %.17g", worst, worst_x);
}

Test(cpu_exp, random_arguments_and_f32_rounding) {
    uint64_t st = 0x9E3779B97F4A7C15ull;
    int f32_mismatch = 0;
    for (int i = 0; i < 1000000; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        const double u = (double)(st >> 11) * 0x1p-53; /* [0, 1) */
        const double x = -100.0 + 200.0 * u;           /* softmax/sigmoid arguments live here */
        const double got = lisa_cpu_exp(x), want = exp(x);
        cr_assert(rel_err(got, want) <= 1e-10, "x = %.17g: %.17g vs libm %.17g", x, got, want);
        f32_mismatch += (float)got != (float)want;
    }
    /* a double rounding can differ from libm's only when libm's result lies within 1e-10 relative
     * of an F32 rounding boundary: a handful per million at most */
    cr_expect(f32_mismatch <= 200, "%d of 1e6 F32 roundings differ from libm's", f32_mismatch);
}

Test(cpu_exp, edge_cases) {
    cr_expect_eq(lisa_cpu_exp(0.0), 1.0);
    cr_expect_eq(lisa_cpu_exp(-0.0), 1.0);
    cr_expect_eq((float)lisa_cpu_exp(-INFINITY), 0.0f);
    cr_expect_eq((float)lisa_cpu_exp(-1000.0), 0.0f);
    cr_expect_eq((float)lisa_cpu_exp(-104.0), 0.0f); /* below F32's smallest subnormal, as exp */
    cr_expect(1.0 + lisa_cpu_exp(-INFINITY) == 1.0);
    cr_expect(isinf(lisa_cpu_exp(INFINITY)) && lisa_cpu_exp(INFINITY) > 0);
    cr_expect(isinf(lisa_cpu_exp(710.0)));
    cr_expect(isnan(lisa_cpu_exp(NAN)));
    cr_expect(rel_err(lisa_cpu_exp(1.0), M_E) <= 1e-11);
    cr_expect(rel_err(lisa_cpu_exp(709.0), exp(709.0)) <= 1e-10);
}

/* lisa_cpu_softmax_row: masked tail zeroed, rows sum to 1, and a NaN score poisons the row as
 * torch.softmax does */
Test(cpu_exp, softmax_row) {
    float s[37];
    for (int j = 0; j < 37; j++)
        s[j] = (float)(j % 5) * 1.25f - 3.0f;
    lisa_cpu_softmax_row(s, 30, 37);
    double sum = 0;
    for (int j = 0; j < 30; j++)
        sum += s[j];
    cr_expect(fabs(sum - 1.0) < 1e-6, "row sums to %.9g", sum);
    for (int j = 30; j < 37; j++)
        cr_expect_eq(s[j], 0.0f);
    float t[5] = {1, 2, NAN, 4, 5};
    lisa_cpu_softmax_row(t, 5, 5);
    for (int j = 0; j < 5; j++)
        cr_expect(isnan(t[j]), "entry %d = %g", j, (double)t[j]);
}
