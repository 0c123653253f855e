/* tools/cmd_tokenize.c — `lisa tokenize --model DIR`: JSON lines in, JSON lines out.
 *
 * Each stdin line is one JSON object:
 *   {"text": "...", "add_special_tokens": true}       -> {"ids": [...], "tokens": [...]}
 *   {"prompt": "...", "image": true}                  -> tokenizer_image_token: {"ids", "tokens"}
 *   {"query": "...", "use_mm_start_end": true}        -> the chat.py prompt and its ids:
 *                                                        {"prompt", "ids", "tokens"}
 *   {"ids": [...], "skip_special_tokens": false,
 *    "chat_cleanup": false}                            -> {"text": "..."}
 * A bad line gets {"error": "..."} and the command goes on. Exit 0; 1 if the tokenizer cannot be
 * loaded; 2 on a usage error. The placeholder id -200 is listed as the token "<image>".
 * Limitation: input strings end at an escaped NUL ("\u0000"), as cJSON parses them; output
 * strings are written whole (NUL as \u0000).
 */
#include "lisa.h"
#include "models/tokenizer.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa tokenize --model DIR [--sp-model PATH] [--legacy 0|1]\n"
               "\n"
               "Reads one JSON object per line on stdin and prints one per line:\n"
               "  {\"text\": S, \"add_special_tokens\": B}      encode (B defaults to true)\n"
               "  {\"prompt\": S, \"image\": true}              tokenizer_image_token (\"<image>\" -> -200)\n"
               "  {\"query\": S, \"use_mm_start_end\": B}       chat.py's llava_v1 prompt for S, encoded\n"
               "  {\"ids\": [..], \"skip_special_tokens\": B,   decode (B defaults to false;\n"
               "   \"chat_cleanup\": C}                        C: chat.py's newline/double-space cleanup)\n"
               "Output: {\"ids\": [..], \"tokens\": [..]} or {\"text\": S}; errors as {\"error\": S}.\n"
               "DIR holds tokenizer.model, added_tokens.json, special_tokens_map.json, tokenizer_config.json\n"
               "(--sp-model takes tokenizer.model from elsewhere).\n");
}

/* Output is written by hand (not cJSON) so that strings holding NUL bytes come out whole. */
static void put_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (c < 0x20)
                printf("\\u%04x", c);
            else
                putchar(c);
        }
    }
    putchar('"');
}

static void print_error(const char *msg) {
    fputs("{\"error\":", stdout);
    put_json_string(msg, strlen(msg));
    fputs("}\n", stdout);
    fflush(stdout);
}

static bool opt_bool(const cJSON *req, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    return cJSON_IsTrue(v);
}

/* {"ids": [...], "tokens": [...](, "prompt": ...)} */
static void print_ids(const lisa_tokenizer *tok, const int32_t *ids, int32_t n, const char *prompt) {
    fputs("{\"ids\":[", stdout);
    for (int32_t i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", ids[i]);
    fputs("],\"tokens\":[", stdout);
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = lisa_tokenizer_id_to_piece(tok, ids[i], &len);
        if (i) putchar(',');
        if (p)
            put_json_string(p, len);
        else
            put_json_string(ids[i] == LISA_IMAGE_TOKEN_INDEX ? "<image>" : "",
                            ids[i] == LISA_IMAGE_TOKEN_INDEX ? 7 : 0);
    }
    putchar(']');
    if (prompt) {
        fputs(",\"prompt\":", stdout);
        put_json_string(prompt, strlen(prompt));
    }
    fputs("}\n", stdout);
    fflush(stdout);
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

static void handle_line(const lisa_tokenizer *tok, const char *line) {
    cJSON *req = cJSON_Parse(line);
    if (!req || !cJSON_IsObject(req)) {
        cJSON_Delete(req);
        print_error("malformed JSON: expected one object per line");
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
                print_error("out of memory building the prompt");
                return;
            }
            s = built;
        }
        lisa_status st = encode_any(tok, image, s, strlen(s), opt_bool(req, "add_special_tokens", true), &out, &n);
        if (st != LISA_OK) {
            snprintf(msg, sizeof msg, "%s: %s", lisa_status_name(st), lisa_last_error());
            print_error(msg);
        } else {
            print_ids(tok, out, n, built);
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
            print_error("\"ids\" must be an array of integers");
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
                print_error(msg);
            } else {
                if (opt_bool(req, "chat_cleanup", false)) len = lisa_tokenizer_chat_cleanup(buf, len);
                fputs("{\"text\":", stdout);
                put_json_string(buf, len);
                fputs("}\n", stdout);
                fflush(stdout);
            }
            free(buf);
        }
    } else {
        print_error("expected a \"text\", \"prompt\", \"query\" string or an \"ids\" array");
    }
    free(out);
    cJSON_Delete(req);
}

int lisa_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    lisa_tokenizer_params p = lisa_tokenizer_default_params();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--sp-model") && i + 1 < argc) {
            p.sp_model_path = argv[++i];
        } else if (!strcmp(argv[i], "--legacy") && i + 1 < argc) {
            p.legacy = (int8_t)(atoi(argv[++i]) != 0);
        } else {
            fprintf(stderr, "lisa tokenize: unknown or incomplete option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir && !p.sp_model_path) {
        fprintf(stderr, "lisa tokenize: --model DIR is required\n\n");
        usage(stderr);
        return 2;
    }
    lisa_tokenizer *tok = NULL;
    lisa_status st = lisa_tokenizer_load_ex(&tok, dir, &p);
    if (st != LISA_OK) {
        fprintf(stderr, "lisa tokenize: %s: %s\n", lisa_status_name(st), lisa_last_error());
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0) continue;
        handle_line(tok, line);
    }
    free(line);
    lisa_tokenizer_free(tok);
    return 0;
}
