/* models/tiny.h — random-weight LISA checkpoints in the published layouts (`lisa make-tiny`).
 *
 * lisa_make_tiny writes a directory laid out like xinlai/LISA-7B-v1 (spec docs/inference.md §7):
 *   config.json, generation_config.json        (every LISA/LLaVA field, tiny dims)
 *   tokenizer.model                             (the real LLaMA vocabulary, copied)
 *   added_tokens.json, special_tokens_map.json, tokenizer_config.json  (the merge script's forms)
 *   model.safetensors, or model-0000k-of-0000n.safetensors + model.safetensors.index.json when the
 *     tensors exceed max_shard_bytes (transformers' shard_checkpoint split, state_dict order)
 *       LLM + mm_projector BF16; SAM (the unused prompt-encoder point/mask tensors and the IoU head
 *       included) + text_hidden_fcs F32; rotary_emb.inv_freq BF16 as transformers 4.31 saves it
 *   clip-vit-large-patch14/                     (the openai/clip-vit-large-patch14 layout:
 *     config.json with text_config + vision_config, the real preprocessor_config.json,
 *     model.safetensors with vision_model.* F32)
 * With the default dimensions every JSON file and tokenizer.model are byte-identical to
 * tests/data/tiny-lisa and tests/data/tiny-clip (written by tests/golden/gen_golden.py).
 *
 * Weights: seeded, reproducible (the same bytes for a seed on every run and machine: a private
 * splitmix64 stream per tensor name, normals from integer sums, no libm in the draws). Scales follow
 * gen_golden.py: Linear/conv N(0, gain²/fan_in), biases N(0, 0.05²), norm gains 1 + N(0, 0.1²), LLM
 * token embeddings N(0, 1), SAM pos/rel-pos N(0, 0.3²), hypernetwork output layers gain 12 (mask
 * logits O(1..10)).
 *
 * Answer shaping (tests/golden/README.md "Shaping generation", made query- and image-independent):
 * o_proj/down_proj are scaled down so each final-normed state is dominated by the current token's
 * embedding e(t) = g ⊙ emb[t] / rms(emb[t]). For the chain  ":" (the prompt's last token) ->
 * answer tokens -> </s>, the lm_head rows of the planned successors get the smallest change (least
 * squares, exact) that makes the planned successor's logit TARGET and the other planned rows' logits
 * 0 at each e(cur); every other row stays N(0, 0.02²). Greedy decoding then answers the planned text
 * for any image and query. A token followed by two different tokens in the chain cannot be shaped
 * this way (LISA_ERR_INVALID_ARG names it).
 */
#ifndef LISA_MODELS_TINY_H
#define LISA_MODELS_TINY_H

#include "lisa.h"
#include "loader/checkpoint.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_TINY_MAX_GLOBAL     16
#define LISA_TINY_MAX_ANSWER     256 /* planned answer tokens */
#define LISA_TINY_DEFAULT_ANSWER "Sure, [SEG]."

