/* tests/test_serve.c — `lisa serve` end to end over loopback, against the tiny model:
 *   - a multipart request, a JSON request (base64 and data: URL, options) and two requests on one
 *     keep-alive connection answer 200 with the very result of the library (lisa_segment_file in
 *     this process: answer, tokens, COCO RLE re-encoded from its mask, area, bbox; the PNG option
 *     decodes to the same mask);
 *   - every kind of bad input is answered with its 4xx and a JSON {error: {code, status, message}},
 *     never 500, and the server stays healthy;
 *   - image_path only under --allow-paths; 503 + Retry-After when the queue is full; 504 after the
 *     timeout with the late result dropped; /health, /metrics counts that match what was sent;
 *   - SIGTERM with requests in flight: all of them answered, new connections refused, exit 0.
 * The server runs as a child process; its stderr is checked for sanitizer reports. */
#include "golden.h"
#include "httpc.h"
#include "loader/image.h"
#include "core/base64.h"
#include "server/base64.h"
#include "core/rle.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_REQ 240.0 /* seconds; generous: sanitizer builds on 2 busy cores */
#define CAT   IMAGES_DIR "/chelsea_tiny.png"
#define QUERY "What is the cat doing? Please output segmentation mask."

static char *tmpdir;
static tu_server srv;

static void setup(void) { tmpdir = tu_make_tmpdir("lisa-serve"); }
static void teardown(void) {
    if (srv.pid > 0) tu_server_stop(&srv, SIGKILL, 10);
    tu_remove_tree(tmpdir);
    free(tmpdir);
}

static void start(const char *extra) {
    cr_assert(tu_server_start(&srv, tmpdir, extra, 120), "lisa serve did not start (args: %s); log %s", extra, srv.log);
}

/* SIGTERM, exit 0, clean log */
static void stop_clean(void) {
    const int rc = tu_server_stop(&srv, SIGTERM, 120);
    cr_expect_eq(rc, 0, "lisa serve exit status %d after SIGTERM", rc);
    cr_expect(!tu_server_log_has_sanitizer_report(&srv), "sanitizer report in %s", srv.log);
}

static void *read_all(const char *path, size_t *n) {
    void *p = tu_read_file(path, n);
    cr_assert(p, "cannot read %s", path);
    return p;
}

static tu_http_resp post_form(const void *img, size_t img_len, const char *query, const char *extra_name,
                              const char *extra_value) {
    tu_form f;
    tu_form_init(&f);
    if (img) tu_form_add(&f, "image", "picture.png", "image/png", img, img_len);
    if (query) tu_form_text(&f, "query", query);
    if (extra_name) tu_form_text(&f, extra_name, extra_value);
    tu_form_end(&f);
    tu_http_resp r;
    tu_http(&r, srv.port, "POST", "/v1/segment", f.content_type, f.data, f.len, T_REQ);
    tu_form_free(&f);
    return r;
}

static tu_http_resp post_json(const char *json) {
    tu_http_resp r;
    tu_http(&r, srv.port, "POST", "/v1/segment", "application/json", json, strlen(json), T_REQ);
    return r;
}

static char *b64(const void *p, size_t n) {
    char *s = malloc(lisa_base64_encoded_len(n) + 1);
    cr_assert(s);
    lisa_base64_encode(s, p, n);
    return s;
}

/* well-formed UTF-8 (RFC 3629), checked byte by byte against the ranges of its table 3-7 */
static bool utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++)
            if (s[i + k] < (k == 1 ? lo : 0x80) || s[i + k] > (k == 1 ? hi : 0xbf)) return false;
        i += len;
    }
    return true;
}

/* the error body: {"error": {"code", "status", "message"}}, valid UTF-8 */
static void expect_error(tu_http_resp *r, int status, const char *code, const char *what) {
    cr_expect_eq(r->status, status, "%s: HTTP %d, want %d: %s", what, r->status, status, r->body ? r->body : "");
    cr_expect(r->body && utf8_ok((const unsigned char *)r->body, r->body_len), "%s: the body is not UTF-8", what);
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cr_expect(cJSON_IsObject(e), "%s: no JSON error object: %s", what, r->body ? r->body : "(none)");
    if (e) {
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(e, "code"));
        cr_expect(c && !strcmp(c, code), "%s: code %s, want %s (%s)", what, c ? c : "(none)", code,
                  cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
        cr_expect_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status")), status, "%s", what);
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
        cr_expect(m && *m, "%s: empty message", what);
    }
    char ct[128];
    cr_expect(tu_http_header(r, "Content-Type", ct, sizeof ct) && !strcmp(ct, "application/json"), "%s", what);
    cJSON_Delete(j);
    tu_http_free(r);
}

