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
 * be->scratch, the error-flag word, the GEMM plan cache and the profile's timer events; all are
 * released by the backend's destroy hook (lisa_backend_free). */
typedef struct lisa_cuda_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *scratch_base; /* device block behind be->scratch */
    int64_t *flag;      /* device error flag, 3 words (prims.cuh lk_flag_raise): raised by check kernels */
    int64_t *flag_host; /* pinned mirror, read by lisa_cuda_wait */
    bool flag_pending;  /* a check (or a graph that may hold one) was enqueued since the flag was last read */
    int64_t host_waits; /* times the host waited for the stream (lisa_cuda_wait) */
    int num_sms, cc_major, cc_minor;
    size_t smem_optin; /* max dynamic shared memory per block after opting in */
    size_t l2_bytes;
    bool capturing;          /* a graph capture is in progress (graph.c): no host waits */
    int64_t capture_kv_keys; /* while capturing: split-KV plans its grid for at least this many keys */
    char name[320];
    void *gemm_cache; /* kernels/cuda/gemm.cu */
    cudaEvent_t *timer_events; /* per-op profile marks (kernels/profile.h), created by timer_reserve */
    int32_t n_timer_events;
    int *gemv_tickets;        /* small-M linear's split tickets (gemv.cu), zero between launches */
    int32_t gemv_tickets_cap; /* tiles of 32 output rows they cover */
    int32_t gemv_max_rows;    /* linears with at most this many rows use lk_gemv (0: never) */
    lisa_cuda_conv_path conv_path, convt_path; /* CONV2D (kernels > 1x1) / CONV_TRANSPOSE2D_K2S2 */
    void *cudnn;              /* conv_cudnn.c's state (library, handle, plans), created on first use */
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

/* The backend's one host wait (tools/check_syncs.py allows it in upload, download and synchronize
 * only): waits for the stream, counts the wait, and reports an error a check kernel raised on the
 * device since the last wait (LISA_ERR_INVALID_ARG naming the op, the value and its bound; the flag
 * is then cleared). Ops never wait: they validate what they can on the host and leave the rest to
 * the device flag. */
lisa_status lisa_cuda_wait(lisa_backend *be);
/* Marks that a check kernel was enqueued: the next lisa_cuda_wait reads the device flag. */
static inline void lisa_cuda_flag_armed(lisa_backend *be) { ((lisa_cuda_impl *)be->impl)->flag_pending = true; }

/* The ops table entries (kernels/ops.def), one per op, in the family files. */
#define LISA_OP(E, n, params, args) lisa_status lisa_cuda_##n(lisa_backend *be, LISA_UNPAREN params);
#include "kernels/ops.def"
#undef LISA_OP

/* The small-M linear (gemv.cu, kernels/cuda/gemv_kernels.cuh): whether it takes y[M, N] =
 * x[M, K]·w[N, K]ᵀ (x rows of stride lda, y rows of stride ldy), and the launch (act: lisa_act;
 * residual rows of stride ldr, y's dtype). */
bool lisa_cuda_gemv_applies(const lisa_backend *be, const lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                            int64_t M, int64_t lda, int64_t ldy);
lisa_status lisa_cuda_gemv(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                           const lisa_tensor *b, const lisa_tensor *residual, int32_t act, int64_t M, int64_t lda,
                           int64_t ldy, int64_t ldr);

/* conv_cudnn.c's state: released by the backend's destroy. */
void lisa_cuda_cudnn_free(lisa_backend *be);

/* GEMM plan cache (gemm.cu). */
lisa_status lisa_cuda_gemm_cache_create(lisa_backend *be);
void lisa_cuda_gemm_cache_destroy(lisa_backend *be);

#ifdef __cplusplus
}
#endif

#endif
