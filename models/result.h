/* models/result.h — the lisa_result handle (include/lisa.h): the outcome of one request, filled by
 * the networks (models/lisa_model.c) and the engine (runtime/engine.c), read through the public
 * accessors, written out as JSON (the form `lisa segment --json`, `lisa serve` and `lisa annotate`
 * share) and as mask/overlay PNGs. Everything about the handle is models/result.c.
 *
 * The JSON form:
 *   {"answer": "Sure, [SEG] .", "n_tokens": 5,
 *    "tokens": [...],                       (LISA_JSON_TOKENS)
 *    "text_output": "...",                  (LISA_JSON_TEXT_OUTPUT; chat.py's printed string)
 *    "masks": [{"index": 0, "rle": {"size": [h, w], "counts": "..."}, "bbox": [x, y, w, h],
 *               "area": n, "score": s,
 *               "png": "<base64>"}],        (LISA_JSON_MASK_PNG; the 0/255 gray PNG)
 *    "timings": {"preprocess_ms": ..., ..., "n_prompt_tokens": L0, "n_generated": n},  (LISA_JSON_TIMINGS)
 *    "id": 7}                               (LISA_JSON_ID)
 * Masks are COCO RLE as pycocotools 2.0 writes them (mask.encode, toBbox, area; core/rle.h).
 * A failed result is {"error": {"status": "LISA_ERR_...", "message": "..."}}.
 */
#ifndef LISA_MODELS_RESULT_H
#define LISA_MODELS_RESULT_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The outcome of one request. Owns every array (malloc'd; lisa_result_free). */
struct lisa_result {
    lisa_status status;  /* LISA_OK, or why the request failed */
    char error[1024];
    uint64_t id, user_data;
    char *answer, *text_output;
    int32_t n_tokens;
    int32_t *tokens;
    int32_t n_masks, h, w;
    uint8_t *masks;  /* [n_masks, h, w] */
    float *logits;   /* [n_masks, h, w] or NULL */
    float *scores;   /* [n_masks] */
    lisa_timings t;
};

/* A zeroed result (NULL when out of memory). */
lisa_result *lisa_result_new(void);

/* Builds the JSON object above into *out (caller: cJSON_Delete). flags: LISA_JSON_* of lisa.h. */
lisa_status lisa_result_json(cJSON **out, const lisa_result *r, uint32_t flags);

/* Adds {"rle": {"size": [h, w], "counts": "..."}, "bbox": [x, y, w, h], "area": n} to obj for mask
 * [h, w] (row-major, nonzero = foreground). */
lisa_status lisa_json_add_rle(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w);

/* Adds "timings": {preprocess_ms, clip_ms, prefill_ms, decode_ms, sam_encoder_ms, sam_decoder_ms,
 * postprocess_ms, total_ms, n_prompt_tokens, n_generated} to obj (also used by `lisa annotate`). */
lisa_status lisa_timings_json_add(cJSON *obj, const lisa_timings *t);

/* Adds "png": base64 of the mask as a 0/255 gray PNG. */
lisa_status lisa_json_add_mask_png(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w);

#ifdef __cplusplus
}
#endif

#endif
