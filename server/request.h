/* server/request.h — what a POST /v1/segment request carries, parsed from either body form, with
 * the server's limits applied. Independent of the HTTP library (tested by test_serve_request.c).
 *
 * JSON (Content-Type: application/json):
 *   {"query": "...",                      required, a string
 *    "image": "<base64>",                 PNG/JPEG bytes, base64 or a data: URL ("data:image/png;base64,...")
 *    "image_path": "/srv/images/x.jpg",   instead of "image", only when the server allows paths
 *    "options": {"max_new_tokens": 64, "png": true, "tokens": true, "text_output": true, "timings": true}}
 * multipart/form-data: a file part "image" and text parts "query" and, optionally, "options" (the
 * same JSON object as text) and the options one by one ("max_new_tokens", "png", "tokens",
 * "text_output", "timings": "1"/"0"/"true"/"false"), which override "options".
 * Unknown members / parts, duplicates and wrong types are errors (a typo must not be ignored).
 */
#ifndef LISA_SERVER_REQUEST_H
#define LISA_SERVER_REQUEST_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Response options of one request. */
typedef struct srv_options {
    int32_t max_new_tokens; /* 0: the server's default */
    bool png;               /* masks[i].png (base64 PNG) */
    bool tokens;            /* the generated ids */
    bool text_output;       /* chat.py's text_output */
    bool timings;           /* per-stage timings (default true) */
} srv_options;

/* One parsed request. Owns every buffer (srv_input_free); lives for one HTTP request. */
typedef struct srv_input {
    uint8_t *image; /* encoded image bytes (multipart file or decoded base64) */
    size_t image_size;
    bool have_image;  /* the "image" part/member was present (possibly empty) */
    char *image_path; /* JSON "image_path" */
    char *query;      /* query_len bytes (NUL bytes included: srv_query_nul) + a terminating NUL; NULL when absent */
    srv_options opt;
    /* multipart accumulation */
    size_t query_len, query_cap, image_cap;
    char *options_text; /* the "options" part */
    size_t options_len, options_cap;
    char small[5][32]; /* max_new_tokens, png, tokens, text_output, timings parts */
    uint8_t small_len[5];
    uint32_t seen; /* bit per field, for duplicates */
} srv_input;

/* Errors are LISA_ERR_FORMAT (malformed JSON / base64 / option value, the message says where) or
 * LISA_ERR_INVALID_ARG (a missing, unknown, duplicate or conflicting member); both are HTTP 400. */

void srv_input_init(srv_input *in);
void srv_input_free(srv_input *in);

/* Parses a whole JSON body. max_new_tokens_cap bounds options.max_new_tokens. */
lisa_status srv_parse_json(srv_input *in, const char *body, size_t len, int32_t max_new_tokens_cap);

/* One chunk of multipart part `key` at offset `off` (the HTTP library delivers each part in
 * chunks; off == 0 starts a part). */
lisa_status srv_form_chunk(srv_input *in, const char *key, const char *data, uint64_t off, size_t size);
/* After the last chunk: parses the option parts. */
lisa_status srv_form_finish(srv_input *in, int32_t max_new_tokens_cap);

/* True when the query holds a NUL byte (JSON "\u0000", or a raw one in a form part), which C
 * strings would silently cut off: the request is refused (400 invalid_query). *at: its offset. */
bool srv_query_nul(const srv_input *in, size_t *at);

/* The request names exactly one image (bytes or path) and has a query. */
lisa_status srv_input_check(const srv_input *in);

#endif
