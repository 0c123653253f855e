/* jobs/annotate.c — see annotate.h. */
#include "jobs/annotate.h"
#include "jobs/job_common.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/keyset.h"
#include "models/result.h"
#include "core/shard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t lisa_annotate_key(char *buf, size_t cap, const char *id, int32_t query_index) {
    const int n = snprintf(buf, cap, "i%s\x1f%d", id, (int)query_index);
    return n < 0 ? cap : (size_t)n;
}

static size_t line_key(char *buf, size_t cap, int64_t line) {
    const int n = snprintf(buf, cap, "l%lld", (long long)line);
    return n < 0 ? cap : (size_t)n;
}

static size_t record_key(char *buf, size_t cap, const cJSON *rec) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const cJSON *qi = cJSON_GetObjectItemCaseSensitive(rec, "query_index");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(rec, "line");
    if (cJSON_IsString(id) && cJSON_IsNumber(qi)) return lisa_annotate_key(buf, cap, id->valuestring, qi->valueint);
    if (!qi && cJSON_IsNumber(line)) return line_key(buf, cap, (int64_t)line->valuedouble);
    return 0;
}

const lisa_records_kind lisa_annotate_records = {.magic = "lisa_annotate", .key = record_key, .keep = false};

/* ---- walking the shard's items ---------------------------------------------------------------- */

/* The shard's items in order, malformed ones included; duplicates of an earlier id flagged.
 * Borrows the source; owns the current item and the set of ids seen, until walker_free. */
typedef struct walker {
    lisa_ann_source *src;
    int32_t k, n;
    int64_t limit, taken;
    lisa_keyset seen;
    lisa_ann_item it;
    bool end;
} walker;

static lisa_status walk_next(walker *w, bool *dup) {
    *dup = false;
    for (;;) {
        if (w->limit > 0 && w->taken >= w->limit) w->end = true;
        if (w->end) {
            lisa_ann_item_free(&w->it);
            return LISA_OK;
        }
        LISA_TRY(lisa_ann_source_next(w->src, &w->it, &w->end));
        if (w->end) return LISA_OK;
        if (!lisa_shard_owns(w->it.index, w->k, w->n)) continue;
        w->taken++;
        if (w->it.status == LISA_OK) {
            bool added;
            LISA_TRY(lisa_keyset_add(&w->seen, w->it.id, strlen(w->it.id), &added));
            *dup = !added;
        }
        return LISA_OK;
    }
}

static lisa_status walker_init(walker *w, lisa_ann_source *src, int32_t k, int32_t n, int64_t limit) {
    memset(w, 0, sizeof *w);
    w->src = src;
    w->k = k;
    w->n = n;
    w->limit = limit;
    if (n < 1 || k < 0 || k >= n) return lisa_fail(LISA_ERR_INVALID_ARG, "annotate: shard %d/%d", k, n);
    return lisa_ann_source_rewind(src);
}

static void walker_free(walker *w) {
    lisa_ann_item_free(&w->it);
    lisa_keyset_free(&w->seen);
}

lisa_status lisa_annotate_plan_run(lisa_annotate_plan *pl, lisa_ann_source *src, const lisa_records *out,
                                   int32_t shard_k, int32_t shard_n, int64_t limit) {
    memset(pl, 0, sizeof *pl);
    walker w;
    lisa_status s = walker_init(&w, src, shard_k, shard_n, limit);
    char key[LISA_RECORDS_KEY_MAX];
    while (s == LISA_OK) {
        bool dup;
        s = walk_next(&w, &dup);
        if (s != LISA_OK || w.end) break;
        pl->items++;
        if (dup) { /* an error record keyed by its line, as a malformed line's */
            pl->duplicates++;
            pl->done += out && lisa_records_has(out, key, line_key(key, sizeof key, w.it.line));
        } else if (w.it.status != LISA_OK) {
            pl->malformed++;
            pl->records++;
            pl->done += out && lisa_records_has(out, key, line_key(key, sizeof key, w.it.line));
        } else {
            pl->records += w.it.n_queries;
            for (int32_t q = 0; out && q < w.it.n_queries; q++)
                pl->done += lisa_records_has(out, key, lisa_annotate_key(key, sizeof key, w.it.id, q));
        }
    }
    walker_free(&w);
    if (s == LISA_OK) s = lisa_ann_source_rewind(src);
    return s;
}

/* ---- records ---------------------------------------------------------------------------------- */

/* One request in flight (user_data = its slot). Owns its strings. */
typedef struct slot {
    bool used;
    char *id, *query, *image, *path; /* image: as written in the input; path: the file opened */
    int32_t qi;
    int64_t line;
} slot;

