/* jobs/eval.c — the evaluator (see eval.h).
 * ref: dvlab-research/LISA train_ds.py validate(), utils/dataset.py ValDataset.__getitem__. */
#include "jobs/eval.h"

#include "loader/image.h"
#include "core/error.h"
#include "jobs/eval_metrics.h"
#include "jobs/eval_raster.h"
#include "core/rle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lisa_status lisa_eval_query_prompt(char *buf, size_t cap, const char *text, bool is_sentence) {
    const int n = is_sentence ? snprintf(buf, cap, " %s Please output segmentation mask.", text)
                              : snprintf(buf, cap, " What is %s in this image? Please output segmentation mask.", text);
    if (n < 0 || (size_t)n >= cap)
        return lisa_fail(LISA_ERR_LIMIT, "query text of %zu bytes is too long", strlen(text));
    return LISA_OK;
}

lisa_status lisa_eval_gt_mask(uint8_t *mask, lisa_ds_kind kind, const lisa_ds_image *im, int32_t q, int32_t h,
                              int32_t w, uint8_t *scratch) {
    if (kind == LISA_DS_REASONSEG) return lisa_reasonseg_mask(mask, h, w, im->shapes, im->n_shapes, scratch);
    memset(mask, 0, (size_t)h * w);
    const lisa_ds_query *qq = &im->queries[q];
    char what[600];
    snprintf(what, sizeof what, "%s#%d", im->id ? im->id : "?", q);
    for (int32_t p = 0; p < qq->n_parts; p++) {
        const lisa_gt_part *part = &qq->parts[p];
        lisa_rle r = {0};
        lisa_status s;
        if (part->kind == LISA_GT_POLYGON) {
            s = lisa_rle_from_poly(&r, part->xy, part->n / 2, h, w, what); /* int(len(p)/2) points */
        } else if (part->kind == LISA_GT_RLE_STRING) {
            s = lisa_rle_from_string(&r, part->counts_str, part->rle_h, part->rle_w);
            if (s != LISA_OK) lisa_fail_context(s, "%s", what);
        } else {
            s = lisa_rle_from_counts(&r, part->counts, part->n, part->rle_h, part->rle_w, what);
        }
        if (s == LISA_OK && (r.h != h || r.w != w))
            s = lisa_fail(LISA_ERR_FORMAT, "%s: RLE of %d x %d for a %d x %d image", what, r.h, r.w, h, w);
        if (s == LISA_OK) s = lisa_rle_decode_add(mask, &r, what);
        lisa_rle_free(&r);
        if (s != LISA_OK) return s;
    }
    return LISA_OK;
}

int32_t lisa_eval_shard_size(const lisa_dataset *ds, int32_t shard_k, int32_t shard_n, int32_t limit) {
    int32_t n = 0;
    for (int32_t i = 0; i < ds->n_images; i++)
        if (i % shard_n == shard_k) n++;
    return limit > 0 && limit < n ? limit : n;
}

/* Owns the per-image buffers of one run (grown as needed; freed at the end). */
typedef struct ev_bufs {
    uint8_t *pred, *gt, *scratch; /* pred: [n_q, plane]; gt, scratch: [plane] */
    size_t pred_cap, plane_cap;
    lisa_eval_pred *preds;
    char **prompts;
    int32_t *qidx;
    int32_t q_cap;
} ev_bufs;

