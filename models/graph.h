/* models/graph.h — how model graphs are written (docs/style.md §16).
 *
 * A graph function takes a lisa_graph `g` and tensors, and calls the g_* helpers below, one line
 * per term of the paper's equation. Each helper allocates its output from the activation arena,
 * calls the backend op through the ops table, and records the first failure in g->status; after a
 * failure every helper is a no-op that returns g's error tensor, so graph code checks the status
 * once per block instead of after every op.
 *
 * Count-only pass: when the activation arena is measuring, helpers allocate no data and run no
 * op, but compute every shape (descriptors still live in the host `meta` arena, which is never
 * measuring), so running a graph once with a measuring arena gives the exact arena
 * size for the real run (one allocation per lifetime, docs/style.md §10).
 *
 * Scoped temporaries: m = lisa_g_mark(g); ...; lisa_g_reset(g, m) releases everything allocated since the
 * mark in both arenas (use the *_to helpers to write a result into a tensor allocated earlier).
 *
 * Ownership: a lisa_graph borrows its backend and arenas; tensors it returns live in those arenas
 * until they are reset.
 */
#ifndef LISA_MODELS_GRAPH_H
#define LISA_MODELS_GRAPH_H

#include "kernels/ops.h"
#include "core/arena.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef lisa_tensor T;

typedef struct lisa_graph {
    lisa_backend *be;
    lisa_arena *act;    /* activation data, in the backend's memory */
    lisa_arena *meta;   /* host memory for tensor descriptors */
    lisa_dtype act_dtype; /* activation dtype: F32 on the CPU backend, BF16 (or F32 for checks) on CUDA */
    lisa_status status; /* first failure (message in lisa_last_error()) */
    T error_tensor;     /* returned by helpers after a failure */
    /* Optional parity hook: graphs call lisa_g_tap(g, "enc.block.3", x) at the spec's tap points
     * (spec §8); tests compare there against golden data. Not called while measuring. */
    void (*tap)(void *tap_ctx, const char *name, const T *t);
    void *tap_ctx;
    /* Batch invariance. OpenBLAS's sgemm gives a row different bits depending on the other rows of
     * the call (measured: row count and position matter), so a batch of requests would not match
     * the same requests run alone. When set, lisa_g_linear runs one GEMM per row group: the groups of
     * row_indptr[0..n_row_groups] when x has row_indptr[n_row_groups] rows (the LLM's packed
     * sequences), else row_split equal parts when the rows divide evenly (images of a batch). */
    const int32_t *row_indptr;
    int32_t n_row_groups;
    int32_t row_split;
} lisa_graph;

typedef struct lisa_graph_mark {
    size_t act, meta;
} lisa_graph_mark;

