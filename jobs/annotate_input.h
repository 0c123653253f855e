/* jobs/annotate_input.h — the items `lisa annotate` works through, streamed one at a time so
 * that a manifest of millions of lines is never held in memory:
 *
 *  - a JSONL manifest: one object per line,
 *        {"id": "cat-17", "image": "photos/cat.jpg", "queries": ["the cat", "its left ear"]}
 *    ("query": "..." is accepted for a single query; an integer id is taken as its decimal
 *    string; "image" is relative to the manifest's directory unless absolute). Blank lines are
 *    skipped and are not items. A line that is not such an object (bad JSON, no id, no image, no
 *    queries, a query that is not a string, ...) is still an item, with status != LISA_OK and a
 *    message naming the manifest and line: the tool writes it as an error record and goes on.
 *  - a folder of images and one query: every regular file whose name ends in .png, .jpg or .jpeg
 *    (any case), not recursive, sorted by name (strcmp); the id is the file name. The other regular
 *    files (other image formats too) are listed in `skipped` for the caller to report.
 *
 * Items are numbered 0, 1, 2, ... in input order (item.index): sharding and --limit count these.
 *
 * Ownership: a lisa_ann_source owns its FILE, paths, the folder listing and the line buffer until
 * lisa_ann_source_close; a lisa_ann_item owns its strings until lisa_ann_item_free (or the next
 * lisa_ann_source_next into it).
 */
#ifndef LISA_JOBS_ANNOTATE_INPUT_H
#define LISA_JOBS_ANNOTATE_INPUT_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_ANN_MAX_ID_BYTES 1024
#define LISA_ANN_MAX_QUERIES  4096

typedef struct lisa_ann_item {
    int64_t index;     /* 0-based ordinal among the input's items */
    int64_t line;      /* manifest line (1-based); 0 for a folder */
    char *id;          /* NULL when the line has no usable id */
    char *image;       /* the path to open (joined to the manifest's directory); NULL if absent */
    char *image_field; /* "image" as written in the manifest (the folder: the file name) */
    char **queries;    /* [n_queries] */
    int32_t n_queries;
    lisa_status status; /* LISA_OK, or why the line is malformed (message in error) */
    char error[600];
} lisa_ann_item;

typedef struct lisa_ann_source {
    /* manifest */
    FILE *f;
    char *path, *base_dir;
    char *buf;
    size_t buf_cap;
    /* folder */
    char *dir, *query;
    char **files;
    size_t n_files, pos;
    char **skipped;    /* regular files of the folder that are not read (not .png/.jpg/.jpeg), by name */
    size_t n_skipped;
    int64_t index, line;
} lisa_ann_source;

lisa_status lisa_ann_source_open_manifest(lisa_ann_source *s, const char *path);
/* LISA_ERR_NOT_FOUND when the folder holds no image; the query is used as given. */
lisa_status lisa_ann_source_open_dir(lisa_ann_source *s, const char *dir, const char *query);
/* The next item into *it; *end = true (and *it empty) after the last. Only reading failures
 * return non-OK; a malformed manifest line is an item with it->status != LISA_OK. */
lisa_status lisa_ann_source_next(lisa_ann_source *s, lisa_ann_item *it, bool *end);
/* Back to the first item. */
lisa_status lisa_ann_source_rewind(lisa_ann_source *s);
void lisa_ann_source_close(lisa_ann_source *s);
void lisa_ann_item_free(lisa_ann_item *it);

/* Parses one manifest line (text of len bytes, no newline) into *it, resolving the image against
 * base_dir ("" = as written); `where` names the manifest in messages. Exposed for tests. */
lisa_status lisa_ann_parse_line(lisa_ann_item *it, const char *text, size_t len, const char *base_dir,
                                const char *where, int64_t line);

#ifdef __cplusplus
}
#endif

#endif
