/* models/clip.h — the CLIP vision tower as LLaVA/LISA use it (spec §4.1, §6): patch embedding
 * (conv, no bias) + class token + position embedding, pre_layrnorm, pre-LN encoder layers with
 * quick_gelu, stopping at the layer LLaVA selects (hidden_states[-2] = the output of layer L-2,
 * 0-based), CLS dropped. Layer L-1 and post_layernorm are never run or loaded.
 *
 * Loads an HF CLIP checkpoint directory (openai/clip-vit-large-patch14 layout: config.json with a
 * vision_config, weights `vision_model.*` in model.safetensors or shards; text weights ignored).
 *
 * Ownership: a lisa_clip owns its layer array and weight bindings, and its own checkpoint handle
 * (the CLIP directory is separate from the LISA checkpoint); it borrows the backend.
 */
#ifndef LISA_MODELS_CLIP_H
#define LISA_MODELS_CLIP_H

#include "models/graph.h"
#include "models/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_clip_config {
    int32_t hidden;        /* 1024 */
    int32_t n_layers;      /* 24 in the checkpoint */
    int32_t n_heads;       /* 16 */
    int32_t intermediate;  /* 4096 */
    int32_t image_size;    /* 224 */
    int32_t patch;         /* 14 */
    float ln_eps;          /* 1e-5 */
    bool quick_gelu;       /* hidden_act == "quick_gelu" (else exact gelu) */
    int32_t select_layer;  /* LLaVA mm_vision_select_layer, -2 */
    int32_t n_run;         /* layers actually run: n_layers + 1 + select_layer */
} lisa_clip_config;

typedef struct lisa_clip_layer {
    T ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} lisa_clip_layer;

typedef struct lisa_clip {
    lisa_clip_config cfg;
    lisa_checkpoint *ck;   /* owned */
    lisa_weights weights;
    T patch_w, class_emb, pos_emb, pre_ln_w, pre_ln_b;
    lisa_clip_layer *layers; /* [cfg.n_run], owned */
} lisa_clip;

/* dir: the CLIP directory (config.json + weights). select_layer: LLaVA's mm_vision_select_layer. */
lisa_status lisa_clip_load(lisa_clip **out, lisa_backend *be, const char *dir, int32_t select_layer);
/* Same, with the storage dtype of weight matrices on device backends (BF16 above; F32 for exact
 * checks). The CPU backend ignores it. */
lisa_status lisa_clip_load_ex(lisa_clip **out, lisa_backend *be, const char *dir, int32_t select_layer,
                              lisa_dtype weight_dtype);
void lisa_clip_free(lisa_clip *m);

/* px [B, 3, S, S] -> patch features [B, P, hidden] (P = (S/patch)², CLS dropped).
 * Taps: "clip.embed" [B, P+1, hidden] (after pre_layrnorm), "clip.layer.%d", "clip_l23" (the result). */
T *lisa_clip_encode(lisa_graph *g, const lisa_clip *m, const T *px);

#ifdef __cplusplus
}
#endif

#endif
