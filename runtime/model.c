/* runtime/model.c — the public lisa_model handle (include/lisa.h): loading with the backend the
 * caller asks for, freeing (a TP leader releases its followers first), the TP follower loop,
 * introspection (lisa_model_get_info, token counts), and single requests (lisa_segment*) through a
 * private one-request engine.
 * The networks and their stages are models/lisa_model.c; this file adds what needs the engine.
 */
#include "runtime/engine.h"

#include "core/error.h"
#include "core/log.h"
#include "core/shard.h"
#include "loader/image.h"
#include "runtime/engine_tp.h"
#include "runtime/kv_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under mpirun/srun one process per GPU: task r of a node takes device `device` + r, unless the
 * launcher already gave each task its own GPU (CUDA_VISIBLE_DEVICES naming one device). */
static int32_t device_offset(void) {
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (vis && *vis && !strchr(vis, ',')) return 0;
    return lisa_shard_local_rank();
}

lisa_status lisa_model_load(const char *path, const lisa_model_params *p, lisa_model **out) {
    *out = NULL;
    lisa_model_params dp = lisa_model_default_params();
    if (!p) p = &dp;
    lisa_backend *be = NULL;
    const int32_t dev = p->backend == LISA_BACKEND_CPU ? 0 : p->device + device_offset();
    LISA_TRY(lisa_backend_create(&be, p->backend, dev, p->n_threads));
    lisa_status s;
    s = lisa_model_load_with_backend(path, p, be, out);
    if (s != LISA_OK) {
        lisa_backend_free(be);
        return s;
    }
    (*out)->owns_be = true;
    lisa_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (lisa_model_get_info(*out, &info) == LISA_OK)
        lisa_log(LISA_LOG_INFO, "model %s: backend %s (%s), activations %s, weights %.1f MiB, TP rank %d of %d, fused ops %d "
                 "of %d native", path, info.backend_name, info.device_name, info.activation_dtype,
                 (double)info.weight_bytes / 1048576.0, info.tp_rank, info.tp_size, info.fused_ops_native, info.fused_ops);
    return LISA_OK;
}

void lisa_model_free(lisa_model *m) {
    if (!m) return;
    /* a TP leader releases its followers from lisa_model_tp_follow */
    if (m->tp_comm && !m->tp_follower) lisa_tp_send(m->tp_comm, LISA_TP_SHUTDOWN, NULL);
    lisa_model_destroy(m);
}

int32_t lisa_model_tp_rank(const lisa_model *m) { return m->tp_comm ? m->tp_comm->rank : 0; }
int32_t lisa_model_tp_size(const lisa_model *m) { return m->tp_comm ? m->tp_comm->size : 1; }
int32_t lisa_model_tp_group(const lisa_model *m, int32_t *n_groups) {
    if (n_groups) *n_groups = m->tp_comm ? m->tp_groups : 1;
    return m->tp_comm ? m->tp_group : 0;
}

int32_t lisa_model_seg_token_id(const lisa_model *m) { return m->seg_id; }

/* ---- introspection --------------------------------------------------------------------------- */

static uint64_t ckpt_bytes(const lisa_checkpoint *ck) {
    uint64_t b = 0;
    for (int dt = 0; ck && dt < LISA_DTYPE_COUNT; dt++)
        b += lisa_checkpoint_bytes(ck, (lisa_dtype)dt);
    return b;
}

