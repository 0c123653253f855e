/* core/tensor.c — tensor descriptors, views, host owners. */
#include "core/tensor.h"

#include "core/error.h"
#include "core/half.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[LISA_DTYPE_COUNT] = {
    [LISA_DTYPE_F32] = {"F32", 4},  [LISA_DTYPE_F16] = {"F16", 2}, [LISA_DTYPE_BF16] = {"BF16", 2},
    [LISA_DTYPE_I32] = {"I32", 4},  [LISA_DTYPE_I64] = {"I64", 8}, [LISA_DTYPE_U8] = {"U8", 1},
    [LISA_DTYPE_BOOL] = {"BOOL", 1},
};

size_t lisa_dtype_size(lisa_dtype t) {
    LISA_ASSERT((unsigned)t < LISA_DTYPE_COUNT);
    return dtype_info[t].size;
}

const char *lisa_dtype_name(lisa_dtype t) {
    if ((unsigned)t >= LISA_DTYPE_COUNT) return "?";
    return dtype_info[t].name;
}

bool lisa_dtype_from_name(const char *name, lisa_dtype *out) {
    for (int i = 0; i < LISA_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (lisa_dtype)i;
            return true;
        }
    }
    return false;
}

static void set_contiguous_strides(lisa_tensor *t) {
    int64_t s = 1;
    for (int d = LISA_MAX_DIMS - 1; d >= 0; d--) {
        if (d >= t->n_dims) {
            t->shape[d] = 1;
            t->stride[d] = 1;
            continue;
        }
        t->stride[d] = s;
        s *= t->shape[d];
    }
}

lisa_tensor lisa_tensor_view(void *data, lisa_dtype dtype, int32_t n_dims, const int64_t *shape) {
    LISA_ASSERT(n_dims >= 0 && n_dims <= LISA_MAX_DIMS);
    lisa_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.device = LISA_DEVICE_CPU;
    t.n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) {
        LISA_ASSERT(shape[d] >= 0);
        t.shape[d] = shape[d];
    }
    set_contiguous_strides(&t);
    return t;
}

lisa_tensor lisa_tensor_view4(void *data, lisa_dtype dtype, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2,
                              int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    return lisa_tensor_view(data, dtype, n_dims, shape);
}

int64_t lisa_tensor_numel(const lisa_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

size_t lisa_tensor_nbytes(const lisa_tensor *t) { return (size_t)lisa_tensor_numel(t) * lisa_dtype_size(t->dtype); }

bool lisa_tensor_is_contiguous(const lisa_tensor *t) {
    int64_t s = 1;
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) return false;
        s *= t->shape[d];
    }
    return true;
}

bool lisa_tensor_same_shape(const lisa_tensor *a, const lisa_tensor *b) {
    if (a->n_dims != b->n_dims) return false;
    for (int d = 0; d < a->n_dims; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

int64_t lisa_tensor_dim(const lisa_tensor *t, int32_t d) {
    if (d < 0) d += t->n_dims;
    LISA_ASSERT(d >= 0 && d < t->n_dims);
    return t->shape[d];
}

const char *lisa_tensor_shape_str(const lisa_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "] %s", lisa_dtype_name(t->dtype));
    return buf;
}

lisa_status lisa_tensor_reshape(lisa_tensor *out, const lisa_tensor *t, int32_t n_dims, const int64_t *shape) {
    char b[96];
    if (n_dims < 0 || n_dims > LISA_MAX_DIMS) return lisa_fail(LISA_ERR_SHAPE, "reshape: %d dims", n_dims);
    if (!lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "reshape of a non-contiguous tensor %s", lisa_tensor_shape_str(t, b, sizeof b));
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0) return lisa_fail(LISA_ERR_SHAPE, "reshape: negative dim %lld", (long long)shape[d]);
        n *= shape[d];
    }
    if (n != lisa_tensor_numel(t))
        return lisa_fail(LISA_ERR_SHAPE, "reshape %s to %lld elements", lisa_tensor_shape_str(t, b, sizeof b),
                         (long long)n);
    lisa_tensor r = lisa_tensor_view(t->data, t->dtype, n_dims, shape);
    r.device = t->device;
    r.device_id = t->device_id;
    *out = r;
    return LISA_OK;
}

