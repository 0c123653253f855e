/* models/tensors.h — one tensor-name table per network, walked by every consumer.
 *
 * Each network's tensors are listed once, in an X-macro table, in the state_dict order of the
 * reference modules (the order torch.save writes them):
 *   models/clip_tensors.def   CLIPVisionModel (`vision_model.*`)
 *   models/llama_tensors.def  LlamaForCausalLM (`model.embed_tokens`, `model.layers.N.*`, `model.norm`,
 *                             `lm_head`)
 *   models/sam_tensors.def    segment-anything's Sam (`image_encoder.*`, `prompt_encoder.*`,
 *                             `mask_decoder.*`; under `model.visual_model.` in LISA checkpoints)
 *   models/lisa_tensors.def   LISA's own heads (`model.mm_projector*`, `model.text_hidden_fcs.0.*`)
 * A row gives the name pattern (with the layer index), the shape as formulas over the config dims,
 * the stored dtype (what the released checkpoints and `lisa make-tiny` store), flags (optional, a
 * buffer, integer allowed, kept F32 on devices), make-tiny's initial distribution, the tensor-
 * parallel split (LLaMA) and the model struct member it binds to (`M(member)`, or `NONE` for the
 * tensors inference never reads).
 *
 * A walker per network expands its table in order and calls one visitor per tensor with a
 * lisa_tensor_spec. The three consumers are visitors:
 *   - the weight loaders (models/clip.c, llama.c, sam_encoder.c, lisa_model.c) bind spec->slot;
 *   - the manifest (models/manifest.c: `lisa inspect`, the missing-tensor report) lists them;
 *   - make-tiny (models/tiny.c) draws them and writes them in this order.
 * So a name, shape or dtype is written once, and the three cannot disagree.
 *
 * SAM's dims are not in any config file (segment-anything derives them from builder arguments):
 * lisa_sam_dims_infer reads them off a checkpoint's SAM tensors; that model knowledge lives here,
 * next to the table it must agree with.
 */
#ifndef LISA_MODELS_TENSORS_H
#define LISA_MODELS_TENSORS_H

#include "core/tensor.h"
#include "loader/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model part a tensor belongs to (parameter counts per part in `lisa inspect`). */
typedef enum lisa_mf_part {
    LISA_PART_LLM = 0,       /* embed_tokens, layers, norm, lm_head */
    LISA_PART_PROJECTOR = 1, /* mm_projector */
    LISA_PART_FCS = 2,       /* text_hidden_fcs */
    LISA_PART_SAM = 3,       /* model.visual_model.* */
    LISA_PART_CLIP = 4,      /* vision_model.* */
    LISA_PART_COUNT
} lisa_mf_part;

/* Row flags. */
enum {
    LISA_TF_OPT = 1,   /* inference never needs it: may be absent (shape-checked when present) */
    LISA_TF_BUF = 2,   /* a buffer, not a parameter (rotary inv_freq, position_ids) */
    LISA_TF_ANYDT = 4, /* integer dtypes allowed (position_ids); otherwise F32/F16/BF16 */
    LISA_TF_ACT = 8,   /* used as an activation (added, copied, concatenated): F32 on device backends */
};

/* make-tiny's initial values (models/tiny.h; gen_golden.py's init_module_). `arg` is the row's
 * last column. */
typedef enum lisa_tinit {
    LISA_INIT_NORMAL = 0, /* N(0, arg²) */
    LISA_INIT_LINEAR,     /* Linear weight [out, in]: N(0, arg² / in) */
    LISA_INIT_RESID,      /* o_proj / down_proj: LINEAR with make-tiny's residual gain (arg unused) */
    LISA_INIT_BIAS,       /* N(0, 0.05²) */
    LISA_INIT_NORM,       /* norm gain: 1 + N(0, 0.1²) */
    LISA_INIT_CONV,       /* Conv2d [out, in, kh, kw]: N(0, 1 / (in·kh·kw)) */
    LISA_INIT_CONVT,      /* ConvTranspose2d [in, out, 2, 2]: N(0, 1 / in) */
    LISA_INIT_ROTARY,     /* inv_freq[j] = 1 / 10000^(2j / (2·len)) (transformers 4.31's buffer) */
    LISA_INIT_ARANGE,     /* 0, 1, 2, ... (position_ids) */
} lisa_tinit;

/* How tensor parallelism splits a LLaMA weight (models/tp.h): rows (dim 0) or columns (dim 1) of the
 * rank's query heads, KV heads, intermediate slice or vocabulary slice. */
typedef enum lisa_tp_split {
    LISA_TP_NONE = 0,
    LISA_TP_ROWS_Q,
    LISA_TP_ROWS_KV,
    LISA_TP_COLS_Q,
    LISA_TP_ROWS_INTER,
    LISA_TP_COLS_INTER,
    LISA_TP_ROWS_VOCAB,
} lisa_tp_split;

