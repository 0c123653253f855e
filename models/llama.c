/* models/llama.c — LLaMA decoder with a KV cache.
 * ref: transformers 4.31 models/llama/modeling_llama.py (LlamaRMSNorm, LlamaRotaryEmbedding,
 *      apply_rotary_pos_emb, LlamaAttention, LlamaMLP, LlamaDecoderLayer, LlamaModel). */
#include "models/llama.h"

#include "loader/json.h"
#include "core/error.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

lisa_status lisa_llama_config_parse(lisa_llama_config *c, const cJSON *root, const char *file) {
    int64_t hidden, inter, layers, heads, kv_heads, vocab, max_pos, bos, eos, pad;
    double eps, theta;
    LISA_TRY(lisa_json_int(root, file, "hidden_size", true, 0, &hidden));
    LISA_TRY(lisa_json_int(root, file, "intermediate_size", true, 0, &inter));
    LISA_TRY(lisa_json_int(root, file, "num_hidden_layers", true, 0, &layers));
    LISA_TRY(lisa_json_int(root, file, "num_attention_heads", true, 0, &heads));
    LISA_TRY(lisa_json_int(root, file, "num_key_value_heads", false, heads, &kv_heads));
    LISA_TRY(lisa_json_int(root, file, "vocab_size", true, 0, &vocab));
    LISA_TRY(lisa_json_int(root, file, "max_position_embeddings", false, 2048, &max_pos));
    LISA_TRY(lisa_json_double(root, file, "rms_norm_eps", false, 1e-6, &eps));
    LISA_TRY(lisa_json_double(root, file, "rope_theta", false, 10000.0, &theta));
    LISA_TRY(lisa_json_int(root, file, "bos_token_id", false, 1, &bos));
    LISA_TRY(lisa_json_int(root, file, "eos_token_id", false, 2, &eos));
    LISA_TRY(lisa_json_int(root, file, "pad_token_id", false, 0, &pad));
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: rope_scaling is not supported (LISA v1 models have none)", file);
    if (hidden <= 0 || heads <= 0 || hidden % heads || kv_heads <= 0 || heads % kv_heads || layers <= 0 || inter <= 0 ||
        vocab <= 0 || (hidden / heads) % 2)
        return lisa_fail(LISA_ERR_FORMAT,
                         "%s: inconsistent LLaMA config (hidden_size %lld, num_attention_heads %lld, "
                         "num_key_value_heads %lld, num_hidden_layers %lld)",
                         file, (long long)hidden, (long long)heads, (long long)kv_heads, (long long)layers);
    c->hidden = (int32_t)hidden;
    c->intermediate = (int32_t)inter;
    c->n_layers = (int32_t)layers;
    c->n_heads = (int32_t)heads;
    c->n_kv_heads = (int32_t)kv_heads;
    c->head_dim = (int32_t)(hidden / heads);
    c->vocab = (int32_t)vocab;
    c->max_pos = (int32_t)max_pos;
    c->rms_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->bos_id = (int32_t)bos;
    c->eos_id = (int32_t)eos;
    c->pad_id = (int32_t)pad;
    return LISA_OK;
}

/* The dims of the tensor table (models/llama_tensors.def) for a config. */
static lisa_llm_dims table_dims(const lisa_llama_config *c) {
    return (lisa_llm_dims){.hidden = c->hidden, .intermediate = c->intermediate, .n_layers = c->n_layers,
                           .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                           .vocab = c->vocab};
}

/* Binds a row, sliced for tensor parallelism: column-parallel weights are this rank's rows,
 * row-parallel ones its columns (models/tp.h; the row's tp column says which). On device backends
 * q/k/v and gate/up go into their layer's concatenated matrix (lisa_llama_layer). */
