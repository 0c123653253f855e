/* tools/cmd_bench.c — `lisa bench`: end-to-end throughput of the batching engine (issue #8).
 *
 *   lisa bench --model DIR [--vision-tower DIR] [--requests N] [--concurrency C] [--max-batch B]
 *              [--image FILE | --manifest FILE | --size WxH] [--query Q] [--max-new-tokens N]
 *              [--queries-per-image K] [--image-cache-mib N]
 *              [--warmup W] [--threads N] [--workers N] [--backend cpu|cuda|auto] [--peak-tflops X] [--json]
 *
 * Submits N requests keeping C in flight (after W warm-up requests that are not measured) and
 * reports samples/s over the measured window, latency (submit -> result, p50/p99/mean/max),
 * the engine's per-stage ms (means of lisa_result_timings), the mean decode batch, and the
 * FLOPs of the requests (jobs/flops.h, from the model's dims and each request's prompt length,
 * generated tokens and masks) over the window: achieved TFLOP/s, and MFU = that / peak when a peak
 * is known (--peak-tflops, or 779 = docs/architecture.md's H200 bf16 figure on the CUDA backend).
 * Images: synthetic (a deterministic WxH picture, default 640x480, passed as RGB), one file
 * (--image, decoded per request like real traffic), or the (image, query) pairs of an annotate
 * manifest, cycled. With --queries-per-image K > 1 (issue #17) the requests come K per picture:
 * picture g is its source (the synthetic picture, the file, or manifest pair g*K's image) decoded
 * once, made distinct by a stamp of g in its first pixels, and submitted as a lisa_image with K
 * queries; the engine encodes it once and reuses its KV prefix. Without reuse (K = 1) the image
 * cache is off unless --image-cache-mib says otherwise, so every request pays the whole pipeline
 * as before. FLOPs count what ran: no encoder for a request whose image was cached, no prefill for
 * reused prompt positions.
 * Exit: 0 ok (failed requests are counted and reported), 1 failure, 2 usage.
 */
#include "cli_args.h"
#include "lisa.h"
#include "jobs/annotate_input.h"
#include "models/lisa_model.h"
#include "core/error.h"
#include "jobs/flops.h"
#include "loader/image.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: lisa bench --model DIR [--vision-tower DIR] [--requests N] [--concurrency C] [--max-batch B]\n"
            "                  [--image FILE | --manifest FILE | --size WxH] [--query Q] [--max-new-tokens N]\n"
            "                  [--queries-per-image K] [--image-cache-mib N]\n"
            "                  [--warmup W] [--threads N] [--workers N] [--backend cpu|cuda|auto]\n"
            "                  [--peak-tflops X] [--json]\n"
            "\n"
            "Runs N requests (default 16) through the batching engine with C in flight (default 2B; B\n"
            "default 8) after W warm-up requests (default 1), and prints samples/s, latency p50/p99,\n"
            "per-stage ms, the mean decode batch, achieved TFLOP/s (FLOP model: jobs/flops.h) and MFU\n"
            "when the peak is known (--peak-tflops; default 779 on CUDA, docs/architecture.md's H200 bf16).\n"
            "  --image FILE     every request uses this PNG/JPEG (decoded per request)\n"
            "  --manifest FILE  the (image, query) pairs of a `lisa annotate` manifest, cycled\n"
            "  --size WxH       synthetic RGB images of this size (default 640x480)\n"
            "  --query Q        default \"What is the main object in this image? Please output segmentation mask.\"\n"
            "  --max-new-tokens N  generation limit (default 512, as chat.py; generation stops at </s>)\n"
            "  --queries-per-image K  K requests per picture (default 1): each picture (distinct) is decoded once\n"
            "                   and submitted as a lisa_image; the engine encodes it once and reuses its KV\n"
            "                   prefix for the other K-1 queries (samples/s and per-stage ms with reuse)\n"
            "  --image-cache-mib N  the engine's image cache (default 256 with K > 1, 0 with K = 1)\n"
            "  --json           one JSON object on stdout instead of the table\n");
}