/* The reference: the same request through the library in this process. */
typedef struct ref_result {
    char answer[256];
    int32_t n_tokens, tokens[64];
    int32_t h, w;
    uint8_t *mask;
    char *counts;
    double bbox[4];
    uint64_t area;
} ref_result;

static void reference(ref_result *ref, const char *image, const char *query) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_OK, "%s", lisa_last_error());
    lisa_segment_params sp = lisa_segment_default_params();
    lisa_result *r = NULL;
    cr_assert_eq(lisa_segment_file(m, image, query, &sp, &r), LISA_OK, "%s", lisa_last_error());
    snprintf(ref->answer, sizeof ref->answer, "%s", lisa_result_answer(r));
    ref->n_tokens = lisa_result_n_tokens(r);
    cr_assert(ref->n_tokens <= 64);
    memcpy(ref->tokens, lisa_result_tokens(r), sizeof(int32_t) * (size_t)ref->n_tokens);
    cr_assert_eq(lisa_result_n_masks(r), 1, "the tiny model answers one [SEG]");
    const uint8_t *mk = lisa_result_mask(r, 0, &ref->h, &ref->w);
    ref->mask = malloc((size_t)ref->h * ref->w);
    memcpy(ref->mask, mk, (size_t)ref->h * ref->w);
    lisa_rle rle;
    cr_assert_eq(lisa_rle_encode(&rle, ref->mask, ref->h, ref->w), LISA_OK);
    ref->counts = lisa_rle_to_string(&rle);
    lisa_rle_bbox(ref->bbox, &rle);
    ref->area = lisa_rle_area(&rle);
    lisa_rle_free(&rle);
    lisa_result_free(r);
    lisa_model_free(m);
    cr_assert(ref->area > 0, "the reference mask is empty: the overlay checks would prove nothing");
}

/* a 200 body against the reference */
static void expect_result(tu_http_resp *r, const ref_result *ref, bool want_png, bool want_tokens, const char *what) {
    cr_assert_eq(r->status, 200, "%s: HTTP %d: %s", what, r->status, r->body ? r->body : "");
    cJSON *j = cJSON_Parse(r->body);
    cr_assert(j, "%s: body is not JSON", what);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "answer")), ref->answer, "%s", what);
    cr_expect_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "n_tokens")), ref->n_tokens, "%s", what);
    cr_expect(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id")) >= 1, "%s: id", what);
    cJSON *tokens = cJSON_GetObjectItem(j, "tokens");
    cr_expect_eq(tokens != NULL, want_tokens, "%s: tokens present = %d", what, tokens != NULL);
    for (int i = 0; tokens && i < ref->n_tokens; i++)
        cr_expect_eq((int)cJSON_GetNumberValue(cJSON_GetArrayItem(tokens, i)), ref->tokens[i], "%s: token %d", what, i);
    cJSON *t = cJSON_GetObjectItem(j, "timings");
    cr_expect(cJSON_GetNumberValue(cJSON_GetObjectItem(t, "total_ms")) > 0, "%s: timings", what);
    cJSON *masks = cJSON_GetObjectItem(j, "masks");
    cr_assert_eq(cJSON_GetArraySize(masks), 1, "%s: one mask", what);
    cJSON *m = cJSON_GetArrayItem(masks, 0), *rle = cJSON_GetObjectItem(m, "rle");
    cJSON *size = cJSON_GetObjectItem(rle, "size");
    cr_expect_eq((int)cJSON_GetNumberValue(cJSON_GetArrayItem(size, 0)), ref->h, "%s", what);
    cr_expect_eq((int)cJSON_GetNumberValue(cJSON_GetArrayItem(size, 1)), ref->w, "%s", what);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(rle, "counts")), ref->counts, "%s: RLE counts", what);
    cr_expect_eq((uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "area")), ref->area, "%s: area", what);
    for (int k = 0; k < 4; k++)
        cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "bbox"), k)), ref->bbox[k],
                     "%s: bbox[%d]", what, k);
    /* the RLE decodes to the reference mask (the string comparison above already implies it; this
     * checks the decoder path a client would use) */
    lisa_rle dec;
    cr_assert_eq(lisa_rle_from_string(&dec, ref->counts, ref->h, ref->w), LISA_OK);
    uint8_t *mk = malloc((size_t)ref->h * ref->w);
    lisa_rle_decode(mk, &dec);
    cr_expect(memcmp(mk, ref->mask, (size_t)ref->h * ref->w) == 0, "%s: decoded mask", what);
    lisa_rle_free(&dec);
    const char *png = cJSON_GetStringValue(cJSON_GetObjectItem(m, "png"));
    cr_expect_eq(png != NULL, want_png, "%s: png present = %d", what, png != NULL);
    if (png) {
        void *bytes = NULL;
        size_t n = 0;
        cr_assert_eq(lisa_base64_decode(&bytes, &n, png, strlen(png), "png"), LISA_OK);
        lisa_bitmap img;
        cr_assert_eq(lisa_image_decode(&img, bytes, n, "mask png", NULL), LISA_OK, "%s", lisa_last_error());
        cr_assert(img.h == ref->h && img.w == ref->w);
        bool same = true;
        for (int i = 0; i < ref->h * ref->w; i++)
            for (int c = 0; c < 3; c++)
                same &= img.data[3 * i + c] == (ref->mask[i] ? 255 : 0);
        cr_expect(same, "%s: the PNG mask differs from the reference", what);
        lisa_bitmap_free(&img);
        free(bytes);
    }
    free(mk);
    cJSON_Delete(j);
    tu_http_free(r);
}

