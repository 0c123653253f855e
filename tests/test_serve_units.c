/* tests/test_serve_units.c — the server's request parsing (server/request.c) and Prometheus
 * rendering (server/metrics.c), without a socket: every accepted form, every rejection and its
 * message, histogram buckets against hand-counted expectations. */
#include "core/base64.h"
#include "server/metrics.h"
#include "server/request.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static lisa_status parse(srv_input *in, const char *json) {
    srv_input_init(in);
    return srv_parse_json(in, json, strlen(json), 100);
}

static void expect_json_error(const char *json, lisa_status want, const char *msg_part) {
    srv_input in;
    const lisa_status s = parse(&in, json);
    const lisa_status got = s != LISA_OK ? s : srv_input_check(&in);
    cr_expect_eq(got, want, "%s: got %s (%s)", json, lisa_status_name(got), lisa_last_error());
    cr_expect(strstr(lisa_last_error(), msg_part) != NULL, "%s: message '%s' lacks '%s'", json, lisa_last_error(),
              msg_part);
    srv_input_free(&in);
}

Test(serve_request, json_forms) {
    srv_input in;
    /* "foobar" = Zm9vYmFy */
    cr_assert_eq(parse(&in, "{\"query\": \"where?\", \"image\": \"Zm9vYmFy\"}"), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(srv_input_check(&in), LISA_OK);
    cr_expect_str_eq(in.query, "where?");
    cr_expect(in.image_size == 6 && memcmp(in.image, "foobar", 6) == 0);
    cr_expect(!in.opt.png && !in.opt.tokens && !in.opt.text_output && in.opt.timings && in.opt.max_new_tokens == 0);
    srv_input_free(&in);
    cr_assert_eq(parse(&in, " {\"image\": \"data:image/png;base64,Zm9v\", \"query\": \"q\", \"options\": "
                            "{\"max_new_tokens\": 7, \"png\": true, \"tokens\": true, \"text_output\": true, "
                            "\"timings\": false}}\n"),
                 LISA_OK, "%s", lisa_last_error());
    cr_expect(in.image_size == 3 && memcmp(in.image, "foo", 3) == 0);
    cr_expect(in.opt.png && in.opt.tokens && in.opt.text_output && !in.opt.timings && in.opt.max_new_tokens == 7);
    srv_input_free(&in);
    cr_assert_eq(parse(&in, "{\"image_path\": \"/x/y.png\", \"query\": \"q\"}"), LISA_OK);
    cr_expect_str_eq(in.image_path, "/x/y.png");
    cr_expect_eq(srv_input_check(&in), LISA_OK);
    srv_input_free(&in);
}

Test(serve_request, json_rejections) {
    expect_json_error("{\"query\": \"q\"", LISA_ERR_FORMAT, "malformed JSON");
    expect_json_error("", LISA_ERR_FORMAT, "malformed JSON");
    expect_json_error("[1, 2]", LISA_ERR_FORMAT, "must be an object");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\"} x", LISA_ERR_FORMAT, "data after the object");
    expect_json_error("{\"query\": 3, \"image\": \"Zg==\"}", LISA_ERR_FORMAT, "\"query\" must be a string");
    expect_json_error("{\"query\": \"q\", \"img\": \"Zg==\"}", LISA_ERR_INVALID_ARG, "unknown member \"img\"");
    expect_json_error("{\"query\": \"q\", \"query\": \"r\", \"image\": \"Zg==\"}", LISA_ERR_INVALID_ARG, "twice");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg!=\"}", LISA_ERR_FORMAT, "invalid base64 character");
    expect_json_error("{\"query\": \"q\", \"image\": \"data:image/png,abc\"}", LISA_ERR_FORMAT, ";base64,");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": 3}", LISA_ERR_FORMAT, "JSON object");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": {\"max_new_tokens\": 0}}", LISA_ERR_FORMAT,
                      "1..100");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": {\"max_new_tokens\": 101}}",
                      LISA_ERR_FORMAT, "1..100");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": {\"max_new_tokens\": 2.5}}",
                      LISA_ERR_FORMAT, "integer");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": {\"png\": 1}}", LISA_ERR_FORMAT,
                      "true or false");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"options\": {\"mask\": true}}", LISA_ERR_INVALID_ARG,
                      "unknown option \"mask\"");
    expect_json_error("{\"image\": \"Zg==\"}", LISA_ERR_INVALID_ARG, "no \"query\"");
    expect_json_error("{\"query\": \"q\"}", LISA_ERR_INVALID_ARG, "no \"image\"");
    expect_json_error("{\"query\": \"q\", \"image\": \"\"}", LISA_ERR_INVALID_ARG, "\"image\" is empty");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zg==\", \"image_path\": \"/a\"}", LISA_ERR_INVALID_ARG,
                      "not both");
}

