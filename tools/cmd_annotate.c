/* tools/cmd_annotate.c — `lisa annotate`: a dataset through the batching engine, one COCO-RLE record
 * per (item, query), resumable and shardable (issue #8; the loop is jobs/annotate.c).
 *
 *   lisa annotate --model DIR [--vision-tower DIR] (--manifest FILE.jsonl | --images DIR --query Q)
 *                 --out OUT.jsonl [--masks-dir DIR [--overlays]] [--shard K/N] [--max-new-tokens N]
 *                 [--max-batch N] [--threads N] [--workers N] [--limit N] [--backend cpu|cuda|auto]
 *                 [--image-cache-mib N]
 *   lisa annotate --merge OUT.jsonl --shards N
 *
 * OUT is a record file (jobs/records.h): a header line naming the run, then one record per query
 * in completion order. Rerunning the same command continues an interrupted run (a torn last line
 * is cut and redone); a run with other inputs/model/shard refuses to touch the file. With
 * --shard K/N (or under srun/mpirun) shard K writes OUT with ".shard-K-of-N" before the extension;
 * --merge checks the N shard files (headers agree, every line parses, no key twice, nothing missing
 * from the input) and writes OUT atomically. Exit: 0 ok (error records included), 1 run failure,
 * 2 usage.
 */
#include "cli_args.h"
#include "lisa.h"
#include "jobs/annotate_input.h"
#include "loader/image.h"
#include "jobs/records.h"
#include "jobs/annotate.h"
#include "core/error.h"
#include "core/path.h"
#include "core/shard.h"
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: lisa annotate --model DIR [--vision-tower DIR] (--manifest FILE.jsonl | --images DIR --query Q)\n"
            "                     --out OUT.jsonl [--masks-dir DIR [--overlays]] [--shard K/N] [--limit N]\n"
            "                     [--max-new-tokens N] [--max-batch N] [--threads N] [--workers N]\n"
            "                     [--backend cpu|cuda|auto] [--log-every SECONDS] [--tp T] [--image-cache-mib N]\n"
            "       lisa annotate --merge OUT.jsonl --shards N\n"
            "\n"
            "Runs every (item, query) through LISA with continuous batching and appends one JSON record per\n"
            "query to OUT: id, query_index, line, query, image, answer, tokens, masks (COCO RLE as\n"
            "pycocotools writes it: {rle: {size, counts}, bbox, area, score}), timings; or an error record\n"
            "{id, query_index, error: {code, message}} for a bad item (missing/corrupt image, empty query,\n"
            "malformed manifest line). Line 1 of OUT is a header naming the run. Records come in completion\n"
            "order, not input order; (id, query_index) is the key.\n"
            "  --manifest F     JSON lines {\"id\", \"image\" (relative to F's folder), \"queries\": [...]}\n"
            "                   (or \"query\": \"...\"); an item's image is decoded and encoded once for all\n"
            "                   its queries, which then prefill only their own tokens\n"
            "  --images D       every .png/.jpg/.jpeg in D (sorted by name; id = file name) with --query Q\n"
            "  --out OUT        the record file; rerun the same command to resume after a crash or kill\n"
            "  --masks-dir D    also write each mask as D/<id>_q<k>.png (0/255; further masks _1, _2, ...)\n"
            "  --overlays       and the image with the mask tinted red as D/<id>_q<k>_overlay.png\n"
            "  --shard K/N      items with index %% N == K, written to OUT.shard-K-of-N.<ext>. Default under\n"
            "                   srun/mpirun: the rank and size (SLURM_PROCID/NTASKS, OMPI_COMM_WORLD_RANK/SIZE,\n"
            "                   PMI_RANK/SIZE); with --tp T, one shard per group of T consecutive ranks.\n"
            "                   Merge with --merge OUT --shards N\n"
            "  --tp T           tensor parallelism: the LLM split over T MPI ranks (mpirun -np T*G: G groups,\n"
            "                   G shards); rank 0 of a group writes its shard, the others follow it\n"
            "  --limit N        the first N items of the shard (not part of the run's identity)\n"
            "  --max-new-tokens N  generation limit (default 512, as chat.py)\n"
            "  --max-batch N    sequences decoded together (default 8); requests in flight: 2N\n"
            "  --threads N      compute threads (default: all cores); --workers N: image decode threads\n"
            "  --image-cache-mib N  images kept encoded for reuse (default 256; 0: every query encodes its\n"
            "                   image and prefills its whole prompt; the records are the same)\n"
            "  --log-every S    without a terminal: a progress line every S seconds (default 10)\n");
}

