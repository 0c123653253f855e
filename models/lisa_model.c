/* models/lisa_model.c — LISA end to end for one request (spec §1–§5).
 * ref: dvlab-research/LISA chat.py (prompt, preprocessing, decode + cleanup), model/LISA.py
 *      (LISAForCausalLM.evaluate: [SEG] gather with the one-token offset, text_hidden_fcs,
 *      prompt encoder with text_embeds, mask decoder, postprocess_masks),
 *      model/llava/model/llava_arch.py (prepare_inputs_labels_for_multimodal: the splice),
 *      model/llava/mm_utils.py (tokenizer_image_token). */
#include "models/lisa_model.h"

#include "loader/image.h"
#include "loader/json.h"
#include "models/preprocessor_config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/shard.h"
#include "core/path.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MASK_DECODER_CHUNK 8 /* [SEG] prompts decoded together (bounds activation memory) */

/* ---- parameters ---------------------------------------------------------------------------- */

lisa_model_params lisa_model_default_params(void) {
    lisa_model_params p = {
        .vision_tower = NULL, .backend = LISA_BACKEND_AUTO, .device = 0, .n_threads = 0, .tensor_parallel = 0};
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
    /* the same bounds as the manifest (inspect): one validation for every command (issue 18) */
    if (s == LISA_OK) s = lisa_json_int_range(root, path, "mm_hidden_size", false, 1024, 1, LISA_LLAMA_MAX_WIDTH, &mm_hidden);
    if (s == LISA_OK)
        s = lisa_json_int_range(root, path, "mm_vision_select_layer", false, -2, -LISA_LLAMA_MAX_LAYERS,
                                LISA_LLAMA_MAX_LAYERS, &select);
    if (s == LISA_OK) s = lisa_json_bool(root, path, "mm_use_im_start_end", false, false, &start_end);
    if (s == LISA_OK) s = lisa_json_string(root, path, "mm_projector_type", false, "linear", &proj);
    if (s == LISA_OK) s = lisa_json_int_range(root, path, "out_dim", false, 256, 1, LISA_LLAMA_MAX_WIDTH, &out_dim);
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

lisa_status lisa_model_vision_tower_dir(const char *model_dir, char *out, size_t cap) {
    lisa_model_config c; /* the loader's own reading of config.json: the same keys and default */
    LISA_TRY(parse_config(&c, model_dir));
    return resolve_vision_tower(out, cap, model_dir, c.vision_tower);
}

/* Binds the rows of models/lisa_tensors.def (mm_projector, text_hidden_fcs). */
static void load_glue(lisa_weights *w, void *ctx) {
    lisa_model *m = ctx;
    const lisa_llm_dims d = {.hidden = m->cfg.llm.hidden, .mm_hidden = m->cfg.mm_hidden, .out_dim = m->cfg.out_dim,
                             .projector_layers = m->cfg.mlp2x_gelu ? 2 : 1};
    (void)lisa_glue_tensors_projector(&d, m, lisa_w_bind, w);
    (void)lisa_glue_tensors_fcs(&d, m, lisa_w_bind, w);
}

/* The communicator of the LLM's tensors: NCCL on a device backend, else the MPI one. */
static lisa_comm *tp_data(lisa_model *m) { return m->tp_device ? m->tp_device : m->tp_comm; }

static lisa_status create_device_comm(lisa_model *m, lisa_backend *be) {
    if (!be->stream)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "tensor parallelism on the %s backend needs a CUDA build with NCCL",
                         be->name);
    return lisa_comm_nccl_create(&m->tp_device, m->tp_comm, be->device_id, be->stream);
}

lisa_dtype lisa_default_act_dtype(const lisa_backend *be) {
    return be->device == LISA_DEVICE_CPU ? LISA_DTYPE_F32 : LISA_DTYPE_BF16;
}

lisa_status lisa_model_load_with_backend(const char *path, const lisa_model_params *p, lisa_backend *be,
                                         lisa_model **out) {
    return lisa_model_load_precision(path, p, be, lisa_default_act_dtype(be), out);
}

