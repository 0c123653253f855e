/* server/http.c — the HTTP side of `lisa serve` (see server.h): routing, body intake with limits,
 * the engine hand-off and the collector thread, responses, metrics and graceful shutdown. */
#include "server/metrics.h"
#include "server/request.h"
#include "server/server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* server/web/index.html, compiled in by server/CMakeLists.txt */
extern const unsigned char lisa_web_index_html[];
extern const size_t lisa_web_index_html_len;

/* A submitted request whose result the collector has not delivered yet. A handler waits on cv
 * (under lisa_server.mu); when it gives up (timeout) it sets `abandoned` and the collector frees
 * the entry and the result. Owns res until a handler takes it. */
typedef struct srv_pending {
    struct srv_pending *next;
    uint64_t id;
    lisa_result *res;
    bool done, abandoned;
    pthread_cond_t cv;
} srv_pending;

/* Owns the engine, the daemon, the collector thread and every pending entry; borrows the model. */
struct lisa_server {
    lisa_model *m;
    lisa_model_info info; /* the model's backend, read once at start */
    lisa_engine *e;
    lisa_server_options o;
    char *allow_root; /* realpath of o.allow_paths, or NULL */
    struct MHD_Daemon *d;
    int32_t port;
    double t_start;
    srv_metrics metrics;
    pthread_condattr_t mono; /* condition variables time out on CLOCK_MONOTONIC */
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;    /* in_flight dropped to 0 */
    pthread_cond_t collect_cv; /* n_outstanding > 0, or stop_collector */
    /* under mu */
    int32_t in_flight;  /* HTTP requests begun and not completed (response sent or connection gone) */
    int32_t unanswered; /* HTTP requests begun and without a queued response (the metrics gauge) */
    bool draining, drained;
    srv_pending *pending;
    int32_t n_outstanding; /* submitted, result not yet claimed from the engine */
    bool stop_collector;
    pthread_t collector;
    bool collector_started;
};

/* One HTTP request. Owns its post processor, body buffers and parsed input; freed on completion. */
typedef struct srv_conn {
    lisa_server *srv;
    int32_t route;
    double t0;
    char method[16], url[160];
    enum { BODY_NONE, BODY_JSON, BODY_FORM } body;
    struct MHD_PostProcessor *pp;
    char *json;
    size_t json_len, json_cap;
    uint64_t received;
    /* the first error found while the body arrives, answered when it has */
    unsigned err_status;
    const char *err_code;
    char err_msg[600];
    bool responded;
    unsigned status;
    srv_input in;
} srv_conn;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct timespec mono_deadline(double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    return ts;
}

lisa_server_options lisa_server_default_options(void) {
    lisa_server_options o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 8080;
    o.max_body_bytes = 32ll << 20;
    o.max_image_pixels = 16ll << 20;
    o.max_query_tokens = 512;
    o.max_query_bytes = 4096;
    o.max_new_tokens = 512;
    o.timeout_s = 300;
    o.max_connections = 128;
    o.log_requests = true;
    o.engine = lisa_engine_default_params();
    o.engine.max_queue = 64;
    return o;
}

/* Length of the RFC 3629 UTF-8 sequence at s (no overlongs, no surrogates, <= U+10FFFF), 0 if
 * invalid. */
static int utf8_seq(const unsigned char *s) {
    const unsigned c = *s;
    const int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4)) return 0;
    uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (int k = 1; k <= n; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n + 1;
}

static bool valid_utf8(const unsigned char *s) {
    for (int n; *s; s += n)
        if (!(n = utf8_seq(s))) return false;
    return true;
}

/* Error messages echo request bytes (field names, paths) and may cut a sequence: replace every
 * invalid byte by '?' so that the JSON answer is valid UTF-8. */
static void sanitize_utf8(char *msg) {
    unsigned char *s = (unsigned char *)msg;
    while (*s) {
        const int n = utf8_seq(s);
        if (n) {
            s += n;
        } else {
            *s++ = '?';
        }
    }
}

/* ---- responses ------------------------------------------------------------------------------- */

