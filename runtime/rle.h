/* runtime/rle.h — COCO run-length masks, decoded exactly as pycocotools 2.0.x (common/maskApi.c)
 * does for LISA's refCOCO evaluation (utils/dataset.py ValDataset: mask.frPyObjects for polygons,
 * mask.decode for RLE, then np.sum over the parts and .astype(np.uint8)).
 *
 * An RLE holds alternating run lengths (zeros first) over the COLUMN-major h x w mask. Decoding
 * here writes ROW-major masks (the engine's layout) and ADDS each part modulo 256, which is what
 * np.sum(..., axis=2).astype(np.uint8) gives: overlapping parts make 2s (that the metric then
 * counts as neither background nor foreground, like the reference).
 *
 * Ownership: a lisa_rle owns cnts (malloc) until lisa_rle_free.
 */
#ifndef LISA_RUNTIME_RLE_H
#define LISA_RUNTIME_RLE_H

#include "lisa.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_rle {
    int32_t h, w;
    int64_t m;      /* number of runs */
    uint32_t *cnts; /* [m] */
} lisa_rle;

/* rleFrString: the compressed "counts" string (6 bits per char, chars 48..111, delta-coded from
 * the third run). LISA_ERR_FORMAT (naming `what`) on a bad character, a truncated number or runs
 * that do not fit h*w. */
lisa_status lisa_rle_from_string(lisa_rle *r, const char *s, int32_t h, int32_t w, const char *what);

/* Uncompressed counts (iscrowd-style "counts": [ints]), taken as they are. */
lisa_status lisa_rle_from_counts(lisa_rle *r, const int64_t *counts, int64_t m, int32_t h, int32_t w, const char *what);

/* rleFrPoly: polygon xy[2k] (x, y pairs, image coordinates) -> RLE, with pycocotools' 5x
 * upsampled boundary walk and rounding. Coordinates must be finite with |v| <= 1e6. */
lisa_status lisa_rle_from_poly(lisa_rle *r, const double *xy, int64_t k, int32_t h, int32_t w, const char *what);

/* mask[y*w + x] += 1 (mod 256) for every set pixel of r; mask is row-major [r->h, r->w]. Runs
 * past h*w are LISA_ERR_FORMAT (pycocotools would write out of bounds); a short RLE leaves the
 * rest as zeros (np.zeros). */
lisa_status lisa_rle_decode_add(uint8_t *mask, const lisa_rle *r, const char *what);

void lisa_rle_free(lisa_rle *r);

#ifdef __cplusplus
}
#endif

#endif
