/* kernels/ops.h — the backend interface: one ops table per backend (CPU reference, CUDA).
 *
 * Models call the lisa_op_<name>() wrappers generated from kernels/ops.def; a backend fills a
 * lisa_ops table (NULL entries = unsupported). See ops.def for each op's exact semantics.
 */
#ifndef LISA_KERNELS_OPS_H
#define LISA_KERNELS_OPS_H

#include "core/arena.h"
#include "core/error.h"
#include "core/tensor.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_backend lisa_backend;
/* A step captured by a backend for replay (CUDA: an instantiated CUDA graph). Opaque. */
typedef struct lisa_backend_graph lisa_backend_graph;

/* Attention options (ops.def ATTENTION). All optional parts NULL/0 when unused. */
typedef struct lisa_attn_params {
    float scale;               /* multiplies q·kᵀ (e.g. 1/sqrt(D)) */
    bool causal;               /* query i sees keys j <= i + (Tk − Tq) (a KV cache prefix) */
    const lisa_tensor *bias;   /* additive scores [B or 1, H or 1, Tq, Tk], F32, or NULL */
    const lisa_tensor *rel_h;  /* SAM rel-pos terms [B, H, Tq, k_h] (ops.def REL_POS) or NULL */
    const lisa_tensor *rel_w;  /* [B, H, Tq, k_w]; key j = ky·k_w + kx gets rel_h[..ky] + rel_w[..kx] */
} lisa_attn_params;

/* Paged attention plan (ops.def PAGED_ATTENTION). The index tensors are I32 in the backend's
 * memory; the host_* arrays are the same values on the host (for launch planning), equal in size. */
typedef struct lisa_paged_params {
    int32_t batch;                 /* B sequences */
    int32_t page_size;
    float scale;
    bool causal;
    const lisa_tensor *qo_indptr;  /* [B+1] query rows per sequence (packed) */
    const lisa_tensor *kv_indptr;  /* [B+1] into kv_indices */
    const lisa_tensor *kv_indices; /* page ids, sequence by sequence */
    const lisa_tensor *kv_len;     /* [B] valid tokens per sequence (after this step's append) */
    const int32_t *host_qo_indptr, *host_kv_indptr, *host_kv_indices, *host_kv_len;
} lisa_paged_params;

/* The activation of a LINEAR_EX epilogue (ops.def), each one of the activation ops. */
typedef enum lisa_act {
    LISA_ACT_NONE = 0,
    LISA_ACT_RELU,       /* RELU */
    LISA_ACT_GELU,       /* GELU, exact erf form (SAM, PyTorch's default) */
    LISA_ACT_QUICK_GELU, /* QUICK_GELU (CLIP) */
} lisa_act;

/* SAM's Attention module (segment_anything/modeling/transformer.py Attention) as TWOWAY_ATTENTION
 * (ops.def) takes it: q/k/v projections w [Ci, C] with biases [Ci] (Ci = heads·D, the module's
 * internal dim: C, or C/2 in the cross attentions), the output projection out_w [C, Ci] and
 * out_b [C]; biases may be NULL. Borrowed pointers. */
typedef struct lisa_twoway_attn {
    const lisa_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *out_w, *out_b;
    int32_t heads;
} lisa_twoway_attn;

#define LISA_UNPAREN(...) __VA_ARGS__

typedef enum lisa_op {
#define LISA_OP(E, n, params, args) LISA_OP_##E,
#include "kernels/ops.def"
#undef LISA_OP
    LISA_OP_COUNT
} lisa_op;

/* The fused ops are the last ones of ops.def, from LINEAR_EX on ("fused ops" there). */
#define LISA_OP_FIRST_FUSED LISA_OP_LINEAR_EX
static inline bool lisa_op_is_fused(lisa_op op) { return op >= LISA_OP_FIRST_FUSED && op < LISA_OP_COUNT; }

