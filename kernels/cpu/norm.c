/* kernels/cpu/norm.c — LAYERNORM, LAYERNORM2D, RMSNORM, SOFTMAX (ops.def).
 *
 * Dimension letters: R rows, C normalized width; B batch, H, W pixel grid (layernorm2d).
 * Reductions (means, variances, softmax sums) accumulate in double; variances are two-pass
 * (mean first, then Σ(x − mean)²), so they never go negative. In-place (y == x) is supported:
 * every row's statistics are complete before its outputs are written.
 */
#include "kernels/cpu/cpu.h"

#include <math.h>
#include <string.h>

static lisa_status check_alias(const char *op, const lisa_tensor *y, const lisa_tensor *x) {
    if (y->data == x->data) return LISA_OK; /* in-place: both contiguous and the same shape (checked) */
    return lisa_cpu_check_no_overlap(op, "x", y, x);
}

/* g/b [C] parameter (or NULL) widened into scratch; F32 parameters are used in place. */
static lisa_status load_vec(lisa_backend *be, const char *op, const char *what, const lisa_tensor *t, int64_t C,
                            const float **out) {
    char s[96];
    *out = NULL;
    if (!t) return LISA_OK;
    LISA_TRY(lisa_cpu_check_param(op, what, t));
    if (t->n_dims != 1 || t->shape[0] != C)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s, want [%lld]", op, what, lisa_tensor_shape_str(t, s, sizeof s),
                         (long long)C);
    if (t->dtype == LISA_DTYPE_F32) {
        *out = t->data;
        return LISA_OK;
    }
    float *v;
    LISA_TRY(lisa_cpu_scratch_f32(be, op, C, &v));
    lisa_cpu_load_f32(v, t, 0, C);
    *out = v;
    return LISA_OK;
}

static lisa_status row_checks(const char *op, lisa_tensor *y, const lisa_tensor *x) {
    char s[96];
    LISA_TRY(lisa_cpu_check_f32(op, "x", x, true));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    LISA_TRY(lisa_cpu_check_same_shape(op, y, x));
    if (x->n_dims < 1)
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s has no last dim", op, lisa_tensor_shape_str(x, s, sizeof s));
    return check_alias(op, y, x);
}

/* torch.nn.functional.layer_norm over the last dim: biased variance, eps inside the sqrt. */
lisa_status lisa_cpu_layernorm(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g,
                               const lisa_tensor *b, float eps) {
    LISA_TRY(row_checks("layernorm", y, x));
    const int64_t C = x->shape[x->n_dims - 1];
    const int64_t R = C ? lisa_tensor_numel(x) / C : 0;
    size_t mark = lisa_arena_mark(&be->scratch);
    const float *gv, *bv;
    lisa_status st = load_vec(be, "layernorm", "g", g, C, &gv);
    if (st == LISA_OK) st = load_vec(be, "layernorm", "b", b, C, &bv);
    if (st == LISA_OK) {
        const float *xd = x->data;
        float *yd = y->data;
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, R * C))
        for (int64_t r = 0; r < R; r++) {
            const float *xr = xd + r * C;
            float *yr = yd + r * C;
            double sum = 0, sq = 0;
            for (int64_t c = 0; c < C; c++)
                sum += xr[c];
            const double mean = sum / (double)C;
            for (int64_t c = 0; c < C; c++)
                sq += (xr[c] - mean) * (xr[c] - mean);
            const double rstd = 1.0 / sqrt(sq / (double)C + (double)eps);
            for (int64_t c = 0; c < C; c++) {
                double v = (xr[c] - mean) * rstd;
                if (gv) v *= gv[c];
                if (bv) v += bv[c];
                yr[c] = (float)v;
            }
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* SAM LayerNorm2d (segment_anything/modeling/common.py): per pixel over channels,
 * u = x.mean(1); s = (x − u)².mean(1); y = g[c]·(x − u)/√(s + eps) + b[c]. */
lisa_status lisa_cpu_layernorm2d(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g,
                                 const lisa_tensor *b, float eps) {
    char s[96];
    LISA_TRY(row_checks("layernorm2d", y, x));
    if (x->n_dims != 3 && x->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "layernorm2d: x %s, want [B, C, H, W] or [C, H, W]",
                         lisa_tensor_shape_str(x, s, sizeof s));
    const int64_t B = x->n_dims == 4 ? x->shape[0] : 1;
    const int64_t C = x->shape[x->n_dims - 3];
    const int64_t P = x->shape[x->n_dims - 2] * x->shape[x->n_dims - 1]; /* pixels per image */
    size_t mark = lisa_arena_mark(&be->scratch);
    const float *gv, *bv;
    lisa_status st = load_vec(be, "layernorm2d", "g", g, C, &gv);
    if (st == LISA_OK) st = load_vec(be, "layernorm2d", "b", b, C, &bv);
    if (st == LISA_OK && C > 0) {
        enum { PB = 64 }; /* pixels per block: the channel loop then streams contiguous runs */
        const int64_t nblk = (P + PB - 1) / PB;
        const float *xd = x->data;
        float *yd = y->data;
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, B * C * P))
        for (int64_t job = 0; job < B * nblk; job++) {
            const int64_t bi = job / nblk, p0 = (job % nblk) * PB;
            const int64_t np = P - p0 < PB ? P - p0 : PB;
            const float *xb = xd + bi * C * P + p0;
            float *yb = yd + bi * C * P + p0;
            double mean[PB], rstd[PB];
            for (int64_t p = 0; p < np; p++)
                mean[p] = 0, rstd[p] = 0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < np; p++)
                    mean[p] += xb[c * P + p];
            for (int64_t p = 0; p < np; p++)
                mean[p] /= (double)C;
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < np; p++) {
                    double d = xb[c * P + p] - mean[p];
                    rstd[p] += d * d;
                }
            for (int64_t p = 0; p < np; p++)
                rstd[p] = 1.0 / sqrt(rstd[p] / (double)C + (double)eps);
            for (int64_t c = 0; c < C; c++) {
                const double gc = gv ? gv[c] : 1.0, bc = bv ? bv[c] : 0.0;
                for (int64_t p = 0; p < np; p++)
                    yb[c * P + p] = (float)((xb[c * P + p] - mean[p]) * rstd[p] * gc + bc);
            }
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* LlamaRMSNorm (transformers 4.31 modeling_llama.py): variance = mean(x²) in F32,
 * xn = x · rsqrt(variance + eps) in F32, y = g · xn. With F32 activations the cast of xn to the
 * input dtype is the identity. The F32 roundings of variance, rsqrt and both products are kept;
 * only the sum of squares is accumulated more precisely (double). */
