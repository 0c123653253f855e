/* tools/cmd_eval.c — `lisa eval`: reproduce LISA's evaluation tables (issue #11, spec §9).
 *
 *   lisa eval --model DIR [--vision-tower DIR] --dataset reasonseg|refcoco|refcoco+|refcocog
 *             --data ROOT --split SPLIT [--mode teacher-forced|generate] [--limit N]
 *             [--shard K/N] [--out results.json] [--records FILE] [--dump-masks DIR] [--resume]
 *   lisa eval --merge RECORDS... [--out results.json]
 *
 * Every query's result is appended (and fsync'd) to a record file as one JSON line; --resume
 * skips the queries already there (a torn last line is redone), --merge combines the record
 * files of several shards. The metrics (gIoU, cIoU; ReasonSeg also by short/long query) are
 * always computed from the records, so a resumed or merged run reports the same numbers as an
 * uninterrupted one. The record file's header (dataset, split, mode, shard, model) must match on
 * --resume; --limit may change between runs. Queries that failed (bad item, decode error, ...)
 * are recorded as errors, reported, left out of gIoU/cIoU and not retried by --resume (delete
 * their lines to retry them). Under srun/mpirun without --shard, the rank and size pick the
 * shard. Exit: 0 ok, 1 failure, 2 usage.
 */
#include "cli_args.h"
#include "lisa.h"
#include "jobs/dataset.h"
#include "jobs/records.h"
#include "loader/image.h"
#include "models/lisa_model.h"
#include "core/error.h"
#include "jobs/eval.h"
#include "jobs/eval_metrics.h"
#include "core/path.h"
#include "core/shard.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa eval --model DIR [--vision-tower DIR] --dataset reasonseg|refcoco|refcoco+|refcocog\n"
               "                 --data ROOT --split SPLIT [--mode teacher-forced|generate] [--limit N]\n"
               "                 [--shard K/N] [--out results.json] [--records FILE] [--dump-masks DIR]\n"
               "                 [--resume] [--split-by unc|umd|google] [--threads N] [--max-new-tokens N] [--tp T]\n"
               "       lisa eval --merge RECORDS... [--out results.json]\n"
               "\n"
               "Evaluates LISA as the reference (train_ds.py --eval_only) does and prints gIoU / cIoU.\n"
               "  --data ROOT     the LISA dataset root: ROOT/reason_seg/ReasonSeg/<split>/*.jpg + .json, or\n"
               "                  ROOT/refer_seg/<dataset>/{instances.json, refs(unc|umd).p} with images in\n"
               "                  ROOT/refer_seg/images/mscoco/images/train2014 (ROOT may also be the\n"
               "                  ReasonSeg or refer_seg directory itself)\n"
               "  --split         ReasonSeg: val | test (| train); refCOCO(+): val | testA | testB;\n"
               "                  refCOCOg: val | test (--split-by umd, the default for refcocog)\n"
               "  --mode          teacher-forced (default; the paper's numbers: answer fixed to \"[SEG].\",\n"
               "                  one forward) or generate (greedy chat, first [SEG]'s mask; none = empty)\n"
               "  --shard K/N     images with index %% N == K (0 <= K < N); merge the record files after.\n"
               "                  Default under srun/mpirun: the rank and size (SLURM_PROCID/NTASKS,\n"
               "                  OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE); with --tp T, one shard per\n"
               "                  group of T consecutive ranks\n"
               "  --tp T          tensor parallelism: split the LLM over T MPI ranks (mpirun -np T*G runs G\n"
               "                  groups, each on its own shard; generate mode)\n"
               "  --records FILE  the resumable per-query record file (default: <out>.records.jsonl, or\n"
               "                  lisa-eval-<dataset>-<split>[-K-of-N].records.jsonl)\n"
               "  --resume        continue an interrupted run from its record file\n"
               "  --dump-masks D  write each predicted mask as D/<image>_q<k>.png (0/255)\n"
               "  --max-new-tokens N  generate mode: generation limit (default 512, as chat.py)\n");
}

/* ---- options --------------------------------------------------------------------------------- */

