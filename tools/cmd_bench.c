/* tools/cmd_bench.c — `lisa bench`: end-to-end throughput of the batching engine (the run is
 * jobs/bench.c; this file parses the options and prints the report as a table or JSON).
 * Exit: 0 ok (failed requests are counted and reported), 1 failure, 2 usage. */
#include "cli_args.h"
#include "jobs/bench.h"
#include "lisa.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAME = "bench";

static bool parse_size(const char *v, void *dst) {
    long long w = 0, h = 0;
    char x = 0, extra = 0;
    if (sscanf(v, "%lld%c%lld%c", &w, &x, &h, &extra) != 3 || x != 'x' || w < 1 || h < 1 || w > 16384 || h > 16384)
        return false;
    ((int32_t *)dst)[0] = (int32_t)w;
    ((int32_t *)dst)[1] = (int32_t)h;
    return true;
}

static void print_json(const lisa_bench_report *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "backend", r->backend);
    cJSON_AddStringToObject(j, "device", r->device);
    cJSON_AddStringToObject(j, "images", r->images);
    cJSON_AddNumberToObject(j, "requests", (double)r->requests);
    cJSON_AddNumberToObject(j, "ok", (double)r->ok);
    cJSON_AddNumberToObject(j, "failed", (double)r->failed);
    if (r->failed) cJSON_AddStringToObject(j, "first_error", r->first_error);
    cJSON_AddNumberToObject(j, "concurrency", (double)r->concurrency);
    cJSON_AddNumberToObject(j, "max_batch", r->max_batch);
    cJSON_AddNumberToObject(j, "warmup", (double)r->warmup);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddNumberToObject(j, "samples_per_s", r->samples_per_s);
    cJSON *lj = cJSON_AddObjectToObject(j, "latency_ms");
    cJSON_AddNumberToObject(lj, "p50", r->latency_p50_ms);
    cJSON_AddNumberToObject(lj, "p99", r->latency_p99_ms);
    cJSON_AddNumberToObject(lj, "mean", r->latency_mean_ms);
    cJSON_AddNumberToObject(lj, "max", r->latency_max_ms);
    cJSON *sj = cJSON_AddObjectToObject(j, "stages_ms");
    cJSON_AddNumberToObject(sj, "preprocess", r->mean.preprocess_ms);
    cJSON_AddNumberToObject(sj, "vision", r->mean.sam_encoder_ms);
    cJSON_AddNumberToObject(sj, "prefill", r->mean.prefill_ms);
    cJSON_AddNumberToObject(sj, "decode", r->mean.decode_ms);
    cJSON_AddNumberToObject(sj, "sam_decoder", r->mean.sam_decoder_ms);
    cJSON_AddNumberToObject(sj, "total", r->mean.total_ms);
    cJSON_AddNumberToObject(j, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(j, "generated_tokens", r->generated_tokens);
    cJSON_AddNumberToObject(j, "masks_per_request", r->masks_per_request);
    cJSON *ej = cJSON_AddObjectToObject(j, "engine");
    cJSON_AddNumberToObject(ej, "mean_decode_batch", r->mean_decode_batch);
    cJSON_AddNumberToObject(ej, "decode_steps", (double)r->decode_steps);
    cJSON_AddNumberToObject(ej, "steps", (double)r->steps);
    cJSON_AddNumberToObject(ej, "kv_pages_total", r->kv_pages_total);
    cJSON_AddNumberToObject(ej, "kv_prefix_pages", r->kv_prefix_pages);
    cJSON_AddNumberToObject(ej, "image_cache_hits", (double)r->image_cache_hits);
    cJSON_AddNumberToObject(ej, "image_cache_misses", (double)r->image_cache_misses);
    cJSON_AddNumberToObject(ej, "kv_prefix_hits", (double)r->kv_prefix_hits);
    cJSON_AddNumberToObject(j, "queries_per_image", (double)r->per_image);
    cJSON *fj = cJSON_AddObjectToObject(j, "flops_per_request");
    const lisa_flops *f = &r->flops_per_request;
    cJSON_AddNumberToObject(fj, "sam_encoder", f->sam_encoder);
    cJSON_AddNumberToObject(fj, "clip", f->clip);
    cJSON_AddNumberToObject(fj, "projector", f->projector);
    cJSON_AddNumberToObject(fj, "prefill", f->prefill);
    cJSON_AddNumberToObject(fj, "decode", f->decode);
    cJSON_AddNumberToObject(fj, "masks", f->masks);
    cJSON_AddNumberToObject(fj, "total", f->total);
    cJSON_AddNumberToObject(j, "achieved_tflops", r->achieved_tflops);
    if (r->peak_tflops > 0) {
        cJSON_AddNumberToObject(j, "peak_tflops", r->peak_tflops);
        cJSON_AddStringToObject(j, "peak_source", r->peak_source);
        cJSON_AddNumberToObject(j, "mfu", r->mfu);
    } else {
        cJSON_AddNullToObject(j, "mfu");
    }
    char *txt = cJSON_PrintUnformatted(j);
    if (txt) printf("%s\n", txt);
    free(txt);
    cJSON_Delete(j);
}

