/* tools/cmd_annotate.c — `lisa annotate`: a dataset through the batching engine, one COCO-RLE record
 * per (item, query), resumable and shardable. The run and --merge are jobs/annotate_job.c (the loop
 * jobs/annotate.c); this file holds the options, the mask files of --masks-dir and the printing.
 *
 *   lisa annotate --model DIR (--manifest FILE.jsonl | --images DIR --query Q) --out OUT.jsonl [options]
 *   lisa annotate --merge OUT.jsonl --shards N
 *
 * Exit: 0 ok (error records included), 1 run failure, 2 usage.
 */
#include "cli_args.h"
#include "jobs/annotate_job.h"
#include "lisa.h"
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const NAME = "annotate";

typedef struct opts {
    const char *masks_dir, *merge;
    bool overlays;
    int32_t shard[2]; /* K, N; N = 0: not given */
    int32_t shards;
    double log_every;
} opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- mask files ------------------------------------------------------------------------------ */

/* A file-name-safe form of an id: [A-Za-z0-9._-] kept, others '_', at most 120 bytes; when
 * anything changed, "-<8 hex digits of the id's hash>" keeps distinct ids apart. */
static void safe_name(char *out, size_t cap, const char *id) {
    size_t k = 0;
    bool changed = false;
    for (const char *c = id; *c; c++) {
        if (k + 1 >= cap || k >= 120) {
            changed = true;
            break;
        }
        const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                        *c == '_' || *c == '-';
        out[k] = ok && !(k == 0 && *c == '.') ? *c : '_'; /* no hidden files */
        changed |= out[k] != *c;
        k++;
    }
    out[k] = '\0';
    if (changed && k + 10 < cap) {
        uint32_t h = 2166136261u;
        for (const char *c = id; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        snprintf(out + k, cap - k, "-%08x", h);
    }
}

/* The tool's callbacks' state. Borrows the options; holds no memory. */
typedef struct ann_ctx {
    const opts *o;
    int64_t max_image_pixels;
    bool tty;
    double last_log;
    lisa_annotate_plan plan;
    int last_len;
} ann_ctx;

static lisa_status on_result(void *ctx, const lisa_result *r, const char *id, int32_t qi, const char *image_path,
                             cJSON *rec) {
    ann_ctx *c = ctx;
    const int32_t n = lisa_result_n_masks(r);
    if (!c->o->masks_dir || n == 0) return LISA_OK;
    char name[256], base[CLI_PATH_MAX], over[CLI_PATH_MAX], file[64];
    safe_name(name, sizeof name, id);
    snprintf(file, sizeof file, "_q%d.png", (int)qi);
    strncat(name, file, sizeof name - strlen(name) - 1);
    if ((size_t)snprintf(base, sizeof base, "%s/%s", c->o->masks_dir, name) >= sizeof base)
        return lisa_fail(LISA_ERR_INVALID_ARG, "mask path too long: %s/%s", c->o->masks_dir, name);
    snprintf(over, sizeof over, "%.*s_overlay.png", (int)(strlen(base) - 4), base);
    /* the overlay needs the pixels: decode the image again (the engine does not keep them) */
    uint8_t *rgb = NULL;
    int32_t ih = 0, iw = 0;
    if (c->o->overlays) {
        const lisa_status s = lisa_rgb_load_file(image_path, c->max_image_pixels, &rgb, &ih, &iw);
        if (s != LISA_OK) return s;
    }
    cli_written written = {0};
    lisa_status s = LISA_OK;
    cJSON *masks = cJSON_GetObjectItemCaseSensitive(rec, "masks");
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        char mp[CLI_PATH_MAX], op[CLI_PATH_MAX];
        s = cli_write_mask(&written, base, c->o->overlays ? over : NULL, r, i, rgb, mp, op);
        cJSON *o = cJSON_GetArrayItem(masks, i);
        if (s == LISA_OK && o && mp[0]) cJSON_AddStringToObject(o, "file", mp);
        if (s == LISA_OK && o && op[0]) cJSON_AddStringToObject(o, "overlay", op);
    }
    if (s != LISA_OK) cli_written_remove_all(&written);
    cli_written_free(&written);
    lisa_free(rgb);
    return s;
}

/* ---- progress and summary ------------------------------------------------------------------- */

static void fmt_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

static void on_plan(void *ctx, const lisa_annotate_summary *s) {
    ann_ctx *c = ctx;
    c->plan = s->plan;
    fprintf(stderr, "lisa annotate: shard %d/%d: %lld items, %lld queries (%lld malformed lines), %lld already in %s\n",
            (int)s->shard_k, (int)s->shard_n, (long long)s->plan.items, (long long)s->plan.records,
            (long long)s->plan.malformed, (long long)s->plan.done, s->out_path);
}