void lisa_graph_init(lisa_graph *g, lisa_backend *be, lisa_arena *act, lisa_arena *meta, lisa_dtype act_dtype);
static inline bool g_ok(const lisa_graph *g) { return g->status == LISA_OK; }
static inline bool g_measuring(const lisa_graph *g) { return g->act->measuring; }
/* Records s as the graph's failure (if it is the first) and returns g's error tensor. */
T *lisa_g_fail(lisa_graph *g, lisa_status s);
lisa_graph_mark lisa_g_mark(const lisa_graph *g);
/* Calls g->tap (if set, the graph is healthy and not measuring); the name is printf-formatted. */
void lisa_g_tap(lisa_graph *g, const T *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void lisa_g_reset(lisa_graph *g, lisa_graph_mark m);

/* ---- tensors -------------------------------------------------------------------------------- */
/* New contiguous tensor (activation arena for data, meta arena for the descriptor). */
T *lisa_g_new(lisa_graph *g, lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
T *lisa_g_new_like(lisa_graph *g, const T *x);
/* A descriptor copy of an existing tensor (e.g. a weight view) living in the meta arena. */
T *lisa_g_wrap(lisa_graph *g, const T *x);
/* Views (no data movement). */
T *lisa_g_reshape(lisa_graph *g, const T *x, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
T *lisa_g_permute(lisa_graph *g, const T *x, int32_t p0, int32_t p1, int32_t p2, int32_t p3);
T *lisa_g_narrow(lisa_graph *g, const T *x, int32_t dim, int64_t start, int64_t len);
/* Columns [col0, col0 + heads·head_dim) of a row-major [R, N] matrix (a fused projection's output)
 * as the strided view [R, heads, head_dim]. */
T *lisa_g_split_heads(lisa_graph *g, const T *x, int64_t col0, int64_t heads, int64_t head_dim);
/* Contiguous copy (with dtype conversion when dt differs; pass x->dtype to keep it). */
T *lisa_g_contiguous(lisa_graph *g, const T *x);
T *lisa_g_cast(lisa_graph *g, const T *x, lisa_dtype dt);
void lisa_g_copy_to(lisa_graph *g, T *y, const T *x);
/* Host <-> backend transfers inside a graph. lisa_g_upload returns a backend tensor holding a copy of
 * the contiguous host tensor `host`, float data converted to the graph's act_dtype (on the CPU
 * backend with an F32 graph: the host tensor itself, zero copy); integer tensors keep their dtype.
 * lisa_g_download converts `x` to host_dst's dtype and copies it into the contiguous host tensor. */
T *lisa_g_upload(lisa_graph *g, const T *host);
void lisa_g_download(lisa_graph *g, T *host_dst, const T *x);

/* ---- ops (see kernels/ops.def for the exact semantics) ------------------------------------ */
T *lisa_g_linear(lisa_graph *g, const T *x, const T *w, const T *b);
void lisa_g_linear_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b);
/* Fused ops (ops.def "fused ops"): y = act(x·wᵀ + b) + residual (residual may be NULL, or y itself
 * with the _to form: x = x + Linear(h)); */
T *lisa_g_linear_ex(lisa_graph *g, const T *x, const T *w, const T *b, const T *residual, lisa_act act);
void lisa_g_linear_ex_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b, const T *residual, lisa_act act);
/* sum = x + r and y = norm(sum) (sum may be x or r; sum or y NULL: a new tensor), returns y; */
T *lisa_g_add_rmsnorm(lisa_graph *g, T *sum, T *y, const T *x, const T *r, const T *w, float eps);
T *lisa_g_add_layernorm(lisa_graph *g, T *sum, T *y, const T *x, const T *r, const T *w, const T *b, float eps);
/* SAM: the windows of LayerNorm(x), and y = residual + unpartition(x) (y may be residual); */
T *lisa_g_layernorm_window_partition(lisa_graph *g, const T *x, const T *w, const T *b, float eps, int32_t window);
void lisa_g_window_unpartition_add_to(lisa_graph *g, T *y, const T *x, const T *residual, int32_t window);
/* RoPE on q and k in place (strided views allowed), angles from a lisa_rope_table table. */
void lisa_g_rope_qk(lisa_graph *g, T *q, T *k, const T *pos, const T *cos_sin);
/* The same, with k's rotated rows and v written into the paged pool at slots (KV_APPEND) in one op; */
void lisa_g_rope_qk_kv_append(lisa_graph *g, T *q, T *k, const T *v, const T *pos, const T *cos_sin, T *k_pages,
                              T *v_pages, const T *slots);
/* SAM two-way transformer steps (ops.def TWOWAY_ATTENTION, TWOWAY_MLP): returns
 * norm(xq + Attn(xq + qpe, xk + kpe, xv)) (no residual: norm(Attn(..))), and norm(x + MLP(x)); */
T *lisa_g_twoway_attention(lisa_graph *g, const T *xq, const T *qpe, const T *xk, const T *kpe, const T *xv,
                           const lisa_twoway_attn *a, bool residual, const T *norm_w, const T *norm_b, float eps);
T *lisa_g_twoway_mlp(lisa_graph *g, const T *x, const T *w1, const T *b1, const T *w2, const T *b2, const T *norm_w,
                     const T *norm_b, float eps);
/* SAM's 3-layer prediction-head MLP (ops.def MLP3) on x's rows (x may be strided); */
T *lisa_g_mlp3(lisa_graph *g, const T *x, const T w[3], const T b[3]);
T *lisa_g_matmul(lisa_graph *g, const T *a, const T *b, bool trans_b);
void lisa_g_matmul_to(lisa_graph *g, T *y, const T *a, const T *b, bool trans_b);
T *lisa_g_add(lisa_graph *g, const T *a, const T *b);
void lisa_g_add_to(lisa_graph *g, T *y, const T *a, const T *b);
T *lisa_g_mul(lisa_graph *g, const T *a, const T *b);
T *lisa_g_scale(lisa_graph *g, const T *x, float s, float c);
T *lisa_g_layernorm(lisa_graph *g, const T *x, const T *w, const T *b, float eps);
void lisa_g_layernorm_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b, float eps);
T *lisa_g_layernorm2d(lisa_graph *g, const T *x, const T *w, const T *b, float eps);
T *lisa_g_rmsnorm(lisa_graph *g, const T *x, const T *w, float eps);
void lisa_g_rmsnorm_to(lisa_graph *g, T *y, const T *x, const T *w, float eps);
T *lisa_g_softmax(lisa_graph *g, const T *x);
T *lisa_g_gelu(lisa_graph *g, const T *x);
T *lisa_g_quick_gelu(lisa_graph *g, const T *x);
T *lisa_g_relu(lisa_graph *g, const T *x);
T *lisa_g_silu_mul(lisa_graph *g, const T *gate, const T *up);
T *lisa_g_rope(lisa_graph *g, const T *x, const T *pos, float theta);
/* Attention with q[B,Tq,H,D], k/v[B,Tk,Hkv,D] -> [B,Tq,H,D]. */
T *lisa_g_attention(lisa_graph *g, const T *q, const T *k, const T *v, const lisa_attn_params *p);
/* SAM attention with decomposed rel-pos over a q_h x q_w grid (ops.def ATTENTION_RELPOS):
 * q/k/v [B, q_h·q_w, H, D] -> [B, q_h·q_w, H, D]. */