typedef struct opts {
    const char *model, *vision_tower, *dataset, *data, *split, *mode, *out, *records, *dump, *split_by;
    int32_t limit, shard_k, shard_n, threads, max_new_tokens, tp;
    bool resume, generate;
    const char **merge;
    int n_merge;
} opts;

/* a non-negative option value (counts, shard numbers); 0 on success as the callers expect */
static int parse_int(const char *s, int32_t *out) {
    int64_t v;
    if (!cli_parse_i64(s, 0, 1000000000, &v)) return -1;
    *out = (int32_t)v;
    return 0;
}

static int parse_opts(opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->shard_n = 1;
    o->mode = "teacher-forced";
    bool shard_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(name, field)                                                                                              \
    if (!strcmp(a, name)) {                                                                                            \
        if (!v) return fprintf(stderr, "lisa eval: %s needs a value\n", name), -1;                                     \
        o->field = v;                                                                                                  \
        i++;                                                                                                           \
        continue;                                                                                                      \
    }
        TAKE("--model", model)
        TAKE("--vision-tower", vision_tower)
        TAKE("--dataset", dataset)
        TAKE("--data", data)
        TAKE("--split", split)
        TAKE("--mode", mode)
        TAKE("--out", out)
        TAKE("--records", records)
        TAKE("--dump-masks", dump)
        TAKE("--split-by", split_by)
#undef TAKE
        if (!strcmp(a, "--limit") || !strcmp(a, "--threads") || !strcmp(a, "--max-new-tokens") || !strcmp(a, "--tp")) {
            int32_t *dst = !strcmp(a, "--limit")     ? &o->limit
                           : !strcmp(a, "--threads") ? &o->threads
                           : !strcmp(a, "--tp")      ? &o->tp
                                                     : &o->max_new_tokens;
            if (!v || parse_int(v, dst)) return fprintf(stderr, "lisa eval: %s needs a non-negative integer\n", a), -1;
            i++;
        } else if (!strcmp(a, "--shard")) {
            if (!v || !lisa_shard_parse(v, &o->shard_k, &o->shard_n))
                return fprintf(stderr, "lisa eval: --shard K/N with 0 <= K < N (got %s)\n", v ? v : "nothing"), -1;
            shard_given = true;
            i++;
        } else if (!strcmp(a, "--resume")) {
            o->resume = true;
        } else if (!strcmp(a, "--merge")) {
            o->merge = (const char **)argv + i + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                i++, o->n_merge++;
            if (!o->n_merge) return fprintf(stderr, "lisa eval: --merge needs record files\n"), -1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            return fprintf(stderr, "lisa eval: unknown option '%s'\n", a), -1;
        }
    }
    if (o->merge) return 0;
    /* launched by srun / mpirun: one shard per rank (per TP group), as annotate does */
    if (!shard_given) lisa_shard_from_env_tp(o->tp, &o->shard_k, &o->shard_n, NULL);
    if (o->tp > 1 && strcmp(o->mode, "generate"))
        return fprintf(stderr, "lisa eval: --tp needs --mode generate (teacher-forced runs without TP)\n"), -1;
    if (!o->model || !o->dataset || !o->data || !o->split)
        return fprintf(stderr, "lisa eval: --model, --dataset, --data and --split are required\n"), -1;
    if (strcmp(o->dataset, "reasonseg") && strcmp(o->dataset, "refcoco") && strcmp(o->dataset, "refcoco+") &&
        strcmp(o->dataset, "refcocog"))
        return fprintf(stderr, "lisa eval: --dataset '%s' (reasonseg, refcoco, refcoco+ or refcocog)\n", o->dataset),
               -1;
    if (strcmp(o->mode, "teacher-forced") && strcmp(o->mode, "generate"))
        return fprintf(stderr, "lisa eval: --mode '%s' (teacher-forced or generate)\n", o->mode), -1;
    o->generate = !strcmp(o->mode, "generate");
    if (!o->split_by) o->split_by = !strcmp(o->dataset, "refcocog") ? "umd" : "unc";
    return 0;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static lisa_status load_dataset(lisa_dataset *ds, const opts *o) {
    char p[4096], q[4096];
    if (!strcmp(o->dataset, "reasonseg")) {
        /* ROOT/reason_seg/ReasonSeg/<split>, ROOT/ReasonSeg/<split> or ROOT/<split> */
        const char *cands[] = {"reason_seg/ReasonSeg", "ReasonSeg", ""};
        for (size_t i = 0; i < 3; i++) {
            if (lisa_path_join(q, sizeof q, o->data, cands[i]) &&
                lisa_path_join(p, sizeof p, q[0] ? q : o->data, o->split) && is_dir(p))
                return lisa_dataset_load_reasonseg(ds, p);
        }
        return lisa_fail(LISA_ERR_NOT_FOUND,
                         "ReasonSeg split '%s' not found under %s (expected %s/reason_seg/ReasonSeg/%s)", o->split,
                         o->data, o->data, o->split);
    }
    const char *root = o->data;
    if (lisa_path_join(p, sizeof p, o->data, "refer_seg") && is_dir(p)) root = p;
    return lisa_dataset_load_refer(ds, root, o->dataset, o->split_by, o->split);
}