static void ref_free(ref_result *r) {
    free(r->mask);
    free(r->counts);
}

/* the value of one sample line "name{labels} value" in a Prometheus text */
static double metric(const char *text, const char *series) {
    char pat[512];
    snprintf(pat, sizeof pat, "\n%s ", series);
    const char *p = strstr(text, pat);
    cr_assert(p, "metric %s missing", series);
    return strtod(p + strlen(pat), NULL);
}

TestSuite(serve, .init = setup, .fini = teardown);

Test(serve, segment_multipart_json_keepalive_metrics) {
    start("--quiet");
    ref_result ref;
    reference(&ref, CAT, QUERY);
    size_t n = 0;
    uint8_t *img = read_all(CAT, &n);

    tu_http_resp r = post_form(img, n, QUERY, NULL, NULL);
    expect_result(&r, &ref, false, false, "multipart");
    r = post_form(img, n, QUERY, "options", "{\"png\": true, \"tokens\": true}");
    expect_result(&r, &ref, true, true, "multipart + options");

    char *enc = b64(img, n);
    size_t cap = strlen(enc) + 512;
    char *json = malloc(cap);
    snprintf(json, cap, "{\"query\": \"%s\", \"image\": \"%s\", \"options\": {\"png\": true, \"tokens\": true}}", QUERY,
             enc);
    r = post_json(json);
    expect_result(&r, &ref, true, true, "JSON base64");
    snprintf(json, cap, "{\"image\": \"data:image/png;base64,%s\", \"query\": \"%s\"}", enc, QUERY);
    r = post_json(json);
    expect_result(&r, &ref, false, false, "JSON data URL");

    /* two requests on one keep-alive connection */
    const int fd = tu_http_connect(srv.port);
    cr_assert(fd >= 0);
    for (int k = 0; k < 2; k++) {
        char head[256];
        const int hn = snprintf(head, sizeof head,
                                "POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\n\r\n",
                                strlen(json));
        cr_assert(tu_http_send(fd, head, (size_t)hn) && tu_http_send(fd, json, strlen(json)));
        cr_assert(tu_http_recv(fd, &r, T_REQ), "keep-alive request %d: no response", k);
        expect_result(&r, &ref, false, false, "keep-alive");
    }
    close(fd);

    /* /health and /metrics account for the 6 requests */
    cr_assert(tu_http(&r, srv.port, "GET", "/health", NULL, NULL, 0, 30));
    cr_expect_eq(r.status, 200);
    cJSON *h = cJSON_Parse(r.body);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(h, "status")), "ok");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(h, "backend")), "cpu");
    cJSON_Delete(h);
    tu_http_free(&r);
    cr_assert(tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 30));
    cr_expect_eq(r.status, 200);
    char ct[128];
    cr_expect(tu_http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/plain; version=0.0.4"));
    cr_expect_eq(metric(r.body, "lisa_http_requests_total{path=\"/v1/segment\",code=\"200\"}"), 6);
    cr_expect_eq(metric(r.body, "lisa_http_requests_total{path=\"/health\",code=\"200\"}"), 1);
    cr_expect_eq(metric(r.body, "lisa_stage_duration_seconds_count{stage=\"total\"}"), 6);
    cr_expect_eq(metric(r.body, "lisa_stage_duration_seconds_bucket{stage=\"total\",le=\"+Inf\"}"), 6);
    cr_expect_eq(metric(r.body, "lisa_engine_requests_total{outcome=\"completed\"}"), 6);
    /* every request decodes ref.n_tokens - 1 times after its prefill token */
    cr_expect_geq(metric(r.body, "lisa_decode_batch_size_sum"), 6 * (ref.n_tokens - 1));
    cr_expect_geq(metric(r.body, "lisa_decode_batch_size_count"), 1);
    cr_expect_gt(metric(r.body, "lisa_kv_pages_total"), 0);
    /* one picture asked six times: encoded once, its prompt prefix reused five times (issue #17) */
    cr_expect_eq(metric(r.body, "lisa_image_cache_requests_total{result=\"miss\"}"), 1);
    cr_expect_eq(metric(r.body, "lisa_image_cache_requests_total{result=\"hit\"}"), 5);
    cr_expect_eq(metric(r.body, "lisa_image_cache_entries"), 1);
    cr_expect_gt(metric(r.body, "lisa_image_cache_capacity_bytes"), 0);
    cr_expect_eq(metric(r.body, "lisa_kv_prefix_hits_total"), 5);
    cr_expect_eq(metric(r.body, "lisa_kv_prefix_nodes"), 2);
    cr_expect_eq(metric(r.body, "lisa_queue_depth"), 0);
    cr_expect_eq(metric(r.body, "lisa_gpu_memory_used_bytes"), 0);
    cr_expect_gt(metric(r.body, "process_resident_memory_bytes"), 1e6);
    tu_http_free(&r);

    free(json);
    free(enc);
    free(img);
    ref_free(&ref);
    stop_clean();
}