lisa_status lisa_model_load_precision(const char *path, const lisa_model_params *p, lisa_backend *be,
                                      lisa_dtype act_dtype, lisa_model **out) {
    *out = NULL;
    if (be->device == LISA_DEVICE_CPU ? act_dtype != LISA_DTYPE_F32
                                      : act_dtype != LISA_DTYPE_F32 && act_dtype != LISA_DTYPE_BF16)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: %s activations on the %s backend (the CPU computes in F32; devices "
                                               "in BF16 or F32)",
                         path, lisa_dtype_name(act_dtype), be->name);
    lisa_model_params dp = lisa_model_default_params();
    if (!p) p = &dp;
    lisa_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(path))) {
        free(m);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    m->be = be;
    m->act_dtype = act_dtype;
    char clip_dir[4096];
    lisa_status s = parse_config(&m->cfg, path);
    if (s == LISA_OK && p->tensor_parallel > 1) {
        /* TP group of tensor_parallel consecutive MPI ranks; its rank 0 leads (runtime/engine_tp.h) */
        s = lisa_comm_mpi_create(&m->tp_comm, p->tensor_parallel, &m->tp_group, &m->tp_groups);
        if (s == LISA_OK) m->tp_follower = m->tp_comm->rank != 0;
        /* tensors move over NCCL on GPUs (bootstrapped through MPI; plans stay on MPI), over MPI on
         * the CPU */
        if (s == LISA_OK && be->device != LISA_DEVICE_CPU) s = create_device_comm(m, be);
    } else if (s == LISA_OK && p->tensor_parallel < 0) {
        s = lisa_fail(LISA_ERR_INVALID_ARG, "tensor_parallel %d (0 or 1: off; N: N MPI ranks)", p->tensor_parallel);
    }
    if (s == LISA_OK && m->tp_follower) { /* a follower holds its LLM shard only */
        s = lisa_checkpoint_open(&m->ck, path);
        if (s == LISA_OK) s = lisa_llama_load_ex(&m->llm, be, m->ck, &m->cfg.llm, act_dtype, tp_data(m));
        if (s != LISA_OK) {
            lisa_model_destroy(m);
            return s;
        }
        *out = m;
        return LISA_OK;
    }
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
    /* device weight matrices are stored in the activation dtype (BF16, or F32 for exact checks) */
    if (s == LISA_OK) s = lisa_llama_load_ex(&m->llm, be, m->ck, &m->cfg.llm, act_dtype, tp_data(m));
    if (s == LISA_OK) s = lisa_sam_load_ex(&m->sam, be, m->ck, act_dtype);
    if (s == LISA_OK && m->sam->dec.dim != m->cfg.out_dim)
        s = lisa_fail(LISA_ERR_SHAPE, "%s: out_dim %d does not match SAM's prompt dim %d", path, m->cfg.out_dim,
                      m->sam->dec.dim);
    if (s == LISA_OK) s = lisa_clip_load_ex(&m->clip, be, clip_dir, m->cfg.select_layer, act_dtype);
    if (s == LISA_OK && m->clip->cfg.hidden != m->cfg.mm_hidden)
        s = lisa_fail(LISA_ERR_SHAPE, "vision tower %s: hidden size %d, but mm_hidden_size is %d", clip_dir,
                      m->clip->cfg.hidden, m->cfg.mm_hidden);
    if (s == LISA_OK) {
        lisa_weights_init(&m->glue, be, m->ck, act_dtype);
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
        lisa_model_destroy(m);
        return s;
    }
    *out = m;
    return LISA_OK;
}

void lisa_model_destroy(lisa_model *m) {
    if (!m) return;
    lisa_weights_free(&m->glue);
    lisa_clip_free(m->clip);
    lisa_sam_free(m->sam);
    lisa_llama_free(m->llm);
    lisa_checkpoint_close(m->ck);
    lisa_tokenizer_free(m->tok);
    lisa_comm_free(m->tp_device); /* before the backend whose stream it waits on */
    lisa_comm_free(m->tp_comm);
    if (m->owns_be) lisa_backend_free(m->be);
    free(m->clip_dir);
    free(m->dir);
    free(m);
}

/* ---- request preparation (CPU side; worker threads) ------------------------------------------ */