static lisa_status bind_row(void *ctx, const lisa_tensor_spec *s) {
    lisa_llama *m = ctx;
    lisa_weights *w = &m->weights;
    const lisa_tp_shard *t = &m->tp;
    const int64_t D = m->cfg.head_dim, C = m->cfg.hidden;
    const int64_t nq = (int64_t)t->n_heads * D, nk = (int64_t)t->n_kv_heads * D, ni = t->n_inter;
    int32_t dim = 0;
    int64_t start = 0, len = 0;
    switch (s->tp) {
    case LISA_TP_NONE: return lisa_w_bind(w, s);
    case LISA_TP_ROWS_Q: start = (int64_t)t->head0 * D, len = nq; break;
    case LISA_TP_ROWS_KV: start = (int64_t)t->kv_head0 * D, len = nk; break;
    case LISA_TP_COLS_Q: dim = 1, start = (int64_t)t->head0 * D, len = nq; break;
    case LISA_TP_ROWS_INTER: start = t->inter0, len = ni; break;
    case LISA_TP_COLS_INTER: dim = 1, start = t->inter0, len = ni; break;
    case LISA_TP_ROWS_VOCAB: start = t->vocab0, len = t->n_vocab; break;
    }
    const ptrdiff_t off = s->slot ? (const char *)s->slot - (const char *)m->layers : -1;
    const bool in_layer = off >= 0 && off < (ptrdiff_t)(m->cfg.n_layers * sizeof *m->layers);
    if (!m->fused || !in_layer) {
        lisa_w_bind_slice(w, s, dim, start, len);
        return LISA_OK;
    }
    lisa_llama_layer *L = &m->layers[off / (ptrdiff_t)sizeof *L];
    const size_t mem = (size_t)(off % (ptrdiff_t)sizeof *L);
    if (mem == offsetof(lisa_llama_layer, wq)) {
        if (lisa_w_reserve(w, &L->wqkv, nq + 2 * nk, C)) lisa_w_bind_slice_into(w, s, dim, start, len, &L->wqkv, 0);
    } else if (mem == offsetof(lisa_llama_layer, wk)) {
        lisa_w_bind_slice_into(w, s, dim, start, len, &L->wqkv, nq);
    } else if (mem == offsetof(lisa_llama_layer, wv)) {
        lisa_w_bind_slice_into(w, s, dim, start, len, &L->wqkv, nq + nk);
    } else if (mem == offsetof(lisa_llama_layer, w_gate)) {
        if (lisa_w_reserve(w, &L->w_gateup, 2 * ni, C)) lisa_w_bind_slice_into(w, s, dim, start, len, &L->w_gateup, 0);
    } else if (mem == offsetof(lisa_llama_layer, w_up)) {
        lisa_w_bind_slice_into(w, s, dim, start, len, &L->w_gateup, ni);
    } else {
        lisa_w_bind_slice(w, s, dim, start, len);
    }
    return LISA_OK;
}

static void load_weights(lisa_weights *w, void *ctx) {
    lisa_llama *m = ctx;
    (void)w;
    const lisa_llm_dims d = table_dims(&m->cfg);
    (void)lisa_llama_tensors_body(&d, m, bind_row, m);
    (void)lisa_llama_tensors_head(&d, m, bind_row, m);
}

/* RoPE's cos/sin for every position up to max_position_embeddings, computed once on the host as
 * the CPU's ROPE computes them (lisa_rope_table) and placed in the backend's memory: ROPE_QK reads
 * them instead of evaluating pow, cos and sin per element and step. */
static lisa_status make_rope_table(lisa_llama *m, lisa_backend *be) {
    const int64_t shape[2] = {m->cfg.max_pos, m->cfg.head_dim};
    const size_t bytes = (size_t)(shape[0] * shape[1]) * sizeof(float);
    float *host = malloc(bytes ? bytes : 1);
    if (!host) return lisa_fail(LISA_ERR_OOM, "LLaMA: out of memory for the RoPE table");
    lisa_rope_table(host, shape[0], shape[1], m->cfg.rope_theta);
    m->be = be;
    lisa_status s = be->mem_alloc(be, bytes, &m->rope_mem);
    if (s == LISA_OK) s = be->upload(be, m->rope_mem, host, bytes);
    free(host);
    if (s != LISA_OK) return lisa_fail_context(s, "LLaMA: RoPE table of %lld positions", (long long)shape[0]);
    m->rope_cos_sin = lisa_tensor_view(m->rope_mem, LISA_DTYPE_F32, 2, shape);
    m->rope_cos_sin.device = be->device;
    m->rope_cos_sin.device_id = be->device_id;
    return LISA_OK;
}

