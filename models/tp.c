/* models/tp.c — shard math and the collective graph helpers of tensor parallelism (models/tp.h).
 * ref: Megatron-LM (Shoeybi et al. 2019, §3: column- then row-parallel MLP and attention, one
 *      all-reduce per sublayer; vocab-parallel embedding); vLLM VocabParallelEmbedding. */
#include "models/tp.h"

#include "models/llama.h"
#include "core/error.h"

#include <string.h>

static int32_t split_at(int32_t n, int32_t r, int32_t size) { return (int32_t)((int64_t)n * r / size); }

lisa_status lisa_tp_shard_make(lisa_tp_shard *s, const lisa_llama_config *c, int32_t size, int32_t rank) {
    memset(s, 0, sizeof *s);
    if (size < 1 || rank < 0 || rank >= size)
        return lisa_fail(LISA_ERR_INVALID_ARG, "tensor parallelism: rank %d of %d ranks", rank, size);
    const int32_t H = c->n_heads, HKV = c->n_kv_heads;
    if (H % size)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "tensor parallelism: %d attention heads do not split over %d ranks (num_attention_heads "
                         "must be a multiple of the TP size; try %s)",
                         H, size, H % 2 == 0 && size > 2 ? "2" : "1");
    if (HKV % size && size % HKV)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "tensor parallelism: %d key/value heads do not split over %d ranks (num_key_value_heads "
                         "must be a multiple or a divisor of the TP size)",
                         HKV, size);
    if (c->intermediate < size || c->vocab < size)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "tensor parallelism: intermediate_size %d / vocab_size %d cannot give each of %d ranks a "
                         "share",
                         c->intermediate, c->vocab, size);
    s->rank = rank;
    s->size = size;
    s->n_heads = H / size;
    s->head0 = rank * s->n_heads;
    if (HKV % size == 0) {
        s->n_kv_heads = HKV / size;
        s->kv_head0 = rank * s->n_kv_heads;
    } else {
        /* fewer KV heads than ranks: size/HKV consecutive ranks share one; their query heads all
         * belong to its group since H/size <= H/HKV */
        s->n_kv_heads = 1;
        s->kv_head0 = rank / (size / HKV);
        s->kv_replicated = true;
    }
    LISA_ASSERT(s->head0 / (H / HKV) >= s->kv_head0 &&
                (s->head0 + s->n_heads - 1) / (H / HKV) < s->kv_head0 + s->n_kv_heads);
    s->inter0 = split_at(c->intermediate, rank, size);
    s->n_inter = split_at(c->intermediate, rank + 1, size) - s->inter0;
    s->vocab0 = split_at(c->vocab, rank, size);
    s->n_vocab = split_at(c->vocab, rank + 1, size) - s->vocab0;
    s->vocab_pad = (c->vocab + size - 1) / size;
    return LISA_OK;
}

static bool active(const lisa_graph *g, const lisa_comm *c) { return c && c->size > 1 && g_ok(g); }

void lisa_tp_all_reduce(lisa_graph *g, lisa_comm *c, T *x) {
    if (!active(g, c)) return;
    LISA_ASSERT(lisa_tensor_is_contiguous(x));
    /* The communicators sum F32; BF16 activations (GPU) go through an F32 copy and back. */
    lisa_graph_mark mk = lisa_g_mark(g);
    T *f = x->dtype == LISA_DTYPE_F32 ? x : lisa_g_cast(g, x, LISA_DTYPE_F32);
    if (g_ok(g) && !g_measuring(g)) {
        lisa_status s = c->all_reduce_sum_f32(c, f->data, (size_t)lisa_tensor_numel(f));
        if (s != LISA_OK) lisa_g_fail(g, s);
    }
    if (f != x) lisa_g_copy_to(g, x, f);
    lisa_g_reset(g, mk);
}

void lisa_tp_broadcast(lisa_graph *g, lisa_comm *c, T *x, int32_t root) {
    if (!active(g, c) || g_measuring(g)) return;
    LISA_ASSERT(lisa_tensor_is_contiguous(x));
    lisa_status s = c->broadcast(c, x->data, lisa_tensor_nbytes(x), root);
    if (s != LISA_OK) lisa_g_fail(g, s);
}

