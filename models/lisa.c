/* models/lisa.c — LISA end to end for one request (spec §1–§5).
 * ref: dvlab-research/LISA chat.py (prompt, preprocessing, decode + cleanup), model/LISA.py
 *      (LISAForCausalLM.evaluate: [SEG] gather with the one-token offset, text_hidden_fcs,
 *      prompt encoder with text_embeds, mask decoder, postprocess_masks),
 *      model/llava/model/llava_arch.py (prepare_inputs_labels_for_multimodal: the splice),
 *      model/llava/mm_utils.py (tokenizer_image_token). */
#include "models/lisa.h"

#include "loader/image.h"
#include "loader/json.h"
#include "loader/preprocessor_config.h"
#include "runtime/error.h"
#include "runtime/path.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MASK_DECODER_CHUNK 8 /* [SEG] prompts decoded together (bounds activation memory) */

struct lisa_result {
    char *answer, *text_output;
    int32_t n_tokens;
    int32_t *tokens;
    int32_t n_masks, h, w;
    uint8_t *masks;  /* [n_masks, h, w] */
    float *logits;   /* [n_masks, h, w] or NULL */
    float *scores;   /* [n_masks] */
    lisa_timings t;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- parameters ---------------------------------------------------------------------------- */

lisa_model_params lisa_model_default_params(void) {
    lisa_model_params p = {.vision_tower = NULL, .backend = LISA_BACKEND_AUTO, .device = 0, .n_threads = 0};
    return p;
}

lisa_segment_params lisa_segment_default_params(void) {
    lisa_segment_params p = {
        .max_new_tokens = 512, .max_query_bytes = 4096, .max_image_pixels = LISA_IMAGE_DEFAULT_MAX_PIXELS,
        .keep_logits = false};
    return p;
}

/* ---- loading ------------------------------------------------------------------------------- */

static lisa_status parse_config(lisa_model_config *c, const char *dir) {
    char path[4096];
    if (!lisa_path_join(path, sizeof path, dir, "config.json"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "model path too long: %.200s...", dir);
    cJSON *root;
    LISA_TRY(lisa_json_load_file(path, 0, &root));
    lisa_status s = lisa_llama_config_parse(&c->llm, root, path);
    int64_t mm_hidden = 1024, select = -2, out_dim = 256;
    bool start_end = false;
    const char *proj = "linear", *tower = NULL;
    if (s == LISA_OK) s = lisa_json_int(root, path, "mm_hidden_size", false, 1024, &mm_hidden);
    if (s == LISA_OK) s = lisa_json_int(root, path, "mm_vision_select_layer", false, -2, &select);
    if (s == LISA_OK) s = lisa_json_bool(root, path, "mm_use_im_start_end", false, false, &start_end);
    if (s == LISA_OK) s = lisa_json_string(root, path, "mm_projector_type", false, "linear", &proj);
    if (s == LISA_OK) s = lisa_json_int(root, path, "out_dim", false, 256, &out_dim);
    if (s == LISA_OK) s = lisa_json_string(root, path, "vision_tower", false, NULL, &tower);
    if (s == LISA_OK && !tower) s = lisa_json_string(root, path, "mm_vision_tower", false, NULL, &tower);
    if (s == LISA_OK && strcmp(proj, "linear") != 0 && strcmp(proj, "mlp2x_gelu") != 0)
        s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: mm_projector_type '%s' (linear or mlp2x_gelu supported)", path, proj);
    if (s == LISA_OK) {
        c->mm_hidden = (int32_t)mm_hidden;
        c->select_layer = (int32_t)select;
        c->use_im_start_end = start_end;
        c->mlp2x_gelu = strcmp(proj, "mlp2x_gelu") == 0;
        c->out_dim = (int32_t)out_dim;
        snprintf(c->vision_tower, sizeof c->vision_tower, "%s", tower ? tower : "openai/clip-vit-large-patch14");
    }
    cJSON_Delete(root);
    return s;
}

static bool has_config(const char *d) {
    char p[4096];
    struct stat st;
    return lisa_path_join(p, sizeof p, d, "config.json") && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* See lisa_model_load in include/lisa.h for the order. Writes the directory into out. */
static lisa_status resolve_vision_tower(char *out, size_t cap, const char *model_dir, const char *tower) {
    char cand[4096];
    if (tower[0] == '/' && has_config(tower) && lisa_path_join(out, cap, "", tower)) return LISA_OK;
    if (lisa_path_join(cand, sizeof cand, model_dir, tower) && has_config(cand) && lisa_path_join(out, cap, "", cand))
        return LISA_OK;
    const char *base = strrchr(tower, '/');
    if (lisa_path_join(cand, sizeof cand, model_dir, base ? base + 1 : tower) && has_config(cand) &&
        lisa_path_join(out, cap, "", cand))
        return LISA_OK;
    /* Hugging Face cache: <hub>/models--<org>--<name>/snapshots/<rev>/, rev from refs/main first */
    const char *hf_home = getenv("HF_HOME"), *home = getenv("HOME");
    char hub[2048], repo[600], tmp[3000], snaps[3100];
    bool ok = (hf_home && *hf_home) ? lisa_path_join(hub, sizeof hub, hf_home, "hub")
                                    : lisa_path_join(hub, sizeof hub, home ? home : "", ".cache/huggingface/hub");
    size_t n = 0;
    memcpy(repo, "models--", 8);
    n = 8;
    for (const char *p = tower; *p && n + 3 < sizeof repo; p++) {
        if (*p == '/') {
            repo[n++] = '-';
            repo[n++] = '-';
        } else {
            repo[n++] = *p;
        }
    }
    repo[n] = '\0';
    ok = ok && lisa_path_join(tmp, sizeof tmp, hub, repo) && lisa_path_join(snaps, sizeof snaps, tmp, "snapshots");
    struct stat st;
    if (ok && stat(snaps, &st) == 0 && S_ISDIR(st.st_mode)) {
        char ref_path[3200], rev[128] = "";
        if (lisa_path_join(ref_path, sizeof ref_path, tmp, "refs/main")) {
            FILE *f = fopen(ref_path, "r");
            if (f) {
                if (!fgets(rev, sizeof rev, f)) rev[0] = '\0';
                fclose(f);
                rev[strcspn(rev, "\r\n")] = '\0';
            }
        }
        if (rev[0] && lisa_path_join(cand, sizeof cand, snaps, rev) && has_config(cand) &&
            lisa_path_join(out, cap, "", cand))
            return LISA_OK;
        DIR *d = opendir(snaps);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (lisa_path_join(cand, sizeof cand, snaps, e->d_name) && has_config(cand) &&
                lisa_path_join(out, cap, "", cand)) {
                closedir(d);
                return LISA_OK;
            }
        }
        if (d) closedir(d);
    }
    return lisa_fail(LISA_ERR_NOT_FOUND,
                     "vision tower '%s' (config.json of %s) not found: not a directory, not in the model directory, not "
                     "in the Hugging Face cache %s; pass its directory explicitly (lisa --vision-tower DIR)",
                     tower, model_dir, hub);
}

static void load_glue(lisa_weights *w, void *ctx) {
    lisa_model *m = ctx;
    const int64_t C = m->cfg.llm.hidden, MM = m->cfg.mm_hidden, O = m->cfg.out_dim;
    if (m->cfg.mlp2x_gelu) {
        lisa_w_get(w, &m->proj_w[0], 2, C, MM, 0, 0, "model.mm_projector.0.weight");
        lisa_w_get(w, &m->proj_b[0], 1, C, 0, 0, 0, "model.mm_projector.0.bias");
        lisa_w_get(w, &m->proj_w[1], 2, C, C, 0, 0, "model.mm_projector.2.weight");
        lisa_w_get(w, &m->proj_b[1], 1, C, 0, 0, 0, "model.mm_projector.2.bias");
    } else {
        lisa_w_get(w, &m->proj_w[0], 2, C, MM, 0, 0, "model.mm_projector.weight");
        lisa_w_get(w, &m->proj_b[0], 1, C, 0, 0, 0, "model.mm_projector.bias");
    }
    lisa_w_get(w, &m->fc1_w, 2, C, C, 0, 0, "model.text_hidden_fcs.0.0.weight");
    lisa_w_get(w, &m->fc1_b, 1, C, 0, 0, 0, "model.text_hidden_fcs.0.0.bias");
    lisa_w_get(w, &m->fc2_w, 2, O, C, 0, 0, "model.text_hidden_fcs.0.2.weight");
    lisa_w_get(w, &m->fc2_b, 1, O, 0, 0, 0, "model.text_hidden_fcs.0.2.bias");
}

lisa_status lisa_model_load_with_backend(const char *path, const lisa_model_params *p, lisa_backend *be,
                                         lisa_model **out) {
    *out = NULL;
    lisa_model_params dp = lisa_model_default_params();
    if (!p) p = &dp;
    lisa_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(path))) {
        free(m);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    m->be = be;
    char clip_dir[4096];
    lisa_status s = parse_config(&m->cfg, path);
    if (s == LISA_OK) {
        if (p->vision_tower) {
            if (!lisa_path_join(clip_dir, sizeof clip_dir, "", p->vision_tower) || !has_config(clip_dir))
                s = lisa_fail(LISA_ERR_NOT_FOUND, "vision tower %s: no config.json there", clip_dir);
        } else {
            s = resolve_vision_tower(clip_dir, sizeof clip_dir, path, m->cfg.vision_tower);
        }
    }
    if (s == LISA_OK && !(m->clip_dir = strdup(clip_dir))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = lisa_tokenizer_load(&m->tok, path);
    if (s == LISA_OK) {
        /* chat.py: seg_token_idx = tokenizer("[SEG]", add_special_tokens=False).input_ids[0]; a
         * checkpoint without the added token would give "▁" instead (LISA issue #55): refuse. */
        m->seg_id = lisa_tokenizer_token_id(m->tok, "[SEG]");
        if (m->seg_id < 0 || m->seg_id != lisa_tokenizer_piece_to_id(m->tok, "[SEG]"))
            s = lisa_fail(LISA_ERR_FORMAT, "%s: the tokenizer has no [SEG] added token (added_tokens.json)", path);
        else if (m->seg_id >= m->cfg.llm.vocab)
            s = lisa_fail(LISA_ERR_FORMAT, "%s: [SEG] id %d is outside vocab_size %d", path, m->seg_id,
                          m->cfg.llm.vocab);
    }
    if (s == LISA_OK) s = lisa_checkpoint_open(&m->ck, path);
    if (s == LISA_OK) s = lisa_llama_load(&m->llm, be, m->ck, &m->cfg.llm);
    if (s == LISA_OK) s = lisa_sam_load(&m->sam, be, m->ck);
    if (s == LISA_OK && m->sam->dec.dim != m->cfg.out_dim)
        s = lisa_fail(LISA_ERR_SHAPE, "%s: out_dim %d does not match SAM's prompt dim %d", path, m->cfg.out_dim,
                      m->sam->dec.dim);
    if (s == LISA_OK) s = lisa_clip_load(&m->clip, be, clip_dir, m->cfg.select_layer);
    if (s == LISA_OK && m->clip->cfg.hidden != m->cfg.mm_hidden)
        s = lisa_fail(LISA_ERR_SHAPE, "vision tower %s: hidden size %d, but mm_hidden_size is %d", clip_dir,
                      m->clip->cfg.hidden, m->cfg.mm_hidden);
    if (s == LISA_OK) {
        lisa_weights_init(&m->glue, be, m->ck, LISA_DTYPE_BF16);
        s = lisa_weights_load(&m->glue, "LISA projector / text_hidden_fcs", load_glue, m);
    }
    if (s == LISA_OK) {
        char pp[4200];
        struct stat st;
        m->clip_pp = lisa_clip_preprocess_default_params();
        if (lisa_path_join(pp, sizeof pp, clip_dir, "preprocessor_config.json") && stat(pp, &st) == 0)
            s = lisa_clip_preprocess_params_load(&m->clip_pp, pp);
        if (s == LISA_OK && (m->clip_pp.crop_h != m->clip->cfg.image_size || m->clip_pp.crop_w != m->clip->cfg.image_size))
            s = lisa_fail(LISA_ERR_FORMAT, "%s: crop %dx%d does not match the CLIP image size %d", pp, m->clip_pp.crop_h,
                          m->clip_pp.crop_w, m->clip->cfg.image_size);
        m->sam_pp = lisa_sam_preprocess_default_params();
        m->sam_pp.target_size = m->sam ? m->sam->enc.img_size : 1024;
        int32_t side = m->clip->cfg.image_size / m->clip->cfg.patch;
        m->n_patches = side * side;
    }
    if (s != LISA_OK) {
        lisa_model_free(m);
        return s;
    }
    *out = m;
    return LISA_OK;
}

lisa_status lisa_model_load(const char *path, const lisa_model_params *p, lisa_model **out) {
    *out = NULL;
    lisa_model_params dp = lisa_model_default_params();
    if (!p) p = &dp;
    lisa_backend *be = NULL;
    lisa_status s;
    if (p->backend == LISA_BACKEND_CUDA)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "the CUDA backend does not run whole models yet; use the CPU backend");
    s = lisa_backend_cpu_create(&be, 0, p->n_threads);
    if (s != LISA_OK) return s;
    s = lisa_model_load_with_backend(path, p, be, out);
    if (s != LISA_OK) {
        lisa_backend_free(be);
        return s;
    }
    (*out)->owns_be = true;
    return LISA_OK;
}

void lisa_model_free(lisa_model *m) {
    if (!m) return;
    lisa_weights_free(&m->glue);
    lisa_clip_free(m->clip);
    lisa_sam_free(m->sam);
    lisa_llama_free(m->llm);
    lisa_checkpoint_close(m->ck);
    lisa_tokenizer_free(m->tok);
    if (m->owns_be) lisa_backend_free(m->be);
    free(m->clip_dir);
    free(m->dir);
    free(m);
}

int32_t lisa_model_seg_token_id(const lisa_model *m) { return m->seg_id; }

/* ---- stages -------------------------------------------------------------------------------- */

/* Runs fn once counting and once for real in an arena of the measured size (freed afterwards). */
static lisa_status run_stage(lisa_model *m, lisa_graph_fn fn, void *ctx, const lisa_run_hooks *hooks) {
    size_t act_bytes = 0, meta_bytes = 0;
    LISA_TRY(lisa_graph_measure(m->be, LISA_DTYPE_F32, fn, ctx, &act_bytes, &meta_bytes));
    void *mem = NULL;
    LISA_TRY(m->be->mem_alloc(m->be, act_bytes ? act_bytes : 1, &mem));
    lisa_arena act, meta;
    lisa_arena_init_external(&act, "activations", mem, act_bytes);
    lisa_status s = lisa_arena_init(&meta, "descriptors", meta_bytes);
    if (s == LISA_OK) {
        lisa_graph g;
        lisa_graph_init(&g, m->be, &act, &meta, LISA_DTYPE_F32);
        if (hooks) {
            g.tap = hooks->tap;
            g.tap_ctx = hooks->ctx;
        }
        fn(&g, ctx);
        s = g.status;
        lisa_arena_free(&meta);
    }
    m->be->mem_free(m->be, mem);
    return s;
}

typedef struct req {
    lisa_model *m;
    /* inputs */
    lisa_tensor clip_px, sam_px;   /* host F32 [1,3,S,S] */
    int32_t *ids;                  /* prompt ids (with the -200 placeholder) */
    int32_t n_ids, placeholder;    /* index of -200 */
    int32_t L0;                    /* expanded prompt length */
    int32_t h_r, w_r, H0, W0;
    lisa_kv_cache kv;
    /* per step */
    lisa_tensor step_ids;          /* host I32: prompt text ids, or the one fed token */
    lisa_tensor next_id;           /* host I32 [1]: argmax */
    lisa_tensor hidden_row;        /* host F32 [1, C]: final-normed state of the predicting position */
    /* [SEG] results */
    lisa_tensor seg_hidden;        /* host F32 [N, C] */
    int32_t n_seg;
    lisa_tensor pred;              /* host F32 [N, out] */
    lisa_tensor emb;               /* backend F32 [1, out, G, G]: SAM image embedding (emb_mem) */
    void *emb_mem;
    int32_t chunk0, chunk_n;       /* masks [chunk0, chunk0+chunk_n) in the current SAM pass */
    lisa_tensor logits;            /* host F32 [chunk, H0, W0] */
    lisa_tensor iou;               /* host F32 [chunk, 1] */
    bool tap_lowres;
} req;

/* CLIP -> projector -> splice at the placeholder -> LLaMA over r->step_ids (the prompt ids
 * without the placeholder); returns the final-normed states [L0, C]. */
static T *splice_forward(lisa_graph *g, req *r) {
    lisa_model *m = r->m;
    const int64_t C = m->cfg.llm.hidden, P = m->n_patches, k = r->placeholder;
    T *feats = lisa_clip_encode(g, m->clip, g_upload(g, &r->clip_px));              /* [1, P, mm] */
    T *proj = g_linear(g, feats, &m->proj_w[0], &m->proj_b[0]);                       /* [1, P, C] */
    if (m->cfg.mlp2x_gelu) proj = g_linear(g, g_gelu(g, proj), &m->proj_w[1], &m->proj_b[1]);
    g_tap(g, proj, "mm_proj");
    /* text ids (placeholder removed) -> embeddings; x = [emb[:k], proj, emb[k:]] */
    T *emb = g_embedding(g, &m->llm->embed, g_upload(g, &r->step_ids));               /* [n_ids-1, C] */
    T *x = g_new(g, g->act_dtype, 2, r->L0, C, 0, 0);
    if (k > 0) g_copy_to(g, g_narrow(g, x, 0, 0, k), g_narrow(g, emb, 0, 0, k));
    g_copy_to(g, g_narrow(g, x, 0, k, P), g_reshape(g, proj, 2, P, C, 0, 0));
    if (r->n_ids - 1 - k > 0)
        g_copy_to(g, g_narrow(g, x, 0, k + P, r->n_ids - 1 - k), g_narrow(g, emb, 0, k, r->n_ids - 1 - k));
    return lisa_llama_forward(g, m->llm, &r->kv, x);
}

/* prefill: CLIP -> projector -> splice -> LLaMA over the whole prompt; the last position's
 * final-normed state decides generated token 1 (§4.4). */
static void prefill_graph(lisa_graph *g, void *ctx) {
    req *r = ctx;
    lisa_model *m = r->m;
    T *h = splice_forward(g, r);
    T *last = g_narrow(g, h, 0, r->L0 - 1, 1);
    T *logits = lisa_llama_logits(g, m->llm, g_contiguous(g, last));                 /* [1, V] */
    g_tap(g, logits, "prefill_logits_last");
    g_download(g, &r->next_id, g_argmax(g, logits));
    g_download(g, &r->hidden_row, last);
}

/* one decode step: the fed token's final-normed state decides the next token */
static void decode_graph(lisa_graph *g, void *ctx) {
    req *r = ctx;
    lisa_model *m = r->m;
    T *x = g_embedding(g, &m->llm->embed, g_upload(g, &r->step_ids));
    T *h = lisa_llama_forward(g, m->llm, &r->kv, x);
    g_download(g, &r->next_id, g_argmax(g, lisa_llama_logits(g, m->llm, h)));
    g_download(g, &r->hidden_row, h);
}

/* Teacher forcing (spec §9): one forward over the whole conversation, answer included; the
 * final-normed states at the expanded positions before each [SEG] are gathered into rows. */
typedef struct forced_req {
    req r;                /* first member: the stage functions take it as req */
    const int32_t *pos;   /* [n] expanded positions to gather */
    int32_t n;
    lisa_tensor rows;     /* host F32 [n, C] */
} forced_req;

static void forced_graph(lisa_graph *g, void *ctx) {
    forced_req *f = ctx;
    T *h = splice_forward(g, &f->r);                                                  /* [L0, C] */
    T *rows = g_new(g, g->act_dtype, 2, f->n, f->r.m->cfg.llm.hidden, 0, 0);
    for (int32_t j = 0; j < f->n; j++) g_copy_to(g, g_narrow(g, rows, 0, j, 1), g_narrow(g, h, 0, f->pos[j], 1));
    g_download(g, &f->rows, rows);
}

/* text_hidden_fcs on the gathered [SEG] states (§4.5) and SAM's image encoder, once per image */
static void embed_graph(lisa_graph *g, void *ctx) {
    req *r = ctx;
    lisa_model *m = r->m;
    T *seg = g_upload(g, &r->seg_hidden);                                             /* [N, C] */
    g_tap(g, seg, "seg_hidden");
    T *pred = g_linear(g, g_relu(g, g_linear(g, seg, &m->fc1_w, &m->fc1_b)), &m->fc2_w, &m->fc2_b);
    g_tap(g, pred, "pred_emb");
    g_download(g, &r->pred, pred);
    T *emb = lisa_sam_encode(g, m->sam, g_upload(g, &r->sam_px));
    g_tap(g, emb, "sam_img_emb");
    g_copy_to(g, &r->emb, emb);
}

/* SAM prompt encoder + mask decoder + postprocess for one chunk of [SEG] prompts */
static void masks_graph(lisa_graph *g, void *ctx) {
    req *r = ctx;
    lisa_model *m = r->m;
    const int64_t O = m->cfg.out_dim;
    T *pred = g_upload(g, &r->pred);
    T *sparse = g_reshape(g, g_contiguous(g, g_narrow(g, pred, 0, r->chunk0, r->chunk_n)), 3, r->chunk_n, 1, O, 0);
    T *low, *iou;
    lisa_sam_decode(g, m->sam, &r->emb, sparse, &low, &iou);
    T *ml = lisa_sam_postprocess(g, m->sam, low, r->h_r, r->w_r, r->H0, r->W0);
    g_download(g, &r->logits, ml);
    g_download(g, &r->iou, iou);
}

/* ---- the request --------------------------------------------------------------------------- */

void lisa_result_free(lisa_result *r) {
    if (!r) return;
    free(r->answer);
    free(r->text_output);
    free(r->tokens);
    free(r->masks);
    free(r->logits);
    free(r->scores);
    free(r);
}

static char *decode_text(const lisa_tokenizer *tok, const int32_t *ids, int32_t n, lisa_status *s) {
    size_t len = 0, cap = 256 + (size_t)n * 32;
    char *buf = malloc(cap);
    if (!buf) {
        *s = lisa_fail(LISA_ERR_OOM, "out of memory");
        return NULL;
    }
    *s = lisa_tokenizer_decode(tok, ids, n, false, buf, cap, &len);
    if (*s == LISA_ERR_LIMIT) { /* very long byte pieces: retry with the exact size */
        char *nb = realloc(buf, len + 1);
        if (!nb) {
            free(buf);
            *s = lisa_fail(LISA_ERR_OOM, "out of memory");
            return NULL;
        }
        buf = nb;
        *s = lisa_tokenizer_decode(tok, ids, n, false, buf, len + 1, &len);
    }
    if (*s != LISA_OK) {
        free(buf);
        return NULL;
    }
    lisa_tokenizer_chat_cleanup(buf, len);
    return buf;
}

static lisa_status check_query(const char *query, const lisa_segment_params *p) {
    if (!query) return lisa_fail(LISA_ERR_INVALID_ARG, "query is NULL");
    size_t n = strlen(query);
    if (p->max_query_bytes > 0 && n > (size_t)p->max_query_bytes)
        return lisa_fail(LISA_ERR_LIMIT, "query of %zu bytes exceeds the limit of %d bytes", n, p->max_query_bytes);
    bool blank = true;
    for (size_t i = 0; i < n && blank; i++) blank = query[i] == ' ' || query[i] == '\t' || query[i] == '\n' || query[i] == '\r';
    if (blank) return lisa_fail(LISA_ERR_INVALID_ARG, "query is empty");
    if (strstr(query, "<image>"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "query contains the image placeholder \"<image>\" (one image per request)");
    return LISA_OK;
}

/* CLIP and SAM pixel inputs of one image (bit-exact, spec §2) into r->clip_px, r->sam_px. */
static lisa_status preprocess_image(lisa_model *m, req *r, const uint8_t *rgb) {
    const int32_t S = m->sam_pp.target_size, CS = m->clip->cfg.image_size;
    LISA_TRY(lisa_tensor_alloc(&r->clip_px, LISA_DTYPE_F32, 4, (int64_t[]){1, 3, CS, CS}));
    LISA_TRY(lisa_tensor_alloc(&r->sam_px, LISA_DTYPE_F32, 4, (int64_t[]){1, 3, S, S}));
    size_t ws_n = lisa_clip_preprocess_workspace_size(&m->clip_pp, r->H0, r->W0);
    size_t ws_s = lisa_sam_preprocess_workspace_size(&m->sam_pp, r->H0, r->W0);
    void *ws = malloc(ws_n > ws_s ? ws_n : ws_s);
    if (!ws) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_clip_preprocess(&r->clip_px, rgb, r->H0, r->W0, &m->clip_pp, ws, ws_n);
    if (s == LISA_OK) s = lisa_sam_preprocess(&r->sam_px, &r->h_r, &r->w_r, rgb, r->H0, r->W0, &m->sam_pp, ws, ws_s);
    free(ws);
    return s;
}

/* Builds the prompt `prefix_fn(query)` + suffix and runs tokenizer_image_token on it into a malloc'd
 * *ids (caller frees); *placeholder = index of the -200 entry. */
static lisa_status tokenize_prompt(lisa_model *m, const char *query, const char *suffix, int32_t **ids, int32_t *n_ids,
                                   int32_t *placeholder) {
    *ids = NULL;
    size_t plen = 0, slen = strlen(suffix), pcap = strlen(query) + slen + 1024;
    char *prompt = malloc(pcap);
    if (!prompt) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_prompt_llava_v1(prompt, pcap, query, m->cfg.use_im_start_end, &plen);
    if (s == LISA_OK) {
        memcpy(prompt + plen, suffix, slen + 1);
        plen += slen;
    }
    int32_t n = 0;
    if (s == LISA_OK) {
        s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, NULL, 0, &n);
        if (s == LISA_ERR_LIMIT && n > 0) s = LISA_OK; /* sizing call */
    }
    if (s == LISA_OK && !(*ids = malloc((size_t)n * sizeof(int32_t)))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, *ids, n, n_ids);
    free(prompt);
    if (s != LISA_OK) {
        free(*ids);
        *ids = NULL;
        return s;
    }
    *placeholder = -1;
    for (int32_t i = 0; i < *n_ids; i++)
        if ((*ids)[i] == LISA_IMAGE_TOKEN_INDEX) *placeholder = i;
    LISA_ASSERT(*placeholder >= 0); /* the template always holds one <image> */
    return LISA_OK;
}

static lisa_status run_request(lisa_model *m, req *r, const uint8_t *rgb, const char *query,
                               const lisa_segment_params *p, const lisa_run_hooks *hooks, lisa_result *res) {
    const int32_t C = m->cfg.llm.hidden, eos = lisa_tokenizer_eos_id(m->tok);
    double t0 = now_ms();
    /* prompt (chat.py, llava_v1) and tokenizer_image_token */
    size_t plen = 0, pcap = strlen(query) + 1024;
    char *prompt = malloc(pcap);
    if (!prompt) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_prompt_llava_v1(prompt, pcap, query, m->cfg.use_im_start_end, &plen);
    int32_t n = 0;
    if (s == LISA_OK) {
        s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, NULL, 0, &n);
        if (s == LISA_ERR_LIMIT && n > 0) s = LISA_OK; /* sizing call */
    }
    if (s == LISA_OK && !(r->ids = malloc((size_t)n * sizeof(int32_t)))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, r->ids, n, &r->n_ids);
    free(prompt);
    if (s != LISA_OK) return s;
    r->placeholder = -1;
    for (int32_t i = 0; i < r->n_ids; i++)
        if (r->ids[i] == LISA_IMAGE_TOKEN_INDEX) r->placeholder = i;
    LISA_ASSERT(r->placeholder >= 0); /* the template always holds one <image> */
    r->L0 = r->n_ids - 1 + m->n_patches;
    if (r->L0 >= m->cfg.llm.max_pos)
        return lisa_fail(LISA_ERR_LIMIT, "prompt of %d positions (with %d image tokens) exceeds the model's %d",
                         r->L0, m->n_patches, m->cfg.llm.max_pos);
    int32_t max_new = p->max_new_tokens;
    if (max_new < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "max_new_tokens must be >= 1 (got %d)", max_new);
    if (r->L0 + max_new > m->cfg.llm.max_pos) max_new = m->cfg.llm.max_pos - r->L0;