/* ---- prediction callbacks ------------------------------------------------------------------- */

typedef struct predictor {
    lisa_model *m;
    bool generate;
    lisa_segment_params sp;
    lisa_result **res;
    int32_t res_cap;
} predictor;

static void take_result(lisa_eval_pred *p, const lisa_result *r, bool last_mask, int32_t h, int32_t w) {
    p->n_seg = lisa_result_n_masks(r);
    snprintf(p->answer, sizeof p->answer, "%s", lisa_result_answer(r));
    if (p->n_seg > 0) {
        int32_t mh, mw;
        const uint8_t *mk = lisa_result_mask(r, last_mask ? p->n_seg - 1 : 0, &mh, &mw);
        if (mh == h && mw == w) memcpy(p->mask, mk, (size_t)h * w);
    }
}

/* teacher-forced: all queries of the image in one call (SAM encoder once); on failure, one by
 * one, so that a bad query fails alone. The answer's [SEG] is the last of the sequence. */
static lisa_status predict_cb(void *ctx, const uint8_t *rgb, int32_t h, int32_t w, int32_t n,
                              const char *const *queries, lisa_eval_pred *preds) {
    predictor *P = ctx;
    if (n > P->res_cap) {
        lisa_result **nr = realloc(P->res, (size_t)n * sizeof *nr);
        if (!nr) return lisa_fail(LISA_ERR_OOM, "out of memory");
        P->res = nr;
        P->res_cap = n;
    }
    if (!P->generate) {
        lisa_status s = lisa_model_run_teacher_forced(P->m, rgb, h, w, n, queries, "[SEG].", &P->sp, NULL, P->res);
        if (s == LISA_OK) {
            for (int32_t i = 0; i < n; i++) {
                take_result(&preds[i], P->res[i], true, h, w);
                lisa_result_free(P->res[i]);
            }
            return LISA_OK;
        }
        if (s == LISA_ERR_OOM || n == 1) return s;
    }
    for (int32_t i = 0; i < n; i++) {
        lisa_result *r = NULL;
        lisa_status s =
            P->generate ? lisa_segment(P->m, rgb, h, w, queries[i], &P->sp, &r)
                        : lisa_model_run_teacher_forced(P->m, rgb, h, w, 1, &queries[i], "[SEG].", &P->sp, NULL, &r);
        if (s == LISA_ERR_OOM) return s;
        if (s != LISA_OK) {
            preds[i].status = s;
            snprintf(preds[i].error, sizeof preds[i].error, "%s", lisa_last_error());
            continue;
        }
        take_result(&preds[i], r, !P->generate, h, w);
        lisa_result_free(r);
    }
    return LISA_OK;
}

/* ---- records, dumps, progress --------------------------------------------------------------- */

