/* core/mask.h — what the tools do with a binary mask besides COCO RLE (core/rle.h): the 50 %
 * red overlay picture of LISA's chat.py, and the gray PNG form.
 *
 * Masks are u8 [h, w] row-major, 0 = background and anything else = foreground (LISA's masks are
 * 0/1: logit > 0). COCO RLE is column-major (Fortran order, like np.asfortranarray): counts[0] is
 * the length of the first run of 0s (possibly 0), then runs alternate 1s, 0s, ...
 * ref: cocodataset/cocoapi PythonAPI/common/maskApi.c (rleEncode, rleToString, rleFrString,
 *      rleToBbox, rleArea, rleDecode).
 */
#ifndef LISA_CORE_MASK_H
#define LISA_CORE_MASK_H

#include "lisa.h"
#include "core/rle.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