lisa_status lisa_check_query(const char *query, const lisa_segment_params *p) {
    const lisa_segment_params dp = lisa_segment_default_params();
    if (!p) p = &dp;
    if (!query) return lisa_fail(LISA_ERR_INVALID_ARG, "query is NULL");
    size_t n = strlen(query);
    if (p->max_query_bytes > 0 && n > (size_t)p->max_query_bytes)
        return lisa_fail(LISA_ERR_LIMIT, "query of %zu bytes exceeds the limit of %d bytes", n, p->max_query_bytes);
    bool blank = true;
    for (size_t i = 0; i < n && blank; i++)
        blank = query[i] == ' ' || query[i] == '\t' || query[i] == '\n' || query[i] == '\r';
    if (blank) return lisa_fail(LISA_ERR_INVALID_ARG, "query is empty");
    if (strstr(query, "<image>"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "query contains the image placeholder \"<image>\" (one image per request)");
    return LISA_OK;
}

lisa_status lisa_prompt_ids(const lisa_model *m, const char *query, int32_t **ids, int32_t *n_ids,
                            int32_t *placeholder, int32_t *L0) {
    *ids = NULL;
    *n_ids = 0;
    /* chat.py: the llava_v1 prompt, then tokenizer_image_token */
    size_t plen = 0, pcap = strlen(query) + 1024;
    char *prompt = malloc(pcap);
    if (!prompt) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_prompt_llava_v1(prompt, pcap, query, m->cfg.use_im_start_end, &plen);
    int32_t n = 0;
    if (s == LISA_OK) {
        s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, NULL, 0, &n);
        if (s == LISA_ERR_LIMIT && n > 0) s = LISA_OK; /* that was the sizing call */
    }
    if (s == LISA_OK && !(*ids = malloc((size_t)n * sizeof(int32_t)))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = lisa_tokenizer_encode_image_prompt(m->tok, prompt, plen, *ids, n, n_ids);
    free(prompt);
    int32_t ph = -1;
    for (int32_t i = 0; s == LISA_OK && i < *n_ids; i++)
        if ((*ids)[i] == LISA_IMAGE_TOKEN_INDEX) ph = i;
    if (s == LISA_OK) {
        LISA_ASSERT(ph >= 0); /* the template holds exactly one <image> */
        const int32_t len = *n_ids - 1 + m->n_patches;
        if (len >= m->cfg.llm.max_pos)
            s = lisa_fail(LISA_ERR_LIMIT, "prompt of %d positions (%d of them image tokens) exceeds the model's %d",
                          len, m->n_patches, m->cfg.llm.max_pos);
        if (placeholder) *placeholder = ph;
        if (L0) *L0 = len;
    }
    if (s != LISA_OK) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return s;
}

void lisa_prepared_free(lisa_prepared *p) {
    if (!p) return;
    free(p->ids);
    lisa_tensor_free(&p->clip_px);
    lisa_tensor_free(&p->sam_px);
    memset(p, 0, sizeof *p);
}

lisa_status lisa_prepare(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                         const lisa_segment_params *p, lisa_prepared *out) {
    return lisa_prepare_ex(m, rgb, h, w, query, p, true, out);
}

lisa_status lisa_prepare_ex(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                            const lisa_segment_params *p, bool pixels, lisa_prepared *out) {
    memset(out, 0, sizeof *out);
    double t0 = lisa_clock_ms();
    if ((pixels && !rgb) || h < 1 || w < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "image: no pixels (%d x %d)", w, h);
    if (p->max_image_pixels > 0 && (int64_t)h * w > p->max_image_pixels)
        return lisa_fail(LISA_ERR_LIMIT, "image of %d x %d pixels exceeds the limit of %lld pixels", w, h,
                         (long long)p->max_image_pixels);
    if (p->max_new_tokens < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "max_new_tokens must be >= 1 (got %d)", p->max_new_tokens);
    LISA_TRY(lisa_check_query(query, p));
    out->H0 = h;
    out->W0 = w;
    out->keep_logits = p->keep_logits;
    lisa_status s = lisa_prompt_ids(m, query, &out->ids, &out->n_ids, &out->placeholder, &out->L0);
    if (s != LISA_OK) goto fail;
    out->max_new = p->max_new_tokens;
    if (out->L0 + out->max_new > m->cfg.llm.max_pos) out->max_new = m->cfg.llm.max_pos - out->L0;
    if (pixels) {
        out->preprocess_ms = 0;
        s = lisa_prepare_pixels(m, rgb, out);
        if (s != LISA_OK) goto fail;
    }
    out->preprocess_ms = lisa_clock_ms() - t0;
    return LISA_OK;
fail:
    lisa_prepared_free(out);
    return s;
}

lisa_status lisa_prepare_pixels(lisa_model *m, const uint8_t *rgb, lisa_prepared *out) {
    double t0 = lisa_clock_ms();
    const int32_t h = out->H0, w = out->W0;
    /* bit-exact preprocessing (spec §2) */
    const int32_t S = m->sam_pp.target_size, CS = m->clip->cfg.image_size;
    lisa_tensor_free(&out->clip_px);
    lisa_tensor_free(&out->sam_px);
    lisa_status s = lisa_tensor_alloc(&out->clip_px, LISA_DTYPE_F32, 4, (int64_t[]){1, 3, CS, CS});
    if (s == LISA_OK) s = lisa_tensor_alloc(&out->sam_px, LISA_DTYPE_F32, 4, (int64_t[]){1, 3, S, S});
    size_t ws_c = lisa_clip_preprocess_workspace_size(&m->clip_pp, h, w);
    size_t ws_s = lisa_sam_preprocess_workspace_size(&m->sam_pp, h, w);
    void *ws = s == LISA_OK ? malloc(ws_c > ws_s ? ws_c : ws_s) : NULL;
    if (s == LISA_OK && !ws) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = lisa_clip_preprocess(&out->clip_px, rgb, h, w, &m->clip_pp, ws, ws_c);
    if (s == LISA_OK) s = lisa_sam_preprocess(&out->sam_px, &out->h_r, &out->w_r, rgb, h, w, &m->sam_pp, ws, ws_s);
    free(ws);
    if (s != LISA_OK) {
        lisa_tensor_free(&out->clip_px);
        lisa_tensor_free(&out->sam_px);
        return s;
    }
    out->preprocess_ms += lisa_clock_ms() - t0;
    return LISA_OK;
}

/* FNV-1a over the fields, one at a time (no struct padding enters) */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_FIELD(h, x) h = fnv(h, &(x), sizeof(x))

uint64_t lisa_model_preprocess_id(const lisa_model *m) {
    const lisa_clip_preprocess_params *c = &m->clip_pp;
    const lisa_sam_preprocess_params *s = &m->sam_pp;
    uint64_t h = 0xcbf29ce484222325ull;
    const int32_t flags = c->do_resize | c->do_center_crop << 1 | c->do_rescale << 2 | c->do_normalize << 3;
    const int32_t resample = (int32_t)c->resample;
    FNV_FIELD(h, flags);
    FNV_FIELD(h, c->shortest_edge);
    FNV_FIELD(h, resample);
    FNV_FIELD(h, c->crop_h);
    FNV_FIELD(h, c->crop_w);
    FNV_FIELD(h, c->rescale_factor);
    FNV_FIELD(h, c->image_mean);
    FNV_FIELD(h, c->image_std);
    FNV_FIELD(h, s->target_size);
    FNV_FIELD(h, s->pixel_mean);
    FNV_FIELD(h, s->pixel_std);
    return h;
}

/* ---- graph pieces -------------------------------------------------------------------------- */

T *lisa_graph_vision(lisa_graph *g, const lisa_model *m, const T *clip_px) {
    T *feats = lisa_clip_encode(g, m->clip, clip_px);                                  /* [B, P, mm] */
    /* Linear, or Linear-GELU-Linear with the GELU in the first GEMM's epilogue: [B, P, C] */
    T *proj = lisa_g_linear_ex(g, feats, &m->proj_w[0], &m->proj_b[0], NULL, m->cfg.mlp2x_gelu ? LISA_ACT_GELU : LISA_ACT_NONE);
    if (m->cfg.mlp2x_gelu) proj = lisa_g_linear(g, proj, &m->proj_w[1], &m->proj_b[1]);
    lisa_g_tap(g, proj, "mm_proj");
    return proj;
}

/* text_hidden_fcs[0] = Linear(C, C), ReLU, Linear(C, out) (spec §4.5) */
T *lisa_graph_seg_embeddings(lisa_graph *g, const lisa_model *m, const T *seg_hidden) {
    lisa_g_tap(g, seg_hidden, "seg_hidden");
    T *pred = lisa_g_linear(g, lisa_g_linear_ex(g, seg_hidden, &m->fc1_w, &m->fc1_b, NULL, LISA_ACT_RELU), &m->fc2_w, &m->fc2_b);
    lisa_g_tap(g, pred, "pred_emb");
    return pred;
}

/* ---- the mask stage ------------------------------------------------------------------------ */

/* Runs fn on `be` (the caller's execution context, never the model's own: the model is shared). */
static lisa_status run_stage(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx,
                             const lisa_run_hooks *hooks) {
    return lisa_graph_run_once(be, act_dtype, fn, ctx, hooks ? hooks->tap : NULL, hooks ? hooks->ctx : NULL);
}

typedef struct mask_job {
    const lisa_model *m;
    const lisa_prepared *pr;
    const T *emb;
    lisa_tensor seg;    /* host F32 [N, C] */
    lisa_tensor pred;   /* host F32 [N, out] */
    int32_t chunk0, chunk_n;
    lisa_tensor logits; /* host F32 [chunk, H0, W0] */
    lisa_tensor iou;    /* host F32 [chunk, 1] */
    double t_decoded;   /* when the chunk's mask decoder finished (its postprocess starts) */
} mask_job;

static void pred_graph(lisa_graph *g, void *ctx) {
    mask_job *j = ctx;
    lisa_g_download(g, &j->pred, lisa_graph_seg_embeddings(g, j->m, lisa_g_upload(g, &j->seg)));
}

/* SAM prompt encoder (sparse = the text embedding, dense = no_mask_embed) + mask decoder +
 * postprocess for one chunk of [SEG] prompts (spec §5.2-5.4) */
static void decode_chunk_graph(lisa_graph *g, void *ctx) {
    mask_job *j = ctx;
    const int64_t O = j->m->cfg.out_dim;
    T *pred = lisa_g_upload(g, &j->pred);
    T *sparse = lisa_g_reshape(g, lisa_g_contiguous(g, lisa_g_narrow(g, pred, 0, j->chunk0, j->chunk_n)), 3, j->chunk_n, 1, O, 0);
    T *low, *iou;
    lisa_sam_decode(g, j->m->sam, j->emb, sparse, &low, &iou);
    /* the decoder's end, for lisa_timings: sam_decoder_ms before it, postprocess_ms after */
    if (!g_measuring(g) && g_ok(g)) {
        const lisa_status ss = g->be->synchronize(g->be);
        if (ss != LISA_OK) lisa_g_fail(g, ss);
        j->t_decoded = lisa_clock_ms();
    }
    T *ml = lisa_sam_postprocess(g, j->m->sam, low, j->pr->h_r, j->pr->w_r, j->pr->H0, j->pr->W0);
    lisa_g_download(g, &j->logits, ml);
    lisa_g_download(g, &j->iou, iou);
}

lisa_status lisa_masks_alloc(lisa_result *res, const lisa_prepared *pr, int32_t n_seg) {
    res->n_masks = n_seg;
    res->h = pr->H0;
    res->w = pr->W0;
    if (n_seg == 0) return LISA_OK;
    const size_t plane = (size_t)pr->H0 * pr->W0;
    res->masks = malloc((size_t)n_seg * plane);
    res->scores = malloc((size_t)n_seg * sizeof(float));
    if (pr->keep_logits) res->logits = malloc((size_t)n_seg * plane * sizeof(float));
    if (!res->masks || !res->scores || (pr->keep_logits && !res->logits)) return lisa_fail(LISA_ERR_OOM, "out of memory");
    return LISA_OK;
}

void lisa_masks_store(lisa_result *res, int32_t p0, int32_t n, const float *logits, const float *scores) {
    const size_t plane = (size_t)res->h * res->w;
    for (size_t i = 0; i < (size_t)n * plane; i++) res->masks[p0 * plane + i] = logits[i] > 0.0f;
    if (res->logits) memcpy(res->logits + p0 * plane, logits, (size_t)n * plane * sizeof(float));
    memcpy(res->scores + p0, scores, (size_t)n * sizeof(float));
}

lisa_status lisa_masks_run(const lisa_model *m, lisa_backend *be, const lisa_prepared *pr, const T *emb,
                           const float *seg_hidden, int32_t n_seg, lisa_result *res, const lisa_run_hooks *hooks) {
    LISA_TRY(lisa_masks_alloc(res, pr, n_seg));
    if (n_seg == 0) return LISA_OK; /* no [SEG], no mask (spec §1) */
    mask_job j = {.m = m, .pr = pr, .emb = emb};
    double t = lisa_clock_ms(), dec_ms = 0, post_ms = 0;
    j.seg = lisa_tensor_view((void *)seg_hidden, LISA_DTYPE_F32, 2, (int64_t[]){n_seg, m->cfg.llm.hidden});
    lisa_status s = lisa_tensor_alloc(&j.pred, LISA_DTYPE_F32, 2, (int64_t[]){n_seg, m->cfg.out_dim});
    if (s == LISA_OK) s = run_stage(be, m->act_dtype, pred_graph, &j, hooks);
    for (j.chunk0 = 0; s == LISA_OK && j.chunk0 < n_seg; j.chunk0 += j.chunk_n) {
        j.chunk_n = n_seg - j.chunk0 < MASK_DECODER_CHUNK ? n_seg - j.chunk0 : MASK_DECODER_CHUNK;
        lisa_tensor_free(&j.logits);
        lisa_tensor_free(&j.iou);
        s = lisa_tensor_alloc(&j.logits, LISA_DTYPE_F32, 3, (int64_t[]){j.chunk_n, pr->H0, pr->W0});
        if (s == LISA_OK) s = lisa_tensor_alloc(&j.iou, LISA_DTYPE_F32, 2, (int64_t[]){j.chunk_n, 1});
        /* taps see whole-request tensors only when one chunk holds every mask */
        if (s == LISA_OK)
            s = run_stage(be, m->act_dtype, decode_chunk_graph, &j, j.chunk0 == 0 && j.chunk_n == n_seg ? hooks : NULL);
        if (s != LISA_OK) break;
        lisa_masks_store(res, j.chunk0, j.chunk_n, j.logits.data, j.iou.data);
        /* text_hidden_fcs, prompt encoder and mask decoder up to t_decoded; upscaling to the image,
         * the threshold and the copies after it */
        const double t_end = lisa_clock_ms();
        dec_ms += j.t_decoded - t;
        post_ms += t_end - j.t_decoded;
        t = t_end;
    }
    res->t.sam_decoder_ms += dec_ms;
    res->t.postprocess_ms += post_ms;
    lisa_tensor_free(&j.pred);
    lisa_tensor_free(&j.logits);
    lisa_tensor_free(&j.iou);
    return s;
}

/* ---- result text ------------------------------------------------------------------------------- */

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

lisa_status lisa_result_set_text(const lisa_model *m, lisa_result *res, const lisa_prepared *pr) {
    const int32_t eos = lisa_tokenizer_eos_id(m->tok);
    lisa_status s;
    int32_t n_ans = res->n_tokens - (res->n_tokens > 0 && res->tokens[res->n_tokens - 1] == eos ? 1 : 0);
    res->answer = decode_text(m->tok, res->tokens, n_ans, &s);
    if (s != LISA_OK) return s;
    /* chat.py: output_ids without IMAGE_TOKEN_INDEX, decoded with skip_special_tokens=False */
    int32_t *all = malloc((size_t)(pr->n_ids + res->n_tokens) * sizeof(int32_t));
    if (!all) return lisa_fail(LISA_ERR_OOM, "out of memory");
    int32_t na = 0;
    for (int32_t i = 0; i < pr->n_ids; i++)
        if (pr->ids[i] != LISA_IMAGE_TOKEN_INDEX) all[na++] = pr->ids[i];
    memcpy(all + na, res->tokens, (size_t)res->n_tokens * sizeof(int32_t));
    res->text_output = decode_text(m->tok, all, na + res->n_tokens, &s);
    free(all);
    return s;
}

/* ---- teacher-forced evaluation (spec §9) ------------------------------------------------------ */

typedef struct forced_job {
    const lisa_model *m;
    lisa_backend *be;          /* this call's execution context (owned by lisa_model_run_teacher_forced) */
    const lisa_prepared *pr;   /* pixels of the image */
    const int32_t *ids;        /* the forced sequence, with the -200 placeholder */
    int32_t n_ids, placeholder, L;
    const int32_t *pos;        /* expanded positions whose states are gathered */
    int32_t n_pos;
    lisa_tensor rows;          /* host F32 [n_pos, C] */
    lisa_tensor text;          /* host I32 [n_ids - 1]: ids without the placeholder */
    lisa_kv_cache kv;
    lisa_tensor emb;           /* backend [1, out, G, G] (SAM stage) */
} forced_job;

/* CLIP -> projector -> splice -> one LLaMA forward over the whole forced sequence; gather rows */
static void forced_graph(lisa_graph *g, void *ctx) {
    forced_job *f = ctx;
    const int64_t C = f->m->cfg.llm.hidden, P = f->m->n_patches, k = f->placeholder, n_after = f->n_ids - 1 - k;
    T *proj = lisa_graph_vision(g, f->m, lisa_g_upload(g, &f->pr->clip_px));                /* [1, P, C] */
    T *emb = lisa_g_embedding(g, &f->m->llm->embed, lisa_g_upload(g, &f->text));
    T *x = lisa_g_new(g, g->act_dtype, 2, f->L, C, 0, 0);
    if (k > 0) lisa_g_copy_to(g, lisa_g_narrow(g, x, 0, 0, k), lisa_g_narrow(g, emb, 0, 0, k));
    lisa_g_copy_to(g, lisa_g_narrow(g, x, 0, k, P), lisa_g_reshape(g, proj, 2, P, C, 0, 0));
    if (n_after > 0) lisa_g_copy_to(g, lisa_g_narrow(g, x, 0, k + P, n_after), lisa_g_narrow(g, emb, 0, k, n_after));
    lisa_kv_cache saved = f->kv;
    T *h = lisa_llama_forward(g, f->m->llm, &f->kv, x);
    if (g_measuring(g)) f->kv = saved;
    T *rows = lisa_g_new(g, g->act_dtype, 2, f->n_pos, C, 0, 0);
    for (int32_t j = 0; j < f->n_pos; j++) lisa_g_copy_to(g, lisa_g_narrow(g, rows, 0, j, 1), lisa_g_narrow(g, h, 0, f->pos[j], 1));
    lisa_g_download(g, &f->rows, rows);
}

static void forced_sam_graph(lisa_graph *g, void *ctx) {
    forced_job *f = ctx;
    T *emb = lisa_sam_encode(g, f->m->sam, lisa_g_upload(g, &f->pr->sam_px));
    lisa_g_tap(g, emb, "sam_img_emb");
    lisa_g_copy_to(g, &f->emb, emb);
}

/* ValDataset: conv.append_message(roles[1], answer); get_prompt() (SeparatorStyle.TWO) ends the
 * assistant turn with sep2 "</s>": "... ASSISTANT: {answer}</s>". */
static lisa_status forced_ids(lisa_model *m, const char *query, const char *answer, int32_t **ids, int32_t *n_ids,
                              int32_t *placeholder) {
    *ids = NULL;
    const size_t alen = strlen(answer), pcap = strlen(query) + alen + 1100;
    size_t plen = 0;
    char *prompt = malloc(pcap);
    if (!prompt) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_prompt_llava_v1(prompt, pcap, query, m->cfg.use_im_start_end, &plen);
    if (s == LISA_OK) plen += (size_t)snprintf(prompt + plen, pcap - plen, " %s</s>", answer);
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
    LISA_ASSERT(*placeholder >= 0);
    return LISA_OK;
}

static lisa_status run_forced_query(lisa_model *m, forced_job *f, const char *query, const char *answer,
                                    const lisa_run_hooks *hooks, lisa_result *res) {
    const int32_t C = m->cfg.llm.hidden, P = m->n_patches;
    int32_t *ids = NULL, n_ids = 0, ph = -1;
    LISA_TRY(forced_ids(m, query, answer, &ids, &n_ids, &ph));
    lisa_status s = LISA_OK;
    int32_t *pos = malloc((size_t)n_ids * sizeof(int32_t));
    float *seg = NULL;
    f->ids = ids;
    f->n_ids = n_ids;
    f->placeholder = ph;
    f->L = n_ids - 1 + P;
    f->n_pos = 0;
    if (!pos) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK && f->L > m->cfg.llm.max_pos)
        s = lisa_fail(LISA_ERR_LIMIT, "sequence of %d positions (with %d image tokens) exceeds the model's %d", f->L, P,
                      m->cfg.llm.max_pos);
    /* model_forward(inference=True): seg_token_mask = input_ids[:, 1:] == seg, i.e. the token
     * before each [SEG]; its expanded position is (i - 1) + (P - 1) after the image */
    for (int32_t i = 1; s == LISA_OK && i < n_ids; i++)
        if (ids[i] == m->seg_id && i - 1 > ph) pos[f->n_pos++] = i - 1 + P - 1;
    f->pos = pos;
    if (s == LISA_OK && f->n_pos > 0) {
        s = lisa_tensor_alloc(&f->text, LISA_DTYPE_I32, 1, (int64_t[]){n_ids - 1});
        for (int32_t i = 0, j = 0; s == LISA_OK && i < n_ids; i++)
            if (i != ph) ((int32_t *)f->text.data)[j++] = ids[i];
        if (s == LISA_OK) s = lisa_tensor_alloc(&f->rows, LISA_DTYPE_F32, 2, (int64_t[]){f->n_pos, C});
        if (s == LISA_OK) s = lisa_kv_cache_init(&f->kv, f->be, &m->cfg.llm, f->L, m->act_dtype);
        if (s == LISA_OK) s = run_stage(f->be, m->act_dtype, forced_graph, f, hooks);
        seg = f->rows.data;
    }
    if (s == LISA_OK) s = lisa_masks_run(m, f->be, f->pr, &f->emb, seg, f->n_pos, res, hooks); /* its timings */
    /* the result: the forced answer, the forced sequence (placeholder removed) as tokens */
    if (s == LISA_OK && !(res->answer = strdup(answer))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK && !(res->tokens = malloc((size_t)n_ids * sizeof(int32_t)))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) {
        for (int32_t i = 0; i < n_ids; i++)
            if (ids[i] != LISA_IMAGE_TOKEN_INDEX) res->tokens[res->n_tokens++] = ids[i];
        res->text_output = decode_text(m->tok, res->tokens, res->n_tokens, &s);
        res->t.n_prompt_tokens = f->L;
    }
    lisa_kv_cache_free(&f->kv);
    lisa_tensor_free(&f->text);
    lisa_tensor_free(&f->rows);
    free(pos);
    free(ids);
    return s;
}

