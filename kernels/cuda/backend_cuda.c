/* kernels/cuda/backend_cuda.c — the CUDA backend: creation, memory hooks and the ops table (the op
 * files' shared checks are in cuda_common.c). */
#include "kernels/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernels take runtime dtype codes equal to lisa_dtype (prims.cuh LK_*). */
_Static_assert(LISA_DTYPE_F32 == 0 && LISA_DTYPE_F16 == 1 && LISA_DTYPE_BF16 == 2 && LISA_DTYPE_I32 == 3 &&
                   LISA_DTYPE_I64 == 4 && LISA_DTYPE_U8 == 5 && LISA_DTYPE_BOOL == 6,
               "prims.cuh LK_* dtype codes must match lisa_dtype");

#define LISA_CUDA_DEFAULT_SCRATCH ((size_t)256 << 20)
#define LISA_CUDA_LT_WORKSPACE ((size_t)32 << 20) /* cuBLASLt: 32 MiB suits Hopper's split-K/stream-K */

static const lisa_ops cuda_ops = {
#define LISA_OP(E, n, params, args) .n = lisa_cuda_##n,
#include "kernels/ops.def"
#undef LISA_OP
};

/* ---- memory hooks --------------------------------------------------------------------------- */

static lisa_status cuda_mem_alloc(lisa_backend *be, size_t bytes, void **out) {
    *out = NULL;
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1); /* 256-byte aligned (LISA_ARENA_ALIGN) */
    if (e != cudaSuccess) {
        *out = NULL;
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        (void)cudaGetLastError();
        return lisa_fail(e == cudaErrorMemoryAllocation ? LISA_ERR_OOM : LISA_ERR_BACKEND,
                         "cuda backend: cudaMalloc(%zu bytes) failed: %s (%zu of %zu bytes free on device %d)", bytes,
                         cudaGetErrorString(e), free_b, total_b, be->device_id);
    }
    return LISA_OK;
}

static void cuda_mem_free(lisa_backend *be, void *p) {
    (void)be;
    if (p) cudaFree(p);
}

/* Host <-> device copies: enqueued on the backend's stream, then waited for (the host buffer may
 * be reused as soon as the call returns). While a graph is captured they are recorded and not
 * waited for: the host buffer is read (written) at every replay and must be pinned (graph.c). */
static lisa_status cuda_upload(lisa_backend *be, void *dst, const void *src, size_t bytes) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (!bytes) return LISA_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, im->stream));
    return im->capturing ? LISA_OK : lisa_cuda_wait(be);
}

static lisa_status cuda_download(lisa_backend *be, void *dst, const void *src, size_t bytes) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (!bytes) return LISA_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, im->stream));
    return im->capturing ? LISA_OK : lisa_cuda_wait(be);
}

static lisa_status cuda_synchronize(lisa_backend *be) {
    if (lisa_cuda_impl_of(be)->capturing) return LISA_OK; /* recorded work has not run: nothing to wait for */
    return lisa_cuda_wait(be);
}

/* ---- timer marks for per-op profiles (kernels/profile.h) ------------------------------------ */

static lisa_status cuda_timer_reserve(lisa_backend *be, int32_t n) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (n <= im->n_timer_events) return LISA_OK;
    cudaEvent_t *ev = realloc(im->timer_events, sizeof(cudaEvent_t) * (size_t)n);
    if (!ev) return lisa_fail(LISA_ERR_OOM, "cuda backend: %d timer events", n);
    im->timer_events = ev;
    for (; im->n_timer_events < n; im->n_timer_events++)
        CUDA_CHECK(cudaEventCreate(&im->timer_events[im->n_timer_events]));
    return LISA_OK;
}

static lisa_status cuda_timer_mark(lisa_backend *be, int32_t i) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (i < 0 || i >= im->n_timer_events)
        return lisa_fail(LISA_ERR_INVALID_ARG, "cuda backend: timer mark %d of %d reserved", i, im->n_timer_events);
    CUDA_CHECK(cudaEventRecord(im->timer_events[i], im->stream));
    return LISA_OK;
}

static lisa_status cuda_timer_elapsed(lisa_backend *be, int32_t a, int32_t b, float *ms) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (a < 0 || b < 0 || a >= im->n_timer_events || b >= im->n_timer_events)
        return lisa_fail(LISA_ERR_INVALID_ARG, "cuda backend: timer marks %d, %d of %d reserved", a, b, im->n_timer_events);
    CUDA_CHECK(cudaEventElapsedTime(ms, im->timer_events[a], im->timer_events[b]));
    return LISA_OK;
}

