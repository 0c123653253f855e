/* models/preprocessor_config.c — preprocessor_config.json -> lisa_clip_preprocess_params.
 *
 * ref: transformers 4.31 models/clip/image_processing_clip.py (CLIPImageProcessor.__init__,
 *      resize, center_crop), image_processing_utils.py (get_size_dict, convert_to_size_dict).
 */
#include "models/preprocessor_config.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An integral JSON number that fits int32 (JSON has one number type; Python would keep 224.0 a
 * float and then fail in PIL, so a fractional value is an error). */
static lisa_status get_int(int32_t *out, const cJSON *v, const char *name, const char *key) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2147483647.0)
        return lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\" must be an integer", name, key);
    *out = (int32_t)v->valuedouble;
    return LISA_OK;
}

static lisa_status get_bool(bool *out, const cJSON *root, const char *name, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return LISA_OK;
    if (!cJSON_IsBool(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\" must be true or false", name, key);
    *out = cJSON_IsTrue(v);
    return LISA_OK;
}

/* A list of 3 numbers, or one number for all three channels (normalize(): [mean] * num_channels). */
static lisa_status get_triple(float out[3], const cJSON *root, const char *name, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return LISA_OK;
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < 3; i++) out[i] = (float)v->valuedouble;
        return LISA_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\" must be a number or a list of 3 numbers (RGB)", name, key);
    float tmp[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e)) return lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\"[%d] is not a number", name, key, i);
        tmp[i] = (float)e->valuedouble; /* np.array(mean, dtype=float32): round to nearest */
    }
    memcpy(out, tmp, sizeof tmp);
    return LISA_OK;
}

static bool only_keys(const cJSON *obj, const char *a, const char *b) {
    for (const cJSON *e = obj->child; e; e = e->next)
        if (strcmp(e->string, a) != 0 && (!b || strcmp(e->string, b) != 0)) return false;
    return true;
}

static lisa_status parse_root(lisa_clip_preprocess_params *p, const cJSON *root, const char *name) {
    if (!cJSON_IsObject(root)) return lisa_fail(LISA_ERR_FORMAT, "%s: top level is not a JSON object", name);
    LISA_TRY(get_bool(&p->do_resize, root, name, "do_resize"));
    LISA_TRY(get_bool(&p->do_center_crop, root, name, "do_center_crop"));
    LISA_TRY(get_bool(&p->do_rescale, root, name, "do_rescale"));
    LISA_TRY(get_bool(&p->do_normalize, root, name, "do_normalize"));

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsNumber(v)) {
            LISA_TRY(get_int(&p->shortest_edge, v, name, "size"));
        } else if (cJSON_IsObject(v)) {
            const cJSON *se = cJSON_GetObjectItemCaseSensitive(v, "shortest_edge");
            if (!se || !only_keys(v, "shortest_edge", NULL))
                return lisa_fail(LISA_ERR_UNSUPPORTED,
                                 "%s: \"size\" must be an int or {\"shortest_edge\": N} (CLIPImageProcessor resizes "
                                 "the shortest edge only)",
                                 name);
            LISA_TRY(get_int(&p->shortest_edge, se, name, "size.shortest_edge"));
        } else {
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: \"size\" must be an int or {\"shortest_edge\": N}", name);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "crop_size");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsNumber(v)) {
            LISA_TRY(get_int(&p->crop_h, v, name, "crop_size"));
            p->crop_w = p->crop_h;
        } else if (cJSON_IsObject(v)) {
            const cJSON *hh = cJSON_GetObjectItemCaseSensitive(v, "height");
            const cJSON *ww = cJSON_GetObjectItemCaseSensitive(v, "width");
            if (!hh || !ww || !only_keys(v, "height", "width"))
                return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: \"crop_size\" must be an int or {\"height\", \"width\"}",
                                 name);
            LISA_TRY(get_int(&p->crop_h, hh, name, "crop_size.height"));
            LISA_TRY(get_int(&p->crop_w, ww, name, "crop_size.width"));
        } else {
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: \"crop_size\" must be an int or {\"height\", \"width\"}", name);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "resample");
    if (v && !cJSON_IsNull(v)) {
        int32_t r = 0;
        LISA_TRY(get_int(&r, v, name, "resample"));
        if (r != LISA_RESAMPLE_BILINEAR && r != LISA_RESAMPLE_BICUBIC)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: \"resample\" %d (only 2 = BILINEAR and 3 = BICUBIC)", name,
                             (int)r);
        p->resample = (lisa_resample_filter)r;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: \"rescale_factor\" must be a number", name);
        p->rescale_factor = v->valuedouble;
    }
    LISA_TRY(get_triple(p->image_mean, root, name, "image_mean"));
    LISA_TRY(get_triple(p->image_std, root, name, "image_std"));
    lisa_status s = lisa_clip_preprocess_params_check(p);
    if (s != LISA_OK) return lisa_fail_context(s, "%s", name);
    return LISA_OK;
}

lisa_status lisa_clip_preprocess_params_parse(lisa_clip_preprocess_params *out, const char *json, const char *name) {
    LISA_ASSERT(out && json);
    if (!name) name = "preprocessor_config.json";
    *out = lisa_clip_preprocess_default_params();
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &err_at, 1);
    if (!root) {
        size_t off = err_at && err_at >= json ? (size_t)(err_at - json) : 0;
        return lisa_fail(LISA_ERR_FORMAT, "%s: invalid JSON at byte %zu", name, off);
    }
    lisa_clip_preprocess_params p = *out;
    lisa_status s = parse_root(&p, root, name);
    cJSON_Delete(root);
    if (s == LISA_OK) *out = p;
    return s;
}

lisa_status lisa_clip_preprocess_params_load(lisa_clip_preprocess_params *out, const char *path) {
    LISA_ASSERT(out && path);
    *out = lisa_clip_preprocess_default_params();
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* A preprocessor config is a few hundred bytes; 1 MiB is a generous cap. */
    enum { CAP = 1 << 20 };
    char *buf = malloc(CAP + 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: no memory to read it", path);
    }
    size_t n = fread(buf, 1, CAP + 1, f);
    bool err = ferror(f);
    fclose(f);
    lisa_status s;
    if (err)
        s = lisa_fail(LISA_ERR_IO, "%s: read error", path);
    else if (n > CAP)
        s = lisa_fail(LISA_ERR_LIMIT, "%s: larger than %d bytes; not a preprocessor config", path, CAP);
    else {
        buf[n] = '\0';
        s = lisa_clip_preprocess_params_parse(out, buf, path);
    }
    free(buf);
    return s;
}
