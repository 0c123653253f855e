/* runtime/result_json.c — see result_json.h. */
#include "runtime/result_json.h"

#include "runtime/error.h"
#include "runtime/rle.h"

#include <stdlib.h>

lisa_status lisa_rle_json_add(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w) {
    lisa_rle r;
    LISA_TRY(lisa_rle_encode(&r, mask, h, w));
    char *counts = lisa_rle_to_string(&r);
    if (!counts) {
        lisa_rle_free(&r);
        return LISA_ERR_OOM; /* message recorded by lisa_rle_to_string */
    }
    double bb[4];
    lisa_rle_bbox(bb, &r);
    const double area = (double)lisa_rle_area(&r);
    lisa_rle_free(&r);
    cJSON *rle = cJSON_AddObjectToObject(obj, "rle");
    cJSON *size = rle ? cJSON_AddArrayToObject(rle, "size") : NULL;
    cJSON *bbox = cJSON_AddArrayToObject(obj, "bbox");
    bool ok = size && bbox && cJSON_AddItemToArray(size, cJSON_CreateNumber(h)) &&
              cJSON_AddItemToArray(size, cJSON_CreateNumber(w)) && cJSON_AddStringToObject(rle, "counts", counts);
    for (int k = 0; k < 4 && ok; k++)
        ok = cJSON_AddItemToArray(bbox, cJSON_CreateNumber(bb[k]));
    ok = ok && cJSON_AddNumberToObject(obj, "area", area);
    free(counts);
    return ok ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory building the RLE JSON");
}

lisa_status lisa_timings_json_add(cJSON *obj, const lisa_timings *t) {
    cJSON *tj = cJSON_AddObjectToObject(obj, "timings");
    const struct {
        const char *k;
        double v;
    } f[] = {{"preprocess_ms", t->preprocess_ms},     {"clip_ms", t->clip_ms},
             {"prefill_ms", t->prefill_ms},           {"decode_ms", t->decode_ms},
             {"sam_encoder_ms", t->sam_encoder_ms},   {"sam_decoder_ms", t->sam_decoder_ms},
             {"postprocess_ms", t->postprocess_ms},   {"total_ms", t->total_ms},
             {"n_prompt_tokens", t->n_prompt_tokens}, {"n_generated", t->n_generated}};
    bool ok = tj != NULL;
    for (size_t i = 0; i < sizeof f / sizeof f[0] && ok; i++)
        ok = cJSON_AddNumberToObject(tj, f[i].k, f[i].v) != NULL;
    return ok ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory building the timings JSON");
}