static enum MHD_Result queue(srv_conn *q, struct MHD_Connection *c, unsigned status, const char *type, void *body,
                             size_t len, enum MHD_ResponseMemoryMode mode, const char *const *headers) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (const char *const *h = headers; h && h[0]; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    const enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) {
        q->responded = true;
        q->status = status;
        /* counted when queued, not when sent: a client that has its response sees it counted */
        srv_metrics_request(&q->srv->metrics, q->route, status, now_s() - q->t0);
        pthread_mutex_lock(&q->srv->mu);
        q->srv->unanswered--;
        pthread_mutex_unlock(&q->srv->mu);
    }
    return ret;
}

static enum MHD_Result queue_json(srv_conn *q, struct MHD_Connection *c, unsigned status, cJSON *root,
                                  const char *const *headers) {
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"status\":500,\"message\":\"out of memory\"}}";
        return queue(q, c, 500, "application/json", (void *)oom, sizeof oom - 1, MHD_RESPMEM_PERSISTENT, NULL);
    }
    return queue(q, c, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE, headers);
}

static enum MHD_Result reply_error(srv_conn *q, struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_error(srv_conn *q, struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sanitize_utf8(msg);
    cJSON *root = cJSON_CreateObject(), *e = root ? cJSON_AddObjectToObject(root, "error") : NULL;
    if (e) {
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddNumberToObject(e, "status", status);
        cJSON_AddStringToObject(e, "message", msg);
    }
    const char *h503[] = {MHD_HTTP_HEADER_RETRY_AFTER, "1", NULL};
    const char *hclose[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};
    const char *h405seg[] = {MHD_HTTP_HEADER_ALLOW, "POST", NULL};
    const char *h405get[] = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL};
    const char *const *h = NULL;
    if (!strcmp(code, "shutting_down"))
        h = hclose;
    else if (status == 503)
        h = h503;
    else if (status == 405)
        h = q->route == SRV_ROUTE_SEGMENT ? h405seg : h405get;
    return queue_json(q, c, status, root, h);
}

/* deferred: the body is still arriving */
static void set_error(srv_conn *q, unsigned status, const char *code, const char *msg) {
    if (q->err_status) return;
    q->err_status = status;
    q->err_code = code;
    snprintf(q->err_msg, sizeof q->err_msg, "%s", msg);
}

/* ---- the collector: engine results -> waiting handlers ---------------------------------------- */

static void free_pending(srv_pending *p) {
    pthread_cond_destroy(&p->cv);
    lisa_result_free(p->res);
    free(p);
}

/* under mu */
static srv_pending *unlink_pending(lisa_server *s, uint64_t id) {
    for (srv_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            srv_pending *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

static void *collector_main(void *arg) {
    lisa_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop_collector && s->n_outstanding == 0)
            pthread_cond_wait(&s->collect_cv, &s->mu);
        const bool stop = s->stop_collector;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        /* a bounded wait, so that a stop request is seen within 200 ms */
        lisa_result *r = NULL;
        const lisa_status st = lisa_engine_wait_timeout(s->e, 0, 200, &r);
        if (st != LISA_OK) {
            if (st != LISA_ERR_BUSY) usleep(1000); /* nothing in flight yet (cannot happen: submit precedes) */
            continue;
        }
        pthread_mutex_lock(&s->mu);
        s->n_outstanding--;
        srv_pending *p = s->pending;
        while (p && p->id != lisa_result_id(r))
            p = p->next;
        if (!p) {
            lisa_result_free(r);
        } else if (p->abandoned) {
            unlink_pending(s, p->id);
            lisa_result_free(r);
            free_pending(p);
        } else {
            p->res = r;
            p->done = true;
            pthread_cond_signal(&p->cv);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- POST /v1/segment ------------------------------------------------------------------------- */

static bool has_prefix_ci(const char *s, const char *prefix) { return strncasecmp(s, prefix, strlen(prefix)) == 0; }

static enum MHD_Result on_form_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size) {
    srv_conn *q = cls;
    if (q->err_status) return MHD_NO;
    if (srv_form_chunk(&q->in, key, data, off, size) != LISA_OK) {
        set_error(q, 400, "invalid_form", lisa_last_error());
        return MHD_NO;
    }
    return MHD_YES;
}

static enum MHD_Result begin_segment(srv_conn *q, struct MHD_Connection *c, const char *method) {
    lisa_server *s = q->srv;
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return reply_error(q, c, 405, "method_not_allowed", "%s %s: use POST", method, q->url);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        const unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && end != cl && (long long)n > s->o.max_body_bytes) {
            char msg[160];
            snprintf(msg, sizeof msg, "the body of %llu bytes exceeds the limit of %lld bytes", n,
                     (long long)s->o.max_body_bytes);
            /* Answer before the body when the client waits for "100 Continue" (curl does for large
             * bodies) or the body is huge. Otherwise the body is already on its way: read and drop
             * it, then answer, because closing a socket with unread data resets the connection and
             * the client may lose the 413. */
            const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if ((expect && !strcasecmp(expect, "100-continue")) || (long long)n > 2 * s->o.max_body_bytes + (1 << 20))
                return reply_error(q, c, 413, "body_too_large", "%s", msg);
            set_error(q, 413, "body_too_large", msg);
            return MHD_YES;
        }
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && has_prefix_ci(ct, "application/json")) {
        q->body = BODY_JSON;
    } else if (ct && has_prefix_ci(ct, "multipart/form-data")) {
        q->body = BODY_FORM;
        q->pp = MHD_create_post_processor(c, 64 * 1024, on_form_part, q);
        if (!q->pp) return reply_error(q, c, 400, "invalid_form", "multipart/form-data without a usable boundary");
    } else {
        return reply_error(q, c, 415, "unsupported_media_type",
                           "Content-Type %.100s: send multipart/form-data (image file + query) or application/json",
                           ct ? ct : "(none)");
    }
    return MHD_YES;
}