/* issue 18: "\u0000" must not shorten the query (cJSON's strings end at a NUL): the query keeps its
 * length and srv_query_nul reports it; image / image_path with one are malformed */
Test(serve_request, json_nul_bytes) {
    srv_input in;
    cr_assert_eq(parse(&in, "{\"query\": \"Segment\\u0000 the cat.\", \"image\": \"Zm9v\"}"), LISA_OK, "%s",
                 lisa_last_error());
    cr_expect_eq(in.query_len, 17);
    cr_expect(memcmp(in.query, "Segment\0 the cat.", 18) == 0);
    size_t at = 99;
    cr_expect(srv_query_nul(&in, &at));
    cr_expect_eq(at, 7);
    srv_input_free(&in);
    /* the decoded bytes equal cJSON's for every escape (and a raw UTF-8 byte sequence) */
    cr_assert_eq(parse(&in, "{\"image\": \"Zm9v\", \"qu\\u0065ry\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t "
                            "\\u00e9\\u20ac\\ud83d\\ude00 caf\xc3\xa9\"}"),
                 LISA_OK, "%s", lisa_last_error());
    static const char want[] = "a\"b\\c/d\b\f\n\r\t \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 caf\xc3\xa9";
    cr_expect_eq(in.query_len, sizeof want - 1);
    cr_expect(memcmp(in.query, want, sizeof want) == 0, "decoded query: %s", in.query);
    cr_expect(!srv_query_nul(&in, NULL));
    srv_input_free(&in);
    /* a query after a nested options object and an image_path with escapes */
    cr_assert_eq(parse(&in, "{\"options\": {\"png\": true}, \"image_path\": \"/x/\\u0079.png\", \"query\": \"q\\u0000\"}"),
                 LISA_OK, "%s", lisa_last_error());
    cr_expect_str_eq(in.image_path, "/x/y.png");
    cr_expect(in.query_len == 2 && srv_query_nul(&in, &at) && at == 1);
    srv_input_free(&in);
    expect_json_error("{\"query\": \"q\", \"image_path\": \"/etc/passwd\\u0000.png\"}", LISA_ERR_FORMAT,
                      "\"image_path\" contains a NUL byte");
    expect_json_error("{\"query\": \"q\", \"image\": \"Zm9v\\u0000Zm9v\"}", LISA_ERR_FORMAT,
                      "\"image\" contains a NUL byte");
    /* multipart: the raw byte, with the part's length */
    srv_input_init(&in);
    cr_assert_eq(srv_form_chunk(&in, "query", "ab\0c", 0, 4), LISA_OK);
    cr_expect(srv_query_nul(&in, &at) && at == 2);
    srv_input_free(&in);
}

/* feeds a field in chunks of `step` bytes, as the HTTP library does */
static lisa_status feed(srv_input *in, const char *key, const char *v, size_t step) {
    const size_t n = strlen(v);
    for (size_t off = 0; off < n || off == 0; off += step) {
        const size_t k = n - off < step ? n - off : step;
        LISA_TRY(srv_form_chunk(in, key, v + off, off, k));
        if (n == 0) break;
    }
    return LISA_OK;
}