lisa_status lisa_model_get_info(const lisa_model *m, lisa_model_info *out) {
    if (!m || !out) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_get_info: model or info is NULL");
    if (out->size == 0)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_get_info: info->size is 0 (set it to sizeof(lisa_model_info))");
    lisa_model_info i;
    memset(&i, 0, sizeof i);
    const lisa_llama_config *l = &m->cfg.llm;
    i.llm_hidden = l->hidden;
    i.llm_layers = l->n_layers;
    i.llm_heads = l->n_heads;
    i.llm_kv_heads = l->n_kv_heads;
    i.llm_head_dim = l->head_dim;
    i.llm_intermediate = l->intermediate;
    i.vocab_size = l->vocab;
    i.max_position = l->max_pos;
    if (m->clip) { /* a TP follower holds the LLM shard only */
        const lisa_clip_config *c = &m->clip->cfg;
        i.clip_hidden = c->hidden;
        i.clip_layers = c->n_layers;
        i.clip_heads = c->n_heads;
        i.clip_image_size = c->image_size;
        i.clip_patch_size = c->patch;
        i.clip_layers_run = c->n_run;
    }
    i.n_patches = m->n_patches;
    if (m->sam) {
        i.sam_image_size = m->sam->enc.img_size;
        i.sam_embed_dim = m->sam->enc.embed;
        i.sam_depth = m->sam->enc.depth;
        i.sam_heads = m->sam->enc.heads;
    }
    i.sam_prompt_dim = m->cfg.out_dim;
    i.seg_token_id = m->seg_id;
    const lisa_backend *be = m->be;
    i.backend = be->device == LISA_DEVICE_CPU ? LISA_BACKEND_CPU : LISA_BACKEND_CUDA;
    snprintf(i.backend_name, sizeof i.backend_name, "%s", be->name);
    snprintf(i.device_name, sizeof i.device_name, "%s", be->device_name);
    i.device = be->device_id;
    i.n_threads = be->n_threads;
    snprintf(i.activation_dtype, sizeof i.activation_dtype, "%s",
             m->act_dtype == LISA_DTYPE_BF16 ? "bf16" : m->act_dtype == LISA_DTYPE_F16 ? "f16" : "f32");
    uint64_t w = m->glue.bound_bytes;
    if (m->llm) w += m->llm->weights.bound_bytes;
    if (m->clip) w += m->clip->weights.bound_bytes;
    if (m->sam) w += m->sam->weights.bound_bytes;
    i.weight_bytes = (int64_t)w;
    i.checkpoint_bytes = (int64_t)(ckpt_bytes(m->ck) + (m->clip ? ckpt_bytes(m->clip->ck) : 0));
    i.scratch_bytes = (int64_t)be->scratch.cap;
    i.device_memory_bytes = be->device_memory_bytes;
    i.tp_rank = lisa_model_tp_rank(m);
    i.tp_size = lisa_model_tp_size(m);
    i.tp_group = lisa_model_tp_group(m, &i.tp_groups);
    for (int op = LISA_OP_FIRST_FUSED; op < LISA_OP_COUNT; op++) {
        i.fused_ops += lisa_backend_supports(be, (lisa_op)op);
        i.fused_ops_native += lisa_backend_fuses(be, (lisa_op)op);
    }
    /* the caller's struct may be older (smaller) or newer (larger) than ours */
    const uint32_t size = out->size;
    const size_t n = size < sizeof i ? size : sizeof i;
    i.size = (uint32_t)n;
    memcpy(out, &i, n);
    if (size > sizeof i) memset((char *)out + sizeof i, 0, size - sizeof i);
    return LISA_OK;
}

lisa_status lisa_model_count_tokens(const lisa_model *m, const char *text, size_t len, bool add_bos,
                                    int32_t *n_tokens) {
    if (!m || !text || !n_tokens) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_count_tokens: NULL argument");
    *n_tokens = 0;
    if (!m->tok) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_count_tokens: a TP follower has no tokenizer");
    const lisa_status s = lisa_tokenizer_encode(m->tok, text, len, add_bos, NULL, 0, n_tokens);
    if (s == LISA_ERR_LIMIT) { /* the sizing call: no buffer, the count is what was asked */
        lisa_clear_error();
        return LISA_OK;
    }
    return s;
}

lisa_status lisa_model_prompt_tokens(const lisa_model *m, const char *query, int32_t *n_positions) {
    if (!m || !n_positions) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_prompt_tokens: NULL argument");
    *n_positions = 0;
    if (!m->tok) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_prompt_tokens: a TP follower has no tokenizer");
    LISA_TRY(lisa_check_query(query, NULL));
    int32_t *ids = NULL, n = 0;
    LISA_TRY(lisa_prompt_ids(m, query, &ids, &n, NULL, n_positions));
    free(ids);
    return LISA_OK;
}

/* ---- TP followers: serve the leader's engines ------------------------------------------------------------------------ */

lisa_status lisa_model_tp_follow(lisa_model *m) {
    if (!m->tp_follower)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_model_tp_follow: this process is %s",
                         m->tp_comm ? "the TP group's leader (rank 0)" : "not part of a TP group");
    lisa_comm *c = m->tp_comm;
    lisa_engine *e = NULL;
    int32_t small[LISA_TP_HEADER_INTS];
    lisa_tp_plan idle = {.buf = small}; /* no engine: only control messages fit (caps 0) */
    lisa_status s = LISA_OK;
    for (;;) {
        lisa_tp_plan *p = e ? lisa_engine_tp_plan(e) : &idle;
        s = lisa_tp_plan_bcast(c, p);
        if (s != LISA_OK) break;
        if (p->kind == LISA_TP_SHUTDOWN) break;
        if (p->kind == LISA_TP_CREATE && !e) {
            s = lisa_engine_tp_follower_create(m, p->args, &e);
        } else if (p->kind == LISA_TP_FREE && e) {
            lisa_engine_free(e);
            e = NULL;
        } else if ((p->kind == LISA_TP_PREFIX || p->kind == LISA_TP_PREFILL || p->kind == LISA_TP_DECODE) && e) {
            s = lisa_engine_tp_follower_step(e);
        } else {
            s = lisa_fail(LISA_ERR_INTERNAL, "TP rank %d: message %d %s an engine", c->rank, p->kind,
                          e ? "with" : "without");
        }
        if (s != LISA_OK) break;
    }
    lisa_engine_free(e);
    return s;
}