lisa_status lisa_cpu_rmsnorm(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g, float eps) {
    LISA_TRY(row_checks("rmsnorm", y, x));
    if (!g) return lisa_fail(LISA_ERR_INVALID_ARG, "rmsnorm: g (the weight) is required");
    const int64_t C = x->shape[x->n_dims - 1];
    const int64_t R = C ? lisa_tensor_numel(x) / C : 0;
    size_t mark = lisa_arena_mark(&be->scratch);
    const float *gv;
    lisa_status st = load_vec(be, "rmsnorm", "g", g, C, &gv);
    if (st == LISA_OK) {
        const float *xd = x->data;
        float *yd = y->data;
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, R * C))
        for (int64_t r = 0; r < R; r++) {
            const float *xr = xd + r * C;
            float *yr = yd + r * C;
            double sq = 0;
            for (int64_t c = 0; c < C; c++)
                sq += (double)xr[c] * xr[c];
            const float var = (float)(sq / (double)C);
            const float rs = (float)(1.0 / sqrt((double)(var + eps)));
            for (int64_t c = 0; c < C; c++) {
                const float xn = xr[c] * rs;
                yr[c] = gv[c] * xn;
            }
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* The sum runs over 4 interleaved partial sums (a fixed order: the result depends only on the
 * row, never on threads or batch). */
static inline __attribute__((always_inline)) void softmax_row_body(float *s, int64_t n_vis, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_vis; j++)
        if (s[j] > mx) mx = s[j];
    const double mxd = mx;
    for (int64_t j = 0; j < n_vis; j++)
        s[j] = (float)lisa_cpu_exp((double)s[j] - mxd);
    double part[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n_vis; j += 4)
        for (int k = 0; k < 4; k++)
            part[k] += s[j + k];
    for (; j < n_vis; j++)
        part[0] += s[j];
    const double inv = 1.0 / ((part[0] + part[1]) + (part[2] + part[3]));
    for (j = 0; j < n_vis; j++)
        s[j] = (float)(s[j] * inv);
    for (j = n_vis; j < n; j++)
        s[j] = 0.0f;
}

/* Built twice on x86-64, for AVX2 and for the baseline, picked per call by a CPU check: the exp
 * loop is most of attention's non-GEMM time and AVX2 doubles its width. Both compute the same
 * bits: no FMA contraction (-ffp-contract=off; target avx2 does not enable FMA) and the vectorizer
 * reorders nothing. (Not target_clones: GCC 12 exports its ifunc resolver from liblisa.so.) */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void softmax_row_avx2(float *s, int64_t n_vis, int64_t n) {
    softmax_row_body(s, n_vis, n);
}
#endif

void lisa_cpu_softmax_row(float *s, int64_t n_vis, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2")) {
        softmax_row_avx2(s, n_vis, n);
        return;
    }
#endif
    softmax_row_body(s, n_vis, n);
}

/* Softmax over the last dim, max-subtracted, exp in double rounded to F32, sum in double
 * (lisa_cpu_softmax_row). Like torch.softmax, a row
 * whose maximum is −inf (all −inf) or +inf, or that holds a NaN, comes out all NaN
 * (exp(−inf − (−inf)) = exp(NaN)). */
lisa_status lisa_cpu_softmax(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(row_checks("softmax", y, x));
    const int64_t C = x->shape[x->n_dims - 1];
    const int64_t R = C ? lisa_tensor_numel(x) / C : 0;
    const float *xd = x->data;
    float *yd = y->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, R * C * 8))
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * C;
        float *yr = yd + r * C;
        double mx = -INFINITY;
        bool has_nan = false;
        for (int64_t c = 0; c < C; c++) {
            if (xr[c] > mx) mx = xr[c];
            has_nan |= isnan(xr[c]);
        }
        if (has_nan || isinf(mx)) {
            for (int64_t c = 0; c < C; c++)
                yr[c] = NAN;
            continue;
        }
        /* the row's exp(x − max) rounded to F32, then the division; the same code as attention's
         * softmax (in-place safe: the copy is skipped when y is x) */
        if (yr != xr) memcpy(yr, xr, (size_t)C * sizeof *yr);
        lisa_cpu_softmax_row(yr, C, C);
    }
    return LISA_OK;
}
