/* kernels/cuda/graph.c — CUDA graph capture and replay for the backend (see cuda.h). */
#include "kernels/cuda/cuda_internal.h"

#include <stdlib.h>

/* Owns one instantiated graph; lives until lisa_cuda_graph_free. */
struct lisa_backend_graph {
    cudaGraphExec_t exec;
    int64_t n_nodes; /* kernels, copies and memsets captured */
};

lisa_status lisa_cuda_capture_begin(lisa_backend *be, int64_t max_kv_keys) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (im->capturing) return lisa_fail(LISA_ERR_INVALID_ARG, "cuda graph: a capture is already in progress");
    CUDA_CHECK(cudaStreamBeginCapture(im->stream, cudaStreamCaptureModeThreadLocal));
    im->capturing = true;
    im->capture_kv_keys = max_kv_keys;
    return LISA_OK;
}

void lisa_cuda_capture_abort(lisa_backend *be) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (!im->capturing) return;
    cudaGraph_t g = NULL;
    cudaStreamEndCapture(im->stream, &g); /* fails when the capture was invalidated: nothing to keep */
    if (g) cudaGraphDestroy(g);
    (void)cudaGetLastError();
    im->capturing = false;
    im->capture_kv_keys = 0;
}

lisa_status lisa_cuda_capture_end(lisa_backend *be, lisa_backend_graph **out) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    *out = NULL;
    if (!im->capturing) return lisa_fail(LISA_ERR_INVALID_ARG, "cuda graph: no capture in progress");
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(im->stream, &g);
    im->capturing = false;
    im->capture_kv_keys = 0;
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "cudaStreamEndCapture", cudaGetErrorString(e));
    }
    lisa_backend_graph *cg = calloc(1, sizeof *cg);
    if (!cg) {
        cudaGraphDestroy(g);
        return lisa_fail(LISA_ERR_OOM, "cuda graph: out of host memory");
    }
    size_t n_nodes = 0;
    if (cudaGraphGetNodes(g, NULL, &n_nodes) == cudaSuccess) cg->n_nodes = (int64_t)n_nodes;
    (void)cudaGetLastError();
    e = cudaGraphInstantiate(&cg->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        free(cg);
        (void)cudaGetLastError();
        return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "cudaGraphInstantiate", cudaGetErrorString(e));
    }
    *out = cg;
    return LISA_OK;
}

int64_t lisa_cuda_graph_nodes(const lisa_backend_graph *g) { return g ? g->n_nodes : 0; }

lisa_status lisa_cuda_graph_launch(lisa_backend *be, const lisa_backend_graph *g) {
    CUDA_CHECK(cudaGraphLaunch(g->exec, lisa_cuda_impl_of(be)->stream));
    lisa_cuda_flag_armed(be); /* the step may hold check kernels (embedding ids, KV slots) */
    return LISA_OK;
}

void lisa_cuda_graph_free(lisa_backend *be, lisa_backend_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

lisa_status lisa_cuda_host_alloc(lisa_backend *be, size_t bytes, void **out) {
    *out = NULL;
    cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return lisa_fail(LISA_ERR_OOM, "cudaMallocHost(%zu bytes) failed: %s", bytes, cudaGetErrorString(e));
    }
    return LISA_OK;
}

void lisa_cuda_host_free(lisa_backend *be, void *p) {
    if (p) cudaFreeHost(p);
}
