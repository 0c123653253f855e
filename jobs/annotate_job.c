/* jobs/annotate_job.c — see jobs/annotate_job.h. */
#include "jobs/annotate_job.h"
#include "jobs/job_common.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/keyset.h"
#include "core/shard.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

lisa_annotate_job lisa_annotate_job_default(void) {
    lisa_annotate_job j;
    memset(&j, 0, sizeof j);
    j.seg = lisa_segment_default_params();
    j.model_params = lisa_model_default_params();
    j.engine = lisa_engine_default_params();
    return j;
}

/* The run's identity: a rerun with another input, query, model, limit of generation or shard is
 * another run and may not append to this file. */
static cJSON *run_header(const lisa_annotate_job *j, int32_t k, int32_t n) {
    char abs_in[PATH_MAX], abs_model[PATH_MAX], shard[48];
    const char *in = j->manifest ? j->manifest : j->images;
    if (!realpath(in, abs_in)) snprintf(abs_in, sizeof abs_in, "%s", in);
    if (!realpath(j->model, abs_model)) snprintf(abs_model, sizeof abs_model, "%s", j->model);
    snprintf(shard, sizeof shard, "%d/%d", (int)k, (int)n);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "lisa_annotate", 1);
    cJSON_AddStringToObject(h, j->manifest ? "manifest" : "images", abs_in);
    if (j->images) cJSON_AddStringToObject(h, "query", j->query);
    cJSON_AddStringToObject(h, "model", abs_model);
    cJSON_AddNumberToObject(h, "max_new_tokens", j->seg.max_new_tokens);
    cJSON_AddStringToObject(h, "shard", shard);
    return h;
}

/* the job's model parameters, with --vision-tower applied */
static lisa_model_params model_params_of(const lisa_annotate_job *j) {
    lisa_model_params mp = j->model_params;
    if (j->vision_tower) mp.vision_tower = j->vision_tower;
    return mp;
}