static enum MHD_Result receive_segment(srv_conn *q, struct MHD_Connection *c, const char *data, size_t n) {
    lisa_server *s = q->srv;
    q->received += n;
    if ((long long)q->received > s->o.max_body_bytes) {
        /* a chunked body (no Content-Length) over the limit. libmicrohttpd 0.9.75 cannot queue a
         * response in the middle of an upload, so the rest is read and dropped and 413 goes out at
         * its end; a client that sends on and on past twice the limit is disconnected. */
        char msg[128];
        snprintf(msg, sizeof msg, "the body exceeds the limit of %lld bytes", (long long)s->o.max_body_bytes);
        set_error(q, 413, "body_too_large", msg);
        return (long long)q->received > 2 * s->o.max_body_bytes + (1 << 20) ? MHD_NO : MHD_YES;
    }
    if (q->err_status) return MHD_YES; /* an earlier error: drop the rest */
    if (q->body == BODY_JSON) {
        if (q->json_len + n + 1 > q->json_cap) {
            size_t cap = q->json_cap ? q->json_cap : 4096;
            while (cap < q->json_len + n + 1)
                cap *= 2;
            char *nb = realloc(q->json, cap);
            if (!nb) {
                set_error(q, 500, "internal", "out of memory receiving the body");
                return MHD_YES;
            }
            q->json = nb;
            q->json_cap = cap;
        }
        memcpy(q->json + q->json_len, data, n);
        q->json_len += n;
        q->json[q->json_len] = '\0';
    } else if (MHD_post_process(q->pp, data, n) != MHD_YES) {
        set_error(q, 400, "invalid_form", "malformed multipart/form-data body");
    }
    return MHD_YES;
}

static void result_http_status(lisa_status st, unsigned *status, const char **code) {
    switch (st) {
    case LISA_ERR_FORMAT:
    case LISA_ERR_UNSUPPORTED:
    case LISA_ERR_IO:
    case LISA_ERR_NOT_FOUND: *status = 400, *code = "invalid_image"; break;
    case LISA_ERR_LIMIT: *status = 400, *code = "input_too_large"; break;
    case LISA_ERR_INVALID_ARG: *status = 400, *code = "invalid_request"; break;
    case LISA_ERR_BUSY: *status = 503, *code = "queue_full"; break;
    default: *status = 500, *code = "internal"; break;
    }
}