lisa_status lisa_llama_load(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck, const lisa_llama_config *cfg) {
    return lisa_llama_load_ex(out, be, ck, cfg, LISA_DTYPE_BF16, NULL);
}

lisa_status lisa_llama_load_tp(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck,
                               const lisa_llama_config *cfg, lisa_comm *comm) {
    return lisa_llama_load_ex(out, be, ck, cfg, LISA_DTYPE_BF16, comm);
}

lisa_status lisa_llama_load_ex(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck, const lisa_llama_config *cfg,
                               lisa_dtype weight_dtype, lisa_comm *comm) {
    return lisa_llama_load_fuse(out, be, ck, cfg, weight_dtype, comm, be->device != LISA_DEVICE_CPU);
}

lisa_status lisa_llama_load_fuse(lisa_llama **out, lisa_backend *be, const lisa_checkpoint *ck,
                                 const lisa_llama_config *cfg, lisa_dtype weight_dtype, lisa_comm *comm, bool fuse) {
    *out = NULL;
    const bool tp = comm && comm->size > 1;
    if (tp && comm->device_memory != (be->device != LISA_DEVICE_CPU))
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "tensor parallelism: the %s communicator works on %s memory but the %s backend on %s memory "
                         "(MPI goes with the CPU backend, NCCL with CUDA)",
                         comm->name, comm->device_memory ? "device" : "host", be->name,
                         be->device == LISA_DEVICE_CPU ? "host" : "device");
    lisa_tp_shard shard;
    LISA_TRY(lisa_tp_shard_make(&shard, cfg, tp ? comm->size : 1, tp ? comm->rank : 0));
    lisa_llama *m = calloc(1, sizeof *m);
    if (!m || !(m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers))) {
        free(m);
        return lisa_fail(LISA_ERR_OOM, "LLaMA: out of memory");
    }
    m->cfg = *cfg;
    m->tp = shard;
    m->comm = tp ? comm : NULL;
    m->local = *cfg;
    m->local.n_heads = shard.n_heads;
    m->local.n_kv_heads = shard.n_kv_heads;
    m->local.intermediate = shard.n_inter;
    m->local.vocab = shard.n_vocab;
    lisa_weights_init(&m->weights, be, ck, weight_dtype);
    m->fused = fuse;
    lisa_status s = lisa_weights_load(&m->weights, "LLaMA", load_weights, m);
    if (s == LISA_OK) s = make_rope_table(m, be);
    if (s != LISA_OK) {
        lisa_llama_free(m);
        return tp ? lisa_fail_context(s, "TP rank %d of %d", comm->rank, comm->size) : s;
    }
    *out = m;
    return LISA_OK;
}

void lisa_llama_free(lisa_llama *m) {
    if (!m) return;
    if (m->rope_mem) m->be->mem_free(m->be, m->rope_mem);
    lisa_weights_free(&m->weights);
    free(m->layers);
    free(m);
}

