/* jobs/tokenize.c — see jobs/tokenize.h. */
#include "jobs/tokenize.h"

#include "models/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output is written by hand (not cJSON) so that strings holding NUL bytes come out whole. */
static void put_json_string(FILE *o, const char *s, size_t n) {
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", o); break;
        case '\\': fputs("\\\\", o); break;
        case '\n': fputs("\\n", o); break;
        case '\r': fputs("\\r", o); break;
        case '\t': fputs("\\t", o); break;
        default:
            if (c < 0x20)
                fprintf(o, "\\u%04x", c);
            else
                fputc(c, o);
        }
    }
    fputc('"', o);
}

static void print_error(FILE *o, const char *msg) {
    fputs("{\"error\":", o);
    put_json_string(o, msg, strlen(msg));
    fputs("}\n", o);
    fflush(o);
}

static bool opt_bool(const cJSON *req, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    return cJSON_IsTrue(v);
}

/* {"ids": [...], "tokens": [...](, "prompt": ...)} */
static void print_ids(FILE *o, const lisa_tokenizer *tok, const int32_t *ids, int32_t n, const char *prompt) {
    fputs("{\"ids\":[", o);
    for (int32_t i = 0; i < n; i++)
        fprintf(o, "%s%d", i ? "," : "", ids[i]);
    fputs("],\"tokens\":[", o);
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = lisa_tokenizer_id_to_piece(tok, ids[i], &len);
        if (i) fputc(',', o);
        if (p)
            put_json_string(o, p, len);
        else
            put_json_string(o, ids[i] == LISA_IMAGE_TOKEN_INDEX ? "<image>" : "",
                            ids[i] == LISA_IMAGE_TOKEN_INDEX ? 7 : 0);
    }
    fputc(']', o);
    if (prompt) {
        fputs(",\"prompt\":", o);
        put_json_string(o, prompt, strlen(prompt));
    }
    fputs("}\n", o);
    fflush(o);
}

/* Encodes with a buffer grown to the needed size. */
static lisa_status encode_any(const lisa_tokenizer *tok, bool image, const char *s, size_t len, bool add_special,
                              int32_t **ids, int32_t *n) {
    int32_t cap = 256;
    for (;;) {
        int32_t *buf = realloc(*ids, sizeof *buf * (size_t)cap);
        if (!buf) return LISA_ERR_OOM;
        *ids = buf;
        lisa_status st = image ? lisa_tokenizer_encode_image_prompt(tok, s, len, buf, cap, n)
                               : lisa_tokenizer_encode(tok, s, len, add_special, buf, cap, n);
        if (st != LISA_ERR_LIMIT || *n <= cap) return st;
        cap = *n;
    }
}

static void handle_line(FILE *o, const lisa_tokenizer *tok, const char *line) {
    cJSON *req = cJSON_Parse(line);
    if (!req || !cJSON_IsObject(req)) {
        cJSON_Delete(req);
        print_error(o, "malformed JSON: expected one object per line");
        return;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req, "text");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(req, "query");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(req, "ids");
    int32_t *out = NULL, n = 0;
    char msg[1200];
    if (cJSON_IsString(text) || cJSON_IsString(prompt) || cJSON_IsString(query)) {
        const bool image = !cJSON_IsString(text) && (cJSON_IsString(query) || opt_bool(req, "image", false));
        char *built = NULL;
        const char *s = cJSON_IsString(text) ? text->valuestring : cJSON_IsString(prompt) ? prompt->valuestring : NULL;
        if (!s) {
            size_t need = 0;
            const bool mm = opt_bool(req, "use_mm_start_end", true);
            lisa_prompt_llava_v1(NULL, 0, query->valuestring, mm, &need);
            built = malloc(need + 1);
            if (!built || lisa_prompt_llava_v1(built, need + 1, query->valuestring, mm, NULL) != LISA_OK) {
                free(built);
                cJSON_Delete(req);
                print_error(o, "out of memory building the prompt");
                return;
            }
            s = built;
        }
        lisa_status st = encode_any(tok, image, s, strlen(s), opt_bool(req, "add_special_tokens", true), &out, &n);
        if (st != LISA_OK) {
            snprintf(msg, sizeof msg, "%s: %s", lisa_status_name(st), lisa_last_error());
            print_error(o, msg);
        } else {
            print_ids(o, tok, out, n, built);
        }
        free(built);
    } else if (cJSON_IsArray(ids)) {
        const int cnt = cJSON_GetArraySize(ids);
        out = malloc(sizeof *out * (size_t)(cnt ? cnt : 1));
        const cJSON *it;
        bool ok = out != NULL;
        n = 0;
        cJSON_ArrayForEach(it, ids) {
            if (!ok) break;
            if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble) {
                ok = false;
                break;
            }
            out[n++] = (int32_t)it->valuedouble;
        }
        if (!ok) {
            print_error(o, "\"ids\" must be an array of integers");
        } else {
            const bool skip = opt_bool(req, "skip_special_tokens", false);
            size_t len = 0;
            lisa_status st = lisa_tokenizer_decode(tok, out, n, skip, NULL, 0, &len);
            char *buf = NULL;
            if (st == LISA_OK || st == LISA_ERR_LIMIT) {
                buf = malloc(len + 1);
                st = buf ? lisa_tokenizer_decode(tok, out, n, skip, buf, len + 1, &len) : LISA_ERR_OOM;
            }
            if (st != LISA_OK) {
                snprintf(msg, sizeof msg, "%s: %s", lisa_status_name(st), lisa_last_error());
                print_error(o, msg);
            } else {
                if (opt_bool(req, "chat_cleanup", false)) len = lisa_tokenizer_chat_cleanup(buf, len);
                fputs("{\"text\":", o);
                put_json_string(o, buf, len);
                fputs("}\n", o);
                fflush(o);
            }
            free(buf);
        }
    } else {
        print_error(o, "expected a \"text\", \"prompt\", \"query\" string or an \"ids\" array");
    }
    free(out);
    cJSON_Delete(req);
}

lisa_status lisa_tokenize_job_run(const lisa_tokenize_job *j, FILE *in, FILE *out) {
    lisa_tokenizer_params p = lisa_tokenizer_default_params();
    p.sp_model_path = j->sp_model;
    if (j->legacy >= 0) p.legacy = (int8_t)(j->legacy != 0);
    lisa_tokenizer *tok = NULL;
    lisa_status st = lisa_tokenizer_load_ex(&tok, j->model_dir, &p);
    if (st != LISA_OK) return st;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, in)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0) continue;
        handle_line(out, tok, line);
    }
    free(line);
    lisa_tokenizer_free(tok);
    return LISA_OK;
}
