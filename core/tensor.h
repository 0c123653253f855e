/* core/tensor.h — the engine's tensor descriptor.
 *
 * Shapes are written outermost first, exactly as PyTorch prints them ([3840, 1280] for a SAM qkv
 * weight = [out, in]); strides are in elements. A tensor is either a view (borrows `data`, which
 * lives as long as whatever it points into: an mmap'd checkpoint, an arena, a caller buffer) or an
 * owner (`owner` true: `data` was malloc'd by lisa_tensor_alloc and is freed by lisa_tensor_free).
 */
#ifndef LISA_CORE_TENSOR_H
#define LISA_CORE_TENSOR_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_MAX_DIMS 4

typedef enum lisa_dtype {
    LISA_DTYPE_F32 = 0,
    LISA_DTYPE_F16 = 1,
    LISA_DTYPE_BF16 = 2,
    LISA_DTYPE_I32 = 3,
    LISA_DTYPE_I64 = 4,
    LISA_DTYPE_U8 = 5,
    LISA_DTYPE_BOOL = 6, /* 1 byte per element, as torch.bool and safetensors BOOL */
    LISA_DTYPE_COUNT
} lisa_dtype;

typedef enum lisa_device {
    LISA_DEVICE_CPU = 0,
    LISA_DEVICE_CUDA = 1,
} lisa_device;

/* Owns `data` iff `owner`; otherwise borrows it (see file comment). */
typedef struct lisa_tensor {
    void *data;                      /* first element; NULL in a measuring (count-only) pass */
    lisa_dtype dtype;
    lisa_device device;
    int32_t device_id;
    int32_t n_dims;                  /* 0 (scalar) .. LISA_MAX_DIMS */
    int64_t shape[LISA_MAX_DIMS];    /* outermost first; entries past n_dims are 1 */
    int64_t stride[LISA_MAX_DIMS];   /* in elements; entries past n_dims are 1 */
    bool owner;
} lisa_tensor;

size_t lisa_dtype_size(lisa_dtype t);
const char *lisa_dtype_name(lisa_dtype t);
/* Parses "F32", "F16", "BF16", "I32", "I64", "U8", "BOOL" (safetensors spelling). Returns false if unknown. */
bool lisa_dtype_from_name(const char *name, lisa_dtype *out);

/* A contiguous view over `data` with the given shape. LISA_ASSERTs 0 <= n_dims <= 4. */
lisa_tensor lisa_tensor_view(void *data, lisa_dtype dtype, int32_t n_dims, const int64_t *shape);
/* Convenience for 1–4 dims: lisa_tensor_view4(data, dt, 2, 3, 4, 0, 0). Trailing args ignored. */
lisa_tensor lisa_tensor_view4(void *data, lisa_dtype dtype, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2,
                              int64_t d3);

int64_t lisa_tensor_numel(const lisa_tensor *t);
size_t lisa_tensor_nbytes(const lisa_tensor *t); /* numel * dtype size (the contiguous size) */
bool lisa_tensor_is_contiguous(const lisa_tensor *t);
bool lisa_tensor_same_shape(const lisa_tensor *a, const lisa_tensor *b);
/* Size of dim d counted from the end when d < 0 (as Python): shape(t, -1) is the last dim. */
int64_t lisa_tensor_dim(const lisa_tensor *t, int32_t d);

/* Writes "[3840, 1280] BF16" into buf (for error messages). Returns buf. */
const char *lisa_tensor_shape_str(const lisa_tensor *t, char *buf, size_t cap);

/* View manipulation; none copies data. Each returns LISA_ERR_SHAPE with a message on misuse. */
lisa_status lisa_tensor_reshape(lisa_tensor *out, const lisa_tensor *t, int32_t n_dims, const int64_t *shape);
lisa_status lisa_tensor_permute(lisa_tensor *out, const lisa_tensor *t, const int32_t *perm);
/* Narrow dim `d` to [start, start+len). */
lisa_status lisa_tensor_narrow(lisa_tensor *out, const lisa_tensor *t, int32_t d, int64_t start, int64_t len);

/* Owner tensors (host memory, 64-byte aligned). For tests and tools; models use arenas. */
lisa_status lisa_tensor_alloc(lisa_tensor *out, lisa_dtype dtype, int32_t n_dims, const int64_t *shape);
void lisa_tensor_free(lisa_tensor *t);

/* Scalar access for tests and reference code (any dtype widened to double; strided). */
double lisa_tensor_get(const lisa_tensor *t, const int64_t *idx);
void lisa_tensor_set(lisa_tensor *t, const int64_t *idx, double v);

#ifdef __cplusplus
}
#endif

#endif
