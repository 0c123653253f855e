/* jobs/dataset.h — evaluation datasets as LISA's utils/dataset.py ValDataset reads them (spec
 * docs/inference.md §9), parsed into memory; the masks are drawn later (jobs/eval.c) from the
 * parsed shapes, at the decoded image size.
 *
 * ReasonSeg (jobs/dataset_reasonseg.c): <dir>/<name>.jpg (glob of .jpg files) with the JSON at path.replace(".jpg",
 * ".json") ({"text": [...], "is_sentence": bool, "shapes": [{"label", "points"}]}); the first
 * instruction, stripped, is the one query of each image; shapes labelled "flag" are dropped,
 * "ignore" anywhere in the lower-cased label gives 255, anything else 1; points are converted as
 * np.array(points, dtype=np.int32) does. A JSON that is not UTF-8 is read as cp1252, like
 * get_mask_from_json's fallback.
 *
 * refCOCO / refCOCO+ / refCOCOg (jobs/dataset_refcoco.c): <refer_root>/<dataset>/instances.json
 * and refs(<split_by>).p (a pickle: read with loader/pickle_plain.c; a refs(<split_by>).json with
 * the same content is accepted instead), images in <refer_root>/images/mscoco/images/train2014.
 * The refs of a split are chosen as utils/refer.py getRefIds(split=...) does; every sentence of
 * every ref is a query (sent.strip().lower().strip()); its GT is the segmentation of the ref's
 * annotation: polygons (pycocotools frPyObjects), RLE dicts, or [] (all-zero mask).
 *
 * Ownership: a lisa_dataset owns every string and array below it until lisa_dataset_free.
 */
#ifndef LISA_JOBS_DATASET_H
#define LISA_JOBS_DATASET_H

#include "lisa.h"
#include "jobs/eval_raster.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lisa_gt_part_kind {
    LISA_GT_POLYGON = 0,    /* xy[n] (x, y, x, y, ...; an odd last value is ignored, as pycocotools) */
    LISA_GT_RLE_STRING = 1, /* counts_str, size (rle_h, rle_w) */
    LISA_GT_RLE_COUNTS = 2, /* counts[n], size (rle_h, rle_w) */
} lisa_gt_part_kind;

typedef struct lisa_gt_part {
    lisa_gt_part_kind kind;
    int64_t n;
    double *xy;
    char *counts_str;
    int64_t *counts;
    int32_t rle_h, rle_w;
} lisa_gt_part;

typedef struct lisa_ds_query {
    char *text;       /* the text ValDataset puts into the prompt template */
    bool is_sentence; /* ReasonSeg "is_sentence" (long query); always false for refCOCO */
    int32_t n_parts;  /* refCOCO: the annotation's segmentation parts (0 = empty mask) */
    lisa_gt_part *parts;
    char *error; /* this query cannot be evaluated (why), or NULL */
} lisa_ds_query;

typedef struct lisa_ds_image {
    char *path;       /* the image file */
    char *id;         /* stable name of the item (file name) */
    int32_t h, w;     /* refCOCO: the size in instances.json (the GT size); 0 for ReasonSeg */
    int32_t n_shapes; /* ReasonSeg shapes, "flag" removed, in file order */
    lisa_rs_shape *shapes;
    lisa_pt *pts; /* the shapes' points (one block) */
    int32_t n_queries;
    lisa_ds_query *queries;
    char *error; /* the item cannot be evaluated (corrupt JSON ...), or NULL */
} lisa_ds_image;

typedef enum lisa_ds_kind { LISA_DS_REASONSEG = 0, LISA_DS_REFER = 1 } lisa_ds_kind;

typedef struct lisa_dataset {
    lisa_ds_kind kind;
    int32_t n_images;
    lisa_ds_image *images;
} lisa_dataset;

/* ReasonSeg split directory (e.g. ROOT/reason_seg/ReasonSeg/val). Items are sorted by file name.
 * An unreadable or malformed JSON makes that item's `error` (not a failure of the load); a
 * missing or unreadable directory is LISA_ERR_IO. */
lisa_status lisa_dataset_load_reasonseg(lisa_dataset *ds, const char *split_dir);

/* refer_root (e.g. ROOT/refer_seg), dataset "refcoco" | "refcoco+" | "refcocog", split_by "unc" |
 * "umd" | "google", split "train" | "val" | "test" | "testA" | "testB" | "testC" | "testAB" |
 * "testBC" | "testAC". Images are sorted by image id; refs keep their file order within an image.
 * A bad refs/instances file is a failure; a bad annotation is that query's `error`. */
lisa_status lisa_dataset_load_refer(lisa_dataset *ds, const char *refer_root, const char *dataset, const char *split_by,
                                    const char *split);

void lisa_dataset_free(lisa_dataset *ds);

/* ---- helpers shared by the readers (jobs/dataset_reasonseg.c) -------------------------------- */

/* np.array(v, dtype=np.int32) for one JSON number: truncation toward zero; false if it is not a
 * finite number within int32. */
bool lisa_ds_to_int32(double v, int32_t *out);

/* Python's str.strip() for ASCII whitespace (and \x1c-\x1f): returns a malloc'd copy; lower: also
 * str.lower() for ASCII letters. NULL on OOM. */
char *lisa_ds_strip(const char *s, bool lower);

/* Reads a JSON file as get_mask_from_json does: UTF-8, else cp1252 (transcoded to UTF-8). */
lisa_status lisa_ds_json_load_utf8_or_cp1252(const char *path, void **root_cjson);

#ifdef __cplusplus
}
#endif

#endif
