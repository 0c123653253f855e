/* jobs/flops.h — the FLOP model of one LISA request, from the model's dimensions (docs/architecture.md
 * "Performance model"; `lisa bench` divides it by time for achieved TFLOP/s and MFU).
 *
 * Convention: 2 FLOP per multiply-add of every matrix product and convolution; norms, softmax,
 * activations, adds, RoPE, resizes are not counted. Work the engine skips is not counted either:
 * CLIP's last layer (LLaVA reads hidden_states[-2]), logits of all but the last prompt row, the
 * masked half of causal attention, and the prompt rows of a prefix shared in the KV cache. With
 * B batch, T tokens, C hidden, E SAM embed, G = 64 grid, N = G^2:
 *
 *   SAM encoder   patch 2·N·E·3·16² + per block [2·T·E·3E + 2·T·E·E (qkv, proj; T = N padded to whole
 *                 windows for windowed blocks) + 4·T·L·E (QKᵀ, AV; L = w² or N) + 2·T·2s·E (rel-pos;
 *                 s = w or G) + 2·N·E·4E·2 (MLP)] + neck 2·N·E·O + 2·N·O·O·9
 *   CLIP          patch 2·P·H·3·p² + per run layer [2·T·4H² + 2·T·2H·I + 4·T²·H], T = P + 1
 *   projector     2·P·H·C (+ 2·P·C·C per further layer of mlpNx_gelu)
 *   LLaMA row at position p (0-based): linear 2·(C·q + 2·C·kv + q·C + 3·C·I) per layer (q = NH·HD,
 *                 kv = NKV·HD) + attention 4·(p+1)·q per layer; + 2·C·V for a row whose logits are
 *                 computed (the last prompt row, every decode row)
 *   prefill       rows n_cached .. n_prompt-1; decode: n_generated - 1 steps (the first token comes
 *                 from the prefill), each one row
 *   masks         per [SEG]: text_hidden_fcs 2·(C·C + C·O) + SAM's mask decoder (two-way transformer
 *                 over 1 + n_mask_tokens + 1 tokens and N image tokens, upscaling, hypernetworks,
 *                 IoU head; see lisa_flops_mask_decoder)
 *
 * Checked against the reference modules (tests/golden/gen_flops.py counts every aten matmul and
 * convolution of segment_anything / transformers 4.31 on LISA-7B dims; tests/test_bench.c):
 * SAM ViT-H 5.961 TFLOP, CLIP ViT-L/14 (23 layers) 0.155 TFLOP, LLaMA-7B prefill of 330 rows
 * 4.303 TFLOP (causal; HF computes the full square: 4.331), decode 13.4 GFLOP per row, mask
 * decoder 3.6 GFLOP per [SEG]. docs/architecture.md's table says ~6, ~0.15 and ~4.4 TFLOP: its prefill
 * figure is 2 × all 6.74 B parameters × 330, i.e. it counts the embedding table (a lookup) and
 * lm_head on every row (the engine computes one row of logits).
 */
#ifndef LISA_JOBS_FLOPS_H
#define LISA_JOBS_FLOPS_H

#include "lisa.h"
#include "models/manifest.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_model lisa_model;

typedef struct lisa_flop_dims {
    lisa_llm_dims llm;
    lisa_clip_dims clip;
    int32_t clip_layers; /* CLIP layers that run: n_layers + 1 + select_layer (23 of 24) */
    lisa_sam_dims sam;
} lisa_flop_dims;

/* One request's FLOPs by stage. */
typedef struct lisa_flops {
    double sam_encoder, clip, projector, prefill, decode, masks, total;
} lisa_flops;

double lisa_flops_sam_encoder(const lisa_sam_dims *s);
double lisa_flops_clip(const lisa_clip_dims *c, int32_t layers);
/* LLaMA rows at positions p0 .. p0+rows-1, each attending to positions 0..p; logits for n_logits
 * of them. */
double lisa_flops_llama_rows(const lisa_llm_dims *d, int64_t p0, int64_t rows, int64_t n_logits);
/* SAM's mask decoder for one text prompt (one sparse token); text_hidden_fcs not included. */
double lisa_flops_mask_decoder(const lisa_sam_dims *s);

/* A request with an expanded prompt of n_prompt positions (image patches included) of which the
 * first n_cached came from the shared KV prefix, n_generated tokens, n_masks [SEG] masks. */
void lisa_flops_request(lisa_flops *f, const lisa_flop_dims *d, int64_t n_prompt, int64_t n_cached, int64_t n_generated,
                        int64_t n_masks);

/* The dims of a loaded model (config.json, SAM inferred from its checkpoint, CLIP's config). */
lisa_status lisa_flop_dims_from_model(lisa_flop_dims *d, const lisa_model *m);

#ifdef __cplusplus
}
#endif

#endif
