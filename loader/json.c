/* loader/json.c */
#include "loader/json.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lisa_status lisa_json_load_file(const char *path, size_t max_bytes, cJSON **out) {
    *out = NULL;
    if (!max_bytes) max_bytes = LISA_JSON_MAX_FILE;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    lisa_status s = buf ? LISA_OK : lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    while (s == LISA_OK) {
        if (n == cap) {
            if (cap >= max_bytes) {
                s = lisa_fail(LISA_ERR_LIMIT, "%s: larger than the %zu-byte limit for JSON files", path, max_bytes);
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) s = lisa_fail(LISA_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (s != LISA_OK) {
        free(buf);
        return s;
    }
    buf[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, n, &end, false);
    if (!root) {
        size_t off = end ? (size_t)(end - buf) : 0, line = 1, col = 1;
        for (size_t i = 0; i < off && i < n; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        free(buf);
        return lisa_fail(LISA_ERR_FORMAT, "%s: invalid JSON at line %zu, column %zu", path, line, col);
    }
    free(buf);
    *out = root;
    return LISA_OK;
}

static const cJSON *lookup(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (v && cJSON_IsNull(v)) ? NULL : v;
}

static lisa_status absent(const char *file, const char *key, bool required) {
    return required ? lisa_fail(LISA_ERR_FORMAT, "%s: missing required key '%s'", file, key) : LISA_OK;
}

lisa_status lisa_json_int(const cJSON *obj, const char *file, const char *key, bool required, int64_t def,
                          int64_t *out) {
    const cJSON *v = lookup(obj, key);
    if (!v) {
        *out = def;
        return absent(file, key, required);
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || floor(d) != d || fabs(d) > 9007199254740992.0)
        return lisa_fail(LISA_ERR_FORMAT, "%s: key '%s' must be an integer", file, key);
    *out = (int64_t)d;
    return LISA_OK;
}

lisa_status lisa_json_int_range(const cJSON *obj, const char *file, const char *key, bool required, int64_t def,
                                int64_t lo, int64_t hi, int64_t *out) {
    LISA_TRY(lisa_json_int(obj, file, key, required, def, out));
    if (*out < lo || *out > hi)
        return lisa_fail(LISA_ERR_FORMAT, "%s: key '%s' = %lld is out of range (%lld..%lld)", file, key, (long long)*out,
                         (long long)lo, (long long)hi);
    return LISA_OK;
}

lisa_status lisa_json_double(const cJSON *obj, const char *file, const char *key, bool required, double def,
                             double *out) {
    const cJSON *v = lookup(obj, key);
    if (!v) {
        *out = def;
        return absent(file, key, required);
    }
    if (!cJSON_IsNumber(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: key '%s' must be a number", file, key);
    *out = v->valuedouble;
    return LISA_OK;
}

lisa_status lisa_json_bool(const cJSON *obj, const char *file, const char *key, bool required, bool def, bool *out) {
    const cJSON *v = lookup(obj, key);
    if (!v) {
        *out = def;
        return absent(file, key, required);
    }
    if (!cJSON_IsBool(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: key '%s' must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return LISA_OK;
}

lisa_status lisa_json_string(const cJSON *obj, const char *file, const char *key, bool required, const char *def,
                             const char **out) {
    const cJSON *v = lookup(obj, key);
    if (!v) {
        *out = def;
        return absent(file, key, required);
    }
    if (!cJSON_IsString(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: key '%s' must be a string", file, key);
    *out = v->valuestring;
    return LISA_OK;
}

bool lisa_json_has_nul_string(const char *text, size_t len, size_t *at) {
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\0') {
            if (at) *at = i;
            return true;
        } else if (c == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) {
                if (at) *at = i;
                return true;
            }
            i++; /* the escaped character (a quote or backslash does not end or start anything) */
        }
    }
    return false;
}
