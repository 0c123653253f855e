/* jobs/annotate.h — the loop behind `lisa annotate` (issue #8): every (item, query) of an input
 * (jobs/annotate_input.h) through the batching engine, one record per query appended to a
 * crash-safe record file (jobs/records.h).
 *
 * Records (one JSON object per line after the header line; in completion order, not input order,
 * keyed by (id, query_index)):
 *   {"id", "query_index", "line", "query", "image", "answer", "tokens": [...],
 *    "masks": [{"rle": {"size": [h, w], "counts": "..."}, "bbox": [x, y, w, h], "area", "score"}],
 *    "timings": {...}}
 *   {"id", "query_index", "line", "query", "image", "error": {"code": "LISA_ERR_IO", "message"}}
 * and for a manifest line that is not a valid item (bad JSON, no id/image/queries), keyed by its
 * line number: {"id": <id or null>, "line", "error": {...}}. "line" (the manifest line) is absent
 * for a folder input. COCO RLE is pycocotools' (column-major counts, compressed string form).
 *
 * Resume: the record file's keys are the done set; items already there are skipped, so a killed
 * run restarted on the same file finishes with every key exactly once (a torn last line is cut
 * and redone by lisa_records_open). Sharding: item i belongs to shard i % N (core/shard.h);
 * --limit counts the shard's items. An item whose id repeats an earlier item's id in the same
 * shard is not run (its keys would collide): it gets an error record keyed by its line,
 *   {"id", "line", "image", "error": {"code": "LISA_ERR_INVALID_ARG", "message": "... repeats ..."}}.
 *
 * Memory stays bounded whatever the input size: the input is streamed, at most max_in_flight
 * requests are submitted and not yet written, and the done/seen sets hold one short key per item.
 */
#ifndef LISA_JOBS_ANNOTATE_H
#define LISA_JOBS_ANNOTATE_H

#include "lisa.h"
#include "jobs/annotate_input.h"
#include "jobs/records.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The record file kind: header magic "lisa_annotate"; key "i<id>\x1f<query_index>" or "l<line>"
 * for a malformed line. */
extern const lisa_records_kind lisa_annotate_records;

/* The key of (id, query_index) into buf (at least LISA_RECORDS_KEY_MAX bytes); its length. */
size_t lisa_annotate_key(char *buf, size_t cap, const char *id, int32_t query_index);

/* What a shard owes: a counting pass over the input (rewound before and after). */
typedef struct lisa_annotate_plan {
    int64_t items;      /* the shard's items (after the limit), duplicates and malformed lines included */
    int64_t records;    /* records they make: one per query, one per malformed line */
    int64_t done;       /* ... of which (and of the duplicates' records) the record file already holds */
    int64_t malformed;  /* malformed lines */
    int64_t duplicates; /* items whose id repeats an earlier one: not run, one error record each (not
                           in `records`: the total is records + duplicates) */
} lisa_annotate_plan;

lisa_status lisa_annotate_plan_run(lisa_annotate_plan *pl, lisa_ann_source *src, const lisa_records *out,
                                   int32_t shard_k, int32_t shard_n, int64_t limit);

typedef struct lisa_annotate_stats {
    int64_t skipped;         /* records already in the file (resume) */
    int64_t written;         /* records appended by this run ... */
    int64_t errors;          /* ... of which error records */
    int64_t duplicates;      /* items not run for a repeated id (each an error record) */
    int32_t queued, running; /* engine: queued + ready, admitted (at the last progress call) */
    int64_t in_flight;       /* submitted, not yet written */
    double seconds;          /* since lisa_annotate_run started */
    lisa_timings sum;        /* summed over this run's successful records */
    int64_t n_ok;
} lisa_annotate_stats;

typedef struct lisa_annotate_params {
    lisa_engine *engine;  /* borrowed */
    lisa_ann_source *src; /* borrowed; read from its first item */
    lisa_records *out;    /* borrowed, open for appending (lisa_annotate_records) */
    int32_t shard_k, shard_n;
    int64_t limit;         /* items of the shard to run; <= 0: all */
    int32_t max_in_flight; /* requests submitted and not yet written; >= 1 */
    lisa_segment_params seg;
    /* Each successful record before it is appended (may add fields, e.g. mask file names to
     * rec's "masks"[i]); image_path is the file the engine read. A non-OK return stops the run
     * with that status. May be NULL. */
    lisa_status (*on_result)(void *ctx, const lisa_result *r, const char *id, int32_t query_index,
                             const char *image_path, cJSON *rec);
    /* One line about an error record or a skipped duplicate. May be NULL. */
    void (*on_notice)(void *ctx, const char *msg);
    /* After each record written (and once at the start). May be NULL. */
    void (*on_progress)(void *ctx, const lisa_annotate_stats *st);
    void *ctx;
} lisa_annotate_params;

/* Runs the shard to the end. Returns the first failure that stops the run (reading the input,
 * writing the records, an on_result failure); bad items are error records, not failures. */
lisa_status lisa_annotate_run(const lisa_annotate_params *p, lisa_annotate_stats *st);

#ifdef __cplusplus
}
#endif

#endif
