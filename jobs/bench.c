/* jobs/bench.c — see jobs/bench.h. */
#include "jobs/bench.h"

#include "core/clock.h"
#include "core/error.h"
#include "jobs/annotate_input.h"
#include "loader/image.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lisa_bench_params lisa_bench_default_params(void) {
    lisa_bench_params p;
    memset(&p, 0, sizeof p);
    p.width = 640;
    p.height = 480;
    p.query = "What is the main object in this image? Please output segmentation mask.";
    p.requests = 16;
    p.warmup = 1;
    p.per_image = 1;
    p.image_cache_mib = -1;
    p.model_params = lisa_model_default_params();
    p.engine = lisa_engine_default_params();
    p.seg = lisa_segment_default_params();
    return p;
}

/* ---- datasheet peaks ------------------------------------------------------------------------------ */

/* bf16 dense tensor TFLOP/s (no sparsity), from NVIDIA's datasheets; matched against the CUDA
 * device name in this order (the first name part found, as a whole word, wins). */
static const struct {
    const char *match, *card;
    double tflops;
} PEAKS[] = {
    {"H100 PCIe", "NVIDIA H100 PCIe", 756},   {"H100 NVL", "NVIDIA H100 NVL", 835},
    {"GH200", "NVIDIA GH200", 989},           {"H200", "NVIDIA H200 SXM", 989},
    {"H100", "NVIDIA H100 SXM", 989},         {"A100", "NVIDIA A100", 312},
    {"A30", "NVIDIA A30", 165},               {"A10", "NVIDIA A10", 125},
    {"L40S", "NVIDIA L40S", 362},             {"L40", "NVIDIA L40", 181},
    {"L4", "NVIDIA L4", 121},                 {"RTX 4090", "NVIDIA GeForce RTX 4090", 165},
};

static bool word_at(const char *hay, const char *needle) {
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) {
        const char after = p[strlen(needle)];
        const bool start_ok = p == hay || !isalnum((unsigned char)p[-1]);
        if (start_ok && !isalnum((unsigned char)after)) return true;
    }
    return false;
}

