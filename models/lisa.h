/* models/lisa.h — LISA glue (spec §1, §3, §4): prompt, tokenizer_image_token, CLIP features through
 * mm_projector spliced at the image placeholder, greedy generation with the KV cache, the [SEG]
 * hidden states of the positions that predicted [SEG] (§4.4), text_hidden_fcs, and SAM's text-
 * prompted mask decoding and postprocessing. The public API (include/lisa.h) is implemented here
 * for single requests; the batching engine (runtime/) reuses the stage functions.
 *
 * Ownership: a lisa_model owns its backend (when it created it), checkpoint, tokenizer, the three
 * sub-models and the glue weight bindings; all live until lisa_model_free.
 */
#ifndef LISA_MODELS_LISA_H
#define LISA_MODELS_LISA_H

#include "lisa.h"
#include "loader/checkpoint.h"
#include "models/clip.h"
#include "models/graph.h"
#include "models/llama.h"
#include "models/sam.h"
#include "runtime/preprocess.h"
#include "runtime/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_model_config {
    lisa_llama_config llm;
    int32_t mm_hidden;       /* CLIP hidden size (mm_hidden_size) */
    int32_t select_layer;    /* mm_vision_select_layer (-2) */
    bool use_im_start_end;   /* mm_use_im_start_end */
    bool mlp2x_gelu;         /* mm_projector_type "mlp2x_gelu" (LLaVA-1.5) instead of one Linear */
    int32_t out_dim;         /* text_hidden_fcs output = SAM prompt dim (256) */
    char vision_tower[512];  /* config value, e.g. "openai/clip-vit-large-patch14" */
} lisa_model_config;

struct lisa_model {
    lisa_backend *be;
    bool owns_be;
    char *dir;
    char *clip_dir;
    lisa_model_config cfg;
    lisa_checkpoint *ck;
    lisa_tokenizer *tok;
    lisa_llama *llm;
    lisa_clip *clip;
    lisa_sam *sam;
    lisa_weights glue;
    T proj_w[2], proj_b[2]; /* mm_projector: Linear, or Linear-GELU-Linear */
    T fc1_w, fc1_b, fc2_w, fc2_b; /* text_hidden_fcs.0: Linear(C, C), ReLU, Linear(C, out_dim) */
    int32_t seg_id;
    int32_t n_patches;      /* CLIP patch tokens spliced per image (256) */
    lisa_clip_preprocess_params clip_pp;
    lisa_sam_preprocess_params sam_pp;
};

/* A parity/debug hook for lisa_model_run: graphs call it at the spec §8 tap points
 * ("clip_l23", "mm_proj", "prefill_logits_last", "seg_hidden", "pred_emb", "sam_img_emb",
 * "lowres_logits", ...). */
typedef struct lisa_run_hooks {
    void (*tap)(void *ctx, const char *name, const T *t);
    void *ctx;
} lisa_run_hooks;

lisa_status lisa_model_load_with_backend(const char *path, const lisa_model_params *p, lisa_backend *be,
                                         lisa_model **out);

/* Runs one request on decoded RGB pixels (see lisa_segment). hooks may be NULL. */
lisa_status lisa_model_run(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                           const lisa_segment_params *p, const lisa_run_hooks *hooks, lisa_result **out);

/* Teacher-forced evaluation of n_queries queries on one image (spec §9; LISA utils/dataset.py
 * ValDataset + model/LISA.py model_forward(inference=True), as train_ds.py validate() runs it):
 * each query's conversation has the assistant turn fixed to `answer` (NULL: "[SEG]."), i.e. the
 * sequence "{system} USER: <im_start><image><im_end>\n{query} ASSISTANT: {answer}</s>"; one
 * forward over the whole sequence, no generation; the [SEG] states are the final-normed states at
 * the positions before each [SEG] token (ids[1:] == seg, + 255 image offset); then
 * text_hidden_fcs and SAM, whose image encoder (like CLIP's preprocessing) runs once for all the
 * queries. out[n_queries] receives one result per query: answer = `answer`, tokens = the whole
 * forced sequence (placeholder removed), one mask per [SEG] of that sequence (normally one), and
 * the timings of the whole call. On failure every out[i] is NULL. */
lisa_status lisa_model_run_teacher_forced(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, int32_t n_queries,
                                          const char *const *queries, const char *answer, const lisa_segment_params *p,
                                          const lisa_run_hooks *hooks, lisa_result **out);

#ifdef __cplusplus
}
#endif

#endif
