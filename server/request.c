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

/* cJSON hands out decoded strings NUL-terminated without their length, so "Segment\u0000 the cat."
 * would silently become "Segment" (issue 18). The top-level members' string values are therefore
 * decoded again here from the raw body, with their length: cJSON has validated the syntax by then,
 * so this decoder only needs to be right on valid JSON (RFC 8259 §7). */

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = p[i];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10);
    }
    return v;
}

/* Decodes the raw string literal lit[0..n) (between its quotes) into out (NULL: only count);
 * returns the decoded length in bytes (UTF-8, as cJSON encodes escapes). */
static size_t json_unescape(const char *lit, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp;
        if (lit[i] != '\\') {
            if (out) out[o] = lit[i];
            o++;
            continue;
        }
        const char e = lit[++i];
        if (e != 'u') {
            const char c = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            if (out) out[o] = c;
            o++;
            continue;
        }
        cp = (unsigned)hex4(lit + i + 1);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < n && lit[i + 1] == '\\' && lit[i + 2] == 'u') {
            const unsigned lo = (unsigned)hex4(lit + i + 3);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
        }
        unsigned char b[4];
        size_t k;
        if (cp < 0x80) b[0] = (unsigned char)cp, k = 1;
        else if (cp < 0x800) b[0] = (unsigned char)(0xC0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3F)), k = 2;
        else if (cp < 0x10000)
            b[0] = (unsigned char)(0xE0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
            b[2] = (unsigned char)(0x80 | (cp & 0x3F)), k = 3;
        else
            b[0] = (unsigned char)(0xF0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
            b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (unsigned char)(0x80 | (cp & 0x3F)), k = 4;
        if (out) memcpy(out + o, b, k);
        o += k;
    }
    return o;
}

/* The raw literal of a string starting at body[i] == '"': its content span; returns the index after
 * the closing quote. */
static size_t skip_string(const char *body, size_t len, size_t i, size_t *lit, size_t *lit_len) {
    const size_t start = ++i;
    while (i < len && body[i] != '"') i += body[i] == '\\' ? 2 : 1;
    *lit = start;
    *lit_len = (i < len ? i : len) - start;
    return i + 1;
}

/* The raw literal of the top-level member `name`'s string value in a valid JSON object body; false
 * when it has none. Keys are compared decoded (cJSON decodes them too). */
static bool member_literal(const char *body, size_t len, const char *name, size_t *lit, size_t *lit_len) {
    int depth = 0;
    bool want_value = false, in_key_position = false;
    const size_t name_len = strlen(name);
    for (size_t i = 0; i < len;) {
        const char c = body[i];
        if (c == '{' || c == '[') {
            depth++;
            in_key_position = c == '{';
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == ',') {
            in_key_position = depth == 1;
            i++;
        } else if (c == '"') {
            size_t a, n;
            i = skip_string(body, len, i, &a, &n);
            if (depth == 1 && in_key_position) {
                char key[32];
                want_value = json_unescape(body + a, n, NULL) == name_len && name_len < sizeof key &&
                             (json_unescape(body + a, n, key), memcmp(key, name, name_len) == 0);
                in_key_position = false;
            } else if (depth == 1 && want_value) {
                *lit = a;
                *lit_len = n;
                return true;
            }
        } else {
            if (depth == 1 && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ':') want_value = false;
            i++;
        }
    }
    return false;
}

/* A string member's decoded bytes and length (NUL bytes included) into *out (malloc'd, with a
 * terminating NUL after len bytes). */
static lisa_status member_bytes(const char *body, size_t len, const char *name, char **out, size_t *out_len) {
    size_t a = 0, n = 0;
    if (!member_literal(body, len, name, &a, &n)) return lisa_fail(LISA_ERR_INTERNAL, "\"%s\" not found again", name);
    *out_len = json_unescape(body + a, n, NULL);
    if (!(*out = malloc(*out_len + 1))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    json_unescape(body + a, n, *out);
    (*out)[*out_len] = '\0';
    return LISA_OK;
}

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
            /* with its length: a NUL inside is the query's error (invalid_query), seen by the caller */
            s = member_bytes(body, len, "query", &in->query, &in->query_len);
        } else if (f == F_IMAGE_PATH) {
            char *full = NULL;
            size_t full_len = 0;
            s = member_bytes(body, len, "image_path", &full, &full_len);
            if (s == LISA_OK && full_len != n)
                s = lisa_fail(LISA_ERR_FORMAT, "\"image_path\" contains a NUL byte (\\u0000) at byte %zu", n);
            if (s == LISA_OK) in->image_path = full;
            else free(full);
        } else {
            size_t a = 0, lit_len = 0;
            if (!member_literal(body, len, "image", &a, &lit_len))
                s = lisa_fail(LISA_ERR_INTERNAL, "\"image\" not found again");
            if (s == LISA_OK && json_unescape(body + a, lit_len, NULL) != n)
                s = lisa_fail(LISA_ERR_FORMAT, "\"image\" contains a NUL byte (\\u0000) at byte %zu", n);
            if (s != LISA_OK) break;
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

bool srv_query_nul(const srv_input *in, size_t *at) {
    const char *z = in->query ? memchr(in->query, '\0', in->query_len) : NULL;
    if (z && at) *at = (size_t)(z - in->query);
    return z != NULL;
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