typedef struct opts {
    const char *model, *vision_tower, *manifest, *images, *query, *out, *masks_dir, *merge;
    bool overlays;
    int32_t shard_k, shard_n, max_new_tokens, max_batch, threads, workers, shards, tp;
    int64_t image_cache_mib; /* < 0: the engine's default */
    int64_t limit;
    double log_every;
    lisa_backend_kind backend;
} opts;

static int parse_opts(opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->shard_n = 1;
    o->max_new_tokens = 512;
    o->max_batch = 8;
    o->log_every = 10;
    o->image_cache_mib = -1;
    bool shard_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
#define STR(name, field)                                                                                               \
    if (!strcmp(a, name)) {                                                                                            \
        if (!v) return fprintf(stderr, "lisa annotate: %s needs a value\n", name), -1;                                 \
        o->field = v;                                                                                                  \
        i++;                                                                                                           \
        continue;                                                                                                      \
    }
#define INT(name, field, lo, hi)                                                                                       \
    if (!strcmp(a, name)) {                                                                                            \
        if (!cli_parse_i64(v, lo, hi, &n))                                                                             \
            return fprintf(stderr, "lisa annotate: %s needs an integer in [%lld, %lld]\n", name, (long long)(lo),      \
                           (long long)(hi)),                                                                           \
                   -1;                                                                                                 \
        o->field = (__typeof__(o->field))n;                                                                            \
        i++;                                                                                                           \
        continue;                                                                                                      \
    }
        STR("--model", model)
        STR("--vision-tower", vision_tower)
        STR("--manifest", manifest)
        STR("--images", images)
        STR("--query", query)
        STR("--out", out)
        STR("--masks-dir", masks_dir)
        STR("--merge", merge)
        INT("--max-new-tokens", max_new_tokens, 1, 1 << 20)
        INT("--max-batch", max_batch, 1, 256)
        INT("--threads", threads, 0, 4096)
        INT("--workers", workers, 0, 4096)
        INT("--image-cache-mib", image_cache_mib, 0, 1 << 24)
        INT("--limit", limit, 0, INT64_MAX)
        INT("--shards", shards, 1, 1000000)
        INT("--tp", tp, 1, 4096)
#undef STR
#undef INT
        if (!strcmp(a, "--overlays")) {
            o->overlays = true;
        } else if (!strcmp(a, "--shard")) {
            if (!v || !lisa_shard_parse(v, &o->shard_k, &o->shard_n))
                return fprintf(stderr, "lisa annotate: --shard K/N with 0 <= K < N (got %s)\n", v ? v : "nothing"), -1;
            shard_given = true;
            i++;
        } else if (!strcmp(a, "--log-every")) {
            char *e = NULL;
            o->log_every = v ? strtod(v, &e) : -1;
            if (!v || *e || !(o->log_every > 0))
                return fprintf(stderr, "lisa annotate: --log-every needs a positive number of seconds\n"), -1;
            i++;
        } else if (!strcmp(a, "--backend")) {
            if (!v) return fprintf(stderr, "lisa annotate: --backend needs a value\n"), -1;
            if (!cli_parse_backend(v, &o->backend))
                return fprintf(stderr, "lisa annotate: --backend cpu, cuda or auto (got '%s')\n", v), -1;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            return fprintf(stderr, "lisa annotate: unknown or incomplete option '%s'\n", a), -1;
        }
    }
    if (o->merge) {
        if (!o->shards) return fprintf(stderr, "lisa annotate: --merge OUT needs --shards N\n"), -1;
        return 0;
    }
    if (!shard_given) lisa_shard_from_env_tp(o->tp, &o->shard_k, &o->shard_n, NULL); /* a TP group = a shard */
    if (!o->model || !o->out) return fprintf(stderr, "lisa annotate: --model and --out are required\n"), -1;
    if (!o->manifest == !o->images)
        return fprintf(stderr, "lisa annotate: give either --manifest FILE or --images DIR --query Q\n"), -1;
    if (o->images && (!o->query || !o->query[0]))
        return fprintf(stderr, "lisa annotate: --images needs a non-empty --query\n"), -1;
    if (o->manifest && o->query)
        return fprintf(stderr, "lisa annotate: --query goes with --images (a manifest carries its queries)\n"), -1;
    if (o->overlays && !o->masks_dir) return fprintf(stderr, "lisa annotate: --overlays needs --masks-dir\n"), -1;
    return 0;
}

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
    lisa_segment_params seg;
    bool tty;
    double last_log, t0;
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
    if (!lisa_path_join(base, sizeof base, c->o->masks_dir, name))
        return lisa_fail(LISA_ERR_INVALID_ARG, "mask path too long: %s/%s", c->o->masks_dir, name);
    snprintf(over, sizeof over, "%.*s_overlay.png", (int)(strlen(base) - 4), base);
    /* the overlay needs the pixels: decode the image again (the engine does not keep them) */
    lisa_bitmap img = {0};
    if (c->o->overlays) {
        lisa_image_limits lim = lisa_image_default_limits();
        if (c->seg.max_image_pixels > 0) lim.max_pixels = c->seg.max_image_pixels;
        LISA_TRY(lisa_image_load(&img, image_path, &lim));
    }
    cli_written written = {0};
    lisa_status s = LISA_OK;
    cJSON *masks = cJSON_GetObjectItemCaseSensitive(rec, "masks");
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        int32_t h, w;
        const uint8_t *m = lisa_result_mask(r, i, &h, &w);
        char mp[CLI_PATH_MAX], op[CLI_PATH_MAX];
        s = cli_write_mask(&written, base, c->o->overlays ? over : NULL, img.data, m, h, w, i, mp, op);
        cJSON *o = cJSON_GetArrayItem(masks, i);
        if (s == LISA_OK && o && mp[0]) cJSON_AddStringToObject(o, "file", mp);
        if (s == LISA_OK && o && op[0]) cJSON_AddStringToObject(o, "overlay", op);
    }
    if (s != LISA_OK) cli_written_remove_all(&written);
    cli_written_free(&written);
    lisa_bitmap_free(&img);
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
    if (c->tty) fprintf(stderr, "\r%*s\r", c->last_len, "");
    fprintf(stderr, "lisa annotate: %s\n", msg);
}

