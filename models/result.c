/* models/result.c — the lisa_result handle: creation, freeing, the public accessors, the JSON
 * form and the mask/overlay PNGs (see models/result.h). */
#include "models/result.h"

#include "loader/image.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/mask.h"
#include "core/rle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the handle ----------------------------------------------------------------------------- */

lisa_result *lisa_result_new(void) { return calloc(1, sizeof(lisa_result)); }

void lisa_result_free(lisa_result *r) {
    if (!r) return;
    free(r->answer);
    free(r->text_output);
    free(r->tokens);
    free(r->masks);
    free(r->logits);
    free(r->scores);
    free(r);
}

const char *lisa_result_answer(const lisa_result *r) { return r->answer; }
const char *lisa_result_text_output(const lisa_result *r) { return r->text_output; }
int32_t lisa_result_n_tokens(const lisa_result *r) { return r->n_tokens; }
const int32_t *lisa_result_tokens(const lisa_result *r) { return r->tokens; }
int32_t lisa_result_n_masks(const lisa_result *r) { return r->n_masks; }

const uint8_t *lisa_result_mask(const lisa_result *r, int32_t i, int32_t *height, int32_t *width) {
    if (i < 0 || i >= r->n_masks) return NULL;
    if (height) *height = r->h;
    if (width) *width = r->w;
    return r->masks + (size_t)i * r->h * r->w;
}

const float *lisa_result_mask_logits(const lisa_result *r, int32_t i) {
    if (!r->logits || i < 0 || i >= r->n_masks) return NULL;
    return r->logits + (size_t)i * r->h * r->w;
}

float lisa_result_mask_score(const lisa_result *r, int32_t i) {
    return (i >= 0 && i < r->n_masks) ? r->scores[i] : NAN;
}

lisa_timings lisa_result_timings(const lisa_result *r) { return r->t; }
lisa_status lisa_result_status(const lisa_result *r) { return r->status; }
const char *lisa_result_error(const lisa_result *r) { return r->error; }
uint64_t lisa_result_id(const lisa_result *r) { return r->id; }
uint64_t lisa_result_user_data(const lisa_result *r) { return r->user_data; }

/* ---- PNG files --------------------------------------------------------------------------------- */

static lisa_status mask_arg(const lisa_result *r, int32_t i, const char *path, const char *fn) {
    if (!r || !path) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: result or path is NULL", fn);
    if (i < 0 || i >= r->n_masks)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: mask %d of a result with %d mask%s", fn, i, r->n_masks,
                         r->n_masks == 1 ? "" : "s");
    return LISA_OK;
}

lisa_status lisa_result_write_mask_png(const lisa_result *r, int32_t i, const char *path) {
    LISA_TRY(mask_arg(r, i, path, "lisa_result_write_mask_png"));
    lisa_bitmap img;
    LISA_TRY(lisa_bitmap_alloc(&img, r->h, r->w, 1));
    lisa_mask_to_gray(img.data, r->masks + (size_t)i * r->h * r->w, r->h, r->w, 255);
    const lisa_status s = lisa_image_write_png(path, &img);
    lisa_bitmap_free(&img);
    return s;
}