Test(serve, bad_requests_get_their_4xx) {
    start("--quiet --max-query-tokens 16 --max-query-bytes 200 --max-body-bytes 400000 --max-new-tokens 50");
    size_t n = 0, nt = 0, nb = 0;
    uint8_t *img = read_all(CAT, &n);
    uint8_t *trunc = read_all(IMAGES_DIR "/bad/truncated.png", &nt);
    uint8_t *bomb = read_all(IMAGES_DIR "/bad/bomb.png", &nb);
    tu_http_resp r;

    /* the image */
    r = post_form("this is not an image", 20, QUERY, NULL, NULL);
    expect_error(&r, 400, "invalid_image", "text as the image");
    r = post_form(trunc, nt, QUERY, NULL, NULL);
    expect_error(&r, 400, "invalid_image", "truncated PNG");
    r = post_form(bomb, nb, QUERY, NULL, NULL);
    expect_error(&r, 400, "input_too_large", "decompression bomb (pixels over the limit)");
    r = post_form(NULL, 0, QUERY, NULL, NULL);
    expect_error(&r, 400, "invalid_request", "no image");
    r = post_form("", 0, QUERY, NULL, NULL);
    expect_error(&r, 400, "invalid_request", "empty image part");
    /* the query */
    r = post_form(img, n, "", NULL, NULL);
    expect_error(&r, 400, "invalid_query", "empty query");
    r = post_form(img, n, " \t\n", NULL, NULL);
    expect_error(&r, 400, "invalid_query", "blank query");
    r = post_form(img, n, NULL, NULL, NULL);
    expect_error(&r, 400, "invalid_request", "no query");
    r = post_form(img, n, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen", NULL,
                  NULL);
    expect_error(&r, 400, "query_too_long", "17+ tokens");
    char longq[300];
    memset(longq, 'a', sizeof longq - 1);
    longq[sizeof longq - 1] = '\0';
    r = post_form(img, n, longq, NULL, NULL);
    expect_error(&r, 400, "query_too_long", "299 bytes");
    r = post_form(img, n, "where is <image> here", NULL, NULL);
    expect_error(&r, 400, "invalid_query", "<image> in the query");
    r = post_form(img, n, "caf\xc3(", NULL, NULL);
    expect_error(&r, 400, "invalid_query", "invalid UTF-8");
    /* the form */
    r = post_form(img, n, QUERY, "imagefile", "x");
    expect_error(&r, 400, "invalid_form", "unknown field");
    r = post_form(img, n, QUERY, "max_new_tokens", "51");
    expect_error(&r, 400, "invalid_form", "max_new_tokens over the cap");
    r = post_form(img, n, QUERY, "png", "maybe");
    expect_error(&r, 400, "invalid_form", "bad flag");
    {
        static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nhello";
        r = (tu_http_resp){0};
        tu_http(&r, srv.port, "POST", "/v1/segment", "multipart/form-data; boundary=XyZ", body, sizeof body - 1, T_REQ);
        expect_error(&r, 400, "invalid_form", "multipart without its closing boundary (no image)");
    }
    /* JSON */
    static const struct {
        const char *body, *code, *what;
    } js[] = {
        {"{\"query\": \"x\", \"image\": \"Zm9v\"", "invalid_json", "truncated JSON"},
        {"not json at all", "invalid_json", "not JSON"},
        {"[\"query\"]", "invalid_json", "an array"},
        {"{\"query\": \"x\", \"image\": \"Zm9v!!\"}", "invalid_json", "bad base64"},
        {"{\"query\": \"x\", \"image\": \"Zm9v\", \"extra\": 1}", "invalid_json", "unknown member"},
        {"{\"query\": \"x\", \"image\": \"Zm9v\", \"\xff\xe2\x82\": 1}", "invalid_json",
         "unknown member named in invalid UTF-8 (echoed in the message)"},
        {"{\"query\": 5, \"image\": \"Zm9v\"}", "invalid_json", "query not a string"},
        {"{\"query\": \"x\", \"image\": \"Zm9v\", \"options\": {\"max_new_tokens\": -1}}", "invalid_json",
         "max_new_tokens < 1"},
        {"{\"query\": \"x\"}", "invalid_request", "no image"},
        {"{\"query\": \"x\", \"image\": \"Zm9vYmFy\"}", "invalid_image", "6 bytes that are no image"},
        {"{\"query\": \"x\", \"image_path\": \"/etc/passwd\"}", "path_not_allowed", "image_path without --allow-paths"},
    };
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        r = post_json(js[i].body);
        expect_error(&r, !strcmp(js[i].code, "path_not_allowed") ? 403 : 400, js[i].code, js[i].what);
    }
    /* HTTP level */
    char *big = calloc(1, 500000);
    r = post_form(big, 500000, QUERY, NULL, NULL);
    expect_error(&r, 413, "body_too_large", "Content-Length over --max-body-bytes");
    {
        /* chunked, no Content-Length: 413 at the end of the body */
        char head[] = "POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        const int fd = tu_http_connect(srv.port);
        cr_assert(fd >= 0);
        tu_http_send(fd, head, strlen(head));
        char chunk[70000];
        const int hn = snprintf(chunk, sizeof chunk, "%x\r\n", 65536);
        memset(chunk + hn, ' ', 65536);
        memcpy(chunk + hn + 65536, "\r\n", 2);
        for (int k = 0; k < 8; k++)
            if (!tu_http_send(fd, chunk, (size_t)hn + 65538)) break;
        tu_http_send(fd, "0\r\n\r\n", 5);
        cr_assert(tu_http_recv(fd, &r, T_REQ), "no response to an over-long chunked body");
        close(fd);
        expect_error(&r, 413, "body_too_large", "chunked body over --max-body-bytes");
    }
    free(big);
    r = (tu_http_resp){0};
    tu_http(&r, srv.port, "POST", "/v1/segment", "text/plain", "hello", 5, T_REQ);
    expect_error(&r, 415, "unsupported_media_type", "text/plain");
    tu_http(&r, srv.port, "POST", "/v1/segment", "application/x-www-form-urlencoded", "query=x", 7, T_REQ);
    expect_error(&r, 415, "unsupported_media_type", "urlencoded form");
    tu_http(&r, srv.port, "GET", "/v1/segment", NULL, NULL, 0, T_REQ);
    char allow[64];
    cr_expect(tu_http_header(&r, "Allow", allow, sizeof allow) && !strcmp(allow, "POST"));
    expect_error(&r, 405, "method_not_allowed", "GET /v1/segment");
    tu_http(&r, srv.port, "DELETE", "/metrics", NULL, NULL, 0, T_REQ);
    expect_error(&r, 405, "method_not_allowed", "DELETE /metrics");
    tu_http(&r, srv.port, "GET", "/v2/segment", NULL, NULL, 0, T_REQ);
    expect_error(&r, 404, "not_found", "unknown path");

    /* still serving, and nothing was a 500 */
    r = post_form(img, n, QUERY, NULL, NULL);
    cr_expect_eq(r.status, 200, "a valid request after the bad ones: %s", r.body ? r.body : "");
    tu_http_free(&r);
    cr_assert(tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 30));
    cr_expect(!strstr(r.body, "code=\"500\""), "a 500 was counted:\n%s", r.body);
    cr_expect_eq(metric(r.body, "lisa_http_requests_total{path=\"/v1/segment\",code=\"200\"}"), 1);
    tu_http_free(&r);
    free(img);
    free(trunc);
    free(bomb);
    stop_clean();
}

