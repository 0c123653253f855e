/* runtime/result_json.h — the JSON forms of a result's parts, shared by `lisa segment --json`,
 * `lisa sam --json` and the records of `lisa annotate`: a mask as COCO RLE (pycocotools'
 * `mask.encode` + `toBbox` + `area`, runtime/rle.h) and the per-stage timings. */
#ifndef LISA_RUNTIME_RESULT_JSON_H
#define LISA_RUNTIME_RESULT_JSON_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Adds "rle": {"size": [h, w], "counts": "<compressed string>"}, "bbox": [x, y, w, h] and "area"
 * to obj, for mask [h, w] (row-major, nonzero = foreground). */
lisa_status lisa_rle_json_add(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w);

/* Adds "timings": {preprocess_ms, clip_ms, prefill_ms, decode_ms, sam_encoder_ms, sam_decoder_ms,
 * postprocess_ms, total_ms, n_prompt_tokens, n_generated} to obj. */
lisa_status lisa_timings_json_add(cJSON *obj, const lisa_timings *t);

#ifdef __cplusplus
}
#endif

#endif