lisa_status lisa_kv_cache_init(lisa_kv_cache *kv, lisa_backend *be, const lisa_llama_config *cfg, int32_t n_ctx,
                               lisa_dtype dtype) {
    memset(kv, 0, sizeof *kv);
    if (n_ctx <= 0) return lisa_fail(LISA_ERR_INVALID_ARG, "KV cache: context length %d", n_ctx);
    const int64_t per = (int64_t)n_ctx * cfg->n_kv_heads * cfg->head_dim;
    const size_t bytes = (size_t)per * lisa_dtype_size(dtype);
    const size_t stride = (bytes + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
    kv->k = calloc((size_t)cfg->n_layers, sizeof *kv->k);
    kv->v = calloc((size_t)cfg->n_layers, sizeof *kv->v);
    if (!kv->k || !kv->v) {
        lisa_kv_cache_free(kv);
        return lisa_fail(LISA_ERR_OOM, "KV cache: out of memory");
    }
    lisa_status s = be->mem_alloc(be, stride * 2 * (size_t)cfg->n_layers, &kv->mem);
    if (s != LISA_OK) {
        lisa_kv_cache_free(kv);
        return lisa_fail_context(s, "KV cache of %d tokens", n_ctx);
    }
    kv->be = be;
    kv->n_layers = cfg->n_layers;
    kv->n_ctx = n_ctx;
    const int64_t shape[4] = {1, n_ctx, cfg->n_kv_heads, cfg->head_dim};
    for (int l = 0; l < cfg->n_layers; l++) {
        kv->k[l] = lisa_tensor_view((char *)kv->mem + stride * (size_t)(2 * l), dtype, 4, shape);
        kv->v[l] = lisa_tensor_view((char *)kv->mem + stride * (size_t)(2 * l + 1), dtype, 4, shape);
        kv->k[l].device = kv->v[l].device = be->device;
        kv->k[l].device_id = kv->v[l].device_id = be->device_id;
    }
    return LISA_OK;
}

void lisa_kv_cache_free(lisa_kv_cache *kv) {
    if (kv->mem && kv->be) kv->be->mem_free(kv->be, kv->mem);
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

/* y = x · Wᵀ for a row-parallel weight (o_proj, down_proj): this rank's partial sum, then one
 * all-reduce (Megatron: one per sublayer); the plain linear without TP. */
static T *row_parallel(lisa_graph *g, const lisa_llama *m, const T *x, const T *w) {
    T *y = lisa_g_linear(g, x, w, NULL);
    lisa_tp_all_reduce(g, m->comm, y);
    return y;
}

/* q, k, v [R, H, D] / [R, HKV, D] of a layer's normed input n [R, C]: one GEMM and strided views of
 * its output with fused weights (device backends), else three GEMMs (the CPU's bits); with `rope`,
 * RoPE applied to q and k in place (one launch). */
static void qkv_rope(lisa_graph *g, const lisa_llama *m, const lisa_llama_layer *L, const T *n, const T *pos, T **q,
                     T **k, T **v, bool rope) {
    const int64_t R = n->shape[0], H = m->local.n_heads, HKV = m->local.n_kv_heads, D = m->cfg.head_dim;
    if (m->fused) {
        T *qkv = lisa_g_linear(g, n, &L->wqkv, NULL); /* [R, (H + 2·HKV)·D] */
        *q = lisa_g_split_heads(g, qkv, 0, H, D);
        *k = lisa_g_split_heads(g, qkv, H * D, HKV, D);
        *v = lisa_g_split_heads(g, qkv, (H + HKV) * D, HKV, D);
    } else {
        *q = lisa_g_reshape(g, lisa_g_linear(g, n, &L->wq, NULL), 3, R, H, D, 0);
        *k = lisa_g_reshape(g, lisa_g_linear(g, n, &L->wk, NULL), 3, R, HKV, D, 0);
        *v = lisa_g_reshape(g, lisa_g_linear(g, n, &L->wv, NULL), 3, R, HKV, D, 0);
    }
    if (rope) lisa_g_rope_qk(g, *q, *k, pos, &m->rope_cos_sin);
}

/* SiLU(W_gate n2) * W_up n2: one GEMM and SILU_MUL of its halves with fused weights. */
static T *mlp_hidden(lisa_graph *g, const lisa_llama *m, const lisa_llama_layer *L, const T *n2) {
    if (m->fused) {
        const int64_t ni = m->local.intermediate;
        T *gu = lisa_g_linear(g, n2, &L->w_gateup, NULL); /* [R, 2·I] */
        return lisa_g_silu_mul(g, lisa_g_narrow(g, gu, 1, 0, ni), lisa_g_narrow(g, gu, 1, ni, ni));
    }
    return lisa_g_silu_mul(g, lisa_g_linear(g, n2, &L->w_gate, NULL), lisa_g_linear(g, n2, &L->w_up, NULL));
}

/* The norm that follows layer l's residual stream: the next layer's input_layernorm, or the final
 * norm after the last layer (both fused with the residual add that precedes them). */
static const T *next_norm(const lisa_llama *m, int l) {
    return l + 1 < m->cfg.n_layers ? &m->layers[l + 1].attn_norm : &m->norm;
}

/* x [T, H, D] (maybe strided) as [1, T, H, D]. */
static T *batch_of_one(lisa_graph *g, const T *x) {
    T *v = lisa_g_wrap(g, x);
    if (!g_ok(g)) return v;
    for (int d = v->n_dims; d > 0; d--) v->shape[d] = v->shape[d - 1], v->stride[d] = v->stride[d - 1];
    v->shape[0] = 1;
    v->stride[0] = x->shape[0] * x->stride[0];
    v->n_dims++;
    return v;
}

T *lisa_llama_forward(lisa_graph *g, const lisa_llama *m, lisa_kv_cache *kv, const T *x_in) {
    const lisa_llama_config *c = &m->cfg;
    /* H, HKV: this rank's heads (all of them without TP) */
    const int64_t Tn = x_in->shape[0], C = c->hidden, H = m->local.n_heads, HKV = m->local.n_kv_heads, D = c->head_dim;
    if (!g_ok(g)) return &g->error_tensor;
    if (x_in->n_dims != 2 || x_in->shape[1] != C)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "LLaMA: input must be [T, %lld]", (long long)C));
    const int64_t pos0 = kv->len, Tk = pos0 + Tn;
    if (Tk > kv->n_ctx)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_LIMIT, "LLaMA: %lld tokens exceed the KV cache of %d", (long long)Tk,
                                   kv->n_ctx));
    if (Tk > c->max_pos)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_LIMIT, "LLaMA: %lld tokens exceed max_position_embeddings %d",
                                   (long long)Tk, c->max_pos));

    T *out = lisa_g_new(g, g->act_dtype, 2, Tn, C, 0, 0);
    lisa_graph_mark m0 = lisa_g_mark(g);
    T *x = lisa_g_new(g, g->act_dtype, 2, Tn, C, 0, 0);
    lisa_g_copy_to(g, x, x_in);
    T *pos = lisa_g_new(g, LISA_DTYPE_I32, 1, Tn, 0, 0, 0);
    if (g_ok(g) && !g_measuring(g)) {
        /* Position ids pos0..pos0+T-1 (spec §4.2: no gaps), written in chunks from the stack so
         * that the decode loop allocates nothing. */
        int32_t chunk[256];
        for (int64_t t0 = 0; t0 < Tn; t0 += 256) {
            int64_t n = Tn - t0 < 256 ? Tn - t0 : 256;
            for (int64_t t = 0; t < n; t++) chunk[t] = (int32_t)(pos0 + t0 + t);
            lisa_status s = g->be->upload(g->be, (int32_t *)pos->data + t0, chunk, (size_t)n * sizeof(int32_t));
            if (s != LISA_OK) return lisa_g_fail(g, s);
        }
    }
    const lisa_attn_params ap = {.scale = 1.0f / sqrtf((float)D), .causal = true};
    /* n: the normed residual stream each layer starts from (spec §4.3; the final norm after the
     * last layer), kept across layers */
    T *n = lisa_g_new(g, g->act_dtype, 2, Tn, C, 0, 0);
    lisa_g_rmsnorm_to(g, n, x, &m->layers[0].attn_norm, c->rms_eps);

    for (int l = 0; l < c->n_layers && g_ok(g); l++) {
        const lisa_llama_layer *L = &m->layers[l];
        lisa_graph_mark ml = lisa_g_mark(g);
        /* x = x + W_o Attn(RoPE(W_q n), RoPE(W_k n), W_v n),  n2 = RMSNorm(x) */
        T *q, *k, *v;
        qkv_rope(g, m, L, n, pos, &q, &k, &v, true);
        /* append to the cache, then attend over positions [0, pos0+T) */
        lisa_g_copy_to(g, lisa_g_reshape(g, lisa_g_narrow(g, &kv->k[l], 1, pos0, Tn), 3, Tn, HKV, D, 0), k);
        lisa_g_copy_to(g, lisa_g_reshape(g, lisa_g_narrow(g, &kv->v[l], 1, pos0, Tn), 3, Tn, HKV, D, 0), v);
        T *kc = lisa_g_narrow(g, &kv->k[l], 1, 0, Tk), *vc = lisa_g_narrow(g, &kv->v[l], 1, 0, Tk);
        T *a = lisa_g_attention(g, batch_of_one(g, q), kc, vc, &ap);
        T *r = row_parallel(g, m, lisa_g_reshape(g, a, 2, Tn, H * D, 0, 0), &L->wo);
        T *n2 = lisa_g_add_rmsnorm(g, x, NULL, x, r, &L->mlp_norm, c->rms_eps);
        /* x = x + W_down(SiLU(W_gate n2) * W_up n2),  n = the next norm of x */
        r = row_parallel(g, m, mlp_hidden(g, m, L, n2), &L->w_down);
        lisa_g_add_rmsnorm(g, x, n, x, r, next_norm(m, l), c->rms_eps);
        lisa_g_reset(g, ml);
        lisa_g_tap(g, x, "llm.layer.%d", l);
    }
    lisa_g_copy_to(g, out, n);
    lisa_g_reset(g, m0);
    if (g_ok(g) && !g_measuring(g)) kv->len = (int32_t)Tk;
    return out;
}