static void summary(const char *out, const lisa_annotate_plan *pl, const lisa_annotate_stats *st, double seconds) {
    printf("lisa annotate: %s: %lld records written by this run (%lld errors), %lld done before, %lld of %lld in "
           "the file now\n",
           out, (long long)st->written, (long long)st->errors, (long long)st->skipped,
           (long long)(st->written + st->skipped), (long long)pl->records);
    if (st->duplicates) printf("  %lld items skipped: their id repeats an earlier item's\n", (long long)st->duplicates);
    printf("  %lld queries in %.1f s: %.3f samples/s\n", (long long)st->written, seconds,
           seconds > 0 ? (double)st->written / seconds : 0.0);
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

/* ---- the run ---------------------------------------------------------------------------------- */

static cJSON *run_header(const opts *o) {
    char abs_in[PATH_MAX], abs_model[PATH_MAX], shard[48];
    const char *in = o->manifest ? o->manifest : o->images;
    if (!realpath(in, abs_in)) snprintf(abs_in, sizeof abs_in, "%s", in);
    if (!realpath(o->model, abs_model)) snprintf(abs_model, sizeof abs_model, "%s", o->model);
    snprintf(shard, sizeof shard, "%d/%d", (int)o->shard_k, (int)o->shard_n);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "lisa_annotate", 1);
    cJSON_AddStringToObject(h, o->manifest ? "manifest" : "images", abs_in);
    if (o->images) cJSON_AddStringToObject(h, "query", o->query);
    cJSON_AddStringToObject(h, "model", abs_model);
    cJSON_AddNumberToObject(h, "max_new_tokens", o->max_new_tokens);
    cJSON_AddStringToObject(h, "shard", shard);
    return h;
}