Test(serve_request, multipart_fields) {
    srv_input in;
    srv_input_init(&in);
    cr_assert_eq(feed(&in, "image", "\x89PNG-bytes-here", 3), LISA_OK);
    cr_assert_eq(feed(&in, "query", "What is this?", 4), LISA_OK);
    cr_assert_eq(feed(&in, "options", "{\"png\": true, \"max_new_tokens\": 9}", 5), LISA_OK);
    cr_assert_eq(feed(&in, "max_new_tokens", "12", 1), LISA_OK); /* overrides options */
    cr_assert_eq(feed(&in, "tokens", "true", 2), LISA_OK);
    cr_assert_eq(feed(&in, "timings", "0", 1), LISA_OK);
    cr_assert_eq(srv_form_finish(&in, 100), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(srv_input_check(&in), LISA_OK);
    cr_expect(in.image_size == 15 && memcmp(in.image, "\x89PNG-bytes-here", 15) == 0);
    cr_expect_str_eq(in.query, "What is this?");
    cr_expect(in.opt.png && in.opt.tokens && !in.opt.timings && in.opt.max_new_tokens == 12);
    srv_input_free(&in);

    srv_input_init(&in);
    cr_expect_eq(feed(&in, "imagefile", "x", 1), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "unknown form field \"imagefile\""));
    cr_expect_eq(feed(&in, "query", "a", 1), LISA_OK);
    cr_expect_eq(feed(&in, "query", "b", 1), LISA_ERR_INVALID_ARG, "a second part of the same name");
    cr_expect(strstr(lisa_last_error(), "twice"));
    srv_input_free(&in);

    static const struct {
        const char *key, *value, *msg;
    } bad[] = {{"png", "yes", "1/0/true/false"},
               {"max_new_tokens", "12x", "integer"},
               {"max_new_tokens", "0", "1..100"},
               {"options", "{png: 1}", "malformed JSON"},
               {"options", "{\"png\": 1}", "true or false"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_input_init(&in);
        cr_assert_eq(feed(&in, bad[i].key, bad[i].value, 2), LISA_OK);
        cr_expect_eq(srv_form_finish(&in, 100), LISA_ERR_FORMAT, "%s=%s", bad[i].key, bad[i].value);
        cr_expect(strstr(lisa_last_error(), bad[i].msg), "%s=%s: '%s'", bad[i].key, bad[i].value, lisa_last_error());
        srv_input_free(&in);
    }
    srv_input_init(&in);
    cr_expect_eq(srv_form_chunk(&in, "png", "0123456789012345678901234567890123", 0, 34), LISA_ERR_FORMAT, "too long");
    srv_input_free(&in);
    srv_input_init(&in);
    cr_assert_eq(srv_form_chunk(&in, "query", "a\0b", 0, 3), LISA_OK);
    cr_expect_eq(srv_form_finish(&in, 100), LISA_ERR_FORMAT, "a NUL inside the query");
    srv_input_free(&in);
}

Test(serve_metrics, histogram_text) {
    static const double le[] = {0.5, 1, 2.5};
    srv_hist h;
    srv_hist_init(&h, le, 3);
    const double obs[] = {0.1, 0.5, 0.7, 1, 3, 100, 2.5};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        srv_hist_observe(&h, obs[i]);
    srv_buf b = {0};
    srv_hist_write(&b, "x_seconds", "stage=\"a\"", &h);
    cr_assert(!b.oom);
    /* by hand: <= 0.5: 0.1, 0.5 -> 2; <= 1: + 0.7, 1 -> 4; <= 2.5: + 2.5 -> 5; +Inf: 7 */
    const char *want = "x_seconds_bucket{stage=\"a\",le=\"0.5\"} 2\n"
                       "x_seconds_bucket{stage=\"a\",le=\"1\"} 4\n"
                       "x_seconds_bucket{stage=\"a\",le=\"2.5\"} 5\n"
                       "x_seconds_bucket{stage=\"a\",le=\"+Inf\"} 7\n"
                       "x_seconds_sum{stage=\"a\"} 107.8\n"
                       "x_seconds_count{stage=\"a\"} 7\n";
    cr_expect_str_eq(b.p, want);
    srv_buf_free(&b);
    srv_hist_write(&b, "y", "", &h);
    cr_expect(strstr(b.p, "y_bucket{le=\"+Inf\"} 7\ny_sum 107.8\ny_count 7\n") != NULL, "%s", b.p);
    srv_buf_free(&b);
}

/* issue 18: bucket bounds print as the shortest decimal that reads back ("0.0025", not
 * "0.0025000000000000001"); values keep full precision */
Test(serve_metrics, shortest_decimals) {
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0.0025, "0.0025"}, {0.001, "0.001"}, {0.1, "0.1"}, {2.5, "2.5"}, {600, "600"},
                 {1.0 / 3.0, "0.3333333333333333"}, {0.1 + 0.2, "0.30000000000000004"}, {1e300, "1e+300"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_buf b = {0};
        srv_write_value(&b, cases[i].v);
        cr_expect_str_eq(b.p, cases[i].text);
        srv_buf_free(&b);
    }
    static const double le[] = {0.001, 0.0025};
    srv_hist h;
    srv_hist_init(&h, le, 2);
    srv_buf b = {0};
    srv_hist_write(&b, "z", "", &h);
    cr_expect(strstr(b.p, "z_bucket{le=\"0.0025\"} 0\n"), "%s", b.p);
    srv_buf_free(&b);
}

