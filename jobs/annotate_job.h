/* jobs/annotate_job.h — `lisa annotate` as one call: the run's identity, the shard's record file,
 * the model (tensor parallelism included: followers serve their leader and write nothing), the
 * engine and the loop of jobs/annotate.h; and --merge, which checks and joins the shard files.
 * The tool (tools/cmd_annotate.c) parses options, writes mask files in on_result and prints.
 *
 * OUT is a record file (jobs/records.h): a header line naming the run (input, query, model,
 * max_new_tokens, shard), then one record per query in completion order. Rerunning the same job
 * continues an interrupted run (a torn last line is cut and redone); a run with other
 * inputs/model/shard refuses to touch the file. Shard K of N writes OUT with ".shard-K-of-N"
 * before the extension (core/shard.h).
 */
#ifndef LISA_JOBS_ANNOTATE_JOB_H
#define LISA_JOBS_ANNOTATE_JOB_H

#include "lisa.h"
#include "jobs/annotate.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_ANNOTATE_PATH_MAX 4096

/* What a run did (filled as it goes; the callbacks may read it). */
typedef struct lisa_annotate_summary {
    char out_path[LISA_ANNOTATE_PATH_MAX]; /* the shard's record file */
    int32_t shard_k, shard_n;
    lisa_annotate_plan plan;     /* the shard's items and records, and how many were done before */
    lisa_annotate_stats stats;   /* this run's records (stats.skipped = plan.done) */
    double seconds;
    bool follower;               /* a TP follower: served its leader, wrote nothing */
} lisa_annotate_summary;

/* One run's options; borrowed for the call. */
typedef struct lisa_annotate_job {
    const char *model, *vision_tower;
    const char *manifest;        /* JSON lines {"id", "image", "queries": [...]} ... */
    const char *images, *query;  /* ... or every image of a folder with one query */
    const char *out;             /* the record file, before the shard suffix */
    int32_t shard_k, shard_n;    /* shard_n 0: the launcher's rank and size (srun/mpirun; one
                                    shard per TP group), else 0 of 1 */
    int64_t limit;               /* the shard's first N items (not part of the run's identity); <= 0 all */
    lisa_segment_params seg;     /* max_new_tokens is part of the run's identity */
    lisa_model_params model_params; /* vision_tower above wins; tensor_parallel > 1: TP groups */
    lisa_engine_params engine;   /* max_batch etc.; max_in_flight requests = 2 * max_batch */
    /* See lisa_annotate_params (jobs/annotate.h): each good record before it is appended. */
    lisa_status (*on_result)(void *ctx, const lisa_result *r, const char *id, int32_t query_index,
                             const char *image_path, cJSON *rec);
    /* One line for the user (torn line cut, error records, the backend auto chose). */
    void (*on_notice)(void *ctx, const char *msg);
    /* Once the shard's plan is known (s->plan, s->out_path), before any record is run. */
    void (*on_plan)(void *ctx, const lisa_annotate_summary *s);
    void (*on_progress)(void *ctx, const lisa_annotate_stats *st);
    void *ctx;
} lisa_annotate_job;

/* A job with the engine's default parameters and chat.py's generation limit. */
lisa_annotate_job lisa_annotate_job_default(void);

/* Runs the shard to its end (nothing to do when the file already holds every record: the model is
 * then not loaded). Returns the failure that stopped it; bad items are error records. */
lisa_status lisa_annotate_job_run(const lisa_annotate_job *j, lisa_annotate_summary *s);

/* --merge: the n shard files of `out` (headers agree, every line parses, no key twice, nothing
 * missing from the input when the input is readable here) into `out`, written atomically.
 * on_shard is told each shard's records as it is read; *checked says whether completeness could
 * be checked (the input named in the headers was readable). */
typedef struct lisa_annotate_merge_summary {
    int64_t records, errors;
    bool checked;
} lisa_annotate_merge_summary;

lisa_status lisa_annotate_merge(const char *out, int32_t n,
                                void (*on_shard)(void *ctx, const char *path, int64_t records, int64_t errors),
                                void *ctx, lisa_annotate_merge_summary *sum);

#ifdef __cplusplus
}
#endif

#endif