lisa_status lisa_annotate_job_run(const lisa_annotate_job *j, lisa_annotate_summary *s) {
    memset(s, 0, sizeof *s);
    const double t0 = lisa_clock_s();
    if (!j->model || !j->out || !j->manifest == !j->images || (j->images && (!j->query || !j->query[0])))
        return lisa_fail(LISA_ERR_INVALID_ARG, "annotate: a model, an output and either a manifest or a folder with "
                                               "a query are needed");
    const int32_t tp = j->model_params.tensor_parallel;
    s->shard_k = j->shard_k;
    s->shard_n = j->shard_n;
    if (s->shard_n < 1) { /* launched by srun/mpirun: one shard per rank (per TP group) */
        s->shard_k = 0;
        s->shard_n = 1;
        lisa_shard_from_env_tp(tp, &s->shard_k, &s->shard_n, NULL);
    }
    if (s->shard_k < 0 || s->shard_k >= s->shard_n)
        return lisa_fail(LISA_ERR_INVALID_ARG, "annotate: shard %d/%d (0 <= K < N)", s->shard_k, s->shard_n);
    lisa_model *m = NULL;
    if (tp > 1) {
        /* every rank of a TP group loads its shard first; the followers serve rank 0's engine
         * steps and touch no file */
        LISA_TRY(lisa_job_load_model(j->model, model_params_of(j), true, j->on_notice, j->ctx, &m));
        if (lisa_model_tp_rank(m) != 0) {
            s->follower = true;
            lisa_status st = lisa_model_tp_follow(m);
            if (st != LISA_OK) lisa_fail_context(st, "following TP rank 0");
            lisa_model_free(m);
            return st;
        }
    }
    lisa_status st = LISA_OK;
    if (!lisa_shard_path(s->out_path, sizeof s->out_path, j->out, s->shard_k, s->shard_n))
        st = lisa_fail(LISA_ERR_INVALID_ARG, "annotate: output path too long: %.200s", j->out);
    lisa_ann_source src;
    bool src_open = false;
    if (st == LISA_OK) {
        st = j->manifest ? lisa_ann_source_open_manifest(&src, j->manifest)
                         : lisa_ann_source_open_dir(&src, j->images, j->query);
        src_open = st == LISA_OK;
    }
    if (src_open && src.n_skipped) { /* --images: what is not read, by name */
        char list[1024];
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; i < src.n_skipped && i < 20 && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", src.skipped[i]);
        lisa_job_notice(j->on_notice, j->ctx, "%s: skipped %zu files that are not .png/.jpg/.jpeg: %s%s", j->images, src.n_skipped, list,
               src.n_skipped > 20 ? ", ..." : "");
    }
    cJSON *header = st == LISA_OK ? run_header(j, s->shard_k, s->shard_n) : NULL;
    lisa_records rec;
    memset(&rec, 0, sizeof rec);
    if (st == LISA_OK) st = lisa_records_open(&rec, s->out_path, &lisa_annotate_records, header, true);
    if (st == LISA_OK && rec.torn_bytes)
        lisa_job_notice(j->on_notice, j->ctx, "%s: cut a torn last line (%zu bytes); that record is redone", s->out_path, rec.torn_bytes);
    if (st == LISA_OK) {
        st = lisa_annotate_plan_run(&s->plan, &src, &rec, s->shard_k, s->shard_n, j->limit);
        if (st != LISA_OK) lisa_fail_context(st, "reading the input");
    }
    if (st == LISA_OK && j->on_plan) j->on_plan(j->ctx, s);
    lisa_engine *e = NULL;
    /* an item repeating an earlier id makes an error record too (annotate.h) */
    const bool nothing = s->plan.done == s->plan.records + s->plan.duplicates;
    if (st == LISA_OK && !nothing && !m) st = lisa_job_load_model(j->model, model_params_of(j), false, j->on_notice, j->ctx, &m);
    if (st == LISA_OK && !nothing) {
        lisa_engine_params ep = j->engine;
        ep.max_queue = 2 * ep.max_batch;
        st = lisa_engine_create(m, &ep, &e);
        if (st != LISA_OK) lisa_fail_context(st, "creating the engine");
    }
    if (st == LISA_OK && !nothing) {
        lisa_annotate_params ap = {.engine = e,
                                   .src = &src,
                                   .out = &rec,
                                   .shard_k = s->shard_k,
                                   .shard_n = s->shard_n,
                                   .limit = j->limit,
                                   .max_in_flight = 2 * j->engine.max_batch,
                                   .seg = j->seg,
                                   .on_result = j->on_result,
                                   .on_notice = j->on_notice,
                                   .on_progress = j->on_progress,
                                   .ctx = j->ctx};
        st = lisa_annotate_run(&ap, &s->stats);
    }
    s->stats.skipped = s->plan.done;
    s->seconds = lisa_clock_s() - t0;
    lisa_engine_free(e);
    lisa_model_free(m); /* TP: releases the followers */
    if (rec.path) lisa_records_close(&rec);
    cJSON_Delete(header);
    if (src_open) lisa_ann_source_close(&src);
    return st;
}

/* ---- --merge ------------------------------------------------------------------------------------ */

/* Owns the merged file being written and the set of keys seen, until lisa_annotate_merge returns. */
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
        *missing = pl.records + pl.duplicates - pl.done; /* a repeated id's error record counts */
        *checked = true;
    }
    return s;
}

/* One shard: its header must name shard k of n and agree with shard 0's (written first as the
 * merged header), then its records are copied. */
