/* loader/eval_records.h — the append-only record file that makes `lisa eval` resumable.
 *
 * Line 1 is a header object naming the run ({"lisa_eval_records": 1, "dataset", "split", "mode",
 * "shard", ...}); every further line is one query's result (one JSON object, written whole and
 * fsync'd with the rest of its image's lines). On resume, the lines are read back: complete ones
 * mark their query done, and a torn last line (no final newline, or not JSON) is cut off, so that
 * query is redone. A corrupt line before the last is an error, not something to paper over.
 *
 * Ownership: a lisa_eval_records owns its file descriptor, the parsed records (cJSON) and the id
 * table until lisa_eval_records_close.
 */
#ifndef LISA_LOADER_EVAL_RECORDS_H
#define LISA_LOADER_EVAL_RECORDS_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_eval_records {
    char *path;
    int fd; /* open for appending, or -1 (read-only) */
    cJSON *header;
    cJSON **recs; /* the query records read back or appended, in file order */
    size_t n, cap;
    char **ids; /* sorted copy of the record ids (for done()) */
    size_t n_ids;
    bool ids_sorted;
    size_t torn_bytes; /* bytes cut from the end on open (a torn last line) */
} lisa_eval_records;

/* Opens path for a run described by `header` (borrowed; copied): a missing file is created with
 * the header line; an existing one needs resume (else LISA_ERR_INVALID_ARG naming --resume), and
 * its header must agree with `header` on every key of `header`. */
lisa_status lisa_eval_records_open(lisa_eval_records *r, const char *path, const cJSON *header, bool resume);

/* Reads a record file without writing (for merging shards); a torn last line is skipped. */
lisa_status lisa_eval_records_read(lisa_eval_records *r, const char *path);

/* Appends complete lines (each ending in '\n') and fsyncs; each line is also kept in r->recs. */
lisa_status lisa_eval_records_append(lisa_eval_records *r, const char *lines, size_t len);

/* True if a record with this "id" exists. */
bool lisa_eval_records_has(lisa_eval_records *r, const char *id);

void lisa_eval_records_close(lisa_eval_records *r);

#ifdef __cplusplus
}
#endif

#endif
