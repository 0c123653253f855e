/* kernels/cpu/copy.c — COPY (ops.def): strided copy with dtype conversion.
 *
 * Dimension letters: the op is rank-agnostic; tensors are viewed as 4-D [d0, d1, d2, d3] with
 * leading 1s, and the innermost dim d3 is the loop that moves data.
 */
#include "kernels/cpu/cpu.h"

#include "core/half.h"

#include <string.h>

static bool is_float(lisa_dtype t) { return t == LISA_DTYPE_F32 || t == LISA_DTYPE_F16 || t == LISA_DTYPE_BF16; }

/* Right-aligns a tensor's shape/strides into 4 dims (leading dims of size 1). */
static void as4d(const lisa_tensor *t, int64_t shape[4], int64_t stride[4]) {
    int pad = LISA_MAX_DIMS - t->n_dims;
    for (int d = 0; d < LISA_MAX_DIMS; d++) {
        shape[d] = d < pad ? 1 : t->shape[d - pad];
        stride[d] = d < pad ? 0 : t->stride[d - pad];
    }
}

static inline float load_float(const void *base, lisa_dtype dt, int64_t i) {
    switch (dt) {
    case LISA_DTYPE_F32: return ((const float *)base)[i];
    case LISA_DTYPE_BF16: return lisa_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return lisa_f16_to_f32(((const uint16_t *)base)[i]);
    }
}

static inline void store_float(void *base, lisa_dtype dt, int64_t i, float v) {
    switch (dt) {
    case LISA_DTYPE_F32: ((float *)base)[i] = v; break;
    case LISA_DTYPE_BF16: ((uint16_t *)base)[i] = lisa_f32_to_bf16(v); break;
    default: ((uint16_t *)base)[i] = lisa_f32_to_f16(v); break;
    }
}

static inline int64_t load_int(const void *base, lisa_dtype dt, int64_t i) {
    switch (dt) {
    case LISA_DTYPE_I32: return ((const int32_t *)base)[i];
    case LISA_DTYPE_I64: return ((const int64_t *)base)[i];
    default: return ((const uint8_t *)base)[i]; /* U8, BOOL */
    }
}

static inline void store_int(void *base, lisa_dtype dt, int64_t i, int64_t v) {
    switch (dt) {
    case LISA_DTYPE_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case LISA_DTYPE_I64: ((int64_t *)base)[i] = v; break;
    case LISA_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0; break;
    default: ((uint8_t *)base)[i] = (uint8_t)v; break;
    }
}

/* Same dtype: move element bytes unchanged (NaN payloads included). */
static void copy_raw_row(char *y, int64_t ys, const char *x, int64_t xs, int64_t n, size_t es) {
    if (ys == 1 && xs == 1) {
        memcpy(y, x, (size_t)n * es);
        return;
    }
    switch (es) {
    case 1:
        for (int64_t i = 0; i < n; i++) y[i * ys] = x[i * xs];
        break;
    case 2:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[i * ys] = ((const uint16_t *)x)[i * xs];
        break;
    case 4:
        for (int64_t i = 0; i < n; i++) ((uint32_t *)y)[i * ys] = ((const uint32_t *)x)[i * xs];
        break;
    default:
        for (int64_t i = 0; i < n; i++) ((uint64_t *)y)[i * ys] = ((const uint64_t *)x)[i * xs];
        break;
    }
}

lisa_status lisa_cpu_copy(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char a[96], b[96];
    if (!x || !y || (lisa_tensor_numel(x) > 0 && (!x->data || !y->data)))
        return lisa_fail(LISA_ERR_INVALID_ARG, "copy: missing tensor data");
    if (x->device != LISA_DEVICE_CPU || y->device != LISA_DEVICE_CPU)
        return lisa_fail(LISA_ERR_INVALID_ARG, "copy: the cpu backend copies host tensors only");
    LISA_TRY(lisa_cpu_check_same_shape("copy", y, x));
    bool xf = is_float(x->dtype), yf = is_float(y->dtype);
    if (xf != yf)
        return lisa_fail(LISA_ERR_SHAPE, "copy: cannot convert %s to %s (float <-> integer)",
                         lisa_tensor_shape_str(x, a, sizeof a), lisa_tensor_shape_str(y, b, sizeof b));
    int64_t n = lisa_tensor_numel(x);
    if (n == 0) return LISA_OK;
    bool same_layout = x->data == y->data && x->dtype == y->dtype;
    for (int d = 0; same_layout && d < x->n_dims; d++) same_layout = x->shape[d] == 1 || x->stride[d] == y->stride[d];
    if (same_layout) return LISA_OK; /* y is x: nothing to do */
    LISA_TRY(lisa_cpu_check_no_overlap("copy", "x", y, x));

    if (x->dtype == y->dtype && lisa_tensor_is_contiguous(x) && lisa_tensor_is_contiguous(y)) {
        memcpy(y->data, x->data, lisa_tensor_nbytes(x));
        return LISA_OK;
    }
    int64_t sh[4], xs[4], ys[4];
    as4d(x, sh, xs);
    as4d(y, sh, ys);
    size_t xes = lisa_dtype_size(x->dtype), yes = lisa_dtype_size(y->dtype);
    int64_t rows = sh[0] * sh[1] * sh[2], w = sh[3];
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, rows * w))
    for (int64_t r = 0; r < rows; r++) {
        int64_t i0 = r / (sh[1] * sh[2]), i1 = (r / sh[2]) % sh[1], i2 = r % sh[2];
        const char *xr = (const char *)x->data + (size_t)(i0 * xs[0] + i1 * xs[1] + i2 * xs[2]) * xes;
        char *yr = (char *)y->data + (size_t)(i0 * ys[0] + i1 * ys[1] + i2 * ys[2]) * yes;
        if (x->dtype == y->dtype) {
            copy_raw_row(yr, ys[3], xr, xs[3], w, xes);
        } else if (xf) {
            for (int64_t i = 0; i < w; i++) store_float(yr, y->dtype, i * ys[3], load_float(xr, x->dtype, i * xs[3]));
        } else {
            for (int64_t i = 0; i < w; i++) store_int(yr, y->dtype, i * ys[3], load_int(xr, x->dtype, i * xs[3]));
        }
    }
    return LISA_OK;
}