Test(serve, image_path_under_allow_paths) {
    char extra[1024];
    snprintf(extra, sizeof extra, "--quiet --allow-paths '%s'", IMAGES_DIR);
    start(extra);
    ref_result ref;
    reference(&ref, CAT, QUERY);
    char json[2048];
    snprintf(json, sizeof json, "{\"query\": \"%s\", \"image_path\": \"%s\"}", QUERY, CAT);
    tu_http_resp r = post_json(json);
    expect_result(&r, &ref, false, false, "image_path inside");
    snprintf(json, sizeof json, "{\"query\": \"q\", \"image_path\": \"%s/../tiny-lisa/config.json\"}", IMAGES_DIR);
    r = post_json(json);
    expect_error(&r, 403, "path_not_allowed", "a path escaping with ..");
    snprintf(json, sizeof json, "{\"query\": \"q\", \"image_path\": \"%s/no-such-file.png\"}", IMAGES_DIR);
    r = post_json(json);
    expect_error(&r, 400, "invalid_image", "a missing file");
    snprintf(json, sizeof json, "{\"query\": \"q\", \"image_path\": \"%s/bad/text.png\"}", IMAGES_DIR);
    r = post_json(json);
    expect_error(&r, 400, "invalid_image", "a file that is no image");
    ref_free(&ref);
    stop_clean();
}

