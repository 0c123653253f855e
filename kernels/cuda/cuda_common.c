/* kernels/cuda/cuda_common.c — what every CUDA op file shares: launch geometry, the backend's
 * scratch arena and argument checks. The ops table (backend_cuda.c) calls the op files, the op files
 * call these: no file calls back up. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/device_flag.h"

#include <stdio.h>

/* ---- shared helpers ------------------------------------------------------------------------- */

unsigned lisa_cuda_grid_1d(const lisa_backend *be, int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    int64_t cap = (int64_t)lisa_cuda_impl_of(be)->num_sms * 32; /* grid-stride beyond this */
    if (blocks > cap) blocks = cap;
    return blocks < 1 ? 1u : (unsigned)blocks;
}

lisa_status lisa_cuda_scratch(lisa_backend *be, size_t bytes, void **out) {
    lisa_status s = lisa_arena_alloc(&be->scratch, bytes, out);
    if (s != LISA_OK) return lisa_fail_context(s, "cuda backend (raise scratch_bytes in lisa_backend_cuda_create)");
    return LISA_OK;
}

lisa_status lisa_cuda_wait(lisa_backend *be) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    im->host_waits++;
    const bool read = im->flag_pending;
    if (read) CUDA_CHECK(cudaMemcpyAsync(im->flag_host, im->flag, 3 * sizeof(int64_t), cudaMemcpyDeviceToHost, im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    if (!read) return LISA_OK;
    im->flag_pending = false;
    const int64_t kind = im->flag_host[0], value = im->flag_host[1], bound = im->flag_host[2];
    if (kind == LK_FLAG_NONE) return LISA_OK;
    /* clear for the next check (ordered before any later work on the stream) */
    CUDA_CHECK(cudaMemsetAsync(im->flag, 0, 3 * sizeof(int64_t), im->stream));
    if (kind == LK_FLAG_EMBEDDING_ID)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "embedding: token id %lld is outside the table's %lld rows (found on the device; the output "
                         "was left untouched and the ops after it ran on it)",
                         (long long)value, (long long)bound);
    if (kind == LK_FLAG_KV_SLOT)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "kv_append: slot %lld is outside the pool of %lld slots (found on the device; nothing was "
                         "written and the ops after it ran on the old pool)",
                         (long long)value, (long long)bound);
    return lisa_fail(LISA_ERR_BACKEND, "cuda backend: unknown device error flag %lld (value %lld, bound %lld)",
                     (long long)kind, (long long)value, (long long)bound);
}

lisa_status lisa_cuda_check_float(const char *op, const char *what, const lisa_tensor *t) {
    char b[96];
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    if (!t->data && lisa_tensor_numel(t) > 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s has no data", op, what);
    if (t->device != LISA_DEVICE_CUDA)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s %s is not a device tensor (the cuda backend needs device memory)",
                         op, what, lisa_tensor_shape_str(t, b, sizeof b));
    if (t->dtype != LISA_DTYPE_F32 && t->dtype != LISA_DTYPE_BF16 && t->dtype != LISA_DTYPE_F16)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be F32, BF16 or F16, got %s", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    return LISA_OK;
}

lisa_status lisa_cuda_check_dense(const char *op, const char *what, const lisa_tensor *t) {
    char b[96];
    LISA_TRY(lisa_cuda_check_float(op, what, t));
    if (!lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s must be contiguous, got %s", op, what, lisa_tensor_shape_str(t, b, sizeof b));
    return LISA_OK;
}

lisa_status lisa_cuda_check_same_shape(const char *op, const lisa_tensor *y, const lisa_tensor *x) {
    char a[96], b[96];
    if (!lisa_tensor_same_shape(y, x))
        return lisa_fail(LISA_ERR_SHAPE, "%s: output %s does not match input %s", op, lisa_tensor_shape_str(y, a, sizeof a),
                         lisa_tensor_shape_str(x, b, sizeof b));
    return LISA_OK;
}

lisa_status lisa_cuda_rows(const char *op, const char *what, const lisa_tensor *t, int64_t *rows, int64_t *row_stride) {
    char b[96];
    if (t->n_dims < 1) return lisa_fail(LISA_ERR_SHAPE, "%s: %s is a scalar", op, what);
    int64_t C = t->shape[t->n_dims - 1];
    if (C > 1 && t->stride[t->n_dims - 1] != 1)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s needs a unit stride in its last dim", op, what,
                         lisa_tensor_shape_str(t, b, sizeof b));
    int64_t r = 1, rs = C, expect = -1;
    /* leading dims (size-1 dims ignored) must collapse into one row index with a single stride */
    for (int d = t->n_dims - 2; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (expect < 0)
            rs = t->stride[d];
        else if (t->stride[d] != expect)
            return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s: leading dims do not collapse into rows", op, what,
                             lisa_tensor_shape_str(t, b, sizeof b));
        expect = t->stride[d] * t->shape[d];
        r *= t->shape[d];
    }
    *rows = r;
    *row_stride = rs;
    return LISA_OK;
}
