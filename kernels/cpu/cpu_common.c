/* kernels/cpu/cpu_common.c — what every CPU op shares: argument checks, widening loads and the
 * backend's scratch arena (kernels/cpu/cpu.h). The ops table (backend_cpu.c) calls the ops, the ops
 * call these: no file calls back up. */
#include "kernels/cpu/cpu.h"

#include "core/half.h"

#include <stdlib.h>
#include <string.h>

/* ---- shared checks ---------------------------------------------------------------------------- */

lisa_status lisa_cpu_check_f32(const char *op, const char *what, const lisa_tensor *t, bool need_contiguous) {
    char b[96];
    if (!t || (!t->data && lisa_tensor_numel(t) > 0))
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s has no data", op, what);
    if (t->dtype != LISA_DTYPE_F32)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be F32 on the cpu backend, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    if (t->device != LISA_DEVICE_CPU) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is not a host tensor", op, what);
    if (need_contiguous && !lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be contiguous, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    return LISA_OK;
}

lisa_status lisa_cpu_check_param(const char *op, const char *what, const lisa_tensor *t) {
    char b[96];
    if (!t || (!t->data && lisa_tensor_numel(t) > 0))
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s has no data", op, what);
    if (t->dtype != LISA_DTYPE_F32 && t->dtype != LISA_DTYPE_BF16 && t->dtype != LISA_DTYPE_F16)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be F32, BF16 or F16, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    if (!lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be contiguous, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    return LISA_OK;
}

lisa_status lisa_cpu_check_same_shape(const char *op, const lisa_tensor *y, const lisa_tensor *x) {
    char a[96], b[96];
    if (!lisa_tensor_same_shape(y, x))
        return lisa_fail(LISA_ERR_SHAPE, "%s: output %s does not match input %s", op, lisa_tensor_shape_str(y, a, sizeof a),
                         lisa_tensor_shape_str(x, b, sizeof b));
    return LISA_OK;
}

void lisa_cpu_load_f32(float *dst, const lisa_tensor *t, int64_t offset, int64_t n) {
    switch (t->dtype) {
    case LISA_DTYPE_F32: memcpy(dst, (const float *)t->data + offset, (size_t)n * sizeof(float)); break;
    case LISA_DTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)t->data + offset;
        for (int64_t i = 0; i < n; i++) dst[i] = lisa_bf16_to_f32(s[i]);
        break;
    }
    case LISA_DTYPE_F16: {
        const uint16_t *s = (const uint16_t *)t->data + offset;
        for (int64_t i = 0; i < n; i++) dst[i] = lisa_f16_to_f32(s[i]);
        break;
    }
    default: LISA_ASSERT(0 && "lisa_cpu_load_f32: not a float dtype");
    }
}

lisa_status lisa_cpu_check_ids(const char *op, const char *what, const lisa_tensor *t) {
    char b[96];
    if (!t || (!t->data && lisa_tensor_numel(t) > 0))
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s has no data", op, what);
    if (t->dtype != LISA_DTYPE_I32 && t->dtype != LISA_DTYPE_I64)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be I32 or I64, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    if (t->device != LISA_DEVICE_CPU) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is not a host tensor", op, what);
    if (!lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be contiguous, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    return LISA_OK;
}

/* [lo, hi) byte range spanned by a tensor (strides may be negative in principle). */
static void byte_range(const lisa_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t min_off = 0, max_off = 0;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = (uintptr_t)t->data;
            return;
        }
        int64_t span = (t->shape[d] - 1) * t->stride[d];
        if (span < 0) min_off += span;
        else max_off += span;
    }
    size_t es = lisa_dtype_size(t->dtype);
    *lo = (uintptr_t)t->data + (uintptr_t)(min_off * (int64_t)es);
    *hi = (uintptr_t)t->data + (uintptr_t)((max_off + 1) * (int64_t)es);
}

lisa_status lisa_cpu_check_no_overlap(const char *op, const char *what, const lisa_tensor *y, const lisa_tensor *x) {
    if (!x || !y || !x->data || !y->data) return LISA_OK;
    uintptr_t ylo, yhi, xlo, xhi;
    byte_range(y, &ylo, &yhi);
    byte_range(x, &xlo, &xhi);
    if (ylo < xhi && xlo < yhi)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: output overlaps input %s (in-place is not supported by this op)",
                         op, what);
    return LISA_OK;
}

size_t lisa_cpu_scratch_free(const lisa_backend *be) { return be->scratch.cap - be->scratch.used; }

lisa_status lisa_cpu_scratch_f32(lisa_backend *be, const char *op, int64_t n, float **out) {
    void *p = NULL;
    lisa_status s = lisa_arena_alloc(&be->scratch, (size_t)(n > 0 ? n : 1) * sizeof(float), &p);
    if (s != LISA_OK) return lisa_fail_context(s, "%s", op);
    *out = p;
    return LISA_OK;
}
