/* core/rle.h — COCO run-length masks, bit-compatible with pycocotools 2.0 (common/maskApi.c):
 * encode / decode / area / bbox (`mask.encode`, `decode`, `area`, `toBbox`), the compressed counts
 * string (`rleToString` / `rleFrString`), uncompressed counts lists, and polygons (`frPyObjects` ->
 * rleFrPoly) as LISA's refCOCO evaluation reads them (utils/dataset.py ValDataset: polygons and
 * RLE parts decoded, summed with np.sum and cast to uint8).
 *
 * COCO RLE is column-major (Fortran order, like np.asfortranarray): counts[0] is the length of the
 * first run of 0s (possibly 0), then runs alternate 1s, 0s, ... Masks here are u8 [h, w] row-major.
 */
#ifndef LISA_CORE_RLE_H
#define LISA_CORE_RLE_H

#include "lisa.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One run-length-encoded mask. Owns `counts` (malloc'd), freed by lisa_rle_free; lives until then. */
typedef struct lisa_rle {
    int32_t h, w;
    int64_t n;        /* number of runs */
    uint32_t *counts; /* [n]; sum = h*w */
} lisa_rle;

/* Encodes mask [h, w] (row-major; nonzero = foreground). h*w must fit in uint32 (pycocotools' uint
 * counts): larger masks are LISA_ERR_LIMIT. */
lisa_status lisa_rle_encode(lisa_rle *out, const uint8_t *mask, int32_t h, int32_t w);
/* Decodes into mask [h, w] row-major as 0/1. */
void lisa_rle_decode(uint8_t *mask, const lisa_rle *r);
void lisa_rle_free(lisa_rle *r);

/* The compressed counts string (pycocotools rleToString: 6 bits per char, 5 of payload, deltas
 * against counts[i-2] from i = 3 on). Returns a malloc'd NUL-terminated string, NULL when out of
 * memory (an error is recorded). */
char *lisa_rle_to_string(const lisa_rle *r);
/* Parses the compressed string for an h x w mask (rleFrString), validating everything: characters
 * outside '0'..'o', over-long or overflowing values, negative runs and a total that is not h*w are
 * LISA_ERR_FORMAT naming the character offset. */
lisa_status lisa_rle_from_string(lisa_rle *out, const char *s, int32_t h, int32_t w);

/* Foreground pixel count (rleArea). */
uint64_t lisa_rle_area(const lisa_rle *r);
/* [x, y, width, height] of the foreground (rleToBbox, whose quirks included: all zeros when empty). */
void lisa_rle_bbox(double bbox[4], const lisa_rle *r);

/* Uncompressed counts (iscrowd-style "counts": [ints]), each within h*w; `what` names the
 * annotation in errors. */
lisa_status lisa_rle_from_counts(lisa_rle *r, const int64_t *counts, int64_t n, int32_t h, int32_t w, const char *what);

/* rleFrPoly: polygon xy[2k] (x, y pairs, image coordinates) -> RLE, with pycocotools' 5x
 * upsampled boundary walk and rounding. Coordinates must be finite with |v| <= 1e6. */
lisa_status lisa_rle_from_poly(lisa_rle *r, const double *xy, int64_t k, int32_t h, int32_t w, const char *what);

/* mask[y*w + x] += 1 (mod 256) for every set pixel of r (np.sum over parts, then uint8): overlapping
 * parts make 2s, which the metric counts as neither class, like the reference. Runs past h*w are
 * LISA_ERR_FORMAT; a short RLE leaves the rest untouched. */
lisa_status lisa_rle_decode_add(uint8_t *mask, const lisa_rle *r, const char *what);

#ifdef __cplusplus
}
#endif

#endif