lisa_status lisa_tensor_permute(lisa_tensor *out, const lisa_tensor *t, const int32_t *perm) {
    lisa_tensor r = *t;
    unsigned seen = 0;
    r.owner = false;
    for (int d = 0; d < t->n_dims; d++) {
        int32_t p = perm[d];
        if (p < 0 || p >= t->n_dims || (seen & (1u << p)))
            return lisa_fail(LISA_ERR_SHAPE, "permute: bad axis %d at position %d", p, d);
        seen |= 1u << p;
        r.shape[d] = t->shape[p];
        r.stride[d] = t->stride[p];
    }
    *out = r;
    return LISA_OK;
}

lisa_status lisa_tensor_narrow(lisa_tensor *out, const lisa_tensor *t, int32_t d, int64_t start, int64_t len) {
    char b[96];
    if (d < 0) d += t->n_dims;
    if (d < 0 || d >= t->n_dims) return lisa_fail(LISA_ERR_SHAPE, "narrow: bad dim %d", d);
    if (start < 0 || len < 0 || start + len > t->shape[d])
        return lisa_fail(LISA_ERR_SHAPE, "narrow: [%lld, %lld) outside dim %d of %s", (long long)start,
                         (long long)(start + len), d, lisa_tensor_shape_str(t, b, sizeof b));
    lisa_tensor r = *t;
    r.owner = false;
    if (t->data) r.data = (char *)t->data + (size_t)(start * t->stride[d]) * lisa_dtype_size(t->dtype);
    r.shape[d] = len;
    *out = r;
    return LISA_OK;
}

lisa_status lisa_tensor_alloc(lisa_tensor *out, lisa_dtype dtype, int32_t n_dims, const int64_t *shape) {
    lisa_tensor t = lisa_tensor_view(NULL, dtype, n_dims, shape);
    size_t bytes = lisa_tensor_nbytes(&t);
    size_t rounded = (bytes + 63) & ~(size_t)63;
    t.data = aligned_alloc(64, rounded ? rounded : 64);
    if (!t.data) return lisa_fail(LISA_ERR_OOM, "tensor alloc of %zu bytes failed", bytes);
    t.owner = true;
    *out = t;
    return LISA_OK;
}

void lisa_tensor_free(lisa_tensor *t) {
    if (t && t->owner) free(t->data);
    if (t) {
        t->data = NULL;
        t->owner = false;
    }
}

static size_t elem_offset(const lisa_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->n_dims; d++) off += idx[d] * t->stride[d];
    return (size_t)off;
}

double lisa_tensor_get(const lisa_tensor *t, const int64_t *idx) {
    size_t o = elem_offset(t, idx);
    switch (t->dtype) {
    case LISA_DTYPE_F32: return ((const float *)t->data)[o];
    case LISA_DTYPE_F16: return lisa_f16_to_f32(((const uint16_t *)t->data)[o]);
    case LISA_DTYPE_BF16: return lisa_bf16_to_f32(((const uint16_t *)t->data)[o]);
    case LISA_DTYPE_I32: return ((const int32_t *)t->data)[o];
    case LISA_DTYPE_I64: return (double)((const int64_t *)t->data)[o];
    case LISA_DTYPE_U8:
    case LISA_DTYPE_BOOL: return ((const uint8_t *)t->data)[o];
    default: LISA_ASSERT(0);
    }
    return 0;
}

void lisa_tensor_set(lisa_tensor *t, const int64_t *idx, double v) {
    size_t o = elem_offset(t, idx);
    switch (t->dtype) {
    case LISA_DTYPE_F32: ((float *)t->data)[o] = (float)v; break;
    case LISA_DTYPE_F16: ((uint16_t *)t->data)[o] = lisa_f32_to_f16((float)v); break;
    case LISA_DTYPE_BF16: ((uint16_t *)t->data)[o] = lisa_f32_to_bf16((float)v); break;
    case LISA_DTYPE_I32: ((int32_t *)t->data)[o] = (int32_t)v; break;
    case LISA_DTYPE_I64: ((int64_t *)t->data)[o] = (int64_t)v; break;
    case LISA_DTYPE_U8:
    case LISA_DTYPE_BOOL: ((uint8_t *)t->data)[o] = (uint8_t)v; break;
    default: LISA_ASSERT(0);
    }
}