    /* preprocessing (bit-exact, spec §2) */
    LISA_TRY(preprocess_image(m, r, rgb));
    res->t.preprocess_ms = now_ms() - t0;

    /* prefill */
    double t1 = now_ms();
    LISA_TRY(lisa_kv_cache_init(&r->kv, m->be, &m->cfg.llm, r->L0 + max_new, LISA_DTYPE_F32));
    LISA_TRY(lisa_tensor_alloc(&r->step_ids, LISA_DTYPE_I32, 1, (int64_t[]){r->n_ids - 1}));
    for (int32_t i = 0, j = 0; i < r->n_ids; i++)
        if (i != r->placeholder) ((int32_t *)r->step_ids.data)[j++] = r->ids[i];
    LISA_TRY(lisa_tensor_alloc(&r->next_id, LISA_DTYPE_I32, 1, (int64_t[]){1}));
    LISA_TRY(lisa_tensor_alloc(&r->hidden_row, LISA_DTYPE_F32, 2, (int64_t[]){1, C}));
    LISA_TRY(lisa_tensor_alloc(&r->seg_hidden, LISA_DTYPE_F32, 2, (int64_t[]){max_new, C}));
    if (!(res->tokens = malloc((size_t)max_new * sizeof(int32_t)))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    LISA_TRY(run_stage(m, prefill_graph, r, hooks));
    res->t.prefill_ms = now_ms() - t1; /* CLIP included */
    res->t.n_prompt_tokens = r->L0;

    /* greedy generation (§4.4): keep the predicting position's state whenever argmax == [SEG] */
    double t2 = now_ms();
    lisa_tensor_free(&r->step_ids);
    LISA_TRY(lisa_tensor_alloc(&r->step_ids, LISA_DTYPE_I32, 1, (int64_t[]){1}));
    size_t act_bytes = 0, meta_bytes = 0;
    void *mem = NULL;
    lisa_arena act = {0}, meta = {0};
    for (;;) {
        int32_t tok = ((int32_t *)r->next_id.data)[0];
        res->tokens[res->n_tokens++] = tok;
        if (tok == m->seg_id) {
            memcpy((float *)r->seg_hidden.data + (size_t)r->n_seg * C, r->hidden_row.data, (size_t)C * sizeof(float));
            r->n_seg++;
        }
        if (tok == eos || res->n_tokens >= max_new) break;
        ((int32_t *)r->step_ids.data)[0] = tok;
        if (!mem) { /* the step's arena is sized once, before the loop's first step */
            s = lisa_graph_measure(m->be, LISA_DTYPE_F32, decode_graph, r, &act_bytes, &meta_bytes);
            if (s == LISA_OK) s = m->be->mem_alloc(m->be, act_bytes ? act_bytes : 1, &mem);
            if (s == LISA_OK) {
                lisa_arena_init_external(&act, "decode activations", mem, act_bytes);
                s = lisa_arena_init(&meta, "decode descriptors", meta_bytes);
            }
            if (s != LISA_OK) break;
        }
        lisa_arena_reset(&act, 0);
        lisa_arena_reset(&meta, 0);
        lisa_graph g;
        lisa_graph_init(&g, m->be, &act, &meta, LISA_DTYPE_F32);
        decode_graph(&g, r);
        if ((s = g.status) != LISA_OK) break;
    }
    if (mem) m->be->mem_free(m->be, mem);
    lisa_arena_free(&meta);
    if (s != LISA_OK) return s;
    res->t.decode_ms = now_ms() - t2;
    res->t.n_generated = res->n_tokens;

    /* text: the answer (no trailing </s>) and chat.py's full text_output */
    int32_t n_ans = res->n_tokens - (res->n_tokens > 0 && res->tokens[res->n_tokens - 1] == eos ? 1 : 0);
    res->answer = decode_text(m->tok, res->tokens, n_ans, &s);
    if (s != LISA_OK) return s;
    int32_t *all = malloc((size_t)(r->n_ids + res->n_tokens) * sizeof(int32_t));
    if (!all) return lisa_fail(LISA_ERR_OOM, "out of memory");
    int32_t na = 0;
    for (int32_t i = 0; i < r->n_ids; i++)
        if (r->ids[i] != LISA_IMAGE_TOKEN_INDEX) all[na++] = r->ids[i];
    memcpy(all + na, res->tokens, (size_t)res->n_tokens * sizeof(int32_t));
    res->text_output = decode_text(m->tok, all, na + res->n_tokens, &s);
    free(all);
    if (s != LISA_OK) return s;

    /* masks: one per [SEG], in generation order */
    res->n_masks = r->n_seg;
    res->h = r->H0;
    res->w = r->W0;
    if (r->n_seg == 0) return LISA_OK; /* no [SEG]: no mask (spec §1), SAM is not needed */
    const size_t plane = (size_t)r->H0 * r->W0;
    res->masks = malloc((size_t)r->n_seg * plane);
    res->scores = malloc((size_t)r->n_seg * sizeof(float));
    if (p->keep_logits) res->logits = malloc((size_t)r->n_seg * plane * sizeof(float));
    if (!res->masks || !res->scores || (p->keep_logits && !res->logits)) return lisa_fail(LISA_ERR_OOM, "out of memory");
    r->seg_hidden.shape[0] = r->n_seg; /* the gathered rows */
    LISA_TRY(lisa_tensor_alloc(&r->pred, LISA_DTYPE_F32, 2, (int64_t[]){r->n_seg, m->cfg.out_dim}));
    double t3 = now_ms();
    const int64_t G = m->sam->enc.grid;
    r->emb = lisa_tensor_view(NULL, LISA_DTYPE_F32, 4, (int64_t[]){1, m->cfg.out_dim, G, G});
    LISA_TRY(m->be->mem_alloc(m->be, lisa_tensor_nbytes(&r->emb), &r->emb_mem));
    r->emb.data = r->emb_mem;
    r->emb.device = m->be->device;
    r->emb.device_id = m->be->device_id;
    LISA_TRY(run_stage(m, embed_graph, r, hooks));
    res->t.sam_encoder_ms = now_ms() - t3;
    double t4 = now_ms();
    for (r->chunk0 = 0; r->chunk0 < r->n_seg; r->chunk0 += r->chunk_n) {
        r->chunk_n = r->n_seg - r->chunk0 < MASK_DECODER_CHUNK ? r->n_seg - r->chunk0 : MASK_DECODER_CHUNK;
        lisa_tensor_free(&r->logits);
        lisa_tensor_free(&r->iou);
        LISA_TRY(lisa_tensor_alloc(&r->logits, LISA_DTYPE_F32, 3, (int64_t[]){r->chunk_n, r->H0, r->W0}));
        LISA_TRY(lisa_tensor_alloc(&r->iou, LISA_DTYPE_F32, 2, (int64_t[]){r->chunk_n, 1}));
        /* taps see whole-request tensors only when one chunk holds every mask */
        LISA_TRY(run_stage(m, masks_graph, r, r->chunk0 == 0 && r->chunk_n == r->n_seg ? hooks : NULL));
        const float *lg = r->logits.data;
        for (size_t i = 0; i < (size_t)r->chunk_n * plane; i++) res->masks[r->chunk0 * plane + i] = lg[i] > 0.0f;
        if (res->logits) memcpy(res->logits + r->chunk0 * plane, lg, (size_t)r->chunk_n * plane * sizeof(float));
        memcpy(res->scores + r->chunk0, r->iou.data, (size_t)r->chunk_n * sizeof(float));
    }
    res->t.sam_decoder_ms = now_ms() - t4; /* prompt encoder + mask decoder + postprocess */
    return LISA_OK;
}

lisa_status lisa_model_run(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                           const lisa_segment_params *p, const lisa_run_hooks *hooks, lisa_result **out) {
    *out = NULL;
    lisa_segment_params dp = lisa_segment_default_params();
    if (!p) p = &dp;
    if (!rgb || h < 1 || w < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "image: no pixels (%d x %d)", w, h);
    if (p->max_image_pixels > 0 && (int64_t)h * w > p->max_image_pixels)
        return lisa_fail(LISA_ERR_LIMIT, "image of %d x %d pixels exceeds the limit of %lld pixels", w, h,
                         (long long)p->max_image_pixels);
    LISA_TRY(check_query(query, p));
    lisa_result *res = calloc(1, sizeof *res);
    if (!res) return lisa_fail(LISA_ERR_OOM, "out of memory");
    double t0 = now_ms();
    req r = {.m = m, .H0 = h, .W0 = w};
    lisa_status s = run_request(m, &r, rgb, query, p, hooks, res);
    lisa_kv_cache_free(&r.kv);
    free(r.ids);
    lisa_tensor_free(&r.clip_px);
    lisa_tensor_free(&r.sam_px);
    lisa_tensor_free(&r.step_ids);
    lisa_tensor_free(&r.next_id);
    lisa_tensor_free(&r.hidden_row);
    lisa_tensor_free(&r.seg_hidden);
    lisa_tensor_free(&r.pred);
    lisa_tensor_free(&r.logits);
    lisa_tensor_free(&r.iou);
    if (r.emb_mem) m->be->mem_free(m->be, r.emb_mem);
    if (s != LISA_OK) {
        lisa_result_free(res);
        return s;
    }
    res->t.total_ms = now_ms() - t0;
    *out = res;
    return LISA_OK;
}

/* ---- teacher-forced evaluation (spec §9) ---------------------------------------------------- */

static lisa_status run_teacher_forced(forced_req *f, const uint8_t *rgb, int32_t n_q, const char *const *queries,
                                      const char *answer, const lisa_segment_params *p, const lisa_run_hooks *hooks,
                                      lisa_result **res) {
    req *r = &f->r;
    lisa_model *m = r->m;
    const int32_t C = m->cfg.llm.hidden, P = m->n_patches;
    double t0 = now_ms();
    /* ValDataset: conv.append_message(roles[1], answer); get_prompt() (SeparatorStyle.TWO) ends
     * the assistant turn with sep2 = "</s>": "... ASSISTANT: [SEG].</s>" */
    const size_t alen = strlen(answer);
    char *suffix = malloc(alen + 8);
    if (!suffix) return lisa_fail(LISA_ERR_OOM, "out of memory");
    snprintf(suffix, alen + 8, " %s</s>", answer);
    int32_t **ids = calloc((size_t)n_q, sizeof *ids), *n_ids = calloc((size_t)n_q, sizeof *n_ids);
    int32_t *ph = calloc((size_t)n_q, sizeof *ph), *n_seg = calloc((size_t)n_q, sizeof *n_seg);
    int32_t *pos = NULL;
    lisa_status s = (ids && n_ids && ph && n_seg) ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory");
    int32_t max_L = 0, n_total = 0, max_n = 0;
    for (int32_t q = 0; q < n_q && s == LISA_OK; q++) {
        s = tokenize_prompt(m, queries[q], suffix, &ids[q], &n_ids[q], &ph[q]);
        if (s != LISA_OK) break;
        const int32_t L = n_ids[q] - 1 + P;
        if (L > m->cfg.llm.max_pos)
            s = lisa_fail(LISA_ERR_LIMIT, "query %d: sequence of %d positions (with %d image tokens) exceeds the model's %d",
                          q, L, P, m->cfg.llm.max_pos);
        /* model_forward: seg_token_mask = input_ids[:, 1:] == seg, i.e. the token before each
         * [SEG]; its expanded position is i - 1 + 255 after the image (255 = P - 1) */
        for (int32_t i = 1; i < n_ids[q]; i++)
            if (ids[q][i] == m->seg_id && i - 1 > ph[q]) n_seg[q]++;
        if (L > max_L) max_L = L;
        if (n_seg[q] > max_n) max_n = n_seg[q];
        n_total += n_seg[q];
    }
    free(suffix);
    if (s == LISA_OK) s = preprocess_image(m, r, rgb);
    double t1 = now_ms();
    if (s == LISA_OK) s = lisa_kv_cache_init(&r->kv, m->be, &m->cfg.llm, max_L, LISA_DTYPE_F32);
    if (s == LISA_OK) s = lisa_tensor_alloc(&r->seg_hidden, LISA_DTYPE_F32, 2, (int64_t[]){n_total > 0 ? n_total : 1, C});
    if (s == LISA_OK && !(pos = malloc((size_t)(max_n > 0 ? max_n : 1) * sizeof *pos)))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    /* one forward per query over its whole sequence (the reference batches an image's queries
     * with right padding; causal attention makes the gathered states the same) */
    for (int32_t q = 0; q < n_q && s == LISA_OK; q++) {
        if (n_seg[q] == 0) continue; /* nothing to gather: no mask (the reference would misalign) */
        r->ids = ids[q];
        r->n_ids = n_ids[q];
        r->placeholder = ph[q];
        r->L0 = n_ids[q] - 1 + P;
        r->kv.len = 0;
        lisa_tensor_free(&r->step_ids);
        s = lisa_tensor_alloc(&r->step_ids, LISA_DTYPE_I32, 1, (int64_t[]){r->n_ids - 1});
        if (s != LISA_OK) break;
        for (int32_t i = 0, j = 0; i < r->n_ids; i++)
            if (i != r->placeholder) ((int32_t *)r->step_ids.data)[j++] = r->ids[i];
        f->n = 0;
        for (int32_t i = 1; i < n_ids[q]; i++)
            if (ids[q][i] == m->seg_id && i - 1 > ph[q]) pos[f->n++] = i - 1 + P - 1;
        f->pos = pos;
        lisa_tensor_free(&f->rows);
        s = lisa_tensor_alloc(&f->rows, LISA_DTYPE_F32, 2, (int64_t[]){f->n, C});
        if (s == LISA_OK) s = run_stage(m, forced_graph, f, hooks);
        if (s == LISA_OK) {
            memcpy((float *)r->seg_hidden.data + (size_t)r->n_seg * C, f->rows.data, (size_t)f->n * C * sizeof(float));
            r->n_seg += f->n;
        }
    }
    r->ids = NULL;
    const double prefill_ms = now_ms() - t1;
    /* text_hidden_fcs, SAM image encoder once, mask decoder per chunk of [SEG]s, postprocess */
    const size_t plane = (size_t)r->H0 * r->W0;
    uint8_t *masks = NULL;
    float *logits = NULL, *scores = NULL;
    double t3 = now_ms(), t4 = t3;
    if (s == LISA_OK && n_total > 0) {
        masks = malloc((size_t)n_total * plane);
        scores = malloc((size_t)n_total * sizeof(float));
        if (p->keep_logits) logits = malloc((size_t)n_total * plane * sizeof(float));
        if (!masks || !scores || (p->keep_logits && !logits)) s = lisa_fail(LISA_ERR_OOM, "out of memory");
        r->seg_hidden.shape[0] = n_total;
        if (s == LISA_OK) s = lisa_tensor_alloc(&r->pred, LISA_DTYPE_F32, 2, (int64_t[]){n_total, m->cfg.out_dim});
        const int64_t G = m->sam->enc.grid;
        r->emb = lisa_tensor_view(NULL, LISA_DTYPE_F32, 4, (int64_t[]){1, m->cfg.out_dim, G, G});
        if (s == LISA_OK) s = m->be->mem_alloc(m->be, lisa_tensor_nbytes(&r->emb), &r->emb_mem);
        if (s == LISA_OK) {
            r->emb.data = r->emb_mem;
            r->emb.device = m->be->device;
            r->emb.device_id = m->be->device_id;
            s = run_stage(m, embed_graph, r, hooks);
        }
        t4 = now_ms();
        for (r->chunk0 = 0; s == LISA_OK && r->chunk0 < n_total; r->chunk0 += r->chunk_n) {
            r->chunk_n = n_total - r->chunk0 < MASK_DECODER_CHUNK ? n_total - r->chunk0 : MASK_DECODER_CHUNK;
            lisa_tensor_free(&r->logits);
            lisa_tensor_free(&r->iou);
            s = lisa_tensor_alloc(&r->logits, LISA_DTYPE_F32, 3, (int64_t[]){r->chunk_n, r->H0, r->W0});
            if (s == LISA_OK) s = lisa_tensor_alloc(&r->iou, LISA_DTYPE_F32, 2, (int64_t[]){r->chunk_n, 1});
            if (s == LISA_OK) s = run_stage(m, masks_graph, r, r->chunk0 == 0 && r->chunk_n == n_total ? hooks : NULL);
            if (s != LISA_OK) break;
            const float *lg = r->logits.data;
            for (size_t i = 0; i < (size_t)r->chunk_n * plane; i++) masks[r->chunk0 * plane + i] = lg[i] > 0.0f;
            if (logits) memcpy(logits + r->chunk0 * plane, lg, (size_t)r->chunk_n * plane * sizeof(float));
            memcpy(scores + r->chunk0, r->iou.data, (size_t)r->chunk_n * sizeof(float));
        }
    }
    const double t5 = now_ms();
    /* one result per query: the forced answer, the whole forced sequence as tokens, its masks */
    for (int32_t q = 0, k = 0; q < n_q && s == LISA_OK; k += n_seg[q], q++) {
        lisa_result *o = res[q];
        int32_t na = 0;
        if (!(o->answer = strdup(answer)) || !(o->tokens = malloc((size_t)n_ids[q] * sizeof(int32_t)))) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        for (int32_t i = 0; i < n_ids[q]; i++)
            if (ids[q][i] != LISA_IMAGE_TOKEN_INDEX) o->tokens[na++] = ids[q][i];
        o->n_tokens = na;
        o->text_output = decode_text(m->tok, o->tokens, na, &s);
        if (s != LISA_OK) break;
        o->n_masks = n_seg[q];
        o->h = r->H0;
        o->w = r->W0;
        if (n_seg[q] > 0) {
            o->masks = malloc((size_t)n_seg[q] * plane);
            o->scores = malloc((size_t)n_seg[q] * sizeof(float));
            if (logits) o->logits = malloc((size_t)n_seg[q] * plane * sizeof(float));
            if (!o->masks || !o->scores || (logits && !o->logits)) {
                s = lisa_fail(LISA_ERR_OOM, "out of memory");
                break;
            }
            memcpy(o->masks, masks + (size_t)k * plane, (size_t)n_seg[q] * plane);
            memcpy(o->scores, scores + k, (size_t)n_seg[q] * sizeof(float));
            if (logits) memcpy(o->logits, logits + (size_t)k * plane, (size_t)n_seg[q] * plane * sizeof(float));
        }
        /* timings are those of the whole call (all queries) */
        o->t.preprocess_ms = t1 - t0;
        o->t.prefill_ms = prefill_ms;
        o->t.sam_encoder_ms = t4 - t3;
        o->t.sam_decoder_ms = t5 - t4;
        o->t.n_prompt_tokens = n_ids[q] - 1 + P;
    }
    free(masks);
    free(logits);
    free(scores);
    free(pos);
    for (int32_t q = 0; ids && q < n_q; q++) free(ids[q]);
    free(ids);
    free(n_ids);
    free(ph);
    free(n_seg);
    return s;
}

lisa_status lisa_model_run_teacher_forced(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, int32_t n_queries,
                                          const char *const *queries, const char *answer, const lisa_segment_params *p,
                                          const lisa_run_hooks *hooks, lisa_result **out) {
    for (int32_t q = 0; q < n_queries; q++) out[q] = NULL;
    lisa_segment_params dp = lisa_segment_default_params();
    if (!p) p = &dp;
    if (!answer) answer = "[SEG].";
    if (!rgb || h < 1 || w < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "image: no pixels (%d x %d)", w, h);
    if (n_queries < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "teacher-forced run: %d queries", n_queries);
    if (p->max_image_pixels > 0 && (int64_t)h * w > p->max_image_pixels)
        return lisa_fail(LISA_ERR_LIMIT, "image of %d x %d pixels exceeds the limit of %lld pixels", w, h,
                         (long long)p->max_image_pixels);
    for (int32_t q = 0; q < n_queries; q++) {
        lisa_status qs = check_query(queries[q], p);
        if (qs != LISA_OK) return lisa_fail_context(qs, "query %d", q);
    }
    if (strlen(answer) > 4096) return lisa_fail(LISA_ERR_LIMIT, "teacher-forced answer of %zu bytes", strlen(answer));
    lisa_result **res = calloc((size_t)n_queries, sizeof *res);
    lisa_status s = res ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int32_t q = 0; q < n_queries && s == LISA_OK; q++)
        if (!(res[q] = calloc(1, sizeof **res))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    double t0 = now_ms();
    forced_req f = {.r = {.m = m, .H0 = h, .W0 = w}};
    req *r = &f.r;
    if (s == LISA_OK) s = run_teacher_forced(&f, rgb, n_queries, queries, answer, p, hooks, res);
    lisa_kv_cache_free(&r->kv);
    lisa_tensor_free(&r->clip_px);
    lisa_tensor_free(&r->sam_px);
    lisa_tensor_free(&r->step_ids);
    lisa_tensor_free(&r->seg_hidden);
    lisa_tensor_free(&r->pred);
    lisa_tensor_free(&r->logits);
    lisa_tensor_free(&r->iou);
    lisa_tensor_free(&f.rows);
    if (r->emb_mem) m->be->mem_free(m->be, r->emb_mem);
    for (int32_t q = 0; res && q < n_queries; q++) {
        if (s != LISA_OK) {
            lisa_result_free(res[q]);
        } else {
            res[q]->t.total_ms = now_ms() - t0;
            out[q] = res[q];
        }
    }
    free(res);
    return s;
}

lisa_status lisa_segment(lisa_model *m, const uint8_t *rgb, int32_t height, int32_t width, const char *query,
                         const lisa_segment_params *p, lisa_result **out) {
    return lisa_model_run(m, rgb, height, width, query, p, NULL, out);
}

lisa_status lisa_segment_file(lisa_model *m, const char *image_path, const char *query, const lisa_segment_params *p,
                              lisa_result **out) {
    *out = NULL;
    lisa_segment_params dp = lisa_segment_default_params();
    if (!p) p = &dp;
    lisa_image_limits lim = lisa_image_default_limits();
    if (p->max_image_pixels > 0) lim.max_pixels = p->max_image_pixels;
    lisa_image img;
    LISA_TRY(lisa_image_load(&img, image_path, &lim));
    lisa_status s = lisa_model_run(m, img.data, img.h, img.w, query, p, NULL, out);
    lisa_image_free(&img);
    return s;
}

/* ---- result accessors ---------------------------------------------------------------------- */

const char *lisa_result_answer(const lisa_result *r) { return r->answer; }
const char *lisa_result_text_output(const lisa_result *r) { return r->text_output; }
int32_t lisa_result_n_tokens(const lisa_result *r) { return r->n_tokens; }
const int32_t *lisa_result_tokens(const lisa_result *r) { return r->tokens; }
int32_t lisa_result_n_masks(const lisa_result *r) { return r->n_masks; }

const uint8_t *lisa_result_mask(const lisa_result *r, int32_t i, int32_t *height, int32_t *width) {
    if (i < 0 || i >= r->n_masks) return NULL;
    if (height) *height = r->h;
    if (width) *width = r->w;
    return r->masks + (size_t)i * r->h * r->w;
}

const float *lisa_result_mask_logits(const lisa_result *r, int32_t i) {
    if (!r->logits || i < 0 || i >= r->n_masks) return NULL;
    return r->logits + (size_t)i * r->h * r->w;
}

float lisa_result_mask_score(const lisa_result *r, int32_t i) {
    return (i >= 0 && i < r->n_masks) ? r->scores[i] : NAN;
}

lisa_timings lisa_result_timings(const lisa_result *r) { return r->t; }