Test(serve_metrics, exposition) {
    srv_metrics m;
    srv_metrics_init(&m);
    srv_metrics_request(&m, SRV_ROUTE_SEGMENT, 200, 1.5);
    srv_metrics_request(&m, SRV_ROUTE_SEGMENT, 200, 0.2);
    srv_metrics_request(&m, SRV_ROUTE_SEGMENT, 400, 0.001);
    srv_metrics_request(&m, SRV_ROUTE_OTHER, 404, 0.001);
    lisa_timings t = {.preprocess_ms = 20, .decode_ms = 1500, .total_ms = 2000};
    srv_metrics_stages(&m, &t);
    srv_metrics_count(&m, &m.timeouts);
    srv_gauges g;
    memset(&g, 0, sizeof g);
    g.engine.queued = 2;
    g.engine.ready = 1;
    g.engine.running = 3;
    g.engine.kv_pages_used = 10;
    g.engine.kv_pages_total = 64;
    g.engine.decode_steps = 6;
    g.engine.decode_rows = 1 + 2 + 3 + 3 + 4 + 16;
    g.engine.decode_batch_hist[0] = 1; /* b = 1 */
    g.engine.decode_batch_hist[1] = 1; /* b = 2 */
    g.engine.decode_batch_hist[2] = 3; /* b = 3, 3, 4 */
    g.engine.decode_batch_hist[4] = 1; /* b = 16 */
    g.max_queue = 64;
    g.rss_bytes = 123456;
    g.backend = "cpu";
    srv_buf b = {0};
    srv_metrics_render(&b, &m, &g);
    cr_assert(!b.oom);
    static const char *const lines[] = {
        "# TYPE lisa_http_requests_total counter\n",
        "lisa_http_requests_total{path=\"/v1/segment\",code=\"200\"} 2\n",
        "lisa_http_requests_total{path=\"/v1/segment\",code=\"400\"} 1\n",
        "lisa_http_requests_total{path=\"other\",code=\"404\"} 1\n",
        "lisa_http_request_duration_seconds_count{path=\"/v1/segment\"} 3\n",
        "lisa_stage_duration_seconds_bucket{stage=\"decode\",le=\"1\"} 0\n",
        "lisa_stage_duration_seconds_bucket{stage=\"decode\",le=\"2.5\"} 1\n",
        "lisa_stage_duration_seconds_sum{stage=\"preprocess\"} 0.02\n",
        "lisa_request_timeouts_total 1\n",
        "lisa_queue_depth 3\n",
        "lisa_requests_running 3\n",
        "lisa_decode_batch_size_bucket{le=\"1\"} 1\n",
        "lisa_decode_batch_size_bucket{le=\"2\"} 2\n",
        "lisa_decode_batch_size_bucket{le=\"4\"} 5\n",
        "lisa_decode_batch_size_bucket{le=\"8\"} 5\n",
        "lisa_decode_batch_size_bucket{le=\"16\"} 6\n",
        "lisa_decode_batch_size_bucket{le=\"256\"} 6\n",
        "lisa_decode_batch_size_bucket{le=\"+Inf\"} 6\n",
        "lisa_decode_batch_size_sum 29\n",
        "lisa_decode_batch_size_count 6\n",
        "lisa_kv_pages_used 10\n",
        "lisa_kv_pages_capacity 64\n", /* renamed from _total (a gauge; issue 18, promtool) */
        "lisa_gpu_memory_used_bytes 0\n",
        "process_resident_memory_bytes 123456\n",
        "lisa_build_info{version=\"0.1.0\",backend=\"cpu\"} 1\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_expect(strstr(b.p, lines[i]) != NULL, "missing: %s", lines[i]);
    /* every sample line is "name{labels} value" or "name value"; every family has HELP and TYPE */
    int n_type = 0, n_help = 0;
    for (char *line = b.p; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert(nl, "unterminated last line");
        *nl = '\0';
        if (!strncmp(line, "# TYPE ", 7))
            n_type++;
        else if (!strncmp(line, "# HELP ", 7))
            n_help++;
        else {
            char *sp = strrchr(line, ' ');
            cr_assert(sp && sp[1], "no value: %s", line);
            char *end = NULL;
            const double v = strtod(sp + 1, &end);
            cr_expect(*end == '\0' && isfinite(v), "bad value in: %s", line);
        }
        line = nl + 1;
    }
    cr_expect(n_type > 10 && n_type == n_help);
    srv_buf_free(&b);
    srv_metrics_destroy(&m);
}
