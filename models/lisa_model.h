/* models/lisa_model.h — LISA glue (spec §1, §3, §4): prompt, tokenizer_image_token, CLIP features through
 * mm_projector spliced at the image placeholder, greedy generation with the KV cache, the [SEG]
 * hidden states of the positions that predicted [SEG] (§4.4), text_hidden_fcs, and SAM's text-
 * prompted mask decoding and postprocessing. The public API (include/lisa.h) is implemented here
 * for single requests; the batching engine (runtime/) reuses the stage functions.
 *
 * Ownership: a lisa_model owns its backend (when it created it), checkpoint, tokenizer, the three
 * sub-models, the glue weight bindings and its TP communicator; all live until lisa_model_free.
 */
#ifndef LISA_MODELS_LISA_MODEL_H
#define LISA_MODELS_LISA_MODEL_H

#include "lisa.h"
#include "loader/checkpoint.h"
#include "models/clip.h"
#include "models/graph.h"
#include "models/llama.h"
#include "models/sam.h"
#include "kernels/comm.h"
#include "models/preprocess.h"
#include "models/result.h"
#include "models/tokenizer.h"

#include <stdatomic.h>

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

/* Immutable once loaded (include/lisa.h "Threads"): every engine and single call runs on an
 * execution context of its own (lisa_backend_fork of `be`) and only reads the model. The one
 * mutable member is tp_engine (atomic). */
struct lisa_model {
    lisa_backend *be; /* the backend the weights were loaded through; runs use forks of it (TP: itself) */
    bool owns_be;
    lisa_dtype act_dtype; /* activations, KV cache and device weight matrices: F32 on the CPU backend;
                             BF16 on CUDA by default (spec §8), F32 there for exact checks */
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
    /* tensor parallelism (runtime/engine_tp.h): the TP group's host communicator (MPI: plans, and
     * the tensors on the CPU; owned; NULL = off); a follower (rank >= 1) holds only cfg, ck and its
     * LLM shard */
    lisa_comm *tp_comm;
    lisa_comm *tp_device; /* owned: NCCL over the same ranks on a CUDA backend (NULL on the CPU) */
    bool tp_follower;
    int32_t tp_group, tp_groups; /* this group's index and the number of groups (data parallelism) */
    atomic_bool tp_engine;       /* a TP leader has an engine (the followers serve one at a time) */
};

/* A parity/debug hook: graphs call it at the spec §8 tap points ("clip_l23", "mm_proj",
 * "prefill_logits_last", "seg_hidden", "pred_emb", "sam_img_emb", "lowres_logits", ...). */
typedef struct lisa_run_hooks {
    void (*tap)(void *ctx, const char *name, const T *t);
    void *ctx;
} lisa_run_hooks;

/* A request after its CPU work (prompt, tokenizer_image_token, bit-exact preprocessing): what the
 * GPU/CPU stages consume. Owns ids and both pixel tensors. */
typedef struct lisa_prepared {
    int32_t *ids;        /* prompt ids with the -200 placeholder */
    int32_t n_ids;
    int32_t placeholder; /* index of -200 in ids */
    int32_t L0;          /* expanded prompt length: n_ids - 1 + n_patches */
    int32_t max_new;     /* generation limit, clamped so that L0 + max_new <= max_position_embeddings */
    int32_t H0, W0, h_r, w_r;
    lisa_tensor clip_px; /* host F32 [1, 3, 224, 224] */
    lisa_tensor sam_px;  /* host F32 [1, 3, 1024, 1024] */
    bool keep_logits;
    double preprocess_ms;
} lisa_prepared;

/* Frees a model and everything it owns (lisa_model_free adds the TP leader's shutdown message). */
void lisa_model_destroy(lisa_model *m);

lisa_status lisa_model_load_with_backend(const char *path, const lisa_model_params *p, lisa_backend *be,
                                         lisa_model **out);
/* The default activation dtype of a backend: F32 on the CPU, BF16 on devices. */
lisa_dtype lisa_default_act_dtype(const lisa_backend *be);
/* lisa_model_load_with_backend with an explicit activation dtype (lisa_model.act_dtype): F32 on the
 * CPU backend; BF16 or F32 on a device (F32 keeps weights F32 too: the exact-check path). Engines
 * created on the model use it for their arenas, KV pool and buffers. */
lisa_status lisa_model_load_precision(const char *path, const lisa_model_params *p, lisa_backend *be,
                                      lisa_dtype act_dtype, lisa_model **out);

/* The CLIP directory lisa_model_load would use for model_dir without an explicit vision_tower
 * (config.json's vision_tower, then inside the model directory, then the Hugging Face cache; see
 * lisa.h), into out; LISA_ERR_NOT_FOUND when there is none. `lisa inspect` reports that one. */
lisa_status lisa_model_vision_tower_dir(const char *model_dir, char *out, size_t cap);

/* Request validation: lisa_check_query (include/lisa.h). */
/* chat.py's prompt for `query` (llava_v1 template) through tokenizer_image_token: *ids (malloc'd,
 * the caller frees) with the -200 placeholder at *placeholder, and the expanded length *L0 =
 * n_ids - 1 + n_patches; LISA_ERR_LIMIT when L0 does not fit max_position_embeddings.
 * placeholder and L0 may be NULL. Read-only on the model. */
