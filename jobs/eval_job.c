/* jobs/eval_job.c — see jobs/eval_job.h. */
#include "jobs/eval_job.h"
#include "jobs/job_common.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/keyset.h"
#include "core/path.h"
#include "core/shard.h"
#include "jobs/dataset.h"
#include "jobs/eval.h"
#include "jobs/records.h"
#include "loader/image.h"
#include "models/lisa_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

lisa_eval_job lisa_eval_job_default(void) {
    lisa_eval_job j;
    memset(&j, 0, sizeof j);
    j.model_params = lisa_model_default_params();
    j.seg = lisa_segment_default_params();
    return j;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static lisa_status load_dataset(lisa_dataset *ds, const lisa_eval_job *j, const char *split_by) {
    char p[4096], q[4096];
    if (!strcmp(j->dataset, "reasonseg")) {
        /* ROOT/reason_seg/ReasonSeg/<split>, ROOT/ReasonSeg/<split> or ROOT/<split> */
        const char *cands[] = {"reason_seg/ReasonSeg", "ReasonSeg", ""};
        for (size_t i = 0; i < 3; i++) {
            if (lisa_path_join(q, sizeof q, j->data, cands[i]) &&
                lisa_path_join(p, sizeof p, q[0] ? q : j->data, j->split) && is_dir(p))
                return lisa_dataset_load_reasonseg(ds, p);
        }
        return lisa_fail(LISA_ERR_NOT_FOUND,
                         "ReasonSeg split '%s' not found under %s (expected %s/reason_seg/ReasonSeg/%s)", j->split,
                         j->data, j->data, j->split);
    }
    const char *root = j->data;
    if (lisa_path_join(p, sizeof p, j->data, "refer_seg") && is_dir(p)) root = p;
    return lisa_dataset_load_refer(ds, root, j->dataset, split_by, j->split);
}

/* ---- prediction ---------------------------------------------------------------------------------- */

/* The model behind the evaluator's callback. Borrows the model; owns the result array. */
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

/* A run's callback state. Borrows the job; owns the open record file. */
typedef struct run_ctx {
    const lisa_eval_job *j;
    lisa_records rec;
    int32_t new_queries, new_errors;
} run_ctx;

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
    if (r->ok && c->j->dump_masks) s = dump_mask(c->j->dump_masks, r);
    if (s == LISA_OK) s = lisa_records_append(&c->rec, buf, n + 1);
    free(buf);
    c->new_queries++;
    c->new_errors += !r->ok;
    if (!r->ok && c->j->on_query_error) c->j->on_query_error(c->j->ctx, r->id, r->error ? r->error : "");
    return s;
}

static void progress_cb(void *ctx, int32_t done, int32_t total) {
    run_ctx *c = ctx;
    if (c->j->on_progress) c->j->on_progress(c->j->ctx, done, total, c->new_queries, c->new_errors);
}

