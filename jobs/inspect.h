/* jobs/inspect.h — `lisa inspect DIR`: what a model directory holds and what running it needs
 * (family and dims, vocabulary and [SEG], tensors, parameters per part, bytes per dtype, a
 * per-device memory estimate; the model behind it is described at the top of jobs/inspect.c).
 * The report is text, written to a stream the caller gives. */
#ifndef LISA_JOBS_INSPECT_H
#define LISA_JOBS_INSPECT_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One report's options; borrowed for the call. */
typedef struct lisa_inspect_job {
    const char *dir;      /* a LISA, LLaMA or CLIP model directory */
    bool config_only;     /* read config.json and added_tokens.json only (no weights needed) */
    bool skip_crc;        /* skip the CRC check of large .bin entries */
    int64_t batch;        /* sequences/images per step for the memory estimate (>= 1) */
    int64_t context;      /* tokens per sequence for the KV cache and activations (>= 1) */
    int64_t tp;           /* tensor-parallel degree: LLM weights and KV cache split over tp devices */
    const char *clip_dir; /* the CLIP directory (NULL: openai/clip-vit-large-patch14 dims) */
} lisa_inspect_job;

/* Writes the report to o. LISA_ERR_SHAPE (after the report, which lists every problem) when the
 * checkpoint does not match its config.json; other failures before anything is written. */
lisa_status lisa_inspect_run(const lisa_inspect_job *j, FILE *o);

#ifdef __cplusplus
}
#endif

#endif