static void on_progress(void *ctx, const lisa_annotate_stats *st) {
    ann_ctx *c = ctx;
    const int64_t todo = c->plan.records - c->plan.done, done = st->written;
    const double rate = st->seconds > 0 ? (double)done / st->seconds : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (double)(todo - done) / rate : -1);
    const int64_t shown = c->plan.done + done;
    if (c->tty) {
        char line[256];
        const int bar = 24, fill = c->plan.records ? (int)(bar * shown / c->plan.records) : bar;
        char b[32];
        for (int i = 0; i < bar; i++)
            b[i] = i < fill ? '#' : '.';
        b[bar] = '\0';
        int n = snprintf(
            line, sizeof line, "\r[%s] %lld/%lld queries, %lld errors, %.2f/s, ETA %s, queued %d running %d", b,
            (long long)shown, (long long)c->plan.records, (long long)st->errors, rate, eta, st->queued, st->running);
        fprintf(stderr, "%s%*s", line, n < c->last_len ? c->last_len - n : 0, "");
        c->last_len = n;
        fflush(stderr);
        return;
    }
    const double t = now_s();
    if (done > 0 && done < todo && t - c->last_log < c->o->log_every) return;
    c->last_log = t;
    fprintf(stderr,
            "[annotate] %lld/%lld queries (%lld done before), %lld errors, %.2f/s, ETA %s, queued %d, running %d\n",
            (long long)shown, (long long)c->plan.records, (long long)c->plan.done, (long long)st->errors, rate, eta,
            st->queued, st->running);
}

static void on_notice(void *ctx, const char *msg) {
    ann_ctx *c = ctx;
    if (c->tty && c->last_len) fprintf(stderr, "\r%*s\r", c->last_len, "");
    fprintf(stderr, "lisa annotate: %s\n", msg);
}

static void summary(const lisa_annotate_summary *s) {
    const lisa_annotate_stats *st = &s->stats;
    printf("lisa annotate: %s: %lld records written by this run (%lld errors), %lld done before, %lld of %lld in "
           "the file now\n",
           s->out_path, (long long)st->written, (long long)st->errors, (long long)st->skipped,
           (long long)(st->written + st->skipped), (long long)s->plan.records);
    if (st->duplicates) printf("  %lld items skipped: their id repeats an earlier item's\n", (long long)st->duplicates);
    printf("  %lld queries in %.1f s: %.3f samples/s\n", (long long)st->written, s->seconds,
           s->seconds > 0 ? (double)st->written / s->seconds : 0.0);
    if (st->n_ok > 0) {
        const double n = (double)st->n_ok;
        const lisa_timings *t = &st->sum;
        printf("  per-stage ms (mean of %lld ok queries; vision = CLIP + SAM encoder, one batched step):\n"
               "    preprocess %.1f  vision %.1f  prefill %.1f  decode %.1f  sam_decoder %.1f  latency %.1f\n"
               "    prompt tokens %.0f  generated tokens %.1f\n",
               (long long)st->n_ok, t->preprocess_ms / n, t->sam_encoder_ms / n, t->prefill_ms / n, t->decode_ms / n,
               t->sam_decoder_ms / n, t->total_ms / n, t->n_prompt_tokens / n, t->n_generated / n);
    }
}

static void on_shard(void *ctx, const char *path, int64_t records, int64_t errors) {
    (void)ctx;
    printf("  %s: %lld records (%lld errors)\n", path, (long long)records, (long long)errors);
}

/* ---- the command -------------------------------------------------------------------------------- */

