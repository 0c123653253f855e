/* models/clip.c — CLIP ViT vision tower up to LLaVA's selected layer.
 * ref: transformers 4.31 models/clip/modeling_clip.py (CLIPVisionEmbeddings, CLIPAttention,
 *      CLIPEncoderLayer, CLIPVisionTransformer); LISA model/llava/model/multimodal_encoder/
 *      clip_encoder.py (feature_select: hidden_states[select_layer][:, 1:]). */
#include "models/clip.h"

#include "loader/json.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lisa_status read_config(lisa_clip_config *c, const char *dir, int32_t select_layer) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root;
    LISA_TRY(lisa_json_load_file(path, 0, &root));
    /* A CLIPConfig nests the tower under "vision_config"; a CLIPVisionConfig is flat. */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (!cJSON_IsObject(v)) v = root;
    int64_t hidden, layers, heads, inter, image, patch;
    double eps;
    const char *act;
    lisa_status s = LISA_OK;
    /* Defaults are CLIPVisionConfig's (transformers 4.31), so a config that only lists overrides works. */
    if (s == LISA_OK) s = lisa_json_int(v, path, "hidden_size", false, 768, &hidden);
    if (s == LISA_OK) s = lisa_json_int(v, path, "num_hidden_layers", false, 12, &layers);
    if (s == LISA_OK) s = lisa_json_int(v, path, "num_attention_heads", false, 12, &heads);
    if (s == LISA_OK) s = lisa_json_int(v, path, "intermediate_size", false, 3072, &inter);
    if (s == LISA_OK) s = lisa_json_int(v, path, "image_size", false, 224, &image);
    if (s == LISA_OK) s = lisa_json_int(v, path, "patch_size", false, 32, &patch);
    if (s == LISA_OK) s = lisa_json_double(v, path, "layer_norm_eps", false, 1e-5, &eps);
    if (s == LISA_OK) s = lisa_json_string(v, path, "hidden_act", false, "quick_gelu", &act);
    if (s == LISA_OK && strcmp(act, "quick_gelu") != 0 && strcmp(act, "gelu") != 0)
        s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: hidden_act '%s' (quick_gelu or gelu supported)", path, act);
    if (s == LISA_OK) {
        c->hidden = (int32_t)hidden;
        c->n_layers = (int32_t)layers;
        c->n_heads = (int32_t)heads;
        c->intermediate = (int32_t)inter;
        c->image_size = (int32_t)image;
        c->patch = (int32_t)patch;
        c->ln_eps = (float)eps;
        c->quick_gelu = strcmp(act, "quick_gelu") == 0;
        c->select_layer = select_layer;
        /* hidden_states has n_layers+1 entries (embeddings first); index select_layer (negative
         * counts from the end) is the output of layer n_layers + select_layer (1-based count). */
        int32_t idx = select_layer < 0 ? c->n_layers + 1 + select_layer : select_layer;
        c->n_run = idx;
        if (hidden <= 0 || heads <= 0 || hidden % heads || patch <= 0 || image % patch || idx < 0 || idx > layers)
            s = lisa_fail(LISA_ERR_FORMAT, "%s: inconsistent vision config (hidden %lld, heads %lld, image %lld, patch "
                          "%lld, select_layer %d of %lld layers)", path, (long long)hidden, (long long)heads,
                          (long long)image, (long long)patch, select_layer, (long long)layers);
    }
    cJSON_Delete(root);
    return s;
}

/* Binds the rows of models/clip_tensors.def for the layers LLaVA runs (cfg.n_run). */
static void load_weights(lisa_weights *w, void *ctx) {
    lisa_clip *m = ctx;
    const lisa_clip_config *c = &m->cfg;
    const lisa_clip_dims d = {.hidden = c->hidden, .intermediate = c->intermediate, .n_layers = c->n_layers,
                              .image = c->image_size, .patch = c->patch};
    (void)lisa_clip_tensors(&d, m, lisa_w_bind, w);
}

lisa_status lisa_clip_load(lisa_clip **out, lisa_backend *be, const char *dir, int32_t select_layer) {
    return lisa_clip_load_ex(out, be, dir, select_layer, LISA_DTYPE_BF16);
}

lisa_status lisa_clip_load_ex(lisa_clip **out, lisa_backend *be, const char *dir, int32_t select_layer,
                              lisa_dtype weight_dtype) {
    *out = NULL;
    lisa_clip *m = calloc(1, sizeof *m);
    if (!m) return lisa_fail(LISA_ERR_OOM, "CLIP: out of memory");
    lisa_status s = read_config(&m->cfg, dir, select_layer);
    if (s == LISA_OK) s = lisa_checkpoint_open(&m->ck, dir);
    if (s == LISA_OK && m->cfg.n_run > 0 && !(m->layers = calloc((size_t)m->cfg.n_run, sizeof *m->layers)))
        s = lisa_fail(LISA_ERR_OOM, "CLIP: out of memory");
    if (s == LISA_OK) {
        lisa_weights_init(&m->weights, be, m->ck, weight_dtype);
        s = lisa_weights_load(&m->weights, "CLIP vision tower", load_weights, m);
    }
    if (s != LISA_OK) {
        lisa_clip_free(m);
        return s;
    }
    *out = m;
    return LISA_OK;
}

