/* jobs/eval.h — the evaluator behind `lisa eval` (issue #11, spec docs/inference.md §9).
 *
 * It walks a dataset (jobs/dataset.h) image by image, asks a prediction callback for the masks
 * of the image's pending queries (the model is behind the callback: today the single-request API
 * of models/lisa_model.c, tomorrow the batched engine), draws each query's ground truth the way the
 * reference does (jobs/eval_raster.c, core/rle.c), computes intersection and union
 * (jobs/eval_metrics.c) and hands every per-query result to a sink (the tool appends it to the
 * resumable record file). Bad items (a corrupt JSON, a missing image, an annotation the reference
 * cannot rasterize, a failed prediction) become per-query error results; the run goes on.
 *
 * Query prompts are ValDataset's (utils/dataset.py): the user turn after "<image>\n" is
 *   " {text} Please output segmentation mask."                          (ReasonSeg, is_sentence)
 *   " What is {text} in this image? Please output segmentation mask."   (otherwise)
 * (the leading space is dropped by the tokenizer's stripping after <im_end>, as in the reference).
 *
 * Sharding: images with index % shard_n == shard_k (0-based), then the first `limit` of them.
 * Query ids are "<image id>#<query index>", stable across runs, shards and resumes.
 */
#ifndef LISA_JOBS_EVAL_H
#define LISA_JOBS_EVAL_H

#include "lisa.h"
#include "jobs/dataset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One query's prediction, filled by the callback. mask is the evaluator's buffer of h*w bytes,
 * zeroed before the call: write 0/1 (the first [SEG]'s mask); leave it zero when there is none. */
typedef struct lisa_eval_pred {
    uint8_t *mask;
    int32_t n_seg;      /* [SEG]s the model produced for the query (0: no mask) */
    char answer[256];   /* the answer text (truncated), for the record */
    lisa_status status; /* a per-query failure (message in `error`) */
    char error[512];
} lisa_eval_pred;

/* Predicts n queries on one RGB image [h, w, 3]. A non-OK return fails all n queries (with
 * lisa_last_error()); per-query failures go in preds[i].status/error. */
typedef lisa_status (*lisa_eval_predict_fn)(void *ctx, const uint8_t *rgb, int32_t h, int32_t w, int32_t n,
                                            const char *const *queries, lisa_eval_pred *preds);

/* One query's outcome. Pointers live for the duration of the sink call. */
typedef struct lisa_eval_result {
    const char *id, *image, *text;
    bool is_sentence;
    bool ok; /* false: error holds why (the query counts as failed) */
    const char *error;
    int64_t inter, uni;     /* foreground intersection / union (ignore pixels excluded) */
    int64_t pred_px, gt_px; /* foreground pixels of the prediction (non-ignored) and of the GT */
    double iou;             /* lisa_eval_query_iou(inter, uni) */
    int32_t n_seg;
    const char *answer;
    const uint8_t *pred, *gt; /* [h, w] masks (NULL on errors) */
    int32_t h, w;
} lisa_eval_result;

typedef struct lisa_eval_params {
    const lisa_dataset *ds;
    int32_t shard_k, shard_n; /* 0 <= k < n; n = 1: everything */
    int32_t limit;            /* images of the shard to run; <= 0: all */
    int64_t max_image_pixels; /* decode limit (<= 0: the default) */
    lisa_eval_predict_fn predict;
    void *predict_ctx;
    /* resume: true when the query id already has a record (may be NULL) */
    bool (*done)(void *ctx, const char *id);
    /* every new result, in order; a non-OK return stops the run with that status */
    lisa_status (*sink)(void *ctx, const lisa_eval_result *r);
    /* after each image (may be NULL): images of the shard done so far / in total */
    void (*progress)(void *ctx, int32_t images_done, int32_t images_total);
    void *ctx; /* for done / sink / progress */
} lisa_eval_params;

/* Runs the evaluation; returns the first sink failure (or OOM), else LISA_OK. */
lisa_status lisa_eval_run(const lisa_eval_params *p);

/* ValDataset's user turn for a query (see above) into buf; LISA_ERR_LIMIT if it does not fit. */
lisa_status lisa_eval_query_prompt(char *buf, size_t cap, const char *text, bool is_sentence);

/* The GT mask [h, w] of query q of image im (values 0, 1, 255; refCOCO overlapping parts sum).
 * scratch: NULL or h*w bytes. */
lisa_status lisa_eval_gt_mask(uint8_t *mask, lisa_ds_kind kind, const lisa_ds_image *im, int32_t q, int32_t h,
                              int32_t w, uint8_t *scratch);

/* Number of images of the shard (after the limit). */
int32_t lisa_eval_shard_size(const lisa_dataset *ds, int32_t shard_k, int32_t shard_n, int32_t limit);

#ifdef __cplusplus
}
#endif

#endif