typedef struct lisa_tiny_params {
    uint64_t seed;
    /* LLaMA */
    int32_t llm_hidden, llm_layers, llm_heads, llm_kv_heads, llm_inter, llm_max_pos;
    /* CLIP vision tower (image 224, patch 14 as ViT-L/14) */
    int32_t clip_hidden, clip_layers, clip_heads, clip_mlp;
    /* SAM image encoder (image 1024, patch 16, mlp 4*embed) */
    int32_t sam_embed, sam_depth, sam_heads, sam_window;
    int32_t sam_global[LISA_TINY_MAX_GLOBAL]; /* global-attention block indices */
    int32_t n_sam_global;
    /* SAM prompt dim = LISA out_dim = the encoder's out_chans; multiple of 16 (8 decoder heads) */
    int32_t out_dim;
    const char *answer;      /* planned greedy answer; "" = pure random lm_head */
    const char *sp_model;    /* tokenizer.model to copy; NULL = LISA_DEFAULT_SP_MODEL (build tree) */
    int64_t max_shard_bytes; /* shard when the tensors exceed this (transformers' rule) */
    bool write_clip;         /* also write <out>/clip-vit-large-patch14 */
    lisa_ckpt_format format; /* weights as safetensors (default) or torch.save .bin, as published */
    /* Shapes only (for benchmarks and real-dims checks): each checkpoint is one safetensors file
     * whose header lists every tensor plus its [mean, std] (metadata "lisa_synthetic_init") and
     * whose data is a hole; the loader draws the values on the backend (models/weights.h), so a
     * LISA-7B-sized model is written instantly and takes no disk. No answer shaping (use
     * lisa_tiny_steer on the loaded model); o_proj/down_proj get a gain of 0.35·sqrt(2/llm_layers)
     * (0.35 at 2 layers, as the drawn models) so that the residual stream stays dominated by the
     * token embedding at any depth, which is what lisa_tiny_steer relies on. */
    bool synthetic;
} lisa_tiny_params;

/* The dims of tests/data/tiny-lisa: LLM 32/2 layers/4 heads/4 kv/64, CLIP 32/3/2/64, SAM 16/4/2
 * window 14 global (1, 3), out_dim 32; seed 0; answer "Sure, [SEG]."; shards of 3,000,000 bytes
 * (2 shards, as the golden model); write_clip true. */
lisa_tiny_params lisa_tiny_default_params(void);

/* What lisa_make_tiny wrote. */
typedef struct lisa_tiny_report {
    int32_t n_tensors;   /* in the LISA checkpoint */
    int64_t total_bytes; /* their data bytes (the index's total_size) */
    int32_t n_shards;
    int32_t vocab;    /* vocab_size: tokenizer pieces + the 4 added tokens */
    int32_t n_answer; /* planned answer ids (</s> included); 0 without shaping */
    int32_t answer_ids[LISA_TINY_MAX_ANSWER + 1];
    float min_margin; /* smallest top-1 minus top-2 logit at the shaped states (BF16 weights) */
} lisa_tiny_report;

/* Writes the checkpoint directory `out_dir` (which must not exist; an empty directory is replaced).
 * Everything is built in "<out_dir>.tmp-XXXXXX" and renamed at the end, so a failure leaves
 * nothing behind. report may be NULL. */
lisa_status lisa_make_tiny(const lisa_tiny_params *p, const char *out_dir, lisa_tiny_report *report);

/* SAM alone (stock segment-anything names: image_encoder.*, prompt_encoder.*, mask_decoder.*) with
 * p's SAM dims and seed, as one F32 safetensors file at `path` (written atomically; synthetic:
 * shapes only, see above). For benches and `lisa sam` tests. */
lisa_status lisa_tiny_write_sam(const lisa_tiny_params *p, const char *path);

/* Steers a loaded model (any backend) so that greedy decoding answers `answer` and then </s> for any
 * image and query, as make-tiny's shaping does for drawn checkpoints: for each planned step
 * cur -> next (the prompt's last token ":", then the answer's tokens; each may appear once), the
 * lm_head row of `next` becomes TARGET·e/|e|² with e = norm.weight ⊙ emb[cur] / rms(emb[cur]), the
 * final-normed state the step sees when the residual stream is dominated by the token embedding
 * (true for make-tiny models, synthetic ones included). Rows are read back from and written to the
 * backend. *margin (may be NULL) receives the smallest gap between the planned logit and the other
 * planned rows' logits at the expected states. *n_ids (may be NULL) receives the planned ids
 * (</s> included) in ids[0..LISA_TINY_MAX_ANSWER]. Meant for synthetic models, whose random
 * lm_head would otherwise answer noise (no [SEG], so no mask stage to measure or check). */
lisa_status lisa_tiny_steer(lisa_model *m, const char *answer, float *margin, int32_t *ids, int32_t *n_ids);

#ifdef __cplusplus
}
#endif

#endif
