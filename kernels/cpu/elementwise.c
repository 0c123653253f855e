/* kernels/cpu/elementwise.c — ADD, MUL, SCALE, GELU, QUICK_GELU, RELU, SILU_MUL (ops.def).
 *
 * add/mul/scale/relu are computed in F32 exactly as PyTorch's float kernels (one rounding per
 * operation; the build has -ffp-contract=off, so a*s + c is not fused). The transcendental
 * activations are evaluated in double and rounded once, which is within an ulp of PyTorch's
 * vectorised float erf/exp.
 */
#include "kernels/cpu/cpu.h"

#include <math.h>

/* y may be x itself (same data, both contiguous, same shape: the in-place case of ops.def) but
 * must not partially overlap it. */
static lisa_status check_alias(const char *op, const char *what, const lisa_tensor *y, const lisa_tensor *x) {
    if (y->data == x->data && lisa_tensor_is_contiguous(x) && lisa_tensor_is_contiguous(y) &&
        lisa_tensor_numel(x) == lisa_tensor_numel(y))
        return LISA_OK;
    return lisa_cpu_check_no_overlap(op, what, y, x);
}

/* ---- binary ops with broadcasting ------------------------------------------------------------ */

typedef enum { BIN_ADD, BIN_MUL } bin_kind;

static lisa_status binary(lisa_backend *be, const char *op, bin_kind kind, lisa_tensor *y, const lisa_tensor *a,
                          const lisa_tensor *b) {
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32(op, "a", a, false));
    LISA_TRY(lisa_cpu_check_f32(op, "b", b, false));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    LISA_TRY(lisa_cpu_check_same_shape(op, y, a));
    /* NumPy broadcasting of b against a: right-aligned, each dim of b equals a's or is 1. */
    bool ok = b->n_dims <= a->n_dims;
    for (int d = 0; ok && d < b->n_dims; d++) {
        int64_t bd = b->shape[b->n_dims - 1 - d], ad = a->shape[a->n_dims - 1 - d];
        ok = bd == ad || bd == 1;
    }
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "%s: b %s does not broadcast to a %s", op,
                         lisa_tensor_shape_str(b, s1, sizeof s1), lisa_tensor_shape_str(a, s2, sizeof s2));
    LISA_TRY(check_alias(op, "a", y, a));
    LISA_TRY(check_alias(op, "b", y, b));
    if (lisa_tensor_numel(y) == 0) return LISA_OK;

    /* Right-align everything to 4-D; b gets stride 0 along broadcast dims. */
    int64_t sh[4], as[4], bs[4];
    for (int d = 0; d < 4; d++) {
        int ia = d - (4 - a->n_dims), ib = d - (4 - b->n_dims);
        sh[d] = ia >= 0 ? a->shape[ia] : 1;
        as[d] = ia >= 0 ? a->stride[ia] : 0;
        bs[d] = (ib >= 0 && b->shape[ib] != 1) ? b->stride[ib] : 0;
    }
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
    const int64_t rows = sh[0] * sh[1] * sh[2], w = sh[3];
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, rows * w))
    for (int64_t r = 0; r < rows; r++) {
        int64_t i0 = r / (sh[1] * sh[2]), i1 = (r / sh[2]) % sh[1], i2 = r % sh[2];
        const float *ar = ad + i0 * as[0] + i1 * as[1] + i2 * as[2];
        const float *br = bd + i0 * bs[0] + i1 * bs[1] + i2 * bs[2];
        float *yr = yd + r * w;
        if (kind == BIN_ADD)
            for (int64_t i = 0; i < w; i++)
                yr[i] = ar[i * as[3]] + br[i * bs[3]];
        else
            for (int64_t i = 0; i < w; i++)
                yr[i] = ar[i * as[3]] * br[i * bs[3]];
    }
    return LISA_OK;
}

lisa_status lisa_cpu_add(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    return binary(be, "add", BIN_ADD, y, a, b);
}

lisa_status lisa_cpu_mul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    return binary(be, "mul", BIN_MUL, y, a, b);
}

/* ---- unary ops ------------------------------------------------------------------------------- */