/* ---- single requests: a private engine sized for one ------------------------------------------ */

static lisa_status run_one(lisa_model *m, const lisa_request *rq, const lisa_run_hooks *hooks, lisa_result **out) {
    *out = NULL;
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 1;
    p.max_images = 1;
    p.n_workers = 1;
    p.background = false;
    p.max_prefill_tokens = m->cfg.llm.max_pos;
    p.image_cache_bytes = 0; /* one request: nothing to reuse */
    /* room for one full context */
    const lisa_llama_config *lc = &m->cfg.llm;
    p.kv_cache_bytes = (int64_t)(lisa_kv_pages_for(&(lisa_kv_pool){.page_size = p.page_size}, lc->max_pos) + 2) *
                       (int64_t)lisa_kv_page_bytes(lc->n_layers, p.page_size, lc->n_kv_heads, lc->head_dim,
                                                   m->act_dtype);
    lisa_engine *e = NULL;
    LISA_TRY(lisa_engine_create_ex(m, &p, hooks, &e));
    uint64_t id = 0;
    lisa_status s = lisa_engine_submit(e, rq, &id);
    lisa_result *res = NULL;
    if (s == LISA_OK) s = lisa_engine_wait(e, id, &res);
    lisa_engine_free(e);
    if (s != LISA_OK) return s;
    if (res->status != LISA_OK) {
        s = lisa_fail(res->status, "%s", res->error);
        lisa_result_free(res);
        return s;
    }
    *out = res;
    return LISA_OK;
}

lisa_status lisa_model_run(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                           const lisa_segment_params *p, const lisa_run_hooks *hooks, lisa_result **out) {
    *out = NULL;
    lisa_request rq = lisa_request_default();
    if (p) rq.params = *p;
    if (!rgb || h < 1 || w < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "image: no pixels (%d x %d)", w, h);
    if (!query) return lisa_fail(LISA_ERR_INVALID_ARG, "query is NULL");
    LISA_TRY(lisa_check_query(query, &rq.params));
    if (rq.params.max_image_pixels > 0 && (int64_t)h * w > rq.params.max_image_pixels)
        return lisa_fail(LISA_ERR_LIMIT, "image of %d x %d pixels exceeds the limit of %lld pixels", w, h,
                         (long long)rq.params.max_image_pixels);
    rq.rgb = rgb;
    rq.height = h;
    rq.width = w;
    rq.query = query;
    return run_one(m, &rq, hooks, out);
}

lisa_status lisa_segment(lisa_model *m, const uint8_t *rgb, int32_t height, int32_t width, const char *query,
                         const lisa_segment_params *p, lisa_result **out) {
    return lisa_model_run(m, rgb, height, width, query, p, NULL, out);
}

lisa_status lisa_rgb_load_file(const char *path, int64_t max_pixels, uint8_t **rgb, int32_t *height, int32_t *width) {
    if (!path || !rgb || !height || !width) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_rgb_load_file: NULL argument");
    *rgb = NULL;
    *height = *width = 0;
    lisa_image_limits lim = lisa_image_default_limits();
    if (max_pixels > 0) lim.max_pixels = max_pixels;
    lisa_bitmap img;
    LISA_TRY(lisa_image_load(&img, path, &lim));
    *rgb = img.data; /* malloc'd: lisa_free */
    *height = img.h;
    *width = img.w;
    return LISA_OK;
}

lisa_status lisa_segment_file(lisa_model *m, const char *image_path, const char *query, const lisa_segment_params *p,
                              lisa_result **out) {
    *out = NULL;
    lisa_request rq = lisa_request_default();
    if (p) rq.params = *p;
    if (!query) return lisa_fail(LISA_ERR_INVALID_ARG, "query is NULL");
    LISA_TRY(lisa_check_query(query, &rq.params));
    /* decode here so that a bad file is reported before an engine is built */
    lisa_image_limits lim = lisa_image_default_limits();
    if (rq.params.max_image_pixels > 0) lim.max_pixels = rq.params.max_image_pixels;
    lisa_bitmap img;
    LISA_TRY(lisa_image_load(&img, image_path, &lim));
    rq.rgb = img.data;
    rq.height = img.h;
    rq.width = img.w;
    rq.query = query;
    lisa_status s = run_one(m, &rq, NULL, out);
    lisa_bitmap_free(&img);
    return s;
}