static void cuda_destroy(lisa_backend *be) {
    if (!be) return;
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (im) {
        for (int32_t i = 0; i < im->n_timer_events; i++) cudaEventDestroy(im->timer_events[i]);
        free(im->timer_events);
        if (im->capturing) lisa_cuda_capture_abort(be);
        if (im->stream) cudaStreamSynchronize(im->stream);
        lisa_cuda_gemm_cache_destroy(be);
        lisa_cuda_cudnn_free(be);
        if (im->lt) cublasLtDestroy(im->lt);
        if (im->blas) cublasDestroy(im->blas);
        cudaFree(im->lt_ws);
        cudaFree(im->scratch_base);
        cudaFree(im->flag);
        cudaFree(im->gemv_tickets);
        cudaFreeHost(im->flag_host);
        if (im->stream) cudaStreamDestroy(im->stream);
        free(im);
    }
    lisa_arena_free(&be->scratch); /* external arena: frees nothing, clears the struct */
    free(be);
}

int32_t lisa_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

/* Undoes a partial create; returns s. */
static lisa_status create_fail(lisa_backend *be, lisa_status s) {
    cuda_destroy(be);
    return s;
}

#define CREATE_CHECK(expr)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = (expr);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return create_fail(be, lisa_check_gen(e_ == cudaErrorMemoryAllocation ? LISA_ERR_OOM : LISA_ERR_BACKEND, \
                                                  __FILE__, __LINE__, #expr, cudaGetErrorString(e_))); \
    } while (0)