typedef struct lisa_tensor_spec {
    const char *name; /* full name (prefix + pattern with the index); valid during the visit only */
    int32_t n_dims;
    int64_t shape[LISA_MAX_DIMS];
    lisa_dtype dtype; /* stored dtype: as the released checkpoints and make-tiny store it */
    uint32_t flags;   /* LISA_TF_* */
    lisa_mf_part part;
    lisa_tinit init;
    double init_arg;
    lisa_tp_split tp;
    lisa_tensor *slot; /* the model member it binds to; NULL: not read by inference, or no model given */
} lisa_tensor_spec;

/* A visitor; a non-OK status stops the walk and is returned by the walker. */
typedef lisa_status (*lisa_tensor_visit)(void *ctx, const lisa_tensor_spec *s);

/* ---- dims (from config.json, or read off SAM's tensors) --------------------------------------- */

typedef struct lisa_llm_dims {
    int64_t hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab;
    int64_t mm_hidden, out_dim;
    int32_t projector_layers; /* 0 = identity, 1 = linear, N = mlpNx_gelu */
} lisa_llm_dims;

typedef struct lisa_sam_dims {
    int64_t img, patch, grid, embed, depth, head_dim, mlp, out_chans, window;
    uint64_t global_mask[4]; /* bit b of word b/64: block b uses global attention (depth <= 256) */
    int64_t dec_dim, dec_depth, dec_mlp, dec_downsample, n_mask_tokens, iou_hidden, mask_in_chans;
    bool inferred;           /* from the checkpoint (else ViT-H defaults) */
} lisa_sam_dims;

#define LISA_SAM_MAX_DEPTH 256

typedef struct lisa_clip_dims {
    int64_t hidden, intermediate, n_layers, image, patch;
} lisa_clip_dims;

/* SAM ViT-H (spec §6, build_sam_vit_h): the dims when no checkpoint says otherwise. */
void lisa_sam_dims_vit_h(lisa_sam_dims *s);
/* SAM's dims read off the tensors named `prefix`+"image_encoder.*" etc. of ck (patch embed, pos
 * embed, block count, rel-pos lengths (which also mark the global-attention blocks), neck, decoder
 * tokens and layers); ViT-H values for whatever cannot be read (inferred = false when ck holds no
 * tensor under `prefix`). ck may be NULL. */
void lisa_sam_dims_infer(lisa_sam_dims *s, const lisa_checkpoint *ck, const char *prefix);
static inline bool lisa_sam_dims_global(const lisa_sam_dims *s, int64_t b) {
    return b >= 0 && b < LISA_SAM_MAX_DEPTH && ((s->global_mask[b / 64] >> (b % 64)) & 1);
}

/* ---- walkers (models/<net>_tensors.c) ----------------------------------------------------------------
 * `m` (may be NULL) is the model whose members the specs' slots point at. */

struct lisa_clip;
struct lisa_llama;
struct lisa_sam;
struct lisa_model;

/* CLIPVisionModel; with a model, only its cfg.n_run layers get slots (LLaVA never runs the rest). */
lisa_status lisa_clip_tensors(const lisa_clip_dims *d, struct lisa_clip *m, lisa_tensor_visit fn, void *ctx);
/* LLaMA: the body (embed_tokens, layers, norm) and the head (lm_head), walked apart because LISA's
 * state_dict puts its own heads and SAM between them. */
lisa_status lisa_llama_tensors_body(const lisa_llm_dims *d, struct lisa_llama *m, lisa_tensor_visit fn, void *ctx);
lisa_status lisa_llama_tensors_head(const lisa_llm_dims *d, struct lisa_llama *m, lisa_tensor_visit fn, void *ctx);
/* SAM under `prefix` ("", "model.visual_model.", ...). */
lisa_status lisa_sam_tensors(const lisa_sam_dims *d, const char *prefix, struct lisa_sam *m, lisa_tensor_visit fn,
                             void *ctx);
/* LISA's mm_projector (d->projector_layers) and text_hidden_fcs. */
lisa_status lisa_glue_tensors_projector(const lisa_llm_dims *d, struct lisa_model *m, lisa_tensor_visit fn, void *ctx);
lisa_status lisa_glue_tensors_fcs(const lisa_llm_dims *d, struct lisa_model *m, lisa_tensor_visit fn, void *ctx);
/* A whole LISA checkpoint (LISAForCausalLM.state_dict() order, no model): LLaMA body, mm_projector,
 * SAM under "model.visual_model.", text_hidden_fcs, lm_head. */
lisa_status lisa_lisa_tensors(const lisa_llm_dims *llm, const lisa_sam_dims *sam, lisa_tensor_visit fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
