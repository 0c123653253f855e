/* jobs/sam.h — `lisa sam`: SAM alone, prompted by text embeddings as LISA prompts it (the
 * predictor is models/sam_predict.h). The embeddings come from a safetensors file holding
 * `text_embeds` F32 [N, 1, D] or [N, D] (D = SAM's prompt dim, LISA's out_dim); the outcome is a
 * lisa_result with one mask per embedding (no answer, no tokens; timings preprocess_ms,
 * sam_encoder_ms, sam_decoder_ms, total_ms), written out with the public result functions.
 */
#ifndef LISA_JOBS_SAM_H
#define LISA_JOBS_SAM_H

#include "lisa.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One run's inputs; borrowed for the call. */
typedef struct lisa_sam_job {
    const char *model;          /* a LISA checkpoint directory (model.visual_model.*) or a segment-anything
                                   safetensors file (image_encoder.*, prompt_encoder.*, mask_decoder.*) */
    const char *text_embedding; /* safetensors file with `text_embeds` */
    const uint8_t *rgb;         /* the image [height, width, 3] */
    int32_t height, width;
    lisa_backend_kind backend;  /* CPU or AUTO (= CPU): the predictor has no CUDA path yet */
    int32_t n_threads;          /* 0: all cores */
} lisa_sam_job;

/* Runs SAM on the image with every embedding as a prompt; *out is the caller's (lisa_result_free). */
lisa_status lisa_sam_job_run(const lisa_sam_job *job, lisa_result **out);

#ifdef __cplusplus
}
#endif

#endif