T *lisa_tp_embedding(lisa_graph *g, lisa_comm *c, const lisa_tp_shard *s, int32_t vocab, const T *table,
                     const int32_t *ids, int64_t n) {
    if (!g_ok(g)) return &g->error_tensor;
    const int64_t shape[1] = {n};
    if (!c || c->size == 1) {
        lisa_tensor host = lisa_tensor_view((void *)ids, LISA_DTYPE_I32, 1, shape);
        return lisa_g_embedding(g, table, lisa_g_upload(g, &host));
    }
    /* local ids (0 where the row is another rank's) and a 0/1 row mask, in host memory from the
     * descriptor arena (never measuring, so the counting pass sizes it too) */
    void *mem = NULL;
    lisa_status st = lisa_arena_alloc(g->meta, (size_t)n * (sizeof(int32_t) + sizeof(float)), &mem);
    if (st != LISA_OK) return lisa_g_fail(g, st);
    int32_t *lid = mem;
    float *mask = (float *)(lid + n);
    if (!g_measuring(g))
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= vocab)
                return lisa_g_fail(g, lisa_fail(LISA_ERR_INVALID_ARG, "embedding: token id %d outside the vocabulary of %d",
                                           ids[i], vocab));
            const bool mine = ids[i] >= s->vocab0 && ids[i] < s->vocab0 + s->n_vocab;
            lid[i] = mine ? ids[i] - s->vocab0 : 0;
            mask[i] = mine ? 1.0f : 0.0f;
        }
    lisa_tensor hid = lisa_tensor_view(lid, LISA_DTYPE_I32, 1, shape);
    lisa_tensor hmask = lisa_tensor_view(mask, LISA_DTYPE_F32, 2, (int64_t[]){n, 1});
    /* x = Σ_ranks mask_r * table_r[local id]: exactly one rank contributes a non-zero row (the
     * others add ±0), so the sum is the unsplit row bit for bit */
    T *x = lisa_g_mul(g, lisa_g_embedding(g, table, lisa_g_upload(g, &hid)), lisa_g_upload(g, &hmask));
    lisa_tp_all_reduce(g, c, x);
    return x;
}

T *lisa_tp_gather_vocab(lisa_graph *g, lisa_comm *c, const lisa_tp_shard *s, int32_t vocab, const T *local) {
    if (!g_ok(g)) return &g->error_tensor;
    if (!c || c->size == 1) return (T *)local;
    const int64_t R = local->shape[0], VP = s->vocab_pad, P = c->size;
    LISA_ASSERT(local->n_dims == 2 && local->shape[1] == s->n_vocab);
    T *out = lisa_g_new(g, local->dtype, 2, R, vocab, 0, 0); /* the logits' dtype (F32) */
    lisa_graph_mark mk = lisa_g_mark(g);
    /* every shard padded to vocab_pad columns so that the gather has equal sizes; the padding is
     * never read */
    T *send = lisa_g_new(g, local->dtype, 2, R, VP, 0, 0);
    T *recv = lisa_g_new(g, local->dtype, 3, P, R, VP, 0);
    lisa_g_copy_to(g, lisa_g_narrow(g, send, 1, 0, s->n_vocab), local);
    if (g_ok(g) && !g_measuring(g)) {
        lisa_status st = c->all_gather(c, recv->data, send->data, lisa_tensor_nbytes(send));
        if (st != LISA_OK) return lisa_g_fail(g, st);
    }
    for (int32_t r = 0; r < P; r++) {
        const int64_t v0 = (int64_t)vocab * r / P, nv = (int64_t)vocab * (r + 1) / P - v0;
        T *part = lisa_g_narrow(g, lisa_g_reshape(g, lisa_g_narrow(g, recv, 0, r, 1), 2, R, VP, 0, 0), 1, 0, nv);
        lisa_g_copy_to(g, lisa_g_narrow(g, out, 1, v0, nv), part);
    }
    lisa_g_reset(g, mk);
    return out;
}