/* The table: one typed function pointer per op, each taking the backend first. */
typedef struct lisa_ops {
#define LISA_OP(E, n, params, args) lisa_status (*n)(lisa_backend * be, LISA_UNPAREN params);
#include "kernels/ops.def"
#undef LISA_OP
} lisa_ops;

/* A compute backend: one execution context on a device. Owns its ops' workspace (`scratch`, one
 * allocation for its lifetime) and whatever `impl` holds (CUDA stream, cuBLAS handles); lives until
 * lisa_backend_free.
 *
 * Threads: a backend is used by one thread at a time (every op mutates `scratch`; on CUDA the
 * stream orders its work). Memory from mem_alloc is the device's, not the context's: a model's
 * weights, allocated through the backend it was loaded with, are read by every context that
 * lisa_backend_fork makes from it, concurrently (ops never write their inputs). So a loaded model
 * is shared by giving each engine (or single call) its own fork. */
struct lisa_backend {
    const char *name;          /* "cpu", "cuda" */
    lisa_device device;
    int32_t device_id;
    char device_name[128];     /* the device's own name ("NVIDIA H100 80GB HBM3"; the CPU's model name) */
    int64_t device_memory_bytes; /* total device memory (0 on the CPU) */
    const lisa_ops *ops;
    /* Bit op set: this backend runs fused op `op` as the composition of unfused ops that ops.def
     * names (the CPU reference sets every fused op's bit); clear: one kernel, or a GEMM with an
     * epilogue (lisa_backend_fuses). */
    uint64_t composed_ops;
    lisa_arena scratch;        /* per-op temporary space (im2col tiles, softmax rows); reset by each op */
    int32_t n_threads;
    void *impl;
    /* Device memory for arenas and weights (host malloc on the CPU backend). */
    lisa_status (*mem_alloc)(lisa_backend *be, size_t bytes, void **out);
    void (*mem_free)(lisa_backend *be, void *p);
    lisa_status (*upload)(lisa_backend *be, void *dst, const void *src, size_t bytes);
    lisa_status (*download)(lisa_backend *be, void *dst, const void *src, size_t bytes);
    lisa_status (*synchronize)(lisa_backend *be);
    void (*destroy)(lisa_backend *be);
    /* Optional hooks, NULL where the backend has no such thing (the CPU backend has none); callers
     * test lisa_backend_can_capture and fall back to running the step.
     * Graph capture: record the launches of one step and replay them (what a capturable step must
     * satisfy: kernels/cuda/cuda.h). While capturing, uploads/downloads must use host_alloc memory
     * and split-KV attention plans for max_kv_keys keys. */
    lisa_status (*graph_capture_begin)(lisa_backend *be, int64_t max_kv_keys);
    lisa_status (*graph_capture_end)(lisa_backend *be, lisa_backend_graph **out); /* *out: graph_free */
    void (*graph_capture_abort)(lisa_backend *be);                                /* a failed step */
    lisa_status (*graph_launch)(lisa_backend *be, const lisa_backend_graph *g);   /* enqueue, no wait */
    void (*graph_free)(lisa_backend *be, lisa_backend_graph *g);
    /* Page-locked host memory (what captured copies may read and write). */
    lisa_status (*host_alloc)(lisa_backend *be, size_t bytes, void **out);
    void (*host_free)(lisa_backend *be, void *p);
    /* The backend's compute stream as an opaque handle (CUDA: cudaStream_t) for communicators that
     * order their collectives on it; NULL on the CPU. */
    void *stream;
    /* A new context on the same device and settings, with its own scratch (lisa_backend_fork). */
    lisa_status (*fork)(const lisa_backend *be, lisa_backend **out);
    /* Optional timing marks for per-op time tables (kernels/profile.h); NULL where ops are
     * synchronous (the CPU backend: the host clock serves). timer_reserve makes marks 0..n-1
     * available (allocates; call outside timed steps), timer_mark records mark i on the compute
     * stream (no wait), timer_elapsed gives the ms between two recorded marks once they completed. */
    lisa_status (*timer_reserve)(lisa_backend *be, int32_t n);
    lisa_status (*timer_mark)(lisa_backend *be, int32_t i);
    lisa_status (*timer_elapsed)(lisa_backend *be, int32_t a, int32_t b, float *ms);
    /* The per-op profile in progress (kernels/profile.h), borrowed; NULL when not profiling. */
    struct lisa_op_profile *profile;
};

