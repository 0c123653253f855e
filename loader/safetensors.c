/* loader/safetensors.c — the safetensors format (https://github.com/huggingface/safetensors):
 *   [u64 little-endian N][N bytes of UTF-8 JSON header][data buffer]
 * header = {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
 *           "data_offsets": [begin, end]}, ...}, offsets relative to the data buffer.
 * Everything read from the file is untrusted: sizes are checked for overflow and against the file
 * size, tensors may not overlap, and every failure names the file and the tensor/field. */
#include "loader/checkpoint_impl.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int cmp_span_name(const void *a, const void *b) {
    return strcmp(((const span *)a)->name, ((const span *)b)->name);
}

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* A JSON number that is an exact non-negative integer <= 2^53 (doubles are exact there). */
static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Safetensors dtype names we know but cannot compute with, for a precise error. */
static bool known_unsupported_dtype(const char *s) {
    static const char *const names[] = {"F64", "I16", "I8", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return true;
    return false;
}

lisa_status lisa_safetensors_parse(lisa_checkpoint *ck, int32_t file) {
    const lisa_ckpt_file *f = &ck->files[file];
    const char *path = f->path;
    if (f->size < 8) return lisa_fail(LISA_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->data[i];
    if (hlen > LISA_SAFETENSORS_MAX_HEADER)
        return lisa_fail(LISA_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit (corrupt or not safetensors)",
                         path, (unsigned long long)hlen, LISA_SAFETENSORS_MAX_HEADER);
    if (hlen < 2 || hlen > f->size - 8)
        return lisa_fail(LISA_ERR_FORMAT, "%s: header length %llu does not fit in the %zu-byte file (truncated?)", path,
                         (unsigned long long)hlen, f->size);
    const char *text = (const char *)f->data + 8;
    if (text[0] != '{')
        return lisa_fail(LISA_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file)", path);
    const char *end_parse = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end_parse, false);
    if (!root || !cJSON_IsObject(root)) {
        size_t off = end_parse ? (size_t)(end_parse - text) : 0;
        cJSON_Delete(root);
        return lisa_fail(LISA_ERR_FORMAT, "%s: header is not a valid JSON object (error near header byte %zu)", path, off);
    }
    /* The remainder of the header must be padding spaces (safetensors pads with 0x20). */
    for (const char *p = end_parse; p && p < text + hlen; p++) {
        if (*p != ' ' && *p != '\0') {
            cJSON_Delete(root);
            return lisa_fail(LISA_ERR_FORMAT, "%s: trailing bytes after the JSON header", path);
        }
    }
    const unsigned char *buffer = f->data + 8 + hlen;
    uint64_t buffer_size = (uint64_t)f->size - 8 - hlen;

    int n_items = cJSON_GetArraySize(root);
    span *spans = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *spans);
    if (!spans) {
        cJSON_Delete(root);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    int n_spans = 0;
    lisa_status s = LISA_OK;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *name = item->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(item)) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, item) {
                if (!cJSON_IsString(kv)) {
                    s = lisa_fail(LISA_ERR_FORMAT, "%s: __metadata__['%s'] is not a string", path, kv->string);
                    break;
                }
            }
            if (s != LISA_OK) break;
            if (!ck->meta) ck->meta = cJSON_Duplicate(item, true);
            continue;
        }
        if (!cJSON_IsObject(item)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
            break;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
        if (!cJSON_IsString(jd)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': missing string field 'dtype'", path, name);
            break;
        }
        lisa_dtype dt;
        if (!lisa_dtype_from_name(jd->valuestring, &dt)) {
            s = known_unsupported_dtype(jd->valuestring)
                    ? lisa_fail(LISA_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", path, name,
                                jd->valuestring)
                    : lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, name, jd->valuestring);
            break;
        }
        if (!cJSON_IsArray(js)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': missing array field 'shape'", path, name);
            break;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > LISA_MAX_DIMS) {
            s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: tensor '%s': %d dims (at most %d supported)", path, name, nd,
                          LISA_MAX_DIMS);
            break;
        }
        int64_t shape[LISA_MAX_DIMS] = {1, 1, 1, 1};
        uint64_t numel = 1;
        for (int d = 0; d < nd; d++) {
            uint64_t v;
            if (!json_u64(cJSON_GetArrayItem(js, d), &v) || v > (uint64_t)INT64_MAX) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, d);
                break;
            }
            shape[d] = (int64_t)v;
            if (lisa_mul_overflow_u64(numel, v, &numel)) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
                break;
            }
        }
        if (s != LISA_OK) break;
        uint64_t nbytes;
        if (lisa_mul_overflow_u64(numel, lisa_dtype_size(dt), &nbytes)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);
            break;
        }
        uint64_t b, e;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_u64(cJSON_GetArrayItem(jo, 0), &b) ||
            !json_u64(cJSON_GetArrayItem(jo, 1), &e)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end] integers", path, name);
            break;
        }
        if (b > e || e > buffer_size) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] outside the %llu-byte data buffer%s",
                          path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)buffer_size,
                          e > buffer_size ? " (truncated file?)" : "");
            break;
        }
        if (e - b != nbytes) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': %llu bytes stored but shape and dtype %s need %llu", path, name,
                          (unsigned long long)(e - b), jd->valuestring, (unsigned long long)nbytes);
            break;
        }
        spans[n_spans++] = (span){b, e, name};
        s = lisa_ckpt_add_entry(ck, name, dt, nd, shape, buffer + b, (size_t)nbytes, file);
        if (s != LISA_OK) break;
    }
    if (s == LISA_OK && n_spans > 1) {
        /* JSON allows a key twice; a checkpoint does not (checked before overlap, which it implies). */
        qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span_name);
        for (int i = 1; i < n_spans && s == LISA_OK; i++)
            if (strcmp(spans[i - 1].name, spans[i].name) == 0)
                s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, spans[i].name);
    }
    if (s == LISA_OK && n_spans > 1) {
        qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
        /* Sorted by begin: a non-empty span overlaps an earlier one iff it starts before the
         * furthest end seen so far (empty tensors occupy no bytes). */
        uint64_t max_end = 0;
        const char *max_name = NULL;
        for (int i = 0; i < n_spans; i++) {
            if (spans[i].end == spans[i].begin) continue;
            if (max_name && spans[i].begin < max_end) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data buffer", path, max_name,
                              spans[i].name);
                break;
            }
            if (spans[i].end > max_end) {
                max_end = spans[i].end;
                max_name = spans[i].name;
            }
        }
    }
    free(spans);
    cJSON_Delete(root);
    return s;
}