typedef struct client_arg {
    const void *body;
    size_t len;
    const char *type;
    tu_http_resp r;
} client_arg;

static void *client(void *p) {
    client_arg *a = p;
    tu_http(&a->r, srv.port, "POST", "/v1/segment", a->type, a->body, a->len, T_REQ);
    return NULL;
}

Test(serve, full_queue_answers_503_with_retry_after) {
    start("--quiet --max-queue 1 --max-batch 1");
    size_t n = 0;
    uint8_t *img = read_all(CAT, &n);
    tu_form f;
    tu_form_init(&f);
    tu_form_add(&f, "image", "c.png", "image/png", img, n);
    tu_form_text(&f, "query", QUERY);
    tu_form_end(&f);
    /* 4 at once: one runs (~1 s of CPU), the others find the queue full */
    client_arg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (client_arg){.body = f.data, .len = f.len, .type = f.content_type};
        pthread_create(&th[i], NULL, client, &a[i]);
    }
    int ok = 0, full = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (a[i].r.status == 200) {
            ok++;
            tu_http_free(&a[i].r);
        } else {
            char ra[32];
            cr_expect(tu_http_header(&a[i].r, "Retry-After", ra, sizeof ra) && atoi(ra) >= 1, "Retry-After");
            expect_error(&a[i].r, 503, "queue_full", "a request beyond --max-queue 1");
            full++;
        }
    }
    cr_expect(ok >= 1 && full >= 1, "%d answered 200, %d answered 503", ok, full);
    tu_http_resp r;
    cr_assert(tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 30));
    cr_expect_eq(metric(r.body, "lisa_requests_rejected_total"), full);
    tu_http_free(&r);
    tu_form_free(&f);
    free(img);
    stop_clean();
}