T *lisa_g_attention_relpos(lisa_graph *g, const T *q, const T *k, const T *v, const T *rel_pos_h, const T *rel_pos_w,
                          int32_t q_h, int32_t q_w, float scale);
/* Paged KV: write k/v rows into their slots; attention of packed queries over the pages. */
void lisa_g_kv_append(lisa_graph *g, T *k_pages, T *v_pages, const T *k, const T *v, const T *slots);
T *lisa_g_paged_attention(lisa_graph *g, const T *q, const T *k_pages, const T *v_pages, const lisa_paged_params *p);
T *lisa_g_window_partition(lisa_graph *g, const T *x, int32_t window);
T *lisa_g_window_unpartition(lisa_graph *g, const T *x, int32_t window, int64_t h, int64_t w);
T *lisa_g_conv2d(lisa_graph *g, const T *x, const T *w, const T *b, int32_t stride, int32_t pad);
T *lisa_g_conv_transpose2d_k2s2(lisa_graph *g, const T *x, const T *w, const T *b);
/* Bilinear resize; the output keeps x's dtype (not act_dtype). */
T *lisa_g_bilinear(lisa_graph *g, const T *x, int64_t out_h, int64_t out_w);
T *lisa_g_embedding(lisa_graph *g, const T *table, const T *ids);
T *lisa_g_argmax(lisa_graph *g, const T *x);

/* Runs `fn(g, ctx)` once with measuring arenas and returns the peak activation and descriptor
 * bytes it needs (the count-only pass). */
typedef void (*lisa_graph_fn)(lisa_graph *g, void *ctx);
#define LISA_GRAPH_MEASURE_META_BYTES (16u << 20)
lisa_status lisa_graph_measure(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx, size_t *act_bytes,
                               size_t *meta_bytes);
/* Runs `fn(g, ctx)` for real on `be` (the caller's execution context): measures it first, then
 * runs it once in an activation arena of exactly that size on the backend's memory, freed before
 * returning (a one-shot stage; the engine's per-step graphs keep their arenas instead). `tap`, when
 * set, is the parity hook (lisa_graph.tap). Returns the graph's status. */
lisa_status lisa_graph_run_once(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx,
                                void (*tap)(void *tap_ctx, const char *name, const T *t), void *tap_ctx);
/* The same on a caller-owned activation buffer *mem of *cap bytes (backend memory, NULL/0 at
 * first) that grows when a run needs more and is kept otherwise: for a stage run once per request
 * (the mask postprocess, sized by each image) without a device allocation and free each time. The
 * caller frees *mem with be->mem_free. */
lisa_status lisa_graph_run_in(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx,
                              void (*tap)(void *tap_ctx, const char *name, const T *t), void *tap_ctx, void **mem,
                              size_t *cap);

#ifdef __cplusplus
}
#endif

#endif
