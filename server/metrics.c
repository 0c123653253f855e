/* server/metrics.c — see metrics.h. */
#include "server/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const srv_route_names[SRV_N_ROUTES] = {"/v1/segment", "/health", "/metrics", "/", "other"};
const char *const srv_stage_names[SRV_N_STAGES] = {"preprocess",  "clip",        "prefill",     "decode",
                                                   "sam_encoder", "sam_decoder", "postprocess", "total"};

/* seconds: 1 ms .. 10 min, roughly x2.5 apart (tiny CPU models take ~1 s, 7B on a GPU ~0.1 s) */
static const double LATENCY_LE[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,    5,     10,   25,    60,   120, 300,  600};
#define N_LATENCY ((int32_t)(sizeof LATENCY_LE / sizeof LATENCY_LE[0]))

void srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const size_t room = b->cap - b->len;
        const int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

void srv_buf_free(srv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void srv_hist_init(srv_hist *h, const double *le, int32_t n) {
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n < SRV_HIST_MAX ? n : SRV_HIST_MAX;
}

void srv_hist_observe(srv_hist *h, double v) {
    int32_t i = 0;
    while (i < h->n && !(v <= h->le[i]))
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void srv_write_value(srv_buf *b, double v) {
    if (isinf(v))
        srv_buf_printf(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        srv_buf_printf(b, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        srv_buf_printf(b, "%.0f", v);
    else
        srv_buf_printf(b, "%.17g", v);
}

void srv_hist_write(srv_buf *b, const char *name, const char *labels, const srv_hist *h) {
    const char *sep = labels && *labels ? "," : "";
    if (!labels) labels = "";
    uint64_t cum = 0;
    for (int32_t i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        srv_buf_printf(b, "%s_bucket{%s%sle=\"", name, labels, sep);
        srv_write_value(b, i < h->n ? h->le[i] : INFINITY);
        srv_buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    srv_buf_printf(b, "%s_sum%s%s%s ", name, *labels ? "{" : "", labels, *labels ? "}" : "");
    srv_write_value(b, h->sum);
    srv_buf_printf(b, "\n%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
                   (unsigned long long)h->count);
}

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    for (int32_t r = 0; r < SRV_N_ROUTES; r++)
        srv_hist_init(&m->http_seconds[r], LATENCY_LE, N_LATENCY);
    for (int32_t s = 0; s < SRV_N_STAGES; s++)
        srv_hist_init(&m->stage_seconds[s], LATENCY_LE, N_LATENCY);
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void srv_metrics_request(srv_metrics *m, int32_t route, uint32_t code, double seconds) {
    if (route < 0 || route >= SRV_N_ROUTES) route = SRV_ROUTE_OTHER;
    pthread_mutex_lock(&m->mu);
    int32_t i = 0;
    while (i < m->n_codes[route] && m->requests[route][i].code != code)
        i++;
    if (i == m->n_codes[route] && i < SRV_MAX_CODES) {
        m->requests[route][i].code = code;
        m->n_codes[route]++;
    }
    if (i < SRV_MAX_CODES) m->requests[route][i].n++;
    srv_hist_observe(&m->http_seconds[route], seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_stages(srv_metrics *m, const lisa_timings *t) {
    const double ms[SRV_N_STAGES] = {t->preprocess_ms,  t->clip_ms,        t->prefill_ms,     t->decode_ms,
                                     t->sam_encoder_ms, t->sam_decoder_ms, t->postprocess_ms, t->total_ms};
    pthread_mutex_lock(&m->mu);
    for (int32_t s = 0; s < SRV_N_STAGES; s++)
        srv_hist_observe(&m->stage_seconds[s], ms[s] / 1e3);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_count(srv_metrics *m, uint64_t *counter) {
    pthread_mutex_lock(&m->mu);
    (*counter)++;
    pthread_mutex_unlock(&m->mu);
}

static void family(srv_buf *b, const char *name, const char *type, const char *help) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(srv_buf *b, const char *name, const char *help, double v) {
    family(b, name, "gauge", help);
    srv_buf_printf(b, "%s ", name);
    srv_write_value(b, v);
    srv_buf_printf(b, "\n");
}

void srv_metrics_render(srv_buf *b, srv_metrics *m, const srv_gauges *g) {
    const lisa_engine_stats *st = &g->engine;
    char labels[128];
    pthread_mutex_lock(&m->mu);
    family(b, "lisa_http_requests_total", "counter",
           "HTTP requests answered, by path and status code (0: no response).");
    for (int32_t r = 0; r < SRV_N_ROUTES; r++)
        for (int32_t i = 0; i < m->n_codes[r]; i++)
            srv_buf_printf(b, "lisa_http_requests_total{path=\"%s\",code=\"%u\"} %llu\n", srv_route_names[r],
                           m->requests[r][i].code, (unsigned long long)m->requests[r][i].n);
    family(b, "lisa_http_request_duration_seconds", "histogram",
           "Time from the request line to the response being queued, by path.");
    for (int32_t r = 0; r < SRV_N_ROUTES; r++) {
        snprintf(labels, sizeof labels, "path=\"%s\"", srv_route_names[r]);
        srv_hist_write(b, "lisa_http_request_duration_seconds", labels, &m->http_seconds[r]);
    }
    family(b, "lisa_stage_duration_seconds", "histogram",
           "Per-stage latency of successful segment requests (engine timings; total = submit to result).");
    for (int32_t s = 0; s < SRV_N_STAGES; s++) {
        snprintf(labels, sizeof labels, "stage=\"%s\"", srv_stage_names[s]);
        srv_hist_write(b, "lisa_stage_duration_seconds", labels, &m->stage_seconds[s]);
    }
    family(b, "lisa_request_timeouts_total", "counter", "Segment requests answered 504 (their results are discarded).");
    srv_buf_printf(b, "lisa_request_timeouts_total %llu\n", (unsigned long long)m->timeouts);
    family(b, "lisa_requests_rejected_total", "counter", "Segment requests answered 503 because the queue was full.");
    srv_buf_printf(b, "lisa_requests_rejected_total %llu\n", (unsigned long long)m->rejected_full);
    pthread_mutex_unlock(&m->mu);

    gauge(b, "lisa_http_requests_in_flight", "HTTP requests received and not yet answered.", g->http_in_flight);
    gauge(b, "lisa_queue_depth", "Engine requests waiting: submitted or preprocessed, not yet admitted.",
          st->queued + st->ready);
    gauge(b, "lisa_queue_capacity", "Unfinished engine requests accepted before 503 (--max-queue).", g->max_queue);
    gauge(b, "lisa_requests_running", "Engine requests admitted: prefilling, decoding or decoding masks.", st->running);
    family(b, "lisa_engine_requests_total", "counter", "Engine requests finished, by outcome.");
    srv_buf_printf(b, "lisa_engine_requests_total{outcome=\"completed\"} %lld\n", (long long)st->completed);
    srv_buf_printf(b, "lisa_engine_requests_total{outcome=\"failed\"} %lld\n", (long long)st->failed);
    family(b, "lisa_engine_steps_total", "counter", "Scheduler iterations.");
    srv_buf_printf(b, "lisa_engine_steps_total %lld\n", (long long)st->steps);
    /* the engine's decode batch-size histogram: bucket k holds 2^(k-1) < b <= 2^k */
    family(b, "lisa_decode_batch_size", "histogram", "Sequences per decode step.");
    uint64_t cum = 0;
    for (int32_t k = 0; k < LISA_ENGINE_BATCH_BUCKETS; k++) {
        cum += (uint64_t)st->decode_batch_hist[k];
        srv_buf_printf(b, "lisa_decode_batch_size_bucket{le=\"%d\"} %llu\n", 1 << k, (unsigned long long)cum);
    }
    srv_buf_printf(b, "lisa_decode_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)st->decode_steps);
    srv_buf_printf(b, "lisa_decode_batch_size_sum %lld\nlisa_decode_batch_size_count %lld\n",
                   (long long)st->decode_rows, (long long)st->decode_steps);
    gauge(b, "lisa_kv_pages_used", "KV-cache pages in use (the kept prefixes included).", st->kv_pages_used);
    gauge(b, "lisa_kv_pages_total", "KV-cache pages in the pool.", st->kv_pages_total);
    gauge(b, "lisa_kv_prefix_pages",
          "KV-cache pages held by kept prompt prefixes (system prompt, prompts through an image).", st->kv_prefix_pages);
    gauge(b, "lisa_kv_prefix_nodes", "Prompt prefixes kept in the KV cache.", st->kv_prefix_nodes);
    family(b, "lisa_kv_prefix_hits_total", "counter", "Requests that reused a kept prefix through their image.");
    srv_buf_printf(b, "lisa_kv_prefix_hits_total %lld\n", (long long)st->kv_prefix_hits);
    family(b, "lisa_kv_reused_tokens_total", "counter", "Prompt positions not prefilled thanks to kept prefixes.");
    srv_buf_printf(b, "lisa_kv_reused_tokens_total %lld\n", (long long)st->kv_reused_tokens);
    family(b, "lisa_kv_prefix_evictions_total", "counter", "Kept prefixes dropped to make room.");
    srv_buf_printf(b, "lisa_kv_prefix_evictions_total %lld\n", (long long)st->kv_prefix_evictions);
    family(b, "lisa_image_cache_requests_total", "counter",
           "Requests by whether their image embeddings were cached (hit) or encoded (miss).");
    srv_buf_printf(b, "lisa_image_cache_requests_total{result=\"hit\"} %lld\n", (long long)st->image_cache_hits);
    srv_buf_printf(b, "lisa_image_cache_requests_total{result=\"miss\"} %lld\n", (long long)st->image_cache_misses);
    family(b, "lisa_image_cache_evictions_total", "counter", "Images dropped from the image-embedding cache.");
    srv_buf_printf(b, "lisa_image_cache_evictions_total %lld\n", (long long)st->image_cache_evictions);
    gauge(b, "lisa_image_cache_bytes", "Bytes of image embeddings held (in use or kept for reuse).",
          (double)st->image_cache_bytes);
    gauge(b, "lisa_image_cache_capacity_bytes",
          "Bytes of image embeddings that may be kept for reuse (--image-cache-mib).", (double)st->image_cache_capacity);
    gauge(b, "lisa_image_cache_entries", "Images held by the image-embedding cache.", st->image_cache_entries);
    if (g->gpu_used_bytes >= 0)
        gauge(b, "lisa_gpu_memory_used_bytes", "Device memory in use (0 on the CPU backend).",
              (double)g->gpu_used_bytes);
    if (g->gpu_total_bytes >= 0)
        gauge(b, "lisa_gpu_memory_total_bytes", "Device memory in total (0 on the CPU backend).",
              (double)g->gpu_total_bytes);
    if (g->rss_bytes >= 0)
        gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.", (double)g->rss_bytes);
    gauge(b, "lisa_uptime_seconds", "Seconds since the server started.", g->uptime_s);
    family(b, "lisa_build_info", "gauge", "Version and backend of this server.");
    srv_buf_printf(b, "lisa_build_info{version=\"%s\",backend=\"%s\"} 1\n", lisa_version(), g->backend);
}

int64_t srv_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long long size = 0, resident = 0;
    const int n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    if (n != 2) return -1;
    return (int64_t)resident * (int64_t)sysconf(_SC_PAGESIZE);
}