typedef struct run_ctx {
    const opts *o;
    lisa_records rec;
    int32_t new_queries, new_errors;
    double t0;
    bool tty;
    int last_pct;
} run_ctx;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Eval records are keyed by their query id ("<image id>#<query index>"). */
static size_t eval_key(char *buf, size_t cap, const cJSON *rec) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (!cJSON_IsString(id)) return 0;
    const size_t n = strlen(id->valuestring);
    if (n < cap) memcpy(buf, id->valuestring, n);
    return n;
}

static const lisa_records_kind EVAL_RECORDS = {.magic = "lisa_eval_records", .key = eval_key, .keep = true};

static bool done_cb(void *ctx, const char *id) { return lisa_records_has(&((run_ctx *)ctx)->rec, id, strlen(id)); }

static lisa_status dump_mask(const char *dir, const lisa_eval_result *r) {
    char name[1200], path[4096];
    size_t k = 0;
    for (const char *c = r->id; *c && k + 8 < sizeof name; c++) {
        if (*c == '#') {
            memcpy(name + k, "_q", 2);
            k += 2;
        } else {
            name[k++] = (*c == '/' || *c == '\\') ? '_' : *c;
        }
    }
    memcpy(name + k, ".png", 5);
    if (!lisa_path_join(path, sizeof path, dir, name))
        return lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %s", name);
    lisa_bitmap img;
    LISA_TRY(lisa_bitmap_alloc(&img, r->h, r->w, 1));
    for (size_t i = 0; i < (size_t)r->h * r->w; i++)
        img.data[i] = r->pred[i] ? 255 : 0;
    lisa_status s = lisa_image_write_png(path, &img);
    lisa_bitmap_free(&img);
    return s;
}

static lisa_status sink_cb(void *ctx, const lisa_eval_result *r) {
    run_ctx *c = ctx;
    cJSON *j = cJSON_CreateObject();
    if (!j) return lisa_fail(LISA_ERR_OOM, "out of memory");
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "image", r->image);
    cJSON_AddStringToObject(j, "text", r->text);
    cJSON_AddBoolToObject(j, "is_sentence", r->is_sentence);
    cJSON_AddStringToObject(j, "status", r->ok ? "ok" : "error");
    if (r->ok) {
        cJSON_AddNumberToObject(j, "intersection", (double)r->inter);
        cJSON_AddNumberToObject(j, "union", (double)r->uni);
        cJSON_AddNumberToObject(j, "iou", r->iou);
        cJSON_AddNumberToObject(j, "pred_pixels", (double)r->pred_px);
        cJSON_AddNumberToObject(j, "gt_pixels", (double)r->gt_px);
        cJSON_AddNumberToObject(j, "n_seg", r->n_seg);
        cJSON_AddStringToObject(j, "answer", r->answer ? r->answer : "");
    } else {
        cJSON_AddStringToObject(j, "error", r->error ? r->error : "");
    }
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!line) return lisa_fail(LISA_ERR_OOM, "out of memory");
    size_t n = strlen(line);
    char *buf = realloc(line, n + 2);
    if (!buf) {
        free(line);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    lisa_status s = LISA_OK;
    if (r->ok && c->o->dump) s = dump_mask(c->o->dump, r);
    if (s == LISA_OK) s = lisa_records_append(&c->rec, buf, n + 1);
    free(buf);
    c->new_queries++;
    c->new_errors += !r->ok;
    if (!r->ok && !c->tty) fprintf(stderr, "lisa eval: %s: %s\n", r->id, r->error ? r->error : "");
    return s;
}

static void progress_cb(void *ctx, int32_t done, int32_t total) {
    run_ctx *c = ctx;
    const double el = now_s() - c->t0, per = done ? el / done : 0;
    if (c->tty) {
        fprintf(stderr, "\r[eval] %d/%d images, %d queries (%d errors), %.2f s/image, ETA %.0f s   ", done, total,
                c->new_queries, c->new_errors, per, per * (total - done));
        if (done == total) fputc('\n', stderr);
    } else {
        const int pct = total ? (int)(100LL * done / total) : 100;
        if (pct / 10 != c->last_pct / 10 || done == total) {
            fprintf(stderr, "[eval] %d/%d images, %d queries (%d errors), %.1f s\n", done, total, c->new_queries,
                    c->new_errors, el);
            c->last_pct = pct;
        }
    }
}