typedef struct opts {
    const char *model, *vision_tower, *image, *manifest, *query;
    int64_t requests, concurrency, max_batch, max_new_tokens, warmup, threads, workers, width, height;
    int64_t per_image, cache_mib; /* cache_mib < 0: the default for per_image */
    double peak_tflops;
    bool json;
    lisa_backend_kind backend;
} opts;

static int parse_opts(opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->requests = 16;
    o->max_batch = 8;
    o->max_new_tokens = 512;
    o->warmup = 1;
    o->width = 640;
    o->height = 480;
    o->per_image = 1;
    o->cache_mib = -1;
    o->query = "What is the main object in this image? Please output segmentation mask.";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(name, field)                                                                                               \
    if (!strcmp(a, name)) {                                                                                            \
        if (!v) return fprintf(stderr, "lisa bench: %s needs a value\n", name), -1;                                    \
        o->field = v;                                                                                                  \
        i++;                                                                                                           \
        continue;                                                                                                      \
    }
#define INT(name, field, lo, hi)                                                                                       \
    if (!strcmp(a, name)) {                                                                                            \
        if (!cli_parse_i64(v, lo, hi, &o->field))                                                                      \
            return fprintf(stderr, "lisa bench: %s needs an integer in [%lld, %lld]\n", name, (long long)(lo),         \
                           (long long)(hi)),                                                                           \
                   -1;                                                                                                 \
        i++;                                                                                                           \
        continue;                                                                                                      \
    }
        STR("--model", model)
        STR("--vision-tower", vision_tower)
        STR("--image", image)
        STR("--manifest", manifest)
        STR("--query", query)
        INT("--requests", requests, 1, 10000000)
        INT("--concurrency", concurrency, 1, 100000)
        INT("--max-batch", max_batch, 1, 256)
        INT("--max-new-tokens", max_new_tokens, 1, 1 << 20)
        INT("--warmup", warmup, 0, 100000)
        INT("--threads", threads, 0, 4096)
        INT("--workers", workers, 0, 4096)
        INT("--queries-per-image", per_image, 1, 1 << 20)
        INT("--image-cache-mib", cache_mib, 0, 1 << 24)
#undef STR
#undef INT
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--size")) {
            long long w = 0, h = 0;
            char x = 0, extra = 0;
            if (!v || sscanf(v, "%lld%c%lld%c", &w, &x, &h, &extra) != 3 || x != 'x' || w < 1 || h < 1 || w > 16384 ||
                h > 16384)
                return fprintf(stderr, "lisa bench: --size WxH, 1..16384 each (got %s)\n", v ? v : "nothing"), -1;
            o->width = w;
            o->height = h;
            i++;
        } else if (!strcmp(a, "--peak-tflops")) {
            char *e = NULL;
            o->peak_tflops = v ? strtod(v, &e) : 0;
            if (!v || *e || !(o->peak_tflops > 0))
                return fprintf(stderr, "lisa bench: --peak-tflops needs a positive number\n"), -1;
            i++;
        } else if (!strcmp(a, "--backend")) {
            if (!v) return fprintf(stderr, "lisa bench: --backend needs a value\n"), -1;
            if (!cli_parse_backend(v, &o->backend))
                return fprintf(stderr, "lisa bench: --backend cpu, cuda or auto (got '%s')\n", v), -1;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            return fprintf(stderr, "lisa bench: unknown or incomplete option '%s'\n", a), -1;
        }
    }
    if (!o->model) return fprintf(stderr, "lisa bench: --model is required\n"), -1;
    if (o->image && o->manifest) return fprintf(stderr, "lisa bench: --image or --manifest, not both\n"), -1;
    if (!o->concurrency) o->concurrency = 2 * o->max_batch;
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the request mix -------------------------------------------------------------------------- */

/* What requests are made of. Owns every string and the synthetic picture. */
typedef struct workload {
    uint8_t *rgb; /* synthetic [h, w, 3] or NULL */
    int32_t h, w;
    char **paths, **queries; /* [n] pairs (manifest / --image) */
    int32_t n;
} workload;

static void workload_free(workload *wl) {
    free(wl->rgb);
    for (int32_t i = 0; i < wl->n; i++) {
        free(wl->paths[i]);
        free(wl->queries[i]);
    }
    free(wl->paths);
    free(wl->queries);
    memset(wl, 0, sizeof *wl);
}

