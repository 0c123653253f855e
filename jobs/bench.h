/* jobs/bench.h — `lisa bench`: end-to-end throughput of the batching engine. N requests keep C in
 * flight (after W warm-up requests that are not measured); the report holds samples/s over the
 * measured window, latency (submit -> result: p50/p99/mean/max), the engine's per-stage ms (means
 * of lisa_result_timings), the mean decode batch, and the FLOPs of the requests (jobs/flops.h, from
 * the model's dims and each request's prompt length, generated tokens and masks): achieved
 * TFLOP/s and, when the peak is known, MFU = achieved / peak. The peak is --peak-tflops, else the
 * datasheet bf16 dense peak of the GPU found by its name (lisa_bench_datasheet_peak); the CPU has
 * none. Images: synthetic (a deterministic WxH picture, passed as RGB), one file (decoded per
 * request like real traffic), or the (image, query) pairs of an annotate manifest, cycled.
 * With per_image = K > 1 (issue #17) the requests come K per picture: picture g is its source (the
 * synthetic picture, the file, or manifest pair g*K's image) decoded once, made distinct by a stamp
 * of g + 1 in its first pixels, and submitted as a lisa_image with K queries; the engine encodes it
 * once and reuses its KV prefix. With K = 1 the image cache is off unless image_cache_mib says
 * otherwise, so that every request pays the whole pipeline. FLOPs count what ran: no encoder for a
 * request whose image was cached, no prefill for its reused prompt positions.
 */
#ifndef LISA_JOBS_BENCH_H
#define LISA_JOBS_BENCH_H

#include "lisa.h"
#include "jobs/flops.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A run's options; borrowed for the call. */
typedef struct lisa_bench_params {
    const char *model;
    const char *image;           /* every request decodes this file ... */
    const char *manifest;        /* ... or the pairs of an annotate manifest ... */
    int32_t width, height;       /* ... else a synthetic picture of this size */
    const char *query;           /* synthetic and --image requests */
    int64_t requests;            /* measured requests */
    int64_t concurrency;         /* requests in flight; 0: 2 x max_batch */
    int64_t warmup;              /* requests before the measured window */
    double peak_tflops;          /* > 0: the peak for MFU; else the datasheet peak of a known GPU */
    int64_t per_image;           /* requests per picture (>= 1) */
    int64_t image_cache_mib;     /* the engine's image cache; < 0: 256 with per_image > 1, else 0 */
    lisa_model_params model_params;
    lisa_engine_params engine;
    lisa_segment_params seg;
} lisa_bench_params;

lisa_bench_params lisa_bench_default_params(void);

typedef struct lisa_bench_report {
    char backend[16], device[128];
    const char *images;          /* "synthetic", "file" or "manifest" (static) */
    int64_t requests, ok, failed, masks, concurrency, warmup;
    int32_t max_batch;
    char first_error[512];       /* the first failed request's status and message */
    double seconds, samples_per_s;
    double latency_p50_ms, latency_p99_ms, latency_mean_ms, latency_max_ms;
    lisa_timings mean;           /* per ok request (token counts in prompt_tokens / generated_tokens) */
    double prompt_tokens, generated_tokens, masks_per_request;
    double mean_decode_batch;
    int64_t decode_steps, steps;
    int32_t kv_pages_total, kv_prefix_pages;
    int64_t per_image;           /* requests per picture */
    int64_t image_cache_hits, image_cache_misses, kv_prefix_hits; /* in the measured window */
    lisa_flops flops_per_request;
    double achieved_tflops;
    double peak_tflops;          /* 0: unknown (no MFU) */
    char peak_source[256];       /* where the peak comes from */
    double mfu;                  /* achieved / peak (0 when the peak is unknown) */
} lisa_bench_report;

/* Loads the model, runs the warm-up and the measured requests, fills *r. Failed requests are
 * counted (r->failed, r->first_error), not failures of the run. */
lisa_status lisa_bench_run(const lisa_bench_params *p, lisa_bench_report *r);

/* The bf16 dense tensor-core peak (TFLOP/s, without sparsity) from the vendor's datasheet for a
 * device name as CUDA reports it ("NVIDIA H100 80GB HBM3" -> H100 SXM, 989); false for an
 * unknown device. *card names the datasheet entry (static). */
bool lisa_bench_datasheet_peak(const char *device_name, double *tflops, const char **card);

#ifdef __cplusplus
}
#endif

#endif