/* ---- metrics from records ------------------------------------------------------------------- */

typedef struct summary {
    lisa_eval_acc all, by_len[2]; /* [0] short (is_sentence false), [1] long */
    int64_t n_errors, n_no_seg, n_images;
} summary;

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void summarize(summary *S, cJSON *const *recs, size_t n) {
    const char **images = malloc((n ? n : 1) * sizeof *images);
    size_t n_img = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *r = recs[i];
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(r, "image");
        if (images && cJSON_IsString(im)) images[n_img++] = im->valuestring;
        if (!cJSON_IsString(st) || strcmp(st->valuestring, "ok")) {
            S->n_errors++;
            continue;
        }
        const int64_t I = (int64_t)num(r, "intersection"), U = (int64_t)num(r, "union");
        lisa_eval_acc_add(&S->all, I, U);
        lisa_eval_acc_add(&S->by_len[cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "is_sentence")) ? 1 : 0], I, U);
        S->n_no_seg += num(r, "n_seg") == 0;
    }
    if (n_img) qsort(images, n_img, sizeof *images, cmp_cstr); /* distinct images */
    for (size_t i = 0; i < n_img; i++)
        S->n_images += i == 0 || strcmp(images[i], images[i - 1]) != 0;
    free(images);
}

static cJSON *acc_json(const lisa_eval_acc *a) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "queries", (double)a->n);
    cJSON_AddNumberToObject(j, "giou", lisa_eval_giou(a));
    cJSON_AddNumberToObject(j, "ciou", lisa_eval_ciou(a));
    cJSON_AddNumberToObject(j, "sum_iou", a->sum_iou);
    cJSON_AddNumberToObject(j, "sum_intersection", (double)a->sum_i);
    cJSON_AddNumberToObject(j, "sum_union", (double)a->sum_u);
    return j;
}

static int report(const summary *S, const cJSON *header, const char *out, const char *records, double seconds) {
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(header, "dataset");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(header, "split");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(header, "mode");
    const char *dss = cJSON_IsString(ds) ? ds->valuestring : "?", *sps = cJSON_IsString(sp) ? sp->valuestring : "?";
    const bool rs = !strcmp(dss, "reasonseg");
    char name[128];
    snprintf(name, sizeof name, "%s/%s", dss, sps);
    printf("\n%-24s %8s %7s %8s %8s\n", "split", "queries", "errors", "gIoU", "cIoU");
    printf("%-24s %8lld %7lld %8.2f %8.2f\n", name, (long long)S->all.n, (long long)S->n_errors,
           100 * lisa_eval_giou(&S->all), 100 * lisa_eval_ciou(&S->all));
    if (rs) {
        const char *lab[2] = {"  short (is_sentence=0)", "  long (is_sentence=1)"};
        for (int k = 0; k < 2; k++)
            printf("%-24s %8lld %7s %8.2f %8.2f\n", lab[k], (long long)S->by_len[k].n, "",
                   100 * lisa_eval_giou(&S->by_len[k]), 100 * lisa_eval_ciou(&S->by_len[k]));
    }
    printf("mode %s; %lld images; %lld answers without [SEG] (empty masks)%s\n",
           cJSON_IsString(md) ? md->valuestring : "?", (long long)S->n_images, (long long)S->n_no_seg,
           S->n_errors ? "; failed queries are left out of gIoU/cIoU (see the records)" : "");
    if (!out) return 0;
    cJSON *j = cJSON_CreateObject();
    const cJSON *k;
    cJSON_ArrayForEach(k, header) if (strcmp(k->string, "lisa_eval_records"))
        cJSON_AddItemToObject(j, k->string, cJSON_Duplicate(k, 1));
    cJSON_AddNumberToObject(j, "images", (double)S->n_images);
    cJSON_AddNumberToObject(j, "queries", (double)S->all.n);
    cJSON_AddNumberToObject(j, "errors", (double)S->n_errors);
    cJSON_AddNumberToObject(j, "no_seg", (double)S->n_no_seg);
    cJSON_AddNumberToObject(j, "giou", lisa_eval_giou(&S->all));
    cJSON_AddNumberToObject(j, "ciou", lisa_eval_ciou(&S->all));
    cJSON_AddItemToObject(j, "overall", acc_json(&S->all));
    if (rs) {
        cJSON_AddItemToObject(j, "short", acc_json(&S->by_len[0]));
        cJSON_AddItemToObject(j, "long", acc_json(&S->by_len[1]));
    }
    if (records) cJSON_AddStringToObject(j, "records", records);
    if (seconds >= 0) cJSON_AddNumberToObject(j, "seconds", seconds);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    FILE *f = txt ? fopen(tmp, "w") : NULL;
    bool ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok = (fclose(f) == 0) && ok;
    ok = ok && rename(tmp, out) == 0;
    free(txt);
    if (!ok) {
        remove(tmp);
        fprintf(stderr, "lisa eval: cannot write %s: %s\n", out, strerror(errno));
        return 1;
    }
    return 0;
}

