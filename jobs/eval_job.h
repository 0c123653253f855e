/* jobs/eval_job.h — `lisa eval` as one call: the dataset under the data root, the model (teacher
 * forced as LISA's train_ds.py --eval_only, or greedy chat; tensor parallelism in generate mode),
 * the evaluator of jobs/eval.h, the resumable record file (jobs/records.h), the mask dumps, and
 * the metrics (gIoU, cIoU; ReasonSeg also by short/long query) computed from the records, so a
 * resumed or merged run reports the same numbers as an uninterrupted one. The tool
 * (tools/cmd_eval.c) parses options and prints.
 *
 * Every query's result is appended (and fsync'd) to a record file as one JSON line; resume skips
 * the queries already there (a torn last line is redone). The record file's header (dataset,
 * split, mode, shard, model) must match on resume; the limit may change between runs. Queries
 * that failed (bad item, decode error, ...) are recorded as errors, reported, left out of
 * gIoU/cIoU and not retried by resume (delete their lines to retry them).
 */
#ifndef LISA_JOBS_EVAL_JOB_H
#define LISA_JOBS_EVAL_JOB_H

#include "lisa.h"
#include "jobs/eval_metrics.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_EVAL_PATH_MAX 4200

/* One run's options; borrowed for the call. */
typedef struct lisa_eval_job {
    const char *model;
    const char *dataset;      /* reasonseg, refcoco, refcoco+ or refcocog */
    const char *data;         /* the LISA dataset root (or the ReasonSeg / refer_seg directory itself) */
    const char *split;        /* ReasonSeg: val | test | train; refCOCO(+): val | testA | testB; refCOCOg: val | test */
    const char *split_by;     /* refer splits: unc | umd | google; NULL: umd for refcocog, else unc */
    bool generate;            /* greedy chat (first [SEG]'s mask) instead of teacher forcing */
    int32_t limit;            /* images of the shard; <= 0: all */
    int32_t shard_k, shard_n; /* shard_n 0: the launcher's rank and size (one shard per TP group), else 0 of 1 */
    const char *out;          /* results JSON (may be NULL) */
    const char *records;      /* NULL: <out>.records.jsonl, or lisa-eval-<dataset>-<split>[-K-of-N].records.jsonl */
    const char *dump_masks;   /* directory for <image>_q<k>.png (0/255), or NULL */
    bool resume;
    lisa_model_params model_params; /* tensor_parallel > 1 needs generate */
    lisa_segment_params seg;        /* max_new_tokens: generate mode */
    /* One failed query (id, message). May be NULL. */
    void (*on_query_error)(void *ctx, const char *id, const char *message);
    /* A line for the user (torn record cut, the backend auto chose). May be NULL. */
    void (*on_notice)(void *ctx, const char *msg);
    /* After each image: images done / total of the shard, queries and errors of this run. May be NULL. */
    void (*on_progress)(void *ctx, int32_t images_done, int32_t images_total, int32_t queries, int32_t errors);
    void *ctx;
} lisa_eval_job;

lisa_eval_job lisa_eval_job_default(void);

/* The metrics of a record set (a run's or a merge's). */
typedef struct lisa_eval_summary {
    lisa_eval_acc all, by_len[2]; /* [0] short (is_sentence false), [1] long */
    int64_t n_errors, n_no_seg, n_images;
    char dataset[32], split[32], mode[32];
    bool reasonseg;               /* by_len is meaningful */
    char records[LISA_EVAL_PATH_MAX]; /* the record file of a run ("" for a merge) */
    double seconds;               /* of a run (-1 for a merge) */
    bool follower;                /* a TP follower: served its leader, wrote nothing */
} lisa_eval_summary;

/* Runs the shard, then computes the metrics from the record file and writes `out` (atomically)
 * when set. */
lisa_status lisa_eval_job_run(const lisa_eval_job *j, lisa_eval_summary *s);

/* The metrics of n record files of one run's shards (dataset, split and mode must agree; a query
 * in two files is an error); written to `out` when set. */
lisa_status lisa_eval_merge(const char *const *files, int n, const char *out, lisa_eval_summary *s);

#ifdef __cplusplus
}
#endif

#endif
