/* server/request.c — see request.h. */
#include "server/request.h"

#include "server/base64.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* returns a failed lisa_status from the enclosing function (the message is already recorded) */
#define SRV_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        const lisa_status srv_try_s_ = (expr);                                                                         \
        if (srv_try_s_ != LISA_OK) return srv_try_s_;                                                                  \
    } while (0)

enum { F_QUERY, F_IMAGE, F_IMAGE_PATH, F_OPTIONS, F_SMALL0 };
static const char *const SMALL_NAMES[5] = {"max_new_tokens", "png", "tokens", "text_output", "timings"};

void srv_input_init(srv_input *in) {
    memset(in, 0, sizeof *in);
    in->opt.timings = true;
}

void srv_input_free(srv_input *in) {
    free(in->image);
    free(in->image_path);
    free(in->query);
    free(in->options_text);
    srv_input_init(in);
}

/* ---- options --------------------------------------------------------------------------------- */

static lisa_status set_max_new(srv_input *in, double v, int32_t cap) {
    if (!(v >= 1 && v <= cap) || v != (double)(int64_t)v)
        return lisa_fail(LISA_ERR_FORMAT, "options.max_new_tokens must be an integer in 1..%d (got %g)", cap, v);
    in->opt.max_new_tokens = (int32_t)v;
    return LISA_OK;
}

static lisa_status option_bool(srv_input *in, int k, bool v) {
    switch (k) {
    case 1: in->opt.png = v; break;
    case 2: in->opt.tokens = v; break;
    case 3: in->opt.text_output = v; break;
    case 4: in->opt.timings = v; break;
    default: return lisa_fail(LISA_ERR_INTERNAL, "option %d is not a flag", k);
    }
    return LISA_OK;
}

static int small_index(const char *name) {
    for (int k = 0; k < 5; k++)
        if (!strcmp(name, SMALL_NAMES[k])) return k;
    return -1;
}

static lisa_status parse_options_obj(srv_input *in, const cJSON *o, int32_t cap) {
    if (!cJSON_IsObject(o)) return lisa_fail(LISA_ERR_FORMAT, "\"options\" must be a JSON object");
    uint32_t seen = 0;
    for (const cJSON *it = o->child; it; it = it->next) {
        const int k = it->string ? small_index(it->string) : -1;
        if (k < 0)
            return lisa_fail(LISA_ERR_INVALID_ARG,
                             "unknown option \"%.64s\" (known: max_new_tokens, png, tokens, text_output, timings)",
                             it->string ? it->string : "");
        if (seen & (1u << k)) return lisa_fail(LISA_ERR_INVALID_ARG, "option \"%s\" given twice", SMALL_NAMES[k]);
        seen |= 1u << k;
        if (k == 0) {
            if (!cJSON_IsNumber(it)) return lisa_fail(LISA_ERR_FORMAT, "options.max_new_tokens must be a number");
            SRV_TRY(set_max_new(in, it->valuedouble, cap));
        } else {
            if (!cJSON_IsBool(it))
                return lisa_fail(LISA_ERR_FORMAT, "options.%s must be true or false", SMALL_NAMES[k]);
            SRV_TRY(option_bool(in, k, cJSON_IsTrue(it)));
        }
    }
    return LISA_OK;
}

/* ---- JSON bodies ----------------------------------------------------------------------------- */

/* "data:image/png;base64,AAAA" -> "AAAA"; plain base64 unchanged */
static lisa_status strip_data_url(const char **s, size_t *len) {
    if (*len < 5 || strncasecmp(*s, "data:", 5) != 0) return LISA_OK;
    const char *comma = memchr(*s, ',', *len);
    if (!comma) return lisa_fail(LISA_ERR_FORMAT, "\"image\": a data: URL without a comma");
    const size_t head = (size_t)(comma - *s);
    if (head < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return lisa_fail(LISA_ERR_FORMAT, "\"image\": a data: URL must be base64-encoded (\";base64,\")");
    *len -= head + 1;
    *s = comma + 1;
    return LISA_OK;
}

lisa_status srv_parse_json(srv_input *in, const char *body, size_t len, int32_t cap) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        const size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return lisa_fail(LISA_ERR_FORMAT, "malformed JSON body near byte %zu", at);
    }
    lisa_status s = LISA_OK;
    /* cJSON stops at the end of the value: anything but whitespace after it is malformed */
    for (const char *p = end; s == LISA_OK && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            s = lisa_fail(LISA_ERR_FORMAT, "malformed JSON body: data after the object at byte %zu",
                          (size_t)(p - body));
    if (s == LISA_OK && !cJSON_IsObject(root)) s = lisa_fail(LISA_ERR_FORMAT, "the JSON body must be an object");
    static const char *const names[] = {"query", "image", "image_path", "options"};
    for (const cJSON *it = s == LISA_OK ? root->child : NULL; it && s == LISA_OK; it = it->next) {
        int f = -1;
        for (int k = 0; k < 4 && it->string; k++)
            if (!strcmp(it->string, names[k])) f = k;
        if (f < 0) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "unknown member \"%.64s\" (known: query, image, image_path, options)",
                          it->string ? it->string : "");
            break;
        }
        if (in->seen & (1u << f)) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "member \"%s\" given twice", names[f]);
            break;
        }
        in->seen |= 1u << f;
        if (f == F_OPTIONS) {
            s = parse_options_obj(in, it, cap);
            continue;
        }
        if (!cJSON_IsString(it)) {
            s = lisa_fail(LISA_ERR_FORMAT, "\"%s\" must be a string", names[f]);
            break;
        }
        const char *v = it->valuestring;
        size_t n = strlen(v);
        if (f == F_QUERY) {
            if (!(in->query = strdup(v))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
        } else if (f == F_IMAGE_PATH) {
            if (!(in->image_path = strdup(v))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
        } else {
            in->have_image = true;
            s = strip_data_url(&v, &n);
            void *bytes = NULL;
            if (s == LISA_OK) s = lisa_base64_decode(&bytes, &in->image_size, v, n, "\"image\"");
            in->image = bytes;
        }
    }
    cJSON_Delete(root);
    return s;
}