static void slot_clear(slot *s) {
    free(s->id);
    free(s->query);
    free(s->image);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static void add_where(cJSON *j, const char *id, int32_t qi, int64_t line, const char *query, const char *image) {
    if (id)
        cJSON_AddStringToObject(j, "id", id);
    else
        cJSON_AddNullToObject(j, "id");
    if (qi >= 0) cJSON_AddNumberToObject(j, "query_index", qi);
    if (line > 0) cJSON_AddNumberToObject(j, "line", (double)line);
    if (query) cJSON_AddStringToObject(j, "query", query);
    if (image) cJSON_AddStringToObject(j, "image", image);
}

static void add_error(cJSON *j, lisa_status code, const char *msg) {
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    if (!e) return;
    cJSON_AddStringToObject(e, "code", lisa_status_name(code));
    cJSON_AddStringToObject(e, "message", msg && *msg ? msg : lisa_status_name(code));
}

static lisa_status append_json(const lisa_annotate_params *p, cJSON *j) {
    char *txt = cJSON_PrintUnformatted(j);
    if (!txt) return lisa_fail(LISA_ERR_OOM, "annotate: out of memory printing a record");
    const size_t n = strlen(txt);
    char *line = realloc(txt, n + 1);
    if (!line) {
        free(txt);
        return lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    }
    line[n] = '\n';
    lisa_status s = lisa_records_append(p->out, line, n + 1);
    free(line);
    return s;
}

static lisa_status write_error(const lisa_annotate_params *p, lisa_annotate_stats *st, const char *id, int32_t qi,
                               int64_t line, const char *query, const char *image, lisa_status code, const char *msg) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    add_where(j, id, qi, line, query, image);
    add_error(j, code, msg);
    lisa_status s = append_json(p, j);
    cJSON_Delete(j);
    if (s == LISA_OK) {
        st->written++;
        st->errors++;
        if (qi >= 0)
            lisa_job_notice(p->on_notice, p->ctx, "%s #%d: %s: %s", id ? id : "?", (int)qi, lisa_status_name(code), msg);
        else
            lisa_job_notice(p->on_notice, p->ctx, "%s: %s", lisa_status_name(code), msg);
    }
    return s;
}

static void add_timings(lisa_timings *sum, const lisa_timings *t) {
    sum->preprocess_ms += t->preprocess_ms;
    sum->clip_ms += t->clip_ms;
    sum->prefill_ms += t->prefill_ms;
    sum->decode_ms += t->decode_ms;
    sum->sam_encoder_ms += t->sam_encoder_ms;
    sum->sam_decoder_ms += t->sam_decoder_ms;
    sum->postprocess_ms += t->postprocess_ms;
    sum->total_ms += t->total_ms;
    sum->n_prompt_tokens += t->n_prompt_tokens;
    sum->n_generated += t->n_generated;
}

static lisa_status write_result(const lisa_annotate_params *p, lisa_annotate_stats *st, const slot *sl,
                                const lisa_result *r) {
    if (lisa_result_status(r) != LISA_OK)
        return write_error(p, st, sl->id, sl->qi, sl->line, sl->query, sl->image, lisa_result_status(r),
                           lisa_result_error(r));
    cJSON *j = cJSON_CreateObject();
    if (!j) return lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    add_where(j, sl->id, sl->qi, sl->line, sl->query, sl->image);
    cJSON_AddStringToObject(j, "answer", lisa_result_answer(r));
    cJSON *toks = cJSON_AddArrayToObject(j, "tokens");
    const int32_t *t = lisa_result_tokens(r);
    for (int32_t i = 0; toks && i < lisa_result_n_tokens(r); i++)
        cJSON_AddItemToArray(toks, cJSON_CreateNumber(t[i]));
    cJSON *masks = cJSON_AddArrayToObject(j, "masks");
    lisa_status s = masks && toks ? LISA_OK : lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    for (int32_t i = 0; s == LISA_OK && i < lisa_result_n_masks(r); i++) {
        int32_t h, w;
        const uint8_t *m = lisa_result_mask(r, i, &h, &w);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(masks, o)) {
            cJSON_Delete(o);
            s = lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
            break;
        }
        s = lisa_json_add_rle(o, m, h, w);
        if (s == LISA_OK && !cJSON_AddNumberToObject(o, "score", lisa_result_mask_score(r, i)))
            s = lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    }
    const lisa_timings tm = lisa_result_timings(r);
    if (s == LISA_OK) s = lisa_timings_json_add(j, &tm);
    if (s == LISA_OK && p->on_result) s = p->on_result(p->ctx, r, sl->id, sl->qi, sl->path, j);
    if (s == LISA_OK) s = append_json(p, j);
    cJSON_Delete(j);
    if (s == LISA_OK) {
        st->written++;
        st->n_ok++;
        add_timings(&st->sum, &tm);
    }
    return s;
}