static int fail(const char *what) {
    fprintf(stderr, "lisa annotate: %s%s%s\n", what ? what : "", what ? ": " : "", lisa_last_error());
    return 1;
}

static int run(const opts *o) {
    const double t0 = now_s();
    lisa_model *m = NULL;
    if (o->tp > 1) {
        /* every rank of a TP group loads its shard first; the followers serve rank 0's engine
         * steps and touch no file */
        lisa_model_params mp = lisa_model_default_params();
        mp.vision_tower = o->vision_tower;
        mp.n_threads = o->threads;
        mp.backend = o->backend;
        mp.tensor_parallel = o->tp;
        if (lisa_model_load(o->model, &mp, &m) != LISA_OK) return fail(NULL);
        if (lisa_model_tp_rank(m) != 0) {
            const lisa_status s = lisa_model_tp_follow(m);
            const int rc = s == LISA_OK ? 0 : fail("following TP rank 0");
            lisa_model_free(m);
            return rc;
        }
    }
    char out_path[CLI_PATH_MAX];
    if (!lisa_shard_path(out_path, sizeof out_path, o->out, o->shard_k, o->shard_n)) {
        fprintf(stderr, "lisa annotate: --out path too long\n");
        lisa_model_free(m); /* TP: releases the followers */
        return 1;
    }
    if (!cli_output_dir_ok("annotate", out_path)) {
        lisa_model_free(m);
        return 1;
    }
    if (o->masks_dir && mkdir(o->masks_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lisa annotate: cannot create %s: %s\n", o->masks_dir, strerror(errno));
        lisa_model_free(m);
        return 1;
    }
    ann_ctx c = {.o = o, .tty = isatty(2) != 0, .t0 = t0, .seg = lisa_segment_default_params()};
    c.seg.max_new_tokens = o->max_new_tokens;
    lisa_ann_source src;
    lisa_status s = o->manifest ? lisa_ann_source_open_manifest(&src, o->manifest)
                                : lisa_ann_source_open_dir(&src, o->images, o->query);
    if (s != LISA_OK) {
        const int rc = fail(NULL);
        lisa_model_free(m);
        return rc;
    }
    cJSON *header = run_header(o);
    lisa_records rec;
    int rc = 0;
    if (lisa_records_open(&rec, out_path, &lisa_annotate_records, header, true) != LISA_OK) rc = fail(NULL);
    if (rc == 0 && rec.torn_bytes)
        fprintf(stderr, "lisa annotate: %s: cut a torn last line (%zu bytes); that record is redone\n", out_path,
                rec.torn_bytes);
    if (rc == 0 && lisa_annotate_plan_run(&c.plan, &src, &rec, o->shard_k, o->shard_n, o->limit) != LISA_OK)
        rc = fail("reading the input");
    if (rc == 0)
        fprintf(stderr,
                "lisa annotate: shard %d/%d: %lld items, %lld queries (%lld malformed lines), %lld already in %s\n",
                (int)o->shard_k, (int)o->shard_n, (long long)c.plan.items, (long long)c.plan.records,
                (long long)c.plan.malformed, (long long)c.plan.done, out_path);
    lisa_engine *e = NULL;
    lisa_annotate_stats st = {0};
    const bool nothing = c.plan.done == c.plan.records;
    if (rc == 0 && !nothing && !m) {
        lisa_model_params mp = lisa_model_default_params();
        mp.vision_tower = o->vision_tower;
        mp.n_threads = o->threads;
        mp.backend = o->backend;
        if (lisa_model_load(o->model, &mp, &m) != LISA_OK) rc = fail(NULL);
    }
    if (rc == 0 && !nothing) {
        lisa_engine_params ep = lisa_engine_default_params();
        ep.max_batch = o->max_batch;
        ep.max_images = o->max_batch < 8 ? o->max_batch : 8;
        ep.max_queue = 2 * o->max_batch;
        ep.n_workers = o->workers;
        if (o->image_cache_mib >= 0) ep.image_cache_bytes = o->image_cache_mib << 20;
        if (lisa_engine_create(m, &ep, &e) != LISA_OK) rc = fail("creating the engine");
    }
    if (rc == 0 && !nothing) {
        lisa_annotate_params ap = {.engine = e,
                                   .src = &src,
                                   .out = &rec,
                                   .shard_k = o->shard_k,
                                   .shard_n = o->shard_n,
                                   .limit = o->limit,
                                   .max_in_flight = 2 * o->max_batch,
                                   .seg = c.seg,
                                   .on_result = on_result,
                                   .on_notice = on_notice,
                                   .on_progress = on_progress,
                                   .ctx = &c};
        s = lisa_annotate_run(&ap, &st);
        if (c.tty) fputc('\n', stderr);
        if (s != LISA_OK) rc = fail(NULL);
    }
    st.skipped = c.plan.done;
    if (rc == 0) summary(out_path, &c.plan, &st, now_s() - t0);
    lisa_engine_free(e);
    lisa_model_free(m);
    if (rec.path) lisa_records_close(&rec);
    cJSON_Delete(header);
    lisa_ann_source_close(&src);
    return rc;
}

/* ---- --merge ------------------------------------------------------------------------------------ */

/* --merge: owns the merged file being written and the set of keys seen, until run_merge returns. */
typedef struct merge_ctx {
    FILE *f;
    const char *path;
    lisa_keyset seen;
    int64_t n, errors;
} merge_ctx;

static lisa_status merge_visit(void *ctx, const char *line, size_t len, const cJSON *rec, int64_t line_no) {
    merge_ctx *m = ctx;
    char key[LISA_RECORDS_KEY_MAX];
    const size_t kl = lisa_annotate_records.key(key, sizeof key, rec);
    if (kl == 0 || kl >= sizeof key)
        return lisa_fail(LISA_ERR_FORMAT, "%s line %lld: not an annotate record (no id/query_index or line)", m->path,
                         (long long)line_no);
    bool added;
    LISA_TRY(lisa_keyset_add(&m->seen, key, kl, &added));
    if (!added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id"),
                    *qi = cJSON_GetObjectItemCaseSensitive(rec, "query_index");
        return lisa_fail(LISA_ERR_FORMAT,
                         "%s line %lld: the record of id %s query %d is already in an earlier line or shard", m->path,
                         (long long)line_no, cJSON_IsString(id) ? id->valuestring : "null",
                         cJSON_IsNumber(qi) ? qi->valueint : -1);
    }
    m->n++;
    m->errors += cJSON_GetObjectItemCaseSensitive(rec, "error") != NULL;
    if (fwrite(line, 1, len, m->f) != len || fputc('\n', m->f) == EOF)
        return lisa_fail(LISA_ERR_IO, "writing the merged file: %s", strerror(errno));
    return LISA_OK;
}

/* Every record the input asks for must be in the merged set. */
static lisa_status check_complete(const cJSON *h, const lisa_keyset *seen, int64_t *missing, bool *checked) {
    *missing = 0;
    *checked = false;
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(h, "manifest"),
                *img = cJSON_GetObjectItemCaseSensitive(h, "images");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(h, "query");
    lisa_ann_source src;
    lisa_status s;
    if (cJSON_IsString(man))
        s = lisa_ann_source_open_manifest(&src, man->valuestring);
    else if (cJSON_IsString(img) && cJSON_IsString(q))
        s = lisa_ann_source_open_dir(&src, img->valuestring, q->valuestring);
    else
        return LISA_OK;
    if (s != LISA_OK) return LISA_OK; /* the input is not reachable from here: no check */
    lisa_records view;
    memset(&view, 0, sizeof view);
    view.keys = *seen; /* lisa_records_has reads only the key set */
    lisa_annotate_plan pl;
    s = lisa_annotate_plan_run(&pl, &src, &view, 0, 1, 0);
    lisa_ann_source_close(&src);
    if (s == LISA_OK) {
        *missing = pl.records - pl.done;
        *checked = true;
    }
    return s;
}

static int run_merge(const opts *o) {
    const int32_t N = o->shards;
    char tmp[CLI_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", o->merge, (int)getpid());
    merge_ctx m = {.f = fopen(tmp, "wb")};
    if (!m.f) {
        fprintf(stderr, "lisa annotate: cannot create %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    cJSON *first = NULL;
    int rc = 0;
    for (int32_t k = 0; k < N && rc == 0; k++) {
        char path[CLI_PATH_MAX], want[48];
        if (!lisa_shard_path(path, sizeof path, o->merge, k, N)) {
            fprintf(stderr, "lisa annotate: path too long\n");
            rc = 1;
            break;
        }
        m.path = path;
        cJSON *h = NULL;
        size_t torn = 0;
        /* the header first (scan without records), to write the merged header before any line */
        lisa_status s = lisa_records_scan(path, lisa_annotate_records.magic, &h, NULL, NULL, &torn);
        if (s == LISA_OK) {
            snprintf(want, sizeof want, "%d/%d", (int)k, (int)N);
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(h, "shard");
            if (!cJSON_IsString(sh) || strcmp(sh->valuestring, want))
                s = lisa_fail(LISA_ERR_FORMAT, "%s: header says shard %s, expected %s", path,
                              cJSON_IsString(sh) ? sh->valuestring : "?", want);
        }
        if (s == LISA_OK && torn)
            s = lisa_fail(LISA_ERR_FORMAT, "%s: ends in a torn line: the shard was interrupted; rerun it to finish",
                          path);
        if (s == LISA_OK && !first) {
            first = cJSON_Duplicate(h, 1);
            cJSON_ReplaceItemInObjectCaseSensitive(first, "shard", cJSON_CreateString("merged"));
            cJSON_AddNumberToObject(first, "shards", N);
            char *txt = cJSON_PrintUnformatted(first);
            if (!txt || fprintf(m.f, "%s\n", txt) < 0) s = lisa_fail(LISA_ERR_IO, "writing %s", tmp);
            free(txt);
        } else if (s == LISA_OK) {
            const cJSON *it;
            cJSON_ArrayForEach(it, h) {
                if (!strcmp(it->string, "shard")) continue;
                if (!cJSON_Compare(it, cJSON_GetObjectItemCaseSensitive(first, it->string), true)) {
                    s = lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\" differs from shard 0's: another run", path, it->string);
                    break;
                }
            }
        }
        cJSON_Delete(h);
        const int64_t n0 = m.n, e0 = m.errors;
        if (s == LISA_OK) s = lisa_records_scan(path, lisa_annotate_records.magic, NULL, merge_visit, &m, NULL);
        if (s != LISA_OK)
            rc = fail(NULL);
        else
            printf("  %s: %lld records (%lld errors)\n", path, (long long)(m.n - n0), (long long)(m.errors - e0));
    }
    if (rc == 0) {
        int64_t missing = 0;
        bool checked = false;
        if (check_complete(first, &m.seen, &missing, &checked) != LISA_OK)
            rc = fail("checking against the input");
        else if (!checked)
            fprintf(stderr, "lisa annotate: the input named in the headers is not readable here: "
                            "completeness not checked\n");
        else if (missing > 0) {
            fprintf(stderr,
                    "lisa annotate: %lld records of the input are in no shard (a shard ran with --limit, or "
                    "has not finished)\n",
                    (long long)missing);
            rc = 1;
        }
    }
    if (rc == 0 && (fflush(m.f) != 0 || fsync(fileno(m.f)) != 0)) rc = fail("flushing");
    if (fclose(m.f) != 0 && rc == 0) {
        fprintf(stderr, "lisa annotate: writing %s: %s\n", tmp, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && rename(tmp, o->merge) != 0) {
        fprintf(stderr, "lisa annotate: cannot rename %s to %s: %s\n", tmp, o->merge, strerror(errno));
        rc = 1;
    }
    if (rc != 0)
        remove(tmp);
    else
        printf("lisa annotate: merged %d shards into %s: %lld records (%lld errors)\n", (int)N, o->merge,
               (long long)m.n, (long long)m.errors);
    lisa_keyset_free(&m.seen);
    cJSON_Delete(first);
    return rc;
}

int lisa_cmd_annotate(int argc, char **argv) {
    opts o;
    if (parse_opts(&o, argc, argv) != 0) {
        fputc('\n', stderr);
        usage(stderr);
        return 2;
    }
    return o.merge ? run_merge(&o) : run(&o);
}