static lisa_status unary_checks(const char *op, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(lisa_cpu_check_f32(op, "x", x, true));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    LISA_TRY(lisa_cpu_check_same_shape(op, y, x));
    return check_alias(op, "x", y, x);
}

lisa_status lisa_cpu_scale(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, float s, float c) {
    LISA_TRY(unary_checks("scale", y, x));
    const float *xd = x->data;
    float *yd = y->data;
    const int64_t n = lisa_tensor_numel(x);
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n))
    for (int64_t i = 0; i < n; i++)
        yd[i] = xd[i] * s + c; /* two F32 roundings (no FMA) */
    return LISA_OK;
}

/* torch.nn.functional.gelu(approximate='none'): 0.5·x·(1 + erf(x/√2)). */
lisa_status lisa_cpu_gelu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(unary_checks("gelu", y, x));
    const float *xd = x->data;
    float *yd = y->data;
    const int64_t n = lisa_tensor_numel(x);
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n * 8))
    for (int64_t i = 0; i < n; i++) {
        double v = xd[i];
        yd[i] = (float)(0.5 * v * (1.0 + erf(v * 0.70710678118654752440)));
    }
    return LISA_OK;
}

/* CLIP's QuickGELU (transformers activations.py): x·σ(1.702x). */
lisa_status lisa_cpu_quick_gelu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(unary_checks("quick_gelu", y, x));
    const float *xd = x->data;
    float *yd = y->data;
    const int64_t n = lisa_tensor_numel(x);
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n * 8))
    for (int64_t i = 0; i < n; i++) {
        double v = xd[i];
        yd[i] = (float)(v / (1.0 + lisa_cpu_exp(-1.702 * v)));
    }
    return LISA_OK;
}

/* ReLU as torch.relu (clamp_min 0): NaN propagates, relu(-0.0) = -0.0. */
lisa_status lisa_cpu_relu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(unary_checks("relu", y, x));
    const float *xd = x->data;
    float *yd = y->data;
    const int64_t n = lisa_tensor_numel(x);
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n))
    for (int64_t i = 0; i < n; i++) {
        float v = xd[i];
        yd[i] = v < 0.0f ? 0.0f : v; /* NaN and -0.0 pass through, as torch.relu */
    }
    return LISA_OK;
}

/* LLaMA MLP: silu(gate)·up with silu(g) = g·σ(g) (HF ACT2FN["silu"]). */
/* silu rounded to F32 first, then the product, as PyTorch evaluates act(gate) * up */
static inline float silu_times(float gate, float up) {
    const double g = gate;
    const float silu = (float)(g / (1.0 + lisa_cpu_exp(-g)));
    return silu * up;
}

lisa_status lisa_cpu_silu_mul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *gate, const lisa_tensor *up) {
    LISA_TRY(lisa_cpu_check_f32("silu_mul", "gate", gate, false));
    LISA_TRY(lisa_cpu_check_f32("silu_mul", "up", up, false));
    LISA_TRY(lisa_cpu_check_f32("silu_mul", "y", y, true));
    LISA_TRY(lisa_cpu_check_same_shape("silu_mul", y, gate));
    LISA_TRY(lisa_cpu_check_same_shape("silu_mul", up, gate));
    LISA_TRY(check_alias("silu_mul", "gate", y, gate));
    LISA_TRY(check_alias("silu_mul", "up", y, up));
    const float *gd = gate->data, *ud = up->data;
    float *yd = y->data;
    const int64_t n = lisa_tensor_numel(gate);
    if (lisa_tensor_is_contiguous(gate) && lisa_tensor_is_contiguous(up)) {
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n * 8))
        for (int64_t i = 0; i < n; i++) yd[i] = silu_times(gd[i], ud[i]);
        return LISA_OK;
    }
    /* strided gate/up (the halves of a fused gate/up GEMM's output): element by logical index */
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n * 8))
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[LISA_MAX_DIMS] = {0}, r = i;
        for (int d = gate->n_dims - 1; d >= 0; d--) {
            idx[d] = r % gate->shape[d];
            r /= gate->shape[d];
        }
        yd[i] = silu_times(gd[lisa_cpu_offset(gate, idx)], ud[lisa_cpu_offset(up, idx)]);
    }
    return LISA_OK;
}