int lisa_cmd_annotate(int argc, char **argv) {
    opts o = {.log_every = 10};
    lisa_annotate_job j = lisa_annotate_job_default();
    int64_t image_mib = j.engine.image_cache_bytes >> 20;
    const cli_opt table[] = {
        CLI_STR("model", &j.model, "DIR", "a LISA checkpoint directory"),
        CLI_STR_D("vision-tower", &j.vision_tower, "DIR", "the CLIP directory (default: as `lisa segment`)", ""),
        CLI_STR("manifest", &j.manifest, "FILE",
                "JSON lines {\"id\", \"image\" (relative to FILE's folder), \"queries\": [...]}\n"
                "(or \"query\": \"...\"); an item's image is decoded and encoded once for all its\n"
                "queries, which then prefill only their own tokens"),
        CLI_STR("images", &j.images, "DIR",
                "every .png/.jpg/.jpeg in DIR (sorted by name; id = file name), with --query"),
        CLI_STR("query", &j.query, "Q", "the query of every image of --images"),
        CLI_STR("out", &j.out, "OUT.jsonl", "the record file; rerun the same command to resume after a crash or kill"),
        CLI_STR("masks-dir", &o.masks_dir, "DIR",
                "also write each mask as DIR/<id>_q<k>.png (0/255; further masks of\n"
                "the query _1, _2, ...)"),
        CLI_FLAG("overlays", &o.overlays, "and the image with the mask tinted red as DIR/<id>_q<k>_overlay.png"),
        CLI_FN("shard", o.shard, cli_parse_shard, "K/N",
               "items with index % N == K, written to OUT.shard-K-of-N.<ext>; merge the\n"
               "shards with --merge OUT --shards N. Under srun/mpirun: the rank and size\n"
               "(SLURM_PROCID/NTASKS, OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE); with --tp T,\n"
               "one shard per group of T consecutive ranks",
               "0/1"),
        CLI_INT("tp", &j.model_params.tensor_parallel, 1, 4096, "T",
                "tensor parallelism: the LLM split over T MPI ranks (mpirun -np T*G: G\n"
                "groups, G shards); rank 0 of a group writes its shard, the others follow it"),
        CLI_I64_D("limit", &j.limit, 0, INT64_MAX, "N",
                  "the first N items of the shard (not part of the run's identity)", "all"),
        CLI_INT("max-new-tokens", &j.seg.max_new_tokens, 1, 1 << 20, "N", "generation limit (as chat.py)"),
        CLI_INT("max-batch", &j.engine.max_batch, 1, 256, "N", "sequences decoded together; requests in flight: 2N"),
        CLI_BACKEND("backend", &j.model_params.backend),
        CLI_INT_D("threads", &j.model_params.n_threads, 0, 4096, "N", "compute threads (0: all cores)", "all cores"),
        CLI_INT_D("workers", &j.engine.n_workers, 0, 4096, "N",
                  "image decode + preprocessing threads (0: all cores)", "all cores"),
        CLI_I64("image-cache-mib", &image_mib, 0, 1 << 24, "N",
                "images kept encoded for reuse (0: every query encodes its image and\n"
                "prefills its whole prompt; the records are the same)"),
        CLI_DOUBLE("log-every", &o.log_every, 0, 1e9, "SECONDS", "without a terminal: a progress line every SECONDS"),
        CLI_STR("merge", &o.merge, "OUT.jsonl",
                "merge mode: check the N shard files of OUT (--shards N) and write\n"
                "OUT; no model needed"),
        CLI_INT_D("shards", &o.shards, 1, 1000000, "N", "the number of shard files --merge joins", ""),
    };
    j.model_params.tensor_parallel = 1;
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR (--manifest FILE.jsonl | --images DIR --query Q) --out OUT.jsonl [options]\n"
                 "--merge OUT.jsonl --shards N",
        .about =
            "Runs every (item, query) through LISA with continuous batching and appends one JSON record per\n"
            "query to OUT: id, query_index, line, query, image, answer, tokens, masks (COCO RLE as\n"
            "pycocotools writes it: {rle: {size, counts}, bbox, area, score}), timings; or an error record\n"
            "{id, query_index, error: {code, message}} for a bad item (missing/corrupt image, empty query,\n"
            "malformed manifest line). Line 1 of OUT is a header naming the run. Records come in completion\n"
            "order, not input order; (id, query_index) is the key.",
        .opts = table,
        .n_opts = (int)(sizeof table / sizeof table[0]),
        .notes = "Exit status: 0 ok (error records included), 1 run failure, 2 usage error.",
    };
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if (o.merge) {
        if (!o.shards) return cli_usage_error(&cmd, "--merge OUT needs --shards N");
        lisa_annotate_merge_summary ms;
        const lisa_status s = lisa_annotate_merge(o.merge, o.shards, on_shard, NULL, &ms);
        if (s != LISA_OK) return cli_fail(NAME, NULL, s);
        if (!ms.checked)
            fprintf(stderr, "lisa annotate: the input named in the headers is not readable here: "
                            "completeness not checked\n");
        printf("lisa annotate: merged %d shards into %s: %lld records (%lld errors)\n", (int)o.shards, o.merge,
               (long long)ms.records, (long long)ms.errors);
        return 0;
    }
    if (!j.model || !j.out) return cli_usage_error(&cmd, "--model and --out are required");
    if (!j.manifest == !j.images) return cli_usage_error(&cmd, "give either --manifest FILE or --images DIR --query Q");
    if (j.images && (!j.query || !j.query[0])) return cli_usage_error(&cmd, "--images needs a non-empty --query");
    if (j.manifest && j.query)
        return cli_usage_error(&cmd, "--query goes with --images (a manifest carries its queries)");
    if (o.overlays && !o.masks_dir) return cli_usage_error(&cmd, "--overlays needs --masks-dir");
    j.shard_k = o.shard[0];
    j.shard_n = o.shard[1]; /* 0: from srun/mpirun */
    j.engine.max_images = j.engine.max_batch < j.engine.max_images ? j.engine.max_batch : j.engine.max_images;
    j.engine.image_cache_bytes = image_mib << 20;
    if (!cli_output_dir_ok(NAME, j.out)) return 1;
    if (o.masks_dir && mkdir(o.masks_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lisa annotate: cannot create %s: %s\n", o.masks_dir, strerror(errno));
        return 1;
    }
    ann_ctx c = {.o = &o, .tty = isatty(2) != 0, .max_image_pixels = j.seg.max_image_pixels};
    j.on_result = on_result;
    j.on_notice = on_notice;
    j.on_plan = on_plan;
    j.on_progress = on_progress;
    j.ctx = &c;
    lisa_annotate_summary s;
    const lisa_status st = lisa_annotate_job_run(&j, &s);
    if (c.tty && c.last_len) fputc('\n', stderr);
    if (st != LISA_OK) return cli_fail(NAME, NULL, st);
    if (!s.follower) summary(&s);
    return 0;
}