lisa_status lisa_result_write_overlay_png(const lisa_result *r, int32_t i, const uint8_t *rgb, const char *path) {
    LISA_TRY(mask_arg(r, i, path, "lisa_result_write_overlay_png"));
    if (!rgb) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_result_write_overlay_png: rgb is NULL");
    lisa_bitmap img;
    LISA_TRY(lisa_bitmap_alloc(&img, r->h, r->w, 3));
    lisa_mask_overlay_red(img.data, rgb, r->masks + (size_t)i * r->h * r->w, r->h, r->w);
    const lisa_status s = lisa_image_write_png(path, &img);
    lisa_bitmap_free(&img);
    return s;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static lisa_status oom(void) { return lisa_fail(LISA_ERR_OOM, "out of memory building the result JSON"); }

/* cJSON's Add* functions return NULL when out of memory (and then own nothing) */
#define JTRY(expr)                                                                                                     \
    do {                                                                                                               \
        if (!(expr)) return oom();                                                                                     \
    } while (0)

lisa_status lisa_json_add_rle(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w) {
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
    cJSON *rle = cJSON_AddObjectToObject(obj, "rle"), *size = rle ? cJSON_AddArrayToObject(rle, "size") : NULL;
    bool ok = size && cJSON_AddItemToArray(size, cJSON_CreateNumber(h)) &&
              cJSON_AddItemToArray(size, cJSON_CreateNumber(w)) && cJSON_AddStringToObject(rle, "counts", counts);
    free(counts);
    cJSON *bbox = ok ? cJSON_AddArrayToObject(obj, "bbox") : NULL;
    for (int k = 0; k < 4 && bbox; k++)
        if (!cJSON_AddItemToArray(bbox, cJSON_CreateNumber(bb[k]))) bbox = NULL;
    if (!bbox || !cJSON_AddNumberToObject(obj, "area", area)) return oom();
    return LISA_OK;
}

lisa_status lisa_json_add_mask_png(cJSON *obj, const uint8_t *mask, int32_t h, int32_t w) {
    lisa_bitmap img;
    LISA_TRY(lisa_bitmap_alloc(&img, h, w, 1));
    lisa_mask_to_gray(img.data, mask, h, w, 255);
    void *png = NULL;
    size_t n = 0;
    lisa_status s = lisa_image_encode_png(&png, &n, &img);
    lisa_bitmap_free(&img);
    if (s != LISA_OK) return s;
    char *b64 = malloc(lisa_base64_encoded_len(n) + 1);
    if (b64) lisa_base64_encode(b64, png, n);
    free(png);
    if (!b64) return oom();
    const bool ok = cJSON_AddStringToObject(obj, "png", b64) != NULL;
    free(b64);
    return ok ? LISA_OK : oom();
}

lisa_status lisa_timings_json_add(cJSON *root, const lisa_timings *t) {
    cJSON *tj = cJSON_AddObjectToObject(root, "timings");
    JTRY(tj);
    const struct {
        const char *k;
        double v;
    } f[] = {{"preprocess_ms", t->preprocess_ms},     {"clip_ms", t->clip_ms},
             {"prefill_ms", t->prefill_ms},           {"decode_ms", t->decode_ms},
             {"sam_encoder_ms", t->sam_encoder_ms},   {"sam_decoder_ms", t->sam_decoder_ms},
             {"postprocess_ms", t->postprocess_ms},   {"total_ms", t->total_ms},
             {"n_prompt_tokens", t->n_prompt_tokens}, {"n_generated", t->n_generated},
             {"n_reused_tokens", t->n_reused_tokens}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        JTRY(cJSON_AddNumberToObject(tj, f[i].k, f[i].v));
    return LISA_OK;
}

static lisa_status build(cJSON *root, const lisa_result *r, uint32_t flags) {
    if (lisa_result_status(r) != LISA_OK) {
        cJSON *e = cJSON_AddObjectToObject(root, "error");
        JTRY(e);
        JTRY(cJSON_AddStringToObject(e, "status", lisa_status_name(lisa_result_status(r))));
        JTRY(cJSON_AddStringToObject(e, "message", lisa_result_error(r)));
        return LISA_OK;
    }
    const char *answer = lisa_result_answer(r), *text = lisa_result_text_output(r);
    JTRY(cJSON_AddStringToObject(root, "answer", answer ? answer : ""));
    JTRY(cJSON_AddNumberToObject(root, "n_tokens", lisa_result_n_tokens(r)));
    if (flags & LISA_JSON_TOKENS) {
        cJSON *ids = cJSON_AddArrayToObject(root, "tokens");
        JTRY(ids);
        const int32_t *t = lisa_result_tokens(r);
        for (int32_t i = 0; i < lisa_result_n_tokens(r); i++)
            JTRY(cJSON_AddItemToArray(ids, cJSON_CreateNumber(t[i])));
    }
    if (flags & LISA_JSON_TEXT_OUTPUT) JTRY(cJSON_AddStringToObject(root, "text_output", text ? text : ""));
    cJSON *masks = cJSON_AddArrayToObject(root, "masks");
    JTRY(masks);
    for (int32_t i = 0; i < lisa_result_n_masks(r); i++) {
        int32_t h, w;
        const uint8_t *mask = lisa_result_mask(r, i, &h, &w);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(masks, o)) {
            cJSON_Delete(o);
            return oom();
        }
        JTRY(cJSON_AddNumberToObject(o, "index", i));
        LISA_TRY(lisa_json_add_rle(o, mask, h, w));
        JTRY(cJSON_AddNumberToObject(o, "score", lisa_result_mask_score(r, i)));
        if (flags & LISA_JSON_MASK_PNG) LISA_TRY(lisa_json_add_mask_png(o, mask, h, w));
    }
    if (flags & LISA_JSON_TIMINGS) {
        const lisa_timings t = lisa_result_timings(r);
        LISA_TRY(lisa_timings_json_add(root, &t));
    }
    if (flags & LISA_JSON_ID) JTRY(cJSON_AddNumberToObject(root, "id", (double)lisa_result_id(r)));
    return LISA_OK;
}

lisa_status lisa_result_json(cJSON **out, const lisa_result *r, uint32_t flags) {
    *out = NULL;
    if (!r) return lisa_fail(LISA_ERR_INVALID_ARG, "result JSON: result is NULL");
    cJSON *root = cJSON_CreateObject();
    if (!root) return oom();
    lisa_status s = build(root, r, flags);
    if (s != LISA_OK) {
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return LISA_OK;
}

lisa_status lisa_result_to_json(const lisa_result *r, uint32_t flags, char **out) {
    if (!out) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_result_to_json: out is NULL");
    *out = NULL;
    cJSON *root;
    LISA_TRY(lisa_result_json(&root, r, flags));
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *out ? LISA_OK : oom();
}

void lisa_free(void *p) { free(p); }
