/* jobs/job_common.h — what the long-running jobs (annotate, eval) share: notices to their caller
 * and loading the model the way every job does. */
#ifndef LISA_JOBS_JOB_COMMON_H
#define LISA_JOBS_JOB_COMMON_H

#include "lisa.h"

#include <stdbool.h>

/* The caller's notice callback (progress, skipped items, the backend `auto` chose); NULL = silent. */
typedef void (*lisa_job_notice_fn)(void *ctx, const char *msg);

/* Formats a notice (at most 1400 bytes, longer ones are cut) and hands it to fn, if set. */
void lisa_job_notice(lisa_job_notice_fn fn, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Loads the model at `dir` with `params` (tensor parallelism dropped unless `tensor_parallel`) and,
 * when the backend was LISA_BACKEND_AUTO, says which one it chose (rank 0 only). */
lisa_status lisa_job_load_model(const char *dir, lisa_model_params params, bool tensor_parallel,
                                lisa_job_notice_fn fn, void *ctx, lisa_model **out);

#endif