static lisa_status merge_shard(merge_ctx *m, const char *path, int32_t k, int32_t n, cJSON **first, const char *tmp) {
    cJSON *h = NULL;
    size_t torn = 0;
    /* the header first (scan without records), to write the merged header before any line */
    lisa_status s = lisa_records_scan(path, lisa_annotate_records.magic, &h, NULL, NULL, &torn);
    if (s == LISA_OK) {
        char want[48];
        snprintf(want, sizeof want, "%d/%d", (int)k, (int)n);
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(h, "shard");
        if (!cJSON_IsString(sh) || strcmp(sh->valuestring, want))
            s = lisa_fail(LISA_ERR_FORMAT, "%s: header says shard %s, expected %s", path,
                          cJSON_IsString(sh) ? sh->valuestring : "?", want);
    }
    if (s == LISA_OK && torn)
        s = lisa_fail(LISA_ERR_FORMAT, "%s: ends in a torn line: the shard was interrupted; rerun it to finish", path);
    if (s == LISA_OK && !*first) {
        *first = cJSON_Duplicate(h, 1);
        cJSON_ReplaceItemInObjectCaseSensitive(*first, "shard", cJSON_CreateString("merged"));
        cJSON_AddNumberToObject(*first, "shards", n);
        char *txt = cJSON_PrintUnformatted(*first);
        if (!txt || fprintf(m->f, "%s\n", txt) < 0) s = lisa_fail(LISA_ERR_IO, "writing %s", tmp);
        free(txt);
    } else if (s == LISA_OK) {
        const cJSON *it;
        cJSON_ArrayForEach(it, h) {
            if (!strcmp(it->string, "shard")) continue;
            if (!cJSON_Compare(it, cJSON_GetObjectItemCaseSensitive(*first, it->string), true)) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\" differs from shard 0's: another run", path, it->string);
                break;
            }
        }
    }
    cJSON_Delete(h);
    if (s == LISA_OK) s = lisa_records_scan(path, lisa_annotate_records.magic, NULL, merge_visit, m, NULL);
    return s;
}

lisa_status lisa_annotate_merge(const char *out, int32_t n,
                                void (*on_shard)(void *ctx, const char *path, int64_t records, int64_t errors),
                                void *ctx, lisa_annotate_merge_summary *sum) {
    memset(sum, 0, sizeof *sum);
    if (n < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "annotate --merge: %d shards", n);
    char tmp[LISA_ANNOTATE_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    merge_ctx m = {.f = fopen(tmp, "wb")};
    if (!m.f) return lisa_fail(LISA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    cJSON *first = NULL;
    lisa_status s = LISA_OK;
    for (int32_t k = 0; k < n && s == LISA_OK; k++) {
        char path[LISA_ANNOTATE_PATH_MAX];
        if (!lisa_shard_path(path, sizeof path, out, k, n)) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %.200s", out);
            break;
        }
        m.path = path;
        const int64_t n0 = m.n, e0 = m.errors;
        s = merge_shard(&m, path, k, n, &first, tmp);
        if (s == LISA_OK && on_shard) on_shard(ctx, path, m.n - n0, m.errors - e0);
    }
    if (s == LISA_OK) {
        int64_t missing = 0;
        s = check_complete(first, &m.seen, &missing, &sum->checked);
        if (s != LISA_OK)
            lisa_fail_context(s, "checking against the input");
        else if (missing > 0)
            s = lisa_fail(LISA_ERR_NOT_FOUND,
                          "%lld records of the input are in no shard (a shard ran with --limit, or has not finished)",
                          (long long)missing);
    }
    if (s == LISA_OK && (fflush(m.f) != 0 || fsync(fileno(m.f)) != 0))
        s = lisa_fail(LISA_ERR_IO, "flushing %s: %s", tmp, strerror(errno));
    if (fclose(m.f) != 0 && s == LISA_OK) s = lisa_fail(LISA_ERR_IO, "writing %s: %s", tmp, strerror(errno));
    if (s == LISA_OK && rename(tmp, out) != 0)
        s = lisa_fail(LISA_ERR_IO, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    if (s != LISA_OK) remove(tmp);
    sum->records = m.n;
    sum->errors = m.errors;
    lisa_keyset_free(&m.seen);
    cJSON_Delete(first);
    return s;
}