#define CREATE_CHECK_BLAS(expr)                                                                    \
    do {                                                                                           \
        cublasStatus_t s_ = (expr);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return create_fail(be, lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #expr, cublasGetStatusString(s_))); \
    } while (0)

/* A fork is a whole new backend on the same device: device memory belongs to the CUDA context of
 * the device (one per process), not to a stream, so the weights stay valid in it. */
static lisa_status cuda_fork(const lisa_backend *be, lisa_backend **out) {
    LISA_TRY(lisa_backend_cuda_create(out, be->device_id, be->scratch.cap));
    /* the same settings: conv paths (lisa_cuda_set_conv_path), GEMV rows */
    const lisa_cuda_impl *src = lisa_cuda_impl_of(be);
    lisa_cuda_impl *dst = lisa_cuda_impl_of(*out);
    lisa_status s = LISA_OK;
    if (dst->conv_path != src->conv_path) s = lisa_cuda_set_conv_path(*out, false, src->conv_path);
    if (s == LISA_OK && dst->convt_path != src->convt_path) s = lisa_cuda_set_conv_path(*out, true, src->convt_path);
    dst->gemv_max_rows = src->gemv_max_rows;
    if (s != LISA_OK) {
        lisa_backend_free(*out);
        *out = NULL;
    }
    return s;
}

lisa_status lisa_backend_cuda_create(lisa_backend **out, int32_t device, size_t scratch_bytes) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        /* No driver at all reads as cudaErrorInsufficientDriver ("CUDA driver version is
         * insufficient"), which misleads on a machine without a GPU: say what is missing first. */
        const char *why = e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices";
        (void)cudaGetLastError();
        return lisa_fail(LISA_ERR_UNSUPPORTED, "no CUDA device: no NVIDIA driver/GPU found (cudaGetDeviceCount: %s)", why);
    }
    if (device < 0 || device >= n)
        return lisa_fail(LISA_ERR_INVALID_ARG, "cuda backend: device %d out of range (%d devices)", device, n);

    lisa_backend *be = calloc(1, sizeof *be);
    lisa_cuda_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return lisa_fail(LISA_ERR_OOM, "cuda backend: out of host memory");
    }
    be->impl = im;
    be->name = "cuda";
    be->device = LISA_DEVICE_CUDA;
    be->device_id = device;
    be->ops = &cuda_ops;
    be->n_threads = 1;
    be->mem_alloc = cuda_mem_alloc;
    be->mem_free = cuda_mem_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->synchronize = cuda_synchronize;
    be->destroy = cuda_destroy;
    be->fork = cuda_fork;
    be->graph_capture_begin = lisa_cuda_capture_begin;
    be->graph_capture_end = lisa_cuda_capture_end;
    be->graph_capture_abort = lisa_cuda_capture_abort;
    be->graph_launch = lisa_cuda_graph_launch;
    be->graph_free = lisa_cuda_graph_free;
    be->host_alloc = lisa_cuda_host_alloc;
    be->host_free = lisa_cuda_host_free;
    be->timer_reserve = cuda_timer_reserve;
    be->timer_mark = cuda_timer_mark;
    be->timer_elapsed = cuda_timer_elapsed;
    im->device = device;

    CREATE_CHECK(cudaSetDevice(device));
    struct cudaDeviceProp prop;
    CREATE_CHECK(cudaGetDeviceProperties(&prop, device));
    im->num_sms = prop.multiProcessorCount;
    im->cc_major = prop.major;
    im->cc_minor = prop.minor;
    im->smem_optin = prop.sharedMemPerBlockOptin;
    im->l2_bytes = (size_t)prop.l2CacheSize;
    snprintf(be->device_name, sizeof be->device_name, "%.127s", prop.name); /* prop.name is char[256] */
    be->device_memory_bytes = (int64_t)prop.totalGlobalMem;
    snprintf(im->name, sizeof im->name, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    if (prop.major < 8)
        return create_fail(be, lisa_fail(LISA_ERR_UNSUPPORTED,
                                         "cuda backend: %s is sm_%d%d; the kernels need sm_80 or newer (bf16 mma.sync, "
                                         "cp.async)",
                                         prop.name, prop.major, prop.minor));

    CREATE_CHECK(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking));
    be->stream = (void *)im->stream;
    CREATE_CHECK_BLAS(cublasCreate(&im->blas));
    CREATE_CHECK_BLAS(cublasSetStream(im->blas, im->stream));
    /* No TF32 for F32 GEMMs: they exist for exact checks. */
    CREATE_CHECK_BLAS(cublasSetMathMode(im->blas, CUBLAS_DEFAULT_MATH));
    CREATE_CHECK_BLAS(cublasLtCreate(&im->lt));
    im->lt_ws_bytes = LISA_CUDA_LT_WORKSPACE;
    CREATE_CHECK(cudaMalloc(&im->lt_ws, im->lt_ws_bytes));
    /* cuBLAS (non-Lt) calls share the workspace, so it never allocates inside a model run. */
    CREATE_CHECK_BLAS(cublasSetWorkspace(im->blas, im->lt_ws, im->lt_ws_bytes));
    CREATE_CHECK(cudaMalloc((void **)&im->flag, 3 * sizeof(int64_t)));
    CREATE_CHECK(cudaMemset(im->flag, 0, 3 * sizeof(int64_t)));
    CREATE_CHECK(cudaMallocHost((void **)&im->flag_host, 3 * sizeof(int64_t)));
    im->gemv_tickets_cap = 16384; /* N up to 524288 outputs */
    im->gemv_max_rows = 16;
    CREATE_CHECK(cudaMalloc((void **)&im->gemv_tickets, sizeof(int) * (size_t)im->gemv_tickets_cap));
    CREATE_CHECK(cudaMemset(im->gemv_tickets, 0, sizeof(int) * (size_t)im->gemv_tickets_cap));

    size_t sb = scratch_bytes ? scratch_bytes : LISA_CUDA_DEFAULT_SCRATCH;
    sb = (sb + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
    CREATE_CHECK(cudaMalloc(&im->scratch_base, sb));
    lisa_arena_init_external(&be->scratch, "cuda scratch", im->scratch_base, sb);

    lisa_status s = lisa_cuda_gemm_cache_create(be);
    if (s != LISA_OK) return create_fail(be, s);
    const char *conv = getenv("LISA_CUDA_CONV"); /* A/B on a GPU without a rebuild (cuda.h) */
    if (conv && !strcmp(conv, "cudnn")) {
        s = lisa_cuda_set_conv_path(be, false, LISA_CUDA_CONV_CUDNN);
        if (s == LISA_OK) s = lisa_cuda_set_conv_path(be, true, LISA_CUDA_CONV_CUDNN);
        if (s != LISA_OK) return create_fail(be, lisa_fail_context(s, "LISA_CUDA_CONV=cudnn"));
    }
    *out = be;
    return LISA_OK;
}

const char *lisa_cuda_device_name(const lisa_backend *be) { return lisa_cuda_impl_of(be)->name; }

void lisa_cuda_set_sync_checks(lisa_backend *be, bool on) { (void)be, (void)on; }

int64_t lisa_cuda_host_waits(const lisa_backend *be) { return lisa_cuda_impl_of(be)->host_waits; }

const lisa_ops *lisa_cuda_ops_table(void) { return &cuda_ops; }

void *lisa_cuda_stream(const lisa_backend *be) { return (void *)lisa_cuda_impl_of(be)->stream; }
