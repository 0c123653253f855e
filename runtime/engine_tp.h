/* runtime/engine_tp.h — the batching engine under tensor parallelism (issue #10).
 *
 * Rank 0 of a TP group (the leader) runs the whole engine: workers, admission, CLIP + SAM encoder,
 * the mask stage. Before each LLM graph it broadcasts the step's plan over the group's host
 * communicator; ranks >= 1 (followers) sit in lisa_model_tp_follow, receive the plan into their
 * own copies of the engine's host arrays and run the very same graph function over their shard
 * (and their KV pool, whose page ids the leader's plan decides: the prefix tree and the image cache
 * live on the leader only; the followers mirror its page decisions through the plans, copy-on-write
 * copies included). The projected image rows are
 * broadcast inside the prefill graph (followers load no CLIP); the final-normed [SEG] states are
 * replicated on every rank, so the leader has them without a gather.
 *
 * Messages (host int32, one broadcast of a fixed header then one of the payload):
 *   CREATE   an engine was created: max_batch, max_prefill_tokens, max_images, page_size,
 *            n_pages, n_patches (followers build the same buffers and pool)
 *   PREFIX   the shared system-prompt prefill      } plan: qo_indptr, positions, slots,
 *   PREFILL  a prefill step                        } kv_indptr, kv_indices, kv_len, token ids,
 *   DECODE   a decode step                         } (prefill) first position / placeholder / image
 *                                                    row block / ends-its-request per sequence, and
 *                                                    the copy-on-write page pairs (src, dst)
 *   FREE     the engine was freed
 *   SHUTDOWN the model was freed: lisa_model_tp_follow returns
 */
#ifndef LISA_RUNTIME_ENGINE_TP_H
#define LISA_RUNTIME_ENGINE_TP_H

#include "kernels/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lisa_tp_kind {
    LISA_TP_CREATE = 1,
    LISA_TP_PREFIX,
    LISA_TP_PREFILL,
    LISA_TP_DECODE,
    LISA_TP_FREE,
    LISA_TP_SHUTDOWN,
} lisa_tp_kind;

/* One message. For steps, the arrays are the engine's host arrays: the leader sends from them,
 * a follower receives into them (capacities in `cap_*`, checked: a plan that does not fit is
 * LISA_ERR_INTERNAL, a bug). For CREATE, `args` holds the six values listed above. */
typedef struct lisa_tp_plan {
    int32_t kind;
    int32_t n_batch, n_rows, n_text; /* n_idx = kv_indptr[n_batch] */
    int32_t n_copy;                  /* copy-on-write pairs (prefill) */
    int32_t args[6];
    int32_t *qo, *pos, *slots, *kvp, *idx, *kvl, *ids, *seq; /* seq: [n_batch][4] */
    int32_t *copies;                 /* [n_copy][2] */
    int32_t cap_seqs, cap_rows, cap_idx, cap_copies;
    int32_t *buf; /* packing buffer, lisa_tp_plan_buf_len() ints */
} lisa_tp_plan;

/* ints of a message's fixed header: a buffer this long receives control messages (no engine yet) */
#define LISA_TP_HEADER_INTS 12

size_t lisa_tp_plan_buf_len(int32_t cap_seqs, int32_t cap_rows, int32_t cap_idx, int32_t cap_copies);
/* Rank 0 sends `p`, the others receive it (same call on every rank of `c`). */
lisa_status lisa_tp_plan_bcast(lisa_comm *c, lisa_tp_plan *p);
/* A control message without payload (CREATE args, FREE, SHUTDOWN) from the leader. */
lisa_status lisa_tp_send(lisa_comm *c, int32_t kind, const int32_t args[6]);

#ifdef __cplusplus
}
#endif

#endif