/* ---- multipart parts ------------------------------------------------------------------------- */

static lisa_status append(char **buf, size_t *len, size_t *cap, const char *data, size_t size) {
    if (*len + size + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + size + 1)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb) return lisa_fail(LISA_ERR_OOM, "out of memory receiving %zu bytes", *len + size);
        *buf = nb;
        *cap = c;
    }
    if (size) memcpy(*buf + *len, data, size);
    *len += size;
    (*buf)[*len] = '\0';
    return LISA_OK;
}

lisa_status srv_form_chunk(srv_input *in, const char *key, const char *data, uint64_t off, size_t size) {
    int f = -1;
    if (key && !strcmp(key, "query"))
        f = F_QUERY;
    else if (key && !strcmp(key, "image"))
        f = F_IMAGE;
    else if (key && !strcmp(key, "options"))
        f = F_OPTIONS;
    else if (key && small_index(key) >= 0)
        f = F_SMALL0 + small_index(key);
    if (f < 0)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "unknown form field \"%.64s\" (known: image, query, options, max_new_tokens, png, tokens, "
                         "text_output, timings)",
                         key ? key : "");
    if (off == 0) {
        if (in->seen & (1u << f)) return lisa_fail(LISA_ERR_INVALID_ARG, "form field \"%s\" given twice", key);
        in->seen |= 1u << f;
    }
    switch (f) {
    case F_QUERY: return append(&in->query, &in->query_len, &in->query_cap, data, size);
    case F_IMAGE:
        in->have_image = true;
        return append((char **)&in->image, &in->image_size, &in->image_cap, data, size);
    case F_OPTIONS: return append(&in->options_text, &in->options_len, &in->options_cap, data, size);
    default: {
        const int k = f - F_SMALL0;
        if (in->small_len[k] + size >= sizeof in->small[k])
            return lisa_fail(LISA_ERR_FORMAT, "form field \"%s\" is too long", SMALL_NAMES[k]);
        memcpy(in->small[k] + in->small_len[k], data, size);
        in->small_len[k] = (uint8_t)(in->small_len[k] + size);
        in->small[k][in->small_len[k]] = '\0';
        return LISA_OK;
    }
    }
}

lisa_status srv_form_finish(srv_input *in, int32_t cap) {
    if (in->query && memchr(in->query, '\0', in->query_len))
        return lisa_fail(LISA_ERR_FORMAT, "form field \"query\" contains a NUL byte");
    if (in->options_text) {
        const char *end = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(in->options_text, in->options_len, &end, false);
        if (!o) return lisa_fail(LISA_ERR_FORMAT, "form field \"options\": malformed JSON");
        lisa_status s = parse_options_obj(in, o, cap);
        cJSON_Delete(o);
        SRV_TRY(s);
    }
    for (int k = 0; k < 5; k++) {
        if (!(in->seen & (1u << (F_SMALL0 + k)))) continue;
        const char *v = in->small[k];
        if (k == 0) {
            char *e = NULL;
            errno = 0;
            const long x = strtol(v, &e, 10);
            if (errno || e == v || *e)
                return lisa_fail(LISA_ERR_FORMAT, "form field \"max_new_tokens\" must be an integer (got \"%s\")", v);
            SRV_TRY(set_max_new(in, (double)x, cap));
        } else if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "on")) {
            SRV_TRY(option_bool(in, k, true));
        } else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "off")) {
            SRV_TRY(option_bool(in, k, false));
        } else {
            return lisa_fail(LISA_ERR_FORMAT, "form field \"%s\" must be 1/0/true/false (got \"%s\")", SMALL_NAMES[k],
                             v);
        }
    }
    return LISA_OK;
}

lisa_status srv_input_check(const srv_input *in) {
    if (!in->query) return lisa_fail(LISA_ERR_INVALID_ARG, "the request has no \"query\"");
    if (in->have_image && in->image_path)
        return lisa_fail(LISA_ERR_INVALID_ARG, "give either \"image\" or \"image_path\", not both");
    if (!in->have_image && !in->image_path) return lisa_fail(LISA_ERR_INVALID_ARG, "the request has no \"image\"");
    if (in->have_image && in->image_size == 0) return lisa_fail(LISA_ERR_INVALID_ARG, "\"image\" is empty");
    if (in->image_path && !in->image_path[0]) return lisa_fail(LISA_ERR_INVALID_ARG, "\"image_path\" is empty");
    return LISA_OK;
}