static void print_table(const lisa_bench_report *r) {
    printf("lisa bench: %lld requests (%lld failed), concurrency %lld, max batch %d, %s backend (%s), %s images\n",
           (long long)r->requests, (long long)r->failed, (long long)r->concurrency, r->max_batch, r->backend, r->device,
           r->images);
    if (r->failed) printf("  first failure: %s\n", r->first_error);
    if (r->per_image > 1 || r->image_cache_hits > 0)
        printf("  reuse: %lld queries per image; image cache %lld hits / %lld misses; %lld requests prefilled only "
               "past their image\n",
               (long long)r->per_image, (long long)r->image_cache_hits, (long long)r->image_cache_misses,
               (long long)r->kv_prefix_hits);
    printf("  %.2f samples/s over %.2f s (after %lld warm-up)\n", r->samples_per_s, r->seconds, (long long)r->warmup);
    printf("  latency ms: p50 %.1f  p99 %.1f  mean %.1f  max %.1f\n", r->latency_p50_ms, r->latency_p99_ms,
           r->latency_mean_ms, r->latency_max_ms);
    printf("  per-stage ms (mean; vision = CLIP + SAM encoder, one batched step): preprocess %.1f  vision "
           "%.1f  prefill %.1f  decode %.1f  sam_decoder %.1f  total %.1f\n",
           r->mean.preprocess_ms, r->mean.sam_encoder_ms, r->mean.prefill_ms, r->mean.decode_ms,
           r->mean.sam_decoder_ms, r->mean.total_ms);
    printf("  tokens: prompt %.0f, generated %.1f; masks %.2f per request; mean decode batch %.2f over %lld steps\n",
           r->prompt_tokens, r->generated_tokens, r->masks_per_request, r->mean_decode_batch,
           (long long)r->decode_steps);
    const lisa_flops *f = &r->flops_per_request;
    printf("  GFLOP per request: SAM encoder %.2f  CLIP %.2f  projector %.2f  prefill %.2f  decode %.2f  "
           "masks %.2f  total %.2f\n",
           f->sam_encoder / 1e9, f->clip / 1e9, f->projector / 1e9, f->prefill / 1e9, f->decode / 1e9, f->masks / 1e9,
           f->total / 1e9);
    if (r->peak_tflops > 0)
        printf("  achieved %.3f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s (%s)\n", r->achieved_tflops, 100 * r->mfu,
               r->peak_tflops, r->peak_source);
    else
        printf("  achieved %.4f TFLOP/s (MFU: no known peak for this %s device; pass --peak-tflops)\n",
               r->achieved_tflops, r->backend);
}

int lisa_cmd_bench(int argc, char **argv) {
    lisa_bench_params p = lisa_bench_default_params();
    bool json = false;
    int32_t size[2] = {p.width, p.height};
    const cli_opt opts[] = {
        CLI_STR_REQ("model", &p.model, "DIR", "a LISA checkpoint directory"),
        CLI_STR_D("vision-tower", &p.model_params.vision_tower, "DIR", "the CLIP directory (default: as `lisa segment`)",
                  ""),
        CLI_I64("requests", &p.requests, 1, 10000000, "N", "measured requests"),
        CLI_I64_D("concurrency", &p.concurrency, 1, 100000, "C", "requests in flight", "2 x --max-batch"),
        CLI_INT("max-batch", &p.engine.max_batch, 1, 256, "B", "sequences decoded together"),
        CLI_STR("image", &p.image, "FILE", "every request uses this PNG/JPEG (decoded per request)"),
        CLI_STR("manifest", &p.manifest, "FILE", "the (image, query) pairs of a `lisa annotate` manifest, cycled"),
        CLI_FN("size", size, parse_size, "WxH", "synthetic RGB images of this size (1..16384 each)", "640x480"),
        CLI_STR("query", &p.query, "Q", "the query of synthetic and --image requests"),
        CLI_I64("queries-per-image", &p.per_image, 1, 1 << 20, "K",
                "K requests per picture: each (distinct) picture decoded once and submitted\n"
                "as a lisa_image; the engine encodes it once and reuses its KV prefix for the\n"
                "other K-1 queries (samples/s and per-stage ms with reuse)"),
        CLI_I64_D("image-cache-mib", &p.image_cache_mib, 0, 1 << 24, "N", "the engine's image cache (0: off)",
                  "256 with K > 1, 0 with K = 1"),
        CLI_INT("max-new-tokens", &p.seg.max_new_tokens, 1, 1 << 20, "N",
                "generation limit (as chat.py; generation stops at </s>)"),
        CLI_I64("warmup", &p.warmup, 0, 100000, "W", "requests run before the measured window"),
        CLI_BACKEND("backend", &p.model_params.backend),
        CLI_INT_D("threads", &p.model_params.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
        CLI_INT_D("workers", &p.engine.n_workers, 0, 4096, "N", "image decode + preprocessing threads (0: all cores)",
                  "all cores"),
        CLI_DOUBLE_D("peak-tflops", &p.peak_tflops, 0, 1e9, "X",
                     "the peak for MFU (TFLOP/s); default: the datasheet bf16 dense peak of a\n"
                     "known GPU (H100 SXM 989, H100 PCIe 756, H200 989, A100 312, L40S 362,\n"
                     "RTX 4090 165, ...), printed with its source; none on the CPU",
                     "by device name"),
        CLI_FLAG("json", &json, "one JSON object on stdout instead of the table"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR [--requests N] [--concurrency C] [--max-batch B]\n"
                 "[--image FILE | --manifest FILE | --size WxH] [--queries-per-image K] [--json] [options]",
        .about = "Runs N requests through the batching engine with C in flight after W warm-up requests, and\n"
                 "prints samples/s, latency p50/p99, per-stage ms, the mean decode batch, achieved TFLOP/s (the\n"
                 "FLOP model of jobs/flops.h) and MFU when the peak is known.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
    };
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if (p.image && p.manifest) return cli_usage_error(&cmd, "--image or --manifest, not both");
    p.width = size[0];
    p.height = size[1];
    lisa_bench_report r;
    const lisa_status s = lisa_bench_run(&p, &r);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    if (p.model_params.backend == LISA_BACKEND_AUTO)
        fprintf(stderr, "lisa bench: backend auto: %s (%s)\n", r.backend, r.device);
    if (json)
        print_json(&r);
    else
        print_table(&r);
    return 0;
}