lisa_status lisa_model_run_teacher_forced(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, int32_t n_queries,
                                          const char *const *queries, const char *answer, const lisa_segment_params *p,
                                          const lisa_run_hooks *hooks, lisa_result **out) {
    for (int32_t q = 0; q < n_queries; q++) out[q] = NULL;
    if (m->tp_comm)
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "teacher-forced evaluation runs without tensor parallelism (use --mode generate, or TP 1)");
    lisa_segment_params dp = lisa_segment_default_params();
    if (!p) p = &dp;
    if (!answer) answer = "[SEG].";
    if (n_queries < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "teacher-forced run: %d queries", n_queries);
    if (strlen(answer) > 4096) return lisa_fail(LISA_ERR_LIMIT, "teacher-forced answer of %zu bytes", strlen(answer));
    for (int32_t q = 0; q < n_queries; q++) {
        lisa_status qs = lisa_check_query(queries[q], p);
        if (qs != LISA_OK) return lisa_fail_context(qs, "query %d", q);
    }
    double t0 = lisa_clock_ms();
    /* the image once: CLIP and SAM pixels (lisa_prepare's token ids are not used here) */
    lisa_prepared pr;
    LISA_TRY(lisa_prepare(m, rgb, h, w, queries[0], p, &pr));
    forced_job f = {.m = m, .pr = &pr};
    /* a context of this call's own: the model may be running other calls and engines */
    lisa_status s = lisa_backend_fork(m->be, &f.be);
    const int64_t G = m->sam->enc.grid;
    void *emb_mem = NULL;
    f.emb = lisa_tensor_view(NULL, m->act_dtype, 4, (int64_t[]){1, m->cfg.out_dim, G, G});
    if (s == LISA_OK) s = f.be->mem_alloc(f.be, lisa_tensor_nbytes(&f.emb), &emb_mem);
    f.emb.data = emb_mem;
    f.emb.device = m->be->device;
    double t1 = lisa_clock_ms();
    if (s == LISA_OK) s = run_stage(f.be, m->act_dtype, forced_sam_graph, &f, hooks);
    double t2 = lisa_clock_ms();
    for (int32_t q = 0; q < n_queries && s == LISA_OK; q++) {
        if (!(out[q] = lisa_result_new())) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        double tq = lisa_clock_ms();
        s = run_forced_query(m, &f, queries[q], answer, hooks, out[q]);
        out[q]->t.preprocess_ms = pr.preprocess_ms;
        out[q]->t.sam_encoder_ms = t2 - t1;
        out[q]->t.prefill_ms = lisa_clock_ms() - tq - out[q]->t.sam_decoder_ms - out[q]->t.postprocess_ms;
        out[q]->t.total_ms = lisa_clock_ms() - t0;
    }
    if (emb_mem) f.be->mem_free(f.be, emb_mem);
    if (f.be) lisa_backend_free(f.be);
    lisa_prepared_free(&pr);
    if (s != LISA_OK)
        for (int32_t q = 0; q < n_queries; q++) {
            lisa_result_free(out[q]);
            out[q] = NULL;
        }
    return s;
}
