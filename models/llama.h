/* models/llama.h — the LLaMA decoder of LISA (spec §4.3, HF transformers 4.31 semantics):
 * RMSNorm, rotate-half RoPE, SwiGLU MLP, MHA and GQA, with a KV cache; prefill and decode share
 * one graph function (T new tokens at positions pos0..pos0+T-1 against the cached prefix).
 *
 * Weight names are the HF ones (`model.layers.N.self_attn.q_proj.weight`, ...). The config comes
 * from the LISA/LLaVA config.json (hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads (absent = MHA), rms_norm_eps, vocab_size,
 * max_position_embeddings, rope_theta (absent = 10000)).
 *
 * Tensor parallelism (models/tp.h): a model loaded with a communicator of size > 1 holds only its
 * rank's shard; every rank runs the same graph calls and gets the same final-normed states and
 * full logits. `local` gives this rank's head / KV-head / intermediate / vocab counts (size the KV
 * cache with it); without TP it equals `cfg`.
 *
 * Ownership: a lisa_llama owns its layer array, weight bindings and RoPE table; it borrows the backend, the
 * checkpoint (which must outlive it) and the communicator (likewise). A lisa_kv_cache owns one
 * block of backend memory holding K and V for every layer.
 */
#ifndef LISA_MODELS_LLAMA_H
#define LISA_MODELS_LLAMA_H

#include "models/graph.h"
#include "models/tp.h"
#include "models/weights.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_llama_config {
    int32_t hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab, max_pos;
    float rms_eps, rope_theta;
    int32_t bos_id, eos_id, pad_id;
} lisa_llama_config;

/* Reads the LLaMA fields of an HF config.json object (`file` names it in errors). */
lisa_status lisa_llama_config_parse(lisa_llama_config *c, const cJSON *root, const char *file);

typedef struct lisa_llama_layer {
    T attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
    /* Device backends: q/k/v_proj and gate/up_proj concatenated once at load ([q; k; v] rows
     * [nq + 2·nk, C], [gate; up] [2·I, C]), so that one GEMM computes each group; wq, wk, wv,
     * w_gate, w_up are views of their rows. Empty (n_dims 0) on the CPU, which keeps separate
     * GEMMs: OpenBLAS's bits depend on the GEMM's shape, and the CPU is the bitwise reference.
     * Owned by the weights' block. */
    T wqkv, w_gateup;
} lisa_llama_layer;

typedef struct lisa_llama {
    lisa_llama_config cfg;   /* the whole model's config */
    lisa_llama_config local; /* this rank's share: n_heads, n_kv_heads, intermediate, vocab local */
    lisa_tp_shard tp;
    lisa_comm *comm;         /* borrowed; NULL = no tensor parallelism */
    lisa_weights weights;
    bool fused;              /* wqkv / w_gateup in use (device backends; lisa_llama_load_fuse) */
    T embed, norm, lm_head;
    T rope_cos_sin;          /* F32 [max_pos, head_dim]: RoPE's cos/sin per position (lisa_rope_table) */
    void *rope_mem;          /* owned (be->mem_free): rope_cos_sin's data */
    lisa_backend *be;        /* borrowed */
    lisa_llama_layer *layers; /* [cfg.n_layers], owned */
} lisa_llama;

lisa_status lisa_llama_load(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck, const lisa_llama_config *cfg);
/* Loads this rank's shard for tensor parallelism over `comm` (NULL or size 1: the whole model).
 * LISA_ERR_INVALID_ARG when the config does not split over comm->size ranks (models/tp.h). */
lisa_status lisa_llama_load_tp(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck,
                               const lisa_llama_config *cfg, lisa_comm *comm);
/* Both: the storage dtype of weight matrices on device backends (BF16 above; F32 for exact checks;
 * the CPU backend keeps zero-copy views of the checkpoint) and an optional TP communicator. */