static enum MHD_Result reply_result(srv_conn *q, struct MHD_Connection *c, lisa_result *res, const srv_options *opt) {
    lisa_server *s = q->srv;
    enum MHD_Result ret;
    if (lisa_result_status(res) != LISA_OK) {
        unsigned status;
        const char *code;
        result_http_status(lisa_result_status(res), &status, &code);
        ret = reply_error(q, c, status, code, "%s", lisa_result_error(res));
    } else {
        const uint32_t flags = (opt->tokens ? LISA_JSON_TOKENS : 0) | (opt->text_output ? LISA_JSON_TEXT_OUTPUT : 0) |
                               (opt->png ? LISA_JSON_MASK_PNG : 0) | (opt->timings ? LISA_JSON_TIMINGS : 0) |
                               LISA_JSON_ID;
        char *text = NULL;
        const lisa_status st = lisa_result_to_json(res, flags, &text);
        if (st != LISA_OK) {
            ret = reply_error(q, c, 500, "internal", "%s", lisa_last_error());
        } else {
            const lisa_timings t = lisa_result_timings(res);
            srv_metrics_stages(&s->metrics, &t);
            /* MHD frees the body with free(), which is what lisa_free does */
            ret = queue(q, c, 200, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE, NULL);
        }
    }
    lisa_result_free(res);
    return ret;
}

static enum MHD_Result finish_segment(srv_conn *q, struct MHD_Connection *c) {
    lisa_server *s = q->srv;
    srv_input *in = &q->in;
    lisa_status st;
    if (q->body == BODY_JSON) {
        st = srv_parse_json(in, q->json ? q->json : "", q->json_len, s->o.max_new_tokens);
        if (st != LISA_OK) return reply_error(q, c, 400, "invalid_json", "%s", lisa_last_error());
    } else {
        const enum MHD_Result ok = MHD_destroy_post_processor(q->pp);
        q->pp = NULL;
        if (ok != MHD_YES)
            return reply_error(q, c, 400, "invalid_form", "truncated or malformed multipart/form-data body");
        st = srv_form_finish(in, s->o.max_new_tokens);
        if (st != LISA_OK) return reply_error(q, c, 400, "invalid_form", "%s", lisa_last_error());
    }
    if (srv_input_check(in) != LISA_OK) return reply_error(q, c, 400, "invalid_request", "%s", lisa_last_error());

    /* a server-side image path: only under --allow-paths, after resolving links and ".." */
    char resolved[PATH_MAX];
    if (in->image_path) {
        if (!s->allow_root)
            return reply_error(q, c, 403, "path_not_allowed",
                               "\"image_path\" is not allowed on this server (start it with --allow-paths DIR)");
        if (!realpath(in->image_path, resolved))
            return reply_error(q, c, 400, "invalid_image", "image_path %.300s: %s", in->image_path, strerror(errno));
        const size_t n = strlen(s->allow_root);
        if (strncmp(resolved, s->allow_root, n) != 0 || (resolved[n] != '/' && !(n == 1 && s->allow_root[0] == '/')))
            return reply_error(q, c, 403, "path_not_allowed", "image_path %.300s is outside %s", in->image_path,
                               s->allow_root);
    }

    /* the query: checked here so that its errors are told apart from the image's */
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = in->opt.max_new_tokens > 0 ? in->opt.max_new_tokens : s->o.max_new_tokens;
    sp.max_query_bytes = s->o.max_query_bytes;
    sp.max_image_pixels = s->o.max_image_pixels;
    if (!valid_utf8((const unsigned char *)in->query))
        return reply_error(q, c, 400, "invalid_query", "the query is not valid UTF-8");
    st = lisa_check_query(in->query, &sp);
    if (st == LISA_ERR_LIMIT) return reply_error(q, c, 400, "query_too_long", "%s", lisa_last_error());
    if (st != LISA_OK) return reply_error(q, c, 400, "invalid_query", "%s", lisa_last_error());
    int32_t n_tok = 0;
    st = lisa_model_count_tokens(s->m, in->query, strlen(in->query), false, &n_tok);
    if (st != LISA_OK) return reply_error(q, c, 400, "invalid_query", "%s", lisa_last_error());
    if (n_tok > s->o.max_query_tokens)
        return reply_error(q, c, 400, "query_too_long", "the query has %d tokens, the limit is %d", n_tok,
                           s->o.max_query_tokens);