static int run_merge(const opts *o) {
    summary S = {0};
    cJSON *header = NULL;
    cJSON **all = NULL;
    size_t n_all = 0;
    lisa_records *recs = calloc((size_t)o->n_merge, sizeof *recs);
    int rc = recs ? 0 : 1;
    for (int i = 0; i < o->n_merge && rc == 0; i++) {
        if (lisa_records_read(&recs[i], o->merge[i], &EVAL_RECORDS) != LISA_OK) {
            fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
            rc = 1;
            break;
        }
        static const char *keys[] = {"dataset", "split", "mode"};
        for (int k = 0; header && k < 3; k++)
            if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(header, keys[k]),
                               cJSON_GetObjectItemCaseSensitive(recs[i].header, keys[k]), true)) {
                fprintf(stderr, "lisa eval: %s: %s differs from the first record file's\n", o->merge[i], keys[k]);
                rc = 1;
            }
        if (!header) header = recs[i].header;
        cJSON **na = realloc(all, (n_all + recs[i].n + 1) * sizeof *na);
        if (!na) {
            rc = 1;
            break;
        }
        all = na;
        memcpy(all + n_all, recs[i].recs, recs[i].n * sizeof *all);
        n_all += recs[i].n;
    }
    if (rc == 0) { /* a query in two shards would be counted twice */
        lisa_keyset seen = {0};
        for (size_t i = 0; i < n_all && rc == 0; i++) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(all[i], "id");
            if (!cJSON_IsString(id)) continue;
            bool added = false;
            if (lisa_keyset_add(&seen, id->valuestring, strlen(id->valuestring), &added) != LISA_OK) {
                fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
                rc = 1;
            } else if (!added) {
                fprintf(stderr, "lisa eval: query %s appears in more than one record\n", id->valuestring);
                rc = 1;
            }
        }
        lisa_keyset_free(&seen);
    }
    if (rc == 0) {
        summarize(&S, all, n_all);
        rc = report(&S, header, o->out, NULL, -1);
    }
    for (int i = 0; recs && i < o->n_merge; i++)
        lisa_records_close(&recs[i]);
    free(recs);
    free(all);
    return rc;
}

