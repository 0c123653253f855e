/* kernels/cuda/cuda_internal.h — what the CUDA backend's files share (C and C++; never included
 * outside kernels/cuda/): the backend's private state, CUDA_CHECK / CUBLAS_CHECK, tensor checks,
 * and the op functions that fill the ops table.
 *
 * Threading and streams: a backend owns one stream; every op enqueues on it and returns without
 * waiting (upload/download/synchronize wait). The calling thread must have the backend's device
 * current (lisa_backend_cuda_create makes it current). Per-op temporaries come from be->scratch
 * (device memory); an op resets the arena to where it found it before returning, which is safe
 * because later work on the same stream runs after the op's kernels.
 */
#ifndef LISA_KERNELS_CUDA_INTERNAL_H
#define LISA_KERNELS_CUDA_INTERNAL_H

#include "kernels/cuda/cuda.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Owns the stream, the cuBLAS and cuBLASLt handles, the cuBLASLt workspace, the device block behind
 * be->scratch, the error-flag word and the GEMM plan cache; all are released by the backend's
 * destroy hook (lisa_backend_free). */
typedef struct lisa_cuda_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *scratch_base; /* device block behind be->scratch */
    int64_t *flag;      /* device word for errors found by kernels (embedding ids) */
    int64_t *flag_host; /* pinned mirror */
    int num_sms, cc_major, cc_minor;
    size_t smem_optin; /* max dynamic shared memory per block after opting in */
    size_t l2_bytes;
    bool sync_checks;
    bool capturing;          /* a graph capture is in progress (graph.c): no host waits */
    int64_t capture_kv_keys; /* while capturing: split-KV plans its grid for at least this many keys */
    char name[320];
    void *gemm_cache; /* kernels/cuda/gemm.cu */
    int fa3_state;    /* sm_90a attention kernels runnable: 0 not probed yet, 1 yes, 2 no (attn_sm90.cu) */
} lisa_cuda_impl;

static inline lisa_cuda_impl *lisa_cuda_impl_of(const lisa_backend *be) { return (lisa_cuda_impl *)be->impl; }

/* Records file:line, the failed expression and CUDA's message, returns LISA_ERR_BACKEND. */
#define CUDA_CHECK(expr)                                                                           \
    do {                                                                                           \
        cudaError_t lisa_cu_e_ = (expr);                                                           \
        if (lisa_cu_e_ != cudaSuccess)                                                             \
            return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #expr, cudaGetErrorString(lisa_cu_e_)); \
    } while (0)
#define CUBLAS_CHECK(expr)                                                                         \
    do {                                                                                           \
        cublasStatus_t lisa_cb_s_ = (expr);                                                        \
        if (lisa_cb_s_ != CUBLAS_STATUS_SUCCESS)                                                   \
            return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #expr, cublasGetStatusString(lisa_cb_s_)); \
    } while (0)
/* After every kernel launch: a bad configuration fails here, not at the next sync. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* ---- argument checks (each returns LISA_ERR_SHAPE / LISA_ERR_INVALID_ARG naming op + tensor) ---- */
/* A device tensor with data (unless empty) of one of the float dtypes (F32/BF16/F16). */
lisa_status lisa_cuda_check_float(const char *op, const char *what, const lisa_tensor *t);
/* The same and contiguous. */
lisa_status lisa_cuda_check_dense(const char *op, const char *what, const lisa_tensor *t);
lisa_status lisa_cuda_check_same_shape(const char *op, const lisa_tensor *y, const lisa_tensor *x);
/* Rows of the last dim: t viewed as [rows, C] with unit stride in C and one row stride across all
 * leading dims (contiguous tensors and narrowed/strided row views qualify). */
lisa_status lisa_cuda_rows(const char *op, const char *what, const lisa_tensor *t, int64_t *rows, int64_t *row_stride);

/* Grid for a grid-stride loop over n elements with `threads` per block. */
unsigned lisa_cuda_grid_1d(const lisa_backend *be, int64_t n, int threads);

/* Device scratch of `bytes` from be->scratch (callers reset to a mark before returning). */
lisa_status lisa_cuda_scratch(lisa_backend *be, size_t bytes, void **out);

/* The ops table entries (kernels/ops.def), one per op, in the family files. */
#define LISA_OP(E, n, params, args) lisa_status lisa_cuda_##n(lisa_backend *be, LISA_UNPAREN params);
#include "kernels/ops.def"
#undef LISA_OP

/* GEMM plan cache (gemm.cu). */
lisa_status lisa_cuda_gemm_cache_create(lisa_backend *be);
void lisa_cuda_gemm_cache_destroy(lisa_backend *be);

#ifdef __cplusplus
}
#endif

#endif