/* ---- the loop ----------------------------------------------------------------------------------- */

/* One lisa_annotate_run. Owns the slots, the walker and a reference on the current item's image;
 * borrows everything in p. */
typedef struct run {
    const lisa_annotate_params *p;
    lisa_annotate_stats *st;
    walker w;
    bool have_item; /* w.it is the current item, next query next_q */
    int32_t next_q;
    lisa_image *img; /* the current item's image, decoded once for its queries (NULL: one query left) */
    slot *slots;
    int32_t *free_slots, n_free;
    double t0;
} run;

static void progress(run *R) {
    if (!R->p->on_progress) return;
    const lisa_engine_stats es = lisa_engine_get_stats(R->p->engine);
    R->st->queued = es.queued + es.ready;
    R->st->running = es.running;
    R->st->in_flight = R->p->max_in_flight - R->n_free;
    R->st->seconds = lisa_clock_s() - R->t0;
    R->p->on_progress(R->p->ctx, R->st);
}

static lisa_status take_slot(run *R, const lisa_ann_item *it, int32_t qi, int32_t *out) {
    const int32_t k = R->free_slots[--R->n_free];
    slot *s = &R->slots[k];
    s->used = true;
    s->qi = qi;
    s->line = it->line;
    s->id = strdup(it->id);
    s->query = strdup(it->queries[qi]);
    s->image = strdup(it->image_field ? it->image_field : it->image);
    s->path = strdup(it->image);
    if (!s->id || !s->query || !s->image || !s->path) {
        slot_clear(s);
        R->free_slots[R->n_free++] = k;
        return lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    }
    *out = k;
    return LISA_OK;
}

static void give_slot(run *R, int32_t k) {
    slot_clear(&R->slots[k]);
    R->free_slots[R->n_free++] = k;
}

/* The queries of the current item not yet in the record file. */
static int32_t pending_queries(const run *R) {
    char key[LISA_RECORDS_KEY_MAX];
    int32_t n = 0;
    for (int32_t q = R->next_q; q < R->w.it.n_queries; q++)
        n += !lisa_records_has(R->p->out, key, lisa_annotate_key(key, sizeof key, R->w.it.id, q));
    return n;
}

/* An item with several queries to run: its image is decoded once, here, and every query is
 * submitted on that lisa_image, so the engine's workers skip the decode and the hashing and the
 * engine encodes the picture once (issue #17). A bad image is one error record per query (the
 * same records the engine would give); only running out of memory stops the run. */
static lisa_status open_item_image(run *R, bool *failed) {
    *failed = false;
    if (pending_queries(R) < 2) return LISA_OK; /* one request: the workers decode it in parallel */
    const lisa_ann_item *it = &R->w.it;
    const lisa_status s = lisa_image_create_file(it->image, &R->img);
    if (s == LISA_OK) return LISA_OK;
    if (s == LISA_ERR_OOM) return s;
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", lisa_last_error());
    char key[LISA_RECORDS_KEY_MAX];
    for (int32_t q = 0; q < it->n_queries; q++) {
        if (lisa_records_has(R->p->out, key, lisa_annotate_key(key, sizeof key, it->id, q))) {
            R->st->skipped++;
            continue;
        }
        LISA_TRY(write_error(R->p, R->st, it->id, q, it->line, it->queries[q],
                             it->image_field ? it->image_field : it->image, s, msg));
        progress(R);
    }
    *failed = true;
    return LISA_OK;
}