static lisa_status ev_reserve(ev_bufs *b, int32_t n_q, size_t plane) {
    if ((size_t)n_q * plane > b->pred_cap) {
        free(b->pred);
        b->pred_cap = (size_t)n_q * plane;
        if (!(b->pred = malloc(b->pred_cap))) return lisa_fail(LISA_ERR_OOM, "out of memory for %d masks", n_q);
    }
    if (plane > b->plane_cap) {
        free(b->gt);
        free(b->scratch);
        b->plane_cap = plane;
        b->gt = malloc(plane);
        b->scratch = malloc(plane);
        if (!b->gt || !b->scratch) return lisa_fail(LISA_ERR_OOM, "out of memory for a %zu-pixel mask", plane);
    }
    if (n_q > b->q_cap) {
        for (int32_t i = 0; i < b->q_cap; i++)
            free(b->prompts[i]);
        free(b->prompts);
        free(b->preds);
        free(b->qidx);
        b->q_cap = n_q;
        b->prompts = calloc((size_t)n_q, sizeof *b->prompts);
        b->preds = calloc((size_t)n_q, sizeof *b->preds);
        b->qidx = calloc((size_t)n_q, sizeof *b->qidx);
        if (!b->prompts || !b->preds || !b->qidx) return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    return LISA_OK;
}

static void ev_free(ev_bufs *b) {
    free(b->pred);
    free(b->gt);
    free(b->scratch);
    for (int32_t i = 0; b->prompts && i < b->q_cap; i++)
        free(b->prompts[i]);
    free(b->prompts);
    free(b->preds);
    free(b->qidx);
}

static lisa_status emit_error(const lisa_eval_params *p, const lisa_ds_image *im, int32_t q, const char *id,
                              const char *msg) {
    lisa_eval_result r = {.id = id,
                          .image = im->id ? im->id : "",
                          .text = (q < im->n_queries && im->queries[q].text) ? im->queries[q].text : "",
                          .is_sentence = q < im->n_queries && im->queries[q].is_sentence,
                          .ok = false,
                          .error = msg,
                          .answer = ""};
    return p->sink(p->ctx, &r);
}

static void query_id(char *buf, size_t cap, const lisa_ds_image *im, int32_t q) {
    snprintf(buf, cap, "%s#%d", im->id ? im->id : "?", q);
}

static lisa_status eval_image(const lisa_eval_params *p, const lisa_ds_image *im, ev_bufs *b) {
    if (im->n_queries == 0 && !im->error) return LISA_OK; /* refs without sentences: nothing to ask */
    char id[1100];
    if (im->error) { /* the item itself is bad: one failed query */
        query_id(id, sizeof id, im, 0);
        return (p->done && p->done(p->ctx, id)) ? LISA_OK : emit_error(p, im, 0, id, im->error);
    }
    /* pending queries */
    int32_t n_pending = 0;
    LISA_TRY(ev_reserve(b, im->n_queries, 1));
    for (int32_t q = 0; q < im->n_queries; q++) {
        query_id(id, sizeof id, im, q);
        if (p->done && p->done(p->ctx, id)) continue;
        b->qidx[n_pending++] = q;
    }
    if (n_pending == 0) return LISA_OK;
    lisa_image_limits lim = lisa_image_default_limits();
    if (p->max_image_pixels > 0) lim.max_pixels = p->max_image_pixels;
    lisa_bitmap img = {0};
    lisa_status s = lisa_image_load(&img, im->path, &lim);
    char msg[1024] = "";
    if (s == LISA_OK && im->h > 0 && (img.h != im->h || img.w != im->w))
        snprintf(msg, sizeof msg, "%s: decoded %d x %d, but the annotations say %d x %d", im->path, img.w, img.h, im->w,
                 im->h);
    else if (s != LISA_OK)
        snprintf(msg, sizeof msg, "%s", lisa_last_error());
    if (s == LISA_ERR_OOM) return s;
    if (msg[0]) {
        lisa_bitmap_free(&img);
        for (int32_t k = 0; k < n_pending; k++) {
            query_id(id, sizeof id, im, b->qidx[k]);
            LISA_TRY(emit_error(p, im, b->qidx[k], id, msg));
        }
        return LISA_OK;
    }
    const int32_t h = img.h, w = img.w;
    const size_t plane = (size_t)h * w;
    s = ev_reserve(b, n_pending, plane);
    /* queries the reference could not evaluate are errors; the rest go to the model together */
    int32_t n_run = 0;
    int32_t *run_q = NULL;
    if (s == LISA_OK && !(run_q = malloc((size_t)n_pending * sizeof *run_q)))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int32_t k = 0; k < n_pending && s == LISA_OK; k++) {
        const int32_t q = b->qidx[k];
        query_id(id, sizeof id, im, q);
        if (im->queries[q].error) {
            s = emit_error(p, im, q, id, im->queries[q].error);
            continue;
        }
        char prompt[8192];
        lisa_status ps = lisa_eval_query_prompt(prompt, sizeof prompt, im->queries[q].text, im->queries[q].is_sentence);
        if (ps != LISA_OK) {
            s = emit_error(p, im, q, id, lisa_last_error());
            continue;
        }
        free(b->prompts[n_run]);
        if (!(b->prompts[n_run] = strdup(prompt))) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        lisa_eval_pred *pr = &b->preds[n_run];
        memset(pr, 0, sizeof *pr);
        pr->mask = b->pred + (size_t)n_run * plane;
        memset(pr->mask, 0, plane);
        run_q[n_run++] = q;
    }
    if (s == LISA_OK && n_run > 0) {
        lisa_status ms = p->predict(p->predict_ctx, img.data, h, w, n_run, (const char *const *)b->prompts, b->preds);
        if (ms == LISA_ERR_OOM) s = ms;
        for (int32_t k = 0; k < n_run && s == LISA_OK; k++) {
            const int32_t q = run_q[k];
            const lisa_ds_query *qq = &im->queries[q];
            lisa_eval_pred *pr = &b->preds[k];
            query_id(id, sizeof id, im, q);
            if (ms != LISA_OK || pr->status != LISA_OK) {
                s = emit_error(p, im, q, id, ms != LISA_OK ? lisa_last_error() : pr->error);
                continue;
            }
            lisa_status gs = lisa_eval_gt_mask(b->gt, p->ds->kind, im, q, h, w, b->scratch);
            if (gs == LISA_ERR_OOM) {
                s = gs;
                break;
            }
            if (gs != LISA_OK) {
                s = emit_error(p, im, q, id, lisa_last_error());
                continue;
            }
            lisa_eval_iu iu;
            lisa_eval_iu_compute(&iu, pr->mask, b->gt, (int64_t)plane);
            pr->answer[sizeof pr->answer - 1] = '\0';
            lisa_eval_result r = {.id = id,
                                  .image = im->id,
                                  .text = qq->text,
                                  .is_sentence = qq->is_sentence,
                                  .ok = true,
                                  .inter = iu.inter[1],
                                  .uni = iu.uni[1],
                                  .pred_px = iu.pred_fg,
                                  .gt_px = iu.gt_fg,
                                  .iou = lisa_eval_query_iou(iu.inter[1], iu.uni[1]),
                                  .n_seg = pr->n_seg,
                                  .answer = pr->answer,
                                  .pred = pr->mask,
                                  .gt = b->gt,
                                  .h = h,
                                  .w = w};
            s = p->sink(p->ctx, &r);
        }
    }
    free(run_q);
    lisa_bitmap_free(&img);
    return s;
}

lisa_status lisa_eval_run(const lisa_eval_params *p) {
    if (!p->ds || !p->predict || !p->sink || p->shard_n < 1 || p->shard_k < 0 || p->shard_k >= p->shard_n)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_eval_run: bad parameters (shard %d/%d)", p->shard_k, p->shard_n);
    const int32_t total = lisa_eval_shard_size(p->ds, p->shard_k, p->shard_n, p->limit);
    ev_bufs b = {0};
    lisa_status s = LISA_OK;
    int32_t done = 0;
    for (int32_t i = 0; i < p->ds->n_images && done < total && s == LISA_OK; i++) {
        if (i % p->shard_n != p->shard_k) continue;
        s = eval_image(p, &p->ds->images[i], &b);
        done++;
        if (p->progress) p->progress(p->ctx, done, total);
    }
    ev_free(&b);
    return s;
}