void lisa_clip_free(lisa_clip *m) {
    if (!m) return;
    lisa_weights_free(&m->weights);
    lisa_checkpoint_close(m->ck);
    free(m->layers);
    free(m);
}

T *lisa_clip_encode(lisa_graph *g, const lisa_clip *m, const T *px) {
    const lisa_clip_config *c = &m->cfg;
    const int64_t B = px->shape[0], E = c->hidden, S = c->image_size, n = S / c->patch, P = n * n;
    const int64_t H = c->n_heads, D = E / H;
    if (px->n_dims != 4 || px->shape[1] != 3 || px->shape[2] != S || px->shape[3] != S) {
        char sb[96];
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "CLIP: input %s, expected [B, 3, %lld, %lld]",
                                   lisa_tensor_shape_str(px, sb, sizeof sb), (long long)S, (long long)S));
    }
    T *out = lisa_g_new(g, g->act_dtype, 3, B, P, E, 0);
    lisa_graph_mark m0 = lisa_g_mark(g);
    /* embeddings = cat(class, patches) + position; then pre_layrnorm */
    T *x = lisa_g_new(g, g->act_dtype, 3, B, P + 1, E, 0);
    lisa_graph_mark m1 = lisa_g_mark(g);
    T *pe = lisa_g_conv2d(g, px, &m->patch_w, NULL, c->patch, 0);                        /* [B, E, n, n] */
    lisa_g_copy_to(g, lisa_g_narrow(g, x, 1, 1, P), lisa_g_permute(g, lisa_g_reshape(g, pe, 3, B, E, P, 0), 0, 2, 1, 3));
    for (int64_t b = 0; b < B; b++)
        lisa_g_copy_to(g, lisa_g_narrow(g, lisa_g_narrow(g, x, 0, b, 1), 1, 0, 1), lisa_g_reshape(g, &m->class_emb, 3, 1, 1, E, 0));
    lisa_g_add_to(g, x, x, &m->pos_emb);
    lisa_g_layernorm_to(g, x, x, &m->pre_ln_w, &m->pre_ln_b, c->ln_eps);
    lisa_g_reset(g, m1);
    lisa_g_tap(g, x, "clip.embed");

    const float scale = 1.0f / sqrtf((float)D); /* CLIPAttention: q_proj(x) * head_dim^-0.5 */
    for (int i = 0; i < c->n_run && g_ok(g); i++) {
        const lisa_clip_layer *L = &m->layers[i];
        lisa_graph_mark ml = lisa_g_mark(g);
        T *h = lisa_g_layernorm(g, x, &L->ln1_w, &L->ln1_b, c->ln_eps);
        T *q = lisa_g_reshape(g, lisa_g_linear(g, h, &L->q_w, &L->q_b), 4, B, P + 1, H, D);
        T *k = lisa_g_reshape(g, lisa_g_linear(g, h, &L->k_w, &L->k_b), 4, B, P + 1, H, D);
        T *v = lisa_g_reshape(g, lisa_g_linear(g, h, &L->v_w, &L->v_b), 4, B, P + 1, H, D);
        lisa_attn_params p = {.scale = scale};
        T *a = lisa_g_attention(g, q, k, v, &p);
        /* the residual adds in the out_proj and fc2 GEMMs, the activation in fc1's */
        lisa_g_linear_ex_to(g, x, lisa_g_reshape(g, a, 3, B, P + 1, E, 0), &L->o_w, &L->o_b, x, LISA_ACT_NONE);
        h = lisa_g_layernorm(g, x, &L->ln2_w, &L->ln2_b, c->ln_eps);
        T *f = lisa_g_linear_ex(g, h, &L->fc1_w, &L->fc1_b, NULL, c->quick_gelu ? LISA_ACT_QUICK_GELU : LISA_ACT_GELU);
        lisa_g_linear_ex_to(g, x, f, &L->fc2_w, &L->fc2_b, x, LISA_ACT_NONE);
        lisa_g_reset(g, ml);
        lisa_g_tap(g, x, "clip.layer.%d", i);
    }
    lisa_g_copy_to(g, out, lisa_g_narrow(g, x, 1, 1, P)); /* feature_select "patch": drop CLS */
    lisa_g_reset(g, m0);
    lisa_g_tap(g, out, "clip_l23");
    return out;
}
