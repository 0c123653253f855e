/* models/manifest.h — the tensors a model directory must hold, computed from its config.json.
 *
 * A manifest lists every tensor name with its shape, the model part it belongs to, whether it is
 * a parameter (rotary `inv_freq` is a buffer) and whether inference needs it: the rows of the
 * networks' tensor tables (models/tensors.h), expanded with the dims of
 *  - LISA (LLaVA-LLaMA + SAM, spec §7.3): the LLaMA/LLaVA fields of config.json (hidden_size,
 *    intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size,
 *    mm_hidden_size, mm_projector_type (absent = "linear"; "mlpNx_gelu" = model.mm_projector.{0,2,..}),
 *    out_dim) plus SAM under model.visual_model., whose dims are read off the checkpoint's SAM
 *    tensors (lisa_sam_dims_infer), or are ViT-H's when no checkpoint is given;
 *  - a plain LLaMA (model_type "llama" without LISA fields): the LLM part only;
 *  - a CLIP directory (openai/clip-vit-large-patch14 layout): `vision_model.*` from vision_config
 *    (text-model keys are allowed, not required).
 * Optional tensors (the tables' OPT rows) may be absent and are shape-checked when present:
 * `rotary_emb.inv_freq`, SAM point/not-a-point embeddings, mask downscaling, IoU head, CLIP
 * post_layernorm and position_ids.
 *
 * Ownership: a lisa_manifest owns its entry array and the entry names.
 */
#ifndef LISA_MODELS_MANIFEST_H
#define LISA_MODELS_MANIFEST_H

#include "loader/checkpoint.h"
#include "models/tensors.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lisa_model_family {
    LISA_FAMILY_LISA = 0,  /* LLaVA-LLaMA + SAM */
    LISA_FAMILY_LLAMA = 1, /* a plain LLaMA causal LM */
    LISA_FAMILY_CLIP = 2,  /* a CLIP (vision) tower */
} lisa_model_family;

const char *lisa_mf_part_name(lisa_mf_part p);

typedef struct lisa_manifest_entry {
    char *name;          /* owned */
    int32_t n_dims;
    int64_t shape[LISA_MAX_DIMS];
    lisa_mf_part part;
    bool optional;       /* unused by inference: may be absent */
    bool param;          /* a parameter (false: a buffer such as inv_freq or position_ids) */
    bool any_dtype;      /* integer allowed (position_ids); otherwise F32/F16/BF16 */
    lisa_dtype released; /* the dtype the released checkpoint stores (spec §7.2, inferred) */
} lisa_manifest_entry;

typedef struct lisa_manifest {
    lisa_model_family family;
    lisa_llm_dims llm;
    lisa_sam_dims sam;
    lisa_clip_dims clip;
    lisa_manifest_entry *entries;
    int64_t n_entries, cap_entries;
} lisa_manifest;

/* Builds the manifest from a parsed config.json (`config_path` names it in errors). `ck` may be
 * NULL (SAM dims are then ViT-H's). LISA_ERR_FORMAT for a missing/mistyped config field,
 * LISA_ERR_UNSUPPORTED for an unknown mm_projector_type. */
lisa_status lisa_manifest_build(lisa_manifest *m, const cJSON *config, const char *config_path,
                                const lisa_checkpoint *ck);
/* Reads DIR/config.json, then as above. */
lisa_status lisa_manifest_from_dir(lisa_manifest *m, const char *dir, const lisa_checkpoint *ck);
void lisa_manifest_free(lisa_manifest *m);

const char *lisa_model_family_name(lisa_model_family f);

/* Sum of elements of the (param-only when params_only) entries of a part (LISA_PART_COUNT: all). */
uint64_t lisa_manifest_numel(const lisa_manifest *m, lisa_mf_part part, bool params_only);

/* Names that may be present without being in the manifest (patterns as lisa_name_matches). */
int32_t lisa_manifest_allowed(const lisa_manifest *m, const char *const **patterns);

typedef struct lisa_manifest_report {
    int64_t n_missing, n_shape, n_dtype, n_unexpected;
    char *text; /* one line per problem ("missing <name> expected [..]", ...); owned, free() */
} lisa_manifest_report;

/* Checks every manifest entry against the checkpoint and every checkpoint tensor against the
 * manifest. All problems are collected; returns LISA_OK when there are none, else
 * LISA_ERR_SHAPE with lisa_last_error() listing them (the first 40 lines; `report` (may be NULL)
 * receives all of them). */
lisa_status lisa_manifest_check(const lisa_manifest *m, const lisa_checkpoint *ck, lisa_manifest_report *report);
void lisa_manifest_report_free(lisa_manifest_report *r);

#ifdef __cplusplus
}
#endif

#endif