lisa_status lisa_llama_load_ex(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck, const lisa_llama_config *cfg,
                               lisa_dtype weight_dtype, lisa_comm *comm);
/* The same with the choice of fused q/k/v and gate/up weights (lisa_llama_layer.wqkv) made by the
 * caller: the forms above fuse on device backends only; fusing on the CPU backend (tests of the
 * fused graph) gives the unfused results to rounding, not bit for bit. */
lisa_status lisa_llama_load_fuse(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck,
                                 const lisa_llama_config *cfg, lisa_dtype weight_dtype, lisa_comm *comm, bool fuse);
void lisa_llama_free(lisa_llama *m);

/* Contiguous KV cache for one sequence (the paged, batched cache lives in runtime/).
 * k[l], v[l]: [1, n_ctx, n_kv_heads, head_dim] views into one owned block. */
typedef struct lisa_kv_cache {
    lisa_backend *be;
    void *mem;     /* owned: be->mem_free */
    T *k, *v;      /* [n_layers] descriptors, owned (malloc) */
    int32_t n_layers, n_ctx;
    int32_t len;   /* tokens stored */
} lisa_kv_cache;

lisa_status lisa_kv_cache_init(lisa_kv_cache *kv, lisa_backend *be, const lisa_llama_config *cfg, int32_t n_ctx,
                               lisa_dtype dtype);
void lisa_kv_cache_free(lisa_kv_cache *kv);

/* Runs the decoder over x [T, C] (input embeddings) at positions kv->len .. kv->len+T-1, appending
 * K/V to the cache (kv->len advances by T when the graph succeeds and runs for real), and returns
 * the final-normed hidden states [T, C] (the "hidden_states" LISA gathers [SEG] from, §4.4).
 * Taps: "llm.layer.%d" [T, C]. */
T *lisa_llama_forward(lisa_graph *g, const lisa_llama *m, lisa_kv_cache *kv, const T *x);

/* A batch step over the paged KV cache (runtime/kv_cache.h): the packed rows of n_seqs sequences
 * (prefill chunks and single decode tokens mixed). All arrays are host memory; the graph uploads
 * what the backend needs. k_pages[l], v_pages[l] are the pool's per-layer views. */
typedef struct lisa_llama_batch {
    int32_t n_seqs, n_rows;
    const int32_t *qo_indptr;  /* [n_seqs+1] rows of each sequence */
    const int32_t *positions;  /* [n_rows] absolute position of each row */
    const int32_t *slots;      /* [n_rows] KV slot each row's key/value is written to */
    const int32_t *kv_indptr;  /* [n_seqs+1] into kv_indices */
    const int32_t *kv_indices; /* page tables, concatenated */
    const int32_t *kv_len;     /* [n_seqs] tokens per sequence after this step */
    int32_t n_indices_upload;  /* kv_indices entries to upload when more than kv_indptr[n_seqs] (0: those):
                                  a fixed count keeps a captured CUDA graph's copy valid as tables change */
    int32_t page_size;
    T *k_pages, *v_pages;      /* [n_layers] */
} lisa_llama_batch;

/* Decoder over x [n_rows, C] for a batch step; returns the final-normed states [n_rows, C].
 * Every sequence's rows are computed independently of the others (attention per sequence; the
 * caller sets g->row_indptr = qo_indptr for batch-invariant GEMMs on the CPU). */
T *lisa_llama_forward_batch(lisa_graph *g, const lisa_llama *m, const lisa_llama_batch *bt, const T *x);

/* logits [R, V] (F32) = lm_head(h) for the rows h [R, C] (only where needed: the last position); the
 * full vocabulary on every rank under TP (gathered). */
T *lisa_llama_logits(lisa_graph *g, const lisa_llama *m, const T *h);

/* Input embeddings [n, C] of the host token ids[n] (embed_tokens; vocab-split under TP). */
T *lisa_llama_embed(lisa_graph *g, const lisa_llama *m, const int32_t *ids, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