/* ---- metrics from records ------------------------------------------------------------------- */

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void summarize(lisa_eval_summary *S, cJSON *const *recs, size_t n, const cJSON *header) {
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
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(header, "dataset");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(header, "split");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(header, "mode");
    snprintf(S->dataset, sizeof S->dataset, "%s", cJSON_IsString(ds) ? ds->valuestring : "?");
    snprintf(S->split, sizeof S->split, "%s", cJSON_IsString(sp) ? sp->valuestring : "?");
    snprintf(S->mode, sizeof S->mode, "%s", cJSON_IsString(md) ? md->valuestring : "?");
    S->reasonseg = !strcmp(S->dataset, "reasonseg");
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

/* The results JSON: the run's header, the counts and the metrics; written atomically. */
static lisa_status write_results(const lisa_eval_summary *S, const cJSON *header, const char *out) {
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
    if (S->reasonseg) {
        cJSON_AddItemToObject(j, "short", acc_json(&S->by_len[0]));
        cJSON_AddItemToObject(j, "long", acc_json(&S->by_len[1]));
    }
    if (S->records[0]) cJSON_AddStringToObject(j, "records", S->records);
    if (S->seconds >= 0) cJSON_AddNumberToObject(j, "seconds", S->seconds);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    char tmp[LISA_EVAL_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    FILE *f = txt ? fopen(tmp, "w") : NULL;
    bool ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok = (fclose(f) == 0) && ok;
    ok = ok && rename(tmp, out) == 0;
    free(txt);
    if (!ok) {
        const int e = errno;
        remove(tmp);
        return lisa_fail(LISA_ERR_IO, "cannot write %s: %s", out, strerror(e));
    }
    return LISA_OK;
}

lisa_status lisa_eval_merge(const char *const *files, int n, const char *out, lisa_eval_summary *S) {
    memset(S, 0, sizeof *S);
    S->seconds = -1;
    const cJSON *header = NULL;
    cJSON **all = NULL;
    size_t n_all = 0;
    lisa_records *recs = calloc((size_t)(n > 0 ? n : 1), sizeof *recs);
    lisa_status s = recs ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int i = 0; i < n && s == LISA_OK; i++) {
        if ((s = lisa_records_read(&recs[i], files[i], &EVAL_RECORDS)) != LISA_OK) break;
        static const char *keys[] = {"dataset", "split", "mode"};
        for (int k = 0; header && k < 3 && s == LISA_OK; k++)
            if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(header, keys[k]),
                               cJSON_GetObjectItemCaseSensitive(recs[i].header, keys[k]), true))
                s = lisa_fail(LISA_ERR_FORMAT, "%s: %s differs from the first record file's", files[i], keys[k]);
        if (!header) header = recs[i].header;
        cJSON **na = s == LISA_OK ? realloc(all, (n_all + recs[i].n + 1) * sizeof *na) : NULL;
        if (s == LISA_OK && !na) s = lisa_fail(LISA_ERR_OOM, "out of memory");
        if (s != LISA_OK) break;
        all = na;
        memcpy(all + n_all, recs[i].recs, recs[i].n * sizeof *all);
        n_all += recs[i].n;
    }
    if (s == LISA_OK) { /* a query in two shards would be counted twice */
        lisa_keyset seen = {0};
        for (size_t i = 0; i < n_all && s == LISA_OK; i++) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(all[i], "id");
            if (!cJSON_IsString(id)) continue;
            bool added = false;
            s = lisa_keyset_add(&seen, id->valuestring, strlen(id->valuestring), &added);
            if (s == LISA_OK && !added)
                s = lisa_fail(LISA_ERR_FORMAT, "query %s appears in more than one record", id->valuestring);
        }
        lisa_keyset_free(&seen);
    }
    if (s == LISA_OK) {
        summarize(S, all, n_all, header);
        S->seconds = -1;
        if (out) s = write_results(S, header, out);
    }
    for (int i = 0; recs && i < n; i++)
        lisa_records_close(&recs[i]);
    free(recs);
    free(all);
    return s;
}