lisa_status lisa_prompt_ids(const lisa_model *m, const char *query, int32_t **ids, int32_t *n_ids,
                            int32_t *placeholder, int32_t *L0);
/* CPU-side preparation of one request; thread-safe for a loaded model. */
lisa_status lisa_prepare(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                         const lisa_segment_params *p, lisa_prepared *out);
/* Same, with the pixel preprocessing (clip_px, sam_px, h_r, w_r) only when `pixels`: a request whose
 * image embeddings are cached needs its prompt ids alone (rgb may then be NULL; h and w are still
 * checked against the limits and kept as H0, W0). */
lisa_status lisa_prepare_ex(lisa_model *m, const uint8_t *rgb, int32_t h, int32_t w, const char *query,
                            const lisa_segment_params *p, bool pixels, lisa_prepared *out);
/* The pixel preprocessing of an already prepared request (out->H0 x out->W0 image `rgb`). */
lisa_status lisa_prepare_pixels(lisa_model *m, const uint8_t *rgb, lisa_prepared *out);
/* A hash of everything that turns the same pixels into different encoder inputs (CLIP and SAM
 * preprocessing parameters, input sizes): part of the image-cache key (runtime/image_cache.h). */
uint64_t lisa_model_preprocess_id(const lisa_model *m);
void lisa_prepared_free(lisa_prepared *p);

/* answer (generated ids without a final </s>) and chat.py's text_output, both with chat.py's cleanup */
lisa_status lisa_result_set_text(const lisa_model *m, lisa_result *res, const lisa_prepared *pr);

/* Graph pieces shared by the engine's stages:
 *   CLIP (layer -2, no CLS) + mm_projector: px [B, 3, S, S] -> [B, P, C]; tap "mm_proj".
 *   text_hidden_fcs: [SEG] states [N, C] -> prompt embeddings [N, out_dim]; taps. */
T *lisa_graph_vision(lisa_graph *g, const lisa_model *m, const T *clip_px);
T *lisa_graph_seg_embeddings(lisa_graph *g, const lisa_model *m, const T *seg_hidden);

/* Sizes res for n_seg masks of pr's image: masks, scores, and logits when pr->keep_logits. */
lisa_status lisa_masks_alloc(lisa_result *res, const lisa_prepared *pr, int32_t n_seg);
/* Stores masks p0 .. p0 + n - 1 of res from their logits [n, h, w] (mask = logit > 0) and scores. */
void lisa_masks_store(lisa_result *res, int32_t p0, int32_t n, const float *logits, const float *scores);

/* The mask stage of one finished request: text_hidden_fcs on its n_seg [SEG] states (host F32
 * [n_seg, C]), SAM's prompt encoder + mask decoder against its image embedding `emb` (backend
 * tensor [1, out, G, G]), postprocess to the original size; fills res's masks/scores/logits.
 * Runs on `be`, the caller's execution context (a lisa_backend_fork of m->be; never m->be itself,
 * which other threads may share). Each stage's arena is sized by a counting pass and freed at the
 * end (per-request lifetime). */
lisa_status lisa_masks_run(const lisa_model *m, lisa_backend *be, const lisa_prepared *pr, const T *emb,
                           const float *seg_hidden, int32_t n_seg, lisa_result *res, const lisa_run_hooks *hooks);

/* The mask stage of several finished requests at once (models/mask_decoder.c): all their [SEG]
 * prompts through text_hidden_fcs and SAM's mask decoder in steps of up to LISA_MASK_BATCH prompts,
 * the requests mixed, with memory allocated once; with `capture` (a backend that can capture:
 * lisa_backend_can_capture) each step size is captured on its second run and replayed after that.
 * Then each request's logits are postprocessed to its image size. Results as lisa_masks_run's, up
 * to the batch's GEMM rounding on CUDA. The CPU engine keeps lisa_masks_run (bit-identical to the
 * reference, batch-invariant). Owns its arenas, buffers and graphs; borrows model and backend. */
#define LISA_MASK_BATCH 8
typedef struct lisa_mask_decoder lisa_mask_decoder;
typedef struct lisa_mask_item {
    const lisa_prepared *pr;
    const T *emb;            /* backend [1, out, G, G]: the request's image embedding */
    const float *seg_hidden; /* host F32 [n_seg, hidden] */
    int32_t n_seg;
    lisa_result *res;        /* receives masks, scores, logits as lisa_masks_run fills them */
    lisa_status status;      /* out: this request's outcome */
} lisa_mask_item;
lisa_status lisa_mask_decoder_create(lisa_mask_decoder **out, lisa_model *m, lisa_backend *be, bool capture);
void lisa_mask_decoder_free(lisa_mask_decoder *d);
/* Fills every item (item->status says how each went); returns LISA_OK. */
lisa_status lisa_mask_decoder_run(lisa_mask_decoder *d, lisa_mask_item *items, int32_t n_items);
/* Steps run eagerly, captured, replayed (a capture does not run the step; its replay follows). */
void lisa_mask_decoder_stats(const lisa_mask_decoder *d, int64_t *eager, int64_t *captured, int64_t *replayed);

/* One request through a private single-request engine (see runtime/engine.h); hooks may be NULL. */
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
