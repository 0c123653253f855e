/* runtime/mask.h — what the tools do with a binary mask: COCO run-length encoding (bit-compatible
 * with pycocotools 2.0 `mask.encode` / `toBbox` / `area` and the compressed-string form of its
 * `rleToString`), the 50 % red overlay picture of LISA's chat.py, and the gray PNG form.
 *
 * Masks are u8 [h, w] row-major, 0 = background and anything else = foreground (LISA's masks are
 * 0/1: logit > 0). COCO RLE is column-major (Fortran order, like np.asfortranarray): counts[0] is
 * the length of the first run of 0s (possibly 0), then runs alternate 1s, 0s, ...
 * ref: cocodataset/cocoapi PythonAPI/common/maskApi.c (rleEncode, rleToString, rleFrString,
 *      rleToBbox, rleArea, rleDecode).
 */
#ifndef LISA_RUNTIME_MASK_H
#define LISA_RUNTIME_MASK_H

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

/* chat.py's overlay: out = rgb, and on foreground pixels
 *   out = uint8(rgb * 0.5 + [255, 0, 0] * 0.5)   (numpy float64, truncated on the uint8 store)
 * i.e. R = trunc(R/2 + 127.5), G = trunc(G/2), B = trunc(B/2). rgb and out are [h, w, 3]; out may
 * equal rgb. ref: dvlab-research/LISA chat.py `save_img[pred_mask] = (image_np * 0.5 + ...)`. */
void lisa_mask_overlay_red(uint8_t *out, const uint8_t *rgb, const uint8_t *mask, int32_t h, int32_t w);

/* The mask as an 8-bit gray picture: foreground -> `on`, background -> 0 (out and mask [h, w]).
 * The tools write on = 255; chat.py writes 100 (`pred_mask * 100`) as JPEG. */
void lisa_mask_to_gray(uint8_t *out, const uint8_t *mask, int32_t h, int32_t w, uint8_t on);

#ifdef __cplusplus
}
#endif

#endif