static lisa_status add_pair(workload *wl, const char *path, const char *query) {
    char **np = realloc(wl->paths, (size_t)(wl->n + 1) * sizeof *np);
    if (np) wl->paths = np;
    char **nq = realloc(wl->queries, (size_t)(wl->n + 1) * sizeof *nq);
    if (nq) wl->queries = nq;
    if (!np || !nq) return lisa_fail(LISA_ERR_OOM, "out of memory");
    wl->paths[wl->n] = strdup(path);
    wl->queries[wl->n] = strdup(query);
    wl->n++;
    return wl->paths[wl->n - 1] && wl->queries[wl->n - 1] ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory");
}

static lisa_status workload_init(workload *wl, const opts *o) {
    memset(wl, 0, sizeof *wl);
    if (o->image) return add_pair(wl, o->image, o->query);
    if (o->manifest) { /* the first `requests` good (image, query) pairs, cycled if fewer */
        lisa_ann_source src;
        LISA_TRY(lisa_ann_source_open_manifest(&src, o->manifest));
        lisa_ann_item it = {0};
        bool end = false;
        lisa_status s = LISA_OK;
        while (s == LISA_OK && wl->n < o->requests) {
            s = lisa_ann_source_next(&src, &it, &end);
            if (s != LISA_OK || end) break;
            for (int32_t q = 0; s == LISA_OK && it.status == LISA_OK && q < it.n_queries && wl->n < o->requests; q++)
                s = add_pair(wl, it.image, it.queries[q]);
        }
        lisa_ann_item_free(&it);
        lisa_ann_source_close(&src);
        if (s == LISA_OK && wl->n == 0) s = lisa_fail(LISA_ERR_NOT_FOUND, "%s: no valid item", o->manifest);
        return s;
    }
    /* synthetic: smooth gradients plus a bright disc, so that preprocessing sees real content */
    wl->h = (int32_t)o->height;
    wl->w = (int32_t)o->width;
    if (!(wl->rgb = malloc((size_t)wl->h * wl->w * 3))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int32_t y = 0; y < wl->h; y++)
        for (int32_t x = 0; x < wl->w; x++) {
            uint8_t *p = wl->rgb + 3 * ((size_t)y * wl->w + x);
            const double dx = x - wl->w * 0.5, dy = y - wl->h * 0.5, r = 0.25 * (wl->w < wl->h ? wl->w : wl->h);
            const bool disc = dx * dx + dy * dy < r * r;
            p[0] = disc ? 230 : (uint8_t)(255 * x / wl->w);
            p[1] = disc ? 200 : (uint8_t)(255 * y / wl->h);
            p[2] = disc ? 40 : (uint8_t)((x ^ y) & 0xff);
        }
    return LISA_OK;
}

/* Picture g of a --queries-per-image run: its source decoded once, stamped with g + 1 in the red
 * channel of its first 8 pixels (so that no two pictures share pixels, nor a picture its source). */
static lisa_status picture_create(const workload *wl, const opts *o, int64_t g, lisa_image **out) {
    lisa_bitmap bm = {0};
    if (wl->rgb) {
        LISA_TRY(lisa_bitmap_alloc(&bm, wl->h, wl->w, 3));
        memcpy(bm.data, wl->rgb, (size_t)wl->h * wl->w * 3);
    } else {
        LISA_TRY(lisa_image_load(&bm, wl->paths[(g * o->per_image) % wl->n], NULL));
    }
    const uint64_t stamp = (uint64_t)g + 1;
    for (int32_t i = 0; i < 8 && i < bm.h * bm.w; i++) bm.data[3 * i] = (uint8_t)(stamp >> (8 * i));
    const lisa_status s = lisa_image_create_rgb(bm.data, bm.h, bm.w, out);
    lisa_bitmap_free(&bm);
    return s;
}