int lisa_cmd_eval(int argc, char **argv) {
    opts o;
    if (parse_opts(&o, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    if (o.merge) return run_merge(&o);
    double t0 = now_s();
    predictor P = {.generate = o.generate, .sp = lisa_segment_default_params()};
    if (o.tp > 1) {
        /* every rank of a TP group loads its shard; the followers serve the leader's steps and
         * touch no file (the leader writes the group's records) */
        lisa_model_params mp = lisa_model_default_params();
        mp.vision_tower = o.vision_tower;
        mp.n_threads = o.threads;
        mp.tensor_parallel = o.tp;
        if (lisa_model_load(o.model, &mp, &P.m) != LISA_OK) {
            fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
            return 1;
        }
        if (lisa_model_tp_rank(P.m) != 0) {
            lisa_status s = lisa_model_tp_follow(P.m);
            if (s != LISA_OK)
                fprintf(stderr, "lisa eval: TP rank %d: %s\n", lisa_model_tp_rank(P.m), lisa_last_error());
            lisa_model_free(P.m);
            return s == LISA_OK ? 0 : 1;
        }
    }
    lisa_dataset ds;
    if (load_dataset(&ds, &o) != LISA_OK) {
        fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
        lisa_model_free(P.m); /* TP: releases the followers */
        return 1;
    }
    char rec_path[4200], model_abs[4096], shard[32];
    if (o.records)
        snprintf(rec_path, sizeof rec_path, "%s", o.records);
    else if (o.out)
        snprintf(rec_path, sizeof rec_path, "%s.records.jsonl", o.out);
    else if (o.shard_n > 1)
        snprintf(rec_path, sizeof rec_path, "lisa-eval-%s-%s-%d-of-%d.records.jsonl", o.dataset, o.split, o.shard_k,
                 o.shard_n);
    else
        snprintf(rec_path, sizeof rec_path, "lisa-eval-%s-%s.records.jsonl", o.dataset, o.split);
    if (!realpath(o.model, model_abs)) snprintf(model_abs, sizeof model_abs, "%s", o.model);
    snprintf(shard, sizeof shard, "%d/%d", o.shard_k, o.shard_n);
    cJSON *header = cJSON_CreateObject();
    cJSON_AddNumberToObject(header, "lisa_eval_records", 1);
    cJSON_AddStringToObject(header, "dataset", o.dataset);
    cJSON_AddStringToObject(header, "split", o.split);
    if (strcmp(o.dataset, "reasonseg")) cJSON_AddStringToObject(header, "split_by", o.split_by);
    cJSON_AddStringToObject(header, "mode", o.mode);
    cJSON_AddStringToObject(header, "shard", shard);
    if (o.generate) cJSON_AddNumberToObject(header, "max_new_tokens", o.max_new_tokens > 0 ? o.max_new_tokens : 512);
    cJSON_AddStringToObject(header, "model", model_abs);
    run_ctx c = {.o = &o, .t0 = t0, .tty = isatty(2) != 0, .last_pct = -10};
    int rc = 0;
    if (lisa_records_open(&c.rec, rec_path, &EVAL_RECORDS, header, o.resume) != LISA_OK) {
        fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
        rc = 1;
    }
    if (rc == 0 && c.rec.torn_bytes)
        fprintf(stderr, "lisa eval: %s: cut a torn last line (%zu bytes); that query is redone\n", rec_path,
                c.rec.torn_bytes);
    if (rc == 0 && o.dump && mkdir(o.dump, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lisa eval: cannot create %s: %s\n", o.dump, strerror(errno));
        rc = 1;
    }
    if (o.max_new_tokens > 0) P.sp.max_new_tokens = o.max_new_tokens;
    if (rc == 0 && !P.m) {
        lisa_model_params mp = lisa_model_default_params();
        mp.vision_tower = o.vision_tower;
        mp.n_threads = o.threads;
        if (lisa_model_load(o.model, &mp, &P.m) != LISA_OK) {
            fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
            rc = 1;
        }
    }
    if (rc == 0) {
        lisa_eval_params ep = {.ds = &ds,
                               .shard_k = o.shard_k,
                               .shard_n = o.shard_n,
                               .limit = o.limit,
                               .predict = predict_cb,
                               .predict_ctx = &P,
                               .done = done_cb,
                               .sink = sink_cb,
                               .progress = progress_cb,
                               .ctx = &c};
        if (lisa_eval_run(&ep) != LISA_OK) {
            fprintf(stderr, "lisa eval: %s\n", lisa_last_error());
            rc = 1;
        }
    }
    if (rc == 0) {
        summary S = {0};
        summarize(&S, c.rec.recs, c.rec.n);
        rc = report(&S, c.rec.header, o.out, rec_path, now_s() - t0);
    }
    free(P.res);
    lisa_model_free(P.m);
    lisa_records_close(&c.rec);
    cJSON_Delete(header);
    lisa_dataset_free(&ds);
    return rc;
}