/* Submits requests until max_in_flight are in flight or the input ends. */
static lisa_status fill(run *R) {
    const lisa_annotate_params *p = R->p;
    char key[LISA_RECORDS_KEY_MAX];
    while (R->n_free > 0) {
        if (!R->have_item) {
            bool dup;
            LISA_TRY(walk_next(&R->w, &dup));
            if (R->w.end) return LISA_OK;
            const lisa_ann_item *it = &R->w.it;
            if (dup) { /* its records would collide with the first item's: an error record of its own */
                R->st->duplicates++;
                if (lisa_records_has(p->out, key, line_key(key, sizeof key, it->line))) {
                    R->st->skipped++;
                    continue;
                }
                char msg[LISA_ANN_MAX_ID_BYTES + 200];
                snprintf(msg, sizeof msg, "line %lld: id %s repeats an earlier item's id: not run", (long long)it->line,
                         it->id);
                LISA_TRY(write_error(p, R->st, it->id, -1, it->line, NULL, it->image_field, LISA_ERR_INVALID_ARG, msg));
                progress(R);
                continue;
            }
            if (it->status != LISA_OK) {
                if (lisa_records_has(p->out, key, line_key(key, sizeof key, it->line))) {
                    R->st->skipped++;
                    continue;
                }
                LISA_TRY(write_error(p, R->st, it->id, -1, it->line, NULL, NULL, it->status, it->error));
                progress(R);
                continue;
            }
            R->have_item = true;
            R->next_q = 0;
            bool failed;
            LISA_TRY(open_item_image(R, &failed));
            if (failed) {
                R->have_item = false;
                continue;
            }
        }
        const lisa_ann_item *it = &R->w.it;
        if (R->next_q >= it->n_queries) {
            R->have_item = false;
            lisa_image_free(R->img); /* its requests hold their own references */
            R->img = NULL;
            continue;
        }
        const int32_t qi = R->next_q;
        if (lisa_records_has(p->out, key, lisa_annotate_key(key, sizeof key, it->id, qi))) {
            R->st->skipped++;
            R->next_q++;
            continue;
        }
        int32_t k = -1;
        LISA_TRY(take_slot(R, it, qi, &k));
        lisa_request rq = lisa_request_default();
        if (R->img) rq.image = R->img;
        else rq.image_path = it->image;
        rq.query = it->queries[qi];
        rq.params = p->seg;
        rq.user_data = (uint64_t)k;
        uint64_t id;
        const lisa_status s = lisa_engine_submit(p->engine, &rq, &id);
        if (s == LISA_ERR_BUSY) { /* the engine's queue is shared or small: wait for a result first */
            give_slot(R, k);
            if (R->n_free == p->max_in_flight) return lisa_fail(LISA_ERR_BUSY, "annotate: %s", lisa_last_error());
            return LISA_OK;
        }
        R->next_q++;
        if (s != LISA_OK) { /* refused at once: an error record, the run goes on */
            const slot *sl = &R->slots[k];
            lisa_status w = write_error(p, R->st, sl->id, qi, sl->line, sl->query, sl->image, s, lisa_last_error());
            give_slot(R, k);
            LISA_TRY(w);
            progress(R);
        }
    }
    return LISA_OK;
}

lisa_status lisa_annotate_run(const lisa_annotate_params *p, lisa_annotate_stats *st) {
    memset(st, 0, sizeof *st);
    if (!p->engine || !p->src || !p->out || p->max_in_flight < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "lisa_annotate_run: engine, input, output and max_in_flight >= 1 needed");
    run R = {.p = p, .st = st, .t0 = lisa_clock_s()};
    lisa_status s = walker_init(&R.w, p->src, p->shard_k, p->shard_n, p->limit);
    R.slots = calloc((size_t)p->max_in_flight, sizeof *R.slots);
    R.free_slots = malloc((size_t)p->max_in_flight * sizeof *R.free_slots);
    if (s == LISA_OK && (!R.slots || !R.free_slots)) s = lisa_fail(LISA_ERR_OOM, "annotate: out of memory");
    if (s == LISA_OK) {
        for (int32_t i = 0; i < p->max_in_flight; i++)
            R.free_slots[R.n_free++] = p->max_in_flight - 1 - i;
        progress(&R);
    }
    while (s == LISA_OK) {
        s = fill(&R);
        if (s != LISA_OK || R.n_free == p->max_in_flight) break; /* nothing in flight: done */
        lisa_result *res = NULL;
        s = lisa_engine_wait(p->engine, 0, &res);
        if (s != LISA_OK) break;
        const uint64_t k = lisa_result_user_data(res);
        LISA_ASSERT(k < (uint64_t)p->max_in_flight && R.slots[k].used);
        s = write_result(p, st, &R.slots[k], res);
        lisa_result_free(res);
        give_slot(&R, (int32_t)k);
        if (s == LISA_OK) progress(&R);
    }
    st->seconds = lisa_clock_s() - R.t0;
    lisa_image_free(R.img);
    for (int32_t i = 0; R.slots && i < p->max_in_flight; i++)
        slot_clear(&R.slots[i]);
    free(R.slots);
    free(R.free_slots);
    walker_free(&R.w);
    return s;
}