static lisa_request make_request(const workload *wl, const opts *o, int64_t i, lisa_image *picture) {
    lisa_request rq = lisa_request_default();
    rq.params.max_new_tokens = (int32_t)o->max_new_tokens;
    if (picture) {
        rq.image = picture;
        rq.query = wl->rgb ? o->query : wl->queries[i % wl->n];
    } else if (wl->rgb) {
        rq.rgb = wl->rgb;
        rq.height = wl->h;
        rq.width = wl->w;
        rq.query = o->query;
    } else {
        rq.image_path = wl->paths[i % wl->n];
        rq.query = wl->queries[i % wl->n];
    }
    return rq;
}

/* ---- measurement ------------------------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted v[n] */
static double pct(const double *v, int64_t n, double p) {
    if (n == 0) return 0;
    int64_t k = (int64_t)ceil(p / 100 * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

/* Measurements of one run_requests call; `lat` [requests] is owned by the caller (NULL: not kept). */
typedef struct run_stats {
    int64_t n, n_ok, n_failed, masks;
    double wall_ms, *lat; /* [requests] */
    lisa_timings sum;
    lisa_flops flops; /* summed over the ok requests */
    char first_error[512];
} run_stats;

/* Runs `n` requests keeping `conc` in flight; latency = submit -> result claimed. With
 * --queries-per-image K, request i asks about picture first_picture + i / K. */
static lisa_status run_requests(run_stats *rs, lisa_engine *e, const workload *wl, const opts *o, int64_t n,
                                const lisa_flop_dims *fd, int64_t first_picture) {
    double *t_sub = calloc((size_t)n, sizeof *t_sub);
    if (!t_sub) return lisa_fail(LISA_ERR_OOM, "out of memory");
    int64_t submitted = 0, done = 0;
    lisa_status s = LISA_OK;
    lisa_image *picture = NULL; /* the picture of the requests being submitted (a reference) */
    const double t0 = now_ms();
    while (s == LISA_OK && done < n) {
        while (submitted < n && submitted - done < o->concurrency) {
            if (o->per_image > 1 && submitted % o->per_image == 0) { /* the next picture, decoded once */
                lisa_image_free(picture); /* its requests keep theirs */
                picture = NULL;
                if ((s = picture_create(wl, o, first_picture + submitted / o->per_image, &picture)) != LISA_OK) break;
            }
            lisa_request rq = make_request(wl, o, submitted, picture);
            rq.user_data = (uint64_t)submitted;
            uint64_t id;
            t_sub[submitted] = now_ms();
            if ((s = lisa_engine_submit(e, &rq, &id)) != LISA_OK) break;
            submitted++;
        }
        if (s != LISA_OK) break;
        lisa_result *r = NULL;
        if ((s = lisa_engine_wait(e, 0, &r)) != LISA_OK) break;
        const double t = now_ms();
        const int64_t k = (int64_t)lisa_result_user_data(r);
        if (rs->lat) rs->lat[rs->n] = t - t_sub[k];
        rs->n++;
        done++;
        if (lisa_result_status(r) == LISA_OK) {
            const lisa_timings tm = lisa_result_timings(r);
            rs->n_ok++;
            rs->masks += lisa_result_n_masks(r);
            rs->sum.preprocess_ms += tm.preprocess_ms;
            rs->sum.clip_ms += tm.clip_ms;
            rs->sum.sam_encoder_ms += tm.sam_encoder_ms;
            rs->sum.prefill_ms += tm.prefill_ms;
            rs->sum.decode_ms += tm.decode_ms;
            rs->sum.sam_decoder_ms += tm.sam_decoder_ms;
            rs->sum.postprocess_ms += tm.postprocess_ms;
            rs->sum.total_ms += tm.total_ms;
            rs->sum.n_prompt_tokens += tm.n_prompt_tokens;
            rs->sum.n_generated += tm.n_generated;
            if (fd) {
                lisa_flops f;
                lisa_flops_request(&f, fd, tm.n_prompt_tokens, tm.n_reused_tokens, tm.n_generated,
                                   lisa_result_n_masks(r));
                if (tm.sam_encoder_ms == 0 && tm.clip_ms == 0) { /* its image's encoding was cached */
                    f.total -= f.sam_encoder + f.clip + f.projector;
                    f.sam_encoder = f.clip = f.projector = 0;
                }
                rs->flops.sam_encoder += f.sam_encoder;
                rs->flops.clip += f.clip;
                rs->flops.projector += f.projector;
                rs->flops.prefill += f.prefill;
                rs->flops.decode += f.decode;
                rs->flops.masks += f.masks;
                rs->flops.total += f.total;
            }
        } else {
            if (!rs->n_failed)
                snprintf(rs->first_error, sizeof rs->first_error, "%s: %s", lisa_status_name(lisa_result_status(r)),
                         lisa_result_error(r));
            rs->n_failed++;
        }
        lisa_result_free(r);
    }
    rs->wall_ms = now_ms() - t0;
    lisa_image_free(picture);
    free(t_sub);
    return s;
}

/* ---- the command -------------------------------------------------------------------------------- */

int lisa_cmd_bench(int argc, char **argv) {
    opts o;
    if (parse_opts(&o, argc, argv) != 0) {
        fputc('\n', stderr);
        usage(stderr);
        return 2;
    }
    workload wl;
    lisa_status s = workload_init(&wl, &o);
    lisa_model *m = NULL;
    lisa_engine *e = NULL;
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = (int32_t)o.max_batch;
    ep.max_images = o.max_batch < 8 ? (int32_t)o.max_batch : 8;
    ep.max_queue = (int32_t)(o.concurrency > ep.max_queue ? o.concurrency : ep.max_queue);
    ep.n_workers = (int32_t)o.workers;
    ep.image_cache_bytes = o.cache_mib >= 0 ? o.cache_mib << 20 : o.per_image > 1 ? ep.image_cache_bytes : 0;
    if (s == LISA_OK) {
        lisa_model_params mp = lisa_model_default_params();
        mp.vision_tower = o.vision_tower;
        mp.n_threads = (int32_t)o.threads;
        mp.backend = o.backend;
        s = lisa_model_load(o.model, &mp, &m);
    }
    if (s == LISA_OK) s = lisa_engine_create(m, &ep, &e);
    lisa_flop_dims fd;
    const bool have_dims = s == LISA_OK && lisa_flop_dims_from_model(&fd, m) == LISA_OK;
    if (s != LISA_OK) {
        fprintf(stderr, "lisa bench: %s: %s\n", lisa_status_name(s), lisa_last_error());
        lisa_engine_free(e);
        lisa_model_free(m);
        workload_free(&wl);
        return 1;
    }
    const bool cuda = m->be->device == LISA_DEVICE_CUDA;
    const double peak = o.peak_tflops > 0 ? o.peak_tflops : cuda ? 779.0 : 0;
    const char *peak_src = o.peak_tflops > 0 ? "--peak-tflops" : cuda ? "docs/architecture.md H200 bf16 (779)" : NULL;
    run_stats warm = {0}, rs = {0};
    /* warm-up pictures are numbered after the measured ones: no measured request finds its picture
     * cached by the warm-up */
    const int64_t n_pictures = (o.requests + o.per_image - 1) / o.per_image;
    if (o.warmup > 0) s = run_requests(&warm, e, &wl, &o, o.warmup, NULL, n_pictures);
    const lisa_engine_stats st0 = lisa_engine_get_stats(e);
    rs.lat = calloc((size_t)o.requests, sizeof *rs.lat);
    if (s == LISA_OK && !rs.lat) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = run_requests(&rs, e, &wl, &o, o.requests, have_dims ? &fd : NULL, 0);
    const lisa_engine_stats st1 = lisa_engine_get_stats(e);
    int rc = 0;
    if (s != LISA_OK) {
        fprintf(stderr, "lisa bench: %s: %s\n", lisa_status_name(s), lisa_last_error());
        rc = 1;
    }
    if (rc == 0) {
        qsort(rs.lat, (size_t)rs.n, sizeof *rs.lat, cmp_d);
        double lat_sum = 0;
        for (int64_t i = 0; i < rs.n; i++)
            lat_sum += rs.lat[i];
        const double secs = rs.wall_ms / 1e3, sps = secs > 0 ? (double)rs.n_ok / secs : 0;
        const double nok = rs.n_ok ? (double)rs.n_ok : 1;
        const int64_t dsteps = st1.decode_steps - st0.decode_steps, drows = st1.decode_rows - st0.decode_rows;
        const double mean_batch = dsteps ? (double)drows / (double)dsteps : 0;
        const double tflops = secs > 0 ? rs.flops.total / secs / 1e12 : 0;
        const char *backend = cuda ? "cuda" : "cpu";
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "backend", backend);
            cJSON_AddStringToObject(j, "images", wl.rgb ? "synthetic" : o.image ? "file" : "manifest");
            cJSON_AddNumberToObject(j, "requests", (double)rs.n);
            cJSON_AddNumberToObject(j, "ok", (double)rs.n_ok);
            cJSON_AddNumberToObject(j, "failed", (double)rs.n_failed);
            if (rs.n_failed) cJSON_AddStringToObject(j, "first_error", rs.first_error);
            cJSON_AddNumberToObject(j, "concurrency", (double)o.concurrency);
            cJSON_AddNumberToObject(j, "max_batch", (double)o.max_batch);
            cJSON_AddNumberToObject(j, "warmup", (double)o.warmup);
            cJSON_AddNumberToObject(j, "seconds", secs);
            cJSON_AddNumberToObject(j, "samples_per_s", sps);
            cJSON *lj = cJSON_AddObjectToObject(j, "latency_ms");
            cJSON_AddNumberToObject(lj, "p50", pct(rs.lat, rs.n, 50));
            cJSON_AddNumberToObject(lj, "p99", pct(rs.lat, rs.n, 99));
            cJSON_AddNumberToObject(lj, "mean", rs.n ? lat_sum / (double)rs.n : 0);
            cJSON_AddNumberToObject(lj, "max", rs.n ? rs.lat[rs.n - 1] : 0);
            cJSON *sj = cJSON_AddObjectToObject(j, "stages_ms");
            cJSON_AddNumberToObject(sj, "preprocess", rs.sum.preprocess_ms / nok);
            cJSON_AddNumberToObject(sj, "vision", rs.sum.sam_encoder_ms / nok);
            cJSON_AddNumberToObject(sj, "prefill", rs.sum.prefill_ms / nok);
            cJSON_AddNumberToObject(sj, "decode", rs.sum.decode_ms / nok);
            cJSON_AddNumberToObject(sj, "sam_decoder", rs.sum.sam_decoder_ms / nok);
            cJSON_AddNumberToObject(sj, "total", rs.sum.total_ms / nok);
            cJSON_AddNumberToObject(j, "prompt_tokens", rs.sum.n_prompt_tokens / nok);
            cJSON_AddNumberToObject(j, "generated_tokens", rs.sum.n_generated / nok);
            cJSON_AddNumberToObject(j, "masks_per_request", (double)rs.masks / nok);
            cJSON *ej = cJSON_AddObjectToObject(j, "engine");
            cJSON_AddNumberToObject(ej, "mean_decode_batch", mean_batch);
            cJSON_AddNumberToObject(ej, "decode_steps", (double)dsteps);
            cJSON_AddNumberToObject(ej, "steps", (double)(st1.steps - st0.steps));
            cJSON_AddNumberToObject(ej, "kv_pages_total", st1.kv_pages_total);
            cJSON_AddNumberToObject(ej, "kv_prefix_pages", st1.kv_prefix_pages);
            cJSON_AddNumberToObject(ej, "image_cache_hits", (double)(st1.image_cache_hits - st0.image_cache_hits));
            cJSON_AddNumberToObject(ej, "image_cache_misses", (double)(st1.image_cache_misses - st0.image_cache_misses));
            cJSON_AddNumberToObject(ej, "kv_prefix_hits", (double)(st1.kv_prefix_hits - st0.kv_prefix_hits));
            cJSON_AddNumberToObject(j, "queries_per_image", (double)o.per_image);
            cJSON *fj = cJSON_AddObjectToObject(j, "flops_per_request");
            cJSON_AddNumberToObject(fj, "sam_encoder", rs.flops.sam_encoder / nok);
            cJSON_AddNumberToObject(fj, "clip", rs.flops.clip / nok);
            cJSON_AddNumberToObject(fj, "projector", rs.flops.projector / nok);
            cJSON_AddNumberToObject(fj, "prefill", rs.flops.prefill / nok);
            cJSON_AddNumberToObject(fj, "decode", rs.flops.decode / nok);
            cJSON_AddNumberToObject(fj, "masks", rs.flops.masks / nok);
            cJSON_AddNumberToObject(fj, "total", rs.flops.total / nok);
            cJSON_AddNumberToObject(j, "achieved_tflops", tflops);
            if (peak > 0) {
                cJSON_AddNumberToObject(j, "peak_tflops", peak);
                cJSON_AddStringToObject(j, "peak_source", peak_src);
                cJSON_AddNumberToObject(j, "mfu", tflops / peak);
            } else {
                cJSON_AddNullToObject(j, "mfu");
            }
            char *txt = cJSON_PrintUnformatted(j);
            if (txt) printf("%s\n", txt);
            free(txt);
            cJSON_Delete(j);
        } else {
            printf("lisa bench: %lld requests (%lld failed), concurrency %lld, max batch %lld, %s backend, %s images\n",
                   (long long)rs.n, (long long)rs.n_failed, (long long)o.concurrency, (long long)o.max_batch, backend,
                   wl.rgb    ? "synthetic"
                   : o.image ? "file"
                             : "manifest");
            if (rs.n_failed) printf("  first failure: %s\n", rs.first_error);
            if (o.per_image > 1 || ep.image_cache_bytes > 0)
                printf("  reuse: %lld queries per image; image cache %lld hits / %lld misses; %lld requests "
                       "prefilled only past their image\n",
                       (long long)o.per_image, (long long)(st1.image_cache_hits - st0.image_cache_hits),
                       (long long)(st1.image_cache_misses - st0.image_cache_misses),
                       (long long)(st1.kv_prefix_hits - st0.kv_prefix_hits));
            printf("  %.2f samples/s over %.2f s (after %lld warm-up)\n", sps, secs, (long long)o.warmup);
            printf("  latency ms: p50 %.1f  p99 %.1f  mean %.1f  max %.1f\n", pct(rs.lat, rs.n, 50),
                   pct(rs.lat, rs.n, 99), rs.n ? lat_sum / (double)rs.n : 0, rs.n ? rs.lat[rs.n - 1] : 0);
            printf("  per-stage ms (mean; vision = CLIP + SAM encoder, one batched step): preprocess %.1f  vision "
                   "%.1f  prefill %.1f  decode %.1f  sam_decoder %.1f  total %.1f\n",
                   rs.sum.preprocess_ms / nok, rs.sum.sam_encoder_ms / nok, rs.sum.prefill_ms / nok,
                   rs.sum.decode_ms / nok, rs.sum.sam_decoder_ms / nok, rs.sum.total_ms / nok);
            printf("  tokens: prompt %.0f, generated %.1f; masks %.2f per request; mean decode batch %.2f over %lld "
                   "steps\n",
                   rs.sum.n_prompt_tokens / nok, rs.sum.n_generated / nok, (double)rs.masks / nok, mean_batch,
                   (long long)dsteps);
            printf("  GFLOP per request: SAM encoder %.2f  CLIP %.2f  projector %.2f  prefill %.2f  decode %.2f  "
                   "masks %.2f  total %.2f\n",
                   rs.flops.sam_encoder / nok / 1e9, rs.flops.clip / nok / 1e9, rs.flops.projector / nok / 1e9,
                   rs.flops.prefill / nok / 1e9, rs.flops.decode / nok / 1e9, rs.flops.masks / nok / 1e9,
                   rs.flops.total / nok / 1e9);
            if (peak > 0)
                printf("  achieved %.3f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s (%s)\n", tflops, 100 * tflops / peak, peak,
                       peak_src);
            else
                printf("  achieved %.4f TFLOP/s (MFU: pass --peak-tflops)\n", tflops);
        }
    }
    free(rs.lat);
    lisa_engine_free(e);
    lisa_model_free(m);
    workload_free(&wl);
    return rc;
}