/* True when the backend can capture and replay steps (and so offers pinned host memory). */
static inline bool lisa_backend_can_capture(const lisa_backend *be) {
    return be->graph_capture_begin && be->graph_capture_end && be->graph_capture_abort && be->graph_launch &&
           be->graph_free && be->host_alloc && be->host_free;
}

/* ROPE_QK's table (ops.def): cos_sin[p·D + i] and cos_sin[p·D + D/2 + i] = the cos and sin of
 * angle i at position p for p < n_pos, i < D/2, computed exactly as the CPU backend's ROPE computes
 * them (kernels/cpu/rope.c; it uses this function), so that the table-driven op gives ROPE's bits.
 * Host memory, F32; D even. */
void lisa_rope_table(float *cos_sin, int64_t n_pos, int64_t D, float theta);

const char *lisa_op_name(lisa_op op);
/* True when the backend implements op. */
bool lisa_backend_supports(const lisa_backend *be, lisa_op op);
/* True when op is a fused op (ops.def) that the backend implements natively — one kernel, or a GEMM
 * with an epilogue — rather than as the composition ops.def names (the CPU backend composes every
 * fused op, bit for bit). A caller for whom the fused op is worth it only when it saves memory
 * traffic asks this; lisa-check and the model's load log report it. A native backend may still
 * compose for calls its kernels cannot take (kernels/cuda/attention.h: F32 activations, other head
 * dims). False for unfused and unsupported ops. */
bool lisa_backend_fuses(const lisa_backend *be, lisa_op op);
/* The fused ops' bits of composed_ops, for a backend that composes them all (the CPU). */
uint64_t lisa_fused_ops_mask(void);
void lisa_backend_free(lisa_backend *be);

/* CPU reference backend (kernels/cpu). scratch_bytes = 0 picks a default (64 MiB); n_threads = 0
 * uses all cores. */
lisa_status lisa_backend_cpu_create(lisa_backend **out, size_t scratch_bytes, int32_t n_threads);

/* The backend a model asks for (kernels/backend.c): LISA_BACKEND_CPU, LISA_BACKEND_CUDA (device
 * `device`; LISA_ERR_UNSUPPORTED when this build has no CUDA or the machine no GPU), or
 * LISA_BACKEND_AUTO (CUDA when built and a device is present, else the CPU). n_threads: CPU
 * threads (0 = all cores). Free with lisa_backend_free. */
lisa_status lisa_backend_create(lisa_backend **out, int32_t kind, int32_t device, int32_t n_threads);

/* Another execution context on be's device (same kind, device, threads and scratch size) for a
 * second thread: its own scratch arena (CUDA: also its own stream, cuBLAS handles and workspace),
 * one allocation for its lifetime. Tensors in memory from either backend's mem_alloc are valid in
 * both. Free with lisa_backend_free (after freeing what was allocated through it). */
lisa_status lisa_backend_fork(const lisa_backend *be, lisa_backend **out);

lisa_status lisa_op_unsupported(const lisa_backend *be, const char *op);

/* Checked dispatch: lisa_op_rmsnorm(be, y, x, g, eps). */
#define LISA_OP(E, n, params, args)                                                                \
    static inline lisa_status lisa_op_##n(lisa_backend *be, LISA_UNPAREN params) {                 \
        if (!be->ops->n) return lisa_op_unsupported(be, #n);                                       \
        return be->ops->n(be, LISA_UNPAREN args);                                                  \
    }
#include "kernels/ops.def"
#undef LISA_OP

#ifdef __cplusplus
}
#endif

#endif