/* A host I32 array as a backend tensor for this graph. */
static T *upload_i32(lisa_graph *g, const int32_t *a, int64_t n) {
    lisa_tensor host = lisa_tensor_view((void *)a, LISA_DTYPE_I32, 1, &n);
    return lisa_g_upload(g, &host);
}

T *lisa_llama_forward_batch(lisa_graph *g, const lisa_llama *m, const lisa_llama_batch *bt, const T *x_in) {
    const lisa_llama_config *c = &m->cfg;
    /* H: this rank's heads (all of them without TP) */
    const int64_t R = bt->n_rows, C = c->hidden, H = m->local.n_heads, D = c->head_dim;
    if (!g_ok(g)) return &g->error_tensor;
    if (x_in->n_dims != 2 || x_in->shape[0] != R || x_in->shape[1] != C || bt->n_seqs < 1 ||
        bt->qo_indptr[bt->n_seqs] != R)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "LLaMA batch: input must be [%lld, %lld] covering %d sequences",
                                   (long long)R, (long long)C, bt->n_seqs));
    for (int64_t r = 0; r < R; r++)
        if (bt->positions[r] >= c->max_pos)
            return lisa_g_fail(g, lisa_fail(LISA_ERR_LIMIT, "LLaMA: position %d exceeds max_position_embeddings %d",
                                       bt->positions[r], c->max_pos));
    T *out = lisa_g_new(g, g->act_dtype, 2, R, C, 0, 0);
    lisa_graph_mark m0 = lisa_g_mark(g);
    T *x = lisa_g_new(g, g->act_dtype, 2, R, C, 0, 0);
    lisa_g_copy_to(g, x, x_in);
    T *pos = upload_i32(g, bt->positions, R), *slots = upload_i32(g, bt->slots, R);
    const int32_t B = bt->n_seqs;
    const int32_t n_idx = bt->n_indices_upload > bt->kv_indptr[B] ? bt->n_indices_upload : bt->kv_indptr[B];
    T *qo = upload_i32(g, bt->qo_indptr, B + 1), *kvp = upload_i32(g, bt->kv_indptr, B + 1);
    T *idx = upload_i32(g, bt->kv_indices, n_idx), *kvl = upload_i32(g, bt->kv_len, B);
    const lisa_paged_params pp = {.batch = B, .page_size = bt->page_size, .scale = 1.0f / sqrtf((float)D),
                                  .causal = true, .qo_indptr = qo, .kv_indptr = kvp, .kv_indices = idx, .kv_len = kvl,
                                  .host_qo_indptr = bt->qo_indptr, .host_kv_indptr = bt->kv_indptr,
                                  .host_kv_indices = bt->kv_indices, .host_kv_len = bt->kv_len};
    T *n = lisa_g_new(g, g->act_dtype, 2, R, C, 0, 0); /* as in lisa_llama_forward */
    lisa_g_rmsnorm_to(g, n, x, &m->layers[0].attn_norm, c->rms_eps);
    for (int l = 0; l < c->n_layers && g_ok(g); l++) {
        const lisa_llama_layer *L = &m->layers[l];
        lisa_graph_mark ml = lisa_g_mark(g);
        /* x = x + W_o Attn(RoPE(W_q n), RoPE(W_k n), W_v n) over the paged cache,  n2 = RMSNorm(x) */
        T *q, *k, *v;
        /* RoPE on q and k, k's rotated rows and v into their slots of the pool: one op */
        qkv_rope(g, m, L, n, pos, &q, &k, &v, false);
        lisa_g_rope_qk_kv_append(g, q, k, v, pos, &m->rope_cos_sin, &bt->k_pages[l], &bt->v_pages[l], slots);
        T *a = lisa_g_paged_attention(g, q, &bt->k_pages[l], &bt->v_pages[l], &pp);
        T *r = row_parallel(g, m, lisa_g_reshape(g, a, 2, R, H * D, 0, 0), &L->wo);
        T *n2 = lisa_g_add_rmsnorm(g, x, NULL, x, r, &L->mlp_norm, c->rms_eps);
        /* x = x + W_down(SiLU(W_gate n2) * W_up n2),  n = the next norm of x */
        r = row_parallel(g, m, mlp_hidden(g, m, L, n2), &L->w_down);
        lisa_g_add_rmsnorm(g, x, n, x, r, next_norm(m, l), c->rms_eps);
        lisa_g_reset(g, ml);
        lisa_g_tap(g, x, "llm.layer.%d", l);
    }
    lisa_g_copy_to(g, out, n);
    lisa_g_reset(g, m0);
    return out;
}

T *lisa_llama_logits(lisa_graph *g, const lisa_llama *m, const T *h) {
    /* F32 logits whatever the activation dtype: greedy argmax then compares fp32 values, as the fp32
     * reference does (bf16 logits would create ties the fp32 reference does not have); under tensor
     * parallelism each rank's vocabulary slice, gathered to the full vocabulary on every rank */
    if (!g_ok(g)) return &g->error_tensor;
    if (h->n_dims != 2) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "LLaMA logits: states must be [R, C]"));
    T *y = lisa_g_new(g, LISA_DTYPE_F32, 2, h->shape[0], m->lm_head.shape[0], 0, 0);
    lisa_g_linear_to(g, y, h, &m->lm_head, NULL);
    return lisa_tp_gather_vocab(g, m->comm, &m->tp, m->cfg.vocab, y);
}

T *lisa_llama_embed(lisa_graph *g, const lisa_llama *m, const int32_t *ids, int64_t n) {
    return lisa_tp_embedding(g, m->comm, &m->tp, m->cfg.vocab, &m->embed, ids, n);
}
