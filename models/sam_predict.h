/* models/sam_predict.h — SAM alone, prompted by text embeddings as LISA prompts it (issue #4,
 * `lisa sam`): like segment_anything's SamPredictor, set_image runs the preprocessing and the image
 * encoder once, predict decodes any number of prompts against that embedding.
 *
 * Per prompt (spec §5.2–5.4, LISA model/LISA.py evaluate): sparse = the text embedding [1, dim],
 * dense = no_mask_embed, mask decoder with multimask_output=False (mask 0), postprocess to the
 * original size, mask = logit > 0. The checkpoint may be a LISA directory (model.visual_model.*) or
 * a stock segment-anything safetensors file (image_encoder.*, ...); everything is inferred from the
 * tensor shapes.
 *
 * Ownership: a lisa_sam_predictor owns its CPU backend, checkpoint, SAM weights and the current
 * image embedding; all live until lisa_sam_predictor_free. A lisa_sam_masks owns its arrays until
 * lisa_sam_masks_free.
 */
#ifndef LISA_MODELS_SAM_PREDICT_H
#define LISA_MODELS_SAM_PREDICT_H

#include "lisa.h"
#include "models/sam.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_sam_predictor lisa_sam_predictor;

typedef struct lisa_sam_masks {
    int32_t n, h, w; /* n prompts, original image size */
    uint8_t *masks;  /* [n, h, w] 0/1 */
    float *scores;   /* [n] IoU prediction of mask 0 */
    float *logits;   /* [n, h, w] or NULL (keep_logits) */
} lisa_sam_masks;

typedef struct lisa_sam_timings {
    double preprocess_ms, encoder_ms;
} lisa_sam_timings;

/* path: a LISA checkpoint directory, a safetensors file or a shard index. n_threads 0 = all cores. */
lisa_status lisa_sam_predictor_load(lisa_sam_predictor **out, const char *path, int32_t n_threads);
void lisa_sam_predictor_free(lisa_sam_predictor *p);

/* The loaded SAM (shapes: enc.*, dec.dim = the prompt dimension). Lives with the predictor. */
const lisa_sam *lisa_sam_predictor_model(const lisa_sam_predictor *p);

/* Preprocesses rgb [h, w, 3] (borrowed for the call) and encodes it; t may be NULL. */
lisa_status lisa_sam_predictor_set_image(lisa_sam_predictor *p, const uint8_t *rgb, int32_t h, int32_t w,
                                         lisa_sam_timings *t);

/* Decodes n prompts (F32 [n, dim], dim = lisa_sam_predictor_model(p)->dec.dim) against the current
 * image. LISA_ERR_INVALID_ARG without a set_image first. */
lisa_status lisa_sam_predictor_predict(lisa_sam_masks *out, lisa_sam_predictor *p, const float *prompts, int32_t n,
                                       bool keep_logits);

void lisa_sam_masks_free(lisa_sam_masks *m);

#ifdef __cplusplus
}
#endif

#endif
