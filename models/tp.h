/* models/tp.h — tensor parallelism for the LLaMA decoder (Megatron-LM style; docs/style.md §13).
 *
 * Split (every rank holds x, the residual stream, whole and identical):
 *   q/k/v_proj, gate/up_proj   column-parallel: the rank's rows of W [N, K] (its heads, its slice
 *                              of the intermediate dim): contiguous views of the checkpoint;
 *   o_proj, down_proj          row-parallel: the rank's columns of W [C, K] (copied once at load),
 *                              giving partial sums that one all-reduce per sublayer adds up;
 *   attention                  the rank's query heads and their KV heads; the paged KV pool of a
 *                              rank holds only its KV heads (same page ids on every rank);
 *   embed_tokens               split by vocab: a rank looks up the ids it owns, zeros for the rest,
 *                              and an all-reduce sums them (exact: one non-zero term per element);
 *   lm_head                    split by vocab: local logits, all-gathered into [R, V] (identical
 *                              layout and values as without TP, so argmax rules are unchanged);
 *   norms                      replicated.
 * The final-normed hidden states (the [SEG] states, spec §4.4) are replicated like x, so rank 0
 * has them without a gather.
 *
 * Shard math lives in one function, lisa_tp_shard_make, with the divisibility rules:
 *   - num_attention_heads must be a multiple of the TP size ("40 heads on 3 ranks" is an error);
 *   - num_key_value_heads: a multiple of the TP size (split), or a divisor of it (each KV head
 *     replicated on size/n_kv ranks, GQA with fewer KV heads than ranks); anything else is an error;
 *   - intermediate_size and vocab_size split unevenly where needed (sizes differ by at most one:
 *     [r*N/size, (r+1)*N/size)); the logits gather pads every shard to ceil(V/size) columns.
 */
#ifndef LISA_MODELS_TP_H
#define LISA_MODELS_TP_H

#include "models/graph.h"
#include "kernels/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lisa_llama_config;

typedef struct lisa_tp_shard {
    int32_t rank, size;
    int32_t head0, n_heads;       /* query heads [head0, head0 + n_heads) */
    int32_t kv_head0, n_kv_heads; /* KV heads [kv_head0, kv_head0 + n_kv_heads) */
    bool kv_replicated;           /* n_kv_heads < size: this rank's KV head is also on other ranks */
    int32_t inter0, n_inter;      /* intermediate columns */
    int32_t vocab0, n_vocab;      /* vocabulary rows of embed_tokens / lm_head */
    int32_t vocab_pad;            /* ceil(V / size): the widest shard (logits gather) */
} lisa_tp_shard;

/* This rank's shard of the LLaMA `c` over `size` ranks; LISA_ERR_INVALID_ARG with a message naming
 * the dimension, its value and the TP size when the split is impossible. */
lisa_status lisa_tp_shard_make(lisa_tp_shard *s, const struct lisa_llama_config *c, int32_t size, int32_t rank);

/* ---- graph helpers (no-ops while measuring; `c` NULL or of size 1: no communication) ---------- */

/* x <- sum over ranks of x (in place; x contiguous F32 in the backend's memory). */
void lisa_tp_all_reduce(lisa_graph *g, lisa_comm *c, T *x);
/* Broadcasts x (contiguous, backend memory) from rank `root`. */
void lisa_tp_broadcast(lisa_graph *g, lisa_comm *c, T *x, int32_t root);
/* Embedding rows of the host ids[n] (I32) from a vocab-split table (rows [vocab0, vocab0+n_vocab)
 * of the full one): [n, C], equal on every rank to the unsplit lookup. An id outside [0, V) is
 * LISA_ERR_INVALID_ARG naming it. */
T *lisa_tp_embedding(lisa_graph *g, lisa_comm *c, const lisa_tp_shard *s, int32_t vocab, const T *table,
                     const int32_t *ids, int64_t n);
/* The full logits [R, V] from every rank's local logits [R, n_vocab]. */
T *lisa_tp_gather_vocab(lisa_graph *g, lisa_comm *c, const lisa_tp_shard *s, int32_t vocab, const T *local);

#ifdef __cplusplus
}
#endif

#endif
