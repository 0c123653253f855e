/* jobs/tokenize.h — `lisa tokenize`: a checkpoint's tokenizer over JSON lines (the protocol the
 * tokenizer tests and tools/ scripts speak). Each input line is one JSON object:
 *   {"text": "...", "add_special_tokens": true}       -> {"ids": [...], "tokens": [...]}
 *   {"prompt": "...", "image": true}                  -> tokenizer_image_token: {"ids", "tokens"}
 *   {"query": "...", "use_mm_start_end": true}        -> the chat.py prompt and its ids:
 *                                                        {"prompt", "ids", "tokens"}
 *   {"ids": [...], "skip_special_tokens": false,
 *    "chat_cleanup": false}                            -> {"text": "..."}
 * A bad line gets {"error": "..."} and the run goes on. The placeholder id -200 is listed as the
 * token "<image>". Limitation: input strings end at an escaped NUL ("\u0000"), as cJSON parses
 * them; output strings are written whole (NUL as \u0000).
 */
#ifndef LISA_JOBS_TOKENIZE_H
#define LISA_JOBS_TOKENIZE_H

#include "lisa.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_tokenize_job {
    const char *model_dir; /* tokenizer.model, added_tokens.json, special_tokens_map.json, tokenizer_config.json */
    const char *sp_model;  /* tokenizer.model from elsewhere (NULL: <model_dir>/tokenizer.model) */
    int legacy;            /* -1: from tokenizer_config.json; 0/1: override */
} lisa_tokenize_job;

/* Loads the tokenizer (a failure returns before any line is read) and answers every line of `in`
 * on `out` until end of file. */
lisa_status lisa_tokenize_job_run(const lisa_tokenize_job *j, FILE *in, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
