/* server/metrics.h — Prometheus text exposition (format 0.0.4) for `lisa serve`: a growable text
 * buffer, cumulative histograms, and the server's counters.
 * ref: https://prometheus.io/docs/instrumenting/exposition_formats/ (text format: # HELP, # TYPE,
 * name{labels} value; histograms as _bucket{le="..."} cumulative counts ending in le="+Inf",
 * then _sum and _count). */
#ifndef LISA_SERVER_METRICS_H
#define LISA_SERVER_METRICS_H

#include "lisa.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable NUL-terminated text buffer. Owns p (srv_buf_free). On allocation failure `oom` is set
 * and further appends are dropped. */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
    bool oom;
} srv_buf;

void srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);

#define SRV_HIST_MAX 24

/* A histogram over fixed upper bounds le[0] < le[1] < ... (an observation v lands in the first
 * bucket with v <= le[i], else in +Inf). counts are per bucket (not cumulative). Borrows le. */
typedef struct srv_hist {
    const double *le;
    int32_t n;
    uint64_t counts[SRV_HIST_MAX + 1];
    double sum;
    uint64_t count;
} srv_hist;

void srv_hist_init(srv_hist *h, const double *le, int32_t n);
void srv_hist_observe(srv_hist *h, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum{labels}, name_count{labels}; labels may be "". */
void srv_hist_write(srv_buf *b, const char *name, const char *labels, const srv_hist *h);

/* Prometheus float: integers without a fraction, others with %.17g, +Inf. */
void srv_write_value(srv_buf *b, double v);

/* ---- the server's metrics ---- */

enum { SRV_ROUTE_SEGMENT, SRV_ROUTE_HEALTH, SRV_ROUTE_METRICS, SRV_ROUTE_INDEX, SRV_ROUTE_OTHER, SRV_N_ROUTES };
enum {
    SRV_STAGE_PREPROCESS,
    SRV_STAGE_CLIP,
    SRV_STAGE_PREFILL,
    SRV_STAGE_DECODE,
    SRV_STAGE_SAM_ENCODER,
    SRV_STAGE_SAM_DECODER,
    SRV_STAGE_POSTPROCESS,
    SRV_STAGE_TOTAL,
    SRV_N_STAGES
};
extern const char *const srv_route_names[SRV_N_ROUTES]; /* "/v1/segment", ..., "other" */
extern const char *const srv_stage_names[SRV_N_STAGES]; /* "preprocess", ..., "total" */

#define SRV_MAX_CODES 24 /* distinct HTTP status codes tracked per route */

/* Counters and histograms maintained by the server (all under mu). Owns nothing on the heap. */
typedef struct srv_metrics {
    pthread_mutex_t mu;
    struct {
        uint32_t code; /* 0 = the connection closed before a response was queued */
        uint64_t n;
    } requests[SRV_N_ROUTES][SRV_MAX_CODES];
    int32_t n_codes[SRV_N_ROUTES];
    srv_hist http_seconds[SRV_N_ROUTES];
    srv_hist stage_seconds[SRV_N_STAGES];
    uint64_t timeouts;      /* requests answered 504 */
    uint64_t rejected_full; /* requests answered 503 because the queue was full */
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, int32_t route, uint32_t code, double seconds);
void srv_metrics_stages(srv_metrics *m, const lisa_timings *t);
void srv_metrics_count(srv_metrics *m, uint64_t *counter);

/* What the exposition needs besides the server's own counters (gathered by the caller). */
typedef struct srv_gauges {
    lisa_engine_stats engine;
    int32_t max_queue;
    int32_t http_in_flight;
    int64_t rss_bytes;                       /* process resident set size (-1: unknown) */
    int64_t gpu_used_bytes, gpu_total_bytes; /* -1: unknown (left out) */
    const char *backend;                     /* "cpu", "cuda" */
    double uptime_s;
} srv_gauges;

/* The whole exposition text. */
void srv_metrics_render(srv_buf *b, srv_metrics *m, const srv_gauges *g);

/* Resident set size of this process from /proc/self/statm, -1 if unavailable. */
int64_t srv_rss_bytes(void);

#endif