Test(serve, timeout_answers_504_and_drops_the_late_result) {
    start("--quiet --timeout 0.05");
    size_t n = 0;
    uint8_t *img = read_all(CAT, &n);
    tu_http_resp r = post_form(img, n, QUERY, NULL, NULL);
    expect_error(&r, 504, "timeout", "a request slower than --timeout 0.05");
    /* the engine finishes it anyway; the collector drops it: the queue drains to empty */
    const double until = tu_now() + T_REQ;
    double running = -1, depth = -1, done = -1;
    while (tu_now() < until) {
        cr_assert(tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 30));
        running = metric(r.body, "lisa_requests_running");
        depth = metric(r.body, "lisa_queue_depth");
        done = metric(r.body, "lisa_engine_requests_total{outcome=\"completed\"}");
        cr_expect_eq(metric(r.body, "lisa_request_timeouts_total"), 1);
        tu_http_free(&r);
        if (done == 1 && running == 0 && depth == 0) break;
        usleep(100000);
    }
    cr_expect(done == 1 && running == 0 && depth == 0, "the late request did not finish: done %g running %g depth %g",
              done, running, depth);
    free(img);
    stop_clean(); /* no leak of the dropped result (LeakSanitizer in the sanitizer build) */
}

Test(serve, sigterm_finishes_requests_in_flight) {
    start("");
    size_t n = 0;
    uint8_t *img = read_all(CAT, &n);
    tu_form f;
    tu_form_init(&f);
    tu_form_add(&f, "image", "c.png", "image/png", img, n);
    tu_form_text(&f, "query", QUERY);
    tu_form_end(&f);
    client_arg a[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (client_arg){.body = f.data, .len = f.len, .type = f.content_type};
        pthread_create(&th[i], NULL, client, &a[i]);
    }
    /* wait until all three are in the server, then SIGTERM */
    const double until = tu_now() + 60;
    double inflight = 0;
    while (tu_now() < until && inflight < 3) {
        tu_http_resp r;
        if (tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 30))
            inflight = metric(r.body, "lisa_http_requests_in_flight");
        tu_http_free(&r);
        usleep(20000);
    }
    cr_assert_eq(inflight, 3, "the requests never reached the server");
    kill(srv.pid, SIGTERM);
    usleep(300000);
    cr_expect_lt(tu_http_connect(srv.port), 0, "a new connection was accepted after SIGTERM");
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(a[i].r.status, 200, "request %d in flight at SIGTERM: HTTP %d", i, a[i].r.status);
        tu_http_free(&a[i].r);
    }
    stop_clean();
    size_t ln = 0;
    char *log = tu_read_file(srv.log, &ln);
    cr_expect(log && strstr(log, "SIGTERM: finishing the requests in flight") && strstr(log, "lisa serve: stopped"),
              "log: %s", log ? log : "");
    free(log);
    tu_form_free(&f);
    free(img);
}

Test(serve, page_and_usage) {
    start("--quiet");
    tu_http_resp r;
    cr_assert(tu_http(&r, srv.port, "GET", "/", NULL, NULL, 0, 30));
    cr_expect_eq(r.status, 200);
    char ct[128];
    cr_expect(tu_http_header(&r, "Content-Type", ct, sizeof ct) && !strcmp(ct, "text/html; charset=utf-8"));
    cr_expect(strstr(r.body, "<canvas id=\"overlay\"") && strstr(r.body, "/v1/segment"), "the demo page");
    tu_http_free(&r);
    /* a second server on the same port fails with exit 1 and says why */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' serve --model '%s' --vision-tower '%s' --port %d > /dev/null 2> '%s/second.err'",
             LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, srv.port, tmpdir);
    int rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "second server on a busy port: status %d", rc);
    snprintf(cmd, sizeof cmd, "%s/second.err", tmpdir);
    size_t n = 0;
    char *err = tu_read_file(cmd, &n);
    cr_expect(err && strstr(err, "cannot listen"), "%s", err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' serve --port 1 > /dev/null 2>&1", LISA_TOOL_PATH);
    rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "no --model: usage error");
    snprintf(cmd, sizeof cmd, "'%s' serve --model x --port 70000 > /dev/null 2>&1", LISA_TOOL_PATH);
    rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad port: usage error");
    stop_clean();
}