lisa_status lisa_eval_job_run(const lisa_eval_job *j, lisa_eval_summary *S) {
    memset(S, 0, sizeof *S);
    const double t0 = lisa_clock_s();
    if (!j->model || !j->dataset || !j->data || !j->split)
        return lisa_fail(LISA_ERR_INVALID_ARG, "eval: a model, a dataset, a data root and a split are needed");
    const int32_t tp = j->model_params.tensor_parallel;
    if (tp > 1 && !j->generate)
        return lisa_fail(LISA_ERR_INVALID_ARG, "eval: tensor parallelism needs generate mode (teacher-forced runs "
                                               "without TP)");
    int32_t shard_k = j->shard_k, shard_n = j->shard_n;
    if (shard_n < 1) { /* launched by srun / mpirun: one shard per rank (per TP group), as annotate does */
        shard_k = 0;
        shard_n = 1;
        lisa_shard_from_env_tp(tp, &shard_k, &shard_n, NULL);
    }
    const char *split_by = j->split_by ? j->split_by : !strcmp(j->dataset, "refcocog") ? "umd" : "unc";
    predictor P = {.generate = j->generate, .sp = j->seg};
    if (tp > 1) {
        /* every rank of a TP group loads its shard; the followers serve the leader's steps and
         * touch no file (the leader writes the group's records) */
        LISA_TRY(lisa_job_load_model(j->model, j->model_params, true, j->on_notice, j->ctx, &P.m));
        if (lisa_model_tp_rank(P.m) != 0) {
            S->follower = true;
            lisa_status s = lisa_model_tp_follow(P.m);
            if (s != LISA_OK) lisa_fail_context(s, "TP rank %d", lisa_model_tp_rank(P.m));
            lisa_model_free(P.m);
            return s;
        }
    }
    lisa_dataset ds;
    lisa_status s = load_dataset(&ds, j, split_by);
    if (s != LISA_OK) {
        lisa_model_free(P.m); /* TP: releases the followers */
        return s;
    }
    char model_abs[4096], shard[32];
    if (j->records)
        snprintf(S->records, sizeof S->records, "%s", j->records);
    else if (j->out)
        snprintf(S->records, sizeof S->records, "%s.records.jsonl", j->out);
    else if (shard_n > 1)
        snprintf(S->records, sizeof S->records, "lisa-eval-%s-%s-%d-of-%d.records.jsonl", j->dataset, j->split, shard_k,
                 shard_n);
    else
        snprintf(S->records, sizeof S->records, "lisa-eval-%s-%s.records.jsonl", j->dataset, j->split);
    if (!realpath(j->model, model_abs)) snprintf(model_abs, sizeof model_abs, "%s", j->model);
    snprintf(shard, sizeof shard, "%d/%d", shard_k, shard_n);
    cJSON *header = cJSON_CreateObject();
    cJSON_AddNumberToObject(header, "lisa_eval_records", 1);
    cJSON_AddStringToObject(header, "dataset", j->dataset);
    cJSON_AddStringToObject(header, "split", j->split);
    if (strcmp(j->dataset, "reasonseg")) cJSON_AddStringToObject(header, "split_by", split_by);
    cJSON_AddStringToObject(header, "mode", j->generate ? "generate" : "teacher-forced");
    cJSON_AddStringToObject(header, "shard", shard);
    if (j->generate) cJSON_AddNumberToObject(header, "max_new_tokens", j->seg.max_new_tokens);
    cJSON_AddStringToObject(header, "model", model_abs);
    run_ctx c = {.j = j};
    s = lisa_records_open(&c.rec, S->records, &EVAL_RECORDS, header, j->resume);
    if (s == LISA_OK && c.rec.torn_bytes)
        lisa_job_notice(j->on_notice, j->ctx, "%s: cut a torn last line (%zu bytes); that query is redone", S->records, c.rec.torn_bytes);
    if (s == LISA_OK && j->dump_masks && mkdir(j->dump_masks, 0755) != 0 && errno != EEXIST)
        s = lisa_fail(LISA_ERR_IO, "cannot create %s: %s", j->dump_masks, strerror(errno));
    if (s == LISA_OK && !P.m) s = lisa_job_load_model(j->model, j->model_params, false, j->on_notice, j->ctx, &P.m);
    if (s == LISA_OK) {
        lisa_eval_params ep = {.ds = &ds,
                               .shard_k = shard_k,
                               .shard_n = shard_n,
                               .limit = j->limit,
                               .predict = predict_cb,
                               .predict_ctx = &P,
                               .done = done_cb,
                               .sink = sink_cb,
                               .progress = progress_cb,
                               .ctx = &c};
        s = lisa_eval_run(&ep);
    }
    if (s == LISA_OK) {
        summarize(S, c.rec.recs, c.rec.n, c.rec.header);
        S->seconds = lisa_clock_s() - t0;
        if (j->out) s = write_results(S, c.rec.header, j->out);
    }
    free(P.res);
    lisa_model_free(P.m);
    if (c.rec.path) lisa_records_close(&c.rec);
    cJSON_Delete(header);
    lisa_dataset_free(&ds);
    return s;
}