    lisa_request rq = lisa_request_default();
    rq.params = sp;
    rq.query = in->query;
    if (in->image_path) {
        rq.image_path = resolved;
    } else {
        rq.image_data = in->image;
        rq.image_size = in->image_size;
    }
    srv_pending *p = calloc(1, sizeof *p);
    if (!p) return reply_error(q, c, 500, "internal", "out of memory");
    pthread_cond_init(&p->cv, &s->mono);
    pthread_mutex_lock(&s->mu);
    /* submit and register under mu: the collector cannot see the result before the entry */
    st = lisa_engine_submit(s->e, &rq, &p->id);
    if (st == LISA_OK) {
        p->next = s->pending;
        s->pending = p;
        s->n_outstanding++;
        pthread_cond_signal(&s->collect_cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (st != LISA_OK) {
        free_pending(p);
        if (st == LISA_ERR_BUSY) {
            srv_metrics_count(&s->metrics, &s->metrics.rejected_full);
            return reply_error(q, c, 503, "queue_full", "%s", lisa_last_error());
        }
        unsigned status;
        const char *code;
        result_http_status(st, &status, &code);
        return reply_error(q, c, status, code, "%s", lisa_last_error());
    }
    const srv_options opt = in->opt;
    srv_input_free(in); /* the engine holds its own copies */
    free(q->json);
    q->json = NULL;

    const struct timespec deadline = mono_deadline(s->o.timeout_s);
    pthread_mutex_lock(&s->mu);
    while (!p->done)
        if (pthread_cond_timedwait(&p->cv, &s->mu, &deadline) == ETIMEDOUT && !p->done) {
            p->abandoned = true; /* the collector frees it with its result */
            break;
        }
    lisa_result *res = NULL;
    if (p->done) {
        res = p->res;
        p->res = NULL;
        unlink_pending(s, p->id);
        free_pending(p);
    }
    pthread_mutex_unlock(&s->mu);
    if (!res) {
        srv_metrics_count(&s->metrics, &s->metrics.timeouts);
        return reply_error(q, c, 504, "timeout",
                           "no result within %.3g s; the request keeps running and its result will be dropped",
                           s->o.timeout_s);
    }
    return reply_result(q, c, res, &opt);
}

/* ---- GET endpoints ---------------------------------------------------------------------------- */

static const char *backend_name(const lisa_server *s) { return s->info.backend_name; }

static enum MHD_Result reply_health(srv_conn *q, struct MHD_Connection *c) {
    lisa_server *s = q->srv;
    const lisa_engine_stats st = lisa_engine_get_stats(s->e);
    cJSON *root = cJSON_CreateObject();
    if (root) {
        cJSON_AddStringToObject(root, "status", "ok");
        cJSON_AddStringToObject(root, "version", lisa_version());
        cJSON_AddStringToObject(root, "backend", backend_name(s));
        cJSON_AddNumberToObject(root, "queue_depth", st.queued + st.ready);
        cJSON_AddNumberToObject(root, "running", st.running);
        cJSON_AddNumberToObject(root, "max_queue", s->o.engine.max_queue);
        cJSON_AddNumberToObject(root, "uptime_s", now_s() - s->t_start);
    }
    return queue_json(q, c, 200, root, NULL);
}

static enum MHD_Result reply_metrics(srv_conn *q, struct MHD_Connection *c) {
    lisa_server *s = q->srv;
    srv_gauges g;
    memset(&g, 0, sizeof g);
    g.engine = lisa_engine_get_stats(s->e);
    g.max_queue = s->o.engine.max_queue;
    pthread_mutex_lock(&s->mu);
    g.http_in_flight = s->unanswered - 1; /* not counting this scrape */
    pthread_mutex_unlock(&s->mu);
    g.rss_bytes = srv_rss_bytes();
    g.backend = backend_name(s);
    g.uptime_s = now_s() - s->t_start;
    /* device memory: 0 on the CPU backend; the backend has no query for a GPU's yet, so the gauges
     * are left out there rather than reading 0 */
    g.gpu_used_bytes = g.gpu_total_bytes = s->info.backend == LISA_BACKEND_CPU ? 0 : -1;
    srv_buf b = {0};
    srv_metrics_render(&b, &s->metrics, &g);
    if (b.oom) {
        srv_buf_free(&b);
        return reply_error(q, c, 500, "internal", "out of memory rendering the metrics");
    }
    return queue(q, c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, MHD_RESPMEM_MUST_FREE, NULL);
}

/* ---- MHD callbacks -------------------------------------------------------------------------- */

static int32_t route_of(const char *url) {
    if (!strcmp(url, "/v1/segment")) return SRV_ROUTE_SEGMENT;
    if (!strcmp(url, "/health")) return SRV_ROUTE_HEALTH;
    if (!strcmp(url, "/metrics")) return SRV_ROUTE_METRICS;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return SRV_ROUTE_INDEX;
    return SRV_ROUTE_OTHER;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    lisa_server *s = cls;
    srv_conn *q = *con_cls;
    if (!q) {
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        q->srv = s;
        q->t0 = now_s();
        q->route = route_of(url);
        snprintf(q->method, sizeof q->method, "%s", method);
        snprintf(q->url, sizeof q->url, "%s", url);
        srv_input_init(&q->in);
        *con_cls = q;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        s->unanswered++;
        const bool draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        if (draining) return reply_error(q, c, 503, "shutting_down", "the server is shutting down");
        if (q->route == SRV_ROUTE_SEGMENT) return begin_segment(q, c, method);
        if (q->route == SRV_ROUTE_OTHER) return reply_error(q, c, 404, "not_found", "no such path: %.100s", url);
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return reply_error(q, c, 405, "method_not_allowed", "%s %s: use GET", method, q->url);
        if (q->route == SRV_ROUTE_HEALTH) return reply_health(q, c);
        if (q->route == SRV_ROUTE_METRICS) return reply_metrics(q, c);
        return queue(q, c, 200, "text/html; charset=utf-8", (void *)lisa_web_index_html, lisa_web_index_html_len,
                     MHD_RESPMEM_PERSISTENT, NULL);
    }
    if (q->responded) { /* an early answer (413, 405, ...): drop whatever still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        const size_t n = *upload_data_size;
        *upload_data_size = 0;
        return receive_segment(q, c, upload_data, n);
    }
    if (q->err_status) return reply_error(q, c, q->err_status, q->err_code, "%s", q->err_msg);
    return finish_segment(q, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    lisa_server *s = cls;
    srv_conn *q = *con_cls;
    if (!q) return;
    const double dt = now_s() - q->t0;
    const bool q_responded = q->responded;
    if (!q_responded) srv_metrics_request(&s->metrics, q->route, 0, dt); /* closed without a response */
    if (s->o.log_requests)
        fprintf(stderr, "lisa serve: %s %s %u %.1f ms%s\n", q->method, q->url, q->responded ? q->status : 0, dt * 1e3,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed before the response was sent)");
    if (q->pp) MHD_destroy_post_processor(q->pp);
    free(q->json);
    srv_input_free(&q->in);
    free(q);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    if (!q_responded) s->unanswered--;
    if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const size_t n = strlen(msg);
    fprintf(stderr, "lisa serve: microhttpd: %s%s", msg, n && msg[n - 1] == '\n' ? "" : "\n");
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

lisa_status lisa_server_start(lisa_server **out, lisa_model *m, const lisa_server_options *opts) {
    *out = NULL;
    lisa_server_options o = opts ? *opts : lisa_server_default_options();
    if (!o.host || !*o.host) o.host = "127.0.0.1";
    if (o.port < 0 || o.port > 65535)
        return lisa_fail(LISA_ERR_INVALID_ARG, "serve: port %d is not in 0..65535", o.port);
    if (o.max_body_bytes < 1 || o.max_query_tokens < 1 || o.max_new_tokens < 1 || !(o.timeout_s > 0) ||
        o.max_connections < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "serve: limits must be positive (max_body_bytes %lld, max_query_tokens %d, max_new_tokens %d, "
                         "timeout %g s, max_connections %d)",
                         (long long)o.max_body_bytes, o.max_query_tokens, o.max_new_tokens, o.timeout_s,
                         o.max_connections);
    o.engine.background = true;
    lisa_server *s = calloc(1, sizeof *s);
    if (!s) return lisa_fail(LISA_ERR_OOM, "serve: out of memory");
    s->m = m;
    s->o = o;
    s->t_start = now_s();
    srv_metrics_init(&s->metrics);
    pthread_condattr_init(&s->mono);
    pthread_condattr_setclock(&s->mono, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle_cv, &s->mono);
    pthread_cond_init(&s->collect_cv, NULL);
    s->info.size = sizeof s->info;
    lisa_status st = lisa_model_get_info(m, &s->info);
    if (st == LISA_OK && o.allow_paths) {
        struct stat sb;
        char buf[PATH_MAX];
        if (!realpath(o.allow_paths, buf) || stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = lisa_fail(LISA_ERR_INVALID_ARG, "serve: --allow-paths %s is not a directory", o.allow_paths);
        else if (!(s->allow_root = strdup(buf)))
            st = lisa_fail(LISA_ERR_OOM, "serve: out of memory");
    }
    if (st == LISA_OK) st = lisa_engine_create(m, &o.engine, &s->e);
    if (st == LISA_OK) {
        if (pthread_create(&s->collector, NULL, collector_main, s) != 0)
            st = lisa_fail(LISA_ERR_INTERNAL, "serve: cannot start the collector thread");
        else
            s->collector_started = true;
    }
    struct addrinfo *ai = NULL;
    if (st == LISA_OK) {
        char port[16];
        snprintf(port, sizeof port, "%d", o.port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        const int rc = getaddrinfo(o.host, port, &hints, &ai);
        if (rc != 0) st = lisa_fail(LISA_ERR_INVALID_ARG, "serve: --host %s: %s", o.host, gai_strerror(rc));
    }
    if (st == LISA_OK) {
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG;
        if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
        /* idle keep-alive connections close after this; it must exceed the request timeout because
         * a handler waiting for its result is not socket activity */
        const unsigned idle_s = (unsigned)(o.timeout_s + 60);
        s->d =
            MHD_start_daemon(flags, (uint16_t)o.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                             s, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                             idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_END);
        if (!s->d)
            st = lisa_fail(LISA_ERR_IO, "serve: cannot listen on %s port %d (in use, or not an address here)", o.host,
                           o.port);
    }
    if (ai) freeaddrinfo(ai);
    if (st != LISA_OK) {
        s->drained = true; /* nothing to drain */
        lisa_server_free(s);
        return st;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o.port;
    *out = s;
    return LISA_OK;
}

int32_t lisa_server_port(const lisa_server *s) { return s->port; }

static void stop_collector(lisa_server *s) {
    if (!s->collector_started) return;
    pthread_mutex_lock(&s->mu);
    s->stop_collector = true;
    pthread_cond_broadcast(&s->collect_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->collector, NULL);
    s->collector_started = false;
}

void lisa_server_drain(lisa_server *s) {
    pthread_mutex_lock(&s->mu);
    if (s->drained || s->draining) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
    if (s->d) {
        /* no new connections; requests on open ones get 503 "shutting_down" */
        const MHD_socket ls = MHD_quiesce_daemon(s->d);
        if (ls != MHD_INVALID_SOCKET) close(ls);
        const struct timespec deadline = mono_deadline(s->o.timeout_s + 30);
        pthread_mutex_lock(&s->mu);
        while (s->in_flight > 0)
            if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &deadline) == ETIMEDOUT) break;
        const int32_t left = s->in_flight;
        pthread_mutex_unlock(&s->mu);
        if (left > 0) fprintf(stderr, "lisa serve: %d requests still open after the drain timeout\n", left);
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    stop_collector(s);
    pthread_mutex_lock(&s->mu);
    s->drained = true;
    pthread_mutex_unlock(&s->mu);
}

void lisa_server_free(lisa_server *s) {
    if (!s) return;
    lisa_server_drain(s);
    stop_collector(s);
    /* abandoned requests still in the engine are dropped with it */
    lisa_engine_free(s->e);
    while (s->pending) {
        srv_pending *p = s->pending;
        s->pending = p->next;
        free_pending(p);
    }
    free(s->allow_root);
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->collect_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_condattr_destroy(&s->mono);
    srv_metrics_destroy(&s->metrics);
    free(s);
}
