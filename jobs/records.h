/* jobs/records.h — append-only JSONL record files that make long runs resumable and crash-safe
 * (`lisa eval`'s per-query records, `lisa annotate`'s output).
 *
 * Line 1 is a header object naming the run; it holds the kind's magic key ({"lisa_eval_records":
 * 1, "dataset", ...} or {"lisa_annotate": 1, "input", ...}). Every further line is one record
 * (one JSON object), appended with write() of whole lines and fsync'd before the caller moves on,
 * so after a crash the file is a sequence of complete records, possibly followed by one torn
 * line (a write cut short, or a power loss). On open the lines are read back (streamed, any
 * size): complete ones register their key as done, and a torn last line (no final newline, or not
 * JSON) is cut off with ftruncate, so that record is redone. A corrupt line before the last is an
 * error (LISA_ERR_FORMAT naming the line), never papered over. A writer holds an exclusive
 * flock() on the file, so two processes cannot interleave lines in one file.
 *
 * Ownership: a lisa_records owns its file descriptor (and lock), the header, the kept records
 * (cJSON) and the key set until lisa_records_close; the kind is borrowed (static).
 */
#ifndef LISA_JOBS_RECORDS_H
#define LISA_JOBS_RECORDS_H

#include "lisa.h"
#include "core/keyset.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What makes a record file of one tool. */
typedef struct lisa_records_kind {
    const char *magic; /* the header's identifying key */
    /* The record's key (what "done" means) into buf; returns its length, 0 for a record without a
     * key, or >= cap when it does not fit (LISA_ERR_LIMIT). */
    size_t (*key)(char *buf, size_t cap, const cJSON *rec);
    bool keep; /* keep every parsed record in recs (eval computes its metrics from them) */
} lisa_records_kind;

#define LISA_RECORDS_KEY_MAX 8192

typedef struct lisa_records {
    char *path;
    int fd; /* open for appending (and locked), or -1 (read-only) */
    const lisa_records_kind *kind;
    cJSON *header;
    size_t n;     /* records in the file (read back + appended) */
    cJSON **recs; /* [n] when kind->keep, in file order; else NULL */
    size_t cap;
    lisa_keyset keys;
    size_t torn_bytes; /* bytes cut from the end on open (a torn last line) */
} lisa_records;

/* Opens path for a run described by `header` (borrowed; copied; must hold kind->magic): a missing
 * or empty file is created with the header line; an existing one needs resume (else
 * LISA_ERR_INVALID_ARG naming --resume), and its header must agree with `header` on every key of
 * `header` (LISA_ERR_INVALID_ARG naming the key). LISA_ERR_BUSY when another process holds it. */
lisa_status lisa_records_open(lisa_records *r, const char *path, const lisa_records_kind *kind, const cJSON *header,
                              bool resume);

/* Reads a record file without writing (for merging shards); a torn last line is skipped. */
lisa_status lisa_records_read(lisa_records *r, const char *path, const lisa_records_kind *kind);

/* Appends complete lines (each one JSON object ending in '\n') with one write and an fsync, then
 * registers their keys (and keeps them when kind->keep). */
lisa_status lisa_records_append(lisa_records *r, const char *lines, size_t len);

/* True if a record with this key exists. */
bool lisa_records_has(const lisa_records *r, const char *key, size_t len);

void lisa_records_close(lisa_records *r);

/* Streams a record file: *header (owned by the caller; may be NULL to skip) receives line 1, then
 * fn is called for every complete record line (text without the newline, and parsed). A torn last
 * line is skipped and its size returned in *torn (may be NULL). A non-OK return of fn stops the
 * scan with that status. */
typedef lisa_status (*lisa_records_visit_fn)(void *ctx, const char *line, size_t len, const cJSON *rec,
                                             int64_t line_no);
lisa_status lisa_records_scan(const char *path, const char *magic, cJSON **header, lisa_records_visit_fn fn, void *ctx,
                              size_t *torn);

#ifdef __cplusplus
}
#endif

#endif