bool lisa_bench_datasheet_peak(const char *device_name, double *tflops, const char **card) {
    for (size_t i = 0; device_name && i < sizeof PEAKS / sizeof PEAKS[0]; i++)
        if (word_at(device_name, PEAKS[i].match)) {
            *tflops = PEAKS[i].tflops;
            if (card) *card = PEAKS[i].card;
            return true;
        }
    return false;
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

static lisa_status workload_init(workload *wl, const lisa_bench_params *o) {
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
    if (o->width < 1 || o->height < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "bench: synthetic image of %d x %d pixels", o->width, o->height);
    wl->h = o->height;
    wl->w = o->width;
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

/* Picture g of a per_image > 1 run: its source decoded once, stamped with g + 1 in the red channel
 * of its first 8 pixels (so that no two pictures share pixels, nor a picture its source). */
static lisa_status picture_create(const workload *wl, const lisa_bench_params *o, int64_t g, lisa_image **out) {
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

static lisa_request make_request(const workload *wl, const lisa_bench_params *o, int64_t i, lisa_image *picture) {
    lisa_request rq = lisa_request_default();
    rq.params = o->seg;
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
 * per_image = K > 1, request i asks about picture first_picture + i / K. */
static lisa_status run_requests(run_stats *rs, lisa_engine *e, const workload *wl, const lisa_bench_params *o,
                                int64_t n, int64_t conc, const lisa_flop_dims *fd, int64_t first_picture) {
    double *t_sub = calloc((size_t)n, sizeof *t_sub);
    if (!t_sub) return lisa_fail(LISA_ERR_OOM, "out of memory");
    int64_t submitted = 0, done = 0;
    lisa_status s = LISA_OK;
    lisa_image *picture = NULL; /* the picture of the requests being submitted (a reference) */
    const double t0 = lisa_clock_ms();
    while (s == LISA_OK && done < n) {
        while (submitted < n && submitted - done < conc) {
            if (o->per_image > 1 && submitted % o->per_image == 0) { /* the next picture, decoded once */
                lisa_image_free(picture); /* its requests keep theirs */
                picture = NULL;
                if ((s = picture_create(wl, o, first_picture + submitted / o->per_image, &picture)) != LISA_OK) break;
            }
            lisa_request rq = make_request(wl, o, submitted, picture);
            rq.user_data = (uint64_t)submitted;
            uint64_t id;
            t_sub[submitted] = lisa_clock_ms();
            if ((s = lisa_engine_submit(e, &rq, &id)) != LISA_OK) break;
            submitted++;
        }
        if (s != LISA_OK) break;
        lisa_result *r = NULL;
        if ((s = lisa_engine_wait(e, 0, &r)) != LISA_OK) break;
        const double t = lisa_clock_ms();
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
    rs->wall_ms = lisa_clock_ms() - t0;
    lisa_image_free(picture);
    free(t_sub);
    return s;
}

static void report(lisa_bench_report *r, const run_stats *rs, const lisa_engine_stats *st0,
                   const lisa_engine_stats *st1) {
    r->requests = rs->n;
    r->ok = rs->n_ok;
    r->failed = rs->n_failed;
    r->masks = rs->masks;
    snprintf(r->first_error, sizeof r->first_error, "%s", rs->first_error);
    double lat_sum = 0;
    for (int64_t i = 0; i < rs->n; i++)
        lat_sum += rs->lat[i];
    r->seconds = rs->wall_ms / 1e3;
    r->samples_per_s = r->seconds > 0 ? (double)rs->n_ok / r->seconds : 0;
    r->latency_p50_ms = pct(rs->lat, rs->n, 50);
    r->latency_p99_ms = pct(rs->lat, rs->n, 99);
    r->latency_mean_ms = rs->n ? lat_sum / (double)rs->n : 0;
    r->latency_max_ms = rs->n ? rs->lat[rs->n - 1] : 0;
    const double nok = rs->n_ok ? (double)rs->n_ok : 1;
    r->mean.preprocess_ms = rs->sum.preprocess_ms / nok;
    r->mean.clip_ms = rs->sum.clip_ms / nok;
    r->mean.sam_encoder_ms = rs->sum.sam_encoder_ms / nok;
    r->mean.prefill_ms = rs->sum.prefill_ms / nok;
    r->mean.decode_ms = rs->sum.decode_ms / nok;
    r->mean.sam_decoder_ms = rs->sum.sam_decoder_ms / nok;
    r->mean.postprocess_ms = rs->sum.postprocess_ms / nok;
    r->mean.total_ms = rs->sum.total_ms / nok;
    r->prompt_tokens = rs->sum.n_prompt_tokens / nok;
    r->generated_tokens = rs->sum.n_generated / nok;
    r->masks_per_request = (double)rs->masks / nok;
    r->decode_steps = st1->decode_steps - st0->decode_steps;
    const int64_t rows = st1->decode_rows - st0->decode_rows;
    r->mean_decode_batch = r->decode_steps ? (double)rows / (double)r->decode_steps : 0;
    r->steps = st1->steps - st0->steps;
    r->kv_pages_total = st1->kv_pages_total;
    r->kv_prefix_pages = st1->kv_prefix_pages;
    r->image_cache_hits = st1->image_cache_hits - st0->image_cache_hits;
    r->image_cache_misses = st1->image_cache_misses - st0->image_cache_misses;
    r->kv_prefix_hits = st1->kv_prefix_hits - st0->kv_prefix_hits;
    const lisa_flops *f = &rs->flops;
    r->flops_per_request = (lisa_flops){.sam_encoder = f->sam_encoder / nok,
                                        .clip = f->clip / nok,
                                        .projector = f->projector / nok,
                                        .prefill = f->prefill / nok,
                                        .decode = f->decode / nok,
                                        .masks = f->masks / nok,
                                        .total = f->total / nok};
    r->achieved_tflops = r->seconds > 0 ? f->total / r->seconds / 1e12 : 0;
    r->mfu = r->peak_tflops > 0 ? r->achieved_tflops / r->peak_tflops : 0;
}

lisa_status lisa_bench_run(const lisa_bench_params *p, lisa_bench_report *r) {
    memset(r, 0, sizeof *r);
    if (p->requests < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "bench: %lld requests", (long long)p->requests);
    if (p->per_image < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "bench: %lld queries per image", (long long)p->per_image);
    r->per_image = p->per_image;
    r->concurrency = p->concurrency > 0 ? p->concurrency : 2 * (int64_t)p->engine.max_batch;
    r->warmup = p->warmup;
    r->max_batch = p->engine.max_batch;
    r->images = p->image ? "file" : p->manifest ? "manifest" : "synthetic";
    workload wl;
    lisa_status s = workload_init(&wl, p);
    lisa_model *m = NULL;
    lisa_engine *e = NULL;
    lisa_engine_params ep = p->engine;
    if (ep.max_images > ep.max_batch) ep.max_images = ep.max_batch;
    if (r->concurrency > ep.max_queue) ep.max_queue = (int32_t)r->concurrency;
    ep.image_cache_bytes = p->image_cache_mib >= 0 ? p->image_cache_mib << 20 : p->per_image > 1 ? ep.image_cache_bytes : 0;
    if (s == LISA_OK) s = lisa_model_load(p->model, &p->model_params, &m);
    lisa_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (s == LISA_OK) s = lisa_model_get_info(m, &info);
    if (s == LISA_OK) s = lisa_engine_create(m, &ep, &e);
    lisa_flop_dims fd;
    const bool have_dims = s == LISA_OK && lisa_flop_dims_from_model(&fd, m) == LISA_OK;
    snprintf(r->backend, sizeof r->backend, "%s", info.backend_name);
    snprintf(r->device, sizeof r->device, "%s", info.device_name);
    const char *card = NULL;
    if (p->peak_tflops > 0) {
        r->peak_tflops = p->peak_tflops;
        snprintf(r->peak_source, sizeof r->peak_source, "--peak-tflops");
    } else if (s == LISA_OK && info.backend == LISA_BACKEND_CUDA &&
               lisa_bench_datasheet_peak(info.device_name, &r->peak_tflops, &card)) {
        snprintf(r->peak_source, sizeof r->peak_source, "datasheet bf16 dense peak of the %s, by device name '%s'", card,
                 info.device_name);
    }
    run_stats warm = {0}, rs = {0};
    /* warm-up pictures are numbered after the measured ones: no measured request finds its picture
     * cached by the warm-up */
    const int64_t n_pictures = (p->requests + p->per_image - 1) / p->per_image;
    if (s == LISA_OK && p->warmup > 0)
        s = run_requests(&warm, e, &wl, p, p->warmup, r->concurrency, NULL, n_pictures);
    const lisa_engine_stats st0 = s == LISA_OK ? lisa_engine_get_stats(e) : (lisa_engine_stats){0};
    rs.lat = calloc((size_t)p->requests, sizeof *rs.lat);
    if (s == LISA_OK && !rs.lat) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) s = run_requests(&rs, e, &wl, p, p->requests, r->concurrency, have_dims ? &fd : NULL, 0);
    if (s == LISA_OK) {
        const lisa_engine_stats st1 = lisa_engine_get_stats(e);
        qsort(rs.lat, (size_t)rs.n, sizeof *rs.lat, cmp_d);
        report(r, &rs, &st0, &st1);
    }
    free(rs.lat);
    lisa_engine_free(e);
    lisa_model_free(m);
    workload_free(&wl);
    return s;
}
